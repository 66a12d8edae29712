// Package service provides the built-in servers vnetd runs inside namespaces: echo
// (TCP and UDP), discard (TCP and UDP) and http (a small page and a JSON endpoint
// naming the namespace, its addresses and the client's address as seen from inside).
// They run on any Net, so they work on a namespace stack or on the host alike.
package service
