/*
 * balloonctl: the host operator's interface to viod's balloons, through
 * the control store (viod-store(7)): ask a guest to give memory back, watch
 * `actual` follow `target`, read the guest's statistics.
 *
 * Exit status: 0 success, 1 runtime failure (daemon unreachable, device
 * missing, a write refused, --wait timed out or stalled), 2 a malformed
 * command line (one line on stderr).
 */
#include <errno.h>
#include <locale.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <json-glib/json-glib.h>

#include "viod-config.h"
#include "viod/store.h"
#ifdef VIOD_HAVE_LIBVIRT
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "viod-meta.h"
#endif

#define EXIT_RUNTIME 1
#define EXIT_USAGE 2

#define TIMEOUT_DEFAULT 60.0
#define STALL_DEFAULT 10.0
#define POLL_MS 100
#define BAR_REDRAW_US (100 * 1000)
#define LINE_EVERY_US (1000 * 1000)

static struct {
	char *socket;
	gboolean json;
	gboolean wait;
	char *timeout;
	char *stall;
	char *guest_memory;
	char *uri;              /* --connect */
	char *domain;           /* --domain */
	gboolean version;
} opt;

static volatile sig_atomic_t interrupted;
static gboolean bar_shown;      /* a progress bar is on the current line */

static void end_bar(void)
{
	if (bar_shown) {
		putchar('\n');
		fflush(stdout);
		bar_shown = FALSE;
	}
}

static G_NORETURN void die(const char *fmt, ...) G_GNUC_PRINTF(1, 2);

