/*
 * Unit tests of gateway/config.h: defaults, CHAT_* twins, precedence (flag > env > default),
 * both flag forms, the size and duration parsers, origin and subprotocol lists, and the
 * errors of gw_config_load, each of which must name the flag or variable at fault.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "gateway/config.h"

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))
#define MAX_ARGS 12

/* A scratch directory (symlinks resolved) with a sub-directory "pub", a link "link" to it
 * and a regular file "file". */
static char tmp_root[256];
static char tmp_pub[300], tmp_link[300], tmp_file[300];

static int group_setup(void **state)
{
    char templ[] = "/tmp/test_config.XXXXXX";
    char *real;
    FILE *f;

    (void)state;
    if (mkdtemp(templ) == NULL || (real = realpath(templ, NULL)) == NULL)
        return -1;
    snprintf(tmp_root, sizeof(tmp_root), "%s", real);
    free(real);
    snprintf(tmp_pub, sizeof(tmp_pub), "%s/pub", tmp_root);
    snprintf(tmp_link, sizeof(tmp_link), "%s/link", tmp_root);
    snprintf(tmp_file, sizeof(tmp_file), "%s/file", tmp_root);
    if (mkdir(tmp_pub, 0755) < 0 || symlink("pub", tmp_link) < 0)
        return -1;
    if ((f = fopen(tmp_file, "w")) == NULL)
        return -1;
    fclose(f);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    unlink(tmp_link);
    unlink(tmp_file);
    rmdir(tmp_pub);
    rmdir(tmp_root);
    return 0;
}

/* The configuration under test: load() clears it before filling it again, and the teardown of
 * every test clears it, so a failed assertion leaks nothing. */
static struct gw_config cfg;

static int clear_cfg(void **state)
{
    (void)state;
    gw_config_clear(&cfg);
    return 0;
}

/*
 * Clear and initialise cfg, then gw_config_load it with argv = {"chat-gateway", args...} and
 * env = {"CHAT_PUBLIC_DIR=<tmp_pub>", env...} (NULL-terminated lists, either may be NULL).
 */
static int load(const char *const *args, const char *const *env, char *err, size_t errlen)
{
    char public_env[320];
    char *argv[MAX_ARGS + 2];
    char *envp[MAX_ARGS + 2];
    int argc = 0, envc = 0;

    snprintf(public_env, sizeof(public_env), "CHAT_PUBLIC_DIR=%s", tmp_pub);
    argv[argc++] = (char *)"chat-gateway";
    for (size_t i = 0; args && args[i]; i++) {
        assert_true(argc < MAX_ARGS);
        argv[argc++] = (char *)args[i];
    }
    argv[argc] = NULL;
    envp[envc++] = public_env;
    for (size_t i = 0; env && env[i]; i++) {
        assert_true(envc < MAX_ARGS);
        envp[envc++] = (char *)env[i];
    }
    envp[envc] = NULL;
    err[0] = '\0';
    gw_config_clear(&cfg);
    gw_config_init(&cfg);
    return gw_config_load(&cfg, argc, argv, envp, err, errlen);
}

static size_t list_len(char *const *list)
{
    size_t n = 0;

    while (list[n])
        n++;
    return n;
}

static int port_of(void)
{
    const struct sockaddr *sa = (const struct sockaddr *)&cfg.listen_addr;

    if (sa->sa_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)(const void *)sa)->sin_port);
    return ntohs(((const struct sockaddr_in6 *)(const void *)sa)->sin6_port);
}

/* ---- defaults, precedence, forms ----------------------------------------------------------- */

static void test_defaults(void **state)
{
    (void)state;
    gw_config_init(&cfg);
    assert_string_equal(cfg.listen, "127.0.0.1:8080");
    assert_string_equal(cfg.public_dir, "public");
    assert_non_null(cfg.allowed_origins);
    assert_null(cfg.allowed_origins[0]);
    assert_int_equal(cfg.any_origin, 0);
    assert_non_null(cfg.subprotocols);
    assert_null(cfg.subprotocols[0]);
    assert_int_equal(cfg.max_message, 65536);
    assert_int_equal(cfg.max_header, 8192);
    assert_int_equal(cfg.max_output, 1 << 20);
    assert_int_equal(cfg.handshake_timeout_ms, 10000);
    assert_int_equal(cfg.ping_interval_ms, 30000);
    assert_int_equal(cfg.pong_timeout_ms, 10000);
    assert_int_equal(cfg.close_timeout_ms, 5000);
    assert_int_equal(cfg.drain_timeout_ms, 10000);
    assert_int_equal(cfg.log_level, GW_LOG_INFO);
    /* cleared, the struct may be initialised again */
    gw_config_clear(&cfg);
    assert_null(cfg.listen);
    gw_config_init(&cfg);
    assert_string_equal(cfg.listen, "127.0.0.1:8080");
}

