package iperf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Server limits: a remote client makes the server allocate (a goroutine, buffers and
// a socket per stream), so tests and streams are capped.
const (
	// DefaultMaxTests is how many tests run at once; a client beyond it is told the
	// server is busy (ACCESS_DENIED), as a real iperf3 server tells the second client.
	DefaultMaxTests = 4
	// DefaultMaxStreams is how many parallel streams (-P) one test may ask for; beyond
	// it the test is refused with iperf3's "too many parallel streams" error.
	DefaultMaxStreams = 16
	// handshakeTimeout bounds each setup step: the cookie, the parameters, the streams
	// connecting, the results.
	handshakeTimeout = 10 * time.Second
	// endGrace is how long past its duration a test may run before the server ends it.
	endGrace = 30 * time.Second
	// readBlock is the server's read buffer per TCP stream.
	readBlock = 128 << 10
)

// ServerOptions configure a Server.
type ServerOptions struct {
	// MaxTests caps the tests running at once; default DefaultMaxTests.
	MaxTests int
	// MaxStreams caps the streams of one test; default DefaultMaxStreams.
	MaxStreams int
	// Logger receives errors; default slog.Default().
	Logger *slog.Logger
}

// Counters are a server's totals.
type Counters struct {
	// Tests counts tests that reached TEST_RUNNING.
	Tests uint64 `json:"tests"`
	// Active is the number of tests running now.
	Active int64 `json:"active"`
	// Refused counts clients turned away: busy (MaxTests), too many streams, a
	// connection beyond the handshake cap, an unsupported option.
	Refused uint64 `json:"refused"`
	// Errors counts tests that ended in a protocol or network error.
	Errors uint64 `json:"errors"`
	// BytesIn and BytesOut are data-stream payload bytes received and sent.
	BytesIn  uint64 `json:"bytes_in"`
	BytesOut uint64 `json:"bytes_out"`
}

// Server is a running iperf3 server on a TCP listener and a UDP socket of the same
// port. Close stops it and waits for its goroutines.
type Server struct {
	ln  net.Listener
	pc  net.PacketConn
	opt ServerOptions
	log *slog.Logger

	tests, refused, errs, bytesIn, bytesOut atomic.Uint64
	active                                  atomic.Int64

	wg   sync.WaitGroup
	done chan struct{} // closed by Close
	mu   sync.Mutex
	// The fields below are guarded by mu.
	closed     bool
	conns      map[net.Conn]struct{}     // every open TCP connection
	pending    int                       // connections that have not sent their cookie
	tcpWaiting map[[CookieSize]byte]*run // tests waiting for their TCP streams
	udpWaiting []*run                    // tests waiting for their UDP streams
	udpStreams map[netip.AddrPort]*stream
}

// NewServer serves iperf3 on ln (control and TCP streams) and pc (UDP streams).
func NewServer(ln net.Listener, pc net.PacketConn, o ServerOptions) *Server {
	if o.MaxTests <= 0 {
		o.MaxTests = DefaultMaxTests
	}
	if o.MaxStreams <= 0 {
		o.MaxStreams = DefaultMaxStreams
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	s := &Server{ln: ln, pc: pc, opt: o, log: o.Logger, conns: map[net.Conn]struct{}{}, done: make(chan struct{}),
		tcpWaiting: map[[CookieSize]byte]*run{}, udpStreams: map[netip.AddrPort]*stream{}}
	s.wg.Add(2)
	go func() { defer s.wg.Done(); s.acceptLoop() }()
	go func() { defer s.wg.Done(); s.packetLoop() }()
	return s
}

// Listen starts a server on n at addr (":5201"), TCP and UDP.
func Listen(n interface {
	Listen(network, addr string) (net.Listener, error)
	ListenPacket(network, addr string) (net.PacketConn, error)
}, addr string, o ServerOptions) (*Server, error) {
	ln, err := n.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("iperf3 server: %w", err)
	}
	pc, err := n.ListenPacket("udp", addr)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("iperf3 server: %w", err)
	}
	return NewServer(ln, pc, o), nil
}

// Addr is the TCP listener's address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Counters returns the server's totals.
func (s *Server) Counters() Counters {
	return Counters{Tests: s.tests.Load(), Active: s.active.Load(), Refused: s.refused.Load(),
		Errors: s.errs.Load(), BytesIn: s.bytesIn.Load(), BytesOut: s.bytesOut.Load()}
}

