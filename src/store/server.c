/*
 * The control store's socket: one JSON object per line (proto/viod-store.md).
 *
 * Security model: the socket is created mode 0600 and every peer's
 * SO_PEERCRED uid is checked (the daemon's uid or root; a descriptor adopted
 * with viod_store_serve_fd is not checked: its caller vouches for the peer),
 * but a permitted client is still untrusted: a line is at most
 * VIOD_STORE_LINE_MAX bytes, every member is type-checked, paths are
 * validated before any lookup, and a connection holds at most
 * VIOD_STORE_WATCHES_MAX watches. Memory per
 * connection is bounded: input by the line limit plus one read, output by
 * VIOD_STORE_BACKLOG_MAX. Requests are not read while more than
 * BACKLOG_PAUSE bytes of output wait (a client that writes without reading
 * throttles itself); a watcher whose events pile up past the backlog limit
 * is disconnected. One connection's failure never touches another's.
 *
 * Connections are torn down in two steps: client_kill() detaches a client
 * from the store and the main loop at once (it may run inside a store
 * notification or a source callback), and an idle callback frees it later.
 */
#include "private.h"
#include "util/listen.h"

#include <errno.h>
#include <fcntl.h>
#include <glib-unix.h>
#include <json-glib/json-glib.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <gio/gio.h>

#define READ_CHUNK 16384
#define BACKLOG_PAUSE (64 * 1024)
#define ACCEPT_BATCH 16
#define ACCEPT_RETRY_MS 100

struct client;

struct cwatch {
	guint id;               /* the client's number for it */
	guint store_id;
	struct client *c;
};

struct client {
	struct viod_store_server *srv;
	int fd;
	guint in_src;
	guint out_src;
	GByteArray *in;
	GByteArray *out;
	gsize out_off;
	GPtrArray *watches;     /* struct cwatch */
	guint next_watch;
	gboolean eof;           /* peer stopped sending: answer, then close */
	gboolean closing;       /* flush output, then close */
	gboolean dead;
	uid_t uid;
	pid_t pid;
};

struct viod_store_server {
	struct viod_store *st;
	int fd;                 /* the listening socket, -1 without one */
	guint src;
	char *path;             /* its path, NULL without one */
	dev_t sock_dev;
	ino_t sock_ino;
	GPtrArray *clients;
	GPtrArray *dead;        /* killed, freed by reap() */
	guint reap_src;
};

static gboolean on_in(gint fd, GIOCondition cond, gpointer data);
static gboolean on_out(gint fd, GIOCondition cond, gpointer data);
static void client_pump(struct client *c);

/* At most 10 log lines a minute for things clients can trigger. */
static gboolean log_ok(void)
{
	static gint64 window;
	static guint n;
	gint64 now = g_get_monotonic_time();

	if (now - window > 60 * G_USEC_PER_SEC) {
		window = now;
		n = 0;
	}
	return n++ < 10;
}

gboolean viod_store_peer_allowed(uid_t peer_uid, uid_t self_uid)
{
	return peer_uid == self_uid || peer_uid == 0;
}

guint viod_store_connections(struct viod_store *st)
{
	struct viod_store_server *srv = *viod_store_server_slot(st);

	return srv ? srv->clients->len : 0;
}

/* ---- output ---- */

/*
 * json-glib (1.6 at least) writes U+001F inside strings as a raw byte,
 * which RFC 8259 forbids and strict parsers (Python's json, jq) reject; a
 * client gets it echoed in an error message (a member name, a value quoted
 * by g_ascii_string_to_unsigned) or stored in a value. The compact
 * generator puts no control character outside strings, so every one left
 * is escaped here.
 */
static char *escape_controls(char *text)
{
	GString *out;
	const char *p;

	for (p = text; *p; p++)
		if ((guchar)*p < 0x20)
			break;
	if (!*p)
		return text;
	out = g_string_sized_new(strlen(text) + 16);
	for (p = text; *p; p++) {
		if ((guchar)*p < 0x20)
			g_string_append_printf(out, "\\u%04x", (guchar)*p);
		else
			g_string_append_c(out, *p);
	}
	g_free(text);
	return g_string_free(out, FALSE);
}

