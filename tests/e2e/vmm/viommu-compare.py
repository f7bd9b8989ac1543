#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""viommu-compare.py TRACE STATUS.json [BYTES] - is the bridge's DMA table
exactly what QEMU had mapped after the messages the bridge had received
when it answered (`client.messages`), within the first BYTES of the trace
(its size when the status was taken)?

QEMU's side: its vfio_user_dma_map / vfio_user_dma_unmap trace events (one per
message it sent, in order; with a guest IOMMU one per guest IOMMU map and
unmap) replayed with the kernel's type1 rules (a map that overlaps is refused,
an unmap removes every mapping inside its range, one that cuts a mapping
removes nothing, flag 2 removes all). The trace must hold one device's
conversation only. The bridge's side: `vfio-user-bridge status` JSON.
Prints both counts; exit 0 when the mapping sets are identical (when the
bridge lists only its lowest ranges, those and the count must match)."""
import json
import re
import sys

MAP = re.compile(r"vfio_user_dma_map\s+iova (0x[0-9a-f]+) size (0x[0-9a-f]+)")
UNMAP = re.compile(r"vfio_user_dma_unmap\s+iova (0x[0-9a-f]+) size (0x[0-9a-f]+) flags (0x[0-9a-f]+)")


def replay(path, limit, upto_msgs):
    """The mappings after QEMU's first upto_msgs messages (each traced as
    one vfio_user_send_write, after its dma_map/dma_unmap line when it is
    one), within the first `limit` bytes of the trace (-1: all)."""
    maps = {}          # iova -> size
    refused = 0
    sent = 0
    pending = None
    with open(path, "rb") as f:
        data = f.read(limit) if limit >= 0 else f.read()
    text = data.decode(errors="replace")
    if not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]   # a line being written
    for line in text.splitlines():
        m = MAP.search(line)
        if m:
            pending = ("map", int(m[1], 16), int(m[2], 16), 0)
            continue
        m = UNMAP.search(line)
        if m:
            pending = ("unmap", int(m[1], 16), int(m[2], 16), int(m[3], 16))
            continue
        if "vfio_user_send_write" not in line:
            continue
        if upto_msgs >= 0 and sent >= upto_msgs:
            break
        sent += 1
        if pending is None:
            continue
        kind, iova, size, flags = pending
        pending = None
        if kind == "map":
            if any(a < iova + size and iova < a + s for a, s in maps.items()):
                refused += 1
            else:
                maps[iova] = size
        elif flags & 2:
            maps.clear()
        else:
            end = iova + size
            hit = [a for a, s in maps.items() if a < end and iova < a + s]
            if any(a < iova or a + maps[a] > end for a in hit):
                refused += 1
                continue
            for a in hit:
                del maps[a]
    return maps, refused, sent


def main():
    with open(sys.argv[2]) as f:
        st = json.load(f)
    cl = st.get("client")
    if not cl:
        print("bridge: no client connected")
        return 1
    # the bridge had received cl["messages"] messages when it answered
    maps, refused, sent = replay(sys.argv[1], int(sys.argv[3]) if len(sys.argv) > 3 else -1,
                                 cl["messages"])
    if sent != cl["messages"]:
        print(f"the trace holds {sent} messages, the bridge counted {cl['messages']}")
        return 1
    dma = cl["dma"]
    bridge = [(int(r["iova"], 16), int(r["size"], 16)) for r in dma["ranges"]]
    qemu = sorted(maps.items())
    print(f"bridge {dma['count']} mappings ({dma['bytes']} bytes in the IOMMU), "
          f"QEMU {len(qemu)} (replayed from its trace; {refused} it sent would be refused)")
    if dma["count"] != len(qemu):
        ok = False
    elif dma["ranges_truncated"]:
        ok = bridge == qemu[:len(bridge)]
    else:
        ok = bridge == qemu
    if not ok:
        b, q = set(bridge), set(qemu)
        print("  only in the bridge:", ", ".join(f"{a:#x}+{s:#x}" for a, s in sorted(b - q)[:8]))
        print("  only in QEMU:      ", ", ".join(f"{a:#x}+{s:#x}" for a, s in sorted(q - b)[:8]))
    else:
        print("  identical:", ", ".join(f"{a:#x}+{s:#x}" for a, s in qemu[:6]),
              "..." if len(qemu) > 6 else "")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
