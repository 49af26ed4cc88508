/*
 * viod: serves virtio devices to vhost-user front-ends. The control plane
 * (sockets, messages, signals, the control store) runs on this thread's
 * GLib main loop; each device's data path runs on its own worker threads
 * (src/vhost/vhost.h says who owns what).
 */
#include <errno.h>
#include <glib-unix.h>
#include <locale.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "control.h"
#include "options.h"
#include "vhost/vhost.h"
#include "viod-config.h"

static gboolean verbose;

static void log_handler(const gchar *domain, GLogLevelFlags level,
			const gchar *msg, gpointer data)
{
	const char *tag = "";

	if ((level & (G_LOG_LEVEL_DEBUG | G_LOG_LEVEL_INFO)) && !verbose)
		return;
	if (level & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL))
		tag = "error: ";
	else if (level & G_LOG_LEVEL_WARNING)
		tag = "warning: ";
	fprintf(stderr, "viod: %s%s\n", tag, msg);
}

static gboolean on_signal(gpointer loop)
{
	g_main_loop_quit(loop);
	return G_SOURCE_CONTINUE;
}

static int usage_error(const char *msg)
{
	fprintf(stderr, "viod: %s (see viod --help)\n", msg);
	return 2;
}

/* A connected --fd's front-end left: nothing more to serve. */
static GMainLoop *main_loop;

static void on_frontend_gone(struct viod_dev *dev)
{
	g_info("%s: front-end gone, exiting", dev->id);
	if (main_loop)
		g_main_loop_quit(main_loop);
}

/*
 * --print-capabilities, before any other parsing: vhost-user.rst wants
 * every other option and argument ignored, so argv is only searched for
 * the type (--type=T or --type T), after the program's name (viod-TYPE).
 * -1 when argv does not ask for capabilities, else the exit status.
 */
static int print_capabilities(int argc, char **argv)
{
	const char *name = NULL, *type;
	bool asked = false;
	int rc;

	for (int i = 1; i < argc && strcmp(argv[i], "--"); i++) {
		if (!strcmp(argv[i], "--print-capabilities"))
			asked = true;
		else if (!strncmp(argv[i], "--type=", 7))
			name = argv[i] + 7;
		else if (!strcmp(argv[i], "--type") && i + 1 < argc)
			name = argv[++i];
	}
	if (!asked)
		return -1;
	type = name ? viod_backend_type(name) : viod_backend_type_of_program(argv[0]);
	if (!type) {
		g_autofree char *msg = name ?
			g_strdup_printf("--print-capabilities: unknown device type '%s'", name) :
			g_strdup("--print-capabilities needs a device type: --type=TYPE, "
				 "or run viod as viod-TYPE");
		return usage_error(msg);
	}
	rc = viod_backend_print_capabilities(type);
	if (rc < 0) {
		fprintf(stderr, "viod: cannot write the capabilities: %s\n", g_strerror(-rc));
		return 1;
	}
	return 0;
}

/* Options of single-device mode (vhost-user.rst's back-end conventions). */
struct single_opts {
	char *type;
	char *socket_path;
	char *fd_arg;
	int fd;                  /* from fd_arg; -1 without */
	char **device_options;
	char *blk_file;
	gboolean read_only;
};

static void single_opts_clear(struct single_opts *o)
{
	g_free(o->type);
	g_free(o->socket_path);
	g_free(o->fd_arg);
	g_strfreev(o->device_options);
	g_free(o->blk_file);
}

/*
 * The single device, from the program name or --type and its options, or
 * NULL with *err set. argv0_type: the type the program name implies.
 */
static struct viod_dev *single_device(struct single_opts *o, const char *argv0_type,
				      GError **err)
{
	const char *type = argv0_type;
	g_autoptr(GPtrArray) extra = g_ptr_array_new_with_free_func(g_free);

	if (o->type) {
		const char *t = viod_backend_type(o->type);

		if (!t) {
			g_autofree char *known = viod_device_type_list();

			g_set_error(err, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
				    "unknown device type '%s' (known: %s; block for blk)",
				    o->type, known);
			return NULL;
		}
		if (type && strcmp(t, type)) {
			g_set_error(err, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
				    "--type=%s, but this program serves %s", o->type, type);
			return NULL;
		}
		type = t;
	}
	if (!type) {
		g_set_error(err, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
			    "single-device mode (--socket-path, --fd, --device-options, "
			    "--blk-file, --read-only) needs a device type: --type=TYPE, "
			    "or run viod as viod-TYPE");
		return NULL;
	}
	if (!o->socket_path == !o->fd_arg) {
		g_set_error(err, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
			    "give one of --socket-path and --fd");
		return NULL;
	}
	if (o->fd_arg) {
		gint64 fd;

		if (!g_ascii_string_to_signed(o->fd_arg, 10, 0, G_MAXINT, &fd, err)) {
			g_prefix_error(err, "--fd: ");
			return NULL;
		}
		o->fd = (int)fd;
	}
	if ((o->blk_file || o->read_only) && !viod_backend_is_block(type)) {
		g_set_error(err, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
			    "--blk-file and --read-only are for the block type, not %s", type);
		return NULL;
	}
	if (o->blk_file)
		g_ptr_array_add(extra, g_strconcat("path=", o->blk_file, NULL));
	if (o->read_only)
		g_ptr_array_add(extra, g_strdup("read-only=on"));
	g_ptr_array_add(extra, NULL);
	return viod_device_from_options(type, (const char *const *)o->device_options,
					(const char *const *)extra->pdata, err);
}

