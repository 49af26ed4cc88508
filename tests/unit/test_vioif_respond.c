/*
 * vioif-respond.c: ARP and ICMP echo replies byte for byte, and every
 * frame it must ignore (other address, other operation, truncation,
 * fragments, bad checksums, a reply larger than the buffer).
 */
#include <string.h>

#include "guest/vioif-respond.h"
#include "tap.h"

static const struct vioif_responder me = {
	.mac = { 0x02, 0, 0, 0, 0, 0x01 }, .ip = { 10, 77, 0, 1 },
};
static const uint8_t peer_mac[6] = { 0x52, 0x54, 0, 0xaa, 0xbb, 0xcc };
static const uint8_t peer_ip[4] = { 10, 77, 0, 2 };

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static size_t arp_request(uint8_t *f, const uint8_t *target)
{
	memset(f, 0, 60);
	memset(f, 0xff, 6);
	memcpy(f + 6, peer_mac, 6);
	put16(f + 12, 0x0806);
	put16(f + 14, 1);
	put16(f + 16, 0x0800);
	f[18] = 6;
	f[19] = 4;
	put16(f + 20, 1);
	memcpy(f + 22, peer_mac, 6);
	memcpy(f + 28, peer_ip, 4);
	memcpy(f + 38, target, 4);
	return 42;
}

/* An echo request with PAYLOAD bytes of data; checksums right. */
static size_t echo_request(uint8_t *f, const uint8_t *dst, size_t payload)
{
	uint8_t *ip = f + 14, *ic = ip + 20;
	size_t total = 20 + 8 + payload;

	memset(f, 0, 14 + total);
	memcpy(f, me.mac, 6);
	memcpy(f + 6, peer_mac, 6);
	put16(f + 12, 0x0800);
	ip[0] = 0x45;
	put16(ip + 2, (uint16_t)total);
	put16(ip + 4, 0x1234);
	put16(ip + 6, 0x4000);  /* DF */
	ip[8] = 64;
	ip[9] = 1;
	memcpy(ip + 12, peer_ip, 4);
	memcpy(ip + 16, dst, 4);
	put16(ip + 10, vioif_inet_csum(ip, 20));
	ic[0] = 8;
	put16(ic + 4, 0x4242);  /* id */
	put16(ic + 6, 7);       /* sequence */
	for (size_t i = 0; i < payload; i++)
		ic[8 + i] = (uint8_t)i;
	put16(ic + 2, vioif_inet_csum(ic, total - 20));
	return 14 + total;
}

int main(void)
{
	uint8_t in[1600], out[1600];
	enum vioif_respond_kind kind;
	size_t n, len;
	const uint8_t other[4] = { 10, 77, 0, 9 };

	/* The RFC 1071 example: 0001 f203 f4f5 f6f7 sums to ddf2. */
	{
		const uint8_t v[] = { 0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7 };

		is(vioif_inet_csum(v, sizeof(v)), (uint16_t)~0xddf2, "inet checksum, RFC 1071 example");
	}

	len = arp_request(in, me.ip);
	n = vioif_respond(&me, in, len, out, sizeof(out), &kind);
	is(n, 60, "ARP request for us: a 60-byte reply");
	is(kind, VIOIF_RESPOND_ARP, "... said to be ARP");
	ok(!memcmp(out, peer_mac, 6) && !memcmp(out + 6, me.mac, 6) && out[12] == 8 &&
	   out[13] == 6, "... from us to the asker, ethertype ARP");
	ok(out[20] == 0 && out[21] == 2, "... operation reply");
	ok(!memcmp(out + 22, me.mac, 6) && !memcmp(out + 28, me.ip, 4), "... sender is us");
	ok(!memcmp(out + 32, peer_mac, 6) && !memcmp(out + 38, peer_ip, 4),
	   "... target is the asker");
	len = arp_request(in, other);
	is(vioif_respond(&me, in, len, out, sizeof(out), &kind), 0, "ARP for another address: none");
	is(kind, VIOIF_RESPOND_NONE, "... kind none");
	len = arp_request(in, me.ip);
	put16(in + 20, 2);
	is(vioif_respond(&me, in, len, out, sizeof(out), NULL), 0, "an ARP reply: none");
	len = arp_request(in, me.ip);
	is(vioif_respond(&me, in, 41, out, sizeof(out), NULL), 0, "ARP cut short: none");

	len = echo_request(in, me.ip, 56);
	n = vioif_respond(&me, in, len, out, sizeof(out), &kind);
	is(n, len, "echo request (56 bytes of data): a reply as long");
	is(kind, VIOIF_RESPOND_ICMP, "... said to be ICMP");
	ok(!memcmp(out, peer_mac, 6) && !memcmp(out + 6, me.mac, 6), "... Ethernet: to the asker");
	ok(!memcmp(out + 26, me.ip, 4) && !memcmp(out + 30, peer_ip, 4), "... IP: from us to it");
	is(vioif_inet_csum(out + 14, 20), 0, "... IP checksum right");
	is(out[34], 0, "... type echo reply");
	is(vioif_inet_csum(out + 34, len - 34), 0, "... ICMP checksum right");
	ok(!memcmp(out + 38, in + 38, len - 38), "... id, sequence and data kept");
	len = echo_request(in, me.ip, 0);
	is(vioif_respond(&me, in, len, out, sizeof(out), NULL), 60, "short echo: reply padded to 60");
	len = echo_request(in, other, 56);
	is(vioif_respond(&me, in, len, out, sizeof(out), NULL), 0, "echo to another address: none");
	len = echo_request(in, me.ip, 56);
	in[34] = 0;
	is(vioif_respond(&me, in, len, out, sizeof(out), NULL), 0, "an echo reply: none");
	len = echo_request(in, me.ip, 56);
	in[40] ^= 1;
	is(vioif_respond(&me, in, len, out, sizeof(out), NULL), 0, "bad ICMP checksum: none");
	len = echo_request(in, me.ip, 56);
	in[22] ^= 1;
	is(vioif_respond(&me, in, len, out, sizeof(out), NULL), 0, "bad IP checksum: none");
	len = echo_request(in, me.ip, 56);
	is(vioif_respond(&me, in, len - 1, out, sizeof(out), NULL), 0,
	   "IP length past the frame: none");
	len = echo_request(in, me.ip, 56);
	put16(in + 20, 0x2000); /* MF */
	put16(in + 24, 0);
	put16(in + 24, vioif_inet_csum(in + 14, 20));
	is(vioif_respond(&me, in, len, out, sizeof(out), NULL), 0, "a fragment: none");
	len = echo_request(in, me.ip, 1000);
	is(vioif_respond(&me, in, len, out, 500, NULL), 0, "reply larger than the buffer: none");
	is(vioif_respond(&me, in, 13, out, sizeof(out), NULL), 0, "13 bytes: none");
	return tap_done();
}
