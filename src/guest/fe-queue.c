/*
 * Front-end queues: split rings laid in guest memory, set up on the
 * back-end, kicked and waited on; stop and device reset. Contracts:
 * frontend.h.
 */
#include "fe-private.h"

#include <endian.h>
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/eventfd.h>
#include <linux/virtio_ring.h>

static inline void fe_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#endif
}

static unsigned int fe_queue_limit(const struct viod_fe *fe)
{
	uint64_t unit = fe->queue_num_unit ? fe->queue_num_unit : 1;

	if (fe->queue_num && fe->queue_num < VIOD_FE_MAX_QUEUES / unit)
		return (unsigned int)(fe->queue_num * unit);
	return VIOD_FE_MAX_QUEUES;
}

void viod_fe_queue_release(struct viod_fe_queue *q)
{
	fe_close(&q->kick_fd);
	fe_close(&q->call_fd);
	if (q->ready)
		viod_vqd_fini(&q->vqd);
	q->ready = false;
	q->suspended = false;
}

void viod_fe_queue_suspend(struct viod_fe_queue *q)
{
	if (!q->ready)
		return;
	fe_close(&q->kick_fd);
	fe_close(&q->call_fd);
	q->suspended = true;
}

/* The device's used index, as the device last wrote it. */
static uint16_t fe_used_idx(const struct viod_vqd *vqd)
{
	return le16toh(__atomic_load_n(&vqd->used->idx, __ATOMIC_ACQUIRE));
}

/*
 * Gives queue idx (ready: its ring and driver state laid out) new
 * eventfds and sends SET_VRING_NUM/ADDR/BASE base/CALL/KICK, and
 * SET_VRING_ENABLE 1 when F_PROTOCOL_FEATURES was negotiated. 0, or
 * -errno with the eventfds closed again.
 */
static int fe_queue_start(struct viod_fe *fe, unsigned int idx,
			  struct viod_fe_queue *q, uint16_t base)
{
	struct vhost_vring_addr addr;
	int r;

	q->kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	q->call_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (q->kick_fd < 0 || q->call_fd < 0) {
		r = viod_fe_error(fe, -errno, "eventfd: %s", strerror(errno));
		goto fail;
	}

	r = viod_fe_set_state(fe, VU_SET_VRING_NUM, idx, q->num);
	if (r < 0)
		goto fail;
	memset(&addr, 0, sizeof(addr));
	addr.index = idx;
	addr.flags = 0;
	addr.desc_user_addr = (uintptr_t)q->vqd.desc;
	addr.avail_user_addr = (uintptr_t)q->vqd.avail;
	addr.used_user_addr = (uintptr_t)q->vqd.used;
	r = viod_fe_request(fe, VU_SET_VRING_ADDR, &addr, sizeof(addr), NULL, 0,
			    NULL, 0);
	if (r < 0)
		goto fail;
	r = viod_fe_set_state(fe, VU_SET_VRING_BASE, idx, base);
	if (r < 0)
		goto fail;
	r = viod_fe_set_u64(fe, VU_SET_VRING_CALL, idx, &q->call_fd, 1);
	if (r < 0)
		goto fail;
	r = viod_fe_set_u64(fe, VU_SET_VRING_KICK, idx, &q->kick_fd, 1);
	if (r < 0)
		goto fail;
	if (viod_fe_has_feature(fe, VHOST_USER_F_PROTOCOL_FEATURES)) {
		r = viod_fe_set_state(fe, VU_SET_VRING_ENABLE, idx, 1);
		if (r < 0)
			goto fail;
	}
	return 0;
fail:
	fe_close(&q->kick_fd);
	fe_close(&q->call_fd);
	return r;
}

