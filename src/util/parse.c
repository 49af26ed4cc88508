#include "util/parse.h"

#include <string.h>

gboolean viod_parse_size(const char *s, guint64 *out, GError **err)
{
	g_autofree char *num = g_strdup(s);
	size_t len = strlen(num);
	unsigned int shift = 0;
	guint64 v;

	if (len > 1) {
		switch (g_ascii_toupper(num[len - 1])) {
		case 'K': shift = 10; break;
		case 'M': shift = 20; break;
		case 'G': shift = 30; break;
		case 'T': shift = 40; break;
		default: break;
		}
		if (shift)
			num[len - 1] = '\0';
	}
	if (!g_ascii_string_to_unsigned(num, 10, 1, G_MAXUINT64 >> shift, &v, err))
		return FALSE;
	*out = v << shift;
	return TRUE;
}

gboolean viod_parse_bool(const char *s, bool *out, GError **err)
{
	if (!g_strcmp0(s, "on") || !g_strcmp0(s, "true") || !g_strcmp0(s, "1")) {
		*out = true;
		return TRUE;
	}
	if (!g_strcmp0(s, "off") || !g_strcmp0(s, "false") || !g_strcmp0(s, "0")) {
		*out = false;
		return TRUE;
	}
	g_set_error(err, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
		    "expected on or off, not '%s'", s ? s : "");
	return FALSE;
}
