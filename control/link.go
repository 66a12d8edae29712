package control

import (
	"context"
	"errors"
	"net/http"
	"net/url"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/vnetd/vnetd/daemon"
)

// maxLinkRequest bounds a POST /v1/link body.
const maxLinkRequest = 4 << 10

// linkRoutes adds the link routes: GET /v1/link lists every port's link state and
// port security, POST sets a link up or down, DELETE /v1/pair/NS/NIC removes a
// pass-through pair (both ends) given either end.
func linkRoutes(mux *http.ServeMux, d *daemon.Daemon) {
	mux.HandleFunc("GET /v1/link", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, d.Links()) })
	postRoute(mux, "/v1/link", maxLinkRequest, `{"namespace","nic"} or {"switch","port"}, and "state": "up" or "down"`,
		func(s daemon.LinkSpec) (any, error) { return d.SetLink(s) },
		map[error]int{daemon.ErrInvalidLink: 400, daemon.ErrNoPort: 404})
	mux.HandleFunc("DELETE /v1/pair/{ns}/{nic}", func(w http.ResponseWriter, r *http.Request) {
		err := d.DeletePair(r.PathValue("ns"), r.PathValue("nic"))
		switch {
		case errors.Is(err, daemon.ErrInvalidLink):
			writeErr(w, 400, err)
		case err != nil:
			writeErr(w, 404, err)
		default:
			writeJSON(w, 200, map[string]string{"result": "removed"})
		}
	})
}

// SetLink sets a port's link state (POST /v1/link).
func (c *Client) SetLink(ctx context.Context, s daemon.LinkSpec) (daemon.LinkStatus, error) {
	return post[daemon.LinkStatus](ctx, c, "/v1/link", s)
}

// Links lists every port's link state and port security (GET /v1/link).
func (c *Client) Links(ctx context.Context) ([]daemon.LinkStatus, error) {
	var out []daemon.LinkStatus
	return out, c.Get(ctx, "/v1/link", &out)
}

// DeletePair removes the pass-through pair one of whose ends is ns's nic.
func (c *Client) DeletePair(ctx context.Context, ns, nic string) error {
	resp, err := c.send(ctx, "DELETE", "/v1/pair/"+url.PathEscape(ns)+"/"+url.PathEscape(nic), nil)
	if err != nil {
		return err
	}
	return resp.Body.Close()
}

var (
	descLinkUp     = prometheus.NewDesc("vnetd_link_up", "A switch port or pair end's administrative link state (1 up, 0 down).", []string{"target"}, nil)
	descLinkDrops  = prometheus.NewDesc("vnetd_port_security_drops_total", "Frames a port's security or link state dropped, by reason (src_mac, arp_spoof, nd_spoof, ip_source, link_down_in, link_down_out, peer_down).", []string{"target", "reason"}, nil)
	descLinkTxDrop = prometheus.NewDesc("vnetd_pair_tx_dropped_total", "Frames a pass-through pair end sent that were dropped because it or its peer was down.", []string{"target"}, nil)
	descSnooped    = prometheus.NewDesc("vnetd_dhcp_snooping_leases", "Addresses DHCP snooping allows on a port now.", []string{"target"}, nil)
	linkDescs      = []*prometheus.Desc{descLinkUp, descLinkDrops, descLinkTxDrop, descSnooped}
)

// collectLinks adds the link and port security metrics.
func collectLinks(links []daemon.LinkStatus, ch chan<- prometheus.Metric) {
	for _, l := range links {
		up := 0.0
		if l.Status.Up {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(descLinkUp, prometheus.GaugeValue, up, l.Target)
		for reason, n := range l.Status.Drops {
			ch <- prometheus.MustNewConstMetric(descLinkDrops, prometheus.CounterValue, float64(n), l.Target, reason)
		}
		if l.Status.PeerUp != nil {
			ch <- prometheus.MustNewConstMetric(descLinkTxDrop, prometheus.CounterValue, float64(l.Status.TxDropped), l.Target)
		}
		if l.Status.Learned != nil {
			ch <- prometheus.MustNewConstMetric(descSnooped, prometheus.GaugeValue, float64(len(l.Status.Learned)), l.Target)
		}
	}
}
