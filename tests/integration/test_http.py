"""HTTP/1.1 behaviour of the gateway: health, methods, keep-alive, pipelining, limits, errors."""

import socket
import time

import pytest

from gwtest import HttpConn, build_request, http_get, readable


def req(port, path="/", method="GET", headers=None, version="HTTP/1.1", body=b""):
    return build_request(method, path, headers, body=body, version=version,
                         host=f"127.0.0.1:{port}")


# --- /healthz and methods ---------------------------------------------------------------------


def test_healthz_ok(gw):
    r = http_get(gw.port, "/healthz")
    assert r.status == 200, r
    assert r.body.rstrip(b"\r\n") == b"ok", r


def test_healthz_query_ignored(gw):
    r = http_get(gw.port, "/healthz?probe=1")
    assert r.status == 200, r
    assert r.body.rstrip(b"\r\n") == b"ok", r


def test_healthz_head_has_no_body(gw):
    with HttpConn(gw.port) as c:
        c.send(req(gw.port, "/healthz", method="HEAD") + req(gw.port, "/healthz"))
        head = c.read_response(method="HEAD")
        assert head.status == 200, head
        # The next bytes must be the second response: a HEAD body would show up here.
        get = c.read_response()
        assert get.status == 200, get
        assert get.body.rstrip(b"\r\n") == b"ok"
        if head.header("Content-Length") is not None:
            assert head.header("Content-Length") == get.header("Content-Length")


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
@pytest.mark.parametrize("path", ["/", "/index.html", "/healthz"])
def test_other_methods_405(gw, method, path):
    body = b"x=1" if method in ("POST", "PUT", "PATCH") else b""
    with HttpConn(gw.port) as c:
        c.send(req(gw.port, path, method=method, body=body,
                   headers=[("Connection", "close")]))
        r = c.read_response()
    assert r.status == 405, r
    allow = [t.strip().upper() for t in (r.header("Allow") or "").split(",")]
    assert sorted(allow) == ["GET", "HEAD"], r


# --- keep-alive and pipelining -------------------------------------------------------------


def test_keepalive_sequential(gw):
    with HttpConn(gw.port) as c:
        for path, status in [("/healthz", 200), ("/", 200), ("/nope.html", 404),
                             ("/healthz", 200), ("/style.css", 200)]:
            c.send(req(gw.port, path))
            r = c.read_response()
            assert r.status == status, (path, r)
        assert not c.is_closed(0.2), "connection closed although keep-alive"


def test_pipelined_in_one_write(gw):
    paths = ["/healthz", "/index.html", "/missing", "/style.css", "/healthz"]
    expect = [200, 200, 404, 200, 200]
    with HttpConn(gw.port) as c:
        c.send(b"".join(req(gw.port, p) for p in paths))
        got = [c.read_response() for _ in paths]
    assert [r.status for r in got] == expect, got
    assert got[1].body.startswith(b"<!doctype html>")
    assert got[3].body == b"body { color: #123; }\n"


def test_pipelined_with_head_and_close(gw):
    with HttpConn(gw.port) as c:
        c.send(req(gw.port, "/index.html", method="HEAD") + req(gw.port, "/healthz")
               + req(gw.port, "/healthz", headers=[("Connection", "close")])
               + req(gw.port, "/healthz"))
        a = c.read_response(method="HEAD")
        b = c.read_response()
        d = c.read_response()
        assert (a.status, b.status, d.status) == (200, 200, 200)
        assert a.body == b""
        # Nothing after the Connection: close response, and the socket is closed.
        extra = c.wait_closed(3)
        assert extra == b"", f"answered a request after Connection: close: {extra[:200]!r}"


def test_connection_close_honoured(gw):
    with HttpConn(gw.port) as c:
        c.send(req(gw.port, "/healthz", headers=[("Connection", "close")]))
        r = c.read_response()
        assert r.status == 200
        assert c.is_closed(3), "connection left open after Connection: close"


def test_http10_closes(gw):
    with HttpConn(gw.port) as c:
        c.send(b"GET /healthz HTTP/1.0\r\n\r\n")
        r = c.read_response()
        assert r.status == 200, r
        assert c.is_closed(3), "HTTP/1.0 connection left open"


