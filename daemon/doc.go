// Package daemon builds the running lab from a config.Config and changes it on reload:
// switches, namespaces (NICs, addresses, routes, pass-through pairs), services and
// forwards. Apply creates everything or nothing on start and applies only the
// differences on reload. It also serves the control API state (Status, FDB, the
// namespaces' views) that package control exposes.
package daemon
