#include "proto/client.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "proto/json.h"
#include "proto/utf8.h"
#include "proto/xalloc.h"

/* ---- encoding ----------------------------------------------------------------------------- */

/* {"type":type,k1:v1[,k2:v2]}; k2 NULL for one field. */
static char *encode2(const char *type, const char *k1, const char *v1, const char *k2,
                     const char *v2, size_t *len)
{
    cJSON *obj = cJSON_CreateObject();

    cJSON_AddStringToObject(obj, "type", type);
    cJSON_AddStringToObject(obj, k1, v1);
    if (k2)
        cJSON_AddStringToObject(obj, k2, v2);
    return proto_json_print(obj, len);
}

char *proto_client_encode_hello(const char *username, const char *email, size_t *len)
{
    int has_email = email && email[0];

    return encode2("hello", "username", username, has_email ? "email" : NULL, email, len);
}

char *proto_client_encode_join(const char *room, size_t *len)
{
    return encode2("join", "room", room, NULL, NULL, len);
}

char *proto_client_encode_leave(const char *room, size_t *len)
{
    return encode2("leave", "room", room, NULL, NULL, len);
}

char *proto_client_encode_message(const char *room, const char *text, size_t *len)
{
    return encode2("message", "room", room, "message", text, len);
}

char *proto_client_encode_direct(const char *to, const char *text, size_t *len)
{
    return encode2("direct", proto_is_client_id(to, strlen(to)) ? "to" : "to_user", to, "message",
                   text, len);
}

char *proto_client_encode_who(const char *room, size_t *len)
{
    return encode2("who", "room", room, NULL, NULL, len);
}

/* ---- the decoding tables ------------------------------------------------------------------ */

/* What a field holds, and so how it is checked and where it goes. */
enum field_kind {
    FIELD_NAME = 1, /* a string of at most size - 1 bytes, no control characters */
    FIELD_ROOM,     /* a room name */
    FIELD_CLIENT,   /* a client id */
    FIELD_EVENT,    /* "join" or "leave" */
    FIELD_TEXT,     /* a message body of any size: msg->text */
    FIELD_TS,       /* an integer from 0 to 2^53: msg->ts */
    FIELD_ROOMS,    /* an array of room names: msg->rooms */
    FIELD_MEMBERS,  /* an array of member objects: msg->members */
};

struct field {
    const char *name;
    enum field_kind kind;
    int required;
    size_t offset; /* of the char array that receives a string */
    size_t size;   /* of that array */
};

#define MAX_FIELDS 10
#define MSG_FIELD(name, kind, req, member)                                                         \
    {                                                                                              \
        name, kind, req, offsetof(struct proto_server_msg, member),                                \
            sizeof(((struct proto_server_msg *)0)->member)                                         \
    }
#define MEMBER_FIELD(name, kind, req, member)                                                      \
    {                                                                                              \
        name, kind, req, offsetof(struct proto_member, member),                                    \
            sizeof(((struct proto_member *)0)->member)                                             \
    }
#define OTHER_FIELD(name, kind, req)                                                               \
    {                                                                                              \
        name, kind, req, 0, 0                                                                      \
    }

struct type_spec {
    const char *name;
    enum proto_server_type type;
    struct field fields[MAX_FIELDS]; /* end at a NULL name */
};

