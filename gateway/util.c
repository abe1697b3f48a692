#include "gateway/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static uint64_t clock_ms(clockid_t id)
{
    struct timespec ts;

    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t gw_util_wall_ms(void)
{
    return clock_ms(CLOCK_REALTIME);
}

uint64_t gw_util_mono_ms(void)
{
    return clock_ms(CLOCK_MONOTONIC);
}

int gw_util_is_ascii_caseeq(const char *a, size_t len, const char *b)
{
    return strlen(b) == len && strncasecmp(a, b, len) == 0;
}

void gw_util_trim(const char **s, size_t *len)
{
    while (*len > 0 && (**s == ' ' || **s == '\t')) {
        (*s)++;
        (*len)--;
    }
    while (*len > 0 && ((*s)[*len - 1] == ' ' || (*s)[*len - 1] == '\t'))
        (*len)--;
}

int gw_util_list_next(const char **p, const char *end, const char **elem, size_t *len)
{
    const char *comma;

    if (*p >= end)
        return 0;
    comma = memchr(*p, ',', (size_t)(end - *p));
    *elem = *p;
    *len = (size_t)((comma ? comma : end) - *p);
    gw_util_trim(elem, len);
    *p = comma ? comma + 1 : end;
    return 1;
}

int gw_util_has_token(const char *value, size_t len, const char *token)
{
    const char *end = value + len, *elem;
    size_t elen;

    while (gw_util_list_next(&value, end, &elem, &elen))
        if (gw_util_is_ascii_caseeq(elem, elen, token))
            return 1;
    return 0;
}
