#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# testbed.sh - boot a small QEMU (TCG) guest with a virtual IOMMU and the
# emulated edu and nvme devices bound to vfio-pci, and run scenario scripts in
# it, chrooted into the host's own file system (shared read-only over 9p).
# See tests/e2e/README.md for the conventions scenarios rely on.
#
# usage: testbed.sh [--build DIR] [--src DIR] [--out DIR] [--timeout SEC]
#                   [--smp N] [--mem SIZE] [--qemu-arg ARG]... [--live]
#                   [--topology split|shared] [--kernel debian|iommufd]
#                   [--iommu type1|iommufd] SCENARIO.sh...
#
# --topology split (default): edu and nvme on the root bus, an IOMMU group
# each. shared: both behind a conventional PCI bridge (1b36:0001), which puts
# the bridge, edu and nvme into one IOMMU group (TESTBED.md).
#
# --kernel debian (default): the newest Debian kernel in /boot, VFIO
# modules in the initramfs. iommufd: the testbed's own kernel with iommufd
# and VFIO cdevs, everything built in (tools/provision-iommufd-kernel.sh
# builds and caches it; not provisioned = skipped). --iommu KIND reaches the
# scenarios as VUB_IOMMU (lib.sh passes it to the bridge as --iommu, the
# direct tests open the device with that back end); default type1.
#
# One guest boot runs every SCENARIO in order (each in its own chroot shell);
# the exit status is 0 only when every scenario exited 0. 77 means "skipped"
# (no QEMU, no kernel, or not allowed to run it here).
set -euo pipefail

SELF=$(readlink -f "${BASH_SOURCE[0]}")
E2E_DIR=$(dirname "$SELF")
SRC=$(readlink -f "$E2E_DIR/../..")
BUILD=""
OUT=""
TIMEOUT=${VUB_E2E_TIMEOUT:-420}
SMP=${VUB_E2E_SMP:-1}
MEM=${VUB_E2E_MEM:-1G}
NVME_SERIAL=VUBE2ENVME0001
EXTRA_QEMU=()
SCENARIOS=()
LIVE=${VUB_E2E_LIVE:-0}
TOPOLOGY=${VUB_E2E_TOPOLOGY:-split}
KERNEL_KIND=${VUB_E2E_KERNEL:-debian}
IOMMU=${VUB_E2E_IOMMU:-type1}

usage() { sed -n '/^# usage:/,/^# (no QEMU/p' "$SELF" | sed 's/^# \{0,1\}//'; exit 2; }
log() { printf 'testbed: %s\n' "$*" >&2; }
skip() { log "SKIP: $*"; exit 77; }

while [ $# -gt 0 ]; do
  case "$1" in
    --build) BUILD=$2; shift 2 ;;
    --src) SRC=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --timeout) TIMEOUT=$2; shift 2 ;;
    --smp) SMP=$2; shift 2 ;;
    --mem) MEM=$2; shift 2 ;;
    --qemu-arg) EXTRA_QEMU+=("$2"); shift 2 ;;
    --live) LIVE=1; shift ;;
    --topology) TOPOLOGY=$2; shift 2 ;;
    --kernel) KERNEL_KIND=$2; shift 2 ;;
    --iommu) IOMMU=$2; shift 2 ;;
    -h|--help) usage ;;
    --) shift; SCENARIOS+=("$@"); break ;;
    -*) log "unknown option $1"; usage ;;
    *) SCENARIOS+=("$1"); shift ;;
  esac
done
[ ${#SCENARIOS[@]} -gt 0 ] || usage
case "$TOPOLOGY" in
  split) DEV_BUS=() ;;
  shared) DEV_BUS=(-device pci-bridge,id=br1,chassis_nr=1) ;;
  *) log "--topology $TOPOLOGY: want split or shared"; exit 2 ;;
esac
case "$KERNEL_KIND" in
  debian|iommufd) ;;
  *) log "--kernel $KERNEL_KIND: want debian or iommufd"; exit 2 ;;
esac
case "$IOMMU" in
  type1|iommufd) ;;
  *) log "--iommu $IOMMU: want type1 or iommufd"; exit 2 ;;
