// Package config loads vnetd's TOML configuration into typed values (netip prefixes
// and addresses, frame.MAC, time.Duration), fills defaults and validates the whole
// file, reporting every problem at once as "FILE:LINE:COL: message".
package config
