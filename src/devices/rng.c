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
	/* Options (fixed once serving). */
	uint64_t max_bytes;     /* per period; 0 = unlimited */
	uint64_t period_ns;
	/* Worker. */
	uint64_t period_start;
	uint64_t budget;        /* bytes left in this period */
	uint64_t bytes_served;
	struct viod_req *cur;   /* worker: the request being filled */
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
	/* period_start 0: no period yet (whatever the uptime). */
	if (!r->period_start || now - r->period_start >= r->period_ns) {
		r->period_start = now;
		r->budget = r->max_bytes;
	}
	return r->budget;
}

/*
 * Bytes written per handler call: a guest posting huge chains gets them
 * filled across calls (the request is resumed at req->done), so its
 * device's own control messages wait at most one budget for the data path.
 */
#define RNG_BUDGET (256u << 10)
#define RNG_CHAINS 64u

/* Writes up to budget more bytes into r's writable buffers from r->done;
 * returns how many. */
static size_t rng_fill(struct viod_req *r, size_t budget)
{
	size_t written = 0, skip = r->done;

	for (unsigned int i = r->out_num; i < r->out_num + r->in_num && written < budget; i++) {
		size_t len = r->iov[i].iov_len, want, got;

		if (skip >= len) {
			skip -= len;
			continue;
		}
		want = len - skip;
		if (want > budget - written)
			want = budget - written;
		got = fill_random((uint8_t *)r->iov[i].iov_base + skip, want);
		written += got;
		skip = 0;
		if (got < want)
			break;
	}
	r->done += written;
	return written;
}

static enum viod_serve rng_queue(struct viod_dev *dev, struct viod_queue *q)
{
	struct rng *r = viod_dev_priv(dev);
	size_t budget = RNG_BUDGET;
	unsigned int chains = 0;
	bool progress = false;

	while (budget > 0 && chains < RNG_CHAINS) {
		uint64_t allowed = rng_refill(r, viod_now_ns());
		size_t chunk, written;

		if (allowed == 0) {
			viod_queue_throttle(q, r->period_start + r->period_ns);
			return progress ? VIOD_SERVE_PROGRESS : VIOD_SERVE_BLOCKED;
		}
		if (!r->cur && !(r->cur = viod_queue_pop(q)))
			break;
		chunk = allowed < budget ? (size_t)allowed : budget;
		written = rng_fill(r->cur, chunk);
		if (r->max_bytes)
			r->budget -= written;
		r->bytes_served += written;
		budget -= written < budget ? written : budget;
		progress = true;
		/* Done when the writable part is full, or getrandom() failed. */
		if (r->cur->done >= r->cur->in_len || written < chunk) {
			viod_queue_complete(q, r->cur, (uint32_t)MIN(r->cur->done, UINT32_MAX));
			r->cur = NULL;
			chains++;
		}
	}
	return progress ? VIOD_SERVE_PROGRESS : VIOD_SERVE_IDLE;
}

/* The queue stops or memory changes: what was written so far is what the
 * guest gets (the used length says so). */
static void rng_release(struct viod_dev *dev, struct viod_queue *q)
{
	struct rng *r = viod_dev_priv(dev);

	if (r->cur) {
		viod_queue_complete(q, r->cur, (uint32_t)MIN(r->cur->done, UINT32_MAX));
		r->cur = NULL;
	}
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

static void rng_dp_reset(struct viod_dev *dev)
{
	struct rng *r = viod_dev_priv(dev);

	r->period_start = 0;
	r->budget = 0;
	r->cur = NULL;
}

static const struct viod_device_ops rng_ops = {
	.type = "rng",
	.virtio_id = VIRTIO_ID_RNG,
	.features = 0,
	.num_queues = 1,
	.config_size = 0,
	.priv_size = sizeof(struct rng),
	.set_option = rng_set_option,
	.init = rng_init,
	.queue_handler = rng_queue,
	.queue_release = rng_release,
	.dp_reset = rng_dp_reset,
};
VIOD_DEVICE_REGISTER(rng_ops)
