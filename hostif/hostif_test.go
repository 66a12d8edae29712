package hostif

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/vnetd/vnetd/frame"
	"github.com/vnetd/vnetd/vnethdr"
)

// fakePkt is one packet to lay out in a synthetic ring block.
type fakePkt struct {
	data    []byte
	meta    frame.Meta
	status  uint32
	tci     uint16
	tpid    uint16
	pkttype uint8
	wire    int // tp_len; 0 means len(data)
}

// Where the kernel puts the frame for a packet socket with virtio-net headers:
// netoff = TPACKET_ALIGN(TPACKET3_HDRLEN + 16) + 10, macoff = netoff - 14.
const fakeMac = 96 + vnetHdrLen - frame.EthHeaderLen

// putBlock lays pkts out in block idx of mem as the kernel does and sets its status.
func putBlock(mem []byte, bs, idx int, status uint32, pkts []fakePkt) {
	b := mem[idx*bs : (idx+1)*bs]
	clear(b)
	ne.PutUint32(b[blkNumPktsOff:], uint32(len(pkts)))
	ne.PutUint32(b[blkFirstPktOff:], blkHdrLen)
	off := blkHdrLen
	for i, p := range pkts {
		h := b[off:]
		next := (fakeMac + len(p.data) + 7) &^ 7
		if i < len(pkts)-1 {
			ne.PutUint32(h[pktNextOff:], uint32(next))
		}
		wire := p.wire
		if wire == 0 {
			wire = len(p.data)
		}
		ne.PutUint32(h[pktSnaplenOff:], uint32(len(p.data)))
		ne.PutUint32(h[pktLenOff:], uint32(wire))
		ne.PutUint32(h[pktStatusOff:], p.status|unix.TP_STATUS_USER)
		ne.PutUint16(h[pktMacOff:], fakeMac)
		ne.PutUint32(h[pktVlanTCIOff:], uint32(p.tci))
		ne.PutUint16(h[pktVlanTPIDOff:], p.tpid)
		h[sllPkttypeOff] = p.pkttype
		vnethdr.Encode(h[fakeMac-vnetHdrLen:], &p.meta)
		copy(h[fakeMac:], p.data)
		off += next
	}
	ne.PutUint32(b[blkStatusOff:], status)
}

func blockStatusOf(mem []byte, bs, idx int) uint32 {
	return ne.Uint32(mem[idx*bs+blkStatusOff:])
}

func testPort(blocks int, offload bool) (*Port, []byte, int) {
	const bs = 8192
	mem := make([]byte, bs*blocks)
	p := &Port{
		name: "fake0", offload: offload, log: slog.New(slog.DiscardHandler),
		info: frame.Info{Name: "hostif:fake0", MTU: 1500, MaxFrame: frame.MaxFrameFor(1500, offload)},
		ring: ring{mem: mem, blockSize: bs, blocks: blocks, vnet: true},
	}
	if !offload {
		p.scratch = make([]byte, frame.MaxSuperFrame)
	}
	return p, mem, bs
}

func ethFrame(n int, seed byte) []byte {
	f := make([]byte, n)
	copy(f, []byte{0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00})
	for i := frame.EthHeaderLen; i < n; i++ {
		f[i] = seed + byte(i)
	}
	return f
}

func frames(n, size int) []frame.Frame {
	fs := make([]frame.Frame, n)
	for i := range fs {
		fs[i].Buf = make([]byte, size)
	}
	return fs
}

