/*
 * The vhost-user requests: one table says, for each request, what its
 * message must look like (payload size, fd count, queue index, the
 * protocol feature that gates it), whether it has a reply of its own, and
 * where it runs: a control part on the control thread (negotiation,
 * config space, status) and/or a data-path part run as a command on the
 * device's primary worker (memory, rings, inflight region, resets).
 * Handlers are named after their request.
 *
 * Security model: the front-end is untrusted. viod_msg_check() enforces
 * the table before any handler runs; handlers check values. A handler that
 * takes an fd sets its slot to -1; whatever is left is closed. A failed
 * request the front-end asked to have acknowledged gets a non-zero ack
 * and the connection stays; any other failure drops it (the front-end
 * could not otherwise learn of it).
 */
#include "vhost.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/virtio_config.h>
#include <string.h>
#include <unistd.h>

enum size_kind { SZ_EXACT, SZ_MEMTABLE, SZ_CONFIG };
enum fd_kind { FD_NONE, FD_ONE, FD_VRING, FD_PER_REGION, FD_OPTIONAL };
enum idx_kind { IDX_NONE, IDX_STATE, IDX_ADDR, IDX_U64 };

/* A control part's verdict beyond 0 / -errno: go on to the data path. */
#define RUN_DP 1

typedef int (*ctl_fn)(struct viod_dev *dev, struct viod_vu_msg *m, int *fds);
typedef int (*dp_fn)(struct viod_dev *dev, struct viod_cmd *cmd);

struct request {
	bool known;
	uint8_t size_kind;
	uint8_t fd_kind;
	uint8_t idx_kind;
	int8_t pf;          /* protocol feature that must be acked, or -1 */
	bool reply;         /* the request has a reply of its own */
	uint32_t size;
	ctl_fn ctl;         /* control thread; NULL: straight to dp */
	dp_fn dp;           /* primary worker; NULL: control only */
};

/* ---- control thread ---- */

static int reply_u64(struct viod_dev *dev, struct viod_vu_msg *m, uint64_t v)
{
	return viod_msg_reply(dev->conn_fd, m, &v, sizeof(v), -1);
}

static int get_features(struct viod_dev *dev, struct viod_vu_msg *m, int *fds)
{
	return reply_u64(dev, m, viod_dev_offered_features(dev));
}

static int set_features_ctl(struct viod_dev *dev, struct viod_vu_msg *m, int *fds)
{
	if (m->u.u64 & ~viod_dev_offered_features(dev))
		return -EINVAL;
	dev->features_acked = m->u.u64;
	if (dev->ops->features_changed)
		dev->ops->features_changed(dev, m->u.u64);
	viod_dev_state_changed(dev);
	return RUN_DP;
}

static int set_owner(struct viod_dev *dev, struct viod_vu_msg *m, int *fds)
{
	dev->owner = true;
	return 0;
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
	return reply_u64(dev, m, dev->ops->queue_num ? dev->ops->queue_num(dev) :
			 dev->num_queues);
}

/* The MAC travels in the first 6 bytes of the u64 payload. */
static int send_rarp(struct viod_dev *dev, struct viod_vu_msg *m, int *fds)
{
	uint8_t mac[6];

	if (!dev->ops->send_rarp)
		return -ENOTSUP;
	memcpy(mac, &m->u.u64, sizeof(mac));
	return dev->ops->send_rarp(dev, mac);
}

static int net_set_mtu(struct viod_dev *dev, struct viod_vu_msg *m, int *fds)
{
	return dev->ops->set_mtu ? dev->ops->set_mtu(dev, m->u.u64) : -ENOTSUP;
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
		return viod_msg_reply(dev->conn_fd, m, NULL, 0, -1);
	memset(&c, 0, sizeof(c));
	c.offset = off;
	c.size = len;
	c.flags = m->u.config.flags;
	dev->ops->config_read(dev, off, c.data, len);
	return viod_msg_reply(dev->conn_fd, m, &c, VU_CONFIG_HDR_SIZE + len, -1);
}

static int set_config(struct viod_dev *dev, struct viod_vu_msg *m, int *fds)
{
	uint32_t off = m->u.config.offset, len = m->u.config.size;

	if (m->u.config.flags > VU_SET_CONFIG_MIGRATION ||
	    !config_range_ok(dev, off, len) || !dev->ops->config_write)
		return -EINVAL;
	return dev->ops->config_write(dev, off, m->u.config.data, len);
}

