/*
 * Unit tests of proto/client.h: the client message encoders (read back by the gateway's own
 * decoder), the server message decoder (every type from the gateway's encoders; each field
 * missing, mistyped, too long, with bad UTF-8 or control characters; every prefix; hostile
 * JSON), and the escaping of wire text for terminals.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto/client.h"
#include "proto/proto.h"

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))
#define ID_A "0123456789abcdef0123456789abcdef"
#define ID_B "fedcba9876543210fedcba9876543210"

static int decode(const char *json, struct proto_server_msg *m)
{
    return proto_client_decode((const uint8_t *)json, strlen(json), m);
}

/* ---- encoders ----------------------------------------------------------------------------- */

static void test_encoders_exact(void **state)
{
    size_t len;
    char *j;

    (void)state;
    j = proto_client_encode_hello("ann", NULL, &len);
    assert_string_equal(j, "{\"type\":\"hello\",\"username\":\"ann\"}");
    assert_int_equal(len, strlen(j));
    proto_free(j);
    j = proto_client_encode_hello("ann", "", &len);
    assert_string_equal(j, "{\"type\":\"hello\",\"username\":\"ann\"}");
    proto_free(j);
    j = proto_client_encode_hello("ann", "a@b.c", &len);
    assert_string_equal(j, "{\"type\":\"hello\",\"username\":\"ann\",\"email\":\"a@b.c\"}");
    proto_free(j);
    j = proto_client_encode_join("r-1", &len);
    assert_string_equal(j, "{\"type\":\"join\",\"room\":\"r-1\"}");
    proto_free(j);
    j = proto_client_encode_leave("r-1", &len);
    assert_string_equal(j, "{\"type\":\"leave\",\"room\":\"r-1\"}");
    proto_free(j);
    j = proto_client_encode_who("lobby", &len);
    assert_string_equal(j, "{\"type\":\"who\",\"room\":\"lobby\"}");
    proto_free(j);
    j = proto_client_encode_message("lobby", "say \"hi\"\n\\", &len);
    assert_string_equal(j, "{\"type\":\"message\",\"room\":\"lobby\",\"message\":\"say "
                           "\\\"hi\\\"\\n\\\\\"}");
    assert_int_equal(len, strlen(j));
    proto_free(j);
    j = proto_client_encode_direct(ID_A, "psst", &len);
    assert_string_equal(j, "{\"type\":\"direct\",\"to\":\"" ID_A "\",\"message\":\"psst\"}");
    proto_free(j);
}

/* What the client encodes, the gateway's decoder reads back unchanged. */
static void test_encoders_read_by_gateway(void **state)
{
    const char *text = "h\xc3\xa9 \xf0\x9f\x98\x80 \"q\" \t\n\x01 </script>";
    struct proto_msg m;
    size_t len;
    char *j;

    (void)state;
    j = proto_client_encode_message("room.1:x", text, &len);
    assert_int_equal(proto_decode_client((const uint8_t *)j, len, 1000, &m), PROTO_OK);
    assert_int_equal(m.type, PROTO_MESSAGE);
    assert_string_equal(m.room, "room.1:x");
    assert_int_equal(m.text_len, strlen(text));
    assert_memory_equal(m.text, text, strlen(text));
    proto_msg_clear(&m);
    proto_free(j);

    j = proto_client_encode_direct(ID_B, text, &len);
    assert_int_equal(proto_decode_client((const uint8_t *)j, len, 1000, &m), PROTO_OK);
    assert_int_equal(m.type, PROTO_DIRECT);
    assert_string_equal(m.to, ID_B);
    assert_string_equal(m.text, text);
    proto_msg_clear(&m);
    proto_free(j);

    j = proto_client_encode_hello("\xc3\xa5sa", "a@b.c", &len);
    assert_int_equal(proto_decode_client((const uint8_t *)j, len, 1000, &m), PROTO_OK);
    assert_int_equal(m.type, PROTO_HELLO);
    assert_string_equal(m.username, "\xc3\xa5sa");
    assert_string_equal(m.email, "a@b.c");
    proto_msg_clear(&m);
    proto_free(j);

    j = proto_client_encode_who("lobby", &len);
    assert_int_equal(proto_decode_client((const uint8_t *)j, len, 1000, &m), PROTO_OK);
    assert_int_equal(m.type, PROTO_WHO);
    assert_string_equal(m.room, "lobby");
    proto_msg_clear(&m);
    proto_free(j);
}

