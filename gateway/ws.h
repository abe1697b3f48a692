/*
 * One WebSocket session's framing: wslay's event API fed from an input evbuffer and writing
 * to an output evbuffer. wslay parses client frames and writes the control frames (pong,
 * close); data frames are written by us straight into the output, so both only ever meet
 * at frame boundaries. No sockets or timers here: the connection layer owns those.
 */
#ifndef CHAT_GATEWAY_WS_H
#define CHAT_GATEWAY_WS_H

#include <stddef.h>
#include <stdint.h>

struct evbuffer;
struct gw_deflate_params;
struct gw_ws;

/* Close codes (RFC 6455 7.4.1) the gateway sends. */
enum gw_ws_code {
    GW_WS_NORMAL = 1000,
    GW_WS_GOING_AWAY = 1001,
    GW_WS_PROTOCOL_ERROR = 1002,
    GW_WS_INVALID_DATA = 1007,
    GW_WS_POLICY = 1008,
    GW_WS_TOO_BIG = 1009,
    GW_WS_INTERNAL = 1011,
    GW_WS_TRY_AGAIN = 1013,
    GW_WS_TOKEN_EXPIRED = 4001, /* private: the session's connect token expired */

};

enum gw_ws_state {
    GW_WS_OPEN = 0, /* messages flow both ways */
    GW_WS_CLOSING,  /* we sent a close frame and wait for the client's */
    GW_WS_CLOSED,   /* nothing more to read or write: flush the output, then drop TCP */
};

/* What the layer above does with a session's events; arg is gw_ws_new's. */
struct gw_ws_handler {
    /* A complete text (binary = 0) or binary message; msg is borrowed for the call only. Text
     * is valid UTF-8. May call gw_ws_send and gw_ws_close, never gw_ws_free. */
    void (*on_message)(void *arg, int binary, const uint8_t *msg, size_t len);
    /* A pong arrived (the client is alive). May be NULL. */
    void (*on_pong)(void *arg);
};

/*
 * A session that writes its frames to out (borrowed; it must outlive the session) and takes
 * messages of at most max_message bytes (after inflation). deflate (copied; NULL: none) is
 * what permessage-deflate negotiated: then messages from the client may be compressed, and
 * messages to it are, when that makes them smaller. Returns the session, owned by the caller.
 */
struct gw_ws *gw_ws_new(struct evbuffer *out, size_t max_message,
                        const struct gw_deflate_params *deflate,
                        const struct gw_ws_handler *handler, void *arg);

/* Free the session; NULL does nothing. Never from inside one of its handler callbacks. */
void gw_ws_free(struct gw_ws *ws);

/*
 * Consume every complete frame in `in` (bytes of a partial frame are consumed too; wslay
 * keeps its state), calling the handler for each message, and write the replies that
 * are due (pong, close) to the output. Protocol violations queue a close frame with the
 * RFC 6455 code (1002, 1007, 1009) and leave the session GW_WS_CLOSED. Returns the state.
 */
enum gw_ws_state gw_ws_recv(struct gw_ws *ws, struct evbuffer *in);

/* Write one text or binary message as a single frame. Returns 0, or -1 when the session no
 * longer sends data (closing or closed). */
int gw_ws_send(struct gw_ws *ws, int binary, const uint8_t *msg, size_t len);

/* Append a shared frame by reference (see frame.h). Returns 0, or -1 when the session no
 * longer sends data. */
struct gw_frame;
int gw_ws_append_frame(struct gw_ws *ws, struct gw_frame *f);

/* Send a ping carrying payload (at most 125 bytes). Returns 0, or -1 when closing/closed. */
int gw_ws_ping(struct gw_ws *ws, const uint8_t *payload, size_t len);

/*
 * Start the close handshake with code and a static reason (at most 123 bytes, may be NULL):
 * the close frame is written to the output and the session becomes GW_WS_CLOSING, or
 * GW_WS_CLOSED if the client's close already came. Does nothing if a close was sent.
 */
void gw_ws_close(struct gw_ws *ws, uint16_t code, const char *reason);

/* The session's state. */
enum gw_ws_state gw_ws_state(const struct gw_ws *ws);

/* The code of the close frame sent (0 if none yet), and of the one received (0 if none, 1005
 * for a close without a code). For logs. */
uint16_t gw_ws_code_sent(const struct gw_ws *ws);
uint16_t gw_ws_code_received(const struct gw_ws *ws);

#endif
