"""The command-line tools against real processes: chatcat driven through pipes and through a
pty (a real terminal: colour, Ctrl-C, Ctrl-D) against a gateway and redis-server, and against
a scripted WebSocket server that checks its frames; chat-tail against a real redis-server,
restarted under it.

Every process is started on 127.0.0.1, waited for with bounded waits, stopped by PID (TERM,
then KILL) and checked for sanitizer reports. The binaries: $CHATCAT_BIN and $CHAT_TAIL_BIN,
default build/debug/chatcat and build/debug/chat-tail.
"""

import base64
import errno
import fcntl
import hashlib
import json
import os
import pty
import re
import select
import signal
import socket
import struct
import subprocess
import termios
import threading
import time
from pathlib import Path

import pytest

from gwtest import (OP_CLOSE, OP_TEXT, REPO_ROOT, WS_GUID, WSError, child_env, free_port,
                    sanitizer_report, tool_path, ws_connect)
from redistest import REDIS_CLI, RedisServer

CHATCAT = tool_path("CHATCAT_BIN", "chatcat")
CHAT_TAIL = tool_path("CHAT_TAIL_BIN", "chat-tail")
CHAT_TOKEN = tool_path("CHAT_TOKEN_BIN", "chat-token")
WAIT = 10.0  # seconds for anything that should happen at once
GW_ARGS = ("--log-level", "debug", "--rate", "1000", "--burst", "1000", "--close-timeout", "1s",
           "--drain-timeout", "3s")
ID = r"[0-9a-f]{32}"
TIME = r"\d\d:\d\d:\d\d"
ANSI = "\x1b["
CLOSED_1000 = re.compile(r"ws closed sent=1000 received=1000")


def tool_env(extra=None):
    env = child_env(extra)
    env.pop("NO_COLOR", None)
    return env


# ---------------------------------------------------------------------------------------------
# a tool process, read with bounded waits


def _controlling_tty():
    """In the child: a new session whose controlling terminal is the pty on fd 0, so that
    Ctrl-C typed on the master is a SIGINT to it."""
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class Tool:
    """A tool with stdin and stdout on pipes, or (tty=True) both on one pty; stderr on a pipe.

    expect(regex) searches what the stream printed after the previous match, waiting up to a
    timeout; lines of a pty end in \\r\\n, which the patterns allow for.
    """

    def __init__(self, argv, env=None, tty=False, stdin=subprocess.PIPE):
        self.argv = [str(a) for a in argv]
        self.tty = tty
        self.master = None
        if tty:
            self.master, slave = pty.openpty()
            self.proc = subprocess.Popen(self.argv, stdin=slave, stdout=slave,
                                         stderr=subprocess.PIPE, env=tool_env(env),
                                         preexec_fn=_controlling_tty)
            os.close(slave)
            self.fds = {"out": self.master, "err": self.proc.stderr.fileno()}
        else:
            self.proc = subprocess.Popen(self.argv, stdin=stdin, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, env=tool_env(env),
                                         start_new_session=True)
            self.fds = {"out": self.proc.stdout.fileno(), "err": self.proc.stderr.fileno()}
        self.data = {"out": b"", "err": b""}
        self.cursor = {"out": 0, "err": 0}
        self.eof = {"out": False, "err": False}
        self.returncode = None

    @property
    def pid(self):
        return self.proc.pid

    def text(self, stream="out"):
        return self.data[stream].decode("utf-8", "replace")

    def pump(self, timeout):
        """Read what arrives within timeout (returns early once something came)."""
        fds = [fd for s, fd in self.fds.items() if not self.eof[s]]
        if not fds:
            time.sleep(min(timeout, 0.05))
            return
        ready, _, _ = select.select(fds, [], [], max(0.0, timeout))
        for s, fd in self.fds.items():
            if fd not in ready:
                continue
            try:
                chunk = os.read(fd, 65536)
            except OSError as e:  # a pty's master reads EIO once the child is gone
                if e.errno != errno.EIO:
                    raise
                chunk = b""
            if chunk:
                self.data[s] += chunk
            else:
                self.eof[s] = True

    def expect(self, pattern, stream="out", timeout=WAIT):
        """The first match of pattern after the previous one; AssertionError when none."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        for _ in range(100_000):
            m = rx.search(self.text(stream), self.cursor[stream])
            if m:
                self.cursor[stream] = m.end()
                return m
            left = deadline - time.monotonic()
            if left <= 0 or (self.eof[stream] and self.proc.poll() is not None):
                break
            self.pump(min(left, 0.2))
        raise AssertionError(f"{self.argv[0]} printed no {pattern!r} on std{stream} within "
                             f"{timeout}s.\nstdout: {self.text('out')[-3000:]!r}\n"
                             f"stderr: {self.text('err')[-3000:]!r}")

    def settle(self, seconds):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.pump(deadline - time.monotonic())

    def send(self, line):
        data = (line + "\n").encode()
        if self.tty:
            os.write(self.master, data)
        else:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()

    def close_stdin(self):
        self.proc.stdin.close()

    def wait_exit(self, timeout=WAIT):
        """The exit status, after reading all the output; AssertionError if still running."""
        deadline = time.monotonic() + timeout
        for _ in range(100_000):
            if self.proc.poll() is not None:
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.argv[0]} still running after {timeout}s; "
                                     f"stderr: {self.text('err')[-2000:]!r}")
            self.pump(0.1)
        for _ in range(1000):
            if all(self.eof.values()):
                break
            self.pump(0.2)
        self.returncode = self.proc.returncode
        return self.returncode

    def stop(self):
        """TERM, then KILL; returns the problems found (a crash, a sanitizer report)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        for _ in range(50):
            if all(self.eof.values()):
                break
            self.pump(0.05)
        problems = []
        rc = self.proc.returncode
        if rc is not None and rc < 0 and rc not in (-signal.SIGTERM, -signal.SIGKILL):
            problems.append(f"died by signal {signal.Signals(-rc).name}")
        found = sanitizer_report(self.text("err"))
        if found:
            problems.append(f"sanitizer report: {found}\n{self.text('err')[-4000:]}")
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if f is not None:
                try:
                    f.close()
                except OSError:
                    pass
        if self.master is not None:
            os.close(self.master)
            self.master = None
        return problems


