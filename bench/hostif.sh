#!/usr/bin/env bash
# bench/hostif.sh: kernel netns A - veth - [hostif - vnetd switch - hostif] - veth - netns B
# versus the same two netns over veth + a Linux bridge. The vnetd side runs in its own
# netns (S) holding the veth ends it attaches through AF_PACKET; the bridge lives in a
# fourth netns (R). Everything lives in netns this script creates and deletes; nothing
# is configured in the root netns.
# The hostif path is measured with both read paths, recvmmsg (the default, "noring") and
# the TPACKET_V3 ring (Options.Ring), interleaved with the bridge over ROUNDS rounds (default 3); each
# figure is the median. Prints each figure and the ratios; the last line is
# ratio=<hostif 1-stream with the default read path (recvmmsg) / bridge>.
# It also measures a kernel netns <-> a vnetd namespace (in-process gVisor stack) over a
# host interface, TCP both ways, against the same meter between A and B over the bridge.
# Usage: sudo bench/hostif.sh [seconds per run, default 5]
# Env: ROUNDS=n; OFFLOAD=false keeps offload metadata from crossing the ports; BATCH=n
# frames per read; BLOCK=KiB, BLOCKS=n, TOV=duration size the receive ring; BYPASS=true
# skips the qdisc.
set -eo pipefail
T=${1:-5}
ROUNDS=${ROUNDS:-3}
cd "$(dirname "$0")/.."
command -v iperf3 >/dev/null || { apt-get update -qq && apt-get install -y -qq iperf3 >/dev/null; }
S=$$
NA=hb-a-$S NB=hb-b-$S NS=hb-s-$S NR=hb-r-$S NK=hb-k-$S NV=hb-v-$S
BIN=$(mktemp -d)/hostifswitch
NSBIN=$(dirname "$BIN")/tapswitch
PIDS=()
SW=
cleanup() {
  [ -n "$SW" ] && kill "$SW" 2>/dev/null
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for n in $NA $NB $NS $NR $NK $NV; do ip netns del "$n" 2>/dev/null || true; done
  rm -rf "$(dirname "$BIN")"
}
trap cleanup EXIT
go build -o "$BIN" ./bench/hostifswitch
go build -o "$NSBIN" ./bench/tapswitch
for n in $NA $NB $NS $NR $NK $NV; do ip netns add "$n"; ip -n "$n" link set lo up; done

# vnetd path: veth pairs with one end in S (attached by hostifswitch), the other in A / B.
for x in a b; do
  ip -n $NS link add h$x type veth peer name v$x
  ip -n $NS link set h$x up
done
ip -n $NS link set va netns $NA; ip -n $NS link set vb netns $NB
ip -n $NA addr add 10.77.0.1/24 dev va; ip -n $NA link set va up
ip -n $NB addr add 10.77.0.2/24 dev vb; ip -n $NB link set vb up

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

# kernel netns K <-> vnetd namespace over a host interface: a veth pair, one end in K,
# the other in V attached by tapswitch -ns -hostif to a switch with the namespace (the
# TCP sink and source); the same meter's kernel-socket server in B for the bridge.
ip -n $NV link add hk type veth peer name vk
ip -n $NV link set vk netns $NK
ip -n $NK addr add 10.79.0.1/24 dev vk; ip -n $NK link set vk up
ip netns exec $NV "$NSBIN" -ns -hostif hk -nsaddr 10.79.0.2/24 ${OFFLOAD:+-offload=$OFFLOAD} > "$NSBIN.ns" 2>&1 & PIDS+=($!)
ip netns exec $NB "$NSBIN" -serve > "$NSBIN.serve" 2>&1 & PIDS+=($!)
for _ in $(seq 50); do grep -q ready "$NSBIN.ns" 2>/dev/null && grep -q ready "$NSBIN.serve" 2>/dev/null && break; sleep 0.1; done
grep -q ready "$NSBIN.ns" || { cat "$NSBIN.ns"; exit 1; }
grep -q ready "$NSBIN.serve" || { cat "$NSBIN.serve"; exit 1; }

