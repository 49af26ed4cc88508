/*
 * vhost-user wire format (QEMU docs/interop/vhost-user.rst), shared by the
 * back-end server and the userspace front-end. Every structure is packed
 * and in host byte order, as the protocol requires.
 */
#ifndef VIOD_VHOST_PROTO_H
#define VIOD_VHOST_PROTO_H

#include <stdint.h>
#include <linux/vhost_types.h>

enum viod_vu_request {
	VU_NONE = 0,
	VU_GET_FEATURES = 1,
	VU_SET_FEATURES = 2,
	VU_SET_OWNER = 3,
	VU_RESET_OWNER = 4,
	VU_SET_MEM_TABLE = 5,
	VU_SET_LOG_BASE = 6,
	VU_SET_LOG_FD = 7,
	VU_SET_VRING_NUM = 8,
	VU_SET_VRING_ADDR = 9,
	VU_SET_VRING_BASE = 10,
	VU_GET_VRING_BASE = 11,
	VU_SET_VRING_KICK = 12,
	VU_SET_VRING_CALL = 13,
	VU_SET_VRING_ERR = 14,
	VU_GET_PROTOCOL_FEATURES = 15,
	VU_SET_PROTOCOL_FEATURES = 16,
	VU_GET_QUEUE_NUM = 17,
	VU_SET_VRING_ENABLE = 18,
	VU_SEND_RARP = 19,
	VU_NET_SET_MTU = 20,
	VU_SET_BACKEND_REQ_FD = 21,
	VU_IOTLB_MSG = 22,
	VU_SET_VRING_ENDIAN = 23,
	VU_GET_CONFIG = 24,
	VU_SET_CONFIG = 25,
	VU_GET_INFLIGHT_FD = 31,
	VU_SET_INFLIGHT_FD = 32,
	VU_RESET_DEVICE = 34,
	VU_VRING_KICK = 35,
	VU_GET_MAX_MEM_SLOTS = 36,
	VU_ADD_MEM_REG = 37,
	VU_REM_MEM_REG = 38,
	VU_SET_STATUS = 39,
	VU_GET_STATUS = 40,
	VU_REQUEST_MAX = 64,
};

/* Requests the back-end sends on the back-end channel. */
enum viod_vu_backend_request {
	VU_BACKEND_IOTLB_MSG = 1,
	VU_BACKEND_CONFIG_CHANGE_MSG = 2,
};

enum viod_vu_protocol_feature {
	VU_PF_MQ = 0,
	VU_PF_LOG_SHMFD = 1,
	VU_PF_RARP = 2,
	VU_PF_REPLY_ACK = 3,
	VU_PF_NET_MTU = 4,
	VU_PF_BACKEND_REQ = 5,
	VU_PF_CROSS_ENDIAN = 6,
	VU_PF_CRYPTO_SESSION = 7,
	VU_PF_PAGEFAULT = 8,
	VU_PF_CONFIG = 9,
	VU_PF_BACKEND_SEND_FD = 10,
	VU_PF_HOST_NOTIFIER = 11,
	VU_PF_INFLIGHT_SHMFD = 12,
	VU_PF_RESET_DEVICE = 13,
	VU_PF_INBAND_NOTIFICATIONS = 14,
	VU_PF_CONFIGURE_MEM_SLOTS = 15,
	VU_PF_STATUS = 16,
};

/* Virtio feature bit 30, reused by vhost-user to gate protocol features. */
#define VHOST_USER_F_PROTOCOL_FEATURES 30

#define VU_FLAG_VERSION 0x1u
#define VU_FLAG_VERSION_MASK 0x3u
#define VU_FLAG_REPLY (1u << 2)
#define VU_FLAG_NEED_REPLY (1u << 3)

#define VU_VRING_IDX_MASK 0xffu
#define VU_VRING_NOFD (1u << 8)

/* SET_MEM_TABLE carries at most this many regions (and as many fds). */
#define VU_MEM_TABLE_MAX 8
#define VU_MAX_FDS 8
#define VU_MAX_CONFIG_SIZE 256

struct viod_vu_region {
	uint64_t gpa;
	uint64_t size;
	uint64_t uva;
	uint64_t mmap_offset;
} __attribute__((packed));

struct viod_vu_mem_table {
	uint32_t nregions;
	uint32_t padding;
	struct viod_vu_region regions[VU_MEM_TABLE_MAX];
} __attribute__((packed));

struct viod_vu_mem_reg {
	uint64_t padding;
	struct viod_vu_region region;
} __attribute__((packed));

struct viod_vu_config {
	uint32_t offset;
	uint32_t size;
	uint32_t flags;
	uint8_t data[VU_MAX_CONFIG_SIZE];
} __attribute__((packed));

#define VU_CONFIG_HDR_SIZE 12u

/*
 * GET/SET_INFLIGHT_FD payload. Not packed in QEMU's definition, so it is
 * 24 bytes on the wire (4 of tail padding); libvhost-user checks the same.
 */
struct viod_vu_inflight {
	uint64_t mmap_size;
	uint64_t mmap_offset;
	uint16_t num_queues;
	uint16_t queue_size;
	uint32_t padding;
} __attribute__((packed));

#define VU_INFLIGHT_SIZE 24u

/*
 * The inflight region for split rings (vhost-user.rst, "Inflight I/O
 * tracking"): one QueueRegionSplit per queue, each 64-byte aligned.
 * Natural alignment gives exactly the layout QEMU and libvhost-user use
 * (16-byte header, 16-byte entries).
 */
struct viod_inflight_desc {
	uint8_t inflight;
	uint8_t padding[5];
	uint16_t next;
	uint64_t counter;
};

struct viod_inflight_queue {
	uint64_t features;
	uint16_t version;
	uint16_t desc_num;
	uint16_t last_batch_head;
	uint16_t used_idx;
	struct viod_inflight_desc desc[];
};

#define VU_INFLIGHT_VERSION 1u
#define VU_INFLIGHT_ALIGN 64u

/* Bytes of one queue's region for a queue of queue_size entries. */
static inline uint64_t viod_inflight_queue_size(uint16_t queue_size)
{
	uint64_t raw = sizeof(struct viod_inflight_queue) +
		       (uint64_t)queue_size * sizeof(struct viod_inflight_desc);

	return (raw + VU_INFLIGHT_ALIGN - 1) & ~(uint64_t)(VU_INFLIGHT_ALIGN - 1);
}
#define VU_SET_CONFIG_FRONTEND 0u
#define VU_SET_CONFIG_MIGRATION 1u

struct viod_vu_hdr {
	uint32_t request;
	uint32_t flags;
	uint32_t size;
} __attribute__((packed));

#define VU_HDR_SIZE sizeof(struct viod_vu_hdr)

struct viod_vu_msg {
	struct viod_vu_hdr hdr;
	union {
		uint64_t u64;
		struct vhost_vring_state state;
		struct vhost_vring_addr addr;
		struct viod_vu_mem_table mem;
		struct viod_vu_mem_reg memreg;
		struct viod_vu_config config;
		struct viod_vu_inflight inflight;
		uint8_t raw[VU_HDR_SIZE + sizeof(struct viod_vu_config)];
	} u;
} __attribute__((packed));

#define VU_PAYLOAD_MAX (sizeof(struct viod_vu_msg) - VU_HDR_SIZE)

const char *viod_vu_request_name(uint32_t req);

#endif
