#include "gateway/master.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gateway/config.h"
#include "gateway/log.h"
#include "gateway/metrics.h"
#include "gateway/util.h"
#include "gateway/worker.h"

#define MASTER_BACKOFF_MIN_MS 100
#define MASTER_BACKOFF_MAX_MS 10000
/* A worker that lived less than this before dying counts as failing to start. */
#define MASTER_STABLE_MS 10000
/* Beyond the drain timeout, how long the master waits before killing workers. */
#define MASTER_KILL_GRACE_MS 5000

struct child {
    pid_t pid;           /* 0 when not running */
    uint64_t started_ms; /* monotonic */
    uint64_t restart_ms; /* when to start it again; 0 if not due */
    unsigned backoff_ms;
};

struct master {
    const struct gw_config *cfg;
    struct gw_metrics *metrics;
    struct child *children;
    sigset_t old_mask;
    int stopping;
    int failed; /* a worker exited badly while stopping */
    uint64_t kill_at_ms;
};

int gw_master_run_worker(const struct gw_config *cfg, struct gw_metrics *metrics, unsigned index)
{
    struct gw_worker *w;
    char err[512], tag[16];
    int rc;

    snprintf(tag, sizeof(tag), "w%u", index + 1);
    gw_log_set_tag(tag);
    w = gw_worker_new(cfg, index, metrics, err, sizeof(err));
    if (w == NULL) {
        LOG_ERROR("%s", err);
        return 1;
    }
    rc = gw_worker_run(w);
    gw_worker_free(w);
    return rc;
}

static void spawn(struct master *m, unsigned i)
{
    struct child *c = &m->children[i];
    pid_t parent = getpid();
    pid_t pid = fork();

    if (pid < 0) {
        LOG_ERROR("fork failed: %s; retrying", strerror(errno));
        c->restart_ms = gw_util_mono_ms() + MASTER_BACKOFF_MAX_MS;
        return;
    }
    if (pid == 0) {
        /* The worker: signals as they were, and gone with the master should it die. */
        sigprocmask(SIG_SETMASK, &m->old_mask, NULL);
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent)
            exit(1);
        exit(gw_master_run_worker(m->cfg, m->metrics, i));
    }
    c->pid = pid;
    c->started_ms = gw_util_mono_ms();
    c->restart_ms = 0;
    LOG_INFO("worker=%u pid=%ld started", i + 1, (long)pid);
}

static struct child *find(struct master *m, pid_t pid, unsigned *index)
{
    for (unsigned i = 0; i < m->cfg->workers; i++) {
        if (m->children[i].pid == pid) {
            *index = i;
            return &m->children[i];
        }
    }
    return NULL;
}

static void on_exit_status(struct master *m, unsigned i, struct child *c, int status)
{
    uint64_t now = gw_util_mono_ms();
    int clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;

    c->pid = 0;
    if (WIFSIGNALED(status))
        LOG_ERROR("worker=%u died by signal %d", i + 1, WTERMSIG(status));
    else if (!clean || !m->stopping)
        LOG_WARN("worker=%u exited with status %d", i + 1, WEXITSTATUS(status));
    if (m->stopping) {
        m->failed |= !clean;
        return;
    }
    /* A worker that keeps dying right after start waits longer each time. */
    if (now - c->started_ms < MASTER_STABLE_MS)
        c->backoff_ms = c->backoff_ms ? c->backoff_ms * 2 : MASTER_BACKOFF_MIN_MS;
    else
        c->backoff_ms = MASTER_BACKOFF_MIN_MS;
    if (c->backoff_ms > MASTER_BACKOFF_MAX_MS)
        c->backoff_ms = MASTER_BACKOFF_MAX_MS;
    c->restart_ms = now + c->backoff_ms;
    LOG_INFO("worker=%u restarts in %u ms", i + 1, c->backoff_ms);
}

static void reap(struct master *m)
{
    pid_t pid;
    int status;
    unsigned i;

    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        struct child *c = find(m, pid, &i);
        if (c)
            on_exit_status(m, i, c, status);
    }
}

static void forward(struct master *m, int sig)
{
    for (unsigned i = 0; i < m->cfg->workers; i++)
        if (m->children[i].pid > 0)
            kill(m->children[i].pid, sig);
}

static void on_signal(struct master *m, int sig)
{
    if (sig == SIGCHLD) {
        reap(m);
        return;
    }
    if (!m->stopping) {
        LOG_INFO("signal=%d: draining %u workers", sig, m->cfg->workers);
        m->stopping = 1;
        m->kill_at_ms = gw_util_mono_ms() + m->cfg->drain_timeout_ms + MASTER_KILL_GRACE_MS;
    } else {
        LOG_WARN("signal=%d during drain: workers stop now", sig);
    }
    forward(m, sig);
}

static int live_children(const struct master *m)
{
    int n = 0;

    for (unsigned i = 0; i < m->cfg->workers; i++)
        n += m->children[i].pid > 0;
    return n;
}

/* Start workers whose pause is over; return the milliseconds until the next due event. */
static uint64_t tend(struct master *m)
{
    uint64_t now = gw_util_mono_ms(), wait = 1000;

    if (m->stopping) {
        if (now >= m->kill_at_ms) {
            LOG_ERROR("workers still running after the drain timeout: killing them");
            forward(m, SIGKILL);
            m->failed = 1;
            m->kill_at_ms = now + 1000;
        }
        return m->kill_at_ms - now < wait ? m->kill_at_ms - now : wait;
    }
    for (unsigned i = 0; i < m->cfg->workers; i++) {
        struct child *c = &m->children[i];

        if (c->pid == 0 && c->restart_ms && c->restart_ms <= now)
            spawn(m, i);
        else if (c->pid == 0 && c->restart_ms && c->restart_ms - now < wait)
            wait = c->restart_ms - now;
    }
    return wait;
}

int gw_master_run(const struct gw_config *cfg, struct gw_metrics *metrics)
{
    struct master m = {.cfg = cfg, .metrics = metrics};
    sigset_t set;

    gw_log_set_tag("master");
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigprocmask(SIG_BLOCK, &set, &m.old_mask);
    m.children = xcalloc(cfg->workers, sizeof(*m.children));
    LOG_INFO("master pid=%ld starting %u workers on %s", (long)getpid(), cfg->workers, cfg->listen);
    for (unsigned i = 0; i < cfg->workers; i++)
        spawn(&m, i);
    while (!m.stopping || live_children(&m) > 0) {
        uint64_t ms = tend(&m);
        struct timespec ts = {.tv_sec = (time_t)(ms / 1000),
                              .tv_nsec = (long)(ms % 1000) * 1000000};
        int sig = sigtimedwait(&set, NULL, &ts);

        if (sig > 0)
            on_signal(&m, sig);
    }
    sigprocmask(SIG_SETMASK, &m.old_mask, NULL);
    free(m.children);
    LOG_INFO("all workers stopped");
    return m.failed ? 1 : 0;
}
