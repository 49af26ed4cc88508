/*
 * libFuzzer target for the virtio-blk request path (src/devices/blk*.c):
 * structured requests laid out as descriptor chains in fake guest memory
 * and served by an inline blk device, through io_uring, on a 1 MiB memfd
 * image (or the null back end).
 *
 * Input (missing bytes read as zero):
 *   0      device: bit0 read-only, bit1 logical block 4096, bit2 backend
 *          null, bit3 EVENT_IDX, bit4 discard=off
 *   then up to MAX_REQ records of REC bytes each:
 *   0      type: low 3 bits pick IN OUT FLUSH GET_ID DISCARD WRITE_ZEROES
 *          GET_LIFETIME, 7 takes the raw type at 12..15
 *   1      layout: bits 0-1 data descriptors (0-3); bit 2 header split in
 *          two descriptors; bit 3 no status descriptor (the status is the
 *          last data byte); bit 4 header device-writable; bit 5 status
 *          device-readable; bit 6 a zero-length descriptor in the chain
 *   2..3   data length in 512-byte units (% 129); byte 4 added to it
 *          when its bit 7 is set (unaligned lengths)
 *   5      discard / write-zeroes segments (% 20)
 *   6..11  sector (48 bits)
 *   12..15 raw type, or the segments' seed
 *
 * Oracle: sanitizers; every used entry names a posted head with a length
 * no larger than its writable bytes; every status byte the device wrote
 * is OK, IOERR or UNSUPP; the image keeps its size, and a read-only
 * image keeps its bytes.
 */
#include <endian.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>

#include "fuzz-dev.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NUM 64u
#define MAX_REQ 16u
#define REC 16u
#define IMAGE (1u << 20)
#define GPA 0x100000ull
#define MEM (512u << 10)
#define OFF_DESC 0u
#define OFF_AVAIL 0x1000u
#define OFF_USED 0x2000u
#define OFF_DATA 0x3000u
#define SEG_MAX 20u

static void fail(void)
{
	__builtin_trap();
}

static uint8_t pattern(uint64_t off)
{
	return (uint8_t)(off * 131u + (off >> 9));
}

struct layout {
	struct fuzz_arena a;     /* guest memory and its data area */
	struct vring_desc *desc;
	unsigned int ndesc;
	uint32_t writable[NUM];  /* per head */
	uint8_t *status[NUM];    /* where the status byte is, per head */
};

static bool add_desc(struct layout *l, uint64_t gpa, uint32_t len, bool write,
		     unsigned int head)
{
	struct vring_desc *d;

	if (l->ndesc >= NUM)
		return false;
	if (l->ndesc > head)
		l->desc[l->ndesc - 1].flags |= htole16(VRING_DESC_F_NEXT);
	d = &l->desc[l->ndesc];
	d->addr = htole64(gpa);
	d->len = htole32(len);
	d->flags = htole16(write ? VRING_DESC_F_WRITE : 0);
	d->next = htole16((uint16_t)(l->ndesc + 1));
	l->ndesc++;
	if (write)
		l->writable[head] += len;
	return true;
}