static const struct type_spec types[] = {
    {"welcome",
     PROTO_S_WELCOME,
     {MSG_FIELD("id", FIELD_CLIENT, 1, id), MSG_FIELD("user", FIELD_NAME, 0, user),
      MSG_FIELD("gateway", FIELD_NAME, 0, gateway), OTHER_FIELD("rooms", FIELD_ROOMS, 0)}},
    {"message",
     PROTO_S_MESSAGE,
     {MSG_FIELD("room", FIELD_ROOM, 1, room), MSG_FIELD("id", FIELD_NAME, 1, id),
      MSG_FIELD("from", FIELD_CLIENT, 1, from), MSG_FIELD("user", FIELD_NAME, 0, user),
      MSG_FIELD("username", FIELD_NAME, 1, username), MSG_FIELD("email", FIELD_NAME, 0, email),
      OTHER_FIELD("message", FIELD_TEXT, 1), OTHER_FIELD("ts", FIELD_TS, 1)}},
    /* "to" or "to_user": exactly one, checked after the fields */
    {"direct",
     PROTO_S_DIRECT,
     {MSG_FIELD("to", FIELD_CLIENT, 0, to), MSG_FIELD("to_user", FIELD_NAME, 0, to_user),
      MSG_FIELD("id", FIELD_NAME, 1, id), MSG_FIELD("from", FIELD_CLIENT, 1, from),
      MSG_FIELD("user", FIELD_NAME, 0, user), MSG_FIELD("username", FIELD_NAME, 1, username),
      MSG_FIELD("email", FIELD_NAME, 0, email), OTHER_FIELD("message", FIELD_TEXT, 1),
      OTHER_FIELD("ts", FIELD_TS, 1)}},
    {"presence",
     PROTO_S_PRESENCE,
     {MSG_FIELD("room", FIELD_ROOM, 1, room), MSG_FIELD("event", FIELD_EVENT, 1, event),
      MSG_FIELD("client", FIELD_CLIENT, 1, from), MSG_FIELD("user", FIELD_NAME, 0, user),
      MSG_FIELD("username", FIELD_NAME, 1, username), MSG_FIELD("email", FIELD_NAME, 0, email)}},
    {"members",
     PROTO_S_MEMBERS,
     {MSG_FIELD("room", FIELD_ROOM, 1, room), MSG_FIELD("gateway", FIELD_NAME, 0, gateway),
      OTHER_FIELD("members", FIELD_MEMBERS, 1)}},
    {"error",
     PROTO_S_ERROR,
     {MSG_FIELD("code", FIELD_NAME, 1, code), MSG_FIELD("reason", FIELD_NAME, 0, reason),
      MSG_FIELD("ref", FIELD_NAME, 0, ref)}},
    {"who",
     PROTO_S_WHO,
     {MSG_FIELD("room", FIELD_ROOM, 1, room), MSG_FIELD("reply_to", FIELD_CLIENT, 1, to)}},
};

static const struct field member_fields[MAX_FIELDS] = {
    MEMBER_FIELD("client", FIELD_CLIENT, 1, client),
    MEMBER_FIELD("user", FIELD_NAME, 0, user),
    MEMBER_FIELD("username", FIELD_NAME, 1, username),
    MEMBER_FIELD("email", FIELD_NAME, 0, email),
};

const char *proto_server_type_name(enum proto_server_type type)
{
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
        if (types[i].type == type)
            return types[i].name;
    return "?";
}

/* ---- checks ------------------------------------------------------------------------------- */

/* Check the string s (len bytes) as a field of kind kind held in size bytes. */
static int check_string(enum field_kind kind, const char *s, size_t len, size_t size)
{
    if (!proto_utf8_is_valid((const uint8_t *)s, len))
        return PROTO_ERR_TEXT;
    switch (kind) {
    case FIELD_ROOM:
        return proto_is_room(s, len) ? PROTO_OK : PROTO_ERR_ROOM;
    case FIELD_CLIENT:
        return proto_is_client_id(s, len) ? PROTO_OK : PROTO_ERR_TARGET;
    case FIELD_EVENT:
        return strcmp(s, "join") == 0 || strcmp(s, "leave") == 0 ? PROTO_OK : PROTO_ERR_SHAPE;
    case FIELD_NAME:
        if (len >= size)
            return PROTO_ERR_TOO_LARGE;
        return proto_has_control(s, len) ? PROTO_ERR_TEXT : PROTO_OK;
    default:
        return PROTO_OK;
    }
}

/* Copy the string item into the char array of f inside base. */
static int store_string(const cJSON *item, const struct field *f, void *base)
{
    if (!cJSON_IsString(item))
        return PROTO_ERR_SHAPE;
    size_t len = strlen(item->valuestring);
    int rc = check_string(f->kind, item->valuestring, len, f->size);
    if (rc != PROTO_OK)
        return rc;
    memcpy((char *)base + f->offset, item->valuestring, len + 1);
    return PROTO_OK;
}

