/*
 * virtio network device (virtio 1.2, 5.1) on a tap or on viod's built-in
 * switch: options, config space, the header rules both directions share,
 * the receive path into guest buffers, and the store.
 *
 * Contract (transmit, 5.1.6.2): a chain shorter than the header or with
 * device-writable descriptors is malformed; the header is read once into
 * a local copy and checked against the acked features (NEEDS_CSUM needs
 * CSUM and a checksum field inside the frame; TCPv4/v6 segmentation
 * needs HOST_TSO4/6 and a segment size; ECN and UFO are never offered);
 * a frame shorter than an Ethernet header, or longer than the MTU allows
 * (64 KiB with segmentation), is dropped and counted, never forwarded.
 *
 * Contract (receive, 5.1.6.3-4): only device-writable descriptors are
 * written; the header is 12 bytes with VERSION_1 or MRG_RXBUF, else 10;
 * without MRG_RXBUF a frame goes into one chain or is dropped (too small a
 * buffer), with it into as many chains as it needs, num_buffers telling
 * how many; a checksum the receiver did not offer to finish (no
 * GUEST_CSUM) is finished here, and a segmentation offload it did not
 * accept is done here (net-gso.c; what cannot be segmented is dropped and
 * counted). An unsegmented frame (or segment) above the receiver's MTU,
 * once it negotiated MTU, is dropped and counted (5.1.4.2: ports on one
 * switch may have different MTUs). Used lengths are the bytes written.
 */
#include "devices/net.h"

#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <linux/virtio_ids.h>

#include "store/store.h"
#include "util/parse.h"
#include "vhost/proto.h"

#define NET_OFFLOADS                                                         \
	((1ull << VIRTIO_NET_F_CSUM) | (1ull << VIRTIO_NET_F_GUEST_CSUM) |   \
	 (1ull << VIRTIO_NET_F_GUEST_TSO4) | (1ull << VIRTIO_NET_F_GUEST_TSO6) | \
	 (1ull << VIRTIO_NET_F_HOST_TSO4) | (1ull << VIRTIO_NET_F_HOST_TSO6))
#define NET_FEATURES                                                         \
	(NET_OFFLOADS | (1ull << VIRTIO_NET_F_MTU) | (1ull << VIRTIO_NET_F_MAC) | \
	 (1ull << VIRTIO_NET_F_MRG_RXBUF) | (1ull << VIRTIO_NET_F_STATUS) |  \
	 (1ull << VIRTIO_NET_F_MQ))
/* Chains one received frame may take with MRG_RXBUF (a 64 KiB frame in
 * 1.5 KiB buffers takes 44). */
#define NET_MRG_MAX 64u

static const char *const drop_names[NET_DROP_MAX] = {
	[NET_DROP_BAD_HEADER] = "bad-header",
	[NET_DROP_RUNT] = "runt",
	[NET_DROP_OVERSIZE] = "oversize",
	[NET_DROP_NO_BUFFERS] = "no-buffers",
	[NET_DROP_DST_FULL] = "dst-full",
	[NET_DROP_LINK_DOWN] = "link-down",
	[NET_DROP_GSO] = "gso",
	[NET_DROP_BACKEND] = "backend",
};

/* Worker-owned counters: a plain load and store, no locked instruction. */
static inline void bump(atomic_uint_fast64_t *c, uint64_t by)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + by,
			      memory_order_relaxed);
}

void net_count_drop(struct net *n, unsigned int qidx, enum net_drop why)
{
	if (qidx < NET_MAX_QUEUES)
		bump(&n->qs[qidx].drops[why], 1);
}

void net_count_frame(struct net *n, unsigned int qidx, uint64_t bytes)
{
	bump(&n->qs[qidx].packets, 1);
	bump(&n->qs[qidx].bytes, bytes);
}

struct viod_req *net_tx_pop(struct viod_dev *dev, struct viod_queue *q, size_t hlen,
			    struct virtio_net_hdr_mrg_rxbuf *h, unsigned int *budget)
{
	struct net *n = viod_dev_priv(dev);
	unsigned int qi = viod_queue_index(q);
	struct viod_req *r;

	while (*budget && (r = viod_queue_pop(q))) {
		enum net_drop why = NET_DROP_BAD_HEADER;

		(*budget)--;
		memset(h, 0, sizeof(*h));
		/* The transmitq carries device-readable buffers only (5.1.6.2). */
		if (r->out_len >= hlen && !r->in_num) {
			viod_iov_to_buf(r->iov, r->out_num, 0, h, hlen);
			if (net_tx_check(n, &h->hdr, r->out_len - hlen, &why))
				return r;
		}
		net_count_drop(n, qi, why);
		viod_queue_complete(q, r, 0);
	}
	return NULL;
}

