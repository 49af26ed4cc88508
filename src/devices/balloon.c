/*
 * Traditional memory balloon (virtio 1.2, 5.5), device id 5.
 *
 * Queues are numbered by the *negotiated* features, as Linux numbers them:
 * inflateq 0, deflateq 1, then statsq if STATS_VQ, then (never offered
 * here) free_page_vq if FREE_PAGE_HINT, then reporting_vq if REPORTING.
 *
 * Contracts:
 * - Every PFN (4 KiB units, 5.5.6) is checked against the memory table one
 *   by one; the device tracks which pages are in the balloon (a bitmap per
 *   region), so a page inflated twice, or deflated without having been
 *   inflated, is an error counted and logged (rate-limited), never a crash.
 * - Guest RAM is a shared memfd, where MADV_DONTNEED frees nothing: pages
 *   go back to the host by punching holes in the region's fd, one
 *   fallocate() per run of contiguous pages. Huge-page-backed regions are
 *   punched only in whole huge pages, once all 4 KiB pages of one are in.
 * - Deflate needs no host action (the guest's next touch faults a page
 *   back in); with MUST_TELL_HOST the guest waits for our ack before reuse.
 * - Free page reporting (5.5.6.6) ranges are released the same way but
 *   are not balloon pages.
 * - Statistics: the guest's buffer is held until we want new values, then
 *   returned; the guest refills and re-posts it (5.5.6.3). Unknown tags are
 *   ignored; the latest value of each known tag is kept.
 *
 * Bounded work: a handler call moves at most PFN_BUDGET PFNs and reports
 * at most REPORT_BUDGET bytes; a larger buffer is resumed where it stopped
 * (req->done) on the next call.
 *
 * Threads: config access, target, the stats timer and store hooks run on
 * the control thread; queue handlers, dp_reset and mem_changed on the
 * device's worker. Values one side reads from the other are atomics.
 */
#include "devices/balloon.h"
#include "vhost/device.h"
#include "store/store.h"

#include <endian.h>
#include <gio/gio.h>
#include <errno.h>
#include <inttypes.h>
#include <sched.h>
#include <linux/virtio_balloon.h>
#include <linux/virtio_ids.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define BALLOON_PAGE 4096u
#define BALLOON_QUEUES 4u      /* inflate, deflate, stats, reporting */
#define PFN_CHUNK 256u         /* PFNs copied out of guest memory at once */
#define PFN_EARLY_MAX 4096u    /* PFNs of an inflate buffer acked before release */
#define PFN_BUDGET 16384u      /* PFNs per handler call (64 MiB of pages) */
#define REPORT_BUDGET (64ull << 20) /* reported bytes released per call */
#define CHAINS_PER_CALL 32u
#define STAT_BYTES 10u         /* packed { le16 tag; le64 val } */

enum qrole { Q_NONE, Q_INFLATE, Q_DEFLATE, Q_STATS, Q_REPORTING };

static const char *const stat_names[VIRTIO_BALLOON_S_NR] = {
	"swap-in", "swap-out", "major-faults", "minor-faults", "free-memory",
	"total-memory", "available-memory", "disk-caches",
	"hugetlb-allocations", "hugetlb-failures",
};

/* Which 4 KiB pages of a region are in the balloon. */
struct bmap {
	uint64_t gpa;
	uint64_t size;
	uint64_t unit;          /* backing page size, a multiple of 4 KiB */
	uint64_t *bits;
};

#define BALLOON_OFFERED ((1ull << VIRTIO_BALLOON_F_MUST_TELL_HOST) | \
			 (1ull << VIRTIO_BALLOON_F_STATS_VQ) |       \
			 (1ull << VIRTIO_BALLOON_F_DEFLATE_ON_OOM) | \
			 (1ull << VIRTIO_BALLOON_F_REPORTING))
#define STATS_INTERVAL_DEFAULT 5u

struct balloon {
	/* Options. */
	uint64_t switched_off;         /* offered features turned off */
	unsigned int stats_interval;   /* seconds, 0 = off */
	bool stats_interval_set;
	uint32_t initial_target;

	/* Control thread. */
	uint32_t num_pages;
	uint32_t actual;
	guint stats_timer;
	bool stats_negotiated;
	struct viod_dev *dev;

	/* Worker. */
	struct bmap maps[VIOD_MEM_MAX_REGIONS];
	unsigned int nmaps;
	struct viod_req *cur[BALLOON_QUEUES]; /* partly served buffer */
	struct viod_req *stats_req;           /* the guest's stats buffer, held */
	uint32_t pfns[PFN_EARLY_MAX];

