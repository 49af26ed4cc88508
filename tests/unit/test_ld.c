/*
 * ld against a scripted fake block back-end. The fake speaks vhost-user
 * on a UNIX socket from a thread of this process, maps the front-end's
 * memory, serves the rings with the device-side ring code over a 1 MiB
 * disk in memory, and checks what a block device can check of a driver:
 * header first (16 bytes, device-readable), status last (1 byte,
 * device-writable), data segments within seg_max and size_max, data
 * buffers page-aligned, requests inside the disk.
 *
 * Scripted misbehaviour, the part no real peer shows: config space that
 * fails the checks (num_queues 0, blk_size not a power of two, seg_max 0,
 * capacity beyond a byte count), used.len above what was posted, 0, or
 * short of the data, a status the spec does not define, IOERR and UNSUPP,
 * a request never completed.
 */
#include <endian.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>

#include "guest/frontend.h"
#include "guest/ld.h"
#include "fake-backend.h"
#include "support.h"
#include "tap.h"

#define FAKE_QUEUES 8u
#define FAKE_SECTORS 2048u           /* 1 MiB */
#define FAKE_SERIAL "fake-ld-serial"

enum used_mode { USED_RIGHT, USED_TOO_LONG, USED_ZERO, USED_SHORT };

struct fake {
	/* Script: set before attach, or atomic. */
	uint64_t offered;              /* block feature bits */
	struct virtio_blk_config cfg;
	uint64_t queue_num;            /* GET_QUEUE_NUM */
	atomic_int used_mode;          /* enum used_mode, once, then USED_RIGHT */
	atomic_int status_override;    /* status byte to write once, -1: none */
	atomic_bool hold;              /* complete nothing */

	struct test_fake fk;

	/* Disk and findings (fake thread; read under fk.lock). */
	uint8_t *disk;
	unsigned int reqs[FAKE_QUEUES];
	unsigned int by_type[16];
	unsigned int bad_layout;       /* header or status misplaced */
	unsigned int unaligned;        /* data not page-aligned */
	unsigned int max_segs;         /* data segments in a request */
	uint32_t max_seg_len;
	uint64_t max_data;             /* data bytes in a request */
	unsigned int out_of_range;
	unsigned int zero_segs;        /* discard/write-zeroes segments */
	uint32_t max_zero_sectors;
	uint32_t last_flags;
};

static bool fake_in_disk(uint64_t sector, uint64_t n)
{
	return sector <= FAKE_SECTORS && n <= FAKE_SECTORS - sector;
}

/* Discard / write-zeroes: each 16-byte segment of the out data. */
static uint8_t fake_zero(struct fake *f, const struct iovec *iov, unsigned int n,
			 uint64_t len, bool discard)
{
	uint8_t st = VIRTIO_BLK_S_OK;

	if (len == 0 || len % 16)
		return VIRTIO_BLK_S_IOERR;
	for (uint64_t off = 0; off < len; off += 16) {
		struct virtio_blk_discard_write_zeroes seg;
		uint64_t sector;
		uint32_t count, flags;

		viod_iov_to_buf(iov, n, (size_t)off, &seg, sizeof(seg));
		sector = le64toh(seg.sector);
		count = le32toh(seg.num_sectors);
		flags = le32toh(seg.flags);
		f->zero_segs++;
		f->last_flags = flags;
		if (count > f->max_zero_sectors)
			f->max_zero_sectors = count;
		if (discard && flags) {
			st = VIRTIO_BLK_S_UNSUPP; /* 5.2.6.2 */
			continue;
		}
		if (!fake_in_disk(sector, count)) {
			f->out_of_range++;
			st = VIRTIO_BLK_S_IOERR;
			continue;
		}
		memset(f->disk + sector * 512, 0, (size_t)count * 512);
	}
	return st;
}

