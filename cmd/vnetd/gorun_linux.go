package main

import (
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// stopWithGoRun makes a daemon started by `go run ./cmd/vnetd` get SIGTERM when the go
// command exits: `go run ... &` then `kill %1` signals only the go command, which does
// not pass SIGTERM on, and would otherwise leave the daemon holding its sockets.
func stopWithGoRun() {
	if selfCommand() != "go run ./cmd/vnetd" {
		return
	}
	unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(syscall.SIGTERM), 0, 0, 0)
	if os.Getppid() == 1 { // the go command already went before the call above
		syscall.Kill(os.Getpid(), syscall.SIGTERM)
	}
}
