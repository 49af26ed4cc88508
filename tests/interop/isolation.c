/*
 * Isolation test (DESIGN.md, "Isolation and threads"): no device delays
 * another. Starts viod (argv[1]) with rng devices A and B and balloon C,
 * then attacks A or C the way a hostile front-end or guest can, with
 * valid messages and valid (if unkind) rings:
 *
 *   1. a flood of valid messages on A, (a) with replies, read by a second
 *      thread, (b) without replies;
 *   2. A's guest posts huge writable chains, then A's front-end sends
 *      messages that touch the data path (SET_VRING_CALL, GET_VRING_BASE);
 *   3. C's guest posts one inflate chain of 64 MiB of PFNs, then C's
 *      front-end sends SET_VRING_CALL and GET_VRING_BASE;
 *   4. memory tables on A that must be refused: /dev/zero and a sparse
 *      memfd with 16 TiB regions, a pipe;
 *   5. C's guest holds two stats buffers: viod must not burn CPU;
 *   6. C's front-end sets up five queues (QEMU's generic
 *      vhost-user-test-device with num_vqs=5) and inflates a page;
 *   7. blk D's guest keeps a full queue of 1 MiB writes and reads in
 *      flight on its image (written with O_DSYNC: the disk is busy),
 *      then D's front-end sends SET_VRING_CALL and GET_VRING_BASE, which
 *      waits for D's I/O;
 *   8. net n1's front-end keeps its transmitq full of frames, (a) to
 *      broadcast, (b) to n2, whose guest never reads, on the switch it
 *      shares with n2, n3 and n4: n3 and n4 ping-pong frames throughout,
 *      each round trip within 100 ms.
 *
 * Throughout every attack a prober on B sends GET_FEATURES and waits for
 * the reply, again and again, recording each round trip: B's worst
 * latency must stay under 100 ms (worst, median and sample count are
 * printed as a TAP comment so the figure can be quoted). After every
 * attack B must still serve entropy and viod must still run; if viod
 * dies the test says so and stops. Beside each GET_FEATURES the prober
 * reads a key from the control store, which shares the control thread:
 * its worst latency must stay under 100 ms too.
 *
 * Latency is measured here, so the test runs alone (is_parallel: false).
 * Every wait is bounded; the measurement windows (1 s of baseline, 3 s
 * of flood, 3 s of CPU accounting) are the only fixed durations.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <endian.h>
#include <linux/virtio_blk.h>

#include "guest/frontend.h"
#include "guest/viomb.h"
#include "guest/viornd.h"
#include "support.h"
#include "tap.h"
#include "viod/store.h"

#define MS 1000000ull
#define LATENCY_LIMIT_NS (100 * MS)
#define PROBE_GAP_MS 2              /* between two probes */
#define PROBE_REPLY_MS 20000        /* a probe reply later than this is a failure */
#define PROBE_MAX_SAMPLES (1u << 17)
#define PROBE_WARMUP 3u             /* samples before an attack starts */
#define PROBE_AFTER 3u              /* samples after it ended, at least */
#define FLOOD_SECONDS 3
#define REPLY_MS 30000              /* replies an attacked device owes us */

static char dir[] = "/tmp/viod-isolation.XXXXXX";
static char sock_a[256], sock_b[256], sock_c[256], sock_d[256], image_d[256], ctl[256];
static char sock_n[4][256];
static pid_t viod_pid = -1;
static bool viod_dead;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int remaining_ms(uint64_t deadline)
{
	uint64_t t = now_ns();

	return t >= deadline ? 0 : (int)((deadline - t + MS - 1) / MS);
}

/* False once viod has exited (reported once, with how it ended). */
static bool viod_running(void)
{
	int st;

	if (viod_dead)
		return false;
	if (waitpid(viod_pid, &st, WNOHANG) == viod_pid) {
		viod_dead = true;
		if (WIFSIGNALED(st))
			printf("# viod died: signal %d\n", WTERMSIG(st));
		else
			printf("# viod exited with status %d\n", WEXITSTATUS(st));
		return false;
	}
	return true;
}

/* A raw connection; sends time out so that a stalled peer cannot hang us. */
static int send_msg(int s, uint32_t req, uint32_t flags, const void *payload,
		    uint32_t size, const int *fds, unsigned int nfds)
{
	return viod_fe_msg_send(s, req, VU_FLAG_VERSION | flags, size, payload, size,
				fds, nfds);
}

/* Receives the reply to req, of exactly size bytes, into out (if not NULL).
 * 0, -ECONNRESET (dropped), -ETIMEDOUT, -EPROTO (not the reply expected). */
static int recv_reply(int s, uint32_t req, void *out, uint32_t size, int timeout_ms)
{
	struct viod_vu_msg m;
	int rc = viod_fe_msg_recv(s, &m, NULL, NULL, timeout_ms);

	if (rc < 0)
		return rc;
	if (m.hdr.request != req || !(m.hdr.flags & VU_FLAG_REPLY) || m.hdr.size != size)
		return -EPROTO;
	if (out && size)
		memcpy(out, &m.u, size);
	return 0;
}

/*
 * Waits (1 ms naps, timeout_ms at most) until the word at p, in guest
 * memory, no longer reads from: the device has started on a buffer.
 */
static bool wait_word_changes(const uint64_t *p, uint64_t from, int timeout_ms)
{
	uint64_t deadline = now_ns() + (uint64_t)timeout_ms * MS;

	while (__atomic_load_n(p, __ATOMIC_ACQUIRE) == from) {
		if (now_ns() >= deadline)
			return false;
		poll(NULL, 0, 1);
	}
	return true;
}

/*
 * The messages that touch the data path, sent while the guest keeps its
 * device busy: a new call fd for queue idx, then GET_VRING_BASE (st in,
 * the reply out), timed in *ms. 0 or -errno.
 */
static int touch_and_stop(int sock, uint64_t idx, int call_fd,
			  struct vhost_vring_state *st, double *ms)
{
	uint64_t t0 = now_ns();
	int rc = send_msg(sock, VU_SET_VRING_CALL, 0, &idx, 8, &call_fd, 1);

	if (rc == 0)
		rc = send_msg(sock, VU_GET_VRING_BASE, 0, st, 8, NULL, 0);
	if (rc == 0)
		rc = recv_reply(sock, VU_GET_VRING_BASE, st, 8, REPLY_MS);
	*ms = (double)(now_ns() - t0) / MS;
	return rc;
}

/* ------------------------------------------------------------------ */
/* The prober on B.                                                    */

struct prober {
	pthread_t thread;
	bool started;
	int sock;
	ViodStoreClient *store;    /* the control store, read beside B */
	uint64_t store_worst;      /* read after join */
	int stop_fd;               /* eventfd: main -> prober */
	int ready_fd;              /* eventfd: n reached want, or failed */
	uint64_t *lat;             /* round trips, ns */
	atomic_uint n;
	atomic_uint want;
	uint64_t worst;            /* read after join */
	atomic_bool failed;        /* why is set before failed */
	char why[160];
};