/* Serves one chain; returns the used length to push. */
static uint32_t fake_request(struct test_fake *fk, unsigned int qi,
			     const struct viod_vq_chain *c)
{
	struct fake *f = fk->opaque;
	struct iovec *iov = f->fk.elem->iov;
	struct virtio_blk_outhdr hdr;
	unsigned int nsegs, ndata_in;
	uint64_t data_len, sector;
	uint32_t type, used = 1;
	uint8_t st = VIRTIO_BLK_S_OK;
	int ov;

	/* Layout (5.2.6): header alone first, status alone last. */
	if (c->out_num < 1 || c->in_num < 1 || iov[0].iov_len != sizeof(hdr) ||
	    iov[c->out_num + c->in_num - 1].iov_len != 1) {
		f->bad_layout++;
		return 0;
	}
	memcpy(&hdr, iov[0].iov_base, sizeof(hdr));
	type = le32toh(hdr.type);
	sector = le64toh(hdr.sector);
	ndata_in = c->in_num - 1;
	nsegs = (c->out_num - 1) + ndata_in;
	data_len = (c->out_len - sizeof(hdr)) + (c->in_len - 1);
	f->reqs[qi]++;
	f->by_type[type < 16 ? type : 15]++;
	if (nsegs > f->max_segs)
		f->max_segs = nsegs;
	if (data_len > f->max_data)
		f->max_data = data_len;
	for (unsigned int i = 1; i < c->out_num + c->in_num - 1; i++) {
		if (iov[i].iov_len > f->max_seg_len)
			f->max_seg_len = (uint32_t)iov[i].iov_len;
	}
	if (nsegs && (type == VIRTIO_BLK_T_IN || type == VIRTIO_BLK_T_OUT) &&
	    ((uintptr_t)iov[1].iov_base & 4095))
		f->unaligned++;

	switch (type) {
	case VIRTIO_BLK_T_IN:
		if (data_len % 512 || !fake_in_disk(sector, data_len / 512)) {
			f->out_of_range++;
			st = VIRTIO_BLK_S_IOERR;
			break;
		}
		viod_iov_from_buf(&iov[c->out_num], ndata_in, 0, f->disk + sector * 512,
				  (size_t)data_len);
		used += (uint32_t)data_len;
		break;
	case VIRTIO_BLK_T_OUT:
		if (data_len % 512 || !fake_in_disk(sector, data_len / 512)) {
			f->out_of_range++;
			st = VIRTIO_BLK_S_IOERR;
			break;
		}
		viod_iov_to_buf(&iov[1], c->out_num - 1, 0, f->disk + sector * 512,
				(size_t)data_len);
		break;
	case VIRTIO_BLK_T_FLUSH:
		break;
	case VIRTIO_BLK_T_GET_ID: {
		char id[VIRTIO_BLK_ID_BYTES] = FAKE_SERIAL;

		used += (uint32_t)viod_iov_from_buf(&iov[c->out_num], ndata_in, 0, id,
						    sizeof(id));
		break;
	}
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES:
		st = fake_zero(f, &iov[1], c->out_num - 1, c->out_len - sizeof(hdr),
			       type == VIRTIO_BLK_T_DISCARD);
		break;
	default:
		st = VIRTIO_BLK_S_UNSUPP;
		break;
	}
	ov = atomic_exchange(&f->status_override, -1);
	if (ov >= 0)
		st = (uint8_t)ov;
	*(uint8_t *)iov[c->out_num + c->in_num - 1].iov_base = st;
	switch (atomic_exchange(&f->used_mode, USED_RIGHT)) {
	case USED_TOO_LONG:
		return (uint32_t)c->in_len + 1;
	case USED_ZERO:
		return 0;
	case USED_SHORT:
		return 1;
	default:
		return used;
	}
}

static void fake_kick(struct test_fake *fk, unsigned int qi)
{
	struct fake *f = fk->opaque;

	if (!atomic_load(&f->hold))
		test_fake_serve(fk, qi, fake_request);
}

/* The default device: 1 MiB, 4 queues, every feature ld takes but RO
 * and SIZE_MAX, discard and write-zeroes in segments of 64 sectors. */
static void fake_defaults(struct fake *f)
{
	f->offered = LD_FEATURES_SUPPORTED & ~((1ull << VIRTIO_BLK_F_RO) |
					       (1ull << VIRTIO_BLK_F_SIZE_MAX));
	f->cfg.capacity = htole64(FAKE_SECTORS);
	f->cfg.seg_max = htole32(126);
	f->cfg.blk_size = htole32(512);
	f->cfg.min_io_size = htole16(1);
	f->cfg.opt_io_size = htole32(1);
	f->cfg.wce = 1;
	f->cfg.num_queues = htole16(4);
	f->cfg.max_discard_sectors = htole32(64);
	f->cfg.max_discard_seg = htole32(1);
	f->cfg.discard_sector_alignment = htole32(1);
	f->cfg.max_write_zeroes_sectors = htole32(64);
	f->cfg.max_write_zeroes_seg = htole32(1);
	f->cfg.write_zeroes_may_unmap = 1;
	f->queue_num = 4;
}

