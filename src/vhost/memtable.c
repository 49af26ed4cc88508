/*
 * Memory tables: front-end fds mapped into our address space, one
 * reference-counted table per layout. Security model: region descriptions
 * and fds are untrusted. Only regular files (memfds and hugetlbfs files
 * are regular files) may back guest memory; sizes and offsets are checked
 * for overflow and against the fd's size (mapping past EOF would turn a
 * guest access into SIGBUS); regions may not overlap in guest-physical or
 * front-end address space; and a device's total is capped (mem-max), so a
 * front-end cannot make viod map, and be charged for, more than the host
 * has. Tables are built and swapped on the device's primary worker.
 */
#include "vhost.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int viod_mem_fd_check(int fd, uint64_t end, const char **why)
{
	struct stat st;

	if (fstat(fd, &st) < 0) {
		*why = "cannot stat the memory fd";
		return -errno;
	}
	if (!S_ISREG(st.st_mode)) {
		*why = "memory fd is not a regular file, memfd or hugetlbfs file";
		return -EINVAL;
	}
	if ((uint64_t)st.st_size < end) {
		*why = "memory region extends past the end of its fd";
		return -EINVAL;
	}
	return 0;
}

struct viod_memtable *viod_memtable_new(struct viod_dev *dev)
{
	struct viod_memtable *t = g_new0(struct viod_memtable, 1);

	atomic_init(&t->refs, 1);
	t->dev = dev;
	return t;
}

struct viod_memtable *viod_memtable_clone(struct viod_dev *dev,
					  const struct viod_memtable *t)
{
	struct viod_memtable *c = viod_memtable_new(dev);

	if (!t)
		return c;
	c->mem = t->mem;
	c->total = t->total;
	for (unsigned int i = 0; i < t->mem.nregions; i++) {
		c->maps[i] = t->maps[i];
		if (c->maps[i])
			atomic_fetch_add(&c->maps[i]->refs, 1);
	}
	return c;
}

static void map_unref(struct viod_memmap *m)
{
	if (atomic_fetch_sub(&m->refs, 1) != 1)
		return;
	munmap(m->base, m->len);
	close(m->fd);
	g_free(m);
}

int viod_memtable_add(struct viod_memtable *t, const struct viod_vu_region *vr,
		      int fd, uint64_t max_total)
{
	struct viod_mem_region r = {
		.gpa = vr->gpa, .size = vr->size, .uva = vr->uva,
	};
	struct viod_memmap *m;
	struct stat st;
	uint64_t align, map_off, lead, map_len, end, total;
	const char *why = NULL;
	void *base;
	int rc;

	rc = viod_mem_check_new(&t->mem, &r);
	if (rc < 0) {
		why = "region overlaps another, wraps, or the table is full";
		goto fail;
	}
	if (__builtin_add_overflow(t->total, vr->size, &total) || total > max_total) {
		g_autofree char *cap = g_format_size_full(max_total, G_FORMAT_SIZE_IEC_UNITS);

		viod_dev_warn(t->dev, "memory region at 0x%" G_GINT64_MODIFIER "x of 0x%"
			      G_GINT64_MODIFIER "x bytes refused: guest memory would exceed "
			      "the device's mem-max of %s (an option of --device)",
			      vr->gpa, vr->size, cap);
		close(fd);
		return -E2BIG;
	}
	if (__builtin_add_overflow(vr->mmap_offset, vr->size, &end)) {
		rc = -EINVAL;
		why = "region offset overflows";
		goto fail;
	}
	rc = viod_mem_fd_check(fd, end, &why);
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
	if (__builtin_add_overflow(lead, vr->size, &map_len) ||
	    map_len > SIZE_MAX || map_off > INT64_MAX) {
		rc = -EINVAL;
		why = "region too large to map";
		goto fail;
	}
	base = mmap(NULL, (size_t)map_len, PROT_READ | PROT_WRITE,
		    MAP_SHARED | MAP_NORESERVE, fd, (off_t)map_off);
	if (base == MAP_FAILED) {
		rc = -errno;
		goto fail;
	}
	m = g_new0(struct viod_memmap, 1);
	atomic_init(&m->refs, 1);
	m->base = base;
	m->len = (size_t)map_len;
	m->fd = fd;
	m->fd_offset = vr->mmap_offset;
	m->page_size = align;
	r.host = (uint8_t *)base + lead;
	t->maps[t->mem.nregions] = m;
	t->mem.regions[t->mem.nregions++] = r;
	t->total = total;
	return 0;
fail:
	if (why)
		viod_dev_warn(t->dev, "memory region at 0x%" G_GINT64_MODIFIER "x of 0x%"
			      G_GINT64_MODIFIER "x bytes refused: %s", vr->gpa, vr->size, why);
	else
		viod_dev_warn(t->dev, "memory region at 0x%" G_GINT64_MODIFIER "x of 0x%"
			      G_GINT64_MODIFIER "x bytes refused: %s", vr->gpa, vr->size,
			      g_strerror(-rc));
	close(fd);
	return rc;
}

int viod_memtable_remove(struct viod_memtable *t, const struct viod_vu_region *vr)
{
	for (unsigned int i = 0; i < t->mem.nregions; i++) {
		const struct viod_mem_region *r = &t->mem.regions[i];
		unsigned int last = t->mem.nregions - 1;

		/* vhost-user.rst: identified by gpa, uva and size. */
		if (r->gpa != vr->gpa || r->uva != vr->uva || r->size != vr->size)
			continue;
		t->total -= r->size;
		if (t->maps[i])
			map_unref(t->maps[i]);
		t->maps[i] = t->maps[last];
		t->mem.regions[i] = t->mem.regions[last];
		t->maps[last] = NULL;
		t->mem.nregions--;
		return 0;
	}
	return -ENOENT;
}

void viod_memtable_ref(struct viod_memtable *t)
{
	if (t)
		atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
}

void viod_memtable_unref(struct viod_memtable *t)
{
	if (!t || atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) != 1)
		return;
	for (unsigned int i = 0; i < t->mem.nregions; i++)
		if (t->maps[i])
			map_unref(t->maps[i]);
	/* Nothing uses the old mapping any more: the change can be acked. */
	if (t->on_release)
		viod_cmd_complete(t->dev, t->on_release);
	g_free(t);
}
