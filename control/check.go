package control

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/vnetd/vnetd/daemon"
)

// checkRoutes adds GET /v1/check: every [[expect]] run in parallel, results in file
// order (200 whatever they are). Runs at once are capped (runs): beyond it a 503.
func checkRoutes(mux *http.ServeMux, d *daemon.Daemon, runs *apiCap) {
	mux.HandleFunc("GET /v1/check", runs.limit("wait for one to end", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, d.Check(r.Context())) }))
}

// Check runs the daemon's reachability checks (GET /v1/check).
func (c *Client) Check(ctx context.Context) ([]daemon.CheckResult, error) {
	var rs []daemon.CheckResult
	resp, err := c.do(ctx, "/v1/check")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return rs, json.NewDecoder(resp.Body).Decode(&rs)
}