static void *prober_main(void *arg)
{
	struct prober *p = arg;
	uint64_t one = 1;

	for (;;) {
		struct pollfd pf = { .fd = p->stop_fd, .events = POLLIN };
		uint64_t t0, dt, features = 0;
		int rc;

		if (poll(&pf, 1, PROBE_GAP_MS) != 0)
			break;
		t0 = now_ns();
		rc = send_msg(p->sock, VU_GET_FEATURES, 0, NULL, 0, NULL, 0);
		if (rc == 0)
			rc = recv_reply(p->sock, VU_GET_FEATURES, &features, 8, PROBE_REPLY_MS);
		dt = now_ns() - t0;
		if (dt > p->worst)
			p->worst = dt;
		if (rc < 0) {
			snprintf(p->why, sizeof(p->why), "GET_FEATURES on B: %s after %.1f ms",
				 strerror(-rc), (double)dt / MS);
			atomic_store(&p->failed, true);
			break;
		}
		/* The control store shares the control thread: it must keep
		 * answering too. */
		{
			g_autoptr(GError) err = NULL;
			g_autofree char *state = NULL;
			uint64_t s0 = now_ns(), sdt;

			state = viod_store_client_read(p->store, "/devices/b/state", &err);
			sdt = now_ns() - s0;
			if (sdt > p->store_worst)
				p->store_worst = sdt;
			if (!state) {
				snprintf(p->why, sizeof(p->why), "control store read: %s",
					 err ? err->message : "?");
				atomic_store(&p->failed, true);
				break;
			}
		}
		if (atomic_load(&p->n) < PROBE_MAX_SAMPLES) {
			p->lat[atomic_load(&p->n)] = dt;
			atomic_fetch_add(&p->n, 1);
		}
		if (atomic_load(&p->n) == atomic_load(&p->want) &&
		    write(p->ready_fd, &one, sizeof(one)) < 0)
			(void)0;
	}
	if (write(p->ready_fd, &one, sizeof(one)) < 0)
		(void)0;
	return NULL;
}

static void prober_free(struct prober *p)
{
	if (p->sock >= 0)
		close(p->sock);
	if (p->stop_fd >= 0)
		close(p->stop_fd);
	if (p->ready_fd >= 0)
		close(p->ready_fd);
	free(p->lat);
	if (p->store)
		viod_store_client_free(p->store);
	p->store = NULL;
	p->sock = p->stop_fd = p->ready_fd = -1;
	p->lat = NULL;
}

/*
 * Connects to B and starts probing; returns once PROBE_WARMUP round trips
 * have been measured (B answers before the attack starts), false (with a
 * failed test line) otherwise.
 */
static bool prober_start(struct prober *p, const char *what)
{
	struct pollfd pf;

	memset(p, 0, sizeof(*p));
	p->sock = test_connect(sock_b);
	p->stop_fd = eventfd(0, EFD_CLOEXEC);
	p->ready_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	p->lat = calloc(PROBE_MAX_SAMPLES, sizeof(*p->lat));
	p->store = viod_store_client_connect(ctl, NULL);
	atomic_store(&p->want, PROBE_WARMUP);
	if (p->sock < 0 || p->stop_fd < 0 || p->ready_fd < 0 || !p->lat || !p->store ||
	    pthread_create(&p->thread, NULL, prober_main, p) != 0) {
		ok(false, "%s: prober on B starts", what);
		prober_free(p);
		return false;
	}
	p->started = true;
	pf = (struct pollfd){ .fd = p->ready_fd, .events = POLLIN };
	if (poll(&pf, 1, 10000) != 1 || atomic_load(&p->n) < PROBE_WARMUP) {
		uint64_t one = 1;

		if (write(p->stop_fd, &one, sizeof(one)) < 0)
			(void)0;
		pthread_join(p->thread, NULL);
		ok(false, "%s: B answers before the attack (%s)", what,
		   atomic_load(&p->failed) ? p->why : "no reply in 10 s");
		prober_free(p);
		return false;
	}
	return true;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

/*
 * Lets the prober complete PROBE_AFTER more round trips (so that B is
 * measured after the attack too, however short the attack was), stops
 * it, prints B's figures and checks the worst one.
 */
static void prober_finish(struct prober *p, const char *what)
{
	uint64_t one = 1, median = 0, v;
	unsigned int n;

	if (!p->started)
		return;
	if (read(p->ready_fd, &v, sizeof(v)) < 0)
		(void)0; /* the warm-up's wake-up */
	atomic_store(&p->want, atomic_load(&p->n) + PROBE_AFTER);
	if (!atomic_load(&p->failed) && atomic_load(&p->n) < atomic_load(&p->want)) {
		struct pollfd pf = { .fd = p->ready_fd, .events = POLLIN };

		if (poll(&pf, 1, PROBE_REPLY_MS + 1000) != 1)
			printf("# %s: prober: no round trip after the attack\n", what);
	}
	if (write(p->stop_fd, &one, sizeof(one)) < 0)
		(void)0;
	pthread_join(p->thread, NULL);
	n = atomic_load(&p->n);
	if (n) {
		qsort(p->lat, n, sizeof(*p->lat), cmp_u64);
		median = p->lat[n / 2];
	}
	printf("# %s: B's GET_FEATURES latency: worst %.2f ms, median %.3f ms, %u samples\n",
	       what, (double)p->worst / MS, (double)median / MS, n);
	if (atomic_load(&p->failed))
		printf("# %s: prober: %s\n", what, p->why);
	ok(!atomic_load(&p->failed) && n >= PROBE_WARMUP + PROBE_AFTER &&
	   p->worst < LATENCY_LIMIT_NS,
	   "%s: B answered GET_FEATURES within 100 ms throughout (worst %.1f ms)",
	   what, (double)p->worst / MS);
	ok(!atomic_load(&p->failed) && p->store_worst < LATENCY_LIMIT_NS,
	   "%s: the control store answered within 100 ms throughout (worst %.1f ms)",
	   what, (double)p->store_worst / MS);
	prober_free(p);
}

/* prober_start, then the attack's thread fn(arg) in *th; false (with a
 * failed test line, the prober finished) if either does not start. */
static bool prober_start_with(struct prober *p, const char *what, pthread_t *th,
			      void *(*fn)(void *), void *arg)
{
	if (!prober_start(p, what))
		return false;
	if (pthread_create(th, NULL, fn, arg) != 0) {
		ok(false, "%s: the attack's thread starts", what);
		prober_finish(p, what);
		return false;
	}
	return true;
}

/* ------------------------------------------------------------------ */
/* After each attack.                                                  */

/* B serves entropy and viod runs; false if viod is gone (stop testing). */
static bool check_after(const char *what)
{
	bool alive = viod_running();

	ok(alive, "after %s: viod still running", what);
	if (!alive)
		return false;
	ok(test_rng_serves(sock_b), "after %s: B still serves entropy", what);
	return viod_running();
}

/* ------------------------------------------------------------------ */
/* viod's own accounting.                                              */

/* VmSize of viod in KiB, or 0. */
static uint64_t viod_vmsize_kib(void)
{
	char path[64], line[256];
	unsigned long long kib = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)viod_pid);
	f = fopen(path, "re");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmSize: %llu kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

/* utime + stime of viod (all threads), in clock ticks; -1 on error. */
static long long viod_cpu_ticks(void)
{
	char path[64], buf[1024], *p;
	unsigned long long ut, st;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)viod_pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	/* Fields after "(comm)": state is field 3, utime 14, stime 15. */
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
			 &ut, &st) != 2)
		return -1;
	return (long long)(ut + st);
}

