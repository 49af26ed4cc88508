/* The back-end program conventions' names and capabilities (backend.h). */
#include "backend.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/*
 * viod's types against vhost-user.json's VHostUserBackendType. features:
 * the VHostUserBackendCapabilities branch's feature list for the type;
 * the schema has a branch (a "features" member) only for block, input and
 * gpu, so the other types print only "type".
 */
static const struct {
	const char *type;
	const char *schema_type;
	const char *const *features;
} types[] = {
	{ "balloon", "balloon", NULL },
	/* VHostUserBackendBlockFeature: --read-only and --blk-file */
	{ "blk", "block", (const char *const[]){ "read-only", "blk-file", NULL } },
	{ "net", "net", NULL },
	{ "rng", "rng", NULL },
};

const char *viod_backend_type(const char *name)
{
	for (size_t i = 0; i < G_N_ELEMENTS(types); i++)
		if (!strcmp(name, types[i].type) || !strcmp(name, types[i].schema_type))
			return types[i].type;
	return NULL;
}

const char *viod_backend_type_of_program(const char *argv0)
{
	const char *base = strrchr(argv0, '/');

	base = base ? base + 1 : argv0;
	if (strncmp(base, "viod-", 5) != 0)
		return NULL;
	return viod_backend_type(base + 5);
}

gboolean viod_backend_is_block(const char *type)
{
	return !strcmp(type, "blk");
}

int viod_backend_print_capabilities(const char *type)
{
	for (size_t i = 0; i < G_N_ELEMENTS(types); i++) {
		const char *const *f = types[i].features;

		if (strcmp(type, types[i].type))
			continue;
		printf("{\"type\": \"%s\"", types[i].schema_type);
		if (f) {
			printf(", \"features\": [");
			for (size_t j = 0; f[j]; j++)
				printf("%s\"%s\"", j ? ", " : "", f[j]);
			printf("]");
		}
		printf("}\n");
		return fflush(stdout) == 0 && !ferror(stdout) ? 0 : -EIO;
	}
	return -ENOENT;
}
