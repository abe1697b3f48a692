#include "gateway/ws.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <wslay/wslay.h>

#include "gateway/deflate.h"
#include "gateway/frame.h"
#include "gateway/util.h"
#include "proto/utf8.h"

/* A message buffer larger than this is freed after its message, so idle sessions stay small. */
#define WS_KEEP_BUFFER 4096

struct gw_ws {
    wslay_event_context_ptr ctx; /* only while input is in flight: idle sessions drop it */
    struct evbuffer *in;         /* the input being read, during gw_ws_recv only */
    struct evbuffer *out;        /* borrowed */
    const struct gw_ws_handler *handler;
    void *arg;
    size_t max_message;

    /* The data message being reassembled (wslay runs without buffering). */
    uint8_t *msg;
    size_t msg_len, msg_cap;
    uint8_t msg_opcode;   /* WSLAY_TEXT_FRAME or WSLAY_BINARY_FRAME */
    uint8_t frame_opcode; /* of the frame being received */
    uint8_t frame_fin;
    uint8_t msg_open;       /* a fragmented message has started and not ended */
    uint8_t msg_compressed; /* the message has RSV1 (permessage-deflate) */
    struct proto_utf8 utf8;
    struct gw_deflate_params deflate;
    struct gw_inflater *inflater; /* when the client has sent a compressed message */

    int in_recv;         /* inside wslay_event_recv: the session must not be freed */
    int close_queued;    /* a close frame is queued or sent: no more data frames */
    int failed;          /* the client broke the protocol: ignore the rest of its input */
    uint16_t fail_code;  /* replaces the empty close wslay sends on framing errors */
    uint16_t code_sent;  /* when we replaced wslay's close */
    size_t send_left;    /* bytes of wslay's current frame still to come through on_send */
    uint64_t frame_left; /* bytes of the client frame being fed to wslay not yet fed */
};

/* ---- wslay callbacks ---------------------------------------------------------------------- */

/*
 * How many bytes of `in` (at most want) to hand wslay now. Frames pass as they come, except
 * that a close frame is held back until it is whole: wslay 1.1.1 checks the UTF-8 of a close
 * reason per chunk, wrongly when the payload arrives in pieces. Updates frame_left for the
 * bytes planned.
 */
static size_t plan_feed(struct gw_ws *ws, struct evbuffer *in, size_t want)
{
    size_t avail = evbuffer_get_length(in), off = 0;
    uint64_t left = ws->frame_left;

    while (off < want && off < avail) {
        if (left == 0) {
            uint8_t h[14];
            struct evbuffer_ptr pos;
            uint64_t plen;
            size_t hlen;

            evbuffer_ptr_set(in, &pos, off, EVBUFFER_PTR_SET);
            ev_ssize_t got = evbuffer_copyout_from(in, &pos, h, sizeof(h));
            if (got < 2)
                break;
            hlen = 2 + ((h[1] & 0x80) ? 4 : 0) + ((h[1] & 0x7f) == 126 ? 2 : 0) +
                   ((h[1] & 0x7f) == 127 ? 8 : 0);
            if ((size_t)got < hlen)
                break; /* wait for the whole header */
            plen = h[1] & 0x7f;
            if (plen == 126)
                plen = (uint64_t)h[2] << 8 | h[3];
            else if (plen == 127)
                for (int i = 0; i < 8; i++)
                    plen = (i ? plen << 8 : 0) | h[2 + i];
            if ((h[0] & 0x0f) == WSLAY_CONNECTION_CLOSE && plen <= 125 && avail - off < hlen + plen)
                break;
            left = plen > UINT64_MAX - hlen ? UINT64_MAX : hlen + plen;
        }
        size_t n = avail - off < want - off ? avail - off : want - off;
        if (n > left)
            n = (size_t)left;
        off += n;
        left -= n;
    }
    ws->frame_left = left;
    return off;
}

