/*
 * Connect tokens: JSON Web Tokens (RFC 7519) in the JWS compact form signed with HS256
 * (HMAC-SHA-256, RFC 7518 3.2), the only algorithm accepted. The gateway verifies them, the
 * chat-token tool mints them; OpenSSL computes the HMAC. No logging, no I/O.
 *
 * Claims read: "sub" (the user id, required), "exp" (required), "nbf", "name" (the display
 * name a session starts with) and "rooms" (the rooms the user may join: names, or prefixes
 * ending in "*"; "*" alone allows every room). Other claims are ignored; a header with
 * "crit" is refused, as RFC 7515 4.1.11 asks of a verifier that understands no extension.
 */
#ifndef CHAT_PROTO_JWT_H
#define CHAT_PROTO_JWT_H

#include <stddef.h>
#include <stdint.h>

#include "proto/proto.h"

#define PROTO_JWT_MAX PROTO_TOKEN_MAX /* longest token accepted, in bytes */
#define PROTO_JWT_ROOMS_MAX 64        /* entries of the "rooms" claim */
#define PROTO_JWT_SECRET_MAX 4096     /* bytes of a secret read from a file */
#define PROTO_JWT_SECRET_MIN 32       /* bytes: a key as long as the hash (RFC 7518 3.2) */

enum proto_jwt_result {
    PROTO_JWT_OK = 0,
    PROTO_JWT_MALFORMED = -1, /* not three base64url parts of JSON objects */
    PROTO_JWT_ALGORITHM = -2, /* "alg" is not HS256, or "crit" is present */
    PROTO_JWT_SIGNATURE = -3, /* the signature does not match */
    PROTO_JWT_EXPIRED = -4,   /* "exp" plus the leeway has passed */
    PROTO_JWT_NOT_YET = -5,   /* "nbf" minus the leeway is still to come */
    PROTO_JWT_CLAIMS = -6,    /* "sub" or "exp" missing, or a claim of the wrong form */
};

/* What a verified token says. Owned by the struct: free with proto_jwt_claims_clear. */
struct proto_jwt_claims {
    char sub[PROTO_USER_MAX + 1];
    char name[PROTO_USERNAME_MAX + 1]; /* "" when absent */
    int64_t exp;                       /* Unix seconds */
    int has_rooms;                     /* 0: the token says nothing of rooms (all allowed) */
    char **rooms;                      /* has_rooms: n_rooms names or "prefix*" patterns */
    size_t n_rooms;
};

/*
 * Verify token[0..len) against key[0..key_len) at Unix time now with leeway seconds of clock
 * skew allowed on exp and nbf, and fill *claims (zeroed first; filled only on success).
 * Returns PROTO_JWT_OK or a negative enum proto_jwt_result. The signature is checked before
 * any claim is read, and compared in constant time; only its canonical base64url spelling
 * verifies (the spare bits of its last character zero), so a token has one spelling.
 */
int proto_jwt_verify(const char *token, size_t len, const uint8_t *key, size_t key_len, int64_t now,
                     unsigned leeway, struct proto_jwt_claims *claims);

void proto_jwt_claims_clear(struct proto_jwt_claims *claims);

/* 1 if the claims allow joining room, else 0. */
int proto_jwt_allows_room(const struct proto_jwt_claims *claims, const char *room);

/* 1 if s[0..len) may be an entry of the "rooms" claim: a room name, or a prefix of one
 * followed by "*" ("*" alone: any room), else 0. */
int proto_jwt_is_room_pattern(const char *s, size_t len);

/* A sentence for a result, for logs and 401 bodies. */
const char *proto_jwt_strerror(int rc);

/* Read the secret in the file at path into out (NUL-terminated; it may hold NULs before),
 * dropping one line end (\n or \r\n), as the gateway and chat-token both read it. Returns
 * its length, or -1 with *why set to a reason ("over 4KiB", an errno text). */
long proto_jwt_read_secret(const char *path, char out[PROTO_JWT_SECRET_MAX + 1], const char **why);

/* Sign the JSON object text payload[0..len) (the claims) with key: returns the compact token
 * (NUL-terminated, free with free()), or NULL if payload is not a JSON object. */
char *proto_jwt_sign(const char *payload, size_t len, const uint8_t *key, size_t key_len);

#endif
