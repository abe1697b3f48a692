/*
 * chat-tail: a live view of the chat traffic in Redis, for operators. PSUBSCRIBE chat:* and
 * print one line per message (time, channel, room or target, sender, text), or the payloads as
 * they are with --json; --room and --client filter. It reconnects with a backoff when Redis
 * goes away, and exits 0 on SIGINT or SIGTERM: both stay blocked except inside ppoll, so a
 * signal is never lost between a check and a wait.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "broker-tools/options.h"
#include "broker-tools/term.h"
#include "proto/channel.h"
#include "proto/client.h"
#include "proto/proto.h"
#include "proto/redisurl.h"
#include "proto/xalloc.h"

#define TAIL_PATTERN "chat:*"
#define TAIL_CONNECT_TIMEOUT_MS 2000 /* connect, AUTH and PSUBSCRIBE each */
#define TAIL_BACKOFF_MIN_MS 100
#define TAIL_BACKOFF_MAX_MS 5000
#define TAIL_PING_IDLE_MS 15000 /* PING after this long without traffic */
#define TAIL_DEAD_IDLE_MS 30000 /* and give the connection up after this long */

extern char **environ;

/* ---- configuration ------------------------------------------------------------------------ */

struct config {
    const char *redis_url;        /* as given */
    struct proto_redis_url redis; /* redis_url parsed: the gateway's forms */
    const char *room;             /* show only this room's traffic; NULL: all */
    const char *client;           /* show only traffic from or to this client; NULL: all */
    int json;                     /* print the payloads as they are */
    int all;                      /* show the gateways' chat:health:* probes too */
};

#define OFF(f) offsetof(struct config, f)

/* The gateway's Redis URL forms. The database is checked and otherwise ignored: pub/sub
 * channels are the same in every database. */
static int parse_redis(void *cfg, size_t offset, const char *url)
{
    struct config *c = cfg;
    struct proto_redis_url u;

    (void)offset;
    if (proto_redis_url_parse(url, &u) < 0)
        return -1;
    proto_redis_url_clear(&c->redis);
    c->redis = u;
    c->redis_url = url;
    return 0;
}

static int parse_client(void *cfg, size_t offset, const char *value)
{
    if (!proto_is_client_id(value, strlen(value)))
        return -1;
    *TOOL_OPTION_FIELD(cfg, offset, const char *) = value;
    return 0;
}

static const struct tool_option option_rows[] = {
    {"redis", "CHAT_REDIS_URL", "URL", "redis://127.0.0.1:6379",
     "Redis: redis://[[user]:password@]host[:port][/db], unix:///path.sock or /path.sock",
     parse_redis, 0},
    {"room", NULL, "ROOM", NULL, "only the traffic of ROOM (its messages, presence, rosters)",
     tool_option_room, OFF(room)},
    {"client", NULL, "ID", NULL, "only the traffic from or to the client ID", parse_client,
     OFF(client)},
    {"json", NULL, NULL, NULL, "print each payload as it is, one per line", tool_option_flag,
     OFF(json)},
    {"all", NULL, NULL, NULL, "show the gateways' chat:health:* probes too", tool_option_flag,
     OFF(all)},
};

static const struct tool_options options = {
    option_rows, sizeof(option_rows) / sizeof(option_rows[0]), NULL, 16, 15,
};

static void usage(FILE *out)
{
    fprintf(out, "usage: chat-tail [--redis URL] [--room ROOM] [--client ID] [--json] [--all]\n\n"
                 "Shows the chat traffic passing through Redis (PSUBSCRIBE chat:*), one line "
                 "per\nmessage: time, channel, room (#) or target (@), sender, text. Each option "
                 "with a\nvariable may also be set by it; a flag wins.\n\n");
    tool_options_usage(&options, out);
    fprintf(out, "\nIt reconnects when Redis goes away (messages published meanwhile "
                 "are not\nseen: pub/sub keeps nothing) and exits on SIGINT or SIGTERM.\n");
}

/* ---- output ------------------------------------------------------------------------------- */

static volatile sig_atomic_t stop_signal; /* SIGINT or SIGTERM arrived */

