/*
 * Unit tests for src/virtio/mem.c: guest-physical and front-end user
 * address translation, and the region table's sanity checks. Regions are
 * plain heap buffers so that ASan flags any pointer handed out past a
 * region's end.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "virtio/mem.h"

#define KiB 1024u

static void add_region(struct viod_mem *m, uint64_t gpa, uint64_t size,
		       uint64_t uva, uint8_t *host)
{
	struct viod_mem_region *r = &m->regions[m->nregions++];

	r->gpa = gpa;
	r->size = size;
	r->uva = uva;
	r->host = host;
}

static void test_single(uint8_t *a)
{
	struct viod_mem m = { 0 };
	struct iovec iov[4];

	add_region(&m, 0x10000, 64 * KiB, 0x7f0000000000, a);

	is(viod_mem_map_iov(&m, 0x10000, 64 * KiB, iov, 4), 1, "single: whole region is one iovec");
	ok(iov[0].iov_base == a && iov[0].iov_len == 64 * KiB, "single: whole region base/len");
	is(viod_mem_map_iov(&m, 0x10000 + 100, 200, iov, 4), 1, "single: interior range");
	ok(iov[0].iov_base == a + 100 && iov[0].iov_len == 200, "single: interior base/len");
	is(viod_mem_map_iov(&m, 0x10000 + 64 * KiB - 1, 1, iov, 4), 1, "single: last byte");
	ok(iov[0].iov_base == a + 64 * KiB - 1, "single: last byte base");
	is(viod_mem_map_iov(&m, 0x10000 + 64 * KiB - 1, 2, iov, 4), -EFAULT,
	   "single: one byte past the end");
	is(viod_mem_map_iov(&m, 0x10000 + 64 * KiB, 1, iov, 4), -EFAULT, "single: first byte after");
	is(viod_mem_map_iov(&m, 0xffff, 1, iov, 4), -EFAULT, "single: byte before");
	is(viod_mem_map_iov(&m, 0xffff, 2, iov, 4), -EFAULT, "single: range starting before");
	is(viod_mem_map_iov(&m, 0, 1, iov, 4), -EFAULT, "single: gpa 0 unmapped");

	ok(viod_mem_map(&m, 0x10000 + 8, 8) == a + 8, "single: viod_mem_map interior");
	ok(viod_mem_map(&m, 0x10000 + 64 * KiB - 8, 9) == NULL, "single: viod_mem_map past end");
	ok(viod_mem_find(&m, 0x10000) == &m.regions[0], "single: find first byte");
	ok(viod_mem_find(&m, 0x10000 + 64 * KiB - 1) == &m.regions[0], "single: find last byte");
	ok(viod_mem_find(&m, 0x10000 + 64 * KiB) == NULL, "single: find past end");
	ok(viod_mem_find(&m, 0xffff) == NULL, "single: find before start");
}

static void test_two(uint8_t *a, uint8_t *b)
{
	struct viod_mem m = { 0 };
	struct iovec iov[4];

	/* Non-adjacent: a hole at [0x20000, 0x100000). Listed out of gpa
	 * order so that nothing depends on the table being sorted. */
	add_region(&m, 0x100000, 64 * KiB, 0x7f0000100000, b);
	add_region(&m, 0x10000, 64 * KiB, 0x7f0000000000, a);

	is(viod_mem_map_iov(&m, 0x10000 + 10, 10, iov, 4), 1, "two/hole: range in first region");
	ok(iov[0].iov_base == a + 10, "two/hole: first region base");
	is(viod_mem_map_iov(&m, 0x100000 + 10, 10, iov, 4), 1, "two/hole: range in second region");
	ok(iov[0].iov_base == b + 10, "two/hole: second region base");
	is(viod_mem_map_iov(&m, 0x20000 - 4, 8, iov, 4), -EFAULT, "two/hole: straddling into the hole");
	is(viod_mem_map_iov(&m, 0x20000, 1, iov, 4), -EFAULT, "two/hole: first byte of the hole");
	is(viod_mem_map_iov(&m, 0x100000 - 1, 2, iov, 4), -EFAULT,
	   "two/hole: starting in the hole, ending in a region");
	is(viod_mem_map_iov(&m, 0x10000, 0x100000 - 0x10000 + 64 * KiB, iov, 4), -EFAULT,
	   "two/hole: spanning both regions and the hole");
	ok(viod_mem_find(&m, 0x100000 + 5) == &m.regions[0], "two/hole: find picks the right region");

	/* Adjacent: second region starts where the first ends. */
	memset(&m, 0, sizeof(m));
	add_region(&m, 0x20000, 64 * KiB, 0x7f0000100000, b);
	add_region(&m, 0x10000, 64 * KiB, 0x7f0000000000, a);

	is(viod_mem_map_iov(&m, 0x20000 - 100, 300, iov, 4), 2, "two/adjacent: straddle gives 2 iovecs");
	ok(iov[0].iov_base == a + 64 * KiB - 100 && iov[0].iov_len == 100,
	   "two/adjacent: first iovec ends at the boundary");
	ok(iov[1].iov_base == b && iov[1].iov_len == 200, "two/adjacent: second iovec at b's start");
	is(viod_mem_map_iov(&m, 0x10000, 128 * KiB, iov, 4), 2, "two/adjacent: both regions whole");
	is(viod_mem_map_iov(&m, 0x10000, 128 * KiB + 1, iov, 4), -EFAULT,
	   "two/adjacent: one byte past both");
	is(viod_mem_map_iov(&m, 0x20000 - 100, 300, iov, 1), -E2BIG,
	   "two/adjacent: straddle with max_iov 1");
	ok(viod_mem_map(&m, 0x20000 - 100, 300) == NULL,
	   "two/adjacent: viod_mem_map refuses a straddling range");
	ok(viod_mem_map(&m, 0x20000 - 100, 100) == a + 64 * KiB - 100,
	   "two/adjacent: viod_mem_map up to the boundary");
	ok(viod_mem_map(&m, 0x20000, 100) == b, "two/adjacent: viod_mem_map from the boundary");
}

