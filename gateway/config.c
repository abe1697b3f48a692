#include "gateway/config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/util.h>

#include "gateway/util.h"
#include "proto/jwt.h"
#include "proto/proto.h"

#include "proto/redisurl.h"

/* How an option's text becomes a field; returns 0 or -1 (err filled for a bad value). */
typedef int (*option_parse_cb)(struct gw_config *cfg, size_t offset, const char *value);

struct option {
    const char *flag;     /* without the leading "--" */
    const char *env;      /* CHAT_* twin */
    const char *fallback; /* default, as text; NULL for "none" */
    const char *help;
    option_parse_cb parse;
    size_t offset; /* of the field in struct gw_config */
};

/* ---- value parsers ---------------------------------------------------------------------- */

static int parse_number(const char *s, uint64_t *num, const char **unit)
{
    char *end;

    if (!isdigit((unsigned char)*s))
        return -1;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0)
        return -1;
    *num = v;
    *unit = end;
    return 0;
}

int gw_config_parse_size(const char *s, size_t *out)
{
    static const struct {
        const char *name;
        uint64_t mult;
    } units[] = {{"", 1},         {"b", 1},         {"k", 1024},      {"kb", 1024},
                 {"kib", 1024},   {"m", 1u << 20},  {"mb", 1u << 20}, {"mib", 1u << 20},
                 {"g", 1u << 30}, {"gb", 1u << 30}, {"gib", 1u << 30}};
    uint64_t v;
    const char *unit;

    if (parse_number(s, &v, &unit) < 0)
        return -1;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcasecmp(unit, units[i].name) == 0) {
            if (v > SIZE_MAX / units[i].mult)
                return -1;
            *out = (size_t)(v * units[i].mult);
            return 0;
        }
    }
    return -1;
}

int gw_config_parse_duration(const char *s, unsigned *out_ms)
{
    static const struct {
        const char *name;
        uint64_t mult;
    } units[] = {{"", 1000}, {"s", 1000}, {"ms", 1}, {"m", 60000}, {"h", 3600000}};
    uint64_t v;
    const char *unit;

    if (parse_number(s, &v, &unit) < 0)
        return -1;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcmp(unit, units[i].name) == 0) {
            if (v > UINT_MAX / units[i].mult)
                return -1;
            *out_ms = (unsigned)(v * units[i].mult);
            return 0;
        }
    }
    return -1;
}

#define FIELD(cfg, offset, type) ((type *)(void *)((char *)(cfg) + (offset)))

static int parse_size_field(struct gw_config *cfg, size_t offset, const char *value)
{
    size_t v;

    if (gw_config_parse_size(value, &v) < 0 || v == 0)
        return -1;
    *FIELD(cfg, offset, size_t) = v;
    return 0;
}

static int parse_duration_field(struct gw_config *cfg, size_t offset, const char *value)
{
    return gw_config_parse_duration(value, FIELD(cfg, offset, unsigned));
}

static int parse_string_field(struct gw_config *cfg, size_t offset, const char *value)
{
    char **field = FIELD(cfg, offset, char *);

    if (*value == '\0')
        return -1;
    free(*field);
    *field = xstrdup(value);
    return 0;
}

/* A string that may be empty: empty means "not set" (NULL). */
static int parse_optional_field(struct gw_config *cfg, size_t offset, const char *value)
{
    char **field = FIELD(cfg, offset, char *);

    free(*field);
    *field = *value ? xstrdup(value) : NULL;
    return 0;
}

static int parse_level_field(struct gw_config *cfg, size_t offset, const char *value)
{
    return gw_log_parse_level(value, FIELD(cfg, offset, enum gw_log_level));
}

static void free_list(char **list)
{
    for (char **p = list; p && *p; p++)
        free(*p);
    free(list);
}

/* Split "a, b,c" into a NULL-terminated array of trimmed, non-empty elements. */
static char **split_list(const char *value, int lower)
{
    size_t n = 0, cap = 4;
    char **list = xcalloc(cap, sizeof(*list));
    const char *p = value, *end = value + strlen(value), *elem;
    size_t len;

    while (gw_util_list_next(&p, end, &elem, &len)) {
        if (len > 0) {
            if (n + 2 > cap) {
                cap *= 2;
                list = xrealloc(list, cap * sizeof(*list));
            }
            list[n] = xstrndup(elem, len);
            for (char *c = list[n]; lower && *c; c++)
                *c = (char)tolower((unsigned char)*c);
            list[++n] = NULL;
        }
    }
    return list;
}

