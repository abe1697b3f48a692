/*
 * Unit tests of gateway/handshake.h: Sec-WebSocket-Accept, origin and subprotocol rules,
 * every check of gw_handshake_check on requests parsed from raw text by gw_http_parser, and
 * the text of the 101 answer and of the refusals.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/buffer.h>

#include "gateway/config.h"
#include "gateway/handshake.h"
#include "gateway/http.h"

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

/* RFC 6455 1.3 and 4.2.2 examples. */
#define RFC_KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define RFC_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

/* What a test holds; the teardown of every test frees it all, so a failed assertion leaks
 * nothing. */
static struct gw_config cfg;
static struct gw_http_parser *parser;
static struct evbuffer *out_buf;
static char *answer; /* the last text taken from out_buf */

static int cleanup(void **state)
{
    (void)state;
    gw_config_clear(&cfg);
    gw_http_parser_free(parser);
    parser = NULL;
    if (out_buf)
        evbuffer_free(out_buf);
    out_buf = NULL;
    free(answer);
    answer = NULL;
    return 0;
}

/* Load cfg from args (NULL-terminated, may be NULL) with the current directory as public
 * directory and no environment. */
static void load_config(const char *const *args)
{
    char *argv[16] = {(char *)"chat-gateway", (char *)"--public-dir", (char *)"."};
    int argc = 3;
    char err[256];

    for (size_t i = 0; args && args[i]; i++) {
        assert_true(argc < 15);
        argv[argc++] = (char *)args[i];
    }
    argv[argc] = NULL;
    gw_config_clear(&cfg);
    gw_config_init(&cfg);
    if (gw_config_load(&cfg, argc, argv, NULL, err, sizeof(err)) != GW_CONFIG_RUN)
        fail_msg("config: %s", err);
}

/* Parse the request line and header lines (each ending "\r\n") into a request. */
static const struct gw_http_request *parse(const char *line, const char *headers)
{
    char raw[4096];
    size_t consumed;
    int n = snprintf(raw, sizeof(raw), "%s\r\n%s\r\n", line, headers);

    assert_true(n > 0 && (size_t)n < sizeof(raw));
    gw_http_parser_free(parser);
    parser = gw_http_parser_new(8192);
    if (gw_http_parser_feed(parser, (const uint8_t *)raw, (size_t)n, &consumed) != GW_HTTP_REQUEST)
        fail_msg("request did not parse:\n%s", raw);
    return gw_http_parser_request(parser);
}

/* ---- gw_handshake_accept_key ------------------------------------------------------------- */

struct key_case {
    const char *key;
    const char *accept; /* NULL: refused */
};

static const struct key_case key_cases[] = {
    {RFC_KEY, RFC_ACCEPT},
    {"x3JJHMbDL1EzLkh9GBhXDw==", "HSmrc0sMlYUkAGmm5OPpG2HaGWk="},
    {"AAAAAAAAAAAAAAAAAAAAAA==", "ICX+Yqv66kxgM0FcWaLWlFLwTAI="},
    {"/////////////////////w==", "XXpj4jYzLM2yUE0C7TIgMwTQh2g="},
    {"", NULL},
    {"dGhlIHNhbXBsZSBub25jZQ=", NULL},      /* 23 characters */
    {"dGhlIHNhbXBsZSBub25jZQ===", NULL},    /* 25 */
    {"dGhlIHNhbXBsZSBub25jZQ", NULL},       /* padding missing */
    {"dGhlIHNhbXBsZSBub25jZQAA", NULL},     /* 24 characters, no padding: 18 bytes */
    {"YWFhYWFhYWFhYWFhYWFh", NULL},         /* 15 bytes */
    {"YWFhYWFhYWFhYWFhYWFhYWE=", NULL},     /* 17 bytes */
    {"YWFhYWFhYWFhYWFhYWFhYWFh", NULL},     /* 18 bytes */
    {"dGhlIHNhbXBsZSBub25jZ!==", NULL},     /* bad alphabet */
    {"dGhlIHNhbXBsZSBub25jZ-==", NULL},     /* base64url is not base64 */
    {"dGhlIHNhbXBsZSBub25j_Q==", NULL},     /* base64url */
    {"dGhlIHNh bXBsZSBub25jZQ==", NULL},    /* space inside */
    {"dGhlIHNhbXBsZSBub25\njZQ==", NULL},   /* line break inside */
    {"dGhlIHNhbXBsZSBub25jZQ==\r\n", NULL}, /* trailing CRLF */
    {"dGhlIHNhbXBsZSBub25jZQ==dGhlIHNhbXBsZSBub25jZQ==", NULL},
};