/* ---- decoding what the gateway encodes ---------------------------------------------------- */

static void test_decode_welcome(void **state)
{
    const char *rooms[] = {"lobby", "rust"};
    struct proto_server_msg m;
    size_t len;
    char *j = proto_encode_welcome(ID_A, NULL, 0, "gw-a-1", rooms, 2, &len);

    (void)state;
    assert_int_equal(proto_client_decode((const uint8_t *)j, len, &m), PROTO_OK);
    assert_int_equal(m.type, PROTO_S_WELCOME);
    assert_string_equal(m.id, ID_A);
    assert_string_equal(m.gateway, "gw-a-1");
    assert_int_equal(m.n_rooms, 2);
    assert_string_equal(m.rooms[0], "lobby");
    assert_string_equal(m.rooms[1], "rust");
    proto_server_msg_clear(&m);
    proto_free(j);
    assert_null(m.rooms);
}

static void test_decode_message_and_direct(void **state)
{
    struct proto_sender from = {ID_A, "ann", "ann@example.org", NULL};
    struct proto_sender guest = {ID_B, "guest-fedcba", "", NULL};
    struct proto_server_msg m;
    size_t len;
    char *j;

    (void)state;
    j = proto_encode_message("lobby", "85f8eb1839015c27-1", &from, "hi \xe2\x9c\x93", 6,
                             1795241718751ull, &len);
    assert_int_equal(proto_client_decode((const uint8_t *)j, len, &m), PROTO_OK);
    assert_int_equal(m.type, PROTO_S_MESSAGE);
    assert_string_equal(m.room, "lobby");
    assert_string_equal(m.id, "85f8eb1839015c27-1");
    assert_string_equal(m.from, ID_A);
    assert_string_equal(m.username, "ann");
    assert_string_equal(m.email, "ann@example.org");
    assert_string_equal(m.text, "hi \xe2\x9c\x93");
    assert_int_equal(m.text_len, 6);
    assert_true(m.ts == 1795241718751ull);
    assert_string_equal(m.to, "");
    proto_server_msg_clear(&m);
    proto_free(j);

    j = proto_encode_direct(ID_A, "be1c-2", &guest, "psst", 4, 7, &len);
    assert_int_equal(proto_client_decode((const uint8_t *)j, len, &m), PROTO_OK);
    assert_int_equal(m.type, PROTO_S_DIRECT);
    assert_string_equal(m.to, ID_A);
    assert_string_equal(m.from, ID_B);
    assert_string_equal(m.username, "guest-fedcba");
    assert_string_equal(m.email, "");
    assert_string_equal(m.text, "psst");
    assert_true(m.ts == 7);
    proto_server_msg_clear(&m);
    proto_free(j);
}

