/*
 * Helpers shared by the tests: fd accounting, a UNIX socket connection,
 * an rng round trip through the viornd driver, the two pieces every
 * scripted fake back-end needs (mapping a memory table, laying a ring),
 * reading the control store, and a vioif guest.
 */
#ifndef VIOD_TESTS_SUPPORT_H
#define VIOD_TESTS_SUPPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "guest/frontend.h"
#include "guest/vioif.h"
#include "vhost/proto.h"
#include "virtio/mem.h"
#include "virtio/vq.h"

/* Open fds of this process (leak checks), or -1. */
int test_count_fds(void);

/* A connected UNIX stream socket (sends time out after 2 s), or -1. */
int test_connect(const char *path);

/* A full viornd round trip on path: attach, read 256 non-zero bytes,
 * detach; the reason is printed as a TAP comment when it fails. */
bool test_rng_serves(const char *path);

/*
 * Fake back-ends: maps the regions of t from fds[0 .. nfds) into mem
 * (replacing what it held), their mappings into maps/map_len; and points
 * vq at the ring the front-end described (false if it is not in mem).
 */
void test_fake_map_table(struct viod_mem *mem, void **maps, size_t *map_len,
			 const struct viod_vu_mem_table *t, const int *fds,
			 unsigned int nfds);
bool test_fake_start_ring(struct viod_vq *vq, const struct viod_mem *mem, uint32_t num,
			  const struct vhost_vring_addr *addr, uint16_t base,
			  uint64_t acked);

/* ---- the control store ---- */

/* Key path of the store at ctl, read as an integer, or -1. */
long long test_store_ll(const char *ctl, const char *path);

/* The key once it reads want, or its last value after timeout_ms (viod
 * publishes counters within its 50 ms refresh). */
long long test_store_ll_when(const char *ctl, const char *path, long long want,
			     int timeout_ms);

/* ---- a virtio-net guest: the vioif driver ---- */

/*
 * Connects fe (16 MiB of guest memory) to the net device at path and
 * attaches the vioif driver with o (NULL: its defaults). False, with the
 * reason printed as a TAP comment and nothing left to detach, if either
 * fails; else test_vioif_detach when done.
 */
bool test_vioif_attach(struct viod_fe *fe, struct vioif *sc, const char *path,
		       const struct vioif_opts *o);
void test_vioif_detach(struct viod_fe *fe, struct vioif *sc);

#endif