static void test_accept_key(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_ELEMS(key_cases); i++) {
        const struct key_case *c = &key_cases[i];
        char out[GW_HANDSHAKE_ACCEPT_LEN];
        int rc = gw_handshake_accept_key(c->key, strlen(c->key), out);

        if (rc != (c->accept ? 0 : -1))
            fail_msg("accept_key(\"%s\") = %d", c->key, rc);
        if (c->accept && strcmp(out, c->accept) != 0)
            fail_msg("accept_key(\"%s\") gave %s, want %s", c->key, out, c->accept);
    }
}

/* The key is key[0..len): the bytes after it do not count. */
static void test_accept_key_respects_len(void **state)
{
    char out[GW_HANDSHAKE_ACCEPT_LEN];

    (void)state;
    assert_int_equal(gw_handshake_accept_key(RFC_KEY "trailing", 24, out), 0);
    assert_string_equal(out, RFC_ACCEPT);
    assert_int_equal(gw_handshake_accept_key(RFC_KEY, 23, out), -1);
}

/* "=" is padding, only at the end: a key with "=" inside is not base64 of 16 bytes. */
static void test_accept_key_padding_inside(void **state)
{
    static const char *const keys[] = {
        "dGhl=HNhbXBsZSBub25jZQ==", "dGhlIHNhbXBsZSBub25j=Q==", "=GhlIHNhbXBsZSBub25jZQ==",
        "dGhlIHNhbXBsZSB==25jZQ==", "========================",
    };
    char report[512] = "";

    (void)state;
    for (size_t i = 0; i < N_ELEMS(keys); i++) {
        char out[GW_HANDSHAKE_ACCEPT_LEN];
        size_t used = strlen(report);

        if (gw_handshake_accept_key(keys[i], strlen(keys[i]), out) != -1)
            snprintf(report + used, sizeof(report) - used, "\n  \"%s\" accepted (gave %s)", keys[i],
                     out);
    }
    if (report[0])
        fail_msg("keys with '=' inside:%s", report);
}

/* ---- gw_handshake_is_origin_allowed ------------------------------------------------------ */

struct origin_case {
    const char *origin;
    const char *host;
    int allowed;
};

static void check_origins(const struct origin_case *cases, size_t n, const char *what)
{
    for (size_t i = 0; i < n; i++) {
        const struct origin_case *c = &cases[i];
        int got = gw_handshake_is_origin_allowed(&cfg, c->origin, strlen(c->origin), c->host,
                                                 strlen(c->host));

        if (got != c->allowed)
            fail_msg("%s: origin \"%s\" host \"%s\": %d, want %d", what, c->origin, c->host, got,
                     c->allowed);
    }
}

/* No list configured: only the request's own host. */
static const struct origin_case same_host_cases[] = {
    {"http://example.com", "example.com", 1},
    {"https://example.com", "example.com", 1},
    {"http://EXAMPLE.com", "example.com", 1},
    {"http://example.com", "Example.COM", 1},
    {"http://example.com:8080", "example.com:8080", 1},
    {"http://127.0.0.1:8080", "127.0.0.1:8080", 1},
    {"http://[::1]:8080", "[::1]:8080", 1},
    {"http://example.com:8080", "example.com", 0},
    {"http://example.com", "example.com:8080", 0},
    {"http://example.com:8081", "example.com:8080", 0},
    {"http://evil.example", "example.com", 0},
    {"http://example.com.evil.example", "example.com", 0},
    {"http://evil.example/example.com", "example.com", 0},
    {"http://example.co", "example.com", 0},
    {"http://xexample.com", "example.com", 0},
    {"http://example.com/", "example.com", 0},
    {"null", "example.com", 0},
    {"", "example.com", 0},
    {"example.com", "example.com", 0},
};

