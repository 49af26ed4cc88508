/*
 * Workers: the data path. A device has workers=N threads (default 1);
 * each serves the rings the device assigns to it (queue_worker) and the
 * external sources it was given (io_uring completions, tap fds), in one
 * loop. Worker 0, the primary, also runs the device's commands (vhost-user
 * requests that touch the data path), parking the device's other workers
 * around them. A worker serves one device only, so nothing a device's
 * guest or front-end does on its workers can delay another device.
 *
 * Who waits on whom: a worker sleeps in epoll_wait on its wake eventfd,
 * the kick eventfds of its rings and its sources' fds; a parked worker
 * waits for its primary (park_lock); the primary waits for its parked
 * siblings to reach a safe point (at most one bounded handler call). No
 * worker waits on the control thread: commands come in and completions go
 * out through the device's queues (cmd_lock, held for a list operation)
 * and the notify eventfd.
 *
 * The loop polls its rings for a bounded, adaptive time after the last
 * piece of work (as QEMU's poll-max-ns): on these machines a kick/call
 * round trip through eventfds between two CPUs costs tens of
 * microseconds, so a short spin saves most of them under load. Then it
 * asks the guest for kicks (EVENT_IDX aware), re-checks the rings, and
 * sleeps. The window grows (doubling) when a sleep ended within it and
 * shrinks (halving) when a sleep was long; its bound is per device type
 * or option poll-us. Past its first POLL_BUSY_NS the spin yields the CPU
 * at every turn. A ring whose handler reported BLOCKED (it holds a buffer
 * on purpose, or is rate-limited) is neither polled nor re-checked: it is
 * served again after viod_dev_queue_wake(), its throttle deadline, a kick,
 * or progress elsewhere on the worker. So an idle device costs no CPU.
 */
#include "vhost.h"

#include <errno.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define POLL_GROW_START_NS 2000u
#define POLL_BUSY_NS 50000u
#define TAG_WAKE (1ull << 32)
#define TAG_SOURCE (2ull << 32)

static __thread struct viod_worker *current_worker;

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

void viod_worker_wake(struct viod_worker *w)
{
	uint64_t one = 1;

	if (w->wake_fd >= 0 && write(w->wake_fd, &one, sizeof(one)) < 0)
		(void)0; /* counter full: already awake */
}

int viod_worker_watch(struct viod_worker *w, int fd, uint64_t tag)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = tag };

	return epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

void viod_worker_unwatch(struct viod_worker *w, int fd)
{
	epoll_ctl(w->epfd, EPOLL_CTL_DEL, fd, NULL);
}

struct viod_ratelimit *viod_worker_ratelimit(const struct viod_dev *dev);
struct viod_ratelimit *viod_worker_ratelimit(const struct viod_dev *dev)
{
	struct viod_worker *w = current_worker;

	return w && w->dev == dev ? &w->rl : NULL;
}

/* ---- commands ---- */

void viod_cmd_submit(struct viod_dev *dev, struct viod_cmd *cmd)
{
	int rc;

	if (dev->inline_mode) {
		rc = viod_cmd_run(dev, cmd);
		if (rc != VIOD_CMD_DEFERRED) {
			cmd->rc = rc;
			viod_cmd_complete(dev, cmd);
		}
		return;
	}
	pthread_mutex_lock(&dev->cmd_lock);
	cmd->next = NULL;
	if (dev->cmd_tail)
		dev->cmd_tail->next = cmd;
	else
		dev->cmd_head = cmd;
	dev->cmd_tail = cmd;
	pthread_mutex_unlock(&dev->cmd_lock);
	atomic_store(&dev->cmd_ready, true);
	viod_worker_wake(&dev->workers[0]);
}

void viod_cmd_complete(struct viod_dev *dev, struct viod_cmd *cmd)
{
	uint64_t one = 1;

	pthread_mutex_lock(&dev->cmd_lock);
	cmd->next = NULL;
	if (dev->done_tail)
		dev->done_tail->next = cmd;
	else
		dev->done_head = cmd;
	dev->done_tail = cmd;
	pthread_mutex_unlock(&dev->cmd_lock);
	if (write(dev->notify_fd, &one, sizeof(one)) < 0)
		(void)0; /* counter full: the control thread will look */
}

