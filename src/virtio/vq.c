/*
 * Split virtqueues. Security model: see vq.h. In short, the guest owns the
 * ring memory and is hostile; we read each shared field once, check it,
 * and break the ring (never the process) on a violation.
 */
#include "vq.h"

#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define LOAD_ACQ(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define LOAD(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define STORE_REL(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
/* Full barrier between publishing an index and reading the peer's event
 * index or flags (virtio 1.2, 2.7.7.2 and 2.7.10). */
#define FULL_FENCE() __atomic_thread_fence(__ATOMIC_SEQ_CST)

size_t viod_vring_desc_size(unsigned int num)
{
	return 16u * (size_t)num;
}

size_t viod_vring_avail_size(unsigned int num)
{
	return 6u + 2u * (size_t)num; /* flags, idx, ring[num], used_event */
}

size_t viod_vring_used_size(unsigned int num)
{
	return 6u + 8u * (size_t)num; /* flags, idx, ring[num], avail_event */
}

bool viod_vq_size_valid(uint32_t num)
{
	return num >= 1 && num <= VIOD_VQ_MAX_SIZE && (num & (num - 1)) == 0;
}

static uint16_t *avail_used_event(struct vring_avail *a, uint16_t num)
{
	return &a->ring[num];
}

static uint16_t *used_avail_event(struct vring_used *u, uint16_t num)
{
	return (uint16_t *)&u->ring[num];
}

void viod_vq_init(struct viod_vq *vq, const struct viod_mem *mem, uint16_t num,
		  struct vring_desc *desc, struct vring_avail *avail,
		  struct vring_used *used, uint16_t last_avail,
		  bool event_idx, bool indirect)
{
	memset(vq, 0, sizeof(*vq));
	vq->mem = mem;
	vq->num = num;
	vq->desc = desc;
	vq->avail = avail;
	vq->used = used;
	vq->last_avail = last_avail;
	vq->used_idx = le16toh(LOAD(&used->idx));
	vq->event_idx = event_idx;
	vq->indirect = indirect;
}

static int vq_fail(struct viod_vq *vq)
{
	vq->broken = true;
	vq->errors++;
	return -EIO;
}

unsigned int viod_vq_pending(struct viod_vq *vq)
{
	uint16_t n;

	if (vq->broken || !vq->avail)
		return 0;
	n = (uint16_t)(le16toh(LOAD_ACQ(&vq->avail->idx)) - vq->last_avail);
	/* A bogus index still reports work so that pop() breaks the ring. */
	return n > vq->num ? 1 : n;
}

/*
 * Copies a descriptor into a local. The compiler barrier keeps the copy
 * from being re-read from guest memory later (double-fetch).
 */
static void desc_copy(struct vring_desc *dst, const void *src)
{
	memcpy(dst, src, sizeof(*dst));
	__asm__ __volatile__("" ::: "memory");
}

/* Reads entry i of an indirect table that may span several iovecs. */
static void indirect_read(const struct iovec *tbl, unsigned int ntbl,
			  unsigned int i, struct vring_desc *d)
{
	if (ntbl == 1) {
		desc_copy(d, (const uint8_t *)tbl[0].iov_base + 16u * i);
		return;
	}
	viod_iov_to_buf(tbl, ntbl, 16u * (size_t)i, d, sizeof(*d));
	__asm__ __volatile__("" ::: "memory");
}

static int vq_walk(struct viod_vq *vq, uint16_t head, struct viod_vq_chain *e,
		   struct iovec *iov, unsigned int cap)
{
	struct iovec tbl[4];
	unsigned int ntbl = 0;
	unsigned int idx = head, limit = vq->num, hops = 0;
	bool indirect = false, seen_write = false;

