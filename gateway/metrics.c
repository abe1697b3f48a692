#include "gateway/metrics.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include <event2/buffer.h>

struct gw_metrics {
    unsigned n;
    size_t bytes;
    struct gw_stats slots[];
};

static const double latency_bounds_ms[GW_LATENCY_BUCKETS] = {0.5, 1,   2,   5,    10,   25,
                                                             50,  100, 250, 1000, 2500, 10000};

struct gw_metrics *gw_metrics_new(unsigned n, char *err, size_t errlen)
{
    size_t bytes = sizeof(struct gw_metrics) + n * sizeof(struct gw_stats);
    struct gw_metrics *m;

    if (n == 0 || n > 256) {
        snprintf(err, errlen, "workers must be 1 to 256");
        return NULL;
    }
    m = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) {
        snprintf(err, errlen, "cannot map shared memory for metrics: %s", strerror(errno));
        return NULL;
    }
    memset(m, 0, bytes);
    m->n = n;
    m->bytes = bytes;
    return m;
}

void gw_metrics_free(struct gw_metrics *m)
{
    if (m)
        munmap(m, m->bytes);
}

struct gw_stats *gw_metrics_slot(struct gw_metrics *m, unsigned i)
{
    return i < m->n ? &m->slots[i] : NULL;
}

void gw_metrics_observe(struct gw_stats *st, uint64_t ms)
{
    size_t b = 0;

    while (b < GW_LATENCY_BUCKETS && (double)ms > latency_bounds_ms[b])
        b++;
    st->latency_buckets[b]++;
    st->latency_sum_us += ms * 1000;
}

/* ---- rendering ---------------------------------------------------------------------------- */

struct series {
    const char *name;
    const char *type; /* "counter" or "gauge" */
    const char *help;
    size_t offset; /* of the uint64_t in struct gw_stats */
};

#define S(field) offsetof(struct gw_stats, field)

static const struct series series[] = {
    {"chat_connections_open", "gauge", "Client connections open.", S(conns_open)},
    {"chat_connections_total", "counter", "Client connections accepted.", S(conns_total)},
    {"chat_websockets_open", "gauge", "WebSocket sessions open (echo and chat).", S(ws_open)},
    {"chat_websockets_total", "counter", "WebSocket sessions opened.", S(ws_total)},
    {"chat_sessions_open", "gauge", "Chat sessions open.", S(chat_open)},
    {"chat_rooms", "gauge", "Rooms with a member on this worker.", S(rooms)},
    {"chat_http_requests_total", "counter", "HTTP requests answered.", S(http_requests)},
    {"chat_handshake_failures_total", "counter", "WebSocket upgrades refused.", S(handshake_fails)},
    {"chat_messages_in_total", "counter", "WebSocket messages received from clients.", S(msgs_in)},
    {"chat_messages_out_total", "counter", "WebSocket messages sent to clients.", S(msgs_out)},
    {"chat_bytes_in_total", "counter", "Payload bytes received from clients.", S(bytes_in)},
    {"chat_bytes_out_total", "counter", "Payload bytes echoed to clients.", S(bytes_out)},
    {"chat_fanout_frames_total", "counter", "Room frames from Redis, each framed once.",
     S(fanout_frames)},
    {"chat_deliveries_total", "counter", "Frames queued to chat clients.", S(deliveries)},
    {"chat_dropped_total", "counter", "Frames not delivered because the client was closing.",
     S(dropped)},
    {"chat_slow_reader_closes_total", "counter", "Clients closed for passing the output cap.",
     S(slow_closes)},
    {"chat_ping_timeouts_total", "counter", "Sessions closed for a missing pong.",
     S(ping_timeouts)},
    {"chat_protocol_errors_total", "counter", "Sessions failed with 1002, 1007 or 1009.",
     S(proto_errors)},
    {"chat_errors_sent_total", "counter", "Error messages sent to chat clients.", S(chat_errors)},
    {"chat_rate_limited_total", "counter", "Chat messages refused by the token bucket.",
     S(rate_limited)},
    {"chat_limit_rejects_total", "counter",
     "Connections and handshakes refused by --max-connections, --max-per-ip or "
     "--handshake-rate.",
     S(limit_rejects)},
    {"chat_tokens_rejected_total", "counter",
     "Connect tokens refused: chat upgrades answered 401, refreshes answered bad_token.",
     S(tokens_rejected)},
    {"chat_tokens_expired_total", "counter",
     "Chat sessions closed (4001) because their connect token expired.", S(tokens_expired)},
    {"chat_forbidden_joins_total", "counter",
     "Joins refused because the session's token does not list the room.", S(forbidden_joins)},

    {"chat_redis_ready", "gauge", "1 while both Redis links are up.", S(redis_ready)},
    {"chat_redis_up", "gauge", "1 while Redis is proven by probes (what /healthz says).",
     S(redis_healthy)},
    {"chat_redis_published_total", "counter", "PUBLISH commands sent.", S(redis_published)},
    {"chat_redis_publish_errors_total", "counter", "Publishes refused or lost with a link.",
     S(redis_publish_errors)},
    {"chat_redis_received_total", "counter", "Messages received from Redis.", S(redis_received)},
    {"chat_redis_reconnects_total", "counter", "Redis links re-established.", S(redis_reconnects)},
    {"chat_redis_probes_lost_total", "counter", "Health probes not back in time.",
     S(redis_probes_lost)},
};

