/*
 * What every fuzz target shares: a reader that takes control bytes off the front of the
 * input (so the fuzzer mutates choices and data alike), chunk plans that cut a byte stream
 * into the pieces the input chose, and a check that aborts (a crash for libFuzzer) whatever
 * NDEBUG says. Header only; each target is one .c file.
 */
#ifndef CHAT_TESTS_FUZZ_FUZZ_H
#define CHAT_TESTS_FUZZ_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* libFuzzer's entry points; declared here for -Wmissing-prototypes. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Abort with the failed condition: libFuzzer saves the input as a crash. */
#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond))                                                                               \
            fuzz_fail(__FILE__, __LINE__, #cond);                                                  \
    } while (0)

static inline void fuzz_fail(const char *file, int line, const char *what)
{
    fprintf(stderr, "%s:%d: fuzz check failed: %s\n", file, line, what);
    abort();
}

/* The unread rest of the input. */
struct fuzz_input {
    const uint8_t *p;
    size_t len;
};

/* The next byte, or 0 once the input is used up. */
static inline uint8_t fuzz_byte(struct fuzz_input *in)
{
    if (in->len == 0)
        return 0;
    in->len--;
    return *in->p++;
}

/* A chunk plan: up to 15 sizes of 1 to 256 bytes, used in turn; no sizes: all at once. */
struct fuzz_chunks {
    uint8_t size[15];
    size_t n;
    size_t next;
};

/* Read a plan off the input: one byte says how many sizes follow (mod 16), then the sizes. */
static inline void fuzz_chunks_init(struct fuzz_chunks *c, struct fuzz_input *in)
{
    c->n = fuzz_byte(in) % 16;
    c->next = 0;
    for (size_t i = 0; i < c->n; i++)
        c->size[i] = fuzz_byte(in);
}

/* How many of the left bytes go in the next chunk (at least 1 when left > 0). */
static inline size_t fuzz_chunks_next(struct fuzz_chunks *c, size_t left)
{
    size_t n;

    if (c->n == 0)
        return left;
    n = (size_t)c->size[c->next++ % c->n] + 1;
    return n < left ? n : left;
}

/* A heap copy of buf[0..len) of exactly len bytes, so that AddressSanitizer catches a read
 * one past the end of a chunk. Free with free(). */
static inline uint8_t *fuzz_dup(const uint8_t *buf, size_t len)
{
    uint8_t *p = malloc(len ? len : 1);

    if (p == NULL)
        abort();
    if (len)
        memcpy(p, buf, len);
    return p;
}

#endif
