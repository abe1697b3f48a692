/*
 * chatcat: an interactive chat client in the habits of wscat. Lines read from stdin (an event
 * on fd 0, so pipes, files and terminals all work) become chat messages to the current room,
 * or slash commands; what the gateway sends is printed one line per event, colour only on a
 * terminal, with every control character of remote text escaped. --raw speaks to any
 * WebSocket endpoint: each line one text frame, each frame printed as it is.
 */
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "broker-tools/chatview.h"
#include "broker-tools/linein.h"
#include "broker-tools/options.h"
#include "broker-tools/roomlist.h"
#include "broker-tools/term.h"
#include "broker-tools/wsclient.h"
#include "proto/client.h"
#include "proto/proto.h"
#include "proto/utf8.h"
#include "proto/xalloc.h"

#define CHATCAT_LINE_MAX (1u << 20)    /* longest stdin line; longer ones are dropped */
#define CHATCAT_PENDING_MAX (4u << 20) /* stop reading stdin while this much is unsent */
#define CHATCAT_HEADERS_MAX 32

extern char **environ;

/* ---- configuration ------------------------------------------------------------------------ */

enum color_mode {
    COLOR_AUTO = 0, /* on a terminal, unless NO_COLOR is set */
    COLOR_ALWAYS,
    COLOR_NEVER,
};

struct config {
    const char *url;                          /* ws://host[:port]/path */
    const char *name;                         /* username sent in hello; NULL: stay a guest */
    const char *email;                        /* email sent in hello; NULL: none */
    const char *room;                         /* room to join and talk in; NULL: lobby */
    const char *origin;                       /* Origin header; NULL: none */
    const char *subprotocol;                  /* Sec-WebSocket-Protocol offered; NULL: none */
    const char *headers[CHATCAT_HEADERS_MAX]; /* extra "Name: value" lines */
    size_t n_headers;
    int raw; /* any WebSocket endpoint, no chat protocol */
    enum color_mode color;
};

#define OFF(f) offsetof(struct config, f)

/* 1 if s holds a CR or LF (it would split a header line), else 0. */
static int has_newline(const char *s)
{
    return strpbrk(s, "\r\n") != NULL;
}

static int parse_string(void *cfg, size_t offset, const char *value)
{
    if (*value == '\0' || has_newline(value))
        return -1;
    *TOOL_OPTION_FIELD(cfg, offset, const char *) = value;
    return 0;
}

/* 1 if s may be a username or an email: UTF-8 of 1 to max bytes, no control characters. */
static int is_name(const char *s, size_t max)
{
    size_t len = strlen(s);

    return len > 0 && len <= max && !proto_has_control(s, len) &&
           proto_utf8_is_valid((const uint8_t *)s, len);
}

static int parse_name(void *cfg, size_t offset, const char *value)
{
    if (!is_name(value, offset == OFF(email) ? PROTO_EMAIL_MAX : PROTO_USERNAME_MAX))
        return -1;
    *TOOL_OPTION_FIELD(cfg, offset, const char *) = value;
    return 0;
}

/* "Name: value", Name an RFC 7230 token. */
static int parse_header(void *cfg, size_t offset, const char *value)
{
    struct config *c = cfg;
    size_t name_len = strcspn(value, ":");

    (void)offset;
    if (name_len == 0 || value[name_len] != ':' || has_newline(value) ||
        c->n_headers >= CHATCAT_HEADERS_MAX)
        return -1;
    for (size_t i = 0; i < name_len; i++)
        if (!((value[i] >= '0' && value[i] <= '9') || (value[i] >= 'a' && value[i] <= 'z') ||
              (value[i] >= 'A' && value[i] <= 'Z') || strchr("!#$%&'*+-.^_`|~", value[i])))
            return -1;
    c->headers[c->n_headers++] = value;
    return 0;
}

static int parse_color(void *cfg, size_t offset, const char *value)
{
    static const char *const names[] = {"auto", "always", "never"};
    struct config *c = cfg;

    (void)offset;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcmp(value, names[i]) == 0) {
            c->color = (enum color_mode)i;
            return 0;
        }
    }
    return -1;
}

