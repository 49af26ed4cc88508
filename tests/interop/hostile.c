/*
 * Hostile front-end test: starts viod (argv[1]) with two rng devices, A and
 * B, a balloon C, a blk device D on a 4 MiB image and two net devices E
 * and F on one switch, then attacks A with malformed messages, wrong fd
 * counts, absurd region tables, half messages, hostile descriptors and
 * abrupt disconnects, and C, D and E with bad requests of their own kind.
 * After every attack A must have dropped (or refused) the bad connection,
 * B must still serve entropy through the viornd driver, and at the end A
 * must serve again and viod must exit 0 on SIGTERM. D's image must hold
 * what D acknowledged and nothing a bad request carried. Every bad frame
 * E sends (bad headers, runts, frames over the MTU, chains too short,
 * writable or 4 MiB long) is dropped and counted in the right drops/ key,
 * never forwarded: F, a vioif guest on the same switch, receives the
 * good frame sent after it first; what only F cannot take (a segmentation
 * frame it cannot have segmented, a frame larger than its buffers) is
 * counted on F's side; broken rings (65 descriptors, a loop, avail
 * indices jumping) stop only that queue; and B answers GET_FEATURES
 * within B_REPLY_MS after each.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <endian.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_net.h>
#include <linux/virtio_ring.h>

#include "guest/frontend.h"
#include "guest/viornd.h"
#include "support.h"
#include "tap.h"
#include "viod/store.h"

static char sock_a[256], sock_b[256], sock_c[256], sock_d[256], image_d[256], ctl[256];
static char sock_e[256], sock_f[256], sock_g[256];

/* True if the peer closed the connection (reading only EOF) in time. */
static bool dropped(int s)
{
	struct viod_vu_msg m;
	int rc;

	do {
		rc = viod_fe_msg_recv(s, &m, NULL, NULL, 3000);
	} while (rc == 0);
	return rc == -ECONNRESET || rc == -EPIPE;
}

static void check_after(const char *what)
{
	ok(test_rng_serves(sock_b), "after %s: device B still serves", what);
}

/* Sends hdr+payload (sizes may disagree) with fds; expects a drop. */
static void attack(const char *what, uint32_t req, uint32_t flags, uint32_t size,
		   const void *payload, size_t plen, const int *fds, unsigned int nfds)
{
	int s = test_connect(sock_a);

	if (s < 0) {
		ok(false, "%s: connect", what);
		return;
	}
	viod_fe_msg_send(s, req, flags, size, payload, plen, fds, nfds);
	ok(dropped(s), "%s: connection dropped", what);
	close(s);
	check_after(what);
}