static void test_load_defaults(void **state)
{
    char err[256];

    (void)state;
    assert_int_equal(load(NULL, NULL, err, sizeof(err)), GW_CONFIG_RUN);
    assert_string_equal(cfg.public_dir, tmp_pub);
    assert_int_equal(((struct sockaddr *)&cfg.listen_addr)->sa_family, AF_INET);
    assert_int_equal(cfg.listen_addrlen, sizeof(struct sockaddr_in));
    assert_int_equal(port_of(), 8080);
    assert_int_equal(cfg.max_message, 65536);
}

/* The public directory is made absolute with symlinks resolved. */
static void test_public_dir_resolved(void **state)
{
    const char *args[] = {"--public-dir", tmp_link, NULL};
    char err[256];

    (void)state;
    assert_int_equal(load(args, NULL, err, sizeof(err)), GW_CONFIG_RUN);
    assert_string_equal(cfg.public_dir, tmp_pub);
}

static void test_env_twins(void **state)
{
    const char *env[] = {"CHAT_LISTEN=127.0.0.1:9001", "CHAT_ALLOWED_ORIGINS=https://a.example",
                         "CHAT_SUBPROTOCOLS=chat.v1",  "CHAT_MAX_MESSAGE=1k",
                         "CHAT_MAX_HEADER=4k",         "CHAT_MAX_OUTPUT=2m",
                         "CHAT_HANDSHAKE_TIMEOUT=3s",  "CHAT_PING_INTERVAL=4s",
                         "CHAT_PONG_TIMEOUT=5s",       "CHAT_CLOSE_TIMEOUT=6s",
                         "CHAT_DRAIN_TIMEOUT=7s",      NULL};
    const char *env2[] = {"CHAT_LOG_LEVEL=debug", NULL};
    char err[256];

    (void)state;
    assert_int_equal(load(NULL, env, err, sizeof(err)), GW_CONFIG_RUN);
    assert_string_equal(cfg.listen, "127.0.0.1:9001");
    assert_int_equal(port_of(), 9001);
    assert_int_equal(list_len(cfg.allowed_origins), 1);
    assert_string_equal(cfg.allowed_origins[0], "https://a.example");
    assert_int_equal(list_len(cfg.subprotocols), 1);
    assert_string_equal(cfg.subprotocols[0], "chat.v1");
    assert_int_equal(cfg.max_message, 1024);
    assert_int_equal(cfg.max_header, 4096);
    assert_int_equal(cfg.max_output, 2 << 20);
    assert_int_equal(cfg.handshake_timeout_ms, 3000);
    assert_int_equal(cfg.ping_interval_ms, 4000);
    assert_int_equal(cfg.pong_timeout_ms, 5000);
    assert_int_equal(cfg.close_timeout_ms, 6000);
    assert_int_equal(cfg.drain_timeout_ms, 7000);
    assert_int_equal(load(NULL, env2, err, sizeof(err)), GW_CONFIG_RUN);
    assert_int_equal(cfg.log_level, GW_LOG_DEBUG);
}

/* Variables that only look like ours are ignored. */
static void test_env_ignored(void **state)
{
    const char *env[] = {"PATH=/bin",
                         "CHAT_MAX_MESSAGEX=1k",
                         "CHAT_MAX_MESSAGE",
                         "XCHAT_MAX_MESSAGE=1k",
                         "chat_max_message=1k",
                         "CHAT_UNKNOWN=1",
                         NULL};
    char err[256];

    (void)state;
    assert_int_equal(load(NULL, env, err, sizeof(err)), GW_CONFIG_RUN);
    assert_int_equal(cfg.max_message, 65536);
}

struct precedence_case {
    const char *name;
    const char *args[5];
    const char *env[3];
    size_t max_message;
    unsigned ping_ms;
    const char *listen;
};

static const struct precedence_case precedence_cases[] = {
    {"default", {NULL}, {NULL}, 65536, 30000, "127.0.0.1:8080"},
    {"env",
     {NULL},
     {"CHAT_MAX_MESSAGE=2k", "CHAT_PING_INTERVAL=2s", NULL},
     2048,
     2000,
     "127.0.0.1:8080"},
    {"flag over env",
     {"--max-message", "3k", "--ping-interval=3s", NULL},
     {"CHAT_MAX_MESSAGE=2k", "CHAT_PING_INTERVAL=2s", NULL},
     3072,
     3000,
     "127.0.0.1:8080"},
    {"flag over default", {"--listen", "127.0.0.1:1", NULL}, {NULL}, 65536, 30000, "127.0.0.1:1"},
    {"flag over env, string",
     {"--listen=127.0.0.1:3", NULL},
     {"CHAT_LISTEN=127.0.0.1:2", NULL},
     65536,
     30000,
     "127.0.0.1:3"},
    {"last flag wins",
     {"--max-message=1k", "--max-message", "5k", NULL},
     {NULL},
     5120,
     30000,
     "127.0.0.1:8080"},
    {"last variable wins",
     {NULL},
     {"CHAT_MAX_MESSAGE=1k", "CHAT_MAX_MESSAGE=6k", NULL},
     6144,
     30000,
     "127.0.0.1:8080"},
    {"--flag=value", {"--max-message=7k", NULL}, {NULL}, 7168, 30000, "127.0.0.1:8080"},
    {"--flag value", {"--max-message", "7k", NULL}, {NULL}, 7168, 30000, "127.0.0.1:8080"},
    {"value with =",
     {"--ping-interval", "0", "--max-message=8k", NULL},
     {NULL},
     8192,
     0,
     "127.0.0.1:8080"},
};

