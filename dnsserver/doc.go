// Package dnsserver provides an authoritative-only DNS server for vnetd's names:
// A/AAAA records from a snapshot the daemon replaces on reload. It never recurses.
package dnsserver
