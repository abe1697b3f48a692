#include "gateway/bus.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>

#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <hiredis/sds.h>
#include <uthash.h>

#include "gateway/config.h"
#include "gateway/log.h"
#include "gateway/metrics.h"
#include "gateway/util.h"

#define BUS_CONNECT_TIMEOUT_MS 3000
#define BUS_BACKOFF_MIN_MS 100
#define BUS_BACKOFF_MAX_MS 5000
#define BUS_PROBE_INTERVAL_MS 1000
#define BUS_PROBE_TIMEOUT_MS 3000
/* Unsent publishes beyond this mean Redis is not keeping up: refuse rather than grow. */
#define BUS_MAX_UNSENT (16u << 20)

enum link_state {
    LINK_DOWN = 0,
    LINK_CONNECTING,
    LINK_UP,
};

struct bus_link {
    struct gw_bus *bus;
    const char *name; /* "publish" or "subscribe", for logs */
    redisAsyncContext *ac;
    enum link_state state;
    struct event *timer; /* connect deadline, or the next attempt */
    unsigned backoff_ms;
    int ever_up;
};

enum chan_state {
    CHAN_NONE = 0,     /* not subscribed */
    CHAN_SUBSCRIBING,  /* SUBSCRIBE sent */
    CHAN_SUBSCRIBED,   /* confirmed */
    CHAN_UNSUBSCRIBING /* UNSUBSCRIBE sent */
};

struct bus_chan {
    UT_hash_handle hh;
    int want;
    enum chan_state state;
    size_t len;
    char name[]; /* the full channel name, NUL-terminated */
};

struct gw_bus {
    struct event_base *base;
    const struct gw_config *cfg;
    const struct gw_bus_handler *handler;
    void *arg;
    struct bus_link pub, sub;
    struct bus_chan *chans; /* uthash by name */
    char health[PROTO_CHANNEL_MAX];
    struct event *probe_timer;
    uint64_t probe_seq;     /* last probe sent */
    uint64_t probe_sent_ms; /* when; 0 when none is outstanding */
    int ready, healthy;
    int freeing;
    struct gw_stats *stats; /* the worker's counters, borrowed */
};

static void link_connect(struct bus_link *l);
static void reconcile(struct gw_bus *bus, struct bus_chan *c);

/* ---- readiness ---------------------------------------------------------------------------- */

static void set_healthy(struct gw_bus *bus, int healthy)
{
    if (healthy == bus->healthy || bus->freeing)
        return;
    bus->healthy = healthy;
    bus->stats->redis_healthy = (uint64_t)healthy;
    if (healthy)
        LOG_INFO("redis proven: a probe came back through the subscription");
    else
        LOG_WARN("redis not proven: /healthz answers 503");
}

static void update_ready(struct gw_bus *bus)
{
    int ready = !bus->freeing && bus->pub.state == LINK_UP && bus->sub.state == LINK_UP;

    if (!ready)
        set_healthy(bus, 0);
    if (ready == bus->ready)
        return;
    bus->ready = ready;
    bus->stats->redis_ready = (uint64_t)ready;
    bus->probe_sent_ms = 0;
    if (bus->handler->on_ready && !bus->freeing)
        bus->handler->on_ready(bus->arg, ready);
}

/* ---- links -------------------------------------------------------------------------------- */

static void arm(struct bus_link *l, unsigned ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};

    evtimer_add(l->timer, &tv);
}

static void schedule_retry(struct bus_link *l)
{
    uint32_t r = 0;
    unsigned delay;

    if (l->bus->freeing)
        return;
    /* Full jitter in [backoff/2, backoff], so gateways that lost Redis together do not all
     * come back in the same millisecond. */
    getrandom(&r, sizeof(r), 0);
    delay = l->backoff_ms / 2 + r % (l->backoff_ms / 2 + 1);
    l->backoff_ms = l->backoff_ms * 2 > BUS_BACKOFF_MAX_MS ? BUS_BACKOFF_MAX_MS : l->backoff_ms * 2;
    l->state = LINK_DOWN;
    arm(l, delay);
}

