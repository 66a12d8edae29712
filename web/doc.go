// Package web provides vnetd's topology page: one self-contained HTML file (no CDN, no
// build step) that polls the daemon's read-only JSON API every second and draws the
// lab as a graph laid out automatically, each link labelled with its live rate and
// drops; clicking a node shows its addresses, routes and counters, and a switch port
// can be captured from the page as a pcap download. Package control serves it.
package web