func TestRingRead(t *testing.T) {
	p, mem, bs := testPort(3, true)
	f1, f2, f3, f4 := ethFrame(60, 1), ethFrame(1514, 2), ethFrame(100, 3), ethFrame(200, 4)
	csum := frame.Meta{NeedsCsum: true, CsumStart: 34, CsumOffset: 16}
	putBlock(mem, bs, 0, unix.TP_STATUS_USER, []fakePkt{
		{data: f1},
		{data: ethFrame(80, 9), pkttype: unix.PACKET_OUTGOING}, // our own transmission
		{data: f2, meta: csum},
		{data: f3, status: unix.TP_STATUS_VLAN_VALID, tci: 0x2064}, // tag taken out by the kernel
	})
	putBlock(mem, bs, 1, unix.TP_STATUS_USER, []fakePkt{
		{data: ethFrame(300, 5), wire: 9000}, // truncated
		{data: f4, status: unix.TP_STATUS_VLAN_VALID | unix.TP_STATUS_VLAN_TPID_VALID, tci: 7, tpid: 0x88a8},
	})
	putBlock(mem, bs, 2, unix.TP_STATUS_KERNEL, []fakePkt{{data: ethFrame(64, 6)}}) // not ours yet

	fs := frames(2, 2048)
	if n := fill(p, fs); n != 2 {
		t.Fatalf("fill = %d, want 2 (batch full)", n)
	}
	if !bytes.Equal(fs[0].Bytes(), f1) || fs[0].Meta != (frame.Meta{}) {
		t.Errorf("frame 0 = %d bytes %+v, want f1", fs[0].N, fs[0].Meta)
	}
	if !bytes.Equal(fs[1].Bytes(), f2) || fs[1].Meta != csum {
		t.Errorf("frame 1 = %d bytes %+v, want f2 with %+v", fs[1].N, fs[1].Meta, csum)
	}
	if st := blockStatusOf(mem, bs, 0); st != unix.TP_STATUS_USER {
		t.Errorf("block 0 status %#x while partly read, want it still ours", st)
	}
	fs = frames(4, 2048)
	n := fill(p, fs)
	if n != 2 {
		t.Fatalf("second fill = %d, want 2", n)
	}
	wantTagged := func(f []byte, tpid, tci uint16) []byte {
		w := append([]byte{}, f[:12]...)
		w = append(w, byte(tpid>>8), byte(tpid), byte(tci>>8), byte(tci))
		return append(w, f[12:]...)
	}
	if w := wantTagged(f3, 0x8100, 0x2064); !bytes.Equal(fs[0].Bytes(), w) {
		t.Errorf("tagged frame = % x..., want % x...", fs[0].Bytes()[:18], w[:18])
	}
	if w := wantTagged(f4, 0x88a8, 7); !bytes.Equal(fs[1].Bytes(), w) {
		t.Errorf("802.1ad tagged frame = % x..., want % x...", fs[1].Bytes()[:18], w[:18])
	}
	for i := range 2 {
		if st := blockStatusOf(mem, bs, i); st != unix.TP_STATUS_KERNEL {
			t.Errorf("block %d status %#x after it was read, want it given back", i, st)
		}
	}
	if got := p.Outgoing.Load(); got != 1 {
		t.Errorf("Outgoing = %d, want 1", got)
	}
	c := p.Counters.Snapshot()
	if c.RxFrames != 4 || c.RxDropped != 1 || c.RxBytes != uint64(60+1514+104+204) {
		t.Errorf("counters %+v, want 4 frames of %d bytes, 1 dropped (truncated)", c, 60+1514+104+204)
	}
	if n := fill(p, fs); n != 0 {
		t.Errorf("fill with block 2 still the kernel's = %d, want 0", n)
	}
	// The kernel hands block 2 over; then block 0 again (the ring wraps).
	putBlock(mem, bs, 2, unix.TP_STATUS_USER, []fakePkt{{data: f1}})
	putBlock(mem, bs, 0, unix.TP_STATUS_USER|unix.TP_STATUS_BLK_TMO, []fakePkt{{data: f2}})
	if n := fill(p, fs); n != 2 || !bytes.Equal(fs[0].Bytes(), f1) || !bytes.Equal(fs[1].Bytes(), f2) {
		t.Errorf("after wrap: fill = %d, want f1 then f2", n)
	}
}

