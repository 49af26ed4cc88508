/*
 * virtio network device (virtio 1.2, 5.1): private definitions shared by
 * net.c (options, config space, store, the queue handlers), net-switch.c
 * (the built-in learning switch) and net-tap.c (the Linux tap back end).
 *
 * Queues: data queues only, receiveq of pair i = 2i, transmitq = 2i + 1
 * (vhost-user keeps the control queue in the front-end). Both queues of a
 * pair are served by the same worker (pair i % workers), which also owns
 * the pair's back-end state (its tap queue).
 *
 * Threads: options, config and the store belong to the control thread;
 * counters are per queue, written only by the queue's worker and summed by
 * the store. The switch is shared by the workers of every port on it; see
 * net-switch.c for its rules.
 */
#ifndef VIOD_DEVICES_NET_H
#define VIOD_DEVICES_NET_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <linux/virtio_net.h>

#include "vhost/device.h"

#define NET_MAX_PAIRS 16u
#define NET_MAX_QUEUES (2u * NET_MAX_PAIRS)
/* Frames handled per handler call (bounded work). */
#define NET_BUDGET 128u
/* The largest header the device reads or writes (virtio 1.2, 5.1.6). */
#define NET_HDR_MAX sizeof(struct virtio_net_hdr_mrg_rxbuf)
#define NET_ETH_HLEN 14u
#define NET_VLAN_HLEN 4u
#define NET_ETH_MIN 60u
/* A segmentation-offload frame: an IP datagram of at most 64 KiB. */
#define NET_GSO_FRAME_MAX (65535u + NET_ETH_HLEN + NET_VLAN_HLEN)
#define NET_MTU_DEFAULT 1500u
#define NET_MTU_MIN 68u
#define NET_MTU_MAX 65535u
/* iovecs a chain may use: MAX_SKB_FRAGS-sized frames and more. */
#define NET_MAX_IOV 64u

/* Why a frame was not delivered (store: drops/NAME). */
enum net_drop {
	NET_DROP_BAD_HEADER,   /* header short, unknown flags, offload not negotiated,
				* writable descriptors on transmit */
	NET_DROP_RUNT,         /* shorter than an Ethernet header */
	NET_DROP_OVERSIZE,     /* longer than the MTU (or 64 KiB with GSO) allows */
	NET_DROP_NO_BUFFERS,   /* the receiving guest's buffers cannot hold it */
	NET_DROP_DST_FULL,     /* a switch port's queue was full (or our quota in it) */
	NET_DROP_LINK_DOWN,    /* the receiving port has no front-end / no rx queue */
	NET_DROP_GSO,          /* a segmentation offload frame that cannot be segmented */
	NET_DROP_BACKEND,      /* the back end refused it (tap write error) */
	NET_DROP_MAX
};

/* Per queue; written by its worker only. */
struct net_qstats {
	atomic_uint_fast64_t packets;
	atomic_uint_fast64_t bytes;
	atomic_uint_fast64_t drops[NET_DROP_MAX];
} __attribute__((aligned(64)));

/*
 * A frame between a transmitting queue and a receiver: the virtio-net
 * header as the sender's guest wrote it (num_buffers unused), already
 * checked, and the Ethernet frame.
 */
struct net_frame {
	struct virtio_net_hdr hdr;
	uint32_t len;
	uint8_t *data;
};

struct net_switch;
struct net_port;
struct net_tap;

struct net {
	/* Options (control thread, fixed once serving). */
	enum { NET_BACKEND_NONE, NET_BACKEND_SWITCH, NET_BACKEND_TAP } backend;
	char *backend_name;       /* switch name or tap interface name */
	uint8_t mac[6];
	bool mac_set;
	unsigned int pairs;       /* queue pairs offered (MQ when > 1) */
	uint32_t mtu;             /* option mtu, or NET_SET_MTU */
	bool no_offloads;         /* offloads=off */

	/* Shared (atomics). */
	atomic_uint mtu_now;      /* what frames are checked against */
	atomic_uint_fast64_t hdr_len; /* 10 or 12, from the acked features */
	atomic_uint_fast64_t dp_features;

	struct net_port *port;    /* backend=switch */
	struct net_tap *tap;      /* backend=tap */

