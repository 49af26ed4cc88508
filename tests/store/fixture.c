/* The fake daemon's key tree (fixture.h). */
#include "fixture.h"

#include <gio/gio.h>
#include <string.h>

#define PAGE 4096u
#define TICK_MS 50
#define TICKS 20        /* a change of target is followed in about a second */

struct fb {
	struct viod_store *st;
	char *prefix;
	guint64 guest_memory;
	guint64 cap;
	guint64 target;
	guint64 actual;
	guint64 step;
	gboolean animate;
	guint timer;
};

static GPtrArray *balloons;

static void key_setf(struct fb *b, const char *key, const char *fmt, ...) G_GNUC_PRINTF(3, 4);

static void key_setf(struct fb *b, const char *key, const char *fmt, ...)
{
	g_autofree char *path = g_strdup_printf("%s/%s", b->prefix, key);
	g_autofree char *value = NULL;
	va_list ap;

	va_start(ap, fmt);
	value = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	viod_store_set(b->st, path, value);
}

static guint64 kib_left(const struct fb *b, guint64 pages)
{
	return b->guest_memory > pages * PAGE ? (b->guest_memory - pages * PAGE) / 1024 : 0;
}

static void publish_sizes(struct fb *b)
{
	key_setf(b, "target", "%" G_GUINT64_FORMAT, b->target);
	key_setf(b, "actual", "%" G_GUINT64_FORMAT, b->actual);
	key_setf(b, "inflated", "%" G_GUINT64_FORMAT, b->actual);
	key_setf(b, "host-freed", "%" G_GUINT64_FORMAT, b->actual * PAGE);
	key_setf(b, "memory/target", "%" G_GUINT64_FORMAT, kib_left(b, b->target));
	key_setf(b, "memory/current", "%" G_GUINT64_FORMAT, kib_left(b, b->actual));
}

static gboolean tick(gpointer data)
{
	struct fb *b = data;
	guint64 goal = MIN(b->target, b->cap);

	if (b->actual < goal)
		b->actual = MIN(goal, b->actual + b->step);
	else if (b->actual > goal)
		b->actual = b->actual - MIN(b->actual - goal, b->step);
	publish_sizes(b);
	if (b->actual == goal) {
		b->timer = 0;
		return G_SOURCE_REMOVE;
	}
	return G_SOURCE_CONTINUE;
}

static void target_set(struct fb *b, guint64 pages)
{
	guint64 goal = MIN(pages, b->cap);
	guint64 dist = goal > b->actual ? goal - b->actual : b->actual - goal;

	b->target = pages;
	b->step = MAX(1, dist / TICKS);
	publish_sizes(b);
	if (b->animate && !b->timer && dist)
		b->timer = g_timeout_add(TICK_MS, tick, b);
}

/* Plain decimal digits, no sign or blanks. */
static gboolean parse_u64(const char *s, guint64 *out)
{
	guint64 v = 0;

	if (!*s || strlen(s) > 19)
		return FALSE;
	for (; *s; s++) {
		if (!g_ascii_isdigit(*s))
			return FALSE;
		v = v * 10 + (guint64)(*s - '0');
	}
	*out = v;
	return TRUE;
}

static gboolean write_target(struct viod_store *st, const char *path, const char *value,
			     gpointer opaque, GError **err)
{
	struct fb *b = opaque;
	guint64 max = b->guest_memory ? b->guest_memory / PAGE : G_MAXUINT32;
	guint64 pages;

	if (!parse_u64(value, &pages)) {
		g_set_error(err, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
			    "target must be a whole number of pages");
		return FALSE;
	}
	if (pages > max) {
		g_set_error(err, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
			    "target %" G_GUINT64_FORMAT " is more than the guest's %"
			    G_GUINT64_FORMAT " pages", pages, max);
		return FALSE;
	}
	target_set(b, pages);
	return TRUE;
}

static gboolean write_memory_target(struct viod_store *st, const char *path,
				    const char *value, gpointer opaque, GError **err)
{
	struct fb *b = opaque;
	guint64 kib;

	if (!b->guest_memory) {
		g_set_error(err, G_IO_ERROR, G_IO_ERROR_FAILED,
			    "no guest connected: its memory size is unknown");
		return FALSE;
	}
	if (!parse_u64(value, &kib) || kib > b->guest_memory / 1024) {
		g_set_error(err, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
			    "memory/target must be a number of KiB up to %" G_GUINT64_FORMAT,
			    b->guest_memory / 1024);
		return FALSE;
	}
	target_set(b, (b->guest_memory - kib * 1024) / PAGE);
	return TRUE;
}

