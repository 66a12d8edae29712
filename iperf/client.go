package iperf

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// ClientOptions describe one test.
type ClientOptions struct {
	// Addr is the server, "ADDR:PORT".
	Addr string
	// Time is the test's duration; default 10 s, whole seconds (iperf3's unit).
	Time time.Duration
	// Reverse makes the server send and the client receive (-R).
	Reverse bool
	// UDP tests UDP instead of TCP (-u).
	UDP bool
	// Rate is each stream's target in bit/s (-b); 0 means no limit for TCP and
	// DefaultUDPRate for UDP.
	Rate int64
	// Parallel is the number of streams (-P); default 1.
	Parallel int
	// Len is the block (-l): bytes per write, or per datagram for UDP; defaults
	// DefaultTCPBlock and DefaultUDPBlock.
	Len int
}

// StreamReport is one stream's outcome, in both sides' view.
type StreamReport struct {
	ID int `json:"id"`
	// SentBytes is what the sender wrote, ReceivedBytes what the receiver read.
	SentBytes     int64 `json:"sent_bytes"`
	ReceivedBytes int64 `json:"received_bytes"`
	// Seconds is the sender's measured duration.
	Seconds float64 `json:"seconds"`
	// SentBps and ReceivedBps are the two rates in bit/s.
	SentBps     float64 `json:"sent_bps"`
	ReceivedBps float64 `json:"received_bps"`
	// UDP: datagrams sent, lost and the receiver's jitter in milliseconds.
	Packets  int64   `json:"packets,omitempty"`
	Lost     int64   `json:"lost,omitempty"`
	JitterMs float64 `json:"jitter_ms,omitempty"`
}

// Report is a finished test.
type Report struct {
	Server   string         `json:"server"`
	Protocol string         `json:"protocol"`
	Reverse  bool           `json:"reverse"`
	Parallel int            `json:"parallel"`
	Streams  []StreamReport `json:"streams"`
	// Sum is the streams added up (jitter: their mean).
	Sum StreamReport `json:"sum"`
}

// ErrBusy is a server's ACCESS_DENIED: it runs as many tests as it allows.
var ErrBusy = errors.New("iperf3 server is busy running a test, try again later")

// Run measures the server at o.Addr from n.
func Run(ctx context.Context, n Net, o ClientOptions) (*Report, error) {
	if o.Time <= 0 {
		o.Time = 10 * time.Second
	}
	if o.Parallel <= 0 {
		o.Parallel = 1
	}
	if o.Len <= 0 {
		o.Len = DefaultTCPBlock
		if o.UDP {
			o.Len = DefaultUDPBlock
		}
	}
	if o.UDP && o.Rate == 0 {
		o.Rate = DefaultUDPRate
	}
	server, err := netip.ParseAddrPort(o.Addr)
	if err != nil {
		return nil, fmt.Errorf("iperf3 server %q: want ADDR:PORT", o.Addr)
	}
	server = netip.AddrPortFrom(server.Addr().Unmap(), server.Port())
	ctrl, err := n.Dial(ctx, "tcp", server.String())
	if err != nil {
		return nil, err
	}
	c := &client{n: n, o: o, server: server, ctrl: ctrl, cookie: newCookie()}
	defer func() {
		c.stopStreams()
		c.ctrl.Close()
		for _, st := range c.streams {
			st.close()
		}
	}()
	stop := context.AfterFunc(ctx, func() { ctrl.Close() })
	defer stop()
	rep, err := c.run(ctx)
	if err != nil && ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return rep, err
}

type client struct {
	n       Net
	o       ClientOptions
	server  netip.AddrPort
	ctrl    net.Conn
	cookie  [CookieSize]byte
	streams []*cstream
	running atomic.Bool
	wg      sync.WaitGroup
	start   time.Time
	end     time.Time
}

// cstream is one data stream on the client.
type cstream struct {
	id    int
	conn  net.Conn       // TCP
	pc    net.PacketConn // UDP
	bytes atomic.Int64   // sent or received
	sent  atomic.Int64   // UDP datagrams sent
	mu    sync.Mutex
	udp   udpStats // UDP receive side, guarded by mu
	done  chan struct{}
}

func (st *cstream) close() {
	if st.conn != nil {
		st.conn.Close()
	}
	if st.pc != nil {
		st.pc.Close()
	}
}

