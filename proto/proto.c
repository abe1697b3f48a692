#include "proto/proto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "proto/json.h"
#include "proto/utf8.h"

/* What a field holds, and so how it is checked. */
enum field_kind {
    FIELD_ROOM = 1,
    FIELD_TARGET,
    FIELD_USERNAME,
    FIELD_EMAIL,
    FIELD_TEXT,
    FIELD_USER,
    FIELD_TOKEN,
};

struct field {
    const char *name;
    enum field_kind kind;
    int required;
};

/* The fields of each message type; a type's fields end at a NULL name. */
struct type_spec {
    const char *name;
    enum proto_type type;
    struct field fields[4];
};

static const struct type_spec types[] = {
    {"hello",
     PROTO_HELLO,
     {{"username", FIELD_USERNAME, 1}, {"email", FIELD_EMAIL, 0}, {NULL, 0, 0}}},
    {"join", PROTO_JOIN, {{"room", FIELD_ROOM, 1}, {NULL, 0, 0}}},
    {"leave", PROTO_LEAVE, {{"room", FIELD_ROOM, 1}, {NULL, 0, 0}}},
    {"message", PROTO_MESSAGE, {{"room", FIELD_ROOM, 1}, {"message", FIELD_TEXT, 1}, {NULL, 0, 0}}},
    /* "to" or "to_user": exactly one, checked after the fields */
    {"direct",
     PROTO_DIRECT,
     {{"to", FIELD_TARGET, 0}, {"to_user", FIELD_USER, 0}, {"message", FIELD_TEXT, 1}}},
    {"who", PROTO_WHO, {{"room", FIELD_ROOM, 1}, {NULL, 0, 0}}},
    {"refresh", PROTO_REFRESH, {{"token", FIELD_TOKEN, 1}, {NULL, 0, 0}}},
};

/* The seed tutorials' message: no "type", goes to the default room. */
static const struct type_spec seed_spec = {
    "message",
    PROTO_MESSAGE,
    {{"message", FIELD_TEXT, 1}, {"username", FIELD_USERNAME, 0}, {"email", FIELD_EMAIL, 0}},
};

/* Keys whose repetition makes a message ambiguous, so it is refused. */
static const char *const known_keys[] = {"type",     "room",  "to",      "to_user",
                                         "username", "email", "message", "token"};

void proto_init(void *(*alloc)(size_t), void (*release)(void *))
{
    cJSON_Hooks hooks = {alloc, release};

    cJSON_InitHooks(alloc && release ? &hooks : NULL);
}

/* ---- validation --------------------------------------------------------------------------- */

int proto_is_room(const char *name, size_t len)
{
    if (len == 0 || len > PROTO_ROOM_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == ':' || c == '-'))
            return 0;
    }
    return 1;
}

int proto_is_client_id(const char *id, size_t len)
{
    if (len != PROTO_ID_LEN)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
            return 0;
    return 1;
}

int proto_is_user(const char *s, size_t len)
{
    return len > 0 && len <= PROTO_USER_MAX && !proto_has_control(s, len) &&
           proto_utf8_is_valid((const uint8_t *)s, len);
}

int proto_has_control(const char *s, size_t len)

{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return 1;
    return 0;
}

static int check_value(enum field_kind kind, const char *s, size_t len, size_t text_max)
{
    if (!proto_utf8_is_valid((const uint8_t *)s, len))
        return PROTO_ERR_TEXT;
    switch (kind) {
    case FIELD_ROOM:
        return proto_is_room(s, len) ? PROTO_OK : PROTO_ERR_ROOM;
    case FIELD_TARGET:
        return proto_is_client_id(s, len) ? PROTO_OK : PROTO_ERR_TARGET;
    case FIELD_USERNAME:
        if (len > PROTO_USERNAME_MAX)
            return PROTO_ERR_TOO_LARGE;
        return len == 0 || proto_has_control(s, len) ? PROTO_ERR_TEXT : PROTO_OK;
    case FIELD_USER:
        return proto_is_user(s, len) ? PROTO_OK : PROTO_ERR_TARGET;
    case FIELD_TOKEN: /* verified by the gateway; only its size is the codec's business */
        return len > PROTO_TOKEN_MAX ? PROTO_ERR_TOO_LARGE : PROTO_OK;
    case FIELD_EMAIL:
        if (len > PROTO_EMAIL_MAX)
            return PROTO_ERR_TOO_LARGE;
        return proto_has_control(s, len) ? PROTO_ERR_TEXT : PROTO_OK;
    case FIELD_TEXT:
        return len > text_max ? PROTO_ERR_TOO_LARGE : PROTO_OK;
    }
    return PROTO_ERR_SHAPE;
}

