/*
 * Unit tests of gateway/util.h (HTTP token lists, trimming, allocation helpers) and of
 * gw_log_quote and gw_log_parse_level from gateway/log.h. Table-driven.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gateway/log.h"
#include "gateway/util.h"

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

/* ---- gw_util_has_token ------------------------------------------------------------------- */

struct token_case {
    const char *value;
    const char *token;
    int want;
};

static const struct token_case token_cases[] = {
    {"websocket", "websocket", 1},
    {"WebSocket", "websocket", 1},
    {"websocket", "WEBSOCKET", 1},
    {"keep-alive, Upgrade", "upgrade", 1},
    {"Upgrade, keep-alive", "upgrade", 1},
    {"keep-alive,upgrade", "upgrade", 1},
    {"  upgrade  ", "upgrade", 1},
    {"\tupgrade\t,x", "upgrade", 1},
    {"a, , ,upgrade", "upgrade", 1},
    {",,upgrade,,", "upgrade", 1},
    {"h2c, websocket", "websocket", 1},
    {"", "upgrade", 0},
    {",", "upgrade", 0},
    {" , ", "upgrade", 0},
    {"keep-alive", "upgrade", 0},
    {"upgrades", "upgrade", 0},
    {"xupgrade", "upgrade", 0},
    {"upgrade2, close", "upgrade", 0},
    {"up grade", "upgrade", 0},
    {"websocket; q=1", "websocket", 0},
    {"websocket/13", "websocket", 0},
    {"keep-alive upgrade", "upgrade", 0},
};

static void test_has_token_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_ELEMS(token_cases); i++) {
        const struct token_case *c = &token_cases[i];
        int got = gw_util_has_token(c->value, strlen(c->value), c->token);

        if (got != c->want)
            fail_msg("has_token(\"%s\", \"%s\") = %d, want %d", c->value, c->token, got, c->want);
    }
}

/* The list is value[0..len): bytes after len are not part of it. */
static void test_has_token_respects_len(void **state)
{
    const char *v = "close, upgrade";

    (void)state;
    assert_int_equal(gw_util_has_token(v, 5, "close"), 1);
    assert_int_equal(gw_util_has_token(v, 5, "upgrade"), 0);
    assert_int_equal(gw_util_has_token(v, 12, "upgrade"), 0); /* "close, upgr" */
    assert_int_equal(gw_util_has_token(v, 0, "close"), 0);
}

/* ---- gw_util_trim ------------------------------------------------------------------------ */

struct trim_case {
    const char *in;
    size_t skip; /* bytes trimmed at the front */
    size_t len;  /* length left */
};

static const struct trim_case trim_cases[] = {
    {"", 0, 0},        {"a", 0, 1},       {" a", 1, 1},  {"a ", 0, 1},
    {"  a b  ", 2, 3}, {"\t a \t", 2, 1}, {"   ", 3, 0}, {"\t\t", 2, 0},
    {"a\r\n", 0, 3},   {"\ra", 0, 2},     {"ab", 0, 2},  {" \v ", 1, 1},
};

static void test_trim_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_ELEMS(trim_cases); i++) {
        const struct trim_case *c = &trim_cases[i];
        const char *s = c->in;
        size_t len = strlen(c->in);

        gw_util_trim(&s, &len);
        if (s != c->in + c->skip || len != c->len)
            fail_msg("trim(\"%s\"): skip %zu len %zu, want skip %zu len %zu", c->in,
                     (size_t)(s - c->in), len, c->skip, c->len);
    }
}

static void test_trim_respects_len(void **state)
{
    const char *v = " ab  cd";
    const char *s = v;
    size_t len = 5; /* " ab  " */

    (void)state;
    gw_util_trim(&s, &len);
    assert_ptr_equal(s, v + 1);
    assert_int_equal(len, 2);
}

/* ---- gw_util_is_ascii_caseeq, x* allocators ------------------------------------------------ */

static void test_caseeq(void **state)
{
    (void)state;
    assert_int_equal(gw_util_is_ascii_caseeq("Host", 4, "host"), 1);
    assert_int_equal(gw_util_is_ascii_caseeq("HOST", 4, "host"), 1);
    assert_int_equal(gw_util_is_ascii_caseeq("Hostx", 4, "host"), 1);
    assert_int_equal(gw_util_is_ascii_caseeq("Hos", 3, "host"), 0);
    assert_int_equal(gw_util_is_ascii_caseeq("Hostx", 5, "host"), 0);
    assert_int_equal(gw_util_is_ascii_caseeq("", 0, ""), 1);
    assert_int_equal(gw_util_is_ascii_caseeq("a", 0, ""), 1);
}

static void test_alloc(void **state)
{
    char *s = xstrndup("abcdef", 3);
    char *t = xstrdup("xyz");
    void *z = xmalloc(0);
    uint8_t *c = xcalloc(4, 4);

    (void)state;
    assert_string_equal(s, "abc");
    assert_string_equal(t, "xyz");
    assert_non_null(z);
    for (size_t i = 0; i < 16; i++)
        assert_int_equal(c[i], 0);
    c = xrealloc(c, 64);
    c[63] = 1;
    free(s);
    free(t);
    free(z);
    free(c);
}

