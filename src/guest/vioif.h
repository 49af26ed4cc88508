/*
 * vioif: reference driver for the virtio network device (virtio 1.2, 5.1:
 * device id 1), after NetBSD's vioif(4). Queue pair i is receiveq 2i and
 * transmitq 2i+1 (5.1.2). The control queue is not used: under
 * vhost-user it stays in the VMM, and the back-end sees MQ without
 * CTRL_VQ (QEMU passes it so), so the driver never negotiates CTRL_VQ
 * nor anything that needs it (CTRL_RX, GUEST_ANNOUNCE, ...).
 *
 * Features: VERSION_1 (the front-end requires it), MRG_RXBUF (unless
 * turned off), MQ, and MAC, STATUS, MTU as information only. No
 * offloads: no CSUM, no GSO, no GUEST_TSO, so frames are at most 1514
 * bytes (without FCS) either way. The header (struct virtio_net_hdr_v1,
 * <linux/virtio_net.h>) is 12 bytes with VERSION_1 or MRG_RXBUF, else 10
 * (5.1.6); with VERSION_1 any framing is allowed (2.6.4), so each buffer
 * is one descriptor holding the header and the frame after it.
 *
 * RX: every ring entry holds a posted device-writable buffer of
 * rx_buf_size bytes, re-posted as soon as its frame is taken. Without
 * MRG_RXBUF a buffer must hold the header and a whole 1514-byte frame
 * (5.1.6.3.1); with it, a frame spans num_buffers used buffers, the
 * header in the first. TX: a slot per ring entry, header (all zero) and
 * frame copied in; used tx buffers are reclaimed before each send and
 * waited for when every slot is in flight.
 *
 * Trust: nothing the device writes is believed. The ring code checks
 * used.id (< num, an outstanding head) and used.len (<= the bytes
 * posted); the driver checks that the head is one of its posted buffers,
 * that the first buffer holds the header, and with MRG_RXBUF that
 * num_buffers is 1 .. the buffers posted and that that many arrive
 * within timeout_ms. Without MRG_RXBUF num_buffers is not read: the
 * spec has the device write 1, DPDK's vhost leaves it as the driver
 * wrote it, and one buffer per frame is the rule anyway. Config space
 * is read once at attach, only with the CONFIG protocol feature, and
 * checked (max_virtqueue_pairs 1..0x8000, mtu >= 68, 5.1.4.1; without
 * MRG_RXBUF an rx buffer must hold a frame of mtu bytes, 5.1.4.2). A frame
 * longer than the caller's buffer or shorter than an Ethernet header is
 * dropped and counted. Any failure that may leave buffers in the
 * device's hands breaks the driver: -EIO from then on.
 *
 * One struct vioif drives a connected struct viod_fe that it negotiates
 * itself. Not thread-safe: one thread drives all queue pairs. Errors are
 * -errno with the reason in viod_fe_strerror(fe).
 */
#ifndef VIOD_GUEST_VIOIF_H
#define VIOD_GUEST_VIOIF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <linux/virtio_net.h>

#include "guest/frontend.h"

#define VIOIF_VIRTIO_ID 1u

/* Device features the driver can negotiate. */
#define VIOIF_FEATURES_SUPPORTED                                              \
	((1ull << VIRTIO_NET_F_MRG_RXBUF) | (1ull << VIRTIO_NET_F_MQ) |       \
	 (1ull << VIRTIO_NET_F_MAC) | (1ull << VIRTIO_NET_F_STATUS) |         \
	 (1ull << VIRTIO_NET_F_MTU))

/* viod_fe_wait_any watches at most VIOD_FE_WAIT_MAX rx queues at once. */
#define VIOIF_MAX_QUEUE_PAIRS VIOD_FE_WAIT_MAX
#define VIOIF_ETH_ALEN 6u
#define VIOIF_ETH_HLEN 14u
#define VIOIF_FRAME_MIN 60u          /* ETH_ZLEN: what the test frames use */
#define VIOIF_FRAME_MAX 1514u        /* ETH_FRAME_LEN, no FCS, no offloads */
#define VIOIF_HDR_MAX 12u
#define VIOIF_DEFAULT_QUEUE_SIZE 256u
#define VIOIF_DEFAULT_RX_BUF_SIZE 2048u
#define VIOIF_MAX_RX_BUF_SIZE 65536u
#define VIOIF_DEFAULT_TIMEOUT_MS 10000

struct vioif_opts {
	unsigned int nqueue_pairs; /* wanted, 1..VIOIF_MAX_QUEUE_PAIRS; fewer
				    * if the device has fewer (1 without MQ) */
	uint16_t queue_size;       /* ring entries (power of two, >= 2) */
	uint32_t rx_buf_size;      /* bytes per rx buffer, header included:
				    * > the header with MRG_RXBUF, else at
				    * least header + VIOIF_FRAME_MAX */
	bool no_mrg_rxbuf;         /* do not negotiate MRG_RXBUF */
	uint64_t features;         /* device features to accept if offered,
				    * within VIOIF_FEATURES_SUPPORTED */
	int timeout_ms;            /* per wait for tx slots and for the rest
				    * of a merged frame; -1: forever */
};

/* What config space said at attach (fields valid only when has_*). */
struct vioif_config {
	bool readable;             /* CONFIG protocol feature negotiated */
	bool has_mac, has_status, has_mtu, has_max_pairs;
	uint8_t mac[VIOIF_ETH_ALEN];
	uint16_t status;           /* VIRTIO_NET_S_LINK_UP, ... as read */
	uint16_t mtu;
	uint16_t max_pairs;        /* max_virtqueue_pairs */
};

