/*
 * Front-end page pool: 4 KiB guest pages handed out and taken back, with
 * a reported-free bit per page. Contracts: frontend.h.
 */
#include "fe-private.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static bool pool_bit(const uint64_t *bits, size_t i)
{
	return (bits[i / 64] >> (i % 64)) & 1;
}

static void pool_set(uint64_t *bits, size_t i, bool on)
{
	if (on)
		bits[i / 64] |= 1ull << (i % 64);
	else
		bits[i / 64] &= ~(1ull << (i % 64));
}

void viod_fe_pool_fini(struct viod_fe_pool *p)
{
	free(p->alloc_bits);
	free(p->report_bits);
	memset(p, 0, sizeof(*p));
}

int viod_fe_pool_init(struct viod_fe *fe, size_t max_pages, unsigned int flags)
{
	struct viod_fe_pool *p = &fe->pool;
	size_t total = 0, words;

	if (p->npages)
		return viod_fe_error(fe, -EALREADY, "page pool already set up");
	if (max_pages == 0)
		max_pages = SIZE_MAX;
	for (unsigned int i = 0; i < fe->nregions && total < max_pages; i++) {
		struct viod_fe_region *reg = &fe->regions[i];
		uint64_t start = FE_ALIGN_UP(reg->used, FE_PAGE);
		uint64_t n;

		if (start >= reg->size)
			continue;
		n = (reg->size - start) / FE_PAGE;
		if (n > max_pages - total)
			n = max_pages - total;
		if (n == 0)
			continue;
		p->segs[p->nsegs++] = (struct viod_fe_pool_seg){
			.gpa = reg->gpa + start, .host = reg->host + start,
			.first = total, .npages = (size_t)n,
		};
		total += (size_t)n;
	}
	if (total == 0) {
		memset(p, 0, sizeof(*p));
		return viod_fe_error(fe, -ENOSPC, "no whole free page left for a page pool");
	}
	words = (total + 63) / 64;
	p->alloc_bits = calloc(words, sizeof(uint64_t));
	p->report_bits = calloc(words, sizeof(uint64_t));
	if (!p->alloc_bits || !p->report_bits) {
		viod_fe_pool_fini(p);
		return viod_fe_error(fe, -ENOMEM, "out of memory for a %zu-page pool", total);
	}
	/* Only now is the memory taken from the regions. */
	for (unsigned int s = 0; s < p->nsegs; s++) {
		struct viod_fe_pool_seg *sg = &p->segs[s];

		for (unsigned int i = 0; i < fe->nregions; i++) {
			struct viod_fe_region *reg = &fe->regions[i];

			if (sg->gpa >= reg->gpa && sg->gpa - reg->gpa < reg->size)
				reg->used = sg->gpa - reg->gpa + (uint64_t)sg->npages * FE_PAGE;
		}
		if (flags & VIOD_FE_POOL_TOUCH)
			for (size_t k = 0; k < sg->npages; k++)
				((volatile uint8_t *)sg->host)[k * FE_PAGE] = 0;
	}
	p->npages = p->nfree = total;
	return 0;
}

/* Pool index of the page at gpa, or SIZE_MAX. */
static size_t pool_index(const struct viod_fe_pool *p, uint64_t gpa)
{
	if (gpa % FE_PAGE)
		return SIZE_MAX;
	for (unsigned int s = 0; s < p->nsegs; s++) {
		const struct viod_fe_pool_seg *sg = &p->segs[s];

		if (gpa >= sg->gpa && (gpa - sg->gpa) / FE_PAGE < sg->npages)
			return sg->first + (size_t)((gpa - sg->gpa) / FE_PAGE);
	}
	return SIZE_MAX;
}

static const struct viod_fe_pool_seg *pool_seg(const struct viod_fe_pool *p, size_t i)
{
	for (unsigned int s = 0; s < p->nsegs; s++)
		if (i >= p->segs[s].first && i - p->segs[s].first < p->segs[s].npages)
			return &p->segs[s];
	return NULL;
}

static uint64_t pool_gpa(const struct viod_fe_pool *p, size_t i)
{
	const struct viod_fe_pool_seg *sg = pool_seg(p, i);

	return sg->gpa + (uint64_t)(i - sg->first) * FE_PAGE;
}

