package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/vnetd/vnetd/config"
	"github.com/vnetd/vnetd/daemon"
)

// maxImpairRequest bounds a POST /v1/impair body.
const maxImpairRequest = 16 << 10

// impairRoutes adds the impairment routes: GET lists the impaired ports, POST sets
// (or, without parameters, clears) one.
func impairRoutes(mux *http.ServeMux, d *daemon.Daemon) {
	mux.HandleFunc("GET /v1/impair", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, d.Impairments()) })
	mux.HandleFunc("POST /v1/impair", func(w http.ResponseWriter, r *http.Request) {
		var spec config.ImpairSpec
		dec := json.NewDecoder(io.LimitReader(r.Body, maxImpairRequest))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&spec); err != nil {
			writeErr(w, 400, fmt.Errorf("bad impair request: %w (want JSON with the keys of an [[impair]] table)", err))
			return
		}
		st, err := d.SetImpair(spec)
		switch {
		case errors.Is(err, daemon.ErrInvalidImpair):
			writeErr(w, 400, err)
		case errors.Is(err, daemon.ErrNoPort):
			writeErr(w, 404, err)
		case err != nil:
			writeErr(w, 409, err)
		default:
			writeJSON(w, 200, st)
		}
	})
}

// SetImpair sets or clears an impairment (POST /v1/impair).
func (c *Client) SetImpair(ctx context.Context, s config.ImpairSpec) (daemon.ImpairStatus, error) {
	var st daemon.ImpairStatus
	resp, err := c.send(ctx, "POST", "/v1/impair", s)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	return st, json.NewDecoder(resp.Body).Decode(&st)
}