/* ------------------------------------------------------------------ */
/* 1. Message floods on A.                                             */

#define FLOOD_WINDOW 128u   /* requests in flight at most: A's replies never
			     * fill its socket, the client is well behaved */
#define FLOOD_BATCH 16u
#define FLOOD_REPLY_SIZE (VU_HDR_SIZE + 8)

static const uint32_t flood_cycle[] = {
	VU_GET_FEATURES, VU_GET_PROTOCOL_FEATURES, VU_GET_QUEUE_NUM,
	VU_GET_MAX_MEM_SLOTS, VU_GET_STATUS,
};
#define FLOOD_CYCLE (sizeof(flood_cycle) / sizeof(flood_cycle[0]))

struct flood {
	int sock;
	int wake_fd;                 /* reader -> sender: the window opened */
	atomic_ullong sent, replied;
	atomic_bool done;            /* sender finished */
	atomic_bool waiting;         /* sender waits for the window */
	atomic_bool failed;          /* why is set before failed */
	char why[160];
};

/* Reads every reply, in order and in bulk (a reader faster than viod's
 * writer); stops once all are in, or on an error, or after 10 s without
 * one once the sender is done. */
static void *flood_reader(void *arg)
{
	struct flood *f = arg;
	uint64_t idle_since = now_ns(), one = 1;
	uint8_t buf[FLOOD_WINDOW * FLOOD_REPLY_SIZE];
	size_t have = 0;

	for (;;) {
		uint64_t r = atomic_load(&f->replied);
		struct pollfd pf = { .fd = f->sock, .events = POLLIN };
		size_t used = 0;
		ssize_t n;

		if (atomic_load(&f->done) && r == atomic_load(&f->sent))
			break;
		if (poll(&pf, 1, 500) == 0) {
			if (atomic_load(&f->done) && now_ns() - idle_since > 10000 * MS) {
				snprintf(f->why, sizeof(f->why), "replies stopped at %llu of %llu",
					 (unsigned long long)r,
					 (unsigned long long)atomic_load(&f->sent));
				atomic_store(&f->failed, true);
				break;
			}
			continue;
		}
		n = recv(f->sock, buf + have, sizeof(buf) - have, MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n <= 0) {
			snprintf(f->why, sizeof(f->why), "after %llu replies: %s",
				 (unsigned long long)r, n == 0 ? "connection dropped" : strerror(errno));
			atomic_store(&f->failed, true);
			break;
		}
		have += (size_t)n;
		for (; have - used >= FLOOD_REPLY_SIZE; used += FLOOD_REPLY_SIZE, r++) {
			struct viod_vu_hdr h;

			memcpy(&h, buf + used, sizeof(h));
			if (h.request != flood_cycle[r % FLOOD_CYCLE] || h.size != 8 ||
			    !(h.flags & VU_FLAG_REPLY))
				break;
		}
		if (have - used >= FLOOD_REPLY_SIZE) {
			snprintf(f->why, sizeof(f->why), "reply %llu is not the one expected",
				 (unsigned long long)r);
			atomic_store(&f->failed, true);
			break;
		}
		memmove(buf, buf + used, have - used);
		have -= used;
		idle_since = now_ns();
		atomic_store(&f->replied, r);
		if (atomic_load(&f->waiting) &&
		    atomic_load(&f->sent) - r <= FLOOD_WINDOW / 2 &&
		    write(f->wake_fd, &one, sizeof(one)) < 0)
			(void)0;
	}
	atomic_store(&f->waiting, false);
	if (write(f->wake_fd, &one, sizeof(one)) < 0)
		(void)0;
	return NULL;
}

static void attack_flood_replies(void)
{
	const char *what = "1a flood of requests with replies on A";
	struct viod_vu_hdr batch[FLOOD_BATCH];
	struct flood f = { .sock = -1, .wake_fd = -1 };
	struct prober p;
	pthread_t reader;
	uint64_t pfeat = (1ull << VU_PF_MQ) | (1ull << VU_PF_STATUS) |
			 (1ull << VU_PF_CONFIGURE_MEM_SLOTS), v, end;
	int rc;

	f.sock = test_connect(sock_a);
	f.wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (f.sock < 0 || f.wake_fd < 0 ||
	    send_msg(f.sock, VU_GET_FEATURES, 0, NULL, 0, NULL, 0) < 0 ||
	    recv_reply(f.sock, VU_GET_FEATURES, &v, 8, REPLY_MS) < 0 ||
	    send_msg(f.sock, VU_SET_PROTOCOL_FEATURES, 0, &pfeat, 8, NULL, 0) < 0) {
		ok(false, "%s: connect and handshake", what);
		goto out;
	}
	if (!prober_start_with(&p, what, &reader, flood_reader, &f))
		goto out;
	end = now_ns() + FLOOD_SECONDS * 1000 * MS;
	while (now_ns() < end && !atomic_load(&f.failed)) {
		uint64_t sent = atomic_load(&f.sent);

		if (sent - atomic_load(&f.replied) + FLOOD_BATCH > FLOOD_WINDOW) {
			struct pollfd pf = { .fd = f.wake_fd, .events = POLLIN };

			atomic_store(&f.waiting, true);
			if (atomic_load(&f.sent) - atomic_load(&f.replied) + FLOOD_BATCH >
			    FLOOD_WINDOW && poll(&pf, 1, 50) == 1 &&
			    read(f.wake_fd, &v, sizeof(v)) < 0)
				(void)0;
			atomic_store(&f.waiting, false);
			continue;
		}
		for (unsigned int k = 0; k < FLOOD_BATCH; k++)
			batch[k] = (struct viod_vu_hdr){
				.request = flood_cycle[(sent + k) % FLOOD_CYCLE],
				.flags = VU_FLAG_VERSION,
			};
		rc = viod_fe_send_bytes(f.sock, batch, sizeof(batch), NULL, 0);
		if (rc < 0) {
			printf("# %s: send stopped: %s\n", what, strerror(-rc));
			break;
		}
		atomic_fetch_add(&f.sent, FLOOD_BATCH);
	}
	atomic_store(&f.done, true);
	pthread_join(reader, NULL);
	prober_finish(&p, what);
	printf("# %s: %llu requests sent in %d s, %llu replies read%s%s\n", what,
	       (unsigned long long)atomic_load(&f.sent), FLOOD_SECONDS,
	       (unsigned long long)atomic_load(&f.replied),
	       atomic_load(&f.failed) ? "; " : "", atomic_load(&f.failed) ? f.why : "");
out:
	if (f.sock >= 0)
		close(f.sock);
	if (f.wake_fd >= 0)
		close(f.wake_fd);
}