static ssize_t on_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags, void *user)
{
    struct gw_ws *ws = user;
    size_t want = plan_feed(ws, ws->in, len);
    int n = want ? evbuffer_remove(ws->in, buf, want) : 0;

    (void)flags;
    if (n <= 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    return n;
}

/* wslay writes only control frames (pong, ping, close): header, then payload of at most
 * 125 bytes. The output always takes everything, so frames never interleave. */
static ssize_t on_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                       void *user)
{
    struct gw_ws *ws = user;

    (void)ctx;
    (void)flags;
    if (ws->send_left == 0) {
        assert(len >= 2 && (data[1] & 0x7f) <= 125);
        if (ws->fail_code && data[0] == (0x80 | WSLAY_CONNECTION_CLOSE) && data[1] == 0) {
            uint8_t code[2] = {(uint8_t)(ws->fail_code >> 8), (uint8_t)ws->fail_code};

            gw_frame_write(ws->out, GW_FRAME_CLOSE, code, sizeof(code));
            ws->code_sent = ws->fail_code;
            return (ssize_t)len;
        }
        ws->send_left = 2 + (size_t)(data[1] & 0x7f);
    }
    assert(len <= ws->send_left);
    ws->send_left -= len;
    if (evbuffer_add(ws->out, data, len) < 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    return (ssize_t)len;
}

static void fail(struct gw_ws *ws, uint16_t code)
{
    if (ws->failed)
        return;
    ws->failed = 1;
    ws->close_queued = 1;
    wslay_event_queue_close(ws->ctx, code, NULL, 0);
    wslay_event_shutdown_read(ws->ctx);
}

/* The most bytes a message may take on the wire: incompressible data comes in stored blocks
 * of 5 bytes' overhead each, as small as about 2 KiB with a 4 KiB window, so a compressed
 * message may exceed the limit by that much (and a little). */
static size_t wire_limit(const struct gw_ws *ws)
{
    return ws->msg_compressed ? ws->max_message + ws->max_message / 256 + 64 : ws->max_message;
}

static int is_data_opcode(uint8_t opcode)
{
    return opcode == WSLAY_TEXT_FRAME || opcode == WSLAY_BINARY_FRAME ||
           opcode == WSLAY_CONTINUATION_FRAME;
}

static void on_frame_start(wslay_event_context_ptr ctx,
                           const struct wslay_event_on_frame_recv_start_arg *arg, void *user)
{
    struct gw_ws *ws = user;
    int starts = arg->opcode == WSLAY_TEXT_FRAME || arg->opcode == WSLAY_BINARY_FRAME;

    (void)ctx;
    ws->frame_opcode = arg->opcode;
    ws->frame_fin = arg->fin;
    if (ws->failed)
        return;
    /* RSV1 marks a compressed message, on its first frame only (RFC 7692 6). */
    if (arg->rsv && (!starts || !ws->deflate.enabled)) {
        fail(ws, GW_WS_PROTOCOL_ERROR);
        return;
    }
    if (!is_data_opcode(arg->opcode))
        return;
    if (starts) {
        ws->msg_opcode = arg->opcode;
        ws->msg_compressed = arg->rsv != 0;
        ws->msg_len = 0;
        proto_utf8_init(&ws->utf8);
    }
    ws->msg_open = !arg->fin;
    /* wslay checks each frame against its limit; the sum of fragments is ours to check.
     * Incompressible data grows a little when deflated: the inflated size is what the limit
     * is about, and inflate_message checks it. */
    if (arg->payload_length > wire_limit(ws) - ws->msg_len) {
        fail(ws, GW_WS_TOO_BIG);
        return;
    }
    size_t want = ws->msg_len + (size_t)arg->payload_length;
    if (want > ws->msg_cap) {
        ws->msg = xrealloc(ws->msg, want);
        ws->msg_cap = want;
    }
}

static void on_frame_chunk(wslay_event_context_ptr ctx,
                           const struct wslay_event_on_frame_recv_chunk_arg *arg, void *user)
{
    struct gw_ws *ws = user;

    (void)ctx;
    if (ws->failed || !is_data_opcode(ws->frame_opcode) || arg->data_length == 0)
        return;
    assert(ws->msg_len + arg->data_length <= ws->msg_cap);
    memcpy(ws->msg + ws->msg_len, arg->data, arg->data_length);
    ws->msg_len += arg->data_length;
    if (ws->msg_opcode == WSLAY_TEXT_FRAME && !ws->msg_compressed &&
        proto_utf8_feed(&ws->utf8, arg->data, arg->data_length) < 0)
        fail(ws, GW_WS_INVALID_DATA);
}

/* Inflate the compressed message in ws->msg; return its text, or NULL after failing. */
static const uint8_t *inflate_message(struct gw_ws *ws, size_t *len)
{
    const uint8_t *out;
    int rc;

    if (ws->inflater == NULL)
        ws->inflater = gw_inflater_new(ws->deflate.client_window_bits);
    rc = gw_inflater_message(ws->inflater, ws->msg, ws->msg_len, ws->max_message,
                             ws->deflate.client_no_context_takeover, &out, len);
    if (rc == GW_INFLATE_TOO_BIG) {
        fail(ws, GW_WS_TOO_BIG); /* a deflate bomb, or just too long once inflated */
        return NULL;
    }
    if (rc != GW_INFLATE_OK ||
        (ws->msg_opcode == WSLAY_TEXT_FRAME && !proto_utf8_is_valid(out, *len))) {
        fail(ws, GW_WS_INVALID_DATA);
        return NULL;
    }
    return out;
}

static void on_frame_end(wslay_event_context_ptr ctx, void *user)
{
    struct gw_ws *ws = user;
    const uint8_t *msg = ws->msg;
    size_t len = ws->msg_len;

    (void)ctx;
    if (ws->failed || !is_data_opcode(ws->frame_opcode) || !ws->frame_fin)
        return;
    if (ws->msg_compressed) {
        msg = inflate_message(ws, &len);
        if (msg == NULL)
            return;
    } else if (ws->msg_opcode == WSLAY_TEXT_FRAME && !proto_utf8_is_complete(&ws->utf8)) {
        fail(ws, GW_WS_INVALID_DATA);
        return;
    }
    /* After our close frame only the client's close matters (RFC 6455 5.5.1). */
    if (!ws->close_queued && ws->handler->on_message)
        ws->handler->on_message(ws->arg, ws->msg_opcode == WSLAY_BINARY_FRAME, msg, len);
    if (ws->inflater)
        gw_inflater_trim(ws->inflater);
    ws->msg_len = 0;
    if (ws->msg_cap > WS_KEEP_BUFFER) {
        free(ws->msg);
        ws->msg = NULL;
        ws->msg_cap = 0;
    }
}

static void on_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg,
                   void *user)
{
    struct gw_ws *ws = user;

    (void)ctx;
    if (ws->failed)
        return;
    if (arg->opcode == WSLAY_CONNECTION_CLOSE) {
        /* wslay already queued its reply; a 1-byte body is malformed (RFC 6455 5.5.1). */
        if (arg->msg_length == 1)
            ws->fail_code = GW_WS_PROTOCOL_ERROR;
        ws->close_queued = 1;
    } else if (arg->opcode == WSLAY_PONG && ws->handler->on_pong) {
        ws->handler->on_pong(ws->arg);
    }
}