static int parse_origins_field(struct gw_config *cfg, size_t offset, const char *value)
{
    char **list = split_list(value, 1);

    (void)offset;
    for (char **p = list; *p; p++) {
        if (strcmp(*p, "*") == 0)
            continue;
        /* An origin is scheme://host[:port], nothing after. */
        const char *sep = strstr(*p, "://");
        if (sep == NULL || sep == *p || sep[3] == '\0' || strchr(sep + 3, '/')) {
            free_list(list);
            return -1;
        }
    }
    free_list(cfg->allowed_origins);
    cfg->allowed_origins = list;
    cfg->any_origin = list[0] && strcmp(list[0], "*") == 0 && list[1] == NULL;
    if (!cfg->any_origin) {
        for (char **p = list; *p; p++)
            if (strcmp(*p, "*") == 0)
                return -1; /* "*" mixed with origins is a mistake, not a wildcard */
    }
    return 0;
}

static int parse_subprotocols_field(struct gw_config *cfg, size_t offset, const char *value)
{
    char **list = split_list(value, 0);

    (void)offset;
    for (char **p = list; *p; p++) {
        for (const char *c = *p; *c; c++) {
            /* RFC 7230 token characters only */
            if (!isalnum((unsigned char)*c) && !strchr("!#$%&'*+-.^_`|~", *c)) {
                free_list(list);
                return -1;
            }
        }
    }
    free_list(cfg->subprotocols);
    cfg->subprotocols = list;
    return 0;
}

static int parse_count_field(struct gw_config *cfg, size_t offset, const char *value)
{
    char *end;
    unsigned long v;

    errno = 0;
    v = strtoul(value, &end, 10);
    if (!isdigit((unsigned char)*value) || *end || errno || v == 0 || v > 1000000)
        return -1;
    *FIELD(cfg, offset, unsigned) = (unsigned)v;
    return 0;
}

static int parse_workers_field(struct gw_config *cfg, size_t offset, const char *value)
{
    char *end;
    unsigned long v;
    long cpus;

    if (*value == '\0') {
        cpus = sysconf(_SC_NPROCESSORS_ONLN);
        *FIELD(cfg, offset, unsigned) = cpus > 0 && cpus <= 64 ? (unsigned)cpus : 1;
        return 0;
    }
    errno = 0;
    v = strtoul(value, &end, 10);
    if (!isdigit((unsigned char)*value) || *end || errno || v > 256)
        return -1;
    *FIELD(cfg, offset, unsigned) = (unsigned)v;
    return 0;
}

/* A count where 0 means "no limit". */
static int parse_limit_field(struct gw_config *cfg, size_t offset, const char *value)
{
    if (strcmp(value, "0") == 0) {
        *FIELD(cfg, offset, unsigned) = 0;
        return 0;
    }
    return parse_count_field(cfg, offset, value);
}

static int parse_switch_field(struct gw_config *cfg, size_t offset, const char *value)
{
    int *field = FIELD(cfg, offset, int);

    if (strcmp(value, "on") == 0 || strcmp(value, "1") == 0 || strcmp(value, "yes") == 0)
        *field = 1;
    else if (strcmp(value, "off") == 0 || strcmp(value, "0") == 0 || strcmp(value, "no") == 0)
        *field = 0;
    else
        return -1;
    return 0;
}

static int parse_token_mode(struct gw_config *cfg, size_t offset, const char *value)
{
    if (strcmp(value, "required") == 0)
        *FIELD(cfg, offset, int) = 0;
    else if (strcmp(value, "optional") == 0)
        *FIELD(cfg, offset, int) = 1;
    else
        return -1;
    return 0;
}