static const struct test_fake_ops fake_ops = {
	.kick = fake_kick,
};

/* Starts the fake (f scripted already) and connects fe to it. */
static int fake_start(struct fake *f, const char *tag, struct viod_fe *fe)
{
	char path[108];
	int r;

	atomic_store(&f->status_override, -1);
	f->fk.features = TEST_FAKE_FEATURES | f->offered;
	f->fk.protocol_features = (1ull << VU_PF_REPLY_ACK) | (1ull << VU_PF_CONFIG) |
				  (1ull << VU_PF_MQ);
	f->fk.queue_num = f->queue_num;
	f->fk.nqueues = FAKE_QUEUES;
	f->fk.config = &f->cfg;
	f->fk.config_size = sizeof(f->cfg);
	f->fk.ops = &fake_ops;
	f->fk.opaque = f;
	snprintf(path, sizeof(path), "/tmp/test-ld-%d-%s.sock", (int)getpid(), tag);
	r = test_fake_connect(&f->fk, path, fe, 16u << 20, 2);
	/* Nothing reads the disk before ld attaches. */
	f->disk = calloc(FAKE_SECTORS, 512);
	return r < 0 ? r : f->disk ? 0 : -1;
}

static void fake_stop(struct fake *f)
{
	test_fake_stop(&f->fk);
	free(f->disk);
	f->disk = NULL;
}

/* Starts the fake (f scripted already) and attaches ld with o (NULL:
 * defaults, 1 s timeout). */
static int attach(struct fake *f, struct viod_fe *fe, struct ld *sc, const char *tag,
		  const struct ld_opts *o)
{
	struct ld_opts lo;
	int r;

	memset(sc, 0, sizeof(*sc));
	r = fake_start(f, tag, fe);
	if (r < 0)
		return r;
	if (!o) {
		ld_opts_init(&lo);
		lo.timeout_ms = 1000;
		o = &lo;
	}
	return ld_attach(sc, fe, o);
}

static void finish(struct fake *f, struct viod_fe *fe, struct ld *sc)
{
	ld_detach(sc);
	viod_fe_disconnect(fe);
	fake_stop(f);
}

static void fill(uint8_t *p, size_t len, uint8_t seed)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(seed + i * 7 + i / 512);
}