static void attack_flood_no_replies(void)
{
	const char *what = "1b flood of SET_VRING_NUM on A";
	struct {
		struct viod_vu_hdr hdr;
		struct vhost_vring_state st;
	} __attribute__((packed)) batch[64];
	struct prober p;
	uint64_t end, sent = 0, v;
	int s = test_connect(sock_a), rc;

	if (s < 0) {
		ok(false, "%s: connect", what);
		return;
	}
	for (unsigned int k = 0; k < 64; k++) {
		batch[k].hdr = (struct viod_vu_hdr){ .request = VU_SET_VRING_NUM,
						     .flags = VU_FLAG_VERSION, .size = 8 };
		batch[k].st = (struct vhost_vring_state){ .index = 0, .num = 256 };
	}
	if (!prober_start(&p, what)) {
		close(s);
		return;
	}
	end = now_ns() + FLOOD_SECONDS * 1000 * MS;
	while (now_ns() < end) {
		rc = viod_fe_send_bytes(s, batch, sizeof(batch), NULL, 0);
		if (rc < 0) {
			printf("# %s: send stopped: %s\n", what, strerror(-rc));
			break;
		}
		sent += 64;
	}
	prober_finish(&p, what);
	/* The flooder is still a front-end in good standing. */
	rc = send_msg(s, VU_GET_FEATURES, 0, NULL, 0, NULL, 0);
	if (rc == 0)
		rc = recv_reply(s, VU_GET_FEATURES, &v, 8, REPLY_MS);
	printf("# %s: %llu messages sent in %d s; GET_FEATURES afterwards: %s\n", what,
	       (unsigned long long)sent, FLOOD_SECONDS, rc == 0 ? "answered" : strerror(-rc));
	close(s);
}

/* ------------------------------------------------------------------ */
/* 2. Huge writable chains on rng A.                                   */

#define HUGE_CHAINS 32u
#define HUGE_CHAIN_BYTES (16u << 20)   /* 32 x 16 MiB = 512 MiB for viod to fill */

static void attack_huge_chains(void)
{
	const char *what = "2 huge chains on rng A";
	struct viod_fe_opts o;
	struct viod_fe fe;
	struct viornd sc;
	struct viod_vqd *q;
	struct prober p;
	struct vhost_vring_state st = { .index = 0 };
	uint64_t idx = 0, one = 1, *first = NULL;
	double ms = 0;
	int call_fd = -1, rc = -EINVAL;
	bool attached;

	viod_fe_opts_init(&o);
	o.mem_size = (size_t)HUGE_CHAINS * HUGE_CHAIN_BYTES + (16u << 20);
	o.timeout_ms = REPLY_MS;
	attached = viod_fe_init(&fe, &o) == 0 && viod_fe_connect(&fe, sock_a) == 0 &&
		   viornd_attach(&sc, &fe, NULL) == 0;
	if (!attached) {
		ok(false, "%s: attach: %s", what, viod_fe_strerror(&fe));
		viod_fe_disconnect(&fe);
		return;
	}
	q = viod_fe_vqd(&fe, 0);
	for (unsigned int i = 0; i < HUGE_CHAINS; i++) {
		struct viod_vqd_buf b = { .len = HUGE_CHAIN_BYTES, .writable = true };
		uint64_t *host = viod_fe_alloc(&fe, HUGE_CHAIN_BYTES, 4096, &b.gpa);

		if (!host || viod_vqd_add(q, &b, 1, NULL) < 0) {
			ok(false, "%s: post chain %u", what, i);
			goto out;
		}
		if (!first)
			first = host;
	}
	call_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (call_fd < 0 || !prober_start(&p, what))
		goto out;

	/*
	 * The guest kicks; as soon as the device writes into the first chain
	 * (guest memory starts zeroed), A's front-end touches the data path.
	 */
	if (write(fe.queues[0].kick_fd, &one, sizeof(one)) < 0)
		(void)0;
	if (!wait_word_changes(first, 0, 10000))
		printf("# %s: the device did not start on the chains in 10 s\n", what);
	rc = touch_and_stop(fe.sock, idx, call_fd, &st, &ms);
	prober_finish(&p, what);
	printf("# %s: %u chains of %u MiB; A's GET_VRING_BASE reply took %.1f ms (base %u)\n",
	       what, HUGE_CHAINS, HUGE_CHAIN_BYTES >> 20, ms, st.num);
	ok(rc == 0, "%s: A answered GET_VRING_BASE within %d s (%s)", what, REPLY_MS / 1000,
	   rc == 0 ? "yes" : strerror(-rc));
out:
	/* Our raw exchange left the library's view of queue 0 behind. */
	fe.broken = true;
	if (call_fd >= 0)
		close(call_fd);
	viornd_detach(&sc);
	viod_fe_disconnect(&fe);
}

/* ------------------------------------------------------------------ */
/* Balloon C.                                                          */

/* Negotiates want, sets up queues 0 .. nqueues-1 (64 entries) and, if
 * nqueues, sets DRIVER_OK. */
static bool balloon_attach(struct viod_fe *fe, size_t mem, unsigned int nregions,
			   uint64_t want, unsigned int nqueues)
{
	struct viod_fe_opts o;

	viod_fe_opts_init(&o);
	o.mem_size = mem;
	o.nregions = nregions;
	o.timeout_ms = REPLY_MS;
	if (viod_fe_init(fe, &o) < 0 || viod_fe_connect(fe, sock_c) < 0 ||
	    viod_fe_negotiate(fe, want) < 0)
		return false;
	for (unsigned int q = 0; q < nqueues; q++)
		if (viod_fe_queue_setup(fe, q, 64) < 0)
			return false;
	return nqueues == 0 || viod_fe_driver_ok(fe) == 0;
}

/* Posts n PFNs on balloon queue q and waits (3 s) for the buffer to come back. */
static bool balloon_post(struct viod_fe *fe, unsigned int q, const uint32_t *pfns,
			 unsigned int n)
{
	uint64_t gpa;
	uint32_t *buf = viod_fe_alloc(fe, n * 4, 4, &gpa);
	struct viod_vqd_buf b = { .gpa = gpa, .len = n * 4, .writable = false };
	void *cookie;
	uint32_t len;

	if (!buf)
		return false;
	memcpy(buf, pfns, n * 4);
	if (viod_vqd_add(viod_fe_vqd(fe, q), &b, 1, NULL) < 0 || viod_fe_kick(fe, q) < 0 ||
	    viod_fe_wait(fe, q, 3000) != 1)
		return false;
	return viod_vqd_get_used(viod_fe_vqd(fe, q), &cookie, &len) == 1 && len == 0;
}

/* ------------------------------------------------------------------ */
/* 3. One huge PFN chain on balloon C.                                 */

#define PFN_BYTES (64u << 20)   /* 16 Mi PFNs in one inflate buffer */

/*
 * Guest memory is a sparse 1 GiB memfd in two regions. The PFN array
 * names every page of guest memory we never touch once (about 245,000
 * valid pages: each is tracked and its run released), then PFNs far
 * outside guest memory for the rest (about 16.5 million deliberately
 * invalid ones, each checked and counted as an error). Negotiated
 * without MUST_TELL_HOST, so the whole buffer is applied before the ack.
 */