void viod_workers_park(struct viod_dev *dev)
{
	if (dev->nworkers < 2 || dev->inline_mode)
		return;
	for (unsigned int i = 1; i < dev->nworkers; i++) {
		atomic_store(&dev->workers[i].park_req, true);
		viod_worker_wake(&dev->workers[i]);
	}
	pthread_mutex_lock(&dev->park_lock);
	for (unsigned int i = 1; i < dev->nworkers; i++)
		while (dev->workers[i].started && !dev->workers[i].parked)
			pthread_cond_wait(&dev->park_cond, &dev->park_lock);
	pthread_mutex_unlock(&dev->park_lock);
}

void viod_workers_unpark(struct viod_dev *dev)
{
	if (dev->nworkers < 2 || dev->inline_mode)
		return;
	pthread_mutex_lock(&dev->park_lock);
	for (unsigned int i = 1; i < dev->nworkers; i++)
		atomic_store(&dev->workers[i].park_req, false);
	pthread_cond_broadcast(&dev->park_cond);
	pthread_mutex_unlock(&dev->park_lock);
}

static void park_self(struct viod_worker *w)
{
	struct viod_dev *dev = w->dev;

	pthread_mutex_lock(&dev->park_lock);
	w->parked = true;
	pthread_cond_broadcast(&dev->park_cond);
	while (atomic_load(&w->park_req))
		pthread_cond_wait(&dev->park_cond, &dev->park_lock);
	w->parked = false;
	pthread_mutex_unlock(&dev->park_lock);
}

/* The primary: runs every queued command with the other workers parked. */
static bool run_commands(struct viod_dev *dev)
{
	struct viod_cmd *cmd;

	/* The polling loop asks at every turn: no lock unless one came. */
	if (!atomic_exchange(&dev->cmd_ready, false))
		return false;
	pthread_mutex_lock(&dev->cmd_lock);
	cmd = dev->cmd_head;
	dev->cmd_head = dev->cmd_tail = NULL;
	pthread_mutex_unlock(&dev->cmd_lock);
	if (!cmd)
		return false;
	viod_workers_park(dev);
	while (cmd) {
		struct viod_cmd *next = cmd->next;
		int rc = viod_cmd_run(dev, cmd);

		if (rc != VIOD_CMD_DEFERRED) {
			cmd->rc = rc;
			viod_cmd_complete(dev, cmd);
		}
		cmd = next;
	}
	viod_workers_unpark(dev);
	return true;
}

/* ---- the loop ---- */

/* A ring is worth calling now: served, not throttled, not blocked. */
static bool ring_ready(struct viod_vring *vr, uint64_t now)
{
	if (atomic_exchange_explicit(&vr->wake, false, memory_order_acq_rel) &&
	    vr->last == VIOD_SERVE_BLOCKED)
		vr->last = VIOD_SERVE_IDLE;
	if (!viod_vring_served(vr))
		return false;
	if (vr->throttle_until > now)
		return false;
	if (vr->throttle_until) {
		vr->throttle_until = 0;
		vr->last = VIOD_SERVE_IDLE;
	}
	return vr->last != VIOD_SERVE_BLOCKED || vr->state == RING_STOPPING;
}

struct source_call {
	struct viod_source *src;
	enum viod_serve result;
};

static void source_guarded(void *arg)
{
	struct source_call *c = arg;

	c->result = c->src->poll(c->src->opaque);
}

/* Polls a source; guest memory that faults under it (a front-end shrank
 * its memory) breaks the worker's rings, which are all one device's. */
static enum viod_serve poll_source(struct viod_worker *w, struct viod_source *src)
{
	struct source_call c = { .src = src, .result = VIOD_SERVE_IDLE };

	if (viod_guard_run(source_guarded, &c) == 0)
		return c.result;
	for (unsigned int i = 0; i < w->nrings; i++)
		if (w->rings[i]->mapped)
			viod_vring_break(w->rings[i]);
	return VIOD_SERVE_PROGRESS;
}

