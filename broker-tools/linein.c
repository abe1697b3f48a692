#include "broker-tools/linein.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "broker-tools/term.h"
#include "proto/xalloc.h"

#define LINEIN_READ_CHUNK 65536
#define LINEIN_RETRY_US 10000 /* while the consumer is busy */

struct linein {
    const struct linein_handler *h;
    void *arg;
    int fd;
    size_t line_max;
    struct event *ev;     /* fd readable (pollable fd only) */
    struct event *timer;  /* read on (files), or retry while the consumer is busy */
    struct evbuffer *buf; /* bytes not yet a whole line */
    int pollable;         /* fd works with epoll (pipe, terminal, socket) */
    int skip;             /* dropping the rest of an over-long line */
};

static void on_readable(evutil_socket_t fd, short what, void *arg);
static void on_timer(evutil_socket_t fd, short what, void *arg);

struct linein *linein_new(struct event_base *base, int fd, size_t line_max,
                          const struct linein_handler *h, void *arg)
{
    struct linein *in = xcalloc(1, sizeof(*in));

    in->h = h;
    in->arg = arg;
    in->fd = fd;
    in->line_max = line_max;
    in->buf = evbuffer_new();
    in->ev = event_new(base, fd, EV_READ | EV_PERSIST, on_readable, in);
    in->timer = evtimer_new(base, on_timer, in);
    if (!in->buf || !in->ev || !in->timer)
        abort(); /* libevent fails here only without memory */
    return in;
}

void linein_stop(struct linein *in)
{
    event_del(in->ev);
    event_del(in->timer);
}

void linein_free(struct linein *in)
{
    if (in == NULL)
        return;
    event_free(in->ev);
    event_free(in->timer);
    evbuffer_free(in->buf);
    free(in);
}

/* Read on after a pause: at once for a file, when readable for a pipe or terminal; in 10 ms
 * while the consumer is still busy. */
static void pace(struct linein *in)
{
    struct timeval soon = {0, LINEIN_RETRY_US}, now = {0, 0};

    if (!in->h->is_open(in->arg))
        return;
    if (in->h->is_busy(in->arg)) {
        event_del(in->ev);
        evtimer_add(in->timer, &soon);
    } else if (in->pollable) {
        event_add(in->ev, NULL);
    } else {
        evtimer_add(in->timer, &now);
    }
}

/* Hand each complete line on; the rest of an over-long line is dropped. */
static void take_lines(struct linein *in)
{
    char *line;
    size_t len;

    while (in->h->is_open(in->arg) && (line = evbuffer_readln(in->buf, &len, EVBUFFER_EOL_CRLF))) {
        if (!in->skip)
            in->h->on_line(in->arg, line, len);
        in->skip = 0;
        free(line);
    }
    if (evbuffer_get_length(in->buf) > in->line_max) {
        if (!in->skip)
            term_notice("a line over %zu bytes: dropped", in->line_max);
        in->skip = 1;
        evbuffer_drain(in->buf, evbuffer_get_length(in->buf));
    }
}

/* End of input: a last line without an end still goes, then on_end. */
static void end_of_input(struct linein *in)
{
    size_t len = evbuffer_get_length(in->buf);

    linein_stop(in);
    if (len > 0 && !in->skip && in->h->is_open(in->arg)) {
        char *line = xmalloc(len + 1);

        evbuffer_remove(in->buf, line, len);
        line[len] = '\0';
        in->h->on_line(in->arg, line, len);
        free(line);
    }
    in->h->on_end(in->arg);
}

/* One read, which never blocks: fd is readable, or a file. */
static void read_some(struct linein *in)
{
    int n = evbuffer_read(in->buf, in->fd, LINEIN_READ_CHUNK);

    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    if (n > 0) {
        take_lines(in);
        pace(in);
        return;
    }
    if (n < 0)
        term_notice("cannot read stdin: %s", strerror(errno));
    end_of_input(in);
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    read_some(arg);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct linein *in = arg;

    (void)fd;
    (void)what;
    if (!in->h->is_open(in->arg))
        return;
    if (in->h->is_busy(in->arg) || in->pollable)
        pace(in);
    else
        read_some(in);
}

void linein_start(struct linein *in)
{
    struct stat sb;

    if (fstat(in->fd, &sb) < 0) {
        end_of_input(in);
        return;
    }
    in->pollable = S_ISFIFO(sb.st_mode) || S_ISSOCK(sb.st_mode) || isatty(in->fd);
    pace(in);
}
