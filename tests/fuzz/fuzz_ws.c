/*
 * Fuzz target: one WebSocket session (gateway/ws.h) fed a client byte stream in the chunks
 * the input chose, with a handler that echoes every message (and, on request, closes or
 * pings). After every gw_ws_recv the output must parse as whole, valid, unmasked server
 * frames: the echoes in order (inflated when compressed), pongs, at most one close frame and
 * nothing after it; the state only moves forward, and nothing is delivered once closing.
 *
 * Input: byte 0: bits 0-1 deflate parameters, bits 2-3 the message limit, bit 4 echo through
 * shared frames (gw_ws_append_frame), bit 5 a message starting with '!' closes the session
 * from the handler, bit 6 a message starting with '?' makes the target ping with it after
 * gw_ws_recv returns (the handler may not: ws.h), bit 7 frame-builder mode. Then a chunk plan
 * (fuzz.h); the rest is the stream. In builder mode the stream is a list of frames, each a
 * first byte, a length byte (254: a 16-bit length follows; 255: the same in the 64-bit form)
 * and the payload, which the target masks with a zero key; otherwise it is sent as is.
 */
#include "tests/fuzz/fuzz.h"

#include <event2/buffer.h>
#include <zlib.h>

#include "gateway/deflate.h"
#include "gateway/frame.h"
#include "gateway/ws.h"
#include "proto/utf8.h"

static const struct gw_deflate_params deflate_params[4] = {
    {0, 0, 15, 15},
    {1, 0, 15, 15},
    {1, 1, 9, 8},
    {1, 0, 12, 12},
};
static const size_t max_messages[4] = {65536, 1024, 125, 16};

enum {
    MODE_SHARED = 0x10, /* echo with gw_frame_new + gw_ws_append_frame */
    MODE_CLOSE = 0x20,  /* "!..." closes with 4000 */
    MODE_PING = 0x40,   /* "?..." pings with the message (126 bytes or more: a refused ping) */
    MODE_BUILD = 0x80,
};

/* An echo not yet seen in the output. */
struct echo {
    uint8_t *data;
    size_t len;
    int binary;
};

struct harness {
    struct gw_ws *ws;
    struct evbuffer *out;
    const struct gw_deflate_params *deflate; /* NULL: none */
    size_t max_message;
    uint8_t mode;
    enum gw_ws_state state; /* as gw_ws_recv last returned */
    int close_seen;         /* a close frame was in the output */
    uint16_t close_code;    /* its code; 1005 when it had none */
    struct echo *echoes;    /* expected in the output, oldest first */
    size_t n_echoes, cap_echoes;
    size_t messages, pongs;
    uint8_t ping[126]; /* what to ping with after gw_ws_recv */
    size_t ping_len;   /* 0: no ping due */
};

/* ---- the handler --------------------------------------------------------------------------- */

static void expect_echo(struct harness *h, int binary, const uint8_t *msg, size_t len)
{
    if (h->n_echoes == h->cap_echoes) {
        h->cap_echoes = h->cap_echoes ? 2 * h->cap_echoes : 16;
        h->echoes = realloc(h->echoes, h->cap_echoes * sizeof(*h->echoes));
        FUZZ_CHECK(h->echoes != NULL);
    }
    h->echoes[h->n_echoes++] = (struct echo){fuzz_dup(msg, len), len, binary};
}

static void echo(struct harness *h, int binary, const uint8_t *msg, size_t len)
{
    int rc;

    if (h->mode & MODE_SHARED) {
        struct gw_frame *f = gw_frame_new(binary ? GW_FRAME_BINARY : GW_FRAME_TEXT, msg, len);

        rc = gw_ws_append_frame(h->ws, f);
        gw_frame_unref(f);
    } else {
        rc = gw_ws_send(h->ws, binary, msg, len);
    }
    FUZZ_CHECK(rc == 0); /* the session delivers only while it may send */
    expect_echo(h, binary, msg, len);
}

static void on_message(void *arg, int binary, const uint8_t *msg, size_t len)
{
    struct harness *h = arg;

    FUZZ_CHECK(h->state == GW_WS_OPEN && !h->close_seen);
    FUZZ_CHECK(gw_ws_state(h->ws) == GW_WS_OPEN && gw_ws_code_sent(h->ws) == 0);
    FUZZ_CHECK(len <= h->max_message);
    FUZZ_CHECK(binary || proto_utf8_is_valid(msg, len));
    h->messages++;
    echo(h, binary, msg, len);
    if ((h->mode & MODE_PING) && len > 0 && msg[0] == '?') {
        h->ping_len = len < sizeof(h->ping) ? len : sizeof(h->ping);
        memcpy(h->ping, msg, h->ping_len);
    }
    if ((h->mode & MODE_CLOSE) && len > 0 && msg[0] == '!') {
        gw_ws_close(h->ws, 4000, "bye");
        FUZZ_CHECK(gw_ws_send(h->ws, binary, msg, len) == -1);
    }
}

