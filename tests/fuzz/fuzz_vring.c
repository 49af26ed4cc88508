/*
 * libFuzzer target for the split-ring walker (src/virtio/vq.c) over fake
 * guest memory, plus the driver side's checks on a hostile used ring.
 *
 * Input format (all little-endian; missing bytes read as zero):
 *   0      queue size: num = 1 << (byte % 9), 1..256
 *   1      flags: FL_EVENT_IDX, FL_INDIRECT, FL_ADJACENT, FL_UNPOP,
 *          FL_DRIVER, FL_NOTIFY (see below)
 *   2..3   last_avail the device starts from
 *   4..5   initial used->idx
 *   6      bytes written per chain: byte * 17 (0..4335)
 *   7      reserved
 *   8..    descriptor table (16 * num), avail ring (6 + 2 * num),
 *          then data region A (16 KiB), then data region B (16 KiB)
 *
 * Guest-physical layout (each part its own exact-size heap block, so ASan
 * sees any overrun of a ring part or region):
 *   0x10000 desc   0x20000 avail   0x30000 used
 *   0x40000 data A (16 KiB)
 *   0x44000 data B if FL_ADJACENT (straddling A/B works), else 0x80000
 * Everything else is unmapped. Descriptors may point anywhere, including
 * into the rings themselves.
 *
 * Oracle: sanitizers, plus the invariants in check_elem() (every iovec
 * inside one region, totals consistent, caps respected) and the driver
 * side's promise that a used len never exceeds what was posted.
 *
 * Deterministic, single-threaded, no syscalls besides malloc/free.
 */
#include <endian.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "virtio/vq.h"
#ifndef VIOD_FUZZ_NO_DEVICE
#include <sys/socket.h>
#include <unistd.h>
#include <linux/virtio_config.h>

#include "vhost/vhost.h"

/* One request into the rng device, as if read from its socket. */
static void inject(struct viod_dev *dev, uint32_t req, const void *p, uint32_t n)
{
	struct viod_vu_msg m = { .hdr = { .request = req, .flags = VU_FLAG_VERSION, .size = n } };

	memcpy(&m.u, p, n);
	viod_dev_inject(dev, &m, NULL, 0);
}
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HDR 8u
#define FL_EVENT_IDX 0x01u
#define FL_INDIRECT 0x02u
#define FL_ADJACENT 0x04u
#define FL_UNPOP 0x08u     /* pop, unpop, pop again: same chain */
#define FL_DRIVER 0x10u    /* also fuzz viod_vqd_get_used with data B as used ring */
#define FL_NOTIFY 0x20u    /* toggle set_notify between chains */

#define GPA_DESC 0x10000ull
#define GPA_AVAIL 0x20000ull
#define GPA_USED 0x30000ull
#define GPA_A 0x40000ull
#define GPA_B_ADJ 0x44000ull
#define GPA_B_HOLE 0x80000ull
#define DATA_SIZE 0x4000u

/* Bytes one input may read from readable buffers (beyond first/last). */
#define READ_BUDGET (64u * 1024u)

enum { R_DESC, R_AVAIL, R_USED, R_A, R_B, NREG };

static void fail(void)
{
	__builtin_trap();
}

/* Copies up to n input bytes from *pos into dst, zero-filling the rest. */
static void take(uint8_t *dst, size_t n, const uint8_t *data, size_t size, size_t *pos)
{
	size_t avail = *pos < size ? size - *pos : 0;
	size_t k = avail < n ? avail : n;

	if (k)
		memcpy(dst, data + *pos, k);
	memset(dst + k, 0, n - k);
	*pos += n;
}

static bool in_region(const struct viod_mem *m, const void *base, size_t len)
{
	uintptr_t b = (uintptr_t)base;

	for (unsigned int i = 0; i < m->nregions; i++) {
		uintptr_t h = (uintptr_t)m->regions[i].host;

		if (b >= h && b - h <= m->regions[i].size &&
		    len <= m->regions[i].size - (b - h))
			return true;
	}
	return false;
}

