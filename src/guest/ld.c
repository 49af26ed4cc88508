/*
 * ld: virtio block driver on the userspace front-end. Contracts: ld.h.
 * Device: virtio 1.2, 5.2 (requests 5.2.6, config 5.2.4, initialisation
 * 5.2.5).
 */
#include "ld.h"

#include <endian.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Header (16 bytes) and status byte of one slot, in one 32-byte block. */
#define LD_CMD_SIZE 32u
#define LD_CMD_STATUS 16u
/* Written into the status byte before posting: not a status the spec
 * defines, so a device that never writes it is caught. */
#define LD_STATUS_NONE 0xffu
#define LD_PAGE 4096u

static int64_t ld_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static bool ld_has(const struct ld *sc, unsigned int bit)
{
	return (sc->features >> bit) & 1;
}

void ld_opts_init(struct ld_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->nqueues = 1;
	o->queue_size = LD_DEFAULT_QUEUE_SIZE;
	o->queue_depth = LD_DEFAULT_QUEUE_DEPTH;
	o->max_transfer = LD_DEFAULT_MAX_TRANSFER;
	o->seg_size = 0;
	o->features = LD_FEATURES_SUPPORTED;
	o->timeout_ms = LD_DEFAULT_TIMEOUT_MS;
}

/* Marks the driver broken and returns err (reason already recorded). */
static int ld_broken(struct ld *sc, int err)
{
	sc->broken = true;
	return err;
}

/* ------------------------------------------------------------------ */
/* Attach: config space.                                               */

/* Bytes of config space the negotiated features give meaning to. */
static uint32_t ld_config_len(const struct ld *sc)
{
	uint32_t len = offsetof(struct virtio_blk_config, size_max);

#define LD_CFG_END(field) \
	((uint32_t)(offsetof(struct virtio_blk_config, field) + \
		    sizeof(((struct virtio_blk_config *)0)->field)))
	if (ld_has(sc, VIRTIO_BLK_F_SIZE_MAX) || ld_has(sc, VIRTIO_BLK_F_SEG_MAX))
		len = LD_CFG_END(seg_max);
	if (ld_has(sc, VIRTIO_BLK_F_BLK_SIZE))
		len = LD_CFG_END(blk_size);
	if (ld_has(sc, VIRTIO_BLK_F_TOPOLOGY))
		len = LD_CFG_END(opt_io_size);
	if (ld_has(sc, VIRTIO_BLK_F_CONFIG_WCE))
		len = LD_CFG_END(wce);
	if (ld_has(sc, VIRTIO_BLK_F_MQ))
		len = LD_CFG_END(num_queues);
	if (ld_has(sc, VIRTIO_BLK_F_DISCARD))
		len = LD_CFG_END(discard_sector_alignment);
	if (ld_has(sc, VIRTIO_BLK_F_WRITE_ZEROES))
		len = LD_CFG_END(write_zeroes_may_unmap);
#undef LD_CFG_END
	return len;
}

/*
 * Reads config space once into a local and checks it: never trust the
 * device's word (DESIGN.md, rule 6). Fields of features not negotiated
 * are not read (their bytes may be anything).
 */
