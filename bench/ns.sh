#!/usr/bin/env bash
# bench/ns.sh: namespace <-> namespace TCP through a vnetd switch at MTU 1500 (in-process,
# BenchmarkSwitchedTCP) versus iperf3 between two kernel netns joined by a veth pair, in
# the same run, interleaved over ROUNDS rounds (default 3) so that load from elsewhere
# hits both alike. The kernel netns are created here and deleted on exit; nothing touches
# the root netns. Prints each round; the last line is ratio=<median of the rounds'
# vnetd / kernel veth ratios>.
# Usage: sudo [ROUNDS=n] bench/ns.sh [seconds per run, default 5]
set -eo pipefail
T=${1:-5}
ROUNDS=${ROUNDS:-3}
cd "$(dirname "$0")/.."
command -v iperf3 >/dev/null || { apt-get update -qq && apt-get install -y -qq iperf3 >/dev/null; }
S=$$
NA=nb-a-$S NB=nb-b-$S
SRV=""
BIN=$(mktemp -d)
cleanup() {
  [ -n "$SRV" ] && kill "$SRV" 2>/dev/null || true
  wait 2>/dev/null || true
  ip netns del $NA 2>/dev/null || true
  ip netns del $NB 2>/dev/null || true
  rm -rf "$BIN"
}
trap cleanup EXIT

# vnetd: two gVisor namespaces on one l2switch, MTU 1500, one TCP stream.
go test -c -o "$BIN/nsstack.test" ./nsstack/
vnetd_run() {
  "$BIN/nsstack.test" -test.run X -test.bench 'SwitchedTCP/mtu1500$' -test.benchtime "${T}s" |
    awk '/Gbit\/s/ {for (i=1;i<=NF;i++) if ($i=="Gbit/s") print $(i-1)}'
}

# kernel: two netns over veth, MTU 1500, iperf3 one stream.
ip netns add $NA; ip netns add $NB
ip link add nbva-$S netns $NA type veth peer name nbvb-$S netns $NB
ip -n $NA addr add 10.78.0.1/24 dev nbva-$S; ip -n $NA link set nbva-$S up; ip -n $NA link set lo up
ip -n $NB addr add 10.78.0.2/24 dev nbvb-$S; ip -n $NB link set nbvb-$S up; ip -n $NB link set lo up
ip netns exec $NB iperf3 -s -B 10.78.0.2 >/dev/null 2>&1 &
SRV=$!
sleep 0.5
kernel_run() {
  ip netns exec $NA timeout $((T + 20)) iperf3 -c 10.78.0.2 -t "$T" -J |
    python3 -c 'import json,sys; print("%.2f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9))'
}

ratios=()
for r in $(seq 1 "$ROUNDS"); do
  vnetd=$(vnetd_run)
  kernel=$(kernel_run)
  ratio=$(python3 -c "print('%.2f' % ($vnetd / $kernel))")
  ratios+=("$ratio")
  echo "round $r: vnetd ns<->ns via switch ${vnetd} Gbit/s, kernel netns<->netns via veth ${kernel} Gbit/s (MTU 1500, 1 stream): ${ratio}"
done
python3 -c "import statistics,sys; print('ratio=%.2f' % statistics.median(map(float, sys.argv[1:])))" "${ratios[@]}"
