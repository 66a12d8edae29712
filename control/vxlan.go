package control

import (
	"context"
	"net/http"
	"net/url"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vnetd/vnetd/daemon"
)

// vxlanRoutes serves GET /v1/vxlan/{switch}: the switch's tunnels with their remotes,
// learned MACs and counters.
func vxlanRoutes(mux *http.ServeMux, d *daemon.Daemon) {
	mux.HandleFunc("GET /v1/vxlan/{switch}", func(w http.ResponseWriter, r *http.Request) {
		vs, err := d.VXLANs(r.PathValue("switch"))
		if err != nil {
			writeErr(w, 404, err)
			return
		}
		writeJSON(w, 200, vs)
	})
}

// VXLAN lists the VXLAN tunnels on a switch.
func (c *Client) VXLAN(ctx context.Context, sw string) ([]daemon.VXLANStatus, error) {
	var vs []daemon.VXLANStatus
	err := c.Get(ctx, "/v1/vxlan/"+url.PathEscape(sw), &vs)
	return vs, err
}

var (
	descVXFrames    = prometheus.NewDesc("vnetd_vxlan_frames_total", "Frames a VXLAN tunnel decapsulated (rx) or sent (tx; a flooded frame once per remote).", []string{"vxlan", "direction"}, nil)
	descVXBytes     = prometheus.NewDesc("vnetd_vxlan_bytes_total", "Inner frame bytes a VXLAN tunnel decapsulated (rx) or sent (tx).", []string{"vxlan", "direction"}, nil)
	descVXDrops     = prometheus.NewDesc("vnetd_vxlan_drops_total", "Frames or datagrams a VXLAN tunnel dropped, by reason.", []string{"vxlan", "reason"}, nil)
	descVXMACs      = prometheus.NewDesc("vnetd_vxlan_macs", "MACs a VXLAN tunnel learned behind remote VTEPs.", []string{"vxlan"}, nil)
	descVXFlooded   = prometheus.NewDesc("vnetd_vxlan_flooded_total", "Frames a VXLAN tunnel replicated to every static remote.", []string{"vxlan"}, nil)
	descVXCoalesced = prometheus.NewDesc("vnetd_vxlan_rx_coalesced_total", "Received TCP segments a VXLAN tunnel merged into the frame before them (a superframe).", []string{"vxlan"}, nil)
	descVXRFrames   = prometheus.NewDesc("vnetd_vxlan_remote_frames_total", "Frames to (tx) or from (rx) one remote VTEP.", []string{"vxlan", "remote", "direction"}, nil)
	descVXRBytes    = prometheus.NewDesc("vnetd_vxlan_remote_bytes_total", "Inner bytes to (tx) or from (rx) one remote VTEP.", []string{"vxlan", "remote", "direction"}, nil)
)

var vxlanDescs = []*prometheus.Desc{descVXFrames, descVXBytes, descVXDrops, descVXMACs, descVXFlooded, descVXCoalesced, descVXRFrames, descVXRBytes}

// collectVXLAN emits every tunnel's metrics.
func collectVXLAN(d *daemon.Daemon, ch chan<- prometheus.Metric) {
	vs, err := d.VXLANs("")
	if err != nil {
		return
	}
	ctr := prometheus.CounterValue
	for _, v := range vs {
		s := v.Stats
		c := s.Counters
		for _, m := range []struct {
			desc *prometheus.Desc
			val  uint64
			dir  string
		}{{descVXFrames, c.RxFrames, "rx"}, {descVXFrames, c.TxFrames, "tx"}, {descVXBytes, c.RxBytes, "rx"}, {descVXBytes, c.TxBytes, "tx"}} {
			ch <- prometheus.MustNewConstMetric(m.desc, ctr, float64(m.val), v.Name, m.dir)
		}
		for reason, n := range map[string]uint64{
			"rx_malformed": s.RxMalformed, "rx_bad_vni": s.RxBadVNI, "rx_oversize": s.RxOversize, "rx_unknown_remote": s.RxUnknownRemote,
			"tx_oversize": s.TxOversize, "tx_no_remote": s.TxNoRemote, "tx_errors": s.TxErrors, "tx_queue_full": s.TxQueueFull,
			"learn_limited": s.LearnLimited,
		} {
			ch <- prometheus.MustNewConstMetric(descVXDrops, ctr, float64(n), v.Name, reason)
		}
		ch <- prometheus.MustNewConstMetric(descVXMACs, prometheus.GaugeValue, float64(s.MACs), v.Name)
		ch <- prometheus.MustNewConstMetric(descVXFlooded, ctr, float64(s.TxFlooded), v.Name)
		ch <- prometheus.MustNewConstMetric(descVXCoalesced, ctr, float64(s.RxCoalesced), v.Name)
		for _, r := range v.Remotes {
			a := r.Addr.String()
			ch <- prometheus.MustNewConstMetric(descVXRFrames, ctr, float64(r.Counters.RxFrames), v.Name, a, "rx")
			ch <- prometheus.MustNewConstMetric(descVXRFrames, ctr, float64(r.Counters.TxFrames), v.Name, a, "tx")
			ch <- prometheus.MustNewConstMetric(descVXRBytes, ctr, float64(r.Counters.RxBytes), v.Name, a, "rx")
			ch <- prometheus.MustNewConstMetric(descVXRBytes, ctr, float64(r.Counters.TxBytes), v.Name, a, "tx")
		}
	}
}
