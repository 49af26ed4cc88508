/*
 * A stand-in for viod's control store, for testing balloonctl without a
 * guest: serves fixture.c's tree on SOCKET until SIGINT or SIGTERM.
 *   balloon0  1 GiB guest; actual follows target over about a second
 *   slow0     1 GiB guest; actual follows target but never passes 1000
 *   nomem0    no front-end yet: guest memory unknown, no statistics
 *   rng0      an rng device
 * Prints "ready" on stdout once the socket accepts connections.
 * Usage: fake-viod SOCKET
 */
#include <glib-unix.h>
#include <signal.h>
#include <stdio.h>

#include "fixture.h"

static gboolean on_signal(gpointer loop)
{
	g_main_loop_quit(loop);
	return G_SOURCE_REMOVE;
}

int main(int argc, char **argv)
{
	const struct fake_balloon balloons[] = {
		{ .id = "balloon0", .state = "connected", .guest_memory = 1u << 30,
		  .cap = G_MAXUINT64, .animate = TRUE,
		  .stats_updated = g_get_monotonic_time() - 2 * G_USEC_PER_SEC },
		{ .id = "slow0", .state = "connected", .guest_memory = 1u << 30,
		  .cap = 1000, .animate = TRUE, .stats_updated = -1 },
		{ .id = "nomem0", .state = "waiting", .guest_memory = 0,
		  .cap = G_MAXUINT64, .animate = TRUE, .stats_updated = -1 },
	};
	g_autoptr(GMainLoop) loop = NULL;
	g_autoptr(GError) err = NULL;
	struct viod_store *st;

	if (argc != 2) {
		fprintf(stderr, "usage: fake-viod SOCKET\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	loop = g_main_loop_new(NULL, FALSE);
	st = viod_store_new();
	for (gsize i = 0; i < G_N_ELEMENTS(balloons); i++)
		fixture_add_balloon(st, &balloons[i]);
	fixture_add_rng(st, "rng0");
	if (!viod_store_listen(st, argv[1], &err)) {
		fprintf(stderr, "fake-viod: %s\n", err->message);
		return 1;
	}
	g_unix_signal_add(SIGINT, on_signal, loop);
	g_unix_signal_add(SIGTERM, on_signal, loop);
	printf("ready\n");
	fflush(stdout);
	g_main_loop_run(loop);
	fixture_clear();
	viod_store_free(st);
	return 0;
}