struct tail {
    const struct config *cfg;
    sigset_t waitmask; /* the signal mask inside ppoll: SIGINT and SIGTERM deliverable */
    redisContext *rc;  /* NULL while disconnected */
    uint64_t last_ms;  /* when Redis last sent something */
    int pinged;        /* a PING is out since then */
    int out_closed;    /* stdout is gone (a reader like head(1) exited) */
    char where[300];   /* host:port or socket path, for messages (never the password) */
};

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* The local wall-clock time, to the millisecond. */
static void put_time(void)
{
    struct timespec ts;
    struct tm tm;
    char buf[16];

    clock_gettime(CLOCK_REALTIME, &ts);
    localtime_r(&ts.tv_sec, &tm);
    strftime(buf, sizeof(buf), "%H:%M:%S", &tm);
    printf("%s.%03ld ", buf, ts.tv_nsec / 1000000);
}

/* "username(client id)" */
/* "username(client id)", or "username[@user](client id)" for a token's verified user. */
static void put_sender(const char *username, const char *user, const char *id)
{
    term_put_str(stdout, username);
    if (user[0]) {
        printf("[@");
        term_put_str(stdout, user);
        printf("]");
    }
    printf("(%s)", id);
}

/* The decoded part of a line: room (#) or target (@), sender, text. */
static void put_msg(const struct proto_server_msg *m, const char *target)
{
    switch (m->type) {
    case PROTO_S_MESSAGE:
        printf("#%s ", m->room);
        put_sender(m->username, m->user, m->from);
        printf(": ");
        term_put_escaped(stdout, m->text, m->text_len, 0);
        break;
    case PROTO_S_DIRECT:
        if (m->to[0]) {
            printf("@%s ", m->to);
        } else {
            printf("@@");
            term_put_str(stdout, m->to_user);
            putchar(' ');
        }
        put_sender(m->username, m->user, m->from);
        printf(" [dm]: ");
        term_put_escaped(stdout, m->text, m->text_len, 0);
        break;
    case PROTO_S_PRESENCE:
        printf("#%s ", m->room);
        put_sender(m->username, m->user, m->from);
        printf(" %s", strcmp(m->event, "join") == 0 ? "joined" : "left");
        break;
    case PROTO_S_WHO:
        printf("#%s who? for @%s", m->room, m->to);
        break;
    case PROTO_S_MEMBERS:
        putchar('@');
        term_put_str(stdout, target); /* from the channel name: any bytes a publisher chose */
        printf(" members of #%s on ", m->room);
        term_put_str(stdout, m->gateway);
        printf(":");
        for (size_t i = 0; i < m->n_members; i++) {
            printf("%s ", i ? "," : "");
            put_sender(m->members[i].username, m->members[i].user, m->members[i].client);
        }
        break;
    default:
        printf("%s", proto_server_type_name(m->type));
        break;
    }
}

/* 1 if the message passes --room and --client (and health probes --all), else 0. */
static int is_shown(const struct config *cfg, int kind, const char *name,
                    const struct proto_server_msg *m, int decoded)
{
    if (kind == PROTO_CHANNEL_HEALTH)
        return cfg->all && !cfg->room && !cfg->client;
    if (cfg->room && !(decoded ? strcmp(m->room, cfg->room) == 0
                               : kind == PROTO_CHANNEL_ROOM && strcmp(name, cfg->room) == 0))
        return 0;
    if (cfg->client && !(kind == PROTO_CHANNEL_CLIENT && strcmp(name, cfg->client) == 0) &&
        !(decoded && (strcmp(m->from, cfg->client) == 0 || strcmp(m->to, cfg->client) == 0)))
        return 0;
    return 1;
}

/* One published message: channel[0..clen), payload[0..plen). */
static void show(struct tail *t, const char *channel, size_t clen, const char *payload, size_t plen)
{
    struct proto_server_msg m;
    const char *name = "";
    size_t name_len = 0;
    char name_buf[PROTO_CHANNEL_MAX];
    int kind = proto_channel_parse(channel, clen, &name, &name_len);
    int decoded = proto_client_decode((const uint8_t *)payload, plen, &m) == PROTO_OK;

    snprintf(name_buf, sizeof(name_buf), "%.*s", (int)name_len, name);
    if (is_shown(t->cfg, kind, name_buf, &m, decoded)) {
        if (t->cfg->json) {
            fwrite(payload, 1, plen, stdout);
        } else {
            put_time();
            term_put_escaped(stdout, channel, clen, 0);
            putchar(' ');
            if (decoded) {
                put_msg(&m, name_buf);
            } else {
                fputs(kind == PROTO_CHANNEL_HEALTH ? "probe " : "? ", stdout);
                term_put_escaped(stdout, payload, plen, 0);
            }
        }
        if (term_end_line(stdout) < 0)
            t->out_closed = 1;
    }
    proto_server_msg_clear(&m);
}

