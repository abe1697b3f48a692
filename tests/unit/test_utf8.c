/*
 * Unit tests of proto/utf8.h: a table of valid and invalid sequences, each fed whole, one
 * byte at a time and split at every position; then a comparison with a naive reference
 * decoder over every 1- and 2-byte input and pseudo-random strings of 1 to 6 bytes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "proto/utf8.h"

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))
#define BYTES(lit) (const uint8_t *)(lit), sizeof(lit) - 1
/* No invalid byte: the text is valid, or a valid prefix cut short. */
#define NO_BAD SIZE_MAX

struct utf8_case {
    const char *name;
    const uint8_t *buf;
    size_t len;
    int valid;  /* valid and complete */
    size_t bad; /* index of the first byte that makes the text invalid, or NO_BAD */
};

static const struct utf8_case cases[] = {
    /* valid */
    {"empty", BYTES(""), 1, NO_BAD},
    {"ascii", BYTES("hello, world"), 1, NO_BAD},
    {"nul", BYTES("\x00"), 1, NO_BAD},
    {"U+007F", BYTES("\x7f"), 1, NO_BAD},
    {"U+0080", BYTES("\xc2\x80"), 1, NO_BAD},
    {"U+00E9", BYTES("\xc3\xa9"), 1, NO_BAD},
    {"U+07FF", BYTES("\xdf\xbf"), 1, NO_BAD},
    {"U+0800", BYTES("\xe0\xa0\x80"), 1, NO_BAD},
    {"U+20AC", BYTES("\xe2\x82\xac"), 1, NO_BAD},
    {"U+D7FF", BYTES("\xed\x9f\xbf"), 1, NO_BAD},
    {"U+E000", BYTES("\xee\x80\x80"), 1, NO_BAD},
    {"U+FEFF", BYTES("\xef\xbb\xbf"), 1, NO_BAD},
    {"U+FFFF", BYTES("\xef\xbf\xbf"), 1, NO_BAD},
    {"U+10000", BYTES("\xf0\x90\x80\x80"), 1, NO_BAD},
    {"U+1F600", BYTES("\xf0\x9f\x98\x80"), 1, NO_BAD},
    {"U+FFFFF", BYTES("\xf3\xbf\xbf\xbf"), 1, NO_BAD},
    {"U+10FFFF", BYTES("\xf4\x8f\xbf\xbf"), 1, NO_BAD},
    {"greek", BYTES("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"), 1, NO_BAD},
    {"mixed",
     BYTES("a\xc2\x80"
           "b\xe0\xa0\x80"
           "c\xf0\x90\x80\x80"
           "d"),
     1, NO_BAD},
    {"long ascii then 2-byte", BYTES("abcdefghijklmnopqrs\xc2\xa9tuvwxyz0123456789"), 1, NO_BAD},
    /* overlong */
    {"overlong C0 80", BYTES("\xc0\x80"), 0, 0},
    {"overlong C1 BF", BYTES("\xc1\xbf"), 0, 0},
    {"overlong E0 80 80", BYTES("\xe0\x80\x80"), 0, 1},
    {"overlong E0 9F BF", BYTES("\xe0\x9f\xbf"), 0, 1},
    {"overlong F0 80 80 80", BYTES("\xf0\x80\x80\x80"), 0, 1},
    {"overlong F0 8F BF BF", BYTES("\xf0\x8f\xbf\xbf"), 0, 1},
    /* surrogates */
    {"surrogate ED A0 80", BYTES("\xed\xa0\x80"), 0, 1},
    {"surrogate ED AD BF", BYTES("\xed\xad\xbf"), 0, 1},
    {"surrogate ED B0 80", BYTES("\xed\xb0\x80"), 0, 1},
    {"surrogate ED BF BF", BYTES("\xed\xbf\xbf"), 0, 1},
    {"surrogate pair", BYTES("\xed\xa0\xbd\xed\xb8\x80"), 0, 1},
    /* above U+10FFFF */
    {"F4 90 80 80", BYTES("\xf4\x90\x80\x80"), 0, 1},
    {"F4 BF BF BF", BYTES("\xf4\xbf\xbf\xbf"), 0, 1},
    {"F5 80 80 80", BYTES("\xf5\x80\x80\x80"), 0, 0},
    {"F7 BF BF BF", BYTES("\xf7\xbf\xbf\xbf"), 0, 0},
    {"F8 88 80 80 80", BYTES("\xf8\x88\x80\x80\x80"), 0, 0},
    {"FC 84 80 80 80 80", BYTES("\xfc\x84\x80\x80\x80\x80"), 0, 0},
    {"FE", BYTES("\xfe"), 0, 0},
    {"FF", BYTES("\xff"), 0, 0},
    {"ascii then FF", BYTES("abc\xff"), 0, 3},
    /* lone and extra continuation bytes */
    {"lone 80", BYTES("\x80"), 0, 0},
    {"lone BF", BYTES("\xbf"), 0, 0},
    {"ascii 80 ascii", BYTES("a\x80z"), 0, 1},
    {"extra continuation", BYTES("\xc2\x80\x80"), 0, 2},
    {"extra after 4-byte", BYTES("\xf0\x90\x80\x80\x80"), 0, 4},
    {"long ascii then 80", BYTES("abcdefghijklmnop\x80"), 0, 16},
    {"long ascii, 80 at 9", BYTES("abcdefghi\x80jklmnopqr"), 0, 9},
    /* truncated */
    {"truncated C2", BYTES("\xc2"), 0, NO_BAD},
    {"truncated E0 A0", BYTES("\xe0\xa0"), 0, NO_BAD},
    {"truncated E2", BYTES("\xe2"), 0, NO_BAD},
    {"truncated F0 90 80", BYTES("\xf0\x90\x80"), 0, NO_BAD},
    {"truncated F4 8F", BYTES("\xf4\x8f"), 0, NO_BAD},
    {"text then truncated", BYTES("abc\xe2\x82"), 0, NO_BAD},
    {"truncated then ascii",
     BYTES("\xc2"
           "a"),
     0, 1},
    {"truncated 3 then ascii",
     BYTES("\xe2\x82"
           "a"),
     0, 2},
    {"truncated 4 then lead", BYTES("\xf0\x90\x80\xc2\x80"), 0, 3},
    {"4-byte bad last", BYTES("\xf4\x8f\xbf\xc0"), 0, 3},
    {"bad after valid", BYTES("\xe2\x82\xac\xed\xa0\x80"), 0, 4},
};

