#!/usr/bin/env bash
# Runs every vnetd test. As root it also installs the tools the integration tests need
# (iproute2, ping; the VM test's build script installs QEMU and the guest's packages)
# when they are missing. Set VNETD_INTEGRATION=1 to make a missing privilege or tool a
# failure instead of a skip (CI does).
set -euo pipefail
cd "$(dirname "$0")"

need=()
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v ping >/dev/null 2>&1 || need+=(iputils-ping)
command -v chromium >/dev/null 2>&1 || need+=(chromium) # the topology page test (control.TestWebPage)
command -v ethtool >/dev/null 2>&1 || need+=(ethtool)
command -v iperf3 >/dev/null 2>&1 || need+=(iperf3) # iperf3 interop tests (iperf, cmd/vnetd)
command -v tshark >/dev/null 2>&1 || need+=(tshark) # pcapng read-back (control.TestPcapNGTshark)
command -v tcpdump >/dev/null 2>&1 || need+=(tcpdump) # libpcap as the reference for pcapfilter (TestAgainstTcpdump)
command -v ovs-vswitchd >/dev/null 2>&1 || need+=(openvswitch-switch) # OVS as a VXLAN peer (TestVXLANOVSInterop; userspace datapath, no kernel module)
if [ ${#need[@]} -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "test.sh: installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

go vet ./...
go test -count=1 -timeout 30m ./...
# The data-path and daemon packages again under the race detector.
go test -count=1 -race -short -timeout 15m ./frame/... ./switch/... ./router/... ./nsstack/... ./vxlan/... \
  ./daemon/... ./vmsock/... ./control/... ./dhcpserver/... ./dnsserver/... ./forward/... ./service/... ./iperf/... ./portsec/... ./gateway/... \
  ./tap/... ./hostif/... ./offload/... ./internal/... ./impair/...

# Fuzzing: every fuzz target (go test -list 'Fuzz.*') for a few seconds each, on top of
# the seed corpora the runs above already replayed. bench/fuzz.sh runs them longer.
# About 20 targets x (3 s + start-up): under two minutes on an idle CI host.
echo "test.sh: fuzz targets, ${VNETD_FUZZ_SECONDS:-3}s each"
FUZZ_MINIMIZE=1s bench/fuzz.sh "${VNETD_FUZZ_SECONDS:-3}"
