#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# build-inner-guest.sh [--check] OUTDIR [KVER] - the kernel and initramfs of
# the INNER guest (booted by QEMU's vfio-user-pci client on the bridged
# devices). --check: exit 0 if OUTDIR is current, build nothing.
#
# Writes OUTDIR/kernel (the vmlinux ELF taken out of /boot/vmlinuz-KVER when
# the kernel supports the PVH entry, else the bzImage itself), and
# OUTDIR/initramfs.cpio (uncompressed: static busybox, the nvme and vfio-pci
# drivers and their dependencies, guest-tool built here with gcc -static, inner-init.sh as /init).
# Both are cached: OUTDIR/key names the inputs (OUTDIR/modules lists the
# modules, for --check); nothing is redone when they
# did not change. Everything boot time can skip under nested TCG is skipped:
# no kernel self-decompression (the slowest part of a bzImage boot there), no
# initramfs decompression, only the modules the checks need (nvme; vfio-pci
# for the guest-IOMMU edu check, loaded only in that mode).
set -euo pipefail

HERE=$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")
CHECK=0
if [ "${1:-}" = --check ]; then CHECK=1; shift; fi
OUT=${1:?usage: build-inner-guest.sh [--check] OUTDIR [KVER]}
KVER=${2:-}
log() { printf 'build-inner-guest: %s\n' "$*" >&2; }

# --check runs in the test guest before every VMM scenario, where each exec
# costs ~0.2-1 s: builtins where they do, the module list from the last
# build (modules.dep's time is in the key), one sha256sum.
if [ -z "$KVER" ]; then
  for k in $(printf '%s\n' /boot/vmlinuz-* | sort -V -r); do
    k=${k#/boot/vmlinuz-}
    if [ -f "/lib/modules/$k/modules.dep" ]; then KVER=$k; break; fi
  done
fi
[ -n "$KVER" ] || { log "no /boot/vmlinuz-<ver> with its modules"; exit 1; }
BZ=/boot/vmlinuz-$KVER
BUSYBOX=$(command -v busybox) || { log "busybox not installed"; exit 1; }

# Modules in load order, dependencies first (OUTDIR/modules: the list).
MODFILES=()
if [ $CHECK = 1 ]; then
  [ -f "$OUT/modules" ] || exit 1
  mapfile -t MODFILES <"$OUT/modules"
else
  declare -A SEEN=()
  for m in nvme vfio-pci; do
    # (no process substitution: the test guest's /dev has no /dev/fd)
    deps=$(modprobe -S "$KVER" --show-depends "$m")
    while read -r kind path _; do
      [ "$kind" = insmod ] || continue
      [ -n "${SEEN[$path]:-}" ] && continue
      SEEN[$path]=1
      MODFILES+=("$path")
    done <<<"$deps"
  done
fi

# The key must come out the same on the host and in the test guest (other
# paths to the same files there): contents and sizes/times, no file names.
key=$( { echo "$KVER"; cat "$HERE/guest-tool.c" "$HERE/inner-init.sh" "$HERE/build-inner-guest.sh";
         stat -L -c '%s %Y' "$BZ" "$BUSYBOX" "/lib/modules/$KVER/modules.dep" "${MODFILES[@]}"; } |
       sha256sum)
key=${key:0:16}
have=
[ -f "$OUT/key" ] && read -r have <"$OUT/key"
if [ "$have" = "$key" ] && [ -f "$OUT/kernel" ] && [ -f "$OUT/initramfs.cpio" ]; then
  exit 0
fi
[ $CHECK = 0 ] || exit 1
mkdir -p "$OUT"
rm -f "$OUT/key"

# The kernel: the bzImage's payload is an ELF vmlinux compressed with one of
# the usual compressors; find it by magic and unpack it.
extract_vmlinux() {
  local magic tool off
  for pair in "$(printf '\3757zXZ')|xz -dc" "$(printf '\050\265\057\375')|zstd -qdc" \
              "$(printf '\037\213\010')|gzip -dc"; do
    magic=${pair%%|*} tool=${pair#*|}
    command -v "${tool%% *}" >/dev/null || continue
    for off in $(LC_ALL=C grep -obUaF -- "$magic" "$BZ" 2>/dev/null | cut -d: -f1 | head -n 5); do
      tail -c +$((off + 1)) "$BZ" | $tool 2>/dev/null >"$OUT/vmlinux.tmp" || true
      if [ "$(head -c 4 "$OUT/vmlinux.tmp" | od -An -c | tr -d ' ')" = '177ELF' ]; then
        mv "$OUT/vmlinux.tmp" "$1"; return 0
      fi
    done
  done
  rm -f "$OUT/vmlinux.tmp"
  return 1
}
if grep -qx 'CONFIG_PVH=y' "/boot/config-$KVER" 2>/dev/null && extract_vmlinux "$OUT/kernel.tmp"; then
  log "kernel: vmlinux (PVH entry) from $BZ"
else
  log "kernel: $BZ as is (no PVH or no vmlinux inside)"
  cp "$BZ" "$OUT/kernel.tmp"
fi
mv "$OUT/kernel.tmp" "$OUT/kernel"

root=$(mktemp -d "$OUT/root.XXXXXX")
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,dev,proc,sys,lib/modules}
cp "$BUSYBOX" "$root/bin/busybox"
${CC:-cc} -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -static -s -pthread \
  -o "$root/bin/guest-tool" "$HERE/guest-tool.c"
i=0
: >"$root/lib/modules/order"
for f in "${MODFILES[@]}"; do
  i=$((i + 1))
  base=$(printf '%02d-%s' "$i" "$(basename "$f" | sed 's/\.ko.*$//')").ko
  case "$f" in
    *.ko) cp "$f" "$root/lib/modules/$base" ;;
    *.ko.xz) xz -dc "$f" >"$root/lib/modules/$base" ;;
    *.ko.zst) zstd -qdc "$f" >"$root/lib/modules/$base" ;;
    *.ko.gz) gzip -dc "$f" >"$root/lib/modules/$base" ;;
    *) log "unknown module format: $f"; exit 1 ;;
  esac
  echo "$base" >>"$root/lib/modules/order"
done
cp "$HERE/inner-init.sh" "$root/init"
chmod 755 "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet) >"$OUT/initramfs.cpio.tmp"
mv "$OUT/initramfs.cpio.tmp" "$OUT/initramfs.cpio"
echo "$KVER" >"$OUT/kver"
printf '%s\n' "${MODFILES[@]}" >"$OUT/modules"
echo "$key" >"$OUT/key"
log "initramfs: $(du -k "$OUT/initramfs.cpio" | cut -f1) KiB, modules: $(tr '\n' ' ' <"$root/lib/modules/order")"
