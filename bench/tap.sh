#!/usr/bin/env bash
# bench/tap.sh: kernel netns A - TAP - vnetd switch - TAP - netns B versus the same two
# netns over veth + a Linux bridge (the bridge in a third netns), with iperf3; then a
# kernel netns K - TAP - vnetd switch - vnetd namespace (in-process gVisor stack), TCP
# both ways at MTU 1500, measured at the receiving end by tapswitch's TCP sink/source
# meter, against the same meter between A and B over the bridge. Everything lives in
# netns this script creates and deletes; nothing is configured in the root netns.
# Prints each figure and the ratios; the last line is ratio=<TAP 1-stream / bridge>, the
# median over ROUNDS interleaved rounds (default 3).
# Usage: sudo [ROUNDS=n] bench/tap.sh [seconds per run, default 5]
# Env: OFFLOAD=false opens the TAPs without offloads; BATCH=n sets frames per read;
# QUEUES=n opens n queues per TAP (each a switch port); GOMAXPROCS reaches the helper;
# PROFILE=file writes the TAP<->TAP helper's CPU profile (go tool pprof file).
# It also measures a relay with no switch (two TAPs whose readers write into each other):
# the most any userspace TAP path can do here, since a TAP hop's read and write copies
# are the kernel's.
# Besides throughput it prints the CPU the 1-stream runs cost per GB moved (iperf3 client
# and server, plus the vnetd helper on the TAP path): unlike throughput, that figure
# holds up when other work shares the machine.
set -eo pipefail
T=${1:-5}
ROUNDS=${ROUNDS:-3}
cd "$(dirname "$0")/.."
command -v iperf3 >/dev/null || { apt-get update -qq && apt-get install -y -qq iperf3 >/dev/null; }
S=$$
NA=tb-a-$S NB=tb-b-$S NS=tb-s-$S NR=tb-r-$S NK=tb-k-$S NV=tb-v-$S NF=tb-f-$S
BIN=$(mktemp -d)/tapswitch
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for n in $NA $NB $NS $NR $NK $NV $NF; do ip netns del "$n" 2>/dev/null || true; done
  rm -rf "$(dirname "$BIN")"
}
trap cleanup EXIT
go build -o "$BIN" ./bench/tapswitch
for n in $NA $NB $NS $NR $NK $NV $NF; do ip netns add "$n"; ip -n "$n" link set lo up; done

# helper NETNS OUT ARGS...: starts tapswitch ARGS in NETNS (its output in $BIN.OUT) and
# waits until it is ready; its pid is in HPID.
helper() {
  local ns=$1 out=$BIN.$2
  shift 2
  ip netns exec "$ns" "$BIN" "$@" > "$out" 2>&1 &
  HPID=$!
  PIDS+=($HPID)
  for _ in $(seq 50); do grep -q ready "$out" 2>/dev/null && break; sleep 0.1; done
  grep -q ready "$out" || { cat "$out"; exit 1; }
}
# tappair NETNS A B SUBNET: moves TAPs A and B from NETNS into NA and NB, addresses
# SUBNET.1 and SUBNET.2.
tappair() {
  ip -n "$1" link set "$2" netns $NA; ip -n "$1" link set "$3" netns $NB
  ip -n $NA addr add "$4.1/24" dev "$2"; ip -n $NA link set "$2" up
  ip -n $NB addr add "$4.2/24" dev "$3"; ip -n $NB link set "$3" up
}

# vnetd path: TAPs created in NS by tapswitch, host sides moved into A and B.
helper $NS out -a tpa -b tpb ${OFFLOAD:+-offload=$OFFLOAD} ${BATCH:+-batch=$BATCH} ${QUEUES:+-queues=$QUEUES} ${PROFILE:+-cpuprofile=$PROFILE}
SWPID=$HPID
tappair $NS tpa tpb 10.77.0

# The ceiling of any userspace TAP relay: two more TAPs joined with no switch at all
# (tapswitch -direct: each TAP's reader writes into the other), created in NF.
helper $NF relay -direct -a tqa -b tqb ${OFFLOAD:+-offload=$OFFLOAD}
RLPID=$HPID
tappair $NF tqa tqb 10.76.0

# kernel path: veths into a bridge inside NR.
ip -n $NR link add br0 type bridge; ip -n $NR link set br0 up
for x in a b; do
  ip -n $NR link add vb$x type veth peer name ve$x
  ip -n $NR link set vb$x master br0 up
done
ip -n $NR link set vea netns $NA; ip -n $NR link set veb netns $NB
ip -n $NA addr add 10.78.0.1/24 dev vea; ip -n $NA link set vea up
ip -n $NB addr add 10.78.0.2/24 dev veb; ip -n $NB link set veb up

# kernel <-> vnetd namespace: TAP created in NV by tapswitch -ns, host side moved into K;
# the meter's kernel-socket server in B for the bridge baseline.
helper $NV ns -ns -a tpk -nsaddr 10.79.0.2/24 ${OFFLOAD:+-offload=$OFFLOAD}
ip -n $NV link set tpk netns $NK
ip -n $NK addr add 10.79.0.1/24 dev tpk; ip -n $NK link set tpk up
helper $NB serve -serve

ip netns exec $NB iperf3 -s -p 5201 >/dev/null 2>&1 & PIDS+=($!)
sleep 0.5
ip netns exec $NA ping -c 1 -W 2 10.77.0.2 >/dev/null || { echo "no ping over TAP path"; cat "$BIN.out"; ip -n $NA link; exit 1; }
ip netns exec $NA ping -c 1 -W 2 10.78.0.2 >/dev/null || { echo "no ping over bridge"; exit 1; }
ip netns exec $NA ping -c 1 -W 2 10.76.0.2 >/dev/null || { echo "no ping over the relay"; cat "$BIN.relay"; exit 1; }
ip netns exec $NK ping -c 1 -W 2 10.79.0.2 >/dev/null || { echo "no ping to the vnetd namespace"; cat "$BIN.ns"; exit 1; }

