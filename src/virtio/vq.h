/*
 * Split virtqueues (virtio 1.2 section 2.7), device side and driver side.
 *
 * Security model: on the device side, everything in the ring (indices,
 * descriptors, indirect tables, event indices) is written by an untrusted
 * guest and may change under us at any time. Each descriptor is copied once
 * into a local before use; indices and lengths are range-checked; chains
 * are hop-counted; every buffer address goes through viod_mem_map_iov().
 * A ring that violates the spec is marked broken and never touched again
 * until it is set up anew. On the driver side (the reference drivers) the
 * untrusted party is the device: used ids and lengths are checked.
 */
#ifndef VIOD_VIRTIO_VQ_H
#define VIOD_VIRTIO_VQ_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>
#include <linux/virtio_ring.h>

#include "mem.h"

/* Split rings hold at most 32768 entries (virtio 1.2, 2.7). */
#define VIOD_VQ_MAX_SIZE 32768u
/* Cap on iovecs per element and on indirect table entries. */
#define VIOD_VQ_MAX_IOV 1024u
#define VIOD_VQ_MAX_INDIRECT 4096u

struct viod_vq {
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	const struct viod_mem *mem;
	uint16_t num;
	uint16_t last_avail;
	uint16_t avail_known;    /* chains past last_avail seen available at
				  * the last read of avail->idx (0: read it
				  * again); set to 0 whenever last_avail is
				  * set from outside */
	uint16_t used_idx;       /* our shadow of used->idx */
	uint16_t signalled_used; /* used idx at the last call, for EVENT_IDX */
	bool signalled_valid;
	bool event_idx;
	bool indirect;
	bool broken;
	uint64_t errors;         /* spec violations seen (the ring is then broken) */
};

/*
 * One popped chain, described over an iovec array the caller supplies:
 * iov[0 .. out_num) are device-readable, then iov[out_num .. out_num +
 * in_num) device-writable; out_len and in_len are their byte totals.
 */
struct viod_vq_chain {
	uint16_t head;
	unsigned int out_num;
	unsigned int in_num;
	uint64_t out_len;
	uint64_t in_len;
};

/* A chain with room for the most iovecs a walk may produce. */
struct viod_vq_elem {
	uint16_t head;
	unsigned int out_num;
	unsigned int in_num;
	uint64_t out_len;
	uint64_t in_len;
	struct iovec iov[VIOD_VQ_MAX_IOV];
};

/* Sizes of the three ring parts for a queue of num entries. */
size_t viod_vring_desc_size(unsigned int num);
size_t viod_vring_avail_size(unsigned int num);
size_t viod_vring_used_size(unsigned int num);

/* num must be a power of two in [1, VIOD_VQ_MAX_SIZE]. */
bool viod_vq_size_valid(uint32_t num);

/*
 * Initialises vq over already-translated ring pointers. last_avail is the
 * front-end's base; the used shadow is read from the ring.
 */
void viod_vq_init(struct viod_vq *vq, const struct viod_mem *mem, uint16_t num,
		  struct vring_desc *desc, struct vring_avail *avail,
		  struct vring_used *used, uint16_t last_avail,
		  bool event_idx, bool indirect);

/* Number of available chains not yet popped (0 if broken or bogus). */
unsigned int viod_vq_pending(struct viod_vq *vq);

/*
 * Pops the next available chain. Returns 1 and fills e, 0 if the ring is
 * empty, or -EIO if the guest broke the ring (vq->broken is then set; the
 * chain is not consumed).
 */
int viod_vq_pop(struct viod_vq *vq, struct viod_vq_elem *e);

/*
 * The same over a caller's iovec array of cap (<= VIOD_VQ_MAX_IOV)
 * entries: a chain needing more iovecs breaks the ring, so a device sets
 * cap to what the virtio spec lets its requests need.
 */
int viod_vq_pop_iov(struct viod_vq *vq, struct viod_vq_chain *c,
		    struct iovec *iov, unsigned int cap);