static void store(struct proto_msg *msg, enum field_kind kind, const char *s, size_t len)
{
    switch (kind) {
    case FIELD_ROOM:
        memcpy(msg->room, s, len + 1);
        break;
    case FIELD_TARGET:
        memcpy(msg->to, s, len + 1);
        break;
    case FIELD_USERNAME:
        memcpy(msg->username, s, len + 1);
        break;
    case FIELD_USER:
        memcpy(msg->to_user, s, len + 1);
        break;
    case FIELD_TOKEN:
        msg->token = cJSON_malloc(len + 1);
        memcpy(msg->token, s, len + 1);
        break;
    case FIELD_EMAIL:
        memcpy(msg->email, s, len + 1);
        break;
    case FIELD_TEXT:
        msg->text = cJSON_malloc(len + 1);
        memcpy(msg->text, s, len + 1);
        msg->text_len = len;
        break;
    }
}

/* ---- decoding ----------------------------------------------------------------------------- */

static int has_duplicate_keys(const cJSON *obj)
{
    for (size_t k = 0; k < sizeof(known_keys) / sizeof(known_keys[0]); k++) {
        int seen = 0;

        for (const cJSON *it = obj->child; it; it = it->next)
            if (it->string && strcmp(it->string, known_keys[k]) == 0 && ++seen > 1)
                return 1;
    }
    return 0;
}

static int pick_spec(const cJSON *obj, const struct type_spec **spec)
{
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(obj, "type");

    if (type == NULL) {
        if (cJSON_GetObjectItemCaseSensitive(obj, "message") == NULL)
            return PROTO_ERR_MISSING;
        *spec = &seed_spec;
        return PROTO_OK;
    }
    if (!cJSON_IsString(type))
        return PROTO_ERR_SHAPE;
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        if (strcmp(type->valuestring, types[i].name) == 0) {
            *spec = &types[i];
            return PROTO_OK;
        }
    }
    return PROTO_ERR_TYPE;
}

static int decode_fields(const cJSON *obj, const struct type_spec *spec, size_t text_max,
                         struct proto_msg *msg)
{
    for (const struct field *f = spec->fields; f < spec->fields + 4 && f->name; f++) {
        const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, f->name);
        int rc;

        if (item == NULL) {
            if (f->required)
                return PROTO_ERR_MISSING;
            continue;
        }
        if (!cJSON_IsString(item))
            return PROTO_ERR_SHAPE;
        size_t len = strlen(item->valuestring);
        rc = check_value(f->kind, item->valuestring, len, text_max);
        if (rc != PROTO_OK)
            return rc;
        store(msg, f->kind, item->valuestring, len);
    }
    return PROTO_OK;
}

int proto_decode_client(const uint8_t *buf, size_t len, size_t text_max, struct proto_msg *msg)
{
    const struct type_spec *spec = NULL;
    cJSON *root;
    int rc;

    memset(msg, 0, sizeof(*msg));
    root = proto_json_parse(buf, len);
    if (root == NULL)
        return PROTO_ERR_JSON;
    if (!cJSON_IsObject(root) || has_duplicate_keys(root))
        rc = PROTO_ERR_SHAPE;
    else if (proto_json_has_escaped_nul(buf, len) || memchr(buf, '\0', len))
        rc = PROTO_ERR_TEXT; /* a NUL, escaped or raw, would cut the string it is in */
    else
        rc = pick_spec(root, &spec);
    if (rc == PROTO_OK)
        rc = decode_fields(root, spec, text_max, msg);
    if (rc == PROTO_OK && spec->type == PROTO_DIRECT && !msg->to[0] == !msg->to_user[0])
        rc = msg->to[0] ? PROTO_ERR_TARGET : PROTO_ERR_MISSING;
    if (rc == PROTO_OK) {
        msg->type = spec->type;
        if (spec == &seed_spec) {
            memcpy(msg->room, PROTO_DEFAULT_ROOM, sizeof(PROTO_DEFAULT_ROOM));
            msg->has_identity = msg->username[0] || msg->email[0];
        }
    } else {
        proto_msg_clear(msg);
    }
    cJSON_Delete(root);
    return rc;
}

