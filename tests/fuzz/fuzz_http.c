/*
 * Fuzz target: the HTTP request path. The input is a byte stream from a client, cut into
 * the chunks the input chose, fed to gw_http_parser (each chunk in a buffer of its exact
 * size); every complete request goes through gw_handshake_check, gw_handshake_authenticate
 * when the check accepts it (tokens on in two configurations, at a fixed time), and the 101
 * or refusal writer, gw_static_resolve against a public directory made for it in /tmp, and
 * gw_static_serve.
 *
 * Input: byte 0 picks the head limit (bits 0-2), the configuration (bits 3-5, mod 5); then a
 * chunk plan (fuzz.h); the rest is the stream.
 */
#include "tests/fuzz/fuzz.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <http_parser.h>

#include "gateway/config.h"
#include "gateway/handshake.h"
#include "gateway/http.h"
#include "gateway/static.h"
#include "gateway/util.h"
#include "proto/jwt.h"

/* Requests handled from one input, at most (pipelining is bounded by the input anyway). */
#define MAX_REQUESTS 64

static const size_t head_limits[8] = {8192, 8192, 1024, 256, 64, 16, 2, 1};

/* Same-host origins; an allow-list without deflate; any origin; any origin with connect
 * tokens required, then optional. */
#define N_CONFIGS 5
static struct gw_config configs[N_CONFIGS];

/* The token key (make_corpus.py signs the seeds' tokens with it) and the time of every
 * request, Unix seconds. */
#define TOKEN_SECRET "chatbroker-fuzz-key-0123456789abcdef"
#define NOW 1795241718

/* The public directory (absolute, symlinks resolved) and the directory above it. */
static char root[PATH_MAX], above[PATH_MAX];

/* ---- set-up ------------------------------------------------------------------------------ */

/* tokens: NULL for none, else "required" or "optional" with TOKEN_SECRET. */
static void load_config(struct gw_config *cfg, const char *origins, const char *deflate,
                        const char *tokens)
{
    /* -Wwrite-strings makes literals const; gw_config_load only reads argv. */
    char *const argv[] = {(char *)"fuzz_http",
                          (char *)"--public-dir",
                          (char *)".",
                          (char *)"--subprotocols",
                          (char *)"chat, superchat",
                          (char *)"--allowed-origins",
                          (char *)origins,
                          (char *)"--deflate",
                          (char *)deflate,
                          (char *)"--token-secret",
                          (char *)TOKEN_SECRET,
                          (char *)"--tokens",
                          (char *)tokens,
                          NULL};
    char err[256];

    gw_config_init(cfg);
    if (gw_config_load(cfg, tokens ? 13 : 9, argv, NULL, err, sizeof(err)) != GW_CONFIG_RUN) {
        fprintf(stderr, "fuzz_http: config: %s\n", err);
        abort();
    }
}

/* Write name in dir, unless it exists (another process may be reading it). */
static void make_file(const char *dir, const char *name, const char *text)
{
    char path[PATH_MAX];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "wx");
    if (f == NULL && errno == EEXIST)
        return;
    if (f == NULL || fputs(text, f) < 0 || fclose(f) != 0)
        abort();
}

static void make_dir(const char *path)
{
    if (mkdir(path, 0700) < 0 && errno != EEXIST)
        abort();
}

static void make_link(const char *target, const char *dir, const char *name)
{
    char path[PATH_MAX];

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    if (symlink(target, path) < 0 && errno != EEXIST)
        abort();
}

/*
 * A public directory with files, a sub-directory, a dot-file, a link inside, links leading
 * out, and a secret next to it that no request path may reach. It has a fixed name per user
 * and is made again (idempotently) by every process, so that crashed runs and libFuzzer's
 * child processes leave nothing behind; nothing writes to it afterwards.
 */
