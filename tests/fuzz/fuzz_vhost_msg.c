/*
 * libFuzzer target: the vhost-user message parser and handlers. The input
 * is a sequence of records [nfds:1][header:12][payload:size], each fed to
 * viod_msg_check() and, when accepted, to viod_handle_msg(), exactly as
 * the server does (a failure resets the device as a disconnect would).
 * File descriptors are fresh memfds (64 KiB, the first 4 KiB filled from
 * the last 4 KiB of the input, so a seed can end with a ring image) for memory-table requests and eventfds for all
 * others. After each message, running rings are served once, as the
 * worker would.
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

static unsigned int fz_queue(struct viod_dev *dev, unsigned int q)
{
	struct viod_vq *vq = viod_dev_vq(dev, q);
	struct viod_vq_elem *e = viod_dev_elem(dev);
	unsigned int n = 0;

	while (n < 8 && viod_vq_pop(vq, e) > 0) {
		uint8_t buf[64];
		size_t got = viod_iov_to_buf(e->iov, e->out_num, 0, buf, sizeof(buf));

		viod_iov_from_buf(e->iov + e->out_num, e->in_num, 0, buf, got);
		viod_vq_push(vq, e->head, (uint32_t)(got < e->in_len ? got : e->in_len));
		n++;
	}
	if (n)
		viod_dev_notify(dev, q);
	return n;
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct viod_device_ops *ops;
	struct viod_dev *dev;
	const uint8_t *fill;
	size_t fill_len;
	int sv[2];

	if (size < 1)
		return 0;
	fill_len = size < 4096 ? size : 4096;
	fill = data + size - fill_len;
	ops = (data[0] & 1) ? &fz_ops : &viod_rng_ops;
	data++;
	size--;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return 0;
	dev = viod_dev_new(ops, "fuzz0");
	if (ops->init)
		ops->init(dev, NULL);
	if (viod_worker_init(dev) < 0)
		goto out;
	dev->conn_fd = sv[0];

	while (size >= 1 + VU_HDR_SIZE) {
		struct viod_vu_msg m;
		int fds[VU_MAX_FDS];
		unsigned int nfds = data[0] % (VU_MAX_FDS + 1);
		const char *why;
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
		if (viod_msg_check(dev, &m, nfds, &why) == 0) {
			if (viod_handle_msg(dev, &m, fds, nfds) < 0)
				viod_dev_reset_conn(dev);
		} else {
			for (unsigned int i = 0; i < nfds; i++)
				if (fds[i] >= 0)
					close(fds[i]);
		}
		drain_replies(sv[1]);
		for (unsigned int q = 0; q < ops->num_queues; q++)
			if (viod_vring_running(&dev->vrings[q]))
				ops->queue_handler(dev, q);
	}
out:
	dev->conn_fd = -1;
	viod_dev_reset_conn(dev);
	viod_worker_stop(dev);
	if (ops->fini)
		ops->fini(dev);
	viod_dev_free(dev);
	close(sv[0]);
	close(sv[1]);
	return 0;
}
