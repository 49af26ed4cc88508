/*
 * The narrow API between the vhost-user core and a device model. A device
 * is one const struct viod_device_ops that registers itself
 * (VIOD_DEVICE_REGISTER); it never sees vhost-user messages, the memory
 * table or the socket. The core checks every queue index and config
 * offset/size before a hook runs.
 *
 * Threads. A device's hooks run on two kinds of thread, which share
 * nothing but atomics:
 * - the control thread (GLib main loop): set_option, init, fini,
 *   config_read, config_write, features_changed, reset, store_attach,
 *   store_publish;
 * - the device's workers (its data path): worker_start, worker_stop,
 *   queue_handler, queue_release, queue_drain, dp_reset, mem_changed,
 *   event sources' poll. Each queue is served by one worker
 *   (queue_worker picks it among the device's workers=N); dp_reset,
 *   mem_changed and queue_drain run with every other worker of the device
 *   parked, so they may touch every queue and other workers' sources.
 * A worker serves only its own device's queues, so nothing a device does
 * on its workers can delay another device; a hook must still do bounded
 * work per call (see queue_handler), since the device's own control
 * messages wait for the data path to reach a safe point.
 */
#ifndef VIOD_VHOST_DEVICE_H
#define VIOD_VHOST_DEVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>
#include <glib.h>

#include "virtio/mem.h"
#include "virtio/vq.h"

struct viod_dev;
struct viod_queue;
struct viod_store;

/* What a queue handler call achieved. */
enum viod_serve {
	VIOD_SERVE_IDLE,     /* nothing to do until the guest posts more
			      * (requests may be held, e.g. waiting for I/O) */
	VIOD_SERVE_PROGRESS, /* did work; call again soon */
	VIOD_SERVE_BLOCKED,  /* will take nothing more from the ring for now
			      * (a buffer held on purpose, a rate limit, a
			      * full hand): the ring is neither polled nor
			      * armed for kicks; called again after
			      * viod_dev_queue_wake(), the throttle deadline,
			      * a kick, or progress elsewhere on the worker */
};

/*
 * One popped request (a descriptor chain). iov[0 .. out_num) are
 * device-readable, then iov[out_num .. out_num + in_num) device-writable;
 * out_len and in_len are their byte totals. done is the device's own
 * resume cursor (0 at pop), priv its per-request area (req_priv_size
 * bytes, zeroed at pop). Valid until completed.
 */
struct viod_req {
	uint16_t head;
	unsigned int out_num;
	unsigned int in_num;
	uint64_t out_len;
	uint64_t in_len;
	struct iovec *iov;
	uint64_t done;
	void *priv;
};

struct viod_device_ops {
	const char *type;        /* as in --device TYPE,... */
	uint32_t virtio_id;      /* virtio 1.2, 5 */
	uint64_t features;       /* device feature bits offered (ring and
				  * VERSION_1 bits are added by the core) */
	uint64_t protocol_features; /* vhost-user protocol features beyond the
				  * core's set, e.g. INFLIGHT_SHMFD */
	uint32_t num_queues;     /* queues the device serves (default; see
				  * viod_dev_set_num_queues) */
	uint32_t config_size;    /* bytes of device config space */
	size_t priv_size;        /* zeroed private state, viod_dev_priv() */
	uint32_t poll_us;        /* default bound of the workers' adaptive
				  * polling (option poll-us); 0: 50 us */
	uint32_t queue_depth;    /* requests a queue may hold popped and not
				  * completed (0: 1); also bounded by the ring size */
	uint32_t max_iov;        /* iovecs a request may need (0: VIOD_VQ_MAX_IOV);
				  * a longer chain breaks the ring */
	size_t req_priv_size;    /* per-request area, viod_req.priv */