static void make_public_dir(void)
{
    char dir[64], sub[PATH_MAX + 8];
    char *real;

    snprintf(dir, sizeof(dir), "/tmp/chat-fuzz-http-%u", (unsigned)getuid());
    make_dir(dir);
    real = realpath(dir, NULL);
    if (real == NULL)
        abort();
    snprintf(above, sizeof(above), "%s", real);
    free(real);
    make_file(above, "secret", "not for clients\n");
    snprintf(root, sizeof(root), "%s/public", above);
    snprintf(sub, sizeof(sub), "%s/sub", root);
    make_dir(root);
    make_dir(sub);
    make_file(root, "index.html", "<!doctype html><title>chat</title>\n");
    make_file(root, "app.js", "console.log('chat');\n");
    make_file(root, ".env", "SECRET=1\n");
    make_file(sub, "index.html", "<p>sub</p>\n");
    make_file(sub, "a b.txt", "spaces\n");
    make_link("sub/a b.txt", root, "link.txt");
    make_link("../secret", root, "secret.txt");
    make_link("/etc", root, "etc");
    make_link("..", sub, "up");
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    load_config(&configs[0], "", "on", NULL);
    load_config(&configs[1], "https://chat.example.org, http://localhost:8080", "off", NULL);
    load_config(&configs[2], "*", "on", NULL);
    load_config(&configs[3], "*", "on", "required");
    load_config(&configs[4], "*", "on", "optional");
    make_public_dir();
    return 0;
}

/* ---- checks ------------------------------------------------------------------------------ */

/* Read every byte the request points to, so that AddressSanitizer sees a bad pointer. Header
 * values come trimmed (a chunked body's trailer once reached the request's headers
 * untrimmed; crashes/fuzz_http/trailer-header-untrimmed keeps that input). */
static unsigned touch(const struct gw_http_request *req)
{
    unsigned sum = 0;

    FUZZ_CHECK(req->method == HTTP_GET || req->method == HTTP_HEAD);
    FUZZ_CHECK(req->major == 1);
    FUZZ_CHECK(req->n_headers <= GW_HTTP_MAX_HEADERS);
    FUZZ_CHECK(req->path != NULL || req->path_len == 0);
    for (size_t i = 0; i < req->path_len; i++)
        sum += (uint8_t)req->path[i];
    for (size_t i = 0; i < req->n_headers; i++) {
        const struct gw_http_header *h = &req->headers[i];

        for (size_t j = 0; j < h->name_len; j++)
            sum += (uint8_t)h->name[j];
        for (size_t j = 0; j < h->value_len; j++)
            sum += (uint8_t)h->value[j];
        FUZZ_CHECK(h->name != NULL && h->value != NULL);
        if (h->value_len == 0)
            continue;
        FUZZ_CHECK(h->value[0] != ' ' && h->value[0] != '\t');
        FUZZ_CHECK(h->value[h->value_len - 1] != ' ' && h->value[h->value_len - 1] != '\t');
    }
    return sum;
}

/* A response head is status line and header lines, each ended by CRLF, then an empty line:
 * no bare CR or LF (no header injection), no NUL. Returns the head's length and sets *status
 * from the status line. */
static size_t check_head(struct evbuffer *out, int *status)
{
    size_t len = evbuffer_get_length(out);
    const char *buf = (const char *)evbuffer_pullup(out, -1);
    const char *end = memmem(buf, len, "\r\n\r\n", 4);

    FUZZ_CHECK(end != NULL);
    FUZZ_CHECK(len > 13 && memcmp(buf, "HTTP/1.1 ", 9) == 0 && buf[12] == ' ');
    *status = atoi(buf + 9);
    for (const char *p = buf; p < end + 2; p++) {
        FUZZ_CHECK(*p != '\0');
        if (*p == '\r')
            FUZZ_CHECK(p[1] == '\n');
        if (*p == '\n')
            FUZZ_CHECK(p > buf && p[-1] == '\r');
    }
    return (size_t)(end + 4 - buf);
}

/* The chosen subprotocol (from the configuration or a "token." entry) is one whole header
 * line of the 101, byte for byte. */
