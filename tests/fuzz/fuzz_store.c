/*
 * libFuzzer target: the control store's protocol server (src/store/server.c
 * over store.c), driven through its real code path. Each input is the byte
 * stream one hostile client sends on its connection; the server splits it
 * into lines itself.
 *
 * Per input: a fresh store with a daemon-like tree (below); a watcher
 * client B that holds watches (so the fuzzed client's writes fan out as
 * events to another connection) is connected first and synced; then the
 * fuzzed client A, on the other end of a socketpair adopted with
 * viod_store_serve_fd(), sends the input in chunks of varying size (so
 * lines arrive split across reads), with the default GLib main context
 * iterated and both clients' output drained between chunks; then A shuts
 * down its sending side and the server must answer everything and close.
 * B then gets events it does not read at once and leaves (in order,
 * abruptly, or not before the store is freed), and the store is freed.
 * The server's ends have small send buffers, so its output often waits
 * (EAGAIN, the G_IO_OUT source, the backlog pause).
 *
 * The tree: /devices/b0, a balloon with a 1 GiB guest (target, memory/target,
 * stats-interval, label and unplug writable, each with a validating
 * callback; a daemon-side watch makes actual follow target, a write nested
 * in a notification; stats-interval 0 removes the stats/ subtree, unplug 1
 * removes the device, writables included, from inside its own callback);
 * /devices/b1, a balloon without a guest (its writes fail: EIO with and
 * without an error); /devices/r0, an rng; /devices/ctl/plug (writing a
 * balloon's name re-creates it) and /devices/ctl/reset (removes "/" and
 * rebuilds the tree, at most RESETS_MAX times per input).
 *
 * Oracle: sanitizers; any GLib warning or critical (a g_return_if_fail in
 * the store) aborts; every line the server sends is valid UTF-8 and a JSON
 * object that is a response ("id", "ok") or an event ("event"); A gets
 * exactly one response per non-blank line it sent, up to and including
 * the E2BIG for a line over VIOD_STORE_LINE_MAX (so the server never drops
 * or doubles a request, and answers everything after the client's EOF);
 * the server closes A after its EOF and drops B after B closes (no hang,
 * no connection kept); after viod_store_free no descriptor of the
 * server's and no main-loop source is left.
 *
 * GSlice (GLib before 2.76) keeps freed blocks in reachable caches, which
 * hides leaks from LeakSanitizer (it hid two, see seed-two-values and
 * seed-surrogates): the program re-executes itself with
 * G_SLICE=always-malloc unless G_SLICE is set. FUZZ_STORE_DUMP=1 in the
 * environment prints what both clients received.
 *
 * A is never disconnected for its backlog: the most output one request can
 * cause is a reset with A holding 64 watches on "/" (about 110 events of
 * under 100 bytes each per watch: some 700 KB, under VIOD_STORE_BACKLOG_MAX
 * minus the 64 KiB pause). B may be (it is a watcher that does not keep up
 * within one dispatch); that is the documented behaviour and is allowed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gio/gio.h>
#include <json-glib/json-glib.h>

#include "store/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define PAGE 4096u
#define SERVER_SNDBUF 4096      /* the kernel rounds it up to its minimum */
#define CHUNK_MAX 8192u
#define STALL_MAX 200           /* rounds without progress: a hang */
#define RESETS_MAX 4
#define LABEL_MAX 64

/*
 * GLib reads G_SLICE in its own constructor, before this one runs, hence
 * the exec. glibc passes constructors main's arguments.
 */
__attribute__((constructor)) static void slices_off(int argc, char **argv, char **envp)
{
	if (glib_check_version(2, 76, 0) == NULL || getenv("G_SLICE") || !argv)
		return;
	setenv("G_SLICE", "always-malloc", 1);
	execv("/proc/self/exe", argv);
	/* Carry on with GSlice if that failed. */
}

static void fail(const char *why)
{
	fprintf(stderr, "fuzz_store: %s\n", why);
	fflush(stderr);
	__builtin_trap();
}

/* ---- the daemon side: a tree like viod's ---- */

struct fb {
	const char *id;
	guint64 guest_memory;   /* bytes; 0: no guest connected */
	guint64 target;
	gboolean present;
};

static struct fb balloons[2] = {
	{ .id = "b0", .guest_memory = 1u << 30 },
	{ .id = "b1", .guest_memory = 0 },
};
static unsigned int resets;
static struct viod_store *cur;  /* the store of the input being run */