@pytest.fixture
def tools():
    """start(argv, **kw) -> Tool; every tool is stopped and checked at teardown."""
    for b in (CHATCAT, CHAT_TAIL):
        if not b.exists():
            pytest.fail(f"{b} not found: run `make debug` or set CHATCAT_BIN/CHAT_TAIL_BIN",
                        pytrace=False)
    started = []

    def start(argv, **kw):
        t = Tool(argv, **kw)
        started.append(t)
        return t

    yield start
    problems = []
    for t in started:
        problems += [f"{t.argv[0]}: {p}" for p in t.stop()]
    if problems:
        pytest.fail("tools at teardown:\n" + "\n".join(problems), pytrace=False)


def run_tool(argv, timeout=WAIT, env=None, stdin=subprocess.DEVNULL):
    p = subprocess.run([str(a) for a in argv], env=tool_env(env), stdin=stdin,
                       capture_output=True, timeout=timeout)
    err = p.stderr.decode("utf-8", "replace")
    assert not sanitizer_report(err), err
    return p.returncode, p.stdout.decode("utf-8", "replace"), err


# ---------------------------------------------------------------------------------------------
# a chat peer in Python (a raw WebSocket from gwtest), and the gateway


class Peer:
    """A chat client: JSON frames in and out, an inbox searched with bounded waits."""

    def __init__(self, port, hello=None, rooms=(), query=""):
        self.ws = ws_connect(port, "/ws" + query, timeout=WAIT)
        self.inbox = []
        self.raw = []
        welcome = self.take(lambda f: True, what="welcome")
        assert welcome.get("type") == "welcome", welcome
        self.id = welcome["id"]
        self.take(presence("lobby", "join", self.id), what="own lobby join")
        if hello:
            self.send({"type": "hello", "username": hello})
        for room in rooms:
            self.join(room)

    def send(self, obj):
        self.ws.send_frame(OP_TEXT, json.dumps(obj).encode())

    def join(self, room):
        self.send({"type": "join", "room": room})
        self.take(presence(room, "join", self.id), what=f"own join of {room}")

    def take(self, pred, timeout=WAIT, what="a frame"):
        deadline = time.monotonic() + timeout
        for _ in range(100_000):
            for i, f in enumerate(self.inbox):
                if pred(f):
                    return self.inbox.pop(i)
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                _, data = self.ws.recv_message(timeout=min(left, 0.5))
            except socket.timeout:
                continue
            self.raw.append(data)
            self.inbox.append(json.loads(data))
        raise AssertionError(f"no {what} within {timeout}s; inbox: {self.inbox[-10:]}")

    def close(self):
        try:
            self.ws.close_handshake(1000, timeout=3)
        except (OSError, WSError):
            self.ws.close()


def presence(room, event, client=None):
    return lambda f: (f.get("type") == "presence" and f.get("room") == room
                      and f.get("event") == event and (client is None or f.get("client") == client))


def message(room=None, text=None):
    return lambda f: (f.get("type") == "message" and (room is None or f.get("room") == room)
                      and (text is None or f.get("message") == text))


@pytest.fixture
def peers():
    opened = []

    def open_peer(port, **kw):
        p = Peer(port, **kw)
        opened.append(p)
        return p

    yield open_peer
    for p in opened:
        p.close()


def wait_log(g, rx, count=1, timeout=WAIT):
    """Wait until the gateway's log holds count matches of rx; return them."""
    deadline = time.monotonic() + timeout
    for _ in range(10_000):
        found = rx.findall(g.log_text())
        if len(found) >= count or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert len(found) >= count, f"{count} x {rx.pattern!r} not in the gateway log:\n{g.log_tail()}"
    return found


def chatcat(tools, g, *args, path="/ws", **kw):
    """A chatcat on gateway g; returns it once connected (its welcome printed)."""
    t = tools([CHATCAT, f"ws://127.0.0.1:{g.port}{path}", *args], **kw)
    t.expect(r"connected to ws://", "err")
    return t


def welcome_id(t):
    return t.expect(rf"\* connected as ({ID}) on gateway ").group(1)


@pytest.fixture
def gw1(make_gateway):
    return make_gateway(*GW_ARGS, "--gateway-id", "gw-tools")


