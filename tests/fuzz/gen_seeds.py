#!/usr/bin/env python3
"""Write the seed corpus of fuzz_bridge (tests/fuzz/corpus/): valid client
conversations. Each file: one option byte (see fuzz_bridge.c), then
vfio-user messages. The message id picks attached fds (see fuzz_bridge.c)."""
import os
import struct
import sys

def msg(mid, cmd, payload=b"", flags=0):
    return struct.pack("<HHIII", mid, cmd, 16 + len(payload), flags, 0) + payload

JSON = b'{"capabilities":{"max_msg_fds":16,"max_data_xfer_size":1048576,' \
       b'"pgsizes":4096,"max_dma_maps":65535,"migration":{"pgsize":4096,' \
       b'"max_bitmap_size":1048576}}}\0'
VERSION = msg(0, 1, struct.pack("<HH", 0, 0) + JSON)

def dma_map(mid, iova, size, off=0, flags=3):
    return msg(mid, 2, struct.pack("<IIQQQ", 32, flags, off, iova, size))

def dma_unmap(mid, iova, size, flags=0):
    return msg(mid, 3, struct.pack("<IIQQ", 24, flags, iova, size))

def rd(mid, region, off, count):
    return msg(mid, 9, struct.pack("<QII", off, region, count))

def wr(mid, region, off, data):
    return msg(mid, 10, struct.pack("<QII", off, region, len(data)) + data)

def set_irqs(mid, flags, index, start, count, data=b""):
    return msg(mid, 8, struct.pack("<IIIII", 20 + len(data), flags, index, start, count) + data)

def region_info(mid, index, argsz=32):
    return msg(mid, 5, struct.pack("<IIIIQQ", argsz, 0, index, 0, 0, 0))

def irq_info(mid, index):
    return msg(mid, 7, struct.pack("<IIII", 16, 0, index, 0))

def write_multi(mid, entries):
    body = struct.pack("<Q", len(entries))
    for region, off, data in entries:
        body += struct.pack("<QII", off, region, len(data)) + data.ljust(8, b"\0")
    return msg(mid, 15, body)

EVENTFD, NONE, BOOL = 4, 1, 2
TRIGGER, MASK, UNMASK = 32, 8, 16

seeds = {
    "version": VERSION,
    "info": VERSION + msg(4, 4, struct.pack("<IIII", 16, 0, 0, 0))
            + b"".join(region_info(4 + i, i, 32 if i % 2 else 1024) for i in range(9))
            + b"".join(irq_info(20 + i, i) for i in range(5)),
    "dma_nofd": VERSION + dma_map(4, 0x100000, 0x10000) + dma_map(8, 0x200000, 0x1000)
                + dma_unmap(12, 0x100000, 0x10000) + dma_unmap(16, 0, 0, 2),
    "dma_memfd": VERSION + dma_map(1, 0x100000, 0x200000) + dma_map(5, 0x400000, 0x1000, 0x1000)
                 + dma_map(2, 0x800000, 0x1000) + dma_map(3, 0x900000, 0x1000, 0, 1)
                 + dma_map(7, 0xa00000, 0x1000, 0, 2)
                 + wr(40, 0, 0x80, struct.pack("<Q", 0x40000))
                 + wr(41, 0, 0x88, struct.pack("<Q", 0x100000))
                 + wr(42, 0, 0x90, struct.pack("<Q", 64))
                 + wr(43, 0, 0x98, struct.pack("<Q", 1))
                 + dma_unmap(44, 0x400000, 0x1000),
    "region_rw": VERSION + rd(4, 7, 0, 64) + rd(5, 0, 0, 8) + wr(6, 0, 4, b"\x11\x22\x33\x44")
                 + rd(7, 0, 4, 4) + wr(8, 7, 4, b"\x06\x00") + rd(9, 6, 0, 16) + rd(10, 8, 0, 4)
                 + rd(11, 1, 0, 0) + wr(12, 2, 0x2000, b"\0" * 16)
                 + write_multi(13, [(0, 0x08, b"\x05\0\0\0"), (7, 0x04, b"\x06\x00")]),
    "irqs": VERSION + set_irqs(1, EVENTFD | TRIGGER, 2, 0, 4)
            + set_irqs(3, EVENTFD | TRIGGER, 2, 4, 16)
            + set_irqs(5, EVENTFD | TRIGGER, 1, 0, 1)
            + set_irqs(7, EVENTFD | TRIGGER, 0, 0, 1)
            + set_irqs(8, BOOL | MASK, 0, 0, 1, b"\1")
            + set_irqs(9, NONE | UNMASK, 0, 0, 1)
            + set_irqs(10, EVENTFD | TRIGGER, 2, 0, 4)
            + wr(11, 0, 0x60, b"\1\0\0\0")
            + set_irqs(12, NONE | TRIGGER, 2, 0, 0)
            + msg(13, 13),
    "bad": VERSION + msg(4, 99) + msg(5, 11, b"\0" * 16) + msg(6, 6, struct.pack("<IIII", 16, 0, 0, 0))
           + msg(7, 16, struct.pack("<II", 8, 1 << 18)) + msg(8, 17, struct.pack("<II", 8, 0))
           + msg(9, 4, b"\0" * 16, 1) + msg(10, 9, struct.pack("<QII", 0, 7, 4), 0x10),
}

out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "corpus")
os.makedirs(out, exist_ok=True)
for name, body in seeds.items():
    for opt in (0x00, 0x05, 0x3a):
        with open(os.path.join(out, f"{name}-{opt:02x}"), "wb") as f:
            f.write(bytes([opt]) + body)
