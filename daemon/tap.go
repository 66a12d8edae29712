package daemon

import (
	"errors"
	"log/slog"

	"github.com/vnetd/vnetd/config"
	"github.com/vnetd/vnetd/frame"
	"github.com/vnetd/vnetd/internal/reopen"
	"github.com/vnetd/vnetd/tap"
)

// OpenTAP opens a [[tap]] section with package tap; it is the default for
// Options.OpenTAP. Created TAPs disappear at Close; attached ones are left in place.
// A TAP deleted under the daemon takes its port down (frames to it dropped and
// counted) and is reopened in the background, with backoff, until an interface of
// that name can be opened again (for create = true, vnetd creates it again).
//
// With queues > 1 the TAP is opened multi-queue as one port (tap.Group): reads fan in
// from every queue, writes go to the queue of their flow, and a reopen opens every
// queue again.
func OpenTAP(c config.TAP, log *slog.Logger) (frame.Port, error) {
	open := func() (frame.Port, error) {
		o := tap.Options{Name: c.Name, Create: c.Create, MTU: c.MTU, Offload: c.Offload, Queues: c.Queues, Logger: log}
		if c.Queues > 1 {
			g, err := tap.OpenGroup(o)
			if err != nil {
				return nil, err
			}
			return g, nil
		}
		t, err := tap.Open(o)
		if err != nil {
			return nil, err
		}
		return t, nil
	}
	p, err := open()
	if err != nil {
		return nil, err
	}
	return reopen.New(p, reopen.Options{Name: c.Name, Open: open, Logger: log,
		Gone: func(err error) bool { return errors.Is(err, tap.ErrDown) }}), nil
}
