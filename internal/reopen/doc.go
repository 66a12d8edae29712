// Package reopen provides Port, a decorator for a port whose device can vanish under
// vnetd (a TAP deleted with `ip link del`): when the device is gone the port goes down
// (writes are dropped and counted, readers wait), Options.Open is retried with
// exponential backoff, and once it succeeds the port carries on with the new device.
// Each transition is logged once. The switch never sees the port fail, so it keeps the
// port, its configuration and its counters.
package reopen