static char *line_of(JsonBuilder *b)
{
	g_autoptr(JsonGenerator) gen = json_generator_new();
	g_autoptr(JsonNode) root = json_builder_get_root(b);

	json_generator_set_root(gen, root);
	return escape_controls(json_generator_to_data(gen, NULL));
}

static gsize backlog(const struct client *c)
{
	return c->out->len - c->out_off;
}

static void reap_dead(struct viod_store_server *srv);

static gboolean reap(gpointer data)
{
	struct viod_store_server *srv = data;

	srv->reap_src = 0;
	reap_dead(srv);
	return G_SOURCE_REMOVE;
}

static void client_kill(struct client *c, const char *why)
{
	struct viod_store_server *srv = c->srv;

	if (c->dead)
		return;
	c->dead = TRUE;
	if (why && log_ok())
		g_message("control: dropping client (pid %d): %s", (int)c->pid, why);
	for (guint i = 0; i < c->watches->len; i++) {
		struct cwatch *w = c->watches->pdata[i];

		viod_store_watch_remove(srv->st, w->store_id);
	}
	if (c->in_src)
		g_source_remove(c->in_src);
	if (c->out_src)
		g_source_remove(c->out_src);
	c->in_src = c->out_src = 0;
	close(c->fd);
	c->fd = -1;
	g_ptr_array_remove_fast(srv->clients, c);
	g_ptr_array_add(srv->dead, c);
	if (!srv->reap_src)
		srv->reap_src = g_idle_add(reap, srv);
}

static void client_flush(struct client *c)
{
	while (!c->dead && backlog(c) > 0) {
		ssize_t n = send(c->fd, c->out->data + c->out_off, backlog(c),
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (!c->out_src)
				c->out_src = g_unix_fd_add(c->fd, G_IO_OUT, on_out, c);
			return;
		}
		if (n < 0) {
			client_kill(c, NULL);
			return;
		}
		c->out_off += (gsize)n;
	}
	if (!c->dead) {
		g_byte_array_set_size(c->out, 0);
		c->out_off = 0;
	}
}

static void client_queue(struct client *c, JsonBuilder *b)
{
	g_autofree char *line = NULL;

	if (c->dead)
		return;
	line = line_of(b);
	if (c->out_off > 0 && c->out_off >= c->out->len / 2) {
		g_byte_array_remove_range(c->out, 0, (guint)c->out_off);
		c->out_off = 0;
	}
	g_byte_array_append(c->out, (const guint8 *)line, (guint)strlen(line));
	g_byte_array_append(c->out, (const guint8 *)"\n", 1);
	if (backlog(c) > VIOD_STORE_BACKLOG_MAX) {
		client_kill(c, "more than 1 MiB of unread output");
		return;
	}
	if (!c->out_src)
		client_flush(c);
}

static gboolean on_out(gint fd, GIOCondition cond, gpointer data)
{
	struct client *c = data;

	client_flush(c);
	if (c->dead)
		return G_SOURCE_REMOVE;
	if (backlog(c) > 0)
		return G_SOURCE_CONTINUE;
	c->out_src = 0;
	client_pump(c);
	return G_SOURCE_REMOVE;
}

static JsonBuilder *reply_begin(gboolean has_id, gint64 id, gboolean ok)
{
	JsonBuilder *b = json_builder_new_immutable();

	json_builder_begin_object(b);
	json_builder_set_member_name(b, "id");
	if (has_id)
		json_builder_add_int_value(b, id);
	else
		json_builder_add_null_value(b);
	json_builder_set_member_name(b, "ok");
	json_builder_add_boolean_value(b, ok);
	return b;
}

static void reply_end(struct client *c, JsonBuilder *b)
{
	json_builder_end_object(b);
	client_queue(c, b);
}

/* Adds the "error" member: {"code": code, "message": msg}. */
static void add_error(JsonBuilder *b, const char *code, const char *msg)
{
	json_builder_set_member_name(b, "error");
	json_builder_begin_object(b);
	json_builder_set_member_name(b, "code");
	json_builder_add_string_value(b, code);
	json_builder_set_member_name(b, "message");
	json_builder_add_string_value(b, msg);
	json_builder_end_object(b);
}

