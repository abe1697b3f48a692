#include "broker-tools/chatview.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "broker-tools/term.h"

#define SGR_RESET "\033[0m"
#define SGR_DIM "\033[2m"
#define SGR_BOLD "\033[1m"
#define SGR_ROOM "\033[36m"
#define SGR_PRESENCE "\033[33m"
#define SGR_DIRECT "\033[35m"
#define SGR_ERROR "\033[1;31m"

/* The SGR sequence sgr when colour is on, else "". */
static const char *paint(int color, const char *sgr)
{
    return color ? sgr : "";
}

void chatview_put_time(int color, uint64_t ts_ms)
{
    time_t t = ts_ms ? (time_t)(ts_ms / 1000) : time(NULL);
    struct tm tm;
    char buf[16];

    localtime_r(&t, &tm);
    strftime(buf, sizeof(buf), "%H:%M:%S", &tm);
    printf("%s%s%s ", paint(color, SGR_DIM), buf, paint(color, SGR_RESET));
}

static void put_room(int color, const char *room)
{
    printf("%s#", paint(color, SGR_ROOM));
    term_put_str(stdout, room);
    printf("%s ", paint(color, SGR_RESET));
}

/* The display name, and the verified user id (connect tokens) when it says something more. */
static void put_user(int color, const char *username, const char *user)
{
    printf("%s", paint(color, SGR_BOLD));
    term_put_str(stdout, username);
    printf("%s", paint(color, SGR_RESET));
    if (user[0] && strcmp(user, username) != 0) {
        printf(" [@");
        term_put_str(stdout, user);
        printf("]");
    }
}

static void put_welcome(int color, const struct proto_server_msg *m)
{
    chatview_put_time(color, 0);
    printf("%s* connected as %s", paint(color, SGR_PRESENCE), m->id);
    if (m->user[0]) {
        printf(" (user ");
        term_put_str(stdout, m->user);
        printf(")");
    }
    printf(" on gateway ");
    term_put_str(stdout, m->gateway);
    printf(", in");
    for (size_t i = 0; i < m->n_rooms; i++)
        printf(" #%s", m->rooms[i]);
    printf("%s", paint(color, SGR_RESET));
}

static void put_chat(int color, const struct proto_server_msg *m)
{
    chatview_put_time(color, m->ts);
    if (m->type == PROTO_S_MESSAGE) {
        put_room(color, m->room);
        put_user(color, m->username, m->user);
    } else {
        printf("%s[dm]%s ", paint(color, SGR_DIRECT), paint(color, SGR_RESET));
        put_user(color, m->username, m->user);
        printf(" (%s)", m->from);
    }
    printf(": ");
    term_put_escaped(stdout, m->text, m->text_len, 0);
}

static void put_presence(int color, const struct proto_server_msg *m, const char *self_id)
{
    int mine = strcmp(m->from, self_id) == 0;
    int join = strcmp(m->event, "join") == 0;

    chatview_put_time(color, 0);
    put_room(color, m->room);
    printf("%s* ", paint(color, SGR_PRESENCE));
    term_put_str(stdout, m->username);
    printf(" %s (%s)%s%s", join ? "joined" : "left", m->from, mine ? " (you)" : "",
           paint(color, SGR_RESET));
}

static void put_members(int color, const struct proto_server_msg *m)
{
    chatview_put_time(color, 0);
    put_room(color, m->room);
    printf("%smembers on ", paint(color, SGR_PRESENCE));
    term_put_str(stdout, m->gateway[0] ? m->gateway : "?");
    printf(":%s", paint(color, SGR_RESET));
    for (size_t i = 0; i < m->n_members; i++) {
        printf("%s ", i ? "," : "");
        put_user(color, m->members[i].username, m->members[i].user);
        printf(" (%s)", m->members[i].client);
    }
}

static void put_error(int color, const struct proto_server_msg *m)
{
    chatview_put_time(color, 0);
    printf("%s! error ", paint(color, SGR_ERROR));
    term_put_str(stdout, m->code);
    printf("%s", paint(color, SGR_RESET));
    if (m->reason[0]) {
        printf(": ");
        term_put_str(stdout, m->reason);
    }
    if (m->ref[0]) {
        printf(" [");
        term_put_str(stdout, m->ref);
        printf("]");
    }
}

void chatview_put_msg(int color, const struct proto_server_msg *m, const char *self_id)
{
    switch (m->type) {
    case PROTO_S_WELCOME:
        put_welcome(color, m);
        break;
    case PROTO_S_MESSAGE:
    case PROTO_S_DIRECT:
        put_chat(color, m);
        break;
    case PROTO_S_PRESENCE:
        put_presence(color, m, self_id);
        break;
    case PROTO_S_MEMBERS:
        put_members(color, m);
        break;
    case PROTO_S_ERROR:
        put_error(color, m);
        break;
    case PROTO_S_WHO:
        break; /* a query between gateways: shown with chatview_put_unknown */
    }
}

void chatview_put_unknown(int color, const uint8_t *data, size_t len)
{
    chatview_put_time(color, 0);
    printf("%s?%s ", paint(color, SGR_ERROR), paint(color, SGR_RESET));
    term_put_escaped(stdout, data, len, 0);
}
