/*
 * Unit tests for src/virtio/vq.c: split virtqueues in fake two-region guest
 * memory. Normal traffic goes through the driver side (viod_vqd_*); hostile
 * rings are written by hand into the ring memory. The rings sit at the start
 * of region 0 with ASan-poisoned gaps between desc, avail and used so that
 * an overrun of any ring part (e.g. used_event/avail_event at ring[num]) is
 * caught in a sanitizer build.
 *
 * Guest-physical layout:
 *   region 0  [GPA0, GPA0 + SIZE0)   rings from GPA0, data from DATA0
 *   region 1  [gpa1, gpa1 + SIZE1)   data; gpa1 = GPA1_HOLE or GPA0 + SIZE0
 */
#include <endian.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "virtio/vq.h"

#if defined(__SANITIZE_ADDRESS__)
#define HAVE_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HAVE_ASAN 1
#endif
#endif
#ifdef HAVE_ASAN
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define MiB (1024u * 1024u)
#define GPA0 0x100000ull
#define SIZE0 (2u * MiB)
#define DATA0 (GPA0 + 1u * MiB)
#define GPA1_HOLE 0x10000000ull
#define SIZE1 (1u * MiB)
#define RING_GAP 64u

#define F_ADJ 1u     /* region 1 directly after region 0 */
#define F_EVIDX 2u   /* VIRTIO_RING_F_EVENT_IDX */
#define F_INDIR 4u   /* VIRTIO_RING_F_INDIRECT_DESC */

#define R VRING_DESC_F_NEXT
#define W VRING_DESC_F_WRITE
#define I VRING_DESC_F_INDIRECT

struct rig {
	struct viod_mem mem;
	uint8_t *r0, *r1;
	uint64_t gpa1;
	uint16_t num;
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	size_t used_end;      /* offset in r0 just past the used ring */
	struct viod_vqd drv;
	struct viod_vq vq;
	struct viod_vq_elem *e;
};

static size_t align_up(size_t x, size_t a)
{
	return (x + a - 1) & ~(a - 1);
}

static void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n, size);

	if (!p) {
		printf("Bail out! out of memory\n");
		exit(1);
	}
	return p;
}

static void rig_init(struct rig *t, uint16_t num, unsigned int flags)
{
	size_t avail_off, used_off;
	int rc;

	memset(t, 0, sizeof(*t));
	t->num = num;
	t->r0 = xcalloc(1, SIZE0);
	t->r1 = xcalloc(1, SIZE1);
	t->e = xcalloc(1, sizeof(*t->e));
	t->gpa1 = (flags & F_ADJ) ? GPA0 + SIZE0 : GPA1_HOLE;
	t->mem.nregions = 2;
	t->mem.regions[0] = (struct viod_mem_region){
		.gpa = GPA0, .size = SIZE0, .uva = 0x7f0000000000, .host = t->r0 };
	t->mem.regions[1] = (struct viod_mem_region){
		.gpa = t->gpa1, .size = SIZE1, .uva = 0x7f1000000000, .host = t->r1 };

	avail_off = align_up(viod_vring_desc_size(num), RING_GAP) + RING_GAP;
	used_off = align_up(avail_off + viod_vring_avail_size(num), RING_GAP) + RING_GAP;
	t->used_end = used_off + viod_vring_used_size(num);
	t->desc = (struct vring_desc *)t->r0;
	t->avail = (struct vring_avail *)(t->r0 + avail_off);
	t->used = (struct vring_used *)(t->r0 + used_off);

	rc = viod_vqd_init(&t->drv, num, t->desc, t->avail, t->used, flags & F_EVIDX);
	if (rc) {
		printf("Bail out! viod_vqd_init(%u): %d\n", num, rc);
		exit(1);
	}
	POISON(t->r0 + viod_vring_desc_size(num), avail_off - viod_vring_desc_size(num));
	POISON(t->r0 + avail_off + viod_vring_avail_size(num),
	       used_off - avail_off - viod_vring_avail_size(num));
	POISON(t->r0 + t->used_end, RING_GAP);
	viod_vq_init(&t->vq, &t->mem, num, t->desc, t->avail, t->used, 0,
		     flags & F_EVIDX, flags & F_INDIR);
}

static void rig_fini(struct rig *t)
{
	viod_vqd_fini(&t->drv);
	UNPOISON(t->r0, SIZE0);
	free(t->r0);
	free(t->r1);
	free(t->e);
}

/* Host pointer of a guest address the test itself chose (always mapped). */
static void *host(struct rig *t, uint64_t gpa)
{
	void *p = viod_mem_map(&t->mem, gpa, 1);

	if (!p) {
		printf("Bail out! test bug: gpa 0x%llx unmapped\n", (unsigned long long)gpa);
		exit(1);
	}
	return p;
}

static void set_desc(struct vring_desc *d, uint64_t addr, uint32_t len,
		     uint16_t flags, uint16_t next)
{
	d->addr = htole64(addr);
	d->len = htole32(len);
	d->flags = htole16(flags);
	d->next = htole16(next);
}

/* Makes head available by writing the avail ring by hand. */
static void post(struct rig *t, uint16_t head)
{
	uint16_t idx = le16toh(t->avail->idx);

	t->avail->ring[idx & (t->num - 1)] = htole16(head);
	t->avail->idx = htole16((uint16_t)(idx + 1));
}

static uint16_t *used_event(struct rig *t)
{
	return &t->avail->ring[t->num];
}

static uint16_t *avail_event(struct rig *t)
{
	return (uint16_t *)&t->used->ring[t->num];
}

/* Pops and expects a spec violation: -EIO, broken, nothing consumed. */
static void expect_broken(struct rig *t, const char *name)
{
	uint16_t last = t->vq.last_avail;
	int rc = viod_vq_pop(&t->vq, t->e);

	if (!ok(rc == -EIO && t->vq.broken && t->vq.last_avail == last &&
		t->vq.errors == 1, "%s: -EIO, ring broken", name))
		printf("#   rc %d broken %d errors %llu\n", rc, t->vq.broken,
		       (unsigned long long)t->vq.errors);
}

static void expect_pop(struct rig *t, unsigned int out_num, unsigned int in_num,
		       uint64_t out_len, uint64_t in_len, const char *name)
{
	int rc = viod_vq_pop(&t->vq, t->e);

	if (!ok(rc == 1 && t->e->out_num == out_num && t->e->in_num == in_num &&
		t->e->out_len == out_len && t->e->in_len == in_len,
		"%s: popped %u+%u iovecs", name, out_num, in_num))
		printf("#   rc %d out %u/%llu in %u/%llu broken %d\n", rc,
		       t->e->out_num, (unsigned long long)t->e->out_len,
		       t->e->in_num, (unsigned long long)t->e->in_len, t->vq.broken);
}

/* A single-descriptor hand-made hostile chain at head 0. */
static void hostile1(unsigned int flags, uint64_t addr, uint32_t len,
		     uint16_t dflags, uint16_t next, const char *name)
{
	struct rig t;

	rig_init(&t, 8, flags);
	set_desc(&t.desc[0], addr, len, dflags, next);
	post(&t, 0);
	expect_broken(&t, name);
	rig_fini(&t);
}

/* --------------------------------------------------------------------- */

