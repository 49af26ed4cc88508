/*
 * virtio-blk requests (virtio 1.2, 5.2.6) on io_uring.
 *
 * Contract, per request: the header (16 bytes) is read from the
 * device-readable part, the status is the last device-writable byte, and
 * nothing touches the image unless the whole request checked out: type
 * known, data length a multiple of the logical block size, sector and
 * length within the capacity (overflow-safe), write-type requests refused
 * on a read-only device, discard / write-zeroes segment counts, flags,
 * sizes and alignment within what config space announced. A bad request
 * completes at once with IOERR or UNSUPP; one without room for a status
 * byte completes with length 0 and counts as an error.
 *
 * Data moves between the image and guest memory directly (readv/writev on
 * the request's own iovecs), with O_DIRECT when the image was opened so
 * and the buffers suit it, buffered otherwise. Each worker has one
 * io_uring for the queues it serves: the queue handler prepares a batch
 * and submits it with one system call, and the completion source (the
 * ring's eventfd) reaps completions in batches and publishes them with
 * one used-index write per queue. A request's buffers stay mapped until
 * it completes (the core's reference-counted memory tables), and before
 * the core forgets held requests (reset, front-end gone) queue_drain
 * waits for their I/O, so the kernel never writes into memory that has
 * gone or been reused.
 */
#include "blk.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

/* Operations reaped per poll call (bounded work). */
#define BLK_REAP_BUDGET 1024u
#define BLK_SQ_ENTRIES 1024u
#define BLK_CQ_ENTRIES 4096u
/* User data: the request, and in its top byte a segment number + 1 and
 * whether that segment was punched. */
#define SEG_SHIFT 56
#define SEG_PUNCH 0x80u
#define REQ_MASK ((1ull << SEG_SHIFT) - 1)

static struct blk_worker *worker_of(struct blk *b, const struct viod_queue *q)
{
	return &b->workers[viod_queue_index(q) % b->nworkers];
}

/* Drops skip bytes from the front of *iov (n entries), in place. */
static void iov_advance(struct iovec **iov, unsigned int *n, uint64_t skip)
{
	while (*n > 0 && skip >= (*iov)->iov_len) {
		skip -= (*iov)->iov_len;
		(*iov)++;
		(*n)--;
	}
	if (*n > 0 && skip) {
		(*iov)->iov_base = (uint8_t *)(*iov)->iov_base + skip;
		(*iov)->iov_len -= skip;
	}
}

/* [sector, sector + bytes / 512) within the capacity and aligned to the
 * logical block size. */
static bool range_ok(const struct blk *b, uint64_t sector, uint64_t bytes)
{
	uint64_t cap = atomic_load_explicit(&b->capacity, memory_order_relaxed);
	uint64_t per_block = b->lbs / BLK_SECTOR, n = bytes / BLK_SECTOR;

	return bytes % b->lbs == 0 && sector % per_block == 0 &&
	       sector <= cap && n <= cap - sector;
}

/* A worker's counter: one writer at a time (the worker, or the primary
 * while it is parked), readers on the control thread; no locked RMW. */
static inline void count(atomic_uint_fast64_t *c, uint64_t n)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
			      memory_order_relaxed);
}

static void mark_flush(struct blk_worker *w, struct viod_queue *q)
{
	for (unsigned int i = 0; i < w->nflush; i++)
		if (w->flush[i] == q)
			return;
	if (w->nflush < BLK_MAX_QUEUES)
		w->flush[w->nflush++] = q;
	else
		viod_queue_flush(q);
}

static void flush_all(struct blk_worker *w)
{
	while (w->nflush > 0)
		viod_queue_flush(w->flush[--w->nflush]);
}