	/* Worker to control thread. */
	atomic_uint_fast64_t inflated;      /* pages in the balloon */
	atomic_uint_fast64_t host_freed;    /* bytes the host got back */
	atomic_uint_fast64_t reported;      /* of which via page reporting */
	atomic_uint_fast64_t errors;
	atomic_uint_fast64_t stats[VIRTIO_BALLOON_S_NR];
	atomic_uint_fast64_t stats_seen;    /* bitmask of tags received */
	atomic_uint_fast64_t stats_updates;
	atomic_int_fast64_t stats_updated;  /* g_get_monotonic_time() of the last */
	atomic_bool stats_request;
};

static enum qrole queue_role(uint64_t f, unsigned int q)
{
	unsigned int next = 2;

	if (q == 0)
		return Q_INFLATE;
	if (q == 1)
		return Q_DEFLATE;
	if (viod_has_feature(f, VIRTIO_BALLOON_F_STATS_VQ) && q == next++)
		return Q_STATS;
	if (viod_has_feature(f, VIRTIO_BALLOON_F_FREE_PAGE_HINT) && q == next++)
		return Q_NONE;
	if (viod_has_feature(f, VIRTIO_BALLOON_F_REPORTING) && q == next)
		return Q_REPORTING;
	return Q_NONE;
}

static void guest_error(struct viod_dev *dev, struct balloon *b, const char *what,
			uint64_t pfn)
{
	atomic_fetch_add_explicit(&b->errors, 1, memory_order_relaxed);
	viod_dev_warn(dev, "balloon: %s (pfn 0x%" PRIx64 ")", what, pfn);
}

static bool bit_test(const uint64_t *bits, uint64_t i)
{
	return (bits[i / 64] >> (i % 64)) & 1;
}

/* Whether every 4 KiB page of backing unit u is in the balloon. */
static bool unit_full(const struct bmap *m, uint64_t u)
{
	uint64_t per = m->unit / BALLOON_PAGE, first = u * per;

	for (uint64_t i = first; i < first + per; i++)
		if (!bit_test(m->bits, i))
			return false;
	return true;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return (x > y) - (x < y);
}

/* The bitmap holding the 4 KiB page at gpa, or -1. */
static int map_find(const struct balloon *b, uint64_t gpa)
{
	for (unsigned int i = 0; i < b->nmaps; i++)
		if (gpa >= b->maps[i].gpa && gpa - b->maps[i].gpa < b->maps[i].size &&
		    b->maps[i].size - (gpa - b->maps[i].gpa) >= BALLOON_PAGE)
			return (int)i;
	return -1;
}

static void discard(struct viod_dev *dev, struct balloon *b, unsigned int r,
		    uint64_t gpa, uint64_t len, bool reported)
{
	int64_t freed = viod_dev_mem_discard(dev, r, gpa, len);

	if (freed < 0) {
		viod_dev_warn(dev, "balloon: releasing %" PRIu64 " bytes: %s", len,
			      g_strerror((int)-freed));
		return;
	}
	atomic_fetch_add_explicit(&b->host_freed, (uint64_t)freed, memory_order_relaxed);
	if (reported)
		atomic_fetch_add_explicit(&b->reported, (uint64_t)freed, memory_order_relaxed);
}

/*
 * Releases the backing units touched by the sorted, unique, newly inflated
 * pfns[0..n) of region r that are now wholly in the balloon, merging
 * adjacent units into one discard.
 */
static void release_pfns(struct viod_dev *dev, struct balloon *b, unsigned int r,
			 const uint32_t *pfns, unsigned int n)
{
	const struct bmap *m = &b->maps[r];
	uint64_t run_start = 0, run_len = 0, last_unit = UINT64_MAX;

	for (unsigned int i = 0; i < n; i++) {
		uint64_t u = (((uint64_t)pfns[i] << VIRTIO_BALLOON_PFN_SHIFT) - m->gpa) / m->unit;

		if (u == last_unit)
			continue;
		last_unit = u;
		if (!unit_full(m, u))
			continue;
		if (run_len && u == run_start + run_len) {
			run_len++;
			continue;
		}
		if (run_len)
			discard(dev, b, r, m->gpa + run_start * m->unit, run_len * m->unit, false);
		run_start = u;
		run_len = 1;
	}
	if (run_len)
		discard(dev, b, r, m->gpa + run_start * m->unit, run_len * m->unit, false);
}

/*
 * Moves one chunk of PFNs from an inflate or deflate buffer (guest order)
 * into or out of the balloon's bitmaps, counting bad ones as errors and
 * keeping `inflated` current. Returns how many changed state; those are
 * gathered, in host order, at the front of pfns.
 */
