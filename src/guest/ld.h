/*
 * ld: reference driver for the virtio block device (virtio 1.2, 5.2:
 * device id 2), after NetBSD's ld(4) at virtio. Requests are laid out as
 * the spec has them (5.2.6): a device-readable 16-byte header (struct
 * virtio_blk_outhdr), the data in one or more segments (device-readable
 * for writes, device-writable for reads), then a device-writable status
 * byte. Each of 1..LD_MAX_QUEUES request queues has a pool of
 * queue_depth request slots in guest memory: header and status in one
 * small block, data in a page-aligned buffer of max_transfer bytes (so a
 * back-end opening its image with O_DIRECT can use it as is).
 *
 * Segments: the data buffer of a slot is contiguous in guest memory, so a
 * request needs one data descriptor unless the device's size_max (or the
 * seg_size option, which models a guest whose buffers are scattered
 * pages) cuts it; at most seg_max data segments go into one request,
 * which bounds max_transfer. Without SEG_MAX the driver assumes one data
 * segment per request, as Linux and NetBSD do.
 *
 * Trust: config space is read once at attach into locals and checked
 * before use (capacity fits in bytes, blk_size a power of two in
 * [512, 64 KiB], seg_max and num_queues non-zero; a size_max of 0 means
 * no limit, one too small to carry a block in seg_max segments fails
 * attach); a device offering more queues than we use gets what we use.
 * Every request the driver builds is checked against capacity and
 * blk_size alignment before it is posted (ld_raw is the exception, for
 * tests of back-ends). Completions: the ring checks used.id and used.len
 * <= posted; the driver checks used.len >= 1 (the status byte is always
 * written) and that the status byte is one the spec defines.
 *
 * Errors: 0 or -errno. A request the device completed with
 * VIRTIO_BLK_S_IOERR is -EIO and with VIRTIO_BLK_S_UNSUPP -EOPNOTSUPP;
 * those leave the driver usable. Any other failure (a bogus used entry or
 * status, a device silent past timeout_ms, a kick or wait that failed)
 * breaks the driver: -EIO from then on, since buffers may still be in the
 * device's hands. Arguments the driver refuses before posting anything
 * (-EINVAL, -ERANGE past capacity, -EROFS, -EOPNOTSUPP for a feature not
 * negotiated) break nothing.
 *
 * One struct ld drives a connected struct viod_fe that it negotiates
 * itself. Not thread-safe: one thread drives all queues.
 */
#ifndef VIOD_GUEST_LD_H
#define VIOD_GUEST_LD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <linux/virtio_blk.h>

#include "guest/frontend.h"

#define LD_VIRTIO_ID 2u
#define LD_SECTOR_SIZE 512u          /* the protocol's unit (5.2.6) */
#define LD_SECTOR_SHIFT 9u

/* Device features the driver can negotiate (5.2.3). */
#define LD_FEATURES_SUPPORTED                                               \
	((1ull << VIRTIO_BLK_F_SIZE_MAX) | (1ull << VIRTIO_BLK_F_SEG_MAX) | \
	 (1ull << VIRTIO_BLK_F_RO) | (1ull << VIRTIO_BLK_F_BLK_SIZE) |      \
	 (1ull << VIRTIO_BLK_F_FLUSH) | (1ull << VIRTIO_BLK_F_TOPOLOGY) |   \
	 (1ull << VIRTIO_BLK_F_CONFIG_WCE) | (1ull << VIRTIO_BLK_F_MQ) |    \
	 (1ull << VIRTIO_BLK_F_DISCARD) | (1ull << VIRTIO_BLK_F_WRITE_ZEROES))

/* viod_fe_wait_any watches at most VIOD_FE_WAIT_MAX queues at once. */
#define LD_MAX_QUEUES VIOD_FE_WAIT_MAX
#define LD_MAX_BLK_SIZE (64u * 1024u)
#define LD_MAX_TRANSFER (4u << 20)
#define LD_DEFAULT_QUEUE_SIZE 128u
#define LD_DEFAULT_QUEUE_DEPTH 16u
#define LD_DEFAULT_MAX_TRANSFER (128u * 1024u)
#define LD_DEFAULT_TIMEOUT_MS 10000