static int memfd_of(size_t size)
{
	int fd = memfd_create("hostile", MFD_CLOEXEC);

	if (fd >= 0 && ftruncate(fd, (off_t)size) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static void framing_attacks(void)
{
	uint8_t garbage[200];
	uint64_t u64 = 0;
	struct viod_vu_mem_table mt;
	int fds[10];

	for (size_t i = 0; i < sizeof(garbage); i++)
		garbage[i] = (uint8_t)(i * 37 + 11);
	{
		int s = test_connect(sock_a);

		viod_fe_send_bytes(s, garbage, sizeof(garbage), NULL, 0);
		ok(dropped(s), "garbage bytes: connection dropped");
		close(s);
		check_after("garbage bytes");
	}
	attack("payload size beyond the maximum", VU_GET_FEATURES, VU_FLAG_VERSION,
	       0xffffffffu, NULL, 0, NULL, 0);
	attack("GET_FEATURES with a payload", VU_GET_FEATURES, VU_FLAG_VERSION,
	       8, &u64, 8, NULL, 0);
	attack("SET_FEATURES with 4 bytes", VU_SET_FEATURES, VU_FLAG_VERSION,
	       4, &u64, 4, NULL, 0);
	attack("unknown request 99", 99, VU_FLAG_VERSION, 0, NULL, 0, NULL, 0);
	attack("bad version bits", VU_GET_FEATURES, 0x2, 0, NULL, 0, NULL, 0);
	attack("reply flag on a request", VU_GET_FEATURES,
	       VU_FLAG_VERSION | VU_FLAG_REPLY, 0, NULL, 0, NULL, 0);
	attack("offered features exceeded", VU_SET_FEATURES, VU_FLAG_VERSION,
	       8, &(uint64_t){ ~0ull }, 8, NULL, 0);

	memset(&mt, 0, sizeof(mt));
	mt.nregions = 1000;
	attack("absurd region count", VU_SET_MEM_TABLE, VU_FLAG_VERSION,
	       8 + 2 * sizeof(struct viod_vu_region), &mt,
	       8 + 2 * sizeof(struct viod_vu_region), NULL, 0);

	mt.nregions = 2;
	mt.regions[0] = (struct viod_vu_region){ .gpa = 0, .size = 1 << 20, .uva = 1 << 30 };
	mt.regions[1] = (struct viod_vu_region){ .gpa = 2 << 20, .size = 1 << 20, .uva = 2u << 30 };
	fds[0] = memfd_of(1 << 20);
	attack("two regions, one fd", VU_SET_MEM_TABLE, VU_FLAG_VERSION,
	       8 + 2 * sizeof(struct viod_vu_region), &mt,
	       8 + 2 * sizeof(struct viod_vu_region), fds, 1);
	close(fds[0]);

	mt.nregions = 1;
	mt.regions[0] = (struct viod_vu_region){ .gpa = 0, .size = 64 << 20, .uva = 1 << 30 };
	fds[0] = memfd_of(1 << 20);
	attack("region larger than its fd", VU_SET_MEM_TABLE, VU_FLAG_VERSION,
	       8 + sizeof(struct viod_vu_region), &mt,
	       8 + sizeof(struct viod_vu_region), fds, 1);
	close(fds[0]);

	mt.regions[0] = (struct viod_vu_region){ .gpa = ~0ull - 4095, .size = 1 << 20,
						 .uva = 1 << 30 };
	fds[0] = memfd_of(1 << 20);
	attack("region wrapping the address space", VU_SET_MEM_TABLE, VU_FLAG_VERSION,
	       8 + sizeof(struct viod_vu_region), &mt,
	       8 + sizeof(struct viod_vu_region), fds, 1);
	close(fds[0]);

	fds[0] = eventfd(0, EFD_CLOEXEC);
	attack("SET_VRING_NUM with an extra fd", VU_SET_VRING_NUM, VU_FLAG_VERSION,
	       8, &(struct vhost_vring_state){ 0, 256 }, 8, fds, 1);
	attack("SET_VRING_NUM for queue 300 (indices travel in 8 bits)", VU_SET_VRING_NUM,
	       VU_FLAG_VERSION, 8, &(struct vhost_vring_state){ 300, 256 }, 8, NULL, 0);
	u64 = 0;
	attack("SET_VRING_KICK missing its fd", VU_SET_VRING_KICK, VU_FLAG_VERSION,
	       8, &u64, 8, NULL, 0);
	u64 = 1ull << 40;
	attack("SET_VRING_CALL reserved bits", VU_SET_VRING_CALL, VU_FLAG_VERSION,
	       8, &u64, 8, fds, 1);
	attack("SET_VRING_NUM not a power of two", VU_SET_VRING_NUM, VU_FLAG_VERSION,
	       8, &(struct vhost_vring_state){ 0, 100 }, 8, NULL, 0);
	attack("ADD_MEM_REG without CONFIGURE_MEM_SLOTS", VU_ADD_MEM_REG, VU_FLAG_VERSION,
	       40, &(struct viod_vu_mem_reg){ 0 }, 40, fds, 1);
	close(fds[0]);

	for (int i = 0; i < 8; i++)
		fds[i] = eventfd(0, EFD_CLOEXEC);
	attack("eight fds on SET_OWNER", VU_SET_OWNER, VU_FLAG_VERSION, 0, NULL, 0, fds, 8);
	for (int i = 0; i < 8; i++)
		close(fds[i]);
}

/* A connection that sends half a header and stalls must not stall B. */
static void half_message(void)
{
	int s = test_connect(sock_a);
	uint32_t partial[2] = { VU_GET_FEATURES, VU_FLAG_VERSION };

	viod_fe_send_bytes(s, partial, 6, NULL, 0);
	ok(test_rng_serves(sock_b), "half a message pending on A: B still serves");
	close(s);
	s = test_connect(sock_a);
	viod_fe_send_bytes(s, partial, 6, NULL, 0);
	close(s);
	ok(test_rng_serves(sock_a), "A serves after two half messages and disconnects");
}

/* How long a poll waits for what must happen soon: long enough for a
 * loaded machine and a sanitizer build, short enough to fail in time. */
#define POLL_DEADLINE_MS 10000

static int64_t now_ms(void)
{
	return g_get_monotonic_time() / 1000;
}

/* Kicks queue idx and polls the device status (POLL_DEADLINE_MS at most)
 * until the device reports NEEDS_RESET; returns the last status read. */
static uint64_t kick_until_needs_reset(struct viod_fe *fe, unsigned int idx)
{
	int64_t end = now_ms() + POLL_DEADLINE_MS;
	uint64_t st = 0, one = 1;

	if (write(fe->queues[idx].kick_fd, &one, sizeof(one)) < 0)
		(void)0;
	while (!(st & 0x40) && now_ms() < end) {
		usleep(10000);
		if (viod_fe_request(fe, VU_GET_STATUS, NULL, 0, NULL, 0, &st, 8) < 0)
			break;
	}
	return st;
}

enum ring_attack { LOOP, HEAD_OOR, NEXT_OOR, ADDR_OOR, AVAIL_JUMP, BAD_INDIRECT };

static const char *const ring_names[] = {
	"descriptor loop", "head out of range", "next out of range",
	"buffer outside guest memory", "avail index jumping past the ring",
	"indirect table of bad length",
};

/*
 * Attaches viornd to A, then writes a hostile chain straight into the
 * ring and kicks. viod must stop the queue and report NEEDS_RESET in the
 * device status, keep the connection, and keep B serving.
 */
static void ring_attack(enum ring_attack kind)
{
	const char *what = ring_names[kind];
	struct viod_fe fe;
	struct viornd sc;
	struct viod_vqd *q;
	uint64_t gpa, st = 0;
	uint16_t idx;
	void *buf;

	if (viod_fe_init(&fe, NULL) < 0 || viod_fe_connect(&fe, sock_a) < 0 ||
	    viornd_attach(&sc, &fe, NULL) < 0) {
		ok(false, "%s: attach: %s", what, viod_fe_strerror(&fe));
		viod_fe_disconnect(&fe);
		return;
	}
	q = viod_fe_vqd(&fe, 0);
	buf = viod_fe_alloc(&fe, 4096, 16, &gpa);
	memset(buf, 0, 4096);
	q->desc[0].addr = gpa;
	q->desc[0].len = 64;
	q->desc[0].flags = VRING_DESC_F_WRITE;
	q->desc[0].next = 0;
	idx = q->avail_idx;
	q->avail->ring[idx & (q->num - 1)] = 0;
	switch (kind) {
	case LOOP:
		q->desc[0].flags |= VRING_DESC_F_NEXT;
		break;
	case HEAD_OOR:
		q->avail->ring[idx & (q->num - 1)] = q->num;
		break;
	case NEXT_OOR:
		q->desc[0].flags |= VRING_DESC_F_NEXT;
		q->desc[0].next = q->num + 5;
		break;
	case ADDR_OOR:
		q->desc[0].addr = 1ull << 45;
		break;
	case AVAIL_JUMP:
		idx += q->num + 3;
		break;
	case BAD_INDIRECT:
		q->desc[0].flags = VRING_DESC_F_INDIRECT;
		q->desc[0].len = 24;
		break;
	}
	__atomic_store_n(&q->avail->idx, (uint16_t)(idx + 1), __ATOMIC_RELEASE);
	st = kick_until_needs_reset(&fe, 0);
	ok(st & 0x40, "%s: device reports NEEDS_RESET (status 0x%llx)", what,
	   (unsigned long long)st);
	ok(!fe.broken, "%s: front-end connection kept", what);
	viornd_detach(&sc);
	viod_fe_disconnect(&fe);
	check_after(what);
	ok(test_rng_serves(sock_a), "%s: A serves again after reconnect", what);
}

/* Posts requests, kicks, and vanishes without a word. */
static void vanish_mid_request(void)
{
	struct viod_fe fe;
	struct viornd sc;
	struct viod_vqd *q;
	uint64_t gpa, one = 1;

	if (viod_fe_init(&fe, NULL) < 0 || viod_fe_connect(&fe, sock_a) < 0 ||
	    viornd_attach(&sc, &fe, NULL) < 0) {
		ok(false, "vanish: attach: %s", viod_fe_strerror(&fe));
		viod_fe_disconnect(&fe);
		return;
	}
	q = viod_fe_vqd(&fe, 0);
	for (int i = 0; i < 32; i++) {
		struct viod_vqd_buf b;

		if (!viod_fe_alloc(&fe, 65536, 16, &gpa))
			break;
		b = (struct viod_vqd_buf){ .gpa = gpa, .len = 65536, .writable = true };
		viod_vqd_add(q, &b, 1, NULL);
	}
	if (write(fe.queues[0].kick_fd, &one, sizeof(one)) < 0)
		(void)0;
	close(fe.sock);
	fe.sock = -1;
	fe.broken = true;
	viornd_detach(&sc);
	viod_fe_disconnect(&fe);
	ok(test_rng_serves(sock_a), "front-end vanished mid-request: A serves the next one");
	check_after("a front-end vanishing mid-request");
}

/*
 * Posts a chain, then truncates the guest-memory fd under viod's mapping
 * and kicks: the worker's next access faults (SIGBUS). viod must stop
 * that queue, report NEEDS_RESET, and keep running and serving.
 */
static void truncated_memory(void)
{
	struct viod_fe fe;
	struct viornd sc;
	struct viod_vqd *q;
	struct viod_vqd_buf b;
	uint64_t gpa, st = 0;

	if (viod_fe_init(&fe, NULL) < 0 || viod_fe_connect(&fe, sock_a) < 0 ||
	    viornd_attach(&sc, &fe, NULL) < 0) {
		ok(false, "truncate: attach: %s", viod_fe_strerror(&fe));
		viod_fe_disconnect(&fe);
		return;
	}
	q = viod_fe_vqd(&fe, 0);
	viod_fe_alloc(&fe, 4096, 16, &gpa);
	b = (struct viod_vqd_buf){ .gpa = gpa, .len = 4096, .writable = true };
	viod_vqd_add(q, &b, 1, NULL);
	/* From here on our own mapping faults too: touch nothing in it. */
	ok(ftruncate(fe.memfd, 0) == 0, "guest memory fd truncated under viod");
	st = kick_until_needs_reset(&fe, 0);
	ok(st & 0x40, "truncated memory: queue stopped, NEEDS_RESET (status 0x%llx)",
	   (unsigned long long)st);
	close(fe.sock);
	fe.sock = -1;
	fe.broken = true;
	viornd_detach(&sc);
	viod_fe_disconnect(&fe);
	check_after("guest memory truncated under viod");
	ok(test_rng_serves(sock_a), "A serves again after the truncation");
}

/* Key /devices/DEV/KEY of the control store, or -1. */
static long long dev_key(const char *dev, const char *key)
{
	g_autofree char *path = g_strdup_printf("/devices/%s/%s", dev, key);

	return test_store_ll(ctl, path);
}

/*
 * The key once it reads want, or its last value after POLL_DEADLINE_MS.
 * viod counts a buffer's PFNs (a frame) before it returns the buffer;
 * the store shows the counters within its 50 ms refresh.
 */
static long long dev_key_when(const char *dev, const char *key, long long want)
{
	g_autofree char *path = g_strdup_printf("/devices/%s/%s", dev, key);

	return test_store_ll_when(ctl, path, want, POLL_DEADLINE_MS);
}

/* Posts n PFNs on balloon queue q and waits for the buffer to come back. */
static bool balloon_post(struct viod_fe *fe, unsigned int q, const uint32_t *pfns,
			 unsigned int n)
{
	uint64_t gpa;
	uint32_t *buf = viod_fe_alloc(fe, n * 4, 4, &gpa);
	struct viod_vqd_buf b = { .gpa = gpa, .len = n * 4, .writable = false };
	void *cookie;
	uint32_t len;

	if (!buf)
		return false;
	memcpy(buf, pfns, n * 4);
	if (viod_vqd_add(viod_fe_vqd(fe, q), &b, 1, NULL) < 0 || viod_fe_kick(fe, q) < 0 ||
	    viod_fe_wait(fe, q, 3000) != 1)
		return false;
	return viod_vqd_get_used(viod_fe_vqd(fe, q), &cookie, &len) == 1 && len == 0;
}

static bool balloon_attach(struct viod_fe *fe)
{
	struct viod_fe_opts o;

	viod_fe_opts_init(&o);
	o.mem_size = 16u << 20;
	o.nregions = 2;
	return viod_fe_init(fe, &o) == 0 && viod_fe_connect(fe, sock_c) == 0 &&
	       viod_fe_negotiate(fe, 0) == 0 && viod_fe_queue_setup(fe, 0, 64) == 0 &&
	       viod_fe_queue_setup(fe, 1, 64) == 0 && viod_fe_driver_ok(fe) == 0;
}

/*
 * The balloon fed bad PFNs, double inflates, deflates of pages it never
 * got, and a hostile chain: each is a counted error or a stopped queue,
 * never a crash; B keeps serving; the balloon serves the next guest.
 */
static void balloon_attacks(void)
{
	struct viod_fe fe;
	uint32_t pfns[4];
	uint64_t gpa, st = 0;
	long long errors0 = dev_key("c", "errors"), v;
	struct viod_vqd *q;

	if (!balloon_attach(&fe)) {
		ok(false, "balloon: attach: %s", viod_fe_strerror(&fe));
		viod_fe_disconnect(&fe);
		return;
	}
	ok(errors0 == 0, "balloon: no errors at start (%lld)", errors0);
	viod_fe_alloc(&fe, 4096, 4096, &gpa);
	pfns[0] = (uint32_t)(gpa >> 12);
	pfns[1] = (uint32_t)(gpa >> 12);                 /* the same page twice */
	pfns[2] = 0xfffffff0u;                           /* far outside memory */
	pfns[3] = (uint32_t)((fe.regions[0].gpa + fe.regions[0].size) >> 12); /* the hole */
	ok(balloon_post(&fe, 0, pfns, 4), "balloon: inflate with bad PFNs returned");
	v = dev_key_when("c", "errors", 3);
	ok(v == 3, "balloon: double inflate and 2 bad PFNs counted (%lld)", v);
	v = dev_key_when("c", "inflated", 1);
	ok(v == 1, "balloon: the one good page is in the balloon (%lld)", v);
	pfns[0] = pfns[0] + 1; /* never inflated */
	ok(balloon_post(&fe, 1, pfns, 1), "balloon: deflate of a page never given returned");
	v = dev_key_when("c", "errors", 4);
	ok(v == 4, "balloon: deflate of a page never given counted (%lld)", v);
	pfns[0] = pfns[0] - 1;
	ok(balloon_post(&fe, 1, pfns, 1), "balloon: valid deflate still served");
	v = dev_key_when("c", "inflated", 0);
	ok(v == 0, "balloon: empty again (%lld)", v);
	check_after("bad PFNs on the balloon");

	/* A descriptor loop on the inflate queue. */
	q = viod_fe_vqd(&fe, 0);
	q->desc[0].addr = gpa;
	q->desc[0].len = 4;
	q->desc[0].flags = VRING_DESC_F_NEXT;
	q->desc[0].next = 0;
	q->avail->ring[q->avail_idx & (q->num - 1)] = 0;
	__atomic_store_n(&q->avail->idx, (uint16_t)(q->avail_idx + 1), __ATOMIC_RELEASE);
	st = kick_until_needs_reset(&fe, 0);
	ok(st & 0x40, "balloon: descriptor loop stops the queue with NEEDS_RESET");
	viod_fe_disconnect(&fe);
	check_after("a descriptor loop on the balloon");
	if (balloon_attach(&fe)) {
		pfns[0] = (uint32_t)(gpa >> 12);
		ok(balloon_post(&fe, 0, pfns, 1), "balloon: serves the next front-end");
	} else {
		ok(false, "balloon: reattach: %s", viod_fe_strerror(&fe));
	}
	viod_fe_disconnect(&fe);
}

static void get_config_out_of_range(void)
{
	int s = test_connect(sock_a);
	struct viod_vu_msg m;
	uint64_t pf = 1ull << VU_PF_REPLY_ACK;
	struct viod_vu_config c = { .offset = 0, .size = 8 };
	int rc;

	viod_fe_msg_send(s, VU_SET_PROTOCOL_FEATURES, VU_FLAG_VERSION, 8, &pf, 8, NULL, 0);
	viod_fe_msg_send(s, VU_GET_CONFIG, VU_FLAG_VERSION, 12 + 8, &c, 12 + 8, NULL, 0);
	rc = viod_fe_msg_recv(s, &m, NULL, NULL, 3000);
	ok(rc == -ECONNRESET, "GET_CONFIG without CONFIG negotiated: dropped");
	close(s);

	/* rng has no config space: the protocol's zero-length error reply,
	 * and the connection stays. */
	s = test_connect(sock_a);
	pf |= 1ull << VU_PF_CONFIG;
	viod_fe_msg_send(s, VU_SET_PROTOCOL_FEATURES, VU_FLAG_VERSION, 8, &pf, 8, NULL, 0);
	viod_fe_msg_send(s, VU_GET_CONFIG, VU_FLAG_VERSION, 12 + 8, &c, 12 + 8, NULL, 0);
	rc = viod_fe_msg_recv(s, &m, NULL, NULL, 3000);
	ok(rc == 0 && m.hdr.request == VU_GET_CONFIG && (m.hdr.flags & VU_FLAG_REPLY) &&
	   m.hdr.size == 0, "GET_CONFIG beyond the config space: zero-length reply");
	viod_fe_msg_send(s, VU_GET_FEATURES, VU_FLAG_VERSION, 0, NULL, 0, NULL, 0);
	rc = viod_fe_msg_recv(s, &m, NULL, NULL, 3000);
	ok(rc == 0 && m.hdr.request == VU_GET_FEATURES && m.hdr.size == 8,
	   "connection kept after a GET_CONFIG error");
	close(s);
}

/* ---- the blk device D: bad requests, I/O in flight at disconnect ---- */

#define D_SECTORS 8192u /* 4 MiB */

static bool blk_attach(struct viod_fe *fe)
{
	struct viod_fe_opts o;

	viod_fe_opts_init(&o);
	o.mem_size = 16u << 20;
	return viod_fe_init(fe, &o) == 0 && viod_fe_connect(fe, sock_d) == 0 &&
	       viod_fe_negotiate(fe, 1ull << VIRTIO_BLK_F_FLUSH) == 0 &&
	       viod_fe_queue_setup(fe, 0, 64) == 0 && viod_fe_driver_ok(fe) == 0;
}

/*
 * One request: a header of hdr_len bytes (16 is right) with type and
 * sector, data_len data bytes (device-writable for reads), then a status
 * byte unless no_status. Returns the used length, or -1 if the device did
 * not answer in time; *status gets the status byte.
 */
static int blk_raw(struct viod_fe *fe, uint32_t type, uint64_t sector, uint32_t hdr_len,
		   const void *out, uint32_t data_len, bool data_write, bool no_status,
		   uint8_t *status)
{
	struct viod_vqd *q = viod_fe_vqd(fe, 0);
	struct viod_vqd_buf b[3];
	unsigned int n = 0;
	uint64_t hgpa, dgpa, sgpa;
	uint8_t *hdr = viod_fe_alloc(fe, 16, 16, &hgpa);
	uint8_t *data = data_len ? viod_fe_alloc(fe, data_len, 4096, &dgpa) : NULL;
	uint8_t *st = viod_fe_alloc(fe, 1, 1, &sgpa);
	void *cookie;
	uint32_t len;

	if (!hdr || !st || (data_len && !data))
		return -1;
	memcpy(hdr, &(struct virtio_blk_outhdr){ .type = htole32(type),
						 .sector = htole64(sector) }, 16);
	*st = 0xee;
	b[n++] = (struct viod_vqd_buf){ .gpa = hgpa, .len = hdr_len };
	if (data_len) {
		if (out)
			memcpy(data, out, data_len);
		b[n++] = (struct viod_vqd_buf){ .gpa = dgpa, .len = data_len, .writable = data_write };
	}
	if (!no_status)
		b[n++] = (struct viod_vqd_buf){ .gpa = sgpa, .len = 1, .writable = true };
	if (viod_vqd_add(q, b, n, NULL) < 0 || viod_fe_kick(fe, 0) < 0 ||
	    viod_fe_wait(fe, 0, 3000) != 1 || viod_vqd_get_used(q, &cookie, &len) != 1)
		return -1;
	*status = *st;
	return (int)len;
}

/* The image's bytes, or NULL. */
static char *image_contents(size_t *len)
{
	char *c = NULL;

	return g_file_get_contents(image_d, &c, len, NULL) ? c : NULL;
}

static void blk_attacks(void)
{
	static const struct {
		const char *what;
		uint32_t type;
		uint64_t sector;
		uint32_t hdr_len, data_len;
		bool data_write, no_status;
		uint8_t want;
	} bad[] = {
		{ "read past the capacity", VIRTIO_BLK_T_IN, D_SECTORS, 16, 512, true, false, VIRTIO_BLK_S_IOERR },
		{ "write straddling the end", VIRTIO_BLK_T_OUT, D_SECTORS - 1, 16, 1024, false, false, VIRTIO_BLK_S_IOERR },
		{ "write at sector 2^64-1 (overflow)", VIRTIO_BLK_T_OUT, UINT64_MAX, 16, 512, false, false, VIRTIO_BLK_S_IOERR },
		{ "write at sector 2^55 (byte offset overflow)", VIRTIO_BLK_T_OUT, 1ull << 55, 16, 512, false, false, VIRTIO_BLK_S_IOERR },
		{ "write of 100 bytes (not a sector multiple)", VIRTIO_BLK_T_OUT, 0, 16, 100, false, false, VIRTIO_BLK_S_IOERR },
		{ "8-byte header", VIRTIO_BLK_T_OUT, 0, 8, 0, false, false, VIRTIO_BLK_S_IOERR },
		{ "unknown request type", 0x7777, 0, 16, 512, false, false, VIRTIO_BLK_S_UNSUPP },
		{ "discard with 17 segments", VIRTIO_BLK_T_DISCARD, 0, 16, 17 * 16, false, false, VIRTIO_BLK_S_UNSUPP },
		{ "discard with a partial segment", VIRTIO_BLK_T_DISCARD, 0, 16, 20, false, false, VIRTIO_BLK_S_UNSUPP },
	};
	uint8_t junk[1024], status = 0;
	struct viod_fe fe;
	size_t len0 = 0, len1 = 0;
	g_autofree char *before = image_contents(&len0);
	g_autofree char *after = NULL;
	int used;

	if (!blk_attach(&fe)) {
		ok(false, "blk: attach: %s", viod_fe_strerror(&fe));
		viod_fe_disconnect(&fe);
		return;
	}
	memset(junk, 0xa5, sizeof(junk));
	for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
		used = blk_raw(&fe, bad[i].type, bad[i].sector, bad[i].hdr_len, junk,
			       bad[i].data_len, bad[i].data_write, bad[i].no_status, &status);
		ok(used >= 1 && status == bad[i].want, "blk: %s: status %u (want %u), used %d",
		   bad[i].what, status, bad[i].want, used);
	}
	used = blk_raw(&fe, VIRTIO_BLK_T_OUT, 0, 16, junk, 512, false, true, &status);
	ok(used == 0, "blk: a write without a status byte completes with length 0 (%d)", used);
	after = image_contents(&len1);
	ok(before && after && len0 == len1 && memcmp(before, after, len0) == 0,
	   "blk: no bad request touched the image");
	used = blk_raw(&fe, VIRTIO_BLK_T_OUT, 8, 16, junk, 512, false, false, &status);
	ok(used == 1 && status == VIRTIO_BLK_S_OK, "blk: a good write after them is served");
	g_free(after);
	after = image_contents(&len1);
	ok(after && len1 == len0 && memcmp(after + 8 * 512, junk, 512) == 0,
	   "blk: and lands in the image");
	viod_fe_disconnect(&fe);
	check_after("bad blk requests");
}

/*
 * Reads of 1 MiB kept in flight while the front-end vanishes, and while
 * its memory is truncated under them: D drains its I/O, stays alive and
 * serves the next front-end; B never notices.
 */
static void blk_vanish(bool truncate)
{
	const char *what = truncate ? "blk: memory truncated under I/O" : "blk: vanished with I/O in flight";
	struct viod_fe fe;
	struct viod_vqd *q;
	uint8_t status = 0;
	uint64_t one = 1;

	if (!blk_attach(&fe)) {
		ok(false, "%s: attach: %s", what, viod_fe_strerror(&fe));
		viod_fe_disconnect(&fe);
		return;
	}
	q = viod_fe_vqd(&fe, 0);
	for (int i = 0; i < 8; i++) {
		uint64_t hgpa, dgpa, sgpa;
		uint8_t *hdr = viod_fe_alloc(&fe, 16, 16, &hgpa);
		struct viod_vqd_buf b[3];

		if (!hdr || !viod_fe_alloc(&fe, 1u << 20, 4096, &dgpa) ||
		    !viod_fe_alloc(&fe, 1, 1, &sgpa))
			break;
		memcpy(hdr, &(struct virtio_blk_outhdr){ .type = htole32(VIRTIO_BLK_T_IN),
							 .sector = htole64(i * 512u % D_SECTORS) }, 16);
		b[0] = (struct viod_vqd_buf){ .gpa = hgpa, .len = 16 };
		b[1] = (struct viod_vqd_buf){ .gpa = dgpa, .len = 1u << 20, .writable = true };
		b[2] = (struct viod_vqd_buf){ .gpa = sgpa, .len = 1, .writable = true };
		viod_vqd_add(q, b, 3, NULL);
	}
	if (truncate)
		ok(ftruncate(fe.memfd, 0) == 0, "%s: guest memory fd truncated", what);
	if (write(fe.queues[0].kick_fd, &one, sizeof(one)) < 0)
		(void)0;
	close(fe.sock);
	fe.sock = -1;
	fe.broken = true;
	viod_fe_disconnect(&fe);
	if (blk_attach(&fe)) {
		int used = blk_raw(&fe, VIRTIO_BLK_T_IN, 8, 16, NULL, 512, true, false, &status);

		ok(used == 513 && status == VIRTIO_BLK_S_OK, "%s: D serves the next front-end (%d)",
		   what, used);
	} else {
		ok(false, "%s: reattach: %s", what, viod_fe_strerror(&fe));
	}
	viod_fe_disconnect(&fe);
	check_after(what);
}

static void on_config_change(struct viod_fe *fe, void *opaque)
{
	(*(int *)opaque)++;
}

/*
 * An operator grows D's image through the store: the front-end gets a
 * config-change message and reads the new capacity; a bad size is
 * refused with a clear error and changes nothing.
 */
static void blk_resize(void)
{
	g_autoptr(GError) err = NULL;
	g_autoptr(ViodStoreClient) c = viod_store_client_connect(ctl, &err);
	struct viod_fe_opts o;
	struct viod_fe fe;
	uint64_t cap = 0;
	int changes = 0;
	int64_t end;
	struct stat st;

	viod_fe_opts_init(&o);
	o.mem_size = 16u << 20;
	o.config_cb = on_config_change;
	o.config_opaque = &changes;
	if (!c || viod_fe_init(&fe, &o) < 0 || viod_fe_connect(&fe, sock_d) < 0 ||
	    viod_fe_negotiate(&fe, 0) < 0 || viod_fe_queue_setup(&fe, 0, 64) < 0 ||
	    viod_fe_driver_ok(&fe) < 0) {
		ok(false, "blk resize: attach: %s", c ? viod_fe_strerror(&fe) : err->message);
		viod_fe_disconnect(&fe);
		return;
	}
	ok(viod_store_client_write(c, "/devices/d/image/size", "8M", &err),
	   "blk resize: image/size written (%s)", err ? err->message : "ok");
	g_clear_error(&err);
	for (end = now_ms() + POLL_DEADLINE_MS; changes == 0 && now_ms() < end;)
		viod_fe_poll_backend(&fe, 100);
	ok(changes == 1, "blk resize: the front-end got one config-change message (%d)", changes);
	ok(viod_fe_get_config(&fe, 0, &cap, 8) == 0 && le64toh(cap) == 2 * D_SECTORS,
	   "blk resize: capacity now %llu sectors", (unsigned long long)le64toh(cap));
	ok(stat(image_d, &st) == 0 && st.st_size == 8 << 20, "blk resize: the file grew to 8 MiB");
	ok(!viod_store_client_write(c, "/devices/d/image/size", "12345x", &err) && err,
	   "blk resize: a bad size is refused (%s)", err ? err->message : "accepted");
	g_clear_error(&err);
	ok(!viod_store_client_write(c, "/devices/d/image/size", "100", &err) && err,
	   "blk resize: a size below one block is refused (%s)", err ? err->message : "accepted");
	g_clear_error(&err);
	ok(!viod_store_client_write(c, "/devices/d/image/size", "4M", &err) && err &&
	   stat(image_d, &st) == 0 && st.st_size == 8 << 20,
	   "blk resize: shrinking is refused (%s)", err ? err->message : "accepted");
	viod_fe_disconnect(&fe);
	check_after("a blk resize");
}

/* ---- net E and F on switch hs: bad frames, broken rings ---- */

static const uint8_t mac_e[6] = { 0x52, 0x54, 0x00, 0x00, 0x00, 0x0e };
static const uint8_t mac_f[6] = { 0x52, 0x54, 0x00, 0x00, 0x00, 0x0f };
static const uint8_t mac_g[6] = { 0x52, 0x54, 0x00, 0x00, 0x00, 0x10 };
static uint32_t net_seq = 1000;

/* B's control messages are answered in time while E and F are attacked:
 * a GET_FEATURES round trip on B in ms, or -1. */
#define B_REPLY_MS 1000

static double b_features_ms(void)
{
	struct viod_vu_msg m;
	int64_t t0 = g_get_monotonic_time();
	int s = test_connect(sock_b), rc = -1;

	if (s >= 0 && viod_fe_msg_send(s, VU_GET_FEATURES, VU_FLAG_VERSION, 0, NULL, 0,
				       NULL, 0) == 0)
		rc = viod_fe_msg_recv(s, &m, NULL, NULL, B_REPLY_MS * 10);
	if (s >= 0)
		close(s);
	if (rc < 0 || m.hdr.request != VU_GET_FEATURES)
		return -1;
	return (double)(g_get_monotonic_time() - t0) / 1000.0;
}

static void net_check_after(const char *what)
{
	double ms = b_features_ms();

	ok(ms >= 0 && ms < B_REPLY_MS, "after %s: B answered GET_FEATURES in %.1f ms", what, ms);
	check_after(what);
}

/* drops/KEY of net device dev, and the same once it reads want. */
static long long net_drops(const char *dev, const char *key)
{
	g_autofree char *k = g_strdup_printf("drops/%s", key);

	return dev_key(dev, k);
}

static long long net_drops_when(const char *dev, const char *key, long long want)
{
	g_autofree char *k = g_strdup_printf("drops/%s", key);

	return dev_key_when(dev, k, want);
}

/*
 * The attacker: a net front-end that negotiates any features and lays
 * its own chains (the vioif driver sends only good frames, without
 * offloads). Its receiveqs have 64 entries, its transmitqs 256; with MQ
 * in want, two queue pairs.
 */
struct raw_net {
	struct viod_fe fe;
	unsigned int hlen;        /* 12: VERSION_1 is always negotiated */
};

static bool raw_attach(struct raw_net *r, const char *path, uint64_t want)
{
	struct viod_fe_opts o;

	viod_fe_opts_init(&o);
	o.mem_size = 16u << 20;
	r->hlen = sizeof(struct virtio_net_hdr_mrg_rxbuf);
	if (viod_fe_init(&r->fe, &o) < 0) {
		printf("# net on %s: %s\n", path, viod_fe_strerror(&r->fe));
		return false;
	}
	r->fe.queue_num_unit = 2;
	if (viod_fe_connect(&r->fe, path) < 0 || viod_fe_negotiate(&r->fe, want) < 0 ||
	    viod_fe_queue_setup(&r->fe, 0, 64) < 0 || viod_fe_queue_setup(&r->fe, 1, 256) < 0 ||
	    ((want & (1ull << VIRTIO_NET_F_MQ)) &&
	     (viod_fe_queue_setup(&r->fe, 2, 64) < 0 || viod_fe_queue_setup(&r->fe, 3, 256) < 0)) ||
	    viod_fe_driver_ok(&r->fe) < 0) {
		printf("# net on %s: %s\n", path, viod_fe_strerror(&r->fe));
		viod_fe_disconnect(&r->fe);
		return false;
	}
	return true;
}

/* A buffer in r's guest memory holding a header (NULL: zeros) and frame. */
static uint64_t raw_buf(struct raw_net *r, const void *hdr, const void *frame, uint32_t len)
{
	uint64_t gpa;
	uint8_t *p = viod_fe_alloc(&r->fe, r->hlen + len, 64, &gpa);

	if (!p)
		return 0;
	if (hdr)
		memcpy(p, hdr, r->hlen);
	memcpy(p + r->hlen, frame, len);
	return gpa;
}

/* Adds a hand-made chain to r's queue idx and kicks. */
static bool raw_chain(struct raw_net *r, unsigned int idx, const struct viod_vqd_buf *b,
		      unsigned int nb)
{
	return viod_vqd_add(viod_fe_vqd(&r->fe, idx), b, nb, NULL) >= 0 &&
	       viod_fe_kick(&r->fe, idx) >= 0;
}

/* Sends a header (NULL: zeros) and frame as one chain on r's queue idx. */
static bool raw_send(struct raw_net *r, unsigned int idx, const void *hdr, const void *frame,
		     uint32_t len)
{
	struct viod_vqd_buf b = { .gpa = raw_buf(r, hdr, frame, len), .len = r->hlen + len };

	return b.gpa && raw_chain(r, idx, &b, 1);
}

/* Takes back what the device returned on the transmitq: false if it
 * wrote into a transmit chain or returned a bogus entry. */
static bool raw_reap(struct raw_net *r)
{
	void *cookie;
	uint32_t len;
	int rc;

	while ((rc = viod_vqd_get_used(viod_fe_vqd(&r->fe, 1), &cookie, &len)) == 1)
		if (len)
			return false;
	return rc == 0;
}

/* A good frame to F's MAC; *seq gets its sequence number. */
static bool raw_send_good(struct raw_net *r, uint32_t *seq)
{
	uint8_t frame[128];

	*seq = net_seq++;
	vioif_frame_fill(frame, sizeof(frame), mac_f, mac_e, *seq);
	return raw_send(r, 1, NULL, frame, sizeof(frame));
}

/*
 * E sends a good frame to F; F's next frame must be that one (anything E
 * sent before it would have come first: one sender, one queue, in
 * order), intact.
 */
static bool net_marker(struct raw_net *e, struct vioif *f, const char *what)
{
	uint8_t got[2048];
	uint32_t seq = 0, want;
	size_t len = 0;
	int rc;

	if (!raw_send_good(e, &want)) {
		printf("# %s: E could not send: %s\n", what, viod_fe_strerror(&e->fe));
		return false;
	}
	rc = vioif_recv(f, got, sizeof(got), &len, NULL, POLL_DEADLINE_MS);
	if (rc != 1 || !vioif_frame_check(got, len, &seq) || seq != want) {
		printf("# %s: F's next frame: %d, %zu bytes, seq %u (want %u)\n", what, rc, len,
		       seq, want);
		return false;
	}
	return raw_reap(e);
}

/* Attaches E (raw, want_e) and F (vioif, o); on failure, neither is left. */
static bool net_attach_ef(struct raw_net *e, uint64_t want_e, struct viod_fe *ffe,
			  struct vioif *f, const struct vioif_opts *o, const char *what)
{
	if (!raw_attach(e, sock_e, want_e))
		return ok(false, "net %s: attach E", what);
	if (!test_vioif_attach(ffe, f, sock_f, o)) {
		viod_fe_disconnect(&e->fe);
		return ok(false, "net %s: attach F", what);
	}
	return true;
}

static void net_detach_ef(struct raw_net *e, struct viod_fe *ffe, struct vioif *f)
{
	viod_fe_disconnect(&e->fe);
	test_vioif_detach(ffe, f);
}

enum { NET_HDR_WHOLE, NET_HDR_ONLY6, NET_WRITABLE, NET_4MIB };

struct net_bad {
	const char *what;
	const char *key;          /* drops/KEY on E */
	struct virtio_net_hdr hdr;
	uint32_t len;
	int layout;
};

#define NET_CSUM_AT(start) { .flags = VIRTIO_NET_HDR_F_NEEDS_CSUM, \
			     .csum_start = htole16(start), .csum_offset = htole16(16) }

