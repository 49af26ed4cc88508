/*
 * virtio block device (virtio 1.2, 5.2): private definitions shared by
 * blk.c (options, config space, store, the ops table) and blk-io.c (the
 * request path on io_uring).
 *
 * Threads: options, config space and the store belong to the control
 * thread; each worker owns one struct blk_worker (its io_uring) and the
 * requests of the queues it serves. What both sides read (capacity, the
 * guest's cache mode) are atomics; counters are per worker and summed by
 * the store.
 */
#ifndef VIOD_DEVICES_BLK_H
#define VIOD_DEVICES_BLK_H

#include <liburing.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <linux/virtio_blk.h>

#include "vhost/device.h"

#define BLK_SECTOR 512u
#define BLK_MAX_QUEUES 64u
/* Per request: header and status around at most BLK_SEG_MAX data
 * segments (config seg_max). */
#define BLK_SEG_MAX 126u
#define BLK_MAX_IOV (BLK_SEG_MAX + 2u)
/* Requests a queue holds in flight (bounded by its ring size too). */
#define BLK_QUEUE_DEPTH 256u
/* Discard / write-zeroes: segments per request and sectors per segment. */
#define BLK_MAX_DISCARD_SEG 16u
#define BLK_MAX_DISCARD_SECTORS (1u << 22)
/* Requests popped per handler call (bounded work). */
#define BLK_BUDGET 64u

/* Request types counted in the store. */
enum blk_kind {
	BLK_K_READ,
	BLK_K_WRITE,
	BLK_K_FLUSH,
	BLK_K_GET_ID,
	BLK_K_DISCARD,
	BLK_K_WRITE_ZEROES,
	BLK_K_UNSUPPORTED,
	BLK_K_MAX
};

struct blk_counters {
	atomic_uint_fast64_t requests[BLK_K_MAX];
	atomic_uint_fast64_t bytes_read, bytes_written, errors;
	atomic_uint_fast64_t started; /* requests popped, for in-flight */
} __attribute__((aligned(64)));

struct blk_worker {
	struct viod_dev *dev;
	struct io_uring ring;
	bool ring_ok;
	int efd;                  /* the ring's completion eventfd */
	bool efd_dirty;           /* completions reaped since efd was read */
	unsigned int sq_pending;  /* SQEs prepared, not yet submitted */
	unsigned int inflight;    /* operations in the kernel's hands */
	unsigned int qops[BLK_MAX_QUEUES]; /* the same, per queue */
	struct viod_queue *flush[BLK_MAX_QUEUES]; /* queues to publish */
	unsigned int nflush;
	struct blk_counters c;
};

struct blk {
	/* Options (control thread, fixed once serving). */
	char *path;
	bool null_backend;        /* backend=null: no image, no data moved */
	uint64_t null_size;
	bool read_only;
	char serial[VIRTIO_BLK_ID_BYTES + 1];
	uint32_t lbs;             /* logical block size */
	uint32_t pbs;             /* physical block size */
	unsigned int nqueues;
	enum { BLK_DIRECT_AUTO, BLK_DIRECT_ON, BLK_DIRECT_OFF } direct;
	bool writethrough;        /* cache=writethrough: the initial mode */
	bool no_discard;          /* discard=off */

	/* Image. */
	int fd;                   /* O_DIRECT when in use */
	int fd_buffered;          /* for buffers O_DIRECT cannot take */
	bool is_direct;
	bool is_blockdev;
	uint32_t dio_align;       /* O_DIRECT memory and offset alignment */
	atomic_bool no_zero_range; /* the file system lacks FALLOC_FL_ZERO_RANGE */

	/* Shared. */
	atomic_uint_fast64_t capacity; /* in 512-byte sectors */
	atomic_bool wce;               /* guest's writeback mode */

	struct blk_worker *workers;
	unsigned int nworkers;
};

/* Per request (viod_req.priv). */
struct blk_req {
	struct viod_queue *q;
	struct viod_req *r;
	uint8_t *status;          /* the last writable byte */
	uint32_t type;
	uint8_t kind;             /* enum blk_kind */
	uint8_t result;           /* VIRTIO_BLK_S_* so far */
	bool buffered;            /* sent on fd_buffered */
	uint64_t off;             /* byte offset of the next transfer */
	struct iovec *data;       /* data segments (in req->iov, trimmed) */
	unsigned int ndata;
	uint64_t len;             /* data bytes left to transfer */
	uint64_t moved;           /* data bytes transferred */
	unsigned int ops;         /* operations of this request in flight */
	struct { uint64_t off, len; } seg[BLK_MAX_DISCARD_SEG]; /* discard / write-zeroes */
};

/* blk-io.c */
enum viod_serve blk_queue(struct viod_dev *dev, struct viod_queue *q);
void blk_queue_drain(struct viod_dev *dev, struct viod_queue *q);
void blk_worker_start(struct viod_dev *dev, unsigned int worker);
void blk_worker_stop(struct viod_dev *dev, unsigned int worker);
/* Byte size of the image (file or block device), or -errno. */
int64_t blk_image_size(int fd, bool blockdev);

#endif
