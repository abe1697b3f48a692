/*
 * Where Redis is, from one URL: redis://[[user]:password@]host[:port][/db] (an IPv6 host in
 * []), unix:///path/to.sock[?db=N], or an absolute socket path. Shared by the gateway and
 * chat-tail, so that both accept the same forms. Parsing only: no socket, no logging.
 */
#ifndef CHAT_PROTO_REDISURL_H
#define CHAT_PROTO_REDISURL_H

#define PROTO_REDIS_PORT 6379       /* when the URL names none */
#define PROTO_REDIS_HOST_MAX 255    /* bytes of a host name or address */
#define PROTO_REDIS_PATH_MAX 107    /* bytes of a socket path (sun_path holds 108 with NUL) */
#define PROTO_REDIS_DB_MAX 1000000L /* highest database index accepted */

/* A parsed Redis URL, held by value; the strings are owned by it. */
struct proto_redis_url {
    char *host;     /* TCP host, without brackets; NULL for a Unix socket */
    int port;       /* TCP port, 1 to 65535 (PROTO_REDIS_PORT unless given); 0 for a socket */
    char *path;     /* Unix socket path; NULL for TCP */
    char *user;     /* ACL user for AUTH, or NULL */
    char *password; /* AUTH password (never ""), or NULL for no AUTH */
    int db;         /* SELECT index, 0 to PROTO_REDIS_DB_MAX */
};

/*
 * Parse url (NUL-terminated, borrowed) into *out, which is zeroed first. Userinfo needs a
 * password ("user@" alone is refused); an empty db ("host/" or "?db=") means 0. Returns 0
 * with *out filled (pair with proto_redis_url_clear), or -1 for a malformed URL with *out
 * left empty (every pointer NULL). Strings are copied with xstrndup: out of memory aborts.
 */
int proto_redis_url_parse(const char *url, struct proto_redis_url *out);

/* Free what u owns and zero it; an empty (zeroed) u is fine. */
void proto_redis_url_clear(struct proto_redis_url *u);

#endif