static int ld_read_config(struct ld *sc)
{
	struct ld_geometry *g = &sc->geo;
	struct virtio_blk_config cfg;
	uint32_t v;
	int r;

	memset(&cfg, 0, sizeof(cfg));
	memset(g, 0, sizeof(*g));
	r = viod_fe_get_config(sc->fe, 0, &cfg, ld_config_len(sc));
	if (r < 0)
		return r;

	g->capacity = le64toh(cfg.capacity);
	if (g->capacity > UINT64_MAX >> LD_SECTOR_SHIFT)
		return viod_fe_error(sc->fe, -EPROTO,
				     "ld: capacity of %llu sectors overflows a byte count",
				     (unsigned long long)g->capacity);

	g->blk_size = LD_SECTOR_SIZE;
	if (ld_has(sc, VIRTIO_BLK_F_BLK_SIZE)) {
		v = le32toh(cfg.blk_size);
		if (v < LD_SECTOR_SIZE || v > LD_MAX_BLK_SIZE || (v & (v - 1)))
			return viod_fe_error(sc->fe, -EPROTO,
					     "ld: blk_size %u is not a power of two in [512, %u]",
					     v, LD_MAX_BLK_SIZE);
		g->blk_size = v;
	}

	/* Without SEG_MAX, one data segment per request (as Linux, NetBSD). */
	g->seg_max = 1;
	if (ld_has(sc, VIRTIO_BLK_F_SEG_MAX)) {
		v = le32toh(cfg.seg_max);
		if (v == 0)
			return viod_fe_error(sc->fe, -EPROTO, "ld: seg_max is 0");
		g->seg_max = v;
	}
	/* size_max 0 reads as "no limit": qemu-storage-daemon 10.0 offers
	 * SIZE_MAX and leaves the field 0. A tiny one is obeyed; attach
	 * fails later if a block then no longer fits in a request. */
	if (ld_has(sc, VIRTIO_BLK_F_SIZE_MAX))
		g->size_max = le32toh(cfg.size_max);

	g->num_queues = 1;
	if (ld_has(sc, VIRTIO_BLK_F_MQ)) {
		uint16_t nq = le16toh(cfg.num_queues);

		if (nq == 0)
			return viod_fe_error(sc->fe, -EPROTO, "ld: num_queues is 0");
		g->num_queues = nq;
	}

	if (ld_has(sc, VIRTIO_BLK_F_TOPOLOGY)) {
		g->physical_block_exp = cfg.physical_block_exp;
		g->alignment_offset = cfg.alignment_offset;
		g->min_io_size = le16toh(cfg.min_io_size);
		g->opt_io_size = le32toh(cfg.opt_io_size);
	}

	g->readonly = ld_has(sc, VIRTIO_BLK_F_RO);
	/* 5.2.5.1: FLUSH without CONFIG_WCE means a writeback cache. */
	if (ld_has(sc, VIRTIO_BLK_F_CONFIG_WCE))
		g->writeback = cfg.wce != 0;
	else
		g->writeback = ld_has(sc, VIRTIO_BLK_F_FLUSH);

	/* A per-segment maximum of 0 reads as "no limit" (as Linux); one
	 * smaller than a block leaves the command unusable here. */
	if (ld_has(sc, VIRTIO_BLK_F_DISCARD)) {
		v = le32toh(cfg.max_discard_sectors);
		g->max_discard_sectors = v ? v : UINT32_MAX;
		g->max_discard_seg = le32toh(cfg.max_discard_seg);
		g->discard_sector_alignment = le32toh(cfg.discard_sector_alignment);
	}
	if (ld_has(sc, VIRTIO_BLK_F_WRITE_ZEROES)) {
		v = le32toh(cfg.max_write_zeroes_sectors);
		g->max_write_zeroes_sectors = v ? v : UINT32_MAX;
		g->max_write_zeroes_seg = le32toh(cfg.max_write_zeroes_seg);
		g->write_zeroes_may_unmap = cfg.write_zeroes_may_unmap != 0;
	}
	return 0;
}

/*
 * Segments: bytes per data descriptor (size_max, seg_size) and data
 * descriptors per request (seg_max, and the ring: header and status take
 * two) bound the transfer size.
 */
static int ld_size_requests(struct ld *sc)
{
	const struct ld_geometry *g = &sc->geo;
	uint32_t seg = UINT32_MAX, nsegs, blk = g->blk_size;
	uint64_t most;

	if (g->size_max)
		seg = g->size_max;
	if (sc->opts.seg_size && sc->opts.seg_size < seg)
		seg = sc->opts.seg_size;
	nsegs = g->seg_max;
	if (nsegs > (uint32_t)sc->opts.queue_size - 2)
		nsegs = (uint32_t)sc->opts.queue_size - 2;
	most = (uint64_t)nsegs * seg;
	sc->max_transfer = sc->opts.max_transfer;
	if (most < sc->max_transfer)
		sc->max_transfer = (uint32_t)most;
	sc->max_transfer -= sc->max_transfer % blk;
	if (sc->max_transfer == 0)
		return viod_fe_error(sc->fe, -EINVAL,
				     "ld: a %u-byte block does not fit in %u segments of "
				     "%u bytes (max transfer %u)", blk, nsegs, seg,
				     sc->opts.max_transfer);
	sc->seg_bytes = seg;
	/* A raw request may split its data in two parts: one more. */
	sc->max_descs = (unsigned int)((sc->max_transfer + (uint64_t)seg - 1) / seg) + 3;
	return 0;
}

static int ld_queue_init(struct ld *sc, struct ld_queue *q, unsigned int idx)
{
	unsigned int depth = sc->opts.queue_depth;
	uint64_t cmd_gpa;
	uint8_t *cmd;
	int r;

	q->idx = idx;
	r = viod_fe_queue_setup(sc->fe, idx, sc->opts.queue_size);
	if (r < 0)
		return r;
	q->reqs = calloc(depth, sizeof(*q->reqs));
	q->free_reqs = calloc(depth, sizeof(*q->free_reqs));
	q->bufs = calloc(sc->max_descs, sizeof(*q->bufs));
	if (!q->reqs || !q->free_reqs || !q->bufs)
		return viod_fe_error(sc->fe, -ENOMEM, "ld: out of memory");
	cmd = viod_fe_alloc(sc->fe, (size_t)depth * LD_CMD_SIZE, 64, &cmd_gpa);
	if (!cmd)
		goto nomem;
	for (unsigned int i = 0; i < depth; i++) {
		struct ld_req *rq = &q->reqs[i];

		rq->hdr = (struct virtio_blk_outhdr *)(cmd + (size_t)i * LD_CMD_SIZE);
		rq->hdr_gpa = cmd_gpa + (uint64_t)i * LD_CMD_SIZE;
		rq->status = cmd + (size_t)i * LD_CMD_SIZE + LD_CMD_STATUS;
		rq->status_gpa = rq->hdr_gpa + LD_CMD_STATUS;
		/* Page-aligned: usable as is by an O_DIRECT back-end. */
		rq->data = viod_fe_alloc(sc->fe, sc->max_transfer, LD_PAGE, &rq->data_gpa);
		if (!rq->data)
			goto nomem;
		q->free_reqs[q->nfree++] = depth - 1 - i;
	}
	return 0;
nomem:
	return viod_fe_error(sc->fe, -ENOMEM,
			     "ld: no guest memory for %u queues of %u requests of %u bytes",
			     sc->nqueues, depth, sc->max_transfer);
}

