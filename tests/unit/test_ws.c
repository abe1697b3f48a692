/*
 * Unit tests of gateway/ws.h with no sockets: scripted client frames (masked, built here) go
 * into an input evbuffer, whole or one byte per gw_ws_recv call; the output evbuffer is
 * compared byte for byte with the expected server frames after every step, and the handler
 * calls are counted.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/buffer.h>

#include "gateway/frame.h"
#include "gateway/ws.h"

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

/* ---- frames ------------------------------------------------------------------------------ */

/* First byte of a frame: FIN, RSV1-3, opcode. */
enum {
    B_CONT = 0x00,
    B_TEXT_MORE = 0x01,
    B_BIN_MORE = 0x02,
    B_FIN = 0x80,
    B_TEXT = 0x81,
    B_BIN = 0x82,
    B_CLOSE = 0x88,
    B_PING = 0x89,
    B_PONG = 0x8a,
};

/* A frame of a script: b0, then payload (data[0..len), or len filler bytes when data is
 * NULL: "abc...z" repeated, restarting every period bytes when period is set). Client frames
 * are masked unless unmasked is set; server frames never are. An entry of all zeros ends a
 * list. */
struct frame {
    uint8_t b0;
    const char *data;
    size_t len;
    int unmasked;
    size_t period;
};

#define F(b0, lit)                                                                                 \
    {                                                                                              \
        (b0), (lit), sizeof(lit) - 1, 0, 0                                                         \
    }
#define FILL(b0, n)                                                                                \
    {                                                                                              \
        (b0), NULL, (n), 0, 0                                                                      \
    }
#define FILL_EVERY(b0, n, period)                                                                  \
    {                                                                                              \
        (b0), NULL, (n), 0, (period)                                                               \
    }
#define UNMASKED(b0, lit)                                                                          \
    {                                                                                              \
        (b0), (lit), sizeof(lit) - 1, 1, 0                                                         \
    }
#define CLOSE_1000 "\x03\xe8"
#define CLOSE_1001 "\x03\xe9"
#define CLOSE_1002 "\x03\xea"
#define CLOSE_1007 "\x03\xef"
#define CLOSE_1009 "\x03\xf1"

static int is_end(const struct frame *f)
{
    return f->b0 == 0 && f->data == NULL && f->len == 0;
}

static uint8_t filler(size_t i)
{
    return (uint8_t)('a' + i % 26);
}

static const uint8_t mask_key[4] = {0x37, 0xfa, 0x21, 0x3d};

/* Append the frame f to b, masked when mask is set. */
static void add_frame(struct evbuffer *b, const struct frame *f, int mask)
{
    uint8_t hdr[14];
    size_t n = 0;
    uint8_t m = mask ? 0x80 : 0;

    hdr[n++] = f->b0;
    if (f->len < 126) {
        hdr[n++] = (uint8_t)(m | f->len);
    } else if (f->len <= 0xffff) {
        hdr[n++] = m | 126;
        hdr[n++] = (uint8_t)(f->len >> 8);
        hdr[n++] = (uint8_t)f->len;
    } else {
        hdr[n++] = m | 127;
        for (int i = 0; i < 8; i++)
            hdr[n++] = (uint8_t)((uint64_t)f->len >> (56 - 8 * i));
    }
    if (mask) {
        memcpy(hdr + n, mask_key, 4);
        n += 4;
    }
    evbuffer_add(b, hdr, n);
    for (size_t i = 0; i < f->len; i++) {
        uint8_t c = f->data ? (uint8_t)f->data[i] : filler(f->period ? i % f->period : i);

        if (mask)
            c ^= mask_key[i % 4];
        evbuffer_add(b, &c, 1);
    }
}

static void add_client(struct evbuffer *b, const struct frame *f)
{
    add_frame(b, f, !f->unmasked);
}

static void add_server(struct evbuffer *b, const struct frame *f)
{
    add_frame(b, f, 0);
}

/* ---- the session under test -------------------------------------------------------------- */

enum handler_mode {
    MODE_ECHO = 0, /* send every message back */
    MODE_CLOSE,    /* answer a message with gw_ws_close(1000, "done") */
};

static struct gw_ws *ws;
static struct evbuffer *in_buf, *out_buf, *want_buf, *script;
static enum handler_mode mode;
static size_t n_msgs, n_text, n_binary, n_pongs;
static size_t n_bad_calls;      /* callbacks with the wrong arg, or echoes that failed */
static int send_rc_after_close; /* gw_ws_send's result inside the handler, after closing */

/* No assertions in callbacks: a failing one would jump out of wslay_event_recv. Oddities are
 * counted instead and checked after the call. */
static void on_message(void *arg, int binary, const uint8_t *msg, size_t len)
{
    n_bad_calls += arg != &mode;
    n_msgs++;
    if (binary)
        n_binary++;
    else
        n_text++;
    if (mode == MODE_ECHO) {
        n_bad_calls += gw_ws_send(ws, binary, msg, len) != 0;
    } else {
        gw_ws_close(ws, 1000, "done");
        send_rc_after_close = gw_ws_send(ws, binary, msg, len);
    }
}

static void on_pong(void *arg)
{
    n_bad_calls += arg != &mode;
    n_pongs++;
}

static const struct gw_ws_handler handler = {on_message, on_pong};
static const struct gw_ws_handler handler_no_pong = {on_message, NULL};

static int setup(void **state)
{
    (void)state;
    in_buf = evbuffer_new();
    out_buf = evbuffer_new();
    want_buf = evbuffer_new();
    script = evbuffer_new();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    gw_ws_free(ws);
    ws = NULL;
    evbuffer_free(in_buf);
    evbuffer_free(out_buf);
    evbuffer_free(want_buf);
    evbuffer_free(script);
    return 0;
}

