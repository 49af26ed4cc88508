/*
 * Unit tests for src/store/store.c: path rules, the tree (set, get, list,
 * remove), change-only notification with prefix matching, watches removed
 * from inside a notification, the writable registry and its callbacks'
 * errors, and the limits.
 */
#include <errno.h>
#include <string.h>

#include <gio/gio.h>

#include "store/store.h"
#include "tap.h"

struct log {
	GString *s;
	guint calls;
};

static void record(const char *path, const char *value, gpointer p)
{
	struct log *l = p;

	g_string_append_printf(l->s, "%s=%s;", path, value ? value : "(removed)");
	l->calls++;
}

static void test_paths(void)
{
	static const char *const good[] = {
		"/", "/a", "/devices/balloon0/target", "/a.b/c-d/E_9", "/...x", "/x..",
	};
	static const char *const bad[] = {
		"", "a", "a/b", "//", "/a/", "/a//b", "/.", "/..", "/a/../b", "/a/./b",
		"/...", "/a b", "/a\tb", "/é", "/a*", "/a\\b",
	};
	char longp[VIOD_STORE_PATH_MAX + 2];
	gboolean all = TRUE;

	for (gsize i = 0; i < G_N_ELEMENTS(good); i++)
		if (!viod_store_path_valid(good[i])) {
			printf("# refused %s\n", good[i]);
			all = FALSE;
		}
	ok(all, "valid paths are accepted");
	all = TRUE;
	for (gsize i = 0; i < G_N_ELEMENTS(bad); i++)
		if (viod_store_path_valid(bad[i])) {
			printf("# accepted '%s'\n", bad[i]);
			all = FALSE;
		}
	ok(all, "relative, empty, dot, dot-dot, trailing-slash and odd-character paths are refused");
	ok(!viod_store_path_valid(NULL), "NULL is refused");
	memset(longp, 'a', sizeof(longp));
	longp[0] = '/';
	longp[VIOD_STORE_PATH_MAX] = '\0';
	ok(viod_store_path_valid(longp), "a path of exactly %d bytes is valid", VIOD_STORE_PATH_MAX);
	longp[VIOD_STORE_PATH_MAX] = 'a';
	longp[VIOD_STORE_PATH_MAX + 1] = '\0';
	ok(!viod_store_path_valid(longp), "one byte more is not");
}

static void test_tree(void)
{
	struct viod_store *st = viod_store_new();
	g_auto(GStrv) root = NULL, dev = NULL, leaf = NULL, none = NULL;

	viod_store_set(st, "/devices/b/target", "0");
	viod_store_setf(st, "/devices/b/actual", "%d", 7);
	viod_store_set(st, "/devices/a/type", "rng");
	ok(!g_strcmp0(viod_store_get(st, "/devices/b/target"), "0"), "set then get");
	ok(!g_strcmp0(viod_store_get(st, "/devices/b/actual"), "7"), "setf formats");
	ok(viod_store_get(st, "/devices/b") == NULL, "a directory has no value");
	ok(viod_store_exists(st, "/devices/b"), "but exists");
	ok(viod_store_get(st, "/devices/c") == NULL && !viod_store_exists(st, "/devices/c"),
	   "a missing key does not");
	ok(viod_store_get(st, "/devices/../x") == NULL, "get refuses bad paths");

	root = viod_store_list(st, "/");
	dev = viod_store_list(st, "/devices");
	leaf = viod_store_list(st, "/devices/b/target");
	none = viod_store_list(st, "/nothing");
	ok(root && g_strv_length(root) == 1 && !strcmp(root[0], "devices"), "list /");
	ok(dev && g_strv_length(dev) == 2 && !strcmp(dev[0], "a") && !strcmp(dev[1], "b"),
	   "list is sorted");
	ok(leaf && g_strv_length(leaf) == 0, "a key without children lists empty");
	ok(none == NULL, "listing a missing path is NULL");

	viod_store_set(st, "/devices/b", "both");
	ok(!g_strcmp0(viod_store_get(st, "/devices/b"), "both") &&
	   viod_store_get(st, "/devices/b/target"), "a node may have a value and children");

	viod_store_remove(st, "/devices/b");
	ok(!viod_store_exists(st, "/devices/b") && !viod_store_get(st, "/devices/b/target"),
	   "remove takes the subtree");
	ok(viod_store_exists(st, "/devices/a/type"), "and nothing else");
	viod_store_remove(st, "/devices/zzz");
	ok(viod_store_exists(st, "/devices"), "removing a missing path is harmless");
	viod_store_remove(st, "/");
	ok(!viod_store_exists(st, "/devices") && viod_store_exists(st, "/"),
	   "removing / empties the tree");
	viod_store_free(st);
}