static void check_subprotocol(const struct gw_handshake *hs, struct evbuffer *out)
{
    static const char name[] = "\r\nSec-WebSocket-Protocol: ";
    size_t len = evbuffer_get_length(out);
    const char *buf = (const char *)evbuffer_pullup(out, -1);
    const char *line = memmem(buf, len, name, sizeof(name) - 1);

    FUZZ_CHECK((line != NULL) == (hs->subprotocol != NULL));
    if (line == NULL)
        return;
    line += sizeof(name) - 1;
    FUZZ_CHECK(hs->subprotocol_len > 0 && (size_t)(buf + len - line) >= hs->subprotocol_len + 4);
    FUZZ_CHECK(memcmp(line, hs->subprotocol, hs->subprotocol_len) == 0);
    FUZZ_CHECK(memcmp(line + hs->subprotocol_len, "\r\n", 2) == 0);
}

/* 1 if s[0..len) is one of the configured subprotocols or a token entry, else 0. */
static int is_subprotocol(const char *s, size_t len)
{
    return (len == 4 && memcmp(s, "chat", 4) == 0) ||
           (len == 9 && memcmp(s, "superchat", 9) == 0) || (len > 6 && memcmp(s, "token.", 6) == 0);
}

/* A request the check accepted, with connect tokens: -1 only as a 401 with a reason, 1 only
 * with a user id, 0 only when tokens are off or optional; claims empty unless 1. */
static void check_authenticate(const struct gw_config *cfg, const struct gw_http_request *req,
                               struct gw_handshake *hs)
{
    static const struct proto_jwt_claims zero;
    struct proto_jwt_claims claims;
    int rc = gw_handshake_authenticate(cfg, req, NOW, hs, &claims);

    FUZZ_CHECK(rc == -1 || rc == 0 || rc == 1);
    FUZZ_CHECK(rc == -1 ? hs->status == 401 && hs->reason != NULL : hs->status == 101);
    FUZZ_CHECK(rc == 0 || cfg->token_secret != NULL);
    FUZZ_CHECK(rc != 0 || cfg->token_secret == NULL || cfg->token_optional);
    FUZZ_CHECK(rc == 1 ? claims.sub[0] != '\0' : memcmp(&claims, &zero, sizeof(zero)) == 0);
    FUZZ_CHECK(!hs->subprotocol || is_subprotocol(hs->subprotocol, hs->subprotocol_len));
    proto_jwt_claims_clear(&claims);
}

static void check_handshake(const struct gw_config *cfg, const struct gw_http_request *req)
{
    struct evbuffer *out = evbuffer_new();
    struct gw_handshake hs;
    int status;

    gw_handshake_check(cfg, req, &hs);
    FUZZ_CHECK(hs.reason != NULL);
    if (hs.status == 101)
        check_authenticate(cfg, req, &hs);
    if (hs.status == 101) {
        FUZZ_CHECK(strlen(hs.accept) == GW_HANDSHAKE_ACCEPT_LEN - 1);
        FUZZ_CHECK(strlen(hs.extensions) < GW_DEFLATE_RESPONSE_MAX);
        FUZZ_CHECK(!hs.deflate.enabled || cfg->deflate);
        FUZZ_CHECK(hs.deflate.enabled == (hs.extensions[0] != '\0'));
        gw_handshake_write(&hs, out);
        FUZZ_CHECK(check_head(out, &status) == evbuffer_get_length(out));
        FUZZ_CHECK(status == 101);
        check_subprotocol(&hs, out);
    } else {
        FUZZ_CHECK(hs.status == 400 || hs.status == 401 || hs.status == 403 || hs.status == 405 ||
                   hs.status == 426);
        FUZZ_CHECK(hs.status != 401 || cfg->token_secret != NULL);
        gw_handshake_write_error(&hs, out);
        size_t head = check_head(out, &status);
        FUZZ_CHECK(status == hs.status);
        FUZZ_CHECK(evbuffer_get_length(out) == head + strlen(hs.reason) + 1);
    }
    evbuffer_free(out);
}