static void attack_huge_pfns(void)
{
	const char *what = "3 huge PFN chain on balloon C";
	struct viod_fe fe;
	struct viod_vqd_buf b = { .len = PFN_BYTES, .writable = false };
	struct vhost_vring_state st = { .index = 0 };
	struct prober p;
	uint64_t one = 1, idx = 1, *marker;
	double ms = 0;
	uint32_t *pfns;
	size_t n = 0, valid;
	int call_fd = -1, rc = -EINVAL;

	if (!balloon_attach(&fe, 1u << 30, 2, 0, 2)) {
		ok(false, "%s: attach: %s", what, viod_fe_strerror(&fe));
		viod_fe_disconnect(&fe);
		return;
	}
	pfns = viod_fe_alloc(&fe, PFN_BYTES, 4096, &b.gpa);
	if (!pfns) {
		ok(false, "%s: no room for the PFN array", what);
		goto out;
	}
	for (unsigned int r = 0; r < fe.nregions; r++) {
		const struct viod_fe_region *reg = &fe.regions[r];

		for (uint64_t off = (reg->used + 4095) & ~4095ull;
		     off + 4096 <= reg->size && n < PFN_BYTES / 4; off += 4096)
			pfns[n++] = (uint32_t)((reg->gpa + off) >> 12);
	}
	valid = n;
	for (uint32_t bad = 0x80000000u; n < PFN_BYTES / 4; bad++)
		pfns[n++] = bad;
	/* The first page inflated reads zero again once the device has
	 * released it: that says the device is at work on the array. */
	marker = viod_fe_host(&fe, (uint64_t)pfns[0] << 12, 4096);
	if (!marker) {
		ok(false, "%s: first PFN not in guest memory", what);
		goto out;
	}
	*marker = 0x5a5a5a5a5a5a5a5aull;
	if (viod_vqd_add(viod_fe_vqd(&fe, 0), &b, 1, NULL) < 0) {
		ok(false, "%s: post the PFN array", what);
		goto out;
	}
	call_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (call_fd < 0 || !prober_start(&p, what))
		goto out;

	if (write(fe.queues[0].kick_fd, &one, sizeof(one)) < 0)
		(void)0;
	if (!wait_word_changes(marker, 0x5a5a5a5a5a5a5a5aull, 10000))
		printf("# %s: the device did not start on the array in 10 s\n", what);
	rc = touch_and_stop(fe.sock, idx, call_fd, &st, &ms);
	prober_finish(&p, what);
	printf("# %s: %zu PFNs (%zu valid); C's GET_VRING_BASE reply took %.1f ms (base %u)\n",
	       what, n, valid, ms, st.num);
	ok(rc == 0, "%s: C answered GET_VRING_BASE within %d s (%s)", what, REPLY_MS / 1000,
	   rc == 0 ? "yes" : strerror(-rc));
out:
	fe.broken = true;
	if (call_fd >= 0)
		close(call_fd);
	viod_fe_disconnect(&fe);
}

/* ------------------------------------------------------------------ */
/* 4. Memory tables that must be refused.                              */

#define TIB (1ull << 40)

/*
 * A raw front-end on A negotiates REPLY_ACK and sends SET_MEM_TABLE with
 * NEED_REPLY: one region of size bytes on fd. A refusal is a non-zero
 * ack or a dropped connection. viod's VmSize is read while the
 * connection is still open (an accepted region is still mapped then).
 */
static void attack_region(const char *what, int fd, uint64_t size)
{
	struct viod_vu_mem_table mt = { .nregions = 1 };
	uint64_t pf = 1ull << VU_PF_REPLY_ACK, v, ack = 0, vm0, vm1;
	const uint32_t mt_size = 8 + sizeof(struct viod_vu_region);
	struct prober p;
	bool refused;
	int s, rc;

	if (fd < 0) {
		ok(false, "%s: make the fd: %s", what, strerror(errno));
		return;
	}
	if (!prober_start(&p, what))
		return;
	s = test_connect(sock_a);
	if (s < 0 || send_msg(s, VU_GET_FEATURES, 0, NULL, 0, NULL, 0) < 0 ||
	    recv_reply(s, VU_GET_FEATURES, &v, 8, REPLY_MS) < 0 ||
	    send_msg(s, VU_SET_PROTOCOL_FEATURES, 0, &pf, 8, NULL, 0) < 0 ||
	    send_msg(s, VU_SET_OWNER, VU_FLAG_NEED_REPLY, NULL, 0, NULL, 0) < 0 ||
	    recv_reply(s, VU_SET_OWNER, &ack, 8, REPLY_MS) < 0 || ack != 0) {
		ok(false, "%s: handshake with REPLY_ACK", what);
		if (s >= 0)
			close(s);
		prober_finish(&p, what);
		return;
	}
	/* Every earlier connection to A is gone once this one is served. */
	vm0 = viod_vmsize_kib();
	mt.regions[0] = (struct viod_vu_region){ .gpa = 0, .size = size,
						 .uva = 1ull << 32, .mmap_offset = 0 };
	rc = send_msg(s, VU_SET_MEM_TABLE, VU_FLAG_NEED_REPLY, &mt, mt_size, &fd, 1);
	if (rc == 0)
		rc = recv_reply(s, VU_SET_MEM_TABLE, &ack, 8, REPLY_MS);
	vm1 = viod_vmsize_kib();
	close(s);
	prober_finish(&p, what);
	refused = rc == -ECONNRESET || (rc == 0 && ack != 0);
	ok(refused, "%s: refused (%s)", what,
	   rc == -ECONNRESET ? "connection dropped" :
	   rc < 0 ? strerror(-rc) : ack ? "non-zero ack" : "accepted with ack 0");
	printf("# %s: viod's VmSize %llu MiB before, %llu MiB after (+%lld MiB)\n", what,
	       (unsigned long long)vm0 >> 10, (unsigned long long)vm1 >> 10,
	       ((long long)vm1 - (long long)vm0) / 1024);
	ok(vm0 && vm1 && vm1 <= vm0 + (1u << 20), "%s: viod's VmSize grew by at most 1 GiB",
	   what);
}

static bool attack_regions(void)
{
	int fd, pfd[2];

	fd = open("/dev/zero", O_RDWR | O_CLOEXEC);
	attack_region("4a /dev/zero, 16 TiB region on A", fd, 16 * TIB);
	if (fd >= 0)
		close(fd);
	if (!check_after("4a"))
		return false;

	fd = memfd_create("isolation-sparse", MFD_CLOEXEC);
	if (fd >= 0 && ftruncate(fd, (off_t)(16 * TIB)) < 0) {
		close(fd);
		fd = -1;
	}
	attack_region("4b sparse 16 TiB memfd, 16 TiB region on A", fd, 16 * TIB);
	if (fd >= 0)
		close(fd);
	if (!check_after("4b"))
		return false;

	if (pipe2(pfd, O_CLOEXEC) < 0)
		pfd[0] = pfd[1] = -1;
	attack_region("4c pipe, 1 MiB region on A", pfd[0], 1u << 20);
	if (pfd[0] >= 0) {
		close(pfd[0]);
		close(pfd[1]);
	}
	return check_after("4c");
}

/* ------------------------------------------------------------------ */
/* 5. Held stats buffers on balloon C.                                 */

#define STATS_QUEUE 2u          /* with STATS_VQ negotiated (5.5.2) */
#define STATS_ENTRIES 10u
#define CPU_WINDOW_MS 3000

