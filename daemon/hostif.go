package daemon

import (
	"log/slog"

	"github.com/vnetd/vnetd/config"
	"github.com/vnetd/vnetd/frame"
	"github.com/vnetd/vnetd/hostif"
)

// OpenHostInterface attaches a [[host_interface]] with package hostif; it is the
// default for Options.OpenHostInterface. Offloads cross the port, and an interface
// that is down is brought up, as `ip link set NAME master br0 up` would: QEMU's
// `-netdev tap,script=no` leaves its TAP down.
func OpenHostInterface(c config.HostInterface, log *slog.Logger) (frame.Port, error) {
	return hostif.Open(hostif.Options{Name: c.Name, Logger: log, Offload: true, SetUp: true, Ring: c.Ring})
}