/* Runs every ready ring and source once; true if any made progress. */
static bool serve_once(struct viod_worker *w, uint64_t now, bool *polled)
{
	bool progress = false;

	*polled = false;
	for (unsigned int i = 0; i < w->nrings; i++) {
		struct viod_vring *vr = w->rings[i];

		if (!ring_ready(vr, now))
			continue;
		*polled |= vr->polled;
		vr->last = viod_vring_serve(vr);
		progress |= vr->last == VIOD_SERVE_PROGRESS;
	}
	for (unsigned int i = 0; i < w->nsources; i++) {
		if (!w->sources[i].armed ||
		    poll_source(w, &w->sources[i]) != VIOD_SERVE_PROGRESS)
			continue;
		progress = true;
		/* A source may have completed a stopping ring's last request. */
		for (unsigned int r = 0; r < w->nrings; r++)
			viod_vring_check_stop(w->rings[r]);
	}
	if (progress)
		/* Progress may have freed what a blocked ring waited for. */
		for (unsigned int i = 0; i < w->nrings; i++)
			if (w->rings[i]->last == VIOD_SERVE_BLOCKED && !w->rings[i]->throttle_until)
				w->rings[i]->last = VIOD_SERVE_IDLE;
	return progress;
}

/* Enables kicks on the idle rings; returns chains already waiting. */
static unsigned int arm_rings(struct viod_worker *w, bool enable)
{
	unsigned int pending = 0;

	for (unsigned int i = 0; i < w->nrings; i++) {
		struct viod_vring *vr = w->rings[i];

		if (!viod_vring_served(vr) || (enable && vr->last == VIOD_SERVE_BLOCKED))
			continue;
		pending += viod_vring_pending(vr, enable);
	}
	return pending;
}

/* After announcing sleep: a viod_dev_queue_wake() that saw us awake. */
static bool rings_woken(struct viod_worker *w)
{
	for (unsigned int i = 0; i < w->nrings; i++)
		if (atomic_load(&w->rings[i]->wake))
			return true;
	return false;
}

/* Milliseconds until the earliest throttle deadline (-1: none). */
static int sleep_timeout(struct viod_worker *w, uint64_t now, bool polled)
{
	uint64_t first = UINT64_MAX;

	for (unsigned int i = 0; i < w->nrings; i++) {
		struct viod_vring *vr = w->rings[i];

		if (viod_vring_served(vr) && vr->throttle_until && vr->throttle_until < first)
			first = vr->throttle_until;
	}
	if (polled)
		return 1; /* a ring without a kick fd: keep looking */
	if (first == UINT64_MAX)
		return -1;
	return first <= now ? 0 : (int)((first - now + 999999) / 1000000);
}

/* Clears the eventfds epoll reported; a kick unblocks its ring. */
static void drain(struct viod_worker *w, const struct epoll_event *ev, int n)
{
	struct viod_dev *dev = w->dev;

	for (int i = 0; i < n; i++) {
		uint64_t tag = ev[i].data.u64, v;
		int fd = -1;

		if (tag == TAG_WAKE) {
			fd = w->wake_fd;
		} else if (tag < VIOD_MAX_VRINGS && dev->vrings[tag]) {
			struct viod_vring *vr = dev->vrings[tag];

			fd = vr->kick_fd;
			if (vr->last == VIOD_SERVE_BLOCKED && !vr->throttle_until)
				vr->last = VIOD_SERVE_IDLE;
		}
		/* Kick fds are non-blocking (set when received). */
		if (fd >= 0 && read(fd, &v, sizeof(v)) < 0)
			(void)0; /* spurious wake-up */
	}
}

int viod_worker_add_source(struct viod_dev *dev, int fd,
			   enum viod_serve (*poll)(void *opaque), void *opaque)
{
	struct viod_worker *w = current_worker;
	int rc;

	if (!w || w->dev != dev)
		return -EPERM;
	if (w->nsources == VIOD_WORKER_MAX_SOURCES)
		return -ENOSPC;
	rc = viod_worker_watch(w, fd, TAG_SOURCE | w->nsources);
	if (rc < 0)
		return rc;
	w->sources[w->nsources] = (struct viod_source){
		.fd = fd, .armed = true, .poll = poll, .opaque = opaque,
	};
	return (int)w->nsources++;
}

