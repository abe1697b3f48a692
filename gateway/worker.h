/*
 * A worker: one event loop with its listening socket (SO_REUSEPORT, so several workers may
 * share a port) and its connections, running until a signal drains it.
 */
#ifndef CHAT_GATEWAY_WORKER_H
#define CHAT_GATEWAY_WORKER_H

#include <stddef.h>

struct gw_config;
struct gw_metrics;
struct gw_worker;

/* Return 0 if cfg's listen address is free, or -1 with a message in err. Our listeners use
 * SO_REUSEPORT so workers can share the port; this plain bind, made once before the workers
 * start, keeps a second gateway started by mistake from sharing it silently. */
int gw_worker_check_port(const struct gw_config *cfg, char *err, size_t errlen);

/* Create worker index (0-based) for cfg (borrowed; must outlive the worker), counting into
 * its slot of metrics, and bind its listener. Returns the worker, or NULL with a message in
 * err (errlen bytes). */
struct gw_worker *gw_worker_new(const struct gw_config *cfg, unsigned index,
                                struct gw_metrics *metrics, char *err, size_t errlen);

/* Serve until SIGTERM or SIGINT: then stop accepting, close every session with 1001 and
 * return once all are closed or the drain timeout passed. A second signal ends the drain at
 * once. Returns 0. */
int gw_worker_run(struct gw_worker *w);

/* Free the worker, closing what is left; NULL does nothing. */
void gw_worker_free(struct gw_worker *w);

#endif