struct vioif_stats {
	uint64_t tx_frames, tx_bytes;  /* frames posted, frame bytes */
	uint64_t tx_waits;             /* sends that waited for a free slot */
	uint64_t rx_frames, rx_bytes;  /* frames returned to the caller */
	uint64_t rx_buffers;           /* used rx buffers taken */
	uint64_t rx_merged;            /* frames spanning more than one buffer */
	uint64_t rx_oversize;          /* dropped: longer than the caller's buffer */
	uint64_t rx_runt;              /* dropped: shorter than an Ethernet header */
};

struct vioif_buf {
	uint8_t *host;
	uint64_t gpa;
	bool busy;                 /* rx: posted; tx: in flight */
};

struct vioif_queue_pair {
	unsigned int rxq, txq;     /* virtqueue indices 2i, 2i+1 */
	struct vioif_buf *rx;      /* queue_size rx buffers */
	unsigned int *rx_free;     /* stack of buffers not posted */
	unsigned int rx_nfree;
	unsigned int rx_posted;
	struct vioif_buf *tx;      /* queue_size tx slots */
	unsigned int *tx_free;     /* stack of free slots */
	unsigned int tx_nfree;
	uint64_t rx_frames, tx_frames;
};

struct vioif {
	struct viod_fe *fe;
	struct vioif_opts opts;
	struct vioif_config cfg;
	uint64_t features;         /* device features negotiated */
	uint32_t hdr_len;          /* 10 or 12 */
	unsigned int npairs;       /* queue pairs in use */
	unsigned int next_rx;      /* round robin over the pairs */
	struct vioif_queue_pair *qp;
	bool broken;
	struct vioif_stats st;
};

/* Fills *o with the defaults: 1 pair of 256 entries, 2 KiB rx buffers. */
void vioif_opts_init(struct vioif_opts *o);

/* The header length for negotiated features (virtio 1.2, 5.1.6). */
uint32_t vioif_hdr_len(uint64_t features);

/*
 * Negotiates, reads and checks config space (when it can), sets up the
 * queue pairs, posts every rx buffer, sets DRIVER_OK. fe must be
 * connected and not yet negotiated. 0 or -errno: -EINVAL bad options,
 * -EPROTO config space that fails the checks, -ENOMEM not enough guest
 * memory.
 */
int vioif_attach(struct vioif *sc, struct viod_fe *fe, const struct vioif_opts *opts);

/* Frees host-side bookkeeping; queues go with viod_fe_disconnect(). */
void vioif_detach(struct vioif *sc);

/*
 * Sends one frame (VIOIF_ETH_HLEN..VIOIF_FRAME_MAX bytes, without FCS)
 * on queue pair qp (< npairs): reclaims used tx buffers, waits up to
 * timeout_ms for a free slot if all are in flight, copies header and
 * frame into the slot and kicks if the device wants it. 0, -EINVAL
 * (nothing sent, the driver stays usable), -ETIMEDOUT or -EIO (broken).
 */
int vioif_send(struct vioif *sc, unsigned int qp, const void *frame, size_t len);

/*
 * Waits up to timeout_ms (-1: forever) for every tx buffer in flight to
 * come back. 0, -ETIMEDOUT or -EIO (broken).
 */
int vioif_tx_drain(struct vioif *sc, int timeout_ms);

/*
 * Receives one frame from any queue pair (taken round robin), waiting
 * up to timeout_ms (-1: forever; 0: no wait): 1 with the frame in
 * buf[0 .. *len) and its pair in *qp (qp may be NULL), 0 on timeout,
 * -errno (the driver is then broken). Frames too long for cap or shorter
 * than VIOIF_ETH_HLEN are dropped and counted, not returned.
 */
int vioif_recv(struct vioif *sc, void *buf, size_t cap, size_t *len,
	       unsigned int *qp, int timeout_ms);

/*
 * Test frames, shared by every net test: Ethernet dst, src, ethertype
 * 0x88b5 (IEEE 802 local experimental), then VIOIF_TEST_MAGIC, the
 * sequence number, the frame length (big-endian 32, 32, 16 bits) and
 * pattern bytes derived from (seq, offset) up to the end of the frame.
 * Lengths VIOIF_FRAME_MIN..VIOIF_FRAME_MAX.
 */
#define VIOIF_TEST_ETHERTYPE 0x88b5u
#define VIOIF_TEST_MAGIC 0x76696f66u /* "viof" */
#define VIOIF_TEST_HLEN (VIOIF_ETH_HLEN + 10u)

/* Fills frame[0 .. len) (len within VIOIF_FRAME_MIN..MAX); false if not. */
bool vioif_frame_fill(uint8_t *frame, size_t len, const uint8_t dst[VIOIF_ETH_ALEN],
		      const uint8_t src[VIOIF_ETH_ALEN], uint32_t seq);

/*
 * Whether frame[0 .. len) is an intact test frame: ethertype, magic,
 * the length it carries equals len, every pattern byte right. The MACs
 * are not checked (a peer may swap them). *seq (may be NULL) gets the
 * sequence number when the header is readable.
 */
bool vioif_frame_check(const uint8_t *frame, size_t len, uint32_t *seq);

/* Swaps the destination and source MACs of a frame (>= VIOIF_ETH_HLEN). */
void vioif_frame_swap_macs(uint8_t *frame);

/* "02:00:00:00:00:01" into mac; false if malformed. */
bool vioif_parse_mac(const char *s, uint8_t mac[VIOIF_ETH_ALEN]);

#endif
