"""The cluster in containers: `docker compose up -d --build --scale gateway=3` from the
repository's compose.yaml itself (Debian's docker-compose v1 when the v2 plugin is absent),
under a project name of its own, HAProxy published on free 127.0.0.1 ports through the
variables compose.yaml reads (CHAT_HTTP_PORT, CHAT_HTTPS_PORT, CHAT_STATS_PORT), its TLS
certificate made for the run and mounted through CHAT_TLS_DIR.

The same 300-client fan-out as natively; a gateway container stopped (SIGTERM: drain, 1001)
and one killed (SIGKILL); Redis paused (`docker pause`): every /healthz goes 503, HAProxy
routes no new client anywhere, traffic resumes after `docker unpause`; one gateway cut off
from Redis (`docker network disconnect`): its /healthz goes 503, HAProxy takes it out, new
clients go elsewhere, traffic resumes after it is connected again; a rolling restart;
/metrics of the gateways (read inside each container) add up; wss:// and https:// through
HAProxy's TLS listener, with a client that trusts exactly the run's certificate and checks
the name, and clients that do not trust it refused; the HAProxy image given no certificate
(a plain `docker compose up`): a self-signed one, or no start when that is turned off.

Skipped, with the reason, only where no Docker engine answers. The base image
debian:bookworm-slim is made with debootstrap when missing (no image can be pulled here) and
kept; the project is always removed with `down -v --remove-orphans`.
"""

import asyncio
import os
import ssl
import time

import pytest
import websockets

import dockerlib
from chattest import is_direct, is_message, open_client, run
from cluster import (Fleet, close_lags, describe_times, haproxy_backend, haproxy_servers,
                     https_get, make_cert, metrics_add_up, open_tls_client, parse_metrics,
                     report, servers_summary, total, trusting, wait_for)
from gwtest import free_port, http_get

CLIENTS = 300
SCALE = 3
WORKERS = 2
DRAIN = 4.0


class Stack:
    """The compose project and what the tests ask of it."""

    def __init__(self, compose, http_port, stats_port, https_port, cert):
        self.compose = compose
        self.port = http_port
        self.stats_port = stats_port
        self.https_port = https_port
        self.cert = cert  # cluster.make_cert's: HAProxy serves it (CHAT_TLS_DIR)

    # -- containers --

    def gateway_ids(self):
        return self.compose.ids("gateway")

    def redis_id(self):
        return self.compose.ids("redis")[0]

    def haproxy_id(self):
        return self.compose.ids("haproxy")[0]

    def info(self, cid):
        """(gateway id prefix, front IP, running, exit code) of a gateway container."""
        d = dockerlib.inspect(cid)
        nets = d["NetworkSettings"]["Networks"]
        front = next((v["IPAddress"] for k, v in nets.items() if k.endswith("_front")), "")
        return {"cid": cid, "host": d["Config"]["Hostname"], "ip": front,
                "running": d["State"]["Running"], "exit": d["State"]["ExitCode"],
                "paused": d["State"]["Paused"], "networks": sorted(nets)}

    def network(self, suffix):
        d = dockerlib.inspect(self.redis_id())
        return next(k for k in d["NetworkSettings"]["Networks"] if k.endswith(suffix))

    def gateways(self):
        """{gateway id as in welcome: info} of the running gateway containers."""
        out = {}
        for cid in self.gateway_ids():
            i = self.info(cid)
            if i["running"]:
                out[f"{i['host']}-1"] = i
        return out

    # -- HTTP inside the containers --

    def curl(self, cid, path, timeout=5):
        p = dockerlib.exec_in(cid, "curl", "-sS", "-m", str(timeout), "-o", "/dev/stdout",
                              "-w", "\n%{http_code}", f"http://127.0.0.1:8080{path}",
                              timeout=timeout + 10, check=False)
        body, _, code = p.stdout.rpartition("\n")
        return int(code) if code.strip().isdigit() else None, body

    def healthz(self, cid):
        return self.curl(cid, "/healthz", timeout=3)[0]

    def fetch_metrics(self):
        out = {}
        for gid, i in self.gateways().items():
            code, body = self.curl(i["cid"], "/metrics")
            assert code == 200, f"{gid}: /metrics answered {code}"
            out[gid] = parse_metrics(body)
        return out

    # -- HAProxy --

    def servers(self):
        """{front IP: status} of HAProxy's filled slots."""
        return {r["addr"].rsplit(":", 1)[0]: r["status"]
                for r in haproxy_servers(self.stats_port).values() if r.get("addr")}

    def backend_scur(self):
        return int(haproxy_backend(self.stats_port)["scur"])

    def all_up(self):
        gws = self.gateways()
        st = self.servers()
        return len(gws) == SCALE and all(st.get(i["ip"]) == "UP" for i in gws.values())

    def wait_all_up(self, timeout=40, what="every gateway UP in HAProxy"):
        t0 = time.monotonic()
        try:
            wait_for(self.all_up, timeout, what, interval=0.3)
        except AssertionError as e:
            raise AssertionError(f"{e}; HAProxy: "
                                 f"{servers_summary(haproxy_servers(self.stats_port))}")
        return time.monotonic() - t0

    def status_of(self, ip):
        return self.servers().get(ip, "gone")


