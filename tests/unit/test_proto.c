/*
 * Unit tests of proto/proto.h and proto/channel.h: every client message type decoded, and
 * hostile input refused with the right error (non-objects, wrong types, deep nesting, huge
 * numbers, duplicate keys, NUL and invalid UTF-8, missing and unknown fields, oversized
 * values); server messages encoded and read back.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "proto/channel.h"
#include "proto/proto.h"

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))
#define TEXT_MAX 100

static int decode(const char *json, struct proto_msg *msg)
{
    return proto_decode_client((const uint8_t *)json, strlen(json), TEXT_MAX, msg);
}

/* ---- accepted messages -------------------------------------------------------------------- */

static void test_decode_each_type(void **state)
{
    struct proto_msg m;

    (void)state;
    assert_int_equal(decode("{\"type\":\"hello\",\"username\":\"ann\",\"email\":\"a@b.c\"}", &m),
                     PROTO_OK);
    assert_int_equal(m.type, PROTO_HELLO);
    assert_string_equal(m.username, "ann");
    assert_string_equal(m.email, "a@b.c");
    proto_msg_clear(&m);

    assert_int_equal(decode("{\"type\":\"hello\",\"username\":\"b\"}", &m), PROTO_OK);
    assert_string_equal(m.email, "");
    proto_msg_clear(&m);

    assert_int_equal(decode(" {\"room\":\"r-1.a:b_c\",\"type\":\"join\"} \n", &m), PROTO_OK);
    assert_int_equal(m.type, PROTO_JOIN);
    assert_string_equal(m.room, "r-1.a:b_c");
    proto_msg_clear(&m);

    assert_int_equal(decode("{\"type\":\"leave\",\"room\":\"lobby\"}", &m), PROTO_OK);
    assert_int_equal(m.type, PROTO_LEAVE);
    proto_msg_clear(&m);

    assert_int_equal(
        decode("{\"type\":\"message\",\"room\":\"lobby\",\"message\":\"h\\u00e9 \\ud83d"
               "\\ude00 \\\"q\\\"\"}",
               &m),
        PROTO_OK);
    assert_int_equal(m.type, PROTO_MESSAGE);
    assert_string_equal(m.text, "h\xc3\xa9 \xf0\x9f\x98\x80 \"q\"");
    assert_int_equal(m.text_len, strlen(m.text));
    assert_int_equal(m.has_identity, 0);
    proto_msg_clear(&m);

    assert_int_equal(decode("{\"type\":\"direct\",\"to\":\"0123456789abcdef0123456789abcdef\","
                            "\"message\":\"x\"}",
                            &m),
                     PROTO_OK);
    assert_int_equal(m.type, PROTO_DIRECT);
    assert_string_equal(m.to, "0123456789abcdef0123456789abcdef");
    proto_msg_clear(&m);
}

static void test_decode_seed_format(void **state)
{
    struct proto_msg m;

    (void)state;
    assert_int_equal(decode("{\"email\":\"e@x\",\"username\":\"seed\",\"message\":\"hello\"}", &m),
                     PROTO_OK);
    assert_int_equal(m.type, PROTO_MESSAGE);
    assert_string_equal(m.room, "lobby");
    assert_string_equal(m.username, "seed");
    assert_string_equal(m.email, "e@x");
    assert_string_equal(m.text, "hello");
    assert_int_equal(m.has_identity, 1);
    proto_msg_clear(&m);

    assert_int_equal(decode("{\"message\":\"only text\"}", &m), PROTO_OK);
    assert_int_equal(m.has_identity, 0);
    assert_string_equal(m.room, "lobby");
    proto_msg_clear(&m);
}

static void test_unknown_fields_ignored(void **state)
{
    struct proto_msg m;

    (void)state;
    assert_int_equal(
        decode("{\"type\":\"join\",\"room\":\"a\",\"x\":[1,{\"y\":null}],\"z\":1e308}", &m),
        PROTO_OK);
    proto_msg_clear(&m);
}

/* ---- refused messages --------------------------------------------------------------------- */

struct bad_case {
    const char *json;
    int want;
};

