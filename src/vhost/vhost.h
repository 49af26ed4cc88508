/*
 * vhost-user back-end core: internal definitions shared by the files of
 * src/vhost. Devices see only device.h.
 *
 * Security model: the front-end on the socket is untrusted, and so is the
 * guest behind it. Every message is framed and checked against the request
 * table (payload size, fd count, queue index, protocol-feature gating)
 * before a handler runs; all fds are closed on every error path; a
 * violation drops that connection and resets that device only.
 *
 * Threads, ownership and waiting (who may wait on whom):
 * - The control thread (one GLib main loop for the whole daemon) owns
 *   each device's connection (socket, receive buffer, negotiated
 *   features, status, config space), the control store and signals. It
 *   never blocks: sockets are non-blocking, it takes no lock a worker
 *   holds for longer than a queue operation, and it reads at most
 *   CONN_MSG_BATCH messages of one connection before letting the others run.
 * - Requests that touch the data path (memory table, rings, inflight
 *   region, resets) become commands (struct viod_cmd) for the device's
 *   primary worker. The control thread stops reading that connection
 *   while a command whose reply or ack the front-end waits for is
 *   pending, and while too many are queued; the worker completes
 *   commands through the device's done queue and notify eventfd, and the
 *   control thread then sends the reply and reads on. So a reply that
 *   waits for the data path (GET_VRING_BASE while requests are in
 *   flight, a memory-table ack while the old table is in use) delays only
 *   its own connection.
 * - Each device has its own workers (workers=N, default 1); worker 0 is
 *   the primary and runs the device's commands. A worker owns the rings
 *   it serves; the primary parks the device's other workers (each stops
 *   at its next safe point, between handler calls) around every command,
 *   so commands may touch every ring and the memory table. Parking waits
 *   only on the same device's workers, for at most one bounded handler
 *   call. No worker ever waits on the control thread.
 * - Locks: cmd_lock (command and done queues, held for a list operation),
 *   backend_lock (the back-end channel, held around one non-blocking
 *   send), park_lock (a device's workers parking). Counters the control
 *   thread reads are atomics.
 */
#ifndef VIOD_VHOST_VHOST_H
#define VIOD_VHOST_VHOST_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <glib.h>

#include "device.h"
#include "proto.h"
#include "virtio/mem.h"
#include "virtio/vq.h"

/* Queue indices travel in 8 bits of SET_VRING_KICK/CALL/ERR. */
#define VIOD_MAX_VRINGS 256u
#define VIOD_MAX_WORKERS 64u

/* Rate limiter: at most burst (0: 10) lines per 5 s, then a count of
 * those dropped. */
struct viod_ratelimit {
	uint64_t window_start;
	unsigned int count;
	unsigned int suppressed;
	unsigned int burst;
	bool verbose_only;         /* its lines show only with -v */
};
/* Whether -v lines are shown (set by the daemon). */
extern bool viod_log_verbose;
bool viod_ratelimit_ok(struct viod_ratelimit *rl);

/* One mmap of a front-end memory fd; tables that keep a region share it. */
struct viod_memmap {
	atomic_uint refs;
	void *base;     /* mmap result */
	size_t len;     /* mmap length */
	int fd;         /* kept open: devices may punch holes through it */
	uint64_t fd_offset; /* file offset of the region's first byte */
	uint64_t page_size; /* backing page size: punches are aligned to it */
};

struct viod_cmd;

/*
 * A memory table: reference-counted, replaced (never changed) when the
 * front-end changes guest memory. The device holds one reference to its
 * current table and every request one to the table it was popped under,
 * so a mapping goes only when nothing can use it any more; a command
 * waiting for that (the front-end's ack of the change) is completed then.
 */
struct viod_memtable {
	atomic_uint refs;
	struct viod_dev *dev;
	struct viod_mem mem;
	struct viod_memmap *maps[VIOD_MEM_MAX_REGIONS]; /* parallel to mem.regions */
	uint64_t total;            /* bytes of guest memory */
	struct viod_cmd *on_release;
};

