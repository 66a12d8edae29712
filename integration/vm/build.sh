#!/usr/bin/env bash
# Builds the tiny test VM for integration/vm_test.go from Debian packages only:
#   - the cloud kernel (the package linux-image-cloud-amd64 depends on): its vmlinuz and
#     the virtio-net module with everything it needs (virtio, virtio_ring, virtio_pci,
#     net_failover, failover, ...), found through each module's "depends=" modinfo field;
#   - busybox-static for an initramfs (cpio newc, gzip) with /init from this folder.
# Everything is cached in ${VNETD_VM_CACHE:-/var/cache/vnetd-vm}: the kernel is downloaded
# only when missing; the initramfs is rebuilt when missing or when a file of this folder
# changed. As root, missing tools (qemu-system-x86, busybox-static, cpio, ...) are
# installed with apt-get. Prints "kernel=PATH" and "initrd=PATH" on stdout; logs on stderr.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${VNETD_VM_CACHE:-/var/cache/vnetd-vm}
log() { echo "vm/build.sh: $*" >&2; }

# Guest modules wanted, with what the driver loads them for. The kernel's own
# "depends=" lists pull in the rest (virtio_ring, virtio_pci_modern_dev, failover, ...).
want_modules=(virtio_pci virtio_mmio virtio_net)

need=()
command -v qemu-system-x86_64 >/dev/null 2>&1 || need+=(qemu-system-x86)
[ "$(dpkg-query -W -f='${Status}' busybox-static 2>/dev/null)" = "install ok installed" ] || need+=(busybox-static)
command -v cpio >/dev/null 2>&1 || need+=(cpio)
command -v gzip >/dev/null 2>&1 || need+=(gzip)
command -v xz >/dev/null 2>&1 || need+=(xz-utils)
command -v zstd >/dev/null 2>&1 || need+=(zstd)
command -v flock >/dev/null 2>&1 || need+=(util-linux)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    log "missing ${need[*]} and not root to install them"
    exit 1
  fi
  log "installing ${need[*]}"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
fi
# The initramfs has no libc: /bin/busybox must be the static one from busybox-static
# (the busybox package ships a dynamic one at the same path).
if [ "$(dpkg-query -S /bin/busybox 2>/dev/null | cut -d: -f1)" != busybox-static ]; then
  log "/bin/busybox does not come from busybox-static"
  exit 1
fi

mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9