	/* One key=value device option. -ENOENT: unknown key; other -errno
	 * with *err set: bad value. */
	int (*set_option)(struct viod_dev *dev, const char *key,
			  const char *value, GError **err);
	/* After all options; may fail with *err set. */
	int (*init)(struct viod_dev *dev, GError **err);
	void (*fini)(struct viod_dev *dev);
	/* What GET_QUEUE_NUM answers; default the number of queues served
	 * (a net device answers queue pairs, as QEMU and DPDK read it). */
	uint64_t (*queue_num)(struct viod_dev *dev);
	/* Net requests (vhost-user.rst), control thread, with their protocol
	 * feature (RARP, NET_MTU) in protocol_features: announce the guest's
	 * MAC after a migration (SEND_RARP), and the MTU the front-end set
	 * (NET_SET_MTU). 0 or -errno (answered as a failure). */
	int (*send_rarp)(struct viod_dev *dev, const uint8_t mac[6]);
	int (*set_mtu)(struct viod_dev *dev, uint64_t mtu);
	/* The worker (0 .. viod_dev_workers()-1) serving queue qidx; default 0. */
	unsigned int (*queue_worker)(struct viod_dev *dev, unsigned int qidx);
	/* On each worker's own thread, when it starts (the device's first
	 * front-end) and before it exits: per-worker resources, such as an
	 * io_uring, and event sources (viod_worker_add_source). */
	void (*worker_start)(struct viod_dev *dev, unsigned int worker);
	void (*worker_stop)(struct viod_dev *dev, unsigned int worker);
	/*
	 * Serves queue q: pops, serves and completes requests, doing a
	 * bounded amount of work (a byte, page or request budget) and keeping
	 * a partly served request (viod_req.done) for the next call.
	 * Completions are published at the latest when the call returns.
	 */
	enum viod_serve (*queue_handler)(struct viod_dev *dev, struct viod_queue *q);
	/* Complete now every request held on purpose (e.g. a buffer kept
	 * until the device wants new data): the queue stops or guest memory
	 * changes. Requests waiting for I/O are left to complete. */
	void (*queue_release)(struct viod_dev *dev, struct viod_queue *q);
	/* Before the requests q still holds are forgotten (a device reset,
	 * the front-end gone, a broken ring stopped): wait until no I/O the
	 * device started for q is in flight, completing what finishes, so
	 * that nothing touches their buffers afterwards. May block for the
	 * backing store's latency; on the primary worker, others parked.
	 * Requests left held afterwards are dropped. */
	void (*queue_drain)(struct viod_dev *dev, struct viod_queue *q);
	/* Config space access, range already checked. */
	void (*config_read)(struct viod_dev *dev, uint32_t off, void *buf, uint32_t len);
	int (*config_write)(struct viod_dev *dev, uint32_t off, const void *buf,
			    uint32_t len);
	/* The front-end set the features (SET_FEATURES), control side. */
	void (*features_changed)(struct viod_dev *dev, uint64_t features);
	/* Device reset, control side: config space and control-side state
	 * back to initial values (also when the front-end goes away). */
	void (*reset)(struct viod_dev *dev);
	/* Device reset, data-path side (after every queue stopped). */
	void (*dp_reset)(struct viod_dev *dev);
	/* The memory table changed (viod_dev_mem() is the new one). */
	void (*mem_changed)(struct viod_dev *dev);
	/* Control store (control thread): create the device's keys under
	 * prefix ("/devices/ID") and register writable ones; then refresh
	 * them (after state changes, and soon after counters changed). */
	void (*store_attach)(struct viod_dev *dev, struct viod_store *st,
			     const char *prefix);
	void (*store_publish)(struct viod_dev *dev, struct viod_store *st,
			      const char *prefix);
};

/* Registers a device type; run from a constructor (VIOD_DEVICE_REGISTER). */
void viod_device_register(const struct viod_device_ops *ops);
#define VIOD_DEVICE_REGISTER(ops)                                            \
	static void __attribute__((constructor)) viod_register_##ops(void)   \
	{                                                                    \
		viod_device_register(&(ops));                                \
	}

/* Registered types, or NULL. */
const struct viod_device_ops *viod_device_lookup(const char *type);
/* The registered types' names, sorted, comma-separated (free it). */
char *viod_device_type_list(void);

void *viod_dev_priv(struct viod_dev *dev);
const char *viod_dev_id(const struct viod_dev *dev);
static inline bool viod_has_feature(uint64_t features, unsigned int bit)
{
	return (features >> bit) & 1u;
}

/* Control thread: features the front-end acked (0 before SET_FEATURES). */
uint64_t viod_dev_features(const struct viod_dev *dev);
/* Data path: the features the rings run with. */
uint64_t viod_dev_dp_features(const struct viod_dev *dev);
/* init only: the number of queues served (GET_QUEUE_NUM) and workers. */
void viod_dev_set_num_queues(struct viod_dev *dev, unsigned int n);
unsigned int viod_dev_num_queues(const struct viod_dev *dev);
unsigned int viod_dev_workers(const struct viod_dev *dev);

/* ---- queues (the serving worker) ---- */

/*
 * The next request, or NULL: the ring is empty, stopping, broken, or the
 * queue already holds queue_depth requests. Resubmitted requests (inflight
 * tracking after a reconnect) come first, in their original order.
 */
struct viod_req *viod_queue_pop(struct viod_queue *q);
/* Gives a request back to the guest: len is the bytes actually written.
 * Published by viod_queue_flush() (or when the handler returns). */