static unsigned int track_pfns(struct viod_dev *dev, struct balloon *b, uint32_t *pfns,
			       unsigned int n, bool inflate)
{
	unsigned int valid = 0;

	for (unsigned int i = 0; i < n; i++) {
		uint32_t pfn = le32toh(pfns[i]);
		uint64_t gpa = (uint64_t)pfn << VIRTIO_BALLOON_PFN_SHIFT;
		int r = map_find(b, gpa);
		uint64_t bit, *word, mask;

		if (r < 0) {
			guest_error(dev, b, "PFN outside guest memory", pfn);
			continue;
		}
		bit = (gpa - b->maps[r].gpa) / BALLOON_PAGE;
		word = &b->maps[r].bits[bit / 64];
		mask = 1ull << (bit % 64);
		if (inflate == !!(*word & mask)) {
			guest_error(dev, b, inflate ? "page inflated twice" :
				    "deflate of a page not in the balloon", pfn);
			continue;
		}
		*word ^= mask;
		pfns[valid++] = pfn;
	}
	if (inflate)
		atomic_fetch_add_explicit(&b->inflated, valid, memory_order_relaxed);
	else
		atomic_fetch_sub_explicit(&b->inflated, valid, memory_order_relaxed);
	return valid;
}

/* Gives the host the pages track_pfns() just put in the balloon:
 * sorted, each run of contiguous pages is one fallocate(). */
static void release_tracked(struct viod_dev *dev, struct balloon *b, uint32_t *pfns,
			    unsigned int valid)
{
	qsort(pfns, valid, sizeof(*pfns), cmp_u32);
	for (unsigned int i = 0; i < valid;) {
		int r = map_find(b, (uint64_t)pfns[i] << VIRTIO_BALLOON_PFN_SHIFT);
		unsigned int j = i + 1;

		while (j < valid &&
		       map_find(b, (uint64_t)pfns[j] << VIRTIO_BALLOON_PFN_SHIFT) == r)
			j++;
		release_pfns(dev, b, (unsigned int)r, pfns + i, j - i);
		i = j;
	}
}

static void apply_pfns(struct viod_dev *dev, struct balloon *b, uint32_t *pfns,
		       unsigned int n, bool inflate)
{
	unsigned int valid = track_pfns(dev, b, pfns, n, inflate);

	if (inflate)
		release_tracked(dev, b, pfns, valid);
}

/*
 * After a pass over buffer r: kept for the next call while done < total,
 * else given back. True when given back.
 */
static bool buffer_done(struct balloon *b, struct viod_queue *q, struct viod_req *r,
			uint64_t total)
{
	unsigned int qi = viod_queue_index(q);

	if (r->done < total) {
		b->cur[qi] = r;
		return false;
	}
	b->cur[qi] = NULL;
	viod_queue_complete(q, r, 0);
	return true;
}

static enum viod_serve served(struct viod_dev *dev, bool progress)
{
	if (progress)
		viod_dev_counters_changed(dev);
	return progress ? VIOD_SERVE_PROGRESS : VIOD_SERVE_IDLE;
}

/*
 * Inflate and deflate queues: arrays of le32 PFNs, device-readable.
 *
 * With MUST_TELL_HOST the guest reuses no balloon page before its deflate
 * is acked, and deflates are served on this same thread after any release
 * in progress; so an inflate buffer (of a usual size) is acked as soon as
 * its PFNs are copied out, and the hole punching overlaps the guest's next
 * steps. The pages are tracked (and counted in `inflated`) before the
 * ack, so the store never shows the guest's new `actual` ahead of them.
 * Without MUST_TELL_HOST a guest may reuse pages before telling us, so
 * the release comes first. A buffer larger than the budget is worked
 * through in PFN_CHUNK pieces across calls.
 */
static enum viod_serve pfn_queue(struct viod_dev *dev, struct balloon *b,
				 struct viod_queue *q, bool inflate)
{
	unsigned int qi = viod_queue_index(q), budget = PFN_BUDGET, chains = 0;
	bool early = inflate && viod_has_feature(viod_dev_dp_features(dev),
						 VIRTIO_BALLOON_F_MUST_TELL_HOST);
	bool progress = false;

