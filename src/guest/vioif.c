/*
 * vioif: virtio network driver on the userspace front-end. Contracts:
 * vioif.h. Device: virtio 1.2, 5.1 (header 5.1.6, receive 5.1.6.3-4,
 * config 5.1.4, multiqueue 5.1.6.5.5).
 */
#include "vioif.h"

#include <endian.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

_Static_assert(sizeof(struct virtio_net_hdr_v1) == 12, "virtio 1.2, 5.1.6");
_Static_assert(sizeof(struct virtio_net_hdr_mrg_rxbuf) == 12, "virtio 1.2, 5.1.6");
_Static_assert(sizeof(struct virtio_net_hdr) == 10, "virtio 1.2, 5.1.6 (legacy)");

/* A tx slot: header and the longest frame, cache-line rounded. */
#define VIOIF_TX_SLOT ((VIOIF_HDR_MAX + VIOIF_FRAME_MAX + 63u) & ~63u)
/* 5.1.4.1: the smallest MTU a device may report. */
#define VIOIF_MTU_MIN 68u

static int64_t vioif_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool vioif_has(const struct vioif *sc, unsigned int bit)
{
	return (sc->features >> bit) & 1;
}

/* Marks the driver broken and returns err (reason already recorded). */
static int vioif_broken(struct vioif *sc, int err)
{
	sc->broken = true;
	return err;
}

void vioif_opts_init(struct vioif_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->nqueue_pairs = 1;
	o->queue_size = VIOIF_DEFAULT_QUEUE_SIZE;
	o->rx_buf_size = VIOIF_DEFAULT_RX_BUF_SIZE;
	o->features = VIOIF_FEATURES_SUPPORTED;
	o->timeout_ms = VIOIF_DEFAULT_TIMEOUT_MS;
}

uint32_t vioif_hdr_len(uint64_t features)
{
	if (features & ((1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_NET_F_MRG_RXBUF)))
		return sizeof(struct virtio_net_hdr_mrg_rxbuf);
	return sizeof(struct virtio_net_hdr);
}

/* ------------------------------------------------------------------ */
/* Attach.                                                             */

/*
 * Reads config space once, the fields of negotiated features only, and
 * checks it (DESIGN.md, rule 6). Without the CONFIG protocol feature
 * (DPDK's vhost has none for net) nothing is known: the has_* stay false.
 */
static int vioif_read_config(struct vioif *sc)
{
	struct vioif_config *c = &sc->cfg;
	struct virtio_net_config cfg;
	uint32_t len = 0;
	int r;

#define VIOIF_CFG_END(field) \
	((uint32_t)(offsetof(struct virtio_net_config, field) + \
		    sizeof(((struct virtio_net_config *)0)->field)))
	memset(c, 0, sizeof(*c));
	memset(&cfg, 0, sizeof(cfg));
	if (!viod_fe_has_protocol(sc->fe, VU_PF_CONFIG))
		return 0;
	c->readable = true;
	if (vioif_has(sc, VIRTIO_NET_F_MAC))
		len = VIOIF_CFG_END(mac);
	if (vioif_has(sc, VIRTIO_NET_F_STATUS))
		len = VIOIF_CFG_END(status);
	if (vioif_has(sc, VIRTIO_NET_F_MQ))
		len = VIOIF_CFG_END(max_virtqueue_pairs);
	if (vioif_has(sc, VIRTIO_NET_F_MTU))
		len = VIOIF_CFG_END(mtu);
#undef VIOIF_CFG_END
	if (len == 0)
		return 0;
	r = viod_fe_get_config(sc->fe, 0, &cfg, len);
	if (r < 0)
		return r;

	if (vioif_has(sc, VIRTIO_NET_F_MAC)) {
		memcpy(c->mac, cfg.mac, sizeof(c->mac));
		c->has_mac = true;
	}
	if (vioif_has(sc, VIRTIO_NET_F_STATUS)) {
		c->status = le16toh(cfg.status);
		c->has_status = true;
	}
	if (vioif_has(sc, VIRTIO_NET_F_MQ)) {
		uint16_t v = le16toh(cfg.max_virtqueue_pairs);

		if (v < VIRTIO_NET_CTRL_MQ_VQ_PAIRS_MIN || v > VIRTIO_NET_CTRL_MQ_VQ_PAIRS_MAX)
			return viod_fe_error(sc->fe, -EPROTO,
					     "vioif: max_virtqueue_pairs %u is not in 1..%u",
					     v, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_MAX);
		c->max_pairs = v;
		c->has_max_pairs = true;
	}
	if (vioif_has(sc, VIRTIO_NET_F_MTU)) {
		uint16_t v = le16toh(cfg.mtu);

		if (v < VIOIF_MTU_MIN)
			return viod_fe_error(sc->fe, -EPROTO,
					     "vioif: mtu %u is below %u", v, VIOIF_MTU_MIN);
		c->mtu = v;
		c->has_mtu = true;
	}
	return 0;
}

