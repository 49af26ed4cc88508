/*
 * Unit tests for src/vhost/msg.c: buffered framing over a socketpair
 * (messages split at every byte, fds riding on any fragment, too many
 * fds, oversize payloads, EOF mid-message), the request table's checks
 * (payload sizes, fd counts, queue indices, protocol-feature gating) and
 * the back-end channel.
 */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tap.h"
#include "vhost/vhost.h"

static int sv[2];

static void pair(void)
{
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		abort();
}

static void unpair(void)
{
	close(sv[0]);
	close(sv[1]);
}

static int send_fds(int s, const void *buf, size_t len, const int *fds, unsigned int n)
{
	union {
		char b[CMSG_SPACE(16 * sizeof(int))];
		struct cmsghdr a;
	} c;
	struct iovec iov = { (void *)buf, len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

	if (n) {
		struct cmsghdr *h;

		memset(&c, 0, sizeof(c));
		mh.msg_control = c.b;
		mh.msg_controllen = CMSG_SPACE(n * sizeof(int));
		h = CMSG_FIRSTHDR(&mh);
		h->cmsg_level = SOL_SOCKET;
		h->cmsg_type = SCM_RIGHTS;
		h->cmsg_len = CMSG_LEN(n * sizeof(int));
		memcpy(CMSG_DATA(h), fds, n * sizeof(int));
	}
	return sendmsg(s, &mh, 0) == (ssize_t)len ? 0 : -1;
}

static size_t build(struct viod_vu_msg *m, uint32_t req, uint32_t flags, const void *p, uint32_t n)
{
	memset(m, 0, sizeof(*m));
	m->hdr.request = req;
	m->hdr.flags = flags;
	m->hdr.size = n;
	if (n)
		memcpy(&m->u, p, n);
	return VU_HDR_SIZE + n;
}

static void test_framing(void)
{
	struct viod_rxbuf rx = { 0 };
	struct viod_vu_msg m;
	struct vhost_vring_state st = { 0, 256 };
	size_t len = build(&m, VU_SET_VRING_NUM, VU_FLAG_VERSION, &st, sizeof(st));
	int efd = eventfd(0, EFD_CLOEXEC);
	bool all = true;

	/* Every split point, with the fd on the second fragment. */
	for (size_t cut = 1; cut < len; cut++) {
		enum viod_rx_result r;

		pair();
		memset(&rx, 0, sizeof(rx));
		send_fds(sv[1], &m, cut, NULL, 0);
		r = viod_msg_read(sv[0], &rx);
		all &= r == VIOD_RX_AGAIN;
		send_fds(sv[1], (uint8_t *)&m + cut, len - cut, &efd, 1);
		r = viod_msg_read(sv[0], &rx);
		all &= r == VIOD_RX_MSG && rx.msg.u.state.num == 256 && rx.nfds == 1;
		viod_rxbuf_reset(&rx, true);
		unpair();
	}
	ok(all, "a message split at every byte is reassembled, fd kept");

	pair();
	memset(&rx, 0, sizeof(rx));
	len = build(&m, VU_GET_FEATURES, VU_FLAG_VERSION, NULL, 0);
	send_fds(sv[1], &m, len, NULL, 0);
	send_fds(sv[1], &m, len, NULL, 0);
	ok(viod_msg_read(sv[0], &rx) == VIOD_RX_MSG, "back-to-back: first message");
	viod_rxbuf_reset(&rx, true);
	ok(viod_msg_read(sv[0], &rx) == VIOD_RX_MSG, "back-to-back: second message");
	viod_rxbuf_reset(&rx, true);
	ok(viod_msg_read(sv[0], &rx) == VIOD_RX_AGAIN, "then nothing");
	unpair();

	pair();
	memset(&rx, 0, sizeof(rx));
	m.hdr.size = VU_PAYLOAD_MAX + 1;
	send_fds(sv[1], &m, VU_HDR_SIZE, NULL, 0);
	ok(viod_msg_read(sv[0], &rx) == VIOD_RX_ERROR, "payload beyond the maximum: error");
	viod_rxbuf_reset(&rx, true);
	unpair();

	{
		int fds[12];

		for (int i = 0; i < 12; i++)
			fds[i] = eventfd(0, EFD_CLOEXEC);
		pair();
		memset(&rx, 0, sizeof(rx));
		len = build(&m, VU_GET_FEATURES, VU_FLAG_VERSION, NULL, 0);
		send_fds(sv[1], &m, len, fds, 9);
		ok(viod_msg_read(sv[0], &rx) == VIOD_RX_ERROR, "nine fds: error");
		viod_rxbuf_reset(&rx, true);
		ok(rx.nfds == 0, "received fds released");
		unpair();
		for (int i = 0; i < 12; i++)
			close(fds[i]);
	}

	pair();
	memset(&rx, 0, sizeof(rx));
	len = build(&m, VU_SET_FEATURES, VU_FLAG_VERSION, &(uint64_t){ 1 }, 8);
	send_fds(sv[1], &m, len - 3, NULL, 0);
	close(sv[1]);
	ok(viod_msg_read(sv[0], &rx) == VIOD_RX_ERROR, "EOF mid-message: error");
	close(sv[0]);
	memset(&rx, 0, sizeof(rx));
	pair();
	close(sv[1]);
	ok(viod_msg_read(sv[0], &rx) == VIOD_RX_EOF, "EOF between messages: EOF");
	close(sv[0]);
	close(efd);
}

static enum viod_serve dummy_queue(struct viod_dev *dev, struct viod_queue *q)
{
	return VIOD_SERVE_IDLE;
}

static const struct viod_device_ops two_queues = {
	.type = "t", .num_queues = 2, .config_size = 8, .queue_handler = dummy_queue,
};

static int check(struct viod_dev *dev, uint32_t req, uint32_t flags, const void *p,
		 uint32_t n, unsigned int nfds)
{
	struct viod_vu_msg m;
	const char *why = NULL;

	build(&m, req, flags, p, n);
	return viod_msg_check(dev, &m, nfds, &why);
}

static void test_check(void)
{
	struct viod_dev *dev = viod_dev_new(&two_queues, "t");
	uint64_t u = 0;
	struct vhost_vring_state st = { 1, 64 };
	struct vhost_vring_addr addr = { .index = 1 };
	uint8_t mem[8 + 3 * 32] = { 0 };
	struct viod_vu_config cfg = { .offset = 0, .size = 8 };
	const uint32_t V = VU_FLAG_VERSION;

	is(check(dev, VU_GET_FEATURES, V, NULL, 0, 0), 0, "GET_FEATURES ok");
	is(check(dev, VU_GET_FEATURES, 0, NULL, 0, 0), -EPROTO, "version 0 refused");
	is(check(dev, VU_GET_FEATURES, V | VU_FLAG_REPLY, NULL, 0, 0), -EPROTO, "reply flag refused");
	is(check(dev, VU_GET_FEATURES, V, &u, 8, 0), -EBADMSG, "GET_FEATURES with payload");
	is(check(dev, VU_GET_FEATURES, V, NULL, 0, 1), -EBADMSG, "GET_FEATURES with an fd");
	is(check(dev, VU_SET_FEATURES, V, &u, 8, 0), 0, "SET_FEATURES ok");
	is(check(dev, VU_SET_FEATURES, V, &u, 7, 0), -EBADMSG, "SET_FEATURES short");
	is(check(dev, 63, V, NULL, 0, 0), -ENOTSUP, "unknown request");
	is(check(dev, 4000, V, NULL, 0, 0), -ENOTSUP, "request beyond the table");
	is(check(dev, VU_SET_LOG_BASE, V, &u, 8, 0), -ENOTSUP, "logging not offered");

	is(check(dev, VU_SET_VRING_NUM, V, &st, 8, 0), 0, "SET_VRING_NUM queue 1 ok");
	st.index = 2;
	is(check(dev, VU_SET_VRING_NUM, V, &st, 8, 0), 0,
	   "SET_VRING_NUM queue 2 of 2: accepted (an extra queue, left idle)");
	st.index = 255;
	is(check(dev, VU_SET_VRING_NUM, V, &st, 8, 0), 0, "SET_VRING_NUM queue 255 accepted");
	st.index = 256;
	is(check(dev, VU_SET_VRING_NUM, V, &st, 8, 0), -ERANGE,
	   "SET_VRING_NUM queue 256: beyond what SET_VRING_KICK can name");
	is(check(dev, VU_SET_VRING_ADDR, V, &addr, 40, 0), 0, "SET_VRING_ADDR ok");
	addr.index = 1000;
	is(check(dev, VU_SET_VRING_ADDR, V, &addr, 40, 0), -ERANGE, "SET_VRING_ADDR queue 1000");
	u = 1;
	is(check(dev, VU_SET_VRING_KICK, V, &u, 8, 1), 0, "SET_VRING_KICK with fd");
	is(check(dev, VU_SET_VRING_KICK, V, &u, 8, 0), -EBADMSG, "SET_VRING_KICK missing fd");
	u = 1 | VU_VRING_NOFD;
	is(check(dev, VU_SET_VRING_KICK, V, &u, 8, 0), 0, "SET_VRING_KICK NOFD without fd");
	is(check(dev, VU_SET_VRING_KICK, V, &u, 8, 1), -EBADMSG, "SET_VRING_KICK NOFD with fd");
	u = 1ull << 20;
	is(check(dev, VU_SET_VRING_CALL, V, &u, 8, 1), -EBADMSG, "reserved bits in vring u64");
	u = 5;
	is(check(dev, VU_SET_VRING_ERR, V, &u, 8, 1), 0, "SET_VRING_ERR queue 5 (extra) accepted");

	*(uint32_t *)mem = 3;
	is(check(dev, VU_SET_MEM_TABLE, V, mem, 8 + 3 * 32, 3), 0, "mem table: 3 regions, 3 fds");
	is(check(dev, VU_SET_MEM_TABLE, V, mem, 8 + 3 * 32, 2), -EBADMSG, "mem table: 3 regions, 2 fds");
	is(check(dev, VU_SET_MEM_TABLE, V, mem, 8 + 2 * 32, 3), -EBADMSG, "mem table: size for 2, says 3");
	*(uint32_t *)mem = 0;
	is(check(dev, VU_SET_MEM_TABLE, V, mem, 8, 0), -EBADMSG, "mem table: zero regions");
	*(uint32_t *)mem = 9;
	is(check(dev, VU_SET_MEM_TABLE, V, mem, 8 + 3 * 32, 9), -EBADMSG, "mem table: nine regions");
	is(check(dev, VU_SET_MEM_TABLE, V, mem, 4, 0), -EBADMSG, "mem table: 4-byte payload");

	is(check(dev, VU_GET_CONFIG, V, &cfg, 12 + 8, 0), -ENOTSUP, "GET_CONFIG before CONFIG acked");
	is(check(dev, VU_ADD_MEM_REG, V, mem, 40, 1), -ENOTSUP, "ADD_MEM_REG before slots acked");
	dev->proto_acked = (1ull << VU_PF_CONFIG) | (1ull << VU_PF_CONFIGURE_MEM_SLOTS) |
			   (1ull << VU_PF_MQ) | (1ull << VU_PF_STATUS);
	is(check(dev, VU_GET_CONFIG, V, &cfg, 12 + 8, 0), 0, "GET_CONFIG ok");
	is(check(dev, VU_GET_CONFIG, V, &cfg, 12 + 7, 0), -EBADMSG, "GET_CONFIG size disagrees");
	cfg.size = 300;
	is(check(dev, VU_SET_CONFIG, V, &cfg, 12 + 244, 0), -EBADMSG, "SET_CONFIG over 256 bytes");
	is(check(dev, VU_ADD_MEM_REG, V, mem, 40, 1), 0, "ADD_MEM_REG ok");
	is(check(dev, VU_ADD_MEM_REG, V, mem, 40, 0), -EBADMSG, "ADD_MEM_REG without fd");
	is(check(dev, VU_REM_MEM_REG, V, mem, 40, 0), 0, "REM_MEM_REG without fd");
	is(check(dev, VU_REM_MEM_REG, V, mem, 40, 1), 0, "REM_MEM_REG with one fd (tolerated)");
	is(check(dev, VU_REM_MEM_REG, V, mem, 40, 2), -EBADMSG, "REM_MEM_REG with two fds");
	is(check(dev, VU_GET_QUEUE_NUM, V, NULL, 0, 0), 0, "GET_QUEUE_NUM with MQ");
	is(check(dev, VU_RESET_DEVICE, V, NULL, 0, 0), -ENOTSUP, "RESET_DEVICE not acked");
	is(check(dev, VU_SET_STATUS, V, &u, 8, 0), 0, "SET_STATUS ok");
	viod_dev_free(dev);
}

/* The back-end channel: CONFIG_CHANGE_MSG, no reply asked for. */
static void test_config_change(void)
{
	struct viod_dev *dev = viod_dev_new(&two_queues, "t");
	struct viod_vu_hdr h = { 0 };

	pair();
	viod_dev_config_changed(dev);
	ok(recv(sv[1], &h, sizeof(h), MSG_DONTWAIT) < 0, "no back-end channel: nothing sent");
	dev->backend_fd = sv[0];
	viod_dev_config_changed(dev);
	ok(recv(sv[1], &h, sizeof(h), MSG_DONTWAIT) == sizeof(h) &&
	   h.request == VU_BACKEND_CONFIG_CHANGE_MSG && h.flags == VU_FLAG_VERSION &&
	   h.size == 0, "CONFIG_CHANGE_MSG sent, version 1, no NEED_REPLY, empty");
	close(sv[1]);
	/* In a child with SIGPIPE's default action (death), as a daemon
	 * that forgot to ignore it would have: sending on the closed channel
	 * must not raise it. */
	{
		pid_t pid = fork();
		int status = 0;

		if (pid == 0) {
			signal(SIGPIPE, SIG_DFL);
			viod_dev_config_changed(dev);
			_exit(0);
		}
		waitpid(pid, &status, 0);
		ok(pid > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
		   "a closed back-end channel is survived with SIGPIPE's default action "
		   "(status 0x%x)", status);
	}
	dev->backend_fd = -1;
	close(sv[0]);
	viod_dev_free(dev);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	test_framing();
	test_check();
	test_config_change();
	return tap_done();
}
