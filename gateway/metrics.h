/*
 * Counters of every worker, in one shared memory area the master maps before forking, so
 * that /metrics answered by any worker shows all of them (Prometheus text, one series per
 * worker, label worker="N"). Each worker writes only its own slot; 64-bit stores are atomic
 * on the platforms we build for, so readers never see a torn value.
 */
#ifndef CHAT_GATEWAY_METRICS_H
#define CHAT_GATEWAY_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct evbuffer;
struct gw_metrics;

/* Upper bounds (ms) of the publish-to-deliver latency histogram's buckets; +Inf follows. */
#define GW_LATENCY_BUCKETS 12

/* One worker's counters. Gauges say "now", the rest only grow. */
struct gw_stats {
    uint64_t pid;             /* the worker process; 0 for a slot never used */
    uint64_t conns_total;     /* connections accepted */
    uint64_t conns_open;      /* gauge: connections open */
    uint64_t ws_open;         /* gauge: WebSocket sessions open */
    uint64_t ws_total;        /* WebSocket sessions opened */
    uint64_t http_requests;   /* HTTP requests answered, upgrades included */
    uint64_t handshake_fails; /* upgrades refused */
    uint64_t msgs_in;         /* WebSocket messages received */
    uint64_t msgs_out;        /* WebSocket messages sent */
    uint64_t bytes_in;        /* payload bytes of msgs_in */
    uint64_t bytes_out;       /* payload bytes of msgs_out (echo) */
    uint64_t slow_closes;     /* sessions closed for passing the output cap */
    uint64_t ping_timeouts;   /* sessions closed for a missing pong */
    uint64_t proto_errors;    /* sessions failed with 1002, 1007 or 1009 */
    uint64_t chat_open;       /* gauge: chat sessions open */
    uint64_t rooms;           /* gauge: rooms with a local member */
    uint64_t fanout_frames;   /* room frames from Redis fanned out */
    uint64_t deliveries;      /* frames appended to a chat client's output */
    uint64_t dropped;         /* frames not delivered: the receiver was closing */
    uint64_t chat_errors;     /* error replies sent to chat clients */
    uint64_t rate_limited;    /* chat messages refused by the token bucket */
    uint64_t limit_rejects;   /* connections or handshakes refused by a limit (503/429) */
    uint64_t tokens_rejected; /* chat upgrades refused for a missing or bad token (401) */
    uint64_t tokens_expired;  /* sessions closed because their token expired (4001) */
    uint64_t forbidden_joins; /* joins refused by a token's rooms claim */

    uint64_t redis_ready;          /* gauge: 1 while both Redis links are up */
    uint64_t redis_healthy;        /* gauge: 1 while Redis is proven by probes */
    uint64_t redis_published;      /* PUBLISH commands sent */
    uint64_t redis_publish_errors; /* publishes refused or lost with a link */
    uint64_t redis_received;       /* messages received on room and client channels */
    uint64_t redis_reconnects;     /* links established after the first */
    uint64_t redis_probes_lost;    /* probes not back in time */
    uint64_t latency_buckets[GW_LATENCY_BUCKETS + 1]; /* per bucket, not cumulative */
    uint64_t latency_sum_us;                          /* sum of the observed latencies */
};

/* A shared area for n workers (1 to 256), mapped so that children forked later share it.
 * Returns NULL with a message in err. */
struct gw_metrics *gw_metrics_new(unsigned n, char *err, size_t errlen);

/* Unmap the area; NULL does nothing. */
void gw_metrics_free(struct gw_metrics *m);

/* Worker i's slot (0-based), owned by the area. */
struct gw_stats *gw_metrics_slot(struct gw_metrics *m, unsigned i);

/* Record one publish-to-deliver latency of ms milliseconds in st. */
void gw_metrics_observe(struct gw_stats *st, uint64_t ms);

/* 1 if every worker in use reports Redis proven (redis_healthy), else 0: a gateway is
 * healthy only when any of its workers, which the kernel picks per connection, would do. */
int gw_metrics_all_healthy(const struct gw_metrics *m);

/* Append the Prometheus text exposition of every slot in use to out. */
void gw_metrics_render(const struct gw_metrics *m, struct evbuffer *out);

#endif