/* Start a new session (freeing the last) and reset the counters and buffers. */
static void open_ws(size_t max_message, enum handler_mode m, const struct gw_ws_handler *h)
{
    gw_ws_free(ws);
    evbuffer_drain(in_buf, evbuffer_get_length(in_buf));
    evbuffer_drain(out_buf, evbuffer_get_length(out_buf));
    evbuffer_drain(want_buf, evbuffer_get_length(want_buf));
    evbuffer_drain(script, evbuffer_get_length(script));
    mode = m;
    n_msgs = n_text = n_binary = n_pongs = n_bad_calls = 0;
    send_rc_after_close = 99;
    ws = gw_ws_new(out_buf, max_message, NULL, h, &mode);
    assert_non_null(ws);
    assert_int_equal(gw_ws_state(ws), GW_WS_OPEN);
    assert_int_equal(gw_ws_code_sent(ws), 0);
    assert_int_equal(gw_ws_code_received(ws), 0);
}

/* Feed what script holds: all at once, or one byte per gw_ws_recv call. */
static enum gw_ws_state feed_script(int bytewise)
{
    enum gw_ws_state st = gw_ws_state(ws);

    if (!bytewise) {
        evbuffer_add_buffer(in_buf, script);
        st = gw_ws_recv(ws, in_buf);
        assert_int_equal(st, gw_ws_state(ws));
        assert_int_equal(n_bad_calls, 0);
        if (st == GW_WS_OPEN)
            assert_int_equal(evbuffer_get_length(in_buf), 0);
        return st;
    }
    while (evbuffer_get_length(script) > 0) {
        evbuffer_remove_buffer(script, in_buf, 1);
        st = gw_ws_recv(ws, in_buf);
        assert_int_equal(st, gw_ws_state(ws));
        assert_int_equal(n_bad_calls, 0);
    }
    return st;
}

/* Feed the client frames (terminated by an all-zero entry). */
static enum gw_ws_state feed_frames(const struct frame *frames, int bytewise)
{
    for (size_t i = 0; !is_end(&frames[i]); i++)
        add_client(script, &frames[i]);
    return feed_script(bytewise);
}

/* Up to 12 bytes of p in hex, for messages. */
static void hex(char *out, size_t outlen, const uint8_t *p, size_t len)
{
    size_t o = 0;

    out[0] = '\0';
    for (size_t i = 0; i < len && i < 12 && o + 4 < outlen; i++)
        o += (size_t)snprintf(out + o, outlen - o, "%02x ", p[i]);
    if (len > 12 && o + 4 < outlen)
        snprintf(out + o, outlen - o, "...");
}

/* The output since the last call must be exactly want_buf; both are emptied. Returns 0, or
 * -1 with a description in why. */
static int take_output(char *why, size_t whylen)
{
    size_t got_len = evbuffer_get_length(out_buf), want_len = evbuffer_get_length(want_buf);
    const uint8_t *got = evbuffer_pullup(out_buf, -1);
    const uint8_t *want = evbuffer_pullup(want_buf, -1);
    int rc = 0;

    if (got_len != want_len || (got_len > 0 && memcmp(got, want, got_len) != 0)) {
        char g[200], w[200];

        hex(g, sizeof(g), got, got_len);
        hex(w, sizeof(w), want, want_len);
        snprintf(why, whylen, "output %zu bytes [%s], want %zu bytes [%s]", got_len, g, want_len,
                 w);
        rc = -1;
    }
    evbuffer_drain(out_buf, got_len);
    evbuffer_drain(want_buf, want_len);
    return rc;
}

/* Expect the server frames (terminated by an all-zero entry) as the next output. */
static void expect_output(const struct frame *frames, const char *what)
{
    char why[600];

    for (size_t i = 0; !is_end(&frames[i]); i++)
        add_server(want_buf, &frames[i]);
    if (take_output(why, sizeof(why)) < 0)
        fail_msg("%s: %s", what, why);
}

static const struct frame no_frames[] = {{0}};

/* ---- scripted cases ---------------------------------------------------------------------- */

struct step {
    struct frame in[6];  /* client frames fed in this step */
    struct frame out[4]; /* server frames the step must write */
    size_t msgs;         /* messages delivered so far */
};

struct ws_case {
    const char *name;
    size_t max_message; /* 0: 65536 */
    struct step steps[3];
    enum gw_ws_state state;
    uint16_t code_sent;
    uint16_t code_received;
    size_t pongs;
};