	e->head = head;
	e->out_num = e->in_num = 0;
	e->out_len = e->in_len = 0;
	for (;;) {
		struct vring_desc d;
		uint16_t flags;
		uint64_t addr;
		uint32_t len;
		unsigned int used_iov;
		int n;

		if (++hops > limit)
			return -ELOOP;
		if (indirect)
			indirect_read(tbl, ntbl, idx, &d);
		else
			desc_copy(&d, &vq->desc[idx]);
		flags = le16toh(d.flags);
		addr = le64toh(d.addr);
		len = le32toh(d.len);

		if (flags & VRING_DESC_F_INDIRECT) {
			/* 2.7.5.3.1: only as the chain's sole descriptor here
			 * (as QEMU), never nested, never with NEXT. */
			if (!vq->indirect || indirect || hops != 1 ||
			    (flags & VRING_DESC_F_NEXT))
				return -EINVAL;
			if (len == 0 || len % 16 != 0 ||
			    len / 16 > VIOD_VQ_MAX_INDIRECT)
				return -EINVAL;
			n = viod_mem_map_iov(vq->mem, addr, len, tbl, 4);
			if (n <= 0)
				return -EFAULT;
			ntbl = (unsigned int)n;
			indirect = true;
			idx = 0;
			hops = 0;
			limit = len / 16;
			continue;
		}

		/* 2.7.4.2: all device-writable descriptors come last (counted by
		 * descriptor: a zero-length one maps to no iovec). */
		if (!(flags & VRING_DESC_F_WRITE) && seen_write)
			return -EINVAL;
		seen_write |= (flags & VRING_DESC_F_WRITE) != 0;
		used_iov = e->out_num + e->in_num;
		n = viod_mem_map_iov(vq->mem, addr, len, &iov[used_iov], cap - used_iov);
		if (n < 0)
			return n;
		if (flags & VRING_DESC_F_WRITE) {
			e->in_num += (unsigned int)n;
			e->in_len += len;
		} else {
			e->out_num += (unsigned int)n;
			e->out_len += len;
		}
		if (!(flags & VRING_DESC_F_NEXT))
			return 0;
		idx = le16toh(d.next);
		if (idx >= limit)
			return -ERANGE;
	}
}

int viod_vq_pop_iov(struct viod_vq *vq, struct viod_vq_chain *c,
		    struct iovec *iov, unsigned int cap)
{
	uint16_t avail_idx, head;

	if (vq->broken)
		return -EIO;
	/* The index is shared with the driver's CPU: read it once per batch
	 * of chains, not once per chain. */
	if (!vq->avail_known) {
		avail_idx = le16toh(LOAD_ACQ(&vq->avail->idx));
		if (avail_idx == vq->last_avail)
			return 0;
		/* 2.7.13: the driver never makes more than num chains available. */
		if ((uint16_t)(avail_idx - vq->last_avail) > vq->num)
			return vq_fail(vq);
		vq->avail_known = (uint16_t)(avail_idx - vq->last_avail);
	}
	head = le16toh(LOAD(&vq->avail->ring[vq->last_avail & (vq->num - 1)]));
	if (head >= vq->num)
		return vq_fail(vq);
	if (vq_walk(vq, head, c, iov, cap > VIOD_VQ_MAX_IOV ? VIOD_VQ_MAX_IOV : cap) < 0)
		return vq_fail(vq);
	vq->last_avail++;
	vq->avail_known--;
	return 1;
}

int viod_vq_pop(struct viod_vq *vq, struct viod_vq_elem *e)
{
	struct viod_vq_chain c;
	int rc = viod_vq_pop_iov(vq, &c, e->iov, VIOD_VQ_MAX_IOV);

	if (rc == 1) {
		e->head = c.head;
		e->out_num = c.out_num;
		e->in_num = c.in_num;
		e->out_len = c.out_len;
		e->in_len = c.in_len;
	}
	return rc;
}

int viod_vq_walk_head(struct viod_vq *vq, uint16_t head, struct viod_vq_chain *c,
		      struct iovec *iov, unsigned int cap)
{
	if (vq->broken)
		return -EIO;
	if (head >= vq->num ||
	    vq_walk(vq, head, c, iov, cap > VIOD_VQ_MAX_IOV ? VIOD_VQ_MAX_IOV : cap) < 0)
		return vq_fail(vq);
	return 1;
}

void viod_vq_unpop(struct viod_vq *vq)
{
	vq->last_avail--;
	vq->avail_known++;
}

void viod_vq_rewind(struct viod_vq *vq, uint16_t n)
{
	vq->last_avail = (uint16_t)(vq->last_avail - n);
	vq->avail_known = (uint16_t)(vq->avail_known + n);
}

void viod_vq_fill(struct viod_vq *vq, uint16_t head, uint32_t len, uint16_t off)
{
	struct vring_used_elem *u;

	if (vq->broken)
		return;
	u = &vq->used->ring[(uint16_t)(vq->used_idx + off) & (vq->num - 1)];
	STORE(&u->id, htole32(head));
	STORE(&u->len, htole32(len));
}

