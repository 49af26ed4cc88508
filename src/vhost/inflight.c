/*
 * Inflight I/O tracking (vhost-user.rst, "Inflight I/O tracking", split
 * rings): a shared region, one QueueRegionSplit per queue, where the
 * back-end marks each head it pops (with a global counter giving the
 * order) and clears it once the request is used, so that after a crash
 * or a restart the requests that were in flight can be resubmitted when
 * the front-end hands the region back (SET_INFLIGHT_FD) and restarts the
 * ring.
 *
 * Security model: the front-end owns the region and may rewrite or
 * truncate it at any time. Its size is checked before mapping; every
 * access runs guarded (a truncation breaks the ring, like guest memory);
 * what recovery reads (version, size, used index, batch links, inflight
 * flags, counters) is read once, range-checked, and at worst yields
 * chains the ring walker then checks like any other.
 */
#include "vhost.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

_Static_assert(sizeof(struct viod_inflight_desc) == 16, "DescStateSplit is 16 bytes");
_Static_assert(sizeof(struct viod_inflight_queue) == 16, "QueueRegionSplit header is 16 bytes");
_Static_assert(sizeof(struct viod_vu_inflight) == VU_INFLIGHT_SIZE, "inflight payload");

#define LOAD(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)

static bool desc_ok(uint16_t num_queues, uint16_t queue_size)
{
	return num_queues >= 1 && num_queues <= VIOD_MAX_VRINGS &&
	       viod_vq_size_valid(queue_size);
}

int viod_inflight_create(struct viod_dev *dev, struct viod_vu_inflight *desc,
			 int *fd_out)
{
	uint64_t size;
	int fd;

	if (!desc_ok(desc->num_queues, desc->queue_size))
		return -EINVAL;
	size = (uint64_t)desc->num_queues * viod_inflight_queue_size(desc->queue_size);
	fd = memfd_create("viod-inflight", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -errno;
	/* A fresh memfd reads as zeroes: every queue's version 0, "new". */
	if (ftruncate(fd, (off_t)size) < 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL) < 0) {
		int rc = -errno;

		close(fd);
		return rc;
	}
	desc->mmap_size = size;
	desc->mmap_offset = 0;
	desc->padding = 0;
	*fd_out = fd;
	return 0;
}

static void detach_rings(struct viod_dev *dev)
{
	for (unsigned int q = 0; q < VIOD_MAX_VRINGS; q++)
		if (dev->vrings[q])
			dev->vrings[q]->ifq = NULL;
}

void viod_inflight_clear(struct viod_dev *dev)
{
	struct viod_inflight *inf = &dev->inflight;

	detach_rings(dev);
	if (inf->base)
		munmap(inf->base, inf->map_len);
	if (inf->fd >= 0)
		close(inf->fd);
	inf->base = NULL;
	inf->region = NULL;
	inf->fd = -1;
	inf->map_len = 0;
	inf->num_queues = inf->queue_size = 0;
}

int viod_inflight_set(struct viod_dev *dev, const struct viod_vu_inflight *desc, int fd)
{
	struct viod_inflight *inf = &dev->inflight;
	uint64_t need, end, lead, map_off;
	const char *why = "bad inflight description";
	void *base;
	int rc = -EINVAL;

	if (!desc_ok(desc->num_queues, desc->queue_size))
		goto fail;
	need = (uint64_t)desc->num_queues * viod_inflight_queue_size(desc->queue_size);
	if (desc->mmap_size < need || desc->mmap_size > need + (1u << 20) ||
	    __builtin_add_overflow(desc->mmap_offset, desc->mmap_size, &end) ||
	    end > INT64_MAX)
		goto fail;
	rc = viod_mem_fd_check(fd, end, &why);
	if (rc < 0)
		goto fail;
	map_off = desc->mmap_offset & ~(uint64_t)4095;
	lead = desc->mmap_offset - map_off;
	base = mmap(NULL, lead + desc->mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED,
		    fd, (off_t)map_off);
	if (base == MAP_FAILED) {
		rc = -errno;
		why = "mmap failed";
		goto fail;
	}
	viod_inflight_clear(dev);
	inf->fd = fd;
	inf->base = base;
	inf->map_len = lead + desc->mmap_size;
	inf->region = (uint8_t *)base + lead;
	inf->num_queues = desc->num_queues;
	inf->queue_size = desc->queue_size;
	return 0;
fail:
	viod_dev_warn(dev, "inflight region refused: %s", why);
	close(fd);
	return rc;
}

struct recover {
	struct viod_vring *vr;
	struct viod_inflight_queue *q;
	int rc;
};

static int cmp_counter(const void *a, const void *b, void *arg)
{
	const struct viod_inflight_desc *d = arg;
	uint16_t x = *(const uint16_t *)a, y = *(const uint16_t *)b;
	uint64_t cx = LOAD(&d[x].counter), cy = LOAD(&d[y].counter);

	if (cx != cy)
		return cx < cy ? -1 : 1;
	return (x > y) - (x < y);
}

