package tap

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vnetd/vnetd/frame"
	"github.com/vnetd/vnetd/frame/frametest"
)

// fakeGroup returns a Group over n queues that are SOCK_SEQPACKET socket pairs instead
// of TAP descriptors (same read/write semantics: one frame per read, EAGAIN when
// empty, 0 once the far side is gone), and the far side's descriptors, one per queue.
// No root needed.
func fakeGroup(t *testing.T, n int) (*Group, []int) {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	var qs []*TAP
	var far []int
	for i := range n {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatalf("socketpair: %v", err)
		}
		file := os.NewFile(uintptr(fds[0]), "fake-queue")
		raw, err := file.SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		info := frame.Info{Name: fmt.Sprintf("tap:fake.q%d", i), MTU: 1500, MaxFrame: frame.MaxFrameFor(1500, false), Caps: frame.CapInline}
		qs = append(qs, newTAP("fake", file, raw, info, false, log))
		far = append(far, fds[1])
		t.Cleanup(func() { unix.Close(fds[1]) })
	}
	g, err := newGroup("fake", qs)
	if err != nil {
		t.Fatalf("newGroup: %v", err)
	}
	t.Cleanup(func() { g.Close() })
	return g, far
}

// recvAny returns the next frame any of fds holds, and which, within timeout.
func recvAny(fds []int, timeout time.Duration) ([]byte, int, error) {
	pfds := make([]unix.PollFd, len(fds))
	for i, fd := range fds {
		pfds[i] = unix.PollFd{Fd: int32(fd), Events: unix.POLLIN}
	}
	buf := make([]byte, 65536)
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); {
		if _, err := unix.Poll(pfds, int(time.Until(deadline)/time.Millisecond)+1); err != nil && err != unix.EINTR {
			return nil, 0, err
		}
		for i, p := range pfds {
			if p.Revents&unix.POLLIN != 0 {
				n, err := unix.Read(fds[i], buf)
				if err == unix.EAGAIN {
					continue
				}
				if err != nil {
					return nil, 0, err
				}
				return buf[:n], i, nil
			}
		}
	}
	return nil, 0, errors.New("no frame within " + timeout.String())
}

// TestGroupPortContract runs the frame.Port conformance suite against a 4-queue Group
// (the real multi-queue TAP runs it in integration/). The far side injects on queue 1.
func TestGroupPortContract(t *testing.T) {
	frametest.TestPort(t, func(t *testing.T) frametest.Harness {
		g, far := fakeGroup(t, 4)
		return frametest.Harness{
			Port: g,
			Inject: func(frames []frame.Frame) error {
				for i := range frames {
					if _, err := unix.Write(far[1], frames[i].Bytes()); err != nil {
						return err
					}
				}
				return nil
			},
			Receive: func(timeout time.Duration) (frame.Frame, error) {
				b, _, err := recvAny(far, timeout)
				return frame.Frame{Buf: b, N: len(b)}, err
			},
		}
	})
}

// tcpFrame returns a TCP/IPv4 (or IPv6) frame from sport to dport, optionally behind
// an 802.1Q tag, with payload seq.
func tcpFrame(v6 bool, vlan uint16, sport, dport uint16, seq uint32) []byte {
	var b []byte
	b = append(b, 2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1)
	if vlan != 0 {
		b = binary.BigEndian.AppendUint16(b, 0x8100)
		b = binary.BigEndian.AppendUint16(b, vlan)
	}
	if v6 {
		b = binary.BigEndian.AppendUint16(b, 0x86dd)
		ip := make([]byte, 40)
		ip[0], ip[6], ip[7] = 0x60, unix.IPPROTO_TCP, 64
		binary.BigEndian.PutUint16(ip[4:6], 24)
		ip[8], ip[23] = 0xfd, 1
		ip[24], ip[39] = 0xfd, 2
		b = append(b, ip...)
	} else {
		b = binary.BigEndian.AppendUint16(b, 0x0800)
		ip := make([]byte, 20)
		ip[0], ip[8], ip[9] = 0x45, 64, unix.IPPROTO_TCP
		binary.BigEndian.PutUint16(ip[2:4], 44)
		copy(ip[12:], []byte{10, 0, 0, 1, 10, 0, 0, 2})
		b = append(b, ip...)
	}
	b = binary.BigEndian.AppendUint16(b, sport)
	b = binary.BigEndian.AppendUint16(b, dport)
	b = append(b, make([]byte, 16)...)
	return binary.BigEndian.AppendUint32(b, seq)
}