/* ---- gw_log_quote ------------------------------------------------------------------------ */

struct quote_case {
    const char *name;
    const char *in;
    size_t len;
    const char *want;
};

#define BYTES(lit) lit, sizeof(lit) - 1

static const struct quote_case quote_cases[] = {
    {"empty", BYTES(""), "\"\""},
    {"plain", BYTES("hello world"), "\"hello world\""},
    {"quote", BYTES("a\"b"), "\"a\\\"b\""},
    {"backslash", BYTES("a\\b"), "\"a\\\\b\""},
    {"newline", BYTES("a\nb\r"), "\"a\\x0ab\\x0d\""},
    {"tab", BYTES("\t"), "\"\\x09\""},
    {"nul", BYTES("a\0b"), "\"a\\x00b\""},
    {"del", BYTES("\x7f"), "\"\\x7f\""},
    {"high", BYTES("\xc3\xa9\xff"), "\"\\xc3\\xa9\\xff\""},
    {"space and tilde", BYTES(" ~"), "\" ~\""},
    {"escape seq", BYTES("\x1b[31m"), "\"\\x1b[31m\""},
};

static void test_quote_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_ELEMS(quote_cases); i++) {
        const struct quote_case *c = &quote_cases[i];
        char out[GW_LOG_QUOTE_MAX];
        const char *r = gw_log_quote(out, sizeof(out), c->in, c->len);

        assert_ptr_equal(r, out);
        if (strcmp(out, c->want) != 0)
            fail_msg("quote %s: got %s, want %s", c->name, out, c->want);
    }
}

/* Input of n bytes of fill, quoted into a heap buffer of exactly GW_LOG_QUOTE_MAX bytes so
 * ASan catches any write past it. */
static char *quote_fill(int fill, size_t n)
{
    uint8_t *in = xmalloc(n);
    char *out = xmalloc(GW_LOG_QUOTE_MAX);

    memset(in, fill, n);
    gw_log_quote(out, GW_LOG_QUOTE_MAX, in, n);
    free(in);
    return out;
}

static void test_quote_cut(void **state)
{
    char want[GW_LOG_QUOTE_MAX];
    char *out;

    (void)state;
    /* 200 bytes: not cut */
    out = quote_fill('a', 200);
    want[0] = '"';
    memset(want + 1, 'a', 200);
    strcpy(want + 201, "\"");
    assert_string_equal(out, want);
    free(out);
    /* 201 and 5000 bytes: cut at 200 with "..." */
    strcpy(want + 201, "...\"");
    out = quote_fill('a', 201);
    assert_string_equal(out, want);
    free(out);
    out = quote_fill('a', 5000);
    assert_string_equal(out, want);
    free(out);
}

/* The worst case (every byte escaped, then cut) fits in GW_LOG_QUOTE_MAX. */
static void test_quote_worst_case(void **state)
{
    char *out;

    (void)state;
    out = quote_fill(0xff, 1000);
    assert_int_equal(strlen(out), 1 + 200 * 4 + 3 + 1);
    assert_true(strlen(out) < GW_LOG_QUOTE_MAX);
    assert_memory_equal(out, "\"\\xff\\xff", 9);
    assert_string_equal(out + strlen(out) - 8, "\\xff...\"");
    free(out);
}

static void test_quote_small_buffer(void **state)
{
    char out[16];

    (void)state;
    gw_log_quote(out, sizeof(out), "abc", 3);
    assert_true(strlen(out) < sizeof(out));
    assert_int_equal(out[0], '"');
}

/* ---- gw_log_parse_level ------------------------------------------------------------------ */

static void test_parse_level(void **state)
{
    static const struct {
        const char *s;
        int rc;
        enum gw_log_level level;
    } cases[] = {
        {"error", 0, GW_LOG_ERROR}, {"warn", 0, GW_LOG_WARN},     {"info", 0, GW_LOG_INFO},
        {"debug", 0, GW_LOG_DEBUG}, {"", -1, GW_LOG_INFO},        {"trace", -1, GW_LOG_INFO},
        {"info ", -1, GW_LOG_INFO}, {"warning", -1, GW_LOG_INFO},
    };

    (void)state;
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        enum gw_log_level level = GW_LOG_INFO;

        assert_int_equal(gw_log_parse_level(cases[i].s, &level), cases[i].rc);
        assert_int_equal(level, cases[i].level);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_has_token_table),  cmocka_unit_test(test_has_token_respects_len),
        cmocka_unit_test(test_trim_table),       cmocka_unit_test(test_trim_respects_len),
        cmocka_unit_test(test_caseeq),           cmocka_unit_test(test_alloc),
        cmocka_unit_test(test_quote_table),      cmocka_unit_test(test_quote_cut),
        cmocka_unit_test(test_quote_worst_case), cmocka_unit_test(test_quote_small_buffer),
        cmocka_unit_test(test_parse_level),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