static void test_len0_and_caps(uint8_t *a, uint8_t *b, uint8_t *c)
{
	struct viod_mem m = { 0 };
	struct iovec iov[4];

	add_region(&m, 0x10000, 64 * KiB, 0x1000000, a);
	add_region(&m, 0x20000, 64 * KiB, 0x2000000, b);
	add_region(&m, 0x30000, 64 * KiB, 0x3000000, c);

	is(viod_mem_map_iov(&m, 0x10000, 0, iov, 4), 0, "len 0 mapped gpa: 0 iovecs");
	is(viod_mem_map_iov(&m, 0xdead0000, 0, iov, 4), 0, "len 0 unmapped gpa: 0 iovecs");
	is(viod_mem_map_iov(&m, 0x10000, 0, iov, 0), 0, "len 0 with max_iov 0");
	ok(viod_mem_map(&m, 0x10000, 0) == NULL, "viod_mem_map len 0 is NULL");
	is(viod_mem_map_iov(&m, 0x10000, 1, iov, 0), -E2BIG, "max_iov 0 with len 1");
	is(viod_mem_map_iov(&m, 0x20000 - 1, 64 * KiB + 2, iov, 3), 3, "three regions in 3 iovecs");
	ok(iov[0].iov_len == 1 && iov[1].iov_len == 64 * KiB && iov[2].iov_len == 1,
	   "three regions: iovec lengths");
	is(viod_mem_map_iov(&m, 0x20000 - 1, 64 * KiB + 2, iov, 2), -E2BIG,
	   "three regions with max_iov 2");
	/* A hole is reported even if max_iov would also run out later. */
	is(viod_mem_map_iov(&m, 0x40000 - 1, 2, iov, 1), -EFAULT, "end of last region into unmapped");
}

