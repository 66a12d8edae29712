#!/usr/bin/env bash
# bench/hostif.sh: kernel netns A - veth - [hostif - vnetd switch - hostif] - veth - netns B
# versus the same two netns over veth + a Linux bridge. The vnetd side runs in its own
# netns (S) holding the veth ends it attaches through AF_PACKET; the bridge lives in a
# fourth netns (R). Everything lives in netns this script creates and deletes; nothing
# is configured in the root netns.
# Prints each figure and the ratios; the last line is ratio=<hostif 1-stream / bridge>.
# Usage: sudo bench/hostif.sh [seconds per run, default 5]
# Env: OFFLOAD=false keeps offload metadata from crossing the ports; BATCH=n frames per
# read; BLOCK=KiB, BLOCKS=n, TOV=duration size the receive ring; BYPASS=true skips the qdisc;
# NORING=true reads with recvmmsg instead of the ring.
set -eo pipefail
T=${1:-5}
cd "$(dirname "$0")/.."
command -v iperf3 >/dev/null || { apt-get update -qq && apt-get install -y -qq iperf3 >/dev/null; }
S=$$
NA=hb-a-$S NB=hb-b-$S NS=hb-s-$S NR=hb-r-$S
BIN=$(mktemp -d)/hostifswitch
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for n in $NA $NB $NS $NR; do ip netns del "$n" 2>/dev/null || true; done
  rm -rf "$(dirname "$BIN")"
}
trap cleanup EXIT
go build -o "$BIN" ./bench/hostifswitch
for n in $NA $NB $NS $NR; do ip netns add "$n"; ip -n "$n" link set lo up; done

# vnetd path: veth pairs with one end in S (attached by hostifswitch), the other in A / B.
for x in a b; do
  ip -n $NS link add h$x type veth peer name v$x
  ip -n $NS link set h$x up
done
ip -n $NS link set va netns $NA; ip -n $NS link set vb netns $NB
ip -n $NA addr add 10.77.0.1/24 dev va; ip -n $NA link set va up
ip -n $NB addr add 10.77.0.2/24 dev vb; ip -n $NB link set vb up
ip netns exec $NS "$BIN" -a ha -b hb ${OFFLOAD:+-offload=$OFFLOAD} ${BATCH:+-batch=$BATCH} \
  ${BLOCK:+-block=$BLOCK} ${BLOCKS:+-blocks=$BLOCKS} ${TOV:+-tov=$TOV} ${BYPASS:+-bypass=$BYPASS} ${NORING:+-noring=$NORING} > "$BIN.out" 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do grep -q ready "$BIN.out" 2>/dev/null && break; sleep 0.1; done
grep -q ready "$BIN.out" || { cat "$BIN.out"; exit 1; }

# kernel path: veths into a bridge inside R.
ip -n $NR link add br0 type bridge; ip -n $NR link set br0 up
for x in a b; do
  ip -n $NR link add vb$x type veth peer name ve$x
  ip -n $NR link set vb$x master br0 up
done
ip -n $NR link set vea netns $NA; ip -n $NR link set veb netns $NB
ip -n $NA addr add 10.78.0.1/24 dev vea; ip -n $NA link set vea up
ip -n $NB addr add 10.78.0.2/24 dev veb; ip -n $NB link set veb up

ip netns exec $NB iperf3 -s -p 5201 >/dev/null 2>&1 & PIDS+=($!)
sleep 0.5
ip netns exec $NA ping -c 1 -W 2 10.77.0.2 >/dev/null || { echo "no ping over the hostif path"; cat "$BIN.out"; exit 1; }
ip netns exec $NA ping -c 1 -W 2 10.78.0.2 >/dev/null || { echo "no ping over the bridge"; exit 1; }

tcp() { # dst streams -> Gbit/s
  ip netns exec $NA timeout $((T + 10)) iperf3 -c "$1" -p 5201 -t "$T" -P "$2" -J |
    python3 -c 'import json,sys; print("%.2f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9))'
}
rtt() { # dst -> average ping RTT in ms (20 pings)
  ip netns exec $NA ping -q -c 20 -i 0.05 -W 2 "$1" | sed -n 's|.*= [0-9.]*/\([0-9.]*\)/.*|\1|p'
}
ratio() { python3 -c "print('%.2f' % ($1/$2))"; }

H1=$(tcp 10.77.0.2 1); B1=$(tcp 10.78.0.2 1)
H4=$(tcp 10.77.0.2 4); B4=$(tcp 10.78.0.2 4)
HR=$(rtt 10.77.0.2);   BR=$(rtt 10.78.0.2)
echo "tcp 1 stream:  hostif=${H1} Gbit/s bridge=${B1} Gbit/s ratio=$(ratio "$H1" "$B1")"
echo "tcp 4 streams: hostif=${H4} Gbit/s bridge=${B4} Gbit/s ratio=$(ratio "$H4" "$B4")"
echo "ping rtt avg:  hostif=${HR} ms bridge=${BR} ms"
echo "ratio=$(ratio "$H1" "$B1")"
