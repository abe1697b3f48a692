#!/usr/bin/python3
"""`make soak`: a bounded long-uptime run of chatbroker with faults on a schedule.

Starts a private redis-server (Unix socket only) and two gateways on it, two workers each:
`release` (build/release, whose memory is measured) and `asan` (build/debug, ASan+UBSan,
whose logs must stay free of sanitizer reports). Slots of simulated users churn, chat in
rooms, send direct messages and ask `who` (tests/soak/load.py) for the whole run, while
Redis is restarted and the asan gateway drained and restarted in turn, each fault announced
as a window. Memory, descriptors, connections and latency are sampled throughout; at the
end the checks below decide the exit status, and build/soak/report.md and soak.png
(tests/soak/report.py) say what happened. tests/soak/README.md has the definitions.

Every process started here is stopped by its PID; every loop is bounded in count and every
wait in time; the whole run is bounded by --minutes plus a few minutes of slack.
"""

import argparse
import asyncio
import os
import random
import shutil
import signal
import socket
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))
sys.path.insert(0, str(ROOT / "tests" / "cluster"))
sys.path.insert(0, str(HERE))

import gwtest  # noqa: E402
from cluster import parse_metrics, total  # noqa: E402
from gwtest import Gateway, GatewayError, HttpError, http_get, sanitizer_report  # noqa: E402
from redistest import RedisServer  # noqa: E402

import load  # noqa: E402
import report  # noqa: E402

RELEASE_BIN = ROOT / "build" / "release" / "chat-gateway"
DEBUG_BIN = ROOT / "build" / "debug" / "chat-gateway"
OUT = ROOT / "build" / "soak"

# The memory check (README): after the final quiet period, with the same clients in the same
# rooms on the same gateway as at the baseline, the release gateway's RSS (master + workers)
# may exceed the baseline by at most the larger of these.
RSS_SLACK_PCT = 10.0
RSS_SLACK_MIB = 4.0

METRICS = ("chat_connections_open", "chat_websockets_open", "chat_sessions_open", "chat_rooms",
           "chat_deliveries_total", "chat_dropped_total", "chat_slow_reader_closes_total",
           "chat_ping_timeouts_total", "chat_protocol_errors_total",
           "chat_redis_reconnects_total", "chat_redis_publish_errors_total",
           "chat_redis_probes_lost_total", "chat_redis_up")


def log(*a):
    print(f"[soak {time.strftime('%H:%M:%S')}]", *a, flush=True)


def profile(args):
    """The load and the schedule: full (default) or --quick."""
    if args.quick:
        p = dict(clients=120, rooms=6, extra_rooms=3, sender_every=3, send_interval=1.0,
                 life_min=8, life_max=40, who_every=20, direct_every=10, extra_every=20,
                 extra_stay=10, warmup=25, fault_first=10, fault_every=30, fault_tail=15,
                 final_reserve=35, sample=2.0, baseline_quiet=6, final_quiet=10,
                 redis_down=2.0)
    else:
        p = dict(clients=300, rooms=10, extra_rooms=4, sender_every=3, send_interval=1.5,
                 life_min=20, life_max=150, who_every=60, direct_every=30, extra_every=90,
                 extra_stay=30, warmup=90, fault_first=45, fault_every=120, fault_tail=40,
                 final_reserve=60, sample=5.0, baseline_quiet=10, final_quiet=20,
                 redis_down=3.0)
    p["minutes"] = args.minutes if args.minutes is not None else (3 if args.quick else 20)
    if args.clients:
        p["clients"] = args.clients
    return p


# ---------------------------------------------------------------------------------------------
# processes