static void test_origin_same_host(void **state)
{
    (void)state;
    load_config(NULL);
    check_origins(same_host_cases, N_ELEMS(same_host_cases), "same host");
}

/* A list replaces the same-host rule; entries compare case-insensitively, scheme and port
 * included. */
static const struct origin_case list_cases[] = {
    {"https://a.example", "example.com", 1},
    {"HTTPS://A.EXAMPLE", "example.com", 1},
    {"http://b.example:8080", "example.com", 1},
    {"http://B.example:8080", "b.example:8080", 1},
    {"http://a.example", "example.com", 0},
    {"https://a.example:443", "example.com", 0},
    {"http://b.example", "example.com", 0},
    {"http://b.example:8081", "example.com", 0},
    {"https://a.example.evil", "example.com", 0},
    {"https://a.exampl", "example.com", 0},
    {"http://example.com", "example.com", 0},
    {"null", "example.com", 0},
    {"*", "example.com", 0},
};

static void test_origin_list(void **state)
{
    const char *args[] = {"--allowed-origins", "https://a.example, http://B.example:8080", NULL};

    (void)state;
    load_config(args);
    check_origins(list_cases, N_ELEMS(list_cases), "list");
}

static const struct origin_case any_cases[] = {
    {"https://a.example", "example.com", 1},
    {"http://example.com", "example.com", 1},
    {"null", "example.com", 1},
    {"", "example.com", 1},
};

static void test_origin_any(void **state)
{
    const char *args[] = {"--allowed-origins", "*", NULL};

    (void)state;
    load_config(args);
    check_origins(any_cases, N_ELEMS(any_cases), "any");
}

/* ---- gw_handshake_select_subprotocol ----------------------------------------------------- */

static void test_select_subprotocol(void **state)
{
    static char *server[] = {(char *)"chat.v2", (char *)"chat.v1", (char *)"Echo", NULL};
    static char *none[] = {NULL};
    static const struct {
        const char *offered;
        int want; /* index into server, or -1 */
    } cases[] = {
        {"chat.v1, chat.v2", 0},
        {"chat.v2, chat.v1", 0},
        {"chat.v1", 1},
        {"x, chat.v1, y", 1},
        {" chat.v1 ,\tchat.v2 ", 0},
        {",,chat.v1,,", 1},
        {"Echo", 2},
        {"echo", -1},
        {"CHAT.V2", -1},
        {"Chat.v1", -1},
        {"chat.v", -1},
        {"chat.v22", -1},
        {"chat.v1x, xchat.v2", -1},
        {"chat v1", -1},
        {"", -1},
        {",", -1},
        {"other", -1},
    };

    (void)state;
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        const char *got =
            gw_handshake_select_subprotocol(server, cases[i].offered, strlen(cases[i].offered));
        const char *want = cases[i].want < 0 ? NULL : server[cases[i].want];

        /* the result is the server's own string, not a copy */
        if (got != want)
            fail_msg("offered \"%s\": got %s, want %s", cases[i].offered, got ? got : "NULL",
                     want ? want : "NULL");
    }
    assert_null(gw_handshake_select_subprotocol(none, "chat.v1", 7));
    /* offered[0..len) only */
    assert_ptr_equal(gw_handshake_select_subprotocol(server, "chat.v1, chat.v2", 7), server[1]);
}

/* ---- gw_handshake_check ------------------------------------------------------------------ */

#define HOST "Host: example.com\r\n"
#define UPGRADE "Upgrade: websocket\r\n"
#define CONNECTION "Connection: Upgrade\r\n"
#define KEY "Sec-WebSocket-Key: " RFC_KEY "\r\n"
#define VERSION "Sec-WebSocket-Version: 13\r\n"
#define GOOD HOST UPGRADE CONNECTION KEY VERSION
#define GET "GET /ws HTTP/1.1"

