package iperf

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
)

// Net is where the server listens and the client dials; *nsstack.Namespace satisfies it.
type Net interface {
	Listen(network, addr string) (net.Listener, error)
	ListenPacket(network, addr string) (net.PacketConn, error)
	Dial(ctx context.Context, network, addr string) (net.Conn, error)
}

// Control states, one signed byte each on the control connection.
const (
	stateTestStart       = 1
	stateTestRunning     = 2
	stateTestEnd         = 4
	stateParamExchange   = 9
	stateCreateStreams   = 10
	stateServerTerminate = 11
	stateClientTerminate = 12
	stateExchangeResults = 13
	stateDisplayResults  = 14
	stateIperfDone       = 16
	stateAccessDenied    = 0xff // -1
	stateServerError     = 0xfe // -2
)

// iperf3 error numbers a server sends after SERVER_ERROR (i_errno).
const (
	errDuration   = 5   // IEDURATION: test duration too long
	errNumStreams = 6   // IENUMSTREAMS: too many parallel streams
	errBlockSize  = 7   // IEBLOCKSIZE
	errUnimp      = 13  // IEUNIMP: not implemented
	errRecvParams = 114 // IERECVPARAMS
)

// Protocol sizes and limits.
const (
	// CookieSize is the length of the cookie every connection of a test starts with.
	CookieSize = 37
	// DefaultPort is iperf3's port.
	DefaultPort = 5201
	// maxJSON bounds a parameters or results document read from the peer.
	maxJSON = 64 << 10
	// MaxBlockSize bounds the block (len) a client may ask for (iperf3's own limit).
	MaxBlockSize = 1 << 20
	// maxUDPBlock bounds a UDP block: the largest UDP payload.
	maxUDPBlock = 65507
	// maxTime bounds a test's duration in seconds (iperf3's own limit, one day).
	maxTime = 86400
	// DefaultTCPBlock and DefaultUDPBlock are the blocks a client sends by default.
	DefaultTCPBlock = 128 << 10
	DefaultUDPBlock = 1460
	// DefaultUDPRate is the UDP rate in bit/s a client asks for by default (iperf3's 1 Mbit/s).
	DefaultUDPRate = 1 << 20
)

// The UDP connect datagram and its reply as bytes on the wire: iperf3 3.17 and later
// send "9876" and answer "6789"; older versions send 123456789 and answer 987654321 as
// host-order 32-bit integers (little-endian on every common host).
var (
	udpConnect      = []byte("9876")
	udpReply        = []byte("6789")
	udpLegacyReply  = binary.LittleEndian.AppendUint32(nil, 987654321)
	udpLegacyReplyB = binary.BigEndian.AppendUint32(nil, 987654321)
	udpLegacyConnB  = binary.BigEndian.AppendUint32(nil, 123456789)
)

// replyTo is the UDP connect reply for a connect datagram: the new style for the
// new style, else the legacy value in the byte order the request used.
func replyTo(connect []byte) []byte {
	switch {
	case string(connect) == string(udpConnect):
		return udpReply
	case string(connect) == string(udpLegacyConnB):
		return udpLegacyReplyB
	default:
		return udpLegacyReply
	}
}

// isReply reports whether b is a UDP connect reply in any of its spellings.
func isReply(b []byte) bool {
	s := string(b)
	return s == string(udpReply) || s == string(udpLegacyReply) || s == string(udpLegacyReplyB)
}

// Params are the test parameters the client sends (the keys vnetd reads or sends).
type Params struct {
	TCP           bool   `json:"tcp,omitempty"`
	UDP           bool   `json:"udp,omitempty"`
	Omit          int    `json:"omit"`
	Time          int    `json:"time"`
	Num           int64  `json:"num"`
	BlockCount    int64  `json:"blockcount"`
	Parallel      int    `json:"parallel"`
	Reverse       bool   `json:"reverse,omitempty"`
	Bidirectional bool   `json:"bidirectional,omitempty"`
	Len           int    `json:"len"`
	Bandwidth     int64  `json:"bandwidth,omitempty"`
	PacingTimer   int    `json:"pacing_timer,omitempty"`
	UDP64         int    `json:"udp_counters_64bit,omitempty"`
	ClientVersion string `json:"client_version,omitempty"`
}

