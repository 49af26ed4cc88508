/*
 * A userspace vhost-user front-end: "a guest in a process". It owns guest
 * memory (one memfd, mapped shared, split into 1..8 regions at
 * non-contiguous guest-physical ranges), talks to any vhost-user back-end
 * over a UNIX socket, and lays split virtqueues in guest memory for the
 * reference drivers (viornd, ...). Loop-agnostic and blocking: a caller
 * drives it from one thread. No exit()/abort(): every failure is a -errno
 * return, with a one-line reason in viod_fe_strerror().
 *
 * Trust: the back-end is a peer we test, not a peer we trust. Replies are
 * checked (reply flag, request, exact size), fds it sends where none are
 * due are closed and rejected, used ids/lengths are checked by the ring
 * code (virtio/vq.h), and a reply that desynchronises the stream makes the
 * connection unusable (every later request fails with -EPIPE) rather than
 * being guessed at.
 *
 * Order of use:
 *   viod_fe_init -> viod_fe_connect -> viod_fe_negotiate -> [config]
 *   -> [viod_fe_get_inflight -> viod_fe_set_inflight]
 *   -> viod_fe_queue_setup (each queue) -> viod_fe_driver_ok
 *   -> viod_fe_kick / viod_fe_wait ... -> viod_fe_disconnect.
 * After losing the back-end (as QEMU does when it restarts):
 *   viod_fe_reconnect -> viod_fe_negotiate (re-sends the inflight region)
 *   -> viod_fe_queue_resume (each queue set up before) -> viod_fe_driver_ok.
 */
#ifndef VIOD_GUEST_FRONTEND_H
#define VIOD_GUEST_FRONTEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vhost/proto.h"
#include "virtio/vq.h"

#define VIOD_FE_MAX_REGIONS VU_MEM_TABLE_MAX
/* Queue indices travel in 8 bits of SET_VRING_KICK/CALL (vhost-user.rst). */
#define VIOD_FE_MAX_QUEUES 256u
#define VIOD_FE_DEFAULT_MEM (64u << 20)
#define VIOD_FE_DEFAULT_SPIN_US 50u
#define VIOD_FE_DEFAULT_TIMEOUT_MS 10000

/* Protocol features the front-end implements; anything else is never acked. */
#define VIOD_FE_PROTOCOL_FEATURES                                           \
	((1ull << VU_PF_MQ) | (1ull << VU_PF_REPLY_ACK) |                   \
	 (1ull << VU_PF_CONFIG) | (1ull << VU_PF_BACKEND_REQ) |             \
	 (1ull << VU_PF_CONFIGURE_MEM_SLOTS) |                              \
	 (1ull << VU_PF_RESET_DEVICE) | (1ull << VU_PF_STATUS) |            \
	 (1ull << VU_PF_INFLIGHT_SHMFD))

struct viod_fe;

/*
 * Called when the back-end sent CONFIG_CHANGE_MSG. It runs from
 * viod_fe_poll_backend() only, never from inside another request, so it
 * may call viod_fe_get_config().
 */
typedef void (*viod_fe_config_cb)(struct viod_fe *fe, void *opaque);

struct viod_fe_opts {
	size_t mem_size;          /* total guest memory, page multiple */
	unsigned int nregions;    /* 1 .. VIOD_FE_MAX_REGIONS */
	unsigned int spin_us;     /* viod_fe_wait busy-poll budget */
	int timeout_ms;           /* per reply; -1 waits forever */
	uint64_t pf_disable;      /* protocol features never to ack */
	bool no_event_idx;        /* do not negotiate VIRTIO_RING_F_EVENT_IDX */
	bool add_mem_reg;         /* with CONFIGURE_MEM_SLOTS, send the regions
				   * with ADD_MEM_REG instead of SET_MEM_TABLE */
	viod_fe_config_cb config_cb;
	void *config_opaque;
};

