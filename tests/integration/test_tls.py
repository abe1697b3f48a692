"""wss:// and https:// served by the gateway itself (--tls-cert/--tls-key), with a
certificate made for the test by the openssl command: echo and chat through
python3-websockets, the page and /healthz over HTTPS, plain HTTP on a TLS port refused
without harm, bad certificate settings refused at start-up, and the drain's 1001."""

import asyncio
import json
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request

import pytest
import websockets

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    key, crt = d / "key.pem", d / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-keyout", str(key), "-out", str(crt), "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True, timeout=60)
    other = d / "other.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(other), "2048"], check=True,
                   capture_output=True, timeout=60)
    return {"cert": crt, "key": key, "other_key": other, "dir": d}


def client_ctx(cert):
    return ssl.create_default_context(cafile=str(cert["cert"]))


def start_tls(make_gateway, cert, *args):
    """A gateway serving TLS, ready once https://.../healthz answers 200 (bounded)."""
    g = make_gateway("--tls-cert", str(cert["cert"]), "--tls-key", str(cert["key"]), *args,
                     start=False)
    g.start(wait=False)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if urllib.request.urlopen(f"https://127.0.0.1:{g.port}/healthz",
                                      context=client_ctx(cert), timeout=1).status == 200:
                return g
        except (OSError, urllib.error.URLError):
            time.sleep(0.1)
    raise AssertionError("TLS gateway not ready:\n" + g.log_tail())


def test_wss_echo_chat_and_https(make_gateway, cert):
    g = start_tls(make_gateway, cert)
    ctx = client_ctx(cert)

    async def go():
        async with websockets.connect(f"wss://127.0.0.1:{g.port}/echo", ssl=ctx) as ws:
            for i in range(20):
                text = f"secret {i} " * 40
                await ws.send(text)
                assert await ws.recv() == text
            await ws.send(bytes(range(256)) * 200)
            assert await ws.recv() == bytes(range(256)) * 200
        async with websockets.connect(f"wss://127.0.0.1:{g.port}/ws", ssl=ctx) as a, \
                websockets.connect(f"wss://127.0.0.1:{g.port}/ws", ssl=ctx) as b:
            wa = json.loads(await a.recv())
            assert wa["type"] == "welcome"
            assert json.loads(await b.recv())["type"] == "welcome"
            await a.send(json.dumps({"type": "message", "room": "lobby", "message": "via tls"}))
            for _ in range(10):
                m = json.loads(await asyncio.wait_for(b.recv(), 5))
                if m["type"] == "message":
                    assert (m["message"], m["from"]) == ("via tls", wa["id"])
                    break
            else:
                pytest.fail("no message over wss")
    asyncio.run(go())
    body = urllib.request.urlopen(f"https://127.0.0.1:{g.port}/healthz", context=ctx,
                                  timeout=5).read()
    assert body == b"ok\n"
    page = urllib.request.urlopen(f"https://127.0.0.1:{g.port}/", context=ctx, timeout=5)
    assert page.status == 200 and page.headers["Content-Type"].startswith("text/html")


def test_plain_http_on_tls_port_does_no_harm(make_gateway, cert):
    g = start_tls(make_gateway, cert)
    for junk in (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"\x16\x03\x01\x00\x05hello", b"\0" * 100):
        with socket.create_connection(("127.0.0.1", g.port), timeout=5) as s:
            s.sendall(junk)
            s.settimeout(5)
            try:
                while s.recv(4096):
                    pass
            except (ConnectionResetError, socket.timeout):
                pass
    # A client that starts TLS and vanishes mid-handshake.
    with socket.create_connection(("127.0.0.1", g.port), timeout=5) as s:
        s.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
    ctx = client_ctx(cert)
    assert urllib.request.urlopen(f"https://127.0.0.1:{g.port}/healthz", context=ctx,
                                  timeout=5).status == 200


def test_drain_closes_wss_sessions_with_1001(make_gateway, cert):
    g = start_tls(make_gateway, cert, "--drain-timeout", "3s")
    ctx = client_ctx(cert)

    async def go():
        ws = await websockets.connect(f"wss://127.0.0.1:{g.port}/echo", ssl=ctx)
        g.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(ws.recv(), 10)
        except websockets.ConnectionClosed as e:
            return e.code
    assert asyncio.run(go()) == 1001
    assert g.wait_exit(10) == 0


@pytest.mark.parametrize("args,message", [
    (["--tls-cert", "{cert}"], "go together"),
    (["--tls-key", "{key}"], "go together"),
    (["--tls-cert", "{dir}/missing.pem", "--tls-key", "{key}"], "cannot load the TLS certificate"),
    (["--tls-cert", "{cert}", "--tls-key", "{dir}/missing.pem"], "cannot load the TLS key"),
    (["--tls-cert", "{cert}", "--tls-key", "{other_key}"], "mismatch"),
    (["--tls-cert", "{key}", "--tls-key", "{key}"], "cannot load the TLS certificate"),
])
def test_bad_tls_settings_stop_start_up(make_gateway, cert, args, message):
    args = [a.format(**{k: str(v) for k, v in cert.items()}) for a in args]
    g = make_gateway(*args, "--workers", "0", start=False)
    g.start(wait=False)
    assert g.wait_exit(10) == 1
    assert message in g.log_text(), g.log_text()
    g.proc = None  # exiting 1 is the point
