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
	postRoute(mux, "/v1/impair", maxImpairRequest, "the keys of an [[impair]] table",
		func(spec config.ImpairSpec) (any, error) { return d.SetImpair(spec) },
		map[error]int{daemon.ErrInvalidImpair: 400, daemon.ErrNoPort: 404})
}

// postRoute adds POST path: a JSON body of at most limit bytes decoded into a T
// (unknown keys refused; want describes it), answered with do's result, or with the
// status codes maps its errors to (409 for any other).
func postRoute[T any](mux *http.ServeMux, path string, limit int64, want string, do func(T) (any, error), codes map[error]int) {
	mux.HandleFunc("POST "+path, func(w http.ResponseWriter, r *http.Request) {
		var req T
		dec := json.NewDecoder(io.LimitReader(r.Body, limit))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			writeErr(w, 400, fmt.Errorf("bad request: %w (want JSON with %s)", err, want))
			return
		}
		out, err := do(req)
		if err != nil {
			code := 409
			for target, c := range codes {
				if errors.Is(err, target) {
					code = c
				}
			}
			writeErr(w, code, err)
			return
		}
		writeJSON(w, 200, out)
	})
}

// post sends in to path and decodes the answer into a T.
func post[T any](ctx context.Context, c *Client, path string, in any) (T, error) {
	var out T
	resp, err := c.send(ctx, "POST", path, in)
	if err != nil {
		return out, err
	}
	defer resp.Body.Close()
	return out, json.NewDecoder(resp.Body).Decode(&out)
}

// SetImpair sets or clears an impairment (POST /v1/impair).
func (c *Client) SetImpair(ctx context.Context, s config.ImpairSpec) (daemon.ImpairStatus, error) {
	return post[daemon.ImpairStatus](ctx, c, "/v1/impair", s)
}
