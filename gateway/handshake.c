#include "gateway/handshake.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <http_parser.h>
#include <openssl/evp.h>

#include "gateway/config.h"
#include "gateway/http.h"
#include "gateway/util.h"
#include "proto/jwt.h"
#include "proto/xalloc.h"

static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

int gw_handshake_accept_key(const char *key, size_t len, char out[GW_HANDSHAKE_ACCEPT_LEN])
{
    unsigned char raw[32], digest[EVP_MAX_MD_SIZE];
    char buf[24 + sizeof(ws_guid)];
    unsigned int dlen;

    /* 16 bytes encode to 24 characters ending in "=="; EVP_DecodeBlock does not see the
     * padding, so check the length and padding here and the alphabet through it. */
    if (len != 24 || key[22] != '=' || key[23] != '=')
        return -1;
    for (size_t i = 0; i < 22; i++)
        if (!isalnum((unsigned char)key[i]) && key[i] != '+' && key[i] != '/')
            return -1;
    memcpy(buf, key, len);
    buf[len] = '\0';
    if (EVP_DecodeBlock(raw, (const unsigned char *)buf, (int)len) != 18)
        return -1;
    memcpy(buf + len, ws_guid, sizeof(ws_guid) - 1);
    if (EVP_Digest(buf, len + sizeof(ws_guid) - 1, digest, &dlen, EVP_sha1(), NULL) != 1)
        return -1;
    EVP_EncodeBlock((unsigned char *)out, digest, (int)dlen);
    return 0;
}

int gw_handshake_is_origin_allowed(const struct gw_config *cfg, const char *origin, size_t len,
                                   const char *host, size_t host_len)
{
    if (cfg->any_origin)
        return 1;
    if (cfg->allowed_origins[0] != NULL) {
        for (char *const *o = cfg->allowed_origins; *o; o++)
            if (gw_util_is_ascii_caseeq(origin, len, *o))
                return 1;
        return 0;
    }
    /* Same host: the origin's authority equals the Host header. */
    const char *sep = memmem(origin, len, "://", 3);
    if (sep == NULL || host == NULL)
        return 0;
    sep += 3;
    len -= (size_t)(sep - origin);
    return len == host_len && strncasecmp(sep, host, len) == 0;
}

const char *gw_handshake_select_subprotocol(char *const *server, const char *offered, size_t len)
{
    for (char *const *s = server; *s; s++) {
        const char *p = offered, *elem;
        size_t elen;

        while (gw_util_list_next(&p, offered + len, &elem, &elen))
            /* Subprotocol names are case-sensitive (RFC 6455 4.1). */
            if (elen == strlen(*s) && memcmp(elem, *s, elen) == 0)
                return *s;
    }
    return NULL;
}

/* 1 if token is in the comma list of any occurrence of header name (several lines of a list
 * header form one list, RFC 9110 5.3), else 0. */
static int header_has_token(const struct gw_http_request *req, const char *name, const char *token)
{
    for (size_t i = 0; i < req->n_headers; i++) {
        const struct gw_http_header *h = &req->headers[i];

        if (gw_util_is_ascii_caseeq(h->name, h->name_len, name) &&
            gw_util_has_token(h->value, h->value_len, token))
            return 1;
    }
    return 0;
}

static int refuse(struct gw_handshake *hs, int status, const char *reason)
{
    hs->status = status;
    hs->reason = reason;
    return -1;
}

/* The header name must occur exactly once; its value in *v, *len. */
static int single(const struct gw_http_request *req, const char *name, const char **v, size_t *len)
{
    size_t count;

    *v = gw_http_header(req, name, len, &count);
    return count == 1 ? 0 : -1;
}

static int check_request(const struct gw_config *cfg, const struct gw_http_request *req,
                         struct gw_handshake *hs)
{
    const char *v, *host;
    size_t len, host_len;

