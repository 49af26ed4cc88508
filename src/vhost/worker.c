/*
 * The data-path worker: one thread per device serving all its running
 * rings. It polls the rings for a bounded, adaptive time after the last
 * piece of work (as QEMU's poll-max-ns): on these machines a kick/call
 * round trip through eventfds between two CPUs costs tens of microseconds,
 * so a short spin saves most of them under load. Then it asks the guest
 * for kicks (EVENT_IDX aware), re-checks the rings, and sleeps in epoll on
 * the kick eventfds.
 *
 * The poll window grows (doubling) when a sleep ended within the window,
 * i.e. spinning a little longer would have caught the work, and shrinks
 * (halving) when a sleep was long. Its bound is per device type (the
 * balloon's is long: see its ops) or set by option poll-us.
 *
 * Past its first POLL_BUSY_NS the spin yields the CPU at every turn, so a
 * long window costs the threads that share this CPU (a front-end's vCPU
 * or main loop, on a small host) next to nothing.
 */
#include "vhost.h"

#include <errno.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define POLL_GROW_START_NS 2000u
#define POLL_BUSY_NS 50000u

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

/* Reports a ring the guest broke: once per ring setup, rate-limited. */
static void report_broken(struct viod_dev *dev, unsigned int q)
{
	static struct viod_ratelimit rl;
	struct viod_vring *vr = &dev->vrings[q];
	uint64_t one = 1;

	if (vr->broken_reported)
		return;
	vr->broken_reported = true;
	dev->needs_reset = true;
	if (vr->err_fd >= 0 && write(vr->err_fd, &one, sizeof(one)) < 0)
		(void)0;
	if (viod_ratelimit_ok(&rl))
		g_warning("%s: queue %u: guest violated the ring protocol; queue stopped until reset",
			  dev->id, q);
}

/* One guarded call into guest memory for ring q (see guard.c). */
struct ring_call {
	struct viod_dev *dev;
	unsigned int q;
	bool enable;
	unsigned int result;
};

static void call_handler(void *arg)
{
	struct ring_call *c = arg;

	c->result = c->dev->ops->queue_handler(c->dev, c->q);
}

static void call_notify(void *arg)
{
	struct ring_call *c = arg;
	struct viod_vq *vq = &c->dev->vrings[c->q].vq;

	viod_vq_set_notify(vq, c->enable);
	c->result = c->enable ? viod_vq_pending(vq) : 0;
}

/* Runs fn for ring q; a front-end that truncated guest memory under the
 * ring breaks that ring only. */
static unsigned int ring_guarded(struct viod_dev *dev, unsigned int q,
				 void (*fn)(void *), bool enable)
{
	struct ring_call c = { .dev = dev, .q = q, .enable = enable };
	struct viod_vring *vr = &dev->vrings[q];

	if (viod_guard_run(fn, &c) < 0) {
		vr->vq.broken = true;
		vr->vq.errors++;
		return 0;
	}
	return c.result;
}

/* Runs the handlers once over every running ring; dp_lock held. */
static unsigned int serve_rings(struct viod_dev *dev, bool *polled)
{
	unsigned int work = 0;

	*polled = false;
	for (unsigned int q = 0; q < dev->ops->num_queues; q++) {
		struct viod_vring *vr = &dev->vrings[q];

		if (!viod_vring_running(vr)) {
			if (vr->vq.broken && vr->started)
				report_broken(dev, q);
			continue;
		}
		*polled |= vr->polled;
		work += ring_guarded(dev, q, call_handler, false);
		if (vr->vq.broken)
			report_broken(dev, q);
	}
	return work;
}

/* Enables or disables guest kicks on every running ring; dp_lock held.
 * Returns the number of chains already pending (re-check after enable). */
static unsigned int set_notify_all(struct viod_dev *dev, bool enable)
{
	unsigned int pending = 0;

	for (unsigned int q = 0; q < dev->ops->num_queues; q++)
		if (viod_vring_running(&dev->vrings[q]))
			pending += ring_guarded(dev, q, call_notify, enable);
	return pending;
}

/*
 * Clears the eventfds epoll reported; dp_lock held, so that an fd the
 * control thread closed (and whose number may be reused) is never read.
 * Kick fds are non-blocking (set when received).
 */
