/*
 * viod-libvirt: viod devices for libvirt domains.
 *
 *   xml DOMAIN (--base FILE | --new) DEVICES   print the domain XML
 *   attach DOMAIN DEVICES                      add them to a defined domain
 *   show DOMAIN                                the recorded devices
 *   hook DOMAIN OP SUBOP [EXTRA]               libvirt's QEMU hook (stdin: XML)
 *
 * DEVICES: --rng ID[,OPTS] --balloon ID[,OPTS] --blk ID,path=IMAGE[,OPTS]
 * --net ID,switch=NAME[,mac=MAC][,OPTS] (each repeatable; OPTS are viod's).
 *
 * Each device is a vhost-user socket in RUNDIR/DOMAIN/ (RUNDIR is
 * /run/viod/libvirt): blk and net through libvirt's own vhostuser disk and
 * interface, rng and balloon through <qemu:commandline> (libvirt has no
 * vhost-user element for them); guest RAM becomes a shared memfd, and the
 * domain's <metadata> records the devices (viod-meta.h). The hook starts a
 * supervisor for the domain's viod on "prepare begin" and stops it on
 * "release end", from the XML on stdin alone: a hook must never call back
 * into libvirt, which waits for it.
 *
 * Exit status: 0 success, 1 runtime failure, 2 a malformed command line.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <libxml/parser.h>
#include <libxml/tree.h>

#include "viod-config.h"
#include "viod-meta.h"

#define EXIT_RUNTIME 1
#define EXIT_USAGE 2
#define QEMU_NS "http://libvirt.org/schemas/domain/qemu/1.0"
#define SOCKET_WAIT_MS 10000
#define STOP_WAIT_MS 10000

static struct {
	char *uri, *base, *emulator, *kernel, *initrd, *cmdline, *run_dir, *viod;
	char *qemu_conf;
	gboolean new_domain, version;
	int memory;
	char **rng, **balloon, **blk, **net, **net_port;
} opt = { .memory = 512 };

static G_NORETURN void die(const char *fmt, ...) G_GNUC_PRINTF(1, 2);

static G_NORETURN void die(const char *fmt, ...)
{
	va_list ap;

	fputs("viod-libvirt: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(EXIT_RUNTIME);
}

static G_NORETURN void usage(const char *fmt, ...) G_GNUC_PRINTF(1, 2);

static G_NORETURN void usage(const char *fmt, ...)
{
	va_list ap;

	fputs("viod-libvirt: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs(" (see viod-libvirt --help)\n", stderr);
	exit(EXIT_USAGE);
}

/* A name that is safe as one path component and in a viod spec. */
static gboolean name_valid(const char *s)
{
	if (!*s || *s == '.' || strlen(s) > 64)
		return FALSE;
	for (; *s; s++)
		if (!g_ascii_isalnum(*s) && !strchr("_-.", *s))
			return FALSE;
	return TRUE;
}

static char *domain_dir(const char *domain)
{
	return g_build_filename(opt.run_dir, domain, NULL);
}

/* ---- devices wanted ---- */

struct want {
	char *type, *id, *socket, *spec;
	char *mac;              /* net: the interface's address */
	gboolean host_only;     /* --net-port: a switch port for the host, no interface */
};

static void want_free(gpointer p)
{
	struct want *w = p;

	g_free(w->type);
	g_free(w->id);
	g_free(w->socket);
	g_free(w->spec);
	g_free(w->mac);
	g_free(w);
}

/* A locally administered unicast MAC derived from the domain and the id. */
static char *default_mac(const char *domain, const char *id)
{
	g_autofree char *key = g_strdup_printf("%s/%s", domain, id);
	guint h = g_str_hash(key);

	return g_strdup_printf("52:54:00:%02x:%02x:%02x", (h >> 16) & 0xff, (h >> 8) & 0xff,
			       h & 0xff);
}

static gboolean mac_valid(const char *s)
{
	unsigned b[6];
	char end;

	return strlen(s) == 17 &&
	       sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5],
		      &end) == 6 &&
	       !(b[0] & 1);
}

/*
 * "ID[,k=v...]" for TYPE: the viod spec with the socket in the domain's
 * directory. blk needs path= (or backend=); net needs switch=NAME, which
 * becomes backend=switch:NAME, and takes mac= for both sides.
 */
static struct want *parse_want(const char *domain, const char *type, const char *arg)
{
	g_auto(GStrv) parts = g_strsplit(arg, ",", -1);
	g_autofree char *dir = domain_dir(domain);
	g_autoptr(GString) spec = g_string_new(NULL);
	struct want *w = g_new0(struct want, 1);
	gboolean has_path = FALSE, has_switch = FALSE;

