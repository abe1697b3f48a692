/*
 * HTTP/1.1 requests, parsed by http-parser: a socket-free parser that takes bytes and hands
 * back one complete request at a time (pipelining and keep-alive follow), with a cap on
 * the request head; and the writer of simple responses.
 */
#ifndef CHAT_GATEWAY_HTTP_H
#define CHAT_GATEWAY_HTTP_H

#include <stddef.h>
#include <stdint.h>

struct evbuffer;
struct gw_http_parser;

/* Most headers one request may carry (then 431). */
#define GW_HTTP_MAX_HEADERS 64
/* Largest request body accepted (and discarded); GET and HEAD carry none in practice. */
#define GW_HTTP_MAX_BODY 4096

struct gw_http_header {
    const char *name; /* not NUL-terminated; borrowed from the parser */
    size_t name_len;
    const char *value; /* spaces around it trimmed */
    size_t value_len;
};

/* A parsed request; every pointer is borrowed from the parser until gw_http_parser_next. */
struct gw_http_request {
    int method;           /* enum http_method of http_parser.h */
    unsigned short major; /* HTTP version */
    unsigned short minor;
    int keep_alive;   /* 1 if the connection may carry another request */
    int upgrade;      /* 1 if the parser stopped at an Upgrade: the rest is not HTTP */
    const char *path; /* the URL's path, still percent-encoded */
    size_t path_len;
    const char *query; /* after the '?', still percent-encoded; NULL when there is none */
    size_t query_len;

    struct gw_http_header headers[GW_HTTP_MAX_HEADERS];
    size_t n_headers;
};

enum gw_http_result {
    GW_HTTP_MORE = 0, /* everything was consumed; no complete request yet */
    GW_HTTP_REQUEST,  /* a request is ready: gw_http_parser_request */
    GW_HTTP_ERROR,    /* malformed or over a limit: answer gw_http_parser_error and close */
};

/* A parser for requests whose head (request line and headers) is at most max_head bytes. */
struct gw_http_parser *gw_http_parser_new(size_t max_head);
void gw_http_parser_free(struct gw_http_parser *p);

/*
 * Consume bytes from buf[0..len) and set *consumed. Stops after a complete request
 * (GW_HTTP_REQUEST; the rest of buf is the next request, or WebSocket frames after an
 * upgrade), at an error, or when buf is used up (GW_HTTP_MORE). After GW_HTTP_ERROR every
 * call returns GW_HTTP_ERROR.
 */
enum gw_http_result gw_http_parser_feed(struct gw_http_parser *p, const uint8_t *buf, size_t len,
                                        size_t *consumed);

/* The request after GW_HTTP_REQUEST; borrowed until gw_http_parser_next or _free. */
const struct gw_http_request *gw_http_parser_request(const struct gw_http_parser *p);

/* Forget the request just handled and get ready for the next one on the connection. */
void gw_http_parser_next(struct gw_http_parser *p);

/* After GW_HTTP_ERROR: the status to answer (400, 405, 413, 431, 505) and a static reason. */
int gw_http_parser_error(const struct gw_http_parser *p, const char **reason);

/* 1 if some bytes of a request were received and it is not complete, else 0. */
int gw_http_parser_is_partial(const struct gw_http_parser *p);

/* The first value of header name (case-insensitive) in req, with *len set, or NULL; *count
 * (may be NULL) is set to how many times the header occurs. */
const char *gw_http_header(const struct gw_http_request *req, const char *name, size_t *len,
                           size_t *count);

/* The reason phrase of status ("Not Found"). */
const char *gw_http_reason(int status);

/*
 * Append a response to out: status line, Date, Server, Content-Length, the given extra
 * header lines (each ending "\r\n"; may be NULL), Connection: close unless keep_alive, then
 * the body unless head_only. content_type may be NULL when there is no body.
 */
void gw_http_respond(struct evbuffer *out, int status, const char *extra_headers,
                     const char *content_type, const void *body, size_t len, int keep_alive,
                     int head_only);

#endif
