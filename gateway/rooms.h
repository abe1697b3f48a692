/*
 * The chat directory of one worker: its rooms with their local members, its sessions by
 * client id, and the Redis bus that joins it to every other worker. A room is subscribed on
 * the bus while it has a local member; a message from Redis is framed once and appended by
 * reference to every local member's output (the hot path).
 */
#ifndef CHAT_GATEWAY_ROOMS_H
#define CHAT_GATEWAY_ROOMS_H

#include <stddef.h>
#include <stdint.h>

#include "proto/proto.h"

struct event_base;
struct gw_bus;
struct gw_config;
struct gw_member;
struct gw_rooms;
struct gw_session;
struct gw_stats;

/* A worker's directory, with its bus connecting to Redis at once. cfg and stats are borrowed
 * and must outlive it; worker_id names the worker on the bus. */
struct gw_rooms *gw_rooms_new(struct event_base *base, const struct gw_config *cfg,
                              const char *worker_id, struct gw_stats *stats);

/* Ask the bus to finish its pending commands and close; the loop keeps running meanwhile.
 * Every session must be gone. */
void gw_rooms_shutdown(struct gw_rooms *rooms);

/* 1 once the bus closed both links after gw_rooms_shutdown, else 0. */
int gw_rooms_is_closed(const struct gw_rooms *rooms);

/* Free the directory and its bus; NULL does nothing. Every session must be gone. */
void gw_rooms_free(struct gw_rooms *rooms);

/* The bus, for publishing; borrowed for the directory's lifetime. */
struct gw_bus *gw_rooms_bus(const struct gw_rooms *rooms);

/* The id this gateway shows its clients. */
const char *gw_rooms_gateway_id(const struct gw_rooms *rooms);

/* Write a new message id (unique across gateways) into out (PROTO_MSG_ID_MAX + 1 bytes). */
void gw_rooms_next_msg_id(struct gw_rooms *rooms, char *out);

/* Register session s under its client id and subscribe its client channel. Returns 0 if the
 * session is to wait for gw_session_welcome (Redis confirms the channel), or -1 if the bus
 * is not ready (welcome now). */
int gw_rooms_add_client(struct gw_rooms *rooms, struct gw_session *s, const char *id);

/* Forget session s (every membership must already be gone) and its client channel. */
void gw_rooms_remove_client(struct gw_rooms *rooms, struct gw_session *s, const char *id);

/* The local session with client id, or NULL. Borrowed. */
struct gw_session *gw_rooms_find_client(const struct gw_rooms *rooms, const char *id);

/* Make s a member of the room named name, creating and subscribing it as needed. Returns the
 * membership, owned by the directory until gw_rooms_leave. */
struct gw_member *gw_rooms_join(struct gw_rooms *rooms, struct gw_session *s, const char *name);

/* End membership m (freed); the room is unsubscribed once its last local member leaves. */
void gw_rooms_leave(struct gw_rooms *rooms, struct gw_member *m);

/* Add s to the sessions of user id user (a verified token's sub), subscribing the user's
 * channel for the first; the membership is the directory's until gw_rooms_remove_user. */
struct gw_member *gw_rooms_add_user(struct gw_rooms *rooms, struct gw_session *s, const char *user);
void gw_rooms_remove_user(struct gw_rooms *rooms, struct gw_member *m);

/* The room name of m (borrowed while m lives). */

const char *gw_member_room(const struct gw_member *m);

/* 1 if m's room subscription is confirmed, so traffic to it reaches m, else 0. */
int gw_member_is_live(const struct gw_rooms *rooms, const struct gw_member *m);

/* Whether m's join was announced (presence published): set once it is, cleared when Redis
 * lost the announcement (to announce it again when the bus is back). */
int gw_member_is_announced(const struct gw_member *m);
void gw_member_set_announced(struct gw_member *m, int announced);

#endif
