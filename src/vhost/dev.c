/*
 * Device instances: the state one device keeps across connections, the
 * device type registry, and the small API devices use (device.h) for
 * memory, logging and notifications. Which thread may call what is in
 * device.h; who owns which field is in vhost.h.
 */
#include "vhost.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

uint64_t viod_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

bool viod_log_verbose;

bool viod_ratelimit_ok(struct viod_ratelimit *rl)
{
	uint64_t now = viod_now_ns();

	if (now - rl->window_start > 5000000000ull) {
		if (rl->suppressed && rl->verbose_only)
			g_info("%u similar messages suppressed", rl->suppressed);
		else if (rl->suppressed)
			g_warning("%u similar messages suppressed", rl->suppressed);
		rl->window_start = now;
		rl->count = 0;
		rl->suppressed = 0;
	}
	if (rl->count < (rl->burst ? rl->burst : 10u)) {
		rl->count++;
		return true;
	}
	rl->suppressed++;
	return false;
}

/* worker.c: the calling worker's limiter if it serves dev, else NULL. */
struct viod_ratelimit *viod_worker_ratelimit(const struct viod_dev *dev);

void viod_dev_warn(struct viod_dev *dev, const char *fmt, ...)
{
	struct viod_ratelimit *rl = viod_worker_ratelimit(dev);
	char buf[512];
	va_list ap;

	/* Off the device's workers, only the control thread logs for it. */
	if (!rl)
		rl = &dev->ctl_rl;
	if (!viod_ratelimit_ok(rl))
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	g_warning("%s: %s", dev->id, buf);
}

void viod_dev_info(struct viod_dev *dev, bool debug, const char *fmt, ...)
{
	char buf[256];
	va_list ap;

	if (!viod_log_verbose || !viod_ratelimit_ok(&dev->info_rl))
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (debug)
		g_debug("%s: %s", dev->id, buf);
	else
		g_info("%s: %s", dev->id, buf);
}

/* ---- device types ---- */

static const struct viod_device_ops *types[16];
static unsigned int ntypes;

void viod_device_register(const struct viod_device_ops *ops)
{
	if (ntypes < G_N_ELEMENTS(types))
		types[ntypes++] = ops;
}

const struct viod_device_ops *viod_device_lookup(const char *type)
{
	for (unsigned int i = 0; i < ntypes; i++)
		if (strcmp(types[i]->type, type) == 0)
			return types[i];
	return NULL;
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

char *viod_device_type_list(void)
{
	const char *names[G_N_ELEMENTS(types) + 1];

	for (unsigned int i = 0; i < ntypes; i++)
		names[i] = types[i]->type;
	qsort(names, ntypes, sizeof(names[0]), cmp_name);
	names[ntypes] = NULL;
	return g_strjoinv(", ", (char **)names);
}

/* ---- instances ---- */

uint64_t viod_dev_offered_features(const struct viod_dev *dev)
{
	return dev->device_features |
	       (1ull << VIRTIO_F_VERSION_1) |
	       (1ull << VIRTIO_RING_F_INDIRECT_DESC) |
	       (1ull << VIRTIO_RING_F_EVENT_IDX) |
	       (1ull << VHOST_USER_F_PROTOCOL_FEATURES);
}

uint64_t viod_dev_offered_protocol(const struct viod_dev *dev)
{
	/* CONFIG for every device: one without config space answers GET_CONFIG
	 * with the protocol's zero-length error reply. */
	return (1ull << VU_PF_MQ) | (1ull << VU_PF_REPLY_ACK) |
	       (1ull << VU_PF_BACKEND_REQ) | (1ull << VU_PF_CONFIG) |
	       (1ull << VU_PF_CONFIGURE_MEM_SLOTS) | (1ull << VU_PF_RESET_DEVICE) |
	       (1ull << VU_PF_STATUS) | dev->ops->protocol_features;
}

/* Default cap on one front-end's guest memory: the host's RAM. */
static uint64_t host_ram(void)
{
	long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);

	return pages > 0 && size > 0 ? (uint64_t)pages * (uint64_t)size : 1ull << 40;
}

