#include "broker-tools/wsclient.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/util.h>
#include <http_parser.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <wslay/wslay.h>

#include "broker-tools/wsdeflate.h"
#include "proto/utf8.h"
#include "proto/xalloc.h"

#define WSC_CLOSE_WAIT_S 5
#define WSC_MAX_MESSAGE (16u << 20)
#define WSC_FRAME_RSV1 0x40 /* the first header byte's RSV1: a compressed message */

enum wsc_state {
    WSC_CONNECTING = 0, /* TCP connect under way, the request queued */
    WSC_HANDSHAKE,      /* connected: request sent, reading the answer */
    WSC_OPEN,
    WSC_CLOSING, /* our close sent, waiting for the server's */
    WSC_DONE,
};

struct wsc {
    struct event_base *base;
    struct bufferevent *bev;
    struct event *timer;
    struct wsc_url url;
    const struct wsc_handler *h;
    void *arg;
    enum wsc_state state;
    wslay_event_context_ptr ws;
    http_parser hp;
    char expect_accept[32];
    char header_name[64];
    char subprotocol[128];
    char status_text[64]; /* the reason phrase of the handshake answer */
    char body[128];       /* the start of a refusal's body: the server's explanation */
    char fail[512];       /* why wsc_connect could not start, reported from the loop */
    size_t max_message;
    int fast_recv; /* wsc_options.fast_recv */
    size_t feed;   /* fast_recv: bytes wslay may read (one whole frame at a time) */
    int accept_ok;
    int in_callback;
    int finished; /* on_close was called: free when the outermost callback returns */

    /* permessage-deflate, and the bytes on the wire */
    int deflate_offered;               /* wsc_options.deflate */
    char extensions[512];              /* the Sec-WebSocket-Extensions answer, joined by ", " */
    int extensions_cut;                /* the answer did not fit: refuse it */
    struct wsc_deflate_params deflate; /* what the server agreed */
    struct wsc_inflater *inflater;     /* when the server keeps its context: our own */
    struct wsc_zbuf inflated;          /* the last message inflated */
    size_t max_frame;                  /* max_message, with room for deflate's growth */
    uint64_t consumed;                 /* bytes taken from the input buffer so far */
};

/* ---- URL ---------------------------------------------------------------------------------- */

int wsc_url_parse(const char *url, struct wsc_url *u, char *err, size_t errlen)
{
    struct http_parser_url pu;
    size_t len = strlen(url);

    memset(u, 0, sizeof(*u));
    http_parser_url_init(&pu);
    if (http_parser_parse_url(url, len, 0, &pu) != 0 || !(pu.field_set & (1 << UF_SCHEMA)) ||
        !(pu.field_set & (1 << UF_HOST))) {
        snprintf(err, errlen, "not a URL: \"%s\" (want ws://host:port/path)", url);
        return -1;
    }
    const char *scheme = url + pu.field_data[UF_SCHEMA].off;
    size_t slen = pu.field_data[UF_SCHEMA].len;
    if (slen == 3 && strncasecmp(scheme, "wss", 3) == 0) {
        snprintf(err, errlen, "wss:// is not supported by this tool yet: \"%s\"", url);
        return -1;
    }
    if (slen != 2 || strncasecmp(scheme, "ws", 2) != 0) {
        snprintf(err, errlen, "unsupported scheme in \"%s\" (want ws://)", url);
        return -1;
    }
    snprintf(u->host, sizeof(u->host), "%.*s", (int)pu.field_data[UF_HOST].len,
             url + pu.field_data[UF_HOST].off);
    snprintf(u->port, sizeof(u->port), "%u", pu.port ? pu.port : 80);
    if (pu.field_set & (1 << UF_PATH))
        snprintf(u->path, sizeof(u->path), "%.*s", (int)pu.field_data[UF_PATH].len,
                 url + pu.field_data[UF_PATH].off);
    else
        snprintf(u->path, sizeof(u->path), "/");
    if (pu.field_set & (1 << UF_QUERY))
        snprintf(u->path + strlen(u->path), sizeof(u->path) - strlen(u->path), "?%.*s",
                 (int)pu.field_data[UF_QUERY].len, url + pu.field_data[UF_QUERY].off);
    snprintf(u->authority, sizeof(u->authority), strchr(u->host, ':') ? "[%s]:%s" : "%s:%s",
             u->host, u->port);
    return 0;
}