static void test_precedence_and_forms(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_ELEMS(precedence_cases); i++) {
        const struct precedence_case *c = &precedence_cases[i];
        char err[256];
        int rc = load(c->args, c->env, err, sizeof(err));

        if (rc != GW_CONFIG_RUN)
            fail_msg("%s: rc %d (%s)", c->name, rc, err);
        if (cfg.max_message != c->max_message || cfg.ping_interval_ms != c->ping_ms ||
            strcmp(cfg.listen, c->listen) != 0)
            fail_msg("%s: max_message %zu ping %u listen %s", c->name, cfg.max_message,
                     cfg.ping_interval_ms, cfg.listen);
    }
}

static void test_ipv6_listen(void **state)
{
    const char *args[] = {"--listen", "[::1]:8081", NULL};
    char err[256];

    (void)state;
    assert_int_equal(load(args, NULL, err, sizeof(err)), GW_CONFIG_RUN);
    assert_int_equal(((struct sockaddr *)&cfg.listen_addr)->sa_family, AF_INET6);
    assert_int_equal(cfg.listen_addrlen, sizeof(struct sockaddr_in6));
    assert_int_equal(port_of(), 8081);
}

/* ---- --help, --version ------------------------------------------------------------------- */

struct result_case {
    const char *args[5];
    int rc;
};

static const struct result_case result_cases[] = {
    {{"--help", NULL}, GW_CONFIG_HELP},
    {{"-h", NULL}, GW_CONFIG_HELP},
    {{"--version", NULL}, GW_CONFIG_VERSION},
    {{"--max-message", "1k", "--help", NULL}, GW_CONFIG_HELP},
    {{"--version", "--help", NULL}, GW_CONFIG_VERSION},
    /* --help answers before the whole is checked */
    {{"--public-dir", "/nonexistent/chatbroker", "--help", NULL}, GW_CONFIG_HELP},
    {{"--nope", "--help", NULL}, -1},
    {{"--max-message", "x", "--version", NULL}, -1},
};

static void test_help_version(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_ELEMS(result_cases); i++) {
        char err[256];
        int rc = load(result_cases[i].args, NULL, err, sizeof(err));

        if (rc != result_cases[i].rc)
            fail_msg("case %zu (%s ...): rc %d, want %d", i, result_cases[i].args[0], rc,
                     result_cases[i].rc);
    }
}

static void test_usage(void **state)
{
    static const char *const want[] = {
        "--listen",
        "CHAT_LISTEN",
        "127.0.0.1:8080",
        "--public-dir",
        "CHAT_PUBLIC_DIR",
        "--allowed-origins",
        "CHAT_ALLOWED_ORIGINS",
        "--subprotocols",
        "--max-message",
        "CHAT_MAX_MESSAGE",
        "64KiB",
        "--max-header",
        "--max-output",
        "--ping-interval",
        "--pong-timeout",
        "--close-timeout",
        "--drain-timeout",
        "--log-level",
        "CHAT_LOG_LEVEL",
        "--handshake-timeout",
        "--help",
        "--version",
    };
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);

    (void)state;
    assert_non_null(f);
    gw_config_usage(f);
    fclose(f);
    for (size_t i = 0; i < N_ELEMS(want); i++)
        if (strstr(text, want[i]) == NULL)
            fail_msg("usage lacks %s", want[i]);
    free(text);
}

/* ---- errors ------------------------------------------------------------------------------ */

struct error_case {
    const char *args[5];
    const char *env[2];
    const char *want[2]; /* substrings of the message */
};

/* Rejected while reading flags and variables: the message names the source and value. */
static const struct error_case error_cases[] = {
    {{"--nope", NULL}, {NULL}, {"--nope", NULL}},
    {{"--nope=1", NULL}, {NULL}, {"--nope", NULL}},
    {{"--max-message", "1k", "--nope", NULL}, {NULL}, {"--nope", NULL}},
    {{"listen", NULL}, {NULL}, {"listen", NULL}},
    {{"--", NULL}, {NULL}, {"--", NULL}},
    {{"--listen", NULL}, {NULL}, {"--listen", NULL}},
    {{"--max-message", NULL}, {NULL}, {"--max-message", NULL}},
    {{"--listen=", NULL}, {NULL}, {"--listen", NULL}},
    {{"--public-dir", "", NULL}, {NULL}, {"--public-dir", NULL}},
    {{"--max-message", "x", NULL}, {NULL}, {"--max-message", "\"x\""}},
    {{"--max-message=12q", NULL}, {NULL}, {"--max-message", "12q"}},
    {{"--max-message", "0", NULL}, {NULL}, {"--max-message", "0"}},
    {{"--max-output", "-1", NULL}, {NULL}, {"--max-output", "-1"}},
    {{"--max-header", "", NULL}, {NULL}, {"--max-header", NULL}},
    {{"--ping-interval", "5d", NULL}, {NULL}, {"--ping-interval", "5d"}},
    {{"--close-timeout", "-1s", NULL}, {NULL}, {"--close-timeout", "-1s"}},
    {{"--log-level", "loud", NULL}, {NULL}, {"--log-level", "loud"}},
    {{"--allowed-origins", "example.com", NULL}, {NULL}, {"--allowed-origins", "example.com"}},
    {{"--subprotocols", "a b", NULL}, {NULL}, {"--subprotocols", "a b"}},
    {{NULL}, {"CHAT_MAX_MESSAGE=abc", NULL}, {"CHAT_MAX_MESSAGE", "abc"}},
    {{NULL}, {"CHAT_PONG_TIMEOUT=1w", NULL}, {"CHAT_PONG_TIMEOUT", "1w"}},
    {{NULL}, {"CHAT_LOG_LEVEL=", NULL}, {"CHAT_LOG_LEVEL", NULL}},
    /* a flag does not hide a bad variable */
    {{"--max-message", "1k", NULL}, {"CHAT_MAX_MESSAGE=abc", NULL}, {"CHAT_MAX_MESSAGE", NULL}},
};