class SoakGateway(Gateway):
    """gwtest's Gateway running a chosen binary (the release or the sanitizer build); keeps the
    log of every generation (a restart starts a new log)."""

    def __init__(self, binary, *a, **kw):
        super().__init__(*a, **kw)
        self.binary = Path(binary)
        self.logs = []
        self.stop_problems = []
        self.workers_seen = {}  # master pid -> worker pids seen

    def argv(self):
        argv = super().argv()
        argv[0] = str(self.binary)
        return argv

    def start(self, wait=True):
        if not self.binary.exists():
            raise GatewayError(f"{self.binary} not found (make release debug)")
        super().start(wait=False)
        self.logs.append(self.log_path)
        if wait:
            self.wait_ready(timeout=30)
        return self

    def stop_checked(self, timeout=20.0):
        problems = self.stop(sig=signal.SIGTERM, timeout=timeout)
        self.stop_problems += [f"{self.name} generation {self.generation}: {p}" for p in problems]
        return problems


def low_port():
    """A free 127.0.0.1 port below the ephemeral range, so that no client socket can take it
    while a gateway restarts on it."""
    try:
        lo = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        lo = 32768
    for _ in range(200):
        port = random.randrange(10000, max(10001, lo - 1))
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    return gwtest.free_port()


def children(pid):
    try:
        return [int(x) for x in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except (OSError, ValueError):
        return []


def rss_kib(pid):
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def fd_count(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def proc_sample(gw):
    """RSS (KiB, master + workers) and descriptors of each process of a running gateway."""
    proc = gw.proc
    if proc is None or proc.poll() is not None:
        return None
    master = proc.pid
    workers = children(master)
    seen = gw.workers_seen.setdefault(master, set())
    seen.update(workers)
    pids = [master] + workers
    fds = {p: fd_count(p) for p in pids}
    return {"rss_kib": sum(rss_kib(p) for p in pids), "fds": sum(v or 0 for v in fds.values()),
            "fds_by_pid": fds, "workers": len(workers), "master": master}


def metrics_sample(gw):
    try:
        r = http_get(gw.port, "/metrics", timeout=3)
        if r.status != 200:
            return None
        samples = parse_metrics(r.body.decode("utf-8", "replace"))
    except (OSError, HttpError, ValueError):
        return None
    return {m: total(samples, m) for m in METRICS}


def healthy(gw):
    try:
        return http_get(gw.port, "/healthz", timeout=2).status == 200
    except (OSError, HttpError):
        return False


# ---------------------------------------------------------------------------------------------
# the run


class Run:
    def __init__(self, args, prof, redis, gws):
        self.args = args
        self.p = prof
        self.redis = redis
        self.gws = gws  # [release, asan]
        self.windows = load.FaultWindows()
        self.ledger = load.Ledger(self.windows)
        self.samples = []
        self.phases = []  # (name, start, end)
        self.measures = {}
        self.problems = []
        self.t0 = None
        self.sampling = True

    async def thread(self, fn, *a):
        return await asyncio.get_running_loop().run_in_executor(None, fn, *a)

    # -- sampling --

    def sample_now(self):
        row = {"t": time.monotonic(), "gw": {}}
        for gw in self.gws:
            ps = proc_sample(gw)
            ms = metrics_sample(gw) if ps is not None else None
            row["gw"][gw.name] = {"proc": ps, "metrics": ms}
        return row

    async def sampler(self):
        lg = self.ledger
        for _ in range(1_000_000):
            if not self.sampling:
                return
            await asyncio.sleep(self.p["sample"])
            row = await self.thread(self.sample_now)
            t, n, p50, p99, mx, _ = lg.rotate(row["t"])
            row.update(lat_n=n, p50=p50, p99=p99, lat_max=mx,
                       clients={g.name: sum(1 for s in lg.open_sessions.values()
                                            if s.gateway is g) for g in self.gws})
            self.samples.append(row)
            if len(self.samples) % max(1, int(30 / self.p["sample"])) == 0:
                r = row["gw"]
                log(f"t={row['t'] - self.t_load:6.0f}s "
                    + " ".join(f"{g}: rss={((v['proc'] or {}).get('rss_kib') or 0) / 1024:.1f}MiB "
                               f"fds={(v['proc'] or {}).get('fds')} "
                               f"ws={(v['metrics'] or {}).get('chat_websockets_open')}"
                               for g, v in r.items())
                    + f" deliveries={lg.delivered} p50={fmt_ms(p50)} p99={fmt_ms(p99)} "
                    f"sessions={lg.connects}")

    # -- quiet measurements --

    def expected_ws(self, slots):
        return {g.name: sum(1 for s in slots if s.home is g) for g in self.gws}

    async def quiet(self, label, slots, quiet_s):
        """Stop the traffic, put every slot on its home gateway in its own room only, wait for
        the gateways to agree, let them sit quiet_s, then measure."""
        t_start = time.monotonic()
        log(f"{label}: quiet, every client to its home gateway")
        st = self.state
        st.set("quiet")
        want = self.expected_ws(slots)
        settled_at = None
        for _ in range(600):
            if all(s.sess is not None and s.settled for s in slots):
                ms = await self.thread(lambda: {g.name: metrics_sample(g) for g in self.gws})
                if all(ms[n] and ms[n]["chat_websockets_open"] == want[n]
                       and ms[n]["chat_connections_open"] <= want[n] + 1 for n in want):
                    settled_at = time.monotonic()
                    break
            if time.monotonic() - t_start > 150:
                break
            await asyncio.sleep(0.5)
        if settled_at is None:
            self.problems.append(f"{label}: the clients did not settle on their home gateways "
                                 f"within 150 s (want {want})")
        await asyncio.sleep(quiet_s)
        rows = []
        for _ in range(5):
            rows.append(await self.thread(self.sample_now))
            await asyncio.sleep(1.0)
        m = {"t": time.monotonic(), "settle_s": (settled_at or time.monotonic()) - t_start,
             "want_ws": want, "gw": {}}
        for g in self.gws:
            procs = [r["gw"][g.name]["proc"] for r in rows if r["gw"][g.name]["proc"]]
            mets = [r["gw"][g.name]["metrics"] for r in rows if r["gw"][g.name]["metrics"]]
            m["gw"][g.name] = {
                "rss_kib": statistics.median(p["rss_kib"] for p in procs) if procs else None,
                "rss_all": [p["rss_kib"] for p in procs],
                "fds": statistics.median(p["fds"] for p in procs) if procs else None,
                "fds_all": [p["fds"] for p in procs],
                "ws": mets[-1]["chat_websockets_open"] if mets else None,
                "rooms": mets[-1]["chat_rooms"] if mets else None,
            }
        self.phases.append((label, t_start, time.monotonic()))
        self.measures[label] = m
        log(f"{label}: " + ", ".join(
            f"{n}: rss={(v['rss_kib'] or 0) / 1024:.2f}MiB fds={v['fds']} ws={v['ws']}"
            for n, v in m["gw"].items()))
        return m

    async def idle(self, label):
        """With no client: wait until no connection is left, then descriptors and RSS."""
        t_start = time.monotonic()
        for _ in range(300):
            ms = await self.thread(lambda: {g.name: metrics_sample(g) for g in self.gws})
            if all(v and v["chat_connections_open"] <= 1 for v in ms.values()):
                break
            if time.monotonic() - t_start > 30:
                self.problems.append(f"{label}: connections still open 30 s after the last "
                                     f"client left: {ms}")
                break
            await asyncio.sleep(0.5)
        await asyncio.sleep(2.0)
        rows = []
        for _ in range(3):
            rows.append(await self.thread(self.sample_now))
            await asyncio.sleep(0.5)
        m = {g.name: {"fds": max(r["gw"][g.name]["proc"]["fds"] for r in rows
                                 if r["gw"][g.name]["proc"]) if any(
                                     r["gw"][g.name]["proc"] for r in rows) else None,
                      "fds_min": min((r["gw"][g.name]["proc"]["fds"] for r in rows
                                      if r["gw"][g.name]["proc"]), default=None),
                      "rss_kib": rows[-1]["gw"][g.name]["proc"]["rss_kib"]
                      if rows[-1]["gw"][g.name]["proc"] else None}
             for g in self.gws}
        self.measures[label] = m
        log(f"{label}: " + ", ".join(f"{n}: fds={v['fds']} rss={(v['rss_kib'] or 0) / 1024:.2f}MiB"
                                     for n, v in m.items()))
        return m

    # -- faults --

    async def wait_all_healthy(self, timeout=60):
        t0 = time.monotonic()
        for _ in range(int(timeout / 0.1) + 2):
            if all(await self.thread(lambda: [healthy(g) for g in self.gws])):
                return time.monotonic() - t0
            if time.monotonic() - t0 > timeout:
                break
            await asyncio.sleep(0.1)
        return None

    async def fault_redis(self):
        w = self.windows.open("redis restart")
        log("fault: Redis restart (SIGTERM, down "
            f"{self.p['redis_down']:.0f} s, start on the same socket)")
        await self.thread(self.redis.stop)
        await asyncio.sleep(self.p["redis_down"])
        await self.thread(self.redis.start)
        back = await self.wait_all_healthy(timeout=60)
        w["end"] = time.monotonic()
        if back is None:
            self.problems.append("gateways not healthy within 60 s of Redis coming back")
        w["detail"] = (f"down {self.p['redis_down']:.1f} s; every gateway /healthz 200 "
                       f"{back if back is not None else float('nan'):.1f} s after the start")
        log(f"fault end: {w['detail']}")

    async def fault_gateway(self, gw):
        w = self.windows.open(f"{gw.name} gateway restart")
        ws = (await self.thread(metrics_sample, gw) or {}).get("chat_websockets_open")
        log(f"fault: {gw.name} gateway restart (SIGTERM drain of {ws} sessions, then start)")
        t0 = time.monotonic()
        problems = await self.thread(gw.stop_checked)
        t_down = time.monotonic() - t0
        rc = gw.returncode
        for p in problems:
            log(f"PROBLEM: {gw.name}: {p}")
        t1 = time.monotonic()
        try:
            await self.thread(gw.start)
        except GatewayError as e:
            self.problems.append(f"{gw.name} did not start again: {e}")
            raise
        w["end"] = time.monotonic()
        w["detail"] = (f"{ws} sessions drained, exit {rc} after {t_down:.1f} s; "
                       f"ready {w['end'] - t1:.1f} s after the start")
        log(f"fault end: {w['detail']}")

    async def faults(self, soak_end):
        kinds = ["redis", "gateway"]
        nxt = time.monotonic() + self.p["fault_first"]
        for i in range(1000):
            if nxt + self.p["fault_tail"] > soak_end:
                break
            await asyncio.sleep(max(0.0, nxt - time.monotonic()))
            if kinds[i % 2] == "redis":
                await self.fault_redis()
            else:
                await self.fault_gateway(self.gws[1])
            nxt += self.p["fault_every"]
        await asyncio.sleep(max(0.0, soak_end - time.monotonic()))

    # -- the whole run --

    async def main(self):
        p = self.p
        self.t0 = time.monotonic()
        self.state = load.State()
        await self.idle("idle_start")
        sem = asyncio.Semaphore(32)
        rooms = [f"soak-{i}" for i in range(p["rooms"])]
        extra = [f"extra-{i}" for i in range(p["extra_rooms"])]
        cfg = {k: p[k] for k in ("sender_every", "send_interval", "life_min", "life_max",
                                 "who_every", "direct_every", "extra_every", "extra_stay")}
        slots = [load.Slot(i, self.gws[i % 2], self.gws[(i + 1) % 2], rooms[i % len(rooms)],
                           cfg, self.ledger, self.state, sem, extra) for i in range(p["clients"])]
        self.slots = slots
        sampler = asyncio.ensure_future(self.sampler())
        self.t_load = time.monotonic()
        log(f"load: {len(slots)} clients, {len(rooms)} rooms, "
            f"{sum(s.sender for s in slots)} senders, warm-up {p['warmup']} s")
        tasks = []
        for s in slots:  # ramp up: about 50 new clients a second
            tasks.append(asyncio.ensure_future(s.run()))
            await asyncio.sleep(0.02)
        end = self.t_load + p["minutes"] * 60
        try:
            await asyncio.sleep(p["warmup"])
            self.phases.append(("warm-up", self.t_load, time.monotonic()))
            await self.quiet("baseline", slots, p["baseline_quiet"])
            self.state.set("run")
            soak_end = end - p["final_reserve"]
            t_soak = time.monotonic()
            await self.faults(soak_end)
            self.phases.append(("load and faults", t_soak, time.monotonic()))
            self.t_final = time.monotonic()
            await self.quiet("final", slots, p["final_quiet"])
        finally:
            self.state.set("stop")
            done, pending = await asyncio.wait(tasks, timeout=60)
            for t in pending:
                t.cancel()
            for t in done:
                if not t.cancelled() and t.exception() is not None:
                    self.ledger.bugs.append(f"slot task: {t.exception()!r}"[:300])
        await self.idle("idle_end")
        self.sampling = False
        await asyncio.wait([sampler], timeout=2 * p["sample"] + 10)


def fmt_ms(v):
    return "-" if v is None else f"{v * 1000:.1f}ms"


# ---------------------------------------------------------------------------------------------
# checks


def log_findings(gws):
    """Sanitizer reports and worker deaths in every log of every generation."""
    out = {"sanitizer": [], "worker_deaths": [], "errors": 0, "error_examples": [],
           "logs": []}
    for g in gws:
        for path in g.logs:
            try:
                text = Path(path).read_text("utf-8", "replace")
            except OSError:
                continue
            out["logs"].append(str(Path(path).relative_to(ROOT)))
            for marker in sanitizer_report(text):
                out["sanitizer"].append(f"{path.name}: {marker}")
            for line in text.splitlines():
                if "died by signal" in line or "exited with status" in line:
                    out["worker_deaths"].append(f"{path.name}: {line[:200]}")
                elif " ERROR " in line:
                    out["errors"] += 1
                    if len(out["error_examples"]) < 5:
                        out["error_examples"].append(f"{path.name}: {line[:200]}")
    return out


def counter_totals(run):
    """Each counter summed over both gateways and every generation (a restarted gateway
    counts from zero again): the last value sampled of each master process."""
    last = {}
    for row in run.samples:
        for name, v in row["gw"].items():
            if v["proc"] and v["metrics"]:
                last[(name, v["proc"]["master"])] = v["metrics"]
    out = {}
    for mets in last.values():
        for k, val in mets.items():
            if k.endswith("_total"):
                out[k] = out.get(k, 0) + val
    return out


def checks(run, loss, logs):
    """[(name, ok, detail)]: what decides the exit status."""
    lg, w = run.ledger, run.windows
    res = []
    b, f = run.measures.get("baseline"), run.measures.get("final")
    rel = run.gws[0].name
    if b and f and b["gw"][rel]["rss_kib"] and f["gw"][rel]["rss_kib"]:
        rb, rf = b["gw"][rel]["rss_kib"] / 1024, f["gw"][rel]["rss_kib"] / 1024
        slack = max(rb * RSS_SLACK_PCT / 100, RSS_SLACK_MIB)
        res.append(("release RSS back to its baseline", rf <= rb + slack,
                    f"baseline {rb:.2f} MiB, final {rf:.2f} MiB ({rf - rb:+.2f} MiB, "
                    f"{(rf - rb) / rb * 100:+.1f}%); allowed +{slack:.2f} MiB "
                    f"(max of {RSS_SLACK_PCT:.0f}% and {RSS_SLACK_MIB:.0f} MiB)"))
        same = b["gw"][rel]["ws"] == f["gw"][rel]["ws"]
        res.append(("same sessions at baseline and final", same,
                    f"{b['gw'][rel]['ws']:.0f} and {f['gw'][rel]['ws']:.0f} on {rel}"))
        fb, ff = b["gw"][rel]["fds"], f["gw"][rel]["fds"]
        res.append(("release descriptors back to baseline (same sessions)", fb == ff,
                    f"baseline {fb:.0f}, final {ff:.0f}"))
    else:
        res.append(("baseline and final measured", False, "missing"))
    i0, i1 = run.measures.get("idle_start"), run.measures.get("idle_end")
    for g in run.gws:
        a, z = (i0 or {}).get(g.name, {}).get("fds"), (i1 or {}).get(g.name, {}).get("fds")
        res.append((f"{g.name} descriptors with no client: start = end", a is not None and a == z,
                    f"start {a}, end {z} (master + workers)"))
    res.append(("no sanitizer report (every asan log)", not logs["sanitizer"],
                "; ".join(logs["sanitizer"][:5]) or f"{len(run.gws[1].logs)} asan logs clean"))
    deaths = logs["worker_deaths"] + run.worker_restarts
    res.append(("no worker died or was restarted", not deaths, "; ".join(deaths[:5]) or "none"))
    stops = [p for g in run.gws for p in g.stop_problems]
    res.append(("every gateway stop clean (exit 0, no leak report)", not stops,
                "; ".join(stops[:5]) or f"{sum(g.generation for g in run.gws)} stops"))
    res.append(("no room message lost outside fault windows", loss["missing_outside"] == 0,
                f"{loss['missing_outside']} of {loss['required']} required deliveries "
                f"(inside windows: {loss['missing_inside']} lost)"))
    res.append(("room messages in order, no duplicates", loss["disorder"] == 0,
                f"{loss['disorder']} out of order or duplicated"))
    res.append(("no direct message lost outside fault windows",
                loss["direct_missing_outside"] == 0 and lg.misdirected == 0
                and loss["direct_dup"] == 0,
                f"{loss['direct_missing_outside']} of {loss['direct_required']} lost "
                f"(inside: {loss['direct_missing_inside']}), {lg.misdirected} misdirected, "
                f"{loss['direct_dup']} duplicated"))
    outside_err = [(t, c, g) for t, c, g in lg.errors
                   if c != "unknown_target" and not w.inside(t)]
    res.append(("no error reply outside fault windows", not outside_err,
                ", ".join(f"{c} from {g} at {t - run.t_load:.1f}s" for t, c, g in outside_err[:5])
                or "none (unknown_target excepted: a target that just left)"))
    who_out = [t for t in lg.who_timeouts if not w.inside(t)]
    res.append(("every `who` answered outside fault windows", not who_out,
                f"{len(who_out)} unanswered within {load.WHO_TIMEOUT:.0f} s of "
                f"{lg.who_asked} asked"))
    jt_out = [(t, g, r) for t, g, r in lg.join_timeouts if not w.inside(t)]
    res.append(("every join announced to the joiner outside fault windows", not jt_out,
                "; ".join(f"{r} on {g}, sent at {t - run.t_load:.1f}s" for t, g, r in jt_out[:5])
                or f"{len(lg.join_timeouts)} inside (no own presence join within "
                f"{load.OPEN_TIMEOUT:.0f} s)"))
    cf_out = [(t, g, r) for t, g, r in lg.connect_failures if not w.inside(t)]
    res.append(("no failed connect outside fault windows", not cf_out,
                "; ".join(f"{g} at {t - run.t_load:.1f}s: {r}" for t, g, r in cf_out[:3])
                or f"{len(lg.connect_failures)} inside"))
    sc_out = [(t, g, c) for t, g, c in lg.server_closes if not w.inside(t)]
    res.append(("no session closed by a gateway outside fault windows", not sc_out,
                "; ".join(f"{g} code {c} at {t - run.t_load:.1f}s" for t, g, c in sc_out[:5])
                or f"{len(lg.server_closes)} inside"))
    bad = {k: v for k, v in counter_totals(run).items()
           if k in ("chat_slow_reader_closes_total", "chat_protocol_errors_total",
                    "chat_ping_timeouts_total") and v}
    res.append(("no slow-reader, ping-timeout or protocol-error close", not bad,
                str(bad) if bad else "none (both gateways, every generation)"))
    res.append(("no exception in the soak's own clients", not lg.bugs,
                "; ".join(lg.bugs[:3]) or "none"))
    res += [(name, False, detail) for name, detail in
            (("run", p) for p in run.problems)]
    return res


# ---------------------------------------------------------------------------------------------
# main


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=None, help="length (default 20; quick 3)")
    ap.add_argument("--quick", action="store_true", help="a 3-minute check: fewer clients, "
                    "a fault every 30 s")
    ap.add_argument("--clients", type=int, default=0, help="client slots (default 300; quick 120)")
    ap.add_argument("--out", default=str(OUT), help="report directory (default build/soak)")
    args = ap.parse_args()
    prof = profile(args)
    out = Path(args.out)
    rundir = out / "run"
    shutil.rmtree(rundir, ignore_errors=True)
    rundir.mkdir(parents=True)

    def on_term(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_term)
    # Copies, so that a rebuild during the run cannot change what a restarted gateway runs.
    bindir = rundir / "bin"
    bindir.mkdir()
    bins = {}
    for name, src in (("release", RELEASE_BIN), ("asan", DEBUG_BIN)):
        if not src.exists():
            log(f"{src} not found: make release debug")
            return 1
        bins[name] = bindir / f"chat-gateway-{name}"
        shutil.copy2(src, bins[name])
        prof.setdefault("binaries", {})[name] = (
            f"{src.relative_to(ROOT)} built "
            f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(src.stat().st_mtime))}")
    redis = RedisServer(rundir / "redis", unix=True, tcp=False)
    common = ["--workers", "2", "--drain-timeout", "4s", "--close-timeout", "2s",
              "--log-level", "info"]
    gws = [SoakGateway(bins["release"], rundir, name="release", port=low_port(),
                       args=common + ["--gateway-id", "soak-release"],
                       public_dir=ROOT / "public"),
           SoakGateway(bins["asan"], rundir, name="asan", port=low_port(),
                       args=common + ["--gateway-id", "soak-asan"],
                       public_dir=ROOT / "public")]
    run = None
    t_start = time.time()
    rc = 1
    try:
        redis.start()
        for g in gws:
            g.redis_url = redis.url
            g.start()
        log(f"redis {redis.url}; release :{gws[0].port} pid {gws[0].proc.pid}; "
            f"asan :{gws[1].port} pid {gws[1].proc.pid}; {prof['minutes']:g} minutes")
        run = Run(args, prof, redis, gws)
        limit = prof["minutes"] * 60 + 600
        with gwtest.time_limit(limit):
            asyncio.run(run.main())
        run.worker_restarts = [
            f"{g.name} master {m}: {len(ws)} worker pids for 2 workers"
            for g in gws for m, ws in g.workers_seen.items() if len(ws) > 2]
        rc = 0
    except (KeyboardInterrupt, gwtest.TimeLimitExceeded, GatewayError, RuntimeError) as e:
        log(f"run aborted: {e!r}")
        if run is not None:
            run.problems.append(f"run aborted: {e!r}")
    finally:
        for g in reversed(gws):
            if g.proc is not None:
                problems = g.stop_checked()
                for p in problems:
                    log(f"PROBLEM at stop: {g.name}: {p}")
        redis.stop()
    if run is None or not hasattr(run, "t_final"):
        log("no report: the run did not get far enough")
        return 1
    if not hasattr(run, "worker_restarts"):
        run.worker_restarts = []
    loss = run.ledger.check(run.t_final)
    logs = log_findings(gws)
    res = checks(run, loss, logs)
    ok = rc == 0 and all(r[1] for r in res)
    path = report.write(out, run, loss, logs, res, ok, t_start, counter_totals(run))
    for name, good, detail in res:
        log(f"{'PASS' if good else 'FAIL'} {name}: {detail}")
    log(f"report: {path}")
    log("soak " + ("PASSED" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