static void test_round_trip(void)
{
	struct rig t;
	uint8_t pattern[100], reply[150], got[200];
	struct viod_vqd_buf bufs[5];
	int marker, head;
	void *cookie = NULL;
	uint32_t len = 0;

	rig_init(&t, 16, 0);
	for (unsigned int i = 0; i < sizeof(pattern); i++)
		pattern[i] = (uint8_t)(i * 7 + 1);
	for (unsigned int i = 0; i < sizeof(reply); i++)
		reply[i] = (uint8_t)(0xa0 ^ i);
	memcpy(host(&t, t.gpa1 + 0x100), pattern, sizeof(pattern));

	bufs[0] = (struct viod_vqd_buf){ t.gpa1 + 0x100, 100, false };
	bufs[1] = (struct viod_vqd_buf){ DATA0, 200, true };
	head = viod_vqd_add(&t.drv, bufs, 2, &marker);
	ok(head >= 0 && head < 16, "round trip: vqd_add gives a head");
	ok(viod_vqd_need_kick(&t.drv), "round trip: driver kicks (no NO_NOTIFY)");
	ok(!viod_vqd_need_kick(&t.drv), "round trip: no second kick for the same chains");
	is(viod_vq_pending(&t.vq), 1, "round trip: one pending");
	expect_pop(&t, 1, 1, 100, 200, "round trip");
	ok(t.e->head == head, "round trip: head matches");
	ok(t.e->iov[0].iov_base == host(&t, t.gpa1 + 0x100) && t.e->iov[0].iov_len == 100,
	   "round trip: readable iovec");
	ok(t.e->iov[1].iov_base == host(&t, DATA0) && t.e->iov[1].iov_len == 200,
	   "round trip: writable iovec");
	is(viod_iov_to_buf(t.e->iov, t.e->out_num, 0, got, sizeof(got)), 100,
	   "round trip: read 100 bytes");
	ok(memcmp(got, pattern, 100) == 0, "round trip: device reads the driver's bytes");
	is(viod_iov_from_buf(&t.e->iov[t.e->out_num], t.e->in_num, 0, reply, sizeof(reply)),
	   150, "round trip: wrote 150 bytes");
	viod_vq_push(&t.vq, t.e->head, 150);
	ok(viod_vq_need_call(&t.vq), "round trip: call (no NO_INTERRUPT)");
	is(viod_vq_pending(&t.vq), 0, "round trip: nothing pending");
	is(viod_vq_pop(&t.vq, t.e), 0, "round trip: pop on empty ring returns 0");
	ok(viod_vqd_has_used(&t.drv), "round trip: driver sees a used entry");
	is(viod_vqd_get_used(&t.drv, &cookie, &len), 1, "round trip: get_used");
	ok(cookie == &marker && len == 150, "round trip: cookie and len");
	ok(memcmp(host(&t, DATA0), reply, 150) == 0, "round trip: driver sees the reply");
	is(viod_vqd_get_used(&t.drv, &cookie, &len), 0, "round trip: no more used");
	is(t.drv.num_free, 16, "round trip: all descriptors free again");

	/* Several readable then several writable, across both regions. */
	bufs[0] = (struct viod_vqd_buf){ DATA0 + 0x1000, 10, false };
	bufs[1] = (struct viod_vqd_buf){ t.gpa1, 20, false };
	bufs[2] = (struct viod_vqd_buf){ DATA0 + 0x2000, 30, false };
	bufs[3] = (struct viod_vqd_buf){ t.gpa1 + 0x1000, 40, true };
	bufs[4] = (struct viod_vqd_buf){ DATA0 + 0x3000, 50, true };
	head = viod_vqd_add(&t.drv, bufs, 5, &marker);
	expect_pop(&t, 3, 2, 60, 90, "5-descriptor chain");
	ok(t.e->head == head &&
	   t.e->iov[0].iov_base == host(&t, DATA0 + 0x1000) &&
	   t.e->iov[1].iov_base == host(&t, t.gpa1) &&
	   t.e->iov[2].iov_base == host(&t, DATA0 + 0x2000) &&
	   t.e->iov[3].iov_base == host(&t, t.gpa1 + 0x1000) &&
	   t.e->iov[4].iov_base == host(&t, DATA0 + 0x3000) &&
	   t.e->iov[2].iov_len == 30 && t.e->iov[4].iov_len == 50,
	   "5-descriptor chain: iovecs in chain order");
	viod_vq_push(&t.vq, t.e->head, 90);
	is(viod_vqd_get_used(&t.drv, &cookie, &len), 1, "5-descriptor chain: get_used");
	is(len, 90, "5-descriptor chain: used len");

	/* unpop gives the same chain back. */
	head = viod_vqd_add(&t.drv, bufs, 5, &marker);
	expect_pop(&t, 3, 2, 60, 90, "unpop: first pop");
	viod_vq_unpop(&t.vq);
	is(viod_vq_pending(&t.vq), 1, "unpop: pending again");
	expect_pop(&t, 3, 2, 60, 90, "unpop: second pop");
	is(t.e->head, head, "unpop: same head");
	rig_fini(&t);
}

static void test_straddle(void)
{
	struct rig t;
	struct viod_vqd_buf b;
	uint8_t data[100];

	rig_init(&t, 8, F_ADJ);
	b = (struct viod_vqd_buf){ t.gpa1 - 50, 100, true };
	viod_vqd_add(&t.drv, &b, 1, NULL);
	expect_pop(&t, 0, 2, 0, 100, "straddle (adjacent regions)");
	ok(t.e->iov[0].iov_base == t.r0 + SIZE0 - 50 && t.e->iov[0].iov_len == 50 &&
	   t.e->iov[1].iov_base == t.r1 && t.e->iov[1].iov_len == 50,
	   "straddle: 50 bytes at the end of region 0, 50 at the start of region 1");
	memset(data, 0x5a, sizeof(data));
	is(viod_iov_from_buf(t.e->iov, 2, 0, data, sizeof(data)), 100, "straddle: write 100");
	ok(t.r0[SIZE0 - 50] == 0x5a && t.r0[SIZE0 - 1] == 0x5a && t.r1[0] == 0x5a &&
	   t.r1[49] == 0x5a && t.r1[50] == 0, "straddle: bytes landed in both regions only");
	rig_fini(&t);

	/* The same address with a hole after region 0. */
	hostile1(0, GPA0 + SIZE0 - 50, 100, W, 0, "buffer straddling into a hole");
}

