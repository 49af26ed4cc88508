/*
 * viobench: drives viod (or any vhost-user back-end) through the reference
 * drivers and measures it beside a baseline measured in the same run.
 *
 *   viobench rng --socket PATH [--sizes 4096,65536] [--seconds S] [--rounds N]
 *   viobench balloon --socket PATH --control CTL [--device ID] [--memory MB]
 *            [--rounds N]
 *
 * For each request size, rounds alternate the baseline (getrandom() into
 * a buffer of that size, in this process) with viornd streaming through
 * the back-end (every ring slot in flight), and the medians are printed
 * with the ratio back-end/baseline. One line per size, machine-readable.
 *
 * balloon: the viomb reference driver, with all of its memory written
 * first, follows a target of (almost) all of it set through viod's control
 * store; the rate is the host memory released (the front-end's memfd
 * blocks) over the time from the target write to actual == target and
 * that memory released (a back-end may punch after its ack). The
 * baseline punches the same amount out of a written memfd in the driver's
 * batch size (256 pages), in the same process.
 */
#include <errno.h>
#include <signal.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>
#include <time.h>

#include "guest/frontend.h"
#include "guest/viomb.h"
#include "guest/viornd.h"
#include "viod/store.h"

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Bytes per second of getrandom() into a buffer of size bytes. */
static double baseline_getrandom(size_t size, double seconds)
{
	g_autofree uint8_t *buf = g_malloc(size);
	uint64_t bytes = 0;
	double t0 = now_s(), t;

	do {
		for (int i = 0; i < 16; i++) {
			size_t done = 0;

			while (done < size) {
				ssize_t n = getrandom(buf + done, size - done, 0);

				if (n < 0 && errno != EINTR)
					return -1;
				if (n > 0)
					done += (size_t)n;
			}
			bytes += size;
		}
		t = now_s() - t0;
	} while (t < seconds);
	return (double)bytes / t;
}

/* Bytes per second through the back-end at path, or < 0 on failure. */
static double through_backend(const char *path, uint32_t size, double seconds,
			      unsigned int regions)
{
	struct viod_fe_opts fo;
	struct viornd_opts ro;
	struct viornd_stream_stats st;
	struct viod_fe fe;
	struct viornd sc;
	double rate = -1;

	viod_fe_opts_init(&fo);
	fo.nregions = regions;
	/* Room for a full ring of the largest requests plus the rings. */
	fo.mem_size = (size_t)size * 256 + (16u << 20);
	fo.mem_size = (fo.mem_size + 0x1fffff) & ~(size_t)0x1fffff;
	viornd_opts_init(&ro);
	ro.request_size = size;
	ro.queue_size = 256;
	ro.nbufs = 256;
	if (viod_fe_init(&fe, &fo) < 0) {
		fprintf(stderr, "viobench: guest memory: %s\n", viod_fe_strerror(&fe));
		return -1;
	}
	if (viod_fe_connect(&fe, path) == 0 && viornd_attach(&sc, &fe, &ro) == 0) {
		if (viornd_stream(&sc, seconds, 0, &st) == 0 && st.seconds > 0)
			rate = (double)st.bytes / st.seconds;
		viornd_detach(&sc);
	}
	if (rate < 0)
		fprintf(stderr, "viobench: %s: %s\n", path, viod_fe_strerror(&fe));
	viod_fe_disconnect(&fe);
	return rate;
}

static double median(double *v, unsigned int n);

static uint64_t fd_allocated(int fd)
{
	struct stat st;

	return fstat(fd, &st) == 0 ? (uint64_t)st.st_blocks * 512 : 0;
}

/*
 * Bytes per second of punching a written memfd of size bytes, chunk at a
 * time. With shared, a second process maps and has touched the memory
 * too, as a front-end does guest memory: each punch must then also unmap
 * the pages from that process (a back-end's floor, not the baseline).
 */
static double baseline_punch(size_t size, size_t chunk, bool shared)
{
	int fd = memfd_create("viobench", MFD_CLOEXEC), ready[2] = { -1, -1 };
	pid_t child = -1;
	uint8_t *p;
	double t0, t;

	if (fd < 0 || ftruncate(fd, (off_t)size) < 0)
		return -1;
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		close(fd);
		return -1;
	}
	for (size_t off = 0; off < size; off += 4096)
		p[off] = 1;
	if (shared && pipe(ready) == 0 && (child = fork()) == 0) {
		for (size_t off = 0; off < size; off += 4096)
			(void)*(volatile uint8_t *)(p + off);
		if (write(ready[1], "r", 1) < 0)
			_exit(1);
		for (;;)
			pause();
	}
	if (child > 0) {
		char c;

		if (read(ready[0], &c, 1) != 1)
			child = -1;
	}
	if (ready[0] >= 0) {
		close(ready[0]);
		close(ready[1]);
	}
	t0 = now_s();
	for (size_t off = 0; off < size; off += chunk)
		if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off,
			      (off_t)chunk) < 0)
			break;
	t = now_s() - t0;
	if (child > 0) {
		kill(child, SIGKILL);
		waitpid(child, NULL, 0);
	}
	munmap(p, size);
	close(fd);
	return (double)size / t;
}

