#!/usr/bin/env python3
"""Writes the seed corpus for tests/fuzz/fuzz_vring.c.

Usage: gen_vring_seeds.py [OUTDIR]   (default: corpus/vring next to this file)

The input format and guest-physical layout are described at the top of
fuzz_vring.c; the constants below must match it. Seeds are deterministic:
rerunning the script rewrites identical files. Files not named seed-* (e.g.
crash reproducers saved by hand) are left alone.
"""
import os
import struct
import sys

HDR = 8
FL_EVENT_IDX, FL_INDIRECT, FL_ADJACENT = 0x01, 0x02, 0x04
FL_UNPOP, FL_DRIVER, FL_NOTIFY = 0x08, 0x10, 0x20
GPA_A, GPA_B_ADJ, GPA_B_HOLE = 0x40000, 0x44000, 0x80000
GPA_DESC, GPA_AVAIL, GPA_USED = 0x10000, 0x20000, 0x30000
DATA_SIZE = 0x4000
NEXT, WRITE, INDIRECT = 1, 2, 4


def desc(addr, length, flags=0, nxt=0):
    return struct.pack("<QIHH", addr, length, flags, nxt)


def seed(log2num, flags=0, last_avail=0, used_idx=0, wcap=255, descs=(),
         avail_flags=0, avail_idx=None, ring=(), used_event=0,
         data_a=b"", data_b=b""):
    """descs: {index: bytes} or a list; ring: avail ring heads from slot
    last_avail onwards; avail_idx defaults to last_avail + len(ring)."""
    num = 1 << log2num
    out = struct.pack("<BBHHBB", log2num, flags, last_avail, used_idx, wcap, 0)
    table = bytearray(16 * num)
    items = descs.items() if isinstance(descs, dict) else enumerate(descs)
    for i, d in items:
        table[16 * i:16 * i + 16] = d
    out += table
    slots = [0] * num
    for k, head in enumerate(ring):
        slots[(last_avail + k) % num] = head
    if avail_idx is None:
        avail_idx = (last_avail + len(ring)) & 0xFFFF
    out += struct.pack("<HH", avail_flags, avail_idx)
    out += struct.pack("<%dH" % num, *slots)
    out += struct.pack("<H", used_event)
    if data_b:
        out += data_a.ljust(DATA_SIZE, b"\0") + data_b
    else:
        out += data_a
    return out


def table(*entries):
    return b"".join(entries)


