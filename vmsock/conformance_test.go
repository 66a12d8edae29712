package vmsock

import (
	"encoding/binary"
	"io"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/vnetd/vnetd/frame"
	"github.com/vnetd/vnetd/frame/frametest"
)

// TestStreamPortContract runs the frame.Port conformance suite against a -netdev
// stream connection's port, the far side being the VM's end of the socket.
func TestStreamPortContract(t *testing.T) {
	frametest.TestPort(t, func(t *testing.T) frametest.Harness {
		p, c := dialVM(t)
		vp := p.(*Port)
		return frametest.Harness{
			Port: p,
			Inject: func(frames []frame.Frame) error {
				for i := range frames {
					if err := writeQEMU(c, frames[i].Bytes()); err != nil {
						return err
					}
				}
				return nil
			},
			Receive: func(timeout time.Duration) (frame.Frame, error) {
				c.SetReadDeadline(time.Now().Add(timeout))
				var h [4]byte
				if _, err := io.ReadFull(c, h[:]); err != nil {
					return frame.Frame{}, err
				}
				b := make([]byte, binary.BigEndian.Uint32(h[:]))
				if _, err := io.ReadFull(c, b); err != nil {
					return frame.Frame{}, err
				}
				return frame.Frame{Buf: b, N: len(b)}, nil
			},
			ReadDrops: func() uint64 { return vp.Counters().Snapshot().RxDropped },
		}
	})
}

// TestDgramPortContract runs the suite against a -netdev dgram peer's port, the far
// side being the VM's datagram socket.
func TestDgramPortContract(t *testing.T) {
	frametest.TestPort(t, func(t *testing.T) frametest.Harness {
		dir := t.TempDir()
		path := filepath.Join(dir, "vm.dgram")
		ports := make(chan frame.Port, 1)
		l, err := Listen(Options{Path: path, Protocol: "dgram", OnPort: func(p frame.Port, _ string) { ports <- p }})
		if err != nil {
			t.Fatalf("Listen: %v", err)
		}
		vm, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: filepath.Join(dir, "vm0"), Net: "unixgram"})
		if err != nil {
			t.Fatal(err)
		}
		to := &net.UnixAddr{Name: path, Net: "unixgram"}
		// The listener makes a peer's port when the peer first sends.
		hello := frametest.Frame(frame.MAC{2, 0, 0, 0, 0, 2}, frame.MAC{2, 0, 0, 0, 0, 1}, 1<<30, 60)
		if _, err := vm.WriteToUnix(hello, to); err != nil {
			t.Fatal(err)
		}
		var p frame.Port
		select {
		case p = <-ports:
		case <-time.After(5 * time.Second):
			t.Fatal("no port for the dgram peer")
		}
		first := make([]frame.Frame, 1)
		first[0].Buf = make([]byte, p.Info().MaxFrame)
		if _, err := p.ReadFrames(first); err != nil { // the hello
			t.Fatal(err)
		}
		return frametest.Harness{
			Port: p,
			Inject: func(frames []frame.Frame) error {
				for i := range frames {
					if _, err := vm.WriteToUnix(frames[i].Bytes(), to); err != nil {
						return err
					}
				}
				return nil
			},
			Receive: func(timeout time.Duration) (frame.Frame, error) {
				vm.SetReadDeadline(time.Now().Add(timeout))
				b := make([]byte, 65536)
				n, _, err := vm.ReadFromUnix(b)
				if err != nil {
					return frame.Frame{}, err
				}
				return frame.Frame{Buf: b[:n], N: n}, nil
			},
			Cleanup: func() { vm.Close(); l.Close() },
		}
	})
}
