/*
 * permessage-deflate (RFC 7692): negotiation of the extension from a client's offers, the
 * worker's compressor (the server never takes over context between messages, so one
 * compressed frame can go to every receiver that negotiated the same window), and each
 * session's decompressor, with the message size limit applied to the inflated size.
 */
#ifndef CHAT_GATEWAY_DEFLATE_H
#define CHAT_GATEWAY_DEFLATE_H

#include <stddef.h>
#include <stdint.h>

struct gw_http_request;
struct gw_inflater;

/* What a session agreed on. server_no_context_takeover is always part of the agreement. */
struct gw_deflate_params {
    int enabled;                    /* 1 when the extension was negotiated */
    int client_no_context_takeover; /* the client resets its compressor every message */
    unsigned server_window_bits;    /* 9..15: the largest window our frames may use */
    unsigned client_window_bits;    /* 8..15: the window the client compresses with */
};

/* Room for the Sec-WebSocket-Extensions value we answer. */
#define GW_DEFLATE_RESPONSE_MAX 160

/*
 * Go through the offers in every Sec-WebSocket-Extensions line of req, in order, and accept
 * the first permessage-deflate offer that is valid (RFC 7692 7.1: known parameters, each at
 * most once, values in range) and that we can honour (we decline server_max_window_bits=8,
 * which zlib cannot produce). Fills *p (enabled = 0 when nothing was accepted) and, when
 * accepted, the response header value into resp (GW_DEFLATE_RESPONSE_MAX bytes).
 */
void gw_deflate_negotiate(const struct gw_http_request *req, struct gw_deflate_params *p,
                          char *resp);

/* The same for one header value, value[0..len); returns 1 if an offer was accepted. */
int gw_deflate_negotiate_value(const char *value, size_t len, struct gw_deflate_params *p,
                               char *resp);

/*
 * Compress in[0..len) as one message with a window of window_bits (9..15), without context
 * takeover, into a new buffer (*out, owned by the caller, free()) of *out_len bytes, the
 * final empty block's 00 00 ff ff removed as RFC 7692 7.2.1 wants. Uses a compressor kept per
 * process and window size. Returns 0, or -1 (zlib failed: send the message uncompressed).
 */
int gw_deflate_compress(unsigned window_bits, const uint8_t *in, size_t len, uint8_t **out,
                        size_t *out_len);

/* Free the process's compressors (at exit, for leak checkers). */
void gw_deflate_cleanup(void);

enum gw_inflate_result {
    GW_INFLATE_OK = 0,
    GW_INFLATE_CORRUPT = -1, /* not a valid deflate stream: close 1007 */
    GW_INFLATE_TOO_BIG = -2, /* inflates beyond the limit: close 1009 */
};

/* A session's decompressor for a client window of window_bits (8..15); allocated when its
 * first compressed message arrives. */
struct gw_inflater *gw_inflater_new(unsigned window_bits);
void gw_inflater_free(struct gw_inflater *z);

/*
 * Inflate one compressed message in[0..len) into *out (a buffer owned by z, valid until the
 * next call) of *out_len bytes, at most max bytes. With reset, the window is forgotten
 * afterwards (the client does not take over context). Returns an enum gw_inflate_result.
 */
int gw_inflater_message(struct gw_inflater *z, const uint8_t *in, size_t len, size_t max, int reset,
                        const uint8_t **out, size_t *out_len);

/* Give back a large output buffer once its message was handled. */
void gw_inflater_trim(struct gw_inflater *z);

#endif
