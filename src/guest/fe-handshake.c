/*
 * Front-end connection: connect, feature and status negotiation, memory
 * table, config space, the back-end channel, disconnect. Protocol: QEMU
 * docs/interop/vhost-user.rst; device status and feature order: virtio
 * 1.2, 3.1.1. Contracts: frontend.h.
 */
#include "fe-private.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>

/* Transport features this front-end does not implement: never acked,
 * whatever the driver asks for. */
#define FE_NEVER_FEATURES                                                  \
	((1ull << VHOST_F_LOG_ALL) | (1ull << VIRTIO_F_ACCESS_PLATFORM) |  \
	 (1ull << VIRTIO_F_RING_PACKED) | (1ull << VIRTIO_F_IN_ORDER) |    \
	 (1ull << VIRTIO_F_SR_IOV) | (1ull << 38) /* NOTIFICATION_DATA */ | \
	 (1ull << VIRTIO_F_RING_RESET))

/* ------------------------------------------------------------------ */
/* Back-end channel.                                                   */

int viod_fe_backend_serve_one(struct viod_fe *fe)
{
	struct viod_vu_msg m;
	int fds[VU_MAX_FDS];
	unsigned int nfds = 0;
	uint64_t result = 1;
	int r;

	r = viod_fe_msg_recv(fe->backend_fd, &m, fds, &nfds, fe->opts.timeout_ms);
	if (r < 0)
		return r;
	/* BACKEND_SEND_FD is never negotiated: no request may carry fds. */
	for (unsigned int i = 0; i < nfds; i++)
		close(fds[i]);
	if ((m.hdr.flags & VU_FLAG_VERSION_MASK) == VU_FLAG_VERSION &&
	    !(m.hdr.flags & VU_FLAG_REPLY) &&
	    m.hdr.request == VU_BACKEND_CONFIG_CHANGE_MSG && m.hdr.size == 0 &&
	    nfds == 0 && viod_fe_has_protocol(fe, VU_PF_CONFIG)) {
		fe->config_changes++;
		fe->config_pending++;
		result = 0;
	}
	if (m.hdr.flags & VU_FLAG_NEED_REPLY) {
		r = viod_fe_msg_send(fe->backend_fd, m.hdr.request,
				     VU_FLAG_VERSION | VU_FLAG_REPLY,
				     sizeof(result), &result, sizeof(result),
				     NULL, 0);
		if (r < 0)
			return r;
	}
	return 0;
}

static void fe_deliver_config(struct viod_fe *fe)
{
	while (fe->config_pending > 0) {
		fe->config_pending--;
		if (fe->opts.config_cb)
			fe->opts.config_cb(fe, fe->opts.config_opaque);
	}
}

int viod_fe_poll_backend(struct viod_fe *fe, int timeout_ms)
{
	int64_t deadline = fe_deadline(timeout_ms);
	unsigned int served = 0, deferred = fe->config_pending;

	if (fe->backend_fd < 0)
		return viod_fe_error(fe, -ENOTCONN, "no back-end channel");
	if (deferred > 0)
		deadline = 0;
	for (;;) {
		struct pollfd p = { .fd = fe->backend_fd, .events = POLLIN };
		int r = poll(&p, 1, served ? 0 : fe_remaining_ms(deadline));

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return viod_fe_error(fe, -errno, "poll back-end channel: %s",
					     strerror(errno));
		if (r == 0)
			break;
		r = viod_fe_backend_serve_one(fe);
		if (r < 0) {
			fe_backend_drop(fe);
			return viod_fe_error(fe, r, "back-end channel: %s", strerror(-r));
		}
		served++;
	}
	fe_deliver_config(fe);
	return (int)(served + deferred);
}

/* ------------------------------------------------------------------ */
/* Handshake.                                                          */

bool viod_fe_has_feature(const struct viod_fe *fe, unsigned int bit)
{
	return bit < 64 && (fe->features_acked >> bit) & 1;
}

bool viod_fe_has_protocol(const struct viod_fe *fe, unsigned int bit)
{
	return bit < 64 && (fe->pf_acked >> bit) & 1;
}

