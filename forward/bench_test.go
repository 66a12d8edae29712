package forward

import (
	"io"
	"net"
	"net/netip"
	"runtime"
	"runtime/debug"
	"testing"
)

// BenchmarkHeldTCPConns holds max_conns (1024) connections through a forward into a
// gVisor namespace's echo server, each having relayed one 1 KiB message both ways,
// and reports the resident memory they cost. One op is the whole set; run with
// -benchtime=1x.
func BenchmarkHeldTCPConns(b *testing.B) {
	const conns = 1024
	ns := floodNamespace(b)
	ln, err := ns.Listen("tcp4", "127.0.0.1:7")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	msg := make([]byte, 1024)
	for range b.N {
		f, err := Start(Options{Protocol: "tcp", Listen: netip.MustParseAddrPort("127.0.0.1:0"),
			Target: netip.MustParseAddrPort("127.0.0.1:7"), Dialer: func() Dialer { return ns }, MaxConns: conns})
		if err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		debug.FreeOSMemory()
		before := rssBytes(b)
		held := make([]net.Conn, 0, conns)
		for range conns {
			c, err := net.Dial("tcp", f.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			held = append(held, c)
			if _, err := c.Write(msg); err != nil {
				b.Fatal(err)
			}
			if _, err := io.ReadFull(c, msg); err != nil {
				b.Fatal(err)
			}
		}
		growth := rssBytes(b) - before
		if st := f.Stats(); st.Active != conns || st.Refused != 0 {
			b.Fatalf("Stats() = %+v, want %d active", st, conns)
		}
		b.ReportMetric(float64(growth)/(1<<20), "RSS-MiB")
		b.ReportMetric(float64(growth)/conns/1024, "KiB/conn")
		for _, c := range held {
			c.Close()
		}
		f.Close()
	}
}