/* Writes the status and gives the request back (guest memory: last). */
static void finish(struct blk_worker *w, struct blk_req *br)
{
	uint32_t used = 1;

	if (br->kind == BLK_K_READ || br->kind == BLK_K_GET_ID)
		used = (uint32_t)MIN(br->moved + 1, UINT32_MAX);
	count(&w->c.requests[br->kind], 1);
	if (br->kind == BLK_K_READ)
		count(&w->c.bytes_read, br->moved);
	else if (br->kind == BLK_K_WRITE)
		count(&w->c.bytes_written, br->moved);
	if (br->result != VIRTIO_BLK_S_OK) {
		count(&w->c.errors, 1);
		viod_queue_count_error(br->q);
	}
	*br->status = br->result;
	viod_queue_complete(br->q, br->r, used);
	mark_flush(w, br->q);
}

static void fail(struct blk_worker *w, struct blk_req *br, uint8_t status)
{
	br->result = status;
	finish(w, br);
}

/* An SQE, submitting what is queued if the ring is full; NULL if none. */
static struct io_uring_sqe *get_sqe(struct blk_worker *w)
{
	struct io_uring_sqe *sqe;

	if (!w->ring_ok)
		return NULL;
	sqe = io_uring_get_sqe(&w->ring);

	if (!sqe && io_uring_submit(&w->ring) >= 0) {
		w->sq_pending = 0;
		sqe = io_uring_get_sqe(&w->ring);
	}
	if (sqe)
		w->sq_pending++;
	return sqe;
}

static void submit(struct blk_worker *w)
{
	int rc;

	if (!w->sq_pending || !w->ring_ok)
		return;
	rc = io_uring_submit(&w->ring);
	if (rc >= 0)
		w->sq_pending = 0;
	/* -EAGAIN / -EBUSY: retried on the next handler or poll call. */
}

static void op_started(struct blk_worker *w, struct blk_req *br, struct io_uring_sqe *sqe)
{
	io_uring_sqe_set_data(sqe, br);
	br->ops++;
	w->inflight++;
	w->qops[viod_queue_index(br->q) % BLK_MAX_QUEUES]++;
}

/* Whether O_DIRECT can take the request's buffers and offset. */
static bool direct_ok(const struct blk *b, const struct blk_req *br)
{
	uint64_t mask = b->dio_align - 1;

	if ((br->off | br->len) & mask)
		return false;
	for (unsigned int i = 0; i < br->ndata; i++)
		if (((uintptr_t)br->data[i].iov_base | br->data[i].iov_len) & mask)
			return false;
	return true;
}

/* Starts (or continues) the transfer of a read or write; false if no
 * SQE was free. */
static bool submit_rw(struct blk *b, struct blk_worker *w, struct blk_req *br)
{
	struct io_uring_sqe *sqe = get_sqe(w);
	int fd;

	if (!sqe)
		return false;
	if (b->is_direct && !br->buffered && !direct_ok(b, br))
		br->buffered = true;
	fd = b->is_direct && !br->buffered ? b->fd : b->fd_buffered;
	if (br->kind == BLK_K_READ) {
		io_uring_prep_readv(sqe, fd, br->data, br->ndata, br->off);
	} else {
		io_uring_prep_writev(sqe, fd, br->data, br->ndata, br->off);
		if (!atomic_load_explicit(&b->wce, memory_order_relaxed))
			sqe->rw_flags = RWF_DSYNC;
	}
	op_started(w, br, sqe);
	return true;
}

/*
 * One segment of a discard or write-zeroes: a hole reads as zeros, so
 * both punch when allowed to deallocate; write-zeroes without UNMAP keeps
 * the blocks (ZERO_RANGE), or punches where the file system has no
 * ZERO_RANGE (tmpfs, memfd). The segment index travels in the top byte of
 * the user data.
 */
static bool submit_zero(struct blk *b, struct blk_worker *w, struct blk_req *br,
			unsigned int i, bool unmap)
{
	struct io_uring_sqe *sqe = get_sqe(w);
	int mode = FALLOC_FL_KEEP_SIZE;

	bool punch = unmap || atomic_load_explicit(&b->no_zero_range, memory_order_relaxed);

	if (!sqe)
		return false;
	mode |= punch ? FALLOC_FL_PUNCH_HOLE : FALLOC_FL_ZERO_RANGE;
	io_uring_prep_fallocate(sqe, b->fd_buffered, mode, br->seg[i].off, br->seg[i].len);
	op_started(w, br, sqe);
	sqe->user_data |= (uint64_t)((i + 1) | (punch ? SEG_PUNCH : 0)) << SEG_SHIFT;
	return true;
}