void viod_vq_flush(struct viod_vq *vq, uint16_t n)
{
	if (vq->broken || n == 0)
		return;
	vq->used_idx = (uint16_t)(vq->used_idx + n);
	/* The elements must be visible before the index that publishes them. */
	STORE_REL(&vq->used->idx, htole16(vq->used_idx));
}

void viod_vq_push(struct viod_vq *vq, uint16_t head, uint32_t len)
{
	viod_vq_fill(vq, head, len, 0);
	viod_vq_flush(vq, 1);
}

bool viod_vq_need_call(struct viod_vq *vq)
{
	uint16_t old, event;
	bool valid;

	if (vq->broken)
		return false;
	FULL_FENCE();
	if (!vq->event_idx)
		return !(le16toh(LOAD(&vq->avail->flags)) & VRING_AVAIL_F_NO_INTERRUPT);
	old = vq->signalled_used;
	valid = vq->signalled_valid;
	vq->signalled_used = vq->used_idx;
	vq->signalled_valid = true;
	if (!valid)
		return true;
	event = le16toh(LOAD(avail_used_event(vq->avail, vq->num)));
	return vring_need_event(event, vq->used_idx, old);
}

void viod_vq_set_notify(struct viod_vq *vq, bool enable)
{
	if (vq->broken || !vq->used)
		return;
	if (!vq->event_idx)
		STORE(&vq->used->flags, htole16(enable ? 0 : VRING_USED_F_NO_NOTIFY));
	else if (enable)
		STORE(used_avail_event(vq->used, vq->num), htole16(vq->last_avail));
	/* With EVENT_IDX, "disable" is leaving avail_event behind. */
	if (enable)
		FULL_FENCE();
}

size_t viod_iov_to_buf(const struct iovec *iov, unsigned int n, size_t off,
		       void *buf, size_t len)
{
	size_t done = 0;

	for (unsigned int i = 0; i < n && done < len; i++) {
		size_t chunk;

		if (off >= iov[i].iov_len) {
			off -= iov[i].iov_len;
			continue;
		}
		chunk = iov[i].iov_len - off;
		if (chunk > len - done)
			chunk = len - done;
		memcpy((uint8_t *)buf + done, (const uint8_t *)iov[i].iov_base + off, chunk);
		done += chunk;
		off = 0;
	}
	return done;
}

size_t viod_iov_from_buf(const struct iovec *iov, unsigned int n, size_t off,
			 const void *buf, size_t len)
{
	size_t done = 0;

	for (unsigned int i = 0; i < n && done < len; i++) {
		size_t chunk;

		if (off >= iov[i].iov_len) {
			off -= iov[i].iov_len;
			continue;
		}
		chunk = iov[i].iov_len - off;
		if (chunk > len - done)
			chunk = len - done;
		memcpy((uint8_t *)iov[i].iov_base + off, (const uint8_t *)buf + done, chunk);
		done += chunk;
		off = 0;
	}
	return done;
}

/* ------------------------------------------------------------------ */
/* Driver side.                                                        */

int viod_vqd_init(struct viod_vqd *q, uint16_t num, void *desc, void *avail,
		  void *used, bool event_idx)
{
	memset(q, 0, sizeof(*q));
	if (!viod_vq_size_valid(num))
		return -EINVAL;
	q->num = num;
	q->desc = desc;
	q->avail = avail;
	q->used = used;
	q->event_idx = event_idx;
	q->next_free = calloc(num, sizeof(*q->next_free));
	q->chain_len = calloc(num, sizeof(*q->chain_len));
	q->posted_in = calloc(num, sizeof(*q->posted_in));
	q->cookie = calloc(num, sizeof(*q->cookie));
	if (!q->next_free || !q->chain_len || !q->posted_in || !q->cookie) {
		viod_vqd_fini(q);
		return -ENOMEM;
	}
	memset(desc, 0, viod_vring_desc_size(num));
	memset(avail, 0, viod_vring_avail_size(num));
	memset(used, 0, viod_vring_used_size(num));
	for (unsigned int i = 0; i < num; i++)
		q->next_free[i] = (uint16_t)(i + 1);
	q->num_free = num;
	return 0;
}

