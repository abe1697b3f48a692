"""The cluster, natively: a real redis-server, three chat-gateway processes with two workers
each on free 127.0.0.1 ports, and a real haproxy on the repository's
gateway/haproxy/haproxy.cfg (the file compose uses) with a servers file naming the three.

300 clients connect through HAProxy and join one room; a few of them send numbered
messages. Checked: every client gets every message; a gateway sent SIGTERM closes its
clients with 1001 and exits 0, they reconnect through HAProxy and rejoin, and miss nothing
sent after they rejoined; a gateway killed with SIGKILL is taken out by HAProxy's health
checks and its clients recover the same way; a rolling restart of all three under steady
traffic loses nothing; /metrics of the gateways add up to what the clients saw.

The gateway binary: $CHAT_GATEWAY_BIN, default build/debug/chat-gateway (sanitizers on).
"""

import asyncio
import shutil
import signal
import time

import pytest

import gwtest
from chattest import run
from cluster import (REPO_ROOT, Fleet, HAProxy, close_lags, describe_times, haproxy_backend,
                     haproxy_servers, metrics_add_up, parse_metrics, report, servers_summary,
                     total, wait_for)
from gwtest import Gateway, http_get
from redistest import RedisServer

CLIENTS = 300
NAMES = ("gw-a", "gw-b", "gw-c")
DRAIN = 4.0  # --drain-timeout: sessions are closed over its first half
GATEWAY_ARGS = ["--workers", "2", "--drain-timeout", f"{DRAIN:g}s", "--close-timeout", "1s"]


class Cluster:
    def __init__(self, workdir):
        self.workdir = workdir
        self.redis = RedisServer(workdir / "redis")
        self.gws = {}
        self.hap = None

    def start(self):
        self.redis.start()
        for name in NAMES:
            g = Gateway(self.workdir / name, args=GATEWAY_ARGS + ["--gateway-id", name],
                        public_dir=REPO_ROOT / "public", name=name, redis_url=self.redis.url)
            self.gws[name] = g
            g.start()
        self.hap = HAProxy(self.workdir / "haproxy",
                           [(n, f"127.0.0.1:{g.port}") for n, g in self.gws.items()]).start()
        self.hap.wait_status({n: "UP" for n in NAMES}, 15, "HAProxy sees every gateway UP")
        return self

    def fetch_metrics(self):
        out = {}
        for name, g in self.gws.items():
            if g.alive():
                r = http_get(g.port, "/metrics", timeout=5)
                assert r.status == 200, f"{name}: /metrics answered {r.status}"
                out[name] = parse_metrics(r.body.decode())
        return out

    def backend_scur(self):
        return int(haproxy_backend(self.hap.stats_port)["scur"])

    def sessions_open(self):
        return sum(total(m, "chat_sessions_open") for m in self.fetch_metrics().values())

    def problems(self):
        """Dead gateways, sanitizer output, HAProxy gone."""
        out = []
        for name, g in self.gws.items():
            out += [f"{name}: {p}" for p in g.health_problems(echo=False)]
        if not self.hap.alive():
            out.append("haproxy is not running:\n" + self.hap.log_tail())
        return out

    def mend(self):
        """Bring every gateway back up (after a failed test) and wait for HAProxy."""
        for g in self.gws.values():
            if not g.alive():
                g.start()
        self.hap.wait_status({n: "UP" for n in NAMES}, 15)

    def stop(self):
        problems = []
        for name, g in self.gws.items():
            problems += [f"{name}: {p}\n{g.log_tail(3000)}" for p in g.stop(timeout=15)]
        if self.hap is not None:
            self.hap.stop()
        self.redis.stop()
        return problems


@pytest.fixture(scope="module")
def native(tmp_path_factory):
    if shutil.which("haproxy") is None:
        pytest.fail("haproxy is not installed (Debian: apt-get install haproxy)", pytrace=False)
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed", pytrace=False)
    if not gwtest.GATEWAY_BIN.exists():
        pytest.fail(f"{gwtest.GATEWAY_BIN} not found: run `make debug` or set CHAT_GATEWAY_BIN",
                    pytrace=False)
    c = Cluster(tmp_path_factory.mktemp("native"))
    try:
        c.start()
    except BaseException:
        c.stop()
        raise
    yield c
    problems = c.stop()
    if problems:
        pytest.fail("at the end of the native cluster: " + "\n".join(problems), pytrace=False)


