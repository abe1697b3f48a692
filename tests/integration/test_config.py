"""Configuration: --help, flag forms, environment twins, size and duration syntax, bad values."""

import asyncio
import re
import socket
import time

import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from gwtest import (OP_BINARY, HttpConn, build_request, free_port, handshake_request, http_get,
                    run_gateway, ws_connect)

FLAGS = [
    ("--listen", "CHAT_LISTEN", "127.0.0.1:8080"),
    ("--public-dir", "CHAT_PUBLIC_DIR", "public"),
    ("--allowed-origins", "CHAT_ALLOWED_ORIGINS", None),
    ("--subprotocols", "CHAT_SUBPROTOCOLS", None),
    ("--max-message", "CHAT_MAX_MESSAGE", "64KiB"),
    ("--max-header", "CHAT_MAX_HEADER", "8KiB"),
    ("--max-output", "CHAT_MAX_OUTPUT", "1MiB"),
    ("--handshake-timeout", "CHAT_HANDSHAKE_TIMEOUT", "10s"),
    ("--ping-interval", "CHAT_PING_INTERVAL", "30s"),
    ("--pong-timeout", "CHAT_PONG_TIMEOUT", "10s"),
    ("--close-timeout", "CHAT_CLOSE_TIMEOUT", "5s"),
    ("--drain-timeout", "CHAT_DRAIN_TIMEOUT", "10s"),
    ("--log-level", "CHAT_LOG_LEVEL", "info"),
]

# Alternative spellings of the same defaults a help text may use.
DEFAULT_SPELLINGS = {
    "64KiB": ["64KiB", "65536", "64k", "64K"],
    "8KiB": ["8KiB", "8192", "8k", "8K"],
    "1MiB": ["1MiB", "1048576", "1m", "1M", "1024KiB"],
    "10s": ["10s", "10000ms", "10 s"],
    "30s": ["30s", "30000ms", "30 s"],
    "5s": ["5s", "5000ms", "5 s"],
}


def max_message_probe(port, limit):
    """(echo of limit bytes ok?, close code for limit+1 bytes)"""
    async def go():
        async with websockets.connect(f"ws://127.0.0.1:{port}/echo", ping_interval=None,
                                      max_size=None) as ws:
            await ws.send(b"a" * limit)
            ok = (await asyncio.wait_for(ws.recv(), 10)) == b"a" * limit
            await ws.send(b"b" * (limit + 1))
            try:
                await asyncio.wait_for(ws.recv(), 10)
                return ok, None
            except ConnectionClosed as e:
                return ok, (e.rcvd.code if e.rcvd else None)

    return asyncio.run(asyncio.wait_for(go(), 30))


def time_to_408(port, max_wait=6.0):
    with HttpConn(port, timeout=max_wait) as c:
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\n")
        t0 = time.monotonic()
        r = c.read_response(timeout=max_wait)
        return r.status, time.monotonic() - t0


# --- --help -----------------------------------------------------------------------------------


def test_help_lists_flags_and_defaults(gateway_bin):
    p = run_gateway(["--help"])
    assert p.returncode == 0, p
    text = p.stdout.decode("utf-8", "replace")
    assert text.strip(), "--help printed nothing on stdout"
    for flag, env, default in FLAGS:
        assert flag in text, f"--help does not list {flag}"
        assert env in text, f"--help does not list {env}"
        if default:
            spellings = DEFAULT_SPELLINGS.get(default, [default])
            assert any(s in text for s in spellings), f"--help does not show default {default}"


def test_help_starts_nothing(gateway_bin):
    port = free_port()
    p = run_gateway(["--help", "--listen", f"127.0.0.1:{port}"])
    assert p.returncode == 0
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()


# --- bad values ---------------------------------------------------------------------------


BAD = [
    (["--listen", "127.0.0.1:99999"], "99999"),
    (["--listen", "127.0.0.1:abc"], "abc"),
    (["--listen", "127.0.0.1"], "listen"),
    (["--listen", "127.0.0.1:-1"], "listen"),
    (["--listen", ""], "listen"),
    (["--listen", "no.such.host.invalid:80"], "listen"),
    (["--listen=[::1"], "listen"),
    (["--max-message", "abc"], "abc"),
    (["--max-message", "12XB"], "12XB"),
    (["--max-message", "-5"], "max-message"),
    (["--max-message", ""], "max-message"),
    (["--max-message", "99999999999999999999999"], "max-message"),
    (["--max-header", "lots"], "lots"),
    (["--max-output", "1.5.6"], "max-output"),
    (["--handshake-timeout", "abc"], "abc"),
    (["--handshake-timeout", "10x"], "10x"),
    (["--ping-interval", "-1s"], "ping-interval"),
    (["--pong-timeout", "soon"], "soon"),
    (["--close-timeout", "5 parsecs"], "close-timeout"),
    (["--drain-timeout", "ms"], "drain-timeout"),
    (["--log-level", "loud"], "loud"),
    (["--public-dir", "/nonexistent/chatbroker/public"], "/nonexistent/chatbroker/public"),
    (["--unknown-flag"], "unknown-flag"),
    (["--unknown-flag", "x"], "unknown-flag"),
    (["positional"], "positional"),
    (["--max-message"], "max-message"),
    (["--listen"], "listen"),
]