static void reply_error(struct client *c, gboolean has_id, gint64 id,
			const char *code, const char *fmt, ...) G_GNUC_PRINTF(5, 6);

static void reply_error(struct client *c, gboolean has_id, gint64 id,
			const char *code, const char *fmt, ...)
{
	g_autoptr(JsonBuilder) b = reply_begin(has_id, id, FALSE);
	g_autofree char *msg = NULL;
	va_list ap;

	va_start(ap, fmt);
	msg = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	add_error(b, code, msg);
	reply_end(c, b);
}

static void send_event(struct cwatch *w, const char *kind, const char *path,
		       const char *value)
{
	g_autoptr(JsonBuilder) b = json_builder_new_immutable();

	json_builder_begin_object(b);
	json_builder_set_member_name(b, "event");
	json_builder_add_string_value(b, kind);
	json_builder_set_member_name(b, "watch");
	json_builder_add_int_value(b, w->id);
	if (path) {
		json_builder_set_member_name(b, "path");
		json_builder_add_string_value(b, path);
	}
	if (value) {
		json_builder_set_member_name(b, "value");
		json_builder_add_string_value(b, value);
	}
	json_builder_end_object(b);
	client_queue(w->c, b);
}

static void on_change(const char *path, const char *value, gpointer opaque)
{
	send_event(opaque, value ? "changed" : "removed", path, value);
}

/* ---- requests ---- */

struct request {
	gboolean has_id;
	gint64 id;
	const char *op;
	const char *path;
	const char *value;
	gint64 watch;
	gboolean has_watch;
};

/* Explains why viod_store_path_valid() refused path. */
static const char *path_problem(const char *path)
{
	const char *c;

	if (path[0] != '/')
		return "it must start with '/'";
	if (strlen(path) > VIOD_STORE_PATH_MAX)
		return "it is longer than 256 bytes";
	for (c = path + 1; *c; c++) {
		if (*c != '/' && *c != '.' && !g_ascii_isalnum(*c) && *c != '_' && *c != '-')
			return "components are made of A-Z a-z 0-9 _ . -";
	}
	if (g_str_has_suffix(path, "/"))
		return "it ends with '/'";
	if (strstr(path, "//"))
		return "it has an empty component";
	return "'.' and '..' components are not allowed";
}

static gboolean check_path(struct client *c, const struct request *r)
{
	if (viod_store_path_valid(r->path))
		return TRUE;
	reply_error(c, TRUE, r->id, "EINVAL", "invalid path: %s", path_problem(r->path));
	return FALSE;
}

static void op_read(struct client *c, const struct request *r)
{
	struct viod_store *st = c->srv->st;
	const char *v;
	g_autoptr(JsonBuilder) b = NULL;

	if (!check_path(c, r))
		return;
	v = viod_store_get(st, r->path);
	if (!v) {
		if (viod_store_exists(st, r->path))
			reply_error(c, TRUE, r->id, "EISDIR", "%s is a directory (use list)", r->path);
		else
			reply_error(c, TRUE, r->id, "ENOENT", "%s: no such key", r->path);
		return;
	}
	b = reply_begin(TRUE, r->id, TRUE);
	json_builder_set_member_name(b, "value");
	json_builder_add_string_value(b, v);
	reply_end(c, b);
}

static void op_write(struct client *c, const struct request *r)
{
	static const struct {
		int err;
		const char *code;
	} codes[] = {
		{ EINVAL, "EINVAL" }, { ENOENT, "ENOENT" }, { EISDIR, "EISDIR" },
		{ EACCES, "EACCES" }, { E2BIG, "E2BIG" },
	};
	g_autoptr(GError) err = NULL;
	g_autoptr(JsonBuilder) b = NULL;
	const char *code = "EIO";
	int rc;

	if (!check_path(c, r))
		return;
	rc = viod_store_write(c->srv->st, r->path, r->value, &err);
	if (c->dead)
		return;
	if (rc < 0) {
		for (gsize i = 0; i < G_N_ELEMENTS(codes); i++)
			if (codes[i].err == -rc)
				code = codes[i].code;
		reply_error(c, TRUE, r->id, code, "%s", err ? err->message : g_strerror(-rc));
		return;
	}
	b = reply_begin(TRUE, r->id, TRUE);
	reply_end(c, b);
}

