package config

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestListensOverlap(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"0.0.0.0:80", "127.0.0.1:80", true},
		{"127.0.0.1:80", "0.0.0.0:80", true},
		{"[::]:80", "[::1]:80", true},
		{"[::]:80", "127.0.0.1:80", true}, // Go listens dual-stack on [::]
		{"[::]:80", "0.0.0.0:80", true},
		{"0.0.0.0:80", "[::1]:80", false},
		{"127.0.0.1:80", "127.0.0.2:80", false},
		{"0.0.0.0:80", "127.0.0.1:81", false},
		{"[::1]:80", "[::1]:80", true},
	}
	for _, tt := range tests {
		a, b := netip.MustParseAddrPort(tt.a), netip.MustParseAddrPort(tt.b)
		if got := listensOverlap(a, b); got != tt.want {
			t.Errorf("listensOverlap(%s, %s) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

// TestSocketPath: a [[socket]] needs its directory; the control socket's directory
// is created by the daemon, so only an ancestor that is a file is an error there.
func TestSocketPath(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	long := filepath.Join(dir, strings.Repeat("x", MaxSocketPath))
	tests := []struct {
		path  string
		mkdir bool
		want  string // substring of the error, "" for none
	}{
		{filepath.Join(dir, "vm.sock"), false, ""},
		{filepath.Join(dir, "sub", "vm.sock"), false, "does not exist"},
		{filepath.Join(dir, "sub", "deeper", "ctl.sock"), true, ""},
		{filepath.Join(file, "vm.sock"), false, "is not a directory"},
		{filepath.Join(file, "sub", "ctl.sock"), true, "not a directory"},
		{filepath.Join(file+"x", "sub", "ctl.sock"), true, ""},
		{long, false, "longer than a unix socket path may be (107)"},
		{dir + "/" + strings.Repeat("y", MaxSocketPath-len(dir)-1), false, ""},
	}
	for _, tt := range tests {
		v := &validator{file: "f", loc: newLocator(nil)}
		v.socketPath("socket.0.path", "socket", tt.path, tt.mkdir)
		got := ""
		if len(v.errs) > 0 {
			got = v.errs[0].Msg
		}
		if tt.want == "" && got != "" || tt.want != "" && !strings.Contains(got, tt.want) {
			t.Errorf("socketPath(%q, mkdir %v) = %q, want %q", tt.path, tt.mkdir, got, tt.want)
		}
	}
}
