/*
 * Userspace vhost-user front-end. Contracts: frontend.h. Protocol:
 * QEMU docs/interop/vhost-user.rst; device status and feature order:
 * virtio 1.2, 3.1.1.
 */
#include "frontend.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>

#define FE_PAGE 4096u
#define FE_REGION_GAP (1ull << 20)
#define FE_ALIGN_UP(x, a) (((x) + ((a) - 1)) & ~((uint64_t)(a) - 1))

/* Transport features this front-end does not implement: never acked,
 * whatever the driver asks for. */
#define FE_NEVER_FEATURES                                                  \
	((1ull << VHOST_F_LOG_ALL) | (1ull << VIRTIO_F_ACCESS_PLATFORM) |  \
	 (1ull << VIRTIO_F_RING_PACKED) | (1ull << VIRTIO_F_IN_ORDER) |    \
	 (1ull << VIRTIO_F_SR_IOV) | (1ull << 38) /* NOTIFICATION_DATA */ | \
	 (1ull << VIRTIO_F_RING_RESET))

int viod_fe_error(struct viod_fe *fe, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(fe->err, sizeof(fe->err), fmt, ap);
	va_end(ap);
	return err;
}

static int64_t fe_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Milliseconds left until deadline_ns (-1: no deadline), for poll(). */
static int fe_remaining_ms(int64_t deadline_ns)
{
	int64_t left;

	if (deadline_ns < 0)
		return -1;
	left = deadline_ns - fe_now_ns();
	if (left <= 0)
		return 0;
	return (int)((left + 999999) / 1000000);
}

static int64_t fe_deadline(int timeout_ms)
{
	return timeout_ms < 0 ? -1 : fe_now_ns() + (int64_t)timeout_ms * 1000000;
}

static void fe_close(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static inline void fe_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#endif
}

/* ------------------------------------------------------------------ */
/* Guest memory.                                                       */

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
	fe->sock = fe->backend_fd = fe->memfd = -1;
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

/* ------------------------------------------------------------------ */
/* Page pool.                                                          */

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

static void fe_pool_fini(struct viod_fe_pool *p)
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
		fe_pool_fini(p);
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

/* ------------------------------------------------------------------ */
/* Raw messages.                                                       */

int viod_fe_send_bytes(int sock, const void *buf, size_t len, const int *fds,
		       unsigned int nfds)
{
	union {
		char b[CMSG_SPACE(sizeof(int) * VU_MAX_FDS)];
		struct cmsghdr align;
	} cbuf;
	size_t done = 0;

	if (nfds > VU_MAX_FDS || len == 0)
		return -EINVAL;
	memset(&cbuf, 0, sizeof(cbuf));
	while (done < len) {
		struct iovec iov = {
			.iov_base = (char *)buf + done,
			.iov_len = len - done,
		};
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
		ssize_t n;

		/* The fds ride with the first byte only. */
		if (done == 0 && nfds > 0) {
			struct cmsghdr *c;

			mh.msg_control = cbuf.b;
			mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
			c = CMSG_FIRSTHDR(&mh);
			c->cmsg_level = SOL_SOCKET;
			c->cmsg_type = SCM_RIGHTS;
			c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
			memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
		}
		n = sendmsg(sock, &mh, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		done += (size_t)n;
	}
	return 0;
}

int viod_fe_msg_send(int sock, uint32_t request, uint32_t flags, uint32_t size,
		     const void *payload, size_t payload_len, const int *fds,
		     unsigned int nfds)
{
	struct viod_vu_msg local;
	struct viod_vu_hdr hdr = { .request = request, .flags = flags, .size = size };
	size_t total = VU_HDR_SIZE + payload_len;
	uint8_t *buf = (uint8_t *)&local;
	int r;

	if (payload_len > SIZE_MAX - VU_HDR_SIZE)
		return -EINVAL;
	if (total > sizeof(local)) {
		buf = malloc(total);
		if (!buf)
			return -ENOMEM;
	}
	memcpy(buf, &hdr, VU_HDR_SIZE);
	if (payload_len)
		memcpy(buf + VU_HDR_SIZE, payload, payload_len);
	r = viod_fe_send_bytes(sock, buf, total, fds, nfds);
	if (buf != (uint8_t *)&local)
		free(buf);
	return r;
}

/*
 * Reads exactly len bytes, collecting SCM_RIGHTS fds into fds[] (room for
 * VU_MAX_FDS; *nfds counts them). *lost is set when fds were dropped
 * (control data truncated or too many).
 */
static int fe_read_full(int sock, void *buf, size_t len, int *fds,
			unsigned int *nfds, bool *lost, int timeout_ms)
{
	union {
		char b[CMSG_SPACE(sizeof(int) * VU_MAX_FDS)];
		struct cmsghdr align;
	} cbuf;
	size_t got = 0;

	while (got < len) {
		struct iovec iov = {
			.iov_base = (char *)buf + got,
			.iov_len = len - got,
		};
		struct msghdr mh = {
			.msg_iov = &iov, .msg_iovlen = 1,
			.msg_control = cbuf.b, .msg_controllen = sizeof(cbuf.b),
		};
		ssize_t n;

		if (timeout_ms >= 0) {
			struct pollfd p = { .fd = sock, .events = POLLIN };
			int pr = poll(&p, 1, timeout_ms);

			if (pr < 0 && errno == EINTR)
				continue;
			if (pr < 0)
				return -errno;
			if (pr == 0)
				return -ETIMEDOUT;
		}
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -ECONNRESET;
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
			size_t k;

			if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
				continue;
			k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			for (size_t j = 0; j < k; j++) {
				int fd;

				memcpy(&fd, CMSG_DATA(c) + j * sizeof(int), sizeof(fd));
				if (*nfds < VU_MAX_FDS) {
					fds[(*nfds)++] = fd;
				} else {
					close(fd);
					*lost = true;
				}
			}
		}
		if (mh.msg_flags & MSG_CTRUNC)
			*lost = true;
		got += (size_t)n;
	}
	return 0;
}

