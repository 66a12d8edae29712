// Command peersock is bench/peers.sh's helper for the VM-facing socket rows: a load
// generator speaking QEMU's "-netdev stream" framing (4-byte big-endian length, then the
// Ethernet frame) and the UDP sinks that count what arrives. Modes:
//
//   - -vnetd SOCK: a vnetd switch with a stream socket listener (package vmsock) at SOCK
//     and a vnetd namespace (nsstack) with address -addr on it, running a UDP discard
//     sink on -port. Prints "ready", runs until SIGINT/SIGTERM.
//   - -sink ADDR: the same UDP discard sink on a kernel socket bound to ADDR in the
//     current network namespace (where gvproxy delivers: its UDP forwarder relays to
//     kernel sockets). Prints "ready", runs until SIGINT/SIGTERM.
//   - -gen SOCK: connects to SOCK as a VM would, resolves -via's MAC with ARP, then
//     writes UDP/IPv4 frames of -size bytes from -src to -dst:-port as fast as the socket
//     takes them for -warmup and then -t seconds, and prints the frames/s and Gbit/s the
//     sink counted during those -t seconds and the frames/s it wrote.
//
// Both sinks answer a connection on their -stat unix socket with "datagrams bytes\n",
// their totals so far; the generator reads them at the start and the end of its window.
package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vnetd/vnetd/frame"
	"github.com/vnetd/vnetd/nsstack"
	l2switch "github.com/vnetd/vnetd/switch"
	"github.com/vnetd/vnetd/tap"
	"github.com/vnetd/vnetd/vmsock"
)

func main() {
	vnetdSock := flag.String("vnetd", "", "run a vnetd switch with a stream socket here and a namespace with the UDP sink")
	addr := flag.String("addr", "10.0.2.2/24", "the vnetd namespace's address (-vnetd)")
	sinkAddr := flag.String("sink", "", "run the UDP sink on a kernel socket bound to this address:port")
	stat := flag.String("stat", "", "the sink's counter socket (unix path)")
	port := flag.Int("port", 9, "UDP port of the sink (-vnetd) and of the frames (-gen)")
	gen := flag.String("gen", "", "generate frames into this stream socket (unix path)")
	src := flag.String("src", "10.0.2.15", "the generator's IPv4 address (-gen)")
	dst := flag.String("dst", "10.0.2.2", "the frames' destination IPv4 address (-gen)")
	via := flag.String("via", "", "whose MAC the frames go to, resolved with ARP; empty means -dst (-gen)")
	size := flag.Int("size", 60, "Ethernet frame size in bytes, 60 to 1514 (-gen)")
	secs := flag.Float64("t", 3, "seconds to measure (-gen)")
	warmup := flag.Float64("warmup", 0.5, "seconds to send before measuring (-gen)")
	tcpPort := flag.Int("tcpport", 5001, "TCP port of the sinks' byte sink (-vnetd, -sink) and of -tcp's stream")
	sendTo := flag.String("send", "", "stream TCP to this address:port from the current netns (measured at the sink, -stat)")
	tapvm := flag.String("tapvm", "", "relay between a new TAP (-tap) and this stream socket, as QEMU does for a guest")
	tapName := flag.String("tap", "vm0", "the TAP's name (-tapvm)")
	flag.BoolVar(&noCoalesce, "nocoalesce", false, "with -vnetd: the socket does not merge a guest's TCP segments into superframes")
	flag.Parse()
	var c counter
	switch {
	case *gen != "":
		if err := generate(*gen, *stat, *src, *dst, *via, *port, *size, *warmup, *secs); err != nil {
			fail(err)
		}
		return
	case *sendTo != "":
		if err := sendTCP(*sendTo, *stat, *warmup, *secs); err != nil {
			fail(err)
		}
		return
	case *tapvm != "":
		if err := tapVM(*tapvm, *tapName); err != nil {
			fail(err)
		}
		return
	case *vnetdSock != "":
		stop, err := serveVnetd(*vnetdSock, *addr, *port, *tcpPort, &c)
		if err != nil {
			fail(err)
		}
		defer stop()
	case *sinkAddr != "":
		pc, err := net.ListenPacket("udp", *sinkAddr)
		if err != nil {
			fail(err)
		}
		defer pc.Close()
		go c.sink(pc)
		host, _, _ := net.SplitHostPort(*sinkAddr)
		ln, err := net.Listen("tcp", net.JoinHostPort(host, fmt.Sprint(*tcpPort)))
		if err != nil {
			fail(err)
		}
		defer ln.Close()
		go c.sinkTCP(ln)
	default:
		fail(errors.New("one of -vnetd, -sink, -gen is needed"))
	}
	if err := c.serveStat(*stat); err != nil {
		fail(err)
	}
	fmt.Println("ready")
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
}

