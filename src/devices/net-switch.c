/*
 * The built-in switch: a learning L2 switch between every net device that
 * names it (backend=switch:NAME), so guests reach each other with no root
 * and no host interface.
 *
 * Each port has one bounded inbound queue per queue pair (a lock-free
 * multi-producer ring of fixed cells, D. Vyukov's sequence-numbered
 * design), consumed by that pair's receive queue alone: a sender's
 * transmit handler copies a frame into a cell of each destination, the
 * receive handler copies cells into the guest's buffers. A flow goes to
 * the pair its receiver last transmitted it on (virtio 1.2, 5.1.6.5.5,
 * automatic receive steering: a small table per port, indexed by a
 * direction-independent hash of addresses and ports, forgotten when the
 * device resets), else to pair 0, so a TCP connection is never spread
 * over queues and reordered. Nothing is ever
 * copied from or into guest memory while a cell is claimed or a shared
 * counter is held: a transmitted frame is first copied into the sender's
 * own scratch buffer, so a front-end that truncates its memory under a
 * copy faults in its own worker and leaves every queue consistent.
 *
 * Fairness: a sender may hold at most a quota of a destination's cells
 * (its capacity over the other ports, at least NET_SW_MIN_QUOTA), so one
 * busy port cannot fill another's queue and starve the rest; what does
 * not fit is dropped and counted (drops/dst-full) at the sender. Handlers
 * do bounded work per call (NET_BUDGET frames) on their own device's
 * workers, so a flood costs the flooding device's CPU, not another's.
 *
 * Learning: a fixed table of (MAC, port) words, each updated with one
 * compare-and-swap, probed over a short window; a port learns at most
 * NET_SW_MAX_MACS addresses (a guest spraying source MACs fills its own
 * share only), and loses them when its front-end goes. Unknown unicast,
 * broadcast and multicast are flooded to every other port that is up.
 *
 * Lifetime: ports are never freed while their switch lives; a closed or
 * down port takes no frames. The switch goes with its last port, after
 * every device on it stopped its workers.
 */
#include "devices/net.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>

#define NET_SW_MAX_PORTS 64u
#define NET_SW_CELLS 512u
#define NET_SW_INLINE 1536u
#define NET_SW_MIN_QUOTA 32u
#define NET_SW_MACS 4096u
#define NET_SW_PROBE 8u
#define NET_SW_MAX_MACS 256u

struct net_cell {
	atomic_uint_fast64_t seq;
	uint32_t len;
	uint16_t from;
	struct virtio_net_hdr hdr;
	uint8_t *big;             /* len > NET_SW_INLINE */
	uint8_t data[NET_SW_INLINE];
};

/* An inbound queue: many senders, one consumer (its receive queue). */
struct net_inq {
	struct net_cell *cells;
	atomic_uint_fast64_t enq;
	atomic_uint_fast64_t deq;
	atomic_uint occ[NET_SW_MAX_PORTS]; /* cells held per sender */
};

#define NET_SW_FLOWS 256u

struct net_port {
	struct net_switch *sw;
	struct viod_dev *dev;
	unsigned int idx;
	unsigned int pairs;
	atomic_bool open;
	atomic_bool up;
	atomic_uint macs;         /* addresses learned on this port */

	struct net_inq inq[NET_MAX_PAIRS];
	/* Flow hash -> the pair this port's guest last sent the flow on. */
	_Atomic uint8_t flow_pair[NET_SW_FLOWS];

	/* Per pair, the transmit worker's scratch copy of a frame. */
	uint8_t *scratch[NET_MAX_PAIRS];
};

struct net_switch {
	char *name;
	unsigned int refs;        /* open ports; registry lock */
	atomic_uint nopen;
	atomic_uint_fast64_t up_mask; /* ports that take frames */
	struct net_port *_Atomic ports[NET_SW_MAX_PORTS];
	atomic_uint_fast64_t macs[NET_SW_MACS];
};

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static GHashTable *registry; /* name -> struct net_switch */