/* memtable.c */
struct viod_memtable *viod_memtable_new(struct viod_dev *dev);
/* A copy of t's regions (their fds duplicated), or an empty table. */
struct viod_memtable *viod_memtable_clone(struct viod_dev *dev,
					  const struct viod_memtable *t);
int viod_memtable_add(struct viod_memtable *t, const struct viod_vu_region *r,
		      int fd, uint64_t max_total);
int viod_memtable_remove(struct viod_memtable *t, const struct viod_vu_region *r);
void viod_memtable_ref(struct viod_memtable *t);
void viod_memtable_unref(struct viod_memtable *t);
/* Checks that fd may back guest memory (a regular file, a memfd or a
 * hugetlbfs file) of at least end bytes: 0, or -errno with *why set. */
int viod_mem_fd_check(int fd, uint64_t end, const char **why);

enum ring_state {
	RING_STOPPED,   /* not processed */
	RING_RUNNING,   /* kick fd given: served */
	RING_STOPPING,  /* GET_VRING_BASE: no new requests, held ones finish */
};

struct viod_req_slot {
	struct viod_req req;       /* what the device sees; first member */
	struct viod_vring *vr;
	struct viod_memtable *mt;  /* table the request was popped under */
	uint64_t gen;              /* ring generation at pop */
	bool mt_owned;             /* holds its own reference to mt (else the
				    * ring's cached one, counted in mt_users) */
	bool busy;
	bool resubmitted;          /* from the inflight region's list */
	unsigned int next_free;
};

/* A ring: a struct viod_queue to devices. */
struct viod_vring {
	struct viod_dev *dev;
	unsigned int idx;
	struct viod_worker *w;     /* serving worker; NULL: not served */

	/* Set by the front-end (the primary, others parked). */
	uint32_t num;              /* SET_VRING_NUM, 0 = unset */
	struct vhost_vring_addr addr;
	bool addr_set;
	uint16_t base;             /* SET_VRING_BASE */
	int kick_fd, call_fd, err_fd;
	bool polled;               /* started without a kick fd: poll only */
	bool enabled;

	/* Data path (the serving worker). */
	enum ring_state state;
	struct viod_vq vq;
	bool mapped;               /* vq points into current memory */
	bool broken_reported;
	uint64_t gen;              /* bumped whenever held requests are dropped */
	enum viod_serve last;      /* the handler's last answer */
	uint64_t throttle_until;
	atomic_bool wake;          /* viod_dev_queue_wake() */
	uint16_t filled;           /* completed, not yet published */
	uint16_t *batch;           /* heads filled, for the inflight region */
	unsigned int batch_cap;
	struct viod_cmd *stop_cmd; /* GET_VRING_BASE waiting for held requests */

	/* Request pool. Requests popped under the current memory table
	 * share the ring's one reference to it (no atomic per request); when
	 * the table changes, the ones still held take their own. */
	struct viod_memtable *mt_cache;
	unsigned int mt_users;
	struct viod_req_slot *slots;
	unsigned int nslots, free_head, held;
	struct iovec *iov_store;
	void *priv_store;

	/* Inflight tracking (vhost-user.rst): this queue's region, or NULL. */
	struct viod_inflight_queue *ifq;
	uint16_t *resubmit;        /* heads to hand out first, in order */
	unsigned int nresubmit, resubmit_pos;

	/* Counters (worker writes, control reads). */
	atomic_uint_fast64_t requests, bytes, errors;
	atomic_uint held_pub;      /* held, for the store */
};

/* A command: a request that runs on the device's primary worker. */
enum viod_cmd_kind {
	CMD_MSG,        /* a front-end request (msg, fds) */
	CMD_RESET_CONN, /* the front-end went away: everything back to initial */
};

struct viod_cmd {
	enum viod_cmd_kind kind;
	uint64_t gen;              /* connection generation it belongs to */
	struct viod_vu_msg msg;
	int fds[VU_MAX_FDS];
	unsigned int nfds;
	/* Result. */
	int rc;
	bool has_reply;            /* reply carries its own payload */
	uint32_t reply_size;
	union {
		uint64_t u64;
		struct vhost_vring_state state;
		struct viod_vu_inflight inflight;
	} reply;
	int reply_fd;              /* an fd to send with the reply, or -1 */
	struct viod_cmd *next;
};

