/*
 * vioguest: a guest in a process. Drives any vhost-user back-end socket
 * with the userspace front-end (src/guest/frontend.h) and the reference
 * drivers.
 *
 *   vioguest --socket PATH [--regions N] [--memory SIZE] [--spin-us N]
 *            COMMAND [OPTIONS]
 *
 * Exit status: 0 success, 1 runtime failure, 2 bad arguments; failures
 * print one line "vioguest: ..." on stderr.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <glib.h>

#include "guest/frontend.h"
#include "guest/viomb.h"
#include "guest/viornd.h"

#define EXIT_RUNTIME 1
#define EXIT_USAGE 2
#define RNG_CHUNK (64u * 1024u)

struct global_opts {
	char *socket;
	int regions;
	char *memory;
	int spin_us;
	int timeout_ms;
	gboolean add_mem_reg;
	gboolean no_event_idx;
	gboolean verbose;
};

static struct global_opts g = {
	.regions = 1,
	.spin_us = VIOD_FE_DEFAULT_SPIN_US,
	.timeout_ms = VIOD_FE_DEFAULT_TIMEOUT_MS,
};

__attribute__((format(printf, 2, 3), noreturn))
static void die(int status, const char *fmt, ...)
{
	va_list ap;

	fputs("vioguest: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(status);
}

__attribute__((format(printf, 1, 2)))
static void verbose(const char *fmt, ...)
{
	va_list ap;

	if (!g.verbose)
		return;
	fputs("vioguest: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* "4096", "64K", "64M", "1G", "2MiB": binary multiples. false if bad. */
static bool parse_size(const char *s, uint64_t *out)
{
	uint64_t v, mult = 1;
	char *end;

	if (!s || !g_ascii_isdigit(*s))
		return false;
	errno = 0;
	v = g_ascii_strtoull(s, &end, 10);
	if (errno)
		return false;
	switch (*end) {
	case 'k': case 'K': mult = 1ull << 10; end++; break;
	case 'm': case 'M': mult = 1ull << 20; end++; break;
	case 'g': case 'G': mult = 1ull << 30; end++; break;
	default: break;
	}
	if (mult > 1 && (strcmp(end, "iB") == 0 || strcmp(end, "B") == 0))
		end += strlen(end);
	if (*end != '\0' || (v && mult > UINT64_MAX / v))
		return false;
	*out = v * mult;
	return true;
}

static uint64_t size_arg(const char *name, const char *s, uint64_t min,
			 uint64_t max)
{
	uint64_t v;

	if (!parse_size(s, &v) || v < min || v > max)
		die(EXIT_USAGE, "--%s: expected a size in [%" PRIu64 ", %" PRIu64
		    "], got '%s'", name, min, max, s ? s : "");
	return v;
}

/* Parses argv with opts; exits 2 on error. Returns remaining argc. */
static int parse_or_die(GOptionContext *ctx, int *argc, char ***argv)
{
	g_autoptr(GError) err = NULL;

	if (!g_option_context_parse(ctx, argc, argv, &err))
		die(EXIT_USAGE, "%s", err->message);
	return *argc;
}

static void fe_die(struct viod_fe *fe, int r, const char *what)
{
	const char *why = viod_fe_strerror(fe);

	die(EXIT_RUNTIME, "%s: %s", what, *why ? why : g_strerror(-r));
}

static void fe_start(struct viod_fe *fe)
{
	struct viod_fe_opts o;
	uint64_t mem = VIOD_FE_DEFAULT_MEM;
	int r;

	if (!g.socket)
		die(EXIT_USAGE, "--socket PATH is required");
	if (g.regions < 1 || g.regions > VIOD_FE_MAX_REGIONS)
		die(EXIT_USAGE, "--regions: expected 1..%u, got %d",
		    VIOD_FE_MAX_REGIONS, g.regions);
	if (g.memory)
		mem = size_arg("memory", g.memory, (uint64_t)g.regions * 4096,
			       1ull << 40);
	if (g.spin_us < 0)
		die(EXIT_USAGE, "--spin-us: expected >= 0, got %d", g.spin_us);

	viod_fe_opts_init(&o);
	o.mem_size = (size_t)mem;
	o.nregions = (unsigned int)g.regions;
	o.spin_us = (unsigned int)g.spin_us;
	o.timeout_ms = g.timeout_ms;
	o.add_mem_reg = g.add_mem_reg;
	o.no_event_idx = g.no_event_idx;
	r = viod_fe_init(fe, &o);
	if (r < 0)
		fe_die(fe, r, "guest memory");
	r = viod_fe_connect(fe, g.socket);
	if (r < 0)
		fe_die(fe, r, "connect");
}