struct viod_fe_region {
	uint64_t gpa;
	uint64_t size;
	uint64_t mmap_offset;     /* into the memfd */
	uint8_t *host;            /* our mapping of the region */
	uint64_t used;            /* allocator cursor, bytes from the start */
};

struct viod_fe_queue {
	bool ready;               /* set up and not yet torn down */
	bool suspended;           /* ready, but set up on a back-end lost by
				   * viod_fe_reconnect: no eventfds until
				   * viod_fe_queue_resume */
	uint16_t num;
	uint8_t *ring;            /* desc | avail | used, kept across resets */
	size_t ring_cap;
	uint64_t ring_gpa;
	int kick_fd;
	int call_fd;
	uint16_t last_base;       /* from the last GET_VRING_BASE */
	struct viod_vqd vqd;
};

/*
 * Page pool: guest memory handed out and taken back in 4 KiB pages (the
 * virtio balloon's unit, virtio 1.2, 5.5.6), for drivers that give pages
 * to the device (viomb). It takes page-aligned memory from the tail of
 * each region, so runs never cross a region (guest-physical holes lie
 * between regions). One bit per page says "allocated"; a second says
 * "reported free" (free page reporting, 5.5.6.6), cleared when the page
 * is allocated again, as Linux's PageReported.
 */
#define VIOD_FE_PAGE_SIZE 4096u
#define VIOD_FE_POOL_TOUCH 0x1u   /* write every page once at init */

struct viod_fe_pool_seg {
	uint64_t gpa;             /* first page's guest address */
	uint8_t *host;
	size_t first;             /* pool index of the first page */
	size_t npages;
};

struct viod_fe_pool {
	unsigned int nsegs;
	struct viod_fe_pool_seg segs[VIOD_FE_MAX_REGIONS];
	size_t npages;            /* pages in the pool, 0: no pool */
	size_t nfree;             /* not allocated */
	size_t nreported;         /* free and reported */
	size_t hint;              /* next-fit cursor */
	uint64_t *alloc_bits;
	uint64_t *report_bits;
	uint64_t allocs;          /* viod_fe_page_alloc() successes */
	uint64_t frees;           /* viod_fe_page_free() successes */
};

/*
 * The inflight region (INFLIGHT_SHMFD, vhost-user.rst "Inflight I/O
 * tracking"): shared memory the back-end allocates and writes, the
 * front-end keeps across back-end restarts and hands to the next one.
 */
struct viod_fe_inflight {
	int fd;                   /* from GET_INFLIGHT_FD, or -1 */
	uint8_t *map;             /* our mapping of [offset, offset + size) */
	uint64_t size;            /* mmap_size, 0: no region */
	uint64_t offset;          /* mmap_offset into fd */
	uint16_t num_queues;      /* as asked for */
	uint16_t queue_size;
};

struct viod_fe {
	struct viod_fe_opts opts;
	int sock;
	int backend_fd;           /* our end of the back-end channel, or -1 */
	bool broken;              /* stream desynchronised or closed */

	int memfd;
	uint8_t *mem;
	size_t mem_size;
	unsigned int nregions;
	struct viod_fe_region regions[VIOD_FE_MAX_REGIONS];

	uint64_t features_offered;
	uint64_t features_acked;
	uint64_t pf_offered;
	uint64_t pf_acked;
	uint64_t queue_num;       /* GET_QUEUE_NUM, 0 if not asked */
	unsigned int queue_num_unit; /* queues one unit of queue_num stands
				   * for: 1 (viod_fe_init's), or 2 for
				   * virtio-net, whose back-ends count queue
				   * pairs (QEMU's net/vhost-user.c, DPDK);
				   * a driver sets it before negotiating */
	uint64_t max_mem_slots;   /* GET_MAX_MEM_SLOTS, 0 if not asked */
	uint8_t status;           /* last status sent */
	bool handshaken;          /* once-per-connection steps done */
	bool mem_added;           /* regions sent with ADD_MEM_REG */
	bool negotiated;

