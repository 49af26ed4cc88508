/*
 * libFuzzer target: the vhost-user message parser and handlers. The input
 * is a sequence of records [nfds:1][header:12][payload:size], each fed to
 * a threadless (inline) device through viod_dev_inject(), exactly as the
 * server takes a message off the socket: checked against the request
 * table, handled, its data-path part run as a command at once (a failure
 * drops the connection and resets the device; the next one connects).
 * File descriptors are fresh memfds (64 KiB, the first 4 KiB filled from
 * the last 4 KiB of the input, so a seed can end with a ring image) for memory-table requests and eventfds for all
 * others. After each message, running rings are served once, as the
 * worker would. The fuzz device offers INFLIGHT_SHMFD.
 */
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "vhost/vhost.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MEM_SIZE (64u * 1024u)

/* A device with config space and two queues, beside the real ones. */
static uint8_t fz_config[32];

static enum viod_serve fz_queue(struct viod_dev *dev, struct viod_queue *q)
{
	unsigned int n = 0;
	struct viod_req *r;

	while (n < 8 && (r = viod_queue_pop(q))) {
		uint8_t buf[64];
		size_t got = viod_iov_to_buf(r->iov, r->out_num, 0, buf, sizeof(buf));

		viod_iov_from_buf(r->iov + r->out_num, r->in_num, 0, buf, got);
		viod_queue_complete(q, r, (uint32_t)(got < r->in_len ? got : r->in_len));
		n++;
	}
	return n ? VIOD_SERVE_PROGRESS : VIOD_SERVE_IDLE;
}

static void fz_config_read(struct viod_dev *dev, uint32_t off, void *buf, uint32_t len)
{
	memcpy(buf, fz_config + off, len);
}

static int fz_config_write(struct viod_dev *dev, uint32_t off, const void *buf, uint32_t len)
{
	memcpy(fz_config + off, buf, len);
	return 0;
}

static const struct viod_device_ops fz_ops = {
	.type = "fuzz",
	.virtio_id = 42,
	.num_queues = 2,
	.queue_depth = 4,
	.protocol_features = 1ull << VU_PF_INFLIGHT_SHMFD,
	.config_size = sizeof(fz_config),
	.queue_handler = fz_queue,
	.config_read = fz_config_read,
	.config_write = fz_config_write,
};

static int make_fd(uint32_t request, const uint8_t *fill, size_t fill_len)
{
	int fd;

	if (request != VU_SET_MEM_TABLE && request != VU_ADD_MEM_REG)
		return eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	fd = memfd_create("fuzz", MFD_CLOEXEC);
	if (fd < 0)
		return -1;
	if (ftruncate(fd, FUZZ_MEM_SIZE) < 0 ||
	    (fill_len && pwrite(fd, fill, fill_len, 0) < 0)) {
		close(fd);
		return -1;
	}
	return fd;
}

static void drain_replies(int fd)
{
	char buf[4096];

	while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
		;
}

/* A connected socket pair: the device's end attached, ours returned. */
static int connect_dev(struct viod_dev *dev)
{
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) < 0)
		return -1;
	viod_dev_attach(dev, sv[0]);
	return sv[1];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct viod_device_ops *ops;
	struct viod_dev *dev;
	const uint8_t *fill;
	size_t fill_len;
	int peer;

	if (size < 1)
		return 0;
	fill_len = size < 4096 ? size : 4096;
	fill = data + size - fill_len;
	ops = (data[0] & 1) ? &fz_ops : viod_device_lookup("rng");
	data++;
	size--;
	dev = viod_dev_new_inline(ops, "fuzz0");
	if (!dev)
		return 0;
	if (ops->init)
		ops->init(dev, NULL);
	peer = connect_dev(dev);

	while (peer >= 0 && size >= 1 + VU_HDR_SIZE) {
		struct viod_vu_msg m;
		int fds[VU_MAX_FDS];
		unsigned int nfds = data[0] % (VU_MAX_FDS + 1);
		size_t plen;

		memset(&m, 0, sizeof(m));
		memcpy(&m.hdr, data + 1, VU_HDR_SIZE);
		data += 1 + VU_HDR_SIZE;
		size -= 1 + VU_HDR_SIZE;
		plen = m.hdr.size;
		if (plen > VU_PAYLOAD_MAX)
			break; /* the framing layer drops such a connection */
		if (plen > size)
			plen = size;
		m.hdr.size = (uint32_t)plen;
		memcpy(&m.u, data, plen);
		data += plen;
		size -= plen;

		for (unsigned int i = 0; i < nfds; i++)
			fds[i] = make_fd(m.hdr.request, fill, fill_len);
		if (viod_dev_inject(dev, &m, fds, nfds) < 0) {
			/* Dropped and reset, as the server does: the next
			 * front-end connects. */
			close(peer);
			peer = connect_dev(dev);
		}
		drain_replies(peer);
		viod_dev_run_queues(dev);
	}
	viod_server_disconnect(dev, NULL);
	if (ops->fini)
		ops->fini(dev);
	viod_dev_free(dev);
	if (peer >= 0)
		close(peer);
	return 0;
}
