#!/usr/bin/env bash
# DMA map/unmap on the testbed's iommufd kernel, the figures behind
# docs/performance.md's "iommufd" section: three vfio-user-bench runs in
# one guest boot, --dma-only, each its direct side against a bridge:
#   1. direct type1   vs bridge --iommu type1    (today's path, same kernel)
#   2. direct type1   vs bridge --iommu iommufd  (IOMMU_IOAS_MAP_FILE)
#   3. direct iommufd vs bridge --iommu iommufd
# Run through the testbed:
#   tests/e2e/testbed.sh --build BUILD --kernel iommufd --timeout 1500 \
#     tools/bench/guest-iommufd.sh
# Results in $VUB_OUT/bench-<direct>-<bridge>.{md,json}. Timings are never a
# pass/fail: the exit status says only whether every figure was measured.
set -u
bench=$VUB_BUILD/tools/bench/vfio-user-bench
bridge=$VUB_BUILD/bridge/vfio-user-bridge
mib=${VUB_BENCH_DMA_MIB:-256}
rc=0
for pair in type1:type1 type1:iommufd iommufd:iommufd; do
  d=${pair%%:*} b=${pair##*:}
  echo "==== direct $d, bridge $b"
  "$bench" --device "$VUB_EDU" --bridge "$bridge" --iommu "$d" \
    --bridge-arg --iommu --bridge-arg "$b" --dma-only --dma-mib "$mib" --dma-reps 1 \
    --startups 1 --json "$VUB_OUT/bench-$d-$b.json" --markdown "$VUB_OUT/bench-$d-$b.md" || rc=1
done
exit $rc
