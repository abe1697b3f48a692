/*
 * chat-bench: a load generator for chat brokers. One process drives many WebSocket clients
 * on one event loop, spread round-robin over one or more URLs (so traffic crosses gateways),
 * S of them sending numbered, timestamped messages at a total rate R; every receiver checks
 * each sender's sequence for losses and duplicates and records the latency in a histogram.
 * The servers' CPU time and memory (from /proc, given their PIDs) turn into the server CPU
 * per delivery, a figure that holds when the generator shares the machine.
 *
 * Protocols (--mode): chatbroker's JSON protocol (chat), Centrifugo's JSON protocol
 * (centrifugo), or bare text frames to any server that broadcasts them (raw). Workloads:
 * rooms (the default: fan-out to every member of the sender's room), --direct (each sender
 * sends to its own receivers in turn), --churn (connect, join, send one message, close, over
 * and over) and --idle (hold the connections: memory per connection). --rate takes a list of
 * rates: steps at one set of connections, stopping at the first step that loses messages or
 * passes --stop-p99.
 *
 * The receive path costs no allocation per message: frames arrive through wsclient's
 * fast path (straight from the input buffer), markers are parsed in place. --deflate offers
 * permessage-deflate (the clients then inflate what the server compressed) and --text fills
 * messages with English chat text instead of one repeated letter; the bytes the clients read
 * from their sockets are counted, so every step reports the bytes on the wire per delivery.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <event2/event.h>

#include "broker-tools/wsclient.h"
#include "proto/xalloc.h"

#define MAX_URLS 16
#define MAX_PIDS 32
#define MAX_SOURCES 64
#define MAX_STEPS 32
#define HIST_BUCKETS 2048 /* log-linear: 64 sub-buckets per power of two, from 1 us */
#define CHURN_TIMEOUT_S 10.0
#define SEED_EMAIL "bench@example.org"
#define SEND_LITERAL(cl, s) send_text((cl), (s), sizeof(s) - 1)

enum mode {
    MODE_CHAT = 0,   /* chatbroker: join a room, send {"type":"message",...} */
    MODE_RAW,        /* any server that broadcasts text frames */
    MODE_CENTRIFUGO, /* Centrifugo's JSON protocol: connect, subscribe, publish */
};

enum workload {
    WL_ROOMS = 0,
    WL_DIRECT,
    WL_CHURN,
    WL_IDLE,
};

enum phase {
    PHASE_CONNECT = 0,
    PHASE_SETTLE, /* all ready; a moment before the first send */
    PHASE_WARMUP,
    PHASE_MEASURE,
    PHASE_DRAIN,
    PHASE_DONE,
};

/* Where a client is on its way to ready (and, in churn, through its cycle). */
enum cstate {
    CS_IDLE = 0,   /* churn: no connection */
    CS_CONNECTING, /* handshake under way */
    CS_JOINING,    /* open; joining (chat: welcome, leave, join; centrifugo: connect, subscribe) */
    CS_READY,
    CS_SENT,    /* churn: the message is out, waiting for it to come back */
    CS_CLOSING, /* churn: the message came back, close handshake under way */
    CS_CLOSED,  /* the connection ended (not in churn) */
};

struct client {
    struct bench *b;
    struct wsc *c;
    uint32_t index;
    uint32_t room;
    uint8_t state;
    uint8_t has_id;
    char id[33];        /* chat: the client id from welcome */
    uint32_t *next_seq; /* per sender (direct: one, from the assigned sender) */
    uint32_t dm_sent;   /* direct: messages sent to this receiver */
    uint32_t cmd_id;    /* centrifugo: the last command id used */
    uint64_t cycle_ns;  /* churn: when this cycle began */
    uint64_t cycles;    /* churn: cycles begun by this slot (the message's sequence) */
};

struct opts {
    const char *urls[MAX_URLS];
    size_t n_urls;
    size_t clients, senders, rooms, size;
    double rates[MAX_STEPS];
    size_t n_rates;
    double warmup, duration, drain, settle, connect_timeout, stop_p99_ms;
    int pids[MAX_PIDS];
    size_t n_pids;
    int aux_pids[MAX_PIDS];
    size_t n_aux_pids;
    struct sockaddr_in sources[MAX_SOURCES];
    size_t n_sources;
    enum mode mode;
    enum workload workload;
    int seed_json; /* raw: wrap the text in the seed tutorials' {"email","username","message"} */
    int deflate;   /* offer permessage-deflate */
    int text;      /* pad messages with English sentences, not 'x' */
    int no_stop;
    size_t connect_batch;
    const char *room;   /* the single room's name (rooms == 1) */
    const char *prefix; /* room names: prefix + number */
    const char *label;
};

struct counters {
    uint64_t sent, sent_measured, expected, delivered, in_window, measured, lost, duplicates,
        errors, closed, send_failed;
    uint64_t cycles, cycle_failures, cycles_measured;
    uint64_t opens, deflate_opens; /* handshakes done; of them, with permessage-deflate */
};

struct cpu_sample {
    double self, pids[MAX_PIDS], user[MAX_PIDS], aux[MAX_PIDS], busy;
    long rss[MAX_PIDS], aux_rss[MAX_PIDS];
    uint64_t wire_in; /* bytes every client has read from its socket */
};

struct bench {
    struct event_base *base;
    struct opts o;
    struct wsc_url urls[MAX_URLS];
    struct client *clients;
    size_t started, ready, closed;
    size_t *members;   /* per room: ready clients in it */
    uint64_t *sent_by; /* per sender: messages sent */
    uint32_t *dm_next; /* direct, per sender: the next of its receivers */
    size_t step;
    enum phase phase;
    double t0, last_tick, phase_end, measure_start, measure_end, setup_s;
    double credit; /* messages owed by the rate */
    size_t next_sender;
    uint64_t hist[HIST_BUCKETS];
    uint64_t lat_max_ns;
    struct counters n, step0;        /* totals; totals at the start of the step */
    struct cpu_sample start, s0, s1; /* at start; at the measure window's start and end */
    struct event *tick;
    int stopped;            /* a step crossed a stop condition */
    uint64_t wire_in_ended; /* bytes read by connections that have ended */
    char pad[1 << 16];      /* message filler: 'x', or sentences (--text) */
};

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- latency histogram -------------------------------------------------------------------- */

static size_t bucket_of(uint64_t ns)
{
    uint64_t us = ns / 1000;
    int exp;

    if (us < 64)
        return (size_t)us;
    exp = 63 - __builtin_clzll(us); /* us >= 64: exp >= 6 */
    size_t b = (size_t)(exp - 5) * 64 + (size_t)((us >> (exp - 6)) & 63);
    return b < HIST_BUCKETS ? b : HIST_BUCKETS - 1;
}

static double bucket_us(size_t b)
{
    if (b < 64)
        return (double)b;
    size_t exp = b / 64 + 5, sub = b % 64;
    return ldexp(1.0 + (double)sub / 64.0, (int)exp);
}

static double percentile_ms(const struct bench *b, double p)
{
    uint64_t total = 0, seen = 0;

    for (size_t i = 0; i < HIST_BUCKETS; i++)
        total += b->hist[i];
    if (total == 0)
        return 0;
    for (size_t i = 0; i < HIST_BUCKETS; i++) {
        seen += b->hist[i];
        if ((double)seen >= p * (double)total)
            return bucket_us(i) / 1000.0;
    }
    return (double)b->lat_max_ns / 1e6;
}

static void hist_add(struct bench *b, uint64_t lat)
{
    b->hist[bucket_of(lat)]++;
    if (lat > b->lat_max_ns)
        b->lat_max_ns = lat;
}