// Close stops the server and every test; it is idempotent.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.done)
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.ln.Close()
	s.pc.Close()
	s.wg.Wait()
	return nil
}

func (s *Server) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) untrack(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	c.Close()
}

func (s *Server) acceptLoop() {
	// Connections that have not identified themselves yet: every stream of every
	// test allowed, plus a margin for control connections to be refused.
	maxPending := s.opt.MaxTests*(s.opt.MaxStreams+1) + 16
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		full := s.pending >= maxPending
		if !full {
			s.pending++
		}
		s.mu.Unlock()
		if full || !s.track(c) {
			s.refused.Add(1)
			c.Close()
			continue
		}
		s.wg.Add(1)
		go func() { defer s.wg.Done(); s.handle(c) }()
	}
}

// handle reads a connection's cookie: a stream of a test waiting for it joins the
// test; anything else is a new test's control connection.
func (s *Server) handle(c net.Conn) {
	var cookie [CookieSize]byte
	c.SetReadDeadline(time.Now().Add(handshakeTimeout))
	_, err := io.ReadFull(c, cookie[:])
	s.mu.Lock()
	s.pending--
	if err == nil {
		if r := s.tcpWaiting[cookie]; r != nil && len(r.streams) < r.want {
			c.SetReadDeadline(time.Time{})
			r.addStreamLocked(&stream{conn: c})
			s.mu.Unlock()
			return // the test owns c now
		}
	}
	busy := s.active.Load() >= int64(s.opt.MaxTests)
	if err == nil && !busy {
		s.active.Add(1)
	}
	s.mu.Unlock()
	if err != nil {
		s.untrack(c)
		return
	}
	if busy {
		s.refused.Add(1)
		c.SetWriteDeadline(time.Now().Add(time.Second))
		c.Write([]byte{stateAccessDenied})
		s.untrack(c)
		return
	}
	r := &run{s: s, ctrl: c, cookie: cookie, ready: make(chan struct{}), stop: make(chan struct{})}
	if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
		r.peer = ap.Addr().Unmap()
	}
	err = r.serve()
	r.finish()
	s.active.Add(-1)
	s.untrack(c)
	if err != nil {
		s.errs.Add(1)
		s.log.Debug("iperf3 test ended in error", "client", c.RemoteAddr().String(), "err", err)
	}
}

func (s *Server) packetLoop() {
	buf := make([]byte, 65536)
	for {
		n, from, err := s.pc.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) || s.isClosed() {
				return
			}
			continue
		}
		ap, err := netip.ParseAddrPort(from.String())
		if err != nil {
			continue
		}
		ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		now := time.Now()
		s.mu.Lock()
		if st := s.udpStreams[ap]; st != nil {
			if st.r.running.Load() && !st.r.p.Reverse {
				st.udp.add(buf[:n], n, st.r.p.UDP64 != 0, now.Unix(), int64(now.Nanosecond()))
				s.bytesIn.Add(uint64(n))
			}
			s.mu.Unlock()
			continue
		}
		var r *run
		if n == 4 {
			for _, w := range s.udpWaiting {
				if len(w.streams) < w.want && (r == nil || w.peer == ap.Addr()) {
					r = w
				}
			}
		}
		if r != nil {
			st := &stream{addr: ap}
			s.udpStreams[ap] = st
			r.addStreamLocked(st)
		}
		s.mu.Unlock()
		if r != nil {
			s.pc.WriteTo(replyTo(buf[:4]), from)
		}
	}
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// run is one test on the server.
type run struct {
	s       *Server
	ctrl    net.Conn
	cookie  [CookieSize]byte
	peer    netip.Addr
	p       Params
	want    int
	streams []*stream // guarded by s.mu until ready is closed
	ready   chan struct{}
	stop    chan struct{}
	running atomic.Bool
	sent    atomic.Int64 // bytes sent by all streams (reverse), for -n
	wg      sync.WaitGroup
	start   time.Time
	end     time.Time
}

// stream is one data stream of a test.
type stream struct {
	r     *run
	id    int
	conn  net.Conn       // TCP
	addr  netip.AddrPort // UDP
	bytes atomic.Int64   // TCP bytes received or sent; UDP bytes sent
	sent  int64          // UDP datagrams sent (reverse)
	udp   udpStats       // UDP receive side, guarded by s.mu
}

func (r *run) addStreamLocked(st *stream) {
	st.r, st.id = r, streamID(len(r.streams))
	r.streams = append(r.streams, st)
	if len(r.streams) == r.want {
		close(r.ready)
	}
}