static const struct ws_case script_cases[] = {
    /* messages */
    {"text", 0, {{{F(B_TEXT, "hello")}, {F(B_TEXT, "hello")}, 1}}, GW_WS_OPEN, 0, 0, 0},
    {"binary",
     0,
     {{{F(B_BIN, "\x00\x01\xff")}, {F(B_BIN, "\x00\x01\xff")}, 1}},
     GW_WS_OPEN,
     0,
     0,
     0},
    {"empty text", 0, {{{F(B_TEXT, "")}, {F(B_TEXT, "")}, 1}}, GW_WS_OPEN, 0, 0, 0},
    {"empty binary", 0, {{{F(B_BIN, "")}, {F(B_BIN, "")}, 1}}, GW_WS_OPEN, 0, 0, 0},
    {"binary need not be UTF-8",
     0,
     {{{F(B_BIN, "\xc0\x80\xff")}, {F(B_BIN, "\xc0\x80\xff")}, 1}},
     GW_WS_OPEN,
     0,
     0,
     0},
    {"UTF-8 text",
     0,
     {{{F(B_TEXT, "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5 \xf0\x9f\x98\x80")},
       {F(B_TEXT, "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5 \xf0\x9f\x98\x80")},
       1}},
     GW_WS_OPEN,
     0,
     0,
     0},
    {"two messages in one read",
     0,
     {{{F(B_TEXT, "a"), F(B_BIN, "b")}, {F(B_TEXT, "a"), F(B_BIN, "b")}, 2}},
     GW_WS_OPEN,
     0,
     0,
     0},
    {"pong keeps its place among echoes",
     0,
     {{{F(B_TEXT, "a"), F(B_PING, "p"), F(B_TEXT, "b")},
       {F(B_TEXT, "a"), F(B_PONG, "p"), F(B_TEXT, "b")},
       2}},
     GW_WS_OPEN,
     0,
     0,
     0},
    {"messages in steps",
     0,
     {{{F(B_TEXT, "a")}, {F(B_TEXT, "a")}, 1},
      {{F(B_TEXT, "b")}, {F(B_TEXT, "b")}, 2},
      {{F(B_BIN, "c")}, {F(B_BIN, "c")}, 3}},
     GW_WS_OPEN,
     0,
     0,
     0},
    {"125 bytes", 0, {{{FILL(B_TEXT, 125)}, {FILL(B_TEXT, 125)}, 1}}, GW_WS_OPEN, 0, 0, 0},
    {"126 bytes (16-bit length)",
     0,
     {{{FILL(B_TEXT, 126)}, {FILL(B_TEXT, 126)}, 1}},
     GW_WS_OPEN,
     0,
     0,
     0},
    {"65535 bytes", 0, {{{FILL(B_BIN, 65535)}, {FILL(B_BIN, 65535)}, 1}}, GW_WS_OPEN, 0, 0, 0},
    {"70000 bytes (64-bit length)",
     100000,
     {{{FILL(B_BIN, 70000)}, {FILL(B_BIN, 70000)}, 1}},
     GW_WS_OPEN,
     0,
     0,
     0},
    /* fragments */
    {"fragmented text",
     0,
     {{{F(B_TEXT_MORE, "hel"), F(B_CONT, "l"), F(B_FIN, "o")}, {F(B_TEXT, "hello")}, 1}},
     GW_WS_OPEN,
     0,
     0,
     0},
    {"fragmented binary, empty fragments",
     0,
     {{{F(B_BIN_MORE, ""), F(B_CONT, "ab"), F(B_CONT, ""), F(B_FIN, "")}, {F(B_BIN, "ab")}, 1}},
     GW_WS_OPEN,
     0,
     0,
     0},
    {"fragments in steps",
     0,
     {{{F(B_TEXT_MORE, "ab")}, {{0}}, 0},
      {{F(B_CONT, "cd")}, {{0}}, 0},
      {{F(B_FIN, "ef"), F(B_TEXT, "g")}, {F(B_TEXT, "abcdef"), F(B_TEXT, "g")}, 2}},
     GW_WS_OPEN,
     0,
     0,
     0},
    {"large fragments",
     0,
     {{{FILL(B_BIN_MORE, 300), FILL(B_CONT, 300), FILL(B_FIN, 300)},
       {FILL_EVERY(B_BIN, 900, 300)},
       1}},
     GW_WS_OPEN,
     0,
     0,
     0},
    /* control frames */
    {"ping", 0, {{{F(B_PING, "hi")}, {F(B_PONG, "hi")}, 0}}, GW_WS_OPEN, 0, 0, 0},
    {"empty ping", 0, {{{F(B_PING, "")}, {F(B_PONG, "")}, 0}}, GW_WS_OPEN, 0, 0, 0},
    {"ping of 125 bytes", 0, {{{FILL(B_PING, 125)}, {FILL(B_PONG, 125)}, 0}}, GW_WS_OPEN, 0, 0, 0},
    {"ping interleaved in fragments",
     0,
     {{{F(B_TEXT_MORE, "ab"), F(B_PING, "p1")}, {F(B_PONG, "p1")}, 0},
      {{F(B_CONT, "cd"), F(B_PING, "p2")}, {F(B_PONG, "p2")}, 0},
      {{F(B_FIN, "ef")}, {F(B_TEXT, "abcdef")}, 1}},
     GW_WS_OPEN,
     0,
     0,
     0},
    {"pong", 0, {{{F(B_PONG, "x")}, {{0}}, 0}, {{F(B_PONG, "")}, {{0}}, 0}}, GW_WS_OPEN, 0, 0, 2},
    {"pong interleaved in fragments",
     0,
     {{{F(B_BIN_MORE, "a"), F(B_PONG, "p"), F(B_FIN, "b")}, {F(B_BIN, "ab")}, 1}},
     GW_WS_OPEN,
     0,
     0,
     1},
    /* close */
    {"close 1000 with reason",
     0,
     {{{F(B_CLOSE, CLOSE_1000 "bye")}, {F(B_CLOSE, CLOSE_1000 "bye")}, 0}},
     GW_WS_CLOSED,
     1000,
     1000,
     0},
    {"close 1001",
     0,
     {{{F(B_CLOSE, CLOSE_1001)}, {F(B_CLOSE, CLOSE_1001)}, 0}},
     GW_WS_CLOSED,
     1001,
     1001,
     0},
    {"empty close", 0, {{{F(B_CLOSE, "")}, {F(B_CLOSE, "")}, 0}}, GW_WS_CLOSED, 1005, 1005, 0},
    /* a 1-byte body holds no code: received as 1005, answered with 1002 */
    {"close of 1 byte",
     0,
     {{{F(B_CLOSE, "\x03")}, {F(B_CLOSE, CLOSE_1002)}, 0}},
     GW_WS_CLOSED,
     1002,
     1005,
     0},
    {"close of 126 bytes",
     0,
     {{{FILL(B_CLOSE, 126)}, {F(B_CLOSE, CLOSE_1002)}, 0}},
     GW_WS_CLOSED,
     1002,
     0,
     0},
    {"fragmented close",
     0,
     {{{F(0x08, CLOSE_1000)}, {F(B_CLOSE, CLOSE_1002)}, 0}},
     GW_WS_CLOSED,
     1002,
     0,
     0},
    {"message then close",
     0,
     {{{F(B_TEXT, "a"), F(B_CLOSE, CLOSE_1000)}, {F(B_TEXT, "a"), F(B_CLOSE, CLOSE_1000)}, 1}},
     GW_WS_CLOSED,
     1000,
     1000,
     0},
    {"nothing after close",
     0,
     {{{F(B_CLOSE, CLOSE_1000), F(B_TEXT, "late"), F(B_PING, "late")}, {F(B_CLOSE, CLOSE_1000)}, 0},
      {{F(B_TEXT, "later")}, {{0}}, 0}},
     GW_WS_CLOSED,
     1000,
     1000,
     0},
    {"close inside a fragmented message",
     0,
     {{{F(B_TEXT_MORE, "a"), F(B_CLOSE, CLOSE_1000)}, {F(B_CLOSE, CLOSE_1000)}, 0}},
     GW_WS_CLOSED,
     1000,
     1000,
     0},
    /* framing errors: 1002 */
    {"RSV1", 0, {{{F(0xc1, "a")}, {F(B_CLOSE, CLOSE_1002)}, 0}}, GW_WS_CLOSED, 1002, 0, 0},
    {"RSV2", 0, {{{F(0xa1, "a")}, {F(B_CLOSE, CLOSE_1002)}, 0}}, GW_WS_CLOSED, 1002, 0, 0},
    {"RSV3", 0, {{{F(0x91, "a")}, {F(B_CLOSE, CLOSE_1002)}, 0}}, GW_WS_CLOSED, 1002, 0, 0},
    {"RSV on a ping", 0, {{{F(0xc9, "a")}, {F(B_CLOSE, CLOSE_1002)}, 0}}, GW_WS_CLOSED, 1002, 0, 0},
    {"opcode 3", 0, {{{F(0x83, "a")}, {F(B_CLOSE, CLOSE_1002)}, 0}}, GW_WS_CLOSED, 1002, 0, 0},
    {"opcode 7", 0, {{{F(0x87, "")}, {F(B_CLOSE, CLOSE_1002)}, 0}}, GW_WS_CLOSED, 1002, 0, 0},
    {"opcode 0xB", 0, {{{F(0x8b, "a")}, {F(B_CLOSE, CLOSE_1002)}, 0}}, GW_WS_CLOSED, 1002, 0, 0},
    {"opcode 0xF", 0, {{{F(0x8f, "")}, {F(B_CLOSE, CLOSE_1002)}, 0}}, GW_WS_CLOSED, 1002, 0, 0},
    {"unmasked text",
     0,
     {{{UNMASKED(B_TEXT, "a")}, {F(B_CLOSE, CLOSE_1002)}, 0}},
     GW_WS_CLOSED,
     1002,
     0,
     0},
    {"unmasked ping",
     0,
     {{{UNMASKED(B_PING, "a")}, {F(B_CLOSE, CLOSE_1002)}, 0}},
     GW_WS_CLOSED,
     1002,
     0,
     0},
    {"ping of 126 bytes",
     0,
     {{{FILL(B_PING, 126)}, {F(B_CLOSE, CLOSE_1002)}, 0}},
     GW_WS_CLOSED,
     1002,
     0,
     0},
    {"fragmented ping",
     0,
     {{{F(0x09, "a")}, {F(B_CLOSE, CLOSE_1002)}, 0}},
     GW_WS_CLOSED,
     1002,
     0,
     0},
    {"fragmented pong",
     0,
     {{{F(0x0a, "a")}, {F(B_CLOSE, CLOSE_1002)}, 0}},
     GW_WS_CLOSED,
     1002,
     0,
     0},
    {"continuation without start",
     0,
     {{{F(B_FIN, "a")}, {F(B_CLOSE, CLOSE_1002)}, 0}},
     GW_WS_CLOSED,
     1002,
     0,
     0},
    {"unfinished continuation without start",
     0,
     {{{F(B_CONT, "a")}, {F(B_CLOSE, CLOSE_1002)}, 0}},
     GW_WS_CLOSED,
     1002,
     0,
     0},
    {"continuation after a whole message",
     0,
     {{{F(B_TEXT, "a"), F(B_FIN, "b")}, {F(B_TEXT, "a"), F(B_CLOSE, CLOSE_1002)}, 1}},
     GW_WS_CLOSED,
     1002,
     0,
     0},
    {"text in the middle of a fragmented message",
     0,
     {{{F(B_TEXT_MORE, "a"), F(B_TEXT, "b")}, {F(B_CLOSE, CLOSE_1002)}, 0}},
     GW_WS_CLOSED,
     1002,
     0,
     0},
    {"binary start in the middle of a fragmented message",
     0,
     {{{F(B_TEXT_MORE, "a"), F(B_BIN_MORE, "b")}, {F(B_CLOSE, CLOSE_1002)}, 0}},
     GW_WS_CLOSED,
     1002,
     0,
     0},
    {"nothing after a protocol error",
     0,
     {{{F(0xc1, "a"), F(B_TEXT, "b"), F(B_PING, "c")}, {F(B_CLOSE, CLOSE_1002)}, 0},
      {{F(B_TEXT, "d")}, {{0}}, 0}},
     GW_WS_CLOSED,
     1002,
     0,
     0},
    /* UTF-8: 1007 */
    {"overlong text",
     0,
     {{{F(B_TEXT, "\xc0\x80")}, {F(B_CLOSE, CLOSE_1007)}, 0}},
     GW_WS_CLOSED,
     1007,
     0,
     0},
    {"surrogate text",
     0,
     {{{F(B_TEXT, "a\xed\xa0\x80")}, {F(B_CLOSE, CLOSE_1007)}, 0}},
     GW_WS_CLOSED,
     1007,
     0,
     0},
    {"text with FF",
     0,
     {{{F(B_TEXT, "\xff")}, {F(B_CLOSE, CLOSE_1007)}, 0}},
     GW_WS_CLOSED,
     1007,
     0,
     0},
    {"text above U+10FFFF",
     0,
     {{{F(B_TEXT, "\xf4\x90\x80\x80")}, {F(B_CLOSE, CLOSE_1007)}, 0}},
     GW_WS_CLOSED,
     1007,
     0,
     0},
    {"text ending inside a code point",
     0,
     {{{F(B_TEXT, "a\xe2\x82")}, {F(B_CLOSE, CLOSE_1007)}, 0}},
     GW_WS_CLOSED,
     1007,
     0,
     0},
    {"invalid across fragments",
     0,
     {{{F(B_TEXT_MORE, "\xe2"), F(B_FIN, "\x28\xa1")}, {F(B_CLOSE, CLOSE_1007)}, 0}},
     GW_WS_CLOSED,
     1007,
     0,
     0},
    {"invalid in a later fragment",
     0,
     {{{F(B_TEXT_MORE, "ok"), F(B_CONT, "\xc3\xa9"), F(B_FIN, "\xed\xbf\xbf")},
       {F(B_CLOSE, CLOSE_1007)},
       0}},
     GW_WS_CLOSED,
     1007,
     0,
     0},
    {"last fragment ends inside a code point",
     0,
     {{{F(B_TEXT_MORE, "a"), F(B_FIN, "\xc3")}, {F(B_CLOSE, CLOSE_1007)}, 0}},
     GW_WS_CLOSED,
     1007,
     0,
     0},
    {"invalid in a fragment, in steps",
     0,
     {{{F(B_TEXT_MORE, "a")}, {{0}}, 0}, {{F(B_CONT, "\xff")}, {F(B_CLOSE, CLOSE_1007)}, 0}},
     GW_WS_CLOSED,
     1007,
     0,
     0},
    {"code point split across fragments",
     0,
     {{{F(B_TEXT_MORE, "\xe2\x82"), F(B_FIN, "\xac")}, {F(B_TEXT, "\xe2\x82\xac")}, 1}},
     GW_WS_OPEN,
     0,
     0,
     0},
    {"4-byte code point over three fragments",
     0,
     {{{F(B_TEXT_MORE, "\xf0"), F(B_CONT, "\x9f\x98"), F(B_FIN, "\x80!")},
       {F(B_TEXT, "\xf0\x9f\x98\x80!")},
       1}},
     GW_WS_OPEN,
     0,
     0,
     0},
    {"code point split across steps",
     0,
     {{{F(B_TEXT_MORE, "\xc3")}, {{0}}, 0}, {{F(B_FIN, "\xa9")}, {F(B_TEXT, "\xc3\xa9")}, 1}},
     GW_WS_OPEN,
     0,
     0,
     0},
    {"ping between halves of a code point",
     0,
     {{{F(B_TEXT_MORE, "\xe2"), F(B_PING, "p")}, {F(B_PONG, "p")}, 0},
      {{F(B_FIN, "\x82\xac")}, {F(B_TEXT, "\xe2\x82\xac")}, 1}},
     GW_WS_OPEN,
     0,
     0,
     0},
    /* size: 1009 */
    {"message of max_message bytes",
     16,
     {{{FILL(B_TEXT, 16)}, {FILL(B_TEXT, 16)}, 1}},
     GW_WS_OPEN,
     0,
     0,
     0},
    {"single frame over max_message",
     16,
     {{{FILL(B_TEXT, 17)}, {F(B_CLOSE, CLOSE_1009)}, 0}},
     GW_WS_CLOSED,
     1009,
     0,
     0},
    {"fragments of max_message bytes",
     16,
     {{{FILL(B_BIN_MORE, 8), FILL(B_FIN, 8)}, {FILL_EVERY(B_BIN, 16, 8)}, 1},
      {{FILL(B_BIN_MORE, 8), FILL(B_FIN, 8)}, {FILL_EVERY(B_BIN, 16, 8)}, 2}},
     GW_WS_OPEN,
     0,
     0,
     0},
    {"fragments over max_message",
     16,
     {{{FILL(B_TEXT_MORE, 10), FILL(B_FIN, 7)}, {F(B_CLOSE, CLOSE_1009)}, 0}},
     GW_WS_CLOSED,
     1009,
     0,
     0},
    {"three fragments over max_message",
     16,
     {{{FILL(B_TEXT_MORE, 6), FILL(B_CONT, 6), FILL(B_FIN, 6)}, {F(B_CLOSE, CLOSE_1009)}, 0}},
     GW_WS_CLOSED,
     1009,
     0,
     0},
    {"over max_message in steps",
     16,
     {{{FILL(B_TEXT_MORE, 10)}, {{0}}, 0}, {{FILL(B_FIN, 7)}, {F(B_CLOSE, CLOSE_1009)}, 0}},
     GW_WS_CLOSED,
     1009,
     0,
     0},
    {"size counted per message",
     16,
     {{{FILL(B_TEXT, 16), FILL(B_TEXT, 16), FILL(B_TEXT, 16)},
       {FILL(B_TEXT, 16), FILL(B_TEXT, 16), FILL(B_TEXT, 16)},
       3}},
     GW_WS_OPEN,
     0,
     0,
     0},
};

