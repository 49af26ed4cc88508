/*
 * Message framing. Security model: the peer is untrusted. Reads are
 * non-blocking and buffered so that a peer sending half a message stalls
 * only its own connection; what a complete message may contain is checked
 * against the request table (requests.c) before any handler sees it.
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
		   uint32_t size, int reply_fd)
{
	struct viod_vu_msg m;

	if (size > VU_PAYLOAD_MAX)
		return -EINVAL;
	m.hdr.request = req->hdr.request;
	m.hdr.flags = VU_FLAG_VERSION | VU_FLAG_REPLY;
	m.hdr.size = size;
	if (size)
		memcpy(&m.u, payload, size);
	return viod_msg_send(fd, &m, reply_fd >= 0 ? &reply_fd : NULL, reply_fd >= 0);
}
