package daemon

import (
	"maps"
	"sync"
)

// APIStatus is what the control API refused because one of its caps was reached
// (connections, capture streams, ping streams, iperf runs, checks: see the Limits
// section of docs/daemon.md). The daemon keeps the counters so that every listener
// serving the API (the control socket, the web and metrics listeners) counts into
// the same place, which /v1/status and /metrics read.
type APIStatus struct {
	// Refused counts refusals by kind ("connections", "capture", "ping", ...); a
	// kind never refused is absent.
	Refused map[string]uint64 `json:"refused,omitempty"`
}

// apiRefusals counts the control API's refusals by kind; the zero value is ready.
type apiRefusals struct {
	mu sync.Mutex
	n  map[string]uint64
}

// CountAPIRefused counts one control API refusal of kind (a connection or request
// turned away at a cap).
func (d *Daemon) CountAPIRefused(kind string) {
	d.api.mu.Lock()
	defer d.api.mu.Unlock()
	if d.api.n == nil {
		d.api.n = map[string]uint64{}
	}
	d.api.n[kind]++
}

// APIStatus snapshots the control API's refusal counters.
func (d *Daemon) APIStatus() APIStatus {
	d.api.mu.Lock()
	defer d.api.mu.Unlock()
	return APIStatus{Refused: maps.Clone(d.api.n)}
}