def leftover_projects():
    """Projects of this suite (chatcluster<pid>) whose pytest process is gone."""
    p = dockerlib.docker("ps", "-a", "--format", '{{.Label "com.docker.compose.project"}}',
                         check=False)
    out = set()
    for name in set(p.stdout.split()):
        pid = name[len("chatcluster"):]
        if name.startswith("chatcluster") and pid.isdigit() and \
                not os.path.exists(f"/proc/{pid}"):
            out.add(name)
    return sorted(out)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    problem = dockerlib.engine_problem()
    if problem:
        pytest.skip(f"container suite skipped: {problem}")
    cmd = dockerlib.compose_command()
    if cmd is None:
        pytest.fail("a Docker engine runs but neither `docker compose` nor `docker-compose` "
                    "works (Debian: apt-get install docker-compose)", pytrace=False)
    log = lambda msg: report("compose", msg)  # noqa: E731
    base = dockerlib.ensure_base_image(log=log)
    cert = make_cert(tmp_path_factory.mktemp("tls"))
    http_port, stats_port, https_port = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHAT_")}
    env.update(CHAT_HTTP_PORT=str(http_port), CHAT_STATS_PORT=str(stats_port),
               CHAT_HTTPS_PORT=str(https_port), CHAT_TLS_DIR=str(cert["dir"]),
               CHAT_DRAIN_TIMEOUT=f"{DRAIN:g}s", CHAT_WORKERS=str(WORKERS),
               CHAT_STOP_GRACE="15s")
    project = f"chatcluster{os.getpid()}"
    for stale in leftover_projects():
        log(f"removing the leftover project {stale} of a run that did not finish")
        dockerlib.Compose(dockerlib.REPO_ROOT, stale, env, command=cmd, log=log).down()
    compose = dockerlib.Compose(dockerlib.REPO_ROOT, project, env, command=cmd, log=log)
    st = Stack(compose, http_port, stats_port, https_port, cert)
    try:
        for attempt in range(3):
            try:
                took = compose.up(scale=SCALE)
                break
            except RuntimeError as e:
                # A free port taken by someone else meanwhile: new ports, once more.
                if "address already in use" not in str(e) or attempt == 2:
                    raise
                compose.down()
                st.port, st.stats_port, st.https_port = free_port(), free_port(), free_port()
                env.update(CHAT_HTTP_PORT=str(st.port), CHAT_STATS_PORT=str(st.stats_port),
                           CHAT_HTTPS_PORT=str(st.https_port))
                compose.env = dict(env)
        ready = st.wait_all_up(60, "after compose up, every gateway UP in HAProxy")
        log(f"compose ({' '.join(cmd)}): project {project} up with --build --scale "
            f"gateway={SCALE} in {took:.1f}s (base image {base:.0f}s), HAProxy saw all UP "
            f"{ready:.1f}s later; http 127.0.0.1:{st.port}, https 127.0.0.1:{st.https_port}, "
            f"stats 127.0.0.1:{st.stats_port}")
        yield st
    except BaseException:
        print(compose.logs(100))
        raise
    finally:
        p = compose.down()
        if p.returncode != 0:
            print(f"compose down failed: {p.stdout}{p.stderr}")


