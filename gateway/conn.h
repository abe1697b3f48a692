/*
 * One client connection of a worker, from accept to close: HTTP/1.1 requests routed to the
 * health check, the page's files and the WebSocket endpoints; after an upgrade, the
 * WebSocket session with its pings, output cap and close handshake. A connection is freed
 * only by the outermost of its callbacks, never while a library call for it is running.
 */
#ifndef CHAT_GATEWAY_CONN_H
#define CHAT_GATEWAY_CONN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>

struct event_base;
struct gw_config;
struct gw_conn;
struct gw_limits;
struct gw_metrics;
struct gw_rooms;
struct gw_stats;
struct ssl_ctx_st;

TAILQ_HEAD(gw_conn_list, gw_conn);

/* What the connections of one worker share; filled and owned by the worker. */
struct gw_server {
    struct event_base *base;
    const struct gw_config *cfg;
    struct gw_rooms *rooms;    /* chat directory and Redis bus */
    struct ssl_ctx_st *tls;    /* wss: the TLS context, or NULL for plain ws */
    struct gw_limits *limits;  /* per-address connection counts and handshake buckets */
    struct gw_conn_list conns; /* every open connection */
    struct gw_conn_list dirty; /* WebSocket connections with output to write */
    struct event *flush_ev;    /* writes the dirty connections, later in this loop pass */
    int draining;              /* shutting down: no new sessions, 503 on /healthz */
    /* Common libevent timeouts (O(1) to add) for the configured durations. */
    const struct timeval *handshake_tv;
    const struct timeval *ping_tv;
    const struct timeval *pong_tv;
    const struct timeval *close_tv;
    uint64_t next_id;           /* id of the next connection, for logs */
    struct gw_stats *stats;     /* this worker's slot of the shared counters */
    struct gw_metrics *metrics; /* every worker's counters, for /metrics */
};

/*
 * Take over the accepted, non-blocking socket fd from peer (addrlen bytes) and serve it.
 * The connection links itself into srv->conns and frees itself when done. Returns 0, or -1
 * if the socket could not be set up (fd is closed then).
 */
int gw_conn_new(struct gw_server *srv, int fd, const struct sockaddr *peer, int addrlen);

/* Set up and tear down what srv's connections share (the write-out event); srv->base must
 * be set. */
void gw_conn_server_init(struct gw_server *srv);
void gw_conn_server_clear(struct gw_server *srv);

/* Ask n more connections of srv to finish for shutdown (the oldest first): an idle HTTP
 * connection closes now, a request in progress closes after its answer, a WebSocket session
 * gets close 1001. Returns how many are left to ask. Once the last connection is gone the
 * loop of srv->base is told to exit. */
size_t gw_conn_drain_some(struct gw_server *srv, size_t n);

/* Drop every connection of srv at once. Never from a connection's callbacks. */
void gw_conn_free_all(struct gw_server *srv);

#endif
