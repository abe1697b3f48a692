#include "gateway/http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <http_parser.h>

#include "gateway/util.h"

struct gw_http_parser {
    http_parser hp;
    struct gw_http_request req;
    char *arena; /* url, header names and values, back to back; max_head bytes */
    size_t arena_len;
    size_t max_head;
    size_t head_bytes; /* bytes of the current request's head fed so far */
    size_t body_bytes;
    int in_value; /* the last header callback was for a value */
    int headers_done;
    int complete;
    int error_status; /* 0, or the status to answer */
    const char *error_reason;
    const char *url;
    size_t url_len;
};

/* ---- http-parser callbacks ---------------------------------------------------------------- */

static int set_error(struct gw_http_parser *p, int status, const char *reason)
{
    if (p->error_status == 0) {
        p->error_status = status;
        p->error_reason = reason;
    }
    return -1;
}

/* Append at[0..len) to the arena; return where it went, or NULL when the head is too big. */
static char *append(struct gw_http_parser *p, const char *at, size_t len)
{
    char *dst = p->arena + p->arena_len;

    if (len > p->max_head - p->arena_len)
        return NULL;
    memcpy(dst, at, len);
    p->arena_len += len;
    return dst;
}

static int on_url(http_parser *hp, const char *at, size_t len)
{
    struct gw_http_parser *p = hp->data;
    char *dst = append(p, at, len);

    if (dst == NULL)
        return set_error(p, 431, "request head too large");
    if (p->url == NULL)
        p->url = dst;
    p->url_len += len;
    return 0;
}

static int on_header_field(http_parser *hp, const char *at, size_t len)
{
    struct gw_http_parser *p = hp->data;
    char *dst;

    if (p->headers_done)
        return 0; /* the trailer of a chunked body: not part of the request's head */
    dst = append(p, at, len);

    if (dst == NULL)
        return set_error(p, 431, "request head too large");
    if (p->req.n_headers == 0 || p->in_value) {
        if (p->req.n_headers == GW_HTTP_MAX_HEADERS)
            return set_error(p, 431, "too many headers");
        struct gw_http_header *h = &p->req.headers[p->req.n_headers++];
        h->name = dst;
        h->value = NULL;
        h->value_len = 0;
        p->in_value = 0;
    }
    p->req.headers[p->req.n_headers - 1].name_len += len;
    return 0;
}

static int on_header_value(http_parser *hp, const char *at, size_t len)
{
    struct gw_http_parser *p = hp->data;
    struct gw_http_header *h;
    char *dst;

    if (p->headers_done)
        return 0; /* a trailer's value */
    h = &p->req.headers[p->req.n_headers - 1];
    dst = append(p, at, len);

    if (dst == NULL)
        return set_error(p, 431, "request head too large");
    if (h->value == NULL)
        h->value = dst;
    h->value_len += len;
    p->in_value = 1;
    return 0;
}

static int on_headers_complete(http_parser *hp)
{
    struct gw_http_parser *p = hp->data;
    struct http_parser_url u;

    p->headers_done = 1;
    for (size_t i = 0; i < p->req.n_headers; i++) {
        struct gw_http_header *h = &p->req.headers[i];

        if (h->value == NULL)
            h->value = h->name + h->name_len;
        gw_util_trim(&h->value, &h->value_len);
    }
    if (hp->http_major != 1)
        return set_error(p, 505, "HTTP version not supported");
    if (hp->method != HTTP_GET && hp->method != HTTP_HEAD)
        return set_error(p, 405, "method not allowed");
    http_parser_url_init(&u);
    if (p->url == NULL || http_parser_parse_url(p->url, p->url_len, 0, &u) != 0 ||
        !(u.field_set & (1 << UF_PATH)))
        return set_error(p, 400, "malformed request target");
    p->req.path = p->url + u.field_data[UF_PATH].off;
    p->req.path_len = u.field_data[UF_PATH].len;
    p->req.query = NULL;
    p->req.query_len = 0;
    if (u.field_set & (1 << UF_QUERY)) {
        p->req.query = p->url + u.field_data[UF_QUERY].off;
        p->req.query_len = u.field_data[UF_QUERY].len;
    }

    p->req.method = hp->method;
    p->req.major = hp->http_major;
    p->req.minor = hp->http_minor;
    return 0;
}

static int on_body(http_parser *hp, const char *at, size_t len)
{
    struct gw_http_parser *p = hp->data;

    (void)at;
    p->body_bytes += len;
    if (p->body_bytes > GW_HTTP_MAX_BODY)
        return set_error(p, 413, "request body too large");
    return 0;
}

static int on_message_complete(http_parser *hp)
{
    struct gw_http_parser *p = hp->data;

    p->complete = 1;
    p->req.keep_alive = http_should_keep_alive(hp);
    p->req.upgrade = hp->upgrade;
    /* Stop here so the request is handled before the next one is parsed. */
    http_parser_pause(hp, 1);
    return 0;
}

