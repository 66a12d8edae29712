package daemon

import (
	"errors"
	"log/slog"

	"github.com/vnetd/vnetd/config"
	"github.com/vnetd/vnetd/frame"
	"github.com/vnetd/vnetd/hostif"
	"github.com/vnetd/vnetd/internal/reopen"
)

// OpenHostInterface attaches a [[host_interface]] with package hostif; it is the
// default for Options.OpenHostInterface. Offloads cross the port, and an interface
// that is down is brought up, as `ip link set NAME master br0 up` would: QEMU's
// `-netdev tap,script=no` leaves its TAP down.
//
// An interface deleted under the daemon (ip link del, QEMU exiting with its TAP) takes
// the port down (frames to it dropped and counted) and is attached again in the
// background, with backoff, as soon as an interface of that name exists again; both
// transitions are logged once.
func OpenHostInterface(c config.HostInterface, log *slog.Logger) (frame.Port, error) {
	open := func() (frame.Port, error) {
		p, err := hostif.Open(hostif.Options{Name: c.Name, Logger: log, Offload: true, SetUp: true, Ring: c.Ring})
		if err != nil {
			return nil, err
		}
		return p, nil
	}
	p, err := open()
	if err != nil {
		return nil, err
	}
	return reopen.New(p, reopen.Options{Name: c.Name, Open: open, Logger: log,
		Gone: func(err error) bool { return errors.Is(err, hostif.ErrDown) }}), nil
}
