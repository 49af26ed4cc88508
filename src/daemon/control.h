#ifndef VIOD_DAEMON_CONTROL_H
#define VIOD_DAEMON_CONTROL_H

#include <glib.h>

struct viod_store;

/*
 * The daemon's control store: publishes every device's keys under
 * /devices/ID (type, socket, state, features, status, connections,
 * per-queue counters, and the device's own), refreshes them when they
 * change (counters at most every 50 ms), and serves the store on path.
 * With explicit == FALSE (the default path), a socket already served by
 * another viod only disables the store, with a warning.
 */
struct viod_store *viod_control_start(GPtrArray *devs, const char *path,
				      gboolean explicit, GError **err);
void viod_control_stop(struct viod_store *st);

/* $VIOD_CONTROL, else $XDG_RUNTIME_DIR/viod/control, else /run/viod/control. */
char *viod_control_default_path(void);

#endif
