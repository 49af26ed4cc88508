/*
 * vioguest: a guest in a process. Drives any vhost-user back-end socket
 * with the userspace front-end (src/guest/frontend.h) and the reference
 * drivers.
 *
 *   vioguest --socket PATH [--regions N] [--memory SIZE] [--spin-us N]
 *            COMMAND [OPTIONS]
 *
 * COMMAND: info, rng, rng-stream, balloon (viomb(4)), blk (ld(4) at virtio),
 * net (vioif(4)).
 *
 * Exit status: 0 success, 1 runtime failure, 2 bad arguments; failures
 * print one line "vioguest: ..." on stderr.
 */
#include <endian.h>
#include <arpa/inet.h>
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
#include "guest/ld.h"
#include "guest/vioif.h"
#include "guest/vioif-respond.h"
#include "guest/viomb.h"
#include "guest/viornd.h"

#define EXIT_RUNTIME 1
#define EXIT_USAGE 2
#define RNG_CHUNK (64u * 1024u)
/* Host buffer for blk read/write/verify: requests are cut from it. */
#define BLK_CHUNK (8u << 20)

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

/* A command or an action of one: argv[0] is its name. */
struct action {
	const char *name;
	int (*fn)(int argc, char **argv);
};

/*
 * Runs the action named by argv[1] of command cmd ("blk"), or prints
 * the list (names) for --help; exits 2 for a missing or unknown one.
 */
static int run_action(const char *cmd, const struct action *t, size_t n,
		      const char *names, int argc, char **argv)
{
	g_autofree char *name = NULL;

	if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		printf("Usage: vioguest %s ACTION [OPTIONS]\n\nActions: %s\n"
		       "'vioguest %s ACTION --help' describes an action's options.\n",
		       cmd, names, cmd);
		return 0;
	}
	if (argc < 2)
		die(EXIT_USAGE, "%s: missing ACTION (%s)", cmd, names);
	for (size_t i = 0; i < n; i++) {
		if (strcmp(argv[1], t[i].name) == 0) {
			name = g_strdup_printf("vioguest %s %s", cmd, t[i].name);
			argv[1] = name;
			g_set_prgname(name);
			return t[i].fn(argc - 1, argv + 1);
		}
	}
	die(EXIT_USAGE, "%s: unknown action '%s' (%s)", cmd, argv[1], names);
}

/*
 * Parses an action's options: the n entry sets in order (the action's
 * own first, then those it shares; NULL sets are skipped).
 */
static void action_parse(const char *cmd, const char *action, const char *summary,
			 GOptionEntry *const *sets, size_t n, int argc, char **argv)
{
	g_autoptr(GOptionContext) ctx = g_option_context_new(summary);

	for (size_t i = 0; i < n; i++)
		if (sets[i])
			g_option_context_add_main_entries(ctx, sets[i], NULL);
	if (parse_or_die(ctx, &argc, &argv) != 1)
		die(EXIT_USAGE, "%s %s: unexpected argument '%s'", cmd, action, argv[1]);
}

/* A device feature bit and the name the command line gives it. */
struct feature_name {
	const char *name;
	unsigned int bit;
};

/* The names of the bits of f in t, comma-separated, or "none". */
static void feature_names(const struct feature_name *t, size_t n, uint64_t f,
			  char *buf, size_t len)
{
	size_t used = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < n; i++)
		if (f >> t[i].bit & 1)
			used += (size_t)g_snprintf(buf + used, len - used, "%s%s",
						   used ? "," : "", t[i].name);
	if (used == 0)
		g_strlcpy(buf, "none", len);
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

/* A driver's attach result r: exits 1 on failure (naming --memory when
 * guest memory ran out), else reports the negotiation. */