/* ---- ending ------------------------------------------------------------------------------- */

static void finish(struct wsc *c, int code, int http_status, const char *reason)
{
    if (c->state == WSC_DONE)
        return;
    c->state = WSC_DONE;
    c->finished = 1;
    if (c->h->on_close)
        c->h->on_close(c->arg, c, code, http_status, reason);
}

void wsc_free(struct wsc *c)
{
    if (c == NULL)
        return;
    if (c->ws)
        wslay_event_context_free(c->ws);
    wsc_inflater_free(c->inflater);
    wsc_zbuf_clear(&c->inflated);
    if (c->timer)
        event_free(c->timer);
    if (c->bev)
        bufferevent_free(c->bev);
    free(c);
}

static void enter(struct wsc *c)
{
    c->in_callback++;
}

static void leave(struct wsc *c)
{
    if (--c->in_callback == 0 && c->finished)
        wsc_free(c);
}

/* ---- wslay -------------------------------------------------------------------------------- */

static ssize_t on_ws_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
                          void *user)
{
    struct wsc *c = user;
    int n;

    (void)flags;
    if (c->fast_recv && len > c->feed)
        len = c->feed;
    n = len ? evbuffer_remove(bufferevent_get_input(c->bev), buf, len) : 0;
    if (c->fast_recv && n > 0)
        c->feed -= (size_t)n;
    if (n <= 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    c->consumed += (uint64_t)n;
    return n;
}

static ssize_t on_ws_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                          void *user)
{
    struct wsc *c = user;

    (void)flags;
    if (bufferevent_write(c->bev, data, len) < 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    return (ssize_t)len;
}

static int on_ws_genmask(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, void *user)
{
    (void)user;
    if (RAND_bytes(buf, (int)len) != 1) {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    return 0;
}

/* The decompressor for servers that do not keep their context (chatbroker's gateway among
 * them): each message is a stream of its own, so one serves every connection. wsclient runs
 * on one thread; this lives as long as the process. */
static struct wsc_inflater *shared_inflater;

/* Hand one complete message to on_message, inflated first when compressed (and then checked
 * as UTF-8 if check_utf8: wslay cannot check compressed text). A message that inflates past
 * the limit closes with 1009, a corrupt one with 1007. */
static void deliver(struct wsc *c, int binary, int compressed, const uint8_t *data, size_t len,
                    int check_utf8)
{
    struct wsc_inflater *z = c->inflater;
    int rc;

    if (compressed) {
        if (z == NULL)
            z = shared_inflater ? shared_inflater : (shared_inflater = wsc_inflater_new());
        rc = wsc_inflater_message(z, data, len, c->max_message, z == shared_inflater, &c->inflated);
        data = c->inflated.data;
        len = c->inflated.len;
        if (rc == WSC_INFLATE_OK && !binary && check_utf8 && !proto_utf8_is_valid(data, len))
            rc = WSC_INFLATE_CORRUPT;
        if (rc != WSC_INFLATE_OK) {
            wsc_zbuf_trim(&c->inflated);
            if (rc == WSC_INFLATE_TOO_BIG)
                wsc_close(c, 1009, "message too big once inflated");
            else
                wsc_close(c, 1007, "invalid compressed message");
            return;
        }
    }
    if (c->h->on_message)
        c->h->on_message(c->arg, c, binary, data, len);
    if (compressed)
        wsc_zbuf_trim(&c->inflated);
}

static void on_ws_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg,
                      void *user)
{
    struct wsc *c = user;

    (void)ctx;
    /* wslay lets RSV1 through only once deflate was negotiated, on a message's first frame */
    if ((arg->opcode == WSLAY_TEXT_FRAME || arg->opcode == WSLAY_BINARY_FRAME) &&
        c->state == WSC_OPEN)
        deliver(c, arg->opcode == WSLAY_BINARY_FRAME, (arg->rsv & WSLAY_RSV1_BIT) != 0, arg->msg,
                arg->msg_length, 1);
}

static const struct wslay_event_callbacks ws_callbacks = {
    .recv_callback = on_ws_recv,
    .send_callback = on_ws_send,
    .genmask_callback = on_ws_genmask,
    .on_msg_recv_callback = on_ws_msg,
};

static void pump(struct wsc *c)
{
    if (wslay_event_recv(c->ws) != 0 || wslay_event_send(c->ws) != 0) {
        finish(c, 1006, 0, "protocol error or connection failure");
        return;
    }
    if (wslay_event_get_close_received(c->ws) && wslay_event_get_close_sent(c->ws)) {
        int code = wslay_event_get_status_code_received(c->ws);
        finish(c, code, 0, code == 1000 ? "closed" : "closed by the server");
    }
}

/* wsc_options.fast_recv: each complete, final, unmasked text or binary frame goes to
 * on_message from the input buffer (made contiguous only when it spans chunks; inflated first
 * when compressed) and is drained; any other frame is fed to wslay whole, so wslay always
 * starts at a frame boundary. A frame over the limit goes to wslay as it comes, which closes
 * with 1009. */
static void fast_pump(struct wsc *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    uint8_t h[14];

    while (c->state == WSC_OPEN || c->state == WSC_CLOSING) {
        size_t avail = evbuffer_get_length(in), hlen = 2;
        uint64_t plen;

        if (avail < 2)
            break;
        evbuffer_copyout(in, h, avail < sizeof(h) ? avail : sizeof(h));
        plen = h[1] & 0x7f;
        if (plen == 126) {
            hlen = 4;
            plen = avail < hlen ? 0 : (uint64_t)h[2] << 8 | h[3];
        } else if (plen == 127) {
            hlen = 10;
            plen = 0;
            for (size_t i = 2; i < 10 && avail >= hlen; i++)
                plen = plen << 8 | h[i];
        }
        if (h[1] & 0x80)
            hlen += 4; /* a masked frame from a server: wslay closes with 1002 */
        if (avail < hlen)
            break;
        if (plen > c->max_frame) {
            c->feed = SIZE_MAX;
            pump(c);
            return;
        }
        if (avail < hlen + plen)
            break; /* wait for the whole frame */
        unsigned op = h[0] & 0x0f, rsv = h[0] & 0x70;
        int compressed = rsv == WSC_FRAME_RSV1 && c->deflate.enabled;
        if (c->state == WSC_OPEN && (h[0] & 0x80) && (rsv == 0 || compressed) &&
            (op == 1 || op == 2) && !(h[1] & 0x80)) {
            const uint8_t *frame = evbuffer_pullup(in, (ev_ssize_t)(hlen + plen));
            deliver(c, op == 2, compressed, frame + hlen, (size_t)plen, 0);
            evbuffer_drain(in, hlen + plen);
            c->consumed += hlen + plen;
        } else {
            c->feed = hlen + (size_t)plen;
            pump(c);
            c->feed = 0;
        }
    }
}

/* ---- handshake ---------------------------------------------------------------------------- */

/* Append at[0..len) to the fixed, NUL-terminated buffer dst (size bytes), cut to fit. */
static void append_cut(char *dst, size_t size, const char *at, size_t len)
{
    size_t used = strlen(dst);

    if (used + 1 >= size)
        return;
    if (len > size - 1 - used)
        len = size - 1 - used;
    memcpy(dst + used, at, len);
    dst[used + len] = '\0';
}

static int on_hs_status(http_parser *hp, const char *at, size_t len)
{
    struct wsc *c = hp->data;

    append_cut(c->status_text, sizeof(c->status_text), at, len);
    return 0;
}

static int is_extensions(const char *name)
{
    return strcasecmp(name, "Sec-WebSocket-Extensions") == 0;
}

static int on_hs_field(http_parser *hp, const char *at, size_t len)
{
    struct wsc *c = hp->data;

    snprintf(c->header_name, sizeof(c->header_name), "%.*s", (int)len, at);
    /* Header lines of one name make one list (RFC 7230 3.2.2). */
    if (is_extensions(c->header_name) && c->extensions[0])
        append_cut(c->extensions, sizeof(c->extensions), ", ", 2);
    return 0;
}

static int on_hs_value(http_parser *hp, const char *at, size_t len)
{
    struct wsc *c = hp->data;

    if (is_extensions(c->header_name)) { /* kept: the value may come in pieces */
        if (strlen(c->extensions) + len >= sizeof(c->extensions))
            c->extensions_cut = 1;
        append_cut(c->extensions, sizeof(c->extensions), at, len);
        return 0;
    }
    if (strcasecmp(c->header_name, "Sec-WebSocket-Accept") == 0)
        c->accept_ok = len == strlen(c->expect_accept) && memcmp(at, c->expect_accept, len) == 0;
    else if (strcasecmp(c->header_name, "Sec-WebSocket-Protocol") == 0)
        snprintf(c->subprotocol, sizeof(c->subprotocol), "%.*s", (int)len, at);
    c->header_name[0] = '\0';
    return 0;
}

static int on_hs_body(http_parser *hp, const char *at, size_t len)
{
    struct wsc *c = hp->data;

    append_cut(c->body, sizeof(c->body), at, len);
    return 0;
}

/* Pause after the whole answer (for a 101, right after the head): the bytes after it are
 * WebSocket frames. */
static int on_hs_complete(http_parser *hp)
{
    http_parser_pause(hp, 1);
    return 0;
}

static const http_parser_settings hs_settings = {
    .on_status = on_hs_status,
    .on_header_field = on_hs_field,
    .on_header_value = on_hs_value,
    .on_body = on_hs_body,
    .on_message_complete = on_hs_complete,
};

/* Check the server's Sec-WebSocket-Extensions answer: nothing, or permessage-deflate as
 * offered (RFC 6455 4.1: an extension the client did not offer fails the connection). Returns
 * 0, or -1 with the reason in reason. */
static int check_extensions(struct wsc *c, char *reason, size_t size)
{
    char shown[201]; /* at most 200 bytes of it, printable ASCII only: it is shown to people */
    size_t n = 0;

    if (c->extensions[0] == '\0')
        return 0;
    if (c->deflate_offered && !c->extensions_cut &&
        wsc_deflate_parse_answer(c->extensions, strlen(c->extensions), &c->deflate) == 0)
        return 0;
    for (const char *p = c->extensions; *p && n < sizeof(shown) - 1; p++)
        shown[n++] = *p >= 0x20 && *p < 0x7f ? *p : '?';
    shown[n] = '\0';
    snprintf(reason, size, "handshake failed: the server answered Sec-WebSocket-Extensions: %s%s",
             shown, c->deflate_offered ? " (not what was offered)" : " (none was offered)");
    return -1;
}

static void open_session(struct wsc *c)
{
    if (wslay_event_context_client_init(&c->ws, &ws_callbacks, c) != 0)
        abort();
    c->max_frame = c->max_message;
    if (c->deflate.enabled) {
        /* incompressible data grows a little when deflated; the inflated size is checked */
        c->max_frame = c->max_message + c->max_message / 256 + 64;
        wslay_event_config_set_allowed_rsv_bits(c->ws, WSLAY_RSV1_BIT);
        if (!c->deflate.server_no_context_takeover)
            c->inflater = wsc_inflater_new();
    }
    wslay_event_config_set_max_recv_msg_length(c->ws, c->max_frame);
    c->state = WSC_OPEN;
    evtimer_del(c->timer);
    if (c->h->on_open)
        c->h->on_open(c->arg, c, c->subprotocol[0] ? c->subprotocol : NULL);
}

/* End a handshake the server did not accept, naming its status, reason phrase and the first
 * line of its explanation (printable ASCII only: it is shown to people). */
static void refuse(struct wsc *c)
{
    char reason[320], body[sizeof(c->body)];
    size_t n = 0;
    unsigned status = c->hp.status_code;

    for (const char *p = c->body; *p && *p != '\r' && *p != '\n'; p++)
        body[n++] = *p >= 0x20 && *p < 0x7f ? *p : '?';
    body[n] = '\0';
    for (char *p = c->status_text; *p; p++)
        *p = *p >= 0x20 && *p < 0x7f ? *p : '?';
    snprintf(reason, sizeof(reason), "handshake refused: HTTP %u%s%s%s%s", status,
             c->status_text[0] ? " " : "", c->status_text,
             status == 101 ? " with a wrong Sec-WebSocket-Accept" : "", n ? ": " : "");
    append_cut(reason, sizeof(reason), body, n);
    finish(c, 1006, (int)status, reason);
}

static void read_handshake(struct wsc *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    struct evbuffer_iovec v;
    char reason[320];

    while (c->state == WSC_HANDSHAKE && evbuffer_peek(in, -1, NULL, &v, 1) > 0) {
        size_t n = http_parser_execute(&c->hp, &hs_settings, v.iov_base, v.iov_len);
        evbuffer_drain(in, n);
        c->consumed += n;
        if (HTTP_PARSER_ERRNO(&c->hp) == HPE_PAUSED) {
            if (c->hp.status_code != 101 || !c->accept_ok)
                refuse(c);
            else if (check_extensions(c, reason, sizeof(reason)) < 0)
                finish(c, 1006, 101, reason);
            else
                open_session(c);
        } else if (HTTP_PARSER_ERRNO(&c->hp) != HPE_OK) {
            finish(c, 1006, 0, "malformed handshake answer");
        }
    }
}

static void send_request(struct wsc *c, const struct wsc_options *o)
{
    unsigned char raw[16], digest[EVP_MAX_MD_SIZE];
    char key[32], buf[96];
    unsigned dlen;

    RAND_bytes(raw, sizeof(raw));
    EVP_EncodeBlock((unsigned char *)key, raw, sizeof(raw));
    snprintf(buf, sizeof(buf), "%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", key);
    EVP_Digest(buf, strlen(buf), digest, &dlen, EVP_sha1(), NULL);
    EVP_EncodeBlock((unsigned char *)c->expect_accept, digest, (int)dlen);
    evbuffer_add_printf(bufferevent_get_output(c->bev),
                        "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
                        "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                        "Sec-WebSocket-Version: 13\r\n",
                        c->url.path, c->url.authority, key);
    if (o && o->origin)
        evbuffer_add_printf(bufferevent_get_output(c->bev), "Origin: %s\r\n", o->origin);
    if (o && o->subprotocol)
        evbuffer_add_printf(bufferevent_get_output(c->bev), "Sec-WebSocket-Protocol: %s\r\n",
                            o->subprotocol);
    if (o && o->deflate)
        evbuffer_add_printf(bufferevent_get_output(c->bev),
                            "Sec-WebSocket-Extensions: " WSC_DEFLATE_OFFER "\r\n");
    for (size_t i = 0; o && i < o->n_headers; i++)
        evbuffer_add_printf(bufferevent_get_output(c->bev), "%s\r\n", o->headers[i]);
    evbuffer_add(bufferevent_get_output(c->bev), "\r\n", 2);
}

/* ---- events ------------------------------------------------------------------------------- */

static void on_read(struct bufferevent *bev, void *arg)
{
    struct wsc *c = arg;

    (void)bev;
    enter(c);
    if (c->state == WSC_HANDSHAKE)
        read_handshake(c);
    if ((c->state == WSC_OPEN || c->state == WSC_CLOSING) && c->fast_recv)
        fast_pump(c);
    else if (c->state == WSC_OPEN || c->state == WSC_CLOSING)
        pump(c);
    leave(c);
}

/* Why the connection ended before the handshake completed, for people. */
static void connect_failure(struct wsc *c, short what, char *reason, size_t size)
{
    int err = EVUTIL_SOCKET_ERROR();

    if (c->state == WSC_CONNECTING && (what & BEV_EVENT_ERROR))
        snprintf(reason, size, "cannot connect to %s: %s", c->url.authority,
                 err ? evutil_socket_error_to_string(err) : "connection failed");
    else if (c->state == WSC_CONNECTING)
        snprintf(reason, size, "cannot connect to %s: connection closed", c->url.authority);
    else
        snprintf(reason, size, "%s closed the connection during the handshake%s%s",
                 c->url.authority, (what & BEV_EVENT_ERROR) && err ? ": " : "",
                 (what & BEV_EVENT_ERROR) && err ? evutil_socket_error_to_string(err) : "");
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    struct wsc *c = arg;
    char reason[512];

    (void)bev;
    enter(c);
    if (what & BEV_EVENT_CONNECTED) {
        c->state = c->state == WSC_CONNECTING ? WSC_HANDSHAKE : c->state;
    } else if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        if (c->state == WSC_HANDSHAKE && c->hp.status_code > 0) {
            refuse(c); /* an answer cut short, or one whose body ends at EOF */
        } else if (c->state == WSC_CONNECTING || c->state == WSC_HANDSHAKE) {
            connect_failure(c, what, reason, sizeof(reason));
            finish(c, 1006, 0, reason);
        } else if (c->ws && wslay_event_get_close_received(c->ws)) {
            finish(c, wslay_event_get_status_code_received(c->ws), 0, "closed");
        } else {
            finish(c, 1006, 0, "connection dropped");
        }
    }
    leave(c);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct wsc *c = arg;
    const char *reason = c->state == WSC_CLOSING      ? "close handshake timed out"
                         : c->fail[0]                 ? c->fail
                         : c->state == WSC_CONNECTING ? "connect timed out"
                                                      : "handshake timed out";

    (void)fd;
    (void)what;
    enter(c);
    finish(c, 1006, 0, reason);
    leave(c);
}