# ---------------------------------------------------------------------------------------------
# chatcat through pipes


def test_pipe_messages_both_ways(gw1, tools, peers):
    bob = peers(gw1.port, hello="bob")
    t = chatcat(tools, gw1, "--name", "ann")
    ann = welcome_id(t)
    t.expect(rf"{TIME} #lobby \* \S+ joined \({ann}\) \(you\)")
    bob.take(presence("lobby", "join", ann), what="ann's join")

    t.send("hello from chatcat \u2713")
    got = bob.take(message("lobby", "hello from chatcat \u2713"), what="ann's message")
    assert got["from"] == ann and got["username"] == "ann", got
    t.expect(rf"{TIME} #lobby ann: hello from chatcat \u2713\n")

    bob.send({"type": "message", "room": "lobby", "message": "hi ann"})
    t.expect(rf"{TIME} #lobby bob: hi ann\n")
    bob.send({"type": "direct", "to": ann, "message": "psst"})
    t.expect(rf"{TIME} \[dm\] bob \({bob.id}\): psst\n")
    bob.send({"type": "leave", "room": "nowhere"})  # bob's error is bob's alone
    t.settle(0.3)
    assert "nowhere" not in t.text()
    assert ANSI not in t.text(), "colour on a pipe"

    t.close_stdin()  # end of input: close 1000
    assert t.wait_exit() == 0, t.text("err")
    bob.take(presence("lobby", "leave", ann), what="ann's leave")
    wait_log(gw1, CLOSED_1000)


def test_pipe_every_command(gw1, tools, peers):
    bob = peers(gw1.port, hello="bob", rooms=["r1", "r2"])
    t = chatcat(tools, gw1, "--name", "ann", "--room", "r1")
    ann = welcome_id(t)
    t.expect(rf"#r1 \* ann joined \({ann}\) \(you\)")
    t.send("in r1")
    bob.take(message("r1", "in r1"), what="message to --room")

    t.send("/join r2")
    t.expect("now talking in #r2", "err")
    bob.take(presence("r2", "join", ann), what="ann's join of r2")
    t.expect(rf"#r2 \* ann joined \({ann}\) \(you\)")
    t.send("in r2")
    assert bob.take(message("r2", "in r2"))["from"] == ann

    t.send("/rooms")
    t.expect(r"rooms: #lobby #r1 #r2 \(current\)\n")
    t.send("/who")
    m = t.expect(r"#r2 members on gw-tools: (.*)\n")
    assert f"bob ({bob.id})" in m.group(1) and f"ann ({ann})" in m.group(1), m.group(1)
    t.send("/who lobby")
    t.expect(rf"#lobby members on gw-tools: .*ann \({ann}\)")

    t.send("/dm " + bob.id + " a secret, with spaces")
    d = bob.take(lambda f: f.get("type") == "direct", what="direct")
    assert d["message"] == "a secret, with spaces" and d["from"] == ann, d

    t.send("/name annie")
    t.send("//not a command")
    got = bob.take(message("r2", "/not a command"))
    assert got["username"] == "annie", got

    t.send("/leave")  # the current room, r2
    bob.take(presence("r2", "leave", ann), what="ann's leave of r2")
    t.expect(rf"#r2 \* annie left \({ann}\) \(you\)")
    t.expect(r"now talking in #r1", "err")
    t.send("back in r1")
    bob.take(message("r1", "back in r1"))

    # Errors from the gateway are printed; mistakes found locally go to stderr.
    t.send("/leave r2")
    t.expect(r"! error not_joined: not in that room \[r2\]\n")
    t.send("/who nowhere")
    t.expect(r"! error not_joined: .* \[nowhere\]\n")
    t.send("/join bad!room")
    t.expect(r"\"bad!room\" is not a room name", "err")
    t.send("/dm 1234")  # no text
    t.expect(r"usage: /dm ID\|USER TEXT", "err")
    t.send("/dm nobody-here hi")  # not a client id: a user id, and nobody has it
    t.expect(r"! error unknown_target: no session of that user is connected \[nobody-here\]")
    t.send("/bogus")
    t.expect(r"unknown command /bogus", "err")
    t.send("/help")
    for cmd in ("/join", "/leave", "/rooms", "/who", "/dm", "/name", "/quit"):
        t.expect(re.escape(cmd) + " ")

    t.send("/quit")
    assert t.wait_exit() == 0, t.text("err")
    bob.take(presence("r1", "leave", ann), what="ann's leave of r1 at the end")
    wait_log(gw1, CLOSED_1000)
    assert ANSI not in t.text()


def test_pipe_sigint_closes_cleanly(gw1, tools, peers):
    bob = peers(gw1.port)
    t = chatcat(tools, gw1)
    ann = welcome_id(t)
    bob.take(presence("lobby", "join", ann))
    t.send("before the signal")
    bob.take(message("lobby", "before the signal"))
    os.kill(t.pid, signal.SIGINT)
    assert t.wait_exit() == 0, t.text("err")
    bob.take(presence("lobby", "leave", ann), what="leave after SIGINT")
    wait_log(gw1, CLOSED_1000)