static void attack_held_stats(void)
{
	const char *what = "5 two held stats buffers on balloon C";
	struct viod_fe fe;
	struct viod_vqd *q;
	struct prober p;
	uint64_t one = 1, t0, t1, deadline;
	long long c0, c1;
	long hz = sysconf(_SC_CLK_TCK);
	unsigned int reposted = 0;
	double pct;

	if (!balloon_attach(&fe, 16u << 20, 1, 1ull << VIOMB_F_STATS_VQ, 3) ||
	    !viod_fe_has_feature(&fe, VIOMB_F_STATS_VQ)) {
		ok(false, "%s: attach with STATS_VQ: %s", what, viod_fe_strerror(&fe));
		viod_fe_disconnect(&fe);
		return;
	}
	q = viod_fe_vqd(&fe, STATS_QUEUE);
	for (unsigned int i = 0; i < 2; i++) {
		struct viod_vqd_buf b = { .len = STATS_ENTRIES * VIOMB_STAT_SIZE };
		uint8_t *buf = viod_fe_alloc(&fe, b.len, 8, &b.gpa);

		if (!buf || viod_vqd_add(q, &b, 1, buf) < 0) {
			ok(false, "%s: post stats buffer %u", what, i);
			viod_fe_disconnect(&fe);
			return;
		}
		for (uint16_t t = 0; t < STATS_ENTRIES; t++) {
			uint64_t val = 1000u + t;

			memcpy(buf + t * VIOMB_STAT_SIZE, &t, 2);
			memcpy(buf + t * VIOMB_STAT_SIZE + 2, &val, 8);
		}
	}
	if (!prober_start(&p, what)) {
		viod_fe_disconnect(&fe);
		return;
	}
	if (write(fe.queues[STATS_QUEUE].kick_fd, &one, sizeof(one)) < 0)
		(void)0;

	/*
	 * The measurement window. A buffer the device hands back (its stats
	 * timer) is re-posted at once, as a guest does (5.5.6.3), so two
	 * stay with the device all along.
	 */
	c0 = viod_cpu_ticks();
	t0 = now_ns();
	deadline = t0 + CPU_WINDOW_MS * MS;
	while (now_ns() < deadline) {
		void *cookie;
		uint32_t len;
		int r = viod_fe_wait(&fe, STATS_QUEUE, remaining_ms(deadline));

		if (r < 0)
			break;
		while (r == 1 && viod_vqd_get_used(q, &cookie, &len) == 1) {
			struct viod_vqd_buf b = { .len = STATS_ENTRIES * VIOMB_STAT_SIZE,
						  .gpa = viod_fe_gpa(&fe, cookie) };

			if (viod_vqd_add(q, &b, 1, cookie) == 0 &&
			    viod_fe_kick(&fe, STATS_QUEUE) >= 0)
				reposted++;
		}
	}
	c1 = viod_cpu_ticks();
	t1 = now_ns();
	prober_finish(&p, what);
	pct = c0 >= 0 && c1 >= 0 && hz > 0 ?
	      100.0 * ((double)(c1 - c0) / (double)hz) / ((double)(t1 - t0) / 1e9) : -1;
	printf("# %s: viod used %lld ticks (%.2f s CPU) in %.2f s: %.1f%% (%u re-posts)\n",
	       what, c1 - c0, hz > 0 ? (double)(c1 - c0) / (double)hz : 0.0,
	       (double)(t1 - t0) / 1e9, pct, reposted);
	ok(pct >= 0 && pct < 10.0, "%s: viod's CPU time below 10%% of wall time (%.1f%%)",
	   what, pct);
	viod_fe_disconnect(&fe);
}

/* ------------------------------------------------------------------ */
/* 6. Five queues on balloon C.                                        */

#define FIVE_QUEUES 5u

/*
 * QEMU's generic vhost-user-test-device (vhost-user-device before 10.2;
 * num_vqs=5) does not bound its queues by
 * GET_QUEUE_NUM: at init one SET_VRING_CALL per queue (vhost_virtqueue_init),
 * then for each queue NUM, ADDR, BASE, CALL, KICK and ENABLE. A balloon
 * has four queues at most; the fifth is one the device never uses, and
 * the connection must survive it.
 */
static void attack_five_queues(void)
{
	const char *what = "6 five queues on balloon C";
	char failed_at[200] = "";
	struct viod_fe fe;
	uint64_t gpa;
	bool inflated = false;

	if (!balloon_attach(&fe, 16u << 20, 1, 0, 0)) {
		ok(false, "%s: attach: %s", what, viod_fe_strerror(&fe));
		viod_fe_disconnect(&fe);
		return;
	}
	printf("# %s: the device reports %llu queues; setting up %u\n", what,
	       (unsigned long long)fe.queue_num, FIVE_QUEUES);
	fe.queue_num = FIVE_QUEUES;
	for (unsigned int q = 0; q < FIVE_QUEUES && !failed_at[0]; q++) {
		uint64_t idx = q;
		int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

		if (efd < 0 ||
		    viod_fe_request(&fe, VU_SET_VRING_CALL, &idx, 8, &efd, 1, NULL, 0) < 0)
			snprintf(failed_at, sizeof(failed_at), "init SET_VRING_CALL, queue %u: %s",
				 q, viod_fe_strerror(&fe));
		if (efd >= 0)
			close(efd);
	}
	for (unsigned int q = 0; q < FIVE_QUEUES && !failed_at[0]; q++)
		if (viod_fe_queue_setup(&fe, q, 64) < 0)
			snprintf(failed_at, sizeof(failed_at), "queue %u setup: %s", q,
				 viod_fe_strerror(&fe));
	if (!failed_at[0] && viod_fe_driver_ok(&fe) < 0)
		snprintf(failed_at, sizeof(failed_at), "DRIVER_OK: %s", viod_fe_strerror(&fe));
	if (failed_at[0])
		printf("# %s: failed at %s\n", what, failed_at);
	ok(!failed_at[0] && !fe.broken, "%s: all five set up, connection kept", what);
	if (!failed_at[0] && viod_fe_alloc(&fe, 4096, 4096, &gpa)) {
		uint32_t pfn = (uint32_t)(gpa >> 12);

		inflated = balloon_post(&fe, 0, &pfn, 1);
	}
	ok(inflated, "%s: a one-page inflate on queue 0 comes back used", what);
	viod_fe_disconnect(&fe);
}

/* ------------------------------------------------------------------ */

#define BLK_REQS 64u
#define BLK_REQ_BYTES (1u << 20)