func TestRingDropsAndCorruptBlocks(t *testing.T) {
	p, mem, bs := testPort(2, true)
	putBlock(mem, bs, 0, unix.TP_STATUS_USER, []fakePkt{
		{data: ethFrame(1514, 1)},                   // larger than the caller's buffer
		{data: ethFrame(60, 2), meta: frame.Meta{}}, // fine
	})
	// The second packet of block 0 carries an unknown GSO type.
	h := mem[blkHdrLen+((fakeMac+1514+7)&^7):]
	h[fakeMac-vnetHdrLen+1] = 3 // UFO
	putBlock(mem, bs, 1, unix.TP_STATUS_USER, []fakePkt{{data: ethFrame(60, 3)}, {data: ethFrame(60, 4)}})
	ne.PutUint16(mem[bs+blkHdrLen+pktMacOff:], 20) // tp_mac inside the header: nonsense
	fs := frames(4, 1000)
	if n := fill(p, fs); n != 0 {
		t.Errorf("fill = %d, want 0", n)
	}
	if c := p.Counters.Snapshot(); c.RxDropped != 3 || c.RxFrames != 0 {
		t.Errorf("counters %+v, want 3 dropped (too big, bad GSO, corrupt block)", c)
	}
	for i := range 2 {
		if st := blockStatusOf(mem, bs, i); st != unix.TP_STATUS_KERNEL {
			t.Errorf("block %d status %#x, want it given back", i, st)
		}
	}
}

// tcp4Superframe returns a TCP/IPv4 superframe of payload bytes with partial checksum
// metadata, as a veth or TAP hands one over.
func tcp4Superframe(payload int) ([]byte, frame.Meta) {
	f := ethFrame(14+20+20+payload, 7)
	ip := f[14:]
	ip[0], ip[1] = 0x45, 0
	binary.BigEndian.PutUint16(ip[2:], uint16(20+20+payload))
	binary.BigEndian.PutUint16(ip[4:], 1)
	ip[6], ip[7], ip[8], ip[9] = 0x40, 0, 64, 6
	ip[10], ip[11] = 0, 0
	copy(ip[12:], []byte{10, 0, 0, 1, 10, 0, 0, 2})
	var s uint32
	for i := 0; i < 20; i += 2 {
		s += uint32(binary.BigEndian.Uint16(ip[i:]))
	}
	for s > 0xffff {
		s = s&0xffff + s>>16
	}
	binary.BigEndian.PutUint16(ip[10:], ^uint16(s))
	tcp := ip[20:]
	binary.BigEndian.PutUint16(tcp[0:], 5001)
	binary.BigEndian.PutUint16(tcp[2:], 40000)
	binary.BigEndian.PutUint32(tcp[4:], 1000)
	binary.BigEndian.PutUint32(tcp[8:], 1)
	tcp[12], tcp[13] = 5<<4, 0x18 // PSH|ACK
	binary.BigEndian.PutUint16(tcp[14:], 512)
	binary.BigEndian.PutUint16(tcp[16:], 0)
	return f, frame.Meta{GSO: frame.GSOTCPv4, NeedsCsum: true, HdrLen: 54, GSOSize: 1448, CsumStart: 34, CsumOffset: 16}
}

func TestRingSoftwareSegmentation(t *testing.T) {
	p, _, _ := testPort(1, false)
	p.ring = ring{mem: make([]byte, 128<<10), blockSize: 128 << 10, blocks: 1, vnet: true}
	mem, bs := p.ring.mem, p.ring.blockSize
	sf, m := tcp4Superframe(10 * 1448)
	putBlock(mem, bs, 0, unix.TP_STATUS_USER, []fakePkt{{data: sf, meta: m}})
	var got []frame.Frame
	for range 3 { // 10 segments through batches of 4: the rest waits for the next read
		fs := frames(4, p.info.MaxFrame)
		n := fill(p, fs)
		got = append(got, fs[:n]...)
	}
	if len(got) != 10 {
		t.Fatalf("read %d segments, want 10", len(got))
	}
	for i, f := range got {
		if f.N != 14+20+20+1448 || f.Meta.GSO != frame.GSONone || f.Meta.NeedsCsum {
			t.Errorf("segment %d: %d bytes, meta %+v; want a plain 1502-byte frame", i, f.N, f.Meta)
		}
		if seq := binary.BigEndian.Uint32(f.Buf[14+20+4:]); seq != uint32(1000+1448*i) {
			t.Errorf("segment %d: seq %d, want %d", i, seq, 1000+1448*i)
		}
	}
	if p.Segmented.Load() != 10 || len(p.pending) != 0 {
		t.Errorf("Segmented = %d, pending %d; want 10, 0", p.Segmented.Load(), len(p.pending))
	}
}

