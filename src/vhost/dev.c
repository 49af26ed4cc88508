/*
 * Device instances: the state one device keeps across connections, the
 * API devices use (device.h), and ring start/stop. The worker and the
 * control thread share rings and memory under dp_lock.
 */
#include "vhost.h"

#include <errno.h>
#include <fcntl.h>
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

bool viod_ratelimit_ok(struct viod_ratelimit *rl)
{
	uint64_t now = viod_now_ns();

	if (now - rl->window_start > 5000000000ull) {
		if (rl->suppressed)
			g_warning("%u similar messages suppressed", rl->suppressed);
		rl->window_start = now;
		rl->count = 0;
		rl->suppressed = 0;
	}
	if (rl->count < 10) {
		rl->count++;
		return true;
	}
	rl->suppressed++;
	return false;
}

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
	       (1ull << VU_PF_STATUS);
}

struct viod_dev *viod_dev_new(const struct viod_device_ops *ops, const char *id)
{
	struct viod_dev *dev = g_new0(struct viod_dev, 1);

	dev->ops = ops;
	dev->id = g_strdup(id);
	dev->priv = ops->priv_size ? g_malloc0(ops->priv_size) : NULL;
	dev->listen_fd = dev->conn_fd = dev->backend_fd = -1;
	dev->epfd = dev->wake_fd = -1;
	dev->poll_max_ns = (ops->poll_us ? ops->poll_us : 50u) * 1000u;
	dev->device_features = ops->features;
	pthread_mutex_init(&dev->dp_lock, NULL);
	pthread_mutex_init(&dev->backend_lock, NULL);
	dev->vrings = g_new0(struct viod_vring, ops->num_queues);
	for (unsigned int i = 0; i < ops->num_queues; i++) {
		struct viod_vring *vr = &dev->vrings[i];

		vr->kick_fd = vr->call_fd = vr->err_fd = -1;
	}
	dev->elem = g_malloc0(sizeof(*dev->elem));
	return dev;
}

void viod_dev_free(struct viod_dev *dev)
{
	if (!dev)
		return;
	pthread_mutex_destroy(&dev->dp_lock);
	pthread_mutex_destroy(&dev->backend_lock);
	g_free(dev->vrings);
	g_free(dev->elem);
	g_free(dev->priv);
	g_free(dev->id);
	g_free(dev->socket_path);
	g_free(dev);
}

/*
 * The control thread announces itself before taking dp_lock so that the
 * worker, which re-takes the lock in a tight loop while polling, yields.
 */
void viod_dev_lock(struct viod_dev *dev)
{
	atomic_fetch_add(&dev->ctl_waiting, 1);
	pthread_mutex_lock(&dev->dp_lock);
}

