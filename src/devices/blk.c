/*
 * virtio block device (virtio 1.2, 5.2) on a raw image file or a block
 * device, or on nothing (backend=null: requests complete at once, no data
 * moves; for measuring the rest of the path).
 *
 * Options: path=IMAGE, backend=file|null, size=BYTES (null), read-only=on,
 * serial=STR (20 bytes at most), logical-block-size / physical-block-size,
 * num-queues=N, direct=auto|on|off (O_DIRECT; auto: where the file system
 * takes it), cache=writeback|writethrough (the initial mode; the guest may
 * change it with CONFIG_WCE), discard=on|off.
 *
 * Durability: in writeback mode a write completes when the kernel has it
 * and FLUSH completes after fdatasync(); in writethrough mode each write
 * is RWF_DSYNC. With INFLIGHT_SHMFD a restarted viod gets the requests
 * that were in flight back from the front-end, so a write that was
 * acknowledged is never lost and one that was not is done again.
 *
 * Resizing: writing a byte count to the store key image/size grows a
 * file image (or, when the file already has that size, takes note of an
 * outside resize) and tells the front-end that config space changed.
 * Shrinking is refused: it would drop the guest's data.
 */
#include "blk.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <linux/virtio_ids.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <gio/gio.h>

#include "store/store.h"
#include "vhost/proto.h"
#include "util/parse.h"

/* QEMU's vhost-user-blk reads config space with its own headers' size,
 * which include the zoned fields (virtio 1.3); they read as zero. */
#define BLK_CONFIG_SIZE 96u

#define BLK_FEATURES                                                        \
	((1ull << VIRTIO_BLK_F_SIZE_MAX) | (1ull << VIRTIO_BLK_F_SEG_MAX) | \
	 (1ull << VIRTIO_BLK_F_BLK_SIZE) | (1ull << VIRTIO_BLK_F_TOPOLOGY) | \
	 (1ull << VIRTIO_BLK_F_FLUSH) | (1ull << VIRTIO_BLK_F_CONFIG_WCE) |  \
	 (1ull << VIRTIO_BLK_F_MQ) | (1ull << VIRTIO_BLK_F_DISCARD) |        \
	 (1ull << VIRTIO_BLK_F_WRITE_ZEROES) | (1ull << VIRTIO_BLK_F_RO))

/* Largest data segment announced (size_max). */
#define BLK_SIZE_MAX (1u << 20)

static const char *const kind_names[BLK_K_MAX] = {
	[BLK_K_READ] = "read", [BLK_K_WRITE] = "write", [BLK_K_FLUSH] = "flush",
	[BLK_K_GET_ID] = "get-id", [BLK_K_DISCARD] = "discard",
	[BLK_K_WRITE_ZEROES] = "write-zeroes", [BLK_K_UNSUPPORTED] = "unsupported",
};

static bool parse_block_size(const char *value, uint32_t *out, GError **err)
{
	guint64 v;

	if (!g_ascii_string_to_unsigned(value, 10, BLK_SECTOR, 65536, &v, err))
		return false;
	if (v & (v - 1)) {
		g_set_error(err, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
			    "%s is not a power of two", value);
		return false;
	}
	*out = (uint32_t)v;
	return true;
}

