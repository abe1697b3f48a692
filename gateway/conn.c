#include "gateway/conn.h"

#include <arpa/inet.h>
#include <assert.h>
#include <inttypes.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/util.h>
#include <http_parser.h>

#include "gateway/config.h"
#include "gateway/handshake.h"
#include "gateway/http.h"
#include "gateway/limits.h"
#include "gateway/bus.h"
#include "gateway/log.h"
#include "gateway/metrics.h"
#include "gateway/rooms.h"
#include "gateway/session.h"
#include "gateway/static.h"
#include "gateway/tls.h"
#include "gateway/util.h"
#include "gateway/ws.h"
#include "proto/jwt.h"

enum conn_mode {
    CONN_HTTP = 0, /* reading requests */
    CONN_WS,       /* a WebSocket session */
    CONN_FLUSH,    /* writing the last bytes, then half-close */
    CONN_LINGER,   /* our side shut down; discard input until EOF or the close timeout */
};

enum timer_kind {
    TIMER_NONE = 0,
    TIMER_HEAD,  /* a request head must arrive */
    TIMER_PING,  /* time for the next ping */
    TIMER_PONG,  /* a pong must arrive */
    TIMER_CLOSE, /* the close handshake or the flush must finish */
};

struct gw_conn {
    TAILQ_ENTRY(gw_conn) link;
    TAILQ_ENTRY(gw_conn) dirty_link; /* in srv->dirty while dirty */
    int dirty;
    struct gw_server *srv;
    struct bufferevent *bev;
    struct event *timer;
    enum timer_kind timer_kind;
    struct event *expiry; /* a connect token's end, for sessions that have one */
    enum conn_mode mode;
    struct gw_http_parser *http; /* CONN_HTTP only */
    struct gw_ws *ws;            /* CONN_WS onwards */
    struct gw_session *session;  /* a chat session on /ws, or NULL for /echo */
    uint64_t id;
    uint64_t requests; /* answered on this connection */
    uint64_t ping_seq;
    int depth;           /* callbacks of this connection on the stack */
    int dead;            /* free when the outermost callback returns */
    int last_call;       /* close after the answer in progress (drain) */
    int drained;         /* asked to finish for shutdown */
    int tls;             /* wss: the bufferevent encrypts, so writes go through it */
    int counted;         /* addr holds one of the per-address connection slots */
    struct gw_addr addr; /* the client: the peer, or who a trusted proxy forwards */
    char peer[INET6_ADDRSTRLEN + 8];
};

static void on_read(struct bufferevent *bev, void *arg);
static void on_write(struct bufferevent *bev, void *arg);
static void on_event(struct bufferevent *bev, short what, void *arg);
static void on_timer(evutil_socket_t fd, short what, void *arg);
static void ws_apply_state(struct gw_conn *conn, enum gw_ws_state st);

/* ---- lifetime ----------------------------------------------------------------------------- */

