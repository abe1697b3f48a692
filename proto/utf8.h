/*
 * UTF-8 validation per RFC 3629: no overlong forms, no surrogates (U+D800..U+DFFF), nothing
 * above U+10FFFF. Incremental, so a message may arrive in any number of pieces and a code
 * point may be split between them; a failure is reported at the first bad byte.
 */
#ifndef CHAT_PROTO_UTF8_H
#define CHAT_PROTO_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Validator state, held by value; all fields private. */
struct proto_utf8 {
    uint8_t need; /* continuation bytes still expected for the current code point */
    uint8_t lo;   /* smallest allowed value of the next continuation byte */
    uint8_t hi;   /* largest allowed value of the next continuation byte */
    uint8_t bad;  /* 1 once an invalid byte was seen */
};

/* Start a new text. */
void proto_utf8_init(struct proto_utf8 *st);

/* Feed the next len bytes of the text. Returns 0 while the text so far can still be valid,
 * -1 once it cannot (and for every later call). */
int proto_utf8_feed(struct proto_utf8 *st, const uint8_t *buf, size_t len);

/* 1 if everything fed is valid and ends on a code point boundary, else 0. */
int proto_utf8_is_complete(const struct proto_utf8 *st);

/* 1 if buf[0..len) is valid UTF-8 as a whole, else 0. */
int proto_utf8_is_valid(const uint8_t *buf, size_t len);

#endif