static void fe_report(const struct viod_fe *fe)
{
	verbose("features offered 0x%016" PRIx64 " acked 0x%016" PRIx64
		", protocol offered 0x%" PRIx64 " acked 0x%" PRIx64,
		fe->features_offered, fe->features_acked, fe->pf_offered,
		fe->pf_acked);
}

static void fe_finish(struct viod_fe *fe)
{
	int r = viod_fe_disconnect(fe);

	if (r < 0)
		fe_die(fe, r, "disconnect");
}

/* ------------------------------------------------------------------ */

static int cmd_info(int argc, char **argv)
{
	int config_size = 0, virtio_id = 0, queues = 0, queue_size = 128;
	GOptionEntry entries[] = {
		{ "config-size", 0, 0, G_OPTION_ARG_INT, &config_size,
		  "Read N bytes of config space (0..256)", "N" },
		{ "virtio-id", 0, 0, G_OPTION_ARG_INT, &virtio_id,
		  "Decode config space as this device type (2: block)", "ID" },
		{ "queues", 0, 0, G_OPTION_ARG_INT, &queues,
		  "Also set up the first N queues, then stop them", "N" },
		{ "queue-size", 0, 0, G_OPTION_ARG_INT, &queue_size,
		  "Ring size for --queues (default 128)", "N" },
		{ NULL },
	};
	g_autoptr(GOptionContext) ctx = g_option_context_new("- handshake and report");
	struct viod_fe fe;
	uint8_t cfg[VU_MAX_CONFIG_SIZE];
	int r;

	g_option_context_add_main_entries(ctx, entries, NULL);
	if (parse_or_die(ctx, &argc, &argv) != 1)
		die(EXIT_USAGE, "info: unexpected argument '%s'", argv[1]);
	if (config_size < 0 || config_size > VU_MAX_CONFIG_SIZE)
		die(EXIT_USAGE, "--config-size: expected 0..%d, got %d",
		    VU_MAX_CONFIG_SIZE, config_size);
	if (virtio_id == 2 && config_size < 8)
		die(EXIT_USAGE, "--virtio-id 2 needs --config-size >= 8");
	if (queues < 0 || (unsigned int)queues > VIOD_FE_MAX_QUEUES)
		die(EXIT_USAGE, "--queues: expected 0..%u", VIOD_FE_MAX_QUEUES);
	if (queue_size < 1 || queue_size > (int)VIOD_VQ_MAX_SIZE ||
	    !viod_vq_size_valid((uint32_t)queue_size))
		die(EXIT_USAGE, "--queue-size: expected a power of two <= %u",
		    VIOD_VQ_MAX_SIZE);

	fe_start(&fe);
	r = viod_fe_negotiate(&fe, 0);
	if (r < 0)
		fe_die(&fe, r, "negotiate");
	fe_report(&fe);

	printf("features_offered=0x%016" PRIx64 "\n", fe.features_offered);
	printf("features_acked=0x%016" PRIx64 "\n", fe.features_acked);
	printf("protocol_offered=0x%" PRIx64 "\n", fe.pf_offered);
	printf("protocol_acked=0x%" PRIx64 "\n", fe.pf_acked);
	if (viod_fe_has_protocol(&fe, VU_PF_MQ))
		printf("queues=%" PRIu64 "\n", fe.queue_num);
	else
		printf("queues=-\n");
	if (viod_fe_has_protocol(&fe, VU_PF_CONFIGURE_MEM_SLOTS))
		printf("max_mem_slots=%" PRIu64 "\n", fe.max_mem_slots);
	else
		printf("max_mem_slots=-\n");
	printf("regions=%u\n", fe.nregions);

	if (config_size > 0 && viod_fe_has_protocol(&fe, VU_PF_CONFIG)) {
		r = viod_fe_get_config(&fe, 0, cfg, (uint32_t)config_size);
		if (r < 0)
			fe_die(&fe, r, "config");
		printf("config=");
		for (int i = 0; i < config_size; i++)
			printf("%02x", cfg[i]);
		printf("\n");
		if (virtio_id == 2) {
			uint64_t cap = 0;

			/* virtio 1.2, 5.2.4: capacity, le64, in 512-byte sectors. */
			for (int i = 7; i >= 0; i--)
				cap = cap << 8 | cfg[i];
			printf("capacity=%" PRIu64 "\n", cap);
		}
	} else if (config_size > 0) {
		printf("config=-\n");
	}

	if (queues > 0) {
		for (int i = 0; i < queues; i++) {
			r = viod_fe_queue_setup(&fe, (unsigned int)i,
						(uint16_t)queue_size);
			if (r < 0)
				fe_die(&fe, r, "queue setup");
		}
		r = viod_fe_driver_ok(&fe);
		if (r < 0)
			fe_die(&fe, r, "DRIVER_OK");
		for (int i = 0; i < queues; i++) {
			uint16_t base;

			r = viod_fe_queue_stop(&fe, (unsigned int)i, &base);
			if (r < 0)
				fe_die(&fe, r, "queue stop");
			printf("queue%d_base=%u\n", i, base);
		}
	}
	fflush(stdout);
	fe_finish(&fe);
	return 0;
}

