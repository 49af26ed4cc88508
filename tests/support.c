/* Helpers shared by the tests (support.h). */
#include "support.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>
#include <glib.h>
#include <linux/virtio_ring.h>

#include "guest/frontend.h"
#include "guest/viornd.h"
#include "viod/store.h"

int test_count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

int test_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = 2 };
	int s;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -1;
	s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -1;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	if (setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0 ||
	    connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(s);
		return -1;
	}
	return s;
}

bool test_rng_serves(const char *path)
{
	struct viod_fe fe;
	struct viornd sc;
	uint8_t buf[256] = { 0 }, zero[256] = { 0 };
	bool good = false;

	if (viod_fe_init(&fe, NULL) < 0)
		return false;
	if (viod_fe_connect(&fe, path) == 0 && viornd_attach(&sc, &fe, NULL) == 0) {
		good = viornd_read(&sc, buf, sizeof(buf)) == 0 &&
		       memcmp(buf, zero, sizeof(buf)) != 0;
		viornd_detach(&sc);
	}
	if (!good)
		printf("# rng on %s: %s\n", path, viod_fe_strerror(&fe));
	viod_fe_disconnect(&fe);
	return good;
}

void test_fake_map_table(struct viod_mem *mem, void **maps, size_t *map_len,
			 const struct viod_vu_mem_table *t, const int *fds,
			 unsigned int nfds)
{
	mem->nregions = 0;
	for (unsigned int i = 0; i < t->nregions && i < nfds; i++) {
		const struct viod_vu_region *r = &t->regions[i];
		void *p = mmap(NULL, r->size + r->mmap_offset, PROT_READ | PROT_WRITE,
			       MAP_SHARED, fds[i], 0);

		if (p == MAP_FAILED)
			continue;
		maps[i] = p;
		map_len[i] = r->size + r->mmap_offset;
		mem->regions[mem->nregions++] = (struct viod_mem_region){
			.gpa = r->gpa, .size = r->size, .uva = r->uva,
			.host = (uint8_t *)p + r->mmap_offset,
		};
	}
}

bool test_fake_start_ring(struct viod_vq *vq, const struct viod_mem *mem, uint32_t num,
			  const struct vhost_vring_addr *addr, uint16_t base,
			  uint64_t acked)
{
	void *desc = viod_mem_map_uva(mem, addr->desc_user_addr, viod_vring_desc_size(num));
	void *avail = viod_mem_map_uva(mem, addr->avail_user_addr, viod_vring_avail_size(num));
	void *used = viod_mem_map_uva(mem, addr->used_user_addr, viod_vring_used_size(num));

	if (!desc || !avail || !used)
		return false;
	viod_vq_init(vq, mem, (uint16_t)num, desc, avail, used, base,
		     acked >> VIRTIO_RING_F_EVENT_IDX & 1,
		     acked >> VIRTIO_RING_F_INDIRECT_DESC & 1);
	return true;
}

long long test_store_ll(const char *ctl, const char *path)
{
	g_autoptr(GError) err = NULL;
	g_autoptr(ViodStoreClient) c = viod_store_client_connect(ctl, &err);
	g_autofree char *v = c ? viod_store_client_read(c, path, &err) : NULL;

	return v ? strtoll(v, NULL, 10) : -1;
}

long long test_store_ll_when(const char *ctl, const char *path, long long want,
			     int timeout_ms)
{
	int64_t end = g_get_monotonic_time() + (int64_t)timeout_ms * 1000;
	long long v;

	while ((v = test_store_ll(ctl, path)) != want && g_get_monotonic_time() < end)
		g_usleep(10000);
	return v;
}

/* ---- a vioif guest ---- */

bool test_vioif_attach(struct viod_fe *fe, struct vioif *sc, const char *path,
		       const struct vioif_opts *o)
{
	struct viod_fe_opts fo;

	memset(sc, 0, sizeof(*sc));
	viod_fe_opts_init(&fo);
	fo.mem_size = 16u << 20;
	if (viod_fe_init(fe, &fo) < 0) {
		printf("# vioif on %s: %s\n", path, viod_fe_strerror(fe));
		return false;
	}
	if (viod_fe_connect(fe, path) < 0 || vioif_attach(sc, fe, o) < 0) {
		printf("# vioif on %s: %s\n", path, viod_fe_strerror(fe));
		test_vioif_detach(fe, sc);
		return false;
	}
	return true;
}

void test_vioif_detach(struct viod_fe *fe, struct vioif *sc)
{
	vioif_detach(sc);
	viod_fe_disconnect(fe);
}
