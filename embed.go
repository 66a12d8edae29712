// Package vnetd is the module root; it only carries the embedded default lab.
package vnetd

import _ "embed"

// DefaultConfig is config.toml.example, the lab `vnetd run` starts without -c.
//
//go:embed config.toml.example
var DefaultConfig []byte