static void build_tree(struct viod_store *st);

static void key_set(struct fb *b, const char *key, const char *fmt, ...) G_GNUC_PRINTF(3, 4);

static void key_set(struct fb *b, const char *key, const char *fmt, ...)
{
	g_autofree char *value = NULL;
	g_autofree char *path = g_strdup_printf("/devices/%s/%s", b->id, key);
	va_list ap;

	va_start(ap, fmt);
	value = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	viod_store_set(cur, path, value);
}

static guint64 kib_left(const struct fb *b, guint64 pages)
{
	return b->guest_memory > pages * PAGE ? (b->guest_memory - pages * PAGE) / 1024 : 0;
}

static void publish_target(struct fb *b)
{
	key_set(b, "target", "%" G_GUINT64_FORMAT, b->target);
	key_set(b, "memory/target", "%" G_GUINT64_FORMAT, kib_left(b, b->target));
}

static void publish_stats(struct fb *b)
{
	static const char *const names[] = { "swap-in", "free-memory", "total-memory" };

	for (gsize i = 0; i < G_N_ELEMENTS(names); i++) {
		g_autofree char *key = g_strdup_printf("stats/%s", names[i]);

		key_set(b, key, "%" G_GSIZE_FORMAT, i * 4096 + b->target);
	}
	key_set(b, "stats/updated", "1000000");
}

static struct fb *balloon_of(gpointer opaque)
{
	return opaque;
}

/* target: pages, as viod's balloon parses it (G_NUMBER_PARSER_ERROR). */
static gboolean write_target(struct viod_store *st, const char *path, const char *value,
			     gpointer opaque, GError **err)
{
	struct fb *b = balloon_of(opaque);
	guint64 pages;

	if (!g_ascii_string_to_unsigned(value, 10, 0,
					b->guest_memory ? b->guest_memory / PAGE : G_MAXUINT32,
					&pages, err))
		return FALSE;
	if (!b->guest_memory)
		return FALSE;   /* no guest: fails without saying why (EIO) */
	b->target = pages;
	publish_target(b);
	return TRUE;
}

/* memory/target: KiB the guest keeps (XenStore's name and unit). */
static gboolean write_memory_target(struct viod_store *st, const char *path,
				    const char *value, gpointer opaque, GError **err)
{
	struct fb *b = balloon_of(opaque);
	guint64 kib;

	if (!b->guest_memory) {
		g_set_error(err, G_IO_ERROR, G_IO_ERROR_FAILED,
			    "no guest connected: its memory size is unknown");
		return FALSE;
	}
	if (!g_ascii_string_to_unsigned(value, 10, 0, b->guest_memory / 1024, &kib, err))
		return FALSE;
	b->target = (b->guest_memory - kib * 1024) / PAGE;
	publish_target(b);
	return TRUE;
}

/* stats-interval: 0 stops the statistics and removes them. */
static gboolean write_stats_interval(struct viod_store *st, const char *path,
				     const char *value, gpointer opaque, GError **err)
{
	struct fb *b = balloon_of(opaque);
	guint64 s;
	g_autofree char *stats = NULL;

	if (!g_ascii_string_to_unsigned(value, 10, 0, 86400, &s, err))
		return FALSE;
	stats = g_strdup_printf("/devices/%s/stats", b->id);
	if (s)
		publish_stats(b);
	else
		viod_store_remove(st, stats);
	key_set(b, "stats-interval", "%" G_GUINT64_FORMAT, s);
	return TRUE;
}

/* label: free text, echoed in its error message as GLib's parsers do. */
static gboolean write_label(struct viod_store *st, const char *path, const char *value,
			    gpointer opaque, GError **err)
{
	if (!g_utf8_validate(value, -1, NULL)) {
		g_set_error(err, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
			    "a label is UTF-8 text");
		return FALSE;
	}
	if (g_utf8_strlen(value, -1) > LABEL_MAX) {
		g_set_error(err, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
			    "label “%s” is longer than %d characters", value, LABEL_MAX);
		return FALSE;
	}
	viod_store_set(st, path, value);
	return TRUE;
}

