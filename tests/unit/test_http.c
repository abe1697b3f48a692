/*
 * Unit tests of gateway/http.h: requests fed whole, split at every position and one byte at
 * a time must parse the same; pipelining, keep-alive, upgrade; every error status; header
 * lookup; and the text of gw_http_respond (Date line checked for shape, then skipped).
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
#include <http_parser.h>

#include "gateway/http.h"

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

/* The parser under test; the teardown of every test frees it, so a failed assertion leaks
 * nothing. */
static struct gw_http_parser *parser;

static int free_parser(void **state)
{
    (void)state;
    gw_http_parser_free(parser);
    parser = NULL;
    return 0;
}

/* Replace the parser with a new one for heads of at most max_head bytes. */
static struct gw_http_parser *new_parser(size_t max_head)
{
    gw_http_parser_free(parser);
    parser = gw_http_parser_new(max_head);
    return parser;
}

static enum gw_http_result feed(const void *buf, size_t len, size_t *consumed)
{
    return gw_http_parser_feed(parser, buf, len, consumed);
}

/* A text rendering of a request, for comparing parses of the same bytes. */
static void describe(const struct gw_http_request *req, char *out, size_t outlen)
{
    size_t n = (size_t)snprintf(out, outlen, "method=%d v=%u.%u ka=%d up=%d path=[%.*s]\n",
                                req->method, req->major, req->minor, req->keep_alive, req->upgrade,
                                (int)req->path_len, req->path);

    for (size_t i = 0; i < req->n_headers && n < outlen; i++) {
        const struct gw_http_header *h = &req->headers[i];

        n += (size_t)snprintf(out + n, outlen - n, "[%.*s]=[%.*s]\n", (int)h->name_len, h->name,
                              (int)h->value_len, h->value);
    }
}

/* ---- one request ------------------------------------------------------------------------- */

static const char simple_get[] = "GET /index.html?x=1#frag HTTP/1.1\r\n"
                                 "Host: example.com\r\n"
                                 "User-Agent: test/1.0\r\n"
                                 "\r\n";

static void test_simple_get(void **state)
{
    const struct gw_http_request *req;
    size_t consumed, len;
    const char *v;
    const char *reason = "unset";

    (void)state;
    new_parser(8192);
    assert_null(gw_http_parser_request(parser));
    assert_int_equal(feed(simple_get, strlen(simple_get), &consumed), GW_HTTP_REQUEST);
    assert_int_equal(consumed, strlen(simple_get));
    req = gw_http_parser_request(parser);
    assert_non_null(req);
    assert_int_equal(req->method, HTTP_GET);
    assert_int_equal(req->major, 1);
    assert_int_equal(req->minor, 1);
    assert_int_equal(req->keep_alive, 1);
    assert_int_equal(req->upgrade, 0);
    assert_int_equal(req->path_len, strlen("/index.html"));
    assert_memory_equal(req->path, "/index.html", req->path_len);
    assert_int_equal(req->n_headers, 2);
    assert_int_equal(req->headers[0].name_len, 4);
    assert_memory_equal(req->headers[0].name, "Host", 4);
    assert_int_equal(req->headers[0].value_len, 11);
    assert_memory_equal(req->headers[0].value, "example.com", 11);
    v = gw_http_header(req, "user-agent", &len, NULL);
    assert_non_null(v);
    assert_int_equal(len, 8);
    assert_memory_equal(v, "test/1.0", 8);
    assert_int_equal(gw_http_parser_error(parser, &reason), 0);
    assert_int_equal(gw_http_parser_is_partial(parser), 0);
}

