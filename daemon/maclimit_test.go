package daemon

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vnetd/vnetd/config"
	"github.com/vnetd/vnetd/internal/testwait"
	l2switch "github.com/vnetd/vnetd/switch"
)

// TestVMMACFloodStopsAtDefault: a VM on a socket sends frames from 9,000 source MACs,
// more than the switch's whole FDB (8192). Its port learns the default
// config.EdgeMaxMACs of them and counts the rest; the namespaces on the switch can
// still be learned afterwards and reach each other. Without a default cap the flood
// fills the FDB and the namespaces' MACs are never learned.
func TestVMMACFloodStopsAtDefault(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "vm.sock")
	d := New(Options{Logger: quiet()})
	defer d.Close()
	c, err := parseB(fmt.Sprintf(vmLab, sock))
	if err != nil {
		t.Fatal(err)
	}
	if c.Sockets[0].MaxMACs != config.EdgeMaxMACs {
		t.Fatalf("socket max_macs = %d, want the default %d", c.Sockets[0].MaxMACs, config.EdgeMaxMACs)
	}
	if err := d.Apply(c); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	vm := dialVM(t, sock, "52:54:00:00:00:01")
	const flood = 9000
	var out []byte
	for i := range flood {
		f := make([]byte, 60)
		copy(f, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x99, 0, byte(i >> 16), byte(i >> 8), byte(i)})
		binary.BigEndian.PutUint16(f[12:], 0x88b5)
		out = binary.BigEndian.AppendUint32(out, uint32(len(f)))
		out = append(out, f...)
	}
	if _, err := vm.c.Write(out); err != nil {
		t.Fatalf("vm write: %v", err)
	}
	sw, _ := d.Switch("lan0")
	var vmPort l2switch.PortStatus
	testwait.Until(10*time.Second, func() bool {
		for _, p := range sw.Ports() {
			if strings.HasPrefix(p.Name, "sock:") {
				vmPort = p
			}
		}
		return vmPort.Counters.RxFrames >= flood
	})
	if vmPort.MACs != config.EdgeMaxMACs || vmPort.MaxMACs != config.EdgeMaxMACs || vmPort.MACLimited != flood-config.EdgeMaxMACs {
		t.Errorf("VM port after the flood: rx %d, macs %d, max_macs %d, mac_limited %d; want macs %d, max_macs %d, mac_limited %d",
			vmPort.Counters.RxFrames, vmPort.MACs, vmPort.MaxMACs, vmPort.MACLimited, config.EdgeMaxMACs, config.EdgeMaxMACs, flood-config.EdgeMaxMACs)
	}
	// The namespaces are learned after the flood and reach each other.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var res PingResult
	if err := d.Ping(ctx, "client", netip.MustParseAddr("10.0.0.1"), 1, time.Second, func(r PingResult) { res = r }); err != nil || res.Error != "" {
		t.Errorf("ping client -> gw after the flood: %v, %+v", err, res)
	}
	fdb, _ := d.FDB("lan0")
	learned := map[string]bool{}
	for _, e := range fdb {
		learned[e.Port] = true
	}
	for _, p := range []string{"client.eth0", "gw.eth0"} {
		if !learned[p] {
			t.Errorf("FDB after the flood has no entry on %s (%d entries)", p, len(fdb))
		}
	}
	if st := sw.Stats(); st.FDBSize > config.EdgeMaxMACs+3 || st.PortLimited != flood-config.EdgeMaxMACs {
		t.Errorf("switch stats %+v: want at most %d entries, port_limited %d", st, config.EdgeMaxMACs+3, flood-config.EdgeMaxMACs)
	}
}