void proto_msg_clear(struct proto_msg *msg)
{
    cJSON_free(msg->text);
    cJSON_free(msg->token);
    memset(msg, 0, sizeof(*msg));
}

const char *proto_err_code(int err)
{
    switch (err) {
    case PROTO_OK:
        return "ok";
    case PROTO_ERR_JSON:
        return "bad_json";
    case PROTO_ERR_SHAPE:
    case PROTO_ERR_MISSING:
        return "bad_message";
    case PROTO_ERR_TYPE:
        return "unknown_type";
    case PROTO_ERR_ROOM:
        return "bad_room";
    case PROTO_ERR_TARGET:
        return "bad_target";
    case PROTO_ERR_TOO_LARGE:
        return "too_large";
    case PROTO_ERR_TEXT:
        return "bad_text";
    }
    return "bad_message";
}

const char *proto_strerror(int err)
{
    switch (err) {
    case PROTO_OK:
        return "no error";
    case PROTO_ERR_JSON:
        return "not a JSON text";
    case PROTO_ERR_SHAPE:
        return "not an object of string fields, or a field given twice";
    case PROTO_ERR_TYPE:
        return "unknown message type";
    case PROTO_ERR_MISSING:
        return "a required field is missing";
    case PROTO_ERR_ROOM:
        return "room names are 1 to 64 of A-Z a-z 0-9 _ . : -";
    case PROTO_ERR_TARGET:
        return "\"to\" must be a client id (32 hex digits), or \"to_user\" a user id, not both";
    case PROTO_ERR_TOO_LARGE:
        return "a field is over its size limit";
    case PROTO_ERR_TEXT:
        return "a string holds NUL, control characters or invalid UTF-8";
    }
    return "bad message";
}

/* ---- encoding ----------------------------------------------------------------------------- */

static void add_sender(cJSON *obj, const char *key, const struct proto_sender *s)
{
    cJSON_AddStringToObject(obj, key, s->id);
    if (s->user && s->user[0])
        cJSON_AddStringToObject(obj, "user", s->user);
    cJSON_AddStringToObject(obj, "username", s->username);
    if (s->email && s->email[0])
        cJSON_AddStringToObject(obj, "email", s->email);
}

char *proto_encode_welcome(const char *id, const char *user, int64_t exp, const char *gateway,
                           const char *const *rooms, size_t n_rooms, size_t *len)
{
    cJSON *obj = cJSON_CreateObject();
    cJSON *list = cJSON_CreateArray();

    cJSON_AddStringToObject(obj, "type", "welcome");
    cJSON_AddStringToObject(obj, "id", id);
    if (user) {
        cJSON_AddStringToObject(obj, "user", user);
        cJSON_AddNumberToObject(obj, "exp", (double)exp);
    }
    cJSON_AddStringToObject(obj, "gateway", gateway);
    for (size_t i = 0; i < n_rooms; i++)
        cJSON_AddItemToArray(list, cJSON_CreateString(rooms[i]));
    cJSON_AddItemToObject(obj, "rooms", list);
    return proto_json_print(obj, len);
}

static char *encode_chat(const char *type, const char *key, const char *where, const char *msg_id,
                         const struct proto_sender *from, const char *text, uint64_t ts_ms,
                         size_t *len)
{
    cJSON *obj = cJSON_CreateObject();

    cJSON_AddStringToObject(obj, "type", type);
    cJSON_AddStringToObject(obj, key, where);
    cJSON_AddStringToObject(obj, "id", msg_id);
    add_sender(obj, "from", from);
    cJSON_AddStringToObject(obj, "message", text);
    cJSON_AddNumberToObject(obj, "ts", (double)ts_ms);
    return proto_json_print(obj, len);
}

