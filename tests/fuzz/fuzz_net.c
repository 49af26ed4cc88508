/*
 * libFuzzer target for the virtio-net handlers (src/devices/net*.c): two
 * inline net devices, A and B, on one built-in switch, each with its own
 * fake guest memory and driver-side rings (virtio/vq.h's viod_vqd, which
 * checks every used id and length the device returns). Frames A or B
 * transmit go through the switch into the other's receive ring.
 *
 * Input (missing bytes read as zero):
 *   0      global: bit0 two queue pairs, bit1 two workers (with two
 *          pairs), bit2 B's receive rings are never set up, bit3
 *          offloads=off on A, bit4 on B, bits 5-7 ring size (256, 8, 16,
 *          32, 64, 128, 256, 256)
 *   1, 2   A's features: bit0 MRG_RXBUF, bit1 VERSION_1, bit2 CSUM,
 *          bit3 GUEST_CSUM, bit4 HOST_TSO4, bit5 HOST_TSO6, bit6
 *          GUEST_TSO4, bit7 GUEST_TSO6; then bits 0-1 MTU (1500, 68,
 *          9000, 65535), bit2 EVENT_IDX, bit3 MTU (the feature)
 *   3, 4   the same for B
 *   then up to MAX_REC records of REC bytes:
 *   0      bits 0-1 what: 0 transmit, 1 post receive buffers, 2 a
 *          control message, 3 run the queues; bit2 on B (else A);
 *          bit3 queue pair 1; bit4 (transmit) run the queues after it,
 *          bits 5-7 (transmit) copies: 1, 1, 2, 8, 64, 256, 600, 1100
 *          (more than a switch port's queue holds); bits 4-7 (receive)
 *          chains - 1
 *   transmit:
 *   1, 2   header flags, gso_type (raw)
 *   3      bits 0-2 destination: the peer's MAC, broadcast, multicast,
 *          an unknown unicast, our own MAC, bytes 8..13; bit3 source
 *          MAC from bytes 8..13 (else our own); bits 4-5 TCP headers
 *          for segmentation: IPv4, IPv6, IPv4 behind a VLAN tag (byte
 *          15 shapes them, see tcp_template)
 *   4, 5   frame length, bit 16 in byte 6 bit0
 *   6      bits 1-7: bytes of header for a truncated one, bytes of a
 *          writable descriptor
 *   7      layout: bit0 header in a descriptor of its own; bits 1-2
 *          extra cuts in the frame; bit3 a device-writable descriptor
 *          after the frame; bit4 a zero-length descriptor; bit5 the
 *          header split in two; bit6 65 descriptors (past NET_MAX_IOV);
 *          bit7 only part of a header
 *   8..14  csum_start, csum_offset, gso_size (le16 each), hdr_len
 *   15     the TCP headers' shape, the payload's seed
 *   receive: 1, 2 bytes per chain; 3 bit0 65568 bytes instead, bits
 *          1-2 descriptors - 1, bit3 a readable descriptor first, bit4
 *          a zero-length writable descriptor, bit5 byte 4 added per
 *          chain
 *   control: 1 bit0 SEND_RARP with the MAC in bytes 2..7, else
 *          NET_SET_MTU with bytes 2..3
 *
 * Oracle: sanitizers; the driver side rejects any used id that is not
 * outstanding or a length above the writable bytes posted; a transmit
 * chain comes back with length 0; every header the receiver reads
 * carries only what it negotiated (no NEEDS_CSUM or DATA_VALID without
 * GUEST_CSUM, no GSO without GUEST_TSO4/6, num_buffers 1 without
 * MRG_RXBUF); frames are 14 bytes at least and within the receiver's
 * MTU when it negotiated one (virtio 1.2, 5.1.4.2); the used lengths add
 * up to the frames and headers counted; every transmitted chain is
 * counted once (packets or a drop of the transmit kinds); and, when each
 * frame went from its own MAC to another, after a final drain every
 * frame that entered the switch is delivered or counted as a drop, at
 * sender or receiver: once, or at least once if the receiver had it
 * segmented.
 */
#include <endian.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/virtio_config.h>
#include <linux/virtio_net.h>
#include <linux/virtio_ring.h>

#include "devices/net.h"
#include "fuzz-dev.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define GLOBAL 5u
#define MAX_REC 24u
#define REC 16u
#define GPA 0x100000ull
#define UVA 0x7f0000000000ull
#define MEM (2u << 20)
#define RING_STRIDE 0x3000u
#define OFF_DATA 0x10000u
#define OWN_MAX 2048u
#define FILLER (NET_GSO_FRAME_MAX + 64u)
#define DRAIN_LEN (NET_HDR_MAX + NET_GSO_FRAME_MAX + 16u)
#define MAX_CHAINS 1024u
#define MAX_SEG 8u
#define MANY 65u

