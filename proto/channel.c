#include "proto/channel.h"

#include <stdio.h>
#include <string.h>

static const struct {
    enum proto_channel_kind kind;
    const char *prefix;
} prefixes[] = {
    {PROTO_CHANNEL_ROOM, "chat:room:"},
    {PROTO_CHANNEL_CLIENT, "chat:client:"},
    {PROTO_CHANNEL_HEALTH, "chat:health:"},
    {PROTO_CHANNEL_USER, "chat:user:"},

};

size_t proto_channel_name(char *out, enum proto_channel_kind kind, const char *name)
{
    for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
        if (prefixes[i].kind == kind) {
            int n = snprintf(out, PROTO_CHANNEL_MAX, "%s%s", prefixes[i].prefix, name);
            return n < 0 ? 0 : (size_t)n >= PROTO_CHANNEL_MAX ? PROTO_CHANNEL_MAX - 1 : (size_t)n;
        }
    }
    out[0] = '\0';
    return 0;
}

int proto_channel_parse(const char *channel, size_t len, const char **name, size_t *name_len)
{
    for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
        size_t n = strlen(prefixes[i].prefix);

        if (len > n && memcmp(channel, prefixes[i].prefix, n) == 0) {
            *name = channel + n;
            *name_len = len - n;
            return (int)prefixes[i].kind;
        }
    }
    return 0;
}