esac
edu_at() { [ "$TOPOLOGY" = shared ] && echo ",bus=br1,addr=1"; true; }
nvme_at() { [ "$TOPOLOGY" = shared ] && echo ",bus=br1,addr=2"; true; }
[ -n "$BUILD" ] || BUILD="$SRC/build"
BUILD=$(readlink -f "$BUILD")
SRC=$(readlink -f "$SRC")
for i in "${!SCENARIOS[@]}"; do
  s=${SCENARIOS[$i]}
  [ -f "$s" ] || s="$E2E_DIR/scenarios/$s"
  [ -f "$s" ] || s="$s.sh"
  [ -f "$s" ] || { log "no such scenario: ${SCENARIOS[$i]}"; exit 2; }
  SCENARIOS[$i]=$(readlink -f "$s")
done

# ---- what we need on the host ------------------------------------------------
QEMU=$(command -v qemu-system-x86_64 || true)
[ -n "$QEMU" ] || skip "qemu-system-x86_64 not installed (tools/deps.sh installs it)"
BUSYBOX=$(command -v busybox || true)
[ -n "$BUSYBOX" ] || skip "busybox not installed"
if ldd "$BUSYBOX" >/dev/null 2>&1; then skip "$BUSYBOX is not static (install busybox-static)"; fi
command -v cpio >/dev/null || skip "cpio not installed"
MODFILES=()
if [ "$KERNEL_KIND" = iommufd ]; then
  # Everything built in: no modules, the initramfs holds busybox and /init.
  KERNEL=$("$SRC/tools/provision-iommufd-kernel.sh" --check) ||
    skip "the iommufd kernel is not provisioned (run tools/provision-iommufd-kernel.sh as root)"
  KVER=iommufd-$(sed -n 's/^key=//p' "$(dirname "$KERNEL")/.vub-stamp")
else
command -v modprobe >/dev/null || skip "modprobe (kmod) not installed"

# The newest kernel in /boot that has its modules installed.
KVER=${VUB_E2E_KVER:-}
if [ -z "$KVER" ]; then
  for k in $(ls -1 /boot/vmlinuz-* 2>/dev/null | sed 's|.*/vmlinuz-||' | sort -V -r); do
    if [ -f "/lib/modules/$k/modules.dep" ]; then KVER=$k; break; fi
  done
fi
[ -n "$KVER" ] || skip "no /boot/vmlinuz-<ver> with /lib/modules/<ver> (install linux-image-amd64)"
KERNEL=/boot/vmlinuz-$KVER
[ -r "$KERNEL" ] || skip "$KERNEL not readable"

# ---- the initramfs (cached) ----------------------------------------------------
# Modules, in load order, dependencies first (9p for the host's files, VFIO).
WANT_MODULES=(virtio_pci 9pnet_virtio 9p vfio_iommu_type1 vfio_virqfd vfio-pci)
declare -A SEEN=()
for m in "${WANT_MODULES[@]}"; do
  deps=$(modprobe -S "$KVER" --show-depends "$m" 2>/dev/null) ||
    skip "kernel $KVER has no module $m"
  while read -r kind path _; do
    [ "$kind" = insmod ] || continue         # "builtin NAME": nothing to load
    [ -n "${SEEN[$path]:-}" ] && continue
    SEEN[$path]=1
    MODFILES+=("$path")
  done <<<"$deps"
done
fi

CACHE="$BUILD/tests/e2e/cache"
mkdir -p "$CACHE"
key=$( { sha256sum "$SELF"; echo "$KVER"; stat -L -c '%n %s %Y' "$BUSYBOX" ${MODFILES[@]+"${MODFILES[@]}"}; } |
       sha256sum | cut -c1-16)
INITRD="$CACHE/initramfs-$KVER-$key.cpio.gz"

