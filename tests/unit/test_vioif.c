/*
 * vioif against a scripted fake network back-end. The fake speaks
 * vhost-user from a thread of this process, maps the front-end's
 * memory, takes every frame the driver transmits (and checks its
 * header: all zero, 12 bytes) and delivers the frames a test hands it
 * into the receive rings, split over as many buffers as they need.
 *
 * Scripted misbehaviour, what no real peer shows: used ids out of range
 * or completed twice, used.len above what was posted or short of the
 * header, num_buffers 0, above the buffers posted, or more than the
 * buffers delivered; a transmit ring never completed; config space that
 * fails the checks. Each must be an error that breaks the driver, never
 * a read outside a buffer (the sanitizer build runs this too).
 */
#include <endian.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/virtio_config.h>
#include <linux/virtio_net.h>
#include <linux/virtio_ring.h>

#include "guest/frontend.h"
#include "guest/vioif.h"
#include "fake-backend.h"
#include "support.h"
#include "tap.h"

#define FAKE_PAIRS 4u
#define FAKE_QSIZE 64u
#define FAKE_TX_KEEP 64u             /* transmitted frames remembered */
#define FAKE_MAX_BUFS 64u

enum tx_mode { TX_RIGHT, TX_HOLD, TX_LEN };

struct fake {
	/* Script: set before attach, or atomic. */
	uint64_t offered;              /* net feature bits */
	uint64_t protocol;             /* protocol features */
	struct virtio_net_config cfg;
	uint64_t queue_num;            /* GET_QUEUE_NUM (queue pairs) */
	atomic_int tx_mode;            /* enum tx_mode */

	struct test_fake fk;

	/* Findings (fake thread; read under fk.lock). */
	unsigned int tx_frames[TEST_FAKE_MAX_QUEUES];
	unsigned int tx_bad_hdr;       /* header not 12 zero bytes in front */
	unsigned int tx_chains_multi;  /* chains of more than one descriptor */
	unsigned int tx_intact;        /* test frames intact */
};

/* A transmitted frame: checked, counted, completed with used.len 0 (or
 * 1 when scripted so). */
static uint32_t fake_tx(struct test_fake *fk, unsigned int qi, const struct viod_vq_chain *c)
{
	static const uint8_t zero[VIOIF_HDR_MAX];
	struct fake *f = fk->opaque;
	uint8_t buf[VIOIF_HDR_MAX + VIOIF_FRAME_MAX];
	size_t n = viod_iov_to_buf(fk->elem->iov, c->out_num, 0, buf, sizeof(buf));

	if (c->out_num + c->in_num != 1)
		f->tx_chains_multi++;
	if (n < VIOIF_HDR_MAX || memcmp(buf, zero, VIOIF_HDR_MAX) != 0)
		f->tx_bad_hdr++;
	else if (vioif_frame_check(buf + VIOIF_HDR_MAX, n - VIOIF_HDR_MAX, NULL))
		f->tx_intact++;
	f->tx_frames[qi]++;
	return atomic_load(&f->tx_mode) == TX_LEN ? 1 : 0;
}

/* Transmit queues are served when kicked; receive queues by fake_rx. */
static void fake_kick(struct test_fake *fk, unsigned int qi)
{
	struct fake *f = fk->opaque;

	if (qi % 2 == 1 && atomic_load(&f->tx_mode) != TX_HOLD)
		test_fake_serve(fk, qi, fake_tx);
}

static const struct test_fake_ops fake_ops = {
	.kick = fake_kick,
};

/* 4 pairs, MAC, link up, MTU 1500, and what vioif must not take. */
static void fake_defaults(struct fake *f)
{
	static const uint8_t mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };

	f->offered = VIOIF_FEATURES_SUPPORTED | (1ull << VIRTIO_NET_F_CTRL_VQ) |
		     (1ull << VIRTIO_NET_F_CTRL_RX) | (1ull << VIRTIO_NET_F_GUEST_ANNOUNCE) |
		     (1ull << VIRTIO_NET_F_CSUM) | (1ull << VIRTIO_NET_F_GUEST_TSO4);
	f->protocol = (1ull << VU_PF_REPLY_ACK) | (1ull << VU_PF_CONFIG) |
		      (1ull << VU_PF_MQ);
	memcpy(f->cfg.mac, mac, sizeof(mac));
	f->cfg.status = htole16(VIRTIO_NET_S_LINK_UP);
	f->cfg.max_virtqueue_pairs = htole16(FAKE_PAIRS);
	f->cfg.mtu = htole16(1500);
	f->queue_num = FAKE_PAIRS;
}