/* Connect tokens: the sender's user id, direct messages to a user, /dm to either. */
static void test_users(void **state)
{
    struct proto_server_msg m;
    size_t len;
    char *j;

    (void)state;
    assert_int_equal(
        decode("{\"type\":\"direct\",\"to_user\":\"ann\",\"id\":\"x-1\",\"from\":\"" ID_B
               "\",\"user\":\"bob\",\"username\":\"Bob\",\"message\":\"hi\","
               "\"ts\":1}",
               &m),
        PROTO_OK);
    assert_string_equal(m.to_user, "ann");
    assert_string_equal(m.to, "");
    assert_string_equal(m.user, "bob");
    proto_server_msg_clear(&m);
    assert_int_equal(decode("{\"type\":\"direct\",\"to\":\"" ID_A "\",\"to_user\":\"ann\","
                            "\"id\":\"x-1\",\"from\":\"" ID_B
                            "\",\"username\":\"b\",\"message\":\"hi\",\"ts\":1}",
                            &m),
                     PROTO_ERR_TARGET);
    proto_server_msg_clear(&m);
    assert_int_equal(decode("{\"type\":\"welcome\",\"id\":\"" ID_A
                            "\",\"user\":\"ann\",\"exp\":1800000000,\"gateway\":\"g\","
                            "\"rooms\":[]}",
                            &m),
                     PROTO_OK);
    assert_string_equal(m.user, "ann");
    proto_server_msg_clear(&m);
    assert_int_equal(
        decode("{\"type\":\"members\",\"room\":\"lobby\",\"members\":[{\"client\":\"" ID_A
               "\",\"user\":\"ann\",\"username\":\"Ann\"}]}",
               &m),
        PROTO_OK);
    assert_string_equal(m.members[0].user, "ann");
    proto_server_msg_clear(&m);
    j = proto_client_encode_direct("ann", "hi", &len);
    assert_string_equal(j, "{\"type\":\"direct\",\"to_user\":\"ann\",\"message\":\"hi\"}");
    proto_free(j);
    j = proto_client_encode_direct(ID_A, "hi", &len);
    assert_string_equal(j, "{\"type\":\"direct\",\"to\":\"" ID_A "\",\"message\":\"hi\"}");
    proto_free(j);
}

static void test_decode_presence_and_members(void **state)
{
    struct proto_sender who[] = {{ID_A, "ann", "a@b.c", NULL}, {ID_B, "bob", "", NULL}};
    struct proto_server_msg m;
    size_t len;
    char *j;

    (void)state;
    j = proto_encode_presence("rust", "leave", &who[1], &len);
    assert_int_equal(proto_client_decode((const uint8_t *)j, len, &m), PROTO_OK);
    assert_int_equal(m.type, PROTO_S_PRESENCE);
    assert_string_equal(m.room, "rust");
    assert_string_equal(m.event, "leave");
    assert_string_equal(m.from, ID_B);
    assert_string_equal(m.username, "bob");
    proto_server_msg_clear(&m);
    proto_free(j);

    j = proto_encode_members("rust", "gw-b-77", who, 2, &len);
    assert_int_equal(proto_client_decode((const uint8_t *)j, len, &m), PROTO_OK);
    assert_int_equal(m.type, PROTO_S_MEMBERS);
    assert_string_equal(m.room, "rust");
    assert_string_equal(m.gateway, "gw-b-77");
    assert_int_equal(m.n_members, 2);
    assert_string_equal(m.members[0].client, ID_A);
    assert_string_equal(m.members[0].username, "ann");
    assert_string_equal(m.members[0].email, "a@b.c");
    assert_string_equal(m.members[1].client, ID_B);
    assert_string_equal(m.members[1].email, "");
    proto_server_msg_clear(&m);
    proto_free(j);
}

static void test_decode_error_and_who(void **state)
{
    struct proto_server_msg m;
    size_t len;
    char *j;

    (void)state;
    j = proto_encode_error("not_joined", "join the room before sending to it", "rust", &len);
    assert_int_equal(proto_client_decode((const uint8_t *)j, len, &m), PROTO_OK);
    assert_int_equal(m.type, PROTO_S_ERROR);
    assert_string_equal(m.code, "not_joined");
    assert_string_equal(m.reason, "join the room before sending to it");
    assert_string_equal(m.ref, "rust");
    proto_server_msg_clear(&m);
    proto_free(j);

    j = proto_encode_who("lobby", ID_A, &len);
    assert_int_equal(proto_client_decode((const uint8_t *)j, len, &m), PROTO_OK);
    assert_int_equal(m.type, PROTO_S_WHO);
    assert_string_equal(m.room, "lobby");
    assert_string_equal(m.to, ID_A);
    proto_server_msg_clear(&m);
    proto_free(j);
}

