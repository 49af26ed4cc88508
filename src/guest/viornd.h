/*
 * viornd: reference driver for the virtio entropy device (virtio 1.2,
 * 5.4: device id 4, one request queue, no feature bits), after NetBSD's
 * viornd(4). It posts device-writable buffers only and takes back what
 * the device wrote; used ids and lengths are checked by the ring code
 * (used.len <= posted), and a device that returns nothing for too long
 * is an error, never a hang.
 *
 * One struct viornd drives queue 0 of a connected struct viod_fe. Not
 * thread-safe; after any error the driver is broken (-EIO from then on)
 * because buffers may still be in the device's hands.
 */
#ifndef VIOD_GUEST_VIORND_H
#define VIOD_GUEST_VIORND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "guest/frontend.h"

#define VIORND_VIRTIO_ID 4u
#define VIORND_DEFAULT_QUEUE_SIZE 128u
#define VIORND_DEFAULT_REQUEST_SIZE 4096u
#define VIORND_MAX_REQUEST_SIZE (1u << 20)
#define VIORND_DEFAULT_TIMEOUT_MS 5000
/* Consecutive zero-length completions tolerated before giving up. */
#define VIORND_MAX_EMPTY 1024u

struct viornd_opts {
	uint16_t queue_size;     /* ring entries (power of two) */
	uint32_t request_size;   /* bytes per posted buffer, 1..MAX */
	unsigned int nbufs;      /* buffers in flight at most, <= queue_size */
	int timeout_ms;          /* per wait for the device; -1: forever */
};

struct viornd_buf {
	uint8_t *host;
	uint64_t gpa;
	uint32_t posted;         /* bytes offered in the current request */
};

struct viornd {
	struct viod_fe *fe;
	struct viornd_opts opts;
	struct viornd_buf *bufs;
	unsigned int *free_bufs; /* stack of buffer indices not in flight */
	unsigned int nfree;
	bool broken;
	/* Statistics since attach. */
	uint64_t bytes;          /* entropy bytes returned */
	uint64_t requests;       /* completions */
	uint64_t short_reads;    /* completions with len < posted */
};

struct viornd_stream_stats {
	uint64_t bytes;
	uint64_t requests;
	double seconds;
};

/* Fills *o with the defaults above (nbufs = queue_size). */
void viornd_opts_init(struct viornd_opts *o);

/*
 * Negotiates (no device features), sets up queue 0, allocates the buffer
 * pool in guest memory and sets DRIVER_OK. fe must be connected and not
 * yet negotiated. 0 or -errno (reason in viod_fe_strerror(fe)).
 */
int viornd_attach(struct viornd *sc, struct viod_fe *fe,
		  const struct viornd_opts *opts);

/* Frees host-side bookkeeping; the queue goes with viod_fe_disconnect(). */
void viornd_detach(struct viornd *sc);

/*
 * Fills buf with len bytes from the device: posts buffers (never more
 * bytes in flight than still missing), kicks, waits, copies what each
 * completion wrote. 0 or -errno.
 */
int viornd_read(struct viornd *sc, void *buf, size_t len);

/*
 * Throughput mode: keeps every buffer of request_size bytes in flight and
 * counts bytes returned, until seconds have passed (seconds > 0) or bytes
 * have been returned (bytes > 0; exactly one of the two), then drains the
 * ring. The data is not looked at. 0 or -errno; *st filled on success.
 */
int viornd_stream(struct viornd *sc, double seconds, uint64_t bytes,
		  struct viornd_stream_stats *st);

#endif
