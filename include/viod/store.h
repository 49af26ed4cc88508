/*
 * Client of viod's control store (protocol: proto/viod-store.md; the key
 * tree: viod-store(7)). Synchronous: each call sends one request and
 * blocks until its response (at most VIOD_STORE_CLIENT_TIMEOUT_MS). Watch
 * events that arrive meanwhile are queued for viod_store_client_next_event.
 *
 * Errors are G_IO_ERROR codes: the daemon's error codes map to
 * NOT_FOUND (ENOENT), INVALID_ARGUMENT (EINVAL), PERMISSION_DENIED (EACCES),
 * IS_DIRECTORY (EISDIR), MESSAGE_TOO_LARGE (E2BIG), NO_SPACE (ENOSPC),
 * BUSY (EBUSY), NOT_SUPPORTED (ENOSYS), INVALID_DATA (EPROTO) and FAILED
 * (anything else); the message is the daemon's. A broken connection gives
 * CONNECTION_CLOSED, a daemon that does not answer TIMED_OUT; after either,
 * every call on the client fails.
 *
 * A client is not thread-safe; use one per thread.
 */
#ifndef VIOD_STORE_CLIENT_H
#define VIOD_STORE_CLIENT_H

#include <gio/gio.h>

#define VIOD_STORE_CLIENT_TIMEOUT_MS 30000

typedef struct viod_store_client ViodStoreClient;

enum viod_store_event_kind {
	VIOD_STORE_EVENT_CHANGED,       /* path now has value (or is new) */
	VIOD_STORE_EVENT_REMOVED,       /* path is gone */
	VIOD_STORE_EVENT_SYNCED,        /* the watch's initial values are all sent */
};

typedef struct viod_store_event {
	enum viod_store_event_kind kind;
	guint watch;
	char *path;                     /* NULL for SYNCED */
	char *value;                    /* CHANGED only */
} ViodStoreEvent;

/*
 * The control socket to use when none is given: $VIOD_CONTROL, else
 * $XDG_RUNTIME_DIR/viod/control, else /run/viod/control.
 */
char *viod_store_default_path(void);

/* Connects to path (NULL: viod_store_default_path()). */
ViodStoreClient *viod_store_client_connect(const char *path, GError **err);
void viod_store_client_free(ViodStoreClient *c);

/* The socket path this client connected to. */
const char *viod_store_client_path(ViodStoreClient *c);

/* The value of a key. */
char *viod_store_client_read(ViodStoreClient *c, const char *path, GError **err);

gboolean viod_store_client_write(ViodStoreClient *c, const char *path,
				 const char *value, GError **err);

/* The names of path's children, sorted (g_strfreev). */
char **viod_store_client_list(ViodStoreClient *c, const char *path, GError **err);

/*
 * Watches path and its subtree; returns the watch's number (> 0), or 0 on
 * error. Events follow: CHANGED for every key present now, one SYNCED,
 * then one event per change.
 */
guint viod_store_client_watch(ViodStoreClient *c, const char *path, GError **err);
gboolean viod_store_client_unwatch(ViodStoreClient *c, guint watch, GError **err);

/*
 * The next watch event, waiting at most timeout_ms (< 0: no limit).
 * Returns NULL without setting *err on timeout or when a signal
 * interrupted the wait.
 */
ViodStoreEvent *viod_store_client_next_event(ViodStoreClient *c, int timeout_ms,
					     GError **err);
void viod_store_event_free(ViodStoreEvent *ev);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(ViodStoreClient, viod_store_client_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(ViodStoreEvent, viod_store_event_free)

#endif