static void on_pong(void *arg)
{
    struct harness *h = arg;

    h->pongs++;
}

static const struct gw_ws_handler handler = {on_message, on_pong};

/* ---- the output checker ---------------------------------------------------------------------- */

/* Inflate a server message compressed without context takeover (RFC 7692 7.2.2). */
static uint8_t *inflate_message(const uint8_t *in, size_t len, size_t max, size_t *out_len)
{
    static const uint8_t tail[4] = {0x00, 0x00, 0xff, 0xff};
    uint8_t *out = malloc(max + 1);
    z_stream z;
    int rc;

    memset(&z, 0, sizeof(z));
    FUZZ_CHECK(out != NULL && inflateInit2(&z, -15) == Z_OK);
    z.next_out = out;
    z.avail_out = (uInt)(max + 1);
    z.next_in = (Bytef *)(uintptr_t)in;
    z.avail_in = (uInt)len;
    rc = inflate(&z, Z_SYNC_FLUSH);
    FUZZ_CHECK(rc == Z_OK || rc == Z_BUF_ERROR);
    z.next_in = (Bytef *)(uintptr_t)tail;
    z.avail_in = sizeof(tail);
    rc = inflate(&z, Z_SYNC_FLUSH);
    FUZZ_CHECK(rc == Z_OK && z.avail_in == 0);
    *out_len = max + 1 - z.avail_out;
    inflateEnd(&z);
    return out;
}

static int is_valid_close_code(uint16_t code)
{
    return (code >= 1000 && code <= 1011 && code != 1004 && code != 1005 && code != 1006) ||
           (code >= 3000 && code <= 4999);
}

static void check_close(struct harness *h, const uint8_t *payload, size_t len)
{
    FUZZ_CHECK(!h->close_seen);
    FUZZ_CHECK(len != 1);
    h->close_seen = 1;
    h->close_code = len >= 2 ? (uint16_t)(payload[0] << 8 | payload[1]) : 1005;
    FUZZ_CHECK(len < 2 || is_valid_close_code(h->close_code));
    FUZZ_CHECK(len < 2 || proto_utf8_is_valid(payload + 2, len - 2));
}

static void check_data(struct harness *h, uint8_t b0, const uint8_t *payload, size_t len)
{
    struct echo e;
    uint8_t *plain = NULL;

    FUZZ_CHECK(h->n_echoes > 0);
    e = h->echoes[0];
    memmove(h->echoes, h->echoes + 1, --h->n_echoes * sizeof(*h->echoes));
    FUZZ_CHECK((b0 & 0x0f) == (e.binary ? GW_FRAME_BINARY : GW_FRAME_TEXT));
    if (b0 & 0x40) {
        FUZZ_CHECK(h->deflate != NULL);
        FUZZ_CHECK(len < e.len); /* compressed only when smaller */
        plain = inflate_message(payload, len, e.len, &len);
        payload = plain;
    }
    FUZZ_CHECK(len == e.len && memcmp(payload, e.data, len) == 0);
    free(plain);
    free(e.data);
}

/* Parse one server frame at buf[0..len); return its size. */
static size_t check_frame(struct harness *h, const uint8_t *buf, size_t len)
{
    uint8_t b0 = buf[0], opcode = b0 & 0x0f;
    uint64_t plen;
    size_t hlen = 2;

    FUZZ_CHECK(len >= 2);
    FUZZ_CHECK(!h->close_seen);                                  /* nothing follows a close frame */
    FUZZ_CHECK((b0 & 0x80) && !(b0 & 0x30) && !(buf[1] & 0x80)); /* FIN, no RSV2/3, no mask */
    plen = buf[1] & 0x7f;
    if (plen == 126) {
        FUZZ_CHECK(len >= 4);
        plen = (uint64_t)buf[2] << 8 | buf[3];
        hlen = 4;
        FUZZ_CHECK(plen >= 126); /* the shortest length form */
    } else if (plen == 127) {
        FUZZ_CHECK(len >= 10);
        plen = 0;
        for (int i = 0; i < 8; i++)
            plen = plen << 8 | buf[2 + i];
        hlen = 10;
        FUZZ_CHECK(plen > 0xffff && plen < (1ull << 63));
    }
    FUZZ_CHECK(plen <= len - hlen); /* whole frames only */
    if (opcode == GW_FRAME_TEXT || opcode == GW_FRAME_BINARY) {
        check_data(h, b0, buf + hlen, (size_t)plen);
    } else {
        FUZZ_CHECK(opcode == GW_FRAME_CLOSE || opcode == GW_FRAME_PING || opcode == GW_FRAME_PONG);
        FUZZ_CHECK(!(b0 & 0x40) && plen <= 125);
        if (opcode == GW_FRAME_CLOSE)
            check_close(h, buf + hlen, (size_t)plen);
    }
    return hlen + (size_t)plen;
}

