/*
 * Front-end guest memory: one memfd split into regions at non-contiguous
 * guest-physical ranges, a bump allocator, gpa <-> host translation.
 * Contracts: frontend.h.
 */
#include "fe-private.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define FE_REGION_GAP (1ull << 20)

int viod_fe_error(struct viod_fe *fe, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(fe->err, sizeof(fe->err), fmt, ap);
	va_end(ap);
	return err;
}

void viod_fe_opts_init(struct viod_fe_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->mem_size = VIOD_FE_DEFAULT_MEM;
	o->nregions = 1;
	o->spin_us = VIOD_FE_DEFAULT_SPIN_US;
	o->timeout_ms = VIOD_FE_DEFAULT_TIMEOUT_MS;
}

int viod_fe_init(struct viod_fe *fe, const struct viod_fe_opts *opts)
{
	uint64_t region_size, stride;
	int r;

	memset(fe, 0, sizeof(*fe));
	fe->sock = fe->backend_fd = fe->memfd = fe->inflight.fd = -1;
	fe->queue_num_unit = 1;
	if (opts)
		fe->opts = *opts;
	else
		viod_fe_opts_init(&fe->opts);

	if (fe->opts.nregions < 1 || fe->opts.nregions > VIOD_FE_MAX_REGIONS)
		return viod_fe_error(fe, -EINVAL, "regions must be 1..%u",
				     VIOD_FE_MAX_REGIONS);
	region_size = (fe->opts.mem_size / fe->opts.nregions) & ~(uint64_t)(FE_PAGE - 1);
	if (region_size == 0 || fe->opts.mem_size > (1ull << 40))
		return viod_fe_error(fe, -EINVAL, "memory size %zu unusable for %u regions",
				     fe->opts.mem_size, fe->opts.nregions);

	fe->queues = calloc(VIOD_FE_MAX_QUEUES, sizeof(*fe->queues));
	if (!fe->queues)
		return viod_fe_error(fe, -ENOMEM, "out of memory");
	for (unsigned int i = 0; i < VIOD_FE_MAX_QUEUES; i++)
		fe->queues[i].kick_fd = fe->queues[i].call_fd = -1;

	fe->nregions = fe->opts.nregions;
	fe->mem_size = (size_t)(region_size * fe->nregions);
	fe->memfd = memfd_create("viod-guest", MFD_CLOEXEC);
	if (fe->memfd < 0) {
		r = viod_fe_error(fe, -errno, "memfd_create: %s", strerror(errno));
		goto fail;
	}
	if (ftruncate(fe->memfd, (off_t)fe->mem_size) < 0) {
		r = viod_fe_error(fe, -errno, "ftruncate guest memory: %s", strerror(errno));
		goto fail;
	}
	fe->mem = mmap(NULL, fe->mem_size, PROT_READ | PROT_WRITE, MAP_SHARED,
		       fe->memfd, 0);
	if (fe->mem == MAP_FAILED) {
		fe->mem = NULL;
		r = viod_fe_error(fe, -errno, "mmap guest memory: %s", strerror(errno));
		goto fail;
	}

	/* Regions are contiguous in the memfd and in our mapping but not in
	 * guest-physical space: a 1 MiB hole follows each, so a back-end that
	 * assumes contiguous guest memory fails visibly. */
	stride = FE_ALIGN_UP(region_size, FE_REGION_GAP) + FE_REGION_GAP;
	for (unsigned int i = 0; i < fe->nregions; i++) {
		struct viod_fe_region *reg = &fe->regions[i];

		reg->gpa = i * stride;
		reg->size = region_size;
		reg->mmap_offset = i * region_size;
		reg->host = fe->mem + reg->mmap_offset;
		reg->used = 0;
	}
	return 0;
fail:
	fe_close(&fe->memfd);
	free(fe->queues);
	fe->queues = NULL;
	return r;
}

const char *viod_fe_strerror(const struct viod_fe *fe)
{
	return fe->err;
}

void *viod_fe_alloc(struct viod_fe *fe, size_t len, size_t align, uint64_t *gpa)
{
	if (align == 0)
		align = 1;
	/* Region starts are page-aligned in both address spaces, so any
	 * alignment up to a page holds for the host pointer and the gpa. */
	if (len == 0 || align > FE_PAGE || (align & (align - 1)))
		return NULL;
	for (unsigned int i = 0; i < fe->nregions; i++) {
		struct viod_fe_region *reg = &fe->regions[i];
		uint64_t start = FE_ALIGN_UP(reg->used, align);

		if (start > reg->size || len > reg->size - start)
			continue;
		reg->used = start + len;
		*gpa = reg->gpa + start;
		return reg->host + start;
	}
	return NULL;
}

uint64_t viod_fe_gpa(const struct viod_fe *fe, const void *p)
{
	uintptr_t a = (uintptr_t)p;

	for (unsigned int i = 0; i < fe->nregions; i++) {
		const struct viod_fe_region *reg = &fe->regions[i];
		uintptr_t base = (uintptr_t)reg->host;

		if (a >= base && a - base < reg->size)
			return reg->gpa + (a - base);
	}
	return UINT64_MAX;
}

void *viod_fe_host(const struct viod_fe *fe, uint64_t gpa, size_t len)
{
	for (unsigned int i = 0; i < fe->nregions; i++) {
		const struct viod_fe_region *reg = &fe->regions[i];

		if (gpa >= reg->gpa && gpa - reg->gpa < reg->size &&
		    len <= reg->size - (gpa - reg->gpa))
			return reg->host + (gpa - reg->gpa);
	}
	return NULL;
}
