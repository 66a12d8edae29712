package l2switch

import (
	"fmt"

	"github.com/vnetd/vnetd/frame"
)

// Explanation is what a switch would do with one frame, decided by the code that
// forwards frames (classify, the FDB lookup, the flood set) without sending it or
// learning its source.
type Explanation struct {
	// In is the ingress port.
	In string `json:"in"`
	// VLAN is the VLAN the frame was classified to (0 when dropped before).
	VLAN uint16 `json:"vlan"`
	// TaggedIn: the frame came with an 802.1Q tag.
	TaggedIn bool `json:"tagged_in"`
	// Drop is the drop reason (a Drop* name), "" when the frame goes out.
	Drop string `json:"drop,omitempty"`
	// Known: the destination was found in the FDB (else: flooded, or multicast).
	Known bool `json:"known"`
	// Out are the egress ports, with Tagged saying which send it tagged.
	Out []string `json:"out"`
	// Tagged lists, per Out, whether the frame leaves with a tag.
	Tagged []bool `json:"tagged"`
}

// Explain reports what the switch would do with pkt (a whole frame, or at least its
// Ethernet and 802.1Q headers) arriving on port in. It changes nothing: no learning,
// no counters.
func (s *Switch) Explain(in string, pkt []byte) (Explanation, error) {
	ports := *s.ports.Load()
	var sp *swPort
	for _, p := range ports {
		if p.name == in {
			sp = p
		}
	}
	if sp == nil {
		return Explanation{}, fmt.Errorf("switch %q: no port %q", s.cfg.Name, in)
	}
	e := Explanation{In: in, Out: []string{}, Tagged: []bool{}}
	if len(pkt) < frame.EthHeaderLen {
		e.Drop = DropTooShort
		return e, nil
	}
	vlan, tagged, drop := sp.classify(pkt, len(pkt), &frame.Meta{})
	e.VLAN, e.TaggedIn = vlan, tagged
	if drop >= 0 {
		e.Drop = dropNames[drop]
		return e, nil
	}
	add := func(out *swPort) {
		e.Out = append(e.Out, out.name)
		e.Tagged = append(e.Tagged, out.tagged(vlan))
	}
	if dst := pkt[0:6]; dst[0]&1 == 0 {
		if out := s.fdb.lookup(keyOf(vlan, dst)); out != nil {
			e.Known = true
			switch {
			case out == sp:
				e.Drop = DropSamePort
			case !out.up.Load():
				e.Drop = DropQueueFull // a down port drops what it is sent
			default:
				add(out)
			}
			return e, nil
		}
	}
	for _, out := range ports {
		if out != sp && out.carries(vlan) && out.up.Load() {
			add(out)
		}
	}
	return e, nil
}