/* ---- headers ---- */

bool net_tx_check(struct net *n, const struct virtio_net_hdr *h, uint64_t len,
		  enum net_drop *why)
{
	uint64_t f = atomic_load_explicit(&n->dp_features, memory_order_relaxed);
	uint8_t gso = h->gso_type;
	uint64_t max = atomic_load_explicit(&n->mtu_now, memory_order_relaxed) +
		       NET_ETH_HLEN + NET_VLAN_HLEN;

	*why = NET_DROP_BAD_HEADER;
	if (h->flags & ~(VIRTIO_NET_HDR_F_NEEDS_CSUM | VIRTIO_NET_HDR_F_DATA_VALID))
		return false;
	if (h->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) {
		uint64_t start = le16toh(h->csum_start), off = le16toh(h->csum_offset);

		if (!viod_has_feature(f, VIRTIO_NET_F_CSUM) || start + off + 2 > len)
			return false;
	}
	switch (gso) {
	case VIRTIO_NET_HDR_GSO_NONE:
		break;
	case VIRTIO_NET_HDR_GSO_TCPV4:
	case VIRTIO_NET_HDR_GSO_TCPV6:
		if (!viod_has_feature(f, gso == VIRTIO_NET_HDR_GSO_TCPV4 ?
					 VIRTIO_NET_F_HOST_TSO4 : VIRTIO_NET_F_HOST_TSO6) ||
		    !le16toh(h->gso_size) || !(h->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM))
			return false;
		max = NET_GSO_FRAME_MAX;
		break;
	default:
		return false; /* UFO, ECN: never offered */
	}
	if (len < NET_ETH_HLEN) {
		*why = NET_DROP_RUNT;
		return false;
	}
	if (len > max) {
		*why = NET_DROP_OVERSIZE;
		return false;
	}
	return true;
}

/* Internet checksum (RFC 1071) of buf, folded, not complemented. */
static uint16_t csum_fold(const uint8_t *buf, size_t len)
{
	uint64_t sum = 0;
	size_t i = 0;

	for (; i + 1 < len; i += 2)
		sum += (uint32_t)buf[i] << 8 | buf[i + 1];
	if (i < len)
		sum += (uint32_t)buf[i] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}

/*
 * Finishes a partial checksum (NEEDS_CSUM, 5.1.6.2): the ones' complement
 * sum from csum_start to the end, which already covers the pseudo-header
 * the sender seeded, stored at csum_start + csum_offset. Checked by
 * net_tx_check (the field lies inside the frame).
 */
static void csum_finish(struct net_frame *f)
{
	uint32_t start = le16toh(f->hdr.csum_start), off = le16toh(f->hdr.csum_offset);
	uint16_t c;

	/* The field holds the pseudo-header sum the sender seeded: it is
	 * part of the sum, not cleared first. */
	c = (uint16_t)~csum_fold(f->data + start, f->len - start);
	if (c == 0 && off == 6) /* UDP: 0 means "no checksum" (RFC 768) */
		c = 0xffff;
	f->data[start + off] = (uint8_t)(c >> 8);
	f->data[start + off + 1] = (uint8_t)c;
	f->hdr.flags &= (uint8_t)~VIRTIO_NET_HDR_F_NEEDS_CSUM;
}

/* ---- receive ---- */

static int rx_one(struct viod_dev *dev, struct viod_queue *q, struct net_frame *f);

struct gso_ctx {
	struct viod_dev *dev;
	struct viod_queue *q;
	unsigned int sent;
};

static int gso_emit(void *opaque, struct net_frame *s)
{
	struct gso_ctx *c = opaque;
	int rc = rx_one(c->dev, c->q, s);

	if (rc == -ENOBUFS && c->sent)
		net_count_drop(viod_dev_priv(c->dev), viod_queue_index(c->q),
			       NET_DROP_NO_BUFFERS);
	c->sent += rc == 0;
	return rc;
}

