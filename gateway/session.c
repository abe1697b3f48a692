#include "gateway/session.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <event2/buffer.h>

#include "gateway/bus.h"
#include "gateway/config.h"
#include "gateway/conn.h"
#include "gateway/frame.h"
#include "gateway/handshake.h"
#include "gateway/log.h"
#include "gateway/metrics.h"
#include "gateway/rooms.h"
#include "gateway/util.h"
#include "gateway/ws.h"
#include "proto/jwt.h"
#include "proto/proto.h"

/* Error replies a flooding client gets: at most one per this many milliseconds. */
#define SESSION_RATE_ERROR_MS 1000

/* What a verified connect token gave a session; guests have none. */
struct session_auth {
    struct proto_jwt_claims claims;
    struct gw_member *user; /* in the directory's list of the user's sessions */
};

struct gw_session {
    struct gw_rooms *rooms;
    const struct gw_config *cfg;
    struct gw_session_io io;
    char id[PROTO_ID_LEN + 1];
    char username[PROTO_USERNAME_MAX + 1];
    char *email;                /* "" until hello gives one: most sessions never do */
    struct session_auth *auth;  /* NULL for a guest */
    struct gw_member **members; /* grows by doubling up to cfg->max_rooms */
    unsigned n_members, cap_members;
    double tokens;
    uint64_t refill_ms;
    uint64_t rate_error_ms;
    int welcomed;
    int closing; /* closed for the output cap: nothing more is written */
};

static char empty_email[1];

static void set_email(struct gw_session *s, const char *email)
{
    if (s->email != empty_email)
        free(s->email);
    s->email = email[0] ? xstrdup(email) : empty_email;
}

/* ---- replies ------------------------------------------------------------------------------ */

static void send_json(struct gw_session *s, char *json, size_t len)
{
    if (!s->closing && gw_ws_send(s->io.ws, 0, (const uint8_t *)json, len) == 0)
        s->io.stats->msgs_out++;
    proto_free(json);
}

static void send_error(struct gw_session *s, const char *code, const char *reason, const char *ref)
{
    size_t len;
    char *json = proto_encode_error(code, reason, ref, &len);

    s->io.stats->chat_errors++;
    LOG_DEBUG("conn=%" PRIu64 " client=%s error code=%s", s->io.conn_id, s->id, code);
    send_json(s, json, len);
}

static struct proto_sender sender(const struct gw_session *s)
{
    struct proto_sender who = {s->id, s->username, s->email, s->auth ? s->auth->claims.sub : NULL};

    return who;
}

/* ---- rooms -------------------------------------------------------------------------------- */

static struct gw_member **find_member(struct gw_session *s, const char *room)
{
    for (unsigned i = 0; i < s->n_members; i++)
        if (strcmp(gw_member_room(s->members[i]), room) == 0)
            return &s->members[i];
    return NULL;
}

/* A join announced to Redis, until Redis confirms it took the PUBLISH. */
struct join_req {
    struct gw_rooms *rooms;
    char client[PROTO_ID_LEN + 1];
    char room[PROTO_ROOM_MAX + 1];
};

/* A join whose PUBLISH was lost with its link (Redis went away before answering) is
 * announced again once the bus is back, so the joiner still gets its proof of hearing the
 * room; receivers may then see that join twice. */
static void on_join_published(void *arg, long long receivers)
{
    struct join_req *req = arg;
    struct gw_session *s = gw_rooms_find_client(req->rooms, req->client);
    struct gw_member **slot = s && receivers < 0 ? find_member(s, req->room) : NULL;

    if (slot)
        gw_member_set_announced(*slot, 0);
    free(req);
}

/* Returns 0 if the presence event went to Redis, -1 if the bus refused it. */
static int publish_presence(struct gw_session *s, const char *room, const char *event)
{
    struct proto_sender who = sender(s);
    size_t len;
    char *json = proto_encode_presence(room, event, &who, &len);
    struct join_req *req = NULL;
    int rc;

    if (strcmp(event, "join") == 0) {
        req = xmalloc(sizeof(*req));
        req->rooms = s->rooms;
        memcpy(req->client, s->id, sizeof(req->client));
        snprintf(req->room, sizeof(req->room), "%s", room);
    }
    rc = gw_bus_publish(gw_rooms_bus(s->rooms), PROTO_CHANNEL_ROOM, room, (const uint8_t *)json,
                        len, req ? on_join_published : NULL, req);
    if (rc < 0)
        free(req);
    proto_free(json);
    return rc;
}