/* A scripted delivery into an rx ring. */
struct rx_script {
	int claim;             /* num_buffers written, -1: the true count */
	int bufs;              /* buffers delivered at most, -1: all needed */
	uint32_t len_add;      /* added to the first used.len */
	int first_len;         /* first used.len instead, -1: the true one */
	int bogus_id;          /* id of the first used entry, -1: the true one */
	bool twice;            /* the first buffer completed twice */
};

static const struct rx_script rx_right = { -1, -1, 0, -1, -1, false };

/*
 * Delivers frame[0 .. len) behind a 12-byte header on rx ring qi, over as
 * many posted buffers as it needs, all published at once. Returns the
 * buffers used, or -1 if the ring had too few.
 */
static int fake_rx(struct fake *f, unsigned int qi, const uint8_t *frame, size_t len,
		   const struct rx_script *s)
{
	struct test_fake *fk = &f->fk;
	struct viod_vq *vq;
	uint8_t *lin = malloc(VIOIF_HDR_MAX + len);
	uint8_t *base[FAKE_MAX_BUFS];
	uint16_t heads[FAKE_MAX_BUFS];
	uint32_t lens[FAKE_MAX_BUFS];
	struct virtio_net_hdr_mrg_rxbuf h = { 0 };
	size_t off = 0, total = VIOIF_HDR_MAX + len;
	unsigned int n = 0;

	if (!lin)
		return -1;
	pthread_mutex_lock(&fk->lock);
	vq = &fk->q[qi].vq;
	/* vioif posts each buffer as one device-writable descriptor. */
	while (off < total && n < FAKE_MAX_BUFS) {
		struct viod_vq_chain c;

		if (viod_vq_pop_iov(vq, &c, fk->elem->iov, VIOD_VQ_MAX_IOV) <= 0)
			break;
		heads[n] = c.head;
		base[n] = fk->elem->iov[0].iov_base;
		lens[n] = (uint32_t)(total - off < c.in_len ? total - off : c.in_len);
		off += lens[n++];
	}
	if (off < total) {
		viod_vq_rewind(vq, (uint16_t)n);
		pthread_mutex_unlock(&fk->lock);
		free(lin);
		return -1;
	}
	h.num_buffers = htole16((uint16_t)(s->claim >= 0 ? (unsigned int)s->claim : n));
	memcpy(lin, &h, sizeof(h));
	memcpy(lin + VIOIF_HDR_MAX, frame, len);
	off = 0;
	for (unsigned int i = 0; i < n; i++) {
		memcpy(base[i], lin + off, lens[i]);
		off += lens[i];
	}
	if (s->bufs >= 0 && (unsigned int)s->bufs < n) {
		viod_vq_rewind(vq, (uint16_t)(n - (unsigned int)s->bufs));
		n = (unsigned int)s->bufs;
	}
	for (unsigned int i = 0; i < n; i++) {
		uint32_t l = lens[i];
		uint32_t id = heads[i];

		if (i == 0) {
			l = s->first_len >= 0 ? (uint32_t)s->first_len : l + s->len_add;
			if (s->bogus_id >= 0)
				id = (uint32_t)s->bogus_id;
		}
		viod_vq_fill(vq, (uint16_t)id, l, (uint16_t)i);
	}
	if (s->twice) {
		viod_vq_fill(vq, heads[0], lens[0], (uint16_t)n);
		n++;
	}
	viod_vq_flush(vq, (uint16_t)n);
	test_fake_call(fk, qi);
	pthread_mutex_unlock(&fk->lock);
	free(lin);
	return (int)n;
}

/* Starts the fake (f scripted already), connects fe and attaches vioif
 * with o (NULL: the defaults with FAKE_QSIZE entries, 300 ms timeout). */