int ld_attach(struct ld *sc, struct viod_fe *fe, const struct ld_opts *opts)
{
	unsigned int nq;
	int r;

	memset(sc, 0, sizeof(*sc));
	sc->fe = fe;
	if (opts)
		sc->opts = *opts;
	else
		ld_opts_init(&sc->opts);
	if (sc->opts.nqueues == 0 || sc->opts.nqueues > LD_MAX_QUEUES ||
	    !viod_vq_size_valid(sc->opts.queue_size) || sc->opts.queue_size < 4 ||
	    sc->opts.queue_depth == 0 || sc->opts.queue_depth > sc->opts.queue_size ||
	    sc->opts.max_transfer == 0 || sc->opts.max_transfer > LD_MAX_TRANSFER ||
	    sc->opts.max_transfer % LD_SECTOR_SIZE ||
	    sc->opts.seg_size % LD_SECTOR_SIZE)
		return ld_broken(sc, viod_fe_error(fe, -EINVAL,
			"ld: bad options: %u queues of %u entries (>= 4), depth %u, "
			"max transfer %u, segment size %u (multiples of 512)",
			sc->opts.nqueues, sc->opts.queue_size, sc->opts.queue_depth,
			sc->opts.max_transfer, sc->opts.seg_size));

	r = viod_fe_negotiate(fe, sc->opts.features & LD_FEATURES_SUPPORTED);
	if (r < 0)
		return ld_broken(sc, r);
	sc->features = fe->features_acked & LD_FEATURES_SUPPORTED;
	if (!viod_fe_has_protocol(fe, VU_PF_CONFIG))
		return ld_broken(sc, viod_fe_error(fe, -ENOTSUP,
			"ld: the back-end offers no CONFIG protocol feature: "
			"capacity unknown"));
	r = ld_read_config(sc);
	if (r < 0)
		return ld_broken(sc, r);
	r = ld_size_requests(sc);
	if (r < 0)
		return ld_broken(sc, r);

	/* The device's num_queues is checked against what we can use: our
	 * limit, the option, and the back-end's GET_QUEUE_NUM. */
	nq = sc->opts.nqueues;
	if (nq > sc->geo.num_queues)
		nq = sc->geo.num_queues;
	if (fe->queue_num && nq > fe->queue_num)
		nq = (unsigned int)fe->queue_num;
	sc->nqueues = nq;
	sc->queues = calloc(nq, sizeof(*sc->queues));
	if (!sc->queues) {
		ld_detach(sc);
		return viod_fe_error(fe, -ENOMEM, "ld: out of memory");
	}
	for (unsigned int i = 0; i < nq; i++) {
		r = ld_queue_init(sc, &sc->queues[i], i);
		if (r < 0) {
			ld_detach(sc);
			return r;
		}
	}
	r = viod_fe_driver_ok(fe);
	if (r < 0) {
		ld_detach(sc);
		return r;
	}
	return 0;
}

void ld_detach(struct ld *sc)
{
	for (unsigned int i = 0; sc->queues && i < sc->nqueues; i++) {
		free(sc->queues[i].reqs);
		free(sc->queues[i].free_reqs);
		free(sc->queues[i].bufs);
	}
	free(sc->queues);
	sc->queues = NULL;
	sc->nqueues = 0;
	sc->broken = true;
}

/* ------------------------------------------------------------------ */
/* Requests.                                                           */

/* Splits len bytes at gpa into descriptors of at most seg_bytes. */
static unsigned int ld_segments(const struct ld *sc, struct viod_vqd_buf *b,
				uint64_t gpa, uint32_t len, bool writable)
{
	unsigned int n = 0;

	while (len > 0) {
		uint32_t chunk = len < sc->seg_bytes ? len : sc->seg_bytes;

		b[n++] = (struct viod_vqd_buf){ .gpa = gpa, .len = chunk,
						.writable = writable };
		gpa += chunk;
		len -= chunk;
	}
	return n;
}

/*
 * Posts free slot s of q: header, out_len device-readable and in_len
 * device-writable data bytes from the slot's buffer, status. 0; -ENOSPC
 * when the ring lacks descriptors (nothing posted, the slot stays free);
 * -EINVAL when the chain could never fit the ring.
 */