/* Run c; return 0, or -1 with what went wrong in why. */
static int run_case(const struct ws_case *c, int bytewise, char *why, size_t whylen)
{
    const char *how = bytewise ? "byte by byte" : "whole";
    enum gw_ws_state st = GW_WS_OPEN;
    char out_why[600];

    open_ws(c->max_message ? c->max_message : 65536, MODE_ECHO, &handler);
    for (size_t s = 0; s < N_ELEMS(c->steps) && !is_end(&c->steps[s].in[0]); s++) {
        const struct step *step = &c->steps[s];

        st = feed_frames(step->in, bytewise);
        for (size_t i = 0; !is_end(&step->out[i]); i++)
            add_server(want_buf, &step->out[i]);
        if (take_output(out_why, sizeof(out_why)) < 0) {
            snprintf(why, whylen, "%s (%s), step %zu: %s", c->name, how, s, out_why);
            return -1;
        }
        if (n_msgs != step->msgs) {
            snprintf(why, whylen, "%s (%s), step %zu: %zu messages, want %zu", c->name, how, s,
                     n_msgs, step->msgs);
            return -1;
        }
    }
    if (st != c->state || gw_ws_code_sent(ws) != c->code_sent ||
        gw_ws_code_received(ws) != c->code_received || n_pongs != c->pongs) {
        snprintf(why, whylen, "%s (%s): state %d sent %u received %u pongs %zu; want %d %u %u %zu",
                 c->name, how, st, gw_ws_code_sent(ws), gw_ws_code_received(ws), n_pongs, c->state,
                 c->code_sent, c->code_received, c->pongs);
        return -1;
    }
    assert_int_equal(n_text + n_binary, n_msgs);
    if (st != GW_WS_OPEN)
        assert_int_equal(gw_ws_send(ws, 0, (const uint8_t *)"x", 1), -1);
    return 0;
}