/* Completes a command (any worker): queues it for the control thread. */
void viod_cmd_complete(struct viod_dev *dev, struct viod_cmd *cmd);
void viod_cmd_free(struct viod_cmd *cmd);

/* External event sources a worker polls beside its rings (io_uring
 * completions, tap fds): fd wakes the worker, poll() reaps. */
struct viod_source {
	int fd;
	bool armed;                /* watched and polled (viod_worker_source_arm) */
	enum viod_serve (*poll)(void *opaque);
	void *opaque;
};
#define VIOD_WORKER_MAX_SOURCES 8u

struct viod_worker {
	struct viod_dev *dev;
	unsigned int index;
	pthread_t thread;
	bool started;              /* its thread runs */
	bool hooked;               /* inline: worker_start ran */
	int epfd;
	int wake_fd;
	atomic_bool stop;
	atomic_bool park_req;
	atomic_bool sleeping;      /* in (or about to enter) epoll_wait */
	bool parked;               /* park_lock */
	struct viod_vring **rings; /* served rings (the primary sets them) */
	unsigned int nrings;
	struct viod_source sources[VIOD_WORKER_MAX_SOURCES];
	unsigned int nsources;
	uint32_t poll_ns;
	struct viod_ratelimit rl;
};

/* A buffered, possibly partial, incoming message. */
struct viod_rxbuf {
	struct viod_vu_msg msg;
	size_t len;
	int fds[VU_MAX_FDS];
	unsigned int nfds;
};

/* Inflight region the front-end gave (SET_INFLIGHT_FD). */
struct viod_inflight {
	int fd;
	void *base;                /* mapping of [0, offset + size) */
	size_t map_len;
	uint8_t *region;           /* base + offset */
	uint16_t num_queues;
	uint16_t queue_size;
	atomic_uint_fast64_t counter; /* next counter value handed out */
};

struct viod_dev {
	const struct viod_device_ops *ops;
	char *id;
	char *socket_path;
	void *priv;

	/* Options (fixed once the device serves). */
	uint32_t poll_max_ns;
	unsigned int num_queues;
	unsigned int nworkers;
	uint64_t mem_max;          /* cap on the guest memory one front-end maps */
	uint64_t device_features;
	bool inline_mode;          /* no threads: commands run at once (tests) */

	/* Control thread. */
	int listen_fd;
	guint listen_watch;
	int conn_fd;
	guint conn_watch;
	uint64_t conn_gen;
	struct viod_rxbuf rx;
	struct viod_cmd *waiting;  /* command whose reply the front-end awaits */
	unsigned int outstanding;  /* commands sent, not completed */
	uint64_t features_acked;
	uint64_t proto_acked;
	bool owner;
	uint8_t status;
	uint64_t connections;
	uint64_t protocol_errors;
	struct viod_ratelimit ctl_rl;   /* warnings from the control thread */
	struct viod_ratelimit info_rl;  /* -v lines: connections, requests */
	/* The control store's hook for viod_dev_state_changed: called at
	 * once, or after the reply when the change came from a message. */
	void (*on_state_changed)(struct viod_dev *dev);
	/* Called on the control thread while counters_dirty is set; the hook
	 * coalesces, and clears the flag when it publishes. */
	void (*on_counters_changed)(struct viod_dev *dev);
	/* Called on the control thread when the front-end of a device with
	 * no listening socket (a connected --fd) is gone for good. */
	void (*on_frontend_gone)(struct viod_dev *dev);
	bool in_message;
	bool state_dirty;
	int notify_fd;             /* workers -> control: done commands, counters */
	guint notify_watch;

	/* Back-end channel: any thread may send on it. */
	pthread_mutex_t backend_lock;
	int backend_fd;

	/* Commands (control -> primary) and completions (workers -> control). */
	pthread_mutex_t cmd_lock;
	struct viod_cmd *cmd_head, *cmd_tail;
	atomic_bool cmd_ready;     /* set after queueing a command: the primary
				    * looks at the list only then */
	struct viod_cmd *done_head, *done_tail;

