#!/usr/bin/python3
"""`make bench`: chatbroker against its peers, side by side, with the same load generator.

Starts, each with its own private redis-server on a free 127.0.0.1 port:
  chatbroker     two chat-gateway release processes (--workers 1 each, a high --rate/--burst)
  gorilla-hub    the seed tutorials' gorilla/websocket broadcast server, one process
  gorilla-redis  the same with Redis pub/sub between two instances
  centrifugo     two Centrifugo v5 nodes with the Redis engine
and drives them all with build/release/chat-bench: idle memory first (fresh processes), then,
workload by workload and system after system, fan-out to 500 and to 5,000 clients in one room
over two instances (a fixed 100,000 deliveries/s, then rate steps to saturation), many rooms
(5,000 clients in 500 rooms), direct messages, connection churn, and a text-heavy room with
permessage-deflate off and on (chatbroker). Writes a markdown report with the JSON lines and
PNG plots (python3-matplotlib, when installed).

Every load is bounded in count and time, all traffic goes to 127.0.0.1, and every process
started here is stopped by its PID. `--quick` is a ~3 minute version; the full run takes
about 15 minutes. The peers are built by broker-tools/bench/peers/build.sh (Go and the Go
module proxy, or a warm module cache); without them the run goes on with chatbroker alone.
"""
import argparse
import datetime
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BUILD = os.path.join(ROOT, "build")
BENCH = os.path.join(BUILD, "release", "chat-bench")
GATEWAY = os.path.join(BUILD, "release", "chat-gateway")
PEERS = os.path.join(BUILD, "bench", "peers")
REDIS = "/usr/bin/redis-server"

# Source addresses for many connections: the clients spread over them, so the ephemeral
# ports (and TIME_WAIT after churn) of one address are never the limit.
SOURCES = ",".join("127.0.0.%d" % i for i in range(2, 10))

STARTED = []  # every process we started, stopped by PID at the end whatever happens


def log(*a):
    print("[bench %s]" % time.strftime("%H:%M:%S"), *a, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_tcp(port, proc, seconds=15):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError("process %d exited with %s" % (proc.pid, proc.returncode))
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("nothing listens on 127.0.0.1:%d after %d s" % (port, seconds))


def wait_http_ok(url, seconds=15):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError("%s not healthy after %d s" % (url, seconds))


def start(cmd, logname, env=None, cwd=None):
    """Start a process in its own session (a Ctrl-C at the terminal reaches only us; we stop
    it by PID), its output to a log file."""
    out = open(os.path.join(RUNDIR, logname), "ab")
    p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                         env=env, cwd=cwd, start_new_session=True)
    out.close()
    STARTED.append(p)
    return p


def stop(p, grace=12):
    if p.poll() is None:
        try:
            p.send_signal(signal.SIGTERM)
            p.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=5)
    if p in STARTED:
        STARTED.remove(p)


def stop_all():
    for p in list(reversed(STARTED)):
        stop(p)


