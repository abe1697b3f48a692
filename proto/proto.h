/*
 * The chat wire protocol (proto/PROTOCOL.md is the contract). Client to server: hello, join,
 * leave, message, direct, who, refresh, and the seed tutorials' untyped
 * {"email","username","message"}. Server to client: welcome, message, direct, presence,
 * members, refreshed, error. Between gateways:
 * the who query. Decoding validates every field
 * and copies it into struct proto_msg; cJSON trees never leave this module. No logging, no I/O.
 */
#ifndef CHAT_PROTO_PROTO_H
#define CHAT_PROTO_PROTO_H

#include <stddef.h>
#include <stdint.h>

/* Fixed limits of the wire format, in bytes. */
#define PROTO_ROOM_MAX 64     /* room names: [A-Za-z0-9_.:-]{1,64} */
#define PROTO_ID_LEN 32       /* client ids: 32 lower-case hex digits (128 bits) */
#define PROTO_USERNAME_MAX 64 /* usernames: 1..64 bytes of UTF-8, no control characters */
#define PROTO_USER_MAX 64     /* user ids (a token's "sub"): 1..64 bytes of UTF-8, no controls */
#define PROTO_EMAIL_MAX 254   /* emails: up to 254 bytes, no control characters */
#define PROTO_GATEWAY_MAX 64  /* gateway ids */
#define PROTO_MSG_ID_MAX 40   /* message ids */
#define PROTO_REASON_MAX 200  /* error reasons */
#define PROTO_DEFAULT_ROOM "lobby"
#define PROTO_TOKEN_MAX 4096 /* connect tokens (proto/jwt.h) */

enum proto_type {
    PROTO_HELLO = 1, /* username, email */
    PROTO_JOIN,      /* room */
    PROTO_LEAVE,     /* room */
    PROTO_MESSAGE,   /* room, text; username/email too in the seed format */
    PROTO_DIRECT,    /* to or to_user, text */
    PROTO_REFRESH,   /* token: a fresh connect token for the session */
    PROTO_WHO,       /* room: who is in it, on every gateway */
};

/* Decoding errors; each maps to a wire error code (proto_err_code). */
enum proto_err {
    PROTO_OK = 0,
    PROTO_ERR_JSON = -1,      /* not JSON, or trailing bytes */
    PROTO_ERR_SHAPE = -2,     /* not an object, a field of the wrong type, a duplicate key */
    PROTO_ERR_TYPE = -3,      /* unknown "type" */
    PROTO_ERR_MISSING = -4,   /* a required field is absent */
    PROTO_ERR_ROOM = -5,      /* room name outside [A-Za-z0-9_.:-]{1,64} */
    PROTO_ERR_TARGET = -6,    /* "to" is not a client id, "to_user" not a user id, or both */
    PROTO_ERR_TOO_LARGE = -7, /* a field over its limit */
    PROTO_ERR_TEXT = -8,      /* NUL, control characters where banned, or invalid UTF-8 */
};

/* A decoded client message. Strings are NUL-terminated copies; text is owned by the struct
 * and freed by proto_msg_clear. */
struct proto_msg {
    enum proto_type type;
    char room[PROTO_ROOM_MAX + 1];         /* join, leave, message */
    char to[PROTO_ID_LEN + 1];             /* direct to a client; "" when to_user is given */
    char to_user[PROTO_USER_MAX + 1];      /* direct to every session of a user; or "" */
    char username[PROTO_USERNAME_MAX + 1]; /* hello, seed message; "" when absent */
    char email[PROTO_EMAIL_MAX + 1];       /* hello, seed message; "" when absent */
    int has_identity;                      /* a seed message carried username or email */
    char *text;                            /* message, direct: the body (UTF-8, may hold NUL) */
    size_t text_len;
    char *token; /* refresh: the token as sent (at most PROTO_TOKEN_MAX bytes), owned */
};

/* Install allocation hooks for cJSON (malloc/free replacements that never return NULL); call
 * once before any other function. NULL hooks keep the defaults. */
void proto_init(void *(*alloc)(size_t), void (*release)(void *));