static int blk_set_option(struct viod_dev *dev, const char *key, const char *value,
			  GError **err)
{
	struct blk *b = viod_dev_priv(dev);
	guint64 v;

	if (!g_strcmp0(key, "path")) {
		g_free(b->path);
		b->path = g_strdup(value);
	} else if (!g_strcmp0(key, "backend")) {
		if (g_strcmp0(value, "file") && g_strcmp0(value, "null")) {
			g_set_error(err, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
				    "expected file or null, not '%s'", value);
			return -EINVAL;
		}
		b->null_backend = !g_strcmp0(value, "null");
	} else if (!g_strcmp0(key, "size")) {
		if (!viod_parse_size(value, &b->null_size, err))
			return -EINVAL;
	} else if (!g_strcmp0(key, "read-only")) {
		if (!viod_parse_bool(value, &b->read_only, err))
			return -EINVAL;
	} else if (!g_strcmp0(key, "serial")) {
		if (strlen(value) > VIRTIO_BLK_ID_BYTES) {
			g_set_error(err, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
				    "a serial has at most %u bytes", VIRTIO_BLK_ID_BYTES);
			return -EINVAL;
		}
		memset(b->serial, 0, sizeof(b->serial));
		memcpy(b->serial, value, strlen(value));
	} else if (!g_strcmp0(key, "logical-block-size")) {
		if (!parse_block_size(value, &b->lbs, err))
			return -EINVAL;
	} else if (!g_strcmp0(key, "physical-block-size")) {
		if (!parse_block_size(value, &b->pbs, err))
			return -EINVAL;
	} else if (!g_strcmp0(key, "num-queues")) {
		if (!g_ascii_string_to_unsigned(value, 10, 1, BLK_MAX_QUEUES, &v, err))
			return -EINVAL;
		b->nqueues = (unsigned int)v;
	} else if (!g_strcmp0(key, "direct")) {
		bool on;

		if (!g_strcmp0(value, "auto"))
			b->direct = BLK_DIRECT_AUTO;
		else if (viod_parse_bool(value, &on, err))
			b->direct = on ? BLK_DIRECT_ON : BLK_DIRECT_OFF;
		else
			return -EINVAL;
	} else if (!g_strcmp0(key, "cache")) {
		if (g_strcmp0(value, "writeback") && g_strcmp0(value, "writethrough")) {
			g_set_error(err, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
				    "expected writeback or writethrough, not '%s'", value);
			return -EINVAL;
		}
		b->writethrough = !g_strcmp0(value, "writethrough");
	} else if (!g_strcmp0(key, "discard")) {
		bool on;

		if (!viod_parse_bool(value, &on, err))
			return -EINVAL;
		b->no_discard = !on;
	} else {
		return -ENOENT;
	}
	return 0;
}

static void set_capacity(struct blk *b, uint64_t bytes)
{
	uint64_t blocks = bytes / b->lbs;

	atomic_store(&b->capacity, blocks * (b->lbs / BLK_SECTOR));
}

/* O_DIRECT's alignment for fd: the kernel says (statx), or the logical
 * block size of what lies below. */
static uint32_t direct_alignment(int fd, bool blockdev)
{
	struct statx stx;
	int ssz;

	if (blockdev && ioctl(fd, BLKSSZGET, &ssz) == 0 && ssz > 0)
		return (uint32_t)ssz;
	if (statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) == 0 &&
	    (stx.stx_mask & STATX_DIOALIGN) && stx.stx_dio_offset_align) {
		uint32_t a = stx.stx_dio_offset_align > stx.stx_dio_mem_align ?
			     stx.stx_dio_offset_align : stx.stx_dio_mem_align;

		return a < BLK_SECTOR ? BLK_SECTOR : a;
	}
	return 4096;
}

static int open_image(struct blk *b, GError **err)
{
	int flags = (b->read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC;
	struct stat st;
	int64_t size;

	b->fd_buffered = open(b->path, flags);
	if (b->fd_buffered < 0) {
		g_set_error(err, G_FILE_ERROR, g_file_error_from_errno(errno),
			    "cannot open image %s: %s", b->path, g_strerror(errno));
		return -errno;
	}
	if (fstat(b->fd_buffered, &st) < 0 || (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))) {
		g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_INVAL,
			    "image %s is neither a regular file nor a block device", b->path);
		return -EINVAL;
	}
	b->is_blockdev = S_ISBLK(st.st_mode);
	b->fd = -1;
	if (b->direct != BLK_DIRECT_OFF) {
		b->fd = open(b->path, flags | O_DIRECT);
		if (b->fd < 0 && b->direct == BLK_DIRECT_ON) {
			g_set_error(err, G_FILE_ERROR, g_file_error_from_errno(errno),
				    "image %s: O_DIRECT: %s", b->path, g_strerror(errno));
			return -errno;
		}
	}
	b->is_direct = b->fd >= 0;
	if (!b->is_direct)
		b->fd = b->fd_buffered;
	else
		b->dio_align = direct_alignment(b->fd, b->is_blockdev);
	size = blk_image_size(b->fd_buffered, b->is_blockdev);
	if (size < (int64_t)b->lbs) {
		g_set_error(err, G_FILE_ERROR, G_FILE_ERROR_INVAL,
			    "image %s: %s", b->path,
			    size < 0 ? g_strerror((int)-size) : "smaller than one logical block");
		return -EINVAL;
	}
	set_capacity(b, (uint64_t)size);
	return 0;
}

