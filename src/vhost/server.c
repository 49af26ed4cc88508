/*
 * One listening UNIX socket per device, on the control thread's GLib
 * loop. One front-end at a time: while a front-end is connected the
 * listening socket is not watched (a second one waits in the backlog).
 * When the front-end goes away, or breaks the protocol, the device is
 * reset and the socket accepts the next one (QEMU's reconnect relies on
 * this).
 *
 * Fairness and deferral: a connection is read at most CONN_MSG_BATCH messages
 * at a time before the loop serves other sources, so a flooding
 * front-end cannot starve another device's. A request that runs on the
 * device's worker and whose reply (or ack) the front-end awaits pauses
 * reading that connection until the worker completes it; so does a
 * backlog of MAX_OUTSTANDING commands. While paused only hang-ups are
 * watched. Nothing here ever waits for a worker.
 */
#include "vhost.h"
#include "util/listen.h"

#include <errno.h>
#include <fcntl.h>
#include <glib-unix.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define CONN_MSG_BATCH 16u
#define MAX_OUTSTANDING 64u

static gboolean on_accept(gint fd, GIOCondition cond, gpointer data);
static gboolean on_conn(gint fd, GIOCondition cond, gpointer data);

static void watch_listen(struct viod_dev *dev)
{
	dev->listen_watch = g_unix_fd_add(dev->listen_fd, G_IO_IN, on_accept, dev);
}

static bool conn_paused(const struct viod_dev *dev)
{
	return dev->waiting || dev->outstanding >= MAX_OUTSTANDING;
}

/* Watches the connection for messages, or only for a hang-up while paused. */
static void conn_watch(struct viod_dev *dev)
{
	GIOCondition cond = G_IO_HUP | G_IO_ERR;

	if (dev->conn_watch)
		g_source_remove(dev->conn_watch);
	dev->conn_watch = 0;
	if (dev->conn_fd < 0)
		return;
	if (!conn_paused(dev))
		cond |= G_IO_IN;
	dev->conn_watch = g_unix_fd_add(dev->conn_fd, cond, on_conn, dev);
}

void viod_server_disconnect(struct viod_dev *dev, const char *why)
{
	struct viod_cmd *reset;

	if (dev->conn_fd < 0)
		return;
	if (why)
		viod_dev_warn(dev, "front-end disconnected: %s", why);
	else
		viod_dev_info(dev, false, "front-end disconnected");
	if (dev->conn_watch)
		g_source_remove(dev->conn_watch);
	dev->conn_watch = 0;
	close(dev->conn_fd);
	dev->conn_fd = -1;
	viod_rxbuf_reset(&dev->rx, true);
	/* Completions still to come belong to the old connection. */
	dev->conn_gen++;
	dev->waiting = NULL;
	dev->outstanding = 0;

	reset = g_new0(struct viod_cmd, 1);
	reset->kind = CMD_RESET_CONN;
	reset->reply_fd = -1;
	reset->gen = UINT64_MAX;
	viod_cmd_submit(dev, reset);

	pthread_mutex_lock(&dev->backend_lock);
	if (dev->backend_fd >= 0)
		close(dev->backend_fd);
	dev->backend_fd = -1;
	pthread_mutex_unlock(&dev->backend_lock);
	dev->features_acked = 0;
	dev->proto_acked = 0;
	dev->owner = false;
	dev->status = 0;
	if (dev->ops->reset)
		dev->ops->reset(dev);
	if (dev->listen_fd >= 0 && !dev->listen_watch)
		watch_listen(dev);
	else if (dev->listen_fd < 0 && dev->on_frontend_gone)
		dev->on_frontend_gone(dev);
	viod_dev_state_changed(dev);
	if (dev->inline_mode)
		viod_server_notified(dev);
}