static void test_overflow(uint8_t *a, uint8_t *b)
{
	struct viod_mem m = { 0 };
	struct iovec iov[4];
	const uint64_t top = UINT64_MAX - 4 * KiB; /* region [top, UINT64_MAX) */

	add_region(&m, 0, 4 * KiB, 0x1000, a);
	add_region(&m, top, 4 * KiB, 0x100000, b);

	is(viod_mem_map_iov(&m, top, 4 * KiB, iov, 4), 1, "top region maps whole");
	is(viod_mem_map_iov(&m, UINT64_MAX - 1, 1, iov, 4), 1, "last byte of top region");
	ok(iov[0].iov_base == b + 4 * KiB - 1, "last byte of top region base");
	is(viod_mem_map_iov(&m, UINT64_MAX, 1, iov, 4), -EFAULT, "gpa UINT64_MAX unmapped");
	/* Would wrap to gpa 0, which is mapped: must not continue there. */
	is(viod_mem_map_iov(&m, top + 2 * KiB, 4 * KiB, iov, 4), -EFAULT,
	   "range wrapping past 2^64 into region at 0");
	is(viod_mem_map_iov(&m, 1, UINT64_MAX, iov, 4), -EFAULT, "gpa 1 len UINT64_MAX wraps");
	is(viod_mem_map_iov(&m, UINT64_MAX, UINT64_MAX, iov, 4), -EFAULT, "max + max wraps");
	is(viod_mem_map_iov(&m, 0, UINT64_MAX, iov, 4), -EFAULT, "len UINT64_MAX from 0");
	ok(viod_mem_map(&m, top + 2 * KiB, 4 * KiB) == NULL, "viod_mem_map wrap is NULL");

	/*
	 * A region ending exactly at 2^64 cannot be installed through
	 * viod_mem_check_new, but translation must not wrap even then: a
	 * range running off its end must not continue at gpa 0.
	 */
	m.regions[1].gpa = UINT64_MAX - 4 * KiB + 1;
	is(viod_mem_map_iov(&m, UINT64_MAX - 1, 1, iov, 4), 1, "region to 2^64: next-to-last byte");
	is(viod_mem_map_iov(&m, UINT64_MAX, 1, iov, 4), -EFAULT,
	   "region to 2^64: a range ending at 2^64 is refused (end not representable)");
	is(viod_mem_map_iov(&m, UINT64_MAX - 2 * KiB + 1, 4 * KiB, iov, 4), -EFAULT,
	   "region to 2^64: range wrapping to gpa 0 refused");
	is(viod_mem_map_iov(&m, UINT64_MAX, 2, iov, 4), -EFAULT,
	   "region to 2^64: 2 bytes from UINT64_MAX refused");
}

static void test_uva(uint8_t *a, uint8_t *b)
{
	struct viod_mem m = { 0 };

	add_region(&m, 0x10000, 64 * KiB, 0x7f0000000000, a);
	add_region(&m, 0x20000, 64 * KiB, 0x7f0000010000, b); /* adjacent in uva too */

	ok(viod_mem_map_uva(&m, 0x7f0000000000, 64 * KiB) == a, "uva: whole first region");
	ok(viod_mem_map_uva(&m, 0x7f0000000000 + 123, 5) == a + 123, "uva: interior");
	ok(viod_mem_map_uva(&m, 0x7f0000010000 + 64 * KiB - 4, 4) == b + 64 * KiB - 4,
	   "uva: last bytes of second region");
	ok(viod_mem_map_uva(&m, 0x7f0000010000 + 64 * KiB - 4, 5) == NULL, "uva: one byte past end");
	ok(viod_mem_map_uva(&m, 0x7f0000010000 - 4, 8) == NULL,
	   "uva: straddling two regions is refused (ring parts are contiguous)");
	ok(viod_mem_map_uva(&m, 0x7f0000000000 - 1, 1) == NULL, "uva: byte before");
	ok(viod_mem_map_uva(&m, 0x10000, 1) == NULL, "uva: a gpa is not a uva");
	ok(viod_mem_map_uva(&m, 0x7f0000000000, 0) == NULL, "uva: len 0");
	ok(viod_mem_map_uva(&m, 0x7f0000000000 + 8, UINT64_MAX) == NULL, "uva: len wraps");
	ok(viod_mem_map_uva(&m, UINT64_MAX, 2) == NULL, "uva: start wraps");
}

