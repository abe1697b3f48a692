#include "gateway/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

enum gw_log_level gw_log_level = GW_LOG_INFO;

static char log_tag[16] = "main";

static const char *const level_names[] = {"ERROR", "WARN", "INFO", "DEBUG"};

void gw_log_set_tag(const char *tag)
{
    snprintf(log_tag, sizeof(log_tag), "%s", tag);
}

int gw_log_parse_level(const char *s, enum gw_log_level *level)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcmp(s, names[i]) == 0) {
            *level = (enum gw_log_level)i;
            return 0;
        }
    }
    return -1;
}

void gw_log_write(enum gw_log_level level, const char *file, int line, const char *fmt, ...)
{
    char msg[2048], stamp[32];
    struct timespec ts;
    struct tm tm;
    const char *base = strrchr(file, '/');
    va_list ap;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    /* One fprintf per line: stderr is unbuffered, so this is one write(2) and lines from
     * several processes sharing the descriptor do not interleave. */
    fprintf(stderr, "%s.%03ldZ %s %s %s:%d %s\n", stamp, ts.tv_nsec / 1000000L, level_names[level],
            log_tag, base ? base + 1 : file, line, msg);
}

const char *gw_log_quote(char *out, size_t outlen, const void *buf, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = buf;
    size_t n = len > 200 ? 200 : len, o = 0;

    if (outlen < GW_LOG_QUOTE_MAX) {
        snprintf(out, outlen, "\"?\"");
        return out;
    }
    out[o++] = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = p[i];

        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c >= 0x20 && c < 0x7f) {
            out[o++] = (char)c;
        } else {
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    if (n < len) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o++] = '"';
    out[o] = '\0';
    return out;
}