/*
 * Queue pairs in use: the option, bounded by the device's
 * max_virtqueue_pairs and the back-end's GET_QUEUE_NUM (queue pairs for
 * net). With MQ but neither known, one: more could be past the device.
 */
static unsigned int vioif_pairs(const struct vioif *sc)
{
	unsigned int np = sc->opts.nqueue_pairs;

	if (!vioif_has(sc, VIRTIO_NET_F_MQ))
		return 1;
	if (!sc->cfg.has_max_pairs && !sc->fe->queue_num)
		return 1;
	if (sc->cfg.has_max_pairs && np > sc->cfg.max_pairs)
		np = sc->cfg.max_pairs;
	if (sc->fe->queue_num && np > sc->fe->queue_num)
		np = (unsigned int)sc->fe->queue_num;
	return np;
}

/* Allocates n buffers of size bytes in guest memory into b[]. */
static int vioif_bufs_alloc(struct vioif *sc, struct vioif_buf *b, unsigned int n,
			    uint32_t size)
{
	for (unsigned int i = 0; i < n; i++) {
		b[i].host = viod_fe_alloc(sc->fe, size, 64, &b[i].gpa);
		if (!b[i].host)
			return viod_fe_error(sc->fe, -ENOMEM,
					     "vioif: no guest memory for %u queue pairs of "
					     "%u %u-byte rx buffers and %u tx slots",
					     sc->npairs, sc->opts.queue_size,
					     sc->opts.rx_buf_size, sc->opts.queue_size);
	}
	return 0;
}

static int vioif_qp_init(struct vioif *sc, struct vioif_queue_pair *q, unsigned int i)
{
	unsigned int n = sc->opts.queue_size;
	int r;

	q->rxq = 2 * i;
	q->txq = 2 * i + 1;
	r = viod_fe_queue_setup(sc->fe, q->rxq, sc->opts.queue_size);
	if (r < 0)
		return r;
	r = viod_fe_queue_setup(sc->fe, q->txq, sc->opts.queue_size);
	if (r < 0)
		return r;
	q->rx = calloc(n, sizeof(*q->rx));
	q->rx_free = calloc(n, sizeof(*q->rx_free));
	q->tx = calloc(n, sizeof(*q->tx));
	q->tx_free = calloc(n, sizeof(*q->tx_free));
	if (!q->rx || !q->rx_free || !q->tx || !q->tx_free)
		return viod_fe_error(sc->fe, -ENOMEM, "vioif: out of memory");
	r = vioif_bufs_alloc(sc, q->rx, n, sc->opts.rx_buf_size);
	if (r < 0)
		return r;
	r = vioif_bufs_alloc(sc, q->tx, n, VIOIF_TX_SLOT);
	if (r < 0)
		return r;
	for (unsigned int k = 0; k < n; k++) {
		q->rx_free[q->rx_nfree++] = n - 1 - k;
		q->tx_free[q->tx_nfree++] = n - 1 - k;
	}
	return 0;
}

