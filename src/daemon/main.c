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

int main(int argc, char **argv)
{
	g_auto(GStrv) specs = NULL;
	g_autofree char *control = NULL;
	gboolean version = FALSE;
	struct viod_store *store = NULL;
	GOptionEntry entries[] = {
		{ "device", 'd', 0, G_OPTION_ARG_STRING_ARRAY, &specs,
		  "Serve a device (repeatable): TYPE,id=ID,socket=PATH[,poll-us=N][,OPTS]",
		  "SPEC" },
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
		"Example: viod --device rng,id=rng0,socket=/tmp/rng0.sock");
	g_option_context_add_main_entries(ctx, entries, NULL);
	if (!g_option_context_parse(ctx, &argc, &argv, &err))
		return usage_error(err->message);
	if (version) {
		printf("viod %s\n", VIOD_VERSION);
		return 0;
	}
	if (argc > 1)
		return usage_error("unexpected argument");
	if (!specs || !specs[0])
		return usage_error("no --device given");

	g_log_set_default_handler(log_handler, NULL);
	viod_log_verbose = verbose;
	signal(SIGPIPE, SIG_IGN);

	devs = g_ptr_array_new();
	for (guint i = 0; specs[i]; i++) {
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
	for (guint i = 0; i < devs->len; i++) {
		struct viod_dev *dev = devs->pdata[i];
		g_autofree char *path = g_strdup(dev->socket_path);
		int rc = viod_workers_start(dev);

		g_clear_pointer(&dev->socket_path, g_free);
		if (rc < 0) {
			fprintf(stderr, "viod: %s: worker: %s\n", dev->id, g_strerror(-rc));
			status = 1;
			goto out;
		}
		if (viod_server_listen(dev, path, &err) < 0) {
			fprintf(stderr, "viod: %s: %s\n", dev->id, err->message);
			status = 1;
			goto out;
		}
		g_info("%s: %s device on %s", dev->id, dev->ops->type, path);
	}
	{
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