def children(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def rss_kib(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def start_redis(name):
    port = free_port()
    p = start([REDIS, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
               "no", "--daemonize", "no", "--dir", RUNDIR, "--maxclients", "1000",
               "--client-output-buffer-limit", "pubsub", "0", "0", "0"], "%s-redis.log" % name)
    wait_tcp(port, p)
    return p, port


# ---- the systems -----------------------------------------------------------------------------


class System:
    name = "?"
    mode = "chat"
    rooms = True  # knows rooms (and so the many-rooms workload)
    direct = True  # knows direct messages
    deflate = False  # negotiates permessage-deflate as this bench runs it
    instances = 2

    def __init__(self):
        self.procs, self.redis, self.urls = [], None, []

    def server_pids(self):
        return [p.pid for p in self.procs]

    def aux_pids(self):
        return [self.redis.pid] if self.redis else []

    def bench_args(self):
        return ["--mode", self.mode]

    def stop(self):
        for p in self.procs:
            stop(p)
        if self.redis:
            stop(self.redis)
        self.procs, self.redis = [], None


class Chatbroker(System):
    name = "chatbroker"
    mode = "chat"
    deflate = True  # the gateways run with --deflate on, the default

    def start(self):
        self.redis, rport = start_redis(self.name)
        self.procs, self.urls = [], []
        for i in range(self.instances):
            port = free_port()
            p = start([GATEWAY, "--listen", "127.0.0.1:%d" % port, "--workers", "1",
                       "--redis", "redis://127.0.0.1:%d" % rport, "--rate", "1000000",
                       "--burst", "1000000", "--log-level", "warn", "--drain-timeout", "2s",
                       "--gateway-id", "bench-%d" % (i + 1), "--public-dir",
                       os.path.join(ROOT, "public")], "chatbroker-%d.log" % (i + 1))
            wait_http_ok("http://127.0.0.1:%d/healthz" % port)
            self.procs.append(p)
            self.urls.append("ws://127.0.0.1:%d/ws" % port)

    def server_pids(self):
        # the masters (they do almost nothing) and their workers (they do everything)
        pids = []
        for p in self.procs:
            pids.append(p.pid)
            pids.extend(children(p.pid))
        return pids

    def bench_args(self):
        return ["--mode", "chat", "--room", "lobby"]


class GorillaHub(System):
    name = "gorilla-hub"
    mode = "raw"
    rooms = direct = False
    instances = 1

    def start(self):
        port = free_port()
        p = start([os.path.join(PEERS, "gorilla-hub"), "-addr", "127.0.0.1:%d" % port],
                  "gorilla-hub.log")
        wait_tcp(port, p)
        self.procs, self.urls = [p], ["ws://127.0.0.1:%d/ws" % port]

    def bench_args(self):
        return ["--mode", "raw", "--seed-json"]


class GorillaRedis(System):
    name = "gorilla-redis"
    mode = "raw"
    rooms = direct = False

    def start(self):
        self.redis, rport = start_redis(self.name)
        self.procs, self.urls = [], []
        for i in range(self.instances):
            port = free_port()
            p = start([os.path.join(PEERS, "gorilla-redis"), "-addr", "127.0.0.1:%d" % port,
                       "-redis", "127.0.0.1:%d" % rport], "gorilla-redis-%d.log" % (i + 1))
            wait_tcp(port, p)
            self.procs.append(p)
            self.urls.append("ws://127.0.0.1:%d/ws" % port)

    def bench_args(self):
        return ["--mode", "raw", "--seed-json"]


class Centrifugo(System):
    name = "centrifugo"
    mode = "centrifugo"

    def start(self):
        self.redis, rport = start_redis(self.name)
        self.procs, self.urls = [], []
        conf = os.path.join(HERE, "peers", "centrifugo", "config.json")
        env = dict(os.environ, CENTRIFUGO_REDIS_ADDRESS="redis://127.0.0.1:%d" % rport)
        for i in range(self.instances):
            port = free_port()
            p = start([os.path.join(PEERS, "bin", "centrifugo"), "--config", conf, "--address",
                       "127.0.0.1", "--port", str(port), "--name", "bench-%d" % (i + 1)],
                      "centrifugo-%d.log" % (i + 1), env=env, cwd=RUNDIR)
            wait_http_ok("http://127.0.0.1:%d/health" % port)
            self.procs.append(p)
            self.urls.append("ws://127.0.0.1:%d/connection/websocket" % port)


ALL_SYSTEMS = [Chatbroker, GorillaHub, GorillaRedis, Centrifugo]

# ---- workloads ---------------------------------------------------------------------------------


def plans(quick):
    """What each workload runs: chat-bench options, and rate steps (the first is the fixed
    rate the tables compare at)."""
    if quick:
        return {
            "target": dict(clients=500, senders=10, rates=[200], duration=3, repeat=1),
            "fanout-500": dict(clients=500, senders=10, rates=[800, 1600], duration=2),
            "fanout-5000": dict(clients=5000, senders=10, rates=[20, 40], duration=2),
            "rooms": dict(clients=5000, senders=500, rooms=500, rates=[2000], duration=2),
            "direct": dict(clients=1000, senders=100, rates=[2000], duration=2),
            "churn": dict(clients=50, duration=3),
            "idle": dict(per_instance=5000, rooms=1000, hold=3),
            "deflate": dict(clients=500, senders=10, rates=[100], duration=3, size=1024,
                            repeat=1),
        }
    return {
        "target": dict(clients=500, senders=10, rates=[200], duration=5, repeat=3),
        "fanout-500": dict(clients=500, senders=10, rates=[400, 800, 1600, 3200, 6400],
                           duration=4),
        "fanout-5000": dict(clients=5000, senders=10, rates=[20, 40, 80, 160, 320], duration=4),
        "rooms": dict(clients=5000, senders=500, rooms=500, rates=[1000, 2000, 4000, 8000],
                      duration=3),
        "direct": dict(clients=1000, senders=100, rates=[1000, 2000, 4000, 8000], duration=3),
        "churn": dict(clients=50, duration=5),
        "idle": dict(per_instance=10000, rooms=1000, hold=5),
        "deflate": dict(clients=500, senders=10, rates=[100], duration=5, size=1024, repeat=2),
    }


RESULTS = []  # every JSON line, tagged with system and workload
PROFILE = []  # report lines from --profile


def chat_bench(system, workload, args, timeout, tag=""):
    cmd = [BENCH] + [a for u in system.urls for a in ("--url", u)] + system.bench_args() + args
    cmd += ["--pid", ",".join(map(str, system.server_pids()))]
    if system.aux_pids():
        cmd += ["--aux-pid", ",".join(map(str, system.aux_pids()))]
    cmd += ["--label", "%s/%s%s" % (system.name, workload, tag)]
    logf = os.path.join(RUNDIR, "chat-bench.log")
    with open(logf, "a") as f:
        f.write("\n$ %s\n" % " ".join(cmd))
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    STARTED.append(p)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.send_signal(signal.SIGTERM)
        try:
            out, err = p.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
        err += "\nchat-bench: stopped after %d s\n" % timeout
    STARTED.remove(p)
    with open(logf, "a") as f:
        f.write(out + err)
    lines = []
    for line in out.splitlines():
        if line.startswith("{"):
            rec = json.loads(line)
            rec["system"], rec["workload_name"] = system.name, workload
            lines.append(rec)
            RESULTS.append(rec)
        elif not line.startswith("ready"):
            print("    " + line, flush=True)
    for line in err.splitlines()[:6]:
        print("    ! " + line, flush=True)
    return lines


def run_steps(system, workload, plan, extra, tag=""):
    args = ["--clients", str(plan["clients"]), "--senders", str(plan["senders"]),
            "--rate", ",".join(map(str, plan["rates"])), "--duration", str(plan["duration"]),
            "--warmup", "1", "--drain", "5", "--connect-timeout", "90",
            "--source", SOURCES] + extra
    bound = 100 + len(plan["rates"]) * (plan["duration"] + 7)
    log("%s: %s%s (%d clients, rates %s)" % (system.name, workload, tag, plan["clients"],
                                            plan["rates"]))
    return chat_bench(system, workload, args, bound, tag)


def run_deflate(system, plan):
    """The text-heavy room side by side: clients that do not offer permessage-deflate, then
    clients that do (the same load, the same gateways), `repeat` times interleaved."""
    rows = []
    for _ in range(plan["repeat"]):
        for on in (False, True):
            extra = ["--size", str(plan["size"]), "--text"] + (["--deflate"] if on else [])
            rows += run_steps(system, "deflate", plan, extra, "-on" if on else "-off")
    return rows


def profile(system, plan):
    """perf record one chatbroker worker for 4 s of the targets' load; the top of the profile
    as report lines."""
    workers = [w for p in system.procs for w in children(p.pid)]
    data = os.path.join(RUNDIR, "perf.data")
    cmd = ([BENCH] + [a for u in system.urls for a in ("--url", u)] + system.bench_args() +
           ["--clients", str(plan["clients"]), "--senders", str(plan["senders"]), "--rate",
            str(plan["rates"][0]), "--duration", "6", "--label", "profile"])
    log("%s: perf record of worker %d under the targets' load" % (system.name, workers[0]))
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
    STARTED.append(p)
    try:
        time.sleep(2)
        r = subprocess.run(["perf", "record", "-F", "1999", "-g", "-o", data, "-p",
                            str(workers[0]), "--", "sleep", "4"], capture_output=True,
                           text=True, timeout=30)
        if r.returncode != 0:
            return ["perf record failed: %s" % r.stderr.strip()[-200:]]
        dso = subprocess.run(["perf", "report", "-i", data, "--no-children", "--sort", "dso",
                              "--stdio", "-g", "none"], capture_output=True, text=True,
                             timeout=60).stdout
        sym = subprocess.run(["perf", "report", "-i", data, "--children", "--sort", "symbol",
                              "--stdio", "-g", "none", "--percent-limit", "4"],
                             capture_output=True, text=True, timeout=60).stdout
        selfsym = subprocess.run(["perf", "report", "-i", data, "--no-children", "--sort",
                                  "dso,symbol", "--stdio", "-g", "none", "--percent-limit",
                                  "1.5"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError) as e:
        return ["perf failed: %s" % e]
    finally:
        stop(p)
    keep = lambda text, n: [l.rstrip() for l in text.splitlines()
                            if l.strip() and not l.startswith("#")][:n]
    return (["By object (self time):", "", "```"] + keep(dso, 8) + ["```", "",
            "Inclusive (children), entries over 4%:", "", "```"] + keep(sym, 30) +
            ["```", "", "Self time, entries over 1.5%:", "", "```"] + keep(selfsym, 25) +
            ["```", ""])


def run_churn(system, plan):
    log("%s: churn (%d in flight, %d s)" % (system.name, plan["clients"], plan["duration"]))
    args = ["--churn", "--clients", str(plan["clients"]), "--duration", str(plan["duration"]),
            "--warmup", "1", "--source", SOURCES]
    return chat_bench(system, "churn", args, plan["duration"] + 40)


def run_idle(system, plan):
    """Hold N connections per instance (several chat-bench processes, 10,000 each at most,
    each from its own source addresses) and read the servers' RSS from /proc before and
    after."""
    total = plan["per_instance"] * system.instances
    per_proc = 10000
    nproc = (total + per_proc - 1) // per_proc
    log("%s: idle memory (%d connections, %d per instance)" % (system.name, total,
                                                                plan["per_instance"]))
    pids, aux = system.server_pids(), system.aux_pids()
    time.sleep(1)
    before = {pid: rss_kib(pid) for pid in pids + aux}
    procs, ready, t0 = [], 0, time.monotonic()
    for i in range(nproc):
        n = min(per_proc, total - i * per_proc)
        src = ",".join("127.0.%d.%d" % (10 + i, j) for j in range(2, 10))
        cmd = ([BENCH] + [a for u in system.urls for a in ("--url", u)] + system.bench_args() +
               ["--idle", "--clients", str(n), "--duration", "120", "--connect-timeout", "90",
                "--connect-batch", "20", "--source", src, "--label",
                "%s/idle-%d" % (system.name, i)])
        if system.rooms:  # (with more than one room, chatbroker's --room lobby is unused)
            cmd += ["--rooms", str(plan["rooms"])]
        with open(os.path.join(RUNDIR, "chat-bench.log"), "a") as f:
            f.write("\n$ %s\n" % " ".join(cmd))
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             start_new_session=True)
        STARTED.append(p)
        procs.append(p)
    failed = ""
    for p in procs:  # each prints "ready N" once its clients are all up (or given up)
        line = p.stdout.readline()
        if line.startswith("ready"):
            ready += int(line.split()[1])
        else:
            failed = "a chat-bench ended early: %s" % line.strip()
    setup = time.monotonic() - t0
    time.sleep(plan["hold"])  # let the servers settle (Go's collector included)
    after = {pid: rss_kib(pid) for pid in pids + aux}
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            out, err = p.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
        STARTED.remove(p)
        with open(os.path.join(RUNDIR, "chat-bench.log"), "a") as f:
            f.write(out + err)
        for line in err.splitlines()[:3]:
            print("    ! " + line, flush=True)
    grow = sum(after[p] - before[p] for p in pids)
    grow_aux = sum(after[p] - before[p] for p in aux)
    rec = {"bench": "%s/idle" % system.name, "system": system.name, "workload_name": "idle",
           "workload": "idle", "clients": total, "ready": ready, "instances": system.instances,
           "setup_s": round(setup, 2), "rss_before_kib": [before[p] for p in pids],
           "rss_after_kib": [after[p] for p in pids], "server_rss_growth_kib": grow,
           "bytes_per_conn": round(grow * 1024 / ready) if ready else None,
           "redis_rss_growth_kib": grow_aux,
           "redis_bytes_per_conn": round(grow_aux * 1024 / ready) if ready and aux else None}
    if failed:
        rec["failed"] = failed
    # the worker that holds the most connections: the figure the target speaks of
    if system.name == "chatbroker":
        workers = [pid for p in system.procs for pid in children(p.pid)]
        per = plan["per_instance"]
        rec["worker_bytes_per_conn"] = [round((after[w] - before[w]) * 1024 / per)
                                        for w in workers]
    print("    %s" % json.dumps(rec), flush=True)
    RESULTS.append(rec)
    return rec


# ---- the report --------------------------------------------------------------------------------


def machine():
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) // 1024
    return "%s, %d cores, %d MiB, Linux %s" % (model, os.cpu_count(), mem, os.uname().release)


def versions():
    v = {}
    try:
        v["chatbroker"] = subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty"],
                                         capture_output=True, text=True).stdout.strip()
    except OSError:
        v["chatbroker"] = "?"
    try:
        out = subprocess.run([os.path.join(PEERS, "bin", "centrifugo"), "version"],
                             capture_output=True, text=True).stdout
        v["centrifugo"] = out.strip()
    except OSError:
        pass
    for mod, path in (("github.com/gorilla/websocket", "gorilla-hub/go.mod"),
                      ("github.com/redis/go-redis/v9", "gorilla-redis/go.mod")):
        try:
            with open(os.path.join(HERE, "peers", path)) as f:
                for line in f:
                    words = line.split()
                    if mod in words:
                        v[mod.split("/", 1)[1]] = words[words.index(mod) + 1]
        except OSError:
            pass
    v["go"] = subprocess.run(["/usr/local/go/bin/go", "version"], capture_output=True,
                             text=True).stdout.strip() if os.path.exists(
                                 "/usr/local/go/bin/go") else "?"
    return v


