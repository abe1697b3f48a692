"""Helpers for the chat-gateway integration tests.

Gateway: start the binary on a free 127.0.0.1 port, wait (bounded) for it to accept, stop it by
PID (TERM, then KILL) and report a crash, a non-zero exit or a sanitizer report.
HttpConn: raw HTTP/1.x over a socket (pipelining, HEAD, close detection).
RawWS: a raw RFC 6455 client built on HttpConn's socket: hand-built masked frames, strict
parsing of server frames, close codes.
Every wait is bounded in time and every loop in count.
"""

import base64
import contextlib
import hashlib
import hmac
import json
import os
import re
import select
import signal
import socket
import struct
import subprocess
import time
import zlib
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
GATEWAY_BIN = Path(os.environ.get("CHAT_GATEWAY_BIN",
                                  str(REPO_ROOT / "build" / "debug" / "chat-gateway")))
if not GATEWAY_BIN.is_absolute():
    GATEWAY_BIN = REPO_ROOT / GATEWAY_BIN


def tool_path(var, name):
    """A tool of the build: $var if set, else build/debug/<name>."""
    p = Path(os.environ.get(var, str(REPO_ROOT / "build" / "debug" / name)))
    return p if p.is_absolute() else REPO_ROOT / p

SANITIZER_ENV = {
    "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=1",
    "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1",
}
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "runtime error:", "LeakSanitizer")

READY_TIMEOUT = 10.0


class TimeLimitExceeded(Exception):
    pass


