/*
 * The server side of the WebSocket opening handshake (RFC 6455 4.2): checks a parsed
 * request against the rules and the configuration, and writes the 101 answer. Pure
 * functions of their arguments: no sockets, no state.
 */
#ifndef CHAT_GATEWAY_HANDSHAKE_H
#define CHAT_GATEWAY_HANDSHAKE_H

#include <stddef.h>

#include <stdint.h>

#include "gateway/deflate.h"

struct evbuffer;
struct gw_config;
struct gw_http_request;
struct proto_jwt_claims;

/* Length of a Sec-WebSocket-Accept value (base64 of a SHA-1) plus its NUL. */
#define GW_HANDSHAKE_ACCEPT_LEN 29

struct gw_handshake {
    int status;         /* 101 when the upgrade may go ahead, else the HTTP status */
    const char *reason; /* static; why the request was refused (for body and log) */
    char accept[GW_HANDSHAKE_ACCEPT_LEN]; /* Sec-WebSocket-Accept, when status is 101 */
    const char *subprotocol; /* chosen, borrowed from the configuration or the request; or NULL */
    size_t subprotocol_len;
    int subprotocol_from_token;       /* the subprotocol is a token.<jwt> entry: never log it */
    int bad_token;                    /* 401 for a token that failed, not for a missing one */
    struct gw_deflate_params deflate; /* permessage-deflate, when negotiated */
    char extensions[GW_DEFLATE_RESPONSE_MAX]; /* Sec-WebSocket-Extensions answer, or "" */
};

/* Check req (a GET to a WebSocket route) and fill hs. */
void gw_handshake_check(const struct gw_config *cfg, const struct gw_http_request *req,
                        struct gw_handshake *hs);

/*
 * Connect tokens, when cfg has a token secret: find req's token (an "Authorization: Bearer"
 * header, the query's access_token or token parameter, or a Sec-WebSocket-Protocol entry
 * "token.<jwt>", in that order) and verify it at Unix time now (seconds). Returns 1 with
 * *claims filled (pair with proto_jwt_claims_clear); 0 when tokens are off, or there is no
 * token and cfg admits guests; -1 with hs->status 401 and hs->reason set otherwise. A token
 * sent as a subprotocol entry is chosen as the subprotocol when no configured one was
 * (browsers fail a handshake whose answer names none of what they offered); hs then borrows
 * from req until gw_handshake_write.
 */
int gw_handshake_authenticate(const struct gw_config *cfg, const struct gw_http_request *req,
                              int64_t now, struct gw_handshake *hs,
                              struct proto_jwt_claims *claims);

/* Verify token[0..len) under cfg's secret and leeway at Unix time now (seconds): a
 * proto_jwt_verify result, *claims filled on PROTO_JWT_OK. cfg must have a token secret. */
int gw_handshake_verify_token(const struct gw_config *cfg, const char *token, size_t len,
                              int64_t now, struct proto_jwt_claims *claims);

/* Append the 101 Switching Protocols answer for a successful hs to out. */

void gw_handshake_write(const struct gw_handshake *hs, struct evbuffer *out);

/* Append the refusal for hs (status other than 101) to out: the status, a plain-text reason
 * and Sec-WebSocket-Version: 13 on 426. The connection is to be closed after it. */
void gw_handshake_write_error(const struct gw_handshake *hs, struct evbuffer *out);

/* Compute Sec-WebSocket-Accept for key[0..len) into out. Returns 0, or -1 if the key does
 * not decode from base64 to exactly 16 bytes. */
int gw_handshake_accept_key(const char *key, size_t len, char out[GW_HANDSHAKE_ACCEPT_LEN]);

/* 1 if a browser at origin[0..len) may connect to host[0..host_len) (the Host header) under
 * cfg's allow-list, else 0. */
int gw_handshake_is_origin_allowed(const struct gw_config *cfg, const char *origin, size_t len,
                                   const char *host, size_t host_len);

/* The first of the server's protocols (NULL-terminated, in preference order) that the
 * client offered in offered[0..len) (a comma list), or NULL. */
const char *gw_handshake_select_subprotocol(char *const *server, const char *offered, size_t len);

#endif