/* Takes one complete, buffered message: check, handle. 0 or -1 (dropped). */
static int take_message(struct viod_dev *dev)
{
	struct viod_vu_msg *m = &dev->rx.msg;
	struct viod_cmd *wait = NULL;
	const char *why = NULL;
	char reason[160];
	int rc;

	rc = viod_msg_check(dev, m, dev->rx.nfds, &why);
	if (rc == 0) {
		viod_dev_info(dev, true, "%s", viod_vu_request_name(m->hdr.request));
		dev->in_message = true;
		rc = viod_handle_msg(dev, m, dev->rx.fds, dev->rx.nfds, &wait);
		dev->in_message = false;
		viod_dev_state_flush(dev);
		viod_rxbuf_reset(&dev->rx, false);
		if (rc < 0) {
			snprintf(reason, sizeof(reason), "%s failed: %s",
				 viod_vu_request_name(m->hdr.request), g_strerror(-rc));
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
		viod_server_disconnect(dev, why);
		return -1;
	}
	if (wait)
		dev->waiting = wait;
	if (dev->inline_mode)
		viod_server_notified(dev);
	return 0;
}

/* Reads and handles up to CONN_MSG_BATCH messages of the connection. */
static gboolean on_conn(gint fd, GIOCondition cond, gpointer data)
{
	struct viod_dev *dev = data;

	for (unsigned int n = 0; n < CONN_MSG_BATCH; n++) {
		enum viod_rx_result r;

		if (conn_paused(dev)) {
			if (cond & (G_IO_HUP | G_IO_ERR))
				break;
			/* Resumed by viod_server_notified(). */
			conn_watch(dev);
			return G_SOURCE_REMOVE;
		}
		r = viod_msg_read(fd, &dev->rx);
		if (r == VIOD_RX_AGAIN) {
			if (cond & (G_IO_HUP | G_IO_ERR))
				break;
			return G_SOURCE_CONTINUE;
		}
		if (r == VIOD_RX_EOF) {
			viod_server_disconnect(dev, NULL);
			return G_SOURCE_REMOVE;
		}
		if (r == VIOD_RX_ERROR) {
			dev->protocol_errors++;
			viod_server_disconnect(dev, "malformed message framing");
			return G_SOURCE_REMOVE;
		}
		/* A disconnect removes this source (allowed from its callback). */
		if (take_message(dev) < 0)
			return G_SOURCE_REMOVE;
	}
	if (cond & (G_IO_HUP | G_IO_ERR)) {
		viod_server_disconnect(dev, NULL);
		return G_SOURCE_REMOVE;
	}
	/* More may be buffered: the loop comes back after serving others. */
	return G_SOURCE_CONTINUE;
}

void viod_server_notified(struct viod_dev *dev)
{
	struct viod_cmd *cmd;
	uint64_t v;
	bool was_paused = conn_paused(dev);

	if (read(dev->notify_fd, &v, sizeof(v)) < 0)
		(void)0; /* nothing pending: spurious */
	pthread_mutex_lock(&dev->cmd_lock);
	cmd = dev->done_head;
	dev->done_head = dev->done_tail = NULL;
	pthread_mutex_unlock(&dev->cmd_lock);
	while (cmd) {
		struct viod_cmd *next = cmd->next;

		if (cmd->kind == CMD_MSG && cmd->gen == dev->conn_gen && dev->conn_fd >= 0) {
			int rc;

			dev->outstanding--;
			if (cmd == dev->waiting)
				dev->waiting = NULL;
			rc = viod_cmd_finish(dev, cmd);
			if (rc < 0) {
				char reason[160];

				snprintf(reason, sizeof(reason), "%s failed: %s",
					 viod_vu_request_name(cmd->msg.hdr.request),
					 g_strerror(-rc));
				dev->protocol_errors++;
				viod_server_disconnect(dev, reason);
			}
		}
		viod_cmd_free(cmd);
		cmd = next;
	}
	/* The flag stays set until the store publishes (and clears it), so
	 * workers signal once per publication, not once per change. */
	if (atomic_load(&dev->counters_dirty) && dev->on_counters_changed)
		dev->on_counters_changed(dev);
	if (dev->conn_fd >= 0 && was_paused && !conn_paused(dev) && !dev->inline_mode)
		conn_watch(dev);
}

void viod_dev_attach(struct viod_dev *dev, int fd)
{
	dev->conn_fd = fd;
	dev->connections++;
	viod_rxbuf_reset(&dev->rx, false);
	viod_workers_start_inline(dev);
}

int viod_dev_inject(struct viod_dev *dev, const struct viod_vu_msg *m, const int *fds,
		    unsigned int nfds)
{
	if (dev->conn_fd < 0 || nfds > VU_MAX_FDS || m->hdr.size > VU_PAYLOAD_MAX) {
		for (unsigned int i = 0; i < nfds; i++)
			close(fds[i]);
		return -1;
	}
	memcpy(&dev->rx.msg, m, VU_HDR_SIZE + m->hdr.size);
	if (nfds)
		memcpy(dev->rx.fds, fds, nfds * sizeof(int));
	dev->rx.nfds = nfds;
	dev->rx.len = VU_HDR_SIZE + m->hdr.size;
	return take_message(dev);
}

static gboolean on_notify(gint fd, GIOCondition cond, gpointer data)
{
	viod_server_notified(data);
	return G_SOURCE_CONTINUE;
}

/* Serves c (non-blocking) as the front-end's connection; -errno: c is closed. */
static int take_conn(struct viod_dev *dev, int c)
{
	int rc = viod_workers_launch(dev);

	if (rc < 0) {
		close(c);
		return rc;
	}
	dev->conn_fd = c;
	dev->connections++;
	viod_rxbuf_reset(&dev->rx, false);
	conn_watch(dev);
	viod_dev_info(dev, false, "front-end connected");
	return 0;
}

static gboolean on_accept(gint fd, GIOCondition cond, gpointer data)
{
	struct viod_dev *dev = data;
	int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK), rc;

	if (c < 0) {
		if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
			viod_dev_warn(dev, "accept: %s", g_strerror(errno));
		return G_SOURCE_CONTINUE;
	}
	rc = take_conn(dev, c);
	if (rc < 0) {
		viod_dev_warn(dev, "front-end refused: cannot start a worker: %s", g_strerror(-rc));
		return G_SOURCE_CONTINUE;
	}
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
	g_free(dev->socket_path);
	dev->socket_path = g_strdup(path);
	watch_listen(dev);
	dev->notify_watch = g_unix_fd_add(dev->notify_fd, G_IO_IN, on_notify, dev);
	return 0;
}