/* Posts bad frame b on E's transmitq. */
static bool net_post_bad(struct raw_net *e, const struct net_bad *b)
{
	struct virtio_net_hdr_mrg_rxbuf h = { .hdr = b->hdr };
	uint8_t frame[2048] = { 0 };
	struct viod_vqd_buf c[2];
	uint64_t gpa;
	uint8_t *p;

	vioif_frame_fill(frame, VIOIF_FRAME_MAX, mac_f, mac_e, 1);
	switch (b->layout) {
	case NET_HDR_ONLY6:
		c[0] = (struct viod_vqd_buf){ .gpa = raw_buf(e, &h, frame, 0), .len = 6 };
		return c[0].gpa && raw_chain(e, 1, c, 1);
	case NET_WRITABLE:
		c[0] = (struct viod_vqd_buf){ .gpa = raw_buf(e, &h, frame, b->len),
					      .len = e->hlen + b->len };
		c[1] = (struct viod_vqd_buf){ .gpa = raw_buf(e, NULL, frame, 64), .len = 64,
					      .writable = true };
		return c[0].gpa && c[1].gpa && raw_chain(e, 1, c, 2);
	case NET_4MIB:
		p = viod_fe_alloc(&e->fe, 4u << 20, 4096, &gpa);
		if (!p)
			return false;
		memcpy(p, &h, e->hlen);
		memcpy(p + e->hlen, frame, 64);
		c[0] = (struct viod_vqd_buf){ .gpa = gpa, .len = 4u << 20 };
		return raw_chain(e, 1, c, 1);
	default:
		return raw_send(e, 1, &h, frame, b->len);
	}
}