struct ld_opts {
	unsigned int nqueues;     /* wanted, 1..LD_MAX_QUEUES; fewer if the
				   * device has fewer (1 without MQ) */
	uint16_t queue_size;      /* ring entries (power of two) */
	unsigned int queue_depth; /* request slots per queue, 1..queue_size */
	uint32_t max_transfer;    /* data bytes per request (slot buffer),
				   * a multiple of 512; lowered to what
				   * seg_max * segment size allows */
	uint32_t seg_size;        /* bytes per data descriptor at most, 0:
				   * only size_max cuts; else a multiple of
				   * 512 */
	uint64_t features;        /* device features to accept if offered,
				   * within LD_FEATURES_SUPPORTED */
	int timeout_ms;           /* per wait for the device; -1: forever */
};

/* What the device said at attach, checked (see "Trust" above). */
struct ld_geometry {
	uint64_t capacity;        /* 512-byte sectors */
	uint32_t blk_size;        /* logical block, 512 without BLK_SIZE */
	uint32_t size_max;        /* bytes per segment, 0: no limit */
	uint32_t seg_max;         /* data segments per request */
	uint16_t num_queues;      /* the device's (1 without MQ) */
	uint8_t physical_block_exp;
	uint8_t alignment_offset;
	uint16_t min_io_size;     /* logical blocks */
	uint32_t opt_io_size;     /* logical blocks */
	bool readonly;
	bool writeback;           /* cache mode (5.2.5: FLUSH without
				   * CONFIG_WCE means writeback) */
	uint32_t max_discard_sectors;       /* per request as sent here */
	uint32_t max_discard_seg;
	uint32_t discard_sector_alignment;
	uint32_t max_write_zeroes_sectors;
	uint32_t max_write_zeroes_seg;
	bool write_zeroes_may_unmap;
};

/* One request slot: header + status in cmd, data in its own pages. */
struct ld_req {
	struct virtio_blk_outhdr *hdr;
	uint64_t hdr_gpa;
	uint8_t *status;
	uint64_t status_gpa;
	uint8_t *data;
	uint64_t data_gpa;
	bool busy;
	uint32_t in_len;          /* device-writable data bytes posted */
	uint64_t tag;             /* caller's, e.g. the offset of a chunk */
	uint64_t submit_ns;
};

struct ld_queue {
	unsigned int idx;
	struct ld_req *reqs;      /* queue_depth slots */
	unsigned int *free_reqs;  /* stack of free slot indices */
	unsigned int nfree;
	struct viod_vqd_buf *bufs; /* scratch chain, max_descs entries */
	uint64_t requests;        /* completions */
};

struct ld_stats {
	uint64_t requests;        /* completions, all queues */
	uint64_t ioerr;           /* VIRTIO_BLK_S_IOERR */
	uint64_t unsupp;          /* VIRTIO_BLK_S_UNSUPP */
	uint64_t short_in;        /* IN completed OK with used.len < data + 1 */
	uint64_t ring_full;       /* submissions deferred: no descriptors */
};

struct ld {
	struct viod_fe *fe;
	struct ld_opts opts;
	struct ld_geometry geo;
	uint64_t features;        /* device features negotiated */
	unsigned int nqueues;     /* queues in use */
	uint32_t max_transfer;    /* effective */
	uint32_t seg_bytes;       /* effective bytes per data descriptor */
	unsigned int max_descs;   /* descriptors per request at most */
	struct ld_queue *queues;
	bool broken;
	struct ld_stats st;
};

/*
 * A request as a test wants it, unchecked: header type, reserved (ioprio)
 * and sector as given, then out_len bytes from out (device-readable),
 * then in_len device-writable bytes (copied to in), then the status byte.
 * out_len + in_len <= max_transfer; either may be 0.
 */
struct ld_raw_req {
	uint32_t type;
	uint32_t ioprio;
	uint64_t sector;
	const void *out;
	uint32_t out_len;
	void *in;
	uint32_t in_len;
};