@pytest.mark.parametrize("args,mention", BAD, ids=[" ".join(a) or "empty" for a, _ in BAD])
def test_bad_flag_exits_1(gateway_bin, args, mention):
    p = run_gateway(args, timeout=10)
    err = p.stderr.decode("utf-8", "replace")
    assert p.returncode == 1, f"exit {p.returncode} for {args}; stderr: {err!r}"
    assert err.strip(), f"no message on stderr for {args}"
    assert mention.lower() in err.lower(), f"message does not name {mention!r}: {err!r}"
    assert not [m for m in ("AddressSanitizer", "runtime error:", "LeakSanitizer") if m in err]


def test_public_dir_is_a_file(gateway_bin, site):
    path = site["public"] / "index.html"
    p = run_gateway(["--public-dir", str(path)], timeout=10)
    assert p.returncode == 1, p
    assert p.stderr.strip()


@pytest.mark.parametrize("env", [
    {"CHAT_MAX_MESSAGE": "abc"},
    {"CHAT_LISTEN": "127.0.0.1:99999"},
    {"CHAT_HANDSHAKE_TIMEOUT": "forever"},
    {"CHAT_LOG_LEVEL": "chatty"},
    {"CHAT_PUBLIC_DIR": "/nonexistent/chatbroker/public"},
], ids=lambda e: next(iter(e)))
def test_bad_env_exits_1(gateway_bin, env):
    p = run_gateway([], env=env, timeout=10)
    err = p.stderr.decode("utf-8", "replace")
    assert p.returncode == 1, f"exit {p.returncode} for {env}; stderr {err!r}"
    name = next(iter(env))
    assert name in err or env[name] in err, f"message names neither {name} nor its value: {err!r}"


def test_port_in_use_exits_1(gateway_bin, site):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        p = run_gateway(["--listen", f"127.0.0.1:{port}", "--public-dir", str(site["public"])],
                        timeout=10)
    assert p.returncode == 1, p
    assert p.stderr.strip()


# --- flag forms and environment twins ----------------------------------------------------------


def test_flag_equals_form(make_gateway):
    port = free_port()
    g = make_gateway(f"--listen=127.0.0.1:{port}", "--max-message=1k", listen=False, port=port)
    assert http_get(port, "/healthz").status == 200
    assert max_message_probe(g.port, 1024) == (True, 1009)


def test_env_listen(make_gateway):
    port = free_port()
    make_gateway(env={"CHAT_LISTEN": f"127.0.0.1:{port}"}, listen=False, port=port)
    assert http_get(port, "/healthz").status == 200


def test_flag_overrides_env(make_gateway):
    env_port, flag_port = free_port(), free_port()
    make_gateway("--listen", f"127.0.0.1:{flag_port}", env={"CHAT_LISTEN": f"127.0.0.1:{env_port}"},
                 listen=False, port=flag_port)
    assert http_get(flag_port, "/healthz").status == 200
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", env_port), timeout=0.5).close()


def test_env_public_dir(make_gateway, tmp_path):
    pub = tmp_path / "envpub"
    pub.mkdir()
    (pub / "index.html").write_bytes(b"from env")
    g = make_gateway(env={"CHAT_PUBLIC_DIR": str(pub)}, public_dir=None)
    assert http_get(g.port, "/").body == b"from env"


def test_default_public_dir_relative_to_cwd(make_gateway, tmp_path):
    (tmp_path / "run" / "public").mkdir(parents=True)
    (tmp_path / "run" / "public" / "index.html").write_bytes(b"cwd public")
    g = make_gateway(public_dir=None, cwd=tmp_path / "run")
    assert http_get(g.port, "/").body == b"cwd public"


def test_env_max_message(make_gateway):
    g = make_gateway(env={"CHAT_MAX_MESSAGE": "2KiB"})
    assert max_message_probe(g.port, 2048) == (True, 1009)


def test_env_max_header(make_gateway):
    g = make_gateway(env={"CHAT_MAX_HEADER": "1KiB"})
    with HttpConn(g.port) as c:
        c.send(build_request("GET", "/healthz", [("X-Pad", "p" * 1500)]))
        assert c.read_response().status == 431


