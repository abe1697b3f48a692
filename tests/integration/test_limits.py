"""Limits against floods: connections per worker (503 at accept), per client address (429),
WebSocket handshakes per second per address (429), and trusted proxies whose
X-Forwarded-For names the client the limits count. Each refusal shows in /metrics."""

import re
import socket
import time

import pytest

from gwtest import http_get


def raw_status(port, source="127.0.0.1", request=None, timeout=5):
    """Connect from source, optionally send a request; the status line's code, or None."""
    s = socket.socket()
    s.bind((source, 0))
    s.settimeout(timeout)
    s.connect(("127.0.0.1", port))
    if request:
        s.sendall(request)
    data = b""
    try:
        while b"\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    except socket.timeout:
        pass
    return s, (int(data.split()[1]) if data.startswith(b"HTTP/1.1 ") else None), data


def upgrade_request(port, xff=None):
    lines = [f"GET /echo HTTP/1.1", f"Host: 127.0.0.1:{port}", "Upgrade: websocket",
             "Connection: Upgrade", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
             "Sec-WebSocket-Version: 13"]
    if xff:
        lines.append(f"X-Forwarded-For: {xff}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def rejects(port):
    body = http_get(port, "/metrics").body.decode()
    return sum(float(v) for v in re.findall(r"^chat_limit_rejects_total\{[^}]*\} (\S+)$", body,
                                             re.M))


def held(socks):
    return socks  # keep references so the connections stay open


def test_max_connections_per_worker(make_gateway):
    g = make_gateway("--workers", "1", "--max-connections", "5")
    socks = held([socket.create_connection(("127.0.0.1", g.port)) for _ in range(4)])
    time.sleep(0.3)
    s5, status, _ = raw_status(g.port, timeout=0.5)  # the fifth: still fine (no answer yet)
    assert status is None
    s6, status, data = raw_status(g.port)
    assert status == 503 and b"too many connections" in data
    for s in socks + [s5, s6]:
        s.close()
    time.sleep(0.3)
    assert http_get(g.port, "/healthz").status == 200
    assert rejects(g.port) >= 1


def test_max_per_ip_counts_each_address(make_gateway):
    g = make_gateway("--workers", "1", "--max-per-ip", "3")
    socks = held([raw_status(g.port, timeout=0.2)[0] for _ in range(3)])
    s, status, data = raw_status(g.port)
    assert status == 429 and b"from your address" in data
    s2, status, _ = raw_status(g.port, source="127.0.0.2", request=b"GET /healthz HTTP/1.1\r\n"
                               b"Host: x\r\n\r\n")
    assert status == 200  # another address has its own count
    for x in socks + [s, s2]:
        x.close()
    time.sleep(0.3)
    s3, status, _ = raw_status(g.port, request=b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 200  # the slots came back
    s3.close()


def test_handshake_rate_per_address(make_gateway):
    g = make_gateway("--workers", "1", "--handshake-rate", "2")
    statuses = []
    socks = []
    for _ in range(8):
        s, status, _ = raw_status(g.port, request=upgrade_request(g.port))
        socks.append(s)
        statuses.append(status)
    assert statuses[:4] == [101] * 4  # a burst of twice the rate
    assert 429 in statuses[4:]
    s, status, _ = raw_status(g.port, source="127.0.0.3", request=upgrade_request(g.port))
    assert status == 101
    socks.append(s)
    assert http_get(g.port, "/healthz").status == 200  # plain HTTP is not rate limited
    time.sleep(1.1)
    s, status, _ = raw_status(g.port, request=upgrade_request(g.port))
    assert status == 101  # refilled
    for x in socks + [s]:
        x.close()


def test_trusted_proxy_forwarded_clients(make_gateway):
    g = make_gateway("--workers", "1", "--max-per-ip", "2", "--trusted-proxies",
                     "127.0.0.1/32, ::1")
    socks, statuses = [], []
    for xff in ("198.51.100.7", "198.51.100.7", "198.51.100.7", "203.0.113.9",
                "203.0.113.9, 127.0.0.1"):
        s, status, _ = raw_status(g.port, request=upgrade_request(g.port, xff))
        socks.append(s)
        statuses.append(status)
    # The proxy itself is not limited; its clients are, each by the address it forwards
    # (the rightmost one that is not a trusted proxy).
    assert statuses == [101, 101, 429, 101, 101]
    # Without a trusted proxy in front, X-Forwarded-For is ignored.
    s, status, _ = raw_status(g.port, source="127.0.0.4",
                              request=upgrade_request(g.port, "192.0.2.1"))
    socks.append(s)
    assert status == 101
    for x in socks:
        x.close()


@pytest.mark.parametrize("value", ["10.0.0.0/33", "not-an-ip", "::1/129", "1.2.3.4/x"])
def test_bad_trusted_proxies_stop_start_up(make_gateway, value):
    g = make_gateway("--trusted-proxies", value, start=False)
    g.start(wait=False)
    assert g.wait_exit(10) == 1
    assert "invalid trusted proxy" in g.log_text()
    g.proc = None