	struct net_qstats qs[NET_MAX_QUEUES];
	/* Per pair, worker-owned: a frame read from the tap that the guest
	 * had no room for yet. */
	struct net_pending {
		uint8_t *buf;
		uint32_t len;
		bool full;
	} pending[NET_MAX_PAIRS];
	/* Per pair, worker-owned: a segment being built (net-gso.c). */
	uint8_t *gso_buf[NET_MAX_PAIRS];
};

/* net.c: the receive side of a pair, for the back ends. */
/* Hands frame f to the guest on receive queue q (f may be changed: a
 * checksum finished). 0: delivered (or dropped
 * and counted, nothing for the caller to keep); -ENOBUFS: the guest posted
 * too few buffers, keep f and try later. */
int net_rx_deliver(struct viod_dev *dev, struct viod_queue *q, struct net_frame *f);
void net_count_drop(struct net *n, unsigned int qidx, enum net_drop why);
/* A frame of bytes bytes went through queue qidx (its worker). */
void net_count_frame(struct net *n, unsigned int qidx, uint64_t bytes);
/* The next transmitted chain whose header (read into *h, hlen bytes) and
 * length pass net_tx_check, or NULL; bad ones are completed and counted.
 * Each chain popped takes one from *budget. */
struct viod_req *net_tx_pop(struct viod_dev *dev, struct viod_queue *q, size_t hlen,
			    struct virtio_net_hdr_mrg_rxbuf *h, unsigned int *budget);
/* Checks a transmitted header and frame length against the acked
 * features and the MTU; false: drop with *why. */
bool net_tx_check(struct net *n, const struct virtio_net_hdr *h, uint64_t len,
		  enum net_drop *why);

/* net-gso.c: cuts a GSO_TCPV4/V6 frame into segments with complete
 * checksums, built in seg (NET_GSO_FRAME_MAX bytes), handing each to emit;
 * stops at the first segment emit refuses (its error is returned if it was
 * the first). -EINVAL: not a frame this can segment. */
int net_gso_segment(const struct net_frame *f, uint8_t *seg,
		    int (*emit)(void *opaque, struct net_frame *s), void *opaque);

/* net-switch.c */
int net_switch_port_open(struct viod_dev *dev, const char *name, unsigned int pairs,
			 struct net_port **out, GError **err);
void net_switch_port_close(struct net_port *p);
/* The front-end came or went: a port without one takes no frames. */
void net_switch_port_up(struct net_port *p, bool up);
/* Transmit queue q (its worker): serve up to NET_BUDGET frames into the switch. */
enum viod_serve net_switch_tx(struct viod_dev *dev, struct viod_queue *q);
/* Receive queue q (its worker): deliver what other ports sent us. */
enum viod_serve net_switch_rx(struct viod_dev *dev, struct viod_queue *q);
/* Control thread: a frame from this port (a RARP announce). */
void net_switch_inject(struct net_port *p, const uint8_t *frame, uint32_t len);
/* Drops whatever waits for this port and forgets where its flows were
 * steered (device reset). */
void net_switch_port_flush(struct net_port *p);
unsigned int net_switch_port_count(const struct net_port *p);
unsigned int net_switch_port_macs(const struct net_port *p);

/* net-tap.c */
int net_tap_open(struct viod_dev *dev, const char *ifname, unsigned int pairs,
		 struct net_tap **out, GError **err);
void net_tap_close(struct net_tap *t);
void net_tap_worker_start(struct viod_dev *dev, unsigned int worker);
enum viod_serve net_tap_tx(struct viod_dev *dev, struct viod_queue *q);
enum viod_serve net_tap_rx(struct viod_dev *dev, struct viod_queue *q);
/* Header size the guest uses (10 or 12): the tap's vnet header follows it. */
void net_tap_set_hdr_len(struct net_tap *t, unsigned int len);
/* The offloads the tap may deliver, from what the guest accepts. */
void net_tap_set_offloads(struct net_tap *t, uint64_t guest_features);
void net_tap_inject(struct net_tap *t, const uint8_t *frame, uint32_t len);
const char *net_tap_ifname(const struct net_tap *t);

#endif