int viod_fe_msg_recv(int sock, struct viod_vu_msg *msg, int *fds,
		     unsigned int *nfds, int timeout_ms)
{
	int local[VU_MAX_FDS];
	unsigned int n = 0;
	bool lost = false;
	int r;

	memset(&msg->hdr, 0, sizeof(msg->hdr));
	r = fe_read_full(sock, &msg->hdr, VU_HDR_SIZE, local, &n, &lost, timeout_ms);
	if (r == 0 && msg->hdr.size > VU_PAYLOAD_MAX)
		r = -EPROTO;
	if (r == 0 && msg->hdr.size > 0)
		r = fe_read_full(sock, &msg->u, msg->hdr.size, local, &n, &lost,
				 timeout_ms);
	if (r == 0 && (lost || (!fds && n > 0)))
		r = -EPROTO;
	if (r < 0) {
		for (unsigned int i = 0; i < n; i++)
			close(local[i]);
		if (nfds)
			*nfds = 0;
		return r;
	}
	if (fds) {
		memcpy(fds, local, n * sizeof(int));
		*nfds = n;
	} else if (nfds) {
		*nfds = 0;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Back-end channel.                                                   */

static void fe_backend_drop(struct viod_fe *fe)
{
	fe_close(&fe->backend_fd);
}

/*
 * Reads and answers one back-end request. CONFIG_CHANGE_MSG (no payload,
 * no fds, CONFIG negotiated) is acked with 0 and queued for the callback;
 * anything else is refused (answered 1 if NEED_REPLY). 0 or -errno when
 * the channel itself failed.
 */
static int fe_backend_serve_one(struct viod_fe *fe)
{
	struct viod_vu_msg m;
	int fds[VU_MAX_FDS];
	unsigned int nfds = 0;
	uint64_t result = 1;
	int r;

	r = viod_fe_msg_recv(fe->backend_fd, &m, fds, &nfds, fe->opts.timeout_ms);
	if (r < 0)
		return r;
	/* BACKEND_SEND_FD is never negotiated: no request may carry fds. */
	for (unsigned int i = 0; i < nfds; i++)
		close(fds[i]);
	if ((m.hdr.flags & VU_FLAG_VERSION_MASK) == VU_FLAG_VERSION &&
	    !(m.hdr.flags & VU_FLAG_REPLY) &&
	    m.hdr.request == VU_BACKEND_CONFIG_CHANGE_MSG && m.hdr.size == 0 &&
	    nfds == 0 && viod_fe_has_protocol(fe, VU_PF_CONFIG)) {
		fe->config_changes++;
		fe->config_pending++;
		result = 0;
	}
	if (m.hdr.flags & VU_FLAG_NEED_REPLY) {
		r = viod_fe_msg_send(fe->backend_fd, m.hdr.request,
				     VU_FLAG_VERSION | VU_FLAG_REPLY,
				     sizeof(result), &result, sizeof(result),
				     NULL, 0);
		if (r < 0)
			return r;
	}
	return 0;
}

static void fe_deliver_config(struct viod_fe *fe)
{
	while (fe->config_pending > 0) {
		fe->config_pending--;
		if (fe->opts.config_cb)
			fe->opts.config_cb(fe, fe->opts.config_opaque);
	}
}

int viod_fe_poll_backend(struct viod_fe *fe, int timeout_ms)
{
	int64_t deadline = fe_deadline(timeout_ms);
	unsigned int served = 0, deferred = fe->config_pending;

	if (fe->backend_fd < 0)
		return viod_fe_error(fe, -ENOTCONN, "no back-end channel");
	if (deferred > 0)
		deadline = 0;
	for (;;) {
		struct pollfd p = { .fd = fe->backend_fd, .events = POLLIN };
		int r = poll(&p, 1, served ? 0 : fe_remaining_ms(deadline));

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return viod_fe_error(fe, -errno, "poll back-end channel: %s",
					     strerror(errno));
		if (r == 0)
			break;
		r = fe_backend_serve_one(fe);
		if (r < 0) {
			fe_backend_drop(fe);
			return viod_fe_error(fe, r, "back-end channel: %s", strerror(-r));
		}
		served++;
	}
	fe_deliver_config(fe);
	return (int)(served + deferred);
}

/* ------------------------------------------------------------------ */
/* Requests.                                                           */

/* Waits for fe->sock to become readable, serving the back-end channel
 * meanwhile so that a back-end awaiting our ack there cannot deadlock us. */
static int fe_wait_reply(struct viod_fe *fe)
{
	int64_t deadline = fe_deadline(fe->opts.timeout_ms);

	for (;;) {
		struct pollfd p[2] = {
			{ .fd = fe->sock, .events = POLLIN },
			{ .fd = fe->backend_fd, .events = POLLIN },
		};
		int r = poll(p, fe->backend_fd >= 0 ? 2 : 1, fe_remaining_ms(deadline));

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -ETIMEDOUT;
		if (p[0].revents)
			return 0;
		if (fe->backend_fd >= 0 && p[1].revents &&
		    fe_backend_serve_one(fe) < 0)
			fe_backend_drop(fe);
	}
}

/*
 * Receives the reply to request into *m: flags must say version 1 and
 * REPLY, the request must match. Size is the caller's to check. A
 * failure here leaves the stream unusable (fe->broken).
 */
static int fe_recv(struct viod_fe *fe, uint32_t request, struct viod_vu_msg *m)
{
	int r;

	r = fe_wait_reply(fe);
	if (r == 0)
		r = viod_fe_msg_recv(fe->sock, m, NULL, NULL, fe->opts.timeout_ms);
	if (r < 0) {
		fe->broken = true;
		return viod_fe_error(fe, r, "%s: no reply: %s", viod_vu_request_name(request),
				     strerror(-r));
	}
	if ((m->hdr.flags & VU_FLAG_VERSION_MASK) != VU_FLAG_VERSION ||
	    !(m->hdr.flags & VU_FLAG_REPLY) || m->hdr.request != request) {
		fe->broken = true;
		return viod_fe_error(fe, -EPROTO,
				     "%s: bad reply header (request %u, flags 0x%x, size %u)",
				     viod_vu_request_name(request), m->hdr.request, m->hdr.flags,
				     m->hdr.size);
	}
	return 0;
}

int viod_fe_recv_reply(struct viod_fe *fe, uint32_t request, void *reply,
		       uint32_t reply_size)
{
	struct viod_vu_msg m;
	int r;

	if (fe->sock < 0 || fe->broken)
		return viod_fe_error(fe, -EPIPE, "%s: connection unusable",
				     viod_vu_request_name(request));
	r = fe_recv(fe, request, &m);
	if (r < 0)
		return r;
	if (m.hdr.size != reply_size)
		return viod_fe_error(fe, -EPROTO, "%s: reply size %u, expected %u",
				     viod_vu_request_name(request), m.hdr.size, reply_size);
	if (!reply) {
		if (reply_size != sizeof(uint64_t))
			return viod_fe_error(fe, -EINVAL, "ack must be a u64");
		if (m.u.u64 != 0)
			return viod_fe_error(fe, -EREMOTEIO, "%s: back-end answered %llu",
					     viod_vu_request_name(request),
					     (unsigned long long)m.u.u64);
		return 0;
	}
	memcpy(reply, &m.u, reply_size);
	return 0;
}

static int fe_send(struct viod_fe *fe, uint32_t request, uint32_t flags,
		   const void *payload, uint32_t size, const int *fds,
		   unsigned int nfds)
{
	int r;

	if (fe->sock < 0 || fe->broken)
		return viod_fe_error(fe, -EPIPE, "%s: connection unusable",
				     viod_vu_request_name(request));
	if (size > VU_PAYLOAD_MAX)
		return viod_fe_error(fe, -EINVAL, "%s: payload too large",
				     viod_vu_request_name(request));
	r = viod_fe_msg_send(fe->sock, request, VU_FLAG_VERSION | flags, size,
			     payload, size, fds, nfds);
	if (r < 0) {
		fe->broken = true;
		return viod_fe_error(fe, r, "%s: send: %s", viod_vu_request_name(request),
				     strerror(-r));
	}
	return 0;
}

int viod_fe_request(struct viod_fe *fe, uint32_t request, const void *payload,
		    uint32_t size, const int *fds, unsigned int nfds,
		    void *reply, uint32_t reply_size)
{
	bool ack = !reply && viod_fe_has_protocol(fe, VU_PF_REPLY_ACK);
	int r;

	r = fe_send(fe, request, ack ? VU_FLAG_NEED_REPLY : 0, payload, size,
		    fds, nfds);
	if (r < 0)
		return r;
	if (reply)
		return viod_fe_recv_reply(fe, request, reply, reply_size);
	if (ack)
		return viod_fe_recv_reply(fe, request, NULL, sizeof(uint64_t));
	return 0;
}

static int fe_get_u64(struct viod_fe *fe, uint32_t request, uint64_t *v)
{
	return viod_fe_request(fe, request, NULL, 0, NULL, 0, v, sizeof(*v));
}

static int fe_set_u64(struct viod_fe *fe, uint32_t request, uint64_t v,
		      const int *fds, unsigned int nfds)
{
	return viod_fe_request(fe, request, &v, sizeof(v), fds, nfds, NULL, 0);
}

static int fe_set_state(struct viod_fe *fe, uint32_t request, unsigned int idx,
			unsigned int num)
{
	struct vhost_vring_state s = { .index = idx, .num = num };

	return viod_fe_request(fe, request, &s, sizeof(s), NULL, 0, NULL, 0);
}

/* ------------------------------------------------------------------ */
/* Handshake.                                                          */

bool viod_fe_has_feature(const struct viod_fe *fe, unsigned int bit)
{
	return bit < 64 && (fe->features_acked >> bit) & 1;
}

bool viod_fe_has_protocol(const struct viod_fe *fe, unsigned int bit)
{
	return bit < 64 && (fe->pf_acked >> bit) & 1;
}

int viod_fe_connect(struct viod_fe *fe, const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (fe->sock >= 0)
		return viod_fe_error(fe, -EISCONN, "already connected");
	if (!fe->mem)
		return viod_fe_error(fe, -EINVAL, "guest memory not initialised");
	if (strlen(path) >= sizeof(sa.sun_path))
		return viod_fe_error(fe, -ENAMETOOLONG, "socket path too long: %s", path);
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return viod_fe_error(fe, -errno, "socket: %s", strerror(errno));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;

		close(fd);
		return viod_fe_error(fe, -e, "connect %s: %s", path, strerror(e));
	}
	fe->sock = fd;
	fe->broken = false;
	return 0;
}

static int fe_set_status(struct viod_fe *fe, uint8_t status)
{
	int r;

	if (!viod_fe_has_protocol(fe, VU_PF_STATUS))
		return 0;
	r = fe_set_u64(fe, VU_SET_STATUS, status, NULL, 0);
	if (r == 0)
		fe->status = status;
	return r;
}

static int fe_send_mem_table(struct viod_fe *fe)
{
	struct viod_vu_mem_table t;
	int fds[VIOD_FE_MAX_REGIONS];

	memset(&t, 0, sizeof(t));
	t.nregions = fe->nregions;
	for (unsigned int i = 0; i < fe->nregions; i++) {
		t.regions[i].gpa = fe->regions[i].gpa;
		t.regions[i].size = fe->regions[i].size;
		t.regions[i].uva = (uintptr_t)fe->regions[i].host;
		t.regions[i].mmap_offset = fe->regions[i].mmap_offset;
		fds[i] = fe->memfd;
	}

	/* Added regions stay with the back-end across RESET_DEVICE (as with
	 * QEMU, which diffs against what it sent): add them once. */
	if (fe->opts.add_mem_reg && viod_fe_has_protocol(fe, VU_PF_CONFIGURE_MEM_SLOTS)) {
		if (fe->mem_added)
			return 0;
		if (fe->max_mem_slots < fe->nregions)
			return viod_fe_error(fe, -ENOSPC, "back-end has %llu memory slots, need %u",
					     (unsigned long long)fe->max_mem_slots,
					     fe->nregions);
		for (unsigned int i = 0; i < fe->nregions; i++) {
			struct viod_vu_mem_reg m = { .region = t.regions[i] };
			int r = viod_fe_request(fe, VU_ADD_MEM_REG, &m, sizeof(m),
						&fe->memfd, 1, NULL, 0);

			if (r < 0)
				return r;
		}
		fe->mem_added = true;
		return 0;
	}
	return viod_fe_request(fe, VU_SET_MEM_TABLE, &t,
			       (uint32_t)(8 + fe->nregions * sizeof(t.regions[0])),
			       fds, fe->nregions, NULL, 0);
}

/* Steps done once per connection: they survive RESET_DEVICE. */
static int fe_handshake(struct viod_fe *fe)
{
	int r;

	r = fe_get_u64(fe, VU_GET_FEATURES, &fe->features_offered);
	if (r < 0)
		return r;
	if (!(fe->features_offered & (1ull << VIRTIO_F_VERSION_1)))
		return viod_fe_error(fe, -ENOTSUP,
				     "back-end does not offer VIRTIO_F_VERSION_1 (features 0x%llx)",
				     (unsigned long long)fe->features_offered);

	if (fe->features_offered & (1ull << VHOST_USER_F_PROTOCOL_FEATURES)) {
		uint64_t want;

		r = fe_get_u64(fe, VU_GET_PROTOCOL_FEATURES, &fe->pf_offered);
		if (r < 0)
			return r;
		want = fe->pf_offered & VIOD_FE_PROTOCOL_FEATURES & ~fe->opts.pf_disable;
		/* Sent before REPLY_ACK is in force: no NEED_REPLY on this one. */
		r = fe_set_u64(fe, VU_SET_PROTOCOL_FEATURES, want, NULL, 0);
		if (r < 0)
			return r;
		fe->pf_acked = want;
	}

	r = viod_fe_request(fe, VU_SET_OWNER, NULL, 0, NULL, 0, NULL, 0);
	if (r < 0)
		return r;

	if (viod_fe_has_protocol(fe, VU_PF_MQ)) {
		r = fe_get_u64(fe, VU_GET_QUEUE_NUM, &fe->queue_num);
		if (r < 0)
			return r;
		if (fe->queue_num == 0)
			return viod_fe_error(fe, -EPROTO, "back-end reports 0 queues");
	}
	if (viod_fe_has_protocol(fe, VU_PF_CONFIGURE_MEM_SLOTS)) {
		r = fe_get_u64(fe, VU_GET_MAX_MEM_SLOTS, &fe->max_mem_slots);
		if (r < 0)
			return r;
	}
	if (viod_fe_has_protocol(fe, VU_PF_BACKEND_REQ)) {
		int sv[2];

		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
			return viod_fe_error(fe, -errno, "socketpair: %s", strerror(errno));
		r = viod_fe_request(fe, VU_SET_BACKEND_REQ_FD, NULL, 0, &sv[1], 1,
				    NULL, 0);
		close(sv[1]);
		if (r < 0) {
			close(sv[0]);
			return r;
		}
		fe->backend_fd = sv[0];
	}
	return 0;
}

int viod_fe_negotiate(struct viod_fe *fe, uint64_t want)
{
	uint64_t acked, status;
	int r;

	if (fe->sock < 0)
		return viod_fe_error(fe, -ENOTCONN, "not connected");
	if (fe->negotiated)
		return viod_fe_error(fe, -EALREADY, "already negotiated");
	if (!fe->handshaken) {
		r = fe_handshake(fe);
		if (r < 0)
			return r;
		fe->handshaken = true;
	}

	r = fe_set_status(fe, VIRTIO_CONFIG_S_ACKNOWLEDGE);
	if (r == 0)
		r = fe_set_status(fe, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
	if (r < 0)
		return r;

	want |= (1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_RING_F_INDIRECT_DESC) |
		(1ull << VHOST_USER_F_PROTOCOL_FEATURES);
	if (!fe->opts.no_event_idx)
		want |= 1ull << VIRTIO_RING_F_EVENT_IDX;
	acked = fe->features_offered & want & ~FE_NEVER_FEATURES;
	r = fe_set_u64(fe, VU_SET_FEATURES, acked, NULL, 0);
	if (r < 0)
		return r;
	fe->features_acked = acked;

	if (viod_fe_has_protocol(fe, VU_PF_STATUS)) {
		r = fe_set_status(fe, fe->status | VIRTIO_CONFIG_S_FEATURES_OK);
		if (r < 0)
			return r;
		r = fe_get_u64(fe, VU_GET_STATUS, &status);
		if (r < 0)
			return r;
		if (!(status & VIRTIO_CONFIG_S_FEATURES_OK))
			return viod_fe_error(fe, -ENOTSUP,
					     "back-end refused features 0x%llx (status 0x%llx)",
					     (unsigned long long)acked,
					     (unsigned long long)status);
	}

	r = fe_send_mem_table(fe);
	if (r < 0)
		return r;
	fe->negotiated = true;
	return 0;
}

int viod_fe_driver_ok(struct viod_fe *fe)
{
	if (!fe->negotiated)
		return viod_fe_error(fe, -EINVAL, "DRIVER_OK before negotiation");
	return fe_set_status(fe, fe->status | VIRTIO_CONFIG_S_DRIVER_OK);
}

/* ------------------------------------------------------------------ */
/* Config space.                                                       */

static int fe_config_check(struct viod_fe *fe, uint32_t off, uint32_t len)
{
	if (!viod_fe_has_protocol(fe, VU_PF_CONFIG))
		return viod_fe_error(fe, -ENOTSUP, "CONFIG protocol feature not negotiated");
	if (len == 0 || len > VU_MAX_CONFIG_SIZE || off > VU_MAX_CONFIG_SIZE - len)
		return viod_fe_error(fe, -EINVAL, "config range %u+%u out of bounds", off, len);
	return 0;
}

/* A GET_CONFIG/SET_CONFIG payload header for off/len (range checked). */
static int fe_config_init(struct viod_fe *fe, struct viod_vu_config *c, uint32_t off,
			  uint32_t len, uint32_t flags)
{
	int r = fe_config_check(fe, off, len);

	if (r < 0)
		return r;
	memset(c, 0, sizeof(*c));
	c->offset = off;
	c->size = len;
	c->flags = flags;
	return 0;
}

int viod_fe_get_config(struct viod_fe *fe, uint32_t off, void *buf, uint32_t len)
{
	struct viod_vu_config c;
	struct viod_vu_msg m;
	uint32_t size = VU_CONFIG_HDR_SIZE + len;
	int r;

	r = fe_config_init(fe, &c, off, len, 0);
	if (r < 0)
		return r;
	r = fe_send(fe, VU_GET_CONFIG, 0, &c, size, NULL, 0);
	if (r < 0)
		return r;
	r = fe_recv(fe, VU_GET_CONFIG, &m);
	if (r < 0)
		return r;
	/* A zero-size reply is the back-end's way of saying it failed. */
	if (m.hdr.size == 0)
		return viod_fe_error(fe, -EREMOTEIO, "GET_CONFIG %u+%u: back-end failed",
				     off, len);
	if (m.hdr.size != size || m.u.config.offset != off || m.u.config.size != len)
		return viod_fe_error(fe, -EPROTO,
				     "GET_CONFIG: reply size %u offset %u len %u, expected %u %u %u",
				     m.hdr.size, m.u.config.offset, m.u.config.size,
				     size, off, len);
	memcpy(buf, m.u.config.data, len);
	return 0;
}

int viod_fe_set_config(struct viod_fe *fe, uint32_t off, const void *buf,
		       uint32_t len)
{
	struct viod_vu_config c;
	int r;

	r = fe_config_init(fe, &c, off, len, VU_SET_CONFIG_FRONTEND);
	if (r < 0)
		return r;
	memcpy(c.data, buf, len);
	return viod_fe_request(fe, VU_SET_CONFIG, &c, VU_CONFIG_HDR_SIZE + len,
			       NULL, 0, NULL, 0);
}

/* ------------------------------------------------------------------ */
/* Queues.                                                             */

static unsigned int fe_queue_limit(const struct viod_fe *fe)
{
	if (fe->queue_num && fe->queue_num < VIOD_FE_MAX_QUEUES)
		return (unsigned int)fe->queue_num;
	return VIOD_FE_MAX_QUEUES;
}

static void fe_queue_release(struct viod_fe_queue *q)
{
	fe_close(&q->kick_fd);
	fe_close(&q->call_fd);
	if (q->ready)
		viod_vqd_fini(&q->vqd);
	q->ready = false;
}

int viod_fe_queue_setup(struct viod_fe *fe, unsigned int idx, uint16_t num)
{
	struct viod_fe_queue *q;
	struct vhost_vring_addr addr;
	size_t desc_sz, avail_sz, used_off, total;
	bool event_idx;
	int r;

	if (!fe->negotiated)
		return viod_fe_error(fe, -EINVAL, "queue setup before negotiation");
	if (idx >= fe_queue_limit(fe))
		return viod_fe_error(fe, -EINVAL, "queue %u out of range (%u queues)",
				     idx, fe_queue_limit(fe));
	if (!viod_vq_size_valid(num))
		return viod_fe_error(fe, -EINVAL, "queue size %u not a power of two <= %u",
				     num, VIOD_VQ_MAX_SIZE);
	q = &fe->queues[idx];
	if (q->ready)
		return viod_fe_error(fe, -EBUSY, "queue %u already set up", idx);

	/* virtio 1.2, 2.7: desc 16-byte, avail 2-byte, used 4-byte aligned. */
	desc_sz = viod_vring_desc_size(num);
	avail_sz = viod_vring_avail_size(num);
	used_off = FE_ALIGN_UP(desc_sz + avail_sz, 4);
	total = used_off + viod_vring_used_size(num);
	if (!q->ring || q->ring_cap < total) {
		q->ring = viod_fe_alloc(fe, total, FE_PAGE, &q->ring_gpa);
		if (!q->ring)
			return viod_fe_error(fe, -ENOMEM,
					     "no guest memory for a %u-entry ring", num);
		q->ring_cap = total;
	}
	event_idx = viod_fe_has_feature(fe, VIRTIO_RING_F_EVENT_IDX);
	r = viod_vqd_init(&q->vqd, num, q->ring, q->ring + desc_sz,
			  q->ring + used_off, event_idx);
	if (r < 0)
		return viod_fe_error(fe, r, "queue %u: %s", idx, strerror(-r));
	q->ready = true;
	q->num = num;
	viod_vqd_set_interrupts(&q->vqd, false);

	q->kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	q->call_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (q->kick_fd < 0 || q->call_fd < 0) {
		r = viod_fe_error(fe, -errno, "eventfd: %s", strerror(errno));
		goto fail;
	}

	r = fe_set_state(fe, VU_SET_VRING_NUM, idx, num);
	if (r < 0)
		goto fail;
	memset(&addr, 0, sizeof(addr));
	addr.index = idx;
	addr.flags = 0;
	addr.desc_user_addr = (uintptr_t)q->vqd.desc;
	addr.avail_user_addr = (uintptr_t)q->vqd.avail;
	addr.used_user_addr = (uintptr_t)q->vqd.used;
	r = viod_fe_request(fe, VU_SET_VRING_ADDR, &addr, sizeof(addr), NULL, 0,
			    NULL, 0);
	if (r < 0)
		goto fail;
	r = fe_set_state(fe, VU_SET_VRING_BASE, idx, 0);
	if (r < 0)
		goto fail;
	r = fe_set_u64(fe, VU_SET_VRING_CALL, idx, &q->call_fd, 1);
	if (r < 0)
		goto fail;
	r = fe_set_u64(fe, VU_SET_VRING_KICK, idx, &q->kick_fd, 1);
	if (r < 0)
		goto fail;
	if (viod_fe_has_feature(fe, VHOST_USER_F_PROTOCOL_FEATURES)) {
		r = fe_set_state(fe, VU_SET_VRING_ENABLE, idx, 1);
		if (r < 0)
			goto fail;
	}
	return 0;
fail:
	fe_queue_release(q);
	return r;
}

static struct viod_fe_queue *fe_queue(struct viod_fe *fe, unsigned int idx)
{
	if (!fe->queues || idx >= VIOD_FE_MAX_QUEUES || !fe->queues[idx].ready)
		return NULL;
	return &fe->queues[idx];
}

struct viod_vqd *viod_fe_vqd(struct viod_fe *fe, unsigned int idx)
{
	struct viod_fe_queue *q = fe_queue(fe, idx);

	return q ? &q->vqd : NULL;
}

int viod_fe_kick(struct viod_fe *fe, unsigned int idx)
{
	struct viod_fe_queue *q = fe_queue(fe, idx);
	uint64_t one = 1;

	if (!q)
		return viod_fe_error(fe, -EINVAL, "kick: queue %u not set up", idx);
	if (!viod_vqd_need_kick(&q->vqd))
		return 0;
	if (write(q->kick_fd, &one, sizeof(one)) != sizeof(one) && errno != EAGAIN)
		return viod_fe_error(fe, -errno, "kick queue %u: %s", idx, strerror(errno));
	return 1;
}

int viod_fe_wait(struct viod_fe *fe, unsigned int idx, int timeout_ms)
{
	struct viod_fe_queue *q = fe_queue(fe, idx);
	int64_t spin_end, deadline;
	uint64_t v;

	if (!q)
		return viod_fe_error(fe, -EINVAL, "wait: queue %u not set up", idx);
	if (q->vqd.broken)
		return viod_fe_error(fe, -EIO, "queue %u broken by the device", idx);
	if (viod_vqd_has_used(&q->vqd))
		return 1;

	/* Bounded busy-poll: a wake-up costs tens of microseconds here. */
	spin_end = fe_now_ns() + (int64_t)fe->opts.spin_us * 1000;
	while (fe_now_ns() < spin_end) {
		if (viod_vqd_has_used(&q->vqd))
			return 1;
		fe_cpu_relax();
	}

	deadline = fe_deadline(timeout_ms);
	for (;;) {
		struct pollfd p = { .fd = q->call_fd, .events = POLLIN };
		int r;

		/* Enable, then re-check: a used entry added before the device
		 * saw the enable would otherwise never be signalled. */
		viod_vqd_set_interrupts(&q->vqd, true);
		if (viod_vqd_has_used(&q->vqd)) {
			viod_vqd_set_interrupts(&q->vqd, false);
			return 1;
		}
		r = poll(&p, 1, fe_remaining_ms(deadline));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			viod_vqd_set_interrupts(&q->vqd, false);
			return viod_fe_error(fe, -errno, "poll call fd: %s", strerror(errno));
		}
		if (r > 0 && read(q->call_fd, &v, sizeof(v)) < 0 && errno != EAGAIN) {
			viod_vqd_set_interrupts(&q->vqd, false);
			return viod_fe_error(fe, -errno, "read call fd: %s", strerror(errno));
		}
		viod_vqd_set_interrupts(&q->vqd, false);
		if (viod_vqd_has_used(&q->vqd))
			return 1;
		if (r == 0)
			return 0;
	}
}

static bool fe_any_used(struct viod_fe_queue *const *q, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++)
		if (viod_vqd_has_used(&q[i]->vqd))
			return true;
	return false;
}