static void rng_attach(struct viod_fe *fe, struct viornd *sc, uint32_t request_size,
		       int queue_size)
{
	struct viornd_opts o;
	int r;

	viornd_opts_init(&o);
	o.request_size = request_size;
	o.queue_size = (uint16_t)queue_size;
	o.nbufs = (unsigned int)queue_size;
	o.timeout_ms = g.timeout_ms;
	fe_start(fe);
	r = viornd_attach(sc, fe, &o);
	if (r < 0)
		fe_die(fe, r, "viornd attach");
	fe_report(fe);
}

static void check_queue_size(int queue_size)
{
	if (queue_size < 1 || queue_size > (int)VIOD_VQ_MAX_SIZE ||
	    !viod_vq_size_valid((uint32_t)queue_size))
		die(EXIT_USAGE, "--queue-size: expected a power of two <= %u",
		    VIOD_VQ_MAX_SIZE);
}

static int cmd_rng(int argc, char **argv)
{
	g_autofree char *bytes_s = NULL, *req_s = NULL, *out = NULL;
	gboolean hex = FALSE;
	int queue_size = VIORND_DEFAULT_QUEUE_SIZE;
	GOptionEntry entries[] = {
		{ "bytes", 0, 0, G_OPTION_ARG_STRING, &bytes_s,
		  "Bytes of entropy to read (required)", "N" },
		{ "request-size", 0, 0, G_OPTION_ARG_STRING, &req_s,
		  "Bytes per posted buffer (default 4096)", "S" },
		{ "queue-size", 0, 0, G_OPTION_ARG_INT, &queue_size,
		  "Ring size (default 128)", "N" },
		{ "hex", 0, 0, G_OPTION_ARG_NONE, &hex,
		  "Print the bytes in hex (the default)", NULL },
		{ "out", 0, 0, G_OPTION_ARG_FILENAME, &out,
		  "Write the raw bytes to FILE ('-': stdout)", "FILE" },
		{ NULL },
	};
	g_autoptr(GOptionContext) ctx = g_option_context_new("- read entropy via viornd");
	g_autofree uint8_t *buf = NULL;
	struct viod_fe fe;
	struct viornd sc;
	uint64_t n, done = 0;
	uint32_t rs = VIORND_DEFAULT_REQUEST_SIZE;
	FILE *f = stdout;
	int r;

	g_option_context_add_main_entries(ctx, entries, NULL);
	if (parse_or_die(ctx, &argc, &argv) != 1)
		die(EXIT_USAGE, "rng: unexpected argument '%s'", argv[1]);
	if (!bytes_s)
		die(EXIT_USAGE, "rng: --bytes N is required");
	n = size_arg("bytes", bytes_s, 1, UINT64_MAX);
	if (req_s)
		rs = (uint32_t)size_arg("request-size", req_s, 1,
					VIORND_MAX_REQUEST_SIZE);
	if (hex && out)
		die(EXIT_USAGE, "rng: --hex and --out are exclusive");
	check_queue_size(queue_size);

	if (out && strcmp(out, "-") != 0) {
		f = fopen(out, "wb");
		if (!f)
			die(EXIT_RUNTIME, "%s: %s", out, g_strerror(errno));
	}
	rng_attach(&fe, &sc, rs, queue_size);
	buf = g_malloc(RNG_CHUNK);
	while (done < n) {
		size_t chunk = n - done < RNG_CHUNK ? (size_t)(n - done) : RNG_CHUNK;

		r = viornd_read(&sc, buf, chunk);
		if (r < 0)
			fe_die(&fe, r, "viornd read");
		if (out) {
			if (fwrite(buf, 1, chunk, f) != chunk)
				die(EXIT_RUNTIME, "%s: %s", out, g_strerror(errno));
		} else {
			for (size_t i = 0; i < chunk; i++)
				printf("%02x", buf[i]);
		}
		done += chunk;
	}
	if (!out)
		printf("\n");
	if (fflush(f) != 0 || (f != stdout && fclose(f) != 0))
		die(EXIT_RUNTIME, "%s: %s", out ? out : "stdout", g_strerror(errno));
	verbose("%" PRIu64 " bytes in %" PRIu64 " requests (%" PRIu64 " short)",
		sc.bytes, sc.requests, sc.short_reads);
	viornd_detach(&sc);
	fe_finish(&fe);
	return 0;
}