static void op_list(struct client *c, const struct request *r)
{
	g_auto(GStrv) names = NULL;
	g_autoptr(JsonBuilder) b = NULL;

	if (!check_path(c, r))
		return;
	names = viod_store_list(c->srv->st, r->path);
	if (!names) {
		reply_error(c, TRUE, r->id, "ENOENT", "%s: no such key", r->path);
		return;
	}
	b = reply_begin(TRUE, r->id, TRUE);
	json_builder_set_member_name(b, "value");
	json_builder_begin_array(b);
	for (guint i = 0; names[i]; i++)
		json_builder_add_string_value(b, names[i]);
	json_builder_end_array(b);
	reply_end(c, b);
}

static void op_watch(struct client *c, const struct request *r)
{
	g_autoptr(JsonBuilder) b = NULL;
	struct cwatch *w;

	if (!check_path(c, r))
		return;
	if (c->watches->len >= VIOD_STORE_WATCHES_MAX) {
		reply_error(c, TRUE, r->id, "ENOSPC", "too many watches (at most %d per connection)",
			    VIOD_STORE_WATCHES_MAX);
		return;
	}
	w = g_new0(struct cwatch, 1);
	w->c = c;
	w->id = ++c->next_watch;
	w->store_id = viod_store_watch_add(c->srv->st, r->path, on_change, w);
	g_ptr_array_add(c->watches, w);

	b = reply_begin(TRUE, r->id, TRUE);
	json_builder_set_member_name(b, "value");
	json_builder_add_int_value(b, w->id);
	reply_end(c, b);
	viod_store_foreach(c->srv->st, r->path, on_change, w);
	send_event(w, "synced", NULL, NULL);
}

static void op_unwatch(struct client *c, const struct request *r)
{
	g_autoptr(JsonBuilder) b = NULL;

	for (guint i = 0; i < c->watches->len; i++) {
		struct cwatch *w = c->watches->pdata[i];

		if (w->id != r->watch)
			continue;
		viod_store_watch_remove(c->srv->st, w->store_id);
		g_ptr_array_remove_index(c->watches, i);
		b = reply_begin(TRUE, r->id, TRUE);
		reply_end(c, b);
		return;
	}
	reply_error(c, TRUE, r->id, "ENOENT", "no watch %" G_GINT64_FORMAT, r->watch);
}

static const struct op {
	const char *name;
	void (*fn)(struct client *c, const struct request *r);
	gboolean path, value, watch;   /* the members it takes, all required */
} ops[] = {
	{ "read", op_read, TRUE, FALSE, FALSE },
	{ "write", op_write, TRUE, TRUE, FALSE },
	{ "list", op_list, TRUE, FALSE, FALSE },
	{ "watch", op_watch, TRUE, FALSE, FALSE },
	{ "unwatch", op_unwatch, FALSE, FALSE, TRUE },
};

/* The code unit of a "\uXXXX" escape at s (len bytes left), or -1. */
static gint u_escape(const char *s, gsize len)
{
	gint cp = 0;

	if (len < 6 || s[0] != '\\' || s[1] != 'u')
		return -1;
	for (int k = 2; k < 6; k++) {
		gint d = g_ascii_xdigit_value(s[k]);

		if (d < 0)
			return -1;
		cp = cp * 16 + d;
	}
	return cp;
}

/*
 * What is wrong with the line's escapes, or NULL. json-glib's scanner (1.6
 * at least) takes far more than JSON's escapes and mishandles some of
 * them, so only JSON's are let through: \" \\ \/ \b \f \n \r \t and \u
 * with four hex digits. json-glib reads octal ("\0", "\377": a NUL, or a
 * byte that is not UTF-8), "\u" with fewer or odd digits ("\u0%41" is a
 * NUL), and any other letter as itself. Of the \u escapes, "\u0000" is
 * refused (json-glib would silently cut the string there), and so is a
 * UTF-16 surrogate that is not a high one followed by a low one (for a
 * lone one json-glib produces bytes that are not UTF-8, which error
 * messages quote back; for a high one followed by another escape it leaks
 * memory).
 */
