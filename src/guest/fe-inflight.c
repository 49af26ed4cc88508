/*
 * Front-end side of inflight I/O tracking (INFLIGHT_SHMFD; QEMU
 * docs/interop/vhost-user.rst, "Inflight I/O tracking"): the region is
 * the back-end's, allocated on GET_INFLIGHT_FD; the front-end maps it,
 * keeps it across back-end restarts and hands it back with
 * SET_INFLIGHT_FD. Contracts: frontend.h.
 *
 * Trust: the reply to GET_INFLIGHT_FD is checked (size, exactly one fd,
 * a regular file large enough for what the back-end claims, a region
 * large enough for the queues asked for) before anything is mapped; every
 * fd received is closed on every failure.
 */
#include "fe-private.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

_Static_assert(sizeof(struct viod_vu_inflight) == VU_INFLIGHT_SIZE,
	       "the inflight description is 24 bytes on the wire");

void viod_fe_inflight_release(struct viod_fe *fe)
{
	struct viod_fe_inflight *in = &fe->inflight;

	/* fd and map are set together (viod_fe_get_inflight). */
	if (!in->map)
		return;
	munmap(in->map, (size_t)in->size);
	fe_close(&in->fd);
	memset(in, 0, sizeof(*in));
	in->fd = -1;
}

/* Checks the back-end's region description and fd; maps it into *map. */
static int fe_inflight_map(struct viod_fe *fe, const struct viod_vu_inflight *d,
			   int fd, uint64_t need, void **map)
{
	long page = sysconf(_SC_PAGESIZE);
	struct stat st;

	if (d->mmap_size < need)
		return viod_fe_error(fe, -EPROTO,
				     "GET_INFLIGHT_FD: mmap_size %llu, need %llu",
				     (unsigned long long)d->mmap_size,
				     (unsigned long long)need);
	if (d->mmap_size > SIZE_MAX || d->mmap_offset > UINT64_MAX - d->mmap_size ||
	    (page > 0 && d->mmap_offset % (uint64_t)page))
		return viod_fe_error(fe, -EPROTO,
				     "GET_INFLIGHT_FD: unusable mmap_offset %llu or size %llu",
				     (unsigned long long)d->mmap_offset,
				     (unsigned long long)d->mmap_size);
	if (fstat(fd, &st) < 0)
		return viod_fe_error(fe, -errno, "GET_INFLIGHT_FD: fstat: %s",
				     strerror(errno));
	if (!S_ISREG(st.st_mode))
		return viod_fe_error(fe, -EPROTO, "GET_INFLIGHT_FD: fd is not a regular file");
	if (st.st_size < 0 || (uint64_t)st.st_size < d->mmap_offset + d->mmap_size)
		return viod_fe_error(fe, -EPROTO,
				     "GET_INFLIGHT_FD: file of %lld bytes, region ends at %llu",
				     (long long)st.st_size,
				     (unsigned long long)(d->mmap_offset + d->mmap_size));
	*map = mmap(NULL, (size_t)d->mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
		    (off_t)d->mmap_offset);
	if (*map == MAP_FAILED) {
		*map = NULL;
		return viod_fe_error(fe, -errno, "GET_INFLIGHT_FD: mmap: %s", strerror(errno));
	}
	return 0;
}

int viod_fe_get_inflight(struct viod_fe *fe, uint16_t num_queues, uint16_t queue_size)
{
	struct viod_vu_inflight req = { .num_queues = num_queues, .queue_size = queue_size };
	struct viod_vu_msg m;
	int fds[VU_MAX_FDS];
	unsigned int nfds = 0;
	uint64_t need;
	void *map = NULL;
	int r;

	if (!viod_fe_has_protocol(fe, VU_PF_INFLIGHT_SHMFD))
		return viod_fe_error(fe, -ENOTSUP, "INFLIGHT_SHMFD not negotiated");
	if (!fe->negotiated)
		return viod_fe_error(fe, -EINVAL, "GET_INFLIGHT_FD before negotiation");
	if (num_queues == 0 || num_queues > VIOD_FE_MAX_QUEUES ||
	    !viod_vq_size_valid(queue_size))
		return viod_fe_error(fe, -EINVAL, "inflight for %u queues of %u entries",
				     num_queues, queue_size);
	need = (uint64_t)num_queues * viod_inflight_queue_size(queue_size);

	r = viod_fe_send_req(fe, VU_GET_INFLIGHT_FD, 0, &req, sizeof(req), NULL, 0);
	if (r < 0)
		return r;
	r = viod_fe_recv_msg(fe, VU_GET_INFLIGHT_FD, &m, fds, &nfds);
	if (r < 0)
		return r;
	if (m.hdr.size != VU_INFLIGHT_SIZE) {
		r = viod_fe_error(fe, -EPROTO, "GET_INFLIGHT_FD: reply size %u, expected %u",
				  m.hdr.size, VU_INFLIGHT_SIZE);
		goto out;
	}
	if (m.u.inflight.mmap_size == 0) {
		r = viod_fe_error(fe, -ENOTSUP, "back-end tracks no inflight I/O (mmap_size 0)");
		goto out;
	}
	if (nfds != 1) {
		r = viod_fe_error(fe, -EPROTO, "GET_INFLIGHT_FD: %u fds, expected 1", nfds);
		goto out;
	}
	r = fe_inflight_map(fe, &m.u.inflight, fds[0], need, &map);
	if (r < 0)
		goto out;

	viod_fe_inflight_release(fe);
	fe->inflight = (struct viod_fe_inflight){
		.fd = fds[0], .map = map, .size = m.u.inflight.mmap_size,
		.offset = m.u.inflight.mmap_offset,
		.num_queues = num_queues, .queue_size = queue_size,
	};
	nfds = 0;
out:
	for (unsigned int i = 0; i < nfds; i++)
		close(fds[i]);
	return r;
}

int viod_fe_set_inflight(struct viod_fe *fe)
{
	const struct viod_fe_inflight *in = &fe->inflight;
	struct viod_vu_inflight d;

	if (!in->map)
		return viod_fe_error(fe, -EINVAL, "no inflight region to send");
	if (!viod_fe_has_protocol(fe, VU_PF_INFLIGHT_SHMFD))
		return viod_fe_error(fe, -ENOTSUP, "INFLIGHT_SHMFD not negotiated");
	memset(&d, 0, sizeof(d));
	d.mmap_size = in->size;
	d.mmap_offset = in->offset;
	d.num_queues = in->num_queues;
	d.queue_size = in->queue_size;
	return viod_fe_request(fe, VU_SET_INFLIGHT_FD, &d, sizeof(d), &in->fd, 1,
			       NULL, 0);
}

struct viod_inflight_queue *viod_fe_inflight_queue(struct viod_fe *fe,
						   unsigned int idx)
{
	const struct viod_fe_inflight *in = &fe->inflight;

	if (!in->map || idx >= in->num_queues)
		return NULL;
	return (struct viod_inflight_queue *)(in->map +
		(uint64_t)idx * viod_inflight_queue_size(in->queue_size));
}
