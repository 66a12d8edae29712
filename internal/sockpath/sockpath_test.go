package sockpath

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestClear(t *testing.T) {
	for _, network := range []string{"unix", "unixgram"} {
		t.Run(network, func(t *testing.T) {
			dir := t.TempDir()

			// Nothing there.
			if err := Clear(filepath.Join(dir, "none"), network); err != nil {
				t.Errorf("Clear(missing) = %v, want nil", err)
			}

			// Things that are not sockets survive, and the error names them.
			file := filepath.Join(dir, "config.toml")
			os.WriteFile(file, []byte("keep me"), 0o600)
			empty := filepath.Join(dir, "empty")
			os.Mkdir(empty, 0o700)
			link := filepath.Join(dir, "link")
			os.Symlink(file, link)
			for _, p := range []string{file, empty, link} {
				err := Clear(p, network)
				if !errors.Is(err, ErrNotSocket) || !strings.Contains(err.Error(), p) {
					t.Errorf("Clear(%q) = %v, want ErrNotSocket naming the path", p, err)
				}
				if _, err := os.Lstat(p); err != nil {
					t.Errorf("after Clear, Lstat(%q) = %v: it must survive", p, err)
				}
			}
			if b, _ := os.ReadFile(file); string(b) != "keep me" {
				t.Errorf("file content after Clear = %q, want untouched", b)
			}

			// A stale socket is removed; a live one refused and kept.
			sock := filepath.Join(dir, "s.sock")
			var live interface{ Close() error }
			if network == "unix" {
				ln, err := net.Listen("unix", sock)
				if err != nil {
					t.Fatal(err)
				}
				ln.(*net.UnixListener).SetUnlinkOnClose(false)
				live = ln
			} else {
				c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
				if err != nil {
					t.Fatal(err)
				}
				live = c
			}
			if err := Clear(sock, network); !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), sock) {
				t.Errorf("Clear(live socket) = %v, want ErrInUse naming it", err)
			}
			if _, err := os.Lstat(sock); err != nil {
				t.Errorf("after Clear(live), Lstat = %v, want the socket kept", err)
			}
			live.Close()
			if err := Clear(sock, network); err != nil {
				t.Errorf("Clear(stale socket) = %v, want nil", err)
			}
			if _, err := os.Lstat(sock); !os.IsNotExist(err) {
				t.Errorf("after Clear(stale), Lstat = %v, want not exist", err)
			}
		})
	}
}