static void test_optional_fields_and_unknown_ones(void **state)
{
    struct proto_server_msg m;

    (void)state;
    assert_int_equal(decode("{\"type\":\"welcome\",\"id\":\"" ID_A "\"}", &m), PROTO_OK);
    assert_int_equal(m.n_rooms, 0);
    assert_string_equal(m.gateway, "");
    proto_server_msg_clear(&m);
    assert_int_equal(decode("{\"type\":\"error\",\"code\":\"x\",\"extra\":[1,{\"a\":null}]}", &m),
                     PROTO_OK);
    assert_string_equal(m.reason, "");
    assert_string_equal(m.ref, "");
    proto_server_msg_clear(&m);
    assert_int_equal(
        decode(" {\"type\":\"members\",\"room\":\"r\",\"members\":[],\"v\":2} \r\n", &m), PROTO_OK);
    assert_int_equal(m.n_members, 0);
    proto_server_msg_clear(&m);
}

/* ---- refusals, table-driven --------------------------------------------------------------- */

/* One valid message per type as key/value pairs (values as JSON), with the required keys. */
struct sample {
    const char *type;
    const char *keys[8];
    const char *values[8];
    int required[8];
};

static const struct sample samples[] = {
    {"welcome", {"id", "gateway", "rooms"}, {"\"" ID_A "\"", "\"gw\"", "[\"lobby\"]"}, {1, 0, 0}},
    {"message",
     {"room", "id", "from", "username", "email", "message", "ts"},
     {"\"lobby\"", "\"m-1\"", "\"" ID_A "\"", "\"ann\"", "\"a@b.c\"", "\"hi\"", "17"},
     {1, 1, 1, 1, 0, 1, 1}},
    {"direct",
     {"to", "id", "from", "username", "email", "message", "ts"},
     {"\"" ID_B "\"", "\"m-1\"", "\"" ID_A "\"", "\"ann\"", "\"a@b.c\"", "\"hi\"", "17"},
     {1, 1, 1, 1, 0, 1, 1}},
    {"presence",
     {"room", "event", "client", "username", "email"},
     {"\"lobby\"", "\"join\"", "\"" ID_A "\"", "\"ann\"", "\"a@b.c\""},
     {1, 1, 1, 1, 0}},
    {"members",
     {"room", "gateway", "members"},
     {"\"lobby\"", "\"gw\"", "[{\"client\":\"" ID_A "\",\"username\":\"ann\"}]"},
     {1, 0, 1}},
    {"error", {"code", "reason", "ref"}, {"\"bad_room\"", "\"why\"", "\"x\""}, {1, 0, 0}},
    {"who", {"room", "reply_to"}, {"\"lobby\"", "\"" ID_A "\""}, {1, 1}},
};

/* The JSON of sample s with key number skip left out (-1: none) and key number swap given
 * the value with (if with is not NULL). */
static void build(char *out, size_t size, const struct sample *s, int skip, int swap,
                  const char *with)
{
    int n = snprintf(out, size, "{\"type\":\"%s\"", s->type);

    for (int i = 0; i < 8 && s->keys[i]; i++) {
        if (i == skip)
            continue;
        n += snprintf(out + n, size - (size_t)n, ",\"%s\":%s", s->keys[i],
                      i == swap && with ? with : s->values[i]);
    }
    snprintf(out + n, size - (size_t)n, "}");
}

static void test_each_sample_decodes(void **state)
{
    struct proto_server_msg m;
    char json[1024];

    (void)state;
    for (size_t t = 0; t < N_ELEMS(samples); t++) {
        build(json, sizeof(json), &samples[t], -1, -1, NULL);
        assert_int_equal(decode(json, &m), PROTO_OK);
        assert_string_equal(proto_server_type_name(m.type), samples[t].type);
        proto_server_msg_clear(&m);
    }
    assert_string_equal(proto_server_type_name((enum proto_server_type)99), "?");
}

static void test_each_field_missing(void **state)
{
    struct proto_server_msg m;
    char json[1024];

    (void)state;
    for (size_t t = 0; t < N_ELEMS(samples); t++) {
        for (int k = 0; k < 8 && samples[t].keys[k]; k++) {
            build(json, sizeof(json), &samples[t], k, -1, NULL);
            int want = samples[t].required[k] ? PROTO_ERR_MISSING : PROTO_OK;
            if (decode(json, &m) != want)
                fail_msg("%s without %s: want %d", samples[t].type, samples[t].keys[k], want);
            proto_server_msg_clear(&m);
        }
    }
}

