/*
 * Unit tests for src/devices/balloon.c, on a real memfd so that hole
 * punching really happens: inflate frees host memory (st_blocks drops by
 * the inflated amount, contiguous PFNs merged), bad PFNs, double inflates
 * and deflates of pages never inflated are counted errors, deflate then
 * inflate again works, stats are held and returned on request, reported
 * free ranges are released, queue roles follow the negotiated features,
 * and a memory table change keeps the balloon of regions still present.
 */
#include <endian.h>
#include <fcntl.h>
#include <stdio.h>
#include <linux/virtio_balloon.h>
#include <linux/virtio_config.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/store.h"
#include "tap.h"
#include "vhost/vhost.h"
#include "virtio/vq.h"

#define MEM_SIZE (16u << 20)
#define RING_GPA 0x0u        /* rings in the first 64 KiB */
#define PFN_GPA 0x10000u     /* PFN arrays */
#define DATA_PAGE0 256u      /* first page the balloon may take (1 MiB) */
#define QSIZE 64u

struct rig {
	struct viod_dev *dev;
	struct viod_store *st;
	int fd;
	int sv[2];               /* the device's connection; replies on sv[1] */
	uint64_t size;
	uint8_t *host;           /* the test's own mapping of guest memory */
	struct viod_vqd q[4];
	uint32_t *pfnbuf;
	uint64_t pfnbuf_gpa;
};

#define UVA 0x7f0000000000ull

static uint64_t allocated(int fd)
{
	struct stat st;

	fstat(fd, &st);
	return (uint64_t)st.st_blocks * 512;
}

static const char *key(struct rig *r, const char *k)
{
	char path[128];
	const char *v;

	r->dev->ops->store_publish(r->dev, r->st, "/devices/b0");
	snprintf(path, sizeof(path), "/devices/b0/%s", k);
	v = viod_store_get(r->st, path);
	return v ? v : "";
}

static long long keyn(struct rig *r, const char *k)
{
	return strtoll(key(r, k), NULL, 10);
}

/* One request through the core, as if read from the socket. */
static void inject(struct rig *r, uint32_t req, const void *p, uint32_t n, int fd)
{
	struct viod_vu_msg m = { .hdr = { .request = req, .flags = VU_FLAG_VERSION, .size = n } };

	if (n)
		memcpy(&m.u, p, n);
	if (viod_dev_inject(r->dev, &m, fd >= 0 ? &fd : NULL, fd >= 0) < 0) {
		printf("Bail out! %s refused\n", viod_vu_request_name(req));
		exit(1);
	}
}

/* Installs the memfd as guest memory (SET_MEM_TABLE). */
static void set_memory(struct rig *r)
{
	struct {
		uint32_t nregions, padding;
		struct viod_vu_region reg;
	} __attribute__((packed)) mt = {
		.nregions = 1,
		.reg = { .gpa = 0, .size = r->size, .uva = UVA, .mmap_offset = 0 },
	};

	inject(r, VU_SET_MEM_TABLE, &mt, sizeof(mt), dup(r->fd));
}

/* Lays queue q at a fixed place in guest memory and starts it (polled:
 * no kick fd, as the front-end may ask). */
static void queue_start(struct rig *r, unsigned int q)
{
	uint64_t base = RING_GPA + q * 0x4000u;
	uint8_t *h = r->host + base;
	struct vhost_vring_addr addr = {
		.index = q, .desc_user_addr = UVA + base,
		.avail_user_addr = UVA + base + 0x1000, .used_user_addr = UVA + base + 0x2000,
	};
	uint64_t kick = q | VU_VRING_NOFD;

	viod_vqd_init(&r->q[q], QSIZE, h, h + 0x1000, h + 0x2000, true);
	inject(r, VU_SET_VRING_NUM, &(struct vhost_vring_state){ q, QSIZE }, 8, -1);
	inject(r, VU_SET_VRING_ADDR, &addr, sizeof(addr), -1);
	inject(r, VU_SET_VRING_BASE, &(struct vhost_vring_state){ q, 0 }, 8, -1);
	inject(r, VU_SET_VRING_KICK, &kick, 8, -1);
}

/* Guest memory of size bytes on fd (a memfd, possibly hugetlb), driven
 * through the core as a front-end would, without threads. */