@pytest.fixture
def cluster(stack, request):
    """Whole and idle before each test; on failure, the logs and a repair attempt."""
    for cid in stack.gateway_ids():
        i = stack.info(cid)
        if not i["running"]:
            dockerlib.docker("start", cid)
    rid = stack.redis_id()
    if stack.info(rid)["paused"]:
        dockerlib.docker("unpause", rid)
    stack.wait_all_up(60)
    wait_for(lambda: sum(total(m, "chat_sessions_open")
                         for m in stack.fetch_metrics().values()) == 0,
             20, "no chat session left from before")
    yield stack
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        print(stack.compose.logs(80))


def on_thread(fn, *args):
    return asyncio.get_running_loop().run_in_executor(None, fn, *args)


def assert_no_loss(r, what):
    assert r["messages_confirmed"] > 0, f"{what}: no message was confirmed: {r}"
    assert (r["missing"], r["duplicates"], r["out_of_order"]) == (0, 0, 0), f"{what}: {r}"


def drain_seconds(cid):
    """'drained in Xs, ' from the gateway's log: its SIGTERM to "all workers stopped"."""
    p = dockerlib.docker("logs", "--tail", "200", cid, check=False)
    lines = (p.stdout + p.stderr).splitlines()
    t = {}
    for key, marker in (("start", "draining"), ("end", "all workers stopped")):
        hits = [ln.split()[0] for ln in lines if marker in ln]
        if hits:
            t[key] = time.mktime(time.strptime(hits[-1][:19], "%Y-%m-%dT%H:%M:%S")) + \
                float("0" + hits[-1][19:23])
    if len(t) != 2:
        return ""
    return f"drained in {t['end'] - t['start']:.1f}s, "


def pick_victim(stack, fleet):
    """The gateway container with the most clients (so the fault moves many)."""
    gws = stack.gateways()
    spread = fleet.by_gateway()
    gid = max(gws, key=lambda g: spread.get(g, 0))
    return gid, gws[gid]


async def new_client_lands(stack, n, avoid):
    """Open n fresh clients through HAProxy; none may land on a gateway in avoid."""
    got = []
    for k in range(n):
        c = await open_client(stack.port, name=f"fresh{k}", timeout=10)
        got.append(c.welcome.get("gateway"))
        await c.close()
    assert not set(got) & set(avoid), f"HAProxy routed new clients to {avoid}: {got}"
    return got


# ---------------------------------------------------------------------------------------------


def test_compose_fanout_300_clients_and_metrics(cluster):
    async def main():
        async with Fleet(cluster.port, CLIENTS) as fleet:
            took = await fleet.wait_connected(90)
            spread = fleet.by_gateway()
            assert set(spread) == set(cluster.gateways()), spread
            assert min(spread.values()) >= CLIENTS // 6, f"leastconn spread badly: {spread}"
            fleet.start_senders(count=3, rate=4.0)
            await asyncio.sleep(4)
            await fleet.stop_senders()
            r = await fleet.wait_delivered(30)
            assert_no_loss(r, "fan-out")
            m = await metrics_add_up(fleet, cluster.fetch_metrics, cluster.backend_scur)
            assert not m["problems"], m
            report("compose", f"fan-out: {CLIENTS} clients in {took:.1f}s over "
                              f"{len(spread)} containers {sorted(spread.values())}; "
                              f"{r['messages_confirmed']} messages, {r['deliveries_required']} "
                              f"deliveries checked, none missing; metrics: {m['deltas']}")

    run(main(), 240)


