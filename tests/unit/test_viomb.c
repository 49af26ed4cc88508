/*
 * viomb against a scripted fake balloon back-end. The fake speaks
 * vhost-user on a UNIX socket from a thread of this process, maps the
 * front-end's memory from the fds it is sent, serves the rings with the
 * device-side ring code, and checks what a balloon device can check:
 * PFNs inside guest memory, no page inflated twice or deflated without
 * having been inflated, actual written only after a request was used
 * and equal to the pages in the balloon. Because the fake shares the
 * process, it also checks the driver's side of MUST_TELL_HOST: when a
 * deflate buffer arrives, its pages must still be out of the page pool
 * (negotiated) or already back in it (not negotiated).
 *
 * Scripted misbehaviour: a used length above what was posted, a request
 * never used, a num_pages beyond guest memory, no back-end channel.
 */
#include <endian.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>

#include "guest/frontend.h"
#include "guest/viomb.h"
#include "fake-backend.h"
#include "tap.h"

#define FAKE_QUEUES 5u
#define FAKE_MAX_PFN (1u << 20)      /* 4 GiB of guest-physical space */

enum role { R_NONE, R_INFLATE, R_DEFLATE, R_STATS, R_REPORT };

struct fake {
	/* Script (set before attach unless atomic). */
	uint64_t offered;              /* balloon feature bits */
	bool no_backend_channel;
	atomic_int bad_used_len;       /* inflate: push this len instead of 0 */
	atomic_bool ignore_inflate;    /* never use inflate buffers */
	atomic_bool stats_request;     /* return the held stats buffer */
	const struct viod_fe *fe;      /* the driver's side, to check the pool */

	struct test_fake fk;

	/* Device state and findings (fake thread; read under fk.lock). */
	uint32_t num_pages, actual;
	uint8_t *in_balloon;           /* per PFN */
	uint32_t balloon_pages;
	unsigned int inflate_reqs, deflate_reqs, report_reqs, stats_bufs;
	unsigned int max_req_pfns;
	unsigned int errors;           /* bad PFN, double inflate, bad deflate */
	unsigned int actual_writes, actual_bad;
	unsigned int order_bad;        /* MUST_TELL_HOST order violated */
	unsigned int report_bad;       /* reported page not free in the pool */
	uint64_t reported_bytes;
	unsigned int reporting_queue;  /* where reports arrived */
	unsigned int stats_entries;
	uint64_t stat_val[VIOMB_S_NR];
	bool stats_held;
	uint16_t stats_head;
};

static enum role fake_role(const struct fake *f, unsigned int q)
{
	unsigned int next = 2;

	if (q == 0)
		return R_INFLATE;
	if (q == 1)
		return R_DEFLATE;
	if ((f->fk.acked >> VIOMB_F_STATS_VQ & 1) && q == next++)
		return R_STATS;
	if ((f->fk.acked >> VIOMB_F_FREE_PAGE_HINT & 1) && q == next++)
		return R_NONE;
	if ((f->fk.acked >> VIOMB_F_PAGE_REPORTING & 1) && q == next)
		return R_REPORT;
	return R_NONE;
}

/* Is the pool page at gpa allocated (in the driver's pool bitmap)? */
static bool pool_allocated(const struct viod_fe *fe, uint64_t gpa)
{
	const struct viod_fe_pool *p = &fe->pool;

	for (unsigned int s = 0; s < p->nsegs; s++) {
		const struct viod_fe_pool_seg *sg = &p->segs[s];

		if (gpa >= sg->gpa && (gpa - sg->gpa) / 4096 < sg->npages) {
			size_t i = sg->first + (size_t)((gpa - sg->gpa) / 4096);

			return (p->alloc_bits[i / 64] >> (i % 64)) & 1;
		}
	}
	return false;
}

