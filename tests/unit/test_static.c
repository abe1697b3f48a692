/*
 * Unit tests of gateway/static.h against a scratch tree: path resolution (percent-decoding,
 * "..", dot-files, NUL, symlinks in and out of the root), the MIME table, and the answers of
 * gw_static_serve.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <cmocka.h>
#include <event2/buffer.h>

#include "gateway/http.h"
#include "gateway/static.h"

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

/* ---- the scratch tree -------------------------------------------------------------------- */

static char base[256]; /* mkdtemp directory, symlinks resolved */
static char root[300]; /* base/root: the public directory */

enum node_kind {
    NODE_DIR = 0,
    NODE_FILE,
    NODE_LINK,
};

struct node {
    enum node_kind kind;
    const char *path;   /* relative to base */
    const char *target; /* file contents, or link target */
};

/* Created in order, removed in reverse. */
static const struct node tree[] = {
    {NODE_DIR, "root", NULL},
    {NODE_FILE, "root/index.html", "<h1>root</h1>\n"},
    {NODE_FILE, "root/app.js", "console.log(1);\n"},
    {NODE_FILE, "root/a b.txt", "space\n"},
    {NODE_FILE, "root/100%.txt", "percent\n"},
    {NODE_FILE, "root/empty.txt", ""},
    {NODE_DIR, "root/sub", NULL},
    {NODE_FILE, "root/sub/index.html", "<h1>sub</h1>\n"},
    {NODE_FILE, "root/sub/page.txt", "page\n"},
    {NODE_FILE, "root/.env", "SECRET=1\n"},
    {NODE_DIR, "root/.hidden", NULL},
    {NODE_FILE, "root/.hidden/x.txt", "hidden\n"},
    {NODE_DIR, "root/emptydir", NULL},
    {NODE_LINK, "root/in-link", "index.html"},
    {NODE_LINK, "root/in-dir-link", "sub"},
    {NODE_LINK, "root/abs-in-link", NULL}, /* absolute, to root/sub/page.txt */
    {NODE_LINK, "root/out-link", "../outside/secret.txt"},
    {NODE_LINK, "root/out-dir", "../outside"},
    {NODE_LINK, "root/abs-out-link", "/etc/hostname"},
    {NODE_LINK, "root/sibling-link", "../root2/file.txt"},
    {NODE_LINK, "root/dangling", "nowhere"},
    {NODE_LINK, "root/loop", "loop"},
    {NODE_DIR, "outside", NULL},
    {NODE_FILE, "outside/secret.txt", "secret\n"},
    {NODE_DIR, "root2", NULL},
    {NODE_FILE, "root2/file.txt", "sibling\n"},
};

static int make_node(const struct node *n)
{
    char path[512], target[512];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", base, n->path);
    switch (n->kind) {
    case NODE_DIR:
        return mkdir(path, 0755);
    case NODE_FILE:
        if ((f = fopen(path, "w")) == NULL)
            return -1;
        fputs(n->target, f);
        return fclose(f);
    case NODE_LINK:
        if (n->target == NULL)
            snprintf(target, sizeof(target), "%s/sub/page.txt", root);
        else
            snprintf(target, sizeof(target), "%s", n->target);
        return symlink(target, path);
    }
    return -1;
}

static int group_setup(void **state)
{
    char templ[] = "/tmp/test_static.XXXXXX";
    char *real;

    (void)state;
    if (mkdtemp(templ) == NULL || (real = realpath(templ, NULL)) == NULL)
        return -1;
    snprintf(base, sizeof(base), "%s", real);
    free(real);
    snprintf(root, sizeof(root), "%s/root", base);
    for (size_t i = 0; i < N_ELEMS(tree); i++)
        if (make_node(&tree[i]) < 0)
            return -1;
    return 0;
}

static int group_teardown(void **state)
{
    char path[512];

    (void)state;
    for (size_t i = N_ELEMS(tree); i-- > 0;) {
        snprintf(path, sizeof(path), "%s/%s", base, tree[i].path);
        remove(path);
    }
    rmdir(base);
    return 0;
}

/* ---- gw_static_resolve ------------------------------------------------------------------- */

struct resolve_case {
    const char *path;
    size_t len; /* 0: strlen(path) */
    int status;
    const char *file; /* for 0: the resolved file, relative to root */
};

