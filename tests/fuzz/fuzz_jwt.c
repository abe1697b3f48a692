/*
 * Fuzz target: connect tokens (proto/jwt.h). In verify mode the input is a token for
 * proto_jwt_verify under a fixed key. A token that verifies must end with the HMAC-SHA-256
 * of its first two parts as this target computes it (OpenSSL's HMAC, base64url written
 * here), name HS256 in its header and carry claims within jwt.h's limits that match its
 * payload; any failure leaves the claims zeroed. In sign mode the input is a claims text for
 * proto_jwt_sign: the token decodes back to that text and verifies, and is refused as
 * malformed exactly when the text holds a NUL (raw, or escaped as \u0000), invalid UTF-8,
 * a member named twice, or the token is longer than PROTO_JWT_MAX, as jwt.c says.
 * Both modes compare proto_jwt_allows_room with a second implementation written here.
 *
 * Input: byte 0 the mode (bit 0: sign); bytes 1-5 the time now (big-endian Unix seconds);
 * bytes 6-7 the leeway (big-endian seconds, 0xffff for UINT_MAX); byte 8 a room name's
 * length (mod 80) and that many bytes; the rest is the token or the claims text.
 */
#include "tests/fuzz/fuzz.h"

#include <limits.h>
#include <math.h>

#include <cjson/cJSON.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "proto/jwt.h"
#include "proto/proto.h"
#include "proto/utf8.h"
#include "proto/xalloc.h"

#define ROOM_LEN_MOD 80
#define SIG_B64_LEN 43 /* 32 bytes in base64url without padding */

/* The gateway's key (make_corpus.py signs the seeds with it), and one that differs by a bit. */
static const char key[] = "chatbroker-fuzz-key-0123456789abcdef";
static const char other_key[] = "chatbroker-fuzz-key-0123456789abcdeF";

/* What the control bytes chose. */
struct ctl {
    int sign;
    int64_t now;
    unsigned leeway;
    char room[ROOM_LEN_MOD];
};

/* A token cut at its dots: exactly three parts, or n says how many there were. */
struct parts {
    const char *p[3];
    size_t len[3];
    size_t n;
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    proto_init(xmalloc, free); /* as the gateway does */
    return 0;
}

/* ---- base64url and HMAC, written here ---------------------------------------------------- */

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* RFC 4648 5 without padding: 4 characters per 3 bytes, 2 or 3 for a last 1 or 2. out needs
 * room for 4 * ceil(len / 3) + 1. Returns the length. */
static size_t encode(const uint8_t *in, size_t len, char *out)
{
    size_t n = 0;

    for (size_t i = 0; i < len; i += 3) {
        size_t rest = len - i;
        uint32_t v = (uint32_t)in[i] << 16 | (rest > 1 ? (uint32_t)in[i + 1] << 8 : 0) |
                     (rest > 2 ? in[i + 2] : 0);

        out[n++] = b64url[v >> 18 & 63];
        out[n++] = b64url[v >> 12 & 63];
        if (rest > 1)
            out[n++] = b64url[v >> 6 & 63];
        if (rest > 2)
            out[n++] = b64url[v & 63];
    }
    out[n] = '\0';
    return n;
}

/* Decode in[0..len) into a new buffer (free it) of *out_len bytes and a NUL, or NULL for a
 * character outside the alphabet or a length that leaves one character over. The bits a
 * last character has to spare are ignored: the HMAC covers the text, not what it decodes to. */
static uint8_t *decode(const char *in, size_t len, size_t *out_len)
{
    uint8_t *out;
    uint32_t acc = 0;
    unsigned bits = 0;
    size_t n = 0;

    if (len % 4 == 1)
        return NULL;
    out = xmalloc(len / 4 * 3 + 3);
    for (size_t i = 0; i < len; i++) {
        const char *at = in[i] ? strchr(b64url, in[i]) : NULL;

        if (at == NULL) {
            free(out);
            return NULL;
        }
        acc = (acc << 6 | (uint32_t)(at - b64url)) & 0x3fff;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (uint8_t)(acc >> bits);
        }
    }
    out[n] = '\0';
    *out_len = n;
    return out;
}

