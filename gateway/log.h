/*
 * Logging: one line per event on stderr, with a UTC timestamp, level, process tag and
 * source position, context as key=value. The level is checked before any formatting, so a
 * disabled LOG_DEBUG costs one comparison.
 */
#ifndef CHAT_GATEWAY_LOG_H
#define CHAT_GATEWAY_LOG_H

#include <stddef.h>

enum gw_log_level {
    GW_LOG_ERROR = 0,
    GW_LOG_WARN,
    GW_LOG_INFO,
    GW_LOG_DEBUG,
};

/* The level in force; messages above it are dropped. Set once at start-up. */
extern enum gw_log_level gw_log_level;

/* Set the tag printed after the level ("main", "w1", ...); tag is copied (up to 15 bytes). */
void gw_log_set_tag(const char *tag);

/* Parse "error", "warn", "info" or "debug" into *level; return 0, or -1 if unknown. */
int gw_log_parse_level(const char *s, enum gw_log_level *level);

/* Write one line; use the LOG_* macros rather than calling this. */
void gw_log_write(enum gw_log_level level, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/*
 * Write client-supplied bytes into out (size outlen, NUL-terminated) as a double-quoted,
 * escaped string, cut at 200 input bytes with "..." appended. Returns out, for use as a
 * printf argument.
 */
const char *gw_log_quote(char *out, size_t outlen, const void *buf, size_t len);

/* Room enough for gw_log_quote of any input. */
#define GW_LOG_QUOTE_MAX (200 * 4 + 8)

#define GW_LOG_AT(lvl, ...)                                                                        \
    do {                                                                                           \
        if ((lvl) <= gw_log_level)                                                                 \
            gw_log_write((lvl), __FILE__, __LINE__, __VA_ARGS__);                                  \
    } while (0)

#define LOG_ERROR(...) GW_LOG_AT(GW_LOG_ERROR, __VA_ARGS__)
#define LOG_WARN(...) GW_LOG_AT(GW_LOG_WARN, __VA_ARGS__)
#define LOG_INFO(...) GW_LOG_AT(GW_LOG_INFO, __VA_ARGS__)
#define LOG_DEBUG(...) GW_LOG_AT(GW_LOG_DEBUG, __VA_ARGS__)

#endif
