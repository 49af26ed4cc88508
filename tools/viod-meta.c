#include "viod-meta.h"

#include <errno.h>
#include <string.h>

static void dev_free(gpointer p)
{
	struct viod_meta_dev *d = p;

	g_free(d->id);
	g_free(d->type);
	g_free(d->socket);
	g_free(d->spec);
	g_free(d);
}

struct viod_meta *viod_meta_new(void)
{
	struct viod_meta *m = g_new0(struct viod_meta, 1);

	m->devices = g_ptr_array_new_with_free_func(dev_free);
	return m;
}

void viod_meta_free(struct viod_meta *m)
{
	if (!m)
		return;
	g_free(m->control);
	g_ptr_array_unref(m->devices);
	g_free(m);
}

const struct viod_meta_dev *viod_meta_find(const struct viod_meta *m, const char *id)
{
	for (guint i = 0; i < m->devices->len; i++) {
		const struct viod_meta_dev *d = m->devices->pdata[i];

		if (!strcmp(d->id, id))
			return d;
	}
	return NULL;
}

int viod_meta_add(struct viod_meta *m, const char *id, const char *type,
		  const char *socket, const char *spec)
{
	struct viod_meta_dev *d;

	if (viod_meta_find(m, id))
		return -EEXIST;
	d = g_new0(struct viod_meta_dev, 1);
	d->id = g_strdup(id);
	d->type = g_strdup(type);
	d->socket = g_strdup(socket);
	d->spec = g_strdup(spec);
	g_ptr_array_add(m->devices, d);
	return 0;
}

/*
 * GMarkup knows no namespaces: the parser follows xmlns declarations of
 * VIOD_META_NS itself (a prefixed one, or a default one on the element),
 * which is all that libvirt's metadata and the documents viod-libvirt
 * writes use.
 */
struct parse_state {
	struct viod_meta *m;
	char *prefix;           /* "viod:" or "" while inside the element */
	int depth;              /* elements open inside it */
	gboolean done;
	gboolean seen_root;
};

static const char *attr(const char **names, const char **values, const char *name)
{
	for (int i = 0; names[i]; i++)
		if (!strcmp(names[i], name))
			return values[i];
	return NULL;
}

/* The prefix ("P:" or "") under which NAME is VIOD_META_NS's "viod". */
static char *meta_prefix(const char *name, const char **names, const char **values)
{
	const char *colon = strchr(name, ':');
	g_autofree char *decl = NULL;
	const char *ns;

	if (colon) {
		if (strcmp(colon + 1, "viod"))
			return NULL;
		decl = g_strdup_printf("xmlns:%.*s", (int)(colon - name), name);
	} else {
		if (strcmp(name, "viod"))
			return NULL;
		decl = g_strdup("xmlns");
	}
	ns = attr(names, values, decl);
	if (!ns || strcmp(ns, VIOD_META_NS))
		return NULL;
	return colon ? g_strndup(name, (gsize)(colon - name + 1)) : g_strdup("");
}

static void on_start(GMarkupParseContext *ctx, const char *name, const char **names,
		     const char **values, gpointer data, GError **err)
{
	struct parse_state *st = data;
	const char *local;

	if (st->done)
		return;
	if (!st->prefix) {
		st->prefix = meta_prefix(name, names, values);
		/* virDomainGetMetadata returns the element without its
		 * namespace: a root element "viod" can only be ours. */
		if (!st->prefix && !st->seen_root && !strcmp(name, "viod"))
			st->prefix = g_strdup("");
		st->seen_root = TRUE;
		if (st->prefix) {
			st->m = viod_meta_new();
			st->depth = 0;
		}
		return;
	}
	st->depth++;
	if (st->depth != 1 || !g_str_has_prefix(name, st->prefix))
		return;
	local = name + strlen(st->prefix);
	if (!strcmp(local, "control")) {
		const char *path = attr(names, values, "path");

		if (!path || !*path) {
			g_set_error(err, G_MARKUP_ERROR, G_MARKUP_ERROR_INVALID_CONTENT,
				    "viod metadata: control without a path");
			return;
		}
		g_free(st->m->control);
		st->m->control = g_strdup(path);
	} else if (!strcmp(local, "device")) {
		const char *id = attr(names, values, "id"), *type = attr(names, values, "type");
		const char *sock = attr(names, values, "socket"), *spec = attr(names, values, "spec");

		if (!id || !type || !sock || !spec || !*id || !*type || !*sock || !*spec) {
			g_set_error(err, G_MARKUP_ERROR, G_MARKUP_ERROR_INVALID_CONTENT,
				    "viod metadata: a device needs id, type, socket and spec");
			return;
		}
		if (viod_meta_add(st->m, id, type, sock, spec) < 0)
			g_set_error(err, G_MARKUP_ERROR, G_MARKUP_ERROR_INVALID_CONTENT,
				    "viod metadata: device id '%s' twice", id);
	}
}

static void on_end(GMarkupParseContext *ctx, const char *name, gpointer data, GError **err)
{
	struct parse_state *st = data;

	if (!st->prefix || st->done)
		return;
	if (st->depth-- == 0)
		st->done = TRUE;
}

struct viod_meta *viod_meta_parse(const char *xml, gssize len, GError **err)
{
	static const GMarkupParser parser = { .start_element = on_start, .end_element = on_end };
	struct parse_state st = { 0 };
	GMarkupParseContext *ctx = g_markup_parse_context_new(&parser, 0, &st, NULL);
	gboolean okay;

	okay = g_markup_parse_context_parse(ctx, xml, len, err) &&
	       g_markup_parse_context_end_parse(ctx, err);
	g_markup_parse_context_free(ctx);
	g_free(st.prefix);
	if (okay && st.m && !st.m->control) {
		g_set_error(err, G_MARKUP_ERROR, G_MARKUP_ERROR_INVALID_CONTENT,
			    "viod metadata: no control path");
		okay = FALSE;
	}
	if (!okay) {
		viod_meta_free(st.m);
		return NULL;
	}
	return st.m;
}

char *viod_meta_format(const struct viod_meta *m)
{
	GString *s = g_string_new(NULL);
	g_autofree char *ctl = g_markup_escape_text(m->control, -1);

	g_string_append_printf(s, "<" VIOD_META_PREFIX ":viod xmlns:" VIOD_META_PREFIX
			       "=\"" VIOD_META_NS "\">\n  <" VIOD_META_PREFIX
			       ":control path=\"%s\"/>\n", ctl);
	for (guint i = 0; i < m->devices->len; i++) {
		const struct viod_meta_dev *d = m->devices->pdata[i];
		g_autofree char *id = g_markup_escape_text(d->id, -1);
		g_autofree char *type = g_markup_escape_text(d->type, -1);
		g_autofree char *sock = g_markup_escape_text(d->socket, -1);
		g_autofree char *spec = g_markup_escape_text(d->spec, -1);

		g_string_append_printf(s, "  <" VIOD_META_PREFIX ":device id=\"%s\" type=\"%s\" "
				       "socket=\"%s\" spec=\"%s\"/>\n", id, type, sock, spec);
	}
	g_string_append(s, "</" VIOD_META_PREFIX ":viod>\n");
	return g_string_free(s, FALSE);
}
