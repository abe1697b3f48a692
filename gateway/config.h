/*
 * Configuration: one struct filled from defaults, then CHAT_* environment variables, then
 * command-line flags, from one table that --help prints. Checked once at start-up; after
 * that the struct is only read (passed as const).
 */
#ifndef CHAT_GATEWAY_CONFIG_H
#define CHAT_GATEWAY_CONFIG_H

#include <stddef.h>
#include <stdio.h>
#include <sys/socket.h>

#include "gateway/log.h"

/* Where Redis is: TCP host and port, or a Unix socket path (struct proto_redis_url's fields). */
struct gw_redis_addr {
    char *host;     /* NULL for a Unix socket */
    int port;       /* TCP port */
    char *path;     /* Unix socket path, or NULL */
    char *user;     /* ACL user for AUTH, or NULL */
    char *password; /* AUTH password, or NULL */
    int db;         /* SELECT index */
};

struct gw_config {
    char *listen;                        /* "host:port" as given */
    struct sockaddr_storage listen_addr; /* listen parsed */
    int listen_addrlen;                  /* bytes of listen_addr in use */
    char *public_dir;                    /* absolute, symlinks resolved */
    char **allowed_origins;              /* lower-cased origins; NULL-terminated */
    int any_origin;                      /* 1 when the list is "*" */
    char **subprotocols;                 /* server's preference order; NULL-terminated */
    size_t max_message;                  /* bytes of one WebSocket message */
    size_t max_header;                   /* bytes of a request line plus headers */
    size_t max_output;                   /* bytes queued to one client before it is closed */
    unsigned handshake_timeout_ms;       /* for a request head; also HTTP keep-alive idle */
    unsigned ping_interval_ms;           /* 0: no server pings */
    unsigned pong_timeout_ms;            /* wait for a pong before closing */
    unsigned close_timeout_ms;           /* wait for the peer's close frame */
    unsigned drain_timeout_ms;           /* longest shutdown */
    enum gw_log_level log_level;         /* messages above it are dropped */
    char *redis_url;                     /* as given, password included */
    struct gw_redis_addr redis;          /* redis_url parsed */
    char *gateway_id;                    /* names this gateway in welcome and health probes */
    size_t max_text;                     /* bytes of one chat message body */
    unsigned max_rooms;                  /* rooms one session may be in */
    unsigned rate;                       /* chat messages per second per session (refill) */
    unsigned burst;                      /* chat messages a session may send at once */
    unsigned workers;                    /* worker processes; 0: one worker, no master */
    int deflate;                         /* 1: accept permessage-deflate when offered */
    unsigned presence_limit;  /* local members above which presence goes only to its subject */
    char *tls_cert;           /* PEM certificate chain for wss://, or NULL */
    char *tls_key;            /* PEM private key of tls_cert, or NULL */
    unsigned max_connections; /* connections per worker (then 503 at accept) */
    unsigned max_per_ip;      /* connections per client address; 0: no limit */
    unsigned handshake_rate;  /* WebSocket handshakes per second per address; 0: no limit */
    char *trusted_proxies;    /* CIDRs whose X-Forwarded-For is believed, or NULL */
    char *token_secret;       /* HS256 key of connect tokens, or NULL: tokens off */
    char *token_secret_file;  /* where token_secret was read from, or NULL */
    int token_optional;       /* 1: /ws admits clients without a token, as guests */
    unsigned token_leeway_ms; /* clock skew allowed on a token's exp and nbf */
};

/* Outcome of gw_config_load besides errors. */
enum gw_config_result {
    GW_CONFIG_RUN = 0, /* start the server */
    GW_CONFIG_HELP,    /* --help was given: print gw_config_usage and exit 0 */
    GW_CONFIG_VERSION, /* --version was given */
};

/* Fill cfg with the defaults. Pair with gw_config_clear. */
void gw_config_init(struct gw_config *cfg);

/* Free what cfg owns; cfg may be initialised again afterwards. */
void gw_config_clear(struct gw_config *cfg);

/*
 * Apply env (a NULL-terminated "NAME=value" array, as environ; may be NULL), then the flags
 * in argv[1..argc) ("--flag value" or "--flag=value"), then check the whole. Returns a
 * gw_config_result, or -1 with a one-line message in err (errlen bytes) naming the flag or
 * variable and the bad value.
 */
int gw_config_load(struct gw_config *cfg, int argc, char *const argv[], char *const env[],
                   char *err, size_t errlen);

/* Print the flags, their variables, defaults and meaning. */
void gw_config_usage(FILE *out);

/*
 * Parsers shared with the tools and tests. Each returns 0, or -1 for a malformed value.
 * Sizes: a number with an optional unit (k, KiB, m, MiB, g, GiB; case-insensitive).
 * Durations: a number with an optional unit (ms, s, m, h); a bare number means seconds.
 */
int gw_config_parse_size(const char *s, size_t *out);
int gw_config_parse_duration(const char *s, unsigned *out_ms);

/*
 * Parse a Redis location with proto_redis_url_parse (proto/redisurl.h, which lists the forms
 * and limits): redis://[[user]:password@]host[:port][/db] (IPv6 hosts in []),
 * unix:///path/to.sock[?db=N], or an absolute socket path. Fills *addr (strings owned by it;
 * free with gw_config_redis_clear). Returns 0, or -1 for a malformed value with *addr empty.
 */
int gw_config_parse_redis(const char *url, struct gw_redis_addr *addr);
void gw_config_redis_clear(struct gw_redis_addr *addr);

#endif
