#!/usr/bin/env bash
# QEMU with the vfio-user client (`-device vfio-user-pci`) on a Debian 12 host.
#
# Debian 12 ships QEMU 7.2, which has no vfio-user client. trixie-backports has
# QEMU 11.x built with it, but that needs trixie's userland, so this script
# builds a small trixie root (debootstrap minbase + qemu-system-x86 from
# trixie-backports) OUTSIDE the repository and reuses it across runs. QEMU is
# then run straight from that root through the root's own dynamic loader: no
# chroot, no mounts, and the root may be read-only (e.g. the host's file system
# seen over 9p inside the end-to-end test guest).
#
#   tools/provision-qemu-vfio-user.sh            provision if missing or broken,
#                                                and (re)build the inner test
#                                                guest if its sources changed;
#                                                prints the root's path
#   tools/provision-qemu-vfio-user.sh --check    exit 0 if the root is usable
#   tools/provision-qemu-vfio-user.sh --check-stamp
#                                                the same without running QEMU
#                                                (stamp and files only; fast)
#   tools/provision-qemu-vfio-user.sh --version  the installed QEMU package
#                                                version, from the stamp
#   tools/provision-qemu-vfio-user.sh --exec ARGS...
#                                                run that qemu-system-x86_64
#                                                (checks the stamp only)
#   tools/provision-qemu-vfio-user.sh --rebuild  provision from scratch
#
# Environment:
#   VUB_QEMU_ROOT       the root (default /var/cache/vfio-user-bridge/trixie-qemu)
#   VUB_VMM_GUEST_CACHE where the end-to-end tests' inner guest is cached
#                       (default /var/cache/vfio-user-bridge/inner-guest;
#                       tests/e2e/vmm/build-inner-guest.sh builds it)
#   VUB_DEBIAN_MIRROR   Debian mirror URL (default: the one this machine's apt
#                       uses, read from /etc/apt by tools/debian-mirror.sh;
#                       never written into the project)
#
# The root holds a stamp file (.vub-stamp) naming what was installed; a root
# without it, or whose QEMU does not list vfio-user-pci, is rebuilt.
set -euo pipefail

ROOT=${VUB_QEMU_ROOT:-/var/cache/vfio-user-bridge/trixie-qemu}
STAMP_FORMAT=1
SUITE=trixie
QEMU_SUITE=trixie-backports

die() { echo "provision-qemu-vfio-user: $*" >&2; exit 1; }
log() { echo "provision-qemu-vfio-user: $*" >&2; }

# Run the root's qemu-system-x86_64 with the root's loader and libraries.
# -L points QEMU at the root's firmware (SeaBIOS first: the host has its own
# copy under the same absolute path); QEMU_MODULE_DIR at its loadable modules.
# The host's /usr/lib/x86_64-linux-gnu/qemu (QEMU 7.2 modules) is still QEMU's
# compiled-in fallback, so never ask this QEMU for something that loads every
# module (plain "-device help" fails that way); what the tests use is built in.
qemu_exec() {
  local r=$1; shift
  local ld=$r/lib64/ld-linux-x86-64.so.2
  local libs=$r/lib/x86_64-linux-gnu:$r/usr/lib/x86_64-linux-gnu
  [ -x "$ld" ] || die "$r: no dynamic loader (not provisioned?)"
  QEMU_MODULE_DIR=$r/usr/lib/x86_64-linux-gnu/qemu \
    exec "$ld" --library-path "$libs" "$r/usr/bin/qemu-system-x86_64" \
      -L "$r/usr/share/seabios" -L "$r/usr/share/qemu" "$@"
}

stamp_ok() {
  local r=$1
  [ -f "$r/.vub-stamp" ] && grep -qx "format=$STAMP_FORMAT" "$r/.vub-stamp" &&
    [ -x "$r/lib64/ld-linux-x86-64.so.2" ] && [ -x "$r/usr/bin/qemu-system-x86_64" ]
}

root_ok() {
  local r=$1
  stamp_ok "$r" || return 1
  local out
  # Whole output first: grep -q could SIGPIPE QEMU and fail the pipeline.
  out=$( ( qemu_exec "$r" -device vfio-user-pci,help ) 2>/dev/null ) || return 1
  grep -q '^  socket=' <<<"$out"
}

provision() {
  local tmp t0
  [ "$(id -u)" -eq 0 ] || die "provisioning needs root (debootstrap, chroot)"
  t0=$(date +%s)
  mkdir -p "$(dirname "$ROOT")"
  tmp=$ROOT.new.$$
  rm -rf "$tmp"
  # Always unmount and remove a half-built root, whatever happens.
  trap 'umount "$tmp/proc" 2>/dev/null || true; rm -rf "$tmp"' EXIT
  log "debootstrap $SUITE into $tmp, then qemu-system-x86 from $QEMU_SUITE"
  "$(dirname "$(readlink -f "$0")")/debian-root.sh" --sources "$SUITE $QEMU_SUITE" \
    --target-release "$QEMU_SUITE" "$SUITE" "$tmp" qemu-system-x86 ||
    die "making the $SUITE root failed"
  {
    echo "format=$STAMP_FORMAT"
    echo "suite=$SUITE"
    echo "qemu_suite=$QEMU_SUITE"
    echo "qemu-system-x86=$(chroot "$tmp" dpkg-query -W -f='${Version}' qemu-system-x86)"
    echo "created=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "seconds=$(( $(date +%s) - t0 ))"
  } >"$tmp/.vub-stamp"
  root_ok "$tmp" || die "the new root's QEMU does not offer vfio-user-pci"
  rm -rf "$ROOT.old"
  [ -e "$ROOT" ] && mv "$ROOT" "$ROOT.old"
  mv "$tmp" "$ROOT"
  rm -rf "$ROOT.old"
  trap - EXIT
  log "provisioned $ROOT in $(( $(date +%s) - t0 )) s: $(grep qemu-system "$ROOT/.vub-stamp")"
}

case "${1:-}" in
  --check) root_ok "$ROOT"; exit ;;
  --check-stamp) stamp_ok "$ROOT"; exit ;;
  --version) stamp_ok "$ROOT" || die "$ROOT is not provisioned (run $0)"
             sed -n 's/^qemu-system-x86=//p' "$ROOT/.vub-stamp" ;;
  # The stamp only, not root_ok: asking this QEMU whether it offers
  # vfio-user-pci is a whole second QEMU start (~5-15 s in the test guest,
  # where its binary and libraries come over 9p and are relocated under
  # TCG) before every real one; a root broken since it was stamped fails
  # at that real start anyway, with QEMU's own message.
  --exec) shift; stamp_ok "$ROOT" || die "$ROOT is not provisioned (run $0)"
          qemu_exec "$ROOT" "$@" ;;
  --rebuild|"")
    # One provisioning at a time on this machine.
    mkdir -p "$(dirname "$ROOT")"
    exec 9>"$ROOT.lock"
    flock 9
    if [ "${1:-}" = --rebuild ] || ! root_ok "$ROOT"; then
      provision
    fi
    # The inner guest of tests/e2e/vmm (kernel + initramfs), built here on the
    # host because the test guest sees this file system read-only.
    guest=$(dirname "$(readlink -f "$0")")/../tests/e2e/vmm/build-inner-guest.sh
    if [ -x "$guest" ]; then
      "$guest" "${VUB_VMM_GUEST_CACHE:-$(dirname "$ROOT")/inner-guest}" ||
        die "building the inner test guest failed"
    fi
    echo "$ROOT" ;;
  *) die "usage: $0 [--check | --check-stamp | --version | --exec QEMU-ARGS... | --rebuild]" ;;
esac