/* ---- Redis -------------------------------------------------------------------------------- */

/* A pmessage is ["pmessage", pattern, channel, payload]; anything else (the psubscribe
 * confirmation, a PING's "pong") is not traffic. */
static void on_reply(struct tail *t, const redisReply *r)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 4 ||
        r->element[0]->type != REDIS_REPLY_STRING || strcmp(r->element[0]->str, "pmessage") != 0 ||
        r->element[2]->type != REDIS_REPLY_STRING || r->element[3]->type != REDIS_REPLY_STRING)
        return;
    show(t, r->element[2]->str, r->element[2]->len, r->element[3]->str, r->element[3]->len);
}

/* Run a command on the blocking context c (its socket timeout bounds the wait); -1 with err
 * filled when it fails or the answer is an error or not of the type wanted. */
static int command(redisContext *c, int want, char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    redisReply *r;
    int rc = -1;

    va_start(ap, fmt);
    r = redisvCommand(c, fmt, ap);
    va_end(ap);
    if (r == NULL)
        snprintf(err, errlen, "%s", c->errstr[0] ? c->errstr : "no answer");
    else if (r->type == REDIS_REPLY_ERROR)
        snprintf(err, errlen, "%.*s", (int)r->len, r->str);
    else if (r->type != want)
        snprintf(err, errlen, "unexpected answer of type %d", r->type);
    else
        rc = 0;
    freeReplyObject(r);
    return rc;
}

/* Connect, AUTH when a password is set, PSUBSCRIBE; NULL with err filled on failure. */
static redisContext *open_redis(const struct proto_redis_url *a, char *err, size_t errlen)
{
    struct timeval tv = {TAIL_CONNECT_TIMEOUT_MS / 1000, TAIL_CONNECT_TIMEOUT_MS % 1000 * 1000};
    redisContext *c = a->path ? redisConnectUnixWithTimeout(a->path, tv)
                              : redisConnectWithTimeout(a->host, a->port, tv);

    if (c == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (c->err) {
        snprintf(err, errlen, "%s", c->errstr);
        goto err;
    }
    if (!a->path)
        redisEnableKeepAlive(c);
    if (a->password && a->user &&
        command(c, REDIS_REPLY_STATUS, err, errlen, "AUTH %s %s", a->user, a->password) < 0)
        goto err;
    if (a->password && !a->user &&
        command(c, REDIS_REPLY_STATUS, err, errlen, "AUTH %s", a->password) < 0)
        goto err;
    if (command(c, REDIS_REPLY_ARRAY, err, errlen, "PSUBSCRIBE %s", TAIL_PATTERN) < 0)
        goto err;
    return c;
err:
    redisFree(c);
    return NULL;
}

/* Show every reply already read; -1 with err filled on a protocol error. */
static int drain(struct tail *t, char *err, size_t errlen)
{
    void *reply = NULL;

    while (!t->out_closed) {
        if (redisGetReplyFromReader(t->rc, &reply) != REDIS_OK) {
            snprintf(err, errlen, "%s", t->rc->errstr);
            return -1;
        }
        if (reply == NULL)
            return 0;
        on_reply(t, reply);
        freeReplyObject(reply);
    }
    return 0;
}

/* A quiet connection gets a PING; one that stays quiet much longer is given up. */
static int check_idle(struct tail *t, char *err, size_t errlen)
{
    uint64_t idle = now_ms() - t->last_ms;
    int done = 0;

    if (idle > TAIL_DEAD_IDLE_MS) {
        snprintf(err, errlen, "no answer for %u s", TAIL_DEAD_IDLE_MS / 1000);
        return -1;
    }
    if (idle < TAIL_PING_IDLE_MS || t->pinged)
        return 0;
    t->pinged = 1;
    if (redisAppendCommand(t->rc, "PING") != REDIS_OK)
        goto fail;
    while (!done)
        if (redisBufferWrite(t->rc, &done) != REDIS_OK)
            goto fail;
    return 0;
fail:
    snprintf(err, errlen, "%s", t->rc->errstr);
    return -1;
}

/* Show what arrives until the connection fails (-1, err filled), or a signal comes or
 * stdout closes (0). */
static int watch(struct tail *t, char *err, size_t errlen)
{
    struct pollfd pfd = {.fd = t->rc->fd, .events = POLLIN};
    struct timespec second = {1, 0};

    t->last_ms = now_ms();
    t->pinged = 0;
    while (!stop_signal && !t->out_closed) {
        if (drain(t, err, errlen) < 0 || check_idle(t, err, errlen) < 0)
            return -1;
        int n = ppoll(&pfd, 1, &second, &t->waitmask);
        if (n < 0 && errno != EINTR) {
            snprintf(err, errlen, "poll: %s", strerror(errno));
            return -1;
        }
        if (n > 0 && redisBufferRead(t->rc) != REDIS_OK) {
            snprintf(err, errlen, "%s", t->rc->errstr);
            return -1;
        }
        if (n > 0) {
            t->last_ms = now_ms();
            t->pinged = 0;
        }
    }
    return 0;
}

/* Sleep ms milliseconds, less when a signal comes. */
static void nap(const struct tail *t, unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};

    ppoll(NULL, 0, &ts, &t->waitmask);
}