/* The third part a token must have after signed_part[0..len) ("header.payload") under k. */
static void expected_sig(const char *signed_part, size_t len, const char *k,
                         char out[SIG_B64_LEN + 1])
{
    uint8_t mac[EVP_MAX_MD_SIZE];
    unsigned int n = 0;

    if (HMAC(EVP_sha256(), k, (int)strlen(k), (const unsigned char *)signed_part, len, mac, &n) ==
            NULL ||
        n != 32)
        abort();
    FUZZ_CHECK(encode(mac, n, out) == SIG_B64_LEN);
}

/* ---- reading a token ------------------------------------------------------------------------ */

/* Cut tok[0..len) at its dots; returns 1 if there are exactly three parts. */
static int split(const char *tok, size_t len, struct parts *pt)
{
    const char *start = tok, *end = tok + len, *dot;

    pt->n = 0;
    while ((dot = memchr(start, '.', (size_t)(end - start))) != NULL) {
        if (pt->n < 2) {
            pt->p[pt->n] = start;
            pt->len[pt->n] = (size_t)(dot - start);
        }
        pt->n++;
        start = dot + 1;
    }
    if (pt->n == 2) {
        pt->p[2] = start;
        pt->len[2] = (size_t)(end - start);
    }
    pt->n++;
    return pt->n == 3;
}

/* The JSON in a part (cJSON, which takes what follows the value as the verifier does not:
 * a weaker test, enough for what must hold of a token the verifier read), or NULL. */
static cJSON *part_json(const char *part, size_t len)
{
    size_t n;
    uint8_t *raw = decode(part, len, &n);
    cJSON *tree = raw ? cJSON_ParseWithLength((const char *)raw, n) : NULL;

    free(raw);
    return tree;
}

/* 1 if the header part is an object naming HS256 and no "crit", 0 if it is an object that
 * does not, -1 if it is no JSON object. */
static int header_alg(const struct parts *pt)
{
    cJSON *h = part_json(pt->p[0], pt->len[0]);
    const cJSON *alg = cJSON_GetObjectItemCaseSensitive(h, "alg");
    int rc = -1;

    if (cJSON_IsObject(h))
        rc = cJSON_IsString(alg) && strcmp(alg->valuestring, "HS256") == 0 &&
             cJSON_GetObjectItemCaseSensitive(h, "crit") == NULL;
    cJSON_Delete(h);
    return rc;
}

/* ---- rooms -------------------------------------------------------------------------------- */

static int is_room_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == ':' || c == '-';
}

/* A rooms entry: 1 to PROTO_ROOM_MAX room characters, each optionally followed by one "*";
 * or "*" alone. */
static int is_pattern(const char *s, size_t len)
{
    size_t name = len > 0 && s[len - 1] == '*' ? len - 1 : len;

    if (name > PROTO_ROOM_MAX || (name == 0 && len != 1))
        return 0;
    for (size_t i = 0; i < name; i++)
        if (!is_room_char(s[i]))
            return 0;
    return 1;
}

/* proto_jwt_allows_room as the header words it: no rooms claim allows all; an entry allows
 * the room it names, a "prefix*" entry every room that starts with prefix. */
static int allows(const struct proto_jwt_claims *c, const char *room)
{
    size_t rlen = strlen(room);

    if (!c->has_rooms)
        return 1;
    for (size_t i = 0; i < c->n_rooms; i++) {
        size_t n = strlen(c->rooms[i]);
        int prefix = n > 0 && c->rooms[i][n - 1] == '*';

        if (prefix && rlen >= n - 1 && memcmp(room, c->rooms[i], n - 1) == 0)
            return 1;
        if (!prefix && rlen == n && memcmp(room, c->rooms[i], n) == 0)
            return 1;
    }
    return 0;
}

/* Agreement on the input's room, and on each entry with its "*" dropped and with one more
 * character, which a prefix allows and a name does not. */