/*
 * Walks the chain at head without consuming the avail ring (inflight
 * resubmission: the head comes from the front-end's inflight region). 1,
 * or -EIO if head or the chain is bad (the ring is then broken).
 */
int viod_vq_walk_head(struct viod_vq *vq, uint16_t head, struct viod_vq_chain *c,
		      struct iovec *iov, unsigned int cap);

/* Undoes the last pop (e.g. a device that cannot serve a chain yet). */
void viod_vq_unpop(struct viod_vq *vq);

/* Undoes the last n pops, newest first. */
void viod_vq_rewind(struct viod_vq *vq, uint16_t n);

/* Returns a chain to the guest: len is the bytes actually written. */
void viod_vq_push(struct viod_vq *vq, uint16_t head, uint32_t len);

/*
 * Batched completion: fill writes the used entry off places after the
 * last published one, without publishing it; flush publishes n filled
 * entries with a single used->idx store (so a guest never sees part of a
 * batch, which MRG_RXBUF needs). push is fill(.., 0) + flush(1).
 */
void viod_vq_fill(struct viod_vq *vq, uint16_t head, uint32_t len, uint16_t off);
void viod_vq_flush(struct viod_vq *vq, uint16_t n);

/* Whether the guest wants an interrupt for what was pushed (EVENT_IDX aware). */
bool viod_vq_need_call(struct viod_vq *vq);

/*
 * Asks the guest for kicks (enable) or not. After enabling, the caller must
 * re-check viod_vq_pending() before sleeping: a kick may have been skipped.
 */
void viod_vq_set_notify(struct viod_vq *vq, bool enable);

/* Copies out of / into an element's iovecs; return bytes copied. */
size_t viod_iov_to_buf(const struct iovec *iov, unsigned int n, size_t off,
		       void *buf, size_t len);
size_t viod_iov_from_buf(const struct iovec *iov, unsigned int n, size_t off,
			 const void *buf, size_t len);

/* ------------------------------------------------------------------ */
/* Driver side, used by the reference drivers in src/guest.           */

struct viod_vqd_buf {
	uint64_t gpa;
	uint32_t len;
	bool writable;
};

struct viod_vqd {
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	uint16_t num;
	uint16_t free_head;
	uint16_t num_free;
	uint16_t avail_idx;     /* our shadow of avail->idx */
	uint16_t kicked_avail;  /* avail idx at the last kick decision */
	uint16_t last_used;
	bool event_idx;
	bool broken;
	uint16_t *next_free;    /* free list, one entry per descriptor */
	uint16_t *chain_len;    /* per head: descriptors in the chain, 0 if free */
	uint32_t *posted_in;    /* per head: device-writable bytes posted */
	void **cookie;          /* per head */
};

/*
 * Lays a ring of num entries over host memory at desc/avail/used (the
 * caller owns that memory and knows its guest addresses). Allocates the
 * bookkeeping; free with viod_vqd_fini. 0 or -errno.
 */
int viod_vqd_init(struct viod_vqd *q, uint16_t num, void *desc, void *avail,
		  void *used, bool event_idx);
void viod_vqd_fini(struct viod_vqd *q);

/*
 * Adds a chain (readable buffers first, then writable) and makes it
 * available. Returns the head, -ENOSPC if the ring lacks descriptors,
 * -EINVAL for an empty or misordered chain.
 */
int viod_vqd_add(struct viod_vqd *q, const struct viod_vqd_buf *bufs,
		 unsigned int n, void *cookie);

/* Whether the device wants a kick for what was added since the last call. */
bool viod_vqd_need_kick(struct viod_vqd *q);

/*
 * Takes one used chain: returns 1 with *cookie and *len set, 0 if none,
 * -EIO if the device returned a bogus id or length (q->broken set).
 */
int viod_vqd_get_used(struct viod_vqd *q, void **cookie, uint32_t *len);

/* Asks the device for interrupts (enable) or not; re-check after enabling. */
void viod_vqd_set_interrupts(struct viod_vqd *q, bool enable);

/* Whether a used entry is waiting. */
bool viod_vqd_has_used(struct viod_vqd *q);

#endif
