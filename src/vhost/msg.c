/*
 * Message framing and validation. Security model: the peer is untrusted.
 * Reads are non-blocking and buffered so that a peer sending half a message
 * stalls only its own connection; every message is checked against a table
 * of exact payload sizes and fd counts before any handler sees it.
 */
#include "vhost.h"
#include "wire.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

void viod_rxbuf_reset(struct viod_rxbuf *rx, bool close_fds)
{
	if (close_fds)
		for (unsigned int i = 0; i < rx->nfds; i++)
			close(rx->fds[i]);
	rx->nfds = 0;
	rx->len = 0;
}

enum viod_rx_result viod_msg_read(int fd, struct viod_rxbuf *rx)
{
	for (;;) {
		size_t want;
		ssize_t n;

		if (rx->len < VU_HDR_SIZE) {
			want = VU_HDR_SIZE - rx->len;
		} else {
			if (rx->msg.hdr.size > VU_PAYLOAD_MAX)
				return VIOD_RX_ERROR;
			want = VU_HDR_SIZE + rx->msg.hdr.size - rx->len;
			if (want == 0)
				return VIOD_RX_MSG;
		}
		/* Surplus fds are closed and fail the read (wire.h). */
		n = viod_wire_recv(fd, (uint8_t *)&rx->msg + rx->len, want, rx->fds,
				   &rx->nfds, VU_MAX_FDS, MSG_DONTWAIT);
		if (n == -EAGAIN || n == -EWOULDBLOCK)
			return VIOD_RX_AGAIN;
		if (n < 0)
			return VIOD_RX_ERROR;
		if (n == 0)
			return rx->len == 0 ? VIOD_RX_EOF : VIOD_RX_ERROR;
		rx->len += (size_t)n;
		if (rx->len == VU_HDR_SIZE && rx->msg.hdr.size == 0)
			return VIOD_RX_MSG;
	}
}

enum size_kind { SZ_EXACT, SZ_MEMTABLE, SZ_CONFIG };
enum fd_kind { FD_NONE, FD_ONE, FD_VRING, FD_PER_REGION, FD_OPTIONAL };
enum idx_kind { IDX_NONE, IDX_STATE, IDX_ADDR, IDX_U64 };

struct rule {
	bool known;
	uint8_t size_kind;
	uint8_t fd_kind;
	uint8_t idx_kind;
	int8_t pf;          /* protocol feature that must be acked, or -1 */
	uint32_t size;
};

#define R(sk, sz, fk, ik, p) { .known = true, .size_kind = (sk), .size = (sz), .fd_kind = (fk), .idx_kind = (ik), .pf = (p) }