static void check_rooms(const struct proto_jwt_claims *c, const char *room)
{
    char probe[ROOM_LEN_MOD + 2];

    FUZZ_CHECK(proto_jwt_allows_room(c, room) == allows(c, room));
    for (size_t i = 0; i < c->n_rooms; i++) {
        size_t n = strlen(c->rooms[i]);

        FUZZ_CHECK(n < ROOM_LEN_MOD);
        memcpy(probe, c->rooms[i], n + 1);
        if (n > 0 && probe[n - 1] == '*')
            probe[--n] = '\0';
        FUZZ_CHECK(proto_jwt_allows_room(c, probe) == 1);
        memcpy(probe + n, "x", 2);
        FUZZ_CHECK(proto_jwt_allows_room(c, probe) == allows(c, probe));
    }
}

/* ---- claims ------------------------------------------------------------------------------- */

static int is_zero(const struct proto_jwt_claims *c)
{
    static const struct proto_jwt_claims zero;

    return memcmp(c, &zero, sizeof(zero)) == 0;
}

/* What jwt.h promises of the claims of a valid token. */
static void check_claims(const struct proto_jwt_claims *c, const struct ctl *ctl)
{
    size_t sub_len = strnlen(c->sub, sizeof(c->sub)), name_len = strnlen(c->name, sizeof(c->name));

    FUZZ_CHECK(sub_len < sizeof(c->sub) && proto_is_user(c->sub, sub_len));
    FUZZ_CHECK(name_len < sizeof(c->name) && (name_len == 0 || proto_is_user(c->name, name_len)));
    FUZZ_CHECK(c->exp + (int64_t)ctl->leeway >= ctl->now);
    FUZZ_CHECK(c->has_rooms == 0 || c->has_rooms == 1);
    FUZZ_CHECK(c->has_rooms ? c->rooms != NULL : c->rooms == NULL && c->n_rooms == 0);
    FUZZ_CHECK(c->n_rooms <= PROTO_JWT_ROOMS_MAX);
    for (size_t i = 0; i < c->n_rooms; i++) {
        FUZZ_CHECK(c->rooms[i] != NULL);
        FUZZ_CHECK(proto_jwt_is_room_pattern(c->rooms[i], strlen(c->rooms[i])));
    }
    check_rooms(c, ctl->room);
}

static void check_string_claim(const cJSON *payload, const char *name, const char *got)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(payload, name);

    FUZZ_CHECK(item ? cJSON_IsString(item) && strcmp(item->valuestring, got) == 0 : !got[0]);
}

/* The claims are what the payload says, nbf included. */
static void check_payload(const struct parts *pt, const struct proto_jwt_claims *c,
                          const struct ctl *ctl)
{
    cJSON *payload = part_json(pt->p[1], pt->len[1]);
    const cJSON *exp = cJSON_GetObjectItemCaseSensitive(payload, "exp");
    const cJSON *nbf = cJSON_GetObjectItemCaseSensitive(payload, "nbf");
    const cJSON *rooms = cJSON_GetObjectItemCaseSensitive(payload, "rooms");

    FUZZ_CHECK(cJSON_IsObject(payload));
    check_string_claim(payload, "sub", c->sub);
    check_string_claim(payload, "name", c->name);
    FUZZ_CHECK(cJSON_IsNumber(exp) && (int64_t)floor(exp->valuedouble) == c->exp);
    FUZZ_CHECK(nbf == NULL || (cJSON_IsNumber(nbf) && floor(nbf->valuedouble) >= 0 &&
                               (int64_t)floor(nbf->valuedouble) <= ctl->now + ctl->leeway));
    FUZZ_CHECK((rooms != NULL) == c->has_rooms);
    FUZZ_CHECK(rooms == NULL || (size_t)cJSON_GetArraySize(rooms) == c->n_rooms);
    for (size_t i = 0; i < c->n_rooms; i++)
        FUZZ_CHECK(strcmp(cJSON_GetArrayItem(rooms, (int)i)->valuestring, c->rooms[i]) == 0);
    cJSON_Delete(payload);
}