static G_NORETURN void die(const char *fmt, ...)
{
	va_list ap;

	end_bar();
	fputs("balloonctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	fflush(stdout);
	/*
	 * A failure ends the process where it happens; what the callers had
	 * allocated goes with it, so the exit handlers (LeakSanitizer's among
	 * them) have nothing to do.
	 */
	_exit(EXIT_RUNTIME);
}

static G_NORETURN void usage(const char *fmt, ...) G_GNUC_PRINTF(1, 2);

static G_NORETURN void usage(const char *fmt, ...)
{
	va_list ap;

	fputs("balloonctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs(" (see balloonctl --help)\n", stderr);
	exit(EXIT_USAGE);
}

static void on_signal(int sig)
{
	interrupted = 1;
}

/* ---- parsing ---- */

struct size {
	guint64 n;
	gboolean bytes;         /* n is bytes; else pages */
};

/*
 * "N" is pages; "NB" bytes; "N[.F]" with K, M, G or T (binary; an "i" and
 * a "B" may follow, any case) is bytes, the fraction rounded down.
 */
static gboolean parse_size(const char *s, struct size *out)
{
	guint64 v = 0, frac = 0, scale = 1, mult = 1;
	const char *units = "KMGT";
	const char *u;
	int shift = 0;

	if (!g_ascii_isdigit(*s))
		return FALSE;
	for (; g_ascii_isdigit(*s); s++) {
		if (v > (G_MAXUINT64 - 9) / 10)
			return FALSE;
		v = v * 10 + (guint64)(*s - '0');
	}
	if (*s == '.') {
		s++;
		if (!g_ascii_isdigit(*s))
			return FALSE;
		for (; g_ascii_isdigit(*s); s++) {
			if (scale >= 1000000000)
				return FALSE;
			frac = frac * 10 + (guint64)(*s - '0');
			scale *= 10;
		}
	}
	if (*s == '\0') {
		out->n = v;
		out->bytes = FALSE;
		return scale == 1;
	}
	u = *s ? strchr(units, g_ascii_toupper(*s)) : NULL;
	if (u) {
		shift = 10 * (int)(u - units + 1);
		s++;
		if (*s == 'i' || *s == 'I')
			s++;
	} else if (scale != 1) {
		return FALSE;
	}
	if (*s == 'b' || *s == 'B')
		s++;
	else if (!u)
		return FALSE;
	if (*s)
		return FALSE;
	mult = (guint64)1 << shift;
	if (v > G_MAXUINT64 / mult)
		return FALSE;
	out->n = v * mult + frac * mult / scale;
	out->bytes = TRUE;
	return TRUE;
}

/* Seconds: a positive decimal number. */
static gboolean parse_seconds(const char *s, double *out)
{
	char *end;
	double v;

	if (!g_ascii_isdigit(*s) && *s != '.')
		return FALSE;
	v = g_ascii_strtod(s, &end);
	if (*end || !isfinite(v) || v <= 0 || v > 1e6)
		return FALSE;
	*out = v;
	return TRUE;
}

static gboolean id_valid(const char *id)
{
	gboolean dots = TRUE;

	if (!*id || strlen(id) > 64)
		return FALSE;
	for (const char *c = id; *c; c++) {
		if (!g_ascii_isalnum(*c) && *c != '_' && *c != '-' && *c != '.')
			return FALSE;
		if (*c != '.')
			dots = FALSE;
	}
	return !dots;
}

static gboolean parse_u64(const char *s, guint64 *out)
{
	return s && g_ascii_string_to_unsigned(s, 10, 0, G_MAXUINT64, out, NULL);
}

/* ---- output ---- */

static char *human(guint64 bytes)
{
	return g_format_size_full(bytes, G_FORMAT_SIZE_IEC_UNITS);
}

static void print_json(JsonBuilder *b)
{
	g_autoptr(JsonGenerator) gen = json_generator_new();
	g_autoptr(JsonNode) root = json_builder_get_root(b);
	g_autofree char *s = NULL;

	json_generator_set_root(gen, root);
	s = json_generator_to_data(gen, NULL);
	puts(s);
	fflush(stdout);
}

static void jset_str(JsonBuilder *b, const char *name, const char *v)
{
	json_builder_set_member_name(b, name);
	json_builder_add_string_value(b, v);
}

static void jset_int(JsonBuilder *b, const char *name, guint64 v)
{
	json_builder_set_member_name(b, name);
	json_builder_add_int_value(b, (gint64)MIN(v, (guint64)G_MAXINT64));
}

static int columns(void)
{
	struct winsize ws;
	const char *env = g_getenv("COLUMNS");
	guint64 v;

	if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
		return ws.ws_col;
	if (env && g_ascii_string_to_unsigned(env, 10, 20, 1000, &v, NULL))
		return (int)v;
	return 80;
}

/* ---- the store ---- */

static ViodStoreClient *client;

static void connect_or_die(void)
{
	g_autoptr(GError) err = NULL;

	client = viod_store_client_connect(opt.socket, &err);
	if (!client) {
		if (g_error_matches(err, G_IO_ERROR, G_IO_ERROR_NOT_FOUND) ||
		    g_error_matches(err, G_IO_ERROR, G_IO_ERROR_CONNECTION_REFUSED))
			die("%s (is viod running with its control socket there?)", err->message);
		die("%s", err->message);
	}
}

static char *key_path(const char *id, const char *key)
{
	return g_strdup_printf("/devices/%s/%s", id, key);
}

/* The key's value, or NULL if it does not exist; dies on other errors. */
static char *read_opt(const char *id, const char *key)
{
	g_autofree char *path = key_path(id, key);
	g_autoptr(GError) err = NULL;
	char *v = viod_store_client_read(client, path, &err);

	if (!v && !g_error_matches(err, G_IO_ERROR, G_IO_ERROR_NOT_FOUND))
		die("%s: %s", path, err->message);
	return v;
}

static guint64 read_u64(const char *id, const char *key)
{
	g_autofree char *v = read_opt(id, key);
	guint64 n;

	if (!v)
		die("%s: no key %s (is this viod too old for balloonctl?)", id, key);
	if (!parse_u64(v, &n))
		die("%s: %s is '%s', not a number", id, key, v);
	return n;
}

static void need_balloon(const char *id)
{
	g_autofree char *type = read_opt(id, "type");

	if (!type)
		die("no device '%s' (balloonctl status lists them)", id);
	if (strcmp(type, "balloon"))
		die("%s is not a balloon (its type is %s)", id, type);
}

/* ---- commands ---- */

struct balloon_sizes {
	guint64 page_size, target, actual, guest_memory;
};

static void read_sizes(const char *id, struct balloon_sizes *s)
{
	s->page_size = read_u64(id, "page-size");
	if (s->page_size == 0)
		die("%s: page-size is 0", id);
	s->target = read_u64(id, "target");
	s->actual = read_u64(id, "actual");
	s->guest_memory = read_u64(id, "guest-memory");
}

/* A balloon's sizes as the members get and status --json share. */
static void jset_sizes(JsonBuilder *b, const struct balloon_sizes *s)
{
	jset_int(b, "page_size", s->page_size);
	jset_int(b, "target_pages", s->target);
	jset_int(b, "target_bytes", s->target * s->page_size);
	jset_int(b, "actual_pages", s->actual);
	jset_int(b, "actual_bytes", s->actual * s->page_size);
	jset_int(b, "guest_memory_bytes", s->guest_memory);
}

static int cmd_status(void)
{
	g_autoptr(GError) err = NULL;
	g_auto(GStrv) ids = viod_store_client_list(client, "/devices", &err);
	g_autoptr(GPtrArray) rows = g_ptr_array_new_with_free_func((GDestroyNotify)g_strfreev);
	g_autoptr(JsonBuilder) b = json_builder_new();
	int w[5] = { 2, 4, 5, 6, 6 };

	if (!ids && !g_error_matches(err, G_IO_ERROR, G_IO_ERROR_NOT_FOUND))
		die("/devices: %s", err->message);
	json_builder_begin_object(b);
	json_builder_set_member_name(b, "devices");
	json_builder_begin_array(b);
	for (guint i = 0; ids && ids[i]; i++) {
		const char *id = ids[i];
		g_autofree char *type = read_opt(id, "type");
		g_autofree char *state = read_opt(id, "state");
		char **row = g_new0(char *, 6);

		row[0] = g_strdup(id);
		row[1] = g_strdup(type ? type : "-");
		row[2] = g_strdup(state ? state : "-");
		json_builder_begin_object(b);
		jset_str(b, "id", id);
		jset_str(b, "type", row[1]);
		jset_str(b, "state", row[2]);
		if (type && !strcmp(type, "balloon")) {
			struct balloon_sizes s;
			g_autofree char *th = NULL, *ah = NULL;

			read_sizes(id, &s);
			th = human(s.target * s.page_size);
			ah = human(s.actual * s.page_size);
			row[3] = g_strdup_printf("%" G_GUINT64_FORMAT " pages (%s)", s.target, th);
			row[4] = g_strdup_printf("%" G_GUINT64_FORMAT " pages (%s)", s.actual, ah);
			jset_sizes(b, &s);
		} else {
			row[3] = g_strdup("-");
			row[4] = g_strdup("-");
		}
		json_builder_end_object(b);
		for (int k = 0; k < 5; k++)
			w[k] = MAX(w[k], (int)g_utf8_strlen(row[k], -1));
		g_ptr_array_add(rows, row);
	}
	json_builder_end_array(b);
	json_builder_end_object(b);
	if (opt.json) {
		print_json(b);
		return 0;
	}
	if (rows->len == 0) {
		puts("no devices");
		return 0;
	}
	printf("%-*s  %-*s  %-*s  %-*s  %s\n", w[0], "ID", w[1], "TYPE", w[2], "STATE",
	       w[3], "TARGET", "ACTUAL");
	for (guint i = 0; i < rows->len; i++) {
		char **r = rows->pdata[i];

		printf("%-*s  %-*s  %-*s  %-*s  %s\n", w[0], r[0], w[1], r[1], w[2], r[2],
		       w[3], r[3], r[4]);
	}
	return 0;
}

static int cmd_get(const char *id)
{
	struct balloon_sizes s;
	g_autofree char *th = NULL, *ah = NULL;

	need_balloon(id);
	read_sizes(id, &s);
	if (opt.json) {
		g_autoptr(JsonBuilder) b = json_builder_new();

		json_builder_begin_object(b);
		jset_str(b, "id", id);
		jset_sizes(b, &s);
		json_builder_end_object(b);
		print_json(b);
		return 0;
	}
	th = human(s.target * s.page_size);
	ah = human(s.actual * s.page_size);
	printf("%s: target %" G_GUINT64_FORMAT " pages (%s), actual %" G_GUINT64_FORMAT
	       " pages (%s)\n", id, s.target, th, s.actual, ah);
	return 0;
}

struct progress {
	const char *id;
	guint64 start, actual, target, page_size;
	gint64 t0, last_draw;
	gboolean tty;
};

static int percent(const struct progress *p)
{
	guint64 span = p->target > p->start ? p->target - p->start : p->start - p->target;
	guint64 done;

	if (span == 0)
		return 100;
	if ((p->target >= p->start && p->actual < p->start) ||
	    (p->target < p->start && p->actual > p->start))
		return 0;
	done = p->actual > p->start ? p->actual - p->start : p->start - p->actual;
	return (int)MIN(100, done * 100 / span);
}

static void draw(struct progress *p, gboolean force)
{
	gint64 now = g_get_monotonic_time();
	int pct = percent(p);

	if (!force && now - p->last_draw < (p->tty ? BAR_REDRAW_US : LINE_EVERY_US))
		return;
	p->last_draw = now;
	if (opt.json) {
		g_autoptr(JsonBuilder) b = json_builder_new();

		json_builder_begin_object(b);
		jset_str(b, "event", "progress");
		jset_str(b, "id", p->id);
		jset_int(b, "actual_pages", p->actual);
		jset_int(b, "target_pages", p->target);
		jset_int(b, "percent", (guint64)pct);
		json_builder_end_object(b);
		print_json(b);
	} else if (p->tty) {
		g_autofree char *tail = g_strdup_printf(" %3d%%  %" G_GUINT64_FORMAT "/%"
							G_GUINT64_FORMAT " pages", pct,
							p->actual, p->target);
		int width = columns() - (int)strlen(p->id) - (int)strlen(tail) - 4;
		GString *bar = g_string_new(NULL);

		if (width >= 10) {
			int fill = width * pct / 100;

			g_string_append_c(bar, '[');
			for (int i = 0; i < width; i++)
				g_string_append_c(bar, i < fill ? '#' : '-');
			g_string_append_c(bar, ']');
		}
		printf("\r%s %s%s\033[K", p->id, bar->str, tail);
		fflush(stdout);
		g_string_free(bar, TRUE);
		bar_shown = TRUE;
	} else {
		printf("%s: actual %" G_GUINT64_FORMAT " of %" G_GUINT64_FORMAT " pages (%d%%)\n",
		       p->id, p->actual, p->target, pct);
		fflush(stdout);
	}
}

static const char *under(const char *path, const char *prefix)
{
	size_t n = strlen(prefix);

	return strncmp(path, prefix, n) == 0 && path[n] == '/' ? path + n + 1 : NULL;
}

/*
 * Follows the device's keys until actual reaches target. Gives up on
 * timeout, when actual makes no progress for `stall` seconds, on SIGINT,
 * or when the front-end goes away. The watch was set before the write, so
 * no change is missed.
 */
static int wait_target(struct progress *p, double timeout, double stall)
{
	g_autofree char *prefix = g_strdup_printf("/devices/%s", p->id);
	guint64 best = p->actual > p->target ? p->actual - p->target : p->target - p->actual;
	gint64 last_progress = p->t0;

	draw(p, TRUE);
	while (p->actual != p->target) {
		g_autoptr(ViodStoreEvent) ev = NULL;
		g_autoptr(GError) err = NULL;
		gint64 now = g_get_monotonic_time();
		const char *key;
		guint64 v, dist;

		if (interrupted)
			die("%s: interrupted at %" G_GUINT64_FORMAT " of %" G_GUINT64_FORMAT " pages",
			    p->id, p->actual, p->target);
		if (now - p->t0 >= (gint64)(timeout * G_USEC_PER_SEC))
			die("%s: timed out after %g s at %" G_GUINT64_FORMAT " of %" G_GUINT64_FORMAT
			    " pages", p->id, timeout, p->actual, p->target);
		if (now - last_progress >= (gint64)(stall * G_USEC_PER_SEC))
			die("%s: stalled at %" G_GUINT64_FORMAT " of %" G_GUINT64_FORMAT
			    " pages (no progress for %g s)", p->id, p->actual, p->target, stall);
		ev = viod_store_client_next_event(client, POLL_MS, &err);
		if (err)
			die("%s", err->message);
		if (!ev || !ev->path || !(key = under(ev->path, prefix)))
			continue;
		if (ev->kind == VIOD_STORE_EVENT_REMOVED && !strcmp(key, "type"))
			die("%s: the device was removed", p->id);
		if (ev->kind != VIOD_STORE_EVENT_CHANGED)
			continue;
		if (!strcmp(key, "state") && strcmp(ev->value, "connected"))
			die("%s: the front-end disconnected at %" G_GUINT64_FORMAT " of %"
			    G_GUINT64_FORMAT " pages", p->id, p->actual, p->target);
		if (!parse_u64(ev->value, &v))
			continue;
		if (!strcmp(key, "target") && v != p->target) {
			/* Someone else moved the target: follow the new one. */
			p->target = v;
			p->start = p->actual;
			best = p->actual > v ? p->actual - v : v - p->actual;
			last_progress = now;
		} else if (!strcmp(key, "actual")) {
			p->actual = v;
			dist = v > p->target ? v - p->target : p->target - v;
			if (dist < best) {
				best = dist;
				last_progress = now;
			}
		} else {
			continue;
		}
		draw(p, p->actual == p->target);
	}
	if (!opt.json && p->tty)
		end_bar();
	if (opt.json) {
		g_autoptr(JsonBuilder) b = json_builder_new();

		json_builder_begin_object(b);
		jset_str(b, "id", p->id);
		jset_str(b, "result", "reached");
		jset_int(b, "target_pages", p->target);
		jset_int(b, "actual_pages", p->actual);
		json_builder_set_member_name(b, "seconds");
		json_builder_add_double_value(b, (double)(g_get_monotonic_time() - p->t0) / 1e6);
		json_builder_end_object(b);
		print_json(b);
	} else {
		g_autofree char *h = human(p->actual * p->page_size);

		printf("%s: actual reached the target, %" G_GUINT64_FORMAT " pages (%s), in %.1f s\n",
		       p->id, p->actual, h, (double)(g_get_monotonic_time() - p->t0) / 1e6);
	}
	return 0;
}

static int cmd_set(const char *id, const char *size_arg, double timeout, double stall)
{
	struct size sz;
	struct balloon_sizes s;
	struct progress p = { .id = id };
	g_autofree char *tpath = key_path(id, "target");
	g_autofree char *value = NULL;
	g_autoptr(GError) err = NULL;
	guint64 target;

	/* The arguments were checked before connecting. */
	parse_size(opt.guest_memory ? opt.guest_memory : size_arg, &sz);
	need_balloon(id);
	read_sizes(id, &s);
	if (opt.guest_memory) {
		guint64 keep = sz.bytes ? sz.n : sz.n * s.page_size;
		g_autofree char *gh = human(s.guest_memory);

		if (!sz.bytes && sz.n > G_MAXUINT64 / s.page_size)
			die("%s: --guest-memory %s is more than the guest's %s", id, opt.guest_memory, gh);
		if (s.guest_memory == 0)
			die("%s: the guest's memory size is not known yet (no front-end connected)", id);
		if (keep > s.guest_memory)
			die("%s: --guest-memory %s is more than the guest's %s", id,
			    opt.guest_memory, gh);
		target = (s.guest_memory - keep) / s.page_size;
	} else if (sz.bytes) {
		target = sz.n / s.page_size + (sz.n % s.page_size != 0);
	} else {
		target = sz.n;
	}

	if (opt.wait) {
		g_autofree char *state = read_opt(id, "state");
		g_autofree char *prefix = g_strdup_printf("/devices/%s", id);

		if (!viod_store_client_watch(client, prefix, &err))
			die("%s: %s", prefix, err->message);
		/* The snapshot up to "synced" is the state the wait starts from. */
		for (;;) {
			g_autoptr(ViodStoreEvent) ev = viod_store_client_next_event(client, 5000, &err);

			if (!ev)
				die("%s: %s", prefix, err ? err->message : "no reply from viod");
			if (ev->kind == VIOD_STORE_EVENT_SYNCED)
				break;
			if (ev->kind == VIOD_STORE_EVENT_CHANGED && !strcmp(ev->path, tpath))
				parse_u64(ev->value, &s.target);
			else if (ev->kind == VIOD_STORE_EVENT_CHANGED &&
				 g_str_has_suffix(ev->path, "/actual") &&
				 strlen(ev->path) == strlen(prefix) + strlen("/actual"))
				parse_u64(ev->value, &s.actual);
		}
		if (g_strcmp0(state, "connected") && s.actual != target) {
			value = g_strdup_printf("%" G_GUINT64_FORMAT, target);
			if (!viod_store_client_write(client, tpath, value, &err))
				die("%s: %s", id, err->message);
			die("%s: target set to %" G_GUINT64_FORMAT " pages, but no front-end is "
			    "connected to follow it", id, target);
		}
	}
	value = g_strdup_printf("%" G_GUINT64_FORMAT, target);
	if (!viod_store_client_write(client, tpath, value, &err))
		die("%s: %s", id, err->message);

	if (opt.json && !opt.wait) {
		g_autoptr(JsonBuilder) b = json_builder_new();

		json_builder_begin_object(b);
		jset_str(b, "id", id);
		jset_int(b, "target_pages", target);
		jset_int(b, "target_bytes", target * s.page_size);
		json_builder_end_object(b);
		print_json(b);
	} else if (!opt.json) {
		g_autofree char *h = human(target * s.page_size);

		printf("%s: target set to %" G_GUINT64_FORMAT " pages (%s)\n", id, target, h);
		fflush(stdout);
	}
	if (!opt.wait)
		return 0;
	p.start = s.actual;
	p.actual = s.actual;
	p.target = target;
	p.page_size = s.page_size;
	p.t0 = g_get_monotonic_time();
	p.tty = isatty(STDOUT_FILENO);
	return wait_target(&p, timeout, stall);
}

/* Statistics in bytes (virtio spec 5.5.6.3); the other names are counts. */
static gboolean stat_is_bytes(const char *name)
{
	static const char *const bytes[] = {
		"swap-in", "swap-out", "free-memory", "total-memory", "available-memory",
		"disk-caches",
	};

	for (gsize i = 0; i < G_N_ELEMENTS(bytes); i++)
		if (!strcmp(name, bytes[i]))
			return TRUE;
	return FALSE;
}

static int cmd_stats(const char *id)
{
	g_autofree char *dir = key_path(id, "stats");
	g_autofree char *interval = NULL;
	g_autofree char *updated = NULL;
	g_autoptr(GError) err = NULL;
	g_auto(GStrv) names = NULL;
	g_autoptr(JsonBuilder) b = json_builder_new();
	guint64 iv = 0, up = 0;
	double age = -1;
	guint shown = 0;

	need_balloon(id);
	interval = read_opt(id, "stats-interval");
	parse_u64(interval, &iv);
	names = viod_store_client_list(client, dir, &err);
	if (!names && !g_error_matches(err, G_IO_ERROR, G_IO_ERROR_NOT_FOUND))
		die("%s: %s", dir, err->message);
	updated = read_opt(id, "stats/updated");
	if (parse_u64(updated, &up) && up > 0 && (gint64)up <= g_get_monotonic_time())
		age = (double)(g_get_monotonic_time() - (gint64)up) / 1e6;

	json_builder_begin_object(b);
	jset_str(b, "id", id);
	jset_int(b, "stats_interval", iv);
	if (age >= 0) {
		json_builder_set_member_name(b, "updated_seconds_ago");
		json_builder_add_double_value(b, age);
	}
	json_builder_set_member_name(b, "stats");
	json_builder_begin_object(b);
	if (!opt.json && names && names[0]) {
		if (age >= 0)
			printf("%s: guest statistics from %.1f s ago", id, age);
		else
			printf("%s: guest statistics", id);
		if (iv)
			printf(" (every %" G_GUINT64_FORMAT " s)\n", iv);
		else
			printf(" (stats-interval is 0: no new ones)\n");
	}
	for (guint i = 0; names && names[i]; i++) {
		g_autofree char *k = g_strdup_printf("stats/%s", names[i]);
		g_autofree char *v = read_opt(id, k);
		guint64 n;

		if (!v || !strcmp(names[i], "updated"))
			continue;
		shown++;
		json_builder_set_member_name(b, names[i]);
		if (parse_u64(v, &n))
			json_builder_add_int_value(b, (gint64)MIN(n, (guint64)G_MAXINT64));
		else
			json_builder_add_string_value(b, v);
		if (opt.json)
			continue;
		if (parse_u64(v, &n) && stat_is_bytes(names[i])) {
			g_autofree char *h = human(n);

			printf("  %-20s %s\n", names[i], h);
		} else {
			printf("  %-20s %s\n", names[i], v);
		}
	}
	json_builder_end_object(b);
	json_builder_end_object(b);
	if (opt.json)
		print_json(b);
	else if (!shown)
		printf("%s: no statistics from the guest yet (stats-interval %" G_GUINT64_FORMAT
		       " s%s)\n", id, iv, iv ? "" : ": off");
	return 0;
}

static int cmd_watch(const char *id)
{
	g_autofree char *prefix = g_strdup_printf("/devices/%s", id);
	g_autofree char *type = read_opt(id, "type");
	g_autoptr(GError) err = NULL;

	if (!type)
		die("no device '%s' (balloonctl status lists them)", id);
	if (!viod_store_client_watch(client, prefix, &err))
		die("%s: %s", prefix, err->message);
	while (!interrupted) {
		g_autoptr(ViodStoreEvent) ev = viod_store_client_next_event(client, 500, &err);
		const char *key;

		if (err)
			die("%s", err->message);
		if (!ev)
			continue;
		key = ev->path ? under(ev->path, prefix) : NULL;
		if (opt.json) {
			g_autoptr(JsonBuilder) b = json_builder_new();
			static const char *const kinds[] = { "changed", "removed", "synced" };

			json_builder_begin_object(b);
			jset_str(b, "event", kinds[ev->kind]);
			jset_str(b, "id", id);
			if (ev->path) {
				jset_str(b, "key", key ? key : ev->path);
				jset_str(b, "path", ev->path);
			}
			if (ev->value)
				jset_str(b, "value", ev->value);
			json_builder_end_object(b);
			print_json(b);
		} else if (ev->kind == VIOD_STORE_EVENT_CHANGED) {
			printf("%s %s\n", key ? key : ev->path, ev->value);
		} else if (ev->kind == VIOD_STORE_EVENT_REMOVED) {
			printf("%s (removed)\n", key ? key : ev->path);
		}
		fflush(stdout);
	}
	return 0;
}

/* ---- libvirt: a domain's viod, from its metadata (viod-libvirt(1)) ---- */

#ifdef VIOD_HAVE_LIBVIRT
static void quiet_errors(void *data, virErrorPtr e)
{
}

static virConnectPtr libvirt_open(void)
{
	virConnectPtr c;

	virSetErrorFunc(NULL, quiet_errors);
	c = virConnectOpenReadOnly(opt.uri);
	if (!c)
		die("cannot connect to %s: %s", opt.uri ? opt.uri : "the default hypervisor",
		    virGetLastErrorMessage());
	return c;
}

/* DOM's viod metadata, or NULL if it has none; dies if it is malformed. */
static struct viod_meta *domain_meta(virDomainPtr dom)
{
	char *xml = virDomainGetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT, VIOD_META_NS, 0);
	g_autoptr(GError) err = NULL;
	struct viod_meta *m;

	if (!xml)
		return NULL;
	m = viod_meta_parse(xml, -1, &err);
	free(xml);
	if (err)
		die("%s: %s", virDomainGetName(dom), err->message);
	return m;
}

/* Points opt.socket at --domain's control socket. */
static void resolve_domain(void)
{
	virConnectPtr c = libvirt_open();
	virDomainPtr dom = virDomainLookupByName(c, opt.domain);
	g_autoptr(viod_meta) m = NULL;

	if (!dom)
		die("no domain '%s' at %s", opt.domain, virConnectGetURI(c));
	m = domain_meta(dom);
	if (!m)
		die("domain '%s' has no viod devices (no " VIOD_META_NS " metadata; "
		    "see viod-libvirt(1))", opt.domain);
	opt.socket = g_strdup(m->control);
	virDomainFree(dom);
	virConnectClose(c);
}

/* Every domain with viod devices: its state, each balloon's target and
 * actual (from its viod, when that runs). */
static int cmd_list(void)
{
	virConnectPtr c = libvirt_open();
	virDomainPtr *doms = NULL;
	g_autoptr(JsonBuilder) b = json_builder_new();
	int n = virConnectListAllDomains(c, &doms, 0), shown = 0;

	if (n < 0)
		die("cannot list the domains: %s", virGetLastErrorMessage());
	json_builder_begin_object(b);
	json_builder_set_member_name(b, "domains");
	json_builder_begin_array(b);
	if (!opt.json)
		printf("%-16s %-8s %-12s %-24s %s\n", "DOMAIN", "STATE", "BALLOON", "TARGET",
		       "ACTUAL");
	for (int i = 0; i < n; i++) {
		g_autoptr(viod_meta) m = domain_meta(doms[i]);
		const char *name = virDomainGetName(doms[i]);
		gboolean running = virDomainIsActive(doms[i]) == 1, any = FALSE;
		ViodStoreClient *cl = NULL;

		if (!m) {
			virDomainFree(doms[i]);
			continue;
		}
		shown++;
		if (running)
			cl = viod_store_client_connect(m->control, NULL);
		json_builder_begin_object(b);
		jset_str(b, "domain", name);
		jset_str(b, "state", running ? "running" : "shut off");
		jset_str(b, "control", m->control);
		json_builder_set_member_name(b, "balloons");
		json_builder_begin_array(b);
		for (guint k = 0; k < m->devices->len; k++) {
			const struct viod_meta_dev *d = m->devices->pdata[k];
			struct balloon_sizes sz;
			g_autofree char *t = NULL, *a = NULL, *th = NULL, *ah = NULL;

			if (strcmp(d->type, "balloon"))
				continue;
			any = TRUE;
			json_builder_begin_object(b);
			jset_str(b, "id", d->id);
			if (cl) {
				client = cl;
				read_sizes(d->id, &sz);
				client = NULL;
				jset_sizes(b, &sz);
				th = human(sz.target * sz.page_size);
				ah = human(sz.actual * sz.page_size);
				t = g_strdup_printf("%" G_GUINT64_FORMAT " (%s)", sz.target, th);
				a = g_strdup_printf("%" G_GUINT64_FORMAT " (%s)", sz.actual, ah);
			}
			json_builder_end_object(b);
			if (!opt.json)
				printf("%-16s %-8s %-12s %-24s %s\n", name,
				       running ? "running" : "off", d->id, t ? t : "-", a ? a : "-");
		}
		json_builder_end_array(b);
		json_builder_end_object(b);
		if (!any && !opt.json)
			printf("%-16s %-8s %-12s %-24s %s\n", name, running ? "running" : "off",
			       "-", "-", "-");
		if (cl)
			viod_store_client_free(cl);
		virDomainFree(doms[i]);
	}
	free(doms);
	json_builder_end_array(b);
	json_builder_end_object(b);
	if (opt.json)
		print_json(b);
	else if (!shown)
		puts("no domains with viod devices");
	virConnectClose(c);
	return 0;
}
#endif

static const char *const commands[][2] = {
	{ "status", "" }, { "get", "ID" }, { "set", "ID SIZE" }, { "stats", "ID" },
	{ "watch", "ID" }, { "list", "" },
};

int main(int argc, char **argv)
{
	GOptionEntry entries[] = {
		{ "socket", 's', 0, G_OPTION_ARG_FILENAME, &opt.socket,
		  "viod's control socket (default: $VIOD_CONTROL, else "
		  "$XDG_RUNTIME_DIR/viod/control, else /run/viod/control)", "CONTROL" },
		{ "json", 'j', 0, G_OPTION_ARG_NONE, &opt.json,
		  "Print JSON (one object per line) instead of text", NULL },
		{ "wait", 'w', 0, G_OPTION_ARG_NONE, &opt.wait,
		  "set: wait until actual reaches the target", NULL },
		{ "timeout", 't', 0, G_OPTION_ARG_STRING, &opt.timeout,
		  "set --wait: give up after S seconds (default 60)", "S" },
		{ "stall", 0, 0, G_OPTION_ARG_STRING, &opt.stall,
		  "set --wait: give up when actual makes no progress for S seconds (default 10)",
		  "S" },
		{ "guest-memory", 'g', 0, G_OPTION_ARG_STRING, &opt.guest_memory,
		  "set: leave the guest SIZE of memory (instead of SIZE)", "SIZE" },
#ifdef VIOD_HAVE_LIBVIRT
		{ "connect", 'c', 0, G_OPTION_ARG_STRING, &opt.uri,
		  "libvirt connection URI, for --domain and list (default: libvirt's)", "URI" },
		{ "domain", 'd', 0, G_OPTION_ARG_STRING, &opt.domain,
		  "the viod of this libvirt domain (its control socket from the domain's "
		  "metadata)", "NAME" },
#endif
		{ "version", 'V', 0, G_OPTION_ARG_NONE, &opt.version,
		  "Print the version and exit", NULL },
		{ NULL },
	};
	g_autoptr(GOptionContext) ctx = g_option_context_new("COMMAND [ID] [SIZE]");
	g_autoptr(GError) err = NULL;
	double timeout = TIMEOUT_DEFAULT, stall = STALL_DEFAULT;
	struct sigaction sa = { .sa_handler = on_signal };
	struct size sz;
	const char *cmd;
	guint nargs = 0;
	int rc = 0;

	setlocale(LC_ALL, "");
	g_option_context_set_summary(ctx, "Ask viod's balloons for guest memory, and watch "
				     "them follow (see balloonctl(8)).");
	g_option_context_set_description(ctx,
		"Commands:\n"
		"  status            every device: type, state; a balloon's target and actual\n"
		"  get ID            a balloon's target and actual, in pages and bytes\n"
		"  set ID SIZE       ask the guest to give back SIZE [--wait [--timeout S]]\n"
		"  set ID --guest-memory SIZE   ... so that it keeps SIZE\n"
		"  stats ID          the guest's memory statistics\n"
		"  watch ID          print the device's keys as they change, until interrupted\n"
		"  list              (-c URI) every libvirt domain with viod devices, and\n"
		"                    its balloons' target and actual\n"
		"\n"
		"SIZE is pages (\"65536\"), or bytes with a unit: B, K, M, G or T (powers\n"
		"of 1024, e.g. \"512M\", \"1.5GiB\"); bytes are rounded up to whole pages.\n"
		"\n"
		"Exit status: 0 success, 1 runtime failure, 2 bad arguments.\n");
	g_option_context_add_main_entries(ctx, entries, NULL);
	if (!g_option_context_parse(ctx, &argc, &argv, &err))
		usage("%s", err->message);
	if (opt.version) {
		printf("balloonctl %s\n", VIOD_VERSION);
		return 0;
	}
	if (argc < 2)
		usage("missing COMMAND (status, get, set, stats, watch)");
	cmd = argv[1];
	for (gsize i = 0; i < G_N_ELEMENTS(commands); i++)
		if (!strcmp(cmd, commands[i][0]))
			nargs = 1 + (commands[i][1][0] != '\0') + (strchr(commands[i][1], ' ') != NULL);
	if (!nargs)
		usage("unknown command '%s' (status, get, set, stats, watch, list)", cmd);
#ifdef VIOD_HAVE_LIBVIRT
	if (opt.domain && opt.socket)
		usage("--domain and --socket both name the control socket: give one");
	if (!strcmp(cmd, "list") && (opt.domain || opt.socket))
		usage("list: every domain of --connect; no --domain or --socket");
#else
	if (!strcmp(cmd, "list"))
		usage("list: this balloonctl was built without libvirt");
#endif
	if (!strcmp(cmd, "set") && opt.guest_memory)
		nargs--;
	if ((guint)argc - 1 < nargs)
		usage("%s: missing %s", cmd, (guint)argc - 1 == 1 ? "ID" : "SIZE");
	if ((guint)argc - 1 > nargs)
		usage("%s: unexpected argument '%s'", cmd, argv[nargs + 1]);
	if (nargs > 1 && !id_valid(argv[2]))
		usage("bad device id '%s'", argv[2]);
	if (strcmp(cmd, "set") && (opt.wait || opt.guest_memory))
		usage("--%s is for set only", opt.wait ? "wait" : "guest-memory");
	if (!opt.wait && (opt.timeout || opt.stall))
		usage("--%s needs --wait", opt.timeout ? "timeout" : "stall");
	if (opt.timeout && !parse_seconds(opt.timeout, &timeout))
		usage("bad --timeout '%s' (seconds, e.g. 30 or 2.5)", opt.timeout);
	if (opt.stall && !parse_seconds(opt.stall, &stall))
		usage("bad --stall '%s' (seconds, e.g. 10 or 2.5)", opt.stall);
	if (!strcmp(cmd, "set")) {
		const char *s = opt.guest_memory ? opt.guest_memory : argv[3];

		if (!parse_size(s, &sz))
			usage("bad SIZE '%s' (pages, or bytes with B, K, M, G or T: e.g. 65536, 512M)",
			      s);
	}

	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
#ifdef VIOD_HAVE_LIBVIRT
	if (!strcmp(cmd, "list"))
		return cmd_list();
	if (opt.domain)
		resolve_domain();
#endif
	connect_or_die();
	if (!strcmp(cmd, "status"))
		rc = cmd_status();
	else if (!strcmp(cmd, "get"))
		rc = cmd_get(argv[2]);
	else if (!strcmp(cmd, "set"))
		rc = cmd_set(argv[2], opt.guest_memory ? NULL : argv[3], timeout, stall);
	else if (!strcmp(cmd, "stats"))
		rc = cmd_stats(argv[2]);
	else
		rc = cmd_watch(argv[2]);
	viod_store_client_free(client);
	return rc;
}