def fmt(v, nd=1):
    if v is None:
        return "–"
    if isinstance(v, float):
        return ("%%.%df" % nd) % v
    return str(v)


def ms(v):
    if v is None:
        return "–"
    return "%.1f" % v if v >= 10 else "%.2f" % v


def rows_for(workload, system=None):
    return [r for r in RESULTS if r.get("workload_name") == workload and
            (system is None or r["system"] == system) and "failed" not in r]


def step_table(workload, systems, title, note):
    out = ["### %s" % title, "", note, "",
           "| system | msgs/s offered (sent) | deliveries/s | server CPU µs/delivery (user "
           "space) | p50 ms | p99 ms | p99.9 ms | lost | dup | errors, closed | bench CPU s "
           "| others' CPU s |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for s in systems:
        rows = rows_for(workload, s)
        if not rows:
            out.append("| %s | n/a |  |  |  |  |  |  |  |  |  |  |" % s)
            continue
        for r in rows:
            out.append("| %s | %d (%d) | %d | %.2f (%.2f) | %s | %s | %s | %d | %d | %d | %.2f "
                       "| %.2f |"
                       % (s, r["rate"], r["sent_per_s"], r["deliveries_per_s"],
                          r["gateway_us_per_delivery"], r.get("gateway_user_us_per_delivery", 0),
                ms(r["p50_ms"]), ms(r["p99_ms"]), ms(r["p999_ms"]), r["lost"],
                r["duplicates"], r["errors"] + r.get("closed", 0), r["bench_cpu_s"],
                r["other_cpu_s"]))
    out.append("")
    return out


def saturation(workload, system, stop_p99=1000.0):
    """The highest step with no loss and p99 under the bound: (deliveries/s, row)."""
    best = None
    rows = rows_for(workload, system)
    if workload == "fanout-500":
        rows = rows_for("target", system) + rows
    for r in rows:
        if r["lost"] == 0 and r["p99_ms"] <= stop_p99 and r["closed"] == 0:
            if best is None or r["deliveries_per_s"] > best["deliveries_per_s"]:
                best = r
    return best


def median_row(workload, system):
    """The run with the median server CPU per delivery; its p99 is replaced by the median
    p99 of the runs (each figure's own median)."""
    rows = sorted(rows_for(workload, system), key=lambda r: r["gateway_us_per_delivery"])
    if not rows:
        return None
    mid = dict(rows[len(rows) // 2])
    for k in ("p50_ms", "p99_ms", "p999_ms"):
        mid[k] = sorted(r[k] for r in rows)[len(rows) // 2]
    mid["runs"] = len(rows)
    return mid


def first_step(workload, system):
    rows = [r for r in rows_for(workload, system) if r.get("step") == 0]
    return rows[0] if rows else None


def median(values):
    values = sorted(values)
    return values[len(values) // 2] if values else None


def deflate_section(systems, plan):
    """The report's permessage-deflate section: the text-heavy room with clients that do not
    offer the extension and clients that do, and what changed."""
    out = ["## permessage-deflate: a text-heavy room", "",
           "%d clients in one room over the two gateways, %d senders, %d messages/s of %d "
           "bytes of English chat text (sentences from a fixed list in a varying order, so "
           "every message differs; not random bytes, which do not compress, nor one repeated "
           "letter, which compresses absurdly well): %s deliveries/s, %d s measured, %s each "
           "way, interleaved. *off*: the clients do not offer "
           "permessage-deflate, so the gateways send plain frames; *on*: they offer it (with "
           "`client_no_context_takeover`) and the gateways, at `--deflate on` (the default), "
           "answer with `server_no_context_takeover` and send compressed frames." % (
               plan["clients"], plan["senders"], plan["rates"][0], plan["size"],
               "{:,}".format(plan["rates"][0] * plan["clients"]), plan["duration"],
               {1: "once", 2: "twice"}.get(plan["repeat"], "%d times" % plan["repeat"])), "",
           "**Wire bytes per delivery** are what the clients read from their sockets in the "
           "measured window (WebSocket frames as sent: header and payload; TCP/IP headers "
           "aside), counted by chat-bench's client library, divided by the deliveries in the "
           "window. Server CPU per delivery is measured as in every table. The gateway "
           "compresses each broadcast once per worker and shares the compressed frame among "
           "its receivers, so compression costs CPU per message, not per delivery; what each "
           "delivery saves is the bytes the kernel copies through the socket. The other side "
           "of the bargain is the receivers': each inflates every message (chat-bench's own "
           "CPU, in the bench CPU column, includes that).", "",
           "| system | deflate | handshakes agreed | msgs/s offered (sent) | deliveries/s | "
           "server CPU µs/delivery (user space) | wire bytes/delivery | p50 ms | p99 ms | "
           "lost | dup | errors, closed | bench CPU s |",
           "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for s in systems:
        rows = rows_for("deflate", s)
        if not rows:
            out.append("| %s | n/a |  |  |  |  |  |  |  |  |  |  |  |" % s)
            continue
        for r in sorted(rows, key=lambda r: r.get("deflate", 0)):
            out.append("| %s | %s | %d of %d | %d (%d) | %d | %.2f (%.2f) | %s | %s | %s | %d | "
                       "%d | %d | %.2f |" % (
                           s, "on" if r.get("deflate") else "off", r.get("deflate_opens", 0),
                           r.get("opens", 0), r["rate"], r["sent_per_s"],
                           r["deliveries_per_s"], r["gateway_us_per_delivery"],
                           r.get("gateway_user_us_per_delivery", 0),
                           fmt(r.get("wire_bytes_per_delivery")), ms(r["p50_ms"]),
                           ms(r["p99_ms"]), r["lost"], r["duplicates"],
                           r["errors"] + r.get("closed", 0), r["bench_cpu_s"]))
    out.append("")
    for s in systems:
        rows = rows_for("deflate", s)
        off = [r for r in rows if not r.get("deflate")]
        on = [r for r in rows if r.get("deflate")]
        if not off or not on:
            continue
        b0 = median(r["wire_bytes_per_delivery"] or 0 for r in off)
        b1 = median(r["wire_bytes_per_delivery"] or 0 for r in on)
        c0 = median(r["gateway_us_per_delivery"] for r in off)
        c1 = median(r["gateway_us_per_delivery"] for r in on)
        k0, k1 = (median(r["bench_cpu_s"] * 1e6 / max(r["deliveries_per_s"] * r["seconds"], 1)
                         for r in group) for group in (off, on))
        out.append("%s, on against off (medians): **wire bytes per delivery %.0f → %.0f** "
                   "(%.2f× fewer, %+.0f %%); **server CPU per delivery %.2f → %.2f µs** "
                   "(%+.0f %%); the generator's CPU per delivery received %.2f → %.2f µs "
                   "(the receivers' inflation)." % (
                       s, b0, b1, b0 / max(b1, 1e-9), 100 * (b1 - b0) / max(b0, 1e-9), c0, c1,
                       100 * (c1 - c0) / max(c0, 1e-9), k0, k1))
        out.append("")
    out += ["The peers are n/a here: the seed tutorials' gorilla servers do not enable "
            "compression, and Centrifugo's (`websocket_compression`, per connection) is not "
            "wired into this bench.", ""]
    return out


COLORS = {"chatbroker": "C0", "gorilla-hub": "C1", "gorilla-redis": "C2", "centrifugo": "C3"}


def plot(path_prefix, systems):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    made = []
    for workload in ("fanout-500", "fanout-5000"):
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.2))
        any_rows = False
        for s in systems:
            rows = rows_for(workload, s)
            if workload == "fanout-500" and median_row("target", s):
                rows = [median_row("target", s)] + rows
            if not rows:
                continue
            any_rows = True
            x = [r["deliveries_per_s"] for r in rows]
            c = COLORS.get(s)
            a1.plot(x, [max(r["p99_ms"], 0.01) for r in rows], marker="o", label=s, color=c)
            a2.plot(x, [r["gateway_us_per_delivery"] for r in rows], marker="o", label=s,
                    color=c)
        if not any_rows:
            plt.close(fig)
            continue
        a1.set_xlabel("deliveries/s")
        a1.set_ylabel("p99 latency, ms (log)")
        a1.set_yscale("log")
        a1.set_title("%s: p99 latency vs rate" % workload)
        a1.grid(True, alpha=.3)
        a1.legend()
        a2.set_xlabel("deliveries/s")
        a2.set_ylabel("server CPU µs per delivery")
        a2.set_title("%s: server CPU per delivery" % workload)
        a2.grid(True, alpha=.3)
        a2.set_ylim(bottom=0)
        fig.tight_layout()
        name = "%s-%s.png" % (path_prefix, workload)
        fig.savefig(name, dpi=90)
        plt.close(fig)
        made.append(name)
    return made


def write_report(path, args, systems, started, plan, notes):
    P = plan
    lines = ["# chatbroker benchmark", "",
             "Run %s (%s, %.1f min). Machine: %s; load average at start %s. The load generator "
             "(`chat-bench`, one process, one thread) shares the machine with the servers and "
             "with whatever else runs on it. **Server CPU per delivery** is the servers' own "
             "CPU time over the measured window (the scheduler's nanosecond count, "
             "/proc/PID/task/*/schedstat, every thread) divided by the deliveries received in "
             "it; it is steadier than latency on a busy machine but not immune: when the cores "
             "are contended, processes wake less often and handle more messages per wake-up, "
             "so CPU per delivery falls. Systems are therefore run one after the other under "
             "the same background, the targets' load several times interleaved. Latencies "
             "include every scheduling delay. \"others' CPU\" is what the rest of the machine "
             "(other processes) used meanwhile, in CPU seconds; the measured windows are a few "
             "seconds long."
             % (started, "quick" if args.quick else "full", (time.time() - T0) / 60, machine(),
                LOAD0), ""]
    v = versions()
    lines += ["Versions: " + ", ".join("%s %s" % kv for kv in v.items()) + ".", ""]
    lines += ["Setup: every system has its own redis-server (127.0.0.1, no persistence). "
              "chatbroker: two `chat-gateway` processes, `--workers 1` each (a master and one "
              "worker: the CPU of one event loop per gateway is plain), `--rate`/`--burst` "
              "1,000,000; clients in its `lobby` (every session starts there: no join). "
              "gorilla-hub: one process (an in-process hub cannot span two). gorilla-redis and "
              "Centrifugo: two instances over Redis. Go peers run with GOMAXPROCS = 2 (their "
              "default). Clients are spread round-robin over the instances, so most "
              "deliveries cross Redis. Messages are %s bytes of text with an id and a send "
              "timestamp (the permessage-deflate workload: %s bytes of English text); latency is "
              "from the sender's send call to the receiver's parse." % (64, P["deflate"]["size"]),
              ""]
    lines += notes
    # targets
    lines += ["## Against the targets (issue 4)", ""]
    cb = median_row("target", "chatbroker")
    peers_first = [(s, median_row("target", s)) for s in systems if s != "chatbroker"]
    peers_first = [(s, r) for s, r in peers_first if r]
    lines += ["| target | chatbroker | peers | verdict |", "|---|---|---|---|"]
    if cb and peers_first:
        best_s, best = min(peers_first, key=lambda sr: sr[1]["gateway_us_per_delivery"])
        ratio = best["gateway_us_per_delivery"] / max(cb["gateway_us_per_delivery"], 1e-9)
        need = best["gateway_us_per_delivery"] / 3
        lines.append("| server CPU per delivery ≥ 3× lower than the best peer (500 receivers, "
                     "100,000 deliveries/s) | %.2f µs (%.2f in user space) | best: %s %.2f µs "
                     "(%s; user space %s) | %.1f× lower: %s |" % (
                         cb["gateway_us_per_delivery"],
                         cb.get("gateway_user_us_per_delivery", 0), best_s,
                         best["gateway_us_per_delivery"],
                         ", ".join("%s %.2f" % (s, r["gateway_us_per_delivery"])
                                   for s, r in peers_first),
                         ", ".join("%s %.2f" % (s, r.get("gateway_user_us_per_delivery", 0))
                                   for s, r in peers_first), ratio,
                         "met" if ratio >= 3 else "missed: 3× needs %.2f µs, %.2f µs less" % (
                             need, cb["gateway_us_per_delivery"] - need)))
    if cb:
        lines.append("| p99 ≤ 5 ms at 100,000 deliveries/s, 500 clients | %s ms (p50 %s, "
                     "p99.9 %s) | %s | %s |" % (
                         ms(cb["p99_ms"]), ms(cb["p50_ms"]), ms(cb["p999_ms"]),
                         ", ".join("%s %s ms" % (s, ms(r["p99_ms"])) for s, r in peers_first),
                         "met" if cb["p99_ms"] <= 5 else "missed by %.1f ms" %
                         (cb["p99_ms"] - 5)))
    idle = {r["system"]: r for r in rows_for("idle")}
    if "chatbroker" in idle:
        r = idle["chatbroker"]
        worst = max(r.get("worker_bytes_per_conn") or [r["bytes_per_conn"] or 0])
        lines.append("| RSS per idle connection ≤ 4 KiB in a gateway worker at %d "
                     "connections | %s bytes (workers: %s) | %s | %s |" % (
                         P["idle"]["per_instance"], fmt(r["bytes_per_conn"]),
                         ", ".join(map(str, r.get("worker_bytes_per_conn", []))),
                         ", ".join("%s %s" % (s, fmt(x["bytes_per_conn"]))
                                   for s, x in idle.items() if s != "chatbroker"),
                         "met" if worst <= 4096 else "missed by %d bytes" % (worst - 4096)))
    losses = [r for r in RESULTS if r["system"] == "chatbroker" and r.get("workload") in
              ("rooms", "direct") and (r.get("lost") or r.get("duplicates"))]
    below = [r for r in losses if not saturation(r["workload_name"], "chatbroker") or
             r["deliveries_per_s"] <= saturation(r["workload_name"],
                                                 "chatbroker")["deliveries_per_s"]]
    lines.append("| zero loss and duplicates below saturation | %s | | %s |" % (
        "no loss or duplicate in any step" if not losses else
        "%d steps with loss or duplicates (the saturating steps: %s)" % (
            len(losses), ", ".join("%s at %d/s" % (r["workload_name"], r["rate"])
                                   for r in losses)),
        "met" if not losses else "see the tables"))
    lines += [""]
    # tables
    lines += ["## Fan-out", ""]
    lines += step_table("target", systems, "The targets' load: 500 clients in one room, "
                        "100,000 deliveries/s",
                        "200 messages/s from 10 senders × 500 receivers, %d s, run %d times "
                        "per system with the systems interleaved (so each sees the same "
                        "background). The targets table takes the medians." % (
                            P["target"]["duration"], P["target"]["repeat"]))
    lines += step_table("fanout-500", systems, "500 clients in one room, 10 senders: steps",
                        "From twice the targets' rate, the rate doubles until a step loses "
                        "messages, closes clients, cannot be sent at the offered rate or "
                        "passes p99 1 s.")
    lines += step_table("fanout-5000", systems, "5,000 clients in one room, 10 senders",
                        "First row: 20 messages/s × 5,000 = 100,000 deliveries/s; then "
                        "doubling. \"setup\" below is the time to connect and join.")
    sat = ["| system | fan-out 500: highest clean step | fan-out 5,000: highest clean step | "
           "setup of 5,000 clients |", "|---|---:|---:|---:|"]
    for s in systems:
        a, b = saturation("fanout-500", s), saturation("fanout-5000", s)
        f = first_step("fanout-5000", s)
        sat.append("| %s | %s | %s | %s |" % (
            s, "%d deliveries/s" % a["deliveries_per_s"] if a else "–",
            "%d deliveries/s" % b["deliveries_per_s"] if b else "–",
            "%.1f s" % f["setup_s"] if f else "–"))
    lines += ["### Saturation", "", "The highest step with no loss, no closed client and p99 "
              "under 1 s (a lower bound: the generator shares the two cores).", ""] + sat + [""]
    if PROFILE:
        lines += ["### Where chatbroker's CPU goes at the targets' load", "",
                  "`perf record -g` of one gateway worker for 4 s of the targets' load "
                  "(kernel symbols included: on loopback the sender's write() also runs the "
                  "receiver's TCP input and wakes it, all charged to the sender).", ""]
        lines += PROFILE
    for png in PLOTS:
        lines += ["![%s](%s)" % (os.path.basename(png), os.path.basename(png)), ""]
    lines += ["## Many rooms", ""]
    lines += step_table("rooms", systems, "5,000 clients in 500 rooms of 10, one sender per room",
                        "Each message reaches the 10 members of its room. The gorilla peers "
                        "have no rooms (n/a).")
    lines += ["## Direct messages", ""]
    lines += step_table("direct", systems, "1,000 clients: 100 senders, each sending to its 9 "
                        "receivers in turn",
                        "One delivery per message; loss and latency are counted per receiver. "
                        "chatbroker: `direct` to the receiver's id; Centrifugo: a publication "
                        "to a channel only the receiver subscribes. The gorilla peers cannot "
                        "address one client (n/a).")
    lines += ["## Idle memory", "",
              "Connections held open and idle (chatbroker: each session in one of %d rooms, "
              "out of the lobby; Centrifugo: each subscribed to one of %d channels; gorilla: "
              "connected). RSS growth of the server processes (from /proc) divided by the "
              "connections; kernel socket buffers are not in RSS. Redis's growth is apart "
              "(chatbroker subscribes one Redis channel per session)." % (
                  P["idle"]["rooms"], P["idle"]["rooms"]), "",
              "| system | connections | instances | setup s | RSS before KiB | RSS after KiB | "
              "bytes per connection | Redis bytes per connection |",
              "|---|---:|---:|---:|---|---|---:|---:|"]
    for s in systems:
        r = idle.get(s)
        if not r:
            lines.append("| %s | – |  |  |  |  |  |  |" % s)
            continue
        per = fmt(r["bytes_per_conn"])
        if r.get("worker_bytes_per_conn"):
            per += " (workers: %s)" % ", ".join(map(str, r["worker_bytes_per_conn"]))
        lines.append("| %s | %d of %d | %d | %.1f | %s | %s | %s | %s |" % (
            s, r["ready"], r["clients"], r["instances"], r["setup_s"],
            "+".join(map(str, r["rss_before_kib"])), "+".join(map(str, r["rss_after_kib"])),
            per, fmt(r["redis_bytes_per_conn"])))
    lines += ["", "## Connection churn", "",
              "%d clients at a time, each cycle: connect, join (chatbroker: a room of its own; "
              "Centrifugo: subscribe; gorilla: none), send one message, wait for it to come "
              "back, close (close handshake). Source addresses 127.0.0.2-9." %
              P["churn"]["clients"], "",
              "| system | cycles/s | failures | server CPU µs per cycle | cycle p50 ms | "
              "cycle p99 ms | bench CPU s | others' CPU s |",
              "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for s in systems:
        for r in rows_for("churn", s):
            lines.append("| %s | %.0f | %d | %.0f | %s | %s | %.2f | %.2f |" % (
                s, r["cycles_per_s"], r["failures"], r["gateway_us_per_cycle"],
                ms(r["p50_ms"]), ms(r["p99_ms"]), r["bench_cpu_s"], r["other_cpu_s"]))
    lines += [""]
    if rows_for("deflate"):
        lines += deflate_section(systems, P["deflate"])
    lines += ["## JSON lines", "", "Every line chat-bench printed (plus the idle lines "
              "run.py computes), tagged with `system` and `workload_name`.", "", "```json"]
    lines += [json.dumps(r, sort_keys=True) for r in RESULTS]
    lines += ["```", "", "Logs of this run: `%s`." % os.path.relpath(RUNDIR, ROOT), ""]
    with open(path, "w") as f:
        f.write("\n".join(lines))


# ---- main --------------------------------------------------------------------------------------


def main():
    global RUNDIR, T0, LOAD0, PLOTS
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--report", default=os.path.join(BUILD, "bench", "report.md"))
    ap.add_argument("--quick", action="store_true", help="a ~3 minute version")
    ap.add_argument("--systems", default=",".join(s.name for s in ALL_SYSTEMS),
                    help="comma-separated subset of: %s" % ", ".join(s.name
                                                                   for s in ALL_SYSTEMS))
    ap.add_argument("--workloads",
                    default="idle,target,fanout-500,fanout-5000,rooms,direct,churn,deflate",
                    help="comma-separated subset")
    ap.add_argument("--no-build", action="store_true", help="do not build the peers")
    ap.add_argument("--render", metavar="JSONL",
                    help="only write the report again from a run's JSON lines (report.jsonl)")
    ap.add_argument("--profile", action="store_true",
                    help="perf-record a chatbroker worker under the targets' load (needs perf)")
    args = ap.parse_args()

    T0 = time.time()
    LOAD0 = open("/proc/loadavg").read().split()[0]
    # logs next to the report: build/bench/run/ for report.md, <name>-run/ for others
    stem = os.path.splitext(os.path.basename(args.report))[0]
    RUNDIR = os.path.join(os.path.dirname(os.path.abspath(args.report)),
                          "run" if stem == "report" else stem + "-run")
    if args.render:
        return render_again(args)
    os.makedirs(RUNDIR, exist_ok=True)
    for f in os.listdir(RUNDIR):
        if f.endswith(".log"):
            os.unlink(os.path.join(RUNDIR, f))
    for path in (BENCH, GATEWAY, REDIS):
        if not os.access(path, os.X_OK):
            sys.exit("bench: %s missing (make release; Debian's redis-server)" % path)
    notes = []
    wanted = args.systems.split(",")
    if not args.no_build and any(s != "chatbroker" for s in wanted):
        log("building the peers (broker-tools/bench/peers/build.sh)")
        r = subprocess.run([os.path.join(HERE, "peers", "build.sh")])
        if r.returncode != 0:
            notes.append("**The peers did not build** (no Go, or no module proxy): chatbroker "
                         "alone.")
            wanted = ["chatbroker"]
            log("the peers did not build: chatbroker alone")
    systems = []
    for cls in ALL_SYSTEMS:
        if cls.name not in wanted:
            continue
        binary = {"gorilla-hub": os.path.join(PEERS, "gorilla-hub"),
                  "gorilla-redis": os.path.join(PEERS, "gorilla-redis"),
                  "centrifugo": os.path.join(PEERS, "bin", "centrifugo")}.get(cls.name, GATEWAY)
        if not os.access(binary, os.X_OK):
            notes.append("%s is not built (%s): left out." % (cls.name, binary))
            continue
        systems.append(cls())
    names = [s.name for s in systems]
    plan = plans(args.quick)
    workloads = args.workloads.split(",")
    started = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")

    def on_signal(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    try:
        # Idle memory first, on fresh processes; they then stay up for the rest.
        for s in systems:
            log("starting %s" % s.name)
            s.start()
            if "idle" in workloads:
                run_idle(s, plan["idle"])
        if "target" in workloads:  # the targets' load, repeated with the systems interleaved
            for rep in range(plan["target"]["repeat"]):
                for s in systems:
                    run_steps(s, "target", plan["target"], [])
                    if args.profile and rep == 0 and s.name == "chatbroker":
                        PROFILE.extend(profile(s, plan["target"]))
        for w in ("fanout-500", "fanout-5000", "rooms", "direct"):
            if w not in workloads:
                continue
            for s in systems:
                if (w == "rooms" and not s.rooms) or (w == "direct" and not s.direct):
                    continue
                p = plan[w]
                extra = (["--rooms", str(p["rooms"])] if w == "rooms" else
                         ["--direct"] if w == "direct" else [])
                run_steps(s, w, p, extra)
        if "churn" in workloads:
            for s in systems:
                run_churn(s, plan["churn"])
        if "deflate" in workloads:
            for s in systems:
                if s.deflate:
                    run_deflate(s, plan["deflate"])
    except KeyboardInterrupt:
        log("interrupted: stopping everything")
        notes.append("**The run was interrupted**; the tables hold what had finished.")
    finally:
        for s in systems:
            s.stop()
        stop_all()
    meta = {"started": started, "quick": args.quick, "systems": names, "notes": notes,
            "minutes": round((time.time() - T0) / 60, 1), "load0": LOAD0, "profile": PROFILE}
    with open(os.path.splitext(args.report)[0] + ".jsonl", "w") as f:
        f.write(json.dumps({"meta": meta}) + "\n")
        for r in RESULTS:
            f.write(json.dumps(r, sort_keys=True) + "\n")
    finish_report(args, names, started, plan, notes)
    log("report: %s (%.1f min)" % (args.report, (time.time() - T0) / 60))
    return 0


def finish_report(args, names, started, plan, notes):
    global PLOTS
    os.makedirs(os.path.dirname(os.path.abspath(args.report)), exist_ok=True)
    PLOTS = plot(os.path.splitext(os.path.abspath(args.report))[0], names)
    if not PLOTS:
        notes.append("No plots: python3-matplotlib is not installed for %s." % sys.executable)
    write_report(args.report, args, names, started, plan, notes)


def render_again(args):
    """--render: the report from a run's JSON lines (the first line holds the run's facts)."""
    global T0, LOAD0
    meta = {}
    with open(args.render) as f:
        for line in f:
            rec = json.loads(line)
            if "meta" in rec:
                meta = rec["meta"]
            else:
                RESULTS.append(rec)
    PROFILE.extend(meta.get("profile", []))
    args.quick = meta.get("quick", False)
    LOAD0 = meta.get("load0", "?")
    T0 = time.time() - 60 * meta.get("minutes", 0)
    names = meta.get("systems") or sorted({r["system"] for r in RESULTS})
    finish_report(args, names, meta.get("started", "?"), plans(args.quick),
                  list(meta.get("notes", [])))
    log("report: %s (from %s)" % (args.report, args.render))
    return 0


if __name__ == "__main__":
    RUNDIR, T0, LOAD0, PLOTS = None, 0, "?", []
    sys.exit(main())
