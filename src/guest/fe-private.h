/*
 * Internals shared by the front-end's files (fe-*.c), never by its users:
 * they include guest/frontend.h. Contracts of the public functions are
 * there; these are the private ones.
 */
#ifndef VIOD_GUEST_FE_PRIVATE_H
#define VIOD_GUEST_FE_PRIVATE_H

#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include "frontend.h"

#define FE_PAGE 4096u
#define FE_ALIGN_UP(x, a) (((x) + ((a) - 1)) & ~((uint64_t)(a) - 1))

static inline int64_t fe_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Milliseconds left until deadline_ns (-1: no deadline), for poll(). */
static inline int fe_remaining_ms(int64_t deadline_ns)
{
	int64_t left;

	if (deadline_ns < 0)
		return -1;
	left = deadline_ns - fe_now_ns();
	if (left <= 0)
		return 0;
	return (int)((left + 999999) / 1000000);
}

static inline int64_t fe_deadline(int timeout_ms)
{
	return timeout_ms < 0 ? -1 : fe_now_ns() + (int64_t)timeout_ms * 1000000;
}

static inline void fe_close(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static inline void fe_backend_drop(struct viod_fe *fe)
{
	fe_close(&fe->backend_fd);
}

/* fe-pool.c: frees the pool's bitmaps and zeroes it. */
void viod_fe_pool_fini(struct viod_fe_pool *p);

/* fe-handshake.c */
/*
 * Reads and answers one back-end request. CONFIG_CHANGE_MSG (no payload,
 * no fds, CONFIG negotiated) is acked with 0 and queued for the callback;
 * anything else is refused (answered 1 if NEED_REPLY). 0 or -errno when
 * the channel itself failed.
 */
int viod_fe_backend_serve_one(struct viod_fe *fe);

/* fe-msg.c */
/*
 * Sends one request on fe->sock with the version flag and flags; size is
 * the payload's. -EPIPE once the connection is unusable; a failed send
 * makes it so (fe->broken).
 */
int viod_fe_send_req(struct viod_fe *fe, uint32_t request, uint32_t flags,
		     const void *payload, uint32_t size, const int *fds,
		     unsigned int nfds);
/*
 * Receives the reply to request into *m: flags must say version 1 and
 * REPLY, the request must match. Size is the caller's to check. fds as
 * for viod_fe_msg_recv: NULL when the reply may carry none; otherwise
 * the caller owns (and must close) the *nfds fds received, after a
 * success only. A failure here leaves the stream unusable (fe->broken).
 */
int viod_fe_recv_msg(struct viod_fe *fe, uint32_t request, struct viod_vu_msg *m,
		     int *fds, unsigned int *nfds);
/* A request with a u64 reply / with a u64 payload / with a vring state. */
int viod_fe_get_u64(struct viod_fe *fe, uint32_t request, uint64_t *v);
int viod_fe_set_u64(struct viod_fe *fe, uint32_t request, uint64_t v,
		    const int *fds, unsigned int nfds);
int viod_fe_set_state(struct viod_fe *fe, uint32_t request, unsigned int idx,
		      unsigned int num);

/* fe-queue.c: closes the queue's eventfds and frees its driver-side ring
 * state; the ring memory stays for the next setup. */
void viod_fe_queue_release(struct viod_fe_queue *q);
/* fe-queue.c: for viod_fe_reconnect: a ready queue keeps its ring and
 * driver state, loses its eventfds and becomes suspended. */
void viod_fe_queue_suspend(struct viod_fe_queue *q);

/* fe-inflight.c: unmaps the inflight region and closes its fd, if any. */
void viod_fe_inflight_release(struct viod_fe *fe);

#endif
