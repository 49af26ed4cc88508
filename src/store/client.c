/*
 * Synchronous client of the control store (include/viod/store.h). The
 * daemon is trusted to speak the protocol but not to be sane: reply lines
 * are bounded, every member is type-checked, and a connection that goes
 * wrong stays failed (the sticky error is reported on every later call).
 */
#include "viod/store.h"

#include <errno.h>
#include <json-glib/json-glib.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* Larger than any response the daemon sends (values are <= 4 KiB). */
#define CLIENT_LINE_MAX (4u << 20)
#define READ_CHUNK 65536

struct viod_store_client {
	int fd;
	char *path;
	GByteArray *in;
	gint64 next_id;
	GQueue events;          /* ViodStoreEvent, oldest first */
	GError *broken;
};

static const struct {
	const char *code;
	GIOErrorEnum err;
} error_codes[] = {
	{ "ENOENT", G_IO_ERROR_NOT_FOUND },
	{ "EINVAL", G_IO_ERROR_INVALID_ARGUMENT },
	{ "EACCES", G_IO_ERROR_PERMISSION_DENIED },
	{ "EPERM", G_IO_ERROR_PERMISSION_DENIED },
	{ "EISDIR", G_IO_ERROR_IS_DIRECTORY },
	{ "E2BIG", G_IO_ERROR_MESSAGE_TOO_LARGE },
	{ "ENOSPC", G_IO_ERROR_NO_SPACE },
	{ "EBUSY", G_IO_ERROR_BUSY },
	{ "ENOSYS", G_IO_ERROR_NOT_SUPPORTED },
	{ "EPROTO", G_IO_ERROR_INVALID_DATA },
};

char *viod_store_default_path(void)
{
	const char *env = g_getenv("VIOD_CONTROL");
	const char *rt = g_getenv("XDG_RUNTIME_DIR");

	if (env && *env)
		return g_strdup(env);
	return g_build_filename(rt && *rt ? rt : "/run", "viod", "control", NULL);
}

ViodStoreClient *viod_store_client_connect(const char *path, GError **err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	g_autofree char *p = path ? g_strdup(path) : viod_store_default_path();
	ViodStoreClient *c;
	int fd;

	if (strlen(p) >= sizeof(sa.sun_path)) {
		g_set_error(err, G_IO_ERROR, G_IO_ERROR_FILENAME_TOO_LONG,
			    "control socket path too long: %s", p);
		return NULL;
	}
	memcpy(sa.sun_path, p, strlen(p) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		g_set_error(err, G_IO_ERROR, g_io_error_from_errno(errno),
			    "socket: %s", g_strerror(errno));
		return NULL;
	}
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;

		close(fd);
		g_set_error(err, G_IO_ERROR, g_io_error_from_errno(e),
			    "cannot connect to the control socket %s: %s", p, g_strerror(e));
		return NULL;
	}
	c = g_new0(ViodStoreClient, 1);
	c->fd = fd;
	c->path = g_steal_pointer(&p);
	c->in = g_byte_array_new();
	c->next_id = 1;
	g_queue_init(&c->events);
	return c;
}

void viod_store_event_free(ViodStoreEvent *ev)
{
	if (!ev)
		return;
	g_free(ev->path);
	g_free(ev->value);
	g_free(ev);
}

void viod_store_client_free(ViodStoreClient *c)
{
	if (!c)
		return;
	g_queue_clear_full(&c->events, (GDestroyNotify)viod_store_event_free);
	g_clear_error(&c->broken);
	g_byte_array_free(c->in, TRUE);
	close(c->fd);
	g_free(c->path);
	g_free(c);
}

const char *viod_store_client_path(ViodStoreClient *c)
{
	return c->path;
}

static void set_broken(ViodStoreClient *c, GError **err, GIOErrorEnum code,
		       const char *fmt, ...) G_GNUC_PRINTF(4, 5);

static void set_broken(ViodStoreClient *c, GError **err, GIOErrorEnum code,
		       const char *fmt, ...)
{
	va_list ap;

	if (!c->broken) {
		va_start(ap, fmt);
		c->broken = g_error_new_valist(G_IO_ERROR, code, fmt, ap);
		va_end(ap);
	}
	if (err)
		*err = g_error_copy(c->broken);
}

static gboolean check_broken(ViodStoreClient *c, GError **err)
{
	if (!c->broken)
		return TRUE;
	if (err)
		*err = g_error_copy(c->broken);
	return FALSE;
}