enum cfg_kind {
    CFG_DEFAULT = 0,  /* no origin list, no subprotocols */
    CFG_SUBPROTOCOLS, /* chat.v2, chat.v1 */
    CFG_ORIGINS,      /* https://app.example */
};

struct check_case {
    const char *name;
    const char *line;
    const char *headers;
    enum cfg_kind cfg;
    int status;
    const char *subprotocol; /* when 101 */
};

static const struct check_case check_cases[] = {
    {"valid", GET, GOOD, CFG_DEFAULT, 101, NULL},
    {"valid, any path", "GET /other?x=1 HTTP/1.1", GOOD, CFG_DEFAULT, 101, NULL},
    /* method and version */
    {"HEAD", "HEAD /ws HTTP/1.1", GOOD, CFG_DEFAULT, 405, NULL},
    {"HTTP/1.0", "GET /ws HTTP/1.0", GOOD, CFG_DEFAULT, 400, NULL},
    /* Host */
    {"no Host", GET, UPGRADE CONNECTION KEY VERSION, CFG_DEFAULT, 400, NULL},
    {"two Hosts", GET, HOST GOOD, CFG_DEFAULT, 400, NULL},
    {"two Hosts, different", GET, "Host: other.example\r\n" GOOD, CFG_DEFAULT, 400, NULL},
    {"empty Host", GET, "Host:\r\n" UPGRADE CONNECTION KEY VERSION, CFG_DEFAULT, 400, NULL},
    /* Upgrade */
    {"Upgrade case", GET, HOST "Upgrade: WebSocket\r\n" CONNECTION KEY VERSION, CFG_DEFAULT, 101,
     NULL},
    {"Upgrade list", GET, HOST "Upgrade: h2c, WEBSOCKET\r\n" CONNECTION KEY VERSION, CFG_DEFAULT,
     101, NULL},
    {"Upgrade list, spaces", GET,
     HOST "Upgrade: foo ,  websocket  , bar\r\n" CONNECTION KEY VERSION, CFG_DEFAULT, 101, NULL},
    {"no Upgrade", GET, HOST CONNECTION KEY VERSION, CFG_DEFAULT, 400, NULL},
    {"Upgrade other", GET, HOST "Upgrade: h2c\r\n" CONNECTION KEY VERSION, CFG_DEFAULT, 400, NULL},
    {"Upgrade prefix", GET, HOST "Upgrade: websocket2\r\n" CONNECTION KEY VERSION, CFG_DEFAULT, 400,
     NULL},
    {"Upgrade empty", GET, HOST "Upgrade:\r\n" CONNECTION KEY VERSION, CFG_DEFAULT, 400, NULL},
    /* Connection */
    {"Connection list", GET, HOST UPGRADE "Connection: keep-alive, Upgrade\r\n" KEY VERSION,
     CFG_DEFAULT, 101, NULL},
    {"Connection lower", GET, HOST UPGRADE "Connection: upgrade\r\n" KEY VERSION, CFG_DEFAULT, 101,
     NULL},
    {"Connection list upper", GET, HOST UPGRADE "Connection: UPGRADE,keep-alive\r\n" KEY VERSION,
     CFG_DEFAULT, 101, NULL},
    {"no Connection", GET, HOST UPGRADE KEY VERSION, CFG_DEFAULT, 400, NULL},
    {"Connection close", GET, HOST UPGRADE "Connection: close\r\n" KEY VERSION, CFG_DEFAULT, 400,
     NULL},
    {"Connection Upgraded", GET, HOST UPGRADE "Connection: Upgraded\r\n" KEY VERSION, CFG_DEFAULT,
     400, NULL},
    /* Sec-WebSocket-Version */
    {"version 8", GET, HOST UPGRADE CONNECTION KEY "Sec-WebSocket-Version: 8\r\n", CFG_DEFAULT, 426,
     NULL},
    {"version list", GET, HOST UPGRADE CONNECTION KEY "Sec-WebSocket-Version: 13, 8\r\n",
     CFG_DEFAULT, 426, NULL},
    {"version 130", GET, HOST UPGRADE CONNECTION KEY "Sec-WebSocket-Version: 130\r\n", CFG_DEFAULT,
     426, NULL},
    {"no version", GET, HOST UPGRADE CONNECTION KEY, CFG_DEFAULT, 426, NULL},
    {"two versions", GET, GOOD VERSION, CFG_DEFAULT, 426, NULL},
    {"version with spaces", GET, HOST UPGRADE CONNECTION KEY "Sec-WebSocket-Version:  13 \r\n",
     CFG_DEFAULT, 101, NULL},
    /* Sec-WebSocket-Key */
    {"no key", GET, HOST UPGRADE CONNECTION VERSION, CFG_DEFAULT, 400, NULL},
    {"two keys", GET, GOOD KEY, CFG_DEFAULT, 400, NULL},
    {"short key", GET, HOST UPGRADE CONNECTION "Sec-WebSocket-Key: abc\r\n" VERSION, CFG_DEFAULT,
     400, NULL},
    {"key of 17 bytes", GET,
     HOST UPGRADE CONNECTION "Sec-WebSocket-Key: YWFhYWFhYWFhYWFhYWFhYWE=\r\n" VERSION, CFG_DEFAULT,
     400, NULL},
    {"empty key", GET, HOST UPGRADE CONNECTION "Sec-WebSocket-Key:\r\n" VERSION, CFG_DEFAULT, 400,
     NULL},
    /* Origin */
    {"same origin", GET, GOOD "Origin: http://example.com\r\n", CFG_DEFAULT, 101, NULL},
    {"same origin, https", GET, GOOD "Origin: https://Example.com\r\n", CFG_DEFAULT, 101, NULL},
    {"other origin", GET, GOOD "Origin: http://evil.example\r\n", CFG_DEFAULT, 403, NULL},
    {"origin port", GET, GOOD "Origin: http://example.com:8080\r\n", CFG_DEFAULT, 403, NULL},
    {"origin null", GET, GOOD "Origin: null\r\n", CFG_DEFAULT, 403, NULL},
    {"listed origin", GET, GOOD "Origin: https://app.example\r\n", CFG_ORIGINS, 101, NULL},
    {"own host, not listed", GET, GOOD "Origin: http://example.com\r\n", CFG_ORIGINS, 403, NULL},
    {"no origin (not a browser)", GET, GOOD, CFG_ORIGINS, 101, NULL},
    /* Sec-WebSocket-Protocol */
    {"no subprotocol offered", GET, GOOD, CFG_SUBPROTOCOLS, 101, NULL},
    {"server preference", GET, GOOD "Sec-WebSocket-Protocol: chat.v1, chat.v2\r\n",
     CFG_SUBPROTOCOLS, 101, "chat.v2"},
    {"only v1", GET, GOOD "Sec-WebSocket-Protocol: chat.v1\r\n", CFG_SUBPROTOCOLS, 101, "chat.v1"},
    {"unknown subprotocol", GET, GOOD "Sec-WebSocket-Protocol: mqtt\r\n", CFG_SUBPROTOCOLS, 101,
     NULL},
    {"subprotocol case", GET, GOOD "Sec-WebSocket-Protocol: CHAT.V1\r\n", CFG_SUBPROTOCOLS, 101,
     NULL},
    {"subprotocol spaces", GET, GOOD "Sec-WebSocket-Protocol:  x ,  chat.v1 \r\n", CFG_SUBPROTOCOLS,
     101, "chat.v1"},
    {"offered, none configured", GET, GOOD "Sec-WebSocket-Protocol: chat.v1\r\n", CFG_DEFAULT, 101,
     NULL},
};