def test_stdin_file_and_dev_null(gw1, tools, peers, tmp_path):
    """A regular file (which epoll refuses) is read to its end, every line sent, then 1000."""
    bob = peers(gw1.port)
    lines = [f"line {i} \u00e9" for i in range(25)]
    f = tmp_path / "input.txt"
    f.write_text("\n".join(lines) + "\n//slash\nno newline at the end")
    with open(f, "rb") as stdin:
        t = tools([CHATCAT, f"ws://127.0.0.1:{gw1.port}/ws", "--name", "filer"], stdin=stdin)
        assert t.wait_exit() == 0, t.text("err")
    for text in lines + ["/slash", "no newline at the end"]:
        got = bob.take(message("lobby", text), what=f"file line {text!r}")
        assert got["username"] == "filer"
    wait_log(gw1, CLOSED_1000)

    with open(os.devnull, "rb") as stdin:
        t = tools([CHATCAT, f"ws://127.0.0.1:{gw1.port}/ws"], stdin=stdin)
        assert t.wait_exit() == 0, t.text("err")
    wait_log(gw1, CLOSED_1000, count=2)


def test_unsafe_text_is_escaped(gw1, tools, peers):
    bob = peers(gw1.port, hello="m\u00e4llory")
    t = chatcat(tools, gw1)
    ann = welcome_id(t)
    bob.take(presence("lobby", "join", ann))
    bob.send({"type": "message", "room": "lobby",
              "message": "a\x1b[2J\x07b\nc\u202ed\u009b31m"})
    m = t.expect(r"#lobby m\u00e4llory: (.*)\n")
    assert m.group(1) == "a\\x1b[2J\\x07b\\nc\\u{202e}d\\x9b31m", m.group(1)
    assert "\x1b" not in t.text() and "\x07" not in t.text()
    t.close_stdin()
    assert t.wait_exit() == 0


def test_server_going_away(make_gateway, tools):
    g = make_gateway(*GW_ARGS)
    t = chatcat(tools, g)
    welcome_id(t)
    assert g.stop(timeout=10) == []
    t.expect(r"connection closed: code 1001", "err")
    assert t.wait_exit() == 1


# ---------------------------------------------------------------------------------------------
# chatcat on a terminal


def test_pty_colour_typing_and_ctrl_c(gw1, tools, peers):
    bob = peers(gw1.port, hello="bob")
    t = chatcat(tools, gw1, "--name", "tty-ann", tty=True)
    ann = welcome_id(t)
    bob.take(presence("lobby", "join", ann))
    t.send("typed on a terminal")
    got = bob.take(message("lobby", "typed on a terminal"), what="typed line")
    assert got["username"] == "tty-ann"
    bob.send({"type": "message", "room": "lobby", "message": "to the tty \x1b]0;title\x07"})
    m = t.expect(r"#lobby.*bob.*: (to the tty [^\r\n]*)\r\n")
    assert m.group(1) == "to the tty \\x1b]0;title\\x07", m.group(1)
    assert ANSI + "36m#lobby" in t.text(), "no colour on a terminal"
    t.send("/rooms")
    t.expect(r"rooms: #lobby \(current\)\r\n")

    os.write(t.master, b"\x03")  # Ctrl-C: SIGINT from the terminal
    assert t.wait_exit() == 0, t.text("err")
    bob.take(presence("lobby", "leave", ann), what="leave after Ctrl-C")
    wait_log(gw1, CLOSED_1000)


def test_pty_ctrl_d_and_color_never(gw1, tools, peers):
    bob = peers(gw1.port)
    t = chatcat(tools, gw1, "--color", "never", tty=True)
    ann = welcome_id(t)
    bob.take(presence("lobby", "join", ann))
    bob.send({"type": "message", "room": "lobby", "message": "plain"})
    t.expect(r"#lobby guest-[0-9a-f]{6}: plain\r\n")
    assert ANSI not in t.text()
    os.write(t.master, b"\x04")  # Ctrl-D at the start of a line: end of input
    assert t.wait_exit() == 0, t.text("err")
    bob.take(presence("lobby", "leave", ann))
    wait_log(gw1, CLOSED_1000)


def test_pipe_color_always_and_env_twins(gw1, tools, peers):
    bob = peers(gw1.port)
    t = chatcat(tools, gw1, env={"CHAT_COLOR": "always", "CHAT_NAME": "envy",
                                 "CHAT_ROOM": "env-room"})
    ann = welcome_id(t)
    bob.join("env-room")
    t.send("from env")
    got = bob.take(message("env-room", "from env"))
    assert got["username"] == "envy" and got["from"] == ann
    t.expect(re.escape(ANSI + "36m#env-room"))
    t.close_stdin()
    assert t.wait_exit() == 0


# ---------------------------------------------------------------------------------------------
# chatcat --raw


def test_raw_against_echo(gw1, tools):
    t = chatcat(tools, gw1, "--raw", path="/echo")
    lines = ["plain", "", "{\"type\":\"not chat\"}", "h\u00e9llo w\u00f6rld \u2713 \U0001f680",
             "a\ttab"]
    for line in lines:
        t.send(line)
    for line in lines:
        t.expect("(?m)^" + re.escape(line) + "\n")
    t.close_stdin()
    assert t.wait_exit() == 0, t.text("err")
    wait_log(gw1, CLOSED_1000)