/* Run every case whole and/or byte by byte, then fail once listing each failure. */
static void run_cases(const struct ws_case *cases, size_t n, int whole, int bytewise)
{
    char report[8192] = "";

    for (size_t i = 0; i < n; i++) {
        for (int b = whole ? 0 : 1; b <= bytewise; b++) {
            char why[800];
            size_t used = strlen(report);

            if (run_case(&cases[i], b, why, sizeof(why)) < 0)
                snprintf(report + used, sizeof(report) - used, "\n  %s", why);
        }
    }
    if (report[0])
        fail_msg("%s", report);
}

static void test_scripts_whole(void **state)
{
    (void)state;
    run_cases(script_cases, N_ELEMS(script_cases), 1, 0);
}

static void test_scripts_byte_by_byte(void **state)
{
    (void)state;
    run_cases(script_cases, N_ELEMS(script_cases), 0, 1);
}

/* The close reason must be UTF-8 (RFC 6455 5.5.1, 7.1.6) however the frame arrives: in one
 * read or in pieces. */
static const struct ws_case close_reason_cases[] = {
    {"close reason not UTF-8",
     0,
     {{{F(B_CLOSE, CLOSE_1000 "\xff")}, {F(B_CLOSE, CLOSE_1007)}, 0}},
     GW_WS_CLOSED,
     1007,
     0,
     0},
    {"close reason overlong",
     0,
     {{{F(B_CLOSE, CLOSE_1001 "ok \xc0\xaf")}, {F(B_CLOSE, CLOSE_1007)}, 0}},
     GW_WS_CLOSED,
     1007,
     0,
     0},
    {"close reason UTF-8",
     0,
     {{{F(B_CLOSE, CLOSE_1001 "\xc3\xa9t\xc3\xa9")},
       {F(B_CLOSE, CLOSE_1001 "\xc3\xa9t\xc3\xa9")},
       0}},
     GW_WS_CLOSED,
     1001,
     1001,
     0},
};