static void format_peer(char *out, size_t len, const struct sockaddr *sa)
{
    char host[INET6_ADDRSTRLEN] = "?";

    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
        snprintf(out, len, "%s:%u", host, ntohs(in->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
        snprintf(out, len, "[%s]:%u", host, ntohs(in6->sin6_port));
    } else {
        snprintf(out, len, "unix");
    }
}

static void set_timer(struct gw_conn *conn, enum timer_kind kind, const struct timeval *tv)
{
    conn->timer_kind = kind;
    if (kind == TIMER_NONE)
        evtimer_del(conn->timer);
    else
        evtimer_add(conn->timer, tv);
}

/* Answer a connection refused at accept with a bare response, and close it. */
static void refuse_at_accept(struct gw_server *srv, int fd, int status, const char *why)
{
    char buf[256];
    int n = snprintf(buf, sizeof(buf),
                     "HTTP/1.1 %d %s\r\nConnection: close\r\nRetry-After: 1\r\n"
                     "Content-Type: text/plain; charset=utf-8\r\nContent-Length: %zu\r\n\r\n%s",
                     status, gw_http_reason(status), strlen(why), why);

    if (write(fd, buf, (size_t)n) < 0)
        LOG_DEBUG("could not answer a refused connection: %s", strerror(errno));
    close(fd);
    srv->stats->limit_rejects++;
}

/* The connection limits at accept: per worker, and per address unless the peer is a trusted
 * proxy (its clients are counted by their forwarded address at the upgrade). */
static int admit(struct gw_server *srv, int fd, const struct gw_addr *addr, int *counted)
{
    *counted = 0;
    if (srv->stats->conns_open >= srv->cfg->max_connections) {
        refuse_at_accept(srv, fd, 503, "too many connections\n");
        return -1;
    }
    if (srv->cfg->max_per_ip && !gw_limits_is_trusted(srv->limits, addr)) {
        if (gw_limits_acquire(srv->limits, addr) < 0) {
            refuse_at_accept(srv, fd, 429, "too many connections from your address\n");
            return -1;
        }
        *counted = 1;
    }
    return 0;
}

int gw_conn_new(struct gw_server *srv, int fd, const struct sockaddr *peer, int addrlen)
{
    struct gw_addr addr = gw_addr_from_sockaddr(peer);
    struct gw_conn *conn;
    int one = 1, counted;

    (void)addrlen;
    if (admit(srv, fd, &addr, &counted) < 0)
        return 0; /* answered and closed: not a failure of ours */
    if (peer->sa_family != AF_UNIX)
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    conn = xcalloc(1, sizeof(*conn));
    if (srv->tls) {
        struct ssl_st *ssl = gw_tls_session_new(srv->tls);
        conn->bev = ssl ? bufferevent_openssl_socket_new(
                              srv->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE)
                        : NULL;
        if (conn->bev)
            bufferevent_openssl_set_allow_dirty_shutdown(conn->bev, 1);
        conn->tls = 1;
    } else {
        conn->bev = bufferevent_socket_new(srv->base, fd, BEV_OPT_CLOSE_ON_FREE);
    }
    if (conn->bev == NULL) {
        if (counted)
            gw_limits_release(srv->limits, &addr);
        close(fd);
        free(conn);
        return -1;
    }
    conn->srv = srv;
    conn->addr = addr;
    conn->counted = counted;
    conn->id = ++srv->next_id;
    format_peer(conn->peer, sizeof(conn->peer), peer);
    conn->timer = evtimer_new(srv->base, on_timer, conn);
    conn->http = gw_http_parser_new(srv->cfg->max_header);
    TAILQ_INSERT_TAIL(&srv->conns, conn, link);
    srv->stats->conns_total++;
    srv->stats->conns_open++;
    bufferevent_setcb(conn->bev, on_read, on_write, on_event, conn);
    bufferevent_enable(conn->bev, EV_READ | EV_WRITE);
    set_timer(conn, TIMER_HEAD, srv->handshake_tv);
    LOG_DEBUG("conn=%" PRIu64 " peer=%s accepted", conn->id, conn->peer);
    return 0;
}

static void conn_free(struct gw_conn *conn)
{
    struct gw_server *srv = conn->srv;

    assert(conn->depth == 0);
    if (conn->ws) {
        srv->stats->ws_open--;
        LOG_DEBUG("conn=%" PRIu64 " peer=%s ws closed sent=%u received=%u", conn->id, conn->peer,
                  gw_ws_code_sent(conn->ws), gw_ws_code_received(conn->ws));
    }
    if (conn->counted)
        gw_limits_release(srv->limits, &conn->addr);
    TAILQ_REMOVE(&srv->conns, conn, link);
    if (conn->dirty)
        TAILQ_REMOVE(&srv->dirty, conn, dirty_link);
    srv->stats->conns_open--;
    gw_session_free(conn->session);
    conn->session = NULL;
    gw_ws_free(conn->ws);
    conn->ws = NULL;
    gw_http_parser_free(conn->http);
    conn->http = NULL;
    event_free(conn->timer);
    conn->timer = NULL;
    if (conn->expiry)
        event_free(conn->expiry);
    conn->expiry = NULL;
    bufferevent_free(conn->bev);
    conn->bev = NULL;
    free(conn);
    if (srv->draining && TAILQ_EMPTY(&srv->conns))
        event_base_loopexit(srv->base, NULL);
}

/* Enter a callback of conn; pair with leave(). */
static void enter(struct gw_conn *conn)
{
    conn->depth++;
}

/* Leave a callback; free the connection if it died and this was the outermost one. */
static void leave(struct gw_conn *conn)
{
    if (--conn->depth == 0 && conn->dead)
        conn_free(conn);
}

static void kill_conn(struct gw_conn *conn)
{
    conn->dead = 1;
}

/* ---- writing WebSocket output ------------------------------------------------------------
 * A WebSocket connection does not let its bufferevent schedule writes (EV_WRITE stays off):
 * whatever is queued for it during a loop pass (fan-out frames, replies) marks it dirty, and
 * one event later in the same pass writes each dirty connection straight to its socket. A
 * delivery then costs one writev for all that the client got in that pass and no epoll
 * changes; only a client whose socket is full gets EV_WRITE until it drains. */

static void on_output(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    struct gw_conn *conn = arg;
    struct gw_server *srv = conn->srv;

    (void)buf;
    if (info->n_added == 0 || conn->dirty || conn->mode != CONN_WS)
        return;
    conn->dirty = 1;
    if (TAILQ_EMPTY(&srv->dirty))
        event_active(srv->flush_ev, EV_TIMEOUT, 1);
    TAILQ_INSERT_TAIL(&srv->dirty, conn, dirty_link);
}

static void write_out(struct gw_conn *conn)
{
    struct evbuffer *out = bufferevent_get_output(conn->bev);
    int n;

    if (conn->mode != CONN_WS || evbuffer_get_length(out) == 0)
        return;
    /* A socket bufferevent keeps the front of its output frozen so that only it drains it;
     * thaw it for this write as the bufferevent itself does around its own. */
    errno = 0;
    evbuffer_unfreeze(out, 1);
    n = evbuffer_write(out, bufferevent_getfd(conn->bev));
    evbuffer_freeze(out, 1);
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        kill_conn(conn);
        return;
    }
    if (evbuffer_get_length(out) > 0)
        bufferevent_enable(conn->bev, EV_WRITE); /* the socket is full: wait till writable */
}