func (c *client) run(ctx context.Context) (*Report, error) {
	c.ctrl.SetDeadline(time.Now().Add(handshakeTimeout))
	if _, err := c.ctrl.Write(c.cookie[:]); err != nil {
		return nil, err
	}
	for {
		state, err := readState(c.ctrl)
		if err != nil {
			return nil, fmt.Errorf("iperf3 control connection: %w", err)
		}
		switch state {
		case stateParamExchange:
			p := Params{TCP: !c.o.UDP, UDP: c.o.UDP, Time: int((c.o.Time + time.Second - 1) / time.Second),
				Parallel: c.o.Parallel, Reverse: c.o.Reverse, Len: c.o.Len, Bandwidth: c.o.Rate,
				PacingTimer: 1000, ClientVersion: "vnetd"}
			if err := writeJSON(c.ctrl, p); err != nil {
				return nil, err
			}
		case stateCreateStreams:
			for i := range c.o.Parallel {
				if err := c.connect(ctx, i); err != nil {
					return nil, fmt.Errorf("iperf3 stream %d: %w", i+1, err)
				}
			}
		case stateTestStart:
		case stateTestRunning:
			c.startStreams()
			c.ctrl.SetDeadline(time.Time{})
			t := time.NewTimer(c.o.Time)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return nil, ctx.Err()
			}
			if !c.o.Reverse {
				c.stopStreams()
			}
			c.ctrl.SetDeadline(time.Now().Add(handshakeTimeout + endGrace))
			if _, err := c.ctrl.Write([]byte{stateTestEnd}); err != nil {
				return nil, err
			}
		case stateExchangeResults:
			c.stopStreams()
			if err := writeJSON(c.ctrl, c.results()); err != nil {
				return nil, err
			}
			var theirs Results
			if err := readJSON(c.ctrl, &theirs); err != nil {
				return nil, fmt.Errorf("iperf3 server results: %w", err)
			}
			rep := c.report(theirs)
			c.ctrl.SetDeadline(time.Now().Add(handshakeTimeout))
			if state, err := readState(c.ctrl); err != nil || state != stateDisplayResults {
				return nil, fmt.Errorf("iperf3: want DISPLAY_RESULTS, got %d, %v", state, err)
			}
			for _, st := range c.streams {
				st.close()
			}
			c.ctrl.Write([]byte{stateIperfDone})
			return rep, nil
		case stateAccessDenied:
			return nil, ErrBusy
		case stateServerError:
			var b [8]byte
			if _, err := io.ReadFull(c.ctrl, b[:]); err != nil {
				return nil, errors.New("iperf3 server error")
			}
			return nil, fmt.Errorf("iperf3 server error %d (iperf3 i_errno; errno %d)", int32(binary.BigEndian.Uint32(b[:])), int32(binary.BigEndian.Uint32(b[4:])))
		case stateServerTerminate:
			return nil, errors.New("iperf3 server terminated the test")
		default:
			return nil, fmt.Errorf("%w %d", errStateByte, int8(state))
		}
	}
}

// connect opens stream i: a TCP connection sending the cookie, or a UDP socket
// that sends the connect datagram and waits for the reply.
func (c *client) connect(ctx context.Context, i int) error {
	st := &cstream{id: streamID(i), done: make(chan struct{})}
	if !c.o.UDP {
		conn, err := c.n.Dial(ctx, "tcp", c.server.String())
		if err != nil {
			return err
		}
		st.conn = conn
		c.streams = append(c.streams, st)
		_, err = conn.Write(c.cookie[:])
		return err
	}
	network := "udp4"
	if c.server.Addr().Is6() {
		network = "udp6"
	}
	pc, err := c.n.ListenPacket(network, ":0")
	if err != nil {
		return err
	}
	st.pc = pc
	c.streams = append(c.streams, st)
	to := net.UDPAddrFromAddrPort(c.server)
	if _, err := pc.WriteTo(udpConnect, to); err != nil {
		return err
	}
	pc.SetReadDeadline(time.Now().Add(handshakeTimeout))
	buf := make([]byte, 65536)
	for range 3 {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return fmt.Errorf("no UDP connect reply: %w", err)
		}
		if from.String() == to.String() && n == 4 && isReply(buf[:4]) {
			pc.SetReadDeadline(time.Time{})
			return nil
		}
	}
	return errors.New("no UDP connect reply")
}

func (c *client) startStreams() {
	c.start = time.Now()
	c.running.Store(true)
	for _, st := range c.streams {
		c.wg.Add(1)
		go func() { defer c.wg.Done(); c.work(st) }()
	}
}

// stopStreams ends the transfer: senders stop writing (their connections stay open
// until the results are in, as iperf3's do), receivers stop counting.
func (c *client) stopStreams() {
	if !c.running.Swap(false) {
		return
	}
	c.end = time.Now()
	for _, st := range c.streams {
		close(st.done)
		if st.conn != nil {
			st.conn.SetDeadline(time.Now())
		} else {
			st.pc.SetDeadline(time.Now())
		}
	}
	c.wg.Wait()
}

