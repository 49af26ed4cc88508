/*
 * vhost-user.rst's "Backend program conventions": one device per process,
 * its type named by the program (viod-TYPE) or --type, its socket given
 * by --socket-path or --fd, and --print-capabilities answering for it with
 * vhost-user.json's VHostUserBackendCapabilities.
 */
#ifndef VIOD_DAEMON_BACKEND_H
#define VIOD_DAEMON_BACKEND_H

#include <glib.h>

/*
 * viod's device type ("blk") for name, which is one ("blk") or
 * vhost-user.json's VHostUserBackendType for it ("block"); NULL when it
 * names no type viod serves.
 */
const char *viod_backend_type(const char *name);

/*
 * The device type a program named argv0 serves: viod-TYPE (any directory;
 * TYPE as viod_backend_type() takes it) gives TYPE, anything else NULL.
 */
const char *viod_backend_type_of_program(const char *argv0);

/*
 * Prints the VHostUserBackendCapabilities JSON object for viod's device
 * type (one line, on stdout). 0, or -errno if stdout failed.
 */
int viod_backend_print_capabilities(const char *type);

/* Whether the type takes vhost-user.rst's vhost-user-blk options
 * (--blk-file, --read-only). */
gboolean viod_backend_is_block(const char *type);

#endif