static int is_inside(const char *path)
{
    size_t n = strlen(root);
    const char *base = strrchr(path, '/');

    return strncmp(path, root, n) == 0 && path[n] == '/' && base && base[1] != '.';
}

static void check_static(const struct gw_http_request *req)
{
    char *file = (char *)"unset";
    struct evbuffer *out = evbuffer_new();
    struct stat st;
    int status, rc = gw_static_resolve(root, req->path, req->path_len, &file);

    FUZZ_CHECK(rc == 0 || rc == 301 || rc == 400 || rc == 404);
    if (rc == 0) {
        FUZZ_CHECK(file != NULL && is_inside(file));
        FUZZ_CHECK(stat(file, &st) == 0 && S_ISREG(st.st_mode));
        free(file);
    } else {
        FUZZ_CHECK(file == NULL);
    }
    gw_static_serve(root, req, out);
    check_head(out, &status);
    /* 304 when If-Modified-Since names the file's time. */
    FUZZ_CHECK(status == (rc == 0 ? 200 : rc) || (rc == 0 && status == 304));
    evbuffer_free(out);
}

/* ---- the stream -------------------------------------------------------------------------- */

/* Handle the request p holds. Returns 1 if the connection carries on with HTTP, else 0. */
static int on_request(const struct gw_config *cfg, struct gw_http_parser *p)
{
    const struct gw_http_request *req = gw_http_parser_request(p);

    FUZZ_CHECK(req != NULL);
    FUZZ_CHECK(!gw_http_parser_is_partial(p));
    touch(req);
    check_handshake(cfg, req);
    if (!req->upgrade)
        check_static(req);
    if (req->upgrade || !req->keep_alive)
        return 0; /* WebSocket frames follow, or the connection closes */
    gw_http_parser_next(p);
    return 1;
}

static void on_error(struct gw_http_parser *p)
{
    const char *reason = NULL;
    int status = gw_http_parser_error(p, &reason);
    size_t consumed = 99;

    FUZZ_CHECK(status == 400 || status == 405 || status == 413 || status == 431 || status == 505);
    FUZZ_CHECK(reason != NULL);
    FUZZ_CHECK(gw_http_parser_feed(p, (const uint8_t *)"GET", 3, &consumed) == GW_HTTP_ERROR);
    FUZZ_CHECK(consumed == 0);
}

/* Feed chunk[0..len); return 1 to go on with the next chunk, 0 when the stream ended. */
static int feed_chunk(const struct gw_config *cfg, struct gw_http_parser *p, const uint8_t *chunk,
                      size_t len, size_t *requests)
{
    while (len > 0) {
        size_t consumed = 0;
        enum gw_http_result rc = gw_http_parser_feed(p, chunk, len, &consumed);

        FUZZ_CHECK(consumed <= len);
        chunk += consumed;
        len -= consumed;
        if (rc == GW_HTTP_ERROR) {
            on_error(p);
            return 0;
        }
        if (rc == GW_HTTP_MORE) {
            FUZZ_CHECK(len == 0);
            return 1;
        }
        FUZZ_CHECK(rc == GW_HTTP_REQUEST);
        if (++*requests > MAX_REQUESTS || !on_request(cfg, p))
            return 0;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_input in = {data, size};
    uint8_t flags = fuzz_byte(&in);
    const struct gw_config *cfg = &configs[((flags >> 3) & 7) % N_CONFIGS];
    struct gw_http_parser *p = gw_http_parser_new(head_limits[flags & 7]);
    struct fuzz_chunks plan;
    size_t requests = 0;

    fuzz_chunks_init(&plan, &in);
    while (in.len > 0) {
        size_t n = fuzz_chunks_next(&plan, in.len);
        uint8_t *chunk = fuzz_dup(in.p, n);
        int more = feed_chunk(cfg, p, chunk, n, &requests);

        free(chunk);
        in.p += n;
        in.len -= n;
        if (!more)
            break;
    }
    gw_http_parser_is_partial(p);
    gw_http_parser_free(p);
    return 0;
}