static void ctl_reset(struct viod_dev *dev)
{
	if (dev->ops->reset)
		dev->ops->reset(dev);
}

/* Rings off, device state initial; ownership, memory and the back-end
 * channel are kept (vhost-user.rst). */
static int reset_device_ctl(struct viod_dev *dev, struct viod_vu_msg *m, int *fds)
{
	dev->features_acked = 0;
	dev->status = 0;
	ctl_reset(dev);
	viod_dev_state_changed(dev);
	return RUN_DP;
}

static int get_max_mem_slots(struct viod_dev *dev, struct viod_vu_msg *m, int *fds)
{
	return reply_u64(dev, m, VIOD_MEM_MAX_REGIONS);
}

static int set_status_ctl(struct viod_dev *dev, struct viod_vu_msg *m, int *fds)
{
	bool reset;

	if (m->u.u64 > 0xff)
		return -EINVAL;
	/* Writing 0 resets the device (virtio 1.2, 2.1). */
	reset = m->u.u64 == 0 && dev->status != 0;
	if (dev->status != (uint8_t)m->u.u64) {
		dev->status = (uint8_t)m->u.u64;
		viod_dev_state_changed(dev);
	}
	if (!reset)
		return 0;
	ctl_reset(dev);
	return RUN_DP;
}

static int get_status(struct viod_dev *dev, struct viod_vu_msg *m, int *fds)
{
	uint64_t st = dev->status;

	if (atomic_load(&dev->needs_reset))
		st |= VIRTIO_CONFIG_S_NEEDS_RESET;
	return reply_u64(dev, m, st);
}

/* ---- data path (the primary worker, other workers parked) ---- */

/*
 * Kick, call and err fds are used without blocking: a front-end handing us
 * a pipe that never drains must not stall the worker.
 */
static int fd_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

static void rings_remap(struct viod_dev *dev)
{
	for (unsigned int q = 0; q < VIOD_MAX_VRINGS; q++) {
		struct viod_vring *vr = dev->vrings[q];

		if (vr) {
			viod_vring_mem_switch(vr);
			viod_vring_map(vr, vr->state == RING_STOPPED);
		}
	}
}

static void rings_reset(struct viod_dev *dev, bool close_fds)
{
	for (unsigned int q = 0; q < VIOD_MAX_VRINGS; q++)
		if (dev->vrings[q])
			viod_vring_reset(dev->vrings[q], close_fds);
}

static int set_features_dp(struct viod_dev *dev, struct viod_cmd *cmd)
{
	dev->dp_features = cmd->msg.u.u64;
	rings_remap(dev);
	return 0;
}

/* vhost-user.rst: deprecated; back-ends may use it to disable all rings. */
static int reset_owner(struct viod_dev *dev, struct viod_cmd *cmd)
{
	rings_reset(dev, false);
	return 0;
}

/* The data-path half of a device reset (RESET_DEVICE, status 0). */
static int dp_reset(struct viod_dev *dev, struct viod_cmd *cmd)
{
	rings_reset(dev, true);
	if (dev->ops->dp_reset)
		dev->ops->dp_reset(dev);
	dev->dp_features = 0;
	atomic_store(&dev->needs_reset, false);
	return 0;
}

/*
 * Installs table t as the device's memory. Requests popped under the old
 * table keep it mapped until they complete; the command completes when
 * the old table is released (at once when nothing held it), so the
 * front-end's ack means "the old mapping is no longer used".
 */
static int mem_swap(struct viod_dev *dev, struct viod_memtable *t, struct viod_cmd *cmd)
{
	struct viod_memtable *old = dev->mt;

	for (unsigned int q = 0; q < VIOD_MAX_VRINGS; q++)
		if (dev->vrings[q])
			viod_vring_release(dev->vrings[q]);
	dev->mt = t;
	atomic_store(&dev->mem_bytes, t->total);
	rings_remap(dev);
	if (dev->ops->mem_changed)
		dev->ops->mem_changed(dev);
	viod_dev_counters_changed(dev);
	if (!old)
		return 0;
	cmd->rc = 0;
	old->on_release = cmd;
	viod_memtable_unref(old);
	return VIOD_CMD_DEFERRED;
}

