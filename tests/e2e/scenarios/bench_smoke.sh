#!/usr/bin/env bash
# vfio-user-bench, short, against the real edu in the guest: every figure is
# measured through the bridge and directly, the two sides agree about the
# device, the bridge starts, serves and stops cleanly. Timings are printed
# for the log but never judged (TCG).
# e2e-group: host
# e2e-cost: 10
. "$VUB_SRC/tests/e2e/lib.sh"

BENCH=$VUB_BUILD/tools/bench/vfio-user-bench
require "$BENCH" "$VUB_BRIDGE"

check "bench --quick on edu measures every figure both ways" \
  "$BENCH" --device "$VUB_EDU" --bridge "$VUB_BRIDGE" --quick \
    --iterations 20 --irqs 50 --dma-mib 8 \
    --json "$VUB_OUT/bench-smoke.json" --markdown "$VUB_OUT/bench-smoke.md"
# eleven targets: the nine of before, since issue 12's fifth round the
# vIOMMU cycle with the client's messages framed by hand, and since its
# sixth the cycle against a minimal server (n/a on a real device)
check "the JSON names every target" \
  test "$(grep -c '"verdict"' "$VUB_OUT/bench-smoke.json" 2>/dev/null)" -eq 11
g=$(basename "$(readlink /sys/bus/pci/devices/$VUB_EDU/iommu_group)")
check "the group is free again after the run" \
  sh -c "exec 3<>/dev/vfio/$g"
finish
