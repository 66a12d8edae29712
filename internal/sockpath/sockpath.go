package sockpath

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"time"
)

// ErrInUse: a live socket is at the path (somebody answers on it).
var ErrInUse = errors.New("another process is listening on it")

// ErrNotSocket: something other than a socket is at the path.
var ErrNotSocket = errors.New("not a socket")

// dialTimeout bounds the probe of a socket found at the path.
const dialTimeout = time.Second

// Clear makes path free for a socket of network ("unix" or "unixgram") to be bound
// there. Nothing at path: nothing to do. A socket nobody answers on (stale, its
// process gone): removed. A socket somebody answers on: ErrInUse. Anything else, a
// regular file, a directory, a symlink (to a socket or not), a device: ErrNotSocket,
// naming what it is, and it is left untouched.
func Clear(path, network string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%q: %w", path, err)
	}
	if fi.Mode()&fs.ModeSocket == 0 {
		return fmt.Errorf("%q is %s, %w: refusing to replace it (remove it or choose another path)", path, kind(fi.Mode()), ErrNotSocket)
	}
	c, err := net.DialTimeout(network, path, dialTimeout)
	if err == nil {
		c.Close()
		return fmt.Errorf("%q: %w", path, ErrInUse)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove stale socket %q: %w", path, err)
	}
	return nil
}

// kind names a file mode for an error message.
func kind(m fs.FileMode) string {
	switch {
	case m.IsRegular():
		return "a regular file"
	case m.IsDir():
		return "a directory"
	case m&fs.ModeSymlink != 0:
		return "a symlink"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeDevice != 0:
		return "a device"
	}
	return "not a socket (" + m.Type().String() + ")"
}
