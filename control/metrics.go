package control

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/vnetd/vnetd/daemon"
)

// collector turns a daemon.Status into Prometheus metrics at scrape time, so nothing
// is counted twice and the data path keeps its own atomics.
type collector struct{ d *daemon.Daemon }

var (
	descPortFrames = prometheus.NewDesc("vnetd_port_frames_total", "Frames through a switch port.", []string{"switch", "port", "direction"}, nil)
	descPortBytes  = prometheus.NewDesc("vnetd_port_bytes_total", "Bytes through a switch port.", []string{"switch", "port", "direction"}, nil)
	descPortDrops  = prometheus.NewDesc("vnetd_port_drops_total", "Frames dropped at a switch port, by reason.", []string{"switch", "port", "reason"}, nil)
	descPortQueue  = prometheus.NewDesc("vnetd_port_queue_frames_total", "Frames through one device queue of a multi-queue port (a TAP with queues > 1).", []string{"switch", "port", "queue", "direction"}, nil)
	descPortMACLim = prometheus.NewDesc("vnetd_port_mac_limited_total", "Source MACs a switch port did not learn because it was at its max_macs.", []string{"switch", "port"}, nil)
	descSockMerge  = prometheus.NewDesc("vnetd_socket_coalesced_total", "TCP segments from stream VMs merged into the frame before them (a superframe).", []string{"path"}, nil)
	descSockDrops  = prometheus.NewDesc("vnetd_socket_drops_total", "Frames a VM socket listener dropped before any VM's port took them, by reason (too_short, bad_length, refused_peer, ...).", []string{"path", "reason"}, nil)
	descRingBytes  = prometheus.NewDesc("vnetd_capture_ring_bytes", "Bytes a switch port's capture ring holds (frames and 16-byte headers).", []string{"switch", "port"}, nil)
	descRingOver   = prometheus.NewDesc("vnetd_capture_ring_overwritten_total", "Frames a switch port's capture ring dropped to make room or because they aged out.", []string{"switch", "port"}, nil)
	descCapDropped = prometheus.NewDesc("vnetd_capture_dropped_total", "Frames live capture streams of a switch missed because their reader fell behind (dropped from the capture, never from the switch).", []string{"switch"}, nil)
	descCapStreams = prometheus.NewDesc("vnetd_capture_streams", "Live capture streams open on a switch.", []string{"switch"}, nil)
	descFDB        = prometheus.NewDesc("vnetd_fdb_entries", "Learned MACs in a switch's FDB.", []string{"switch"}, nil)
	descFwdConns   = prometheus.NewDesc("vnetd_forward_accepted_total", "Connections or UDP flows a forward accepted.", []string{"forward"}, nil)
	descFwdBytes   = prometheus.NewDesc("vnetd_forward_bytes_total", "Bytes relayed by a forward.", []string{"forward", "direction"}, nil)
	descFwdErrs    = prometheus.NewDesc("vnetd_forward_dial_errors_total", "Forward connections whose target could not be reached.", []string{"forward"}, nil)
	descFwdRefused = prometheus.NewDesc("vnetd_forward_refused_total", "TCP connections reset or UDP datagrams from new clients dropped because a forward was at max_conns / max_flows.", []string{"forward"}, nil)
	descFwdActive  = prometheus.NewDesc("vnetd_forward_active", "Connections or UDP flows a forward relays now.", []string{"forward"}, nil)
	descFwdLimit   = prometheus.NewDesc("vnetd_forward_limit", "A forward's max_conns (tcp) or max_flows (udp).", []string{"forward"}, nil)
	descDNSFwd     = prometheus.NewDesc("vnetd_dns_forwarded_total", "Queries for names outside a dns service's zone answered by the host's resolvers.", []string{"namespace", "listen"}, nil)
	descDNSFwdErrs = prometheus.NewDesc("vnetd_dns_forward_errors_total", "Forwarded queries no host resolver answered (SERVFAIL).", []string{"namespace", "listen"}, nil)
	descDNSFwdDrop = prometheus.NewDesc("vnetd_dns_forward_dropped_total", "Queries refused with SERVFAIL because forward_max_inflight were waiting already.", []string{"namespace", "listen"}, nil)
	descIperfTests = prometheus.NewDesc("vnetd_iperf3_tests_total", "Tests an iperf3 service ran (reached TEST_RUNNING).", []string{"namespace", "listen"}, nil)
	descIperfRef   = prometheus.NewDesc("vnetd_iperf3_refused_total", "iperf3 clients refused: max_tests busy, more than max_streams, unsupported options.", []string{"namespace", "listen"}, nil)
	descDNSFwdNow  = prometheus.NewDesc("vnetd_dns_forward_in_flight", "Forwarded queries waiting for a host resolver now.", []string{"namespace", "listen"}, nil)
	descDHCPLeases = prometheus.NewDesc("vnetd_dhcp_leases", "Bindings a DHCP server's lease table holds (cap: the service's max_leases).", []string{"namespace", "nic"}, nil)
	descDHCPRefuse = prometheus.NewDesc("vnetd_dhcp_refused_total", "DHCP requests from new clients left unanswered, by reason (cap: the lease table was full; exhausted: no free address).", []string{"namespace", "nic", "reason"}, nil)
	descGwFlows    = prometheus.NewDesc("vnetd_gateway_flows_total", "Flows a gateway relayed, by protocol.", []string{"gateway", "proto"}, nil)
	descGwActive   = prometheus.NewDesc("vnetd_gateway_flows_active", "Flows (host sockets) a gateway has open.", []string{"gateway"}, nil)
	descGwBytes    = prometheus.NewDesc("vnetd_gateway_bytes_total", "Payload bytes a gateway relayed, to or from the host.", []string{"gateway", "direction"}, nil)
	descGwRefused  = prometheus.NewDesc("vnetd_gateway_refused_total", "Gateway flows refused, by reason (dial: the host dial failed; denied: policy; cap: max_flows open; icmp_unsupported: no ping socket allowed).", []string{"gateway", "reason"}, nil)
	descRtrFrames  = prometheus.NewDesc("vnetd_router_frames_total", "Frames a router interface received (rx) or sent (tx).", []string{"router", "iface", "direction"}, nil)
	descRtrBytes   = prometheus.NewDesc("vnetd_router_bytes_total", "Bytes a router interface received (rx) or sent (tx).", []string{"router", "iface", "direction"}, nil)
	descRtrFwd     = prometheus.NewDesc("vnetd_router_forwarded_total", "Packets a router forwarded out of an interface.", []string{"router", "iface"}, nil)
	descRtrICMP    = prometheus.NewDesc("vnetd_router_icmp_errors_total", "ICMP and ICMPv6 errors a router interface sent.", []string{"router", "iface"}, nil)
	descRtrDrops   = prometheus.NewDesc("vnetd_router_drops_total", "Frames a router interface dropped, by reason.", []string{"router", "iface", "reason"}, nil)
	descEchoed     = prometheus.NewDesc("vnetd_echo_udp_answered_total", "Datagrams a UDP echo service answered.", []string{"namespace", "listen"}, nil)
	descEchoRefuse = prometheus.NewDesc("vnetd_echo_udp_unanswered_total", "Datagrams a UDP echo service did not answer, by reason (dropped_reflector: from port 0, a reflecting service's port or its own; rate_limited: the source was over its rate).", []string{"namespace", "listen", "reason"}, nil)
	descNamespaces = prometheus.NewDesc("vnetd_namespaces", "Running namespaces.", nil, nil)
	descNICFrames  = prometheus.NewDesc("vnetd_nic_frames_total", "Frames a namespace NIC received (rx) or sent (tx).", []string{"namespace", "nic", "direction"}, nil)
	descNICBytes   = prometheus.NewDesc("vnetd_nic_bytes_total", "Bytes a namespace NIC received (rx) or sent (tx).", []string{"namespace", "nic", "direction"}, nil)
	descNICDrops   = prometheus.NewDesc("vnetd_nic_drops_total", "Frames a namespace NIC's queues dropped, by direction.", []string{"namespace", "nic", "direction"}, nil)
	descNICByRef   = prometheus.NewDesc("vnetd_nic_rx_by_reference_total", "Frames a namespace NIC received by reference (sharing the sender's buffers) instead of copied.", []string{"namespace", "nic"}, nil)
	descAPIRefused = prometheus.NewDesc("vnetd_api_refused_total", "Control API connections and requests refused at a cap, by kind (connections, capture, ping, iperf, check).", []string{"kind"}, nil)
)

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descPortFrames, descPortBytes, descPortDrops, descPortQueue, descPortMACLim, descSockMerge, descSockDrops, descRingBytes, descRingOver, descCapDropped, descCapStreams, descFDB, descRtrFrames, descRtrBytes, descRtrFwd, descRtrICMP, descRtrDrops, descFwdConns, descFwdBytes, descFwdErrs, descFwdRefused, descFwdActive, descFwdLimit, descDNSFwd, descDNSFwdErrs, descDNSFwdDrop, descDNSFwdNow, descDHCPLeases, descDHCPRefuse, descIperfTests, descIperfRef, descGwFlows, descGwActive, descGwBytes, descGwRefused, descEchoed, descEchoRefuse, descNamespaces, descNICFrames, descNICBytes, descNICDrops, descNICByRef, descAPIRefused} {
		ch <- d
	}
	for _, d := range vxlanDescs {
		ch <- d
	}
	for _, d := range linkDescs {
		ch <- d
	}
	for _, d := range socketDescs {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	collectVXLAN(c.d, ch)
	st := c.d.Status()
	collectLinks(st.Links, ch)
	collectSockets(st.Sockets, ch)
	ctr := prometheus.CounterValue
	for _, k := range refusedKinds {
		ch <- prometheus.MustNewConstMetric(descAPIRefused, ctr, float64(st.API.Refused[k]), k)
	}
	for _, s := range st.Switches {
		ch <- prometheus.MustNewConstMetric(descFDB, prometheus.GaugeValue, float64(s.Stats.FDBSize), s.Name)
		ch <- prometheus.MustNewConstMetric(descCapDropped, ctr, float64(s.Stats.CaptureDropped), s.Name)
		ch <- prometheus.MustNewConstMetric(descCapStreams, prometheus.GaugeValue, float64(s.Stats.Captures), s.Name)
		for _, p := range s.Ports {
			ch <- prometheus.MustNewConstMetric(descPortFrames, ctr, float64(p.Counters.RxFrames), s.Name, p.Name, "rx")
			ch <- prometheus.MustNewConstMetric(descPortFrames, ctr, float64(p.Counters.TxFrames), s.Name, p.Name, "tx")
			ch <- prometheus.MustNewConstMetric(descPortBytes, ctr, float64(p.Counters.RxBytes), s.Name, p.Name, "rx")
			ch <- prometheus.MustNewConstMetric(descPortBytes, ctr, float64(p.Counters.TxBytes), s.Name, p.Name, "tx")
			for i, q := range p.Queues {
				ch <- prometheus.MustNewConstMetric(descPortQueue, ctr, float64(q.RxFrames), s.Name, p.Name, strconv.Itoa(i), "rx")
				ch <- prometheus.MustNewConstMetric(descPortQueue, ctr, float64(q.TxFrames), s.Name, p.Name, strconv.Itoa(i), "tx")
			}
			if p.Ring != nil {
				ch <- prometheus.MustNewConstMetric(descRingBytes, prometheus.GaugeValue, float64(p.Ring.Bytes), s.Name, p.Name)
				ch <- prometheus.MustNewConstMetric(descRingOver, ctr, float64(p.Ring.Overwritten), s.Name, p.Name)
			}
			for reason, n := range p.Drops {
				ch <- prometheus.MustNewConstMetric(descPortDrops, ctr, float64(n), s.Name, p.Name, reason)
			}
			if p.MaxMACs > 0 {
				ch <- prometheus.MustNewConstMetric(descPortMACLim, ctr, float64(p.MACLimited), s.Name, p.Name)
			}
		}
	}
	for _, so := range st.Sockets {
		ch <- prometheus.MustNewConstMetric(descSockMerge, ctr, float64(so.Stats.Coalesced), so.Path)
		for reason, n := range so.Drops {
			ch <- prometheus.MustNewConstMetric(descSockDrops, ctr, float64(n), so.Path, reason)
		}
	}
	for _, r := range st.Routers {
		for _, i := range r.Interfaces {
			ch <- prometheus.MustNewConstMetric(descRtrFrames, ctr, float64(i.Counters.RxFrames), r.Name, i.Name, "rx")
			ch <- prometheus.MustNewConstMetric(descRtrFrames, ctr, float64(i.Counters.TxFrames), r.Name, i.Name, "tx")
			ch <- prometheus.MustNewConstMetric(descRtrBytes, ctr, float64(i.Counters.RxBytes), r.Name, i.Name, "rx")
			ch <- prometheus.MustNewConstMetric(descRtrBytes, ctr, float64(i.Counters.TxBytes), r.Name, i.Name, "tx")
			ch <- prometheus.MustNewConstMetric(descRtrFwd, ctr, float64(i.Forwarded), r.Name, i.Name)
			ch <- prometheus.MustNewConstMetric(descRtrICMP, ctr, float64(i.ICMPErrors), r.Name, i.Name)
			for reason, n := range i.Dropped {
				ch <- prometheus.MustNewConstMetric(descRtrDrops, ctr, float64(n), r.Name, i.Name, reason)
			}
		}
	}
	for _, f := range st.Forwards {
		ch <- prometheus.MustNewConstMetric(descFwdConns, ctr, float64(f.Stats.Accepted), f.Name)
		ch <- prometheus.MustNewConstMetric(descFwdBytes, ctr, float64(f.Stats.BytesIn), f.Name, "in")
		ch <- prometheus.MustNewConstMetric(descFwdBytes, ctr, float64(f.Stats.BytesOut), f.Name, "out")
		ch <- prometheus.MustNewConstMetric(descFwdErrs, ctr, float64(f.Stats.DialErrors), f.Name)
		ch <- prometheus.MustNewConstMetric(descFwdRefused, ctr, float64(f.Stats.Refused), f.Name)
		ch <- prometheus.MustNewConstMetric(descFwdActive, prometheus.GaugeValue, float64(f.Stats.Active), f.Name)
		ch <- prometheus.MustNewConstMetric(descFwdLimit, prometheus.GaugeValue, float64(f.Stats.Limit), f.Name)
	}
	for _, g := range st.Gateways {
		s := g.Stats
		ch <- prometheus.MustNewConstMetric(descGwFlows, ctr, float64(s.FlowsTCP), g.Name, "tcp")
		ch <- prometheus.MustNewConstMetric(descGwFlows, ctr, float64(s.FlowsUDP), g.Name, "udp")
		ch <- prometheus.MustNewConstMetric(descGwFlows, ctr, float64(s.FlowsICMP), g.Name, "icmp")
		ch <- prometheus.MustNewConstMetric(descGwActive, prometheus.GaugeValue, float64(s.FlowsActive), g.Name)
		ch <- prometheus.MustNewConstMetric(descGwBytes, ctr, float64(s.BytesToHost), g.Name, "to_host")
		ch <- prometheus.MustNewConstMetric(descGwBytes, ctr, float64(s.BytesFromHost), g.Name, "from_host")
		ch <- prometheus.MustNewConstMetric(descGwRefused, ctr, float64(s.Refused), g.Name, "dial")
		ch <- prometheus.MustNewConstMetric(descGwRefused, ctr, float64(s.Denied), g.Name, "denied")
		ch <- prometheus.MustNewConstMetric(descGwRefused, ctr, float64(s.DroppedAtCap), g.Name, "cap")
		ch <- prometheus.MustNewConstMetric(descGwRefused, ctr, float64(s.ICMPUnsupported), g.Name, "icmp_unsupported")
	}
	ch <- prometheus.MustNewConstMetric(descNamespaces, prometheus.GaugeValue, float64(len(st.Namespaces)))
	for _, n := range st.Namespaces {
		for _, is := range n.Iperf3 {
			ch <- prometheus.MustNewConstMetric(descIperfTests, ctr, float64(is.Counters.Tests), n.Name, is.Listen)
			ch <- prometheus.MustNewConstMetric(descIperfRef, ctr, float64(is.Counters.Refused), n.Name, is.Listen)
		}
		for _, ds := range n.DNS {
			if f := ds.Forward; f != nil {
				ch <- prometheus.MustNewConstMetric(descDNSFwd, ctr, float64(f.Forwarded), n.Name, ds.Listen)
				ch <- prometheus.MustNewConstMetric(descDNSFwdErrs, ctr, float64(f.Errors), n.Name, ds.Listen)
				ch <- prometheus.MustNewConstMetric(descDNSFwdDrop, ctr, float64(f.Dropped), n.Name, ds.Listen)
				ch <- prometheus.MustNewConstMetric(descDNSFwdNow, prometheus.GaugeValue, float64(f.InFlight), n.Name, ds.Listen)
			}
		}
		for _, e := range n.Echo {
			ch <- prometheus.MustNewConstMetric(descEchoed, ctr, float64(e.Echoed), n.Name, e.Listen)
			ch <- prometheus.MustNewConstMetric(descEchoRefuse, ctr, float64(e.DroppedReflector), n.Name, e.Listen, "dropped_reflector")
			ch <- prometheus.MustNewConstMetric(descEchoRefuse, ctr, float64(e.RateLimited), n.Name, e.Listen, "rate_limited")
		}
		for _, ds := range n.DHCP {
			ch <- prometheus.MustNewConstMetric(descDHCPLeases, prometheus.GaugeValue, float64(ds.Stats.Leases), n.Name, ds.NIC)
			ch <- prometheus.MustNewConstMetric(descDHCPRefuse, ctr, float64(ds.Stats.AtCap), n.Name, ds.NIC, "cap")
			ch <- prometheus.MustNewConstMetric(descDHCPRefuse, ctr, float64(ds.Stats.Exhausted), n.Name, ds.NIC, "exhausted")
		}
		for _, i := range n.Interfaces {
			c := i.Counters
			if c == nil {
				continue
			}
			ch <- prometheus.MustNewConstMetric(descNICFrames, ctr, float64(c.RxFrames), n.Name, i.Name, "rx")
			ch <- prometheus.MustNewConstMetric(descNICFrames, ctr, float64(c.TxFrames), n.Name, i.Name, "tx")
			ch <- prometheus.MustNewConstMetric(descNICBytes, ctr, float64(c.RxBytes), n.Name, i.Name, "rx")
			ch <- prometheus.MustNewConstMetric(descNICBytes, ctr, float64(c.TxBytes), n.Name, i.Name, "tx")
			ch <- prometheus.MustNewConstMetric(descNICDrops, ctr, float64(c.RxDropped), n.Name, i.Name, "rx")
			ch <- prometheus.MustNewConstMetric(descNICDrops, ctr, float64(c.TxDropped), n.Name, i.Name, "tx")
			ch <- prometheus.MustNewConstMetric(descNICByRef, ctr, float64(c.RxByReference), n.Name, i.Name)
		}
	}
}

// Metrics is a running Prometheus endpoint.
type Metrics struct {
	srv  *http.Server
	ln   net.Listener
	done chan struct{}
	once sync.Once
}

// ServeMetrics serves /metrics for d on addr (e.g. "127.0.0.1:9575").
func ServeMetrics(addr string, d *daemon.Daemon, log *slog.Logger) (*Metrics, error) {
	reg := prometheus.NewRegistry()
	if err := reg.Register(collector{d}); err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics listen %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mountWeb(mux, d) // the topology page and the read-only API beside the metrics
	m := &Metrics{ln: ln, done: make(chan struct{}), srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: IdleTimeout, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}}
	go func() {
		defer close(m.done)
		if err := m.srv.Serve(newCapListener(ln, d, 0)); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server", "err", err)
		}
	}()
	return m, nil
}

// Addr is the bound address.
func (m *Metrics) Addr() net.Addr { return m.ln.Addr() }

// Close stops the endpoint; idempotent.
func (m *Metrics) Close() error {
	m.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		m.srv.Shutdown(ctx)
		<-m.done
	})
	return nil
}