/* ---- a verification's result -------------------------------------------------------------- */

/* What must hold of rc and the claims that proto_jwt_verify gave tok[0..len) under key. */
static void check_result(const char *tok, size_t len, int rc, const struct proto_jwt_claims *c,
                         const struct ctl *ctl)
{
    struct parts pt;
    char sig[SIG_B64_LEN + 1];
    int signed_ok;

    FUZZ_CHECK(rc <= PROTO_JWT_OK && rc >= PROTO_JWT_CLAIMS);
    FUZZ_CHECK(strcmp(proto_jwt_strerror(rc), "invalid token") != 0);
    FUZZ_CHECK(rc == PROTO_JWT_OK || is_zero(c));
    if (!split(tok, len, &pt) || len > PROTO_JWT_MAX) {
        FUZZ_CHECK(rc == PROTO_JWT_MALFORMED);
        return;
    }
    expected_sig(tok, pt.len[0] + 1 + pt.len[1], key, sig);
    signed_ok = pt.len[2] == SIG_B64_LEN && memcmp(pt.p[2], sig, SIG_B64_LEN) == 0;
    if (rc == PROTO_JWT_ALGORITHM)
        FUZZ_CHECK(header_alg(&pt) == 0);
    else if (rc == PROTO_JWT_SIGNATURE)
        FUZZ_CHECK(!signed_ok && header_alg(&pt) == 1);
    else if (rc != PROTO_JWT_MALFORMED)
        FUZZ_CHECK(signed_ok && header_alg(&pt) == 1);
    if (rc == PROTO_JWT_OK) {
        check_claims(c, ctl);
        check_payload(&pt, c, ctl);
    }
}

static void run_verify(const struct ctl *ctl, const uint8_t *buf, size_t len)
{
    char *tok = (char *)fuzz_dup(buf, len);
    struct proto_jwt_claims c;
    int rc =
        proto_jwt_verify(tok, len, (const uint8_t *)key, strlen(key), ctl->now, ctl->leeway, &c);

    check_result(tok, len, rc, &c, ctl);
    proto_jwt_claims_clear(&c);
    FUZZ_CHECK(is_zero(&c));
    free(tok);
}

/* ---- signing ------------------------------------------------------------------------------ */

/* What proto_json_parse takes for a JSON object: cJSON's value, then only JSON whitespace. */
/* 1 if the object text (a JSON object) names one member twice: jwt.c refuses those. */
static int names_twice(const uint8_t *text, size_t len)
{
    cJSON *tree = cJSON_ParseWithLength((const char *)text, len);
    int twice = 0;

    for (const cJSON *a = tree ? tree->child : NULL; a && !twice; a = a->next)
        for (const cJSON *b = tree->child; b != a && !twice; b = b->next)
            twice = a->string && b->string && strcmp(a->string, b->string) == 0;
    cJSON_Delete(tree);
    return twice;
}

static int is_object(const uint8_t *text, size_t len)
{
    const char *end = NULL;
    cJSON *tree = cJSON_ParseWithLengthOpts((const char *)text, len, &end, 0);
    int rc = cJSON_IsObject(tree);

    for (const char *p = end; rc && p < (const char *)text + len; p++)
        rc = *p == ' ' || *p == '\t' || *p == '\r' || *p == '\n';
    cJSON_Delete(tree);
    return rc;
}

/* 1 if the JSON text has a \u0000 escape in a string. Outside strings a JSON text that parses
 * has no backslash, so tracking quotes and skipping each escape's character is enough. */
static int has_escaped_nul(const uint8_t *s, size_t len)
{
    int in_string = 0;

    for (size_t i = 0; i < len; i++) {
        if (s[i] == '"')
            in_string = !in_string;
        else if (in_string && s[i] == '\\') {
            if (len - i >= 6 && memcmp(s + i + 1, "u0000", 5) == 0)
                return 1;
            i++;
        }
    }
    return 0;
}