/* ---- /proc -------------------------------------------------------------------------------- */

/* CPU seconds of pid's clock-tick accounting (utime + stime; the user part in *user). */
static double ticks_of_pid(int pid, double *user)
{
    char path[64], buf[1024];
    unsigned long ut = 0, st = 0;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    f = fopen(path, "r");
    if (f == NULL)
        return -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')');
    if (p == NULL ||
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return -1;
    if (user)
        *user = (double)ut / (double)sysconf(_SC_CLK_TCK);
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* CPU seconds of every thread of pid, from the scheduler's own nanosecond count
 * (/proc/PID/task/TID/schedstat); clock-tick sampling (10 ms here) is too coarse for short
 * windows and can beat with the load's timer. */
static double cpu_of_pid(int pid)
{
    char path[300];
    struct dirent *e;
    double total = 0;
    int found = 0;
    DIR *d;

    snprintf(path, sizeof(path), "/proc/%d/task", pid);
    d = opendir(path);
    if (d == NULL)
        return -1;
    while ((e = readdir(d)) != NULL) {
        unsigned long long ns;
        FILE *f;

        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "/proc/%d/task/%s/schedstat", pid, e->d_name);
        f = fopen(path, "r");
        if (f == NULL)
            continue;
        if (fscanf(f, "%llu", &ns) == 1) {
            total += (double)ns / 1e9;
            found = 1;
        }
        fclose(f);
    }
    closedir(d);
    return found ? total : ticks_of_pid(pid, NULL);
}

static long rss_kib_of_pid(int pid)
{
    char path[64], line[256];
    long kib = -1;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    f = fopen(path, "r");
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

/* CPU seconds the whole machine spent busy (every core), from /proc/stat. */
static double machine_busy_s(void)
{
    unsigned long long v[10] = {0};
    FILE *f = fopen("/proc/stat", "r");
    int n;

    if (f == NULL)
        return 0;
    n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4],
               &v[5], &v[6], &v[7]);
    fclose(f);
    if (n < 8)
        return 0;
    /* user nice system idle iowait irq softirq steal: busy is all but idle and iowait */
    return (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / (double)sysconf(_SC_CLK_TCK);
}