static int vioif_kick(struct vioif *sc, unsigned int idx)
{
	int r = viod_fe_kick(sc->fe, idx);

	return r < 0 ? vioif_broken(sc, r) : 0;
}

/*
 * Posts every rx buffer not posted; the header is zeroed first, so a
 * device that never writes num_buffers is caught. Kicks if it posted.
 */
static int vioif_rx_fill(struct vioif *sc, struct vioif_queue_pair *q)
{
	struct viod_vqd *vqd = viod_fe_vqd(sc->fe, q->rxq);
	bool posted = false;

	if (!vqd)
		return vioif_broken(sc, -EIO);
	while (q->rx_nfree > 0) {
		unsigned int b = q->rx_free[q->rx_nfree - 1];
		struct viod_vqd_buf d = { .gpa = q->rx[b].gpa, .len = sc->opts.rx_buf_size,
					  .writable = true };
		int r;

		memset(q->rx[b].host, 0, sc->hdr_len);
		r = viod_vqd_add(vqd, &d, 1, (void *)(uintptr_t)(b + 1));
		if (r < 0)
			return vioif_broken(sc, viod_fe_error(sc->fe, -EIO,
				"vioif: rx queue %u: cannot post a buffer (%s)", q->rxq,
				strerror(-r)));
		q->rx_nfree--;
		q->rx[b].busy = true;
		q->rx_posted++;
		posted = true;
	}
	return posted ? vioif_kick(sc, q->rxq) : 0;
}

static int vioif_check_opts(struct vioif *sc, const struct vioif_opts *o)
{
	if (o->nqueue_pairs == 0 || o->nqueue_pairs > VIOIF_MAX_QUEUE_PAIRS ||
	    !viod_vq_size_valid(o->queue_size) || o->queue_size < 2 ||
	    o->rx_buf_size <= VIOIF_HDR_MAX || o->rx_buf_size > VIOIF_MAX_RX_BUF_SIZE)
		return viod_fe_error(sc->fe, -EINVAL,
				     "vioif: bad options: %u queue pairs (1..%u) of %u entries "
				     "(a power of two >= 2), rx buffers of %u bytes (%u..%u)",
				     o->nqueue_pairs, VIOIF_MAX_QUEUE_PAIRS, o->queue_size,
				     o->rx_buf_size, VIOIF_HDR_MAX + 1, VIOIF_MAX_RX_BUF_SIZE);
	return 0;
}