@contextlib.contextmanager
def time_limit(seconds):
    """Raise TimeLimitExceeded in the main thread if the body runs longer than seconds: a
    safety net behind every bounded wait, for the suites' autouse fixtures."""
    def on_alarm(signum, frame):
        raise TimeLimitExceeded(f"test exceeded {seconds}s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT, OP_TEXT, OP_BINARY = 0x0, 0x1, 0x2
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA
KNOWN_OPCODES = (OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG)


# ---------------------------------------------------------------------------------------------
# ports and processes


def free_port(family=socket.AF_INET, host="127.0.0.1"):
    """A port that was free a moment ago on host (the kernel picks it)."""
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def child_env(extra=None):
    """os.environ without any CHAT_* variable (ours or the caller's), plus sanitizer options."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHAT_")}
    env.update(SANITIZER_ENV)
    if extra:
        env.update(extra)
    return env


def run_gateway(args, env=None, cwd=None, timeout=10):
    """Run the binary to completion (for --help and bad configurations)."""
    return subprocess.run([str(GATEWAY_BIN), *args], env=child_env(env), cwd=cwd,
                          stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)


_HELP_TEXT = None


def gateway_help():
    global _HELP_TEXT
    if _HELP_TEXT is None:
        try:
            p = run_gateway(["--help"])
            _HELP_TEXT = (p.stdout + p.stderr).decode("utf-8", "replace")
        except (OSError, subprocess.SubprocessError):
            _HELP_TEXT = ""
    return _HELP_TEXT


def sanitizer_report(text):
    return [m for m in SANITIZER_MARKERS if m in text]


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_token(secret, claims, header=None):
    """A connect token (HS256 JWT) for the dict claims, signed here with Python's hmac module:
    an implementation independent of the gateway's. header replaces the usual one."""
    signing = (b64url(json.dumps(header or {"alg": "HS256", "typ": "JWT"}).encode()) + "."
               + b64url(json.dumps(claims).encode()))
    sig = hmac.new(secret.encode(), signing.encode(), hashlib.sha256).digest()
    return signing + "." + b64url(sig)


class GatewayError(AssertionError):
    pass


def gateway_has_flag(flag):
    return flag in gateway_help()


class Gateway:
    """One chat-gateway process listening on 127.0.0.1:<free port>.

    args: extra flags; env: extra environment; public_dir: passed as --public-dir unless None;
    listen: when False no --listen flag is passed (the caller sets CHAT_LISTEN or a flag).
    """

    def __init__(self, workdir, args=(), env=None, public_dir=None, listen=True, port=None,
                 cwd=None, name="gateway", redis_url=None):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.extra_args = list(args)
        self.extra_env = dict(env or {})
        self.public_dir = public_dir
        self.use_listen_flag = listen
        self.port = port
        self.host = "127.0.0.1"
        self.cwd = cwd
        self.name = name
        self.redis_url = redis_url
        self.proc = None
        self.returncode = None
        self.generation = 0
        self.log_path = None
        self._log_offset = 0
        self.killed = False

    # -- life cycle --

    def argv(self):
        argv = [str(GATEWAY_BIN)]
        if self.use_listen_flag:
            argv += ["--listen", f"{self.host}:{self.port}"]
        if self.public_dir is not None:
            argv += ["--public-dir", str(self.public_dir)]
        if "--workers" in gateway_help() and not any(
                a.startswith("--workers") for a in self.extra_args):
            argv += ["--workers", "1"]
        if (self.redis_url and "--redis" in gateway_help()
                and "CHAT_REDIS_URL" not in self.extra_env
                and not any(a.startswith("--redis") for a in self.extra_args)):
            argv += ["--redis", self.redis_url]
        return argv + self.extra_args

    def start(self, wait=True):
        if not GATEWAY_BIN.exists():
            raise GatewayError(f"gateway binary {GATEWAY_BIN} not found (run `make debug` "
                               "or set CHAT_GATEWAY_BIN)")
        if self.port is None:
            self.port = free_port()
        self.generation += 1
        self.log_path = self.workdir / f"{self.name}-{self.generation}.log"
        self._log_offset = 0
        self.returncode = None
        self.killed = False
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(self.argv(), env=child_env(self.extra_env),
                                         cwd=self.cwd, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=READY_TIMEOUT):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.returncode = self.proc.returncode
                raise GatewayError(f"gateway exited with {self.returncode} before accepting:\n"
                                   + self.log_tail())
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    pass
            except OSError:
                time.sleep(0.05)
                continue
            if not self.redis_url or self._healthy():
                return
            time.sleep(0.05)
        raise GatewayError(f"gateway not ready (accepting, /healthz 200 with Redis) on "
                           f"{self.host}:{self.port} after {timeout}s:\n" + self.log_tail())

    def _healthy(self):
        """/healthz says 200 (the gateway reached its Redis)."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        try:
            with HttpConn(self.port, host=self.host, timeout=1, family=family) as c:
                c.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                return c.read_response(timeout=1).status == 200
        except (OSError, HttpError):
            return False

    def restart(self):
        if self.proc is not None and self.proc.poll() is None:
            self.kill()
        self.port = None if self.use_listen_flag else self.port
        return self.start()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def send_signal(self, sig):
        if self.alive():
            self.proc.send_signal(sig)

    def wait_exit(self, timeout):
        """Return the exit status, or None if still running after timeout seconds."""
        try:
            self.returncode = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        return self.returncode

    def kill(self):
        """SIGKILL the process group this helper created (the gateway and any workers)."""
        self.killed = True
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.returncode = self.proc.wait(timeout=10)

    def stop(self, sig=signal.SIGTERM, timeout=15.0):
        """Signal, wait up to timeout, then SIGKILL. Returns the list of problems found."""
        if self.proc is None:
            return []
        problems = []
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            if self.wait_exit(timeout) is None:
                problems.append(f"did not exit within {timeout}s of {sig.name}; killed")
                self.kill()
        else:
            self.returncode = self.proc.returncode
        # Workers (if any) share the group; none may outlive the master. A worker killed while
        # exiting can leave a helper task (LeakSanitizer's tracer) that its death-signal ends a
        # moment later, so the group gets a short grace before it counts as outliving.
        if self._group_alive(grace=3.0):
            problems.append("processes of the gateway's group outlived it; killed")
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        return problems + self.exit_problems()

    def _group_alive(self, grace):
        deadline = time.monotonic() + grace
        while True:
            try:
                os.killpg(self.proc.pid, 0)
            except (ProcessLookupError, PermissionError):
                return False
            if time.monotonic() >= deadline:
                return True
            time.sleep(0.05)

    def exit_problems(self):
        problems = []
        rc = self.returncode
        if rc is not None and rc < 0 and not self.killed:
            problems.append(f"died by signal {signal.Signals(-rc).name}")
        elif rc is not None and rc > 0:
            problems.append(f"exited with status {rc}")
        found = sanitizer_report(self.log_text())
        if found:
            problems.append("sanitizer report in log: " + ", ".join(found))
        return problems

    def check_stopped(self, **kw):
        """stop() and raise GatewayError with the log tail if anything went wrong."""
        problems = self.stop(**kw)
        if problems:
            raise GatewayError("; ".join(problems) + "\n" + self.log_tail())

    # -- logs --

    def log_text(self):
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text("utf-8", "replace")

    def new_log(self):
        """Log text written since the previous call."""
        text = self.log_text()
        new, self._log_offset = text[self._log_offset:], len(text)
        return new

    def log_tail(self, nbytes=6000):
        text = self.log_text()
        return f"--- {self.log_path} (last {nbytes} chars) ---\n" + text[-nbytes:]

    # -- health --

    def health_problems(self, echo=True):
        """Problems seen now: dead, sanitizer output, /healthz or /echo not working."""
        problems = []
        if not self.alive():
            self.returncode = self.proc.returncode
            problems.append("gateway is not running")
            problems += self.exit_problems()
            return problems
        found = sanitizer_report(self.new_log())
        if found:
            problems.append("sanitizer report in log: " + ", ".join(found))
        try:
            r = http_get(self.port, "/healthz", timeout=5)
            if r.status != 200:
                problems.append(f"GET /healthz answered {r.status}")
        except (OSError, HttpError) as e:
            problems.append(f"GET /healthz failed: {e!r}")
        if echo:
            try:
                ws = ws_connect(self.port, "/echo", timeout=5)
                with ws:
                    ws.send_frame(OP_TEXT, b"health check \xe2\x9c\x93")
                    op, data = ws.recv_message(timeout=5)
                    if (op, data) != (OP_TEXT, b"health check \xe2\x9c\x93"):
                        problems.append(f"fresh echo returned {op} {data!r}")
                    ws.close_handshake(1000, timeout=5)
            except (OSError, HttpError, WSError, AssertionError) as e:
                problems.append(f"fresh echo failed: {e!r}")
        return problems


# ---------------------------------------------------------------------------------------------
# the public directory

INDEX_HTML = b"<!doctype html>\n<title>chatbroker test</title>\n<p>index \xc3\xa9</p>\n"
SUB_INDEX = b"<!doctype html><p>sub index</p>\n"
SECRET = b"TOPSECRET-do-not-serve\n"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
FILES = {
    "index.html": INDEX_HTML,
    "style.css": b"body { color: #123; }\n",
    "app.js": b"console.log('hi');\n",
    "logo.png": PNG,
    "icon.svg": b'<svg xmlns="http://www.w3.org/2000/svg"/>\n',
    "data.json": b'{"a": 1}\n',
    "favicon.ico": b"\x00\x00\x01\x00" + b"\x00" * 60,
    "blob.qqq": b"\x00\x01\x02opaque\xff",
    "noext": b"no extension\n",
    "hello world.html": b"<p>space</p>\n",
    "sub/index.html": SUB_INDEX,
    "sub/page.html": b"<p>sub page</p>\n",
    "sub/deeper/x.css": b"x{}\n",
    "big.bin": bytes((i * 7 + 3) & 0xFF for i in range(300 * 1024)),
}


def make_site(root):
    """root/public (served) and root/secret.txt + root/outside/ (must never be served)."""
    pub = root / "public"
    for rel, data in FILES.items():
        p = pub / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    (pub / "emptydir").mkdir()
    (root / "secret.txt").write_bytes(SECRET)
    (root / "outside").mkdir()
    (root / "outside" / "secret.txt").write_bytes(SECRET)
    (root / "outside" / "index.html").write_bytes(SECRET)
    os.symlink(root / "secret.txt", pub / "link-out.html")
    os.symlink("../secret.txt", pub / "rel-link-out.html")
    os.symlink(root / "outside", pub / "dirlink")
    return {"root": root, "public": pub}


# ---------------------------------------------------------------------------------------------
# raw HTTP


class HttpError(Exception):
    pass


class Response:
    def __init__(self, version, status, reason, headers, body, head):
        self.version = version
        self.status = status
        self.reason = reason
        self.headers = headers  # list of (name, value) as received
        self.body = body
        self.head = head  # raw bytes of the status line and headers

    def header(self, name, default=None):
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return default

    def header_all(self, name):
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]

    def tokens(self, name):
        """Comma-separated tokens of every `name` header, lower-cased."""
        out = []
        for v in self.header_all(name):
            out += [t.strip().lower() for t in v.split(",") if t.strip()]
        return out

    def __repr__(self):
        return f"<Response {self.status} {self.reason!r} {self.headers!r} body={self.body[:200]!r}>"


class HttpConn:
    """A client socket with a read buffer; several responses may be read from it in order."""

    MAX_HEAD = 256 * 1024

    def __init__(self, port, host="127.0.0.1", timeout=5.0, family=socket.AF_INET, sock=None,
                 rcvbuf=None):
        if sock is None:
            sock = socket.socket(family, socket.SOCK_STREAM)
            if rcvbuf:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.settimeout(timeout)
            try:
                sock.connect((host, port))
            except OSError:
                sock.close()
                raise
        self.sock = sock
        self.buf = bytearray()
        self.eof = False
        self.timeout = timeout

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, data):
        self.sock.sendall(data)

    def _recv_some(self, deadline):
        """Read once into buf; False on EOF or reset. Raises socket.timeout at the deadline."""
        if self.eof:
            return False
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("timed out")
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            data = b""
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def _need(self, n, deadline):
        while len(self.buf) < n:
            if not self._recv_some(deadline):
                raise HttpError(f"connection closed after {len(self.buf)} of {n} bytes")

    def _take(self, n):
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_head(self, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            i = self.buf.find(b"\r\n\r\n")
            if i >= 0:
                return self._take(i + 4)
            if len(self.buf) > self.MAX_HEAD:
                raise HttpError("response head too large")
            if not self._recv_some(deadline):
                raise HttpError(f"connection closed before a response head; got "
                                f"{bytes(self.buf[:300])!r}")

    def read_response(self, method="GET", timeout=None):
        timeout = timeout or self.timeout
        deadline = time.monotonic() + timeout
        head = self.read_head(timeout)
        lines = head[:-4].split(b"\r\n")
        m = re.match(rb"^(HTTP/\d\.\d) (\d{3})(?: (.*))?$", lines[0])
        if not m:
            raise HttpError(f"bad status line {lines[0]!r}")
        version, status, reason = m.group(1).decode(), int(m.group(2)), (m.group(3) or b"")
        headers = []
        for line in lines[1:]:
            if b":" not in line:
                raise HttpError(f"bad header line {line!r}")
            k, v = line.split(b":", 1)
            headers.append((k.decode("latin-1"), v.strip().decode("latin-1")))
        resp = Response(version, status, reason.decode("latin-1"), headers, b"", head)
        if method == "HEAD" or status < 200 or status in (204, 304):
            return resp
        te = resp.header("Transfer-Encoding")
        if te and "chunked" in te.lower():
            resp.body = self._read_chunked(deadline)
        elif resp.header("Content-Length") is not None:
            n = int(resp.header("Content-Length"))
            self._need(n, deadline)
            resp.body = self._take(n)
        else:
            while self._recv_some(deadline):
                pass
            resp.body = self._take(len(self.buf))
        return resp

    def _read_chunked(self, deadline):
        body = bytearray()
        for _ in range(100000):
            while b"\r\n" not in self.buf:
                if not self._recv_some(deadline):
                    raise HttpError("closed inside chunked body")
            i = self.buf.find(b"\r\n")
            size = int(bytes(self.buf[:i]).split(b";")[0], 16)
            del self.buf[:i + 2]
            if size == 0:
                while self.buf.find(b"\r\n") != 0:
                    i = self.buf.find(b"\r\n")
                    if i > 0:
                        del self.buf[:i + 2]
                    elif not self._recv_some(deadline):
                        return bytes(body)
                del self.buf[:2]
                return bytes(body)
            self._need(size + 2, deadline)
            body += self._take(size)
            del self.buf[:2]
        raise HttpError("too many chunks")

    def wait_closed(self, timeout=3.0):
        """Read until EOF; return the bytes that came first. Raises socket.timeout if still open."""
        deadline = time.monotonic() + timeout
        while self._recv_some(deadline):
            if len(self.buf) > 64 * 1024 * 1024:
                raise HttpError("too much data while waiting for close")
        return self._take(len(self.buf))

    def is_closed(self, timeout=3.0):
        try:
            self.wait_closed(timeout)
            return True
        except socket.timeout:
            return False


def build_request(method="GET", path="/", headers=None, body=b"", version="HTTP/1.1",
                  host="127.0.0.1"):
    """Bytes of one request; headers is a list of (name, value); Host first unless host=None."""
    lines = [f"{method} {path} {version}"]
    if host is not None:
        lines.append(f"Host: {host}")
    for k, v in headers or []:
        lines.append(f"{k}: {v}")
    if body and not any(k.lower() == "content-length" for k, _ in headers or []):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def http_request(port, raw, method="GET", timeout=5.0):
    """Send raw bytes on a new connection, read one response."""
    with HttpConn(port, timeout=timeout) as c:
        c.send(raw)
        return c.read_response(method=method, timeout=timeout)


def http_get(port, path, headers=None, method="GET", timeout=5.0):
    hdrs = list(headers or []) + [("Connection", "close")]
    raw = build_request(method, path, hdrs, host=f"127.0.0.1:{port}")
    return http_request(port, raw, method=method, timeout=timeout)


# ---------------------------------------------------------------------------------------------
# raw WebSocket


class WSError(Exception):
    pass


class WSClosed(WSError):
    """A close frame arrived where a data message was expected."""

    def __init__(self, code, reason):
        super().__init__(f"server sent close code={code} reason={reason!r}")
        self.code = code
        self.reason = reason


def new_key():
    return base64.b64encode(os.urandom(16)).decode()


def accept_for(key):
    if isinstance(key, str):
        key = key.encode()
    return base64.b64encode(hashlib.sha1(key + WS_GUID).digest()).decode()


def mask_bytes(data, key):
    n = len(data)
    if n == 0:
        return b""
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(k, "big")).to_bytes(n, "big")


def frame(opcode, payload=b"", fin=True, rsv=0, mask=True, mask_key=None, length=None):
    """One frame as a client sends it (masked unless mask=False).

    rsv: the three RSV bits as a number 0..7 (4 = RSV1). length: the declared payload length
    if it must differ from len(payload).
    """
    if isinstance(payload, str):
        payload = payload.encode()
    b0 = (0x80 if fin else 0) | ((rsv & 7) << 4) | (opcode & 0xF)
    n = len(payload) if length is None else length
    mbit = 0x80 if mask else 0
    if n < 126:
        head = bytes([b0, mbit | n])
    elif n < 65536:
        head = bytes([b0, mbit | 126]) + struct.pack("!H", n)
    else:
        head = bytes([b0, mbit | 127]) + struct.pack("!Q", n)
    if mask:
        key = os.urandom(4) if mask_key is None else mask_key
        return head + key + mask_bytes(payload, key)
    return head + payload


def close_payload(code=None, reason=b""):
    if isinstance(reason, str):
        reason = reason.encode()
    if code is None:
        return reason
    return struct.pack("!H", code) + reason


class Frame:
    def __init__(self, fin, rsv, opcode, masked, payload):
        self.fin, self.rsv, self.opcode = fin, rsv, opcode
        self.masked, self.payload = masked, payload

    def close_code(self):
        """(code, reason) of a close frame; (None, b"") for an empty one."""
        if len(self.payload) < 2:
            return None, b""
        return struct.unpack("!H", self.payload[:2])[0], self.payload[2:]

    def __repr__(self):
        p = self.payload if len(self.payload) <= 40 else self.payload[:40] + b"..."
        return (f"<Frame fin={int(self.fin)} rsv={self.rsv} op={self.opcode:#x} "
                f"len={len(self.payload)} {p!r}>")


def handshake_request(path="/echo", host="127.0.0.1", key=None, version="13",
                      extra=None, origin=None):
    headers = [("Upgrade", "websocket"), ("Connection", "Upgrade"),
               ("Sec-WebSocket-Key", key or new_key())]
    if version is not None:
        headers.append(("Sec-WebSocket-Version", version))
    if origin is not None:
        headers.append(("Origin", origin))
    headers += list(extra or [])
    return build_request("GET", path, headers, host=host)


class RawWS:
    """A WebSocket client on a raw socket; server frames are checked strictly as they arrive."""

    def __init__(self, conn, response):
        self.conn = conn
        self.response = response
        self.sock = conn.sock
        # permessage-deflate negotiated: RSV1 may mark the first frame of a data message.
        self.deflate = "permessage-deflate" in (response.header("Sec-WebSocket-Extensions") or "")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.conn.close()

    def close(self):
        self.conn.close()

    def send(self, data):
        self.conn.send(data)

    def send_frame(self, opcode, payload=b"", **kw):
        self.conn.send(frame(opcode, payload, **kw))

    def send_close(self, code=None, reason=b"", **kw):
        self.conn.send(frame(OP_CLOSE, close_payload(code, reason), **kw))

    def recv_frame(self, timeout=5.0):
        """Next server frame. WSError on EOF; socket.timeout when none arrives in time."""
        deadline = time.monotonic() + timeout
        c = self.conn
        try:
            c._need(2, deadline)
            b0, b1 = c.buf[0], c.buf[1]
            n, off = b1 & 0x7F, 2
            if n == 126:
                c._need(4, deadline)
                n, off = struct.unpack("!H", bytes(c.buf[2:4]))[0], 4
            elif n == 127:
                c._need(10, deadline)
                n, off = struct.unpack("!Q", bytes(c.buf[2:10]))[0], 10
            masked = bool(b1 & 0x80)
            if masked:
                off += 4
            if n > 64 * 1024 * 1024:
                raise WSError(f"server frame declares {n} bytes")
            c._need(off + n, deadline)
        except HttpError as e:
            raise WSError(f"EOF while reading a frame: {e}") from None
        raw = c._take(off + n)
        payload = raw[off:]
        if masked:
            payload = mask_bytes(payload, raw[off - 4:off])
        f = Frame(bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0xF, masked, payload)
        if f.masked:
            raise WSError(f"server sent a masked frame {f!r}")
        if f.rsv and not (self.deflate and f.rsv == 4 and f.opcode in (OP_TEXT, OP_BINARY)):
            raise WSError(f"server set RSV bits {f!r}")
        if f.opcode not in KNOWN_OPCODES:
            raise WSError(f"server used a reserved opcode {f!r}")
        if f.opcode >= 8 and (not f.fin or len(f.payload) > 125):
            raise WSError(f"server sent a bad control frame {f!r}")
        return f

    def recv_message(self, timeout=5.0, pongs=None):
        """Next data message as (opcode, payload), reassembling fragments.

        Pongs are appended to `pongs` (if given) and skipped; a server ping is answered;
        a close raises WSClosed.
        """
        deadline = time.monotonic() + timeout
        op, parts, compressed = None, [], False
        for _ in range(1_000_000):
            f = self.recv_frame(max(0.001, deadline - time.monotonic()))
            if f.opcode == OP_CLOSE:
                code, reason = f.close_code()
                raise WSClosed(code, reason)
            if f.opcode == OP_PING:
                self.send_frame(OP_PONG, f.payload)
                continue
            if f.opcode == OP_PONG:
                if pongs is not None:
                    pongs.append(f.payload)
                continue
            if op is None:
                if f.opcode == OP_CONT:
                    raise WSError("server sent a continuation without a message")
                op = f.opcode
                compressed = f.rsv == 4
            elif f.opcode != OP_CONT:
                raise WSError(f"server started a message inside another: {f!r}")
            parts.append(f.payload)
            if f.fin:
                data = b"".join(parts)
                if compressed:  # the server takes over no context: each message stands alone
                    data = zlib.decompressobj(-15).decompress(data + b"\x00\x00\xff\xff")
                return op, data
        raise WSError("too many frames")

    def expect_close(self, timeout=5.0):
        """Read until the server's close frame; return (code, reason, frames before it).

        Raises WSError if the connection ends first or socket.timeout if nothing arrives.
        """
        deadline = time.monotonic() + timeout
        before = []
        for _ in range(100000):
            f = self.recv_frame(max(0.001, deadline - time.monotonic()))
            if f.opcode == OP_CLOSE:
                code, reason = f.close_code()
                if code is not None:
                    try:
                        reason.decode("utf-8")
                    except UnicodeDecodeError:
                        raise WSError(f"server close reason is not UTF-8: {reason!r}")
                return code, reason, before
            before.append(f)
        raise WSError("too many frames before close")

    def expect_eof(self, timeout=3.0):
        """Wait for the server to close TCP; return stray bytes. socket.timeout if it does not."""
        return self.conn.wait_closed(timeout)

    def close_handshake(self, code=1000, reason=b"", timeout=5.0):
        """Client-initiated close: send close, expect the server's close and then EOF."""
        self.send_close(code, reason)
        got, _, _ = self.expect_close(timeout)
        self.expect_eof(timeout)
        return got

    def fail_with(self, timeout=5.0, eof_timeout=5.0):
        """After a violation: expect the server's close code, answer it, expect EOF."""
        code, reason, before = self.expect_close(timeout)
        try:
            self.send_close(code if code not in (None, 1005, 1006, 1015) else 1000)
        except OSError:
            pass
        self.expect_eof(eof_timeout)
        return code, reason, before


def ws_connect(port, path="/echo", host=None, timeout=5.0, extra=None, origin=None,
               key=None, rcvbuf=None, family=socket.AF_INET, addr="127.0.0.1"):
    """Open a raw WebSocket; raises WSError unless the answer is a valid 101."""
    host = host or (f"[{addr}]:{port}" if family == socket.AF_INET6 else f"127.0.0.1:{port}")
    key = key or new_key()
    conn = HttpConn(port, host=addr, timeout=timeout, rcvbuf=rcvbuf, family=family)
    try:
        conn.send(handshake_request(path, host=host, key=key, extra=extra, origin=origin))
        resp = conn.read_response(timeout=timeout)
        if resp.status != 101:
            raise WSError(f"handshake answered {resp!r}")
        if resp.header("Sec-WebSocket-Accept") != accept_for(key):
            raise WSError(f"bad Sec-WebSocket-Accept in {resp!r}")
    except BaseException:
        conn.close()
        raise
    return RawWS(conn, resp)


def readable(sock, timeout):
    r, _, _ = select.select([sock], [], [], timeout)
    return bool(r)
