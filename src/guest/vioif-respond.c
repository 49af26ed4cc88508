#include "vioif-respond.h"

#include <string.h>

#define ETH_HLEN 14
#define ETH_MIN 60
#define ARP_LEN 28

static uint16_t be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

uint16_t vioif_inet_csum(const uint8_t *p, size_t len)
{
	uint32_t sum = 0;

	for (; len > 1; p += 2, len -= 2)
		sum += be16(p);
	if (len)
		sum += (uint32_t)p[0] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

static size_t pad(uint8_t *out, size_t n)
{
	if (n < ETH_MIN) {
		memset(out + n, 0, ETH_MIN - n);
		n = ETH_MIN;
	}
	return n;
}

/* RFC 826: Ethernet (1), IPv4 (0x0800), 6/4-byte addresses, request (1). */
static size_t arp(const struct vioif_responder *r, const uint8_t *in, size_t len, uint8_t *out)
{
	const uint8_t *a = in + ETH_HLEN;
	uint8_t *o = out + ETH_HLEN;

	if (len < ETH_HLEN + ARP_LEN || be16(a) != 1 || be16(a + 2) != 0x0800 || a[4] != 6 ||
	    a[5] != 4 || be16(a + 6) != 1 || memcmp(a + 24, r->ip, 4))
		return 0;
	memcpy(out, in + 6, 6);
	memcpy(out + 6, r->mac, 6);
	put16(out + 12, 0x0806);
	memcpy(o, a, 6);                /* htype, ptype, hlen, plen */
	put16(o + 6, 2);                /* reply */
	memcpy(o + 8, r->mac, 6);
	memcpy(o + 14, r->ip, 4);
	memcpy(o + 18, a + 8, 10);      /* the asker's hardware and IP address */
	return pad(out, ETH_HLEN + ARP_LEN);
}

static size_t icmp(const struct vioif_responder *r, const uint8_t *in, size_t len, uint8_t *out,
		   size_t cap)
{
	const uint8_t *ip = in + ETH_HLEN;
	size_t avail = len - ETH_HLEN, ihl, total;
	uint8_t *o = out + ETH_HLEN;

	if (avail < 20 || ip[0] >> 4 != 4)
		return 0;
	ihl = (size_t)(ip[0] & 0xf) * 4;
	total = be16(ip + 2);
	/* Header and echo header inside the frame; no fragments (MF or an
	 * offset); protocol ICMP; to us; checksums right. */
	if (ihl < 20 || total < ihl + 8 || total > avail || (be16(ip + 6) & 0x3fff) ||
	    ip[9] != 1 || memcmp(ip + 16, r->ip, 4) || vioif_inet_csum(ip, ihl) != 0 ||
	    ip[ihl] != 8 || ip[ihl + 1] != 0 || vioif_inet_csum(ip + ihl, total - ihl) != 0)
		return 0;
	if (ETH_HLEN + total > cap)
		return 0;
	memcpy(out, in + 6, 6);
	memcpy(out + 6, r->mac, 6);
	put16(out + 12, 0x0800);
	memcpy(o, ip, total);
	memcpy(o + 12, r->ip, 4);       /* source: us */
	memcpy(o + 16, ip + 12, 4);     /* destination: the asker */
	o[8] = 64;                      /* TTL */
	put16(o + 10, 0);
	put16(o + 10, vioif_inet_csum(o, ihl));
	o[ihl] = 0;                     /* echo reply, same id, sequence, data */
	put16(o + ihl + 2, 0);
	put16(o + ihl + 2, vioif_inet_csum(o + ihl, total - ihl));
	return pad(out, ETH_HLEN + total);
}

size_t vioif_respond(const struct vioif_responder *r, const uint8_t *in, size_t len,
		     uint8_t *out, size_t cap, enum vioif_respond_kind *kind)
{
	size_t n = 0;
	enum vioif_respond_kind k = VIOIF_RESPOND_NONE;

	if (kind)
		*kind = VIOIF_RESPOND_NONE;
	if (len < ETH_HLEN || cap < ETH_MIN)
		return 0;
	switch (be16(in + 12)) {
	case 0x0806:
		n = arp(r, in, len, out);
		k = VIOIF_RESPOND_ARP;
		break;
	case 0x0800:
		n = icmp(r, in, len, out, cap);
		k = VIOIF_RESPOND_ICMP;
		break;
	}
	if (n && kind)
		*kind = k;
	return n;
}