	unsigned int config_changes;   /* CONFIG_CHANGE_MSGs received */
	unsigned int config_pending;   /* of which not yet delivered */

	struct viod_fe_queue *queues;  /* VIOD_FE_MAX_QUEUES entries */
	struct viod_fe_pool pool;
	struct viod_fe_inflight inflight;
	char err[256];
};

/* Fills *o with defaults: 64 MiB, 1 region, 50 us spin, 10 s timeout. */
void viod_fe_opts_init(struct viod_fe_opts *o);

/*
 * Creates guest memory (opts NULL: defaults). 0 or -errno. On failure
 * nothing needs freeing; on success release with viod_fe_disconnect().
 */
int viod_fe_init(struct viod_fe *fe, const struct viod_fe_opts *opts);

/* One-line reason for the last failure ("" if none). */
const char *viod_fe_strerror(const struct viod_fe *fe);

/* Records a driver's failure reason for viod_fe_strerror(); returns err. */
__attribute__((format(printf, 3, 4)))
int viod_fe_error(struct viod_fe *fe, int err, const char *fmt, ...);

/*
 * Guest memory allocator (bump, no free). Returns len bytes aligned to
 * align (a power of two, 0 means 1) inside one region, its guest address
 * in *gpa; NULL when no region has room. Memory starts zeroed.
 */
void *viod_fe_alloc(struct viod_fe *fe, size_t len, size_t align, uint64_t *gpa);

/*
 * Creates the page pool from every whole free page left in the regions
 * (at most max_pages; 0: no limit): allocate rings and buffers first,
 * viod_fe_alloc() finds no room afterwards. flags: VIOD_FE_POOL_TOUCH
 * writes each page once so the host really backs it (a memfd allocates
 * on first write). 0, -EALREADY, -ENOSPC (no whole page left), -ENOMEM.
 * Freed by viod_fe_disconnect().
 */
int viod_fe_pool_init(struct viod_fe *fe, size_t max_pages, unsigned int flags);

/* Allocates one pool page: its guest address, or UINT64_MAX if none. */
uint64_t viod_fe_page_alloc(struct viod_fe *fe);

/*
 * Returns the page at gpa to the pool. 0; -EINVAL if gpa is not a pool
 * page; -EALREADY if it is free (the pool is unchanged either way).
 */
int viod_fe_page_free(struct viod_fe *fe, uint64_t gpa);

/* Host pointer of pool page gpa (allocated or not), or NULL. */
void *viod_fe_page_host(const struct viod_fe *fe, uint64_t gpa);

/* Pages in the pool / free in it (0 without a pool). */
size_t viod_fe_pool_pages(const struct viod_fe *fe);
size_t viod_fe_pool_free(const struct viod_fe *fe);

/*
 * Free page reporting: allocates the first run of at least min_pages and
 * at most max_pages free, not yet reported, contiguous pages (within one
 * region), searching from the start of the pool. 1 with *gpa and *npages
 * set, 0 if there is no such run.
 */
int viod_fe_pool_take_unreported(struct viod_fe *fe, size_t min_pages,
				 size_t max_pages, uint64_t *gpa, size_t *npages);

/*
 * Frees npages pages from gpa (allocated, in one region) and marks them
 * reported. 0 or -EINVAL (nothing changed).
 */
int viod_fe_pool_put_reported(struct viod_fe *fe, uint64_t gpa, size_t npages);

/* Guest address of host pointer p in guest memory, or UINT64_MAX. */
uint64_t viod_fe_gpa(const struct viod_fe *fe, const void *p);

/* Host pointer for [gpa, gpa + len) inside one region, or NULL. */
void *viod_fe_host(const struct viod_fe *fe, uint64_t gpa, size_t len);

