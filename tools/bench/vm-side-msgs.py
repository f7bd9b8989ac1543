#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Where a guest-IOMMU message's time goes in tools/bench/vm-side.sh --trace:
QEMU's trace (-msg timestamp=on: wall-clock stamps) gives each DMA_MAP and
DMA_UNMAP's round trip as QEMU sees it (send to reply header) and the gap
from a reply to QEMU's next send; the bridge's --trace gives its handling
time per message; the bridge's CPU time over the run (BRIDGE-CPU lines the
guest half writes) says how much of that handling was spent running.
usage: vm-side-msgs.py QEMU_TRACE BRIDGE_TRACE [CPU_FILE]"""
import datetime
import json
import re
import statistics
import sys

CMDS = {2: "DMA_MAP", 3: "DMA_UNMAP"}


def pct(v, p):
    s = sorted(v)
    return s[min(len(s) - 1, int(p * len(s)))]


def line(what, v_us):
    return (f"| {what} | {len(v_us)} | {statistics.median(v_us):.0f} | {pct(v_us, 0.9):.0f} | "
            f"{sum(v_us) / 1e6:.1f} |")


def main():
    qtrace, btrace = sys.argv[1], sys.argv[2]
    sent, rtt, gaps, last = {}, {}, [], None
    stamp = re.compile(r"(\S+?)Z? (vfio_user_\w+) +(.*)")
    for ln in open(qtrace, errors="replace"):
        m = stamp.match(ln)
        if not m:
            continue
        try:
            t = datetime.datetime.fromisoformat(m.group(1)).timestamp()
        except ValueError:
            continue
        ev, rest = m.group(2), m.group(3)
        mid = re.search(r"\bid (0x[0-9a-f]+)", rest)
        if not mid:
            continue
        if ev == "vfio_user_send_write":
            sent[mid.group(1)] = t
            if last is not None:
                gaps.append((t - last) * 1e6)
        elif ev == "vfio_user_recv_hdr" and mid.group(1) in sent:
            cmd = int(re.search(r"\bcmd (0x[0-9a-f]+)", rest).group(1), 16)
            rtt.setdefault(cmd, []).append((t - sent.pop(mid.group(1))) * 1e6)
            last = t
    handling = {}
    for ln in open(btrace):
        j = json.loads(ln)
        if j.get("dir") == "tx" and "handling_ns" in j:
            handling.setdefault(j["cmd"], []).append(j["handling_ns"] / 1e3)
    print("| what | messages | median us | p90 us | sum s |")
    print("|---|---|---|---|---|")
    for cmd, name in CMDS.items():
        if rtt.get(cmd):
            print(line(f"{name}: QEMU's round trip (send to reply)", rtt[cmd]))
        if handling.get(name):
            print(line(f"{name}: the bridge's handling (read to reply)", handling[name]))
    if gaps:
        print(line("QEMU: a reply to its next send (any command)", gaps))
    if len(sys.argv) > 3:
        cpu = {}
        for ln in open(sys.argv[3]):
            f = ln.split()
            if len(f) == 3 and f[0] == "BRIDGE-CPU":
                cpu[f[1]] = float(f[2])
        if "before" in cpu and "after" in cpu:
            n = sum(len(v) for v in handling.values())
            used = cpu["after"] - cpu["before"]
            busy = sum(sum(v) for v in handling.values()) / 1e6
            print(f"\nbridge CPU time over the run: {used:.2f} s for {n} messages "
                  f"({used * 1e6 / max(n, 1):.0f} us each) against {busy:.1f} s of handling")
    return 0


if __name__ == "__main__":
    sys.exit(main())