/* Milliseconds left until deadline (monotonic us; < 0: none), for poll(). */
static int ms_left(gint64 deadline)
{
	gint64 left;

	if (deadline < 0)
		return -1;
	left = deadline - g_get_monotonic_time();
	if (left <= 0)
		return 0;
	return (int)MIN((left + 999) / 1000, G_MAXINT);
}

/*
 * The next line from the daemon: 1 with *line set, 0 on deadline (or on a
 * signal, if interruptible), -1 with *err set.
 */
static int read_line(ViodStoreClient *c, gint64 deadline, gboolean interruptible,
		     char **line, GError **err)
{
	guint8 buf[READ_CHUNK];

	for (;;) {
		guint8 *nl = c->in->len ? memchr(c->in->data, '\n', c->in->len) : NULL;
		struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
		ssize_t n;
		int rc;

		if (nl) {
			gsize len = (gsize)(nl - c->in->data);

			*line = g_strndup((const char *)c->in->data, len);
			g_byte_array_remove_range(c->in, 0, (guint)len + 1);
			return 1;
		}
		if (c->in->len > CLIENT_LINE_MAX) {
			set_broken(c, err, G_IO_ERROR_INVALID_DATA,
				   "a reply from %s is longer than %u bytes", c->path,
				   CLIENT_LINE_MAX);
			return -1;
		}
		if (deadline >= 0 && ms_left(deadline) == 0)
			return 0;
		rc = poll(&pfd, 1, ms_left(deadline));
		if (rc < 0 && errno == EINTR) {
			if (interruptible)
				return 0;
			continue;
		}
		if (rc < 0) {
			set_broken(c, err, g_io_error_from_errno(errno), "poll: %s",
				   g_strerror(errno));
			return -1;
		}
		if (rc == 0)
			continue;
		n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			continue;
		if (n < 0) {
			set_broken(c, err, G_IO_ERROR_CONNECTION_CLOSED,
				   "connection to %s lost: %s", c->path, g_strerror(errno));
			return -1;
		}
		if (n == 0) {
			set_broken(c, err, G_IO_ERROR_CONNECTION_CLOSED,
				   "viod closed the connection (%s)", c->path);
			return -1;
		}
		g_byte_array_append(c->in, buf, (guint)n);
	}
}

static gboolean send_all(ViodStoreClient *c, const char *data, gsize len,
			 gint64 deadline, GError **err)
{
	while (len > 0) {
		struct pollfd pfd = { .fd = c->fd, .events = POLLOUT };
		ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n >= 0) {
			data += n;
			len -= (gsize)n;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK) {
			set_broken(c, err, G_IO_ERROR_CONNECTION_CLOSED,
				   "connection to %s lost: %s", c->path, g_strerror(errno));
			return FALSE;
		}
		if (ms_left(deadline) == 0 || poll(&pfd, 1, ms_left(deadline)) == 0) {
			set_broken(c, err, G_IO_ERROR_TIMED_OUT,
				   "viod does not read requests (%s)", c->path);
			return FALSE;
		}
	}
	return TRUE;
}

static const char *get_string(JsonObject *o, const char *name)
{
	JsonNode *n = json_object_get_member(o, name);

	if (!n || !JSON_NODE_HOLDS_VALUE(n) || json_node_get_value_type(n) != G_TYPE_STRING)
		return NULL;
	return json_node_get_string(n);
}

static gboolean get_int(JsonObject *o, const char *name, gint64 *out)
{
	JsonNode *n = json_object_get_member(o, name);

	if (!n || !JSON_NODE_HOLDS_VALUE(n) || json_node_get_value_type(n) != G_TYPE_INT64)
		return FALSE;
	*out = json_node_get_int(n);
	return TRUE;
}

/* Queues an event object; FALSE if it is malformed. */
static gboolean queue_event(ViodStoreClient *c, JsonObject *o)
{
	const char *kind = get_string(o, "event");
	const char *path = get_string(o, "path");
	const char *value = get_string(o, "value");
	ViodStoreEvent *ev;
	gint64 watch;

	if (!kind || !get_int(o, "watch", &watch) || watch <= 0 || watch > G_MAXUINT)
		return FALSE;
	ev = g_new0(ViodStoreEvent, 1);
	ev->watch = (guint)watch;
	if (!strcmp(kind, "changed") && path && value) {
		ev->kind = VIOD_STORE_EVENT_CHANGED;
		ev->path = g_strdup(path);
		ev->value = g_strdup(value);
	} else if (!strcmp(kind, "removed") && path) {
		ev->kind = VIOD_STORE_EVENT_REMOVED;
		ev->path = g_strdup(path);
	} else if (!strcmp(kind, "synced")) {
		ev->kind = VIOD_STORE_EVENT_SYNCED;
	} else {
		g_free(ev);
		return FALSE;
	}
	g_queue_push_tail(&c->events, ev);
	return TRUE;
}

