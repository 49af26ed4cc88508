/*
 * The vhost-user core with real threads (a control loop and a device's
 * worker) and the reference front-end on a UNIX socket, around a test
 * device, "hold", that keeps every request it pops until the test says
 * which to complete (as a block device waits for I/O). Checked:
 * - GET_VRING_BASE is answered only once the ring's held requests are
 *   done, without stalling anything: the reply is deferred;
 * - a memory-table change is acked only once no request uses the old
 *   mapping;
 * - inflight tracking: a front-end that crashes with requests in flight
 *   reconnects with its inflight region (as QEMU does after losing the
 *   back-end), and the requests not completed are resubmitted in their
 *   original order, the completed ones never; also when the back-end had
 *   died between publishing a batch and clearing its inflight entries;
 * - completions from an external event source (the worker's own loop);
 * - a front-end configuring more queues than the device serves is kept.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>
#include <glib.h>

#include "guest/frontend.h"
#include "tap.h"
#include "vhost/vhost.h"

#define QSIZE 64u
#define MAX_IDS 64u

/* ---- the test device ---- */

static struct {
	pthread_mutex_t lock;
	uint32_t popped[256];       /* request ids in pop order (since reset) */
	unsigned int npopped;
	struct viod_req *held[MAX_IDS];
	uint32_t held_id[MAX_IDS];
	unsigned int nheld;
	uint32_t complete[MAX_IDS]; /* ids to complete, in this order */
	unsigned int ncomplete;
	bool complete_all;
	unsigned int resets;
} hold = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* The completion source (see io_poll). */
static int io_fd = -1;
static struct viod_queue *io_q;

static void complete_one(struct viod_queue *q, unsigned int i)
{
	struct viod_req *r = hold.held[i];

	viod_iov_from_buf(r->iov + r->out_num, r->in_num, 0, &hold.held_id[i], 4);
	viod_queue_complete(q, r, 4);
	hold.held[i] = hold.held[hold.nheld - 1];
	hold.held_id[i] = hold.held_id[hold.nheld - 1];
	hold.nheld--;
}

/* Pops everything; completes what the test asked for; holds the rest. */
static enum viod_serve hold_queue(struct viod_dev *dev, struct viod_queue *q)
{
	bool progress = false;
	struct viod_req *r;

	pthread_mutex_lock(&hold.lock);
	io_q = q;
	while (hold.nheld < MAX_IDS && (r = viod_queue_pop(q))) {
		uint32_t id = UINT32_MAX;

		viod_iov_to_buf(r->iov, r->out_num, 0, &id, 4);
		if (hold.npopped < G_N_ELEMENTS(hold.popped))
			hold.popped[hold.npopped++] = id;
		hold.held[hold.nheld] = r;
		hold.held_id[hold.nheld++] = id;
		progress = true;
	}
	for (unsigned int c = 0; c < hold.ncomplete; c++)
		for (unsigned int i = 0; i < hold.nheld; i++)
			if (hold.held_id[i] == hold.complete[c]) {
				complete_one(q, i);
				progress = true;
				break;
			}
	hold.ncomplete = 0;
	while (hold.complete_all && hold.nheld) {
		complete_one(q, 0);
		progress = true;
	}
	pthread_mutex_unlock(&hold.lock);
	if (progress)
		return VIOD_SERVE_PROGRESS;
	/* Holding requests is no reason not to take more (as a disk with I/O
	 * in flight); only a full hand is. */
	return hold.nheld == MAX_IDS ? VIOD_SERVE_BLOCKED : VIOD_SERVE_IDLE;
}

/*
 * An external event source, as a disk's completion queue: when the test
 * writes the eventfd, the worker's poll completes every held request.
 */

static enum viod_serve io_poll(void *opaque)
{
	uint64_t v = 0;
	bool progress = false;

	if (read(io_fd, &v, sizeof(v)) != sizeof(v) || !v)
		return VIOD_SERVE_IDLE;
	pthread_mutex_lock(&hold.lock);
	while (io_q && hold.nheld) {
		complete_one(io_q, 0);
		progress = true;
	}
	pthread_mutex_unlock(&hold.lock);
	if (io_q)
		viod_queue_flush(io_q);
	return progress ? VIOD_SERVE_PROGRESS : VIOD_SERVE_IDLE;
}