/* ---- composite fields --------------------------------------------------------------------- */

static int decode_object(const cJSON *obj, const struct field *fields, void *base,
                         struct proto_server_msg *msg);

static int store_text(const cJSON *item, struct proto_server_msg *msg)
{
    if (!cJSON_IsString(item))
        return PROTO_ERR_SHAPE;
    size_t len = strlen(item->valuestring);
    if (!proto_utf8_is_valid((const uint8_t *)item->valuestring, len))
        return PROTO_ERR_TEXT;
    msg->text = xstrndup(item->valuestring, len);
    msg->text_len = len;
    return PROTO_OK;
}

static int store_ts(const cJSON *item, struct proto_server_msg *msg)
{
    double v;

    if (!cJSON_IsNumber(item))
        return PROTO_ERR_SHAPE;
    v = item->valuedouble;
    if (!(v >= 0 && v < 9007199254740992.0) || v != (double)(uint64_t)v)
        return PROTO_ERR_SHAPE;
    msg->ts = (uint64_t)v;
    return PROTO_OK;
}

static int store_rooms(const cJSON *item, struct proto_server_msg *msg)
{
    const cJSON *it;
    size_t n = 0;

    if (!cJSON_IsArray(item))
        return PROTO_ERR_SHAPE;
    msg->rooms = xcalloc((size_t)cJSON_GetArraySize(item), sizeof(*msg->rooms));
    cJSON_ArrayForEach(it, item)
    {
        struct field f = {"rooms", FIELD_ROOM, 1, 0, sizeof(*msg->rooms)};
        int rc = store_string(it, &f, msg->rooms[n]);
        if (rc != PROTO_OK)
            return rc;
        msg->n_rooms = ++n;
    }
    return PROTO_OK;
}

static int store_members(const cJSON *item, struct proto_server_msg *msg)
{
    const cJSON *it;
    size_t n = 0;

    if (!cJSON_IsArray(item))
        return PROTO_ERR_SHAPE;
    msg->members = xcalloc((size_t)cJSON_GetArraySize(item), sizeof(*msg->members));
    cJSON_ArrayForEach(it, item)
    {
        if (!cJSON_IsObject(it))
            return PROTO_ERR_SHAPE;
        int rc = decode_object(it, member_fields, &msg->members[n], msg);
        if (rc != PROTO_OK)
            return rc;
        msg->n_members = ++n;
    }
    return PROTO_OK;
}

static int store(const cJSON *item, const struct field *f, void *base, struct proto_server_msg *msg)
{
    switch (f->kind) {
    case FIELD_TEXT:
        return store_text(item, msg);
    case FIELD_TS:
        return store_ts(item, msg);
    case FIELD_ROOMS:
        return store_rooms(item, msg);
    case FIELD_MEMBERS:
        return store_members(item, msg);
    default:
        return store_string(item, f, base);
    }
}

/* ---- decoding ----------------------------------------------------------------------------- */

static size_t count_key(const cJSON *obj, const char *key)
{
    size_t n = 0;

    for (const cJSON *it = obj->child; it; it = it->next)
        n += it->string && strcmp(it->string, key) == 0;
    return n;
}

/* Decode the fields (up to a NULL name) of obj into base (msg for composite fields). */
static int decode_object(const cJSON *obj, const struct field *fields, void *base,
                         struct proto_server_msg *msg)
{
    for (const struct field *f = fields; f < fields + MAX_FIELDS && f->name; f++) {
        size_t n = count_key(obj, f->name);

        if (n == 0 && f->required)
            return PROTO_ERR_MISSING;
        if (n > 1)
            return PROTO_ERR_SHAPE;
        if (n == 0)
            continue;
        int rc = store(cJSON_GetObjectItemCaseSensitive(obj, f->name), f, base, msg);
        if (rc != PROTO_OK)
            return rc;
    }
    return PROTO_OK;
}