static int ld_post(struct ld *sc, struct ld_queue *q, unsigned int s, uint32_t type,
		   uint32_t ioprio, uint64_t sector, uint32_t out_len, uint32_t in_len)
{
	struct viod_vqd *vqd = viod_fe_vqd(sc->fe, q->idx);
	struct ld_req *rq = &q->reqs[s];
	unsigned int n = 0;
	int r;

	if (!vqd)
		return -EIO;
	rq->hdr->type = htole32(type);
	rq->hdr->ioprio = htole32(ioprio);
	rq->hdr->sector = htole64(sector);
	*rq->status = LD_STATUS_NONE;
	q->bufs[n++] = (struct viod_vqd_buf){ .gpa = rq->hdr_gpa,
		.len = sizeof(*rq->hdr), .writable = false };
	n += ld_segments(sc, &q->bufs[n], rq->data_gpa, out_len, false);
	n += ld_segments(sc, &q->bufs[n], rq->data_gpa + out_len, in_len, true);
	q->bufs[n++] = (struct viod_vqd_buf){ .gpa = rq->status_gpa, .len = 1,
		.writable = true };
	if (n > sc->opts.queue_size)
		return -EINVAL;
	r = viod_vqd_add(vqd, q->bufs, n, (void *)(uintptr_t)(s + 1));
	if (r == -ENOSPC) {
		sc->st.ring_full++;
		return r;
	}
	if (r < 0)
		return r;
	rq->busy = true;
	rq->in_len = in_len;
	q->nfree--;
	return 0;
}

/* Takes the top free slot of q (the caller checked nfree > 0). */
static unsigned int ld_slot(const struct ld_queue *q)
{
	return q->free_reqs[q->nfree - 1];
}

/*
 * Takes one completion of q: 1 with *s and *len, 0 if none; -EIO for a
 * used entry the ring refuses (id not in flight, len > posted), a cookie
 * that is not a busy slot, or used.len 0 (the status byte is always
 * written): the driver is then broken.
 */
static int ld_take(struct ld *sc, struct ld_queue *q, unsigned int *s, uint32_t *len)
{
	int r = viod_fe_take_slot(sc->fe, q->idx, sc->opts.queue_depth, "ld", s, len);

	if (r <= 0)
		return r < 0 ? ld_broken(sc, r) : 0;
	if (!q->reqs[*s].busy)
		return ld_broken(sc, viod_fe_error(sc->fe, -EIO,
			"ld: queue %u: completion of a request not in flight", q->idx));
	q->reqs[*s].busy = false;
	q->free_reqs[q->nfree++] = *s;
	q->requests++;
	sc->st.requests++;
	if (*len == 0)
		return ld_broken(sc, viod_fe_error(sc->fe, -EIO,
			"ld: queue %u: used.len 0, the status byte is not written",
			q->idx));
	return 1;
}

/*
 * The outcome of a completed slot: 0, -EIO (IOERR, or an IN request the
 * device reports as shorter than posted), -EOPNOTSUPP (UNSUPP); a status
 * the spec does not define breaks the driver.
 */
static int ld_status(struct ld *sc, const struct ld_queue *q, const struct ld_req *rq,
		     uint32_t len)
{
	uint8_t st = __atomic_load_n(rq->status, __ATOMIC_RELAXED);

	switch (st) {
	case VIRTIO_BLK_S_OK:
		/* 2.7.8.1: nothing beyond used.len is data the device wrote. */
		if (rq->in_len && len < rq->in_len + 1u) {
			sc->st.short_in++;
			return viod_fe_error(sc->fe, -EIO,
					     "ld: queue %u: device wrote %u of %u bytes",
					     q->idx, len, rq->in_len + 1);
		}
		return 0;
	case VIRTIO_BLK_S_IOERR:
		sc->st.ioerr++;
		return viod_fe_error(sc->fe, -EIO, "ld: device reports an I/O error");
	case VIRTIO_BLK_S_UNSUPP:
		sc->st.unsupp++;
		return viod_fe_error(sc->fe, -EOPNOTSUPP,
				     "ld: device does not support the request");
	default:
		return ld_broken(sc, viod_fe_error(sc->fe, -EIO,
			"ld: queue %u: device returned status %u", q->idx, st));
	}
}

static int ld_kick(struct ld *sc, const struct ld_queue *q)
{
	int r = viod_fe_kick(sc->fe, q->idx);

	return r < 0 ? ld_broken(sc, r) : 0;
}

static int ld_wait(struct ld *sc, const struct ld_queue *q)
{
	int r = viod_fe_wait(sc->fe, q->idx, sc->opts.timeout_ms);

	if (r == 0)
		return ld_broken(sc, viod_fe_error(sc->fe, -ETIMEDOUT,
			"ld: queue %u: device completed nothing within %d ms",
			q->idx, sc->opts.timeout_ms));
	return r < 0 ? ld_broken(sc, r) : 0;
}

/* ------------------------------------------------------------------ */
/* Synchronous operations: chunks of one job on queue 0.               */

struct ld_job {
	uint32_t type;
	uint64_t first;           /* first sector of the job */
	uint64_t next;            /* next sector to submit */
	uint64_t end;             /* sector past the last */
	uint64_t chunk;           /* sectors per request */
	uint32_t flags;           /* DISCARD / WRITE_ZEROES segment flags */
	const uint8_t *src;       /* OUT */
	uint8_t *dst;             /* IN and GET_ID */
	uint32_t in_len;          /* GET_ID */
};

