/*
 * Values of device options and control-store keys: byte sizes (a decimal
 * number with an optional binary suffix K, M, G or T, case-insensitive)
 * and switches (on/off, true/false, 1/0).
 */
#ifndef VIOD_UTIL_PARSE_H
#define VIOD_UTIL_PARSE_H

#include <stdbool.h>
#include <glib.h>

/* Parses s into *out (at least 1, no overflow); FALSE with *err set. */
gboolean viod_parse_size(const char *s, guint64 *out, GError **err);
/* Parses on/true/1 or off/false/0 into *out; FALSE with *err set. */
gboolean viod_parse_bool(const char *s, bool *out, GError **err);

#endif