int viod_fe_queue_setup(struct viod_fe *fe, unsigned int idx, uint16_t num)
{
	struct viod_fe_queue *q;
	size_t desc_sz, avail_sz, used_off, total;
	bool event_idx;
	int r;

	if (!fe->negotiated)
		return viod_fe_error(fe, -EINVAL, "queue setup before negotiation");
	if (idx >= fe_queue_limit(fe))
		return viod_fe_error(fe, -EINVAL, "queue %u out of range (%u queues)",
				     idx, fe_queue_limit(fe));
	if (!viod_vq_size_valid(num))
		return viod_fe_error(fe, -EINVAL, "queue size %u not a power of two <= %u",
				     num, VIOD_VQ_MAX_SIZE);
	q = &fe->queues[idx];
	if (q->ready)
		return viod_fe_error(fe, -EBUSY, "queue %u already set up", idx);

	/* virtio 1.2, 2.7: desc 16-byte, avail 2-byte, used 4-byte aligned. */
	desc_sz = viod_vring_desc_size(num);
	avail_sz = viod_vring_avail_size(num);
	used_off = FE_ALIGN_UP(desc_sz + avail_sz, 4);
	total = used_off + viod_vring_used_size(num);
	if (!q->ring || q->ring_cap < total) {
		q->ring = viod_fe_alloc(fe, total, FE_PAGE, &q->ring_gpa);
		if (!q->ring)
			return viod_fe_error(fe, -ENOMEM,
					     "no guest memory for a %u-entry ring", num);
		q->ring_cap = total;
	}
	event_idx = viod_fe_has_feature(fe, VIRTIO_RING_F_EVENT_IDX);
	r = viod_vqd_init(&q->vqd, num, q->ring, q->ring + desc_sz,
			  q->ring + used_off, event_idx);
	if (r < 0)
		return viod_fe_error(fe, r, "queue %u: %s", idx, strerror(-r));
	q->ready = true;
	q->num = num;
	viod_vqd_set_interrupts(&q->vqd, false);

	r = fe_queue_start(fe, idx, q, 0);
	if (r < 0)
		viod_fe_queue_release(q);
	return r;
}

static struct viod_fe_queue *fe_queue(struct viod_fe *fe, unsigned int idx)
{
	if (!fe->queues || idx >= VIOD_FE_MAX_QUEUES || !fe->queues[idx].ready)
		return NULL;
	return &fe->queues[idx];
}

struct viod_vqd *viod_fe_vqd(struct viod_fe *fe, unsigned int idx)
{
	struct viod_fe_queue *q = fe_queue(fe, idx);

	return q ? &q->vqd : NULL;
}

int viod_fe_take_slot(struct viod_fe *fe, unsigned int idx, unsigned int nslots,
		      const char *who, unsigned int *slot, uint32_t *len)
{
	struct viod_vqd *vqd = viod_fe_vqd(fe, idx);
	void *cookie;
	uintptr_t c;
	int r;

	if (!vqd)
		return viod_fe_error(fe, -EIO, "%s: queue %u is not set up", who, idx);
	r = viod_vqd_get_used(vqd, &cookie, len);
	if (r == 0)
		return 0;
	if (r < 0)
		return viod_fe_error(fe, -EIO, "%s: queue %u: device returned a bad used "
				     "entry (id not in flight or len above the bytes posted)",
				     who, idx);
	c = (uintptr_t)cookie;
	if (c == 0 || c > nslots)
		return viod_fe_error(fe, -EIO, "%s: queue %u: used entry for no slot",
				     who, idx);
	*slot = (unsigned int)(c - 1);
	return 1;
}

int viod_fe_kick(struct viod_fe *fe, unsigned int idx)
{
	struct viod_fe_queue *q = fe_queue(fe, idx);
	uint64_t one = 1;

	if (!q)
		return viod_fe_error(fe, -EINVAL, "kick: queue %u not set up", idx);
	if (q->suspended || !viod_vqd_need_kick(&q->vqd))
		return 0;
	if (write(q->kick_fd, &one, sizeof(one)) != sizeof(one) && errno != EAGAIN)
		return viod_fe_error(fe, -errno, "kick queue %u: %s", idx, strerror(errno));
	return 1;
}