static void test_io(void)
{
	struct fake f = { 0 };
	struct viod_fe fe;
	struct ld sc;
	uint8_t id[VIRTIO_BLK_ID_BYTES];
	uint8_t *w = malloc(1u << 20), *rd = malloc(1u << 20), zero[64 * 512] = { 0 };
	int r;

	fake_defaults(&f);
	r = attach(&f, &fe, &sc, "io", NULL);
	if (!ok(r == 0, "attach") || !w || !rd) {
		printf("# %s\n", viod_fe_strerror(&fe));
		finish(&f, &fe, &sc);
		free(w);
		free(rd);
		return;
	}
	is(sc.geo.capacity, FAKE_SECTORS, "capacity read from config");
	is(sc.geo.num_queues, 4, "num_queues read");
	is(sc.nqueues, 1, "one queue in use by default");
	ok(sc.geo.writeback, "writeback from the wce byte");
	is(sc.max_transfer, LD_DEFAULT_MAX_TRANSFER, "max transfer as asked");

	fill(w, 1u << 20, 3);
	is(ld_write(&sc, 0, w, 1u << 20), 0, "write the whole disk");
	ok(memcmp(f.disk, w, 1u << 20) == 0, "the device holds it");
	memset(rd, 0, 1u << 20);
	is(ld_read(&sc, 0, rd, 1u << 20), 0, "read the whole disk");
	ok(memcmp(rd, w, 1u << 20) == 0, "read back equals written");
	is(ld_read(&sc, FAKE_SECTORS - 1, rd, 512), 0, "read the last sector");
	is(ld_flush(&sc), 0, "flush");
	is(ld_get_id(&sc, id), 0, "get-id");
	ok(strncmp((char *)id, FAKE_SERIAL, sizeof(id)) == 0, "the serial");

	pthread_mutex_lock(&f.fk.lock);
	is(f.max_data, LD_DEFAULT_MAX_TRANSFER, "requests of at most max_transfer bytes");
	is(f.max_segs, 1, "a contiguous buffer is one data segment");
	is(f.unaligned, 0, "data buffers page-aligned");
	is(f.bad_layout, 0, "header first, status last");
	is(f.out_of_range, 0, "nothing out of range reached the device");
	is(f.by_type[VIRTIO_BLK_T_FLUSH], 1, "one flush");
	pthread_mutex_unlock(&f.fk.lock);

	/* Range checks in the driver: nothing is sent. */
	is(ld_read(&sc, FAKE_SECTORS, rd, 512), -ERANGE, "read at the capacity: -ERANGE");
	is(ld_read(&sc, FAKE_SECTORS - 1, rd, 1024), -ERANGE, "read across the end: -ERANGE");
	is(ld_write(&sc, UINT64_MAX >> 9, w, 512), -ERANGE, "write far past: -ERANGE");
	is(ld_read(&sc, 0, rd, 100), -EINVAL, "part of a sector: -EINVAL");
	is(ld_read(&sc, 0, rd, 0), -EINVAL, "nothing: -EINVAL");
	is(ld_discard(&sc, FAKE_SECTORS - 8, 16), -ERANGE, "discard across the end: -ERANGE");
	pthread_mutex_lock(&f.fk.lock);
	is(f.out_of_range, 0, "none of them reached the device");
	pthread_mutex_unlock(&f.fk.lock);
	ok(!sc.broken, "refusals leave the driver usable");

	/* Discard and write-zeroes in segments of the device's maximum. */
	is(ld_discard(&sc, 100, 200), 0, "discard 200 sectors");
	is(ld_write_zeroes(&sc, 400, 64, true), 0, "write-zeroes with unmap");
	pthread_mutex_lock(&f.fk.lock);
	is(f.zero_segs, 5, "discard split at 64 sectors (4), write-zeroes 1");
	is(f.max_zero_sectors, 64, "no segment above 64 sectors");
	is(f.last_flags, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP, "unmap flag sent");
	ok(memcmp(f.disk + 100 * 512, zero, sizeof(zero)) == 0 &&
	   memcmp(f.disk + 400 * 512, zero, sizeof(zero)) == 0, "ranges zeroed");
	pthread_mutex_unlock(&f.fk.lock);

	/* The raw entry point sends what the driver would refuse. */
	{
		struct ld_raw_req rq = { .type = VIRTIO_BLK_T_IN, .sector = FAKE_SECTORS,
					 .in = rd, .in_len = 512 };
		uint8_t st = 0;
		uint32_t len = 0;

		is(ld_raw(&sc, 0, &rq, &st, &len), 0, "raw read past the end sent");
		is(st, VIRTIO_BLK_S_IOERR, "the device answered IOERR");
		is(len, 1, "used.len 1");
		rq = (struct ld_raw_req){ .type = 77 };
		is(ld_raw(&sc, 0, &rq, &st, &len), 0, "raw unknown type sent");
		is(st, VIRTIO_BLK_S_UNSUPP, "the device answered UNSUPP");
	}
	is(ld_read(&sc, 0, rd, 4096), 0, "still usable after raw refusals");
	finish(&f, &fe, &sc);
	free(w);
	free(rd);
}

/* seg_max 2 and size_max 4 KiB: 8 KiB per request, two descriptors. */
static void test_segments(void)
{
	struct fake f = { 0 };
	struct viod_fe fe;
	struct ld_opts o;
	struct ld sc;
	uint8_t *w = malloc(65536), *rd = calloc(1, 65536);
	int r;

	fake_defaults(&f);
	f.offered |= 1ull << VIRTIO_BLK_F_SIZE_MAX;
	f.cfg.size_max = htole32(4096);
	f.cfg.seg_max = htole32(2);
	ld_opts_init(&o);
	o.timeout_ms = 1000;
	o.queue_depth = 4;
	r = attach(&f, &fe, &sc, "seg", &o);
	if (!ok(r == 0, "attach with seg_max 2, size_max 4096") || !w || !rd) {
		finish(&f, &fe, &sc);
		free(w);
		free(rd);
		return;
	}
	is(sc.max_transfer, 8192, "max transfer lowered to 8 KiB");
	fill(w, 65536, 9);
	is(ld_write(&sc, 64, w, 65536), 0, "write 64 KiB");
	is(ld_read(&sc, 64, rd, 65536), 0, "read it back");
	ok(memcmp(w, rd, 65536) == 0, "data intact across split requests");
	pthread_mutex_lock(&f.fk.lock);
	is(f.max_segs, 2, "at most seg_max data segments");
	is(f.max_seg_len, 4096, "none above size_max");
	is(f.reqs[0], 16, "8 requests each way");
	pthread_mutex_unlock(&f.fk.lock);
	finish(&f, &fe, &sc);

	/* seg_size cuts further, within seg_max. */
	memset(&f, 0, sizeof(f));
	fake_defaults(&f);
	o.seg_size = 512;
	r = attach(&f, &fe, &sc, "seg512", &o);
	ok(r == 0, "attach with 512-byte segments");
	is(ld_write(&sc, 0, w, 65536), 0, "write 64 KiB in 512-byte descriptors");
	is(ld_read(&sc, 0, rd, 65536), 0, "read it back");
	ok(memcmp(w, rd, 65536) == 0, "data intact");
	pthread_mutex_lock(&f.fk.lock);
	is(f.max_seg_len, 512, "descriptors of 512 bytes");
	is(f.max_segs, 126, "up to the ring's room (queue size 128 - 2)");
	pthread_mutex_unlock(&f.fk.lock);
	finish(&f, &fe, &sc);
	free(w);
	free(rd);
}