static void load_kind(enum cfg_kind kind)
{
    static const char *const subprotocols[] = {"--subprotocols", "chat.v2,chat.v1", NULL};
    static const char *const origins[] = {"--allowed-origins", "https://app.example", NULL};

    load_config(kind == CFG_SUBPROTOCOLS ? subprotocols : kind == CFG_ORIGINS ? origins : NULL);
}

/* Run every case, then fail once listing each case that went wrong. */
static void run_check_cases(const struct check_case *cases, size_t n)
{
    char report[4096] = "";

    for (size_t i = 0; i < n; i++) {
        const struct check_case *c = &cases[i];
        const char *want_sub = c->status == 101 ? c->subprotocol : NULL;
        const char *got_sub;
        struct gw_handshake hs;
        size_t used = strlen(report);

        load_kind(c->cfg);
        memset(&hs, 0xa5, sizeof(hs));
        gw_handshake_check(&cfg, parse(c->line, c->headers), &hs);
        assert_non_null(hs.reason);
        got_sub = hs.status == 101 ? hs.subprotocol : NULL;
        if (hs.status != c->status || (hs.status == 101 && strcmp(hs.accept, RFC_ACCEPT) != 0) ||
            (want_sub == NULL) != (got_sub == NULL) || (want_sub && strcmp(want_sub, got_sub) != 0))
            snprintf(report + used, sizeof(report) - used,
                     "\n  %s: status %d (%s) subprotocol %s; want %d, %s", c->name, hs.status,
                     hs.reason, got_sub ? got_sub : "none", c->status,
                     want_sub ? want_sub : "none");
    }
    if (report[0])
        fail_msg("%s", report);
}