/* ---- the inbound queue ---- */

static unsigned int quota(const struct net_switch *sw)
{
	unsigned int others = atomic_load_explicit(&sw->nopen, memory_order_relaxed);
	unsigned int q = NET_SW_CELLS / (others > 1 ? others - 1 : 1);

	return q < NET_SW_MIN_QUOTA ? NET_SW_MIN_QUOTA : q;
}

/* Copies f into a cell of dst; false if dst is full or from's quota spent. */
static bool enqueue(struct net_switch *sw, struct net_inq *dst, unsigned int from,
		    const struct net_frame *f)
{
	struct net_cell *c;
	uint64_t pos;

	/* A flood mostly finds its share spent: tell without a locked
	 * instruction, so dropping costs less than forwarding. */
	if (atomic_load_explicit(&dst->occ[from], memory_order_relaxed) >= quota(sw))
		return false;
	if (atomic_fetch_add_explicit(&dst->occ[from], 1, memory_order_relaxed) >= quota(sw))
		goto full;
	pos = atomic_load_explicit(&dst->enq, memory_order_relaxed);
	for (;;) {
		int64_t dif;

		c = &dst->cells[pos & (NET_SW_CELLS - 1)];
		dif = (int64_t)(atomic_load_explicit(&c->seq, memory_order_acquire) - pos);
		if (dif == 0) {
			if (atomic_compare_exchange_weak_explicit(&dst->enq, &pos, pos + 1,
								  memory_order_relaxed,
								  memory_order_relaxed))
				break;
		} else if (dif < 0) {
			goto full;
		} else {
			pos = atomic_load_explicit(&dst->enq, memory_order_relaxed);
		}
	}
	c->from = (uint16_t)from;
	c->len = f->len;
	c->hdr = f->hdr;
	if (f->len > NET_SW_INLINE) {
		c->big = g_malloc(f->len);
		memcpy(c->big, f->data, f->len);
	} else {
		c->big = NULL;
		memcpy(c->data, f->data, f->len);
	}
	atomic_store_explicit(&c->seq, pos + 1, memory_order_release);
	return true;
full:
	atomic_fetch_sub_explicit(&dst->occ[from], 1, memory_order_relaxed);
	return false;
}

/* The oldest cell, or NULL; the caller is the only consumer. */
static struct net_cell *peek(struct net_inq *p, uint64_t *pos)
{
	struct net_cell *c;

	*pos = atomic_load_explicit(&p->deq, memory_order_relaxed);
	c = &p->cells[*pos & (NET_SW_CELLS - 1)];
	if (atomic_load_explicit(&c->seq, memory_order_acquire) != *pos + 1)
		return NULL;
	return c;
}

static void consume(struct net_inq *p, struct net_cell *c, uint64_t pos)
{
	g_free(c->big);
	c->big = NULL;
	atomic_fetch_sub_explicit(&p->occ[c->from], 1, memory_order_relaxed);
	atomic_store_explicit(&p->deq, pos + 1, memory_order_relaxed);
	atomic_store_explicit(&c->seq, pos + NET_SW_CELLS, memory_order_release);
}

void net_switch_port_flush(struct net_port *p)
{
	struct net_cell *c;
	uint64_t pos;

	for (unsigned int i = 0; i < p->pairs; i++)
		while ((c = peek(&p->inq[i], &pos)))
			consume(&p->inq[i], c, pos);
	/* The next driver may use fewer pairs (a boot loader uses pair 0):
	 * a flow steered to a pair it never reads would be lost. */
	for (unsigned int h = 0; h < NET_SW_FLOWS; h++)
		atomic_store_explicit(&p->flow_pair[h], 0, memory_order_relaxed);
}

/* ---- flows ---- */

/*
 * A hash of the frame's flow that is the same both ways (addresses and
 * ports taken in order), so a reply finds the pair its request left on;
 * 0 for what is not TCP or UDP over IP.
 */