	w->type = g_strdup(type);
	w->id = g_strdup(parts[0]);
	if (!name_valid(w->id))
		usage("--%s: bad device id '%s'", type, w->id);
	w->socket = g_strdup_printf("%s/%s.sock", dir, w->id);
	g_string_printf(spec, "%s,id=%s,socket=%s", type, w->id, w->socket);
	for (int i = 1; parts[i]; i++) {
		const char *kv = parts[i];

		if (!*kv || strchr(kv, '=') == NULL)
			usage("--%s %s: '%s' is not KEY=VALUE", type, w->id, kv);
		if (g_str_has_prefix(kv, "id=") || g_str_has_prefix(kv, "socket="))
			usage("--%s %s: %.*s is viod-libvirt's to choose", type, w->id,
			      (int)(strchr(kv, '=') - kv), kv);
		if (!strcmp(type, "net") && g_str_has_prefix(kv, "switch=")) {
			if (!name_valid(kv + 7))
				usage("--net %s: bad switch name '%s'", w->id, kv + 7);
			g_string_append_printf(spec, ",backend=switch:%s", kv + 7);
			has_switch = TRUE;
			continue;
		}
		if (!strcmp(type, "net") && g_str_has_prefix(kv, "mac=")) {
			if (!mac_valid(kv + 4))
				usage("--net %s: bad unicast MAC '%s'", w->id, kv + 4);
			g_free(w->mac);
			w->mac = g_ascii_strdown(kv + 4, -1);
			continue;
		}
		if (g_str_has_prefix(kv, "path=") || g_str_has_prefix(kv, "backend="))
			has_path = TRUE;
		g_string_append_printf(spec, ",%s", kv);
	}
	if (!strcmp(type, "blk") && !has_path)
		usage("--blk %s: needs path=IMAGE", w->id);
	if (!strcmp(type, "net")) {
		if (!has_switch && !has_path)
			usage("--net %s: needs switch=NAME", w->id);
		if (!w->mac)
			w->mac = default_mac(domain, w->id);
		g_string_append_printf(spec, ",mac=%s", w->mac);
	}
	w->spec = g_strdup(spec->str);
	return w;
}

static GPtrArray *wanted(const char *domain)
{
	GPtrArray *a = g_ptr_array_new_with_free_func(want_free);
	struct {
		const char *type;
		char **args;
	} kinds[] = { { "rng", opt.rng }, { "balloon", opt.balloon }, { "blk", opt.blk },
		      { "net", opt.net }, { "net", opt.net_port } };

	for (gsize k = 0; k < G_N_ELEMENTS(kinds); k++)
		for (int i = 0; kinds[k].args && kinds[k].args[i]; i++) {
			struct want *w = parse_want(domain, kinds[k].type, kinds[k].args[i]);

			w->host_only = kinds[k].args == opt.net_port;
			g_ptr_array_add(a, w);
		}
	return a;
}

/* ---- QEMU ---- */

/*
 * The generic vhost-user device of EMULATOR: upstream's name since QEMU
 * 10.2, else the older one that patched builds make user-creatable.
 */
static char *generic_device(const char *emulator)
{
	const char *argv[] = { emulator, "-device", "help", NULL };
	static const char *const names[] = { "vhost-user-test-device-pci",
					     "vhost-user-device-pci" };
	g_autofree char *out = NULL;
	g_autoptr(GError) err = NULL;

	if (!g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_STDERR_TO_DEV_NULL, NULL, NULL,
			  &out, NULL, NULL, &err))
		die("cannot run %s -device help: %s", emulator, err->message);
	for (gsize i = 0; i < G_N_ELEMENTS(names); i++) {
		g_autofree char *quoted = g_strdup_printf("\"%s\"", names[i]);

		if (strstr(out, quoted))
			return g_strdup(names[i]);
	}
	die("%s has no generic vhost-user device (vhost-user-test-device-pci, or a "
	    "patched QEMU's vhost-user-device-pci): the balloon needs one", emulator);
}

/* ---- domain XML (libxml2) ---- */

static gboolean is(xmlNode *n, const char *name)
{
	return n->type == XML_ELEMENT_NODE && !xmlStrcmp(n->name, BAD_CAST name);
}

static xmlNode *child(xmlNode *parent, const char *name)
{
	for (xmlNode *n = parent->children; n; n = n->next)
		if (is(n, name) && (!n->ns || !n->ns->prefix))
			return n;
	return NULL;
}

static xmlNode *child_or_new(xmlNode *parent, const char *name)
{
	xmlNode *n = child(parent, name);

	return n ? n : xmlNewChild(parent, NULL, BAD_CAST name, NULL);
}

static void remove_children(xmlNode *parent, const char *name)
{
	xmlNode *n, *next;

	for (n = parent->children; n; n = next) {
		next = n->next;
		if (is(n, name)) {
			xmlUnlinkNode(n);
			xmlFreeNode(n);
		}
	}
}

static xmlNode *add(xmlNode *parent, const char *name, ...) G_GNUC_NULL_TERMINATED;

/* A new child NAME with the attribute pairs that follow, NULL-ended. */
static xmlNode *add(xmlNode *parent, const char *name, ...)
{
	xmlNode *n = xmlNewChild(parent, NULL, BAD_CAST name, NULL);
	const char *k, *v;
	va_list ap;

	va_start(ap, name);
	while ((k = va_arg(ap, const char *))) {
		v = va_arg(ap, const char *);
		xmlNewProp(n, BAD_CAST k, BAD_CAST v);
	}
	va_end(ap);
	return n;
}

static char *prop(xmlNode *n, const char *name)
{
	xmlChar *v = xmlGetProp(n, BAD_CAST name);
	char *s = v ? g_strdup((const char *)v) : NULL;

	xmlFree(v);
	return s;
}