class ScriptedServer(threading.Thread):
    """One WebSocket connection on 127.0.0.1: records the request and every client frame
    (opcode, mask key, payload), sends `frames` after the 101, answers a close with 1000.
    status != 101 or accept="wrong" script a refused or broken handshake; extensions is a
    Sec-WebSocket-Extensions answer to give."""

    def __init__(self, frames=(), status=101, accept="right", subprotocol=None, extensions=None):
        super().__init__(daemon=True)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.sock.settimeout(WAIT)
        self.port = self.sock.getsockname()[1]
        self.frames_out = list(frames)
        self.status = status
        self.accept = accept
        self.subprotocol = subprotocol
        self.extensions = extensions
        self.request = b""
        self.frames = []
        self.error = None

    def headers(self):
        lines = self.request.decode("latin-1").split("\r\n")[1:]
        return {k.strip().lower(): v.strip() for k, v in
                (ln.split(":", 1) for ln in lines if ":" in ln)}

    def run(self):
        try:
            conn, _ = self.sock.accept()
            with conn:
                conn.settimeout(WAIT)
                self.serve(conn)
        except Exception as e:  # reported by the test through self.error
            self.error = e
        finally:
            self.sock.close()

    def serve(self, conn):
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = conn.recv(4096)
            if not chunk:
                return
            buf += chunk
        self.request, buf = buf.split(b"\r\n\r\n", 1)
        if self.status != 101:
            conn.sendall(f"HTTP/1.1 {self.status} Teapot\r\nContent-Length: 13\r\n"
                         "Connection: close\r\n\r\nno chat here\n".encode())
            return
        key = self.headers()["sec-websocket-key"].encode()
        accept = base64.b64encode(hashlib.sha1(key + WS_GUID).digest()).decode()
        if self.accept == "wrong":
            accept = base64.b64encode(b"0" * 20).decode()
        proto = f"Sec-WebSocket-Protocol: {self.subprotocol}\r\n" if self.subprotocol else ""
        if self.extensions:
            proto += f"Sec-WebSocket-Extensions: {self.extensions}\r\n"
        conn.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                      f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n{proto}\r\n")
                     .encode())
        for op, payload in self.frames_out:
            conn.sendall(bytes([0x80 | op, len(payload)]) + payload)
        self.read_frames(conn, buf)

    def read_frames(self, conn, buf):
        for _ in range(10_000):
            while True:
                f = self.parse(buf)
                if f is None:
                    break
                frame, buf = f
                self.frames.append(frame)
                if frame[0] == OP_CLOSE:
                    conn.sendall(bytes([0x88, 2]) + struct.pack("!H", 1000))
                    return
            chunk = conn.recv(65536)
            if not chunk:
                return
            buf += chunk

    @staticmethod
    def parse(buf):
        if len(buf) < 2:
            return None
        op, n, off = buf[0] & 0xF, buf[1] & 0x7F, 2
        if n == 126:
            if len(buf) < 4:
                return None
            n, off = struct.unpack("!H", buf[2:4])[0], 4
        elif n == 127:
            if len(buf) < 10:
                return None
            n, off = struct.unpack("!Q", buf[2:10])[0], 10
        masked = bool(buf[1] & 0x80)
        key = buf[off:off + 4] if masked else None
        off += 4 if masked else 0
        if len(buf) < off + n:
            return None
        payload = bytes(buf[off:off + n])
        if masked:
            payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
        return (op, key, payload), buf[off + n:]


def test_raw_frames_masked_headers_sent(tools):
    srv = ScriptedServer(frames=[(0x1, b"from the server"), (0x2, b"bin\x00ary")],
                         subprotocol="chat.v1")
    srv.start()
    t = tools([CHATCAT, "--raw", f"ws://127.0.0.1:{srv.port}/any/path?q=1",
               "--header", "X-Test: one", "--header=X-Other: two", "--origin",
               "http://example.test", "--subprotocol", "chat.v1"])
    t.expect(r"connected to .* \(subprotocol chat.v1\)", "err")
    t.expect(r"from the server\n")
    t.expect("bin\x00ary\n")  # as it is on a pipe
    lines = [f"frame {i}" for i in range(40)]
    for line in lines:
        t.send(line)
    t.close_stdin()
    assert t.wait_exit() == 0, t.text("err")
    srv.join(WAIT)
    assert srv.error is None, srv.error
    assert srv.request.startswith(b"GET /any/path?q=1 HTTP/1.1\r\n"), srv.request
    h = srv.headers()
    assert h["x-test"] == "one" and h["x-other"] == "two", h
    assert h["origin"] == "http://example.test" and h["sec-websocket-protocol"] == "chat.v1"
    assert h["host"] == f"127.0.0.1:{srv.port}" and h["sec-websocket-version"] == "13"
    assert "sec-websocket-extensions" not in h, h  # chatcat offers no compression
    data = [f for f in srv.frames if f[0] == OP_TEXT]
    assert [f[2].decode() for f in data] == lines
    keys = [f[1] for f in srv.frames]
    assert all(k is not None for k in keys), "an unmasked client frame"
    assert len(set(keys)) == len(keys), "mask keys repeat: not from a random source"
    close = srv.frames[-1]
    assert close[0] == OP_CLOSE and struct.unpack("!H", close[2][:2])[0] == 1000, close