static void hold_worker_start(struct viod_dev *dev, unsigned int worker)
{
	io_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (io_fd < 0 || viod_worker_add_source(dev, io_fd, io_poll, NULL) < 0)
		printf("Bail out! worker_start: no source\n");
}

static void hold_worker_stop(struct viod_dev *dev, unsigned int worker)
{
	close(io_fd);
	io_fd = -1;
}

static void hold_dp_reset(struct viod_dev *dev)
{
	pthread_mutex_lock(&hold.lock);
	hold.nheld = 0;
	hold.npopped = 0;
	hold.resets++;
	io_q = NULL;
	pthread_mutex_unlock(&hold.lock);
}

static const struct viod_device_ops hold_ops = {
	.type = "hold",
	.virtio_id = 42,
	.num_queues = 1,
	.queue_depth = QSIZE,
	.protocol_features = 1ull << VU_PF_INFLIGHT_SHMFD,
	.queue_handler = hold_queue,
	.dp_reset = hold_dp_reset,
	.worker_start = hold_worker_start,
	.worker_stop = hold_worker_stop,
};

/* ---- the daemon side: a control loop thread and the device ---- */

static struct viod_dev *dev;
static GMainLoop *loop;
static char sock_path[128];

static void *control_thread(void *arg)
{
	g_main_loop_run(loop);
	return NULL;
}

static gboolean quit_loop(gpointer data)
{
	g_main_loop_quit(loop);
	return G_SOURCE_REMOVE;
}

static void tell(const uint32_t *ids, unsigned int n, bool all)
{
	pthread_mutex_lock(&hold.lock);
	if (n)
		memcpy(hold.complete, ids, n * sizeof(*ids));
	hold.ncomplete = n;
	hold.complete_all = all;
	pthread_mutex_unlock(&hold.lock);
	viod_dev_queue_wake(dev, 0);
}

/* Polls (5 s at most) until the device popped n requests since its reset. */
static bool wait_popped(unsigned int n)
{
	for (int i = 0; i < 5000; i++) {
		unsigned int have;

		pthread_mutex_lock(&hold.lock);
		have = hold.npopped;
		pthread_mutex_unlock(&hold.lock);
		if (have >= n)
			return true;
		usleep(1000);
	}
	return false;
}

/* ---- the front-end side ---- */

struct req {
	uint32_t id;
	uint32_t out;
};

static int post(struct viod_fe *fe, uint32_t id, uint16_t *head)
{
	uint64_t gpa;
	struct req *r = viod_fe_alloc(fe, sizeof(*r), 8, &gpa);
	struct viod_vqd_buf b[2];
	int h;

	if (!r)
		return -ENOMEM;
	r->id = id;
	r->out = UINT32_MAX;
	b[0] = (struct viod_vqd_buf){ .gpa = gpa, .len = 4, .writable = false };
	b[1] = (struct viod_vqd_buf){ .gpa = gpa + 4, .len = 4, .writable = true };
	h = viod_vqd_add(viod_fe_vqd(fe, 0), b, 2, r);
	if (h < 0)
		return h;
	if (head)
		*head = (uint16_t)h;
	return viod_fe_kick(fe, 0) < 0 ? -EIO : 0;
}

/* Reaps used entries until n arrived (or 5 s): ids completed go in seen. */
static unsigned int reap(struct viod_fe *fe, unsigned int n, unsigned int *seen)
{
	unsigned int got = 0;

	while (got < n && viod_fe_wait(fe, 0, 5000) == 1) {
		void *cookie;
		uint32_t len;

		while (viod_vqd_get_used(viod_fe_vqd(fe, 0), &cookie, &len) == 1) {
			struct req *r = cookie;

			if (len == 4 && r->out == r->id && r->id < MAX_IDS)
				seen[r->id]++;
			got++;
		}
	}
	return got;
}