static void test_check(void **state)
{
    (void)state;
    run_check_cases(check_cases, N_ELEMS(check_cases));
}

/*
 * Repeated list headers form one list (RFC 9110 5.3): a client may send the tokens or the
 * offered subprotocols in several header lines, and the server's preference still decides.
 */
static const struct check_case repeated_cases[] = {
    {"Connection over two lines", GET,
     HOST UPGRADE "Connection: keep-alive\r\nConnection: Upgrade\r\n" KEY VERSION, CFG_DEFAULT, 101,
     NULL},
    {"Upgrade over two lines", GET,
     HOST "Upgrade: h2c\r\nUpgrade: websocket\r\n" CONNECTION KEY VERSION, CFG_DEFAULT, 101, NULL},
    {"subprotocols over two lines", GET,
     GOOD "Sec-WebSocket-Protocol: chat.v1\r\nSec-WebSocket-Protocol: chat.v2\r\n",
     CFG_SUBPROTOCOLS, 101, "chat.v2"},
};

static void test_check_repeated_list_headers(void **state)
{
    (void)state;
    run_check_cases(repeated_cases, N_ELEMS(repeated_cases));
}

/* ---- answers ----------------------------------------------------------------------------- */

/* Move what out_buf holds into answer, as a string. */
static const char *take_answer(void)
{
    size_t len = evbuffer_get_length(out_buf);

    free(answer);
    answer = calloc(1, len + 1);
    assert_non_null(answer);
    evbuffer_remove(out_buf, answer, len);
    assert_int_equal(strlen(answer), len);
    return answer;
}

static void test_write_101(void **state)
{
    static const char want_plain[] = "HTTP/1.1 101 Switching Protocols\r\n"
                                     "Server: chatbroker\r\n"
                                     "Upgrade: websocket\r\n"
                                     "Connection: Upgrade\r\n"
                                     "Sec-WebSocket-Accept: " RFC_ACCEPT "\r\n"
                                     "\r\n";
    static const char want_sub[] = "HTTP/1.1 101 Switching Protocols\r\n"
                                   "Server: chatbroker\r\n"
                                   "Upgrade: websocket\r\n"
                                   "Connection: Upgrade\r\n"
                                   "Sec-WebSocket-Accept: " RFC_ACCEPT "\r\n"
                                   "Sec-WebSocket-Protocol: chat.v2\r\n"
                                   "\r\n";
    struct gw_handshake hs;

    (void)state;
    out_buf = evbuffer_new();
    load_kind(CFG_SUBPROTOCOLS);
    gw_handshake_check(&cfg, parse(GET, GOOD), &hs);
    assert_int_equal(hs.status, 101);
    gw_handshake_write(&hs, out_buf);
    assert_string_equal(take_answer(), want_plain);
    gw_handshake_check(&cfg, parse(GET, GOOD "Sec-WebSocket-Protocol: chat.v1, chat.v2\r\n"), &hs);
    gw_handshake_write(&hs, out_buf);
    assert_string_equal(take_answer(), want_sub);
}