static const char *bad_escape(const char *s, gsize len)
{
	static const char lone[] = "lone UTF-16 surrogate escapes are not allowed";
	static const char not_json[] = "not JSON (a request is one JSON object on one line)";
	gboolean high = FALSE;  /* the escape just before was a high surrogate */
	gsize i = 0;

	while (i < len) {
		gint cp;

		if (s[i] != '\\') {
			if (high)
				return lone;
			i++;
			continue;
		}
		if (i + 1 < len && s[i + 1] != 'u') {
			if (high)
				return lone;
			if (!s[i + 1] || !strchr("\"\\/bfnrt", s[i + 1]))
				return not_json;
			i += 2;
			continue;
		}
		cp = u_escape(s + i, len - i);
		if (cp < 0)
			return not_json;        /* also a '\\' ending the line */
		if (cp == 0)
			return "NUL characters are not allowed";
		if (high && (cp < 0xdc00 || cp > 0xdfff))
			return lone;
		if (!high && cp >= 0xdc00 && cp <= 0xdfff)
			return lone;
		high = !high && cp >= 0xd800 && cp <= 0xdbff;
		i += 6;
	}
	return high ? lone : NULL;
}

static gboolean json_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* A character of a number or of true, false, null. */
static gboolean json_literal(char c)
{
	return g_ascii_isalnum(c) || c == '-' || c == '+' || c == '.';
}

/*
 * FALSE if s[0, len) holds more than one JSON value, or, outside strings,
 * anything JSON does not have. json-glib (1.6 at least) parses every value
 * on a line but keeps only the first: "{} {}" leaks the second, which would
 * let a client grow the daemon without bound. It also takes single-quoted
 * strings and comments, which could hide a second value from this scan of
 * brackets and double-quoted strings, so those are refused here as well.
 * A line refused here is not JSON.
 */
static gboolean one_value(const char *s, gsize len)
{
	gsize depth = 0;
	gboolean done = FALSE;  /* a whole value has been seen */

	for (gsize i = 0; i < len; i++) {
		if (json_space(s[i]))
			continue;
		if (done)
			return FALSE;
		if (s[i] == '"') {
			for (i++; i < len && s[i] != '"'; i++)
				if (s[i] == '\\')
					i++;
			if (i >= len)
				return TRUE;    /* unterminated: json-glib refuses it */
			done = depth == 0;
		} else if (s[i] == '{' || s[i] == '[') {
			depth++;
		} else if (s[i] == '}' || s[i] == ']') {
			if (depth == 0)
				return FALSE;
			done = --depth == 0;
		} else if (s[i] == ',' || s[i] == ':') {
			if (depth == 0)
				return FALSE;
		} else if (json_literal(s[i])) {
			while (i + 1 < len && json_literal(s[i + 1]))
				i++;
			done = depth == 0;
		} else {
			return FALSE;   /* ' / # = ; \ and the like */
		}
	}
	return TRUE;
}

static gboolean member_string(JsonObject *o, const char *name, const char **out)
{
	JsonNode *n = json_object_get_member(o, name);

	if (!n || !JSON_NODE_HOLDS_VALUE(n) || json_node_get_value_type(n) != G_TYPE_STRING)
		return FALSE;
	*out = json_node_get_string(n);
	return TRUE;
}

static gboolean member_int(JsonObject *o, const char *name, gint64 *out)
{
	JsonNode *n = json_object_get_member(o, name);

	if (!n || !JSON_NODE_HOLDS_VALUE(n) || json_node_get_value_type(n) != G_TYPE_INT64)
		return FALSE;
	*out = json_node_get_int(n);
	return *out >= 0;
}