static bool attach(struct viod_fe *fe, bool inflight)
{
	struct viod_fe_opts o;

	viod_fe_opts_init(&o);
	o.mem_size = 4u << 20;
	if (viod_fe_init(fe, &o) < 0 || viod_fe_connect(fe, sock_path) < 0 ||
	    viod_fe_negotiate(fe, 0) < 0)
		return false;
	if (inflight && (viod_fe_get_inflight(fe, 1, QSIZE) < 0 || viod_fe_set_inflight(fe) < 0))
		return false;
	return viod_fe_queue_setup(fe, 0, QSIZE) == 0 && viod_fe_driver_ok(fe) == 0;
}

/* No reply within ms (the request is being held back), else the reply. */
static int recv_within(struct viod_fe *fe, struct viod_vu_msg *m, int ms)
{
	return viod_fe_msg_recv(fe->sock, m, NULL, NULL, ms);
}

static void test_deferred_replies(void)
{
	struct viod_fe fe;
	struct viod_vu_msg m;
	unsigned int seen[MAX_IDS] = { 0 };
	struct {
		uint32_t nregions, padding;
		struct viod_vu_region r[VIOD_FE_MAX_REGIONS];
	} __attribute__((packed)) mt = { 0 };
	int fds[VIOD_FE_MAX_REGIONS];
	uint64_t ack = 99;
	int rc;

	if (!attach(&fe, false)) {
		ok(false, "deferred: attach: %s", viod_fe_strerror(&fe));
		viod_fe_disconnect(&fe);
		return;
	}
	for (uint32_t id = 0; id < 4; id++)
		post(&fe, id, NULL);
	ok(wait_popped(4), "deferred: the device holds 4 requests");

	/* The memory table again, acked only once nothing uses the old one. */
	mt.nregions = fe.nregions;
	for (unsigned int i = 0; i < fe.nregions; i++) {
		mt.r[i] = (struct viod_vu_region){
			.gpa = fe.regions[i].gpa, .size = fe.regions[i].size,
			.uva = (uintptr_t)fe.regions[i].host,
			.mmap_offset = fe.regions[i].mmap_offset,
		};
		fds[i] = fe.memfd;
	}
	viod_fe_msg_send(fe.sock, VU_SET_MEM_TABLE, VU_FLAG_VERSION | VU_FLAG_NEED_REPLY,
			 8 + fe.nregions * 32, &mt, 8 + fe.nregions * 32, fds, fe.nregions);
	rc = recv_within(&fe, &m, 300);
	is(rc, -ETIMEDOUT, "deferred: SET_MEM_TABLE not acked while requests use the old table");
	tell((uint32_t[]){ 1 }, 1, false);
	is(reap(&fe, 1, seen), 1, "deferred: one request completed meanwhile");
	rc = recv_within(&fe, &m, 300);
	is(rc, -ETIMEDOUT, "deferred: still not acked with three held");
	tell(NULL, 0, true);
	rc = recv_within(&fe, &m, 5000);
	if (rc == 0)
		memcpy(&ack, &m.u, 8);
	ok(rc == 0 && m.hdr.request == VU_SET_MEM_TABLE && m.hdr.size == 8 && ack == 0,
	   "deferred: acked (0) once the old table's requests completed");
	is(reap(&fe, 3, seen), 3, "deferred: the other three completed");
	tell(NULL, 0, false);

	/* GET_VRING_BASE waits for held requests; the ring's base counts them. */
	for (uint32_t id = 10; id < 13; id++)
		post(&fe, id, NULL);
	ok(wait_popped(3 + 4), "deferred: three more held");
	viod_fe_msg_send(fe.sock, VU_GET_VRING_BASE, VU_FLAG_VERSION, 8,
			 &(struct vhost_vring_state){ 0, 0 }, 8, NULL, 0);
	rc = recv_within(&fe, &m, 300);
	is(rc, -ETIMEDOUT, "deferred: GET_VRING_BASE not answered while requests are held");
	tell(NULL, 0, true);
	rc = recv_within(&fe, &m, 5000);
	ok(rc == 0 && m.hdr.request == VU_GET_VRING_BASE && m.hdr.size == 8 &&
	   m.u.state.num == 7, "deferred: answered once they completed (base %u)", m.u.state.num);
	is(reap(&fe, 3, seen), 3, "deferred: and the guest got them");
	tell(NULL, 0, false);
	viod_fe_disconnect(&fe);
}