static int parse_gateway_id(struct gw_config *cfg, size_t offset, const char *value)
{
    size_t len = strlen(value);

    (void)offset;
    if (len == 0) {
        char host[64] = "gateway";

        gethostname(host, sizeof(host) - 1);
        host[sizeof(host) - 1] = '\0';
        free(cfg->gateway_id);
        cfg->gateway_id = xmalloc(96);
        snprintf(cfg->gateway_id, 96, "%.40s-%ld", host, (long)getpid());
        len = strlen(cfg->gateway_id);
        value = cfg->gateway_id;
    }
    if (len > 48 || !proto_is_room(value, len))
        return -1;
    if (value != cfg->gateway_id) {
        free(cfg->gateway_id);
        cfg->gateway_id = xstrdup(value);
    }
    return 0;
}

void gw_config_redis_clear(struct gw_redis_addr *addr)
{
    free(addr->host);
    free(addr->path);
    free(addr->user);
    free(addr->password);
    memset(addr, 0, sizeof(*addr));
}

/* The gateway keeps its own struct gw_redis_addr (gateway/bus.c reads it); the parsing is
 * proto_redis_url_parse's, shared with chat-tail. The strings move to addr. */
int gw_config_parse_redis(const char *url, struct gw_redis_addr *addr)
{
    struct proto_redis_url u;

    memset(addr, 0, sizeof(*addr));
    if (proto_redis_url_parse(url, &u) < 0)
        return -1;
    addr->host = u.host;
    addr->port = u.port;
    addr->path = u.path;
    addr->user = u.user;
    addr->password = u.password;
    addr->db = u.db;
    return 0;
}

static int parse_redis_field(struct gw_config *cfg, size_t offset, const char *value)
{
    struct gw_redis_addr addr;

    (void)offset;
    if (gw_config_parse_redis(value, &addr) < 0)
        return -1;
    gw_config_redis_clear(&cfg->redis);
    cfg->redis = addr;
    free(cfg->redis_url);
    cfg->redis_url = xstrdup(value);
    return 0;
}

/* ---- the table -------------------------------------------------------------------------- */

#define OFF(f) offsetof(struct gw_config, f)