int main(int argc, char **argv)
{
	g_auto(GStrv) specs = NULL;
	g_autofree char *control = NULL;
	gboolean version = FALSE, print_caps = FALSE;
	struct single_opts single __attribute__((cleanup(single_opts_clear))) = { .fd = -1 };
	const char *argv0_type;
	bool single_mode;
	struct viod_store *store = NULL;
	GOptionEntry entries[] = {
		{ "device", 'd', 0, G_OPTION_ARG_STRING_ARRAY, &specs,
		  "Serve a device (repeatable): TYPE,id=ID,socket=PATH[,poll-us=N][,OPTS]",
		  "SPEC" },
		{ "type", 0, 0, G_OPTION_ARG_STRING, &single.type,
		  "Single-device mode: the device type (as viod-TYPE implies it)", "TYPE" },
		{ "socket-path", 0, 0, G_OPTION_ARG_FILENAME, &single.socket_path,
		  "Single-device mode: listen on this socket", "PATH" },
		{ "fd", 0, 0, G_OPTION_ARG_STRING, &single.fd_arg,
		  "Single-device mode: serve this inherited UNIX socket, listening or "
		  "connected (exit when a connected one closes)", "FDNUM" },
		{ "device-options", 'o', 0, G_OPTION_ARG_STRING_ARRAY, &single.device_options,
		  "Single-device mode: device options as in --device after TYPE "
		  "(key=value,...; repeatable)", "OPTS" },
		{ "blk-file", 0, 0, G_OPTION_ARG_FILENAME, &single.blk_file,
		  "Single-device mode, block: the image (path=)", "PATH" },
		{ "read-only", 0, 0, G_OPTION_ARG_NONE, &single.read_only,
		  "Single-device mode, block: serve it read-only (read-only=on)", NULL },
		{ "print-capabilities", 0, 0, G_OPTION_ARG_NONE, &print_caps,
		  "Print the type's vhost-user back-end capabilities (JSON) and exit",
		  NULL },
		{ "control", 'c', 0, G_OPTION_ARG_FILENAME, &control,
		  "Control store socket (default $VIOD_CONTROL, else "
		  "$XDG_RUNTIME_DIR/viod/control, else /run/viod/control)", "PATH" },
		{ "verbose", 'v', 0, G_OPTION_ARG_NONE, &verbose,
		  "Log connections and requests", NULL },
		{ "version", 'V', 0, G_OPTION_ARG_NONE, &version,
		  "Print the version and exit", NULL },
		{ NULL }
	};
	g_autoptr(GOptionContext) ctx = NULL;
	g_autoptr(GError) err = NULL;
	g_autoptr(GMainLoop) loop = NULL;
	GPtrArray *devs;
	int status = 0;

	setlocale(LC_ALL, "");
	status = print_capabilities(argc, argv);
	if (status >= 0)
		return status;
	status = 0;
	argv0_type = viod_backend_type_of_program(argv[0]);
	ctx = g_option_context_new("- virtio devices over vhost-user");
	g_option_context_set_summary(ctx,
		"Options of every device: poll-us=N (adaptive polling bound),\n"
		"  workers=N (data-path threads, default 1), mem-max=SIZE (cap on the\n"
		"  guest memory a front-end may map; default the host's RAM)\n"
		"Device types:\n"
		"  balloon  options: must-tell-host, stats, deflate-on-oom, reporting\n"
		"           (on|off, all on by default), stats-interval=SECONDS (5),\n"
		"           target=PAGES (initial balloon size)\n"
		"  blk      options: path=IMAGE or backend=null,size=SIZE; read-only=on,\n"
		"           serial=STR, logical-block-size=N, physical-block-size=N,\n"
		"           num-queues=N, direct=auto|on|off, cache=writeback|writethrough,\n"
		"           discard=on|off\n"
		"  net      options: backend=switch:NAME (viod's own switch between the\n"
		"           net devices naming it) or backend=tap:IFNAME; mac=MAC,\n"
		"           queue-pairs=N, mtu=N (1500), offloads=on|off\n"
		"  rng      options: max-bytes=N, period=MS\n"
		"Single-device mode (QEMU's vhost-user.rst back-end program conventions):\n"
		"  one device, its type from the program's name (viod-rng, viod-balloon,\n"
		"  viod-blk, viod-net) or --type, its socket from --socket-path or --fd;\n"
		"  options from --device-options (id defaults to the type) and, for\n"
		"  block, --blk-file and --read-only. The control store is served only\n"
		"  with --control. --print-capabilities ignores every other option.\n"
		"Examples: viod --device rng,id=rng0,socket=/tmp/rng0.sock\n"
		"          viod-blk --socket-path=/tmp/d0.sock --blk-file=disk.img --read-only\n"
		"          viod --type=rng --fd=3 --device-options=max-bytes=1024,period=100");
	g_option_context_add_main_entries(ctx, entries, NULL);
	if (!g_option_context_parse(ctx, &argc, &argv, &err))
		return usage_error(err->message);
	if (version) {
		printf("viod %s\n", VIOD_VERSION);
		return 0;
	}
	if (argc > 1)
		return usage_error("unexpected argument");
	single_mode = argv0_type || single.type || single.socket_path || single.fd_arg ||
		      single.device_options || single.blk_file || single.read_only;
	if (single_mode && specs)
		return usage_error("--device serves several devices; it does not mix with "
				   "--type, --socket-path, --fd, --device-options, or viod-TYPE");
	if (!single_mode && (!specs || !specs[0]))
		return usage_error("no --device given (or --socket-path/--fd with a type)");

	g_log_set_default_handler(log_handler, NULL);
	viod_log_verbose = verbose;
	signal(SIGPIPE, SIG_IGN);

	devs = g_ptr_array_new();
	if (single_mode) {
		struct viod_dev *dev = single_device(&single, argv0_type, &err);

		if (!dev) {
			status = usage_error(err->message);
			goto out;
		}
		g_ptr_array_add(devs, dev);
	}
	for (guint i = 0; specs && specs[i]; i++) {
		struct viod_dev *dev = viod_device_from_spec(specs[i], &err);

		if (!dev) {
			status = usage_error(err->message);
			goto out;
		}
		g_ptr_array_add(devs, dev);
		for (guint j = 0; j + 1 < devs->len; j++) {
			struct viod_dev *o = devs->pdata[j];

			if (!g_strcmp0(o->id, dev->id) ||
			    !g_strcmp0(o->socket_path, dev->socket_path)) {
				status = usage_error("two devices share an id or a socket");
				goto out;
			}
		}
	}

	loop = g_main_loop_new(NULL, FALSE);
	main_loop = loop;
	for (guint i = 0; i < devs->len; i++) {
		struct viod_dev *dev = devs->pdata[i];
		g_autofree char *path = g_strdup(single_mode ? single.socket_path : dev->socket_path);
		int rc = viod_workers_start(dev);

		g_clear_pointer(&dev->socket_path, g_free);
		if (rc < 0) {
			fprintf(stderr, "viod: %s: worker: %s\n", dev->id, g_strerror(-rc));
			status = 1;
			goto out;
		}
		if (path) {
			rc = viod_server_listen(dev, path, &err);
		} else {
			dev->on_frontend_gone = on_frontend_gone;
			rc = viod_server_adopt(dev, single.fd, &err);
		}
		if (rc < 0) {
			fprintf(stderr, "viod: %s: %s\n", dev->id, err->message);
			status = 1;
			goto out;
		}
		if (path)
			g_info("%s: %s device on %s", dev->id, dev->ops->type, path);
		else
			g_info("%s: %s device on fd %d", dev->id, dev->ops->type, single.fd);
	}
	/* One process per device: a default store socket would be contended. */
	if (!single_mode || control) {
		g_autofree char *path = control ? g_strdup(control) : viod_control_default_path();

		store = viod_control_start(devs, path, control != NULL, &err);
		if (!store && control) {
			fprintf(stderr, "viod: control store: %s\n", err->message);
			status = 1;
			goto out;
		}
		g_clear_error(&err);
	}
	g_unix_signal_add(SIGTERM, on_signal, loop);
	g_unix_signal_add(SIGINT, on_signal, loop);
	g_unix_signal_add(SIGHUP, on_signal, loop);
	g_main_loop_run(loop);
out:
	main_loop = NULL;
	viod_control_stop(store);
	for (guint i = 0; i < devs->len; i++) {
		struct viod_dev *dev = devs->pdata[i];

		viod_server_close(dev);
		viod_workers_stop(dev);
		if (dev->ops->fini)
			dev->ops->fini(dev);
		viod_dev_free(dev);
	}
	g_ptr_array_free(devs, TRUE);
	return status;
}
