package control

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/vnetd/vnetd/config"
	"github.com/vnetd/vnetd/daemon"
)

// maxForwardRequest bounds a POST /v1/forwards body.
const maxForwardRequest = 64 << 10

// forwardRoutes adds the runtime forward routes: list, add, remove.
func forwardRoutes(mux *http.ServeMux, d *daemon.Daemon) {
	mux.HandleFunc("GET /v1/forwards", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, d.Forwards()) })
	mux.HandleFunc("POST /v1/forwards", func(w http.ResponseWriter, r *http.Request) {
		var spec config.ForwardSpec
		dec := json.NewDecoder(io.LimitReader(r.Body, maxForwardRequest))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&spec); err != nil {
			writeErr(w, 400, fmt.Errorf("bad forward request: %w (want JSON {listen, namespace, target, protocol, max_conns, max_flows, udp_idle})", err))
			return
		}
		st, err := d.AddForward(spec)
		switch {
		case errors.Is(err, daemon.ErrInvalidForward):
			writeErr(w, 400, err)
		case err != nil:
			writeErr(w, 409, err)
		default:
			writeJSON(w, 200, st)
		}
	})
	mux.HandleFunc("DELETE /v1/forwards/{proto}/{listen}", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("proto") + "/" + r.PathValue("listen")
		if err := d.RemoveForward(name); err != nil {
			writeErr(w, 404, err)
			return
		}
		writeJSON(w, 200, map[string]string{"removed": name})
	})
}

// ForwardPath is the endpoint of one forward, by its name ("tcp/127.0.0.1:8080").
func ForwardPath(name string) string {
	proto, listen, _ := strings.Cut(name, "/")
	return "/v1/forwards/" + url.PathEscape(proto) + "/" + url.PathEscape(listen)
}
