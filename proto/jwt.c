#include "proto/jwt.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "proto/json.h"
#include "proto/utf8.h"
#include "proto/xalloc.h"

#define JWT_SIG_LEN 32 /* HMAC-SHA-256 */

/* ---- base64url (RFC 4648 5, no padding), through OpenSSL's base64 ------------------------- */

static const char b64url_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static int is_b64url(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
}

/* Decode in[0..len) into a new buffer of *out_len bytes (NUL-terminated), or NULL. */
static uint8_t *b64url_decode(const char *in, size_t len, size_t *out_len)
{
    size_t padded = (len + 3) / 4 * 4, pad = padded - len;
    char *text;
    uint8_t *out;
    int n;

    if (len == 0 || len % 4 == 1)
        return NULL;
    for (size_t i = 0; i < len; i++)
        if (!is_b64url(in[i]))
            return NULL;
    text = xmalloc(padded + 1);
    for (size_t i = 0; i < len; i++)
        text[i] = in[i] == '-' ? '+' : in[i] == '_' ? '/' : in[i];
    memset(text + len, '=', pad);
    text[padded] = '\0';
    out = xmalloc(padded / 4 * 3 + 1);
    n = EVP_DecodeBlock(out, (const unsigned char *)text, (int)padded);
    free(text);
    if (n < 0) {
        free(out);
        return NULL;
    }
    *out_len = (size_t)n - pad; /* EVP_DecodeBlock counts the padding as zero bytes */
    out[*out_len] = '\0';
    return out;
}

/* 1 if in[0..len), base64url that b64url_decode took, is the canonical spelling (RFC 4648 3.5):
 * the bits its last character has to spare are zero. EVP_DecodeBlock ignores them, so without
 * this check one signature would have four spellings. */
static int b64url_is_canonical(const char *in, size_t len)
{
    const char *at = strchr(b64url_alphabet, in[len - 1]);
    unsigned spare = len % 4 == 2 ? 0x0f : len % 4 == 3 ? 0x03 : 0;

    return at && ((unsigned)(at - b64url_alphabet) & spare) == 0;
}

/* Encode in[0..len) into out (room for 4 * ceil(len / 3) + 1); returns the length. */
static size_t b64url_encode(const uint8_t *in, size_t len, char *out)
{
    int n = EVP_EncodeBlock((unsigned char *)out, in, (int)len);

    while (n > 0 && out[n - 1] == '=')
        n--;
    out[n] = '\0';
    for (int i = 0; i < n; i++)
        out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
    return (size_t)n;
}

static int hs256(const uint8_t *key, size_t key_len, const char *data, size_t len,
                 uint8_t out[JWT_SIG_LEN])
{
    unsigned int n = 0;

    return HMAC(EVP_sha256(), key, (int)key_len, (const unsigned char *)data, len, out, &n) &&
                   n == JWT_SIG_LEN
               ? 0
               : -1;
}

/* ---- claims ------------------------------------------------------------------------------- */

int proto_jwt_is_room_pattern(const char *s, size_t len)
{
    if (len > 0 && s[len - 1] == '*')
        return len == 1 || proto_is_room(s, len - 1);
    return proto_is_room(s, len);
}

static int read_time(const cJSON *obj, const char *name, int required, int64_t *out)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, name);

    if (item == NULL)
        return required ? -1 : 0;
    /* NumericDate: seconds, possibly fractional; anything past year 9999 is nonsense. */
    if (!cJSON_IsNumber(item) || !isfinite(item->valuedouble) || item->valuedouble < 0 ||
        item->valuedouble > 253402300799.0)
        return -1;
    *out = (int64_t)floor(item->valuedouble);
    return 0;
}

static int read_string(const cJSON *obj, const char *name, char *out, size_t max)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, name);
    size_t len;

    if (item == NULL)
        return 0;
    if (!cJSON_IsString(item))
        return -1;
    len = strlen(item->valuestring);
    if (!proto_is_user(item->valuestring, len) || len > max)
        return -1;
    memcpy(out, item->valuestring, len + 1);
    return 0;
}

static int read_rooms(const cJSON *obj, struct proto_jwt_claims *c)
{
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(obj, "rooms"), *it;
    int n = cJSON_GetArraySize(list);

    if (list == NULL)
        return 0;
    if (!cJSON_IsArray(list) || n > PROTO_JWT_ROOMS_MAX)
        return -1;
    c->has_rooms = 1;
    c->rooms = xcalloc((size_t)n + 1, sizeof(*c->rooms));
    cJSON_ArrayForEach(it, list)
    {
        if (!cJSON_IsString(it) ||
            !proto_jwt_is_room_pattern(it->valuestring, strlen(it->valuestring)))
            return -1;
        c->rooms[c->n_rooms++] = xstrdup(it->valuestring);
    }
    return 0;
}

