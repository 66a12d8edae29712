package daemon

import (
	"log/slog"

	"github.com/vnetd/vnetd/config"
	"github.com/vnetd/vnetd/frame"
	"github.com/vnetd/vnetd/tap"
)

// OpenTAP opens a [[tap]] section with package tap; it is the default for
// Options.OpenTAP. Created TAPs disappear at Close; attached ones are left in place.
func OpenTAP(c config.TAP, log *slog.Logger) (frame.Port, error) {
	return tap.Open(tap.Options{Name: c.Name, Create: c.Create, MTU: c.MTU, Offload: c.Offload, Logger: log})
}