static void blk_fini(struct viod_dev *dev)
{
	struct blk *b = viod_dev_priv(dev);

	if (b->fd >= 0 && b->fd != b->fd_buffered)
		close(b->fd);
	if (b->fd_buffered >= 0)
		close(b->fd_buffered);
	b->fd = b->fd_buffered = -1;
	g_clear_pointer(&b->workers, g_free);
	g_clear_pointer(&b->path, g_free);
}

static int blk_init(struct viod_dev *dev, GError **err)
{
	struct blk *b = viod_dev_priv(dev);
	uint64_t features = BLK_FEATURES;

	if (!b->lbs)
		b->lbs = BLK_SECTOR;
	if (!b->pbs)
		b->pbs = b->lbs;
	if (b->pbs < b->lbs) {
		g_set_error(err, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
			    "physical-block-size %u is below logical-block-size %u", b->pbs, b->lbs);
		return -EINVAL;
	}
	if (!b->nqueues)
		b->nqueues = 1;
	b->fd = b->fd_buffered = -1;
	if (b->null_backend) {
		if (b->path) {
			g_set_error(err, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
				    "backend=null takes size=, not path=");
			return -EINVAL;
		}
		if (!b->null_size)
			b->null_size = 1ull << 30;
		if (b->null_size < b->lbs) {
			g_set_error(err, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
				    "size is smaller than one logical block");
			return -EINVAL;
		}
		set_capacity(b, b->null_size);
	} else {
		int rc;

		if (!b->path) {
			g_set_error(err, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
				    "a blk device needs path=IMAGE (or backend=null)");
			return -EINVAL;
		}
		if (b->null_size) {
			g_set_error(err, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
				    "size= is for backend=null; an image has its own size");
			return -EINVAL;
		}
		if ((rc = open_image(b, err)) < 0) {
			blk_fini(dev);
			return rc;
		}
	}
	if (!b->read_only)
		features &= ~(1ull << VIRTIO_BLK_F_RO);
	else
		features &= ~((1ull << VIRTIO_BLK_F_DISCARD) | (1ull << VIRTIO_BLK_F_WRITE_ZEROES) |
			      (1ull << VIRTIO_BLK_F_CONFIG_WCE));
	/* GET_ID answers the device id unless a serial was given. */
	if (!b->serial[0])
		g_strlcpy(b->serial, viod_dev_id(dev), sizeof(b->serial));
	if (b->no_discard)
		features &= ~(1ull << VIRTIO_BLK_F_DISCARD);
	viod_dev_offer_features(dev, features);
	viod_dev_set_num_queues(dev, b->nqueues);
	atomic_store(&b->wce, !b->writethrough);
	b->nworkers = viod_dev_workers(dev);
	b->workers = g_new0(struct blk_worker, b->nworkers);
	return 0;
}

static unsigned int blk_queue_worker(struct viod_dev *dev, unsigned int qidx)
{
	return qidx % viod_dev_workers(dev);
}

/* Config space (5.2.4), little-endian. */
static void blk_config_read(struct viod_dev *dev, uint32_t off, void *buf, uint32_t len)
{
	struct blk *b = viod_dev_priv(dev);
	uint8_t raw[BLK_CONFIG_SIZE] = { 0 };
	struct virtio_blk_config *c = (struct virtio_blk_config *)raw;
	unsigned int exp = 0;
	uint32_t per_block = b->lbs / BLK_SECTOR;

	G_STATIC_ASSERT(sizeof(struct virtio_blk_config) <= BLK_CONFIG_SIZE);
	while ((b->lbs << exp) < b->pbs)
		exp++;
	c->capacity = htole64(atomic_load(&b->capacity));
	c->size_max = htole32(BLK_SIZE_MAX);
	c->seg_max = htole32(BLK_SEG_MAX);
	c->blk_size = htole32(b->lbs);
	c->physical_block_exp = (uint8_t)exp;
	c->alignment_offset = 0;
	c->min_io_size = htole16(1);
	c->opt_io_size = htole32(0);
	c->wce = atomic_load(&b->wce) ? 1 : 0;
	c->num_queues = htole16((uint16_t)b->nqueues);
	c->max_discard_sectors = htole32(BLK_MAX_DISCARD_SECTORS);
	c->max_discard_seg = htole32(BLK_MAX_DISCARD_SEG);
	c->discard_sector_alignment = htole32(per_block);
	c->max_write_zeroes_sectors = htole32(BLK_MAX_DISCARD_SECTORS);
	c->max_write_zeroes_seg = htole32(BLK_MAX_DISCARD_SEG);
	c->write_zeroes_may_unmap = 1;
	memcpy(buf, raw + off, len);
}

