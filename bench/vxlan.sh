#!/usr/bin/env bash
# bench/vxlan.sh: a kernel netns <-> a vnetd namespace over VXLAN, against the same
# kernel netns <-> a kernel netns over kernel VXLAN and bridges, in one run.
#   vnetd path:  KA -veth- XA[br0 + kernel vx0] =underlay veth= V[vnetd vxlan port - switch - gVisor namespace]
#   kernel path: KB -veth- XB[br0 + kernel vx0] =underlay veth= Y[kernel vx0 + br0] -veth- S
# Underlay MTU 1500, inner MTU 1450 (both paths). Both kernel senders' underlay veths
# complete checksums in software (ethtool -K tx off), which vnetd's socket needs over a
# veth (see docs/vxlan.md); the kernel path pays the same. The meter is bench/tapswitch's
# TCP sink/source (a gVisor one in the namespace, a kernel one in S), 1 connection,
# ROUNDS interleaved rounds (default 3), medians. Everything lives in netns this script
# creates and deletes.
# Last line: ratio=<kernel->vnetd namespace / kernel->kernel, Gbit/s medians>.
# Usage: sudo bench/vxlan.sh [seconds per run, default 5]
# NOGRO=1 turns the vnetd namespace NIC's receive coalescing off (to measure what it gives).
# VETHGRO=1 turns GRO on for the underlay veths that receive tunnelled traffic, in both
# paths (a veth has none by default; a NIC has it): the kernel's vxlan then merges inner
# TCP segments, and vnetd's socket gets datagrams several per buffer (UDP_GRO).
# NOCOALESCE=1 keeps vnetd's tunnel from merging received TCP segments (tapswitch
# -vxlan-nocoalesce).
# VXNOGRO=1 keeps UDP_GRO off on vnetd's tunnel socket (tapswitch -vxlan-nogro).
# CPUPROF=FILE writes a CPU profile of vnetd's side (the whole run) to FILE; ONLY=send|recv
# runs one direction only (both paths still measured).
# SWQUEUE=N sets every switch port's output queue to N frames, the namespace NIC's too
# (SWQUEUE=512: as before NICs got their 4096-frame queue).
set -eo pipefail
T=${1:-5}
ROUNDS=${ROUNDS:-3}
cd "$(dirname "$0")/.."
S=$$
KA=vb-ka-$S XA=vb-xa-$S V=vb-v-$S KB=vb-kb-$S XB=vb-xb-$S Y=vb-y-$S SS=vb-s-$S
ALL="$KA $XA $V $KB $XB $Y $SS"
BIN=$(mktemp -d)/tapswitch
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for n in $ALL; do ip netns del "$n" 2>/dev/null || true; done
  rm -rf "$(dirname "$BIN")"
}
trap cleanup EXIT
go build -o "$BIN" ./bench/tapswitch
for n in $ALL; do ip netns add "$n"; ip -n "$n" link set lo up; done

veth() { # ns1 dev1 ns2 dev2
  ip -n "$1" link add "$2" type veth peer name "$4"
  ip -n "$1" link set "$4" netns "$3"
  ip -n "$1" link set "$2" up; ip -n "$3" link set "$4" up
}
kvtep() { # ns underlay-dev local remote: a kernel vx0 on br0 in ns
  ip -n "$1" addr add "$3/24" dev "$2"
  ethtool_off "$1" "$2"
  ip -n "$1" link add vx0 type vxlan id 42 dstport 4789 local "$3" remote "$4"
  ip -n "$1" link add br0 type bridge
  ip -n "$1" link set vx0 master br0 up
  ip -n "$1" link set br0 up
}
ethtool_off() {
  ip netns exec "$1" ethtool -K "$2" tx off >/dev/null
  if [ -n "$VETHGRO" ]; then ip netns exec "$1" ethtool -K "$2" gro on >/dev/null; fi
}

