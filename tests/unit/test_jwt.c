/*
 * Unit tests of proto/jwt.h: the HS256 example of RFC 7515 appendix A.1 as a known answer,
 * sign-then-verify round trips, every refusal, the leeway edges and the rooms claim.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto/jwt.h"
#include "proto/proto.h"
#include "proto/xalloc.h"

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

static const char key[] = "unit-test-secret-0123456789abcdef";
#define KEY ((const uint8_t *)key), (sizeof(key) - 1)
#define NOW 1800000000LL

static int verify(const char *token, int64_t now, unsigned leeway, struct proto_jwt_claims *c)
{
    return proto_jwt_verify(token, strlen(token), KEY, now, leeway, c);
}

/* A token for the claims text, signed with key. */
static char *sign(const char *claims)
{
    char *t = proto_jwt_sign(claims, strlen(claims), KEY);

    assert_non_null(t);
    return t;
}

/* RFC 7515 A.1: its signature verifies (the claims then lack "sub", which we require). */
static void test_rfc7515_example(void **state)
{
    static const uint8_t k[] =
        "\x03\x23\x35\x4b\x2b\x0f\xa5\xbc\x83\x7e\x06\x65\x77\x7b\xa6\x8f\x5a\xb3\x28\xe6\xf0\x54"
        "\xc9\x28\xa9\x0f\x84\xb2\xd2\x50\x2e\xbf\xd3\xfb\x5a\x92\xd2\x06\x47\xef\x96\x8a\xb4\xc3"
        "\x77\x62\x3d\x22\x3d\x2e\x21\x72\x05\x2e\x4f\x08\xc0\xcd\x9a\xf5\x67\xd0\x80\xa3";
    static const char token[] =
        "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9."
        "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0"
        "cnVlfQ.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    struct proto_jwt_claims c;
    char bad[sizeof(token)];

    (void)state;
    assert_int_equal(
        proto_jwt_verify(token, sizeof(token) - 1, k, sizeof(k) - 1, 1300819000, 0, &c),
        PROTO_JWT_CLAIMS);
    memcpy(bad, token, sizeof(token));
    bad[sizeof(token) - 2] = bad[sizeof(token) - 2] == 'k' ? 'j' : 'k';
    assert_int_equal(proto_jwt_verify(bad, sizeof(bad) - 1, k, sizeof(k) - 1, 1300819000, 0, &c),
                     PROTO_JWT_SIGNATURE);
}

static void test_round_trip(void **state)
{
    struct proto_jwt_claims c;
    char *t = sign("{\"sub\":\"ann\",\"name\":\"Ann \\u00e9\",\"exp\":1800000100,"
                   "\"rooms\":[\"lobby\",\"team-*\"],\"extra\":{\"ignored\":true}}");

    (void)state;
    assert_int_equal(verify(t, NOW, 0, &c), PROTO_JWT_OK);
    assert_string_equal(c.sub, "ann");
    assert_string_equal(c.name, "Ann \xc3\xa9");
    assert_int_equal(c.exp, 1800000100);
    assert_int_equal(c.has_rooms, 1);
    assert_int_equal(c.n_rooms, 2);
    assert_true(proto_jwt_allows_room(&c, "lobby"));
    assert_true(proto_jwt_allows_room(&c, "team-"));
    assert_true(proto_jwt_allows_room(&c, "team-red"));
    assert_false(proto_jwt_allows_room(&c, "team"));
    assert_false(proto_jwt_allows_room(&c, "lobby2"));
    proto_jwt_claims_clear(&c);
    free(t);
    /* Only the canonical spelling of the signature verifies: its last character has two bits
     * to spare, which a decoder ignores, and each of the three other spellings is refused. */
    t = sign("{\"sub\":\"ann\",\"exp\":1800000100}");
    {
        static const char alphabet[] =
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        size_t n = strlen(t);
        int last = (int)(strchr(alphabet, t[n - 1]) - alphabet), other = 0;

        assert_int_equal(last & 3, 0);
        for (int spare = 1; spare < 4; spare++) {
            t[n - 1] = alphabet[last | spare];
            assert_int_equal(verify(t, NOW, 0, &c), PROTO_JWT_SIGNATURE);
            other++;
        }
        assert_int_equal(other, 3);
    }
    free(t);
    /* Another key never verifies it. */
    t = sign("{\"sub\":\"ann\",\"exp\":1800000100}");
    assert_int_equal(proto_jwt_verify(t, strlen(t),
                                      (const uint8_t *)"another key, long enough.....", 29, NOW, 0,
                                      &c),
                     PROTO_JWT_SIGNATURE);
    free(t);
}

