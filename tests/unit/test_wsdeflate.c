/*
 * Unit tests of broker-tools/wsdeflate.h, wsclient's permessage-deflate: the server answers a
 * client must accept or fail (RFC 7692 7.1), messages inflated with and without the server's
 * context takeover, a final block and the RFC's example of one, the inflated-size limit
 * (deflate bombs), corrupt input and recovery after it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <zlib.h>

#include "broker-tools/wsdeflate.h"

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

struct answer_case {
    const char *answer;
    int ok;
    int server_no_takeover;
    unsigned server_bits;
};

static const struct answer_case answer_cases[] = {
    {"permessage-deflate", 1, 0, 15},
    {"permessage-deflate; server_no_context_takeover", 1, 1, 15},
    {"PerMessage-Deflate ;Server_No_Context_Takeover ", 1, 1, 15},
    {"permessage-deflate; server_no_context_takeover; client_no_context_takeover", 1, 1, 15},
    {"permessage-deflate; server_max_window_bits=10", 1, 0, 10},
    {"permessage-deflate; server_max_window_bits=\"8\"", 1, 0, 8},
    {"permessage-deflate;\tserver_max_window_bits = 15 ; server_no_context_takeover", 1, 1, 15},
    {"permessage-deflate; client_max_window_bits=10", 0, 0, 0}, /* not offered */
    {"permessage-deflate; client_max_window_bits", 0, 0, 0},
    {"permessage-deflate; server_max_window_bits", 0, 0, 0},
    {"permessage-deflate; server_max_window_bits=7", 0, 0, 0},
    {"permessage-deflate; server_max_window_bits=16", 0, 0, 0},
    {"permessage-deflate; server_max_window_bits=010", 0, 0, 0},
    {"permessage-deflate; server_max_window_bits=\"1\"5", 0, 0, 0},
    {"permessage-deflate; server_no_context_takeover; server_no_context_takeover", 0, 0, 0},
    {"permessage-deflate; server_no_context_takeover=1", 0, 0, 0},
    {"permessage-deflate; unknown", 0, 0, 0},
    {"permessage-deflate; ", 0, 0, 0},
    {"permessage-deflate, permessage-deflate", 0, 0, 0},
    {"x-webkit-deflate-frame", 0, 0, 0},
    {"permessage-deflater", 0, 0, 0},
    {"", 0, 0, 0},
};

static void test_answers(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_ELEMS(answer_cases); i++) {
        const struct answer_case *c = &answer_cases[i];
        struct wsc_deflate_params p;
        int rc = wsc_deflate_parse_answer(c->answer, strlen(c->answer), &p);

        if ((rc == 0) != c->ok)
            fail_msg("case %zu \"%s\": returned %d", i, c->answer, rc);
        assert_int_equal(p.enabled, c->ok);
        if (!c->ok)
            continue;
        assert_int_equal(p.server_no_context_takeover, c->server_no_takeover);
        assert_int_equal(p.server_window_bits, c->server_bits);
    }
}

/* Compress text with z as one message: a sync flush, its 00 00 ff ff tail removed. */
static size_t compress_message(z_stream *z, const char *text, uint8_t *out, size_t size)
{
    z->next_in = (Bytef *)(uintptr_t)text;
    z->avail_in = (uInt)strlen(text);
    z->next_out = out;
    z->avail_out = (uInt)size;
    int rc = deflate(z, Z_SYNC_FLUSH);
    if (rc == Z_BUF_ERROR && text[0] == '\0') {
        /* nothing since the last flush: an empty block's first byte, as RFC 7692 says */
        out[0] = 0x00;
        return 1;
    }
    assert_int_equal(rc, Z_OK);
    size_t n = size - z->avail_out;
    assert_true(n >= 4 && memcmp(out + n - 4, "\x00\x00\xff\xff", 4) == 0);
    return n - 4;
}

static void expect_message(struct wsc_inflater *z, const uint8_t *in, size_t len, int reset,
                           struct wsc_zbuf *out, const char *want)
{
    assert_int_equal(wsc_inflater_message(z, in, len, 1 << 20, reset, out), WSC_INFLATE_OK);
    assert_int_equal(out->len, strlen(want));
    assert_memory_equal(out->data, want, out->len);
}

static const char *const texts[] = {
    "{\"type\":\"message\",\"room\":\"lobby\",\"message\":\"Hello, hello, hello, hello!\"}",
    "{\"type\":\"message\",\"room\":\"lobby\",\"message\":\"Hello again, hello again!\"}",
    "",
    "{\"type\":\"message\",\"room\":\"lobby\",\"message\":\"Hello, hello, hello, hello!\"}",
};