char *proto_encode_message(const char *room, const char *msg_id, const struct proto_sender *from,
                           const char *text, size_t text_len, uint64_t ts_ms, size_t *len)
{
    (void)text_len; /* text holds no NUL: decoding refuses it */
    return encode_chat("message", "room", room, msg_id, from, text, ts_ms, len);
}

char *proto_encode_direct(const char *to, const char *msg_id, const struct proto_sender *from,
                          const char *text, size_t text_len, uint64_t ts_ms, size_t *len)
{
    (void)text_len;
    return encode_chat("direct", "to", to, msg_id, from, text, ts_ms, len);
}

char *proto_encode_direct_user(const char *to_user, const char *msg_id,
                               const struct proto_sender *from, const char *text, size_t text_len,
                               uint64_t ts_ms, size_t *len)
{
    (void)text_len;
    return encode_chat("direct", "to_user", to_user, msg_id, from, text, ts_ms, len);
}

char *proto_encode_refreshed(int64_t exp, size_t *len)
{
    cJSON *obj = cJSON_CreateObject();

    cJSON_AddStringToObject(obj, "type", "refreshed");
    cJSON_AddNumberToObject(obj, "exp", (double)exp);
    return proto_json_print(obj, len);
}

char *proto_encode_presence(const char *room, const char *event, const struct proto_sender *who,

                            size_t *len)
{
    cJSON *obj = cJSON_CreateObject();

    cJSON_AddStringToObject(obj, "type", "presence");
    cJSON_AddStringToObject(obj, "room", room);
    cJSON_AddStringToObject(obj, "event", event);
    add_sender(obj, "client", who);
    return proto_json_print(obj, len);
}

char *proto_encode_error(const char *code, const char *reason, const char *ref, size_t *len)
{
    cJSON *obj = cJSON_CreateObject();
    char cut[PROTO_REASON_MAX + 1];

    snprintf(cut, sizeof(cut), "%s", reason);
    cJSON_AddStringToObject(obj, "type", "error");
    cJSON_AddStringToObject(obj, "code", code);
    cJSON_AddStringToObject(obj, "reason", cut);
    if (ref)
        cJSON_AddStringToObject(obj, "ref", ref);
    return proto_json_print(obj, len);
}

char *proto_encode_who(const char *room, const char *reply_to, size_t *len)
{
    cJSON *obj = cJSON_CreateObject();

    cJSON_AddStringToObject(obj, "type", "who");
    cJSON_AddStringToObject(obj, "room", room);
    cJSON_AddStringToObject(obj, "reply_to", reply_to);
    return proto_json_print(obj, len);
}

int proto_decode_who(const uint8_t *buf, size_t len, char room[PROTO_ROOM_MAX + 1],
                     char reply_to[PROTO_ID_LEN + 1])
{
    cJSON *obj = cJSON_ParseWithLength((const char *)buf, len);
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(obj, "room");
    const cJSON *to = cJSON_GetObjectItemCaseSensitive(obj, "reply_to");
    int rc = -1;

    if (cJSON_IsString(r) && cJSON_IsString(to) &&
        proto_is_room(r->valuestring, strlen(r->valuestring)) &&
        proto_is_client_id(to->valuestring, strlen(to->valuestring))) {
        memcpy(room, r->valuestring, strlen(r->valuestring) + 1);
        memcpy(reply_to, to->valuestring, PROTO_ID_LEN + 1);
        rc = 0;
    }
    cJSON_Delete(obj);
    return rc;
}

char *proto_encode_members(const char *room, const char *gateway,
                           const struct proto_sender *members, size_t n, size_t *len)
{
    cJSON *obj = cJSON_CreateObject();
    cJSON *list = cJSON_CreateArray();

    cJSON_AddStringToObject(obj, "type", "members");
    cJSON_AddStringToObject(obj, "room", room);
    cJSON_AddStringToObject(obj, "gateway", gateway);
    for (size_t i = 0; i < n; i++) {
        cJSON *m = cJSON_CreateObject();
        add_sender(m, "client", &members[i]);
        cJSON_AddItemToArray(list, m);
    }
    cJSON_AddItemToObject(obj, "members", list);
    return proto_json_print(obj, len);
}

void proto_free(char *json)
{
    cJSON_free(json);
}