static void fail(const char *why)
{
	fprintf(stderr, "fuzz_net: %s\n", why);
	__builtin_trap();
}

struct chain {
	unsigned int nseg;
	uint8_t *seg[MAX_SEG];   /* the writable segments */
	uint32_t seglen[MAX_SEG];
};

struct side {
	struct viod_dev *dev;
	struct net *n;
	struct fuzz_arena a;     /* guest memory, data from OFF_DATA */
	struct viod_mem vm;
	uint64_t feat;
	unsigned int hlen, pairs, num;
	uint8_t mac[6];
	int sv[2];
	struct viod_vqd q[4];
	bool up[4];
	uint8_t *filler, *drain[2];  /* a drain buffer per pair */
	uint64_t drain_gpa[2];
	struct chain chains[MAX_CHAINS];
	unsigned int nchains;
	unsigned int tx_posted, tx_used;
	uint64_t rx_used_len;
	bool rx_tiny;            /* a chain shorter than a header was posted */
	bool rx_lost;            /* a header we could not read: frames unknown */
	unsigned int frame_left; /* used entries the current frame still has */
	uint64_t frame_len;
	uint16_t frame_gso;
};

static struct side sides[2];
static uint8_t *mem[2];
/* Per receiver: a frame it may get as several segments was sent. */
static bool peer_segments[2];

static const uint8_t mac_a[6] = { 0x52, 0x54, 0x00, 0x00, 0x00, 0x0a };
static const uint8_t mac_b[6] = { 0x52, 0x54, 0x00, 0x00, 0x00, 0x0b };

static uint8_t *alloc(struct side *s, uint32_t len, uint64_t *gpa)
{
	return fuzz_alloc(&s->a, len, gpa);
}

static uint64_t gpa_of(const struct side *s, const uint8_t *p)
{
	return GPA + (uint64_t)(p - s->a.host);
}

static bool has(const struct side *s, unsigned int bit)
{
	return viod_has_feature(s->feat, bit);
}

/* ---- set-up ---- */

/*
 * The devices outlive an input (making a switch port zeroes its queue,
 * most of an input's cost): one pair for each set of options they are
 * made with (the global byte's bits 0, 1, 3 and 4), on a switch of its
 * own. Between inputs each front-end disconnects, which resets the device
 * and its port (queue flushed, addresses forgotten); each input zeroes
 * the counters and sets the MTU.
 */
static struct viod_dev *kept[32][2];
static struct viod_dev *cur[2];

static void devices_free(void)
{
	for (unsigned int k = 0; k < 32; k++) {
		for (int i = 0; i < 2; i++) {
			struct viod_dev *dev = kept[k][i];

			if (!dev)
				continue;
			viod_server_disconnect(dev, NULL);
			viod_workers_stop(dev);
			dev->ops->fini(dev);
			viod_dev_free(dev);
			kept[k][i] = NULL;
		}
	}
}

static struct viod_dev *device_new(const char *id, const uint8_t *mac, unsigned int key,
				   bool offloads_off)
{
	struct viod_dev *dev = viod_dev_new_inline(viod_device_lookup("net"), id);
	char opt[32];

	if (!dev)
		return NULL;
	snprintf(opt, sizeof(opt), "switch:fuzz%u", key);
	dev->ops->set_option(dev, "backend", opt, NULL);
	snprintf(opt, sizeof(opt), "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2],
		 mac[3], mac[4], mac[5]);
	dev->ops->set_option(dev, "mac", opt, NULL);
	dev->ops->set_option(dev, "queue-pairs", key & 1u ? "2" : "1", NULL);
	if (offloads_off)
		dev->ops->set_option(dev, "offloads", "off", NULL);
	if (dev->ops->init(dev, NULL) < 0) {
		dev->ops->fini(dev);
		viod_dev_free(dev);
		return NULL;
	}
	/* The workers were made before init chose the queue count. */
	viod_workers_stop(dev);
	dev->nworkers = (key & 3u) == 3u ? 2 : 1;
	if (viod_workers_start(dev) < 0) {
		dev->ops->fini(dev);
		viod_dev_free(dev);
		return NULL;
	}
	return dev;
}

static bool devices_get(uint8_t global)
{
	static bool registered;
	unsigned int key = global & (global & 1u ? 0x1bu : 0x19u);

	key = (key & 3u) | (key >> 1 & 0xcu);
	if (!registered)
		atexit(devices_free);
	registered = true;
	if (!kept[key][0])
		kept[key][0] = device_new("a", mac_a, key, global & 8u);
	if (!kept[key][1])
		kept[key][1] = device_new("b", mac_b, key, global & 16u);
	cur[0] = kept[key][0];
	cur[1] = kept[key][1];
	return cur[0] && cur[1];
}

