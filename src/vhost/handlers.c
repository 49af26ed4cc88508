/*
 * vhost-user request handlers, one per request, named after it. Messages
 * reach them already checked by viod_msg_check() (sizes, fd counts, queue
 * index, protocol-feature gating); handlers check values. A handler that
 * takes an fd sets its slot to -1; the dispatcher closes the rest.
 */
#include "vhost.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/virtio_config.h>
#include <string.h>
#include <unistd.h>

/*
 * Kick, call and err fds are used without blocking: a front-end handing us
 * a pipe that never drains must not stall the worker (and with it the
 * control thread waiting for dp_lock).
 */
static int fd_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

typedef int (*handler_fn)(struct viod_dev *dev, struct viod_vu_msg *m, int *fds);

static int reply_u64(struct viod_dev *dev, struct viod_vu_msg *m, uint64_t v)
{
	return viod_msg_reply(dev->conn_fd, m, &v, sizeof(v));
}

static int get_features(struct viod_dev *dev, struct viod_vu_msg *m, int *fds)
{
	return reply_u64(dev, m, viod_dev_offered_features(dev));
}

static int set_features(struct viod_dev *dev, struct viod_vu_msg *m, int *fds)
{
	if (m->u.u64 & ~viod_dev_offered_features(dev))
		return -EINVAL;
	viod_dev_lock(dev);
	dev->features_acked = m->u.u64;
	viod_vrings_remap(dev);
	viod_dev_unlock(dev);
	return 0;
}

static int set_owner(struct viod_dev *dev, struct viod_vu_msg *m, int *fds)
{
	dev->owner = true;
	return 0;
}

static void stop_all_rings(struct viod_dev *dev, bool close_fds)
{
	for (unsigned int q = 0; q < dev->ops->num_queues; q++) {
		viod_vring_stop(dev, q);
		if (close_fds) {
			struct viod_vring *vr = &dev->vrings[q];

			viod_vring_close_fds(vr);
			memset(vr, 0, sizeof(*vr));
			vr->kick_fd = vr->call_fd = vr->err_fd = -1;
		}
	}
}

/* vhost-user.rst: deprecated; back-ends may use it to disable all rings. */
static int reset_owner(struct viod_dev *dev, struct viod_vu_msg *m, int *fds)
{
	viod_dev_lock(dev);
	stop_all_rings(dev, false);
	viod_dev_unlock(dev);
	return 0;
}

static int set_mem_table(struct viod_dev *dev, struct viod_vu_msg *m, int *fds)
{
	int rc = 0;

	viod_dev_lock(dev);
	viod_memtable_clear(dev);
	for (uint32_t i = 0; i < m->u.mem.nregions; i++) {
		int fd = fds[i];

		fds[i] = -1;
		rc = viod_memtable_add(dev, &m->u.mem.regions[i], fd);
		if (rc < 0) {
			viod_memtable_clear(dev);
			break;
		}
	}
	viod_dev_mem_changed(dev);
	viod_dev_unlock(dev);
	return rc;
}

static int set_vring_num(struct viod_dev *dev, struct viod_vu_msg *m, int *fds)
{
	struct viod_vring *vr = &dev->vrings[m->u.state.index];

	if (!viod_vq_size_valid(m->u.state.num))
		return -EINVAL;
	viod_dev_lock(dev);
	vr->num = m->u.state.num;
	viod_vring_update(dev, m->u.state.index, !vr->started);
	viod_dev_unlock(dev);
	return 0;
}

static int set_vring_addr(struct viod_dev *dev, struct viod_vu_msg *m, int *fds)
{
	struct viod_vring *vr = &dev->vrings[m->u.addr.index];

	/* Only the log flag is defined; we offer no logging, so it is ignored. */
	if (m->u.addr.flags & ~(1u << VHOST_VRING_F_LOG))
		return -EINVAL;
	viod_dev_lock(dev);
	vr->addr = m->u.addr;
	vr->addr_set = true;
	viod_vring_update(dev, m->u.addr.index, !vr->started);
	viod_dev_unlock(dev);
	return 0;
}