/*
 * E (negotiating want) sends each bad frame of bad[] to F, then a good
 * one: the bad one is counted in E's drops/KEY, F's next frame is the
 * good one, E's tx/packets counts the good ones only, and B answers.
 */
static void net_bad_frames(const char *session, uint64_t want, const struct net_bad *bad,
			   size_t nbad)
{
	struct raw_net e;
	struct viod_fe ffe;
	struct vioif f;
	long long sent;

	if (!net_attach_ef(&e, want, &ffe, &f, NULL, session))
		return;
	/* E's counters are settled: the last session waited for them. */
	sent = dev_key("e", "tx/packets") + 1;
	ok(net_marker(&e, &f, session) && dev_key_when("e", "tx/packets", sent) == sent,
	   "net %s: a good frame from E reaches F and is counted", session);
	for (size_t i = 0; i < nbad; i++) {
		const struct net_bad *b = &bad[i];
		long long drops = net_drops("e", b->key), v;

		ok(net_post_bad(&e, b), "net: %s: posted", b->what);
		ok(net_marker(&e, &f, b->what), "net: %s: never forwarded (F's next frame is "
		   "the good one after it)", b->what);
		v = net_drops_when("e", b->key, drops + 1);
		ok(v == drops + 1, "net: %s: counted in drops/%s (%lld, was %lld)", b->what, b->key,
		   v, drops);
		v = dev_key_when("e", "tx/packets", ++sent);
		ok(v == sent, "net: %s: tx/packets counts the good frames only (%lld, want %lld)",
		   b->what, v, sent);
		net_check_after(b->what);
	}
	net_detach_ef(&e, &ffe, &f);
}