    if (req->method != HTTP_GET)
        return refuse(hs, 405, "WebSocket upgrade needs GET");
    if (req->major != 1 || req->minor < 1)
        return refuse(hs, 400, "WebSocket upgrade needs HTTP/1.1");
    if (single(req, "Host", &host, &host_len) < 0 || host_len == 0)
        return refuse(hs, 400, "missing or repeated Host header");
    if (!header_has_token(req, "Upgrade", "websocket"))
        return refuse(hs, 400, "'websocket' token not found in Upgrade header");
    if (!header_has_token(req, "Connection", "upgrade"))
        return refuse(hs, 400, "'upgrade' token not found in Connection header");
    if (single(req, "Sec-WebSocket-Version", &v, &len) < 0 || len != 2 || memcmp(v, "13", 2))
        return refuse(hs, 426, "unsupported WebSocket version (13 only)");
    if (single(req, "Sec-WebSocket-Key", &v, &len) < 0 ||
        gw_handshake_accept_key(v, len, hs->accept) < 0)
        return refuse(hs, 400, "Sec-WebSocket-Key must be base64 of 16 bytes, once");
    v = gw_http_header(req, "Origin", &len, NULL);
    if (v && !gw_handshake_is_origin_allowed(cfg, v, len, host, host_len))
        return refuse(hs, 403, "origin not allowed");
    return 0;
}

void gw_handshake_check(const struct gw_config *cfg, const struct gw_http_request *req,
                        struct gw_handshake *hs)
{
    memset(hs, 0, sizeof(*hs));
    if (check_request(cfg, req, hs) < 0)
        return;
    hs->status = 101;
    hs->reason = "switching protocols";
    if (cfg->deflate)
        gw_deflate_negotiate(req, &hs->deflate, hs->extensions);
    /* The server's order of preference decides, across every Sec-WebSocket-Protocol line. */
    for (char *const *mine = cfg->subprotocols; *mine && hs->subprotocol == NULL; mine++) {
        char *const one[2] = {*mine, NULL};

        for (size_t i = 0; i < req->n_headers && hs->subprotocol == NULL; i++) {
            const struct gw_http_header *h = &req->headers[i];

            if (gw_util_is_ascii_caseeq(h->name, h->name_len, "Sec-WebSocket-Protocol"))
                hs->subprotocol = gw_handshake_select_subprotocol(one, h->value, h->value_len);
        }
    }
    hs->subprotocol_len = hs->subprotocol ? strlen(hs->subprotocol) : 0;
}

/* ---- connect tokens ----------------------------------------------------------------------- */

#define TOKEN_PROTOCOL_PREFIX "token."

/* The query parameter access_token (RFC 6750 2.3) or token (names as they are, the first
 * given), percent-decoded by libevent: a new string (free it), or NULL when there is none.
 * A value that decodes to a NUL becomes "" so that it fails as a malformed token rather than
 * being cut short. */
static char *query_token(const struct gw_http_request *req)
{
    const char *p = req->query, *end = p ? p + req->query_len : NULL;

    while (p && p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p)), *stop = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(stop - p));
        size_t nlen = eq ? (size_t)(eq - p) : 0;

        if (eq && ((nlen == 12 && memcmp(p, "access_token", 12) == 0) ||
                   (nlen == 5 && memcmp(p, "token", 5) == 0))) {
            char *raw = xstrndup(eq + 1, (size_t)(stop - eq - 1));
            size_t n = 0;
            char *value = evhttp_uridecode(raw, 0, &n);

            free(raw);
            if (value == NULL)
                return xstrdup("");
            if (strlen(value) != n)
                value[0] = '\0';
            raw = xstrdup(value);
            free(value); /* libevent's allocation */
            return raw;
        }
        p = stop + 1;
    }
    return NULL;
}

/* The first Sec-WebSocket-Protocol entry "token.<jwt>" the client offered, in *elem, *len;
 * 0 if there is none. */
static int offered_token_entry(const struct gw_http_request *req, const char **entry, size_t *len)
{
    for (size_t i = 0; i < req->n_headers; i++) {
        const struct gw_http_header *h = &req->headers[i];
        const char *p = h->value, *elem;
        size_t elen;

        if (!gw_util_is_ascii_caseeq(h->name, h->name_len, "Sec-WebSocket-Protocol"))
            continue;
        while (gw_util_list_next(&p, h->value + h->value_len, &elem, &elen)) {
            if (elen > sizeof(TOKEN_PROTOCOL_PREFIX) - 1 &&
                memcmp(elem, TOKEN_PROTOCOL_PREFIX, sizeof(TOKEN_PROTOCOL_PREFIX) - 1) == 0) {
                *entry = elem;
                *len = elen;
                return 1;
            }
        }
    }
    return 0;
}