static const struct resolve_case resolve_cases[] = {
    {"/", 0, 0, "index.html"},
    {"/index.html", 0, 0, "index.html"},
    {"/app.js", 0, 0, "app.js"},
    {"/sub/", 0, 0, "sub/index.html"},
    {"/sub", 0, 301, NULL},
    {"/sub/page.txt", 0, 0, "sub/page.txt"},
    {"/sub/index.html", 0, 0, "sub/index.html"},
    {"/empty.txt", 0, 0, "empty.txt"},
    /* decoding, once */
    {"/a%20b.txt", 0, 0, "a b.txt"},
    {"/%69ndex.html", 0, 0, "index.html"},
    {"/%69NDEX.html", 0, 404, NULL},
    {"/sub%2fpage.txt", 0, 0, "sub/page.txt"},
    {"/100%25.txt", 0, 0, "100%.txt"},
    {"/100%2525.txt", 0, 404, NULL},
    {"/%2e%2e%2fx", 0, 404, NULL},
    {"/%252e%252e/outside/secret.txt", 0, 404, NULL},
    /* empty and "." segments */
    {"//index.html", 0, 0, "index.html"},
    {"/./index.html", 0, 0, "index.html"},
    {"/sub/./page.txt", 0, 0, "sub/page.txt"},
    {"/sub//page.txt", 0, 0, "sub/page.txt"},
    /* ".." in any spelling */
    {"/../x", 0, 404, NULL},
    {"/..", 0, 404, NULL},
    {"/../outside/secret.txt", 0, 404, NULL},
    {"/sub/../index.html", 0, 404, NULL},
    {"/%2e%2e/x", 0, 404, NULL},
    {"/%2E%2E/outside/secret.txt", 0, 404, NULL},
    {"/..%2fx", 0, 404, NULL},
    {"/..%2foutside%2fsecret.txt", 0, 404, NULL},
    {"/.%2e/outside/secret.txt", 0, 404, NULL},
    /* malformed escapes and NUL */
    {"/a%00b", 0, 400, NULL},
    {"/index.html%00.txt", 0, 400, NULL},
    {"/%zz", 0, 400, NULL},
    {"/%4", 0, 400, NULL},
    {"/%", 0, 400, NULL},
    {"/index.html%", 0, 400, NULL},
    {"/%g0", 0, 400, NULL},
    {"/%0g", 0, 400, NULL},
    {"/a\0b", 4, 400, NULL},
    /* dot-files */
    {"/.env", 0, 404, NULL},
    {"/%2eenv", 0, 404, NULL},
    {"/.hidden/x.txt", 0, 404, NULL},
    {"/.hidden/", 0, 404, NULL},
    {"/sub/.", 0, 0, "sub/index.html"},
    /* missing */
    {"/missing", 0, 404, NULL},
    {"/sub/missing.txt", 0, 404, NULL},
    {"/emptydir", 0, 301, NULL},
    {"/emptydir/", 0, 404, NULL},
    {"/index.html/x", 0, 404, NULL},
    /* symlinks */
    {"/in-link", 0, 0, "index.html"},
    {"/in-dir-link/page.txt", 0, 0, "sub/page.txt"},
    {"/in-dir-link/", 0, 0, "sub/index.html"},
    {"/abs-in-link", 0, 0, "sub/page.txt"},
    {"/out-link", 0, 404, NULL},
    {"/out-dir/secret.txt", 0, 404, NULL},
    {"/abs-out-link", 0, 404, NULL},
    {"/sibling-link", 0, 404, NULL},
    {"/dangling", 0, 404, NULL},
    {"/loop", 0, 404, NULL},
    /* not a path */
    {"", 0, 400, NULL},
    {"index.html", 0, 400, NULL},
};

/* Run every case, then fail once listing each case that went wrong. */
static void check_resolve_cases(const struct resolve_case *cases, size_t n)
{
    char report[4096] = "";

    for (size_t i = 0; i < n; i++) {
        const struct resolve_case *c = &cases[i];
        size_t len = c->len ? c->len : strlen(c->path);
        char *file = (char *)"unset";
        char want[512] = "";
        int status = gw_static_resolve(root, c->path, len, &file);
        size_t used = strlen(report);

        if (c->file)
            snprintf(want, sizeof(want), "%s/%s", root, c->file);
        if (status != c->status || (status == 0 && strcmp(file, want) != 0) ||
            (status != 0 && file != NULL))
            snprintf(report + used, sizeof(report) - used, "\n  \"%s\": %d %s, want %d %s", c->path,
                     status,
                     status == 0 ? file
                     : file      ? "(out set)"
                                 : "",
                     c->status, want);
        if (status == 0)
            free(file);
    }
    if (report[0])
        fail_msg("%s", report);
}