make_initramfs() {
  local root
  root=$(mktemp -d "$CACHE/root.XXXXXX")
  mkdir -p "$root"/{bin,dev,proc,sys,host,out,lib/modules}
  cp "$BUSYBOX" "$root/bin/busybox"
  local i=0 f base
  : >"$root/lib/modules/order"
  for f in ${MODFILES[@]+"${MODFILES[@]}"}; do
    i=$((i + 1))
    base=$(printf '%02d-%s' "$i" "$(basename "$f" | sed 's/\.ko.*$//')").ko
    case "$f" in
      *.ko) cp "$f" "$root/lib/modules/$base" ;;
      *.ko.xz) xz -dc "$f" >"$root/lib/modules/$base" ;;
      *.ko.zst) zstd -qdc "$f" >"$root/lib/modules/$base" ;;
      *.ko.gz) gzip -dc "$f" >"$root/lib/modules/$base" ;;
      *) log "unknown module format: $f"; return 1 ;;
    esac
    echo "$base" >>"$root/lib/modules/order"
  done
  sed -n '/^#__GUEST_INIT_BEGIN__$/,/^#__GUEST_INIT_END__$/p' "$SELF" | sed '1d;$d' >"$root/init"
  chmod 755 "$root/init"
  (cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) >"$INITRD.tmp"
  mv "$INITRD.tmp" "$INITRD"
  rm -rf "$root"
}

(
  flock 9
  if [ ! -f "$INITRD" ]; then
    log "building initramfs for $KVER (${#MODFILES[@]} modules)"
    find "$CACHE" -maxdepth 1 -name "initramfs-$KVER-*.cpio.gz" -delete   # this kernel's old ones
    make_initramfs
  fi
) 9>"$CACHE/.lock"

# ---- the run directory (writable 9p export) ---------------------------------------
if [ -z "$OUT" ]; then
  name=$(basename "${SCENARIOS[0]}" .sh)
  [ ${#SCENARIOS[@]} -gt 1 ] && name="multi-$name"
  OUT="$BUILD/tests/e2e/out/$name"
fi
mkdir -p "$OUT"
OUT=$(readlink -f "$OUT")
find "$OUT" -mindepth 1 -delete
mkdir -p "$OUT/rc" "$OUT/log"

# The NVMe disk: 16 MiB raw; every 512-byte block of the first 1 MiB holds
# "VUB-E2E-NVME LBA <n>\n" padded with '.', so a reader of any LBA knows what
# it must see.
NVME_IMG="$OUT/nvme.img"
truncate -s 16M "$NVME_IMG"
awk 'BEGIN { for (i = 0; i < 2048; i++) { s = sprintf("VUB-E2E-NVME LBA %d\n", i);
       while (length(s) < 511) s = s "."; printf "%s\n", s } }' |
  dd of="$NVME_IMG" conv=notrunc status=none

