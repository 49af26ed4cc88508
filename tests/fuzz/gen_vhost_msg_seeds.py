#!/usr/bin/env python3
"""Writes the seed corpus for fuzz_vhost_msg: realistic message sequences
(a QEMU-like handshake, ring setup, config access, memory slots, resets) in
the fuzzer's record format [device selector:1] then [nfds:1][hdr:12][payload]
per message. Run: tests/fuzz/gen_vhost_msg_seeds.py tests/fuzz/corpus/vhost_msg"""
import os
import struct
import sys

V = 1  # version flag
NEED_REPLY = 1 << 3
F_VERSION_1, F_INDIRECT, F_EVENT_IDX, F_PF = 32, 28, 29, 30
PF_ALL = (1 << 0) | (1 << 3) | (1 << 5) | (1 << 9) | (1 << 13) | (1 << 15) | (1 << 16)
MEM_UVA = 0x7F0000000000
RING = 16


def msg(req, payload=b"", nfds=0, flags=V):
    return bytes([nfds]) + struct.pack("<III", req, flags, len(payload)) + payload


def u64(v):
    return struct.pack("<Q", v)


def state(i, n):
    return struct.pack("<II", i, n)


def region(gpa, size, uva, off):
    return struct.pack("<QQQQ", gpa, size, uva, off)


def addr(i, desc, used, avail):
    return struct.pack("<IIQQQQ", i, 0, desc, used, avail, 0)


def handshake(features, pf=PF_ALL, need_reply=0):
    f = V | need_reply
    return (msg(1) + msg(15) + msg(16, u64(pf)) + msg(3) + msg(1) +
            msg(2, u64(features), flags=f))


def ring_setup(q, base_uva, kick=True):
    desc, avail, used = base_uva, base_uva + 16 * RING, base_uva + 0x400
    out = (msg(8, state(q, RING)) + msg(9, addr(q, desc, used, avail)) +
           msg(10, state(q, 0)) + msg(13, u64(q), nfds=1) + msg(14, u64(q), nfds=1))
    if kick:
        out += msg(12, u64(q), nfds=1) + msg(18, state(q, 1))
    return out


def ring_memory(chains):
    """4 KiB image: desc table at 0, avail at 256, used at 1024, buffers at 2048."""
    mem = bytearray(4096)
    for i, (length, flags, nxt) in enumerate(chains):
        struct.pack_into("<QIHH", mem, 16 * i, 2048 + 64 * i, length, flags, nxt)
    heads = [i for i, c in enumerate(chains) if not any(
        (c2[1] & 1) and c2[2] == i for c2 in chains)]
    struct.pack_into("<HH", mem, 256, 0, len(heads))
    for k, h in enumerate(heads):
        struct.pack_into("<H", mem, 260 + 2 * k, h)
    return bytes(mem)


FEAT = (1 << F_VERSION_1) | (1 << F_EVENT_IDX) | (1 << F_INDIRECT) | (1 << F_PF)
mem_table = msg(5, struct.pack("<II", 1, 0) + region(0, 0x10000, MEM_UVA, 0), nfds=1)
seeds = {
    "rng-qemu-boot": b"\x00" + handshake(FEAT) + mem_table + ring_setup(0, MEM_UVA) +
    msg(11, state(0, 0)),
    "rng-reply-ack": b"\x00" + handshake(FEAT, need_reply=NEED_REPLY) +
    msg(5, struct.pack("<II", 1, 0) + region(0, 0x10000, MEM_UVA, 0), nfds=1,
        flags=V | NEED_REPLY) + ring_setup(0, MEM_UVA) + msg(40) + msg(39, u64(15)) +
    msg(39, u64(0)),
    "rng-mem-slots": b"\x00" + handshake(FEAT) + msg(36) +
    msg(37, u64(0) + region(0, 0x8000, MEM_UVA, 0), nfds=1) +
    msg(37, u64(0) + region(0x8000, 0x8000, MEM_UVA + 0x8000, 0x8000), nfds=1) +
    ring_setup(0, MEM_UVA) + msg(38, u64(0) + region(0x8000, 0x8000, MEM_UVA + 0x8000, 0)) +
    msg(34),
    "fuzzdev-config": b"\x01" + handshake(FEAT) + msg(24, struct.pack("<III", 0, 32, 0) +
    bytes(32)) + msg(25, struct.pack("<III", 4, 4, 0) + b"\x01\x02\x03\x04") +
    msg(24, struct.pack("<III", 30, 8, 0) + bytes(8)),
    "fuzzdev-two-rings": b"\x01" + handshake(FEAT) + mem_table + ring_setup(0, MEM_UVA) +
    ring_setup(1, MEM_UVA + 0x2000) + msg(11, state(1, 0)) + msg(4),
    "bad-sizes": b"\x00" + msg(1, u64(0)) + msg(2, b"\x00" * 4) + msg(99) +
    msg(5, struct.pack("<II", 9, 0)),
}
# Ring contents ride in the memfd image: put them right after the messages.
for name, chains in {
    "rng-ring-chain": [(64, 2 | 1, 1), (64, 2, 0)],
    "rng-ring-loop": [(64, 2 | 1, 0)],
    "rng-ring-indirect": [(32, 4, 0), (64, 2, 0)],
}.items():
    seeds[name] = (b"\x00" + handshake(FEAT) + mem_table + ring_setup(0, MEM_UVA) +
                   ring_memory(chains))

out = sys.argv[1] if len(sys.argv) > 1 else "corpus/vhost_msg"
os.makedirs(out, exist_ok=True)
for name, data in seeds.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)
print(f"{len(seeds)} seeds in {out}")