static void net_frame_attacks(void)
{
	const struct net_bad plain[] = {
		{ "unknown header flag 0x80", "bad-header", { .flags = 0x80 }, 100, 0 },
		{ "NEEDS_CSUM without CSUM negotiated", "bad-header", NET_CSUM_AT(34), 100, 0 },
		{ "TCPv4 segmentation without HOST_TSO4", "bad-header",
		  { .flags = VIRTIO_NET_HDR_F_NEEDS_CSUM, .gso_type = VIRTIO_NET_HDR_GSO_TCPV4,
		    .gso_size = htole16(1448), .csum_start = htole16(34),
		    .csum_offset = htole16(16) }, 1000, 0 },
		{ "runt: a 10-byte frame", "runt", { 0 }, 10, 0 },
		{ "a 1519-byte frame over MTU 1500", "oversize", { 0 }, 1519, 0 },
		{ "a 4 MiB frame in one descriptor", "oversize", { 0 }, 0, NET_4MIB },
		{ "a chain of 6 bytes, shorter than the header", "bad-header", { 0 }, 0,
		  NET_HDR_ONLY6 },
		{ "a transmit chain with a writable descriptor", "bad-header", { 0 }, 100,
		  NET_WRITABLE },
	};
	const struct net_bad csum[] = {
		{ "checksum field past the frame (start 90 + offset 16, 100 bytes)",
		  "bad-header", NET_CSUM_AT(90), 100, 0 },
		{ "csum_start 65535", "bad-header", NET_CSUM_AT(0xffff), 100, 0 },
		{ "UDP segmentation (never offered)", "bad-header",
		  { .flags = VIRTIO_NET_HDR_F_NEEDS_CSUM, .gso_type = VIRTIO_NET_HDR_GSO_UDP,
		    .gso_size = htole16(1448), .csum_start = htole16(34),
		    .csum_offset = htole16(6) }, 1000, 0 },
		{ "TCPv4 segmentation with gso_size 0", "bad-header",
		  { .flags = VIRTIO_NET_HDR_F_NEEDS_CSUM, .gso_type = VIRTIO_NET_HDR_GSO_TCPV4,
		    .csum_start = htole16(34), .csum_offset = htole16(16) }, 1000, 0 },
		{ "TCPv4 segmentation with ECN (never offered)", "bad-header",
		  { .flags = VIRTIO_NET_HDR_F_NEEDS_CSUM,
		    .gso_type = VIRTIO_NET_HDR_GSO_TCPV4 | VIRTIO_NET_HDR_GSO_ECN,
		    .gso_size = htole16(1448), .csum_start = htole16(34),
		    .csum_offset = htole16(16) }, 1000, 0 },
	};

	net_bad_frames("no offloads", 0, plain, G_N_ELEMENTS(plain));
	net_bad_frames("CSUM and HOST_TSO4",
		       (1ull << VIRTIO_NET_F_CSUM) | (1ull << VIRTIO_NET_F_HOST_TSO4), csum,
		       G_N_ELEMENTS(csum));
}

