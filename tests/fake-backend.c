/* The scripted fake vhost-user back-end of the unit tests (fake-backend.h). */
#include "fake-backend.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "guest/frontend.h"
#include "support.h"

void test_fake_reply(struct test_fake *f, uint32_t req, const void *p, uint32_t size,
		     const int *fds, unsigned int nfds)
{
	viod_fe_msg_send(f->sock, req, VU_FLAG_VERSION | VU_FLAG_REPLY, size, p, size,
			 fds, nfds);
}

void test_fake_call(struct test_fake *f, unsigned int qi)
{
	uint64_t one = 1;

	if (viod_vq_need_call(&f->q[qi].vq) && write(f->q[qi].call, &one, sizeof(one)) < 0)
		perror("fake: call");
}

void test_fake_serve(struct test_fake *f, unsigned int qi, test_fake_serve_fn serve)
{
	struct viod_vq *vq = &f->q[qi].vq;
	struct viod_vq_chain c;

	do {
		while (viod_vq_pop_iov(vq, &c, f->elem->iov, VIOD_VQ_MAX_IOV) > 0) {
			viod_vq_push(vq, c.head, serve(f, qi, &c));
			test_fake_call(f, qi);
		}
		viod_vq_set_notify(vq, true);
	} while (viod_vq_pending(vq) > 0);
}

static enum test_fake_verdict fake_reply_u64(struct test_fake *f, uint32_t req, uint64_t u)
{
	test_fake_reply(f, req, &u, sizeof(u), NULL, 0);
	return TEST_FAKE_REPLIED;
}

/* Takes the message's one fd into *slot (closing what it held); false
 * unless there is exactly one. */
static bool fake_keep_fd(int *slot, unsigned int *nfds, const int *fds)
{
	if (*nfds != 1)
		return false;
	if (*slot >= 0)
		close(*slot);
	*slot = fds[0];
	*nfds = 0;
	return true;
}

/* No rings, no memory, no back-end channel, nothing acked. */
static void fake_clear(struct test_fake *f)
{
	memset(f->q, 0, sizeof(f->q));
	for (unsigned int i = 0; i < TEST_FAKE_MAX_QUEUES; i++)
		f->q[i].kick = f->q[i].call = -1;
	memset(f->maps, 0, sizeof(f->maps));
	f->mem.nregions = 0;
	f->backend = -1;
	f->acked = f->acked_protocol = 0;
	f->status = 0;
}

/* Releases the connection's rings, memory and back-end channel. */
static void fake_forget(struct test_fake *f)
{
	for (unsigned int i = 0; i < TEST_FAKE_MAX_QUEUES; i++) {
		if (f->q[i].kick >= 0)
			close(f->q[i].kick);
		if (f->q[i].call >= 0)
			close(f->q[i].call);
	}
	for (unsigned int i = 0; i < VU_MEM_TABLE_MAX; i++)
		if (f->maps[i])
			munmap(f->maps[i], f->map_len[i]);
	if (f->backend >= 0)
		close(f->backend);
	fake_clear(f);
}

static enum test_fake_verdict fake_get_config(struct test_fake *f, struct viod_vu_msg *m)
{
	uint8_t cfg[VU_MAX_CONFIG_SIZE] = { 0 };
	size_t size = f->config_size < sizeof(cfg) ? f->config_size : sizeof(cfg);
	uint32_t off = m->u.config.offset, len = m->u.config.size;

	if (f->ops && f->ops->config)
		size = f->ops->config(f, cfg);
	else
		memcpy(cfg, f->config, size);
	if (off <= size && len <= size - off) {
		memcpy(m->u.config.data, cfg + off, len);
		test_fake_reply(f, m->hdr.request, &m->u.config, VU_CONFIG_HDR_SIZE + len,
				NULL, 0);
	} else {
		test_fake_reply(f, m->hdr.request, NULL, 0, NULL, 0);
	}
	return TEST_FAKE_REPLIED;
}