/* A value of another JSON type than the valid one v. */
static const char *other_type(const char *v)
{
    return v[0] == '"' ? "7" : v[0] == '[' ? "\"x\"" : "\"17\"";
}

static void test_each_field_mistyped(void **state)
{
    static const char *const wrong[] = {NULL, "null", "true", "{}"};
    struct proto_server_msg m;
    char json[1024];

    (void)state;
    for (size_t t = 0; t < N_ELEMS(samples); t++) {
        for (int k = 0; k < 8 && samples[t].keys[k]; k++) {
            for (size_t w = 0; w < N_ELEMS(wrong); w++) {
                const char *v = wrong[w] ? wrong[w] : other_type(samples[t].values[k]);

                build(json, sizeof(json), &samples[t], -1, k, v);
                if (decode(json, &m) != PROTO_ERR_SHAPE)
                    fail_msg("not refused as mistyped: %s", json);
                proto_server_msg_clear(&m);
            }
        }
    }
}

/* Values refused (or, at a limit, accepted) with the code each case names. */
static const struct {
    const char *json;
    int want;
} bad_cases[] = {
    /* too long */
    {"{\"type\":\"error\",\"code\":\"123456789012345678901234567890123\"}", PROTO_ERR_TOO_LARGE},
    {"{\"type\":\"error\",\"code\":\"12345678901234567890123456789012\"}", PROTO_OK},
    {"{\"type\":\"welcome\",\"id\":\"" ID_A "\",\"gateway\":\"" ID_A ID_A "x\"}",
     PROTO_ERR_TOO_LARGE},
    {"{\"type\":\"welcome\",\"id\":\"" ID_A "\",\"gateway\":\"" ID_A ID_A "\"}", PROTO_OK},
    {"{\"type\":\"presence\",\"room\":\"r\",\"event\":\"join\",\"client\":\"" ID_A
     "\",\"username\":\"" ID_A ID_A "x\"}",
     PROTO_ERR_TOO_LARGE},
    {"{\"type\":\"message\",\"room\":\"r\",\"id\":\"" ID_A "123456789\",\"from\":\"" ID_A
     "\",\"username\":\"a\",\"message\":\"m\",\"ts\":1}",
     PROTO_ERR_TOO_LARGE},
    /* names and ids */
    {"{\"type\":\"presence\",\"room\":\"a b\",\"event\":\"join\",\"client\":\"" ID_A
     "\",\"username\":\"a\"}",
     PROTO_ERR_ROOM},
    {"{\"type\":\"presence\",\"room\":\"\",\"event\":\"join\",\"client\":\"" ID_A
     "\",\"username\":\"a\"}",
     PROTO_ERR_ROOM},
    {"{\"type\":\"presence\",\"room\":\"r\",\"event\":\"join\",\"client\":"
     "\"0123456789ABCDEF0123456789abcdef\",\"username\":\"a\"}",
     PROTO_ERR_TARGET},
    {"{\"type\":\"presence\",\"room\":\"r\",\"event\":\"part\",\"client\":\"" ID_A
     "\",\"username\":\"a\"}",
     PROTO_ERR_SHAPE},
    {"{\"type\":\"welcome\",\"id\":\"" ID_A "\",\"rooms\":[\"ok\",\"not ok\"]}", PROTO_ERR_ROOM},
    {"{\"type\":\"welcome\",\"id\":\"" ID_A "\",\"rooms\":[\"ok\",7]}", PROTO_ERR_SHAPE},
    {"{\"type\":\"members\",\"room\":\"r\",\"members\":[7]}", PROTO_ERR_SHAPE},
    {"{\"type\":\"members\",\"room\":\"r\",\"members\":[{\"username\":\"a\"}]}", PROTO_ERR_MISSING},
    /* text */
    {"{\"type\":\"presence\",\"room\":\"r\",\"event\":\"join\",\"client\":\"" ID_A
     "\",\"username\":\"a\\u001b[2J\"}",
     PROTO_ERR_TEXT},
    {"{\"type\":\"error\",\"code\":\"x\\u0000y\"}", PROTO_ERR_TEXT},
    {"{\"type\":\"error\",\"code\":\"x\",\"reason\":\"\xff\"}", PROTO_ERR_TEXT},
    {"{\"type\":\"error\",\"code\":\"x\",\"reason\":\"\xed\xa0\x80\"}", PROTO_ERR_TEXT},
    {"{\"type\":\"error\",\"code\":\"x\\\\u0000\"}", PROTO_OK},
    /* ts */
    {"{\"type\":\"direct\",\"to\":\"" ID_A "\",\"id\":\"i\",\"from\":\"" ID_A
     "\",\"username\":\"a\",\"message\":\"m\",\"ts\":-1}",
     PROTO_ERR_SHAPE},
    {"{\"type\":\"direct\",\"to\":\"" ID_A "\",\"id\":\"i\",\"from\":\"" ID_A
     "\",\"username\":\"a\",\"message\":\"m\",\"ts\":1.5}",
     PROTO_ERR_SHAPE},
    {"{\"type\":\"direct\",\"to\":\"" ID_A "\",\"id\":\"i\",\"from\":\"" ID_A
     "\",\"username\":\"a\",\"message\":\"m\",\"ts\":9007199254740992}",
     PROTO_ERR_SHAPE},
    {"{\"type\":\"direct\",\"to\":\"" ID_A "\",\"id\":\"i\",\"from\":\"" ID_A
     "\",\"username\":\"a\",\"message\":\"m\",\"ts\":9007199254740991}",
     PROTO_OK},
    {"{\"type\":\"direct\",\"to\":\"" ID_A "\",\"id\":\"i\",\"from\":\"" ID_A
     "\",\"username\":\"a\",\"message\":\"m\",\"ts\":1e400}",
     PROTO_ERR_SHAPE},
    /* shape */
    {"{\"type\":\"error\",\"code\":\"x\",\"code\":\"y\"}", PROTO_ERR_SHAPE},
    {"{\"type\":\"error\",\"type\":\"error\",\"code\":\"x\"}", PROTO_ERR_SHAPE},
    {"{\"type\":\"hello\",\"username\":\"a\"}", PROTO_ERR_TYPE},
    {"{\"type\":7}", PROTO_ERR_SHAPE},
    {"{\"code\":\"x\"}", PROTO_ERR_MISSING},
    {"[{\"type\":\"error\",\"code\":\"x\"}]", PROTO_ERR_SHAPE},
    {"\"error\"", PROTO_ERR_SHAPE},
    {"{\"type\":\"error\",\"code\":\"x\"} x", PROTO_ERR_JSON},
    {"{\"type\":\"error\",\"code\":\"x\"", PROTO_ERR_JSON},
    {"", PROTO_ERR_JSON},
    {"42", PROTO_ERR_SHAPE},
};

