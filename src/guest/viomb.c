/*
 * viomb: virtio memory balloon driver on the userspace front-end.
 * Contracts: viomb.h. Device: virtio 1.2, 5.5 (operation 5.5.6, driver
 * requirements 5.5.6.1, statistics 5.5.6.3, free page reporting 5.5.6.6).
 */
#include "viomb.h"

#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Cookies: the ring hands them back with each used buffer. */
#define MB_COOKIE_REQ ((void *)(uintptr_t)1)
#define MB_COOKIE_STATS ((void *)(uintptr_t)2)
#define MB_STATS_BYTES (VIOMB_S_NR * VIOMB_STAT_SIZE)
/* Longest reporting run: keeps a request's writable total far below the
 * 32-bit used length (32 runs of 16 MiB). */
#define MB_REPORT_MAX_PAGES 4096u

static int64_t mb_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void viomb_opts_init(struct viomb_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->features = (1ull << VIOMB_F_MUST_TELL_HOST) | (1ull << VIOMB_F_STATS_VQ) |
		      (1ull << VIOMB_F_DEFLATE_ON_OOM);
	o->queue_size = VIOMB_DEFAULT_QUEUE_SIZE;
	o->report_min_pages = VIOMB_DEFAULT_REPORT_MIN;
	o->report_max_pages = VIOMB_DEFAULT_REPORT_MAX;
	o->ack_timeout_ms = VIOMB_DEFAULT_ACK_TIMEOUT_MS;
}

uint32_t viomb_npages(const struct viomb *sc)
{
	return sc->npages;
}

uint32_t viomb_actual(const struct viomb *sc)
{
	return sc->actual;
}

bool viomb_reached(const struct viomb *sc)
{
	return sc->req == VIOMB_REQ_NONE && sc->actual == sc->npages;
}

static int mb_fail(struct viomb *sc, int err)
{
	sc->broken = true;
	return err;
}

/* Guest-memory rule 6: a used id not in flight or a used len above what
 * was posted (0: every balloon buffer but a report is device-readable). */
static int mb_bad_used(struct viomb *sc, unsigned int qi)
{
	return viod_fe_error(sc->fe, -EIO,
			     "viomb: device returned a bad used entry on queue %u "
			     "(id not in flight or len > posted)", qi);
}

static void mb_config_cb(struct viod_fe *fe, void *opaque)
{
	struct viomb *sc = opaque;

	sc->config_dirty = true;
	sc->st.config_changes++;
	if (sc->prev_cb)
		sc->prev_cb(fe, sc->prev_opaque);
}

/*
 * Reads num_pages and actual. num_pages is clamped to the pool: the
 * device may ask for more than there is (or than guest memory), and the
 * driver cannot give it. A changed num_pages lifts an OOM hold. 1 if
 * num_pages changed, 0 if not, -errno.
 */
static int mb_read_config(struct viomb *sc)
{
	uint32_t cfg[2];
	size_t pool = viod_fe_pool_pages(sc->fe);
	uint32_t raw;
	bool changed;
	int r;

	r = viod_fe_get_config(sc->fe, VIOMB_CONFIG_NUM_PAGES, cfg, sizeof(cfg));
	if (r < 0)
		return r;
	sc->config_dirty = false;
	sc->st.config_reads++;
	raw = le32toh(cfg[0]);
	sc->dev_actual = le32toh(cfg[1]);
	changed = raw != sc->npages_raw;
	if (changed)
		sc->oom_hold = false;
	sc->npages_raw = raw;
	if (raw > pool) {
		sc->st.clamped++;
		raw = (uint32_t)pool;
	}
	sc->npages = raw;
	if (sc->dev_actual != sc->actual)
		sc->st.actual_mismatch++;
	return changed;
}

/* 5.5.6: "the driver updates actual to reflect the new number of pages". */
static int mb_write_actual(struct viomb *sc)
{
	uint32_t le = htole32(sc->actual);

	return viod_fe_set_config(sc->fe, VIOMB_CONFIG_ACTUAL, &le, sizeof(le));
}

/*
 * Serves the back-end channel (config change callbacks) and re-reads
 * config if it changed, or on every call when there is no channel to
 * announce changes. A channel that fails is dropped by the front-end;
 * polling config takes over. 1 if num_pages changed, 0, -errno.
 */