static void test_ring_walk_hostile(void)
{
	struct rig t;
	struct viod_vqd_buf b[3] = {
		{ DATA0, 10, false }, { DATA0 + 16, 10, false }, { DATA0 + 32, 10, true } };
	int head;
	uint16_t last;

	/* Loop: the last descriptor of a driver-built chain points back. */
	rig_init(&t, 8, 0);
	head = viod_vqd_add(&t.drv, b, 3, NULL);
	last = (uint16_t)head;
	while (le16toh(t.desc[last].flags) & R)
		last = le16toh(t.desc[last].next);
	t.desc[last].flags = htole16(W | R);
	t.desc[last].next = htole16((uint16_t)head);
	expect_broken(&t, "descriptor loop (next points back to head)");
	rig_fini(&t);

	hostile1(0, DATA0, 10, R, 0, "descriptor self-loop");

	/* A chain using every descriptor exactly once is not a loop. */
	rig_init(&t, 8, 0);
	{
		struct viod_vqd_buf eight[8];

		for (unsigned int i = 0; i < 8; i++)
			eight[i] = (struct viod_vqd_buf){ DATA0 + 64 * i, 8, i >= 4 };
		viod_vqd_add(&t.drv, eight, 8, NULL);
	}
	expect_pop(&t, 4, 4, 32, 32, "chain of num descriptors");
	rig_fini(&t);

	/* head >= num */
	rig_init(&t, 8, 0);
	set_desc(&t.desc[0], DATA0, 10, 0, 0);
	post(&t, 8);
	expect_broken(&t, "head == num");
	rig_fini(&t);
	rig_init(&t, 8, 0);
	post(&t, 0xffff);
	expect_broken(&t, "head 0xffff");
	rig_fini(&t);

	/* next >= num, in a driver-built chain. */
	rig_init(&t, 8, 0);
	head = viod_vqd_add(&t.drv, b, 3, NULL);
	t.desc[head].next = htole16(8);
	expect_broken(&t, "next == num");
	rig_fini(&t);
	hostile1(0, DATA0, 10, R, 0xffff, "next 0xffff");

	/* Addresses. */
	hostile1(0, GPA0 + SIZE0 + 16, 8, 0, 0, "address in the hole between regions");
	hostile1(0, 0, 8, 0, 0, "address 0 (below all regions)");
	hostile1(0, 0xdead00000000ull, 8, W, 0, "address far beyond all regions");
	hostile1(0, UINT64_MAX - 16, 100, 0, 0, "address + len wraps");
	hostile1(0, UINT64_MAX, 1, W, 0, "address UINT64_MAX");
	hostile1(0, DATA0, UINT32_MAX, W, 0, "len 0xffffffff past the region");
	hostile1(F_ADJ, GPA0 + 16, SIZE0 + SIZE1, 0, 0, "len past both adjacent regions");

	/* A bad address deep in a chain still breaks the ring. */
	rig_init(&t, 8, 0);
	head = viod_vqd_add(&t.drv, b, 3, NULL);
	t.desc[le16toh(t.desc[head].next)].addr = htole64(GPA1_HOLE - 8);
	expect_broken(&t, "bad address in the middle of a chain");
	rig_fini(&t);

	/* 2.7.4.2: device-writable descriptors come last. */
	rig_init(&t, 8, 0);
	set_desc(&t.desc[0], DATA0, 10, W | R, 1);
	set_desc(&t.desc[1], DATA0 + 16, 10, 0, 0);
	post(&t, 0);
	expect_broken(&t, "readable after writable");
	rig_fini(&t);

	/*
	 * The same with a zero-length writable descriptor first: the order
	 * check in vq_walk() counts writable iovecs (in_num), and a
	 * zero-length descriptor maps to none, so the violation goes
	 * unnoticed. Not a memory-safety issue (the iovec layout stays
	 * consistent), but a spec violation the walker means to reject.
	 */
	rig_init(&t, 8, 0);
	set_desc(&t.desc[0], DATA0, 0, W | R, 1);
	set_desc(&t.desc[1], DATA0 + 16, 10, 0, 0);
	post(&t, 0);
	ok(viod_vq_pop(&t.vq, t.e) == -EIO, "readable after zero-length writable: -EIO");
	rig_fini(&t);
}

/* Writes an indirect table at gpa with n entries; entry i points to data
 * at DATA0 + 64 * i, len 8, readable, chained i -> i + 1. */
static struct vring_desc *linear_table(struct rig *t, uint64_t gpa, unsigned int n)
{
	struct vring_desc *tbl = host(t, gpa);

	for (unsigned int i = 0; i < n; i++)
		set_desc(&tbl[i], DATA0 + 64ull * i, 8, i + 1 < n ? R : 0,
			 (uint16_t)(i + 1 < n ? i + 1 : 0));
	return tbl;
}

static void indirect_hostile(unsigned int n, uint32_t tlen, uint16_t hflags,
			     unsigned int rflags, const char *name)
{
	struct rig t;

	rig_init(&t, 8, rflags);
	linear_table(&t, t.gpa1, n);
	set_desc(&t.desc[0], t.gpa1, tlen, hflags, 1);
	set_desc(&t.desc[1], DATA0, 8, 0, 0);
	post(&t, 0);
	expect_broken(&t, name);
	rig_fini(&t);
}