int net_rx_deliver(struct viod_dev *dev, struct viod_queue *q, struct net_frame *f)
{
	struct net *n = viod_dev_priv(dev);
	uint64_t feat = atomic_load_explicit(&n->dp_features, memory_order_relaxed);
	unsigned int qi = viod_queue_index(q), pair = qi / 2u;
	struct gso_ctx c = { .dev = dev, .q = q };
	int rc;

	if (f->hdr.gso_type == VIRTIO_NET_HDR_GSO_NONE ||
	    (viod_has_feature(feat, VIRTIO_NET_F_GUEST_CSUM) &&
	     viod_has_feature(feat, f->hdr.gso_type == VIRTIO_NET_HDR_GSO_TCPV4 ?
				    VIRTIO_NET_F_GUEST_TSO4 : VIRTIO_NET_F_GUEST_TSO6)))
		return rx_one(dev, q, f);
	/* The receiver did not accept this offload: segment it here. */
	if (!n->gso_buf[pair])
		n->gso_buf[pair] = g_malloc(NET_GSO_FRAME_MAX);
	rc = net_gso_segment(f, n->gso_buf[pair], gso_emit, &c);
	if (rc == -EINVAL) {
		net_count_drop(n, qi, NET_DROP_GSO);
		return 0;
	}
	return rc == -ENOBUFS ? rc : 0;
}

static int rx_one(struct viod_dev *dev, struct viod_queue *q, struct net_frame *f)
{
	struct net *n = viod_dev_priv(dev);
	uint64_t feat = atomic_load_explicit(&n->dp_features, memory_order_relaxed);
	unsigned int qi = viod_queue_index(q);
	size_t hlen = (size_t)atomic_load_explicit(&n->hdr_len, memory_order_relaxed);
	bool mrg = viod_has_feature(feat, VIRTIO_NET_F_MRG_RXBUF);
	struct viod_req *bufs[NET_MRG_MAX];
	struct virtio_net_hdr_mrg_rxbuf h = { .hdr = f->hdr };
	uint64_t need = hlen + f->len, have = 0, off = 0;
	unsigned int nb = 0;

	/* A receiver that negotiated MTU never gets an unsegmented frame
	 * above it (5.1.4.2), whatever the sender's MTU or segment size. */
	if (f->hdr.gso_type == VIRTIO_NET_HDR_GSO_NONE &&
	    viod_has_feature(feat, VIRTIO_NET_F_MTU) &&
	    f->len > (uint64_t)atomic_load_explicit(&n->mtu_now, memory_order_relaxed) +
			     NET_ETH_HLEN + NET_VLAN_HLEN) {
		net_count_drop(n, qi, NET_DROP_OVERSIZE);
		return 0;
	}
	if ((f->hdr.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) &&
	    !viod_has_feature(feat, VIRTIO_NET_F_GUEST_CSUM)) {
		if ((uint64_t)le16toh(f->hdr.csum_start) + le16toh(f->hdr.csum_offset) + 2 >
		    f->len) {
			net_count_drop(n, qi, NET_DROP_BAD_HEADER);
			return 0;
		}
		csum_finish(f);
	}
	h.hdr = f->hdr;
	/* DATA_VALID is only ours to give with GUEST_CSUM (5.1.6.4.1). */
	if (!viod_has_feature(feat, VIRTIO_NET_F_GUEST_CSUM))
		h.hdr.flags &= (uint8_t)~VIRTIO_NET_HDR_F_DATA_VALID;

	while (have < need) {
		struct viod_req *r;

		if (nb == (mrg ? NET_MRG_MAX : 1u))
			break;
		r = viod_queue_pop(q);
		if (!r)
			break;
		bufs[nb++] = r;
		have += r->in_len;
	}
	if (have < need) {
		bool ring_dry = nb < (mrg ? NET_MRG_MAX : 1u);

		while (nb)
			viod_queue_unpop(q, bufs[--nb]);
		if (ring_dry)
			return -ENOBUFS;
		/* The guest's buffers cannot hold it (5.1.6.3.1). */
		net_count_drop(n, qi, NET_DROP_NO_BUFFERS);
		return 0;
	}
	h.num_buffers = htole16((uint16_t)nb);
	for (unsigned int i = 0; i < nb; i++) {
		struct viod_req *r = bufs[i];
		const struct iovec *in = r->iov + r->out_num;
		uint64_t room = r->in_len, put = 0;

		if (i == 0) {
			put = viod_iov_from_buf(in, r->in_num, 0, &h, hlen);
			room -= put;
		}
		if (room > f->len - off)
			room = f->len - off;
		put += viod_iov_from_buf(in, r->in_num, put, f->data + off, room);
		off += room;
		viod_queue_complete(q, r, (uint32_t)put);
	}
	net_count_frame(n, qi, f->len);
	return 0;
}