/*
 * An IPv4 frame of len bytes carrying TCP (proto 6: a 20-byte header,
 * PSH and ACK) or UDP (17), from 10.0.0.sip:sport to 10.0.0.dip:dport;
 * the rest zeros.
 */
static void ip4_frame(uint8_t *f, uint32_t len, const uint8_t *dmac, const uint8_t *smac,
		      uint8_t proto, uint8_t sip, uint16_t sport, uint8_t dip, uint16_t dport)
{
	memset(f, 0, len);
	memcpy(f, dmac, 6);
	memcpy(f + 6, smac, 6);
	f[12] = 0x08;
	f[14] = 0x45;                             /* version 4, 20 bytes */
	f[16] = (uint8_t)((len - 14) >> 8), f[17] = (uint8_t)(len - 14);
	f[22] = 64, f[23] = proto;
	f[26] = 10, f[29] = sip, f[30] = 10, f[33] = dip;
	f[34] = (uint8_t)(sport >> 8), f[35] = (uint8_t)sport;
	f[36] = (uint8_t)(dport >> 8), f[37] = (uint8_t)dport;
	if (proto == 17) {
		f[38] = (uint8_t)((len - 34) >> 8), f[39] = (uint8_t)(len - 34);
	} else {
		f[46] = 5 << 4;
		f[47] = 0x18;
	}
}