static void handle_request(struct client *c, JsonObject *o)
{
	struct request r = { 0 };
	const struct op *op = NULL;
	g_autoptr(GList) members = NULL;

	if (json_object_has_member(o, "id")) {
		if (!member_int(o, "id", &r.id)) {
			reply_error(c, FALSE, 0, "EPROTO", "\"id\" must be a non-negative integer");
			return;
		}
		r.has_id = TRUE;
	}
	if (!r.has_id) {
		reply_error(c, FALSE, 0, "EPROTO", "a request needs an \"id\"");
		return;
	}
	if (!member_string(o, "op", &r.op)) {
		reply_error(c, TRUE, r.id, "EPROTO", "a request needs an \"op\" string");
		return;
	}
	for (gsize i = 0; i < G_N_ELEMENTS(ops); i++)
		if (strcmp(ops[i].name, r.op) == 0)
			op = &ops[i];
	if (!op) {
		reply_error(c, TRUE, r.id, "ENOSYS",
			    "unknown op (read, write, list, watch, unwatch)");
		return;
	}
	members = json_object_get_members(o);
	for (GList *m = members; m; m = m->next) {
		const char *name = m->data;

		if (strcmp(name, "id") && strcmp(name, "op") &&
		    !(op->path && !strcmp(name, "path")) &&
		    !(op->value && !strcmp(name, "value")) &&
		    !(op->watch && !strcmp(name, "watch"))) {
			if (strlen(name) <= 32)
				reply_error(c, TRUE, r.id, "EPROTO", "%s does not take \"%s\"",
					    op->name, name);
			else
				reply_error(c, TRUE, r.id, "EPROTO",
					    "%s does not take a member named so", op->name);
			return;
		}
	}
	if (op->path && !member_string(o, "path", &r.path)) {
		reply_error(c, TRUE, r.id, "EPROTO", "%s needs a \"path\" string", op->name);
		return;
	}
	if (op->value && !member_string(o, "value", &r.value)) {
		reply_error(c, TRUE, r.id, "EPROTO", "%s needs a \"value\" string", op->name);
		return;
	}
	if (op->watch && !member_int(o, "watch", &r.watch)) {
		reply_error(c, TRUE, r.id, "EPROTO", "%s needs a \"watch\" number", op->name);
		return;
	}
	op->fn(c, &r);
}

static void handle_line(struct client *c, const char *line, gsize len)
{
	g_autoptr(JsonParser) p = NULL;
	g_autoptr(GError) err = NULL;
	JsonNode *root;
	const char *bad;

	while (len > 0 && g_ascii_isspace(line[len - 1]))
		len--;
	if (len == 0)
		return;
	if (memchr(line, '\0', len)) {
		reply_error(c, FALSE, 0, "EPROTO", "NUL characters are not allowed");
		return;
	}
	if ((bad = bad_escape(line, len)) != NULL) {
		reply_error(c, FALSE, 0, "EPROTO", "%s", bad);
		return;
	}
	p = json_parser_new_immutable();
	if (!one_value(line, len))
		g_set_error(&err, JSON_PARSER_ERROR, JSON_PARSER_ERROR_PARSE,
			    "more than one value, or not JSON outside strings");
	if (err || !json_parser_load_from_data(p, line, (gssize)len, &err)) {
		g_debug("control: pid %d: %s", (int)c->pid, err->message);
		reply_error(c, FALSE, 0, "EPROTO",
			    "not JSON (a request is one JSON object on one line)");
		return;
	}
	root = json_parser_get_root(p);
	if (!root || !JSON_NODE_HOLDS_OBJECT(root)) {
		reply_error(c, FALSE, 0, "EPROTO", "a request must be a JSON object");
		return;
	}
	handle_request(c, json_node_get_object(root));
}

/*
 * Handles the complete lines buffered (and, after EOF, the unterminated
 * last one) while the output backlog allows, then decides which of
 * reading, writing and closing the connection needs next.
 */
static void client_pump(struct client *c)
{
	while (!c->dead && !c->closing && backlog(c) < BACKLOG_PAUSE && c->in->len > 0) {
		const guint8 *nl = memchr(c->in->data, '\n', c->in->len);
		gsize len = nl ? (gsize)(nl - c->in->data) + 1 : c->in->len;

		if (len > VIOD_STORE_LINE_MAX) {
			reply_error(c, FALSE, 0, "E2BIG", "line longer than %d bytes",
				    VIOD_STORE_LINE_MAX);
			g_byte_array_set_size(c->in, 0);
			c->closing = TRUE;
			break;
		}
		if (!nl && !c->eof)
			break;
		handle_line(c, (const char *)c->in->data, nl ? len - 1 : len);
		if (!c->dead)
			g_byte_array_remove_range(c->in, 0, (guint)len);
	}
	if (c->dead)
		return;
	if (!c->eof && !c->closing && backlog(c) < BACKLOG_PAUSE) {
		if (!c->in_src)
			c->in_src = g_unix_fd_add(c->fd, G_IO_IN | G_IO_HUP | G_IO_ERR, on_in, c);
	} else if (c->in_src) {
		g_source_remove(c->in_src);
		c->in_src = 0;
	}
	if (backlog(c) == 0 && (c->closing || (c->eof && c->in->len == 0)))
		client_kill(c, NULL);
}