/* Fills free slot s with the job's next chunk and posts it. */
static int ld_job_post(struct ld *sc, struct ld_queue *q, unsigned int s,
		       struct ld_job *j, uint64_t *n)
{
	struct ld_req *rq = &q->reqs[s];
	struct virtio_blk_discard_write_zeroes seg;
	uint64_t left = j->end - j->next;
	uint32_t out_len = 0, in_len = 0, bytes;
	uint64_t sector = 0;

	*n = left < j->chunk ? left : j->chunk;
	bytes = (uint32_t)(*n << LD_SECTOR_SHIFT);
	switch (j->type) {
	case VIRTIO_BLK_T_IN:
		sector = j->next;
		in_len = bytes;
		break;
	case VIRTIO_BLK_T_OUT:
		sector = j->next;
		out_len = bytes;
		memcpy(rq->data, j->src + ((j->next - j->first) << LD_SECTOR_SHIFT), bytes);
		break;
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES:
		seg.sector = htole64(j->next);
		seg.num_sectors = htole32((uint32_t)*n);
		seg.flags = htole32(j->flags);
		memcpy(rq->data, &seg, sizeof(seg));
		out_len = sizeof(seg);
		break;
	case VIRTIO_BLK_T_GET_ID:
		/* Zeroed first: a device that writes only the string and its
		 * NUL leaves no stale bytes of an earlier request behind. */
		in_len = j->in_len;
		memset(rq->data, 0, in_len);
		break;
	default:                  /* FLUSH */
		break;
	}
	rq->tag = j->next;
	return ld_post(sc, q, s, j->type, 0, sector, out_len, in_len);
}

/* What a completed chunk leaves for the caller (IN and GET_ID data). */
static void ld_job_done(const struct ld_job *j, const struct ld_req *rq)
{
	if (j->type == VIRTIO_BLK_T_IN)
		memcpy(j->dst + ((rq->tag - j->first) << LD_SECTOR_SHIFT), rq->data,
		       rq->in_len);
	else if (j->type == VIRTIO_BLK_T_GET_ID)
		memcpy(j->dst, rq->data, rq->in_len);
}

/*
 * Runs a job: keeps up to queue_depth chunks in flight on queue 0; after
 * the first chunk that fails, submits no more and waits for the rest.
 * Returns the first failure.
 */
static int ld_job_run(struct ld *sc, struct ld_job *j)
{
	struct ld_queue *q = &sc->queues[0];
	unsigned int inflight = 0;
	int err = 0, r;

	for (;;) {
		bool posted = false;

		while (!err && j->next < j->end && q->nfree > 0) {
			uint64_t n;

			r = ld_job_post(sc, q, ld_slot(q), j, &n);
			if (r == -ENOSPC && inflight > 0)
				break;
			if (r < 0)
				return ld_broken(sc, viod_fe_error(sc->fe, -EIO,
					"ld: queue %u: cannot post a request (%s)",
					q->idx, strerror(-r)));
			j->next += n;
			inflight++;
			posted = true;
		}
		if (posted && (r = ld_kick(sc, q)) < 0)
			return r;
		if (inflight == 0)
			return err;
		r = ld_wait(sc, q);
		if (r < 0)
			return r;
		for (;;) {
			unsigned int s;
			uint32_t len;

			r = ld_take(sc, q, &s, &len);
			if (r < 0)
				return r;
			if (r == 0)
				break;
			inflight--;
			r = ld_status(sc, q, &q->reqs[s], len);
			if (sc->broken)
				return r;
			if (r == 0)
				ld_job_done(j, &q->reqs[s]);
			else if (!err)
				err = r;
		}
	}
}

/* Checks [sector, sector + nsectors) is a blk_size-aligned range inside
 * the disk. */
static int ld_check_range(struct ld *sc, uint64_t sector, uint64_t nsectors)
{
	uint64_t blk_sectors = sc->geo.blk_size >> LD_SECTOR_SHIFT;

	if (sc->broken || !sc->queues)
		return -EIO;
	if (nsectors == 0 || sector % blk_sectors || nsectors % blk_sectors)
		return viod_fe_error(sc->fe, -EINVAL,
				     "ld: %llu sectors at %llu: not whole %u-byte blocks",
				     (unsigned long long)nsectors,
				     (unsigned long long)sector, sc->geo.blk_size);
	if (sector > sc->geo.capacity || nsectors > sc->geo.capacity - sector)
		return viod_fe_error(sc->fe, -ERANGE,
				     "ld: sectors %llu..%llu are past the capacity of %llu",
				     (unsigned long long)sector,
				     (unsigned long long)(sector + nsectors - 1),
				     (unsigned long long)sc->geo.capacity);
	return 0;
}