/* A non-blocking socket for u, bound to the source address of opts if any, with the connect
 * started on c->bev; on failure c->fail says why. */
static void start_connect(struct wsc *c, const struct wsc_url *u, const struct wsc_options *opts)
{
    struct evutil_addrinfo hints = {0}, *ai = NULL;
    evutil_socket_t fd;
    int rc;

    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    rc = evutil_getaddrinfo(u->host, u->port, &hints, &ai);
    if (rc != 0 || ai == NULL) {
        snprintf(c->fail, sizeof(c->fail), "cannot resolve %s: %s", u->host,
                 rc ? evutil_gai_strerror(rc) : "no address");
        return;
    }
    fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || (opts && opts->source && bind(fd, opts->source, opts->source_len) < 0)) {
        snprintf(c->fail, sizeof(c->fail), "cannot %s: %s",
                 fd < 0 ? "create a socket" : "bind the source address", strerror(errno));
        if (fd >= 0)
            close(fd);
    } else if (bufferevent_setfd(c->bev, fd) < 0) {
        snprintf(c->fail, sizeof(c->fail), "cannot use the socket");
        close(fd);
    } else if (bufferevent_socket_connect(c->bev, ai->ai_addr, (int)ai->ai_addrlen) < 0) {
        snprintf(c->fail, sizeof(c->fail), "cannot connect to %s: %s", u->authority,
                 strerror(errno));
    }
    evutil_freeaddrinfo(ai);
}

