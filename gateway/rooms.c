#include "gateway/rooms.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/random.h>

#include <uthash.h>

#include "gateway/bus.h"
#include "gateway/config.h"
#include "gateway/conn.h"
#include "gateway/frame.h"
#include "gateway/log.h"
#include "gateway/metrics.h"
#include "gateway/session.h"
#include "gateway/util.h"

struct gw_member {
    TAILQ_ENTRY(gw_member) link; /* in the room's list */
    struct gw_room *room;
    struct gw_session *session;
    int announced;
};

/* A room by name, or (in the users table) a user's sessions by user id. */
struct gw_room {
    UT_hash_handle hh;
    TAILQ_HEAD(, gw_member) members;
    size_t n_members;
    char name[PROTO_ROOM_MAX + 1];
};
_Static_assert(PROTO_USER_MAX <= PROTO_ROOM_MAX, "a user id fits a gw_room's name");

/* A local session by client id. */
struct client_entry {
    UT_hash_handle hh;
    struct gw_session *session;
    char id[PROTO_ID_LEN + 1];
};

struct gw_rooms {
    struct gw_bus *bus;
    const struct gw_config *cfg;
    struct gw_stats *stats;
    struct gw_room *rooms;        /* uthash by name */
    struct gw_room *users;        /* a user's local sessions, by user id; same shape as rooms */
    struct client_entry *clients; /* uthash by id */
    char msg_prefix[17];          /* random, so ids from different workers never meet */
    uint64_t msg_seq;
};

/* ---- bus events --------------------------------------------------------------------------- */

static struct gw_room *find_room(const struct gw_rooms *rooms, const char *name, size_t len)
{
    struct gw_room *r = NULL;

    HASH_FIND(hh, rooms->rooms, name, len, r);
    return r;
}

static struct client_entry *find_entry(const struct gw_rooms *rooms, const char *id, size_t len)
{
    struct client_entry *e = NULL;

    HASH_FIND(hh, rooms->clients, id, len, e);
    return e;
}

/* The sender's gateway stamps "ts" (Unix ms) last in every chat message: read it from the
 * tail without parsing the JSON, for the publish-to-deliver latency histogram. */
static void observe_latency(struct gw_rooms *rooms, const uint8_t *payload, size_t len)
{
    size_t tail = len > 32 ? 32 : len;
    const uint8_t *p = memmem(payload + len - tail, tail, "\"ts\":", 5);
    uint64_t ts = 0, now;

    if (p == NULL)
        return;
    for (p += 5; p < payload + len && *p >= '0' && *p <= '9'; p++)
        ts = ts * 10 + (uint64_t)(*p - '0');
    now = gw_util_wall_ms();
    gw_metrics_observe(rooms->stats, now > ts ? now - ts : 0);
}

/*
 * In a room with more local members than --presence-limit, a presence event goes only to the
 * client it is about (its own join is its proof of hearing the room): N people joining a
 * room of N would otherwise cost N^2 deliveries, and a reconnect storm in a big lobby would
 * bury every gateway. Returns 1 when the event was handled that way.
 */
static int deliver_presence_to_its_client(struct gw_rooms *rooms, const struct gw_room *room,
                                          const uint8_t *payload, size_t len)
{
    static const char type[] = "{\"type\":\"presence\"", key[] = "\"client\":\"";
    const uint8_t *p;
    struct client_entry *e;

    if (room->n_members <= rooms->cfg->presence_limit || len < sizeof(type) - 1 ||
        memcmp(payload, type, sizeof(type) - 1) != 0)
        return 0;
    p = memmem(payload, len, key, sizeof(key) - 1);
    if (p && (size_t)(payload + len - p) > sizeof(key) - 1 + PROTO_ID_LEN) {
        e = find_entry(rooms, (const char *)p + sizeof(key) - 1, PROTO_ID_LEN);
        if (e) {
            struct gw_frame *f = gw_frame_new(GW_FRAME_TEXT, payload, len);
            gw_session_deliver(e->session, f);
            gw_frame_unref(f);
        }
    }
    return 1;
}