// counter counts the datagrams a sink received.
type counter struct{ n, bytes atomic.Uint64 }

// sink reads datagrams from pc until it fails, counting them.
func (c *counter) sink(pc net.PacketConn) {
	buf := make([]byte, 65536)
	for {
		n, _, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		c.n.Add(1)
		c.bytes.Add(uint64(n))
	}
}

// sinkTCP accepts connections on ln and reads each to its end, counting the bytes.
func (c *counter) sinkTCP(ln net.Listener) {
	for {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer conn.Close()
			buf := make([]byte, 256<<10)
			for {
				n, err := conn.Read(buf)
				c.bytes.Add(uint64(n))
				if err != nil {
					return
				}
			}
		}()
	}
}

// serveStat answers every connection on the unix socket path with the totals.
func (c *counter) serveStat(path string) error {
	if path == "" {
		return errors.New("-stat is needed")
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return err
	}
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprintf(conn, "%d %d\n", c.n.Load(), c.bytes.Load())
			conn.Close()
		}
	}()
	return nil
}

// serveVnetd starts a switch, a stream socket listener on it at path and a namespace
// with address addr whose UDP port port and TCP port tcpPort feed c.
func serveVnetd(path, addr string, port, tcpPort int, c *counter) (func(), error) {
	p, err := netip.ParsePrefix(addr)
	if err != nil {
		return nil, err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	sw := l2switch.New(l2switch.Config{Name: "sock", Logger: log})
	ns, err := nsstack.New(nsstack.Options{Name: "sink", Logger: log})
	if err != nil {
		sw.Close()
		return nil, err
	}
	stop := func() { ns.Close(); sw.Close() }
	nic, err := ns.AddNIC(nsstack.NICConfig{Name: "eth0"})
	if err == nil {
		err = ns.AddAddress("eth0", p)
	}
	if err == nil {
		err = sw.AddPort(nic, l2switch.PortConfig{})
	}
	var pc net.PacketConn
	if err == nil {
		pc, err = ns.ListenPacket("udp", fmt.Sprintf("%s:%d", p.Addr(), port))
	}
	var ln net.Listener
	if err == nil {
		ln, err = ns.Listen("tcp", fmt.Sprintf("%s:%d", p.Addr(), tcpPort))
	}
	if err != nil {
		stop()
		return nil, err
	}
	go c.sink(pc)
	go c.sinkTCP(ln)
	l, err := listenOn(sw, path, log)
	if err != nil {
		stop()
		return nil, err
	}
	return func() { l.Close(); stop() }, nil
}

// noCoalesce is -nocoalesce.
var noCoalesce bool

// listenOn starts a stream socket listener at path whose connections become ports of sw.
func listenOn(sw *l2switch.Switch, path string, log *slog.Logger) (*vmsock.Listener, error) {
	return vmsock.Listen(vmsock.Options{
		Path: path, Logger: log, NoCoalesce: noCoalesce,
		OnPort: func(fp frame.Port, name string) {
			if err := sw.AddPort(fp, l2switch.PortConfig{Name: name}); err != nil {
				log.Warn("vm port refused", "port", name, "err", err)
				fp.Close()
			}
		},
		// As in the daemon: RemovePort waits for the goroutine this runs on.
		OnPortGone: func(name string) { go sw.RemovePort(name) },
	})
}

// sendTCP is -send: streams TCP from the current network namespace to hostport for
// warmup and then secs seconds and prints the Gbit/s the sink counted in those secs
// seconds.
func sendTCP(hostport, stat string, warmup, secs float64) error {
	conn, err := net.DialTimeout("tcp", hostport, 5*time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	buf := make([]byte, 256<<10)
	// send writes until the deadline.
	send := func(until time.Time) error {
		conn.SetWriteDeadline(until.Add(2 * time.Second))
		for time.Now().Before(until) {
			if _, err := conn.Write(buf); err != nil {
				return err
			}
		}
		return nil
	}
	if err := send(time.Now().Add(time.Duration(warmup * float64(time.Second)))); err != nil {
		return err
	}
	_, b0, err := readStat(stat)
	if err != nil {
		return err
	}
	t0 := time.Now()
	if err := send(t0.Add(time.Duration(secs * float64(time.Second)))); err != nil {
		return err
	}
	_, b1, err := readStat(stat)
	if err != nil {
		return err
	}
	fmt.Printf("%.3f\n", float64(b1-b0)*8/1e9/time.Since(t0).Seconds())
	return nil
}

// tapVM is -tapvm: what QEMU does for a guest whose NIC has a "-netdev stream" backend,
// with a kernel netns as the guest: it creates TAP name (no offloads, as a stream
// backend has none: the guest's kernel segments to the MTU) in the current network
// namespace, connects to the stream socket at path, and relays frames both ways until
// either side ends.
func tapVM(path, name string) error {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	t, err := tap.Open(tap.Options{Name: name, Create: true, MTU: 1500, Logger: log})
	if err != nil {
		return err
	}
	defer t.Close()
	conn, err := net.Dial("unix", path)
	if err != nil {
		return err
	}
	defer conn.Close()
	done := make(chan error, 2)
	go func() { // guest -> socket: one write per batch read
		frames := make([]frame.Frame, 64)
		for i := range frames {
			frames[i].Buf = make([]byte, t.Info().MaxFrame)
		}
		var out []byte
		for {
			n, err := t.ReadFrames(frames)
			if err != nil {
				done <- err
				return
			}
			out = out[:0]
			for _, f := range frames[:n] {
				out = append(binary.BigEndian.AppendUint32(out, uint32(f.N)), f.Buf[:f.N]...)
			}
			if _, err := conn.Write(out); err != nil {
				done <- err
				return
			}
		}
	}()
	go func() { // socket -> guest: everything already buffered in one write
		r := bufio.NewReaderSize(conn, 256<<10)
		frames := make([]frame.Frame, 64)
		for i := range frames {
			frames[i].Buf = make([]byte, 65536)
		}
		var hdr [4]byte
		for {
			n := 0
			for n < len(frames) && (n == 0 || r.Buffered() >= 4) {
				if _, err := io.ReadFull(r, hdr[:]); err != nil {
					done <- err
					return
				}
				ln := binary.BigEndian.Uint32(hdr[:])
				if ln > 65536 {
					done <- fmt.Errorf("frame length %d", ln)
					return
				}
				if _, err := io.ReadFull(r, frames[n].Buf[:ln]); err != nil {
					done <- err
					return
				}
				frames[n].N = int(ln)
				n++
			}
			if _, err := t.WriteFrames(frames[:n]); err != nil {
				done <- err
				return
			}
		}
	}()
	fmt.Println("ready")
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	select {
	case <-sig:
		return nil
	case err := <-done:
		return err
	}
}

var (
	vmMAC     = frame.MAC{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}
	broadcast = frame.MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
)

// generate runs the generator against the stream socket at path (see the package doc).
func generate(path, stat, src, dst, via string, port, size int, warmup, secs float64) error {
	if size < 60 || size > 1514 {
		return fmt.Errorf("-size %d: want 60 to 1514", size)
	}
	s, err := netip.ParseAddr(src)
	if err != nil {
		return err
	}
	d, err := netip.ParseAddr(dst)
	if err != nil {
		return err
	}
	v := d
	if via != "" {
		if v, err = netip.ParseAddr(via); err != nil {
			return err
		}
	}
	if !s.Is4() || !d.Is4() || !v.Is4() {
		return errors.New("-src, -dst and -via must be IPv4")
	}
	conn, err := net.Dial("unix", path)
	if err != nil {
		return err
	}
	defer conn.Close()
	replies := make(chan frame.MAC, 1)
	go readFrames(conn, v, replies)
	var peer frame.MAC
	for try := 0; ; try++ {
		if try == 20 {
			return fmt.Errorf("no ARP reply for %s", v)
		}
		if _, err := conn.Write(withLength(arpRequest(s, v))); err != nil {
			return err
		}
		select {
		case peer = <-replies:
		case <-time.After(250 * time.Millisecond):
			continue
		}
		break
	}
	const perWrite = 256
	one := withLength(udpFrame(peer, s, d, port, size))
	buf := make([]byte, 0, perWrite*len(one))
	for range perWrite {
		buf = append(buf, one...)
	}
	// send writes buf until the deadline, returning the frames written.
	send := func(until time.Time) (uint64, error) {
		var n uint64
		conn.SetWriteDeadline(until.Add(2 * time.Second))
		for time.Now().Before(until) {
			if _, err := conn.Write(buf); err != nil {
				return n, err
			}
			n += perWrite
		}
		return n, nil
	}
	if _, err := send(time.Now().Add(time.Duration(warmup * float64(time.Second)))); err != nil {
		return err
	}
	n0, _, err := readStat(stat)
	if err != nil {
		return err
	}
	t0 := time.Now()
	sent, err := send(t0.Add(time.Duration(secs * float64(time.Second))))
	el := time.Since(t0).Seconds()
	if err != nil {
		return err
	}
	n1, _, err := readStat(stat)
	if err != nil {
		return err
	}
	got := float64(n1-n0) / el
	fmt.Printf("%.0f %.3f %.0f\n", got, got*float64(size)*8/1e9, float64(sent)/el)
	return nil
}

// readStat returns a sink's totals.
func readStat(path string) (n, bytes uint64, err error) {
	c, err := net.Dial("unix", path)
	if err != nil {
		return 0, 0, err
	}
	defer c.Close()
	_, err = fmt.Fscan(c, &n, &bytes)
	return n, bytes, err
}

// readFrames reads the peer's frames until the connection ends, sending the MAC of the
// first ARP reply for who on replies; everything else is discarded.
func readFrames(c net.Conn, who netip.Addr, replies chan<- frame.MAC) {
	r := bufio.NewReaderSize(c, 64<<10)
	var hdr [4]byte
	buf := make([]byte, 65536)
	sent := false
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return
		}
		n := binary.BigEndian.Uint32(hdr[:])
		if n > uint32(len(buf)) {
			return
		}
		f := buf[:n]
		if _, err := io.ReadFull(r, f); err != nil {
			return
		}
		if sent || len(f) < 42 || binary.BigEndian.Uint16(f[12:]) != 0x0806 || binary.BigEndian.Uint16(f[20:]) != 2 {
			continue
		}
		if netip.AddrFrom4([4]byte(f[28:32])) == who {
			replies <- frame.MAC(f[22:28])
			sent = true
		}
	}
}