int viod_dev_set_host_memory(struct viod_dev *dev, const struct viod_mem *mem)
{
	struct viod_memtable *t = viod_memtable_new(dev);
	struct viod_cmd *cmd = g_new0(struct viod_cmd, 1);
	int rc;

	cmd->kind = CMD_RESET_CONN; /* a carrier nobody answers */
	cmd->gen = UINT64_MAX;
	cmd->reply_fd = -1;
	t->mem = *mem;
	for (unsigned int i = 0; i < mem->nregions; i++)
		t->total += mem->regions[i].size;
	rc = mem_swap(dev, t, cmd);
	if (rc != VIOD_CMD_DEFERRED)
		viod_cmd_free(cmd);
	return rc == VIOD_CMD_DEFERRED ? 0 : rc;
}

static int set_mem_table(struct viod_dev *dev, struct viod_cmd *cmd)
{
	struct viod_memtable *t = viod_memtable_new(dev);
	int rc = 0;

	for (uint32_t i = 0; i < cmd->msg.u.mem.nregions; i++) {
		int fd = cmd->fds[i];

		cmd->fds[i] = -1;
		if (rc == 0)
			rc = viod_memtable_add(t, &cmd->msg.u.mem.regions[i], fd, dev->mem_max);
		else
			close(fd);
	}
	if (rc < 0) {
		viod_memtable_unref(t);
		return rc;
	}
	return mem_swap(dev, t, cmd);
}

static int add_mem_reg(struct viod_dev *dev, struct viod_cmd *cmd)
{
	struct viod_memtable *t = viod_memtable_clone(dev, dev->mt);
	int fd = cmd->fds[0], rc;

	cmd->fds[0] = -1;
	rc = viod_memtable_add(t, &cmd->msg.u.memreg.region, fd, dev->mem_max);
	if (rc < 0) {
		viod_memtable_unref(t);
		return rc;
	}
	return mem_swap(dev, t, cmd);
}

static int rem_mem_reg(struct viod_dev *dev, struct viod_cmd *cmd)
{
	struct viod_memtable *t = viod_memtable_clone(dev, dev->mt);
	int rc = viod_memtable_remove(t, &cmd->msg.u.memreg.region);

	if (rc < 0) {
		viod_memtable_unref(t);
		return rc;
	}
	return mem_swap(dev, t, cmd);
}

static int set_vring_num(struct viod_dev *dev, struct viod_cmd *cmd)
{
	struct viod_vring *vr = viod_dev_vring(dev, cmd->msg.u.state.index);

	if (!viod_vq_size_valid(cmd->msg.u.state.num))
		return -EINVAL;
	/* The pool and the batch are sized by num: not while running. */
	if (vr->state != RING_STOPPED)
		return vr->num == cmd->msg.u.state.num ? 0 : -EBUSY;
	vr->num = cmd->msg.u.state.num;
	viod_vring_map(vr, true);
	return 0;
}

static int set_vring_addr(struct viod_dev *dev, struct viod_cmd *cmd)
{
	struct viod_vring *vr = viod_dev_vring(dev, cmd->msg.u.addr.index);

	/* Only the log flag is defined; we offer no logging, so it is ignored. */
	if (cmd->msg.u.addr.flags & ~(1u << VHOST_VRING_F_LOG))
		return -EINVAL;
	vr->addr = cmd->msg.u.addr;
	vr->addr_set = true;
	viod_vring_map(vr, vr->state == RING_STOPPED);
	return 0;
}

static int set_vring_base(struct viod_dev *dev, struct viod_cmd *cmd)
{
	struct viod_vring *vr = viod_dev_vring(dev, cmd->msg.u.state.index);

	/* Split rings: the base is a 16-bit avail index. */
	if (cmd->msg.u.state.num > 0xffff)
		return -EINVAL;
	vr->base = (uint16_t)cmd->msg.u.state.num;
	if (vr->state == RING_STOPPED)
		viod_vring_map(vr, true);
	return 0;
}

static int get_vring_base(struct viod_dev *dev, struct viod_cmd *cmd)
{
	struct viod_vring *vr = viod_dev_vring(dev, cmd->msg.u.state.index);

	cmd->has_reply = true;
	cmd->reply_size = sizeof(cmd->reply.state);
	cmd->reply.state.index = vr->idx;
	if (vr->state == RING_STOPPED) {
		if (vr->kick_fd >= 0)
			close(vr->kick_fd);
		vr->kick_fd = -1;
		cmd->reply.state.num = vr->base;
		return 0;
	}
	if (!viod_vring_begin_stop(vr)) {
		/* Held requests finish on the serving worker, which then
		 * completes this command (viod_vring_serve). */
		vr->stop_cmd = cmd;
		if (vr->w)
			viod_worker_wake(vr->w);
		return VIOD_CMD_DEFERRED;
	}
	viod_vring_finish_stop(vr);
	cmd->reply.state.num = vr->base;
	return 0;
}

