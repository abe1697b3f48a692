/*
 * chat-gateway: reads the configuration, then runs the master and its workers (or, with
 * --workers 0, one worker in this process) until told to stop.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "gateway/config.h"
#include "gateway/log.h"
#include "gateway/master.h"
#include "gateway/limits.h"
#include "gateway/metrics.h"
#include "gateway/tls.h"
#include "gateway/util.h"
#include "gateway/worker.h"
#include "proto/proto.h"

#define GW_VERSION "0.1.0"

extern char **environ;

/* Load the TLS files and the trusted proxies once here, so that a bad setting stops start-up
 * with a message instead of failing every worker the master would start. */
static int check_files(const struct gw_config *cfg, char *err, size_t errlen)
{
    struct gw_limits *limits =
        gw_limits_new(cfg->max_per_ip, cfg->handshake_rate, cfg->trusted_proxies, err, errlen);
    struct ssl_ctx_st *ctx;

    if (limits == NULL)
        return -1;
    gw_limits_free(limits);
    if (cfg->tls_cert == NULL)
        return 0;
    ctx = gw_tls_ctx_new(cfg->tls_cert, cfg->tls_key, err, errlen);
    gw_tls_ctx_free(ctx);
    return ctx ? 0 : -1;
}

int main(int argc, char *argv[])
{
    struct gw_config cfg;
    struct gw_metrics *metrics;
    char err[512];
    int rc;

    signal(SIGPIPE, SIG_IGN);
    proto_init(xmalloc, free);
    gw_config_init(&cfg);
    rc = gw_config_load(&cfg, argc, argv, environ, err, sizeof(err));
    if (rc == GW_CONFIG_HELP) {
        gw_config_usage(stdout);
        gw_config_clear(&cfg);
        return 0;
    }
    if (rc == GW_CONFIG_VERSION) {
        printf("chat-gateway %s\n", GW_VERSION);
        gw_config_clear(&cfg);
        return 0;
    }
    if (rc < 0) {
        fprintf(stderr, "chat-gateway: %s\n", err);
        gw_config_clear(&cfg);
        return 1;
    }
    gw_log_level = cfg.log_level;
    metrics = gw_metrics_new(cfg.workers ? cfg.workers : 1, err, sizeof(err));
    if (metrics == NULL || gw_worker_check_port(&cfg, err, sizeof(err)) < 0 ||
        check_files(&cfg, err, sizeof(err)) < 0) {
        fprintf(stderr, "chat-gateway: %s\n", err);
        gw_metrics_free(metrics);
        gw_config_clear(&cfg);
        return 1;
    }
    if (cfg.workers == 0)
        rc = gw_master_run_worker(&cfg, metrics, 0);
    else
        rc = gw_master_run(&cfg, metrics);
    gw_metrics_free(metrics);
    gw_config_clear(&cfg);
    return rc;
}
