package vxlan

import (
	"net/netip"
	"sort"

	"github.com/vnetd/vnetd/frame"
)

// Stats are a tunnel's counters beyond its frame.Counters, each frame dropped counted
// under one reason.
type Stats struct {
	// RxMalformed: datagrams without the I flag, too short for an inner Ethernet
	// header, or whose inner source MAC is multicast or zero.
	RxMalformed uint64 `json:"rx_malformed"`
	// RxBadVNI: datagrams for another VNI.
	RxBadVNI uint64 `json:"rx_bad_vni"`
	// RxOversize: inner frames longer than the inner MTU allows.
	RxOversize uint64 `json:"rx_oversize"`
	// RxUnknownRemote: datagrams from a VTEP not configured while the table of learned
	// VTEPs was full.
	RxUnknownRemote uint64 `json:"rx_unknown_remote"`
	// TxOversize: frames longer than the inner MTU (or superframes), never fragmented.
	TxOversize uint64 `json:"tx_oversize"`
	// TxNoRemote: frames to flood with no static remote to flood to.
	TxNoRemote uint64 `json:"tx_no_remote"`
	// TxFlooded: frames replicated to every static remote.
	TxFlooded uint64 `json:"tx_flooded"`
	// TxErrors: datagrams the kernel refused (past the underlay MTU, no route).
	TxErrors uint64 `json:"tx_errors"`
	// TxQueueFull: datagrams dropped because a socket's send buffer was full.
	TxQueueFull uint64 `json:"tx_queue_full"`
	// TxMalformed: superframes or partial-checksum frames that could not be
	// segmented or checksummed.
	TxMalformed uint64 `json:"tx_malformed"`
	// TxSegmented: segments made from superframes at the tunnel edge; TxGSO: UDP GSO
	// sends (each several datagrams in one system call).
	TxSegmented uint64 `json:"tx_segmented"`
	TxGSO       uint64 `json:"tx_gso"`
	// RxGRO: coalesced receives (UDP GRO: several datagrams in one buffer, split here).
	RxGRO uint64 `json:"rx_gro"`
	// RxCoalesced: received TCP segments merged into the frame before them (a
	// superframe; see offload.Coalesce).
	RxCoalesced uint64 `json:"rx_coalesced"`
	// MACs is the number of learned MACs; MaxMACs its cap.
	MACs    int `json:"macs"`
	MaxMACs int `json:"max_macs"`
	// Learned, Moved, Aged: learning events; LearnLimited: sources not learned because
	// the table was full.
	Learned      uint64 `json:"learned"`
	Moved        uint64 `json:"moved"`
	Aged         uint64 `json:"aged"`
	LearnLimited uint64 `json:"learn_limited"`
	// Counters are the port's traffic counters.
	Counters frame.CounterSnapshot `json:"counters"`
}

// Stats returns the tunnel's counters.
func (p *Port) Stats() Stats {
	return Stats{
		RxMalformed: p.stats.rxMalformed.Load(), RxBadVNI: p.stats.rxBadVNI.Load(),
		RxOversize: p.stats.rxOversize.Load(), RxUnknownRemote: p.stats.rxUnknown.Load(),
		TxOversize: p.stats.txOversize.Load(), TxNoRemote: p.stats.txNoRemote.Load(),
		TxFlooded: p.stats.txFlooded.Load(), TxErrors: p.stats.txErrors.Load(),
		TxQueueFull: p.stats.txQueueFull.Load(), TxMalformed: p.stats.txMalformed.Load(),
		TxSegmented: p.stats.txSegmented.Load(), TxGSO: p.stats.txGSO.Load(), RxGRO: p.stats.rxGRO.Load(), RxCoalesced: p.stats.rxCoalesced.Load(),
		MACs: p.fdb.size(), MaxMACs: p.opts.MaxMACs,
		Learned: p.fdb.learned.Load(), Moved: p.fdb.moved.Load(), Aged: p.fdb.aged.Load(),
		LearnLimited: p.fdb.limited.Load() + p.stats.dynamicLimit.Load(),
		Counters:     p.Counters.Snapshot(),
	}
}

// RemoteStatus is one remote VTEP and its counters.
type RemoteStatus struct {
	// Addr is the VTEP's address.
	Addr netip.Addr `json:"addr"`
	// Static: configured (a flood target); otherwise only learned from.
	Static bool `json:"static"`
	// Counters: Rx decapsulated from it, Tx sent to it, TxDropped sends that failed.
	Counters frame.CounterSnapshot `json:"counters"`
}

// Remotes lists the static remotes in configuration order, then learned ones by
// address.
func (p *Port) Remotes() []RemoteStatus {
	set := p.remotes.Load()
	var out []RemoteStatus
	for _, r := range set.static {
		out = append(out, RemoteStatus{Addr: r.addr, Static: true, Counters: r.c.Snapshot()})
	}
	var dyn []RemoteStatus
	for _, r := range set.byAddr {
		if !r.static {
			dyn = append(dyn, RemoteStatus{Addr: r.addr, Counters: r.c.Snapshot()})
		}
	}
	sort.Slice(dyn, func(i, j int) bool { return dyn[i].Addr.Less(dyn[j].Addr) })
	return append(out, dyn...)
}

// MACs lists the learned MACs, sorted.
func (p *Port) MACs() []MACEntry { return p.fdb.snapshot(p.opts.Now()) }

// Drops implements frame.DropReporter: the tunnel's drops by reason, as the switch
// port listing shows them (the reasons that happened, named as in Stats' JSON).
func (p *Port) Drops() map[string]uint64 {
	s := p.Stats()
	var m map[string]uint64
	for reason, n := range map[string]uint64{
		"rx_malformed": s.RxMalformed, "rx_bad_vni": s.RxBadVNI, "rx_oversize": s.RxOversize,
		"rx_unknown_remote": s.RxUnknownRemote, "tx_oversize": s.TxOversize, "tx_no_remote": s.TxNoRemote,
		"tx_errors": s.TxErrors, "tx_queue_full": s.TxQueueFull, "tx_malformed": s.TxMalformed,
	} {
		if n != 0 {
			if m == nil {
				m = make(map[string]uint64)
			}
			m[reason] = n
		}
	}
	return m
}