static const struct bad_case bad_cases[] = {
    {"", PROTO_ERR_JSON},
    {"not json", PROTO_ERR_JSON},
    {"{", PROTO_ERR_JSON},
    {"{\"type\":\"join\",\"room\":\"a\"} x", PROTO_ERR_JSON},
    {"{\"type\":\"join\",\"room\":\"a\"}{}", PROTO_ERR_JSON},
    {"{\"type\":\"message\",\"room\":\"a\",\"message\":\"\\ud800\"}", PROTO_ERR_JSON},
    {"{\"type\":\"message\",\"room\":\"a\",\"message\":\"\\udc00x\"}", PROTO_ERR_JSON},
    {"[]", PROTO_ERR_SHAPE},
    {"[{\"type\":\"join\",\"room\":\"a\"}]", PROTO_ERR_SHAPE},
    {"42", PROTO_ERR_SHAPE},
    {"1e999999", PROTO_ERR_SHAPE},
    {"\"join\"", PROTO_ERR_SHAPE},
    {"null", PROTO_ERR_SHAPE},
    {"true", PROTO_ERR_SHAPE},
    {"{}", PROTO_ERR_MISSING},
    {"{\"type\":1}", PROTO_ERR_SHAPE},
    {"{\"type\":null,\"message\":\"x\"}", PROTO_ERR_SHAPE},
    {"{\"type\":[\"join\"]}", PROTO_ERR_SHAPE},
    {"{\"type\":\"JOIN\",\"room\":\"a\"}", PROTO_ERR_TYPE},
    {"{\"type\":\"welcome\"}", PROTO_ERR_TYPE},
    {"{\"type\":\"\"}", PROTO_ERR_TYPE},
    {"{\"type\":\"join\"}", PROTO_ERR_MISSING},
    {"{\"type\":\"join\",\"room\":5}", PROTO_ERR_SHAPE},
    {"{\"type\":\"join\",\"room\":123456789012345678901234567890}", PROTO_ERR_SHAPE},
    {"{\"type\":\"join\",\"room\":{\"a\":1}}", PROTO_ERR_SHAPE},
    {"{\"type\":\"join\",\"room\":\"\"}", PROTO_ERR_ROOM},
    {"{\"type\":\"join\",\"room\":\"a b\"}", PROTO_ERR_ROOM},
    {"{\"type\":\"join\",\"room\":\"a/b\"}", PROTO_ERR_ROOM},
    {"{\"type\":\"join\",\"room\":\"caf\xc3\xa9\"}", PROTO_ERR_ROOM},
    {"{\"type\":\"join\",\"room\":"
     "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}",
     PROTO_ERR_ROOM},
    {"{\"type\":\"join\",\"room\":\"a\",\"room\":\"b\"}", PROTO_ERR_SHAPE},
    {"{\"type\":\"join\",\"type\":\"leave\",\"room\":\"a\"}", PROTO_ERR_SHAPE},
    {"{\"type\":\"message\",\"room\":\"a\"}", PROTO_ERR_MISSING},
    {"{\"type\":\"message\",\"message\":\"x\"}", PROTO_ERR_MISSING},
    {"{\"type\":\"message\",\"room\":\"a\",\"message\":7}", PROTO_ERR_SHAPE},
    {"{\"type\":\"message\",\"room\":\"a\",\"message\":\"a\\u0000b\"}", PROTO_ERR_TEXT},
    {"{\"type\":\"message\",\"room\":\"a\",\"message\":\"\\u0000\"}", PROTO_ERR_TEXT},
    {"{\"type\":\"direct\",\"message\":\"x\"}", PROTO_ERR_MISSING},
    {"{\"type\":\"direct\",\"to\":\"abc\",\"message\":\"x\"}", PROTO_ERR_TARGET},
    {"{\"type\":\"direct\",\"to\":\"0123456789ABCDEF0123456789abcdef\",\"message\":\"x\"}",
     PROTO_ERR_TARGET},
    {"{\"type\":\"direct\",\"to\":\"0123456789abcdef0123456789abcdeg\",\"message\":\"x\"}",
     PROTO_ERR_TARGET},
    {"{\"type\":\"hello\"}", PROTO_ERR_MISSING},
    {"{\"type\":\"hello\",\"username\":\"\"}", PROTO_ERR_TEXT},
    {"{\"type\":\"hello\",\"username\":\"a\\nb\"}", PROTO_ERR_TEXT},
    {"{\"type\":\"hello\",\"username\":\"a\\u007fb\"}", PROTO_ERR_TEXT},
    {"{\"type\":\"hello\",\"username\":\"x\",\"email\":\"a\\tb\"}", PROTO_ERR_TEXT},
    {"{\"type\":\"hello\",\"username\":"
     "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}",
     PROTO_ERR_TOO_LARGE},
    {"{\"type\":\"hello\",\"username\":true}", PROTO_ERR_SHAPE},
    {"{\"username\":\"a\",\"email\":\"b\"}", PROTO_ERR_MISSING},
    {"{\"message\":null}", PROTO_ERR_SHAPE},
    {"{\"message\":\"x\",\"message\":\"y\"}", PROTO_ERR_SHAPE},
    {"{\"message\":\"x\",\"username\":\"\"}", PROTO_ERR_TEXT},
};