// serverError sends SERVER_ERROR with iperf3's error number.
func (r *run) serverError(code int32, why string) error {
	r.s.refused.Add(1)
	r.s.log.Debug("iperf3 test refused", "client", r.ctrl.RemoteAddr().String(), "why", why)
	b := []byte{stateServerError}
	b = binary.BigEndian.AppendUint32(b, uint32(code))
	b = binary.BigEndian.AppendUint32(b, 0)
	r.ctrl.Write(b)
	return nil // a refusal, not an error of the test
}

func (r *run) send(state byte) error {
	_, err := r.ctrl.Write([]byte{state})
	return err
}

// serve runs the test: parameters, streams, the test, results.
func (r *run) serve() error {
	r.ctrl.SetDeadline(time.Now().Add(handshakeTimeout))
	if err := r.send(stateParamExchange); err != nil {
		return err
	}
	if err := readJSON(r.ctrl, &r.p); err != nil {
		r.serverError(errRecvParams, "")
		return fmt.Errorf("parameters: %w", err)
	}
	p := &r.p
	switch {
	case p.Bidirectional:
		return r.serverError(errUnimp, "bidirectional")
	case !p.TCP && !p.UDP:
		return r.serverError(errUnimp, "protocol")
	case p.Parallel > r.s.opt.MaxStreams:
		return r.serverError(errNumStreams, "streams")
	case p.Time < 0 || p.Time > maxTime:
		return r.serverError(errDuration, "time")
	case p.Len < 0 || p.Len > MaxBlockSize || p.UDP && (p.Len > maxUDPBlock || p.Len > 0 && p.Len < 16):
		return r.serverError(errBlockSize, "len")
	}
	if p.Parallel < 1 {
		p.Parallel = 1
	}
	if p.Len == 0 {
		p.Len = DefaultTCPBlock
		if p.UDP {
			p.Len = DefaultUDPBlock
		}
	}
	r.want = p.Parallel
	s := r.s
	s.mu.Lock()
	if p.UDP {
		s.udpWaiting = append(s.udpWaiting, r)
	} else {
		s.tcpWaiting[r.cookie] = r
	}
	s.mu.Unlock()
	if err := r.send(stateCreateStreams); err != nil {
		return err
	}
	select {
	case <-r.ready:
	case <-s.done:
		return net.ErrClosed
	case <-time.After(handshakeTimeout):
		return errors.New("streams did not connect in time")
	}
	r.unwait()
	s.tests.Add(1)
	if err := r.send(stateTestStart); err != nil {
		return err
	}
	r.start = time.Now()
	r.running.Store(true)
	if err := r.send(stateTestRunning); err != nil {
		return err
	}
	for _, st := range r.streams {
		r.wg.Add(1)
		go func() { defer r.wg.Done(); st.work() }()
	}
	limit := time.Duration(maxTime) * time.Second
	if p.Time > 0 && p.Num == 0 && p.BlockCount == 0 {
		limit = time.Duration(p.Time)*time.Second + endGrace
	}
	r.ctrl.SetDeadline(time.Now().Add(limit))
	state, err := readState(r.ctrl)
	r.stopStreams()
	if err != nil {
		return fmt.Errorf("waiting for TEST_END: %w", err)
	}
	switch state {
	case stateTestEnd:
	case stateClientTerminate, stateIperfDone:
		return nil
	default:
		return fmt.Errorf("%w %d while running", errStateByte, state)
	}
	r.ctrl.SetDeadline(time.Now().Add(handshakeTimeout))
	if err := r.send(stateExchangeResults); err != nil {
		return err
	}
	var theirs Results
	if err := readJSON(r.ctrl, &theirs); err != nil {
		return fmt.Errorf("client results: %w", err)
	}
	if err := writeJSON(r.ctrl, r.results()); err != nil {
		return err
	}
	if err := r.send(stateDisplayResults); err != nil {
		return err
	}
	readState(r.ctrl) // IPERF_DONE; the client may close first
	return nil
}

// unwait removes the test from the tables of tests waiting for streams.
func (r *run) unwait() {
	s := r.s
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.tcpWaiting, r.cookie)
	for i, w := range s.udpWaiting {
		if w == r {
			s.udpWaiting = append(s.udpWaiting[:i], s.udpWaiting[i+1:]...)
			break
		}
	}
}

