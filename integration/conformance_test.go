package integration

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/vnetd/vnetd/frame"
	"github.com/vnetd/vnetd/frame/frametest"
	"golang.org/x/sys/unix"
)

// TestTAPPortContract runs the frame.Port conformance suite against a TAP (created in
// a netns of the test's, IPv6 off so the kernel sends nothing of its own), the far side
// being an AF_PACKET socket on the TAP's kernel side.
func TestTAPPortContract(t *testing.T) {
	needRoot(t)
	frametest.TestPort(t, func(t *testing.T) frametest.Harness {
		ns := newNetns(t, "vconf")
		tp := openTAPIn(t, ns, false, false)
		name := tp.Info().Name
		if i := bytes.IndexByte([]byte(name), ':'); i >= 0 {
			name = name[i+1:]
		}
		inNetns(t, ns, "sysctl", "-qw", "net.ipv6.conf."+name+".disable_ipv6=1")
		s := openRawSocket(t, ns, name)
		return frametest.Harness{
			Port:      tp,
			ReadDrops: func() uint64 { return tp.Drops()["buffer_short"] },
			Inject: func(frames []frame.Frame) error {
				for i := range frames {
					s.send(t, frames[i].Bytes())
				}
				return nil
			},
			Receive: func(timeout time.Duration) (frame.Frame, error) {
				buf := make([]byte, 65536)
				for deadline := time.Now().Add(timeout); time.Now().Before(deadline); {
					n, from, err := unix.Recvfrom(s.fd, buf, 0)
					if err != nil {
						continue // SO_RCVTIMEO
					}
					if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
						continue // the socket's own sends
					}
					return frame.Frame{Buf: buf[:n], N: n}, nil
				}
				return frame.Frame{}, errors.New("no frame from the TAP within " + timeout.String())
			},
		}
	})
}