int viod_fe_connect(struct viod_fe *fe, const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (fe->sock >= 0)
		return viod_fe_error(fe, -EISCONN, "already connected");
	if (!fe->mem)
		return viod_fe_error(fe, -EINVAL, "guest memory not initialised");
	if (strlen(path) >= sizeof(sa.sun_path))
		return viod_fe_error(fe, -ENAMETOOLONG, "socket path too long: %s", path);
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return viod_fe_error(fe, -errno, "socket: %s", strerror(errno));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;

		close(fd);
		return viod_fe_error(fe, -e, "connect %s: %s", path, strerror(e));
	}
	fe->sock = fd;
	fe->broken = false;
	return 0;
}

static int fe_set_status(struct viod_fe *fe, uint8_t status)
{
	int r;

	if (!viod_fe_has_protocol(fe, VU_PF_STATUS))
		return 0;
	r = viod_fe_set_u64(fe, VU_SET_STATUS, status, NULL, 0);
	if (r == 0)
		fe->status = status;
	return r;
}

static int fe_send_mem_table(struct viod_fe *fe)
{
	struct viod_vu_mem_table t;
	int fds[VIOD_FE_MAX_REGIONS];

	memset(&t, 0, sizeof(t));
	t.nregions = fe->nregions;
	for (unsigned int i = 0; i < fe->nregions; i++) {
		t.regions[i].gpa = fe->regions[i].gpa;
		t.regions[i].size = fe->regions[i].size;
		t.regions[i].uva = (uintptr_t)fe->regions[i].host;
		t.regions[i].mmap_offset = fe->regions[i].mmap_offset;
		fds[i] = fe->memfd;
	}

	/* Added regions stay with the back-end across RESET_DEVICE (as with
	 * QEMU, which diffs against what it sent): add them once. */
	if (fe->opts.add_mem_reg && viod_fe_has_protocol(fe, VU_PF_CONFIGURE_MEM_SLOTS)) {
		if (fe->mem_added)
			return 0;
		if (fe->max_mem_slots < fe->nregions)
			return viod_fe_error(fe, -ENOSPC, "back-end has %llu memory slots, need %u",
					     (unsigned long long)fe->max_mem_slots,
					     fe->nregions);
		for (unsigned int i = 0; i < fe->nregions; i++) {
			struct viod_vu_mem_reg m = { .region = t.regions[i] };
			int r = viod_fe_request(fe, VU_ADD_MEM_REG, &m, sizeof(m),
						&fe->memfd, 1, NULL, 0);

			if (r < 0)
				return r;
		}
		fe->mem_added = true;
		return 0;
	}
	return viod_fe_request(fe, VU_SET_MEM_TABLE, &t,
			       (uint32_t)(8 + fe->nregions * sizeof(t.regions[0])),
			       fds, fe->nregions, NULL, 0);
}

/* Steps done once per connection: they survive RESET_DEVICE. */
static int fe_handshake(struct viod_fe *fe)
{
	int r;

	r = viod_fe_get_u64(fe, VU_GET_FEATURES, &fe->features_offered);
	if (r < 0)
		return r;
	if (!(fe->features_offered & (1ull << VIRTIO_F_VERSION_1)))
		return viod_fe_error(fe, -ENOTSUP,
				     "back-end does not offer VIRTIO_F_VERSION_1 (features 0x%llx)",
				     (unsigned long long)fe->features_offered);

	if (fe->features_offered & (1ull << VHOST_USER_F_PROTOCOL_FEATURES)) {
		uint64_t want;

		r = viod_fe_get_u64(fe, VU_GET_PROTOCOL_FEATURES, &fe->pf_offered);
		if (r < 0)
			return r;
		want = fe->pf_offered & VIOD_FE_PROTOCOL_FEATURES & ~fe->opts.pf_disable;
		/* Sent before REPLY_ACK is in force: no NEED_REPLY on this one. */
		r = viod_fe_set_u64(fe, VU_SET_PROTOCOL_FEATURES, want, NULL, 0);
		if (r < 0)
			return r;
		fe->pf_acked = want;
	}

	r = viod_fe_request(fe, VU_SET_OWNER, NULL, 0, NULL, 0, NULL, 0);
	if (r < 0)
		return r;

	if (viod_fe_has_protocol(fe, VU_PF_MQ)) {
		r = viod_fe_get_u64(fe, VU_GET_QUEUE_NUM, &fe->queue_num);
		if (r < 0)
			return r;
		if (fe->queue_num == 0)
			return viod_fe_error(fe, -EPROTO, "back-end reports 0 queues");
	}
	if (viod_fe_has_protocol(fe, VU_PF_CONFIGURE_MEM_SLOTS)) {
		r = viod_fe_get_u64(fe, VU_GET_MAX_MEM_SLOTS, &fe->max_mem_slots);
		if (r < 0)
			return r;
	}
	if (viod_fe_has_protocol(fe, VU_PF_BACKEND_REQ)) {
		int sv[2];

		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
			return viod_fe_error(fe, -errno, "socketpair: %s", strerror(errno));
		r = viod_fe_request(fe, VU_SET_BACKEND_REQ_FD, NULL, 0, &sv[1], 1,
				    NULL, 0);
		close(sv[1]);
		if (r < 0) {
			close(sv[0]);
			return r;
		}
		fe->backend_fd = sv[0];
	}
	return 0;
}