/* Lays one request as a chain starting at descriptor l->ndesc. */
static bool build(struct layout *l, const uint8_t *rec, uint8_t devflags)
{
	static const uint32_t types[7] = {
		VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT, VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_GET_ID,
		VIRTIO_BLK_T_DISCARD, VIRTIO_BLK_T_WRITE_ZEROES, 10 /* GET_LIFETIME */,
	};
	unsigned int head = l->ndesc, sel = rec[0] & 7u, lay = rec[1];
	unsigned int ndata = lay & 3u, nseg = rec[5] % SEG_MAX;
	uint32_t raw, len = (uint32_t)((rec[2] | rec[3] << 8) % 129u) * 512u;
	uint32_t type;
	uint64_t sector = 0, gpa;
	struct virtio_blk_outhdr *hdr;
	bool data_write;
	uint8_t *p;

	memcpy(&raw, rec + 12, 4);
	type = sel == 7 ? le32toh(raw) : types[sel];
	for (int i = 0; i < 6; i++)
		sector |= (uint64_t)rec[6 + i] << (8 * i);
	if (rec[4] & 0x80)
		len += rec[4] & 0x7f;
	data_write = type == VIRTIO_BLK_T_IN || type == VIRTIO_BLK_T_GET_ID;
	if ((type == VIRTIO_BLK_T_DISCARD || type == VIRTIO_BLK_T_WRITE_ZEROES) && nseg)
		len = nseg * 16u;
	if (!(hdr = (struct virtio_blk_outhdr *)fuzz_alloc(&l->a, sizeof(*hdr), &gpa)))
		return false;
	hdr->type = htole32(type);
	hdr->ioprio = 0;
	hdr->sector = htole64(sector);
	if (lay & 4u) {
		if (!add_desc(l, gpa, 8, lay & 0x10u, head) ||
		    !add_desc(l, gpa + 8, 8, lay & 0x10u, head))
			return false;
	} else if (!add_desc(l, gpa, sizeof(*hdr), lay & 0x10u, head)) {
		return false;
	}
	if (lay & 0x40u && !add_desc(l, gpa, 0, false, head))
		return false;
	if (ndata && len) {
		if (!(p = fuzz_alloc(&l->a, len, &gpa)))
			return false;
		if (type == VIRTIO_BLK_T_DISCARD || type == VIRTIO_BLK_T_WRITE_ZEROES) {
			for (unsigned int i = 0; i < nseg; i++) {
				struct virtio_blk_discard_write_zeroes s = {
					.sector = htole64(sector + i * 8u * (raw & 3u)),
					.num_sectors = htole32(8u << ((raw >> (2 * (i % 8))) & 3u)),
					.flags = htole32((raw >> (16 + i % 16)) & 3u),
				};

				memcpy(p + 16u * i, &s, sizeof(s));
			}
		} else {
			memset(p, rec[13], len);
		}
		for (unsigned int i = 0; i < ndata; i++) {
			uint32_t part = i + 1 < ndata ? len / ndata : len - (len / ndata) * (ndata - 1);

			if (!add_desc(l, gpa + (len / ndata) * i, part, data_write, head))
				return false;
		}
		if (data_write && len)
			l->status[head] = p + len - 1;
	}
	if (!(lay & 8u)) {
		if (!(p = fuzz_alloc(&l->a, 1, &gpa)))
			return false;
		*p = 0xee;
		if (!add_desc(l, gpa, 1, !(lay & 0x20u), head))
			return false;
		if (!(lay & 0x20u))
			l->status[head] = p;
	}
	if (l->status[head])
		*l->status[head] = 0xee;
	return true;
}

