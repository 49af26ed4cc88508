/*
 * viornd: virtio entropy driver on the userspace front-end. Contracts:
 * viornd.h. Device: virtio 1.2, 5.4 (the device writes up to the buffer
 * size; the driver uses only the bytes reported in used.len).
 */
#include "viornd.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RND_QUEUE 0u

static double rnd_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void viornd_opts_init(struct viornd_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->queue_size = VIORND_DEFAULT_QUEUE_SIZE;
	o->request_size = VIORND_DEFAULT_REQUEST_SIZE;
	o->nbufs = VIORND_DEFAULT_QUEUE_SIZE;
	o->timeout_ms = VIORND_DEFAULT_TIMEOUT_MS;
}

int viornd_attach(struct viornd *sc, struct viod_fe *fe,
		  const struct viornd_opts *opts)
{
	int r;

	memset(sc, 0, sizeof(*sc));
	sc->fe = fe;
	if (opts)
		sc->opts = *opts;
	else
		viornd_opts_init(&sc->opts);
	if (!viod_vq_size_valid(sc->opts.queue_size) ||
	    sc->opts.request_size == 0 ||
	    sc->opts.request_size > VIORND_MAX_REQUEST_SIZE ||
	    sc->opts.nbufs == 0 || sc->opts.nbufs > sc->opts.queue_size)
		return viod_fe_error(fe, -EINVAL,
				     "viornd: bad queue size %u, request size %u or %u buffers",
				     sc->opts.queue_size, sc->opts.request_size,
				     sc->opts.nbufs);

	r = viod_fe_negotiate(fe, 0);
	if (r < 0)
		return r;
	r = viod_fe_queue_setup(fe, RND_QUEUE, sc->opts.queue_size);
	if (r < 0)
		return r;

	sc->bufs = calloc(sc->opts.nbufs, sizeof(*sc->bufs));
	sc->free_bufs = calloc(sc->opts.nbufs, sizeof(*sc->free_bufs));
	if (!sc->bufs || !sc->free_bufs) {
		viornd_detach(sc);
		return viod_fe_error(fe, -ENOMEM, "viornd: out of memory");
	}
	for (unsigned int i = 0; i < sc->opts.nbufs; i++) {
		struct viornd_buf *b = &sc->bufs[i];

		b->host = viod_fe_alloc(fe, sc->opts.request_size, 64, &b->gpa);
		if (!b->host) {
			viornd_detach(sc);
			return viod_fe_error(fe, -ENOMEM,
					     "viornd: no guest memory for %u buffers of %u bytes",
					     sc->opts.nbufs, sc->opts.request_size);
		}
		sc->free_bufs[sc->nfree++] = i;
	}
	r = viod_fe_driver_ok(fe);
	if (r < 0) {
		viornd_detach(sc);
		return r;
	}
	return 0;
}

void viornd_detach(struct viornd *sc)
{
	free(sc->bufs);
	free(sc->free_bufs);
	sc->bufs = NULL;
	sc->free_bufs = NULL;
	sc->nfree = 0;
	sc->broken = true;
}

static int rnd_broken(struct viornd *sc, int err)
{
	sc->broken = true;
	if (err == -EIO)
		return viod_fe_error(sc->fe, err,
				     "viornd: device returned a bad used entry "
				     "(id not in flight or len > posted)");
	return err;
}

static int rnd_empty(struct viornd *sc)
{
	sc->broken = true;
	return viod_fe_error(sc->fe, -EIO,
			     "viornd: device returned %u empty buffers in a row",
			     VIORND_MAX_EMPTY);
}

/* Posts free buffer with len bytes; returns its index, or -errno. */
static int rnd_post(struct viornd *sc, struct viod_vqd *q, uint32_t len)
{
	unsigned int i = sc->free_bufs[sc->nfree - 1];
	struct viod_vqd_buf vb = {
		.gpa = sc->bufs[i].gpa, .len = len, .writable = true,
	};
	int r;

	r = viod_vqd_add(q, &vb, 1, (void *)(uintptr_t)(i + 1));
	if (r < 0)
		return r;
	sc->nfree--;
	sc->bufs[i].posted = len;
	return (int)i;
}

/*
 * Takes one completion: 1 with *idx and *len, 0 if none, -EIO if the
 * device returned a bogus entry (the ring checks id and len <= posted).
 */
static int rnd_take(struct viornd *sc, struct viod_vqd *q, unsigned int *idx,
		    uint32_t *len)
{
	void *cookie;
	uintptr_t c;
	int r;

	r = viod_vqd_get_used(q, &cookie, len);
	if (r <= 0)
		return r;
	c = (uintptr_t)cookie;
	if (c == 0 || c > sc->opts.nbufs)
		return -EIO;
	*idx = (unsigned int)(c - 1);
	sc->free_bufs[sc->nfree++] = *idx;
	sc->requests++;
	sc->bytes += *len;
	if (*len < sc->bufs[*idx].posted)
		sc->short_reads++;
	return 1;
}