static void check_elem(const struct viod_vq *vq, const struct viod_vq_elem *e)
{
	uint64_t out = 0, in = 0;

	if (e->head >= vq->num || e->out_num > VIOD_VQ_MAX_IOV ||
	    e->in_num > VIOD_VQ_MAX_IOV - e->out_num)
		fail();
	for (unsigned int i = 0; i < e->out_num + e->in_num; i++) {
		/* map_iov never produces empty iovecs. */
		if (e->iov[i].iov_len == 0 ||
		    !in_region(vq->mem, e->iov[i].iov_base, e->iov[i].iov_len))
			fail();
		if (i < e->out_num)
			out += e->iov[i].iov_len;
		else
			in += e->iov[i].iov_len;
	}
	if (out != e->out_len || in != e->in_len)
		fail();
}

/* Reads the readable part: first and last byte of each iovec always,
 * everything while the budget lasts. */
static uint32_t consume(const struct viod_vq_elem *e, size_t *budget)
{
	uint8_t buf[256];
	uint32_t sum = 0;
	size_t off = 0;

	for (unsigned int i = 0; i < e->out_num; i++) {
		const volatile uint8_t *p = e->iov[i].iov_base;

		sum += p[0] + p[e->iov[i].iov_len - 1];
	}
	while (*budget > 0) {
		size_t want = *budget < sizeof(buf) ? *budget : sizeof(buf);
		size_t got = viod_iov_to_buf(e->iov, e->out_num, off, buf, want);

		if (got == 0)
			break;
		for (size_t k = 0; k < got; k++)
			sum = sum * 31 + buf[k];
		off += got;
		*budget -= got;
	}
	return sum;
}

/* Fills the writable part up to cap bytes; returns the bytes written. */
static uint32_t produce(const struct viod_vq_elem *e, size_t cap)
{
	static const uint8_t pat[256] = { 0xa5, 0x5a, 0xff, 0x00, 0x12, 0x34 };
	size_t done = 0;

	for (unsigned int i = e->out_num; i < e->out_num + e->in_num; i++) {
		volatile uint8_t *p = e->iov[i].iov_base;

		p[e->iov[i].iov_len - 1] = 0xee; /* touch the last byte */
	}
	while (done < cap) {
		size_t want = cap - done < sizeof(pat) ? cap - done : sizeof(pat);
		size_t put = viod_iov_from_buf(&e->iov[e->out_num], e->in_num, done, pat, want);

		if (put == 0)
			break;
		done += put;
	}
	return (uint32_t)done;
}

/*
 * Driver side against a hostile device: up to DRV_MAX_ADDS chains, each
 * described by a pair of ctl bytes, are added to a private ring; then the
 * used ring is overwritten with used_bytes and drained. Every accepted
 * entry must name an outstanding chain and a len no larger than posted.
 */
#define DRV_MAX_ADDS 32u