static void test_resolve(void **state)
{
    (void)state;
    check_resolve_cases(resolve_cases, N_ELEMS(resolve_cases));
}

/* A trailing slash names a directory: a regular file with one is "no such file" (as nginx,
 * Apache and the file system itself answer: ENOTDIR). */
static const struct resolve_case trailing_slash_cases[] = {
    {"/index.html/", 0, 404, NULL},
    {"/sub/page.txt/", 0, 404, NULL},
    {"/in-link/", 0, 404, NULL},
    {"/app.js//", 0, 404, NULL},
};

static void test_resolve_file_with_trailing_slash(void **state)
{
    (void)state;
    check_resolve_cases(trailing_slash_cases, N_ELEMS(trailing_slash_cases));
}

/* A path too long for any file is refused, not truncated. */
static void test_resolve_long_path(void **state)
{
    size_t len = 5000;
    char *path = malloc(len + 1);
    char *file = NULL;
    int status;

    (void)state;
    assert_non_null(path);
    for (size_t i = 0; i < len; i += 2)
        memcpy(path + i, "/a", 2);
    path[len] = '\0';
    status = gw_static_resolve(root, path, len, &file);
    free(path);
    assert_int_equal(status, 404);
    assert_null(file);
}

/* ---- gw_static_mime ---------------------------------------------------------------------- */

static void test_mime(void **state)
{
    static const struct {
        const char *name;
        const char *type;
    } cases[] = {
        {"index.html", "text/html; charset=utf-8"},
        {"/x/y/INDEX.HTML", "text/html; charset=utf-8"},
        {"a.htm", "text/html; charset=utf-8"},
        {"style.css", "text/css; charset=utf-8"},
        {"app.js", "text/javascript; charset=utf-8"},
        {"mod.mjs", "text/javascript; charset=utf-8"},
        {"data.json", "application/json"},
        {"notes.txt", "text/plain; charset=utf-8"},
        {"logo.svg", "image/svg+xml"},
        {"a.png", "image/png"},
        {"a.jpg", "image/jpeg"},
        {"a.jpeg", "image/jpeg"},
        {"a.gif", "image/gif"},
        {"a.webp", "image/webp"},
        {"favicon.ico", "image/x-icon"},
        {"f.woff2", "font/woff2"},
        {"site.webmanifest", "application/manifest+json"},
        {"m.wasm", "application/wasm"},
        {"noext", "application/octet-stream"},
        {"archive.tar.gz", "application/octet-stream"},
        {"x.html.bak", "application/octet-stream"},
        {"trailing.", "application/octet-stream"},
        {"dir.d/file", "application/octet-stream"},
        {"/srv/dir.html/file", "application/octet-stream"},
        {"", "application/octet-stream"},
        {"html", "application/octet-stream"},
        {"a.xhtml", "application/octet-stream"},
    };

    (void)state;
    for (size_t i = 0; i < N_ELEMS(cases); i++)
        if (strcmp(gw_static_mime(cases[i].name), cases[i].type) != 0)
            fail_msg("mime(\"%s\") = %s, want %s", cases[i].name, gw_static_mime(cases[i].name),
                     cases[i].type);
}

/* ---- gw_static_serve --------------------------------------------------------------------- */

/* What a test holds; freed by the teardown of every test. */
static struct gw_http_parser *parser;
static struct evbuffer *out_buf;
static char *answer;

static int cleanup(void **state)
{
    (void)state;
    gw_http_parser_free(parser);
    parser = NULL;
    if (out_buf)
        evbuffer_free(out_buf);
    out_buf = NULL;
    free(answer);
    answer = NULL;
    return 0;
}

/* Serve the request of raw into a fresh out_buf; answer holds the text. */
static const char *serve(const char *raw)
{
    size_t consumed, len;

    gw_http_parser_free(parser);
    parser = gw_http_parser_new(8192);
    assert_int_equal(gw_http_parser_feed(parser, (const uint8_t *)raw, strlen(raw), &consumed),
                     GW_HTTP_REQUEST);
    if (out_buf)
        evbuffer_free(out_buf);
    out_buf = evbuffer_new();
    gw_static_serve(root, gw_http_parser_request(parser), out_buf);
    len = evbuffer_get_length(out_buf);
    free(answer);
    answer = calloc(1, len + 1);
    assert_non_null(answer);
    assert_int_equal(evbuffer_remove(out_buf, answer, len), (int)len);
    return answer;
}