/* Config space that fails the checks. */
static void test_bad_config(void)
{
	static const struct {
		const char *what;
		int field;           /* which field to spoil */
		uint64_t value;
	} cases[] = {
		{ "num_queues 0", 0, 0 },
		{ "blk_size 1000", 1, 1000 },
		{ "blk_size 256", 1, 256 },
		{ "blk_size 1 MiB", 1, 1u << 20 },
		{ "seg_max 0", 2, 0 },
		{ "capacity past a byte count", 3, UINT64_MAX },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct fake f = { 0 };
		struct viod_fe fe;
		struct ld sc;
		char tag[16];
		int r;

		fake_defaults(&f);
		switch (cases[i].field) {
		case 0: f.cfg.num_queues = htole16((uint16_t)cases[i].value); break;
		case 1: f.cfg.blk_size = htole32((uint32_t)cases[i].value); break;
		case 2: f.cfg.seg_max = htole32((uint32_t)cases[i].value); break;
		default: f.cfg.capacity = htole64(cases[i].value); break;
		}
		snprintf(tag, sizeof(tag), "cfg%zu", i);
		r = attach(&f, &fe, &sc, tag, NULL);
		is(r, -EPROTO, cases[i].what);
		ok(sc.broken, "%s: driver broken", cases[i].what);
		finish(&f, &fe, &sc);
	}
}

/* A device with more queues than ld can use, and one with 1 MiB blocks
 * refused above; here 4 KiB blocks and what it asks of requests. */
static void test_queues_and_blocks(void)
{
	struct fake f = { 0 };
	struct viod_fe fe;
	struct ld_opts o;
	struct ld sc;
	uint8_t buf[8192];
	int r;

	fake_defaults(&f);
	f.cfg.num_queues = htole16(64);
	f.queue_num = 64;
	f.cfg.blk_size = htole32(4096);
	ld_opts_init(&o);
	o.nqueues = LD_MAX_QUEUES;
	o.max_transfer = 16384;   /* 8 queues of 16 slots in 16 MiB */
	o.timeout_ms = 1000;
	r = attach(&f, &fe, &sc, "mq", &o);
	ok(r == 0, "attach to a device with 64 queues");
	is(sc.nqueues, LD_MAX_QUEUES, "uses LD_MAX_QUEUES of them");
	is(sc.geo.blk_size, 4096, "blk_size 4096");
	is(ld_read(&sc, 8, buf, 4096), 0, "read one 4 KiB block");
	is(ld_read(&sc, 1, buf, 4096), -EINVAL, "unaligned start refused");
	is(ld_read(&sc, 8, buf, 512), -EINVAL, "part of a block refused");
	finish(&f, &fe, &sc);

	memset(&f, 0, sizeof(f));
	fake_defaults(&f);
	f.queue_num = 2;         /* GET_QUEUE_NUM below num_queues */
	o.nqueues = 4;
	r = attach(&f, &fe, &sc, "qn", &o);
	ok(r == 0, "attach when GET_QUEUE_NUM says 2");
	is(sc.nqueues, 2, "two queues used");
	finish(&f, &fe, &sc);

	memset(&f, 0, sizeof(f));
	fake_defaults(&f);
	f.offered &= ~(1ull << VIRTIO_BLK_F_MQ);
	r = attach(&f, &fe, &sc, "nomq", &o);
	ok(r == 0, "attach without MQ");
	is(sc.nqueues, 1, "one queue without MQ");
	finish(&f, &fe, &sc);
}