static void test_indirect(void)
{
	struct rig t;
	struct vring_desc *tbl;

	/* Valid: a non-linear chain inside the table. */
	rig_init(&t, 8, F_INDIR);
	tbl = host(&t, t.gpa1);
	set_desc(&tbl[0], DATA0, 64, R, 2);
	set_desc(&tbl[2], t.gpa1 + 0x1000, 32, R, 1);
	set_desc(&tbl[1], DATA0 + 0x1000, 128, W, 0);
	set_desc(&t.desc[3], t.gpa1, 48, I, 0);
	post(&t, 3);
	expect_pop(&t, 2, 1, 96, 128, "indirect: valid table");
	ok(t.e->head == 3 && t.e->iov[0].iov_base == host(&t, DATA0) &&
	   t.e->iov[1].iov_base == host(&t, t.gpa1 + 0x1000) &&
	   t.e->iov[2].iov_base == host(&t, DATA0 + 0x1000) && t.e->iov[2].iov_len == 128,
	   "indirect: iovecs follow the table's next links");
	viod_vq_push(&t.vq, 3, 77);
	ok(le16toh(t.used->idx) == 1 && le32toh(t.used->ring[0].id) == 3 &&
	   le32toh(t.used->ring[0].len) == 77, "indirect: push writes the used ring");
	/* 2.7.5.3.2: the device ignores WRITE on the table descriptor. */
	set_desc(&t.desc[4], t.gpa1, 48, I | W, 0);
	post(&t, 4);
	expect_pop(&t, 2, 1, 96, 128, "indirect: WRITE on the table descriptor ignored");
	rig_fini(&t);

	/* Table straddling adjacent regions, with an entry across the seam. */
	rig_init(&t, 8, F_INDIR | F_ADJ);
	{
		uint8_t raw[48];
		struct vring_desc d[3];
		struct iovec seam[2];

		set_desc(&d[0], DATA0, 16, R, 1);
		set_desc(&d[1], DATA0 + 100, 24, R, 2);
		set_desc(&d[2], DATA0 + 200, 32, W, 0);
		memcpy(raw, d, sizeof(raw));
		is(viod_mem_map_iov(&t.mem, t.gpa1 - 24, 48, seam, 2), 2, "indirect seam: setup");
		viod_iov_from_buf(seam, 2, 0, raw, sizeof(raw));
	}
	set_desc(&t.desc[0], t.gpa1 - 24, 48, I, 0);
	post(&t, 0);
	expect_pop(&t, 2, 1, 40, 32, "indirect: table across two regions, entry across the seam");
	ok(t.e->iov[1].iov_base == host(&t, DATA0 + 100) && t.e->iov[1].iov_len == 24,
	   "indirect seam: the split entry reads whole");
	rig_fini(&t);

	/* The same table position without region 1 adjacent: into a hole. */
	rig_init(&t, 8, F_INDIR);
	set_desc(&t.desc[0], GPA0 + SIZE0 - 24, 48, I, 0);
	post(&t, 0);
	expect_broken(&t, "indirect: table straddling into a hole");
	rig_fini(&t);
	indirect_hostile(3, 40, I, F_INDIR, "indirect: len not a multiple of 16");
	indirect_hostile(1, 24, I, F_INDIR, "indirect: len 24, chain only in entry 0");
	indirect_hostile(3, 0, I, F_INDIR, "indirect: len 0");
	indirect_hostile(3, 48, I | R, F_INDIR, "indirect: INDIRECT|NEXT");
	indirect_hostile(3, 48, I, 0, "indirect: not negotiated");
	indirect_hostile(4097, 16 * 4097, I, F_INDIR, "indirect: 4097 entries (> VIOD_VQ_MAX_INDIRECT)");

	/* Too big even if the chain only uses entry 0. */
	rig_init(&t, 8, F_INDIR);
	linear_table(&t, t.gpa1, 1);
	set_desc(&t.desc[0], t.gpa1, 16 * (VIOD_VQ_MAX_INDIRECT + 1), I, 0);
	post(&t, 0);
	expect_broken(&t, "indirect: VIOD_VQ_MAX_INDIRECT + 1 entries, one used");
	rig_fini(&t);

	/* Exactly VIOD_VQ_MAX_INDIRECT entries is fine (only entry 0 used). */
	rig_init(&t, 8, F_INDIR);
	linear_table(&t, t.gpa1, 1);
	set_desc(&t.desc[0], t.gpa1, 16 * VIOD_VQ_MAX_INDIRECT, I, 0);
	post(&t, 0);
	expect_pop(&t, 1, 0, 8, 0, "indirect: VIOD_VQ_MAX_INDIRECT entries");
	rig_fini(&t);

	/* Nested indirect. */
	rig_init(&t, 8, F_INDIR);
	tbl = linear_table(&t, t.gpa1, 2);
	set_desc(&tbl[1], t.gpa1 + 0x1000, 16, I, 0);
	linear_table(&t, t.gpa1 + 0x1000, 1);
	set_desc(&t.desc[0], t.gpa1, 32, I, 0);
	post(&t, 0);
	expect_broken(&t, "indirect: nested table (second entry)");
	rig_fini(&t);

	/* Nested in the table's first entry (hop 1 of the table walk). */
	rig_init(&t, 8, F_INDIR);
	tbl = linear_table(&t, t.gpa1, 1);
	set_desc(&tbl[0], t.gpa1 + 0x1000, 16, I, 0);
	linear_table(&t, t.gpa1 + 0x1000, 1);
	set_desc(&t.desc[0], t.gpa1, 16, I, 0);
	post(&t, 0);
	expect_broken(&t, "indirect: nested table (first entry)");
	rig_fini(&t);

	/* An indirect descriptor after a direct one (only a sole head
	 * descriptor may be indirect here, as in QEMU). */
	rig_init(&t, 8, F_INDIR);
	linear_table(&t, t.gpa1, 1);
	set_desc(&t.desc[0], DATA0, 8, R, 1);
	set_desc(&t.desc[1], t.gpa1, 16, I, 0);
	post(&t, 0);
	expect_broken(&t, "indirect: table descriptor not at the head");
	rig_fini(&t);

	/* Loop inside the table. */
	rig_init(&t, 8, F_INDIR);
	tbl = linear_table(&t, t.gpa1, 4);
	set_desc(&tbl[3], DATA0, 8, R, 1);
	set_desc(&t.desc[0], t.gpa1, 64, I, 0);
	post(&t, 0);
	expect_broken(&t, "indirect: loop inside the table");
	rig_fini(&t);

	/* next out of the table (but < num, so only the table bound catches it). */
	rig_init(&t, 8, F_INDIR);
	tbl = linear_table(&t, t.gpa1, 2);
	set_desc(&tbl[1], DATA0, 8, R, 2);
	set_desc(&t.desc[0], t.gpa1, 32, I, 0);
	post(&t, 0);
	expect_broken(&t, "indirect: next beyond the table");
	rig_fini(&t);

	/* Readable after writable inside the table. */
	rig_init(&t, 8, F_INDIR);
	tbl = linear_table(&t, t.gpa1, 2);
	tbl[0].flags = htole16(W | R);
	set_desc(&t.desc[0], t.gpa1, 32, I, 0);
	post(&t, 0);
	expect_broken(&t, "indirect: readable after writable in the table");
	rig_fini(&t);

	/* Bad buffer address inside the table. */
	rig_init(&t, 8, F_INDIR);
	tbl = linear_table(&t, t.gpa1, 2);
	tbl[1].addr = htole64(GPA1_HOLE - 4);
	set_desc(&t.desc[0], t.gpa1, 32, I, 0);
	post(&t, 0);
	expect_broken(&t, "indirect: entry address in a hole");
	rig_fini(&t);

	/* Table address itself unmapped. */
	rig_init(&t, 8, F_INDIR);
	set_desc(&t.desc[0], 0x4000, 32, I, 0);
	post(&t, 0);
	expect_broken(&t, "indirect: table address unmapped");
	rig_fini(&t);
}

/*
 * An indirect table spread over several guest-adjacent but host-scattered
 * regions: up to 4 pieces are accepted (and entries are read across the
 * seams), a 5th piece is refused.
 */
static void test_indirect_scattered(void)
{
	struct rig t;
	struct viod_mem saved;

	for (unsigned int pieces = 4; pieces <= 5; pieces++) {
		rig_init(&t, 8, F_INDIR);
		saved = t.mem;
		/* Region 1 is replaced by `pieces` regions of 24 bytes each
		 * at gpa 0x20000000 + 24 k, backed by r1 + 4096 * k. */
		t.mem.nregions = 1;
		for (unsigned int k = 0; k < pieces; k++)
			t.mem.regions[t.mem.nregions++] = (struct viod_mem_region){
				.gpa = 0x20000000ull + 24 * k, .size = 24,
				.uva = 0x7f2000000000ull + 4096 * k, .host = t.r1 + 4096 * k };
		{
			uint8_t raw[16 * 7];
			struct vring_desc d[7] = { 0 };
			struct iovec piece[5];
			unsigned int nent = pieces * 24 / 16;

			for (unsigned int i = 0; i < nent; i++)
				set_desc(&d[i], DATA0 + 64 * i, 8, i + 1 < nent ? R : 0,
					 (uint16_t)(i + 1));
			memcpy(raw, d, sizeof(raw));
			viod_mem_map_iov(&t.mem, 0x20000000, 16 * nent, piece, 5);
			viod_iov_from_buf(piece, 5, 0, raw, 16 * nent);
			set_desc(&t.desc[0], 0x20000000, 16 * nent, I, 0);
			post(&t, 0);
			if (pieces == 4) {
				expect_pop(&t, nent, 0, 8 * nent, 0,
					   "indirect: table in 4 host-scattered pieces");
				ok(t.e->iov[nent - 1].iov_base == t.r0 + 1 * MiB + 64 * (nent - 1),
				   "indirect: scattered table entries read across seams");
			} else {
				expect_broken(&t, "indirect: table in 5 pieces (more than 4)");
			}
		}
		t.mem = saved;
		rig_fini(&t);
	}
}

