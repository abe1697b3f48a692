"""The master and its workers, and /metrics: several workers share the port and all serve;
a worker that dies is restarted; the workers die with the master; SIGTERM drains them all and
the master exits 0; /metrics shows every worker's counters, whichever worker answers."""

import asyncio
import os
import re
import signal
import socket
import time

import pytest

from chattest import Clients, is_message, run, wait_healthz
from gwtest import free_port, http_get


def metrics(port):
    r = http_get(port, "/metrics")
    assert r.status == 200, r
    assert r.header("Content-Type").startswith("text/plain; version=0.0.4")
    series = {}
    for line in r.body.decode().splitlines():
        if line.startswith("#") or not line:
            continue
        m = re.match(r'^([a-z_]+)\{([^}]*)\} (\S+)$', line)
        assert m, f"not a Prometheus sample line: {line!r}"
        labels = dict(kv.split("=", 1) for kv in m.group(2).split(","))
        labels = {k: v.strip('"') for k, v in labels.items()}
        series.setdefault(m.group(1), []).append((labels, float(m.group(3))))
    return series


def total(series, name):
    return sum(v for _, v in series.get(name, []))


def per_worker(series, name):
    return {labels["worker"]: v for labels, v in series.get(name, []) if "le" not in labels}


def worker_pids(master_pid):
    with open(f"/proc/{master_pid}/task/{master_pid}/children") as f:
        return sorted(int(p) for p in f.read().split())


def wait_for(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what} not within {timeout}s")


def test_workers_share_the_port_and_metrics_show_them_all(make_gateway):
    g = make_gateway("--workers", "3", "--rate", "1000", "--burst", "1000")
    pids = wait_for(lambda: len(worker_pids(g.proc.pid)) == 3 and worker_pids(g.proc.pid), 10,
                    "three workers")
    wait_healthz(g.port, 200, 10)
    # Each worker has a slot; whichever worker answers /metrics shows all three.
    m = wait_for(lambda: (lambda s: len(per_worker(s, "chat_redis_up")) == 3 and s)(
        metrics(g.port)), 10, "three workers in /metrics")
    assert sorted(per_worker(m, "chat_redis_up")) == ["1", "2", "3"]

    async def chat():
        async with Clients() as cs:
            clients = [await cs.open(g.port, f"c{i}") for i in range(24)]
            await clients[0].say("lobby", "counted")
            for c in clients:
                await c.take(is_message("lobby", "counted"), 10, "the counted message")
            s = metrics(g.port)
            # The kernel spread the connections over the workers.
            assert sum(1 for v in per_worker(s, "chat_sessions_open").values() if v > 0) >= 2
            assert total(s, "chat_sessions_open") == 24
            assert total(s, "chat_deliveries_total") >= 24
            assert total(s, "chat_redis_published_total") >= 1
            lat = [v for labels, v in s["chat_delivery_latency_seconds_bucket"]
                   if labels["le"] == "+Inf"]
            assert sum(lat) >= 1
    run(chat())
    assert pids == worker_pids(g.proc.pid)


def test_dead_worker_is_restarted(make_gateway):
    g = make_gateway("--workers", "2")
    before = wait_for(lambda: len(worker_pids(g.proc.pid)) == 2 and worker_pids(g.proc.pid), 10,
                      "two workers")
    os.kill(before[0], signal.SIGKILL)
    after = wait_for(lambda: (lambda p: len(p) == 2 and p != before and p)(
        worker_pids(g.proc.pid)), 10, "a restarted worker")
    assert before[1] in after and before[0] not in after
    wait_healthz(g.port, 200, 10)
    assert "died by signal 9" in g.log_text()
    assert "restarts in" in g.log_text()
    # Counters go on in the restarted worker's slot; the new pid is live.
    s = wait_for(lambda: (lambda s: total(s, "chat_redis_up") == 2 and s)(metrics(g.port)), 10,
                 "both workers proven")
    assert len(per_worker(s, "chat_connections_total")) == 2


def test_sigterm_drains_every_worker_and_master_exits_0(make_gateway):
    g = make_gateway("--workers", "2", "--drain-timeout", "4s")

    async def drain():
        async with Clients() as cs:
            clients = [await cs.open(g.port, f"c{i}") for i in range(12)]
            g.send_signal(signal.SIGTERM)
            for c in clients:
                await c.wait_until(lambda c=c: c.closed is not None, 10, "the drain's close")
                assert c.closed.code == 1001, c.closed
    run(drain())
    assert g.wait_exit(10) == 0, g.log_tail()
    assert "all workers stopped" in g.log_text()


def test_workers_die_with_the_master(make_gateway):
    g = make_gateway("--workers", "2")
    pids = wait_for(lambda: len(worker_pids(g.proc.pid)) == 2 and worker_pids(g.proc.pid), 10,
                    "two workers")
    os.kill(g.proc.pid, signal.SIGKILL)
    g.proc.wait(timeout=10)
    g.killed = True

    def gone():
        for p in pids:
            try:
                os.kill(p, 0)
                with open(f"/proc/{p}/stat") as f:
                    if f.read().split(")")[1].split()[0] != "Z":
                        return False
            except (ProcessLookupError, FileNotFoundError):
                pass
        return True
    wait_for(gone, 15, "the orphaned workers to exit")
    # They exited (at most zombies are left for init to reap): nothing for teardown to stop.
    g.proc = None


def test_no_master_with_zero_workers(make_gateway):
    g = make_gateway("--workers", "0")
    wait_healthz(g.port, 200, 10)
    assert worker_pids(g.proc.pid) == []
    assert list(per_worker(metrics(g.port), "chat_redis_up")) == ["1"]


def test_refuses_a_port_in_use(make_gateway):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        g = make_gateway(port=port, start=False)
        g.start(wait=False)
        assert g.wait_exit(10) == 1
        assert "Address already in use" in g.log_text()
        g.proc = None  # its exit status 1 is the point of this test