	/* Data path: the primary owns it, others are parked while it changes. */
	struct viod_memtable *mt;
	struct viod_vring *vrings[VIOD_MAX_VRINGS];
	uint64_t dp_features;
	struct viod_inflight inflight;
	struct viod_worker *workers;
	pthread_mutex_t park_lock;
	pthread_cond_t park_cond;

	/* Shared atomics. */
	atomic_bool needs_reset;
	atomic_bool counters_dirty;
	atomic_uint_fast64_t mem_bytes;
};

/* dev.c */
/* Control thread, verbose (-v) lines a front-end can trigger: connects,
 * requests. Rate-limited (200 per 5 s per device). */
void viod_dev_info(struct viod_dev *dev, bool debug, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
struct viod_dev *viod_dev_new(const struct viod_device_ops *ops, const char *id);
void viod_dev_free(struct viod_dev *dev);
uint64_t viod_dev_offered_features(const struct viod_dev *dev);
uint64_t viod_dev_offered_protocol(const struct viod_dev *dev);
/* Runs the state-change hook for what the message just handled changed. */
void viod_dev_state_flush(struct viod_dev *dev);
/* The ring qidx, allocated on first use (data path). */
struct viod_vring *viod_dev_vring(struct viod_dev *dev, unsigned int qidx);

/* msg.c: framing and validation. */
enum viod_rx_result { VIOD_RX_AGAIN, VIOD_RX_MSG, VIOD_RX_EOF, VIOD_RX_ERROR };
enum viod_rx_result viod_msg_read(int fd, struct viod_rxbuf *rx);
void viod_rxbuf_reset(struct viod_rxbuf *rx, bool close_fds);
int viod_msg_send(int fd, const struct viod_vu_msg *m, const int *fds,
		  unsigned int nfds);
int viod_msg_reply(int fd, const struct viod_vu_msg *req, const void *payload,
		   uint32_t size, int reply_fd);

/* requests.c: the request table. */
int viod_msg_check(const struct viod_dev *dev, const struct viod_vu_msg *m,
		   unsigned int nfds, const char **why);
/*
 * Handles one checked request on the control thread; takes ownership of
 * fds. Returns 0 to keep the connection, -errno to drop it. A request for
 * the data path becomes a command; *cmd_out (if not NULL) is set to it
 * when the front-end waits for its reply or ack.
 */
int viod_handle_msg(struct viod_dev *dev, struct viod_vu_msg *m, int *fds,
		    unsigned int nfds, struct viod_cmd **cmd_out);
/* Runs a command on the primary worker: 0 or -errno (completed), or
 * VIOD_CMD_DEFERRED (completed later by whoever finishes it). */
#define VIOD_CMD_DEFERRED 1
int viod_cmd_run(struct viod_dev *dev, struct viod_cmd *cmd);
/* Control thread: a completed command's reply, ack or error. Returns 0
 * or -errno to drop the connection. */
int viod_cmd_finish(struct viod_dev *dev, struct viod_cmd *cmd);

/* ring.c */
void viod_vring_init(struct viod_vring *vr, struct viod_dev *dev, unsigned int idx);
void viod_vring_fini(struct viod_vring *vr);
/* Points the ring at current memory (fresh: start from the front-end's
 * base, clear a broken state). Reads guest memory: data path only. */
void viod_vring_map(struct viod_vring *vr, bool fresh);
int viod_vring_start(struct viod_vring *vr);
/* Has the device complete the requests it holds on purpose, now. */
void viod_vring_release(struct viod_vring *vr);
/* The memory table changed (or went): held requests keep the old one. */
void viod_vring_mem_switch(struct viod_vring *vr);
/* Marks the ring broken by the guest (reported once per setup). */
void viod_vring_break(struct viod_vring *vr);
/* Waits for the device's I/O on the held requests (queue_drain). */
void viod_vring_drain(struct viod_vring *vr);
/* Stops serving; held requests are dropped (their slots freed). */
void viod_vring_reset(struct viod_vring *vr, bool close_fds);
/* GET_VRING_BASE: stop, or start stopping; true once stopped. */
bool viod_vring_begin_stop(struct viod_vring *vr);
void viod_vring_finish_stop(struct viod_vring *vr);
void viod_vring_check_stop(struct viod_vring *vr);
bool viod_vring_served(const struct viod_vring *vr);
/* Runs the device's handler once for the ring (guarded); reports a
 * ring the guest broke. */
enum viod_serve viod_vring_serve(struct viod_vring *vr);
unsigned int viod_vring_pending(struct viod_vring *vr, bool enable_notify);
void viod_vring_notify(struct viod_vring *vr);

/* inflight.c */
int viod_inflight_create(struct viod_dev *dev, struct viod_vu_inflight *desc,
			 int *fd_out);
int viod_inflight_set(struct viod_dev *dev, const struct viod_vu_inflight *desc,
		      int fd);
void viod_inflight_clear(struct viod_dev *dev);
/* At ring start: attach the queue's region, initialise or recover it
 * (last_avail and the resubmit list). 0 or -errno (region unusable). */
int viod_inflight_ring_start(struct viod_vring *vr);
void viod_inflight_pop(struct viod_vring *vr, uint16_t head);
void viod_inflight_fill(struct viod_vring *vr, uint16_t head);
void viod_inflight_flush(struct viod_vring *vr, uint16_t n);

/* worker.c */
int viod_workers_start(struct viod_dev *dev);
void viod_workers_start_inline(struct viod_dev *dev);
int viod_workers_launch(struct viod_dev *dev);
void viod_workers_stop(struct viod_dev *dev);
void viod_worker_wake(struct viod_worker *w);
/* Queues a command for the primary worker (runs it at once in inline mode). */
void viod_cmd_submit(struct viod_dev *dev, struct viod_cmd *cmd);
/* Primary: parks / unparks the device's other workers. */
void viod_workers_park(struct viod_dev *dev);
void viod_workers_unpark(struct viod_dev *dev);
/* Primary (others parked): recomputes which worker serves which ring. */
void viod_workers_assign(struct viod_dev *dev);
int viod_worker_watch(struct viod_worker *w, int fd, uint64_t tag);
void viod_worker_unwatch(struct viod_worker *w, int fd);
/* Inline mode (tests, fuzzers): serves every running ring once. */
unsigned int viod_dev_run_queues(struct viod_dev *dev);

/* server.c: the device's socket on the GLib loop. */
int viod_server_listen(struct viod_dev *dev, const char *path, GError **err);
/*
 * Serves an inherited socket (vhost-user.rst's --fd), which from then on
 * is the device's (closed on error too). A listening one is served as
 * viod_server_listen()'s, but its path, if any, is not removed; a
 * connected one is the front-end itself: when it goes there is nothing
 * left to accept, and on_frontend_gone is called. 0, or -errno with *err
 * set (not a UNIX stream socket, no worker).
 */
int viod_server_adopt(struct viod_dev *dev, int fd, GError **err);
void viod_server_close(struct viod_dev *dev);
void viod_server_disconnect(struct viod_dev *dev, const char *why);
/* Control thread: takes completed commands and counter changes. */
void viod_server_notified(struct viod_dev *dev);

/*
 * Tests and fuzzers drive a device without threads. viod_dev_new_inline()
 * makes one whose commands run at once on the caller's thread;
 * viod_dev_attach() gives it a connected socket (replies go there);
 * viod_dev_inject() hands it one request as if read from that socket (0,
 * or -1 when the connection was dropped); viod_dev_run_queues() serves
 * its rings once; viod_dev_set_host_memory() installs guest memory given
 * as host buffers (no fds, so nothing can be punched).
 */
struct viod_dev *viod_dev_new_inline(const struct viod_device_ops *ops, const char *id);
void viod_dev_attach(struct viod_dev *dev, int fd);
int viod_dev_inject(struct viod_dev *dev, const struct viod_vu_msg *m, const int *fds,
		    unsigned int nfds);
int viod_dev_set_host_memory(struct viod_dev *dev, const struct viod_mem *mem);

/* guard.c: runs fn(arg); -EFAULT if it touched guest memory the front-end
 * had truncated away (SIGBUS), 0 otherwise. Nests; any thread. */
int viod_guard_run(void (*fn)(void *), void *arg);

#endif
