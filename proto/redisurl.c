#include "proto/redisurl.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "proto/xalloc.h"

void proto_redis_url_clear(struct proto_redis_url *u)
{
    free(u->host);
    free(u->path);
    free(u->user);
    free(u->password);
    memset(u, 0, sizeof(*u));
}

/* A database index from 0 to PROTO_REDIS_DB_MAX filling s; "" leaves *db as it is. */
static int parse_db(const char *s, int *db)
{
    char *end;
    long v;

    if (*s == '\0')
        return 0;
    errno = 0;
    v = strtol(s, &end, 10);
    if (!isdigit((unsigned char)*s) || *end || errno || v > PROTO_REDIS_DB_MAX)
        return -1;
    *db = (int)v;
    return 0;
}

/* /path/to.sock[?db=N] */
static int parse_unix(const char *path, struct proto_redis_url *u)
{
    const char *q = strchr(path, '?');
    size_t len = q ? (size_t)(q - path) : strlen(path);

    if (path[0] != '/' || len < 2 || len > PROTO_REDIS_PATH_MAX)
        return -1;
    if (q && (strncmp(q, "?db=", 4) != 0 || parse_db(q + 4, &u->db) < 0))
        return -1;
    u->path = xstrndup(path, len);
    return 0;
}

/* The port after the colon, in s[0..len): 1 to 65535. */
static int parse_port(const char *s, size_t len, int *port)
{
    char buf[8];
    char *end;

    if (len == 0 || len >= sizeof(buf))
        return -1;
    memcpy(buf, s, len);
    buf[len] = '\0';
    long v = strtol(buf, &end, 10);
    if (*end || v < 1 || v > 65535)
        return -1;
    *port = (int)v;
    return 0;
}

/* host[:port] or [v6]:port, in s[0..len). */
static int parse_hostport(const char *s, size_t len, struct proto_redis_url *u)
{
    const char *host = s, *colon;
    size_t hlen;

    u->port = PROTO_REDIS_PORT;
    if (len > 0 && s[0] == '[') {
        const char *close = memchr(s, ']', len);
        if (close == NULL)
            return -1;
        host = s + 1;
        hlen = (size_t)(close - host);
        colon = close + 1 < s + len ? close + 1 : NULL;
        if (colon && *colon != ':')
            return -1;
    } else {
        colon = memchr(s, ':', len);
        hlen = colon ? (size_t)(colon - s) : len;
    }
    if (hlen == 0 || hlen > PROTO_REDIS_HOST_MAX)
        return -1;
    if (colon && parse_port(colon + 1, (size_t)(s + len - colon - 1), &u->port) < 0)
        return -1;
    u->host = xstrndup(host, hlen);
    return 0;
}

/* [user]:password in s[0..len). */
static int parse_userinfo(const char *s, size_t len, struct proto_redis_url *u)
{
    const char *colon = memchr(s, ':', len);

    if (colon == NULL)
        return -1; /* a password is required; "user@" alone means nothing to AUTH */
    if (colon > s)
        u->user = xstrndup(s, (size_t)(colon - s));
    u->password = xstrndup(colon + 1, (size_t)(s + len - colon - 1));
    return u->password[0] ? 0 : -1;
}

/* What follows "redis://": [[user]:password@]host[:port][/db]. The last @ before the first
 * / ends the userinfo, so a password may hold @ and :. */
static int parse_tcp(const char *p, struct proto_redis_url *u)
{
    const char *slash = strchr(p, '/');
    size_t auth_len = slash ? (size_t)(slash - p) : strlen(p);
    const char *at = memrchr(p, '@', auth_len);

    if (at) {
        if (parse_userinfo(p, (size_t)(at - p), u) < 0)
            return -1;
        auth_len -= (size_t)(at + 1 - p);
        p = at + 1;
    }
    if (parse_hostport(p, auth_len, u) < 0)
        return -1;
    return slash ? parse_db(slash + 1, &u->db) : 0;
}

int proto_redis_url_parse(const char *url, struct proto_redis_url *out)
{
    int rc;

    memset(out, 0, sizeof(*out));
    if (url[0] == '/')
        rc = parse_unix(url, out);
    else if (strncmp(url, "unix://", 7) == 0)
        rc = parse_unix(url + 7, out);
    else if (strncmp(url, "redis://", 8) == 0)
        rc = parse_tcp(url + 8, out);
    else
        rc = -1;
    if (rc < 0)
        proto_redis_url_clear(out);
    return rc;
}