void viod_dev_unlock(struct viod_dev *dev)
{
	pthread_mutex_unlock(&dev->dp_lock);
	atomic_fetch_sub(&dev->ctl_waiting, 1);
	viod_worker_wake(dev);
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

bool viod_vring_running(const struct viod_vring *vr)
{
	return vr->started && vr->enabled && vr->mapped && !vr->vq.broken;
}

struct viod_vq *viod_dev_vq(struct viod_dev *dev, unsigned int qidx)
{
	if (qidx >= dev->ops->num_queues || !viod_vring_running(&dev->vrings[qidx]))
		return NULL;
	return &dev->vrings[qidx].vq;
}

struct viod_vq_elem *viod_dev_elem(struct viod_dev *dev)
{
	return dev->elem;
}

void viod_dev_notify(struct viod_dev *dev, unsigned int qidx)
{
	struct viod_vring *vr = &dev->vrings[qidx];
	uint64_t one = 1;

	if (vr->call_fd >= 0 && viod_vq_need_call(&vr->vq)) {
		/* A full eventfd counter (EAGAIN) still means "signalled". */
		if (write(vr->call_fd, &one, sizeof(one)) < 0 && errno != EAGAIN) {
			static struct viod_ratelimit rl;

			if (viod_ratelimit_ok(&rl))
				g_warning("%s: queue %u: call: %s", dev->id, qidx,
					  g_strerror(errno));
		}
	}
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

void viod_dev_throttle(struct viod_dev *dev, uint64_t until)
{
	dev->throttle_until = until;
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
		g_message("%s: config change notification not delivered", dev->id);
	pthread_mutex_unlock(&dev->backend_lock);
}

void viod_dev_wake(struct viod_dev *dev)
{
	viod_worker_wake(dev);
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
	uint64_t total = 0;

	for (unsigned int i = 0; i < dev->mem.nregions; i++)
		total += dev->mem.regions[i].size;
	return total;
}

const struct viod_mem *viod_dev_mem(struct viod_dev *dev)
{
	return &dev->mem;
}

uint64_t viod_dev_mem_page_size(struct viod_dev *dev, unsigned int region)
{
	return region < dev->mem.nregions ? dev->maps[region].page_size : 4096;
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

	if (region >= dev->mem.nregions)
		return -EINVAL;
	r = &dev->mem.regions[region];
	map = &dev->maps[region];
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

uint64_t viod_dev_mem_allocated(struct viod_dev *dev)
{
	struct stat st[VIOD_MEM_MAX_REGIONS];
	uint64_t total = 0;

	/* Regions may be backed by one file (QEMU splits RAM around the PCI
	 * hole and sends an fd per region): count each file once. */
	for (unsigned int i = 0; i < dev->mem.nregions; i++) {
		bool seen = false;

		if (fstat(dev->maps[i].fd, &st[i]) < 0) {
			st[i].st_ino = 0;
			continue;
		}
		for (unsigned int j = 0; j < i && !seen; j++)
			seen = st[j].st_ino == st[i].st_ino && st[j].st_dev == st[i].st_dev;
		if (!seen)
			total += (uint64_t)st[i].st_blocks * 512u;
	}
	return total;
}

void viod_vring_close_fds(struct viod_vring *vr)
{
	if (vr->kick_fd >= 0)
		close(vr->kick_fd);
	if (vr->call_fd >= 0)
		close(vr->call_fd);
	if (vr->err_fd >= 0)
		close(vr->err_fd);
	vr->kick_fd = vr->call_fd = vr->err_fd = -1;
}

struct vq_init_args {
	struct viod_dev *dev;
	struct viod_vring *vr;
	void *desc, *avail, *used;
	uint16_t last_avail;
};

/* viod_vq_init reads the used index from guest memory: run it guarded. */
static void vq_init_guarded(void *arg)
{
	struct vq_init_args *a = arg;
	struct viod_dev *dev = a->dev;

	viod_vq_init(&a->vr->vq, &dev->mem, (uint16_t)a->vr->num, a->desc, a->avail,
		     a->used, a->last_avail,
		     viod_has_feature(dev->features_acked, VIRTIO_RING_F_EVENT_IDX),
		     viod_has_feature(dev->features_acked, VIRTIO_RING_F_INDIRECT_DESC));
}

/*
 * Points the ring at current memory; an unmapped ring is not processed.
 * fresh: the front-end (re)configured the ring, so start from its base and
 * clear a broken state; otherwise (memory remap) keep progress and state.
 */
void viod_vring_update(struct viod_dev *dev, unsigned int q, bool fresh)
{
	struct viod_vring *vr = &dev->vrings[q];
	const struct vhost_vring_addr *a = &vr->addr;
	struct viod_vq old = vr->vq;
	struct vq_init_args args;
	void *desc, *avail, *used;

	vr->mapped = false;
	if (!vr->addr_set || !vr->num || !dev->mem.nregions)
		return;
	desc = viod_mem_map_uva(&dev->mem, a->desc_user_addr, viod_vring_desc_size(vr->num));
	avail = viod_mem_map_uva(&dev->mem, a->avail_user_addr, viod_vring_avail_size(vr->num));
	used = viod_mem_map_uva(&dev->mem, a->used_user_addr, viod_vring_used_size(vr->num));
	if (!desc || !avail || !used)
		return;
	/* 2.7: desc 16-, avail 2-, used 4-byte aligned (we access them as such). */
	if (((uintptr_t)desc & 15) || ((uintptr_t)avail & 1) || ((uintptr_t)used & 3))
		return;
	args = (struct vq_init_args){
		.dev = dev, .vr = vr, .desc = desc, .avail = avail, .used = used,
		.last_avail = fresh || !old.desc ? vr->base : old.last_avail,
	};
	if (viod_guard_run(vq_init_guarded, &args) < 0)
		return;
	if (!fresh && old.desc) {
		vr->vq.broken = old.broken;
		vr->vq.errors = old.errors;
		vr->vq.signalled_used = old.signalled_used;
		vr->vq.signalled_valid = old.signalled_valid;
	} else {
		vr->broken_reported = false;
	}
	vr->mapped = true;
}

void viod_vrings_remap(struct viod_dev *dev)
{
	for (unsigned int q = 0; q < dev->ops->num_queues; q++)
		viod_vring_update(dev, q, false);
}

void viod_dev_mem_changed(struct viod_dev *dev)
{
	viod_vrings_remap(dev);
	if (dev->ops->mem_changed)
		dev->ops->mem_changed(dev);
}

void viod_vring_stop(struct viod_dev *dev, unsigned int q)
{
	struct viod_vring *vr = &dev->vrings[q];

	if (vr->kick_fd >= 0)
		viod_worker_unwatch(dev, vr->kick_fd);
	vr->started = false;
	vr->polled = false;
}

/* Everything a connection set up, back to the initial state. */
void viod_dev_reset_conn(struct viod_dev *dev)
{
	viod_dev_lock(dev);
	for (unsigned int q = 0; q < dev->ops->num_queues; q++) {
		struct viod_vring *vr = &dev->vrings[q];

		viod_vring_stop(dev, q);
		viod_vring_close_fds(vr);
		memset(vr, 0, sizeof(*vr));
		vr->kick_fd = vr->call_fd = vr->err_fd = -1;
	}
	viod_memtable_clear(dev);
	if (dev->ops->reset)
		dev->ops->reset(dev);
	dev->needs_reset = false;
	dev->throttle_until = 0;
	viod_dev_unlock(dev);

	pthread_mutex_lock(&dev->backend_lock);
	if (dev->backend_fd >= 0)
		close(dev->backend_fd);
	dev->backend_fd = -1;
	pthread_mutex_unlock(&dev->backend_lock);

	dev->features_acked = 0;
	dev->proto_acked = 0;
	dev->owner = false;
	dev->status = 0;
}
