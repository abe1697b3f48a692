/*
 * chat-token: mint a connect token (an HS256 JWT, proto/jwt.h) for the gateway's
 * --token-secret, for tests, scripts and operators. It prints the token and a newline; the
 * claims are sub, exp (now plus --ttl), iat, and name and rooms when given.
 *
 *   chat-token --sub ann --ttl 1h --rooms 'lobby,team-*' > ann.jwt
 *   chatcat --token "$(cat ann.jwt)" ws://127.0.0.1:8080/ws
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "broker-tools/options.h"
#include "proto/jwt.h"
#include "proto/proto.h"
#include "proto/xalloc.h"

extern char **environ;

struct config {
    const char *secret;      /* the key itself */
    const char *secret_file; /* or the file holding it */
    const char *sub;
    const char *name;
    const char *rooms; /* comma-separated names or prefix* patterns */
    long ttl;          /* seconds */
};

#define OFF(f) offsetof(struct config, f)

static int parse_text(void *cfg, size_t offset, const char *value)
{
    *TOOL_OPTION_FIELD(cfg, offset, const char *) = *value ? value : NULL;
    return 0;
}

static int parse_user(void *cfg, size_t offset, const char *value)
{
    if (!proto_is_user(value, strlen(value)))
        return -1;
    *TOOL_OPTION_FIELD(cfg, offset, const char *) = value;
    return 0;
}

/* A duration: a number with s, m, h or d (a bare number is seconds), up to ten years. */
static int parse_ttl(void *cfg, size_t offset, const char *value)
{
    static const struct {
        const char *unit;
        long mult;
    } units[] = {{"", 1}, {"s", 1}, {"m", 60}, {"h", 3600}, {"d", 86400}};
    char *end;
    long v;

    errno = 0;
    v = strtol(value, &end, 10);
    if (errno || end == value || v <= 0)
        return -1;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcmp(end, units[i].unit) == 0 && v <= 315360000 / units[i].mult) {
            *TOOL_OPTION_FIELD(cfg, offset, long) = v * units[i].mult;
            return 0;
        }
    }
    return -1;
}

static const struct tool_option option_rows[] = {
    {"sub", NULL, "USER", NULL, "the user id (1 to 64 bytes of UTF-8): required", parse_user,
     OFF(sub)},
    {"name", NULL, "NAME", NULL, "the display name sessions start with (default: the user id)",
     parse_user, OFF(name)},
    {"rooms", NULL, "LIST", NULL,
     "rooms the user may join, comma-separated; \"team-*\" is a prefix, \"*\" any (default: no "
     "claim, all rooms)",
     parse_text, OFF(rooms)},
    {"ttl", NULL, "TIME", "1h", "lifetime: a number with s, m, h or d", parse_ttl, OFF(ttl)},
    {"secret", "CHAT_TOKEN_SECRET", "KEY", NULL, "the gateway's --token-secret", parse_text,
     OFF(secret)},
    {"secret-file", "CHAT_TOKEN_SECRET_FILE", "PATH", NULL,
     "read the secret from PATH (a trailing newline is dropped)", parse_text, OFF(secret_file)},
};

static const struct tool_options options = {
    option_rows, sizeof(option_rows) / sizeof(option_rows[0]), NULL, 18, 23,
};

static void usage(FILE *out)
{
    fprintf(out, "usage: chat-token --sub USER [--name NAME] [--rooms LIST] [--ttl TIME]\n"
                 "                  [--secret KEY | --secret-file PATH]\n\n"
                 "Prints a connect token (JWT, HS256) for a gateway started with the same "
                 "secret.\n\n");
    tool_options_usage(&options, out);
}

/* The secret's bytes into buf (NUL-terminated); returns its length, or -1 with a message. */
static long read_secret(const struct config *cfg, char buf[PROTO_JWT_SECRET_MAX + 1])
{
    const char *why = NULL;
    size_t n;
    long key_len;

    if (cfg->secret && cfg->secret_file) {
        fprintf(stderr, "chat-token: give --secret or --secret-file, not both\n");
        return -1;
    }
    if (cfg->secret) {
        n = strlen(cfg->secret);
        if (n > PROTO_JWT_SECRET_MAX) {
            fprintf(stderr, "chat-token: --secret: over 4KiB\n");
            return -1;
        }
        memcpy(buf, cfg->secret, n + 1);
        return (long)n;
    }
    if (cfg->secret_file == NULL) {
        fprintf(stderr, "chat-token: no secret: give --secret, --secret-file or "
                        "CHAT_TOKEN_SECRET\n");
        return -1;
    }
    key_len = proto_jwt_read_secret(cfg->secret_file, buf, &why);
    if (key_len < 0)
        fprintf(stderr, "chat-token: %s: %s\n", cfg->secret_file, why);
    return key_len;
}

/* The claims as JSON text (free with free()), or NULL with a message for a bad rooms list. */
static char *claims_json(const struct config *cfg, size_t *len)
{
    cJSON *obj = cJSON_CreateObject();
    time_t now = time(NULL);
    char *text;

    cJSON_AddStringToObject(obj, "sub", cfg->sub);
    if (cfg->name)
        cJSON_AddStringToObject(obj, "name", cfg->name);
    cJSON_AddNumberToObject(obj, "iat", (double)now);
    cJSON_AddNumberToObject(obj, "exp", (double)(now + cfg->ttl));
    if (cfg->rooms) {
        cJSON *list = cJSON_AddArrayToObject(obj, "rooms");
        const char *p = cfg->rooms;

        while (*p) {
            size_t n = strcspn(p, ",");
            char *room = xstrndup(p, n);
            if (!proto_jwt_is_room_pattern(room, n)) {
                fprintf(stderr, "chat-token: --rooms: \"%s\" is not a room name or prefix*\n",
                        room);
                free(room);
                cJSON_Delete(obj);
                return NULL;
            }
            cJSON_AddItemToArray(list, cJSON_CreateString(room));
            free(room);
            p += n + (p[n] == ',');
        }
    }
    text = cJSON_PrintUnformatted(obj);
    cJSON_Delete(obj);
    *len = strlen(text);
    return text;
}

int main(int argc, char **argv)
{
    struct config cfg;
    char err[512], secret[PROTO_JWT_SECRET_MAX + 1];
    char *claims, *token;
    size_t len;
    long key_len;
    int rc;

    memset(&cfg, 0, sizeof(cfg));
    rc = tool_options_load(&options, &cfg, argc, argv, environ, err, sizeof(err));
    if (rc == TOOL_OPTIONS_HELP) {
        usage(stdout);
        return 0;
    }
    if (rc < 0) {
        fprintf(stderr, "chat-token: %s\n", err);
        return 2;
    }
    if (cfg.sub == NULL) {
        fprintf(stderr, "chat-token: --sub is required (see --help)\n");
        return 2;
    }
    key_len = read_secret(&cfg, secret);
    if (key_len < 0)
        return 2;
    if (key_len < PROTO_JWT_SECRET_MIN) {
        fprintf(stderr, "chat-token: the secret must be at least %d bytes\n", PROTO_JWT_SECRET_MIN);
        return 2;
    }
    proto_init(xmalloc, free);
    claims = claims_json(&cfg, &len);
    if (claims == NULL)
        return 2;
    token = proto_jwt_sign(claims, len, (const uint8_t *)secret, (size_t)key_len);
    free(claims);
    if (token == NULL) {
        fprintf(stderr, "chat-token: signing failed\n");
        return 1;
    }
    printf("%s\n", token);
    free(token);
    return 0;
}
