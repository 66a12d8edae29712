package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// The meter is a TCP sink and a TCP source with a client that times them, measuring
// at the receiving end both ways:
//
//   - sink (sinkPort): the client sends for the run's duration and half-closes; the
//     sink counts every byte until EOF and answers with the count (8 bytes, big
//     endian). The client divides that count by the time from its first write to the
//     answer, so bytes still in flight when it stopped writing are counted and timed.
//   - source (sourcePort): the server writes until the connection fails; the client
//     reads for the run's duration and counts what it received.
const (
	sinkPort   = 5001
	sourcePort = 5002
	ioSize     = 128 << 10
)

// serve runs the sink on sink and the source on source until both listeners close.
func serve(sink, source net.Listener) {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); acceptLoop(sink, handleSink) }()
	go func() { defer wg.Done(); acceptLoop(source, handleSource) }()
	wg.Wait()
}

func acceptLoop(l net.Listener, handle func(net.Conn)) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			handle(c)
		}()
	}
}

func handleSink(c net.Conn) {
	buf := make([]byte, ioSize)
	var n uint64
	for {
		_ = c.SetReadDeadline(time.Now().Add(30 * time.Second)) // a vanished client
		k, err := c.Read(buf)
		n += uint64(k)
		if err != nil {
			if !errors.Is(err, io.EOF) {
				return
			}
			break
		}
	}
	var ans [8]byte
	binary.BigEndian.PutUint64(ans[:], n)
	_ = c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, _ = c.Write(ans[:])
}

func handleSource(c net.Conn) {
	buf := make([]byte, ioSize)
	for {
		_ = c.SetWriteDeadline(time.Now().Add(30 * time.Second))
		if _, err := c.Write(buf); err != nil {
			return
		}
	}
}

// runClient measures mode ("send" to the sink, "recv" from the source) against host
// for d with streams parallel connections and returns the total rate in bit/s.
func runClient(mode, host string, d time.Duration, streams int) (float64, error) {
	type result struct {
		bytes   uint64
		elapsed time.Duration
		err     error
	}
	res := make(chan result, streams)
	for range streams {
		go func() {
			var r result
			switch mode {
			case "send":
				r.bytes, r.elapsed, r.err = sendTo(net.JoinHostPort(host, fmt.Sprint(sinkPort)), d)
			case "recv":
				r.bytes, r.elapsed, r.err = recvFrom(net.JoinHostPort(host, fmt.Sprint(sourcePort)), d)
			default:
				r.err = fmt.Errorf("unknown client mode %q (want send or recv)", mode)
			}
			res <- r
		}()
	}
	var bps float64
	for range streams {
		r := <-res
		if r.err != nil {
			return 0, r.err
		}
		bps += float64(r.bytes) * 8 / r.elapsed.Seconds()
	}
	return bps, nil
}

func sendTo(addr string, d time.Duration) (uint64, time.Duration, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return 0, 0, err
	}
	defer c.Close()
	buf := make([]byte, ioSize)
	start := time.Now()
	end := start.Add(d)
	_ = c.SetDeadline(end.Add(30 * time.Second))
	for time.Now().Before(end) {
		if _, err := c.Write(buf); err != nil {
			return 0, 0, fmt.Errorf("send to %s: %w", addr, err)
		}
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		return 0, 0, fmt.Errorf("send to %s: half-close: %w", addr, err)
	}
	var ans [8]byte
	if _, err := io.ReadFull(c, ans[:]); err != nil {
		return 0, 0, fmt.Errorf("send to %s: read the sink's count: %w", addr, err)
	}
	return binary.BigEndian.Uint64(ans[:]), time.Since(start), nil
}

func recvFrom(addr string, d time.Duration) (uint64, time.Duration, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return 0, 0, err
	}
	defer c.Close()
	buf := make([]byte, ioSize)
	start := time.Now()
	_ = c.SetReadDeadline(start.Add(d))
	var n uint64
	for {
		k, err := c.Read(buf)
		n += uint64(k)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return 0, 0, fmt.Errorf("receive from %s: source closed early after %d bytes", addr, n)
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return n, time.Since(start), nil
			}
			return 0, 0, fmt.Errorf("receive from %s: %w", addr, err)
		}
	}
}