static void on_flush(evutil_socket_t fd, short what, void *arg)
{
    struct gw_server *srv = arg;
    struct gw_conn *conn;

    (void)fd;
    (void)what;
    while ((conn = TAILQ_FIRST(&srv->dirty)) != NULL) {
        TAILQ_REMOVE(&srv->dirty, conn, dirty_link);
        conn->dirty = 0;
        enter(conn);
        write_out(conn);
        leave(conn);
    }
}

void gw_conn_server_init(struct gw_server *srv)
{
    TAILQ_INIT(&srv->conns);
    TAILQ_INIT(&srv->dirty);
    srv->flush_ev = event_new(srv->base, -1, 0, on_flush, srv);
}

void gw_conn_server_clear(struct gw_server *srv)
{
    event_free(srv->flush_ev);
    srv->flush_ev = NULL;
}

/* Half-close once the output is written, then wait briefly for the client's EOF, so a reset
 * never destroys the answer or close frame we just sent. */
static void close_after_flush(struct gw_conn *conn)
{
    if (conn->mode == CONN_FLUSH || conn->mode == CONN_LINGER)
        return;
    conn->mode = CONN_FLUSH;
    bufferevent_disable(conn->bev, EV_READ);
    bufferevent_enable(conn->bev, EV_WRITE); /* from here libevent writes, and says when done */
    set_timer(conn, TIMER_CLOSE, conn->srv->close_tv);
    if (evbuffer_get_length(bufferevent_get_output(conn->bev)) == 0)
        on_write(conn->bev, conn);
}

