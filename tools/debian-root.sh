#!/usr/bin/env bash
# Make a Debian root in DIR: debootstrap --variant=minbase SUITE, apt sources
# for SOURCE-SUITES (default SUITE) on this machine's mirror
# (tools/debian-mirror.sh), no daemon starts from maintainer scripts
# (policy-rc.d), then PACKAGES installed without recommends. Used for the
# trixie root with QEMU 11 (tools/provision-qemu-vfio-user.sh) and the clean
# bookworm root the Debian package is installed into (tools/test-package.sh).
#
#   tools/debian-root.sh [--sources "S1 S2"] [--target-release R] [--keep-lists]
#                        SUITE DIR PACKAGE...
#
# --target-release R  install PACKAGES with apt-get -t R (e.g. trixie-backports)
# --keep-lists        keep apt's package lists (so that later installs into a
#                     copy of the root resolve dependencies); removed otherwise
# DIR must not exist. On failure the tail of the log is printed, /proc is
# unmounted and the exit status is non-zero; removing DIR is the caller's.
set -euo pipefail
sources='' release='' keep_lists=0
while [ $# -gt 0 ]; do
  case $1 in
    --sources) sources=$2; shift 2 ;;
    --target-release) release=$2; shift 2 ;;
    --keep-lists) keep_lists=1; shift ;;
    *) break ;;
  esac
done
[ $# -ge 3 ] || { echo "usage: $0 [--sources S] [--target-release R] [--keep-lists] SUITE DIR PACKAGE..." >&2; exit 2; }
suite=$1 dir=$2; shift 2
die() { echo "debian-root: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "needs root (debootstrap, chroot, mount)"
command -v debootstrap >/dev/null || die "debootstrap is not installed (tools/deps.sh)"
[ ! -e "$dir" ] || die "$dir exists already"
mirror=$("$(dirname "$(readlink -f "$0")")/debian-mirror.sh")
log=$(mktemp /tmp/debian-root.XXXXXX.log)
trap 'umount "$dir/proc" 2>/dev/null || true; rm -f "$log"' EXIT

debootstrap --variant=minbase "$suite" "$dir" "$mirror" >"$log" 2>&1 ||
  { tail -n 20 "$log" >&2; die "debootstrap $suite failed"; }
cat >"$dir/etc/apt/sources.list.d/debian.sources" <<EOF2
Types: deb
URIs: $mirror
Suites: ${sources:-$suite}
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF2
rm -f "$dir/etc/apt/sources.list"
printf '#!/bin/sh\nexit 101\n' >"$dir/usr/sbin/policy-rc.d"
chmod 755 "$dir/usr/sbin/policy-rc.d"
mount -t proc proc "$dir/proc"
chroot "$dir" /usr/bin/env DEBIAN_FRONTEND=noninteractive LC_ALL=C \
  sh -c "apt-get -q update && apt-get -q -y install --no-install-recommends \
         ${release:+-t $release} $*" >"$log" 2>&1 ||
  { tail -n 20 "$log" >&2; die "apt-get install $* failed"; }
umount "$dir/proc"
chroot "$dir" apt-get -q clean >/dev/null
[ "$keep_lists" = 1 ] || rm -rf "$dir"/var/lib/apt/lists/*