static int set_vring_kick(struct viod_dev *dev, struct viod_cmd *cmd)
{
	struct viod_vring *vr = viod_dev_vring(dev, cmd->msg.u.u64 & VU_VRING_IDX_MASK);
	int fd = -1, rc;

	if (!(cmd->msg.u.u64 & VU_VRING_NOFD)) {
		fd = cmd->fds[0];
		cmd->fds[0] = -1;
		rc = fd_nonblock(fd);
		if (rc < 0) {
			close(fd);
			return rc;
		}
	}
	if (vr->state != RING_STOPPED) {
		/* A new kick fd for a running ring: swap it, keep the ring. */
		if (vr->w && vr->kick_fd >= 0)
			viod_worker_unwatch(vr->w, vr->kick_fd);
		if (vr->kick_fd >= 0)
			close(vr->kick_fd);
		vr->kick_fd = fd;
		vr->polled = fd < 0;
		return vr->w && fd >= 0 ? viod_worker_watch(vr->w, fd, vr->idx) : 0;
	}
	if (vr->kick_fd >= 0)
		close(vr->kick_fd);
	vr->kick_fd = fd;
	vr->polled = fd < 0;
	/* Without F_PROTOCOL_FEATURES rings start enabled. */
	if (!viod_has_feature(dev->dp_features, VHOST_USER_F_PROTOCOL_FEATURES))
		vr->enabled = true;
	rc = viod_vring_start(vr);
	if (vr->w)
		viod_worker_wake(vr->w);
	return rc;
}

static int set_vring_fd(struct viod_dev *dev, struct viod_cmd *cmd, bool call)
{
	struct viod_vring *vr = viod_dev_vring(dev, cmd->msg.u.u64 & VU_VRING_IDX_MASK);
	int *slot = call ? &vr->call_fd : &vr->err_fd;

	if (*slot >= 0)
		close(*slot);
	*slot = -1;
	if (!(cmd->msg.u.u64 & VU_VRING_NOFD)) {
		int rc = fd_nonblock(cmd->fds[0]);

		if (rc < 0)
			return rc;
		*slot = cmd->fds[0];
		cmd->fds[0] = -1;
	}
	/* A new call fd may have replaced one we signalled: resignal once. */
	vr->vq.signalled_valid = false;
	return 0;
}

static int set_vring_call(struct viod_dev *dev, struct viod_cmd *cmd)
{
	return set_vring_fd(dev, cmd, true);
}

static int set_vring_err(struct viod_dev *dev, struct viod_cmd *cmd)
{
	return set_vring_fd(dev, cmd, false);
}

static int set_vring_enable(struct viod_dev *dev, struct viod_cmd *cmd)
{
	struct viod_vring *vr = viod_dev_vring(dev, cmd->msg.u.state.index);

	if (cmd->msg.u.state.num > 1)
		return -EINVAL;
	vr->enabled = cmd->msg.u.state.num;
	if (vr->w)
		viod_worker_wake(vr->w);
	return 0;
}

static int get_inflight_fd(struct viod_dev *dev, struct viod_cmd *cmd)
{
	struct viod_vu_inflight d = cmd->msg.u.inflight;
	int fd = -1, rc;

	rc = viod_inflight_create(dev, &d, &fd);
	if (rc < 0) {
		/* QEMU reads a zero mmap_size as "no inflight tracking". */
		viod_dev_warn(dev, "GET_INFLIGHT_FD for %u queues of %u: %s",
			      d.num_queues, d.queue_size, g_strerror(-rc));
		memset(&d, 0, sizeof(d));
	}
	cmd->has_reply = true;
	cmd->reply.inflight = d;
	cmd->reply_size = VU_INFLIGHT_SIZE;
	cmd->reply_fd = fd;
	return 0;
}

static int set_inflight_fd(struct viod_dev *dev, struct viod_cmd *cmd)
{
	int fd = cmd->fds[0];

	cmd->fds[0] = -1;
	return viod_inflight_set(dev, &cmd->msg.u.inflight, fd);
}