/* ---- HTTP --------------------------------------------------------------------------------- */

static void respond_text(struct gw_conn *conn, int status, const char *extra, const char *body,
                         int keep_alive, int head)
{
    gw_http_respond(bufferevent_get_output(conn->bev), status, extra, "text/plain; charset=utf-8",
                    body, strlen(body), keep_alive, head);
}

static void serve_healthz(struct gw_conn *conn, const struct gw_http_request *req)
{
    int head = req->method == HTTP_HEAD;

    if (conn->srv->draining)
        respond_text(conn, 503, NULL, "draining\n", req->keep_alive, head);
    else if (!gw_bus_is_healthy(gw_rooms_bus(conn->srv->rooms)) ||
             !gw_metrics_all_healthy(conn->srv->metrics))
        respond_text(conn, 503, NULL, "redis unavailable\n", req->keep_alive, head);
    else
        respond_text(conn, 200, NULL, "ok\n", req->keep_alive, head);
}

/* A client is slow when, at the moment something is to be queued for it, what it has queued
 * already passes the cap: the output stays below the cap plus one message. */
static int is_over_cap(const struct gw_conn *conn)
{
    return evbuffer_get_length(bufferevent_get_output(conn->bev)) > conn->srv->cfg->max_output;
}

static void close_slow(struct gw_conn *conn)
{
    conn->srv->stats->slow_closes++;
    LOG_INFO("conn=%" PRIu64 " peer=%s closing slow reader queued=%zu", conn->id, conn->peer,
             evbuffer_get_length(bufferevent_get_output(conn->bev)));
    gw_ws_close(conn->ws, GW_WS_POLICY, "slow reader: output queue full");
    /* It does not read, so its close frame will not come: stop reading it and drop it once
     * the output is written or the close timeout passes. */
    close_after_flush(conn);
}

static void on_echo_message(void *arg, int binary, const uint8_t *msg, size_t len)
{
    struct gw_conn *conn = arg;
    struct gw_stats *st = conn->srv->stats;

    st->msgs_in++;
    st->bytes_in += len;
    if (is_over_cap(conn)) {
        close_slow(conn);
        return;
    }
    if (gw_ws_send(conn->ws, binary, msg, len) == 0) {
        st->msgs_out++;
        st->bytes_out += len;
    }
}

static void on_pong(void *arg)
{
    struct gw_conn *conn = arg;

    if (conn->timer_kind == TIMER_PONG)
        set_timer(conn, TIMER_PING, conn->srv->ping_tv);
}

static const struct gw_ws_handler echo_handler = {
    .on_message = on_echo_message,
    .on_pong = on_pong,
};

static void serve_metrics(struct gw_conn *conn, const struct gw_http_request *req)
{
    struct evbuffer *body = evbuffer_new();
    size_t len;

    gw_metrics_render(conn->srv->metrics, body);
    len = evbuffer_get_length(body);
    gw_http_respond(bufferevent_get_output(conn->bev), 200, NULL,
                    "text/plain; version=0.0.4; charset=utf-8", evbuffer_pullup(body, -1), len,
                    req->keep_alive, req->method == HTTP_HEAD);
    evbuffer_free(body);
}

static void on_chat_message(void *arg, int binary, const uint8_t *msg, size_t len)
{
    struct gw_conn *conn = arg;

    gw_session_on_message(conn->session, binary, msg, len);
}

static const struct gw_ws_handler chat_handler = {
    .on_message = on_chat_message,
    .on_pong = on_pong,
};

