/*
 * Front-end message framing: raw send and receive with SCM_RIGHTS fds,
 * and request/reply on the front-end socket. Protocol: QEMU
 * docs/interop/vhost-user.rst. Contracts: frontend.h, fe-private.h.
 */
#include "fe-private.h"
#include "vhost/wire.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* Raw messages.                                                       */

int viod_fe_send_bytes(int sock, const void *buf, size_t len, const int *fds,
		       unsigned int nfds)
{
	size_t done = 0;

	if (nfds > VU_MAX_FDS || len == 0)
		return -EINVAL;
	while (done < len) {
		/* The fds ride with the first byte only. */
		ssize_t n = viod_wire_sendmsg(sock, (const char *)buf + done, len - done,
					      done == 0 ? fds : NULL,
					      done == 0 ? nfds : 0, 0);

		if (n < 0)
			return (int)n;
		done += (size_t)n;
	}
	return 0;
}

int viod_fe_msg_send(int sock, uint32_t request, uint32_t flags, uint32_t size,
		     const void *payload, size_t payload_len, const int *fds,
		     unsigned int nfds)
{
	struct viod_vu_msg local;
	struct viod_vu_hdr hdr = { .request = request, .flags = flags, .size = size };
	size_t total = VU_HDR_SIZE + payload_len;
	uint8_t *buf = (uint8_t *)&local;
	int r;

	if (payload_len > SIZE_MAX - VU_HDR_SIZE)
		return -EINVAL;
	if (total > sizeof(local)) {
		buf = malloc(total);
		if (!buf)
			return -ENOMEM;
	}
	memcpy(buf, &hdr, VU_HDR_SIZE);
	if (payload_len)
		memcpy(buf + VU_HDR_SIZE, payload, payload_len);
	r = viod_fe_send_bytes(sock, buf, total, fds, nfds);
	if (buf != (uint8_t *)&local)
		free(buf);
	return r;
}

/*
 * Reads exactly len bytes, collecting SCM_RIGHTS fds into fds[] (room for
 * VU_MAX_FDS; *nfds counts them). -EPROTO when fds were dropped (control
 * data truncated or too many): the stream is then out of step.
 */
static int fe_read_full(int sock, void *buf, size_t len, int *fds,
			unsigned int *nfds, int timeout_ms)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n;

		if (timeout_ms >= 0) {
			struct pollfd p = { .fd = sock, .events = POLLIN };
			int pr = poll(&p, 1, timeout_ms);

			if (pr < 0 && errno == EINTR)
				continue;
			if (pr < 0)
				return -errno;
			if (pr == 0)
				return -ETIMEDOUT;
		}
		n = viod_wire_recv(sock, (char *)buf + got, len - got, fds, nfds,
				   VU_MAX_FDS, 0);
		if (n == -EMSGSIZE)
			return -EPROTO;
		if (n < 0)
			return (int)n;
		if (n == 0)
			return -ECONNRESET;
		got += (size_t)n;
	}
	return 0;
}