enum line_kind { LINE_EVENT, LINE_REPLY, LINE_BAD };

/* Parses a line; queues it if it is an event, else returns the reply. */
static enum line_kind take_line(ViodStoreClient *c, const char *line, JsonParser *p,
				JsonObject **reply)
{
	JsonNode *root;
	JsonObject *o;

	if (!json_parser_load_from_data(p, line, -1, NULL))
		return LINE_BAD;
	root = json_parser_get_root(p);
	if (!root || !JSON_NODE_HOLDS_OBJECT(root))
		return LINE_BAD;
	o = json_node_get_object(root);
	if (json_object_has_member(o, "event"))
		return queue_event(c, o) ? LINE_EVENT : LINE_BAD;
	*reply = o;
	return LINE_REPLY;
}

static void set_remote_error(JsonObject *reply, GError **err)
{
	JsonNode *n = json_object_get_member(reply, "error");
	const char *code = NULL, *msg = NULL;
	GIOErrorEnum e = G_IO_ERROR_FAILED;

	if (n && JSON_NODE_HOLDS_OBJECT(n)) {
		code = get_string(json_node_get_object(n), "code");
		msg = get_string(json_node_get_object(n), "message");
	}
	for (gsize i = 0; code && i < G_N_ELEMENTS(error_codes); i++)
		if (!strcmp(code, error_codes[i].code))
			e = error_codes[i].err;
	g_set_error(err, G_IO_ERROR, e, "%s", msg ? msg : code ? code : "request failed");
}

/*
 * Sends one request and waits for its reply. On success, *value (if not
 * NULL) gets a copy of the reply's "value" (NULL if it has none).
 */
static gboolean request(ViodStoreClient *c, const char *op, const char *path,
			const char *value, gint64 watch, JsonNode **value_out, GError **err)
{
	g_autoptr(JsonBuilder) b = json_builder_new_immutable();
	g_autoptr(JsonGenerator) gen = json_generator_new();
	g_autoptr(JsonNode) root = NULL;
	g_autofree char *line = NULL;
	gint64 deadline = g_get_monotonic_time() +
			  (gint64)VIOD_STORE_CLIENT_TIMEOUT_MS * 1000;
	gint64 id = c->next_id++;

	if (!check_broken(c, err))
		return FALSE;
	json_builder_begin_object(b);
	json_builder_set_member_name(b, "id");
	json_builder_add_int_value(b, id);
	json_builder_set_member_name(b, "op");
	json_builder_add_string_value(b, op);
	if (path) {
		json_builder_set_member_name(b, "path");
		json_builder_add_string_value(b, path);
	}
	if (value) {
		json_builder_set_member_name(b, "value");
		json_builder_add_string_value(b, value);
	}
	if (watch > 0) {
		json_builder_set_member_name(b, "watch");
		json_builder_add_int_value(b, watch);
	}
	json_builder_end_object(b);
	root = json_builder_get_root(b);
	json_generator_set_root(gen, root);
	line = json_generator_to_data(gen, NULL);
	{
		g_autofree char *out = g_strconcat(line, "\n", NULL);

		if (!send_all(c, out, strlen(out), deadline, err))
			return FALSE;
	}

	for (;;) {
		g_autoptr(JsonParser) p = json_parser_new_immutable();
		g_autofree char *in = NULL;
		JsonObject *reply = NULL;
		JsonNode *idn;
		gint64 rid;
		int rc = read_line(c, deadline, FALSE, &in, err);

		if (rc < 0)
			return FALSE;
		if (rc == 0) {
			set_broken(c, err, G_IO_ERROR_TIMED_OUT,
				   "viod did not answer within %d s (%s)",
				   VIOD_STORE_CLIENT_TIMEOUT_MS / 1000, c->path);
			return FALSE;
		}
		switch (take_line(c, in, p, &reply)) {
		case LINE_EVENT:
			continue;
		case LINE_BAD:
			set_broken(c, err, G_IO_ERROR_INVALID_DATA,
				   "malformed reply from viod (%s)", c->path);
			return FALSE;
		case LINE_REPLY:
			break;
		}
		idn = json_object_get_member(reply, "id");
		/* An error without an id (a refused connection) answers us. */
		if (idn && JSON_NODE_HOLDS_NULL(idn)) {
			set_remote_error(reply, err);
			return FALSE;
		}
		if (!get_int(reply, "id", &rid) || rid != id)
			continue;
		if (!json_object_get_boolean_member_with_default(reply, "ok", FALSE)) {
			set_remote_error(reply, err);
			return FALSE;
		}
		if (value_out) {
			JsonNode *v = json_object_get_member(reply, "value");

			*value_out = v ? json_node_copy(v) : NULL;
		}
		return TRUE;
	}
}