static int attach(struct fake *f, struct viod_fe *fe, struct vioif *sc, const char *tag,
		  const struct vioif_opts *o)
{
	struct vioif_opts vo;
	char path[108];
	int r;

	memset(sc, 0, sizeof(*sc));
	f->fk.features = TEST_FAKE_FEATURES | f->offered;
	f->fk.protocol_features = f->protocol;
	f->fk.queue_num = f->queue_num;
	f->fk.nqueues = TEST_FAKE_MAX_QUEUES;
	f->fk.config = &f->cfg;
	f->fk.config_size = sizeof(f->cfg);
	f->fk.ops = &fake_ops;
	f->fk.opaque = f;
	snprintf(path, sizeof(path), "/tmp/test-vioif-%d-%s.sock", (int)getpid(), tag);
	r = test_fake_connect(&f->fk, path, fe, 16u << 20, 2);
	if (r < 0)
		return r;
	if (!o) {
		vioif_opts_init(&vo);
		vo.queue_size = FAKE_QSIZE;
		vo.timeout_ms = 300;
		o = &vo;
	}
	return vioif_attach(sc, fe, o);
}

static void finish(struct fake *f, struct viod_fe *fe, struct vioif *sc)
{
	vioif_detach(sc);
	viod_fe_disconnect(fe);
	test_fake_stop(&f->fk);
}

static const uint8_t mac_a[6] = { 0x02, 0, 0, 0, 0, 0x0a };
static const uint8_t mac_b[6] = { 0x02, 0, 0, 0, 0, 0x0b };

static void test_frames(void)
{
	uint8_t f[VIOIF_FRAME_MAX], mac[6];
	uint32_t seq = 0;

	ok(vioif_frame_fill(f, 60, mac_a, mac_b, 7), "fill 60 bytes");
	ok(vioif_frame_check(f, 60, &seq) && seq == 7, "intact, seq 7");
	ok(!vioif_frame_check(f, 59, NULL), "one byte short: not intact");
	f[40] ^= 1;
	ok(!vioif_frame_check(f, 60, NULL), "a pattern byte flipped: not intact");
	ok(vioif_frame_fill(f, VIOIF_FRAME_MAX, mac_a, mac_b, 0xfffffffeu) &&
	   vioif_frame_check(f, VIOIF_FRAME_MAX, &seq) && seq == 0xfffffffeu,
	   "1514 bytes, seq 2^32-2");
	vioif_frame_swap_macs(f);
	ok(memcmp(f, mac_b, 6) == 0 && memcmp(f + 6, mac_a, 6) == 0 &&
	   vioif_frame_check(f, VIOIF_FRAME_MAX, NULL), "MACs swapped, still intact");
	f[12] = 0x08;
	ok(!vioif_frame_check(f, VIOIF_FRAME_MAX, NULL), "another ethertype: not ours");
	ok(!vioif_frame_fill(f, 59, mac_a, mac_b, 0) &&
	   !vioif_frame_fill(f, VIOIF_FRAME_MAX + 1, mac_a, mac_b, 0), "sizes 60..1514 only");
	ok(vioif_parse_mac("02:aB:00:ff:10:01", mac) && mac[1] == 0xab && mac[5] == 1,
	   "parse a MAC");
	ok(!vioif_parse_mac("02:ab:00:ff:10", mac) && !vioif_parse_mac("02:ab:00:ff:10:011", mac) &&
	   !vioif_parse_mac("02-ab-00-ff-10-01", mac) && !vioif_parse_mac("", mac),
	   "malformed MACs refused");
	is(vioif_hdr_len(1ull << VIRTIO_F_VERSION_1), 12, "header 12 bytes with VERSION_1");
	is(vioif_hdr_len(1ull << VIRTIO_NET_F_MRG_RXBUF), 12, "12 with MRG_RXBUF alone");
	is(vioif_hdr_len(0), 10, "10 for a legacy device without either");
}