static const struct tool_option option_rows[] = {
    {"url", "CHAT_URL", "URL", NULL, "the WebSocket to open (also the first argument)",
     parse_string, OFF(url)},
    {"name", "CHAT_NAME", "NAME", NULL,
     "username to send in hello (default: the gateway's guest-...)", parse_name, OFF(name)},
    {"email", "CHAT_EMAIL", "EMAIL", NULL, "email to send in hello with the name", parse_name,
     OFF(email)},
    {"room", "CHAT_ROOM", "ROOM", NULL, "room to join and talk in (default: lobby)",
     tool_option_room, OFF(room)},
    {"raw", NULL, NULL, NULL, "any WebSocket endpoint: each line a text frame, each frame printed",
     tool_option_flag, OFF(raw)},
    {"header", NULL, "\"N: v\"", NULL, "an extra handshake header (repeatable)", parse_header, 0},
    {"origin", "CHAT_ORIGIN", "ORIGIN", NULL, "Origin header of the handshake", parse_string,
     OFF(origin)},
    {"subprotocol", "CHAT_SUBPROTOCOL", "P", NULL, "WebSocket subprotocol to offer", parse_string,
     OFF(subprotocol)},
    {"color", "CHAT_COLOR", "WHEN", NULL,
     "auto (on a terminal, unless NO_COLOR is set), always, never", parse_color, 0},
};

static const struct tool_options options = {
    option_rows, sizeof(option_rows) / sizeof(option_rows[0]), "url", 22, 0,
};

static void usage(FILE *out)
{
    fprintf(out, "usage: chatcat ws://host:8080/ws [--name NAME] [--room ROOM] [options]\n"
                 "       chatcat --raw ws://host:8080/echo [options]\n\n"
                 "Reads lines from stdin and sends each as a chat message to the current "
                 "room;\nprints what arrives. Each option may also be set by its environment "
                 "variable;\na flag wins.\n\n");
    tool_options_usage(&options, out);
    fprintf(out, "\n"
                 "Commands: /join ROOM, /leave [ROOM], /rooms, /who [ROOM], /dm ID|USER TEXT,\n"
                 "/name NAME, /quit, /help; a line starting with // sends the text after one "
                 "/.\nEnd of input or Ctrl-C closes the WebSocket with 1000.\n"
                 "Exit status: 0 after a clean close, 1 when the connection failed or was\n"
                 "lost, 2 for bad options or URL, 130 when interrupted before connecting.\n");
}

/* Env (NULL-terminated "NAME=value" strings), then argv. Returns 0 to run, 1 for --help, -1
 * with a message in err. Strings in cfg point into env and argv. */
static int load_config(struct config *cfg, int argc, char *const argv[], char *const env[],
                       char *err, size_t errlen)
{
    int rc;

    memset(cfg, 0, sizeof(*cfg));
    rc = tool_options_load(&options, cfg, argc, argv, env, err, errlen);
    if (rc != TOOL_OPTIONS_RUN)
        return rc;
    if (cfg->url == NULL) {
        snprintf(err, errlen, "no URL given (see --help)");
        return -1;
    }
    if (cfg->email && !cfg->name) {
        snprintf(err, errlen, "--email goes with --name (hello carries both)");
        return -1;
    }
    if (cfg->raw && (cfg->name || cfg->room)) {
        snprintf(err, errlen, "--raw speaks no chat protocol: --name and --room do not apply");
        return -1;
    }
    return 0;
}

/* ---- state -------------------------------------------------------------------------------- */

struct chatcat {
    const struct config *cfg;
    struct event_base *base;
    struct wsc *c;     /* NULL once closed */
    struct linein *in; /* stdin, read while the connection is open */
    struct event *sig_int, *sig_term;
    int opened;  /* the handshake succeeded */
    int closing; /* we started the close */
    int exit_code;
    int color;                 /* 1: write SGR colour sequences */
    int tty;                   /* stdout is a terminal */
    char id[PROTO_ID_LEN + 1]; /* ours, from welcome */
    char username[PROTO_USERNAME_MAX + 1];
    struct roomlist rooms; /* and the current one, where lines go */
};

