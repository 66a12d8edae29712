#!/bin/sh
# Compares in-process namespace-to-namespace TCP throughput through the router with the
# same through one switch. Last line: ratio=<routed/switched>.
# Usage: bench/router.sh [-mib N] [-runs N]
set -eu
cd "$(dirname "$0")/.."
exec go run ./bench/routerbench "$@"