/* Check a run of feeds over the pieces of c split at the given cut points (ascending). */
static void check_pieces(const struct utf8_case *c, const size_t *cuts, size_t n_cuts)
{
    struct proto_utf8 st;
    size_t start = 0;

    proto_utf8_init(&st);
    for (size_t k = 0; k <= n_cuts; k++) {
        size_t end = k < n_cuts ? cuts[k] : c->len;
        /* Once a piece holds the bad byte, this and every later feed fails. */
        int want = (c->bad != NO_BAD && c->bad < end) ? -1 : 0;
        int got = proto_utf8_feed(&st, c->buf + start, end - start);

        if (got != want)
            fail_msg("%s: feed [%zu, %zu) = %d, want %d", c->name, start, end, got, want);
        start = end;
    }
    if (proto_utf8_is_complete(&st) != c->valid)
        fail_msg("%s: is_complete = %d, want %d", c->name, proto_utf8_is_complete(&st), c->valid);
}

static void test_table_whole(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        const struct utf8_case *c = &cases[i];

        assert_true(c->valid == 0 || c->bad == NO_BAD);
        if (proto_utf8_is_valid(c->buf, c->len) != c->valid)
            fail_msg("%s: is_valid != %d", c->name, c->valid);
        check_pieces(c, NULL, 0);
    }
}

static void test_table_byte_by_byte(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        const struct utf8_case *c = &cases[i];
        size_t cuts[64];

        assert_true(c->len <= N_ELEMS(cuts));
        /* a cut after every byte */
        for (size_t k = 0; k + 1 < c->len; k++)
            cuts[k] = k + 1;
        check_pieces(c, cuts, c->len > 0 ? c->len - 1 : 0);
    }
}