async def _container_fault(stack, kill):
    async with Fleet(stack.port, CLIENTS) as fleet:
        await fleet.wait_connected(90)
        gid, victim = pick_victim(stack, fleet)
        on_victim = fleet.by_gateway()[gid]
        fleet.start_senders(count=3, rate=4.0)
        await asyncio.sleep(2)
        t0 = time.monotonic()
        if kill:
            await on_thread(lambda: dockerlib.docker("kill", "-s", "KILL", victim["cid"]))
        else:
            await on_thread(lambda: dockerlib.docker("stop", "-t", "20", victim["cid"],
                                                     timeout=60))
        t_gone = time.monotonic() - t0
        exit_code = (await on_thread(stack.info, victim["cid"]))["exit"]
        assert exit_code == (137 if kill else 0), f"{gid} exit code {exit_code}"
        drained = "" if kill else await on_thread(drain_seconds, victim["cid"])
        await on_thread(wait_for, lambda: stack.status_of(victim["ip"]) != "UP", 15,
                        f"HAProxy takes {gid} out")
        rejoin = await fleet.wait_connected(40, avoid={gid},
                                            what=f"{gid}'s clients back on the others")
        closed = fleet.closed_since(t0, gid)
        codes = sorted({s.code for s in closed})
        assert len(closed) == on_victim, f"{len(closed)} of {on_victim} sessions ended"
        assert codes == ([1006] if kill else [1001]), f"close codes: {codes}"
        status = await on_thread(stack.status_of, victim["ip"])
        await asyncio.sleep(3)
        await fleet.stop_senders()
        r = await fleet.wait_delivered(30)
        assert_no_loss(r, f"{'SIGKILL' if kill else 'SIGTERM'} of {gid}")
        t1 = time.monotonic()
        await on_thread(lambda: dockerlib.docker("start", victim["cid"]))
        up = await on_thread(stack.wait_all_up, 40, f"{gid} back UP")
        report("compose", f"{'docker kill -s KILL' if kill else 'docker stop'} of the gateway "
                          f"with {on_victim} clients: exit code {exit_code}, {drained}docker "
                          f"returned after {t_gone:.1f}s, closes {codes}, HAProxy status "
                          f"{status!r}; all "
                          f"{CLIENTS} rejoined on the others within {rejoin:.1f}s "
                          f"(reconnects {describe_times(fleet.reconnect_times(t0))}); "
                          f"{r['messages_confirmed']} messages, {r['deliveries_required']} "
                          f"deliveries checked, none missing; docker start: UP after "
                          f"{time.monotonic() - t1:.1f}s ({up:.1f}s waiting on HAProxy)")


def test_compose_stop_drains_a_gateway(cluster):
    run(_container_fault(cluster, kill=False), 240)


def test_compose_sigkill_of_a_gateway(cluster):
    run(_container_fault(cluster, kill=True), 240)


def test_compose_redis_paused(cluster):
    stack = cluster

    async def main():
        async with Fleet(stack.port, CLIENTS) as fleet:
            await fleet.wait_connected(90)
            gws = stack.gateways()
            before = await on_thread(stack.fetch_metrics)
            fleet.start_senders(count=3, rate=4.0)
            await asyncio.sleep(2)
            rid = stack.redis_id()
            t0 = time.monotonic()
            await on_thread(lambda: dockerlib.docker("pause", rid))
            try:
                await on_thread(
                    wait_for, lambda: all(stack.healthz(i["cid"]) == 503 for i in gws.values()),
                    15, "every gateway's /healthz 503 with Redis paused")
                t503 = time.monotonic() - t0
                await on_thread(wait_for, lambda: all(stack.status_of(i["ip"]) == "DOWN"
                                                      for i in gws.values()),
                                15, "HAProxy marks every gateway DOWN")
                t_down = time.monotonic() - t0
                # No server: HAProxy answers a new client itself, with 503.
                with pytest.raises(websockets.exceptions.InvalidStatusCode) as ei:
                    await open_client(stack.port, name="refused", timeout=10)
                assert ei.value.status_code == 503
                closed = fleet.closed_since(t0)
                assert not closed, f"{len(closed)} sessions closed while Redis was paused"
                during = await on_thread(stack.fetch_metrics)
                up = {g: total(m, "chat_redis_up") for g, m in during.items()}
                assert not any(up.values()), f"chat_redis_up while Redis is paused: {up}"
            finally:
                await on_thread(lambda: dockerlib.docker("unpause", rid))
            t1 = time.monotonic()
            await on_thread(
                wait_for, lambda: all(stack.healthz(i["cid"]) == 200 for i in gws.values()),
                40, "every gateway's /healthz 200 after unpause")
            t200 = time.monotonic() - t1
            await on_thread(stack.wait_all_up, 40, "every gateway UP after unpause")
            t_rec = time.monotonic()
            after = await on_thread(stack.fetch_metrics)
            for name, want in (("chat_redis_up", WORKERS), ("chat_redis_ready", WORKERS)):
                got = {g: total(m, name) for g, m in after.items()}
                assert all(v == want for v in got.values()), f"{name} after recovery: {got}"
            for name in ("chat_redis_probes_lost_total", "chat_redis_reconnects_total"):
                got = {g: total(after[g], name) - total(before[g], name) for g in after}
                assert all(v > 0 for v in got.values()), f"{name} did not grow: {got}"
            await new_client_lands(stack, 3, avoid=())
            await asyncio.sleep(3)
            await fleet.stop_senders()
            r = await fleet.wait_delivered(30, not_before=t_rec)
            assert_no_loss(r, "after Redis came back")
            assert r["sessions_checked"] == CLIENTS
            report("compose", f"Redis paused: every /healthz 503 {t503:.1f}s after the "
                              f"pause, HAProxy all DOWN after {t_down:.1f}s, new clients "
                              f"refused with 503, no session closed; unpaused: every /healthz "
                              f"200 after {t200:.1f}s, all UP in HAProxy after "
                              f"{t_rec - t1:.1f}s; {r['messages_confirmed']} "
                              f"messages confirmed in all, {r['deliveries_required']} "
                              f"deliveries after recovery checked over "
                              f"{r['sessions_checked']} sessions, none missing")

    run(main(), 240)


