/*
 * A scripted fake vhost-user back-end for the unit tests: a thread of the
 * test process that listens on a UNIX socket, accepts one front-end
 * connection after another (each starts from no rings and no memory, as a
 * restarted back-end would), maps the memory table, tracks ring set-up
 * and answers the generic requests. A test plugs in what its device does
 * through struct test_fake_ops.
 *
 * Threads: the fake's thread owns the connection's state and holds lock
 * while it handles a message or runs a hook; the test takes lock to read
 * what the fake recorded, to change the script, or to serve a ring itself.
 * Nothing may wait for the fake while holding lock.
 */
#ifndef VIOD_TESTS_FAKE_BACKEND_H
#define VIOD_TESTS_FAKE_BACKEND_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>

#include "vhost/proto.h"
#include "virtio/mem.h"
#include "virtio/vq.h"

#define TEST_FAKE_MAX_QUEUES 8u

/* What a fake offers besides its device's feature bits. */
#define TEST_FAKE_FEATURES ((1ull << VIRTIO_F_VERSION_1) |                   \
			    (1ull << VHOST_USER_F_PROTOCOL_FEATURES) |       \
			    (1ull << VIRTIO_RING_F_EVENT_IDX))

struct test_fake;

/* What an ops->msg hook did with a message. */
enum test_fake_verdict {
	TEST_FAKE_PASS,        /* not handled: the generic handling follows */
	TEST_FAKE_ACK,         /* handled: acked (u64 0) if NEED_REPLY is set */
	TEST_FAKE_REPLIED,     /* handled and answered: nothing more is sent */
};

/* Every hook runs on the fake's thread with lock held; any may be NULL. */
struct test_fake_ops {
	/* Sees every message first, with its fds in fds[0 .. *nfds). Those
	 * still there on return are closed: a hook keeps fds by lowering
	 * *nfds (0 keeps them all). */
	enum test_fake_verdict (*msg)(struct test_fake *f, struct viod_vu_msg *m,
				      int *fds, unsigned int *nfds);
	/* Writes the config space into buf (zeroed) and returns its size.
	 * Without it GET_CONFIG answers from config (below), or without
	 * that is only acked if asked. */
	size_t (*config)(struct test_fake *f, uint8_t buf[VU_MAX_CONFIG_SIZE]);
	/* Ring qi, running, was kicked (the count is read). Without it the
	 * kick fds are left alone: the test serves rings and reads kicks. */
	void (*kick)(struct test_fake *f, unsigned int qi);
	/* Once a round: after the message and kicks that woke the fake, or
	 * after 20 ms without any. */
	void (*idle)(struct test_fake *f);
};

struct test_fake_q {
	uint32_t num;
	struct vhost_vring_addr addr;
	uint16_t base;
	int kick, call;                /* -1: none; replaced when sent again */
	bool running;                  /* SET_VRING_KICK to GET_VRING_BASE or reset */
	struct viod_vq vq;
};

struct test_fake {
	/* Script: set before test_fake_start, changed later only under lock. */
	uint64_t features;             /* GET_FEATURES */
	uint64_t protocol_features;    /* GET_PROTOCOL_FEATURES */
	uint64_t queue_num;            /* GET_QUEUE_NUM */
	unsigned int nqueues;          /* rings tracked, 1..TEST_FAKE_MAX_QUEUES */
	const void *config;            /* config space without ops->config: */
	size_t config_size;            /* config_size <= VU_MAX_CONFIG_SIZE bytes */
	const struct test_fake_ops *ops;
	void *opaque;                  /* the test's, for its hooks */

	pthread_mutex_t lock;
	char path[108];                /* the socket, for the front-end */

	/* The fake's thread's; the test reads them under lock. */
	unsigned int conn;             /* connections accepted */
	int sock;                      /* this connection, -1: none */
	int backend;                   /* SET_BACKEND_REQ_FD's, -1: none */
	uint64_t acked;                /* SET_FEATURES */
	uint64_t acked_protocol;       /* SET_PROTOCOL_FEATURES */
	uint8_t status;                /* SET_STATUS */
	struct viod_mem mem;
	void *maps[VU_MEM_TABLE_MAX];
	size_t map_len[VU_MEM_TABLE_MAX];
	struct test_fake_q q[TEST_FAKE_MAX_QUEUES];
	struct viod_vq_elem *elem;     /* scratch for whoever holds lock */

	/* test_fake_start's and test_fake_stop's. */
	int lfd;
	bool started;
	atomic_bool quit;
	pthread_t thread;
};

/*
 * Listens on path (replacing a stale socket) and starts the thread; the
 * script and nqueues are read from f. 0 or -errno; on failure nothing is
 * left to release and test_fake_stop does nothing.
 */
int test_fake_start(struct test_fake *f, const char *path);

/*
 * What a driver's unit test does before attaching: creates fe's guest
 * memory (mem_size bytes in nregions regions, 3 s reply timeout), starts
 * f on path and connects fe to it. 0, -1 if memory or the fake could
 * not be had, or -errno of the connection. Whatever it returns, fe may
 * be released with viod_fe_disconnect and f with test_fake_stop.
 */
struct viod_fe;
int test_fake_connect(struct test_fake *f, const char *path, struct viod_fe *fe,
		      size_t mem_size, unsigned int nregions);

/* Stops and joins the thread, closes every fd the fake holds, unmaps the
 * memory and removes the socket. Safe on a fake never started. */
void test_fake_stop(struct test_fake *f);

/* Sends a reply to req on the connection (fds passed along). */
void test_fake_reply(struct test_fake *f, uint32_t req, const void *p, uint32_t size,
		     const int *fds, unsigned int nfds);

/* Signals ring qi's call fd if its ring asks for it (viod_vq_need_call). */
void test_fake_call(struct test_fake *f, unsigned int qi);

/*
 * Serves ring qi as a device does, for a kick hook: pops every chain
 * and pushes it with the used length serve returns (calling when the
 * ring asks), then asks for kicks again and re-checks, since a chain
 * made available before the driver saw that request is never kicked.
 */
typedef uint32_t (*test_fake_serve_fn)(struct test_fake *f, unsigned int qi,
				       const struct viod_vq_chain *c);
void test_fake_serve(struct test_fake *f, unsigned int qi, test_fake_serve_fn serve);

#endif