/* Read-only device; one without FLUSH, DISCARD, WRITE_ZEROES. */
static void test_features(void)
{
	struct fake f = { 0 };
	struct viod_fe fe;
	struct ld sc;
	uint8_t buf[512] = { 0 };
	int r;

	fake_defaults(&f);
	f.offered |= 1ull << VIRTIO_BLK_F_RO;
	r = attach(&f, &fe, &sc, "ro", NULL);
	ok(r == 0 && sc.geo.readonly, "attach read-only");
	is(ld_write(&sc, 0, buf, 512), -EROFS, "write: -EROFS");
	is(ld_write_zeroes(&sc, 0, 8, false), -EROFS, "write-zeroes: -EROFS");
	is(ld_read(&sc, 0, buf, 512), 0, "read works");
	pthread_mutex_lock(&f.fk.lock);
	is(f.by_type[VIRTIO_BLK_T_OUT] + f.by_type[VIRTIO_BLK_T_WRITE_ZEROES], 0,
	   "no write reached the device");
	pthread_mutex_unlock(&f.fk.lock);
	finish(&f, &fe, &sc);

	memset(&f, 0, sizeof(f));
	fake_defaults(&f);
	f.offered &= ~((1ull << VIRTIO_BLK_F_FLUSH) | (1ull << VIRTIO_BLK_F_DISCARD) |
		       (1ull << VIRTIO_BLK_F_WRITE_ZEROES) | (1ull << VIRTIO_BLK_F_CONFIG_WCE));
	r = attach(&f, &fe, &sc, "plain", NULL);
	ok(r == 0, "attach without FLUSH, DISCARD, WRITE_ZEROES");
	ok(!sc.geo.writeback, "writethrough without FLUSH");
	is(ld_flush(&sc), 0, "flush: nothing to flush");
	is(ld_discard(&sc, 0, 8), -EOPNOTSUPP, "discard: -EOPNOTSUPP");
	is(ld_write_zeroes(&sc, 0, 8, false), -EOPNOTSUPP, "write-zeroes: -EOPNOTSUPP");
	pthread_mutex_lock(&f.fk.lock);
	is(f.reqs[0], 0, "nothing reached the device");
	pthread_mutex_unlock(&f.fk.lock);
	finish(&f, &fe, &sc);
}

/* Completions the driver must not trust. */
static void test_bad_completions(void)
{
	static const struct {
		const char *what;
		int used_mode;
		int status;
		int want;
		bool broken;
	} cases[] = {
		{ "IOERR", USED_RIGHT, VIRTIO_BLK_S_IOERR, -EIO, false },
		{ "UNSUPP", USED_RIGHT, VIRTIO_BLK_S_UNSUPP, -EOPNOTSUPP, false },
		{ "OK with used.len short of the data", USED_SHORT, -1, -EIO, false },
		{ "status 7", USED_RIGHT, 7, -EIO, true },
		{ "used.len 0", USED_ZERO, -1, -EIO, true },
		{ "used.len above what was posted", USED_TOO_LONG, -1, -EIO, true },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct fake f = { 0 };
		struct viod_fe fe;
		struct ld sc;
		uint8_t buf[4096];
		char tag[16];
		int r;

		fake_defaults(&f);
		snprintf(tag, sizeof(tag), "cpl%zu", i);
		r = attach(&f, &fe, &sc, tag, NULL);
		if (!ok(r == 0, "%s: attach", cases[i].what)) {
			finish(&f, &fe, &sc);
			continue;
		}
		atomic_store(&f.used_mode, cases[i].used_mode);
		atomic_store(&f.status_override, cases[i].status);
		is(ld_read(&sc, 0, buf, sizeof(buf)), cases[i].want, cases[i].what);
		ok(sc.broken == cases[i].broken, "%s: driver %s", cases[i].what,
		   cases[i].broken ? "broken" : "still usable");
		is(ld_read(&sc, 0, buf, sizeof(buf)), cases[i].broken ? -EIO : 0,
		   cases[i].broken ? "then -EIO" : "then reads again");
		finish(&f, &fe, &sc);
	}

	/* A device that completes nothing: a timeout, never a hang. */
	{
		struct fake f = { 0 };
		struct viod_fe fe;
		struct ld_opts o;
		struct ld sc;
		uint8_t buf[512];

		fake_defaults(&f);
		ld_opts_init(&o);
		o.timeout_ms = 200;
		ok(attach(&f, &fe, &sc, "hold", &o) == 0, "attach (silent device)");
		atomic_store(&f.hold, true);
		is(ld_read(&sc, 0, buf, 512), -ETIMEDOUT, "silent device: -ETIMEDOUT");
		ok(sc.broken, "driver broken: the buffer is still the device's");
		is(ld_flush(&sc), -EIO, "then -EIO");
		finish(&f, &fe, &sc);
	}
}