/* SET_VRING_CALL and SET_VRING_KICK: a kick fd starts the ring. */
static void fake_ring_fd(struct test_fake *f, const struct viod_vu_msg *m, const int *fds,
			 unsigned int *nfds)
{
	unsigned int qi = m->u.u64 & VU_VRING_IDX_MASK;
	struct test_fake_q *q = &f->q[qi];

	if (qi >= f->nqueues)
		return;
	if (m->hdr.request == VU_SET_VRING_CALL) {
		fake_keep_fd(&q->call, nfds, fds);
	} else if (fake_keep_fd(&q->kick, nfds, fds)) {
		q->running = test_fake_start_ring(&q->vq, &f->mem, q->num, &q->addr, q->base,
						  f->acked);
	}
}

/* What every back-end answers; anything else (SET_OWNER, SET_VRING_ENABLE,
 * SET_VRING_ERR...) is acked if asked, its fds closed. */
static enum test_fake_verdict fake_generic(struct test_fake *f, struct viod_vu_msg *m,
					   const int *fds, unsigned int *nfds)
{
	uint32_t req = m->hdr.request;
	unsigned int qi = m->hdr.size >= 4 ? m->u.state.index & VU_VRING_IDX_MASK : 0;

	if (qi >= f->nqueues)
		qi = 0;
	switch (req) {
	case VU_GET_FEATURES:
		return fake_reply_u64(f, req, f->features);
	case VU_GET_PROTOCOL_FEATURES:
		return fake_reply_u64(f, req, f->protocol_features);
	case VU_GET_QUEUE_NUM:
		return fake_reply_u64(f, req, f->queue_num);
	case VU_GET_STATUS:
		return fake_reply_u64(f, req, f->status);
	case VU_SET_FEATURES:
		f->acked = m->u.u64;
		break;
	case VU_SET_PROTOCOL_FEATURES:
		f->acked_protocol = m->u.u64;
		break;
	case VU_SET_STATUS:
		f->status = (uint8_t)m->u.u64;
		break;
	case VU_SET_MEM_TABLE:
		test_fake_map_table(&f->mem, f->maps, f->map_len, &m->u.mem, fds, *nfds);
		break;
	case VU_SET_BACKEND_REQ_FD:
		fake_keep_fd(&f->backend, nfds, fds);
		break;
	case VU_SET_VRING_NUM:
		f->q[qi].num = m->u.state.num;
		break;
	case VU_SET_VRING_ADDR:
		f->q[qi].addr = m->u.addr;
		break;
	case VU_SET_VRING_BASE:
		f->q[qi].base = (uint16_t)m->u.state.num;
		break;
	case VU_SET_VRING_CALL:
	case VU_SET_VRING_KICK:
		fake_ring_fd(f, m, fds, nfds);
		break;
	case VU_GET_VRING_BASE: {
		struct vhost_vring_state s = { .index = qi, .num = f->q[qi].vq.last_avail };

		f->q[qi].running = false;
		test_fake_reply(f, req, &s, sizeof(s), NULL, 0);
		return TEST_FAKE_REPLIED;
	}
	case VU_GET_CONFIG:
		if ((f->ops && f->ops->config) || f->config)
			return fake_get_config(f, m);
		break;
	case VU_RESET_OWNER:
	case VU_RESET_DEVICE:
		for (unsigned int i = 0; i < TEST_FAKE_MAX_QUEUES; i++)
			f->q[i].running = false;
		f->status = 0;
		break;
	default:
		break;
	}
	return TEST_FAKE_ACK;
}

/* Handles one front-end message; false when the connection is gone. */
static bool fake_msg(struct test_fake *f)
{
	struct viod_vu_msg m;
	int fds[VU_MAX_FDS];
	unsigned int nfds = 0;
	enum test_fake_verdict v = TEST_FAKE_PASS;

	if (viod_fe_msg_recv(f->sock, &m, fds, &nfds, 1000) < 0)
		return false;
	pthread_mutex_lock(&f->lock);
	if (f->ops && f->ops->msg)
		v = f->ops->msg(f, &m, fds, &nfds);
	if (v == TEST_FAKE_PASS)
		v = fake_generic(f, &m, fds, &nfds);
	for (unsigned int i = 0; i < nfds; i++)
		close(fds[i]);
	if (v == TEST_FAKE_ACK && (m.hdr.flags & VU_FLAG_NEED_REPLY))
		fake_reply_u64(f, m.hdr.request, 0);
	pthread_mutex_unlock(&f->lock);
	return true;
}