static const http_parser_settings settings = {
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ---- parser ------------------------------------------------------------------------------- */

struct gw_http_parser *gw_http_parser_new(size_t max_head)
{
    struct gw_http_parser *p = xcalloc(1, sizeof(*p));

    http_parser_init(&p->hp, HTTP_REQUEST);
    p->hp.data = p;
    p->max_head = max_head;
    p->arena = xmalloc(max_head);
    return p;
}

void gw_http_parser_free(struct gw_http_parser *p)
{
    if (p == NULL)
        return;
    free(p->arena);
    free(p);
}

enum gw_http_result gw_http_parser_feed(struct gw_http_parser *p, const uint8_t *buf, size_t len,
                                        size_t *consumed)
{
    size_t off = 0;

    *consumed = 0;
    if (p->error_status)
        return GW_HTTP_ERROR;
    if (p->complete)
        return GW_HTTP_REQUEST;
    while (off < len) {
        size_t n = len - off, r;

        /* Feed no more than the cap allows while the head is incomplete. */
        if (!p->headers_done && n > p->max_head - p->head_bytes)
            n = p->max_head - p->head_bytes;
        r = http_parser_execute(&p->hp, &settings, (const char *)buf + off, n);
        off += r;
        if (!p->headers_done)
            p->head_bytes += r;
        *consumed = off;
        if (HTTP_PARSER_ERRNO(&p->hp) == HPE_PAUSED)
            return GW_HTTP_REQUEST;
        if (HTTP_PARSER_ERRNO(&p->hp) != HPE_OK) {
            set_error(p, 400, http_errno_description(HTTP_PARSER_ERRNO(&p->hp)));
            return GW_HTTP_ERROR;
        }
        if (!p->headers_done && p->head_bytes >= p->max_head) {
            set_error(p, 431, "request head too large");
            return GW_HTTP_ERROR;
        }
    }
    return GW_HTTP_MORE;
}

const struct gw_http_request *gw_http_parser_request(const struct gw_http_parser *p)
{
    return p->complete ? &p->req : NULL;
}

void gw_http_parser_next(struct gw_http_parser *p)
{
    memset(&p->req, 0, sizeof(p->req));
    p->arena_len = 0;
    p->head_bytes = 0;
    p->body_bytes = 0;
    p->in_value = 0;
    p->headers_done = 0;
    p->complete = 0;
    p->url = NULL;
    p->url_len = 0;
    http_parser_pause(&p->hp, 0);
}

int gw_http_parser_error(const struct gw_http_parser *p, const char **reason)
{
    if (reason)
        *reason = p->error_reason;
    return p->error_status;
}

int gw_http_parser_is_partial(const struct gw_http_parser *p)
{
    return (p->head_bytes > 0 || p->headers_done) && !p->complete;
}

const char *gw_http_header(const struct gw_http_request *req, const char *name, size_t *len,
                           size_t *count)
{
    const char *first = NULL;
    size_t n = 0;

    for (size_t i = 0; i < req->n_headers; i++) {
        const struct gw_http_header *h = &req->headers[i];

        if (gw_util_is_ascii_caseeq(h->name, h->name_len, name)) {
            if (n++ == 0) {
                first = h->value;
                *len = h->value_len;
            }
        }
    }
    if (count)
        *count = n;
    return first;
}

/* ---- responses ---------------------------------------------------------------------------- */

const char *gw_http_reason(int status)
{
    static const struct {
        int status;
        const char *reason;
    } reasons[] = {
        {101, "Switching Protocols"},
        {200, "OK"},
        {301, "Moved Permanently"},
        {304, "Not Modified"},
        {400, "Bad Request"},
        {401, "Unauthorized"},
        {403, "Forbidden"},
        {404, "Not Found"},
        {405, "Method Not Allowed"},
        {408, "Request Timeout"},
        {413, "Content Too Large"},
        {426, "Upgrade Required"},
        {429, "Too Many Requests"},
        {431, "Request Header Fields Too Large"},
        {500, "Internal Server Error"},
        {503, "Service Unavailable"},
        {505, "HTTP Version Not Supported"},
    };

    for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
        if (reasons[i].status == status)
            return reasons[i].reason;
    return "Unknown";
}

/* "Sat, 21 Nov 2026 05:56:14 GMT", formatted once a second. */
static const char *http_date(void)
{
    static char buf[40];
    static time_t last;
    time_t now = time(NULL);
    struct tm tm;

    if (now != last) {
        gmtime_r(&now, &tm);
        strftime(buf, sizeof(buf), "%a, %d %b %Y %H:%M:%S GMT", &tm);
        last = now;
    }
    return buf;
}

void gw_http_respond(struct evbuffer *out, int status, const char *extra_headers,
                     const char *content_type, const void *body, size_t len, int keep_alive,
                     int head_only)
{
    evbuffer_add_printf(out,
                        "HTTP/1.1 %d %s\r\nServer: chatbroker\r\nDate: %s\r\n"
                        "Content-Length: %zu\r\n%s%s%s%s%s\r\n",
                        status, gw_http_reason(status), http_date(), len,
                        content_type ? "Content-Type: " : "", content_type ? content_type : "",
                        content_type ? "\r\n" : "", extra_headers ? extra_headers : "",
                        keep_alive ? "" : "Connection: close\r\n");
    if (!head_only && len > 0)
        evbuffer_add(out, body, len);
}
