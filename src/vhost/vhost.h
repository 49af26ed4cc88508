/*
 * vhost-user back-end core: internal definitions shared by the files of
 * src/vhost. Devices see only device.h.
 *
 * Security model: the front-end on the socket is untrusted, and so is the
 * guest behind it. Every message is framed and checked (payload size, fd
 * count, queue index, protocol-feature gating) by viod_msg_check() before
 * a handler runs; all fds are closed on every error path; a violation
 * drops that connection and resets that device only.
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

/* One mmap of a front-end memory fd, parallel to mem.regions[]. */
struct viod_memmap {
	void *base;     /* mmap result */
	size_t len;     /* mmap length */
	int fd;         /* kept open: devices may punch holes through it */
	uint64_t fd_offset; /* file offset of the region's first byte */
	uint64_t page_size; /* backing page size: punches are aligned to it */
};

struct viod_vring {
	struct viod_vq vq;
	uint32_t num;           /* SET_VRING_NUM, 0 = unset */
	struct vhost_vring_addr addr;
	bool addr_set;
	uint16_t base;          /* SET_VRING_BASE */
	int kick_fd, call_fd, err_fd;
	bool started;           /* a kick fd (or NOFD) was given */
	bool polled;            /* started without a kick fd: poll only */
	bool enabled;
	bool mapped;            /* vq points into current memory */
	bool broken_reported;
};

/* A buffered, possibly partial, incoming message. */
struct viod_rxbuf {
	struct viod_vu_msg msg;
	size_t len;
	int fds[VU_MAX_FDS];
	unsigned int nfds;
};

struct viod_dev {
	const struct viod_device_ops *ops;
	char *id;
	char *socket_path;
	void *priv;
	uint32_t poll_max_ns;

	/* Control thread state. */
	int listen_fd;
	int conn_fd;
	guint listen_watch;
	guint conn_watch;
	struct viod_rxbuf rx;
	uint64_t features_offered;
	uint64_t features_acked;
	uint64_t proto_acked;
	bool owner;
	uint8_t status;
	uint64_t connections;
	uint64_t protocol_errors;
	uint64_t device_features;   /* offered device bits (viod_dev_offer_features) */
	/* The control store's hook for viod_dev_state_changed: called at
	 * once, or after the reply when the change came from a message. */
	void (*on_state_changed)(struct viod_dev *dev);
	bool in_message;            /* a front-end message is being handled */
	bool state_dirty;           /* ... and it changed published state */

	/* Back-end channel: any thread may send on it. */
	pthread_mutex_t backend_lock;
	int backend_fd;

	/* Shared with the worker; guarded by dp_lock. */
	pthread_mutex_t dp_lock;
	atomic_uint ctl_waiting;
	struct viod_mem mem;
	struct viod_memmap maps[VIOD_MEM_MAX_REGIONS];
	struct viod_vring *vrings;
	bool worker_stop;
	bool needs_reset;
	uint64_t throttle_until;

	/* Worker thread. */
	pthread_t worker;
	bool worker_started;
	int epfd;
	int wake_fd;
	struct viod_vq_elem *elem;
};

/* Runs the state-change hook for what the message just handled changed. */
void viod_dev_state_flush(struct viod_dev *dev);

/* msg.c: framing and validation. */
enum viod_rx_result { VIOD_RX_AGAIN, VIOD_RX_MSG, VIOD_RX_EOF, VIOD_RX_ERROR };
enum viod_rx_result viod_msg_read(int fd, struct viod_rxbuf *rx);
void viod_rxbuf_reset(struct viod_rxbuf *rx, bool close_fds);
int viod_msg_check(const struct viod_dev *dev, const struct viod_vu_msg *m,
		   unsigned int nfds, const char **why);
int viod_msg_send(int fd, const struct viod_vu_msg *m, const int *fds,
		  unsigned int nfds);
int viod_msg_reply(int fd, const struct viod_vu_msg *req, const void *payload,
		   uint32_t size);

/* memtable.c */
int viod_memtable_add(struct viod_dev *dev, const struct viod_vu_region *r, int fd);
int viod_memtable_remove(struct viod_dev *dev, const struct viod_vu_region *r);
void viod_memtable_clear(struct viod_dev *dev);

/* handlers.c: one request, already checked; takes ownership of fds. */
int viod_handle_msg(struct viod_dev *dev, struct viod_vu_msg *m, int *fds,
		    unsigned int nfds);

/* dev.c */
struct viod_dev *viod_dev_new(const struct viod_device_ops *ops, const char *id);
void viod_dev_free(struct viod_dev *dev);
void viod_dev_lock(struct viod_dev *dev);
void viod_dev_unlock(struct viod_dev *dev);
void viod_dev_reset_conn(struct viod_dev *dev);
void viod_vring_stop(struct viod_dev *dev, unsigned int q);
void viod_vring_update(struct viod_dev *dev, unsigned int q, bool fresh);
void viod_vrings_remap(struct viod_dev *dev);
/* After any memory table change, dp_lock held: remap rings, tell the device. */
void viod_dev_mem_changed(struct viod_dev *dev);
void viod_vring_close_fds(struct viod_vring *vr);
bool viod_vring_running(const struct viod_vring *vr);
uint64_t viod_dev_offered_features(const struct viod_dev *dev);
uint64_t viod_dev_offered_protocol(const struct viod_dev *dev);

/* worker.c: init makes the epoll set (enough to run handlers without a
 * data path, as the fuzzer does); start also runs the thread. */
int viod_worker_init(struct viod_dev *dev);
int viod_worker_start(struct viod_dev *dev);
void viod_worker_stop(struct viod_dev *dev);
void viod_worker_wake(struct viod_dev *dev);
int viod_worker_watch(struct viod_dev *dev, int fd);
void viod_worker_unwatch(struct viod_dev *dev, int fd);

/* server.c: the device's socket on the GLib loop. */
int viod_server_listen(struct viod_dev *dev, const char *path, GError **err);
void viod_server_close(struct viod_dev *dev);
void viod_server_disconnect(struct viod_dev *dev, const char *why);

/* guard.c: runs fn(arg); -EFAULT if it touched guest memory the front-end
 * had truncated away (SIGBUS), 0 otherwise. Nests; any thread. */
int viod_guard_run(void (*fn)(void *), void *arg);


#endif