struct viod_dev *viod_dev_new(const struct viod_device_ops *ops, const char *id)
{
	struct viod_dev *dev = g_new0(struct viod_dev, 1);

	dev->ops = ops;
	dev->id = g_strdup(id);
	dev->priv = ops->priv_size ? g_malloc0(ops->priv_size) : NULL;
	dev->listen_fd = dev->conn_fd = dev->backend_fd = -1;
	dev->inflight.fd = -1;
	dev->poll_max_ns = (ops->poll_us ? ops->poll_us : 50u) * 1000u;
	dev->device_features = ops->features;
	dev->num_queues = ops->num_queues;
	dev->nworkers = 1;
	dev->mem_max = host_ram();
	dev->info_rl.burst = 200;
	dev->info_rl.verbose_only = true;
	dev->notify_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	pthread_mutex_init(&dev->backend_lock, NULL);
	pthread_mutex_init(&dev->cmd_lock, NULL);
	pthread_mutex_init(&dev->park_lock, NULL);
	pthread_cond_init(&dev->park_cond, NULL);
	return dev;
}

struct viod_dev *viod_dev_new_inline(const struct viod_device_ops *ops, const char *id)
{
	struct viod_dev *dev = viod_dev_new(ops, id);

	dev->inline_mode = true;
	if (viod_workers_start(dev) < 0) {
		viod_dev_free(dev);
		return NULL;
	}
	return dev;
}

struct viod_vring *viod_dev_vring(struct viod_dev *dev, unsigned int qidx)
{
	if (qidx >= VIOD_MAX_VRINGS)
		return NULL;
	if (!dev->vrings[qidx]) {
		dev->vrings[qidx] = g_new(struct viod_vring, 1);
		viod_vring_init(dev->vrings[qidx], dev, qidx);
	}
	return dev->vrings[qidx];
}

void viod_dev_free(struct viod_dev *dev)
{
	struct viod_cmd *c;

	if (!dev)
		return;
	viod_workers_stop(dev);
	viod_inflight_clear(dev);
	for (unsigned int q = 0; q < VIOD_MAX_VRINGS; q++) {
		if (!dev->vrings[q])
			continue;
		viod_vring_fini(dev->vrings[q]);
		g_clear_pointer(&dev->vrings[q], g_free);
	}
	viod_memtable_unref(dev->mt);
	/* Completions nobody collected (stop_cmd ones included). */
	while ((c = dev->done_head)) {
		dev->done_head = c->next;
		viod_cmd_free(c);
	}
	while ((c = dev->cmd_head)) {
		dev->cmd_head = c->next;
		viod_cmd_free(c);
	}
	if (dev->backend_fd >= 0)
		close(dev->backend_fd);
	if (dev->notify_fd >= 0)
		close(dev->notify_fd);
	pthread_mutex_destroy(&dev->backend_lock);
	pthread_mutex_destroy(&dev->cmd_lock);
	pthread_mutex_destroy(&dev->park_lock);
	pthread_cond_destroy(&dev->park_cond);
	g_free(dev->priv);
	g_free(dev->id);
	g_free(dev->socket_path);
	g_free(dev);
}

void *viod_dev_priv(struct viod_dev *dev)
{
	return dev->priv;
}

const char *viod_dev_id(const struct viod_dev *dev)
{
	return dev->id;
}

uint64_t viod_dev_features(const struct viod_dev *dev)
{
	return dev->features_acked;
}

uint64_t viod_dev_dp_features(const struct viod_dev *dev)
{
	return dev->dp_features;
}

void viod_dev_set_num_queues(struct viod_dev *dev, unsigned int n)
{
	if (n >= 1 && n <= VIOD_MAX_VRINGS)
		dev->num_queues = n;
}

unsigned int viod_dev_num_queues(const struct viod_dev *dev)
{
	return dev->num_queues;
}

unsigned int viod_dev_workers(const struct viod_dev *dev)
{
	return dev->nworkers;
}