def seeds():
    s = {}
    s["normal"] = seed(3, descs=[desc(GPA_A, 64, NEXT, 1),
                                 desc(GPA_A + 0x100, 128, WRITE)], ring=[0])
    s["multi-event-idx"] = seed(
        4, FL_EVENT_IDX | FL_NOTIFY, used_event=1,
        descs={0: desc(GPA_A, 16), 1: desc(GPA_A + 0x40, 8, NEXT, 2),
               2: desc(GPA_B_HOLE, 8, NEXT, 3), 3: desc(GPA_A + 0x80, 32, WRITE),
               5: desc(GPA_B_HOLE + 0x100, 64, WRITE)},
        ring=[0, 1, 5])
    tbl = table(desc(GPA_A, 64, NEXT, 2), desc(GPA_A + 0x200, 128, WRITE),
                desc(GPA_A + 0x100, 32, NEXT, 1))
    s["indirect"] = seed(2, FL_INDIRECT, descs=[desc(GPA_A + 0x1000, 48, INDIRECT)],
                         ring=[0], data_a=bytes(0x1000) + tbl)
    s["indirect-seam"] = seed(
        3, FL_INDIRECT | FL_ADJACENT,
        descs=[desc(GPA_B_ADJ - 24, 48, INDIRECT)], ring=[0],
        data_a=bytes(DATA_SIZE - 24) + tbl[:24], data_b=tbl[24:])
    s["straddle"] = seed(3, FL_ADJACENT, descs=[desc(GPA_A, 8, NEXT, 1),
                                               desc(GPA_B_ADJ - 50, 100, WRITE)],
                         ring=[0])
    s["loop"] = seed(3, descs=[desc(GPA_A, 8, NEXT, 1), desc(GPA_A, 8, NEXT, 0)],
                     ring=[0])
    s["indirect-loop"] = seed(
        3, FL_INDIRECT, descs=[desc(GPA_A + 0x1000, 32, INDIRECT)], ring=[0],
        data_a=bytes(0x1000) + table(desc(GPA_A, 8, NEXT, 1), desc(GPA_A, 8, NEXT, 0)))
    s["head-ge-num"] = seed(3, descs=[desc(GPA_A, 8)], ring=[0, 8])
    s["next-ge-num"] = seed(3, descs=[desc(GPA_A, 8, NEXT, 8)], ring=[0])
    s["avail-jump"] = seed(3, descs=[desc(GPA_A, 8)], ring=[0], avail_idx=9)
    s["indirect-nested"] = seed(
        3, FL_INDIRECT, descs=[desc(GPA_A + 0x1000, 16, INDIRECT)], ring=[0],
        data_a=bytes(0x1000) + desc(GPA_A + 0x2000, 16, INDIRECT))
    s["indirect-len"] = seed(3, FL_INDIRECT,
                             descs=[desc(GPA_A + 0x1000, 40, INDIRECT)], ring=[0],
                             data_a=bytes(0x1000) + tbl)
    s["hole-overflow"] = seed(3, descs=[desc(GPA_A + DATA_SIZE - 4, 8),
                                        desc(0xFFFFFFFFFFFFFFF0, 0x20, WRITE),
                                        desc(GPA_B_HOLE + DATA_SIZE - 8, 16, WRITE)],
                              ring=[0, 1, 2])
    s["write-then-read"] = seed(3, descs=[desc(GPA_A, 8, WRITE | NEXT, 1),
                                          desc(GPA_A + 0x10, 8)], ring=[0])
    s["full-256"] = seed(8, FL_EVENT_IDX | FL_NOTIFY | FL_ADJACENT, wcap=1,
                         descs=[desc(GPA_A + 16 * i, 16, WRITE) for i in range(256)],
                         ring=list(range(256)), used_event=128)
    s["size1-wrap"] = seed(0, FL_UNPOP, last_avail=0xFFFF, used_idx=0xFFFF,
                           descs=[desc(GPA_A, 8, NEXT | WRITE, 0)], ring=[0])
    s["size1-ok"] = seed(0, FL_UNPOP | FL_EVENT_IDX, last_avail=0xFFFF,
                         descs=[desc(GPA_A, 8, WRITE)], ring=[0])
    # 1025 one-byte entries: one more iovec than VIOD_VQ_MAX_IOV.
    big = b"".join(desc(GPA_B_HOLE + 2 * i, 1, NEXT if i < 1024 else 0, i + 1)
                   for i in range(1025))
    s["iov-cap"] = seed(3, FL_INDIRECT, descs=[desc(GPA_A, 16 * 1025, INDIRECT)],
                        ring=[0], data_a=big, data_b=b"\1")
    # Buffers pointing into the rings themselves: the device writes its own
    # descriptor table and avail ring.
    s["self-overwrite"] = seed(2, FL_NOTIFY, descs=[desc(GPA_DESC, 64, WRITE),
                                                    desc(GPA_AVAIL, 14, WRITE),
                                                    desc(GPA_USED, 38, WRITE)],
                               ring=[0, 1, 2, 0])
    # Driver side: 4 chains posted, a used ring with a good entry then a bad id.
    ctl = bytes([0x09, 10, 0x00, 20, 0x12, 5, 0x01, 7]) + bytes([0xC0] * 56)
    used = struct.pack("<HH", 0, 2) + struct.pack("<II", 0, 10) + struct.pack("<II", 99, 0)
    s["driver"] = seed(3, FL_DRIVER, descs=[desc(GPA_A, 8)], ring=[0],
                       data_a=ctl, data_b=used)
    return s


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "corpus", "vring")
    os.makedirs(outdir, exist_ok=True)
    for name, data in sorted(seeds().items()):
        with open(os.path.join(outdir, "seed-" + name), "wb") as f:
            f.write(data)
    print("wrote %d seeds to %s" % (len(seeds()), outdir))


if __name__ == "__main__":
    main()
