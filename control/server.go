package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/vnetd/vnetd/daemon"
	"github.com/vnetd/vnetd/internal/sockpath"
	"golang.org/x/sys/unix"
)

// Version is what /v1/version returns.
type Version struct {
	Version string `json:"version"`
	Go      string `json:"go"`
	GVisor  string `json:"gvisor"`
}

// ServerOptions configure a Server.
type ServerOptions struct {
	// Path is the unix socket path.
	Path string
	// Daemon is the running lab the API reports on.
	Daemon *daemon.Daemon
	// Version is reported by /v1/version.
	Version Version
	// Logger receives errors; default slog.Default().
	Logger *slog.Logger
	// Reload re-reads the daemon's config file and applies it (POST /v1/reload);
	// nil answers 501: the daemon was not started from a file it can re-read.
	Reload func() error
	// Ready, when set, holds requests until it is closed: the socket is claimed at
	// once (a second vnetd fails before it opens anything), but a client asks the
	// lab only once it is up, never a half-applied one. Clients wait in the
	// socket's backlog meanwhile.
	Ready <-chan struct{}
	// MaxCaptureStreams caps the live capture streams open at once (GET
	// /v1/capture without ring=); beyond it a request gets a 503 with a JSON error.
	// 0 means DefaultMaxCaptureStreams.
	MaxCaptureStreams int
	// MaxConns caps the connections open at once; beyond it a new connection is
	// answered 503 with a JSON error and closed. 0 means DefaultMaxConns.
	MaxConns int
	// MaxPingStreams, MaxIperfRuns and MaxChecks cap the GET /v1/ping streams, POST
	// /v1/iperf tests and GET /v1/check runs at once; beyond them a request gets a
	// 503 with a JSON error. 0 means DefaultMaxPingStreams, DefaultMaxIperfRuns,
	// DefaultMaxChecks.
	MaxPingStreams int
	MaxIperfRuns   int
	MaxChecks      int
}

// DefaultMaxCaptureStreams is ServerOptions.MaxCaptureStreams's default: each stream
// holds a queue of up to 4096 frames.
const DefaultMaxCaptureStreams = 16

// Server is a running control API.
type Server struct {
	path string
	ln   net.Listener
	srv  *http.Server
	done chan struct{}
	once sync.Once
}

// DefaultPath is the control socket when the config leaves it empty:
// /run/vnetd/vnetd.sock as root, else $XDG_RUNTIME_DIR/vnetd.sock, else
// /tmp/vnetd-UID/vnetd.sock.
func DefaultPath() string {
	if os.Geteuid() == 0 {
		return "/run/vnetd/vnetd.sock"
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "vnetd.sock")
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("vnetd-%d", os.Getuid()), "vnetd.sock")
}

// Listen creates the socket and serves in the background. A stale socket no daemon
// answers on is replaced; a live one, or anything that is not a socket (a regular
// file, a directory, a symlink), is refused and left untouched.
func Listen(o ServerOptions) (*Server, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if err := os.MkdirAll(filepath.Dir(o.Path), 0o700); err != nil {
		return nil, fmt.Errorf("control socket %q: %w", o.Path, err)
	}
	if err := sockpath.Clear(o.Path, "unix"); err != nil {
		if errors.Is(err, sockpath.ErrInUse) {
			return nil, fmt.Errorf("control socket %q: another vnetd is listening on it", o.Path)
		}
		return nil, fmt.Errorf("control socket: %w", err)
	}
	old := syscall.Umask(0o177)
	ln, err := net.Listen("unix", o.Path)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("control socket %q: %w", o.Path, err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(true)
	if err := os.Chmod(o.Path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket %q: %w", o.Path, err)
	}
	cl := &credListener{Listener: ln, log: o.Logger, ready: o.Ready, closed: make(chan struct{})}
	s := &Server{path: o.Path, ln: newCapListener(cl, o.Daemon, o.MaxConns), done: make(chan struct{})}
	s.srv = &http.Server{Handler: handler(o), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: IdleTimeout, ErrorLog: slog.NewLogLogger(o.Logger.Handler(), slog.LevelDebug)}
	go func() { defer close(s.done); s.srv.Serve(s.ln) }()
	return s, nil
}

// Path is the socket path.
func (s *Server) Path() string { return s.path }

// Close stops serving and removes the socket file; idempotent.
func (s *Server) Close() error {
	s.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := s.srv.Shutdown(ctx); err != nil {
			s.srv.Close()
		}
		<-s.done
		os.Remove(s.path)
	})
	return nil
}

// credListener drops connections from other users (root excepted), and accepts
// none before ready is closed (if set).
type credListener struct {
	net.Listener
	log       *slog.Logger
	ready     <-chan struct{}
	closed    chan struct{}
	closeOnce sync.Once
}

func (l *credListener) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

