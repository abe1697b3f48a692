/*
 * Limits against floods, per worker: connections per client address, WebSocket handshakes
 * per second per address (a token bucket), and which peers are trusted proxies whose
 * X-Forwarded-For names the real client. Addresses are kept as IPv6 (IPv4 mapped); an entry
 * lives while it holds a connection or its bucket is refilling.
 */
#ifndef CHAT_GATEWAY_LIMITS_H
#define CHAT_GATEWAY_LIMITS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct gw_limits;

/* A client address (IPv6, IPv4 mapped). */
struct gw_addr {
    uint8_t b[16];
};

/* Limits for per_ip connections per address and rate handshakes per second (burst: twice
 * that) per address; trusted is a comma list of CIDRs ("10.0.0.0/8, ::1/128") or NULL.
 * Returns NULL with a message in err for a malformed list. */
struct gw_limits *gw_limits_new(unsigned per_ip, unsigned rate, const char *trusted, char *err,
                                size_t errlen);
void gw_limits_free(struct gw_limits *l);

/* The address of sa (AF_INET or AF_INET6); other families map to all zeros. */
struct gw_addr gw_addr_from_sockaddr(const struct sockaddr *sa);

/* 1 if peer is a trusted proxy, else 0. */
int gw_limits_is_trusted(const struct gw_limits *l, const struct gw_addr *peer);

/*
 * The client behind a trusted proxy: the rightmost address of the X-Forwarded-For value
 * xff[0..len) that is not itself a trusted proxy. Returns 0 with *client set, or -1 when the
 * value holds no usable address (the caller keeps the peer's).
 */
int gw_limits_forwarded(const struct gw_limits *l, const char *xff, size_t len,
                        struct gw_addr *client);

/* Count one more connection from a; returns 0, or -1 (not counted) past the per-address
 * limit. Pair each 0 with gw_limits_release. */
int gw_limits_acquire(struct gw_limits *l, const struct gw_addr *a);
void gw_limits_release(struct gw_limits *l, const struct gw_addr *a);

/* Take a handshake token for a at now_ms; returns 0, or -1 when a is over its rate. */
int gw_limits_handshake(struct gw_limits *l, const struct gw_addr *a, uint64_t now_ms);

#endif
