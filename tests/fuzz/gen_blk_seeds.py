#!/usr/bin/env python3
"""Writes the seed corpus for tests/fuzz/fuzz_blk.c.

Usage: gen_blk_seeds.py [OUTDIR]   (default: corpus/blk next to this file)

The input format is described at the top of fuzz_blk.c. Seeds are
deterministic; files not named seed-* are left alone.
"""
import os
import struct
import sys

RO, LBS4K, NULL, EVENT_IDX, NO_DISCARD = 1, 2, 4, 8, 16
IN, OUT, FLUSH, GET_ID, DISCARD, WZ, LIFETIME, RAW = range(8)
SPLIT_HDR, NO_STATUS, HDR_WRITABLE, STATUS_READABLE, ZERO_DESC = 4, 8, 16, 32, 64


def rec(kind, ndata=1, layout=0, blocks=8, extra=0, nseg=0, sector=0, raw=0):
    """One 16-byte request record."""
    return struct.pack("<BBHBB6sI", kind, (ndata & 3) | layout, blocks, extra,
                       nseg, sector.to_bytes(6, "little"), raw)


SEEDS = {
    "read-write-flush": (0, [rec(OUT, 1, blocks=8, sector=16), rec(IN, 2, blocks=8, sector=16),
                             rec(FLUSH, 0), rec(GET_ID, 1, blocks=1)]),
    "last-sector": (0, [rec(IN, 1, blocks=1, sector=2047), rec(OUT, 3, blocks=2, sector=2046)]),
    "past-capacity": (0, [rec(IN, 1, blocks=1, sector=2048), rec(OUT, 1, blocks=2, sector=2047),
                          rec(IN, 1, blocks=1, sector=(1 << 48) - 1)]),
    "unaligned-length": (0, [rec(IN, 1, blocks=1, extra=0x80 | 7), rec(OUT, 2, blocks=0, extra=0x81)]),
    "lbs4k-unaligned-sector": (LBS4K, [rec(IN, 1, blocks=8, sector=1), rec(OUT, 1, blocks=1, sector=8),
                                       rec(IN, 1, blocks=8, sector=8)]),
    "read-only": (RO, [rec(OUT, 1, blocks=8), rec(DISCARD, 1, nseg=1, raw=1), rec(WZ, 1, nseg=1),
                       rec(IN, 1, blocks=8), rec(FLUSH, 0)]),
    "discard-write-zeroes": (0, [rec(DISCARD, 1, nseg=2, sector=64, raw=1),
                                 rec(WZ, 1, nseg=3, sector=128, raw=0x5 | (1 << 16)),
                                 rec(DISCARD, 1, nseg=1, sector=0, raw=1 << 16)]),
    "discard-too-many": (0, [rec(DISCARD, 1, nseg=19, raw=1), rec(WZ, 1, nseg=17)]),
    "discard-off": (NO_DISCARD, [rec(DISCARD, 1, nseg=1), rec(WZ, 1, nseg=1)]),
    "layouts": (0, [rec(IN, 3, layout=SPLIT_HDR, blocks=3), rec(OUT, 1, layout=ZERO_DESC, blocks=1),
                    rec(IN, 1, layout=NO_STATUS, blocks=2), rec(OUT, 0, layout=STATUS_READABLE),
                    rec(IN, 1, layout=HDR_WRITABLE, blocks=1)]),
    "no-status": (0, [rec(OUT, 1, layout=NO_STATUS, blocks=1), rec(FLUSH, 0, layout=NO_STATUS)]),
    "unknown-types": (0, [rec(RAW, 0, raw=2), rec(RAW, 1, raw=0xffffffff), rec(LIFETIME, 1, blocks=1),
                          rec(RAW, 1, raw=14, nseg=1)]),
    "null-backend": (NULL | EVENT_IDX, [rec(OUT, 1, blocks=128), rec(IN, 3, blocks=128),
                                        rec(FLUSH, 0), rec(DISCARD, 1, nseg=1), rec(IN, 1, sector=4000)]),
    "many": (EVENT_IDX, [rec(i % 7, 1 + i % 3, blocks=1 + i, sector=i * 8, nseg=1 + i % 4, raw=i)
                         for i in range(16)]),
}


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "corpus", "blk")
    os.makedirs(out, exist_ok=True)
    for name, (flags, recs) in SEEDS.items():
        with open(os.path.join(out, "seed-" + name), "wb") as f:
            f.write(bytes([flags]) + b"".join(recs))


if __name__ == "__main__":
    main()
