/*
 * The client's side of the chat protocol (proto/PROTOCOL.md), for the tools: encoders of the
 * six client messages, and a decoder of what the server sends (welcome, message, direct,
 * presence, members, error) and of the who query that travels between gateways. Decoded
 * strings are validated (types, sizes, UTF-8) and copied; cJSON trees never leave proto/.
 */
#ifndef CHAT_PROTO_CLIENT_H
#define CHAT_PROTO_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "proto/proto.h"

/* Limits of the server fields that have no limit in proto.h, in bytes. */
#define PROTO_CODE_MAX 32 /* error codes ("not_joined") */
#define PROTO_REF_MAX 128 /* error refs: a room, a client id, a type */
#define PROTO_EVENT_MAX 8 /* presence events: "join", "leave" */

/* ---- client messages ---------------------------------------------------------------------
 * Each encoder returns a NUL-terminated JSON text owned by the caller (free with proto_free)
 * and sets *len to its length. Arguments are NUL-terminated strings, borrowed; they are
 * escaped, not checked (the server checks them and answers with an error). */

/* {"type":"hello","username":..} plus "email" when email is neither NULL nor "". */
char *proto_client_encode_hello(const char *username, const char *email, size_t *len);
/* {"type":"join","room":..} */
char *proto_client_encode_join(const char *room, size_t *len);
/* {"type":"leave","room":..} */
char *proto_client_encode_leave(const char *room, size_t *len);
/* {"type":"message","room":..,"message":..} */
char *proto_client_encode_message(const char *room, const char *text, size_t *len);
/* {"type":"direct","to":..,"message":..} for a client id, else with "to_user" (a user id). */
char *proto_client_encode_direct(const char *to, const char *text, size_t *len);
/* {"type":"who","room":..}: ask every gateway who is in room (answered with "members"). */
char *proto_client_encode_who(const char *room, size_t *len);

/* ---- server messages --------------------------------------------------------------------- */

enum proto_server_type {
    PROTO_S_WELCOME = 1, /* id (this client's), user, gateway, rooms */
    PROTO_S_MESSAGE,     /* room, id, from, user, username, email, text, ts */
    PROTO_S_DIRECT,      /* to or to_user, id, from, user, username, email, text, ts */
    PROTO_S_PRESENCE,    /* room, event, from (the client), user, username, email */
    PROTO_S_MEMBERS,     /* room, gateway, members */
    PROTO_S_ERROR,       /* code, reason, ref */
    PROTO_S_WHO,         /* room, to (the reply_to): a query between gateways, never delivered */
};

/* One entry of a members list. */
struct proto_member {
    char client[PROTO_ID_LEN + 1];
    char user[PROTO_USER_MAX + 1]; /* "" for a guest */
    char username[PROTO_USERNAME_MAX + 1];
    char email[PROTO_EMAIL_MAX + 1]; /* "" when absent */
};

/* A decoded server message. Fields a type does not carry are "" (or 0, NULL). Strings are
 * NUL-terminated copies; text, rooms and members are owned by the struct and freed by
 * proto_server_msg_clear. */
struct proto_server_msg {
    enum proto_server_type type;
    char room[PROTO_ROOM_MAX + 1];         /* message, presence, members, who */
    char id[PROTO_MSG_ID_MAX + 1];         /* message, direct: message id; welcome: client id */
    char from[PROTO_ID_LEN + 1];           /* message, direct: sender; presence: the client */
    char to[PROTO_ID_LEN + 1];             /* direct: the target; who: reply_to */
    char to_user[PROTO_USER_MAX + 1];      /* direct: the target user, when not to */
    char user[PROTO_USER_MAX + 1];         /* the sender's verified user id; "" for a guest */
    char username[PROTO_USERNAME_MAX + 1]; /* message, direct, presence */
    char email[PROTO_EMAIL_MAX + 1];       /* message, direct, presence: "" when absent */
    char gateway[PROTO_GATEWAY_MAX + 1];   /* welcome, members */
    char event[PROTO_EVENT_MAX + 1];       /* presence: "join" or "leave" */
    char code[PROTO_CODE_MAX + 1];         /* error */
    char reason[PROTO_REASON_MAX + 1];     /* error */
    char ref[PROTO_REF_MAX + 1];           /* error: "" when absent */
    uint64_t ts;                           /* message, direct: Unix milliseconds */
    char *text;                            /* message, direct: the body (UTF-8, no NUL) */
    size_t text_len;
    char (*rooms)[PROTO_ROOM_MAX + 1]; /* welcome: n_rooms room names */
    size_t n_rooms;
    struct proto_member *members; /* members: n_members entries */
    size_t n_members;
};

/*
 * Decode the JSON server message buf[0..len) into *msg (zeroed first). Unknown fields are
 * ignored. Returns PROTO_OK, or with *msg left empty: PROTO_ERR_JSON (not JSON, trailing
 * bytes), PROTO_ERR_SHAPE (not an object, a field of the wrong JSON type, ts not an integer
 * from 0 to 2^53, an event other than join and leave), PROTO_ERR_TYPE (unknown "type"),
 * PROTO_ERR_MISSING (a required field absent), PROTO_ERR_ROOM (a bad room name),
 * PROTO_ERR_TARGET (a client id that is not 32 lower-case hex digits), PROTO_ERR_TOO_LARGE
 * (a string over its field's size), PROTO_ERR_TEXT (NUL, invalid UTF-8, control characters
 * in a name). Always pair with proto_server_msg_clear.
 */
int proto_client_decode(const uint8_t *buf, size_t len, struct proto_server_msg *msg);

/* Free what msg owns and zero it. */
void proto_server_msg_clear(struct proto_server_msg *msg);

/*
 * Text from the wire made safe to show on a terminal: s[0..len) with every control character
 * (C0, DEL, C1), line and paragraph separator and bidirectional override or isolate escaped
 * (\n, \t, \r, \x1b, \u{202e}), and each byte of invalid UTF-8 as \xHH; keep_lines lets
 * newlines and tabs through as they are. Returns a NUL-terminated string owned by the caller
 * (free with free()) and sets *out_len to its length.
 */
char *proto_client_escape(const uint8_t *s, size_t len, int keep_lines, size_t *out_len);

/* The wire name of a server message type ("welcome", ...), or "?" for another value. */
const char *proto_server_type_name(enum proto_server_type type);

#endif