static void test_no_context_takeover(void **state)
{
    struct wsc_inflater *z = wsc_inflater_new();
    struct wsc_zbuf out = {0};
    uint8_t buf[512];

    (void)state;
    for (size_t i = 0; i < N_ELEMS(texts); i++) {
        z_stream d = {0};
        assert_int_equal(deflateInit2(&d, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), Z_OK);
        size_t n = compress_message(&d, texts[i], buf, sizeof(buf));
        deflateEnd(&d);
        expect_message(z, buf, n, 1, &out, texts[i]);
    }
    wsc_zbuf_clear(&out);
    wsc_inflater_free(z);
}

static void test_context_takeover(void **state)
{
    struct wsc_inflater *keep = wsc_inflater_new(), *forget = wsc_inflater_new();
    struct wsc_zbuf out = {0};
    uint8_t buf[512];
    z_stream d = {0};
    int failed = 0;

    (void)state;
    assert_int_equal(deflateInit2(&d, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), Z_OK);
    for (size_t i = 0; i < N_ELEMS(texts); i++) {
        size_t n = compress_message(&d, texts[i], buf, sizeof(buf));
        expect_message(keep, buf, n, 0, &out, texts[i]);
        /* without the window, the repeated message's back-references cannot resolve */
        if (wsc_inflater_message(forget, buf, n, 1 << 20, 1, &out) != WSC_INFLATE_OK ||
            out.len != strlen(texts[i]) || memcmp(out.data, texts[i], out.len) != 0)
            failed++;
    }
    assert_true(failed > 0);
    deflateEnd(&d);
    wsc_zbuf_clear(&out);
    wsc_inflater_free(keep);
    wsc_inflater_free(forget);
}

static void test_final_block(void **state)
{
    /* RFC 7692's "Hello" in a block with BFINAL set, then the first byte of an empty block */
    static const uint8_t rfc[] = {0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00};
    struct wsc_inflater *z = wsc_inflater_new();
    struct wsc_zbuf out = {0};
    uint8_t buf[512];
    z_stream d = {0};

    (void)state;
    expect_message(z, rfc, sizeof(rfc), 0, &out, "Hello");
    expect_message(z, rfc, sizeof(rfc) - 1, 0, &out, "Hello");
    assert_int_equal(deflateInit2(&d, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), Z_OK);
    d.next_in = (Bytef *)(uintptr_t)texts[0];
    d.avail_in = (uInt)strlen(texts[0]);
    d.next_out = buf;
    d.avail_out = sizeof(buf);
    assert_int_equal(deflate(&d, Z_FINISH), Z_STREAM_END);
    expect_message(z, buf, sizeof(buf) - d.avail_out, 0, &out, texts[0]);
    deflateEnd(&d);
    /* the stream ended: the next message starts afresh even without reset */
    expect_message(z, rfc, sizeof(rfc), 0, &out, "Hello");
    wsc_zbuf_clear(&out);
    wsc_inflater_free(z);
}

static void test_bomb_and_corrupt(void **state)
{
    static const uint8_t garbage[] = {0xff, 0xff, 0xff, 0xff, 0x00, 0x12};
    size_t big = 4 << 20, cap = compressBound((uLong)big);
    uint8_t *zeros = calloc(1, big), *packed = malloc(cap);
    struct wsc_inflater *z = wsc_inflater_new();
    struct wsc_zbuf out = {0};
    z_stream d = {0};

    (void)state;
    assert_non_null(zeros);
    assert_non_null(packed);
    assert_int_equal(deflateInit2(&d, 9, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), Z_OK);
    d.next_in = zeros;
    d.avail_in = (uInt)big;
    d.next_out = packed;
    d.avail_out = (uInt)cap;
    assert_int_equal(deflate(&d, Z_SYNC_FLUSH), Z_OK);
    size_t n = cap - d.avail_out - 4;
    deflateEnd(&d);
    assert_true(n < 8192); /* 4 MiB of zeros in a few KiB */
    assert_int_equal(wsc_inflater_message(z, packed, n, 65536, 1, &out), WSC_INFLATE_TOO_BIG);
    assert_true(out.cap <= 2 * (65536 + 4096)); /* stopped near the limit, not at 4 MiB */
    assert_int_equal(wsc_inflater_message(z, packed, n, big, 1, &out), WSC_INFLATE_OK);
    assert_int_equal(out.len, big);
    assert_int_equal(wsc_inflater_message(z, garbage, sizeof(garbage), 65536, 0, &out),
                     WSC_INFLATE_CORRUPT);
    /* after a failure the inflater starts afresh */
    expect_message(z, (const uint8_t *)"\xf3\x48\xcd\xc9\xc9\x07\x00", 7, 0, &out, "Hello");
    wsc_zbuf_trim(&out);
    assert_true(out.cap <= 16384);
    wsc_zbuf_clear(&out);
    wsc_inflater_free(z);
    wsc_inflater_free(NULL);
    free(zeros);
    free(packed);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_answers),          cmocka_unit_test(test_no_context_takeover),
        cmocka_unit_test(test_context_takeover), cmocka_unit_test(test_final_block),
        cmocka_unit_test(test_bomb_and_corrupt),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
