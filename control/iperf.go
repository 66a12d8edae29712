package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/vnetd/vnetd/daemon"
	"github.com/vnetd/vnetd/iperf"
)

// iperfRoutes adds POST /v1/iperf: an iperf3 client run inside a namespace for the
// test's length, answered with both sides' results. The test stops when the request
// is cancelled. Tests running at once are capped (runs): beyond it a 503.
func iperfRoutes(mux *http.ServeMux, d *daemon.Daemon, runs *apiCap) {
	mux.HandleFunc("POST /v1/iperf", func(w http.ResponseWriter, r *http.Request) {
		var spec daemon.IperfSpec
		dec := json.NewDecoder(io.LimitReader(r.Body, 16<<10))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&spec); err != nil {
			writeErr(w, 400, fmt.Errorf("bad request: %w (want JSON with {namespace,addr,port,time,reverse,udp,rate,parallel,len})", err))
			return
		}
		if !runs.take() { // after the body: a client slow to send it holds no place
			runs.refuse(w, "wait for one to end")
			return
		}
		defer runs.done()
		rep, err := d.Iperf(r.Context(), spec)
		switch {
		case errors.Is(err, daemon.ErrInvalidIperf):
			writeErr(w, 400, err)
		case errors.Is(err, daemon.ErrNoNamespace):
			writeErr(w, 404, err)
		case err != nil:
			writeErr(w, 409, err)
		default:
			writeJSON(w, 200, rep)
		}
	})
}

// Iperf runs an iperf3 client inside a namespace (POST /v1/iperf).
func (c *Client) Iperf(ctx context.Context, s daemon.IperfSpec) (*iperf.Report, error) {
	return post[*iperf.Report](ctx, c, "/v1/iperf", s)
}
