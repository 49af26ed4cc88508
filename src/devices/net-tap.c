/*
 * The tap back end (backend=tap:IFNAME): a Linux tap with IFF_VNET_HDR,
 * one queue per queue pair (IFF_MULTI_QUEUE when more than one), so the
 * guest's checksum and segmentation offloads pass through: the tap's
 * virtio-net header has the guest's size (TUNSETVNETHDRSZ) and the tap
 * hands us only the offloads the guest accepted (TUNSETOFFLOAD).
 *
 * Transmit: the header is copied and checked (net_tx_check), then the
 * local header and the guest's frame, in place, go to the tap in one
 * writev. Receive: a frame is read into the pair's buffer and delivered;
 * when the guest has no buffers it stays there, the tap's fd is no longer
 * watched (the worker sleeps) and the guest's kick resumes us. Each pair's
 * tap queue belongs to the worker serving the pair.
 */
#include "devices/net.h"

#include <errno.h>
#include <fcntl.h>
#include <gio/gio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>
#include <linux/if.h>
#include <linux/if_tun.h>

struct tap_source {
	struct net_tap *t;
	unsigned int pair;
	int id;                   /* viod_worker_add_source's */
};

struct net_tap {
	struct viod_dev *dev;
	char ifname[IFNAMSIZ];
	unsigned int pairs;
	int fds[NET_MAX_PAIRS];
	struct tap_source src[NET_MAX_PAIRS];
	atomic_uint hdr_len;
};

static int tap_queue(const char *name, bool mq, char *got)
{
	struct ifreq ifr = { 0 };
	int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | (mq ? IFF_MULTI_QUEUE : 0);
	g_strlcpy(ifr.ifr_name, name, sizeof(ifr.ifr_name));
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		int e = errno;

		close(fd);
		return -e;
	}
	g_strlcpy(got, ifr.ifr_name, IFNAMSIZ);
	return fd;
}

int net_tap_open(struct viod_dev *dev, const char *ifname, unsigned int pairs,
		 struct net_tap **out, GError **err)
{
	struct net_tap *t = g_new0(struct net_tap, 1);

	t->dev = dev;
	t->pairs = pairs;
	atomic_init(&t->hdr_len, sizeof(struct virtio_net_hdr));
	for (unsigned int i = 0; i < NET_MAX_PAIRS; i++)
		t->fds[i] = -1;
	g_strlcpy(t->ifname, ifname, sizeof(t->ifname));
	for (unsigned int i = 0; i < pairs; i++) {
		int fd = tap_queue(t->ifname, pairs > 1, t->ifname);

		if (fd < 0) {
			g_set_error(err, G_IO_ERROR, g_io_error_from_errno(-fd),
				    "tap %s, queue %u: %s (a tap needs CAP_NET_ADMIN, or a "
				    "persistent tap this user owns%s)", t->ifname, i,
				    g_strerror(-fd), pairs > 1 ? ", made with multi_queue" : "");
			net_tap_close(t);
			*out = NULL;
			return fd;
		}
		t->fds[i] = fd;
		t->src[i] = (struct tap_source){ .t = t, .pair = i, .id = -1 };
	}
	*out = t;
	return 0;
}

void net_tap_close(struct net_tap *t)
{
	if (!t)
		return;
	for (unsigned int i = 0; i < NET_MAX_PAIRS; i++)
		if (t->fds[i] >= 0)
			close(t->fds[i]);
	g_free(t);
}

const char *net_tap_ifname(const struct net_tap *t)
{
	return t->ifname;
}

void net_tap_set_hdr_len(struct net_tap *t, unsigned int len)
{
	int v = (int)len;

	atomic_store(&t->hdr_len, len);
	for (unsigned int i = 0; i < t->pairs; i++)
		if (ioctl(t->fds[i], TUNSETVNETHDRSZ, &v) < 0)
			viod_dev_warn(t->dev, "tap %s: TUNSETVNETHDRSZ %d: %s", t->ifname, v,
				      g_strerror(errno));
}

void net_tap_set_offloads(struct net_tap *t, uint64_t f)
{
	unsigned int off = 0;

	if (viod_has_feature(f, VIRTIO_NET_F_GUEST_CSUM)) {
		off |= TUN_F_CSUM;
		if (viod_has_feature(f, VIRTIO_NET_F_GUEST_TSO4))
			off |= TUN_F_TSO4;
		if (viod_has_feature(f, VIRTIO_NET_F_GUEST_TSO6))
			off |= TUN_F_TSO6;
	}
	for (unsigned int i = 0; i < t->pairs; i++)
		if (ioctl(t->fds[i], TUNSETOFFLOAD, off) < 0)
			viod_dev_warn(t->dev, "tap %s: TUNSETOFFLOAD 0x%x: %s", t->ifname, off,
				      g_strerror(errno));
}