static int ld_rw(struct ld *sc, uint32_t type, uint64_t sector, const void *src,
		 void *dst, size_t len)
{
	struct ld_job j = { .type = type, .first = sector, .next = sector,
			    .src = src, .dst = dst };
	int r;

	if (len % LD_SECTOR_SIZE)
		return viod_fe_error(sc->fe, -EINVAL,
				     "ld: %zu bytes is not a whole number of sectors", len);
	r = ld_check_range(sc, sector, len >> LD_SECTOR_SHIFT);
	if (r < 0)
		return r;
	if (type == VIRTIO_BLK_T_OUT && sc->geo.readonly)
		return viod_fe_error(sc->fe, -EROFS, "ld: the device is read-only");
	j.end = sector + (len >> LD_SECTOR_SHIFT);
	j.chunk = sc->max_transfer >> LD_SECTOR_SHIFT;
	return ld_job_run(sc, &j);
}

int ld_read(struct ld *sc, uint64_t sector, void *buf, size_t len)
{
	return ld_rw(sc, VIRTIO_BLK_T_IN, sector, NULL, buf, len);
}

int ld_write(struct ld *sc, uint64_t sector, const void *buf, size_t len)
{
	return ld_rw(sc, VIRTIO_BLK_T_OUT, sector, buf, NULL, len);
}

int ld_flush(struct ld *sc)
{
	struct ld_job j = { .type = VIRTIO_BLK_T_FLUSH, .end = 1, .chunk = 1 };

	if (sc->broken || !sc->queues)
		return -EIO;
	if (!ld_has(sc, VIRTIO_BLK_F_FLUSH))
		return 0;
	return ld_job_run(sc, &j);
}

static int ld_zero_range(struct ld *sc, uint32_t type, unsigned int feature,
			 uint32_t max_sectors, uint64_t sector, uint64_t nsectors,
			 uint32_t flags)
{
	uint64_t blk_sectors = sc->geo.blk_size >> LD_SECTOR_SHIFT;
	struct ld_job j = { .type = type, .first = sector, .next = sector,
			    .flags = flags };
	int r;

	r = ld_check_range(sc, sector, nsectors);
	if (r < 0)
		return r;
	if (!ld_has(sc, feature))
		return viod_fe_error(sc->fe, -EOPNOTSUPP, "ld: %s not negotiated",
				     type == VIRTIO_BLK_T_DISCARD ? "DISCARD" : "WRITE_ZEROES");
	if (sc->geo.readonly)
		return viod_fe_error(sc->fe, -EROFS, "ld: the device is read-only");
	j.chunk = max_sectors - max_sectors % blk_sectors;
	if (j.chunk == 0)
		return viod_fe_error(sc->fe, -EOPNOTSUPP,
				     "ld: the device's limit of %u sectors is less than a block",
				     max_sectors);
	j.end = sector + nsectors;
	return ld_job_run(sc, &j);
}

int ld_discard(struct ld *sc, uint64_t sector, uint64_t nsectors)
{
	return ld_zero_range(sc, VIRTIO_BLK_T_DISCARD, VIRTIO_BLK_F_DISCARD,
			     sc->geo.max_discard_sectors, sector, nsectors, 0);
}

int ld_write_zeroes(struct ld *sc, uint64_t sector, uint64_t nsectors, bool unmap)
{
	return ld_zero_range(sc, VIRTIO_BLK_T_WRITE_ZEROES, VIRTIO_BLK_F_WRITE_ZEROES,
			     sc->geo.max_write_zeroes_sectors, sector, nsectors,
			     unmap ? VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP : 0);
}

int ld_get_id(struct ld *sc, uint8_t id[VIRTIO_BLK_ID_BYTES])
{
	struct ld_job j = { .type = VIRTIO_BLK_T_GET_ID, .end = 1, .chunk = 1,
			    .dst = id, .in_len = VIRTIO_BLK_ID_BYTES };

	if (sc->broken || !sc->queues)
		return -EIO;
	if (sc->max_transfer < VIRTIO_BLK_ID_BYTES)
		return -EINVAL;
	return ld_job_run(sc, &j);
}