	while (budget > 0 && chains < CHAINS_PER_CALL) {
		struct viod_req *r = b->cur[qi];
		/* 5.5.6: whole PFNs only; a trailing partial one is ignored. */
		uint64_t total;

		if (!r && !(r = viod_queue_pop(q)))
			break;
		total = r->out_len / 4;
		progress = true;
		if (early && r->done == 0 && total <= PFN_EARLY_MAX && total <= budget) {
			unsigned int valid;

			viod_iov_to_buf(r->iov, r->out_num, 0, b->pfns, total * 4);
			valid = track_pfns(dev, b, b->pfns, (unsigned int)total, true);
			viod_queue_complete(q, r, 0);
			viod_queue_flush(q);
			/* The front-end thread our call just woke (QEMU's main
			 * loop, which injects the interrupt) may share this CPU:
			 * let it go first, the punching can wait. */
			sched_yield();
			release_tracked(dev, b, b->pfns, valid);
			budget -= (unsigned int)total;
			chains++;
			continue;
		}
		while (r->done < total && budget > 0) {
			unsigned int n = (unsigned int)MIN((uint64_t)MIN(PFN_CHUNK, budget),
							   total - r->done);

			viod_iov_to_buf(r->iov, r->out_num, r->done * 4, b->pfns, n * 4u);
			apply_pfns(dev, b, b->pfns, n, inflate);
			r->done += n;
			budget -= n;
		}
		if (!buffer_done(b, q, r, total))
			break;
		chains++;
	}
	return served(dev, progress);
}

/*
 * Page reporting: each buffer lists free ranges to release, not tracked
 * (5.5.6.6). Only whole backing pages inside one region can go back;
 * r->done counts the bytes of the buffer already handled.
 */
static enum viod_serve report_queue(struct viod_dev *dev, struct balloon *b,
				    struct viod_queue *q)
{
	const struct viod_mem *mem = viod_dev_mem(dev);
	unsigned int qi = viod_queue_index(q), chains = 0;
	uint64_t budget = REPORT_BUDGET;
	bool progress = false;

	while (budget > 0 && chains < CHAINS_PER_CALL) {
		struct viod_req *r = b->cur[qi];
		uint64_t skip;

		if (!r && !(r = viod_queue_pop(q)))
			break;
		progress = true;
		skip = r->done;
		for (unsigned int i = 0; i < r->out_num + r->in_num && budget > 0; i++) {
			uint64_t len = r->iov[i].iov_len, gpa, start, end, unit, off;
			int reg;

			if (skip >= len) {
				skip -= len;
				continue;
			}
			off = skip;
			skip = 0;
			if (len - off > budget)
				len = off + budget;
			budget -= len - off;
			r->done += len - off;
			reg = viod_mem_host_to_gpa(mem, (uint8_t *)r->iov[i].iov_base + off, &gpa);
			if (reg < 0)
				continue;
			unit = viod_dev_mem_page_size(dev, (unsigned int)reg);
			start = (gpa - mem->regions[reg].gpa + unit - 1) / unit * unit;
			end = (gpa - mem->regions[reg].gpa + (len - off)) / unit * unit;
			if (end > start)
				discard(dev, b, (unsigned int)reg, mem->regions[reg].gpa + start,
					end - start, true);
		}
		if (!buffer_done(b, q, r, r->out_len + r->in_len))
			break;
		chains++;
	}
	return served(dev, progress);
}

static void stats_parse(struct viod_dev *dev, struct balloon *b, const struct viod_req *r)
{
	uint64_t n = r->out_len / STAT_BYTES, seen = 0;

	/* Bound the walk: a guest may post a huge buffer. */
	if (n > 4096)
		n = 4096;
	for (uint64_t i = 0; i < n; i++) {
		uint8_t raw[STAT_BYTES];
		uint16_t tag;
		uint64_t val;

		viod_iov_to_buf(r->iov, r->out_num, i * STAT_BYTES, raw, sizeof(raw));
		memcpy(&tag, raw, 2);
		memcpy(&val, raw + 2, 8);
		tag = le16toh(tag);
		if (tag >= VIRTIO_BALLOON_S_NR)
			continue;
		atomic_store_explicit(&b->stats[tag], le64toh(val), memory_order_relaxed);
		seen |= 1ull << tag;
	}
	atomic_fetch_or_explicit(&b->stats_seen, seen, memory_order_relaxed);
	atomic_store_explicit(&b->stats_updated, g_get_monotonic_time(), memory_order_relaxed);
	atomic_fetch_add_explicit(&b->stats_updates, 1, memory_order_release);
	viod_dev_counters_changed(dev);
}

/*
 * Holds the guest's stats buffer and returns it when new values are
 * wanted (5.5.6.3). While it holds one, the queue is BLOCKED: a second
 * buffer a guest posts waits, and costs nothing, until the next request.
 */
