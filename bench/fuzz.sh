#!/usr/bin/env bash
# Runs every Go fuzz target of the repository (found with `go test -list '^Fuzz'`) for
# SECONDS each, one after the other, and prints each target's execs and crashes, then a
# summary line. A crashing input is written by the fuzzer to the package's
# testdata/fuzz/TARGET/ (commit it with its fix: it becomes a regression test).
#
# Usage: bench/fuzz.sh [SECONDS] [PACKAGE...]      (default 60 s, every package)
#   FUZZ_MINIMIZE  -fuzzminimizetime (default 2s): minimising a new interesting input is
#                  capped, or a target spends its budget there (config's FuzzParse sat
#                  at 0 execs/s for 27 of 30 s with the default 60 s; offload's
#                  FuzzSegment stalls the same way).
#   FUZZ_MATCH     a regexp: only targets whose name matches run.
#   FUZZ_LOGDIR    where each target's log goes (default a temporary directory).
# Exit status: 1 if any target crashed or failed to run, else 0.
set -uo pipefail
cd "$(dirname "$0")/.."

secs=${1:-60}
shift || true
pkgs=("$@")
[ ${#pkgs[@]} -eq 0 ] && pkgs=(./...)
minimize=${FUZZ_MINIMIZE:-2s}
match=${FUZZ_MATCH:-.}
logdir=${FUZZ_LOGDIR:-$(mktemp -d -t vnetd-fuzz.XXXXXX)}
mkdir -p "$logdir"

# `go test -list` prints a package's matching names, then "ok  PKG ...".
if ! listing=$(go test -list '^Fuzz' "${pkgs[@]}" 2>&1); then
  echo "fuzz.sh: go test -list failed:" >&2
  echo "$listing" >&2
  exit 1
fi
mapfile -t targets < <(echo "$listing" | awk '
  /^Fuzz/ { names[n++] = $1; next }
  /^ok / { for (i = 0; i < n; i++) print $2 " " names[i]; n = 0; next }
  { n = 0 }' | awk -v m="$match" '$2 ~ m')

if [ ${#targets[@]} -eq 0 ]; then
  echo "fuzz.sh: no fuzz targets in ${pkgs[*]} matching $match" >&2
  exit 1
fi

printf '%-44s %12s %10s %8s  %s\n' target execs execs/s crashes note
total=0 crashed=0 failed=0 million=0
for t in "${targets[@]}"; do
  pkg=${t% *} name=${t#* }
  log="$logdir/$(echo "$pkg" | tr / _)_$name.log"
  # Go's fuzzing coordinator sometimes ends a run with a bare "context deadline
  # exceeded" at -fuzztime, having found nothing and written no input (seen with Go
  # 1.26 on several targets, most often on a busy host): such a run is tried once more.
  # A crash always writes its input and is never retried.
  for attempt in 1 2; do
    go test -run '^$' -fuzz "^${name}\$" -fuzztime "${secs}s" -fuzzminimizetime "$minimize" "$pkg" >"$log" 2>&1
    rc=$?
    if [ $rc -eq 0 ] || grep -q 'Failing input written to' "$log" || ! grep -q 'context deadline exceeded' "$log"; then
      break
    fi
  done
  # The fuzzer reports "execs: N" every 3 s and at the end; the largest is the total.
  execs=$(grep -o 'execs: [0-9]*' "$log" | awk '{ if ($2 > m) m = $2 } END { print m + 0 }')
  crashes=0 note=""
  if grep -q 'Failing input written to' "$log"; then
    crashes=1
    note=$(grep -o 'testdata/fuzz/[^ ]*' "$log" | head -1)
    crashed=$((crashed + 1))
  elif [ $rc -ne 0 ]; then
    note="failed (exit $rc): see $log"
    failed=$((failed + 1))
  fi
  [ "$execs" -ge 1000000 ] && million=$((million + 1))
  total=$((total + execs))
  printf '%-44s %12d %10d %8d  %s\n' "${pkg#github.com/vnetd/vnetd/}.$name" "$execs" $((execs / (secs > 0 ? secs : 1))) "$crashes" "$note"
done
echo "fuzz: ${#targets[@]} targets x ${secs}s: $total execs, $crashed crashed, $failed failed to run, $million reached 1e6 execs (logs in $logdir)"
[ $crashed -eq 0 ] && [ $failed -eq 0 ]