for p in "$SRC" "$BUILD" "$OUT" "${SCENARIOS[@]}"; do
  case "$p" in
    *[[:space:]\"\'\\\$\`]*) log "paths with blanks or quotes are not supported: $p"; exit 2 ;;
  esac
done
q() { printf '%q' "$1"; }
{
  echo "VUB_SRC=$(q "$SRC")"
  echo "VUB_BUILD=$(q "$BUILD")"
  echo "VUB_OUT=$(q "$OUT")"
  echo "VUB_NVME_SERIAL=$(q "$NVME_SERIAL")"
  echo "VUB_NVME_IMG=$(q "$NVME_IMG")"
  echo "VUB_TOPOLOGY=$(q "$TOPOLOGY")"
  echo "VUB_IOMMU=$(q "$IOMMU")"
  printf 'VUB_SCENARIOS="'
  for s in "${SCENARIOS[@]}"; do printf '%s ' "$s"; done
  echo '"'
} >"$OUT/run.env"

# ---- boot -----------------------------------------------------------------------
ACCEL=tcg
CONSOLE="$OUT/console.log"
log "kernel $KVER, IOMMU $IOMMU, ${#SCENARIOS[@]} scenario(s), topology $TOPOLOGY, timeout ${TIMEOUT}s, out $OUT"
t0=$(date +%s.%N)
: >"$CONSOLE"
tailpid=
if [ "$LIVE" = 1 ]; then
  # show the guest console as it comes (scenario output is tee'd there)
  tail -n +1 -F "$CONSOLE" 2>/dev/null > >(tr -d '\r') &
  tailpid=$!
fi
set +e
# no_timer_check: on a loaded host the emulated CPU can miss the kernel's
# early check that the timer interrupt arrives through the remapped IO-APIC,
# and the kernel then panics ("timer doesn't work through Interrupt-remapped
# IO-APIC", seen here at load 9); the timer works, the check was too quick.
timeout -k 10 "$TIMEOUT" "$QEMU" \
  -machine q35,accel=$ACCEL -cpu max -smp "$SMP" -m "$MEM" \
  -nodefaults -no-user-config -display none -no-reboot \
  -device intel-iommu,intremap=on,caching-mode=on \
  -kernel "$KERNEL" -initrd "$INITRD" \
  -append "console=ttyS0 intel_iommu=on quiet panic=-1 oops=panic no_timer_check" \
  -serial "file:$CONSOLE" \
  -virtfs local,path=/,mount_tag=host,security_model=none,readonly=on,multidevs=remap \
  -virtfs local,path="$OUT",mount_tag=out,security_model=none,multidevs=remap \
  "${DEV_BUS[@]}" \
  -device "edu$(edu_at)" \
  -drive file="$NVME_IMG",if=none,id=nvm0,format=raw \
  -device "nvme,drive=nvm0,serial=$NVME_SERIAL$(nvme_at)" \
  "${EXTRA_QEMU[@]}" </dev/null 2>"$OUT/qemu.stderr"
qrc=$?
set -e
if [ -n "$tailpid" ]; then
  sleep 0.3
  kill "$tailpid" 2>/dev/null
  wait "$tailpid" 2>/dev/null || true
fi
t1=$(date +%s.%N)
secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')

# ---- results -----------------------------------------------------------------------
# The guest writes rc/booted (seconds since boot at init start), one
# rc/<name> per scenario and log/<name>.log with its output.
status=0
for s in "${SCENARIOS[@]}"; do
  n=$(basename "$s" .sh)
  if [ "$LIVE" != 1 ]; then
    echo "===== scenario $n ====="
    [ -f "$OUT/log/$n.log" ] && cat "$OUT/log/$n.log"
  fi
  if [ -f "$OUT/rc/$n" ]; then
    rc=$(cat "$OUT/rc/$n")
    t=$(cat "$OUT/rc/$n.time" 2>/dev/null || echo '?')
    echo "===== scenario $n: exit $rc (${t}s in the guest) ====="
    [ "$rc" = 0 ] || status=1
  else
    echo "===== scenario $n: did not finish ====="
    status=1
  fi
done
if [ -f "$OUT/rc/setup" ] && [ "$(cat "$OUT/rc/setup")" != 0 ]; then
  log "guest setup failed: $(cat "$OUT/rc/setup.msg" 2>/dev/null)"
  status=1
fi
if [ $qrc -eq 124 ] || [ $qrc -eq 137 ]; then
  log "TIMEOUT: the guest ran longer than ${TIMEOUT}s and was killed"
  status=1
elif [ $qrc -ne 0 ]; then
  log "qemu exited with status $qrc; its stderr:"
  sed 's/^/  qemu: /' "$OUT/qemu.stderr" >&2
  status=1
fi
log "boot to init: $(cat "$OUT/rc/booted" 2>/dev/null || echo '?')s (guest clock); wall time ${secs}s"
if [ $status -ne 0 ]; then
  log "guest console, last 40 lines ($CONSOLE):"
  tail -n 40 "$CONSOLE" | tr -d '\r' >&2 || true
fi
exit $status

# ---- the guest's /init (busybox sh), copied into the initramfs -----------------
#__GUEST_INIT_BEGIN__
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
read up _ </proc/uptime

die() {
  echo "testbed-guest: $*"
  if [ -d /out/rc ]; then echo 1 >/out/rc/setup; echo "$*" >/out/rc/setup.msg; fi
  sync; poweroff -f
}

for m in $(cat /lib/modules/order); do
  insmod /lib/modules/$m || die "insmod $m failed"
done
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000 host /host || die "mount host"
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 out /out || die "mount out"
echo "$up" >/out/rc/booted
. /out/run.env

# Find a device by vendor:device and bind it to vfio-pci.
bind_vfio() {
  local want="$1" d addr
  for d in /sys/bus/pci/devices/*; do
    [ "$(cat $d/vendor):$(cat $d/device)" = "$want" ] || continue
    addr=${d##*/}
    if [ -e $d/driver ]; then echo $addr >$d/driver/unbind || return 1; fi
    echo vfio-pci >$d/driver_override || return 1
    echo $addr >/sys/bus/pci/drivers_probe || return 1
    [ "$(basename $(readlink $d/driver))" = vfio-pci ] || return 1
    [ -e /dev/vfio/$(basename $(readlink $d/iommu_group)) ] || return 1
    echo $addr
    return 0
  done
  return 1
}
VUB_EDU=$(bind_vfio 0x1234:0x11e8) || die "cannot bind edu (1234:11e8) to vfio-pci"
VUB_NVME=$(bind_vfio 0x1b36:0x0010) || die "cannot bind nvme (1b36:0010) to vfio-pci"
echo 0 >/out/rc/setup