static void on_auth(redisAsyncContext *ac, void *r, void *privdata)
{
    const redisReply *reply = r;
    struct bus_link *l = privdata;

    if (reply && reply->type == REDIS_REPLY_ERROR) {
        LOG_ERROR("redis %s link: AUTH/SELECT refused: %s", l->name, reply->str);
        redisAsyncDisconnect(ac);
    }
}

static void resubscribe_all(struct gw_bus *bus)
{
    struct bus_chan *c, *tmp;

    HASH_ITER(hh, bus->chans, c, tmp)
    {
        c->state = CHAN_NONE;
        reconcile(bus, c);
    }
}

static void link_up(struct bus_link *l)
{
    evtimer_del(l->timer);
    l->state = LINK_UP;
    if (l->ever_up)
        l->bus->stats->redis_reconnects++;
    l->ever_up = 1;
    LOG_INFO("redis %s link up", l->name);
    if (l == &l->bus->sub)
        resubscribe_all(l->bus);
    update_ready(l->bus);
}

/* The PING queued after AUTH and SELECT: its answer proves the link usable (a Redis that
 * wants a password we lack answers NOAUTH here). */
static void on_ping(redisAsyncContext *ac, void *r, void *privdata)
{
    const redisReply *reply = r;
    struct bus_link *l = privdata;

    if (reply == NULL || l->state != LINK_CONNECTING)
        return;
    if (reply->type == REDIS_REPLY_ERROR) {
        LOG_ERROR("redis %s link: %s", l->name, reply->str);
        redisAsyncDisconnect(ac);
        return;
    }
    link_up(l);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    struct bus_link *l = ac->data;

    if (status != REDIS_OK) {
        evtimer_del(l->timer);
        LOG_WARN("redis %s link: connect failed: %s", l->name, ac->errstr);
        l->ac = NULL; /* hiredis frees the context after this callback */
        schedule_retry(l);
        update_ready(l->bus);
    }
    /* Connected: the link is up once the PING is answered, within the connect timeout. */
}

static void clear_channels(struct gw_bus *bus)
{
    struct bus_chan *c, *tmp;

    HASH_ITER(hh, bus->chans, c, tmp)
    {
        c->state = CHAN_NONE;
        if (!c->want) {
            HASH_DEL(bus->chans, c);
            free(c);
        }
    }
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    struct bus_link *l = ac->data;

    (void)status;
    l->ac = NULL;
    if (!l->bus->freeing)
        LOG_WARN("redis %s link down: %s", l->name, ac->err ? ac->errstr : "closed");
    if (l == &l->bus->sub)
        clear_channels(l->bus);
    schedule_retry(l);
    update_ready(l->bus);
}

static void send_auth(struct bus_link *l)
{
    const struct gw_redis_addr *a = &l->bus->cfg->redis;

    if (a->password && a->user)
        redisAsyncCommand(l->ac, on_auth, l, "AUTH %s %s", a->user, a->password);
    else if (a->password)
        redisAsyncCommand(l->ac, on_auth, l, "AUTH %s", a->password);
    if (a->db && l == &l->bus->pub)
        redisAsyncCommand(l->ac, on_auth, l, "SELECT %d", a->db);
    redisAsyncCommand(l->ac, on_ping, l, "PING");
}

static void link_connect(struct bus_link *l)
{
    const struct gw_redis_addr *a = &l->bus->cfg->redis;

    l->ac = a->path ? redisAsyncConnectUnix(a->path) : redisAsyncConnect(a->host, a->port);
    if (l->ac == NULL)
        abort(); /* hiredis returns NULL only when out of memory */
    if (l->ac->err) {
        LOG_WARN("redis %s link: %s", l->name, l->ac->errstr);
        redisAsyncFree(l->ac);
        l->ac = NULL;
        schedule_retry(l);
        return;
    }
    l->ac->data = l;
    redisLibeventAttach(l->ac, l->bus->base);
    redisAsyncSetConnectCallback(l->ac, on_connect);
    redisAsyncSetDisconnectCallback(l->ac, on_disconnect);
    l->state = LINK_CONNECTING;
    arm(l, BUS_CONNECT_TIMEOUT_MS);
    /* Queued now, written as soon as the connection is up, ahead of anything else. */
    send_auth(l);
}