static const char *body_of(const char *text)
{
    const char *p = strstr(text, "\r\n\r\n");

    assert_non_null(p);
    return p + 4;
}

static void test_serve(void **state)
{
    static const struct {
        const char *raw;
        const char *status_line;
        const char *has; /* a header line that must be there */
        const char *body;
    } cases[] = {
        {"GET / HTTP/1.1\r\nHost: a\r\n\r\n", "HTTP/1.1 200 OK\r\n",
         "\r\nContent-Type: text/html; charset=utf-8\r\n", "<h1>root</h1>\n"},
        {"GET /app.js HTTP/1.1\r\nHost: a\r\n\r\n", "HTTP/1.1 200 OK\r\n",
         "\r\nContent-Length: 16\r\n", "console.log(1);\n"},
        {"HEAD /sub/ HTTP/1.1\r\nHost: a\r\n\r\n", "HTTP/1.1 200 OK\r\n",
         "\r\nContent-Length: 13\r\n", ""},
        {"GET /empty.txt HTTP/1.1\r\nHost: a\r\n\r\n", "HTTP/1.1 200 OK\r\n",
         "\r\nContent-Length: 0\r\n", ""},
        {"GET /sub/page.txt HTTP/1.0\r\n\r\n", "HTTP/1.1 200 OK\r\n", "\r\nConnection: close\r\n",
         "page\n"},
        {"GET /missing HTTP/1.1\r\nHost: a\r\n\r\n", "HTTP/1.1 404 Not Found\r\n",
         "\r\nContent-Length: 10\r\n", "not found\n"},
        {"GET /.env HTTP/1.1\r\nHost: a\r\n\r\n", "HTTP/1.1 404 Not Found\r\n", "\r\n",
         "not found\n"},
        {"GET /out-link HTTP/1.1\r\nHost: a\r\n\r\n", "HTTP/1.1 404 Not Found\r\n", "\r\n",
         "not found\n"},
        {"GET /%zz HTTP/1.1\r\nHost: a\r\n\r\n", "HTTP/1.1 400 Bad Request\r\n", "\r\n",
         "bad request path\n"},
        {"HEAD /missing HTTP/1.1\r\nHost: a\r\n\r\n", "HTTP/1.1 404 Not Found\r\n",
         "\r\nContent-Length: 10\r\n", ""},
    };

    (void)state;
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        const char *text = serve(cases[i].raw);

        if (strncmp(text, cases[i].status_line, strlen(cases[i].status_line)) != 0 ||
            strstr(text, cases[i].has) == NULL || strcmp(body_of(text), cases[i].body) != 0)
            fail_msg("case %zu: %s\ngot\n%s", i, cases[i].raw, text);
    }
}

/* If-Modified-Since with the Last-Modified just sent gives 304 and no body. */
static void test_serve_not_modified(void **state)
{
    char stamp[64], raw[256];
    const char *lm, *text;

    (void)state;
    text = serve("GET /index.html HTTP/1.1\r\nHost: a\r\n\r\n");
    lm = strstr(text, "\r\nLast-Modified: ");
    assert_non_null(lm);
    lm += strlen("\r\nLast-Modified: ");
    assert_non_null(strstr(lm, "\r\n"));
    snprintf(stamp, sizeof(stamp), "%.*s", (int)(strstr(lm, "\r\n") - lm), lm);
    snprintf(raw, sizeof(raw),
             "GET /index.html HTTP/1.1\r\nHost: a\r\nIf-Modified-Since: %s\r\n\r\n", stamp);
    text = serve(raw);
    assert_memory_equal(text, "HTTP/1.1 304 Not Modified\r\n", 27);
    assert_string_equal(body_of(text), "");
    /* another date: the file again */
    text = serve("GET /index.html HTTP/1.1\r\nHost: a\r\n"
                 "If-Modified-Since: Thu, 01 Jan 1970 00:00:00 GMT\r\n\r\n");
    assert_memory_equal(text, "HTTP/1.1 200 OK\r\n", 17);
    assert_string_equal(body_of(text), "<h1>root</h1>\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resolve),
        cmocka_unit_test(test_resolve_file_with_trailing_slash),
        cmocka_unit_test(test_resolve_long_path),
        cmocka_unit_test(test_mime),
        cmocka_unit_test_teardown(test_serve, cleanup),
        cmocka_unit_test_teardown(test_serve_not_modified, cleanup),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