static void test_decode_refuses(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_ELEMS(bad_cases); i++) {
        struct proto_msg m;
        int rc = decode(bad_cases[i].json, &m);

        if (rc != bad_cases[i].want)
            fail_msg("case %zu %s: got %d (%s), want %d", i, bad_cases[i].json, rc,
                     proto_strerror(rc), bad_cases[i].want);
        assert_null(m.text);
        proto_msg_clear(&m);
    }
}

static void test_text_limit(void **state)
{
    char buf[400], body[TEXT_MAX + 2];
    struct proto_msg m;

    (void)state;
    memset(body, 'x', sizeof(body));
    body[TEXT_MAX] = '\0';
    snprintf(buf, sizeof(buf), "{\"type\":\"message\",\"room\":\"a\",\"message\":\"%s\"}", body);
    assert_int_equal(decode(buf, &m), PROTO_OK);
    assert_int_equal(m.text_len, TEXT_MAX);
    proto_msg_clear(&m);
    body[TEXT_MAX] = 'x';
    body[TEXT_MAX + 1] = '\0';
    snprintf(buf, sizeof(buf), "{\"type\":\"message\",\"room\":\"a\",\"message\":\"%s\"}", body);
    assert_int_equal(decode(buf, &m), PROTO_ERR_TOO_LARGE);
    proto_msg_clear(&m);
}

/* Invalid UTF-8 in the raw bytes of a string (the WebSocket layer refuses it first, but the
 * codec must not rely on that), and an escaped backslash that is not a NUL escape. */
static void test_raw_utf8_and_escapes(void **state)
{
    static const char *const bad[] = {
        "{\"type\":\"message\",\"room\":\"a\",\"message\":\"\xff\"}",
        "{\"type\":\"message\",\"room\":\"a\",\"message\":\"\xc0\xaf\"}",
        "{\"type\":\"message\",\"room\":\"a\",\"message\":\"\xed\xa0\x80\"}",
        "{\"type\":\"hello\",\"username\":\"\xe2\x82\"}",
    };
    struct proto_msg m;

    (void)state;
    for (size_t i = 0; i < N_ELEMS(bad); i++) {
        int rc = decode(bad[i], &m);
        assert_true(rc == PROTO_ERR_TEXT || rc == PROTO_ERR_JSON);
        proto_msg_clear(&m);
    }
    assert_int_equal(decode("{\"type\":\"message\",\"room\":\"a\",\"message\":\"\\\\u0000\"}", &m),
                     PROTO_OK);
    assert_string_equal(m.text, "\\u0000");
    proto_msg_clear(&m);
}

/* A raw NUL byte inside a string (valid UTF-8, so a text frame may carry it) would cut the
 * string: refused like an escaped one. */
static void test_raw_nul(void **state)
{
    static const char room[] = "{\"type\":\"join\",\"room\":\"rust\0garbage\"}";
    static const char text[] = "{\"type\":\"message\",\"room\":\"a\",\"message\":\"ab\0cd\"}";
    struct proto_msg m;

    (void)state;
    assert_int_equal(proto_decode_client((const uint8_t *)room, sizeof(room) - 1, TEXT_MAX, &m),
                     PROTO_ERR_TEXT);
    proto_msg_clear(&m);
    assert_int_equal(proto_decode_client((const uint8_t *)text, sizeof(text) - 1, TEXT_MAX, &m),
                     PROTO_ERR_TEXT);
    proto_msg_clear(&m);
}

