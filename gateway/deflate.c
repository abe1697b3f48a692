#include "gateway/deflate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "gateway/http.h"
#include "gateway/util.h"

/* The window we ask clients to compress with when they let us choose: 4 KiB, so a session's
 * decompressor stays small. Chat messages are short; a bigger window gains little. */
#define DEFLATE_CLIENT_WINDOW 12
/* An inflated buffer larger than this is freed after its message. */
#define INFLATE_KEEP_BUFFER 16384

/* ---- negotiation -------------------------------------------------------------------------- */

struct offer {
    int server_no_takeover, client_no_takeover;
    int server_bits, client_bits; /* 0: not given; -1: given without a value (client only) */
    int seen[4];                  /* each parameter at most once */
};

/* A window size: a decimal from 8 to 15 without leading zeros, quoted or not. */
static int parse_bits(const char *v, size_t len)
{
    if (len >= 2 && v[0] == '"' && v[len - 1] == '"') {
        v++;
        len -= 2;
    }
    if (len == 1 && v[0] >= '8' && v[0] <= '9')
        return v[0] - '0';
    if (len == 2 && v[0] == '1' && v[1] >= '0' && v[1] <= '5')
        return 10 + v[1] - '0';
    return -2;
}

/* Apply one "name[=value]" parameter; return 0, or -1 if it makes the offer invalid. */
static int apply_param(struct offer *o, const char *s, size_t len)
{
    static const char *const names[] = {"server_no_context_takeover", "client_no_context_takeover",
                                        "server_max_window_bits", "client_max_window_bits"};
    const char *eq = memchr(s, '=', len);
    const char *v = eq ? eq + 1 : NULL;
    size_t nlen = eq ? (size_t)(eq - s) : len, vlen = eq ? len - nlen - 1 : 0;

    gw_util_trim(&s, &nlen);
    if (v)
        gw_util_trim(&v, &vlen);
    for (int i = 0; i < 4; i++) {
        if (!gw_util_is_ascii_caseeq(s, nlen, names[i]))
            continue;
        if (o->seen[i]++)
            return -1;
        if (i == 0 || i == 1) {
            if (v)
                return -1;
            *(i == 0 ? &o->server_no_takeover : &o->client_no_takeover) = 1;
            return 0;
        }
        if (i == 2 && !v)
            return -1;
        int bits = v ? parse_bits(v, vlen) : -1;
        if (bits == -2)
            return -1;
        *(i == 2 ? &o->server_bits : &o->client_bits) = bits;
        return 0;
    }
    return -1; /* an unknown parameter */
}

/* Parse one offer "permessage-deflate; a; b=1" in s[0..len); return 0 if acceptable. */
static int parse_offer(const char *s, size_t len, struct offer *o)
{
    const char *end = s + len, *semi = memchr(s, ';', len);
    const char *name = s;
    size_t nlen = (size_t)((semi ? semi : end) - s);

    memset(o, 0, sizeof(*o));
    gw_util_trim(&name, &nlen);
    if (!gw_util_is_ascii_caseeq(name, nlen, "permessage-deflate"))
        return -1;
    while (semi) {
        const char *p = semi + 1;
        semi = memchr(p, ';', (size_t)(end - p));
        if (apply_param(o, p, (size_t)((semi ? semi : end) - p)) < 0)
            return -1;
    }
    /* zlib cannot compress with a 256-byte window: decline rather than break the limit. */
    return o->server_bits == 8 ? -1 : 0;
}

static void accept_offer(const struct offer *o, struct gw_deflate_params *p, char *resp)
{
    int n;

    p->enabled = 1;
    p->client_no_context_takeover = o->client_no_takeover;
    p->server_window_bits = o->server_bits > 0 ? (unsigned)o->server_bits : 15;
    p->client_window_bits = 15;
    if (o->client_bits != 0) /* the client lets us choose: as small as we like, up to its cap */
        p->client_window_bits = o->client_bits > 0 && o->client_bits < DEFLATE_CLIENT_WINDOW
                                    ? (unsigned)o->client_bits
                                    : DEFLATE_CLIENT_WINDOW;
    n = snprintf(resp, GW_DEFLATE_RESPONSE_MAX, "permessage-deflate; server_no_context_takeover");
    if (o->client_no_takeover)
        n +=
            snprintf(resp + n, GW_DEFLATE_RESPONSE_MAX - (size_t)n, "; client_no_context_takeover");
    if (o->server_bits > 0)
        n += snprintf(resp + n, GW_DEFLATE_RESPONSE_MAX - (size_t)n, "; server_max_window_bits=%d",
                      o->server_bits);
    if (o->client_bits != 0)
        snprintf(resp + n, GW_DEFLATE_RESPONSE_MAX - (size_t)n, "; client_max_window_bits=%u",
                 p->client_window_bits);
}

int gw_deflate_negotiate_value(const char *value, size_t len, struct gw_deflate_params *p,
                               char *resp)
{
    const char *s = value, *offer;
    size_t n;
    struct offer o;

    while (gw_util_list_next(&s, value + len, &offer, &n)) {
        if (parse_offer(offer, n, &o) == 0) {
            accept_offer(&o, p, resp);
            return 1;
        }
    }
    return 0;
}

void gw_deflate_negotiate(const struct gw_http_request *req, struct gw_deflate_params *p,
                          char *resp)
{
    memset(p, 0, sizeof(*p));
    resp[0] = '\0';
    for (size_t i = 0; i < req->n_headers; i++) {
        const struct gw_http_header *h = &req->headers[i];

        if (gw_util_is_ascii_caseeq(h->name, h->name_len, "Sec-WebSocket-Extensions") &&
            gw_deflate_negotiate_value(h->value, h->value_len, p, resp))
            return;
    }
}