static void begin_close(struct chatcat *st);

/* ---- output ------------------------------------------------------------------------------- */

/* End a printed line. When stdout is gone (its reader exited), say goodbye to the server. */
static void end_line(struct chatcat *st)
{
    if (term_end_line(stdout) < 0)
        begin_close(st);
}

/* ---- rooms -------------------------------------------------------------------------------- */

/* Forget name; if lines went there, they go to the room talked in before (or nowhere). */
static void remove_room(struct chatcat *st, const char *name)
{
    if (roomlist_remove(&st->rooms, name) == 0)
        return;
    if (st->rooms.current[0])
        term_notice("now talking in #%s", st->rooms.current);
    else
        term_notice("in no room now: /join one");
}

/* ---- what the gateway sends --------------------------------------------------------------- */

/* Our id, and the rooms the gateway put us in; lines go to the first unless we chose one. */
static void after_welcome(struct chatcat *st, const struct proto_server_msg *m)
{
    memcpy(st->id, m->id, sizeof(st->id));
    for (size_t i = 0; i < m->n_rooms; i++)
        roomlist_add(&st->rooms, m->rooms[i], 1);
    if (st->rooms.current[0] == '\0' && m->n_rooms > 0)
        memcpy(st->rooms.current, m->rooms[0], sizeof(st->rooms.current));
    roomlist_talk_in(&st->rooms, st->rooms.current);
}

/* Our own presence: a join completed, or we left (or were made to leave). */
static void after_presence(struct chatcat *st, const struct proto_server_msg *m)
{
    int mine = strcmp(m->from, st->id) == 0;

    if (mine && strcmp(m->event, "join") == 0)
        roomlist_add(&st->rooms, m->room, 1);
    else if (mine)
        remove_room(st, m->room);
}

/* A join the gateway refused leaves the room list; lines go back where they went. */
static void forget_refused_join(struct chatcat *st, const struct proto_server_msg *m)
{
    struct roomlist_entry *r = roomlist_find(&st->rooms, m->ref);

    if (r && !r->joined &&
        (strcmp(m->code, "too_many_rooms") == 0 || strcmp(m->code, "bad_room") == 0))
        remove_room(st, m->ref);
    else if (r && strcmp(m->code, "already_joined") == 0)
        r->joined = 1;
}

/* A frame that is not a server message we know, shown as it is (escaped). */
static void show_unknown(struct chatcat *st, const uint8_t *data, size_t len)
{
    chatview_put_unknown(st->color, data, len);
    end_line(st);
}

/* One line per server message, then what it changes here. */
static void show(struct chatcat *st, const uint8_t *data, size_t len)
{
    struct proto_server_msg m;

    if (proto_client_decode(data, len, &m) != PROTO_OK || m.type == PROTO_S_WHO) {
        show_unknown(st, data, len);
        proto_server_msg_clear(&m);
        return;
    }
    chatview_put_msg(st->color, &m, st->id);
    end_line(st);
    if (m.type == PROTO_S_WELCOME)
        after_welcome(st, &m);
    else if (m.type == PROTO_S_PRESENCE)
        after_presence(st, &m);
    else if (m.type == PROTO_S_ERROR)
        forget_refused_join(st, &m);
    proto_server_msg_clear(&m);
}

/* ---- what the user types ------------------------------------------------------------------ */

/* Send a JSON text from an encoder and free it. len is read after the encoder ran (a pointer,
 * since the order in which arguments are evaluated is unspecified). */
static void send_json(struct chatcat *st, char *json, const size_t *len)
{
    if (st->c == NULL || wsc_send(st->c, 0, json, *len) < 0)
        term_notice("not connected: nothing sent");
    proto_free(json);
}

/* The first word of *args (skipping spaces) into word (size bytes, cut); *args moves past it.
 * Returns the word's length. */
static size_t next_word(const char **args, char *word, size_t size)
{
    const char *p = *args + strspn(*args, " \t");
    size_t n = strcspn(p, " \t");

    snprintf(word, size, "%.*s", (int)n, p);
    p += n;
    *args = p + strspn(p, " \t");
    return n;
}

