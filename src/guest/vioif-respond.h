/*
 * A minimal IPv4 host for the vioif reference driver: answers ARP
 * requests (RFC 826) for its address and ICMP echo requests (RFC 792)
 * sent to it, so that a guest can ping a port that vioguest drives.
 * Pure frame in, frame out; the frames come from an untrusted peer.
 */
#ifndef VIOD_GUEST_VIOIF_RESPOND_H
#define VIOD_GUEST_VIOIF_RESPOND_H

#include <stddef.h>
#include <stdint.h>

struct vioif_responder {
	uint8_t mac[6];
	uint8_t ip[4];          /* network order */
};

enum vioif_respond_kind { VIOIF_RESPOND_NONE, VIOIF_RESPOND_ARP, VIOIF_RESPOND_ICMP };

/*
 * If the Ethernet frame in[0 .. len) is an ARP request for r->ip, or an
 * unfragmented IPv4 ICMP echo request to r->ip with valid IP and ICMP
 * checksums, writes the reply to out (cap bytes; at least 60, the
 * minimum frame, which a reply is padded to) and returns its length,
 * with *kind (may be NULL) saying which. Returns 0 for anything else,
 * including malformed or truncated frames and replies above cap; never
 * reads past len.
 */
size_t vioif_respond(const struct vioif_responder *r, const uint8_t *in, size_t len,
		     uint8_t *out, size_t cap, enum vioif_respond_kind *kind);

/* The Internet checksum (RFC 1071) of p[0 .. len). */
uint16_t vioif_inet_csum(const uint8_t *p, size_t len);

#endif