static void recover_guarded(void *arg)
{
	struct recover *r = arg;
	struct viod_vring *vr = r->vr;
	struct viod_inflight_queue *q = r->q;
	struct viod_inflight *inf = &vr->dev->inflight;
	uint16_t num = (uint16_t)vr->num, used = vr->vq.used_idx;
	uint16_t version = LOAD(&q->version), desc_num = LOAD(&q->desc_num);
	uint64_t max_counter = 0;
	unsigned int inuse = 0;

	if (version != VU_INFLIGHT_VERSION || desc_num != num) {
		/* New (version 0), or a region for another ring size: start
		 * afresh, nothing to resubmit. */
		if (version != 0)
			viod_dev_warn(vr->dev, "queue %u: inflight region of version %u for %u entries reset",
				      vr->idx, version, desc_num);
		memset(q->desc, 0, (size_t)num * sizeof(q->desc[0]));
		STORE(&q->features, 0);
		STORE(&q->desc_num, num);
		STORE(&q->last_batch_head, 0);
		STORE(&q->used_idx, used);
		__atomic_thread_fence(__ATOMIC_RELEASE);
		STORE(&q->version, (uint16_t)VU_INFLIGHT_VERSION);
		return;
	}
	/* The back-end died between publishing a batch and clearing its
	 * entries: clear them now (at most the batch's size, following the
	 * list from last_batch_head). */
	if (LOAD(&q->used_idx) != used) {
		uint16_t batch = (uint16_t)(used - LOAD(&q->used_idx));
		uint16_t h = LOAD(&q->last_batch_head);

		for (unsigned int k = 0; k < batch && k < num && h < num; k++) {
			STORE(&q->desc[h].inflight, 0);
			h = LOAD(&q->desc[h].next);
		}
		STORE(&q->used_idx, used);
	}
	g_free(vr->resubmit);
	vr->resubmit = g_new(uint16_t, num);
	for (unsigned int i = 0; i < num; i++) {
		if (!LOAD(&q->desc[i].inflight))
			continue;
		/* Normalise: the flag is a byte the front-end could set to anything. */
		STORE(&q->desc[i].inflight, 1);
		vr->resubmit[inuse++] = (uint16_t)i;
		if (LOAD(&q->desc[i].counter) > max_counter)
			max_counter = LOAD(&q->desc[i].counter);
	}
	qsort_r(vr->resubmit, inuse, sizeof(uint16_t), cmp_counter, q->desc);
	vr->nresubmit = inuse;
	vr->resubmit_pos = 0;
	/* Each used entry and each in-flight head is one chain popped. */
	vr->vq.last_avail = (uint16_t)(used + inuse);
	vr->vq.avail_known = 0;
	if (max_counter + 1 > atomic_load(&inf->counter))
		atomic_store(&inf->counter, max_counter + 1);
}

int viod_inflight_ring_start(struct viod_vring *vr)
{
	struct viod_inflight *inf = &vr->dev->inflight;
	struct recover r = { .vr = vr };

	vr->ifq = NULL;
	if (!inf->region)
		return 0;
	/* A ring the region has no room for runs untracked: refusing it
	 * would stop the guest's disk, but a crash then loses what was in
	 * flight, so say so (QEMU 10.0.13's vhost-user-blk sizes the region
	 * for 128 entries and then sets up larger rings). */
	if (vr->idx >= inf->num_queues || vr->num > inf->queue_size) {
		viod_dev_warn(vr->dev, "queue %u: the inflight region holds %u queues of %u "
			      "entries, the ring has %u: requests on it are not tracked",
			      vr->idx, inf->num_queues, inf->queue_size, vr->num);
		return 0;
	}
	r.q = (struct viod_inflight_queue *)(inf->region + (size_t)vr->idx *
					     viod_inflight_queue_size(inf->queue_size));
	if (viod_guard_run(recover_guarded, &r) < 0) {
		viod_dev_warn(vr->dev, "queue %u: inflight region truncated", vr->idx);
		vr->nresubmit = 0;
		return -EFAULT;
	}
	vr->ifq = r.q;
	if (vr->nresubmit)
		viod_dev_warn(vr->dev, "queue %u: resubmitting %u requests in flight at the last disconnect",
			      vr->idx, vr->nresubmit);
	return 0;
}

void viod_inflight_pop(struct viod_vring *vr, uint16_t head)
{
	struct viod_inflight_desc *d;

	if (!vr->ifq)
		return;
	d = &vr->ifq->desc[head];
	STORE(&d->counter, atomic_fetch_add_explicit(&vr->dev->inflight.counter, 1,
						     memory_order_relaxed));
	__atomic_thread_fence(__ATOMIC_RELEASE);
	STORE(&d->inflight, 1);
}

void viod_inflight_fill(struct viod_vring *vr, uint16_t head)
{
	if (!vr->ifq)
		return;
	STORE(&vr->ifq->desc[head].next, LOAD(&vr->ifq->last_batch_head));
	STORE(&vr->ifq->last_batch_head, head);
}

/* After the used index is published: the batch's entries are no longer
 * in flight, and used_idx catches up (order matters for recovery). */
void viod_inflight_flush(struct viod_vring *vr, uint16_t n)
{
	if (!vr->ifq)
		return;
	__atomic_thread_fence(__ATOMIC_RELEASE);
	for (uint16_t k = 0; k < n; k++)
		STORE(&vr->ifq->desc[vr->batch[k]].inflight, 0);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	STORE(&vr->ifq->used_idx, vr->vq.used_idx);
}
