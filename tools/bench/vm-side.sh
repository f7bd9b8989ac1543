#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# A VM side by side with direct VFIO (issue 18, docs/performance.md):
#   tools/bench/vm-side.sh [--build DIR] [--rounds N] [--no-viommu|--viommu-only] [--trace] [--swap]
# Boots the e2e testbed guest with a second nvme and runs
# tools/bench/vm-side-guest.sh in it: one inner QEMU 11 guest with the
# testbed's nvme through the bridge and the second nvme passed directly,
# the same O_DIRECT workloads alternating between them for N rounds (4),
# without and with a guest IOMMU (or only one of them). --trace: the
# bridge's --trace and QEMU's trace with timestamps, to see where a
# message's time goes. --swap: the roles of the two controllers swapped
# (the second one through the bridge, the testbed's own passed directly),
# to tell a difference of the paths from one of the controllers. Needs
# what the e2e VMM tests need
# (tools/provision-qemu-vfio-user.sh once). Table: DIR/bench/vm-side.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
src=$PWD build=$src/build rounds=4 modes='side viommu_side' trace=0 swap=0
while [ $# -gt 0 ]; do
  case $1 in
    --build) build=$(realpath -m "$2"); shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --no-viommu) modes=side; shift ;;
    --viommu-only) modes=viommu_side; shift ;;
    --trace) trace=1; shift ;;
    --swap) swap=1; shift ;;
    -h|--help) sed -n '3,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "vm-side.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
case "$rounds" in ''|*[!0-9]*) echo "vm-side.sh: --rounds wants a number" >&2; exit 2 ;; esac
mkdir -p "$build/bench" "$build/tests/e2e"
printf 'ROUNDS=%s\nMODES="%s"\nTRACE=%s\nSWAP=%s\n' "$rounds" "$modes" "$trace" "$swap" >"$build/tests/e2e/side.conf"
img=$build/bench/vm-side-direct.img
rm -f "$img"
truncate -s 16M "$img"
rc=0
"$src/tests/e2e/testbed.sh" --build "$build" --src "$src" --timeout 2400 --smp 2 \
  --qemu-arg -drive --qemu-arg "file=$img,if=none,id=nvmside,format=raw" \
  --qemu-arg -device --qemu-arg "nvme,drive=nvmside,serial=VUBSIDEDIRECT01" \
  "$src/tools/bench/vm-side-guest.sh" || rc=1
rm -f "$build/tests/e2e/side.conf"
out=$build/tests/e2e/out/vm-side-guest
[ -f "$out/vm-side.md" ] && cp "$out/vm-side.md" "$build/bench/vm-side.md" && cat "$build/bench/vm-side.md"
exit $rc
