#!/usr/bin/env bash
# bench/peers.sh: vnetd against its peers, side by side in one run (issue 17).
#
#  1. TAP <-> TAP: kernel netns A - TAP - X - TAP - netns B, iperf3 TCP 1 and 4 streams at
#     MTU 1500 and 9000 and 64-byte UDP packets per second, for X = vnetd (bench/tapswitch,
#     TAPs with virtio-net header offloads), Open vSwitch's userspace datapath
#     (datapath_type=netdev, type=tap ports, other_config:userspace-tso-enable=true; its own
#     ovsdb-server and ovs-vswitchd in a private run dir, no kernel module), VDE (one
#     vde_switch per MTU with two -t tap ports) and the kernel (veth + Linux bridge) as the
#     reference. Every switch runs in a netns of its own, creates its TAPs there, and the
#     TAPs are then moved into A and B, so all pairs share the same two end netns.
#  2. VM-facing socket: QEMU "-netdev stream" frames from bench/peersock's load generator
#     into vnetd's stream socket vs gvproxy's -listen-qemu socket (see SOCKET below).
#  3. Scale: creation time and memory of 1,000 and 10,000 hosts, vnetd namespaces vs kernel
#     netns with a veth on a bridge (see SCALE below).
#
# Every TAP, veth and bridge lives in netns this script creates; all state is in a temp
# dir; an EXIT trap stops every process it started and deletes the netns. Rounds are
# interleaved (each round measures every peer once, in turn) and each figure is the median
# of its rounds; each ratio is the median of the rounds' ratios.
# Prints a table (one row per path: each peer's figure, vnetd's ratio to it) and ends with
# ratio=<vnetd / best peer, TAP<->TAP TCP 1 stream, MTU 1500>.
# Usage: sudo [ROUNDS=3] [SECS=3] [PARTS="tap sock scale"] [SCALE_N="1000 10000" (sizes of BenchmarkNamespaceCreate)]
#        [SCALE_BUDGET=180] [NOCOALESCE=1 (vnetd's stream socket does not merge a guest's TCP
#        segments)] bench/peers.sh
set -eo pipefail
ROUNDS=${ROUNDS:-3}
SECS=${SECS:-3}
PARTS=${PARTS:-tap sock scale}
cd "$(dirname "$0")/.."
need() { # command package: installs package with apt-get when command is missing
  command -v "$1" >/dev/null && return
  { apt-get update -qq && apt-get install -y -qq "$2" >/dev/null; } || true
}
need iperf3 iperf3
need ovs-vswitchd openvswitch-switch
need vde_switch vde2