func (c *client) work(st *cstream) {
	switch {
	case st.conn != nil && !c.o.Reverse:
		p := newPacer(c.o.Rate, c.start)
		block := zeros[:c.o.Len]
		for p.wait(st.bytes.Load(), st.done) {
			n, err := st.conn.Write(block)
			st.bytes.Add(int64(n))
			if err != nil {
				return
			}
		}
	case st.conn != nil:
		buf := make([]byte, readBlock)
		for {
			n, err := st.conn.Read(buf)
			if c.running.Load() {
				st.bytes.Add(int64(n))
			}
			if err != nil {
				return
			}
		}
	case !c.o.Reverse:
		p := newPacer(c.o.Rate, c.start)
		buf := make([]byte, c.o.Len)
		to := net.UDPAddrFromAddrPort(c.server)
		var count uint64
		for p.wait(st.bytes.Load(), st.done) {
			now := time.Now()
			count++
			udpHeader(buf, uint32(now.Unix()), uint32(now.Nanosecond()/1000), count, false)
			n, err := st.pc.WriteTo(buf, to)
			if err != nil {
				count--
				if errors.Is(err, net.ErrClosed) || !c.running.Load() {
					return
				}
				time.Sleep(time.Millisecond) // a full send queue: back off, do not spin
				continue
			}
			st.bytes.Add(int64(n))
			st.sent.Store(int64(count))
		}
	default:
		buf := make([]byte, 65536)
		from := c.server.String()
		for {
			n, addr, err := st.pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if addr.String() != from || !c.running.Load() {
				continue
			}
			now := time.Now()
			st.bytes.Add(int64(n))
			st.mu.Lock()
			st.udp.add(buf[:n], n, false, now.Unix(), int64(now.Nanosecond()))
			st.mu.Unlock()
		}
	}
}

// results is the client's results document.
func (c *client) results() Results {
	secs := c.end.Sub(c.start).Seconds()
	res := Results{SenderHasRetransmits: 0}
	if c.o.Reverse {
		res.SenderHasRetransmits = -1
	}
	for _, st := range c.streams {
		sr := StreamResult{ID: st.id, Bytes: st.bytes.Load(), Retransmits: -1, EndTime: secs}
		if st.pc != nil {
			if c.o.Reverse {
				st.mu.Lock()
				sr.Packets, sr.Errors, sr.Jitter = st.udp.packets, st.udp.lost, st.udp.jitter
				st.mu.Unlock()
			} else {
				sr.Packets = st.sent.Load()
			}
		}
		res.Streams = append(res.Streams, sr)
	}
	return res
}

// report joins both sides' results.
func (c *client) report(theirs Results) *Report {
	proto := "tcp"
	if c.o.UDP {
		proto = "udp"
	}
	rep := &Report{Server: c.server.String(), Protocol: proto, Reverse: c.o.Reverse, Parallel: c.o.Parallel}
	mine := c.results()
	peer := map[int]StreamResult{}
	for _, s := range theirs.Streams {
		peer[s.ID] = s
	}
	var jitter float64
	for _, m := range mine.Streams {
		t := peer[m.ID]
		snd, rcv := m, t
		if c.o.Reverse {
			snd, rcv = t, m
		}
		secs := m.EndTime
		sr := StreamReport{ID: m.ID, SentBytes: snd.Bytes, ReceivedBytes: rcv.Bytes, Seconds: secs}
		if secs > 0 {
			sr.SentBps = float64(snd.Bytes*8) / secs
			sr.ReceivedBps = float64(rcv.Bytes*8) / secs
		}
		if c.o.UDP {
			sr.Packets, sr.Lost, sr.JitterMs = snd.Packets, rcv.Errors, rcv.Jitter*1000
			// Datagrams still in flight at the end count as lost, as iperf3 counts them.
			if d := snd.Packets - rcv.Packets; d > sr.Lost {
				sr.Lost = d
			}
		}
		rep.Streams = append(rep.Streams, sr)
		s := &rep.Sum
		s.SentBytes += sr.SentBytes
		s.ReceivedBytes += sr.ReceivedBytes
		s.SentBps += sr.SentBps
		s.ReceivedBps += sr.ReceivedBps
		s.Packets += sr.Packets
		s.Lost += sr.Lost
		s.Seconds = max(s.Seconds, secs)
		jitter += sr.JitterMs
	}
	if n := len(rep.Streams); n > 0 {
		rep.Sum.JitterMs = jitter / float64(n)
	}
	return rep
}
