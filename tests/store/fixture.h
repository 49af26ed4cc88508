/*
 * A fake daemon's key tree for the control-store tests: the state the
 * examples in proto/examples/ are written against (balloon0, a 1 GiB
 * guest with stats; rng0), and for fake-viod also balloons whose `actual`
 * follows `target` over about a second, or stalls.
 */
#ifndef VIOD_TESTS_STORE_FIXTURE_H
#define VIOD_TESTS_STORE_FIXTURE_H

#include "store/store.h"

struct fake_balloon {
	const char *id;
	const char *state;          /* "connected" or "waiting" */
	guint64 guest_memory;       /* bytes; 0: no front-end */
	guint64 cap;                /* actual never exceeds this many pages */
	gboolean animate;           /* actual follows target on a timer */
	gint64 stats_updated;       /* stats/updated; < 0: no statistics */
};

/* balloon0 (as in the examples, not animated) and rng0. */
void fixture_populate(struct viod_store *st);

/* Adds one balloon; its state lives until fixture_clear(). */
void fixture_add_balloon(struct viod_store *st, const struct fake_balloon *b);
void fixture_add_rng(struct viod_store *st, const char *id);

/* Stops the timers and frees the balloons' state. */
void fixture_clear(void);

#endif