/* A front-end connects to s's device and sets it up as f1, f2 ask. */
static bool side_init(struct side *s, int i, uint8_t global, uint8_t f1, uint8_t f2,
		      bool no_rx)
{
	static const unsigned int mtus[4] = { 1500, 68, 9000, 65535 };
	static const unsigned int nums[8] = { 256, 8, 16, 32, 64, 128, 256, 256 };
	static const unsigned int bits[8] = {
		VIRTIO_NET_F_MRG_RXBUF, VIRTIO_F_VERSION_1, VIRTIO_NET_F_CSUM,
		VIRTIO_NET_F_GUEST_CSUM, VIRTIO_NET_F_HOST_TSO4, VIRTIO_NET_F_HOST_TSO6,
		VIRTIO_NET_F_GUEST_TSO4, VIRTIO_NET_F_GUEST_TSO6,
	};
	static bool filled[2];
	uint64_t want = 0, pf = (1ull << VU_PF_RARP) | (1ull << VU_PF_NET_MTU), mtu;

	memcpy(s->mac, i ? mac_b : mac_a, 6);
	s->dev = cur[i];
	s->n = viod_dev_priv(s->dev);
	s->pairs = global & 1u ? 2 : 1;
	s->num = nums[global >> 5];
	s->sv[0] = s->sv[1] = -1;
	/* Guest memory is kept from one input to the next: every byte the
	 * device reads is written first (the rings by viod_vqd_init). */
	if (!mem[i] && !(mem[i] = malloc(MEM)))
		return false;
	s->a = (struct fuzz_arena){ .host = mem[i], .gpa = GPA, .start = OFF_DATA, .size = MEM };
	s->vm = (struct viod_mem){ .nregions = 1 };
	s->vm.regions[0] = (struct viod_mem_region){
		.gpa = GPA, .size = MEM, .uva = UVA, .host = s->a.host,
	};
	if (!(s->filler = alloc(s, FILLER, &(uint64_t){ 0 })) ||
	    !(s->drain[0] = alloc(s, DRAIN_LEN, &s->drain_gpa[0])) ||
	    !(s->drain[1] = alloc(s, DRAIN_LEN, &s->drain_gpa[1])))
		return false;
	if (!filled[i])
		for (uint32_t k = 0; k < FILLER; k++)
			s->filler[k] = (uint8_t)(k * 7u + 3u);
	filled[i] = true;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, s->sv) < 0)
		return false;
	viod_dev_attach(s->dev, s->sv[0]);
	s->sv[0] = -1; /* the device's now */
	viod_dev_set_host_memory(s->dev, &s->vm);
	memset(s->n->qs, 0, sizeof(s->n->qs));

	for (unsigned int k = 0; k < 8; k++)
		if (f1 & (1u << k))
			want |= 1ull << bits[k];
	if (f2 & 4u)
		want |= 1ull << VIRTIO_RING_F_EVENT_IDX;
	if (f2 & 8u)
		want |= 1ull << VIRTIO_NET_F_MTU;
	s->feat = want & viod_dev_offered_features(s->dev);
	s->hlen = has(s, VIRTIO_F_VERSION_1) || has(s, VIRTIO_NET_F_MRG_RXBUF) ? 12 : 10;
	fuzz_inject(s->dev, VU_SET_FEATURES, &s->feat, 8);
	fuzz_inject(s->dev, VU_SET_PROTOCOL_FEATURES, &pf, 8);
	mtu = mtus[f2 & 3u];
	fuzz_inject(s->dev, VU_NET_SET_MTU, &mtu, 8);
	for (unsigned int qi = 0; qi < 2 * s->pairs; qi++) {
		uint8_t *ring = s->a.host + qi * RING_STRIDE;
		struct vhost_vring_addr addr = {
			.index = qi,
			.desc_user_addr = UVA + qi * RING_STRIDE,
			.avail_user_addr = UVA + qi * RING_STRIDE + 0x1000,
			.used_user_addr = UVA + qi * RING_STRIDE + 0x2000,
		};
		uint64_t kick = VU_VRING_NOFD | qi;

		if (no_rx && !(qi & 1u))
			continue;
		if (viod_vqd_init(&s->q[qi], (uint16_t)s->num, ring, ring + 0x1000,
				  ring + 0x2000, has(s, VIRTIO_RING_F_EVENT_IDX)) < 0)
			return false;
		s->up[qi] = true;
		fuzz_inject(s->dev, VU_SET_VRING_NUM, &(struct vhost_vring_state){ qi, s->num }, 8);
		fuzz_inject(s->dev, VU_SET_VRING_ADDR, &addr, sizeof(addr));
		fuzz_inject(s->dev, VU_SET_VRING_BASE, &(struct vhost_vring_state){ qi, 0 }, 8);
		fuzz_inject(s->dev, VU_SET_VRING_KICK, &kick, 8);
	}
	return true;
}

