"""The WebSocket opening handshake (RFC 6455 section 4.2) on /echo and /ws.
Frames are exchanged on /echo only: /ws speaks the chat protocol (tested elsewhere)."""

import base64
import os

import pytest

from gwtest import (OP_TEXT, HttpConn, accept_for, build_request, frame, new_key, ws_connect,
                    RawWS)

RFC_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
RFC_ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def upgrade(port, path="/echo", method="GET", version="HTTP/1.1", host="default",
            headers=None, drop=(), replace=None, key=None, body=b"", read_method=None):
    """Send a handshake request (standard headers, minus `drop`, with `replace` overrides and
    extra `headers`) and return (response, connection)."""
    std = {"Upgrade": "websocket", "Connection": "Upgrade",
           "Sec-WebSocket-Key": key or new_key(), "Sec-WebSocket-Version": "13"}
    std.update(replace or {})
    hdrs = [(k, v) for k, v in std.items() if k not in drop] + list(headers or [])
    if host == "default":
        host = f"127.0.0.1:{port}"
    raw = build_request(method, path, hdrs, version=version, host=host, body=body)
    c = HttpConn(port)
    c.send(raw)
    try:
        return c.read_response(method=read_method or method), c
    except BaseException:
        c.close()
        raise


def status_of(port, **kw):
    r, c = upgrade(port, **kw)
    c.close()
    return r


def assert_101(r, key):
    assert r.status == 101, r
    assert r.reason == "Switching Protocols", r
    assert "websocket" in r.tokens("Upgrade"), r
    assert "upgrade" in r.tokens("Connection"), r
    assert r.header("Sec-WebSocket-Accept") == accept_for(key), r


# --- success ----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/echo", "/ws", "/echo?x=1"])
def test_success(gw, path):
    key = new_key()
    r, c = upgrade(gw.port, path=path, key=key)
    with c:
        assert_101(r, key)
        assert r.header("Sec-WebSocket-Protocol") is None
        ws = RawWS(c, r)
        if path.startswith("/echo"):
            ws.send_frame(OP_TEXT, b"after handshake")
            assert ws.recv_message() == (OP_TEXT, b"after handshake")
        assert ws.close_handshake(1000) == 1000


def test_rfc_example_key(gw):
    r, c = upgrade(gw.port, key=RFC_KEY)
    c.close()
    assert r.status == 101, r
    assert r.header("Sec-WebSocket-Accept") == RFC_ACCEPT


@pytest.mark.parametrize("upg,conn", [
    ("WebSocket", "Upgrade"),
    ("WEBSOCKET", "UPGRADE"),
    ("websocket", "keep-alive, Upgrade"),
    ("websocket", "Upgrade, keep-alive"),
    ("websocket", "keep-alive,upgrade"),
    ("websocket", "  upgrade  "),
    ("h2c, websocket", "Upgrade"),
])
def test_token_lists_case_insensitive(gw, upg, conn):
    key = new_key()
    r = status_of(gw.port, key=key, replace={"Upgrade": upg, "Connection": conn})
    assert_101(r, key)


def test_lowercase_header_names(gw):
    key = new_key()
    raw = (f"GET /echo HTTP/1.1\r\nhost: 127.0.0.1:{gw.port}\r\nupgrade: websocket\r\n"
           f"connection: upgrade\r\nsec-websocket-key: {key}\r\nsec-websocket-version: 13\r\n\r\n")
    with HttpConn(gw.port) as c:
        c.send(raw.encode())
        assert_101(c.read_response(), key)


def test_frame_in_same_write_as_handshake(gw):
    """Bytes after the request head belong to the WebSocket and must not be lost."""
    key = new_key()
    raw = build_request("GET", "/echo", [("Upgrade", "websocket"), ("Connection", "Upgrade"),
                                         ("Sec-WebSocket-Key", key),
                                         ("Sec-WebSocket-Version", "13")],
                        host=f"127.0.0.1:{gw.port}")
    with HttpConn(gw.port) as c:
        c.send(raw + frame(OP_TEXT, b"early bird") + frame(OP_TEXT, b"second"))
        r = c.read_response()
        assert_101(r, key)
        ws = RawWS(c, r)
        assert ws.recv_message() == (OP_TEXT, b"early bird")
        assert ws.recv_message() == (OP_TEXT, b"second")


# --- refusals ---------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "HEAD"])
def test_non_get_405(gw, method):
    r = status_of(gw.port, method=method)
    assert r.status == 405, r


@pytest.mark.parametrize("kw,status", [
    ({"method": "POST"}, 405),
    ({"version": "HTTP/1.0"}, 400),
    ({"drop": ("Upgrade",)}, 400),
    ({"replace": {"Sec-WebSocket-Key": "abc"}}, 400),
    ({"replace": {"Sec-WebSocket-Version": "8"}}, 426),
    ({"headers": [("Origin", "http://evil.example")]}, 403),
    ({"host": None}, 400),
], ids=["post", "http10", "no-upgrade", "bad-key", "version-8", "origin", "no-host"])
def test_ws_path_same_refusals(gw, kw, status):
    r = status_of(gw.port, path="/ws", **kw)
    assert r.status == status, r