/* The session closed its WebSocket from the fan-out, outside this connection's callbacks. */
static void on_session_closed(void *arg)
{
    struct gw_conn *conn = arg;

    enter(conn);
    close_after_flush(conn);
    leave(conn);
}

/* The session's connect token ran out: the client must come back with a fresh one. */
static void on_expiry(evutil_socket_t fd, short what, void *arg)
{
    struct gw_conn *conn = arg;

    (void)fd;
    (void)what;
    enter(conn);
    if (conn->mode == CONN_WS && gw_ws_state(conn->ws) == GW_WS_OPEN) {
        conn->srv->stats->tokens_expired++;
        LOG_INFO("conn=%" PRIu64 " peer=%s connect token expired", conn->id, conn->peer);
        gw_ws_close(conn->ws, GW_WS_TOKEN_EXPIRED, "token expired");
        ws_apply_state(conn, gw_ws_state(conn->ws));
    }
    leave(conn);
}

/* Close the session when its token expires (exp plus the leeway, from the wall clock); a
 * refresh moves the timer. */
static void arm_expiry(struct gw_conn *conn, int64_t exp)
{
    /* proto_jwt_verify counts whole seconds: a token is good through second exp + leeway. */
    int64_t end_ms = (exp + conn->srv->cfg->token_leeway_ms / 1000 + 1) * 1000;
    int64_t left_ms = end_ms - (int64_t)gw_util_wall_ms();
    struct timeval tv;

    if (left_ms < 0)
        left_ms = 0;
    tv.tv_sec = (time_t)(left_ms / 1000);
    tv.tv_usec = (suseconds_t)(left_ms % 1000) * 1000;
    if (conn->expiry == NULL)
        conn->expiry = evtimer_new(bufferevent_get_base(conn->bev), on_expiry, conn);
    evtimer_add(conn->expiry, &tv);
}

static void on_session_expires(void *arg, int64_t exp)
{
    arm_expiry(arg, exp);
}

static void start_chat(struct gw_conn *conn, struct proto_jwt_claims *auth)
{
    struct gw_session_io io = {
        .ws = conn->ws,
        .out = bufferevent_get_output(conn->bev),
        .peer = conn->peer,
        .conn_id = conn->id,
        .stats = conn->srv->stats,
        .closed = on_session_closed,
        .expires = on_session_expires,

        .arg = conn,
    };

    if (auth)
        arm_expiry(conn, auth->exp);
    conn->session = gw_session_new(conn->srv->rooms, conn->srv->cfg, &io, auth);
}

/* Behind a trusted proxy, the client is the one X-Forwarded-For names: count it there. */
static int admit_forwarded(struct gw_conn *conn, const struct gw_http_request *req)
{
    struct gw_server *srv = conn->srv;
    const char *xff;
    size_t len;

    if (conn->counted || !gw_limits_is_trusted(srv->limits, &conn->addr))
        return 0;
    xff = gw_http_header(req, "X-Forwarded-For", &len, NULL);
    if (xff)
        gw_limits_forwarded(srv->limits, xff, len, &conn->addr);
    if (!srv->cfg->max_per_ip)
        return 0;
    if (gw_limits_acquire(srv->limits, &conn->addr) < 0)
        return -1;
    conn->counted = 1;
    return 0;
}

/* Limits on the upgrade: draining, the forwarded client's connections, handshake rate. */
static void check_limits(struct gw_conn *conn, const struct gw_http_request *req,
                         struct gw_handshake *hs)
{
    struct gw_server *srv = conn->srv;

    if (hs->status != 101)
        return;
    if (srv->draining) {
        hs->status = 503;
        hs->reason = "server is shutting down";
    } else if (admit_forwarded(conn, req) < 0) {
        hs->status = 429;
        hs->reason = "too many connections from your address";
    } else if (srv->cfg->handshake_rate &&
               gw_limits_handshake(srv->limits, &conn->addr, gw_util_mono_ms()) < 0) {
        hs->status = 429;
        hs->reason = "too many handshakes from your address; slow down";
    }
    if (hs->status == 429)
        srv->stats->limit_rejects++;
}

