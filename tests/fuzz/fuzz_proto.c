/*
 * Fuzz target: the chat codec (proto/proto.h). The input is a client frame for
 * proto_decode_client; a message that decodes must hold only what the contract allows, and
 * re-encoded by the proto_encode_* functions it must parse back with cJSON into the same
 * fields (the gateway's relay of it). The input also goes through proto_decode_who, whose
 * result must survive proto_encode_who and decode again.
 *
 * Input: byte 0 sets text_max (0..127 as is, above that (b - 127) * 128, up to 16 KiB); the
 * rest is the JSON text.
 *
 * No input holding a raw NUL byte may decode: cJSON takes one inside a string, and a decoder
 * that copied up to it once joined "rust" for {"type":"join","room":"rust\0x"}
 * (crashes/fuzz_proto/raw-nul-in-room).
 */
#include "tests/fuzz/fuzz.h"

#include <cjson/cJSON.h>

#include "proto/proto.h"
#include "proto/utf8.h"
#include "proto/xalloc.h"

#define CLIENT_ID "9732ef6e15be15dc2927e0cb599eb90d"
#define MSG_ID "85f8eb1839015c27-1"
#define TS 1795241718751ull

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    proto_init(xmalloc, free); /* as the gateway does */
    return 0;
}

/* ---- the decoded message ------------------------------------------------------------------ */

static int has_control(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return 1;
    return 0;
}

static void check_string(const char *s, size_t cap)
{
    size_t len = strnlen(s, cap);

    FUZZ_CHECK(len < cap);
    FUZZ_CHECK(proto_utf8_is_valid((const uint8_t *)s, len));
}

/* Everything the contract promises about a decoded message. */
static void check_msg(const struct proto_msg *m, size_t text_max)
{
    int has_text = m->type == PROTO_MESSAGE || m->type == PROTO_DIRECT;
    int has_room = m->type == PROTO_JOIN || m->type == PROTO_LEAVE || m->type == PROTO_MESSAGE ||
                   m->type == PROTO_WHO;

    FUZZ_CHECK(m->type >= PROTO_HELLO && m->type <= PROTO_WHO);
    check_string(m->room, sizeof(m->room));
    check_string(m->to, sizeof(m->to));
    check_string(m->to_user, sizeof(m->to_user));
    check_string(m->username, sizeof(m->username));
    check_string(m->email, sizeof(m->email));
    FUZZ_CHECK(!has_room || proto_is_room(m->room, strlen(m->room)));
    FUZZ_CHECK(has_room || m->room[0] == '\0');
    /* A direct message names a client or a user, never both. */
    FUZZ_CHECK((m->type == PROTO_DIRECT) == (m->to[0] != '\0' || m->to_user[0] != '\0'));
    FUZZ_CHECK(m->to[0] == '\0' || m->to_user[0] == '\0');
    FUZZ_CHECK(m->to[0] == '\0' || proto_is_client_id(m->to, strlen(m->to)));
    FUZZ_CHECK(m->to_user[0] == '\0' || proto_is_user(m->to_user, strlen(m->to_user)));
    FUZZ_CHECK(m->type != PROTO_HELLO || m->username[0] != '\0');
    FUZZ_CHECK(!has_control(m->username) && !has_control(m->email));
    FUZZ_CHECK(has_text == (m->text != NULL));
    FUZZ_CHECK((m->type == PROTO_REFRESH) == (m->token != NULL));
    FUZZ_CHECK(m->token == NULL || strlen(m->token) <= PROTO_TOKEN_MAX);
    if (m->text) {
        FUZZ_CHECK(m->text_len <= text_max && strlen(m->text) == m->text_len);
        FUZZ_CHECK(proto_utf8_is_valid((const uint8_t *)m->text, m->text_len));
    }
}

/* ---- round trips -------------------------------------------------------------------------- */

static void check_field(const cJSON *obj, const char *key, const char *want)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);

    if (want == NULL) {
        FUZZ_CHECK(item == NULL);
        return;
    }
    FUZZ_CHECK(cJSON_IsString(item) && strcmp(item->valuestring, want) == 0);
}