static enum viod_serve stats_queue(struct viod_dev *dev, struct balloon *b,
				   struct viod_queue *q)
{
	if (!b->stats_req) {
		struct viod_req *r = viod_queue_pop(q);

		if (!r)
			return VIOD_SERVE_IDLE;
		stats_parse(dev, b, r);
		b->stats_req = r;
		return VIOD_SERVE_PROGRESS;
	}
	if (!atomic_exchange(&b->stats_request, false))
		return VIOD_SERVE_BLOCKED;
	viod_queue_complete(q, b->stats_req, 0);
	b->stats_req = NULL;
	return VIOD_SERVE_PROGRESS;
}

/* Chains on a queue with no role are returned unread (no busy loop). */
static enum viod_serve drop_queue(struct viod_queue *q)
{
	unsigned int done = 0;
	struct viod_req *r;

	while (done < CHAINS_PER_CALL && (r = viod_queue_pop(q))) {
		viod_queue_complete(q, r, 0);
		done++;
	}
	return done ? VIOD_SERVE_PROGRESS : VIOD_SERVE_IDLE;
}

static enum viod_serve balloon_queue(struct viod_dev *dev, struct viod_queue *q)
{
	struct balloon *b = viod_dev_priv(dev);

	switch (queue_role(viod_dev_dp_features(dev), viod_queue_index(q))) {
	case Q_INFLATE:
		return pfn_queue(dev, b, q, true);
	case Q_DEFLATE:
		return pfn_queue(dev, b, q, false);
	case Q_STATS:
		return stats_queue(dev, b, q);
	case Q_REPORTING:
		return report_queue(dev, b, q);
	case Q_NONE:
		break;
	}
	return drop_queue(q);
}

/*
 * The queue stops or memory changes: a partly moved PFN buffer is finished
 * (pages must not be half in the balloon), a partly reported one and the
 * stats buffer are returned.
 */
static void balloon_queue_release(struct viod_dev *dev, struct viod_queue *q)
{
	struct balloon *b = viod_dev_priv(dev);
	unsigned int qi = viod_queue_index(q);
	enum qrole role = queue_role(viod_dev_dp_features(dev), qi);
	struct viod_req *r = qi < BALLOON_QUEUES ? b->cur[qi] : NULL;

	if (r && (role == Q_INFLATE || role == Q_DEFLATE)) {
		uint64_t total = r->out_len / 4;

		while (r->done < total) {
			unsigned int n = (unsigned int)MIN((uint64_t)PFN_CHUNK, total - r->done);

			viod_iov_to_buf(r->iov, r->out_num, r->done * 4, b->pfns, n * 4u);
			apply_pfns(dev, b, b->pfns, n, role == Q_INFLATE);
			r->done += n;
		}
	}
	if (r) {
		viod_queue_complete(q, r, 0);
		b->cur[qi] = NULL;
	}
	if (role == Q_STATS && b->stats_req) {
		viod_queue_complete(q, b->stats_req, 0);
		b->stats_req = NULL;
	}
}

static void maps_free(struct balloon *b)
{
	for (unsigned int i = 0; i < b->nmaps; i++)
		g_free(b->maps[i].bits);
	b->nmaps = 0;
	atomic_store(&b->inflated, 0);
}

/* Rebuilds the bitmaps for the new memory table, keeping those of regions
 * that are still there unchanged. */
static void balloon_mem_changed(struct viod_dev *dev)
{
	struct balloon *b = viod_dev_priv(dev);
	const struct viod_mem *mem = viod_dev_mem(dev);
	struct bmap fresh[VIOD_MEM_MAX_REGIONS];
	uint64_t kept = 0;

	for (unsigned int i = 0; i < mem->nregions; i++) {
		const struct viod_mem_region *r = &mem->regions[i];
		uint64_t unit = viod_dev_mem_page_size(dev, i), pages = r->size / BALLOON_PAGE;

		fresh[i] = (struct bmap){ .gpa = r->gpa, .size = r->size,
					  .unit = unit < BALLOON_PAGE ? BALLOON_PAGE : unit };
		for (unsigned int j = 0; j < b->nmaps; j++) {
			if (b->maps[j].bits && b->maps[j].gpa == r->gpa &&
			    b->maps[j].size == r->size) {
				fresh[i].bits = b->maps[j].bits;
				b->maps[j].bits = NULL;
				for (uint64_t w = 0; w < (pages + 63) / 64; w++)
					kept += (uint64_t)__builtin_popcountll(fresh[i].bits[w]);
			}
		}
		if (!fresh[i].bits)
			fresh[i].bits = g_new0(uint64_t, (pages + 63) / 64 + 1);
	}
	maps_free(b);
	memcpy(b->maps, fresh, sizeof(fresh[0]) * mem->nregions);
	b->nmaps = mem->nregions;
	atomic_store(&b->inflated, kept);
}