func TestOpenErrors(t *testing.T) {
	for _, name := range []string{"", "a-name-longer-than-15"} {
		if _, err := Open(Options{Name: name, Logger: slog.New(slog.DiscardHandler)}); err == nil || !strings.Contains(err.Error(), "invalid name") {
			t.Errorf("Open(%q) = %v, want an invalid-name error", name, err)
		}
	}
	if os.Geteuid() != 0 {
		// Without CAP_NET_RAW the packet socket itself is refused.
		_, err := Open(Options{Name: "lo", Logger: slog.New(slog.DiscardHandler)})
		if !errors.Is(err, ErrPermission) {
			t.Errorf("Open as non-root = %v, want ErrPermission", err)
		}
		return
	}
	// As root, in the test's own namespace: only look-ups that change nothing. The
	// permission check runs in a copy of this test as nobody without capabilities.
	if setpriv, err := exec.LookPath("setpriv"); err == nil {
		cmd := exec.Command(setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all",
			os.Args[0], "-test.run=^TestOpenErrors$", "-test.count=1")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "PASS") {
			t.Errorf("TestOpenErrors as nobody: %v: %s", err, out)
		}
	} else {
		t.Logf("setpriv not found: the permission error is checked only when run as non-root")
	}
	if _, err := Open(Options{Name: "vnonexist0", Logger: slog.New(slog.DiscardHandler)}); !errors.Is(err, ErrNoInterface) {
		t.Errorf("Open(missing) = %v, want ErrNoInterface", err)
	}
	if _, err := Open(Options{Name: "lo", Logger: slog.New(slog.DiscardHandler)}); !errors.Is(err, ErrNotEthernet) {
		t.Errorf("Open(lo) = %v, want ErrNotEthernet", err)
	}
}

func fill(p *Port, fs []frame.Frame) int {
	n, _ := p.fill(-1, fs)
	return n
}

func TestTakeInPlace(t *testing.T) {
	p, _, _ := testPort(1, true)
	f0 := ethFrame(100, 1)
	f := frame.Frame{Buf: make([]byte, 200)}
	copy(f.Buf, f0)
	var h [vnetHdrLen]byte
	m := frame.Meta{NeedsCsum: true, CsumStart: 34, CsumOffset: 16}
	vnethdr.Encode(h[:], &m)
	pk := rxPacket{data: f.Buf[:100], wireLen: 100, vnet: h[:], status: unix.TP_STATUS_VLAN_VALID, vlanTCI: 0x0123}
	if !p.takeInPlace(&pk, &f) {
		t.Fatalf("takeInPlace rejected a tagged frame")
	}
	want := append(append(append([]byte{}, f0[:12]...), 0x81, 0x00, 0x01, 0x23), f0[12:]...)
	if !bytes.Equal(f.Bytes(), want) {
		t.Errorf("frame = % x, want % x", f.Bytes()[:20], want[:20])
	}
	if f.Meta.CsumStart != 38 || !f.Meta.NeedsCsum {
		t.Errorf("meta %+v, want CsumStart moved past the tag to 38", f.Meta)
	}
	pk = rxPacket{data: f.Buf[:100], wireLen: 1500, vnet: h[:]}
	if p.takeInPlace(&pk, &f) {
		t.Errorf("takeInPlace accepted a truncated frame")
	}
	pk = rxPacket{data: f.Buf[:100], wireLen: 100, vnet: h[:], pkttype: unix.PACKET_OUTGOING}
	if p.takeInPlace(&pk, &f) || p.Outgoing.Load() != 1 {
		t.Errorf("takeInPlace accepted an outgoing frame")
	}
	p.flushRx() // fill does this after each batch
	if c := p.Counters.Snapshot(); c.RxFrames != 1 || c.RxDropped != 1 {
		t.Errorf("counters %+v, want 1 frame, 1 dropped", c)
	}
}

