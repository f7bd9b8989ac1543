#!/usr/bin/env bash
# The fd store's cost on the message path (issue 14 item 3), in the e2e
# guest on the real edu: vfio-user-bench twice in one run, the bridge
# without and with --fd-store (the second under tests/e2e/progs/
# fdstore_keeper, whose notify socket takes the bridge's datagrams; it keeps
# no fds from a process that is not its main one, so the store stays empty,
# but the bridge does all its work: peeks, snapshots, sendmsg). Figures:
# the vIOMMU cycle (DMA_MAP + DMA_UNMAP of one 4 KiB page: two snapshots
# per cycle), the register read round trip (a peek, no snapshot). Not a CI
# test; run it with
#   tests/e2e/testbed.sh --build build tools/bench/fdstore-cost.sh
# and read the two tables in its output. Timings in a TCG guest: only the
# ratio between the two runs means anything.
. "$VUB_SRC/tests/e2e/lib.sh"
BENCH=$VUB_BUILD/tools/bench/vfio-user-bench
KEEPER=$VUB_PROGS/fdstore_keeper
require "$BENCH" "$KEEPER" "$VUB_BRIDGE"
KDIR=/run/vub-fdstore-cost
rm -rf "$KDIR"; mkdir -p "$KDIR"
args=(--device "$VUB_EDU" --bridge "$VUB_BRIDGE" --quick --iterations "${ITER:-200}" --irqs 50
      --dma-mib 4 --startups 2)
for round in 1 2; do
  check "round $round: bench without the fd store" \
    "$BENCH" "${args[@]}" --json "$VUB_OUT/cost-off-$round.json" --markdown "$VUB_OUT/cost-off-$round.md"
  check "round $round: bench with --fd-store" \
    "$KEEPER" "$KDIR" -- "$BENCH" "${args[@]}" --bridge-arg --fd-store \
      --json "$VUB_OUT/cost-on-$round.json" --markdown "$VUB_OUT/cost-on-$round.md"
done
python3 - "$VUB_OUT" <<'PY'
import json, sys, glob
out = sys.argv[1]
def med(path, key):
    f = json.load(open(path))["figures"].get(key, {})
    return (f.get("bridge") or {}).get("median")
for key in ("viommu_cycle", "trapped_bar_read4", "trapped_config_read4", "dma_map_4k",
            "dma_unmap_4k", "dma_map_2m", "startup"):
    offs = [med(p, key) for p in sorted(glob.glob(out + "/cost-off-*.json"))]
    ons = [med(p, key) for p in sorted(glob.glob(out + "/cost-on-*.json"))]
    if offs and all(v is not None for v in offs + ons):
        print("%-22s off %s  on %s  on/off %.2f" % (key, " ".join("%.1f" % v for v in offs),
              " ".join("%.1f" % v for v in ons), sum(ons) / sum(offs)))
PY
finish
