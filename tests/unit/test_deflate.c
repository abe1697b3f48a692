/*
 * Unit tests of gateway/deflate.h and the compressed variants of gateway/frame.h: offers
 * accepted and declined as RFC 7692 7.1 says, compression and inflation round trips, context
 * takeover and its reset, the inflated-size limit (deflate bombs), corrupt input, and a
 * broadcast frame compressed once however many receivers ask.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <zlib.h>

#include "gateway/deflate.h"
#include "gateway/frame.h"

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

struct nego_case {
    const char *offer;
    int accepted;
    const char *response;
    unsigned server_bits, client_bits;
    int client_no_takeover;
};

static const struct nego_case nego_cases[] = {
    {"permessage-deflate", 1, "permessage-deflate; server_no_context_takeover", 15, 15, 0},
    {"PerMessage-Deflate", 1, "permessage-deflate; server_no_context_takeover", 15, 15, 0},
    {" permessage-deflate ; client_max_window_bits ", 1,
     "permessage-deflate; server_no_context_takeover; client_max_window_bits=12", 15, 12, 0},
    {"permessage-deflate; client_max_window_bits=8", 1,
     "permessage-deflate; server_no_context_takeover; client_max_window_bits=8", 15, 8, 0},
    {"permessage-deflate; client_max_window_bits=\"13\"", 1,
     "permessage-deflate; server_no_context_takeover; client_max_window_bits=12", 15, 12, 0},
    {"permessage-deflate; server_max_window_bits=9", 1,
     "permessage-deflate; server_no_context_takeover; server_max_window_bits=9", 9, 15, 0},
    {"permessage-deflate; client_no_context_takeover", 1,
     "permessage-deflate; server_no_context_takeover; client_no_context_takeover", 15, 15, 1},
    {"permessage-deflate; server_no_context_takeover", 1,
     "permessage-deflate; server_no_context_takeover", 15, 15, 0},
    {"foo, permessage-deflate; bar, permessage-deflate; server_max_window_bits=11", 1,
     "permessage-deflate; server_no_context_takeover; server_max_window_bits=11", 11, 15, 0},
    {"permessage-deflate; server_max_window_bits=8", 0, "", 0, 0, 0},
    {"permessage-deflate; server_max_window_bits", 0, "", 0, 0, 0},
    {"permessage-deflate; server_max_window_bits=16", 0, "", 0, 0, 0},
    {"permessage-deflate; server_max_window_bits=09", 0, "", 0, 0, 0},
    {"permessage-deflate; server_max_window_bits=1a", 0, "", 0, 0, 0},
    {"permessage-deflate; client_max_window_bits=7", 0, "", 0, 0, 0},
    {"permessage-deflate; client_no_context_takeover; client_no_context_takeover", 0, "", 0, 0, 0},
    {"permessage-deflate; server_no_context_takeover=yes", 0, "", 0, 0, 0},
    {"permessage-deflate; unknown", 0, "", 0, 0, 0},
    {"permessage-deflater", 0, "", 0, 0, 0},
    {"", 0, "", 0, 0, 0},
    {",,,", 0, "", 0, 0, 0},
};

static void test_negotiation(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_ELEMS(nego_cases); i++) {
        const struct nego_case *c = &nego_cases[i];
        struct gw_deflate_params p;
        char resp[GW_DEFLATE_RESPONSE_MAX] = "";
        int got;

        memset(&p, 0, sizeof(p));
        got = gw_deflate_negotiate_value(c->offer, strlen(c->offer), &p, resp);
        if (got != c->accepted)
            fail_msg("case %zu \"%s\": accepted %d", i, c->offer, got);
        if (!got)
            continue;
        assert_string_equal(resp, c->response);
        assert_int_equal(p.enabled, 1);
        assert_int_equal(p.server_window_bits, c->server_bits);
        assert_int_equal(p.client_window_bits, c->client_bits);
        assert_int_equal(p.client_no_context_takeover, c->client_no_takeover);
    }
}

/* Compress as a client with wbits, context kept in z; the tail removed. */
static size_t client_deflate(z_stream *z, const uint8_t *in, size_t len, uint8_t *out, size_t cap)
{
    z->next_in = (Bytef *)(uintptr_t)in;
    z->avail_in = (uInt)len;
    z->next_out = out;
    z->avail_out = (uInt)cap;
    assert_int_equal(deflate(z, Z_SYNC_FLUSH), Z_OK);
    assert_int_equal(z->avail_in, 0);
    return cap - z->avail_out - 4;
}