static void test_avail_idx(void)
{
	struct rig t;
	struct viod_vqd_buf b = { DATA0, 8, false };

	rig_init(&t, 4, 0);
	t.avail->idx = htole16(5);
	is(viod_vq_pending(&t.vq), 1, "avail idx num+1 ahead: pending reports work");
	expect_broken(&t, "avail idx num+1 ahead");
	is(viod_vq_pending(&t.vq), 0, "broken ring: pending 0");
	rig_fini(&t);

	rig_init(&t, 4, 0);
	t.avail->idx = htole16(0xffff);
	expect_broken(&t, "avail idx behind last_avail (0xffff)");
	rig_fini(&t);

	/* Exactly num available is fine. */
	rig_init(&t, 4, 0);
	for (unsigned int i = 0; i < 4; i++)
		viod_vqd_add(&t.drv, &b, 1, NULL);
	is(viod_vq_pending(&t.vq), 4, "num available: pending num");
	{
		unsigned int n = 0;

		while (viod_vq_pop(&t.vq, t.e) == 1)
			n++;
		ok(n == 4 && !t.vq.broken, "num available: all popped, ring fine");
	}
	rig_fini(&t);

	/* Index arithmetic across the 16-bit wrap. */
	rig_init(&t, 4, 0);
	for (unsigned int i = 0; i < 4; i++)
		set_desc(&t.desc[i], DATA0 + 16 * i, 8, 0, 0);
	viod_vq_init(&t.vq, &t.mem, 4, t.desc, t.avail, t.used, 0xfffe, false, false);
	t.avail->idx = htole16(0xfffe);
	for (unsigned int i = 0; i < 4; i++)
		post(&t, (uint16_t)i);
	is(le16toh(t.avail->idx), 2, "wrap: avail idx wrapped to 2");
	{
		unsigned int n = 0;

		while (viod_vq_pop(&t.vq, t.e) == 1)
			n++;
		ok(n == 4 && !t.vq.broken && t.vq.last_avail == 2, "wrap: 4 popped across 0xffff");
	}
	post(&t, 0);
	t.avail->idx = htole16(2 + 5);
	expect_broken(&t, "wrap: avail idx num+1 ahead after wrap");
	rig_fini(&t);
}

static void test_iov_cap(void)
{
	struct rig t;
	struct vring_desc *tbl;
	const unsigned int cap = VIOD_VQ_MAX_IOV;

	/* cap entries of 1 byte each: exactly at the cap. */
	rig_init(&t, 8, F_INDIR);
	tbl = host(&t, t.gpa1);
	for (unsigned int i = 0; i < cap + 1; i++)
		set_desc(&tbl[i], DATA0 + 2ull * i, 1, R, (uint16_t)(i + 1));
	tbl[cap - 1].flags = 0;
	tbl[cap].flags = 0;
	set_desc(&t.desc[0], t.gpa1, 16 * cap, I, 0);
	post(&t, 0);
	expect_pop(&t, cap, 0, cap, 0, "iov cap: VIOD_VQ_MAX_IOV segments accepted");
	/* cap + 1 entries. */
	tbl[cap - 1].flags = htole16(R);
	set_desc(&t.desc[1], t.gpa1, 16 * (cap + 1), I, 0);
	post(&t, 1);
	expect_broken(&t, "iov cap: VIOD_VQ_MAX_IOV + 1 segments via indirect");
	rig_fini(&t);

	/* cap - 1 descriptors plus one across a region seam = cap + 1 iovecs. */
	rig_init(&t, 8, F_INDIR | F_ADJ);
	tbl = host(&t, DATA0);
	for (unsigned int i = 0; i < cap; i++)
		set_desc(&tbl[i], t.gpa1 + 64 + 2ull * i, 1, R, (uint16_t)(i + 1));
	set_desc(&tbl[cap - 1], t.gpa1 - 1, 2, 0, 0);
	set_desc(&t.desc[0], DATA0, 16 * cap, I, 0);
	post(&t, 0);
	expect_broken(&t, "iov cap: last segment split by a seam exceeds the cap");
	rig_fini(&t);

	/* The same through a direct chain in a big ring. */
	rig_init(&t, 2048, 0);
	for (unsigned int i = 0; i < cap + 1; i++)
		set_desc(&t.desc[i], DATA0 + 2ull * i, 1, i < cap ? R : 0, (uint16_t)(i + 1));
	post(&t, 0);
	expect_broken(&t, "iov cap: VIOD_VQ_MAX_IOV + 1 direct descriptors");
	rig_fini(&t);
}

static void test_broken_sticky(void)
{
	struct rig t;

	rig_init(&t, 8, 0);
	set_desc(&t.desc[0], DATA0, 8, 0, 0);
	post(&t, 9);
	expect_broken(&t, "sticky: break with head 9");
	/* Repair the ring: it must stay broken. */
	t.avail->ring[0] = htole16(0);
	is(viod_vq_pop(&t.vq, t.e), -EIO, "sticky: pop after repair still -EIO");
	is(viod_vq_pop(&t.vq, t.e), -EIO, "sticky: and again");
	is(t.vq.errors, 1, "sticky: one error counted");
	is(viod_vq_pending(&t.vq), 0, "sticky: pending 0");
	t.used->flags = 0;
	viod_vq_set_notify(&t.vq, false);
	is(le16toh(t.used->flags), 0, "sticky: set_notify leaves a broken ring alone");
	rig_fini(&t);
}

static void test_event_idx(void)
{
	struct rig t;
	struct viod_vqd_buf b = { DATA0, 8, true };
	void *cookie;
	uint32_t len;

	rig_init(&t, 8, F_EVIDX);
	for (unsigned int i = 0; i < 7; i++)
		viod_vqd_add(&t.drv, &b, 1, NULL);
	for (unsigned int i = 0; i < 7; i++)
		viod_vq_pop(&t.vq, t.e);
	is(t.vq.last_avail, 7, "event_idx: 7 popped");

	*used_event(&t) = htole16(2);
	viod_vq_push(&t.vq, 0, 0);                                 /* used 1 */
	ok(viod_vq_need_call(&t.vq), "event_idx: first need_call always calls");
	viod_vq_push(&t.vq, 1, 0);                                 /* used 2 */
	ok(!viod_vq_need_call(&t.vq), "event_idx: used 1->2, used_event 2: no call");
	viod_vq_push(&t.vq, 2, 0);                                 /* used 3 */
	ok(viod_vq_need_call(&t.vq), "event_idx: used 2->3 crosses used_event 2: call");
	viod_vq_push(&t.vq, 3, 0);                                 /* used 4 */
	ok(!viod_vq_need_call(&t.vq), "event_idx: used 3->4, event behind: no call");
	ok(!viod_vq_need_call(&t.vq), "event_idx: nothing new pushed: no call");
	*used_event(&t) = htole16(5);
	viod_vq_push(&t.vq, 4, 0);                                 /* used 5 */
	viod_vq_push(&t.vq, 5, 0);                                 /* used 6 */
	ok(viod_vq_need_call(&t.vq), "event_idx: batch 4->6 crosses used_event 5: call");
	*used_event(&t) = htole16(100);
	viod_vq_push(&t.vq, 6, 0);                                 /* used 7 */
	ok(!viod_vq_need_call(&t.vq), "event_idx: used_event far ahead: no call");
	*avail_event(&t) = htole16(0x1234);
	t.avail->flags = htole16(VRING_AVAIL_F_NO_INTERRUPT);
	*used_event(&t) = htole16(7);
	for (unsigned int i = 0; i < 7; i++)
		viod_vqd_get_used(&t.drv, &cookie, &len);
	viod_vqd_add(&t.drv, &b, 1, NULL);
	viod_vq_pop(&t.vq, t.e);
	viod_vq_push(&t.vq, t.e->head, 0);                         /* used 8 */
	ok(viod_vq_need_call(&t.vq), "event_idx: NO_INTERRUPT flag ignored with EVENT_IDX");

	/* Device asks for kicks: avail_event = last_avail. */
	viod_vq_set_notify(&t.vq, false);
	is(le16toh(*avail_event(&t)), 0x1234, "event_idx: set_notify(false) leaves avail_event");
	viod_vq_set_notify(&t.vq, true);
	is(le16toh(*avail_event(&t)), 8, "event_idx: set_notify(true) writes avail_event = last_avail");
	is(le16toh(t.used->flags), 0, "event_idx: used flags untouched");

	/* Driver side honours avail_event. */
	viod_vqd_need_kick(&t.drv);
	viod_vqd_add(&t.drv, &b, 1, NULL);                          /* avail 9 */
	ok(viod_vqd_need_kick(&t.drv), "event_idx: driver kicks when crossing avail_event");
	viod_vqd_add(&t.drv, &b, 1, NULL);                          /* avail 10 */
	ok(!viod_vqd_need_kick(&t.drv), "event_idx: no kick once past avail_event");
	viod_vqd_set_interrupts(&t.drv, true);
	is(le16toh(*used_event(&t)), t.drv.last_used,
	   "event_idx: set_interrupts(true) writes used_event = last_used");
	rig_fini(&t);
}