def test_env_allowed_origins_and_subprotocols(make_gateway):
    g = make_gateway(env={"CHAT_ALLOWED_ORIGINS": "http://ok.example",
                          "CHAT_SUBPROTOCOLS": "chat"})
    ws = ws_connect(g.port, origin="http://ok.example",
                    extra=[("Sec-WebSocket-Protocol", "x, chat")])
    with ws:
        assert ws.response.header("Sec-WebSocket-Protocol") == "chat"
    with HttpConn(g.port) as c:
        c.send(handshake_request(host=f"127.0.0.1:{g.port}", origin="http://bad.example"))
        assert c.read_response().status == 403


def test_env_handshake_timeout(make_gateway):
    g = make_gateway(env={"CHAT_HANDSHAKE_TIMEOUT": "300ms"})
    status, took = time_to_408(g.port)
    assert status == 408 and took < 2.0, (status, took)


def test_env_ping_and_pong(make_gateway):
    g = make_gateway(env={"CHAT_PING_INTERVAL": "200ms", "CHAT_PONG_TIMEOUT": "200ms",
                          "CHAT_CLOSE_TIMEOUT": "300ms"})
    with ws_connect(g.port) as ws:
        code, reason, before = ws.expect_close(timeout=3)
        assert code == 1008, (code, reason)


def test_env_log_level_error_is_quiet(make_gateway):
    g = make_gateway(env={"CHAT_LOG_LEVEL": "error"})
    http_get(g.port, "/healthz")
    http_get(g.port, "/missing")
    assert " INFO " not in g.log_text() and " DEBUG " not in g.log_text(), g.log_text()[-2000:]


# --- size and duration syntax -----------------------------------------------------------------


@pytest.mark.parametrize("spelling", ["1024", "1KiB", "1k", "1K", "1kib"])
def test_size_spellings_1k(make_gateway, spelling):
    g = make_gateway("--max-message", spelling)
    assert max_message_probe(g.port, 1024) == (True, 1009)


@pytest.mark.parametrize("spelling", ["1MiB", "1m", "1048576"])
def test_size_spellings_1m(make_gateway, spelling):
    # The echo of a 1 MiB message alone would pass the default 1 MiB output cap.
    g = make_gateway("--max-message", spelling, "--max-output", "8MiB")
    assert max_message_probe(g.port, 1024 * 1024) == (True, 1009)


@pytest.mark.parametrize("spelling,low,high", [
    ("400ms", 0.25, 2.0),
    ("1", 0.8, 3.0),
    ("1s", 0.8, 3.0),
])
def test_duration_spellings(make_gateway, spelling, low, high):
    g = make_gateway("--handshake-timeout", spelling)
    status, took = time_to_408(g.port)
    assert status == 408, status
    assert low <= took <= high, f"{spelling}: 408 after {took:.2f}s"


def test_duration_minutes(make_gateway):
    g = make_gateway("--handshake-timeout", "2m")
    with HttpConn(g.port) as c:
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\n")
        assert not c.is_closed(1.5), "closed long before 2 minutes"
        c.send(b"Connection: close\r\n\r\n")
        assert c.read_response().status == 200


# --- listen addresses and logs ----------------------------------------------------------------


def test_listen_ipv6(make_gateway, ipv6_available):
    port = free_port(socket.AF_INET6, "::1")
    g = make_gateway("--listen", f"[::1]:{port}", listen=False, port=port, start=False)
    g.host = "::1"  # readiness is probed on the IPv6 address
    g.start()
    with HttpConn(port, host="::1", family=socket.AF_INET6) as c:
        c.send(b"GET /healthz HTTP/1.1\r\nHost: [::1]\r\nConnection: close\r\n\r\n")
        assert c.read_response().status == 200
    with ws_connect(port, family=socket.AF_INET6, addr="::1",
                    origin=f"http://[::1]:{port}") as ws:
        ws.send_frame(OP_BINARY, b"v6")
        assert ws.recv_message() == (OP_BINARY, b"v6")


LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (ERROR|WARN|INFO|DEBUG) ")


def test_log_format_and_listening_line(make_gateway):
    g = make_gateway("--log-level", "info")
    http_get(g.port, "/healthz")
    lines = [ln for ln in g.log_text().splitlines() if ln.strip()]
    assert lines, "no log lines at info"
    bad = [ln for ln in lines if not LOG_LINE.match(ln)]
    assert not bad, f"log lines not in the documented format: {bad[:5]}"
    assert any("listening" in ln and f"127.0.0.1:{g.port}" in ln for ln in lines), lines[:10]


def test_log_level_debug_accepted(make_gateway):
    g = make_gateway("--log-level", "debug")
    with ws_connect(g.port) as ws:
        ws.send_frame(OP_BINARY, b"dbg")
        assert ws.recv_message() == (OP_BINARY, b"dbg")
        ws.close_handshake()
    assert " DEBUG " in g.log_text()