static int mb_poll_config(struct viomb *sc)
{
	struct viod_fe *fe = sc->fe;
	int r;

	if (fe->backend_fd >= 0) {
		r = viod_fe_poll_backend(fe, 0);
		if (r < 0 && fe->broken)
			return r;
	}
	if (!sc->config_dirty && fe->backend_fd >= 0)
		return 0;
	return mb_read_config(sc);
}

static void mb_put_stat(uint8_t *p, uint16_t tag, uint64_t val)
{
	uint16_t t = htole16(tag);
	uint64_t v = htole64(val);

	memcpy(p, &t, sizeof(t));
	memcpy(p + sizeof(t), &v, sizeof(v));
}

/*
 * The same ten tags every time (5.5.6.3.1 requires the same subset),
 * from the pool: guest memory in total, the pool's free pages as free
 * and available memory, pages handed out as minor faults; no swap, no
 * page cache, no huge pages.
 */
static void mb_stats_fill(struct viomb *sc)
{
	const struct viod_fe *fe = sc->fe;
	uint64_t free_b = (uint64_t)viod_fe_pool_free(fe) * VIOMB_PAGE_SIZE;
	const uint64_t val[VIOMB_S_NR] = {
		[VIOMB_S_SWAP_IN] = 0,
		[VIOMB_S_SWAP_OUT] = 0,
		[VIOMB_S_MAJFLT] = 0,
		[VIOMB_S_MINFLT] = fe->pool.allocs,
		[VIOMB_S_MEMFREE] = free_b,
		[VIOMB_S_MEMTOT] = fe->mem_size,
		[VIOMB_S_AVAIL] = free_b,
		[VIOMB_S_CACHES] = 0,
		[VIOMB_S_HTLB_PGALLOC] = 0,
		[VIOMB_S_HTLB_PGFAIL] = 0,
	};

	for (unsigned int i = 0; i < VIOMB_S_NR; i++)
		mb_put_stat(sc->statsbuf + i * VIOMB_STAT_SIZE, (uint16_t)i, val[i]);
}

static int mb_stats_post(struct viomb *sc)
{
	struct viod_vqd *q = viod_fe_vqd(sc->fe, (unsigned int)sc->q_stats);
	struct viod_vqd_buf b = {
		.gpa = sc->statsbuf_gpa, .len = MB_STATS_BYTES, .writable = false,
	};
	int r;

	mb_stats_fill(sc);
	r = viod_vqd_add(q, &b, 1, MB_COOKIE_STATS);
	if (r < 0)
		return viod_fe_error(sc->fe, r, "viomb: cannot post the stats buffer");
	sc->stats_posted = true;
	return 0;
}

/*
 * The device used the stats buffer: it wants fresh values (5.5.6.3).
 * Refill, re-post, kick. 1 if served, 0 if not returned, -errno.
 */
static int mb_stats_service(struct viomb *sc)
{
	struct viod_vqd *q;
	void *cookie;
	uint32_t len;
	int r;

	if (sc->q_stats < 0)
		return 0;
	q = viod_fe_vqd(sc->fe, (unsigned int)sc->q_stats);
	r = viod_vqd_get_used(q, &cookie, &len);
	if (r == 0)
		return 0;
	if (r < 0 || cookie != MB_COOKIE_STATS)
		return mb_bad_used(sc, (unsigned int)sc->q_stats);
	sc->stats_posted = false;
	r = mb_stats_post(sc);
	if (r < 0)
		return r;
	r = viod_fe_kick(sc->fe, (unsigned int)sc->q_stats);
	if (r < 0)
		return r;
	sc->st.stats_served++;
	return 1;
}

/* Posts pfns[0 .. n) on queue qi (device-readable) and kicks. */
static int mb_post_pfns(struct viomb *sc, unsigned int qi, uint32_t n)
{
	struct viod_vqd_buf b = {
		.gpa = sc->pfns_gpa, .len = n * (uint32_t)sizeof(uint32_t),
		.writable = false,
	};
	int r;

	r = viod_vqd_add(viod_fe_vqd(sc->fe, qi), &b, 1, MB_COOKIE_REQ);
	return r < 0 ? viod_fe_error(sc->fe, r, "viomb: cannot post on queue %u", qi) : 0;
}