# The chroot: the host's / read-only, with the guest's /dev, /proc, /sys, a
# tmpfs on /tmp and /run, and the writable export at the same path as on the
# host.
H=/host
mount --bind /dev $H/dev || die "bind /dev"
mount -t devpts devpts $H/dev/pts 2>/dev/null
mount -t tmpfs tmpfs $H/dev/shm 2>/dev/null
mount --bind /proc $H/proc || die "bind /proc"
mount --bind /sys $H/sys || die "bind /sys"
# Keep the host's /tmp and /run reachable: the trees the scenarios need may
# live there (a CI clone under /tmp, say) and are bound back over the tmpfs.
mkdir -p /hostorig/tmp /hostorig/run
mount --bind $H/tmp /hostorig/tmp || die "bind host /tmp"
mount --bind $H/run /hostorig/run || die "bind host /run"
mount -t tmpfs -o mode=1777 tmpfs $H/tmp || die "tmpfs /tmp"
mount -t tmpfs -o mode=755 tmpfs $H/run || die "tmpfs /run"
for p in "$VUB_SRC" "$VUB_BUILD"; do
  case "$p" in
    /tmp/*) b=tmp ;;
    /run/*) b=run ;;
    *) continue ;;
  esac
  mountpoint -q $H$p 2>/dev/null && continue
  mkdir -p $H$p 2>/dev/null
  mount --bind /hostorig/$b/${p#/$b/} $H$p || die "bind $p"
done
mkdir -p $H$VUB_OUT 2>/dev/null
mount --bind /out $H$VUB_OUT || die "bind $VUB_OUT"
ip link set lo up 2>/dev/null

for s in $VUB_SCENARIOS; do
  n=${s##*/}; n=${n%.sh}
  echo "testbed-guest: scenario $n"
  read t0 _ </proc/uptime
  ( chroot $H /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
      HOME=/root TMPDIR=/tmp LANG=C.UTF-8 \
      VUB_SRC="$VUB_SRC" VUB_BUILD="$VUB_BUILD" VUB_OUT="$VUB_OUT" \
      VUB_EDU="$VUB_EDU" VUB_NVME="$VUB_NVME" VUB_NVME_SERIAL="$VUB_NVME_SERIAL" \
      VUB_NVME_IMG="$VUB_NVME_IMG" VUB_SCENARIO="$n" VUB_IN_GUEST=1 \
      VUB_TOPOLOGY="$VUB_TOPOLOGY" VUB_IOMMU="$VUB_IOMMU" \
      /bin/sh -c 'cd "$VUB_BUILD" && exec /bin/bash "$0"' "$s" </dev/null
    echo $? >/out/rc/$n.tmp ) 2>&1 | tee /out/log/$n.log
  read t1 _ </proc/uptime
  echo "$t0 $t1" | awk '{ printf "%.1f\n", $2 - $1 }' >/out/rc/$n.time
  mv /out/rc/$n.tmp /out/rc/$n
  echo "testbed-guest: scenario $n exit $(cat /out/rc/$n)"
done
sync
poweroff -f
#__GUEST_INIT_END__