int viod_worker_source_arm(struct viod_dev *dev, int id, bool armed)
{
	struct viod_worker *w = current_worker;
	struct epoll_event ev = { .data.u64 = TAG_SOURCE | (uint64_t)id };
	struct viod_source *src;

	if (!w || w->dev != dev || id < 0 || (unsigned int)id >= w->nsources)
		return -EPERM;
	src = &w->sources[id];
	if (src->armed == armed)
		return 0;
	ev.events = armed ? EPOLLIN : 0;
	if (epoll_ctl(w->epfd, EPOLL_CTL_MOD, src->fd, &ev) < 0)
		return -errno;
	src->armed = armed;
	return 0;
}

static void *worker_main(void *arg)
{
	struct viod_worker *w = arg;
	struct viod_dev *dev = w->dev;
	uint64_t last_work = viod_now_ns();

	current_worker = w;
	if (dev->ops->worker_start)
		dev->ops->worker_start(dev, w->index);
	while (!atomic_load(&w->stop)) {
		struct epoll_event ev[16];
		bool polled, progress;
		uint64_t now, t0;
		int n;

		if (w->index == 0) {
			if (run_commands(dev))
				last_work = viod_now_ns();
		} else if (atomic_load(&w->park_req)) {
			park_self(w);
			continue;
		}
		now = viod_now_ns();
		progress = serve_once(w, now, &polled);
		if (progress) {
			last_work = now; /* one clock read per turn */
			continue;
		}
		if (now - last_work < w->poll_ns) {
			if (now - last_work < POLL_BUSY_NS)
				cpu_relax();
			else
				sched_yield();
			continue;
		}
		if (arm_rings(w, true)) {
			arm_rings(w, false);
			continue;
		}
		atomic_store(&w->sleeping, true);
		if (rings_woken(w)) {
			atomic_store(&w->sleeping, false);
			arm_rings(w, false);
			continue;
		}
		t0 = viod_now_ns();
		n = epoll_wait(w->epfd, ev, 16, sleep_timeout(w, t0, polled));
		atomic_store(&w->sleeping, false);
		now = viod_now_ns();
		if (n > 0)
			drain(w, ev, n);
		arm_rings(w, false);
		if (n > 0) {
			if (now - t0 < dev->poll_max_ns)
				w->poll_ns = w->poll_ns ? w->poll_ns * 2 : POLL_GROW_START_NS;
			else
				w->poll_ns /= 2;
			if (w->poll_ns > dev->poll_max_ns)
				w->poll_ns = dev->poll_max_ns;
		}
		last_work = now;
	}
	if (dev->ops->worker_stop)
		dev->ops->worker_stop(dev, w->index);
	return NULL;
}

/* ---- set-up ---- */

/* Gives every ring the device serves its worker (queue_worker). */
void viod_workers_assign(struct viod_dev *dev)
{
	for (unsigned int i = 0; i < dev->nworkers; i++)
		dev->workers[i].nrings = 0;
	for (unsigned int q = 0; q < dev->num_queues; q++) {
		struct viod_vring *vr = viod_dev_vring(dev, q);
		unsigned int wi = dev->ops->queue_worker ?
				  dev->ops->queue_worker(dev, q) % dev->nworkers : 0;
		struct viod_worker *w = &dev->workers[wi];

		vr->w = w;
		w->rings[w->nrings++] = vr;
	}
}

static int worker_init(struct viod_dev *dev, struct viod_worker *w, unsigned int i)
{
	w->dev = dev;
	w->index = i;
	w->epfd = epoll_create1(EPOLL_CLOEXEC);
	w->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	w->rings = g_new0(struct viod_vring *, dev->num_queues ? dev->num_queues : 1);
	if (w->epfd < 0 || w->wake_fd < 0)
		return -errno;
	return viod_worker_watch(w, w->wake_fd, TAG_WAKE);
}