/* Run every case, then fail once listing each case that went wrong. */
static void check_error_cases(const struct error_case *cases, size_t n)
{
    char report[2048] = "";
    size_t used = 0;

    for (size_t i = 0; i < n; i++) {
        const struct error_case *c = &cases[i];
        const char *what = c->args[0] ? c->args[0] : c->env[0];
        const char *value = c->args[0] && c->args[1] ? c->args[1] : "";
        char err[256];
        int rc = load(c->args, c->env, err, sizeof(err));
        int bad = rc != -1 || err[0] == '\0' || strchr(err, '\n') != NULL;

        for (size_t k = 0; k < N_ELEMS(c->want) && c->want[k]; k++)
            bad |= strstr(err, c->want[k]) == NULL;
        if (bad && used < sizeof(report))
            used += (size_t)snprintf(report + used, sizeof(report) - used,
                                     "\n  %s %s: rc %d, message \"%s\", want -1 and %s%s%s", what,
                                     value, rc, err, c->want[0], c->want[1] ? ", " : "",
                                     c->want[1] ? c->want[1] : "");
    }
    if (report[0])
        fail_msg("%s", report);
}

static void test_errors_while_reading(void **state)
{
    (void)state;
    check_error_cases(error_cases, N_ELEMS(error_cases));
}

/* Rejected by the check of the whole; each message must still name the flag at fault. */
static const struct error_case check_cases[] = {
    {{"--listen", "nohost", NULL}, {NULL}, {"listen", "nohost"}},
    {{"--listen", "127.0.0.1", NULL}, {NULL}, {"listen", "127.0.0.1"}},
    {{"--listen", "127.0.0.1:99999", NULL}, {NULL}, {"listen", "99999"}},
    {{"--listen", "1.2.3.4.5:80", NULL}, {NULL}, {"listen", "1.2.3.4.5:80"}},
    {{NULL}, {"CHAT_LISTEN=x:y", NULL}, {"listen", "x:y"}},
    {{"--max-message", "2GiB", NULL}, {NULL}, {"max-message", NULL}},
    {{"--max-header", "255", NULL}, {NULL}, {"max-header", NULL}},
    {{"--max-header", "1025k", NULL}, {NULL}, {"max-header", NULL}},
    {{"--public-dir", "/nonexistent/chatbroker", NULL}, {NULL}, {"/nonexistent/chatbroker", NULL}},
    {{"--public-dir", tmp_file, NULL}, {NULL}, {"file", NULL}},
    {{"--handshake-timeout", "0", NULL}, {NULL}, {"handshake", NULL}},
};

static void test_errors_of_check(void **state)
{
    (void)state;
    check_error_cases(check_cases, N_ELEMS(check_cases));
}

/* The contract asks every message to name the flag or variable; those of the final check
 * must too ("public directory" and "handshake, close and pong timeouts" do not). */
static const struct error_case check_flag_cases[] = {
    {{"--public-dir", "/nonexistent/chatbroker", NULL}, {NULL}, {"public-dir", NULL}},
    {{NULL}, {"CHAT_PUBLIC_DIR=/nonexistent/chatbroker", NULL}, {"CHAT_PUBLIC_DIR", NULL}},
    {{"--handshake-timeout", "0", NULL}, {NULL}, {"handshake-timeout", NULL}},
    {{"--close-timeout", "0", NULL}, {NULL}, {"close-timeout", NULL}},
    {{"--pong-timeout", "0", NULL}, {NULL}, {"pong-timeout", NULL}},
};

static void test_errors_of_check_name_the_flag(void **state)
{
    (void)state;
    check_error_cases(check_flag_cases, N_ELEMS(check_flag_cases));
}

/* "[::1]" and "::1" carry no port: the contract is host:port. */
static const struct error_case portless_cases[] = {
    {{"--listen", "[::1]", NULL}, {NULL}, {"listen", NULL}},
    {{"--listen", "::1", NULL}, {NULL}, {"listen", NULL}},
};

