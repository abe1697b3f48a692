/*
 * Allocation that never returns NULL: on out-of-memory a message is printed and the process
 * aborts, so callers never test for NULL. Shared by the gateway and the tools.
 */
#ifndef CHAT_PROTO_XALLOC_H
#define CHAT_PROTO_XALLOC_H

#include <stddef.h>

/* Like malloc/calloc/realloc/strdup; a size of 0 still returns a unique pointer. */
void *xmalloc(size_t size);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *ptr, size_t size);
char *xstrdup(const char *s);
/* Copy len bytes of s into a new NUL-terminated string. */
char *xstrndup(const char *s, size_t len);

#endif
