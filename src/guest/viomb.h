/*
 * viomb: reference driver for the traditional memory balloon (virtio 1.2,
 * 5.5: device id 5), after NetBSD's viomb(4). A worker compares the
 * device's num_pages with the pages in the balloon (actual) and moves at
 * most VIOMB_PGS_PER_REQ pages per request, one request in flight:
 *
 *   inflate: allocate pages from the front-end's page pool, write their
 *            PFNs (gpa >> 12, le32) into guest memory, post that array on
 *            inflateq (device-readable), kick, wait for the used buffer,
 *            then write actual (SET_CONFIG, offset 4, le32).
 *   deflate: take the oldest pages out of the balloon, post their PFNs on
 *            deflateq; with MUST_TELL_HOST the pages go back to the pool
 *            only once the device has used the buffer, without it they go
 *            back as soon as the buffer is posted (5.5.6.1); then actual.
 *
 * Queues are numbered by the negotiated features: inflateq 0, deflateq 1,
 * then statsq (STATS_VQ), free_page_vq (FREE_PAGE_HINT, never negotiated
 * here), reporting_vq (PAGE_REPORTING). With STATS_VQ one stats buffer is
 * posted at attach and refilled and re-posted each time the device uses
 * it (5.5.6.3). With PAGE_REPORTING, free pool pages are reported in runs
 * when the balloon is idle (5.5.6.6).
 *
 * Trust: config space is the device's word, not the truth. num_pages is
 * clamped to the pool (a target beyond guest memory is not followed), the
 * device's actual is only compared with ours, used ids and lengths are
 * checked by the ring code (every buffer here is device-readable, so used
 * len must be 0), and a request the device does not use within ack
 * timeout breaks the driver. After any error the driver is broken (-EIO
 * from then on): pages may still be in the device's hands.
 *
 * One struct viomb drives a connected struct viod_fe that it negotiates
 * itself; the page pool takes every page of guest memory left after the
 * rings and buffers. Not thread-safe.
 */
#ifndef VIOD_GUEST_VIOMB_H
#define VIOD_GUEST_VIOMB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "guest/frontend.h"

#define VIOMB_VIRTIO_ID 5u

/* Feature bits (virtio 1.2, 5.5.3). */
#define VIOMB_F_MUST_TELL_HOST 0u
#define VIOMB_F_STATS_VQ 1u
#define VIOMB_F_DEFLATE_ON_OOM 2u
#define VIOMB_F_FREE_PAGE_HINT 3u
#define VIOMB_F_PAGE_POISON 4u
#define VIOMB_F_PAGE_REPORTING 5u
/* What the driver can negotiate (FREE_PAGE_HINT and PAGE_POISON: never). */
#define VIOMB_FEATURES_SUPPORTED                                             \
	((1ull << VIOMB_F_MUST_TELL_HOST) | (1ull << VIOMB_F_STATS_VQ) |     \
	 (1ull << VIOMB_F_DEFLATE_ON_OOM) | (1ull << VIOMB_F_PAGE_REPORTING))

/* Config space (5.5.4): le32 num_pages, le32 actual, le32
 * free_page_hint_cmd_id, le32 poison_val. */
#define VIOMB_CONFIG_NUM_PAGES 0u
#define VIOMB_CONFIG_ACTUAL 4u

/* Statistics tags (5.5.6.3.1); each entry is packed { le16 tag; le64 val }. */
#define VIOMB_S_SWAP_IN 0u
#define VIOMB_S_SWAP_OUT 1u
#define VIOMB_S_MAJFLT 2u
#define VIOMB_S_MINFLT 3u
#define VIOMB_S_MEMFREE 4u
#define VIOMB_S_MEMTOT 5u
#define VIOMB_S_AVAIL 6u
#define VIOMB_S_CACHES 7u
#define VIOMB_S_HTLB_PGALLOC 8u
#define VIOMB_S_HTLB_PGFAIL 9u
#define VIOMB_S_NR 10u
#define VIOMB_STAT_SIZE 10u

#define VIOMB_PAGE_SIZE 4096u
#define VIOMB_PGS_PER_REQ 256u        /* as NetBSD: 1 MiB per request */
#define VIOMB_REPORT_MAX_SG 32u       /* runs per reporting request */
#define VIOMB_DEFAULT_QUEUE_SIZE 64u
#define VIOMB_DEFAULT_REPORT_MIN 256u /* pages: 1 MiB runs at least */
#define VIOMB_DEFAULT_REPORT_MAX 1024u
#define VIOMB_DEFAULT_ACK_TIMEOUT_MS 10000

struct viomb_opts {
	uint64_t features;        /* wanted VIOMB_F_* bits; acked if offered */
	uint16_t queue_size;      /* ring entries per queue (power of two,
				   * >= VIOMB_REPORT_MAX_SG with reporting) */
	size_t pool_pages;        /* page pool size; 0: all memory left */
	bool touch_memory;        /* write every pool page once at attach */
	size_t report_min_pages;  /* reporting: shortest run reported */
	size_t report_max_pages;  /* reporting: longest run per entry */
	int ack_timeout_ms;       /* per request; -1: wait forever */
};

/* What a request in flight is. */
enum viomb_req_kind { VIOMB_REQ_NONE, VIOMB_REQ_INFLATE, VIOMB_REQ_DEFLATE,
		      VIOMB_REQ_REPORT };