/* ---- compression -------------------------------------------------------------------------- */

static z_stream *compressors[16]; /* by window bits; per process (each worker its own) */

static z_stream *compressor(unsigned bits)
{
    if (compressors[bits] == NULL) {
        z_stream *z = xcalloc(1, sizeof(*z));
        if (deflateInit2(z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -(int)bits, 8, Z_DEFAULT_STRATEGY) !=
            Z_OK) {
            free(z);
            return NULL;
        }
        compressors[bits] = z;
    }
    return compressors[bits];
}

int gw_deflate_compress(unsigned window_bits, const uint8_t *in, size_t len, uint8_t **out,
                        size_t *out_len)
{
    z_stream *z = window_bits >= 9 && window_bits <= 15 ? compressor(window_bits) : NULL;
    size_t cap = deflateBound(z ? z : &(z_stream){0}, len) + 16, used = 0;
    uint8_t *buf;

    if (z == NULL || deflateReset(z) != Z_OK)
        return -1;
    buf = xmalloc(cap);
    z->next_in = (Bytef *)(uintptr_t)in;
    z->avail_in = (uInt)len;
    do {
        if (cap - used < 64) {
            cap *= 2;
            buf = xrealloc(buf, cap);
        }
        z->next_out = buf + used;
        z->avail_out = (uInt)(cap - used);
        if (deflate(z, Z_SYNC_FLUSH) == Z_STREAM_ERROR) {
            free(buf);
            return -1;
        }
        used = cap - z->avail_out;
    } while (z->avail_in > 0 || z->avail_out == 0);
    /* A sync flush ends in an empty stored block, 00 00 ff ff, which the receiver adds back. */
    if (used >= 4 && memcmp(buf + used - 4, "\x00\x00\xff\xff", 4) == 0)
        used -= 4;
    *out = buf;
    *out_len = used;
    return 0;
}

void gw_deflate_cleanup(void)
{
    for (int i = 0; i < 16; i++) {
        if (compressors[i]) {
            deflateEnd(compressors[i]);
            free(compressors[i]);
            compressors[i] = NULL;
        }
    }
}

/* ---- decompression ------------------------------------------------------------------------ */

struct gw_inflater {
    z_stream z;
    int ready;     /* z is initialised */
    unsigned bits; /* the client's window */
    uint8_t *buf;
    size_t cap;
};

struct gw_inflater *gw_inflater_new(unsigned window_bits)
{
    struct gw_inflater *z = xcalloc(1, sizeof(*z));

    z->bits = window_bits;
    return z;
}

void gw_inflater_free(struct gw_inflater *z)
{
    if (z == NULL)
        return;
    if (z->ready)
        inflateEnd(&z->z);
    free(z->buf);
    free(z);
}

/* inflate_some's answer when a final block ended the message before the input did. */
#define INFLATE_ENDED 1

/* Inflate in[0..len) appending to z->buf at *used; return 0, INFLATE_ENDED, or an enum
 * gw_inflate_result. */
static int inflate_some(struct gw_inflater *z, const uint8_t *in, size_t len, size_t max,
                        size_t *used)
{
    z->z.next_in = (Bytef *)(uintptr_t)in;
    z->z.avail_in = (uInt)len;
    while (z->z.avail_in > 0) {
        if (z->cap - *used < 1024) {
            if (z->cap > max + 1024)
                return GW_INFLATE_TOO_BIG;
            z->cap = z->cap ? z->cap * 2 : 4096;
            z->buf = xrealloc(z->buf, z->cap);
        }
        z->z.next_out = z->buf + *used;
        z->z.avail_out = (uInt)(z->cap - *used);
        int rc = inflate(&z->z, Z_SYNC_FLUSH);
        *used = z->cap - z->z.avail_out;
        if (*used > max)
            return GW_INFLATE_TOO_BIG;
        if (rc == Z_STREAM_END) {
            /* A block with BFINAL set (RFC 7692 7.2.3.3) ends the message: what follows it
             * is padding, and the next message starts a new stream. */
            inflateReset(&z->z);
            return INFLATE_ENDED;
        }
        if (rc != Z_OK && rc != Z_BUF_ERROR)
            return GW_INFLATE_CORRUPT;
        if (rc == Z_BUF_ERROR && z->z.avail_out > 0)
            return GW_INFLATE_CORRUPT; /* no progress with room to spare */
    }
    return GW_INFLATE_OK;
}

int gw_inflater_message(struct gw_inflater *z, const uint8_t *in, size_t len, size_t max, int reset,
                        const uint8_t **out, size_t *out_len)
{
    static const uint8_t tail[4] = {0x00, 0x00, 0xff, 0xff};
    size_t used = 0;
    int rc;

    if (!z->ready) {
        /* zlib's raw inflate takes 9..15; a window of 8 fits in one of 9. */
        if (inflateInit2(&z->z, -(int)(z->bits < 9 ? 9 : z->bits)) != Z_OK)
            return GW_INFLATE_CORRUPT;
        z->ready = 1;
    }
    rc = inflate_some(z, in, len, max, &used);
    if (rc == GW_INFLATE_OK)
        rc = inflate_some(z, tail, sizeof(tail), max, &used);
    if (rc == INFLATE_ENDED)
        rc = GW_INFLATE_OK;
    *out = z->buf;
    *out_len = used;
    if (reset || rc != GW_INFLATE_OK) {
        inflateEnd(&z->z); /* forget the window, and its memory, until the next message */
        z->ready = 0;
    }
    return rc;
}

void gw_inflater_trim(struct gw_inflater *z)
{
    if (z->cap > INFLATE_KEEP_BUFFER) {
        free(z->buf);
        z->buf = NULL;
        z->cap = 0;
    }
}
