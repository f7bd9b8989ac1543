#!/usr/bin/env bash
# The Debian package, built and installed the way a user would (README,
# "Use it on a real host"): builds vfio-user-bridge_*.deb with
# dpkg-buildpackage from a copy of this tree, runs lintian on it (errors
# fail, warnings are printed), installs it with apt into a clean Debian 12
# root and checks there that
#   - vfio-user-bridge --version names the package's version;
#   - vfio-user-bridge list --json on a small fake sysfs tree lists its function
#     as exportable, and vfio-user-export-check with the installed example
#     policy matches it;
#   - systemd-analyze verify accepts an instance of the installed unit (its
#     ExecStart= binary, its man: documentation);
#   - the man pages are installed; purging the package removes its files.
#
#   tools/test-package.sh             all of the above (root needed)
#   tools/test-package.sh --root      only make sure the cached root exists
#
# The root is debootstrap --variant=minbase bookworm plus systemd, udev and
# man-db (tools/debian-root.sh, on the mirror this machine's apt uses),
# cached in /var/cache/vfio-user-bridge/bookworm-pkg ($VUB_BOOKWORM_ROOT) like
# the trixie root of tools/provision-qemu-vfio-user.sh, rebuilt when missing
# or incomplete, and copied for every run, so each install starts clean.
# Unit tests are not run again inside the package build (DEB_BUILD_OPTIONS
# nocheck); VUB_PKG_CHECK=1 runs them (label unit only, never e2e).
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
ROOT=${VUB_BOOKWORM_ROOT:-/var/cache/vfio-user-bridge/bookworm-pkg}
STAMP_FORMAT=2
# udev: the rule's runtime, and it makes the kvm group the example policy names.
ROOT_PKGS="systemd udev man-db"

die() { echo "test-package: $*" >&2; exit 1; }
log() { echo "test-package: $*" >&2; }

[ "$(id -u)" -eq 0 ] || die "needs root (debootstrap, chroot, mount)"

work=
cleanup() {
  local m
  if [ -n "$work" ]; then
    # Unmount whatever is still mounted below the work directory, deepest
    # first, before removing it (never follow into a mounted /proc).
    for m in $(awk -v w="$work/" 'index($2, w) == 1 { print $2 }' /proc/self/mounts | sort -r); do
      umount "$m" 2>/dev/null || umount -l "$m" || true
    done
    rm -rf --one-file-system "$work"
  fi
}
trap cleanup EXIT
trap "exit 130" INT TERM
work=$(mktemp -d /var/tmp/vub-package.XXXXXX)

root_ok() {
  [ -f "$1/.vub-stamp" ] && grep -qx "format=$STAMP_FORMAT" "$1/.vub-stamp" &&
    [ -x "$1/usr/bin/systemd-analyze" ] && [ -x "$1/usr/bin/man" ] && [ -x "$1/usr/bin/apt-get" ] &&
    [ -x "$1/bin/udevadm" ]
}

make_root() {
  local tmp=$work/root.new t0
  t0=$(date +%s)
  mkdir -p "$(dirname "$ROOT")"
  log "debootstrap bookworm into $ROOT (once; cached)"
  # The package lists stay: installing the .deb resolves its dependencies.
  tools/debian-root.sh --keep-lists bookworm "$tmp" $ROOT_PKGS ||
    die "making the bookworm root failed"
  {
    echo "format=$STAMP_FORMAT"
    echo "suite=bookworm"
    echo "packages=$ROOT_PKGS"
    echo "created=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "seconds=$(( $(date +%s) - t0 ))"
  } >"$tmp/.vub-stamp"
  rm -rf "$ROOT.old"
  [ -e "$ROOT" ] && mv "$ROOT" "$ROOT.old"
  mv "$tmp" "$ROOT"
  rm -rf "$ROOT.old"
  log "bookworm root ready in $(( $(date +%s) - t0 )) s"
}

ensure_root() {
  mkdir -p "$(dirname "$ROOT")"
  exec 9>"$ROOT.lock"
  flock 9
  root_ok "$ROOT" || make_root
  exec 9>&-
}

if [ "${1:-}" = --root ]; then
  ensure_root
  echo "$ROOT"
  exit 0