int vioif_attach(struct vioif *sc, struct viod_fe *fe, const struct vioif_opts *opts)
{
	uint64_t want;
	int r;

	memset(sc, 0, sizeof(*sc));
	sc->fe = fe;
	if (opts)
		sc->opts = *opts;
	else
		vioif_opts_init(&sc->opts);
	r = vioif_check_opts(sc, &sc->opts);
	if (r < 0)
		return vioif_broken(sc, r);

	want = sc->opts.features & VIOIF_FEATURES_SUPPORTED;
	if (sc->opts.no_mrg_rxbuf)
		want &= ~(1ull << VIRTIO_NET_F_MRG_RXBUF);
	fe->queue_num_unit = 2;
	r = viod_fe_negotiate(fe, want);
	if (r < 0)
		return vioif_broken(sc, r);
	sc->features = fe->features_acked & VIOIF_FEATURES_SUPPORTED;
	sc->hdr_len = vioif_hdr_len(fe->features_acked);
	/* 5.1.6.3.1: without MRG_RXBUF (and without GUEST_TSO*, never
	 * negotiated here) each buffer holds a header and a whole frame. */
	if (!vioif_has(sc, VIRTIO_NET_F_MRG_RXBUF) &&
	    sc->opts.rx_buf_size < sc->hdr_len + VIOIF_FRAME_MAX)
		return vioif_broken(sc, viod_fe_error(fe, -EINVAL,
			"vioif: without MRG_RXBUF an rx buffer must hold the %u-byte "
			"header and a %u-byte frame; %u bytes is too small",
			sc->hdr_len, VIOIF_FRAME_MAX, sc->opts.rx_buf_size));
	r = vioif_read_config(sc);
	if (r < 0)
		return vioif_broken(sc, r);
	/* 5.1.4.2: with MTU negotiated, a frame of mtu bytes plus the
	 * Ethernet header must fit (without CONFIG the MTU is unknown: the
	 * VMM holds it, and 1500 is assumed). */
	if (sc->cfg.has_mtu && !vioif_has(sc, VIRTIO_NET_F_MRG_RXBUF) &&
	    sc->opts.rx_buf_size < sc->hdr_len + VIOIF_ETH_HLEN + sc->cfg.mtu)
		return vioif_broken(sc, viod_fe_error(fe, -EINVAL,
			"vioif: the device's mtu %u needs rx buffers of %u bytes without "
			"MRG_RXBUF; %u is too small", sc->cfg.mtu,
			sc->hdr_len + VIOIF_ETH_HLEN + sc->cfg.mtu, sc->opts.rx_buf_size));

	sc->npairs = vioif_pairs(sc);
	sc->qp = calloc(sc->npairs, sizeof(*sc->qp));
	r = sc->qp ? 0 : viod_fe_error(fe, -ENOMEM, "vioif: out of memory");
	for (unsigned int i = 0; r == 0 && i < sc->npairs; i++)
		r = vioif_qp_init(sc, &sc->qp[i], i);
	if (r == 0)
		r = viod_fe_driver_ok(fe);
	for (unsigned int i = 0; r == 0 && i < sc->npairs; i++)
		r = vioif_rx_fill(sc, &sc->qp[i]);
	if (r < 0)
		vioif_detach(sc);
	return r;
}

void vioif_detach(struct vioif *sc)
{
	for (unsigned int i = 0; sc->qp && i < sc->npairs; i++) {
		free(sc->qp[i].rx);
		free(sc->qp[i].rx_free);
		free(sc->qp[i].tx);
		free(sc->qp[i].tx_free);
	}
	free(sc->qp);
	sc->qp = NULL;
	sc->npairs = 0;
	sc->broken = true;
}

/* ------------------------------------------------------------------ */
/* Transmit.                                                           */

/* Takes back every used tx buffer of q. 0 or -EIO (broken). */
static int vioif_tx_reclaim(struct vioif *sc, struct vioif_queue_pair *q)
{
	for (;;) {
		unsigned int s;
		uint32_t len;
		int r = viod_fe_take_slot(sc->fe, q->txq, sc->opts.queue_size, "vioif",
					  &s, &len);

		if (r == 0)
			return 0;
		if (r < 0)
			return vioif_broken(sc, r);
		if (!q->tx[s].busy)
			return vioif_broken(sc, viod_fe_error(sc->fe, -EIO,
				"vioif: tx queue %u: used entry for a slot not in flight",
				q->txq));
		q->tx[s].busy = false;
		q->tx_free[q->tx_nfree++] = s;
	}
}

/* Waits on queue idx; a timeout or a failure breaks the driver. */
static int vioif_wait(struct vioif *sc, unsigned int idx, const char *what)
{
	int r = viod_fe_wait(sc->fe, idx, sc->opts.timeout_ms);

	if (r == 0)
		return vioif_broken(sc, viod_fe_error(sc->fe, -ETIMEDOUT,
			"vioif: queue %u: %s within %d ms", idx, what, sc->opts.timeout_ms));
	return r < 0 ? vioif_broken(sc, r) : 0;
}