static unsigned int flow_hash(const struct net_frame *f)
{
	const uint8_t *d = f->data;
	uint32_t l3 = NET_ETH_HLEN, alen, l4, h = 2166136261u;
	uint16_t eth = (uint16_t)(d[12] << 8 | d[13]);
	const uint8_t *a, *b;
	uint8_t proto;

	if (eth == 0x8100 && f->len >= NET_ETH_HLEN + NET_VLAN_HLEN) {
		eth = (uint16_t)(d[16] << 8 | d[17]);
		l3 += NET_VLAN_HLEN;
	}
	if (eth == 0x0800 && f->len >= l3 + 20) {
		proto = d[l3 + 9];
		alen = 4;
		a = d + l3 + 12;
		l4 = l3 + (d[l3] & 0x0fu) * 4u;
	} else if (eth == 0x86dd && f->len >= l3 + 40) {
		proto = d[l3 + 6];
		alen = 16;
		a = d + l3 + 8;
		l4 = l3 + 40;
	} else {
		return 0;
	}
	if ((proto != 6 && proto != 17) || f->len < l4 + 4)
		return 0;
	b = a + alen;
	if (memcmp(a, b, alen) > 0 ||
	    (!memcmp(a, b, alen) && memcmp(d + l4, d + l4 + 2, 2) > 0)) {
		const uint8_t *t = a;

		a = b;
		b = t;
	}
	for (uint32_t i = 0; i < alen; i++)
		h = (h ^ a[i]) * 16777619u;
	for (uint32_t i = 0; i < alen; i++)
		h = (h ^ b[i]) * 16777619u;
	/* Ports in the same order as the addresses. */
	if (a == d + l3 + (alen == 4 ? 12 : 8)) {
		h = (h ^ d[l4]) * 16777619u, h = (h ^ d[l4 + 1]) * 16777619u;
		h = (h ^ d[l4 + 2]) * 16777619u, h = (h ^ d[l4 + 3]) * 16777619u;
	} else {
		h = (h ^ d[l4 + 2]) * 16777619u, h = (h ^ d[l4 + 3]) * 16777619u;
		h = (h ^ d[l4]) * 16777619u, h = (h ^ d[l4 + 1]) * 16777619u;
	}
	h ^= proto;
	return (h ^ (h >> 8) ^ (h >> 16)) & (NET_SW_FLOWS - 1);
}

/* The pair of d that flow hash h should be received on. */
static unsigned int steer(struct net_port *d, unsigned int h)
{
	unsigned int pr = atomic_load_explicit(&d->flow_pair[h], memory_order_relaxed);

	return pr < d->pairs ? pr : 0;
}

/* ---- learning ---- */

static uint64_t mac48(const uint8_t *m)
{
	return (uint64_t)m[0] << 40 | (uint64_t)m[1] << 32 | (uint64_t)m[2] << 24 |
	       (uint64_t)m[3] << 16 | (uint64_t)m[4] << 8 | m[5];
}

static unsigned int mac_slot(uint64_t key)
{
	return (unsigned int)((key * 0x9e3779b97f4a7c15ull) >> 52) & (NET_SW_MACS - 1);
}

static uint64_t entry_of(uint64_t key, unsigned int port)
{
	return key << 16 | (uint64_t)port << 8 | 1u;
}

static int lookup(struct net_switch *sw, const uint8_t *mac)
{
	uint64_t key = mac48(mac);
	unsigned int base = mac_slot(key);

	for (unsigned int k = 0; k < NET_SW_PROBE; k++) {
		uint64_t e = atomic_load_explicit(&sw->macs[(base + k) & (NET_SW_MACS - 1)],
						  memory_order_relaxed);

		if (e && e >> 16 == key)
			return (int)((e >> 8) & 0xff);
	}
	return -1;
}