static void mb_req_begin(struct viomb *sc, enum viomb_req_kind kind, uint32_t n)
{
	sc->req = kind;
	sc->req_n = n;
	sc->req_start_ns = mb_now_ns();
}

static unsigned int mb_req_queue(const struct viomb *sc)
{
	switch (sc->req) {
	case VIOMB_REQ_DEFLATE:
		return sc->q_deflate;
	case VIOMB_REQ_REPORT:
		return (unsigned int)sc->q_report;
	default:
		return sc->q_inflate;
	}
}

/*
 * Inflate (5.5.6 step 2): up to VIOMB_PGS_PER_REQ pages from the pool,
 * their PFNs on inflateq. 1 posted, 0 if the pool had no page, -errno.
 */
static int mb_inflate(struct viomb *sc, uint32_t want)
{
	uint32_t n = 0;
	int r;

	if (want > VIOMB_PGS_PER_REQ)
		want = VIOMB_PGS_PER_REQ;
	while (n < want) {
		uint64_t gpa = viod_fe_page_alloc(sc->fe);

		if (gpa == UINT64_MAX)
			break;
		/* PFNs are 32 bits of 4 KiB: pages above 16 TiB cannot go. */
		if ((gpa >> 12) > UINT32_MAX) {
			viod_fe_page_free(sc->fe, gpa);
			break;
		}
		sc->req_pages[n] = gpa;
		sc->pfns[n] = htole32((uint32_t)(gpa >> 12));
		n++;
	}
	if (n == 0) {
		sc->st.alloc_failures++;
		return 0;
	}
	r = mb_post_pfns(sc, sc->q_inflate, n);
	if (r < 0) {
		for (uint32_t i = 0; i < n; i++)
			viod_fe_page_free(sc->fe, sc->req_pages[i]);
		return r;
	}
	mb_req_begin(sc, VIOMB_REQ_INFLATE, n);
	r = viod_fe_kick(sc->fe, sc->q_inflate);
	return r < 0 ? r : 1;
}

/*
 * Deflate (5.5.6 step 3): the oldest pages of the balloon, their PFNs on
 * deflateq. Without MUST_TELL_HOST they are free for reuse once posted;
 * with it, only after the device used the buffer (mb_complete).
 */
static int mb_deflate(struct viomb *sc, uint32_t want)
{
	uint32_t n = 0;
	int r;

	if (want > VIOMB_PGS_PER_REQ)
		want = VIOMB_PGS_PER_REQ;
	if (want > sc->actual)
		want = sc->actual;
	if (want == 0)
		return 0;
	for (; n < want; n++) {
		uint64_t gpa = sc->balloon[(sc->balloon_head + n) % sc->balloon_cap];

		sc->req_pages[n] = gpa;
		sc->pfns[n] = htole32((uint32_t)(gpa >> 12));
	}
	r = mb_post_pfns(sc, sc->q_deflate, n);
	if (r < 0)
		return r;
	sc->balloon_head = (sc->balloon_head + n) % sc->balloon_cap;
	mb_req_begin(sc, VIOMB_REQ_DEFLATE, n);
	if (!sc->must_tell_host)
		for (uint32_t i = 0; i < n; i++)
			viod_fe_page_free(sc->fe, sc->req_pages[i]);
	r = viod_fe_kick(sc->fe, sc->q_deflate);
	return r < 0 ? r : 1;
}

/*
 * Free page reporting (5.5.6.6): runs of free, unreported pool pages,
 * taken out of the pool while the device holds them, as device-writable
 * buffers on reporting_vq. 1 posted, 0 nothing to report, -errno.
 */
static int mb_report(struct viomb *sc)
{
	struct viod_vqd_buf b[VIOMB_REPORT_MAX_SG];
	unsigned int max = VIOMB_REPORT_MAX_SG, n = 0;
	int r;

	if (max > sc->opts.queue_size)
		max = sc->opts.queue_size;
	while (n < max) {
		uint64_t gpa;
		size_t np;

		if (viod_fe_pool_take_unreported(sc->fe, sc->opts.report_min_pages,
						 sc->opts.report_max_pages, &gpa, &np) <= 0)
			break;
		sc->rep_gpa[n] = gpa;
		sc->rep_len[n] = np;
		b[n] = (struct viod_vqd_buf){
			.gpa = gpa, .len = (uint32_t)(np * VIOMB_PAGE_SIZE), .writable = true,
		};
		n++;
	}
	if (n == 0)
		return 0;
	r = viod_vqd_add(viod_fe_vqd(sc->fe, (unsigned int)sc->q_report), b, n,
			 MB_COOKIE_REQ);
	if (r < 0) {
		for (unsigned int i = 0; i < n; i++)
			viod_fe_pool_put_reported(sc->fe, sc->rep_gpa[i], sc->rep_len[i]);
		return viod_fe_error(sc->fe, r, "viomb: cannot post a report");
	}
	mb_req_begin(sc, VIOMB_REQ_REPORT, n);
	r = viod_fe_kick(sc->fe, (unsigned int)sc->q_report);
	return r < 0 ? r : 1;
}