/* The front-end goes (the device resets) and its rings are forgotten. */
static void side_fini(struct side *s)
{
	if (s->dev)
		viod_server_disconnect(s->dev, NULL);
	for (unsigned int qi = 0; qi < 4; qi++)
		if (s->up[qi])
			viod_vqd_fini(&s->q[qi]);
	if (s->sv[0] >= 0)
		close(s->sv[0]);
	if (s->sv[1] >= 0)
		close(s->sv[1]);
}

static bool ring_broken(const struct side *s, unsigned int qi)
{
	struct viod_vring *vr = s->dev ? s->dev->vrings[qi] : NULL;

	return vr && vr->vq.broken;
}

static uint64_t stat_sum(const struct side *s, bool tx, int drop)
{
	uint64_t v = 0;

	for (unsigned int qi = tx ? 1 : 0; qi < 2 * s->pairs; qi += 2) {
		const struct net_qstats *qs = &s->n->qs[qi];

		v += drop < 0 ? atomic_load(&qs->packets) : atomic_load(&qs->drops[drop]);
	}
	return v;
}

/* ---- the receiver's view ---- */

static void read_header(const struct chain *c, uint8_t *h, unsigned int hlen)
{
	unsigned int got = 0;

	for (unsigned int i = 0; i < c->nseg && got < hlen; i++) {
		uint32_t take = c->seglen[i] < hlen - got ? c->seglen[i] : hlen - got;

		memcpy(h + got, c->seg[i], take);
		got += take;
	}
}

static void frame_done(struct side *s)
{
	/* Within the receiver's MTU when it negotiated one (5.1.4.2). */
	uint64_t max = s->frame_gso == VIRTIO_NET_HDR_GSO_NONE &&
		       has(s, VIRTIO_NET_F_MTU) ?
		       (uint64_t)atomic_load(&s->n->mtu_now) + NET_ETH_HLEN + NET_VLAN_HLEN :
		       NET_GSO_FRAME_MAX;

	if (s->frame_len < s->hlen + NET_ETH_HLEN)
		fail("a frame shorter than an Ethernet header was delivered");
	if (s->frame_len - s->hlen > max)
		fail("a frame longer than the receiver's MTU allows was delivered");
}

/* One used receive chain: the start of a frame or a continuation of one. */
static void rx_used(struct side *s, const struct chain *c, uint32_t len)
{
	struct virtio_net_hdr_mrg_rxbuf h = { 0 };
	bool mrg = has(s, VIRTIO_NET_F_MRG_RXBUF), csum = has(s, VIRTIO_NET_F_GUEST_CSUM);
	uint16_t nb;

	s->rx_used_len += len;
	if (s->rx_lost)
		return;
	if (s->frame_left) {
		s->frame_len += len;
		if (--s->frame_left == 0)
			frame_done(s);
		return;
	}
	if (len < s->hlen) {
		/* Only a chain too short for a header gets one cut short. */
		if (!s->rx_tiny)
			fail("a used length below the header size");
		s->rx_lost = true;
		return;
	}
	read_header(c, (uint8_t *)&h, s->hlen);
	nb = s->hlen == 12 ? le16toh(h.num_buffers) : 1;
	if (h.hdr.flags & ~(VIRTIO_NET_HDR_F_NEEDS_CSUM | VIRTIO_NET_HDR_F_DATA_VALID))
		fail("delivered header flags beyond NEEDS_CSUM and DATA_VALID");
	if (h.hdr.flags && !csum)
		fail("NEEDS_CSUM or DATA_VALID delivered without GUEST_CSUM");
	switch (h.hdr.gso_type) {
	case VIRTIO_NET_HDR_GSO_NONE:
		break;
	case VIRTIO_NET_HDR_GSO_TCPV4:
		if (!csum || !has(s, VIRTIO_NET_F_GUEST_TSO4))
			fail("TCPv4 segmentation delivered without GUEST_TSO4");
		break;
	case VIRTIO_NET_HDR_GSO_TCPV6:
		if (!csum || !has(s, VIRTIO_NET_F_GUEST_TSO6))
			fail("TCPv6 segmentation delivered without GUEST_TSO6");
		break;
	default:
		fail("a segmentation type never offered was delivered");
	}
	if (nb == 0 || nb > (mrg ? 64u : 1u))
		fail("num_buffers out of range");
	s->frame_len = len;
	s->frame_gso = h.hdr.gso_type;
	s->frame_left = nb - 1u;
	if (!s->frame_left)
		frame_done(s);
}