static void test_bad_values(void **state)
{
    struct proto_server_msg m;

    (void)state;
    for (size_t i = 0; i < N_ELEMS(bad_cases); i++) {
        int rc = decode(bad_cases[i].json, &m);
        if (rc != bad_cases[i].want)
            fail_msg("case %zu %s: got %d, want %d", i, bad_cases[i].json, rc, bad_cases[i].want);
        if (rc != PROTO_OK) {
            assert_int_equal(m.type, 0);
            assert_null(m.text);
            assert_null(m.members);
        }
        proto_server_msg_clear(&m);
    }
}

/* Every proper prefix of a valid message is refused; nothing leaks on the way. */
static void test_every_prefix(void **state)
{
    struct proto_server_msg m;
    char json[1024];

    (void)state;
    for (size_t t = 0; t < N_ELEMS(samples); t++) {
        build(json, sizeof(json), &samples[t], -1, -1, NULL);
        size_t len = strlen(json);
        for (size_t n = 0; n < len; n++) {
            assert_int_not_equal(proto_client_decode((const uint8_t *)json, n, &m), PROTO_OK);
            proto_server_msg_clear(&m);
        }
        assert_int_equal(proto_client_decode((const uint8_t *)json, len, &m), PROTO_OK);
        proto_server_msg_clear(&m);
    }
}