static void test_close_reason_utf8(void **state)
{
    (void)state;
    run_cases(close_reason_cases, N_ELEMS(close_reason_cases), 1, 1);
}

/* Feed the client frames split in two reads at every position; return the cuts after which
 * the output was not exactly want, as text ("" when none). */
static void split_everywhere(const struct frame *in, const struct frame *want, char *bad,
                             size_t badlen)
{
    struct evbuffer *all = evbuffer_new();
    size_t len;

    bad[0] = '\0';
    for (size_t i = 0; !is_end(&in[i]); i++)
        add_client(all, &in[i]);
    len = evbuffer_get_length(all);
    for (size_t cut = 0; cut <= len; cut++) {
        const uint8_t *bytes;
        char why[600];
        size_t used = strlen(bad);

        open_ws(65536, MODE_ECHO, &handler);
        evbuffer_add_buffer_reference(script, all);
        bytes = evbuffer_pullup(script, -1);
        evbuffer_add(in_buf, bytes, cut);
        gw_ws_recv(ws, in_buf);
        evbuffer_add(in_buf, bytes + cut, len - cut);
        gw_ws_recv(ws, in_buf);
        for (size_t i = 0; !is_end(&want[i]); i++)
            add_server(want_buf, &want[i]);
        if (take_output(why, sizeof(why)) < 0 && used < badlen)
            snprintf(bad + used, badlen - used, "\n  cut %zu: %s", cut, why);
    }
    evbuffer_free(all);
}

/* wslay 1.1.1 skips the first two bytes of every piece of a close frame, not of its payload,
 * when checking the reason: a close split across reads must give the same answer. */
static void test_close_reason_split_everywhere(void **state)
{
    static const struct frame valid[] = {F(B_CLOSE, CLOSE_1000 "\xc3\xa9tat"), {0}};
    static const struct frame invalid[] = {F(B_CLOSE, CLOSE_1000 "ab\xff"
                                                                 "cd"),
                                           {0}};
    static const struct frame want_1007[] = {F(B_CLOSE, CLOSE_1007), {0}};
    char bad_valid[4096], bad_invalid[4096];

    (void)state;
    split_everywhere(valid, valid, bad_valid, sizeof(bad_valid));
    split_everywhere(invalid, want_1007, bad_invalid, sizeof(bad_invalid));
    if (bad_valid[0] || bad_invalid[0])
        fail_msg("valid reason:%s\ninvalid reason:%s", bad_valid[0] ? bad_valid : " ok",
                 bad_invalid[0] ? bad_invalid : " ok");
}

/* max_message bounds data messages; control frames have their own bound of 125 bytes, so a
 * ping or close up to 125 bytes is answered even under a small max_message. */
static const struct ws_case control_size_cases[] = {
    {"ping over max_message",
     16,
     {{{FILL(B_PING, 100)}, {FILL(B_PONG, 100)}, 0}},
     GW_WS_OPEN,
     0,
     0,
     0},
    {"ping over max_message inside a message",
     4,
     {{{FILL(B_TEXT_MORE, 2), FILL(B_PING, 100), FILL(B_FIN, 2)},
       {FILL(B_PONG, 100), FILL_EVERY(B_TEXT, 4, 2)},
       1}},
     GW_WS_OPEN,
     0,
     0,
     0},
    {"close with a reason over max_message",
     16,
     {{{F(B_CLOSE, CLOSE_1000 "a reason longer than sixteen bytes")},
       {F(B_CLOSE, CLOSE_1000 "a reason longer than sixteen bytes")},
       0}},
     GW_WS_CLOSED,
     1000,
     1000,
     0},
};

