#include "gateway/worker.h"

#include <errno.h>
#include <malloc.h>
#include <inttypes.h>
#include <stdio.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>

#include "gateway/config.h"
#include "gateway/conn.h"
#include "gateway/deflate.h"
#include "gateway/log.h"
#include "gateway/metrics.h"
#include "gateway/limits.h"
#include "gateway/rooms.h"
#include "gateway/tls.h"
#include "gateway/util.h"
#include "proto/proto.h"

/* Pause before accepting again when out of descriptors. */
#define WORKER_ACCEPT_BACKOFF_MS 500
/* Seconds between malloc_trim calls. */
#define WORKER_TRIM_S 5
/* Drain: a batch of connections is closed every tick. */
#define WORKER_DRAIN_TICK_MS 100
/* Longest wait, at exit, for Redis to take the last publishes. */
#define WORKER_BUS_GRACE_MS 1000

struct gw_worker {
    struct gw_server srv;
    struct evconnlistener *listener;
    struct event *sigterm;
    struct event *sigint;
    struct event *drain_timer;
    struct event *accept_timer; /* re-enables accepting after EMFILE */
    struct event *drain_tick;   /* closes the next batch of connections */
    struct event *trim_timer;   /* gives memory freed after bursts back to the system */
    size_t drain_batch;
    const struct gw_config *cfg;
};

static const struct timeval *common_timeout(struct event_base *base, unsigned ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};

    return event_base_init_common_timeout(base, &tv);
}

/* epoll with libevent's change list: an event added and removed within one loop iteration
 * (a write scheduled and done) costs no epoll_ctl call. */
static struct event_base *new_base(void)
{
    struct event_config *ec = event_config_new();
    struct event_base *base;