def test_http10_keepalive(gw):
    with HttpConn(gw.port) as c:
        c.send(b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        r = c.read_response()
        assert r.status == 200, r
        c.send(b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        r = c.read_response()
        assert r.status == 200, r


def test_request_split_in_pieces(gw):
    raw = req(gw.port, "/healthz", headers=[("Connection", "close")])
    with HttpConn(gw.port) as c:
        for i in range(0, len(raw), 3):
            c.send(raw[i:i + 3])
            time.sleep(0.002)
        r = c.read_response()
    assert r.status == 200, r


def test_post_body_then_next_request(gw):
    """A request body is consumed, not parsed as the next request."""
    with HttpConn(gw.port) as c:
        c.send(req(gw.port, "/", method="POST", body=b"GET /evil HTTP/1.1\r\n\r\n")
               + req(gw.port, "/healthz"))
        r1 = c.read_response()
        assert r1.status == 405, r1
        if not c.is_closed(0.1):
            r2 = c.read_response()
            assert r2.status == 200, r2
            assert r2.body.rstrip(b"\r\n") == b"ok"


# --- limits and malformed requests --------------------------------------------------------


def test_header_just_under_limit_ok(gw):
    hdrs = [("X-Pad", "a" * 7000)]
    r = http_get(gw.port, "/healthz", headers=hdrs)
    assert r.status == 200, r


@pytest.mark.hostile
@pytest.mark.parametrize("shape", ["one-big", "many-small", "long-target"])
def test_header_too_large_431(gw, shape):
    if shape == "one-big":
        raw = req(gw.port, "/healthz", headers=[("X-Pad", "a" * 9000)])
    elif shape == "many-small":
        raw = req(gw.port, "/healthz", headers=[(f"X-H{i}", "b" * 50) for i in range(200)])
    else:
        raw = req(gw.port, "/healthz?" + "q" * 9000)
    with HttpConn(gw.port) as c:
        c.send(raw)
        r = c.read_response()
        assert r.status == 431, r
        assert c.is_closed(3), "connection left open after 431"


@pytest.mark.hostile
def test_endless_header_431(gw):
    """Headers that never end are cut at the limit, not buffered forever."""
    with HttpConn(gw.port) as c:
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\n")
        for _ in range(64):  # up to 64 * 1 KiB
            try:
                c.send(b"X-Flood: " + b"f" * 1000 + b"\r\n")
            except (BrokenPipeError, ConnectionResetError):
                break
        got = c.read_response()
        assert got.status == 431, got


@pytest.mark.hostile
@pytest.mark.parametrize("raw", [
    b"\x00\x01\x02\x03garbage\r\n\r\n",
    b"HELLO\r\n\r\n",
    b"GET / FOO/1.1\r\nHost: x\r\n\r\n",
    b"GET\r\nHost: x\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nNoColonHeader\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    b"G\xffT / HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /\x01 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\nx",
], ids=["binary", "no-target", "bad-version", "no-version", "header-no-colon",
        "bad-content-length", "double-content-length", "bad-method-byte", "ctl-in-target",
        "blank-lines-garbage"])
def test_malformed_400_and_close(gw, raw):
    with HttpConn(gw.port) as c:
        c.send(raw)
        r = c.read_response()
        assert r.status == 400, r
        assert c.is_closed(3), "connection left open after 400"


@pytest.mark.hostile
def test_garbage_after_valid_request(gw):
    with HttpConn(gw.port) as c:
        c.send(req(gw.port, "/healthz") + b"\xff\xfe garbage \r\n\r\n")
        r = c.read_response()
        assert r.status == 200, r
        r2 = c.read_response()
        assert r2.status == 400, r2
        assert c.is_closed(3)


@pytest.mark.hostile
def test_many_connections_opened_and_dropped(gw):
    """Half-sent requests and abrupt closes must not disturb the gateway."""
    for i in range(100):
        with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as s:
            if i % 3 == 1:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHo")
            elif i % 3 == 2:
                s.sendall(req(gw.port, "/big.bin"))
    r = http_get(gw.port, "/healthz")
    assert r.status == 200


# --- timeouts (own gateway with a short handshake timeout) ----------------------------------


def test_incomplete_head_408(make_gateway):
    g = make_gateway("--handshake-timeout", "500ms")
    with HttpConn(g.port) as c:
        c.send(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        t0 = time.monotonic()
        r = c.read_response(timeout=5)
        took = time.monotonic() - t0
        assert r.status == 408, r
        assert 0.3 <= took <= 3.0, f"408 after {took:.2f}s for a 500ms timeout"
        assert c.is_closed(3), "connection left open after 408"


def test_slowloris_trickle_408(make_gateway):
    """Bytes trickling in do not extend the deadline for the whole head."""
    g = make_gateway("--handshake-timeout", "700ms")
    with HttpConn(g.port) as c:
        c.send(b"GET /healthz HTTP/1.1\r\n")
        t0 = time.monotonic()
        for i in range(40):  # at most ~4 s
            try:
                c.send(f"X-{i}: y\r\n".encode())
            except (BrokenPipeError, ConnectionResetError):
                break
            if readable(c.sock, 0.1):
                break
        r = c.read_response(timeout=5)
        assert r.status == 408, r
        assert time.monotonic() - t0 < 3.5


def test_keepalive_idle_closed_silently(make_gateway):
    g = make_gateway("--handshake-timeout", "500ms")
    with HttpConn(g.port) as c:
        c.send(req(g.port, "/healthz"))
        assert c.read_response().status == 200
        t0 = time.monotonic()
        extra = c.wait_closed(4)
        took = time.monotonic() - t0
        assert extra == b"", f"idle keep-alive connection got {extra[:200]!r}, not a silent close"
        assert took >= 0.3, f"idle connection closed after {took:.2f}s"


def test_fresh_idle_connection_closed(make_gateway):
    """A connection that never sends anything is closed (silently or with 408)."""
    g = make_gateway("--handshake-timeout", "500ms")
    with HttpConn(g.port) as c:
        extra = c.wait_closed(4)
        assert extra == b"" or extra.startswith(b"HTTP/1.1 408"), extra[:200]


def test_max_header_flag(make_gateway):
    g = make_gateway("--max-header", "1KiB")
    ok = http_get(g.port, "/healthz", headers=[("X-Pad", "a" * 500)])
    assert ok.status == 200, ok
    with HttpConn(g.port) as c:
        c.send(req(g.port, "/healthz", headers=[("X-Pad", "a" * 1500)]))
        r = c.read_response()
        assert r.status == 431, r
        assert c.is_closed(3)


def test_other_requests_served_while_one_is_slow(make_gateway):
    g = make_gateway("--handshake-timeout", "3s")
    with HttpConn(g.port) as slow:
        slow.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        for _ in range(5):
            r = http_get(g.port, "/healthz")
            assert r.status == 200


def test_half_closed_client_still_answered(gw):
    """`printf 'GET ...' | nc`: the client shuts its write side right after the request."""
    with HttpConn(gw.port) as c:
        c.send(b"GET /healthz HTTP/1.0\r\n\r\n")
        c.sock.shutdown(socket.SHUT_WR)
        r = c.read_response()
        assert r.status == 200, r
        assert r.body.rstrip(b"\r\n") == b"ok"


@pytest.mark.hostile
def test_reset_during_download(gw):
    """Clients resetting (SO_LINGER 0) while a large file is being written: no SIGPIPE death."""
    import struct
    for _ in range(20):
        s = socket.create_connection(("127.0.0.1", gw.port), timeout=5)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.sendall(req(gw.port, "/big.bin") * 3)
        time.sleep(0.01)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
    time.sleep(0.2)
    assert http_get(gw.port, "/healthz").status == 200


@pytest.mark.hostile
def test_pipelined_requests_without_reading_bounded(gw):
    """A client pipelining large downloads and never reading: once its answers pass the output
    cap the gateway must stop taking its input (or drop it), not buffer requests without bound.
    Kernel socket buffers on loopback hold about 10 MB; 32 MB accepted means user space holds
    the rest."""
    import select
    s = socket.create_connection(("127.0.0.1", gw.port), timeout=5)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.setblocking(False)
        chunk = req(gw.port, "/big.bin") * 1000  # ~60 KB of requests for ~300 MB of answers
        accepted, pending, dropped = 0, b"", False
        deadline = time.monotonic() + 6
        while accepted < 64 * 1024 * 1024 and time.monotonic() < deadline:
            if not pending:
                pending = chunk
            try:
                n = s.send(pending)
            except BlockingIOError:
                select.select([], [s], [], 0.2)
                continue
            except OSError:
                dropped = True
                break
            accepted += n
            pending = pending[n:]
        for _ in range(3):
            assert http_get(gw.port, "/healthz").status == 200
        assert dropped or accepted < 32 * 1024 * 1024, (
            f"gateway kept reading pipelined requests: {accepted >> 20} MiB accepted from a "
            "client that reads nothing")
    finally:
        s.close()


def test_chunked_post_body_consumed(gw):
    with HttpConn(gw.port) as c:
        c.send(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"5\r\nhello\r\n0\r\n\r\n" + req(gw.port, "/healthz"))
        r1 = c.read_response()
        assert r1.status == 405, r1
        if not c.is_closed(0.1):
            r2 = c.read_response()
            assert r2.status == 200, r2


@pytest.mark.hostile
@pytest.mark.parametrize("seed", range(4))
def test_fuzz_mutated_requests(gw, seed):
    import random
    rng = random.Random(1000 + seed)
    seeds = [
        req(gw.port, "/index.html"),
        req(gw.port, "/sub/%2e%2e/style.css?x=1", method="HEAD"),
        req(gw.port, "/", method="POST", body=b"a=1&b=2"),
        b"GET /echo HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        b"Origin: http://h\r\nSec-WebSocket-Protocol: a, b\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    ]
    for _ in range(50):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(len(data))
            k = rng.randrange(4)
            if k == 0:
                data[i] ^= 1 << rng.randrange(8)
            elif k == 1:
                del data[i:i + rng.randint(1, 8)]
            elif k == 2:
                data[i:i] = rng.choice([b"%", b"%00", b"\r\n", b":", b" ", b"..", b"/", b"\xff",
                                        b",", b"\r\n\r\n", b"0" * 20])
            else:
                data.extend(bytes(data))
        with socket.create_connection(("127.0.0.1", gw.port), timeout=2) as s:
            try:
                s.sendall(bytes(data))
                s.shutdown(socket.SHUT_WR)
                s.settimeout(0.5)
                first = s.recv(65536)
                for _ in range(1000):
                    if not s.recv(65536):
                        break
            except OSError:
                continue
            assert first == b"" or first.startswith(b"HTTP/1."), first[:100]