int vioif_send(struct vioif *sc, unsigned int qpi, const void *frame, size_t len)
{
	struct vioif_queue_pair *q;
	struct viod_vqd_buf d;
	struct viod_vqd *vqd;
	unsigned int s;
	int r;

	if (sc->broken || !sc->qp)
		return -EIO;
	if (qpi >= sc->npairs || !frame || len < VIOIF_ETH_HLEN || len > VIOIF_FRAME_MAX)
		return viod_fe_error(sc->fe, -EINVAL,
				     "vioif: a frame of %zu bytes on pair %u: expected %u..%u "
				     "bytes on pair 0..%u", len, qpi, VIOIF_ETH_HLEN,
				     VIOIF_FRAME_MAX, sc->npairs - 1);
	q = &sc->qp[qpi];
	r = vioif_tx_reclaim(sc, q);
	if (r < 0)
		return r;
	if (q->tx_nfree == 0)
		sc->st.tx_waits++;
	while (q->tx_nfree == 0) {
		r = vioif_wait(sc, q->txq, "the device took no frame");
		if (r == 0)
			r = vioif_tx_reclaim(sc, q);
		if (r < 0)
			return r;
	}
	vqd = viod_fe_vqd(sc->fe, q->txq);
	if (!vqd)
		return vioif_broken(sc, -EIO);
	s = q->tx_free[q->tx_nfree - 1];
	memset(q->tx[s].host, 0, sc->hdr_len);
	memcpy(q->tx[s].host + sc->hdr_len, frame, len);
	d = (struct viod_vqd_buf){ .gpa = q->tx[s].gpa, .len = sc->hdr_len + (uint32_t)len,
				   .writable = false };
	r = viod_vqd_add(vqd, &d, 1, (void *)(uintptr_t)(s + 1));
	if (r < 0)
		return vioif_broken(sc, viod_fe_error(sc->fe, -EIO,
			"vioif: tx queue %u: cannot post a frame (%s)", q->txq, strerror(-r)));
	q->tx_nfree--;
	q->tx[s].busy = true;
	q->tx_frames++;
	sc->st.tx_frames++;
	sc->st.tx_bytes += len;
	return vioif_kick(sc, q->txq);
}