/* The hot path: one frame for the whole room, added by reference to each member's output. */
static void fan_out(struct gw_rooms *rooms, struct gw_room *room, const uint8_t *payload,
                    size_t len)
{
    struct gw_frame *f;
    struct gw_member *m;

    observe_latency(rooms, payload, len);
    rooms->stats->fanout_frames++;
    if (deliver_presence_to_its_client(rooms, room, payload, len))
        return;
    f = gw_frame_new(GW_FRAME_TEXT, payload, len);
    TAILQ_FOREACH(m, &room->members, link)
    gw_session_deliver(m->session, f);
    gw_frame_unref(f);
}

/* Members listed in one "members" message; a larger room gets several, up to the cap. */
#define ROOMS_MEMBERS_CHUNK 500
#define ROOMS_MEMBERS_MAX 2000

static void publish_members(struct gw_rooms *rooms, const struct gw_room *room,
                            const char *reply_to, const struct proto_sender *list, size_t n)
{
    size_t len;
    char *json = proto_encode_members(room->name, rooms->cfg->gateway_id, list, n, &len);

    gw_bus_publish(rooms->bus, PROTO_CHANNEL_CLIENT, reply_to, (const uint8_t *)json, len, NULL,
                   NULL);
    proto_free(json);
}

/* A gateway asked who is in room: answer with the local members, welcomed ones only. */
static void answer_who(struct gw_rooms *rooms, struct gw_room *room, const uint8_t *payload,
                       size_t len)
{
    char name[PROTO_ROOM_MAX + 1], reply_to[PROTO_ID_LEN + 1];
    struct proto_sender *list;
    struct gw_member *m;
    size_t n = 0, chunks = 0;

    if (proto_decode_who(payload, len, name, reply_to) < 0)
        return;
    list = xcalloc(ROOMS_MEMBERS_CHUNK, sizeof(*list));
    TAILQ_FOREACH(m, &room->members, link)
    {
        if (!gw_session_is_welcomed(m->session))
            continue;
        list[n++] = gw_session_sender(m->session);
        if (n == ROOMS_MEMBERS_CHUNK) {
            publish_members(rooms, room, reply_to, list, n);
            n = 0;
            if (++chunks * ROOMS_MEMBERS_CHUNK >= ROOMS_MEMBERS_MAX)
                break; /* a roster is for people to read: huge rooms are cut */
        }
    }
    if (n > 0)
        publish_members(rooms, room, reply_to, list, n);
    free(list);
}

static void on_bus_message(void *arg, enum proto_channel_kind kind, const char *name,
                           size_t name_len, const uint8_t *payload, size_t len)
{
    struct gw_rooms *rooms = arg;

    if (kind == PROTO_CHANNEL_ROOM) {
        struct gw_room *room = find_room(rooms, name, name_len);
        if (room == NULL)
            return;
        if (len >= sizeof(PROTO_WHO_PREFIX) - 1 &&
            memcmp(payload, PROTO_WHO_PREFIX, sizeof(PROTO_WHO_PREFIX) - 1) == 0)
            answer_who(rooms, room, payload, len);
        else
            fan_out(rooms, room, payload, len);
    } else if (kind == PROTO_CHANNEL_CLIENT) {
        struct client_entry *e = find_entry(rooms, name, name_len);
        if (e) {
            struct gw_frame *f = gw_frame_new(GW_FRAME_TEXT, payload, len);
            gw_session_deliver(e->session, f);
            gw_frame_unref(f);
        }
    } else if (kind == PROTO_CHANNEL_USER) {
        struct gw_room *user = NULL;
        struct gw_member *m;

        HASH_FIND(hh, rooms->users, name, name_len, user);
        if (user) {
            struct gw_frame *f = gw_frame_new(GW_FRAME_TEXT, payload, len);
            TAILQ_FOREACH(m, &user->members, link)
            gw_session_deliver(m->session, f);
            gw_frame_unref(f);
        }
    }
}