struct wsc *wsc_connect(struct event_base *base, const struct wsc_url *u,
                        const struct wsc_options *opts, const struct wsc_handler *h, void *arg)
{
    struct wsc *c = xcalloc(1, sizeof(*c));
    struct timeval tv = {10, 0};

    c->base = base;
    c->url = *u;
    c->h = h;
    c->arg = arg;
    c->max_message = opts && opts->max_message ? opts->max_message : WSC_MAX_MESSAGE;
    c->fast_recv = opts && opts->fast_recv;
    c->deflate_offered = opts && opts->deflate;
    c->timer = evtimer_new(base, on_timer, c);
    http_parser_init(&c->hp, HTTP_RESPONSE);
    c->hp.data = c;
    c->bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(c->bev, on_read, NULL, on_event, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    send_request(c, opts); /* goes out once connected */
    start_connect(c, u, opts);
    /* A failure is reported through on_close from the loop, never from inside this call. */
    if (c->fail[0])
        tv.tv_sec = 0;
    evtimer_add(c->timer, &tv);
    return c;
}

int wsc_send(struct wsc *c, int binary, const void *data, size_t len)
{
    struct wslay_event_msg m = {binary ? WSLAY_BINARY_FRAME : WSLAY_TEXT_FRAME, data, len};

    if (c->state != WSC_OPEN || wslay_event_queue_msg(c->ws, &m) != 0)
        return -1;
    if (c->in_callback == 0) {
        enter(c);
        pump(c);
        leave(c);
    } else if (wslay_event_send(c->ws) != 0) {
        return -1;
    }
    return 0;
}

void wsc_close(struct wsc *c, uint16_t code, const char *reason)
{
    struct timeval tv = {WSC_CLOSE_WAIT_S, 0};

    enter(c);
    if (c->state == WSC_OPEN) {
        c->state = WSC_CLOSING;
        wslay_event_queue_close(c->ws, code, (const uint8_t *)reason, reason ? strlen(reason) : 0);
        wslay_event_send(c->ws);
        evtimer_add(c->timer, &tv);
    } else if (c->state != WSC_CLOSING) {
        finish(c, 1006, 0, "closed before the handshake completed");
    }
    leave(c);
}

int wsc_is_open(const struct wsc *c)
{
    return c->state == WSC_OPEN;
}

size_t wsc_pending(const struct wsc *c)
{
    return evbuffer_get_length(bufferevent_get_output(c->bev));
}

int wsc_has_deflate(const struct wsc *c)
{
    return c->deflate.enabled;
}

uint64_t wsc_bytes_in(const struct wsc *c)
{
    return c->consumed + evbuffer_get_length(bufferevent_get_input(c->bev));
}