static void harvest(struct side *s)
{
	for (unsigned int qi = 0; qi < 2 * s->pairs; qi++) {
		void *cookie;
		uint32_t len;
		int rc;

		if (!s->up[qi])
			continue;
		while ((rc = viod_vqd_get_used(&s->q[qi], &cookie, &len)) == 1) {
			if (qi & 1u) {
				if (len)
					fail("a transmit chain came back with a length");
				s->tx_used++;
			} else {
				rx_used(s, cookie, len);
			}
		}
		if (rc < 0)
			fail("the device returned a bogus used id or length");
	}
}

/* Serves both devices until neither makes progress; true if any did. */
static bool run(void)
{
	bool any = false;

	for (int pass = 0; pass < 64; pass++) {
		unsigned int p = viod_dev_run_queues(sides[0].dev) +
				 viod_dev_run_queues(sides[1].dev);

		harvest(&sides[0]);
		harvest(&sides[1]);
		if (!p)
			break;
		any = true;
	}
	return any;
}

/* ---- records ---- */

struct segs {
	unsigned int n;
	struct viod_vqd_buf b[MANY + 8];
};

static void seg_add(struct segs *sg, uint64_t gpa, uint32_t len, bool writable)
{
	if (sg->n < MANY + 8)
		sg->b[sg->n++] = (struct viod_vqd_buf){ .gpa = gpa, .len = len, .writable = writable };
}

/* [gpa, gpa + len) in pieces descriptors (fewer if len is shorter). */
static void seg_split(struct segs *sg, uint64_t gpa, uint32_t len, unsigned int pieces)
{
	uint32_t at = 0;

	if (pieces > len)
		pieces = len ? len : 1;
	for (unsigned int i = 0; i < pieces; i++) {
		uint32_t part = i + 1 < pieces ? len / pieces : len - at;

		seg_add(sg, gpa + at, part, false);
		at += part;
	}
}

static void mac_pick(const struct side *s, const struct side *peer, unsigned int how,
		     const uint8_t *raw, uint8_t out[6], bool *simple)
{
	static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
	static const uint8_t mcast[6] = { 0x01, 0x00, 0x5e, 0x00, 0x00, 0x01 };
	static const uint8_t other[6] = { 0x02, 0x00, 0x00, 0x00, 0x00, 0x99 };

	switch (how % 6u) {
	case 0: memcpy(out, peer->mac, 6); break;
	case 1: memcpy(out, bcast, 6); break;
	case 2: memcpy(out, mcast, 6); break;
	case 3: memcpy(out, other, 6); break;
	case 4: memcpy(out, s->mac, 6); *simple = false; break;
	default: memcpy(out, raw, 6); *simple = false; break;
	}
}

/*
 * Headers the software segmentation (net-gso.c) parses, over the frame's
 * first own bytes: how 1 IPv4, 2 IPv6, 3 IPv4 behind a VLAN tag; p:
 * bits 0-1 IPv4 options words, bits 2-4 TCP options words, bits 5-6 TCP
 * flags FIN and CWR, bit7 a fragment (IPv4) or another next header.
 */
static void tcp_template(uint8_t *f, uint32_t own, unsigned int how, uint8_t p)
{
	uint8_t t[NET_ETH_HLEN + NET_VLAN_HLEN + 60 + 60] = { 0 };
	uint32_t l3 = NET_ETH_HLEN, iphl, n;

	memcpy(t, f, 12 < own ? 12 : own);
	if (how == 3) {
		t[12] = 0x81, t[13] = 0x00, t[15] = 7;
		l3 += NET_VLAN_HLEN;
	}
	if (how == 2) {
		t[l3 - 2] = 0x86, t[l3 - 1] = 0xdd;
		t[l3] = 0x60;
		t[l3 + 6] = p & 0x80u ? 0 : 6;
		t[l3 + 7] = 64;
		iphl = 40;
	} else {
		t[l3 - 2] = 0x08, t[l3 - 1] = 0x00;
		iphl = 20u + 4u * (p & 3u);
		t[l3] = (uint8_t)(0x40u | iphl / 4u);
		t[l3 + 6] = p & 0x80u ? 0x20 : 0;
		t[l3 + 8] = 64, t[l3 + 9] = 6;
	}
	t[l3 + iphl + 12] = (uint8_t)((5u + (p >> 2 & 7u)) << 4);
	t[l3 + iphl + 13] = (uint8_t)(0x18u | (p & 0x20u ? 0x01u : 0) | (p & 0x40u ? 0x80u : 0));
	n = l3 + iphl + 20u + 4u * (p >> 2 & 7u);
	memcpy(f, t, n < own ? n : own);
}