# ---------------------------------------------------------------------------------------------
# chatcat: what fails, and how it says so


def test_bad_url_and_options(tools):
    cases = [
        (["not a url"], 2, r"not a URL"),
        (["http://127.0.0.1:1/ws"], 2, r"unsupported scheme"),
        (["ws://"], 2, r"not a URL"),
        ([], 2, r"no URL given"),
        (["ws://127.0.0.1:1/ws", "--bogus"], 2, r"unknown option \"--bogus\""),
        (["ws://127.0.0.1:1/ws", "--header", "no colon"], 2, r"invalid value .* --header"),
        (["ws://127.0.0.1:1/ws", "--header", "X: a\r\nEvil: b"], 2, r"--header"),
        (["ws://127.0.0.1:1/ws", "--room", "bad room"], 2, r"--room"),
        (["ws://127.0.0.1:1/ws", "--color", "sometimes"], 2, r"--color"),
        (["--raw", "ws://127.0.0.1:1/ws", "--name", "x"], 2, r"--raw speaks no chat"),
        (["ws://127.0.0.1:1/ws", "--name"], 2, r"--name needs a value"),
    ]
    for args, want, rx in cases:
        rc, out, err = run_tool([CHATCAT, *args])
        assert rc == want and re.search(rx, err), (args, rc, err)
        assert out == ""
    rc, out, err = run_tool([CHATCAT, "--help"])
    assert rc == 0 and "--subprotocol" in out and "CHAT_NAME" in out and "/dm ID" in out


def test_refused_and_failed_handshakes(gw1, tools):
    port = free_port()
    rc, _, err = run_tool([CHATCAT, f"ws://127.0.0.1:{port}/ws"])
    assert rc == 1 and f"cannot connect to 127.0.0.1:{port}: Connection refused" in err, err

    rc, _, err = run_tool([CHATCAT, f"ws://127.0.0.1:{gw1.port}/ws", "--origin",
                           "http://evil.example"])
    assert rc == 1 and "handshake refused: HTTP 403 Forbidden: origin not allowed" in err, err
    rc, _, err = run_tool([CHATCAT, f"ws://127.0.0.1:{gw1.port}/no-such-endpoint"])
    assert rc == 1 and "handshake refused: HTTP 404" in err, err

    srv = ScriptedServer(status=418)
    srv.start()
    rc, _, err = run_tool([CHATCAT, "--raw", f"ws://127.0.0.1:{srv.port}/"])
    assert rc == 1 and "handshake refused: HTTP 418 Teapot: no chat here" in err, err
    srv = ScriptedServer(accept="wrong")
    srv.start()
    rc, _, err = run_tool([CHATCAT, "--raw", f"ws://127.0.0.1:{srv.port}/"])
    assert rc == 1 and "HTTP 101 Switching Protocols with a wrong Sec-WebSocket-Accept" in err
    # an extension the client did not offer fails the connection (RFC 6455 4.1)
    srv = ScriptedServer(extensions="permessage-deflate")
    srv.start()
    rc, _, err = run_tool([CHATCAT, "--raw", f"ws://127.0.0.1:{srv.port}/"])
    assert rc == 1 and "Sec-WebSocket-Extensions: permessage-deflate (none was offered)" in err, err

    rc, _, err = run_tool([CHATCAT, "ws://no-such-host.invalid:80/ws"])
    assert rc == 1 and "cannot resolve no-such-host.invalid" in err, err