static void stats_timer_set(struct viod_dev *dev, unsigned int seconds);

/* Control side: config space back to zero, no stats requests. */
static void balloon_reset(struct viod_dev *dev)
{
	struct balloon *b = viod_dev_priv(dev);

	b->actual = 0;
	b->stats_negotiated = false;
	stats_timer_set(dev, b->stats_interval);
	atomic_store(&b->stats_request, false);
}

/* Data path: the balloon is empty again, nothing is held. */
static void balloon_dp_reset(struct viod_dev *dev)
{
	struct balloon *b = viod_dev_priv(dev);

	memset(b->cur, 0, sizeof(b->cur));
	b->stats_req = NULL;
	for (unsigned int i = 0; i < b->nmaps; i++)
		if (b->maps[i].bits)
			memset(b->maps[i].bits, 0, ((b->maps[i].size / BALLOON_PAGE + 63) / 64 + 1) * 8);
	atomic_store(&b->inflated, 0);
}

/* Statistics are asked for only while a driver that negotiated them is
 * there: an idle device runs no timer. */
static void balloon_features_changed(struct viod_dev *dev, uint64_t features)
{
	struct balloon *b = viod_dev_priv(dev);

	b->stats_negotiated = viod_has_feature(features, VIRTIO_BALLOON_F_STATS_VQ);
	stats_timer_set(dev, b->stats_interval);
}

static void balloon_config_read(struct viod_dev *dev, uint32_t off, void *buf, uint32_t len)
{
	struct balloon *b = viod_dev_priv(dev);
	struct virtio_balloon_config c;

	memset(&c, 0, sizeof(c));
	c.num_pages = htole32(b->num_pages);
	c.actual = htole32(b->actual);
	memcpy(buf, (uint8_t *)&c + off, len);
}

/*
 * Only `actual` is the driver's to write (5.5.4). QEMU forwards the whole
 * config space on every guest write, so writes that also cover read-only
 * fields are accepted and those fields ignored; a write that misses
 * `actual` altogether is refused.
 */
static int balloon_config_write(struct viod_dev *dev, uint32_t off, const void *buf,
				uint32_t len)
{
	struct balloon *b = viod_dev_priv(dev);
	const uint32_t a = offsetof(struct virtio_balloon_config, actual);
	uint32_t v;

	if (off > a || off + len < a + 4)
		return -EPERM;
	memcpy(&v, (const uint8_t *)buf + (a - off), 4);
	if (b->actual != le32toh(v)) {
		b->actual = le32toh(v);
		/* balloonctl --wait and other watchers follow actual. */
		viod_dev_state_changed(dev);
	}
	return 0;
}

/* The stats queue's index: it follows inflate and deflate (5.5.2). */
#define STATS_QUEUE 2u

static gboolean stats_tick(gpointer data)
{
	struct viod_dev *dev = data;
	struct balloon *b = viod_dev_priv(dev);

	atomic_store(&b->stats_request, true);
	viod_dev_queue_wake(dev, STATS_QUEUE);
	return G_SOURCE_CONTINUE;
}

/* Sets the interval; the timer runs only while statistics are negotiated. */
static void stats_timer_set(struct viod_dev *dev, unsigned int seconds)
{
	struct balloon *b = viod_dev_priv(dev);

	if (b->stats_timer)
		g_source_remove(b->stats_timer);
	b->stats_timer = 0;
	b->stats_interval = seconds;
	if (seconds && b->stats_negotiated)
		b->stats_timer = g_timeout_add_seconds(seconds, stats_tick, dev);
}

gboolean viod_balloon_set_target(struct viod_dev *dev, uint64_t pages, GError **err)
{
	struct balloon *b = viod_dev_priv(dev);
	uint64_t mem = viod_dev_mem_size(dev);

	if (pages > UINT32_MAX || (mem && pages > mem / BALLOON_PAGE)) {
		g_set_error(err, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
			    "target of %" PRIu64 " pages exceeds the guest's %" PRIu64
			    " pages of memory", pages, mem / BALLOON_PAGE);
		return FALSE;
	}
	if (b->num_pages != pages) {
		b->num_pages = (uint32_t)pages;
		viod_dev_config_changed(dev);
	}
	return TRUE;
}

static gboolean parse_switch(const char *key, const char *value, bool *on, GError **err)
{
	if (!g_strcmp0(value, "on") || !g_strcmp0(value, "true") || !g_strcmp0(value, "1"))
		*on = true;
	else if (!g_strcmp0(value, "off") || !g_strcmp0(value, "false") || !g_strcmp0(value, "0"))
		*on = false;
	else {
		g_set_error(err, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
			    "expected on or off, not '%s'", value);
		return FALSE;
	}
	return TRUE;
}

