"""Shared parts of the cluster suites (native and compose).

- Prometheus text (/metrics) parsing and sums across gateways.
- HAProxy: its stats CSV, and a native haproxy process on the repository's own
  gateway/haproxy/haproxy.cfg plus a servers file (compose pairs the same file with
  servers-docker.cfg).
- TLS: a certificate made with the openssl command for the test, HTTP requests over TLS
  (gwtest's request writer and response reader on a TLS socket), chattest's ChatClient
  over wss://.
- Fleet: many chat members through HAProxy, each reconnecting and rejoining the test room
  whenever its session ends, a few of them sending numbered messages; check() says which
  member missed which message sent after it (re)joined.
Every wait is bounded in time and every loop in count.
"""

import asyncio
import bisect
import csv
import io
import json
import os
import random
import re
import signal
import socket
import ssl
import subprocess
import time
from collections import Counter
from pathlib import Path

import websockets

from chattest import open_client
from gwtest import HttpConn, HttpError, build_request, free_port, http_get

REPO_ROOT = Path(__file__).resolve().parents[2]
HAPROXY_DIR = REPO_ROOT / "gateway" / "haproxy"
HAPROXY_CFG = HAPROXY_DIR / "haproxy.cfg"
REPORT_DIR = REPO_ROOT / "build" / "cluster"
ROOM = "cluster"


def report(name, text):
    """Print a result and append it to build/cluster/<name>.txt (kept for the notes)."""
    print(text)
    try:
        REPORT_DIR.mkdir(parents=True, exist_ok=True)
        with open(REPORT_DIR / f"{name}.txt", "a") as f:
            f.write(time.strftime("%Y-%m-%dT%H:%M:%S ") + text + "\n")
    except OSError:
        pass


def wait_for(pred, timeout, what, interval=0.2):
    """Poll pred() until it returns a true value (returned); AssertionError after timeout."""
    deadline = time.monotonic() + timeout
    last = None
    for _ in range(int(timeout / interval) + 2):
        try:
            last = pred()
        except (OSError, HttpError, ValueError, RuntimeError, subprocess.SubprocessError) as e:
            last = e
        else:
            if last:
                return last
        if time.monotonic() > deadline:
            break
        time.sleep(interval)
    raise AssertionError(f"{what}: not within {timeout}s (last: {last!r})")


async def await_for(pred, timeout, what, interval=0.2):
    """wait_for for the event loop: pred() runs in a thread (it may block on HTTP)."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, wait_for, pred, timeout, what, interval)


# ---------------------------------------------------------------------------------------------
# Prometheus text

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$')
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    """{(name, ((label, value), ...)): float}; ValueError on a line that is not exposition."""
    out, typed = {}, set()
    for line in text.splitlines():
        if not line:
            continue
        if line.startswith("# TYPE "):
            typed.add(line.split()[2])
            continue
        if line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if not m:
            raise ValueError(f"not a Prometheus sample line: {line!r}")
        name = m.group(1)
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        if name not in typed and base not in typed:
            raise ValueError(f"sample {name} without a # TYPE line")
        labels = tuple(sorted(_LABEL.findall(m.group(2) or "")))
        out[(name, labels)] = float(m.group(3))
    return out


def total(samples, name):
    return sum(v for (n, _), v in samples.items() if n == name)


def by_worker(samples, name):
    return {dict(lb).get("worker"): v for (n, lb), v in samples.items() if n == name}


def check_histogram(samples, name="chat_delivery_latency_seconds"):
    """Buckets cumulative and +Inf equal to _count, per worker. Returns the problems."""
    problems = []
    workers = {dict(lb)["worker"] for (n, lb) in samples if n == f"{name}_count"}
    for w in workers:
        buckets = sorted(((float(dict(lb)["le"]), v) for (n, lb), v in samples.items()
                          if n == f"{name}_bucket" and dict(lb).get("worker") == w),
                         key=lambda x: x[0])
        values = [v for _, v in buckets]
        if values != sorted(values):
            problems.append(f"worker {w}: buckets not cumulative {values}")
        if not buckets or buckets[-1][0] != float("inf"):
            problems.append(f"worker {w}: no +Inf bucket")
        elif buckets[-1][1] != samples.get((f"{name}_count", (("worker", w),))):
            problems.append(f"worker {w}: +Inf bucket differs from _count")
    return problems


COUNTERS = ("chat_deliveries_total", "chat_fanout_frames_total", "chat_redis_published_total",
            "chat_redis_received_total", "chat_messages_in_total", "chat_bytes_in_total",
            "chat_delivery_latency_seconds_count")


def deltas(before, after):
    """{counter: sum over gateways of after - before}."""
    return {c: sum(total(after[g], c) - total(before.get(g, {}), c) for g in after)
            for c in COUNTERS}


# ---------------------------------------------------------------------------------------------
# HAProxy

def haproxy_rows(stats_port, timeout=3.0):
    """The stats CSV as a list of dicts (pxname, svname, status, scur, addr, check_status...)."""
    r = http_get(stats_port, "/stats;csv", timeout=timeout)
    if r.status != 200:
        raise HttpError(f"HAProxy stats answered {r.status}")
    text = r.body.decode("utf-8", "replace")
    if text.startswith("# "):
        text = text[2:]
    return list(csv.DictReader(io.StringIO(text)))


def haproxy_servers(stats_port, backend="gateways"):
    """{server name: row} of the backend's servers (slots in maintenance included)."""
    return {r["svname"]: r for r in haproxy_rows(stats_port)
            if r["pxname"] == backend and r["svname"] not in ("BACKEND", "FRONTEND")}


