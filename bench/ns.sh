#!/usr/bin/env bash
# bench/ns.sh: namespace <-> namespace TCP through a vnetd switch at MTU 1500 (in-process,
# BenchmarkSwitchedTCP) versus iperf3 between two kernel netns joined by a veth pair, in
# the same run. The kernel netns are created here and deleted on exit; nothing touches
# the root netns. Last line: ratio=<vnetd / kernel veth>.
# Usage: sudo bench/ns.sh [seconds per run, default 5]
set -eo pipefail
T=${1:-5}
cd "$(dirname "$0")/.."
command -v iperf3 >/dev/null || { apt-get update -qq && apt-get install -y -qq iperf3 >/dev/null; }
S=$$
NA=nb-a-$S NB=nb-b-$S
SRV=""
cleanup() {
  [ -n "$SRV" ] && kill "$SRV" 2>/dev/null || true
  wait 2>/dev/null || true
  ip netns del $NA 2>/dev/null || true
  ip netns del $NB 2>/dev/null || true
}
trap cleanup EXIT

# vnetd: two gVisor namespaces on one l2switch, MTU 1500, one TCP stream.
vnetd=$(go test -run X -bench 'SwitchedTCP/mtu1500$' -benchtime "${T}s" ./nsstack/ | awk '/Gbit\/s/ {for (i=1;i<=NF;i++) if ($i=="Gbit/s") print $(i-1)}')
echo "vnetd ns<->ns via switch, MTU 1500, 1 stream: ${vnetd} Gbit/s"

# kernel: two netns over veth, MTU 1500, iperf3 one stream.
ip netns add $NA; ip netns add $NB
ip link add nbva-$S netns $NA type veth peer name nbvb-$S netns $NB
ip -n $NA addr add 10.78.0.1/24 dev nbva-$S; ip -n $NA link set nbva-$S up; ip -n $NA link set lo up
ip -n $NB addr add 10.78.0.2/24 dev nbvb-$S; ip -n $NB link set nbvb-$S up; ip -n $NB link set lo up
ip netns exec $NB iperf3 -s -1 -B 10.78.0.2 >/dev/null 2>&1 &
SRV=$!
sleep 0.5
kernel=$(ip netns exec $NA timeout $((T + 20)) iperf3 -c 10.78.0.2 -t "$T" -J | python3 -c 'import json,sys; print("%.2f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9))')
echo "kernel netns<->netns via veth, MTU 1500, 1 stream: ${kernel} Gbit/s"
python3 -c "print('ratio=%.2f' % ($vnetd / $kernel))"