int viod_fe_negotiate(struct viod_fe *fe, uint64_t want)
{
	uint64_t acked, status;
	int r;

	if (fe->sock < 0)
		return viod_fe_error(fe, -ENOTCONN, "not connected");
	if (fe->negotiated)
		return viod_fe_error(fe, -EALREADY, "already negotiated");
	if (!fe->handshaken) {
		r = fe_handshake(fe);
		if (r < 0)
			return r;
		fe->handshaken = true;
	}

	r = fe_set_status(fe, VIRTIO_CONFIG_S_ACKNOWLEDGE);
	if (r == 0)
		r = fe_set_status(fe, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
	if (r < 0)
		return r;

	want |= (1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_RING_F_INDIRECT_DESC) |
		(1ull << VHOST_USER_F_PROTOCOL_FEATURES);
	if (!fe->opts.no_event_idx)
		want |= 1ull << VIRTIO_RING_F_EVENT_IDX;
	acked = fe->features_offered & want & ~FE_NEVER_FEATURES;
	r = viod_fe_set_u64(fe, VU_SET_FEATURES, acked, NULL, 0);
	if (r < 0)
		return r;
	fe->features_acked = acked;

	if (viod_fe_has_protocol(fe, VU_PF_STATUS)) {
		r = fe_set_status(fe, fe->status | VIRTIO_CONFIG_S_FEATURES_OK);
		if (r < 0)
			return r;
		r = viod_fe_get_u64(fe, VU_GET_STATUS, &status);
		if (r < 0)
			return r;
		if (!(status & VIRTIO_CONFIG_S_FEATURES_OK))
			return viod_fe_error(fe, -ENOTSUP,
					     "back-end refused features 0x%llx (status 0x%llx)",
					     (unsigned long long)acked,
					     (unsigned long long)status);
	}

	r = fe_send_mem_table(fe);
	if (r < 0)
		return r;
	/* A region kept across viod_fe_reconnect goes back before any ring
	 * starts. A back-end that no longer offers INFLIGHT_SHMFD does
	 * without it, as with QEMU. */
	if (fe->inflight.map && viod_fe_has_protocol(fe, VU_PF_INFLIGHT_SHMFD)) {
		r = viod_fe_set_inflight(fe);
		if (r < 0)
			return r;
	}
	fe->negotiated = true;
	return 0;
}

int viod_fe_driver_ok(struct viod_fe *fe)
{
	if (!fe->negotiated)
		return viod_fe_error(fe, -EINVAL, "DRIVER_OK before negotiation");
	return fe_set_status(fe, fe->status | VIRTIO_CONFIG_S_DRIVER_OK);
}

/* ------------------------------------------------------------------ */
/* Config space.                                                       */

static int fe_config_check(struct viod_fe *fe, uint32_t off, uint32_t len)
{
	if (!viod_fe_has_protocol(fe, VU_PF_CONFIG))
		return viod_fe_error(fe, -ENOTSUP, "CONFIG protocol feature not negotiated");
	if (len == 0 || len > VU_MAX_CONFIG_SIZE || off > VU_MAX_CONFIG_SIZE - len)
		return viod_fe_error(fe, -EINVAL, "config range %u+%u out of bounds", off, len);
	return 0;
}

/* A GET_CONFIG/SET_CONFIG payload header for off/len (range checked). */
static int fe_config_init(struct viod_fe *fe, struct viod_vu_config *c, uint32_t off,
			  uint32_t len, uint32_t flags)
{
	int r = fe_config_check(fe, off, len);

	if (r < 0)
		return r;
	memset(c, 0, sizeof(*c));
	c->offset = off;
	c->size = len;
	c->flags = flags;
	return 0;
}

int viod_fe_get_config(struct viod_fe *fe, uint32_t off, void *buf, uint32_t len)
{
	struct viod_vu_config c;
	struct viod_vu_msg m;
	uint32_t size = VU_CONFIG_HDR_SIZE + len;
	int r;

	r = fe_config_init(fe, &c, off, len, 0);
	if (r < 0)
		return r;
	r = viod_fe_send_req(fe, VU_GET_CONFIG, 0, &c, size, NULL, 0);
	if (r < 0)
		return r;
	r = viod_fe_recv_msg(fe, VU_GET_CONFIG, &m, NULL, NULL);
	if (r < 0)
		return r;
	/* A zero-size reply is the back-end's way of saying it failed. */
	if (m.hdr.size == 0)
		return viod_fe_error(fe, -EREMOTEIO, "GET_CONFIG %u+%u: back-end failed",
				     off, len);
	if (m.hdr.size != size || m.u.config.offset != off || m.u.config.size != len)
		return viod_fe_error(fe, -EPROTO,
				     "GET_CONFIG: reply size %u offset %u len %u, expected %u %u %u",
				     m.hdr.size, m.u.config.offset, m.u.config.size,
				     size, off, len);
	memcpy(buf, m.u.config.data, len);
	return 0;
}

int viod_fe_set_config(struct viod_fe *fe, uint32_t off, const void *buf,
		       uint32_t len)
{
	struct viod_vu_config c;
	int r;

	r = fe_config_init(fe, &c, off, len, VU_SET_CONFIG_FRONTEND);
	if (r < 0)
		return r;
	memcpy(c.data, buf, len);
	return viod_fe_request(fe, VU_SET_CONFIG, &c, VU_CONFIG_HDR_SIZE + len,
			       NULL, 0, NULL, 0);
}

/* ------------------------------------------------------------------ */
/* Teardown and reconnection.                                          */

int viod_fe_disconnect(struct viod_fe *fe)
{
	int first = 0;

	for (unsigned int i = 0; fe->queues && i < VIOD_FE_MAX_QUEUES; i++) {
		struct viod_fe_queue *q = &fe->queues[i];
		int r;

		if (!q->ready)
			continue;
		if (fe->sock >= 0 && !fe->broken) {
			r = viod_fe_queue_stop(fe, i, NULL);
			if (r < 0 && first == 0)
				first = r;
		}
		viod_fe_queue_release(q);
	}
	viod_fe_inflight_release(fe);
	fe_close(&fe->backend_fd);
	fe_close(&fe->sock);
	if (fe->mem)
		munmap(fe->mem, fe->mem_size);
	fe->mem = NULL;
	fe_close(&fe->memfd);
	free(fe->queues);
	fe->queues = NULL;
	viod_fe_pool_fini(&fe->pool);
	fe->nregions = 0;
	fe->negotiated = false;
	return first;
}

int viod_fe_reconnect(struct viod_fe *fe, const char *path)
{
	if (!fe->mem || !fe->queues)
		return viod_fe_error(fe, -EINVAL, "guest memory not initialised");
	/* The old back-end is presumed gone: nothing is asked of it. */
	for (unsigned int i = 0; i < VIOD_FE_MAX_QUEUES; i++)
		viod_fe_queue_suspend(&fe->queues[i]);
	fe_close(&fe->backend_fd);
	fe_close(&fe->sock);
	fe->broken = false;
	fe->features_offered = fe->features_acked = 0;
	fe->pf_offered = fe->pf_acked = 0;
	fe->queue_num = fe->max_mem_slots = 0;
	fe->status = 0;
	fe->handshaken = fe->mem_added = fe->negotiated = false;
	return viod_fe_connect(fe, path);
}
