// Package frametest is the in-memory port for tests and the frame.Port conformance
// suite (as wireguard-go's tun/tuntest is for its TUN devices).
//
// NewPair returns two connected in-memory ports: every frame written on one end is
// read, in order and with its offload metadata, from the other. Switch, impairment,
// port security and daemon tests plug them in where a TAP or a VM would be. (The
// product joins namespaces with nsstack.Connect, not with these.)
//
// TestPort checks that a frame.Port keeps the port contract (see frame.Port): it runs
// the same conformance suite against any implementation, given a way to make one and
// to reach its far side (the socket, queue or stack behind it).
//
//	frametest.TestPort(t, func(t *testing.T) frametest.Harness { ... })
//
// Every port kind of vnetd runs it from its own package's tests, so a new port kind
// (or a decorator around one) is held to the same rules: Close is idempotent and
// unblocks a waiting ReadFrames with net.ErrClosed, WriteFrames after Close returns
// net.ErrClosed, frames keep their order both ways and, where the far side can see it,
// their offload metadata, and a frame the caller's buffer cannot hold is dropped and
// counted instead of being cut short.
package frametest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/vnetd/vnetd/frame"
)

// Harness is one port under test and its far side.
type Harness struct {
	// Port is the port under test, open.
	Port frame.Port
	// Inject makes the far side send the frames toward the port, so that the port's
	// ReadFrames returns them (as a VM writing on its socket, a kernel writing to a TAP).
	Inject func(frames []frame.Frame) error
	// Receive returns the next frame the port wrote (as the far side saw it), or an
	// error once timeout passes without one.
	Receive func(timeout time.Duration) (frame.Frame, error)
	// KeepsMeta: the far side sees offload metadata (a virtio-net header, an in-memory
	// queue), so frames with metadata must cross unchanged both ways. Ports whose wire
	// has no metadata (QEMU's stream framing, VXLAN) leave it false.
	KeepsMeta bool
	// ReadDrops, if set, returns the port's count of frames dropped on read because
	// the caller's buffer was too short. The suite then checks that such a frame is
	// dropped and counted, and that the next frame still arrives.
	ReadDrops func() uint64
	// Cleanup, if set, releases the far side after the test (the port is closed by the
	// suite itself).
	Cleanup func()
}

// TestPort runs the conformance suite; mk makes a fresh harness for each case.
func TestPort(t *testing.T, mk func(t *testing.T) Harness) {
	cases := []struct {
		name string
		run  func(t *testing.T, h Harness)
	}{
		{"CloseIdempotent", closeIdempotent},
		{"CloseUnblocksRead", closeUnblocksRead},
		{"WriteAfterClose", writeAfterClose},
		{"ReadOrder", readOrder},
		{"WriteOrder", writeOrder},
		{"Meta", meta},
		{"ShortBufferDropped", shortBufferDropped},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := mk(t)
			defer func() {
				h.Port.Close()
				if h.Cleanup != nil {
					h.Cleanup()
				}
			}()
			c.run(t, h)
		})
	}
}

// Frame returns a 60-byte (or longer, for size > 60) Ethernet frame from src to dst
// with a local experimental EtherType whose payload starts with seq, so a test can
// tell frames apart and check their order.
func Frame(dst, src frame.MAC, seq uint32, size int) []byte {
	b := make([]byte, max(size, 60))
	copy(b[0:6], dst[:])
	copy(b[6:12], src[:])
	binary.BigEndian.PutUint16(b[12:14], TestEtherType)
	binary.BigEndian.PutUint32(b[14:18], seq)
	for i := 18; i < len(b); i++ {
		b[i] = byte(seq) + byte(i)
	}
	return b
}

// TestEtherType is the EtherType of the suite's frames (IEEE local experimental 1). A
// far side that is a kernel device may carry frames of its own (IPv6 router
// solicitations, MLD reports); the suite ignores every frame of another type.
const TestEtherType = 0x88b5

func isTest(b []byte) bool { return len(b) >= 18 && binary.BigEndian.Uint16(b[12:14]) == TestEtherType }

var (
	srcMAC = frame.MAC{0x02, 0, 0, 0, 0xf1, 0x01}
	dstMAC = frame.MAC{0x02, 0, 0, 0, 0xf1, 0x02}
)

func readBufs(p frame.Port, n int) []frame.Frame {
	fs := make([]frame.Frame, n)
	for i := range fs {
		fs[i].Buf = make([]byte, max(p.Info().MaxFrame, 64))
	}
	return fs
}

// readN reads frames from p until n arrived or timeout passed.
func readN(t *testing.T, p frame.Port, n int, timeout time.Duration) [][]byte {
	t.Helper()
	type result struct {
		got [][]byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		var got [][]byte
		fs := readBufs(p, 16)
		for len(got) < n {
			k, err := p.ReadFrames(fs)
			if err != nil {
				done <- result{got, err}
				return
			}
			for _, f := range fs[:k] {
				if isTest(f.Bytes()) {
					got = append(got, bytes.Clone(f.Bytes()))
				}
			}
		}
		done <- result{got, nil}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatalf("ReadFrames after %d of %d frames: %v", len(r.got), n, r.err)
		}
		return r.got
	case <-time.After(timeout):
		p.Close() // ends the reader
		t.Fatalf("ReadFrames: %d frames did not arrive within %v", n, timeout)
		return nil
	}
}