/* Discard / write-zeroes on a block device: the kernel has no io_uring
 * operation for them here, so they run synchronously (bounded by
 * BLK_MAX_DISCARD_SECTORS per segment). */
static int blockdev_zero(struct blk *b, bool discard, uint64_t off, uint64_t len)
{
	uint64_t range[2] = { off, len };

	if (ioctl(b->fd, discard ? BLKDISCARD : BLKZEROOUT, range) < 0)
		return -errno;
	return 0;
}

/*
 * Discard and write-zeroes (5.2.6.2): checks every segment first, then
 * starts one operation per segment. Returns false if the SQ had no room.
 */
static bool start_zero(struct blk *b, struct blk_worker *w, struct blk_req *br,
		       struct viod_req *r)
{
	struct virtio_blk_discard_write_zeroes seg[BLK_MAX_DISCARD_SEG];
	bool discard = br->type == VIRTIO_BLK_T_DISCARD;
	uint64_t bytes = r->out_len - sizeof(struct virtio_blk_outhdr);
	unsigned int n = (unsigned int)(bytes / sizeof(seg[0]));

	if (b->read_only) {
		fail(w, br, VIRTIO_BLK_S_IOERR);
		return true;
	}
	if (b->no_discard && discard) {
		fail(w, br, VIRTIO_BLK_S_UNSUPP);
		return true;
	}
	if (bytes % sizeof(seg[0]) || n == 0 || n > BLK_MAX_DISCARD_SEG) {
		fail(w, br, VIRTIO_BLK_S_UNSUPP);
		return true;
	}
	if (viod_iov_to_buf(r->iov, r->out_num, sizeof(struct virtio_blk_outhdr), seg,
		       n * sizeof(seg[0])) != n * sizeof(seg[0])) {
		fail(w, br, VIRTIO_BLK_S_IOERR);
		return true;
	}
	for (unsigned int i = 0; i < n; i++) {
		uint64_t sector = le64toh(seg[i].sector);
		uint32_t num = le32toh(seg[i].num_sectors), flags = le32toh(seg[i].flags);

		/* Discard takes no flags; write-zeroes only UNMAP. */
		if (flags & ~(discard ? 0u : VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP)) {
			fail(w, br, VIRTIO_BLK_S_UNSUPP);
			return true;
		}
		if (num == 0 || num > BLK_MAX_DISCARD_SECTORS ||
		    !range_ok(b, sector, (uint64_t)num * BLK_SECTOR)) {
			fail(w, br, VIRTIO_BLK_S_IOERR);
			return true;
		}
	}
	if (b->null_backend) {
		fail(w, br, VIRTIO_BLK_S_OK);
		return true;
	}
	if (b->is_blockdev) {
		for (unsigned int i = 0; i < n; i++) {
			int rc = blockdev_zero(b, discard, le64toh(seg[i].sector) * BLK_SECTOR,
					       (uint64_t)le32toh(seg[i].num_sectors) * BLK_SECTOR);

			if (rc < 0) {
				fail(w, br, rc == -EOPNOTSUPP ? VIRTIO_BLK_S_UNSUPP
							      : VIRTIO_BLK_S_IOERR);
				return true;
			}
		}
		fail(w, br, VIRTIO_BLK_S_OK);
		return true;
	}
	if (io_uring_sq_space_left(&w->ring) < n) {
		submit(w);
		if (io_uring_sq_space_left(&w->ring) < n)
			return false;
	}
	for (unsigned int i = 0; i < n; i++) {
		bool unmap = discard || (le32toh(seg[i].flags) & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP);

		br->seg[i].off = le64toh(seg[i].sector) * BLK_SECTOR;
		br->seg[i].len = (uint64_t)le32toh(seg[i].num_sectors) * BLK_SECTOR;
		/* Space was checked above. */
		(void)submit_zero(b, w, br, i, unmap);
	}
	return true;
}