int viod_fe_wait(struct viod_fe *fe, unsigned int idx, int timeout_ms)
{
	struct viod_fe_queue *q = fe_queue(fe, idx);
	int64_t spin_end, deadline;
	uint64_t v;

	if (!q)
		return viod_fe_error(fe, -EINVAL, "wait: queue %u not set up", idx);
	if (q->vqd.broken)
		return viod_fe_error(fe, -EIO, "queue %u broken by the device", idx);
	if (viod_vqd_has_used(&q->vqd))
		return 1;
	if (q->suspended)
		return viod_fe_error(fe, -ENOTCONN, "wait: queue %u awaits resume", idx);

	/* Bounded busy-poll: a wake-up costs tens of microseconds here. */
	spin_end = fe_now_ns() + (int64_t)fe->opts.spin_us * 1000;
	while (fe_now_ns() < spin_end) {
		if (viod_vqd_has_used(&q->vqd))
			return 1;
		fe_cpu_relax();
	}

	deadline = fe_deadline(timeout_ms);
	for (;;) {
		struct pollfd p = { .fd = q->call_fd, .events = POLLIN };
		int r;

		/* Enable, then re-check: a used entry added before the device
		 * saw the enable would otherwise never be signalled. */
		viod_vqd_set_interrupts(&q->vqd, true);
		if (viod_vqd_has_used(&q->vqd)) {
			viod_vqd_set_interrupts(&q->vqd, false);
			return 1;
		}
		r = poll(&p, 1, fe_remaining_ms(deadline));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			viod_vqd_set_interrupts(&q->vqd, false);
			return viod_fe_error(fe, -errno, "poll call fd: %s", strerror(errno));
		}
		if (r > 0 && read(q->call_fd, &v, sizeof(v)) < 0 && errno != EAGAIN) {
			viod_vqd_set_interrupts(&q->vqd, false);
			return viod_fe_error(fe, -errno, "read call fd: %s", strerror(errno));
		}
		viod_vqd_set_interrupts(&q->vqd, false);
		if (viod_vqd_has_used(&q->vqd))
			return 1;
		if (r == 0)
			return 0;
	}
}

static bool fe_any_used(struct viod_fe_queue *const *q, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++)
		if (viod_vqd_has_used(&q[i]->vqd))
			return true;
	return false;
}

int viod_fe_wait_any(struct viod_fe *fe, const unsigned int *idx, unsigned int n,
		     bool backend, int timeout_ms)
{
	struct viod_fe_queue *q[VIOD_FE_WAIT_MAX];
	struct pollfd p[VIOD_FE_WAIT_MAX + 1];
	int64_t deadline = fe_deadline(timeout_ms);
	int ret;

	if (n > VIOD_FE_WAIT_MAX)
		return viod_fe_error(fe, -EINVAL, "wait: more than %u queues",
				     VIOD_FE_WAIT_MAX);
	for (unsigned int i = 0; i < n; i++) {
		q[i] = fe_queue(fe, idx[i]);
		if (!q[i])
			return viod_fe_error(fe, -EINVAL, "wait: queue %u not set up", idx[i]);
		if (q[i]->vqd.broken)
			return viod_fe_error(fe, -EIO, "queue %u broken by the device", idx[i]);
		if (q[i]->suspended)
			return viod_fe_error(fe, -ENOTCONN, "wait: queue %u awaits resume",
					     idx[i]);
	}
	backend = backend && fe->backend_fd >= 0;
	/* Bounded busy-poll on the rings first, as viod_fe_wait does: a
	 * wake-up costs tens of microseconds here. A back-end request that
	 * comes meanwhile waits for the poll below (at most spin_us). */
	for (int64_t spin_end = fe_now_ns() + (int64_t)fe->opts.spin_us * 1000;
	     fe_now_ns() < spin_end;) {
		if (fe_any_used(q, n) || (backend && fe->config_pending))
			return 1;
		fe_cpu_relax();
	}
	for (;;) {
		unsigned int np = 0;
		int r;

		/* Enable, then re-check (see viod_fe_wait). */
		for (unsigned int i = 0; i < n; i++)
			viod_vqd_set_interrupts(&q[i]->vqd, true);
		if (fe_any_used(q, n) || (backend && fe->config_pending)) {
			ret = 1;
			break;
		}
		for (unsigned int i = 0; i < n; i++)
			p[np++] = (struct pollfd){ .fd = q[i]->call_fd, .events = POLLIN };
		if (backend)
			p[np++] = (struct pollfd){ .fd = fe->backend_fd, .events = POLLIN };
		r = poll(p, np, fe_remaining_ms(deadline));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			ret = viod_fe_error(fe, -errno, "poll: %s", strerror(errno));
			break;
		}
		for (unsigned int i = 0; i < n; i++) {
			uint64_t v;

			if (p[i].revents && read(q[i]->call_fd, &v, sizeof(v)) < 0 &&
			    errno != EAGAIN) {
				r = -errno;
				break;
			}
		}
		if (r < 0) {
			ret = viod_fe_error(fe, r, "read call fd: %s", strerror(-r));
			break;
		}
		if (r == 0 || (backend && p[np - 1].revents)) {
			ret = r > 0 || fe_any_used(q, n);
			break;
		}
		/* A call fd fired: the re-check at the top decides (a call
		 * can be stale). */
	}
	for (unsigned int i = 0; i < n; i++)
		viod_vqd_set_interrupts(&q[i]->vqd, false);
	return ret;
}