static void test_deep_nesting(void **state)
{
    size_t depth = 20000, n = 0;
    char *buf = malloc(2 * depth + 64);

    (void)state;
    n += (size_t)sprintf(buf, "{\"type\":\"join\",\"room\":\"a\",\"x\":");
    for (size_t i = 0; i < depth; i++)
        buf[n++] = '[';
    for (size_t i = 0; i < depth; i++)
        buf[n++] = ']';
    buf[n++] = '}';
    struct proto_msg m;
    assert_int_equal(proto_decode_client((const uint8_t *)buf, n, TEXT_MAX, &m), PROTO_ERR_JSON);
    proto_msg_clear(&m);
    free(buf);
}

/* Every prefix of a valid message is refused without reading past it. */
static void test_every_prefix(void **state)
{
    static const char json[] = "{\"type\":\"message\",\"room\":\"lobby\",\"message\":\"h\\u00e9\"}";
    struct proto_msg m;

    (void)state;
    for (size_t len = 0; len < sizeof(json) - 1; len++) {
        uint8_t *copy = malloc(len ? len : 1);
        memcpy(copy, json, len);
        assert_int_not_equal(proto_decode_client(copy, len, TEXT_MAX, &m), PROTO_OK);
        proto_msg_clear(&m);
        free(copy);
    }
}

/* ---- encoding ----------------------------------------------------------------------------- */

static cJSON *parse(const char *json, size_t len)
{
    cJSON *obj = cJSON_ParseWithLength(json, len);

    assert_non_null(obj);
    assert_int_equal(strlen(json), len);
    return obj;
}

static const char *str(const cJSON *obj, const char *key)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);

    assert_true(cJSON_IsString(it));
    return it->valuestring;
}

static void test_encode_roundtrip(void **state)
{
    struct proto_sender from = {"0123456789abcdef0123456789abcdef", "ann \"<b>\"", "a@b", NULL};
    struct proto_sender anon = {"0123456789abcdef0123456789abcdef", "g", "", NULL};
    const char *rooms[] = {"lobby", "x"};
    size_t len;
    char *json;
    cJSON *obj;

    (void)state;
    json = proto_encode_message("lobby", "m-1", &from, "h\xc3\xa9\n\"", 5, 1795241718751ull, &len);
    obj = parse(json, len);
    assert_string_equal(str(obj, "type"), "message");
    assert_string_equal(str(obj, "username"), "ann \"<b>\"");
    assert_string_equal(str(obj, "message"), "h\xc3\xa9\n\"");
    assert_true(cJSON_GetObjectItemCaseSensitive(obj, "ts")->valuedouble == 1795241718751.0);
    assert_non_null(strstr(json, "\"ts\":1795241718751"));
    assert_non_null(strstr(json, "h\xc3\xa9")); /* UTF-8 stays readable */
    cJSON_Delete(obj);
    proto_free(json);

    json = proto_encode_direct("fedcba9876543210fedcba9876543210", "m-2", &anon, "x", 1, 1, &len);
    obj = parse(json, len);
    assert_string_equal(str(obj, "type"), "direct");
    assert_string_equal(str(obj, "to"), "fedcba9876543210fedcba9876543210");
    assert_null(cJSON_GetObjectItemCaseSensitive(obj, "email"));
    cJSON_Delete(obj);
    proto_free(json);

    json = proto_encode_welcome(from.id, NULL, 0, "gw-1", rooms, 2, &len);
    obj = parse(json, len);
    assert_string_equal(str(obj, "gateway"), "gw-1");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(obj, "rooms")), 2);
    cJSON_Delete(obj);
    proto_free(json);

    json = proto_encode_presence("lobby", "join", &from, &len);
    obj = parse(json, len);
    assert_string_equal(str(obj, "event"), "join");
    assert_string_equal(str(obj, "client"), from.id);
    cJSON_Delete(obj);
    proto_free(json);

    json = proto_encode_error("bad_room", "why", "r", &len);
    obj = parse(json, len);
    assert_string_equal(str(obj, "code"), "bad_room");
    assert_string_equal(str(obj, "ref"), "r");
    cJSON_Delete(obj);
    proto_free(json);
}

