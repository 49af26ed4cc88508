/*
 * The memory table: front-end fds mapped into our address space. Security
 * model: region descriptions are untrusted. Sizes and offsets are checked
 * for overflow and against the fd's size (mapping past EOF would turn a
 * guest access into SIGBUS), and regions may not overlap in guest-physical
 * or front-end address space. Callers hold the device's dp_lock.
 */
#include "vhost.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int viod_memtable_add(struct viod_dev *dev, const struct viod_vu_region *vr, int fd)
{
	struct viod_mem_region r = {
		.gpa = vr->gpa, .size = vr->size, .uva = vr->uva,
	};
	struct stat st;
	uint64_t align, map_off, lead, map_len, end;
	void *base;
	int rc;

	rc = viod_mem_check_new(&dev->mem, &r);
	if (rc < 0)
		goto fail;
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		goto fail;
	}
	/* hugetlbfs reports its page size here; mmap offsets must be aligned to it */
	align = (uint64_t)st.st_blksize;
	if (align < 4096 || (align & (align - 1)))
		align = 4096;
	map_off = vr->mmap_offset & ~(align - 1);
	lead = vr->mmap_offset - map_off;
	if (__builtin_add_overflow(vr->mmap_offset, vr->size, &end) ||
	    __builtin_add_overflow(lead, vr->size, &map_len) ||
	    map_len > SIZE_MAX || map_off > INT64_MAX) {
		rc = -EINVAL;
		goto fail;
	}
	if ((S_ISREG(st.st_mode) && (uint64_t)st.st_size < end)) {
		rc = -EINVAL;
		goto fail;
	}
	base = mmap(NULL, (size_t)map_len, PROT_READ | PROT_WRITE,
		    MAP_SHARED | MAP_NORESERVE, fd, (off_t)map_off);
	if (base == MAP_FAILED) {
		rc = -errno;
		goto fail;
	}
	r.host = (uint8_t *)base + lead;
	dev->maps[dev->mem.nregions] = (struct viod_memmap){
		.base = base, .len = (size_t)map_len, .fd = fd,
		.fd_offset = vr->mmap_offset, .page_size = align,
	};
	dev->mem.regions[dev->mem.nregions++] = r;
	return 0;
fail:
	close(fd);
	return rc;
}

static void region_drop(struct viod_dev *dev, unsigned int i)
{
	unsigned int last = dev->mem.nregions - 1;

	munmap(dev->maps[i].base, dev->maps[i].len);
	close(dev->maps[i].fd);
	dev->maps[i] = dev->maps[last];
	dev->mem.regions[i] = dev->mem.regions[last];
	dev->mem.nregions--;
}

int viod_memtable_remove(struct viod_dev *dev, const struct viod_vu_region *vr)
{
	for (unsigned int i = 0; i < dev->mem.nregions; i++) {
		const struct viod_mem_region *r = &dev->mem.regions[i];

		/* vhost-user.rst: identified by gpa, uva and size. */
		if (r->gpa == vr->gpa && r->uva == vr->uva && r->size == vr->size) {
			region_drop(dev, i);
			return 0;
		}
	}
	return -ENOENT;
}

void viod_memtable_clear(struct viod_dev *dev)
{
	while (dev->mem.nregions)
		region_drop(dev, dev->mem.nregions - 1);
}
