#!/usr/bin/env python3
"""Writes the seed corpus for tests/fuzz/fuzz_net.c.

Usage: gen_net_seeds.py [OUTDIR]   (default: corpus/net next to this file)

The input format is described at the top of fuzz_net.c. Seeds are
deterministic; files not named seed-* are left alone.
"""
import os
import struct
import sys

A, B = 0, 1
RINGS = {256: 0, 8: 1, 16: 2, 32: 3, 64: 4, 128: 5}
MTUS = {1500: 0, 68: 1, 9000: 2, 65535: 3}
PEER, BCAST, MCAST, UNKNOWN, OWN, RAW = range(6)
NEEDS_CSUM, DATA_VALID = 1, 2
GSO_NONE, GSO_TCPV4, GSO_UDP, GSO_TCPV6, GSO_ECN = 0, 1, 3, 4, 0x80
# Transmit layouts (record byte 7).
HDR_OWN, CUT1, CUT2, CUT3, WRITABLE, ZERO, HDR_SPLIT, MANY, HDR_SHORT = (
    0x01, 0x02, 0x04, 0x06, 0x08, 0x10, 0x20, 0x40, 0x80)


def glob(pairs2=False, workers2=False, b_no_rx=False, a_off=False, b_off=False, ring=256):
    return (pairs2 | workers2 << 1 | b_no_rx << 2 | a_off << 3 | b_off << 4
            | RINGS[ring] << 5)


def feat(mrg=False, v1=True, csum=False, gcsum=False, htso4=False, htso6=False,
         gtso4=False, gtso6=False, mtu=1500, event_idx=False, fmtu=False):
    """A side's two feature bytes."""
    f1 = (mrg | v1 << 1 | csum << 2 | gcsum << 3 | htso4 << 4 | htso6 << 5
          | gtso4 << 6 | gtso6 << 7)
    return bytes([f1, MTUS[mtu] | event_idx << 2 | fmtu << 3])


COPIES = {1: 0, 2: 2, 8: 3, 64: 4, 256: 5, 600: 6, 1100: 7}


# TCP headers for segmentation (record byte 3 bits 4-5) and their shape
# (byte 15, see tcp_template in fuzz_net.c).
NO_TCP, TCP4, TCP6, TCP4_VLAN = range(4)
IP_OPTS1, TCP_OPTS3, FIN, CWR, FRAGMENT = 0x01, 0x0c, 0x20, 0x40, 0x80


def tx(side, length, dst=PEER, flags=0, gso=GSO_NONE, layout=0, csum_start=0,
       csum_offset=0, gso_size=0, hdr_len=0, extra=0, spoof=False, pair=0, run=True,
       copies=1, tcp=NO_TCP, shape=0):
    op = 0 | side << 2 | pair << 3 | run << 4 | COPIES[copies] << 5
    return struct.pack("<BBBBHBBHHHBB", op, flags, gso, dst | spoof << 3 | tcp << 4,
                       length & 0xffff, (length >> 16) & 1 | extra << 1, layout,
                       csum_start, csum_offset, gso_size, hdr_len, shape)


def rx(side, count, size, big=False, ndesc=1, readable=False, zero=False, step=0, pair=0):
    op = 1 | side << 2 | pair << 3 | (count - 1) << 4
    b3 = big | (ndesc - 1) << 1 | readable << 3 | zero << 4 | (step > 0) << 5
    return struct.pack("<BHBB", op, size, b3, step).ljust(16, b"\0")


def rarp(side, mac):
    return bytes([2 | side << 2, 1]) + bytes(mac) + bytes(8)


def set_mtu(side, mtu):
    return struct.pack("<BBH", 2 | side << 2, 0, mtu).ljust(16, b"\0")


def run():
    return bytes([3]).ljust(16, b"\0")


def tcp4(side, length, csum_start=34, **kw):
    """A TCP frame whose checksum field lies at csum_start + 16 (IPv4: 34)."""
    return tx(side, length, flags=NEEDS_CSUM, csum_start=csum_start, csum_offset=16, **kw)


def seed(g, fa, fb, recs):
    return bytes([g]) + fa + fb + b"".join(recs)