/*
 * Starts one popped request. Returns false if the submission queue had no
 * room (the request is then untouched, for the caller to unpop).
 */
static bool start(struct blk *b, struct blk_worker *w, struct viod_queue *q,
		  struct viod_req *r)
{
	struct blk_req *br = r->priv;
	struct virtio_blk_outhdr hdr;
	unsigned int last, first_in = r->out_num;
	uint64_t sector;

	br->q = q;
	br->r = r;
	br->result = VIRTIO_BLK_S_OK;
	/* The status byte: the last byte of the last non-empty writable
	 * descriptor. Without one there is no way to answer. */
	last = r->out_num + r->in_num;
	while (last > first_in && r->iov[last - 1].iov_len == 0)
		last--;
	if (last == first_in) {
		count(&w->c.errors, 1);
		viod_queue_count_error(q);
		viod_dev_warn(w->dev, "queue %u: request without a status byte",
			      viod_queue_index(q));
		viod_queue_complete(q, r, 0);
		mark_flush(w, q);
		return true;
	}
	br->status = (uint8_t *)r->iov[last - 1].iov_base + r->iov[last - 1].iov_len - 1;
	br->kind = BLK_K_UNSUPPORTED;
	count(&w->c.started, 1);
	if (viod_iov_to_buf(r->iov, r->out_num, 0, &hdr, sizeof(hdr)) != sizeof(hdr)) {
		fail(w, br, VIRTIO_BLK_S_IOERR);
		return true;
	}
	br->type = le32toh(hdr.type);
	sector = le64toh(hdr.sector);
	if (!b->null_backend && !w->ring_ok) {
		fail(w, br, VIRTIO_BLK_S_IOERR);
		return true;
	}

	switch (br->type) {
	case VIRTIO_BLK_T_IN:
		br->kind = BLK_K_READ;
		/* Data: the writable part without the status byte. */
		r->iov[last - 1].iov_len--;
		br->data = r->iov + first_in;
		br->ndata = last - first_in;
		br->len = r->in_len - 1;
		break;
	case VIRTIO_BLK_T_OUT:
		br->kind = BLK_K_WRITE;
		if (b->read_only) {
			fail(w, br, VIRTIO_BLK_S_IOERR);
			return true;
		}
		br->data = r->iov;
		br->ndata = r->out_num;
		iov_advance(&br->data, &br->ndata, sizeof(hdr));
		br->len = r->out_len - sizeof(hdr);
		break;
	case VIRTIO_BLK_T_FLUSH: {
		struct io_uring_sqe *sqe;

		br->kind = BLK_K_FLUSH;
		if (b->null_backend || b->read_only) {
			fail(w, br, VIRTIO_BLK_S_OK);
			return true;
		}
		if (!(sqe = get_sqe(w)))
			return false;
		io_uring_prep_fsync(sqe, b->fd, IORING_FSYNC_DATASYNC);
		op_started(w, br, sqe);
		return true;
	}
	case VIRTIO_BLK_T_GET_ID: {
		br->kind = BLK_K_GET_ID;
		r->iov[last - 1].iov_len--;
		/* Up to 20 bytes, NUL-padded when shorter (5.2.6.1). */
		br->moved = viod_iov_from_buf(r->iov + first_in, last - first_in, 0, b->serial,
				       VIRTIO_BLK_ID_BYTES);
		fail(w, br, VIRTIO_BLK_S_OK);
		return true;
	}
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES:
		br->kind = br->type == VIRTIO_BLK_T_DISCARD ? BLK_K_DISCARD : BLK_K_WRITE_ZEROES;
		return start_zero(b, w, br, r);
	default:
		fail(w, br, VIRTIO_BLK_S_UNSUPP);
		return true;
	}