// withLength prefixes f with its length, as -netdev stream frames it.
func withLength(f []byte) []byte {
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(f))), f...)
}

// arpRequest asks who has tpa, from the generator's MAC and spa.
func arpRequest(spa, tpa netip.Addr) []byte {
	f := make([]byte, 60)
	copy(f[0:], broadcast[:])
	copy(f[6:], vmMAC[:])
	binary.BigEndian.PutUint16(f[12:], 0x0806)
	binary.BigEndian.PutUint16(f[14:], 1)      // Ethernet
	binary.BigEndian.PutUint16(f[16:], 0x0800) // IPv4
	f[18], f[19] = 6, 4
	binary.BigEndian.PutUint16(f[20:], 1) // request
	copy(f[22:], vmMAC[:])
	s4, t4 := spa.As4(), tpa.As4()
	copy(f[28:], s4[:])
	copy(f[38:], t4[:])
	return f
}

// udpFrame builds one Ethernet frame of size bytes carrying a UDP/IPv4 datagram from
// src:40000 to dst:port (UDP checksum 0: none, which IPv4 allows).
func udpFrame(to frame.MAC, src, dst netip.Addr, port, size int) []byte {
	f := make([]byte, size)
	copy(f[0:], to[:])
	copy(f[6:], vmMAC[:])
	binary.BigEndian.PutUint16(f[12:], 0x0800)
	ip := f[14:34]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(size-14))
	ip[6] = 0x40 // don't fragment
	ip[8], ip[9] = 64, 17
	s4, d4 := src.As4(), dst.As4()
	copy(ip[12:], s4[:])
	copy(ip[16:], d4[:])
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(ip[i:]))
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	binary.BigEndian.PutUint16(ip[10:], ^uint16(sum))
	udp := f[34:]
	binary.BigEndian.PutUint16(udp[0:], 40000)
	binary.BigEndian.PutUint16(udp[2:], uint16(port))
	binary.BigEndian.PutUint16(udp[4:], uint16(size-34))
	return f
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "peersock:", err)
	os.Exit(1)
}