static const struct option options[] = {
    {"listen", "CHAT_LISTEN", "127.0.0.1:8080",
     "address and port to listen on ([::1]:8080 for IPv6)", parse_string_field, OFF(listen)},
    {"public-dir", "CHAT_PUBLIC_DIR", "public", "directory of the page served at /",
     parse_string_field, OFF(public_dir)},
    {"allowed-origins", "CHAT_ALLOWED_ORIGINS", "",
     "origins allowed to open WebSockets, comma-separated (scheme://host[:port]); "
     "empty: the request's own host only; *: any",
     parse_origins_field, 0},
    {"subprotocols", "CHAT_SUBPROTOCOLS", "",
     "WebSocket subprotocols offered, in order of preference, comma-separated",
     parse_subprotocols_field, 0},
    {"max-message", "CHAT_MAX_MESSAGE", "64KiB", "largest WebSocket message accepted (then 1009)",
     parse_size_field, OFF(max_message)},
    {"max-header", "CHAT_MAX_HEADER", "8KiB", "largest request line plus headers (then 431)",
     parse_size_field, OFF(max_header)},
    {"max-output", "CHAT_MAX_OUTPUT", "1MiB",
     "output queued to one client before it is closed as a slow reader (1008)", parse_size_field,
     OFF(max_output)},
    {"handshake-timeout", "CHAT_HANDSHAKE_TIMEOUT", "10s",
     "time for a request head to arrive (then 408); also HTTP keep-alive idle time",
     parse_duration_field, OFF(handshake_timeout_ms)},
    {"ping-interval", "CHAT_PING_INTERVAL", "30s", "server ping to each WebSocket (0: never)",
     parse_duration_field, OFF(ping_interval_ms)},
    {"pong-timeout", "CHAT_PONG_TIMEOUT", "10s", "wait for a pong before closing (1008)",
     parse_duration_field, OFF(pong_timeout_ms)},
    {"close-timeout", "CHAT_CLOSE_TIMEOUT", "5s",
     "wait for the client's close frame before dropping the connection", parse_duration_field,
     OFF(close_timeout_ms)},
    {"drain-timeout", "CHAT_DRAIN_TIMEOUT", "10s",
     "on SIGTERM/SIGINT, longest wait for sessions to close", parse_duration_field,
     OFF(drain_timeout_ms)},
    {"log-level", "CHAT_LOG_LEVEL", "info", "error, warn, info or debug", parse_level_field,
     OFF(log_level)},
    {"workers", "CHAT_WORKERS", "", "worker processes (empty: one per CPU; 0: no master)",
     parse_workers_field, OFF(workers)},
    {"tls-cert", "CHAT_TLS_CERT", "",
     "PEM certificate chain: serve wss:// and https:// (with --tls-key)", parse_optional_field,
     OFF(tls_cert)},
    {"tls-key", "CHAT_TLS_KEY", "", "PEM private key of --tls-cert", parse_optional_field,
     OFF(tls_key)},
    {"max-connections", "CHAT_MAX_CONNECTIONS", "15000",
     "connections per worker (then 503 at accept)", parse_count_field, OFF(max_connections)},
    {"max-per-ip", "CHAT_MAX_PER_IP", "0", "connections per client address, 0: no limit (then 429)",
     parse_limit_field, OFF(max_per_ip)},
    {"handshake-rate", "CHAT_HANDSHAKE_RATE", "0",
     "WebSocket handshakes per second per address (bursts of twice that), 0: no limit",
     parse_limit_field, OFF(handshake_rate)},
    {"trusted-proxies", "CHAT_TRUSTED_PROXIES", "",
     "proxies (address[/bits], comma-separated) whose X-Forwarded-For names the client",
     parse_optional_field, OFF(trusted_proxies)},
    {"token-secret", "CHAT_TOKEN_SECRET", "",
     "HS256 key (32 bytes or more) of connect tokens: /ws then wants a token (empty: off)",
     parse_optional_field, OFF(token_secret)},
    {"token-secret-file", "CHAT_TOKEN_SECRET_FILE", "",
     "read --token-secret from this file (a trailing newline is dropped)", parse_optional_field,
     OFF(token_secret_file)},
    {"tokens", "CHAT_TOKENS", "required",
     "with a token secret: required (401 without one) or optional (guests admitted too)",
     parse_token_mode, OFF(token_optional)},
    {"token-leeway", "CHAT_TOKEN_LEEWAY", "30s", "clock skew allowed on a token's exp and nbf",
     parse_duration_field, OFF(token_leeway_ms)},
    {"presence-limit", "CHAT_PRESENCE_LIMIT", "500",
     "rooms with more local members get presence events only for the client concerned",
     parse_count_field, OFF(presence_limit)},
    {"deflate", "CHAT_DEFLATE", "on",
     "permessage-deflate (RFC 7692) when a client offers it: on or off", parse_switch_field,
     OFF(deflate)},
    {"redis", "CHAT_REDIS_URL", "redis://127.0.0.1:6379",
     "Redis: redis://[[user]:password@]host[:port][/db], unix:///path.sock or /path.sock",
     parse_redis_field, 0},
    {"gateway-id", "CHAT_GATEWAY_ID", "", "this gateway's name (empty: hostname-pid)",
     parse_gateway_id, 0},
    {"max-text", "CHAT_MAX_TEXT", "16KiB", "largest chat message body (then too_large)",
     parse_size_field, OFF(max_text)},
    {"max-rooms", "CHAT_MAX_ROOMS", "32", "rooms one session may be in (then too_many_rooms)",
     parse_count_field, OFF(max_rooms)},
    {"rate", "CHAT_RATE", "20", "chat messages per second per session, sustained",
     parse_count_field, OFF(rate)},
    {"burst", "CHAT_BURST", "40", "chat messages a session may send at once (then rate_limited)",
     parse_count_field, OFF(burst)},
};

#define N_OPTIONS (sizeof(options) / sizeof(options[0]))

static int apply(struct gw_config *cfg, const struct option *opt, const char *value,
                 const char *source, char *err, size_t errlen)
{
    if (opt->parse(cfg, opt->offset, value) < 0) {
        snprintf(err, errlen, "invalid value \"%s\" for %s", value, source);
        return -1;
    }
    return 0;
}

