/*
 * The control store's tree, writable-key registry and watches.
 *
 * A node has a name, an optional value (a node without one is a directory)
 * and sorted children, so that lists and watch snapshots come out in a
 * stable order. Intermediate nodes are created by viod_store_set and stay
 * until their subtree is removed, as in XenStore.
 *
 * Watches are kept in an array that notifications walk by index; a watch
 * removed while a notification runs is only marked, and the array is
 * compacted once the outermost notification returns, so a watch callback
 * may drop watches (its own included) and writes may nest.
 */
#include "private.h"

#include <errno.h>
#include <string.h>

#include <gio/gio.h>

struct node {
	char *name;
	char *value;            /* NULL: a directory */
	GTree *children;        /* name -> struct node, NULL while empty */
};

struct writable {
	viod_store_write_fn fn;
	gpointer opaque;
};

struct watch {
	guint id;
	gboolean dead;
	char *path;
	viod_store_watch_fn fn;
	gpointer opaque;
};

struct viod_store {
	struct node root;
	GHashTable *writable;   /* path -> struct writable */
	GPtrArray *watches;     /* struct watch, in order of creation */
	guint next_watch;
	guint notifying;        /* nesting depth of notify() */
	gboolean sweep;         /* dead watches to drop after notifying */
	struct viod_store_server *server;
};

static int name_cmp(gconstpointer a, gconstpointer b, gpointer unused)
{
	return strcmp(a, b);
}

static void node_free(gpointer p)
{
	struct node *n = p;

	if (n->children)
		g_tree_destroy(n->children);
	g_free(n->value);
	g_free(n->name);
	g_free(n);
}

static void watch_free(gpointer p)
{
	struct watch *w = p;

	g_free(w->path);
	g_free(w);
}

static gboolean component_char_ok(char c)
{
	return g_ascii_isalnum(c) || c == '_' || c == '.' || c == '-';
}

/*
 * Absolute; components non-empty, of [A-Za-z0-9_.-], and not made of dots
 * only (no "." or ".."); no trailing '/'; at most VIOD_STORE_PATH_MAX bytes.
 */
gboolean viod_store_path_valid(const char *path)
{
	const char *c;

	if (!path || path[0] != '/')
		return FALSE;
	if (strnlen(path, VIOD_STORE_PATH_MAX + 1) > VIOD_STORE_PATH_MAX)
		return FALSE;
	if (path[1] == '\0')
		return TRUE;
	c = path + 1;
	for (;;) {
		const char *e = c;
		gboolean dots = TRUE;

		while (*e && *e != '/') {
			if (!component_char_ok(*e))
				return FALSE;
			if (*e != '.')
				dots = FALSE;
			e++;
		}
		if (e == c || dots)
			return FALSE;
		if (*e == '\0')
			return TRUE;
		c = e + 1;
		if (*c == '\0')
			return FALSE;
	}
}

/*
 * Walks a valid path. With create, makes missing nodes (as directories).
 * Returns the node, or NULL if it does not exist.
 */
static struct node *node_walk(struct viod_store *st, const char *path, gboolean create)
{
	struct node *n = &st->root;
	const char *c = path + 1;
	char name[VIOD_STORE_PATH_MAX + 1];

	while (*c) {
		const char *e = strchrnul(c, '/');
		size_t len = (size_t)(e - c);
		struct node *child = NULL;

		memcpy(name, c, len);
		name[len] = '\0';
		if (n->children)
			child = g_tree_lookup(n->children, name);
		if (!child) {
			if (!create)
				return NULL;
			if (!n->children)
				n->children = g_tree_new_full(name_cmp, NULL, NULL, node_free);
			child = g_new0(struct node, 1);
			child->name = g_strdup(name);
			g_tree_insert(n->children, child->name, child);
		}
		n = child;
		c = *e ? e + 1 : e;
	}
	return n;
}

static gboolean path_under(const char *path, const char *prefix)
{
	size_t len = strlen(prefix);

	if (len == 1)   /* "/" */
		return TRUE;
	return strncmp(path, prefix, len) == 0 && (path[len] == '\0' || path[len] == '/');
}

static void watches_sweep(struct viod_store *st)
{
	guint i = 0;

	while (i < st->watches->len) {
		struct watch *w = st->watches->pdata[i];

		if (w->dead)
			g_ptr_array_remove_index(st->watches, i);
		else
			i++;
	}
	st->sweep = FALSE;
}

/* Watches added by a callback see only later changes. */
static void notify(struct viod_store *st, const char *path, const char *value)
{
	guint n = st->watches->len;

	st->notifying++;
	for (guint i = 0; i < n && i < st->watches->len; i++) {
		struct watch *w = st->watches->pdata[i];

		if (!w->dead && path_under(path, w->path))
			w->fn(path, value, w->opaque);
	}
	if (--st->notifying == 0 && st->sweep)
		watches_sweep(st);
}

