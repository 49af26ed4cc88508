/* The device types viod can serve. */
#include "vhost/device.h"

#include <string.h>

static const struct viod_device_ops *const types[] = {
	&viod_rng_ops,
};

const struct viod_device_ops *viod_device_lookup(const char *type)
{
	for (size_t i = 0; i < G_N_ELEMENTS(types); i++)
		if (strcmp(types[i]->type, type) == 0)
			return types[i];
	return NULL;
}