static void on_bus_subscribed(void *arg, enum proto_channel_kind kind, const char *name,
                              size_t name_len)
{
    struct gw_rooms *rooms = arg;

    if (kind == PROTO_CHANNEL_ROOM) {
        struct gw_room *room = find_room(rooms, name, name_len);
        struct gw_member *m, *next;

        /* Announcing publishes only; it never changes membership, but stay safe anyway. */
        for (m = room ? TAILQ_FIRST(&room->members) : NULL; m; m = next) {
            next = TAILQ_NEXT(m, link);
            gw_session_room_live(m->session, m);
        }
    } else if (kind == PROTO_CHANNEL_CLIENT) {
        struct client_entry *e = find_entry(rooms, name, name_len);
        if (e)
            gw_session_welcome(e->session);
    }
}

static void on_bus_ready(void *arg, int ready)
{
    struct gw_rooms *rooms = arg;
    struct client_entry *e, *tmp;

    LOG_INFO("redis bus %s", ready ? "ready" : "unavailable");
    if (ready) {
        /* Joins made while publishing was impossible are announced now. */
        struct gw_room *room, *rtmp;
        HASH_ITER(hh, rooms->rooms, room, rtmp)
        {
            struct gw_member *m, *next;
            for (m = TAILQ_FIRST(&room->members); m; m = next) {
                next = TAILQ_NEXT(m, link);
                gw_session_room_live(m->session, m);
            }
        }
        return;
    }
    /* Sessions waiting for their client channel would wait for as long as Redis is away:
     * welcome them now; their channel is subscribed when the bus is back. */
    HASH_ITER(hh, rooms->clients, e, tmp)
    gw_session_welcome(e->session);
}

static const struct gw_bus_handler bus_handler = {
    .on_message = on_bus_message,
    .on_subscribed = on_bus_subscribed,
    .on_ready = on_bus_ready,
};

/* ---- directory ---------------------------------------------------------------------------- */

struct gw_rooms *gw_rooms_new(struct event_base *base, const struct gw_config *cfg,
                              const char *worker_id, struct gw_stats *stats)
{
    struct gw_rooms *rooms = xcalloc(1, sizeof(*rooms));
    uint64_t r = 0;

    rooms->cfg = cfg;
    rooms->stats = stats;
    if (getrandom(&r, sizeof(r), 0) != sizeof(r))
        r = gw_util_wall_ms() ^ (uint64_t)(uintptr_t)rooms;
    snprintf(rooms->msg_prefix, sizeof(rooms->msg_prefix), "%016" PRIx64, r);
    rooms->bus = gw_bus_new(base, cfg, worker_id, stats, &bus_handler, rooms);
    return rooms;
}

void gw_rooms_shutdown(struct gw_rooms *rooms)
{
    gw_bus_shutdown(rooms->bus);
}

int gw_rooms_is_closed(const struct gw_rooms *rooms)
{
    return gw_bus_is_closed(rooms->bus);
}

void gw_rooms_free(struct gw_rooms *rooms)
{
    if (rooms == NULL)
        return;
    assert(rooms->rooms == NULL && rooms->clients == NULL && rooms->users == NULL);
    gw_bus_free(rooms->bus);
    free(rooms);
}

struct gw_bus *gw_rooms_bus(const struct gw_rooms *rooms)
{
    return rooms->bus;
}

const char *gw_rooms_gateway_id(const struct gw_rooms *rooms)
{
    return rooms->cfg->gateway_id;
}

void gw_rooms_next_msg_id(struct gw_rooms *rooms, char *out)
{
    snprintf(out, PROTO_MSG_ID_MAX + 1, "%s-%" PRIx64, rooms->msg_prefix, ++rooms->msg_seq);
}