static void on_link_timer(evutil_socket_t fd, short what, void *arg)
{
    struct bus_link *l = arg;

    (void)fd;
    (void)what;
    if (l->state == LINK_CONNECTING && l->ac) {
        /* hiredis 0.14 has no connect timeout of its own. A context that connected gets its
         * disconnect callback from redisAsyncFree (which schedules the retry); one that never
         * did gets none, so start over here. */
        LOG_WARN("redis %s link: no answer within %d ms", l->name, BUS_CONNECT_TIMEOUT_MS);
        redisAsyncFree(l->ac);
        if (l->ac) {
            l->ac = NULL;
            schedule_retry(l);
        }
    } else if (l->state == LINK_DOWN) {
        link_connect(l);
    }
}

/* Drop a link that is up; on_disconnect schedules the reconnect. The socket is aborted
 * (SO_LINGER 0): a plain close would leave the kernel retransmitting our unsent PUBLISHes,
 * which a Redis cut off from us would run late, after the new link's newer messages. */
static void link_drop(struct bus_link *l)
{
    if (l->ac && l->state == LINK_UP) {
        struct linger abort_close = {.l_onoff = 1, .l_linger = 0};

        setsockopt(l->ac->c.fd, SOL_SOCKET, SO_LINGER, &abort_close, sizeof(abort_close));
        redisAsyncFree(l->ac);
    }
}

/* ---- channels ----------------------------------------------------------------------------- */

static struct bus_chan *chan_find(const struct gw_bus *bus, const char *name, size_t len)
{
    struct bus_chan *c = NULL;

    HASH_FIND(hh, bus->chans, name, len, c);
    return c;
}

static void on_sub_reply(redisAsyncContext *ac, void *r, void *privdata);

/* Move channel c toward what is wanted, one Redis command at a time. */
static void reconcile(struct gw_bus *bus, struct bus_chan *c)
{
    if (bus->sub.state != LINK_UP) {
        if (!c->want) {
            HASH_DEL(bus->chans, c);
            free(c);
        }
        return;
    }
    if (c->want && c->state == CHAN_NONE) {
        c->state = CHAN_SUBSCRIBING;
        redisAsyncCommand(bus->sub.ac, on_sub_reply, bus, "SUBSCRIBE %b", c->name, c->len);
    } else if (!c->want && c->state == CHAN_SUBSCRIBED) {
        c->state = CHAN_UNSUBSCRIBING;
        redisAsyncCommand(bus->sub.ac, NULL, NULL, "UNSUBSCRIBE %b", c->name, c->len);
    } else if (!c->want && c->state == CHAN_NONE) {
        HASH_DEL(bus->chans, c);
        free(c);
    }
}

static void set_want(struct gw_bus *bus, enum proto_channel_kind kind, const char *name, int want)
{
    char full[PROTO_CHANNEL_MAX];
    size_t len = proto_channel_name(full, kind, name);
    struct bus_chan *c = chan_find(bus, full, len);

    if (c == NULL) {
        if (!want)
            return;
        c = xcalloc(1, sizeof(*c) + len + 1);
        memcpy(c->name, full, len + 1);
        c->len = len;
        HASH_ADD(hh, bus->chans, name, len, c);
    }
    c->want = want;
    reconcile(bus, c);
}

void gw_bus_subscribe(struct gw_bus *bus, enum proto_channel_kind kind, const char *name)
{
    set_want(bus, kind, name, 1);
}

void gw_bus_unsubscribe(struct gw_bus *bus, enum proto_channel_kind kind, const char *name)
{
    set_want(bus, kind, name, 0);
}

int gw_bus_is_subscribed(const struct gw_bus *bus, enum proto_channel_kind kind, const char *name)
{
    char full[PROTO_CHANNEL_MAX];
    size_t len = proto_channel_name(full, kind, name);
    const struct bus_chan *c = chan_find(bus, full, len);

    return c && c->want && c->state == CHAN_SUBSCRIBED;
}