static void fake_pfns(struct fake *f, unsigned int qi, bool inflate)
{
	struct test_fake_q *q = &f->fk.q[qi];
	struct viod_vq_elem *e = f->fk.elem;
	bool mth = f->fk.acked >> VIOMB_F_MUST_TELL_HOST & 1;

	if (inflate && atomic_load(&f->ignore_inflate))
		return;
	while (viod_vq_pop(&q->vq, e) > 0) {
		uint32_t n = (uint32_t)(e->out_len / 4), len = 0;

		if (n > f->max_req_pfns)
			f->max_req_pfns = n;
		for (uint32_t i = 0; i < n; i++) {
			uint32_t pfn;
			uint64_t gpa;

			viod_iov_to_buf(e->iov, e->out_num, i * 4, &pfn, 4);
			pfn = le32toh(pfn);
			gpa = (uint64_t)pfn << 12;
			if (pfn >= FAKE_MAX_PFN || !viod_mem_find(&f->fk.mem, gpa)) {
				f->errors++;
				continue;
			}
			if (f->in_balloon[pfn] == inflate) {
				f->errors++;
				continue;
			}
			f->in_balloon[pfn] = inflate;
			if (inflate) {
				f->balloon_pages++;
			} else {
				f->balloon_pages--;
				/* MUST_TELL_HOST: not reused before our ack. */
				if (pool_allocated(f->fe, gpa) != mth)
					f->order_bad++;
			}
		}
		if (inflate) {
			f->inflate_reqs++;
			len = (uint32_t)atomic_exchange(&f->bad_used_len, 0);
		} else {
			f->deflate_reqs++;
		}
		viod_vq_push(&q->vq, e->head, len);
		test_fake_call(&f->fk, qi);
	}
}

static void fake_stats_parse(struct fake *f, const struct viod_vq_elem *e)
{
	unsigned int n = (unsigned int)(e->out_len / VIOMB_STAT_SIZE);

	f->stats_entries = n;
	for (unsigned int i = 0; i < n; i++) {
		uint8_t raw[VIOMB_STAT_SIZE];
		uint16_t tag;
		uint64_t val;

		viod_iov_to_buf(e->iov, e->out_num, i * VIOMB_STAT_SIZE, raw, sizeof(raw));
		memcpy(&tag, raw, 2);
		memcpy(&val, raw + 2, 8);
		if (le16toh(tag) < VIOMB_S_NR)
			f->stat_val[le16toh(tag)] = le64toh(val);
	}
	f->stats_bufs++;
}

static void fake_stats(struct fake *f, unsigned int qi)
{
	struct test_fake_q *q = &f->fk.q[qi];

	if (!f->stats_held && viod_vq_pop(&q->vq, f->fk.elem) > 0) {
		fake_stats_parse(f, f->fk.elem);
		f->stats_held = true;
		f->stats_head = f->fk.elem->head;
	}
	if (f->stats_held && atomic_exchange(&f->stats_request, false)) {
		f->stats_held = false;
		viod_vq_push(&q->vq, f->stats_head, 0);
		test_fake_call(&f->fk, qi);
	}
}

static bool fake_host_to_gpa(const struct fake *f, const void *p, uint64_t *gpa)
{
	for (unsigned int i = 0; i < f->fk.mem.nregions; i++) {
		const struct viod_mem_region *r = &f->fk.mem.regions[i];
		uintptr_t a = (uintptr_t)p, b = (uintptr_t)r->host;

		if (a >= b && a - b < r->size) {
			*gpa = r->gpa + (a - b);
			return true;
		}
	}
	return false;
}

static void fake_report(struct fake *f, unsigned int qi)
{
	struct test_fake_q *q = &f->fk.q[qi];
	struct viod_vq_elem *e = f->fk.elem;

	while (viod_vq_pop(&q->vq, e) > 0) {
		f->report_reqs++;
		f->reporting_queue = qi;
		f->reported_bytes += e->in_len;
		if (e->out_num)
			f->report_bad++;
		/* Reported pages are held by the driver: out of the pool. */
		for (unsigned int i = e->out_num; i < e->out_num + e->in_num; i++) {
			uint64_t gpa;

			if (!fake_host_to_gpa(f, e->iov[i].iov_base, &gpa))
				f->report_bad++;
			else if (!pool_allocated(f->fe, gpa))
				f->report_bad++;
		}
		viod_vq_push(&q->vq, e->head, 0);
		test_fake_call(&f->fk, qi);
	}
}