static int set_vring_base(struct viod_dev *dev, struct viod_vu_msg *m, int *fds)
{
	struct viod_vring *vr = &dev->vrings[m->u.state.index];

	/* Split rings: the base is a 16-bit avail index. */
	if (m->u.state.num > 0xffff)
		return -EINVAL;
	viod_dev_lock(dev);
	vr->base = (uint16_t)m->u.state.num;
	viod_vring_update(dev, m->u.state.index, !vr->started);
	viod_dev_unlock(dev);
	return 0;
}

static int get_vring_base(struct viod_dev *dev, struct viod_vu_msg *m, int *fds)
{
	unsigned int q = m->u.state.index;
	struct viod_vring *vr = &dev->vrings[q];
	struct vhost_vring_state st = { .index = q };

	viod_dev_lock(dev);
	viod_vring_stop(dev, q);
	if (vr->mapped)
		vr->base = vr->vq.last_avail;
	st.num = vr->base;
	if (vr->kick_fd >= 0)
		close(vr->kick_fd);
	vr->kick_fd = -1;
	viod_dev_unlock(dev);
	return viod_msg_reply(dev->conn_fd, m, &st, sizeof(st));
}

static int set_vring_kick(struct viod_dev *dev, struct viod_vu_msg *m, int *fds)
{
	unsigned int q = m->u.u64 & VU_VRING_IDX_MASK;
	struct viod_vring *vr = &dev->vrings[q];
	int rc = 0;

	viod_dev_lock(dev);
	viod_vring_stop(dev, q);
	if (vr->kick_fd >= 0)
		close(vr->kick_fd);
	vr->kick_fd = -1;
	if (m->u.u64 & VU_VRING_NOFD) {
		vr->polled = true;
	} else {
		vr->kick_fd = fds[0];
		fds[0] = -1;
		rc = fd_nonblock(vr->kick_fd);
		if (rc == 0)
			rc = viod_worker_watch(dev, vr->kick_fd);
	}
	if (rc == 0) {
		vr->started = true;
		/* Without F_PROTOCOL_FEATURES rings start enabled. */
		if (!viod_has_feature(dev->features_acked, VHOST_USER_F_PROTOCOL_FEATURES))
			vr->enabled = true;
		viod_vring_update(dev, q, false);
	}
	viod_dev_unlock(dev);
	return rc;
}

static int set_vring_fd(struct viod_dev *dev, struct viod_vu_msg *m, int *fds,
			bool call)
{
	struct viod_vring *vr = &dev->vrings[m->u.u64 & VU_VRING_IDX_MASK];
	int *slot = call ? &vr->call_fd : &vr->err_fd;

	viod_dev_lock(dev);
	if (*slot >= 0)
		close(*slot);
	*slot = -1;
	if (!(m->u.u64 & VU_VRING_NOFD)) {
		int rc = fd_nonblock(fds[0]);

		if (rc < 0) {
			viod_dev_unlock(dev);
			return rc;
		}
		*slot = fds[0];
		fds[0] = -1;
	}
	/* A new call fd may have replaced one we signalled: resignal once. */
	vr->vq.signalled_valid = false;
	viod_dev_unlock(dev);
	return 0;
}

static int set_vring_call(struct viod_dev *dev, struct viod_vu_msg *m, int *fds)
{
	return set_vring_fd(dev, m, fds, true);
}

static int set_vring_err(struct viod_dev *dev, struct viod_vu_msg *m, int *fds)
{
	return set_vring_fd(dev, m, fds, false);
}

static int get_protocol_features(struct viod_dev *dev, struct viod_vu_msg *m, int *fds)
{
	return reply_u64(dev, m, viod_dev_offered_protocol(dev));
}