static void test_head_method_and_path_forms(void **state)
{
    static const struct {
        const char *raw;
        int method;
        const char *path;
    } cases[] = {
        {"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_HEAD, "/"},
        {"GET http://example.com/x/y?q HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_GET, "/x/y"},
        {"GET /a%20b/%2e%2e HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_GET, "/a%20b/%2e%2e"},
        {"GET /?only=query HTTP/1.1\r\nHost: a\r\n\r\n", HTTP_GET, "/"},
    };

    (void)state;
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        const struct gw_http_request *req;
        size_t consumed;

        new_parser(8192);
        assert_int_equal(feed(cases[i].raw, strlen(cases[i].raw), &consumed), GW_HTTP_REQUEST);
        req = gw_http_parser_request(parser);
        assert_int_equal(req->method, cases[i].method);
        assert_int_equal(req->path_len, strlen(cases[i].path));
        assert_memory_equal(req->path, cases[i].path, req->path_len);
    }
}

/* Requests fed in pieces; header names and values then arrive in several callbacks. */
static const char *const split_requests[] = {
    simple_get,
    "GET /chat HTTP/1.1\r\n"
    "Host: example.com:8080\r\n"
    "Upgrade: websocket\r\n"
    "Connection: keep-alive, Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "X-Spaces:    spaced  value \t \r\n"
    "X-Empty:\r\n"
    "X-Empty-Spaces:   \r\n"
    "X-Long-Header-Name-For-Splitting-Across-Reads: "
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n"
    "\r\n",
    "HEAD /x HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    "GET /body HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
    "GET /chunked HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
};

static void parse_whole(const char *raw, char *out, size_t outlen)
{
    size_t consumed;

    new_parser(8192);
    assert_int_equal(feed(raw, strlen(raw), &consumed), GW_HTTP_REQUEST);
    assert_int_equal(consumed, strlen(raw));
    describe(gw_http_parser_request(parser), out, outlen);
}

static void test_every_prefix_split(void **state)
{
    (void)state;
    for (size_t r = 0; r < N_ELEMS(split_requests); r++) {
        const char *raw = split_requests[r];
        size_t len = strlen(raw);
        char want[4096], got[4096];

        parse_whole(raw, want, sizeof(want));
        for (size_t i = 1; i < len; i++) {
            size_t consumed;

            new_parser(8192);
            if (feed(raw, i, &consumed) != GW_HTTP_MORE || consumed != i)
                fail_msg("request %zu: prefix of %zu bytes: not MORE/%zu", r, i, i);
            assert_null(gw_http_parser_request(parser));
            if (feed(raw + i, len - i, &consumed) != GW_HTTP_REQUEST || consumed != len - i)
                fail_msg("request %zu: rest after %zu bytes: no request", r, i);
            describe(gw_http_parser_request(parser), got, sizeof(got));
            if (strcmp(got, want) != 0)
                fail_msg("request %zu split at %zu:\n%s\nwant\n%s", r, i, got, want);
        }
    }
}

static void test_one_byte_at_a_time(void **state)
{
    (void)state;
    for (size_t r = 0; r < N_ELEMS(split_requests); r++) {
        const char *raw = split_requests[r];
        size_t len = strlen(raw);
        char want[4096], got[4096];

        parse_whole(raw, want, sizeof(want));
        new_parser(8192);
        for (size_t i = 0; i < len; i++) {
            size_t consumed;
            enum gw_http_result res = feed(raw + i, 1, &consumed);

            if (res != (i + 1 < len ? GW_HTTP_MORE : GW_HTTP_REQUEST) || consumed != 1)
                fail_msg("request %zu byte %zu: result %d consumed %zu", r, i, res, consumed);
        }
        describe(gw_http_parser_request(parser), got, sizeof(got));
        if (strcmp(got, want) != 0)
            fail_msg("request %zu byte by byte:\n%s\nwant\n%s", r, got, want);
    }
}

static void test_values_trimmed(void **state)
{
    const struct gw_http_request *req;
    size_t len, count;
    const char *v;
    char text[4096];

    (void)state;
    parse_whole(split_requests[1], text, sizeof(text));
    req = gw_http_parser_request(parser);
    v = gw_http_header(req, "x-spaces", &len, &count);
    assert_int_equal(count, 1);
    assert_int_equal(len, strlen("spaced  value"));
    assert_memory_equal(v, "spaced  value", len);
    v = gw_http_header(req, "X-Empty", &len, &count);
    assert_non_null(v);
    assert_int_equal(count, 1);
    assert_int_equal(len, 0);
    v = gw_http_header(req, "X-Empty-Spaces", &len, &count);
    assert_non_null(v);
    assert_int_equal(len, 0);
}

/* ---- several requests on one connection ---------------------------------------------------- */

static void test_pipelined(void **state)
{
    static const char a[] = "GET /a HTTP/1.1\r\nHost: h\r\n\r\n";
    static const char b[] = "HEAD /b HTTP/1.1\r\nHost: h\r\nX-B: 1\r\n\r\n";
    static const char c[] = "GET /c HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nxy";
    static const char d[] = "GET /d HT";
    char buf[512];
    size_t off = 0, consumed;
    const struct gw_http_request *req;

    (void)state;
    snprintf(buf, sizeof(buf), "%s%s%s%s", a, b, c, d);
    new_parser(8192);
    assert_int_equal(feed(buf, strlen(buf), &consumed), GW_HTTP_REQUEST);
    assert_int_equal(consumed, strlen(a));
    off += consumed;
    req = gw_http_parser_request(parser);
    assert_memory_equal(req->path, "/a", 2);
    /* not taken yet: the same request again, nothing consumed */
    assert_int_equal(feed(buf + off, strlen(buf) - off, &consumed), GW_HTTP_REQUEST);
    assert_int_equal(consumed, 0);
    gw_http_parser_next(parser);
    assert_null(gw_http_parser_request(parser));
    assert_int_equal(gw_http_parser_is_partial(parser), 0);

    assert_int_equal(feed(buf + off, strlen(buf) - off, &consumed), GW_HTTP_REQUEST);
    assert_int_equal(consumed, strlen(b));
    off += consumed;
    req = gw_http_parser_request(parser);
    assert_int_equal(req->method, HTTP_HEAD);
    assert_memory_equal(req->path, "/b", 2);
    assert_int_equal(req->n_headers, 2);
    gw_http_parser_next(parser);

    assert_int_equal(feed(buf + off, strlen(buf) - off, &consumed), GW_HTTP_REQUEST);
    assert_int_equal(consumed, strlen(c));
    off += consumed;
    req = gw_http_parser_request(parser);
    assert_memory_equal(req->path, "/c", 2);
    assert_int_equal(req->n_headers, 2);
    gw_http_parser_next(parser);

    assert_int_equal(feed(buf + off, strlen(buf) - off, &consumed), GW_HTTP_MORE);
    assert_int_equal(consumed, strlen(d));
    assert_int_equal(gw_http_parser_is_partial(parser), 1);
    assert_int_equal(feed("TP/1.1\r\n\r\n", 10, &consumed), GW_HTTP_REQUEST);
    req = gw_http_parser_request(parser);
    assert_int_equal(req->path_len, 2);
    assert_memory_equal(req->path, "/d", 2);
    assert_int_equal(req->n_headers, 0);
}

/* Each request of a pipeline has its own head budget. */
static void test_pipelined_cap_per_request(void **state)
{
    static const char one[] = "GET /0123456789 HTTP/1.1\r\nHost: example.com\r\n\r\n";
    char buf[sizeof(one) * 8];
    size_t off = 0, consumed;

    (void)state;
    buf[0] = '\0';
    for (int i = 0; i < 8; i++)
        strcat(buf, one);
    new_parser(strlen(one));
    for (int i = 0; i < 8; i++) {
        assert_int_equal(feed(buf + off, strlen(buf) - off, &consumed), GW_HTTP_REQUEST);
        assert_int_equal(consumed, strlen(one));
        off += consumed;
        gw_http_parser_next(parser);
    }
    assert_int_equal(off, strlen(buf));
}

struct keep_alive_case {
    const char *raw;
    int keep_alive;
};

static const struct keep_alive_case keep_alive_cases[] = {
    {"GET / HTTP/1.1\r\nHost: a\r\n\r\n", 1},
    {"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", 0},
    {"GET / HTTP/1.1\r\nHost: a\r\nConnection: Close\r\n\r\n", 0},
    {"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\n\r\n", 1},
    {"GET / HTTP/1.0\r\n\r\n", 0},
    {"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 1},
    {"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", 1},
    {"GET / HTTP/1.0\r\nConnection: close\r\n\r\n", 0},
};

static void test_keep_alive(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_ELEMS(keep_alive_cases); i++) {
        const struct keep_alive_case *c = &keep_alive_cases[i];
        size_t consumed;

        new_parser(8192);
        assert_int_equal(feed(c->raw, strlen(c->raw), &consumed), GW_HTTP_REQUEST);
        if (gw_http_parser_request(parser)->keep_alive != c->keep_alive)
            fail_msg("keep_alive of %s: want %d", c->raw, c->keep_alive);
    }
}

/* An upgrade stops at the end of the head: what follows is WebSocket, not HTTP. */
static void test_upgrade(void **state)
{
    static const char head[] = "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n"
                               "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n";
    static const char frame[] = "\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58";
    static const char plain[] = "GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n";
    char buf[256];
    size_t consumed;
    const struct gw_http_request *req;

    (void)state;
    memcpy(buf, head, strlen(head));
    memcpy(buf + strlen(head), frame, sizeof(frame) - 1);
    new_parser(8192);
    assert_int_equal(feed(buf, strlen(head) + sizeof(frame) - 1, &consumed), GW_HTTP_REQUEST);
    assert_int_equal(consumed, strlen(head));
    req = gw_http_parser_request(parser);
    assert_int_equal(req->upgrade, 1);
    assert_int_equal(req->method, HTTP_GET);

    /* Upgrade without "Connection: upgrade" is a plain request */
    new_parser(8192);
    assert_int_equal(feed(plain, strlen(plain), &consumed), GW_HTTP_REQUEST);
    assert_int_equal(consumed, strlen(plain));
    assert_int_equal(gw_http_parser_request(parser)->upgrade, 0);
}

/* ---- errors ------------------------------------------------------------------------------ */

struct error_case {
    const char *name;
    const char *raw;
    size_t len; /* of raw; 0: strlen(raw) */
    size_t max_head;
    int status;
};

static const struct error_case error_cases[] = {
    {"POST", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", 0, 8192, 405},
    {"PUT", "PUT /x HTTP/1.1\r\nHost: a\r\n\r\n", 0, 8192, 405},
    {"DELETE", "DELETE /x HTTP/1.1\r\nHost: a\r\n\r\n", 0, 8192, 405},
    {"OPTIONS", "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", 0, 8192, 405},
    {"HTTP/2.0", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 0, 8192, 505},
    {"HTTP/3.0", "GET / HTTP/3.0\r\nHost: a\r\n\r\n", 0, 8192, 505},
    {"HTTP/0.9 style", "GET / HTTP/0.9\r\n\r\n", 0, 8192, 505},
    {"TLS hello", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11, 8192, 400},
    {"no method", "HELLO\r\n\r\n", 0, 8192, 400},
    {"lower-case method", "get / HTTP/1.1\r\n\r\n", 0, 8192, 400},
    {"HTTP/0.9 request", "GET /\r\n\r\n", 0, 8192, 505},
    {"bad version", "GET / XTTP/1.1\r\n\r\n", 0, 8192, 400},
    {"header without colon", "GET / HTTP/1.1\r\nBad Header\r\n\r\n", 0, 8192, 400},
    {"bad content length", "GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n", 0, 8192, 400},
    {"two content lengths", "GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 0,
     8192, 400},
    {"NUL in target", "GET /a\0b HTTP/1.1\r\n\r\n", 21, 8192, 400},
    {"no path", "GET http://example.com HTTP/1.1\r\nHost: a\r\n\r\n", 0, 8192, 400},
    {"head over the cap",
     "GET / HTTP/1.1\r\nHost: a\r\nX-Big: "
     "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567"
     "\r\n\r\n",
     0, 64, 431},
    {"request line over the cap",
     "GET /0123456789012345678901234567890123456789012345678901234567890123456789 HTTP/1.1\r\n"
     "\r\n",
     0, 64, 431},
};

/* Feed raw (len bytes) whole or one byte at a time; return the status, checking that the
 * error is sticky and comes with a reason. */
static int parse_error(const char *raw, size_t len, size_t max_head, int byte_by_byte)
{
    enum gw_http_result res = GW_HTTP_MORE;
    const char *reason = NULL;
    size_t consumed;
    int status;

    new_parser(max_head);
    if (byte_by_byte) {
        for (size_t i = 0; i < len && res == GW_HTTP_MORE; i++)
            res = feed(raw + i, 1, &consumed);
    } else {
        res = feed(raw, len, &consumed);
    }
    if (res != GW_HTTP_ERROR)
        return res == GW_HTTP_REQUEST ? 200 : 0;
    status = gw_http_parser_error(parser, &reason);
    assert_non_null(reason);
    assert_int_equal(feed("GET / HTTP/1.1\r\n\r\n", 18, &consumed), GW_HTTP_ERROR);
    assert_int_equal(gw_http_parser_error(parser, NULL), status);
    assert_null(gw_http_parser_request(parser));
    return status;
}

static void test_errors(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_ELEMS(error_cases); i++) {
        const struct error_case *c = &error_cases[i];
        size_t len = c->len ? c->len : strlen(c->raw);

        for (int bytewise = 0; bytewise < 2; bytewise++) {
            int status = parse_error(c->raw, len, c->max_head, bytewise);

            if (status != c->status)
                fail_msg("%s (%s): status %d, want %d", c->name, bytewise ? "bytewise" : "whole",
                         status, c->status);
        }
    }
}

/* A request with n headers "X-Hn: n". */
static char *many_headers(size_t n)
{
    size_t cap = 64 + n * 24, len;
    char *buf = malloc(cap);

    assert_non_null(buf);
    len = (size_t)snprintf(buf, cap, "GET / HTTP/1.1\r\n");
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(buf + len, cap - len, "X-H%zu: %zu\r\n", i, i);
    snprintf(buf + len, cap - len, "\r\n");
    return buf;
}

static void test_header_count_limit(void **state)
{
    char *raw;
    size_t consumed;

    (void)state;
    raw = many_headers(GW_HTTP_MAX_HEADERS);
    new_parser(8192);
    assert_int_equal(feed(raw, strlen(raw), &consumed), GW_HTTP_REQUEST);
    assert_int_equal(gw_http_parser_request(parser)->n_headers, GW_HTTP_MAX_HEADERS);
    free(raw);
    raw = many_headers(GW_HTTP_MAX_HEADERS + 1);
    for (int bytewise = 0; bytewise < 2; bytewise++) {
        int status = parse_error(raw, strlen(raw), 8192, bytewise);

        if (status != 431) {
            free(raw);
            fail_msg("65 headers (%s): status %d", bytewise ? "bytewise" : "whole", status);
        }
    }
    free(raw);
}

static void test_body_limit(void **state)
{
    static const char fmt[] = "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: %zu\r\n\r\n";
    char *buf = malloc(GW_HTTP_MAX_BODY + 256);
    size_t head, consumed;

    (void)state;
    assert_non_null(buf);
    /* exactly the limit: accepted, body consumed */
    head = (size_t)snprintf(buf, 256, fmt, (size_t)GW_HTTP_MAX_BODY);
    memset(buf + head, 'b', GW_HTTP_MAX_BODY);
    new_parser(8192);
    if (feed(buf, head + GW_HTTP_MAX_BODY, &consumed) != GW_HTTP_REQUEST ||
        consumed != head + GW_HTTP_MAX_BODY) {
        free(buf);
        fail_msg("body of GW_HTTP_MAX_BODY bytes refused");
    }
    /* one byte more: 413, whether the body arrives whole or in pieces */
    head = (size_t)snprintf(buf, 256, fmt, (size_t)GW_HTTP_MAX_BODY + 1);
    memset(buf + head, 'b', GW_HTTP_MAX_BODY + 1);
    for (int bytewise = 0; bytewise < 2; bytewise++) {
        int status = parse_error(buf, head + GW_HTTP_MAX_BODY + 1, 8192, bytewise);

        if (status != 413) {
            free(buf);
            fail_msg("body over the limit (%s): status %d", bytewise ? "bytewise" : "whole",
                     status);
        }
    }
    free(buf);
}

/* The head is "at most max_head bytes": a head of exactly max_head bytes passes and one of
 * max_head + 1 bytes is refused, fed whole or byte by byte. */
static void test_head_cap_boundary(void **state)
{
    static const char raw[] =
        "GET /boundary HTTP/1.1\r\nHost: example.com\r\nX-Pad: abcdef\r\n\r\n";
    size_t len = strlen(raw);

    (void)state;
    for (int bytewise = 0; bytewise < 2; bytewise++) {
        const char *how = bytewise ? "bytewise" : "whole";
        int status;

        status = parse_error(raw, len, len, bytewise);
        if (status != 200)
            fail_msg("head of max_head bytes (%s): status %d, want a request", how, status);
        status = parse_error(raw, len, len - 1, bytewise);
        if (status != 431)
            fail_msg("head of max_head + 1 bytes (%s): status %d, want 431", how, status);
        status = parse_error(raw, len, len - 2, bytewise);
        if (status != 431)
            fail_msg("head of max_head + 2 bytes (%s): status %d, want 431", how, status);
    }
}

/* ---- state and lookups ------------------------------------------------------------------- */

static void test_is_partial(void **state)
{
    size_t consumed;

    (void)state;
    new_parser(8192);
    assert_int_equal(gw_http_parser_is_partial(parser), 0);
    assert_int_equal(feed("", 0, &consumed), GW_HTTP_MORE);
    assert_int_equal(consumed, 0);
    assert_int_equal(gw_http_parser_is_partial(parser), 0);
    assert_int_equal(feed("G", 1, &consumed), GW_HTTP_MORE);
    assert_int_equal(gw_http_parser_is_partial(parser), 1);
    assert_int_equal(feed("ET / HTTP/1.1\r\nHost: a\r\n", 24, &consumed), GW_HTTP_MORE);
    assert_int_equal(gw_http_parser_is_partial(parser), 1);
    assert_int_equal(feed("\r\n", 2, &consumed), GW_HTTP_REQUEST);
    assert_int_equal(gw_http_parser_is_partial(parser), 0);
    gw_http_parser_next(parser);
    assert_int_equal(gw_http_parser_is_partial(parser), 0);
    assert_int_equal(feed("GET", 3, &consumed), GW_HTTP_MORE);
    assert_int_equal(gw_http_parser_is_partial(parser), 1);
}

static void test_header_lookup(void **state)
{
    static const char raw[] = "GET / HTTP/1.1\r\n"
                              "Host: example.com\r\n"
                              "Sec-WebSocket-Protocol: a, b\r\n"
                              "X-Dup: first\r\n"
                              "sec-websocket-protocol: c\r\n"
                              "x-dup: second\r\n"
                              "X-DUP: third\r\n"
                              "\r\n";
    static const struct {
        const char *name;
        const char *value; /* first value, or NULL */
        size_t count;
    } cases[] = {
        {"Host", "example.com", 1},
        {"host", "example.com", 1},
        {"HOST", "example.com", 1},
        {"Sec-WebSocket-Protocol", "a, b", 2},
        {"x-dup", "first", 3},
        {"X-Du", NULL, 0},
        {"X-Dupe", NULL, 0},
        {"Origin", NULL, 0},
        {"", NULL, 0},
    };
    const struct gw_http_request *req;
    size_t consumed;

    (void)state;
    new_parser(8192);
    assert_int_equal(feed(raw, strlen(raw), &consumed), GW_HTTP_REQUEST);
    req = gw_http_parser_request(parser);
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        size_t len = 999, count = 999;
        const char *v = gw_http_header(req, cases[i].name, &len, &count);

        assert_int_equal(count, cases[i].count);
        if (cases[i].value == NULL) {
            assert_null(v);
            continue;
        }
        assert_non_null(v);
        assert_int_equal(len, strlen(cases[i].value));
        assert_memory_equal(v, cases[i].value, len);
        /* count may be NULL */
        assert_ptr_equal(gw_http_header(req, cases[i].name, &len, NULL), v);
    }
}

/* ---- responses --------------------------------------------------------------------------- */

static void test_reason(void **state)
{
    static const struct {
        int status;
        const char *reason;
    } cases[] = {
        {101, "Switching Protocols"},
        {200, "OK"},
        {304, "Not Modified"},
        {400, "Bad Request"},
        {403, "Forbidden"},
        {404, "Not Found"},
        {405, "Method Not Allowed"},
        {408, "Request Timeout"},
        {413, "Content Too Large"},
        {426, "Upgrade Required"},
        {431, "Request Header Fields Too Large"},
        {503, "Service Unavailable"},
        {505, "HTTP Version Not Supported"},
    };

    (void)state;
    for (size_t i = 0; i < N_ELEMS(cases); i++)
        assert_string_equal(gw_http_reason(cases[i].status), cases[i].reason);
    assert_non_null(gw_http_reason(299));
}

/* The output of out as a string with its one Date line removed after checking its shape
 * ("Date: Sun, 06 Nov 1994 08:49:37 GMT"). Caller frees. */
static char *without_date(struct evbuffer *out)
{
    size_t len = evbuffer_get_length(out);
    char *text = malloc(len + 1);
    char *date, *end;

    assert_non_null(text);
    evbuffer_remove(out, text, len);
    text[len] = '\0';
    date = strstr(text, "\r\nDate: ");
    assert_non_null(date);
    assert_null(strstr(date + 1, "\r\nDate: "));
    end = strstr(date + 2, "\r\n");
    assert_non_null(end);
    assert_int_equal(end - (date + 8), 29);
    assert_memory_equal(end - 4, " GMT", 4);
    assert_int_equal(date[11], ',');
    memmove(date, end, strlen(end) + 1);
    return text;
}

struct respond_case {
    const char *name;
    int status;
    const char *extra;
    const char *type;
    const char *body;
    int keep_alive;
    int head_only;
    const char *want;
};

static const struct respond_case respond_cases[] = {
    {"404 with body", 404, NULL, "text/plain; charset=utf-8", "not found\n", 1, 0,
     "HTTP/1.1 404 Not Found\r\nServer: chatbroker\r\nContent-Length: 10\r\n"
     "Content-Type: text/plain; charset=utf-8\r\n\r\nnot found\n"},
    {"close", 400, NULL, "text/plain", "bad\n", 0, 0,
     "HTTP/1.1 400 Bad Request\r\nServer: chatbroker\r\nContent-Length: 4\r\n"
     "Content-Type: text/plain\r\nConnection: close\r\n\r\nbad\n"},
    {"head only", 200, NULL, "text/html", "<p>hi</p>", 1, 1,
     "HTTP/1.1 200 OK\r\nServer: chatbroker\r\nContent-Length: 9\r\n"
     "Content-Type: text/html\r\n\r\n"},
    {"extra headers", 405, "Allow: GET\r\nX-A: b\r\n", "text/plain", "no\n", 0, 0,
     "HTTP/1.1 405 Method Not Allowed\r\nServer: chatbroker\r\nContent-Length: 3\r\n"
     "Content-Type: text/plain\r\nAllow: GET\r\nX-A: b\r\nConnection: close\r\n\r\nno\n"},
    {"no body", 304, "Cache-Control: no-cache\r\n", NULL, NULL, 1, 1,
     "HTTP/1.1 304 Not Modified\r\nServer: chatbroker\r\nContent-Length: 0\r\n"
     "Cache-Control: no-cache\r\n\r\n"},
    {"empty body", 503, NULL, NULL, NULL, 0, 0,
     "HTTP/1.1 503 Service Unavailable\r\nServer: chatbroker\r\nContent-Length: 0\r\n"
     "Connection: close\r\n\r\n"},
};

static void test_respond(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_ELEMS(respond_cases); i++) {
        const struct respond_case *c = &respond_cases[i];
        struct evbuffer *out = evbuffer_new();
        size_t len = c->body ? strlen(c->body) : 0;
        char *text;

        gw_http_respond(out, c->status, c->extra, c->type, c->body, len, c->keep_alive,
                        c->head_only);
        text = without_date(out);
        evbuffer_free(out);
        if (strcmp(text, c->want) != 0) {
            fprintf(stderr, "%s: got\n%s\nwant\n%s\n", c->name, text, c->want);
            free(text);
            fail_msg("respond %s", c->name);
        }
        free(text);
    }
}

