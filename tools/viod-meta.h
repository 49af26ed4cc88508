/*
 * The viod metadata of a libvirt domain: which viod devices the domain
 * has, their sockets and `viod --device` specs, and the control socket of
 * the domain's viod. One element in the domain's <metadata>:
 *
 *   <viod:viod xmlns:viod="urn:viod:libvirt:1">
 *     <viod:control path="/run/viod/libvirt/DOMAIN/control"/>
 *     <viod:device id="rng0" type="rng" socket="..." spec="rng,id=rng0,socket=..."/>
 *   </viod:viod>
 *
 * Shared by viod-libvirt (which writes it and, in the hook, reads it from
 * the domain XML libvirt gives on stdin) and balloonctl --domain.
 */
#ifndef VIOD_TOOLS_META_H
#define VIOD_TOOLS_META_H

#include <glib.h>

#define VIOD_META_NS "urn:viod:libvirt:1"
#define VIOD_META_PREFIX "viod"

struct viod_meta_dev {
	char *id, *type, *socket, *spec;
};

struct viod_meta {
	char *control;
	GPtrArray *devices;     /* of struct viod_meta_dev */
};

struct viod_meta *viod_meta_new(void);
void viod_meta_free(struct viod_meta *m);
typedef struct viod_meta viod_meta; /* for g_autoptr */
G_DEFINE_AUTOPTR_CLEANUP_FUNC(viod_meta, viod_meta_free)

/* Adds a copy of the fields; the device's id must be new (else -EEXIST). */
int viod_meta_add(struct viod_meta *m, const char *id, const char *type,
		  const char *socket, const char *spec);
const struct viod_meta_dev *viod_meta_find(const struct viod_meta *m, const char *id);

/*
 * Parses XML that holds a viod element of VIOD_META_NS anywhere (the
 * element alone, or a whole domain), or whose root is "viod" without a
 * namespace (virDomainGetMetadata strips it).
 * Returns NULL with *err unset if there is none, NULL with *err set if it
 * is malformed (no control path, a device without id, type, socket or
 * spec, a duplicate id).
 */
struct viod_meta *viod_meta_parse(const char *xml, gssize len, GError **err);

/* The element, with the namespace declared on it (for <metadata>). */
char *viod_meta_format(const struct viod_meta *m);

#endif