/* ---- queues ---- */

static bool is_rx(unsigned int qidx)
{
	return !(qidx & 1u);
}

static enum viod_serve net_queue(struct viod_dev *dev, struct viod_queue *q)
{
	struct net *n = viod_dev_priv(dev);
	bool rx = is_rx(viod_queue_index(q));

	switch (n->backend) {
	case NET_BACKEND_SWITCH:
		return rx ? net_switch_rx(dev, q) : net_switch_tx(dev, q);
	case NET_BACKEND_TAP:
		return rx ? net_tap_rx(dev, q) : net_tap_tx(dev, q);
	case NET_BACKEND_NONE:
		break;
	}
	return VIOD_SERVE_BLOCKED;
}

static unsigned int net_queue_worker(struct viod_dev *dev, unsigned int qidx)
{
	return qidx / 2u;
}

static uint64_t net_queue_num(struct viod_dev *dev)
{
	return ((struct net *)viod_dev_priv(dev))->pairs;
}

/* ---- options ---- */

static bool parse_mac(const char *s, uint8_t mac[6], GError **err)
{
	unsigned int b[6];
	char tail;

	if (!s || sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2], &b[3],
			 &b[4], &b[5], &tail) != 6 || strlen(s) != 17) {
		g_set_error(err, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
			    "'%s' is not a MAC address (xx:xx:xx:xx:xx:xx)", s ? s : "");
		return false;
	}
	for (unsigned int i = 0; i < 6; i++)
		mac[i] = (uint8_t)b[i];
	if (mac[0] & 1) {
		g_set_error(err, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
			    "%s is a multicast address", s);
		return false;
	}
	return true;
}

static int net_set_option(struct viod_dev *dev, const char *key, const char *value,
			  GError **err)
{
	struct net *n = viod_dev_priv(dev);
	guint64 v;
	bool on;

	if (!g_strcmp0(key, "backend")) {
		const char *colon = value ? strchr(value, ':') : NULL;

		if (!colon || !colon[1] || strlen(colon + 1) > 15 ||
		    (strncmp(value, "switch:", 7) && strncmp(value, "tap:", 4))) {
			g_set_error(err, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
				    "backend is switch:NAME or tap:IFNAME (at most 15 characters), not '%s'",
				    value ? value : "");
			return -EINVAL;
		}
		n->backend = value[0] == 's' ? NET_BACKEND_SWITCH : NET_BACKEND_TAP;
		g_free(n->backend_name);
		n->backend_name = g_strdup(colon + 1);
	} else if (!g_strcmp0(key, "mac")) {
		if (!parse_mac(value, n->mac, err))
			return -EINVAL;
		n->mac_set = true;
	} else if (!g_strcmp0(key, "queue-pairs")) {
		if (!g_ascii_string_to_unsigned(value, 10, 1, NET_MAX_PAIRS, &v, err))
			return -EINVAL;
		n->pairs = (unsigned int)v;
	} else if (!g_strcmp0(key, "mtu")) {
		if (!g_ascii_string_to_unsigned(value, 10, NET_MTU_MIN, NET_MTU_MAX, &v, err))
			return -EINVAL;
		n->mtu = (uint32_t)v;
	} else if (!g_strcmp0(key, "offloads")) {
		if (!viod_parse_bool(value, &on, err))
			return -EINVAL;
		n->no_offloads = !on;
	} else {
		return -ENOENT;
	}
	return 0;
}

/* A locally administered unicast MAC derived from the device id. */
static void default_mac(const char *id, uint8_t mac[6])
{
	guint h = g_str_hash(id);

	mac[0] = 0x52;
	mac[1] = 0x54;
	mac[2] = 0x00;
	mac[3] = (uint8_t)(h >> 16);
	mac[4] = (uint8_t)(h >> 8);
	mac[5] = (uint8_t)h;
}