/* Ask every gateway to tell s who is in room (each answers with a "members" message). */
static void ask_who(struct gw_session *s, const char *room)
{
    size_t len;
    char *json = proto_encode_who(room, s->id, &len);

    gw_bus_publish(gw_rooms_bus(s->rooms), PROTO_CHANNEL_ROOM, room, (const uint8_t *)json, len,
                   NULL, NULL);
    proto_free(json);
}

/* Tell the room s joined it. When the bus refuses, the member stays unannounced and the
 * directory tries again once the bus is ready. (The roster is not sent unasked: N members
 * joining a room would cost N rosters of N entries.) */
static void announce(struct gw_session *s, struct gw_member *m)
{
    if (!s->welcomed || gw_member_is_announced(m) || !gw_member_is_live(s->rooms, m))
        return;
    if (publish_presence(s, gw_member_room(m), "join") < 0)
        return;
    gw_member_set_announced(m, 1);
}

static void join(struct gw_session *s, const char *room)
{
    struct gw_member *m;

    if (find_member(s, room)) {
        send_error(s, "already_joined", "already in that room", room);
        return;
    }
    if (s->auth && !proto_jwt_allows_room(&s->auth->claims, room)) {
        s->io.stats->forbidden_joins++;
        send_error(s, "forbidden", "your token does not allow that room", room);
        return;
    }
    if (s->n_members >= s->cfg->max_rooms) {
        send_error(s, "too_many_rooms", "leave a room before joining another", room);
        return;
    }
    m = gw_rooms_join(s->rooms, s, room);
    if (s->n_members == s->cap_members) {
        s->cap_members = s->cap_members ? s->cap_members * 2 : 2;
        s->members = xrealloc(s->members, s->cap_members * sizeof(*s->members));
    }
    s->members[s->n_members++] = m;
    announce(s, m);
}

/* End membership *slot; announce the leave to the room, and to s itself, which no longer
 * hears the room. */
static void leave_slot(struct gw_session *s, struct gw_member **slot, int tell_self)
{
    struct gw_member *m = *slot;
    char room[PROTO_ROOM_MAX + 1];

    snprintf(room, sizeof(room), "%s", gw_member_room(m));
    if (gw_member_is_announced(m))
        publish_presence(s, room, "leave");
    gw_rooms_leave(s->rooms, m);
    *slot = s->members[--s->n_members];
    s->members[s->n_members] = NULL;
    if (tell_self) {
        struct proto_sender who = sender(s);
        size_t len;
        char *json = proto_encode_presence(room, "leave", &who, &len);
        send_json(s, json, len);
    }
}

/* ---- client messages ---------------------------------------------------------------------- */

static int take_token(struct gw_session *s)
{
    uint64_t now = gw_util_mono_ms();
    double burst = s->cfg->burst;

    s->tokens += (double)(now - s->refill_ms) * s->cfg->rate / 1000.0;
    if (s->tokens > burst)
        s->tokens = burst;
    s->refill_ms = now;
    if (s->tokens >= 1.0) {
        s->tokens -= 1.0;
        return 0;
    }
    s->io.stats->rate_limited++;
    if (now - s->rate_error_ms >= SESSION_RATE_ERROR_MS) {
        s->rate_error_ms = now;
        send_error(s, "rate_limited", "too many messages: slow down", NULL);
    }
    return -1;
}

struct direct_req {
    struct gw_rooms *rooms;
    char from[PROTO_ID_LEN + 1];
    char to[PROTO_USER_MAX + 1]; /* a client id, or a user id */
    int to_user;
};

static void on_direct_published(void *arg, long long receivers)
{
    struct direct_req *req = arg;
    struct gw_session *s = gw_rooms_find_client(req->rooms, req->from);

    /* Nobody subscribes to the target's channel: no such client is connected anywhere. */
    if (s && receivers == 0)
        send_error(s, "unknown_target",
                   req->to_user ? "no session of that user is connected"
                                : "no client with that id is connected",
                   req->to);
    else if (s && receivers < 0)
        send_error(s, "unavailable", "the message bus is unavailable; try again", req->to);
    free(req);
}