func closeIdempotent(t *testing.T, h Harness) {
	if err := h.Port.Close(); err != nil {
		t.Fatalf("first Close: %v", err)
	}
	if err := h.Port.Close(); err != nil {
		t.Fatalf("second Close: %v, want nil (Close is idempotent)", err)
	}
}

func closeUnblocksRead(t *testing.T, h Harness) {
	errc := make(chan error, 1)
	go func() {
		fs := readBufs(h.Port, 4)
		for {
			if _, err := h.Port.ReadFrames(fs); err != nil {
				errc <- err
				return
			}
		}
	}()
	time.Sleep(20 * time.Millisecond) // let the read block; the check below holds either way
	h.Port.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("ReadFrames after Close = %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ReadFrames still blocked 5 s after Close")
	}
}

func writeAfterClose(t *testing.T, h Harness) {
	h.Port.Close()
	b := Frame(dstMAC, srcMAC, 1, 60)
	if _, err := h.Port.WriteFrames([]frame.Frame{{Buf: b, N: len(b)}}); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("WriteFrames after Close = %v, want net.ErrClosed", err)
	}
}

const orderFrames = 200

func readOrder(t *testing.T, h Harness) {
	var in []frame.Frame
	for i := range orderFrames {
		b := Frame(dstMAC, srcMAC, uint32(i), 60+i%200)
		in = append(in, frame.Frame{Buf: b, N: len(b)})
	}
	// In batches, as a far side writes.
	go func() {
		for i := 0; i < len(in); i += 16 {
			if err := h.Inject(in[i:min(i+16, len(in))]); err != nil {
				return
			}
		}
	}()
	got := readN(t, h.Port, orderFrames, 10*time.Second)
	for i, b := range got {
		if !bytes.Equal(b, in[i].Bytes()) {
			t.Fatalf("frame %d read = %d bytes (seq %d), want %d bytes (seq %d): out of order or changed",
				i, len(b), binary.BigEndian.Uint32(b[14:18]), in[i].N, i)
		}
	}
}

func writeOrder(t *testing.T, h Harness) {
	var out []frame.Frame
	for i := range orderFrames {
		b := Frame(dstMAC, srcMAC, uint32(i), 60+i%200)
		out = append(out, frame.Frame{Buf: b, N: len(b)})
	}
	errc := make(chan error, 1)
	go func() {
		// Small batches with pauses: WriteFrames may drop what the far side cannot take
		// yet (the contract allows it), and this case checks order, not capacity.
		for i := 0; i < len(out); i += 8 {
			batch := out[i:min(i+8, len(out))]
			for len(batch) > 0 {
				n, err := h.Port.WriteFrames(batch)
				if err != nil {
					errc <- err
					return
				}
				batch = batch[n:]
				if len(batch) > 0 {
					time.Sleep(time.Millisecond)
				}
			}
			time.Sleep(200 * time.Microsecond)
		}
		errc <- nil
	}()
	// A port may drop what its far side cannot take (a VM's datagram socket with a
	// full queue, on a loaded host): the frames that arrive must be in order, and
	// enough of them arrive to show it. Receiving ends at the last frame, or once the
	// writer is done and nothing more comes for a second.
	last, got := -1, 0
	writerDone := false
	for last != orderFrames-1 {
		wait := 10 * time.Second
		if writerDone {
			wait = time.Second
		}
		f, err := h.Receive(wait)
		if err != nil {
			if writerDone || len(errc) > 0 { // the writer finished meanwhile: the rest was dropped
				break
			}
			t.Fatalf("far side after %d frames: %v", got, err)
		}
		if !writerDone && len(errc) > 0 {
			writerDone = true
		}
		b := f.Bytes()
		if !isTest(b) {
			continue
		}
		seq := int(binary.BigEndian.Uint32(b[14:18]))
		if seq <= last || !bytes.Equal(b, out[seq].Bytes()) {
			t.Fatalf("far side's frame %d has seq %d after %d (or changed bytes): want order kept", got, seq, last)
		}
		last = seq
		got++
	}
	if got < orderFrames/10 {
		t.Fatalf("far side received %d of %d frames written, want order shown on at least %d", got, orderFrames, orderFrames/10)
	}
	if err := <-errc; err != nil {
		t.Fatalf("WriteFrames: %v", err)
	}
}

