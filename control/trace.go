package control

import (
	"context"
	"net/http"

	"github.com/vnetd/vnetd/daemon"
)

// traceRoutes adds POST /v1/trace: a synthetic packet's path, nothing sent.
func traceRoutes(mux *http.ServeMux, d *daemon.Daemon) {
	postRoute(mux, "/v1/trace", 16<<10, "{switch,port,src,dst,src_mac,dst_mac,proto,dport,ttl,size,df}",
		func(s daemon.TraceSpec) (any, error) { return d.Trace(s) },
		map[error]int{daemon.ErrInvalidTrace: 400, daemon.ErrNoPort: 404})
}

// Trace asks the daemon to trace a synthetic packet (POST /v1/trace).
func (c *Client) Trace(ctx context.Context, s daemon.TraceSpec) (daemon.Trace, error) {
	return post[daemon.Trace](ctx, c, "/v1/trace", s)
}
