/*
 * Rings as devices use them (struct viod_queue): start and stop, the
 * per-queue request pool, batched completion, inflight marks and
 * counters. Everything here runs on the ring's serving worker, or on the
 * primary worker while the serving one is parked.
 *
 * Security model: the ring is guest memory (see virtio/vq.h); every
 * access to it runs under viod_guard_run(), so a front-end that truncates
 * guest memory under us breaks that ring, not the daemon.
 */
#include "vhost.h"

#include <errno.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>
#include <string.h>
#include <unistd.h>

#define SLOT_NONE UINT32_MAX

static inline struct viod_vring *ring_of(struct viod_queue *q)
{
	return (struct viod_vring *)q;
}

void viod_vring_init(struct viod_vring *vr, struct viod_dev *dev, unsigned int idx)
{
	memset(vr, 0, sizeof(*vr));
	vr->dev = dev;
	vr->idx = idx;
	vr->kick_fd = vr->call_fd = vr->err_fd = -1;
	vr->free_head = SLOT_NONE;
}

static void pool_free(struct viod_vring *vr)
{
	g_free(vr->slots);
	g_free(vr->iov_store);
	g_free(vr->priv_store);
	g_free(vr->batch);
	vr->slots = NULL;
	vr->iov_store = NULL;
	vr->priv_store = NULL;
	vr->batch = NULL;
	vr->batch_cap = 0;
	vr->nslots = 0;
	vr->free_head = SLOT_NONE;
}

void viod_vring_fini(struct viod_vring *vr)
{
	viod_vring_reset(vr, true);
	pool_free(vr);
	g_free(vr->resubmit);
}

static unsigned int iov_cap(const struct viod_dev *dev)
{
	return dev->ops->max_iov && dev->ops->max_iov < VIOD_VQ_MAX_IOV ?
	       dev->ops->max_iov : VIOD_VQ_MAX_IOV;
}

/* Frees every slot (held requests are forgotten; see viod_vring_reset). */
static void pool_reset(struct viod_vring *vr)
{
	for (unsigned int i = 0; i < vr->nslots; i++) {
		struct viod_req_slot *s = &vr->slots[i];

		if (s->busy && s->mt_owned)
			viod_memtable_unref(s->mt);
		s->busy = s->mt_owned = false;
		s->mt = NULL;
		s->next_free = i + 1 < vr->nslots ? i + 1 : SLOT_NONE;
	}
	vr->free_head = vr->nslots ? 0 : SLOT_NONE;
	viod_memtable_unref(vr->mt_cache);
	vr->mt_cache = NULL;
	vr->mt_users = 0;
	vr->held = 0;
	atomic_store_explicit(&vr->held_pub, 0, memory_order_relaxed);
	vr->filled = 0;
}

/* Sizes the pool for the ring's size; only when nothing is held. */
static void pool_setup(struct viod_vring *vr)
{
	const struct viod_device_ops *ops = vr->dev->ops;
	unsigned int depth = ops->queue_depth ? ops->queue_depth : 1;
	unsigned int cap = iov_cap(vr->dev);

	if (depth > vr->num)
		depth = vr->num;
	if (vr->nslots != depth || vr->batch_cap != vr->num) {
		pool_free(vr);
		vr->nslots = depth;
		vr->slots = g_new0(struct viod_req_slot, depth);
		vr->iov_store = g_new(struct iovec, (size_t)depth * cap);
		if (ops->req_priv_size)
			vr->priv_store = g_malloc0(ops->req_priv_size * depth);
		vr->batch_cap = vr->num;
		vr->batch = g_new0(uint16_t, vr->batch_cap);
		for (unsigned int i = 0; i < depth; i++) {
			struct viod_req_slot *s = &vr->slots[i];

			s->vr = vr;
			s->req.iov = vr->iov_store + (size_t)i * cap;
			s->req.priv = ops->req_priv_size ?
				      (uint8_t *)vr->priv_store + i * ops->req_priv_size : NULL;
		}
	}
	pool_reset(vr);
}