static void publish_chat(struct gw_session *s, const struct proto_msg *msg)
{
    struct gw_bus *bus = gw_rooms_bus(s->rooms);
    struct proto_sender from = sender(s);
    char id[PROTO_MSG_ID_MAX + 1];
    uint64_t ts = gw_util_wall_ms();
    struct direct_req *req = NULL;
    size_t len;
    char *json;
    int rc;

    if (msg->has_identity) { /* the seed format names its sender in each message */
        from.username = msg->username[0] ? msg->username : s->username;
        from.email = msg->email[0] ? msg->email : s->email;
    }
    gw_rooms_next_msg_id(s->rooms, id);
    if (msg->type == PROTO_MESSAGE) {
        json = proto_encode_message(msg->room, id, &from, msg->text, msg->text_len, ts, &len);
        rc = gw_bus_publish(bus, PROTO_CHANNEL_ROOM, msg->room, (const uint8_t *)json, len, NULL,
                            NULL);
    } else {
        const char *to = msg->to_user[0] ? msg->to_user : msg->to;

        req = xmalloc(sizeof(*req));
        req->rooms = s->rooms;
        memcpy(req->from, s->id, sizeof(req->from));
        snprintf(req->to, sizeof(req->to), "%s", to);
        req->to_user = msg->to_user[0] != '\0';
        if (req->to_user)
            json = proto_encode_direct_user(to, id, &from, msg->text, msg->text_len, ts, &len);
        else
            json = proto_encode_direct(to, id, &from, msg->text, msg->text_len, ts, &len);
        rc = gw_bus_publish(bus, req->to_user ? PROTO_CHANNEL_USER : PROTO_CHANNEL_CLIENT, to,
                            (const uint8_t *)json, len, on_direct_published, req);
    }
    proto_free(json);
    if (rc < 0) {
        free(req);
        send_error(s, "unavailable", "the message bus is unavailable; try again", NULL);
    }
}

/* A fresh token for the same user: the session lives until its exp, under its rooms claim
 * (rooms already joined stay joined). The old token stays in force when this one fails. */
static void refresh(struct gw_session *s, const char *token)
{
    const struct gw_config *cfg = s->cfg;
    struct proto_jwt_claims claims;
    size_t len;
    char *json;
    int rc;

    if (cfg->token_secret == NULL) {
        send_error(s, "bad_token", "this gateway takes no connect tokens", NULL);
        return;
    }
    rc = gw_handshake_verify_token(cfg, token, strlen(token), (int64_t)(gw_util_wall_ms() / 1000),
                                   &claims);
    if (rc != PROTO_JWT_OK) {
        s->io.stats->tokens_rejected++;
        send_error(s, "bad_token", proto_jwt_strerror(rc), NULL);
        return;
    }
    if (s->auth == NULL || strcmp(claims.sub, s->auth->claims.sub) != 0) {
        send_error(s, "forbidden",
                   s->auth ? "the token is for another user"
                           : "a guest session takes no token: reconnect with it",
                   NULL);
        proto_jwt_claims_clear(&claims);
        return;
    }
    memcpy(claims.name, s->auth->claims.name, sizeof(claims.name));
    proto_jwt_claims_clear(&s->auth->claims);
    s->auth->claims = claims;
    s->io.expires(s->io.arg, claims.exp);
    json = proto_encode_refreshed(claims.exp, &len);
    send_json(s, json, len);
}

static void act(struct gw_session *s, const struct proto_msg *msg)
{
    struct gw_member **slot;

    switch (msg->type) {
    case PROTO_HELLO:
        memcpy(s->username, msg->username, sizeof(s->username));
        set_email(s, msg->email);
        break;
    case PROTO_JOIN:
        join(s, msg->room);
        break;
    case PROTO_LEAVE:
        slot = find_member(s, msg->room);
        if (slot)
            leave_slot(s, slot, 1);
        else
            send_error(s, "not_joined", "not in that room", msg->room);
        break;
    case PROTO_MESSAGE:
        if (find_member(s, msg->room) == NULL)
            send_error(s, "not_joined", "join the room before sending to it", msg->room);
        else
            publish_chat(s, msg);
        break;
    case PROTO_DIRECT:
        publish_chat(s, msg);
        break;
    case PROTO_REFRESH:
        refresh(s, msg->token);
        break;

    case PROTO_WHO:
        if (find_member(s, msg->room) == NULL)
            send_error(s, "not_joined", "join the room to see who is in it", msg->room);
        else if (!gw_bus_is_ready(gw_rooms_bus(s->rooms)))
            send_error(s, "unavailable", "the message bus is unavailable; try again", msg->room);
        else
            ask_who(s, msg->room);
        break;
    }
}

void gw_session_on_message(struct gw_session *s, int binary, const uint8_t *buf, size_t len)
{
    struct proto_msg msg;
    int rc;

    s->io.stats->msgs_in++;
    s->io.stats->bytes_in += len;
    if (take_token(s) < 0)
        return;
    if (binary) {
        send_error(s, "bad_message", "chat messages are JSON in text frames", NULL);
        return;
    }
    rc = proto_decode_client(buf, len, s->cfg->max_text, &msg);
    if (rc != PROTO_OK) {
        send_error(s, proto_err_code(rc), proto_strerror(rc), NULL);
        return;
    }
    act(s, &msg);
    proto_msg_clear(&msg);
}