def haproxy_backend(stats_port, backend="gateways"):
    for r in haproxy_rows(stats_port):
        if r["pxname"] == backend and r["svname"] == "BACKEND":
            return r
    raise ValueError(f"no backend {backend} in HAProxy stats")


def servers_summary(servers):
    return ", ".join(f"{n}={r['status']}({r.get('check_status', '')})"
                     for n, r in sorted(servers.items()) if r.get("addr"))


class HAProxy:
    """A native haproxy on gateway/haproxy/haproxy.cfg plus a generated servers file.

    servers: [(name, "host:port")]. The address to bind and the stats address come through
    the same environment variables compose's image uses (HAPROXY_BIND, HAPROXY_STATS_BIND);
    env adds others (the TLS listener's HAPROXY_TLS_BIND, HAPROXY_TLS_CRT...).
    """

    def __init__(self, workdir, servers, env=None):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.servers = list(servers)
        self.extra_env = dict(env or {})
        self.port = None
        self.stats_port = None
        self.proc = None
        self.log_path = self.workdir / "haproxy.log"
        self.servers_path = self.workdir / "servers.cfg"

    def servers_text(self):
        lines = ["# Generated by tests/cluster: the native cluster's gateways at fixed",
                 "# addresses (compose finds them by DNS: servers-docker.cfg).",
                 "backend gateways"]
        lines += [f"    server {name} {addr}" for name, addr in self.servers]
        return "\n".join(lines) + "\n"

    def argv(self, check=False):
        return ["haproxy", *(["-c", "-q"] if check else ["-db"]), "-f", str(HAPROXY_CFG),
                "-f", str(self.servers_path)]

    def env(self):
        env = dict(os.environ)
        env.update(HAPROXY_BIND=f"127.0.0.1:{self.port}",
                   HAPROXY_STATS_BIND=f"127.0.0.1:{self.stats_port}")
        env.update(self.extra_env)
        return env

    def start(self, timeout=10.0):
        self.port, self.stats_port = free_port(), free_port()
        self.servers_path.write_text(self.servers_text())
        p = subprocess.run(self.argv(check=True), env=self.env(), capture_output=True,
                           text=True, timeout=30, stdin=subprocess.DEVNULL)
        if p.returncode != 0:
            raise RuntimeError(f"haproxy -c refused the configuration:\n{p.stdout}{p.stderr}")
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.argv(), env=self.env(), stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        try:
            wait_for(lambda: self.proc.poll() is None and haproxy_servers(self.stats_port),
                     timeout, "haproxy stats page")
        except AssertionError:
            self.stop()
            raise AssertionError("haproxy did not start:\n" + self.log_tail())
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def status(self):
        return {n: r["status"] for n, r in haproxy_servers(self.stats_port).items()}

    def wait_status(self, want, timeout, what=None):
        """want: {server: status}: UP or DOWN exactly (not "UP 1/2", a server in transition),
        MAINT as a prefix. Returns the seconds it took."""
        def ok(have, w):
            return have.startswith(w) if w == "MAINT" else have == w

        t0 = time.monotonic()
        wait_for(lambda: all(ok(self.status().get(n, ""), s) for n, s in want.items()),
                 timeout, what or f"HAProxy servers {want}")
        return time.monotonic() - t0

    def stop(self):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        return self.proc.returncode

    def log_tail(self, n=4000):
        try:
            return self.log_path.read_text("utf-8", "replace")[-n:]
        except OSError:
            return ""