static int set_protocol_features(struct viod_dev *dev, struct viod_vu_msg *m, int *fds)
{
	if (m->u.u64 & ~viod_dev_offered_protocol(dev))
		return -EINVAL;
	dev->proto_acked = m->u.u64;
	return 0;
}

static int get_queue_num(struct viod_dev *dev, struct viod_vu_msg *m, int *fds)
{
	return reply_u64(dev, m, dev->ops->num_queues);
}

static int set_vring_enable(struct viod_dev *dev, struct viod_vu_msg *m, int *fds)
{
	if (m->u.state.num > 1)
		return -EINVAL;
	viod_dev_lock(dev);
	dev->vrings[m->u.state.index].enabled = m->u.state.num;
	viod_dev_unlock(dev);
	return 0;
}

static int set_backend_req_fd(struct viod_dev *dev, struct viod_vu_msg *m, int *fds)
{
	pthread_mutex_lock(&dev->backend_lock);
	if (dev->backend_fd >= 0)
		close(dev->backend_fd);
	dev->backend_fd = fds[0];
	fds[0] = -1;
	pthread_mutex_unlock(&dev->backend_lock);
	return 0;
}

static bool config_range_ok(const struct viod_dev *dev, uint32_t off, uint32_t len)
{
	return len > 0 && off <= dev->ops->config_size &&
	       len <= dev->ops->config_size - off;
}

static int get_config(struct viod_dev *dev, struct viod_vu_msg *m, int *fds)
{
	struct viod_vu_config c;
	uint32_t off = m->u.config.offset, len = m->u.config.size;

	/* vhost-user.rst: a zero-length reply payload reports an error. */
	if (!config_range_ok(dev, off, len) || !dev->ops->config_read)
		return viod_msg_reply(dev->conn_fd, m, NULL, 0);
	memset(&c, 0, sizeof(c));
	c.offset = off;
	c.size = len;
	c.flags = m->u.config.flags;
	dev->ops->config_read(dev, off, c.data, len);
	return viod_msg_reply(dev->conn_fd, m, &c, VU_CONFIG_HDR_SIZE + len);
}

static int set_config(struct viod_dev *dev, struct viod_vu_msg *m, int *fds)
{
	uint32_t off = m->u.config.offset, len = m->u.config.size;

	if (m->u.config.flags > VU_SET_CONFIG_MIGRATION ||
	    !config_range_ok(dev, off, len) || !dev->ops->config_write)
		return -EINVAL;
	return dev->ops->config_write(dev, off, m->u.config.data, len);
}

static void device_reset(struct viod_dev *dev)
{
	viod_dev_lock(dev);
	stop_all_rings(dev, true);
	if (dev->ops->reset)
		dev->ops->reset(dev);
	dev->needs_reset = false;
	dev->throttle_until = 0;
	viod_dev_unlock(dev);
}

/* Rings off, device state initial; ownership, memory and the back-end
 * channel are kept (vhost-user.rst). */
static int reset_device(struct viod_dev *dev, struct viod_vu_msg *m, int *fds)
{
	device_reset(dev);
	dev->features_acked = 0;
	dev->status = 0;
	return 0;
}

static int get_max_mem_slots(struct viod_dev *dev, struct viod_vu_msg *m, int *fds)
{
	return reply_u64(dev, m, VIOD_MEM_MAX_REGIONS);
}

static int add_mem_reg(struct viod_dev *dev, struct viod_vu_msg *m, int *fds)
{
	int fd = fds[0], rc;

	fds[0] = -1;
	viod_dev_lock(dev);
	rc = viod_memtable_add(dev, &m->u.memreg.region, fd);
	viod_dev_mem_changed(dev);
	viod_dev_unlock(dev);
	return rc;
}