    event_config_set_flag(ec, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    base = event_base_new_with_config(ec);
    event_config_free(ec);
    return base;
}

/* SO_REUSEPORT lets our workers share the port, but would as well let a second gateway
 * started by mistake share it silently: a plain bind first tells whether the port is free. */
int gw_worker_check_port(const struct gw_config *cfg, char *err, size_t errlen)
{
    int fd = socket(cfg->listen_addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1, rc;

    if (fd < 0) {
        snprintf(err, errlen, "cannot create a socket: %s", strerror(errno));
        return -1;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    rc = bind(fd, (const struct sockaddr *)&cfg->listen_addr, (socklen_t)cfg->listen_addrlen);
    if (rc < 0)
        snprintf(err, errlen, "cannot listen on %s: %s", cfg->listen, strerror(errno));
    close(fd);
    return rc;
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                      int socklen, void *arg)
{
    struct gw_worker *w = arg;

    (void)l;
    if (gw_conn_new(&w->srv, fd, sa, socklen) < 0)
        LOG_WARN("could not set up an accepted connection");
}

static void on_accept_timer(evutil_socket_t fd, short what, void *arg)
{
    struct gw_worker *w = arg;

    (void)fd;
    (void)what;
    if (!w->srv.draining && w->listener)
        evconnlistener_enable(w->listener);
}

static void on_accept_error(struct evconnlistener *l, void *arg)
{
    struct gw_worker *w = arg;
    int err = EVUTIL_SOCKET_ERROR();
    struct timeval tv = {0, WORKER_ACCEPT_BACKOFF_MS * 1000};

    /* Out of descriptors or memory: stop accepting for a moment rather than spin. */
    LOG_WARN("accept failed: %s; pausing %d ms", evutil_socket_error_to_string(err),
             WORKER_ACCEPT_BACKOFF_MS);
    evconnlistener_disable(l);
    evtimer_add(w->accept_timer, &tv);
}

static void on_drain_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct gw_worker *w = arg;

    (void)fd;
    (void)what;
    LOG_WARN("drain timeout: dropping %" PRIu64 " connections", w->srv.stats->conns_open);
    event_base_loopexit(w->srv.base, NULL);
}

/* After a burst (a join storm, a fan-out peak) malloc keeps the freed memory; every few
 * seconds hand what is free back, so RSS follows the load down. */
static void on_trim(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    malloc_trim(0);
}

static void on_drain_tick(evutil_socket_t fd, short what, void *arg)
{
    struct gw_worker *w = arg;
    struct timeval tv = {0, WORKER_DRAIN_TICK_MS * 1000};

    (void)fd;
    (void)what;
    if (gw_conn_drain_some(&w->srv, w->drain_batch) > 0)
        evtimer_add(w->drain_tick, &tv);
}

/* Sessions are closed in batches over the first half of the drain timeout, so that their
 * clients reconnect to other gateways spread out, not all in the same millisecond. */
static void start_drain(struct gw_worker *w)
{
    unsigned ms = w->cfg->drain_timeout_ms;
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    size_t ticks = ms / 2 / WORKER_DRAIN_TICK_MS;
    uint64_t open = w->srv.stats->conns_open;

    w->srv.draining = 1;
    /* Close the listening socket: connections the kernel would queue on it would wait
     * unanswered, while other workers or gateways can take them. */
    evconnlistener_free(w->listener);
    w->listener = NULL;
    evtimer_del(w->accept_timer);
    evtimer_add(w->drain_timer, &tv);
    w->drain_batch = (size_t)(open / (ticks ? ticks : 1)) + 1;
    LOG_INFO("draining connections=%" PRIu64 " sessions=%" PRIu64 " timeout_ms=%u batch=%zu", open,
             w->srv.stats->ws_open, ms, w->drain_batch);
    on_drain_tick(-1, 0, w);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct gw_worker *w = arg;

    (void)what;
    if (w->srv.draining) {
        LOG_WARN("signal=%d during drain: stopping now", (int)sig);
        event_base_loopexit(w->srv.base, NULL);
        return;
    }
    LOG_INFO("signal=%d: shutting down", (int)sig);
    start_drain(w);
}

/* Start this worker's slot afresh: counters go on (a restarted worker continues them),
 * gauges start from zero. */
static struct gw_stats *claim_slot(struct gw_metrics *metrics, unsigned index)
{
    struct gw_stats *st = gw_metrics_slot(metrics, index);

    st->conns_open = st->ws_open = st->chat_open = st->rooms = 0;
    st->redis_ready = st->redis_healthy = 0;
    st->pid = (uint64_t)getpid();
    return st;
}

/* The loop, the TLS context and the listening socket: what can fail. Returns 0, or -1 with
 * err filled and nothing left allocated. */
static int open_worker(struct gw_worker *w, const struct gw_config *cfg, char *err, size_t errlen)
{
    unsigned flags =
        LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_REUSEABLE | LEV_OPT_REUSEABLE_PORT;

    w->srv.base = new_base();
    if (w->srv.base == NULL) {
        snprintf(err, errlen, "cannot create an event loop");
        return -1;
    }
    if (cfg->tls_cert &&
        (w->srv.tls = gw_tls_ctx_new(cfg->tls_cert, cfg->tls_key, err, errlen)) == NULL)
        goto fail;
    w->srv.limits =
        gw_limits_new(cfg->max_per_ip, cfg->handshake_rate, cfg->trusted_proxies, err, errlen);
    if (w->srv.limits == NULL)
        goto fail;
    w->listener =
        evconnlistener_new_bind(w->srv.base, on_accept, w, flags, 4096,
                                (const struct sockaddr *)&cfg->listen_addr, cfg->listen_addrlen);
    if (w->listener == NULL) {
        snprintf(err, errlen, "cannot listen on %s: %s", cfg->listen, strerror(errno));
        goto fail;
    }
    evconnlistener_set_error_cb(w->listener, on_accept_error);
    return 0;
fail:
    gw_limits_free(w->srv.limits);
    gw_tls_ctx_free(w->srv.tls);
    event_base_free(w->srv.base);
    return -1;
}

struct gw_worker *gw_worker_new(const struct gw_config *cfg, unsigned index,
                                struct gw_metrics *metrics, char *err, size_t errlen)
{
    struct gw_worker *w = xcalloc(1, sizeof(*w));
    char worker_id[PROTO_GATEWAY_MAX + 16];
    struct event_base *base;

    if (open_worker(w, cfg, err, errlen) < 0) {
        free(w);
        return NULL;
    }
    base = w->srv.base;
    w->cfg = cfg;
    w->srv.cfg = cfg;
    w->srv.metrics = metrics;
    w->srv.stats = claim_slot(metrics, index);
    gw_conn_server_init(&w->srv);
    w->srv.handshake_tv = common_timeout(base, cfg->handshake_timeout_ms);
    w->srv.ping_tv = common_timeout(base, cfg->ping_interval_ms);
    w->srv.pong_tv = common_timeout(base, cfg->pong_timeout_ms);
    w->srv.close_tv = common_timeout(base, cfg->close_timeout_ms);
    snprintf(worker_id, sizeof(worker_id), "%s.w%u", cfg->gateway_id, index + 1);
    w->srv.rooms = gw_rooms_new(base, cfg, worker_id, w->srv.stats);
    w->sigterm = evsignal_new(base, SIGTERM, on_signal, w);
    w->sigint = evsignal_new(base, SIGINT, on_signal, w);
    w->drain_timer = evtimer_new(base, on_drain_timeout, w);
    w->accept_timer = evtimer_new(base, on_accept_timer, w);
    w->drain_tick = evtimer_new(base, on_drain_tick, w);
    w->trim_timer = event_new(base, -1, EV_PERSIST, on_trim, w);
    struct timeval trim = {WORKER_TRIM_S, 0};
    evtimer_add(w->trim_timer, &trim);
    evsignal_add(w->sigterm, NULL);
    evsignal_add(w->sigint, NULL);
    return w;
}

int gw_worker_run(struct gw_worker *w)
{
    LOG_INFO("listening addr=%s public=%s", w->cfg->listen, w->cfg->public_dir);
    event_base_dispatch(w->srv.base);
    /* Sessions are gone; let the bus write what they published last, then stop. */
    gw_conn_free_all(&w->srv);
    gw_rooms_shutdown(w->srv.rooms);
    if (w->listener)
        evconnlistener_disable(w->listener);
    evsignal_del(w->sigterm);
    evsignal_del(w->sigint);
    evtimer_del(w->drain_timer);
    evtimer_del(w->accept_timer);
    evtimer_del(w->drain_tick);
    evtimer_del(w->trim_timer);
    uint64_t until = gw_util_mono_ms() + WORKER_BUS_GRACE_MS;
    while (!gw_rooms_is_closed(w->srv.rooms) && gw_util_mono_ms() < until) {
        struct timeval tick = {0, 50 * 1000};
        event_base_loopexit(w->srv.base, &tick);
        event_base_loop(w->srv.base, EVLOOP_ONCE);
    }
    LOG_INFO("stopped connections=%" PRIu64 " sessions_total=%" PRIu64 " messages_in=%" PRIu64,
             w->srv.stats->conns_total, w->srv.stats->ws_total, w->srv.stats->msgs_in);
    return 0;
}

void gw_worker_free(struct gw_worker *w)
{
    if (w == NULL)
        return;
    gw_conn_free_all(&w->srv);
    gw_conn_server_clear(&w->srv);
    gw_rooms_free(w->srv.rooms);
    gw_tls_ctx_free(w->srv.tls);
    gw_limits_free(w->srv.limits);
    gw_deflate_cleanup();
    if (w->listener)
        evconnlistener_free(w->listener);
    event_free(w->sigterm);
    event_free(w->sigint);
    event_free(w->drain_timer);
    event_free(w->accept_timer);
    event_free(w->drain_tick);
    event_free(w->trim_timer);
    event_base_free(w->srv.base);
    free(w);
}
