/* The device types viod can serve. */
#include "vhost/device.h"

#include <string.h>

const struct viod_device_ops *const viod_device_types[] = {
	&viod_balloon_ops,
	&viod_rng_ops,
	NULL,
};

const struct viod_device_ops *viod_device_lookup(const char *type)
{
	for (size_t i = 0; viod_device_types[i]; i++)
		if (strcmp(viod_device_types[i]->type, type) == 0)
			return viod_device_types[i];
	return NULL;
}