/* unplug: "1" removes the device, this key and its writables included. */
static gboolean write_unplug(struct viod_store *st, const char *path, const char *value,
			     gpointer opaque, GError **err)
{
	struct fb *b = balloon_of(opaque);
	g_autofree char *prefix = NULL;

	if (strcmp(value, "0") == 0)
		return TRUE;
	if (strcmp(value, "1") != 0) {
		g_set_error(err, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
			    "unplug takes 0 or 1, not “%s”", value);
		return FALSE;
	}
	prefix = g_strdup_printf("/devices/%s", b->id);
	viod_store_remove(st, prefix);
	b->present = FALSE;
	return TRUE;
}

static void balloon_plug(struct viod_store *st, struct fb *b)
{
	static const struct {
		const char *key;
		viod_store_write_fn fn;
	} writable[] = {
		{ "target", write_target }, { "memory/target", write_memory_target },
		{ "stats-interval", write_stats_interval }, { "label", write_label },
		{ "unplug", write_unplug },
	};

	b->target = 0;
	key_set(b, "type", "balloon");
	key_set(b, "state", "%s", b->guest_memory ? "connected" : "waiting");
	key_set(b, "socket", "/run/viod/%s.sock", b->id);
	key_set(b, "page-size", "%u", PAGE);
	key_set(b, "guest-memory", "%" G_GUINT64_FORMAT, b->guest_memory);
	key_set(b, "errors", "0");
	key_set(b, "label", "%s", "");
	key_set(b, "unplug", "0");
	key_set(b, "actual", "0");
	key_set(b, "memory/current", "%" G_GUINT64_FORMAT, kib_left(b, 0));
	publish_target(b);
	key_set(b, "stats-interval", "5");
	publish_stats(b);
	for (gsize i = 0; i < G_N_ELEMENTS(writable); i++) {
		g_autofree char *path = g_strdup_printf("/devices/%s/%s", b->id, writable[i].key);

		viod_store_set_writable(st, path, writable[i].fn, b);
	}
	b->present = TRUE;
}

static gboolean write_plug(struct viod_store *st, const char *path, const char *value,
			   gpointer opaque, GError **err)
{
	for (gsize i = 0; i < G_N_ELEMENTS(balloons); i++) {
		if (strcmp(value, balloons[i].id) != 0)
			continue;
		if (balloons[i].present) {
			g_set_error(err, G_IO_ERROR, G_IO_ERROR_EXISTS, "%s is plugged", value);
			return FALSE;
		}
		balloon_plug(st, &balloons[i]);
		return TRUE;
	}
	g_set_error(err, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT, "no balloon named so");
	return FALSE;
}

/* reset: removes everything, this key included, and starts over. */
static gboolean write_reset(struct viod_store *st, const char *path, const char *value,
			    gpointer opaque, GError **err)
{
	if (strcmp(value, "1") != 0) {
		g_set_error(err, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT, "reset takes 1");
		return FALSE;
	}
	if (resets >= RESETS_MAX) {
		g_set_error(err, G_IO_ERROR, G_IO_ERROR_BUSY, "reset %d times already",
			    RESETS_MAX);
		return FALSE;
	}
	resets++;
	viod_store_remove(st, "/");
	build_tree(st);
	return TRUE;
}

/* The daemon's own watch: actual follows target at once (a nested write). */
static void follow_target(const char *path, const char *value, gpointer opaque)
{
	g_autofree char *actual = NULL;
	gsize len = strlen(path);

	if (!value || len < 7 || strcmp(path + len - 7, "/target") != 0 ||
	    g_str_has_suffix(path, "/memory/target"))
		return;
	actual = g_strdup_printf("%.*s/actual", (int)(len - 7), path);
	viod_store_set(cur, actual, value);
}

static void build_tree(struct viod_store *st)
{
	for (gsize i = 0; i < G_N_ELEMENTS(balloons); i++)
		balloon_plug(st, &balloons[i]);
	viod_store_set(st, "/devices/r0/type", "rng");
	viod_store_set(st, "/devices/r0/state", "waiting");
	viod_store_set(st, "/devices/r0/socket", "/run/viod/r0.sock");
	viod_store_set(st, "/devices/ctl/plug", "");
	viod_store_set(st, "/devices/ctl/reset", "0");
	viod_store_set_writable(st, "/devices/ctl/plug", write_plug, NULL);
	viod_store_set_writable(st, "/devices/ctl/reset", write_reset, NULL);
}

/* ---- the clients' side ---- */