void gw_config_init(struct gw_config *cfg)
{
    char err[256];

    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < N_OPTIONS; i++) {
        int rc = apply(cfg, &options[i], options[i].fallback, options[i].flag, err, sizeof(err));

        /* Empty defaults mean "unset" for strings and lists. */
        if (rc < 0 && *options[i].fallback != '\0')
            abort();
    }
    if (cfg->allowed_origins == NULL)
        cfg->allowed_origins = xcalloc(1, sizeof(char *));
    if (cfg->subprotocols == NULL)
        cfg->subprotocols = xcalloc(1, sizeof(char *));
}

void gw_config_clear(struct gw_config *cfg)
{
    free(cfg->listen);
    free(cfg->public_dir);
    free(cfg->redis_url);
    free(cfg->gateway_id);
    free(cfg->tls_cert);
    free(cfg->tls_key);
    free(cfg->trusted_proxies);
    free(cfg->token_secret);
    free(cfg->token_secret_file);
    gw_config_redis_clear(&cfg->redis);
    free_list(cfg->allowed_origins);
    free_list(cfg->subprotocols);
    memset(cfg, 0, sizeof(*cfg));
}

static int load_env(struct gw_config *cfg, char *const env[], char *err, size_t errlen)
{
    for (size_t i = 0; env && env[i]; i++) {
        if (strncmp(env[i], "CHAT_", 5) != 0)
            continue;
        for (size_t j = 0; j < N_OPTIONS; j++) {
            size_t n = strlen(options[j].env);

            if (strncmp(env[i], options[j].env, n) == 0 && env[i][n] == '=') {
                if (apply(cfg, &options[j], env[i] + n + 1, options[j].env, err, errlen) < 0)
                    return -1;
            }
        }
    }
    return 0;
}

static const struct option *find_flag(const char *name, size_t len)
{
    for (size_t i = 0; i < N_OPTIONS; i++)
        if (strlen(options[i].flag) == len && strncmp(options[i].flag, name, len) == 0)
            return &options[i];
    return NULL;
}

static int load_args(struct gw_config *cfg, int argc, char *const argv[], char *err, size_t errlen)
{
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *value;
        char source[64];

        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0)
            return GW_CONFIG_HELP;
        if (strcmp(arg, "--version") == 0)
            return GW_CONFIG_VERSION;
        if (strncmp(arg, "--", 2) != 0) {
            snprintf(err, errlen, "unexpected argument \"%s\" (see --help)", arg);
            return -1;
        }
        const char *eq = strchr(arg + 2, '=');
        size_t len = eq ? (size_t)(eq - arg - 2) : strlen(arg + 2);
        const struct option *opt = find_flag(arg + 2, len);
        if (opt == NULL) {
            snprintf(err, errlen, "unknown option \"%.*s\" (see --help)", (int)len + 2, arg);
            return -1;
        }
        if (eq) {
            value = eq + 1;
        } else if (i + 1 < argc) {
            value = argv[++i];
        } else {
            snprintf(err, errlen, "option --%s needs a value", opt->flag);
            return -1;
        }
        snprintf(source, sizeof(source), "--%s", opt->flag);
        if (apply(cfg, opt, value, source, err, errlen) < 0)
            return -1;
    }
    return GW_CONFIG_RUN;
}

/* host:port or [v6]:port with a port from 1 to 65535; an IPv6 address needs brackets. */
static int has_port(const char *listen)
{
    const char *colon = strrchr(listen, ':');

    if (colon == NULL || colon[1] == '\0' || atoi(colon + 1) <= 0 || atoi(colon + 1) > 65535)
        return 0;
    if (listen[0] == '[')
        return colon > listen && colon[-1] == ']';
    return strchr(listen, ':') == colon;
}

static int check_durations(const struct gw_config *cfg, char *err, size_t errlen)
{
    const char *bad = NULL;

    if (cfg->handshake_timeout_ms == 0)
        bad = "--handshake-timeout (CHAT_HANDSHAKE_TIMEOUT)";
    else if (cfg->close_timeout_ms == 0)
        bad = "--close-timeout (CHAT_CLOSE_TIMEOUT)";
    else if (cfg->ping_interval_ms && cfg->pong_timeout_ms == 0)
        bad = "--pong-timeout (CHAT_PONG_TIMEOUT)";
    if (bad)
        snprintf(err, errlen, "%s must be above 0", bad);
    return bad ? -1 : 0;
}