static void test_flags(void)
{
	struct rig t;
	struct viod_vqd_buf b = { DATA0, 8, true };

	rig_init(&t, 8, 0);
	viod_vqd_add(&t.drv, &b, 1, NULL);
	viod_vq_pop(&t.vq, t.e);
	viod_vq_push(&t.vq, t.e->head, 0);
	viod_vqd_set_interrupts(&t.drv, false);
	is(le16toh(t.avail->flags), VRING_AVAIL_F_NO_INTERRUPT, "flags: driver sets NO_INTERRUPT");
	ok(!viod_vq_need_call(&t.vq), "flags: NO_INTERRUPT suppresses the call");
	viod_vqd_set_interrupts(&t.drv, true);
	ok(viod_vq_need_call(&t.vq), "flags: interrupts back on: call");

	viod_vq_set_notify(&t.vq, false);
	is(le16toh(t.used->flags), VRING_USED_F_NO_NOTIFY, "flags: device sets NO_NOTIFY");
	viod_vqd_need_kick(&t.drv);
	viod_vqd_add(&t.drv, &b, 1, NULL);
	ok(!viod_vqd_need_kick(&t.drv), "flags: NO_NOTIFY suppresses the kick");
	viod_vq_set_notify(&t.vq, true);
	is(le16toh(t.used->flags), 0, "flags: notify back on");
	viod_vqd_add(&t.drv, &b, 1, NULL);
	ok(viod_vqd_need_kick(&t.drv), "flags: kick");
	ok(!viod_vqd_need_kick(&t.drv), "flags: nothing new, no kick");
	rig_fini(&t);
}

/* One used entry written by a (hostile) device. */
static void fake_used(struct rig *t, uint16_t slot, uint32_t id, uint32_t len, uint16_t idx)
{
	t->used->ring[slot & (t->num - 1)].id = htole32(id);
	t->used->ring[slot & (t->num - 1)].len = htole32(len);
	t->used->idx = htole16(idx);
}

static void test_driver_hostile(void)
{
	struct rig t;
	struct viod_vqd_buf b[2] = { { DATA0, 8, false }, { DATA0 + 64, 100, true } };
	struct viod_vqd_buf bad[2] = { { DATA0, 8, true }, { DATA0 + 64, 100, false } };
	void *cookie;
	uint32_t len;
	int head, marker;

	rig_init(&t, 8, 0);
	head = viod_vqd_add(&t.drv, b, 2, NULL);
	fake_used(&t, 0, 8, 0, 1);
	is(viod_vqd_get_used(&t.drv, &cookie, &len), -EIO, "driver: used id == num: -EIO");
	ok(t.drv.broken, "driver: broken");
	fake_used(&t, 0, (uint32_t)head, 0, 1);
	is(viod_vqd_get_used(&t.drv, &cookie, &len), -EIO, "driver: stays broken");
	is(viod_vqd_add(&t.drv, b, 2, NULL), -EINVAL, "driver: add on a broken ring: -EINVAL");
	rig_fini(&t);

	rig_init(&t, 8, 0);
	head = viod_vqd_add(&t.drv, b, 2, NULL);
	fake_used(&t, 0, 0xffffffffu, 0, 1);
	is(viod_vqd_get_used(&t.drv, &cookie, &len), -EIO, "driver: used id 0xffffffff");
	rig_fini(&t);

	rig_init(&t, 8, 0);
	head = viod_vqd_add(&t.drv, b, 2, NULL);
	fake_used(&t, 0, le16toh(t.desc[head].next), 0, 1);
	is(viod_vqd_get_used(&t.drv, &cookie, &len), -EIO,
	   "driver: used id is a non-head descriptor of a chain");
	rig_fini(&t);

	rig_init(&t, 8, 0);
	head = viod_vqd_add(&t.drv, b, 2, NULL);
	fake_used(&t, 0, (uint32_t)(head + 5) % 8, 0, 1);
	is(viod_vqd_get_used(&t.drv, &cookie, &len), -EIO, "driver: used id is a free descriptor");
	rig_fini(&t);

	rig_init(&t, 8, 0);
	head = viod_vqd_add(&t.drv, b, 2, &marker);
	viod_vqd_add(&t.drv, b, 2, NULL);
	fake_used(&t, 0, (uint32_t)head, 100, 1);
	ok(viod_vqd_get_used(&t.drv, &cookie, &len) == 1 && cookie == &marker && len == 100,
	   "driver: len == posted accepted");
	fake_used(&t, 1, (uint32_t)head, 0, 2);
	is(viod_vqd_get_used(&t.drv, &cookie, &len), -EIO, "driver: same id returned twice");
	rig_fini(&t);

	rig_init(&t, 8, 0);
	head = viod_vqd_add(&t.drv, b, 2, NULL);
	fake_used(&t, 0, (uint32_t)head, 101, 1);
	is(viod_vqd_get_used(&t.drv, &cookie, &len), -EIO, "driver: len > posted writable bytes");
	ok(t.drv.broken && t.drv.num_free == 6, "driver: broken, chain not freed");
	rig_fini(&t);

	rig_init(&t, 8, 0);
	head = viod_vqd_add(&t.drv, b, 1, NULL); /* readable only: 0 posted */
	fake_used(&t, 0, (uint32_t)head, 1, 1);
	is(viod_vqd_get_used(&t.drv, &cookie, &len), -EIO, "driver: len 1 on a readable-only chain");
	rig_fini(&t);

	rig_init(&t, 8, 0);
	head = viod_vqd_add(&t.drv, b, 2, NULL);
	fake_used(&t, 0, (uint32_t)head, 0, 9);
	is(viod_vqd_get_used(&t.drv, &cookie, &len), -EIO, "driver: used idx num+1 ahead");
	rig_fini(&t);

	/* Adding. */
	rig_init(&t, 4, 0);
	{
		struct viod_vqd_buf five[5];

		for (unsigned int i = 0; i < 5; i++)
			five[i] = (struct viod_vqd_buf){ DATA0 + 16 * i, 8, false };
		is(viod_vqd_add(&t.drv, five, 5, NULL), -ENOSPC, "driver: chain longer than the ring");
		for (unsigned int i = 0; i < 4; i++)
			viod_vqd_add(&t.drv, five, 1, NULL);
		is(viod_vqd_add(&t.drv, five, 1, NULL), -ENOSPC, "driver: full ring: -ENOSPC");
		ok(!t.drv.broken, "driver: -ENOSPC does not break the ring");
		viod_vq_pop(&t.vq, t.e);
		viod_vq_push(&t.vq, t.e->head, 0);
		viod_vqd_get_used(&t.drv, &cookie, &len);
		ok(viod_vqd_add(&t.drv, five, 1, NULL) >= 0, "driver: add after one came back");
	}
	rig_fini(&t);

	rig_init(&t, 8, 0);
	is(viod_vqd_add(&t.drv, bad, 2, NULL), -EINVAL, "driver: writable then readable: -EINVAL");
	is(viod_vqd_add(&t.drv, b, 0, NULL), -EINVAL, "driver: empty chain: -EINVAL");
	ok(t.drv.num_free == 8 && !t.drv.broken && le16toh(t.avail->idx) == 0,
	   "driver: rejected adds change nothing");
	/*
	 * Used len is 32 bits, so a chain offering more than UINT32_MAX
	 * writable bytes cannot be accounted for; viod_vqd_add sums into a
	 * uint32_t that wraps (here to 0), after which a correct device
	 * reporting len 1 breaks the ring.
	 */
	{
		struct viod_vqd_buf huge[2] = {
			{ DATA0, 0x80000000u, true }, { DATA0, 0x80000000u, true } };

		ok(viod_vqd_add(&t.drv, huge, 2, NULL) == -EINVAL,
		   "driver: writable total > UINT32_MAX: -EINVAL");
	}
	rig_fini(&t);
}