/*
 * One balloon round: attach viomb with written memory, ask for all of it
 * through the store, time until actual reaches it; *rate is bytes the
 * host got back per second. Deflates to 0 before returning.
 */
static int balloon_round(const char *path, const char *ctl, const char *id, size_t mem,
			 int spin_us, double *rate, double *freed)
{
	g_autoptr(GError) err = NULL;
	g_autoptr(ViodStoreClient) c = viod_store_client_connect(ctl, &err);
	g_autofree char *key = g_strdup_printf("/devices/%s/target", id);
	g_autofree char *value = NULL;
	struct viod_fe_opts fo;
	struct viomb_opts mo;
	struct viod_fe fe;
	struct viomb sc;
	uint64_t before, after, want;
	uint32_t target;
	double t0, t;
	int rc = -1;

	if (!c) {
		fprintf(stderr, "viobench: %s: %s\n", ctl, err->message);
		return -1;
	}
	viod_fe_opts_init(&fo);
	fo.mem_size = mem;
	if (spin_us >= 0)
		fo.spin_us = (unsigned int)spin_us;
	viomb_opts_init(&mo);
	mo.features = 1ull << VIOMB_F_MUST_TELL_HOST;
	mo.touch_memory = true;
	if (viod_fe_init(&fe, &fo) < 0 || viod_fe_connect(&fe, path) < 0 ||
	    viomb_attach(&sc, &fe, &mo) < 0) {
		fprintf(stderr, "viobench: %s: %s\n", path, viod_fe_strerror(&fe));
		viod_fe_disconnect(&fe);
		return -1;
	}
	target = (uint32_t)(viod_fe_pool_pages(&fe) - 64);
	value = g_strdup_printf("%u", target);
	want = (uint64_t)target * VIOMB_PAGE_SIZE;
	before = fd_allocated(fe.memfd);
	t0 = now_s();
	if (!viod_store_client_write(c, key, value, &err)) {
		fprintf(stderr, "viobench: target: %s\n", err->message);
		goto out;
	}
	while (viomb_actual(&sc) < target)
		if (viomb_step(&sc, 1000) < 0)
			goto out;
	/* The clock stops when the memory is back, not at the last ack: a
	 * back-end may release pages after acknowledging them. */
	after = fd_allocated(fe.memfd);
	for (double last = now_s(), give_up = last + 10; before - after < want;) {
		uint64_t now_alloc;

		g_usleep(50);
		now_alloc = fd_allocated(fe.memfd);
		if (now_alloc != after)
			last = now_s();
		after = now_alloc;
		/* Nothing more in 50 ms, or 10 s in all: take what came. */
		if (now_s() - last > 0.05 || now_s() > give_up)
			break;
	}
	t = now_s() - t0;
	after = fd_allocated(fe.memfd);
	*freed = (double)(before - after);
	*rate = *freed / t;
	rc = 0;
	viod_store_client_write(c, key, "0", NULL);
	while (viomb_actual(&sc) > 0)
		if (viomb_step(&sc, 1000) < 0)
			break;
out:
	viomb_detach(&sc);
	viod_fe_disconnect(&fe);
	return rc;
}