/* Connects to the back-end's socket. 0 or -errno. */
int viod_fe_connect(struct viod_fe *fe, const char *path);

/*
 * The handshake, in virtio order: GET_FEATURES, GET/SET_PROTOCOL_FEATURES,
 * SET_OWNER, GET_QUEUE_NUM, GET_MAX_MEM_SLOTS, SET_BACKEND_REQ_FD, status
 * ACKNOWLEDGE|DRIVER, SET_FEATURES, status FEATURES_OK (re-read with
 * GET_STATUS), memory table, then SET_INFLIGHT_FD when an inflight region
 * is kept (after viod_fe_reconnect) and INFLIGHT_SHMFD was negotiated.
 * Acks offered & (want | VERSION_1 | EVENT_IDX | INDIRECT_DESC |
 * F_PROTOCOL_FEATURES). VERSION_1 must be offered.
 */
int viod_fe_negotiate(struct viod_fe *fe, uint64_t want);

/* Sets DRIVER_OK (when STATUS was negotiated; a no-op otherwise). */
int viod_fe_driver_ok(struct viod_fe *fe);

bool viod_fe_has_feature(const struct viod_fe *fe, unsigned int bit);
bool viod_fe_has_protocol(const struct viod_fe *fe, unsigned int bit);

/* Config space (CONFIG negotiated): len <= VU_MAX_CONFIG_SIZE - off. */
int viod_fe_get_config(struct viod_fe *fe, uint32_t off, void *buf, uint32_t len);
int viod_fe_set_config(struct viod_fe *fe, uint32_t off, const void *buf,
		       uint32_t len);

/*
 * Waits up to timeout_ms (-1: forever, 0: no wait; no wait either when a
 * config change is pending) for back-end requests and serves all that are
 * ready, then delivers pending config-change callbacks. Returns the number
 * of requests served here plus those served earlier inside a request whose
 * callbacks were deferred to now (>= 0), or -errno; -ENOTCONN without a
 * back-end channel.
 */
int viod_fe_poll_backend(struct viod_fe *fe, int timeout_ms);

/*
 * Sets up queue idx with num entries (power of two): ring memory in guest
 * memory, SET_VRING_NUM/ADDR/BASE 0/CALL/KICK, and SET_VRING_ENABLE 1 when
 * F_PROTOCOL_FEATURES was negotiated. Interrupts start disabled (see
 * viod_fe_wait). 0 or -errno.
 */
int viod_fe_queue_setup(struct viod_fe *fe, unsigned int idx, uint16_t num);

/* The driver-side ring of a set-up queue, or NULL. */
struct viod_vqd *viod_fe_vqd(struct viod_fe *fe, unsigned int idx);

/*
 * Takes one used entry of queue idx for a driver whose chain cookies are
 * slot numbers + 1: 1 with the slot (< nslots) in *slot and used.len in
 * *len, 0 if none, -EIO (reason recorded, prefixed with who) if the
 * queue is not set up, the ring refuses the entry (used.id not
 * outstanding, used.len above the bytes posted: virtio/vq.h; the ring is
 * then broken) or the cookie is no slot. Whether the slot was in use is
 * the driver's to check.
 */
int viod_fe_take_slot(struct viod_fe *fe, unsigned int idx, unsigned int nslots,
		      const char *who, unsigned int *slot, uint32_t *len);

/*
 * Kicks queue idx if the device wants it: 1 kicked, 0 not needed (or the
 * queue is suspended: viod_fe_queue_resume kicks), -errno.
 */
int viod_fe_kick(struct viod_fe *fe, unsigned int idx);

/*
 * Waits for a used entry on queue idx: busy-polls for opts.spin_us, then
 * enables interrupts, re-checks, and sleeps on the call eventfd; disables
 * interrupts again once woken. 1 when a used entry is there, 0 on timeout
 * (-1: wait forever), -EIO if the ring is broken, -ENOTCONN if the queue
 * is suspended and has no used entry, other -errno.
 */