static const struct {
	const char *name;
	unsigned int bit;
} switches[] = {
	{ "must-tell-host", VIRTIO_BALLOON_F_MUST_TELL_HOST },
	{ "stats", VIRTIO_BALLOON_F_STATS_VQ },
	{ "deflate-on-oom", VIRTIO_BALLOON_F_DEFLATE_ON_OOM },
	{ "reporting", VIRTIO_BALLOON_F_REPORTING },
};

static int balloon_set_option(struct viod_dev *dev, const char *key, const char *value,
			      GError **err)
{
	struct balloon *b = viod_dev_priv(dev);
	guint64 v;

	for (size_t i = 0; i < G_N_ELEMENTS(switches); i++) {
		bool on;

		if (g_strcmp0(key, switches[i].name))
			continue;
		if (!parse_switch(key, value, &on, err))
			return -EINVAL;
		if (on)
			b->switched_off &= ~(1ull << switches[i].bit);
		else
			b->switched_off |= 1ull << switches[i].bit;
		return 0;
	}
	if (!g_strcmp0(key, "stats-interval")) {
		if (!g_ascii_string_to_unsigned(value, 10, 0, 86400, &v, err))
			return -EINVAL;
		b->stats_interval = (unsigned int)v;
		b->stats_interval_set = true;
		return 0;
	}
	if (!g_strcmp0(key, "target")) {
		if (!g_ascii_string_to_unsigned(value, 10, 0, UINT32_MAX, &v, err))
			return -EINVAL;
		b->initial_target = (uint32_t)v;
		return 0;
	}
	return -ENOENT;
}

static int balloon_init(struct viod_dev *dev, GError **err)
{
	struct balloon *b = viod_dev_priv(dev);

	b->dev = dev;
	b->num_pages = b->initial_target;
	viod_dev_offer_features(dev, BALLOON_OFFERED & ~b->switched_off);
	if (!b->stats_interval_set)
		b->stats_interval = STATS_INTERVAL_DEFAULT;
	return 0;
}

static void balloon_fini(struct viod_dev *dev)
{
	struct balloon *b = viod_dev_priv(dev);

	stats_timer_set(dev, 0);
	maps_free(b);
}

/* ---- control store ---- */

static void balloon_store_publish(struct viod_dev *dev, struct viod_store *st,
				  const char *prefix);

/* Republishes every key of the device whose key `path` ends in `suffix`,
 * so that derived keys (target, memory/target, memory/current) agree as
 * soon as a write's reply is sent. */
static void publish_from(struct viod_dev *dev, struct viod_store *st, const char *path,
			 const char *suffix)
{
	g_autofree char *prefix = g_strndup(path, strlen(path) - strlen(suffix));

	balloon_store_publish(dev, st, prefix);
}

static gboolean parse_count(const char *value, guint64 max, guint64 *out, GError **err)
{
	return g_ascii_string_to_unsigned(value, 10, 0, max, out, err);
}

static gboolean write_target(struct viod_store *st, const char *path, const char *value,
			     gpointer opaque, GError **err)
{
	struct viod_dev *dev = opaque;
	guint64 pages;

	if (!parse_count(value, UINT32_MAX, &pages, err) ||
	    !viod_balloon_set_target(dev, pages, err))
		return FALSE;
	publish_from(dev, st, path, "/target");
	return TRUE;
}

/* XenStore's memory/target: KiB the guest should keep. */
static gboolean write_memory_target(struct viod_store *st, const char *path,
				    const char *value, gpointer opaque, GError **err)
{
	struct viod_dev *dev = opaque;
	uint64_t mem = viod_dev_mem_size(dev);
	guint64 kib;

	if (!mem) {
		g_set_error(err, G_IO_ERROR, G_IO_ERROR_FAILED,
			    "no guest connected: its memory size is unknown");
		return FALSE;
	}
	if (!parse_count(value, mem / 1024, &kib, err))
		return FALSE;
	if (!viod_balloon_set_target(dev, (mem - kib * 1024) / BALLOON_PAGE, err))
		return FALSE;
	publish_from(dev, st, path, "/memory/target");
	return TRUE;
}

static gboolean write_stats_interval(struct viod_store *st, const char *path,
				     const char *value, gpointer opaque, GError **err)
{
	struct viod_dev *dev = opaque;
	guint64 s;

	if (!parse_count(value, 86400, &s, err))
		return FALSE;
	stats_timer_set(dev, (unsigned int)s);
	if (s)
		stats_tick(dev);
	publish_from(dev, st, path, "/stats-interval");
	return TRUE;
}

