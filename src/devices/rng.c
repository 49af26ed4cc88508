/*
 * virtio entropy device (virtio 1.2, 5.4): one request queue of
 * device-writable buffers that we fill from getrandom().
 *
 * Contract: only device-writable descriptors are written (the walker puts
 * them after the readable ones; readable ones are ignored), the used length
 * is the number of bytes actually written, and an optional rate limit
 * (max-bytes per period, as QEMU's rng backends) caps what a guest gets;
 * when the budget is spent the queue waits for the next period.
 */
#include "vhost/device.h"

#include <errno.h>
#include <linux/virtio_ids.h>
#include <sys/random.h>

struct rng {
	uint64_t max_bytes;     /* per period; 0 = unlimited */
	uint64_t period_ns;
	uint64_t period_start;
	uint64_t budget;        /* bytes left in this period */
	uint64_t bytes_served;
};

/* Fills buf from getrandom(); returns bytes written (short only on error). */
static size_t fill_random(void *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = getrandom((uint8_t *)buf + done, len - done, 0);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		done += (size_t)n;
	}
	return done;
}

static uint64_t rng_refill(struct rng *r, uint64_t now)
{
	if (!r->max_bytes)
		return UINT64_MAX;
	if (now - r->period_start >= r->period_ns) {
		r->period_start = now;
		r->budget = r->max_bytes;
	}
	return r->budget;
}

/* Chains completed per call, so the worker can look at other rings. */
#define RNG_BATCH 64u

static unsigned int rng_queue(struct viod_dev *dev, unsigned int qidx)
{
	struct rng *r = viod_dev_priv(dev);
	struct viod_vq *vq = viod_dev_vq(dev, qidx);
	struct viod_vq_elem *e = viod_dev_elem(dev);
	unsigned int done = 0;

	if (!vq)
		return 0;
	while (done < RNG_BATCH) {
		uint64_t budget = rng_refill(r, viod_now_ns());
		size_t written = 0;

		if (budget == 0) {
			viod_dev_throttle(dev, r->period_start + r->period_ns);
			break;
		}
		if (viod_vq_pop(vq, e) <= 0)
			break;
		for (unsigned int i = e->out_num; i < e->out_num + e->in_num; i++) {
			size_t want = e->iov[i].iov_len;
			size_t got;

			if (want > budget - written)
				want = (size_t)(budget - written);
			got = fill_random(e->iov[i].iov_base, want);
			written += got;
			if (got < e->iov[i].iov_len)
				break;
		}
		if (r->max_bytes)
			r->budget -= written;
		r->bytes_served += written;
		viod_vq_push(vq, e->head, (uint32_t)written);
		done++;
	}
	if (done)
		viod_dev_notify(dev, qidx);
	return done;
}

static int rng_set_option(struct viod_dev *dev, const char *key, const char *value,
			  GError **err)
{
	struct rng *r = viod_dev_priv(dev);
	guint64 v;

	if (g_strcmp0(key, "max-bytes") == 0) {
		if (!g_ascii_string_to_unsigned(value, 10, 1, G_MAXUINT32, &v, err))
			return -EINVAL;
		r->max_bytes = v;
		return 0;
	}
	if (g_strcmp0(key, "period") == 0) {
		if (!g_ascii_string_to_unsigned(value, 10, 1, 3600000, &v, err))
			return -EINVAL;
		r->period_ns = v * 1000000ull;
		return 0;
	}
	return -ENOENT;
}

static int rng_init(struct viod_dev *dev, GError **err)
{
	struct rng *r = viod_dev_priv(dev);

	/* QEMU's default period for virtio-rng is one second. */
	if (!r->period_ns)
		r->period_ns = 1000000000ull;
	return 0;
}

static void rng_reset(struct viod_dev *dev)
{
	struct rng *r = viod_dev_priv(dev);

	r->period_start = 0;
	r->budget = 0;
}

const struct viod_device_ops viod_rng_ops = {
	.type = "rng",
	.virtio_id = VIRTIO_ID_RNG,
	.features = 0,
	.num_queues = 1,
	.config_size = 0,
	.priv_size = sizeof(struct rng),
	.set_option = rng_set_option,
	.init = rng_init,
	.queue_handler = rng_queue,
	.reset = rng_reset,
};