# vnetd path.
veth $KA ka $XA xa; veth $XA ua $V uv
kvtep $XA ua 10.80.0.2 10.80.0.1
ip -n $XA link set xa master br0
ip -n $V addr add 10.80.0.1/24 dev uv
if [ -n "$VETHGRO" ]; then ip netns exec $V ethtool -K uv gro on >/dev/null; fi
ip -n $KA link set ka mtu 1450; ip -n $KA addr add 10.81.0.1/24 dev ka
# kernel path.
veth $KB kb $XB xb; veth $XB ub $Y uy; veth $Y ys $SS sy
kvtep $XB ub 10.80.0.2 10.80.0.1
kvtep $Y uy 10.80.0.1 10.80.0.2
ip -n $XB link set xb master br0; ip -n $Y link set ys master br0
ip -n $KB link set kb mtu 1450; ip -n $KB addr add 10.81.0.1/24 dev kb
ip -n $SS link set sy mtu 1450; ip -n $SS addr add 10.81.0.2/24 dev sy

ip netns exec $V "$BIN" -ns ${NOGRO:+-nogro} ${VXNOGRO:+-vxlan-nogro} ${NOCOALESCE:+-vxlan-nocoalesce} ${SWQUEUE:+-swqueue $SWQUEUE} ${CPUPROF:+-cpuprofile $CPUPROF} -vxlan 10.80.0.1=10.80.0.2 -nsaddr 10.81.0.2/24 -mtu 1450 > "$BIN.ns" 2>&1 & PIDS+=($!)
ip netns exec $SS "$BIN" -serve > "$BIN.serve" 2>&1 & PIDS+=($!)
for _ in $(seq 50); do grep -q ready "$BIN.ns" 2>/dev/null && grep -q ready "$BIN.serve" 2>/dev/null && break; sleep 0.1; done
grep -q ready "$BIN.ns" || { cat "$BIN.ns"; exit 1; }
grep -q ready "$BIN.serve" || { cat "$BIN.serve"; exit 1; }
ip netns exec $KA ping -c 3 -i 0.2 -W 2 10.81.0.2 >/dev/null || { echo "no ping over vnetd's VXLAN"; cat "$BIN.ns"; exit 1; }
ip netns exec $KB ping -c 3 -i 0.2 -W 2 10.81.0.2 >/dev/null || { echo "no ping over the kernel's VXLAN"; exit 1; }

meter() { ip netns exec "$1" timeout $((T + 30)) "$BIN" -client "$2" -host 10.81.0.2 -t "$T"; }
median() { python3 -c 'import sys,statistics; print("%.2f" % statistics.median(float(x) for x in sys.argv[1:]))' "$@"; }
ratio() { python3 -c "print('%.2f' % ($1/$2))"; }
declare -A R
for r in $(seq "$ROUNDS"); do
  if [ "$ONLY" != recv ]; then R[v.send]+=" $(meter $KA send)"; R[k.send]+=" $(meter $KB send)"; fi
  if [ "$ONLY" != send ]; then R[v.recv]+=" $(meter $KA recv)"; R[k.recv]+=" $(meter $KB recv)"; fi
done
declare -A M
for k in "${!R[@]}"; do M[$k]=$(median ${R[$k]}); done
[ "$ONLY" = recv ] || echo "kernel->vnetd ns over vnetd VXLAN: ${M[v.send]} Gbit/s, kernel->kernel over kernel VXLAN: ${M[k.send]} Gbit/s, ratio $(ratio ${M[v.send]} ${M[k.send]}) (rounds:${R[v.send]} vs${R[k.send]})"
[ "$ONLY" = send ] || echo "vnetd ns->kernel over vnetd VXLAN: ${M[v.recv]} Gbit/s, kernel->kernel over kernel VXLAN: ${M[k.recv]} Gbit/s, ratio $(ratio ${M[v.recv]} ${M[k.recv]}) (rounds:${R[v.recv]} vs${R[k.recv]})"
if [ "$ONLY" = recv ]; then echo "ratio=$(ratio ${M[v.recv]} ${M[k.recv]})"; else echo "ratio=$(ratio ${M[v.send]} ${M[k.send]})"; fi