static int cmd_rng_stream(int argc, char **argv)
{
	g_autofree char *bytes_s = NULL, *req_s = NULL;
	double seconds = 0;
	int queue_size = VIORND_DEFAULT_QUEUE_SIZE;
	GOptionEntry entries[] = {
		{ "seconds", 0, 0, G_OPTION_ARG_DOUBLE, &seconds,
		  "Stream for S seconds", "S" },
		{ "bytes", 0, 0, G_OPTION_ARG_STRING, &bytes_s,
		  "Stream until N bytes were returned", "N" },
		{ "request-size", 0, 0, G_OPTION_ARG_STRING, &req_s,
		  "Bytes per posted buffer (default 4096)", "S" },
		{ "queue-size", 0, 0, G_OPTION_ARG_INT, &queue_size,
		  "Ring size, all of it kept full (default 128)", "N" },
		{ NULL },
	};
	g_autoptr(GOptionContext) ctx =
		g_option_context_new("- entropy throughput: bytes=... seconds=... MBps=...");
	struct viornd_stream_stats st;
	struct viod_fe fe;
	struct viornd sc;
	uint64_t n = 0;
	uint32_t rs = VIORND_DEFAULT_REQUEST_SIZE;
	int r;

	g_option_context_add_main_entries(ctx, entries, NULL);
	if (parse_or_die(ctx, &argc, &argv) != 1)
		die(EXIT_USAGE, "rng-stream: unexpected argument '%s'", argv[1]);
	if (bytes_s)
		n = size_arg("bytes", bytes_s, 1, UINT64_MAX);
	if ((seconds > 0) == (n > 0) || seconds < 0 || seconds > 86400)
		die(EXIT_USAGE, "rng-stream: give exactly one of --seconds S "
		    "(0 < S <= 86400) or --bytes N");
	if (req_s)
		rs = (uint32_t)size_arg("request-size", req_s, 1,
					VIORND_MAX_REQUEST_SIZE);
	check_queue_size(queue_size);

	rng_attach(&fe, &sc, rs, queue_size);
	r = viornd_stream(&sc, seconds, n, &st);
	if (r < 0)
		fe_die(&fe, r, "viornd stream");
	printf("bytes=%" PRIu64 " seconds=%.6f MBps=%.3f\n", st.bytes, st.seconds,
	       st.seconds > 0 ? (double)st.bytes / 1e6 / st.seconds : 0.0);
	fflush(stdout);
	verbose("%" PRIu64 " requests of %u bytes, %" PRIu64 " short",
		st.requests, rs, sc.short_reads);
	viornd_detach(&sc);
	fe_finish(&fe);
	return 0;
}