// StreamResult is one stream in a results document.
type StreamResult struct {
	ID            int     `json:"id"`
	Bytes         int64   `json:"bytes"`
	Retransmits   float64 `json:"retransmits"`
	Jitter        float64 `json:"jitter"`
	Errors        int64   `json:"errors"`
	OmittedErrors int64   `json:"omitted_errors"`
	Packets       int64   `json:"packets"`
	OmittedPkts   int64   `json:"omitted_packets"`
	StartTime     float64 `json:"start_time"`
	EndTime       float64 `json:"end_time"`
}

// Results is the document each side sends at EXCHANGE_RESULTS.
type Results struct {
	CPUTotal             float64        `json:"cpu_util_total"`
	CPUUser              float64        `json:"cpu_util_user"`
	CPUSystem            float64        `json:"cpu_util_system"`
	SenderHasRetransmits float64        `json:"sender_has_retransmits"`
	Streams              []StreamResult `json:"streams"`
}

// streamID is the id iperf3 gives the i-th stream of a test (from 0): 1, 3, 4, 5, ...
// (it skips 2; both sides must agree).
func streamID(i int) int {
	if i == 0 {
		return 1
	}
	return i + 2
}

// newCookie returns a random cookie in iperf3's alphabet, NUL-terminated.
func newCookie() [CookieSize]byte {
	const alphabet = "abcdefghijklmnopqrstuvwxyz234567"
	var c [CookieSize]byte
	rand.Read(c[:CookieSize-1])
	for i := range CookieSize - 1 {
		c[i] = alphabet[c[i]%32]
	}
	return c
}

// writeJSON sends v as a length-prefixed JSON document.
func writeJSON(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	buf := binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(b)), uint32(len(b)))
	_, err = w.Write(append(buf, b...))
	return err
}

// readJSON reads one length-prefixed JSON document of at most maxJSON bytes into v.
func readJSON(r io.Reader, v any) error {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n == 0 || n > maxJSON {
		return fmt.Errorf("JSON document of %d bytes (want 1-%d)", n, maxJSON)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// errStateByte is returned when the peer sends a state the protocol does not expect.
var errStateByte = errors.New("unexpected iperf3 state")

// readState reads one state byte.
func readState(r io.Reader) (byte, error) {
	var b [1]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return 0, err
	}
	return b[0], nil
}

// udpHeader writes the datagram header: send time and packet counter.
func udpHeader(b []byte, sec, usec uint32, count uint64, wide bool) {
	binary.BigEndian.PutUint32(b[0:], sec)
	binary.BigEndian.PutUint32(b[4:], usec)
	if wide {
		binary.BigEndian.PutUint64(b[8:], count)
	} else {
		binary.BigEndian.PutUint32(b[8:], uint32(count))
	}
}

// udpStats is the receiving side of a UDP stream: highest counter seen, losses,
// out-of-order packets and RFC 1889 jitter, as iperf3 computes them.
type udpStats struct {
	bytes       int64
	packets     int64 // highest counter seen
	lost        int64
	outOfOrder  int64
	jitter      float64 // seconds
	prevTransit float64
	seen        bool
}

// add accounts one datagram of n bytes whose header is b, arriving at (sec, nsec).
func (s *udpStats) add(b []byte, n int, wide bool, arriveSec int64, arriveNsec int64) {
	s.bytes += int64(n)
	if len(b) < 12 || wide && len(b) < 16 {
		return
	}
	sec := binary.BigEndian.Uint32(b[0:])
	usec := binary.BigEndian.Uint32(b[4:])
	var count int64
	if wide {
		count = int64(binary.BigEndian.Uint64(b[8:]))
	} else {
		count = int64(binary.BigEndian.Uint32(b[8:]))
	}
	if count >= s.packets+1 {
		if count > s.packets+1 {
			s.lost += count - 1 - s.packets
		}
		s.packets = count
	} else {
		s.outOfOrder++
		if s.lost > 0 {
			s.lost--
		}
	}
	transit := float64(arriveSec-int64(sec)) + float64(arriveNsec)/1e9 - float64(usec)/1e6
	if !s.seen {
		s.prevTransit, s.seen = transit, true
	}
	d := transit - s.prevTransit
	if d < 0 {
		d = -d
	}
	s.prevTransit = transit
	s.jitter += (d - s.jitter) / 16
}