static void test_table_split_everywhere(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        const struct utf8_case *c = &cases[i];

        for (size_t cut = 0; cut <= c->len; cut++)
            check_pieces(c, &cut, 1);
        /* two cuts: every pair */
        for (size_t a = 0; a <= c->len; a++) {
            for (size_t b = a; b <= c->len; b++) {
                size_t cuts[2] = {a, b};

                check_pieces(c, cuts, 2);
            }
        }
    }
}

/* Feeding zero bytes changes nothing; a failed state stays failed. */
static void test_empty_feeds_and_sticky_failure(void **state)
{
    struct proto_utf8 st;

    (void)state;
    proto_utf8_init(&st);
    assert_int_equal(proto_utf8_feed(&st, (const uint8_t *)"", 0), 0);
    assert_int_equal(proto_utf8_is_complete(&st), 1);
    assert_int_equal(proto_utf8_feed(&st, (const uint8_t *)"\xe2", 1), 0);
    assert_int_equal(proto_utf8_is_complete(&st), 0);
    assert_int_equal(proto_utf8_feed(&st, (const uint8_t *)"", 0), 0);
    assert_int_equal(proto_utf8_feed(&st, (const uint8_t *)"\x82\xac", 2), 0);
    assert_int_equal(proto_utf8_is_complete(&st), 1);
    assert_int_equal(proto_utf8_feed(&st, (const uint8_t *)"\xff", 1), -1);
    assert_int_equal(proto_utf8_is_complete(&st), 0);
    assert_int_equal(proto_utf8_feed(&st, (const uint8_t *)"a", 1), -1);
    assert_int_equal(proto_utf8_feed(&st, (const uint8_t *)"", 0), -1);
    assert_int_equal(proto_utf8_is_complete(&st), 0);
    /* init starts over */
    proto_utf8_init(&st);
    assert_int_equal(proto_utf8_feed(&st, (const uint8_t *)"a", 1), 0);
    assert_int_equal(proto_utf8_is_complete(&st), 1);
}

/* ---- reference implementation ------------------------------------------------------------ */

/*
 * Naive decoder: 1 if buf[0..len) is valid UTF-8, 0 if it is a valid text cut inside its last
 * code point, -1 if no bytes appended could make it valid. A cut code point is viable if some
 * completion with continuation bytes lands in the allowed range minus the surrogates.
 */
static int ref_check(const uint8_t *buf, size_t len)
{
    static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    size_t i = 0;

    while (i < len) {
        uint8_t c = buf[i];
        size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        uint32_t lo, hi;
        size_t k;

        if (n == 0)
            return -1;
        lo = hi = n == 1 ? c : (uint32_t)(c & (0x7f >> n));
        for (k = 1; k < n; k++) {
            if (i + k < len) {
                if ((buf[i + k] & 0xc0) != 0x80)
                    return -1;
                lo = hi = (lo << 6) | (buf[i + k] & 0x3fu);
            } else {
                lo = lo << 6;
                hi = (hi << 6) | 0x3f;
            }
        }
        if (lo < min_cp[n])
            lo = min_cp[n];
        if (hi > 0x10ffff)
            hi = 0x10ffff;
        if (lo > hi || (lo >= 0xd800 && hi <= 0xdfff))
            return -1;
        if (i + n > len)
            return 0;
        i += n;
    }
    return 1;
}

/* Index of the first byte after which no completion can be valid, or NO_BAD. */
static size_t ref_first_bad(const uint8_t *buf, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (ref_check(buf, i + 1) < 0)
            return i;
    return NO_BAD;
}

