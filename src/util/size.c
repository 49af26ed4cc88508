#include "util/size.h"

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