func TestFlowQueue(t *testing.T) {
	arp := make([]byte, 42)
	arp[12], arp[13] = 0x08, 0x06
	frag := func(off uint16, sport uint16) []byte {
		b := tcpFrame(false, 0, sport, 80, 0)
		binary.BigEndian.PutUint16(b[14+6:], off)
		return b
	}
	q := func(b []byte) int { return flowQueue(&frame.Frame{Buf: b, N: len(b)}, 4) }
	for _, tt := range []struct {
		name string
		a, b []byte
	}{
		{"untagged and tagged", tcpFrame(false, 0, 1000, 80, 1), tcpFrame(false, 7, 1000, 80, 2)},
		{"IPv6 same flow", tcpFrame(true, 0, 1000, 80, 1), tcpFrame(true, 0, 1000, 80, 2)},
		{"fragments of one datagram", frag(0x2000, 1000), frag(0x0010, 9999)}, // MF; offset (no ports seen)
	} {
		t.Run(tt.name, func(t *testing.T) {
			if qa, qb := q(tt.a), q(tt.b); qa != qb {
				t.Errorf("flowQueue = %d and %d for one flow, want one queue", qa, qb)
			}
		})
	}
	for _, b := range [][]byte{arp, arp[:10], tcpFrame(false, 0, 1, 2, 3)[:20]} {
		if got := q(b); got != 0 {
			t.Errorf("flowQueue(%d-byte non-IP or short frame) = %d, want 0", len(b), got)
		}
	}
	// A frame by reference: only its head is in Buf.
	b := tcpFrame(false, 0, 1000, 80, 1)
	if got, want := flowQueue(&frame.Frame{Buf: b[:frame.PacketHead:frame.PacketHead], N: 9000}, 4), q(b); got != want {
		t.Errorf("flowQueue(frame by reference) = %d, want %d", got, want)
	}
	used := map[int]int{}
	for sport := range uint16(64) {
		for _, v6 := range []bool{false, true} {
			q := q(tcpFrame(v6, 0, 40000+sport, 5201, 0))
			if q < 0 || q >= 4 {
				t.Fatalf("flowQueue = %d, want 0-3", q)
			}
			used[q]++
		}
	}
	for i := range 4 {
		if used[i] < 8 {
			t.Errorf("128 flows over 4 queues: queue %d got %d, want them spread (%v)", i, used[i], used)
		}
	}
	if got := flowQueue(&frame.Frame{Buf: b, N: len(b)}, 1); got != 0 {
		t.Errorf("flowQueue(1 queue) = %d, want 0", got)
	}
}

// TestGroupWriteSpreadsFlows: frames of 32 flows written in interleaved batches reach
// the far side each flow on one queue, in order, and the flows use every queue.
func TestGroupWriteSpreadsFlows(t *testing.T) {
	g, far := fakeGroup(t, 4)
	const flows, per = 32, 8
	var batch []frame.Frame
	for seq := range uint32(per) {
		for f := range uint16(flows) {
			b := tcpFrame(f%2 == 1, 0, 30000+f, 5201, seq)
			batch = append(batch, frame.Frame{Buf: b, N: len(b)})
		}
	}
	if n, err := g.WriteFrames(nil); n != 0 || err != nil {
		t.Fatalf("WriteFrames(nil) = %d, %v, want 0, nil", n, err)
	}
	if n, err := g.WriteFrames(batch); n != len(batch) || err != nil {
		t.Fatalf("WriteFrames(%d frames) = %d, %v", len(batch), n, err)
	}
	queueOf := map[uint16]int{}
	next := map[uint16]uint32{}
	for range batch {
		b, q, err := recvAny(far, 5*time.Second)
		if err != nil {
			t.Fatalf("far side: %v", err)
		}
		l4 := len(b) - 24
		sport, seq := binary.BigEndian.Uint16(b[l4:]), binary.BigEndian.Uint32(b[len(b)-4:])
		if prev, ok := queueOf[sport]; ok && prev != q {
			t.Fatalf("flow %d on queues %d and %d, want one", sport, prev, q)
		}
		queueOf[sport] = q
		if seq != next[sport] {
			t.Fatalf("flow %d: seq %d arrived, want %d (order kept within a flow)", sport, seq, next[sport])
		}
		next[sport]++
	}
	counts := g.QueueCounts()
	var tx uint64
	for i, c := range counts {
		if c.TxFrames == 0 {
			t.Errorf("queue %d wrote no frame of %d flows: %+v", i, flows, counts)
		}
		tx += c.TxFrames
	}
	if tx != uint64(len(batch)) {
		t.Errorf("QueueCounts() tx total = %d, want %d", tx, len(batch))
	}
}