/* Connect, watch, and after a failure connect again with an exponential backoff; report an
 * outage once and the recovery once. */
static void run(struct tail *t)
{
    unsigned backoff = TAIL_BACKOFF_MIN_MS;
    int reported = 0;
    char err[512];

    while (!stop_signal && !t->out_closed) {
        t->rc = open_redis(&t->cfg->redis, err, sizeof(err));
        if (t->rc == NULL) {
            if (!reported)
                term_notice("cannot reach Redis at %s: %s; retrying", t->where, err);
            reported = 1;
            nap(t, backoff);
            backoff = backoff * 2 > TAIL_BACKOFF_MAX_MS ? TAIL_BACKOFF_MAX_MS : backoff * 2;
            continue;
        }
        term_notice("watching %s on %s", TAIL_PATTERN, t->where);
        backoff = TAIL_BACKOFF_MIN_MS;
        reported = 0;
        if (watch(t, err, sizeof(err)) < 0)
            term_notice("lost Redis at %s: %s; reconnecting", t->where, err);
        redisFree(t->rc);
        t->rc = NULL;
    }
}

/* ---- main --------------------------------------------------------------------------------- */

static void on_signal(int sig)
{
    stop_signal = sig;
}

/* SIGINT and SIGTERM set stop_signal; they are blocked except inside ppoll (t->waitmask). */
static void setup_signals(struct tail *t)
{
    struct sigaction sa;
    sigset_t block;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    sigprocmask(SIG_BLOCK, &block, &t->waitmask);
    sigdelset(&t->waitmask, SIGINT);
    sigdelset(&t->waitmask, SIGTERM);
}

/* Defaults, then env, then argv. Returns 0 to run, 1 for --help, -1 with a message in err.
 * Strings in cfg point into env, argv or the table; cfg->redis owns its own. */
static int load_config(struct config *cfg, int argc, char *const argv[], char *const env[],
                       char *err, size_t errlen)
{
    memset(cfg, 0, sizeof(*cfg));
    return tool_options_load(&options, cfg, argc, argv, env, err, errlen);
}

/* host:port, [v6]:port or the socket path, for messages: never the password. */
static void describe(const struct proto_redis_url *a, char *out, size_t size)
{
    if (a->path)
        snprintf(out, size, "%s", a->path);
    else
        snprintf(out, size, strchr(a->host, ':') ? "[%s]:%d" : "%s:%d", a->host, a->port);
}

int main(int argc, char **argv)
{
    struct config cfg;
    struct tail t = {.cfg = &cfg};
    char err[512];
    int rc;

    term_set_name("chat-tail");
    rc = load_config(&cfg, argc, argv, environ, err, sizeof(err));
    if (rc == TOOL_OPTIONS_HELP)
        usage(stdout);
    else if (rc < 0)
        fprintf(stderr, "chat-tail: %s\n", err);
    if (rc != TOOL_OPTIONS_RUN) {
        proto_redis_url_clear(&cfg.redis);
        return rc < 0 ? 2 : 0;
    }
    describe(&cfg.redis, t.where, sizeof(t.where));
    proto_init(xmalloc, free);
    setup_signals(&t);
    run(&t);
    if (stop_signal)
        term_notice("stopped by %s", stop_signal == SIGINT ? "SIGINT" : "SIGTERM");
    proto_redis_url_clear(&cfg.redis);
    return 0;
}