static double cpu_self(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void sample(const struct bench *b, struct cpu_sample *s)
{
    s->self = cpu_self();
    s->busy = machine_busy_s();
    s->wire_in = b->wire_in_ended;
    for (size_t i = 0; i < b->o.clients; i++)
        if (b->clients[i].c)
            s->wire_in += wsc_bytes_in(b->clients[i].c);
    for (size_t i = 0; i < b->o.n_pids; i++) {
        s->pids[i] = cpu_of_pid(b->o.pids[i]);
        if (ticks_of_pid(b->o.pids[i], &s->user[i]) < 0)
            s->user[i] = 0;
        s->rss[i] = rss_kib_of_pid(b->o.pids[i]);
    }
    for (size_t i = 0; i < b->o.n_aux_pids; i++) {
        s->aux[i] = cpu_of_pid(b->o.aux_pids[i]);
        s->aux_rss[i] = rss_kib_of_pid(b->o.aux_pids[i]);
    }
}

/* ---- names and markers -------------------------------------------------------------------- */

static int room_name(const struct bench *b, unsigned room, char *out, size_t size)
{
    if (b->o.workload == WL_CHURN)
        return snprintf(out, size, "%schurn-%u", b->o.prefix, room);
    if (b->o.rooms == 1 && b->o.room)
        return snprintf(out, size, "%s", b->o.room);
    return snprintf(out, size, "%s%u", b->o.prefix, room);
}

/* Direct workload: receivers are the clients from index S on; receiver r belongs to sender
 * (r - S) % S, which sends to its receivers in turn. */
static size_t dm_sender_of(const struct bench *b, size_t r)
{
    return (r - b->o.senders) % b->o.senders;
}

static size_t dm_receivers_of(const struct bench *b, size_t s)
{
    size_t first = b->o.senders + s;
    return first < b->o.clients ? (b->o.clients - first + b->o.senders - 1) / b->o.senders : 0;
}

/* Parse the marker "B<sender>:<seq>:<ns>:" at p (p < end). Returns 0 or -1. */
static int parse_marker_at(const uint8_t *p, const uint8_t *end, size_t *sender, uint64_t *seq,
                           uint64_t *ns)
{
    uint64_t v[3] = {0, 0, 0};

    if (p >= end || *p++ != 'B')
        return -1;
    for (int i = 0; i < 3; i++) {
        if (p >= end || *p < '0' || *p > '9')
            return -1;
        while (p < end && *p >= '0' && *p <= '9')
            v[i] = v[i] * 10 + (uint64_t)(*p++ - '0');
        if (p >= end || *p++ != ':')
            return -1;
    }
    *sender = (size_t)v[0];
    *seq = v[1];
    *ns = v[2];
    return 0;
}

/* The marker in one message: after "message":" in JSON, or the message's first byte. */
static int parse_marker(const uint8_t *data, size_t len, size_t *sender, uint64_t *seq,
                        uint64_t *ns)
{
    const uint8_t *p;

    if (len > 0 && data[0] == 'B')
        return parse_marker_at(data, data + len, sender, seq, ns);
    p = memmem(data, len, "\"message\":\"B", 12);
    if (p == NULL)
        return -1;
    return parse_marker_at(p + 11, data + len, sender, seq, ns);
}

/* ---- message text ------------------------------------------------------------------------- */

/* --text: what a busy team room reads like. No quotes, backslashes or newlines, so the text
 * goes into JSON as it is and raw and centrifugo mode can split on newlines. */
static const char *const chat_sentences[] = {
    "Morning all, the build on main is green again after last night's fix.",
    "Can someone review my pull request before lunch? It only touches the parser.",
    "I think the flaky test is a timing issue, it passes every time on my laptop.",
    "The deploy to staging went fine, production is scheduled for three o'clock.",
    "Has anyone seen the latency graph for the European region this morning?",
    "We should raise the connection limit before the marketing campaign starts.",
    "Thanks for the quick turnaround, that saved us a lot of time today.",
    "I'm going to be offline for an hour, ping me if anything breaks.",
    "The customer says the export still times out when the report is large.",
    "Let's move the planning meeting to Thursday, half the team is travelling.",
    "Good catch, I had not thought about what happens when the queue is empty.",
    "The new dashboard looks great, but the colours are hard to tell apart.",
    "Could we add a retry with a backoff instead of failing the whole batch?",
    "I updated the runbook with the steps we took during yesterday's incident.",
    "Memory usage on the second worker keeps growing, I'm taking a heap profile.",
    "Lunch is here if anyone wants some, there is plenty of pizza left.",
    "The release notes need a line about the changed configuration defaults.",
    "Is the database migration safe to run while the service is under load?",
    "I can take the on-call shift this weekend if someone covers next Friday.",
    "The documentation says the limit is per user, but the code applies it per room.",
    "Let me know when the hotfix is out and I'll tell the support team.",
    "We hit the rate limit on the upstream API again around noon.",
    "That sounds reasonable to me, let's try it and look at the numbers tomorrow.",
    "The benchmark shows a small regression, about three percent on the big rooms.",
    "Please remember to rotate the test credentials before the audit next week.",
    "I merged the branch, so everyone should rebase before pushing anything new.",
    "The load balancer health checks fail for a few seconds after each restart.",
    "Who owns the notification service now that the old team has moved on?",
    "I'll write up a short proposal and share it in this room later today.",
    "Nice work everyone, the error rate is down to almost nothing since Monday.",
    "Quick question, do we keep chat history for thirty days or ninety?",
    "Heads up, the office network will be down for maintenance tonight at nine.",
};

/* Fill the pad with sentences in a fixed pseudo-random order, separated by spaces. */
static void fill_text(char *pad, size_t size)
{
    size_t n_sentences = sizeof(chat_sentences) / sizeof(chat_sentences[0]), off = 0;
    uint32_t x = 2463534242u;

    while (off < size) {
        x ^= x << 13; /* xorshift32: any fixed order will do, the same in every run */
        x ^= x >> 17;
        x ^= x << 5;
        const char *t = chat_sentences[x % n_sentences];
        size_t n = strlen(t) + 1 < size - off ? strlen(t) : size - off - 1;
        memcpy(pad + off, t, n);
        off += n;
        pad[off++] = ' ';
    }
}

/* Where a message's filler starts in the pad: with --text, somewhere different for each
 * message, so no two messages are the same text. */
static const char *filler(const struct bench *b, size_t sender, uint64_t seq)
{
    size_t span = sizeof(b->pad) - b->o.size;

    if (!b->o.text)
        return b->pad;
    return b->pad + (size_t)((seq * 7919u + sender * 104729u) % span);
}

/* ---- receiving ---------------------------------------------------------------------------- */

static void record(struct bench *b, struct client *cl, size_t sender, uint64_t seq, uint64_t ns)
{
    uint64_t t = now_ns();
    uint32_t *next;

    if (b->o.workload == WL_DIRECT) {
        if (cl->index < b->o.senders || dm_sender_of(b, cl->index) != sender)
            return;
        next = &cl->next_seq[0];
    } else {
        next = &cl->next_seq[sender];
    }
    b->n.delivered++;
    if (seq == *next) {
        (*next)++;
    } else if (seq > *next) {
        b->n.lost += seq - *next;
        *next = (uint32_t)seq + 1;
    } else {
        b->n.duplicates++; /* or a message already counted lost at the end of a step */
        return;
    }
    if (b->phase == PHASE_MEASURE)
        b->n.in_window++;
    double sent_at = (double)ns / 1e9;
    if (sent_at >= b->measure_start && sent_at < b->measure_end) {
        b->n.measured++;
        hist_add(b, t > ns ? t - ns : 0);
    }
}

static void send_text(struct client *cl, const char *s, size_t len)
{
    if (cl->c && wsc_send(cl->c, 0, s, len) != 0)
        cl->b->n.send_failed++;
}

static void become_ready(struct client *cl)
{
    struct bench *b = cl->b;

    cl->state = CS_READY;
    if (b->o.workload == WL_CHURN)
        return;
    b->ready++;
    if (b->members)
        b->members[cl->room]++;
}

static void send_one(struct bench *b, struct client *from, size_t sender, struct client *to);

/* Churn: the slot's own message came back; close, and count the cycle when the close ends. */
static void churn_delivered(struct bench *b, struct client *cl, size_t sender, uint64_t seq)
{
    if (cl->state != CS_SENT || sender != cl->index || seq + 1 != cl->cycles)
        return;
    b->n.delivered++;
    if (b->phase == PHASE_MEASURE)
        hist_add(b, now_ns() - cl->cycle_ns);
    cl->state = CS_CLOSING;
    wsc_close(cl->c, 1000, NULL);
}

static void on_marker(struct bench *b, struct client *cl, const uint8_t *data, size_t len)
{
    size_t sender;
    uint64_t seq, ns;

    if (parse_marker(data, len, &sender, &seq, &ns) != 0)
        return;
    if (b->o.workload == WL_CHURN)
        churn_delivered(b, cl, sender, seq);
    else if (sender < b->o.senders && cl->state == CS_READY)
        record(b, cl, sender, seq, ns);
}

/* chat: welcome, then (unless the room is the lobby every session starts in) leave the lobby
 * and join the room; ready on the own presence event that proves the room is live. */
static void chat_joining(struct bench *b, struct client *cl, const uint8_t *data, size_t len)
{
    char room[96], msg[256], want[128];
    const uint8_t *p;
    int n;

    room_name(b, cl->room, room, sizeof(room));
    if (!cl->has_id) {
        if ((p = memmem(data, len, "\"type\":\"welcome\",\"id\":\"", 23)) == NULL ||
            p + 23 + 32 > data + len)
            return;
        memcpy(cl->id, p + 23, 32);
        cl->id[32] = '\0';
        cl->has_id = 1;
        /* direct: out of the lobby, into no room; churn: into its own room as well as the
         * lobby; others: out of the lobby into their room, unless that is the lobby */
        if (b->o.workload == WL_DIRECT) {
            SEND_LITERAL(cl, "{\"type\":\"leave\",\"room\":\"lobby\"}");
        } else if (strcmp(room, "lobby") != 0) {
            if (b->o.workload != WL_CHURN)
                SEND_LITERAL(cl, "{\"type\":\"leave\",\"room\":\"lobby\"}");
            n = snprintf(msg, sizeof(msg), "{\"type\":\"join\",\"room\":\"%s\"}", room);
            send_text(cl, msg, (size_t)n);
        }
        return;
    }
    if (memmem(data, len, "\"type\":\"presence\"", 17) == NULL ||
        memmem(data, len, cl->id, 32) == NULL)
        return;
    if (b->o.workload == WL_DIRECT) {
        if (memmem(data, len, "\"event\":\"leave\"", 15) &&
            memmem(data, len, "\"room\":\"lobby\"", 14))
            become_ready(cl);
        return;
    }
    n = snprintf(want, sizeof(want), "\"room\":\"%s\"", room);
    if (memmem(data, len, "\"event\":\"join\"", 14) && memmem(data, len, want, (size_t)n))
        become_ready(cl);
}

static void chat_message(struct bench *b, struct client *cl, const uint8_t *data, size_t len)
{
    if (cl->state == CS_JOINING) {
        chat_joining(b, cl, data, len);
        if (cl->state == CS_READY && b->o.workload == WL_CHURN)
            send_one(b, cl, cl->index, NULL);
        return;
    }
    if (len > 20 && memcmp(data, "{\"type\":\"error\"", 15) == 0) {
        b->n.errors++;
        return;
    }
    on_marker(b, cl, data, len);
}

static void centrifugo_subscribe(struct bench *b, struct client *cl)
{
    char room[96], msg[256];
    int n;

    if (b->o.workload == WL_DIRECT)
        snprintf(room, sizeof(room), "%sdm-%u", b->o.prefix, cl->index);
    else
        room_name(b, cl->room, room, sizeof(room));
    n = snprintf(msg, sizeof(msg), "{\"id\":%u,\"subscribe\":{\"channel\":\"%s\"}}", ++cl->cmd_id,
                 room);
    send_text(cl, msg, (size_t)n);
}

/* One line of a Centrifugo frame (replies and pushes come newline-separated). */
static void centrifugo_line(struct bench *b, struct client *cl, const uint8_t *p, size_t len)
{
    if (len == 2 && p[0] == '{' && p[1] == '}') { /* a ping: answer with a pong */
        SEND_LITERAL(cl, "{}");
        return;
    }
    if (len > 8 && memcmp(p, "{\"push\":", 8) == 0) {
        if (memmem(p, len, "\"pub\":", 6))
            on_marker(b, cl, p, len);
        return;
    }
    if (len > 6 && memcmp(p, "{\"id\":", 6) == 0) {
        unsigned id = (unsigned)strtoul((const char *)p + 6, NULL, 10);
        if (memmem(p, len, "\"error\":", 8)) {
            b->n.errors++;
            if (cl->state == CS_JOINING && cl->c)
                wsc_close(cl->c, 1000, NULL);
            return;
        }
        if (cl->state != CS_JOINING)
            return;
        if (id == 1) { /* connected */
            if (b->o.workload == WL_DIRECT && cl->index < b->o.senders)
                become_ready(cl); /* a sender only publishes */
            else
                centrifugo_subscribe(b, cl);
        } else if (id == 2) { /* subscribed */
            become_ready(cl);
            if (b->o.workload == WL_CHURN)
                send_one(b, cl, cl->index, NULL);
        }
    }
}

static void on_message(void *arg, struct wsc *c, int binary, const uint8_t *data, size_t len)
{
    struct client *cl = arg;
    struct bench *b = cl->b;

    (void)c;
    (void)binary;
    if (b->o.mode == MODE_CHAT) {
        chat_message(b, cl, data, len);
        return;
    }
    /* raw and centrifugo: one or more newline-separated messages */
    const uint8_t *end = data + len;
    while (data < end) {
        const uint8_t *nl = memchr(data, '\n', (size_t)(end - data));
        size_t n = (size_t)((nl ? nl : end) - data);
        if (b->o.mode == MODE_CENTRIFUGO)
            centrifugo_line(b, cl, data, n);
        else if (n > 0)
            on_marker(b, cl, data, n);
        data += n + 1;
    }
}

static void on_open(void *arg, struct wsc *c, const char *subprotocol)
{
    struct client *cl = arg;
    struct bench *b = cl->b;

    (void)subprotocol;
    cl->state = CS_JOINING;
    b->n.opens++;
    b->n.deflate_opens += (uint64_t)wsc_has_deflate(c);
    if (b->o.mode == MODE_RAW) {
        become_ready(cl);
        if (b->o.workload == WL_CHURN)
            send_one(b, cl, cl->index, NULL);
    } else if (b->o.mode == MODE_CENTRIFUGO) {
        cl->cmd_id = 1;
        SEND_LITERAL(cl, "{\"id\":1,\"connect\":{\"name\":\"chat-bench\"}}");
    }
    /* chat: the welcome comes by itself */
}

static void on_close(void *arg, struct wsc *c, int code, int http_status, const char *reason)
{
    struct client *cl = arg;
    struct bench *b = cl->b;

    b->wire_in_ended += wsc_bytes_in(c);
    cl->c = NULL;
    if (b->o.workload == WL_CHURN) {
        int ok = cl->state == CS_CLOSING && (code == 1000 || code == 1005);
        if (ok) {
            b->n.cycles++;
            if (b->phase == PHASE_MEASURE)
                b->n.cycles_measured++;
        } else {
            b->n.cycle_failures++;
            if (b->n.cycle_failures <= 5)
                fprintf(stderr,
                        "chat-bench: churn slot %u failed in state %d: code=%d http=%d %s\n",
                        cl->index, cl->state, code, http_status, reason);
        }
        cl->state = CS_IDLE;
        return;
    }
    if (cl->state == CS_READY && b->members)
        b->members[cl->room]--;
    if (b->phase < PHASE_DRAIN || code != 1000) {
        b->n.closed++;
        if (b->n.closed <= 5)
            fprintf(stderr, "chat-bench: client %u closed: code=%d http=%d %s\n", cl->index, code,
                    http_status, reason);
    }
    cl->state = CS_CLOSED;
    b->closed++;
}

static const struct wsc_handler handler = {on_open, on_message, on_close};

/* ---- sending ------------------------------------------------------------------------------ */

/* Send one message from `from` (sender number `sender`): to its room, or to `to` (direct). */
static void send_one(struct bench *b, struct client *from, size_t sender, struct client *to)
{
    char marker[96], room[96], buf[512 + (1 << 16)];
    uint64_t seq;
    int n, m;

    if (from->state != CS_READY || from->c == NULL)
        return;
    if (b->o.workload == WL_CHURN)
        seq = from->cycles++;
    else if (to)
        seq = to->dm_sent;
    else
        seq = b->sent_by[sender];
    n = snprintf(marker, sizeof(marker), "B%zu:%" PRIu64 ":%" PRIu64 ":", sender, seq, now_ns());
    int pad = b->o.size > (size_t)n ? (int)(b->o.size - (size_t)n) : 0;
    const char *fill = filler(b, sender, seq);
    if (to && b->o.mode == MODE_CENTRIFUGO)
        snprintf(room, sizeof(room), "%sdm-%u", b->o.prefix, to->index);
    else
        room_name(b, from->room, room, sizeof(room));
    switch (b->o.mode) {
    case MODE_RAW:
        if (b->o.seed_json)
            m = snprintf(buf, sizeof(buf),
                         "{\"email\":\"" SEED_EMAIL "\",\"username\":\"bench-%zu\","
                         "\"message\":\"%s%.*s\"}",
                         sender, marker, pad, fill);
        else
            m = snprintf(buf, sizeof(buf), "%s%.*s", marker, pad, fill);
        break;
    case MODE_CENTRIFUGO:
        m = snprintf(
            buf, sizeof(buf),
            "{\"id\":%u,\"publish\":{\"channel\":\"%s\",\"data\":{\"message\":\"%s%.*s\"}}}",
            ++from->cmd_id, room, marker, pad, fill);
        break;
    default:
        if (to)
            m = snprintf(buf, sizeof(buf),
                         "{\"type\":\"direct\",\"to\":\"%s\",\"message\":\"%s%.*s\"}", to->id,
                         marker, pad, fill);
        else
            m = snprintf(buf, sizeof(buf),
                         "{\"type\":\"message\",\"room\":\"%s\",\"message\":\"%s%.*s\"}", room,
                         marker, pad, fill);
        break;
    }
    if (wsc_send(from->c, 0, buf, (size_t)m) != 0) {
        b->n.send_failed++;
        return;
    }
    b->n.sent++;
    if (b->phase == PHASE_MEASURE)
        b->n.sent_measured++;
    b->n.expected += b->o.workload == WL_ROOMS ? b->members[from->room] : 1;
    if (b->o.workload == WL_CHURN)
        from->state = CS_SENT;
    else if (to)
        to->dm_sent++;
    else
        b->sent_by[sender]++;
}

static void send_due(struct bench *b, double dt)
{
    size_t budget;
    double rate = b->o.rates[b->step];

    if (b->o.senders == 0)
        return;
    b->credit += rate * dt;
    budget = (size_t)b->credit;
    b->credit -= (double)budget;
    for (size_t tries = 0; budget > 0 && tries < budget + b->o.senders; tries++) {
        size_t s = b->next_sender;
        b->next_sender = (b->next_sender + 1) % b->o.senders;
        if (b->o.workload == WL_DIRECT) {
            size_t nr = dm_receivers_of(b, s);
            if (nr == 0)
                continue;
            size_t r = b->o.senders + s + (size_t)b->dm_next[s] * b->o.senders;
            b->dm_next[s] = (uint32_t)((b->dm_next[s] + 1) % nr);
            if (b->clients[r].state != CS_READY)
                continue;
            send_one(b, &b->clients[s], s, &b->clients[r]);
        } else {
            send_one(b, &b->clients[s], s, NULL);
        }
        budget--;
    }
}

/* ---- connections -------------------------------------------------------------------------- */

static void connect_client(struct bench *b, struct client *cl, size_t n)
{
    struct wsc_options wo = {0};

    if (b->o.n_sources) {
        wo.source = (const struct sockaddr *)&b->o.sources[n % b->o.n_sources];
        wo.source_len = sizeof(struct sockaddr_in);
    }
    wo.fast_recv = getenv("CHAT_BENCH_SLOW_RECV") == NULL;
    wo.deflate = b->o.deflate;
    cl->state = CS_CONNECTING;
    cl->has_id = 0;
    cl->cmd_id = 0;
    cl->c = wsc_connect(b->base, &b->urls[n % b->o.n_urls], &wo, &handler, cl);
}

static void start_clients(struct bench *b)
{
    for (size_t k = 0; k < b->o.connect_batch && b->started < b->o.clients; k++) {
        connect_client(b, &b->clients[b->started], b->started);
        b->started++;
    }
}

/* Churn: idle slots start a new cycle; a cycle stuck past the timeout fails. */
static void churn_tick(struct bench *b, int start)
{
    uint64_t t = now_ns();
    size_t begun = 0;

    for (size_t i = 0; i < b->o.clients; i++) {
        struct client *cl = &b->clients[i];
        if (cl->state == CS_IDLE) {
            if (start && begun < b->o.connect_batch) {
                cl->cycle_ns = t;
                connect_client(b, cl, b->started++);
                begun++;
            }
        } else if (cl->c && (double)(t - cl->cycle_ns) / 1e9 > CHURN_TIMEOUT_S &&
                   cl->state != CS_CLOSING) {
            cl->state = CS_CONNECTING; /* not CLOSING: on_close counts a failure */
            wsc_close(cl->c, 1000, NULL);
        }
    }
}

/* ---- steps and phases --------------------------------------------------------------------- */

/* At the end of a step's drain: what has not arrived counts as lost, and the receivers skip
 * it, so the next step starts clean. */
static void settle_missing(struct bench *b)
{
    if (b->o.workload == WL_DIRECT) {
        for (size_t r = b->o.senders; r < b->o.clients; r++) {
            struct client *cl = &b->clients[r];
            if (cl->state != CS_READY)
                continue;
            if (cl->dm_sent > cl->next_seq[0])
                b->n.lost += cl->dm_sent - cl->next_seq[0];
            cl->next_seq[0] = cl->dm_sent;
        }
        return;
    }
    for (size_t i = 0; i < b->o.clients; i++) {
        struct client *cl = &b->clients[i];
        if (cl->state != CS_READY)
            continue;
        for (size_t s = cl->room % b->o.rooms; s < b->o.senders; s += b->o.rooms) {
            if (b->sent_by[s] > cl->next_seq[s])
                b->n.lost += b->sent_by[s] - cl->next_seq[s];
            cl->next_seq[s] = (uint32_t)b->sent_by[s];
        }
    }
}

static void report_step(struct bench *b);

static void begin_step(struct bench *b)
{
    double t = now_s();

    memset(b->hist, 0, sizeof(b->hist));
    b->lat_max_ns = 0;
    b->step0 = b->n;
    b->phase = PHASE_WARMUP;
    b->phase_end = t + b->o.warmup;
    b->measure_start = b->phase_end;
    b->measure_end = b->measure_start + b->o.duration;
}

static void enter_phase(struct bench *b, enum phase p, double seconds)
{
    b->phase = p;
    b->phase_end = now_s() + seconds;
    if (p == PHASE_MEASURE) {
        sample(b, &b->s0);
    } else if (p == PHASE_DRAIN) {
        sample(b, &b->s1);
    } else if (p == PHASE_DONE) {
        event_base_loopexit(b->base, NULL);
    }
}

static void end_step(struct bench *b)
{
    double p99;

    if (b->o.workload == WL_ROOMS || b->o.workload == WL_DIRECT)
        settle_missing(b);
    report_step(b);
    p99 = percentile_ms(b, .99);
    /* stop at loss, a closed client, an error, p99 past the bound, or when the offered rate
     * was not sent (the generator, or the server's backpressure, could not keep up) */
    double sent_rate = (double)(b->n.sent_measured - b->step0.sent_measured) / b->o.duration;
    if (!b->o.no_stop &&
        (b->n.lost > b->step0.lost || p99 > b->o.stop_p99_ms || b->n.closed > b->step0.closed ||
         b->n.errors > b->step0.errors || sent_rate < 0.9 * b->o.rates[b->step])) {
        b->stopped = 1;
    }
    if (b->step + 1 < b->o.n_rates && !b->stopped) {
        b->step++;
        begin_step(b);
    } else {
        enter_phase(b, PHASE_DONE, 0);
    }
}

/* SIGTERM or SIGINT: stop where we are and report (idle: the caller has measured). */
static void on_signal(evutil_socket_t fd, short what, void *arg)
{
    struct bench *b = arg;

    (void)fd;
    (void)what;
    if (b->o.workload != WL_IDLE && (b->phase == PHASE_MEASURE || b->phase == PHASE_DRAIN)) {
        if (b->phase == PHASE_MEASURE)
            sample(b, &b->s1);
        b->stopped = 1;
        end_step(b);
        return;
    }
    enter_phase(b, PHASE_DONE, 0);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct bench *b = arg;
    double t = now_s(), dt = b->last_tick ? t - b->last_tick : 0;

    (void)fd;
    (void)what;
    b->last_tick = t;
    if (dt > 0.1)
        dt = 0.1; /* a stalled loop does not turn into a burst */
    if (b->o.workload == WL_CHURN) {
        churn_tick(b, b->phase < PHASE_DRAIN);
        if (b->phase == PHASE_CONNECT) { /* churn has no connect phase: warm up at once */
            b->setup_s = 0;
            begin_step(b);
        } else if (t >= b->phase_end) {
            if (b->phase == PHASE_WARMUP) {
                enter_phase(b, PHASE_MEASURE, b->o.duration);
            } else if (b->phase == PHASE_MEASURE) {
                enter_phase(b, PHASE_DRAIN, CHURN_TIMEOUT_S + 1);
            } else if (b->phase == PHASE_DRAIN) {
                enter_phase(b, PHASE_DONE, 0);
                report_step(b);
            }
        }
        if (b->phase == PHASE_DRAIN) { /* done once every slot is idle */
            size_t busy = 0;
            for (size_t i = 0; i < b->o.clients; i++)
                busy += b->clients[i].state != CS_IDLE;
            if (busy == 0) {
                enter_phase(b, PHASE_DONE, 0);
                report_step(b);
            }
        }
        return;
    }
    switch (b->phase) {
    case PHASE_CONNECT:
        start_clients(b);
        if (b->ready + b->closed >= b->o.clients) {
            b->setup_s = t - b->t0;
            if (b->o.workload == WL_IDLE) {
                printf("ready %zu\n", b->ready);
                fflush(stdout);
                enter_phase(b, PHASE_MEASURE, b->o.duration);
            } else {
                enter_phase(b, PHASE_SETTLE, b->o.settle);
            }
        } else if (t - b->t0 > b->o.connect_timeout) {
            fprintf(stderr, "chat-bench: only %zu of %zu clients ready after %.0f s\n", b->ready,
                    b->o.clients, b->o.connect_timeout);
            b->setup_s = t - b->t0;
            enter_phase(b, PHASE_DONE, 0);
        }
        break;
    case PHASE_SETTLE:
        if (t >= b->phase_end)
            begin_step(b);
        break;
    case PHASE_WARMUP:
    case PHASE_MEASURE:
        if (b->o.workload != WL_IDLE)
            send_due(b, dt);
        if (t >= b->phase_end) {
            if (b->phase == PHASE_WARMUP)
                enter_phase(b, PHASE_MEASURE, b->o.duration);
            else if (b->o.workload == WL_IDLE)
                enter_phase(b, PHASE_DONE, 0);
            else
                enter_phase(b, PHASE_DRAIN, b->o.drain);
        }
        break;
    case PHASE_DRAIN: /* until everything sent has arrived, or --drain has passed */
        if (t >= b->phase_end ||
            b->n.delivered - b->step0.delivered >= b->n.expected - b->step0.expected)
            end_step(b);
        break;
    default:
        break;
    }
}

/* ---- report ------------------------------------------------------------------------------- */

static const char *mode_name(enum mode m)
{
    return m == MODE_RAW ? "raw" : m == MODE_CENTRIFUGO ? "centrifugo" : "chat";
}

static const char *workload_name(enum workload w)
{
    return w == WL_DIRECT ? "direct" : w == WL_CHURN ? "churn" : w == WL_IDLE ? "idle" : "rooms";
}

/* The bytes the clients read from their sockets between samples s0 and s1, per delivery (or
 * per cycle) when deliveries is not 0: a line for people, and JSON fields (each after a comma)
 * in json. */
static void wire_figures(const struct bench *b, const struct cpu_sample *s0,
                         const struct cpu_sample *s1, uint64_t deliveries, char *json, size_t size)
{
    uint64_t wire = s1->wire_in - s0->wire_in;
    char per[32] = "null";

    if (deliveries)
        snprintf(per, sizeof(per), "%.1f", (double)wire / (double)deliveries);
    printf("  wire: %" PRIu64 " bytes read by the clients%s%s%s; deflate %s, agreed in %" PRIu64
           " of %" PRIu64 " handshakes; %s text\n",
           wire, deliveries ? ", " : "", deliveries ? per : "", deliveries ? " per delivery" : "",
           b->o.deflate ? "offered" : "not offered", b->n.deflate_opens, b->n.opens,
           b->o.text ? "English" : "'x'");
    snprintf(json, size,
             ",\"deflate\":%d,\"deflate_opens\":%" PRIu64 ",\"opens\":%" PRIu64
             ",\"text\":%d,\"wire_bytes_in\":%" PRIu64 ",\"wire_bytes_per_delivery\":%s",
             b->o.deflate, b->n.deflate_opens, b->n.opens, b->o.text, wire, per);
}

static void report_idle(struct bench *b)
{
    struct cpu_sample now;
    long rss = 0, before = 0;
    char list[512] = "";
    size_t off = 0;

    sample(b, &now);
    for (size_t i = 0; i < b->o.n_pids; i++) {
        rss += now.rss[i];
        before += b->start.rss[i];
        off += (size_t)snprintf(list + off, sizeof(list) - off, "%s%ld", i ? "," : "", now.rss[i]);
    }
    double per = b->ready ? (double)(rss - before) * 1024.0 / (double)b->ready : 0;
    char wire[256];
    printf("%-28s %zu of %zu clients ready in %.1f s, server RSS %ld KiB (%ld before): %.0f "
           "bytes per connection\n",
           b->o.label, b->ready, b->o.clients, b->setup_s, rss, before, per);
    wire_figures(b, &b->start, &now, 0, wire, sizeof(wire));
    printf("{\"bench\":\"%s\",\"mode\":\"%s\",\"workload\":\"idle\",\"clients\":%zu,"
           "\"ready\":%zu,\"closed\":%" PRIu64 ",\"setup_s\":%.2f,\"rss_kib\":%ld,"
           "\"rss_start_kib\":%ld,\"rss_per_pid_kib\":[%s],\"bytes_per_conn\":%.0f%s}\n",
           b->o.label, mode_name(b->o.mode), b->o.clients, b->ready, b->n.closed, b->setup_s, rss,
           before, list, per, wire);
    fflush(stdout);
}

static void report_step(struct bench *b)
{
    const struct counters *c0 = &b->step0;
    double secs = b->o.duration, gw = 0, user = 0, aux = 0, self = b->s1.self - b->s0.self;
    double busy = b->s1.busy - b->s0.busy;
    long rss = 0;
    char list[512] = "", wire[256];
    size_t off = 0;
    double la[3] = {0, 0, 0};

    for (size_t i = 0; i < b->o.n_pids; i++) {
        gw += b->s1.pids[i] - b->s0.pids[i];
        user += b->s1.user[i] - b->s0.user[i];
        rss += b->s1.rss[i];
        off +=
            (size_t)snprintf(list + off, sizeof(list) - off, "%s%ld", i ? "," : "", b->s1.rss[i]);
    }
    for (size_t i = 0; i < b->o.n_aux_pids; i++)
        aux += b->s1.aux[i] - b->s0.aux[i];
    if (getloadavg(la, 3) < 0)
        la[0] = 0;

    uint64_t sent = b->n.sent - c0->sent, delivered = b->n.delivered - c0->delivered;
    uint64_t lost = b->n.lost - c0->lost, dups = b->n.duplicates - c0->duplicates;
    uint64_t errors = b->n.errors - c0->errors, closed = b->n.closed - c0->closed;
    uint64_t measured = b->n.measured - c0->measured, expected = b->n.expected - c0->expected;
    double rate = b->o.rates[b->step];
    double other = busy - self - gw - aux;
    const char *w = workload_name(b->o.workload);

    if (b->o.workload == WL_CHURN) {
        uint64_t cyc = b->n.cycles_measured;
        double per = cyc ? gw * 1e6 / (double)cyc : 0;
        printf("%-28s churn: %zu slots, %.0f cycles/s, %" PRIu64 " cycles, %" PRIu64 " failures\n",
               b->o.label, b->o.clients, (double)cyc / secs, b->n.cycles, b->n.cycle_failures);
        printf("  cycle ms (connect to own message back): p50 %.3f  p99 %.3f  max %.3f\n",
               percentile_ms(b, .5), percentile_ms(b, .99), (double)b->lat_max_ns / 1e6);
        printf("  CPU s: bench %.2f  servers %.2f (%.1f us per cycle)  aux %.2f  others %.2f\n",
               self, gw, per, aux, other);
        wire_figures(b, &b->s0, &b->s1, cyc, wire, sizeof(wire));
        printf("{\"bench\":\"%s\",\"mode\":\"%s\",\"workload\":\"churn\",\"clients\":%zu,"
               "\"seconds\":%.1f,\"cycles\":%" PRIu64 ",\"cycles_measured\":%" PRIu64
               ",\"cycles_per_s\":%.1f,\"failures\":%" PRIu64 ",\"errors\":%" PRIu64
               ",\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"p999_ms\":%.3f,\"max_ms\":%.3f,"
               "\"bench_cpu_s\":%.3f,\"gateway_cpu_s\":%.3f,\"gateway_us_per_cycle\":%.1f,"
               "\"aux_cpu_s\":%.3f,\"other_cpu_s\":%.3f,\"gateway_rss_kib\":%ld,"
               "\"loadavg\":%.2f%s}\n",
               b->o.label, mode_name(b->o.mode), b->o.clients, secs, b->n.cycles, cyc,
               (double)cyc / secs, b->n.cycle_failures, b->n.errors, percentile_ms(b, .5),
               percentile_ms(b, .99), percentile_ms(b, .999), (double)b->lat_max_ns / 1e6, self, gw,
               per, aux, other, rss, la[0], wire);
        fflush(stdout);
        return;
    }
    /* throughput and CPU per delivery: deliveries received in the measured window, the
     * window the CPU times cover; latency: messages sent in it */
    uint64_t in_window = b->n.in_window - c0->in_window;
    double dps = (double)in_window / secs;
    double us_per = in_window ? gw * 1e6 / (double)in_window : 0;
    printf("%-28s %s step %zu: clients %zu senders %zu rooms %zu rate %.0f/s size %zu "
           "(ready in %.1f s)\n",
           b->o.label, w, b->step, b->o.clients, b->o.senders, b->o.rooms, rate, b->o.size,
           b->setup_s);
    printf("  sent %" PRIu64 "  delivered %" PRIu64 " of %" PRIu64
           "  measured %.0f/s  lost %" PRIu64 "  duplicates %" PRIu64 "  errors %" PRIu64
           "  closed %" PRIu64 "\n",
           sent, delivered, expected, dps, lost, dups, errors, closed);
    printf("  latency ms: p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f\n",
           percentile_ms(b, .5), percentile_ms(b, .9), percentile_ms(b, .99),
           percentile_ms(b, .999), (double)b->lat_max_ns / 1e6);
    printf("  CPU s: bench %.2f  servers %.2f (%.3f us per delivery, %.3f in user space)  aux "
           "%.2f  others %.2f  server RSS KiB %s\n",
           self, gw, us_per, in_window ? user * 1e6 / (double)in_window : 0, aux, other, list);
    wire_figures(b, &b->s0, &b->s1, in_window, wire, sizeof(wire));
    printf("{\"bench\":\"%s\",\"mode\":\"%s\",\"workload\":\"%s\",\"step\":%zu,\"clients\":%zu,"
           "\"senders\":%zu,\"rooms\":%zu,\"rate\":%.0f,\"size\":%zu,\"seconds\":%.1f,"
           "\"setup_s\":%.2f,\"sent\":%" PRIu64 ",\"sent_per_s\":%.0f,\"delivered\":%" PRIu64
           ",\"expected\":%" PRIu64 ",\"deliveries_per_s\":%.0f,\"lost\":%" PRIu64
           ",\"duplicates\":%" PRIu64 ",\"errors\":%" PRIu64 ",\"closed\":%" PRIu64
           ",\"latency_samples\":%" PRIu64 ",\"p50_ms\":%.3f,\"p90_ms\":%.3f,"
           "\"p99_ms\":%.3f,\"p999_ms\":%.3f,\"max_ms\":%.3f,\"bench_cpu_s\":%.3f,"
           "\"gateway_cpu_s\":%.3f,\"gateway_us_per_delivery\":%.3f,\"gateway_user_s\":%.2f,"
           "\"gateway_user_us_per_delivery\":%.3f,\"aux_cpu_s\":%.3f,"
           "\"other_cpu_s\":%.3f,\"gateway_rss_kib\":%ld,\"rss_per_pid_kib\":[%s],"
           "\"loadavg\":%.2f%s}\n",
           b->o.label, mode_name(b->o.mode), w, b->step, b->o.clients, b->o.senders, b->o.rooms,
           rate, b->o.size, secs, b->setup_s, sent,
           (double)(b->n.sent_measured - c0->sent_measured) / secs, delivered, expected, dps, lost,
           dups, errors, closed, measured, percentile_ms(b, .5), percentile_ms(b, .9),
           percentile_ms(b, .99), percentile_ms(b, .999), (double)b->lat_max_ns / 1e6, self, gw,
           us_per, user, in_window ? user * 1e6 / (double)in_window : 0, aux, other, rss, list,
           la[0], wire);
    fflush(stdout);
}

/* ---- options ------------------------------------------------------------------------------ */

static void usage(FILE *out)
{
    fprintf(
        out,
        "usage: chat-bench --url ws://127.0.0.1:8080/ws [--url ...] [options]\n"
        "  --mode M         chat (chatbroker, default), raw (any server broadcasting text\n"
        "                   frames), centrifugo (Centrifugo's JSON protocol, insecure client)\n"
        "  --raw            the same as --mode raw\n"
        "  --seed-json      raw: send the seed tutorials' {\"email\",\"username\",\"message\"}\n"
        "  --clients N      connections (default 100), round-robin over the URLs;\n"
        "                   churn: connections in flight at once\n"
        "  --senders S      clients that send (default 1): clients 0..S-1\n"
        "  --rooms K        rooms the clients are spread over (default 1)\n"
        "  --room NAME      the room's name when there is one (default bench-0; chatbroker's\n"
        "                   lobby saves a join)\n"
        "  --rate R[,R...]  messages per second in total (default 100); a list runs steps\n"
        "  --stop-p99 MS    stop stepping when p99 passes this (default 1000), or on loss\n"
        "  --no-stop        run every step\n"
        "  --size B         message text bytes (default 64)\n"
        "  --text           fill messages with English chat sentences (default: 'x' repeated)\n"
        "  --deflate        offer permessage-deflate; the clients inflate what comes compressed\n"
        "  --warmup S       seconds before measuring, per step (default 1)\n"
        "  --duration S     seconds measured per step; idle: seconds held (default 5)\n"
        "  --drain S        longest wait for the last deliveries after a step (default 5)\n"
        "  --settle S       seconds between all ready and the first send (default 0.2)\n"
        "  --connect-timeout S  longest wait for every client to be ready (default 120)\n"
        "  --connect-batch N    connections started per millisecond tick (default 100)\n"
        "  --direct         direct messages: sender s sends to clients S+s, S+s+S, ... in turn\n"
        "  --churn          cycles of connect, join, send one message, wait for it, close\n"
        "  --idle           only hold the connections for the duration (memory); prints\n"
        "                   \"ready N\" when all are up\n"
        "  --pid P          a server process to measure (repeat or comma-separate)\n"
        "  --aux-pid P      another process whose CPU is reported apart (Redis)\n"
        "  --source A       local source address(es), comma-separated, e.g. 127.0.0.2\n"
        "  --label L        name of the run in the report\n"
        "Output: a readable summary and one JSON line per step, with the bytes the clients\n"
        "read from their sockets (wire_bytes_in, wire_bytes_per_delivery). chatbroker needs\n"
        "gateways started with a high --rate/--burst, or the senders meet their token buckets.\n");
}

static void parse_list_ints(const char *s, int *out, size_t *n, size_t max)
{
    char *copy = xstrdup(s), *save = NULL;

    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (*n >= max)
            break;
        out[(*n)++] = atoi(tok);
    }
    free(copy);
}

