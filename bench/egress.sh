#!/usr/bin/env bash
# bench/egress.sh: a kernel netns reaching the host's loopback through a userspace
# egress path, iperf3 from the netns to an iperf3 server on 127.0.0.1 of the "host":
#   vnetd:       netns - TAP - vnetd switch - gateway (gVisor) - host TCP socket
#                (bench/tapswitch -gateway; the netns dials the gateway's alias 10.0.2.2)
#   slirp4netns: netns - TAP - slirp4netns (libslirp) - host socket (10.0.2.2 is the host
#                loopback: --disable-host-loopback is not given)
#   pasta:       netns - TAP - pasta - host socket (its gateway address 10.0.2.2 maps to
#                the host by default, the old passt's form of --map-host-loopback; -T/-U
#                none: no loopback splice bypass, the packets cross the TAP)
# at MTU 1500 and 65520, ROUNDS interleaved rounds (default 3), medians. The "host" is a
# netns this script makes (loopback, and a veth pair with a dead-end default route that
# pasta and slirp4netns want as their template interface); every device and process
# lives in netns the script makes and deletes. The last line is ratio=<vnetd / best
# peer at MTU 1500>.
# Usage: sudo [ROUNDS=n] bench/egress.sh [seconds per run, default 5]
# Env: PROFILE=file writes the vnetd helper's CPU profile (MTU 1500 instance).
set -eo pipefail
T=${1:-5}
ROUNDS=${ROUNDS:-3}
cd "$(dirname "$0")/.."
need=()
command -v iperf3 >/dev/null || need+=(iperf3)
command -v slirp4netns >/dev/null || need+=(slirp4netns)
command -v pasta >/dev/null || need+=(passt)
command -v python3 >/dev/null || need+=(python3)
if [ ${#need[@]} -gt 0 ]; then apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null; fi
S=$$
H=eg-h-$S
MTUS=(1500 65520)
PEERS=(vnetd slirp4netns pasta)
BIN=$(mktemp -d)/tapswitch
PIDS=()
NSS=($H)
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for n in "${NSS[@]}"; do ip netns del "$n" 2>/dev/null || true; done
  rm -rf "$(dirname "$BIN")"
}
trap cleanup EXIT
go build -o "$BIN" ./bench/tapswitch

ip netns add $H
ip -n $H link set lo up
ip -n $H link add e0 type veth peer name e1
ip -n $H addr add 10.200.0.1/24 dev e0
ip -n $H link set e0 up
ip -n $H link set e1 up
ip -n $H route add default via 10.200.0.254
ip netns exec $H iperf3 -s -B 127.0.0.1 -p 5201 >/dev/null 2>&1 &
PIDS+=($!)

# client PEER MTU: the netns for PEER at MTU, set up and attached.
client() { echo "eg-$1-$2-$S"; }
for mtu in "${MTUS[@]}"; do
  for p in "${PEERS[@]}"; do
    k=$(client $p $mtu)
    ip netns add $k
    NSS+=($k)
    ip -n $k link set lo up
    case $p in
    vnetd)
      out=$BIN.out.$mtu
      prof=""
      [ "$mtu" = 1500 ] && [ -n "$PROFILE" ] && prof="-cpuprofile=$PROFILE"
      ip netns exec $H "$BIN" -gateway 10.0.2.1/24 -alias 10.0.2.2 -a tg$mtu -mtu $mtu $prof >"$out" 2>&1 &
      PIDS+=($!)
      for _ in $(seq 50); do grep -q ready "$out" 2>/dev/null && break; sleep 0.1; done
      grep -q ready "$out" || { cat "$out"; exit 1; }
      ip -n $H link set tg$mtu netns $k
      ip -n $k link set tg$mtu name tap0
      ip -n $k addr add 10.0.2.100/24 dev tap0
      ip -n $k link set tap0 up
      ip -n $k route add default via 10.0.2.1
      ;;
    slirp4netns)
      ip netns exec $H slirp4netns --configure --mtu=$mtu --netns-type=path /run/netns/$k tap0 >/dev/null 2>&1 &
      PIDS+=($!)
      ;;
    pasta)
      ip netns exec $H pasta -f --runas 0 --config-net -4 -a 10.0.2.100 -n 24 -g 10.0.2.2 -I tap0 --mtu $mtu \
        -t none -u none -T none -U none --netns $k >/dev/null 2>&1 &
      PIDS+=($!)
      ;;
    esac
    for _ in $(seq 200); do [ -n "$(ip -n $k route show default 2>/dev/null)" ] && break; sleep 0.1; done
    [ -n "$(ip -n $k route show default)" ] || { echo "$p at MTU $mtu: no default route in $k"; exit 1; }
  done
done

# run PEER MTU: one iperf3 run from PEER's netns to 10.0.2.2:5201 (the host's
# 127.0.0.1); prints Gbit/s at the receiver.
run() {
  local k
  k=$(client $1 $2)
  for _ in 1 2 3; do
    j=$(ip netns exec $k iperf3 -c 10.0.2.2 -p 5201 -t "$T" -J 2>/dev/null || true)
    if g=$(python3 -c 'import json,sys; print("%.2f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9))' <<<"$j" 2>/dev/null); then
      echo "$g"
      return
    fi
    echo "$1 mtu $2: iperf3: $(python3 -c 'import json,sys; print(json.load(sys.stdin).get("error"))' <<<"$j" 2>&1 | tail -1)" >&2
    sleep 1 # e.g. the server still busy with a run that just ended
  done
  echo 0
}
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

declare -A R
for r in $(seq "$ROUNDS"); do
  for mtu in "${MTUS[@]}"; do
    for p in "${PEERS[@]}"; do
      g=$(run $p $mtu)
      R[$p.$mtu]+="$g "
      echo "round $r mtu $mtu $p: $g Gbit/s"
    done
  done
done
declare -A M
for mtu in "${MTUS[@]}"; do
  for p in "${PEERS[@]}"; do
    # shellcheck disable=SC2086
    M[$p.$mtu]=$(median ${R[$p.$mtu]})
    echo "median mtu $mtu $p: ${M[$p.$mtu]} Gbit/s (rounds: ${R[$p.$mtu]% })"
  done
done
for mtu in "${MTUS[@]}"; do
  best=$(printf '%s\n' "${M[slirp4netns.$mtu]}" "${M[pasta.$mtu]}" | sort -g | tail -1)
  echo "mtu $mtu: vnetd/best peer $(awk -v a="${M[vnetd.$mtu]}" -v b="$best" 'BEGIN {printf "%.2f", (b > 0 ? a / b : 0)}')," \
    "vnetd/slirp4netns $(awk -v a="${M[vnetd.$mtu]}" -v b="${M[slirp4netns.$mtu]}" 'BEGIN {printf "%.2f", (b > 0 ? a / b : 0)}')"
done
best=$(printf '%s\n' "${M[slirp4netns.1500]}" "${M[pasta.1500]}" | sort -g | tail -1)
echo "ratio=$(awk -v a="${M[vnetd.1500]}" -v b="$best" 'BEGIN {printf "%.2f", (b > 0 ? a / b : 0)}')"