@pytest.fixture
def cluster(native, request):
    """The module's cluster, whole and idle before the test, checked after it."""
    wait_for(lambda: native.sessions_open() == 0, 15, "no chat session left from before")
    yield native
    problems = native.problems()
    if problems:
        try:
            native.mend()
        except Exception as e:  # the next test will say more
            problems.append(f"could not mend the cluster: {e!r}")
        pytest.fail("cluster after the test: " + "\n".join(problems), pytrace=False)


def on_thread(fn, *args):
    return asyncio.get_running_loop().run_in_executor(None, fn, *args)


def assert_no_loss(r, what):
    assert r["messages_confirmed"] > 0, f"{what}: no message was confirmed: {r}"
    assert (r["missing"], r["duplicates"], r["out_of_order"]) == (0, 0, 0), f"{what}: {r}"


# ---------------------------------------------------------------------------------------------


def test_fanout_300_clients_and_metrics(cluster):
    """300 clients spread by leastconn over three gateways all get every room message, and
    the gateways' counters add up to exactly that."""

    async def main():
        async with Fleet(cluster.hap.port, CLIENTS) as fleet:
            took = await fleet.wait_connected(60)
            spread = fleet.by_gateway()
            assert set(spread) == set(NAMES), f"clients not on every gateway: {spread}"
            assert min(spread.values()) >= CLIENTS // 6, f"leastconn spread badly: {spread}"
            fleet.start_senders(count=3, rate=4.0)
            await asyncio.sleep(4)
            await fleet.stop_senders()
            r = await fleet.wait_delivered(20)
            assert_no_loss(r, "fan-out")
            assert r["sessions_checked"] == CLIENTS
            m = await metrics_add_up(fleet, cluster.fetch_metrics, cluster.backend_scur)
            assert not m["problems"], m
            report("native", f"fan-out: {CLIENTS} clients connected in {took:.1f}s, spread "
                             f"{dict(spread)}; {r['messages_confirmed']} messages, "
                             f"{r['deliveries_required']} deliveries checked, none missing; "
                             f"metrics: {m['deltas']} (busy workers {m['busy_workers']})")

    run(main(), 140)


async def _fault(cluster, victim, kill):
    """Steady traffic; stop (SIGTERM) or kill (SIGKILL) `victim`; its clients come back
    through HAProxy on the others and miss nothing sent after they rejoined."""
    g = cluster.gws[victim]
    hap = cluster.hap
    async with Fleet(hap.port, CLIENTS) as fleet:
        await fleet.wait_connected(60)
        on_victim = fleet.by_gateway()[victim]
        assert on_victim > 0, f"no client on {victim}: {fleet.by_gateway()}"
        fleet.start_senders(count=3, rate=4.0)
        await asyncio.sleep(2)
        t0 = time.monotonic()
        if kill:
            await on_thread(g.kill)
        else:
            g.send_signal(signal.SIGTERM)
            rc = await on_thread(g.wait_exit, DRAIN + 10)
            assert rc == 0, f"{victim} exit status {rc} after SIGTERM\n{g.log_tail()}"
            assert not g.exit_problems(), g.exit_problems()
        t_exit = time.monotonic() - t0
        t_down = await on_thread(hap.wait_status, {victim: "DOWN"}, 10,
                                 f"HAProxy marks {victim} DOWN")
        rejoin = await fleet.wait_connected(30, avoid={victim},
                                            what=f"{victim}'s clients back on the others")
        closed = fleet.closed_since(t0, victim)
        codes = sorted({s.code for s in closed})
        assert len(closed) == on_victim, f"{len(closed)} of {on_victim} sessions on {victim} ended"
        assert codes == ([1006] if kill else [1001]), f"close codes of {victim}'s clients: {codes}"
        assert not set(fleet.by_gateway()) & {victim}
        await asyncio.sleep(3)  # traffic after everyone rejoined
        await fleet.stop_senders()
        r = await fleet.wait_delivered(20)
        assert_no_loss(r, f"{'SIGKILL' if kill else 'SIGTERM'} of {victim}")
        back = time.monotonic()
        await on_thread(g.start)
        t_up = await on_thread(hap.wait_status, {victim: "UP"}, 15, f"{victim} UP again")
        report("native", f"{'SIGKILL' if kill else 'SIGTERM'} {victim}: {on_victim} clients "
                         f"closed {codes}, gateway gone in {t_exit:.1f}s, HAProxy DOWN "
                         f"{t_exit + t_down:.1f}s after the signal, all {CLIENTS} rejoined "
                         f"within {rejoin:.1f}s (reconnects "
                         f"{describe_times(fleet.reconnect_times(t0))}); "
                         f"{r['messages_confirmed']} messages, {r['deliveries_required']} "
                         f"deliveries checked, none missing; restarted and UP in "
                         f"{time.monotonic() - back:.1f}s ({t_up:.1f}s for HAProxy)")