/* Negotiation, config, transmit and receive on 4 pairs. */
static void test_io(void)
{
	struct fake f = { 0 };
	struct viod_fe fe;
	struct vioif_opts o;
	struct vioif sc;
	uint8_t frame[VIOIF_FRAME_MAX], buf[2048];
	unsigned int qp = 99, total = 0;
	size_t len = 0;
	int r;

	fake_defaults(&f);
	vioif_opts_init(&o);
	o.nqueue_pairs = 8;
	o.queue_size = FAKE_QSIZE;
	o.timeout_ms = 300;
	r = attach(&f, &fe, &sc, "io", &o);
	if (!ok(r == 0, "attach")) {
		printf("# %s\n", viod_fe_strerror(&fe));
		finish(&f, &fe, &sc);
		return;
	}
	ok(sc.features >> VIRTIO_NET_F_MRG_RXBUF & 1, "MRG_RXBUF negotiated");
	ok(!(fe.features_acked & ((1ull << VIRTIO_NET_F_CTRL_VQ) | (1ull << VIRTIO_NET_F_CTRL_RX) |
				  (1ull << VIRTIO_NET_F_GUEST_ANNOUNCE) |
				  (1ull << VIRTIO_NET_F_CSUM) | (1ull << VIRTIO_NET_F_GUEST_TSO4))),
	   "no CTRL_VQ, CTRL_RX, GUEST_ANNOUNCE, CSUM or GUEST_TSO4");
	is(sc.hdr_len, 12, "12-byte header");
	is(sc.npairs, FAKE_PAIRS, "8 pairs asked, the device's 4 used");
	ok(sc.cfg.has_mac && memcmp(sc.cfg.mac, f.cfg.mac, 6) == 0, "MAC read");
	ok(sc.cfg.has_status && (sc.cfg.status & VIRTIO_NET_S_LINK_UP), "link up");
	ok(sc.cfg.has_mtu && sc.cfg.mtu == 1500, "MTU 1500");

	for (uint32_t seq = 0; seq < 200; seq++) {
		size_t flen = 60 + seq * 7;

		vioif_frame_fill(frame, flen, mac_a, mac_b, seq);
		r = vioif_send(&sc, seq % FAKE_PAIRS, frame, flen);
		if (r < 0)
			break;
	}
	is(r, 0, "send 200 frames over 4 pairs");
	is(vioif_tx_drain(&sc, 1000), 0, "every tx slot back");
	pthread_mutex_lock(&f.fk.lock);
	for (unsigned int i = 0; i < FAKE_PAIRS; i++)
		total += f.tx_frames[2 * i + 1];
	is(total, 200, "the device took 200 frames");
	is(f.tx_frames[7], 50, "50 on pair 3 (tx queue 7)");
	is(f.tx_frames[0] + f.tx_frames[2], 0, "none on rx queues");
	is(f.tx_bad_hdr, 0, "each behind 12 zero header bytes");
	is(f.tx_chains_multi, 0, "header and frame in one descriptor");
	is(f.tx_intact, 200, "all 200 intact on the device side");
	pthread_mutex_unlock(&f.fk.lock);
	is(sc.st.tx_waits, 0, "no wait for a slot (the device keeps up)");

	is(vioif_send(&sc, 4, frame, 60), -EINVAL, "pair 4 of 4: -EINVAL");
	is(vioif_send(&sc, 0, frame, 13), -EINVAL, "13 bytes: -EINVAL");
	is(vioif_send(&sc, 0, frame, VIOIF_FRAME_MAX + 1), -EINVAL, "1515 bytes: -EINVAL");
	ok(!sc.broken, "refusals leave the driver usable");

	is(vioif_recv(&sc, buf, sizeof(buf), &len, &qp, 0), 0, "nothing received yet");
	vioif_frame_fill(frame, 1000, mac_b, mac_a, 42);
	is(fake_rx(&f, 6, frame, 1000, &rx_right), 1, "the device delivers 1000 bytes on pair 3");
	is(vioif_recv(&sc, buf, sizeof(buf), &len, &qp, 1000), 1, "received");
	ok(len == 1000 && qp == 3 && memcmp(buf, frame, 1000) == 0, "intact, from pair 3");

	/* Round robin: one frame on each pair. */
	for (unsigned int i = 0; i < FAKE_PAIRS; i++) {
		vioif_frame_fill(frame, 100, mac_b, mac_a, i);
		fake_rx(&f, 2 * i, frame, 100, &rx_right);
	}
	total = 0;
	for (unsigned int i = 0; i < FAKE_PAIRS; i++) {
		uint32_t seq;

		if (vioif_recv(&sc, buf, sizeof(buf), &len, &qp, 1000) == 1 &&
		    vioif_frame_check(buf, len, &seq) && seq == qp)
			total |= 1u << qp;
	}
	is(total, 0xf, "one frame from each pair");

	/* Dropped, not returned: too long for the caller, too short for
	 * an Ethernet header. The driver goes on. */
	vioif_frame_fill(frame, 600, mac_b, mac_a, 1);
	fake_rx(&f, 0, frame, 600, &rx_right);
	is(vioif_recv(&sc, buf, 500, &len, NULL, 100), 0, "600 bytes into 500: dropped");
	is(sc.st.rx_oversize, 1, "counted oversize");
	fake_rx(&f, 0, frame, 10, &rx_right);
	is(vioif_recv(&sc, buf, sizeof(buf), &len, NULL, 100), 0, "10 bytes: dropped");
	is(sc.st.rx_runt, 1, "counted runt");
	ok(!sc.broken, "still usable");

	/* Refills: many more frames than the ring holds. */
	total = 0;
	for (uint32_t seq = 0; seq < 4 * FAKE_QSIZE; seq++) {
		vioif_frame_fill(frame, 60, mac_b, mac_a, seq);
		if (fake_rx(&f, 2, frame, 60, &rx_right) == 1 &&
		    vioif_recv(&sc, buf, sizeof(buf), &len, &qp, 1000) == 1 &&
		    qp == 1 && vioif_frame_check(buf, len, NULL))
			total++;
	}
	is(total, 4 * FAKE_QSIZE, "4 ring's worth of frames through pair 1");
	is(sc.qp[1].rx_posted, FAKE_QSIZE, "every buffer posted again");
	finish(&f, &fe, &sc);
}