/* Parse an encoder's output: a JSON object of the given type, the length as said. */
static cJSON *parse_encoded(char *json, size_t len, const char *type)
{
    cJSON *obj;

    FUZZ_CHECK(json != NULL && strlen(json) == len);
    FUZZ_CHECK(proto_utf8_is_valid((const uint8_t *)json, len));
    obj = cJSON_ParseWithLength(json, len);
    FUZZ_CHECK(cJSON_IsObject(obj));
    check_field(obj, "type", type);
    /* Only a who query may look like one to the gateways that receive it. */
    FUZZ_CHECK((strcmp(type, "who") == 0) ==
               (len >= strlen(PROTO_WHO_PREFIX) &&
                memcmp(json, PROTO_WHO_PREFIX, strlen(PROTO_WHO_PREFIX)) == 0));
    proto_free(json);
    return obj;
}

static void check_sender(const cJSON *obj, const char *key, const struct proto_sender *s)
{
    check_field(obj, key, s->id);
    check_field(obj, "user", s->user && s->user[0] ? s->user : NULL);
    check_field(obj, "username", s->username);
    check_field(obj, "email", s->email[0] ? s->email : NULL);
}

/* A chat message or direct message (to a client or to a user), relayed as the gateway would. */
static void round_trip_chat(const struct proto_msg *m, const struct proto_sender *from)
{
    int direct = m->type == PROTO_DIRECT, to_user = direct && m->to_user[0];
    size_t len;
    char *json =
        to_user ? proto_encode_direct_user(m->to_user, MSG_ID, from, m->text, m->text_len, TS, &len)
        : direct ? proto_encode_direct(m->to, MSG_ID, from, m->text, m->text_len, TS, &len)
                 : proto_encode_message(m->room, MSG_ID, from, m->text, m->text_len, TS, &len);
    cJSON *obj = parse_encoded(json, len, direct ? "direct" : "message");
    const cJSON *ts = cJSON_GetObjectItemCaseSensitive(obj, "ts");

    check_field(obj,
                to_user  ? "to_user"
                : direct ? "to"
                         : "room",
                to_user  ? m->to_user
                : direct ? m->to
                         : m->room);
    check_field(obj, to_user ? "to" : "to_user", NULL);
    check_field(obj, "id", MSG_ID);
    check_sender(obj, "from", from);
    check_field(obj, "message", m->text);
    FUZZ_CHECK(cJSON_IsNumber(ts) && (uint64_t)ts->valuedouble == TS);
    cJSON_Delete(obj);
}

static void round_trip_presence(const char *room, const struct proto_sender *who)
{
    size_t len;
    char *json = proto_encode_presence(room, "join", who, &len);
    cJSON *obj = parse_encoded(json, len, "presence");

    check_field(obj, "room", room);
    check_field(obj, "event", "join");
    check_sender(obj, "client", who);
    cJSON_Delete(obj);
}

static void round_trip_members(const char *room, const struct proto_sender *who)
{
    size_t len;
    const struct proto_sender list[2] = {*who, {CLIENT_ID, "guest-9732ef", "", NULL}};
    char *json = proto_encode_members(room, "gw-fuzz", list, 2, &len);
    cJSON *obj = parse_encoded(json, len, "members");
    const cJSON *members = cJSON_GetObjectItemCaseSensitive(obj, "members");

    check_field(obj, "room", room);
    FUZZ_CHECK(cJSON_IsArray(members) && cJSON_GetArraySize(members) == 2);
    check_sender(cJSON_GetArrayItem(members, 0), "client", who);
    cJSON_Delete(obj);
}

/* A room name the client chose, in a welcome and in an error's ref. */
static void round_trip_room(const char *room)
{
    const char *rooms[2] = {"lobby", room};
    size_t len;
    cJSON *obj = parse_encoded(proto_encode_welcome(CLIENT_ID, NULL, 0, "gw-fuzz", rooms, 2, &len),
                               len, "welcome");
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(obj, "rooms");
    const cJSON *second = cJSON_GetArrayItem(list, 1);

    FUZZ_CHECK(cJSON_IsString(second) && strcmp(second->valuestring, room) == 0);
    cJSON_Delete(obj);
    obj = parse_encoded(proto_encode_error("not_joined", "not in that room", room, &len), len,
                        "error");
    check_field(obj, "ref", room);
    cJSON_Delete(obj);
}