static int rem_mem_reg(struct viod_dev *dev, struct viod_vu_msg *m, int *fds)
{
	int rc;

	viod_dev_lock(dev);
	rc = viod_memtable_remove(dev, &m->u.memreg.region);
	viod_dev_mem_changed(dev);
	viod_dev_unlock(dev);
	return rc;
}

static int set_status(struct viod_dev *dev, struct viod_vu_msg *m, int *fds)
{
	if (m->u.u64 > 0xff)
		return -EINVAL;
	/* Writing 0 resets the device (virtio 1.2, 2.1). */
	if (m->u.u64 == 0 && dev->status != 0)
		device_reset(dev);
	if (dev->status != (uint8_t)m->u.u64) {
		dev->status = (uint8_t)m->u.u64;
		viod_dev_state_changed(dev);
	}
	return 0;
}

static int get_status(struct viod_dev *dev, struct viod_vu_msg *m, int *fds)
{
	uint64_t st = dev->status;

	if (dev->needs_reset)
		st |= VIRTIO_CONFIG_S_NEEDS_RESET;
	return reply_u64(dev, m, st);
}

struct handler {
	handler_fn fn;
	bool has_reply; /* the request has a reply of its own */
};

static const struct handler handlers[VU_REQUEST_MAX] = {
	[VU_GET_FEATURES] = { get_features, true },
	[VU_SET_FEATURES] = { set_features, false },
	[VU_SET_OWNER] = { set_owner, false },
	[VU_RESET_OWNER] = { reset_owner, false },
	[VU_SET_MEM_TABLE] = { set_mem_table, false },
	[VU_SET_VRING_NUM] = { set_vring_num, false },
	[VU_SET_VRING_ADDR] = { set_vring_addr, false },
	[VU_SET_VRING_BASE] = { set_vring_base, false },
	[VU_GET_VRING_BASE] = { get_vring_base, true },
	[VU_SET_VRING_KICK] = { set_vring_kick, false },
	[VU_SET_VRING_CALL] = { set_vring_call, false },
	[VU_SET_VRING_ERR] = { set_vring_err, false },
	[VU_GET_PROTOCOL_FEATURES] = { get_protocol_features, true },
	[VU_SET_PROTOCOL_FEATURES] = { set_protocol_features, false },
	[VU_GET_QUEUE_NUM] = { get_queue_num, true },
	[VU_SET_VRING_ENABLE] = { set_vring_enable, false },
	[VU_SET_BACKEND_REQ_FD] = { set_backend_req_fd, false },
	[VU_GET_CONFIG] = { get_config, true },
	[VU_SET_CONFIG] = { set_config, false },
	[VU_RESET_DEVICE] = { reset_device, false },
	[VU_GET_MAX_MEM_SLOTS] = { get_max_mem_slots, true },
	[VU_ADD_MEM_REG] = { add_mem_reg, false },
	[VU_REM_MEM_REG] = { rem_mem_reg, false },
	[VU_SET_STATUS] = { set_status, false },
	[VU_GET_STATUS] = { get_status, true },
};

/*
 * Returns 0 to keep the connection, -errno to drop it. A failed request
 * the front-end asked to have acknowledged gets a non-zero ack and the
 * connection stays; any other failure drops it (the front-end could not
 * otherwise learn of it).
 */
int viod_handle_msg(struct viod_dev *dev, struct viod_vu_msg *m, int *fds,
		    unsigned int nfds)
{
	const struct handler *h = &handlers[m->hdr.request];
	bool want_ack;
	int rc;

	rc = h->fn ? h->fn(dev, m, fds) : -ENOTSUP;
	for (unsigned int i = 0; i < nfds; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	want_ack = !h->has_reply && (m->hdr.flags & VU_FLAG_NEED_REPLY) &&
		   viod_has_feature(dev->proto_acked, VU_PF_REPLY_ACK);
	if (want_ack) {
		int src = reply_u64(dev, m, rc < 0 ? 1 : 0);

		return src < 0 ? src : 0;
	}
	return rc;
}