def test_sigint_before_the_handshake(tools):
    """A server that never answers: SIGINT ends chatcat at once with 130."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        t = tools([CHATCAT, f"ws://127.0.0.1:{s.getsockname()[1]}/ws"])
        time.sleep(0.5)
        os.kill(t.pid, signal.SIGINT)
        assert t.wait_exit() == 130
        t.expect("interrupted", "err")


# ---------------------------------------------------------------------------------------------
# chat-tail


def tail(tools, redis_url, *args, env=None):
    t = tools([CHAT_TAIL, "--redis", redis_url, *args] if redis_url else [CHAT_TAIL, *args],
              env=env)
    t.expect(r"watching chat:\* on ", "err")
    return t


def publish(port, channel, payload):
    subprocess.run([REDIS_CLI, "-p", str(port), "PUBLISH", channel, payload], check=True,
                   capture_output=True, timeout=WAIT)


def test_tail_room_and_direct_lines(redis, gw1, tools, peers):
    t = tail(tools, redis.url)
    ann = peers(gw1.port, hello="ann", rooms=["tail-r"])
    bob = peers(gw1.port, hello="bob", rooms=["tail-r"])
    ann.send({"type": "message", "room": "tail-r", "message": "hi \u2713 all"})
    bob.take(message("tail-r", "hi \u2713 all"))
    ann.send({"type": "direct", "to": bob.id, "message": "just you"})
    bob.take(lambda f: f.get("type") == "direct")

    t.expect(rf"{TIME}\.\d{{3}} chat:room:tail-r #tail-r \S+\({bob.id}\) joined\n")
    t.expect(rf"{TIME}\.\d{{3}} chat:room:tail-r #tail-r ann\({ann.id}\): hi \u2713 all\n")
    t.expect(rf"chat:client:{bob.id} @{bob.id} ann\({ann.id}\) \[dm\]: just you\n")
    bob.send({"type": "who", "room": "tail-r"})
    bob.take(lambda f: f.get("type") == "members", what="the roster")
    t.expect(rf"chat:room:tail-r #tail-r who\? for @{bob.id}\n")
    m = t.expect(rf"chat:client:{bob.id} @{bob.id} members of #tail-r on gw-tools: (.*)\n")
    assert sorted(m.group(1).split(", ")) == [f"ann({ann.id})", f"bob({bob.id})"], m.group(1)
    assert "chat:health:" not in t.text(), "health probes shown without --all"

    publish(redis.port, "chat:room:tail-r", "not json \x1b[31m")
    t.expect(r"chat:room:tail-r \? not json \\x1b\[31m\n")
    publish(redis.port, "elsewhere", "not ours")
    t.settle(0.3)
    assert "elsewhere" not in t.text()

    os.kill(t.pid, signal.SIGINT)
    assert t.wait_exit() == 0
    t.expect("stopped by SIGINT", "err")


def test_tail_filters_and_json(redis, gw1, tools, peers):
    ann = peers(gw1.port, hello="ann", rooms=["f-one", "f-two"])
    room = tail(tools, redis.url, "--room", "f-one")
    client = tail(tools, redis.url, "--client", ann.id)
    raw = tail(tools, redis.url, "--json", "--room", "f-two")
    everything = tail(tools, redis.url, "--all")
    bob = peers(gw1.port, hello="bob", rooms=["f-one", "f-two"])

    for r in ("f-one", "f-two"):
        bob.send({"type": "message", "room": r, "message": f"bob in {r}"})
        ann.take(message(r, f"bob in {r}"))
    bob.send({"type": "direct", "to": ann.id, "message": "dm to ann"})
    ann.take(lambda f: f.get("type") == "direct")
    ann.send({"type": "message", "room": "lobby", "message": "ann in lobby"})
    bob.take(message("lobby", "ann in lobby"))

    room.expect(r"#f-one bob\(.*\): bob in f-one\n")
    client.expect(rf"@{ann.id} bob\({bob.id}\) \[dm\]: dm to ann\n")
    client.expect(rf"#lobby ann\({ann.id}\): ann in lobby\n")
    want = [r for r in bob.raw if b"bob in f-two" in r]
    assert len(want) == 1
    raw.expect("(?m)^" + re.escape(want[0].decode()) + "$")
    everything.expect(r"@" + ann.id + r" bob\(")
    everything.expect(r"chat:health:gw-tools\S* probe \d+\n")
    for t in (room, client, raw, everything):
        t.settle(0.2)
    assert "f-two" not in room.text() and "lobby" not in room.text() and "dm" not in room.text()
    assert "bob in f-one" not in client.text() and "bob in f-two" not in client.text()
    for line in raw.text().splitlines():
        assert json.loads(line)["room"] == "f-two", line
    for t in (room, client, raw, everything):
        t.proc.send_signal(signal.SIGTERM)
        assert t.wait_exit() == 0


def test_tail_survives_redis_restart(tools, tmp_path):
    r = RedisServer(tmp_path / "redis").start()
    try:
        t = tail(tools, None, env={"CHAT_REDIS_URL": r.url})
        publish(r.port, "chat:room:x", "before")
        t.expect(r"chat:room:x \? before\n")
        r.stop()
        t.expect(r"lost Redis at 127\.0\.0\.1:\d+: .*; reconnecting", "err")
        t.expect(r"cannot reach Redis .*; retrying", "err")
        time.sleep(0.5)
        r.start()
        t.expect(r"watching chat:\* on ", "err", timeout=15)
        publish(r.port, "chat:room:x", "after")
        t.expect(r"chat:room:x \? after\n")
        r.kill()  # SIGKILL: no goodbye from Redis either
        t.expect(r"lost Redis", "err")
        os.kill(t.pid, signal.SIGTERM)  # exits at once, even while retrying
        assert t.wait_exit(timeout=5) == 0
        t.expect("stopped by SIGTERM", "err")
    finally:
        r.stop()


def test_tail_unix_socket_and_password(tools, tmp_path):
    r = RedisServer(tmp_path / "unix", unix=True, tcp=False).start()
    p = RedisServer(tmp_path / "pw", password="s3cret").start()
    try:
        t = tail(tools, r.unixsocket)
        u = tail(tools, f"unix://{r.unixsocket}?db=3")
        subprocess.run([*r.cli_argv(), "PUBLISH", "chat:room:u", "over unix"], check=True,
                       capture_output=True, timeout=WAIT)
        t.expect(r"chat:room:u \? over unix\n")
        u.expect(r"chat:room:u \? over unix\n")

        w = tail(tools, f"redis://:s3cret@127.0.0.1:{p.port}/2")
        subprocess.run([*p.cli_argv(), "PUBLISH", "chat:room:p", "with a password"],
                       check=True, capture_output=True, timeout=WAIT)
        w.expect(r"chat:room:p \? with a password\n")
        assert "s3cret" not in w.text("err")
        bad = tools([CHAT_TAIL, "--redis", f"redis://:wrong@127.0.0.1:{p.port}"])
        bad.expect(r"cannot reach Redis at 127\.0\.0\.1:\d+: .*(WRONGPASS|invalid)", "err")
    finally:
        r.stop()
        p.stop()


def test_tools_show_users_and_dm_them(redis, make_gateway, tools, peers):
    """With connect tokens: chatcat sends with a token (--header), shows the verified user of a
    sender whose name says otherwise, and /dm reaches a user; chat-tail shows both too."""
    secret = "tools-test-secret-0123456789abcdef"
    g = make_gateway(*GW_ARGS, "--gateway-id", "gw-tok", "--token-secret", secret)
    token = subprocess.run([str(CHAT_TOKEN), "--sub", "ann", "--name", "Ann A.", "--secret",
                            secret], capture_output=True, text=True, timeout=WAIT,
                           check=True).stdout.strip()
    bob_token = subprocess.run([str(CHAT_TOKEN), "--sub", "bob", "--secret", secret],
                               capture_output=True, text=True, timeout=WAIT,
                               check=True).stdout.strip()
    watch = tail(tools, redis.url)
    t = chatcat(tools, g, "--header", f"Authorization: Bearer {token}")
    t.expect(rf"\* connected as {ID} \(user ann\) on gateway gw-tok")
    bob = peers(g.port, query=f"?token={bob_token}")
    bob.send({"type": "message", "room": "lobby", "message": "from bob"})
    t.expect(rf"{TIME} #lobby bob: from bob\n")  # name and user agree: no [@bob]
    t.send("/dm bob hello bob")
    got = bob.take(lambda f: f.get("type") == "direct", what="ann's direct message")
    assert got["to_user"] == "bob" and got["user"] == "ann" and got["username"] == "Ann A."
    bob.send({"type": "direct", "to_user": "ann", "message": "hi ann"})
    t.expect(rf"{TIME} \[dm\] bob \({bob.id}\): hi ann\n")
    watch.expect(rf"chat:user:bob @@bob Ann A\.\[@ann\]\({ID}\) \[dm\]: hello bob\n")
    watch.expect(rf"chat:user:ann @@ann bob\[@bob\]\({bob.id}\) \[dm\]: hi ann\n")
    t.close_stdin()
    assert t.wait_exit() == 0, t.text("err")


def test_tail_bad_options():
    for args, rx in [(["--redis", "ftp://x"], r"--redis"), (["--redis", "redis://h:0"], r"--redis"),
                     (["--room", "a b"], r"--room"), (["--client", "xyz"], r"--client"),
                     (["--json=1"], r"takes no value"), (["stray"], r"unexpected argument")]:
        rc, out, err = run_tool([CHAT_TAIL, *args])
        assert rc == 2 and re.search(rx, err), (args, rc, err)
    rc, _, err = run_tool([CHAT_TAIL], env={"CHAT_REDIS_URL": "nope"})
    assert rc == 2 and "CHAT_REDIS_URL" in err, err
    rc, out, _ = run_tool([CHAT_TAIL, "--help"])
    assert rc == 0 and "CHAT_REDIS_URL" in out and "--client ID" in out


# ---------------------------------------------------------------------------------------------
# chat-bench: permessage-deflate and the bytes on the wire

CHAT_BENCH = tool_path("CHAT_BENCH_BIN", "chat-bench")


def run_bench(g, *args, env=None):
    """chat-bench against gateway g, to completion; returns its JSON lines."""
    cmd = [str(CHAT_BENCH), "--url", f"ws://127.0.0.1:{g.port}/ws", "--room", "lobby", *args]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=tool_env(env),
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0 and not sanitizer_report(r.stderr), r.stdout + r.stderr
    return [json.loads(ln) for ln in r.stdout.splitlines() if ln.startswith("{")]


@pytest.mark.parametrize("path", ["fast_recv", "wslay"])
def test_bench_deflate_inflates_and_counts_wire_bytes(gw1, path):
    """With --deflate every handshake agrees, every compressed broadcast arrives inflated (its
    marker parsed: nothing lost), on chat-bench's fast path and through wslay; the bytes read
    from the sockets fall against the same load uncompressed."""
    if not CHAT_BENCH.exists():
        pytest.fail(f"{CHAT_BENCH} not found: run `make debug`", pytrace=False)
    env = {"CHAT_BENCH_SLOW_RECV": "1"} if path == "wslay" else None
    load = ("--clients", "20", "--senders", "2", "--rate", "40", "--size", "1024", "--text",
            "--warmup", "0.3", "--duration", "1", "--drain", "5", "--label", "t")
    (off,) = run_bench(gw1, *load, env=env)
    (on,) = run_bench(gw1, *load, "--deflate", env=env)
    for rec in (off, on):
        assert rec["lost"] == 0 and rec["duplicates"] == 0 and rec["closed"] == 0, rec
        assert rec["delivered"] == rec["expected"] > 0, rec
        assert rec["opens"] == 20 and rec["wire_bytes_in"] > 0, rec
    assert off["deflate"] == 0 and off["deflate_opens"] == 0, off
    assert on["deflate"] == 1 and on["deflate_opens"] == 20, on
    # 1 KiB of text plus the envelope uncompressed; English text deflates to well under that
    assert off["wire_bytes_per_delivery"] > 1024, off
    assert on["wire_bytes_per_delivery"] < 0.8 * off["wire_bytes_per_delivery"], (off, on)
