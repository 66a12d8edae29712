package control

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/vnetd/vnetd/daemon"
)

// The [[socket]] listeners' metrics, labelled by socket path.
var (
	descSockPorts     = prometheus.NewDesc("vnetd_socket_ports", "VM connections (stream) or peers (dgram) a socket listener has attached now.", []string{"socket", "protocol"}, nil)
	descSockLimit     = prometheus.NewDesc("vnetd_socket_limit", "A socket listener's max_conns (stream) or max_peers (dgram).", []string{"socket", "protocol"}, nil)
	descSockRefused   = prometheus.NewDesc("vnetd_socket_refused_total", "Stream connections closed at max_conns, or dgram datagrams from new peers dropped at max_peers.", []string{"socket", "protocol"}, nil)
	descSockStalled   = prometheus.NewDesc("vnetd_socket_stalled_total", "Stream connections closed for a frame not finished within frame_timeout.", []string{"socket", "protocol"}, nil)
	descSockMalformed = prometheus.NewDesc("vnetd_socket_malformed_total", "Stream connections closed for an impossible frame length; dgram datagrams too short for a frame.", []string{"socket", "protocol"}, nil)
	descSockRemoved   = prometheus.NewDesc("vnetd_socket_peers_removed_total", "Dgram peers removed, by reason (idle: peer_idle passed without a datagram; gone: their socket no longer exists).", []string{"socket", "protocol", "reason"}, nil)

	socketDescs = []*prometheus.Desc{descSockPorts, descSockLimit, descSockRefused, descSockStalled, descSockMalformed, descSockRemoved}
)

func collectSockets(socks []daemon.SocketStatus, ch chan<- prometheus.Metric) {
	ctr, gauge := prometheus.CounterValue, prometheus.GaugeValue
	for _, s := range socks {
		st := s.Stats
		ch <- prometheus.MustNewConstMetric(descSockPorts, gauge, float64(st.Ports), s.Path, s.Protocol)
		ch <- prometheus.MustNewConstMetric(descSockLimit, gauge, float64(st.Limit), s.Path, s.Protocol)
		ch <- prometheus.MustNewConstMetric(descSockRefused, ctr, float64(st.Refused), s.Path, s.Protocol)
		ch <- prometheus.MustNewConstMetric(descSockStalled, ctr, float64(st.Stalled), s.Path, s.Protocol)
		ch <- prometheus.MustNewConstMetric(descSockMalformed, ctr, float64(st.Malformed), s.Path, s.Protocol)
		ch <- prometheus.MustNewConstMetric(descSockRemoved, ctr, float64(st.Expired), s.Path, s.Protocol, "idle")
		ch <- prometheus.MustNewConstMetric(descSockRemoved, ctr, float64(st.Gone), s.Path, s.Protocol, "gone")
	}
}
