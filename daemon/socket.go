package daemon

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/vnetd/vnetd/config"
	"github.com/vnetd/vnetd/frame"
	l2switch "github.com/vnetd/vnetd/switch"
	"github.com/vnetd/vnetd/vmsock"
)

// socketListener is a running [[socket]]: the listener and the port removals it
// has started. It listens from the prepare step of a reload on; the VMs that connect
// before the commit wait for it (ready), then join the switch it names (sw).
type socketListener struct {
	l         *vmsock.Listener
	removes   sync.WaitGroup
	sw        atomic.Pointer[l2switch.Switch] // nil until committed
	ready     chan struct{}                   // closed at commit or Close
	readyOnce sync.Once
}

func (s *socketListener) setReady() { s.readyOnce.Do(func() { close(s.ready) }) }

// Close stops listening, closes every VM port and waits until they left the switch.
func (s *socketListener) Close() error {
	s.setReady()
	err := s.l.Close()
	s.removes.Wait()
	return err
}

// openSocketAtt starts a [[socket]] listener. Every VM connection (stream) or peer
// address (dgram) becomes its own port on the switch, named "sock:PATH#N", and leaves
// it when the connection ends. A port the switch refuses is closed, so the VM sees
// its link drop instead of a silent black hole.
func openSocketAtt(d *Daemon, cfg any) (*openAtt, error) {
	s := cfg.(config.Socket)
	log := d.log.With("socket", s.Path)
	sl := &socketListener{ready: make(chan struct{})}
	l, err := vmsock.Listen(vmsock.Options{
		Path: s.Path, Protocol: s.Protocol, Logger: log,
		MaxConns: orDefault(s.MaxConns, config.DefaultSocketMaxConns), FrameTimeout: orDefault(s.FrameTimeout, config.DefaultSocketFrameTimeout),
		MaxPeers: orDefault(s.MaxPeers, config.DefaultSocketMaxPeers), PeerIdle: orDefault(s.PeerIdle, config.DefaultSocketPeerIdle),
		OnPort: func(p frame.Port, name string) {
			<-sl.ready
			sw := sl.sw.Load()
			if sw == nil {
				log.Warn("vm port refused: the socket was not started", "port", name)
				p.Close()
				return
			}
			if err := sw.AddPort(d.wrapSwitchPort(s.Switch, name, p, securityPolicy(s.Security)), l2switch.PortConfig{Name: name, VLAN: s.VLAN, Trunk: s.Trunk, Native: s.Native, MaxMACs: s.MaxMACs}); err != nil {
				d.impairs.forget(s.Switch + "/" + name)
				d.forgetLink(s.Switch + "/" + name)
				log.Warn("vm port refused", "port", name, "err", err)
				p.Close()
			}
		},
		// OnPortGone runs on the port's own reader or writer, which RemovePort
		// waits for: remove it from another goroutine.
		OnPortGone: func(name string) {
			sw := sl.sw.Load()
			if sw == nil {
				return
			}
			sl.removes.Add(1)
			go func() {
				defer sl.removes.Done()
				sw.RemovePort(name)
			}()
		},
	})
	if err != nil {
		return nil, err
	}
	sl.l = l
	return &openAtt{closer: sl, attached: func(d *Daemon) {
		if e := d.switches[s.Switch]; e != nil {
			sl.sw.Store(e.sw)
		}
		sl.setReady()
	}, up: []any{"socket up", "socket", s.Path, "protocol", s.Protocol, "switch", s.Switch}}, nil
}

// orDefault is v, or def when v is not positive (a limit the config left out).
func orDefault[T int | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// SocketStatus is one [[socket]] listener with its counters: connections (stream)
// or peers (dgram) attached now and refused at the cap, stalled frames, expired and
// gone peers, malformed input; and the frames it dropped before any VM's port took
// them, by reason (a VM's own port lists its drops on the switch).
type SocketStatus struct {
	Path     string            `json:"path"`
	Switch   string            `json:"switch"`
	Protocol string            `json:"protocol"`
	Stats    vmsock.Stats      `json:"stats"`
	Drops    map[string]uint64 `json:"drops"`
}

// socketStatusLocked lists the running [[socket]] listeners in config order.
func (d *Daemon) socketStatusLocked() []SocketStatus {
	out := []SocketStatus{}
	for _, sc := range d.cfg.Sockets {
		if a := d.attachments["socket:"+sc.Path]; a != nil {
			if sl, ok := a.closer.(*socketListener); ok && sl.l != nil {
				drops := sl.l.Drops()
				if drops == nil {
					drops = map[string]uint64{}
				}
				out = append(out, SocketStatus{Path: sc.Path, Switch: sc.Switch, Protocol: sc.Protocol, Stats: sl.l.Stats(), Drops: drops})
			}
		}
	}
	return out
}