static const struct rule rules[VU_REQUEST_MAX] = {
	[VU_GET_FEATURES] = R(SZ_EXACT, 0, FD_NONE, IDX_NONE, -1),
	[VU_SET_FEATURES] = R(SZ_EXACT, 8, FD_NONE, IDX_NONE, -1),
	[VU_SET_OWNER] = R(SZ_EXACT, 0, FD_NONE, IDX_NONE, -1),
	[VU_RESET_OWNER] = R(SZ_EXACT, 0, FD_NONE, IDX_NONE, -1),
	[VU_SET_MEM_TABLE] = R(SZ_MEMTABLE, 0, FD_PER_REGION, IDX_NONE, -1),
	[VU_SET_VRING_NUM] = R(SZ_EXACT, 8, FD_NONE, IDX_STATE, -1),
	[VU_SET_VRING_ADDR] = R(SZ_EXACT, 40, FD_NONE, IDX_ADDR, -1),
	[VU_SET_VRING_BASE] = R(SZ_EXACT, 8, FD_NONE, IDX_STATE, -1),
	[VU_GET_VRING_BASE] = R(SZ_EXACT, 8, FD_NONE, IDX_STATE, -1),
	[VU_SET_VRING_KICK] = R(SZ_EXACT, 8, FD_VRING, IDX_U64, -1),
	[VU_SET_VRING_CALL] = R(SZ_EXACT, 8, FD_VRING, IDX_U64, -1),
	[VU_SET_VRING_ERR] = R(SZ_EXACT, 8, FD_VRING, IDX_U64, -1),
	[VU_GET_PROTOCOL_FEATURES] = R(SZ_EXACT, 0, FD_NONE, IDX_NONE, -1),
	[VU_SET_PROTOCOL_FEATURES] = R(SZ_EXACT, 8, FD_NONE, IDX_NONE, -1),
	[VU_GET_QUEUE_NUM] = R(SZ_EXACT, 0, FD_NONE, IDX_NONE, VU_PF_MQ),
	[VU_SET_VRING_ENABLE] = R(SZ_EXACT, 8, FD_NONE, IDX_STATE, -1),
	[VU_SET_BACKEND_REQ_FD] = R(SZ_EXACT, 0, FD_ONE, IDX_NONE, VU_PF_BACKEND_REQ),
	[VU_GET_CONFIG] = R(SZ_CONFIG, 0, FD_NONE, IDX_NONE, VU_PF_CONFIG),
	[VU_SET_CONFIG] = R(SZ_CONFIG, 0, FD_NONE, IDX_NONE, VU_PF_CONFIG),
	[VU_RESET_DEVICE] = R(SZ_EXACT, 0, FD_NONE, IDX_NONE, VU_PF_RESET_DEVICE),
	[VU_GET_MAX_MEM_SLOTS] = R(SZ_EXACT, 0, FD_NONE, IDX_NONE, VU_PF_CONFIGURE_MEM_SLOTS),
	[VU_ADD_MEM_REG] = R(SZ_EXACT, 40, FD_ONE, IDX_NONE, VU_PF_CONFIGURE_MEM_SLOTS),
	/* vhost-user.rst: no fd SHOULD be sent, one MAY be (and is closed). */
	[VU_REM_MEM_REG] = R(SZ_EXACT, 40, FD_OPTIONAL, IDX_NONE, VU_PF_CONFIGURE_MEM_SLOTS),
	[VU_SET_STATUS] = R(SZ_EXACT, 8, FD_NONE, IDX_NONE, VU_PF_STATUS),
	[VU_GET_STATUS] = R(SZ_EXACT, 0, FD_NONE, IDX_NONE, VU_PF_STATUS),
};

int viod_msg_check(const struct viod_dev *dev, const struct viod_vu_msg *m,
		   unsigned int nfds, const char **why)
{
	const struct rule *r;
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
	if (m->hdr.request >= VU_REQUEST_MAX || !rules[m->hdr.request].known) {
		*why = "unknown request";
		return -ENOTSUP;
	}
	r = &rules[m->hdr.request];
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
	if (idx >= dev->ops->num_queues) {
		*why = "queue index out of range";
		return -ERANGE;
	}
	return 0;
}

int viod_msg_send(int fd, const struct viod_vu_msg *m, const int *fds,
		  unsigned int nfds)
{
	if (m->hdr.size > VU_PAYLOAD_MAX || nfds > VU_MAX_FDS)
		return -EINVAL;
	/* Messages are small; a short send means the peer stopped reading. */
	return viod_wire_send(fd, m, VU_HDR_SIZE + m->hdr.size, fds, nfds,
			      MSG_DONTWAIT);
}

int viod_msg_reply(int fd, const struct viod_vu_msg *req, const void *payload,
		   uint32_t size)
{
	struct viod_vu_msg m;

	if (size > VU_PAYLOAD_MAX)
		return -EINVAL;
	m.hdr.request = req->hdr.request;
	m.hdr.flags = VU_FLAG_VERSION | VU_FLAG_REPLY;
	m.hdr.size = size;
	if (size)
		memcpy(&m.u, payload, size);
	return viod_msg_send(fd, &m, NULL, 0);
}