static void test_leeway_edges(void **state)
{
    struct proto_jwt_claims c;
    char *t = sign("{\"sub\":\"a\",\"exp\":1800000000,\"nbf\":1799999990}");

    (void)state;
    assert_int_equal(verify(t, NOW, 0, &c), PROTO_JWT_OK); /* exp is the last valid second */
    proto_jwt_claims_clear(&c);
    assert_int_equal(verify(t, NOW + 1, 0, &c), PROTO_JWT_EXPIRED);
    assert_int_equal(verify(t, NOW + 30, 30, &c), PROTO_JWT_OK);
    proto_jwt_claims_clear(&c);
    assert_int_equal(verify(t, NOW + 31, 30, &c), PROTO_JWT_EXPIRED);
    assert_int_equal(verify(t, NOW - 10, 0, &c), PROTO_JWT_OK);
    proto_jwt_claims_clear(&c);
    assert_int_equal(verify(t, NOW - 11, 0, &c), PROTO_JWT_NOT_YET);
    assert_int_equal(verify(t, NOW - 40, 30, &c), PROTO_JWT_OK);
    proto_jwt_claims_clear(&c);
    free(t);
    /* Fractional NumericDates round down. */
    t = sign("{\"sub\":\"a\",\"exp\":1800000000.9}");
    assert_int_equal(verify(t, NOW, 0, &c), PROTO_JWT_OK);
    assert_int_equal(c.exp, NOW);
    proto_jwt_claims_clear(&c);
    free(t);
}

struct claims_case {
    const char *claims;
    int want;
};

static const struct claims_case claims_cases[] = {
    {"{\"exp\":1800000001}", PROTO_JWT_CLAIMS},
    {"{\"sub\":\"a\"}", PROTO_JWT_CLAIMS},
    {"{\"sub\":\"\",\"exp\":1800000001}", PROTO_JWT_CLAIMS},
    {"{\"sub\":1,\"exp\":1800000001}", PROTO_JWT_CLAIMS},
    {"{\"sub\":\"a\\u0001\",\"exp\":1800000001}", PROTO_JWT_CLAIMS},
    {"{\"sub\":\"a\\u0000b\",\"exp\":1800000001}", PROTO_JWT_MALFORMED},
    {"{\"sub\":\"a\",\"exp\":\"1800000001\"}", PROTO_JWT_CLAIMS},
    {"{\"sub\":\"a\",\"exp\":-1}", PROTO_JWT_CLAIMS},
    {"{\"sub\":\"a\",\"exp\":1e300}", PROTO_JWT_CLAIMS},
    {"{\"sub\":\"a\",\"exp\":1800000001,\"nbf\":true}", PROTO_JWT_CLAIMS},
    {"{\"sub\":\"a\",\"exp\":1800000001,\"name\":5}", PROTO_JWT_CLAIMS},
    {"{\"sub\":\"a\",\"exp\":1800000001,\"rooms\":\"lobby\"}", PROTO_JWT_CLAIMS},
    {"{\"sub\":\"a\",\"exp\":1800000001,\"rooms\":[\"ok\",\"not ok\"]}", PROTO_JWT_CLAIMS},
    {"{\"sub\":\"a\",\"exp\":1800000001,\"rooms\":[\"a*b\"]}", PROTO_JWT_CLAIMS},
    {"{\"sub\":\"a\",\"exp\":1800000001,\"rooms\":[1]}", PROTO_JWT_CLAIMS},
    {"{\"sub\":\"a\",\"exp\":1800000001,\"rooms\":[]}", PROTO_JWT_OK},
    {"{\"sub\":\"a\",\"exp\":1800000001,\"rooms\":[\"*\"]}", PROTO_JWT_OK},
    {"{\"sub\":\"0123456789012345678901234567890123456789012345678901234567890123\","
     "\"exp\":1800000001}",
     PROTO_JWT_OK},
    {"{\"sub\":\"01234567890123456789012345678901234567890123456789012345678901234\","
     "\"exp\":1800000001}",
     PROTO_JWT_CLAIMS},
    {"{\"sub\":\"\xc3\x28\",\"exp\":1800000001}", PROTO_JWT_MALFORMED}, /* invalid UTF-8 */
};

static void test_claims_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_ELEMS(claims_cases); i++) {
        struct proto_jwt_claims c;
        const char *text = claims_cases[i].claims;
        char *t = proto_jwt_sign(text, strlen(text), KEY);
        int rc;

        if (t == NULL) {
            fail_msg("case %zu did not sign: %s", i, text);
            continue;
        }
        rc = verify(t, NOW, 0, &c);
        if (rc != claims_cases[i].want)
            fail_msg("case %zu: got %d want %d for %s", i, rc, claims_cases[i].want, text);
        proto_jwt_claims_clear(&c);
        free(t);
    }
}