int viod_fe_wait_any(struct viod_fe *fe, const unsigned int *idx, unsigned int n,
		     bool backend, int timeout_ms)
{
	struct viod_fe_queue *q[VIOD_FE_WAIT_MAX];
	struct pollfd p[VIOD_FE_WAIT_MAX + 1];
	int64_t deadline = fe_deadline(timeout_ms);
	int ret;

	if (n > VIOD_FE_WAIT_MAX)
		return viod_fe_error(fe, -EINVAL, "wait: more than %u queues",
				     VIOD_FE_WAIT_MAX);
	for (unsigned int i = 0; i < n; i++) {
		q[i] = fe_queue(fe, idx[i]);
		if (!q[i])
			return viod_fe_error(fe, -EINVAL, "wait: queue %u not set up", idx[i]);
		if (q[i]->vqd.broken)
			return viod_fe_error(fe, -EIO, "queue %u broken by the device", idx[i]);
	}
	backend = backend && fe->backend_fd >= 0;
	for (;;) {
		unsigned int np = 0;
		int r;

		/* Enable, then re-check (see viod_fe_wait). */
		for (unsigned int i = 0; i < n; i++)
			viod_vqd_set_interrupts(&q[i]->vqd, true);
		if (fe_any_used(q, n) || (backend && fe->config_pending)) {
			ret = 1;
			break;
		}
		for (unsigned int i = 0; i < n; i++)
			p[np++] = (struct pollfd){ .fd = q[i]->call_fd, .events = POLLIN };
		if (backend)
			p[np++] = (struct pollfd){ .fd = fe->backend_fd, .events = POLLIN };
		r = poll(p, np, fe_remaining_ms(deadline));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			ret = viod_fe_error(fe, -errno, "poll: %s", strerror(errno));
			break;
		}
		for (unsigned int i = 0; i < n; i++) {
			uint64_t v;

			if (p[i].revents && read(q[i]->call_fd, &v, sizeof(v)) < 0 &&
			    errno != EAGAIN) {
				r = -errno;
				break;
			}
		}
		if (r < 0) {
			ret = viod_fe_error(fe, r, "read call fd: %s", strerror(-r));
			break;
		}
		if (r == 0 || (backend && p[np - 1].revents)) {
			ret = r > 0 || fe_any_used(q, n);
			break;
		}
		/* A call fd fired: the re-check at the top decides (a call
		 * can be stale). */
	}
	for (unsigned int i = 0; i < n; i++)
		viod_vqd_set_interrupts(&q[i]->vqd, false);
	return ret;
}