uint64_t viod_fe_page_alloc(struct viod_fe *fe)
{
	struct viod_fe_pool *p = &fe->pool;
	size_t words = (p->npages + 63) / 64;

	if (p->nfree == 0)
		return UINT64_MAX;
	/* Next fit, a word at a time. Bits past npages are clear but name no
	 * page: the index check skips them. */
	for (size_t k = 0; k < words; k++) {
		size_t w = (p->hint / 64 + k) % words;
		uint64_t freebits = ~p->alloc_bits[w];

		while (freebits) {
			size_t i = w * 64 + (size_t)__builtin_ctzll(freebits);

			if (i >= p->npages)
				break;
			pool_set(p->alloc_bits, i, true);
			if (pool_bit(p->report_bits, i)) {
				pool_set(p->report_bits, i, false);
				p->nreported--;
			}
			p->nfree--;
			p->allocs++;
			p->hint = i + 1 < p->npages ? i + 1 : 0;
			return pool_gpa(p, i);
		}
	}
	return UINT64_MAX;
}

int viod_fe_page_free(struct viod_fe *fe, uint64_t gpa)
{
	struct viod_fe_pool *p = &fe->pool;
	size_t i = pool_index(p, gpa);

	if (i == SIZE_MAX)
		return -EINVAL;
	if (!pool_bit(p->alloc_bits, i))
		return -EALREADY;
	pool_set(p->alloc_bits, i, false);
	p->nfree++;
	p->frees++;
	return 0;
}

void *viod_fe_page_host(const struct viod_fe *fe, uint64_t gpa)
{
	const struct viod_fe_pool *p = &fe->pool;
	size_t i = pool_index(p, gpa);
	const struct viod_fe_pool_seg *sg;

	if (i == SIZE_MAX)
		return NULL;
	sg = pool_seg(p, i);
	return sg->host + (gpa - sg->gpa);
}

size_t viod_fe_pool_pages(const struct viod_fe *fe)
{
	return fe->pool.npages;
}

size_t viod_fe_pool_free(const struct viod_fe *fe)
{
	return fe->pool.nfree;
}

int viod_fe_pool_take_unreported(struct viod_fe *fe, size_t min_pages,
				 size_t max_pages, uint64_t *gpa, size_t *npages)
{
	struct viod_fe_pool *p = &fe->pool;

	if (min_pages == 0)
		min_pages = 1;
	if (max_pages < min_pages || p->nfree - p->nreported < min_pages)
		return 0;
	for (unsigned int s = 0; s < p->nsegs; s++) {
		const struct viod_fe_pool_seg *sg = &p->segs[s];
		size_t end = sg->first + sg->npages;

		for (size_t i = sg->first; i < end;) {
			size_t j = i;

			while (j < end && j - i < max_pages &&
			       !pool_bit(p->alloc_bits, j) && !pool_bit(p->report_bits, j))
				j++;
			if (j - i >= min_pages) {
				for (size_t k = i; k < j; k++)
					pool_set(p->alloc_bits, k, true);
				p->nfree -= j - i;
				*gpa = pool_gpa(p, i);
				*npages = j - i;
				return 1;
			}
			i = j + 1;
		}
	}
	return 0;
}

int viod_fe_pool_put_reported(struct viod_fe *fe, uint64_t gpa, size_t npages)
{
	struct viod_fe_pool *p = &fe->pool;
	size_t i = pool_index(p, gpa);
	const struct viod_fe_pool_seg *sg;

	if (i == SIZE_MAX || npages == 0)
		return -EINVAL;
	sg = pool_seg(p, i);
	if (npages > sg->first + sg->npages - i)
		return -EINVAL;
	for (size_t k = i; k < i + npages; k++)
		if (!pool_bit(p->alloc_bits, k))
			return -EINVAL;
	for (size_t k = i; k < i + npages; k++) {
		pool_set(p->alloc_bits, k, false);
		pool_set(p->report_bits, k, true);
	}
	p->nfree += npages;
	p->nreported += npages;
	return 0;
}
