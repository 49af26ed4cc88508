/*
 * viod-store: the control store from the shell, as xenstore-read,
 * -write, -ls and -watch are for XenStore.
 *
 *   viod-store [--socket PATH] read PATH...
 *   viod-store [--socket PATH] write PATH VALUE
 *   viod-store [--socket PATH] ls PATH
 *   viod-store [--socket PATH] watch PATH [--count N] [--timeout S]
 *
 * Exit status: 0 success, 1 runtime failure (no daemon, no such key, a
 * rejected write), 2 bad arguments; errors are one line on stderr.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "viod/store.h"

static int fail(int status, const char *what, const GError *err)
{
	fprintf(stderr, "viod-store: %s%s%s\n", what, err ? ": " : "", err ? err->message : "");
	return status;
}

int main(int argc, char **argv)
{
	g_autofree char *socket = NULL;
	gint count = 0, timeout = 0;
	GOptionEntry entries[] = {
		{ "socket", 's', 0, G_OPTION_ARG_FILENAME, &socket,
		  "viod's control socket (default: as balloonctl)", "PATH" },
		{ "count", 'n', 0, G_OPTION_ARG_INT, &count,
		  "watch: stop after N changes", "N" },
		{ "timeout", 't', 0, G_OPTION_ARG_INT, &timeout,
		  "watch: stop after S seconds without a change", "S" },
		{ NULL }
	};
	g_autoptr(GOptionContext) ctx = g_option_context_new("read PATH... | write PATH VALUE | ls PATH | watch PATH");
	g_autoptr(GError) err = NULL;
	g_autoptr(ViodStoreClient) c = NULL;
	const char *cmd;

	g_option_context_add_main_entries(ctx, entries, NULL);
	if (!g_option_context_parse(ctx, &argc, &argv, &err))
		return fail(2, err->message, NULL);
	if (argc < 3 || count < 0 || timeout < 0)
		return fail(2, "expected a command and a path (see --help)", NULL);
	cmd = argv[1];
	if ((!g_strcmp0(cmd, "write") && argc != 4) ||
	    ((!g_strcmp0(cmd, "ls") || !g_strcmp0(cmd, "watch")) && argc != 3) ||
	    (g_strcmp0(cmd, "read") && g_strcmp0(cmd, "write") && g_strcmp0(cmd, "ls") &&
	     g_strcmp0(cmd, "watch")))
		return fail(2, "bad command or argument count (see --help)", NULL);
	if (!socket)
		socket = viod_store_default_path();
	c = viod_store_client_connect(socket, &err);
	if (!c)
		return fail(1, socket, err);

	if (!g_strcmp0(cmd, "read")) {
		for (int i = 2; i < argc; i++) {
			g_autofree char *v = viod_store_client_read(c, argv[i], &err);

			if (!v)
				return fail(1, argv[i], err);
			printf("%s\n", v);
		}
	} else if (!g_strcmp0(cmd, "write")) {
		if (!viod_store_client_write(c, argv[2], argv[3], &err))
			return fail(1, argv[2], err);
	} else if (!g_strcmp0(cmd, "ls")) {
		g_auto(GStrv) names = viod_store_client_list(c, argv[2], &err);

		if (!names)
			return fail(1, argv[2], err);
		for (guint i = 0; names[i]; i++)
			printf("%s\n", names[i]);
	} else {
		int seen = 0;

		if (!viod_store_client_watch(c, argv[2], &err))
			return fail(1, argv[2], err);
		for (;;) {
			g_autoptr(ViodStoreEvent) ev =
				viod_store_client_next_event(c, timeout ? timeout * 1000 : -1, &err);

			if (!ev)
				return err ? fail(1, "watch", err) : 0;
			if (ev->kind == VIOD_STORE_EVENT_SYNCED)
				continue;
			printf("%s %s\n", ev->path, ev->kind == VIOD_STORE_EVENT_CHANGED ? ev->value : "(removed)");
			fflush(stdout);
			if (count && ++seen >= count)
				break;
		}
	}
	return 0;
}
