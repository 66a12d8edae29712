package control

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
	"github.com/vnetd/vnetd/daemon"
	"github.com/vnetd/vnetd/pcapfilter"
	l2switch "github.com/vnetd/vnetd/switch"
)

// captureSnaplen covers a 64 KiB GSO superframe with its headers.
const captureSnaplen = 65536 + 256

// MaxRingSeconds is the longest window a ring dump may ask for (a day).
const MaxRingSeconds = 86400

// Capture formats: pcapng (the default) carries one interface block per port, so a
// frame says which port it crossed; pcap is the classic format, one link for all.
const (
	FormatPcapNG = "pcapng"
	FormatPcap   = "pcap"
)

// captureRequest is a parsed GET /v1/capture/{switch} query.
type captureRequest struct {
	port   string
	count  int
	filter *pcapfilter.Filter
	format string
	ring   time.Duration // > 0: dump the rings' last ring instead of capturing live
}

func parseCaptureQuery(q url.Values) (captureRequest, error) {
	cr := captureRequest{port: q.Get("port"), format: FormatPcapNG}
	if s := q.Get("count"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return cr, fmt.Errorf("bad count %q", s)
		}
		cr.count = n
	}
	if s := q.Get("format"); s != "" {
		if s != FormatPcap && s != FormatPcapNG {
			return cr, fmt.Errorf("bad format %q (pcap or pcapng)", s)
		}
		cr.format = s
	}
	if s := q.Get("ring"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 || n > MaxRingSeconds {
			return cr, fmt.Errorf("bad ring %q (seconds, 1-%d)", s, MaxRingSeconds)
		}
		cr.ring = time.Duration(n) * time.Second
	}
	f, err := pcapfilter.Compile(q.Get("filter"))
	if err != nil {
		return cr, err
	}
	cr.filter = f
	return cr, nil
}

// serveCaptureFilter answers GET /v1/capture-filter?filter=EXPR: 200 with the compiled
// program's length when EXPR compiles, else a 400 naming the column (the topology
// page checks a filter before it downloads).
func serveCaptureFilter(w http.ResponseWriter, r *http.Request) {
	f, err := pcapfilter.Compile(r.URL.Query().Get("filter"))
	if err != nil {
		writeErr(w, 400, err)
		return
	}
	writeJSON(w, 200, map[string]any{"filter": f.String(), "instructions": len(f.Program())})
}

// serveCapture streams a live capture of a switch (or one of its ports) until the
// client goes away or count frames were sent, or with ring= dumps what the ports'
// capture rings hold of the last seconds. A bad query is a 400 that names the problem
// (for a filter, its column).
//
// Live streams are capped (streams): beyond the cap the request gets a 503.
func serveCapture(d *daemon.Daemon, streams *apiCap, w http.ResponseWriter, r *http.Request) {
	sw, err := d.Switch(r.PathValue("switch"))
	if err != nil {
		writeErr(w, 404, err)
		return
	}
	cr, err := parseCaptureQuery(r.URL.Query())
	if err != nil {
		writeErr(w, 400, err)
		return
	}
	var filter l2switch.Matcher
	if cr.filter != nil {
		filter = cr.filter
	}
	if cr.ring > 0 {
		frames, err := sw.DumpRing(cr.port, cr.ring, filter)
		if errors.Is(err, l2switch.ErrNoRing) {
			writeErr(w, 409, err)
			return
		} else if err != nil {
			writeErr(w, 404, err)
			return
		}
		if cr.count > 0 && len(frames) > cr.count { // the newest count
			for _, f := range frames[:len(frames)-cr.count] {
				f.Buf.Release()
			}
			frames = frames[len(frames)-cr.count:]
		}
		defer func() {
			for _, f := range frames {
				f.Buf.Release()
			}
		}()
		cw, err := newCaptureWriter(w, sw, cr)
		if err != nil {
			return
		}
		for _, f := range frames {
			if cw.write(f) != nil {
				break
			}
		}
		cw.flush()
		return
	}
	if !streams.take() {
		streams.refuse(w, "close one, or dump a ring with ring=")
		return
	}
	defer streams.done()
	c, err := sw.CaptureWith(l2switch.CaptureOptions{Port: cr.port, Filter: filter})
	if err != nil {
		writeErr(w, 404, err)
		return
	}
	defer c.Close()
	cw, err := newCaptureWriter(w, sw, cr)
	if err != nil {
		return
	}
	cw.flush()
	for n := 0; cr.count == 0 || n < cr.count; n++ {
		f, err := c.Next(r.Context())
		if err != nil {
			return
		}
		err = cw.write(f)
		f.Buf.Release()
		if err != nil {
			return
		}
		cw.flush()
	}
}

// captureWriter writes captured frames as pcap or pcapng to an HTTP response.
type captureWriter struct {
	fl   http.Flusher
	pw   *pcapgo.Writer   // pcap
	ng   *pcapgo.NgWriter // pcapng
	ifs  map[string]int   // pcapng interface index by port name
	base pcapgo.NgInterface
	sw   string
}