static int read_claims(const cJSON *payload, int64_t now, unsigned leeway,
                       struct proto_jwt_claims *c)
{
    int64_t nbf = 0;

    if (!cJSON_IsObject(payload))
        return PROTO_JWT_MALFORMED;
    if (read_string(payload, "sub", c->sub, PROTO_USER_MAX) < 0 || c->sub[0] == '\0' ||
        read_string(payload, "name", c->name, PROTO_USERNAME_MAX) < 0 ||
        read_time(payload, "exp", 1, &c->exp) < 0 || read_time(payload, "nbf", 0, &nbf) < 0 ||
        read_rooms(payload, c) < 0)
        return PROTO_JWT_CLAIMS;
    if (now > c->exp + (int64_t)leeway)
        return PROTO_JWT_EXPIRED;
    if (nbf > now + (int64_t)leeway)
        return PROTO_JWT_NOT_YET;
    return PROTO_JWT_OK;
}

/* The header must name HS256 and nothing this verifier would have to understand. */
static int check_header(const cJSON *header)
{
    const cJSON *alg = cJSON_GetObjectItemCaseSensitive(header, "alg");
    const cJSON *typ = cJSON_GetObjectItemCaseSensitive(header, "typ");

    if (!cJSON_IsObject(header))
        return PROTO_JWT_MALFORMED;
    if (!cJSON_IsString(alg) || strcmp(alg->valuestring, "HS256") != 0 ||
        cJSON_GetObjectItemCaseSensitive(header, "crit") != NULL)
        return PROTO_JWT_ALGORITHM;
    if (typ && (!cJSON_IsString(typ) || strcasecmp(typ->valuestring, "JWT") != 0))
        return PROTO_JWT_MALFORMED;
    return PROTO_JWT_OK;
}

/* 1 if the object obj names a member twice, else 0. Verifiers differ on which one counts
 * (cJSON takes the first, many libraries the last), so RFC 7515 4 lets us refuse them. */
static int has_duplicate_names(const cJSON *obj)
{
    for (const cJSON *a = obj->child; a; a = a->next)
        for (const cJSON *b = a->next; b; b = b->next)
            if (a->string && b->string && strcmp(a->string, b->string) == 0)
                return 1;
    return 0;
}

/* Decode a part into a JSON tree, or NULL. */
static cJSON *decode_json(const char *part, size_t len)
{
    size_t n;
    uint8_t *raw = b64url_decode(part, len, &n);
    cJSON *tree = NULL;

    /* A NUL, raw or escaped, would cut a string short of what was signed. */
    if (raw && memchr(raw, '\0', n) == NULL && !proto_json_has_escaped_nul(raw, n) &&
        proto_utf8_is_valid(raw, n))
        tree = proto_json_parse(raw, n);
    free(raw);
    return tree;
}

int proto_jwt_verify(const char *token, size_t len, const uint8_t *key, size_t key_len, int64_t now,
                     unsigned leeway, struct proto_jwt_claims *claims)
{
    const char *dot1, *dot2, *end = token + len;
    uint8_t want[JWT_SIG_LEN], *sig;
    size_t sig_len;
    cJSON *header, *payload;
    int rc;

    memset(claims, 0, sizeof(*claims));
    if (len == 0 || len > PROTO_JWT_MAX)
        return PROTO_JWT_MALFORMED;
    dot1 = memchr(token, '.', len);
    dot2 = dot1 ? memchr(dot1 + 1, '.', (size_t)(end - dot1 - 1)) : NULL;
    if (dot2 == NULL || memchr(dot2 + 1, '.', (size_t)(end - dot2 - 1)))
        return PROTO_JWT_MALFORMED;
    header = decode_json(token, (size_t)(dot1 - token));
    rc = header ? check_header(header) : PROTO_JWT_MALFORMED;
    if (rc != PROTO_JWT_OK) {
        cJSON_Delete(header);
        return rc;
    }
    /* The signature before anything of the payload is believed. */
    sig = b64url_decode(dot2 + 1, (size_t)(end - dot2 - 1), &sig_len);
    if (sig == NULL) {
        cJSON_Delete(header);
        return PROTO_JWT_MALFORMED;
    }
    rc = sig_len == JWT_SIG_LEN && b64url_is_canonical(dot2 + 1, (size_t)(end - dot2 - 1)) &&
                 hs256(key, key_len, token, (size_t)(dot2 - token), want) == 0 &&
                 CRYPTO_memcmp(want, sig, JWT_SIG_LEN) == 0
             ? PROTO_JWT_OK
             : PROTO_JWT_SIGNATURE;
    free(sig);
    /* Duplicate names are looked for only in what the key signed (the search is quadratic). */
    if (rc == PROTO_JWT_OK && has_duplicate_names(header))
        rc = PROTO_JWT_MALFORMED;
    cJSON_Delete(header);
    if (rc != PROTO_JWT_OK)
        return rc;
    payload = decode_json(dot1 + 1, (size_t)(dot2 - dot1 - 1));
    rc = !cJSON_IsObject(payload) || has_duplicate_names(payload)
             ? PROTO_JWT_MALFORMED
             : read_claims(payload, now, leeway, claims);
    cJSON_Delete(payload);
    if (rc != PROTO_JWT_OK)
        proto_jwt_claims_clear(claims);
    return rc;
}