def test_compose_gateway_cut_off_from_redis(cluster):
    stack = cluster

    async def main():
        async with Fleet(stack.port, CLIENTS) as fleet:
            await fleet.wait_connected(90)
            gid, victim = pick_victim(stack, fleet)
            on_victim = fleet.by_gateway()[gid]
            back = await on_thread(stack.network, "_back")
            fleet.start_senders(count=3, rate=4.0)
            await asyncio.sleep(2)
            t0 = time.monotonic()
            await on_thread(lambda: dockerlib.docker("network", "disconnect", back,
                                                     victim["cid"]))
            try:
                await on_thread(wait_for, lambda: stack.healthz(victim["cid"]) == 503, 15,
                                f"{gid} /healthz 503 when cut off from Redis")
                t503 = time.monotonic() - t0
                await on_thread(wait_for, lambda: stack.status_of(victim["ip"]) == "DOWN", 15,
                                f"HAProxy marks {gid} DOWN")
                t_down = time.monotonic() - t0
                others = {g: i for g, i in stack.gateways().items() if g != gid}
                assert all(stack.healthz(i["cid"]) == 200 for i in others.values())
                assert all(stack.status_of(i["ip"]) == "UP" for i in others.values())
                fresh = await new_client_lands(stack, 12, avoid={gid})
            finally:
                await on_thread(lambda: dockerlib.docker("network", "connect", back,
                                                         victim["cid"]))
            t1 = time.monotonic()
            await on_thread(wait_for, lambda: stack.healthz(victim["cid"]) == 200, 40,
                            f"{gid} /healthz 200 after reconnecting")
            up = await on_thread(stack.wait_all_up, 40, f"{gid} UP after reconnecting")
            t_rec = time.monotonic()
            await asyncio.sleep(3)
            await fleet.stop_senders()
            r = await fleet.wait_delivered(30, not_before=t_rec)
            assert_no_loss(r, "after the gateway was connected again")
            still = sum(1 for s in fleet.open_sessions() if s.gateway == gid)
            report("compose", f"gateway with {on_victim} clients cut off from Redis: /healthz "
                              f"503 after {t503:.1f}s, HAProxy DOWN after {t_down:.1f}s, "
                              f"{len(fresh)} new clients all elsewhere; reconnected: 200 and "
                              f"UP after {t_rec - t1:.1f}s ({up:.1f}s on HAProxy); {still} of "
                              f"its clients stayed connected throughout and got everything "
                              f"after recovery: {r['deliveries_required']} deliveries checked "
                              f"over {r['sessions_checked']} sessions, none missing")

    run(main(), 240)


