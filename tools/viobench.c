/*
 * viobench: drives viod (or any vhost-user back-end) through the reference
 * drivers and measures it beside a baseline measured in the same run.
 *
 *   viobench rng --socket PATH [--sizes 4096,65536] [--seconds S] [--rounds N]
 *
 * For each request size, rounds alternate the baseline (getrandom() into
 * a buffer of that size, in this process) with viornd streaming through
 * the back-end (every ring slot in flight), and the medians are printed
 * with the ratio back-end/baseline. One line per size, machine-readable.
 */
#include <errno.h>
#include <glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>
#include <time.h>

#include "guest/frontend.h"
#include "guest/viornd.h"

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
	g_autofree char *socket = NULL, *sizes = NULL;
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
		{ NULL }
	};
	g_autoptr(GOptionContext) ctx = g_option_context_new("rng - benchmark against a peer");
	g_autoptr(GError) err = NULL;

	g_option_context_add_main_entries(ctx, entries, NULL);
	if (!g_option_context_parse(ctx, &argc, &argv, &err))
		return usage_error(err->message);
	if (argc != 2 || g_strcmp0(argv[1], "rng") != 0)
		return usage_error("expected the benchmark name: rng");
	if (!socket)
		return usage_error("--socket is required");
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