/*
 * A 3000-byte TCPv4 segmentation frame from E to F, which did not accept
 * it (no GUEST_TSO4) and must have it segmented, but it cannot be: not
 * TCP/IP (tcp false), or a segment size of 1 that would make thousands
 * of frames. Counted in F's drops/gso; F's guest sees none of it.
 */
static void net_gso_refused(struct raw_net *e, struct vioif *f, const char *what, bool tcp,
			    uint16_t mss)
{
	struct virtio_net_hdr_mrg_rxbuf h = {
		.hdr = { .flags = VIRTIO_NET_HDR_F_NEEDS_CSUM, .gso_type = VIRTIO_NET_HDR_GSO_TCPV4,
			 .gso_size = htole16(mss), .csum_start = htole16(34),
			 .csum_offset = htole16(16) },
	};
	long long before = net_drops("f", "gso"), v;
	uint8_t frame[3000];

	if (tcp)
		ip4_frame(frame, sizeof(frame), mac_f, mac_e, 6, 1, 1000, 2, 80);
	else
		vioif_frame_fill(frame, VIOIF_FRAME_MAX, mac_f, mac_e, 7);
	ok(raw_send(e, 1, &h, frame, sizeof(frame)), "net: %s, 3000 bytes, sent to F, which "
	   "has no GUEST_TSO4", what);
	ok(net_marker(e, f, what), "net: %s: F's guest sees none of it", what);
	v = net_drops_when("f", "gso", before + 1);
	ok(v == before + 1, "net: %s: counted in F's drops/gso (%lld, was %lld)", what, v, before);
	net_check_after(what);
}

/*
 * What only the receiver refuses: segmentation frames that cannot be
 * segmented for F, and, without MRG_RXBUF, a frame larger than F's
 * buffers (drops/no-buffers on F's receive side).
 */
static void net_receiver_attacks(void)
{
	struct raw_net e, g;
	struct viod_fe ffe;
	struct vioif f;
	long long v, before;

	if (net_attach_ef(&e, (1ull << VIRTIO_NET_F_CSUM) | (1ull << VIRTIO_NET_F_HOST_TSO4),
			  &ffe, &f, NULL, "GSO receiver")) {
		net_gso_refused(&e, &f, "a TCPv4 segmentation frame that is not TCP/IP", false,
				1448);
		net_gso_refused(&e, &f, "a TCPv4 segmentation frame with a segment size of 1",
				true, 1);
		net_detach_ef(&e, &ffe, &f);
	}

	/* G, on F's socket without MRG_RXBUF, posts 64-byte buffers. */
	if (raw_attach(&e, sock_e, 0)) {
		if (raw_attach(&g, sock_f, 0)) {
			uint64_t gpa;
			uint32_t seq;

			before = net_drops("f", "no-buffers");
			for (int i = 0; i < 8 && viod_fe_alloc(&g.fe, 64, 64, &gpa); i++)
				raw_chain(&g, 0, &(struct viod_vqd_buf){ .gpa = gpa, .len = 64,
									 .writable = true }, 1);
			ok(raw_send_good(&e, &seq), "net: a 128-byte frame sent to F's 64-byte "
			   "buffers (no MRG_RXBUF)");
			v = net_drops_when("f", "no-buffers", before + 1);
			ok(v == before + 1, "net: counted in F's drops/no-buffers (%lld, was %lld)", v,
			   before);
			ok(viod_fe_wait(&g.fe, 0, 200) == 0, "net: no buffer of F's came back used");
			net_check_after("a frame too large for the receiver's buffers");
			viod_fe_disconnect(&g.fe);
		} else {
			ok(false, "net: F attaches without MRG_RXBUF");
		}
		viod_fe_disconnect(&e.fe);
	} else {
		ok(false, "net: E attaches");
	}
}

/*
 * G (two queue pairs) sends a DHCP-like UDP flow on pair 1, so the
 * switch steers the flow's replies to G's pair 1 (virtio 1.2, 5.1.6.5.5).
 * G's front-end goes and the next one sets up pair 0 only (a boot
 * loader's driver after a reboot): E's reply on that flow must reach it,
 * not wait in a queue of pair 1 that nobody reads.
 */
static void net_flows_forgotten(void)
{
	const char *what = "steering left by G's last front-end";
	uint8_t frame[128], got[2048];
	struct raw_net e, g;
	struct viod_fe gfe;
	struct vioif g2;
	size_t len = 0;
	int rc;

	if (!raw_attach(&e, sock_e, 0)) {
		ok(false, "net: %s: attach E", what);
		return;
	}
	if (!raw_attach(&g, sock_g, 1ull << VIRTIO_NET_F_MQ)) {
		ok(false, "net: %s: attach G with two queue pairs", what);
		viod_fe_disconnect(&e.fe);
		return;
	}
	ip4_frame(frame, sizeof(frame), mac_e, mac_g, 17, 2, 68, 1, 67);
	ok(raw_send(&g, 3, NULL, frame, sizeof(frame)) &&
	   viod_fe_wait(&g.fe, 3, POLL_DEADLINE_MS) == 1,
	   "net: G sends a UDP flow on its queue pair 1");
	viod_fe_disconnect(&g.fe);
	if (!test_vioif_attach(&gfe, &g2, sock_g, NULL)) {
		ok(false, "net: %s: G's next front-end attaches", what);
		viod_fe_disconnect(&e.fe);
		return;
	}
	ip4_frame(frame, sizeof(frame), mac_g, mac_e, 17, 1, 67, 2, 68);
	ok(raw_send(&e, 1, NULL, frame, sizeof(frame)), "net: E replies on the flow");
	rc = vioif_recv(&g2, got, sizeof(got), &len, NULL, 2000);
	ok(rc == 1 && len == sizeof(frame) && !memcmp(got, frame, len),
	   "net: %s: G's next front-end, on queue pair 0 only, gets the reply (%d, %zu bytes)",
	   what, rc, len);
	test_vioif_detach(&gfe, &g2);
	viod_fe_disconnect(&e.fe);
	net_check_after(what);
}

enum net_ring_attack { NET_MANY_DESC, NET_LOOP, NET_TX_JUMP, NET_RX_JUMP };

static const char *const net_ring_names[] = {
	"a transmit chain of 65 descriptors", "a descriptor loop on the transmitq",
	"the transmitq's avail index jumping past the ring",
	"the receiveq's avail index jumping past the ring",
};

/*
 * E's transmitq (or F's receiveq) is broken by a hostile ring: the queue
 * stops with NEEDS_RESET, nothing reaches F, E and F serve their next
 * front-ends, B answers.
 */
