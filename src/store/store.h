/*
 * The control store, after xenbus(4)/XenStore: a tree of string keys
 * ("/devices/balloon0/target") holding string values, which clients read,
 * write, list and watch over a UNIX socket (one JSON object per line; see
 * proto/). The daemon publishes device state into it; a few keys are
 * writable, each through a callback that validates and applies the write.
 *
 * Threads: everything here runs on the control thread (the default GLib
 * main context). Security model: clients are local and credential-checked
 * (same uid as the daemon, or root) but their input is still untrusted:
 * paths, values and message sizes are bounded and validated.
 */
#ifndef VIOD_STORE_STORE_H
#define VIOD_STORE_STORE_H

#include <glib.h>
#include <sys/types.h>

struct viod_store;

/* Limits (enforced on client input; the daemon's own keys stay within). */
#define VIOD_STORE_PATH_MAX 256
#define VIOD_STORE_VALUE_MAX 4096
#define VIOD_STORE_LINE_MAX 16384

/*
 * Validates and applies a client's write of value to path. Returns TRUE
 * after applying it (the callback publishes resulting values itself with
 * viod_store_set), or FALSE with *err set (G_IO_ERROR_INVALID_ARGUMENT for
 * a bad value, G_IO_ERROR_FAILED otherwise); the message reaches the client.
 * G_NUMBER_PARSER_ERROR (from g_ascii_string_to_unsigned) also counts as a
 * bad value.
 */
typedef gboolean (*viod_store_write_fn)(struct viod_store *st, const char *path,
					const char *value, gpointer opaque, GError **err);

struct viod_store *viod_store_new(void);
void viod_store_free(struct viod_store *st);

/*
 * Sets path (absolute, '/'-separated, components [A-Za-z0-9_.-]+) to value,
 * creating parents. Watchers of path or of an ancestor get an event only if
 * the value changed (or the key is new).
 */
void viod_store_set(struct viod_store *st, const char *path, const char *value);
void viod_store_setf(struct viod_store *st, const char *path, const char *fmt, ...)
	G_GNUC_PRINTF(3, 4);

/* Sets prefix/key ("/devices/b0" + "target") to a formatted value. */
void viod_store_setf_under(struct viod_store *st, const char *prefix, const char *key,
			   const char *fmt, ...) G_GNUC_PRINTF(4, 5);

/* Removes path and its subtree; watchers get a "removed" event per key. */
void viod_store_remove(struct viod_store *st, const char *path);

/* The value at path, or NULL (no such key, or a directory). */
const char *viod_store_get(struct viod_store *st, const char *path);

/* Lets clients write path (which must exist); fn validates and applies. */
void viod_store_set_writable(struct viod_store *st, const char *path,
			     viod_store_write_fn fn, gpointer opaque);

/*
 * Serves the protocol on a new UNIX socket at path (mode 0600; a stale
 * socket is replaced, a live one is an error). Removed by viod_store_free.
 */
gboolean viod_store_listen(struct viod_store *st, const char *path, GError **err);

/*
 * Serves the protocol on fd, an already-connected stream socket, as one
 * more client (with or without viod_store_listen). The store owns fd from
 * the call on, whatever the outcome: it is made non-blocking and
 * close-on-exec, and closed when the connection ends or the store is
 * freed. No credential check is made: the caller vouches for the peer
 * (e.g. the other end of a socketpair of this process, as the fuzzer and
 * tests use; a descriptor handed over by a trusted supervisor). The
 * connection limit still applies: past it the peer gets the EBUSY error
 * object and FALSE is returned with *err set.
 */
gboolean viod_store_serve_fd(struct viod_store *st, int fd, GError **err);

/*
 * The rest serves the protocol (server.c) and lets the daemon and tests use
 * the store's client-facing operations directly.
 */

/* Served socket limits: see proto/viod-store.md, "Limits". */
#define VIOD_STORE_WATCHES_MAX 64          /* per connection */
#define VIOD_STORE_CLIENTS_MAX 64          /* connections at once */
#define VIOD_STORE_BACKLOG_MAX (1u << 20)  /* unsent bytes before a drop */

/* TRUE if path is valid for viod_store_set ("/" names the root). */
gboolean viod_store_path_valid(const char *path);

/*
 * The names of path's children, sorted (NULL-terminated, g_strfreev), or
 * NULL if path does not exist. A key without children has none.
 */
char **viod_store_list(struct viod_store *st, const char *path);

/* TRUE if path exists, as a key or a directory. */
gboolean viod_store_exists(struct viod_store *st, const char *path);

/*
 * A client's write: 0 after the key's callback applied it, else -errno
 * with *err set to a message for the client: -EINVAL (bad path, or the
 * callback rejected the value), -ENOENT, -EISDIR, -EACCES (not writable),
 * -E2BIG (value over VIOD_STORE_VALUE_MAX), -EIO (the callback failed).
 */
int viod_store_write(struct viod_store *st, const char *path, const char *value,
		     GError **err);

/*
 * Called for every change at or under a watched path: value is the new
 * value, or NULL when the key was removed. Must not free the store; may
 * add or remove watches (a watch removed during a notification gets no
 * further calls).
 */
typedef void (*viod_store_watch_fn)(const char *path, const char *value,
				    gpointer opaque);

/*
 * Watches path and its subtree; path need not exist yet. Returns the
 * watch's id (never 0) for viod_store_watch_remove.
 */
guint viod_store_watch_add(struct viod_store *st, const char *path,
			   viod_store_watch_fn fn, gpointer opaque);
void viod_store_watch_remove(struct viod_store *st, guint id);

/* Calls fn for every key (node with a value) at or under path, sorted. */
void viod_store_foreach(struct viod_store *st, const char *path,
			viod_store_watch_fn fn, gpointer opaque);

/* The credential rule: a peer may connect if it runs as self_uid or root. */
gboolean viod_store_peer_allowed(uid_t peer_uid, uid_t self_uid);

/* Connections currently served (for tests and diagnostics). */
guint viod_store_connections(struct viod_store *st);

#endif