def test_sigterm_drains_clients_to_other_gateways(cluster):
    run(_fault(cluster, "gw-b", kill=False), 140)


def test_sigkill_is_taken_out_by_health_checks(cluster):
    run(_fault(cluster, "gw-c", kill=True), 140)


def test_rolling_restart_under_traffic(cluster):
    """Every gateway, one after another: SIGTERM, wait for its exit, start it again, wait
    for HAProxy to see it UP. Steady traffic throughout; nothing sent after a client's rejoin
    is lost, across all of its sessions."""
    hap = cluster.hap

    async def main():
        async with Fleet(hap.port, CLIENTS) as fleet:
            await fleet.wait_connected(60)
            fleet.start_senders(count=3, rate=5.0)
            await asyncio.sleep(2)
            t0 = time.monotonic()
            steps = []
            for name in NAMES:
                g = cluster.gws[name]
                ts = time.monotonic()
                g.send_signal(signal.SIGTERM)
                rc = await on_thread(g.wait_exit, DRAIN + 10)
                assert rc == 0, f"{name} exit status {rc}\n{g.log_tail()}"
                await fleet.wait_connected(30, avoid={name}, what=f"clients off {name}")
                await on_thread(g.start)
                await on_thread(hap.wait_status, {name: "UP"}, 15, f"{name} UP again")
                steps.append(f"{name} {time.monotonic() - ts:.1f}s")
            await fleet.wait_connected(30)
            await asyncio.sleep(2)
            await fleet.stop_senders()
            r = await fleet.wait_delivered(20)
            assert_no_loss(r, "rolling restart")
            m = await metrics_add_up(fleet, cluster.fetch_metrics, cluster.backend_scur)
            assert not m["problems"], m
            sessions = sum(len(mb.sessions) for mb in fleet.members)
            report("native", f"rolling restart of {len(NAMES)} gateways under "
                             f"{len(fleet.sender_members) * 5} msg/s: {' | '.join(steps)}; "
                             f"total {time.monotonic() - t0:.1f}s; {CLIENTS} clients, {sessions} "
                             f"sessions, reconnects {describe_times(fleet.reconnect_times(t0))}, "
                             f"closing handshakes {describe_times(close_lags(fleet, t0))}; "
                             f"{r['messages_confirmed']} of {r['messages_sent']} messages "
                             f"confirmed, {r['deliveries_required']} deliveries checked over "
                             f"{r['sessions_checked']} sessions: {r['missing']} missing, "
                             f"{r['duplicates']} duplicates, {r['out_of_order']} out of order; "
                             f"spread after: {dict(fleet.by_gateway())}")

    run(main(), 140)


def test_haproxy_config_is_the_compose_one(cluster):
    """The native HAProxy runs the same shared file compose's image copies; only the servers
    file differs (fixed addresses here, Docker DNS there)."""
    text = (REPO_ROOT / "gateway" / "haproxy" / "haproxy.cfg").read_text()
    for needle in ("balance leastconn", "timeout tunnel 1h", "timeout client-fin",
                   "http-check expect status 200", "uri /healthz"):
        assert needle in text, needle
    docker = (REPO_ROOT / "gateway" / "haproxy" / "servers-docker.cfg").read_text()
    assert "server-template" in docker and "127.0.0.11" in docker
    dockerfile = (REPO_ROOT / "gateway" / "haproxy" / "Dockerfile").read_text()
    assert "haproxy.cfg" in dockerfile and "servers-docker.cfg" in dockerfile
    servers = haproxy_servers(cluster.hap.stats_port)
    assert {n: r["status"] for n, r in servers.items()} == {n: "UP" for n in NAMES}, \
        servers_summary(servers)
    # Through HAProxy: the page and /healthz, but not a gateway's /metrics; HAProxy's own
    # Prometheus metrics on the stats address.
    page = http_get(cluster.hap.port, "/")
    assert page.status == 200 and b"<" in page.body
    assert http_get(cluster.hap.port, "/healthz").status == 200
    assert http_get(cluster.hap.port, "/metrics").status == 404
    own = http_get(cluster.hap.stats_port, "/metrics")
    assert own.status == 200 and b"haproxy_backend_active_servers" in own.body