static const struct wslay_event_callbacks callbacks = {
    .recv_callback = on_recv,
    .send_callback = on_send,
    .on_frame_recv_start_callback = on_frame_start,
    .on_frame_recv_chunk_callback = on_frame_chunk,
    .on_frame_recv_end_callback = on_frame_end,
    .on_msg_recv_callback = on_msg,
};

/* ---- public ------------------------------------------------------------------------------- */

/* The wslay context exists only while input is being handled: created on demand, dropped
 * again when the session is idle, so an idle session does not carry wslay's 8 KiB of
 * buffers. */
static void ensure_ctx(struct gw_ws *ws)
{
    if (ws->ctx)
        return;
    if (wslay_event_context_server_init(&ws->ctx, &callbacks, ws) != 0)
        abort(); /* only fails for lack of memory */
    wslay_event_config_set_no_buffering(ws->ctx, 1);
    /* wslay applies its limit to control frames too; ours is checked in on_frame_start. */
    size_t limit =
        ws->deflate.enabled ? ws->max_message + ws->max_message / 256 + 64 : ws->max_message;
    wslay_event_config_set_max_recv_msg_length(ws->ctx, limit > 125 ? limit : 125);
    if (ws->deflate.enabled)
        wslay_event_config_set_allowed_rsv_bits(ws->ctx, WSLAY_RSV1_BIT);
}

/* Drop the context if nothing is in flight: no frame half fed, no message half assembled,
 * nothing queued, no close begun. */
static void release_ctx_if_idle(struct gw_ws *ws)
{
    if (ws->ctx == NULL || ws->in_recv || ws->close_queued || ws->failed || ws->frame_left ||
        ws->msg_open || ws->send_left || wslay_event_get_queued_msg_count(ws->ctx) != 0 ||
        !wslay_event_get_read_enabled(ws->ctx) || !wslay_event_get_write_enabled(ws->ctx) ||
        wslay_event_get_close_received(ws->ctx) || wslay_event_get_close_sent(ws->ctx))
        return;
    wslay_event_context_free(ws->ctx);
    ws->ctx = NULL;
}

struct gw_ws *gw_ws_new(struct evbuffer *out, size_t max_message,
                        const struct gw_deflate_params *deflate,
                        const struct gw_ws_handler *handler, void *arg)
{
    struct gw_ws *ws = xcalloc(1, sizeof(*ws));

    ws->out = out;
    ws->handler = handler;
    ws->arg = arg;
    ws->max_message = max_message;
    if (deflate)
        ws->deflate = *deflate;
    return ws;
}

