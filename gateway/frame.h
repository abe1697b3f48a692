/*
 * Server-to-client WebSocket frames (RFC 6455 5.2). Server frames are never masked, so the
 * bytes of a frame are the same for every receiver: a frame is built once and may be
 * written to any number of connections.
 */
#ifndef CHAT_GATEWAY_FRAME_H
#define CHAT_GATEWAY_FRAME_H

#include <stddef.h>
#include <stdint.h>

struct evbuffer;

enum gw_frame_opcode {
    GW_FRAME_CONTINUATION = 0x0,
    GW_FRAME_TEXT = 0x1,
    GW_FRAME_BINARY = 0x2,
    GW_FRAME_CLOSE = 0x8,
    GW_FRAME_PING = 0x9,
    GW_FRAME_PONG = 0xa,
};

/* Longest frame header a server writes: 2 bytes plus an 8-byte length. */
#define GW_FRAME_HEADER_MAX 10

/* Write the header of a final, unmasked frame of opcode carrying len payload bytes into
 * hdr; return the header's length (2, 4 or 10). */
size_t gw_frame_header(uint8_t hdr[GW_FRAME_HEADER_MAX], enum gw_frame_opcode opcode, size_t len);

/* Append a complete frame (header, then a copy of payload) to out. Returns 0, or -1 if the
 * evbuffer could not grow. */
int gw_frame_write(struct evbuffer *out, enum gw_frame_opcode opcode, const uint8_t *payload,
                   size_t len);

/* A frame built once and shared by reference between receivers' output buffers. */
struct gw_frame;

/* Build a frame of opcode around a copy of payload[0..len), with one reference held by the
 * caller. */
struct gw_frame *gw_frame_new(enum gw_frame_opcode opcode, const uint8_t *payload, size_t len);

/* Take and drop references; the last gw_frame_unref frees the frame. NULL does nothing. */
void gw_frame_ref(struct gw_frame *f);
void gw_frame_unref(struct gw_frame *f);

/*
 * The frame's permessage-deflate variant for receivers that agreed on a window of
 * window_bits (9..15): built once (compressed, RSV1 set) and kept with f, or f itself when
 * compression would not make it smaller. Borrowed: valid while f lives.
 */
struct gw_frame *gw_frame_deflated(struct gw_frame *f, unsigned window_bits);

/* Append the frame's bytes to out by reference (no copy); the reference taken for out is
 * dropped when out has written them. Returns 0, or -1 if out could not take it. */
int gw_frame_append(struct gw_frame *f, struct evbuffer *out);

/* Bytes of the whole frame, header included. */
size_t gw_frame_size(const struct gw_frame *f);

#endif