int viod_fe_wait(struct viod_fe *fe, unsigned int idx, int timeout_ms);

/*
 * Waits up to timeout_ms (-1: forever) for any of: a used entry on one of
 * the n (<= VIOD_FE_WAIT_MAX) queues in idx[], or, with backend, a
 * request on the back-end channel or a config change not yet delivered.
 * Busy-polls the rings for opts.spin_us first, as viod_fe_wait does
 * (a channel request waits that long at most). Serves nothing
 * (viod_fe_poll_backend does the channel). 1 when something is ready, 0
 * on timeout, -EIO if a ring is broken, -ENOTCONN if a queue is
 * suspended, -errno.
 */
#define VIOD_FE_WAIT_MAX 8u
int viod_fe_wait_any(struct viod_fe *fe, const unsigned int *idx, unsigned int n,
		     bool backend, int timeout_ms);

/*
 * Stops queue idx with GET_VRING_BASE (the back-end's next avail index in
 * *base, if not NULL) and releases it; its ring memory is kept for the
 * next viod_fe_queue_setup of the same or smaller size. 0 or -errno (the
 * queue is released either way). A suspended queue is released without
 * a message (the back-end never had it); *base is then its used index.
 */
int viod_fe_queue_stop(struct viod_fe *fe, unsigned int idx, uint16_t *base);

/*
 * RESET_DEVICE (when negotiated): queues become not set up (their ring
 * memory is reused by the next viod_fe_queue_setup of the same or smaller
 * size) and the inflight region is released (vhost-user.rst: a reset
 * device gets a new one). The connection stays; negotiate again before
 * use.
 */
int viod_fe_reset_device(struct viod_fe *fe);

/*
 * Tears down: GET_VRING_BASE for each set-up queue (skipped once the
 * connection is broken, and for queues suspended by viod_fe_reconnect),
 * closes every fd, unmaps the inflight region, unmaps and frees guest
 * memory. Returns the first error seen; everything is released
 * regardless.
 */
int viod_fe_disconnect(struct viod_fe *fe);

/* ------------------------------------------------------------------ */
/* Inflight I/O tracking and reconnection (INFLIGHT_SHMFD).            */

/*
 * GET_INFLIGHT_FD (after viod_fe_negotiate; INFLIGHT_SHMFD negotiated)
 * for num_queues (1 .. VIOD_FE_MAX_QUEUES) queues of queue_size entries
 * (a valid ring size). The back-end is untrusted: its reply must be
 * exactly 24 bytes with exactly one fd, a regular file holding
 * [mmap_offset, mmap_offset + mmap_size) with mmap_offset page-aligned
 * and mmap_size at least num_queues * viod_inflight_queue_size(queue_size);
 * only then is it mapped (shared) and kept in fe->inflight, replacing any
 * region kept before. -EINVAL for bad arguments or before negotiation;
 * -ENOTSUP when the feature is not negotiated or the back-end answers
 * mmap_size 0 ("no inflight tracking", as QEMU reads it); -EPROTO for a
 * bad reply (its fds closed; the connection stays usable); other -errno.
 * The region is the back-end's to write; a back-end that shrinks the
 * file under the mapping can still fault a reader (SIGBUS).
 */
int viod_fe_get_inflight(struct viod_fe *fe, uint16_t num_queues,
			 uint16_t queue_size);

/*
 * SET_INFLIGHT_FD with the kept region: its fd and the description the
 * back-end gave (mmap_size, mmap_offset; num_queues and queue_size as
 * asked). -EINVAL without a region, -ENOTSUP when INFLIGHT_SHMFD is not
 * negotiated, other -errno.
 */
int viod_fe_set_inflight(struct viod_fe *fe);

/*
 * The region of queue idx inside the kept inflight region, or NULL (no
 * region, idx >= its num_queues). The back-end writes it: read it, do
 * not write it, and check what is read as any data from the back-end.
 */