/* Check and drain everything written so far. */
static void check_output(struct harness *h)
{
    size_t len = evbuffer_get_length(h->out), off = 0;
    const uint8_t *buf = evbuffer_pullup(h->out, -1);

    while (off < len)
        off += check_frame(h, buf + off, len - off);
    FUZZ_CHECK(h->n_echoes == 0); /* every echo was written at once */
    evbuffer_drain(h->out, len);
}

/* ---- the session ------------------------------------------------------------------------- */

/* After gw_ws_recv returned st: states only move forward; a close frame was sent exactly
 * when the session left OPEN, and the codes agree. */
static void check_state(struct harness *h, enum gw_ws_state st, size_t unread)
{
    FUZZ_CHECK(st == gw_ws_state(h->ws));
    FUZZ_CHECK(st >= h->state);
    h->state = st;
    check_output(h);
    FUZZ_CHECK(h->close_seen == (st != GW_WS_OPEN));
    FUZZ_CHECK(gw_ws_code_sent(h->ws) == (h->close_seen ? h->close_code : 0));
    /* A client's close: none yet, one without a code, or a valid code (else 1002 went out). */
    uint16_t received = gw_ws_code_received(h->ws);
    FUZZ_CHECK(received == 0 || received == 1005 || is_valid_close_code(received));
    /* While open, at most a partial frame header or a partial close frame waits. */
    FUZZ_CHECK(st != GW_WS_OPEN || unread < 14 + 125);
}

/* Build frames from the input's description (see the top comment) into out. */
static void build_frames(struct fuzz_input *in, struct evbuffer *out)
{
    while (in->len > 0) {
        uint8_t hdr[14] = {fuzz_byte(in)}, l = fuzz_byte(in);
        size_t hlen = 2, plen = l;

        if (l >= 254) {
            plen = (size_t)fuzz_byte(in) << 8;
            plen |= fuzz_byte(in);
        }
        if (l == 254) {
            hdr[1] = 0x80 | 126;
            hdr[2] = (uint8_t)(plen >> 8);
            hdr[3] = (uint8_t)plen;
            hlen = 4;
        } else if (l == 255) {
            hdr[1] = 0x80 | 127;
            hdr[8] = (uint8_t)(plen >> 8);
            hdr[9] = (uint8_t)plen;
            hlen = 10;
        } else if (l >= 126) {
            hdr[1] = 0x80 | 126;
            hdr[3] = l;
            hlen = 4;
        } else {
            hdr[1] = 0x80 | l;
        }
        hlen += 4; /* a zero mask key: masking changes nothing */
        evbuffer_add(out, hdr, hlen);
        plen = plen < in->len ? plen : in->len;
        evbuffer_add(out, in->p, plen);
        in->p += plen;
        in->len -= plen;
    }
}

static void run(struct harness *h, const uint8_t *stream, size_t len, struct fuzz_chunks *plan)
{
    struct evbuffer *in = evbuffer_new();

    while (len > 0) {
        size_t n = fuzz_chunks_next(plan, len);
        enum gw_ws_state st;

        evbuffer_add(in, stream, n);
        stream += n;
        len -= n;
        st = gw_ws_recv(h->ws, in);
        check_state(h, st, evbuffer_get_length(in));
        if (h->ping_len) {
            int ok = h->state == GW_WS_OPEN && h->ping_len <= 125;

            FUZZ_CHECK(gw_ws_ping(h->ws, h->ping, h->ping_len) == (ok ? 0 : -1));
            h->ping_len = 0;
            check_state(h, gw_ws_state(h->ws), evbuffer_get_length(in));
        }
    }
    evbuffer_free(in);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_input in = {data, size};
    uint8_t flags = fuzz_byte(&in);
    struct harness h = {.mode = flags};
    struct evbuffer *built = NULL;
    struct fuzz_chunks plan;

    h.deflate = (flags & 3) ? &deflate_params[flags & 3] : NULL;
    h.max_message = max_messages[(flags >> 2) & 3];
    h.out = evbuffer_new();
    h.ws = gw_ws_new(h.out, h.max_message, h.deflate, &handler, &h);
    fuzz_chunks_init(&plan, &in);
    if (flags & MODE_BUILD) {
        built = evbuffer_new();
        build_frames(&in, built);
        in.len = evbuffer_get_length(built);
        in.p = evbuffer_pullup(built, -1);
    }
    run(&h, in.p, in.len, &plan);
    gw_ws_free(h.ws);
    evbuffer_free(h.out);
    if (built)
        evbuffer_free(built);
    for (size_t i = 0; i < h.n_echoes; i++)
        free(h.echoes[i].data);
    free(h.echoes);
    return 0;
}