/* ------------------------------------------------------------------ */
/* balloon: viomb(4).                                                  */

static volatile sig_atomic_t stop_signal;

static void on_stop_signal(int sig)
{
	stop_signal = sig;
}

static const struct {
	const char *name;
	unsigned int bit;
} balloon_features[] = {
	{ "must-tell-host", VIOMB_F_MUST_TELL_HOST },
	{ "stats", VIOMB_F_STATS_VQ },
	{ "deflate-on-oom", VIOMB_F_DEFLATE_ON_OOM },
	{ "reporting", VIOMB_F_PAGE_REPORTING },
};

/* "must-tell-host,stats" or "none"; exits 2 on an unknown name. */
static uint64_t parse_balloon_features(const char *list)
{
	g_auto(GStrv) names = g_strsplit(list, ",", -1);
	uint64_t f = 0;

	if (strcmp(list, "none") == 0)
		return 0;
	for (char **n = names; *n; n++) {
		size_t i;

		for (i = 0; i < G_N_ELEMENTS(balloon_features); i++)
			if (strcmp(*n, balloon_features[i].name) == 0)
				break;
		if (i == G_N_ELEMENTS(balloon_features))
			die(EXIT_USAGE, "--features: unknown feature '%s' (must-tell-host, "
			    "stats, deflate-on-oom, reporting, none)", *n);
		f |= 1ull << balloon_features[i].bit;
	}
	return f;
}

static void balloon_feature_names(uint64_t f, char *buf, size_t len)
{
	size_t used = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < G_N_ELEMENTS(balloon_features); i++)
		if (f & (1ull << balloon_features[i].bit))
			used += (size_t)g_snprintf(buf + used, len - used, "%s%s",
						   used ? "," : "", balloon_features[i].name);
	if (used == 0)
		g_strlcpy(buf, "none", len);
}

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Host memory backing guest memory, as the host sees it (the memfd). */
static uint64_t guest_resident(const struct viod_fe *fe)
{
	struct stat st;

	if (fstat(fe->memfd, &st) < 0)
		return 0;
	return (uint64_t)st.st_blocks * 512;
}

struct balloon_run {
	bool until;
	int64_t deadline;        /* ns, -1: none */
	bool printed;
	uint32_t npages, actual, npages_raw;
	uint64_t stats_served;
	const struct viod_fe *fe;
};

/* hw.viomb.npages / hw.viomb.actual, as sysctl(8) prints them, on change. */
static void balloon_print(const struct viomb *sc, struct balloon_run *br)
{
	if (!br->printed || viomb_npages(sc) != br->npages)
		printf("hw.viomb.npages = %u\n", viomb_npages(sc));
	if (!br->printed || viomb_actual(sc) != br->actual)
		printf("hw.viomb.actual = %u\n", viomb_actual(sc));
	if (br->printed && sc->npages_raw != br->npages_raw &&
	    sc->npages_raw != viomb_npages(sc))
		verbose("device asks for %u pages; clamped to the %zu-page pool",
			sc->npages_raw, viod_fe_pool_pages(sc->fe));
	if (sc->st.stats_served != br->stats_served)
		verbose("stats requests served: %" PRIu64, sc->st.stats_served);
	if (br->printed && viomb_actual(sc) != br->actual)
		verbose("guest memory resident on the host: %" PRIu64 " KiB",
			guest_resident(br->fe) / 1024);
	fflush(stdout);
	br->printed = true;
	br->npages = viomb_npages(sc);
	br->actual = viomb_actual(sc);
	br->npages_raw = sc->npages_raw;
	br->stats_served = sc->st.stats_served;
}

static int balloon_cb(struct viomb *sc, void *opaque)
{
	struct balloon_run *br = opaque;

	balloon_print(sc, br);
	if (stop_signal)
		return 1;
	if (br->until && viomb_reached(sc))
		return 1;
	if (br->deadline >= 0 && now_ns() >= br->deadline)
		return br->until ? -ETIMEDOUT : 1;
	return 0;
}