static void test_watches(void)
{
	struct viod_store *st = viod_store_new();
	struct log all = { g_string_new(NULL) }, dev = { g_string_new(NULL) },
		   key = { g_string_new(NULL) }, other = { g_string_new(NULL) };
	guint wa, wd, wk, wo;

	viod_store_set(st, "/devices/balloon0/target", "0");
	wa = viod_store_watch_add(st, "/", record, &all);
	wd = viod_store_watch_add(st, "/devices/balloon0", record, &dev);
	wk = viod_store_watch_add(st, "/devices/balloon0/target", record, &key);
	wo = viod_store_watch_add(st, "/devices/b", record, &other);
	ok(wa && wd && wk && wo && wa != wd, "watch ids are distinct and non-zero");

	viod_store_set(st, "/devices/balloon0/target", "0");
	ok(all.calls == 0, "setting the same value notifies nobody");
	viod_store_set(st, "/devices/balloon0/target", "5");
	ok(all.calls == 1 && dev.calls == 1 && key.calls == 1,
	   "a change reaches watchers of the key and its ancestors");
	ok(other.calls == 0, "/devices/b does not watch /devices/balloon0 (prefix is per component)");
	viod_store_set(st, "/devices/balloon0/actual", "1");
	ok(dev.calls == 2 && key.calls == 1, "a sibling's change skips the key's watcher");
	viod_store_set(st, "/devices/b/x", "new");
	ok(other.calls == 1 && !strcmp(other.s->str, "/devices/b/x=new;"),
	   "a new key is a change");

	g_string_truncate(dev.s, 0);
	viod_store_remove(st, "/devices/balloon0");
	ok(!strcmp(dev.s->str, "/devices/balloon0/actual=(removed);"
		   "/devices/balloon0/target=(removed);"),
	   "remove sends one removed event per key, sorted");

	viod_store_watch_remove(st, wd);
	viod_store_set(st, "/devices/balloon0/target", "9");
	ok(dev.calls == 4, "a removed watch hears nothing");
	viod_store_watch_remove(st, wd);
	viod_store_watch_remove(st, 12345);
	ok(TRUE, "removing an unknown watch is harmless");

	g_string_truncate(all.s, 0);
	viod_store_set(st, "/z/b", "2");
	viod_store_set(st, "/z/a", "1");
	viod_store_set(st, "/z/a/deep", "3");
	all.calls = 0;
	g_string_truncate(all.s, 0);
	viod_store_foreach(st, "/z", record, &all);
	ok(!strcmp(all.s->str, "/z/a=1;/z/a/deep=3;/z/b=2;"), "foreach walks keys in order");

	viod_store_free(st);
	g_string_free(all.s, TRUE);
	g_string_free(dev.s, TRUE);
	g_string_free(key.s, TRUE);
	g_string_free(other.s, TRUE);
}

/* Watch callbacks that remove watches, their own included. */
struct selfrm {
	struct viod_store *st;
	guint self, victim;
	guint calls;
};

static void remove_watches(const char *path, const char *value, gpointer p)
{
	struct selfrm *s = p;

	s->calls++;
	viod_store_watch_remove(s->st, s->self);
	if (s->victim)
		viod_store_watch_remove(s->st, s->victim);
}

static void test_watch_removal_in_notify(void)
{
	struct viod_store *st = viod_store_new();
	struct selfrm a = { st }, b = { st };
	struct log l = { g_string_new(NULL) };
	guint wl;

	a.self = viod_store_watch_add(st, "/k", remove_watches, &a);
	b.self = viod_store_watch_add(st, "/k", remove_watches, &b);
	wl = viod_store_watch_add(st, "/k", record, &l);
	a.victim = b.self;
	viod_store_set(st, "/k", "1");
	ok(a.calls == 1 && b.calls == 0, "a watch removed by an earlier callback is not called");
	ok(l.calls == 1, "the others still are");
	viod_store_set(st, "/k", "2");
	ok(a.calls == 1 && l.calls == 2, "a watch that removed itself hears nothing more");
	viod_store_watch_remove(st, wl);
	viod_store_free(st);
	g_string_free(l.s, TRUE);
}

struct wctx {
	guint calls;
	const char *last;
};

static gboolean write_even(struct viod_store *st, const char *path, const char *value,
			   gpointer opaque, GError **err)
{
	struct wctx *w = opaque;
	guint64 v;

	w->calls++;
	if (!g_ascii_string_to_unsigned(value, 10, 0, 1000, &v, err))
		return FALSE;
	if (v % 2) {
		g_set_error(err, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT, "must be even");
		return FALSE;
	}
	if (v == 998) {
		g_set_error(err, G_IO_ERROR, G_IO_ERROR_FAILED, "device gone");
		return FALSE;
	}
	if (v == 996)
		return FALSE;
	viod_store_set(st, path, value);
	viod_store_setf(st, "/d/half", "%" G_GUINT64_FORMAT, v / 2);
	return TRUE;
}

