/*
 * Lines from an input descriptor (stdin) on a libevent loop. Pipes, sockets and terminals
 * are watched with the loop; files (and /dev/null), which the kernel always calls readable
 * and epoll refuses, are read chunk by chunk from a timer. Reading pauses while the consumer
 * is busy, and a line longer than the bound is dropped with a notice (term.h).
 */
#ifndef CHAT_TOOLS_LINEIN_H
#define CHAT_TOOLS_LINEIN_H

#include <stddef.h>

struct event_base;
struct linein;

/* What a struct linein asks and reports; arg is linein_new's. The callbacks may call
 * linein_stop, never linein_free. */
struct linein_handler {
    /* 1 while lines are wanted; 0 once the consumer is done: reading stops for good and
     * what is buffered stays unread. */
    int (*is_open)(void *arg);
    /* 1 while the consumer holds too much unsent: reading pauses, and is tried again every
     * 10 ms. Asked only while is_open. */
    int (*is_busy)(void *arg);
    /* One line without its end (LF or CRLF); line is NUL-terminated, borrowed for the call. */
    void (*on_line)(void *arg, const char *line, size_t len);
    /* The input ended (or failed: a notice said why), after a last line without an end went
     * to on_line. Reading has stopped. */
    void (*on_end)(void *arg);
};

/* A reader of fd on base (notices call it stdin: the tools read no other), which keeps lines
 * of up to line_max bytes; h and arg are borrowed for the life of the reader. Nothing is read
 * before linein_start. Out of memory aborts. */
struct linein *linein_new(struct event_base *base, int fd, size_t line_max,
                          const struct linein_handler *h, void *arg);

/* Start reading; on_end may come from here already (fd cannot even be examined). */
void linein_start(struct linein *in);

/* Stop reading for good (the pending events are removed); again does nothing. */
void linein_stop(struct linein *in);

/* Free the reader; NULL does nothing. Not from its callbacks. */
void linein_free(struct linein *in);

#endif