SEEDS = {
    "unicast-both-ways": seed(glob(), feat(mrg=True), feat(mrg=True), [
        rx(A, 8, 1526), rx(B, 8, 1526),
        tx(A, 60), tx(A, 1514), tx(B, 342), tx(B, 1518, dst=BCAST), run()]),
    "no-mrg-tiny-buffers": seed(glob(), feat(), feat(), [
        rx(B, 2, 64), tx(A, 1000), tx(A, 60), rx(B, 4, 1526), tx(A, 1514)]),
    "mrg-small-buffers": seed(glob(), feat(mrg=True), feat(mrg=True), [
        rx(B, 16, 128), rx(B, 16, 96, ndesc=2), tx(A, 1514), tx(A, 3000, dst=BCAST),
        rx(B, 4, 8)]),
    "csum-finish-and-pass": seed(glob(), feat(csum=True, gcsum=True), feat(mrg=True, csum=True), [
        rx(A, 8, 2048), rx(B, 8, 2048), tcp4(A, 200),
        tx(A, 300, flags=NEEDS_CSUM, csum_start=34, csum_offset=6), tcp4(A, 1514, dst=BCAST),
        tcp4(B, 200), tx(B, 200, flags=NEEDS_CSUM | DATA_VALID, csum_start=34,
                         csum_offset=16)]),
    "bad-headers": seed(glob(), feat(csum=True), feat(mrg=True), [
        rx(B, 8, 2048), tx(A, 100, flags=0x80), tx(A, 100, flags=NEEDS_CSUM,
                                                   csum_start=90, csum_offset=9),
        tx(A, 100, flags=NEEDS_CSUM, csum_start=0xffff, csum_offset=0xffff),
        tx(B, 100, flags=NEEDS_CSUM, csum_start=34, csum_offset=16), tx(A, 60)]),
    "gso-valid": seed(glob(), feat(csum=True, htso4=True, htso6=True),
                      feat(mrg=True, gcsum=True, gtso4=True), [
        rx(B, 16, 4096), tcp4(A, 20000, gso=GSO_TCPV4, gso_size=1448, hdr_len=54),
        tcp4(A, 40000, gso=GSO_TCPV6, gso_size=1440, csum_start=54),
        tcp4(A, 65553, gso=GSO_TCPV4, gso_size=1448), rx(B, 16, 4096), run()]),
    "gso-segmented": seed(glob(), feat(csum=True, htso4=True, htso6=True),
                          feat(mrg=True, gcsum=True), [
        rx(B, 16, 4096), tcp4(A, 20000, gso=GSO_TCPV4, gso_size=1448, tcp=TCP4),
        tcp4(A, 9000, gso=GSO_TCPV6, gso_size=1440, csum_start=54, tcp=TCP6, shape=FIN | CWR),
        tcp4(A, 5000, gso=GSO_TCPV4, gso_size=1000, csum_start=38, tcp=TCP4_VLAN,
             shape=IP_OPTS1 | TCP_OPTS3),
        tcp4(A, 3000, gso=GSO_TCPV4, gso_size=1, tcp=TCP4),
        tcp4(A, 3000, gso=GSO_TCPV4, gso_size=1448, tcp=TCP4, shape=FRAGMENT),
        tcp4(A, 60, gso=GSO_TCPV4, gso_size=1448, tcp=TCP4), rx(B, 16, 4096), run()]),
    "gso-segments-over-mtu": seed(glob(), feat(csum=True, htso4=True, mtu=9000),
                                  feat(fmtu=True), [
        rx(B, 16, 1600), tcp4(A, 20000, gso=GSO_TCPV4, gso_size=8000, tcp=TCP4),
        tcp4(A, 4000, gso=GSO_TCPV4, gso_size=1000, tcp=TCP4), rx(B, 4, 1600)]),
    "gso-invalid": seed(glob(), feat(csum=True, htso4=True), feat(mrg=True, gcsum=True), [
        rx(B, 16, 4096), tcp4(A, 3000, gso=GSO_TCPV6, gso_size=1448),
        tcp4(A, 3000, gso=GSO_TCPV4, gso_size=0), tcp4(A, 3000, gso=GSO_UDP, gso_size=1448),
        tcp4(A, 3000, gso=GSO_TCPV4 | GSO_ECN, gso_size=1448),
        tx(A, 3000, gso=GSO_TCPV4, gso_size=1448), tcp4(A, 65554, gso=GSO_TCPV4, gso_size=1448),
        tcp4(A, 3000, gso=GSO_TCPV4, gso_size=1448)]),
    "runts-and-oversize": seed(glob(), feat(mrg=True), feat(mrg=True, mtu=68), [
        rx(A, 8, 2048), rx(B, 8, 2048), tx(A, 0), tx(A, 13), tx(A, 14), tx(A, 1518),
        tx(A, 1519), tx(B, 86), tx(B, 87), tx(A, 100000 & 0x1ffff)]),
    "layouts": seed(glob(), feat(), feat(mrg=True), [
        rx(B, 16, 2048), tx(A, 200, layout=HDR_OWN), tx(A, 200, layout=HDR_SPLIT | CUT3),
        tx(A, 200, layout=ZERO | CUT1), tx(A, 200, layout=WRITABLE, extra=40),
        tx(A, 200, layout=HDR_SHORT, extra=7), tx(A, 3000, layout=HDR_OWN | CUT2),
        tx(A, 60)]),
    "many-descriptors": seed(glob(), feat(), feat(), [
        rx(B, 4, 2048), tx(A, 1000, layout=MANY), tx(A, 60)]),
    "mtu-mismatch": seed(glob(), feat(mrg=True, mtu=9000), feat(mrg=True, fmtu=True), [
        rx(B, 16, 4096), tx(A, 9018), tx(A, 1518), tx(A, 1519), rx(A, 4, 9100),
        tx(B, 1518)]),
    "two-pairs-steered": seed(glob(pairs2=True, workers2=True), feat(mrg=True),
                              feat(mrg=True), [
        rx(A, 4, 2048), rx(B, 4, 2048), rx(A, 4, 2048, pair=1), tx(B, 100, tcp=TCP4, pair=1),
        tx(A, 100, tcp=TCP4), tx(A, 60, pair=1), tx(A, 200, tcp=TCP4, copies=8),
        tx(B, 300, pair=1)]),
    "small-ring": seed(glob(ring=8), feat(mrg=True), feat(mrg=True), [
        rx(B, 8, 64), tx(A, 1514), tx(A, 60), run()]),
    "no-receive-ring": seed(glob(b_no_rx=True), feat(), feat(), [
        tx(A, 60), tx(A, 1514, dst=BCAST), tx(B, 60), rx(A, 4, 2048), run()]),
    "control-legacy": seed(glob(), feat(v1=False), feat(v1=False, mrg=True), [
        rx(A, 4, 2048), rx(B, 4, 2048), rarp(A, [0x52, 0x54, 0, 0, 0, 0x0a]), run(),
        set_mtu(B, 68), tx(B, 100), set_mtu(B, 9000), tx(B, 9000), set_mtu(A, 5),
        tx(A, 1514)]),
    "rx-layouts-event-idx": seed(glob(), feat(mrg=True, event_idx=True),
                                 feat(event_idx=True), [
        rx(B, 4, 1600, ndesc=3, readable=True, zero=True), rx(A, 4, 40, ndesc=4, step=30),
        tx(A, 1514), tx(B, 500), tx(B, 200)]),
    "flood-port-full": seed(glob(), feat(), feat(mrg=True), [
        rx(B, 4, 2048), tx(A, 60, copies=1100), tx(A, 1514, dst=BCAST, copies=64),
        tx(B, 60, copies=8), rx(A, 2, 2048)]),
    "destinations": seed(glob(), feat(mrg=True), feat(mrg=True), [
        rx(A, 8, 2048), rx(B, 8, 2048), tx(A, 60, dst=MCAST), tx(A, 60, dst=UNKNOWN),
        tx(A, 60, dst=OWN), tx(B, 60, dst=RAW, csum_start=0x5452, csum_offset=0),
        tx(B, 60, spoof=True, csum_start=0x5452, csum_offset=0x0a00),
        tx(A, 60), tx(B, 60)]),
}


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "corpus", "net")
    os.makedirs(out, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(out, "seed-" + name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