start() { # ring(true|false) -> starts hostifswitch, waits for a ping across it
  ip netns exec $NS "$BIN" -a ha -b hb -ring="$1" ${OFFLOAD:+-offload=$OFFLOAD} ${BATCH:+-batch=$BATCH} \
    ${BLOCK:+-block=$BLOCK} ${BLOCKS:+-blocks=$BLOCKS} ${TOV:+-tov=$TOV} ${BYPASS:+-bypass=$BYPASS} > "$BIN.out" 2>&1 &
  SW=$!
  for _ in $(seq 50); do grep -q ready "$BIN.out" 2>/dev/null && break; sleep 0.1; done
  grep -q ready "$BIN.out" || { cat "$BIN.out"; exit 1; }
  ip netns exec $NA ping -c 3 -i 0.2 -W 2 10.77.0.2 >/dev/null || { echo "no ping over the hostif path (ring=$1)"; cat "$BIN.out"; exit 1; }
}
stop() { kill "$SW"; wait "$SW" 2>/dev/null || true; SW=; }
tcp() { # dst streams -> Gbit/s (one retry: the server may still be closing the last test)
  local out
  for _ in 1 2; do
    if out=$(ip netns exec $NA timeout $((T + 10)) iperf3 -c "$1" -p 5201 -t "$T" -P "$2" -J 2>&1 |
      python3 -c 'import json,sys; print("%.2f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9))' 2>&1); then
      echo "$out"; return
    fi
    sleep 1
  done
  echo "iperf3 to $1 failed" >&2; exit 1
}
rtt() { # dst -> average ping RTT in ms (20 pings)
  ip netns exec $NA ping -q -c 20 -i 0.05 -W 2 "$1" | sed -n 's|.*= [0-9.]*/\([0-9.]*\)/.*|\1|p'
}
median() { python3 -c 'import sys,statistics; print("%.2f" % statistics.median(float(x) for x in sys.argv[1:]))' "$@"; }
ratio() { python3 -c "print('%.2f' % ($1/$2))"; }

sleep 0.3
ip netns exec $NA ping -c 1 -W 2 10.78.0.2 >/dev/null || { echo "no ping over the bridge"; exit 1; }
declare -A R
for r in $(seq "$ROUNDS"); do
  for m in ring noring; do
    start $([ $m = ring ] && echo true || echo false)
    R[$m.1]+=" $(tcp 10.77.0.2 1)"; R[$m.4]+=" $(tcp 10.77.0.2 4)"; R[$m.rtt]+=" $(rtt 10.77.0.2)"
    stop
  done
  R[br.1]+=" $(tcp 10.78.0.2 1)"; R[br.4]+=" $(tcp 10.78.0.2 4)"; R[br.rtt]+=" $(rtt 10.78.0.2)"
done
ip netns exec $NK ping -c 1 -W 2 10.79.0.2 >/dev/null || { echo "no ping to the vnetd namespace"; cat "$NSBIN.ns"; exit 1; }
meter() { # netns mode host -> Gbit/s, measured at the receiving end
  ip netns exec "$1" timeout $((T + 30)) "$NSBIN" -client "$2" -host "$3" -t "$T"
}
for r in $(seq "$ROUNDS"); do
  R[ns.send]+=" $(meter $NK send 10.79.0.2)"; R[bm.send]+=" $(meter $NA send 10.78.0.2)"
  R[ns.recv]+=" $(meter $NK recv 10.79.0.2)"; R[bm.recv]+=" $(meter $NA recv 10.78.0.2)"
done
declare -A M
for k in "${!R[@]}"; do M[$k]=$(median ${R[$k]}); done
echo "runs (Gbit/s, ms): $(for k in ring.1 noring.1 br.1 ring.4 noring.4 br.4 ring.rtt noring.rtt br.rtt; do printf '%s=[%s] ' $k "${R[$k]# }"; done)"
echo "tcp 1 stream:  hostif ring=${M[ring.1]} noring=${M[noring.1]} bridge=${M[br.1]} Gbit/s ratio ring=$(ratio ${M[ring.1]} ${M[br.1]}) noring=$(ratio ${M[noring.1]} ${M[br.1]})"
echo "tcp 4 streams: hostif ring=${M[ring.4]} noring=${M[noring.4]} bridge=${M[br.4]} Gbit/s ratio ring=$(ratio ${M[ring.4]} ${M[br.4]}) noring=$(ratio ${M[noring.4]} ${M[br.4]})"
echo "ping rtt avg:  hostif ring=${M[ring.rtt]} noring=${M[noring.rtt]} bridge=${M[br.rtt]} ms"
echo "kernel->vnetd ns (host interface, 1 conn): ${M[ns.send]} Gbit/s, kernel->kernel bridge same meter ${M[bm.send]} Gbit/s, ratio=$(ratio ${M[ns.send]} ${M[bm.send]}) (rounds:${R[ns.send]} vs${R[bm.send]})"
echo "vnetd ns->kernel (host interface, 1 conn): ${M[ns.recv]} Gbit/s, kernel->kernel bridge same meter ${M[bm.recv]} Gbit/s, ratio=$(ratio ${M[ns.recv]} ${M[bm.recv]}) (rounds:${R[ns.recv]} vs${R[bm.recv]})"
echo "ratio=$(ratio ${M[noring.1]} ${M[br.1]})"