struct peer {
	int fd;                 /* our end */
	GByteArray *out;        /* what the server sent */
	gboolean eof;           /* the server closed */
};

static int peer_connect(struct viod_store *st, struct peer *p, int *server_end)
{
	int sv[2];
	int sndbuf = SERVER_SNDBUF;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) < 0)
		return -1;
	if (setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)) < 0) {
		close(sv[0]);
		close(sv[1]);
		return -1;
	}
	p->fd = sv[0];
	p->out = g_byte_array_new();
	p->eof = FALSE;
	*server_end = sv[1];
	if (!viod_store_serve_fd(st, sv[1], NULL))
		fail("viod_store_serve_fd refused a connection");
	return 0;
}

/* Reads what is there; returns the number of bytes read. */
static size_t peer_drain(struct peer *p)
{
	uint8_t buf[65536];
	size_t got = 0;

	while (!p->eof) {
		ssize_t n = recv(p->fd, buf, sizeof(buf), MSG_DONTWAIT);

		if (n > 0) {
			g_byte_array_append(p->out, buf, (guint)n);
			got += (size_t)n;
		} else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
			p->eof = TRUE;  /* closed, or reset (closed with input unread) */
		} else if (errno != EINTR) {
			break;
		}
	}
	return got;
}

/* Dispatches what is ready; returns the number of sources dispatched. */
static unsigned int run_loop(void)
{
	unsigned int n = 0;

	while (n < 256 && g_main_context_iteration(NULL, FALSE))
		n++;
	return n;
}

/*
 * Checks every line the server sent and counts responses and "synced"
 * events. Every line is whole (the server writes whole lines), non-empty,
 * UTF-8 without NUL or other control bytes, and looks like an object. With
 * parse, every response and every event with an escape or a non-ASCII byte
 * must also parse as a JSON object whose members say what it is; other
 * lines are classified by how the server's builder starts them (json-glib
 * is the costliest part of an execution, and inputs that hold many watches
 * get thousands of plain events).
 */
static void check_output(const struct peer *p, gboolean parse, size_t *responses,
			 size_t *synced)
{
	static const char resp[] = "{\"id\":", event[] = "{\"event\":\"",
			  sync[] = "{\"event\":\"synced\"";
	const char *s = (const char *)p->out->data;
	size_t len = p->out->len, pos = 0;
	g_autoptr(JsonParser) parser = parse ? json_parser_new_immutable() : NULL;

	*responses = *synced = 0;
	while (pos < len) {
		const char *line = s + pos;
		const char *nl = memchr(line, '\n', len - pos);
		size_t n;
		JsonNode *root;
		JsonObject *o;

		if (!nl)
			fail("server output ends in a partial line");
		n = (size_t)(nl - line);
		pos += n + 1;
		if (n < 2 || line[0] != '{' || line[n - 1] != '}')
			fail("server line is not an object");
		for (size_t i = 0; i < n; i++)
			if ((unsigned char)line[i] < 0x20)
				fail("server line with a control byte");
		if (!g_utf8_validate(line, (gssize)n, NULL))
			fail("server line not UTF-8");
		if (parse && n >= sizeof(event) - 1 && memcmp(line, event, sizeof(event) - 1) == 0) {
			gboolean plain = TRUE;

			for (size_t i = 0; i < n && plain; i++)
				plain = line[i] != '\\' && (unsigned char)line[i] < 0x80;
			if (plain && n >= sizeof(sync) - 1 && memcmp(line, sync, sizeof(sync) - 1) == 0)
				(*synced)++;
			if (plain)
				continue;
		}
		if (!parse) {
			if (n >= sizeof(resp) - 1 && memcmp(line, resp, sizeof(resp) - 1) == 0)
				(*responses)++;
			else if (n >= sizeof(sync) - 1 && memcmp(line, sync, sizeof(sync) - 1) == 0)
				(*synced)++;
			else if (n < sizeof(event) - 1 || memcmp(line, event, sizeof(event) - 1) != 0)
				fail("server line neither a response nor an event");
			continue;
		}
		if (!json_parser_load_from_data(parser, line, (gssize)n, NULL))
			fail("server line is not JSON");
		root = json_parser_get_root(parser);
		if (!root || !JSON_NODE_HOLDS_OBJECT(root))
			fail("server line is not a JSON object");
		o = json_node_get_object(root);
		if (json_object_has_member(o, "event")) {
			const char *ev = json_object_get_string_member_with_default(o, "event", "");

			if (!json_object_has_member(o, "watch"))
				fail("event without a watch");
			if (strcmp(ev, "synced") == 0)
				(*synced)++;
			else if (strcmp(ev, "changed") != 0 && strcmp(ev, "removed") != 0)
				fail("unknown event");
		} else if (json_object_has_member(o, "id") && json_object_has_member(o, "ok")) {
			(*responses)++;
		} else {
			fail("server line neither a response nor an event");
		}
	}
}