static unsigned int inflight_count(struct viod_fe *fe)
{
	const struct viod_inflight_queue *q = viod_fe_inflight_queue(fe, 0);
	unsigned int n = 0;

	for (unsigned int i = 0; q && i < QSIZE; i++)
		n += q->desc[i].inflight;
	return n;
}

static void test_inflight_crash(void)
{
	struct viod_fe fe;
	unsigned int seen[MAX_IDS] = { 0 };
	uint16_t head[MAX_IDS];
	struct viod_inflight_queue *q;
	const uint32_t want[] = { 0, 1, 3, 4, 6, 7 };
	bool order = true, once = true;
	unsigned int resets;

	if (!attach(&fe, true)) {
		ok(false, "inflight: attach: %s", viod_fe_strerror(&fe));
		viod_fe_disconnect(&fe);
		return;
	}
	ok(viod_fe_has_protocol(&fe, VU_PF_INFLIGHT_SHMFD), "inflight: INFLIGHT_SHMFD negotiated");
	for (uint32_t id = 0; id < 8; id++)
		post(&fe, id, &head[id]);
	ok(wait_popped(8), "inflight: the device popped 8 requests");
	is(inflight_count(&fe), 8, "inflight: 8 marked in flight in the region");
	tell((uint32_t[]){ 5, 2 }, 2, false);
	is(reap(&fe, 2, seen), 2, "inflight: requests 5 and 2 completed");
	q = viod_fe_inflight_queue(&fe, 0);
	is(inflight_count(&fe), 6, "inflight: 6 left in flight");
	ok(q && q->used_idx == 2, "inflight: the region's used_idx follows the used ring");

	/* As if the back-end had died after publishing request 5's completion
	 * and before clearing its entry: recovery must not resubmit it. */
	q->desc[head[5]].inflight = 1;
	q->used_idx = 1;
	q->last_batch_head = head[5];

	pthread_mutex_lock(&hold.lock);
	resets = hold.resets;
	pthread_mutex_unlock(&hold.lock);
	/* The front-end crashes (no GET_VRING_BASE) and comes back. */
	ok(viod_fe_reconnect(&fe, sock_path) == 0, "inflight: reconnected");
	ok(viod_fe_negotiate(&fe, 0) == 0, "inflight: negotiated again (SET_INFLIGHT_FD)");
	ok(viod_fe_queue_resume(&fe, 0) == 0, "inflight: queue resumed at base = used idx");
	viod_fe_driver_ok(&fe);
	ok(wait_popped(6), "inflight: the device got 6 requests back");
	pthread_mutex_lock(&hold.lock);
	ok(hold.resets > resets, "inflight: the device was reset at the disconnect");
	for (unsigned int i = 0; i < 6; i++)
		order &= hold.npopped >= 6 && hold.popped[i] == want[i];
	ok(order && hold.npopped == 6,
	   "inflight: resubmitted in their original order, 5 and 2 not (%u: %u %u %u %u %u %u)",
	   hold.npopped, hold.popped[0], hold.popped[1], hold.popped[2], hold.popped[3],
	   hold.popped[4], hold.popped[5]);
	pthread_mutex_unlock(&hold.lock);
	post(&fe, 8, NULL);
	post(&fe, 9, NULL);
	ok(wait_popped(8), "inflight: new requests follow");
	pthread_mutex_lock(&hold.lock);
	ok(hold.popped[6] == 8 && hold.popped[7] == 9, "inflight: after the resubmitted ones");
	pthread_mutex_unlock(&hold.lock);
	tell(NULL, 0, true);
	is(reap(&fe, 8, seen), 8, "inflight: the 8 outstanding requests completed");
	for (uint32_t id = 0; id < 10; id++)
		once &= seen[id] == 1;
	ok(once, "inflight: every request completed exactly once");
	is(inflight_count(&fe), 0, "inflight: nothing left in flight");
	tell(NULL, 0, false);
	viod_fe_disconnect(&fe);
}