struct viomb_stats {
	uint64_t inflate_reqs;    /* acked requests */
	uint64_t deflate_reqs;
	uint64_t inflated;        /* pages */
	uint64_t deflated;
	uint64_t report_reqs;
	uint64_t reported;        /* pages */
	uint64_t stats_served;    /* stats buffers refilled and re-posted */
	uint64_t config_changes;  /* CONFIG_CHANGE_MSGs seen */
	uint64_t config_reads;
	uint64_t clamped;         /* config reads with num_pages clamped */
	uint64_t actual_mismatch; /* reads where the device's actual != ours */
	uint64_t alloc_failures;  /* inflate found the pool empty */
	uint64_t oom_deflated;    /* pages given back by viomb_oom() */
};

struct viomb {
	struct viod_fe *fe;
	struct viomb_opts opts;
	bool broken;
	bool must_tell_host;
	bool deflate_on_oom;
	unsigned int q_inflate, q_deflate;
	int q_stats;              /* -1 if not negotiated */
	int q_report;             /* -1 if not negotiated */

	/* Mirrors of hw.viomb.npages / hw.viomb.actual. */
	uint32_t npages;          /* target, clamped to the pool */
	uint32_t npages_raw;      /* as the device last said */
	uint32_t actual;          /* pages in the balloon, acked */
	uint32_t dev_actual;      /* the device's actual, last read */
	bool config_dirty;        /* re-read config before deciding */
	bool oom_hold;            /* viomb_oom() ran: no inflate until
				   * num_pages changes */

	/* Pages in the balloon, oldest first (a ring of pool pages). */
	uint64_t *balloon;
	size_t balloon_cap, balloon_head;

	/* The one request in flight. */
	enum viomb_req_kind req;
	uint32_t req_n;           /* pages (inflate/deflate) or runs (report) */
	int64_t req_start_ns;
	uint32_t *pfns;           /* guest memory, VIOMB_PGS_PER_REQ entries */
	uint64_t pfns_gpa;
	uint64_t req_pages[VIOMB_PGS_PER_REQ];  /* gpas, for completion */
	uint64_t rep_gpa[VIOMB_REPORT_MAX_SG];
	size_t rep_len[VIOMB_REPORT_MAX_SG];     /* pages */

	/* Statistics buffer: guest memory, VIOMB_S_NR entries. */
	uint8_t *statsbuf;
	uint64_t statsbuf_gpa;
	bool stats_posted;

	/* The front-end's config callback we chained. */
	viod_fe_config_cb prev_cb;
	void *prev_opaque;

	struct viomb_stats st;
};

/* Fills *o: features MUST_TELL_HOST|STATS_VQ|DEFLATE_ON_OOM (reporting
 * off), 64-entry queues, all memory, no touch, ack timeout 10 s. */
void viomb_opts_init(struct viomb_opts *o);

/*
 * Negotiates opts.features & offered, sets up the queues numbered by what
 * was negotiated, allocates the PFN array and the stats buffer in guest
 * memory, makes the page pool of what memory is left (touching it with
 * touch_memory), posts the stats buffer, sets DRIVER_OK, then kicks the
 * stats queue and reads config. fe must be connected, not negotiated, its
 * back-end a balloon with the CONFIG protocol feature. 0 or -errno
 * (reason in viod_fe_strerror(fe)).
 */
int viomb_attach(struct viomb *sc, struct viod_fe *fe, const struct viomb_opts *opts);

/* Frees host-side bookkeeping; queues and pool go with viod_fe_disconnect(). */
void viomb_detach(struct viomb *sc);

/*
 * One round of the worker: serves the back-end channel (config changes)
 * and a returned stats buffer; then, if a request is in flight, waits up
 * to timeout_ms for it and completes it; otherwise compares num_pages with
 * actual and posts one inflate or deflate request (or, idle, one free page
 * report) and waits up to timeout_ms for it; otherwise waits up to
 * timeout_ms for a config change or a stats request. Returns 1 if
 * something changed (a request completed, config read, stats served), 0
 * if not, -errno on error (the driver is then broken).
 */
int viomb_step(struct viomb *sc, int timeout_ms);

/*
 * Runs viomb_step() in a loop (steps of at most VIOMB_RUN_STEP_MS) and
 * calls cb after each step; stops when cb returns non-zero and returns
 * that value, or returns the step's -errno.
 */
#define VIOMB_RUN_STEP_MS 200
typedef int (*viomb_run_cb)(struct viomb *sc, void *opaque);
int viomb_run(struct viomb *sc, viomb_run_cb cb, void *opaque);

/* hw.viomb.npages (the target, clamped to the pool) and hw.viomb.actual. */
uint32_t viomb_npages(const struct viomb *sc);
uint32_t viomb_actual(const struct viomb *sc);

/* Whether actual == npages with nothing in flight. */
bool viomb_reached(const struct viomb *sc);

/*
 * The guest is short of memory: with DEFLATE_ON_OOM negotiated, gives up
 * to npages (at most VIOMB_PGS_PER_REQ) pages back from the balloon even
 * though num_pages asks for them (5.5.6.1: "if this is required for
 * system stability"), telling the device on deflateq, and holds inflation
 * until num_pages changes. Completes any request in flight first. Returns
 * the pages returned to the pool, -EPERM without DEFLATE_ON_OOM, -errno.
 */
int viomb_oom(struct viomb *sc, uint32_t npages);

#endif