func (l *credListener) Accept() (net.Conn, error) {
	if l.ready != nil {
		select {
		case <-l.ready:
		case <-l.closed:
			return nil, net.ErrClosed
		}
	}
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		uid, err := peerUID(c)
		if err == nil && (uid == uint32(os.Getuid()) || uid == 0) {
			return c, nil
		}
		l.log.Warn("control connection refused", "uid", uid, "err", err)
		c.Close()
	}
}

func peerUID(c net.Conn) (uint32, error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return 0, errors.New("not a unix connection")
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return 0, err
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return 0, err
	}
	if cerr != nil {
		return 0, cerr
	}
	return cred.Uid, nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func writeErr(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, map[string]string{"error": err.Error()})
}

func handler(o ServerOptions) http.Handler {
	d := o.Daemon
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/version", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, o.Version) })
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, d.Status()) })
	mux.HandleFunc("GET /v1/fdb/{switch}", func(w http.ResponseWriter, r *http.Request) {
		fdb, err := d.FDB(r.PathValue("switch"))
		if err != nil {
			writeErr(w, 404, err)
			return
		}
		writeJSON(w, 200, fdb)
	})
	mux.HandleFunc("GET /v1/ns/{name}/{view}", func(w http.ResponseWriter, r *http.Request) {
		ns, err := d.Namespace(r.PathValue("name"))
		if err != nil {
			writeErr(w, 404, err)
			return
		}
		switch r.PathValue("view") {
		case "leases":
			leases, err := d.Leases(r.PathValue("name"))
			if err != nil {
				writeErr(w, 404, err)
				return
			}
			writeJSON(w, 200, leases)
		case "addr":
			writeJSON(w, 200, ns.Interfaces())
		case "route":
			writeJSON(w, 200, ns.Routes())
		case "neigh":
			writeJSON(w, 200, ns.Neighbors())
		case "sockets":
			writeJSON(w, 200, ns.Sockets())
		default:
			writeErr(w, 404, fmt.Errorf("unknown view %q (want addr, route, neigh, sockets or leases)", r.PathValue("view")))
		}
	})
	forwardRoutes(mux, d)
	routerRoutes(mux, d)
	mux.HandleFunc("GET /v1/topology", func(w http.ResponseWriter, r *http.Request) { serveTopology(d, w, r) })
	vxlanRoutes(mux, d)
	impairRoutes(mux, d)
	linkRoutes(mux, d)
	exportRoutes(mux, d)
	checkRoutes(mux, d, newAPICap(d, RefusedCheck, "checks", o.MaxChecks, DefaultMaxChecks))
	traceRoutes(mux, d)
	iperfRoutes(mux, d, newAPICap(d, RefusedIperf, "iperf tests", o.MaxIperfRuns, DefaultMaxIperfRuns))
	streams := newAPICap(d, RefusedCapture, "capture streams", o.MaxCaptureStreams, DefaultMaxCaptureStreams)
	mux.HandleFunc("GET /v1/capture/{switch}", func(w http.ResponseWriter, r *http.Request) { serveCapture(d, streams, w, r) })
	mux.HandleFunc("GET /v1/capture-filter", serveCaptureFilter)
	pings := newAPICap(d, RefusedPing, "ping streams", o.MaxPingStreams, DefaultMaxPingStreams)
	mux.HandleFunc("GET /v1/ping/{ns}/{addr}", func(w http.ResponseWriter, r *http.Request) {
		dst, err := netip.ParseAddr(r.PathValue("addr"))
		if err != nil {
			writeErr(w, 400, fmt.Errorf("bad address %q", r.PathValue("addr")))
			return
		}
		count := 4
		if s := r.URL.Query().Get("count"); s != "" {
			if count, err = strconv.Atoi(s); err != nil || count < 1 || count > 1000 {
				writeErr(w, 400, fmt.Errorf("bad count %q (1-1000)", s))
				return
			}
		}
		if _, err := d.Namespace(r.PathValue("ns")); err != nil {
			writeErr(w, 404, err)
			return
		}
		if !pings.take() {
			pings.refuse(w, "end one, or lower count=")
			return
		}
		defer pings.done()
		w.Header().Set("Content-Type", "application/x-ndjson")
		enc := json.NewEncoder(w)
		fl, _ := w.(http.Flusher)
		d.Ping(r.Context(), r.PathValue("ns"), dst, count, time.Second, func(p daemon.PingResult) {
			enc.Encode(p)
			if fl != nil {
				fl.Flush()
			}
		})
	})
	mux.HandleFunc("POST /v1/reload", func(w http.ResponseWriter, r *http.Request) {
		if o.Reload == nil {
			writeErr(w, http.StatusNotImplemented, errors.New("this daemon cannot reload"))
			return
		}
		if err := o.Reload(); err != nil {
			writeErr(w, http.StatusUnprocessableEntity, err)
			return
		}
		writeJSON(w, 200, map[string]string{"result": "reloaded"})
	})
	// Anything else is a JSON error too, as the API documents, not net/http's text.
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeErr(w, http.StatusNotFound, fmt.Errorf("no API route %s %s", r.Method, r.URL.Path))
	})
	return mux
}
