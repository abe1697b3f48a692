/*
 * Files of the page served from the public directory. A request path resolves only to a
 * regular file inside that directory: percent-encoding is decoded once, "..", dot-files and
 * NUL bytes are refused, and the resolved path (symlinks followed) must stay inside.
 */
#ifndef CHAT_GATEWAY_STATIC_H
#define CHAT_GATEWAY_STATIC_H

#include <stddef.h>

struct evbuffer;
struct gw_http_request;

/*
 * Resolve the still percent-encoded path[0..len) against root (absolute, symlinks resolved).
 * Returns 0 with *out set to the file's absolute path (owned by the caller, free()), 400 for
 * malformed percent-encoding or a NUL byte, 301 for a directory named without its trailing
 * slash, or 404 when there is no such file inside root (a directory with the slash resolves
 * to its index.html; a file with a trailing slash is not found).
 */
int gw_static_resolve(const char *root, const char *path, size_t len, char **out);

/* The Content-Type for a file name, by extension; application/octet-stream when unknown. */
const char *gw_static_mime(const char *name);

/* Answer a GET or HEAD for req from root into out: 200 with the file (sent from the page
 * cache by the kernel, not copied), 304 when If-Modified-Since matches, 301 to add a
 * directory's slash, 400 or 404. */
void gw_static_serve(const char *root, const struct gw_http_request *req, struct evbuffer *out);

#endif
