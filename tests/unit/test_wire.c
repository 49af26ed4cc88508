/*
 * vhost/wire.c on a socketpair: fds travel and arrive close-on-exec,
 * surplus fds and truncated control data are errors with nothing leaked,
 * short sends are reported, a closed peer gives EPIPE without SIGPIPE.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "vhost/wire.h"
#include "support.h"
#include "tap.h"

static void close_all(const int *fds, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++)
		close(fds[i]);
}

static int make_fds(int *fds, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++) {
		fds[i] = eventfd(0, EFD_CLOEXEC);
		if (fds[i] < 0)
			return -1;
	}
	return 0;
}

/* n fds in one SCM_RIGHTS message, bypassing the 8-fd cap of wire.c. */
static ssize_t raw_send_fds(int sock, const int *fds, unsigned int n)
{
	char byte = 'x';
	union {
		char buf[CMSG_SPACE(16 * sizeof(int))];
		struct cmsghdr align;
	} cbuf;
	struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
	struct msghdr mh = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = cbuf.buf, .msg_controllen = CMSG_SPACE(n * sizeof(int)),
	};
	struct cmsghdr *c;

	memset(&cbuf, 0, sizeof(cbuf));
	c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(n * sizeof(int));
	memcpy(CMSG_DATA(c), fds, n * sizeof(int));
	return sendmsg(sock, &mh, MSG_NOSIGNAL);
}

static void test_roundtrip(void)
{
	int sv[2], out[3], in[VIOD_WIRE_MAX_FDS];
	unsigned int nin = 0;
	char buf[16];
	struct stat a, b;
	ssize_t n;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0 || make_fds(out, 3) < 0) {
		ok(false, "setup");
		return;
	}
	is(viod_wire_send(sv[0], "hello", 5, out, 3, 0), 0, "send 5 bytes with 3 fds");
	n = viod_wire_recv(sv[1], buf, sizeof(buf), in, &nin, VIOD_WIRE_MAX_FDS, 0);
	is(n, 5, "5 bytes received");
	ok(memcmp(buf, "hello", 5) == 0, "the same bytes");
	is(nin, 3, "3 fds received");
	ok(nin == 3 && fstat(out[1], &a) == 0 && fstat(in[1], &b) == 0 &&
	   a.st_ino == b.st_ino, "in order, the same files");
	ok(nin == 3 && (fcntl(in[0], F_GETFD) & FD_CLOEXEC), "received close-on-exec");
	/* Appending: a second message's fds go after those held. */
	is(viod_wire_send(sv[0], "x", 1, out, 1, 0), 0, "send 1 fd more");
	n = viod_wire_recv(sv[1], buf, sizeof(buf), in, &nin, VIOD_WIRE_MAX_FDS, 0);
	ok(n == 1 && nin == 4, "appended as the 4th fd");
	close_all(in, nin);
	nin = 0;

	is(viod_wire_recv(sv[1], buf, sizeof(buf), in, &nin, VIOD_WIRE_MAX_FDS,
			  MSG_DONTWAIT), -EAGAIN, "nothing there: -EAGAIN");
	is(viod_wire_sendmsg(sv[0], buf, 0, NULL, 0, 0), -EINVAL, "send 0 bytes: -EINVAL");
	is(viod_wire_send(sv[0], buf, 1, out, VIOD_WIRE_MAX_FDS + 1, 0), -EINVAL,
	   "send 9 fds: -EINVAL");
	nin = 3;
	is(viod_wire_recv(sv[1], buf, 1, in, &nin, 2, 0), -EINVAL,
	   "more fds held than room: -EINVAL");
	nin = 0;
	close(sv[0]);
	is(viod_wire_recv(sv[1], buf, sizeof(buf), in, &nin, VIOD_WIRE_MAX_FDS, 0), 0,
	   "peer gone: 0 (end of stream)");
	close(sv[1]);
	close_all(out, 3);
}

static void test_surplus(void)
{
	int sv[2], out[VIOD_WIRE_MAX_FDS + 1], in[VIOD_WIRE_MAX_FDS];
	unsigned int nin;
	char buf[4];
	int before;
	ssize_t n;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0 ||
	    make_fds(out, VIOD_WIRE_MAX_FDS + 1) < 0) {
		ok(false, "setup");
		return;
	}
	before = test_count_fds();

	/* Room for 3 in all, 1 held already, 4 sent: 2 kept, 2 closed. */
	is(viod_wire_send(sv[0], "ab", 2, out, 4, 0), 0, "send 4 fds");
	in[0] = dup(out[0]);
	nin = 1;
	n = viod_wire_recv(sv[1], buf, sizeof(buf), in, &nin, 3, 0);
	is(n, -EMSGSIZE, "more fds than room: -EMSGSIZE");
	is(nin, 3, "the room filled, the caller's to close");
	close_all(in, nin);
	is(test_count_fds(), before, "surplus fds closed, none leaked");

	/* No room at all. */
	is(viod_wire_send(sv[0], "c", 1, out, 1, 0), 0, "send 1 fd");
	is(viod_wire_recv(sv[1], buf, sizeof(buf), NULL, NULL, 0, 0), -EMSGSIZE,
	   "an fd where none may come: -EMSGSIZE");
	is(test_count_fds(), before, "and it is closed");

	/* Nine fds overflow the 8-fd control buffer: MSG_CTRUNC. */
	ok(raw_send_fds(sv[0], out, VIOD_WIRE_MAX_FDS + 1) == 1, "raw send of 9 fds");
	nin = 0;
	n = viod_wire_recv(sv[1], buf, sizeof(buf), in, &nin, VIOD_WIRE_MAX_FDS, 0);
	is(n, -EMSGSIZE, "truncated control data: -EMSGSIZE");
	ok(nin <= VIOD_WIRE_MAX_FDS, "at most 8 handed over (%u)", nin);
	close_all(in, nin);
	is(test_count_fds(), before, "nothing leaked");

	close(sv[0]);
	close(sv[1]);
	close_all(out, VIOD_WIRE_MAX_FDS + 1);
}

static void test_short_send(void)
{
	int sv[2], sz = 4096;
	size_t len = 1u << 20;
	char *big = calloc(1, len);
	ssize_t n;

	for (int round = 0; round < 2; round++) {
		if (!big || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
			ok(false, "setup");
			free(big);
			return;
		}
		setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
		if (round == 0) {
			n = viod_wire_sendmsg(sv[0], big, len, NULL, 0, MSG_DONTWAIT);
			ok(n > 0 && (size_t)n < len, "sendmsg reports a short send (%zd bytes)", n);
		} else {
			is(viod_wire_send(sv[0], big, len, NULL, 0, MSG_DONTWAIT), -EAGAIN,
			   "a message sent in part: -EAGAIN");
		}
		is(viod_wire_send(sv[0], big, len, NULL, 0, MSG_DONTWAIT), -EAGAIN,
		   "a full socket: -EAGAIN");
		close(sv[1]);
		is(viod_wire_send(sv[0], "x", 1, NULL, 0, 0), -EPIPE,
		   "peer closed: -EPIPE, no SIGPIPE");
		close(sv[0]);
	}
	free(big);
}

int main(void)
{
	test_roundtrip();
	test_surplus();
	test_short_send();
	return tap_done();
}
