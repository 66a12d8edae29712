package frame

import "sync/atomic"

// Counters are a port's traffic counters. All fields are atomics: increment them from
// the data path, read them anywhere.
type Counters struct {
	RxFrames  atomic.Uint64
	RxBytes   atomic.Uint64
	TxFrames  atomic.Uint64
	TxBytes   atomic.Uint64
	RxDropped atomic.Uint64
	TxDropped atomic.Uint64

	drops [numDropReasons]atomic.Uint64 // by reason: DropRx, DropTx, Drops
}

// CounterSnapshot is a point-in-time copy of Counters, for listings and JSON.
type CounterSnapshot struct {
	RxFrames  uint64 `json:"rx_frames"`
	RxBytes   uint64 `json:"rx_bytes"`
	TxFrames  uint64 `json:"tx_frames"`
	TxBytes   uint64 `json:"tx_bytes"`
	RxDropped uint64 `json:"rx_dropped"`
	TxDropped uint64 `json:"tx_dropped"`
}

// Snapshot reads every counter.
func (c *Counters) Snapshot() CounterSnapshot {
	return CounterSnapshot{
		RxFrames:  c.RxFrames.Load(),
		RxBytes:   c.RxBytes.Load(),
		TxFrames:  c.TxFrames.Load(),
		TxBytes:   c.TxBytes.Load(),
		RxDropped: c.RxDropped.Load(),
		TxDropped: c.TxDropped.Load(),
	}
}
