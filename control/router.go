package control

import (
	"fmt"
	"net/http"

	"github.com/vnetd/vnetd/daemon"
)

// routerRoutes serves GET /v1/router/{name} (interfaces, routes and neighbours at
// once) and GET /v1/router/{name}/{view} for addr, route or neigh alone.
func routerRoutes(mux *http.ServeMux, d *daemon.Daemon) {
	mux.HandleFunc("GET /v1/router/{name}", func(w http.ResponseWriter, r *http.Request) {
		rs, err := d.Router(r.PathValue("name"))
		if err != nil {
			writeErr(w, 404, err)
			return
		}
		writeJSON(w, 200, rs)
	})
	mux.HandleFunc("GET /v1/router/{name}/{view}", func(w http.ResponseWriter, r *http.Request) {
		rs, err := d.Router(r.PathValue("name"))
		if err != nil {
			writeErr(w, 404, err)
			return
		}
		switch r.PathValue("view") {
		case "addr":
			writeJSON(w, 200, rs.Interfaces)
		case "route":
			writeJSON(w, 200, rs.Routes)
		case "neigh":
			writeJSON(w, 200, rs.Neighbors)
		default:
			writeErr(w, 404, fmt.Errorf("unknown router view %q (want addr, route or neigh)", r.PathValue("view")))
		}
	})
}