static void on_probe(struct gw_bus *bus, const char *payload, size_t len)
{
    char expect[24];
    int n = snprintf(expect, sizeof(expect), "%" PRIu64, bus->probe_seq);

    if (bus->probe_sent_ms && (size_t)n == len && memcmp(payload, expect, len) == 0) {
        bus->probe_sent_ms = 0;
        bus->pub.backoff_ms = bus->sub.backoff_ms = BUS_BACKOFF_MIN_MS;
        set_healthy(bus, 1);
    }
}

static void send_probe(struct gw_bus *bus);

static void on_confirm(struct gw_bus *bus, const char *type, const char *name, size_t len)
{
    struct bus_chan *c = chan_find(bus, name, len);
    const char *short_name;
    size_t short_len;
    int kind;

    if (c == NULL)
        return;
    if (strcmp(type, "subscribe") == 0 && c->state == CHAN_SUBSCRIBING) {
        c->state = CHAN_SUBSCRIBED;
        kind = proto_channel_parse(name, len, &short_name, &short_len);
        if (c->want && kind == PROTO_CHANNEL_HEALTH)
            send_probe(bus);
        else if (c->want && kind && bus->handler->on_subscribed)
            bus->handler->on_subscribed(bus->arg, kind, short_name, short_len);
    } else if (strcmp(type, "unsubscribe") == 0 && c->state == CHAN_UNSUBSCRIBING) {
        c->state = CHAN_NONE;
    }
    reconcile(bus, c);
}

static void on_sub_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    const redisReply *reply = r;
    struct gw_bus *bus = privdata;
    const char *name;
    size_t name_len;
    int kind;

    (void)ac;
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements != 3 ||
        reply->element[0]->type != REDIS_REPLY_STRING ||
        reply->element[1]->type != REDIS_REPLY_STRING)
        return;
    const redisReply *what = reply->element[0], *chan = reply->element[1],
                     *body = reply->element[2];
    if (strcmp(what->str, "message") != 0) {
        on_confirm(bus, what->str, chan->str, chan->len);
        return;
    }
    kind = proto_channel_parse(chan->str, chan->len, &name, &name_len);
    if (kind == PROTO_CHANNEL_HEALTH) {
        on_probe(bus, body->str, body->len);
    } else if (kind && body->type == REDIS_REPLY_STRING) {
        bus->stats->redis_received++;
        bus->handler->on_message(bus->arg, kind, name, name_len, (const uint8_t *)body->str,
                                 body->len);
    }
}

/* ---- publishing and probes ---------------------------------------------------------------- */

struct publish_req {
    gw_bus_publish_cb cb;
    void *arg;
    struct gw_bus *bus;
};

static void on_publish_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    const redisReply *reply = r;
    struct publish_req *req = privdata;

    (void)ac;
    if (reply == NULL || reply->type != REDIS_REPLY_INTEGER) {
        req->bus->stats->redis_publish_errors++;
        req->cb(req->arg, -1);
    } else {
        req->cb(req->arg, reply->integer);
    }
    free(req);
}

int gw_bus_publish(struct gw_bus *bus, enum proto_channel_kind kind, const char *name,
                   const uint8_t *payload, size_t len, gw_bus_publish_cb cb, void *arg)
{
    char full[PROTO_CHANNEL_MAX];
    size_t clen = proto_channel_name(full, kind, name);
    struct publish_req *req = NULL;

    if (!bus->ready || sdslen(bus->pub.ac->c.obuf) > BUS_MAX_UNSENT) {
        bus->stats->redis_publish_errors++;
        return -1;
    }
    if (cb) {
        req = xmalloc(sizeof(*req));
        req->cb = cb;
        req->arg = arg;
        req->bus = bus;
    }
    if (redisAsyncCommand(bus->pub.ac, cb ? on_publish_reply : NULL, req, "PUBLISH %b %b", full,
                          clen, payload, len) != REDIS_OK) {
        free(req);
        bus->stats->redis_publish_errors++;
        return -1;
    }
    bus->stats->redis_published++;
    return 0;
}