static char *new_domain_xml(const char *domain)
{
	g_autofree char *name = g_markup_escape_text(domain, -1);
	GString *s = g_string_new(NULL);

	g_string_append_printf(s,
		"<domain type='qemu'>\n"
		"  <name>%s</name>\n"
		"  <memory unit='MiB'>%d</memory>\n"
		"  <vcpu>1</vcpu>\n"
		"  <os><type arch='x86_64' machine='q35'>hvm</type></os>\n"
		"  <features><acpi/></features>\n"
		"  <on_poweroff>destroy</on_poweroff>\n"
		"  <on_reboot>destroy</on_reboot>\n"
		"  <on_crash>destroy</on_crash>\n"
		"  <devices></devices>\n"
		"</domain>\n", name, opt.memory);
	return g_string_free(s, FALSE);
}

/* The first vdX that no disk of DEVICES targets yet. */
static char *free_vd(xmlNode *devices)
{
	for (char c = 'a'; c <= 'z'; c++) {
		g_autofree char *dev = g_strdup_printf("vd%c", c);
		gboolean used = FALSE;

		for (xmlNode *d = devices->children; d && !used; d = d->next) {
			xmlNode *t;
			g_autofree char *v = NULL;

			if (!is(d, "disk") || !(t = child(d, "target")))
				continue;
			v = prop(t, "dev");
			used = v && !strcmp(v, dev);
		}
		if (!used)
			return g_steal_pointer(&dev);
	}
	die("no free vdX target for another disk");
}

static void add_reconnect(xmlNode *source)
{
	add(source, "reconnect", "enabled", "yes", "timeout", "1", NULL);
}

/*
 * Devices in qemu:commandline need a PCI address of their own: QEMU would
 * give them the first free slot of the root bus, which libvirt has handed
 * out to its own devices meanwhile. libvirt allocates root-bus slots from
 * the bottom, so viod's devices take slots from CMDLINE_SLOT0 up.
 */
#define CMDLINE_SLOT0 0x10
#define CMDLINE_SLOT_LAST 0x1d

/* SLOT, or the next one that neither libvirt's <address> elements on
 * bus 0 nor an earlier addr= in qemu:commandline use. */
static int next_slot(xmlNode *devices, xmlNode *cmd, xmlNs *qns, int slot)
{
	for (; slot <= CMDLINE_SLOT_LAST; slot++) {
		g_autofree char *arg = g_strdup_printf(",addr=0x%x", slot);
		gboolean used = FALSE;

		for (xmlNode *d = devices->children; d && !used; d = d->next) {
			xmlNode *a = d->type == XML_ELEMENT_NODE ? child(d, "address") : NULL;
			g_autofree char *b = a ? prop(a, "bus") : NULL, *s = a ? prop(a, "slot") : NULL;

			used = b && s && g_ascii_strtoll(b, NULL, 16) == 0 &&
			       g_ascii_strtoll(s, NULL, 16) == slot;
		}
		for (xmlNode *a = cmd ? cmd->children : NULL; a && !used; a = a->next) {
			g_autofree char *v = a->ns == qns && is(a, "arg") ? prop(a, "value") : NULL;

			used = v && g_str_has_suffix(v, arg);
		}
		if (!used)
			return slot;
	}
	die("no free PCI slot in 0x%x..0x%x for a viod device", CMDLINE_SLOT0, CMDLINE_SLOT_LAST);
}

static void add_qemu_args(xmlNode *cmdline, xmlNs *qns, const char *a, const char *b)
{
	xmlNode *n = xmlNewChild(cmdline, qns, BAD_CAST "arg", NULL);

	xmlNewProp(n, BAD_CAST "value", BAD_CAST a);
	n = xmlNewChild(cmdline, qns, BAD_CAST "arg", NULL);
	xmlNewProp(n, BAD_CAST "value", BAD_CAST b);
}

/* Replaces the viod element of <metadata> (creating both as needed) with M. */
static void set_metadata(xmlDoc *doc, xmlNode *root, const struct viod_meta *m)
{
	xmlNode *md = child_or_new(root, "metadata"), *n, *next, *copy;
	g_autofree char *text = viod_meta_format(m);
	xmlDoc *frag = xmlReadMemory(text, (int)strlen(text), NULL, NULL,
				     XML_PARSE_NONET | XML_PARSE_NOBLANKS);

	if (!frag)
		die("internal error: cannot parse the metadata written");
	for (n = md->children; n; n = next) {
		next = n->next;
		if (n->type == XML_ELEMENT_NODE && n->ns &&
		    !xmlStrcmp(n->ns->href, BAD_CAST VIOD_META_NS)) {
			xmlUnlinkNode(n);
			xmlFreeNode(n);
		}
	}
	copy = xmlDocCopyNode(xmlDocGetRootElement(frag), doc, 1);
	xmlAddChild(md, copy);
	xmlFreeDoc(frag);
}

/*
 * DOMAIN's XML TEXT with the devices W added: the returned string is a
 * complete domain for virDomainDefineXML. Devices that the metadata
 * already records stay; a wanted id that is recorded already is an error.
 */