struct map_args {
	struct viod_vring *vr;
	void *desc, *avail, *used;
	uint16_t last_avail;
};

/* viod_vq_init reads the used index from guest memory: run it guarded. */
static void map_guarded(void *arg)
{
	struct map_args *a = arg;
	struct viod_vring *vr = a->vr;
	uint64_t f = vr->dev->dp_features;

	viod_vq_init(&vr->vq, &vr->dev->mt->mem, (uint16_t)vr->num, a->desc, a->avail,
		     a->used, a->last_avail,
		     viod_has_feature(f, VIRTIO_RING_F_EVENT_IDX),
		     viod_has_feature(f, VIRTIO_RING_F_INDIRECT_DESC));
}

/*
 * Points the ring at current memory; an unmapped ring is not processed.
 * fresh: the ring is not running, so start from the front-end's base and
 * clear a broken state; otherwise (memory or feature change while
 * running) keep progress and state.
 */
void viod_vring_map(struct viod_vring *vr, bool fresh)
{
	const struct vhost_vring_addr *a = &vr->addr;
	const struct viod_mem *mem = vr->dev->mt ? &vr->dev->mt->mem : NULL;
	struct viod_vq old = vr->vq;
	struct map_args args;
	void *desc, *avail, *used;

	vr->mapped = false;
	if (!vr->addr_set || !vr->num || !mem || !mem->nregions)
		return;
	desc = viod_mem_map_uva(mem, a->desc_user_addr, viod_vring_desc_size(vr->num));
	avail = viod_mem_map_uva(mem, a->avail_user_addr, viod_vring_avail_size(vr->num));
	used = viod_mem_map_uva(mem, a->used_user_addr, viod_vring_used_size(vr->num));
	if (!desc || !avail || !used)
		return;
	/* 2.7: desc 16-, avail 2-, used 4-byte aligned (we access them as such). */
	if (((uintptr_t)desc & 15) || ((uintptr_t)avail & 1) || ((uintptr_t)used & 3))
		return;
	args = (struct map_args){
		.vr = vr, .desc = desc, .avail = avail, .used = used,
		.last_avail = fresh || !old.desc ? vr->base : old.last_avail,
	};
	if (viod_guard_run(map_guarded, &args) < 0)
		return;
	if (!fresh && old.desc) {
		vr->vq.broken = old.broken;
		vr->vq.errors = old.errors;
		vr->vq.used_idx = old.used_idx;
		vr->vq.signalled_used = old.signalled_used;
		vr->vq.signalled_valid = old.signalled_valid;
	} else {
		vr->broken_reported = false;
	}
	vr->mapped = true;
}

int viod_vring_start(struct viod_vring *vr)
{
	int rc = 0;

	viod_vring_map(vr, true);
	pool_setup(vr);
	vr->gen++;
	vr->state = RING_RUNNING;
	vr->last = VIOD_SERVE_IDLE;
	vr->throttle_until = 0;
	vr->nresubmit = vr->resubmit_pos = 0;
	if (vr->mapped && vr->dev->inflight.region)
		rc = viod_inflight_ring_start(vr);
	if (vr->w && vr->kick_fd >= 0 && rc == 0)
		rc = viod_worker_watch(vr->w, vr->kick_fd, vr->idx);
	if (rc < 0)
		vr->state = RING_STOPPED;
	return rc;
}

static void release_guarded(void *arg)
{
	struct viod_vring *vr = arg;

	vr->dev->ops->queue_release(vr->dev, (struct viod_queue *)vr);
}

/* Has the device complete what it holds on purpose (queue_release). */
void viod_vring_release(struct viod_vring *vr)
{
	if (!vr->held || !vr->dev->ops->queue_release)
		return;
	if (viod_guard_run(release_guarded, vr) < 0)
		vr->vq.broken = true;
	viod_queue_flush((struct viod_queue *)vr);
}

/* Waits for the device's I/O on the ring's held requests (queue_drain). */
static void drain_guarded(void *arg)
{
	struct viod_vring *vr = arg;

	vr->dev->ops->queue_drain(vr->dev, (struct viod_queue *)vr);
}

