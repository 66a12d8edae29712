// Package control provides vnetd's control API, HTTP+JSON over a unix socket (mode
// 0600, peers checked with SO_PEERCRED: same uid or root), and the client the CLI uses.
//
// Endpoints (all GET, JSON unless noted):
//
//	/v1/status                    daemon.Status
//	/v1/fdb/{switch}              []FDBEntry
//	/v1/ns/{name}/addr            []Interface
//	/v1/ns/{name}/route           []Route
//	/v1/ns/{name}/neigh           []Neighbor
//	/v1/ns/{name}/sockets         []Socket
//	/v1/ping/{ns}/{addr}?count=N  newline-delimited PingResult objects, streamed
//	/v1/version                   Version
//
// Errors are {"error": "..."} with a 4xx/5xx status; a 503 names a cap reached
// (connections, capture and ping streams, iperf tests, checks: see limits.go), and
// the daemon counts it (daemon.Status.API, vnetd_api_refused_total).
package control