/* Only the cache mode is writable, and only with CONFIG_WCE (5.2.5). */
static int blk_config_write(struct viod_dev *dev, uint32_t off, const void *buf, uint32_t len)
{
	struct blk *b = viod_dev_priv(dev);
	uint32_t wce_off = offsetof(struct virtio_blk_config, wce);

	if (!viod_has_feature(viod_dev_features(dev), VIRTIO_BLK_F_CONFIG_WCE) ||
	    off > wce_off || off + len <= wce_off) {
		viod_dev_warn(dev, "config write of %u bytes at %u ignored: only wce is writable",
			      len, off);
		return 0;
	}
	atomic_store(&b->wce, ((const uint8_t *)buf)[wce_off - off] != 0);
	viod_dev_state_changed(dev);
	return 0;
}

/* Without FLUSH the guest cannot ask for durability: write through. */
static void blk_features_changed(struct viod_dev *dev, uint64_t features)
{
	struct blk *b = viod_dev_priv(dev);

	atomic_store(&b->wce, !b->writethrough &&
			      viod_has_feature(features, VIRTIO_BLK_F_FLUSH));
}

static void blk_reset(struct viod_dev *dev)
{
	struct blk *b = viod_dev_priv(dev);

	atomic_store(&b->wce, !b->writethrough);
}

static uint64_t image_bytes(const struct blk *b)
{
	return atomic_load(&b->capacity) * BLK_SECTOR;
}

static void blk_store_publish(struct viod_dev *dev, struct viod_store *st, const char *prefix)
{
	struct blk *b = viod_dev_priv(dev);
	uint64_t req[BLK_K_MAX] = { 0 }, rd = 0, wr = 0, errors = 0, done = 0, started = 0;

	for (unsigned int i = 0; b->workers && i < b->nworkers; i++) {
		struct blk_counters *c = &b->workers[i].c;

		for (unsigned int k = 0; k < BLK_K_MAX; k++)
			req[k] += atomic_load_explicit(&c->requests[k], memory_order_relaxed);
		rd += atomic_load_explicit(&c->bytes_read, memory_order_relaxed);
		wr += atomic_load_explicit(&c->bytes_written, memory_order_relaxed);
		errors += atomic_load_explicit(&c->errors, memory_order_relaxed);
		started += atomic_load_explicit(&c->started, memory_order_relaxed);
	}
	for (unsigned int k = 0; k < BLK_K_MAX; k++) {
		g_autofree char *key = g_strdup_printf("requests/%s", kind_names[k]);

		viod_store_setf_under(st, prefix, key, "%" PRIu64, req[k]);
		done += req[k];
	}
	viod_store_setf_under(st, prefix, "bytes/read", "%" PRIu64, rd);
	viod_store_setf_under(st, prefix, "bytes/written", "%" PRIu64, wr);
	viod_store_setf_under(st, prefix, "errors", "%" PRIu64, errors);
	done = started - done;
	viod_store_setf_under(st, prefix, "in-flight", "%" PRIu64, (int64_t)done < 0 ? 0 : done);
	viod_store_setf_under(st, prefix, "image/size", "%" PRIu64, image_bytes(b));
	viod_store_setf_under(st, prefix, "cache", "%s",
			      atomic_load(&b->wce) ? "writeback" : "writethrough");
}