static int bench_balloon(const char *path, const char *ctl, const char *id, int mem_mb,
			 int spin_us, int rounds)
{
	size_t mem = (size_t)mem_mb << 20;
	double ours[50], peer[50], floor_[50], freed = 0;

	for (int r = 0; r < rounds; r++) {
		if (balloon_round(path, ctl, id, mem, spin_us, &ours[r], &freed) < 0)
			return 1;
		peer[r] = baseline_punch((size_t)freed & ~(size_t)0xfffff, 1u << 20, false);
		floor_[r] = baseline_punch((size_t)freed & ~(size_t)0xfffff, 1u << 20, true);
		if (peer[r] < 0 || floor_[r] < 0)
			return 1;
	}
	printf("%-44s %8s\n", "release (median of rounds)", "GiB/s");
	printf("%-44s %8.2f\n", "viod balloon, viomb driver", median(ours, (unsigned int)rounds) / 1073741824.0);
	printf("%-44s %8.2f\n", "fallocate punch, 1 MiB, memfd", median(peer, (unsigned int)rounds) / 1073741824.0);
	printf("%-44s %8.2f\n", "fallocate punch, 1 MiB, memfd mapped twice",
	       median(floor_, (unsigned int)rounds) / 1073741824.0);
	printf("ratio viod/fallocate %.2fx (%.2fx of the mapped-twice punch); %.0f MiB released per round\n",
	       median(ours, (unsigned int)rounds) / median(peer, (unsigned int)rounds),
	       median(ours, (unsigned int)rounds) / median(floor_, (unsigned int)rounds),
	       freed / 1048576.0);
	return 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double median(double *v, unsigned int n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static int usage_error(const char *msg)
{
	fprintf(stderr, "viobench: %s (see viobench --help)\n", msg);
	return 2;
}

int main(int argc, char **argv)
{
	g_autofree char *socket = NULL, *sizes = NULL, *control = NULL, *device = NULL;
	gint memory_mb = 1024, spin_us = -1;
	g_auto(GStrv) size_list = NULL;
	gdouble seconds = 2.0;
	gint rounds = 3, regions = 1;
	GOptionEntry entries[] = {
		{ "socket", 's', 0, G_OPTION_ARG_FILENAME, &socket, "Back-end socket", "PATH" },
		{ "sizes", 0, 0, G_OPTION_ARG_STRING, &sizes,
		  "Request sizes in bytes (default 4096,65536)", "N,N" },
		{ "seconds", 0, 0, G_OPTION_ARG_DOUBLE, &seconds, "Per measurement (default 2)", "S" },
		{ "rounds", 0, 0, G_OPTION_ARG_INT, &rounds, "Alternating rounds (default 3)", "N" },
		{ "regions", 0, 0, G_OPTION_ARG_INT, &regions, "Guest memory regions (default 1)", "N" },
		{ "control", 0, 0, G_OPTION_ARG_FILENAME, &control, "balloon: viod's control socket", "PATH" },
		{ "device", 0, 0, G_OPTION_ARG_STRING, &device, "balloon: device id (default b0)", "ID" },
		{ "memory", 0, 0, G_OPTION_ARG_INT, &memory_mb, "balloon: guest memory MiB (default 1024)", "MB" },
		{ "spin-us", 0, 0, G_OPTION_ARG_INT, &spin_us, "balloon: driver's busy-poll before sleeping (default 50)", "US" },
		{ NULL }
	};
	g_autoptr(GOptionContext) ctx = g_option_context_new("rng|balloon - benchmark against a peer");
	g_autoptr(GError) err = NULL;

	g_option_context_add_main_entries(ctx, entries, NULL);
	if (!g_option_context_parse(ctx, &argc, &argv, &err))
		return usage_error(err->message);
	if (argc != 2 || (g_strcmp0(argv[1], "rng") && g_strcmp0(argv[1], "balloon")))
		return usage_error("expected the benchmark name: rng or balloon");
	if (!socket)
		return usage_error("--socket is required");
	if (!g_strcmp0(argv[1], "balloon")) {
		if (!control)
			return usage_error("balloon needs --control");
		if (memory_mb < 64 || memory_mb > 65536 || rounds < 1 || rounds > 50)
			return usage_error("--memory or --rounds out of range");
		return bench_balloon(socket, control, device ? device : "b0", memory_mb, spin_us,
				     rounds);
	}
	if (seconds <= 0 || seconds > 600 || rounds < 1 || rounds > 50 ||
	    regions < 1 || regions > VIOD_FE_MAX_REGIONS)
		return usage_error("--seconds, --rounds or --regions out of range");
	size_list = g_strsplit(sizes ? sizes : "4096,65536", ",", -1);

	printf("%-10s %14s %14s %8s\n", "request", "viod MB/s", "getrandom MB/s", "ratio");
	for (guint i = 0; size_list[i]; i++) {
		guint64 size;
		double ours[50], peer[50], mo, mp;

		if (!g_ascii_string_to_unsigned(size_list[i], 10, 1, VIORND_MAX_REQUEST_SIZE,
						&size, &err))
			return usage_error(err->message);
		for (int r = 0; r < rounds; r++) {
			peer[r] = baseline_getrandom(size, seconds);
			ours[r] = through_backend(socket, (uint32_t)size, seconds,
						  (unsigned int)regions);
			if (ours[r] < 0 || peer[r] < 0)
				return 1;
		}
		mo = median(ours, (unsigned int)rounds);
		mp = median(peer, (unsigned int)rounds);
		printf("%-10" G_GUINT64_FORMAT " %14.1f %14.1f %7.2fx\n", size,
		       mo / 1e6, mp / 1e6, mo / mp);
		fflush(stdout);
	}
	return 0;
}