/* Responses append: two in a row come out back to back. */
static void test_respond_appends(void **state)
{
    struct evbuffer *out = evbuffer_new();
    size_t len;
    char *text;

    (void)state;
    gw_http_respond(out, 200, NULL, "text/plain", "a", 1, 1, 0);
    evbuffer_add(out, "|", 1);
    gw_http_respond(out, 204, NULL, NULL, NULL, 0, 1, 0);
    len = evbuffer_get_length(out);
    text = calloc(1, len + 1);
    assert_non_null(text);
    evbuffer_remove(out, text, len);
    evbuffer_free(out);
    assert_memory_equal(text, "HTTP/1.1 200 OK\r\n", 17);
    assert_non_null(strstr(text, "\r\n\r\na|HTTP/1.1 204 "));
    assert_int_equal(strlen(text), len);
    free(text);
}

/* A request whose head arrived but whose body did not is still partial (the connection
 * layer answers 408, or waits during a drain, only for partial requests). */
static void test_is_partial_while_body_pending(void **state)
{
    static const char raw[] = "GET /body HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello";
    size_t head = strlen(raw) - 5;

    (void)state;
    for (size_t i = 1; i < strlen(raw); i++) {
        size_t consumed;

        new_parser(8192);
        assert_int_equal(feed(raw, i, &consumed), GW_HTTP_MORE);
        if (gw_http_parser_is_partial(parser) != 1)
            fail_msg("after %zu of %zu bytes (head %zu): is_partial 0", i, strlen(raw), head);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_simple_get, free_parser),
        cmocka_unit_test_teardown(test_head_method_and_path_forms, free_parser),
        cmocka_unit_test_teardown(test_every_prefix_split, free_parser),
        cmocka_unit_test_teardown(test_one_byte_at_a_time, free_parser),
        cmocka_unit_test_teardown(test_values_trimmed, free_parser),
        cmocka_unit_test_teardown(test_pipelined, free_parser),
        cmocka_unit_test_teardown(test_pipelined_cap_per_request, free_parser),
        cmocka_unit_test_teardown(test_keep_alive, free_parser),
        cmocka_unit_test_teardown(test_upgrade, free_parser),
        cmocka_unit_test_teardown(test_errors, free_parser),
        cmocka_unit_test_teardown(test_header_count_limit, free_parser),
        cmocka_unit_test_teardown(test_body_limit, free_parser),
        cmocka_unit_test_teardown(test_head_cap_boundary, free_parser),
        cmocka_unit_test_teardown(test_is_partial, free_parser),
        cmocka_unit_test_teardown(test_is_partial_while_body_pending, free_parser),
        cmocka_unit_test_teardown(test_header_lookup, free_parser),
        cmocka_unit_test_teardown(test_reason, free_parser),
        cmocka_unit_test_teardown(test_respond, free_parser),
        cmocka_unit_test_teardown(test_respond_appends, free_parser),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