int viod_fe_msg_recv(int sock, struct viod_vu_msg *msg, int *fds,
		     unsigned int *nfds, int timeout_ms)
{
	int local[VU_MAX_FDS];
	unsigned int n = 0;
	int r;

	memset(&msg->hdr, 0, sizeof(msg->hdr));
	r = fe_read_full(sock, &msg->hdr, VU_HDR_SIZE, local, &n, timeout_ms);
	if (r == 0 && msg->hdr.size > VU_PAYLOAD_MAX)
		r = -EPROTO;
	if (r == 0 && msg->hdr.size > 0)
		r = fe_read_full(sock, &msg->u, msg->hdr.size, local, &n, timeout_ms);
	if (r == 0 && !fds && n > 0)
		r = -EPROTO;
	if (r < 0) {
		for (unsigned int i = 0; i < n; i++)
			close(local[i]);
		if (nfds)
			*nfds = 0;
		return r;
	}
	if (fds) {
		memcpy(fds, local, n * sizeof(int));
		*nfds = n;
	} else if (nfds) {
		*nfds = 0;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Requests.                                                           */

/* Waits for fe->sock to become readable, serving the back-end channel
 * meanwhile so that a back-end awaiting our ack there cannot deadlock us. */
static int fe_wait_reply(struct viod_fe *fe)
{
	int64_t deadline = fe_deadline(fe->opts.timeout_ms);

	for (;;) {
		struct pollfd p[2] = {
			{ .fd = fe->sock, .events = POLLIN },
			{ .fd = fe->backend_fd, .events = POLLIN },
		};
		int r = poll(p, fe->backend_fd >= 0 ? 2 : 1, fe_remaining_ms(deadline));

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -ETIMEDOUT;
		if (p[0].revents)
			return 0;
		if (fe->backend_fd >= 0 && p[1].revents &&
		    viod_fe_backend_serve_one(fe) < 0)
			fe_backend_drop(fe);
	}
}

int viod_fe_recv_msg(struct viod_fe *fe, uint32_t request, struct viod_vu_msg *m,
		     int *fds, unsigned int *nfds)
{
	int r;

	r = fe_wait_reply(fe);
	if (r == 0)
		r = viod_fe_msg_recv(fe->sock, m, fds, nfds, fe->opts.timeout_ms);
	if (r < 0) {
		fe->broken = true;
		return viod_fe_error(fe, r, "%s: no reply: %s", viod_vu_request_name(request),
				     strerror(-r));
	}
	if ((m->hdr.flags & VU_FLAG_VERSION_MASK) != VU_FLAG_VERSION ||
	    !(m->hdr.flags & VU_FLAG_REPLY) || m->hdr.request != request) {
		for (unsigned int i = 0; fds && i < *nfds; i++)
			close(fds[i]);
		if (nfds)
			*nfds = 0;
		fe->broken = true;
		return viod_fe_error(fe, -EPROTO,
				     "%s: bad reply header (request %u, flags 0x%x, size %u)",
				     viod_vu_request_name(request), m->hdr.request, m->hdr.flags,
				     m->hdr.size);
	}
	return 0;
}

int viod_fe_recv_reply(struct viod_fe *fe, uint32_t request, void *reply,
		       uint32_t reply_size)
{
	struct viod_vu_msg m;
	int r;

	if (fe->sock < 0 || fe->broken)
		return viod_fe_error(fe, -EPIPE, "%s: connection unusable",
				     viod_vu_request_name(request));
	r = viod_fe_recv_msg(fe, request, &m, NULL, NULL);
	if (r < 0)
		return r;
	if (m.hdr.size != reply_size)
		return viod_fe_error(fe, -EPROTO, "%s: reply size %u, expected %u",
				     viod_vu_request_name(request), m.hdr.size, reply_size);
	if (!reply) {
		if (reply_size != sizeof(uint64_t))
			return viod_fe_error(fe, -EINVAL, "ack must be a u64");
		if (m.u.u64 != 0)
			return viod_fe_error(fe, -EREMOTEIO, "%s: back-end answered %llu",
					     viod_vu_request_name(request),
					     (unsigned long long)m.u.u64);
		return 0;
	}
	memcpy(reply, &m.u, reply_size);
	return 0;
}

int viod_fe_send_req(struct viod_fe *fe, uint32_t request, uint32_t flags,
		     const void *payload, uint32_t size, const int *fds,
		     unsigned int nfds)
{
	int r;

	if (fe->sock < 0 || fe->broken)
		return viod_fe_error(fe, -EPIPE, "%s: connection unusable",
				     viod_vu_request_name(request));
	if (size > VU_PAYLOAD_MAX)
		return viod_fe_error(fe, -EINVAL, "%s: payload too large",
				     viod_vu_request_name(request));
	r = viod_fe_msg_send(fe->sock, request, VU_FLAG_VERSION | flags, size,
			     payload, size, fds, nfds);
	if (r < 0) {
		fe->broken = true;
		return viod_fe_error(fe, r, "%s: send: %s", viod_vu_request_name(request),
				     strerror(-r));
	}
	return 0;
}

int viod_fe_request(struct viod_fe *fe, uint32_t request, const void *payload,
		    uint32_t size, const int *fds, unsigned int nfds,
		    void *reply, uint32_t reply_size)
{
	bool ack = !reply && viod_fe_has_protocol(fe, VU_PF_REPLY_ACK);
	int r;

	r = viod_fe_send_req(fe, request, ack ? VU_FLAG_NEED_REPLY : 0, payload,
			     size, fds, nfds);
	if (r < 0)
		return r;
	if (reply)
		return viod_fe_recv_reply(fe, request, reply, reply_size);
	if (ack)
		return viod_fe_recv_reply(fe, request, NULL, sizeof(uint64_t));
	return 0;
}

int viod_fe_get_u64(struct viod_fe *fe, uint32_t request, uint64_t *v)
{
	return viod_fe_request(fe, request, NULL, 0, NULL, 0, v, sizeof(*v));
}

int viod_fe_set_u64(struct viod_fe *fe, uint32_t request, uint64_t v,
		    const int *fds, unsigned int nfds)
{
	return viod_fe_request(fe, request, &v, sizeof(v), fds, nfds, NULL, 0);
}

int viod_fe_set_state(struct viod_fe *fe, uint32_t request, unsigned int idx,
		      unsigned int num)
{
	struct vhost_vring_state s = { .index = idx, .num = num };

	return viod_fe_request(fe, request, &s, sizeof(s), NULL, 0, NULL, 0);
}