// tcp4 returns a TCP/IPv4 frame with a 100-byte payload whose checksum is left partial
// (NeedsCsum), with the metadata an offloading sender gives it.
func tcp4() ([]byte, frame.Meta) {
	b := make([]byte, 14+20+20+100)
	copy(b[0:6], dstMAC[:])
	copy(b[6:12], srcMAC[:])
	binary.BigEndian.PutUint16(b[12:14], 0x0800)
	ip := b[14:34]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:4], uint16(len(b)-14))
	ip[8], ip[9] = 64, 6
	copy(ip[12:16], []byte{10, 0, 0, 1})
	copy(ip[16:20], []byte{10, 0, 0, 2})
	tcp := b[34:54]
	binary.BigEndian.PutUint16(tcp[0:2], 1000)
	binary.BigEndian.PutUint16(tcp[2:4], 80)
	tcp[12] = 5 << 4
	return b, frame.Meta{NeedsCsum: true, CsumStart: 34, CsumOffset: 16}
}

func meta(t *testing.T, h Harness) {
	if !h.KeepsMeta {
		t.Skip("the far side carries no offload metadata")
	}
	caps := h.Port.Info().Caps
	if caps&frame.CapCsum == 0 {
		t.Skip("the port takes no partial checksums")
	}
	b, m := tcp4()
	if _, err := h.Port.WriteFrames([]frame.Frame{{Buf: b, N: len(b), Meta: m}}); err != nil {
		t.Fatalf("WriteFrames: %v", err)
	}
	f, err := h.Receive(5 * time.Second)
	if err != nil {
		t.Fatalf("far side: %v", err)
	}
	if f.Meta.NeedsCsum != m.NeedsCsum || f.Meta.CsumStart != m.CsumStart || f.Meta.CsumOffset != m.CsumOffset {
		t.Fatalf("far side got meta %+v, want %+v", f.Meta, m)
	}
	if err := h.Inject([]frame.Frame{{Buf: b, N: len(b), Meta: m}}); err != nil {
		t.Fatalf("Inject: %v", err)
	}
	fs := readBufs(h.Port, 1)
	if _, err := h.Port.ReadFrames(fs); err != nil {
		t.Fatalf("ReadFrames: %v", err)
	}
	if got := fs[0].Meta; got.NeedsCsum != m.NeedsCsum || got.CsumStart != m.CsumStart || got.CsumOffset != m.CsumOffset {
		t.Fatalf("ReadFrames meta %+v, want %+v", got, m)
	}
}

func shortBufferDropped(t *testing.T, h Harness) {
	if h.ReadDrops == nil {
		t.Skip("the harness has no read drop counter")
	}
	big := Frame(dstMAC, srcMAC, 1, 1000)
	small := Frame(dstMAC, srcMAC, 2, 60)
	before := h.ReadDrops()
	if err := h.Inject([]frame.Frame{{Buf: big, N: len(big)}, {Buf: small, N: len(small)}}); err != nil {
		t.Fatalf("Inject: %v", err)
	}
	fs := []frame.Frame{{Buf: make([]byte, 200)}}
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, err := h.Port.ReadFrames(fs)
		if err != nil {
			t.Fatalf("ReadFrames: %v", err)
		}
		if n == 1 && bytes.Equal(fs[0].Bytes(), small) {
			break
		}
		if n == 1 && fs[0].N > len(fs[0].Buf) {
			t.Fatalf("ReadFrames returned N=%d for a %d-byte buffer", fs[0].N, len(fs[0].Buf))
		}
		if time.Now().After(deadline) {
			t.Fatal("the small frame after a too-big one never arrived")
		}
	}
	if got := h.ReadDrops() - before; got != 1 {
		t.Fatalf("read drops counted %d for one frame too big for the buffer, want 1", got)
	}
}

// PortFarSide returns Inject and Receive functions for a far side that is itself a
// port (the other end of a pair, the port a decorator wraps). Receive reads far on a
// goroutine of its own, which ends when far is closed.
func PortFarSide(far frame.Port) (inject func([]frame.Frame) error, receive func(time.Duration) (frame.Frame, error)) {
	inject = func(frames []frame.Frame) error {
		for len(frames) > 0 {
			n, err := far.WriteFrames(frames)
			if err != nil {
				return err
			}
			frames = frames[n:]
			if len(frames) > 0 {
				time.Sleep(time.Millisecond) // the port's queue is full: let its reader catch up
			}
		}
		return nil
	}
	ch := make(chan frame.Frame, 1024)
	started := false
	receive = func(timeout time.Duration) (frame.Frame, error) {
		if !started {
			started = true
			go func() {
				defer close(ch)
				fs := readBufs(far, 16)
				for {
					n, err := far.ReadFrames(fs)
					if err != nil {
						return
					}
					for _, f := range fs[:n] {
						ch <- frame.Frame{Buf: bytes.Clone(f.Bytes()), N: f.N, Meta: f.Meta}
					}
				}
			}()
		}
		select {
		case f, ok := <-ch:
			if !ok {
				return frame.Frame{}, net.ErrClosed
			}
			return f, nil
		case <-time.After(timeout):
			return frame.Frame{}, errors.New("no frame within " + timeout.String())
		}
	}
	return inject, receive
}