static int rnd_wait(struct viornd *sc)
{
	int r = viod_fe_wait(sc->fe, RND_QUEUE, sc->opts.timeout_ms);

	if (r == 0)
		return viod_fe_error(sc->fe, -ETIMEDOUT,
				     "viornd: device returned nothing within %d ms",
				     sc->opts.timeout_ms);
	return r < 0 ? r : 0;
}

/*
 * Takes every completion waiting on the queue: its buffer goes back to the
 * pool, what it had posted leaves *inflight, and its bytes are added to
 * *got, copied to out + *got when out is set (never past cap). *reqs counts
 * completions; too many empty ones in a row is an error. 0 or -errno (the
 * driver is then broken).
 */
static int rnd_reap(struct viornd *sc, struct viod_vqd *q, uint8_t *out, uint64_t cap,
		    uint64_t *got, uint64_t *inflight, uint64_t *reqs, unsigned int *empty)
{
	for (;;) {
		unsigned int i;
		uint32_t n;
		int r = rnd_take(sc, q, &i, &n);

		if (r < 0)
			return rnd_broken(sc, r);
		if (r == 0)
			return 0;
		*inflight -= sc->bufs[i].posted;
		if (out) {
			if (n > cap - *got)
				return rnd_broken(sc, -EIO); /* cannot happen: invariant */
			memcpy(out + *got, sc->bufs[i].host, n);
		}
		*got += n;
		(*reqs)++;
		*empty = n ? 0 : *empty + 1;
		if (*empty >= VIORND_MAX_EMPTY)
			return rnd_empty(sc);
	}
}

int viornd_read(struct viornd *sc, void *buf, size_t len)
{
	struct viod_vqd *q = viod_fe_vqd(sc->fe, RND_QUEUE);
	uint8_t *out = buf;
	uint64_t filled = 0, inflight = 0, reqs = 0;
	unsigned int empty = 0;
	int r;

	if (sc->broken || !q)
		return -EIO;
	while (filled < len) {
		/* Invariant: bytes in flight never exceed bytes missing, so no
		 * completion can overrun out. */
		while (sc->nfree > 0 && inflight < len - filled) {
			size_t want = len - filled - inflight;

			if (want > sc->opts.request_size)
				want = sc->opts.request_size;
			r = rnd_post(sc, q, (uint32_t)want);
			if (r == -ENOSPC)
				break;
			if (r < 0)
				return rnd_broken(sc, r);
			inflight += want;
		}
		r = viod_fe_kick(sc->fe, RND_QUEUE);
		if (r < 0)
			return rnd_broken(sc, r);
		r = rnd_wait(sc);
		if (r < 0)
			return rnd_broken(sc, r);
		r = rnd_reap(sc, q, out, len, &filled, &inflight, &reqs, &empty);
		if (r < 0)
			return r;
	}
	return 0;
}

int viornd_stream(struct viornd *sc, double seconds, uint64_t bytes,
		  struct viornd_stream_stats *st)
{
	struct viod_vqd *q = viod_fe_vqd(sc->fe, RND_QUEUE);
	uint64_t got_bytes = 0, got_reqs = 0, inflight = 0;
	uint32_t rs = sc->opts.request_size;
	double start, deadline;
	unsigned int empty = 0;
	bool stop = false;
	int r;

	if (sc->broken || !q)
		return -EIO;
	if ((seconds > 0) == (bytes > 0) || seconds < 0)
		return -EINVAL;

	start = rnd_now();
	deadline = start + seconds;
	for (;;) {
		if (!stop) {
			while (sc->nfree > 0 &&
			       (bytes == 0 || got_bytes + inflight < bytes)) {
				r = rnd_post(sc, q, rs);
				if (r == -ENOSPC)
					break;
				if (r < 0)
					return rnd_broken(sc, r);
				inflight += rs;
			}
			r = viod_fe_kick(sc->fe, RND_QUEUE);
			if (r < 0)
				return rnd_broken(sc, r);
		}
		if (inflight == 0)
			break;
		r = rnd_wait(sc);
		if (r < 0)
			return rnd_broken(sc, r);
		r = rnd_reap(sc, q, NULL, 0, &got_bytes, &inflight, &got_reqs, &empty);
		if (r < 0)
			return r;
		if (seconds > 0 && rnd_now() >= deadline)
			stop = true;
		if (bytes > 0 && got_bytes >= bytes)
			stop = true;
	}
	st->bytes = got_bytes;
	st->requests = got_reqs;
	st->seconds = rnd_now() - start;
	return 0;
}
