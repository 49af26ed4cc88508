/*
 * What the device fuzzers (fuzz_blk.c, fuzz_net.c) share: a request
 * handed to an inline device as if read from its socket, and a bump
 * allocator over the data area of fake guest memory.
 */
#ifndef VIOD_TESTS_FUZZ_DEV_H
#define VIOD_TESTS_FUZZ_DEV_H

#include <stdint.h>
#include <string.h>

#include "vhost/vhost.h"

static inline void fuzz_inject(struct viod_dev *dev, uint32_t req, const void *p, uint32_t n)
{
	struct viod_vu_msg m = { .hdr = { .request = req, .flags = VU_FLAG_VERSION, .size = n } };

	memcpy(&m.u, p, n);
	viod_dev_inject(dev, &m, NULL, 0);
}

/* Guest memory host[0 .. size) at guest address gpa, its data area from
 * start on; used bytes of that area are taken. */
struct fuzz_arena {
	uint8_t *host;
	uint64_t gpa;
	uint32_t start, size, used;
};

/* len bytes of the data area, 8-aligned, and their guest address in
 * *gpa; NULL when the area is full. */
static inline uint8_t *fuzz_alloc(struct fuzz_arena *a, uint32_t len, uint64_t *gpa)
{
	uint32_t room = a->size - a->start, at = (a->used + 7u) & ~7u;

	if (len > room || at > room - len)
		return NULL;
	a->used = at + len;
	*gpa = a->gpa + a->start + at;
	return a->host + a->start + at;
}

#endif