static void test_listen_without_port(void **state)
{
    (void)state;
    check_error_cases(portless_cases, N_ELEMS(portless_cases));
}

/* Limits at their bounds are accepted. */
static void test_bounds_accepted(void **state)
{
    static const char *const cases[][5] = {
        {"--max-header", "256", NULL},
        {"--max-header", "1MiB", NULL},
        {"--max-message", "1GiB", NULL},
        {"--max-message", "1", NULL},
        {"--ping-interval", "0", "--pong-timeout", "0", NULL},
        {"--drain-timeout", "0", NULL},
    };

    (void)state;
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        char err[256];
        int rc = load(cases[i], NULL, err, sizeof(err));

        if (rc != GW_CONFIG_RUN)
            fail_msg("%s %s: rc %d (%s)", cases[i][0], cases[i][1], rc, err);
    }
}

/* ---- value parsers ----------------------------------------------------------------------- */

struct size_case {
    const char *s;
    int rc;
    size_t v;
};

static const struct size_case size_cases[] = {
    {"65536", 0, 65536},
    {"0", 0, 0},
    {"1", 0, 1},
    {"64KiB", 0, 65536},
    {"64kib", 0, 65536},
    {"64k", 0, 65536},
    {"64K", 0, 65536},
    {"1MiB", 0, 1 << 20},
    {"1m", 0, 1 << 20},
    {"1M", 0, 1 << 20},
    {"3mib", 0, 3 << 20},
    {"1g", 0, 1 << 30},
    {"1GiB", 0, 1 << 30},
    {"007", 0, 7},
    {"17179869184", 0, 17179869184ull},
    {"18446744073709551615", 0, SIZE_MAX},
    {"", -1, 0},
    {"x", -1, 0},
    {"k", -1, 0},
    {"-1", -1, 0},
    {"+1", -1, 0},
    {" 1", -1, 0},
    {"1 ", -1, 0},
    {"1 k", -1, 0},
    {"12q", -1, 0},
    {"1.5m", -1, 0},
    {"1kk", -1, 0},
    {"1KiBx", -1, 0},
    {"0x10", -1, 0},
    {"18446744073709551616", -1, 0},
    {"99999999999999999999999", -1, 0},
    {"18014398509481984k", -1, 0},
    {"17179869184g", -1, 0},
};

static void test_parse_size(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_ELEMS(size_cases); i++) {
        const struct size_case *c = &size_cases[i];
        size_t v = 12345;
        int rc = gw_config_parse_size(c->s, &v);

        if (rc != c->rc || (rc == 0 && v != c->v))
            fail_msg("parse_size(\"%s\") = %d, %zu; want %d, %zu", c->s, rc, v, c->rc, c->v);
    }
}

struct duration_case {
    const char *s;
    int rc;
    unsigned ms;
};

static const struct duration_case duration_cases[] = {
    {"10", 0, 10000},
    {"10s", 0, 10000},
    {"500ms", 0, 500},
    {"2m", 0, 120000},
    {"1h", 0, 3600000},
    {"0", 0, 0},
    {"0ms", 0, 0},
    {"4294967295ms", 0, 4294967295u},
    {"4294967s", 0, 4294967000u},
    {"", -1, 0},
    {"s", -1, 0},
    {"ms", -1, 0},
    {"x", -1, 0},
    {"-1", -1, 0},
    {"-5s", -1, 0},
    {"+5s", -1, 0},
    {"1d", -1, 0},
    {"10 s", -1, 0},
    {"1.5s", -1, 0},
    {"10sec", -1, 0},
    {"10mss", -1, 0},
    {"4294967296ms", -1, 0},
    {"4294968s", -1, 0},
    {"71583m", -1, 0},
    {"1194h", -1, 0},
    {"99999999999999999999", -1, 0},
};

static void test_parse_duration(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_ELEMS(duration_cases); i++) {
        const struct duration_case *c = &duration_cases[i];
        unsigned ms = 12345;
        int rc = gw_config_parse_duration(c->s, &ms);

        if (rc != c->rc || (rc == 0 && ms != c->ms))
            fail_msg("parse_duration(\"%s\") = %d, %u; want %d, %u", c->s, rc, ms, c->rc, c->ms);
    }
}

/* ---- lists ------------------------------------------------------------------------------- */

struct origins_case {
    const char *value;
    int rc;
    int any;
    const char *list[4];
};

static const struct origins_case origins_cases[] = {
    {"*", 0, 1, {"*", NULL}},
    {" * ", 0, 1, {"*", NULL}},
    {"", 0, 0, {NULL}},
    {" , ,", 0, 0, {NULL}},
    {"https://a.example", 0, 0, {"https://a.example", NULL}},
    {"https://A.Example, http://b.example:8080",
     0,
     0,
     {"https://a.example", "http://b.example:8080", NULL}},
    {",https://a.example,,http://[::1]:8080,", 0, 0, {"https://a.example", "http://[::1]:8080"}},
    {"a.example", -1, 0, {NULL}},
    {"https://a.example/", -1, 0, {NULL}},
    {"https://a.example/x", -1, 0, {NULL}},
    {"://a.example", -1, 0, {NULL}},
    {"https://", -1, 0, {NULL}},
    {"https://a.example, b.example", -1, 0, {NULL}},
    {"*, https://a.example", -1, 0, {NULL}},
    {"https://a.example, *", -1, 0, {NULL}},
    {"*,*", -1, 0, {NULL}},
};