static void test_bench(void)
{
	struct fake f = { 0 };
	struct ld_bench_opts bo = { .block_size = 4096, .depth = 8, .requests = 2000,
				    .seed = 42 };
	struct ld_bench_stats st;
	struct viod_fe fe;
	struct ld_opts o;
	struct ld sc;
	unsigned int per_queue_min = ~0u, total = 0;
	int r;

	fake_defaults(&f);
	ld_opts_init(&o);
	o.nqueues = 4;
	o.queue_depth = 8;
	o.max_transfer = 4096;
	o.timeout_ms = 1000;
	r = attach(&f, &fe, &sc, "bench", &o);
	if (!ok(r == 0 && sc.nqueues == 4, "attach with 4 queues of depth 8")) {
		finish(&f, &fe, &sc);
		return;
	}
	r = ld_bench(&sc, &bo, &st);
	is(r, 0, "bench 2000 random reads");
	is(st.requests, 2000, "exactly 2000 completed");
	ok(st.seconds > 0 && st.iops > 0, "IOPS %.0f over %.3f s", st.iops, st.seconds);
	ok(st.p50_us > 0 && st.p50_us <= st.p99_us && st.p99_us <= st.max_us,
	   "p50 %.1f <= p99 %.1f <= max %.1f us", st.p50_us, st.p99_us, st.max_us);
	pthread_mutex_lock(&f.fk.lock);
	for (unsigned int i = 0; i < 4; i++) {
		total += f.reqs[i];
		if (f.reqs[i] < per_queue_min)
			per_queue_min = f.reqs[i];
	}
	is(total, 2000, "the device saw 2000 requests");
	ok(per_queue_min > 0, "on every queue (fewest %u)", per_queue_min);
	is(f.out_of_range, 0, "all inside the disk");
	is(f.by_type[VIRTIO_BLK_T_OUT], 0, "all reads");
	pthread_mutex_unlock(&f.fk.lock);

	bo = (struct ld_bench_opts){ .write = true, .block_size = 4096, .depth = 8,
				     .requests = 500, .region_sector = 1024,
				     .region_sectors = 64 };
	is(ld_bench(&sc, &bo, &st), 0, "bench 500 random writes in a 32 KiB region");
	pthread_mutex_lock(&f.fk.lock);
	is(f.by_type[VIRTIO_BLK_T_OUT], 500, "500 writes");
	pthread_mutex_unlock(&f.fk.lock);
	bo.block_size = 8192;
	is(ld_bench(&sc, &bo, &st), -EINVAL, "block size above max transfer refused");
	bo.block_size = 4096;
	bo.region_sector = FAKE_SECTORS;
	is(ld_bench(&sc, &bo, &st), -ERANGE, "region past the disk refused");
	bo.region_sector = 0;
	bo.depth = 9;
	is(ld_bench(&sc, &bo, &st), -EINVAL, "depth above the slots refused");
	finish(&f, &fe, &sc);
}

static void test_pattern(void)
{
	uint8_t a[512], b[512], c[512];

	ld_pattern_sector(1, 10, a);
	ld_pattern_sector(1, 10, b);
	ld_pattern_sector(1, 11, c);
	ok(memcmp(a, b, 512) == 0, "pattern is deterministic");
	ok(memcmp(a, c, 512) != 0, "sectors differ");
	ld_pattern_sector(2, 10, c);
	ok(memcmp(a, c, 512) != 0, "seeds differ");
}

int main(void)
{
	int fds = test_count_fds();

	test_pattern();
	test_io();
	test_segments();
	test_bad_config();
	test_queues_and_blocks();
	test_features();
	test_bad_completions();
	test_bench();
	is(test_count_fds(), fds, "no fd leaked");
	return tap_done();
}
