// Package dhcpserver provides a small DHCPv4 server for the VMs and namespaces on a
// vnetd switch: dynamic leases from a range, static leases by MAC.
package dhcpserver