/* While B syncs: its whole lines so far, by how they start. */
static void count_synced(const struct peer *p, size_t *responses, size_t *synced)
{
	const char *s = (const char *)p->out->data;
	const char *end = p->out->len ? memrchr(s, '\n', p->out->len) : NULL;
	size_t whole = end ? (size_t)(end - s) + 1 : 0;
	struct peer part = *p;
	GByteArray view = { .data = p->out->data, .len = (guint)whole };

	part.out = &view;
	check_output(&part, FALSE, responses, synced);
}

/* The responses the server owes for input: see client_pump() in server.c. */
static size_t responses_owed(const uint8_t *data, size_t size)
{
	size_t owed = 0, pos = 0;

	while (pos < size) {
		const uint8_t *nl = memchr(data + pos, '\n', size - pos);
		size_t len = nl ? (size_t)(nl - (data + pos)) + 1 : size - pos;
		size_t n = nl ? len - 1 : len;

		if (len > VIOD_STORE_LINE_MAX)
			return owed + 1;        /* E2BIG, then the connection closes */
		while (n > 0 && g_ascii_isspace(data[pos + n - 1]))
			n--;
		if (n > 0)
			owed++;
		pos += len;
	}
	return owed;
}

/*
 * B: watches that the fuzzed writes reach (two on b0's target), one
 * dropped at once. Not "/": its snapshot would cost every input ~50 events.
 */
static const char watcher_script[] =
	"{\"id\":1,\"op\":\"watch\",\"path\":\"/devices/b0/target\"}\n"
	"{\"id\":2,\"op\":\"watch\",\"path\":\"/devices/b0/memory\"}\n"
	"{\"id\":3,\"op\":\"watch\",\"path\":\"/devices/b0/stats\"}\n"
	"{\"id\":4,\"op\":\"watch\",\"path\":\"/devices/b9\"}\n"
	"{\"id\":5,\"op\":\"watch\",\"path\":\"/devices/ctl\"}\n"
	"{\"id\":6,\"op\":\"watch\",\"path\":\"/devices/b0/target\"}\n"
	"{\"id\":7,\"op\":\"unwatch\",\"watch\":3}\n";
#define WATCHER_REQUESTS 7
#define WATCHER_WATCHES 6
#define HEARTBEATS 24           /* B's socket takes about 8 events */
enum { B_ORDERLY, B_ABRUPT, B_STAYS };

static void log_handler(const gchar *domain, GLogLevelFlags level, const gchar *msg,
			gpointer unused)
{
	if (level & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING)) {
		fprintf(stderr, "%s: %s\n", domain ? domain : "viod", msg);
		fail("GLib warning or critical");
	}
	/* Messages (dropped clients) and debug output: dropped. */
}