/* xorshift32 with a fixed seed: the same sequence on every run. */
static uint32_t rnd_state = 0x9e3779b9u;

static uint32_t rnd(void)
{
	uint32_t x = rnd_state;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return rnd_state = x;
}

#define STRESS_NUM 64u
#define STRESS_MAXCHAIN 10u

struct model {
	unsigned int n, nread;              /* 0: head not outstanding */
	struct viod_vqd_buf bufs[STRESS_MAXCHAIN];
	uint32_t in_len;
	void *cookie;
	bool popped;
};

static void test_stress(void)
{
	struct rig t;
	static struct model m[STRESS_NUM];
	uint16_t held[STRESS_NUM];
	unsigned int nheld = 0, outstanding = 0, bad = 0, adds = 0, enospc = 0;

	rig_init(&t, STRESS_NUM, 0);
	for (unsigned int cycle = 0; cycle < 10000; cycle++) {
		/* Driver adds a random chain. */
		struct viod_vqd_buf bufs[STRESS_MAXCHAIN];
		unsigned int n = 1 + rnd() % STRESS_MAXCHAIN, nread = rnd() % (n + 1);
		uint32_t in = 0;
		int head;

		for (unsigned int k = 0; k < n; k++) {
			bufs[k].gpa = DATA0 + 4096ull * (rnd() % 64) + 64 * k;
			bufs[k].len = 1 + rnd() % 64;
			bufs[k].writable = k >= nread;
			if (bufs[k].writable)
				in += bufs[k].len;
		}
		head = viod_vqd_add(&t.drv, bufs, n, (void *)(uintptr_t)(cycle + 1));
		if (n > STRESS_NUM - outstanding) {
			bad += head != -ENOSPC;
			enospc++;
		} else if (head < 0 || head >= (int)STRESS_NUM || m[head].n) {
			bad++;
		} else {
			m[head].n = n;
			m[head].nread = nread;
			memcpy(m[head].bufs, bufs, sizeof(bufs));
			m[head].in_len = in;
			m[head].popped = false;
			m[head].cookie = (void *)(uintptr_t)(cycle + 1);
			outstanding += n;
			adds++;
		}

		/* Device pops what is there and checks it against the model. */
		for (;;) {
			int rc = viod_vq_pop(&t.vq, t.e);
			struct model *c;

			if (rc != 1) {
				bad += rc != 0;
				break;
			}
			c = &m[t.e->head];
			if (!c->n || c->popped || t.e->out_num != c->nread ||
			    t.e->in_num != c->n - c->nread || t.e->in_len != c->in_len) {
				bad++;
				continue;
			}
			for (unsigned int k = 0; k < c->n; k++)
				if (t.e->iov[k].iov_base != host(&t, c->bufs[k].gpa) ||
				    t.e->iov[k].iov_len != c->bufs[k].len)
					bad++;
			c->popped = true;
			held[nheld++] = t.e->head;
		}

		/* Device completes a random number of held chains, in random
		 * order; the driver takes them back. */
		for (unsigned int j = rnd() % 4; j > 0 && nheld > 0; j--) {
			unsigned int pick = rnd() % nheld;
			uint16_t h = held[pick];
			uint32_t wlen = m[h].in_len ? rnd() % (m[h].in_len + 1) : 0;
			void *cookie = NULL;
			uint32_t len = 0;

			held[pick] = held[--nheld];
			viod_vq_push(&t.vq, h, wlen);
			if (viod_vqd_get_used(&t.drv, &cookie, &len) != 1 || len != wlen ||
			    cookie != m[h].cookie)
				bad++;
			outstanding -= m[h].n;
			m[h].n = 0;
		}
		if (t.drv.num_free != STRESS_NUM - outstanding)
			bad++;
	}
	/* Drain. */
	while (nheld > 0) {
		void *cookie;
		uint32_t len;
		uint16_t h = held[--nheld];

		viod_vq_push(&t.vq, h, 0);
		if (viod_vqd_get_used(&t.drv, &cookie, &len) != 1)
			bad++;
		outstanding -= m[h].n;
		m[h].n = 0;
	}
	ok(bad == 0 && adds > 1000 && enospc > 0 && !t.drv.broken && !t.vq.broken,
	   "stress: 10000 random add/pop/push/get cycles agree with the model");
	if (bad || adds <= 1000 || enospc == 0)
		printf("#   bad %u adds %u enospc %u\n", bad, adds, enospc);
	is(t.drv.num_free, STRESS_NUM, "stress: all descriptors free after drain");
	{
		/* The free list is a permutation of all descriptors. */
		bool seen[STRESS_NUM] = { false };
		uint16_t i = t.drv.free_head;
		unsigned int k;

		for (k = 0; k < STRESS_NUM && i < STRESS_NUM && !seen[i]; k++) {
			seen[i] = true;
			i = t.drv.next_free[i];
		}
		is(k, STRESS_NUM, "stress: free list visits every descriptor once");
	}
	rig_fini(&t);
}