static void test_roundtrip_and_takeover(void **state)
{
    static const char text[] = "the quick brown fox jumps over the lazy dog, again and again";
    uint8_t buf[4096];
    const uint8_t *out;
    size_t n, out_len;
    z_stream z;

    (void)state;
    memset(&z, 0, sizeof(z));
    assert_int_equal(deflateInit2(&z, 6, Z_DEFLATED, -12, 8, Z_DEFAULT_STRATEGY), Z_OK);
    struct gw_inflater *inf = gw_inflater_new(12);
    for (int round = 0; round < 3; round++) { /* later rounds refer back to earlier ones */
        n = client_deflate(&z, (const uint8_t *)text, sizeof(text), buf, sizeof(buf));
        assert_int_equal(gw_inflater_message(inf, buf, n, 1000, 0, &out, &out_len), GW_INFLATE_OK);
        assert_int_equal(out_len, sizeof(text));
        assert_memory_equal(out, text, sizeof(text));
    }
    /* After a reset the window is gone: a back-reference no longer resolves. */
    n = client_deflate(&z, (const uint8_t *)text, sizeof(text), buf, sizeof(buf));
    assert_int_equal(gw_inflater_message(inf, buf, n, 1000, 1, &out, &out_len), GW_INFLATE_OK);
    n = client_deflate(&z, (const uint8_t *)text, sizeof(text), buf, sizeof(buf));
    assert_int_equal(gw_inflater_message(inf, buf, n, 1000, 1, &out, &out_len), GW_INFLATE_CORRUPT);
    gw_inflater_free(inf);
    deflateEnd(&z);
}

static void test_bomb_and_corrupt(void **state)
{
    size_t big = 4u << 20;
    uint8_t *zeros = calloc(1, big), *packed;
    const uint8_t *out;
    size_t n, out_len;

    (void)state;
    assert_int_equal(gw_deflate_compress(15, zeros, big, &packed, &n), 0);
    assert_true(n < 10000);
    struct gw_inflater *inf = gw_inflater_new(15);
    assert_int_equal(gw_inflater_message(inf, packed, n, 65536, 0, &out, &out_len),
                     GW_INFLATE_TOO_BIG);
    assert_int_equal(gw_inflater_message(inf, packed, n, big, 0, &out, &out_len), GW_INFLATE_OK);
    assert_int_equal(out_len, big);
    gw_inflater_trim(inf);
    assert_int_equal(
        gw_inflater_message(inf, (const uint8_t *)"\xff\xff\xff\xff", 4, 100, 0, &out, &out_len),
        GW_INFLATE_CORRUPT);
    gw_inflater_free(inf);
    free(packed);
    free(zeros);
}

/* RFC 7692 7.2.3.3: "Hello" in a block with BFINAL set, then one padding byte. */
static void test_bfinal_block(void **state)
{
    static const uint8_t hello[] = {0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00};
    static const uint8_t plain[] = {0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00};
    struct gw_inflater *inf = gw_inflater_new(15);
    const uint8_t *out;
    size_t out_len;

    (void)state;
    for (int i = 0; i < 2; i++) { /* the decompressor starts afresh after the final block */
        assert_int_equal(gw_inflater_message(inf, hello, sizeof(hello), 100, 0, &out, &out_len),
                         GW_INFLATE_OK);
        assert_int_equal(out_len, 5);
        assert_memory_equal(out, "Hello", 5);
    }
    assert_int_equal(gw_inflater_message(inf, plain, sizeof(plain), 100, 0, &out, &out_len),
                     GW_INFLATE_OK); /* RFC 7692 7.2.3.1 */
    assert_memory_equal(out, "Hello", 5);
    gw_inflater_free(inf);
}

static void test_frame_compressed_once(void **state)
{
    uint8_t text[2000];
    struct gw_frame *f, *c9, *c15;

    (void)state;
    for (size_t i = 0; i < sizeof(text); i++)
        text[i] = (uint8_t) "chat broker "[i % 12];
    f = gw_frame_new(GW_FRAME_TEXT, text, sizeof(text));
    c15 = gw_frame_deflated(f, 15);
    assert_ptr_not_equal(c15, f);
    assert_ptr_equal(gw_frame_deflated(f, 15), c15); /* the second receiver gets the same */
    c9 = gw_frame_deflated(f, 9);
    assert_ptr_not_equal(c9, c15);
    assert_true(gw_frame_size(c15) < gw_frame_size(f) / 4);
    gw_frame_unref(f);

    /* Short or incompressible messages go as they are. */
    f = gw_frame_new(GW_FRAME_TEXT, (const uint8_t *)"hi", 2);
    assert_ptr_equal(gw_frame_deflated(f, 15), f);
    gw_frame_unref(f);
    gw_deflate_cleanup();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_negotiation),           cmocka_unit_test(test_roundtrip_and_takeover),
        cmocka_unit_test(test_bomb_and_corrupt),      cmocka_unit_test(test_bfinal_block),
        cmocka_unit_test(test_frame_compressed_once),
    };

    return cmocka_run_group_tests_name("deflate", tests, NULL, NULL);
}
