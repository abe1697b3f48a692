/*
 * The Redis bus of one worker: a publish link and a subscribe link (hiredis async on the
 * worker's event loop), the set of channels the worker wants, kept subscribed across
 * reconnects, and health probes that prove the subscription delivers. Links that fail are
 * reconnected with capped, jittered backoff; nothing here ever ends the process.
 */
#ifndef CHAT_GATEWAY_BUS_H
#define CHAT_GATEWAY_BUS_H

#include <stddef.h>
#include <stdint.h>

#include "proto/channel.h"

struct event_base;
struct gw_bus;
struct gw_config;
struct gw_stats;

/* What the layer above does with the bus's events; arg is gw_bus_new's. Every callback may
 * call gw_bus_subscribe, gw_bus_unsubscribe and gw_bus_publish. */
struct gw_bus_handler {
    /* A message on a subscribed room or client channel; name and payload are borrowed for
     * the call (payload is exactly what was published). */
    void (*on_message)(void *arg, enum proto_channel_kind kind, const char *name, size_t name_len,
                       const uint8_t *payload, size_t len);
    /* Redis confirmed a subscription (again after each reconnect). */
    void (*on_subscribed)(void *arg, enum proto_channel_kind kind, const char *name,
                          size_t name_len);
    /* The bus became ready for publishing (1), or stopped being (0). */
    void (*on_ready)(void *arg, int ready);
};

/*
 * A bus for cfg (borrowed) on base. worker_id names this worker in its health channel
 * (copied); stats (borrowed) receives the redis_* counters. Starts connecting at once.
 * Returns the bus, owned by the caller.
 */
struct gw_bus *gw_bus_new(struct event_base *base, const struct gw_config *cfg,
                          const char *worker_id, struct gw_stats *stats,
                          const struct gw_bus_handler *handler, void *arg);

/* Stop reconnecting and probing, and close both links once their pending commands were
 * answered (publishes already made still reach Redis). The loop must keep running a little
 * for that; then call gw_bus_free. */
void gw_bus_shutdown(struct gw_bus *bus);

/* 1 when neither link is open, else 0. */
int gw_bus_is_closed(const struct gw_bus *bus);

/* Close both links and free the bus; NULL does nothing. Never from a bus callback. */
void gw_bus_free(struct gw_bus *bus);

/* 1 when both links are up, so a publish has a chance to be delivered, else 0. */
int gw_bus_is_ready(const struct gw_bus *bus);

/* 1 when the bus is ready and a probe published since the subscribe link last came up was
 * received through it (and the latest probe is not overdue), else 0. */
int gw_bus_is_healthy(const struct gw_bus *bus);

/* Want the channel of kind and name subscribed (kept across reconnects), or no longer.
 * Calls for a channel in flight are reconciled when Redis answers. */
void gw_bus_subscribe(struct gw_bus *bus, enum proto_channel_kind kind, const char *name);
void gw_bus_unsubscribe(struct gw_bus *bus, enum proto_channel_kind kind, const char *name);

/* 1 if Redis confirmed the subscription and it still stands, else 0. */
int gw_bus_is_subscribed(const struct gw_bus *bus, enum proto_channel_kind kind, const char *name);

/* Called with how many subscribers received a publish, or -1 if it was lost with its link.
 * Called exactly once for each publish that gw_bus_publish accepted; arg is its own. */
typedef void (*gw_bus_publish_cb)(void *arg, long long receivers);

/*
 * Publish payload[0..len) (copied) to the channel of kind and name. cb (may be NULL) is
 * called with the outcome. Returns 0, or -1 without calling cb when the bus is not ready or
 * its unsent output passed its cap (the caller answers "unavailable").
 */
int gw_bus_publish(struct gw_bus *bus, enum proto_channel_kind kind, const char *name,
                   const uint8_t *payload, size_t len, gw_bus_publish_cb cb, void *arg);

#endif