/* The room named by the first word of args, else (if current) the current room, into room.
 * Returns 0, or -1 after a notice. */
static int room_arg(const struct chatcat *st, const char *args, int current,
                    char room[PROTO_ROOM_MAX + 1])
{
    char word[PROTO_ROOM_MAX + 2];
    size_t n = next_word(&args, word, sizeof(word));

    if (n == 0 && current && st->rooms.current[0]) {
        memcpy(room, st->rooms.current, PROTO_ROOM_MAX + 1);
        return 0;
    }
    if (n == 0) {
        term_notice(current ? "in no room: name one" : "name a room");
        return -1;
    }
    if (n > PROTO_ROOM_MAX || !proto_is_room(word, n)) {
        term_notice("\"%s\" is not a room name (1 to 64 of A-Z a-z 0-9 _ . : -)", word);
        return -1;
    }
    memcpy(room, word, n + 1);
    return 0;
}

static void cmd_join(struct chatcat *st, const char *args)
{
    char room[PROTO_ROOM_MAX + 1];
    size_t len;

    if (room_arg(st, args, 0, room) < 0)
        return;
    if (roomlist_find(&st->rooms, room) == NULL) {
        roomlist_add(&st->rooms, room, 0);
        send_json(st, proto_client_encode_join(room, &len), &len);
    }
    roomlist_talk_in(&st->rooms, room);
    term_notice("now talking in #%s", room);
}

static void cmd_leave(struct chatcat *st, const char *args)
{
    char room[PROTO_ROOM_MAX + 1];
    size_t len;

    if (room_arg(st, args, 1, room) == 0)
        send_json(st, proto_client_encode_leave(room, &len), &len);
}

static void cmd_who(struct chatcat *st, const char *args)
{
    char room[PROTO_ROOM_MAX + 1];
    size_t len;

    if (room_arg(st, args, 1, room) == 0)
        send_json(st, proto_client_encode_who(room, &len), &len);
}

static void cmd_rooms(struct chatcat *st, const char *args)
{
    (void)args;
    chatview_put_time(st->color, 0);
    printf("rooms:");
    for (size_t i = 0; i < st->rooms.n; i++)
        printf(" #%s%s%s", st->rooms.rooms[i].name, st->rooms.rooms[i].joined ? "" : " (joining)",
               strcmp(st->rooms.rooms[i].name, st->rooms.current) == 0 ? " (current)" : "");
    if (st->rooms.n == 0)
        printf(" none");
    end_line(st);
}

/* To a client id (32 hex digits), or else to every session of a user (connect tokens). */
static void cmd_dm(struct chatcat *st, const char *args)
{
    char to[PROTO_USER_MAX + 2];
    size_t n = next_word(&args, to, sizeof(to)), len;

    if (!(proto_is_client_id(to, n) || proto_is_user(to, n)) || *args == '\0') {
        term_notice("usage: /dm ID|USER TEXT (ID: 32 hex digits, as /who shows; USER: a user id)");
        return;
    }
    send_json(st, proto_client_encode_direct(to, args, &len), &len);
}

static void cmd_name(struct chatcat *st, const char *args)
{
    size_t len;

    if (!is_name(args, PROTO_USERNAME_MAX)) {
        term_notice("usage: /name NAME (1 to 64 bytes, no control characters)");
        return;
    }
    snprintf(st->username, sizeof(st->username), "%s", args);
    send_json(st, proto_client_encode_hello(st->username, st->cfg->email, &len), &len);
}

static void cmd_quit(struct chatcat *st, const char *args)
{
    (void)args;
    begin_close(st);
}

static void cmd_help(struct chatcat *st, const char *args);