void net_tap_inject(struct net_tap *t, const uint8_t *frame, uint32_t len)
{
	struct virtio_net_hdr_mrg_rxbuf h = { 0 };
	struct iovec iov[2] = {
		{ .iov_base = &h, .iov_len = atomic_load(&t->hdr_len) },
		{ .iov_base = (void *)frame, .iov_len = len },
	};

	if (writev(t->fds[0], iov, 2) < 0)
		viod_dev_warn(t->dev, "tap %s: announce: %s", t->ifname, g_strerror(errno));
}

/* The tap has frames: stop watching it until they are taken, and have the
 * worker serve its receive queue (progress unblocks it). */
static enum viod_serve tap_poll(void *opaque)
{
	struct tap_source *s = opaque;

	viod_worker_source_arm(s->t->dev, s->id, false);
	return VIOD_SERVE_PROGRESS;
}

void net_tap_worker_start(struct viod_dev *dev, unsigned int worker)
{
	struct net *n = viod_dev_priv(dev);
	struct net_tap *t = n->tap;

	for (unsigned int i = 0; i < t->pairs; i++) {
		if (i % viod_dev_workers(dev) != worker)
			continue;
		t->src[i].id = viod_worker_add_source(dev, t->fds[i], tap_poll, &t->src[i]);
		if (t->src[i].id < 0)
			viod_dev_warn(dev, "tap %s queue %u: %s", t->ifname, i,
				      g_strerror(-t->src[i].id));
	}
}

enum viod_serve net_tap_tx(struct viod_dev *dev, struct viod_queue *q)
{
	struct net *n = viod_dev_priv(dev);
	struct net_tap *t = n->tap;
	unsigned int qi = viod_queue_index(q), budget = NET_BUDGET;
	size_t hlen = atomic_load(&t->hdr_len);
	struct virtio_net_hdr_mrg_rxbuf h;
	int fd = t->fds[qi / 2u];
	struct viod_req *r;

	while ((r = net_tx_pop(dev, q, hlen, &h, &budget))) {
		struct iovec iov[NET_MAX_IOV + 1];
		unsigned int niov = 1;
		size_t skip = hlen;

		h.num_buffers = 0;
		iov[0] = (struct iovec){ .iov_base = &h, .iov_len = hlen };
		for (unsigned int i = 0; i < r->out_num; i++) {
			size_t l = r->iov[i].iov_len;

			if (skip >= l) {
				skip -= l;
				continue;
			}
			iov[niov++] = (struct iovec){
				.iov_base = (uint8_t *)r->iov[i].iov_base + skip,
				.iov_len = l - skip,
			};
			skip = 0;
		}
		if (writev(fd, iov, (int)niov) < 0)
			net_count_drop(n, qi, NET_DROP_BACKEND);
		else
			net_count_frame(n, qi, r->out_len - hlen);
		viod_queue_complete(q, r, 0);
	}
	if (budget == NET_BUDGET)
		return VIOD_SERVE_IDLE;
	viod_dev_counters_changed(dev);
	return VIOD_SERVE_PROGRESS;
}

enum viod_serve net_tap_rx(struct viod_dev *dev, struct viod_queue *q)
{
	struct net *n = viod_dev_priv(dev);
	struct net_tap *t = n->tap;
	unsigned int qi = viod_queue_index(q), pair = qi / 2u, done = 0;
	struct net_pending *pend = &n->pending[pair];
	size_t hlen = atomic_load(&t->hdr_len);

	if (!pend->buf)
		pend->buf = g_malloc(NET_HDR_MAX + NET_GSO_FRAME_MAX);
	while (done < NET_BUDGET) {
		struct net_frame f;

		if (!pend->full) {
			ssize_t got = read(t->fds[pair], pend->buf, hlen + NET_GSO_FRAME_MAX);

			if (got < 0) {
				if (errno != EAGAIN && errno != EINTR)
					net_count_drop(n, qi, NET_DROP_BACKEND);
				/* Drained (or failing): watch the tap again. */
				if (t->src[pair].id >= 0)
					viod_worker_source_arm(dev, t->src[pair].id, true);
				break;
			}
			if ((size_t)got < hlen + NET_ETH_HLEN) {
				net_count_drop(n, qi, NET_DROP_RUNT);
				continue;
			}
			pend->len = (uint32_t)got;
			pend->full = true;
		}
		memcpy(&f.hdr, pend->buf, sizeof(f.hdr));
		f.len = pend->len - (uint32_t)hlen;
		f.data = pend->buf + hlen;
		if (net_rx_deliver(dev, q, &f) == -ENOBUFS) {
			if (done)
				viod_dev_counters_changed(dev);
			return done ? VIOD_SERVE_PROGRESS : VIOD_SERVE_IDLE;
		}
		pend->full = false;
		done++;
	}
	if (done) {
		viod_dev_counters_changed(dev);
		return VIOD_SERVE_PROGRESS;
	}
	return VIOD_SERVE_BLOCKED;
}