static int cmd_balloon(int argc, char **argv)
{
	g_autofree char *features_s = NULL;
	gboolean follow = FALSE, until = FALSE, touch = FALSE, verbose_opt = FALSE;
	double seconds = -1;
	int queue_size = VIOMB_DEFAULT_QUEUE_SIZE;
	GOptionEntry entries[] = {
		{ "follow", 0, 0, G_OPTION_ARG_NONE, &follow,
		  "Follow the host's target until SIGINT/SIGTERM (or --seconds)", NULL },
		{ "until-reached", 0, 0, G_OPTION_ARG_NONE, &until,
		  "Exit 0 once actual == npages, 1 after --seconds (the default)", NULL },
		{ "seconds", 0, 0, G_OPTION_ARG_DOUBLE, &seconds,
		  "Time limit (default: 60 with --until-reached, none with --follow)", "S" },
		{ "features", 0, 0, G_OPTION_ARG_STRING, &features_s,
		  "Features to accept if offered: must-tell-host,stats,deflate-on-oom,"
		  "reporting or none (default: the first three)", "LIST" },
		{ "touch", 0, 0, G_OPTION_ARG_NONE, &touch,
		  "Write every page of the pool at start, so the host backs it", NULL },
		{ "queue-size", 0, 0, G_OPTION_ARG_INT, &queue_size,
		  "Ring size of each queue (default 64)", "N" },
		{ "verbose", 'v', 0, G_OPTION_ARG_NONE, &verbose_opt,
		  "Report negotiation, statistics and host memory on stderr", NULL },
		{ NULL },
	};
	g_autoptr(GOptionContext) ctx =
		g_option_context_new("- run the viomb(4) balloon driver");
	struct balloon_run br = { .deadline = -1 };
	struct sigaction sa;
	struct viomb_opts o;
	struct viod_fe fe;
	struct viomb sc;
	char names[128];
	int r;

	g_option_context_add_main_entries(ctx, entries, NULL);
	if (parse_or_die(ctx, &argc, &argv) != 1)
		die(EXIT_USAGE, "balloon: unexpected argument '%s'", argv[1]);
	if (follow && until)
		die(EXIT_USAGE, "balloon: --follow and --until-reached are exclusive");
	if (seconds != -1 && !(seconds > 0 && seconds <= 86400 * 365))
		die(EXIT_USAGE, "--seconds: expected 0 < S <= 31536000");
	check_queue_size(queue_size);
	if (verbose_opt)
		g.verbose = TRUE;
	br.until = !follow;
	if (seconds < 0 && br.until)
		seconds = 60;

	viomb_opts_init(&o);
	if (features_s)
		o.features = parse_balloon_features(features_s);
	if (o.features & (1ull << VIOMB_F_PAGE_REPORTING) &&
	    queue_size < (int)VIOMB_REPORT_MAX_SG)
		verbose("queue size %d: reports carry at most %d runs", queue_size,
			queue_size);
	o.queue_size = (uint16_t)queue_size;
	o.touch_memory = touch;
	o.ack_timeout_ms = g.timeout_ms;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	fe_start(&fe);
	r = viomb_attach(&sc, &fe, &o);
	if (r < 0)
		fe_die(&fe, r, "viomb attach");
	fe_report(&fe);
	balloon_feature_names(fe.features_acked & VIOMB_FEATURES_SUPPORTED, names,
			      sizeof(names));
	verbose("balloon features %s; queues inflate 0 deflate 1 stats %d reporting %d; "
		"pool %zu pages; guest memory resident on the host: %" PRIu64 " KiB",
		names, sc.q_stats, sc.q_report, viod_fe_pool_pages(&fe),
		guest_resident(&fe) / 1024);
	br.fe = &fe;
	if (seconds > 0)
		br.deadline = now_ns() + (int64_t)(seconds * 1e9);

	balloon_print(&sc, &br);
	r = balloon_cb(&sc, &br);
	if (r == 0)
		r = viomb_run(&sc, balloon_cb, &br);
	if (r == -ETIMEDOUT && !sc.broken)
		die(EXIT_RUNTIME, "balloon: actual %u did not reach npages %u within %g s",
		    viomb_actual(&sc), viomb_npages(&sc), seconds);
	if (r < 0)
		fe_die(&fe, r, "viomb");
	balloon_print(&sc, &br);
	verbose("inflated %" PRIu64 " pages in %" PRIu64 " requests, deflated %" PRIu64
		" in %" PRIu64 ", reported %" PRIu64 " in %" PRIu64 ", stats served %"
		PRIu64 ", config changes %" PRIu64 ", clamped reads %" PRIu64
		", actual mismatches %" PRIu64 "%s",
		sc.st.inflated, sc.st.inflate_reqs, sc.st.deflated, sc.st.deflate_reqs,
		sc.st.reported, sc.st.report_reqs, sc.st.stats_served,
		sc.st.config_changes, sc.st.clamped, sc.st.actual_mismatch,
		stop_signal ? " (stopped by signal)" : "");
	viomb_detach(&sc);
	fe_finish(&fe);
	return 0;
}

