/*
 * The control store's socket, in process: a store with the examples'
 * fixture (fixture.c) served on a GLib main loop in a second thread.
 *
 * 1. Every .jsonl file in proto/examples/ is replayed over a raw socket: the
 *    "> " lines are sent, each "< " line must match the next line received
 *    as JSON (member order aside), and nothing more may follow.
 * 2. The client library runs the same files: each well-formed request
 *    becomes a library call whose result (value, error code and message,
 *    queued events) must match the file's replies.
 * 3. Hostile clients: garbage, a 1 MiB line, a flood of requests without
 *    reading, a watcher that never reads, too many connections; the socket
 *    mode, stale and live sockets, the credential rule, half-closed peers.
 *
 * Usage: protocol EXAMPLES_DIR. TAP on stdout.
 */
#include <errno.h>
#include <fcntl.h>
#include <json-glib/json-glib.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "fixture.h"
#include "tap.h"
#include "viod/store.h"

static struct viod_store *st;
static char *sock_path;
static char *tmpdir;

/* ---- running code on the server's loop thread ---- */

struct call {
	void (*fn)(gpointer);
	gpointer data;
	gboolean done;
};

static GMutex call_mu;
static GCond call_cv;

static gboolean call_cb(gpointer p)
{
	struct call *c = p;

	c->fn(c->data);
	g_mutex_lock(&call_mu);
	c->done = TRUE;
	g_cond_broadcast(&call_cv);
	g_mutex_unlock(&call_mu);
	return G_SOURCE_REMOVE;
}

static void in_loop(void (*fn)(gpointer), gpointer data)
{
	struct call c = { fn, data, FALSE };

	g_main_context_invoke(NULL, call_cb, &c);
	g_mutex_lock(&call_mu);
	while (!c.done)
		g_cond_wait(&call_cv, &call_mu);
	g_mutex_unlock(&call_mu);
}

static gpointer loop_thread(gpointer loop)
{
	g_main_loop_run(loop);
	return NULL;
}

static void store_stop(gpointer unused)
{
	viod_store_free(st);
	st = NULL;
	fixture_clear();
}

static void store_start(gpointer unused)
{
	g_autoptr(GError) err = NULL;

	if (st)
		store_stop(NULL);
	st = viod_store_new();
	fixture_populate(st);
	if (!viod_store_listen(st, sock_path, &err)) {
		printf("Bail out! listen: %s\n", err->message);
		exit(1);
	}
}

struct set_args {
	const char *path;
	const char *value;
};

static void store_set(gpointer p)
{
	struct set_args *a = p;

	if (a->value)
		viod_store_set(st, a->path, a->value);
	else
		viod_store_remove(st, a->path);
}

static void get_connections(gpointer p)
{
	*(guint *)p = viod_store_connections(st);
}

static guint connections(void)
{
	guint n;

	in_loop(get_connections, &n);
	return n;
}

/* Waits up to 10 s for the server to count at most (settle) or at least
 * (!settle) n connections. */
static gboolean connections_wait(guint n, gboolean settle)
{
	gint64 end = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;

	for (;;) {
		guint c = connections();

		if (settle ? c <= n : c >= n)
			return TRUE;
		if (g_get_monotonic_time() >= end)
			return FALSE;
		g_usleep(1000);
	}
}

static gboolean connections_settle(guint n)
{
	return connections_wait(n, TRUE);
}

/* ---- raw client ---- */

static int raw_connect(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	g_strlcpy(sa.sun_path, sock_path, sizeof(sa.sun_path));
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		printf("Bail out! connect %s: %s\n", sock_path, g_strerror(errno));
		exit(1);
	}
	return fd;
}

static void raw_send(int fd, const char *s)
{
	size_t len = strlen(s);

	while (len > 0) {
		ssize_t n = send(fd, s, len, MSG_NOSIGNAL);

		if (n <= 0)
			return;
		s += n;
		len -= (size_t)n;
	}
}

struct reader {
	int fd;
	GString *buf;
	gboolean eof;
};

