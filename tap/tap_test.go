package tap

import (
	"bytes"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/vnetd/vnetd/frame"
	"github.com/vnetd/vnetd/internal/gather"
)

func TestOpenBadName(t *testing.T) {
	for _, name := range []string{"", "this-name-is-too-long", "a/b", "a b"} {
		t.Run(name, func(t *testing.T) {
			_, err := Open(Options{Name: name, Create: true})
			if err == nil || !strings.Contains(err.Error(), "invalid name") {
				t.Errorf("Open(Name: %q) = %v, want invalid name error", name, err)
			}
		})
	}
}

func TestOpenQueuesBadCount(t *testing.T) {
	if _, err := Open(Options{Name: "vq0", Create: true, Queues: 2}); err == nil || !strings.Contains(err.Error(), "use OpenQueues") {
		t.Errorf("Open(Queues: 2) = %v, want an error pointing to OpenQueues", err)
	}
	if _, err := OpenQueues(Options{Name: "vq0", Create: true, Queues: maxQueues + 1}); err == nil || !strings.Contains(err.Error(), "at most 256") {
		t.Errorf("OpenQueues(Queues: %d) = %v, want an error naming the limit", maxQueues+1, err)
	}
}

// TestOpenWithoutPermission: without CAP_NET_ADMIN, creating a TAP fails with an error
// that says so, and nothing is created. As root the check runs in a copy of this test
// as nobody without capabilities (setpriv), so root never creates a TAP here.
func TestOpenWithoutPermission(t *testing.T) {
	if os.Geteuid() == 0 {
		setpriv, err := exec.LookPath("setpriv")
		if err != nil {
			if os.Getenv("VNETD_INTEGRATION") == "1" {
				t.Fatal("as root without setpriv (util-linux): cannot drop privileges to check the error")
			}
			t.Skip("as root without setpriv (util-linux): cannot drop privileges to check the error")
		}
		cmd := exec.Command(setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all",
			os.Args[0], "-test.run=^TestOpenWithoutPermission$", "-test.count=1", "-test.v")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--- PASS: TestOpenWithoutPermission") {
			t.Errorf("TestOpenWithoutPermission as nobody: %v: %s", err, out)
		}
		return
	}
	_, err := Open(Options{Name: "vnoperm0", Create: true, Logger: slog.New(slog.DiscardHandler)})
	if err == nil || !strings.Contains(err.Error(), "no permission") || !strings.Contains(err.Error(), "CAP_NET_ADMIN") {
		t.Errorf("Open(Create) without CAP_NET_ADMIN = %v, want a no-permission error naming CAP_NET_ADMIN", err)
	}
	if _, err := net.InterfaceByName("vnoperm0"); err == nil {
		t.Errorf("vnoperm0 exists after a failed Open")
	}
}

// piecesPkt is a frame by reference in 10-byte pieces.
type piecesPkt struct{ b []byte }

func (p piecesPkt) CopyTo(b []byte) int { return copy(b, p.b) }
func (p piecesPkt) Release()            {}
func (p piecesPkt) Clone() frame.Packet { return p }
func (p piecesPkt) Slices(dst [][]byte) [][]byte {
	for i := 0; i < len(p.b); i += 10 {
		dst = append(dst, p.b[i:min(i+10, len(p.b))])
	}
	return dst
}

// TestAppendFrame: a frame by reference is written as its head (from the frame's
// buffer, where it may have been rewritten) then the packet's own pieces behind it,
// unless that makes more than gather.MaxFrameSlices pieces: then it is copied into the frame's
// buffer.
func TestAppendFrame(t *testing.T) {
	for _, c := range []struct{ pieces, slices int }{
		{3, 1},                         // 30 bytes: all head
		{20, 1 + 14},                   // 200 bytes: the head, then the last 4 bytes of piece 6 and 13 more
		{gather.MaxFrameSlices + 7, 1}, // copied into the buffer
	} {
		data := make([]byte, 10*c.pieces)
		for i := range data {
			data[i] = byte(i)
		}
		f := frame.Frame{Buf: make([]byte, len(data)), N: len(data), Pkt: piecesPkt{data}}
		h := copy(f.Buf, data[:min(len(data), frame.PacketHead)])
		f.Buf[0] = 0xee // a rewritten head byte: the frame's, not the packet's
		want := append([]byte{0xee}, data[1:]...)
		got := appendFrame([][]byte{[]byte("hdr")}, &f)
		if len(got)-1 != c.slices || !bytes.Equal(bytes.Join(got[1:], nil), want) {
			t.Errorf("%d pieces: %d slices, bytes equal %v; want %d slices, equal", c.pieces, len(got)-1, bytes.Equal(bytes.Join(got[1:], nil), want), c.slices)
			continue
		}
		if c.slices > 1 && &got[2][0] != &data[h] {
			t.Errorf("%d pieces: the bytes behind the head are not the packet's own", c.pieces)
		}
		if c.slices == 1 && len(data) > frame.PacketHead && &got[1][0] != &f.Buf[0] {
			t.Errorf("%d pieces: not copied into the frame's buffer", c.pieces)
		}
	}
}