// stopStreams ends the data transfer (at TEST_END, as iperf3 does: streams close).
func (r *run) stopStreams() {
	if !r.running.Swap(false) {
		return
	}
	r.end = time.Now()
	close(r.stop)
	for _, st := range r.streams {
		if st.conn != nil {
			st.conn.Close()
		}
	}
	r.wg.Wait()
}

// finish releases everything the test holds.
func (r *run) finish() {
	r.unwait()
	r.stopStreams()
	s := r.s
	s.mu.Lock()
	streams := r.streams
	r.streams = nil
	for _, st := range streams {
		if st.conn == nil {
			delete(s.udpStreams, st.addr)
		}
	}
	s.mu.Unlock()
	for _, st := range streams {
		if st.conn != nil {
			s.untrack(st.conn)
		}
	}
}

// results is the server's results document.
func (r *run) results() Results {
	s := r.s
	secs := r.end.Sub(r.start).Seconds()
	res := Results{SenderHasRetransmits: -1, Streams: []StreamResult{}}
	if r.p.Reverse {
		res.SenderHasRetransmits = 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, st := range r.streams {
		sr := StreamResult{ID: st.id, Bytes: st.bytes.Load(), Retransmits: -1, EndTime: secs}
		if st.conn == nil {
			if r.p.Reverse {
				sr.Packets = st.sent
			} else {
				sr.Bytes, sr.Packets, sr.Errors, sr.Jitter = st.udp.bytes, st.udp.packets, st.udp.lost, st.udp.jitter
			}
		}
		res.Streams = append(res.Streams, sr)
	}
	return res
}

// zeros is the block TCP senders write (never written to).
var zeros = make([]byte, MaxBlockSize)

// work moves the stream's data until the test stops.
func (st *stream) work() {
	r := st.r
	switch {
	case st.conn != nil && !r.p.Reverse:
		buf := make([]byte, readBlock)
		for {
			n, err := st.conn.Read(buf)
			if n > 0 && r.running.Load() {
				st.bytes.Add(int64(n))
				r.s.bytesIn.Add(uint64(n))
			}
			if err != nil {
				return
			}
		}
	case st.conn != nil:
		p := newPacer(r.p.Bandwidth, r.start)
		block := zeros[:r.p.Len]
		for {
			if r.p.Num > 0 && r.sent.Load() >= r.p.Num {
				<-r.stop
				return
			}
			if !p.wait(st.bytes.Load(), r.stop) {
				return
			}
			n, err := st.conn.Write(block)
			st.bytes.Add(int64(n))
			r.sent.Add(int64(n))
			r.s.bytesOut.Add(uint64(n))
			if err != nil {
				return
			}
		}
	case r.p.Reverse:
		rate := r.p.Bandwidth
		if rate == 0 {
			rate = DefaultUDPRate
		}
		p := newPacer(rate, r.start)
		buf := make([]byte, r.p.Len)
		to := net.UDPAddrFromAddrPort(st.addr)
		wide := r.p.UDP64 != 0
		var count uint64
		for {
			if !p.wait(st.bytes.Load(), r.stop) {
				return
			}
			now := time.Now()
			count++
			udpHeader(buf, uint32(now.Unix()), uint32(now.Nanosecond()/1000), count, wide)
			n, err := r.s.pc.WriteTo(buf, to)
			if err != nil {
				count--
				if r.s.isClosed() {
					return
				}
				time.Sleep(time.Millisecond) // a full send queue: back off, do not spin
				continue
			}
			st.bytes.Add(int64(n))
			r.s.bytesOut.Add(uint64(n))
			r.s.mu.Lock()
			st.sent = int64(count)
			r.s.mu.Unlock()
		}
	}
	// A forward UDP stream is read by the packet loop.
}

// pacer holds a sender to rate bit/s (0: no limit) since start.
type pacer struct {
	rate  int64
	start time.Time
}

func newPacer(rate int64, start time.Time) pacer { return pacer{rate: rate, start: start} }

// wait blocks until sending more than sent bytes keeps within the rate; false when
// stop closed first.
func (p pacer) wait(sent int64, stop <-chan struct{}) bool {
	select {
	case <-stop:
		return false
	default:
	}
	if p.rate <= 0 {
		return true
	}
	due := p.start.Add(time.Duration(float64(sent*8) / float64(p.rate) * float64(time.Second)))
	d := time.Until(due)
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-stop:
		return false
	case <-t.C:
		return true
	}
}
