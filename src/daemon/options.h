#ifndef VIOD_DAEMON_OPTIONS_H
#define VIOD_DAEMON_OPTIONS_H

#include <glib.h>

struct viod_dev;

/*
 * Parses one --device value, TYPE,id=ID,socket=PATH[,key=value...], into a
 * new device (not yet listening). Common keys: id, socket, poll-us,
 * workers (data-path threads), mem-max (cap on guest memory); the
 * rest go to the device type. NULL with *err set on any bad input.
 */
struct viod_dev *viod_device_from_spec(const char *spec, GError **err);

/*
 * Single-device mode (vhost-user.rst's back-end program conventions): a
 * device of TYPE with the key=value pairs of options (each a comma-separated
 * list, as in a --device spec after the type; NULL-terminated, or NULL) and
 * of extra (NULL-terminated key=value strings taken whole, so a value may
 * hold commas, e.g. a --blk-file path; or NULL). The same keys as
 * viod_device_from_spec(), but id defaults to TYPE and socket is refused:
 * the caller serves the socket it got from --socket-path or --fd
 * (dev->socket_path stays NULL). NULL with *err set on any bad input.
 */
struct viod_dev *viod_device_from_options(const char *type, const char *const *options,
					  const char *const *extra, GError **err);

#endif
