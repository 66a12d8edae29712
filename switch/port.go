package l2switch

import (
	"slices"
	"sync/atomic"

	"github.com/vnetd/vnetd/frame"
	"github.com/vnetd/vnetd/internal/worker"
)

// PortConfig describes how a port joins a switch.
type PortConfig struct {
	// Name is the port's unique name on the switch; default p.Info().Name.
	Name string
	// VLAN is an access port's VLAN, carried untagged. 0 means the default VLAN 1.
	// Ignored when Trunk is set.
	VLAN uint16
	// Trunk makes the port a trunk carrying these VLANs tagged.
	Trunk []uint16
	// Native is a trunk's untagged VLAN; 0 means untagged frames are dropped.
	Native uint16
	// MaxMACs caps the MACs learned on this port; 0 means the switch's PortMaxMACs.
	// Sources beyond it are not learned (counted in PortStatus.MACLimited); traffic
	// to them floods.
	MaxMACs int
}

// DefaultVLAN is the VLAN of access ports configured with VLAN 0.
const DefaultVLAN = 1

// Drop reasons, the keys of PortStatus.Drops.
const (
	DropTooShort       = "too_short"        // shorter than an Ethernet header
	DropTooBig         = "too_big"          // larger than the ingress port's MTU allows
	DropBadSource      = "bad_source"       // multicast or zero source MAC
	DropTaggedOnAccess = "tagged_on_access" // 802.1Q frame on an access port
	DropVLANNotAllowed = "vlan_not_allowed" // VLAN not carried by the port
	DropSamePort       = "same_port"        // destination learned on the ingress port
	DropQueueFull      = "queue_full"       // egress queue full, or the port is down (slow or dead port)
	DropOffload        = "offload"          // superframe the egress port cannot take and software could not segment
	DropDoubleTagged   = "double_tagged"    // popping the tag for this port would expose a second tag (VLAN hopping)
	DropPortMACs       = "port_max_macs"    // a new source beyond the port's MAC cap (violation "drop")
)

const (
	dropTooShort = iota
	dropTooBig
	dropBadSource
	dropTaggedOnAccess
	dropVLANNotAllowed
	dropSamePort
	dropQueueFull
	dropOffload
	dropDoubleTagged
	dropPortMACs
	numDrops
)

var dropNames = [numDrops]string{DropTooShort, DropTooBig, DropBadSource, DropTaggedOnAccess,
	DropVLANNotAllowed, DropSamePort, DropQueueFull, DropOffload, DropDoubleTagged, DropPortMACs}

// swPort is a port as the switch sees it. Its VLAN set is immutable after AddPort.
type swPort struct {
	name     string
	p        frame.Port
	info     frame.Info
	trunk    bool
	access   uint16            // access VLAN (trunk: native VLAN or 0)
	allowed  [4096 / 64]uint64 // VLANs carried (trunk)
	out      *frame.Queue      // frames waiting for the writer
	macs     atomic.Int64      // FDB entries on this port
	maxMACs  int64             // cap on macs; 0: none
	macLimit atomic.Uint64     // sources not learned because macs was at maxMACs
	up       atomic.Bool
	stats    frame.Counters
	drops    [numDrops]atomic.Uint64
	segments atomic.Uint64 // frames produced by software segmentation for this port
	done     chan struct{} // closed when the reader has exited

	writer *worker.Lazy // runs writeLoop only while frames are queued (Kick after a push)
	ring   *ring        // always-on capture ring, nil when off (set before the port is published)
}

func newSwPort(p frame.Port, pc PortConfig, queueLen, queueBytes, portMax int) *swPort {
	info := p.Info()
	sp := &swPort{name: pc.Name, p: p, info: info, out: frame.NewQueueBytes(queueLen, queueBytes), done: make(chan struct{}), maxMACs: int64(portMax)}
	if pc.MaxMACs > 0 {
		sp.maxMACs = int64(pc.MaxMACs)
	}
	if sp.name == "" {
		sp.name = info.Name
	}
	if len(pc.Trunk) > 0 {
		sp.trunk = true
		sp.access = pc.Native
		for _, v := range pc.Trunk {
			sp.allowed[v/64] |= 1 << (v % 64)
		}
		if pc.Native != 0 {
			sp.allowed[pc.Native/64] |= 1 << (pc.Native % 64)
		}
	} else {
		sp.access = pc.VLAN
		if sp.access == 0 {
			sp.access = DefaultVLAN
		}
		sp.allowed[sp.access/64] |= 1 << (sp.access % 64)
	}
	sp.up.Store(true)
	return sp
}

// direct reports whether readers write the port's frames themselves: every frame for
// a frame.CapInline port, frames read by reference (byRef) for a frame.CapDirect one.
func (p *swPort) direct(byRef bool) bool {
	return p.info.Caps&frame.CapInline != 0 || byRef && p.info.Caps&frame.CapDirect != 0
}

// carries reports whether the port carries vlan.
func (p *swPort) carries(vlan uint16) bool { return p.allowed[vlan/64]&(1<<(vlan%64)) != 0 }

// tagged reports whether frames of vlan leave this port with an 802.1Q tag.
func (p *swPort) tagged(vlan uint16) bool { return p.trunk && vlan != p.access }

// PortStatus is a port's configuration, state and counters, for listings.
type PortStatus struct {
	Name   string   `json:"name"`
	Up     bool     `json:"up"`
	VLAN   uint16   `json:"vlan,omitempty"`
	Trunk  []uint16 `json:"trunk,omitempty"`
	Native uint16   `json:"native,omitempty"`
	MACs   int64    `json:"macs"`
	// MaxMACs is the port's cap on learned MACs (0: none); MACLimited counts the
	// sources not learned because it was reached.
	MaxMACs    int64                 `json:"max_macs,omitempty"`
	MACLimited uint64                `json:"mac_limited,omitempty"`
	Counters   frame.CounterSnapshot `json:"counters"`
	Drops      map[string]uint64     `json:"drops"`
	Segments   uint64                `json:"segmented"`
	Ring       *RingStatus           `json:"capture_ring,omitempty"`
	// Queues is each device queue's frames for a port over several (a multi-queue
	// TAP); nil for the rest.
	Queues []frame.QueueCounts `json:"queues,omitempty"`
}

func (p *swPort) status() PortStatus {
	st := PortStatus{
		Name: p.name, Up: p.up.Load() && frame.DeviceUp(p.p), MACs: p.macs.Load(), MaxMACs: p.maxMACs, MACLimited: p.macLimit.Load(),
		Counters: p.stats.Snapshot(), Drops: make(map[string]uint64), Segments: p.segments.Load(),
		Ring: p.ring.status(), Queues: frame.PortQueues(p.p),
	}
	if p.trunk {
		st.Native = p.access
		for v := uint16(1); v < 4095; v++ {
			if p.carries(v) && v != p.access {
				st.Trunk = append(st.Trunk, v)
			}
		}
	} else {
		st.VLAN = p.access
	}
	for i := range p.drops {
		if v := p.drops[i].Load(); v != 0 {
			st.Drops[dropNames[i]] = v
		}
	}
	for reason, v := range frame.PortDrops(p.p) { // the port's own, past any decorator
		st.Drops[reason] += v
	}
	return st
}

// validVLANs reports an invalid VLAN id in pc, or -1.
func validVLANs(pc PortConfig) int {
	ids := append(slices.Clone(pc.Trunk), pc.VLAN, pc.Native)
	for _, v := range ids {
		if v > 4094 {
			return int(v)
		}
	}
	return -1
}