/* Compare proto_utf8 with the reference on buf: whole, byte by byte, and split at cut. */
static void compare_with_ref(const uint8_t *buf, size_t len, size_t cut)
{
    int ref = ref_check(buf, len);
    size_t bad = ref_first_bad(buf, len);
    struct proto_utf8 st;
    size_t got_bad = NO_BAD;

    if (proto_utf8_is_valid(buf, len) != (ref == 1))
        fail_msg("is_valid differs from the reference on %zu bytes %02x %02x %02x %02x %02x %02x",
                 len, buf[0], len > 1 ? buf[1] : 0, len > 2 ? buf[2] : 0, len > 3 ? buf[3] : 0,
                 len > 4 ? buf[4] : 0, len > 5 ? buf[5] : 0);
    proto_utf8_init(&st);
    for (size_t i = 0; i < len; i++) {
        if (proto_utf8_feed(&st, buf + i, 1) < 0 && got_bad == NO_BAD)
            got_bad = i;
    }
    if (got_bad != bad)
        fail_msg("first bad byte %zu, reference %zu (len %zu, %02x %02x %02x)", got_bad, bad, len,
                 buf[0], len > 1 ? buf[1] : 0, len > 2 ? buf[2] : 0);
    assert_int_equal(proto_utf8_is_complete(&st), ref == 1);
    proto_utf8_init(&st);
    assert_int_equal(proto_utf8_feed(&st, buf, cut), bad < cut ? -1 : 0);
    assert_int_equal(proto_utf8_feed(&st, buf + cut, len - cut), bad == NO_BAD ? 0 : -1);
    assert_int_equal(proto_utf8_is_complete(&st), ref == 1);
}

/* The reference itself, on points of the table. */
static void test_reference_agrees_with_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        const struct utf8_case *c = &cases[i];

        if ((ref_check(c->buf, c->len) == 1) != c->valid || ref_first_bad(c->buf, c->len) != c->bad)
            fail_msg("reference disagrees with the table on %s", c->name);
    }
}

static void test_all_short_inputs(void **state)
{
    uint8_t buf[2];

    (void)state;
    for (unsigned a = 0; a < 256; a++) {
        buf[0] = (uint8_t)a;
        compare_with_ref(buf, 1, 0);
        compare_with_ref(buf, 1, 1);
        for (unsigned b = 0; b < 256; b++) {
            buf[1] = (uint8_t)b;
            compare_with_ref(buf, 2, 1);
        }
    }
}

/* splitmix64: a fixed seed gives the same strings on every run. */
static uint64_t next_random(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* A byte biased towards the edges of the ranges, so valid multi-byte sequences are common. */
static uint8_t random_byte(uint64_t *s)
{
    static const uint8_t edges[] = {0x00, 0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf,
                                    0xc0, 0xc1, 0xc2, 0xdf, 0xe0, 0xe1, 0xec, 0xed, 0xee,
                                    0xef, 0xf0, 0xf1, 0xf3, 0xf4, 0xf5, 0xf7, 0xf8, 0xff};
    uint64_t r = next_random(s);

    switch (r % 4) {
    case 0:
        return edges[(r >> 8) % N_ELEMS(edges)];
    case 1:
    case 2:
        return (uint8_t)(0x80 + ((r >> 8) % 0x40)); /* continuation */
    default:
        return (uint8_t)(r >> 8);
    }
}

static void test_random_against_reference(void **state)
{
    uint64_t seed = 0x5eed2025u;
    size_t n_valid = 0;

    (void)state;
    for (size_t i = 0; i < 300000; i++) {
        uint8_t buf[6];
        size_t len = 1 + next_random(&seed) % 6;

        for (size_t k = 0; k < len; k++)
            buf[k] = random_byte(&seed);
        compare_with_ref(buf, len, next_random(&seed) % (len + 1));
        n_valid += ref_check(buf, len) == 1;
    }
    /* the generator must reach both outcomes often */
    assert_true(n_valid > 10000);
    assert_true(n_valid < 290000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_whole),
        cmocka_unit_test(test_table_byte_by_byte),
        cmocka_unit_test(test_table_split_everywhere),
        cmocka_unit_test(test_empty_feeds_and_sticky_failure),
        cmocka_unit_test(test_reference_agrees_with_table),
        cmocka_unit_test(test_all_short_inputs),
        cmocka_unit_test(test_random_against_reference),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