static void upgrade(struct gw_conn *conn, const struct gw_http_request *req, int chat)
{
    struct evbuffer *out = bufferevent_get_output(conn->bev);
    struct gw_handshake hs;
    struct proto_jwt_claims claims;
    int authed = 0;

    gw_handshake_check(conn->srv->cfg, req, &hs);
    check_limits(conn, req, &hs);
    if (hs.status == 101 && chat) {
        authed = gw_handshake_authenticate(conn->srv->cfg, req, (int64_t)(gw_util_wall_ms() / 1000),
                                           &hs, &claims);
        if (authed < 0)
            conn->srv->stats->tokens_rejected++;
    }
    if (hs.status != 101) {
        conn->srv->stats->handshake_fails++;
        LOG_INFO("conn=%" PRIu64 " peer=%s handshake refused status=%d reason=\"%s\"", conn->id,
                 conn->peer, hs.status, hs.reason);
        gw_handshake_write_error(&hs, out);
        close_after_flush(conn);
        return;
    }
    gw_handshake_write(&hs, out);
    /* hs may point into the request (a token's subprotocol entry), which is freed below; a
     * token is never logged. */
    LOG_DEBUG("conn=%" PRIu64 " peer=%s websocket open subprotocol=%.*s user=%s", conn->id,
              conn->peer, hs.subprotocol_from_token ? 5 : (int)hs.subprotocol_len,
              hs.subprotocol ? hs.subprotocol : "-", authed > 0 ? "(token)" : "-");
    gw_http_parser_free(conn->http);
    conn->http = NULL;
    conn->ws = gw_ws_new(out, conn->srv->cfg->max_message, &hs.deflate,
                         chat ? &chat_handler : &echo_handler, conn);
    conn->mode = CONN_WS;
    if (!conn->tls) { /* TLS output must go through the bufferevent, which encrypts it */
        bufferevent_disable(conn->bev, EV_WRITE);
        evbuffer_add_cb(out, on_output, conn);
        on_output(out, &(struct evbuffer_cb_info){.n_added = 1}, conn); /* the 101 itself */
    }
    if (chat)
        start_chat(conn, authed > 0 ? &claims : NULL);
    conn->srv->stats->ws_open++;
    conn->srv->stats->ws_total++;
    if (conn->srv->cfg->ping_interval_ms)
        set_timer(conn, TIMER_PING, conn->srv->ping_tv);
    else
        set_timer(conn, TIMER_NONE, NULL);
}

static void serve_echo(struct gw_conn *conn, const struct gw_http_request *req)
{
    upgrade(conn, req, 0);
}

static void serve_chat(struct gw_conn *conn, const struct gw_http_request *req)
{
    upgrade(conn, req, 1);
}

typedef void (*route_cb)(struct gw_conn *conn, const struct gw_http_request *req);

static const struct route {
    const char *path;
    route_cb serve;
} routes[] = {
    {"/healthz", serve_healthz},
    {"/metrics", serve_metrics},
    {"/echo", serve_echo},
    {"/ws", serve_chat},
};

static void route(struct gw_conn *conn, const struct gw_http_request *req)
{
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        if (req->path_len == strlen(routes[i].path) &&
            memcmp(req->path, routes[i].path, req->path_len) == 0) {
            routes[i].serve(conn, req);
            return;
        }
    }
    gw_static_serve(conn->srv->cfg->public_dir, req, bufferevent_get_output(conn->bev));
}

static void http_error(struct gw_conn *conn)
{
    const char *reason;
    int status = gw_http_parser_error(conn->http, &reason);
    char body[160];

    LOG_INFO("conn=%" PRIu64 " peer=%s bad request status=%d reason=\"%s\"", conn->id, conn->peer,
             status, reason);
    snprintf(body, sizeof(body), "%s\n", reason);
    respond_text(conn, status, status == 405 ? "Allow: GET, HEAD\r\n" : NULL, body, 0, 0);
    close_after_flush(conn);
}

