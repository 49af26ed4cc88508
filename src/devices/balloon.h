/* The balloon's control-thread interface, for the daemon's store glue. */
#ifndef VIOD_DEVICES_BALLOON_H
#define VIOD_DEVICES_BALLOON_H

#include <glib.h>
#include <stdint.h>

struct viod_dev;

/* Asks the guest for a balloon of pages (4 KiB each); checked against the
 * guest's memory when a front-end is connected. */
gboolean viod_balloon_set_target(struct viod_dev *dev, uint64_t pages, GError **err);

#endif