/* A who query for room: it starts with the prefix and decodes to the same fields. */
static void round_trip_who(const char *room, const char *reply_to)
{
    char got_room[PROTO_ROOM_MAX + 1], got_to[PROTO_ID_LEN + 1];
    size_t len;
    char *json = proto_encode_who(room, reply_to, &len);

    FUZZ_CHECK(len >= strlen(PROTO_WHO_PREFIX) &&
               memcmp(json, PROTO_WHO_PREFIX, strlen(PROTO_WHO_PREFIX)) == 0);
    FUZZ_CHECK(proto_decode_who((const uint8_t *)json, len, got_room, got_to) == 0);
    FUZZ_CHECK(strcmp(got_room, room) == 0 && strcmp(got_to, reply_to) == 0);
    proto_free(json);
}

static void round_trip(const struct proto_msg *m)
{
    /* The identity a session shows: its hello, or the seed format's own fields; a user id from
     * the input (a direct's to_user) stands for a token's sub. */
    const struct proto_sender from = {CLIENT_ID, m->username[0] ? m->username : "guest-9732ef",
                                      m->email, m->to_user};

    switch (m->type) {
    case PROTO_MESSAGE:
    case PROTO_DIRECT:
        round_trip_chat(m, &from);
        break;
    case PROTO_HELLO:
        round_trip_presence("lobby", &from);
        round_trip_members("lobby", &from);
        break;
    case PROTO_JOIN:
    case PROTO_LEAVE:
        round_trip_presence(m->room, &from);
        round_trip_room(m->room);
        break;
    case PROTO_WHO:
        round_trip_who(m->room, CLIENT_ID);
        break;
    case PROTO_REFRESH: {
        /* The gateway verifies the token (fuzz_jwt); the answer carries the new exp. */
        size_t len;
        cJSON *obj = parse_encoded(proto_encode_refreshed((int64_t)strlen(m->token), &len), len,
                                   "refreshed");
        const cJSON *exp = cJSON_GetObjectItemCaseSensitive(obj, "exp");

        FUZZ_CHECK(cJSON_IsNumber(exp) && exp->valuedouble == (double)strlen(m->token));
        cJSON_Delete(obj);
        break;
    }
    }
}

/* ---- entry ---------------------------------------------------------------------------------- */

static void check_who(const uint8_t *buf, size_t len)
{
    char room[PROTO_ROOM_MAX + 1], reply_to[PROTO_ID_LEN + 1];

    if (proto_decode_who(buf, len, room, reply_to) < 0)
        return;
    FUZZ_CHECK(proto_is_room(room, strnlen(room, sizeof(room))));
    FUZZ_CHECK(proto_is_client_id(reply_to, strnlen(reply_to, sizeof(reply_to))));
    round_trip_who(room, reply_to);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_input in = {data, size};
    uint8_t b = fuzz_byte(&in);
    size_t text_max = b < 128 ? b : (size_t)(b - 127) * 128;
    uint8_t *buf = fuzz_dup(in.p, in.len);
    struct proto_msg msg;
    int rc = proto_decode_client(buf, in.len, text_max, &msg);

    FUZZ_CHECK(rc <= PROTO_OK && rc >= PROTO_ERR_TEXT);
    FUZZ_CHECK(proto_err_code(rc) != NULL && proto_strerror(rc) != NULL);
    if (rc == PROTO_OK) {
        FUZZ_CHECK(memchr(buf, '\0', in.len) == NULL);
        check_msg(&msg, text_max);
        round_trip(&msg);
    } else {
        FUZZ_CHECK(msg.text == NULL && msg.type == 0);
    }
    proto_msg_clear(&msg);
    check_who(buf, in.len);
    free(buf);
    return 0;
}