void viod_vqd_fini(struct viod_vqd *q)
{
	free(q->next_free);
	free(q->chain_len);
	free(q->posted_in);
	free(q->cookie);
	q->next_free = q->chain_len = NULL;
	q->posted_in = NULL;
	q->cookie = NULL;
}

int viod_vqd_add(struct viod_vqd *q, const struct viod_vqd_buf *bufs,
		 unsigned int n, void *cookie)
{
	uint16_t head, i;
	uint64_t in = 0;
	bool seen_writable = false;

	if (n == 0 || q->broken)
		return -EINVAL;
	for (unsigned int k = 0; k < n; k++) {
		if (!bufs[k].writable && seen_writable)
			return -EINVAL;
		seen_writable |= bufs[k].writable;
		if (bufs[k].writable)
			in += bufs[k].len;
	}
	/* The used length is 32 bits (2.7.8): it could not account for more. */
	if (in > UINT32_MAX)
		return -EINVAL;
	if (n > q->num_free)
		return -ENOSPC;

	head = i = q->free_head;
	for (unsigned int k = 0; k < n; k++) {
		struct vring_desc *d = &q->desc[i];
		uint16_t flags = bufs[k].writable ? VRING_DESC_F_WRITE : 0;

		if (k + 1 < n)
			flags |= VRING_DESC_F_NEXT;
		d->addr = htole64(bufs[k].gpa);
		d->len = htole32(bufs[k].len);
		d->flags = htole16(flags);
		d->next = htole16(k + 1 < n ? q->next_free[i] : 0);
		if (k + 1 < n)
			i = q->next_free[i];
	}
	q->free_head = q->next_free[i];
	q->num_free -= n;
	q->chain_len[head] = (uint16_t)n;
	q->posted_in[head] = (uint32_t)in;
	q->cookie[head] = cookie;

	STORE(&q->avail->ring[q->avail_idx & (q->num - 1)], htole16(head));
	q->avail_idx++;
	STORE_REL(&q->avail->idx, htole16(q->avail_idx));
	return head;
}

bool viod_vqd_need_kick(struct viod_vqd *q)
{
	uint16_t old = q->kicked_avail, now = q->avail_idx;

	FULL_FENCE();
	q->kicked_avail = now;
	if (old == now)
		return false;
	if (q->event_idx)
		return vring_need_event(le16toh(LOAD(used_avail_event(q->used, q->num))),
					now, old);
	return !(le16toh(LOAD(&q->used->flags)) & VRING_USED_F_NO_NOTIFY);
}

bool viod_vqd_has_used(struct viod_vqd *q)
{
	return le16toh(LOAD_ACQ(&q->used->idx)) != q->last_used;
}

int viod_vqd_get_used(struct viod_vqd *q, void **cookie, uint32_t *len)
{
	struct vring_used_elem *u;
	uint16_t used_idx, last;
	uint32_t id, l;

	if (q->broken)
		return -EIO;
	used_idx = le16toh(LOAD_ACQ(&q->used->idx));
	if (used_idx == q->last_used)
		return 0;
	if ((uint16_t)(used_idx - q->last_used) > q->num)
		goto broken;
	u = &q->used->ring[q->last_used & (q->num - 1)];
	id = le32toh(LOAD(&u->id));
	l = le32toh(LOAD(&u->len));
	/* Never trust the device: the id must be an outstanding head and the
	 * length no more than what we offered. */
	if (id >= q->num || q->chain_len[id] == 0 || l > q->posted_in[id])
		goto broken;

	last = (uint16_t)id;
	for (unsigned int k = 1; k < q->chain_len[id]; k++)
		last = q->next_free[last];
	q->next_free[last] = q->free_head;
	q->free_head = (uint16_t)id;
	q->num_free += q->chain_len[id];
	q->chain_len[id] = 0;
	q->last_used++;
	*cookie = q->cookie[id];
	*len = l;
	return 1;
broken:
	q->broken = true;
	return -EIO;
}

void viod_vqd_set_interrupts(struct viod_vqd *q, bool enable)
{
	if (!q->event_idx)
		STORE(&q->avail->flags, htole16(enable ? 0 : VRING_AVAIL_F_NO_INTERRUPT));
	else if (enable)
		STORE(avail_used_event(q->avail, q->num), htole16(q->last_used));
	if (enable)
		FULL_FENCE();
}
