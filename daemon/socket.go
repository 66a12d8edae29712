package daemon

import (
	"fmt"
	"sync"

	"github.com/vnetd/vnetd/config"
	"github.com/vnetd/vnetd/frame"
	l2switch "github.com/vnetd/vnetd/switch"
	"github.com/vnetd/vnetd/vmsock"
)

// SocketStatus is one [[socket]] listener and the frames it dropped before any VM's
// port took them (a VM's own port lists its drops on the switch).
type SocketStatus struct {
	Path     string            `json:"path"`
	Switch   string            `json:"switch"`
	Protocol string            `json:"protocol"`
	Drops    map[string]uint64 `json:"drops"`
}

// socketStatusLocked lists the running [[socket]] listeners in config order.
func (d *Daemon) socketStatusLocked() []SocketStatus {
	out := []SocketStatus{}
	for _, s := range d.cfg.Sockets {
		a := d.attachments["socket:"+s.Path]
		if a == nil {
			continue
		}
		sl, ok := a.closer.(*socketListener)
		if !ok || sl.l == nil {
			continue
		}
		drops := sl.l.Drops()
		if drops == nil {
			drops = map[string]uint64{}
		}
		out = append(out, SocketStatus{Path: s.Path, Switch: s.Switch, Protocol: s.Protocol, Drops: drops})
	}
	return out
}

// socketListener is a running [[socket]]: the listener and the port removals it
// has started.
type socketListener struct {
	l       *vmsock.Listener
	removes sync.WaitGroup
}

// Close stops listening, closes every VM port and waits until they left the switch.
func (s *socketListener) Close() error {
	err := s.l.Close()
	s.removes.Wait()
	return err
}

// listenSocket starts a [[socket]] listener. Every VM connection (stream) or peer
// address (dgram) becomes its own port on the switch, named "sock:PATH#N", and leaves
// it when the connection ends. A port the switch refuses is closed, so the VM sees
// its link drop instead of a silent black hole.
func (d *Daemon) listenSocket(key string, s config.Socket) error {
	e := d.switches[s.Switch]
	if e == nil {
		return fmt.Errorf("switch %q is not running", s.Switch)
	}
	sw := e.sw
	log := d.log.With("socket", s.Path)
	sl := &socketListener{}
	l, err := vmsock.Listen(vmsock.Options{
		Path: s.Path, Protocol: s.Protocol, Logger: log,
		OnPort: func(p frame.Port, name string) {
			if err := sw.AddPort(d.wrapSwitchPort(s.Switch, name, p), l2switch.PortConfig{Name: name, MaxMACs: s.MaxMACs}); err != nil {
				d.impairs.forget(s.Switch + "/" + name)
				log.Warn("vm port refused", "port", name, "err", err)
				p.Close()
			}
		},
		// OnPortGone runs on the port's own reader or writer, which RemovePort
		// waits for: remove it from another goroutine.
		OnPortGone: func(name string) {
			sl.removes.Add(1)
			go func() {
				defer sl.removes.Done()
				sw.RemovePort(name)
			}()
		},
	})
	if err != nil {
		return err
	}
	sl.l = l
	d.attachments[key] = &attachment{cfg: s, closer: sl}
	d.log.Info("socket up", "socket", s.Path, "protocol", s.Protocol, "switch", s.Switch)
	return nil
}
