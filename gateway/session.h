/*
 * A chat session on /ws: one client's identity (a random 128-bit id, username, email), its
 * rooms, its token bucket, and the protocol of proto/PROTOCOL.md. Client messages are
 * decoded and checked here and published to Redis; what Redis delivers comes back through
 * gw_session_deliver. A bad message gets an error reply and the session stays open.
 */
#ifndef CHAT_GATEWAY_SESSION_H
#define CHAT_GATEWAY_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "proto/proto.h"

struct evbuffer;
struct gw_config;
struct gw_frame;
struct gw_member;
struct gw_rooms;
struct gw_session;
struct gw_stats;
struct gw_ws;
struct proto_jwt_claims;

/* How a session reaches its connection; all borrowed for the session's lifetime. */
struct gw_session_io {
    struct gw_ws *ws;       /* the WebSocket to write to and close */
    struct evbuffer *out;   /* the connection's output, for the output cap */
    const char *peer;       /* for logs */
    uint64_t conn_id;       /* for logs */
    struct gw_stats *stats; /* the worker's counters */
    /* The session closed its WebSocket outside the connection's own callbacks (fan-out):
     * the connection starts its close timer. */
    void (*closed)(void *arg);
    /* A refresh gave the session a token that expires at exp (Unix seconds): the connection
     * moves its expiry timer. */
    void (*expires)(void *arg, int64_t exp);
    void *arg;
};

/* Start a session in the room "lobby" (unless its token's rooms claim leaves it out): it gets
 * its welcome once Redis confirmed its client channel (at once when Redis is down). auth is
 * the verified connect token, whose contents the session takes (*auth is left empty), or
 * NULL for a guest. Returns the session, owned by the caller. */
struct gw_session *gw_session_new(struct gw_rooms *rooms, const struct gw_config *cfg,
                                  const struct gw_session_io *io, struct proto_jwt_claims *auth);

/* Leave every room (presence "leave" published), forget the client id, free. NULL does
 * nothing. */
void gw_session_free(struct gw_session *s);

/* A complete WebSocket message from the client; msg borrowed for the call. */
void gw_session_on_message(struct gw_session *s, int binary, const uint8_t *msg, size_t len);

/* Called by the directory. Send the welcome if not yet sent, then announce the rooms that
 * are live. */
void gw_session_welcome(struct gw_session *s);

/* Called by the directory when m's room went live: announce m if the session is welcomed. */
void gw_session_room_live(struct gw_session *s, struct gw_member *m);

/* Called by the directory for each frame of a room s is in, or of its client channel: append
 * it by reference, or close the session (1008) if that would pass the output cap. Frames
 * before the welcome are dropped. */
void gw_session_deliver(struct gw_session *s, struct gw_frame *f);

/* 1 once the welcome was sent, else 0. */
int gw_session_is_welcomed(const struct gw_session *s);

/* Who the session is, as shown with its messages (strings borrowed from the session). */
struct proto_sender gw_session_sender(const struct gw_session *s);

#endif
