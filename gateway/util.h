/*
 * Small helpers every gateway module uses: allocation that aborts on out-of-memory
 * (proto/xalloc.h), clock readings, and ASCII string helpers for HTTP tokens. No state of their
 * own.
 */
#ifndef CHAT_GATEWAY_UTIL_H
#define CHAT_GATEWAY_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "proto/xalloc.h"

/* Milliseconds since the Unix epoch (wall clock), and since an arbitrary point (monotonic). */
uint64_t gw_util_wall_ms(void);
uint64_t gw_util_mono_ms(void);

/* 1 if the len bytes at a equal the NUL-terminated b ignoring ASCII case, else 0. */
int gw_util_is_ascii_caseeq(const char *a, size_t len, const char *b);

/*
 * 1 if the comma-separated HTTP list value[0..len) holds token (ASCII case-insensitive,
 * optional whitespace around elements, empty elements skipped), else 0. A token with
 * parameters ("websocket; q=1") does not match.
 */
int gw_util_has_token(const char *value, size_t len, const char *token);

/*
 * Walk a comma-separated list [*p, end): set *elem and *len to the next element, spaces and
 * tabs trimmed (it may be empty), and move *p past its comma. Returns 1, or 0 when the list
 * is used up.
 */
int gw_util_list_next(const char **p, const char *end, const char **elem, size_t *len);

/* Trim spaces and tabs from both ends of [*s, *s + *len). */
void gw_util_trim(const char **s, size_t *len);

#endif