void viod_dev_queue_wake(struct viod_dev *dev, unsigned int qidx)
{
	struct viod_vring *vr = qidx < VIOD_MAX_VRINGS ? dev->vrings[qidx] : NULL;
	struct viod_worker *w = vr ? vr->w : NULL;

	if (!w)
		return;
	/* Pairs with the worker's store to sleeping and its look at the wake
	 * flags (both seq_cst): either it sees the flag or we see it asleep.
	 * A worker that is awake needs no system call to notice. */
	atomic_store(&vr->wake, true);
	if (atomic_load(&w->sleeping))
		viod_worker_wake(w);
}

void viod_dev_counters_changed(struct viod_dev *dev)
{
	uint64_t one = 1;

	if (atomic_load_explicit(&dev->counters_dirty, memory_order_relaxed) ||
	    atomic_exchange(&dev->counters_dirty, true))
		return;
	if (write(dev->notify_fd, &one, sizeof(one)) < 0)
		(void)0; /* counter full: the control thread will look */
}

void viod_dev_state_changed(struct viod_dev *dev)
{
	dev->state_dirty = true;
	if (!dev->in_message)
		viod_dev_state_flush(dev);
}

void viod_dev_state_flush(struct viod_dev *dev)
{
	if (!dev->state_dirty)
		return;
	dev->state_dirty = false;
	if (dev->on_state_changed)
		dev->on_state_changed(dev);
}

void viod_dev_config_changed(struct viod_dev *dev)
{
	struct viod_vu_msg m = { 0 };

	m.hdr.request = VU_BACKEND_CONFIG_CHANGE_MSG;
	m.hdr.flags = VU_FLAG_VERSION;
	pthread_mutex_lock(&dev->backend_lock);
	/* Never NEED_REPLY: a front-end that does not answer must not be able
	 * to stall us. */
	if (dev->backend_fd >= 0 && viod_msg_send(dev->backend_fd, &m, NULL, 0) < 0)
		viod_dev_warn(dev, "config change notification not delivered");
	pthread_mutex_unlock(&dev->backend_lock);
}

void viod_dev_offer_features(struct viod_dev *dev, uint64_t features)
{
	dev->device_features = features;
}

bool viod_dev_connected(const struct viod_dev *dev)
{
	return dev->conn_fd >= 0;
}

uint64_t viod_dev_mem_size(const struct viod_dev *dev)
{
	return atomic_load_explicit(&dev->mem_bytes, memory_order_relaxed);
}

const struct viod_mem *viod_dev_mem(struct viod_dev *dev)
{
	static const struct viod_mem none;

	return dev->mt ? &dev->mt->mem : &none;
}

uint64_t viod_dev_mem_page_size(struct viod_dev *dev, unsigned int region)
{
	return dev->mt && region < dev->mt->mem.nregions && dev->mt->maps[region] ?
	       dev->mt->maps[region]->page_size : 4096;
}

static uint64_t fd_allocated(int fd)
{
	struct stat st;

	return fstat(fd, &st) == 0 ? (uint64_t)st.st_blocks * 512u : 0;
}

int64_t viod_dev_mem_discard(struct viod_dev *dev, unsigned int region,
			     uint64_t gpa, uint64_t len)
{
	const struct viod_mem_region *r;
	const struct viod_memmap *map;
	uint64_t off, before, after;

	if (!dev->mt || region >= dev->mt->mem.nregions || !dev->mt->maps[region])
		return -EINVAL;
	r = &dev->mt->mem.regions[region];
	map = dev->mt->maps[region];
	if (gpa < r->gpa || len == 0 || gpa - r->gpa > r->size ||
	    len > r->size - (gpa - r->gpa) ||
	    (gpa - r->gpa) % map->page_size || len % map->page_size)
		return -EINVAL;
	off = map->fd_offset + (gpa - r->gpa);
	before = fd_allocated(map->fd);
	/* A shared memfd ignores MADV_DONTNEED; only punching the file frees. */
	if (fallocate(map->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		      (off_t)off, (off_t)len) < 0)
		return -errno;
	after = fd_allocated(map->fd);
	return before > after ? (int64_t)(before - after) : 0;
}