static void test_control_frames_ignore_max_message(void **state)
{
    (void)state;
    run_cases(control_size_cases, N_ELEMS(control_size_cases), 1, 1);
}

/* ---- close codes ------------------------------------------------------------------------- */

/* Valid codes are echoed; reserved, unassigned and out-of-range ones fail with 1002. */
static void test_close_codes(void **state)
{
    static const uint16_t valid[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009,
                                     1010, 1011, 3000, 3999, 4000, 4999};
    static const uint16_t invalid[] = {0,    1,    999,  1004, 1005, 1006, 1015,
                                       1016, 1100, 2000, 2999, 5000, 65535};

    (void)state;
    for (int bytewise = 0; bytewise < 2; bytewise++) {
        for (size_t i = 0; i < N_ELEMS(valid) + N_ELEMS(invalid); i++) {
            int ok = i < N_ELEMS(valid);
            uint16_t code = ok ? valid[i] : invalid[i - N_ELEMS(valid)];
            char body[2] = {(char)(code >> 8), (char)code};
            struct frame in[2] = {{B_CLOSE, body, 2, 0, 0}, {0}};
            struct frame out[2] = {{B_CLOSE, ok ? body : CLOSE_1002, 2, 0, 0}, {0}};
            char what[64];

            snprintf(what, sizeof(what), "close %u (%s)", code, bytewise ? "bytewise" : "whole");
            open_ws(65536, MODE_ECHO, &handler);
            assert_int_equal(feed_frames(in, bytewise), GW_WS_CLOSED);
            expect_output(out, what);
            assert_int_equal(gw_ws_code_sent(ws), ok ? code : 1002);
            assert_int_equal(gw_ws_code_received(ws), ok ? code : 0);
        }
    }
}

/* ---- the API ----------------------------------------------------------------------------- */

static void test_send(void **state)
{
    static const struct {
        int binary;
        size_t len;
    } cases[] = {{0, 0}, {0, 5}, {1, 5}, {0, 125}, {1, 126}, {0, 65535}, {1, 65536}, {0, 100000}};

    (void)state;
    open_ws(16, MODE_ECHO, &handler); /* the limit is on what we take, not what we send */
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        uint8_t *msg = malloc(cases[i].len + 1);
        struct frame f[2] = {FILL(cases[i].binary ? B_BIN : B_TEXT, cases[i].len), {0}};

        assert_non_null(msg);
        for (size_t k = 0; k < cases[i].len; k++)
            msg[k] = filler(k);
        assert_int_equal(gw_ws_send(ws, cases[i].binary, msg, cases[i].len), 0);
        free(msg);
        expect_output(f, "gw_ws_send");
    }
    assert_int_equal(gw_ws_state(ws), GW_WS_OPEN);
}

static void test_server_close_handshake(void **state)
{
    static const struct frame close_out[] = {F(B_CLOSE, CLOSE_1001 "bye"), {0}};
    static const struct frame late[] = {F(B_TEXT, "late"), F(B_PING, "p"), {0}};
    static const struct frame client_close[] = {F(B_CLOSE, CLOSE_1001), {0}};

    (void)state;
    for (int bytewise = 0; bytewise < 2; bytewise++) {
        open_ws(65536, MODE_ECHO, &handler);
        gw_ws_close(ws, 1001, "bye");
        expect_output(close_out, "gw_ws_close");
        assert_int_equal(gw_ws_state(ws), GW_WS_CLOSING);
        assert_int_equal(gw_ws_code_sent(ws), 1001);
        assert_int_equal(gw_ws_code_received(ws), 0);
        /* no more data or pings from us; a second close does nothing */
        assert_int_equal(gw_ws_send(ws, 0, (const uint8_t *)"x", 1), -1);
        assert_int_equal(gw_ws_ping(ws, (const uint8_t *)"x", 1), -1);
        gw_ws_close(ws, 1000, NULL);
        expect_output(no_frames, "second gw_ws_close");
        /* a message or ping from the client is not delivered nor answered */
        assert_int_equal(feed_frames(late, bytewise), GW_WS_CLOSING);
        expect_output(no_frames, "data while closing");
        assert_int_equal(n_msgs, 0);
        /* the client's close completes the handshake without another close from us */
        assert_int_equal(feed_frames(client_close, bytewise), GW_WS_CLOSED);
        expect_output(no_frames, "client close after ours");
        assert_int_equal(gw_ws_code_sent(ws), 1001);
        assert_int_equal(gw_ws_code_received(ws), 1001);
        gw_ws_close(ws, 1000, NULL);
        expect_output(no_frames, "close after the handshake");
    }
}

static void test_close_without_reason(void **state)
{
    static const struct frame close_out[] = {F(B_CLOSE, CLOSE_1000), {0}};
    static const struct frame client_close[] = {F(B_CLOSE, ""), {0}};

    (void)state;
    open_ws(65536, MODE_ECHO, &handler);
    gw_ws_close(ws, 1000, NULL);
    expect_output(close_out, "gw_ws_close(1000, NULL)");
    assert_int_equal(gw_ws_state(ws), GW_WS_CLOSING);
    assert_int_equal(feed_frames(client_close, 0), GW_WS_CLOSED);
    expect_output(no_frames, "empty client close");
    assert_int_equal(gw_ws_code_received(ws), 1005);
}

