/*
 * Software TCP segmentation (virtio 1.2, 5.1.6.2: GSO_TCPV4 / GSO_TCPV6)
 * for a receiver that did not accept the sender's segmentation offload:
 * the frame is cut into gso_size segments, each with its own IP length
 * (and IPv4 identification and header checksum), TCP sequence number and
 * flags (FIN and PSH on the last segment only, CWR on the first) and a
 * complete TCP checksum, as the kernel's tcp_gso_segment would.
 *
 * Contract: only Ethernet (with at most one VLAN tag) carrying IPv4
 * without fragments or IPv6 without extension headers, and TCP, is
 * segmented; anything else, or headers that do not fit the frame, is
 * refused (-EINVAL) and the caller drops the frame.
 */
#include "devices/net.h"

#include <endian.h>
#include <errno.h>
#include <string.h>

static uint32_t sum16(const uint8_t *p, size_t len, uint32_t sum)
{
	size_t i = 0;

	for (; i + 1 < len; i += 2)
		sum += (uint32_t)p[i] << 8 | p[i + 1];
	if (i < len)
		sum += (uint32_t)p[i] << 8;
	return sum;
}

static uint16_t fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

int net_gso_segment(const struct net_frame *f, uint8_t *seg,
		    int (*emit)(void *opaque, struct net_frame *s), void *opaque)
{
	const uint8_t *d = f->data;
	uint32_t len = f->len, l3 = NET_ETH_HLEN, iphl, tcphl, hdrs, mss, off;
	uint16_t eth = (uint16_t)(d[12] << 8 | d[13]);
	bool v4;
	uint32_t seq;
	uint16_t ipid = 0;
	unsigned int n = 0;

	if (eth == 0x8100 && len >= NET_ETH_HLEN + NET_VLAN_HLEN) {
		eth = (uint16_t)(d[16] << 8 | d[17]);
		l3 += NET_VLAN_HLEN;
	}
	v4 = eth == 0x0800;
	if (!v4 && eth != 0x86dd)
		return -EINVAL;
	if (v4) {
		if (len < l3 + 20 || (d[l3] >> 4) != 4 || d[l3 + 9] != 6 ||
		    (d[l3 + 6] & 0x3f) || d[l3 + 7])   /* MF or an offset */
			return -EINVAL;
		iphl = (d[l3] & 0x0fu) * 4u;
		ipid = (uint16_t)(d[l3 + 4] << 8 | d[l3 + 5]);
	} else {
		if (len < l3 + 40 || (d[l3] >> 4) != 6 || d[l3 + 6] != 6)
			return -EINVAL;
		iphl = 40;
	}
	if (iphl < 20 || len < l3 + iphl + 20)
		return -EINVAL;
	tcphl = (d[l3 + iphl + 12] >> 4) * 4u;
	hdrs = l3 + iphl + tcphl;
	mss = le16toh(f->hdr.gso_size);
	/* A hostile sender's tiny segment size would make thousands of
	 * frames of one: below TCP's minimum MSS (RFC 9293: 88 on Linux,
	 * 64 allowed here) is refused. */
	if (tcphl < 20 || hdrs > len || mss < 64)
		return -EINVAL;
	if (len == hdrs)
		mss = 1; /* a bare header: one segment */
	seq = (uint32_t)d[l3 + iphl + 4] << 24 | (uint32_t)d[l3 + iphl + 5] << 16 |
	      (uint32_t)d[l3 + iphl + 6] << 8 | d[l3 + iphl + 7];
	for (off = hdrs; off < len || (off == hdrs && len == hdrs); off += mss, n++) {
		uint32_t plen = len - off < mss ? len - off : mss;
		bool last = off + plen >= len;
		uint8_t *ip = seg + l3, *tcp = seg + l3 + iphl;
		struct net_frame s = { .len = hdrs + plen, .data = seg };
		uint32_t sum, tl = tcphl + plen, q = seq + (off - hdrs);
		int rc;

		memcpy(seg, d, hdrs);
		memcpy(seg + hdrs, d + off, plen);
		if (v4) {
			put16(ip + 2, (uint16_t)(iphl + tl));
			put16(ip + 4, (uint16_t)(ipid + n));
			put16(ip + 10, 0);
			put16(ip + 10, fold(sum16(ip, iphl, 0)));
			sum = sum16(ip + 12, 8, 0) + 6 + tl;
		} else {
			put16(ip + 4, (uint16_t)tl);
			sum = sum16(ip + 8, 32, 0) + 6 + tl;
		}
		tcp[4] = (uint8_t)(q >> 24), tcp[5] = (uint8_t)(q >> 16);
		tcp[6] = (uint8_t)(q >> 8), tcp[7] = (uint8_t)q;
		if (!last)
			tcp[13] &= (uint8_t)~0x09;   /* FIN, PSH */
		if (n)
			tcp[13] &= (uint8_t)~0x80;   /* CWR */
		put16(tcp + 16, 0);
		put16(tcp + 16, fold(sum16(tcp, tl, sum)));
		s.hdr.flags = VIRTIO_NET_HDR_F_DATA_VALID;
		rc = emit(opaque, &s);
		if (rc < 0)
			return n ? 0 : rc;
		if (len == hdrs)
			break;
	}
	return 0;
}