/* Where the token is: *tok, *len borrowed from req, or *copy (a decoded query value). A
 * token.* subprotocol entry the client offered is chosen as the subprotocol when no other
 * was, whichever place the token came from (a browser wants one of its offers back). */
static int find_token(const struct gw_http_request *req, struct gw_handshake *hs, const char **tok,
                      size_t *len, char **copy)
{
    static const char bearer[] = "Bearer ";
    const char *v, *entry = NULL;
    size_t vlen, elen = 0;
    int offered = offered_token_entry(req, &entry, &elen);

    if (offered && hs->subprotocol == NULL) {
        hs->subprotocol = entry;
        hs->subprotocol_len = elen;
        hs->subprotocol_from_token = 1;
    }
    *copy = NULL;
    v = gw_http_header(req, "Authorization", &vlen, NULL);
    if (v && vlen > sizeof(bearer) - 1 && strncasecmp(v, bearer, sizeof(bearer) - 1) == 0) {
        *tok = v + sizeof(bearer) - 1;
        *len = vlen - (sizeof(bearer) - 1);
        return 1;
    }
    *copy = query_token(req);
    if (*copy) {
        *tok = *copy;
        *len = strlen(*copy);
        return 1;
    }
    if (offered) {
        *tok = entry + sizeof(TOKEN_PROTOCOL_PREFIX) - 1;
        *len = elen - (sizeof(TOKEN_PROTOCOL_PREFIX) - 1);
        return 1;
    }
    return 0;
}

int gw_handshake_verify_token(const struct gw_config *cfg, const char *token, size_t len,
                              int64_t now, struct proto_jwt_claims *claims)
{
    return proto_jwt_verify(token, len, (const uint8_t *)cfg->token_secret,
                            strlen(cfg->token_secret), now, cfg->token_leeway_ms / 1000, claims);
}

int gw_handshake_authenticate(const struct gw_config *cfg, const struct gw_http_request *req,
                              int64_t now, struct gw_handshake *hs, struct proto_jwt_claims *claims)
{
    const char *tok = NULL;
    size_t len = 0;
    char *copy;
    int rc;

    memset(claims, 0, sizeof(*claims));
    if (cfg->token_secret == NULL)
        return 0;
    if (!find_token(req, hs, &tok, &len, &copy)) {
        if (cfg->token_optional)
            return 0;
        return refuse(hs, 401, "a connect token is required");
    }
    rc = gw_handshake_verify_token(cfg, tok, len, now, claims);
    free(copy);
    if (rc != PROTO_JWT_OK) {
        hs->bad_token = 1;
        return refuse(hs, 401, proto_jwt_strerror(rc));
    }
    return 1;
}

void gw_handshake_write(const struct gw_handshake *hs, struct evbuffer *out)
{
    evbuffer_add_printf(out,
                        "HTTP/1.1 101 Switching Protocols\r\nServer: chatbroker\r\n"
                        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                        "Sec-WebSocket-Accept: %s\r\n%s%.*s%s%s%s%s\r\n",
                        hs->accept, hs->subprotocol ? "Sec-WebSocket-Protocol: " : "",
                        (int)hs->subprotocol_len, hs->subprotocol ? hs->subprotocol : "",
                        hs->subprotocol ? "\r\n" : "",
                        hs->extensions[0] ? "Sec-WebSocket-Extensions: " : "", hs->extensions,
                        hs->extensions[0] ? "\r\n" : "");
}

void gw_handshake_write_error(const struct gw_handshake *hs, struct evbuffer *out)
{
    char body[256];
    int n = snprintf(body, sizeof(body), "%s\n", hs->reason);
    const char *extra = NULL;

    if (hs->status == 426)
        extra = "Sec-WebSocket-Version: 13\r\nUpgrade: websocket\r\n";
    else if (hs->status == 405)
        extra = "Allow: GET\r\n";
    else if (hs->status == 401 && hs->bad_token)
        extra = "WWW-Authenticate: Bearer realm=\"chat\", error=\"invalid_token\"\r\n";
    else if (hs->status == 401)
        extra = "WWW-Authenticate: Bearer realm=\"chat\"\r\n";

    gw_http_respond(out, hs->status, extra, "text/plain; charset=utf-8", body, (size_t)n, 0, 0);
}
