/* Publishing device state into the control store (control thread). */
#include "control.h"

#include <errno.h>
#include <sys/stat.h>

#include "store/store.h"
#include "vhost/vhost.h"

/* Counters the workers move are published at most this often. */
#define PUBLISH_MS 50

struct control {
	struct viod_store *st;
	GPtrArray *devs;
	guint timer;
};

static struct control ctl;

static char *prefix_of(const struct viod_dev *dev)
{
	return g_strdup_printf("/devices/%s", dev->id);
}

/* Per-queue counters of the queues the device serves. */
static void publish_queues(struct viod_dev *dev, const char *p)
{
	for (unsigned int q = 0; q < dev->num_queues; q++) {
		struct viod_vring *vr = dev->vrings[q];
		g_autofree char *qp = g_strdup_printf("%s/queues/%u", p, q);

		if (!vr)
			continue;
		viod_store_setf_under(ctl.st, qp, "requests", "%" G_GUINT64_FORMAT,
				      (guint64)atomic_load_explicit(&vr->requests, memory_order_relaxed));
		viod_store_setf_under(ctl.st, qp, "bytes", "%" G_GUINT64_FORMAT,
				      (guint64)atomic_load_explicit(&vr->bytes, memory_order_relaxed));
		viod_store_setf_under(ctl.st, qp, "errors", "%" G_GUINT64_FORMAT,
				      (guint64)atomic_load_explicit(&vr->errors, memory_order_relaxed));
		viod_store_setf_under(ctl.st, qp, "in-flight", "%u",
				      atomic_load_explicit(&vr->held_pub, memory_order_relaxed));
	}
}

/*
 * Refreshes a device's keys: as the device's state-change hook
 * (viod_dev_state_changed), which the core calls after a front-end's
 * message that changed state has been answered, so the front-end never
 * waits for the store and watchers see each value a guest writes; and
 * after the workers' counters changed, coalesced to one refresh per
 * PUBLISH_MS. Nothing runs while no device changes.
 */
static void publish(struct viod_dev *dev)
{
	g_autofree char *p = prefix_of(dev);

	viod_store_setf_under(ctl.st, p, "state", "%s",
			      viod_dev_connected(dev) ? "connected" : "waiting");
	viod_store_setf_under(ctl.st, p, "features", "0x%016" G_GINT64_MODIFIER "x",
			      dev->features_acked);
	viod_store_setf_under(ctl.st, p, "status", "0x%02x",
			      dev->status | (atomic_load(&dev->needs_reset) ? 0x40 : 0));
	viod_store_setf_under(ctl.st, p, "connections", "%" G_GUINT64_FORMAT, dev->connections);
	viod_store_setf_under(ctl.st, p, "protocol-errors", "%" G_GUINT64_FORMAT,
			      dev->protocol_errors);
	publish_queues(dev, p);
	if (dev->ops->store_publish)
		dev->ops->store_publish(dev, ctl.st, p);
}

static gboolean publish_all(gpointer data)
{
	ctl.timer = 0;
	for (guint i = 0; i < ctl.devs->len; i++) {
		struct viod_dev *dev = ctl.devs->pdata[i];

		/* Cleared before reading: a change from now on signals again. */
		if (atomic_exchange(&dev->counters_dirty, false))
			publish(dev);
	}
	return G_SOURCE_REMOVE;
}

static void counters_changed(struct viod_dev *dev)
{
	if (!ctl.timer)
		ctl.timer = g_timeout_add(PUBLISH_MS, publish_all, NULL);
}

char *viod_control_default_path(void)
{
	const char *env = g_getenv("VIOD_CONTROL");
	const char *rt = g_getenv("XDG_RUNTIME_DIR");

	/* The same rule as the clients' (viod_store_default_path). */
	if (env && *env)
		return g_strdup(env);
	return g_build_filename(rt && *rt ? rt : "/run", "viod", "control", NULL);
}

struct viod_store *viod_control_start(GPtrArray *devs, const char *path,
				      gboolean explicit, GError **err)
{
	g_autofree char *dir = g_path_get_dirname(path);
	g_autoptr(GError) lerr = NULL;

	if (!explicit && g_mkdir_with_parents(dir, 0700) < 0) {
		g_set_error(err, G_FILE_ERROR, g_file_error_from_errno(errno),
			    "cannot create %s: %s", dir, g_strerror(errno));
		return NULL;
	}
	ctl.st = viod_store_new();
	ctl.devs = devs;
	for (guint i = 0; i < devs->len; i++) {
		struct viod_dev *dev = devs->pdata[i];
		g_autofree char *p = prefix_of(dev);

		viod_store_setf_under(ctl.st, p, "type", "%s", dev->ops->type);
		viod_store_setf_under(ctl.st, p, "socket", "%s",
				      dev->socket_path ? dev->socket_path : "");
		publish(dev);
		if (dev->ops->store_attach)
			dev->ops->store_attach(dev, ctl.st, p);
	}
	if (!viod_store_listen(ctl.st, path, &lerr)) {
		if (explicit) {
			g_propagate_error(err, g_steal_pointer(&lerr));
			viod_store_free(ctl.st);
			ctl.st = NULL;
			return NULL;
		}
		g_warning("control store disabled: %s (use --control PATH)", lerr->message);
	}
	for (guint i = 0; i < devs->len; i++) {
		struct viod_dev *dev = devs->pdata[i];

		dev->on_state_changed = publish;
		dev->on_counters_changed = counters_changed;
	}
	return ctl.st;
}

void viod_control_stop(struct viod_store *st)
{
	if (!st)
		return;
	if (ctl.timer)
		g_source_remove(ctl.timer);
	ctl.timer = 0;
	for (guint i = 0; i < ctl.devs->len; i++) {
		struct viod_dev *dev = ctl.devs->pdata[i];

		dev->on_state_changed = NULL;
		dev->on_counters_changed = NULL;
	}
	viod_store_free(st);
	ctl.st = NULL;
}