static int make_image(uint8_t *copy)
{
	int fd = memfd_create("fuzz-blk", MFD_CLOEXEC);

	if (fd < 0 || ftruncate(fd, IMAGE) < 0)
		return -1;
	for (uint32_t i = 0; i < IMAGE; i++)
		copy[i] = pattern(i);
	if (pwrite(fd, copy, IMAGE, 0) != IMAGE) {
		close(fd);
		return -1;
	}
	return fd;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t *before, *after;
	uint8_t devflags = size ? data[0] : 0;
	struct layout l = { 0 };
	struct viod_mem mem = { .nregions = 1 };
	struct viod_dev *dev = NULL;
	struct vring_avail *avail;
	struct vring_used *used;
	unsigned int nreq = 0;
	int img = -1, sv[2] = { -1, -1 };
	char opt[64];
	struct stat st;

	if (!before && (!(before = malloc(IMAGE)) || !(after = malloc(IMAGE))))
		return 0;
	l.a = (struct fuzz_arena){ .host = calloc(1, MEM), .gpa = GPA, .start = OFF_DATA,
				   .size = MEM };
	if (!l.a.host)
		return 0;
	l.desc = (struct vring_desc *)(l.a.host + OFF_DESC);
	avail = (struct vring_avail *)(l.a.host + OFF_AVAIL);
	used = (struct vring_used *)(l.a.host + OFF_USED);
	mem.regions[0] = (struct viod_mem_region){
		.gpa = GPA, .size = MEM, .uva = 0x7f0000000000ull, .host = l.a.host,
	};

	for (size_t off = 1; nreq < MAX_REQ && nreq < NUM; off += REC) {
		uint8_t rec[REC] = { 0 };
		unsigned int head = l.ndesc;

		if (off >= size)
			break;
		memcpy(rec, data + off, size - off < REC ? size - off : REC);
		if (!build(&l, rec, devflags))
			break;
		avail->ring[nreq++] = htole16((uint16_t)head);
	}
	avail->idx = htole16((uint16_t)nreq);

	dev = viod_dev_new_inline(viod_device_lookup("blk"), "fuzz");
	if (!dev)
		goto out;
	if (devflags & 4u) {
		dev->ops->set_option(dev, "backend", "null", NULL);
		dev->ops->set_option(dev, "size", "1M", NULL);
	} else {
		if ((img = make_image(before)) < 0)
			goto out;
		snprintf(opt, sizeof(opt), "/proc/self/fd/%d", img);
		dev->ops->set_option(dev, "path", opt, NULL);
	}
	if (devflags & 1u)
		dev->ops->set_option(dev, "read-only", "on", NULL);
	if (devflags & 2u)
		dev->ops->set_option(dev, "logical-block-size", "4096", NULL);
	if (devflags & 16u)
		dev->ops->set_option(dev, "discard", "off", NULL);
	if (dev->ops->init(dev, NULL) < 0 ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		goto out;
	viod_dev_attach(dev, sv[0]);
	viod_dev_set_host_memory(dev, &mem);
	{
		uint64_t features = (1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_BLK_F_FLUSH) |
				    (devflags & 8u ? 1ull << VIRTIO_RING_F_EVENT_IDX : 0);
		struct vhost_vring_addr addr = {
			.index = 0,
			.desc_user_addr = mem.regions[0].uva + OFF_DESC,
			.avail_user_addr = mem.regions[0].uva + OFF_AVAIL,
			.used_user_addr = mem.regions[0].uva + OFF_USED,
		};
		uint64_t kick = VU_VRING_NOFD;

		fuzz_inject(dev, VU_SET_FEATURES, &features, 8);
		fuzz_inject(dev, VU_SET_VRING_NUM, &(struct vhost_vring_state){ 0, NUM }, 8);
		fuzz_inject(dev, VU_SET_VRING_ADDR, &addr, sizeof(addr));
		fuzz_inject(dev, VU_SET_VRING_BASE, &(struct vhost_vring_state){ 0, 0 }, 8);
		fuzz_inject(dev, VU_SET_VRING_KICK, &kick, 8);
	}
	for (int pass = 0; pass < 8; pass++)
		if (viod_dev_run_queues(dev) == 0)
			break;
	/* The disconnect's reset waits for the I/O still in flight. */
	viod_server_disconnect(dev, NULL);
	viod_workers_stop(dev);
	dev->ops->fini(dev);
	viod_dev_free(dev);
	dev = NULL;

	/* Oracle. */
	if (le16toh(used->idx) > nreq)
		fail();
	for (unsigned int i = 0; i < le16toh(used->idx); i++) {
		uint32_t id = le32toh(used->ring[i].id), len = le32toh(used->ring[i].len);
		bool posted = false;

		for (unsigned int k = 0; k < nreq; k++)
			posted |= le16toh(avail->ring[k]) == id;
		if (!posted || id >= NUM || len > l.writable[id])
			fail();
		if (len && l.status[id] && *l.status[id] > VIRTIO_BLK_S_UNSUPP)
			fail();
	}
	if (img >= 0) {
		if (fstat(img, &st) < 0 || st.st_size != IMAGE)
			fail();
		if ((devflags & 1u) &&
		    (pread(img, after, IMAGE, 0) != IMAGE || memcmp(before, after, IMAGE)))
			fail();
	}
out:
	if (dev)
		viod_dev_free(dev);
	if (sv[1] >= 0)
		close(sv[1]);
	if (img >= 0)
		close(img);
	free(l.a.host);
	return 0;
}