static void drain(struct viod_dev *dev, const struct epoll_event *ev, int n)
{
	for (int i = 0; i < n; i++) {
		int fd = ev[i].data.fd;
		bool ours = fd == dev->wake_fd;
		uint64_t v;

		for (unsigned int q = 0; !ours && q < dev->ops->num_queues; q++)
			ours = dev->vrings[q].kick_fd == fd;
		if (ours && read(fd, &v, sizeof(v)) < 0)
			(void)0; /* spurious wake-up */
	}
}

static void *worker_main(void *arg)
{
	struct viod_dev *dev = arg;
	uint64_t last_work = viod_now_ns();
	uint32_t poll_ns = 0;

	for (;;) {
		struct epoll_event ev[16];
		unsigned int work;
		bool polled = false, throttled;
		uint64_t now, t0;
		int timeout = -1, n;

		while (atomic_load_explicit(&dev->ctl_waiting, memory_order_acquire))
			sched_yield();
		pthread_mutex_lock(&dev->dp_lock);
		if (dev->worker_stop) {
			pthread_mutex_unlock(&dev->dp_lock);
			break;
		}
		now = viod_now_ns();
		throttled = dev->throttle_until > now;
		work = throttled ? 0 : serve_rings(dev, &polled);
		pthread_mutex_unlock(&dev->dp_lock);

		if (work) {
			last_work = viod_now_ns();
			continue;
		}
		if (!throttled && now - last_work < poll_ns) {
			if (now - last_work < POLL_BUSY_NS)
				cpu_relax();
			else
				sched_yield();
			continue;
		}

		pthread_mutex_lock(&dev->dp_lock);
		if (!throttled && set_notify_all(dev, true)) {
			set_notify_all(dev, false);
			pthread_mutex_unlock(&dev->dp_lock);
			continue;
		}
		if (throttled)
			timeout = (int)((dev->throttle_until - now + 999999) / 1000000);
		else if (polled)
			timeout = 1; /* a ring without a kick fd: keep looking */
		pthread_mutex_unlock(&dev->dp_lock);

		t0 = viod_now_ns();
		n = epoll_wait(dev->epfd, ev, 16, timeout);
		now = viod_now_ns();

		while (atomic_load_explicit(&dev->ctl_waiting, memory_order_acquire))
			sched_yield();
		pthread_mutex_lock(&dev->dp_lock);
		drain(dev, ev, n);
		set_notify_all(dev, false);
		pthread_mutex_unlock(&dev->dp_lock);

		if (n > 0 && !throttled) {
			if (now - t0 < dev->poll_max_ns)
				poll_ns = poll_ns ? poll_ns * 2 : POLL_GROW_START_NS;
			else
				poll_ns /= 2;
			if (poll_ns > dev->poll_max_ns)
				poll_ns = dev->poll_max_ns;
		}
		last_work = now;
	}
	return NULL;
}

void viod_worker_wake(struct viod_dev *dev)
{
	uint64_t one = 1;

	if (dev->wake_fd >= 0 && write(dev->wake_fd, &one, sizeof(one)) < 0)
		(void)0; /* counter full: already awake */
}

int viod_worker_watch(struct viod_dev *dev, int fd)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };

	return epoll_ctl(dev->epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

void viod_worker_unwatch(struct viod_dev *dev, int fd)
{
	epoll_ctl(dev->epfd, EPOLL_CTL_DEL, fd, NULL);
}

int viod_worker_init(struct viod_dev *dev)
{
	dev->epfd = epoll_create1(EPOLL_CLOEXEC);
	dev->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (dev->epfd < 0 || dev->wake_fd < 0)
		return -errno;
	return viod_worker_watch(dev, dev->wake_fd);
}

int viod_worker_start(struct viod_dev *dev)
{
	int rc = viod_worker_init(dev);

	if (rc < 0)
		return rc;
	rc = pthread_create(&dev->worker, NULL, worker_main, dev);
	if (rc)
		return -rc;
	dev->worker_started = true;
	return 0;
}

void viod_worker_stop(struct viod_dev *dev)
{
	if (dev->worker_started) {
		viod_dev_lock(dev);
		dev->worker_stop = true;
		viod_dev_unlock(dev);
		pthread_join(dev->worker, NULL);
		dev->worker_started = false;
	}
	if (dev->epfd >= 0)
		close(dev->epfd);
	if (dev->wake_fd >= 0)
		close(dev->wake_fd);
	dev->epfd = dev->wake_fd = -1;
}
