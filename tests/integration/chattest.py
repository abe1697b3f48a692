"""Helpers for the chat protocol tests (tests/integration/test_chat*.py).

ChatClient: an asyncio client on python3-websockets 10.4 for GET /ws. A background task reads
every frame into `all` (everything, in order) and `inbox` (not yet taken); tests take frames
by predicate with a bounded wait. Every wait is bounded in time, every loop in count.
"""

import asyncio
import json
import os
import re
import select
import socket
import subprocess
import time

import websockets
from websockets.exceptions import ConnectionClosed

from gwtest import HttpError, http_get

ID_RE = re.compile(r"^[0-9a-f]{32}$")
MSG_ID_RE = re.compile(r"^[0-9a-f]{16}-[0-9a-f]+$")


def run(coro, timeout=45):
    """Run one test coroutine under a hard time limit."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


# ---------------------------------------------------------------------------------------------
# /healthz


def healthz(port, timeout=2.0):
    """Status of GET /healthz, or None when the request fails."""
    try:
        return http_get(port, "/healthz", timeout=timeout).status
    except (OSError, HttpError):
        return None


def wait_accepting(g, timeout=10.0):
    """For a Gateway started with wait=False: wait until it accepts TCP connections."""
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / 0.05) + 2):
        if not g.alive():
            raise AssertionError(f"{g.name} exited before accepting:\n{g.log_tail()}")
        try:
            with socket.create_connection((g.host, g.port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
    raise AssertionError(f"{g.name} not accepting after {timeout}s:\n{g.log_tail()}")


def wait_healthz(port, want, timeout):
    """Poll /healthz every 0.1 s until it answers `want`; return the seconds it took.

    Raises AssertionError with the last status seen when it does not within timeout.
    """
    start = time.monotonic()
    last = None
    for _ in range(int(timeout / 0.1) + 2):
        last = healthz(port, timeout=1.0)
        if last == want:
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            break
        time.sleep(0.1)
    raise AssertionError(f"/healthz on port {port} still {last} after {timeout}s (want {want})")


async def async_wait_healthz(port, want, timeout):
    return await asyncio.get_running_loop().run_in_executor(None, wait_healthz, port, want,
                                                            timeout)


# ---------------------------------------------------------------------------------------------
# predicates over received frames (dicts; non-JSON frames are {"_raw": ...})


def is_type(t):
    return lambda f: f.get("type") == t


def is_error(code=None):
    return lambda f: f.get("type") == "error" and (code is None or f.get("code") == code)


def is_presence(room, event, client=None):
    return lambda f: (f.get("type") == "presence" and f.get("room") == room
                      and f.get("event") == event
                      and (client is None or f.get("client") == client))


def is_message(room=None, text=None, sender=None):
    return lambda f: (f.get("type") == "message" and (room is None or f.get("room") == room)
                      and (text is None or f.get("message") == text)
                      and (sender is None or f.get("from") == sender))


def is_direct(text=None, sender=None):
    return lambda f: (f.get("type") == "direct" and (text is None or f.get("message") == text)
                      and (sender is None or f.get("from") == sender))


# ---------------------------------------------------------------------------------------------
# the client


def frame_dict(m):
    """A received WebSocket message as a dict: the JSON object it holds, {"_binary": bytes},
    or {"_raw": text} for text that is not a JSON object."""
    if isinstance(m, bytes):
        return {"_binary": m}
    try:
        f = json.loads(m)
    except ValueError:
        return {"_raw": m}
    return f if isinstance(f, dict) else {"_raw": m}


class ChatClient:
    def __init__(self, ws, name):
        self.ws = ws
        self.name = name
        self.all = []      # every frame received, in order (dicts)
        self.inbox = []    # frames not yet taken
        self.raw = []      # the text of every text frame, in order
        self.closed = None  # the ConnectionClosed that ended the reader, if any
        self.id = None
        self.welcome = None
        self._changed = asyncio.Event()
        self._reader = asyncio.get_running_loop().create_task(self._read())

    def __repr__(self):
        return f"<ChatClient {self.name} {self.id}>"

    async def _read(self):
        try:
            for _ in range(10_000_000):
                m = await self.ws.recv()
                if not isinstance(m, bytes):
                    self.raw.append(m)
                f = frame_dict(m)
                self.all.append(f)
                self.inbox.append(f)
                self._changed.set()
        except ConnectionClosed as e:
            self.closed = e
        finally:
            self._changed.set()

    async def _wait_change(self, deadline):
        left = deadline - asyncio.get_running_loop().time()
        if left <= 0:
            return False
        self._changed.clear()
        try:
            await asyncio.wait_for(self._changed.wait(), left)
        except asyncio.TimeoutError:
            return False
        return True

    async def take(self, pred, timeout=5.0, what="a frame"):
        """Remove and return the first frame of the inbox matching pred (waiting for it)."""
        deadline = asyncio.get_running_loop().time() + timeout
        for _ in range(1_000_000):
            for i, f in enumerate(self.inbox):
                if pred(f):
                    del self.inbox[i]
                    return f
            if self.closed is not None:
                raise AssertionError(f"{self.name}: connection closed ({self.closed}) while "
                                     f"waiting for {what}; inbox: {self.inbox[-10:]}")
            if not await self._wait_change(deadline):
                break
        raise AssertionError(f"{self.name}: no {what} within {timeout}s; "
                             f"inbox (last 10): {self.inbox[-10:]}")

    async def next(self, timeout=5.0, what="a frame", skip=None):
        """The next frame of the inbox (oldest first), skipping those `skip` matches."""
        return await self.take(lambda f: not (skip and skip(f)), timeout, what)

    async def wait_until(self, cond, timeout=5.0, what="a condition"):
        """Wait until cond() holds (checked after each frame); bounded."""
        deadline = asyncio.get_running_loop().time() + timeout
        for _ in range(10_000_000):
            if cond():
                return
            if self.closed is not None:
                raise AssertionError(f"{self.name}: connection closed ({self.closed}) while "
                                     f"waiting for {what}")
            if not await self._wait_change(deadline):
                break
        if cond():
            return
        raise AssertionError(f"{self.name}: {what} not reached within {timeout}s")

    def matching(self, pred, frames=None):
        return [f for f in (self.inbox if frames is None else frames) if pred(f)]

    async def send(self, obj):
        """Send a dict as JSON, or a str/bytes as it is."""
        if isinstance(obj, dict):
            obj = json.dumps(obj)
        await self.ws.send(obj)

    async def hello(self, username, email=None):
        m = {"type": "hello", "username": username}
        if email is not None:
            m["email"] = email
        await self.send(m)

    async def join(self, room, timeout=5.0):
        """Join and wait for our own presence join (the proof we hear the room)."""
        await self.send({"type": "join", "room": room})
        return await self.take(is_presence(room, "join", self.id), timeout,
                               f"own presence join of {room}")

    async def say(self, room, text):
        await self.send({"type": "message", "room": room, "message": text})

    async def direct(self, to, text):
        await self.send({"type": "direct", "to": to, "message": text})

    async def ping(self, timeout=3.0):
        """A WebSocket ping; returns the round-trip time."""
        t0 = time.monotonic()
        waiter = await self.ws.ping()
        await asyncio.wait_for(waiter, timeout)
        return time.monotonic() - t0

    @property
    def is_open(self):
        return self.closed is None and self.ws.open

    async def close(self):
        try:
            await asyncio.wait_for(self.ws.close(), 5)
        except (asyncio.TimeoutError, OSError, ConnectionClosed):
            pass
        self._reader.cancel()
        try:
            await self._reader
        except (asyncio.CancelledError, Exception):
            pass


async def open_client(port, name="client", hello=None, email=None, rooms=(), lobby=True,
                      timeout=5.0, query="", headers=None, subprotocols=None, url=None,
                      **connect_kw):
    """Connect to ws://127.0.0.1:port/ws (plus `query`, e.g. "?token=..."), or to `url` with
    connect_kw for websockets.connect (ssl=, host=, server_hostname= for wss://); the first
    frame must be `welcome`. Waits for our presence join of lobby (unless lobby=False), sends
    hello when given, joins `rooms` (waiting for each presence)."""
    ws = await websockets.connect(url or f"ws://127.0.0.1:{port}/ws{query}", ping_interval=None,
                                  open_timeout=timeout, close_timeout=2, max_size=4 << 20,
                                  max_queue=None, extra_headers=headers,
                                  subprotocols=subprotocols, **connect_kw)

    c = ChatClient(ws, name)
    try:
        first = await c.next(timeout, "welcome")
        assert first.get("type") == "welcome", f"{name}: first frame is not welcome: {first}"
        c.welcome = first
        c.id = first.get("id")
        if lobby:
            await c.take(is_presence("lobby", "join", c.id), timeout, "own presence join of lobby")
        if hello is not None:
            await c.hello(hello, email)
        for room in rooms:
            await c.join(room, timeout)
    except BaseException:
        await c.close()
        raise
    return c


class Clients:
    """async with Clients() as cs: a = await cs.open(port, ...); every client is closed at exit."""

    def __init__(self):
        self.clients = []

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await asyncio.gather(*(c.close() for c in self.clients), return_exceptions=True)

    async def open(self, port, name=None, **kw):
        c = await open_client(port, name or f"c{len(self.clients)}", **kw)
        self.clients.append(c)
        return c

    async def close(self, c):
        await c.close()


async def settle(seconds=0.3):
    await asyncio.sleep(seconds)


# ---------------------------------------------------------------------------------------------
# raw frames (for what a raw socket reads)


def parse_frames(data, limit=1_000_000):
    """Split server frames out of bytes; returns (list of (opcode, payload), leftover bytes)."""
    out, i = [], 0
    for _ in range(limit):
        if len(data) - i < 2:
            break
        b0, b1 = data[i], data[i + 1]
        n, off = b1 & 0x7F, 2
        if n == 126:
            if len(data) - i < 4:
                break
            n, off = int.from_bytes(data[i + 2:i + 4], "big"), 4
        elif n == 127:
            if len(data) - i < 10:
                break
            n, off = int.from_bytes(data[i + 2:i + 10], "big"), 10
        if len(data) - i < off + n:
            break
        out.append((b0 & 0xF, data[i + off:i + off + n]))
        i += off + n
    return out, data[i:]


# ---------------------------------------------------------------------------------------------
# redis-cli MONITOR


class Monitor:
    """`redis-cli MONITOR` as a subprocess, read with bounded waits; stopped by PID."""

    def __init__(self, cli_argv):
        self.proc = subprocess.Popen(list(cli_argv) + ["MONITOR"], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.buf = b""
        self.lines = []
        self.checked = 0  # lines already offered to a wait_line predicate

    def read_lines(self, timeout):
        """Read what arrives within timeout (at least one read attempt); return new lines."""
        deadline = time.monotonic() + timeout
        new = []
        fd = self.proc.stdout.fileno()
        for _ in range(100_000):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            r, _, _ = select.select([fd], [], [], left)
            if not r:
                break
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            self.buf += chunk
            *done, self.buf = self.buf.split(b"\n")
            new += [ln.rstrip(b"\r") for ln in done]
            if new:
                break
        self.lines += new
        return new

    def wait_line(self, pred, timeout):
        """The first line not yet checked that matches pred (lines before it are passed)."""
        deadline = time.monotonic() + timeout
        for _ in range(100_000):
            while self.checked < len(self.lines):
                ln = self.lines[self.checked]
                self.checked += 1
                if pred(ln):
                    return ln
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self.read_lines(left)
        raise AssertionError(f"MONITOR showed no matching line within {timeout}s; "
                             f"last lines: {self.lines[-10:]}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc.stdout.close()


def monitor_args(line):
    """The arguments of one MONITOR line, unescaped to bytes.

    Format: 1700000000.123456 [0 127.0.0.1:1234] "PUBLISH" "chat:room:lobby" "{\\"type\\"..."
    """
    i = line.find(b"] ")
    if i < 0:
        raise ValueError(f"not a MONITOR line: {line!r}")
    s, args, p = line[i + 2:], [], 0
    for _ in range(10_000):
        while p < len(s) and s[p] == 0x20:
            p += 1
        if p >= len(s):
            break
        if s[p] != 0x22:
            raise ValueError(f"unquoted argument in {line!r}")
        p += 1
        arg = bytearray()
        for _ in range(len(s) + 1):
            c = s[p]
            if c == 0x22:
                p += 1
                break
            if c == 0x5C:
                e = s[p + 1]
                if e == ord("x"):
                    arg.append(int(s[p + 2:p + 4], 16))
                    p += 4
                    continue
                arg.append({ord("n"): 10, ord("r"): 13, ord("t"): 9, ord("a"): 7,
                            ord("b"): 8}.get(e, e))
                p += 2
                continue
            arg.append(c)
            p += 1
        args.append(bytes(arg))
    return args