static void net_ring_attack(enum net_ring_attack kind)
{
	const char *what = net_ring_names[kind];
	struct raw_net e;
	struct viod_fe ffe, *victim;
	struct vioif f;
	struct viod_vqd *q;
	struct viod_vqd_buf c[65];
	uint8_t frame[200];
	unsigned int idx;
	uint64_t gpa, st;
	uint32_t seq;
	uint16_t ai;

	if (!net_attach_ef(&e, 0, &ffe, &f, NULL, what))
		return;
	victim = kind == NET_RX_JUMP ? &ffe : &e.fe;
	idx = kind == NET_RX_JUMP ? 0 : 1;
	q = viod_fe_vqd(victim, idx);
	vioif_frame_fill(frame, sizeof(frame), mac_f, mac_e, 9);
	gpa = raw_buf(&e, NULL, frame, sizeof(frame));
	ai = q->avail_idx;
	switch (kind) {
	case NET_MANY_DESC:
		for (unsigned int i = 0; i < 65; i++)
			c[i] = (struct viod_vqd_buf){ .gpa = gpa + i * 3u, .len = i < 64 ? 3 : 20 };
		ok(viod_vqd_add(q, c, 65, NULL) >= 0, "net: %s: posted", what);
		break;
	case NET_LOOP:
		q->desc[0] = (struct vring_desc){ .addr = htole64(gpa), .len = htole32(e.hlen + 100),
						  .flags = htole16(VRING_DESC_F_NEXT), .next = 0 };
		q->avail->ring[ai & (q->num - 1)] = 0;
		__atomic_store_n(&q->avail->idx, htole16((uint16_t)(ai + 1)), __ATOMIC_RELEASE);
		break;
	case NET_TX_JUMP:
	case NET_RX_JUMP:
		__atomic_store_n(&q->avail->idx, htole16((uint16_t)(ai + q->num + 3)),
				 __ATOMIC_RELEASE);
		break;
	}
	if (kind == NET_RX_JUMP) /* the receiveq is read when a frame comes */
		raw_send_good(&e, &seq);
	st = kick_until_needs_reset(victim, idx);
	ok(st & 0x40, "net: %s: NEEDS_RESET (status 0x%llx)", what, (unsigned long long)st);
	if (kind != NET_RX_JUMP) {
		long long sent = dev_key("e", "tx/packets");

		viod_fe_disconnect(&e.fe);
		ok(raw_attach(&e, sock_e, 0) && net_marker(&e, &f, what),
		   "net: %s: nothing reached F; E's next front-end reaches F", what);
		ok(dev_key_when("e", "tx/packets", sent + 1) == sent + 1,
		   "net: %s: E forwarded only the good frame after it", what);
	} else {
		test_vioif_detach(&ffe, &f);
		ok(test_vioif_attach(&ffe, &f, sock_f, NULL) && net_marker(&e, &f, what),
		   "net: %s: F's next front-end receives from E", what);
	}
	net_detach_ef(&e, &ffe, &f);
	net_check_after(what);
}

static pid_t start_viod(const char *viod, const char *dir)
{
	char spec_a[300], spec_b[300], spec_c[300], spec_d[600], spec_e[400], spec_f[400];
	char spec_g[400];
	pid_t pid;
	int fd;

	snprintf(sock_a, sizeof(sock_a), "%s/a.sock", dir);
	snprintf(sock_b, sizeof(sock_b), "%s/b.sock", dir);
	snprintf(sock_c, sizeof(sock_c), "%s/c.sock", dir);
	snprintf(ctl, sizeof(ctl), "%s/control", dir);
	snprintf(spec_a, sizeof(spec_a), "rng,id=a,socket=%s", sock_a);
	snprintf(spec_b, sizeof(spec_b), "rng,id=b,socket=%s", sock_b);
	snprintf(spec_c, sizeof(spec_c), "balloon,id=c,socket=%s,stats=off", sock_c);
	snprintf(sock_d, sizeof(sock_d), "%s/d.sock", dir);
	snprintf(image_d, sizeof(image_d), "%s/d.img", dir);
	snprintf(spec_d, sizeof(spec_d), "blk,id=d,socket=%s,path=%s", sock_d, image_d);
	snprintf(sock_e, sizeof(sock_e), "%s/e.sock", dir);
	snprintf(sock_f, sizeof(sock_f), "%s/f.sock", dir);
	snprintf(spec_e, sizeof(spec_e), "net,id=e,socket=%s,backend=switch:hs,"
		 "mac=52:54:00:00:00:0e", sock_e);
	snprintf(spec_f, sizeof(spec_f), "net,id=f,socket=%s,backend=switch:hs,"
		 "mac=52:54:00:00:00:0f", sock_f);
	snprintf(sock_g, sizeof(sock_g), "%s/g.sock", dir);
	snprintf(spec_g, sizeof(spec_g), "net,id=g,socket=%s,backend=switch:hs,"
		 "mac=52:54:00:00:00:10,queue-pairs=2", sock_g);
	fd = open(image_d, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	if (fd < 0 || ftruncate(fd, D_SECTORS * 512ull) < 0) {
		printf("Bail out! cannot create %s\n", image_d);
		exit(1);
	}
	close(fd);
	pid = fork();
	if (pid == 0) {
		execl(viod, viod, "--control", ctl, "--device", spec_a, "--device", spec_b,
		      "--device", spec_c, "--device", spec_d, "--device", spec_e,
		      "--device", spec_f, "--device", spec_g, (char *)NULL);
		_exit(127);
	}
	for (int64_t end = now_ms() + POLL_DEADLINE_MS;; usleep(10000)) {
		struct stat st;

		if (stat(sock_a, &st) == 0 && stat(sock_b, &st) == 0 &&
		    stat(sock_c, &st) == 0 && stat(sock_d, &st) == 0 && stat(sock_e, &st) == 0 &&
		    stat(sock_f, &st) == 0 && stat(sock_g, &st) == 0 && stat(ctl, &st) == 0)
			break;
		if (pid < 0 || waitpid(pid, NULL, WNOHANG) != 0 || now_ms() >= end) {
			printf("Bail out! viod did not create its sockets within %d ms\n",
			       POLL_DEADLINE_MS);
			if (pid > 0)
				kill(pid, SIGKILL);
			exit(1);
		}
	}
	return pid;
}

int main(int argc, char **argv)
{
	char dir[] = "/tmp/viod-hostile.XXXXXX";
	int status = -1;
	pid_t pid;

	if (argc != 2) {
		fprintf(stderr, "usage: hostile VIOD_BINARY\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	if (!mkdtemp(dir))
		return 1;
	pid = start_viod(argv[1], dir);
	ok(test_rng_serves(sock_a) && test_rng_serves(sock_b), "both devices serve at start");

	framing_attacks();
	get_config_out_of_range();
	check_after("GET_CONFIG refusal");
	half_message();
	for (int k = LOOP; k <= BAD_INDIRECT; k++)
		ring_attack((enum ring_attack)k);
	vanish_mid_request();
	truncated_memory();
	balloon_attacks();
	blk_attacks();
	blk_vanish(false);
	blk_vanish(true);
	blk_resize();
	net_frame_attacks();
	net_receiver_attacks();
	for (int k = NET_MANY_DESC; k <= NET_RX_JUMP; k++)
		net_ring_attack((enum net_ring_attack)k);
	net_flows_forgotten();

	ok(kill(pid, 0) == 0, "viod still running after every attack");
	kill(pid, SIGTERM);
	waitpid(pid, &status, 0);
	ok(WIFEXITED(status) && WEXITSTATUS(status) == 0, "viod exits 0 on SIGTERM");
	ok(access(sock_a, F_OK) < 0 && access(sock_b, F_OK) < 0 && access(sock_c, F_OK) < 0 &&
	   access(sock_d, F_OK) < 0 && access(sock_e, F_OK) < 0 && access(sock_f, F_OK) < 0 &&
	   access(sock_g, F_OK) < 0 && access(ctl, F_OK) < 0, "sockets removed");
	unlink(image_d);
	rmdir(dir);
	return tap_done();
}