static void test_allowed_origins(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_ELEMS(origins_cases); i++) {
        const struct origins_case *c = &origins_cases[i];
        const char *args[] = {"--allowed-origins", c->value, NULL};
        char err[256];
        int rc = load(args, NULL, err, sizeof(err));
        size_t n = 0;

        if (rc != (c->rc == 0 ? GW_CONFIG_RUN : -1))
            fail_msg("origins \"%s\": rc %d (%s)", c->value, rc, err);
        if (rc == GW_CONFIG_RUN) {
            if (cfg.any_origin != c->any)
                fail_msg("origins \"%s\": any_origin %d", c->value, cfg.any_origin);
            for (n = 0; c->list[n]; n++)
                if (cfg.allowed_origins[n] == NULL ||
                    strcmp(cfg.allowed_origins[n], c->list[n]) != 0)
                    fail_msg("origins \"%s\": element %zu is %s", c->value, n,
                             cfg.allowed_origins[n] ? cfg.allowed_origins[n] : "NULL");
            if (cfg.allowed_origins[n] != NULL)
                fail_msg("origins \"%s\": extra element %s", c->value, cfg.allowed_origins[n]);
        } else if (strstr(err, "--allowed-origins") == NULL) {
            fail_msg("origins \"%s\": message \"%s\"", c->value, err);
        }
    }
}

struct subprotocols_case {
    const char *value;
    int rc;
    const char *list[4];
};

static const struct subprotocols_case subprotocols_cases[] = {
    {"", 0, {NULL}},
    {"chat.v1", 0, {"chat.v1", NULL}},
    {"Chat.V2, chat.v1", 0, {"Chat.V2", "chat.v1", NULL}},
    {" a ,, b ,", 0, {"a", "b", NULL}},
    {"x-y_z~1!#$%&'*+^`|", 0, {"x-y_z~1!#$%&'*+^`|", NULL}},
    {"a b", -1, {NULL}},
    {"a/b", -1, {NULL}},
    {"a;q=1", -1, {NULL}},
    {"\"quoted\"", -1, {NULL}},
    {"chat.v1, a(b)", -1, {NULL}},
};

static void test_subprotocols(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_ELEMS(subprotocols_cases); i++) {
        const struct subprotocols_case *c = &subprotocols_cases[i];
        const char *args[] = {"--subprotocols", c->value, NULL};
        char err[256];
        int rc = load(args, NULL, err, sizeof(err));
        size_t n;

        if (rc != (c->rc == 0 ? GW_CONFIG_RUN : -1))
            fail_msg("subprotocols \"%s\": rc %d (%s)", c->value, rc, err);
        if (rc == GW_CONFIG_RUN) {
            for (n = 0; c->list[n]; n++)
                if (cfg.subprotocols[n] == NULL || strcmp(cfg.subprotocols[n], c->list[n]) != 0)
                    fail_msg("subprotocols \"%s\": element %zu", c->value, n);
            if (cfg.subprotocols[n] != NULL)
                fail_msg("subprotocols \"%s\": extra element %s", c->value, cfg.subprotocols[n]);
        }
    }
}

/* A later list replaces an earlier one instead of adding to it. */
static void test_list_replaced(void **state)
{
    const char *args[] = {"--allowed-origins", "https://b.example", "--subprotocols", "p2", NULL};
    const char *env[] = {"CHAT_ALLOWED_ORIGINS=https://a.example", "CHAT_SUBPROTOCOLS=p1", NULL};
    char err[256];

    (void)state;
    assert_int_equal(load(args, env, err, sizeof(err)), GW_CONFIG_RUN);
    assert_int_equal(list_len(cfg.allowed_origins), 1);
    assert_string_equal(cfg.allowed_origins[0], "https://b.example");
    assert_int_equal(list_len(cfg.subprotocols), 1);
    assert_string_equal(cfg.subprotocols[0], "p2");
}

/* ---- chat and Redis settings --------------------------------------------------------------- */

static void test_chat_defaults(void **state)
{
    char err[256];

    (void)state;
    assert_int_equal(load(NULL, NULL, err, sizeof(err)), GW_CONFIG_RUN);
    assert_string_equal(cfg.redis_url, "redis://127.0.0.1:6379");
    assert_string_equal(cfg.redis.host, "127.0.0.1");
    assert_int_equal(cfg.redis.port, 6379);
    assert_null(cfg.redis.path);
    assert_int_equal(cfg.redis.db, 0);
    assert_non_null(cfg.gateway_id);
    assert_true(strlen(cfg.gateway_id) > 0 && strlen(cfg.gateway_id) <= 48);
    assert_int_equal(cfg.max_text, 16384);
    assert_int_equal(cfg.max_rooms, 32);
    assert_int_equal(cfg.rate, 20);
    assert_int_equal(cfg.burst, 40);
}