static int net_init(struct viod_dev *dev, GError **err)
{
	struct net *n = viod_dev_priv(dev);
	uint64_t feat = NET_FEATURES;
	int rc;

	if (n->backend == NET_BACKEND_NONE) {
		g_set_error(err, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
			    "net needs backend=switch:NAME or backend=tap:IFNAME");
		return -EINVAL;
	}
	if (!n->pairs)
		n->pairs = 1;
	if (!n->mtu)
		n->mtu = NET_MTU_DEFAULT;
	if (!n->mac_set)
		default_mac(viod_dev_id(dev), n->mac);
	atomic_store(&n->mtu_now, n->mtu);
	atomic_store(&n->hdr_len, sizeof(struct virtio_net_hdr));
	viod_dev_set_num_queues(dev, 2 * n->pairs);
	if (n->pairs == 1)
		feat &= ~(1ull << VIRTIO_NET_F_MQ);
	if (n->no_offloads)
		feat &= ~NET_OFFLOADS;
	viod_dev_offer_features(dev, feat);
	if (n->backend == NET_BACKEND_SWITCH)
		rc = net_switch_port_open(dev, n->backend_name, n->pairs, &n->port, err);
	else
		rc = net_tap_open(dev, n->backend_name, n->pairs, &n->tap, err);
	return rc;
}

static void net_fini(struct viod_dev *dev)
{
	struct net *n = viod_dev_priv(dev);

	if (n->port)
		net_switch_port_close(n->port);
	if (n->tap)
		net_tap_close(n->tap);
	for (unsigned int i = 0; i < NET_MAX_PAIRS; i++) {
		g_free(n->pending[i].buf);
		g_free(n->gso_buf[i]);
	}
	g_free(n->backend_name);
}

static void net_worker_start(struct viod_dev *dev, unsigned int worker)
{
	struct net *n = viod_dev_priv(dev);

	if (n->tap)
		net_tap_worker_start(dev, worker);
}

/* ---- config space (virtio 1.2, 5.1.4) ---- */

static void net_config_read(struct viod_dev *dev, uint32_t off, void *buf, uint32_t len)
{
	struct net *n = viod_dev_priv(dev);
	struct virtio_net_config c = { 0 };

	memcpy(c.mac, n->mac, sizeof(c.mac));
	c.status = htole16(VIRTIO_NET_S_LINK_UP);
	c.max_virtqueue_pairs = htole16((uint16_t)n->pairs);
	c.mtu = htole16((uint16_t)atomic_load(&n->mtu_now));
	c.speed = htole32(UINT32_MAX); /* unknown */
	c.duplex = 0xff;               /* unknown */
	memcpy(buf, (const uint8_t *)&c + off, len);
}

static void net_features_changed(struct viod_dev *dev, uint64_t features)
{
	struct net *n = viod_dev_priv(dev);
	bool v1 = viod_has_feature(features, VIRTIO_F_VERSION_1) ||
		  viod_has_feature(features, VIRTIO_NET_F_MRG_RXBUF);
	unsigned int hlen = v1 ? sizeof(struct virtio_net_hdr_mrg_rxbuf) :
			    sizeof(struct virtio_net_hdr);

	atomic_store(&n->hdr_len, hlen);
	atomic_store(&n->dp_features, features);
	if (n->tap) {
		net_tap_set_hdr_len(n->tap, hlen);
		net_tap_set_offloads(n->tap, features);
	}
	if (n->port)
		net_switch_port_up(n->port, true);
}

static void net_reset(struct viod_dev *dev)
{
	struct net *n = viod_dev_priv(dev);

	if (n->port && !viod_dev_connected(dev))
		net_switch_port_up(n->port, false);
}

static void net_dp_reset(struct viod_dev *dev)
{
	struct net *n = viod_dev_priv(dev);

	if (n->port)
		net_switch_port_flush(n->port);
	for (unsigned int i = 0; i < NET_MAX_PAIRS; i++)
		n->pending[i].full = false;
}

/* ---- vhost-user net requests ---- */

/* A reverse ARP announce from mac (RFC 903 framing, as QEMU's announce). */
static int net_send_rarp(struct viod_dev *dev, const uint8_t mac[6])
{
	struct net *n = viod_dev_priv(dev);
	uint8_t f[NET_ETH_MIN] = { 0 };

	memset(f, 0xff, 6);
	memcpy(f + 6, mac, 6);
	f[12] = 0x80, f[13] = 0x35;           /* ETH_P_RARP */
	f[14] = 0x00, f[15] = 0x01;           /* hardware: Ethernet */
	f[16] = 0x08, f[17] = 0x00;           /* protocol: IPv4 */
	f[18] = 6, f[19] = 4;
	f[20] = 0x00, f[21] = 0x03;           /* reverse request */
	memcpy(f + 22, mac, 6);
	memcpy(f + 32, mac, 6);
	if (n->port)
		net_switch_inject(n->port, f, sizeof(f));
	if (n->tap)
		net_tap_inject(n->tap, f, sizeof(f));
	return 0;
}