fi
[ $# -eq 0 ] || die "usage: $0 [--root]"

# ---- build the package from a copy of the tree (tracked and new files, not
# the build directories), so that dpkg-buildpackage's output lands in $work.
t=$(date +%s)
mkdir "$work/src"
git ls-files -z --cached --others --exclude-standard |
  while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
  tar --null -T - -cf - | tar -xf - -C "$work/src"
opts=${DEB_BUILD_OPTIONS:-}
[ "${VUB_PKG_CHECK:-0}" = 1 ] || opts="nocheck $opts"
log "dpkg-buildpackage -b -us -uc (DEB_BUILD_OPTIONS=$opts)"
mkdir -p "$top/build-deb"
(cd "$work/src" && DEB_BUILD_OPTIONS="$opts" dpkg-buildpackage -b -us -uc) \
  >"$top/build-deb/build.log" 2>&1 ||
  { tail -n 40 "$top/build-deb/build.log" >&2; die "dpkg-buildpackage failed (build-deb/build.log)"; }
deb=$(ls "$work"/vfio-user-bridge_*.deb)
version=$(dpkg-deb -f "$deb" Version)
log "built $(basename "$deb") in $(( $(date +%s) - t )) s; a copy and the log are in build-deb/"
cp "$deb" "$top/build-deb/"
dpkg-deb -c "$deb"

t=$(date +%s)
# --fail-on error: warnings are listed but do not fail the stage.
lrc=0
lint=$(lintian --fail-on error --tag-display-limit 0 "$deb" 2>&1) || lrc=$?
grep -v '^running with root privileges' <<<"$lint" || true
[ "$lrc" = 0 ] || die "lintian found errors in $(basename "$deb") (exit $lrc)"
log "lintian in $(( $(date +%s) - t )) s"

# ---- install it into a copy of the clean root
t=$(date +%s)
ensure_root
log "root ready in $(( $(date +%s) - t )) s"
t=$(date +%s)
r=$work/root
cp -a "$ROOT" "$r"
mount -t proc proc "$r/proc"
cp "$deb" "$r/tmp/"
in_root() { chroot "$r" /usr/bin/env DEBIAN_FRONTEND=noninteractive LC_ALL=C PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@"; }
install_deb() {
  in_root apt-get -q -y install --no-install-recommends "/tmp/$(basename "$deb")" >"$work/install.log" 2>&1
}
# The cached lists may be older than the mirror: refresh and retry once.
install_deb || { in_root apt-get -q update >/dev/null && install_deb; } ||
  { tail -n 30 "$work/install.log" >&2; die "installing the package into the bookworm root failed"; }
log "installed in a clean bookworm root in $(( $(date +%s) - t )) s"

fail=0
check() { # check NAME COMMAND...: run it in the root, report
  local name=$1; shift
  if out=$("$@" 2>&1); then
    echo "ok   $name"
  else
    echo "FAIL $name"; printf '%s\n' "$out" | sed 's/^/     /'; fail=1
  fi
}

# --version names the packaged version.
check "vfio-user-bridge --version is $version" \
  sh -c "[ \"\$(chroot '$r' vfio-user-bridge --version)\" = 'vfio-user-bridge $version' ]"

# A fake sysfs with one edu function bound to vfio-pci in IOMMU group 7, laid
# out like tests/unit/fake_sysfs.h: devices/, bus/pci/{devices,drivers}/,
# kernel/iommu_groups/.
a=0000:00:03.0
fs=$r/tmp/fake-sysfs
mkdir -p "$fs/devices/pci0000:00/$a" "$fs/bus/pci/devices" "$fs/bus/pci/drivers/vfio-pci" \
         "$fs/kernel/iommu_groups/7/devices"
printf '0x1234\n' >"$fs/devices/pci0000:00/$a/vendor"
printf '0x11e8\n' >"$fs/devices/pci0000:00/$a/device"
printf '0x00ff00\n' >"$fs/devices/pci0000:00/$a/class"
ln -s "../../../devices/pci0000:00/$a" "$fs/bus/pci/devices/$a"
ln -s ../../../bus/pci/drivers/vfio-pci "$fs/devices/pci0000:00/$a/driver"
ln -s ../../../kernel/iommu_groups/7 "$fs/devices/pci0000:00/$a/iommu_group"
ln -s "../../../../devices/pci0000:00/$a" "$fs/kernel/iommu_groups/7/devices/$a"

list_json() {
  local out
  out=$(in_root vfio-user-bridge list --json --sysfs /tmp/fake-sysfs) || return 1
  printf '%s\n' "$out"
  grep -q "\"address\":\"$a\"" <<<"$out" && grep -q '"vendor_id":"1234"' <<<"$out" &&
    grep -q '"driver":"vfio-pci"' <<<"$out" && grep -q '"iommu_group":7' <<<"$out" &&
    grep -q '"exportable":true' <<<"$out"
}
check "vfio-user-bridge list --json --sysfs (fake tree) lists $a as exportable" list_json

export_check() {
  local out
  out=$(in_root /usr/libexec/vfio-user-export-check \
          --policy /usr/share/doc/vfio-user-bridge/policy.example.json \
          --sysfs /tmp/fake-sysfs "$a") || { printf '%s\n' "$out"; return 1; }
  printf '%s\n' "$out"
  grep -qx 'VFIO_USER_MATCH=1' <<<"$out" && grep -qx 'VFIO_USER_EXPORT=1' <<<"$out"
}
check "vfio-user-export-check with the installed example policy matches $a" export_check

unit=/lib/systemd/system/vfio-user-bridge@.service
check "the unit is installed at $unit" test -f "$r$unit"
# An instance of the template, named as systemd escapes 0000:00:03.0 (verify
# takes ':' in a path as a separator; %I unescapes it again). verify checks
# that ExecStart= is an executable and that the man: pages in Documentation=
# exist; a bad setting is only a warning, so any output fails the check too.
verify() {
  local out
  out=$(in_root systemd-analyze verify '/lib/systemd/system/vfio-user-bridge@0000\x3a00\x3a03.0.service' 2>&1) ||
    { printf '%s\n' "$out"; return 1; }
  [ -z "$out" ] || { printf '%s\n' "$out"; return 1; }
}
check "systemd-analyze verify vfio-user-bridge@$a.service" verify
check "the udev rule is installed" test -f "$r/lib/udev/rules.d/70-vfio-user-bridge.rules"
for page in vfio-user-bridge.8 vfio-user-probe.1 vfio-user-export-check.8 \
            vfio-user-bridge-policy.5 vfio-user-bench.1; do
  check "man ${page##*.} ${page%.*} is installed" in_root man -w "${page##*.}" "${page%.*}"
done

check "purging the package removes its files" sh -c "
  chroot '$r' /usr/bin/env DEBIAN_FRONTEND=noninteractive apt-get -q -y purge vfio-user-bridge >/dev/null &&
  ! [ -e '$r/usr/bin/vfio-user-bridge' ] && ! [ -e '$r$unit' ] &&
  ! [ -e '$r/lib/udev/rules.d/70-vfio-user-bridge.rules' ]"

log "checks in the root in $(( $(date +%s) - t )) s"
[ "$fail" = 0 ] || die "the installed package failed a check (above)"
echo "test-package: $(basename "$deb"): built, lintian clean of errors, installed and checked in bookworm"