static gboolean bad_reply(ViodStoreClient *c, GError **err)
{
	set_broken(c, err, G_IO_ERROR_INVALID_DATA, "malformed reply from viod (%s)", c->path);
	return FALSE;
}

char *viod_store_client_read(ViodStoreClient *c, const char *path, GError **err)
{
	g_autoptr(JsonNode) v = NULL;

	if (!request(c, "read", path, NULL, 0, &v, err))
		return NULL;
	if (!v || !JSON_NODE_HOLDS_VALUE(v) || json_node_get_value_type(v) != G_TYPE_STRING) {
		bad_reply(c, err);
		return NULL;
	}
	return g_strdup(json_node_get_string(v));
}

gboolean viod_store_client_write(ViodStoreClient *c, const char *path,
				 const char *value, GError **err)
{
	return request(c, "write", path, value, 0, NULL, err);
}

char **viod_store_client_list(ViodStoreClient *c, const char *path, GError **err)
{
	g_autoptr(JsonNode) v = NULL;
	g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
	JsonArray *a;

	if (!request(c, "list", path, NULL, 0, &v, err))
		return NULL;
	if (!v || !JSON_NODE_HOLDS_ARRAY(v)) {
		bad_reply(c, err);
		return NULL;
	}
	a = json_node_get_array(v);
	for (guint i = 0; i < json_array_get_length(a); i++) {
		JsonNode *e = json_array_get_element(a, i);

		if (!JSON_NODE_HOLDS_VALUE(e) || json_node_get_value_type(e) != G_TYPE_STRING) {
			bad_reply(c, err);
			return NULL;
		}
		g_ptr_array_add(names, g_strdup(json_node_get_string(e)));
	}
	g_ptr_array_add(names, NULL);
	g_ptr_array_set_free_func(names, NULL);
	return (char **)g_ptr_array_free(g_steal_pointer(&names), FALSE);
}

guint viod_store_client_watch(ViodStoreClient *c, const char *path, GError **err)
{
	g_autoptr(JsonNode) v = NULL;
	gint64 w;

	if (!request(c, "watch", path, NULL, 0, &v, err))
		return 0;
	if (!v || !JSON_NODE_HOLDS_VALUE(v) || json_node_get_value_type(v) != G_TYPE_INT64 ||
	    (w = json_node_get_int(v)) <= 0 || w > G_MAXUINT) {
		bad_reply(c, err);
		return 0;
	}
	return (guint)w;
}

gboolean viod_store_client_unwatch(ViodStoreClient *c, guint watch, GError **err)
{
	g_return_val_if_fail(watch > 0, FALSE);
	return request(c, "unwatch", NULL, NULL, watch, NULL, err);
}

ViodStoreEvent *viod_store_client_next_event(ViodStoreClient *c, int timeout_ms,
					     GError **err)
{
	gint64 deadline = timeout_ms < 0 ? -1 :
			  g_get_monotonic_time() + (gint64)timeout_ms * 1000;

	while (g_queue_is_empty(&c->events)) {
		g_autoptr(JsonParser) p = json_parser_new_immutable();
		g_autofree char *line = NULL;
		JsonObject *reply = NULL;
		int rc;

		if (!check_broken(c, err))
			return NULL;
		rc = read_line(c, deadline, TRUE, &line, err);
		if (rc <= 0)
			return NULL;
		switch (take_line(c, line, p, &reply)) {
		case LINE_BAD:
			bad_reply(c, err);
			return NULL;
		case LINE_REPLY:
			/* An error without an id ends the connection (e.g. refused). */
			if (json_object_has_member(reply, "id") &&
			    json_object_get_null_member(reply, "id") && !c->broken) {
				set_remote_error(reply, &c->broken);
				check_broken(c, err);
				return NULL;
			}
			/* Replies nobody waits for (none in this synchronous API) are dropped. */
			break;
		case LINE_EVENT:
			break;
		}
	}
	return g_queue_pop_head(&c->events);
}