void gw_ws_free(struct gw_ws *ws)
{
    if (ws == NULL)
        return;
    assert(!ws->in_recv);
    if (ws->ctx)
        wslay_event_context_free(ws->ctx);
    gw_inflater_free(ws->inflater);
    free(ws->msg);
    free(ws);
}

/* Write the control frames wslay has queued. Also called from inside wslay_event_recv (its
 * send side shares no state with the receive side), so that a pong answers its ping before
 * the data frames that follow. */
static void flush(struct gw_ws *ws)
{
    if (ws->ctx && wslay_event_send(ws->ctx) != 0)
        wslay_event_shutdown_write(ws->ctx);
}

enum gw_ws_state gw_ws_recv(struct gw_ws *ws, struct evbuffer *in)
{
    int rc;

    ensure_ctx(ws);
    ws->in = in;
    ws->in_recv = 1;
    rc = wslay_event_recv(ws->ctx);
    ws->in_recv = 0;
    ws->in = NULL;
    if (rc == WSLAY_ERR_CALLBACK_FAILURE && !ws->failed) {
        /* A framing error (bad length, oversized or fragmented control frame): wslay
         * queued a close without a code, which on_send turns into 1002. */
        ws->fail_code = GW_WS_PROTOCOL_ERROR;
        ws->failed = 1;
    } else if (rc != 0) {
        fail(ws, GW_WS_INTERNAL);
    }
    if (!wslay_event_get_read_enabled(ws->ctx))
        ws->close_queued = 1;
    flush(ws);
    enum gw_ws_state st = gw_ws_state(ws);
    release_ctx_if_idle(ws);
    return st;
}

static int is_sending(const struct gw_ws *ws)
{
    return !ws->close_queued && !(ws->ctx && wslay_event_get_close_sent(ws->ctx));
}

int gw_ws_send(struct gw_ws *ws, int binary, const uint8_t *msg, size_t len)
{
    struct gw_frame *f;
    int rc;

    if (!is_sending(ws))
        return -1;
    flush(ws);
    if (!ws->deflate.enabled)
        return gw_frame_write(ws->out, binary ? GW_FRAME_BINARY : GW_FRAME_TEXT, msg, len);
    f = gw_frame_new(binary ? GW_FRAME_BINARY : GW_FRAME_TEXT, msg, len);
    rc = gw_frame_append(gw_frame_deflated(f, ws->deflate.server_window_bits), ws->out);
    gw_frame_unref(f);
    return rc;
}

int gw_ws_append_frame(struct gw_ws *ws, struct gw_frame *f)
{
    if (!is_sending(ws))
        return -1;
    flush(ws);
    if (ws->deflate.enabled)
        f = gw_frame_deflated(f, ws->deflate.server_window_bits);
    return gw_frame_append(f, ws->out);
}

int gw_ws_ping(struct gw_ws *ws, const uint8_t *payload, size_t len)
{
    struct wslay_event_msg m = {WSLAY_PING, payload, len};

    if (ws->close_queued || len > 125)
        return -1;
    ensure_ctx(ws);
    if (wslay_event_queue_msg(ws->ctx, &m) != 0)
        return -1;
    flush(ws);
    release_ctx_if_idle(ws);
    return 0;
}

void gw_ws_close(struct gw_ws *ws, uint16_t code, const char *reason)
{
    size_t rlen = reason ? strlen(reason) : 0;

    if (!is_sending(ws))
        return;
    assert(rlen <= 123);
    ensure_ctx(ws);
    ws->close_queued = 1;
    wslay_event_queue_close(ws->ctx, code, (const uint8_t *)reason, rlen);
    flush(ws);
}

enum gw_ws_state gw_ws_state(const struct gw_ws *ws)
{
    if (ws->ctx == NULL)
        return GW_WS_OPEN; /* dropped only while open and idle */
    if (!wslay_event_get_close_sent(ws->ctx))
        return wslay_event_get_write_enabled(ws->ctx) ? GW_WS_OPEN : GW_WS_CLOSED;
    if (wslay_event_get_close_received(ws->ctx) || !wslay_event_get_read_enabled(ws->ctx))
        return GW_WS_CLOSED;
    return GW_WS_CLOSING;
}

uint16_t gw_ws_code_sent(const struct gw_ws *ws)
{
    if (ws->code_sent)
        return ws->code_sent;
    return ws->ctx && wslay_event_get_close_sent(ws->ctx)
               ? wslay_event_get_status_code_sent(ws->ctx)
               : 0;
}

uint16_t gw_ws_code_received(const struct gw_ws *ws)
{
    return ws->ctx && wslay_event_get_close_received(ws->ctx)
               ? wslay_event_get_status_code_received(ws->ctx)
               : 0;
}