static void test_chat_flags(void **state)
{
    const char *args[] = {"--gateway-id", "gw-1.eu:a_b", "--max-text=1k", "--max-rooms", "1",
                          "--rate",       "1000000",     "--burst=7",     NULL};
    const char *env[] = {"CHAT_REDIS_URL=redis://r.example:7000/2", "CHAT_GATEWAY_ID=other", NULL};
    char err[256];

    (void)state;
    assert_int_equal(load(args, env, err, sizeof(err)), GW_CONFIG_RUN);
    assert_string_equal(cfg.gateway_id, "gw-1.eu:a_b");
    assert_string_equal(cfg.redis.host, "r.example");
    assert_int_equal(cfg.redis.port, 7000);
    assert_int_equal(cfg.redis.db, 2);
    assert_int_equal(cfg.max_text, 1024);
    assert_int_equal(cfg.max_rooms, 1);
    assert_int_equal(cfg.rate, 1000000);
    assert_int_equal(cfg.burst, 7);
}

static const struct error_case chat_error_cases[] = {
    {{"--max-rooms", "0", NULL}, {NULL}, {"--max-rooms", NULL}},
    {{"--max-rooms", "-1", NULL}, {NULL}, {"--max-rooms", NULL}},
    {{"--rate", "1000001", NULL}, {NULL}, {"--rate", NULL}},
    {{"--rate", "5/s", NULL}, {NULL}, {"--rate", NULL}},
    {{"--burst", "", NULL}, {NULL}, {"--burst", NULL}},
    {{"--burst", " 4", NULL}, {NULL}, {"--burst", NULL}},
    {{"--max-text", "0", NULL}, {NULL}, {"--max-text", NULL}},
    {{"--gateway-id", "has space", NULL}, {NULL}, {"--gateway-id", NULL}},
    {{"--gateway-id", "a/b", NULL}, {NULL}, {"--gateway-id", NULL}},
    {{"--gateway-id", "0123456789012345678901234567890123456789012345678", NULL},
     {NULL},
     {"--gateway-id", NULL}},
    {{"--redis", "http://r.example", NULL}, {NULL}, {"--redis", "http://r.example"}},
    {{NULL}, {"CHAT_REDIS_URL=redis://", NULL}, {"CHAT_REDIS_URL", NULL}},
};

static void test_chat_errors(void **state)
{
    (void)state;
    check_error_cases(chat_error_cases, N_ELEMS(chat_error_cases));
}

#define DIGITS90                                                                                   \
    "012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789"

struct redis_case {
    const char *url;
    int rc;
    const char *host; /* or NULL */
    int port;
    const char *path; /* or NULL */
    const char *user; /* or NULL */
    const char *password;
    int db;
};

static const struct redis_case redis_cases[] = {
    {"redis://127.0.0.1:6379", 0, "127.0.0.1", 6379, NULL, NULL, NULL, 0},
    {"redis://r.example", 0, "r.example", 6379, NULL, NULL, NULL, 0},
    {"redis://r.example/", 0, "r.example", 6379, NULL, NULL, NULL, 0},
    {"redis://r.example:1/15", 0, "r.example", 1, NULL, NULL, NULL, 15},
    {"redis://r.example:65535", 0, "r.example", 65535, NULL, NULL, NULL, 0},
    {"redis://:secret@r.example", 0, "r.example", 6379, NULL, NULL, "secret", 0},
    {"redis://app:secret@r.example:7000/2", 0, "r.example", 7000, NULL, "app", "secret", 2},
    {"redis://app:p@ss:w@rd@r.example", 0, "r.example", 6379, NULL, "app", "p@ss:w@rd", 0},
    {"redis://[::1]:6380", 0, "::1", 6380, NULL, NULL, NULL, 0},
    {"redis://[::1]", 0, "::1", 6379, NULL, NULL, NULL, 0},
    {"redis://[::1]/3", 0, "::1", 6379, NULL, NULL, NULL, 3},
    {"unix:///run/redis.sock", 0, NULL, 0, "/run/redis.sock", NULL, NULL, 0},
    {"unix:///run/redis.sock?db=4", 0, NULL, 0, "/run/redis.sock", NULL, NULL, 4},
    {"/run/redis.sock", 0, NULL, 0, "/run/redis.sock", NULL, NULL, 0},
    {"", -1, NULL, 0, NULL, NULL, NULL, 0},
    {"r.example:6379", -1, NULL, 0, NULL, NULL, NULL, 0},
    {"http://r.example", -1, NULL, 0, NULL, NULL, NULL, 0},
    {"rediss://r.example", -1, NULL, 0, NULL, NULL, NULL, 0},
    {"redis://", -1, NULL, 0, NULL, NULL, NULL, 0},
    {"redis://:6379", -1, NULL, 0, NULL, NULL, NULL, 0},
    {"redis://r.example:", -1, NULL, 0, NULL, NULL, NULL, 0},
    {"redis://r.example:0", -1, NULL, 0, NULL, NULL, NULL, 0},
    {"redis://r.example:65536", -1, NULL, 0, NULL, NULL, NULL, 0},
    {"redis://r.example:x", -1, NULL, 0, NULL, NULL, NULL, 0},
    {"redis://r.example:6379x", -1, NULL, 0, NULL, NULL, NULL, 0},
    {"redis://r.example/x", -1, NULL, 0, NULL, NULL, NULL, 0},
    {"redis://r.example/-1", -1, NULL, 0, NULL, NULL, NULL, 0},
    {"redis://r.example/9999999", -1, NULL, 0, NULL, NULL, NULL, 0},
    {"redis://user@r.example", -1, NULL, 0, NULL, NULL, NULL, 0},
    {"redis://user:@r.example", -1, NULL, 0, NULL, NULL, NULL, 0},
    {"redis://:secret@", -1, NULL, 0, NULL, NULL, NULL, 0},
    {"redis://[::1", -1, NULL, 0, NULL, NULL, NULL, 0},
    {"redis://[::1]x", -1, NULL, 0, NULL, NULL, NULL, 0},
    {"redis://[]:6379", -1, NULL, 0, NULL, NULL, NULL, 0},
    {"unix://run/redis.sock", -1, NULL, 0, NULL, NULL, NULL, 0},
    {"unix://", -1, NULL, 0, NULL, NULL, NULL, 0},
    {"unix:///run/redis.sock?db=x", -1, NULL, 0, NULL, NULL, NULL, 0},
    {"unix:///run/redis.sock?x=1", -1, NULL, 0, NULL, NULL, NULL, 0},
    {"/", -1, NULL, 0, NULL, NULL, NULL, 0},
    /* a socket path has at most 107 bytes (sun_path holds 108 with the NUL) */
    {"/run/" DIGITS90 "0123456.sock", 0, NULL, 0, "/run/" DIGITS90 "0123456.sock", NULL, NULL, 0},
    {"/run/" DIGITS90 "01234567.sock", -1, NULL, 0, NULL, NULL, NULL, 0},
};