void viod_queue_complete(struct viod_queue *q, struct viod_req *r, uint32_t len);
/* Publishes completed requests with one used-index write and signals the
 * guest if it asked to be (EVENT_IDX aware). */
void viod_queue_flush(struct viod_queue *q);
/* Puts back the most recently popped request, not yet completed. */
void viod_queue_unpop(struct viod_queue *q, struct viod_req *r);
unsigned int viod_queue_index(const struct viod_queue *q);
/* Requests popped and not completed (also shown in the store as the
 * queue's in-flight count). */
unsigned int viod_queue_held(const struct viod_queue *q);
/* Serve this queue no sooner than CLOCK_MONOTONIC ns until (rate limits). */
void viod_queue_throttle(struct viod_queue *q, uint64_t until);
/* Counts a request the device refused (bad header, bad range). */
void viod_queue_count_error(struct viod_queue *q);
/* Any thread: have queue qidx served soon, even if it reported BLOCKED. */
void viod_dev_queue_wake(struct viod_dev *dev, unsigned int qidx);

/*
 * From worker_start, for the calling worker: an external event source
 * (io_uring completions, a tap fd) served in the same loop as the rings.
 * fd becoming readable wakes the worker; poll(opaque) then reaps what is
 * ready (bounded work, like a queue handler), clears fd's readiness (the
 * worker never reads it: it may be a tap), publishes what it completed
 * (viod_queue_flush, on queues this worker serves) and says whether it
 * made progress, which also unblocks the worker's BLOCKED queues. The
 * worker calls poll in its polling phase too, so a source needs no wake-up
 * while the worker spins. poll runs guarded: if guest memory faults under
 * it (a front-end shrank its memory), the rings of the worker are broken,
 * so poll must keep its own bookkeeping consistent before it touches guest
 * memory. Returns the source's id (>= 0, for viod_worker_source_arm),
 * -ENOSPC (too many sources) or -errno.
 */
int viod_worker_add_source(struct viod_dev *dev, int fd,
			   enum viod_serve (*poll)(void *opaque), void *opaque);
/*
 * On the worker that added it: stop (armed false) or resume watching and
 * polling source id. A source whose fd stays readable while the device
 * cannot take its data (a tap with frames waiting and no receive buffers)
 * is disarmed until the device can, so the worker sleeps meanwhile.
 * Sources start armed. 0 or -errno.
 */
int viod_worker_source_arm(struct viod_dev *dev, int id, bool armed);

/* ---- guest memory (data path) ---- */

/*
 * The translation table, each region's backing page size (4096, or the
 * huge page size), and discard: punches [gpa, gpa + len), which must lie
 * in region i and be aligned to its page size, out of the backing fd so
 * the host gets the memory back. Returns the bytes the host released
 * (allocated blocks before minus after) or -errno.
 */
const struct viod_mem *viod_dev_mem(struct viod_dev *dev);
uint64_t viod_dev_mem_page_size(struct viod_dev *dev, unsigned int region);
int64_t viod_dev_mem_discard(struct viod_dev *dev, unsigned int region,
			     uint64_t gpa, uint64_t len);
/* Any thread: guest memory in bytes (sum of the regions), 0 if none. */
uint64_t viod_dev_mem_size(const struct viod_dev *dev);

/* ---- control thread ---- */

/* Tells the front-end that config space changed (back-end channel). */
void viod_dev_config_changed(struct viod_dev *dev);
/* State the control store shows changed (a guest wrote config space, a
 * front-end came or went). The store's keys are refreshed at once, or,
 * for a change a front-end's message made, right after that message is
 * answered (a vCPU may be waiting on the reply) and before the next one
 * is read: watchers see every value. */
void viod_dev_state_changed(struct viod_dev *dev);
/* Before the socket listens: the device feature bits to offer (default
 * ops->features), e.g. after options switched some off. */
void viod_dev_offer_features(struct viod_dev *dev, uint64_t features);
/* Whether a front-end is connected. */
bool viod_dev_connected(const struct viod_dev *dev);

/* ---- any thread ---- */

/* Counters the store shows changed (worker side): they are published
 * within the store's coalescing delay, and nothing runs while idle. */
void viod_dev_counters_changed(struct viod_dev *dev);

uint64_t viod_now_ns(void);

/*
 * Logging for anything a guest or front-end can trigger: rate-limited
 * per device and per thread (at most 10 lines per 5 s, then a count of
 * those dropped), prefixed with the device id.
 */
void viod_dev_warn(struct viod_dev *dev, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif
