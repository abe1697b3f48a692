/*
 * permessage-deflate (RFC 7692) for wsclient: the offer, the check of the server's answer and
 * the inflation of the server's compressed messages. The client never compresses what it
 * sends (the RFC allows it), so of the negotiated parameters only the server's matter; an
 * answer that names anything the offer did not allow must fail the connection (RFC 7692 7.1).
 */
#ifndef CHAT_TOOLS_WSDEFLATE_H
#define CHAT_TOOLS_WSDEFLATE_H

#include <stddef.h>
#include <stdint.h>

/* The Sec-WebSocket-Extensions offer. Messages from the client are never compressed, so
 * client_no_context_takeover costs nothing and spares the server a decompressor's window. */
#define WSC_DEFLATE_OFFER "permessage-deflate; client_no_context_takeover"

/* What the server's answer agreed. */
struct wsc_deflate_params {
    int enabled;                    /* 1: the server accepted the offer */
    int server_no_context_takeover; /* 1: each server message is a deflate stream of its own */
    unsigned server_window_bits;    /* the server's window, 8..15 (15 when not given) */
};

/* Check the Sec-WebSocket-Extensions answer value[0..len) against WSC_DEFLATE_OFFER and fill
 * *p. Returns 0 with p->enabled = 1, or -1 (and *p zeroed) if the answer names another
 * extension or more than one, an unknown or repeated parameter, a window size outside 8..15,
 * or client_max_window_bits, which the offer does not include. */
int wsc_deflate_parse_answer(const char *value, size_t len, struct wsc_deflate_params *p);

/* A growable output buffer for inflated messages, held by value; zero-initialised is empty. */
struct wsc_zbuf {
    uint8_t *data;
    size_t len; /* the last inflated message */
    size_t cap;
};

/* Free the buffer's memory if it grew past 16 KiB (a rare large message), so a connection
 * does not keep it; the contents are lost. */
void wsc_zbuf_trim(struct wsc_zbuf *b);

/* Free the buffer's memory; it is empty afterwards. */
void wsc_zbuf_clear(struct wsc_zbuf *b);

enum wsc_inflate_result {
    WSC_INFLATE_OK = 0,
    WSC_INFLATE_CORRUPT = -1, /* not a valid deflate stream: close with 1007 */
    WSC_INFLATE_TOO_BIG = -2, /* inflates past the limit: close with 1009 */
};

struct wsc_inflater;

/* A raw-deflate decompressor with a 32 KiB window, which reads any server window. Aborts on
 * out-of-memory (as xmalloc does). Free with wsc_inflater_free. */
struct wsc_inflater *wsc_inflater_new(void);

/* Free z; NULL does nothing. */
void wsc_inflater_free(struct wsc_inflater *z);

/* Inflate the payload in[0..len) of one compressed message (RFC 7692 7.2.2: the 00 00 ff ff
 * tail the sender removed is added here) into out (grown as needed; out->len is the message's
 * length). More than max inflated bytes stop it with WSC_INFLATE_TOO_BIG, whatever the input
 * size. reset: forget the window afterwards (the server does not keep its context); it is
 * forgotten after a failure too. Returns an enum wsc_inflate_result. */
int wsc_inflater_message(struct wsc_inflater *z, const uint8_t *in, size_t len, size_t max,
                         int reset, struct wsc_zbuf *out);

#endif