/*
 * Creates the device's workers and assigns its rings. The threads start
 * with the first front-end (viod_workers_launch), so a device nobody uses
 * costs no thread; an inline device (tests, fuzzers) runs the workers'
 * start hooks when it is attached and is driven by its caller.
 */
int viod_workers_start(struct viod_dev *dev)
{
	int rc = 0;

	dev->workers = g_new0(struct viod_worker, dev->nworkers);
	for (unsigned int i = 0; i < dev->nworkers; i++)
		dev->workers[i].epfd = dev->workers[i].wake_fd = -1;
	for (unsigned int i = 0; i < dev->nworkers && rc == 0; i++)
		rc = worker_init(dev, &dev->workers[i], i);
	if (rc < 0)
		return rc;
	viod_workers_assign(dev);
	return 0;
}

/* Inline mode: the workers' start hooks, once, when a front-end comes
 * (after the device's options and init, as threads would start). */
void viod_workers_start_inline(struct viod_dev *dev)
{
	if (!dev->inline_mode || !dev->ops->worker_start)
		return;
	for (unsigned int i = 0; i < dev->nworkers; i++) {
		struct viod_worker *w = &dev->workers[i];

		if (w->hooked)
			continue;
		w->hooked = true;
		current_worker = w;
		dev->ops->worker_start(dev, i);
	}
	current_worker = NULL;
}

/* Control thread: the device's threads, once. 0 or -errno. */
int viod_workers_launch(struct viod_dev *dev)
{
	if (dev->inline_mode)
		return 0;
	for (unsigned int i = 0; i < dev->nworkers; i++) {
		struct viod_worker *w = &dev->workers[i];
		int rc;

		if (w->started)
			continue;
		rc = pthread_create(&w->thread, NULL, worker_main, w);
		if (rc)
			return -rc;
		w->started = true;
	}
	return 0;
}

void viod_workers_stop(struct viod_dev *dev)
{
	bool inline_mode;

	if (!dev->workers)
		return;
	viod_workers_unpark(dev);
	for (unsigned int i = 0; i < dev->nworkers; i++) {
		struct viod_worker *w = &dev->workers[i];

		atomic_store(&w->stop, true);
		atomic_store(&w->park_req, false);
		viod_worker_wake(w);
	}
	pthread_mutex_lock(&dev->park_lock);
	pthread_cond_broadcast(&dev->park_cond);
	pthread_mutex_unlock(&dev->park_lock);
	for (unsigned int i = 0; i < dev->nworkers; i++)
		if (dev->workers[i].started)
			pthread_join(dev->workers[i].thread, NULL);
	/* What the primary did not get to (the last disconnect's reset, so
	 * that the device is quiescent before its fini). */
	inline_mode = dev->inline_mode;
	current_worker = &dev->workers[0];
	dev->inline_mode = true; /* nobody left to park */
	run_commands(dev);
	dev->inline_mode = inline_mode;
	current_worker = NULL;
	for (unsigned int i = 0; i < dev->nworkers; i++) {
		struct viod_worker *w = &dev->workers[i];

		if (w->hooked && dev->ops->worker_stop) {
			current_worker = w;
			dev->ops->worker_stop(dev, i);
			current_worker = NULL;
		}
		w->started = w->hooked = false;
		if (w->epfd >= 0)
			close(w->epfd);
		if (w->wake_fd >= 0)
			close(w->wake_fd);
		g_free(w->rings);
	}
	g_free(dev->workers);
	dev->workers = NULL;
	for (unsigned int q = 0; q < VIOD_MAX_VRINGS; q++)
		if (dev->vrings[q])
			dev->vrings[q]->w = NULL;
}

/* Inline mode: commands already ran; serves every ring once. */
unsigned int viod_dev_run_queues(struct viod_dev *dev)
{
	unsigned int progress = 0;
	bool polled;

	current_worker = dev->workers ? &dev->workers[0] : NULL;
	for (unsigned int i = 0; i < dev->nworkers; i++)
		progress += serve_once(&dev->workers[i], viod_now_ns(), &polled);
	current_worker = NULL;
	return progress;
}