	if (!range_ok(b, sector, br->len)) {
		fail(w, br, VIRTIO_BLK_S_IOERR);
		return true;
	}
	br->off = sector * BLK_SECTOR;
	if (b->null_backend || br->len == 0) {
		br->moved = b->null_backend ? br->len : 0;
		fail(w, br, VIRTIO_BLK_S_OK);
		return true;
	}
	return submit_rw(b, w, br);
}

enum viod_serve blk_queue(struct viod_dev *dev, struct viod_queue *q)
{
	struct blk *b = viod_dev_priv(dev);
	struct blk_worker *w = worker_of(b, q);
	unsigned int n = 0;

	while (n < BLK_BUDGET) {
		struct viod_req *r = viod_queue_pop(q);

		if (!r)
			break;
		if (!start(b, w, q, r)) {
			count(&w->c.started, (uint64_t)-1);
			viod_queue_unpop(q, r);
			break;
		}
		n++;
	}
	submit(w);
	flush_all(w);
	/* Unsubmitted SQEs (the kernel said EBUSY): keep calling. */
	if (n || w->sq_pending)
		return VIOD_SERVE_PROGRESS;
	/* Requests waiting for I/O: a completion calls us again (the ring
	 * may be full of them, nothing to poll for until then). */
	return viod_queue_held(q) ? VIOD_SERVE_BLOCKED : VIOD_SERVE_IDLE;
}

/* One completed operation of br; res as io_uring reports it. */
static void op_done(struct blk *b, struct blk_worker *w, struct blk_req *br, int res,
		    unsigned int seg)
{
	/* Bookkeeping first: guest memory may fault below. */
	br->ops--;
	w->inflight--;
	w->qops[viod_queue_index(br->q) % BLK_MAX_QUEUES]--;

	if (br->kind == BLK_K_READ || br->kind == BLK_K_WRITE) {
		if (res == -EINVAL && b->is_direct && !br->buffered) {
			/* The kernel wants other alignment than we assumed. */
			br->buffered = true;
			viod_dev_warn(w->dev, "O_DIRECT refused a request; served buffered");
			if (submit_rw(b, w, br))
				return;
		} else if (res == -EINTR || res == -EAGAIN) {
			if (submit_rw(b, w, br))
				return;
		} else if (res > 0 && (uint64_t)res < br->len) {
			/* Short transfer: go on from where it stopped. */
			br->moved += (uint64_t)res;
			br->off += (uint64_t)res;
			br->len -= (uint64_t)res;
			iov_advance(&br->data, &br->ndata, (uint64_t)res);
			if (submit_rw(b, w, br))
				return;
			res = -EIO;
		} else if (res > 0) {
			br->moved += (uint64_t)res;
			br->len = 0;
		} else if (res == 0) {
			res = -EIO; /* end of file: the image shrank */
		}
	}
	if (res == -EOPNOTSUPP && seg && !(seg & SEG_PUNCH)) {
		atomic_store(&b->no_zero_range, true);
		if (submit_zero(b, w, br, (seg & ~SEG_PUNCH) - 1, true))
			return;
	}
	if (res < 0 && br->result == VIRTIO_BLK_S_OK)
		br->result = res == -EOPNOTSUPP ? VIRTIO_BLK_S_UNSUPP : VIRTIO_BLK_S_IOERR;
	if (res < 0)
		viod_dev_warn(w->dev, "queue %u: %s failed: %s", viod_queue_index(br->q),
			      br->kind == BLK_K_READ ? "read" : br->kind == BLK_K_WRITE ? "write" :
			      br->kind == BLK_K_FLUSH ? "flush" : "discard", g_strerror(-res));
	if (br->ops == 0)
		finish(w, br);
}

/* Reaps up to max completions; returns how many. */
static unsigned int reap(struct blk *b, struct blk_worker *w, unsigned int max)
{
	struct io_uring_cqe *cqe;
	unsigned int n = 0;

	while (n < max && io_uring_peek_cqe(&w->ring, &cqe) == 0) {
		struct blk_req *br = (struct blk_req *)(uintptr_t)(cqe->user_data & REQ_MASK);
		unsigned int seg = (unsigned int)(cqe->user_data >> SEG_SHIFT);
		int res = cqe->res;

		io_uring_cqe_seen(&w->ring, cqe);
		n++;
		op_done(b, w, br, res, seg);
	}
	return n;
}

