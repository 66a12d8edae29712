package control

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
	"github.com/vnetd/vnetd/daemon"
)

// captureSnaplen covers a 64 KiB GSO superframe with its headers.
const captureSnaplen = 65536 + 256

// serveCapture streams a live pcap of a switch (or one of its ports) until the
// client goes away or count frames were sent.
func serveCapture(d *daemon.Daemon, w http.ResponseWriter, r *http.Request) {
	sw, err := d.Switch(r.PathValue("switch"))
	if err != nil {
		writeErr(w, 404, err)
		return
	}
	count := 0
	if s := r.URL.Query().Get("count"); s != "" {
		if count, err = strconv.Atoi(s); err != nil || count < 0 {
			writeErr(w, 400, fmt.Errorf("bad count %q", s))
			return
		}
	}
	c, err := sw.Capture(r.URL.Query().Get("port"), 0)
	if err != nil {
		writeErr(w, 404, err)
		return
	}
	defer c.Close()
	w.Header().Set("Content-Type", "application/vnd.tcpdump.pcap")
	pw := pcapgo.NewWriter(w)
	if err := pw.WriteFileHeader(captureSnaplen, layers.LinkTypeEthernet); err != nil {
		return
	}
	fl, _ := w.(http.Flusher)
	if fl != nil {
		fl.Flush()
	}
	for n := 0; count == 0 || n < count; n++ {
		f, err := c.Next(r.Context())
		if err != nil {
			return
		}
		b := f.Buf.Bytes()
		err = pw.WritePacket(gopacket.CaptureInfo{Timestamp: f.Time, CaptureLength: len(b), Length: len(b)}, b)
		f.Buf.Release()
		if err != nil {
			return
		}
		if fl != nil {
			fl.Flush()
		}
	}
}

// Capture streams a pcap of switch sw (port "" = every frame entering it) into w,
// stopping after count frames (0 = until ctx ends).
func (c *Client) Capture(ctx context.Context, sw, port string, count int, w io.Writer) error {
	q := url.Values{}
	if port != "" {
		q.Set("port", port)
	}
	if count > 0 {
		q.Set("count", strconv.Itoa(count))
	}
	resp, err := c.do(ctx, "/v1/capture/"+url.PathEscape(sw)+"?"+q.Encode())
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.Copy(w, resp.Body)
	if ctx.Err() != nil {
		return nil // interrupted: what arrived so far is a valid pcap
	}
	return err
}