static void fake_serve_queue(struct fake *f, unsigned int qi)
{
	switch (fake_role(f, qi)) {
	case R_INFLATE:
		fake_pfns(f, qi, true);
		break;
	case R_DEFLATE:
		fake_pfns(f, qi, false);
		break;
	case R_STATS:
		fake_stats(f, qi);
		break;
	case R_REPORT:
		fake_report(f, qi);
		break;
	case R_NONE:
		break;
	}
}

static void fake_kick(struct test_fake *fk, unsigned int qi)
{
	fake_serve_queue(fk->opaque, qi);
}

/* This fake never moves avail_event, so with EVENT_IDX the driver stops
 * kicking after its first buffers; and the stats buffer goes back on the
 * test's word, with no kick behind it: every ring is looked at every round. */
static void fake_idle(struct test_fake *fk)
{
	for (unsigned int i = 0; i < FAKE_QUEUES; i++)
		if (fk->q[i].running)
			fake_serve_queue(fk->opaque, i);
}

static size_t fake_config(struct test_fake *fk, uint8_t buf[VU_MAX_CONFIG_SIZE])
{
	const struct fake *f = fk->opaque;
	uint32_t v;

	v = htole32(f->num_pages);
	memcpy(buf, &v, 4);
	v = htole32(f->actual);
	memcpy(buf + 4, &v, 4);
	return 16;
}

/* SET_CONFIG: the driver writes actual, nothing else. */
static enum test_fake_verdict fake_msg(struct test_fake *fk, struct viod_vu_msg *m,
				       int *fds, unsigned int *nfds)
{
	struct fake *f = fk->opaque;
	uint32_t v;

	(void)fds;
	(void)nfds;
	if (m->hdr.request != VU_SET_CONFIG)
		return TEST_FAKE_PASS;
	if (m->u.config.offset == 4 && m->u.config.size == 4) {
		memcpy(&v, m->u.config.data, 4);
		f->actual = le32toh(v);
		f->actual_writes++;
		/* Written after the device used the request: it must
		 * count exactly the pages the device holds. */
		if (f->actual != f->balloon_pages)
			f->actual_bad++;
	} else {
		f->actual_bad++;
	}
	return TEST_FAKE_ACK;
}

static const struct test_fake_ops fake_ops = {
	.msg = fake_msg,
	.config = fake_config,
	.kick = fake_kick,
	.idle = fake_idle,
};

/* Starts the fake (f scripted already) and connects fe to it, guest
 * memory mem bytes in regions regions. */
static int fake_start(struct fake *f, const char *tag, struct viod_fe *fe, size_t mem,
		      unsigned int regions)
{
	char path[108];
	int r;

	f->fe = fe;
	f->fk.features = TEST_FAKE_FEATURES | f->offered;
	f->fk.protocol_features = (1ull << VU_PF_REPLY_ACK) | (1ull << VU_PF_CONFIG);
	if (!f->no_backend_channel)
		f->fk.protocol_features |= 1ull << VU_PF_BACKEND_REQ;
	f->fk.nqueues = FAKE_QUEUES;
	f->fk.ops = &fake_ops;
	f->fk.opaque = f;
	snprintf(path, sizeof(path), "/tmp/test-viomb-%d-%s.sock", (int)getpid(), tag);
	r = test_fake_connect(&f->fk, path, fe, mem, regions);
	/* Nothing reads it before viomb attaches. */
	f->in_balloon = calloc(FAKE_MAX_PFN, 1);
	return r < 0 ? r : f->in_balloon ? 0 : -1;
}

static void fake_stop(struct fake *f)
{
	test_fake_stop(&f->fk);
	free(f->in_balloon);
	f->in_balloon = NULL;
}