static char *edit_domain(const char *domain, const char *text, GPtrArray *w)
{
	xmlDoc *doc = xmlReadMemory(text, (int)strlen(text), NULL, NULL,
				    XML_PARSE_NONET | XML_PARSE_NOBLANKS);
	g_autoptr(GError) err = NULL;
	g_autoptr(viod_meta) m = NULL;
	g_autofree char *dir = domain_dir(domain), *emulator = NULL, *generic = NULL;
	xmlNode *root, *devices, *n, *cmd = NULL;
	const char *bus = "pcie.0";
	int slot = CMDLINE_SLOT0;
	xmlNs *qns;
	xmlChar *out;
	int len;
	char *ret;

	if (!doc || !(root = xmlDocGetRootElement(doc)) || !is(root, "domain"))
		die("not a libvirt domain XML");
	m = viod_meta_parse(text, -1, &err);
	if (err)
		die("%s", err->message);
	if (!m) {
		m = viod_meta_new();
		m->control = g_build_filename(dir, "control", NULL);
	}
	n = child_or_new(root, "name");
	xmlNodeSetContent(n, BAD_CAST domain);
	devices = child_or_new(root, "devices");
	n = child(devices, "emulator");
	if (n) {
		xmlChar *c = xmlNodeGetContent(n);

		emulator = g_strdup((const char *)c);
		xmlFree(c);
		if (opt.emulator)
			xmlNodeSetContent(n, BAD_CAST opt.emulator);
	} else {
		n = xmlNewChild(devices, NULL, BAD_CAST "emulator", NULL);
		xmlNodeSetContent(n, BAD_CAST(opt.emulator ? opt.emulator
							   : "/usr/bin/qemu-system-x86_64"));
	}
	if (opt.emulator) {
		g_free(emulator);
		emulator = g_strdup(opt.emulator);
	}
	if (!emulator)
		emulator = g_strdup("/usr/bin/qemu-system-x86_64");
	/* Direct kernel boot, if asked. */
	if (opt.kernel || opt.initrd || opt.cmdline) {
		xmlNode *os = child_or_new(root, "os");
		const char *v[] = { opt.kernel, opt.initrd, opt.cmdline };
		const char *names[] = { "kernel", "initrd", "cmdline" };

		for (int i = 0; i < 3; i++)
			if (v[i])
				xmlNodeSetContent(child_or_new(os, names[i]), BAD_CAST v[i]);
	}
	n = child(root, "os");
	if (n && (n = child(n, "type"))) {
		g_autofree char *machine = prop(n, "machine");

		if (machine && !strstr(machine, "q35"))
			bus = "pci.0";
	}
	/* vhost-user needs guest RAM that QEMU can pass on: a shared memfd. */
	remove_children(root, "memoryBacking");
	n = xmlNewChild(root, NULL, BAD_CAST "memoryBacking", NULL);
	add(n, "source", "type", "memfd", NULL);
	add(n, "access", "mode", "shared", NULL);

	qns = xmlSearchNsByHref(doc, root, BAD_CAST QEMU_NS);
	if (!qns)
		qns = xmlNewNs(root, BAD_CAST QEMU_NS, BAD_CAST "qemu");
	for (n = root->children; n && !cmd; n = n->next)
		if (is(n, "commandline") && n->ns == qns)
			cmd = n;

	for (guint i = 0; i < w->len; i++) {
		struct want *x = w->pdata[i];
		g_autofree char *chardev = g_strdup_printf("viod-%s", x->id);
		g_autofree char *chr = g_strdup_printf("socket,id=%s,path=%s,reconnect-ms=1000",
						       chardev, x->socket);
		xmlNode *d, *src;

		if (viod_meta_add(m, x->id, x->type, x->socket, x->spec) < 0)
			die("%s already has a viod device '%s'", domain, x->id);
		if (!strcmp(x->type, "blk")) {
			g_autofree char *vd = free_vd(devices);

			d = add(devices, "disk", "type", "vhostuser", "device", "disk", NULL);
			add(d, "driver", "name", "qemu", "type", "raw", NULL);
			src = add(d, "source", "type", "unix", "path", x->socket, NULL);
			add_reconnect(src);
			add(d, "target", "dev", vd, "bus", "virtio", NULL);
		} else if (!strcmp(x->type, "net") && x->host_only) {
			/* viod serves it; a host-side program connects. */
		} else if (!strcmp(x->type, "net")) {
			d = add(devices, "interface", "type", "vhostuser", NULL);
			add(d, "mac", "address", x->mac, NULL);
			src = add(d, "source", "type", "unix", "path", x->socket, "mode", "client",
				  NULL);
			add_reconnect(src);
			add(d, "model", "type", "virtio", NULL);
		} else {
			g_autofree char *dev = NULL;

			if (!cmd)
				cmd = xmlNewChild(root, qns, BAD_CAST "commandline", NULL);
			if (slot > CMDLINE_SLOT_LAST)
				die("more than %d viod devices in qemu:commandline",
				    CMDLINE_SLOT_LAST - CMDLINE_SLOT0 + 1);
			slot = next_slot(devices, cmd, qns, slot);
			if (!strcmp(x->type, "rng")) {
				dev = g_strdup_printf("vhost-user-rng-pci,chardev=%s,bus=%s,addr=0x%x",
						      chardev, bus, slot);
			} else {
				if (!generic)
					generic = generic_device(emulator);
				/* Inflate, deflate, stats, reporting; config is
				 * struct virtio_balloon_config (virtio 1.2, 5.5.4). */
				dev = g_strdup_printf("%s,virtio-id=5,num_vqs=4,config_size=16,"
						      "chardev=%s,bus=%s,addr=0x%x", generic, chardev,
						      bus, slot);
				remove_children(devices, "memballoon");
				add(devices, "memballoon", "model", "none", NULL);
			}
			add_qemu_args(cmd, qns, "-chardev", chr);
			add_qemu_args(cmd, qns, "-device", dev);
			slot++;
		}
	}
	set_metadata(doc, root, m);
	xmlDocDumpFormatMemory(doc, &out, &len, 1);
	ret = g_strndup((const char *)out, (gsize)len);
	xmlFree(out);
	xmlFreeDoc(doc);
	return ret;
}

