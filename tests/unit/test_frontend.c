/*
 * The front-end's inflight tracking and reconnection against a scripted
 * fake back-end: a thread of this process speaking vhost-user on a UNIX
 * socket, accepting one connection after another as a restarted back-end
 * would. It logs every request per connection, hands out inflight regions
 * (well-formed or not, as scripted), and serves rings only when the test
 * says so, so that chains can be left popped but never used when the
 * front-end drops the connection.
 *
 * Checked: GET_INFLIGHT_FD's request and every bad reply (no fd, two
 * fds, a region too small, mmap_size 0, a file shorter than the region,
 * a non-file, a wrong payload size) refused with nothing mapped, no fd
 * leaked and the connection still usable; SET_INFLIGHT_FD carries the
 * very file GET_INFLIGHT_FD gave and its description; viod_fe_reconnect
 * asks nothing of the old back-end and keeps the rings and the region;
 * negotiate re-sends the region after the memory table and before any
 * ring; viod_fe_queue_resume sends base = used idx at the same ring
 * address, kicks, and the new back-end finishes the outstanding chains.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>

#include "guest/frontend.h"
#include "fake-backend.h"
#include "support.h"
#include "tap.h"

#define FK_QUEUES 4u
#define FK_LOG 256u

enum inf_mode {
	INF_GOOD, INF_NOFD, INF_TWOFDS, INF_SMALL, INF_ZERO, INF_SHORTFILE,
	INF_NOTREG, INF_BADSIZE,
};

struct fake {
	atomic_int inf_mode;           /* script: enum inf_mode */

	struct test_fake fk;

	/* Below: the fake thread's, read by the test under fk.lock. */
	uint32_t log[FK_LOG];          /* requests in arrival order */
	unsigned int log_conn[FK_LOG]; /* on which connection */
	unsigned int nlog;

	int inflight_fd;               /* the last good region handed out */
	ino_t inflight_ino;
	uint32_t get_size;             /* last GET_INFLIGHT_FD request */
	struct viod_vu_inflight get_req;
	unsigned int nset;             /* SET_INFLIGHT_FDs received */
	uint32_t set_size;
	struct viod_vu_inflight set_req;
	unsigned int set_nfds;
	ino_t set_ino;
};

static ino_t fd_ino(int fd)
{
	struct stat st;

	return fstat(fd, &st) == 0 ? st.st_ino : 0;
}