void viod_vring_drain(struct viod_vring *vr)
{
	unsigned int faults = 0;

	if (!vr->held || !vr->dev->ops->queue_drain)
		return;
	/* A fault while completing a request (guest memory shrunk) breaks
	 * the ring, and draining goes on: the device reaps an I/O before it
	 * touches guest memory for it, so each fault costs one completion. */
	while (viod_guard_run(drain_guarded, vr) < 0 && faults++ < 65536u)
		vr->vq.broken = true;
	viod_queue_flush((struct viod_queue *)vr);
}

/* Stops serving and forgets held requests (the device released them
 * and its I/O on them is over); with close_fds, the ring's front-end configuration goes too. */
void viod_vring_reset(struct viod_vring *vr, bool close_fds)
{
	if (vr->w && vr->kick_fd >= 0 && vr->state != RING_STOPPED)
		viod_worker_unwatch(vr->w, vr->kick_fd);
	viod_vring_release(vr);
	viod_vring_drain(vr);
	vr->state = RING_STOPPED;
	vr->gen++;
	pool_reset(vr);
	vr->nresubmit = vr->resubmit_pos = 0;
	vr->ifq = NULL;
	if (vr->stop_cmd) {
		vr->stop_cmd->rc = -ECANCELED;
		viod_cmd_complete(vr->dev, vr->stop_cmd);
		vr->stop_cmd = NULL;
	}
	if (!close_fds)
		return;
	if (vr->kick_fd >= 0)
		close(vr->kick_fd);
	if (vr->call_fd >= 0)
		close(vr->call_fd);
	if (vr->err_fd >= 0)
		close(vr->err_fd);
	vr->kick_fd = vr->call_fd = vr->err_fd = -1;
	vr->num = 0;
	vr->addr_set = false;
	vr->base = 0;
	vr->polled = vr->enabled = vr->mapped = false;
	memset(&vr->vq, 0, sizeof(vr->vq));
}

/*
 * GET_VRING_BASE: the ring takes no new requests; the device completes
 * what it holds on purpose now, and what waits for I/O finishes on its
 * own. True when the ring is quiescent (or broken: its held requests are
 * then dropped, a front-end must reset it anyway).
 */
bool viod_vring_begin_stop(struct viod_vring *vr)
{
	if (vr->state == RING_RUNNING) {
		vr->state = RING_STOPPING;
		viod_vring_release(vr);
	}
	return vr->held == 0 || !vr->mapped || vr->vq.broken || !vr->w;
}

void viod_vring_finish_stop(struct viod_vring *vr)
{
	if (vr->mapped)
		vr->base = vr->vq.last_avail;
	viod_vring_reset(vr, false);
	if (vr->kick_fd >= 0)
		close(vr->kick_fd);
	vr->kick_fd = -1;
}

bool viod_vring_served(const struct viod_vring *vr)
{
	if (!vr->mapped || vr->vq.broken)
		return false;
	if (vr->state == RING_STOPPING)
		return vr->held > 0;
	return vr->state == RING_RUNNING && vr->enabled;
}

