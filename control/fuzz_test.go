package control

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vnetd/vnetd/config"
	"github.com/vnetd/vnetd/daemon"
)

// fuzzLab is a small lab every control API route has something to report on: two
// switches, a router, namespaces with services, a DHCP server.
const fuzzLab = `
[[switch]]
name = "lan0"
[[switch]]
name = "lan1"
[[namespace]]
name = "alpha"
  [[namespace.nic]]
  name = "eth0"
  switch = "lan0"
  addresses = ["10.0.0.10/24"]
  [[namespace.route]]
  to = "0.0.0.0/0"
  via = "10.0.0.1"
  [[namespace.service]]
  kind = "http"
  [[namespace.service]]
  kind = "dhcp"
  nic = "eth0"
  range = "10.0.0.100-10.0.0.110"
[[namespace]]
name = "gamma"
  [[namespace.nic]]
  name = "eth0"
  switch = "lan1"
  addresses = ["10.0.1.10/24"]
[[router]]
name = "r1"
  [[router.interface]]
  switch = "lan0"
  addresses = ["10.0.0.1/24"]
  [[router.interface]]
  switch = "lan1"
  addresses = ["10.0.1.1/24"]
`

// newAPILab runs fuzzLab in an in-memory daemon and returns the API's handler.
func newAPILab(tb testing.TB) (http.Handler, *daemon.Daemon) {
	tb.Helper()
	c, err := config.Parse("fuzz.toml", []byte(fuzzLab))
	if err != nil {
		tb.Fatalf("Parse(fuzz.toml) = %v", err)
	}
	d := daemon.New(daemon.Options{Logger: slog.New(slog.DiscardHandler)})
	tb.Cleanup(func() { d.Close() })
	if err := d.Apply(c); err != nil {
		tb.Fatalf("Apply(fuzz.toml) = %v", err)
	}
	return handler(ServerOptions{Daemon: d, Logger: slog.New(slog.DiscardHandler)}), d
}

// loopbackOnly reports whether a POST /v1/forwards body would only listen on loopback
// (the fuzzer must not open host ports on other addresses).
func loopbackOnly(body []byte) bool {
	var spec config.ForwardSpec
	if json.Unmarshal(body, &spec) != nil {
		return true // refused before anything listens
	}
	ap, err := netip.ParseAddrPort(spec.Listen)
	return err == nil && ap.Addr().IsLoopback()
}

// FuzzAPI sends arbitrary requests (method, path, query, body) to the control API of
// a running lab: nothing may panic, no answer is a 5xx (bad input is the client's
// error) except 501 for reload on a daemon without a file, and every JSON answer is
// valid JSON. Streams (capture, ping) end with the request's short deadline.
func FuzzAPI(f *testing.F) {
	h, d := newAPILab(f)
	for _, s := range [][4]string{
		{"GET", "/v1/status", "", ""},
		{"GET", "/v1/fdb/lan0", "", ""},
		{"GET", "/v1/ns/alpha/leases", "", ""},
		{"GET", "/v1/ns/alpha/sockets", "", ""},
		{"GET", "/v1/ns/nope/addr", "", ""},
		{"GET", "/v1/router/r1", "", ""},
		{"GET", "/v1/router/r1/neigh", "", ""},
		{"GET", "/v1/topology", "aggregate=-1", ""},
		{"GET", "/v1/topology", "aggregate=99999999999999999999", ""},
		{"GET", "/v1/capture/lan0", "count=-5", ""},
		{"GET", "/v1/capture/lan0", "count=1&port=alpha.eth0", ""},
		{"GET", "/v1/ping/alpha/10.0.1.10", "count=1", ""},
		{"GET", "/v1/ping/alpha/10.0.1.10", "count=1000000000000", ""},
		{"GET", "/v1/vxlan/lan0", "", ""},
		{"GET", "/v1/check", "", ""},
		{"POST", "/v1/forwards", "", `{"listen":"127.0.0.1:0","namespace":"alpha","target":"10.0.0.10:80"}`},
		{"POST", "/v1/forwards", "", `{"listen":"127.0.0.1:1","namespace":"alpha","target":"10.0.0.10:80","max_conns":-1}`},
		{"DELETE", "/v1/forwards/tcp/127.0.0.1:1", "", ""},
		{"POST", "/v1/impair", "", `{"switch":"lan0","port":"alpha.eth0","delay":"10ms","loss":1.5}`},
		{"POST", "/v1/trace", "", `{"switch":"lan0","port":"alpha.eth0","src":"10.0.0.10","dst":"10.0.1.10","proto":"tcp","dport":80,"ttl":-1,"size":99999999}`},
		{"POST", "/v1/reload", "", ""},
		{"PUT", "/v1/%zz", "a=%", "{"},
	} {
		f.Add(s[0], s[1], s[2], []byte(s[3]))
	}
	f.Fuzz(func(t *testing.T, method, path, query string, body []byte) {
		if method == "POST" && strings.HasPrefix(path, "/v1/forwards") && !loopbackOnly(body) {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		r, err := http.NewRequestWithContext(ctx, method, "http://vnetd"+path+"?"+query, bytes.NewReader(body))
		if err != nil || r.URL.Path == "" || r.URL.Host != "vnetd" {
			return
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code >= 500 && w.Code != http.StatusNotImplemented {
			t.Fatalf("%s %s?%s = %d %s", method, path, query, w.Code, w.Body.String())
		}
		if strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") && !json.Valid(w.Body.Bytes()) {
			t.Fatalf("%s %s?%s = %d with invalid JSON %q", method, path, query, w.Code, w.Body.String())
		}
		for _, fw := range d.Forwards() { // runtime forwards hold host sockets: drop them
			d.RemoveForward(fw.Name)
		}
	})
}