static void reader_init(struct reader *r, int fd)
{
	r->fd = fd;
	r->buf = g_string_new(NULL);
	r->eof = FALSE;
}

static void reader_fini(struct reader *r)
{
	g_string_free(r->buf, TRUE);
	close(r->fd);
}

/* The next line (without '\n'), or NULL on timeout or EOF. */
static char *reader_line(struct reader *r, int timeout_ms)
{
	gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;

	for (;;) {
		char *nl = memchr(r->buf->str, '\n', r->buf->len);
		struct pollfd pfd = { .fd = r->fd, .events = POLLIN };
		char tmp[65536];
		gint64 left;
		ssize_t n;

		if (nl) {
			char *line = g_strndup(r->buf->str, (gsize)(nl - r->buf->str));

			g_string_erase(r->buf, 0, nl - r->buf->str + 1);
			return line;
		}
		if (r->eof)
			return NULL;
		left = deadline - g_get_monotonic_time();
		if (left <= 0 || poll(&pfd, 1, (int)(left / 1000) + 1) <= 0)
			return NULL;
		n = recv(r->fd, tmp, sizeof(tmp), 0);
		if (n <= 0)
			r->eof = TRUE;
		else
			g_string_append_len(r->buf, tmp, n);
	}
}

static JsonNode *parse(const char *s)
{
	g_autoptr(JsonParser) p = json_parser_new();

	if (!s || !json_parser_load_from_data(p, s, -1, NULL) || !json_parser_get_root(p))
		return NULL;
	return json_node_copy(json_parser_get_root(p));
}

static gboolean json_same(const char *a, const char *b)
{
	g_autoptr(JsonNode) x = parse(a);
	g_autoptr(JsonNode) y = parse(b);

	return x && y && json_node_equal(x, y);
}

/* ---- 1. replay over a raw socket ---- */