// newCaptureWriter writes the file header: for pcapng, one interface block per port
// of sw (only cr.port's for a port capture), named for the port. Ports added later
// get theirs when their first frame comes.
func newCaptureWriter(w http.ResponseWriter, sw *l2switch.Switch, cr captureRequest) (*captureWriter, error) {
	cw := &captureWriter{sw: sw.Name()}
	cw.fl, _ = w.(http.Flusher)
	if cr.format == FormatPcap {
		w.Header().Set("Content-Type", "application/vnd.tcpdump.pcap")
		cw.pw = pcapgo.NewWriter(w)
		return cw, cw.pw.WriteFileHeader(captureSnaplen, layers.LinkTypeEthernet)
	}
	w.Header().Set("Content-Type", "application/x-pcapng")
	cw.base = pcapgo.NgInterface{
		OS: runtime.GOOS, LinkType: layers.LinkTypeEthernet, SnapLength: captureSnaplen,
		TimestampResolution: 9, Filter: cr.filter.String(),
	}
	names := []string{cr.port}
	if cr.port == "" {
		names = names[:0]
		for _, p := range sw.Ports() {
			names = append(names, p.Name)
		}
	}
	cw.ifs = make(map[string]int, len(names))
	opts := pcapgo.NgWriterOptions{SectionInfo: pcapgo.NgSectionInfo{
		Hardware: runtime.GOARCH, OS: runtime.GOOS, Application: "vnetd",
		Comment: "vnetd switch " + sw.Name(),
	}}
	first := "(none)" // pcapgo writes the first block with the section; a switch with no ports still needs one
	if len(names) > 0 {
		first = names[0]
	}
	var err error
	if cw.ng, err = pcapgo.NewNgWriterInterface(w, cw.iface(first), opts); err != nil {
		return nil, err
	}
	cw.ifs[first] = 0
	for _, n := range names[min(1, len(names)):] {
		if _, err := cw.addIface(n); err != nil {
			return nil, err
		}
	}
	return cw, nil
}

func (cw *captureWriter) iface(port string) pcapgo.NgInterface {
	i := cw.base
	i.Name = port
	i.Description = "vnetd switch " + cw.sw + " port " + port
	return i
}

func (cw *captureWriter) addIface(port string) (int, error) {
	id, err := cw.ng.AddInterface(cw.iface(port))
	if err == nil {
		cw.ifs[port] = id
	}
	return id, err
}

func (cw *captureWriter) write(f l2switch.CapturedFrame) error {
	b := f.Buf.Bytes()
	ci := gopacket.CaptureInfo{Timestamp: f.Time, CaptureLength: len(b), Length: len(b)}
	if cw.pw != nil {
		return cw.pw.WritePacket(ci, b)
	}
	id, ok := cw.ifs[f.Port]
	if !ok {
		var err error
		if id, err = cw.addIface(f.Port); err != nil {
			return err
		}
	}
	ci.InterfaceIndex = id
	return cw.ng.WritePacket(ci, b)
}

// flush pushes what was written to the client.
func (cw *captureWriter) flush() {
	if cw.ng != nil {
		cw.ng.Flush()
	}
	if cw.fl != nil {
		cw.fl.Flush()
	}
}

// CaptureOptions say what Client.Capture asks for.
type CaptureOptions struct {
	// Port is the port captured (in and out); "" means every frame entering the switch.
	Port string
	// Count stops after this many frames (a ring dump: keeps the newest); 0 means no limit.
	Count int
	// Filter is a pcap-filter expression ("tcp port 80"); "" takes every frame.
	Filter string
	// Format is FormatPcapNG (the default when "") or FormatPcap.
	Format string
	// Ring, when > 0, dumps the last Ring (rounded up to whole seconds) of the ports'
	// capture rings instead of capturing live.
	Ring time.Duration
}

// Capture writes a capture of switch sw into w, live until ctx ends (or o.Count
// frames), or from the capture rings when o.Ring is set.
func (c *Client) Capture(ctx context.Context, sw string, o CaptureOptions, w io.Writer) error {
	q := url.Values{}
	if o.Port != "" {
		q.Set("port", o.Port)
	}
	if o.Count > 0 {
		q.Set("count", strconv.Itoa(o.Count))
	}
	if o.Filter != "" {
		q.Set("filter", o.Filter)
	}
	if o.Format != "" {
		q.Set("format", o.Format)
	}
	if o.Ring > 0 {
		q.Set("ring", strconv.Itoa(int((o.Ring+time.Second-1)/time.Second)))
	}
	resp, err := c.do(ctx, "/v1/capture/"+url.PathEscape(sw)+"?"+q.Encode())
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.Copy(w, resp.Body)
	if ctx.Err() != nil {
		return nil // interrupted: what arrived so far is a valid capture file
	}
	return err
}