static void rig_init_fd(struct rig *r, uint64_t features, int fd, uint64_t size)
{
	uint64_t f = features | (1ull << VIRTIO_RING_F_EVENT_IDX) | (1ull << VIRTIO_F_VERSION_1);

	memset(r, 0, sizeof(*r));
	r->fd = fd;
	r->size = size;
	if (ftruncate(r->fd, (off_t)size) < 0 ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, r->sv) < 0)
		abort();
	r->host = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (r->host == MAP_FAILED)
		abort();
	r->dev = viod_dev_new_inline(viod_device_lookup("balloon"), "b0");
	r->dev->ops->init(r->dev, NULL);
	viod_dev_attach(r->dev, r->sv[0]);
	r->st = viod_store_new();
	inject(r, VU_SET_FEATURES, &f, 8, -1);
	set_memory(r);
	for (unsigned int q = 0; q < 4; q++)
		queue_start(r, q);
	r->pfnbuf = (uint32_t *)(r->host + PFN_GPA);
	r->pfnbuf_gpa = PFN_GPA;
	/* Back the PFN buffers now, so later allocation counts see only the
	 * balloon's effect. */
	memset(r->pfnbuf, 0, 0x10000);
	r->dev->ops->store_attach(r->dev, r->st, "/devices/b0");
}

static void rig_init(struct rig *r, uint64_t features)
{
	rig_init_fd(r, features, memfd_create("balloon-test", MFD_CLOEXEC), MEM_SIZE);
}

static void rig_fini(struct rig *r)
{
	for (unsigned int q = 0; q < 4; q++)
		viod_vqd_fini(&r->q[q]);
	viod_server_disconnect(r->dev, NULL);
	r->dev->ops->fini(r->dev);
	viod_dev_free(r->dev);
	viod_store_free(r->st);
	munmap(r->host, r->size);
	close(r->sv[1]);
	close(r->fd);
}

/* Serves the queues until queue q returns a used buffer (bounded). */
static bool reap(struct rig *r, unsigned int q, uint32_t *len)
{
	void *cookie;

	for (int pass = 0; pass < 10000; pass++) {
		if (viod_vqd_get_used(&r->q[q], &cookie, len) == 1)
			return true;
		viod_dev_run_queues(r->dev);
	}
	return false;
}

/* Posts n PFNs on queue q (readable), runs the handler, reaps the used. */
static bool post_pfns(struct rig *r, unsigned int q, const uint32_t *pfns, unsigned int n)
{
	struct viod_vqd_buf b = { .gpa = r->pfnbuf_gpa, .len = n * 4, .writable = false };
	uint32_t len;

	for (unsigned int i = 0; i < n; i++)
		r->pfnbuf[i] = htole32(pfns[i]);
	if (viod_vqd_add(&r->q[q], &b, 1, NULL) < 0)
		return false;
	return reap(r, q, &len) && len == 0;
}

static void touch(struct rig *r, uint32_t first, uint32_t n)
{
	memset(r->host + (uint64_t)first * 4096, 0xa5, (size_t)n * 4096);
}

static void test_inflate_deflate(void)
{
	struct rig r;
	uint32_t pfns[256];
	uint64_t before, after;

	rig_init(&r, 1ull << VIRTIO_BALLOON_F_MUST_TELL_HOST);
	touch(&r, DATA_PAGE0, 1024);
	before = allocated(r.fd);
	for (unsigned int i = 0; i < 256; i++)
		pfns[i] = DATA_PAGE0 + 255 - i; /* descending: sorted before merging */
	ok(post_pfns(&r, 0, pfns, 256), "inflate 256 PFNs: buffer returned");
	after = allocated(r.fd);
	is(before - after, 256 * 4096, "host memory freed: exactly 1 MiB");
	is(keyn(&r, "inflated"), 256, "store: inflated 256");
	is(keyn(&r, "host-freed"), 256 * 4096, "store: host-freed 1 MiB");
	ok(r.host[(uint64_t)DATA_PAGE0 * 4096] == 0, "inflated page reads back zero");
	ok(r.host[(uint64_t)(DATA_PAGE0 + 256) * 4096] == 0xa5, "neighbour page untouched");

	pfns[0] = DATA_PAGE0;
	ok(post_pfns(&r, 0, pfns, 1), "double inflate: buffer still returned");
	is(keyn(&r, "errors"), 1, "double inflate counted");
	pfns[0] = MEM_SIZE / 4096;        /* just past guest memory */
	pfns[1] = 0xffffffffu;
	ok(post_pfns(&r, 0, pfns, 2), "PFNs outside memory: buffer returned");
	is(keyn(&r, "errors"), 3, "two bad PFNs counted");
	is(keyn(&r, "inflated"), 256, "balloon unchanged by bad PFNs");

	for (unsigned int i = 0; i < 128; i++)
		pfns[i] = DATA_PAGE0 + i;
	ok(post_pfns(&r, 1, pfns, 128), "deflate 128 pages");
	is(keyn(&r, "inflated"), 128, "128 pages left in the balloon");
	pfns[0] = DATA_PAGE0 + 600;
	ok(post_pfns(&r, 1, pfns, 1), "deflate of a page never inflated: returned");
	is(keyn(&r, "errors"), 4, "deflate of a page never inflated counted");
	for (unsigned int i = 0; i < 128; i++)
		pfns[i] = DATA_PAGE0 + i;
	touch(&r, DATA_PAGE0, 128);
	before = allocated(r.fd);
	ok(post_pfns(&r, 0, pfns, 128), "re-inflate the deflated pages");
	is(before - allocated(r.fd), 128 * 4096, "freed again");
	is(keyn(&r, "inflated"), 256, "balloon back to 256");
	rig_fini(&r);
}

