/*
 * Byte sizes on command lines and in the control store: a decimal number
 * with an optional binary suffix K, M, G or T (case-insensitive).
 */
#ifndef VIOD_UTIL_SIZE_H
#define VIOD_UTIL_SIZE_H

#include <glib.h>

/* Parses s into *out (at least 1, no overflow); FALSE with *err set. */
gboolean viod_parse_size(const char *s, guint64 *out, GError **err);

#endif