static const struct command {
    const char *name;
    void (*run)(struct chatcat *st, const char *args);
    const char *help;
} commands[] = {
    {"join", cmd_join, "/join ROOM       join ROOM (if need be) and talk there"},
    {"leave", cmd_leave, "/leave [ROOM]    leave ROOM (default: the current room)"},
    {"rooms", cmd_rooms, "/rooms           the rooms you are in"},
    {"who", cmd_who, "/who [ROOM]      who is in ROOM, on every gateway"},
    {"dm", cmd_dm, "/dm ID TEXT      a direct message to the client ID (or to USER's sessions)"},
    {"name", cmd_name, "/name NAME       change your username"},
    {"quit", cmd_quit, "/quit            close the connection and exit"},
    {"help", cmd_help, "/help            this list; //text sends /text"},
};

static void cmd_help(struct chatcat *st, const char *args)
{
    (void)st;
    (void)args;
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        printf("%s\n", commands[i].help);
    fflush(stdout);
}

static void run_command(struct chatcat *st, const char *line)
{
    char name[16];
    const char *args = line + 1;
    size_t n = next_word(&args, name, sizeof(name));

    for (size_t i = 0; n < sizeof(name) && i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(commands[i].name, name) == 0) {
            commands[i].run(st, args);
            return;
        }
    }
    term_notice("unknown command /%s: /help lists them", name);
}

/* One line of chat input (no newline): a command or a message to the current room. */
static void chat_line(struct chatcat *st, const char *line, size_t len)
{
    size_t n;

    if (len == 0)
        return;
    if (memchr(line, '\0', len) || !proto_utf8_is_valid((const uint8_t *)line, len)) {
        term_notice("a line holds NUL or invalid UTF-8: not sent");
        return;
    }
    if (line[0] == '/' && line[1] != '/') {
        run_command(st, line);
        return;
    }
    if (st->rooms.current[0] == '\0') {
        term_notice("in no room: /join one first");
        return;
    }
    send_json(st, proto_client_encode_message(st->rooms.current, line + (line[0] == '/'), &n), &n);
}

/* ---- stdin -------------------------------------------------------------------------------- */

static int is_open(void *arg)
{
    const struct chatcat *st = arg;

    return st->c && !st->closing;
}

/* The connection still holds too much unsent: stdin waits. */
static int is_busy(void *arg)
{
    const struct chatcat *st = arg;

    return wsc_pending(st->c) > CHATCAT_PENDING_MAX;
}

static void on_line(void *arg, const char *line, size_t len)
{
    struct chatcat *st = arg;

    if (st->cfg->raw) {
        if (wsc_send(st->c, 0, line, len) < 0)
            term_notice("not connected: line not sent");
    } else {
        chat_line(st, line, len);
    }
}

/* End of input closes the connection. */
static void on_end(void *arg)
{
    begin_close(arg);
}

static const struct linein_handler stdin_handler = {is_open, is_busy, on_line, on_end};

/* ---- the connection ----------------------------------------------------------------------- */

static void begin_close(struct chatcat *st)
{
    if (st->closing)
        return;
    st->closing = 1;
    linein_stop(st->in);
    if (st->c && wsc_is_open(st->c))
        wsc_close(st->c, 1000, NULL);
}

/* Say who we are and where we talk: hello, then the join of --room. */
static void start_chat(struct chatcat *st)
{
    const char *room = st->cfg->room ? st->cfg->room : PROTO_DEFAULT_ROOM;
    size_t len;

    if (st->cfg->name) {
        snprintf(st->username, sizeof(st->username), "%s", st->cfg->name);
        send_json(st, proto_client_encode_hello(st->username, st->cfg->email, &len), &len);
    }
    if (strcmp(room, PROTO_DEFAULT_ROOM) != 0) {
        roomlist_add(&st->rooms, room, 0);
        send_json(st, proto_client_encode_join(room, &len), &len);
    }
    roomlist_talk_in(&st->rooms, room);
}

static void on_open(void *arg, struct wsc *c, const char *subprotocol)
{
    struct chatcat *st = arg;

    (void)c;
    st->opened = 1;
    term_notice("connected to %s%s%s%s", st->cfg->url, subprotocol ? " (subprotocol " : "",
                subprotocol ? subprotocol : "", subprotocol ? ")" : "");
    if (!st->cfg->raw)
        start_chat(st);
    linein_start(st->in);
}

