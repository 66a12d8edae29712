package daemon

import (
	"fmt"
	"net"
	"testing"
)

// BenchmarkReloadAddRemoveNamespace measures one reload that adds a namespace (NIC on
// a switch, address, service) and one that removes it again.
func BenchmarkReloadAddRemoveNamespace(b *testing.B) {
	port := freePortB(b)
	a, err := parseB(fmt.Sprintf(base, port))
	if err != nil {
		b.Fatal(err)
	}
	withDelta, err := parseB(fmt.Sprintf(base, port) + delta)
	if err != nil {
		b.Fatal(err)
	}
	d := New(Options{Logger: quiet()})
	defer d.Close()
	if err := d.Apply(a); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := d.Apply(withDelta); err != nil {
			b.Fatal(err)
		}
		if err := d.Apply(a); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkForwardTCP streams 64 KiB writes from the host through a TCP forward that
// dials from namespace beta across switch lan0 to the discard service of namespace sink.
func BenchmarkForwardTCP(b *testing.B) {
	port := freePortB(b)
	src := fmt.Sprintf(base, port) + `
[[namespace]]
name = "sink"
  [[namespace.nic]]
  name = "eth0"
  switch = "lan0"
  addresses = ["10.0.0.40/24"]
  [[namespace.service]]
  kind = "discard"
[[forward]]
listen = "127.0.0.1:` + fmt.Sprint(port+1) + `"
namespace = "beta"
target = "10.0.0.40:9"
`
	c, err := parseB(src)
	if err != nil {
		b.Fatal(err)
	}
	d := New(Options{Logger: quiet()})
	defer d.Close()
	if err := d.Apply(c); err != nil {
		b.Skipf("Apply() = %v (port %d busy?)", err, port+1)
	}
	conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port+1))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	buf := make([]byte, 64<<10)
	b.SetBytes(int64(len(buf)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := conn.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
}

func freePortB(b *testing.B) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