/* The front-end went away: everything it set up goes. */
static int reset_conn(struct viod_dev *dev, struct viod_cmd *cmd)
{
	dp_reset(dev, cmd);
	viod_inflight_clear(dev);
	if (dev->mt) {
		struct viod_memtable *old = dev->mt;

		dev->mt = NULL;
		atomic_store(&dev->mem_bytes, 0);
		for (unsigned int q = 0; q < VIOD_MAX_VRINGS; q++)
			if (dev->vrings[q])
				viod_vring_mem_switch(dev->vrings[q]);
		if (dev->ops->mem_changed)
			dev->ops->mem_changed(dev);
		viod_memtable_unref(old);
	}
	return 0;
}

/* ---- the table ---- */

#define R(sk, sz, fk, ik, p, rep) .known = true, .size_kind = (sk), .size = (sz), \
	.fd_kind = (fk), .idx_kind = (ik), .pf = (p), .reply = (rep)

static const struct request requests[VU_REQUEST_MAX] = {
	[VU_GET_FEATURES] = { R(SZ_EXACT, 0, FD_NONE, IDX_NONE, -1, true),
		.ctl = get_features },
	[VU_SET_FEATURES] = { R(SZ_EXACT, 8, FD_NONE, IDX_NONE, -1, false),
		.ctl = set_features_ctl, .dp = set_features_dp },
	[VU_SET_OWNER] = { R(SZ_EXACT, 0, FD_NONE, IDX_NONE, -1, false),
		.ctl = set_owner },
	[VU_RESET_OWNER] = { R(SZ_EXACT, 0, FD_NONE, IDX_NONE, -1, false),
		.dp = reset_owner },
	[VU_SET_MEM_TABLE] = { R(SZ_MEMTABLE, 0, FD_PER_REGION, IDX_NONE, -1, false),
		.dp = set_mem_table },
	[VU_SET_VRING_NUM] = { R(SZ_EXACT, 8, FD_NONE, IDX_STATE, -1, false),
		.dp = set_vring_num },
	[VU_SET_VRING_ADDR] = { R(SZ_EXACT, 40, FD_NONE, IDX_ADDR, -1, false),
		.dp = set_vring_addr },
	[VU_SET_VRING_BASE] = { R(SZ_EXACT, 8, FD_NONE, IDX_STATE, -1, false),
		.dp = set_vring_base },
	[VU_GET_VRING_BASE] = { R(SZ_EXACT, 8, FD_NONE, IDX_STATE, -1, true),
		.dp = get_vring_base },
	[VU_SET_VRING_KICK] = { R(SZ_EXACT, 8, FD_VRING, IDX_U64, -1, false),
		.dp = set_vring_kick },
	[VU_SET_VRING_CALL] = { R(SZ_EXACT, 8, FD_VRING, IDX_U64, -1, false),
		.dp = set_vring_call },
	[VU_SET_VRING_ERR] = { R(SZ_EXACT, 8, FD_VRING, IDX_U64, -1, false),
		.dp = set_vring_err },
	[VU_GET_PROTOCOL_FEATURES] = { R(SZ_EXACT, 0, FD_NONE, IDX_NONE, -1, true),
		.ctl = get_protocol_features },
	[VU_SET_PROTOCOL_FEATURES] = { R(SZ_EXACT, 8, FD_NONE, IDX_NONE, -1, false),
		.ctl = set_protocol_features },
	[VU_GET_QUEUE_NUM] = { R(SZ_EXACT, 0, FD_NONE, IDX_NONE, VU_PF_MQ, true),
		.ctl = get_queue_num },
	[VU_SET_VRING_ENABLE] = { R(SZ_EXACT, 8, FD_NONE, IDX_STATE, -1, false),
		.dp = set_vring_enable },
	[VU_SEND_RARP] = { R(SZ_EXACT, 8, FD_NONE, IDX_NONE, VU_PF_RARP, false),
		.ctl = send_rarp },
	[VU_NET_SET_MTU] = { R(SZ_EXACT, 8, FD_NONE, IDX_NONE, VU_PF_NET_MTU, false),
		.ctl = net_set_mtu },
	[VU_SET_BACKEND_REQ_FD] = { R(SZ_EXACT, 0, FD_ONE, IDX_NONE, VU_PF_BACKEND_REQ, false),
		.ctl = set_backend_req_fd },
	[VU_GET_CONFIG] = { R(SZ_CONFIG, 0, FD_NONE, IDX_NONE, VU_PF_CONFIG, true),
		.ctl = get_config },
	[VU_SET_CONFIG] = { R(SZ_CONFIG, 0, FD_NONE, IDX_NONE, VU_PF_CONFIG, false),
		.ctl = set_config },
	[VU_GET_INFLIGHT_FD] = { R(SZ_EXACT, VU_INFLIGHT_SIZE, FD_NONE, IDX_NONE,
				   VU_PF_INFLIGHT_SHMFD, true),
		.dp = get_inflight_fd },
	[VU_SET_INFLIGHT_FD] = { R(SZ_EXACT, VU_INFLIGHT_SIZE, FD_ONE, IDX_NONE,
				   VU_PF_INFLIGHT_SHMFD, false),
		.dp = set_inflight_fd },
	[VU_RESET_DEVICE] = { R(SZ_EXACT, 0, FD_NONE, IDX_NONE, VU_PF_RESET_DEVICE, false),
		.ctl = reset_device_ctl, .dp = dp_reset },
	[VU_GET_MAX_MEM_SLOTS] = { R(SZ_EXACT, 0, FD_NONE, IDX_NONE,
				     VU_PF_CONFIGURE_MEM_SLOTS, true),
		.ctl = get_max_mem_slots },
	[VU_ADD_MEM_REG] = { R(SZ_EXACT, 40, FD_ONE, IDX_NONE, VU_PF_CONFIGURE_MEM_SLOTS, false),
		.dp = add_mem_reg },
	/* vhost-user.rst: no fd SHOULD be sent, one MAY be (and is closed). */
	[VU_REM_MEM_REG] = { R(SZ_EXACT, 40, FD_OPTIONAL, IDX_NONE,
			       VU_PF_CONFIGURE_MEM_SLOTS, false),
		.dp = rem_mem_reg },
	[VU_SET_STATUS] = { R(SZ_EXACT, 8, FD_NONE, IDX_NONE, VU_PF_STATUS, false),
		.ctl = set_status_ctl, .dp = dp_reset },
	[VU_GET_STATUS] = { R(SZ_EXACT, 0, FD_NONE, IDX_NONE, VU_PF_STATUS, true),
		.ctl = get_status },
};

