#!/usr/bin/env bash
# bench/tapqueues.sh: kernel netns K - TAP - vnetd switch - vnetd namespace (in-process
# gVisor stack), TCP with P parallel connections both ways, the TAP opened with 1 queue
# and with QUEUES queues joined as one switch port (tap.Group, what [[tap]] queues = N
# gives), measured at the receiving end by tapswitch's TCP sink/source meter. Rounds
# interleave the two so that load from elsewhere hits both alike; it prints each round,
# the medians and the helper's CPU per GB moved. Everything lives in netns this script
# creates and deletes; nothing is configured in the root netns.
# Usage: sudo [ROUNDS=n] [QUEUES=n] [P=n] bench/tapqueues.sh [seconds per run, default 3]
set -eo pipefail
T=${1:-3}
ROUNDS=${ROUNDS:-3}
QUEUES=${QUEUES:-4}
P=${P:-4}
cd "$(dirname "$0")/.."
S=$$
NK=tq-k-$S NV=tq-v-$S
BIN=$(mktemp -d)/tapswitch
HPID=
cleanup() {
  [ -n "$HPID" ] && kill "$HPID" 2>/dev/null && wait "$HPID" 2>/dev/null || true
  for n in $NK $NV; do ip netns del "$n" 2>/dev/null || true; done
  rm -rf "$(dirname "$BIN")"
}
trap cleanup EXIT
go build -o "$BIN" ./bench/tapswitch
for n in $NK $NV; do ip netns add "$n"; ip -n "$n" link set lo up; done

cputicks() { awk '{print $14+$15}' "/proc/$1/stat"; }
# run Q: starts the helper with Q queues (one port), measures send and recv; prints
# "send-Gbit/s recv-Gbit/s helper-cpu-ms-per-GB".
run() {
  local q=$1 args=(-ns -a tpq -nsaddr 10.81.0.2/24)
  [ "$q" -gt 1 ] && args+=(-queues "$q" -group)
  ip netns exec $NV "$BIN" "${args[@]}" > "$BIN.out" 2>&1 &
  HPID=$!
  for _ in $(seq 50); do grep -q ready "$BIN.out" 2>/dev/null && break; sleep 0.1; done
  grep -q ready "$BIN.out" || { cat "$BIN.out"; exit 1; }
  ip -n $NV link set tpq netns $NK
  ip -n $NK addr add 10.81.0.1/24 dev tpq; ip -n $NK link set tpq up
  ip netns exec $NK ping -c 1 -W 2 10.81.0.2 >/dev/null || { echo "no ping to the vnetd namespace"; cat "$BIN.out"; exit 1; }
  local a b s r
  a=$(cputicks $HPID)
  s=$(ip netns exec $NK timeout $((T + 30)) "$BIN" -client send -host 10.81.0.2 -t "$T" -P "$P")
  r=$(ip netns exec $NK timeout $((T + 30)) "$BIN" -client recv -host 10.81.0.2 -t "$T" -P "$P")
  b=$(cputicks $HPID)
  kill $HPID; wait $HPID 2>/dev/null || true
  HPID=
  # ticks are 1/100 s; bytes moved = (s + r) Gbit/s * T s / 8
  python3 -c "import sys; s,r,t,ticks=map(float,sys.argv[1:]); print('%.2f %.2f %.0f' % (s, r, ticks*10/((s+r)*t/8)))" "$s" "$r" "$T" $((b - a))
}
median() { python3 -c "import statistics,sys; print('%.2f' % statistics.median(map(float, sys.argv[1:])))" "$@"; }
S1=() R1=() C1=() SQ=() RQ=() CQ=()
for i in $(seq 1 "$ROUNDS"); do
  read -r s r c <<<"$(run 1)"; S1+=("$s") R1+=("$r") C1+=("$c")
  read -r sq rq cq <<<"$(run "$QUEUES")"; SQ+=("$sq") RQ+=("$rq") CQ+=("$cq")
  echo "round $i, $P conns: queues=1 kernel->ns $s recv $r Gbit/s ($c ms/GB); queues=$QUEUES kernel->ns $sq recv $rq Gbit/s ($cq ms/GB)"
done
echo "medians, $P conns, $(nproc) cores: queues=1 kernel->ns $(median "${S1[@]}") ns->kernel $(median "${R1[@]}") Gbit/s, helper $(median "${C1[@]}") ms CPU per GB"
echo "medians, $P conns, $(nproc) cores: queues=$QUEUES kernel->ns $(median "${SQ[@]}") ns->kernel $(median "${RQ[@]}") Gbit/s, helper $(median "${CQ[@]}") ms CPU per GB"
