// Package dnsserver provides an authoritative-only DNS server for vnetd's names:
// A/AAAA records from a snapshot the daemon replaces on reload, over UDP (answers too
// large for the client truncated and flagged TC) and TCP. It never recurses.
package dnsserver