static void send_probe(struct gw_bus *bus)
{
    char body[24];
    int n;

    if (!bus->ready || bus->probe_sent_ms)
        return;
    n = snprintf(body, sizeof(body), "%" PRIu64, ++bus->probe_seq);
    if (redisAsyncCommand(bus->pub.ac, NULL, NULL, "PUBLISH %s %b", bus->health, body, (size_t)n) ==
        REDIS_OK)
        bus->probe_sent_ms = gw_util_mono_ms();
}

static void on_probe_timer(evutil_socket_t fd, short what, void *arg)
{
    struct gw_bus *bus = arg;

    (void)fd;
    (void)what;
    if (bus->probe_sent_ms && gw_util_mono_ms() - bus->probe_sent_ms > BUS_PROBE_TIMEOUT_MS) {
        /* Connected but not delivering (a paused or partitioned Redis): start over. */
        bus->stats->redis_probes_lost++;
        LOG_WARN("redis probe not back within %d ms: reconnecting", BUS_PROBE_TIMEOUT_MS);
        bus->probe_sent_ms = 0;
        set_healthy(bus, 0);
        link_drop(&bus->pub);
        link_drop(&bus->sub);
        return;
    }
    if (gw_bus_is_subscribed(bus, PROTO_CHANNEL_HEALTH, bus->health + strlen("chat:health:")))
        send_probe(bus);
}

/* ---- life --------------------------------------------------------------------------------- */

static void link_init(struct gw_bus *bus, struct bus_link *l, const char *name)
{
    l->bus = bus;
    l->name = name;
    l->backoff_ms = BUS_BACKOFF_MIN_MS;
    l->timer = evtimer_new(bus->base, on_link_timer, l);
}

struct gw_bus *gw_bus_new(struct event_base *base, const struct gw_config *cfg,
                          const char *worker_id, struct gw_stats *stats,
                          const struct gw_bus_handler *handler, void *arg)
{
    struct gw_bus *bus = xcalloc(1, sizeof(*bus));
    struct timeval tv = {0, BUS_PROBE_INTERVAL_MS * 1000};

    bus->base = base;
    bus->cfg = cfg;
    bus->stats = stats;
    bus->handler = handler;
    bus->arg = arg;
    proto_channel_name(bus->health, PROTO_CHANNEL_HEALTH, worker_id);
    link_init(bus, &bus->pub, "publish");
    link_init(bus, &bus->sub, "subscribe");
    bus->probe_timer = event_new(base, -1, EV_PERSIST, on_probe_timer, bus);
    evtimer_add(bus->probe_timer, &tv);
    gw_bus_subscribe(bus, PROTO_CHANNEL_HEALTH, worker_id);
    link_connect(&bus->pub);
    link_connect(&bus->sub);
    return bus;
}

void gw_bus_shutdown(struct gw_bus *bus)
{
    bus->freeing = 1;
    evtimer_del(bus->probe_timer);
    evtimer_del(bus->pub.timer);
    evtimer_del(bus->sub.timer);
    if (bus->pub.ac && bus->pub.state == LINK_UP)
        redisAsyncDisconnect(bus->pub.ac);
    /* The subscribe link has nothing to deliver: close it now (hiredis would wait for the
     * channels' replies forever). */
    if (bus->sub.ac)
        redisAsyncFree(bus->sub.ac);
}

void gw_bus_free(struct gw_bus *bus)
{
    struct bus_chan *c, *tmp;

    if (bus == NULL)
        return;
    bus->freeing = 1;
    if (bus->pub.ac)
        redisAsyncFree(bus->pub.ac);
    if (bus->sub.ac)
        redisAsyncFree(bus->sub.ac);
    HASH_ITER(hh, bus->chans, c, tmp)
    {
        HASH_DEL(bus->chans, c);
        free(c);
    }
    event_free(bus->pub.timer);
    event_free(bus->sub.timer);
    event_free(bus->probe_timer);
    free(bus);
}

int gw_bus_is_closed(const struct gw_bus *bus)
{
    return bus->pub.ac == NULL && bus->sub.ac == NULL;
}

int gw_bus_is_ready(const struct gw_bus *bus)
{
    return bus->ready;
}

int gw_bus_is_healthy(const struct gw_bus *bus)
{
    return bus->healthy;
}