static gboolean fd_open(int fd)
{
	return fcntl(fd, F_GETFD) >= 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static gboolean once, dump;
	struct viod_store *st;
	struct peer a, b;
	int a_srv, b_srv;
	size_t off = 0, resp, synced;
	guint32 rng = (guint32)size * 2654435761u + 1;
	guint follow;
	unsigned int stall = 0;
	gboolean b_dropped;
	unsigned int mode;

	if (!once) {
		once = TRUE;
		g_log_set_default_handler(log_handler, NULL);
		dump = getenv("FUZZ_STORE_DUMP") != NULL;
	}

	cur = st = viod_store_new();
	resets = 0;
	build_tree(st);
	follow = viod_store_watch_add(st, "/devices", follow_target, NULL);

	/* B connects and syncs its watches first. */
	if (peer_connect(st, &b, &b_srv) < 0)
		fail("socketpair");
	if (send(b.fd, watcher_script, strlen(watcher_script), MSG_NOSIGNAL) !=
	    (ssize_t)strlen(watcher_script))
		fail("cannot send the watcher's requests");
	for (;;) {
		size_t moved = run_loop() + peer_drain(&b);

		count_synced(&b, &resp, &synced);
		if (resp == WATCHER_REQUESTS && synced == WATCHER_WATCHES)
			break;
		if (b.eof)
			fail("the watcher was dropped while syncing");
		if (moved == 0 && ++stall > STALL_MAX)
			fail("the watcher's requests got no answer");
		if (moved)
			stall = 0;
	}

	/* A sends the input in chunks, then its EOF. */
	if (peer_connect(st, &a, &a_srv) < 0)
		fail("socketpair");
	stall = 0;
	while (!a.eof) {
		size_t moved = 0;

		if (off < size) {
			size_t chunk;
			ssize_t n;

			rng = rng * 1103515245u + 12345u;
			chunk = 1 + (rng >> 8) % CHUNK_MAX;
			if (chunk > size - off)
				chunk = size - off;
			n = send(a.fd, data + off, chunk, MSG_NOSIGNAL | MSG_DONTWAIT);
			if (n > 0) {
				off += (size_t)n;
				moved += (size_t)n;
			} else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
				off = size;     /* the server closed (after E2BIG) */
			}
			if (off == size)
				shutdown(a.fd, SHUT_WR);
		} else if (size == 0 && off == 0) {
			shutdown(a.fd, SHUT_WR);
			off = 1;        /* once */
		}
		moved += run_loop();
		moved += peer_drain(&a);
		moved += peer_drain(&b);
		if (moved)
			stall = 0;
		else if (++stall > STALL_MAX)
			fail("the server does not close the connection after the client's EOF");
	}
	if (dump)
		fprintf(stderr, "--- A got:\n%.*s", (int)a.out->len, (const char *)a.out->data);
	check_output(&a, TRUE, &resp, &synced);
	if (resp != responses_owed(data, size)) {
		fprintf(stderr, "fuzz_store: %zu responses for %zu requests\n", resp,
			responses_owed(data, size));
		fail("not exactly one response per request");
	}

	/*
	 * The daemon publishes a key B watches (created now: B watched it
	 * before it existed), more events than B's socket takes at once, so
	 * that B has output waiting. B leaves in one of three ways chosen by
	 * the input's length: in order (EOF, the server answers and closes);
	 * abruptly, just before the events (the server's send fails inside
	 * the store's notification, which drops B and its watches there, as
	 * when a client goes away while the daemon publishes); or not at all
	 * (the store is freed under it).
	 */
	b_dropped = b.eof;
	mode = size % 3;
	if (mode == B_ABRUPT) {
		close(b.fd);
		b.fd = -1;
	}
	for (int i = 0; i < HEARTBEATS; i++)
		viod_store_setf(st, "/devices/b9/heartbeat", "%d", i);
	stall = 0;
	if (mode == B_ORDERLY) {
		shutdown(b.fd, SHUT_WR);
		while (!b.eof) {
			size_t moved = run_loop() + peer_drain(&b);

			if (moved)
				stall = 0;
			else if (++stall > STALL_MAX)
				fail("the server does not close the watcher after its EOF");
		}
	} else if (mode == B_ABRUPT) {
		while (viod_store_connections(st) > 0) {
			if (run_loop())
				stall = 0;
			else if (++stall > STALL_MAX)
				fail("the server keeps a connection its peer closed");
		}
	}
	if (dump)
		fprintf(stderr, "--- B got%s:\n%.*s", b_dropped ? " (dropped)" : "",
			(int)b.out->len, (const char *)b.out->data);
	if (mode == B_ORDERLY) {
		check_output(&b, FALSE, &resp, &synced);
		if (!b_dropped && resp != WATCHER_REQUESTS)
			fail("the watcher got responses it did not ask for");
	}

	run_loop();             /* frees the dropped connections */
	if (viod_store_connections(st) != (mode == B_STAYS && !b.eof ? 1u : 0u))
		fail("closed connections still counted");
	viod_store_watch_remove(st, follow);
	viod_store_free(st);
	cur = NULL;
	if (fd_open(a_srv) || fd_open(b_srv))
		fail("the server left a connection's descriptor open");
	if (g_main_context_pending(NULL))
		fail("the store left a main-loop source behind");

	close(a.fd);
	if (b.fd >= 0)
		close(b.fd);
	g_byte_array_free(a.out, TRUE);
	g_byte_array_free(b.out, TRUE);
	return 0;
}
