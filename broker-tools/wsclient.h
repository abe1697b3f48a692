/*
 * A WebSocket client on a libevent loop, shared by the tools: URL parsing, the opening
 * handshake (http-parser reads the answer), RFC 6455 framing through wslay in client mode,
 * with every frame masked by a key from OpenSSL's random generator, and permessage-deflate
 * (RFC 7692) for what the server sends when asked for. One struct wsc per connection; many
 * may share a loop, on one thread.
 */
#ifndef CHAT_TOOLS_WSCLIENT_H
#define CHAT_TOOLS_WSCLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct event_base;
struct wsc;

struct wsc_url {
    char host[256]; /* without brackets */
    char port[8];
    char path[1024];     /* path and query, at least "/" */
    char authority[300]; /* host[:port] as the Host header wants it */
    int tls;             /* wss:// (not supported yet: refused by wsc_url_parse) */
};

/* Parse ws://host[:port][/path]; returns 0, or -1 with a message in err. */
int wsc_url_parse(const char *url, struct wsc_url *u, char *err, size_t errlen);

struct wsc_options {
    const char *origin;         /* Origin header, or NULL for none */
    const char *subprotocol;    /* Sec-WebSocket-Protocol offered, or NULL */
    const char *const *headers; /* extra "Name: value" lines, or NULL */
    size_t n_headers;
    const struct sockaddr *source; /* local address to bind, or NULL */
    socklen_t source_len;
    size_t max_message; /* largest message accepted (0: 16 MiB) */
    /* Load generators: complete, unfragmented data frames go to on_message straight from the
     * input buffer, without wslay's allocations and copies and without its UTF-8 check;
     * control frames and fragments still go through wslay. */
    int fast_recv;
    /* Offer permessage-deflate (RFC 7692; wsdeflate.h has the offer): the server may then
     * compress its messages, which on_message receives inflated (max_message applies to the
     * inflated size; text is checked as UTF-8 except in fast_recv). What the client sends is
     * never compressed. An answer the offer does not allow fails the handshake. */
    int deflate;
};

/* What a connection reports; arg is wsc_connect's. Callbacks may call wsc_send and
 * wsc_close on c, never wsc_free. */
struct wsc_handler {
    /* The handshake succeeded; subprotocol is the one the server chose, or NULL. */
    void (*on_open)(void *arg, struct wsc *c, const char *subprotocol);
    /* A complete message; data borrowed for the call. */
    void (*on_message)(void *arg, struct wsc *c, int binary, const uint8_t *data, size_t len);
    /* The connection ended: code is the close code the server sent (1005 when none, 1006
     * when the connection dropped or never opened), http_status the status of a refused
     * handshake (0 otherwise), reason a text for people. c is freed after this returns. */
    void (*on_close)(void *arg, struct wsc *c, int code, int http_status, const char *reason);
};

/* Start connecting to u (copied) with opts (copied; NULL for defaults). Returns the
 * connection; failures are reported through on_close, never synchronously. */
struct wsc *wsc_connect(struct event_base *base, const struct wsc_url *u,
                        const struct wsc_options *opts, const struct wsc_handler *h, void *arg);

/* Queue a text (binary = 0) or binary message. Returns 0, or -1 if not open. */
int wsc_send(struct wsc *c, int binary, const void *data, size_t len);

/* Start the close handshake; on_close follows when it completes (or after 5 s). */
void wsc_close(struct wsc *c, uint16_t code, const char *reason);

/* Drop the connection at once, without callbacks; NULL does nothing. Not from callbacks. */
void wsc_free(struct wsc *c);

/* 1 once the handshake succeeded and until the close began, else 0. */
int wsc_is_open(const struct wsc *c);

/* Bytes queued for the server and not yet written. */
size_t wsc_pending(const struct wsc *c);

/* 1 if the server agreed to permessage-deflate (wsc_options.deflate), else 0. */
int wsc_has_deflate(const struct wsc *c);

/* Bytes read from the server's socket so far, as they came on the wire (the handshake's answer
 * and every frame, compressed or not; TCP/IP headers aside). */
uint64_t wsc_bytes_in(const struct wsc *c);

#endif