/*
 * The device used the request's buffer: finish it as NetBSD's
 * inflate_done/deflate_done do (pages into or out of the balloon, then
 * actual written, then config re-read).
 */
static int mb_complete(struct viomb *sc)
{
	enum viomb_req_kind kind = sc->req;
	uint32_t n = sc->req_n;
	void *cookie;
	uint32_t len;
	int r;

	r = viod_vqd_get_used(viod_fe_vqd(sc->fe, mb_req_queue(sc)), &cookie, &len);
	if (r == 0)
		return 0;
	if (r < 0 || cookie != MB_COOKIE_REQ)
		return mb_bad_used(sc, mb_req_queue(sc));
	sc->req = VIOMB_REQ_NONE;
	switch (kind) {
	case VIOMB_REQ_INFLATE:
		for (uint32_t i = 0; i < n; i++) {
			size_t tail = (sc->balloon_head + sc->actual + i) % sc->balloon_cap;

			sc->balloon[tail] = sc->req_pages[i];
		}
		sc->actual += n;
		sc->st.inflate_reqs++;
		sc->st.inflated += n;
		break;
	case VIOMB_REQ_DEFLATE:
		if (sc->must_tell_host)
			for (uint32_t i = 0; i < n; i++)
				viod_fe_page_free(sc->fe, sc->req_pages[i]);
		sc->actual -= n;
		sc->st.deflate_reqs++;
		sc->st.deflated += n;
		break;
	case VIOMB_REQ_REPORT:
		for (uint32_t i = 0; i < n; i++) {
			viod_fe_pool_put_reported(sc->fe, sc->rep_gpa[i], sc->rep_len[i]);
			sc->st.reported += sc->rep_len[i];
		}
		sc->st.report_reqs++;
		return 1;
	default:
		return -EIO;
	}
	r = mb_write_actual(sc);
	if (r < 0)
		return r;
	r = mb_read_config(sc);
	return r < 0 ? r : 1;
}

/* Decides and posts at most one request. 1 posted, 0 nothing to do. */
static int mb_start(struct viomb *sc)
{
	if (sc->npages > sc->actual && !sc->oom_hold)
		return mb_inflate(sc, sc->npages - sc->actual);
	if (sc->npages < sc->actual)
		return mb_deflate(sc, sc->actual - sc->npages);
	if (sc->q_report >= 0)
		return mb_report(sc);
	return 0;
}

/* Serves what woke us: the channel, a returned stats buffer. */
static int mb_service(struct viomb *sc)
{
	int r, progress;

	r = mb_poll_config(sc);
	if (r < 0)
		return r;
	progress = r;
	r = mb_stats_service(sc);
	if (r < 0)
		return r;
	return progress | r;
}

/*
 * Waits up to timeout_ms for the request in flight, serving config and
 * stats meanwhile. 1 completed, 0 still in flight (-ETIMEDOUT once it has
 * been in flight longer than the ack timeout), -errno.
 */