/* Frames over several buffers; the header's num_buffers ignored
 * without MRG_RXBUF. */
static void test_merge(void)
{
	struct fake f = { 0 };
	struct viod_fe fe;
	struct vioif_opts o;
	struct vioif sc;
	uint8_t frame[VIOIF_FRAME_MAX], buf[2048];
	struct rx_script lie = rx_right;
	size_t len = 0;
	int r;

	fake_defaults(&f);
	vioif_opts_init(&o);
	o.queue_size = FAKE_QSIZE;
	o.rx_buf_size = 128;
	o.timeout_ms = 300;
	r = attach(&f, &fe, &sc, "mrg", &o);
	ok(r == 0, "attach with 128-byte rx buffers");
	vioif_frame_fill(frame, VIOIF_FRAME_MAX, mac_b, mac_a, 5);
	is(fake_rx(&f, 0, frame, VIOIF_FRAME_MAX, &rx_right), 12,
	   "the device spreads 12 + 1514 bytes over 12 buffers");
	is(vioif_recv(&sc, buf, sizeof(buf), &len, NULL, 1000), 1, "received");
	ok(len == VIOIF_FRAME_MAX && vioif_frame_check(buf, len, NULL), "gathered intact");
	is(sc.st.rx_merged, 1, "counted merged");
	is(sc.st.rx_buffers, 12, "12 buffers taken");
	finish(&f, &fe, &sc);

	memset(&f, 0, sizeof(f));
	fake_defaults(&f);
	o.rx_buf_size = 1000;
	o.no_mrg_rxbuf = true;
	r = attach(&f, &fe, &sc, "nomrg-small", &o);
	is(r, -EINVAL, "without MRG_RXBUF, 1000-byte rx buffers refused");
	finish(&f, &fe, &sc);

	memset(&f, 0, sizeof(f));
	fake_defaults(&f);
	f.cfg.mtu = htole16(9000);
	o.rx_buf_size = VIOIF_DEFAULT_RX_BUF_SIZE;
	r = attach(&f, &fe, &sc, "nomrg-mtu", &o);
	is(r, -EINVAL, "without MRG_RXBUF, mtu 9000 and 2 KiB rx buffers refused");
	finish(&f, &fe, &sc);

	memset(&f, 0, sizeof(f));
	fake_defaults(&f);
	r = attach(&f, &fe, &sc, "nomrg", &o);
	ok(r == 0 && !(sc.features >> VIRTIO_NET_F_MRG_RXBUF & 1),
	   "attach without MRG_RXBUF");
	lie.claim = 77;
	fake_rx(&f, 0, frame, VIOIF_FRAME_MAX, &lie);
	is(vioif_recv(&sc, buf, sizeof(buf), &len, NULL, 1000), 1,
	   "num_buffers 77 not read without MRG_RXBUF");
	ok(len == VIOIF_FRAME_MAX && vioif_frame_check(buf, len, NULL), "intact");
	finish(&f, &fe, &sc);
}