static void learn(struct net_port *p, const uint8_t *mac)
{
	struct net_switch *sw = p->sw;
	uint64_t key = mac48(mac), want = entry_of(key, p->idx);
	unsigned int base = mac_slot(key);

	for (unsigned int k = 0; k < NET_SW_PROBE; k++) {
		atomic_uint_fast64_t *slot = &sw->macs[(base + k) & (NET_SW_MACS - 1)];
		uint64_t e = atomic_load_explicit(slot, memory_order_relaxed);

		if (!e || e >> 16 != key)
			continue;
		if (e == want)
			return;
		/* The address moved to this port. */
		if (atomic_load_explicit(&p->macs, memory_order_relaxed) >= NET_SW_MAX_MACS)
			return;
		if (atomic_compare_exchange_strong(slot, &e, want)) {
			struct net_port *old = atomic_load(&sw->ports[(e >> 8) & 0xff]);

			if (old)
				atomic_fetch_sub(&old->macs, 1);
			atomic_fetch_add(&p->macs, 1);
		}
		return;
	}
	if (atomic_load_explicit(&p->macs, memory_order_relaxed) >= NET_SW_MAX_MACS)
		return;
	for (unsigned int k = 0; k < NET_SW_PROBE; k++) {
		atomic_uint_fast64_t *slot = &sw->macs[(base + k) & (NET_SW_MACS - 1)];
		uint64_t e = 0;

		if (atomic_compare_exchange_strong(slot, &e, want)) {
			atomic_fetch_add(&p->macs, 1);
			return;
		}
	}
	/* The window is full: this address stays unknown and is flooded to. */
}

static void forget(struct net_port *p)
{
	struct net_switch *sw = p->sw;

	for (unsigned int i = 0; i < NET_SW_MACS; i++) {
		uint64_t e = atomic_load(&sw->macs[i]);

		if (e && ((e >> 8) & 0xff) == p->idx &&
		    atomic_compare_exchange_strong(&sw->macs[i], &e, 0))
			atomic_fetch_sub(&p->macs, 1);
	}
}

/* ---- forwarding ---- */

static bool port_takes(struct net_port *d)
{
	return d && atomic_load_explicit(&d->up, memory_order_acquire);
}

/* Receive queues that got frames in one handler call, to wake. */
struct touched {
	uint64_t ports;
	uint16_t pairs[NET_SW_MAX_PORTS];
};

static void deliver(struct net_port *p, struct net_port *d, unsigned int to,
		    struct net_frame *f, unsigned int h, struct touched *t, unsigned int qidx)
{
	unsigned int pr = steer(d, h);

	if (!enqueue(p->sw, &d->inq[pr], p->idx, f)) {
		net_count_drop(viod_dev_priv(p->dev), qidx, NET_DROP_DST_FULL);
		return;
	}
	t->ports |= 1ull << to;
	t->pairs[to] |= (uint16_t)(1u << pr);
}

/*
 * Sends f (flow hash h) from port p to where its destination lives (or
 * everywhere), noting the receive queues that got a frame in *t; counts
 * drops on queue qidx of p's device (none for frames from the control
 * thread).
 */
static void forward(struct net_port *p, struct net_frame *f, unsigned int h,
		    struct touched *t, unsigned int qidx)
{
	struct net_switch *sw = p->sw;
	struct net *n = viod_dev_priv(p->dev);
	const uint8_t *dst = f->data, *src = f->data + 6;
	int to = -1;

	if (!(src[0] & 1))
		learn(p, src);
	if (!(dst[0] & 1))
		to = lookup(sw, dst);
	if (to >= 0) {
		struct net_port *d = atomic_load_explicit(&sw->ports[to], memory_order_acquire);

		if ((unsigned int)to == p->idx)
			return; /* never back out of the port it came in */
		if (!port_takes(d))
			net_count_drop(n, qidx, NET_DROP_LINK_DOWN);
		else
			deliver(p, d, (unsigned int)to, f, h, t, qidx);
		return;
	}
	for (uint64_t m = atomic_load_explicit(&sw->up_mask, memory_order_acquire) &
			  ~(1ull << p->idx); m; m &= m - 1) {
		unsigned int i = (unsigned int)__builtin_ctzll(m);
		struct net_port *d = atomic_load_explicit(&sw->ports[i], memory_order_acquire);

		if (port_takes(d))
			deliver(p, d, i, f, h, t, qidx);
	}
}