int gw_rooms_add_client(struct gw_rooms *rooms, struct gw_session *s, const char *id)
{
    struct client_entry *e = xcalloc(1, sizeof(*e));

    e->session = s;
    memcpy(e->id, id, PROTO_ID_LEN + 1);
    HASH_ADD(hh, rooms->clients, id, PROTO_ID_LEN, e);
    gw_bus_subscribe(rooms->bus, PROTO_CHANNEL_CLIENT, id);
    return gw_bus_is_ready(rooms->bus) ? 0 : -1;
}

void gw_rooms_remove_client(struct gw_rooms *rooms, struct gw_session *s, const char *id)
{
    struct client_entry *e = find_entry(rooms, id, PROTO_ID_LEN);

    if (e && e->session == s) {
        HASH_DEL(rooms->clients, e);
        free(e);
        gw_bus_unsubscribe(rooms->bus, PROTO_CHANNEL_CLIENT, id);
    }
}

struct gw_session *gw_rooms_find_client(const struct gw_rooms *rooms, const char *id)
{
    struct client_entry *e = find_entry(rooms, id, strlen(id));

    return e ? e->session : NULL;
}

/* Add s to the list called name in table (rooms or users), creating the list and
 * subscribing its channel of kind for its first member. */
static struct gw_member *list_add(struct gw_rooms *rooms, struct gw_room **table,
                                  enum proto_channel_kind kind, struct gw_session *s,
                                  const char *name)
{
    size_t len = strlen(name);
    struct gw_room *room = NULL;
    struct gw_member *m = xcalloc(1, sizeof(*m));

    HASH_FIND(hh, *table, name, len, room);
    if (room == NULL) {
        room = xcalloc(1, sizeof(*room));
        memcpy(room->name, name, len + 1);
        TAILQ_INIT(&room->members);
        HASH_ADD(hh, *table, name, len, room);
        if (kind == PROTO_CHANNEL_ROOM)
            rooms->stats->rooms++;
    }
    if (room->n_members++ == 0)
        gw_bus_subscribe(rooms->bus, kind, room->name);
    m->room = room;
    m->session = s;
    TAILQ_INSERT_TAIL(&room->members, m, link);
    return m;
}

static void list_remove(struct gw_rooms *rooms, struct gw_room **table,
                        enum proto_channel_kind kind, struct gw_member *m)
{
    struct gw_room *room = m->room;

    TAILQ_REMOVE(&room->members, m, link);
    free(m);
    if (--room->n_members == 0) {
        gw_bus_unsubscribe(rooms->bus, kind, room->name);
        HASH_DEL(*table, room);
        free(room);
        if (kind == PROTO_CHANNEL_ROOM)
            rooms->stats->rooms--;
    }
}

struct gw_member *gw_rooms_join(struct gw_rooms *rooms, struct gw_session *s, const char *name)
{
    return list_add(rooms, &rooms->rooms, PROTO_CHANNEL_ROOM, s, name);
}

void gw_rooms_leave(struct gw_rooms *rooms, struct gw_member *m)
{
    list_remove(rooms, &rooms->rooms, PROTO_CHANNEL_ROOM, m);
}

struct gw_member *gw_rooms_add_user(struct gw_rooms *rooms, struct gw_session *s, const char *user)
{
    return list_add(rooms, &rooms->users, PROTO_CHANNEL_USER, s, user);
}

void gw_rooms_remove_user(struct gw_rooms *rooms, struct gw_member *m)
{
    list_remove(rooms, &rooms->users, PROTO_CHANNEL_USER, m);
}

const char *gw_member_room(const struct gw_member *m)
{
    return m->room->name;
}

int gw_member_is_live(const struct gw_rooms *rooms, const struct gw_member *m)
{
    return gw_bus_is_subscribed(rooms->bus, PROTO_CHANNEL_ROOM, m->room->name);
}

int gw_member_is_announced(const struct gw_member *m)
{
    return m->announced;
}

void gw_member_set_announced(struct gw_member *m, int announced)
{
    m->announced = announced;
}
