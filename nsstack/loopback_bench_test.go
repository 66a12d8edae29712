package nsstack

import (
	"context"
	"io"
	"testing"
)

// BenchmarkLoopbackTCP measures one TCP stream over a namespace's own loopback
// (127.0.0.1): gVisor's TCP with no NIC, queue or switch in the way. It bounds what
// BenchmarkSwitchedTCP can reach, since a switched stream runs the same TCP code on
// both ends plus the NIC hand-offs.
func BenchmarkLoopbackTCP(b *testing.B) {
	ns := newNS(b, "lo")
	l, err := ns.Listen("tcp", "127.0.0.1:5001")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := l.Accept()
		if err != nil {
			return
		}
		io.Copy(io.Discard, c)
		c.Close()
	}()
	c, err := ns.Dial(context.Background(), "tcp", "127.0.0.1:5001")
	if err != nil {
		b.Fatal(err)
	}
	chunk := make([]byte, 1<<20)
	b.SetBytes(int64(len(chunk)))
	b.ResetTimer()
	for range b.N {
		if _, err := c.Write(chunk); err != nil {
			b.Fatal(err)
		}
	}
	c.Close()
	<-done
	b.ReportMetric(float64(b.N)*float64(len(chunk))*8/b.Elapsed().Seconds()/1e9, "Gbit/s")
}