def test_http10_400(gw):
    r = status_of(gw.port, version="HTTP/1.0")
    assert r.status == 400, r


@pytest.mark.parametrize("kw", [
    {"drop": ("Upgrade",)},
    {"replace": {"Upgrade": "foo"}},
    {"replace": {"Upgrade": "websockets"}},
    {"replace": {"Upgrade": ""}},
    {"drop": ("Connection",)},
    {"replace": {"Connection": "keep-alive"}},
    {"replace": {"Connection": "close"}},
    {"replace": {"Connection": "upgrades"}},
    {"replace": {"Connection": "notupgrade, keep-alive"}},
], ids=["no-upgrade", "upgrade-foo", "upgrade-websockets", "upgrade-empty", "no-connection",
        "connection-keepalive", "connection-close", "connection-upgrades",
        "connection-notupgrade"])
def test_upgrade_connection_required_400(gw, kw):
    r = status_of(gw.port, **kw)
    assert r.status == 400, r


def b64(n):
    return base64.b64encode(os.urandom(n)).decode()


@pytest.mark.parametrize("key", [
    None, "", "abc", b64(15), b64(17), b64(32), "!" * 22 + "==",
    "dGhlIHNhbXBsZSBub25jZQ", "dGhlIHNhbXBsZSBub25jZQ===", "dGhlIHNhbXBs ZSBub25jZQ==",
    "AAAAAAAAAAAAAAAAAAAA-_==",
], ids=["missing", "empty", "short", "15-bytes", "17-bytes", "32-bytes",
        "bad-chars", "unpadded", "over-padded", "inner-space", "base64url"])
def test_bad_key_400(gw, key):
    if key is None:
        r = status_of(gw.port, drop=("Sec-WebSocket-Key",))
    else:
        r = status_of(gw.port, replace={"Sec-WebSocket-Key": key})
    assert r.status == 400, r


def test_duplicate_key_400(gw):
    r = status_of(gw.port, headers=[("Sec-WebSocket-Key", new_key())])
    assert r.status == 400, r


@pytest.mark.parametrize("version", ["8", "12", "14", "7", "13a", "abc", "013", "13, 8"])
def test_bad_version_426(gw, version):
    r = status_of(gw.port, replace={"Sec-WebSocket-Version": version})
    assert r.status == 426, r
    assert "13" in [t for t in r.tokens("Sec-WebSocket-Version")], r


def test_missing_version(gw):
    r = status_of(gw.port, drop=("Sec-WebSocket-Version",))
    assert r.status in (400, 426), r
    if r.status == 426:
        assert r.tokens("Sec-WebSocket-Version") == ["13"], r


def test_missing_host_400(gw):
    r = status_of(gw.port, host=None)
    assert r.status == 400, r


def test_failed_handshake_then_not_a_websocket(gw):
    """After a refused upgrade, frame bytes are not echoed as if upgraded."""
    r, c = upgrade(gw.port, replace={"Sec-WebSocket-Version": "8"})
    with c:
        assert r.status == 426
        try:
            c.send(frame(OP_TEXT, b"sneaky"))
        except OSError:
            return
        try:
            rest = c.wait_closed(2)
        except TimeoutError:
            rest = bytes(c.buf)
        assert b"sneaky" not in rest


# --- Origin -----------------------------------------------------------------------------------


def origin_status(port, origin, host="default"):
    hdrs = [] if origin is None else [("Origin", origin)]
    return status_of(port, headers=hdrs, host=host).status


def test_origin_absent_passes(gw):
    assert origin_status(gw.port, None) == 101


@pytest.mark.parametrize("fmt", ["http://127.0.0.1:{p}", "https://127.0.0.1:{p}",
                                 "HTTP://127.0.0.1:{p}"])
def test_origin_same_host(gw, fmt):
    assert origin_status(gw.port, fmt.format(p=gw.port)) == 101


def test_origin_same_host_without_port(gw):
    """Host without a port (as behind a proxy on port 80) and a matching Origin."""
    assert origin_status(gw.port, "http://chat.example", host="chat.example") == 101
    assert origin_status(gw.port, "http://other.example", host="chat.example") == 403


def test_origin_same_host_case_insensitive(gw):
    p = gw.port
    assert origin_status(p, f"http://LocalHost:{p}", host=f"localhost:{p}") == 101
    assert origin_status(p, f"http://localhost:{p}", host=f"LOCALHOST:{p}") == 101


@pytest.mark.parametrize("fmt", ["http://evil.example", "http://evil.example:{p}",
                                 "http://127.0.0.1:{q}", "http://127.0.0.1", "null",
                                 "http://127.0.0.1:{p}.evil.example", "http://x127.0.0.1:{p}",
                                 "garbage"])
def test_origin_other_host_403(gw, fmt):
    assert origin_status(gw.port, fmt.format(p=gw.port, q=gw.port + 1)) == 403