// TestGroupReadsEveryQueue: frames the far side writes on every queue are all read,
// and QueueCounts says which queue each came from.
func TestGroupReadsEveryQueue(t *testing.T) {
	g, far := fakeGroup(t, 3)
	want := map[string]bool{}
	for q, fd := range far {
		for i := range q + 1 { // queue q gets q+1 frames
			b := tcpFrame(false, 0, uint16(q), uint16(i), 0)
			want[string(b)] = true
			if _, err := unix.Write(fd, b); err != nil {
				t.Fatal(err)
			}
		}
	}
	fs := make([]frame.Frame, 2) // fewer than ready: reads must come back for the rest
	for i := range fs {
		fs[i].Buf = make([]byte, 2048)
	}
	for got := 0; got < 6; {
		n, err := g.ReadFrames(fs)
		if err != nil {
			t.Fatalf("ReadFrames: %v", err)
		}
		for _, f := range fs[:n] {
			if !want[string(f.Bytes())] {
				t.Fatalf("ReadFrames returned an unexpected or repeated frame %x", f.Bytes())
			}
			delete(want, string(f.Bytes()))
		}
		got += n
	}
	for i, c := range g.QueueCounts() {
		if c.RxFrames != uint64(i+1) {
			t.Errorf("queue %d RxFrames = %d, want %d", i, c.RxFrames, i+1)
		}
	}
}

// TestGroupQueueGone: when one queue's device end goes (as a deleted TAP's do), a
// blocked ReadFrames returns an error wrapping ErrDown, which makes the daemon's
// reopen wrapper reopen the whole TAP.
func TestGroupQueueGone(t *testing.T) {
	g, far := fakeGroup(t, 2)
	errc := make(chan error, 1)
	go func() {
		fs := []frame.Frame{{Buf: make([]byte, 2048)}}
		_, err := g.ReadFrames(fs)
		errc <- err
	}()
	time.Sleep(20 * time.Millisecond)
	unix.Shutdown(far[1], unix.SHUT_RDWR)
	select {
	case err := <-errc:
		if !errors.Is(err, ErrDown) {
			t.Errorf("ReadFrames after queue 1's end went = %v, want ErrDown", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ReadFrames still blocked 5s after queue 1's end went")
	}
	g.Close()
	if _, err := g.ReadFrames([]frame.Frame{{Buf: make([]byte, 64)}}); !errors.Is(err, net.ErrClosed) {
		t.Errorf("ReadFrames after Close = %v, want net.ErrClosed", err)
	}
	if _, err := g.WriteFrames([]frame.Frame{{Buf: make([]byte, 64), N: 64}}); !errors.Is(err, net.ErrClosed) {
		t.Errorf("WriteFrames after Close = %v, want net.ErrClosed", err)
	}
}

// TestGroupNoAllocs: reading and writing through a Group allocates nothing.
func TestGroupNoAllocs(t *testing.T) {
	g, far := fakeGroup(t, 4)
	var out []frame.Frame
	for f := range uint16(8) {
		b := tcpFrame(false, 0, 1000+f, 80, 0)
		out = append(out, frame.Frame{Buf: b, N: len(b)})
	}
	in := make([]frame.Frame, 8)
	for i := range in {
		in[i].Buf = make([]byte, 2048)
	}
	rb := make([]byte, 2048)
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := g.WriteFrames(out); err != nil {
			t.Fatal(err)
		}
		for _, fd := range far { // drain, and echo one frame back on each queue
			for {
				n, err := unix.Read(fd, rb)
				if err != nil {
					break
				}
				unix.Write(fd, rb[:n])
			}
		}
		for got := 0; got < len(out); {
			n, err := g.ReadFrames(in)
			if err != nil {
				t.Fatal(err)
			}
			got += n
		}
	})
	if allocs != 0 {
		t.Errorf("a write and read of 8 frames through a Group allocates %.1f times, want 0", allocs)
	}
	if !bytes.Equal(in[0].Bytes()[:12], out[0].Bytes()[:12]) {
		t.Errorf("echoed frame differs")
	}
}