struct ld_bench_opts {
	bool write;               /* random writes, else random reads */
	uint32_t block_size;      /* bytes, a multiple of blk_size, <= max_transfer */
	unsigned int depth;       /* in flight per queue, 1..queue_depth */
	double seconds;           /* run this long, or */
	uint64_t requests;        /* complete this many (exactly one of the two) */
	uint64_t region_sector;   /* first sector of the region */
	uint64_t region_sectors;  /* its length, 0: to the end of the disk */
	uint64_t seed;            /* xorshift seed (0 is replaced) */
};

struct ld_bench_stats {
	uint64_t requests;        /* completed */
	double seconds;           /* first submission to last completion */
	double iops;
	double p50_us;
	double p99_us;
	double max_us;
};

/* Fills *o with the defaults: 1 queue of 128 entries, 16 slots of 128 KiB. */
void ld_opts_init(struct ld_opts *o);

/*
 * Negotiates, reads and checks config space, sets up the queues and their
 * slots in guest memory, sets DRIVER_OK. fe must be connected and not yet
 * negotiated, with CONFIG among the protocol features the back-end offers.
 * 0 or -errno (reason in viod_fe_strerror(fe)): -EINVAL bad options,
 * -ENOTSUP no CONFIG, -EPROTO config space that fails the checks (or
 * -EINVAL when no block fits in a request), -ENOMEM not enough guest
 * memory.
 */
int ld_attach(struct ld *sc, struct viod_fe *fe, const struct ld_opts *opts);

/* Frees host-side bookkeeping; queues go with viod_fe_disconnect(). */
void ld_detach(struct ld *sc);

/*
 * Reads / writes len bytes at sector (len and sector * 512 multiples of
 * blk_size, the range inside capacity) through queue 0, in requests of at
 * most max_transfer bytes with up to queue_depth of them in flight.
 * -ERANGE past capacity, -EROFS writing a read-only device.
 */
int ld_read(struct ld *sc, uint64_t sector, void *buf, size_t len);
int ld_write(struct ld *sc, uint64_t sector, const void *buf, size_t len);

/* VIRTIO_BLK_T_FLUSH; 0 without FLUSH (no cache to flush, 5.2.6.3). */
int ld_flush(struct ld *sc);

/*
 * VIRTIO_BLK_T_DISCARD / VIRTIO_BLK_T_WRITE_ZEROES over nsectors from
 * sector (blk_size-aligned, inside capacity), one segment per request,
 * split at the device's per-segment maximum. -EOPNOTSUPP when the feature
 * was not negotiated.
 */
int ld_discard(struct ld *sc, uint64_t sector, uint64_t nsectors);
int ld_write_zeroes(struct ld *sc, uint64_t sector, uint64_t nsectors, bool unmap);

/* VIRTIO_BLK_T_GET_ID: the device's 20-byte, NUL-padded ID string. */
int ld_get_id(struct ld *sc, uint8_t id[VIRTIO_BLK_ID_BYTES]);

/*
 * Sends rq unchecked on queue q (< nqueues) and waits for it: 0 with the
 * device's status byte in *status and used.len in *used_len (either may
 * be NULL), whatever the status; -errno only for what breaks the driver
 * (or -EINVAL for lengths the slot cannot hold).
 */
int ld_raw(struct ld *sc, unsigned int q, const struct ld_raw_req *rq,
	   uint8_t *status, uint32_t *used_len);

/*
 * Throughput mode: random block_size reads or writes at block_size-aligned
 * offsets in the region, depth requests in flight on each queue, one
 * thread driving all queues (viod_fe_wait_any), until seconds have passed
 * or requests have completed; then drains. Latency is CLOCK_MONOTONIC
 * from submission to the completion being seen, in a log-linear histogram
 * (within 1.6%). Writes write whatever the slot buffers hold. 0 or
 * -errno; a completion with a status other than OK ends the run with
 * -EIO or -EOPNOTSUPP after draining.
 */
int ld_bench(struct ld *sc, const struct ld_bench_opts *o, struct ld_bench_stats *st);

/*
 * The deterministic test pattern of sector `sector` for seed, 512 bytes
 * (xorshift64* of seed and sector): what `vioguest blk write --pattern`
 * writes and `blk verify` checks, independent of request boundaries.
 */
void ld_pattern_sector(uint64_t seed, uint64_t sector, uint8_t out[LD_SECTOR_SIZE]);

#endif
