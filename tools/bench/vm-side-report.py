#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Table of tools/bench/vm-side.sh: per workload, the bridged nvme against the
directly assigned one in the same inner guest, alternating, many rounds.
usage: vm-side-report.py OUTDIR MODE..."""
import math
import random
import statistics
import sys

KINDS = [("seqread", "sequential read 8 MiB, 128 KiB O_DIRECT", "MB/s"),
         ("seqwrite", "sequential write 8 MiB + fdatasync", "MB/s"),
         ("rand4k_qd1", "4 KiB random read, QD1", "IOPS"),
         ("rand4k_qd16", "4 KiB random read, QD16 (16 threads)", "IOPS")]


def rate(kind, us, ops):
    if kind.startswith("seq"):
        return ops * 128 * 1024 / us   # bytes/us = MB/s
    return ops * 1e6 / us


def geo_ci(ratios, draws=2000):
    """Geometric mean of the per-round time ratios and a 95 % percentile
    bootstrap interval (fixed seed: the same rounds give the same table)."""
    logs = [math.log(x) for x in ratios]
    gm = math.exp(statistics.fmean(logs))
    if len(logs) < 2:
        return gm, gm, gm
    rng = random.Random(18)
    means = sorted(statistics.fmean(rng.choices(logs, k=len(logs))) for _ in range(draws))
    return gm, math.exp(means[int(0.025 * draws)]), math.exp(means[int(0.975 * draws) - 1])


def main():
    out, modes = sys.argv[1], sys.argv[2:]
    print("| guest IOMMU | workload | bridge | direct | bridge / direct (time, sum over rounds) | "
          "geometric mean of per-round ratios (95 % bootstrap interval) | per-round ratios min-max | "
          "interrupts/s bridge, direct |")
    print("|---|---|---|---|---|---|---|---|")
    ready = []
    for mode in modes:
        rows = {}
        for line in open(f"{out}/side-{mode}.txt"):
            f = line.split()
            if f[0] == "VMM-SIDE-READY":
                ready.append((mode, f[1], float(f[3])))
                continue
            _, rnd, kind, who, us, ops, irqs = f
            rows.setdefault(kind, {}).setdefault(who, []).append((int(rnd), int(us), int(ops), int(irqs)))
        for kind, what, unit in KINDS:
            r = rows.get(kind)
            if not r or "bridge" not in r or "direct" not in r:
                continue
            # only rounds where both sides ran (an inner guest that stops
            # mid-round leaves one side alone; summing it would skew the ratio)
            db = {x[0]: x for x in r["bridge"]}
            dd = {x[0]: x for x in r["direct"]}
            both = sorted(set(db) & set(dd))
            if not both:
                continue
            b, d = [db[k] for k in both], [dd[k] for k in both]
            tb, td = sum(x[1] for x in b), sum(x[1] for x in d)
            per = [x[1] / y[1] for x, y in zip(b, d)]
            gm, lo, hi = geo_ci(per)
            rb = statistics.median(rate(kind, x[1], x[2]) for x in b)
            rd = statistics.median(rate(kind, x[1], x[2]) for x in d)
            ib = sum(x[3] for x in b) * 1e6 / tb
            idd = sum(x[3] for x in d) * 1e6 / td
            print(f"| {'yes' if mode.startswith('viommu') else 'no'} | {what} | {rb:.1f} {unit} | {rd:.1f} {unit} | "
                  f"**{tb / td:.2f}x** ({len(b)} rounds) | {gm:.2f}x ({lo:.2f}-{hi:.2f}) | "
                  f"{min(per):.2f}-{max(per):.2f} | {ib:.0f}, {idd:.0f} |")
    print()
    for mode, who, t in ready:
        print(f"- {mode}: {who} block device at {t:.1f} s of inner uptime")
    return 0


if __name__ == "__main__":
    sys.exit(main())