struct viod_store *viod_store_new(void)
{
	struct viod_store *st = g_new0(struct viod_store, 1);

	st->root.name = g_strdup("");
	st->writable = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
	st->watches = g_ptr_array_new_with_free_func(watch_free);
	return st;
}

void viod_store_free(struct viod_store *st)
{
	if (!st)
		return;
	g_return_if_fail(st->notifying == 0);
	if (st->server)
		viod_store_server_free(st->server);
	st->server = NULL;
	g_ptr_array_free(st->watches, TRUE);
	g_hash_table_destroy(st->writable);
	if (st->root.children)
		g_tree_destroy(st->root.children);
	g_free(st->root.value);
	g_free(st->root.name);
	g_free(st);
}

struct viod_store_server **viod_store_server_slot(struct viod_store *st)
{
	return &st->server;
}

void viod_store_set(struct viod_store *st, const char *path, const char *value)
{
	struct node *n;

	g_return_if_fail(st && value);
	g_return_if_fail(viod_store_path_valid(path) && path[1] != '\0');
	g_return_if_fail(strlen(value) <= VIOD_STORE_VALUE_MAX);
	g_return_if_fail(g_utf8_validate(value, -1, NULL));

	n = node_walk(st, path, TRUE);
	if (n->value && strcmp(n->value, value) == 0)
		return;
	g_free(n->value);
	n->value = g_strdup(value);
	notify(st, path, value);
}

static void store_vsetf(struct viod_store *st, const char *path, const char *fmt,
			va_list ap) G_GNUC_PRINTF(3, 0);

static void store_vsetf(struct viod_store *st, const char *path, const char *fmt,
			va_list ap)
{
	g_autofree char *value = g_strdup_vprintf(fmt, ap);

	viod_store_set(st, path, value);
}

void viod_store_setf(struct viod_store *st, const char *path, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	store_vsetf(st, path, fmt, ap);
	va_end(ap);
}

void viod_store_setf_under(struct viod_store *st, const char *prefix, const char *key,
			   const char *fmt, ...)
{
	g_autofree char *path = g_strdup_printf("%s/%s", prefix, key);
	va_list ap;

	va_start(ap, fmt);
	store_vsetf(st, path, fmt, ap);
	va_end(ap);
}

const char *viod_store_get(struct viod_store *st, const char *path)
{
	struct node *n;

	if (!viod_store_path_valid(path))
		return NULL;
	n = node_walk(st, path, FALSE);
	return n ? n->value : NULL;
}

gboolean viod_store_exists(struct viod_store *st, const char *path)
{
	return viod_store_path_valid(path) && node_walk(st, path, FALSE) != NULL;
}

static gboolean add_name(gpointer key, gpointer value, gpointer data)
{
	g_ptr_array_add(data, g_strdup(key));
	return FALSE;
}

char **viod_store_list(struct viod_store *st, const char *path)
{
	struct node *n;
	GPtrArray *names;

	if (!viod_store_path_valid(path))
		return NULL;
	n = node_walk(st, path, FALSE);
	if (!n)
		return NULL;
	names = g_ptr_array_new();
	if (n->children)
		g_tree_foreach(n->children, add_name, names);
	g_ptr_array_add(names, NULL);
	return (char **)g_ptr_array_free(names, FALSE);
}

struct walk {
	GString *path;
	viod_store_watch_fn fn;
	gpointer opaque;
};

static void walk_node(struct node *n, struct walk *w);

static gboolean walk_child(gpointer key, gpointer value, gpointer data)
{
	struct walk *w = data;
	gsize len = w->path->len;

	if (len != 1)
		g_string_append_c(w->path, '/');
	g_string_append(w->path, key);
	walk_node(value, w);
	g_string_truncate(w->path, len);
	return FALSE;
}

/* The callback must not change the tree being walked. */
static void walk_node(struct node *n, struct walk *w)
{
	if (n->value)
		w->fn(w->path->str, n->value, w->opaque);
	if (n->children)
		g_tree_foreach(n->children, walk_child, w);
}

void viod_store_foreach(struct viod_store *st, const char *path,
			viod_store_watch_fn fn, gpointer opaque)
{
	struct walk w = { .fn = fn, .opaque = opaque };
	struct node *n;

	if (!viod_store_path_valid(path))
		return;
	n = node_walk(st, path, FALSE);
	if (!n)
		return;
	w.path = g_string_new(path);
	walk_node(n, &w);
	g_string_free(w.path, TRUE);
}

