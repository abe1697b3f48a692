/*
 * Redis channel names of the chat bus: chat:room:<room> carries a room's messages and
 * presence, chat:client:<id> a client's direct messages, chat:user:<user id> the direct
 * messages to every session of a user (connect tokens), chat:health:<gateway> the probes a
 * gateway sends itself to prove its subscription works.
 */
#ifndef CHAT_PROTO_CHANNEL_H
#define CHAT_PROTO_CHANNEL_H

#include <stddef.h>

#include "proto/proto.h"

#define PROTO_CHANNEL_PREFIX "chat:"
/* Room enough for any channel name plus its NUL. */
#define PROTO_CHANNEL_MAX (sizeof("chat:health:") + PROTO_GATEWAY_MAX + 1)
_Static_assert(PROTO_CHANNEL_MAX >= sizeof("chat:user:") + PROTO_USER_MAX, "user channels fit");

enum proto_channel_kind {
    PROTO_CHANNEL_ROOM = 1,
    PROTO_CHANNEL_CLIENT,
    PROTO_CHANNEL_HEALTH,
    PROTO_CHANNEL_USER,
};

/* Write the channel of kind for name into out (PROTO_CHANNEL_MAX bytes); return its length. */
size_t proto_channel_name(char *out, enum proto_channel_kind kind, const char *name);

/* Split channel[0..len) into its kind and name (*name points into channel, *name_len set).
 * Returns the kind, or 0 for a channel that is not ours. */
int proto_channel_parse(const char *channel, size_t len, const char **name, size_t *name_len);

#endif