/* Sets num_pages and, with a channel, announces it (CONFIG_CHANGE_MSG). */
static void fake_set_target(struct fake *f, uint32_t pages)
{
	int backend;

	pthread_mutex_lock(&f->fk.lock);
	f->num_pages = pages;
	backend = f->fk.backend;
	pthread_mutex_unlock(&f->fk.lock);
	if (backend >= 0)
		viod_fe_msg_send(backend, VU_BACKEND_CONFIG_CHANGE_MSG,
				 VU_FLAG_VERSION, 0, NULL, 0, NULL, 0);
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* How long a wait for what must happen soon may take: long enough for a
 * loaded machine and a sanitizer build, short enough to fail in time. */
#define DEADLINE_MS 10000

/* Steps until the balloon holds what was asked (or DEADLINE_MS pass). */
static bool step_until_reached(struct viomb *sc, uint32_t want)
{
	int64_t end = now_ms() + DEADLINE_MS;

	while (now_ms() < end) {
		if (viomb_step(sc, 50) < 0)
			return false;
		if (viomb_reached(sc) && viomb_npages(sc) == want)
			return true;
	}
	return false;
}

/* The stats buffers the fake has parsed, once there are at least n (or
 * after DEADLINE_MS): the fake's thread parses them as they come. */
static unsigned int fake_stats_bufs_when(struct fake *f, unsigned int n)
{
	int64_t end = now_ms() + DEADLINE_MS;
	unsigned int got;

	for (;;) {
		pthread_mutex_lock(&f->fk.lock);
		got = f->stats_bufs;
		pthread_mutex_unlock(&f->fk.lock);
		if (got >= n || now_ms() >= end)
			return got;
		usleep(1000);
	}
}

static int attach(struct fake *f, struct viod_fe *fe, struct viomb *sc,
		  const char *tag, uint64_t want, size_t mem, unsigned int regions)
{
	struct viomb_opts o;
	int r;

	r = fake_start(f, tag, fe, mem, regions);
	if (r < 0)
		return r;
	viomb_opts_init(&o);
	o.features = want;
	o.touch_memory = true;
	o.ack_timeout_ms = 500;
	r = viomb_attach(sc, fe, &o);
	if (r < 0)
		printf("# attach: %s\n", viod_fe_strerror(fe));
	return r;
}

static void finish(struct fake *f, struct viod_fe *fe, struct viomb *sc)
{
	viomb_detach(sc);
	viod_fe_disconnect(fe);
	fake_stop(f);
}

/* MUST_TELL_HOST + stats + DEFLATE_ON_OOM, two regions. */
static void test_full(void)
{
	struct fake f = { .offered = VIOMB_FEATURES_SUPPORTED };
	struct viod_fe fe;
	struct viomb sc;
	size_t pool;
	unsigned int served;
	bool got;
	int r;

	r = attach(&f, &fe, &sc, "full",
		   (1ull << VIOMB_F_MUST_TELL_HOST) | (1ull << VIOMB_F_STATS_VQ) |
		   (1ull << VIOMB_F_DEFLATE_ON_OOM), 16u << 20, 2);
	if (!ok(r == 0, "attach with MUST_TELL_HOST, STATS_VQ, DEFLATE_ON_OOM")) {
		finish(&f, &fe, &sc);
		return;
	}
	pool = viod_fe_pool_pages(&fe);
	ok(pool > 3000 && pool < 4096, "pool holds the memory left (%zu pages)", pool);
	ok(sc.must_tell_host && sc.deflate_on_oom, "features negotiated");
	is(sc.q_stats, 2, "statsq is queue 2");
	is(sc.q_report, -1, "no reporting queue (not wanted)");
	ok(!(f.fk.acked >> VIOMB_F_PAGE_REPORTING & 1), "reporting not acked");
	is(viomb_npages(&sc), 0, "npages 0 at start");
	is(viomb_actual(&sc), 0, "actual 0 at start");

	/* The stats buffer arrives filled at attach. */
	fake_stats_bufs_when(&f, 1);
	pthread_mutex_lock(&f.fk.lock);
	is(f.stats_bufs, 1, "one stats buffer posted at attach");
	is(f.stats_entries, VIOMB_S_NR, "ten stat entries");
	is(f.stat_val[VIOMB_S_MEMTOT], fe.mem_size, "MEMTOT is guest memory");
	is(f.stat_val[VIOMB_S_MEMFREE], pool * 4096, "MEMFREE is the free pool");
	pthread_mutex_unlock(&f.fk.lock);

	fake_set_target(&f, 1000);
	got = step_until_reached(&sc, 1000);
	ok(got, "inflated to 1000 pages");
	pthread_mutex_lock(&f.fk.lock);
	is(f.balloon_pages, 1000, "device holds 1000 pages");
	is(f.actual, 1000, "device's actual is 1000");
	is(f.inflate_reqs, 4, "in four requests");
	is(f.max_req_pfns, VIOMB_PGS_PER_REQ, "of at most 256 PFNs");
	is(f.errors, 0, "every PFN in guest memory, none twice");
	is(f.actual_bad, 0, "actual written after each use, equal to the balloon");
	is(f.actual_writes, 4, "actual written once per request");
	pthread_mutex_unlock(&f.fk.lock);
	is(viod_fe_pool_free(&fe), pool - 1000, "pool gave 1000 pages");
	ok(sc.st.config_changes >= 1, "config change seen on the back-end channel");

	/* Stats: the device returns the buffer, the driver refills it. */
	served = (unsigned int)sc.st.stats_served;
	atomic_store(&f.stats_request, true);
	for (int64_t end = now_ms() + DEADLINE_MS;
	     sc.st.stats_served == served && now_ms() < end;)
		viomb_step(&sc, 50);
	is(sc.st.stats_served, served + 1, "stats buffer re-posted when used");
	fake_stats_bufs_when(&f, 2);
	pthread_mutex_lock(&f.fk.lock);
	is(f.stats_bufs, 2, "device got the second buffer");
	is(f.stat_val[VIOMB_S_MEMFREE], (pool - 1000) * 4096, "MEMFREE follows the balloon");
	pthread_mutex_unlock(&f.fk.lock);

	/* Deflate with MUST_TELL_HOST: checked by the fake on arrival. */
	fake_set_target(&f, 300);
	ok(step_until_reached(&sc, 300), "deflated to 300 pages");
	pthread_mutex_lock(&f.fk.lock);
	is(f.balloon_pages, 300, "device holds 300 pages");
	is(f.deflate_reqs, 3, "in three requests");
	is(f.order_bad, 0, "no page back in the pool before the device's ack");
	is(f.errors, 0, "deflated pages were all inflated");
	is(f.actual_bad, 0, "actual consistent");
	pthread_mutex_unlock(&f.fk.lock);
	is(viod_fe_pool_free(&fe), pool - 300, "pages back in the pool");

	/* Config is untrusted: more than guest memory is clamped. */
	fake_set_target(&f, 0xfffffff0u);
	ok(step_until_reached(&sc, (uint32_t)pool), "num_pages beyond memory clamped to the pool");
	is(viod_fe_pool_free(&fe), 0, "whole pool in the balloon");
	ok(sc.st.clamped > 0, "clamping counted");
	is(sc.npages_raw, 0xfffffff0u, "device's num_pages kept apart");
	pthread_mutex_lock(&f.fk.lock);
	is(f.errors, 0, "no bad PFN at the edge of memory");
	pthread_mutex_unlock(&f.fk.lock);

	/* DEFLATE_ON_OOM: give pages back, hold until the target changes. */
	fake_set_target(&f, 512);
	ok(step_until_reached(&sc, 512), "deflated to 512");
	r = viomb_oom(&sc, 100);
	is(r, 100, "viomb_oom gave 100 pages back");
	is(viomb_actual(&sc), 412, "actual 412");
	for (int i = 0; i < 5; i++)
		viomb_step(&sc, 20);
	is(viomb_actual(&sc), 412, "no re-inflation while held");
	fake_set_target(&f, 600);
	ok(step_until_reached(&sc, 600), "a new target lifts the hold");
	pthread_mutex_lock(&f.fk.lock);
	is(f.order_bad, 0, "MUST_TELL_HOST order kept throughout");
	is(f.balloon_pages, 600, "device holds 600");
	pthread_mutex_unlock(&f.fk.lock);

	fake_set_target(&f, 0);
	ok(step_until_reached(&sc, 0), "deflated to 0");
	is(viod_fe_pool_free(&fe), pool, "pool whole again");
	finish(&f, &fe, &sc);
}

/* No MUST_TELL_HOST, no stats, no back-end channel (config polled). */
static void test_plain(void)
{
	struct fake f = { .offered = 1ull << VIOMB_F_DEFLATE_ON_OOM,
			  .no_backend_channel = true };
	struct viod_fe fe;
	struct viomb sc;
	int r;

	r = attach(&f, &fe, &sc, "plain", VIOMB_FEATURES_SUPPORTED, 8u << 20, 1);
	if (!ok(r == 0, "attach without MUST_TELL_HOST or a back-end channel")) {
		finish(&f, &fe, &sc);
		return;
	}
	ok(!sc.must_tell_host, "MUST_TELL_HOST not negotiated (not offered)");
	is(sc.q_stats, -1, "no statsq");
	is(fe.backend_fd, -1, "no back-end channel");
	fake_set_target(&f, 700);
	ok(step_until_reached(&sc, 700), "target followed by polling config");
	fake_set_target(&f, 100);
	ok(step_until_reached(&sc, 100), "deflated to 100");
	pthread_mutex_lock(&f.fk.lock);
	is(f.order_bad, 0, "without MUST_TELL_HOST pages were free before the ack");
	is(f.balloon_pages, 100, "device holds 100");
	is(f.errors, 0, "no bad PFN");
	pthread_mutex_unlock(&f.fk.lock);
	is(viomb_oom(&sc, 10), 10, "viomb_oom with DEFLATE_ON_OOM");
	finish(&f, &fe, &sc);
}

/* Reporting without stats: the reporting queue is queue 2. */
static void test_reporting(void)
{
	struct fake f = { .offered = VIOMB_FEATURES_SUPPORTED };
	struct viod_fe fe;
	struct viomb sc;
	int r;

	r = attach(&f, &fe, &sc, "report",
		   (1ull << VIOMB_F_MUST_TELL_HOST) | (1ull << VIOMB_F_PAGE_REPORTING),
		   8u << 20, 2);
	if (!ok(r == 0, "attach with PAGE_REPORTING")) {
		finish(&f, &fe, &sc);
		return;
	}
	is(sc.q_report, 2, "reporting_vq is queue 2 without STATS_VQ");
	is(viomb_oom(&sc, 1), -EPERM, "viomb_oom refused without DEFLATE_ON_OOM");
	for (int64_t end = now_ms() + DEADLINE_MS; sc.st.report_reqs == 0 && now_ms() < end;)
		viomb_step(&sc, 50);
	ok(sc.st.report_reqs > 0, "idle balloon reports free pages");
	pthread_mutex_lock(&f.fk.lock);
	is(f.reporting_queue, 2, "reports arrive on queue 2");
	is(f.report_bad, 0, "reported ranges writable and held by the driver");
	ok(f.reported_bytes >= VIOMB_DEFAULT_REPORT_MIN * 4096ull,
	   "reported %llu bytes", (unsigned long long)f.reported_bytes);
	pthread_mutex_unlock(&f.fk.lock);
	is(viod_fe_pool_free(&fe), viod_fe_pool_pages(&fe), "reported pages back in the pool");
	ok(fe.pool.nreported > 0, "and marked reported");
	fake_set_target(&f, 200);
	ok(step_until_reached(&sc, 200), "inflate after reporting");
	pthread_mutex_lock(&f.fk.lock);
	is(f.errors, 0, "no bad PFN");
	pthread_mutex_unlock(&f.fk.lock);
	finish(&f, &fe, &sc);
}

/* Guest-memory rule 6 and the ack timeout. */
static void test_hostile(void)
{
	struct fake f = { .offered = VIOMB_FEATURES_SUPPORTED };
	struct viod_fe fe;
	struct viomb sc;
	int r = 0;

	if (!ok(attach(&f, &fe, &sc, "badlen", 0, 8u << 20, 1) == 0, "attach (bad len)")) {
		finish(&f, &fe, &sc);
		return;
	}
	atomic_store(&f.bad_used_len, 4);
	fake_set_target(&f, 10);
	for (int64_t end = now_ms() + DEADLINE_MS; r >= 0 && now_ms() < end;)
		r = viomb_step(&sc, 50);
	is(r, -EIO, "used len above the posted 0 bytes breaks the driver");
	ok(sc.broken, "driver broken");
	is(viomb_step(&sc, 0), -EIO, "and stays broken");
	printf("# %s\n", viod_fe_strerror(&fe));
	finish(&f, &fe, &sc);

	memset(&f, 0, sizeof(f));
	f.offered = VIOMB_FEATURES_SUPPORTED;
	r = 0;
	if (!ok(attach(&f, &fe, &sc, "noack", 0, 8u << 20, 1) == 0, "attach (no ack)")) {
		finish(&f, &fe, &sc);
		return;
	}
	atomic_store(&f.ignore_inflate, true);
	fake_set_target(&f, 10);
	r = viomb_step(&sc, 50);
	ok(r >= 0 && sc.req == VIOMB_REQ_INFLATE, "request in flight, step returns");
	is(viomb_actual(&sc), 0, "actual unchanged while unacked");
	for (int64_t end = now_ms() + DEADLINE_MS; r >= 0 && now_ms() < end;)
		r = viomb_step(&sc, 50);
	is(r, -ETIMEDOUT, "unused request times out after the ack timeout");
	printf("# %s\n", viod_fe_strerror(&fe));
	finish(&f, &fe, &sc);
}

/* The pool alone. */
static void test_pool(void)
{
	struct viod_fe_opts fo;
	struct viod_fe fe;
	uint64_t a, b, gpa;
	size_t n, total;

	viod_fe_opts_init(&fo);
	fo.mem_size = 1u << 20;
	fo.nregions = 2;
	if (!ok(viod_fe_init(&fe, &fo) == 0, "pool: guest memory"))
		return;
	ok(viod_fe_alloc(&fe, 100, 8, &gpa) != NULL, "pool: bump allocation first");
	is(viod_fe_pool_init(&fe, 0, VIOD_FE_POOL_TOUCH), 0, "pool: init");
	total = viod_fe_pool_pages(&fe);
	is(total, 255, "pool: every whole page left (one used by the allocation)");
	is(viod_fe_pool_init(&fe, 0, 0), -EALREADY, "pool: once");
	ok(viod_fe_alloc(&fe, 8, 8, &gpa) == NULL, "pool: nothing left for the bump allocator");
	a = viod_fe_page_alloc(&fe);
	b = viod_fe_page_alloc(&fe);
	ok(a != UINT64_MAX && b != UINT64_MAX && a != b && a % 4096 == 0,
	   "pool: two distinct aligned pages");
	ok(viod_fe_page_host(&fe, a) == viod_fe_host(&fe, a, 4096), "pool: host pointer");
	is(viod_fe_pool_free(&fe), total - 2, "pool: free count");
	is(viod_fe_page_free(&fe, a), 0, "pool: free");
	is(viod_fe_page_free(&fe, a), -EALREADY, "pool: double free refused");
	is(viod_fe_page_free(&fe, a + 1), -EINVAL, "pool: unaligned refused");
	is(viod_fe_page_free(&fe, 1ull << 40), -EINVAL, "pool: foreign address refused");
	for (n = 0; viod_fe_page_alloc(&fe) != UINT64_MAX; n++)
		;
	is(n, total - 1, "pool: drains exactly");
	is(viod_fe_pool_take_unreported(&fe, 1, 8, &gpa, &n), 0, "pool: nothing to report when full");
	is(viod_fe_page_free(&fe, b), 0, "pool: free one");
	is(viod_fe_pool_take_unreported(&fe, 1, 8, &gpa, &n), 1, "pool: run of one");
	ok(gpa == b && n == 1, "pool: the freed page");
	is(viod_fe_pool_put_reported(&fe, gpa, n), 0, "pool: put reported");
	is(fe.pool.nreported, 1, "pool: one reported");
	is(viod_fe_pool_take_unreported(&fe, 1, 8, &gpa, &n), 0, "pool: reported not re-reported");
	is(viod_fe_page_alloc(&fe), b, "pool: reported page allocated again");
	is(fe.pool.nreported, 0, "pool: allocation clears reported");
	viod_fe_disconnect(&fe);
}

int main(void)
{
	test_pool();
	test_full();
	test_plain();
	test_reporting();
	test_hostile();
	return tap_done();
}