/* Direct messages to users, and refresh: the fields of connect tokens. */
static void test_users_and_refresh(void **state)
{
    static const struct {
        const char *json;
        int rc;
    } cases[] = {
        {"{\"type\":\"direct\",\"to_user\":\"ann\",\"message\":\"x\"}", PROTO_OK},
        {"{\"type\":\"direct\",\"to_user\":\"\u00e9l\u00e8ve\",\"message\":\"x\"}", PROTO_OK},
        {"{\"type\":\"direct\",\"to_user\":\"\",\"message\":\"x\"}", PROTO_ERR_TARGET},
        {"{\"type\":\"direct\",\"to_user\":\"a\\tb\",\"message\":\"x\"}", PROTO_ERR_TARGET},
        {"{\"type\":\"direct\",\"to_user\":7,\"message\":\"x\"}", PROTO_ERR_SHAPE},
        {"{\"type\":\"direct\",\"message\":\"x\"}", PROTO_ERR_MISSING},
        {"{\"type\":\"direct\",\"to\":\"0123456789abcdef0123456789abcdef\",\"to_user\":\"a\","
         "\"message\":\"x\"}",
         PROTO_ERR_TARGET},
        {"{\"type\":\"direct\",\"to_user\":\"a\",\"to_user\":\"b\",\"message\":\"x\"}",
         PROTO_ERR_SHAPE},
        {"{\"type\":\"refresh\",\"token\":\"a.b.c\"}", PROTO_OK},
        {"{\"type\":\"refresh\"}", PROTO_ERR_MISSING},
        {"{\"type\":\"refresh\",\"token\":[]}", PROTO_ERR_SHAPE},
        {"{\"type\":\"refresh\",\"token\":\"a\",\"token\":\"b\"}", PROTO_ERR_SHAPE},
    };
    struct proto_msg msg;
    char *big, *json;
    size_t len;
    cJSON *obj;

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int rc = decode(cases[i].json, &msg);

        if (rc != cases[i].rc)
            fail_msg("case %zu: got %d want %d: %s", i, rc, cases[i].rc, cases[i].json);
        proto_msg_clear(&msg);
    }
    assert_int_equal(decode(cases[1].json, &msg), PROTO_OK);
    assert_int_equal(msg.type, PROTO_DIRECT);
    assert_string_equal(msg.to_user, "\xc3\xa9l\xc3\xa8ve");
    assert_string_equal(msg.to, "");
    proto_msg_clear(&msg);
    assert_int_equal(decode(cases[8].json, &msg), PROTO_OK);
    assert_int_equal(msg.type, PROTO_REFRESH);
    assert_string_equal(msg.token, "a.b.c");
    proto_msg_clear(&msg);
    assert_null(msg.token);
    /* A token over PROTO_TOKEN_MAX is too large, whatever the text limit. */
    big = malloc(PROTO_TOKEN_MAX + 64);
    assert_non_null(big);
    len = (size_t)snprintf(big, 48, "{\"type\":\"refresh\",\"token\":\"");
    memset(big + len, 'A', PROTO_TOKEN_MAX + 1);
    memcpy(big + len + PROTO_TOKEN_MAX + 1, "\"}", 3);
    assert_int_equal(decode(big, &msg), PROTO_ERR_TOO_LARGE);
    proto_msg_clear(&msg);
    free(big);
    /* The server's side: user, to_user, exp. */
    json = proto_encode_welcome("0123456789abcdef0123456789abcdef", "ann", 1800000000, "gw", NULL,
                                0, &len);
    obj = cJSON_Parse(json);
    assert_string_equal(cJSON_GetObjectItem(obj, "user")->valuestring, "ann");
    assert_true(cJSON_GetObjectItem(obj, "exp")->valuedouble == 1800000000.0);
    cJSON_Delete(obj);
    proto_free(json);
    json = proto_encode_refreshed(1800000060, &len);
    assert_string_equal(json, "{\"type\":\"refreshed\",\"exp\":1800000060}");
    proto_free(json);
}