static int net_set_mtu(struct viod_dev *dev, uint64_t mtu)
{
	struct net *n = viod_dev_priv(dev);

	if (mtu < NET_MTU_MIN || mtu > NET_MTU_MAX) {
		viod_dev_warn(dev, "NET_SET_MTU %" PRIu64 ": outside %u..%u, ignored", mtu,
			      NET_MTU_MIN, NET_MTU_MAX);
		return 0;
	}
	atomic_store(&n->mtu_now, (unsigned int)mtu);
	viod_dev_state_changed(dev);
	return 0;
}

/* ---- store ---- */

static void net_store_publish(struct viod_dev *dev, struct viod_store *st, const char *prefix)
{
	struct net *n = viod_dev_priv(dev);
	uint64_t pk[2] = { 0 }, by[2] = { 0 }, drops[NET_DROP_MAX] = { 0 };

	for (unsigned int q = 0; q < 2 * n->pairs; q++) {
		struct net_qstats *s = &n->qs[q];
		g_autofree char *qp = g_strdup_printf("%s/queues/%u", prefix, q);
		uint64_t p = atomic_load_explicit(&s->packets, memory_order_relaxed);
		uint64_t b = atomic_load_explicit(&s->bytes, memory_order_relaxed);
		uint64_t d = 0;

		for (unsigned int k = 0; k < NET_DROP_MAX; k++) {
			uint64_t v = atomic_load_explicit(&s->drops[k], memory_order_relaxed);

			drops[k] += v;
			d += v;
		}
		pk[q & 1] += p;
		by[q & 1] += b;
		viod_store_setf_under(st, qp, "packets", "%" PRIu64, p);
		viod_store_setf_under(st, qp, "drops", "%" PRIu64, d);
	}
	viod_store_setf_under(st, prefix, "rx/packets", "%" PRIu64, pk[0]);
	viod_store_setf_under(st, prefix, "rx/bytes", "%" PRIu64, by[0]);
	viod_store_setf_under(st, prefix, "tx/packets", "%" PRIu64, pk[1]);
	viod_store_setf_under(st, prefix, "tx/bytes", "%" PRIu64, by[1]);
	for (unsigned int k = 0; k < NET_DROP_MAX; k++) {
		g_autofree char *key = g_strdup_printf("drops/%s", drop_names[k]);

		viod_store_setf_under(st, prefix, key, "%" PRIu64, drops[k]);
	}
	viod_store_setf_under(st, prefix, "mtu", "%u", atomic_load(&n->mtu_now));
	if (n->port)
		viod_store_setf_under(st, prefix, "switch/macs", "%u",
				      net_switch_port_macs(n->port));
}

static void net_store_attach(struct viod_dev *dev, struct viod_store *st, const char *prefix)
{
	struct net *n = viod_dev_priv(dev);

	viod_store_setf_under(st, prefix, "backend", "%s:%s",
			      n->backend == NET_BACKEND_SWITCH ? "switch" : "tap",
			      n->tap ? net_tap_ifname(n->tap) : n->backend_name);
	viod_store_setf_under(st, prefix, "mac", "%02x:%02x:%02x:%02x:%02x:%02x", n->mac[0],
			      n->mac[1], n->mac[2], n->mac[3], n->mac[4], n->mac[5]);
	viod_store_setf_under(st, prefix, "queue-pairs", "%u", n->pairs);
	net_store_publish(dev, st, prefix);
}

static const struct viod_device_ops net_ops = {
	.type = "net",
	.virtio_id = VIRTIO_ID_NET,
	.features = NET_FEATURES,
	.protocol_features = (1ull << VU_PF_MQ) | (1ull << VU_PF_RARP) |
			     (1ull << VU_PF_NET_MTU) | (1ull << VU_PF_CONFIG),
	.num_queues = 2,
	.config_size = sizeof(struct virtio_net_config),
	.priv_size = sizeof(struct net),
	.queue_depth = 256,
	.max_iov = NET_MAX_IOV,
	.set_option = net_set_option,
	.init = net_init,
	.fini = net_fini,
	.queue_num = net_queue_num,
	.send_rarp = net_send_rarp,
	.set_mtu = net_set_mtu,
	.queue_worker = net_queue_worker,
	.worker_start = net_worker_start,
	.queue_handler = net_queue,
	.config_read = net_config_read,
	.features_changed = net_features_changed,
	.reset = net_reset,
	.dp_reset = net_dp_reset,
	.store_attach = net_store_attach,
	.store_publish = net_store_publish,
};
VIOD_DEVICE_REGISTER(net_ops)
