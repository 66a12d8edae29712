#!/bin/sh
# Compares in-process namespace-to-namespace TCP throughput through the router with the
# same through one switch. Last line: ratio=<routed/switched>.
# Usage: bench/router.sh [-mib N] [-runs N] [-gso=false]
# The namespaces' NICs send TCP superframes, as the daemon's do; -gso=false makes them
# send MTU-sized segments (per-packet cost instead of per-byte).
set -eu
cd "$(dirname "$0")/.."
exec go run ./bench/routerbench "$@"
