#include "gateway/static.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <http_parser.h>

#include "gateway/http.h"
#include "gateway/util.h"

static int hex_value(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Decode %XX escapes of path[0..len) into out (len + 1 bytes). Returns 0, or -1 for a
 * malformed escape or a NUL byte. */
static int percent_decode(const char *path, size_t len, char *out)
{
    size_t o = 0;

    for (size_t i = 0; i < len; i++) {
        int c = (unsigned char)path[i];

        if (c == '%') {
            if (i + 2 >= len)
                return -1;
            int h = hex_value((unsigned char)path[i + 1]);
            int l = hex_value((unsigned char)path[i + 2]);
            if (h < 0 || l < 0)
                return -1;
            c = h * 16 + l;
            i += 2;
        }
        if (c == '\0')
            return -1;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return 0;
}

/* Append the segments of the decoded path to buf (which holds root) and return 0, or 404 if a
 * segment is ".." or starts with a dot. Empty and "." segments are skipped. */
static int join_segments(char *buf, size_t cap, const char *decoded)
{
    size_t blen = strlen(buf);
    const char *p = decoded;

    while (*p) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);

        if (n > 0 && !(n == 1 && p[0] == '.')) {
            if (p[0] == '.')
                return 404; /* "..", and dot-files such as .git or .env */
            if (blen + 1 + n + 1 > cap)
                return 404;
            buf[blen++] = '/';
            memcpy(buf + blen, p, n);
            blen += n;
            buf[blen] = '\0';
        }
        p += n + (slash ? 1 : 0);
    }
    return 0;
}

static int is_inside(const char *root, const char *real)
{
    size_t n = strlen(root);

    return strncmp(real, root, n) == 0 && (real[n] == '/' || real[n] == '\0');
}

int gw_static_resolve(const char *root, const char *path, size_t len, char **out)
{
    char decoded[4096], joined[4096];
    struct stat st;
    char *real;
    int rc;

    *out = NULL;
    if (len >= sizeof(decoded) || len == 0 || path[0] != '/')
        return len >= sizeof(decoded) ? 404 : 400;
    if (percent_decode(path, len, decoded) < 0)
        return 400;
    snprintf(joined, sizeof(joined), "%s", root);
    rc = join_segments(joined, sizeof(joined) - sizeof("/index.html"), decoded);
    if (rc != 0)
        return rc;
    size_t dlen = strlen(decoded);
    int want_dir = decoded[dlen - 1] == '/' || (dlen >= 2 && strcmp(decoded + dlen - 2, "/.") == 0);
    if (stat(joined, &st) == 0 && S_ISDIR(st.st_mode)) {
        if (!want_dir)
            return 301; /* so the page's relative links resolve inside the directory */
        strcat(joined, "/index.html");
    } else if (want_dir) {
        return 404; /* a file named like a directory */
    }
    real = realpath(joined, NULL);
    if (real == NULL || !is_inside(root, real) || stat(real, &st) < 0 || !S_ISREG(st.st_mode)) {
        free(real);
        return 404;
    }
    *out = real;
    return 0;
}

const char *gw_static_mime(const char *name)
{
    static const struct {
        const char *ext;
        const char *type;
    } types[] = {
        {"html", "text/html; charset=utf-8"},
        {"htm", "text/html; charset=utf-8"},
        {"css", "text/css; charset=utf-8"},
        {"js", "text/javascript; charset=utf-8"},
        {"mjs", "text/javascript; charset=utf-8"},
        {"json", "application/json"},
        {"txt", "text/plain; charset=utf-8"},
        {"svg", "image/svg+xml"},
        {"png", "image/png"},
        {"jpg", "image/jpeg"},
        {"jpeg", "image/jpeg"},
        {"gif", "image/gif"},
        {"webp", "image/webp"},
        {"ico", "image/x-icon"},
        {"woff2", "font/woff2"},
        {"webmanifest", "application/manifest+json"},
        {"wasm", "application/wasm"},
    };
    const char *dot = strrchr(name, '.');
    const char *slash = strrchr(name, '/');

    if (dot && (slash == NULL || dot > slash)) {
        for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
            if (strcasecmp(dot + 1, types[i].ext) == 0)
                return types[i].type;
    }
    return "application/octet-stream";
}

static void redirect(struct evbuffer *out, const struct gw_http_request *req, int head)
{
    char location[4200];

    snprintf(location, sizeof(location), "Location: %.*s/\r\n", (int)req->path_len, req->path);
    gw_http_respond(out, 301, location, "text/plain; charset=utf-8", "moved\n", 6, req->keep_alive,
                    head);
}

static void not_found(struct evbuffer *out, int status, int keep_alive, int head)
{
    const char *body = status == 400 ? "bad request path\n" : "not found\n";

    gw_http_respond(out, status, NULL, "text/plain; charset=utf-8", body, strlen(body), keep_alive,
                    head);
}

void gw_static_serve(const char *root, const struct gw_http_request *req, struct evbuffer *out)
{
    int head = req->method == HTTP_HEAD, keep_alive = req->keep_alive, fd;
    char *file = NULL, extra[160], stamp[40];
    int status = gw_static_resolve(root, req->path, req->path_len, &file);
    const char *ims;
    struct stat st;
    struct tm tm;
    size_t len;

    if (status == 301) {
        redirect(out, req, head);
        return;
    }
    if (status != 0 || (fd = open(file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0) {
        not_found(out, status ? status : 404, keep_alive, head);
        free(file);
        return;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        not_found(out, 404, keep_alive, head);
        free(file);
        return;
    }
    gmtime_r(&st.st_mtime, &tm);
    strftime(stamp, sizeof(stamp), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    snprintf(extra, sizeof(extra),
             "Last-Modified: %s\r\nCache-Control: no-cache\r\nX-Content-Type-Options: nosniff\r\n",
             stamp);
    ims = gw_http_header(req, "If-Modified-Since", &len, NULL);
    if (ims && len == strlen(stamp) && memcmp(ims, stamp, len) == 0) {
        close(fd);
        gw_http_respond(out, 304, extra, NULL, NULL, 0, keep_alive, 1);
    } else {
        gw_http_respond(out, 200, extra, gw_static_mime(file), NULL, (size_t)st.st_size, keep_alive,
                        1);
        if (head || st.st_size == 0)
            close(fd);
        else if (evbuffer_add_file(out, fd, 0, st.st_size) < 0)
            close(fd);
    }
    free(file);
}
