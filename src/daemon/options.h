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

#endif