def test_compose_rolling_restart(cluster):
    stack = cluster

    async def main():
        async with Fleet(stack.port, CLIENTS) as fleet:
            await fleet.wait_connected(90)
            fleet.start_senders(count=3, rate=5.0)
            await asyncio.sleep(2)
            t0 = time.monotonic()
            steps = []
            for cid in stack.gateway_ids():
                i = stack.info(cid)
                gid = f"{i['host']}-1"
                ts = time.monotonic()
                await on_thread(lambda: dockerlib.docker("stop", "-t", "20", cid, timeout=60))
                assert stack.info(cid)["exit"] == 0
                await fleet.wait_connected(40, avoid={gid}, what=f"clients off {gid}")
                await on_thread(lambda: dockerlib.docker("start", cid))
                await on_thread(stack.wait_all_up, 40, f"{gid} UP again")
                steps.append(f"{time.monotonic() - ts:.1f}s")
            await fleet.wait_connected(40)
            await asyncio.sleep(2)
            await fleet.stop_senders()
            r = await fleet.wait_delivered(30)
            assert_no_loss(r, "rolling restart")
            m = await metrics_add_up(fleet, stack.fetch_metrics, stack.backend_scur)
            assert not m["problems"], m
            report("compose", f"rolling restart (docker stop, docker start) of {SCALE} "
                              f"gateways under 15 msg/s: {' | '.join(steps)}, total "
                              f"{time.monotonic() - t0:.1f}s; reconnects "
                              f"{describe_times(fleet.reconnect_times(t0))}, closing "
                              f"handshakes {describe_times(close_lags(fleet, t0))}; "
                              f"{r['messages_confirmed']} of {r['messages_sent']} messages "
                              f"confirmed, {r['deliveries_required']} deliveries over "
                              f"{r['sessions_checked']} sessions: {r['missing']} missing; "
                              f"metrics add up: {m['deltas']}")

    run(main(), 300)


def test_compose_no_stale_publishes_after_a_partition(cluster):
    """A gateway cut off from Redis long enough to give its links up (its sender gets
    `unavailable`) must not have what it had written on the old links published when the
    network comes back: those messages would reach everyone seconds late, after newer ones.

    (Closing a Redis connection the gateway gives up on without discarding the kernel's
    send queue lets TCP deliver the stale PUBLISHes once the partition ends.)"""
    stack = cluster
    room = "partition"

    async def main():
        gws = stack.gateways()
        clients, sender, observer = [], None, None
        try:
            for k in range(2 * SCALE + 2):  # leastconn: open until one lands elsewhere
                c = await open_client(stack.port, name=f"p{k}", rooms=[room], timeout=10)
                clients.append(c)
                if sender is None:
                    sender = c
                elif c.welcome["gateway"] != sender.welcome["gateway"]:
                    observer = c
                    break
            assert observer is not None, "no two clients on different gateways"
            victim = gws[sender.welcome["gateway"]]
            back = await on_thread(stack.network, "_back")
            t0 = time.monotonic()
            sent, seen, errors, pos = {}, {}, [], {"s": 0, "o": 0}
            order_bad = []

            def poll():
                now = time.monotonic() - t0
                for f in sender.all[pos["s"]:]:
                    if f.get("type") == "error" and f.get("code") == "unavailable":
                        errors.append(now)
                pos["s"] = len(sender.all)
                for f in observer.all[pos["o"]:]:
                    if f.get("type") == "message" and f.get("room") == room:
                        n = int(f["message"])
                        if seen and n < max(seen):
                            order_bad.append((n, max(seen)))
                        seen[n] = now
                pos["o"] = len(observer.all)

            async def run_for(seconds, send=True):
                end = time.monotonic() + seconds
                for _ in range(int(seconds / 0.1) + 2):
                    if time.monotonic() >= end:
                        break
                    if send:
                        n = len(sent) + 1
                        sent[n] = time.monotonic() - t0
                        await sender.say(room, str(n))
                    await asyncio.sleep(0.1)
                    poll()

            await run_for(2)
            await on_thread(lambda: dockerlib.docker("network", "disconnect", back,
                                                     victim["cid"]))
            try:
                deadline = time.monotonic() + 20
                for _ in range(400):  # until the gateway has given its links up
                    await run_for(0.5)
                    if errors or time.monotonic() > deadline:
                        break
                assert errors, "the cut-off gateway never answered `unavailable`"
                t_err = errors[0]
                await run_for(1)
            finally:
                await on_thread(lambda: dockerlib.docker("network", "connect", back,
                                                         victim["cid"]))
            t_back = time.monotonic() - t0
            await on_thread(wait_for, lambda: stack.healthz(victim["cid"]) == 200, 40,
                            "the gateway proves Redis again")
            await run_for(3)
            await run_for(12, send=False)  # TCP retransmits back off: give them time
            stale = sorted((n, round(seen[n] - sent[n], 1)) for n in seen
                           if sent[n] < t_err and seen[n] > t_err + 1.0)
            report("compose", f"partition of a gateway from Redis: its sender got "
                              f"`unavailable` {t_err - 2:.1f}s after the cut, network back "
                              f"{t_back - 2:.1f}s after it; observer got {len(seen)} of "
                              f"{len(sent)} messages, {len(stale)} written before the "
                              f"gateway gave its links up delivered only after that "
                              f"(n, seconds late): {stale[:5]}, out of order: "
                              f"{order_bad[:3]}")
            assert not stale and not order_bad, (
                f"messages the gateway had written on Redis links it gave up (at {t_err:.1f}s) "
                f"were published after the partition: {stale[:10]}; out of order: "
                f"{order_bad[:5]}")
        finally:
            await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)

    run(main(), 180)