@pytest.fixture(scope="module")
def gw_list(tmp_path_factory, site, gateway_bin, redis):
    from gwtest import Gateway
    g = Gateway(tmp_path_factory.mktemp("gwlist"), public_dir=site["public"], name="origins",
                args=["--allowed-origins", "http://a.example:3000,https://b.example",
                      "--subprotocols", "chat.v2,chat.v1", "--close-timeout", "1s"],
                redis_url=redis.url if redis else None)
    g.start()
    yield g
    problems = g.stop()
    assert not problems, problems


@pytest.mark.parametrize("origin,status", [
    ("http://a.example:3000", 101),
    ("https://b.example", 101),
    ("HTTP://A.EXAMPLE:3000", 101),
    ("http://a.example:3001", 403),
    ("http://a.example", 403),
    ("https://a.example:3000", 403),
    ("http://b.example", 403),
    ("http://c.example", 403),
    ("http://a.example:3000.evil", 403),
    (None, 101),
])
def test_allowed_origins_list(gw_list, origin, status):
    assert origin_status(gw_list.port, origin) == status


def test_allowed_origins_star(make_gateway):
    g = make_gateway("--allowed-origins", "*")
    for origin in ["http://evil.example", "https://x.y:1", f"http://127.0.0.1:{g.port}", None]:
        assert origin_status(g.port, origin) == 101, origin


# --- subprotocols -----------------------------------------------------------------------------


@pytest.mark.parametrize("offer,expect", [
    (["chat.v1, chat.v2"], "chat.v2"),
    (["chat.v2, chat.v1"], "chat.v2"),
    (["chat.v1"], "chat.v1"),
    (["foo, chat.v1, bar"], "chat.v1"),
    (["foo"], None),
    (["chat.v3"], None),
    (["foo", "chat.v1"], "chat.v1"),
    (["chat.v1", "chat.v2"], "chat.v2"),
    ([], None),
], ids=["server-order", "client-order-same", "only-v1", "v1-in-list", "none-match",
        "v3", "two-header-lines", "two-lines-server-order", "no-offer"])
def test_subprotocol_negotiation(gw_list, offer, expect):
    key = new_key()
    r = status_of(gw_list.port, key=key, headers=[("Sec-WebSocket-Protocol", o) for o in offer])
    assert_101(r, key)
    got = r.header_all("Sec-WebSocket-Protocol")
    assert got == ([] if expect is None else [expect]), r


def test_subprotocol_not_configured(gw):
    key = new_key()
    r = status_of(gw.port, key=key, headers=[("Sec-WebSocket-Protocol", "chat.v1, chat")])
    assert_101(r, key)
    assert r.header("Sec-WebSocket-Protocol") is None, r


def test_subprotocol_session_works(gw_list):
    ws = ws_connect(gw_list.port, extra=[("Sec-WebSocket-Protocol", "chat.v1")])
    with ws:
        assert ws.response.header("Sec-WebSocket-Protocol") == "chat.v1"
        ws.send_frame(OP_TEXT, b"proto")
        assert ws.recv_message() == (OP_TEXT, b"proto")


def test_http_request_then_upgrade_pipelined(gw):
    """A keep-alive request and an upgrade in one write: 200, then 101, then frames."""
    key = new_key()
    raw = (build_request("GET", "/healthz", host=f"127.0.0.1:{gw.port}")
           + build_request("GET", "/echo", [("Upgrade", "websocket"), ("Connection", "Upgrade"),
                                            ("Sec-WebSocket-Key", key),
                                            ("Sec-WebSocket-Version", "13")],
                           host=f"127.0.0.1:{gw.port}")
           + frame(OP_TEXT, b"piped"))
    with HttpConn(gw.port) as c:
        c.send(raw)
        r1 = c.read_response()
        assert r1.status == 200, r1
        r2 = c.read_response()
        assert_101(r2, key)
        ws = RawWS(c, r2)
        assert ws.recv_message() == (OP_TEXT, b"piped")


def test_upgrade_after_keepalive_requests(gw):
    key = new_key()
    with HttpConn(gw.port) as c:
        for _ in range(3):
            c.send(build_request("GET", "/index.html", host=f"127.0.0.1:{gw.port}"))
            assert c.read_response().status == 200
        c.send(build_request("GET", "/echo", [("Upgrade", "websocket"),
                                              ("Connection", "Upgrade"),
                                              ("Sec-WebSocket-Key", key),
                                              ("Sec-WebSocket-Version", "13")],
                             host=f"127.0.0.1:{gw.port}"))
        r = c.read_response()
        assert_101(r, key)
        ws = RawWS(c, r)
        ws.send_frame(OP_TEXT, b"upgraded late")
        assert ws.recv_message() == (OP_TEXT, b"upgraded late")


def test_many_simultaneous_sessions(gw):
    sessions = []
    try:
        for _ in range(300):
            sessions.append(ws_connect(gw.port))
        for i, ws in enumerate(sessions):
            ws.send_frame(OP_TEXT, f"s{i}".encode())
        for i, ws in enumerate(sessions):
            assert ws.recv_message() == (OP_TEXT, f"s{i}".encode())
    finally:
        for ws in sessions:
            ws.close()