static gboolean write_stats_interval(struct viod_store *st, const char *path,
				     const char *value, gpointer opaque, GError **err)
{
	struct fb *b = opaque;
	guint64 s;

	if (!parse_u64(value, &s) || s > 86400) {
		g_set_error(err, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
			    "stats-interval must be 0 to 86400 seconds");
		return FALSE;
	}
	key_setf(b, "stats-interval", "%" G_GUINT64_FORMAT, s);
	return TRUE;
}

static void fb_free(gpointer p)
{
	struct fb *b = p;

	if (b->timer)
		g_source_remove(b->timer);
	g_free(b->prefix);
	g_free(b);
}

void fixture_add_balloon(struct viod_store *st, const struct fake_balloon *fake)
{
	static const struct {
		const char *name;
		guint64 value;
	} stats[] = {
		{ "swap-in", 0 }, { "swap-out", 0 }, { "major-faults", 120 },
		{ "minor-faults", 48213 }, { "free-memory", 812646400 },
		{ "total-memory", 1021313024 }, { "available-memory", 880803840 },
		{ "disk-caches", 104857600 }, { "hugetlb-allocations", 0 },
		{ "hugetlb-failures", 0 },
	};
	struct fb *b = g_new0(struct fb, 1);
	g_autofree char *path = NULL;

	if (!balloons)
		balloons = g_ptr_array_new_with_free_func(fb_free);
	g_ptr_array_add(balloons, b);
	b->st = st;
	b->prefix = g_strdup_printf("/devices/%s", fake->id);
	b->guest_memory = fake->guest_memory;
	b->cap = fake->cap;
	b->animate = fake->animate;

	key_setf(b, "type", "balloon");
	key_setf(b, "socket", "/run/viod/%s.sock", fake->id);
	key_setf(b, "state", "%s", fake->state);
	key_setf(b, "features", "0x%016" G_GINT64_MODIFIER "x",
		 fake->guest_memory ? (guint64)0x100000006 : 0);
	key_setf(b, "status", "0x%02x", fake->guest_memory ? 0x0f : 0);
	key_setf(b, "page-size", "%u", PAGE);
	key_setf(b, "guest-memory", "%" G_GUINT64_FORMAT, b->guest_memory);
	key_setf(b, "errors", "0");
	key_setf(b, "stats-interval", "%u", fake->stats_updated >= 0 ? 5 : 0);
	publish_sizes(b);
	if (fake->stats_updated >= 0) {
		for (gsize i = 0; i < G_N_ELEMENTS(stats); i++) {
			g_autofree char *key = g_strdup_printf("stats/%s", stats[i].name);

			key_setf(b, key, "%" G_GUINT64_FORMAT, stats[i].value);
		}
		key_setf(b, "stats/updated", "%" G_GINT64_FORMAT, fake->stats_updated);
	}

	path = g_strdup_printf("%s/target", b->prefix);
	viod_store_set_writable(st, path, write_target, b);
	g_free(path);
	path = g_strdup_printf("%s/memory/target", b->prefix);
	viod_store_set_writable(st, path, write_memory_target, b);
	g_free(path);
	path = g_strdup_printf("%s/stats-interval", b->prefix);
	viod_store_set_writable(st, path, write_stats_interval, b);
}

void fixture_add_rng(struct viod_store *st, const char *id)
{
	g_autofree char *prefix = g_strdup_printf("/devices/%s", id);
	static const char *const keys[][2] = {
		{ "type", "rng" }, { "state", "waiting" },
		{ "features", "0x0000000000000000" }, { "status", "0x00" },
	};

	for (gsize i = 0; i < G_N_ELEMENTS(keys); i++) {
		g_autofree char *path = g_strdup_printf("%s/%s", prefix, keys[i][0]);

		viod_store_set(st, path, keys[i][1]);
	}
	{
		g_autofree char *path = g_strdup_printf("%s/socket", prefix);
		g_autofree char *sock = g_strdup_printf("/run/viod/%s.sock", id);

		viod_store_set(st, path, sock);
	}
}

void fixture_populate(struct viod_store *st)
{
	const struct fake_balloon b = {
		.id = "balloon0", .state = "connected", .guest_memory = 1u << 30,
		.cap = G_MAXUINT64, .animate = FALSE, .stats_updated = 1000000,
	};

	fixture_add_balloon(st, &b);
	fixture_add_rng(st, "rng0");
}

void fixture_clear(void)
{
	g_clear_pointer(&balloons, g_ptr_array_unref);
}