/* Read the token secret from its file, if one is named, and check its length. */
static int load_token_secret(struct gw_config *cfg, char *err, size_t errlen)
{
    char buf[PROTO_JWT_SECRET_MAX + 1];
    const char *why = NULL;
    long n;

    if (cfg->token_secret_file) {
        if (cfg->token_secret) {
            snprintf(err, errlen, "give --token-secret or --token-secret-file, not both");
            return -1;
        }
        n = proto_jwt_read_secret(cfg->token_secret_file, buf, &why);
        if (n >= 0 && strlen(buf) != (size_t)n)
            why = "holds a NUL";
        if (n < 0 || why) {
            snprintf(err, errlen, "--token-secret-file (CHAT_TOKEN_SECRET_FILE) \"%s\": %s",
                     cfg->token_secret_file, why);
            return -1;
        }
        cfg->token_secret = xstrdup(buf);
    }
    if (cfg->token_secret && strlen(cfg->token_secret) < PROTO_JWT_SECRET_MIN) {
        snprintf(err, errlen, "the token secret must be at least %d bytes (HS256)",
                 PROTO_JWT_SECRET_MIN);
        return -1;
    }
    return 0;
}

static int check(struct gw_config *cfg, char *err, size_t errlen)
{
    struct stat st;
    char *real;

    cfg->listen_addrlen = (int)sizeof(cfg->listen_addr);
    if (!has_port(cfg->listen) ||
        evutil_parse_sockaddr_port(cfg->listen, (struct sockaddr *)&cfg->listen_addr,
                                   &cfg->listen_addrlen) < 0) {
        snprintf(err, errlen,
                 "invalid value \"%s\" for --listen (CHAT_LISTEN): want host:port or [v6]:port",
                 cfg->listen);
        return -1;
    }
    real = realpath(cfg->public_dir, NULL);
    if (real == NULL || stat(real, &st) < 0 || !S_ISDIR(st.st_mode)) {
        snprintf(err, errlen,
                 "invalid value \"%s\" for --public-dir (CHAT_PUBLIC_DIR): not a readable "
                 "directory",
                 cfg->public_dir);
        free(real);
        return -1;
    }
    free(cfg->public_dir);
    cfg->public_dir = real;
    if (cfg->max_message > (1u << 30)) {
        snprintf(err, errlen, "--max-message (CHAT_MAX_MESSAGE) must be at most 1GiB");
        return -1;
    }
    if (cfg->max_header < 256 || cfg->max_header > (1u << 20)) {
        snprintf(err, errlen, "--max-header (CHAT_MAX_HEADER) must be from 256B to 1MiB");
        return -1;
    }
    if (!cfg->tls_cert != !cfg->tls_key) {
        snprintf(err, errlen,
                 "--tls-cert (CHAT_TLS_CERT) and --tls-key (CHAT_TLS_KEY) go "
                 "together");
        return -1;
    }
    if (load_token_secret(cfg, err, errlen) < 0)
        return -1;
    return check_durations(cfg, err, errlen);
}

int gw_config_load(struct gw_config *cfg, int argc, char *const argv[], char *const env[],
                   char *err, size_t errlen)
{
    int rc;

    if (load_env(cfg, env, err, errlen) < 0)
        return -1;
    rc = load_args(cfg, argc, argv, err, errlen);
    if (rc != GW_CONFIG_RUN)
        return rc;
    return check(cfg, err, errlen) < 0 ? -1 : GW_CONFIG_RUN;
}

void gw_config_usage(FILE *out)
{
    fprintf(out, "usage: chat-gateway [options]\n\n"
                 "Each option may also be set by its environment variable; a flag wins.\n\n");
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const struct option *o = &options[i];

        fprintf(out, "  --%-18s %-23s default: %s\n      %s\n", o->flag, o->env,
                *o->fallback ? o->fallback : "(empty)", o->help);
    }
    fprintf(out, "  --help, --version\n");
}
