/*
 * Guest address translation. Security model: every gpa/uva/len handed in
 * comes from an untrusted guest or front-end; arithmetic is overflow-checked
 * and a range is either mapped whole or refused.
 */
#include "mem.h"

#include <errno.h>

static bool range_end(uint64_t start, uint64_t len, uint64_t *end)
{
	return !__builtin_add_overflow(start, len, end);
}

const struct viod_mem_region *viod_mem_find(const struct viod_mem *m, uint64_t gpa)
{
	for (unsigned int i = 0; i < m->nregions; i++) {
		const struct viod_mem_region *r = &m->regions[i];

		if (gpa >= r->gpa && gpa - r->gpa < r->size)
			return r;
	}
	return NULL;
}

int viod_mem_host_to_gpa(const struct viod_mem *m, const void *p, uint64_t *gpa)
{
	uintptr_t a = (uintptr_t)p;

	for (unsigned int i = 0; i < m->nregions; i++) {
		uintptr_t base = (uintptr_t)m->regions[i].host;

		if (a >= base && a - base < m->regions[i].size) {
			*gpa = m->regions[i].gpa + (a - base);
			return (int)i;
		}
	}
	return -1;
}

int viod_mem_map_iov(const struct viod_mem *m, uint64_t gpa, uint64_t len,
		     struct iovec *iov, unsigned int max_iov)
{
	unsigned int n = 0;
	uint64_t end;

	if (!range_end(gpa, len, &end))
		return -EFAULT;
	while (len > 0) {
		const struct viod_mem_region *r = viod_mem_find(m, gpa);
		uint64_t off, chunk;

		if (!r)
			return -EFAULT;
		if (n == max_iov)
			return -E2BIG;
		off = gpa - r->gpa;
		chunk = r->size - off;
		if (chunk > len)
			chunk = len;
		iov[n].iov_base = r->host + off;
		iov[n].iov_len = chunk;
		n++;
		gpa += chunk;
		len -= chunk;
	}
	return (int)n;
}

void *viod_mem_map(const struct viod_mem *m, uint64_t gpa, uint64_t len)
{
	struct iovec iov;

	if (len == 0)
		return NULL;
	if (viod_mem_map_iov(m, gpa, len, &iov, 1) != 1)
		return NULL;
	return iov.iov_base;
}

void *viod_mem_map_uva(const struct viod_mem *m, uint64_t uva, uint64_t len)
{
	uint64_t end;

	if (len == 0 || !range_end(uva, len, &end))
		return NULL;
	for (unsigned int i = 0; i < m->nregions; i++) {
		const struct viod_mem_region *r = &m->regions[i];

		if (uva >= r->uva && uva - r->uva < r->size) {
			uint64_t off = uva - r->uva;

			if (len > r->size - off)
				return NULL;
			return r->host + off;
		}
	}
	return NULL;
}

static bool overlaps(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a < b + blen && b < a + alen;
}

int viod_mem_check_new(const struct viod_mem *m, const struct viod_mem_region *r)
{
	uint64_t end;

	if (r->size == 0 || !range_end(r->gpa, r->size, &end) ||
	    !range_end(r->uva, r->size, &end))
		return -EINVAL;
	if (m->nregions >= VIOD_MEM_MAX_REGIONS)
		return -EINVAL;
	for (unsigned int i = 0; i < m->nregions; i++) {
		const struct viod_mem_region *o = &m->regions[i];

		if (overlaps(r->gpa, r->size, o->gpa, o->size) ||
		    overlaps(r->uva, r->size, o->uva, o->size))
			return -EINVAL;
	}
	return 0;
}