/* Completions that come from an event source, not from the ring. */
static void test_source(void)
{
	struct viod_fe fe;
	struct viod_vu_msg m;
	unsigned int seen[MAX_IDS] = { 0 };
	uint64_t one = 1;
	int rc;

	if (!attach(&fe, false)) {
		ok(false, "source: attach: %s", viod_fe_strerror(&fe));
		viod_fe_disconnect(&fe);
		return;
	}
	for (uint32_t id = 30; id < 34; id++)
		post(&fe, id, NULL);
	ok(wait_popped(4), "source: four requests held");
	ok(write(io_fd, &one, sizeof(one)) == sizeof(one), "source: completion signalled");
	is(reap(&fe, 4, seen), 4, "source: the worker's poll completed them");
	ok(seen[30] && seen[31] && seen[32] && seen[33], "source: the right ones");

	/* A stop that waits for I/O ends when the source completes it. */
	post(&fe, 34, NULL);
	ok(wait_popped(5), "source: one more held");
	viod_fe_msg_send(fe.sock, VU_GET_VRING_BASE, VU_FLAG_VERSION, 8,
			 &(struct vhost_vring_state){ 0, 0 }, 8, NULL, 0);
	is(recv_within(&fe, &m, 300), -ETIMEDOUT, "source: GET_VRING_BASE waits for the I/O");
	ok(write(io_fd, &one, sizeof(one)) == sizeof(one), "source: completion signalled");
	rc = recv_within(&fe, &m, 5000);
	ok(rc == 0 && m.hdr.request == VU_GET_VRING_BASE && m.u.state.num == 5,
	   "source: answered once the source completed it (base %u)", m.u.state.num);
	is(reap(&fe, 1, seen), 1, "source: and the guest got it");
	viod_fe_disconnect(&fe);
}

/* A front-end setting up more queues than the device serves is kept. */
static void test_extra_queues(void)
{
	struct viod_fe fe;
	unsigned int seen[MAX_IDS] = { 0 };

	if (!attach(&fe, false)) {
		ok(false, "extra: attach: %s", viod_fe_strerror(&fe));
		viod_fe_disconnect(&fe);
		return;
	}
	/* As QEMU's generic device with num_vqs beyond the device's: it does
	 * not look at GET_QUEUE_NUM. */
	fe.queue_num = 0;
	ok(viod_fe_queue_setup(&fe, 1, 16) == 0 && viod_fe_queue_setup(&fe, 7, 16) == 0,
	   "extra: queues 1 and 7 of a one-queue device set up");
	post(&fe, 20, NULL);
	tell(NULL, 0, true);
	is(reap(&fe, 1, seen), 1, "extra: queue 0 still served");
	ok(viod_fe_queue_stop(&fe, 7, NULL) == 0, "extra: GET_VRING_BASE on an idle extra queue");
	tell(NULL, 0, false);
	ok(viod_fe_disconnect(&fe) == 0, "extra: clean disconnect");
}

int main(void)
{
	char dir[] = "/tmp/viod-core.XXXXXX";
	g_autoptr(GError) err = NULL;
	pthread_t ctl;

	if (!mkdtemp(dir))
		return 1;
	snprintf(sock_path, sizeof(sock_path), "%s/hold.sock", dir);
	dev = viod_dev_new(&hold_ops, "hold0");
	loop = g_main_loop_new(NULL, FALSE);
	if (viod_workers_start(dev) < 0 || viod_server_listen(dev, sock_path, &err) < 0) {
		printf("Bail out! device: %s\n", err ? err->message : "workers");
		return 1;
	}
	pthread_create(&ctl, NULL, control_thread, NULL);

	test_deferred_replies();
	test_inflight_crash();
	test_source();
	test_extra_queues();

	g_idle_add(quit_loop, NULL);
	pthread_join(ctl, NULL);
	viod_server_close(dev);
	viod_workers_stop(dev);
	viod_dev_free(dev);
	g_main_loop_unref(loop);
	rmdir(dir);
	return tap_done();
}