/* Answer the request just parsed; the connection may have become a WebSocket. */
static void http_request(struct gw_conn *conn)
{
    const struct gw_http_request *req = gw_http_parser_request(conn->http);
    int keep = req->keep_alive && !req->upgrade && !conn->last_call;

    conn->srv->stats->http_requests++;
    conn->requests++;
    route(conn, req);
    if (conn->mode != CONN_HTTP)
        return;
    if (!keep) {
        close_after_flush(conn);
        return;
    }
    gw_http_parser_next(conn->http);
    set_timer(conn, TIMER_HEAD, conn->srv->handshake_tv);
}

static void http_read(struct gw_conn *conn)
{
    struct evbuffer *in = bufferevent_get_input(conn->bev);
    struct evbuffer *out = bufferevent_get_output(conn->bev);

    while (conn->mode == CONN_HTTP && evbuffer_get_length(in) > 0) {
        struct evbuffer_iovec v;
        size_t used;

        /* A pipelining client that does not read waits for its answers to drain: stop
         * reading (so its requests stay in the kernel), resume in on_write. */
        if (evbuffer_get_length(out) > conn->srv->cfg->max_output) {
            bufferevent_disable(conn->bev, EV_READ);
            return;
        }
        evbuffer_peek(in, -1, NULL, &v, 1);
        enum gw_http_result r = gw_http_parser_feed(conn->http, v.iov_base, v.iov_len, &used);
        evbuffer_drain(in, used);
        if (r == GW_HTTP_ERROR)
            http_error(conn);
        else if (r == GW_HTTP_REQUEST)
            http_request(conn);
    }
}

/* ---- WebSocket ---------------------------------------------------------------------------- */

static void ws_apply_state(struct gw_conn *conn, enum gw_ws_state st)
{
    if (st == GW_WS_CLOSED) {
        uint16_t code = gw_ws_code_sent(conn->ws);

        if (code == GW_WS_PROTOCOL_ERROR || code == GW_WS_INVALID_DATA || code == GW_WS_TOO_BIG) {
            conn->srv->stats->proto_errors++;
            LOG_INFO("conn=%" PRIu64 " peer=%s protocol error close=%u", conn->id, conn->peer,
                     code);
        }
        close_after_flush(conn);
    } else if (st == GW_WS_CLOSING && conn->timer_kind != TIMER_CLOSE) {
        set_timer(conn, TIMER_CLOSE, conn->srv->close_tv);
    }
}

static void ws_read(struct gw_conn *conn)
{
    enum gw_ws_state st = gw_ws_recv(conn->ws, bufferevent_get_input(conn->bev));

    /* Replies wslay queued (pongs to a ping flood) count against the cap too. */
    if (st == GW_WS_OPEN && is_over_cap(conn)) {
        close_slow(conn);
        st = gw_ws_state(conn->ws);
    }
    ws_apply_state(conn, st);
}

static void ws_ping(struct gw_conn *conn)
{
    uint8_t payload[8];
    uint64_t seq = ++conn->ping_seq;

    for (int i = 0; i < 8; i++)
        payload[i] = (uint8_t)(seq >> (56 - 8 * i));
    if (gw_ws_ping(conn->ws, payload, sizeof(payload)) == 0)
        set_timer(conn, TIMER_PONG, conn->srv->pong_tv);
}

/* ---- callbacks ---------------------------------------------------------------------------- */

static void on_read(struct bufferevent *bev, void *arg)
{
    struct gw_conn *conn = arg;

    enter(conn);
    if (conn->mode == CONN_HTTP)
        http_read(conn);
    if (conn->mode == CONN_WS)
        ws_read(conn);
    if (conn->mode == CONN_FLUSH || conn->mode == CONN_LINGER)
        evbuffer_drain(bufferevent_get_input(bev), evbuffer_get_length(bufferevent_get_input(bev)));
    leave(conn);
}

