#include "broker-tools/wsdeflate.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <zlib.h>

#include "proto/xalloc.h"

/* An output buffer larger than this is freed after its message. */
#define WSC_ZBUF_KEEP 16384
/* Room left for inflate's next call before the buffer grows. */
#define WSC_ZBUF_SLACK 256

/* ---- the server's answer ------------------------------------------------------------------ */

enum answer_param {
    PARAM_SERVER_NO_TAKEOVER = 0,
    PARAM_CLIENT_NO_TAKEOVER,
    PARAM_SERVER_BITS,
    PARAM_COUNT,
};

/* The parameters an answer to WSC_DEFLATE_OFFER may carry (RFC 7692 7.1), by enum
 * answer_param. client_max_window_bits is not among them: the offer does not include it. */
static const struct {
    const char *name;
    int has_value;
} answer_params[PARAM_COUNT] = {
    {"server_no_context_takeover", 0},
    {"client_no_context_takeover", 0},
    {"server_max_window_bits", 1},
};

static void trim(const char **s, size_t *len)
{
    while (*len > 0 && (**s == ' ' || **s == '\t')) {
        (*s)++;
        (*len)--;
    }
    while (*len > 0 && ((*s)[*len - 1] == ' ' || (*s)[*len - 1] == '\t'))
        (*len)--;
}

static int is_token(const char *s, size_t len, const char *name)
{
    return len == strlen(name) && strncasecmp(s, name, len) == 0;
}

/* A window size: a decimal from 8 to 15 without leading zeros, quoted or not; -1 if not. */
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
    return -1;
}

/* Apply one "name[=value]" parameter s[0..len); *seen has a bit per parameter already given.
 * Returns 0, or -1 if the parameter makes the answer invalid. */
static int apply_param(struct wsc_deflate_params *p, unsigned *seen, const char *s, size_t len)
{
    const char *eq = memchr(s, '=', len), *v = eq ? eq + 1 : NULL;
    size_t nlen = eq ? (size_t)(eq - s) : len, vlen = eq ? len - nlen - 1 : 0;
    int i = 0, bits;

    trim(&s, &nlen);
    if (v)
        trim(&v, &vlen);
    while (i < PARAM_COUNT && !is_token(s, nlen, answer_params[i].name))
        i++;
    if (i == PARAM_COUNT || (*seen & (1u << i)) || answer_params[i].has_value != (v != NULL))
        return -1;
    *seen |= 1u << i;
    switch (i) {
    case PARAM_SERVER_NO_TAKEOVER:
        p->server_no_context_takeover = 1;
        return 0;
    case PARAM_SERVER_BITS:
        if ((bits = parse_bits(v, vlen)) < 0)
            return -1;
        p->server_window_bits = (unsigned)bits;
        return 0;
    default: /* client_no_context_takeover: we never compress, so nothing changes */
        return 0;
    }
}

int wsc_deflate_parse_answer(const char *value, size_t len, struct wsc_deflate_params *p)
{
    const char *end = value + len, *semi = memchr(value, ';', len), *name = value;
    size_t nlen = (size_t)((semi ? semi : end) - value);
    struct wsc_deflate_params got = {.enabled = 1, .server_window_bits = 15};
    unsigned seen = 0;

    memset(p, 0, sizeof(*p));
    /* One extension was offered: an answer with a comma names more than one (no parameter
     * value here may hold a comma). */
    if (memchr(value, ',', len))
        return -1;
    trim(&name, &nlen);
    if (!is_token(name, nlen, "permessage-deflate"))
        return -1;
    while (semi) {
        const char *s = semi + 1;
        semi = memchr(s, ';', (size_t)(end - s));
        if (apply_param(&got, &seen, s, (size_t)((semi ? semi : end) - s)) < 0)
            return -1;
    }
    *p = got;
    return 0;
}

/* ---- inflation ---------------------------------------------------------------------------- */

struct wsc_inflater {
    z_stream z;
};

struct wsc_inflater *wsc_inflater_new(void)
{
    struct wsc_inflater *z = xcalloc(1, sizeof(*z));

    /* Fails only without memory (or with a mismatched zlib): fatal, as in xmalloc. */
    if (inflateInit2(&z->z, -15) != Z_OK)
        abort();
    return z;
}

void wsc_inflater_free(struct wsc_inflater *z)
{
    if (z == NULL)
        return;
    inflateEnd(&z->z);
    free(z);
}

void wsc_zbuf_trim(struct wsc_zbuf *b)
{
    if (b->cap > WSC_ZBUF_KEEP)
        wsc_zbuf_clear(b);
}

void wsc_zbuf_clear(struct wsc_zbuf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

/* Inflate in[0..len) onto out; *ended is set when the stream's final block ends. Returns an
 * enum wsc_inflate_result. */
static int inflate_some(z_stream *zs, const uint8_t *in, size_t len, size_t max,
                        struct wsc_zbuf *out, int *ended)
{
    zs->next_in = (Bytef *)(uintptr_t)in;
    zs->avail_in = (uInt)len;
    while (zs->avail_in > 0 && !*ended) {
        if (out->cap - out->len < WSC_ZBUF_SLACK) {
            if (out->cap > max + WSC_ZBUF_SLACK)
                return WSC_INFLATE_TOO_BIG;
            out->cap = out->cap ? out->cap * 2 : 2048;
            out->data = xrealloc(out->data, out->cap);
        }
        zs->next_out = out->data + out->len;
        zs->avail_out = (uInt)(out->cap - out->len);
        int rc = inflate(zs, Z_SYNC_FLUSH);
        out->len = out->cap - zs->avail_out;
        if (out->len > max)
            return WSC_INFLATE_TOO_BIG;
        if (rc == Z_STREAM_END)
            *ended = 1;
        else if (rc != Z_OK && !(rc == Z_BUF_ERROR && zs->avail_out == 0))
            return WSC_INFLATE_CORRUPT; /* a bad stream, or no progress with room to spare */
    }
    /* What follows a final block is ignored: RFC 7692's example of a message ending in one
     * puts the first byte of an empty stored block there, which the tail would complete. */
    return WSC_INFLATE_OK;
}

int wsc_inflater_message(struct wsc_inflater *z, const uint8_t *in, size_t len, size_t max,
                         int reset, struct wsc_zbuf *out)
{
    static const uint8_t tail[4] = {0x00, 0x00, 0xff, 0xff};
    int ended = 0, rc;

    out->len = 0;
    rc = inflate_some(&z->z, in, len, max, out, &ended);
    if (rc == WSC_INFLATE_OK && !ended)
        rc = inflate_some(&z->z, tail, sizeof(tail), max, out, &ended);
    /* A final block ends the stream: the next message starts a new one. */
    if (reset || ended || rc != WSC_INFLATE_OK)
        inflateReset(&z->z);
    return rc;
}