static void test_deep_nesting(void **state)
{
    char json[5000];
    struct proto_server_msg m;
    size_t n = (size_t)snprintf(json, sizeof(json), "{\"type\":\"error\",\"code\":\"x\",\"z\":");

    (void)state;
    for (size_t i = 0; i < 2000; i++)
        json[n++] = '[';
    json[n] = '\0';
    assert_int_equal(decode(json, &m), PROTO_ERR_JSON);
    proto_server_msg_clear(&m);
}

/* ---- escaping ----------------------------------------------------------------------------- */

static void test_escape(void **state)
{
    static const struct {
        const char *in;
        size_t len;
        int keep_lines;
        const char *want;
    } cases[] = {
        {"plain text", 10, 0, "plain text"},
        {"", 0, 0, ""},
        {"h\xc3\xa9 \xf0\x9f\x98\x80", 8, 0, "h\xc3\xa9 \xf0\x9f\x98\x80"},
        {"a\nb\tc\rd", 7, 0, "a\\nb\\tc\\rd"},
        {"a\nb\tc\rd", 7, 1, "a\nb\tc\\rd"},
        {"\x1b[2J\x07\x7f", 6, 0, "\\x1b[2J\\x07\\x7f"},
        {"x\0y", 3, 0, "x\\x00y"},
        {"\xc2\x9b"
         "31m",
         5, 0, "\\x9b31m"},
        {"ab\xe2\x80\xaeZ", 6, 0, "ab\\u{202e}Z"},
        {"\xe2\x81\xa6\xe2\x80\xa8", 6, 1, "\\u{2066}\\u{2028}"},
        {"\xff\xfe", 2, 0, "\\xff\\xfe"},
        {"\xc3", 1, 0, "\\xc3"},
        {"\xed\xa0\x80", 3, 0, "\\xed\\xa0\\x80"},
        {"\xc0\xaf", 2, 0, "\\xc0\\xaf"},
        {"\xf4\x90\x80\x80", 4, 0, "\\xf4\\x90\\x80\\x80"},
    };

    (void)state;
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        size_t n;
        char *out = proto_client_escape((const uint8_t *)cases[i].in, cases[i].len,
                                        cases[i].keep_lines, &n);
        if (strcmp(out, cases[i].want) != 0)
            fail_msg("case %zu: got \"%s\", want \"%s\"", i, out, cases[i].want);
        assert_int_equal(n, strlen(out));
        free(out);
    }
}

/* The worst case (an invalid byte is 4 output bytes) fits the allocation. */
static void test_escape_worst_case(void **state)
{
    uint8_t in[256];
    size_t n;

    (void)state;
    for (size_t i = 0; i < sizeof(in); i++)
        in[i] = (uint8_t)(0x80 + i % 64);
    char *out = proto_client_escape(in, sizeof(in), 0, &n);
    assert_int_equal(n, 4 * sizeof(in));
    free(out);
    memset(in, 0x01, sizeof(in));
    out = proto_client_escape(in, sizeof(in), 0, &n);
    assert_int_equal(n, 4 * sizeof(in));
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encoders_exact),
        cmocka_unit_test(test_encoders_read_by_gateway),
        cmocka_unit_test(test_decode_welcome),
        cmocka_unit_test(test_decode_message_and_direct),
        cmocka_unit_test(test_decode_presence_and_members),
        cmocka_unit_test(test_users),
        cmocka_unit_test(test_decode_error_and_who),
        cmocka_unit_test(test_optional_fields_and_unknown_ones),
        cmocka_unit_test(test_each_sample_decodes),
        cmocka_unit_test(test_each_field_missing),
        cmocka_unit_test(test_each_field_mistyped),
        cmocka_unit_test(test_bad_values),
        cmocka_unit_test(test_every_prefix),
        cmocka_unit_test(test_deep_nesting),
        cmocka_unit_test(test_escape),
        cmocka_unit_test(test_escape_worst_case),
    };

    return cmocka_run_group_tests_name("client", tests, NULL, NULL);
}
