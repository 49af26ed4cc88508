/*
 * Message framing. Security model: the peer is untrusted. Reads are
 * non-blocking and buffered so that a peer sending half a message stalls
 * only its own connection; what a complete message may contain is checked
 * against the request table (requests.c) before any handler sees it.
 */
#include "vhost.h"

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

/* Stores fds received in control messages; any surplus is an error. */
static int take_fds(struct viod_rxbuf *rx, struct msghdr *mh)
{
	int rc = 0;

	for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
		size_t n;
		int *fds;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		fds = (int *)CMSG_DATA(c);
		for (size_t i = 0; i < n; i++) {
			int fd;

			memcpy(&fd, &fds[i], sizeof(fd));
			if (rx->nfds < VU_MAX_FDS) {
				rx->fds[rx->nfds++] = fd;
			} else {
				close(fd);
				rc = -EMSGSIZE;
			}
		}
	}
	if (mh->msg_flags & MSG_CTRUNC)
		rc = -EMSGSIZE;
	return rc;
}

enum viod_rx_result viod_msg_read(int fd, struct viod_rxbuf *rx)
{
	for (;;) {
		union {
			char buf[CMSG_SPACE(VU_MAX_FDS * sizeof(int))];
			struct cmsghdr align;
		} cbuf;
		struct msghdr mh = { 0 };
		struct iovec iov;
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
		iov.iov_base = (uint8_t *)&rx->msg + rx->len;
		iov.iov_len = want;
		mh.msg_iov = &iov;
		mh.msg_iovlen = 1;
		mh.msg_control = cbuf.buf;
		mh.msg_controllen = sizeof(cbuf.buf);
		n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return VIOD_RX_AGAIN;
			return VIOD_RX_ERROR;
		}
		if (take_fds(rx, &mh) < 0)
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
	union {
		char buf[CMSG_SPACE(VU_MAX_FDS * sizeof(int))];
		struct cmsghdr align;
	} cbuf;
	struct iovec iov = {
		.iov_base = (void *)m,
		.iov_len = VU_HDR_SIZE + m->hdr.size,
	};
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;

	if (m->hdr.size > VU_PAYLOAD_MAX || nfds > VU_MAX_FDS)
		return -EINVAL;
	if (nfds) {
		struct cmsghdr *c;

		memset(&cbuf, 0, sizeof(cbuf));
		mh.msg_control = cbuf.buf;
		mh.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
		memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
	}
	do {
		n = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	/* Messages are small; a short send means the peer stopped reading. */
	if ((size_t)n != iov.iov_len)
		return -EAGAIN;
	return 0;
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
