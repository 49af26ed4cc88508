/* Listening UNIX sockets, as viod's device and control sockets use them. */
#ifndef VIOD_UTIL_LISTEN_H
#define VIOD_UTIL_LISTEN_H

#include <glib.h>
#include <sys/stat.h>

/*
 * Listens on a UNIX stream socket at path and returns its fd (non-blocking,
 * close-on-exec), or -errno with *err set. A stale socket at path is
 * replaced; one another process is serving, or a path that is not a
 * socket, is an error. The socket is bound under a temporary name and
 * renamed into place once it listens, so the path appears only when
 * connections to it can succeed. With mode 0600 it is created under umask
 * 0177, so it is never more open than that; with mode 0 the umask decides.
 * st, if not NULL, receives the socket file's stat (to recognise it later).
 */
int viod_unix_listen(const char *path, mode_t mode, int backlog, struct stat *st,
		     GError **err);

#endif