/* Has every receive queue in t look at its inbound queue. */
static void wake(struct net_switch *sw, const struct touched *t)
{
	for (uint64_t m = t->ports; m; m &= m - 1) {
		unsigned int i = (unsigned int)__builtin_ctzll(m);
		struct net_port *d = atomic_load_explicit(&sw->ports[i], memory_order_acquire);

		if (!port_takes(d))
			continue;
		for (unsigned int pm = t->pairs[i]; pm; pm &= pm - 1)
			viod_dev_queue_wake(d->dev, 2u * (unsigned int)__builtin_ctz(pm));
	}
}

enum viod_serve net_switch_tx(struct viod_dev *dev, struct viod_queue *q)
{
	struct net *n = viod_dev_priv(dev);
	struct net_port *p = n->port;
	unsigned int qi = viod_queue_index(q), pair = qi / 2u, budget = NET_BUDGET;
	size_t hlen = (size_t)atomic_load_explicit(&n->hdr_len, memory_order_relaxed);
	struct virtio_net_hdr_mrg_rxbuf h;
	struct touched t;
	struct viod_req *r;

	if (!p->scratch[pair])
		p->scratch[pair] = g_malloc(NET_GSO_FRAME_MAX);
	t.ports = 0;
	memset(t.pairs, 0, sizeof(t.pairs));
	while ((r = net_tx_pop(dev, q, hlen, &h, &budget))) {
		struct net_frame f = { .hdr = h.hdr, .data = p->scratch[pair] };
		unsigned int fh;

		f.len = (uint32_t)(r->out_len - hlen);
		viod_iov_to_buf(r->iov, r->out_num, hlen, f.data, f.len);
		viod_queue_complete(q, r, 0);
		f.hdr.flags &= (uint8_t)~VIRTIO_NET_HDR_F_DATA_VALID;
		fh = flow_hash(&f);
		/* Replies of this flow come back on this pair. */
		if (p->pairs > 1 && fh &&
		    atomic_load_explicit(&p->flow_pair[fh], memory_order_relaxed) != pair)
			atomic_store_explicit(&p->flow_pair[fh], (uint8_t)pair, memory_order_relaxed);
		forward(p, &f, fh, &t, qi);
		net_count_frame(n, qi, f.len);
	}
	if (t.ports)
		wake(p->sw, &t);
	if (budget == NET_BUDGET)
		return VIOD_SERVE_IDLE;
	viod_dev_counters_changed(dev);
	return VIOD_SERVE_PROGRESS;
}

enum viod_serve net_switch_rx(struct viod_dev *dev, struct viod_queue *q)
{
	struct net *n = viod_dev_priv(dev);
	struct net_port *p = n->port;
	struct net_inq *in = &p->inq[viod_queue_index(q) / 2u];
	unsigned int done = 0;
	bool stalled = false;

	while (done < NET_BUDGET) {
		struct net_cell *c;
		struct net_frame f;
		uint64_t pos;

		c = peek(in, &pos);
		if (!c)
			break;
		f = (struct net_frame){ .hdr = c->hdr, .len = c->len,
					.data = c->big ? c->big : c->data };
		if (net_rx_deliver(dev, q, &f) == -ENOBUFS) {
			stalled = true;
			break;
		}
		consume(in, c, pos);
		done++;
	}
	if (done) {
		viod_dev_counters_changed(dev);
		return VIOD_SERVE_PROGRESS;
	}
	/* Frames wait and the ring is dry: the guest's kick brings us back.
	 * Nothing waits: a sender's wake does. */
	return stalled ? VIOD_SERVE_IDLE : VIOD_SERVE_BLOCKED;
}