/* Odd-length and huge buffers: whole PFNs only, bounded work. */
static void test_buffer_shapes(void)
{
	struct rig r;
	struct viod_vqd_buf b;
	uint32_t len;

	rig_init(&r, 0);
	r.pfnbuf[0] = htole32(DATA_PAGE0);
	r.pfnbuf[1] = htole32(DATA_PAGE0 + 1);
	b = (struct viod_vqd_buf){ .gpa = r.pfnbuf_gpa, .len = 7, .writable = false };
	viod_vqd_add(&r.q[0], &b, 1, NULL);
	ok(reap(&r, 0, &len), "7-byte PFN buffer returned");
	is(keyn(&r, "inflated"), 1, "one whole PFN taken, the partial one ignored");
	/* 8 MiB of PFNs (mostly page 0, which is a ring page: a guest may
	 * hand us anything); 2M entries, all but one a double inflate. */
	memset(r.host + 0x100000, 0, 8u << 20);
	b = (struct viod_vqd_buf){ .gpa = 0x100000, .len = 8u << 20, .writable = false };
	viod_vqd_add(&r.q[0], &b, 1, NULL);
	ok(reap(&r, 0, &len), "8 MiB PFN buffer returned (over several bounded calls)");
	is(keyn(&r, "errors"), (8 << 20) / 4 - 1, "every repeat counted, none crashed");
	rig_fini(&r);
}

static void test_stats(void)
{
	struct rig r;
	uint8_t *buf;
	struct viod_vqd_buf b;
	uint32_t len;
	const uint16_t tags[] = { VIRTIO_BALLOON_S_MEMFREE, VIRTIO_BALLOON_S_MEMTOT, 999 };
	const uint64_t vals[] = { 123456789, 987654321, 5 };

	rig_init(&r, 1ull << VIRTIO_BALLOON_F_STATS_VQ);
	buf = r.host + 0x20000;
	for (unsigned int i = 0; i < 3; i++) {
		uint16_t t = htole16(tags[i]);
		uint64_t v = htole64(vals[i]);

		memcpy(buf + 10 * i, &t, 2);
		memcpy(buf + 10 * i + 2, &v, 8);
	}
	b = (struct viod_vqd_buf){ .gpa = 0x20000, .len = 30, .writable = false };
	viod_vqd_add(&r.q[2], &b, 1, NULL);
	viod_dev_run_queues(r.dev);
	is(keyn(&r, "stats/free-memory"), 123456789, "stats: free-memory kept");
	is(keyn(&r, "stats/total-memory"), 987654321, "stats: total-memory kept");
	is(keyn(&r, "stats/updates"), 1, "stats: one update");
	ok(!viod_vqd_has_used(&r.q[2]), "stats buffer held until asked for");
	viod_dev_run_queues(r.dev);
	ok(!viod_vqd_has_used(&r.q[2]), "still held while nobody asks");
	/* A second buffer (Linux posts one; a hostile guest two) waits: the
	 * queue is blocked, not polled. */
	viod_vqd_add(&r.q[2], &b, 1, NULL);
	is(viod_dev_run_queues(r.dev), 0, "a second stats buffer makes no work while one is held");
	/* A client setting the interval asks for fresh values at once. */
	ok(viod_store_write(r.st, "/devices/b0/stats-interval", "1", NULL) == 0,
	   "stats-interval written as a client would");
	ok(reap(&r, 2, &len) && len == 0, "stats buffer returned to the guest on request");
	ok(viod_store_write(r.st, "/devices/b0/stats-interval", "soon", NULL) < 0,
	   "a bad interval is refused");
	rig_fini(&r);
}

