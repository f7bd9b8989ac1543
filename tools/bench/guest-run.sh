#!/usr/bin/env bash
# The full guest measurement behind docs/performance.md: vfio-user-bench on
# the real edu (kernel VFIO, intel-iommu) in the e2e testbed's QEMU TCG
# guest. Run through the testbed (it provides VUB_EDU, VUB_OUT, ...):
#   tests/e2e/testbed.sh --build BUILD --timeout 900 tools/bench/guest-run.sh
# or simply tools/bench/run.sh. Iteration counts are sized so the run ends in
# well under 10 minutes under TCG; results in $VUB_OUT/bench.{md,json}.
set -u
bench=$VUB_BUILD/tools/bench/vfio-user-bench
bridge=$VUB_BUILD/bridge/vfio-user-bridge
exec "$bench" --device "$VUB_EDU" --bridge "$bridge" \
  --iterations 2000 --irqs 10000 --dma-mib 256 --dma-reps 1 --startups 5 \
  --json "$VUB_OUT/bench.json" --markdown "$VUB_OUT/bench.md"