static int same_str(const char *a, const char *b)
{
    return a == NULL ? b == NULL : b != NULL && strcmp(a, b) == 0;
}

static void test_parse_redis(void **state)
{
    char report[4096] = "";

    (void)state;
    for (size_t i = 0; i < N_ELEMS(redis_cases); i++) {
        const struct redis_case *c = &redis_cases[i];
        struct gw_redis_addr a;
        int rc = gw_config_parse_redis(c->url, &a);
        size_t used = strlen(report);

        if (rc != c->rc ||
            (rc == 0 && (!same_str(a.host, c->host) || !same_str(a.path, c->path) ||
                         !same_str(a.user, c->user) || !same_str(a.password, c->password) ||
                         a.db != c->db || (c->host && a.port != c->port))) ||
            (rc != 0 && (a.host || a.path || a.user || a.password)))
            snprintf(report + used, sizeof(report) - used,
                     "\n  \"%s\": rc %d host %s port %d path %s user %s password %s db %d", c->url,
                     rc, a.host ? a.host : "-", a.port, a.path ? a.path : "-",
                     a.user ? a.user : "-", a.password ? a.password : "-", a.db);
        gw_config_redis_clear(&a);
    }
    if (report[0])
        fail_msg("%s", report);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_defaults, clear_cfg),
        cmocka_unit_test_teardown(test_load_defaults, clear_cfg),
        cmocka_unit_test_teardown(test_public_dir_resolved, clear_cfg),
        cmocka_unit_test_teardown(test_env_twins, clear_cfg),
        cmocka_unit_test_teardown(test_env_ignored, clear_cfg),
        cmocka_unit_test_teardown(test_precedence_and_forms, clear_cfg),
        cmocka_unit_test_teardown(test_ipv6_listen, clear_cfg),
        cmocka_unit_test_teardown(test_help_version, clear_cfg),
        cmocka_unit_test_teardown(test_usage, clear_cfg),
        cmocka_unit_test_teardown(test_errors_while_reading, clear_cfg),
        cmocka_unit_test_teardown(test_errors_of_check, clear_cfg),
        cmocka_unit_test_teardown(test_errors_of_check_name_the_flag, clear_cfg),
        cmocka_unit_test_teardown(test_listen_without_port, clear_cfg),
        cmocka_unit_test_teardown(test_bounds_accepted, clear_cfg),
        cmocka_unit_test_teardown(test_parse_size, clear_cfg),
        cmocka_unit_test_teardown(test_parse_duration, clear_cfg),
        cmocka_unit_test_teardown(test_allowed_origins, clear_cfg),
        cmocka_unit_test_teardown(test_subprotocols, clear_cfg),
        cmocka_unit_test_teardown(test_list_replaced, clear_cfg),
        cmocka_unit_test_teardown(test_chat_defaults, clear_cfg),
        cmocka_unit_test_teardown(test_chat_flags, clear_cfg),
        cmocka_unit_test_teardown(test_chat_errors, clear_cfg),
        cmocka_unit_test_teardown(test_parse_redis, clear_cfg),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