static void do_tx(struct side *s, const struct side *peer, unsigned int qi,
		  const uint8_t *rec, bool *simple)
{
	static const unsigned int copies[8] = { 1, 1, 2, 8, 64, 256, 600, 1100 };
	uint32_t len = rec[4] | (uint32_t)rec[5] << 8 | (uint32_t)(rec[6] & 1u) << 16;
	uint32_t own = len < OWN_MAX ? len : OWN_MAX, extra = rec[6] >> 1;
	unsigned int lay = rec[7], hlen = s->hlen;
	struct virtio_net_hdr_mrg_rxbuf h = {
		.hdr = {
			.flags = rec[1], .gso_type = rec[2],
			.csum_start = htole16((uint16_t)(rec[8] | rec[9] << 8)),
			.csum_offset = htole16((uint16_t)(rec[10] | rec[11] << 8)),
			.gso_size = htole16((uint16_t)(rec[12] | rec[13] << 8)),
			.hdr_len = htole16(rec[14]),
		},
	};
	uint8_t frame[14];
	struct segs sg = { 0 };
	uint64_t gpa, wgpa;
	uint8_t *buf;

	if (!s->up[qi] || !(buf = alloc(s, hlen + own, &gpa)))
		return;
	mac_pick(s, peer, rec[3] & 7u, rec + 8, frame, simple);
	if (rec[3] & 8u) {
		memcpy(frame + 6, rec + 8, 6);
		*simple = false;
	} else {
		memcpy(frame + 6, s->mac, 6);
	}
	frame[12] = 0x08;
	frame[13] = 0x00;
	memcpy(buf, &h, hlen);
	for (uint32_t i = 0; i < own; i++)
		buf[hlen + i] = i < sizeof(frame) ? frame[i] : (uint8_t)(i * 13u + rec[15]);
	if (rec[3] & 0x30u)
		tcp_template(buf + hlen, own, rec[3] >> 4 & 3u, rec[15]);
	/* A segmentation frame the receiver did not accept may become many. */
	if ((rec[2] == VIRTIO_NET_HDR_GSO_TCPV4 || rec[2] == VIRTIO_NET_HDR_GSO_TCPV6) &&
	    !(has(peer, VIRTIO_NET_F_GUEST_CSUM) &&
	      has(peer, rec[2] == VIRTIO_NET_HDR_GSO_TCPV4 ? VIRTIO_NET_F_GUEST_TSO4 :
							    VIRTIO_NET_F_GUEST_TSO6)))
		peer_segments[peer - sides] = true;

	if (lay & 0x80u) {
		seg_add(&sg, gpa, extra % hlen, false);
	} else if (lay & 0x40u) {
		/* Header and frame over 65 descriptors: one iovec too many. */
		seg_split(&sg, gpa, hlen + own, len > own ? MANY - 1 : MANY);
		if (len > own)
			seg_add(&sg, gpa_of(s, s->filler), len - own, false);
	} else {
		if (lay & 0x20u) {
			seg_add(&sg, gpa, 5, false);
			seg_add(&sg, gpa + 5, hlen - 5, false);
		} else if (lay & 1u) {
			seg_add(&sg, gpa, hlen, false);
		}
		if (lay & 0x10u)
			seg_add(&sg, gpa, 0, false);
		if (lay & 0x21u)
			seg_split(&sg, gpa + hlen, own, 1u + ((lay >> 1) & 3u));
		else
			seg_split(&sg, gpa, hlen + own, 1u + ((lay >> 1) & 3u));
		if (len > own)
			seg_add(&sg, gpa_of(s, s->filler), len - own, false);
	}
	if ((lay & 8u) && alloc(s, extra + 1u, &wgpa))
		seg_add(&sg, wgpa, extra + 1u, true);
	for (unsigned int k = 0; k < copies[rec[0] >> 5]; k++) {
		if (viod_vqd_add(&s->q[qi], sg.b, sg.n, NULL) < 0) {
			/* The ring is full: let the device take what it has. */
			run();
			if (viod_vqd_add(&s->q[qi], sg.b, sg.n, NULL) < 0)
				break;
		}
		s->tx_posted++;
	}
}

static struct chain *chain_new(struct side *s)
{
	struct chain *c;

	if (s->nchains == MAX_CHAINS)
		return NULL;
	c = &s->chains[s->nchains++];
	memset(c, 0, sizeof(*c));
	return c;
}