static void test_writable(void)
{
	struct viod_store *st = viod_store_new();
	struct wctx w = { 0 };
	struct log l = { g_string_new(NULL) };
	g_autofree char *big = g_malloc(VIOD_STORE_VALUE_MAX + 2);
	GError *err = NULL;
	int rc;

	viod_store_set(st, "/d/target", "0");
	viod_store_set(st, "/d/actual", "0");
	viod_store_set_writable(st, "/d/target", write_even, &w);
	viod_store_watch_add(st, "/d", record, &l);

	rc = viod_store_write(st, "/d/target", "42", &err);
	ok(rc == 0 && !err && !strcmp(viod_store_get(st, "/d/target"), "42") &&
	   !strcmp(viod_store_get(st, "/d/half"), "21"), "a valid write is applied by its callback");
	ok(!strcmp(l.s->str, "/d/target=42;/d/half=21;"), "and watchers see what it published");

	rc = viod_store_write(st, "/d/target", "43", &err);
	ok(rc == -EINVAL && g_error_matches(err, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT) &&
	   !strcmp(err->message, "must be even") && !strcmp(viod_store_get(st, "/d/target"), "42"),
	   "a rejected value is -EINVAL with the callback's message, key unchanged");
	g_clear_error(&err);
	rc = viod_store_write(st, "/d/target", "lots", &err);
	ok(rc == -EINVAL && err, "a number-parser error counts as a bad value");
	g_clear_error(&err);
	rc = viod_store_write(st, "/d/target", "998", &err);
	ok(rc == -EIO && !strcmp(err->message, "device gone"), "other failures are -EIO");
	g_clear_error(&err);
	rc = viod_store_write(st, "/d/target", "996", &err);
	ok(rc == -EIO && err, "a callback failing without a message still gets one");
	g_clear_error(&err);

	rc = viod_store_write(st, "/d/actual", "1", &err);
	ok(rc == -EACCES && err && strstr(err->message, "read-only"), "read-only key: -EACCES");
	g_clear_error(&err);
	rc = viod_store_write(st, "/d/nope", "1", &err);
	ok(rc == -ENOENT && err, "missing key: -ENOENT");
	g_clear_error(&err);
	rc = viod_store_write(st, "/d", "1", &err);
	ok(rc == -EISDIR && err, "directory: -EISDIR");
	g_clear_error(&err);
	rc = viod_store_write(st, "/d/../d/target", "2", &err);
	ok(rc == -EINVAL && err, "bad path: -EINVAL");
	g_clear_error(&err);
	memset(big, '2', VIOD_STORE_VALUE_MAX + 1);
	big[VIOD_STORE_VALUE_MAX + 1] = '\0';
	rc = viod_store_write(st, "/d/target", big, &err);
	ok(rc == -E2BIG && err && w.calls == 5, "a value over %d bytes: -E2BIG, callback not called",
	   VIOD_STORE_VALUE_MAX);
	g_clear_error(&err);

	viod_store_remove(st, "/d/target");
	viod_store_set(st, "/d/target", "0");
	rc = viod_store_write(st, "/d/target", "2", &err);
	ok(rc == -EACCES, "removing a key drops its write callback");
	g_clear_error(&err);
	viod_store_free(st);
	g_string_free(l.s, TRUE);
}

static void test_limits(void)
{
	struct viod_store *st = viod_store_new();
	g_autofree char *max = g_malloc(VIOD_STORE_VALUE_MAX + 1);

	memset(max, 'v', VIOD_STORE_VALUE_MAX);
	max[VIOD_STORE_VALUE_MAX] = '\0';
	viod_store_set(st, "/k", max);
	ok(viod_store_get(st, "/k") && strlen(viod_store_get(st, "/k")) == VIOD_STORE_VALUE_MAX,
	   "a value of exactly %d bytes is kept", VIOD_STORE_VALUE_MAX);
	ok(VIOD_STORE_LINE_MAX > VIOD_STORE_PATH_MAX + 2 * VIOD_STORE_VALUE_MAX,
	   "a request line has room for a maximal path and value");
	viod_store_free(st);
}

int main(void)
{
	/* viod_store_set's g_return_if_fail on bad input is a programming error. */
	test_paths();
	test_tree();
	test_watches();
	test_watch_removal_in_notify();
	test_writable();
	test_limits();
	return tap_done();
}