static void on_message(void *arg, struct wsc *c, int binary, const uint8_t *data, size_t len)
{
    struct chatcat *st = arg;

    (void)c;
    if (!st->cfg->raw && !binary) {
        show(st, data, len);
        return;
    }
    if (st->tty)
        term_put_escaped(stdout, data, len, 1);
    else if (len > 0)
        fwrite(data, 1, len, stdout);
    end_line(st);
}

static void on_close(void *arg, struct wsc *c, int code, int http_status, const char *reason)
{
    struct chatcat *st = arg;

    (void)c;
    (void)http_status; /* reason names it */
    st->c = NULL;
    linein_stop(st->in);
    if (!st->opened)
        term_notice("%s", reason);
    else if (code != 1000)
        term_notice("connection closed: code %d (%s)", code, reason);
    else if (!st->closing)
        term_notice("the server closed the connection (1000)");
    st->exit_code = st->opened && code == 1000 ? 0 : 1;
    event_base_loopexit(st->base, NULL);
}

static const struct wsc_handler handler = {on_open, on_message, on_close};

/* SIGINT, SIGTERM: the close handshake; a second one, or one before the handshake
 * completed, ends at once. */
static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct chatcat *st = arg;

    (void)what;
    if (st->opened && !st->closing && st->c) {
        begin_close(st);
        return;
    }
    term_notice("interrupted by %s", sig == SIGINT ? "SIGINT" : "SIGTERM");
    wsc_free(st->c);
    st->c = NULL;
    st->exit_code = 130;
    event_base_loopbreak(st->base);
}

/* ---- main --------------------------------------------------------------------------------- */

static int use_color(const struct config *cfg, char *const env[])
{
    if (cfg->color != COLOR_AUTO)
        return cfg->color == COLOR_ALWAYS;
    for (size_t i = 0; env && env[i]; i++)
        if (strncmp(env[i], "NO_COLOR=", 9) == 0 && env[i][9] != '\0')
            return 0;
    return isatty(STDOUT_FILENO);
}

static void setup(struct chatcat *st, const struct config *cfg, const struct wsc_url *url)
{
    struct wsc_options wo = {
        .origin = cfg->origin,
        .subprotocol = cfg->subprotocol,
        .headers = cfg->headers,
        .n_headers = cfg->n_headers,
    };

    st->cfg = cfg;
    st->tty = isatty(STDOUT_FILENO);
    st->color = use_color(cfg, environ);
    st->base = event_base_new();
    st->sig_int = evsignal_new(st->base, SIGINT, on_signal, st);
    st->sig_term = evsignal_new(st->base, SIGTERM, on_signal, st);
    if (!st->base || !st->sig_int || !st->sig_term)
        abort(); /* libevent fails here only without memory */
    st->in = linein_new(st->base, STDIN_FILENO, CHATCAT_LINE_MAX, &stdin_handler, st);
    evsignal_add(st->sig_int, NULL);
    evsignal_add(st->sig_term, NULL);
    st->c = wsc_connect(st->base, url, &wo, &handler, st);
}

static void teardown(struct chatcat *st)
{
    wsc_free(st->c);
    st->c = NULL;
    linein_free(st->in);
    st->in = NULL;
    event_free(st->sig_int);
    event_free(st->sig_term);
    event_base_free(st->base);
}

int main(int argc, char **argv)
{
    static struct chatcat st;
    struct config cfg;
    struct wsc_url url;
    char err[512];
    int rc;

    term_set_name("chatcat");
    rc = load_config(&cfg, argc, argv, environ, err, sizeof(err));
    if (rc == TOOL_OPTIONS_HELP) {
        usage(stdout);
        return 0;
    }
    if (rc < 0 || wsc_url_parse(cfg.url, &url, err, sizeof(err)) < 0) {
        fprintf(stderr, "chatcat: %s\n", err);
        return 2;
    }
    proto_init(xmalloc, free);
    signal(SIGPIPE, SIG_IGN);
    setup(&st, &cfg, &url);
    event_base_dispatch(st.base);
    teardown(&st);
    return st.exit_code;
}
