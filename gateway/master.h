/*
 * The master process: forks the workers (each its own event loop, listener with
 * SO_REUSEPORT and Redis links), restarts one that dies (with a growing pause if it keeps
 * dying), forwards SIGTERM and SIGINT to them and exits once they have all drained. It binds
 * nothing and serves nothing itself.
 */
#ifndef CHAT_GATEWAY_MASTER_H
#define CHAT_GATEWAY_MASTER_H

struct gw_config;
struct gw_metrics;

/*
 * Run cfg->workers workers until a SIGTERM or SIGINT has drained them all. metrics must have
 * a slot per worker and be shared (mapped before this call). Returns the exit status for
 * main: 0 when every worker drained and exited 0, else 1.
 */
int gw_master_run(const struct gw_config *cfg, struct gw_metrics *metrics);

/* Run worker index in this process until it drains; returns its exit status. Used by the
 * master's children and by --workers 0 (no master). */
int gw_master_run_worker(const struct gw_config *cfg, struct gw_metrics *metrics, unsigned index);

#endif