# ---------------------------------------------------------------------------------------------
# TLS


def make_cert(directory, name="localhost"):
    """A self-signed RSA certificate for the DNS name `name` only (no IP address: a client
    that checks names must ask for `name`), made with the openssl command.

    Returns {"dir": a directory holding only site.pem, the chain and key in one file as
    HAProxy loads it (what compose's CHAT_TLS_DIR names), "cert": the certificate alone,
    what a client trusts}.
    """
    directory = Path(directory)
    tls = directory / "tls"
    tls.mkdir(parents=True, exist_ok=True)
    key, cert = directory / "key.pem", directory / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-keyout", str(key), "-out", str(cert), "-subj", f"/CN={name}",
                    "-addext", f"subjectAltName=DNS:{name}"],
                   check=True, capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
    site = tls / "site.pem"
    site.write_bytes(cert.read_bytes() + key.read_bytes())
    site.chmod(0o600)  # as a key should be; compose's HAProxy copes with a root-only file
    key.unlink()
    return {"dir": tls, "cert": cert, "name": name}


def trusting(cert):
    """A client context that trusts exactly the certificate made by make_cert (not the
    system's authorities: given a cafile, create_default_context loads nothing else), with
    certificate and host name checks on."""
    ctx = ssl.create_default_context(cafile=str(cert["cert"]))
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    return ctx