static void do_rx(struct side *s, unsigned int qi, const uint8_t *rec)
{
	unsigned int count = (rec[0] >> 4) + 1u, ndesc = ((rec[3] >> 1) & 3u) + 1u;
	uint32_t base = rec[3] & 1u ? DRAIN_LEN : (uint32_t)(rec[1] | rec[2] << 8);

	if (!s->up[qi])
		return;
	for (unsigned int i = 0; i < count; i++) {
		uint32_t bytes = base + (rec[3] & 0x20u ? i * rec[4] : 0u), at = 0;
		struct chain *c = chain_new(s);
		struct segs sg = { 0 };
		uint64_t gpa, rgpa;
		uint8_t *buf;

		if (!c || !(buf = alloc(s, bytes ? bytes : 1u, &gpa)))
			return;
		if ((rec[3] & 8u) && alloc(s, 16, &rgpa))
			seg_add(&sg, rgpa, 16, false);
		for (unsigned int k = 0; k < ndesc; k++) {
			uint32_t part = k + 1 < ndesc ? bytes / ndesc : bytes - at;

			c->seg[c->nseg] = buf + at;
			c->seglen[c->nseg++] = part;
			sg.b[sg.n++] = (struct viod_vqd_buf){ .gpa = gpa + at, .len = part,
							      .writable = true };
			at += part;
		}
		if (rec[3] & 0x10u)
			sg.b[sg.n++] = (struct viod_vqd_buf){ .gpa = gpa, .len = 0, .writable = true };
		if (viod_vqd_add(&s->q[qi], sg.b, sg.n, c) < 0) {
			s->nchains--;
			return;
		}
		if (bytes < s->hlen)
			s->rx_tiny = true;
	}
}

static void do_control(struct side *s, const uint8_t *rec, bool *simple)
{
	if (rec[1] & 1u) {
		uint64_t mac = 0;

		memcpy(&mac, rec + 2, 6);
		fuzz_inject(s->dev, VU_SEND_RARP, &mac, 8);
		*simple = false; /* a frame no transmit queue counted */
	} else {
		uint64_t mtu = (uint64_t)(rec[2] | rec[3] << 8);

		fuzz_inject(s->dev, VU_NET_SET_MTU, &mtu, 8);
	}
}

/*
 * Posts one chain that holds any frame on each receive ring (a port has a
 * queue per pair, which only that pair's ring reads) and runs, until no
 * frame comes. False if a frame may still wait (a ring broken, full or
 * never set up).
 */
static bool drain(struct side *s)
{
	/* A frame at a time per ring: a port's queue holds 512. */
	for (int i = 0; i < 600; i++) {
		uint64_t before = s->rx_used_len;
		unsigned int nused = 0;

		for (unsigned int pr = 0; pr < s->pairs; pr++) {
			unsigned int qi = 2 * pr;
			struct chain *c;

			if (!s->up[qi] || ring_broken(s, qi) || s->q[qi].num_free == 0 ||
			    !(c = chain_new(s)))
				return false;
			c->seg[0] = s->drain[pr];
			c->seglen[0] = DRAIN_LEN;
			c->nseg = 1;
			if (viod_vqd_add(&s->q[qi], &(struct viod_vqd_buf){ .gpa = s->drain_gpa[pr],
									.len = DRAIN_LEN,
									.writable = true }, 1, c) < 0)
				return false;
			nused += s->q[qi].last_used;
		}
		run();
		for (unsigned int pr = 0; pr < s->pairs; pr++)
			nused -= s->q[2 * pr].last_used;
		if (nused == 0 && s->rx_used_len == before) {
			for (unsigned int pr = 0; pr < s->pairs; pr++)
				if (ring_broken(s, 2 * pr))
					return false;
			return true;
		}
	}
	return false;
}

/* ---- the oracle ---- */

/* FUZZ_NET_VERBOSE=1: each side's counters, for writing seeds. */
static void dump(const struct side *s, const char *name)
{
	static const char *const kinds[NET_DROP_MAX] = {
		"bad-header", "runt", "oversize", "no-buffers", "dst-full", "link-down",
		"gso", "backend",
	};
	uint64_t bytes = 0;

	if (!getenv("FUZZ_NET_VERBOSE"))
		return;
	for (unsigned int qi = 0; qi < 2 * s->pairs; qi += 2)
		bytes += atomic_load(&s->n->qs[qi].bytes);
	fprintf(stderr, "%s: tx %u posted %u used, %llu packets; rx %llu packets %llu bytes,"
		" used len %llu%s%s", name, s->tx_posted, s->tx_used,
		(unsigned long long)stat_sum(s, true, -1),
		(unsigned long long)stat_sum(s, false, -1), (unsigned long long)bytes,
		(unsigned long long)s->rx_used_len, s->rx_tiny ? " (tiny)" : "",
		s->rx_lost ? " (lost)" : "");
	for (unsigned int k = 0; k < NET_DROP_MAX; k++)
		if (stat_sum(s, true, (int)k) || stat_sum(s, false, (int)k))
			fprintf(stderr, "; %s tx %llu rx %llu", kinds[k],
				(unsigned long long)stat_sum(s, true, (int)k),
				(unsigned long long)stat_sum(s, false, (int)k));
	for (unsigned int qi = 0; qi < 2 * s->pairs; qi++)
		if (ring_broken(s, qi))
			fprintf(stderr, "; queue %u broken", qi);
	fputc('\n', stderr);
}