/* The driver hands back each chain's own cookie, in completion order. */
static void test_cookies(void)
{
	struct rig t;
	int tokens[8];
	struct viod_vqd_buf b = { DATA0, 8, true };
	unsigned int good = 0;

	rig_init(&t, 8, 0);
	for (unsigned int i = 0; i < 8; i++)
		viod_vqd_add(&t.drv, &b, 1, &tokens[i]);
	for (unsigned int i = 0; i < 8; i++)
	{
		viod_vq_pop(&t.vq, t.e);
		viod_vq_push(&t.vq, t.e->head, i);
	}
	for (unsigned int i = 0; i < 8; i++) {
		void *cookie;
		uint32_t len;

		if (viod_vqd_get_used(&t.drv, &cookie, &len) == 1 && cookie == &tokens[i] &&
		    len == i)
			good++;
	}
	is(good, 8, "cookies: each chain's cookie comes back with its len");
	rig_fini(&t);
}

static void test_sizes(void)
{
	struct rig t;
	struct viod_vqd_buf b = { DATA0, 8, true };
	void *cookie;
	uint32_t len;
	unsigned int good;
	struct viod_vqd q;
	uint8_t scratch[64];

	/* Size 1: indices wrap on every chain. */
	for (unsigned int evidx = 0; evidx <= 1; evidx++) {
		rig_init(&t, 1, evidx ? F_EVIDX : 0);
		good = 0;
		for (unsigned int i = 0; i < 5; i++) {
			int head = viod_vqd_add(&t.drv, &b, 1, &t);

			good += head == 0 && viod_vqd_add(&t.drv, &b, 1, NULL) == -ENOSPC &&
				viod_vq_pop(&t.vq, t.e) == 1 && t.e->head == 0;
			viod_vq_set_notify(&t.vq, true);
			viod_vq_push(&t.vq, 0, 8);
			viod_vq_need_call(&t.vq);
			good += viod_vqd_get_used(&t.drv, &cookie, &len) == 1 && cookie == &t &&
				len == 8;
			viod_vqd_set_interrupts(&t.drv, true);
		}
		ok(good == 10, "size 1%s: 5 round trips", evidx ? " with EVENT_IDX" : "");
		if (evidx)
			ok(le16toh(*avail_event(&t)) == 5 && le16toh(*used_event(&t)) == 5,
			   "size 1 with EVENT_IDX: event indices at ring[1]");
		rig_fini(&t);
	}

	/* Size 32768: fill, drain, three times (indices wrap past 0xffff). */
	rig_init(&t, 32768, F_EVIDX);
	good = 0;
	for (unsigned int round = 0; round < 3; round++) {
		unsigned int n = 0, m = 0;
		bool cookies_ok = true;

		for (unsigned int i = 0; i < 32768; i++)
			n += viod_vqd_add(&t.drv, &b, 1, (void *)(uintptr_t)(i + 1)) >= 0;
		n += viod_vqd_add(&t.drv, &b, 1, NULL) == -ENOSPC;
		n += viod_vq_pending(&t.vq) == 32768;
		while (viod_vq_pop(&t.vq, t.e) == 1) {
			viod_vq_push(&t.vq, t.e->head, 1);
			m++;
		}
		viod_vq_need_call(&t.vq);
		viod_vq_set_notify(&t.vq, true);
		for (unsigned int i = 0; i < 32768; i++)
			if (viod_vqd_get_used(&t.drv, &cookie, &len) != 1 ||
			    cookie != (void *)(uintptr_t)(i + 1) || len != 1)
				cookies_ok = false;
		good += n == 32770 && m == 32768 && cookies_ok && !t.vq.broken;
	}
	ok(good == 3 && t.vq.last_avail == (uint16_t)(3u * 32768),
	   "size 32768: three full fill/drain rounds");
	ok(le16toh(*avail_event(&t)) == t.vq.last_avail,
	   "size 32768: avail_event at used->ring[32768]");
	/* A 1024-descriptor chain in the big ring, then a loop over all. */
	{
		static struct viod_vqd_buf big[1024];

		for (unsigned int i = 0; i < 1024; i++)
			big[i] = (struct viod_vqd_buf){ DATA0 + 8ull * i, 4, i >= 512 };
		viod_vqd_add(&t.drv, big, 1024, NULL);
		expect_pop(&t, 512, 512, 2048, 2048, "size 32768: 1024-descriptor chain");
	}
	for (unsigned int i = 0; i < 32768; i++)
		set_desc(&t.desc[i], DATA0, 0, R, (uint16_t)((i + 1) % 32768));
	post(&t, 0);
	expect_broken(&t, "size 32768: zero-length descriptors looping through the whole ring");
	rig_fini(&t);

	/* viod_vq_size_valid and vqd_init. */
	{
		static const struct { uint32_t n; bool valid; } cases[] = {
			{ 0, false }, { 1, true }, { 2, true }, { 3, false }, { 256, true },
			{ 384, false }, { 32768, true }, { 32769, false }, { 49152, false },
			{ 65536, false }, { UINT32_MAX, false }, { 0x80000000u, false },
		};
		unsigned int nok = 0;

		for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
			nok += viod_vq_size_valid(cases[i].n) == cases[i].valid;
		is(nok, sizeof(cases) / sizeof(cases[0]), "viod_vq_size_valid table");
	}
	is(viod_vqd_init(&q, 0, scratch, scratch, scratch, false), -EINVAL, "vqd_init size 0");
	is(viod_vqd_init(&q, 3, scratch, scratch, scratch, false), -EINVAL, "vqd_init size 3");
	ok(viod_vring_desc_size(8) == 128 && viod_vring_avail_size(8) == 22 &&
	   viod_vring_used_size(8) == 70, "ring part sizes for 8 entries");
}

static void test_iov_helpers(void)
{
	uint8_t a[5] = { 1, 2, 3, 4, 5 }, b[3] = { 6, 7, 8 }, out[10] = { 0 };
	uint8_t in[8] = { 10, 11, 12, 13, 14, 15, 16, 17 };
	struct iovec iov[3] = { { a, 5 }, { NULL, 0 }, { b, 3 } };

	is(viod_iov_to_buf(iov, 3, 0, out, sizeof(out)), 8, "iov_to_buf: total capped by iovecs");
	ok(memcmp(out, (uint8_t[]){ 1, 2, 3, 4, 5, 6, 7, 8 }, 8) == 0, "iov_to_buf: bytes");
	is(viod_iov_to_buf(iov, 3, 4, out, 3), 3, "iov_to_buf: offset across a seam");
	ok(out[0] == 5 && out[1] == 6 && out[2] == 7, "iov_to_buf: offset bytes");
	is(viod_iov_to_buf(iov, 3, 8, out, 3), 0, "iov_to_buf: offset at the end");
	is(viod_iov_to_buf(iov, 3, 100, out, 3), 0, "iov_to_buf: offset past the end");
	is(viod_iov_to_buf(iov, 0, 0, out, 3), 0, "iov_to_buf: no iovecs");
	is(viod_iov_from_buf(iov, 3, 3, in, sizeof(in)), 5, "iov_from_buf: offset, capped");
	ok(a[2] == 3 && a[3] == 10 && a[4] == 11 && b[0] == 12 && b[2] == 14,
	   "iov_from_buf: bytes across the seam");
}

int main(void)
{
	test_round_trip();
	test_straddle();
	test_ring_walk_hostile();
	test_indirect();
	test_indirect_scattered();
	test_avail_idx();
	test_iov_cap();
	test_broken_sticky();
	test_event_idx();
	test_flags();
	test_driver_hostile();
	test_stress();
	test_cookies();
	test_sizes();
	test_iov_helpers();
	return tap_done();
}