static gint cmp_str(gconstpointer a, gconstpointer b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static char **example_files(const char *dir)
{
	g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
	GPtrArray *files = g_ptr_array_new();
	const char *name;

	while (d && (name = g_dir_read_name(d)))
		if (g_str_has_suffix(name, ".jsonl"))
			g_ptr_array_add(files, g_build_filename(dir, name, NULL));
	g_ptr_array_sort(files, cmp_str);
	g_ptr_array_add(files, NULL);
	return (char **)g_ptr_array_free(files, FALSE);
}

static char **file_lines(const char *file)
{
	g_autofree char *text = NULL;

	if (!g_file_get_contents(file, &text, NULL, NULL))
		return g_new0(char *, 1);
	return g_strsplit(text, "\n", -1);
}

static void replay_raw(const char *file)
{
	g_auto(GStrv) lines = file_lines(file);
	g_autofree char *base = g_path_get_basename(file);
	struct reader r;
	guint sent = 0, matched = 0, bad = 0;
	char *extra;

	in_loop(store_start, NULL);
	reader_init(&r, raw_connect());
	for (guint i = 0; lines[i]; i++) {
		const char *l = lines[i];

		if (g_str_has_prefix(l, "> ")) {
			g_autofree char *out = g_strconcat(l + 2, "\n", NULL);

			raw_send(r.fd, out);
			sent++;
		} else if (g_str_has_prefix(l, "< ")) {
			g_autofree char *got = reader_line(&r, 5000);

			if (json_same(got, l + 2)) {
				matched++;
			} else if (bad++ < 3) {
				printf("# %s:%u\n#   want %s\n#   got  %s\n", base, i + 1, l + 2,
				       got ? got : "(nothing)");
			}
		} else if (l[0] && l[0] != '#') {
			printf("# %s:%u: neither '> ', '< ' nor a comment\n", base, i + 1);
			bad++;
		}
	}
	extra = reader_line(&r, 100);
	if (extra) {
		printf("# %s: unexpected trailing line %s\n", base, extra);
		bad++;
		g_free(extra);
	}
	ok(bad == 0 && matched > 0, "%s: %u requests, %u replies and events as documented",
	   base, sent, matched);
	reader_fini(&r);
}

/* ---- 2. the client library on the same files ---- */

static const struct {
	const char *code;
	GIOErrorEnum err;
} codes[] = {
	{ "ENOENT", G_IO_ERROR_NOT_FOUND }, { "EINVAL", G_IO_ERROR_INVALID_ARGUMENT },
	{ "EACCES", G_IO_ERROR_PERMISSION_DENIED }, { "EISDIR", G_IO_ERROR_IS_DIRECTORY },
	{ "E2BIG", G_IO_ERROR_MESSAGE_TOO_LARGE }, { "ENOSPC", G_IO_ERROR_NO_SPACE },
	{ "ENOSYS", G_IO_ERROR_NOT_SUPPORTED }, { "EPROTO", G_IO_ERROR_INVALID_DATA },
	{ "EIO", G_IO_ERROR_FAILED },
};

static const char *member_str(JsonObject *o, const char *name)
{
	JsonNode *n = json_object_get_member(o, name);

	return n && JSON_NODE_HOLDS_VALUE(n) && json_node_get_value_type(n) == G_TYPE_STRING ?
	       json_node_get_string(n) : NULL;
}

/* A request the library can express: known op, exactly its members, valid types. */
static gboolean expressible(JsonObject *req)
{
	const char *op = member_str(req, "op");
	guint want;

	JsonNode *id = json_object_get_member(req, "id");

	if (!op || !id || !JSON_NODE_HOLDS_VALUE(id) ||
	    json_node_get_value_type(id) != G_TYPE_INT64)
		return FALSE;
	if (!strcmp(op, "unwatch"))
		return json_object_get_size(req) == 3 && json_object_has_member(req, "watch");
	if (!member_str(req, "path"))
		return FALSE;
	want = !strcmp(op, "write") ? 4 : 3;
	if (!strcmp(op, "write") && !member_str(req, "value"))
		return FALSE;
	return json_object_get_size(req) == want &&
	       (!strcmp(op, "read") || !strcmp(op, "write") || !strcmp(op, "list") ||
		!strcmp(op, "watch"));
}

/* Compares the library's error with an expected error reply. */
static gboolean error_matches(const GError *err, JsonObject *reply, GString *why)
{
	JsonObject *e = json_object_get_object_member(reply, "error");
	const char *code = member_str(e, "code");
	const char *msg = member_str(e, "message");
	GIOErrorEnum want = G_IO_ERROR_FAILED;

	for (gsize i = 0; i < G_N_ELEMENTS(codes); i++)
		if (!strcmp(codes[i].code, code))
			want = codes[i].err;
	if (!err) {
		g_string_append_printf(why, "no error, want %s", code);
		return FALSE;
	}
	if (!g_error_matches(err, G_IO_ERROR, want) || strcmp(err->message, msg)) {
		g_string_append_printf(why, "error %d '%s', want %s '%s'", err->code,
				       err->message, code, msg);
		return FALSE;
	}
	return TRUE;
}

static gboolean value_matches(JsonObject *req, JsonObject *reply, const char *op,
			      const char *sval, char **lval, guint wval, GString *why)
{
	JsonNode *want = json_object_get_member(reply, "value");
	g_autoptr(JsonNode) got = NULL;

	if (!strcmp(op, "read")) {
		got = json_node_init_string(json_node_alloc(), sval);
	} else if (!strcmp(op, "list")) {
		JsonArray *a = json_array_new();

		for (guint i = 0; lval && lval[i]; i++)
			json_array_add_string_element(a, lval[i]);
		got = json_node_init_array(json_node_alloc(), a);
		json_array_unref(a);
	} else if (!strcmp(op, "watch")) {
		got = json_node_init_int(json_node_alloc(), wval);
	} else {
		return TRUE;
	}
	if (want && json_node_equal(got, want))
		return TRUE;
	g_string_append(why, "value differs");
	return FALSE;
}

static gboolean event_matches(const ViodStoreEvent *ev, const char *want, GString *why)
{
	g_autoptr(JsonNode) n = parse(want);
	JsonObject *o = json_node_get_object(n);
	static const char *const kinds[] = { "changed", "removed", "synced" };

	if (!ev) {
		g_string_append_printf(why, "no event, want %s", want);
		return FALSE;
	}
	if (strcmp(kinds[ev->kind], member_str(o, "event")) ||
	    ev->watch != json_object_get_int_member(o, "watch") ||
	    g_strcmp0(ev->path, member_str(o, "path")) ||
	    g_strcmp0(ev->value, member_str(o, "value"))) {
		g_string_append_printf(why, "event %s %u %s=%s, want %s", kinds[ev->kind],
				       ev->watch, ev->path, ev->value, want);
		return FALSE;
	}
	return TRUE;
}

static void replay_client(const char *file)
{
	g_auto(GStrv) lines = file_lines(file);
	g_autofree char *base = g_path_get_basename(file);
	g_autoptr(GError) cerr = NULL;
	g_autoptr(ViodStoreClient) c = NULL;
	g_autoptr(GString) why = g_string_new(NULL);
	guint calls = 0;

	in_loop(store_start, NULL);
	c = viod_store_client_connect(sock_path, &cerr);
	if (!c) {
		ok(FALSE, "client: %s: connect: %s", base, cerr->message);
		return;
	}
	for (guint i = 0; lines[i] && !why->len; i++) {
		g_autoptr(JsonNode) reqn = NULL;
		g_autoptr(JsonNode) replyn = NULL;
		g_autoptr(GError) err = NULL;
		g_autofree char *sval = NULL;
		g_auto(GStrv) lval = NULL;
		JsonObject *req, *reply = NULL;
		const char *op;
		guint wval = 0, j;
		gboolean res = TRUE;

		if (!g_str_has_prefix(lines[i], "> "))
			continue;
		/* C strings cannot carry a NUL. */
		if (strstr(lines[i], "\\u0000"))
			continue;
		reqn = parse(lines[i] + 2);
		if (!reqn || !JSON_NODE_HOLDS_OBJECT(reqn) ||
		    !expressible(json_node_get_object(reqn)))
			continue;
		req = json_node_get_object(reqn);
		op = member_str(req, "op");
		if (!strcmp(op, "read"))
			res = (sval = viod_store_client_read(c, member_str(req, "path"), &err)) != NULL;
		else if (!strcmp(op, "write"))
			res = viod_store_client_write(c, member_str(req, "path"),
						      member_str(req, "value"), &err);
		else if (!strcmp(op, "list"))
			res = (lval = viod_store_client_list(c, member_str(req, "path"), &err)) != NULL;
		else if (!strcmp(op, "watch"))
			res = (wval = viod_store_client_watch(c, member_str(req, "path"), &err)) != 0;
		else
			res = viod_store_client_unwatch(c, (guint)json_object_get_int_member(req, "watch"),
							&err);
		calls++;
		/* The reply, and the events around it, in the file's order. */
		for (j = i + 1; lines[j] && g_str_has_prefix(lines[j], "< "); j++) {
			g_autoptr(JsonNode) n = parse(lines[j] + 2);

			if (json_object_has_member(json_node_get_object(n), "event")) {
				g_autoptr(ViodStoreEvent) ev = viod_store_client_next_event(c, 2000, NULL);

				if (!event_matches(ev, lines[j] + 2, why))
					break;
			} else {
				replyn = g_steal_pointer(&n);
				reply = json_node_get_object(replyn);
			}
		}
		if (why->len || !reply)
			break;
		if (json_object_get_boolean_member(reply, "ok")) {
			if (!res)
				g_string_append_printf(why, "%s failed: %s", op, err->message);
			else
				value_matches(req, reply, op, sval, lval, wval, why);
		} else {
			error_matches(err, reply, why);
		}
		if (why->len) {
			g_autofree char *where = g_strdup_printf("line %u: ", i + 1);

			g_string_prepend(why, where);
		}
	}
	{
		g_autoptr(ViodStoreEvent) extra = viod_store_client_next_event(c, 50, NULL);

		if (!why->len && extra)
			g_string_append_printf(why, "unexpected event for %s", extra->path);
	}
	ok(!why->len, "client library: %s: %u calls as documented%s%s", base, calls,
	   why->len ? ": " : "", why->str);
}

/* ---- the client library beyond the examples ---- */

static void test_client_more(void)
{
	g_autoptr(GError) err = NULL;
	g_autoptr(ViodStoreClient) c = NULL;
	g_autoptr(ViodStoreEvent) ev = NULL;
	g_autofree char *missing = g_build_filename(tmpdir, "nobody-here", NULL);
	struct set_args a;
	gint64 t0;
	guint w;

	in_loop(store_start, NULL);
	c = viod_store_client_connect(missing, &err);
	ok(!c && err && strstr(err->message, missing),
	   "connecting to a missing socket fails naming it");
	g_clear_error(&err);

	g_setenv("VIOD_CONTROL", sock_path, TRUE);
	c = viod_store_client_connect(NULL, &err);
	ok(c != NULL, "$VIOD_CONTROL is the default socket");
	g_unsetenv("VIOD_CONTROL");
	if (!c)
		return;
	ok(!strcmp(viod_store_client_path(c), sock_path), "the client reports its path");

	w = viod_store_client_watch(c, "/devices/balloon0/memory", &err);
	ok(w == 1, "watch returns the watch number");
	for (int i = 0; i < 3; i++)
		viod_store_event_free(viod_store_client_next_event(c, 1000, NULL));
	t0 = g_get_monotonic_time();
	ev = viod_store_client_next_event(c, 200, &err);
	ok(!ev && !err && g_get_monotonic_time() - t0 >= 150000,
	   "next_event returns NULL without error after its timeout");

	a = (struct set_args){ "/devices/balloon0/memory", NULL };
	in_loop(store_set, &a);
	ev = viod_store_client_next_event(c, 1000, NULL);
	ok(ev && ev->kind == VIOD_STORE_EVENT_REMOVED &&
	   !g_strcmp0(ev->path, "/devices/balloon0/memory/current"),
	   "removing a subtree sends a removed event per key (1)");
	g_clear_pointer(&ev, viod_store_event_free);
	ev = viod_store_client_next_event(c, 1000, NULL);
	ok(ev && ev->kind == VIOD_STORE_EVENT_REMOVED &&
	   !g_strcmp0(ev->path, "/devices/balloon0/memory/target"),
	   "removing a subtree sends a removed event per key (2)");
	g_clear_pointer(&ev, viod_store_event_free);

	ok(!viod_store_client_write(c, "/devices/balloon0/memory/target", "1", &err) &&
	   g_error_matches(err, G_IO_ERROR, G_IO_ERROR_NOT_FOUND),
	   "a removed writable key is no longer writable");
	g_clear_error(&err);

	in_loop(store_stop, NULL);
	ev = viod_store_client_next_event(c, 2000, &err);
	ok(!ev && g_error_matches(err, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED),
	   "the daemon going away is CONNECTION_CLOSED");
	g_clear_error(&err);
	ok(!viod_store_client_read(c, "/devices", &err) &&
	   g_error_matches(err, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED),
	   "and every later call fails the same way");
	ok(access(sock_path, F_OK) < 0, "viod_store_free removes the socket");
}

/* ---- 3. hostile clients and the socket itself ---- */

static void test_socket_mode(void)
{
	struct stat sb;

	in_loop(store_start, NULL);
	ok(stat(sock_path, &sb) == 0 && S_ISSOCK(sb.st_mode) && (sb.st_mode & 07777) == 0600,
	   "the control socket is mode 0600");
}

static void test_credentials(void)
{
	ok(viod_store_peer_allowed(1000, 1000), "same uid may connect");
	ok(viod_store_peer_allowed(0, 1000), "root may connect");
	ok(!viod_store_peer_allowed(1001, 1000), "another uid may not");
	ok(!viod_store_peer_allowed(1000, 0), "a user may not use root's daemon");
}

static gboolean reply_is(const char *line, const char *code)
{
	g_autoptr(JsonNode) n = parse(line);
	JsonObject *o, *e;

	if (!n || !JSON_NODE_HOLDS_OBJECT(n))
		return FALSE;
	o = json_node_get_object(n);
	if (!code)
		return json_object_get_boolean_member_with_default(o, "ok", FALSE);
	if (!json_object_has_member(o, "error"))
		return FALSE;
	e = json_object_get_object_member(o, "error");
	return !g_strcmp0(member_str(e, "code"), code);
}

/* A second client is served while the first misbehaves. */
static gboolean bystander_ok(void)
{
	struct reader r;
	g_autofree char *line = NULL;

	reader_init(&r, raw_connect());
	raw_send(r.fd, "{\"id\":1,\"op\":\"read\",\"path\":\"/devices/balloon0/type\"}\n");
	line = reader_line(&r, 2000);
	reader_fini(&r);
	return json_same(line, "{\"id\":1,\"ok\":true,\"value\":\"balloon\"}");
}

static void test_garbage(void)
{
	struct reader r;
	char junk[512];
	g_autofree char *l1 = NULL, *l2 = NULL;

	in_loop(store_start, NULL);
	for (gsize i = 0; i < sizeof(junk) - 1; i++)
		junk[i] = (char)(g_random_int_range(0, 256));
	for (gsize i = 0; i < sizeof(junk) - 1; i++)
		if (junk[i] == '\n')
			junk[i] = 'x';
	junk[sizeof(junk) - 1] = '\n';
	reader_init(&r, raw_connect());
	send(r.fd, junk, sizeof(junk), MSG_NOSIGNAL);
	l1 = reader_line(&r, 2000);
	ok(reply_is(l1, "EPROTO"), "binary garbage gets EPROTO");
	raw_send(r.fd, "{\"id\":2,\"op\":\"read\",\"path\":\"/devices/balloon0/target\"}\n");
	l2 = reader_line(&r, 2000);
	ok(reply_is(l2, NULL), "and the connection keeps working");
	reader_fini(&r);
}

static void test_long_line(void)
{
	struct reader r;
	gsize len = 1u << 20;
	g_autofree char *big = g_malloc(len);
	g_autofree char *l1 = NULL, *l2 = NULL;
	gsize off = 0;
	int flags;

	in_loop(store_start, NULL);
	memset(big, 'a', len);
	big[0] = '"';
	big[len - 1] = '\n';
	reader_init(&r, raw_connect());
	flags = fcntl(r.fd, F_GETFL);
	fcntl(r.fd, F_SETFL, flags | O_NONBLOCK);
	while (off < len) {
		struct pollfd pfd = { .fd = r.fd, .events = POLLOUT };
		ssize_t n = send(r.fd, big + off, len - off, MSG_NOSIGNAL);

		if (n > 0) {
			off += (gsize)n;
			continue;
		}
		if (n < 0 && errno != EAGAIN)
			break;
		if (poll(&pfd, 1, 2000) <= 0)
			break;
	}
	fcntl(r.fd, F_SETFL, flags);
	l1 = reader_line(&r, 2000);
	ok(reply_is(l1, "E2BIG"), "a 1 MiB line gets E2BIG");
	l2 = reader_line(&r, 2000);
	ok(!l2 && r.eof, "and the connection is closed");
	ok(bystander_ok(), "another client is served meanwhile");
	reader_fini(&r);
	ok(connections_settle(0), "nothing is left of either connection");
}

static void test_flood(void)
{
	struct reader r;
	guint sent = 0, got = 0;
	gboolean in_order = TRUE;
	int flags;

	in_loop(store_start, NULL);
	reader_init(&r, raw_connect());
	flags = fcntl(r.fd, F_GETFL);
	fcntl(r.fd, F_SETFL, flags | O_NONBLOCK);
	/* Writes without reading until the socket pushes back. */
	for (guint i = 0; i < 100000; i++) {
		g_autofree char *req = g_strdup_printf(
			"{\"id\":%u,\"op\":\"list\",\"path\":\"/devices/balloon0\"}\n", i);
		ssize_t n = send(r.fd, req, strlen(req), MSG_NOSIGNAL);

		if (n != (ssize_t)strlen(req)) {
			if (n > 0)   /* finish this one line, blocking */
				for (gsize o = (gsize)n; o < strlen(req);) {
					struct pollfd pfd = { .fd = r.fd, .events = POLLOUT };
					ssize_t m;

					poll(&pfd, 1, 100);
					m = send(r.fd, req + o, strlen(req) - o, MSG_NOSIGNAL);
					if (m > 0)
						o += (gsize)m;
				}
			if (n > 0)
				sent++;
			break;
		}
		sent++;
	}
	fcntl(r.fd, F_SETFL, flags);
	ok(sent < 100000, "a client that does not read is throttled (%u requests taken)", sent);
	ok(bystander_ok(), "another client is served meanwhile");
	for (;;) {
		g_autofree char *line = reader_line(&r, 2000);
		g_autoptr(JsonNode) n = NULL;

		if (!line)
			break;
		n = parse(line);
		if (!n || json_object_get_int_member(json_node_get_object(n), "id") != got)
			in_order = FALSE;
		got++;
		if (got == sent)
			break;
	}
	ok(got == sent && in_order, "every request is answered, in order, once it reads (%u/%u)",
	   got, sent);
	reader_fini(&r);
}

struct churn {
	guint rounds;
};

static void churn(gpointer p)
{
	struct churn *c = p;
	char value[VIOD_STORE_VALUE_MAX + 1];

	for (guint i = 0; i < c->rounds; i++) {
		memset(value, 'a' + (int)(i % 2), VIOD_STORE_VALUE_MAX);
		value[VIOD_STORE_VALUE_MAX] = '\0';
		viod_store_set(st, "/devices/balloon0/big", value);
	}
}

static void test_slow_watcher(void)
{
	struct reader r;
	struct churn c = { 1000 };   /* about 4 MiB of events */
	guint events = 0;
	char *line;

	in_loop(store_start, NULL);
	reader_init(&r, raw_connect());
	raw_send(r.fd, "{\"id\":1,\"op\":\"watch\",\"path\":\"/devices\"}\n");
	line = reader_line(&r, 2000);
	ok(reply_is(line, NULL), "a watcher starts");
	g_free(line);
	ok(connections() == 1, "it is connected");
	in_loop(churn, &c);
	ok(connections() == 0, "a watcher that does not read is dropped past 1 MiB of backlog");
	ok(bystander_ok(), "another client is served");
	while ((line = reader_line(&r, 2000))) {
		events++;
		g_free(line);
	}
	ok(r.eof && events < c.rounds, "the watcher sees EOF after %u of %u events", events,
	   c.rounds);
	reader_fini(&r);
}

static void test_too_many(void)
{
	int fds[VIOD_STORE_CLIENTS_MAX];
	struct reader r;
	g_autofree char *line = NULL;

	in_loop(store_start, NULL);
	for (int i = 0; i < VIOD_STORE_CLIENTS_MAX; i++)
		fds[i] = raw_connect();
	ok(connections_wait(VIOD_STORE_CLIENTS_MAX, FALSE), "the server counts %d connections",
	   VIOD_STORE_CLIENTS_MAX);
	reader_init(&r, raw_connect());
	line = reader_line(&r, 2000);
	ok(reply_is(line, "EBUSY"), "connection %d is refused with EBUSY",
	   VIOD_STORE_CLIENTS_MAX + 1);
	g_free(reader_line(&r, 2000));
	ok(r.eof, "and closed");
	reader_fini(&r);
	for (int i = 0; i < VIOD_STORE_CLIENTS_MAX; i++)
		close(fds[i]);
	connections_settle(0);
	ok(bystander_ok(), "once the others leave, clients are served again");
}

static void test_half_close(void)
{
	struct reader r;
	g_autofree char *line = NULL;

	in_loop(store_start, NULL);
	reader_init(&r, raw_connect());
	raw_send(r.fd, "{\"id\":1,\"op\":\"read\",\"path\":\"/devices/rng0/type\"}\n"
		       "{\"id\":2,\"op\":\"read\",\"path\":\"/devices/rng0/state\"}");
	shutdown(r.fd, SHUT_WR);
	line = reader_line(&r, 2000);
	ok(json_same(line, "{\"id\":1,\"ok\":true,\"value\":\"rng\"}"),
	   "a half-closed client gets its replies");
	g_free(line);
	line = reader_line(&r, 2000);
	ok(json_same(line, "{\"id\":2,\"ok\":true,\"value\":\"waiting\"}"),
	   "including one to an unterminated last line");
	g_free(line);
	line = reader_line(&r, 2000);
	ok(!line && r.eof, "then the server closes");
	reader_fini(&r);
}

struct listen_args {
	const char *path;
	gboolean ok;
	char *msg;
};

static void second_listen(gpointer p)
{
	struct listen_args *a = p;
	struct viod_store *other = viod_store_new();
	g_autoptr(GError) err = NULL;

	a->ok = viod_store_listen(other, a->path, &err);
	a->msg = err ? g_strdup(err->message) : NULL;
	viod_store_free(other);
}

static void test_stale_and_live(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	g_autofree char *stale = g_build_filename(tmpdir, "stale.sock", NULL);
	g_autofree char *file = g_build_filename(tmpdir, "file", NULL);
	struct listen_args a = { sock_path };
	int s = socket(AF_UNIX, SOCK_STREAM, 0);

	in_loop(store_start, NULL);
	in_loop(second_listen, &a);
	ok(!a.ok && a.msg && strstr(a.msg, "in use"), "a live socket is not taken over");
	ok(bystander_ok(), "and keeps serving");
	g_free(a.msg);

	g_strlcpy(sa.sun_path, stale, sizeof(sa.sun_path));
	bind(s, (struct sockaddr *)&sa, sizeof(sa));
	close(s);
	a = (struct listen_args){ stale };
	in_loop(second_listen, &a);
	ok(a.ok, "a stale socket is replaced");
	ok(access(stale, F_OK) < 0, "and removed when the store is freed");
	g_free(a.msg);

	g_file_set_contents(file, "x", 1, NULL);
	a = (struct listen_args){ file };
	in_loop(second_listen, &a);
	ok(!a.ok && access(file, F_OK) == 0, "a regular file in the way is an error, left alone");
	g_free(a.msg);
}

int main(int argc, char **argv)
{
	g_auto(GStrv) files = NULL;
	g_autoptr(GMainLoop) loop = NULL;
	GThread *thread;

	if (argc != 2) {
		fprintf(stderr, "usage: %s EXAMPLES_DIR\n", argv[0]);
		return 2;
	}
	tmpdir = g_dir_make_tmp("viod-store-XXXXXX", NULL);
	sock_path = g_build_filename(tmpdir, "control", NULL);
	loop = g_main_loop_new(NULL, FALSE);
	thread = g_thread_new("store", loop_thread, loop);

	files = example_files(argv[1]);
	ok(files[0] != NULL, "examples found in %s", argv[1]);
	for (guint i = 0; files[i]; i++)
		replay_raw(files[i]);
	for (guint i = 0; files[i]; i++)
		replay_client(files[i]);
	test_client_more();
	test_socket_mode();
	test_credentials();
	test_garbage();
	test_long_line();
	test_flood();
	test_slow_watcher();
	test_too_many();
	test_half_close();
	test_stale_and_live();

	in_loop(store_stop, NULL);
	g_main_loop_quit(loop);
	g_thread_join(thread);
	rmdir(tmpdir);
	g_free(sock_path);
	g_free(tmpdir);
	return tap_done();
}
