#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# demo.sh - see vfio-user-bridge work in a few minutes, on a machine without
# any VFIO hardware: install what is needed, build into ./build, boot a QEMU
# (TCG) guest with a virtual IOMMU and an emulated NVMe and edu device bound
# to vfio-pci, serve both through the bridge and look at them with
# vfio-user-probe (the lspci-like view, then self-tests that drive the real
# devices through the vfio-user protocol). Exit status 0 only if all of it
# worked.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
BUILD=${VUB_DEMO_BUILD:-$ROOT/build}
step() { printf '\n==> %s\n' "$*"; }
t0=$(date +%s)

step "dependencies"
if [ -x tools/deps.sh ]; then
  tools/deps.sh
else
  pkgs=(build-essential cmake pkg-config libjson-c-dev libpci-dev libudev-dev libcmocka-dev
        pci.ids qemu-system-x86 linux-image-amd64 busybox-static cpio kmod)
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q && apt-get install -y -q --no-install-recommends "${pkgs[@]}"
fi

step "build (cmake into $BUILD)"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! { cmake -S "$ROOT" -B "$BUILD" && cmake --build "$BUILD" -j "$(nproc)"; } >"$log" 2>&1; then
  tail -n 60 "$log"
  echo "demo: the build failed" >&2
  exit 1
fi
echo "built: $BUILD/bridge/vfio-user-bridge, $BUILD/tools/probe/vfio-user-probe"

step "boot the testbed guest (QEMU TCG, intel-iommu, edu + nvme on vfio-pci) and run the demo in it"
status=0
"$ROOT/tests/e2e/testbed.sh" --build "$BUILD" --src "$ROOT" --live --out "$BUILD/demo-out" \
  "$ROOT/tests/e2e/demo/guest.sh" || status=$?

step "done in $(( $(date +%s) - t0 )) s: $([ $status -eq 0 ] && echo "everything worked" || echo "FAILED (status $status)")"
echo "guest console and logs: $BUILD/demo-out/"
exit $status