static uint64_t field(const struct gw_stats *st, size_t offset)
{
    uint64_t v;

    memcpy(&v, (const char *)st + offset, sizeof(v));
    return v;
}

static void render_latency(const struct gw_metrics *m, struct evbuffer *out)
{
    evbuffer_add_printf(out, "# HELP chat_delivery_latency_seconds Time from a message's "
                             "publication to its fan-out on this worker.\n"
                             "# TYPE chat_delivery_latency_seconds histogram\n");
    for (unsigned i = 0; i < m->n; i++) {
        const struct gw_stats *st = &m->slots[i];
        uint64_t cum = 0;

        if (st->pid == 0)
            continue;
        for (size_t b = 0; b <= GW_LATENCY_BUCKETS; b++) {
            cum += st->latency_buckets[b];
            if (b < GW_LATENCY_BUCKETS)
                evbuffer_add_printf(out,
                                    "chat_delivery_latency_seconds_bucket{worker=\"%u\",le=\"%g\"} "
                                    "%" PRIu64 "\n",
                                    i + 1, latency_bounds_ms[b] / 1000.0, cum);
            else
                evbuffer_add_printf(
                    out,
                    "chat_delivery_latency_seconds_bucket{worker=\"%u\",le=\"+Inf\"}"
                    " %" PRIu64 "\n",
                    i + 1, cum);
        }
        evbuffer_add_printf(out, "chat_delivery_latency_seconds_sum{worker=\"%u\"} %.6f\n", i + 1,
                            (double)st->latency_sum_us / 1e6);
        evbuffer_add_printf(out, "chat_delivery_latency_seconds_count{worker=\"%u\"} %" PRIu64 "\n",
                            i + 1, cum);
    }
}

int gw_metrics_all_healthy(const struct gw_metrics *m)
{
    for (unsigned i = 0; i < m->n; i++)
        if (m->slots[i].pid != 0 && !m->slots[i].redis_healthy)
            return 0;
    return 1;
}

void gw_metrics_render(const struct gw_metrics *m, struct evbuffer *out)
{
    for (size_t s = 0; s < sizeof(series) / sizeof(series[0]); s++) {
        evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", series[s].name, series[s].help,
                            series[s].name, series[s].type);
        for (unsigned i = 0; i < m->n; i++) {
            if (m->slots[i].pid == 0)
                continue;
            evbuffer_add_printf(out, "%s{worker=\"%u\"} %" PRIu64 "\n", series[s].name, i + 1,
                                field(&m->slots[i], series[s].offset));
        }
    }
    render_latency(m, out);
}
