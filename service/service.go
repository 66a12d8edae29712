package service

import (
	"encoding/json"

	"fmt"
	"html"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Net is where a service opens its sockets; *nsstack.Namespace satisfies it.
type Net interface {
	Listen(network, addr string) (net.Listener, error)
	ListenPacket(network, addr string) (net.PacketConn, error)
}

// Options configure one service.
type Options struct {
	// Kind is "echo", "discard" or "http".
	Kind string
	// Listen is the address inside Net, e.g. ":80".
	Listen string
	// Namespace names the namespace, for the http page and logs.
	Namespace string
	// Addresses reports the namespace's current addresses, for the http page.
	Addresses func() []netip.Prefix
	// Logger receives start/stop and errors; default slog.Default().
	Logger *slog.Logger
	// UDPLimit bounds what the UDP echo service answers (see Limiter); zero fields
	// take the defaults.
	UDPLimit LimitOptions
	// Now is the clock of the UDP rate limit; default time.Now (tests pass their own).
	Now func() time.Time
}

// Service is a running server. Close stops it and waits for its goroutines.
type Service struct {
	kind    string
	listen  string
	limit   *Limiter
	now     func() time.Time
	echoed  atomic.Uint64
	ln      net.Listener
	pc      net.PacketConn
	srv     *http.Server
	wg      sync.WaitGroup
	mu      sync.Mutex
	conns   map[net.Conn]struct{}
	closed  bool
	closeMu sync.Once
}

// Kinds lists the kinds Start knows.
var Kinds = []string{"echo", "discard", "http"}

// Start opens the service's sockets on n and serves in the background.
func Start(n Net, o Options) (*Service, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Service{kind: o.Kind, listen: o.Listen, conns: map[net.Conn]struct{}{}, now: o.Now}
	var err error
	switch o.Kind {
	case "echo", "discard":
		if s.ln, err = n.Listen("tcp", o.Listen); err != nil {
			return nil, fmt.Errorf("start %s service: %w", o.Kind, err)
		}
		if s.pc, err = n.ListenPacket("udp", o.Listen); err != nil {
			s.ln.Close()
			return nil, fmt.Errorf("start %s service: %w", o.Kind, err)
		}
		echo := o.Kind == "echo"
		if echo {
			s.limit = NewLimiter(o.UDPLimit)
		}
		s.wg.Add(2)
		go func() { defer s.wg.Done(); s.acceptLoop(echo) }()
		go func() { defer s.wg.Done(); s.packetLoop(echo) }()
	case "http":
		if s.ln, err = n.Listen("tcp", o.Listen); err != nil {
			return nil, fmt.Errorf("start http service: %w", err)
		}
		s.srv = &http.Server{Handler: Handler(o.Namespace, o.Addresses), ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(o.Logger.Handler(), slog.LevelDebug)}
		s.wg.Add(1)
		go func() { defer s.wg.Done(); s.srv.Serve(s.ln) }()
	default:
		return nil, fmt.Errorf("start service: kind %q not available in this build", o.Kind)
	}
	o.Logger.Debug("service started", "namespace", o.Namespace, "kind", o.Kind, "listen", o.Listen)
	return s, nil
}

func (s *Service) track(c net.Conn, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if add {
		if s.closed {
			return false
		}
		s.conns[c] = struct{}{}
	} else {
		delete(s.conns, c)
	}
	return true
}

func (s *Service) acceptLoop(echo bool) {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		if !s.track(c, true) {
			c.Close()
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.track(c, false)
			defer c.Close()
			if echo {
				io.Copy(c, c)
				if cw, ok := c.(interface{ CloseWrite() error }); ok {
					cw.CloseWrite()
				}
			} else {
				io.Copy(io.Discard, c)
			}
		}()
	}
}

func (s *Service) packetLoop(echo bool) {
	buf := make([]byte, 65536)
	for {
		n, from, err := s.pc.ReadFrom(buf)
		if err != nil {
			return
		}
		if echo && s.mayAnswer(from) {
			s.pc.WriteTo(buf[:n], from)
			s.echoed.Add(1)
		}
	}
}

// mayAnswer reports whether the UDP echo may answer from: never a reflecting source
// port (a reply there starts a loop), and no more often than the per-source limit.
func (s *Service) mayAnswer(from net.Addr) bool {
	ap := addrPort(from)
	if !ap.IsValid() {
		return false
	}
	if ReflectorPort(ap.Port()) || ap.Port() == s.localPort() {
		s.limit.reflector.Add(1)
		return false
	}
	return s.limit.Allow(ap, s.now())
}

func (s *Service) localPort() uint16 {
	return addrPort(s.pc.LocalAddr()).Port()
}

func addrPort(a net.Addr) netip.AddrPort {
	if u, ok := a.(*net.UDPAddr); ok {
		ap := u.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// Stats are a service's counters. Only the UDP echo counts today.
type Stats struct {
	Kind   string `json:"kind"`
	Listen string `json:"listen"`
	// Echoed is the datagrams the UDP echo answered.
	Echoed uint64 `json:"echoed"`
	// DroppedReflector is the datagrams not answered because they came from port 0,
	// a reflecting service's port (ReflectorPort) or the echo's own port.
	DroppedReflector uint64 `json:"dropped_reflector"`
	// RateLimited is the datagrams not answered because their source was over its
	// rate (LimitOptions).
	RateLimited uint64 `json:"rate_limited"`
	// Sources is the number of sources the rate limit tracks now.
	Sources int `json:"sources"`
}

// Kind is the service's kind, as given to Start.
func (s *Service) Kind() string { return s.kind }

// Stats reads the service's counters.
func (s *Service) Stats() Stats {
	st := Stats{Kind: s.kind, Listen: s.listen, Echoed: s.echoed.Load()}
	if s.limit != nil {
		st.DroppedReflector, st.RateLimited, st.Sources = s.limit.reflector.Load(), s.limit.limited.Load(), s.limit.Len()
	}
	return st
}

// Close stops the service; it is idempotent.
func (s *Service) Close() error {
	s.closeMu.Do(func() {
		if s.srv != nil {
			s.srv.Close()
		}
		if s.ln != nil {
			s.ln.Close()
		}
		if s.pc != nil {
			s.pc.Close()
		}
		s.mu.Lock()
		s.closed = true
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return nil
}

// Info is the JSON the http service's /info.json returns.
type Info struct {
	Namespace string         `json:"namespace"`
	Addresses []netip.Prefix `json:"addresses"`
	Client    string         `json:"client"`
	Time      time.Time      `json:"time"`
}

// Handler is the http service: "/" is a small page, "/info.json" the JSON Info.
func Handler(namespace string, addrs func() []netip.Prefix) http.Handler {
	info := func(r *http.Request) Info {
		i := Info{Namespace: namespace, Client: r.RemoteAddr, Time: time.Now().UTC()}
		if addrs != nil {
			i.Addresses = addrs()
		}
		return i
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /info.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(info(r))
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		i := info(r)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, "<!doctype html><title>vnetd %s</title><h1>Hello from namespace %s</h1>\n<p>Addresses: %s</p>\n<p>You are %s (as seen from inside).</p>\n<p><a href=\"/info.json\">info.json</a></p>\n",
			html.EscapeString(i.Namespace), html.EscapeString(i.Namespace), html.EscapeString(fmt.Sprint(i.Addresses)), html.EscapeString(i.Client))
	})
	return mux
}