static void on_write(struct bufferevent *bev, void *arg)
{
    struct gw_conn *conn = arg;

    enter(conn);
    if (conn->mode == CONN_FLUSH && evbuffer_get_length(bufferevent_get_output(bev)) == 0) {
        conn->mode = CONN_LINGER;
        /* A TLS session ends with its close_notify when the bufferevent is freed. */
        if (conn->tls || shutdown(bufferevent_getfd(bev), SHUT_WR) < 0)
            kill_conn(conn);
        else
            bufferevent_enable(bev, EV_READ); /* to see the client's EOF */
    } else if (conn->mode == CONN_HTTP) {
        bufferevent_enable(bev, EV_READ);
        http_read(conn); /* answers drained: go on with pipelined requests */
    } else if (conn->mode == CONN_WS && !conn->tls) {
        bufferevent_disable(bev, EV_WRITE); /* drained: back to writing from on_flush */
    }
    leave(conn);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    struct gw_conn *conn = arg;

    (void)bev;
    enter(conn);
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        if (conn->mode == CONN_WS)
            LOG_DEBUG("conn=%" PRIu64 " peer=%s websocket dropped without close (1006)", conn->id,
                      conn->peer);
        kill_conn(conn);
    }
    leave(conn);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct gw_conn *conn = arg;
    enum timer_kind kind = conn->timer_kind;

    (void)fd;
    (void)what;
    enter(conn);
    conn->timer_kind = TIMER_NONE;
    if (kind == TIMER_HEAD) {
        /* A client that sent part of a request, or none at all, learns why; an idle
         * keep-alive connection just closes. */
        if (gw_http_parser_is_partial(conn->http) || conn->requests == 0) {
            respond_text(conn, 408, NULL, "request head not received in time\n", 0, 0);
            close_after_flush(conn);
        } else {
            kill_conn(conn);
        }
    } else if (kind == TIMER_PING) {
        ws_ping(conn);
    } else if (kind == TIMER_PONG) {
        conn->srv->stats->ping_timeouts++;
        LOG_INFO("conn=%" PRIu64 " peer=%s pong timeout", conn->id, conn->peer);
        gw_ws_close(conn->ws, GW_WS_POLICY, "pong timeout");
        close_after_flush(conn);
    } else if (kind == TIMER_CLOSE) {
        kill_conn(conn);
    }
    leave(conn);
}

static void drain(struct gw_conn *conn)
{
    enter(conn);
    if (conn->mode == CONN_HTTP) {
        if (gw_http_parser_is_partial(conn->http))
            conn->last_call = 1;
        else
            kill_conn(conn);
    } else if (conn->mode == CONN_WS) {
        gw_ws_close(conn->ws, GW_WS_GOING_AWAY, "server shutting down");
        ws_apply_state(conn, gw_ws_state(conn->ws));
    } else if (conn->mode == CONN_LINGER) {
        kill_conn(conn); /* everything was written; no need to wait for the client's EOF */
    }
    leave(conn);
}

size_t gw_conn_drain_some(struct gw_server *srv, size_t n)
{
    struct gw_conn *c, *next;
    size_t left = 0;

    for (c = TAILQ_FIRST(&srv->conns); c; c = next) {
        next = TAILQ_NEXT(c, link);
        if (c->drained)
            continue;
        if (n > 0) {
            n--;
            c->drained = 1;
            drain(c);
        } else {
            left++;
        }
    }
    if (TAILQ_EMPTY(&srv->conns))
        event_base_loopexit(srv->base, NULL);
    return left;
}

void gw_conn_free_all(struct gw_server *srv)
{
    struct gw_conn *c;

    while ((c = TAILQ_FIRST(&srv->conns)) != NULL)
        conn_free(c);
}