/* Used rx entries the driver must not trust. */
static void test_bad_rx(void)
{
	static const struct {
		const char *what;
		struct rx_script s;
		uint32_t rx_buf_size;
		int want_first;    /* recv's result for the first frame */
	} cases[] = {
		{ "used id out of range", { -1, -1, 0, -1, FAKE_QSIZE + 3, false }, 2048, -EIO },
		{ "used id 65535", { -1, -1, 0, -1, 65535, false }, 2048, -EIO },
		{ "used.len above the buffer posted", { -1, -1, 2048, -1, -1, false }, 2048, -EIO },
		{ "used.len short of the header", { -1, -1, 0, 5, -1, false }, 2048, -EIO },
		{ "num_buffers 0", { 0, -1, 0, -1, -1, false }, 2048, -EIO },
		{ "num_buffers above the buffers posted", { 1000, -1, 0, -1, -1, false }, 2048, -EIO },
		{ "num_buffers 3, one buffer delivered", { 3, 1, 0, -1, -1, false }, 2048, -EIO },
		{ "num_buffers 12, 11 delivered", { 12, 11, 0, -1, -1, false }, 128, -EIO },
		/* The second completion finds the buffer posted again, its
		 * header zeroed: num_buffers 0. */
		{ "a buffer completed twice", { -1, -1, 0, -1, -1, true }, 2048, 1 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct fake f = { 0 };
		struct viod_fe fe;
		struct vioif_opts o;
		struct vioif sc;
		uint8_t frame[VIOIF_FRAME_MAX], buf[2048];
		size_t len = 0;
		char tag[16];
		int r;

		fake_defaults(&f);
		vioif_opts_init(&o);
		o.queue_size = FAKE_QSIZE;
		o.rx_buf_size = cases[i].rx_buf_size;
		o.timeout_ms = 200;
		snprintf(tag, sizeof(tag), "rx%zu", i);
		r = attach(&f, &fe, &sc, tag, &o);
		if (!ok(r == 0, "%s: attach", cases[i].what)) {
			finish(&f, &fe, &sc);
			continue;
		}
		vioif_frame_fill(frame, VIOIF_FRAME_MAX, mac_b, mac_a, 1);
		memset(buf, 0xee, sizeof(buf));
		fake_rx(&f, 0, frame, VIOIF_FRAME_MAX, &cases[i].s);
		r = vioif_recv(&sc, buf, sizeof(buf), &len, NULL, 1000);
		if (cases[i].want_first == 1) {
			ok(r == 1 && vioif_frame_check(buf, len, NULL), "%s: the first is a frame",
			   cases[i].what);
			r = vioif_recv(&sc, buf, sizeof(buf), &len, NULL, 1000);
		}
		is(r, -EIO, cases[i].what);
		printf("# %s\n", viod_fe_strerror(&fe));
		ok(sc.broken, "%s: driver broken", cases[i].what);
		is(vioif_recv(&sc, buf, sizeof(buf), &len, NULL, 0), -EIO, "then -EIO");
		is(vioif_send(&sc, 0, frame, 60), -EIO, "sending too");
		finish(&f, &fe, &sc);
	}
}

/* Transmit completions the driver must not trust; a silent device. */
static void test_bad_tx(void)
{
	struct fake f = { 0 };
	struct viod_fe fe;
	struct vioif sc;
	uint8_t frame[VIOIF_FRAME_MAX];
	int r = 0;

	fake_defaults(&f);
	atomic_store(&f.tx_mode, TX_LEN);
	ok(attach(&f, &fe, &sc, "txlen", NULL) == 0, "attach (tx used.len 1)");
	vioif_frame_fill(frame, 60, mac_a, mac_b, 0);
	is(vioif_send(&sc, 0, frame, 60), 0, "first frame posted");
	is(vioif_tx_drain(&sc, 1000), -EIO, "used.len 1 for a device-readable buffer: -EIO");
	ok(sc.broken, "driver broken");
	finish(&f, &fe, &sc);

	memset(&f, 0, sizeof(f));
	fake_defaults(&f);
	atomic_store(&f.tx_mode, TX_HOLD);
	ok(attach(&f, &fe, &sc, "txhold", NULL) == 0, "attach (tx never completed)");
	for (unsigned int i = 0; i < FAKE_QSIZE && r == 0; i++)
		r = vioif_send(&sc, 0, frame, 60);
	is(r, 0, "a ring's worth of frames posted");
	is(vioif_send(&sc, 0, frame, 60), -ETIMEDOUT, "one more: -ETIMEDOUT");
	ok(sc.broken && sc.st.tx_waits == 1, "driver broken after one wait");
	finish(&f, &fe, &sc);
}

/* Config space and queue counts. */
static void test_config(void)
{
	static const struct {
		const char *what;
		int field;
		uint16_t value;
	} bad[] = {
		{ "max_virtqueue_pairs 0", 0, 0 },
		{ "max_virtqueue_pairs 0x8001", 0, 0x8001 },
		{ "mtu 67", 1, 67 },
	};
	struct fake f = { 0 };
	struct viod_fe fe;
	struct vioif_opts o;
	struct vioif sc;
	int r;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char tag[16];

		memset(&f, 0, sizeof(f));
		fake_defaults(&f);
		if (bad[i].field == 0)
			f.cfg.max_virtqueue_pairs = htole16(bad[i].value);
		else
			f.cfg.mtu = htole16(bad[i].value);
		snprintf(tag, sizeof(tag), "cfg%zu", i);
		r = attach(&f, &fe, &sc, tag, NULL);
		is(r, -EPROTO, bad[i].what);
		ok(sc.broken, "%s: driver broken", bad[i].what);
		finish(&f, &fe, &sc);
	}

	vioif_opts_init(&o);
	o.queue_size = FAKE_QSIZE;
	o.nqueue_pairs = 4;
	memset(&f, 0, sizeof(f));
	fake_defaults(&f);
	f.queue_num = 2;
	r = attach(&f, &fe, &sc, "qn", &o);
	ok(r == 0 && sc.npairs == 2, "GET_QUEUE_NUM 2 (pairs): 2 pairs used");
	finish(&f, &fe, &sc);

	memset(&f, 0, sizeof(f));
	fake_defaults(&f);
	f.offered &= ~(1ull << VIRTIO_NET_F_MQ);
	r = attach(&f, &fe, &sc, "nomq", &o);
	ok(r == 0 && sc.npairs == 1, "without MQ: 1 pair");
	finish(&f, &fe, &sc);

	/* DPDK's vhost: no CONFIG protocol feature, GET_QUEUE_NUM only. */
	memset(&f, 0, sizeof(f));
	fake_defaults(&f);
	f.protocol &= ~(1ull << VU_PF_CONFIG);
	f.cfg.mtu = 0;           /* never read */
	r = attach(&f, &fe, &sc, "nocfg", &o);
	ok(r == 0 && !sc.cfg.readable && !sc.cfg.has_mac && !sc.cfg.has_mtu,
	   "without CONFIG: attached, nothing read");
	is(sc.npairs, 4, "4 pairs from GET_QUEUE_NUM");
	finish(&f, &fe, &sc);

	memset(&f, 0, sizeof(f));
	fake_defaults(&f);
	o.nqueue_pairs = 0;
	r = attach(&f, &fe, &sc, "opts", &o);
	is(r, -EINVAL, "0 queue pairs: -EINVAL");
	finish(&f, &fe, &sc);
}

int main(void)
{
	int fds = test_count_fds();

	test_frames();
	test_io();
	test_merge();
	test_bad_rx();
	test_bad_tx();
	test_config();
	is(test_count_fds(), fds, "no fd leaked");
	return tap_done();
}