def tls_conn(port, ctx, server_hostname, timeout=5.0):
    """gwtest's HttpConn over TLS to 127.0.0.1:port; ssl.SSLError when the handshake fails.
    .sock is the ssl.SSLSocket (version(), selected_alpn_protocol(), cipher())."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        sock = ctx.wrap_socket(raw, server_hostname=server_hostname)
    except BaseException:
        raw.close()
        raise
    return HttpConn(port, timeout=timeout, sock=sock)


def https_get(port, path, ctx, server_hostname, headers=None, timeout=5.0):
    """One GET over TLS, Host `server_hostname:port`; returns gwtest's Response with .tls =
    (TLS version, ALPN protocol) of the connection."""
    hdrs = list(headers or []) + [("Connection", "close")]
    with tls_conn(port, ctx, server_hostname, timeout) as c:
        c.send(build_request("GET", path, hdrs, host=f"{server_hostname}:{port}"))
        r = c.read_response(timeout=timeout)
        r.tls = (c.sock.version(), c.sock.selected_alpn_protocol())
    return r


async def open_tls_client(port, ctx, server_hostname, name="client", rooms=(), timeout=10.0):
    """chattest's open_client on wss://server_hostname:port/ws, connected to 127.0.0.1: welcome
    first, our own presence in lobby, then each of `rooms` joined."""
    return await open_client(port, name, rooms=rooms, timeout=timeout,
                             url=f"wss://{server_hostname}:{port}/ws", ssl=ctx,
                             host="127.0.0.1", server_hostname=server_hostname)


# ---------------------------------------------------------------------------------------------
# the fleet of chat members


class Sent:
    __slots__ = ("t_sent", "t_conf", "sender", "failed")

    def __init__(self, t_sent, sender):
        self.t_sent = t_sent
        self.t_conf = None  # when the sender got its own message back (it was published)
        self.sender = sender
        self.failed = False


class Session:
    """One WebSocket session of a member: where, when it (re)joined, how it ended, what it got."""

    def __init__(self, member, client, t_joined):
        self.member = member
        self.client = client
        self.gateway = (client.welcome or {}).get("gateway")
        self.id = client.id
        self.t_joined = t_joined
        self.t_closed = None     # the close frame (or the loss) seen
        self.t_tcp_closed = None  # the connection closed, after the closing handshake
        self.code = None
        self.got = Counter()
        self.last_seq = {}
        self.disorder = 0
        self.disorder_example = None

    @property
    def open(self):
        return self.t_closed is None


class Member:
    def __init__(self, fleet, idx):
        self.fleet = fleet
        self.idx = idx
        self.sessions = []
        self.current = None
        self.failures = 0
        self.last_error = None
        self.task = None
        self.seq = 0

    async def run(self):
        f = self.fleet
        delay = 0.1
        for _ in range(1_000_000):
            if f.stopping:
                return
            c = None
            try:
                async with f.open_sem:
                    c = await open_client(f.port, name=f"m{self.idx}", timeout=f.open_timeout)
                    # Out of the lobby, into the test room: presence traffic stays one room's.
                    await c.send({"type": "leave", "room": "lobby"})
                    await c.join(f.room, timeout=f.open_timeout)
            except asyncio.CancelledError:
                if c is not None:
                    await c.close()
                raise
            except Exception as e:  # refused, 503 from HAProxy, timeouts, closes
                self.failures += 1
                self.last_error = repr(e)[:300]
                if c is not None:
                    await c.close()
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, 2.0)
                continue
            delay = 0.1
            s = Session(self, c, time.monotonic())
            self.sessions.append(s)
            self.current = s
            await self._until_closed(s)
            self.current = None
            if f.stopping:
                f.scan(s)
                s.client = None
                await c.close()
                return
            # The rest (frames queued before the close frame, the TCP close) is read in the
            # background while the member reconnects.
            f.closers.add(asyncio.ensure_future(self._finish(s, c)))
            # Reconnect soon, spread a little (the gateway already spreads its closes).
            await asyncio.sleep(random.uniform(0.02, 0.2))

    async def _until_closed(self, s):
        """Until the server's close frame arrives or the connection is lost.

        websockets raises ConnectionClosed from recv() only once the TCP connection is
        closed too (up to its close_timeout later), so the session's end is taken from the
        protocol state: OPEN no more. The close code is the received frame's (1006: none).
        """
        f = self.fleet
        ws = s.client.ws
        for _ in range(100_000_000):
            if not ws.open or s.client.closed is not None:
                break
            if f.stopping:
                return
            await asyncio.sleep(0.05)
        s.t_closed = time.monotonic()
        rcvd = getattr(ws, "close_rcvd", None)
        s.code = rcvd.code if rcvd is not None else 1006

    async def _finish(self, s, c):
        for _ in range(200):  # the reader ends at the TCP close (bounded by close_timeout)
            if c.closed is not None:
                break
            await asyncio.sleep(0.05)
        s.t_tcp_closed = time.monotonic()
        self.fleet.scan(s)
        rcvd = getattr(c.closed, "rcvd", None)
        if rcvd is not None:
            s.code = rcvd.code
        s.client = None
        await c.close()


class Fleet:
    """n members through HAProxy on 127.0.0.1:port, all in one room.

    async with Fleet(port, n) as fleet: ... (members connect on entry, close on exit)
    """

    def __init__(self, port, n, room=ROOM, open_timeout=10.0, concurrency=40):
        self.port = port
        self.n = n
        self.room = room
        self.open_timeout = open_timeout
        self.concurrency = concurrency
        self.members = []
        self.sent = {}
        self.stopping = False
        self.senders = []
        self.sender_members = []
        self.closers = set()

    async def __aenter__(self):
        self.open_sem = asyncio.Semaphore(self.concurrency)
        self.stop_event = asyncio.Event()
        self.senders_stop = asyncio.Event()
        self.members = [Member(self, i) for i in range(self.n)]
        for m in self.members:
            m.task = asyncio.ensure_future(m.run())
        self.scanner = asyncio.ensure_future(self._scan_loop())
        return self

    async def __aexit__(self, *exc):
        await self.close()

    async def close(self):
        self.stopping = True
        self.senders_stop.set()
        self.stop_event.set()
        tasks = [m.task for m in self.members] + self.senders + [self.scanner] + \
            list(self.closers)
        done, pending = await asyncio.wait(tasks, timeout=20)
        for t in pending:
            t.cancel()
        if pending:
            await asyncio.wait(pending, timeout=5)
        closing = [m.current.client.close() for m in self.members
                   if m.current is not None and m.current.client is not None]
        if closing:
            await asyncio.wait_for(asyncio.gather(*closing, return_exceptions=True), 20)

    # -- who is where --

    def open_sessions(self):
        return [m.current for m in self.members if m.current is not None]

    def by_gateway(self):
        return Counter(s.gateway for s in self.open_sessions())

    async def wait_connected(self, timeout, avoid=(), what="every member connected"):
        """Until every member has a joined session, none on a gateway in `avoid`."""
        t0 = time.monotonic()
        deadline = t0 + timeout
        for _ in range(int(timeout / 0.05) + 2):
            cur = [m.current for m in self.members]
            if all(s is not None and s.gateway not in avoid for s in cur):
                return time.monotonic() - t0
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        missing = [m for m in self.members if m.current is None]
        bad = [m for m in self.members if m.current is not None and m.current.gateway in avoid]
        raise AssertionError(
            f"{what}: not within {timeout}s; {len(missing)} without a session (last errors: "
            f"{[m.last_error for m in missing[:3]]}), {len(bad)} on {sorted(avoid)}; "
            f"by gateway: {dict(self.by_gateway())}")

    # -- received frames --

    def scan(self, s):
        """Move what the session received into its counters; free the frames."""
        c = s.client
        if c is None:
            return
        frames = c.all
        n = len(frames)
        now = time.monotonic()
        own = str(s.member.idx)
        for f in frames[:n]:
            if f.get("type") != "message" or f.get("room") != self.room:
                continue
            text = f.get("message", "")
            s.got[text] += 1
            sender, _, seq = text.partition(":")
            try:
                seq = int(seq)
            except ValueError:
                continue
            if seq <= s.last_seq.get(sender, 0):
                s.disorder += 1
                if s.disorder_example is None:
                    rec = self.sent.get(text)
                    age = f", sent {now - rec.t_sent:.1f}s before" if rec else ""
                    s.disorder_example = (f"{text} after {sender}:{s.last_seq[sender]} on "
                                          f"{s.gateway}{age}")
            s.last_seq[sender] = seq
            if sender == own:
                rec = self.sent.get(text)
                if rec is not None and rec.t_conf is None:
                    rec.t_conf = now
        del frames[:n]
        c.inbox.clear()
        c.raw.clear()

    def scan_all(self):
        for s in self.open_sessions():
            self.scan(s)

    async def _scan_loop(self):
        for _ in range(10_000_000):
            if self.stopping:
                return
            self.scan_all()
            await asyncio.sleep(0.1)

    # -- sending --

    def start_senders(self, count=3, rate=4.0):
        """count members (the first ones) each send `rate` numbered messages a second."""
        self.senders_stop.clear()
        self.sender_members = self.members[:count]
        self.senders = [asyncio.ensure_future(self._sender(m, rate)) for m in self.sender_members]

    async def stop_senders(self):
        self.senders_stop.set()
        if self.senders:
            await asyncio.wait(self.senders, timeout=10)
        self.senders = []

    async def send_one(self, m):
        """One numbered message from member m, now; returns its text, or None if not sent."""
        s = m.current
        if s is None or s.client is None or s.client.closed is not None:
            return None
        m.seq += 1
        text = f"{m.idx}:{m.seq}"
        rec = Sent(time.monotonic(), m.idx)
        self.sent[text] = rec
        try:
            await s.client.say(self.room, text)
        except Exception:
            rec.failed = True
            return None
        return text

    async def _sender(self, m, rate):
        interval = 1.0 / rate
        nxt = time.monotonic() + random.uniform(0, interval)
        for _ in range(10_000_000):
            if self.senders_stop.is_set():
                return
            nxt += interval
            await asyncio.sleep(max(0.0, nxt - time.monotonic()))
            await self.send_one(m)

    @staticmethod
    def json_len(room, text):
        """Bytes of the frame ChatClient.say sends (for chat_bytes_in_total)."""
        return len(json.dumps({"type": "message", "room": room, "message": text}).encode())

    # -- the check --

    def confirmed(self):
        return sorted((r.t_sent, t) for t, r in self.sent.items() if r.t_conf is not None)

    def check(self, not_before=0.0, drain_margin=1.0, open_only=False):
        """Which session missed which confirmed message sent after it (re)joined.

        A message counts once its sender got it back (it was published). Sessions still open
        must have every message sent after their join (and after not_before); sessions the
        gateway closed with 1001 (drain) those sent up to drain_margin seconds before the
        close frame came; sessions that died otherwise (1006: a killed gateway) are not
        checked.
        """
        self.scan_all()
        now = time.monotonic()
        conf = self.confirmed()
        times = [t for t, _ in conf]
        out = {"messages_sent": len(self.sent), "messages_confirmed": len(conf),
               "sessions_checked": 0, "deliveries_required": 0, "missing": 0,
               "duplicates": 0, "out_of_order": 0, "examples": []}
        for m in self.members:
            for s in m.sessions:
                if s.open:
                    end = now
                elif open_only:
                    continue
                elif s.code == 1001:
                    end = s.t_closed - drain_margin
                else:
                    continue
                start = max(s.t_joined, not_before)
                lo, hi = bisect.bisect_right(times, start), bisect.bisect_left(times, end)
                need = [t for _, t in conf[lo:hi]]
                out["sessions_checked"] += 1
                out["deliveries_required"] += len(need)
                miss = [t for t in need if s.got[t] == 0]
                out["missing"] += len(miss)
                out["duplicates"] += sum(k - 1 for k in s.got.values() if k > 1)
                out["out_of_order"] += s.disorder
                if s.disorder_example and len(out["examples"]) < 5:
                    out["examples"].append(f"member {m.idx} got {s.disorder_example}")
                if miss and len(out["examples"]) < 5:
                    out["examples"].append(
                        f"member {m.idx} session on {s.gateway} joined "
                        f"{s.t_joined - now:+.2f}s closed "
                        f"{'-' if s.open else f'{s.t_closed - now:+.2f}s code {s.code}'}: "
                        f"missed {len(miss)} of {len(need)}, e.g. {miss[:3]} sent at "
                        f"{[round(self.sent[t].t_sent - now, 2) for t in miss[:3]]}")
        return out

    async def wait_delivered(self, timeout, not_before=0.0):
        """Until every open session has every message it must have; returns check()
        (after the sessions that ended have been read to their end)."""
        deadline = time.monotonic() + timeout
        pending = [t for t in self.closers if not t.done()]
        if pending:
            await asyncio.wait(pending, timeout=timeout)
        for _ in range(int(timeout / 0.1) + 2):
            r = self.check(not_before=not_before, open_only=True)
            if r["missing"] == 0 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        return self.check(not_before=not_before)

    def reconnect_times(self, since=0.0):
        """Seconds from a session's end (after since) to the member's next joined session."""
        out = []
        for m in self.members:
            for a, b in zip(m.sessions, m.sessions[1:]):
                if a.t_closed is not None and a.t_closed >= since:
                    out.append(b.t_joined - a.t_closed)
        return out

    def closed_since(self, since, gateway=None):
        """Sessions closed after `since` (on `gateway`, if given)."""
        return [s for m in self.members for s in m.sessions
                if s.t_closed is not None and s.t_closed >= since
                and (gateway is None or s.gateway == gateway)]


def close_lags(fleet, since=0.0):
    """Seconds from a close frame to the end of the closing handshake (TCP closed, as the
    client saw it)."""
    return [s.t_tcp_closed - s.t_closed for m in fleet.members for s in m.sessions
            if s.t_closed is not None and s.t_closed >= since and s.t_tcp_closed is not None]


def describe_times(xs):
    if not xs:
        return "none"
    xs = sorted(xs)
    p95 = xs[max(0, int(len(xs) * 0.95) - 1)]
    return f"n={len(xs)} median={xs[len(xs) // 2]:.2f}s p95={p95:.2f}s max={xs[-1]:.2f}s"


async def metrics_add_up(fleet, fetch, backend_scur=None, messages=10, sender=None):
    """With the room quiet: sessions per gateway match the clients' welcomes, and sending
    `messages` messages moves the counters of all gateways by exactly what was delivered.

    fetch(): {gateway id: parsed /metrics} (blocking; run in a thread). backend_scur():
    HAProxy's current sessions to the gateways, or None. Returns a dict of the numbers.
    """
    loop = asyncio.get_running_loop()
    before = await loop.run_in_executor(None, fetch)
    sessions = fleet.open_sessions()
    want = Counter(s.gateway for s in sessions)
    got = {g: int(total(m, "chat_sessions_open")) for g, m in before.items()}
    problems = []
    if sum(got.values()) != len(sessions):
        problems.append(f"sum of chat_sessions_open {sum(got.values())} != {len(sessions)} "
                        f"connected clients")
    if {g: n for g, n in got.items() if n} != dict(want):
        problems.append(f"chat_sessions_open per gateway {got} != clients' welcomes "
                        f"{dict(want)}")
    if backend_scur is not None:
        scur = await loop.run_in_executor(None, backend_scur)
        if scur != len(sessions):
            problems.append(f"HAProxy backend scur {scur} != {len(sessions)} clients")
    busy_workers = sum(1 for m in before.values()
                       for v in by_worker(m, "chat_sessions_open").values() if v > 0)
    sender = sender or fleet.members[0]
    t_start = time.monotonic()
    texts = []
    for _ in range(messages):
        t = await fleet.send_one(sender)
        if t is None:
            problems.append("a quiet-phase message could not be sent")
        texts.append(t)
        await asyncio.sleep(0.06)
    r = await fleet.wait_delivered(30, not_before=t_start - 0.001)
    got_all = all(s.got[t] == 1 for s in fleet.open_sessions() for t in texts if t)
    if not got_all or r["missing"]:
        problems.append(f"quiet-phase messages not delivered to all: {r}")
    await asyncio.sleep(0.3)
    after = await loop.run_in_executor(None, fetch)
    d = deltas(before, after)
    n, m = len(sessions), len([t for t in texts if t])
    expect = {
        "chat_deliveries_total": m * n,
        "chat_fanout_frames_total": m * busy_workers,
        "chat_redis_received_total": m * busy_workers,
        "chat_delivery_latency_seconds_count": m * busy_workers,
        "chat_redis_published_total": m,
        "chat_messages_in_total": m,
        "chat_bytes_in_total": sum(Fleet.json_len(fleet.room, t) for t in texts if t),
    }
    for k, v in expect.items():
        if d[k] != v:
            problems.append(f"sum of {k} moved by {d[k]:g}, expected {v}")
    for g, s in after.items():
        for p in check_histogram(s):
            problems.append(f"{g}: {p}")
    return {"clients": n, "by_gateway": dict(want), "busy_workers": busy_workers,
            "messages": m, "deltas": d, "expected": expect, "problems": problems}