static void check(struct side *x, struct side *y, bool simple, bool drained_y)
{
	uint64_t tx_ok = stat_sum(x, true, -1);
	uint64_t tx_bad = stat_sum(x, true, NET_DROP_BAD_HEADER) + stat_sum(x, true, NET_DROP_RUNT) +
			  stat_sum(x, true, NET_DROP_OVERSIZE);
	uint64_t lost = stat_sum(x, true, NET_DROP_DST_FULL) + stat_sum(x, true, NET_DROP_LINK_DOWN);
	uint64_t rx_ok = stat_sum(y, false, -1), rx_bytes = 0, rx_drop = 0, expect;
	bool tx_broken = false;

	for (unsigned int qi = 1; qi < 2 * x->pairs; qi += 2)
		tx_broken |= ring_broken(x, qi);
	if (!tx_broken && x->tx_used != x->tx_posted)
		fail("a transmitted chain was never returned");
	if (x->tx_used != tx_ok + tx_bad && !tx_broken)
		fail("transmitted chains and the transmit counters disagree");
	if (stat_sum(x, true, NET_DROP_NO_BUFFERS) || stat_sum(x, true, NET_DROP_GSO) ||
	    stat_sum(y, false, NET_DROP_DST_FULL) || stat_sum(y, false, NET_DROP_LINK_DOWN) ||
	    stat_sum(y, false, NET_DROP_RUNT))
		fail("a drop counted on the wrong kind of queue");
	for (unsigned int qi = 0; qi < 2 * y->pairs; qi += 2)
		rx_bytes += atomic_load(&y->n->qs[qi].bytes);
	expect = (uint64_t)y->hlen * rx_ok + rx_bytes;
	if (y->rx_tiny ? y->rx_used_len > expect : y->rx_used_len != expect)
		fail("used lengths and the receive counters disagree");
	rx_drop = stat_sum(y, false, NET_DROP_NO_BUFFERS) + stat_sum(y, false, NET_DROP_GSO) +
		  stat_sum(y, false, NET_DROP_BAD_HEADER) + stat_sum(y, false, NET_DROP_OVERSIZE);
	if (lost > tx_ok)
		fail("more frames lost in the switch than sent");
	/* Every frame that entered the switch for y is delivered or counted,
	 * once, or (segmented) once at least. */
	if (simple && !peer_segments[y - sides] && rx_ok + rx_drop > tx_ok - lost)
		fail("the receiver counted more frames than were sent to it");
	if (simple && drained_y && !tx_broken &&
	    (peer_segments[y - sides] ? rx_ok + rx_drop < tx_ok - lost :
					rx_ok + rx_drop != tx_ok - lost))
		fail("a frame vanished in the switch");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t g[GLOBAL] = { 0 };
	bool simple = true, drained[2];
	unsigned int nrec = 0;

	memcpy(g, data, size < GLOBAL ? size : GLOBAL);
	memset(sides, 0, sizeof(sides));
	memset(peer_segments, 0, sizeof(peer_segments));
	if (!devices_get(g[0]) || !side_init(&sides[0], 0, g[0], g[1], g[2], false) ||
	    !side_init(&sides[1], 1, g[0], g[3], g[4], g[0] & 4u))
		goto out;

	for (size_t off = GLOBAL; off < size && nrec < MAX_REC; off += REC, nrec++) {
		uint8_t rec[REC] = { 0 };
		struct side *s, *peer;
		unsigned int pair;

		memcpy(rec, data + off, size - off < REC ? size - off : REC);
		s = &sides[(rec[0] >> 2) & 1u];
		peer = &sides[!((rec[0] >> 2) & 1u)];
		pair = (rec[0] >> 3) & 1u & (s->pairs - 1u);
		switch (rec[0] & 3u) {
		case 0:
			do_tx(s, peer, 2 * pair + 1, rec, &simple);
			if (rec[0] & 0x10u)
				run();
			break;
		case 1:
			do_rx(s, 2 * pair, rec);
			break;
		case 2:
			do_control(s, rec, &simple);
			break;
		default:
			run();
			break;
		}
	}
	run();
	drained[1] = drain(&sides[1]);
	drained[0] = drain(&sides[0]);
	dump(&sides[0], "A");
	dump(&sides[1], "B");
	check(&sides[0], &sides[1], simple, drained[1]);
	check(&sides[1], &sides[0], simple, drained[0]);
out:
	side_fini(&sides[0]);
	side_fini(&sides[1]);
	return 0;
}