static void collect_path(const char *path, const char *value, gpointer data)
{
	g_ptr_array_add(data, g_strdup(path));
}

static gboolean writable_under(gpointer key, gpointer value, gpointer prefix)
{
	return path_under(key, prefix);
}

void viod_store_remove(struct viod_store *st, const char *path)
{
	g_autoptr(GPtrArray) gone = NULL;
	struct node *n;

	g_return_if_fail(st && viod_store_path_valid(path));
	n = node_walk(st, path, FALSE);
	if (!n)
		return;
	gone = g_ptr_array_new_with_free_func(g_free);
	viod_store_foreach(st, path, collect_path, gone);
	if (n == &st->root) {
		if (n->children)
			g_tree_destroy(n->children);
		n->children = NULL;
	} else {
		g_autofree char *dir = g_path_get_dirname(path);
		g_autofree char *base = g_path_get_basename(path);
		struct node *parent = node_walk(st, dir, FALSE);

		g_tree_remove(parent->children, base);
		if (g_tree_nnodes(parent->children) == 0)
			g_clear_pointer(&parent->children, g_tree_destroy);
	}
	g_hash_table_foreach_remove(st->writable, writable_under, (gpointer)path);
	for (guint i = 0; i < gone->len; i++)
		notify(st, gone->pdata[i], NULL);
}

void viod_store_set_writable(struct viod_store *st, const char *path,
			     viod_store_write_fn fn, gpointer opaque)
{
	struct writable *w;

	g_return_if_fail(st && fn);
	g_return_if_fail(viod_store_get(st, path) != NULL);
	w = g_new(struct writable, 1);
	w->fn = fn;
	w->opaque = opaque;
	g_hash_table_replace(st->writable, g_strdup(path), w);
}

int viod_store_write(struct viod_store *st, const char *path, const char *value,
		     GError **err)
{
	g_autoptr(GError) cerr = NULL;
	struct writable *w;
	struct node *n;

	if (!viod_store_path_valid(path)) {
		g_set_error(err, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
			    "invalid path (absolute, components of [A-Za-z0-9_.-], "
			    "no '.' or '..', at most %d bytes)", VIOD_STORE_PATH_MAX);
		return -EINVAL;
	}
	if (strlen(value) > VIOD_STORE_VALUE_MAX) {
		g_set_error(err, G_IO_ERROR, G_IO_ERROR_MESSAGE_TOO_LARGE,
			    "value longer than %d bytes", VIOD_STORE_VALUE_MAX);
		return -E2BIG;
	}
	n = node_walk(st, path, FALSE);
	if (!n) {
		g_set_error(err, G_IO_ERROR, G_IO_ERROR_NOT_FOUND, "%s: no such key", path);
		return -ENOENT;
	}
	if (!n->value) {
		g_set_error(err, G_IO_ERROR, G_IO_ERROR_IS_DIRECTORY,
			    "%s is a directory", path);
		return -EISDIR;
	}
	w = g_hash_table_lookup(st->writable, path);
	if (!w) {
		g_set_error(err, G_IO_ERROR, G_IO_ERROR_PERMISSION_DENIED,
			    "%s is read-only", path);
		return -EACCES;
	}
	if (w->fn(st, path, value, w->opaque, &cerr))
		return 0;
	if (!cerr) {
		g_set_error(err, G_IO_ERROR, G_IO_ERROR_FAILED, "%s: write failed", path);
		return -EIO;
	}
	if (g_error_matches(cerr, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT) ||
	    cerr->domain == G_NUMBER_PARSER_ERROR) {
		g_set_error(err, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT, "%s", cerr->message);
		return -EINVAL;
	}
	g_propagate_error(err, g_steal_pointer(&cerr));
	return -EIO;
}

guint viod_store_watch_add(struct viod_store *st, const char *path,
			   viod_store_watch_fn fn, gpointer opaque)
{
	struct watch *w;

	g_return_val_if_fail(st && fn && viod_store_path_valid(path), 0);
	w = g_new0(struct watch, 1);
	if (++st->next_watch == 0)
		st->next_watch = 1;
	w->id = st->next_watch;
	w->path = g_strdup(path);
	w->fn = fn;
	w->opaque = opaque;
	g_ptr_array_add(st->watches, w);
	return w->id;
}

void viod_store_watch_remove(struct viod_store *st, guint id)
{
	for (guint i = 0; i < st->watches->len; i++) {
		struct watch *w = st->watches->pdata[i];

		if (w->id != id || w->dead)
			continue;
		if (st->notifying) {
			w->dead = TRUE;
			st->sweep = TRUE;
		} else {
			g_ptr_array_remove_index(st->watches, i);
		}
		return;
	}
}