static gboolean on_in(gint fd, GIOCondition cond, gpointer data)
{
	struct client *c = data;
	guint8 buf[READ_CHUNK];
	ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);

	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return G_SOURCE_CONTINUE;
	if (n < 0) {
		client_kill(c, NULL);
		return G_SOURCE_REMOVE;
	}
	if (n == 0)
		c->eof = TRUE;
	else
		g_byte_array_append(c->in, buf, (guint)n);
	client_pump(c);
	/* client_pump removed this source (and cleared in_src) if it had to. */
	return G_SOURCE_CONTINUE;
}

static void client_free(struct client *c)
{
	g_ptr_array_free(c->watches, TRUE);
	g_byte_array_free(c->in, TRUE);
	g_byte_array_free(c->out, TRUE);
	g_free(c);
}

static void reap_dead(struct viod_store_server *srv)
{
	for (guint i = 0; i < srv->dead->len; i++)
		client_free(srv->dead->pdata[i]);
	g_ptr_array_set_size(srv->dead, 0);
}

/* Best effort: one non-blocking send of an error object, then close. */
static void refuse(int fd, const char *code, const char *msg)
{
	g_autoptr(JsonBuilder) b = reply_begin(FALSE, 0, FALSE);
	g_autofree char *line = NULL;
	g_autofree char *out = NULL;

	add_error(b, code, msg);
	json_builder_end_object(b);
	line = line_of(b);
	out = g_strconcat(line, "\n", NULL);
	if (send(fd, out, strlen(out), MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
		g_debug("control: refusing a client: %s", g_strerror(errno));
	close(fd);
}

static void client_new(struct viod_store_server *srv, int fd, const struct ucred *cr)
{
	struct client *c = g_new0(struct client, 1);

	c->srv = srv;
	c->fd = fd;
	c->uid = cr->uid;
	c->pid = cr->pid;
	c->in = g_byte_array_new();
	c->out = g_byte_array_new();
	c->watches = g_ptr_array_new_with_free_func(g_free);
	g_ptr_array_add(srv->clients, c);
	c->in_src = g_unix_fd_add(fd, G_IO_IN | G_IO_HUP | G_IO_ERR, on_in, c);
}

static gboolean on_accept(gint fd, GIOCondition cond, gpointer data);

static gboolean accept_resume(gpointer data)
{
	struct viod_store_server *srv = data;

	srv->src = g_unix_fd_add(srv->fd, G_IO_IN, on_accept, srv);
	return G_SOURCE_REMOVE;
}

static gboolean on_accept(gint fd, GIOCondition cond, gpointer data)
{
	struct viod_store_server *srv = data;

	for (int i = 0; i < ACCEPT_BATCH; i++) {
		int cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		struct ucred cr;
		socklen_t len = sizeof(cr);
		g_autofree char *msg = NULL;

		if (cfd < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ||
			    errno == ECONNABORTED)
				break;
			/* Out of descriptors: retry later rather than spin. */
			if (log_ok())
				g_warning("control: accept: %s", g_strerror(errno));
			srv->src = g_timeout_add(ACCEPT_RETRY_MS, accept_resume, srv);
			return G_SOURCE_REMOVE;
		}
		if (getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0 ||
		    len != sizeof(cr)) {
			refuse(cfd, "EACCES", "cannot read the peer's credentials");
			continue;
		}
		if (!viod_store_peer_allowed(cr.uid, geteuid())) {
			msg = g_strdup_printf("permission denied: uid %u may not use this socket "
					      "(only uid %u and root may)",
					      (unsigned int)cr.uid, (unsigned int)geteuid());
			if (log_ok())
				g_message("control: refused pid %d uid %u", (int)cr.pid,
					  (unsigned int)cr.uid);
			refuse(cfd, "EACCES", msg);
			continue;
		}
		if (srv->clients->len >= VIOD_STORE_CLIENTS_MAX) {
			msg = g_strdup_printf("too many connections (at most %d)",
					      VIOD_STORE_CLIENTS_MAX);
			refuse(cfd, "EBUSY", msg);
			continue;
		}
		client_new(srv, cfd, &cr);
	}
	return G_SOURCE_CONTINUE;
}

/* The store's server, created (without a listening socket) if need be. */
static struct viod_store_server *server_get(struct viod_store *st)
{
	struct viod_store_server **slot = viod_store_server_slot(st);
	struct viod_store_server *srv = *slot;

	if (srv)
		return srv;
	srv = g_new0(struct viod_store_server, 1);
	srv->st = st;
	srv->fd = -1;
	srv->clients = g_ptr_array_new();
	srv->dead = g_ptr_array_new();
	*slot = srv;
	return srv;
}

/* The socket is 0600 from the moment it exists (listen.h). */
gboolean viod_store_listen(struct viod_store *st, const char *path, GError **err)
{
	struct viod_store_server **slot = viod_store_server_slot(st);
	struct viod_store_server *srv;
	struct stat sb;
	int fd;

	g_return_val_if_fail(st && path, FALSE);
	if (*slot && (*slot)->fd >= 0) {
		g_set_error(err, G_IO_ERROR, G_IO_ERROR_EXISTS,
			    "the control store already listens on %s", (*slot)->path);
		return FALSE;
	}
	fd = viod_unix_listen(path, 0600, 16, &sb, err);
	if (fd < 0)
		return FALSE;
	srv = server_get(st);
	srv->fd = fd;
	srv->path = g_strdup(path);
	srv->sock_dev = sb.st_dev;
	srv->sock_ino = sb.st_ino;
	srv->src = g_unix_fd_add(fd, G_IO_IN, on_accept, srv);
	return TRUE;
}

gboolean viod_store_serve_fd(struct viod_store *st, int fd, GError **err)
{
	struct viod_store_server *srv;
	struct ucred cr = { .pid = 0, .uid = geteuid(), .gid = getegid() };
	socklen_t len = sizeof(cr);
	int flags;

	g_return_val_if_fail(st && fd >= 0, FALSE);
	srv = server_get(st);
	if (srv->clients->len >= VIOD_STORE_CLIENTS_MAX) {
		g_autofree char *msg = g_strdup_printf("too many connections (at most %d)",
						       VIOD_STORE_CLIENTS_MAX);

		refuse(fd, "EBUSY", msg);
		g_set_error_literal(err, G_IO_ERROR, G_IO_ERROR_BUSY, msg);
		return FALSE;
	}
	flags = fcntl(fd, F_GETFL);
	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0 ||
	    fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
		g_set_error(err, G_FILE_ERROR, g_file_error_from_errno(errno),
			    "control: cannot serve descriptor %d: %s", fd, g_strerror(errno));
		close(fd);
		return FALSE;
	}
	/* For the log only: the peer is not checked. */
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0 || len != sizeof(cr)) {
		cr.pid = 0;
		cr.uid = geteuid();
	}
	client_new(srv, fd, &cr);
	return TRUE;
}

void viod_store_server_free(struct viod_store_server *srv)
{
	struct stat sb;

	while (srv->clients->len > 0)
		client_kill(srv->clients->pdata[0], NULL);
	reap_dead(srv);
	if (srv->reap_src)
		g_source_remove(srv->reap_src);
	if (srv->src)
		g_source_remove(srv->src);
	if (srv->fd >= 0)
		close(srv->fd);
	/* Leave the path alone if another server has taken it over. */
	if (srv->path && lstat(srv->path, &sb) == 0 && sb.st_dev == srv->sock_dev &&
	    sb.st_ino == srv->sock_ino)
		unlink(srv->path);
	g_ptr_array_free(srv->clients, TRUE);
	g_ptr_array_free(srv->dead, TRUE);
	g_free(srv->path);
	g_free(srv);
}