/*
 * Decode the JSON client message buf[0..len) into *msg (zeroed first). text_max is the
 * longest "message" body accepted. Returns PROTO_OK, or a negative enum proto_err with *msg
 * left empty. Always pair with proto_msg_clear.
 */
int proto_decode_client(const uint8_t *buf, size_t len, size_t text_max, struct proto_msg *msg);

/* Free what msg owns and zero it. */
void proto_msg_clear(struct proto_msg *msg);

/* The wire error code of err ("bad_json", ...), and a sentence for humans. */
const char *proto_err_code(int err);
const char *proto_strerror(int err);

/* 1 if name[0..len) is a valid room name, else 0. */
int proto_is_room(const char *name, size_t len);

/* 1 if s[0..len) is a valid user id (UTF-8, 1 to PROTO_USER_MAX bytes, no control
 * characters), else 0. */
int proto_is_user(const char *s, size_t len);

/* 1 if id[0..len) is a valid client id (32 lower-case hex digits), else 0. */

int proto_is_client_id(const char *id, size_t len);

/* 1 if s[0..len) holds a control character banned from names (C0, including NUL, or DEL),
 * else 0. Bytes from 0x80 up are not looked at: check UTF-8 apart (proto/utf8.h). */
int proto_has_control(const char *s, size_t len);

/* ---- server messages ---------------------------------------------------------------------
 * Each encoder returns a NUL-terminated JSON text owned by the caller (free with proto_free)
 * and sets *len to its length. Strings are escaped by cJSON; UTF-8 passes unchanged. */

/* Who sent a message. */
struct proto_sender {
    const char *id;       /* client id */
    const char *username; /* may be "" */
    const char *email;    /* may be "" (then omitted) */
    const char *user;     /* user id from a verified connect token; NULL or "" (omitted) */
};

/* user: the session's verified user id, or NULL (then omitted with exp); exp: when its
 * token expires (Unix seconds). */
char *proto_encode_welcome(const char *id, const char *user, int64_t exp, const char *gateway,
                           const char *const *rooms, size_t n_rooms, size_t *len);
/* The answer to a refresh: the session's token now expires at exp (Unix seconds). */
char *proto_encode_refreshed(int64_t exp, size_t *len);

char *proto_encode_message(const char *room, const char *msg_id, const struct proto_sender *from,
                           const char *text, size_t text_len, uint64_t ts_ms, size_t *len);
char *proto_encode_direct(const char *to, const char *msg_id, const struct proto_sender *from,
                          const char *text, size_t text_len, uint64_t ts_ms, size_t *len);
/* A direct message to every session of user id to_user. */
char *proto_encode_direct_user(const char *to_user, const char *msg_id,
                               const struct proto_sender *from, const char *text, size_t text_len,
                               uint64_t ts_ms, size_t *len);

char *proto_encode_presence(const char *room, const char *event, const struct proto_sender *who,
                            size_t *len);
/* code is a wire error code; reason a sentence (cut at PROTO_REASON_MAX); ref, if not NULL,
 * names what failed (a room, a client id, a type). */
char *proto_encode_error(const char *code, const char *reason, const char *ref, size_t *len);

/* The query a gateway publishes on a room's channel so that every gateway answers
 * reply_to with its local members. Gateways recognise it by its first bytes,
 * PROTO_WHO_PREFIX, and never deliver it to clients. */
#define PROTO_WHO_PREFIX "{\"type\":\"who\","
char *proto_encode_who(const char *room, const char *reply_to, size_t *len);

/* Parse a who query; returns 0 with room and reply_to filled, or -1. */
int proto_decode_who(const uint8_t *buf, size_t len, char room[PROTO_ROOM_MAX + 1],
                     char reply_to[PROTO_ID_LEN + 1]);

/* A gateway's answer to a who query: the n members of room it has (each a proto_sender). */
char *proto_encode_members(const char *room, const char *gateway,
                           const struct proto_sender *members, size_t n, size_t *len);

/* Free a text from an encoder; NULL does nothing. */
void proto_free(char *json);

#endif