int viod_msg_check(const struct viod_dev *dev, const struct viod_vu_msg *m,
		   unsigned int nfds, const char **why)
{
	const struct request *r;
	uint32_t size = m->hdr.size, idx = 0;
	unsigned int want_fds = 0;

	if ((m->hdr.flags & VU_FLAG_VERSION_MASK) != VU_FLAG_VERSION) {
		*why = "bad version";
		return -EPROTO;
	}
	if (m->hdr.flags & VU_FLAG_REPLY) {
		*why = "reply flag on a request";
		return -EPROTO;
	}
	if (m->hdr.request >= VU_REQUEST_MAX || !requests[m->hdr.request].known) {
		*why = "unknown request";
		return -ENOTSUP;
	}
	r = &requests[m->hdr.request];
	if (r->pf >= 0 && !viod_has_feature(dev->proto_acked, (unsigned int)r->pf)) {
		*why = "request needs a protocol feature not negotiated";
		return -ENOTSUP;
	}

	switch (r->size_kind) {
	case SZ_EXACT:
		if (size != r->size) {
			*why = "wrong payload size";
			return -EBADMSG;
		}
		break;
	case SZ_MEMTABLE:
		if (size < 8 || m->u.mem.nregions == 0 ||
		    m->u.mem.nregions > VU_MEM_TABLE_MAX ||
		    size != 8 + m->u.mem.nregions * sizeof(struct viod_vu_region)) {
			*why = "bad memory table size or region count";
			return -EBADMSG;
		}
		want_fds = m->u.mem.nregions;
		break;
	case SZ_CONFIG:
		if (size < VU_CONFIG_HDR_SIZE || m->u.config.size > VU_MAX_CONFIG_SIZE ||
		    size != VU_CONFIG_HDR_SIZE + m->u.config.size) {
			*why = "bad config payload size";
			return -EBADMSG;
		}
		break;
	}

	switch (r->fd_kind) {
	case FD_NONE:
		want_fds = 0;
		break;
	case FD_ONE:
		want_fds = 1;
		break;
	case FD_VRING:
		if (m->u.u64 & ~(uint64_t)(VU_VRING_IDX_MASK | VU_VRING_NOFD)) {
			*why = "reserved bits set in vring fd message";
			return -EBADMSG;
		}
		want_fds = (m->u.u64 & VU_VRING_NOFD) ? 0 : 1;
		break;
	case FD_PER_REGION:
		break;
	case FD_OPTIONAL:
		want_fds = nfds <= 1 ? nfds : 1;
		break;
	}
	if (nfds != want_fds) {
		*why = "wrong number of file descriptors";
		return -EBADMSG;
	}

	switch (r->idx_kind) {
	case IDX_NONE:
		return 0;
	case IDX_STATE:
		idx = m->u.state.index;
		break;
	case IDX_ADDR:
		idx = m->u.addr.index;
		break;
	case IDX_U64:
		idx = (uint32_t)(m->u.u64 & VU_VRING_IDX_MASK);
		break;
	}
	/* Any index a front-end can name is accepted: queues beyond those the
	 * device serves are kept, and left idle. */
	if (idx >= VIOD_MAX_VRINGS) {
		*why = "queue index out of range";
		return -ERANGE;
	}
	return 0;
}

