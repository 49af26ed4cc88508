/*
 * One listening UNIX socket per device, on the control thread's GLib loop.
 * One front-end at a time: while a front-end is connected the listening
 * socket is not watched (a second one waits in the backlog). When the
 * front-end goes away, or breaks the protocol, the device is reset and the
 * socket accepts the next one (QEMU's reconnect relies on this).
 */
#include "vhost.h"
#include "util/listen.h"

#include <errno.h>
#include <glib-unix.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static gboolean on_accept(gint fd, GIOCondition cond, gpointer data);

static void watch_listen(struct viod_dev *dev)
{
	dev->listen_watch = g_unix_fd_add(dev->listen_fd, G_IO_IN, on_accept, dev);
}

void viod_server_disconnect(struct viod_dev *dev, const char *why)
{
	if (dev->conn_fd < 0)
		return;
	if (why)
		g_message("%s: front-end disconnected: %s", dev->id, why);
	else
		g_info("%s: front-end disconnected", dev->id);
	if (dev->conn_watch)
		g_source_remove(dev->conn_watch);
	dev->conn_watch = 0;
	close(dev->conn_fd);
	dev->conn_fd = -1;
	viod_rxbuf_reset(&dev->rx, true);
	viod_dev_reset_conn(dev);
	if (dev->listen_fd >= 0)
		watch_listen(dev);
	viod_dev_state_changed(dev);
}

/* Processes every complete message buffered on the connection. */
static gboolean on_conn(gint fd, GIOCondition cond, gpointer data)
{
	static struct viod_ratelimit rl;
	struct viod_dev *dev = data;

	for (;;) {
		enum viod_rx_result r = viod_msg_read(fd, &dev->rx);
		struct viod_vu_msg *m = &dev->rx.msg;
		const char *why = NULL;
		char reason[160];
		int rc;

		if (r == VIOD_RX_AGAIN) {
			if (cond & (G_IO_HUP | G_IO_ERR))
				break;
			return G_SOURCE_CONTINUE;
		}
		if (r == VIOD_RX_EOF) {
			dev->conn_watch = 0;
			viod_server_disconnect(dev, NULL);
			return G_SOURCE_REMOVE;
		}
		if (r == VIOD_RX_ERROR) {
			dev->protocol_errors++;
			dev->conn_watch = 0;
			viod_server_disconnect(dev, "malformed message framing");
			return G_SOURCE_REMOVE;
		}
		rc = viod_msg_check(dev, m, dev->rx.nfds, &why);
		if (rc == 0) {
			g_debug("%s: %s", dev->id, viod_vu_request_name(m->hdr.request));
			dev->in_message = true;
			rc = viod_handle_msg(dev, m, dev->rx.fds, dev->rx.nfds);
			dev->in_message = false;
			viod_dev_state_flush(dev);
			viod_rxbuf_reset(&dev->rx, false);
			if (rc < 0) {
				snprintf(reason, sizeof(reason), "%s failed: %s",
					 viod_vu_request_name(m->hdr.request),
					 g_strerror(-rc));
				why = reason;
			}
		} else {
			snprintf(reason, sizeof(reason), "request %u (%s): %s",
				 m->hdr.request, viod_vu_request_name(m->hdr.request), why);
			why = reason;
			viod_rxbuf_reset(&dev->rx, true);
		}
		if (rc < 0) {
			dev->protocol_errors++;
			if (!viod_ratelimit_ok(&rl))
				why = "protocol error";
			dev->conn_watch = 0;
			viod_server_disconnect(dev, why);
			return G_SOURCE_REMOVE;
		}
	}
	dev->conn_watch = 0;
	viod_server_disconnect(dev, NULL);
	return G_SOURCE_REMOVE;
}

static gboolean on_accept(gint fd, GIOCondition cond, gpointer data)
{
	struct viod_dev *dev = data;
	int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

	if (c < 0) {
		if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
			g_warning("%s: accept: %s", dev->id, g_strerror(errno));
		return G_SOURCE_CONTINUE;
	}
	dev->conn_fd = c;
	dev->connections++;
	viod_rxbuf_reset(&dev->rx, false);
	dev->conn_watch = g_unix_fd_add(c, G_IO_IN | G_IO_HUP | G_IO_ERR, on_conn, dev);
	g_info("%s: front-end connected", dev->id);
	dev->listen_watch = 0;
	viod_dev_state_changed(dev);
	return G_SOURCE_REMOVE;
}

/* The path appears only once connections to it can succeed (listen.h). */
int viod_server_listen(struct viod_dev *dev, const char *path, GError **err)
{
	int fd = viod_unix_listen(path, 0, 4, NULL, err);

	if (fd < 0)
		return fd;
	dev->listen_fd = fd;
	dev->socket_path = g_strdup(path);
	watch_listen(dev);
	return 0;
}

void viod_server_close(struct viod_dev *dev)
{
	viod_server_disconnect(dev, NULL);
	if (dev->listen_watch)
		g_source_remove(dev->listen_watch);
	dev->listen_watch = 0;
	if (dev->listen_fd >= 0) {
		close(dev->listen_fd);
		dev->listen_fd = -1;
		if (dev->socket_path)
			unlink(dev->socket_path);
	}
}