int viod_fe_queue_stop(struct viod_fe *fe, unsigned int idx, uint16_t *base)
{
	struct viod_fe_queue *q = fe_queue(fe, idx);
	struct vhost_vring_state s = { .index = idx, .num = 0 };
	int r;

	if (!q)
		return viod_fe_error(fe, -EINVAL, "stop: queue %u not set up", idx);
	if (q->suspended) {
		q->last_base = fe_used_idx(&q->vqd);
		viod_fe_queue_release(q);
		if (base)
			*base = q->last_base;
		return 0;
	}
	r = viod_fe_request(fe, VU_GET_VRING_BASE, &s, sizeof(s), NULL, 0,
			    &s, sizeof(s));
	viod_fe_queue_release(q);
	if (r < 0)
		return r;
	if (s.num > UINT16_MAX)
		return viod_fe_error(fe, -EPROTO, "GET_VRING_BASE: base %u out of range",
				     s.num);
	q->last_base = (uint16_t)s.num;
	if (base)
		*base = q->last_base;
	return 0;
}

int viod_fe_reset_device(struct viod_fe *fe)
{
	int r;

	if (!viod_fe_has_protocol(fe, VU_PF_RESET_DEVICE))
		return viod_fe_error(fe, -ENOTSUP, "RESET_DEVICE not negotiated");
	r = viod_fe_request(fe, VU_RESET_DEVICE, NULL, 0, NULL, 0, NULL, 0);
	if (r < 0)
		return r;
	for (unsigned int i = 0; fe->queues && i < VIOD_FE_MAX_QUEUES; i++)
		viod_fe_queue_release(&fe->queues[i]);
	viod_fe_inflight_release(fe);
	fe->negotiated = false;
	fe->status = 0;
	fe->features_acked = 0;
	return 0;
}

int viod_fe_queue_resume(struct viod_fe *fe, unsigned int idx)
{
	struct viod_fe_queue *q = fe_queue(fe, idx);
	bool event_idx = viod_fe_has_feature(fe, VIRTIO_RING_F_EVENT_IDX);
	uint16_t base;
	uint64_t one = 1;
	int r;

	if (!fe->negotiated)
		return viod_fe_error(fe, -EINVAL, "queue resume before negotiation");
	if (!q || !q->suspended)
		return viod_fe_error(fe, -EINVAL, "resume: queue %u not suspended", idx);
	if (idx >= fe_queue_limit(fe))
		return viod_fe_error(fe, -EINVAL, "queue %u out of range (%u queues)",
				     idx, fe_queue_limit(fe));
	/* The ring's event indices mean what they meant when it was laid. */
	if (event_idx != q->vqd.event_idx)
		return viod_fe_error(fe, -ENOTSUP,
				     "queue %u: EVENT_IDX %s now, %s for its ring", idx,
				     event_idx ? "on" : "off",
				     q->vqd.event_idx ? "on" : "off");

	/* QEMU's virtio_queue_restore_last_avail_idx: what the lost back-end
	 * popped but never used is its inflight region's to resubmit. */
	base = fe_used_idx(&q->vqd);
	r = fe_queue_start(fe, idx, q, base);
	if (r < 0)
		return r;
	q->suspended = false;
	/* Chains outstanding: the new back-end may wait for a kick. */
	if (q->vqd.avail_idx != base &&
	    write(q->kick_fd, &one, sizeof(one)) != sizeof(one) && errno != EAGAIN)
		return viod_fe_error(fe, -errno, "kick queue %u: %s", idx, strerror(errno));
	return 0;
}