S=$$
TMP=$(mktemp -d)
NA=pa-$S NB=pb-$S NV=pv-$S NO=po-$S NW=pw-$S NK=pk-$S NR=pr-$S
NETNS=()
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for f in "$TMP"/*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for n in "${NETNS[@]}"; do ip netns del "$n" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT
mkns() { for n in "$@"; do ip netns add "$n"; NETNS+=("$n"); ip -n "$n" link set lo up; done; }

median() { # format values... -> the median, printed with format ("-" when there are none)
  python3 -c "
import statistics,sys
v=[float(x) for x in sys.argv[2:] if x not in ('','-')]
print(sys.argv[1] % statistics.median(v) if v else '-')" "$@"
}
ratio() { python3 -c "import sys; a,b=sys.argv[1:]; print('-' if '-' in (a,b) or float(b)==0 else '%.2f' % (float(a)/float(b)))" "$1" "$2"; }

ROWS=() # "path|vnetd|peer figures...|notes" lines for the table
row() { ROWS+=("$*"); }

# ---------------------------------------------------------------- 1. TAP <-> TAP
# Each (peer, MTU) pair gets subnet 10.9M.K.0/24 (M 0: MTU 1500, 1: MTU 9000; K the peer's
# index), .1 in A and .2 in B.
# relay is a reference too, not a peer: two TAPs joined by nothing but their two readers
# (tapswitch -direct), the most any userspace TAP path can do here, since each hop's read
# and write copies are the kernel's.
PEERS=(vnetd ovs vde bridge relay)
declare -A WHY # peer -> why it could not run (its rows then say so)
declare -A DEV # "peer mtu" -> "devA devB" created in the peer's netns
sub() { # peer mtu -> subnet prefix
  local k m=0
  [ "$2" = 9000 ] && m=1
  for k in "${!PEERS[@]}"; do [ "${PEERS[$k]}" = "$1" ] && break; done
  echo "10.9$m.$k"
}
# place NETNS DEVA DEVB SUBNET MTU: moves the two devices from NETNS into A and B and
# addresses them.
place() {
  ip -n "$1" link set "$2" netns $NA; ip -n "$1" link set "$3" netns $NB
  ip -n $NA link set "$2" mtu "$5" up; ip -n $NA addr add "$4.1/24" dev "$2"
  ip -n $NB link set "$3" mtu "$5" up; ip -n $NB addr add "$4.2/24" dev "$3"
}
waitdev() { # netns dev: waits up to 5 s for dev to exist in netns
  for _ in $(seq 50); do ip -n "$1" link show "$2" >/dev/null 2>&1 && return; sleep 0.1; done
  return 1
}

start_tapswitch() { # peer netns prefix args...: one tapswitch per MTU, TAPs PREFIXa/b+MTU
  local peer=$1 ns=$2 x=$3 mtu
  shift 3
  for mtu in 1500 9000; do
    ip netns exec "$ns" "$TMP/tapswitch" -a ${x}a$mtu -b ${x}b$mtu -mtu $mtu "$@" >"$TMP/$peer$mtu.out" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 50); do grep -q ready "$TMP/$peer$mtu.out" && break; sleep 0.1; done
    grep -q ready "$TMP/$peer$mtu.out" || { WHY[$peer]="tapswitch: $(head -c 200 "$TMP/$peer$mtu.out")"; return; }
    DEV[$peer $mtu]="${x}a$mtu ${x}b$mtu"
  done
}
start_vnetd() {
  go build -o "$TMP/tapswitch" ./bench/tapswitch || { WHY[vnetd]="bench/tapswitch did not build" WHY[relay]="bench/tapswitch did not build"; return; }
  start_tapswitch vnetd $NV v
  start_tapswitch relay $NR r -direct
  echo "vnetd: bench/tapswitch, one switch per MTU, TAPs with offloads; relay: tapswitch -direct, the same TAPs with no switch"
}

OVSDB=unix:$TMP/ovs/db.sock
vsctl() { ovs-vsctl --db="$OVSDB" --timeout=10 "$@"; }
start_ovs() {
  command -v ovs-vswitchd >/dev/null || { WHY[ovs]="openvswitch-switch is not installed and apt-get could not install it"; return; }
  local R=$TMP/ovs mtu
  mkdir -p "$R"
  export OVS_RUNDIR=$R OVS_LOGDIR=$R OVS_DBDIR=$R OVS_SYSCONFDIR=$R
  ovsdb-tool create "$R/conf.db" /usr/share/openvswitch/vswitch.ovsschema
  ip netns exec $NO ovsdb-server "$R/conf.db" --remote="punix:$R/db.sock" --pidfile="$TMP/ovsdb.pid" \
    --unixctl="$R/ovsdb.ctl" --log-file="$R/ovsdb.log" -vconsole:off --detach || { WHY[ovs]="ovsdb-server did not start: $(tail -1 "$R/ovsdb.log")"; return; }
  vsctl --no-wait init
  # ovs-issues #273: TSO on tap ports in the userspace datapath needs this (OVS >= 2.13),
  # set before ovs-vswitchd starts since it is read once.
  vsctl --no-wait set Open_vSwitch . other_config:userspace-tso-enable=true
  ip netns exec $NO ovs-vswitchd "$OVSDB" --pidfile="$TMP/vswitchd.pid" --unixctl="$R/vswitchd.ctl" \
    --log-file="$R/vswitchd.log" -vconsole:off --detach || { WHY[ovs]="ovs-vswitchd did not start: $(tail -1 "$R/vswitchd.log")"; return; }
  for mtu in 1500 9000; do
    vsctl add-br ob$mtu -- set bridge ob$mtu datapath_type=netdev \
      -- add-port ob$mtu oa$mtu -- set Interface oa$mtu type=tap mtu_request=$mtu \
      -- add-port ob$mtu oc$mtu -- set Interface oc$mtu type=tap mtu_request=$mtu
    waitdev $NO oa$mtu && waitdev $NO oc$mtu || { WHY[ovs]="ovs-vswitchd created no tap ports: $(grep -m1 -i -E 'err|warn' "$R/vswitchd.log")"; return; }
    DEV[ovs $mtu]="oa$mtu oc$mtu"
  done
  echo "ovs: $(ovs-vswitchd --version | head -1), datapath_type=netdev, type=tap, $(grep -o 'Userspace TCP Segmentation Offloading support enabled' "$R/vswitchd.log" || echo 'userspace TSO NOT enabled')"
}

start_vde() {
  command -v vde_switch >/dev/null || { WHY[vde]="vde2 is not installed and apt-get could not install it"; return; }
  local mtu
  for mtu in 1500 9000; do
    ip netns exec $NW vde_switch -s "$TMP/vde$mtu.ctl" -M "$TMP/vde$mtu.mgmt" -t wa$mtu -t wc$mtu \
      -d -p "$TMP/vde$mtu.pid" >"$TMP/vde$mtu.out" 2>&1 || { WHY[vde]="vde_switch: $(head -c 200 "$TMP/vde$mtu.out")"; return; }
    waitdev $NW wa$mtu && waitdev $NW wc$mtu || { WHY[vde]="vde_switch created no TAPs"; return; }
    DEV[vde $mtu]="wa$mtu wc$mtu"
  done
  echo "vde: $(vde_switch -v 2>&1 | head -1), one vde_switch per MTU, -t TAP ports (no offloads: VDE opens TAPs without a virtio-net header)"
}

start_bridge() {
  local mtu x
  for mtu in 1500 9000; do
    ip -n $NK link add kb$mtu type bridge; ip -n $NK link set kb$mtu up
    for x in a c; do
      ip -n $NK link add kp$x$mtu mtu $mtu type veth peer name k$x$mtu mtu $mtu
      ip -n $NK link set kp$x$mtu master kb$mtu up
    done
    DEV[bridge $mtu]="ka$mtu kc$mtu"
  done
  echo "bridge: kernel veth + Linux bridge (in its own netns)"
}

tcp() { # dst streams -> Gbit/s received
  ip netns exec $NA timeout $((SECS + 15)) iperf3 -c "$1" -t "$SECS" -P "$2" -J 2>/dev/null |
    python3 -c 'import json,sys; print("%.2f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9))' 2>/dev/null || echo -
}
pps() { # dst -> UDP packets per second received, 64-byte frames (18 bytes of payload)
  ip netns exec $NA timeout $((SECS + 15)) iperf3 -c "$1" -t "$SECS" -u -l 18 -b 0 -J 2>/dev/null |
    python3 -c 'import json,sys; s=json.load(sys.stdin)["end"]["sum"]; print("%.0f" % ((s["packets"]-s["lost_packets"])/s["seconds"]))' 2>/dev/null || echo -
}

tap_part() {
  mkns $NA $NB $NV $NO $NW $NK $NR
  start_vnetd; start_ovs; start_vde; start_bridge
  local p mtu d
  for p in "${PEERS[@]}"; do
    [ -n "${WHY[$p]}" ] && { echo "$p: cannot run: ${WHY[$p]}"; continue; }
    for mtu in 1500 9000; do
      d=${DEV[$p $mtu]}
      local ns=$NV
      case $p in ovs) ns=$NO ;; vde) ns=$NW ;; bridge) ns=$NK ;; relay) ns=$NR ;; esac
      # shellcheck disable=SC2086
      place $ns $d "$(sub $p $mtu)" $mtu
      # A full-MTU ping with DF set: a switch that drops frames larger than it can hold
      # fails here rather than giving 0 Gbit/s.
      ip netns exec $NA ping -c 2 -i 0.2 -W 2 -M do -s $((mtu - 28)) "$(sub $p $mtu).2" >/dev/null 2>&1 ||
        WHY[$p $mtu]="no full-size ($mtu-byte) ping from A to B over $p at MTU $mtu"
    done
  done
  ip netns exec $NB iperf3 -s >/dev/null 2>&1 &
  PIDS+=($!)
  sleep 0.5
  # Tests: name -> "kind arg": tcp streams at an MTU, or pps at MTU 1500.
  local tests=("tcp1 1500" "tcp4 1500" "tcp1 9000" "tcp4 9000" "pps 1500")
  declare -gA R # "test peer" -> the rounds' figures
  declare -gA RR # "test peer" -> the rounds' vnetd/peer ratios
  local r t v k
  for r in $(seq 1 "$ROUNDS"); do
    for t in "${tests[@]}"; do
      read -r k mtu <<<"$t"
      declare -A got=()
      for p in "${PEERS[@]}"; do
        v=-
        if [ -z "${WHY[$p]}" ] && [ -z "${WHY[$p $mtu]}" ]; then
          case $k in tcp1) v=$(tcp "$(sub $p $mtu).2" 1) ;; tcp4) v=$(tcp "$(sub $p $mtu).2" 4) ;; pps) v=$(pps "$(sub $p $mtu).2") ;; esac
        fi
        got[$p]=$v
        R[$t $p]+=" $v"
      done
      for p in "${PEERS[@]}"; do RR[$t $p]+=" $(ratio "${got[vnetd]}" "${got[$p]}")"; done
      echo "round $r, $k MTU $mtu: $(for p in "${PEERS[@]}"; do printf '%s=%s ' "$p" "${got[$p]}"; done)"
    done
  done
  local label unit fmt best bestp m
  for t in "${tests[@]}"; do
    read -r k mtu <<<"$t"
    case $k in
      tcp1) label="TAP<->TAP TCP 1 stream, MTU $mtu" unit=Gbit/s fmt=%.2f ;;
      tcp4) label="TAP<->TAP TCP 4 streams, MTU $mtu" unit=Gbit/s fmt=%.2f ;;
      pps) label="TAP<->TAP UDP 64-byte frames" unit=pps fmt=%.0f ;;
    esac
    local cells=() notes=""
    # shellcheck disable=SC2086
    for p in "${PEERS[@]}"; do
      m=$(median $fmt ${R[$t $p]})
      if [ "$p" != vnetd ]; then
        # shellcheck disable=SC2086
        cells+=("$p $m (x$(median %.2f ${RR[$t $p]}))")
      else
        cells+=("$m")
      fi
      [ -n "${WHY[$p]}${WHY[$p $mtu]}" ] && notes+="$p: ${WHY[$p]:-${WHY[$p $mtu]}}; "
    done
    row "$label ($unit)|${cells[0]}|$(IFS=';'; echo "${cells[*]:1}")|${notes%; }"
  done
  # ratio=: vnetd over the best peer (OVS or VDE; the kernel bridge is the reference, not a
  # peer), TCP 1 stream at MTU 1500: the median of the rounds' ratios to that peer.
  best=- bestp=""
  for p in ovs vde; do
    # shellcheck disable=SC2086
    m=$(median %.2f ${R[tcp1 1500 $p]})
    [ "$m" = - ] && continue
    if [ "$best" = - ] || python3 -c "import sys; sys.exit(0 if float(sys.argv[1])>float(sys.argv[2]) else 1)" "$m" "$best"; then best=$m bestp=$p; fi
  done
  # shellcheck disable=SC2086
  [ -n "$bestp" ] && RATIO=$(median %.2f ${RR[tcp1 1500 $bestp]}) BESTPEER=$bestp
}

# ---------------------------------------------------------------- 2. VM-facing socket
# SOCKET, two kinds of rows, both into a socket speaking QEMU's "-netdev stream" framing:
#  - UDP frames (bench/peersock -gen): the generator connects as QEMU would, resolves the
#    destination's MAC with ARP, then writes UDP/IPv4 frames (60 bytes, i.e. 64 on a wire
#    with the FCS, and 1514 bytes) as fast as the socket takes them. Delivered = datagrams
#    a UDP discard sink read during the window (Gbit/s counts whole frames).
#  - TCP (bench/peersock -tapvm + -send): a kernel netns plays the guest. A relay does what
#    QEMU does for a stream backend: it joins a TAP in that netns (no offloads: a stream
#    backend has none, so the guest's kernel sends MTU-sized segments) to the socket. One
#    TCP stream from the guest, counted by a TCP discard sink.
#    (The UDP generator uses 10.0.2.16, the guest 10.0.2.15: one address per MAC, or the
#    namespace would answer the guest at the generator's MAC.)
# Where the sinks are:
#  - vnetd: the socket on a vnetd switch with a vnetd namespace (10.0.2.2) running the UDP
#    (port 9) and TCP (port 5001) sinks (bench/peersock -vnetd: the daemon's socket code,
#    package vmsock, and its namespace, package nsstack).
#  - gvproxy: its own virtual network (subnet 192.168.127.0/24); traffic goes to its host
#    address 192.168.127.254, which its NAT maps to 127.0.0.1; its forwarders relay each
#    datagram or stream to kernel sockets there (its only way to deliver into a namespace:
#    the netns it runs in), where the same sinks on kernel sockets count it.
# gvproxy serves one VM connection per process (it exits when the connection ends), so
# it is started afresh for each measurement.
GVPROXY_VERSION=${GVPROXY_VERSION:-v0.8.9}
start_gvproxy() { # -> pid in GVPID, or fails
  rm -f "$TMP/gv.sock"
  ip netns exec $NG "$TMP/gvproxy" -listen-qemu "unix://$TMP/gv.sock" -log-file "$TMP/gv.log" 2>>"$TMP/gv.err" &
  GVPID=$!
  PIDS+=($GVPID)
  for _ in $(seq 50); do [ -S "$TMP/gv.sock" ] && return; sleep 0.1; done
  return 1
}
stop_pid() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }
gen() { # sock stat size args... -> "frames/s Gbit/s offered-frames/s", or "- - -"
  local sock=$1 stat=$2 size=$3
  shift 3
  ip netns exec $NG timeout $((SECS + 15)) "$TMP/peersock" -gen "$sock" -stat "$stat" -size "$size" -t "$SECS" "$@" 2>>"$TMP/gen.err" || echo "- - -"
}
tapvm() { # sock tap addr/24 -> the relay's pid in VMPID once the guest's TAP is up
  ip netns exec $NQ "$TMP/peersock" -tapvm "$1" -tap "$2" >"$TMP/$2.out" 2>&1 &
  VMPID=$!
  PIDS+=($VMPID)
  for _ in $(seq 50); do grep -q ready "$TMP/$2.out" && break; sleep 0.1; done
  ip -n $NQ addr add "$3" dev "$2" && ip -n $NQ link set "$2" up
}
send() { # host:port stat -> Gbit/s at the sink, or -
  ip netns exec $NQ timeout $((SECS + 15)) "$TMP/peersock" -send "$1" -stat "$2" -t "$SECS" 2>>"$TMP/gen.err" || echo -
}
sock_part() {
  local NS1=ps-$S
  NG=pg-$S NQ=pq-$S
  mkns $NS1 $NG $NQ
  go build -o "$TMP/peersock" ./bench/peersock
  ip netns exec $NS1 "$TMP/peersock" -vnetd "$TMP/vn.sock" -stat "$TMP/vn.stat" ${NOCOALESCE:+-nocoalesce} >"$TMP/vn.out" 2>&1 &
  PIDS+=($!)
  ip netns exec $NG "$TMP/peersock" -sink 127.0.0.1:9 -stat "$TMP/gvsink.stat" >"$TMP/gvsink.out" 2>&1 &
  PIDS+=($!)
  local gvwhy=""
  echo "building gvproxy $GVPROXY_VERSION with go install (Go module proxy)"
  (cd "$TMP" && GOBIN=$TMP GOFLAGS= go install "github.com/containers/gvisor-tap-vsock/cmd/gvproxy@$GVPROXY_VERSION") >"$TMP/gvbuild.log" 2>&1 ||
    gvwhy="gvproxy $GVPROXY_VERSION did not build: $(tail -1 "$TMP/gvbuild.log")"
  sleep 0.5
  grep -q ready "$TMP/vn.out" || { echo "peersock -vnetd: $(cat "$TMP/vn.out")"; exit 1; }
  tapvm "$TMP/vn.sock" qv 10.0.2.15/24
  ip netns exec $NQ ping -c 1 -W 2 10.0.2.2 >/dev/null || { echo "no ping from the guest netns to the vnetd namespace"; exit 1; }
  # The UDP generator reaches both sockets from NG: a unix socket is a file, not a netns
  # device.
  declare -A SR SRR
  local r size v g
  for r in $(seq 1 "$ROUNDS"); do
    for size in 60 1514 tcp; do
      if [ $size = tcp ]; then v=$(send 10.0.2.2:5001 "$TMP/vn.stat"); else v=$(gen "$TMP/vn.sock" "$TMP/vn.stat" $size -src 10.0.2.16 -dst 10.0.2.2); fi
      g="- - -"
      if [ -z "$gvwhy" ]; then
        if ! start_gvproxy; then
          gvwhy="gvproxy did not listen: $(tail -1 "$TMP/gv.log")"
        elif [ $size = tcp ]; then
          tapvm "$TMP/gv.sock" qg 192.168.127.2/24
          ip netns exec $NQ ping -c 1 -W 2 192.168.127.1 >/dev/null || gvwhy="no ping from the guest netns to gvproxy's gateway"
          [ -z "$gvwhy" ] && g=$(send 192.168.127.254:5001 "$TMP/gvsink.stat")
          stop_pid $GVPID
          stop_pid $VMPID
        else
          g=$(gen "$TMP/gv.sock" "$TMP/gvsink.stat" $size -src 192.168.127.2 -dst 192.168.127.254 -via 192.168.127.1)
        fi
        stop_pid $GVPID
      fi
      read -r vf vg vo <<<"$v"; read -r gf gg gvo <<<"$g"
      SR[$size vnetd]+=" $vf" SR[$size gvproxy]+=" $gf" SR[$size vnetdg]+=" $vg" SR[$size gvproxyg]+=" $gg"
      SR[$size vnetdo]+=" $vo" SR[$size gvproxyo]+=" $gvo"
      SRR[$size]+=" $(ratio "$vf" "$gf")"
      if [ $size = tcp ]; then
        echo "round $r, socket TCP 1 stream from a guest netns: vnetd=$vf gvproxy=$gf Gbit/s"
      else
        echo "round $r, socket $size-byte UDP frames: delivered vnetd=$vf/s ($vg Gbit/s) gvproxy=$gf/s ($gg Gbit/s); the socket took vnetd=$vo/s gvproxy=$gvo/s"
      fi
    done
  done
  # shellcheck disable=SC2086
  for size in 60 1514; do
    row "VM stream socket -> namespace, UDP $size-byte frames (frames/s delivered; Gbit/s of frames)|$(median %.0f ${SR[$size vnetd]}) ($(median %.2f ${SR[$size vnetdg]}))|gvproxy $(median %.0f ${SR[$size gvproxy]}) ($(median %.2f ${SR[$size gvproxyg]})) (x$(median %.2f ${SRR[$size]}))|${gvwhy:+gvproxy: $gvwhy; }offered as fast as each socket read: vnetd took $(median %.0f ${SR[$size vnetdo]})/s, gvproxy $(median %.0f ${SR[$size gvproxyo]})/s"
  done
  local crash=""
  grep -q '^panic:' "$TMP/gv.err" 2>/dev/null &&
    crash="gvproxy panicked $(grep -c '^panic:' "$TMP/gv.err") time(s) as it was stopped after a measurement ($(grep -m1 -A4 '^goroutine' "$TMP/gv.err" | grep -m1 -o 'tap\.(\*Switch)\.[a-zA-Z]*' || echo '?')); the figures were taken before"
  # shellcheck disable=SC2086
  row "VM stream socket -> namespace, TCP 1 stream from a kernel guest, MTU 1500 (Gbit/s)|$(median %.2f ${SR[tcp vnetd]})|gvproxy $(median %.2f ${SR[tcp gvproxy]}) (x$(median %.2f ${SRR[tcp]}))|${gvwhy:+gvproxy: $gvwhy; }$crash"
}

# ---------------------------------------------------------------- 3. Scale
# SCALE: N hosts with a NIC holding an IPv4 and an IPv6 address, 100 per switch:
#  - vnetd: nsstack's BenchmarkNamespaceCreate/switched/N (one process; RSS growth and
#    wall time of creation).
#  - kernel: bench/netnsscale, N netns each with a veth on a Linux bridge (100 per bridge),
#    both addresses, links up, through netlink from one process; kernel memory growth
#    (Slab + Percpu + VmallocUsed + KernelStack + PageTables) and wall time. It stops
#    after SCALE_BUDGET seconds (default 180) and the row then says how far it got and
#    extrapolates linearly, labelled so.
SCALE_N=${SCALE_N:-1000 10000}
SCALE_BUDGET=${SCALE_BUDGET:-180}
slab_kb() { awk '/^Slab:/ {print $2}' /proc/meminfo; }
scale_part() {
  local NSC=pn-$S n out vt vm kt km kstate khosts slab0 lim
  mkns $NSC
  go test -c -o "$TMP/nsstack.test" ./nsstack/
  go build -o "$TMP/netnsscale" ./bench/netnsscale
  lim=$(cat /proc/sys/user/max_net_namespaces)
  for n in $SCALE_N; do
    out=$("$TMP/nsstack.test" -test.run X -test.bench "NamespaceCreate/switched/$n\$" -test.benchtime 1x 2>&1)
    vt=$(echo "$out" | awk '{for (i=1;i<=NF;i++) if ($i=="create-s") print $(i-1)}')
    vm=$(echo "$out" | awk -v n="$n" '{for (i=1;i<=NF;i++) if ($i=="rss-bytes/ns") printf "%.0f", $(i-1)*n/1e6}')
    local vwhy=""
    if [ -z "$vt" ]; then
      vt=- vm=- vwhy="vnetd: BenchmarkNamespaceCreate/switched/$n did not run (it has sizes 1000 and 10000): $(echo "$out" | tail -1); "
    else vt=$(median %.2f "$vt"); fi
    slab0=$(slab_kb)
    local why=""
    if [ "$n" -ge "$lim" ]; then
      why="user.max_net_namespaces is $lim"
      out="partial hosts=0 seconds=0 kernel_mb=0"
    else
      out=$(ip netns exec $NSC "$TMP/netnsscale" -n "$n" -budget "$SCALE_BUDGET" 2>&1) || why="netnsscale failed: $out"
    fi
    echo "scale $n: vnetd ${vt}s ${vm}MB; kernel: $out"
    kstate=${out%% *}
    khosts=$(echo "$out" | grep -o 'hosts=[0-9]*' | cut -d= -f2)
    kt=$(echo "$out" | grep -o 'seconds=[0-9.]*' | cut -d= -f2)
    km=$(echo "$out" | grep -o 'kernel_mb=[-0-9.]*' | cut -d= -f2)
    local note=$vwhy
    if [ -n "$why" ] || [ "$kstate" != complete ]; then
      if [ "${khosts:-0}" -gt 0 ]; then
        note+="kernel: stopped at $khosts hosts after ${kt}s (${why:-SCALE_BUDGET=${SCALE_BUDGET}s}); its figures EXTRAPOLATED linearly to $n"
        kt=$(python3 -c "print('%.1f' % ($kt*$n/$khosts))") km=$(python3 -c "print('%.0f' % ($km*$n/$khosts))")
      else
        note+="kernel: ${why:-created none}" kt=- km=-
      fi
    fi
    row "$n hosts, creation time (s)|$vt|kernel netns+veth+bridge $kt (x$(ratio "$kt" "$vt") faster)|${note%; }"
    row "$n hosts, memory (MB: vnetd RSS growth, kernel memory growth)|$vm|kernel netns+veth+bridge $km (x$(ratio "$km" "$vm") less)|${note%; }"
    # The kernel frees namespaces in the background: let it finish (bounded) before the
    # next measurement so that its memory is not counted twice.
    [ "$n" = "${SCALE_N##* }" ] && break
    for _ in $(seq 120); do [ "$(slab_kb)" -le $((slab0 + 51200)) ] && break; sleep 1; done
  done
}

RATIO=- BESTPEER=none
for part in $PARTS; do
  case $part in
    tap) tap_part ;;
    sock) sock_part ;;
    scale) scale_part ;;
    *) echo "unknown part $part" >&2; exit 2 ;;
  esac
done

echo
echo "| path | vnetd | peers: figure (vnetd's ratio to it; for scale rows, how many times faster / less) | notes |"
echo "|---|---|---|---|"
for l in "${ROWS[@]}"; do echo "| ${l//|/ | } |"; done
echo "best peer, TAP<->TAP TCP 1 stream MTU 1500: $BESTPEER"
echo "ratio=$RATIO"