static int mb_wait_req(struct viomb *sc, int timeout_ms, int *progress)
{
	int64_t deadline = timeout_ms < 0 ? -1 : mb_now_ns() + (int64_t)timeout_ms * 1000000;
	unsigned int qs[2] = { mb_req_queue(sc), 0 };
	unsigned int nq = 1;
	int r;

	if (sc->q_stats >= 0)
		qs[nq++] = (unsigned int)sc->q_stats;
	for (;;) {
		int64_t now = mb_now_ns(), until = deadline;
		int left;

		if (viod_vqd_has_used(viod_fe_vqd(sc->fe, qs[0])))
			return mb_complete(sc);
		if (sc->opts.ack_timeout_ms >= 0) {
			int64_t ack = sc->req_start_ns +
				      (int64_t)sc->opts.ack_timeout_ms * 1000000;

			if (now >= ack)
				return viod_fe_error(sc->fe, -ETIMEDOUT,
						     "viomb: device did not use the %s request within %d ms",
						     sc->req == VIOMB_REQ_INFLATE ? "inflate" :
						     sc->req == VIOMB_REQ_DEFLATE ? "deflate" : "report",
						     sc->opts.ack_timeout_ms);
			if (until < 0 || ack < until)
				until = ack;
		}
		if (deadline >= 0 && now >= deadline)
			return 0;
		left = until < 0 ? -1 : (int)((until - now + 999999) / 1000000);
		/* Spin first, as viod_fe_wait does, when nothing else can come. */
		if (nq == 1 && sc->fe->backend_fd < 0)
			r = viod_fe_wait(sc->fe, qs[0], left);
		else
			r = viod_fe_wait_any(sc->fe, qs, nq, true, left);
		if (r < 0)
			return r;
		r = mb_service(sc);
		if (r < 0)
			return r;
		*progress |= r;
	}
}

int viomb_step(struct viomb *sc, int timeout_ms)
{
	unsigned int qs[1];
	int r, progress;

	if (sc->broken)
		return -EIO;
	r = mb_service(sc);
	if (r < 0)
		return mb_fail(sc, r);
	progress = r;

	if (sc->req == VIOMB_REQ_NONE) {
		r = mb_start(sc);
		if (r < 0)
			return mb_fail(sc, r);
		if (r == 0) {
			/* Idle: sleep until config changes or stats are due. */
			unsigned int nq = 0;

			if (sc->q_stats >= 0)
				qs[nq++] = (unsigned int)sc->q_stats;
			if (progress || timeout_ms == 0)
				return progress;
			if (nq == 0 && sc->fe->backend_fd < 0) {
				struct timespec ts = {
					.tv_sec = timeout_ms / 1000,
					.tv_nsec = (long)(timeout_ms % 1000) * 1000000,
				};

				if (timeout_ms > 0)
					nanosleep(&ts, NULL);
				return 0;
			}
			r = viod_fe_wait_any(sc->fe, qs, nq, true, timeout_ms);
			if (r > 0)
				r = mb_service(sc);
			if (r < 0)
				return mb_fail(sc, r);
			return r;
		}
	}
	r = mb_wait_req(sc, timeout_ms, &progress);
	if (r < 0)
		return mb_fail(sc, r);
	return progress | r;
}

int viomb_run(struct viomb *sc, viomb_run_cb cb, void *opaque)
{
	for (;;) {
		int r = viomb_step(sc, VIOMB_RUN_STEP_MS);

		if (r < 0)
			return r;
		if (cb) {
			r = cb(sc, opaque);
			if (r != 0)
				return r;
		}
	}
}

int viomb_oom(struct viomb *sc, uint32_t npages)
{
	int progress = 0, r;

	if (sc->broken)
		return -EIO;
	if (!sc->deflate_on_oom)
		return viod_fe_error(sc->fe, -EPERM,
				     "viomb: DEFLATE_ON_OOM not negotiated");
	while (sc->req != VIOMB_REQ_NONE) {
		r = mb_wait_req(sc, sc->opts.ack_timeout_ms, &progress);
		if (r < 0)
			return mb_fail(sc, r);
	}
	r = mb_deflate(sc, npages);
	if (r <= 0)
		return r < 0 ? mb_fail(sc, r) : 0;
	npages = sc->req_n;
	while (sc->req != VIOMB_REQ_NONE) {
		r = mb_wait_req(sc, sc->opts.ack_timeout_ms, &progress);
		if (r < 0)
			return mb_fail(sc, r);
	}
	sc->oom_hold = true;
	sc->st.oom_deflated += npages;
	return (int)npages;
}

void viomb_detach(struct viomb *sc)
{
	if (sc->fe && sc->fe->opts.config_cb == mb_config_cb &&
	    sc->fe->opts.config_opaque == sc) {
		sc->fe->opts.config_cb = sc->prev_cb;
		sc->fe->opts.config_opaque = sc->prev_opaque;
	}
	free(sc->balloon);
	sc->balloon = NULL;
	sc->balloon_cap = 0;
	sc->broken = true;
}