int ld_raw(struct ld *sc, unsigned int qi, const struct ld_raw_req *rq,
	   uint8_t *status, uint32_t *used_len)
{
	struct ld_queue *q;
	unsigned int s, got;
	uint32_t len;
	int r;

	if (sc->broken || !sc->queues)
		return -EIO;
	if (qi >= sc->nqueues || rq->out_len > sc->max_transfer ||
	    rq->in_len > sc->max_transfer - rq->out_len ||
	    (rq->out_len && !rq->out) || (rq->in_len && !rq->in))
		return viod_fe_error(sc->fe, -EINVAL,
				     "ld: raw request of %u + %u bytes on queue %u "
				     "(max transfer %u, %u queues)", rq->out_len,
				     rq->in_len, qi, sc->max_transfer, sc->nqueues);
	q = &sc->queues[qi];
	if (q->nfree == 0)
		return ld_broken(sc, -EIO);
	s = ld_slot(q);
	if (rq->out_len)
		memcpy(q->reqs[s].data, rq->out, rq->out_len);
	r = ld_post(sc, q, s, rq->type, rq->ioprio, rq->sector, rq->out_len, rq->in_len);
	if (r == -EINVAL)
		return viod_fe_error(sc->fe, r, "ld: raw request needs more "
				     "descriptors than the ring has");
	if (r < 0)
		return ld_broken(sc, viod_fe_error(sc->fe, -EIO,
			"ld: queue %u: cannot post a request (%s)", qi, strerror(-r)));
	r = ld_kick(sc, q);
	if (r < 0)
		return r;
	r = ld_wait(sc, q);
	if (r < 0)
		return r;
	r = ld_take(sc, q, &got, &len);
	if (r < 0)
		return r;
	if (r == 0 || got != s)
		return ld_broken(sc, viod_fe_error(sc->fe, -EIO,
			"ld: queue %u: completion of a request not in flight", qi));
	if (rq->in_len)
		memcpy(rq->in, q->reqs[s].data + rq->out_len, rq->in_len);
	if (status)
		*status = __atomic_load_n(q->reqs[s].status, __ATOMIC_RELAXED);
	if (used_len)
		*used_len = len;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Throughput mode.                                                    */

/* xorshift64* (Vigna): cheap, deterministic, good enough for offsets. */
static uint64_t ld_rand(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545F4914F6CDD1Dull;
}

void ld_pattern_sector(uint64_t seed, uint64_t sector, uint8_t out[LD_SECTOR_SIZE])
{
	uint64_t s = seed * 0x9E3779B97F4A7C15ull ^ (sector + 1) * 0xD1B54A32D192ED03ull;

	if (s == 0)
		s = 1;
	for (unsigned int i = 0; i < LD_SECTOR_SIZE; i += 8) {
		uint64_t v = htole64(ld_rand(&s));

		memcpy(out + i, &v, 8);
	}
}

/*
 * Latency histogram, log-linear: values below 128 ns have a bucket each;
 * above, each power of two is cut into 64 buckets (width < 1.6% of the
 * value).
 */
#define LD_HIST_SUB 64u
#define LD_HIST_BUCKETS (128u + 57u * LD_HIST_SUB)

static unsigned int ld_hist_bucket(uint64_t ns)
{
	unsigned int msb;

	if (ns < 128)
		return (unsigned int)ns;
	msb = 63u - (unsigned int)__builtin_clzll(ns);
	return 128u + (msb - 7u) * LD_HIST_SUB +
	       (unsigned int)((ns >> (msb - 6u)) - LD_HIST_SUB);
}

/* The middle of bucket b, in ns. */
static double ld_hist_value(unsigned int b)
{
	unsigned int k, shift;
	uint64_t low;

	if (b < 128)
		return b;
	k = (b - 128u) / LD_HIST_SUB;
	shift = k + 1u;
	low = (uint64_t)(LD_HIST_SUB + (b - 128u) % LD_HIST_SUB) << shift;
	return (double)low + (double)((1ull << shift) - 1) / 2.0;
}

/* The value below which a fraction p of n samples lie, in ns. */
static double ld_hist_percentile(const uint64_t *h, uint64_t n, double p)
{
	uint64_t rank = (uint64_t)(p * (double)n), seen = 0;

	if (rank < 1)
		rank = 1;
	if ((double)rank < p * (double)n)
		rank++;
	for (unsigned int b = 0; b < LD_HIST_BUCKETS; b++) {
		seen += h[b];
		if (seen >= rank)
			return ld_hist_value(b);
	}
	return 0;
}

struct ld_bench_run {
	const struct ld_bench_opts *o;
	uint64_t rng;
	uint64_t first;           /* region start */
	uint64_t nblocks;         /* block_size blocks in the region */
	uint32_t bs_sectors;
	unsigned int inflight[LD_MAX_QUEUES];
	uint64_t submitted, completed;
	uint64_t *hist;
	int err;                  /* first failed completion */
};

/* Tops queue q up to depth requests (fewer if the ring is full). */
static int ld_bench_fill(struct ld *sc, struct ld_bench_run *b, struct ld_queue *q,
			 unsigned int qi)
{
	const struct ld_bench_opts *o = b->o;
	bool posted = false;

	while (b->inflight[qi] < o->depth && q->nfree > 0 &&
	       (o->requests == 0 || b->submitted < o->requests)) {
		unsigned int s = ld_slot(q);
		uint64_t sector = b->first + (ld_rand(&b->rng) % b->nblocks) * b->bs_sectors;
		int r;

		q->reqs[s].submit_ns = (uint64_t)ld_now_ns();
		r = ld_post(sc, q, s, o->write ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN, 0,
			    sector, o->write ? o->block_size : 0,
			    o->write ? 0 : o->block_size);
		if (r == -ENOSPC && b->inflight[qi] > 0)
			break;
		if (r < 0)
			return ld_broken(sc, viod_fe_error(sc->fe, -EIO,
				"ld: queue %u: cannot post a request (%s)", qi, strerror(-r)));
		b->inflight[qi]++;
		b->submitted++;
		posted = true;
	}
	return posted ? ld_kick(sc, q) : 0;
}

/* Takes every completion of queue q seen at time now. */
static int ld_bench_reap(struct ld *sc, struct ld_bench_run *b, struct ld_queue *q,
			 unsigned int qi, uint64_t now)
{
	for (;;) {
		unsigned int s;
		uint32_t len;
		int r = ld_take(sc, q, &s, &len);

		if (r <= 0)
			return r;
		b->inflight[qi]--;
		b->completed++;
		b->hist[ld_hist_bucket(now - q->reqs[s].submit_ns)]++;
		r = ld_status(sc, q, &q->reqs[s], len);
		if (sc->broken)
			return r;
		if (r < 0 && !b->err)
			b->err = r;
	}
}

static int ld_bench_check(struct ld *sc, const struct ld_bench_opts *o,
			  struct ld_bench_run *b)
{
	uint64_t blk_sectors = sc->geo.blk_size >> LD_SECTOR_SHIFT, len;

	if (sc->broken || !sc->queues)
		return -EIO;
	if (o->block_size == 0 || o->block_size % sc->geo.blk_size ||
	    o->block_size > sc->max_transfer)
		return viod_fe_error(sc->fe, -EINVAL,
				     "ld: block size %u: expected a multiple of %u up to %u",
				     o->block_size, sc->geo.blk_size, sc->max_transfer);
	if (o->depth == 0 || o->depth > sc->opts.queue_depth)
		return viod_fe_error(sc->fe, -EINVAL, "ld: depth %u: expected 1..%u",
				     o->depth, sc->opts.queue_depth);
	if ((o->seconds > 0) == (o->requests > 0) || o->seconds < 0)
		return viod_fe_error(sc->fe, -EINVAL,
				     "ld: give a duration or a request count");
	if (o->write && sc->geo.readonly)
		return viod_fe_error(sc->fe, -EROFS, "ld: the device is read-only");
	if (o->region_sector % blk_sectors || o->region_sector >= sc->geo.capacity)
		return viod_fe_error(sc->fe, -ERANGE,
				     "ld: region start %llu: not a block inside the disk",
				     (unsigned long long)o->region_sector);
	len = o->region_sectors ? o->region_sectors : sc->geo.capacity - o->region_sector;
	if (len > sc->geo.capacity - o->region_sector)
		return viod_fe_error(sc->fe, -ERANGE, "ld: region past the capacity");
	b->bs_sectors = o->block_size >> LD_SECTOR_SHIFT;
	b->nblocks = len / b->bs_sectors;
	b->first = o->region_sector;
	if (b->nblocks == 0)
		return viod_fe_error(sc->fe, -ERANGE,
				     "ld: the region holds no %u-byte block", o->block_size);
	return 0;
}

int ld_bench(struct ld *sc, const struct ld_bench_opts *o, struct ld_bench_stats *st)
{
	struct ld_bench_run b = { .o = o };
	unsigned int idx[LD_MAX_QUEUES];
	int64_t start, deadline, last;
	bool stop = false;
	int r;

	r = ld_bench_check(sc, o, &b);
	if (r < 0)
		return r;
	b.hist = calloc(LD_HIST_BUCKETS, sizeof(*b.hist));
	if (!b.hist)
		return -ENOMEM;
	b.rng = o->seed ? o->seed : 0x9E3779B97F4A7C15ull;
	for (unsigned int i = 0; i < sc->nqueues; i++)
		idx[i] = sc->queues[i].idx;

	start = last = ld_now_ns();
	deadline = start + (int64_t)(o->seconds * 1e9);
	for (;;) {
		unsigned int inflight = 0;
		int64_t now;

		for (unsigned int i = 0; i < sc->nqueues && !stop; i++) {
			r = ld_bench_fill(sc, &b, &sc->queues[i], i);
			if (r < 0)
				goto out;
		}
		for (unsigned int i = 0; i < sc->nqueues; i++)
			inflight += b.inflight[i];
		if (inflight == 0)
			break;
		r = viod_fe_wait_any(sc->fe, idx, sc->nqueues, false, sc->opts.timeout_ms);
		if (r == 0)
			r = viod_fe_error(sc->fe, -ETIMEDOUT,
					  "ld: no completion within %d ms", sc->opts.timeout_ms);
		if (r < 0) {
			r = ld_broken(sc, r);
			goto out;
		}
		now = ld_now_ns();
		for (unsigned int i = 0; i < sc->nqueues; i++) {
			uint64_t before = b.completed;

			r = ld_bench_reap(sc, &b, &sc->queues[i], i, (uint64_t)now);
			if (r < 0)
				goto out;
			if (b.completed != before)
				last = now;
		}
		if (b.err || (o->seconds > 0 && now >= deadline) ||
		    (o->requests > 0 && b.completed >= o->requests))
			stop = true;
	}
	r = b.err;
	if (r == 0) {
		memset(st, 0, sizeof(*st));
		st->requests = b.completed;
		st->seconds = (double)(last - start) / 1e9;
		st->iops = st->seconds > 0 ? (double)b.completed / st->seconds : 0;
		st->p50_us = ld_hist_percentile(b.hist, b.completed, 0.50) / 1e3;
		st->p99_us = ld_hist_percentile(b.hist, b.completed, 0.99) / 1e3;
		st->max_us = ld_hist_percentile(b.hist, b.completed, 1.0) / 1e3;
	}
out:
	free(b.hist);
	return r;
}