/* A token we signed for text[0..len): header.payload.signature, with the payload the text's
 * base64url and the signature ours; verified, only what the text holds may refuse it. */
static void check_signed(const struct ctl *ctl, const uint8_t *text, size_t len,
                         const char *signed_tok)
{
    size_t tlen = strlen(signed_tok);
    char *tok = (char *)fuzz_dup((const uint8_t *)signed_tok, tlen),
         *want = xmalloc(len / 3 * 4 + 5);
    int bad = tlen > PROTO_JWT_MAX || memchr(text, '\0', len) || has_escaped_nul(text, len) ||
              !proto_utf8_is_valid(text, len) || names_twice(text, len);
    char sig[SIG_B64_LEN + 1];
    struct parts pt;
    struct proto_jwt_claims c;
    int rc;

    FUZZ_CHECK(split(tok, tlen, &pt) && header_alg(&pt) == 1);
    FUZZ_CHECK(encode(text, len, want) == pt.len[1] && memcmp(want, pt.p[1], pt.len[1]) == 0);
    expected_sig(tok, pt.len[0] + 1 + pt.len[1], key, sig);
    FUZZ_CHECK(pt.len[2] == SIG_B64_LEN && memcmp(pt.p[2], sig, SIG_B64_LEN) == 0);
    rc = proto_jwt_verify(tok, tlen, (const uint8_t *)key, strlen(key), ctl->now, ctl->leeway, &c);
    FUZZ_CHECK(bad ? rc == PROTO_JWT_MALFORMED
                   : rc != PROTO_JWT_MALFORMED && rc != PROTO_JWT_ALGORITHM &&
                         rc != PROTO_JWT_SIGNATURE);
    check_result(tok, tlen, rc, &c, ctl);
    proto_jwt_claims_clear(&c);
    /* The signature is checked before the payload is read. */
    rc = proto_jwt_verify(tok, tlen, (const uint8_t *)other_key, strlen(other_key), ctl->now,
                          ctl->leeway, &c);
    FUZZ_CHECK(rc == (tlen > PROTO_JWT_MAX ? PROTO_JWT_MALFORMED : PROTO_JWT_SIGNATURE));
    FUZZ_CHECK(is_zero(&c));
    free(want);
    free(tok);
}

static void run_sign(const struct ctl *ctl, const uint8_t *buf, size_t len)
{
    uint8_t *text = fuzz_dup(buf, len);
    char *tok = proto_jwt_sign((const char *)text, len, (const uint8_t *)key, strlen(key));

    FUZZ_CHECK((tok != NULL) == is_object(text, len));
    if (tok)
        check_signed(ctl, text, len, tok);
    free(tok);
    free(text);
}

/* ---- entry ---------------------------------------------------------------------------------- */

static void read_ctl(struct fuzz_input *in, struct ctl *ctl)
{
    size_t n;

    ctl->sign = fuzz_byte(in) & 1;
    ctl->now = 0;
    for (int i = 0; i < 5; i++)
        ctl->now = ctl->now << 8 | fuzz_byte(in);
    ctl->leeway = (unsigned)fuzz_byte(in) << 8;
    ctl->leeway |= fuzz_byte(in);
    if (ctl->leeway == 0xffff)
        ctl->leeway = UINT_MAX;
    n = fuzz_byte(in) % ROOM_LEN_MOD;
    for (size_t i = 0; i < n; i++)
        ctl->room[i] = (char)fuzz_byte(in);
    ctl->room[n] = '\0';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_input in = {data, size};
    struct ctl ctl;
    size_t room_len;

    read_ctl(&in, &ctl);
    room_len = strlen(ctl.room);
    FUZZ_CHECK(proto_jwt_is_room_pattern(ctl.room, room_len) == is_pattern(ctl.room, room_len));
    if (ctl.sign)
        run_sign(&ctl, in.p, in.len);
    else
        run_verify(&ctl, in.p, in.len);
    return 0;
}