int vioif_tx_drain(struct vioif *sc, int timeout_ms)
{
	int64_t deadline = vioif_now_ms() + timeout_ms;

	if (sc->broken || !sc->qp)
		return -EIO;
	for (unsigned int i = 0; i < sc->npairs; i++) {
		struct vioif_queue_pair *q = &sc->qp[i];

		for (;;) {
			int64_t left = deadline - vioif_now_ms();
			int r = vioif_tx_reclaim(sc, q);

			if (r < 0)
				return r;
			if (q->tx_nfree == sc->opts.queue_size)
				break;
			if (timeout_ms >= 0 && left <= 0)
				return vioif_broken(sc, viod_fe_error(sc->fe, -ETIMEDOUT,
					"vioif: tx queue %u: %u frames not taken within %d ms",
					q->txq, sc->opts.queue_size - q->tx_nfree, timeout_ms));
			r = viod_fe_wait(sc->fe, q->txq, timeout_ms < 0 ? -1 : (int)left);
			if (r < 0)
				return vioif_broken(sc, r);
		}
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Receive.                                                            */

/* Takes one used rx buffer of q: 1 with *b and *len, 0 if none, -EIO. */
static int vioif_rx_take(struct vioif *sc, struct vioif_queue_pair *q, unsigned int *b,
			 uint32_t *len)
{
	int r = viod_fe_take_slot(sc->fe, q->rxq, sc->opts.queue_size, "vioif", b, len);

	if (r <= 0)
		return r < 0 ? vioif_broken(sc, r) : 0;
	if (!q->rx[*b].busy)
		return vioif_broken(sc, viod_fe_error(sc->fe, -EIO,
			"vioif: rx queue %u: used entry for a buffer not posted", q->rxq));
	q->rx[*b].busy = false;
	q->rx_free[q->rx_nfree++] = *b;
	q->rx_posted--;
	sc->st.rx_buffers++;
	return 1;
}

/* Appends n bytes to the frame being gathered, if it still fits. */
static void vioif_gather(uint8_t *buf, size_t cap, size_t *total, const uint8_t *p,
			 size_t n)
{
	if (*total <= cap && n <= cap - *total)
		memcpy(buf + *total, p, n);
	*total += n;
}

/*
 * Takes one frame of q: 1 with it in buf[0 .. *len), 2 when a frame was
 * taken and dropped (oversize or runt), 0 if no used buffer waits,
 * -errno (broken).
 */
static int vioif_rx_frame(struct vioif *sc, struct vioif_queue_pair *q, uint8_t *buf,
			  size_t cap, size_t *len)
{
	unsigned int posted = q->rx_posted, nb = 1, b;
	size_t total = 0;
	uint32_t ulen;
	int r;

	r = vioif_rx_take(sc, q, &b, &ulen);
	if (r <= 0)
		return r;
	if (ulen < sc->hdr_len)
		return vioif_broken(sc, viod_fe_error(sc->fe, -EIO,
			"vioif: rx queue %u: used.len %u holds no %u-byte header",
			q->rxq, ulen, sc->hdr_len));
	if (vioif_has(sc, VIRTIO_NET_F_MRG_RXBUF)) {
		struct virtio_net_hdr_mrg_rxbuf h;

		memcpy(&h, q->rx[b].host, sizeof(h));
		nb = le16toh(h.num_buffers);
		if (nb < 1 || nb > posted)
			return vioif_broken(sc, viod_fe_error(sc->fe, -EIO,
				"vioif: rx queue %u: num_buffers %u, expected 1..%u "
				"(the buffers posted)", q->rxq, nb, posted));
	}
	vioif_gather(buf, cap, &total, q->rx[b].host + sc->hdr_len, ulen - sc->hdr_len);
	for (unsigned int k = 1; k < nb; k++) {
		while ((r = vioif_rx_take(sc, q, &b, &ulen)) == 0) {
			r = viod_fe_wait(sc->fe, q->rxq, sc->opts.timeout_ms);
			if (r == 0)
				return vioif_broken(sc, viod_fe_error(sc->fe, -EIO,
					"vioif: rx queue %u: num_buffers %u, but %u buffers "
					"came within %d ms", q->rxq, nb, k, sc->opts.timeout_ms));
			if (r < 0)
				return vioif_broken(sc, r);
		}
		if (r < 0)
			return r;
		vioif_gather(buf, cap, &total, q->rx[b].host, ulen);
	}
	r = vioif_rx_fill(sc, q);
	if (r < 0)
		return r;
	if (nb > 1)
		sc->st.rx_merged++;
	if (total > cap) {
		sc->st.rx_oversize++;
		return 2;
	}
	if (total < VIOIF_ETH_HLEN) {
		sc->st.rx_runt++;
		return 2;
	}
	*len = total;
	q->rx_frames++;
	sc->st.rx_frames++;
	sc->st.rx_bytes += total;
	return 1;
}

int vioif_recv(struct vioif *sc, void *buf, size_t cap, size_t *len, unsigned int *qp,
	       int timeout_ms)
{
	unsigned int idx[VIOIF_MAX_QUEUE_PAIRS];
	int64_t deadline = vioif_now_ms() + (timeout_ms > 0 ? timeout_ms : 0);

	if (sc->broken || !sc->qp)
		return -EIO;
	for (unsigned int i = 0; i < sc->npairs; i++)
		idx[i] = sc->qp[i].rxq;
	for (;;) {
		bool dropped = false;
		int64_t left;
		int r;

		for (unsigned int k = 0; k < sc->npairs; k++) {
			unsigned int i = (sc->next_rx + k) % sc->npairs;

			r = vioif_rx_frame(sc, &sc->qp[i], buf, cap, len);
			if (r < 0)
				return r;
			if (r == 1) {
				sc->next_rx = (i + 1) % sc->npairs;
				if (qp)
					*qp = i;
				return 1;
			}
			dropped |= r == 2;
		}
		if (dropped)
			continue;
		left = deadline - vioif_now_ms();
		if (timeout_ms >= 0 && left <= 0)
			return 0;
		r = viod_fe_wait_any(sc->fe, idx, sc->npairs, false,
				     timeout_ms < 0 ? -1 : (int)left);
		if (r < 0)
			return vioif_broken(sc, r);
		if (r == 0)
			return 0;
	}
}

/* ------------------------------------------------------------------ */
/* Test frames.                                                        */

/* Pattern byte at offset off of frame seq: a 32-bit mix of both. */
static uint8_t vioif_pattern(uint32_t seq, size_t off)
{
	uint32_t x = seq * 0x9E3779B1u ^ ((uint32_t)off + 1u) * 0x85EBCA77u;

	x ^= x >> 15;
	x *= 0x2C1B3C6Du;
	x ^= x >> 12;
	return (uint8_t)x;
}

bool vioif_frame_fill(uint8_t *frame, size_t len, const uint8_t dst[VIOIF_ETH_ALEN],
		      const uint8_t src[VIOIF_ETH_ALEN], uint32_t seq)
{
	uint16_t type = htobe16(VIOIF_TEST_ETHERTYPE), flen = htobe16((uint16_t)len);
	uint32_t magic = htobe32(VIOIF_TEST_MAGIC), bseq = htobe32(seq);

	if (len < VIOIF_FRAME_MIN || len > VIOIF_FRAME_MAX)
		return false;
	memcpy(frame, dst, VIOIF_ETH_ALEN);
	memcpy(frame + 6, src, VIOIF_ETH_ALEN);
	memcpy(frame + 12, &type, 2);
	memcpy(frame + 14, &magic, 4);
	memcpy(frame + 18, &bseq, 4);
	memcpy(frame + 22, &flen, 2);
	for (size_t i = VIOIF_TEST_HLEN; i < len; i++)
		frame[i] = vioif_pattern(seq, i);
	return true;
}

bool vioif_frame_check(const uint8_t *frame, size_t len, uint32_t *seq)
{
	uint16_t type, flen;
	uint32_t magic, s;

	if (len < VIOIF_TEST_HLEN)
		return false;
	memcpy(&type, frame + 12, 2);
	memcpy(&magic, frame + 14, 4);
	memcpy(&s, frame + 18, 4);
	memcpy(&flen, frame + 22, 2);
	if (be16toh(type) != VIOIF_TEST_ETHERTYPE || be32toh(magic) != VIOIF_TEST_MAGIC)
		return false;
	s = be32toh(s);
	if (seq)
		*seq = s;
	if (len < VIOIF_FRAME_MIN || len > VIOIF_FRAME_MAX || be16toh(flen) != len)
		return false;
	for (size_t i = VIOIF_TEST_HLEN; i < len; i++)
		if (frame[i] != vioif_pattern(s, i))
			return false;
	return true;
}

void vioif_frame_swap_macs(uint8_t *frame)
{
	uint8_t t[VIOIF_ETH_ALEN];

	memcpy(t, frame, VIOIF_ETH_ALEN);
	memmove(frame, frame + VIOIF_ETH_ALEN, VIOIF_ETH_ALEN);
	memcpy(frame + VIOIF_ETH_ALEN, t, VIOIF_ETH_ALEN);
}

static int vioif_hex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

bool vioif_parse_mac(const char *s, uint8_t mac[VIOIF_ETH_ALEN])
{
	uint8_t m[VIOIF_ETH_ALEN];

	if (!s)
		return false;
	for (unsigned int i = 0; i < VIOIF_ETH_ALEN; i++) {
		int hi = vioif_hex(s[0]), lo = hi < 0 ? -1 : vioif_hex(s[1]);

		if (lo < 0 || s[2] != (i + 1 < VIOIF_ETH_ALEN ? ':' : '\0'))
			return false;
		m[i] = (uint8_t)(hi << 4 | lo);
		s += 3;
	}
	memcpy(mac, m, sizeof(m));
	return true;
}