// BenchmarkRingRead measures the user-space side of the receive path: walking ready
// ring blocks, decoding headers and copying frames into the caller's buffers, 64 per
// ReadFrames call, blocks given back and reused.
func BenchmarkRingRead(b *testing.B) {
	for _, size := range []int{64, 1514, 65000} {
		b.Run(fmt.Sprintf("frame=%d", size), func(b *testing.B) {
			const bs = 256 << 10
			p, _, _ := testPort(1, true)
			mem := make([]byte, bs*2)
			p.ring = ring{mem: mem, blockSize: bs, blocks: 2, vnet: true}
			per := max(1, min(64, (bs-blkHdrLen)/((fakeMac+size+7)&^7)))
			pkts := make([]fakePkt, per)
			for i := range pkts {
				pkts[i] = fakePkt{data: ethFrame(size, byte(i))}
			}
			putBlock(mem, bs, 0, unix.TP_STATUS_USER, pkts)
			putBlock(mem, bs, 1, unix.TP_STATUS_USER, pkts)
			fs := frames(64, max(size, 2048))
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; {
				n := fill(p, fs[:min(per, 64)])
				if n == 0 { // both blocks were given back: hand them over again
					blockStatus(mem[:bs]).Store(unix.TP_STATUS_USER)
					blockStatus(mem[bs:]).Store(unix.TP_STATUS_USER)
					continue
				}
				i += n
			}
		})
	}
}

func TestRecvPacketAuxdata(t *testing.T) {
	s := newRecvState()
	buf := ethFrame(100, 1)
	s.msgs[0].Len = uint32(vnetHdrLen + len(buf))
	s.names[0].Pkttype = unix.PACKET_OTHERHOST
	ctrl := s.ctrl[:auxSpace]
	h := (*unix.Cmsghdr)(unsafe.Pointer(&ctrl[0]))
	h.Level, h.Type = unix.SOL_PACKET, unix.PACKET_AUXDATA
	h.SetLen(unix.CmsgLen(int(unsafe.Sizeof(unix.TpacketAuxdata{}))))
	aux := (*unix.TpacketAuxdata)(unsafe.Pointer(&ctrl[unix.CmsgLen(0)]))
	*aux = unix.TpacketAuxdata{Status: unix.TP_STATUS_VLAN_VALID | unix.TP_STATUS_VLAN_TPID_VALID, Len: 100, Snaplen: 100, Vlan_tci: 42, Vlan_tpid: 0x88a8}
	s.msgs[0].Hdr.SetControllen(auxSpace)
	var pk rxPacket
	s.packet(0, buf, &pk)
	if len(pk.data) != 100 || pk.wireLen != 100 || pk.pkttype != unix.PACKET_OTHERHOST ||
		pk.status&unix.TP_STATUS_VLAN_VALID == 0 || pk.vlanTCI != 42 || pk.vlanTPID != 0x88a8 {
		t.Errorf("packet() = %d bytes of %d, type %d, status %#x, tci %d, tpid %#x", len(pk.data), pk.wireLen, pk.pkttype, pk.status, pk.vlanTCI, pk.vlanTPID)
	}
	// Truncated by the kernel: the frame's length exceeds what arrived.
	s.msgs[0].Hdr.Flags = unix.MSG_TRUNC
	aux.Len = 9000
	s.packet(0, buf, &pk)
	if pk.wireLen <= len(pk.data) {
		t.Errorf("truncated packet: wireLen %d, data %d; want it recognised as truncated", pk.wireLen, len(pk.data))
	}
}