/* Serves the connection until it is gone or the fake stops. */
static void fake_serve(struct test_fake *f)
{
	const struct test_fake_ops *ops = f->ops;

	while (!atomic_load(&f->quit)) {
		struct pollfd p[1 + TEST_FAKE_MAX_QUEUES];
		unsigned int qmap[TEST_FAKE_MAX_QUEUES], n = 1;

		p[0] = (struct pollfd){ .fd = f->sock, .events = POLLIN };
		pthread_mutex_lock(&f->lock);
		for (unsigned int i = 0; ops && ops->kick && i < f->nqueues; i++) {
			if (!f->q[i].running || f->q[i].kick < 0)
				continue;
			qmap[n - 1] = i;
			p[n++] = (struct pollfd){ .fd = f->q[i].kick, .events = POLLIN };
		}
		pthread_mutex_unlock(&f->lock);
		if (poll(p, n, 20) < 0)
			continue;
		if (p[0].revents && !fake_msg(f))
			break;
		pthread_mutex_lock(&f->lock);
		for (unsigned int i = 1; i < n; i++) {
			struct test_fake_q *q = &f->q[qmap[i - 1]];
			uint64_t count;

			if (!p[i].revents || !q->running)
				continue;
			if (read(q->kick, &count, sizeof(count)) < 0 && errno != EAGAIN)
				continue;
			ops->kick(f, qmap[i - 1]);
		}
		if (ops && ops->idle)
			ops->idle(f);
		pthread_mutex_unlock(&f->lock);
	}
}

static void *fake_thread(void *arg)
{
	struct test_fake *f = arg;

	while (!atomic_load(&f->quit)) {
		struct pollfd p = { .fd = f->lfd, .events = POLLIN };
		int s;

		if (poll(&p, 1, 20) <= 0)
			continue;
		s = accept4(f->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (s < 0)
			continue;
		pthread_mutex_lock(&f->lock);
		fake_forget(f);
		f->sock = s;
		f->conn++;
		pthread_mutex_unlock(&f->lock);
		fake_serve(f);
		pthread_mutex_lock(&f->lock);
		close(f->sock);
		f->sock = -1;
		pthread_mutex_unlock(&f->lock);
	}
	return NULL;
}

int test_fake_start(struct test_fake *f, const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int r;

	f->started = false;
	if (strlen(path) >= sizeof(sa.sun_path) || strlen(path) >= sizeof(f->path))
		return -ENAMETOOLONG;
	if (f->nqueues == 0 || f->nqueues > TEST_FAKE_MAX_QUEUES)
		return -EINVAL;
	strcpy(f->path, path);
	strcpy(sa.sun_path, path);
	fake_clear(f);
	f->sock = -1;
	f->conn = 0;
	atomic_store(&f->quit, false);
	f->elem = malloc(sizeof(*f->elem));
	if (!f->elem)
		return -ENOMEM;
	unlink(path);
	f->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (f->lfd < 0 || bind(f->lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(f->lfd, 4) < 0) {
		r = -errno;
		goto out;
	}
	pthread_mutex_init(&f->lock, NULL);
	r = -pthread_create(&f->thread, NULL, fake_thread, f);
	if (r == 0) {
		f->started = true;
		return 0;
	}
	pthread_mutex_destroy(&f->lock);
out:
	if (f->lfd >= 0)
		close(f->lfd);
	unlink(path);
	free(f->elem);
	f->elem = NULL;
	return r;
}

void test_fake_stop(struct test_fake *f)
{
	if (!f->started)
		return;
	atomic_store(&f->quit, true);
	pthread_join(f->thread, NULL);
	fake_forget(f);
	close(f->lfd);
	unlink(f->path);
	free(f->elem);
	f->elem = NULL;
	pthread_mutex_destroy(&f->lock);
	f->started = false;
}

int test_fake_connect(struct test_fake *f, const char *path, struct viod_fe *fe,
		      size_t mem_size, unsigned int nregions)
{
	struct viod_fe_opts o;

	viod_fe_opts_init(&o);
	o.mem_size = mem_size;
	o.nregions = nregions;
	o.timeout_ms = 3000;
	if (viod_fe_init(fe, &o) < 0)
		return -1;
	if (test_fake_start(f, path) < 0)
		return -1;
	return viod_fe_connect(fe, path);
}