static bool wants_ack(const struct request *r, const struct viod_vu_msg *m,
		      uint64_t proto_acked)
{
	return !r->reply && (m->hdr.flags & VU_FLAG_NEED_REPLY) &&
	       viod_has_feature(proto_acked, VU_PF_REPLY_ACK);
}

int viod_handle_msg(struct viod_dev *dev, struct viod_vu_msg *m, int *fds,
		    unsigned int nfds, struct viod_cmd **cmd_out)
{
	const struct request *r = &requests[m->hdr.request];
	bool ack = wants_ack(r, m, dev->proto_acked);
	int rc = r->ctl ? r->ctl(dev, m, fds) : RUN_DP;

	if (rc == RUN_DP && r->dp) {
		struct viod_cmd *cmd = g_new0(struct viod_cmd, 1);

		cmd->kind = CMD_MSG;
		cmd->gen = dev->conn_gen;
		memcpy(&cmd->msg, m, VU_HDR_SIZE + m->hdr.size);
		for (unsigned int i = 0; i < nfds; i++) {
			cmd->fds[i] = fds[i];
			fds[i] = -1;
		}
		cmd->nfds = nfds;
		cmd->reply_fd = -1;
		/* The ack is decided by what was negotiated when it was sent. */
		cmd->msg.hdr.flags &= ~VU_FLAG_NEED_REPLY;
		if (ack)
			cmd->msg.hdr.flags |= VU_FLAG_NEED_REPLY;
		dev->outstanding++;
		if (cmd_out && (ack || r->reply))
			*cmd_out = cmd;
		viod_cmd_submit(dev, cmd);
		return 0;
	}
	for (unsigned int i = 0; i < nfds; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	if (rc == RUN_DP)
		rc = 0;
	if (ack) {
		int src = reply_u64(dev, m, rc < 0 ? 1 : 0);

		return src < 0 ? src : 0;
	}
	return rc;
}

int viod_cmd_run(struct viod_dev *dev, struct viod_cmd *cmd)
{
	if (cmd->kind == CMD_RESET_CONN)
		return reset_conn(dev, cmd);
	return requests[cmd->msg.hdr.request].dp(dev, cmd);
}

int viod_cmd_finish(struct viod_dev *dev, struct viod_cmd *cmd)
{
	const struct request *r = &requests[cmd->msg.hdr.request];
	int rc;

	if (cmd->kind != CMD_MSG)
		return 0;
	if (r->reply) {
		if (cmd->rc < 0 || !cmd->has_reply)
			return cmd->rc < 0 ? cmd->rc : -EIO;
		rc = viod_msg_reply(dev->conn_fd, &cmd->msg, &cmd->reply, cmd->reply_size,
				    cmd->reply_fd);
		return rc;
	}
	if (cmd->msg.hdr.flags & VU_FLAG_NEED_REPLY) {
		uint64_t v = cmd->rc < 0 ? 1 : 0;

		rc = viod_msg_reply(dev->conn_fd, &cmd->msg, &v, sizeof(v), -1);
		return rc;
	}
	return cmd->rc;
}

void viod_cmd_free(struct viod_cmd *cmd)
{
	if (!cmd)
		return;
	for (unsigned int i = 0; i < cmd->nfds; i++)
		if (cmd->fds[i] >= 0)
			close(cmd->fds[i]);
	if (cmd->reply_fd >= 0)
		close(cmd->reply_fd);
	g_free(cmd);
}
