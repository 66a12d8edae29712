package control

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vnetd/vnetd/daemon"
)

// The control API's caps. Each listener serving the API (the control socket, and
// the web and metrics listeners when set) has its own; a refusal at any of them is
// counted by the daemon under its kind (/v1/status api.refused, /metrics
// vnetd_api_refused_total{kind}).
const (
	// DefaultMaxConns caps the connections a listener holds open at once; beyond it
	// a new connection is answered 503 with a JSON error and closed.
	DefaultMaxConns = 256
	// DefaultMaxPingStreams caps the GET /v1/ping streams running at once (each a
	// goroutine pinging once a second for up to 1000 s).
	DefaultMaxPingStreams = 32
	// DefaultMaxIperfRuns caps the POST /v1/iperf tests running at once (each up to
	// 128 TCP streams with their buffers, for up to an hour).
	DefaultMaxIperfRuns = 4
	// DefaultMaxChecks caps the GET /v1/check runs at once (each runs up to 64
	// probes in parallel).
	DefaultMaxChecks = 8
	// IdleTimeout closes a keep-alive connection that sends no new request for this
	// long, so that idle clients do not hold places under the connection cap.
	IdleTimeout = 60 * time.Second
)

// The kinds of refusal, the label of vnetd_api_refused_total.
const (
	RefusedConnections = "connections"
	RefusedCapture     = "capture"
	RefusedPing        = "ping"
	RefusedIperf       = "iperf"
	RefusedCheck       = "check"
)

// refusedKinds are every kind, so that /metrics shows each counter from 0.
var refusedKinds = []string{RefusedConnections, RefusedCapture, RefusedPing, RefusedIperf, RefusedCheck}

// apiCap counts the requests of one kind running against their cap.
type apiCap struct {
	kind string
	what string // "capture streams", for the refusal
	max  int
	open atomic.Int64
	d    *daemon.Daemon // counts refusals; nil counts nothing
}

func newAPICap(d *daemon.Daemon, kind, what string, max, def int) *apiCap {
	if max <= 0 {
		max = def
	}
	return &apiCap{kind: kind, what: what, max: max, d: d}
}

// take claims a place, or counts the refusal and reports that the cap is reached.
func (c *apiCap) take() bool {
	if c.open.Add(1) > int64(c.max) {
		c.open.Add(-1)
		if c.d != nil {
			c.d.CountAPIRefused(c.kind)
		}
		return false
	}
	return true
}

func (c *apiCap) done() { c.open.Add(-1) }

// refuse answers a request over the cap: 503 with a JSON error naming the cap.
func (c *apiCap) refuse(w http.ResponseWriter, hint string) {
	msg := fmt.Sprintf("too many %s: %d running, the cap", c.what, c.max)
	if hint != "" {
		msg += " (" + hint + ")"
	}
	writeErr(w, http.StatusServiceUnavailable, fmt.Errorf("%s", msg))
}

// limit wraps h: beyond the cap a request gets refuse's 503 instead.
func (c *apiCap) limit(hint string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !c.take() {
			c.refuse(w, hint)
			return
		}
		defer c.done()
		h(w, r)
	}
}

// maxRefusers bounds the connections being answered 503 at once (each for at most
// refuseTimeout); beyond it a connection over the cap is closed unanswered (and
// still counted).
const (
	maxRefusers   = 16
	refuseTimeout = time.Second
)

// capListener holds at most max connections open at once. A connection beyond the
// cap is not left waiting in the backlog (where a client cannot tell a busy daemon
// from a hung one): its request is read and answered 503 with a JSON error naming
// the cap, and it is closed.
type capListener struct {
	net.Listener
	max      int
	open     atomic.Int64
	refusers chan struct{}
	d        *daemon.Daemon
}

func newCapListener(ln net.Listener, d *daemon.Daemon, max int) *capListener {
	if max <= 0 {
		max = DefaultMaxConns
	}
	return &capListener{Listener: ln, max: max, refusers: make(chan struct{}, maxRefusers), d: d}
}

func (l *capListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.open.Add(1) <= int64(l.max) {
			return &capConn{Conn: c, l: l}, nil
		}
		l.open.Add(-1)
		if l.d != nil {
			l.d.CountAPIRefused(RefusedConnections)
		}
		select {
		case l.refusers <- struct{}{}:
			go func() {
				defer func() { <-l.refusers }()
				l.refuse(c)
			}()
		default:
			c.Close()
		}
	}
}

// refuse reads c's request head (so the answer follows the question, as an HTTP
// client expects), answers it 503 and closes c.
func (l *capListener) refuse(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(refuseTimeout))
	http.ReadRequest(bufio.NewReader(io.LimitReader(c, 16<<10)))
	body, _ := json.Marshal(map[string]string{"error": fmt.Sprintf("too many control connections: %d open, the cap (try again when one closes)", l.max)})
	fmt.Fprintf(c, "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s\n", len(body)+1, body)
}

// capConn gives its place under the cap back when closed.
type capConn struct {
	net.Conn
	l    *capListener
	once sync.Once
}

func (c *capConn) Close() error {
	c.once.Do(func() { c.l.open.Add(-1) })
	return c.Conn.Close()
}

// CloseWrite lets net/http half-close the connection as it does a bare one.
func (c *capConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
