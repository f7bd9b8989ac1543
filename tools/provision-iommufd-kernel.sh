#!/usr/bin/env bash
# The e2e testbed's own guest kernel, with iommufd and VFIO device cdevs.
#
# No Debian kernel enables CONFIG_IOMMUFD (/work/shared/TESTBED.md), so the
# testbed boots a kernel of its own for the iommufd back end: Debian's
# linux-source package (trixie-backports; 7.3 has IOMMU_IOAS_MAP_FILE),
# `make allnoconfig` with tests/e2e/kernel/iommufd.config, everything built
# in (no modules), only bzImage kept. Built OUTSIDE the repository, cached,
# and rebuilt when missing or when the config fragment (or this script's
# recipe) changes.
#
#   tools/provision-iommufd-kernel.sh          provision if missing or stale;
#                                              prints the bzImage path
#   tools/provision-iommufd-kernel.sh --check  exit 0 if the cache is current
#                                              (prints the bzImage path)
#   tools/provision-iommufd-kernel.sh --rebuild
#
# Environment:
#   VUB_IOMMUFD_KERNEL  the cache (default /var/cache/vfio-user-bridge/iommufd-kernel)
#   VUB_DEBIAN_MIRROR   Debian mirror (default: this machine's apt's, read by
#                       tools/debian-mirror.sh; never written into the project)
#   VUB_KERNEL_JOBS     make -j (default 2); the build runs under nice -n 10
#
# The cache holds bzImage, config (the resulting .config) and .vub-stamp
# (the key: a hash of the fragment and the recipe; the source package's
# version; the build's wall, user and sys seconds).
set -euo pipefail

SELF=$(readlink -f "${BASH_SOURCE[0]}")
TOP=$(dirname "$(dirname "$SELF")")
CACHE=${VUB_IOMMUFD_KERNEL:-/var/cache/vfio-user-bridge/iommufd-kernel}
FRAGMENT=$TOP/tests/e2e/kernel/iommufd.config
SUITE=trixie-backports
PKG=linux-source-7.3
RECIPE=1   # bump when the build below changes what it makes
JOBS=${VUB_KERNEL_JOBS:-2}

die() { echo "provision-iommufd-kernel: $*" >&2; exit 1; }
log() { echo "provision-iommufd-kernel: $*" >&2; }

[ -f "$FRAGMENT" ] || die "no $FRAGMENT"
KEY=$( { echo "recipe=$RECIPE pkg=$PKG suite=$SUITE"; cat "$FRAGMENT"; } | sha256sum | cut -c1-16)

current() {
  [ -f "$CACHE/.vub-stamp" ] && grep -qx "key=$KEY" "$CACHE/.vub-stamp" &&
    [ -s "$CACHE/bzImage" ]
}

build() {
  [ "$(id -u)" -eq 0 ] || die "provisioning needs root (it writes $CACHE)"
  for t in make gcc flex bison bc xz dpkg-deb apt-get; do
    command -v "$t" >/dev/null || die "$t is not installed (tools/deps.sh)"
  done
  [ -f /usr/include/libelf.h ] || die "libelf-dev is not installed (tools/deps.sh)"
  local mirror t0
  mirror=$("$TOP/tools/debian-mirror.sh")
  mkdir -p "$(dirname "$CACHE")"
  # global: the EXIT trap runs after build() has returned
  tmp=$(mktemp -d "${TMPDIR:-/var/tmp}/vub-kernel.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  t0=$(date +%s)
  # The source package from $SUITE through a private apt state: the
  # machine's own apt configuration is not touched.
  mkdir -p "$tmp/apt/lists/partial" "$tmp/apt/cache/archives/partial"
  echo "deb $mirror $SUITE main" >"$tmp/apt/sources.list"
  : >"$tmp/apt/status"
  local apt=(-o "Dir::Etc::sourcelist=$tmp/apt/sources.list" -o "Dir::Etc::sourceparts=-"
             -o "Dir::State::Lists=$tmp/apt/lists" -o "Dir::State::status=$tmp/apt/status"
             -o "Dir::Cache=$tmp/apt/cache" -o "APT::Sandbox::User=root")
  log "downloading $PKG from $SUITE"
  apt-get -q "${apt[@]}" update >"$tmp/apt.log" 2>&1 ||
    { tail -n 20 "$tmp/apt.log" >&2; die "apt-get update of $SUITE failed"; }
  (cd "$tmp" && apt-get -q "${apt[@]}" download "$PKG") >>"$tmp/apt.log" 2>&1 ||
    { tail -n 20 "$tmp/apt.log" >&2; die "apt-get download $PKG failed"; }
  local deb version
  deb=$(ls "$tmp"/"$PKG"_*.deb)
  version=$(dpkg-deb -f "$deb" Version)
  dpkg-deb -x "$deb" "$tmp/pkg"
  rm -f "$deb"
  tar -xJf "$tmp/pkg/usr/src/$PKG.tar.xz" -C "$tmp"
  rm -rf "$tmp/pkg"
  local src=$tmp/$PKG out=$tmp/out
  mkdir -p "$out"
  make -s -C "$src" O="$out" KCONFIG_ALLCONFIG="$FRAGMENT" allnoconfig >"$tmp/config.log" 2>&1 ||
    { tail -n 20 "$tmp/config.log" >&2; die "make allnoconfig failed"; }
  # Every symbol the fragment asks for must have survived Kconfig.
  local missing
  missing=$(grep '^CONFIG_' "$FRAGMENT" | while read -r l; do
              grep -qx "$l" "$out/.config" || echo "$l"; done)
  [ -z "$missing" ] || die "Kconfig dropped: ${missing//$'\n'/ } (a dependency missing from $FRAGMENT?)"
  log "building $PKG $version (make -j$JOBS under nice -n 10; about 15-25 min on 2 cores)"
  local tb=$tmp/time
  local TIMEFORMAT='%R %U %S'   # wall, user, sys of make and its children
  { time nice -n 10 make -s -C "$src" O="$out" -j"$JOBS" bzImage >"$tmp/build.log" 2>&1; } 2>"$tb" ||
    { tail -n 40 "$tmp/build.log" >&2; die "kernel build failed"; }
  local new=$CACHE.new.$$
  rm -rf "$new"
  mkdir -p "$new"
  cp "$out/arch/x86/boot/bzImage" "$new/bzImage"
  cp "$out/.config" "$new/config"
  read -r wall user sys <"$tb"
  {
    echo "key=$KEY"
    echo "package=$PKG=$version"
    echo "suite=$SUITE"
    echo "kernel=$(make -s -C "$src" O="$out" kernelrelease 2>/dev/null)"
    echo "created=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "build_wall=$wall build_user=$user build_sys=$sys"
    echo "seconds=$(( $(date +%s) - t0 ))"
  } >"$new/.vub-stamp"
  rm -rf "$CACHE.old"
  [ -e "$CACHE" ] && mv "$CACHE" "$CACHE.old"
  mv "$new" "$CACHE"
  rm -rf "$CACHE.old" "$tmp"
  trap - EXIT
  log "provisioned $CACHE in $(( $(date +%s) - t0 )) s (make: ${wall}s wall, ${user}s user, ${sys}s sys)"
}

case "${1:-}" in
  --check) current || exit 1; echo "$CACHE/bzImage" ;;
  --rebuild|"")
    mkdir -p "$(dirname "$CACHE")"
    exec 9>"$CACHE.lock"
    flock 9
    if [ "${1:-}" = --rebuild ] || ! current; then
      build
    fi
    echo "$CACHE/bzImage" ;;
  *) die "usage: $0 [--check | --rebuild]" ;;
esac
