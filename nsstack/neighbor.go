package nsstack

import (
	"fmt"
	"net/netip"

	"github.com/vnetd/vnetd/frame"
	"gvisor.dev/gvisor/pkg/tcpip"
)

// AddNeighbor puts a permanent entry mapping addr to mac in nic's ARP or NDP cache,
// like `ip neigh replace ADDR lladdr MAC nud permanent` (an imported namespace's
// neighbours, so it reaches them before they answer a probe).
func (ns *Namespace) AddNeighbor(nic string, addr netip.Addr, mac frame.MAC) error {
	ns.mu.Lock()
	n, ok := ns.nics[nic]
	ns.mu.Unlock()
	if !ok {
		return fmt.Errorf("add neighbor %s: no nic %q", addr, nic)
	}
	if e := ns.st.AddStaticNeighbor(n.id, protoOf(addr), toTCPIP(addr.Unmap()), tcpip.LinkAddress(mac[:])); e != nil {
		return fmt.Errorf("add neighbor %s on %s: %s", addr, nic, e)
	}
	return nil
}
