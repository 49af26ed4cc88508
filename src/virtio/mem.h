/*
 * Guest memory as seen by whoever processes rings: a table of regions that
 * map guest-physical (and front-end user) addresses to host pointers.
 *
 * Security model: the region table is set up by the (untrusted) front-end
 * through the vhost layer, which checks it for overlap and overflow before
 * installing it; every address a guest puts in a ring is untrusted and goes
 * through viod_mem_map_iov(), which maps the whole range or fails.
 */
#ifndef VIOD_VIRTIO_MEM_H
#define VIOD_VIRTIO_MEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define VIOD_MEM_MAX_REGIONS 32

struct viod_mem_region {
	uint64_t gpa;   /* guest-physical start */
	uint64_t size;  /* bytes, > 0 */
	uint64_t uva;   /* front-end's user address of gpa (ring addresses) */
	uint8_t *host;  /* our mapping of gpa */
};

struct viod_mem {
	unsigned int nregions;
	struct viod_mem_region regions[VIOD_MEM_MAX_REGIONS];
};

/*
 * Maps [gpa, gpa + len) into at most max_iov iovecs, crossing region
 * boundaries where the guest ranges are adjacent. Returns the number of
 * iovecs used (0 for len == 0), -EFAULT if any byte is unmapped or the
 * range wraps, -E2BIG if more than max_iov iovecs would be needed.
 */
int viod_mem_map_iov(const struct viod_mem *m, uint64_t gpa, uint64_t len,
		     struct iovec *iov, unsigned int max_iov);

/* The whole range as one host pointer, or NULL. Built on viod_mem_map_iov. */
void *viod_mem_map(const struct viod_mem *m, uint64_t gpa, uint64_t len);

/* The same for a front-end user address (vring addresses), or NULL. */
void *viod_mem_map_uva(const struct viod_mem *m, uint64_t uva, uint64_t len);

/* The index of the region whose mapping holds host pointer p, with p's
 * guest address in *gpa; -1 if p is not in guest memory. */
int viod_mem_host_to_gpa(const struct viod_mem *m, const void *p, uint64_t *gpa);

/* The region holding gpa, or NULL. */
const struct viod_mem_region *viod_mem_find(const struct viod_mem *m, uint64_t gpa);

/*
 * Checks that a candidate region is sane and overlaps none of m's regions,
 * in either address space. 0 or -EINVAL.
 */
int viod_mem_check_new(const struct viod_mem *m, const struct viod_mem_region *r);

#endif