struct viod_inflight_queue *viod_fe_inflight_queue(struct viod_fe *fe,
						   unsigned int idx);

/*
 * After the back-end is lost (crashed or restarted), connects to path
 * anew without a word to the old one: no GET_VRING_BASE. Kept: guest
 * memory and the page pool, every set-up queue's ring memory and
 * driver-side state (chains outstanding stay outstanding; the queue is
 * "suspended", its eventfds closed), the inflight region, config-change
 * callbacks not yet delivered. Forgotten: everything negotiated. Then
 * viod_fe_negotiate (which re-sends the memory table and, with a region
 * kept and INFLIGHT_SHMFD negotiated again, SET_INFLIGHT_FD before any
 * ring) and viod_fe_queue_resume for each suspended queue. On failure
 * the front-end is left unconnected and the call may be repeated.
 */
int viod_fe_reconnect(struct viod_fe *fe, const char *path);

/*
 * Sets up a suspended queue on the new back-end at the same ring address:
 * SET_VRING_NUM/ADDR, SET_VRING_BASE with the used ring's current index
 * (what QEMU restores as last_avail_idx after losing a back-end),
 * SET_VRING_CALL/KICK with new eventfds, SET_VRING_ENABLE 1 with
 * F_PROTOCOL_FEATURES. The driver-side state is kept. With chains
 * outstanding the queue is kicked once, so the back-end looks at the
 * ring. -EINVAL before viod_fe_negotiate, or if idx is not suspended or
 * out of the new back-end's range; -ENOTSUP if EVENT_IDX was negotiated
 * differently than for the ring; on any failure the queue stays
 * suspended.
 */
int viod_fe_queue_resume(struct viod_fe *fe, unsigned int idx);

/* ------------------------------------------------------------------ */
/* Raw messaging, for tests that need to speak out of turn.            */

/* Sends len raw bytes with nfds (<= VU_MAX_FDS) fds attached. 0 or -errno. */
int viod_fe_send_bytes(int sock, const void *buf, size_t len, const int *fds,
		       unsigned int nfds);

/*
 * Sends header {request, flags, size} then payload_len bytes of payload;
 * size and payload_len may disagree on purpose.
 */
int viod_fe_msg_send(int sock, uint32_t request, uint32_t flags, uint32_t size,
		     const void *payload, size_t payload_len, const int *fds,
		     unsigned int nfds);

/*
 * Receives one message (header, then hdr.size <= VU_PAYLOAD_MAX bytes).
 * fds, if not NULL, has room for VU_MAX_FDS and gets any fds received,
 * their count in *nfds; with fds NULL, received fds are closed and the
 * call fails with -EPROTO. timeout_ms bounds each wait for data (-1:
 * none). -ECONNRESET on EOF, -ETIMEDOUT, -EPROTO for an oversize message.
 */
int viod_fe_msg_recv(int sock, struct viod_vu_msg *msg, int *fds,
		     unsigned int *nfds, int timeout_ms);

/*
 * One request on fe's socket with the version flag. reply != NULL: the
 * request has a reply of exactly reply_size bytes. reply == NULL: when
 * REPLY_ACK was negotiated, NEED_REPLY is set and the u64 ack must be 0
 * (-EREMOTEIO otherwise). Back-end channel requests arriving meanwhile
 * are answered (callbacks deferred).
 */
int viod_fe_request(struct viod_fe *fe, uint32_t request, const void *payload,
		    uint32_t size, const int *fds, unsigned int nfds,
		    void *reply, uint32_t reply_size);

/*
 * Receives the reply to request into reply (exactly reply_size bytes);
 * reply NULL with reply_size 8 reads an ack and checks it is 0.
 */
int viod_fe_recv_reply(struct viod_fe *fe, uint32_t request, void *reply,
		       uint32_t reply_size);

#endif