static int pick_spec(const cJSON *obj, const struct type_spec **spec)
{
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(obj, "type");

    if (type == NULL)
        return PROTO_ERR_MISSING;
    if (!cJSON_IsString(type) || count_key(obj, "type") > 1)
        return PROTO_ERR_SHAPE;
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        if (strcmp(type->valuestring, types[i].name) == 0) {
            *spec = &types[i];
            return PROTO_OK;
        }
    }
    return PROTO_ERR_TYPE;
}

int proto_client_decode(const uint8_t *buf, size_t len, struct proto_server_msg *msg)
{
    const struct type_spec *spec = NULL;
    cJSON *root;
    int rc;

    memset(msg, 0, sizeof(*msg));
    root = proto_json_parse(buf, len);
    if (root == NULL)
        return PROTO_ERR_JSON;
    if (!cJSON_IsObject(root))
        rc = PROTO_ERR_SHAPE;
    else if (proto_json_has_escaped_nul(buf, len))
        rc = PROTO_ERR_TEXT;
    else
        rc = pick_spec(root, &spec);
    if (rc == PROTO_OK)
        rc = decode_object(root, spec->fields, msg, msg);
    if (rc == PROTO_OK && spec->type == PROTO_S_DIRECT && !msg->to[0] == !msg->to_user[0])
        rc = msg->to[0] ? PROTO_ERR_TARGET : PROTO_ERR_MISSING;
    if (rc == PROTO_OK)
        msg->type = spec->type;
    else
        proto_server_msg_clear(msg);
    cJSON_Delete(root);
    return rc;
}

void proto_server_msg_clear(struct proto_server_msg *msg)
{
    free(msg->text);
    free(msg->rooms);
    free(msg->members);
    memset(msg, 0, sizeof(*msg));
}

/* ---- display ------------------------------------------------------------------------------ */

/* Length of the UTF-8 sequence at s (at most len bytes) and its code point; 0 if invalid. */
static size_t utf8_char(const uint8_t *s, size_t len, uint32_t *cp)
{
    size_t n = s[0] < 0x80 ? 1 : (s[0] & 0xe0) == 0xc0 ? 2 : (s[0] & 0xf0) == 0xe0 ? 3 : 4;

    if (n > len || (s[0] >= 0x80 && s[0] < 0xc2) || s[0] > 0xf4 || !proto_utf8_is_valid(s, n))
        return 0;
    *cp = n == 1 ? s[0] : s[0] & (0x7fu >> n);
    for (size_t i = 1; i < n; i++)
        *cp = (*cp << 6) | (s[i] & 0x3fu);
    return n;
}

/* 1 for code points that move the cursor or reorder text on a terminal. */
static int is_unsafe(uint32_t cp)
{
    return cp < 0x20 || (cp >= 0x7f && cp < 0xa0) || cp == 0x2028 || cp == 0x2029 ||
           (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069);
}

char *proto_client_escape(const uint8_t *s, size_t len, int keep_lines, size_t *out_len)
{
    /* The longest escape, \u{xxxx} (8 bytes), stands for 2 or 3 input bytes; \xHH for 1. */
    char *out = xmalloc(4 * len + 1);
    size_t i = 0, o = 0;

    while (i < len) {
        uint32_t cp = 0;
        size_t n = utf8_char(s + i, len - i, &cp);

        if (n == 0) {
            o += (size_t)sprintf(out + o, "\\x%02x", s[i]);
            n = 1;
        } else if (keep_lines && (cp == '\n' || cp == '\t')) {
            out[o++] = (char)cp;
        } else if (cp == '\n' || cp == '\t' || cp == '\r') {
            o += (size_t)sprintf(out + o, "\\%c", cp == '\n' ? 'n' : cp == '\t' ? 't' : 'r');
        } else if (is_unsafe(cp)) {
            o += (size_t)sprintf(out + o, cp < 0x100 ? "\\x%02x" : "\\u{%04x}", (unsigned)cp);
        } else {
            memcpy(out + o, s + i, n);
            o += n;
        }
        i += n;
    }
    out[o] = '\0';
    *out_len = o;
    return out;
}