/* Answers GET_INFLIGHT_FD as the script says. */
static void fake_get_inflight(struct fake *f, const struct viod_vu_msg *m)
{
	struct viod_vu_inflight d = m->u.inflight;
	uint64_t qsz = viod_inflight_queue_size(d.queue_size);
	uint64_t need = (uint64_t)d.num_queues * qsz, file = need;
	enum inf_mode mode = (enum inf_mode)atomic_load(&f->inf_mode);
	int fds[2] = { -1, -1 };
	unsigned int nfds = 1;
	uint32_t size = VU_INFLIGHT_SIZE;

	d.mmap_offset = 0;
	d.mmap_size = need;
	switch (mode) {
	case INF_SMALL:
		d.mmap_size = file = need - VU_INFLIGHT_ALIGN;
		break;
	case INF_SHORTFILE:
		file = need / 2;
		break;
	case INF_ZERO:
		d.mmap_size = 0;
		nfds = 0;
		break;
	case INF_NOFD:
		nfds = 0;
		break;
	case INF_TWOFDS:
		nfds = 2;
		break;
	case INF_BADSIZE:
		size = 16;
		break;
	default:
		break;
	}
	if (nfds > 0 && mode == INF_NOTREG) {
		fds[0] = eventfd(0, EFD_CLOEXEC);
	} else if (nfds > 0) {
		fds[0] = memfd_create("fake-inflight", MFD_CLOEXEC);
		if (fds[0] < 0 || ftruncate(fds[0], (off_t)file) < 0)
			perror("fake: inflight memfd");
	}
	if (nfds == 2)
		fds[1] = dup(fds[0]);
	if (mode == INF_GOOD) {
		uint8_t *p = mmap(NULL, need, PROT_READ | PROT_WRITE, MAP_SHARED, fds[0], 0);

		if (p != MAP_FAILED) {
			/* What a back-end writes: headers, and one request
			 * in flight on queue 1 (desc 3, counter 7). */
			for (unsigned int i = 0; i < d.num_queues; i++) {
				struct viod_inflight_queue *iq = (void *)(p + i * qsz);

				iq->version = VU_INFLIGHT_VERSION;
				iq->desc_num = d.queue_size;
			}
			if (d.num_queues > 1 && d.queue_size > 3) {
				struct viod_inflight_queue *iq = (void *)(p + qsz);

				iq->desc[3].inflight = 1;
				iq->desc[3].counter = 7;
			}
			munmap(p, need);
		}
	}
	test_fake_reply(&f->fk, m->hdr.request, &d, size, fds, nfds);
	if (mode == INF_GOOD) {
		if (f->inflight_fd >= 0)
			close(f->inflight_fd);
		f->inflight_fd = fds[0];
		f->inflight_ino = fd_ino(fds[0]);
		fds[0] = -1;
	}
	for (unsigned int i = 0; i < 2; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

/* Logs every request; answers the inflight ones. */
static enum test_fake_verdict fake_msg(struct test_fake *fk, struct viod_vu_msg *m,
				       int *fds, unsigned int *nfds)
{
	struct fake *f = fk->opaque;

	if (f->nlog < FK_LOG) {
		f->log_conn[f->nlog] = fk->conn;
		f->log[f->nlog++] = m->hdr.request;
	}
	switch (m->hdr.request) {
	case VU_GET_INFLIGHT_FD:
		f->get_size = m->hdr.size;
		f->get_req = m->u.inflight;
		fake_get_inflight(f, m);
		return TEST_FAKE_REPLIED;
	case VU_SET_INFLIGHT_FD:
		f->nset++;
		f->set_size = m->hdr.size;
		f->set_req = m->u.inflight;
		f->set_nfds = *nfds;
		f->set_ino = *nfds ? fd_ino(fds[0]) : 0;
		return TEST_FAKE_ACK;
	default:
		return TEST_FAKE_PASS;
	}
}

/* No kick hook: the test serves the rings (fake_serve) and reads kicks. */
static const struct test_fake_ops fake_ops = { .msg = fake_msg };

static int fake_start(struct fake *f, const char *tag, uint64_t pf)
{
	char path[108];

	memset(f, 0, sizeof(*f));
	f->inflight_fd = -1;
	f->fk.features = TEST_FAKE_FEATURES;
	f->fk.protocol_features = pf;
	f->fk.nqueues = FK_QUEUES;
	f->fk.ops = &fake_ops;
	f->fk.opaque = f;
	snprintf(path, sizeof(path), "/tmp/test-frontend-%d-%s.sock", (int)getpid(), tag);
	return test_fake_start(&f->fk, path);
}

static void fake_stop(struct fake *f)
{
	test_fake_stop(&f->fk);
	if (f->inflight_fd >= 0)
		close(f->inflight_fd);
	f->inflight_fd = -1;
}

/*
 * The device's side of ring qi: pops up to npop chains and uses the
 * first npush of them (4 bytes each); the rest stay popped, never used.
 * Returns the chains popped.
 */
static unsigned int fake_serve(struct fake *f, unsigned int qi, unsigned int npop,
			       unsigned int npush)
{
	struct test_fake_q *q = &f->fk.q[qi];
	unsigned int popped = 0;
	uint64_t one = 1;

	pthread_mutex_lock(&f->fk.lock);
	while (q->running && popped < npop && viod_vq_pop(&q->vq, f->fk.elem) > 0) {
		if (popped < npush)
			viod_vq_push(&q->vq, f->fk.elem->head, 4);
		popped++;
	}
	if (npush && q->call >= 0 && write(q->call, &one, sizeof(one)) < 0)
		perror("fake: call");
	pthread_mutex_unlock(&f->fk.lock);
	return popped;
}

/* Index in the log of the first req on connection conn, or -1. */
static int log_find(struct fake *f, unsigned int conn, uint32_t req)
{
	int at = -1;

	pthread_mutex_lock(&f->fk.lock);
	for (unsigned int i = 0; i < f->nlog; i++)
		if (f->log_conn[i] == conn && f->log[i] == req) {
			at = (int)i;
			break;
		}
	pthread_mutex_unlock(&f->fk.lock);
	return at;
}

/* Index of the first ring request (SET_VRING_*) on connection conn, or -1. */
static int log_first_ring(struct fake *f, unsigned int conn)
{
	static const uint32_t ring[] = {
		VU_SET_VRING_NUM, VU_SET_VRING_ADDR, VU_SET_VRING_BASE,
		VU_SET_VRING_KICK, VU_SET_VRING_CALL, VU_SET_VRING_ENABLE,
	};
	int at = -1;

	for (unsigned int k = 0; k < sizeof(ring) / sizeof(ring[0]); k++) {
		int i = log_find(f, conn, ring[k]);

		if (i >= 0 && (at < 0 || i < at))
			at = i;
	}
	return at;
}

/* A round trip: the fake has finished with everything sent before. */
static int fe_sync(struct viod_fe *fe)
{
	uint64_t v;

	return viod_fe_request(fe, VU_GET_FEATURES, NULL, 0, NULL, 0, &v, sizeof(v));
}

static int attach(struct fake *f, struct viod_fe *fe, const char *tag, uint64_t pf)
{
	struct viod_fe_opts o;
	int r;

	viod_fe_opts_init(&o);
	o.mem_size = 4u << 20;
	o.timeout_ms = 3000;
	if (fake_start(f, tag, pf) < 0 || viod_fe_init(fe, &o) < 0)
		return -1;
	r = viod_fe_connect(fe, f->fk.path);
	if (r == 0)
		r = viod_fe_negotiate(fe, 0);
	if (r < 0)
		printf("# attach: %s\n", viod_fe_strerror(fe));
	return r;
}

#define PF_BASE ((1ull << VU_PF_REPLY_ACK) | (1ull << VU_PF_INFLIGHT_SHMFD))

static void test_get_inflight(void)
{
	static const struct {
		enum inf_mode mode;
		int want;
		const char *why;          /* in viod_fe_strerror() */
		const char *what;
	} bad[] = {
		{ INF_NOFD, -EPROTO, "0 fds", "reply without an fd" },
		{ INF_TWOFDS, -EPROTO, "2 fds", "reply with two fds" },
		{ INF_SMALL, -EPROTO, "need", "mmap_size below num_queues * queue region" },
		{ INF_SHORTFILE, -EPROTO, "file of", "file shorter than mmap_size" },
		{ INF_NOTREG, -EPROTO, "regular", "fd not a regular file" },
		{ INF_BADSIZE, -EPROTO, "reply size 16", "16-byte reply" },
		{ INF_ZERO, -ENOTSUP, "mmap_size 0", "mmap_size 0: no inflight tracking" },
	};
	uint64_t qsz = viod_inflight_queue_size(128);
	struct viod_inflight_queue *iq;
	struct fake f;
	struct viod_fe fe;
	int before = test_count_fds(), fds_now, old_fd;
	ino_t first_ino;

	if (!ok(attach(&f, &fe, "get", PF_BASE) == 0, "get: attach")) {
		viod_fe_disconnect(&fe);
		fake_stop(&f);
		return;
	}
	ok(viod_fe_has_protocol(&fe, VU_PF_INFLIGHT_SHMFD), "INFLIGHT_SHMFD acked when offered");
	is(viod_fe_get_inflight(&fe, 0, 128), -EINVAL, "0 queues refused");
	is(viod_fe_get_inflight(&fe, 2, 100), -EINVAL, "queue size not a power of two refused");
	is(viod_fe_set_inflight(&fe), -EINVAL, "SET_INFLIGHT_FD without a region refused");
	ok(viod_fe_inflight_queue(&fe, 0) == NULL, "no region: no queue region");

	for (unsigned int i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int r;

		atomic_store(&f.inf_mode, bad[i].mode);
		fds_now = test_count_fds();
		r = viod_fe_get_inflight(&fe, 2, 128);
		if (!ok(r == bad[i].want && strstr(viod_fe_strerror(&fe), bad[i].why),
			"%s: %d", bad[i].what, r))
			printf("# %s\n", viod_fe_strerror(&fe));
		ok(fe.inflight.map == NULL && fe.inflight.fd == -1 && fe.inflight.size == 0,
		   "%s: nothing kept", bad[i].what);
		is(fe_sync(&fe), 0, "connection still usable");
		is(test_count_fds(), fds_now, "no fd leaked");
	}

	atomic_store(&f.inf_mode, INF_GOOD);
	is(viod_fe_get_inflight(&fe, 2, 128), 0, "good reply accepted");
	pthread_mutex_lock(&f.fk.lock);
	is(f.get_size, VU_INFLIGHT_SIZE, "GET_INFLIGHT_FD payload is 24 bytes");
	ok(f.get_req.num_queues == 2 && f.get_req.queue_size == 128 &&
	   f.get_req.mmap_size == 0 && f.get_req.mmap_offset == 0,
	   "GET_INFLIGHT_FD asks for 2 queues of 128, sizes 0");
	first_ino = f.inflight_ino;
	pthread_mutex_unlock(&f.fk.lock);
	ok(fe.inflight.fd >= 0 && fd_ino(fe.inflight.fd) == first_ino,
	   "the region's fd is kept");
	is(fe.inflight.size, 2 * qsz, "mmap_size kept");
	ok(fe.inflight.num_queues == 2 && fe.inflight.queue_size == 128,
	   "num_queues and queue_size kept");
	iq = viod_fe_inflight_queue(&fe, 0);
	ok(iq && iq->version == VU_INFLIGHT_VERSION && iq->desc_num == 128,
	   "queue 0's region: the back-end's header");
	iq = viod_fe_inflight_queue(&fe, 1);
	ok(iq && (uint8_t *)iq == fe.inflight.map + qsz, "queue 1's region one queue size on");
	ok(iq && iq->desc[3].inflight == 1 && iq->desc[3].counter == 7,
	   "queue 1: the request the back-end marked in flight");
	ok(viod_fe_inflight_queue(&fe, 2) == NULL, "queue 2: beyond the region");

	is(viod_fe_set_inflight(&fe), 0, "SET_INFLIGHT_FD");
	pthread_mutex_lock(&f.fk.lock);
	is(f.nset, 1, "one SET_INFLIGHT_FD");
	is(f.set_size, VU_INFLIGHT_SIZE, "its payload is 24 bytes");
	is(f.set_nfds, 1, "with one fd");
	ok(f.set_ino == first_ino, "the file GET_INFLIGHT_FD gave (st_ino)");
	ok(f.set_req.mmap_size == 2 * qsz && f.set_req.mmap_offset == 0 &&
	   f.set_req.num_queues == 2 && f.set_req.queue_size == 128 &&
	   f.set_req.padding == 0, "the description the back-end gave");
	pthread_mutex_unlock(&f.fk.lock);

	/* A second GET replaces the region; the first is released. */
	old_fd = fe.inflight.fd;
	fds_now = test_count_fds();
	is(viod_fe_get_inflight(&fe, 1, 64), 0, "GET_INFLIGHT_FD again");
	ok(fd_ino(fe.inflight.fd) != first_ino && fe.inflight.num_queues == 1,
	   "the new region replaces the old");
	is(fe_sync(&fe), 0, "sync");
	ok(test_count_fds() == fds_now && fcntl(old_fd, F_GETFD) < 0,
	   "the old region's fd (%d) closed", old_fd);

	is(viod_fe_disconnect(&fe), 0, "disconnect");
	ok(fe.inflight.map == NULL && fe.inflight.fd == -1, "disconnect released the region");
	fake_stop(&f);
	is(test_count_fds(), before, "every fd closed");
}

static void test_not_offered(void)
{
	struct fake f;
	struct viod_fe fe;

	if (!ok(attach(&f, &fe, "nopf", 1ull << VU_PF_REPLY_ACK) == 0, "no-pf: attach")) {
		viod_fe_disconnect(&fe);
		fake_stop(&f);
		return;
	}
	ok(!viod_fe_has_protocol(&fe, VU_PF_INFLIGHT_SHMFD), "INFLIGHT_SHMFD not acked unasked");
	is(viod_fe_get_inflight(&fe, 1, 8), -ENOTSUP, "GET_INFLIGHT_FD: -ENOTSUP");
	is(log_find(&f, 1, VU_GET_INFLIGHT_FD), -1, "and not sent");
	viod_fe_disconnect(&fe);
	fake_stop(&f);
}

static void test_reset_releases(void)
{
	struct fake f;
	struct viod_fe fe;

	if (!ok(attach(&f, &fe, "reset", PF_BASE | (1ull << VU_PF_RESET_DEVICE)) == 0,
		"reset: attach")) {
		viod_fe_disconnect(&fe);
		fake_stop(&f);
		return;
	}
	is(viod_fe_get_inflight(&fe, 1, 8), 0, "GET_INFLIGHT_FD");
	is(viod_fe_reset_device(&fe), 0, "RESET_DEVICE");
	ok(fe.inflight.map == NULL && fe.inflight.fd == -1,
	   "a reset device's region is released");
	is(viod_fe_negotiate(&fe, 0), 0, "negotiate again");
	is(log_find(&f, 1, VU_SET_INFLIGHT_FD), -1, "no stale region sent");
	viod_fe_disconnect(&fe);
	fake_stop(&f);
}

static void test_reconnect(void)
{
	struct fake f;
	struct viod_fe fe;
	struct viod_vqd *vqd;
	struct vhost_vring_addr addr1;
	uint64_t gpa[3], kicks = 0;
	void *cookie;
	uint32_t len;
	uint16_t base = 0;
	ino_t ino;
	int before = test_count_fds(), at_mem, at_inf, at_ring, kfd, r;
	unsigned int free_before;

	if (!ok(attach(&f, &fe, "reconnect", PF_BASE) == 0, "reconnect: attach")) {
		viod_fe_disconnect(&fe);
		fake_stop(&f);
		return;
	}
	is(viod_fe_get_inflight(&fe, 1, 8), 0, "GET_INFLIGHT_FD");
	is(viod_fe_set_inflight(&fe), 0, "SET_INFLIGHT_FD");
	is(viod_fe_queue_setup(&fe, 0, 8), 0, "queue 0 set up, 8 entries");
	is(viod_fe_driver_ok(&fe), 0, "DRIVER_OK");
	is(viod_fe_queue_resume(&fe, 0), -EINVAL, "resume of a queue never suspended refused");
	vqd = viod_fe_vqd(&fe, 0);
	for (unsigned int i = 0; i < 3; i++) {
		struct viod_vqd_buf b = { .len = 16, .writable = true };

		ok(viod_fe_alloc(&fe, 16, 16, &gpa[i]) != NULL, "buffer %u", i);
		b.gpa = gpa[i];
		ok(viod_vqd_add(vqd, &b, 1, (void *)(uintptr_t)(i + 1)) == (int)i,
		   "chain %u posted", i);
	}
	is(viod_fe_kick(&fe, 0), 1, "kicked");
	is(fake_serve(&f, 0, 2, 1), 2, "the back-end pops two chains, uses one");
	pthread_mutex_lock(&f.fk.lock);
	addr1 = f.fk.q[0].addr;
	pthread_mutex_unlock(&f.fk.lock);
	ino = fd_ino(fe.inflight.fd);
	free_before = vqd->num_free;

	/* The back-end is lost: reconnect without a word to it. */
	is(viod_fe_reconnect(&fe, f.fk.path), 0, "viod_fe_reconnect");
	ok(fe.queues[0].ready && fe.queues[0].suspended, "queue 0 suspended");
	ok(fe.queues[0].kick_fd == -1 && fe.queues[0].call_fd == -1, "its eventfds closed");
	ok(viod_fe_vqd(&fe, 0) == vqd && vqd->num_free == free_before,
	   "driver-side ring kept, chains still outstanding");
	ok(fe.inflight.map && fd_ino(fe.inflight.fd) == ino, "inflight region kept");
	is(viod_fe_kick(&fe, 0), 0, "kick while suspended: nothing to kick");
	is(viod_vqd_get_used(vqd, &cookie, &len), 1, "the chain used before is still there");
	ok(cookie == (void *)1 && len == 4, "chain 0, 4 bytes");
	is(viod_fe_wait(&fe, 0, 0), -ENOTCONN, "wait on a suspended queue: -ENOTCONN");
	is(viod_fe_queue_resume(&fe, 0), -EINVAL, "resume before negotiation refused");

	is(viod_fe_negotiate(&fe, 0), 0, "negotiate with the new back-end");
	is(log_find(&f, 1, VU_GET_VRING_BASE), -1, "nothing asked of the old back-end");
	at_mem = log_find(&f, 2, VU_SET_MEM_TABLE);
	at_inf = log_find(&f, 2, VU_SET_INFLIGHT_FD);
	ok(at_mem >= 0 && at_inf > at_mem, "SET_INFLIGHT_FD after the memory table (%d, %d)",
	   at_mem, at_inf);
	pthread_mutex_lock(&f.fk.lock);
	ok(f.nset == 2 && f.set_ino == ino && f.set_req.num_queues == 1 &&
	   f.set_req.queue_size == 8, "the same region, the same description");
	pthread_mutex_unlock(&f.fk.lock);

	is(viod_fe_queue_resume(&fe, 0), 0, "queue 0 resumed");
	at_ring = log_first_ring(&f, 2);
	ok(at_ring > at_inf, "SET_INFLIGHT_FD before any ring (%d, %d)", at_inf, at_ring);
	ok(!fe.queues[0].suspended && fe.queues[0].kick_fd >= 0, "queue 0 running");
	pthread_mutex_lock(&f.fk.lock);
	is(f.fk.q[0].num, 8, "SET_VRING_NUM 8");
	ok(f.fk.q[0].addr.desc_user_addr == addr1.desc_user_addr &&
	   f.fk.q[0].addr.avail_user_addr == addr1.avail_user_addr &&
	   f.fk.q[0].addr.used_user_addr == addr1.used_user_addr, "the same ring address");
	is(f.fk.q[0].base, 1, "SET_VRING_BASE: the used idx (1), not 0 or what was popped (2)");
	ok(f.fk.q[0].running, "the new back-end started the ring");
	kfd = f.fk.q[0].kick;
	pthread_mutex_unlock(&f.fk.lock);
	ok(kfd >= 0 && read(kfd, &kicks, sizeof(kicks)) == sizeof(kicks) && kicks >= 1,
	   "kicked once for the chains outstanding");
	ok(viod_fe_vqd(&fe, 0) == vqd, "the same driver-side ring");

	/* The new back-end finishes what the old one left. */
	is(fake_serve(&f, 0, 8, 8), 2, "the new back-end pops the two chains left");
	is(viod_fe_wait(&fe, 0, 2000), 1, "used entries arrive");
	r = viod_vqd_get_used(vqd, &cookie, &len);
	ok(r == 1 && cookie == (void *)2, "chain 1, popped before but never used");
	r = viod_vqd_get_used(vqd, &cookie, &len);
	ok(r == 1 && cookie == (void *)3, "chain 2");
	is(vqd->num_free, 8, "every descriptor back");
	is(viod_fe_queue_stop(&fe, 0, &base), 0, "GET_VRING_BASE on the new back-end");
	is(base, 3, "its next avail index is 3");

	is(viod_fe_disconnect(&fe), 0, "disconnect");
	fake_stop(&f);
	is(test_count_fds(), before, "every fd closed");
}

/*
 * A ring laid with EVENT_IDX cannot resume on a back-end without it; a
 * queue never resumed is released without GET_VRING_BASE.
 */
static void test_reconnect_no_resume(void)
{
	struct fake f;
	struct viod_fe fe;
	uint16_t base = 0xffff;
	int before = test_count_fds();

	if (!ok(attach(&f, &fe, "noresume", PF_BASE) == 0, "no-resume: attach")) {
		viod_fe_disconnect(&fe);
		fake_stop(&f);
		return;
	}
	is(viod_fe_queue_setup(&fe, 0, 8), 0, "queue 0 set up");
	is(viod_fe_queue_setup(&fe, 1, 8), 0, "queue 1 set up");
	pthread_mutex_lock(&f.fk.lock);
	f.fk.features &= ~(1ull << VIRTIO_RING_F_EVENT_IDX);   /* the next back-end's */
	pthread_mutex_unlock(&f.fk.lock);
	is(viod_fe_reconnect(&fe, f.fk.path), 0, "reconnect");
	is(viod_fe_negotiate(&fe, 0), 0, "negotiate");
	is(log_find(&f, 2, VU_SET_INFLIGHT_FD), -1, "no region, no SET_INFLIGHT_FD");
	ok(!viod_fe_has_feature(&fe, VIRTIO_RING_F_EVENT_IDX), "EVENT_IDX not offered now");
	is(viod_fe_queue_resume(&fe, 0), -ENOTSUP, "resume of an EVENT_IDX ring refused");
	ok(fe.queues[0].suspended && fe.queues[0].kick_fd == -1, "queue 0 stays suspended");
	is(log_first_ring(&f, 2), -1, "no ring message sent");
	is(viod_fe_queue_stop(&fe, 1, &base), 0, "stop suspended queue 1");
	is(base, 0, "its base is its used idx");
	is(viod_fe_disconnect(&fe), 0, "disconnect");
	is(log_find(&f, 2, VU_GET_VRING_BASE), -1, "no GET_VRING_BASE for suspended queues");
	fake_stop(&f);
	is(test_count_fds(), before, "every fd closed");
}

int main(void)
{
	test_get_inflight();
	test_not_offered();
	test_reset_releases();
	test_reconnect();
	test_reconnect_no_resume();
	return tap_done();
}