# ---------------------------------------------------------------------------------------------
# TLS at HAProxy


async def tls_refusal(stack, ctx, server_hostname):
    """The exception a wss:// connection with this client context ends in (None: it opened)."""
    try:
        ws = await websockets.connect(f"wss://{server_hostname}:{stack.https_port}/ws",
                                      ssl=ctx, host="127.0.0.1",
                                      server_hostname=server_hostname, open_timeout=10)
    except (ssl.SSLError, OSError, websockets.exceptions.InvalidHandshake) as e:
        return e
    await ws.close()
    return None


def test_compose_tls_wss_chat_and_https(cluster):
    """wss:// through HAProxy's TLS listener to two different gateways: room and direct
    messages both ways; the page and /healthz over https://; what a browser's Origin check
    sees through TLS termination; clients that do not trust the certificate, or ask for
    another name, refused."""
    stack = cluster
    name = stack.cert["name"]
    ctx = trusting(stack.cert)
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    room = "tls"

    hz = https_get(stack.https_port, "/healthz", ctx, name)
    assert (hz.status, hz.body) == (200, b"ok\n"), hz
    assert hz.tls == ("TLSv1.3", "http/1.1"), hz.tls
    page = https_get(stack.https_port, "/", ctx, name)
    assert page.status == 200 and page.header("Content-Type").startswith("text/html"), page
    assert page.body == http_get(stack.port, "/").body, "the page differs over https://"
    assert https_get(stack.https_port, "/metrics", ctx, name).status == 404

    async def main():
        clients = []
        try:
            for k in range(2 * SCALE + 2):  # leastconn: open until one lands elsewhere
                c = await open_tls_client(stack.https_port, ctx, name, name=f"t{k}",
                                          rooms=[room])
                clients.append(c)
                if c.welcome["gateway"] != clients[0].welcome["gateway"]:
                    break
            a, b = clients[0], clients[-1]
            assert a.welcome["gateway"] != b.welcome["gateway"], \
                f"all {len(clients)} wss:// clients on one gateway"
            for src, dst in ((a, b), (b, a)):
                text = f"over tls from {src.name} on {src.welcome['gateway']}"
                await src.say(room, text)
                await dst.take(is_message(room, text, src.id), 10, f"{text!r} at {dst.name}")
                await src.take(is_message(room, text, src.id), 10, "own message back")
            await a.direct(b.id, "direct over tls")
            await b.take(is_direct("direct over tls", a.id), 10, "the direct message")

            # A browser on https://host:port sends that Origin; the gateway compares it
            # with the Host HAProxy passed on unchanged.
            url = f"wss://{name}:{stack.https_port}/ws"
            ws = await websockets.connect(url, ssl=ctx, host="127.0.0.1", server_hostname=name,
                                          origin=f"https://{name}:{stack.https_port}",
                                          open_timeout=10)
            await ws.close()
            with pytest.raises(websockets.exceptions.InvalidStatusCode) as ei:
                await websockets.connect(url, ssl=ctx, host="127.0.0.1", server_hostname=name,
                                         origin="https://elsewhere.example", open_timeout=10)
            assert ei.value.status_code == 403

            untrusting = await tls_refusal(stack, ssl.create_default_context(), name)
            wrong_name = await tls_refusal(stack, trusting(stack.cert), "127.0.0.1")
            for what, e in (("the system's authorities", untrusting),
                            ("the right certificate asked for 127.0.0.1", wrong_name)):
                assert isinstance(e, ssl.SSLCertVerificationError), f"{what}: {e!r}"
            return a, b, untrusting, wrong_name
        finally:
            await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)

    a, b, untrusting, wrong_name = run(main(), 120)
    logs = dockerlib.docker("logs", stack.haproxy_id(), check=False)
    assert "with /etc/haproxy/tls/site.pem" in logs.stderr, logs.stderr[-2000:]
    uid = dockerlib.exec_in(stack.haproxy_id(), "sh", "-c", "grep ^Uid: /proc/1/status")
    assert uid.stdout.split()[1] != "0", f"haproxy runs as root: {uid.stdout}"
    report("compose", f"TLS at HAProxy: https:// /healthz and the page ({hz.tls[0]}, ALPN "
                      f"{hz.tls[1]}); wss:// chat between {a.welcome['gateway']} and "
                      f"{b.welcome['gateway']}, room and direct, both ways; Origin of the "
                      f"https:// page accepted, another refused 403; untrusting client "
                      f"refused ({untrusting.verify_message}), wrong name refused "
                      f"({wrong_name.verify_message})")