/* Queue roles follow negotiated features (Linux numbering). */
static void test_queue_roles(void)
{
	struct rig r;
	uint32_t pfn = DATA_PAGE0;

	/* Without STATS_VQ, queue 2 is the reporting queue. */
	rig_init(&r, 1ull << VIRTIO_BALLOON_F_REPORTING);
	touch(&r, DATA_PAGE0, 16);
	{
		struct viod_vqd_buf b = { .gpa = (uint64_t)DATA_PAGE0 * 4096, .len = 16 * 4096,
					  .writable = true };
		uint64_t before = allocated(r.fd);
		uint32_t len;

		viod_vqd_add(&r.q[2], &b, 1, NULL);
		ok(reap(&r, 2, &len), "queue 2 is the reporting queue without STATS_VQ");
		is(before - allocated(r.fd), 16 * 4096, "reported range released");
		is(keyn(&r, "inflated"), 0, "reported pages are not balloon pages");
	}
	ok(post_pfns(&r, 0, &pfn, 1), "inflate still on queue 0");
	rig_fini(&r);
}

static void test_mem_change(void)
{
	struct rig r;
	uint32_t pfns[4] = { DATA_PAGE0, DATA_PAGE0 + 1, DATA_PAGE0 + 2, DATA_PAGE0 + 3 };

	rig_init(&r, 0);
	post_pfns(&r, 0, pfns, 4);
	set_memory(&r);
	is(keyn(&r, "inflated"), 4, "memory table change keeps the balloon of kept regions");
	ok(post_pfns(&r, 1, pfns, 4), "deflate after the change");
	is(keyn(&r, "errors"), 0, "no errors: the pages were known");
	rig_fini(&r);
}

/*
 * A hugetlb-backed region: 2 MiB pages can only go back whole, so the
 * balloon punches a huge page once all 512 of its 4 KiB pages are in.
 * Needs reserved huge pages: as root the test reserves 8 and restores
 * the old count; otherwise it is skipped with the reason.
 */
static void test_hugepages(void)
{
	const uint32_t first = 512; /* the second 2 MiB page */
	FILE *f = fopen("/proc/sys/vm/nr_hugepages", "r+");
	long old = -1;
	uint32_t pfns[512];
	struct rig r;
	uint64_t before;
	int fd;

	if (f && fscanf(f, "%ld", &old) == 1 && old < 8) {
		rewind(f);
		fprintf(f, "%ld\n", old + 8);
		fflush(f);
	}
	fd = memfd_create("balloon-huge", MFD_CLOEXEC | MFD_HUGETLB);
	if (fd < 0 || old < 0 || ftruncate(fd, 8u << 20) < 0 ||
	    fallocate(fd, 0, 0, 8u << 20) < 0) {
		printf("ok %u - huge pages # SKIP no hugetlb memory here (need root or reserved pages)\n",
		       ++tap_count);
		if (fd >= 0)
			close(fd);
		goto out;
	}
	rig_init_fd(&r, 0, fd, 8u << 20);
	is(viod_dev_mem_page_size(r.dev, 0), 2u << 20, "region page size is 2 MiB");
	memset(r.host + (2u << 20), 0x5a, 2u << 20);
	before = allocated(r.fd);
	for (unsigned int i = 0; i < 511; i++)
		pfns[i] = first + i;
	ok(post_pfns(&r, 0, pfns, 511), "511 of 512 small pages inflated");
	is(before - allocated(r.fd), 0, "nothing released while the huge page is partly in use");
	pfns[0] = first + 511;
	ok(post_pfns(&r, 0, pfns, 1), "the 512th small page inflated");
	is(before - allocated(r.fd), 2u << 20, "the whole 2 MiB huge page released");
	is(keyn(&r, "host-freed"), 2u << 20, "store: host-freed 2 MiB");
	pfns[0] = first;
	ok(post_pfns(&r, 1, pfns, 1), "one small page deflated");
	r.host[(uint64_t)first * 4096] = 1; /* the guest touches it: the huge page is back */
	before = allocated(r.fd);
	ok(post_pfns(&r, 0, pfns, 1), "and inflated again");
	is(before - allocated(r.fd), 2u << 20, "the huge page released again");
	rig_fini(&r);
out:
	if (f && old >= 0 && old < 8) {
		rewind(f);
		fprintf(f, "%ld\n", old);
	}
	if (f)
		fclose(f);
}

int main(void)
{
	test_inflate_deflate();
	test_buffer_shapes();
	test_stats();
	test_queue_roles();
	test_mem_change();
	test_hugepages();
	return tap_done();
}