static void attach_check(struct viod_fe *fe, int r, const char *what)
{
	if (r == -ENOMEM)
		die(EXIT_RUNTIME, "%s: %s (guest memory: --memory)", what,
		    viod_fe_strerror(fe));
	if (r < 0)
		fe_die(fe, r, what);
	fe_report(fe);
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

/* Data out: a file (--out, "-" for stdout) or, without one, hex on stdout. */
struct data_out {
	FILE *f;
	const char *path;
};

static void data_out_open(struct data_out *o, const char *path)
{
	o->path = path;
	o->f = stdout;
	if (path && strcmp(path, "-") != 0) {
		o->f = fopen(path, "wb");
		if (!o->f)
			die(EXIT_RUNTIME, "%s: %s", path, g_strerror(errno));
	}
}

static void data_out_write(struct data_out *o, const uint8_t *buf, size_t len)
{
	if (o->path) {
		if (fwrite(buf, 1, len, o->f) != len)
			die(EXIT_RUNTIME, "%s: %s", o->path, g_strerror(errno));
		return;
	}
	for (size_t i = 0; i < len; i++)
		printf("%02x", buf[i]);
}

static void data_out_close(struct data_out *o)
{
	if (!o->path)
		printf("\n");
	if (fflush(o->f) != 0 || (o->f != stdout && fclose(o->f) != 0))
		die(EXIT_RUNTIME, "%s: %s", o->path ? o->path : "stdout", g_strerror(errno));
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
	struct data_out o;
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

	data_out_open(&o, out);
	rng_attach(&fe, &sc, rs, queue_size);
	buf = g_malloc(RNG_CHUNK);
	while (done < n) {
		size_t chunk = n - done < RNG_CHUNK ? (size_t)(n - done) : RNG_CHUNK;

		r = viornd_read(&sc, buf, chunk);
		if (r < 0)
			fe_die(&fe, r, "viornd read");
		data_out_write(&o, buf, chunk);
		done += chunk;
	}
	data_out_close(&o);
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

/* SIGINT and SIGTERM set stop_signal: long-running actions end cleanly. */
static void catch_stop_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

static const struct feature_name balloon_features[] = {
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

	catch_stop_signals();

	fe_start(&fe);
	r = viomb_attach(&sc, &fe, &o);
	if (r < 0)
		fe_die(&fe, r, "viomb attach");
	fe_report(&fe);
	feature_names(balloon_features, G_N_ELEMENTS(balloon_features),
		      fe.features_acked & VIOMB_FEATURES_SUPPORTED, names, sizeof(names));
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

/* ------------------------------------------------------------------ */
/* blk: ld(4) at virtio.                                               */

/* Options every blk action takes. */
static struct {
	int queues;
	int qd;
	int queue_size;           /* 0: enough for qd requests */
	char *max_transfer;
	char *seg_size;
} blk_o = { .queues = 1, .qd = 0 };

static GOptionEntry blk_common_entries[] = {
	{ "queues", 0, 0, G_OPTION_ARG_INT, &blk_o.queues,
	  "Request queues to use, 1..8; fewer if the device has fewer (default 1)", "N" },
	{ "qd", 0, 0, G_OPTION_ARG_INT, &blk_o.qd,
	  "Requests in flight per queue (default 16; bench: 32)", "N" },
	{ "queue-size", 0, 0, G_OPTION_ARG_INT, &blk_o.queue_size,
	  "Ring size (default: 128, or more for a deep --qd)", "N" },
	{ "max-transfer", 0, 0, G_OPTION_ARG_STRING, &blk_o.max_transfer,
	  "Data bytes per request (default 128K; bench: --bs)", "SIZE" },
	{ "seg-size", 0, 0, G_OPTION_ARG_STRING, &blk_o.seg_size,
	  "Bytes per data descriptor at most (default: the device's size_max)", "SIZE" },
	{ NULL },
};

static const struct feature_name blk_features[] = {
	{ "size_max", VIRTIO_BLK_F_SIZE_MAX },
	{ "seg_max", VIRTIO_BLK_F_SEG_MAX },
	{ "ro", VIRTIO_BLK_F_RO },
	{ "blk_size", VIRTIO_BLK_F_BLK_SIZE },
	{ "flush", VIRTIO_BLK_F_FLUSH },
	{ "topology", VIRTIO_BLK_F_TOPOLOGY },
	{ "config_wce", VIRTIO_BLK_F_CONFIG_WCE },
	{ "mq", VIRTIO_BLK_F_MQ },
	{ "discard", VIRTIO_BLK_F_DISCARD },
	{ "write_zeroes", VIRTIO_BLK_F_WRITE_ZEROES },
};

/* A decimal integer in [min, max]; exits 2 otherwise. */
static uint64_t u64_arg(const char *name, const char *s, uint64_t min, uint64_t max)
{
	guint64 v;

	if (!s || !g_ascii_string_to_unsigned(s, 10, min, max, &v, NULL))
		die(EXIT_USAGE, "--%s: expected an integer in [%" PRIu64 ", %" PRIu64
		    "], got '%s'", name, min, max, s ? s : "");
	return v;
}

/* --sector N --count C: both required, the range computable. */
static void blk_range_args(const char *action, const char *sector_s,
			   const char *count_s, uint64_t *sector, uint64_t *count)
{
	if (!sector_s || !count_s)
		die(EXIT_USAGE, "blk %s: --sector N and --count C are required", action);
	*sector = u64_arg("sector", sector_s, 0, UINT64_MAX >> LD_SECTOR_SHIFT);
	*count = u64_arg("count", count_s, 1, (UINT64_MAX >> LD_SECTOR_SHIFT) - *sector);
}

/* Parses the common options (after the action's own) and attaches ld. */
static void blk_attach(struct viod_fe *fe, struct ld *sc, int default_qd,
		       uint32_t default_transfer)
{
	struct ld_opts o;
	char names[160];
	int qd = blk_o.qd ? blk_o.qd : default_qd;

	if (blk_o.queues < 1 || blk_o.queues > (int)LD_MAX_QUEUES)
		die(EXIT_USAGE, "--queues: expected 1..%u, got %d", LD_MAX_QUEUES,
		    blk_o.queues);
	if (qd < 1 || qd > (int)VIOD_VQ_MAX_SIZE)
		die(EXIT_USAGE, "--qd: expected 1..%u, got %d", VIOD_VQ_MAX_SIZE, qd);
	if (blk_o.queue_size == 0) {
		/* Room for qd requests of header, one data segment, status. */
		blk_o.queue_size = LD_DEFAULT_QUEUE_SIZE;
		while (blk_o.queue_size < 3 * qd && blk_o.queue_size < (int)VIOD_VQ_MAX_SIZE)
			blk_o.queue_size *= 2;
	}
	check_queue_size(blk_o.queue_size);
	if (blk_o.queue_size < 4 || qd > blk_o.queue_size)
		die(EXIT_USAGE, "--queue-size %d: expected >= 4 and >= --qd %d",
		    blk_o.queue_size, qd);

	ld_opts_init(&o);
	o.nqueues = (unsigned int)blk_o.queues;
	o.queue_size = (uint16_t)blk_o.queue_size;
	o.queue_depth = (unsigned int)qd;
	o.max_transfer = default_transfer;
	if (blk_o.max_transfer)
		o.max_transfer = (uint32_t)size_arg("max-transfer", blk_o.max_transfer,
						    LD_SECTOR_SIZE, LD_MAX_TRANSFER);
	if (o.max_transfer % LD_SECTOR_SIZE)
		die(EXIT_USAGE, "--max-transfer: expected a multiple of 512");
	if (blk_o.seg_size) {
		o.seg_size = (uint32_t)size_arg("seg-size", blk_o.seg_size, LD_SECTOR_SIZE,
						UINT32_MAX - LD_SECTOR_SIZE + 1);
		if (o.seg_size % LD_SECTOR_SIZE)
			die(EXIT_USAGE, "--seg-size: expected a multiple of 512");
	}
	o.timeout_ms = g.timeout_ms;

	fe_start(fe);
	attach_check(fe, ld_attach(sc, fe, &o), "ld attach");
	feature_names(blk_features, G_N_ELEMENTS(blk_features), sc->features, names,
		      sizeof(names));
	verbose("blk: %" PRIu64 " sectors of 512, blk_size %u, features %s; "
		"%u of %u queues, %u requests of %u bytes each, data in segments of "
		"%u bytes at most", sc->geo.capacity, sc->geo.blk_size,
		names, sc->nqueues, sc->geo.num_queues,
		sc->opts.queue_depth, sc->max_transfer,
		sc->seg_bytes < sc->max_transfer ? sc->seg_bytes : sc->max_transfer);
	if ((unsigned int)blk_o.queues > sc->nqueues)
		verbose("blk: asked for %d queues, the device gives %u", blk_o.queues,
			sc->nqueues);
}

static void blk_finish(struct viod_fe *fe, struct ld *sc)
{
	verbose("blk: %" PRIu64 " requests, %" PRIu64 " I/O errors, %" PRIu64
		" unsupported, %" PRIu64 " short reads, %" PRIu64 " times the ring was full",
		sc->st.requests, sc->st.ioerr, sc->st.unsupp, sc->st.short_in,
		sc->st.ring_full);
	ld_detach(sc);
	fe_finish(fe);
}

static void blk_parse(const char *action, const char *summary, GOptionEntry *entries,
		      int argc, char **argv)
{
	GOptionEntry *sets[] = { entries, blk_common_entries };

	action_parse("blk", action, summary, sets, G_N_ELEMENTS(sets), argc, argv);
}

/* The ID string as printable ASCII: up to the first NUL, others as \xNN. */
static void blk_print_id(const char *key, const uint8_t *id)
{
	if (key)
		printf("%s=", key);
	for (unsigned int i = 0; i < VIRTIO_BLK_ID_BYTES && id[i]; i++) {
		if (id[i] > ' ' && id[i] < 0x7f && id[i] != '\\')
			putchar(id[i]);
		else
			printf("\\x%02x", id[i]);
	}
	putchar('\n');
}

static int blk_info(int argc, char **argv)
{
	struct viod_fe fe;
	struct ld sc;
	uint8_t id[VIRTIO_BLK_ID_BYTES];
	const struct ld_geometry *geo = &sc.geo;
	char names[160];
	int r;

	blk_parse("info", "- attach and report the disk", NULL, argc, argv);
	blk_attach(&fe, &sc, LD_DEFAULT_QUEUE_DEPTH, LD_DEFAULT_MAX_TRANSFER);
	feature_names(blk_features, G_N_ELEMENTS(blk_features), sc.features, names,
		      sizeof(names));
	printf("capacity=%" PRIu64 "\n", geo->capacity);
	printf("capacity_bytes=%" PRIu64 "\n", geo->capacity << LD_SECTOR_SHIFT);
	printf("blk_size=%u\n", geo->blk_size);
	printf("features_acked=0x%016" PRIx64 "\n", fe.features_acked);
	printf("features=%s\n", names);
	printf("num_queues=%u\n", geo->num_queues);
	printf("queues=%u\n", sc.nqueues);
	printf("seg_max=%u\n", geo->seg_max);
	printf("size_max=%u\n", geo->size_max);
	printf("max_transfer=%u\n", sc.max_transfer);
	printf("readonly=%d\n", geo->readonly);
	printf("writeback=%d\n", geo->writeback);
	if (sc.features >> VIRTIO_BLK_F_TOPOLOGY & 1)
		printf("physical_block_exp=%u\nalignment_offset=%u\nmin_io_size=%u\n"
		       "opt_io_size=%u\n", geo->physical_block_exp, geo->alignment_offset,
		       geo->min_io_size, geo->opt_io_size);
	if (sc.features >> VIRTIO_BLK_F_DISCARD & 1)
		printf("max_discard_sectors=%u\nmax_discard_seg=%u\n"
		       "discard_sector_alignment=%u\n", geo->max_discard_sectors,
		       geo->max_discard_seg, geo->discard_sector_alignment);
	if (sc.features >> VIRTIO_BLK_F_WRITE_ZEROES & 1)
		printf("max_write_zeroes_sectors=%u\nmax_write_zeroes_seg=%u\n"
		       "write_zeroes_may_unmap=%d\n", geo->max_write_zeroes_sectors,
		       geo->max_write_zeroes_seg, geo->write_zeroes_may_unmap);
	r = ld_get_id(&sc, id);
	if (r == -EIO && sc.broken)
		fe_die(&fe, r, "blk get-id");
	if (r < 0)
		printf("serial=-\n");
	else
		blk_print_id("serial", id);
	fflush(stdout);
	blk_finish(&fe, &sc);
	return 0;
}

static int blk_get_id(int argc, char **argv)
{
	uint8_t id[VIRTIO_BLK_ID_BYTES];
	struct viod_fe fe;
	struct ld sc;
	int r;

	blk_parse("get-id", "- print the device ID string (VIRTIO_BLK_T_GET_ID)", NULL,
		  argc, argv);
	blk_attach(&fe, &sc, LD_DEFAULT_QUEUE_DEPTH, LD_DEFAULT_MAX_TRANSFER);
	r = ld_get_id(&sc, id);
	if (r < 0)
		fe_die(&fe, r, "blk get-id");
	blk_print_id(NULL, id);
	fflush(stdout);
	blk_finish(&fe, &sc);
	return 0;
}

static int blk_read(int argc, char **argv)
{
	g_autofree char *sector_s = NULL, *count_s = NULL, *out = NULL;
	GOptionEntry entries[] = {
		{ "sector", 0, 0, G_OPTION_ARG_STRING, &sector_s,
		  "First 512-byte sector (required)", "N" },
		{ "count", 0, 0, G_OPTION_ARG_STRING, &count_s,
		  "Sectors to read (required)", "C" },
		{ "out", 0, 0, G_OPTION_ARG_FILENAME, &out,
		  "Write the raw bytes to FILE ('-': stdout; default: hex on stdout)", "FILE" },
		{ NULL },
	};
	g_autofree uint8_t *buf = NULL;
	uint64_t sector, count, done = 0;
	struct viod_fe fe;
	struct ld sc;
	struct data_out o;
	int r;

	blk_parse("read", "- read sectors", entries, argc, argv);
	blk_range_args("read", sector_s, count_s, &sector, &count);
	data_out_open(&o, out);
	blk_attach(&fe, &sc, LD_DEFAULT_QUEUE_DEPTH, LD_DEFAULT_MAX_TRANSFER);
	buf = g_malloc(BLK_CHUNK);
	while (done < count) {
		uint64_t n = count - done;
		size_t len;

		if (n > BLK_CHUNK >> LD_SECTOR_SHIFT)
			n = BLK_CHUNK >> LD_SECTOR_SHIFT;
		len = (size_t)n << LD_SECTOR_SHIFT;
		r = ld_read(&sc, sector + done, buf, len);
		if (r < 0)
			fe_die(&fe, r, "blk read");
		data_out_write(&o, buf, len);
		done += n;
	}
	data_out_close(&o);
	blk_finish(&fe, &sc);
	return 0;
}

static void blk_fill_pattern(uint8_t *buf, uint64_t seed, uint64_t sector, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++)
		ld_pattern_sector(seed, sector + i, buf + (i << LD_SECTOR_SHIFT));
}

static int blk_write(int argc, char **argv)
{
	g_autofree char *sector_s = NULL, *count_s = NULL, *in = NULL, *pattern_s = NULL;
	GOptionEntry entries[] = {
		{ "sector", 0, 0, G_OPTION_ARG_STRING, &sector_s,
		  "First 512-byte sector (required)", "N" },
		{ "count", 0, 0, G_OPTION_ARG_STRING, &count_s,
		  "Sectors to write (required)", "C" },
		{ "in", 0, 0, G_OPTION_ARG_FILENAME, &in,
		  "Write the first C * 512 bytes of FILE ('-': stdin)", "FILE" },
		{ "pattern", 0, 0, G_OPTION_ARG_STRING, &pattern_s,
		  "Write the test pattern of SEED (as blk verify checks it)", "SEED" },
		{ NULL },
	};
	g_autofree uint8_t *buf = NULL;
	uint64_t sector, count, seed = 0, done = 0;
	struct viod_fe fe;
	struct ld sc;
	FILE *f = NULL;
	int r;

	blk_parse("write", "- write sectors", entries, argc, argv);
	blk_range_args("write", sector_s, count_s, &sector, &count);
	if (!in == !pattern_s)
		die(EXIT_USAGE, "blk write: give exactly one of --in FILE or --pattern SEED");
	if (pattern_s)
		seed = u64_arg("pattern", pattern_s, 0, UINT64_MAX);
	if (in) {
		f = strcmp(in, "-") == 0 ? stdin : fopen(in, "rb");
		if (!f)
			die(EXIT_RUNTIME, "%s: %s", in, g_strerror(errno));
	}
	blk_attach(&fe, &sc, LD_DEFAULT_QUEUE_DEPTH, LD_DEFAULT_MAX_TRANSFER);
	buf = g_malloc(BLK_CHUNK);
	while (done < count) {
		uint64_t n = count - done;
		size_t len;

		if (n > BLK_CHUNK >> LD_SECTOR_SHIFT)
			n = BLK_CHUNK >> LD_SECTOR_SHIFT;
		len = (size_t)n << LD_SECTOR_SHIFT;
		if (f) {
			size_t got = fread(buf, 1, len, f);

			if (got != len)
				die(EXIT_RUNTIME, "%s: %s after %" PRIu64 " bytes, %" PRIu64
				    " needed", in, ferror(f) ? g_strerror(errno) : "end of file",
				    (done << LD_SECTOR_SHIFT) + got, count << LD_SECTOR_SHIFT);
		} else {
			blk_fill_pattern(buf, seed, sector + done, n);
		}
		r = ld_write(&sc, sector + done, buf, len);
		if (r < 0)
			fe_die(&fe, r, "blk write");
		done += n;
	}
	if (f && f != stdin)
		fclose(f);
	blk_finish(&fe, &sc);
	return 0;
}

static int blk_verify(int argc, char **argv)
{
	g_autofree char *sector_s = NULL, *count_s = NULL, *seed_s = NULL;
	gboolean check = FALSE;
	GOptionEntry entries[] = {
		{ "sector", 0, 0, G_OPTION_ARG_STRING, &sector_s,
		  "First 512-byte sector (required)", "N" },
		{ "count", 0, 0, G_OPTION_ARG_STRING, &count_s,
		  "Sectors to verify (required)", "C" },
		{ "seed", 0, 0, G_OPTION_ARG_STRING, &seed_s,
		  "Seed of the test pattern (default 1)", "S" },
		{ "check", 0, 0, G_OPTION_ARG_NONE, &check,
		  "Only read and compare with the pattern written before", NULL },
		{ "read-only", 0, 0, G_OPTION_ARG_NONE, &check,
		  "Same as --check", NULL },
		{ NULL },
	};
	g_autofree uint8_t *buf = NULL, *want = NULL;
	uint64_t sector, count, seed = 1, bad = 0, first_bad = 0;
	struct viod_fe fe;
	struct ld sc;
	int r;

	blk_parse("verify", "- write a pattern, flush, read it back and compare",
		  entries, argc, argv);
	blk_range_args("verify", sector_s, count_s, &sector, &count);
	if (seed_s)
		seed = u64_arg("seed", seed_s, 0, UINT64_MAX);
	blk_attach(&fe, &sc, LD_DEFAULT_QUEUE_DEPTH, LD_DEFAULT_MAX_TRANSFER);
	buf = g_malloc(BLK_CHUNK);
	want = g_malloc(BLK_CHUNK);
	for (int pass = check ? 1 : 0; pass < 2; pass++) {
		for (uint64_t done = 0; done < count;) {
			uint64_t n = count - done;
			size_t len;

			if (n > BLK_CHUNK >> LD_SECTOR_SHIFT)
				n = BLK_CHUNK >> LD_SECTOR_SHIFT;
			len = (size_t)n << LD_SECTOR_SHIFT;
			blk_fill_pattern(want, seed, sector + done, n);
			if (pass == 0) {
				r = ld_write(&sc, sector + done, want, len);
				if (r < 0)
					fe_die(&fe, r, "blk verify: write");
				done += n;
				continue;
			}
			r = ld_read(&sc, sector + done, buf, len);
			if (r < 0)
				fe_die(&fe, r, "blk verify: read");
			for (uint64_t i = 0; i < n; i++) {
				size_t off = (size_t)i << LD_SECTOR_SHIFT;

				if (memcmp(buf + off, want + off, LD_SECTOR_SIZE) == 0)
					continue;
				if (bad++ == 0)
					first_bad = sector + done + i;
			}
			done += n;
		}
		if (pass == 0) {
			r = ld_flush(&sc);
			if (r < 0)
				fe_die(&fe, r, "blk verify: flush");
		}
	}
	if (bad)
		die(EXIT_RUNTIME, "blk verify: %" PRIu64 " of %" PRIu64 " sectors differ from "
		    "the pattern of seed %" PRIu64 ", the first is sector %" PRIu64,
		    bad, count, seed, first_bad);
	printf("verified=%" PRIu64 " sector=%" PRIu64 " seed=%" PRIu64 "%s\n", count,
	       sector, seed, check ? " check" : "");
	fflush(stdout);
	blk_finish(&fe, &sc);
	return 0;
}

static int blk_flush(int argc, char **argv)
{
	struct viod_fe fe;
	struct ld sc;
	int r;

	blk_parse("flush", "- flush the device's write cache", NULL, argc, argv);
	blk_attach(&fe, &sc, LD_DEFAULT_QUEUE_DEPTH, LD_DEFAULT_MAX_TRANSFER);
	r = ld_flush(&sc);
	if (r < 0)
		fe_die(&fe, r, "blk flush");
	blk_finish(&fe, &sc);
	return 0;
}

static int blk_discard_common(const char *action, bool zeroes, int argc, char **argv)
{
	g_autofree char *sector_s = NULL, *count_s = NULL;
	gboolean unmap = FALSE;
	GOptionEntry entries[] = {
		{ "sector", 0, 0, G_OPTION_ARG_STRING, &sector_s,
		  "First 512-byte sector (required)", "N" },
		{ "count", 0, 0, G_OPTION_ARG_STRING, &count_s,
		  "Sectors (required)", "C" },
		{ "unmap", 0, 0, G_OPTION_ARG_NONE, &unmap,
		  "Let the device deallocate the range (write-zeroes only)", NULL },
		{ NULL },
	};
	g_autofree char *what = g_strdup_printf("blk %s", action);
	uint64_t sector, count;
	struct viod_fe fe;
	struct ld sc;
	int r;

	if (!zeroes)
		entries[2] = (GOptionEntry){ NULL };
	blk_parse(action, zeroes ? "- VIRTIO_BLK_T_WRITE_ZEROES over a range" :
		  "- VIRTIO_BLK_T_DISCARD over a range", entries, argc, argv);
	blk_range_args(action, sector_s, count_s, &sector, &count);
	blk_attach(&fe, &sc, LD_DEFAULT_QUEUE_DEPTH, LD_DEFAULT_MAX_TRANSFER);
	r = zeroes ? ld_write_zeroes(&sc, sector, count, unmap) :
		     ld_discard(&sc, sector, count);
	if (r < 0)
		fe_die(&fe, r, what);
	blk_finish(&fe, &sc);
	return 0;
}

static int blk_discard(int argc, char **argv)
{
	return blk_discard_common("discard", false, argc, argv);
}

static int blk_write_zeroes(int argc, char **argv)
{
	return blk_discard_common("write-zeroes", true, argc, argv);
}

static const struct {
	const char *name;
	uint32_t type;
} blk_types[] = {
	{ "in", VIRTIO_BLK_T_IN },
	{ "out", VIRTIO_BLK_T_OUT },
	{ "flush", VIRTIO_BLK_T_FLUSH },
	{ "get-id", VIRTIO_BLK_T_GET_ID },
	{ "discard", VIRTIO_BLK_T_DISCARD },
	{ "write-zeroes", VIRTIO_BLK_T_WRITE_ZEROES },
};

static int blk_raw(int argc, char **argv)
{
	g_autofree char *type_s = NULL, *sector_s = NULL, *out_s = NULL, *in_s = NULL;
	g_autofree char *ioprio_s = NULL, *seg_sector_s = NULL, *seg_count_s = NULL;
	g_autofree char *seg_flags_s = NULL;
	GOptionEntry entries[] = {
		{ "type", 0, 0, G_OPTION_ARG_STRING, &type_s,
		  "in, out, flush, get-id, discard, write-zeroes or a number (required)", "T" },
		{ "sector", 0, 0, G_OPTION_ARG_STRING, &sector_s,
		  "Header sector, unchecked (default 0)", "N" },
		{ "ioprio", 0, 0, G_OPTION_ARG_STRING, &ioprio_s,
		  "Header reserved/ioprio field (default 0)", "N" },
		{ "out-len", 0, 0, G_OPTION_ARG_STRING, &out_s,
		  "Device-readable data bytes (default: 16 with --seg-*, else 0)", "B" },
		{ "in-len", 0, 0, G_OPTION_ARG_STRING, &in_s,
		  "Device-writable data bytes before the status (default 0)", "B" },
		{ "seg-sector", 0, 0, G_OPTION_ARG_STRING, &seg_sector_s,
		  "Out data starts with a discard/write-zeroes segment: its sector", "N" },
		{ "seg-count", 0, 0, G_OPTION_ARG_STRING, &seg_count_s,
		  "... its num_sectors", "C" },
		{ "seg-flags", 0, 0, G_OPTION_ARG_STRING, &seg_flags_s,
		  "... its flags", "F" },
		{ NULL },
	};
	struct virtio_blk_discard_write_zeroes seg;
	struct ld_raw_req rq = { 0 };
	g_autofree uint8_t *out = NULL, *in = NULL;
	struct viod_fe fe;
	struct ld sc;
	uint32_t used_len = 0;
	uint8_t status = 0;
	bool has_seg;
	size_t i;
	int r;

	blk_parse("raw", "- send one request unchecked; print status=N and used_len=N lines",
		  entries, argc, argv);
	if (!type_s)
		die(EXIT_USAGE, "blk raw: --type T is required");
	for (i = 0; i < G_N_ELEMENTS(blk_types); i++)
		if (strcmp(type_s, blk_types[i].name) == 0)
			break;
	rq.type = i < G_N_ELEMENTS(blk_types) ? blk_types[i].type :
		  (uint32_t)u64_arg("type", type_s, 0, UINT32_MAX);
	if (sector_s)
		rq.sector = u64_arg("sector", sector_s, 0, UINT64_MAX);
	if (ioprio_s)
		rq.ioprio = (uint32_t)u64_arg("ioprio", ioprio_s, 0, UINT32_MAX);
	has_seg = seg_sector_s || seg_count_s || seg_flags_s;
	rq.out_len = has_seg ? sizeof(seg) : 0;
	if (out_s)
		rq.out_len = (uint32_t)u64_arg("out-len", out_s, 0, LD_MAX_TRANSFER);
	if (in_s)
		rq.in_len = (uint32_t)u64_arg("in-len", in_s, 0, LD_MAX_TRANSFER);
	if (has_seg && rq.out_len < sizeof(seg))
		die(EXIT_USAGE, "blk raw: a segment needs --out-len >= 16");
	out = g_malloc0(rq.out_len + 1);
	in = g_malloc0(rq.in_len + 1);
	if (has_seg) {
		seg.sector = htole64(seg_sector_s ? u64_arg("seg-sector", seg_sector_s, 0,
							    UINT64_MAX) : 0);
		seg.num_sectors = htole32(seg_count_s ? (uint32_t)u64_arg("seg-count",
						seg_count_s, 0, UINT32_MAX) : 0);
		seg.flags = htole32(seg_flags_s ? (uint32_t)u64_arg("seg-flags",
						seg_flags_s, 0, UINT32_MAX) : 0);
		memcpy(out, &seg, sizeof(seg));
	}
	rq.out = out;
	rq.in = in;
	blk_attach(&fe, &sc, LD_DEFAULT_QUEUE_DEPTH, LD_DEFAULT_MAX_TRANSFER);
	r = ld_raw(&sc, 0, &rq, &status, &used_len);
	if (r < 0)
		fe_die(&fe, r, "blk raw");
	printf("status=%u\nused_len=%u\n", status, used_len);
	fflush(stdout);
	blk_finish(&fe, &sc);
	return 0;
}

static int blk_bench(int argc, char **argv)
{
	g_autofree char *rw = NULL, *bs_s = NULL, *requests_s = NULL, *region_s = NULL;
	g_autofree char *region_start_s = NULL, *seed_s = NULL;
	double seconds = 0;
	GOptionEntry entries[] = {
		{ "rw", 0, 0, G_OPTION_ARG_STRING, &rw,
		  "randread or randwrite (default randread)", "MODE" },
		{ "bs", 0, 0, G_OPTION_ARG_STRING, &bs_s,
		  "Bytes per request (default 4096)", "SIZE" },
		{ "seconds", 0, 0, G_OPTION_ARG_DOUBLE, &seconds,
		  "Run for S seconds (default 5)", "S" },
		{ "requests", 0, 0, G_OPTION_ARG_STRING, &requests_s,
		  "Run until N requests completed", "N" },
		{ "region-mb", 0, 0, G_OPTION_ARG_STRING, &region_s,
		  "Confine requests to M MiB (default: the whole disk)", "M" },
		{ "region-start-mb", 0, 0, G_OPTION_ARG_STRING, &region_start_s,
		  "... starting at this MiB (default 0)", "M" },
		{ "seed", 0, 0, G_OPTION_ARG_STRING, &seed_s,
		  "Seed of the offset generator (default 1)", "S" },
		{ NULL },
	};
	struct ld_bench_opts o = { .block_size = 4096, .seed = 1 };
	struct ld_bench_stats st;
	struct viod_fe fe;
	struct ld sc;
	uint64_t mb;
	int r;

	blk_parse("bench", "- random I/O: iops=... p50_us=... p99_us=... requests=... "
		  "seconds=...", entries, argc, argv);
	if (!rw || strcmp(rw, "randread") == 0)
		o.write = false;
	else if (strcmp(rw, "randwrite") == 0)
		o.write = true;
	else
		die(EXIT_USAGE, "--rw: expected randread or randwrite, got '%s'", rw);
	if (bs_s)
		o.block_size = (uint32_t)size_arg("bs", bs_s, LD_SECTOR_SIZE, LD_MAX_TRANSFER);
	if (o.block_size % LD_SECTOR_SIZE)
		die(EXIT_USAGE, "--bs: expected a multiple of 512");
	if (requests_s)
		o.requests = u64_arg("requests", requests_s, 1, UINT64_MAX);
	if (seconds == 0 && o.requests == 0)
		seconds = 5;
	if ((seconds > 0) == (o.requests > 0) || seconds < 0 || seconds > 86400)
		die(EXIT_USAGE, "blk bench: give one of --seconds S (0 < S <= 86400) "
		    "or --requests N");
	o.seconds = seconds;
	if (region_s) {
		mb = u64_arg("region-mb", region_s, 1, UINT64_MAX >> 29);
		o.region_sectors = mb << (20 - LD_SECTOR_SHIFT);
	}
	if (region_start_s) {
		mb = u64_arg("region-start-mb", region_start_s, 0, UINT64_MAX >> 29);
		o.region_sector = mb << (20 - LD_SECTOR_SHIFT);
	}
	if (seed_s)
		o.seed = u64_arg("seed", seed_s, 0, UINT64_MAX);

	blk_attach(&fe, &sc, 32, o.block_size);
	o.depth = sc.opts.queue_depth;
	r = ld_bench(&sc, &o, &st);
	if (r < 0)
		fe_die(&fe, r, "blk bench");
	printf("iops=%.0f p50_us=%.1f p99_us=%.1f requests=%" PRIu64 " seconds=%.3f "
	       "rw=%s bs=%u qd=%u queues=%u\n", st.iops, st.p50_us, st.p99_us,
	       st.requests, st.seconds, o.write ? "randwrite" : "randread",
	       o.block_size, o.depth, sc.nqueues);
	fflush(stdout);
	verbose("blk bench: max latency %.1f us", st.max_us);
	blk_finish(&fe, &sc);
	return 0;
}

static const struct action blk_actions[] = {
	{ "info", blk_info },
	{ "read", blk_read },
	{ "write", blk_write },
	{ "verify", blk_verify },
	{ "flush", blk_flush },
	{ "discard", blk_discard },
	{ "write-zeroes", blk_write_zeroes },
	{ "get-id", blk_get_id },
	{ "raw", blk_raw },
	{ "bench", blk_bench },
};

#define BLK_ACTIONS "info, read, write, verify, flush, discard, write-zeroes, " \
	"get-id, raw, bench"

static int cmd_blk(int argc, char **argv)
{
	return run_action("blk", blk_actions, G_N_ELEMENTS(blk_actions), BLK_ACTIONS, argc,
			  argv);
}

/* ------------------------------------------------------------------ */
/* net: vioif(4).                                                      */

/* Options every net action takes. */
static struct {
	int queues;
	int queue_size;
	char *rx_buf_size;
	gboolean no_mrg_rxbuf;
} net_o = { .queues = 1, .queue_size = VIOIF_DEFAULT_QUEUE_SIZE };

static GOptionEntry net_common_entries[] = {
	{ "queues", 0, 0, G_OPTION_ARG_INT, &net_o.queues,
	  "Queue pairs to use, 1..8; fewer if the device has fewer (default 1)", "Q" },
	{ "queue-size", 0, 0, G_OPTION_ARG_INT, &net_o.queue_size,
	  "Ring size (default 256)", "N" },
	{ "rx-buf-size", 0, 0, G_OPTION_ARG_STRING, &net_o.rx_buf_size,
	  "Bytes per rx buffer, header included (default 2048; below 1526 "
	  "needs MRG_RXBUF)", "B" },
	{ "no-mrg-rxbuf", 0, 0, G_OPTION_ARG_NONE, &net_o.no_mrg_rxbuf,
	  "Do not negotiate VIRTIO_NET_F_MRG_RXBUF", NULL },
	{ NULL },
};

static const struct feature_name net_features[] = {
	{ "mrg_rxbuf", VIRTIO_NET_F_MRG_RXBUF },
	{ "mq", VIRTIO_NET_F_MQ },
	{ "mac", VIRTIO_NET_F_MAC },
	{ "status", VIRTIO_NET_F_STATUS },
	{ "mtu", VIRTIO_NET_F_MTU },
};

/* Default addresses: locally administered unicast. */
static const uint8_t net_default_src[VIOIF_ETH_ALEN] = { 0x02, 0, 0, 0, 0, 0x01 };
static const uint8_t net_default_dst[VIOIF_ETH_ALEN] = { 0x02, 0, 0, 0, 0, 0x02 };

/* Options of the actions that send test frames (send, pingpong). */
static struct {
	char *size, *size_min, *size_max, *dst, *src;
} net_tx_o;

static GOptionEntry net_tx_entries[] = {
	{ "size", 0, 0, G_OPTION_ARG_STRING, &net_tx_o.size,
	  "Bytes per frame, 60..1514 (default: every size in turn)", "B" },
	{ "size-min", 0, 0, G_OPTION_ARG_STRING, &net_tx_o.size_min,
	  "Smallest frame (default 60)", "B" },
	{ "size-max", 0, 0, G_OPTION_ARG_STRING, &net_tx_o.size_max,
	  "Largest frame (default 1514)", "B" },
	{ "dst", 0, 0, G_OPTION_ARG_STRING, &net_tx_o.dst,
	  "Destination MAC (default 02:00:00:00:00:02)", "MAC" },
	{ "src", 0, 0, G_OPTION_ARG_STRING, &net_tx_o.src,
	  "Source MAC (default: the device's, else 02:00:00:00:00:01)", "MAC" },
	{ NULL },
};

/* Parses an action's options, the sender's too if tx. */
static void net_parse(const char *action, const char *summary, GOptionEntry *entries,
		      bool tx, int argc, char **argv)
{
	GOptionEntry *sets[] = { entries, tx ? net_tx_entries : NULL, net_common_entries };

	action_parse("net", action, summary, sets, G_N_ELEMENTS(sets), argc, argv);
}

static void net_format_mac(const uint8_t *m, char out[18])
{
	g_snprintf(out, 18, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3],
		   m[4], m[5]);
}

/* Checks the common options and attaches vioif. */
static void net_attach(struct viod_fe *fe, struct vioif *sc)
{
	struct vioif_opts o;
	char names[96];

	if (net_o.queues < 1 || net_o.queues > (int)VIOIF_MAX_QUEUE_PAIRS)
		die(EXIT_USAGE, "--queues: expected 1..%u, got %d", VIOIF_MAX_QUEUE_PAIRS,
		    net_o.queues);
	check_queue_size(net_o.queue_size);
	if (net_o.queue_size < 2)
		die(EXIT_USAGE, "--queue-size: expected >= 2, got %d", net_o.queue_size);
	vioif_opts_init(&o);
	o.nqueue_pairs = (unsigned int)net_o.queues;
	o.queue_size = (uint16_t)net_o.queue_size;
	if (net_o.rx_buf_size)
		o.rx_buf_size = (uint32_t)size_arg("rx-buf-size", net_o.rx_buf_size,
						   VIOIF_HDR_MAX + 1, VIOIF_MAX_RX_BUF_SIZE);
	o.no_mrg_rxbuf = net_o.no_mrg_rxbuf;
	if (o.no_mrg_rxbuf && o.rx_buf_size < VIOIF_HDR_MAX + VIOIF_FRAME_MAX)
		die(EXIT_USAGE, "--rx-buf-size %u: without MRG_RXBUF a buffer must hold a "
		    "header and a whole frame (%u bytes)", o.rx_buf_size,
		    VIOIF_HDR_MAX + VIOIF_FRAME_MAX);
	o.timeout_ms = g.timeout_ms;

	fe_start(fe);
	attach_check(fe, vioif_attach(sc, fe, &o), "vioif attach");
	feature_names(net_features, G_N_ELEMENTS(net_features), sc->features, names,
		      sizeof(names));
	verbose("net: features %s, header %u bytes, %u queue pairs of %u entries, "
		"rx buffers of %u bytes", names, sc->hdr_len, sc->npairs,
		sc->opts.queue_size, sc->opts.rx_buf_size);
	if ((unsigned int)net_o.queues > sc->npairs)
		verbose("net: asked for %d queue pairs, the device gives %u", net_o.queues,
			sc->npairs);
}

static void net_finish(struct viod_fe *fe, struct vioif *sc)
{
	verbose("net: tx %" PRIu64 " frames %" PRIu64 " bytes (%" PRIu64 " waits for a "
		"slot); rx %" PRIu64 " frames %" PRIu64 " bytes in %" PRIu64 " buffers, %"
		PRIu64 " merged, %" PRIu64 " oversize, %" PRIu64 " runt",
		sc->st.tx_frames, sc->st.tx_bytes, sc->st.tx_waits, sc->st.rx_frames,
		sc->st.rx_bytes, sc->st.rx_buffers, sc->st.rx_merged, sc->st.rx_oversize,
		sc->st.rx_runt);
	for (unsigned int i = 0; i < sc->npairs; i++)
		verbose("net: pair %u: tx %" PRIu64 " frames, rx %" PRIu64 " frames", i,
			sc->qp[i].tx_frames, sc->qp[i].rx_frames);
	vioif_detach(sc);
	fe_finish(fe);
}

/* --dst / --src: a MAC, or the default. */
static void net_mac_arg(const char *name, const char *s, const uint8_t *dflt,
			uint8_t mac[VIOIF_ETH_ALEN])
{
	if (!s) {
		memcpy(mac, dflt, VIOIF_ETH_ALEN);
		return;
	}
	if (!vioif_parse_mac(s, mac))
		die(EXIT_USAGE, "--%s: expected a MAC like 02:00:00:00:00:01, got '%s'",
		    name, s);
}

/* What a sender of test frames puts in them. */
struct net_tx {
	uint32_t size_min, size_max;
	uint8_t dst[VIOIF_ETH_ALEN], src[VIOIF_ETH_ALEN];
	uint8_t frame[VIOIF_FRAME_MAX];
};

/* The sender's options, before attach (exits 2 on a bad one). */
static void net_tx_args(struct net_tx *t)
{
	t->size_min = VIOIF_FRAME_MIN;
	t->size_max = VIOIF_FRAME_MAX;
	if (net_tx_o.size && (net_tx_o.size_min || net_tx_o.size_max))
		die(EXIT_USAGE, "--size and --size-min/--size-max are exclusive");
	if (net_tx_o.size)
		t->size_min = t->size_max = (uint32_t)u64_arg("size", net_tx_o.size,
							      VIOIF_FRAME_MIN, VIOIF_FRAME_MAX);
	if (net_tx_o.size_min)
		t->size_min = (uint32_t)u64_arg("size-min", net_tx_o.size_min,
						VIOIF_FRAME_MIN, VIOIF_FRAME_MAX);
	if (net_tx_o.size_max)
		t->size_max = (uint32_t)u64_arg("size-max", net_tx_o.size_max,
						VIOIF_FRAME_MIN, VIOIF_FRAME_MAX);
	if (t->size_min > t->size_max)
		die(EXIT_USAGE, "--size-min %u is above --size-max %u", t->size_min,
		    t->size_max);
	net_mac_arg("dst", net_tx_o.dst, net_default_dst, t->dst);
}

/* After attach: the source MAC, --src, else the device's, else ours. */
static void net_tx_src(struct net_tx *t, const struct vioif *sc)
{
	net_mac_arg("src", net_tx_o.src, sc->cfg.has_mac ? sc->cfg.mac : net_default_src,
		    t->src);
}

/*
 * Sends test frame seq on pair seq % npairs; its length cycles through
 * every size of the range, spread. Returns the length; exits 1 on failure.
 */
static size_t net_tx_one(struct net_tx *t, struct viod_fe *fe, struct vioif *sc,
			 uint32_t seq, const char *what)
{
	size_t len = t->size_min + (size_t)((uint64_t)seq * 997u %
					    (t->size_max - t->size_min + 1));
	int r;

	vioif_frame_fill(t->frame, len, t->dst, t->src, seq);
	r = vioif_send(sc, seq % sc->npairs, t->frame, len);
	if (r < 0)
		fe_die(fe, r, what);
	return len;
}

static int net_info(int argc, char **argv)
{
	struct viod_fe fe;
	struct vioif sc;
	char names[96], mac[18];

	net_parse("info", "- attach and report the network device", NULL, false, argc,
		  argv);
	net_attach(&fe, &sc);
	feature_names(net_features, G_N_ELEMENTS(net_features), sc.features, names,
		      sizeof(names));
	printf("features_acked=0x%016" PRIx64 "\n", fe.features_acked);
	printf("features=%s\n", names);
	printf("hdr_len=%u\n", sc.hdr_len);
	printf("mrg_rxbuf=%d\n", (int)(sc.features >> VIRTIO_NET_F_MRG_RXBUF & 1));
	printf("queue_pairs=%u\n", sc.npairs);
	if (sc.cfg.has_max_pairs)
		printf("max_queue_pairs=%u\n", sc.cfg.max_pairs);
	else if (fe.queue_num)
		printf("max_queue_pairs=%" PRIu64 "\n", fe.queue_num);
	else
		printf("max_queue_pairs=-\n");
	if (sc.cfg.has_mac) {
		net_format_mac(sc.cfg.mac, mac);
		printf("mac=%s\n", mac);
	} else {
		printf("mac=-\n");
	}
	if (sc.cfg.has_status)
		printf("status=%u\nlink=%s\n", sc.cfg.status,
		       sc.cfg.status & VIRTIO_NET_S_LINK_UP ? "up" : "down");
	else
		printf("status=-\n");
	if (sc.cfg.has_mtu)
		printf("mtu=%u\n", sc.cfg.mtu);
	else
		printf("mtu=-\n");
	fflush(stdout);
	net_finish(&fe, &sc);
	return 0;
}

static int net_send(int argc, char **argv)
{
	g_autofree char *count_s = NULL;
	GOptionEntry entries[] = {
		{ "count", 0, 0, G_OPTION_ARG_STRING, &count_s,
		  "Test frames to send (required)", "N" },
		{ NULL },
	};
	struct net_tx t;
	uint64_t count, bytes = 0;
	struct viod_fe fe;
	struct vioif sc;
	int64_t start;
	int r;

	net_parse("send", "- send test frames: sent=N bytes=... seconds=...", entries,
		  true, argc, argv);
	if (!count_s)
		die(EXIT_USAGE, "net send: --count N is required");
	count = u64_arg("count", count_s, 1, UINT32_MAX);
	net_tx_args(&t);
	net_attach(&fe, &sc);
	net_tx_src(&t, &sc);
	start = now_ns();
	for (uint64_t seq = 0; seq < count; seq++)
		bytes += net_tx_one(&t, &fe, &sc, (uint32_t)seq, "net send");
	r = vioif_tx_drain(&sc, g.timeout_ms);
	if (r < 0)
		fe_die(&fe, r, "net send: drain");
	printf("sent=%" PRIu64 " bytes=%" PRIu64 " seconds=%.6f\n", count, bytes,
	       (double)(now_ns() - start) / 1e9);
	fflush(stdout);
	net_finish(&fe, &sc);
	return 0;
}

/*
 * Which test frames were seen, by sequence number, for duplicates: a
 * bitmap that grows with the largest seq seen (up to NET_SEEN_MAX; seqs
 * beyond are not tracked).
 */
#define NET_SEEN_MAX (1u << 24)

struct net_seen {
	uint64_t *bits;
	size_t words;
};

/* Records seq; false if it was seen already. */
static bool net_seen_add(struct net_seen *s, uint32_t seq)
{
	size_t w = seq / 64;

	if (seq >= NET_SEEN_MAX)
		return true;
	if (w >= s->words) {
		size_t n = MAX(w + 1, s->words * 2);

		s->bits = g_realloc(s->bits, n * sizeof(*s->bits));
		memset(s->bits + s->words, 0, (n - s->words) * sizeof(*s->bits));
		s->words = n;
	}
	if (s->bits[w] >> (seq % 64) & 1)
		return false;
	s->bits[w] |= 1ull << (seq % 64);
	return true;
}

/* Whether a received frame is good: an intact test frame, seq < limit
 * (0: any), not seen before. */
static bool net_frame_good(struct net_seen *seen, const uint8_t *f, size_t len,
			   uint64_t limit)
{
	uint32_t seq;

	if (!vioif_frame_check(f, len, &seq))
		return false;
	if (limit && seq >= limit)
		return false;
	return net_seen_add(seen, seq);
}

static int net_recv(int argc, char **argv)
{
	g_autofree char *count_s = NULL;
	int timeout_ms = 10000;
	gboolean any = FALSE;
	GOptionEntry entries[] = {
		{ "count", 0, 0, G_OPTION_ARG_STRING, &count_s,
		  "Frames to receive (required)", "N" },
		{ "timeout-ms", 0, 0, G_OPTION_ARG_INT, &timeout_ms,
		  "Deadline for all N, from attach (default 10000)", "T" },
		{ "any", 0, 0, G_OPTION_ARG_NONE, &any,
		  "Count every frame, test frame or not, unchecked", NULL },
		{ NULL },
	};
	g_autofree uint8_t *buf = g_malloc(VIOIF_MAX_RX_BUF_SIZE);
	struct net_seen seen = { 0 };
	uint64_t count, got = 0, bad = 0, bytes = 0;
	struct viod_fe fe;
	struct vioif sc;
	int64_t deadline;
	int r = 0;

	net_parse("recv", "- receive and check test frames: received=N bad=M bytes=...",
		  entries, false, argc, argv);
	if (!count_s)
		die(EXIT_USAGE, "net recv: --count N is required");
	count = u64_arg("count", count_s, 1, UINT32_MAX);
	if (timeout_ms < 0)
		die(EXIT_USAGE, "--timeout-ms: expected >= 0, got %d", timeout_ms);
	net_attach(&fe, &sc);
	deadline = now_ns() + (int64_t)timeout_ms * 1000000;
	while (got < count) {
		int64_t left = (deadline - now_ns()) / 1000000;
		size_t len;

		if (left <= 0)
			break;
		r = vioif_recv(&sc, buf, VIOIF_MAX_RX_BUF_SIZE, &len, NULL, (int)left);
		if (r < 0)
			fe_die(&fe, r, "net recv");
		if (r == 0)
			break;
		got++;
		bytes += len;
		if (!any && !net_frame_good(&seen, buf, len, count))
			bad++;
	}
	g_free(seen.bits);
	printf("received=%" PRIu64 " bad=%" PRIu64 " bytes=%" PRIu64 "\n", got, bad, bytes);
	fflush(stdout);
	net_finish(&fe, &sc);
	if (bad)
		die(EXIT_RUNTIME, "net recv: %" PRIu64 " of %" PRIu64 " frames are not intact "
		    "test frames (or repeat one)", bad, got);
	if (got < count)
		die(EXIT_RUNTIME, "net recv: %" PRIu64 " of %" PRIu64 " frames within %d ms",
		    got, count, timeout_ms);
	return 0;
}

static int net_echo(int argc, char **argv)
{
	g_autofree char *count_s = NULL;
	int timeout_ms = -1;
	GOptionEntry entries[] = {
		{ "count", 0, 0, G_OPTION_ARG_STRING, &count_s,
		  "Stop after N frames (default: until SIGINT/SIGTERM)", "N" },
		{ "timeout-ms", 0, 0, G_OPTION_ARG_INT, &timeout_ms,
		  "Stop after T ms without a frame (default: never)", "T" },
		{ NULL },
	};
	g_autofree uint8_t *buf = g_malloc(VIOIF_MAX_RX_BUF_SIZE);
	uint64_t count = 0, echoed = 0, bytes = 0, skipped = 0;
	struct viod_fe fe;
	struct vioif sc;
	int64_t idle_since;
	int r;

	net_parse("echo", "- send every frame back with the MACs swapped: echoed=N bytes=...",
		  entries, false, argc, argv);
	if (count_s)
		count = u64_arg("count", count_s, 1, UINT64_MAX);
	if (timeout_ms < -1)
		die(EXIT_USAGE, "--timeout-ms: expected >= 0, got %d", timeout_ms);
	catch_stop_signals();
	net_attach(&fe, &sc);
	idle_since = now_ns();
	while (!stop_signal && (count == 0 || echoed < count)) {
		unsigned int qp;
		size_t len;

		/* Short waits: a signal is seen within 100 ms. */
		r = vioif_recv(&sc, buf, VIOIF_MAX_RX_BUF_SIZE, &len, &qp, 100);
		if (r < 0)
			fe_die(&fe, r, "net echo: recv");
		if (r == 0) {
			if (timeout_ms >= 0 && now_ns() - idle_since >= (int64_t)timeout_ms * 1000000)
				break;
			continue;
		}
		idle_since = now_ns();
		if (len > VIOIF_FRAME_MAX) {
			skipped++;
			continue;
		}
		vioif_frame_swap_macs(buf);
		r = vioif_send(&sc, qp, buf, len);
		if (r < 0)
			fe_die(&fe, r, "net echo: send");
		echoed++;
		bytes += len;
	}
	r = vioif_tx_drain(&sc, g.timeout_ms);
	if (r < 0)
		fe_die(&fe, r, "net echo: drain");
	printf("echoed=%" PRIu64 " bytes=%" PRIu64 "\n", echoed, bytes);
	fflush(stdout);
	if (skipped)
		verbose("net echo: %" PRIu64 " frames above %u bytes not sent back", skipped,
			VIOIF_FRAME_MAX);
	net_finish(&fe, &sc);
	if (count && echoed < count && !stop_signal)
		die(EXIT_RUNTIME, "net echo: %" PRIu64 " of %" PRIu64 " frames, then %d ms "
		    "without one", echoed, count, timeout_ms);
	return 0;
}

static int net_pingpong(int argc, char **argv)
{
	g_autofree char *count_s = NULL, *window_s = NULL;
	int timeout_ms = 5000;
	GOptionEntry entries[] = {
		{ "count", 0, 0, G_OPTION_ARG_STRING, &count_s,
		  "Test frames to send and get back (required)", "N" },
		{ "window", 0, 0, G_OPTION_ARG_STRING, &window_s,
		  "Frames out at once (default: what one rx ring holds)", "W" },
		{ "timeout-ms", 0, 0, G_OPTION_ARG_INT, &timeout_ms,
		  "Give up after T ms without a frame back (default 5000)", "T" },
		{ NULL },
	};
	g_autofree uint8_t *buf = g_malloc(VIOIF_MAX_RX_BUF_SIZE);
	uint64_t count, window = 0, sent = 0, got = 0, bad = 0, bytes = 0;
	unsigned int per_frame;
	struct net_seen seen = { 0 };
	struct net_tx t;
	struct viod_fe fe;
	struct vioif sc;
	int64_t start;
	int r;

	net_parse("pingpong", "- send test frames to a peer that bounces them (testpmd "
		  "macswap, net echo) and check each one back: sent=N received=N bad=M "
		  "bytes=... seconds=...", entries, true, argc, argv);
	if (!count_s)
		die(EXIT_USAGE, "net pingpong: --count N is required");
	count = u64_arg("count", count_s, 1, UINT32_MAX);
	net_tx_args(&t);
	if (window_s)
		window = u64_arg("window", window_s, 1, UINT32_MAX);
	if (timeout_ms < 0)
		die(EXIT_USAGE, "--timeout-ms: expected >= 0, got %d", timeout_ms);
	net_attach(&fe, &sc);
	net_tx_src(&t, &sc);
	/* No more frames out than one rx ring can take at once: a peer that
	 * finds no rx buffer drops the frame, and a peer may send them all
	 * back on one queue pair. */
	per_frame = 1;
	if (sc.features >> VIRTIO_NET_F_MRG_RXBUF & 1)
		per_frame = (sc.hdr_len + t.size_max + sc.opts.rx_buf_size - 1) /
			    sc.opts.rx_buf_size;
	if (!window)
		window = MAX(sc.opts.queue_size / per_frame, 1u);
	start = now_ns();
	while (got < count) {
		size_t len;

		for (; sent < count && sent - got < window; sent++)
			net_tx_one(&t, &fe, &sc, (uint32_t)sent, "net pingpong: send");
		r = vioif_recv(&sc, buf, VIOIF_MAX_RX_BUF_SIZE, &len, NULL, timeout_ms);
		if (r < 0)
			fe_die(&fe, r, "net pingpong: recv");
		if (r == 0)
			break;
		got++;
		bytes += len;
		if (!net_frame_good(&seen, buf, len, count))
			bad++;
	}
	g_free(seen.bits);
	printf("sent=%" PRIu64 " received=%" PRIu64 " bad=%" PRIu64 " bytes=%" PRIu64
	       " seconds=%.6f\n", sent, got, bad, bytes, (double)(now_ns() - start) / 1e9);
	fflush(stdout);
	net_finish(&fe, &sc);
	if (bad)
		die(EXIT_RUNTIME, "net pingpong: %" PRIu64 " of %" PRIu64 " frames back are "
		    "not intact test frames (or repeat one)", bad, got);
	if (got < count)
		die(EXIT_RUNTIME, "net pingpong: %" PRIu64 " of %" PRIu64 " frames back, then "
		    "%d ms without one", got, count, timeout_ms);
	return 0;
}

/* A host on the port: answers ARP and ICMP echo for --ip as --mac. */
static int net_respond(int argc, char **argv)
{
	g_autofree char *ip_s = NULL, *mac_s = NULL;
	int timeout_ms = -1;
	GOptionEntry entries[] = {
		{ "ip", 0, 0, G_OPTION_ARG_STRING, &ip_s, "IPv4 address to answer for (required)",
		  "A.B.C.D" },
		{ "mac", 0, 0, G_OPTION_ARG_STRING, &mac_s,
		  "Our MAC (default 02:00:00:00:00:01)", "MAC" },
		{ "timeout-ms", 0, 0, G_OPTION_ARG_INT, &timeout_ms,
		  "Stop after T ms without a frame (default: at SIGINT/SIGTERM)", "T" },
		{ NULL },
	};
	g_autofree uint8_t *buf = g_malloc(VIOIF_MAX_RX_BUF_SIZE);
	g_autofree uint8_t *reply = g_malloc(VIOIF_FRAME_MAX);
	struct vioif_responder resp = { .mac = { 0x02, 0, 0, 0, 0, 0x01 } };
	uint64_t arps = 0, echos = 0, ignored = 0;
	struct in_addr addr;
	struct viod_fe fe;
	struct vioif sc;
	int64_t idle_since;
	int r;

	net_parse("respond", "- answer ARP and ICMP echo for an address: arp=N icmp=N ignored=N",
		  entries, false, argc, argv);
	if (!ip_s || inet_pton(AF_INET, ip_s, &addr) != 1)
		die(EXIT_USAGE, "net respond: --ip A.B.C.D is required");
	memcpy(resp.ip, &addr, 4);
	if (mac_s && !vioif_parse_mac(mac_s, resp.mac))
		die(EXIT_USAGE, "net respond: bad --mac '%s'", mac_s);
	catch_stop_signals();
	net_attach(&fe, &sc);
	idle_since = now_ns();
	while (!stop_signal) {
		enum vioif_respond_kind kind;
		unsigned int qp;
		size_t len, n;

		r = vioif_recv(&sc, buf, VIOIF_MAX_RX_BUF_SIZE, &len, &qp, 100);
		if (r < 0)
			fe_die(&fe, r, "net respond: recv");
		if (r == 0) {
			if (timeout_ms >= 0 && now_ns() - idle_since >= (int64_t)timeout_ms * 1000000)
				break;
			continue;
		}
		idle_since = now_ns();
		n = vioif_respond(&resp, buf, len, reply, VIOIF_FRAME_MAX, &kind);
		if (!n) {
			ignored++;
			continue;
		}
		r = vioif_send(&sc, qp, reply, n);
		if (r < 0)
			fe_die(&fe, r, "net respond: send");
		if (kind == VIOIF_RESPOND_ARP)
			arps++;
		else
			echos++;
		verbose("net respond: %s reply, %zu bytes", kind == VIOIF_RESPOND_ARP ? "ARP" :
			"ICMP echo", n);
	}
	r = vioif_tx_drain(&sc, g.timeout_ms);
	if (r < 0)
		fe_die(&fe, r, "net respond: drain");
	printf("arp=%" PRIu64 " icmp=%" PRIu64 " ignored=%" PRIu64 "\n", arps, echos, ignored);
	fflush(stdout);
	net_finish(&fe, &sc);
	return 0;
}

static const struct action net_actions[] = {
	{ "info", net_info },
	{ "send", net_send },
	{ "recv", net_recv },
	{ "echo", net_echo },
	{ "pingpong", net_pingpong },
	{ "respond", net_respond },
};

#define NET_ACTIONS "info, send, recv, echo, pingpong, respond"

static int cmd_net(int argc, char **argv)
{
	return run_action("net", net_actions, G_N_ELEMENTS(net_actions), NET_ACTIONS, argc,
			  argv);
}

static const struct action commands[] = {
	{ "info", cmd_info },
	{ "rng", cmd_rng },
	{ "rng-stream", cmd_rng_stream },
	{ "balloon", cmd_balloon },
	{ "blk", cmd_blk },
	{ "net", cmd_net },
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
		"  blk ACTION [--queues N] [--qd N] [--queue-size N] [--max-transfer SIZE]\n"
		"             [--seg-size SIZE] [ACTION OPTIONS]; ACTION is one of\n"
		"      info | get-id | flush\n"
		"      read --sector N --count C [--out FILE]\n"
		"      write --sector N --count C (--in FILE | --pattern SEED)\n"
		"      verify --sector N --count C [--seed S] [--check]\n"
		"      discard --sector N --count C\n"
		"      write-zeroes --sector N --count C [--unmap]\n"
		"      raw --type T [--sector N] [--in-len B] [--out-len B] [--seg-*]\n"
		"      bench [--rw randread|randwrite] [--bs SIZE] [--seconds S | --requests N]\n"
		"            [--region-mb M] [--region-start-mb M] [--seed S]\n"
		"  net ACTION [--queues Q] [--queue-size N] [--rx-buf-size B] [--no-mrg-rxbuf]\n"
		"             [ACTION OPTIONS]; ACTION is one of\n"
		"      info\n"
		"      send --count N [--size B | --size-min B --size-max B] [--dst MAC] [--src MAC]\n"
		"      recv --count N [--timeout-ms T] [--any]\n"
		"      echo [--count N] [--timeout-ms T]\n"
		"      pingpong --count N [--size B | --size-min B --size-max B] [--window W]\n"
		"               [--timeout-ms T] [--dst MAC] [--src MAC]\n"
		"      respond --ip A.B.C.D [--mac MAC] [--timeout-ms T]\n"
		"\n'vioguest COMMAND --help' describes a command's options.\n"
		"Exit status: 0 success, 1 runtime failure, 2 bad arguments.\n");
	/* Stop at the command: its options belong to it. */
	g_option_context_set_strict_posix(ctx, TRUE);
	g_option_context_add_main_entries(ctx, entries, NULL);
	parse_or_die(ctx, &argc, &argv);
	if (argc < 2)
		die(EXIT_USAGE, "missing COMMAND (info, rng, rng-stream, balloon, blk, net); see --help");

	for (size_t i = 0; i < G_N_ELEMENTS(commands); i++) {
		if (strcmp(argv[1], commands[i].name) == 0) {
			cmdline = g_strdup_printf("vioguest %s", commands[i].name);
			argv[1] = cmdline;
			g_set_prgname(cmdline);
			return commands[i].fn(argc - 1, argv + 1);
		}
	}
	die(EXIT_USAGE, "unknown command '%s' (info, rng, rng-stream, balloon, blk, net)", argv[1]);
}
