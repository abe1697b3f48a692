#include "gateway/limits.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uthash.h>

#include "gateway/util.h"

#define LIMITS_MAX_TRUSTED 64

struct cidr {
    struct gw_addr net;
    unsigned bits;
};

struct entry {
    UT_hash_handle hh;
    struct gw_addr addr;
    unsigned conns;
    double tokens;
    uint64_t refill_ms;
};

struct gw_limits {
    unsigned per_ip;
    double rate, burst;
    struct cidr trusted[LIMITS_MAX_TRUSTED];
    size_t n_trusted;
    struct entry *entries; /* uthash by addr */
};

/* ---- addresses ---------------------------------------------------------------------------- */

struct gw_addr gw_addr_from_sockaddr(const struct sockaddr *sa)
{
    struct gw_addr a;

    memset(&a, 0, sizeof(a));
    if (sa->sa_family == AF_INET6) {
        memcpy(a.b, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, 16);
    } else if (sa->sa_family == AF_INET) {
        a.b[10] = a.b[11] = 0xff;
        memcpy(a.b + 12, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
    }
    return a;
}

static int is_v4_mapped(const struct gw_addr *a)
{
    static const uint8_t prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

    return memcmp(a->b, prefix, 12) == 0;
}

/* Parse a textual address s[0..len) (v4 or v6, spaces trimmed); 0 or -1. */
static int parse_addr(const char *s, size_t len, struct gw_addr *a)
{
    char buf[INET6_ADDRSTRLEN];

    gw_util_trim(&s, &len);
    if (len == 0 || len >= sizeof(buf))
        return -1;
    memcpy(buf, s, len);
    buf[len] = '\0';
    memset(a, 0, sizeof(*a));
    if (inet_pton(AF_INET6, buf, a->b) == 1)
        return 0;
    a->b[10] = a->b[11] = 0xff;
    return inet_pton(AF_INET, buf, a->b + 12) == 1 ? 0 : -1;
}

static int parse_cidr(const char *s, size_t len, struct cidr *c)
{
    const char *slash = memchr(s, '/', len);
    size_t alen = slash ? (size_t)(slash - s) : len;
    char *end;

    if (parse_addr(s, alen, &c->net) < 0)
        return -1;
    int v4 = is_v4_mapped(&c->net);
    c->bits = 128;
    if (slash) {
        long bits = strtol(slash + 1, &end, 10);
        if (end == slash + 1 || end > s + len || bits < 0 || bits > (v4 ? 32 : 128))
            return -1;
        c->bits = (unsigned)bits + (v4 ? 96 : 0);
    }
    return 0;
}

static int in_cidr(const struct cidr *c, const struct gw_addr *a)
{
    unsigned full = c->bits / 8, rest = c->bits % 8;

    if (memcmp(c->net.b, a->b, full) != 0)
        return 0;
    if (rest == 0)
        return 1;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (c->net.b[full] & mask) == (a->b[full] & mask);
}

/* ---- the table ---------------------------------------------------------------------------- */

struct gw_limits *gw_limits_new(unsigned per_ip, unsigned rate, const char *trusted, char *err,
                                size_t errlen)
{
    struct gw_limits *l = xcalloc(1, sizeof(*l));
    const char *p = trusted ? trusted : "", *end = p + strlen(p), *s;
    size_t len;

    l->per_ip = per_ip;
    l->rate = rate;
    l->burst = 2.0 * rate;
    while (gw_util_list_next(&p, end, &s, &len)) {
        if (len > 0 && (l->n_trusted == LIMITS_MAX_TRUSTED ||
                        parse_cidr(s, len, &l->trusted[l->n_trusted++]) < 0)) {
            snprintf(err, errlen, "invalid trusted proxy \"%.*s\" (want address[/bits])", (int)len,
                     s);
            free(l);
            return NULL;
        }
    }
    return l;
}

void gw_limits_free(struct gw_limits *l)
{
    struct entry *e, *tmp;

    if (l == NULL)
        return;
    HASH_ITER(hh, l->entries, e, tmp)
    {
        HASH_DEL(l->entries, e);
        free(e);
    }
    free(l);
}

int gw_limits_is_trusted(const struct gw_limits *l, const struct gw_addr *peer)
{
    for (size_t i = 0; i < l->n_trusted; i++)
        if (in_cidr(&l->trusted[i], peer))
            return 1;
    return 0;
}

int gw_limits_forwarded(const struct gw_limits *l, const char *xff, size_t len,
                        struct gw_addr *client)
{
    /* From the right: each trusted proxy appended the address it saw. */
    while (len > 0) {
        const char *comma = memrchr(xff, ',', len);
        const char *item = comma ? comma + 1 : xff;
        struct gw_addr a;

        if (parse_addr(item, (size_t)(xff + len - item), &a) < 0)
            return -1;
        if (!gw_limits_is_trusted(l, &a)) {
            *client = a;
            return 0;
        }
        len = comma ? (size_t)(comma - xff) : 0;
    }
    return -1;
}

static struct entry *find(struct gw_limits *l, const struct gw_addr *a, int create)
{
    struct entry *e = NULL;

    HASH_FIND(hh, l->entries, a, sizeof(*a), e);
    if (e == NULL && create) {
        e = xcalloc(1, sizeof(*e));
        e->addr = *a;
        e->tokens = l->burst;
        e->refill_ms = gw_util_mono_ms();
        HASH_ADD(hh, l->entries, addr, sizeof(e->addr), e);
    }
    return e;
}

/* An entry with no connection and a full bucket says nothing: drop it. */
static void maybe_drop(struct gw_limits *l, struct entry *e, uint64_t now_ms)
{
    double tokens = e->tokens + (double)(now_ms - e->refill_ms) * l->rate / 1000.0;

    if (e->conns == 0 && tokens >= l->burst) {
        HASH_DEL(l->entries, e);
        free(e);
    }
}

int gw_limits_acquire(struct gw_limits *l, const struct gw_addr *a)
{
    struct entry *e = find(l, a, 1);

    if (e->conns >= l->per_ip) {
        maybe_drop(l, e, gw_util_mono_ms());
        return -1;
    }
    e->conns++;
    return 0;
}

void gw_limits_release(struct gw_limits *l, const struct gw_addr *a)
{
    struct entry *e = find(l, a, 0);

    if (e && e->conns > 0) {
        e->conns--;
        maybe_drop(l, e, gw_util_mono_ms());
    }
}

int gw_limits_handshake(struct gw_limits *l, const struct gw_addr *a, uint64_t now_ms)
{
    struct entry *e = find(l, a, 1);
    int rc = -1;

    e->tokens += (double)(now_ms - e->refill_ms) * l->rate / 1000.0;
    if (e->tokens > l->burst)
        e->tokens = l->burst;
    e->refill_ms = now_ms;
    if (e->tokens >= 1.0) {
        e->tokens -= 1.0;
        rc = 0;
    }
    maybe_drop(l, e, now_ms);
    return rc;
}