cputicks() { awk '{print $14+$15}' "/proc/$1/stat"; }
tcp() { # dst streams [helper pid] -> "Gbit/s cpu-ms-per-GB"
  [ -n "$DEBUG" ] && ip netns exec $NA iperf3 -c "$1" -p 5201 -t 2 >&2
  local a=0 b=0 out
  [ -n "$3" ] && a=$(cputicks "$3")
  out=$(ip netns exec $NA timeout $((T + 10)) iperf3 -c "$1" -p 5201 -t "$T" -P "$2" -J)
  [ -n "$3" ] && b=$(cputicks "$3")
  echo "$out" | python3 -c '
import json,sys
e=json.load(sys.stdin)["end"]; r=e["sum_received"]; c=e["cpu_utilization_percent"]
cpu=(c["host_total"]+c["remote_total"])/100*r["seconds"] + int(sys.argv[1])/100
print("%.2f %.0f" % (r["bits_per_second"]/1e9, cpu*1e3/(r["bytes"]/1e9)))' $((b - a))
}
pps() { # dst -> received packets per second, 64-byte frames (18 bytes of UDP payload)
  ip netns exec $NA timeout $((T + 10)) iperf3 -c "$1" -p 5201 -t "$T" -u -l 18 -b 0 -J |
    python3 -c 'import json,sys; s=json.load(sys.stdin)["end"]["sum"]; print("%.0f" % ((s["packets"]-s["lost_packets"])/s["seconds"]))'
}
meter() { # netns mode host -> Gbit/s, measured at the receiving end
  ip netns exec "$1" timeout $((T + 30)) "$BIN" -client "$2" -host "$3" -t "$T"
}
ratio() { python3 -c "print('%.2f' % ($1/$2))"; }

median() { # format values... -> the median, printed with format
  python3 -c "import statistics,sys; print(sys.argv[1] % statistics.median(map(float, sys.argv[2:])))" "$@"
}

# The headline, 1 TCP stream, is interleaved over ROUNDS rounds (vnetd, relay, bridge in
# each) so that load from elsewhere hits all three alike; each figure is the median of
# its rounds, the ratios the median of the rounds' ratios.
T1=() TC=() R1=() RC=() B1=() BC=() RT=() RR=()
for r in $(seq 1 "$ROUNDS"); do
  read -r a ac <<<"$(tcp 10.77.0.2 1 $SWPID)"; read -r l lc <<<"$(tcp 10.76.0.2 1 $RLPID)"
  read -r b bc <<<"$(tcp 10.78.0.2 1)"
  echo "round $r, tcp 1 stream: tap=$a relay=$l bridge=$b Gbit/s (tap $(ratio "$a" "$b"), relay $(ratio "$l" "$b")); CPU per GB tap=$ac relay=$lc bridge=$bc ms"
  T1+=("$a") TC+=("$ac") R1+=("$l") RC+=("$lc") B1+=("$b") BC+=("$bc") RT+=("$(ratio "$a" "$b")") RR+=("$(ratio "$l" "$b")")
done
TAP1=$(median %.2f "${T1[@]}") TAPC=$(median %.0f "${TC[@]}") RL1=$(median %.2f "${R1[@]}") RLC=$(median %.0f "${RC[@]}")
BR1=$(median %.2f "${B1[@]}") BRC=$(median %.0f "${BC[@]}") RATIO1=$(median %.2f "${RT[@]}") RATIOR=$(median %.2f "${RR[@]}")
read -r TAP4 _ <<<"$(tcp 10.77.0.2 4)"; read -r BR4 _ <<<"$(tcp 10.78.0.2 4)"
TAPP=$(pps 10.77.0.2);   BRP=$(pps 10.78.0.2)
NSS=$(meter $NK send 10.79.0.2); BRS=$(meter $NA send 10.78.0.2)
NSR=$(meter $NK recv 10.79.0.2); BRR=$(meter $NA recv 10.78.0.2)
echo "tcp 1 stream (medians of $ROUNDS rounds):  tap=${TAP1} Gbit/s bridge=${BR1} Gbit/s ratio=${RATIO1}"
echo "tcp 1 stream CPU per GB moved: tap=${TAPC} ms bridge=${BRC} ms (bridge/tap=$(ratio "$BRC" "$TAPC"))"
echo "tcp 1 stream, relay with no switch (the ceiling of any userspace TAP path here): ${RL1} Gbit/s ratio=${RATIOR}, ${RLC} ms per GB"
echo "tcp 4 streams: tap=${TAP4} Gbit/s bridge=${BR4} Gbit/s ratio=$(ratio "$TAP4" "$BR4")"
echo "udp 64B pps:   tap=${TAPP} bridge=${BRP} ratio=$(ratio "$TAPP" "$BRP")"
echo "kernel->vnetd ns (TAP, 1 conn):  ${NSS} Gbit/s, kernel->kernel bridge same meter ${BRS} Gbit/s, ratio=$(ratio "$NSS" "$BRS")"
echo "vnetd ns->kernel (TAP, 1 conn):  ${NSR} Gbit/s, kernel->kernel bridge same meter ${BRR} Gbit/s, ratio=$(ratio "$NSR" "$BRR")"
echo "ratio=${RATIO1}"