static void test_check_new(void)
{
	struct viod_mem m = { 0 };
	struct viod_mem_region r;

	add_region(&m, 0x10000, 0x10000, 0x100000, NULL);
	add_region(&m, 0x40000, 0x10000, 0x400000, NULL);

#define CHECK(g, s, u, want, name) do {                                     \
	r = (struct viod_mem_region){ .gpa = (g), .size = (s), .uva = (u) }; \
	is(viod_mem_check_new(&m, &r), (want), name);                       \
} while (0)

	CHECK(0x20000, 0x10000, 0x200000, 0, "check_new: disjoint in both spaces");
	CHECK(0x20000, 0x20000, 0x200000, 0, "check_new: adjacent to both in gpa");
	CHECK(0x00000, 0x10000, 0x000000, 0, "check_new: adjacent below");
	CHECK(0x1f000, 0x2000, 0x200000, -EINVAL, "check_new: overlaps the end in gpa");
	CHECK(0x0f000, 0x2000, 0x200000, -EINVAL, "check_new: overlaps the start in gpa");
	CHECK(0x11000, 0x1000, 0x200000, -EINVAL, "check_new: inside an old one in gpa");
	CHECK(0x00000, 0x100000, 0x200000, -EINVAL, "check_new: containing old ones in gpa");
	CHECK(0x10000, 0x10000, 0x200000, -EINVAL, "check_new: same gpa range");
	CHECK(0x20000, 0x10000, 0x10f000, -EINVAL, "check_new: overlaps in uva only");
	CHECK(0x20000, 0x10000, 0x0f8000, -EINVAL, "check_new: overlaps uva start only");
	CHECK(0x20000, 0x10000, 0x110000, 0, "check_new: uva adjacent above");
	CHECK(0x20000, 0, 0x200000, -EINVAL, "check_new: zero size");
	CHECK(UINT64_MAX - 0xfff, 0x1000, 0x200000, -EINVAL, "check_new: gpa end wraps to 0");
	CHECK(UINT64_MAX - 0x1000, 0x1000, 0x200000, 0, "check_new: gpa ends at UINT64_MAX");
	CHECK(0x20000, 0x1000, UINT64_MAX - 0x7ff, -EINVAL, "check_new: uva wraps");
	CHECK(0x20000, UINT64_MAX, 0x200000, -EINVAL, "check_new: huge size wraps");

	/* A full table takes no more regions. */
	while (m.nregions < VIOD_MEM_MAX_REGIONS)
		add_region(&m, 0x1000000 + (uint64_t)m.nregions * 0x1000, 0x1000,
			   0x10000000 + (uint64_t)m.nregions * 0x1000, NULL);
	CHECK(0x20000, 0x10000, 0x200000, -EINVAL, "check_new: table full");
#undef CHECK
}

int main(void)
{
	uint8_t *a = malloc(64 * KiB), *b = malloc(64 * KiB), *c = malloc(64 * KiB);

	if (!a || !b || !c) {
		printf("Bail out! out of memory\n");
		return 1;
	}
	test_single(a);
	test_two(a, b);
	test_len0_and_caps(a, b, c);
	test_overflow(a, b);
	test_uva(a, b);
	test_check_new();
	free(a);
	free(b);
	free(c);
	return tap_done();
}