static void test_who(void **state)
{
    struct proto_sender m[2] = {{"0123456789abcdef0123456789abcdef", "a", "a@x", NULL},
                                {"fedcba9876543210fedcba9876543210", "b", "", NULL}};
    char room[PROTO_ROOM_MAX + 1], to[PROTO_ID_LEN + 1];
    struct proto_msg msg;
    size_t len;
    char *json;
    cJSON *obj;

    (void)state;
    assert_int_equal(decode("{\"type\":\"who\",\"room\":\"lobby\"}", &msg), PROTO_OK);
    assert_int_equal(msg.type, PROTO_WHO);
    proto_msg_clear(&msg);
    assert_int_equal(decode("{\"type\":\"who\"}", &msg), PROTO_ERR_MISSING);
    proto_msg_clear(&msg);

    json = proto_encode_who("lobby", m[0].id, &len);
    assert_memory_equal(json, PROTO_WHO_PREFIX, sizeof(PROTO_WHO_PREFIX) - 1);
    assert_int_equal(proto_decode_who((const uint8_t *)json, len, room, to), 0);
    assert_string_equal(room, "lobby");
    assert_string_equal(to, m[0].id);
    proto_free(json);
    assert_int_equal(proto_decode_who((const uint8_t *)"{\"type\":\"who\",\"room\":\"a b\","
                                                       "\"reply_to\":\"x\"}",
                                      40, room, to),
                     -1);

    json = proto_encode_members("lobby", "gw", m, 2, &len);
    obj = parse(json, len);
    assert_string_equal(str(obj, "type"), "members");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(obj, "members")), 2);
    cJSON_Delete(obj);
    proto_free(json);
}

static void test_error_codes(void **state)
{
    (void)state;
    assert_string_equal(proto_err_code(PROTO_ERR_JSON), "bad_json");
    assert_string_equal(proto_err_code(PROTO_ERR_SHAPE), "bad_message");
    assert_string_equal(proto_err_code(PROTO_ERR_MISSING), "bad_message");
    assert_string_equal(proto_err_code(PROTO_ERR_TYPE), "unknown_type");
    assert_string_equal(proto_err_code(PROTO_ERR_ROOM), "bad_room");
    assert_string_equal(proto_err_code(PROTO_ERR_TARGET), "bad_target");
    assert_string_equal(proto_err_code(PROTO_ERR_TOO_LARGE), "too_large");
    assert_string_equal(proto_err_code(PROTO_ERR_TEXT), "bad_text");
    for (int e = PROTO_ERR_TEXT; e <= PROTO_OK; e++)
        assert_true(strlen(proto_strerror(e)) > 0);
}

static void test_channels(void **state)
{
    char buf[PROTO_CHANNEL_MAX];
    const char *name;
    size_t len;

    (void)state;
    assert_int_equal(proto_channel_name(buf, PROTO_CHANNEL_ROOM, "lobby"), 15);
    assert_string_equal(buf, "chat:room:lobby");
    proto_channel_name(buf, PROTO_CHANNEL_CLIENT, "ab");
    assert_string_equal(buf, "chat:client:ab");
    assert_int_equal(proto_channel_parse(buf, strlen(buf), &name, &len), PROTO_CHANNEL_CLIENT);
    assert_int_equal(len, 2);
    assert_memory_equal(name, "ab", 2);
    assert_int_equal(proto_channel_parse("chat:room:", 10, &name, &len), 0);
    assert_int_equal(proto_channel_parse("other:room:x", 12, &name, &len), 0);
    assert_int_equal(proto_channel_parse("chat:health:g", 13, &name, &len), PROTO_CHANNEL_HEALTH);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode_each_type),
        cmocka_unit_test(test_decode_seed_format),
        cmocka_unit_test(test_unknown_fields_ignored),
        cmocka_unit_test(test_decode_refuses),
        cmocka_unit_test(test_text_limit),
        cmocka_unit_test(test_raw_utf8_and_escapes),
        cmocka_unit_test(test_deep_nesting),
        cmocka_unit_test(test_every_prefix),
        cmocka_unit_test(test_encode_roundtrip),
        cmocka_unit_test(test_error_codes),
        cmocka_unit_test(test_channels),
        cmocka_unit_test(test_raw_nul),
        cmocka_unit_test(test_who),
        cmocka_unit_test(test_users_and_refresh),
    };

    return cmocka_run_group_tests_name("proto", tests, NULL, NULL);
}
