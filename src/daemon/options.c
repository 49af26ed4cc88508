/* --device parsing: a comma-separated list, QEMU style. */
#include "options.h"

#include <errno.h>
#include <string.h>

#include "util/parse.h"
#include "vhost/vhost.h"

/* Options every device takes; the rest are the device type's. */
static bool is_core_option(const char *key)
{
	static const char *const core[] = { "id", "socket", "poll-us", "workers", "mem-max" };

	for (size_t i = 0; i < G_N_ELEMENTS(core); i++)
		if (!strcmp(key, core[i]))
			return true;
	return false;
}

/*
 * parts: the type, then "key=value" strings, split in place at their '='.
 * With single, id defaults to the type and socket= is refused (the
 * socket comes from --socket-path or --fd); without, both are required.
 */
static struct viod_dev *device_from_parts(char **parts, bool single, GError **err)
{
	const struct viod_device_ops *ops;
	struct viod_dev *dev;
	const char *id = NULL, *socket = NULL;
	guint64 poll_us = G_MAXUINT64, workers = 1, mem_max = 0;

	ops = viod_device_lookup(parts[0]);
	if (!ops) {
		g_autofree char *known = viod_device_type_list();

		g_set_error(err, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
			    "unknown device type '%s' (known: %s)", parts[0], known);
		return NULL;
	}
	/* First pass: common keys and duplicates. */
	for (guint i = 1; parts[i]; i++) {
		char *eq = strchr(parts[i], '=');

		if (!eq || eq == parts[i] || !eq[1]) {
			g_set_error(err, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
				    "device option '%s' is not key=value", parts[i]);
			return NULL;
		}
		*eq = '\0';
		for (guint j = 1; j < i; j++) {
			if (strcmp(parts[j], parts[i]) == 0) {
				g_set_error(err, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
					    "device option '%s' given twice", parts[i]);
				return NULL;
			}
		}
		if (strcmp(parts[i], "socket") == 0 && single) {
			g_set_error(err, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
				    "device option 'socket': use --socket-path or --fd");
			return NULL;
		}
		if (strcmp(parts[i], "id") == 0)
			id = eq + 1;
		else if (strcmp(parts[i], "socket") == 0)
			socket = eq + 1;
		else if ((strcmp(parts[i], "poll-us") == 0 &&
			  !g_ascii_string_to_unsigned(eq + 1, 10, 0, 10000, &poll_us, err)) ||
			 (strcmp(parts[i], "workers") == 0 &&
			  !g_ascii_string_to_unsigned(eq + 1, 10, 1, VIOD_MAX_WORKERS, &workers,
						      err)) ||
			 (strcmp(parts[i], "mem-max") == 0 && !viod_parse_size(eq + 1, &mem_max, err))) {
			g_prefix_error(err, "%s %s=%s: ", parts[0], parts[i], eq + 1);
			return NULL;
		}
	}
	if (single && !id)
		id = parts[0];
	if (!id || (!socket && !single)) {
		g_set_error(err, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
			    "device '%s' needs id= and socket=", parts[0]);
		return NULL;
	}
	if (!g_regex_match_simple("^[A-Za-z][A-Za-z0-9_.-]{0,63}$", id, 0, 0)) {
		g_set_error(err, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
			    "bad device id '%s' (letters, digits, '_.-', at most 64)", id);
		return NULL;
	}

	dev = viod_dev_new(ops, id);
	dev->socket_path = g_strdup(socket);   /* NULL when single */
	if (poll_us != G_MAXUINT64)
		dev->poll_max_ns = (uint32_t)(poll_us * 1000);
	dev->nworkers = (unsigned int)workers;
	if (mem_max)
		dev->mem_max = mem_max;
	for (guint i = 1; parts[i]; i++) {
		const char *key = parts[i], *value = key + strlen(key) + 1;
		int rc;

		if (is_core_option(key))
			continue;
		rc = ops->set_option ? ops->set_option(dev, key, value, err) : -ENOENT;
		if (rc == -ENOENT) {
			g_set_error(err, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
				    "unknown option '%s' for device type %s", key, ops->type);
		} else if (rc < 0 && err && *err) {
			g_prefix_error(err, "%s %s=%s: ", ops->type, key, value);
		}
		if (rc < 0) {
			viod_dev_free(dev);
			return NULL;
		}
	}
	if (ops->init && ops->init(dev, err) < 0) {
		viod_dev_free(dev);
		return NULL;
	}
	return dev;
}

struct viod_dev *viod_device_from_spec(const char *spec, GError **err)
{
	g_auto(GStrv) parts = g_strsplit(spec, ",", -1);

	if (!parts[0] || !*parts[0]) {
		g_set_error(err, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
			    "--device needs TYPE,id=ID,socket=PATH");
		return NULL;
	}
	return device_from_parts(parts, false, err);
}

struct viod_dev *viod_device_from_options(const char *type, const char *const *options,
					  const char *const *extra, GError **err)
{
	g_autoptr(GPtrArray) parts = g_ptr_array_new_with_free_func(g_free);

	g_ptr_array_add(parts, g_strdup(type));
	for (guint i = 0; options && options[i]; i++) {
		g_auto(GStrv) opts = g_strsplit(options[i], ",", -1);

		for (guint j = 0; opts[j]; j++)
			g_ptr_array_add(parts, g_strdup(opts[j]));
	}
	for (guint i = 0; extra && extra[i]; i++)
		g_ptr_array_add(parts, g_strdup(extra[i]));
	g_ptr_array_add(parts, NULL);
	return device_from_parts((char **)parts->pdata, true, err);
}