/* Tokens whose form is wrong, whatever the key. */
static void test_malformed(void **state)
{
    static const char *const cases[] = {
        "",
        "a",
        "a.b",
        "a.b.c.d",
        "..",
        "e30.e30.",      /* {}.{}. : header without alg */
        "e30.e30.AAAA",  /* ditto */
        "!!!.e30.AAAA",  /* not base64url */
        "e30=.e30.AAAA", /* padding */
        "eyJhbGciOiJIUzI1NiJ9 .e30.AAAA",
        "WzFd.e30.AAAA",              /* [1] */
        "eyJhbGciOiJIUzI1NiJ9.e30.A", /* a length no base64 has */
    };
    struct proto_jwt_claims c;

    (void)state;
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        int rc = verify(cases[i], NOW, 0, &c);

        if (rc != PROTO_JWT_MALFORMED && rc != PROTO_JWT_ALGORITHM && rc != PROTO_JWT_SIGNATURE)
            fail_msg("case %zu (%s): got %d", i, cases[i], rc);
        if (rc == PROTO_JWT_OK)
            fail_msg("case %zu accepted", i);
    }
    /* Over the length limit. */
    char *long_token = xmalloc(PROTO_JWT_MAX + 2);
    memset(long_token, 'A', PROTO_JWT_MAX + 1);
    long_token[PROTO_JWT_MAX + 1] = '\0';
    assert_int_equal(verify(long_token, NOW, 0, &c), PROTO_JWT_MALFORMED);
    free(long_token);
}

static void test_algorithms(void **state)
{
    /* Each validly signed with the key over a header other than {"alg":"HS256"}. */
    static const char *const tokens[] = {
        /* {"alg":"none"} */
        "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhIiwiZXhwIjoxODAwMDAwMDAxfQ."
        "fIDn4L6CAeekEagPpJROWJNxDbRdr1DQ6rlER126YlI",
        /* {"alg":"HS512"} */
        "eyJhbGciOiJIUzUxMiJ9.eyJzdWIiOiJhIiwiZXhwIjoxODAwMDAwMDAxfQ."
        "Ao4_lp2vKhheNqI_kDqbnOES3HBuRGZQKJZbOkhF7CA",
        /* {"alg":"hs256"} */
        "eyJhbGciOiJoczI1NiJ9.eyJzdWIiOiJhIiwiZXhwIjoxODAwMDAwMDAxfQ."
        "a92pUwyASTH_sDIrFACNmhXBHq8j7ID3JlB-c9QeA4g",
        /* {"typ":"JWT"} */
        "eyJ0eXAiOiJKV1QifQ.eyJzdWIiOiJhIiwiZXhwIjoxODAwMDAwMDAxfQ."
        "kDLDlJ2XvTOVPcrkIzUOqPipUiCOrbKm6f8bi-vw2u0",
        /* {"alg":"HS256","crit":["exp"]} */
        "eyJhbGciOiJIUzI1NiIsImNyaXQiOlsiZXhwIl19.eyJzdWIiOiJhIiwiZXhwIjoxODAwMDAwMDAxfQ."
        "LIFtUECw1dnHALFmxcO5MiOzrcJjLXpGiLspkf3sSUM",
        /* {"alg":["HS256"]} */
        "eyJhbGciOlsiSFMyNTYiXX0.eyJzdWIiOiJhIiwiZXhwIjoxODAwMDAwMDAxfQ."
        "yZ28fB_SN4tbsX5K7rZpYC8GNBMNyJSryOQrfYTQeyc",
    };
    struct proto_jwt_claims c;

    (void)state;
    for (size_t i = 0; i < N_ELEMS(tokens); i++) {
        int rc = verify(tokens[i], NOW, 0, &c);

        if (rc != PROTO_JWT_ALGORITHM)
            fail_msg("token %zu: got %d", i, rc);
    }
}

/* A member named twice is read one way by cJSON (the first) and another by many libraries
 * (the last): validly signed or not, such a header or payload is refused. */
static void test_duplicate_names(void **state)
{
    static const char *const tokens[] = {
        /* {"sub":"ann","sub":"admin",...} */
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbm4iLCJzdWIiOiJhZG1pbiIsImV4cCI6MTgwMDAwMDAwMX0."
        "wzk_Bmvp5P0OcvmuBZGyEIDPsmemOlRxmglLaPTbVeI",
        /* {"alg":"HS256","alg":"none"} */
        "eyJhbGciOiJIUzI1NiIsImFsZyI6Im5vbmUifQ.eyJzdWIiOiJhIiwiZXhwIjoxODAwMDAwMDAxfQ."
        "yXyR86xYnKD0-glBpjr-m7byDR-Hgx3nRGxdQN3fSOQ",
    };
    struct proto_jwt_claims c;

    (void)state;
    for (size_t i = 0; i < N_ELEMS(tokens); i++) {
        assert_int_equal(verify(tokens[i], NOW, 0, &c), PROTO_JWT_MALFORMED);
        assert_string_equal(c.sub, "");
    }
}

static void test_strerror(void **state)
{
    (void)state;
    for (int rc = PROTO_JWT_CLAIMS; rc <= PROTO_JWT_OK; rc++)
        assert_non_null(proto_jwt_strerror(rc));
    assert_string_equal(proto_jwt_strerror(PROTO_JWT_EXPIRED), "token expired");
    assert_null(proto_jwt_sign("[1]", 3, KEY));
    assert_null(proto_jwt_sign("nope", 4, KEY));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc7515_example), cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_leeway_edges),    cmocka_unit_test(test_claims_table),
        cmocka_unit_test(test_malformed),       cmocka_unit_test(test_algorithms),
        cmocka_unit_test(test_duplicate_names), cmocka_unit_test(test_strerror),
    };

    proto_init(xmalloc, free);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