static void fuzz_driver(uint16_t num, bool event_idx, const uint8_t *ctl,
			const uint8_t *used_bytes)
{
	struct viod_vqd q;
	void *d = malloc(viod_vring_desc_size(num));
	void *a = malloc(viod_vring_avail_size(num));
	void *u = malloc(viod_vring_used_size(num));
	uint32_t posted[DRV_MAX_ADDS];  /* by add order; the cookie is order + 1 */
	bool back[DRV_MAX_ADDS] = { false };
	unsigned int nadd = 0;

	if (!d || !a || !u || viod_vqd_init(&q, num, d, a, u, event_idx) != 0)
		goto out_free;
	for (size_t k = 0; k < 2 * DRV_MAX_ADDS; k += 2) {
		struct viod_vqd_buf bufs[8];
		unsigned int n = 1 + (ctl[k] & 7), nread = (ctl[k] >> 3) & 7;
		uint32_t in = 0;
		int head;

		for (unsigned int j = 0; j < n; j++) {
			bufs[j].gpa = GPA_A + 64u * j;
			bufs[j].len = 1u + ctl[k + 1] * (j + 1);
			bufs[j].writable = j >= nread;
			if (bufs[j].writable)
				in += bufs[j].len;
		}
		head = viod_vqd_add(&q, bufs, n, (void *)(uintptr_t)(nadd + 1));
		if (head == -ENOSPC)
			break;
		if (head < 0 || head >= num)
			fail();
		posted[nadd++] = in;
	}
	viod_vqd_need_kick(&q);
	memcpy(u, used_bytes, viod_vring_used_size(num));
	for (unsigned int k = 0; k < 2u * num + 2; k++) {
		void *cookie = NULL;
		uint32_t len = 0;
		int rc = viod_vqd_get_used(&q, &cookie, &len);
		uintptr_t h;

		if (rc == -EIO && !q.broken)
			fail();
		if (rc != 1)
			break;
		h = (uintptr_t)cookie;
		if (h == 0 || h > nadd || back[h - 1] || len > posted[h - 1] ||
		    q.num_free > num)
			fail();
		back[h - 1] = true;
	}
	viod_vqd_has_used(&q);
	viod_vqd_set_interrupts(&q, true);
	viod_vqd_fini(&q);
out_free:
	free(d);
	free(a);
	free(u);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct viod_vq_elem e; /* too big for the stack; reset by pop */
	uint8_t hdr[HDR];
	size_t pos = 0, budget = READ_BUDGET, cap;
	struct viod_mem mem;
	struct viod_vq vq;
	uint8_t *reg[NREG] = { NULL };
	size_t regsize[NREG];
	static const uint64_t reggpa[NREG] = { GPA_DESC, GPA_AVAIL, GPA_USED, GPA_A, 0 };
	uint16_t num, last_avail, used_idx;
	uint8_t flags;
	volatile uint32_t sink = 0;

	take(hdr, HDR, data, size, &pos);
	num = (uint16_t)(1u << (hdr[0] % 9));
	flags = hdr[1];
	last_avail = (uint16_t)(hdr[2] | hdr[3] << 8);
	used_idx = (uint16_t)(hdr[4] | hdr[5] << 8);
	cap = hdr[6] * 17u;

	regsize[R_DESC] = viod_vring_desc_size(num);
	regsize[R_AVAIL] = viod_vring_avail_size(num);
	regsize[R_USED] = viod_vring_used_size(num);
	regsize[R_A] = regsize[R_B] = DATA_SIZE;
	memset(&mem, 0, sizeof(mem));
	for (unsigned int i = 0; i < NREG; i++) {
		reg[i] = malloc(regsize[i]);
		if (!reg[i])
			goto out;
		mem.regions[i] = (struct viod_mem_region){
			.gpa = i == R_B ? (flags & FL_ADJACENT ? GPA_B_ADJ : GPA_B_HOLE) : reggpa[i],
			.size = regsize[i],
			.uva = 0x7f0000000000ull + ((uint64_t)i << 32),
			.host = reg[i],
		};
	}
	mem.nregions = NREG;

	take(reg[R_DESC], regsize[R_DESC], data, size, &pos);
	take(reg[R_AVAIL], regsize[R_AVAIL], data, size, &pos);
	take(reg[R_A], DATA_SIZE, data, size, &pos);
	take(reg[R_B], DATA_SIZE, data, size, &pos);
	memset(reg[R_USED], 0, regsize[R_USED]);
	((struct vring_used *)reg[R_USED])->idx = htole16(used_idx);

	viod_vq_init(&vq, &mem, num, (struct vring_desc *)reg[R_DESC],
		     (struct vring_avail *)reg[R_AVAIL], (struct vring_used *)reg[R_USED],
		     last_avail, flags & FL_EVENT_IDX, flags & FL_INDIRECT);

	sink += viod_vq_pending(&vq);
	/* At most num chains can be available; the bound only guards the
	 * harness against a walker that never reports "empty". */
	for (unsigned int iter = 0; iter < num + 1u; iter++) {
		int rc = viod_vq_pop(&vq, &e);

		if (rc < 0) {
			if (rc != -EIO || !vq.broken || viod_vq_pop(&vq, &e) != -EIO ||
			    viod_vq_pending(&vq) != 0)
				fail();
			break;
		}
		if (rc == 0)
			break;
		check_elem(&vq, &e);
		if ((flags & FL_UNPOP) && iter == 0) {
			uint16_t head = e.head;
			unsigned int out_num = e.out_num, in_num = e.in_num;

			viod_vq_unpop(&vq);
			if (viod_vq_pop(&vq, &e) != 1 || e.head != head ||
			    e.out_num != out_num || e.in_num != in_num)
				fail();
		}
		sink += consume(&e, &budget);
		/* Writes may land in the rings themselves: a guest may point a
		 * buffer at its own descriptor table. */
		viod_vq_push(&vq, e.head, produce(&e, cap));
		sink += viod_vq_need_call(&vq);
		if (flags & FL_NOTIFY) {
			viod_vq_set_notify(&vq, iter & 1);
			sink += viod_vq_pending(&vq);
		}
	}
	viod_vq_set_notify(&vq, true);
	sink += viod_vq_pending(&vq);

#ifndef VIOD_FUZZ_NO_DEVICE
	/*
	 * The same hostile rings, from the start, through the rng device's
	 * queue handler as the worker runs it. A buffer may point into the
	 * rings, so the handler can rewrite the avail index under itself:
	 * bound the passes.
	 */
	{
		struct viod_dev *dev = viod_dev_new_inline(viod_device_lookup("rng"), "fuzz");
		const struct viod_mem_region *rd = &mem.regions[R_DESC];
		const struct viod_mem_region *ra = &mem.regions[R_AVAIL];
		const struct viod_mem_region *ru = &mem.regions[R_USED];
		struct vhost_vring_addr addr = {
			.index = 0, .desc_user_addr = rd->uva, .avail_user_addr = ra->uva,
			.used_user_addr = ru->uva,
		};
		uint64_t features = (1ull << VIRTIO_F_VERSION_1) |
				    (flags & FL_EVENT_IDX ? 1ull << VIRTIO_RING_F_EVENT_IDX : 0) |
				    (flags & FL_INDIRECT ? 1ull << VIRTIO_RING_F_INDIRECT_DESC : 0);
		uint64_t kick = VU_VRING_NOFD;
		int sv[2];

		if (!dev || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
			viod_dev_free(dev);
			goto out;
		}
		dev->ops->init(dev, NULL);
		viod_dev_attach(dev, sv[0]);
		((struct vring_used *)reg[R_USED])->idx = htole16(used_idx);
		viod_dev_set_host_memory(dev, &mem);
		inject(dev, VU_SET_FEATURES, &features, 8);
		inject(dev, VU_SET_VRING_NUM, &(struct vhost_vring_state){ 0, num }, 8);
		inject(dev, VU_SET_VRING_ADDR, &addr, sizeof(addr));
		inject(dev, VU_SET_VRING_BASE, &(struct vhost_vring_state){ 0, last_avail }, 8);
		inject(dev, VU_SET_VRING_KICK, &kick, 8);
		for (int pass = 0; pass < 8; pass++)
			if (viod_dev_run_queues(dev) == 0)
				break;
		viod_server_disconnect(dev, NULL);
		viod_dev_free(dev);
		close(sv[1]);
	}
#endif

	if (flags & FL_DRIVER)
		fuzz_driver(num, flags & FL_EVENT_IDX, reg[R_A], reg[R_B]);
	(void)sink;
out:
	for (unsigned int i = 0; i < NREG; i++)
		free(reg[i]);
	return 0;
}