void net_switch_inject(struct net_port *p, const uint8_t *frame, uint32_t len)
{
	uint8_t copy[NET_ETH_MIN];
	struct net_frame f = { .len = len, .data = copy };
	struct touched t = { 0 };

	if (len > sizeof(copy) || len < NET_ETH_HLEN)
		return;
	memcpy(copy, frame, len);
	forward(p, &f, 0, &t, UINT32_MAX);
	wake(p->sw, &t);
}

/* ---- ports ---- */

void net_switch_port_up(struct net_port *p, bool up)
{
	if (atomic_exchange(&p->up, up) == up)
		return;
	if (up) {
		atomic_fetch_or(&p->sw->up_mask, 1ull << p->idx);
	} else {
		atomic_fetch_and(&p->sw->up_mask, ~(1ull << p->idx));
		forget(p);
	}
}

unsigned int net_switch_port_count(const struct net_port *p)
{
	return atomic_load(&p->sw->nopen);
}

unsigned int net_switch_port_macs(const struct net_port *p)
{
	return atomic_load(&p->macs);
}

int net_switch_port_open(struct viod_dev *dev, const char *name, unsigned int pairs,
			 struct net_port **out, GError **err)
{
	struct net_switch *sw;
	struct net_port *p = NULL;
	int rc = 0;

	pthread_mutex_lock(&registry_lock);
	if (!registry)
		registry = g_hash_table_new(g_str_hash, g_str_equal);
	sw = g_hash_table_lookup(registry, name);
	if (!sw) {
		sw = g_new0(struct net_switch, 1);
		sw->name = g_strdup(name);
		g_hash_table_insert(registry, sw->name, sw);
	}
	for (unsigned int i = 0; i < NET_SW_MAX_PORTS && !p; i++) {
		if (atomic_load(&sw->ports[i]))
			continue;
		p = g_new0(struct net_port, 1);
		p->sw = sw;
		p->dev = dev;
		p->idx = i;
		p->pairs = pairs;
		for (unsigned int k = 0; k < pairs; k++) {
			p->inq[k].cells = g_new0(struct net_cell, NET_SW_CELLS);
			for (unsigned int c = 0; c < NET_SW_CELLS; c++)
				atomic_init(&p->inq[k].cells[c].seq, c);
		}
		atomic_store(&p->open, true);
		atomic_store(&sw->ports[i], p);
	}
	if (!p) {
		g_set_error(err, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
			    "switch %s already has %u ports", name, NET_SW_MAX_PORTS);
		rc = -ENOSPC;
	} else {
		sw->refs++;
		atomic_fetch_add(&sw->nopen, 1);
	}
	if (!sw->refs) {
		g_hash_table_remove(registry, sw->name);
		g_free(sw->name);
		g_free(sw);
	}
	pthread_mutex_unlock(&registry_lock);
	*out = p;
	return rc;
}

void net_switch_port_close(struct net_port *p)
{
	struct net_switch *sw = p->sw;

	net_switch_port_up(p, false);
	atomic_store(&p->open, false);
	pthread_mutex_lock(&registry_lock);
	atomic_fetch_sub(&sw->nopen, 1);
	if (--sw->refs == 0) {
		g_hash_table_remove(registry, sw->name);
		for (unsigned int i = 0; i < NET_SW_MAX_PORTS; i++) {
			struct net_port *q = atomic_load(&sw->ports[i]);

			if (!q)
				continue;
			net_switch_port_flush(q);
			for (unsigned int k = 0; k < NET_MAX_PAIRS; k++) {
				g_free(q->scratch[k]);
				g_free(q->inq[k].cells);
			}
			g_free(q);
		}
		g_free(sw->name);
		g_free(sw);
	}
	pthread_mutex_unlock(&registry_lock);
}
