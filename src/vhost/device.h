/*
 * The narrow API between the vhost-user core and a device model. A device
 * is one const struct viod_device_ops; it never sees vhost-user messages,
 * the memory table or the socket. The core checks every queue index and
 * config offset/size before a hook runs.
 *
 * Threads: set_option/init/fini/config_read/config_write run on the control
 * thread; queue_handler runs on the device's worker thread; reset runs on
 * the control thread while the worker is held off (no handler is running).
 */
#ifndef VIOD_VHOST_DEVICE_H
#define VIOD_VHOST_DEVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <glib.h>

#include "virtio/vq.h"

struct viod_dev;
struct viod_store;

struct viod_device_ops {
	const char *type;        /* as in --device TYPE,... */
	uint32_t virtio_id;      /* virtio 1.2, 5 */
	uint64_t features;       /* device feature bits offered (ring and
				  * VERSION_1 bits are added by the core) */
	uint32_t num_queues;
	uint32_t config_size;    /* bytes of device config space */
	size_t priv_size;        /* zeroed private state, viod_dev_priv() */
	uint32_t poll_us;        /* default bound of the worker's adaptive
				  * polling (option poll-us); 0: 50 us */

	/* One key=value device option. -ENOENT: unknown key; other -errno
	 * with *err set: bad value. */
	int (*set_option)(struct viod_dev *dev, const char *key,
			  const char *value, GError **err);
	/* After all options; may fail with *err set. */
	int (*init)(struct viod_dev *dev, GError **err);
	void (*fini)(struct viod_dev *dev);
	/* Serves queue qidx; returns the number of chains completed. */
	unsigned int (*queue_handler)(struct viod_dev *dev, unsigned int qidx);
	/* Config space access, range already checked. */
	void (*config_read)(struct viod_dev *dev, uint32_t off, void *buf, uint32_t len);
	int (*config_write)(struct viod_dev *dev, uint32_t off, const void *buf,
			    uint32_t len);
	/* Device reset: all per-connection state back to initial values. */
	void (*reset)(struct viod_dev *dev);
	/* The memory table changed (dp_lock held, no handler running). */
	void (*mem_changed)(struct viod_dev *dev);
	/* Control store (control thread): create the device's keys under
	 * prefix ("/devices/ID") and register writable ones; then refresh
	 * them, called periodically. */
	void (*store_attach)(struct viod_dev *dev, struct viod_store *st,
			     const char *prefix);
	void (*store_publish)(struct viod_dev *dev, struct viod_store *st,
			      const char *prefix);
};

void *viod_dev_priv(struct viod_dev *dev);
const char *viod_dev_id(const struct viod_dev *dev);
/* Features the front-end acked (0 before SET_FEATURES). */
uint64_t viod_dev_features(const struct viod_dev *dev);
static inline bool viod_has_feature(uint64_t features, unsigned int bit)
{
	return (features >> bit) & 1u;
}

/* Worker thread only: the running ring qidx, or NULL. */
struct viod_vq *viod_dev_vq(struct viod_dev *dev, unsigned int qidx);
/* Worker thread only: a scratch element (too big for the stack). */
struct viod_vq_elem *viod_dev_elem(struct viod_dev *dev);
/* Signals the guest for qidx if it asked to be (EVENT_IDX aware). */
void viod_dev_notify(struct viod_dev *dev, unsigned int qidx);
/* Worker thread only: run no handler before CLOCK_MONOTONIC ns `until`. */
void viod_dev_throttle(struct viod_dev *dev, uint64_t until);
/* Tells the front-end that config space changed (back-end channel). */
void viod_dev_config_changed(struct viod_dev *dev);
/* Control thread: state the control store shows changed (a guest wrote
 * config space, a front-end came or went). The store's keys are refreshed
 * at once, or, for a change a front-end's message made, right after that
 * message is answered (a vCPU may be waiting on the reply) and before the
 * next one is read: watchers see every value, not the periodic
 * publication's samples. */
void viod_dev_state_changed(struct viod_dev *dev);
/* Control thread: makes the worker run the queue handlers soon. */
void viod_dev_wake(struct viod_dev *dev);
/* Control thread, before the socket listens: the device feature bits to
 * offer (default ops->features), e.g. after options switched some off. */
void viod_dev_offer_features(struct viod_dev *dev, uint64_t features);
/* Whether a front-end is connected, and its guest memory in bytes (sum of
 * the regions). Control thread. */
bool viod_dev_connected(const struct viod_dev *dev);
uint64_t viod_dev_mem_size(const struct viod_dev *dev);

/*
 * Guest memory for devices that manage it (worker thread, or mem_changed):
 * the translation table, each region's backing page size (4096, or the
 * huge page size), and discard: punches [gpa, gpa + len), which must lie
 * in region i and be aligned to its page size, out of the backing fd so
 * the host gets the memory back. Returns the bytes the host released
 * (allocated blocks before minus after) or -errno.
 */
const struct viod_mem *viod_dev_mem(struct viod_dev *dev);
uint64_t viod_dev_mem_page_size(struct viod_dev *dev, unsigned int region);
int64_t viod_dev_mem_discard(struct viod_dev *dev, unsigned int region,
			     uint64_t gpa, uint64_t len);
/* Bytes of host memory currently allocated to guest memory. */
uint64_t viod_dev_mem_allocated(struct viod_dev *dev);

uint64_t viod_now_ns(void);

/* Rate-limited logging for anything a guest or front-end can trigger:
 * at most 10 lines per 5 s per limiter, then a count of those dropped. */
struct viod_ratelimit {
	uint64_t window_start;
	unsigned int count;
	unsigned int suppressed;
};
bool viod_ratelimit_ok(struct viod_ratelimit *rl);

/* Registered device types. */
const struct viod_device_ops *viod_device_lookup(const char *type);
extern const struct viod_device_ops viod_rng_ops;
extern const struct viod_device_ops viod_balloon_ops;

/* Registered types, NULL-terminated, for --help and error messages. */
extern const struct viod_device_ops *const viod_device_types[];

#endif