/* The worker's completion source. */
static enum viod_serve blk_poll(void *opaque)
{
	struct blk_worker *w = opaque;
	struct blk *b = viod_dev_priv(w->dev);
	unsigned int total = 0;

	for (;;) {
		unsigned int n = reap(b, w, BLK_REAP_BUDGET - total);
		uint64_t v;

		total += n;
		if (n) {
			w->efd_dirty = true;
			if (total >= BLK_REAP_BUDGET)
				break;
			continue;
		}
		if (!w->efd_dirty)
			break;
		/* Everything reaped: clear the eventfd, then look once more
		 * for what completed meanwhile (its signal may be gone). */
		w->efd_dirty = false;
		if (read(w->efd, &v, sizeof(v)) < 0)
			(void)0; /* EAGAIN: nothing signalled */
	}
	submit(w);
	flush_all(w);
	return total || w->sq_pending ? VIOD_SERVE_PROGRESS : VIOD_SERVE_IDLE;
}

/* Waits for the worker's operations (all, or queue qidx's). */
static void wait_ops(struct blk *b, struct blk_worker *w, int qidx)
{
	while (w->ring_ok && (qidx < 0 ? w->inflight : w->qops[qidx % BLK_MAX_QUEUES])) {
		struct io_uring_cqe *cqe;
		int rc;

		submit(w);
		rc = io_uring_wait_cqe(&w->ring, &cqe);
		if (rc == -EINTR || rc == -EAGAIN)
			continue;
		if (rc < 0)
			break;
		reap(b, w, BLK_REAP_BUDGET);
	}
	submit(w);
	flush_all(w);
}

void blk_queue_drain(struct viod_dev *dev, struct viod_queue *q)
{
	struct blk *b = viod_dev_priv(dev);

	if (!b->workers)
		return;
	wait_ops(b, worker_of(b, q), (int)viod_queue_index(q));
}

void blk_worker_start(struct viod_dev *dev, unsigned int worker)
{
	struct blk *b = viod_dev_priv(dev);
	struct blk_worker *w = &b->workers[worker];
	struct io_uring_params p = { .flags = IORING_SETUP_CQSIZE, .cq_entries = BLK_CQ_ENTRIES };
	int rc;

	w->dev = dev;
	w->efd = -1;
	if (b->null_backend)
		return;
	rc = io_uring_queue_init_params(BLK_SQ_ENTRIES, &w->ring, &p);
	if (rc < 0) {
		viod_dev_warn(dev, "worker %u: io_uring: %s; requests fail with IOERR",
			      worker, g_strerror(-rc));
		return;
	}
	w->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (w->efd < 0 || io_uring_register_eventfd(&w->ring, w->efd) < 0 ||
	    (rc = viod_worker_add_source(dev, w->efd, blk_poll, w)) < 0) {
		viod_dev_warn(dev, "worker %u: completion source: %s", worker, g_strerror(errno));
		if (w->efd >= 0)
			close(w->efd);
		w->efd = -1;
		io_uring_queue_exit(&w->ring);
		return;
	}
	w->ring_ok = true;
}

void blk_worker_stop(struct viod_dev *dev, unsigned int worker)
{
	struct blk *b = viod_dev_priv(dev);
	struct blk_worker *w = &b->workers[worker];

	if (!w->ring_ok)
		return;
	wait_ops(b, w, -1);
	io_uring_queue_exit(&w->ring);
	close(w->efd);
	w->efd = -1;
	w->ring_ok = false;
}

int64_t blk_image_size(int fd, bool blockdev)
{
	struct stat st;
	uint64_t size;

	if (blockdev) {
		if (ioctl(fd, BLKGETSIZE64, &size) < 0)
			return -errno;
		return (int64_t)size;
	}
	if (fstat(fd, &st) < 0)
		return -errno;
	return st.st_size;
}