/* ---- life --------------------------------------------------------------------------------- */

static void new_client_id(char out[PROTO_ID_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    uint8_t raw[PROTO_ID_LEN / 2];

    if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
        abort(); /* the kernel's random source does not fail once seeded */
    for (size_t i = 0; i < sizeof(raw); i++) {
        out[2 * i] = hex[raw[i] >> 4];
        out[2 * i + 1] = hex[raw[i] & 15];
    }
    out[PROTO_ID_LEN] = '\0';
}

struct gw_session *gw_session_new(struct gw_rooms *rooms, const struct gw_config *cfg,
                                  const struct gw_session_io *io, struct proto_jwt_claims *auth)
{
    struct gw_session *s = xcalloc(1, sizeof(*s));

    s->rooms = rooms;
    s->cfg = cfg;
    s->io = *io;
    s->email = empty_email;
    s->tokens = cfg->burst;
    s->refill_ms = gw_util_mono_ms();
    new_client_id(s->id);
    snprintf(s->username, sizeof(s->username), "guest-%.6s", s->id);
    s->io.stats->chat_open++;
    if (auth) {
        s->auth = xcalloc(1, sizeof(*s->auth));
        s->auth->claims = *auth;
        memset(auth, 0, sizeof(*auth));
        snprintf(s->username, sizeof(s->username), "%s",
                 s->auth->claims.name[0] ? s->auth->claims.name : s->auth->claims.sub);
        /* Before the client channel: Redis confirms in order, so the user's direct messages
         * reach the session from its welcome on. */
        s->auth->user = gw_rooms_add_user(rooms, s, s->auth->claims.sub);
    }
    /* The client channel is subscribed before the lobby, so its confirmation (the welcome)
     * comes first and the lobby's traffic after it. */
    if (gw_rooms_add_client(rooms, s, s->id) < 0)
        gw_session_welcome(s);
    if (s->auth == NULL || proto_jwt_allows_room(&s->auth->claims, PROTO_DEFAULT_ROOM))
        join(s, PROTO_DEFAULT_ROOM);
    return s;
}

void gw_session_free(struct gw_session *s)
{
    if (s == NULL)
        return;
    while (s->n_members > 0)
        leave_slot(s, &s->members[0], 0);
    gw_rooms_remove_client(s->rooms, s, s->id);
    if (s->auth) {
        gw_rooms_remove_user(s->rooms, s->auth->user);
        proto_jwt_claims_clear(&s->auth->claims);
        free(s->auth);
    }
    s->io.stats->chat_open--;
    free(s->members);
    set_email(s, "");
    free(s);
}

void gw_session_welcome(struct gw_session *s)
{
    const char *names[64];
    size_t n = 0, len;
    char *json;

    if (s->welcomed)
        return;
    s->welcomed = 1;
    for (unsigned i = 0; i < s->n_members && n < 64; i++)
        names[n++] = gw_member_room(s->members[i]);
    json = proto_encode_welcome(s->id, s->auth ? s->auth->claims.sub : NULL,
                                s->auth ? s->auth->claims.exp : 0, gw_rooms_gateway_id(s->rooms),
                                names, n, &len);

    send_json(s, json, len);
    for (unsigned i = 0; i < s->n_members; i++)
        announce(s, s->members[i]);
}

void gw_session_room_live(struct gw_session *s, struct gw_member *m)
{
    announce(s, m);
}

void gw_session_deliver(struct gw_session *s, struct gw_frame *f)
{
    size_t queued = evbuffer_get_length(s->io.out);

    if (!s->welcomed)
        return;
    if (s->closing || gw_ws_state(s->io.ws) != GW_WS_OPEN) {
        s->io.stats->dropped++;
        return;
    }
    if (queued > s->cfg->max_output) {
        s->closing = 1;
        s->io.stats->slow_closes++;
        LOG_INFO("conn=%" PRIu64 " peer=%s client=%s closing slow reader queued=%zu", s->io.conn_id,
                 s->io.peer, s->id, queued);
        gw_ws_close(s->io.ws, GW_WS_POLICY, "slow reader: output queue full");
        s->io.closed(s->io.arg);
        return;
    }
    if (gw_ws_append_frame(s->io.ws, f) == 0) {
        s->io.stats->deliveries++;
        s->io.stats->msgs_out++;
    }
}

int gw_session_is_welcomed(const struct gw_session *s)
{
    return s->welcomed;
}

struct proto_sender gw_session_sender(const struct gw_session *s)
{
    return sender(s);
}