static void balloon_store_publish(struct viod_dev *dev, struct viod_store *st,
				  const char *prefix)
{
	struct balloon *b = viod_dev_priv(dev);
	uint64_t mem = viod_dev_mem_size(dev);
	uint64_t seen = atomic_load_explicit(&b->stats_seen, memory_order_relaxed);
	uint64_t keep = mem > (uint64_t)b->num_pages * BALLOON_PAGE ?
			mem - (uint64_t)b->num_pages * BALLOON_PAGE : 0;
	uint64_t have = mem > (uint64_t)b->actual * BALLOON_PAGE ?
			mem - (uint64_t)b->actual * BALLOON_PAGE : 0;

	viod_store_setf_under(st, prefix, "target", "%u", b->num_pages);
	viod_store_setf_under(st, prefix, "actual", "%u", b->actual);
	viod_store_setf_under(st, prefix, "guest-memory", "%" PRIu64, mem);
	viod_store_setf_under(st, prefix, "inflated", "%" PRIu64, (uint64_t)atomic_load(&b->inflated));
	viod_store_setf_under(st, prefix, "host-freed", "%" PRIu64, (uint64_t)atomic_load(&b->host_freed));
	viod_store_setf_under(st, prefix, "host-freed-reported", "%" PRIu64,
		 (uint64_t)atomic_load(&b->reported));
	viod_store_setf_under(st, prefix, "errors", "%" PRIu64, (uint64_t)atomic_load(&b->errors));
	viod_store_setf_under(st, prefix, "stats-interval", "%u", b->stats_interval);
	viod_store_setf_under(st, prefix, "memory/target", "%" PRIu64, keep / 1024);
	viod_store_setf_under(st, prefix, "memory/current", "%" PRIu64, have / 1024);
	for (unsigned int t = 0; t < VIRTIO_BALLOON_S_NR; t++) {
		g_autofree char *key = g_strdup_printf("stats/%s", stat_names[t]);

		if (seen & (1ull << t))
			viod_store_setf_under(st, prefix, key, "%" PRIu64,
					      (uint64_t)atomic_load_explicit(&b->stats[t],
									     memory_order_relaxed));
	}
	viod_store_setf_under(st, prefix, "stats/updates", "%" PRIu64,
		 (uint64_t)atomic_load_explicit(&b->stats_updates, memory_order_acquire));
	if (atomic_load(&b->stats_updates))
		viod_store_setf_under(st, prefix, "stats/updated", "%" PRId64,
			 (int64_t)atomic_load_explicit(&b->stats_updated, memory_order_relaxed));
}

static void balloon_store_attach(struct viod_dev *dev, struct viod_store *st,
				 const char *prefix)
{
	g_autofree char *target = g_strdup_printf("%s/target", prefix);
	g_autofree char *interval = g_strdup_printf("%s/stats-interval", prefix);
	g_autofree char *mtarget = g_strdup_printf("%s/memory/target", prefix);

	viod_store_setf_under(st, prefix, "page-size", "%u", BALLOON_PAGE);
	balloon_store_publish(dev, st, prefix);
	viod_store_set_writable(st, target, write_target, dev);
	viod_store_set_writable(st, interval, write_stats_interval, dev);
	viod_store_set_writable(st, mtarget, write_memory_target, dev);
}

static const struct viod_device_ops balloon_ops = {
	.type = "balloon",
	.virtio_id = VIRTIO_ID_BALLOON,
	.features = BALLOON_OFFERED,
	.num_queues = BALLOON_QUEUES,
	.config_size = sizeof(struct virtio_balloon_config),
	.priv_size = sizeof(struct balloon),
	/* While a balloon moves, the guest posts a buffer of 256 PFNs every
	 * few hundred microseconds (under TCG) and waits for each. A worker
	 * still polling when the next one comes acks it before the guest has
	 * gone to sleep waiting, which saves it an interrupt and a wake-up
	 * per batch; the window only opens while kicks keep coming. */
	.poll_us = 1000,
	.set_option = balloon_set_option,
	.init = balloon_init,
	.fini = balloon_fini,
	.queue_handler = balloon_queue,
	.queue_release = balloon_queue_release,
	.config_read = balloon_config_read,
	.config_write = balloon_config_write,
	.features_changed = balloon_features_changed,
	.reset = balloon_reset,
	.dp_reset = balloon_dp_reset,
	.mem_changed = balloon_mem_changed,
	.store_attach = balloon_store_attach,
	.store_publish = balloon_store_publish,
};
VIOD_DEVICE_REGISTER(balloon_ops)
