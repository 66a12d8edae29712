package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
)

// Kernel limits on names vnetd hands to the host.
const (
	// MaxIfName is the longest Linux interface name (IFNAMSIZ 16, less the NUL).
	MaxIfName = 15
	// MaxSocketPath is the longest unix socket path (sun_path 108, less the NUL).
	MaxSocketPath = 107
)

// ifName checks a host interface name (a TAP's, a host_interface's) against the
// kernel's limit; the other rules are name's.
func (v *validator) ifName(p, what, name string) {
	if len(name) > MaxIfName {
		v.errf(p+".name", "%s name %q is %d bytes, longer than the kernel's %d (IFNAMSIZ)", what, name, len(name), MaxIfName)
	}
}

// socketPath checks a unix socket path vnetd will listen on: it fits sun_path, and
// its directory exists. When mkdir is set the daemon creates a missing directory
// itself (the control socket), so only a path that cannot become a directory (an
// ancestor that is a file) is an error.
func (v *validator) socketPath(p, what, path string, mkdir bool) {
	if len(path) > MaxSocketPath {
		v.errf(p, "%s path %q is %d bytes, longer than a unix socket path may be (%d)", what, path, len(path), MaxSocketPath)
	}
	dir := filepath.Dir(path)
	fi, err := os.Stat(dir)
	switch {
	case err == nil && !fi.IsDir():
		v.errf(p, "%s path %q: %s is not a directory", what, path, dir)
	case err == nil:
	case !errors.Is(err, fs.ErrNotExist):
		v.errf(p, "%s path %q: %v", what, path, err)
	case !mkdir:
		v.errf(p, "%s path %q: directory %s does not exist", what, path, dir)
	default:
		for d := filepath.Dir(dir); ; d = filepath.Dir(d) {
			if fi, err := os.Stat(d); err == nil {
				if !fi.IsDir() {
					v.errf(p, "%s path %q: %s is not a directory, so %s cannot be created", what, path, d, dir)
				}
				return
			}
			if d == filepath.Dir(d) {
				return
			}
		}
	}
}