static void attack_busy_disk(void)
{
	const char *what = "7 a busy disk on blk D";
	struct viod_fe_opts o;
	struct viod_fe fe;
	struct viod_vqd *q;
	struct prober p;
	struct vhost_vring_state st = { .index = 0 };
	uint64_t one = 1;
	double ms = 0;
	int call_fd = -1, rc = -EINVAL;

	viod_fe_opts_init(&o);
	o.mem_size = (size_t)BLK_REQS * BLK_REQ_BYTES + (16u << 20);
	o.timeout_ms = REPLY_MS;
	if (viod_fe_init(&fe, &o) < 0 || viod_fe_connect(&fe, sock_d) < 0 ||
	    viod_fe_negotiate(&fe, 0) < 0 || viod_fe_queue_setup(&fe, 0, 4 * BLK_REQS) < 0 ||
	    viod_fe_driver_ok(&fe) < 0) {
		ok(false, "%s: attach: %s", what, viod_fe_strerror(&fe));
		viod_fe_disconnect(&fe);
		return;
	}
	q = viod_fe_vqd(&fe, 0);
	for (unsigned int i = 0; i < BLK_REQS; i++) {
		struct viod_vqd_buf b[3];
		uint64_t hgpa, dgpa, sgpa;
		uint8_t *hdr = viod_fe_alloc(&fe, 16, 16, &hgpa);
		bool write = i % 2 == 0;

		if (!hdr || !viod_fe_alloc(&fe, BLK_REQ_BYTES, 4096, &dgpa) ||
		    !viod_fe_alloc(&fe, 1, 1, &sgpa)) {
			ok(false, "%s: post request %u", what, i);
			goto out;
		}
		memcpy(hdr, &(struct virtio_blk_outhdr){
			.type = htole32(write ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN),
			.sector = htole64((uint64_t)(i % 32) * (BLK_REQ_BYTES / 512)) }, 16);
		b[0] = (struct viod_vqd_buf){ .gpa = hgpa, .len = 16 };
		b[1] = (struct viod_vqd_buf){ .gpa = dgpa, .len = BLK_REQ_BYTES, .writable = !write };
		b[2] = (struct viod_vqd_buf){ .gpa = sgpa, .len = 1, .writable = true };
		if (viod_vqd_add(q, b, 3, NULL) < 0) {
			ok(false, "%s: post request %u", what, i);
			goto out;
		}
	}
	call_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (call_fd < 0 || !prober_start(&p, what))
		goto out;
	if (write(fe.queues[0].kick_fd, &one, sizeof(one)) < 0)
		(void)0;
	rc = touch_and_stop(fe.sock, 0, call_fd, &st, &ms);
	prober_finish(&p, what);
	printf("# %s: %u requests of 1 MiB; D's GET_VRING_BASE reply took %.1f ms (base %u)\n",
	       what, BLK_REQS, ms, st.num);
	ok(rc == 0, "%s: D answered GET_VRING_BASE within %d s (%s)", what, REPLY_MS / 1000,
	   rc == 0 ? "yes" : strerror(-rc));
out:
	fe.broken = true;
	if (call_fd >= 0)
		close(call_fd);
	viod_fe_disconnect(&fe);
}

/* ------------------------------------------------------------------ */
/* 8. A flood on one switch port.                                      */

#define NET_PORTS 4u
#define PAIR_FRAME 256u
#define PAIR_MIN_EXCHANGES 20u

static const uint8_t net_mac[NET_PORTS][6] = {
	{ 0x52, 0x54, 0x00, 0x00, 0x01, 0x01 }, { 0x52, 0x54, 0x00, 0x00, 0x01, 0x02 },
	{ 0x52, 0x54, 0x00, 0x00, 0x01, 0x03 }, { 0x52, 0x54, 0x00, 0x00, 0x01, 0x04 },
};
static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

struct port {
	struct viod_fe fe;
	struct vioif sc;
	bool attached;
};

struct flooder {
	struct port *p;
	const uint8_t *dst;
	atomic_bool stop;
	atomic_ullong sent;
	char why[160];             /* set if it stopped on an error */
};

/* Keeps n1's transmitq full of frames to dst until told to stop
 * (vioif_send sleeps for a slot when every one is with the device). */
static void *flooder_main(void *arg)
{
	struct flooder *fl = arg;
	uint8_t frame[PAIR_FRAME];
	uint32_t seq = 0;

	while (!atomic_load(&fl->stop)) {
		vioif_frame_fill(frame, sizeof(frame), fl->dst, net_mac[0], seq++);
		if (vioif_send(&fl->p->sc, 0, frame, sizeof(frame)) < 0) {
			snprintf(fl->why, sizeof(fl->why), "n1: %s", viod_fe_strerror(&fl->p->fe));
			break;
		}
		atomic_fetch_add(&fl->sent, 1);
	}
	return NULL;
}

/* p's next frame with sequence number want, to p, skipping the others
 * (the flood); false if none came by deadline. */
static bool pair_recv(struct port *p, uint32_t want, uint64_t deadline)
{
	uint8_t buf[VIOIF_FRAME_MAX];

	while (now_ns() < deadline) {
		uint32_t seq;
		size_t len;
		int rc = vioif_recv(&p->sc, buf, sizeof(buf), &len, NULL, remaining_ms(deadline));

		if (rc < 0)
			return false;
		if (rc == 1 && len == PAIR_FRAME && !memcmp(buf, p->sc.cfg.mac, 6) &&
		    vioif_frame_check(buf, len, &seq) && seq == want)
			return true;
	}
	return false;
}

/* One ping from n3 to n4 and its pong; the round trip in ns, or 0. */
static uint64_t pair_exchange(struct port *n3, struct port *n4, uint32_t seq)
{
	uint8_t frame[PAIR_FRAME];
	uint64_t t0 = now_ns(), deadline = t0 + (uint64_t)REPLY_MS * MS;

	vioif_frame_fill(frame, sizeof(frame), net_mac[3], net_mac[2], seq);
	if (vioif_send(&n3->sc, 0, frame, sizeof(frame)) < 0 || !pair_recv(n4, seq, deadline))
		return 0;
	vioif_frame_swap_macs(frame);
	if (vioif_send(&n4->sc, 0, frame, sizeof(frame)) < 0 || !pair_recv(n3, seq, deadline))
		return 0;
	return now_ns() - t0;
}

static long long net_key(unsigned int port, const char *key)
{
	g_autofree char *path = g_strdup_printf("/devices/n%u/%s", port + 1, key);

	return test_store_ll(ctl, path);
}

/*
 * n1's front-end keeps its transmitq full of frames to dst (broadcast:
 * every other port; or n2's MAC, whose guest reads nothing). n3 and n4,
 * on the same switch, ping-pong frames the whole time: each round trip
 * must stay under 100 ms, as B's GET_FEATURES must (the prober), and rng
 * B must serve afterwards.
 */
static void attack_port_flood(const char *what, const uint8_t *dst)
{
	struct port n[NET_PORTS] = { 0 };
	struct flooder fl = { .p = &n[0], .dst = dst };
	uint8_t frame[PAIR_FRAME];
	struct prober p;
	pthread_t th;
	uint64_t *rtt = calloc(PROBE_MAX_SAMPLES, sizeof(*rtt)), worst = 0, end;
	unsigned int count = 0;
	long long sent0, full0;
	bool exchanged = true;

	for (unsigned int i = 0; i < NET_PORTS; i++) {
		n[i].attached = test_vioif_attach(&n[i].fe, &n[i].sc, sock_n[i], NULL);
		if (!n[i].attached) {
			ok(false, "%s: attach n%u", what, i + 1);
			goto out;
		}
	}
	/* The switch learns where n2, n3 and n4 live (n2 sends once). */
	vioif_frame_fill(frame, sizeof(frame), net_mac[0], net_mac[1], 0);
	if (!rtt || vioif_send(&n[1].sc, 0, frame, sizeof(frame)) < 0 ||
	    !pair_exchange(&n[2], &n[3], 0)) {
		ok(false, "%s: n2 sends, n3 and n4 exchange a frame before the flood", what);
		goto out;
	}
	sent0 = net_key(0, "tx/packets");
	full0 = net_key(0, "drops/dst-full");
	if (!prober_start_with(&p, what, &th, flooder_main, &fl))
		goto out;
	end = now_ns() + FLOOD_SECONDS * 1000 * MS;
	while (now_ns() < end && count < PROBE_MAX_SAMPLES) {
		uint64_t t = pair_exchange(&n[2], &n[3], count + 1);

		if (!t) {
			exchanged = false;
			break;
		}
		rtt[count++] = t;
		if (t > worst)
			worst = t;
		poll(NULL, 0, PROBE_GAP_MS);
	}
	atomic_store(&fl.stop, true);
	pthread_join(th, NULL);
	prober_finish(&p, what);
	if (fl.why[0])
		printf("# %s: flooder stopped: %s\n", what, fl.why);
	if (count) {
		qsort(rtt, count, sizeof(*rtt), cmp_u64);
		printf("# %s: n3<->n4 round trip: worst %.2f ms, median %.3f ms, %u exchanges\n",
		       what, (double)worst / MS, (double)rtt[count / 2] / MS, count);
	}
	printf("# %s: n1 sent %llu frames; the switch took %lld, dropped %lld for full queues\n",
	       what, (unsigned long long)atomic_load(&fl.sent),
	       net_key(0, "tx/packets") - sent0, net_key(0, "drops/dst-full") - full0);
	ok(exchanged && count >= PAIR_MIN_EXCHANGES,
	   "%s: n3 and n4 kept exchanging frames (%u round trips)", what, count);
	ok(worst < LATENCY_LIMIT_NS, "%s: each n3<->n4 round trip within 100 ms (worst %.1f ms)",
	   what, (double)worst / MS);
	ok(atomic_load(&fl.sent) >= 10000 && !fl.why[0],
	   "%s: n1 flooded the switch (%llu frames)", what,
	   (unsigned long long)atomic_load(&fl.sent));
out:
	for (unsigned int i = 0; i < NET_PORTS; i++)
		if (n[i].attached)
			test_vioif_detach(&n[i].fe, &n[i].sc);
	free(rtt);
}