int viod_fe_queue_stop(struct viod_fe *fe, unsigned int idx, uint16_t *base)
{
	struct viod_fe_queue *q = fe_queue(fe, idx);
	struct vhost_vring_state s = { .index = idx, .num = 0 };
	int r;

	if (!q)
		return viod_fe_error(fe, -EINVAL, "stop: queue %u not set up", idx);
	r = viod_fe_request(fe, VU_GET_VRING_BASE, &s, sizeof(s), NULL, 0,
			    &s, sizeof(s));
	fe_queue_release(q);
	if (r < 0)
		return r;
	if (s.num > UINT16_MAX)
		return viod_fe_error(fe, -EPROTO, "GET_VRING_BASE: base %u out of range",
				     s.num);
	q->last_base = (uint16_t)s.num;
	if (base)
		*base = q->last_base;
	return 0;
}

int viod_fe_reset_device(struct viod_fe *fe)
{
	int r;

	if (!viod_fe_has_protocol(fe, VU_PF_RESET_DEVICE))
		return viod_fe_error(fe, -ENOTSUP, "RESET_DEVICE not negotiated");
	r = viod_fe_request(fe, VU_RESET_DEVICE, NULL, 0, NULL, 0, NULL, 0);
	if (r < 0)
		return r;
	for (unsigned int i = 0; fe->queues && i < VIOD_FE_MAX_QUEUES; i++)
		fe_queue_release(&fe->queues[i]);
	fe->negotiated = false;
	fe->status = 0;
	fe->features_acked = 0;
	return 0;
}

int viod_fe_disconnect(struct viod_fe *fe)
{
	int first = 0;

	for (unsigned int i = 0; fe->queues && i < VIOD_FE_MAX_QUEUES; i++) {
		struct viod_fe_queue *q = &fe->queues[i];
		int r;

		if (!q->ready)
			continue;
		if (fe->sock >= 0 && !fe->broken) {
			r = viod_fe_queue_stop(fe, i, NULL);
			if (r < 0 && first == 0)
				first = r;
		}
		fe_queue_release(q);
	}
	fe_close(&fe->backend_fd);
	fe_close(&fe->sock);
	if (fe->mem)
		munmap(fe->mem, fe->mem_size);
	fe->mem = NULL;
	fe_close(&fe->memfd);
	free(fe->queues);
	fe->queues = NULL;
	fe_pool_fini(&fe->pool);
	fe->nregions = 0;
	fe->negotiated = false;
	return first;
}