/* ---- libvirt ---- */

static void quiet_errors(void *data, virErrorPtr e)
{
}

static virConnectPtr open_conn(gboolean ro)
{
	virConnectPtr c;

	virSetErrorFunc(NULL, quiet_errors);
	c = ro ? virConnectOpenReadOnly(opt.uri) : virConnectOpen(opt.uri);
	if (!c)
		die("cannot connect to %s: %s", opt.uri ? opt.uri : "the default hypervisor",
		    virGetLastErrorMessage());
	return c;
}

static virDomainPtr lookup(virConnectPtr c, const char *domain)
{
	virDomainPtr d = virDomainLookupByName(c, domain);

	if (!d)
		die("no domain '%s': %s", domain, virGetLastErrorMessage());
	return d;
}

/* ---- commands ---- */

static int cmd_xml(const char *domain, GPtrArray *w)
{
	g_autofree char *text = NULL, *xml = NULL;
	g_autoptr(GError) err = NULL;

	if (!!opt.base == !!opt.new_domain)
		usage("xml: give one of --base FILE and --new");
	if (opt.base) {
		if (!g_file_get_contents(opt.base, &text, NULL, &err))
			die("%s", err->message);
	} else {
		text = new_domain_xml(domain);
	}
	xml = edit_domain(domain, text, w);
	fputs(xml, stdout);
	return 0;
}

static int cmd_attach(const char *domain, GPtrArray *w)
{
	virConnectPtr c;
	virDomainPtr d, nd;
	char *text;
	g_autofree char *xml = NULL;

	if (opt.base || opt.new_domain)
		usage("attach: --base and --new are for xml");
	if (w->len == 0)
		usage("attach: no devices (--rng, --balloon, --blk, --net)");
	c = open_conn(FALSE);
	d = lookup(c, domain);
	text = virDomainGetXMLDesc(d, VIR_DOMAIN_XML_INACTIVE | VIR_DOMAIN_XML_SECURE);
	if (!text)
		die("%s: %s", domain, virGetLastErrorMessage());
	xml = edit_domain(domain, text, w);
	free(text);
	nd = virDomainDefineXML(c, xml);
	if (!nd)
		die("%s: cannot define the new XML: %s", domain, virGetLastErrorMessage());
	if (virDomainIsActive(d) == 1)
		fprintf(stderr, "viod-libvirt: %s is running: the devices come with its next start\n",
			domain);
	virDomainFree(nd);
	virDomainFree(d);
	virConnectClose(c);
	return 0;
}

static int cmd_show(const char *domain)
{
	virConnectPtr c = open_conn(TRUE);
	virDomainPtr d = lookup(c, domain);
	char *text = virDomainGetMetadata(d, VIR_DOMAIN_METADATA_ELEMENT, VIOD_META_NS, 0);
	g_autoptr(viod_meta) m = NULL;
	g_autoptr(GError) err = NULL;

	if (!text)
		die("%s has no viod devices", domain);
	m = viod_meta_parse(text, -1, &err);
	free(text);
	if (!m)
		die("%s: %s", domain, err ? err->message : "no viod metadata");
	printf("control %s\n", m->control);
	for (guint i = 0; i < m->devices->len; i++) {
		const struct viod_meta_dev *x = m->devices->pdata[i];

		printf("%-8s %-10s %s\n", x->type, x->id, x->spec);
	}
	virDomainFree(d);
	virConnectClose(c);
	return 0;
}

/* ---- the hook ---- */

/* The group QEMU runs as: qemu.conf's `group = "NAME"`, else Debian's default. */
static gid_t qemu_gid(void)
{
	g_autofree char *text = NULL, *name = NULL;
	g_auto(GStrv) lines = NULL;
	struct group *g;

	if (g_file_get_contents(opt.qemu_conf, &text, NULL, NULL)) {
		lines = g_strsplit(text, "\n", -1);
		for (int i = 0; lines[i]; i++) {
			char *l = g_strstrip(lines[i]), *q1, *q2;

			if (!g_str_has_prefix(l, "group") || !strchr(l, '='))
				continue;
			l += 5;
			while (*l == ' ' || *l == '\t')
				l++;
			if (*l != '=' || !(q1 = strchr(l, '"')) || !(q2 = strchr(q1 + 1, '"')))
				continue;
			g_free(name);
			name = g_strndup(q1 + 1, (gsize)(q2 - q1 - 1));
		}
	}
	if (!name)
		name = g_strdup("libvirt-qemu");
	if (name[0] == '+') {
		gchar *end;
		guint64 v = g_ascii_strtoull(name + 1, &end, 10);

		if (*end || end == name + 1)
			die("%s: bad group '%s'", opt.qemu_conf, name);
		return (gid_t)v;
	}
	g = getgrnam(name);
	if (!g)
		die("no group '%s' (QEMU's group, from %s)", name, opt.qemu_conf);
	return g->gr_gid;
}

static char *pid_file(const char *dir)
{
	return g_build_filename(dir, "supervisor.pid", NULL);
}

static volatile sig_atomic_t stopping;
static volatile pid_t viod_child;

