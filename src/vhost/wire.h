/*
 * vhost-user socket I/O: one sendmsg() or recvmsg() carrying SCM_RIGHTS
 * fds, shared by the back-end (non-blocking, buffered: vhost/msg.c) and
 * the userspace front-end (blocking, with timeouts: guest/fe-msg.c).
 * Framing (header, payload size, which request may carry fds) is the
 * callers'; this layer moves bytes and fds and owns the fd rules.
 *
 * Security model: the peer is untrusted. Every fd received is either
 * handed to the caller or closed here, on every path; more fds than the
 * caller has room for, or control data the kernel had to truncate, is an
 * error (-EMSGSIZE), never a silent loss.
 */
#ifndef VIOD_VHOST_WIRE_H
#define VIOD_VHOST_WIRE_H

#include <stddef.h>
#include <sys/types.h>

#include "proto.h"

/* fds one message may carry (vhost-user.rst: at most 8). */
#define VIOD_WIRE_MAX_FDS VU_MAX_FDS

/*
 * One sendmsg() of len (> 0) bytes from buf with nfds (<= VIOD_WIRE_MAX_FDS)
 * fds attached as SCM_RIGHTS. MSG_NOSIGNAL is always added to flags;
 * EINTR is retried. Returns the bytes sent, which may be fewer than len
 * (the fds went with them), or -errno; -EINVAL for bad arguments.
 */
ssize_t viod_wire_sendmsg(int fd, const void *buf, size_t len, const int *fds,
			  unsigned int nfds, int flags);

/*
 * As viod_wire_sendmsg, but for a whole message: 0 when all len bytes
 * went, -EAGAIN when only part did (the peer stopped reading; the stream
 * is then out of step and the connection should go), -errno otherwise.
 */
int viod_wire_send(int fd, const void *buf, size_t len, const int *fds,
		   unsigned int nfds, int flags);

/*
 * One recvmsg() of at most len (> 0) bytes into buf, with
 * MSG_CMSG_CLOEXEC added to flags; EINTR is retried. fds received are
 * appended to fds[*nfds ..], which has room for max_fds in all, and
 * *nfds is advanced; those beyond max_fds are closed. Returns the bytes
 * read (0: end of stream) or -errno: -EMSGSIZE when fds were closed for
 * want of room or the control data was truncated (MSG_CTRUNC; the kernel
 * dropped those fds), the bytes read then being lost to the caller.
 * Whatever the result, fds[0 .. *nfds) are the caller's to use or close.
 */
ssize_t viod_wire_recv(int fd, void *buf, size_t len, int *fds, unsigned int *nfds,
		       unsigned int max_fds, int flags);

#endif