/* After the client's close, our close does nothing more and sending fails. */
static void test_close_after_client_close(void **state)
{
    static const struct frame client_close[] = {F(B_CLOSE, CLOSE_1000 "x"), {0}};
    static const struct frame reply[] = {F(B_CLOSE, CLOSE_1000 "x"), {0}};

    (void)state;
    open_ws(65536, MODE_ECHO, &handler);
    assert_int_equal(feed_frames(client_close, 0), GW_WS_CLOSED);
    expect_output(reply, "reply to the client's close");
    gw_ws_close(ws, 1001, "late");
    expect_output(no_frames, "gw_ws_close after the handshake");
    assert_int_equal(gw_ws_state(ws), GW_WS_CLOSED);
    assert_int_equal(gw_ws_send(ws, 1, (const uint8_t *)"x", 1), -1);
    assert_int_equal(gw_ws_ping(ws, (const uint8_t *)"x", 1), -1);
    assert_int_equal(gw_ws_code_sent(ws), 1000);
}

static void test_ping(void **state)
{
    static const struct frame ping_out[] = {F(B_PING, "abc"), {0}};
    static const struct frame empty_ping[] = {F(B_PING, ""), {0}};
    static const struct frame ping_125[] = {FILL(B_PING, 125), {0}};
    static const struct frame pong_in[] = {F(B_PONG, "abc"), {0}};
    uint8_t payload[126];

    (void)state;
    for (size_t k = 0; k < sizeof(payload); k++)
        payload[k] = filler(k);
    open_ws(65536, MODE_ECHO, &handler);
    assert_int_equal(gw_ws_ping(ws, (const uint8_t *)"abc", 3), 0);
    expect_output(ping_out, "gw_ws_ping");
    assert_int_equal(gw_ws_ping(ws, NULL, 0), 0);
    expect_output(empty_ping, "empty gw_ws_ping");
    assert_int_equal(gw_ws_ping(ws, payload, 125), 0);
    expect_output(ping_125, "gw_ws_ping of 125 bytes");
    assert_int_equal(gw_ws_ping(ws, payload, 126), -1);
    expect_output(no_frames, "gw_ws_ping of 126 bytes");
    assert_int_equal(feed_frames(pong_in, 0), GW_WS_OPEN);
    expect_output(no_frames, "pong");
    assert_int_equal(n_pongs, 1);
    assert_int_equal(gw_ws_state(ws), GW_WS_OPEN);
}

/* on_pong may be NULL. */
static void test_pong_without_handler(void **state)
{
    static const struct frame in[] = {F(B_PONG, "x"), F(B_TEXT, "y"), {0}};
    static const struct frame out[] = {F(B_TEXT, "y"), {0}};

    (void)state;
    open_ws(65536, MODE_ECHO, &handler_no_pong);
    assert_int_equal(feed_frames(in, 0), GW_WS_OPEN);
    expect_output(out, "pong without on_pong");
    assert_int_equal(n_pongs, 0);
    assert_int_equal(n_msgs, 1);
}

/* The handler may close: the close goes out, later messages of the same read are not
 * delivered, and sending after the close fails. */
static void test_close_from_handler(void **state)
{
    static const struct frame in[] = {F(B_TEXT, "a"), F(B_TEXT, "b"), {0}};
    static const struct frame out[] = {F(B_CLOSE, CLOSE_1000 "done"), {0}};
    static const struct frame client_close[] = {F(B_CLOSE, CLOSE_1000), {0}};

    (void)state;
    for (int bytewise = 0; bytewise < 2; bytewise++) {
        open_ws(65536, MODE_CLOSE, &handler);
        assert_int_equal(feed_frames(in, bytewise), GW_WS_CLOSING);
        expect_output(out, "close from the handler");
        assert_int_equal(n_msgs, 1);
        assert_int_equal(send_rc_after_close, -1);
        assert_int_equal(gw_ws_code_sent(ws), 1000);
        assert_int_equal(feed_frames(client_close, bytewise), GW_WS_CLOSED);
        expect_output(no_frames, "client close");
    }
}

/* Input split in two reads at any position gives the same output, in the order of the input
 * (the pong before the echo of the message completed after the ping). */
static void test_every_split(void **state)
{
    static const struct frame in[] = {F(B_TEXT_MORE, "he"), F(B_PING, "p"),         F(B_FIN, "llo"),
                                      FILL(B_BIN, 130),     F(B_CLOSE, CLOSE_1000), {0}};
    static const struct frame out[] = {
        F(B_PONG, "p"), F(B_TEXT, "hello"), FILL(B_BIN, 130), F(B_CLOSE, CLOSE_1000), {0}};
    char bad[4096];

    (void)state;
    split_everywhere(in, out, bad, sizeof(bad));
    if (bad[0])
        fail_msg("%s", bad);
}

/* A shared frame goes out as is, once per append; not after a close. */
static void test_append_frame(void **state)
{
    static const struct frame want[] = {
        F(B_TEXT, "hello"), F(B_TEXT, "hello"), F(B_CLOSE, CLOSE_1001), {0}};
    struct gw_frame *f = gw_frame_new(GW_FRAME_TEXT, (const uint8_t *)"hello", 5);
    int rc1, rc2, rc3;

    (void)state;
    open_ws(65536, MODE_ECHO, &handler);
    rc1 = gw_ws_append_frame(ws, f);
    rc2 = gw_ws_append_frame(ws, f);
    gw_ws_close(ws, 1001, NULL);
    rc3 = gw_ws_append_frame(ws, f);
    gw_frame_unref(f); /* out_buf holds references of its own */
    assert_int_equal(rc1, 0);
    assert_int_equal(rc2, 0);
    assert_int_equal(rc3, -1);
    expect_output(want, "two appends, then a close");
}

static void test_free_null(void **state)
{
    (void)state;
    gw_ws_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_scripts_whole, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scripts_byte_by_byte, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_reason_utf8, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_reason_split_everywhere, setup, teardown),
        cmocka_unit_test_setup_teardown(test_control_frames_ignore_max_message, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_codes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_send, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_close_handshake, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_without_reason, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_after_client_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ping, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pong_without_handler, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_from_handler, setup, teardown),
        cmocka_unit_test_setup_teardown(test_every_split, setup, teardown),
        cmocka_unit_test_setup_teardown(test_append_frame, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_null, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