void proto_jwt_claims_clear(struct proto_jwt_claims *claims)
{
    for (size_t i = 0; i < claims->n_rooms; i++)
        free(claims->rooms[i]);
    free(claims->rooms);
    memset(claims, 0, sizeof(*claims));
}

int proto_jwt_allows_room(const struct proto_jwt_claims *claims, const char *room)
{
    if (!claims->has_rooms)
        return 1;
    for (size_t i = 0; i < claims->n_rooms; i++) {
        const char *p = claims->rooms[i];
        size_t n = strlen(p);

        if (p[n - 1] == '*' ? strncmp(room, p, n - 1) == 0 : strcmp(room, p) == 0)
            return 1;
    }
    return 0;
}

const char *proto_jwt_strerror(int rc)
{
    switch (rc) {
    case PROTO_JWT_OK:
        return "valid token";
    case PROTO_JWT_MALFORMED:
        return "malformed token";
    case PROTO_JWT_ALGORITHM:
        return "token algorithm must be HS256";
    case PROTO_JWT_SIGNATURE:
        return "token signature does not match";
    case PROTO_JWT_EXPIRED:
        return "token expired";
    case PROTO_JWT_NOT_YET:
        return "token not valid yet";
    case PROTO_JWT_CLAIMS:
        return "token claims invalid: sub and exp are required";
    }
    return "invalid token";
}

long proto_jwt_read_secret(const char *path, char out[PROTO_JWT_SECRET_MAX + 1], const char **why)
{
    char buf[PROTO_JWT_SECRET_MAX + 3]; /* the key, its line end, one byte to see it is longer */
    FILE *f = fopen(path, "r");
    size_t n;

    if (f == NULL) {
        *why = strerror(errno);
        return -1;
    }
    n = fread(buf, 1, sizeof(buf), f);
    if (ferror(f)) {
        fclose(f);
        *why = "read error";
        return -1;
    }
    fclose(f);
    if (n > 0 && buf[n - 1] == '\n') /* one line end, \n or \r\n: a key may end in them */
        n -= n > 1 && buf[n - 2] == '\r' ? 2 : 1;
    if (n > PROTO_JWT_SECRET_MAX) {
        *why = "over 4KiB";
        return -1;
    }
    memcpy(out, buf, n);
    out[n] = '\0';
    return (long)n;
}

char *proto_jwt_sign(const char *payload, size_t len, const uint8_t *key, size_t key_len)
{
    static const char header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    cJSON *check = proto_json_parse((const uint8_t *)payload, len);
    size_t cap, n;
    uint8_t sig[JWT_SIG_LEN];
    char *out;

    if (!cJSON_IsObject(check)) {
        cJSON_Delete(check);
        return NULL;
    }
    cJSON_Delete(check);
    cap = (sizeof(header) + len + JWT_SIG_LEN) / 3 * 4 + 16;
    out = xmalloc(cap);
    n = b64url_encode((const uint8_t *)header, sizeof(header) - 1, out);
    out[n++] = '.';
    n += b64url_encode((const uint8_t *)payload, len, out + n);
    if (hs256(key, key_len, out, n, sig) < 0) {
        free(out);
        return NULL;
    }
    out[n++] = '.';
    b64url_encode(sig, sizeof(sig), out + n);
    return out;
}
