/*
 * Software TCP segmentation (src/devices/net-gso.c): segment sizes,
 * sequence numbers, flags, IP lengths and identification, and that every
 * IPv4 header and TCP checksum verifies; frames it must refuse.
 */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "devices/net.h"
#include "tap.h"

struct seen {
	unsigned int n;
	uint32_t len[64];
	uint8_t frames[64][2048];
	int refuse_at;            /* emit fails with -ENOBUFS at this index */
};

static int emit(void *opaque, struct net_frame *s)
{
	struct seen *c = opaque;

	if ((int)c->n == c->refuse_at || c->n == 64 || s->len > 2048)
		return -ENOBUFS;
	c->len[c->n] = s->len;
	memcpy(c->frames[c->n], s->data, s->len);
	c->n++;
	return 0;
}

static uint32_t sum16(const uint8_t *p, size_t len, uint32_t sum)
{
	for (size_t i = 0; i < len; i += 2)
		sum += (uint32_t)p[i] << 8 | (i + 1 < len ? p[i + 1] : 0);
	return sum;
}

static uint16_t folded(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}

/* Ethernet + IPv4 (or IPv6) + TCP (20 bytes) + payload of plen bytes. */
static size_t build(uint8_t *f, bool v6, size_t plen, uint8_t tcp_flags)
{
	size_t l3 = 14, iphl = v6 ? 40 : 20, l4 = l3 + iphl;

	memset(f, 0, l4 + 20);
	memcpy(f, "\x52\x54\x00\x00\x00\x02\x52\x54\x00\x00\x00\x01", 12);
	f[12] = v6 ? 0x86 : 0x08, f[13] = v6 ? 0xdd : 0x00;
	if (v6) {
		f[l3] = 0x60;
		f[l3 + 6] = 6, f[l3 + 7] = 64;
		f[l3 + 23] = 1, f[l3 + 39] = 2;
	} else {
		f[l3] = 0x45;
		f[l3 + 4] = 0x12, f[l3 + 5] = 0x34;
		f[l3 + 8] = 64, f[l3 + 9] = 6;
		memcpy(f + l3 + 12, "\x0a\x00\x00\x01\x0a\x00\x00\x02", 8);
	}
	f[l4] = 0x30, f[l4 + 1] = 0x39, f[l4 + 3] = 80;
	f[l4 + 4] = 0xff, f[l4 + 5] = 0xff, f[l4 + 6] = 0xff, f[l4 + 7] = 0x00; /* seq wraps */
	f[l4 + 12] = 5 << 4;
	f[l4 + 13] = tcp_flags;
	for (size_t i = 0; i < plen; i++)
		f[l4 + 20 + i] = (uint8_t)(i * 7 + 3);
	return l4 + 20 + plen;
}

static void check(bool v6)
{
	static uint8_t in[NET_GSO_FRAME_MAX], seg[NET_GSO_FRAME_MAX];
	static struct seen c;
	size_t l3 = 14, iphl = v6 ? 40 : 20, l4 = l3 + iphl, plen = 3500, mss = 1000;
	struct net_frame f = { .len = (uint32_t)build(in, v6, plen, 0x19 /* FIN PSH ACK */),
			       .data = in };
	bool csums = true, payload = true, flags = true, seqs = true, lens = true;
	uint32_t off = 0;

	memset(&c, 0, sizeof(c));
	c.refuse_at = -1;
	f.hdr.gso_type = v6 ? VIRTIO_NET_HDR_GSO_TCPV6 : VIRTIO_NET_HDR_GSO_TCPV4;
	f.hdr.gso_size = htole16((uint16_t)mss);
	is(net_gso_segment(&f, seg, emit, &c), 0, v6 ? "v6: segmented" : "v4: segmented");
	is(c.n, 4, "3500 bytes at MSS 1000 make 4 segments");
	for (unsigned int i = 0; i < c.n; i++) {
		const uint8_t *s = c.frames[i], *tcp = s + l4;
		uint32_t want = i < 3 ? 1000 : 500, seq, sum;

		lens &= c.len[i] == l4 + 20 + want;
		payload &= !memcmp(s + l4 + 20, in + l4 + 20 + off, want);
		seq = (uint32_t)tcp[4] << 24 | (uint32_t)tcp[5] << 16 | (uint32_t)tcp[6] << 8 | tcp[7];
		seqs &= seq == 0xffffff00u + off;
		flags &= (tcp[13] & 0x09) == (i == c.n - 1 ? 0x09 : 0) && (tcp[13] & 0x10);
		if (v6) {
			lens &= (s[l3 + 4] << 8 | s[l3 + 5]) == (int)(20 + want);
			sum = sum16(s + l3 + 8, 32, 0) + 6 + 20 + want;
		} else {
			lens &= (s[l3 + 2] << 8 | s[l3 + 3]) == (int)(40 + want);
			csums &= folded(sum16(s + l3, 20, 0)) == 0xffff;
			csums &= (s[l3 + 4] << 8 | s[l3 + 5]) == 0x1234 + (int)i;
			sum = sum16(s + l3 + 12, 8, 0) + 6 + 20 + want;
		}
		csums &= folded(sum16(tcp, 20 + want, sum)) == 0xffff;
		off += want;
	}
	ok(lens, "segment, IP and TCP lengths");
	ok(payload, "payloads in order, unchanged");
	ok(seqs, "sequence numbers advance by the payload (and wrap)");
	ok(flags, "FIN and PSH on the last segment only, ACK kept");
	ok(csums, v6 ? "TCP checksums verify" : "IPv4 header and TCP checksums verify, IDs count up");
	ok(c.frames[0][l4 + 13] == 0x10, "first segment carries only ACK");

	memset(&c, 0, sizeof(c));
	c.refuse_at = 0;
	is(net_gso_segment(&f, seg, emit, &c), -ENOBUFS, "no room for the first segment: -ENOBUFS");
	memset(&c, 0, sizeof(c));
	c.refuse_at = 2;
	is(net_gso_segment(&f, seg, emit, &c), 0, "no room later: the rest is dropped, 0");
	is(c.n, 2, "two segments went out");
}

static void refusals(void)
{
	static uint8_t in[256], seg[NET_GSO_FRAME_MAX];
	static struct seen c;
	struct net_frame f = { .len = (uint32_t)build(in, false, 100, 0x10), .data = in };

	c.refuse_at = -1;
	f.hdr.gso_type = VIRTIO_NET_HDR_GSO_TCPV4;
	f.hdr.gso_size = htole16(10);
	is(net_gso_segment(&f, seg, emit, &c), -EINVAL, "a segment size below 64 is refused");
	f.hdr.gso_size = htole16(1000);
	in[14 + 9] = 17;
	is(net_gso_segment(&f, seg, emit, &c), -EINVAL, "UDP is not segmented");
	in[14 + 9] = 6;
	in[14 + 6] = 0x20;
	is(net_gso_segment(&f, seg, emit, &c), -EINVAL, "an IPv4 fragment is refused");
	in[14 + 6] = 0;
	in[12] = 0x08, in[13] = 0x06;
	is(net_gso_segment(&f, seg, emit, &c), -EINVAL, "ARP is refused");
	in[12] = 0x08, in[13] = 0x00;
	in[34 + 12] = 15 << 4;
	f.len = 60;
	is(net_gso_segment(&f, seg, emit, &c), -EINVAL, "a TCP header past the frame is refused");
	is(c.n, 0, "nothing emitted for refused frames");
}

int main(void)
{
	check(false);
	check(true);
	refusals();
	return tap_done();
}