/* ------------------------------------------------------------------ */

static void baseline(void)
{
	const char *what = "0 baseline, no attack";
	struct prober p;

	if (!prober_start(&p, what))
		return;
	/* The measurement window: one second of probing. */
	poll(NULL, 0, 1000);
	prober_finish(&p, what);
}

static bool start_viod(const char *viod)
{
	char spec_a[300], spec_b[300], spec_c[300], spec_d[600], spec_n[NET_PORTS][1200];
	uint64_t deadline;
	int fd;

	snprintf(sock_a, sizeof(sock_a), "%s/a.sock", dir);
	snprintf(sock_b, sizeof(sock_b), "%s/b.sock", dir);
	snprintf(sock_c, sizeof(sock_c), "%s/c.sock", dir);
	snprintf(ctl, sizeof(ctl), "%s/control", dir);
	snprintf(spec_a, sizeof(spec_a), "rng,id=a,socket=%s", sock_a);
	snprintf(spec_b, sizeof(spec_b), "rng,id=b,socket=%s", sock_b);
	snprintf(spec_c, sizeof(spec_c), "balloon,id=c,socket=%s", sock_c);
	snprintf(sock_d, sizeof(sock_d), "%s/d.sock", dir);
	snprintf(image_d, sizeof(image_d), "%s/d.img", dir);
	/* Writethrough: every write goes to the disk before it completes. */
	snprintf(spec_d, sizeof(spec_d), "blk,id=d,socket=%s,path=%s,cache=writethrough",
		 sock_d, image_d);
	/* Four ports on one switch: n1 floods, n2 never reads, n3 and n4 talk. */
	for (unsigned int i = 0; i < NET_PORTS; i++) {
		const uint8_t *m = net_mac[i];

		snprintf(sock_n[i], sizeof(sock_n[i]), "%s/n%u.sock", dir, i + 1);
		snprintf(spec_n[i], sizeof(spec_n[i]), "net,id=n%u,socket=%s,backend=switch:iso,"
			 "mac=%02x:%02x:%02x:%02x:%02x:%02x", i + 1, sock_n[i], m[0], m[1], m[2],
			 m[3], m[4], m[5]);
	}
	fd = open(image_d, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	if (fd < 0 || ftruncate(fd, 64ull << 20) < 0)
		return false;
	close(fd);
	viod_pid = fork();
	if (viod_pid < 0)
		return false;
	if (viod_pid == 0) {
		/* Never outlive the test, whatever kills it. */
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
			_exit(126);
		execl(viod, viod, "--control", ctl, "--device", spec_a, "--device", spec_b,
		      "--device", spec_c, "--device", spec_d, "--device", spec_n[0],
		      "--device", spec_n[1], "--device", spec_n[2], "--device", spec_n[3],
		      (char *)NULL);
		_exit(127);
	}
	deadline = now_ns() + 10000 * MS;
	while (now_ns() < deadline && viod_running()) {
		struct stat st;

		if (stat(sock_a, &st) == 0 && stat(sock_b, &st) == 0 &&
		    stat(sock_c, &st) == 0 && stat(sock_d, &st) == 0 && stat(ctl, &st) == 0 &&
		    stat(sock_n[NET_PORTS - 1], &st) == 0)
			return true;
		poll(NULL, 0, 10);
	}
	return false;
}

/* SIGTERM, then SIGKILL after 10 s; true if viod exited 0 on SIGTERM. */
static bool stop_viod(void)
{
	uint64_t deadline = now_ns() + 10000 * MS;
	int st = -1;

	if (viod_pid <= 0 || viod_dead)
		return false;
	kill(viod_pid, SIGTERM);
	while (now_ns() < deadline) {
		if (waitpid(viod_pid, &st, WNOHANG) == viod_pid) {
			viod_dead = true;
			return WIFEXITED(st) && WEXITSTATUS(st) == 0;
		}
		poll(NULL, 0, 10);
	}
	kill(viod_pid, SIGKILL);
	waitpid(viod_pid, &st, 0);
	viod_dead = true;
	return false;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: isolation VIOD_BINARY\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!mkdtemp(dir)) {
		printf("Bail out! mkdtemp: %s\n", strerror(errno));
		return 1;
	}
	if (!ok(start_viod(argv[1]), "viod starts with rng a, rng b, balloon c, blk d, net n1-n4"))
		goto out;
	if (!ok(test_rng_serves(sock_a) && test_rng_serves(sock_b), "A and B serve at start"))
		goto out;

	baseline();
	if (!check_after("the baseline"))
		goto out;
	attack_flood_replies();
	if (!check_after("1a"))
		goto out;
	attack_flood_no_replies();
	if (!check_after("1b"))
		goto out;
	attack_huge_chains();
	if (!check_after("2"))
		goto out;
	ok(test_rng_serves(sock_a), "after 2: A serves again");
	attack_huge_pfns();
	if (!check_after("3"))
		goto out;
	if (!attack_regions())
		goto out;
	ok(test_rng_serves(sock_a), "after 4: A serves again");
	attack_held_stats();
	if (!check_after("5"))
		goto out;
	attack_five_queues();
	if (!check_after("6"))
		goto out;
	attack_busy_disk();
	if (!check_after("7"))
		goto out;
	attack_port_flood("8a a broadcast flood on switch port n1", bcast);
	if (!check_after("8a"))
		goto out;
	attack_port_flood("8b a flood from n1 to n2, which never reads", net_mac[1]);
	check_after("8b");
out:
	if (!viod_dead)
		ok(stop_viod(), "viod exits 0 on SIGTERM");
	else if (viod_pid > 0)
		ok(false, "viod ran to the end");
	unlink(sock_a);
	unlink(sock_b);
	unlink(sock_c);
	unlink(sock_d);
	for (unsigned int i = 0; i < NET_PORTS; i++)
		unlink(sock_n[i]);
	unlink(image_d);
	unlink(ctl);
	rmdir(dir);
	return tap_done();
}