int viomb_attach(struct viomb *sc, struct viod_fe *fe, const struct viomb_opts *opts)
{
	unsigned int next = 2;
	size_t pool;
	int r;

	memset(sc, 0, sizeof(*sc));
	sc->fe = fe;
	sc->q_stats = sc->q_report = -1;
	if (opts)
		sc->opts = *opts;
	else
		viomb_opts_init(&sc->opts);
	if (!viod_vq_size_valid(sc->opts.queue_size) ||
	    (sc->opts.features & ~VIOMB_FEATURES_SUPPORTED) ||
	    sc->opts.report_min_pages == 0 ||
	    sc->opts.report_max_pages < sc->opts.report_min_pages ||
	    sc->opts.report_max_pages > MB_REPORT_MAX_PAGES)
		return viod_fe_error(fe, -EINVAL,
				     "viomb: bad queue size %u, features 0x%llx or "
				     "report run %zu..%zu pages (max %u)",
				     sc->opts.queue_size,
				     (unsigned long long)sc->opts.features,
				     sc->opts.report_min_pages, sc->opts.report_max_pages,
				     MB_REPORT_MAX_PAGES);

	r = viod_fe_negotiate(fe, sc->opts.features);
	if (r < 0)
		return r;
	if (!viod_fe_has_protocol(fe, VU_PF_CONFIG))
		return viod_fe_error(fe, -ENOTSUP,
				     "viomb: back-end lacks the CONFIG protocol feature");
	sc->must_tell_host = viod_fe_has_feature(fe, VIOMB_F_MUST_TELL_HOST);
	sc->deflate_on_oom = viod_fe_has_feature(fe, VIOMB_F_DEFLATE_ON_OOM);
	/* 5.5.2: numbered by what was negotiated. */
	sc->q_inflate = 0;
	sc->q_deflate = 1;
	if (viod_fe_has_feature(fe, VIOMB_F_STATS_VQ))
		sc->q_stats = (int)next++;
	if (viod_fe_has_feature(fe, VIOMB_F_FREE_PAGE_HINT))
		next++;   /* never asked for; keeps the numbering honest */
	if (viod_fe_has_feature(fe, VIOMB_F_PAGE_REPORTING))
		sc->q_report = (int)next++;
	for (unsigned int q = 0; q < next; q++) {
		r = viod_fe_queue_setup(fe, q, sc->opts.queue_size);
		if (r < 0)
			return r;
	}

	sc->pfns = viod_fe_alloc(fe, VIOMB_PGS_PER_REQ * sizeof(uint32_t), 64,
				 &sc->pfns_gpa);
	sc->statsbuf = viod_fe_alloc(fe, MB_STATS_BYTES, 64, &sc->statsbuf_gpa);
	if (!sc->pfns || !sc->statsbuf)
		return viod_fe_error(fe, -ENOMEM, "viomb: no guest memory for buffers");
	r = viod_fe_pool_init(fe, sc->opts.pool_pages,
			      sc->opts.touch_memory ? VIOD_FE_POOL_TOUCH : 0);
	if (r < 0)
		return r;
	pool = viod_fe_pool_pages(fe);
	sc->balloon = calloc(pool, sizeof(*sc->balloon));
	if (!sc->balloon)
		return viod_fe_error(fe, -ENOMEM, "viomb: out of memory");
	sc->balloon_cap = pool;

	sc->prev_cb = fe->opts.config_cb;
	sc->prev_opaque = fe->opts.config_opaque;
	fe->opts.config_cb = mb_config_cb;
	fe->opts.config_opaque = sc;

	/* 5.5.5: the stats buffer goes in before DRIVER_OK, the device hears
	 * of it after. */
	if (sc->q_stats >= 0) {
		r = mb_stats_post(sc);
		if (r < 0)
			goto fail;
	}
	r = viod_fe_driver_ok(fe);
	if (r < 0)
		goto fail;
	if (sc->q_stats >= 0) {
		r = viod_fe_kick(fe, (unsigned int)sc->q_stats);
		if (r < 0)
			goto fail;
	}
	r = mb_read_config(sc);
	if (r < 0)
		goto fail;
	return 0;
fail:
	viomb_detach(sc);
	return r;
}