# --- kernel -----------------------------------------------------------------------------
if [ ! -s "$cache/kernel/vmlinuz" ] || [ ! -s "$cache/kernel/modules.order" ]; then
  pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '$1 == "Depends:" && $2 ~ /^linux-image-/ { print $2; exit }')
  if [ -z "$pkg" ]; then
    log "apt-cache depends linux-image-cloud-amd64 names no kernel package; running apt-get update"
    apt-get update -qq >&2
    pkg=$(apt-cache depends linux-image-cloud-amd64 | awk '$1 == "Depends:" && $2 ~ /^linux-image-/ { print $2; exit }')
  fi
  [ -n "$pkg" ] || { log "cannot resolve the cloud kernel package"; exit 1; }
  log "kernel package $pkg"
  work=$(mktemp -d "$cache/kernel.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && apt-get download "$pkg" >&2 2>/dev/null) || {
    log "apt-get download $pkg failed; retrying after apt-get update"
    apt-get update -qq >&2
    (cd "$work" && apt-get download "$pkg" >&2)
  }
  dpkg-deb -x "$work"/"$pkg"_*.deb "$work/root"
  kdir=$(echo "$work"/root/lib/modules/*)
  [ -d "$kdir" ] || { log "no lib/modules in $pkg"; exit 1; }
  mkdir -p "$work/out/modules"
  cp "$work"/root/boot/vmlinuz-* "$work/out/vmlinuz"
  cp "$work"/root/boot/config-* "$work/out/config"

  # modfile[NAME]: the module file for NAME (names use _ and - interchangeably).
  declare -A modfile=()
  while read -r n f; do modfile[$n]=$f; done < <(find "$kdir/kernel" -name '*.ko*' |
    awk '{ n = $0; sub(/.*\//, "", n); sub(/\.ko.*/, "", n); gsub(/-/, "_", n); print n, $0 }')
  # builtin NAME: whether NAME is compiled into the kernel.
  builtin() {
    local n=${1//-/_}
    sed 's/-/_/g' "$kdir/modules.builtin" | grep -q "/$n\.ko\$"
  }
  declare -A done_mod=()
  order=()
  # add NAME: add NAME after its dependencies (depth first), uncompressed.
  add() {
    local n=${1//-/_} f deps d tmp
    [ -n "${done_mod[$n]:-}" ] && return 0
    done_mod[$n]=1
    if builtin "$n"; then
      log "module $n is built in"
      return 0
    fi
    f=${modfile[$n]:-}
    [ -n "$f" ] || { log "module $n neither built in nor in $pkg"; exit 1; }
    tmp="$work/out/modules/$n.ko"
    case "$f" in
      *.ko) cp "$f" "$tmp" ;;
      *.ko.xz) xz -dc "$f" >"$tmp" ;;
      *.ko.zst) zstd -qdc "$f" >"$tmp" ;;
      *.ko.gz) gzip -dc "$f" >"$tmp" ;;
      *) log "unknown module compression: $f"; exit 1 ;;
    esac
    deps=$(tr '\0' '\n' <"$tmp" | sed -n 's/^depends=//p' | head -n1)
    for d in ${deps//,/ }; do add "$d"; done
    order+=("$n")
  }
  for m in "${want_modules[@]}"; do add "$m"; done
  printf '%s\n' "${order[@]}" >"$work/out/modules.order"
  echo "$pkg" >"$work/out/package"
  log "modules in load order: ${order[*]}"
  rm -rf "$cache/kernel"
  mv "$work/out" "$cache/kernel"
  rm -rf "$work"
  trap - EXIT
fi

# --- initramfs --------------------------------------------------------------------------
guest_files=(init udhcpc.script pong)
stamp=$( (cat "$here/build.sh"; for f in "${guest_files[@]}"; do cat "$here/$f"; done
  cat "$cache/kernel/package" "$cache/kernel/modules.order"; sha256sum /bin/busybox) | sha256sum | cut -d' ' -f1)
if [ ! -s "$cache/initrd.img" ] || [ "$(cat "$cache/initrd.stamp" 2>/dev/null)" != "$stamp" ]; then
  log "building the initramfs"
  work=$(mktemp -d "$cache/initrd.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  r="$work/root"
  mkdir -p "$r"/{bin,sbin,dev,proc,sys,tmp,run,etc/udhcpc,lib/modules,usr/bin,usr/sbin}
  cp /bin/busybox "$r/bin/busybox"
  install -m 0755 "$here/init" "$r/init"
  install -m 0755 "$here/udhcpc.script" "$r/etc/udhcpc/default.script"
  install -m 0755 "$here/pong" "$r/bin/pong"
  cp "$cache"/kernel/modules/*.ko "$r/lib/modules/"
  cp "$cache/kernel/modules.order" "$r/lib/modules/order"
  # /init runs before busybox --install, so it needs sh. No device nodes: /init mounts
  # devtmpfs and reopens /dev/console itself (so building needs no mknod).
  ln -s busybox "$r/bin/sh"
  (cd "$r" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --owner=0:0 --quiet) | gzip -9n >"$work/initrd.img"
  mv "$work/initrd.img" "$cache/initrd.img"
  echo "$stamp" >"$cache/initrd.stamp"
  rm -rf "$work"
  trap - EXIT
fi

echo "kernel=$cache/kernel/vmlinuz"
echo "initrd=$cache/initrd.img"
