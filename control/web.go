package control

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/vnetd/vnetd/daemon"
	"github.com/vnetd/vnetd/web"
)

// DefaultAggregate is how many namespaces a lab may have before the topology folds
// them into one node per switch (?aggregate=N overrides, 0 never folds).
const DefaultAggregate = 200

// serveTopology answers GET /v1/topology[?aggregate=N] with daemon.Topology.
func serveTopology(d *daemon.Daemon, w http.ResponseWriter, r *http.Request) {
	agg := DefaultAggregate
	if s := r.URL.Query().Get("aggregate"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 || n > 1_000_000 {
			writeErr(w, 400, fmt.Errorf("bad aggregate %q (0-1000000)", s))
			return
		}
		agg = n
	}
	writeJSON(w, 200, d.Topology(agg))
}

// readOnly lets only GET and HEAD requests through: the page's listener is TCP, which
// every local user can reach, so nothing there may change the lab (the unix control
// socket, checked by peer credentials, is where changes are made).
func readOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			writeErr(w, http.StatusMethodNotAllowed, errors.New("read-only listener: changes go through the control socket"))
			return
		}
		h.ServeHTTP(w, r)
	})
}

// mountWeb adds the topology page at / and the read-only API under /v1/ to mux.
func mountWeb(mux *http.ServeMux, d *daemon.Daemon) {
	mux.Handle("/v1/", readOnly(handler(ServerOptions{Daemon: d})))
	mux.Handle("/", readOnly(web.Page()))
}

// Web is a running topology page listener.
type Web struct {
	srv  *http.Server
	ln   net.Listener
	done chan struct{}
	once sync.Once
}

// ServeWeb serves the topology page and the read-only JSON API on addr (for example
// "127.0.0.1:9576").
func ServeWeb(addr string, d *daemon.Daemon, log *slog.Logger) (*Web, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("web listen %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mountWeb(mux, d)
	s := &Web{ln: ln, done: make(chan struct{}), srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: IdleTimeout, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(newCapListener(ln, d, 0)); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("web server", "err", err)
		}
	}()
	return s, nil
}

// Addr is the bound address.
func (s *Web) Addr() net.Addr { return s.ln.Addr() }

// Close stops the listener; idempotent. Open capture downloads are cut.
func (s *Web) Close() error {
	s.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if s.srv.Shutdown(ctx) != nil {
			s.srv.Close()
		}
		<-s.done
	})
	return nil
}