def test_compose_haproxy_image_without_certificate(cluster):
    """What a plain `docker compose up` gets (nothing in CHAT_TLS_DIR): the HAProxy image
    makes a self-signed certificate for localhost, logs that it did, and serves TLS with it
    as the user haproxy; with CHAT_TLS_SELF_SIGNED=0 it refuses to start instead."""
    image = dockerlib.inspect(cluster.haproxy_id())["Image"]
    name = f"{cluster.compose.project}-tls-default"
    dockerlib.docker("run", "-d", "--rm", "--name", name, "--network", "none", image)
    try:
        def logged():
            p = dockerlib.docker("logs", name, check=False)
            return "self-signed certificate for localhost" in p.stderr and p.stderr
        log = wait_for(logged, 30, "the entrypoint's word on a self-signed certificate")

        def handshake():
            p = dockerlib.exec_in(name, "openssl", "s_client", "-connect", "127.0.0.1:8443",
                                  "-servername", "localhost", "-alpn", "http/1.1",
                                  timeout=30, check=False)
            return "subject=" in p.stdout and p.stdout
        out = wait_for(handshake, 30, "a TLS handshake inside the container", interval=0.5)
        assert "subject=CN = localhost" in out, out[-3000:]
        assert "Verify return code: 18 (self-signed certificate)" in out, out[-3000:]
        assert "ALPN protocol: http/1.1" in out, out[-3000:]
        uid = dockerlib.exec_in(name, "sh", "-c", "grep ^Uid: /proc/1/status")
        assert uid.stdout.split()[1] != "0", f"haproxy runs as root: {uid.stdout}"
    finally:
        dockerlib.docker("rm", "-f", name, check=False)
    p = dockerlib.docker("run", "--rm", "--network", "none", "-e", "HAPROXY_TLS_SELF_SIGNED=0",
                         image, timeout=60, check=False)
    assert p.returncode == 1, (p.returncode, p.stdout[-2000:], p.stderr[-2000:])
    assert "self-signed certificates are off" in p.stderr, p.stderr[-2000:]
    warning = next(line for line in log.splitlines() if "self-signed" in line)
    report("compose", f"HAProxy image without a certificate: {warning[:160]}...; served it "
                      f"over TLS with ALPN http/1.1 as uid {uid.stdout.split()[1]}; with "
                      f"CHAT_TLS_SELF_SIGNED=0 it exits 1")
