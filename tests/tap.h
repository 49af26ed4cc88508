/*
 * Minimal TAP producer for the C tests: ok()/is() print one line each,
 * tap_done() prints the plan and returns the exit status.
 */
#ifndef VIOD_TESTS_TAP_H
#define VIOD_TESTS_TAP_H

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>

static unsigned int tap_count, tap_failed;

__attribute__((format(printf, 2, 3), unused))
static bool ok(bool cond, const char *fmt, ...)
{
	va_list ap;

	tap_count++;
	if (!cond)
		tap_failed++;
	printf("%sok %u - ", cond ? "" : "not ", tap_count);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
	return cond;
}

#define is(got, want, name) do {                                            \
	long long g_ = (long long)(got), w_ = (long long)(want);           \
	if (!ok(g_ == w_, "%s", name))                                      \
		printf("#   got %lld, want %lld\n", g_, w_);                 \
} while (0)

__attribute__((unused))
static void tap_diag(const char *msg)
{
	printf("# %s\n", msg);
}

__attribute__((unused))
static int tap_done(void)
{
	printf("1..%u\n", tap_count);
	return tap_failed ? 1 : 0;
}

#endif