static int parse_rates(const char *s, struct opts *o)
{
    char *copy = xstrdup(s), *save = NULL, *end;
    int rc = 0;

    o->n_rates = 0;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        double r = strtod(tok, &end);
        if (*end || r < 0 || r > 10e6 || o->n_rates >= MAX_STEPS)
            rc = -1;
        else
            o->rates[o->n_rates++] = r;
    }
    free(copy);
    return o->n_rates ? rc : -1;
}

static int parse_sources(const char *s, struct opts *o)
{
    char *copy = xstrdup(s), *save = NULL;
    int rc = 0;

    for (char *tok = strtok_r(copy, ",", &save); tok && o->n_sources < MAX_SOURCES;
         tok = strtok_r(NULL, ",", &save)) {
        struct sockaddr_in *sa = &o->sources[o->n_sources++];
        sa->sin_family = AF_INET;
        if (inet_pton(AF_INET, tok, &sa->sin_addr) != 1)
            rc = -1;
    }
    free(copy);
    return rc;
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
    static const struct option longs[] = {{"url", 1, 0, 'u'},
                                          {"clients", 1, 0, 'c'},
                                          {"senders", 1, 0, 's'},
                                          {"rooms", 1, 0, 'r'},
                                          {"room", 1, 0, 'N'},
                                          {"rate", 1, 0, 'R'},
                                          {"size", 1, 0, 'z'},
                                          {"warmup", 1, 0, 'w'},
                                          {"duration", 1, 0, 'd'},
                                          {"drain", 1, 0, 'D'},
                                          {"settle", 1, 0, 'T'},
                                          {"connect-timeout", 1, 0, 'C'},
                                          {"connect-batch", 1, 0, 'B'},
                                          {"stop-p99", 1, 0, 'P'},
                                          {"no-stop", 0, 0, 'n'},
                                          {"pid", 1, 0, 'p'},
                                          {"aux-pid", 1, 0, 'a'},
                                          {"source", 1, 0, 'S'},
                                          {"mode", 1, 0, 'm'},
                                          {"raw", 0, 0, 'x'},
                                          {"seed-json", 0, 0, 'j'},
                                          {"direct", 0, 0, 'M'},
                                          {"churn", 0, 0, 'H'},
                                          {"idle", 0, 0, 'i'},
                                          {"label", 1, 0, 'l'},
                                          {"help", 0, 0, 'h'},
                                          {"deflate", 0, 0, 'Z'},
                                          {"text", 0, 0, 't'},
                                          {0, 0, 0, 0}};
    int ch;

    *o = (struct opts){.clients = 100,
                       .senders = 1,
                       .rooms = 1,
                       .size = 64,
                       .rates = {100},
                       .n_rates = 1,
                       .warmup = 1,
                       .duration = 5,
                       .drain = 5,
                       .settle = 0.2,
                       .connect_timeout = 120,
                       .connect_batch = 100,
                       .stop_p99_ms = 1000,
                       .prefix = "bench-",
                       .label = "run"};
    while ((ch = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        switch (ch) {
        case 'u':
            if (o->n_urls < MAX_URLS)
                o->urls[o->n_urls++] = optarg;
            break;
        case 'c':
            o->clients = strtoul(optarg, NULL, 10);
            break;
        case 's':
            o->senders = strtoul(optarg, NULL, 10);
            break;
        case 'r':
            o->rooms = strtoul(optarg, NULL, 10);
            break;
        case 'N':
            o->room = optarg;
            break;
        case 'R':
            if (parse_rates(optarg, o) < 0)
                return -1;
            break;
        case 'z':
            o->size = strtoul(optarg, NULL, 10);
            break;
        case 'w':
            o->warmup = atof(optarg);
            break;
        case 'd':
            o->duration = atof(optarg);
            break;
        case 'D':
            o->drain = atof(optarg);
            break;
        case 'T':
            o->settle = atof(optarg);
            break;
        case 'C':
            o->connect_timeout = atof(optarg);
            break;
        case 'B':
            o->connect_batch = strtoul(optarg, NULL, 10);
            break;
        case 'P':
            o->stop_p99_ms = atof(optarg);
            break;
        case 'n':
            o->no_stop = 1;
            break;
        case 'p':
            parse_list_ints(optarg, o->pids, &o->n_pids, MAX_PIDS);
            break;
        case 'a':
            parse_list_ints(optarg, o->aux_pids, &o->n_aux_pids, MAX_PIDS);
            break;
        case 'S':
            if (parse_sources(optarg, o) < 0)
                return -1;
            break;
        case 'm':
            if (strcmp(optarg, "chat") == 0)
                o->mode = MODE_CHAT;
            else if (strcmp(optarg, "raw") == 0)
                o->mode = MODE_RAW;
            else if (strcmp(optarg, "centrifugo") == 0)
                o->mode = MODE_CENTRIFUGO;
            else
                return -1;
            break;
        case 'x':
            o->mode = MODE_RAW;
            break;
        case 'j':
            o->seed_json = 1;
            break;
        case 'M':
            o->workload = WL_DIRECT;
            break;
        case 'H':
            o->workload = WL_CHURN;
            break;
        case 'i':
            o->workload = WL_IDLE;
            break;
        case 'l':
            o->label = optarg;
            break;
        case 'Z':
            o->deflate = 1;
            break;
        case 't':
            o->text = 1;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            return -1;
        }
    }
    if (optind < argc || o->n_urls == 0 || o->clients == 0 || o->rooms == 0 ||
        o->senders > o->clients || o->size > 60000 || o->duration <= 0 || o->duration > 3600 ||
        o->warmup < 0 || o->drain < 0 || o->connect_batch == 0 || o->clients > 1000000)
        return -1;
    if (o->workload == WL_DIRECT &&
        (o->mode == MODE_RAW || o->senders == 0 || o->clients < 2 * o->senders)) {
        fprintf(stderr, "chat-bench: --direct needs --mode chat or centrifugo and at least "
                        "two clients per sender\n");
        return -1;
    }
    if (o->mode == MODE_RAW && o->rooms > 1) {
        fprintf(stderr, "chat-bench: --raw knows one broadcast, not rooms\n");
        return -1;
    }
    if (o->workload == WL_CHURN || o->workload == WL_IDLE)
        o->n_rates = 1;
    return 0;
}

int main(int argc, char **argv)
{
    struct bench *b = xcalloc(1, sizeof(*b));
    struct timeval tv = {0, 1000};
    char err[256];

    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (parse_opts(argc, argv, &b->o) < 0) {
        usage(stderr);
        free(b);
        return 2;
    }
    for (size_t i = 0; i < b->o.n_urls; i++) {
        if (wsc_url_parse(b->o.urls[i], &b->urls[i], err, sizeof(err)) < 0) {
            fprintf(stderr, "chat-bench: %s\n", err);
            free(b);
            return 2;
        }
    }
    if (b->o.text)
        fill_text(b->pad, sizeof(b->pad));
    else
        memset(b->pad, 'x', sizeof(b->pad));
    b->base = event_base_new();
    b->clients = xcalloc(b->o.clients, sizeof(*b->clients));
    b->sent_by = xcalloc(b->o.senders ? b->o.senders : 1, sizeof(*b->sent_by));
    b->dm_next = xcalloc(b->o.senders ? b->o.senders : 1, sizeof(*b->dm_next));
    b->members = xcalloc(b->o.rooms, sizeof(*b->members));
    for (size_t i = 0; i < b->o.clients; i++) {
        struct client *cl = &b->clients[i];
        cl->b = b;
        cl->index = (uint32_t)i;
        cl->room = (uint32_t)(b->o.workload == WL_CHURN ? i : i % b->o.rooms);
        if (b->o.workload == WL_ROOMS)
            cl->next_seq = xcalloc(b->o.senders ? b->o.senders : 1, sizeof(uint32_t));
        else if (b->o.workload == WL_DIRECT)
            cl->next_seq = xcalloc(1, sizeof(uint32_t));
    }
    sample(b, &b->start); /* idle: the start is the baseline */
    b->t0 = now_s();
    b->tick = event_new(b->base, -1, EV_PERSIST, on_tick, b);
    evtimer_add(b->tick, &tv);
    struct event *sigterm = evsignal_new(b->base, SIGTERM, on_signal, b);
    struct event *sigint = evsignal_new(b->base, SIGINT, on_signal, b);
    evsignal_add(sigterm, NULL);
    evsignal_add(sigint, NULL);
    event_base_dispatch(b->base);
    int rc = 0;
    if (b->o.workload == WL_IDLE) {
        report_idle(b);
    } else if (b->ready < b->o.clients && b->o.workload != WL_CHURN) {
        rc = 1;
        printf("{\"bench\":\"%s\",\"mode\":\"%s\",\"workload\":\"%s\",\"clients\":%zu,"
               "\"ready\":%zu,\"failed\":\"not every client became ready\"}\n",
               b->o.label, mode_name(b->o.mode), workload_name(b->o.workload), b->o.clients,
               b->ready);
    }
    for (size_t i = 0; i < b->o.clients; i++) {
        wsc_free(b->clients[i].c);
        free(b->clients[i].next_seq);
    }
    event_free(b->tick);
    event_free(sigterm);
    event_free(sigint);
    event_base_free(b->base);
    free(b->clients);
    free(b->sent_by);
    free(b->dm_next);
    free(b->members);
    free(b);
    return rc;
}