static void on_stop(int sig)
{
	stopping = 1;
	if (viod_child > 0)
		kill(viod_child, SIGTERM);
}

/*
 * The supervisor: runs viod with the domain's devices and starts it again
 * when it dies (not faster than once a second), until SIGTERM, which it
 * passes on to viod before it exits. Its viod dies with it (PDEATHSIG).
 * The sockets come out 0770 (umask 007) in the setgid directory, so they
 * belong to QEMU's group, which may connect; others cannot reach them.
 */
static G_NORETURN void supervise(const char *dir, const struct viod_meta *m)
{
	g_autoptr(GPtrArray) argv = g_ptr_array_new();
	struct sigaction sa = { .sa_handler = on_stop };
	g_autofree char *pf = pid_file(dir), *pid = g_strdup_printf("%d\n", (int)getpid());

	g_ptr_array_add(argv, opt.viod);
	g_ptr_array_add(argv, (char *)"--control");
	g_ptr_array_add(argv, m->control);
	for (guint i = 0; i < m->devices->len; i++) {
		const struct viod_meta_dev *x = m->devices->pdata[i];

		g_ptr_array_add(argv, (char *)"--device");
		g_ptr_array_add(argv, x->spec);
	}
	g_ptr_array_add(argv, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	if (!g_file_set_contents(pf, pid, -1, NULL))
		_exit(EXIT_RUNTIME);
	while (!stopping) {
		time_t t0 = time(NULL);
		int st;
		pid_t p = fork();

		if (p < 0) {
			sleep(1);
			continue;
		}
		if (p == 0) {
			sigset_t none;

			sigemptyset(&none);
			sigprocmask(SIG_SETMASK, &none, NULL);
			signal(SIGTERM, SIG_DFL);
			signal(SIGINT, SIG_DFL);
			prctl(PR_SET_PDEATHSIG, SIGTERM);
			umask(007);
			execv(opt.viod, (char **)argv->pdata);
			fprintf(stderr, "viod-libvirt: cannot run %s: %s\n", opt.viod,
				g_strerror(errno));
			_exit(127);
		}
		viod_child = p;
		if (stopping)
			kill(p, SIGTERM);
		while (waitpid(p, &st, 0) < 0 && errno == EINTR)
			;
		viod_child = 0;
		if (stopping)
			break;
		fprintf(stderr, "viod-libvirt: viod (pid %d) %s %d; starting it again\n", (int)p,
			WIFSIGNALED(st) ? "killed by signal" : "exited with",
			WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
		if (time(NULL) - t0 < 1)
			sleep(1);
	}
	unlink(pf);
	_exit(0);
}

/* Starts the supervisor in a session of its own, every fd redirected, so
 * that libvirt, which waits for the hook's output, does not wait for it. */
static void spawn_supervisor(const char *dir, const char *log, const struct viod_meta *m)
{
	pid_t p = fork();
	int st;

	if (p < 0)
		die("fork: %s", g_strerror(errno));
	if (p == 0) {
		int in = open("/dev/null", O_RDONLY | O_CLOEXEC);
		int out = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);

		if (in < 0 || out < 0 || setsid() < 0)
			_exit(EXIT_RUNTIME);
		dup2(in, 0);
		dup2(out, 1);
		dup2(out, 2);
		for (int fd = 3; fd < 1024; fd++)
			close(fd);
		if (fork() != 0)
			_exit(0);
		supervise(dir, m);
	}
	while (waitpid(p, &st, 0) < 0 && errno == EINTR)
		;
}

static pid_t read_pid(const char *dir)
{
	g_autofree char *pf = pid_file(dir), *text = NULL;
	gint64 v;

	if (!g_file_get_contents(pf, &text, NULL, NULL))
		return 0;
	v = g_ascii_strtoll(text, NULL, 10);
	return v > 1 && v < G_MAXINT ? (pid_t)v : 0;
}

/* PID exists and is no zombie. */
static gboolean alive(pid_t pid)
{
	g_autofree char *path = g_strdup_printf("/proc/%d/stat", (int)pid);
	g_autofree char *text = NULL;
	const char *rp;

	if (!g_file_get_contents(path, &text, NULL, NULL))
		return FALSE;
	rp = strrchr(text, ')');
	return rp && rp[1] == ' ' && rp[2] != 'Z';
}

/* Stops DIR's supervisor (SIGTERM, then SIGKILL), then removes DIR. */
static void stop_domain(const char *dir)
{
	pid_t pid = read_pid(dir);
	g_autoptr(GDir) d = NULL;
	const char *name;

	if (pid > 0 && alive(pid)) {
		kill(pid, SIGTERM);
		for (int i = 0; i < STOP_WAIT_MS / 50 && alive(pid); i++)
			g_usleep(50 * 1000);
		if (alive(pid)) {
			fprintf(stderr, "viod-libvirt: supervisor %d ignores SIGTERM: SIGKILL\n",
				(int)pid);
			kill(pid, SIGKILL);
		}
	}
	d = g_dir_open(dir, 0, NULL);
	while (d && (name = g_dir_read_name(d))) {
		g_autofree char *path = g_build_filename(dir, name, NULL);

		unlink(path);
	}
	if (rmdir(dir) < 0 && errno != ENOENT)
		fprintf(stderr, "viod-libvirt: cannot remove %s: %s\n", dir, g_strerror(errno));
}

static gboolean sockets_ready(const struct viod_meta *m)
{
	struct stat sb;

	if (stat(m->control, &sb) < 0 || !S_ISSOCK(sb.st_mode))
		return FALSE;
	for (guint i = 0; i < m->devices->len; i++) {
		const struct viod_meta_dev *x = m->devices->pdata[i];

		if (stat(x->socket, &sb) < 0 || !S_ISSOCK(sb.st_mode))
			return FALSE;
	}
	return TRUE;
}

/* Every socket the metadata names lies in DIR, and each spec is
 * "TYPE,id=ID,socket=SOCKET[,...]" for its device: the hook runs as root
 * on XML that any user allowed to define domains wrote. */
static void check_paths(const char *dir, const struct viod_meta *m)
{
	g_autofree char *prefix = g_strconcat(dir, "/", NULL);

	if (!g_str_has_prefix(m->control, prefix) || strchr(m->control + strlen(prefix), '/'))
		die("control socket %s is not in %s", m->control, dir);
	for (guint i = 0; i < m->devices->len; i++) {
		const struct viod_meta_dev *x = m->devices->pdata[i];

		g_autofree char *head = g_strdup_printf("%s,id=%s,socket=%s", x->type, x->id,
							x->socket);
		const char *rest = x->spec + strlen(head);

		if (!g_str_has_prefix(x->socket, prefix) ||
		    strchr(x->socket + strlen(prefix), '/'))
			die("device %s: socket %s is not in %s", x->id, x->socket, dir);
		/* viod gets the spec: it must name the socket checked above. */
		if (!g_str_has_prefix(x->spec, head) || (*rest && *rest != ',') ||
		    strstr(rest, ",socket=") || strstr(rest, ",id="))
			die("device %s: its spec does not start with %s (and name no other "
			    "id or socket)", x->id, head);
	}
}

/*
 * Creates RUN_DIR (0755) and lets everyone search it and its parent:
 * QEMU, not root, must reach the sockets below. libvirtd runs hooks with
 * umask 077, and viod's default control directory (/run/viod) is 0700;
 * a search bit lists nothing, and each domain's directory keeps others out.
 */
static void open_path(const char *run_dir)
{
	g_autofree char *parent = g_path_get_dirname(run_dir);
	const char *dirs[] = { parent, run_dir };
	struct stat sb;

	if (g_mkdir_with_parents(run_dir, 0755) < 0)
		die("%s: %s", run_dir, g_strerror(errno));
	for (gsize i = 0; i < G_N_ELEMENTS(dirs); i++) {
		if (stat(dirs[i], &sb) < 0)
			die("%s: %s", dirs[i], g_strerror(errno));
		if ((sb.st_mode & 0111) != 0111 && chmod(dirs[i], (sb.st_mode & 07777) | 0111) < 0)
			die("%s: %s", dirs[i], g_strerror(errno));
	}
}

static int cmd_hook(const char *domain, const char *op, const char *sub)
{
	g_autoptr(GString) xml = g_string_new(NULL);
	g_autoptr(viod_meta) m = NULL;
	g_autoptr(GError) err = NULL;
	g_autofree char *dir = NULL, *log = NULL;
	char buf[65536];
	size_t n;

	while ((n = fread(buf, 1, sizeof(buf), stdin)) > 0)
		g_string_append_len(xml, buf, (gssize)n);
	m = viod_meta_parse(xml->str, (gssize)xml->len, &err);
	if (!m) {
		if (err)
			die("%s: %s", domain, err->message);
		return 0;       /* not ours */
	}
	if (!name_valid(domain))
		die("domain name '%s' cannot name a directory", domain);
	dir = domain_dir(domain);
	check_paths(dir, m);
	log = g_strdup_printf("%s.log", dir);
	if (!strcmp(op, "prepare") && !strcmp(sub, "begin")) {
		gid_t gid = qemu_gid();

		if (read_pid(dir) > 0 && alive(read_pid(dir)))
			die("%s: a supervisor (pid %d) is running already", domain,
			    (int)read_pid(dir));
		stop_domain(dir);
		open_path(opt.run_dir);
		/* setgid: the sockets viod creates take the directory's group. */
		if (mkdir(dir, 0700) < 0 || chown(dir, 0, gid) < 0 || chmod(dir, 02750) < 0)
			die("%s: %s", dir, g_strerror(errno));
		spawn_supervisor(dir, log, m);
		for (int i = 0; i < SOCKET_WAIT_MS / 50 && !sockets_ready(m); i++)
			g_usleep(50 * 1000);
		if (!sockets_ready(m)) {
			g_autofree char *text = NULL;

			stop_domain(dir);
			g_file_get_contents(log, &text, NULL, NULL);
			die("%s: viod's sockets did not appear within %d s; its log %s:\n%s",
			    domain, SOCKET_WAIT_MS / 1000, log, text ? text : "");
		}
	} else if (!strcmp(op, "release") && !strcmp(sub, "end")) {
		stop_domain(dir);
	}
	return 0;
}

int main(int argc, char **argv)
{
	GOptionEntry entries[] = {
		{ "connect", 'c', 0, G_OPTION_ARG_STRING, &opt.uri,
		  "libvirt connection URI (attach, show)", "URI" },
		{ "base", 'b', 0, G_OPTION_ARG_FILENAME, &opt.base,
		  "xml: start from this domain XML", "FILE" },
		{ "new", 'n', 0, G_OPTION_ARG_NONE, &opt.new_domain,
		  "xml: start from a minimal q35 domain", NULL },
		{ "memory", 'm', 0, G_OPTION_ARG_INT, &opt.memory,
		  "xml --new: guest RAM in MiB (default 512)", "MIB" },
		{ "emulator", 'e', 0, G_OPTION_ARG_FILENAME, &opt.emulator,
		  "the QEMU binary (default: the domain's, else /usr/bin/qemu-system-x86_64)",
		  "PATH" },
		{ "kernel", 0, 0, G_OPTION_ARG_FILENAME, &opt.kernel, "direct kernel boot: kernel",
		  "PATH" },
		{ "initrd", 0, 0, G_OPTION_ARG_FILENAME, &opt.initrd, "direct kernel boot: initrd",
		  "PATH" },
		{ "cmdline", 0, 0, G_OPTION_ARG_STRING, &opt.cmdline,
		  "direct kernel boot: kernel command line", "ARGS" },
		{ "rng", 0, 0, G_OPTION_ARG_STRING_ARRAY, &opt.rng, "an rng device", "ID[,OPTS]" },
		{ "balloon", 0, 0, G_OPTION_ARG_STRING_ARRAY, &opt.balloon, "a balloon device",
		  "ID[,OPTS]" },
		{ "blk", 0, 0, G_OPTION_ARG_STRING_ARRAY, &opt.blk, "a block device",
		  "ID,path=IMAGE[,OPTS]" },
		{ "net", 0, 0, G_OPTION_ARG_STRING_ARRAY, &opt.net,
		  "a net device on viod's switch NAME", "ID,switch=NAME[,mac=MAC][,OPTS]" },
		{ "net-port", 0, 0, G_OPTION_ARG_STRING_ARRAY, &opt.net_port,
		  "a port of viod's switch NAME for a host program, not the guest",
		  "ID,switch=NAME[,mac=MAC][,OPTS]" },
		{ "run-dir", 0, 0, G_OPTION_ARG_FILENAME, &opt.run_dir,
		  "where the domains' socket directories live (default " VIOD_LIBVIRT_RUNDIR ")",
		  "DIR" },
		{ "viod", 0, 0, G_OPTION_ARG_FILENAME, &opt.viod,
		  "hook: the viod binary (default " VIOD_LIBVIRT_VIOD ")", "PATH" },
		{ "qemu-conf", 0, 0, G_OPTION_ARG_FILENAME, &opt.qemu_conf,
		  "hook: libvirt's qemu.conf, for QEMU's group (default "
		  "/etc/libvirt/qemu.conf)", "PATH" },
		{ "version", 'V', 0, G_OPTION_ARG_NONE, &opt.version,
		  "Print the version and exit", NULL },
		{ NULL },
	};
	g_autoptr(GOptionContext) ctx = g_option_context_new("COMMAND DOMAIN [ARGS]");
	g_autoptr(GError) err = NULL;
	g_autoptr(GPtrArray) w = NULL;
	const char *cmd, *domain;

	g_option_context_set_summary(ctx, "viod devices for libvirt domains (see viod-libvirt(1)).");
	g_option_context_set_description(ctx,
		"Commands:\n"
		"  xml DOMAIN --base FILE|--new DEVICES  print the domain XML with the devices\n"
		"  attach DOMAIN DEVICES                 add the devices to a defined domain\n"
		"  show DOMAIN                           the domain's viod devices\n"
		"  hook DOMAIN OP SUBOP [EXTRA]          libvirt's QEMU hook (XML on stdin)\n"
		"\n"
		"Exit status: 0 success, 1 runtime failure, 2 bad arguments.\n");
	g_option_context_add_main_entries(ctx, entries, NULL);
	if (!g_option_context_parse(ctx, &argc, &argv, &err))
		usage("%s", err->message);
	if (opt.version) {
		printf("viod-libvirt %s\n", VIOD_VERSION);
		return 0;
	}
	if (!opt.run_dir)
		opt.run_dir = g_strdup(VIOD_LIBVIRT_RUNDIR);
	if (!opt.viod)
		opt.viod = g_strdup(VIOD_LIBVIRT_VIOD);
	if (!opt.qemu_conf)
		opt.qemu_conf = g_strdup("/etc/libvirt/qemu.conf");
	if (opt.memory <= 0)
		usage("bad --memory %d", opt.memory);
	if (argc < 3)
		usage("missing COMMAND or DOMAIN");
	cmd = argv[1];
	domain = argv[2];
	if (!strcmp(cmd, "hook")) {
		/* libvirt's arguments: DOMAIN OP SUBOP EXTRA. */
		if (argc < 5)
			usage("hook: DOMAIN OP SUBOP [EXTRA]");
		return cmd_hook(domain, argv[3], argv[4]);
	}
	if (argc > 3)
		usage("%s: unexpected argument '%s'", cmd, argv[3]);
	if (!name_valid(domain))
		usage("bad domain name '%s' (letters, digits, '_', '-', '.')", domain);
	if (!strcmp(cmd, "show"))
		return cmd_show(domain);
	w = wanted(domain);
	if (!strcmp(cmd, "xml"))
		return cmd_xml(domain, w);
	if (!strcmp(cmd, "attach"))
		return cmd_attach(domain, w);
	usage("unknown command '%s' (xml, attach, show, hook)", cmd);
}