/* An int socket option, or -1. */
static int sockopt_int(int fd, int opt)
{
	int v = -1;
	socklen_t len = sizeof(v);

	return getsockopt(fd, SOL_SOCKET, opt, &v, &len) < 0 ? -1 : v;
}

/* -errno with *err set unless fd is a UNIX stream socket; *listening says which kind. */
static int check_socket(int fd, bool *listening, GError **err)
{
	struct stat st;
	int acc;

	if (fstat(fd, &st) < 0) {
		int e = errno;

		g_set_error(err, G_FILE_ERROR, g_file_error_from_errno(e), "fd %d: %s", fd,
			    g_strerror(e));
		return -e;
	}
	acc = S_ISSOCK(st.st_mode) ? sockopt_int(fd, SO_ACCEPTCONN) : -1;
	if (acc < 0 || sockopt_int(fd, SO_DOMAIN) != AF_UNIX ||
	    sockopt_int(fd, SO_TYPE) != SOCK_STREAM) {
		g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_INVAL,
			    "fd %d is not a UNIX stream socket", fd);
		return -ENOTSOCK;
	}
	*listening = acc != 0;
	return 0;
}

int viod_server_adopt(struct viod_dev *dev, int fd, GError **err)
{
	bool listening = false;
	int flags, rc;

	rc = check_socket(fd, &listening, err);
	if (rc < 0) {
		close(fd);
		return rc;
	}
	flags = fcntl(fd, F_GETFL);
	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0 ||
	    fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
		rc = -errno;
		g_set_error(err, G_FILE_ERROR, g_file_error_from_errno(-rc), "fd %d: %s", fd,
			    g_strerror(-rc));
		close(fd);
		return rc;
	}
	g_clear_pointer(&dev->socket_path, g_free);
	if (listening) {
		dev->listen_fd = fd;
		watch_listen(dev);
	} else {
		rc = take_conn(dev, fd);
		if (rc < 0) {
			g_set_error(err, G_FILE_ERROR, g_file_error_from_errno(-rc),
				    "cannot start a worker: %s", g_strerror(-rc));
			return rc;
		}
	}
	dev->notify_watch = g_unix_fd_add(dev->notify_fd, G_IO_IN, on_notify, dev);
	return 0;
}

void viod_server_close(struct viod_dev *dev)
{
	viod_server_disconnect(dev, NULL);
	if (dev->listen_watch)
		g_source_remove(dev->listen_watch);
	dev->listen_watch = 0;
	if (dev->notify_watch)
		g_source_remove(dev->notify_watch);
	dev->notify_watch = 0;
	if (dev->listen_fd >= 0) {
		close(dev->listen_fd);
		dev->listen_fd = -1;
		if (dev->socket_path)
			unlink(dev->socket_path);
	}
}