static const struct {
	const char *name;
	int (*fn)(int argc, char **argv);
} commands[] = {
	{ "info", cmd_info },
	{ "rng", cmd_rng },
	{ "rng-stream", cmd_rng_stream },
	{ "balloon", cmd_balloon },
};

int main(int argc, char **argv)
{
	GOptionEntry entries[] = {
		{ "socket", 's', 0, G_OPTION_ARG_FILENAME, &g.socket,
		  "vhost-user socket of the back-end (required)", "PATH" },
		{ "regions", 0, 0, G_OPTION_ARG_INT, &g.regions,
		  "Split guest memory into N regions, 1..8 (default 1)", "N" },
		{ "memory", 0, 0, G_OPTION_ARG_STRING, &g.memory,
		  "Guest memory size (default 64M)", "SIZE" },
		{ "spin-us", 0, 0, G_OPTION_ARG_INT, &g.spin_us,
		  "Busy-poll budget before sleeping on a call (default 50)", "N" },
		{ "timeout-ms", 0, 0, G_OPTION_ARG_INT, &g.timeout_ms,
		  "Timeout for replies and completions (default 10000)", "MS" },
		{ "add-mem-reg", 0, 0, G_OPTION_ARG_NONE, &g.add_mem_reg,
		  "Send memory with ADD_MEM_REG when the back-end supports it", NULL },
		{ "no-event-idx", 0, 0, G_OPTION_ARG_NONE, &g.no_event_idx,
		  "Do not negotiate VIRTIO_RING_F_EVENT_IDX", NULL },
		{ "verbose", 'v', 0, G_OPTION_ARG_NONE, &g.verbose,
		  "Report negotiation and statistics on stderr", NULL },
		{ NULL },
	};
	g_autoptr(GOptionContext) ctx = g_option_context_new("COMMAND [OPTIONS]");
	g_autofree char *cmdline = NULL;

	g_option_context_set_summary(ctx,
		"A userspace vhost-user front-end (a guest in a process).");
	g_option_context_set_description(ctx,
		"Commands:\n"
		"  info [--config-size N] [--virtio-id ID] [--queues N] [--queue-size N]\n"
		"  rng --bytes N [--request-size S] [--queue-size N] [--hex | --out FILE]\n"
		"  rng-stream (--seconds S | --bytes N) [--request-size S] [--queue-size N]\n"
		"  balloon [--follow | --until-reached] [--seconds S] [--features LIST]\n"
		"          [--touch] [--queue-size N] [--verbose]\n"
		"\n'vioguest COMMAND --help' describes a command's options.\n"
		"Exit status: 0 success, 1 runtime failure, 2 bad arguments.\n");
	/* Stop at the command: its options belong to it. */
	g_option_context_set_strict_posix(ctx, TRUE);
	g_option_context_add_main_entries(ctx, entries, NULL);
	parse_or_die(ctx, &argc, &argv);
	if (argc < 2)
		die(EXIT_USAGE, "missing COMMAND (info, rng, rng-stream, balloon); see --help");

	for (size_t i = 0; i < G_N_ELEMENTS(commands); i++) {
		if (strcmp(argv[1], commands[i].name) == 0) {
			cmdline = g_strdup_printf("vioguest %s", commands[i].name);
			argv[1] = cmdline;
			g_set_prgname(cmdline);
			return commands[i].fn(argc - 1, argv + 1);
		}
	}
	die(EXIT_USAGE, "unknown command '%s' (info, rng, rng-stream, balloon)", argv[1]);
}