struct error_answer_case {
    const char *name;
    const char *line;
    const char *headers;
    int status;
    const char *status_line;
    int has_version; /* Sec-WebSocket-Version: 13 in the answer */
};

static const struct error_answer_case error_answer_cases[] = {
    {"426", GET, HOST UPGRADE CONNECTION KEY "Sec-WebSocket-Version: 8\r\n", 426,
     "HTTP/1.1 426 Upgrade Required\r\n", 1},
    {"400", GET, HOST UPGRADE CONNECTION VERSION, 400, "HTTP/1.1 400 Bad Request\r\n", 0},
    {"403", GET, GOOD "Origin: http://evil.example\r\n", 403, "HTTP/1.1 403 Forbidden\r\n", 0},
    {"405", "HEAD /ws HTTP/1.1", GOOD, 405, "HTTP/1.1 405 Method Not Allowed\r\n", 0},
};

/* A refusal: status line, Content-Length of the body (the reason and a newline), the
 * connection closed, and Sec-WebSocket-Version: 13 only on 426. */
static void check_error_answer(const struct error_answer_case *c, const struct gw_handshake *hs,
                               const char *text)
{
    const char *body = strstr(text, "\r\n\r\n");
    char want_body[256], want_length[64];

    assert_non_null(body);
    body += 4;
    snprintf(want_body, sizeof(want_body), "%s\n", hs->reason);
    snprintf(want_length, sizeof(want_length), "\r\nContent-Length: %zu\r\n", strlen(want_body));
    if (strncmp(text, c->status_line, strlen(c->status_line)) != 0)
        fail_msg("%s: status line of %s", c->name, text);
    if (strcmp(body, want_body) != 0)
        fail_msg("%s: body \"%s\", want \"%s\"", c->name, body, want_body);
    if (strstr(text, want_length) == NULL || strstr(text, "\r\nConnection: close\r\n") == NULL)
        fail_msg("%s: headers of\n%s", c->name, text);
    if ((strstr(text, "\r\nSec-WebSocket-Version: 13\r\n") != NULL) != c->has_version)
        fail_msg("%s: Sec-WebSocket-Version in\n%s", c->name, text);
}

static void test_write_error(void **state)
{
    (void)state;
    out_buf = evbuffer_new();
    load_config(NULL);
    for (size_t i = 0; i < N_ELEMS(error_answer_cases); i++) {
        const struct error_answer_case *c = &error_answer_cases[i];
        struct gw_handshake hs;

        gw_handshake_check(&cfg, parse(c->line, c->headers), &hs);
        assert_int_equal(hs.status, c->status);
        gw_handshake_write_error(&hs, out_buf);
        check_error_answer(c, &hs, take_answer());
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_accept_key, cleanup),
        cmocka_unit_test_teardown(test_accept_key_respects_len, cleanup),
        cmocka_unit_test_teardown(test_accept_key_padding_inside, cleanup),
        cmocka_unit_test_teardown(test_origin_same_host, cleanup),
        cmocka_unit_test_teardown(test_origin_list, cleanup),
        cmocka_unit_test_teardown(test_origin_any, cleanup),
        cmocka_unit_test_teardown(test_select_subprotocol, cleanup),
        cmocka_unit_test_teardown(test_check, cleanup),
        cmocka_unit_test_teardown(test_check_repeated_list_headers, cleanup),
        cmocka_unit_test_teardown(test_write_101, cleanup),
        cmocka_unit_test_teardown(test_write_error, cleanup),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