void viod_vring_notify(struct viod_vring *vr)
{
	uint64_t one = 1;

	if (vr->call_fd < 0 || !viod_vq_need_call(&vr->vq))
		return;
	/* A full eventfd counter (EAGAIN) still means "signalled". */
	if (write(vr->call_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		viod_dev_warn(vr->dev, "queue %u: call: %s", vr->idx, g_strerror(errno));
}

/* ---- struct viod_queue ---- */

unsigned int viod_queue_index(const struct viod_queue *q)
{
	return ((const struct viod_vring *)q)->idx;
}

unsigned int viod_queue_held(const struct viod_queue *q)
{
	return ((const struct viod_vring *)q)->held;
}

void viod_queue_throttle(struct viod_queue *q, uint64_t until)
{
	ring_of(q)->throttle_until = until;
}

void viod_queue_count_error(struct viod_queue *q)
{
	atomic_fetch_add_explicit(&ring_of(q)->errors, 1, memory_order_relaxed);
	viod_dev_counters_changed(ring_of(q)->dev);
}

struct viod_req *viod_queue_pop(struct viod_queue *q)
{
	struct viod_vring *vr = ring_of(q);
	struct viod_req_slot *s;
	struct viod_vq_chain c;
	int rc;

	if (vr->state != RING_RUNNING || !vr->mapped || vr->vq.broken ||
	    vr->free_head == SLOT_NONE)
		return NULL;
	s = &vr->slots[vr->free_head];
	s->resubmitted = vr->resubmit_pos < vr->nresubmit;
	if (s->resubmitted) {
		rc = viod_vq_walk_head(&vr->vq, vr->resubmit[vr->resubmit_pos], &c,
				       s->req.iov, iov_cap(vr->dev));
		if (rc == 1)
			vr->resubmit_pos++;
	} else {
		rc = viod_vq_pop_iov(&vr->vq, &c, s->req.iov, iov_cap(vr->dev));
		if (rc == 1)
			viod_inflight_pop(vr, c.head);
	}
	if (rc != 1)
		return NULL;
	vr->free_head = s->next_free;
	vr->held++;
	atomic_store_explicit(&vr->held_pub, vr->held, memory_order_relaxed);
	s->busy = true;
	s->gen = vr->gen;
	if (vr->mt_cache != vr->dev->mt)
		viod_vring_mem_switch(vr);
	s->mt = vr->mt_cache;
	s->mt_owned = false;
	vr->mt_users++;
	s->req.head = c.head;
	s->req.out_num = c.out_num;
	s->req.in_num = c.in_num;
	s->req.out_len = c.out_len;
	s->req.in_len = c.in_len;
	s->req.done = 0;
	if (vr->dev->ops->req_priv_size)
		memset(s->req.priv, 0, vr->dev->ops->req_priv_size);
	return &s->req;
}

void viod_vring_mem_switch(struct viod_vring *vr)
{
	if (vr->mt_cache == vr->dev->mt)
		return;
	for (unsigned int i = 0; i < vr->nslots && vr->mt_users; i++) {
		struct viod_req_slot *s = &vr->slots[i];

		if (s->busy && !s->mt_owned) {
			viod_memtable_ref(s->mt);
			s->mt_owned = true;
			vr->mt_users--;
		}
	}
	viod_memtable_unref(vr->mt_cache);
	vr->mt_cache = vr->dev->mt;
	viod_memtable_ref(vr->mt_cache);
	vr->mt_users = 0;
}

static void slot_release(struct viod_vring *vr, struct viod_req_slot *s)
{
	if (s->mt_owned)
		viod_memtable_unref(s->mt);
	else
		vr->mt_users--;
	s->mt = NULL;
	s->mt_owned = false;
	s->busy = false;
	s->next_free = vr->free_head;
	vr->free_head = (unsigned int)(s - vr->slots);
	vr->held--;
	atomic_store_explicit(&vr->held_pub, vr->held, memory_order_relaxed);
}

void viod_queue_unpop(struct viod_queue *q, struct viod_req *r)
{
	struct viod_vring *vr = ring_of(q);
	struct viod_req_slot *s = (struct viod_req_slot *)r;

	if (!s->busy || s->gen != vr->gen)
		return;
	if (s->resubmitted) {
		vr->resubmit_pos--;
	} else {
		viod_vq_unpop(&vr->vq);
		if (vr->ifq)
			vr->ifq->desc[r->head].inflight = 0;
	}
	slot_release(vr, s);
}

void viod_queue_complete(struct viod_queue *q, struct viod_req *r, uint32_t len)
{
	struct viod_vring *vr = ring_of(q);
	struct viod_req_slot *s = (struct viod_req_slot *)r;

	if (!s->busy || s->gen != vr->gen)
		return;
	/* A slot is reused within a handler call: a batch can outgrow the
	 * pool, and a hostile guest can re-post heads we have not published. */
	if (vr->filled == vr->batch_cap)
		viod_queue_flush(q);
	if (!vr->vq.broken) {
		viod_vq_fill(&vr->vq, r->head, len, vr->filled);
		vr->batch[vr->filled++] = r->head;
		viod_inflight_fill(vr, r->head);
		/* Only this worker writes them: no locked instruction. */
		atomic_store_explicit(&vr->requests,
				      atomic_load_explicit(&vr->requests, memory_order_relaxed) + 1,
				      memory_order_relaxed);
		atomic_store_explicit(&vr->bytes,
				      atomic_load_explicit(&vr->bytes, memory_order_relaxed) +
					      r->out_len + len,
				      memory_order_relaxed);
	}
	slot_release(vr, s);
}

void viod_queue_flush(struct viod_queue *q)
{
	struct viod_vring *vr = ring_of(q);
	uint16_t n = vr->filled;

	if (!n)
		return;
	vr->filled = 0;
	viod_vq_flush(&vr->vq, n);
	viod_inflight_flush(vr, n);
	viod_vring_notify(vr);
	viod_dev_counters_changed(vr->dev);
}

/* ---- serving ---- */

/* Reports a ring the guest broke: once per ring setup, rate-limited. */
static void report_broken(struct viod_vring *vr)
{
	uint64_t one = 1;

	if (vr->broken_reported)
		return;
	vr->broken_reported = true;
	atomic_store(&vr->dev->needs_reset, true);
	atomic_fetch_add_explicit(&vr->errors, 1, memory_order_relaxed);
	viod_dev_counters_changed(vr->dev);
	if (vr->err_fd >= 0 && write(vr->err_fd, &one, sizeof(one)) < 0)
		(void)0;
	viod_dev_warn(vr->dev, "queue %u: guest violated the ring protocol; queue stopped until reset",
		      vr->idx);
}

void viod_vring_break(struct viod_vring *vr)
{
	vr->vq.broken = true;
	vr->filled = 0;
	report_broken(vr);
}

struct serve_call {
	struct viod_vring *vr;
	enum viod_serve result;
	bool enable;
	unsigned int pending;
};

static void call_handler(void *arg)
{
	struct serve_call *c = arg;
	struct viod_dev *dev = c->vr->dev;

	c->result = dev->ops->queue_handler(dev, (struct viod_queue *)c->vr);
	viod_queue_flush((struct viod_queue *)c->vr);
}

enum viod_serve viod_vring_serve(struct viod_vring *vr)
{
	struct serve_call c = { .vr = vr, .result = VIOD_SERVE_IDLE };

	if (viod_guard_run(call_handler, &c) < 0) {
		vr->vq.broken = true;
		vr->vq.errors++;
		vr->filled = 0;
		c.result = VIOD_SERVE_IDLE;
	}
	if (vr->vq.broken)
		report_broken(vr);
	viod_vring_check_stop(vr);
	return c.result;
}

/* A stopping ring whose last held request completed (or that broke):
 * stopped now, and the deferred GET_VRING_BASE answered. Called between
 * handler calls and source polls, never from inside one. */
void viod_vring_check_stop(struct viod_vring *vr)
{
	struct viod_cmd *cmd = vr->stop_cmd;

	if (vr->state != RING_STOPPING || !cmd || (vr->held && !vr->vq.broken))
		return;
	vr->stop_cmd = NULL;
	viod_vring_finish_stop(vr);
	cmd->reply.state.num = vr->base;
	viod_cmd_complete(vr->dev, cmd);
}

static void call_pending(void *arg)
{
	struct serve_call *c = arg;
	struct viod_vq *vq = &c->vr->vq;

	viod_vq_set_notify(vq, c->enable);
	c->pending = c->enable ? viod_vq_pending(vq) : 0;
}

/* Asks the guest for kicks (enable) or not; after enabling, returns the
 * chains already available (the caller must not sleep then). */
unsigned int viod_vring_pending(struct viod_vring *vr, bool enable)
{
	struct serve_call c = { .vr = vr, .enable = enable };

	if (viod_guard_run(call_pending, &c) < 0) {
		vr->vq.broken = true;
		vr->vq.errors++;
		report_broken(vr);
		return 0;
	}
	return c.pending;
}
