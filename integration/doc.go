// Package integration holds end-to-end tests: the real vnetd binary, and tests that
// need root (host TAPs, veths). Root tests create their own network namespaces and
// keep every device and address inside them (see netns_test.go); they skip when not
// root unless VNETD_INTEGRATION=1 is set, in which case they fail.
package integration