/* image/size: resize a file image (or take note of an outside resize). */
static gboolean write_size(struct viod_store *st, const char *path, const char *value,
			   gpointer opaque, GError **err)
{
	struct viod_dev *dev = opaque;
	struct blk *b = viod_dev_priv(dev);
	guint64 want;
	int64_t have;

	if (!viod_parse_size(value, &want, err))
		return FALSE;
	if (want < b->lbs) {
		g_set_error(err, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
			    "smaller than one logical block (%u bytes)", b->lbs);
		return FALSE;
	}
	if (b->null_backend) {
		b->null_size = want;
	} else {
		have = blk_image_size(b->fd_buffered, b->is_blockdev);
		if (have < 0) {
			g_set_error(err, G_IO_ERROR, g_io_error_from_errno((int)-have),
				    "%s: %s", b->path, g_strerror((int)-have));
			return FALSE;
		}
		if ((uint64_t)have > want) {
			/* Shrinking drops the guest's data (and may take long
			 * on the control thread): refused. */
			g_set_error(err, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
				    "%s has %" PRId64 " bytes: shrinking an image is refused",
				    b->path, have);
			return FALSE;
		}
		if ((uint64_t)have != want) {
			if (b->read_only || b->is_blockdev) {
				g_set_error(err, G_IO_ERROR, G_IO_ERROR_PERMISSION_DENIED,
					    "%s is %s: it can only be rescanned (write its size, %" PRId64 ")",
					    b->path, b->read_only ? "read-only" : "a block device", have);
				return FALSE;
			}
			if (ftruncate(b->fd_buffered, (off_t)want) < 0) {
				g_set_error(err, G_IO_ERROR, g_io_error_from_errno(errno),
					    "%s: %s", b->path, g_strerror(errno));
				return FALSE;
			}
		}
	}
	set_capacity(b, want);
	g_message("%s: capacity now %" PRIu64 " sectors", viod_dev_id(dev),
		  (uint64_t)atomic_load(&b->capacity));
	if (viod_dev_connected(dev))
		viod_dev_config_changed(dev);
	viod_dev_state_changed(dev);
	return TRUE;
}

static void blk_store_attach(struct viod_dev *dev, struct viod_store *st, const char *prefix)
{
	struct blk *b = viod_dev_priv(dev);
	g_autofree char *size = g_strdup_printf("%s/image/size", prefix);

	viod_store_setf_under(st, prefix, "backend", "%s", b->null_backend ? "null" : "file");
	viod_store_setf_under(st, prefix, "image/path", "%s", b->path ? b->path : "");
	viod_store_setf_under(st, prefix, "image/read-only", "%s", b->read_only ? "on" : "off");
	viod_store_setf_under(st, prefix, "image/direct", "%s", b->is_direct ? "on" : "off");
	viod_store_setf_under(st, prefix, "logical-block-size", "%u", b->lbs);
	viod_store_setf_under(st, prefix, "num-queues", "%u", b->nqueues);
	blk_store_publish(dev, st, prefix);
	viod_store_set_writable(st, size, write_size, dev);
}

static const struct viod_device_ops blk_ops = {
	.type = "blk",
	.virtio_id = VIRTIO_ID_BLOCK,
	.features = BLK_FEATURES,
	.protocol_features = 1ull << VU_PF_INFLIGHT_SHMFD,
	.num_queues = 1,
	.config_size = BLK_CONFIG_SIZE,
	.priv_size = sizeof(struct blk),
	.queue_depth = BLK_QUEUE_DEPTH,
	.max_iov = BLK_MAX_IOV,
	.req_priv_size = sizeof(struct blk_req),
	.set_option = blk_set_option,
	.init = blk_init,
	.fini = blk_fini,
	.queue_worker = blk_queue_worker,
	.worker_start = blk_worker_start,
	.worker_stop = blk_worker_stop,
	.queue_handler = blk_queue,
	.queue_drain = blk_queue_drain,
	.config_read = blk_config_read,
	.config_write = blk_config_write,
	.features_changed = blk_features_changed,
	.reset = blk_reset,
	.store_attach = blk_store_attach,
	.store_publish = blk_store_publish,
};
VIOD_DEVICE_REGISTER(blk_ops)
