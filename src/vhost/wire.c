/*
 * vhost-user socket I/O with SCM_RIGHTS fds. Contracts and security
 * model: wire.h.
 */
#include "wire.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

union wire_cbuf {
	char buf[CMSG_SPACE(VIOD_WIRE_MAX_FDS * sizeof(int))];
	struct cmsghdr align;
};

ssize_t viod_wire_sendmsg(int fd, const void *buf, size_t len, const int *fds,
			  unsigned int nfds, int flags)
{
	union wire_cbuf cbuf;
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;

	if (len == 0 || nfds > VIOD_WIRE_MAX_FDS || (nfds && !fds))
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
		n = sendmsg(fd, &mh, flags | MSG_NOSIGNAL);
	} while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : n;
}

int viod_wire_send(int fd, const void *buf, size_t len, const int *fds,
		   unsigned int nfds, int flags)
{
	ssize_t n = viod_wire_sendmsg(fd, buf, len, fds, nfds, flags);

	if (n < 0)
		return (int)n;
	return (size_t)n == len ? 0 : -EAGAIN;
}

ssize_t viod_wire_recv(int fd, void *buf, size_t len, int *fds, unsigned int *nfds,
		       unsigned int max_fds, int flags)
{
	union wire_cbuf cbuf;
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	struct msghdr mh = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = cbuf.buf, .msg_controllen = sizeof(cbuf.buf),
	};
	unsigned int have = nfds ? *nfds : 0;
	ssize_t n;
	bool lost = false;

	if (len == 0 || have > max_fds || (max_fds && (!fds || !nfds)))
		return -EINVAL;
	do {
		n = recvmsg(fd, &mh, flags | MSG_CMSG_CLOEXEC);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		size_t k;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < k; i++) {
			int rfd;

			memcpy(&rfd, CMSG_DATA(c) + i * sizeof(int), sizeof(rfd));
			if (have < max_fds) {
				fds[have++] = rfd;
			} else {
				close(rfd);
				lost = true;
			}
		}
	}
	if (nfds)
		*nfds = have;
	if (lost || (mh.msg_flags & MSG_CTRUNC))
		return -EMSGSIZE;
	return n;
}
