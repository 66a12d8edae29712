package service

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// hostNet runs the services on the host loopback for these tests.
type hostNet struct{}

func (hostNet) Listen(network, addr string) (net.Listener, error) {
	return net.Listen(network, "127.0.0.1"+addr)
}
func (hostNet) ListenPacket(network, addr string) (net.PacketConn, error) {
	return net.ListenPacket(network, "127.0.0.1"+addr)
}

func TestServices(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	addrs := func() []netip.Prefix { return []netip.Prefix{netip.MustParsePrefix("10.0.0.10/24")} }
	tests := []struct {
		kind  string
		check func(t *testing.T, s *Service)
	}{
		{"echo", func(t *testing.T, s *Service) {
			c, err := net.Dial("tcp", s.ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(3 * time.Second))
			c.Write([]byte("hello"))
			c.(*net.TCPConn).CloseWrite()
			b, err := io.ReadAll(c)
			if string(b) != "hello" || err != nil {
				t.Errorf("TCP echo = %q, %v; want \"hello\" then EOF", b, err)
			}
			u, _ := net.Dial("udp", s.pc.LocalAddr().String())
			defer u.Close()
			u.SetDeadline(time.Now().Add(3 * time.Second))
			u.Write([]byte("dgram"))
			buf := make([]byte, 16)
			n, err := u.Read(buf)
			if string(buf[:n]) != "dgram" || err != nil {
				t.Errorf("UDP echo = %q, %v; want \"dgram\"", buf[:n], err)
			}
		}},
		{"discard", func(t *testing.T, s *Service) {
			c, err := net.Dial("tcp", s.ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(3 * time.Second))
			c.Write(make([]byte, 100000))
			c.(*net.TCPConn).CloseWrite()
			if b, err := io.ReadAll(c); len(b) != 0 || err != nil {
				t.Errorf("discard answered %d bytes, %v; want 0 and EOF", len(b), err)
			}
		}},
		{"http", func(t *testing.T, s *Service) {
			resp, err := http.Get("http://" + s.ln.Addr().String() + "/info.json")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var i Info
			if err := json.NewDecoder(resp.Body).Decode(&i); err != nil || i.Namespace != "alpha" || len(i.Addresses) != 1 || !strings.HasPrefix(i.Client, "127.0.0.1:") {
				t.Errorf("GET /info.json = %+v, %v; want alpha, 1 address, a 127.0.0.1 client", i, err)
			}
			page, err := http.Get("http://" + s.ln.Addr().String() + "/")
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(page.Body)
			page.Body.Close()
			if !strings.Contains(string(b), "namespace alpha") {
				t.Errorf("GET / = %q, want it to name namespace alpha", b)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.kind, func(t *testing.T) {
			s, err := Start(hostNet{}, Options{Kind: tt.kind, Listen: ":0", Namespace: "alpha", Addresses: addrs})
			if err != nil {
				t.Fatalf("Start(%s) = %v", tt.kind, err)
			}
			tt.check(t, s)
			s.Close()
			s.Close()
		})
	}
	if _, err := Start(hostNet{}, Options{Kind: "gopher", Listen: ":0"}); err == nil {
		t.Errorf("Start(gopher) = nil error, want not available")
	}
}
