"""HAProxy's TLS listener natively: gateway/haproxy/haproxy.cfg with HAPROXY_TLS_BIND and
HAPROXY_TLS_CRT set as compose's image sets them, a certificate made for the test, and a
small HTTP server behind it that records the headers it is sent (a gateway would not show
them): https:// with X-Forwarded-Proto and X-Forwarded-For as the gateways get them, TLS 1.2
as the minimum and only forward-secret AEAD suites, ALPN http/1.1, /metrics still refused,
the redirect switch (HAPROXY_HTTPS_REDIRECT), and plain HTTP beside TLS as before.

wss:// and https:// through HAProxy to the real gateways in containers: test_compose.py.
"""

import http.server
import json
import shutil
import ssl
import sys
import threading
import warnings

import pytest

from cluster import HAProxy, https_get, make_cert, tls_conn, trusting
from gwtest import build_request, free_port, http_get, http_request

pytestmark = pytest.mark.skipif(shutil.which("haproxy") is None or
                                shutil.which("openssl") is None,
                                reason="needs haproxy and openssl (make deps-cluster)")

NAME = "chat.localhost"


class Recorder(http.server.ThreadingHTTPServer):
    """127.0.0.1:<free port>; 200 "ok" for /healthz (HAProxy's checks), and for anything else
    the request's headers as JSON [[name, value], ...], also kept in .seen."""

    daemon_threads = True

    def __init__(self):
        self.seen = []
        super().__init__(("127.0.0.1", 0), RecorderHandler)
        self.port = self.server_address[1]
        self.thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.1},
                                       daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.shutdown()
        self.server_close()
        self.thread.join(timeout=5)

    def handle_error(self, request, client_address):
        """HAProxy may end a health check with a reset: nothing worth printing."""
        if not isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            super().handle_error(request, client_address)


class RecorderHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        if self.path == "/healthz":
            body = b"ok\n"
        else:
            headers = [[k, v] for k, v in self.headers.items()]
            self.server.seen.append({"path": self.path, "headers": headers})
            body = json.dumps(headers).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def headers_of(r):
    """{lower-case name: [values]} of what the recorder got, from its JSON answer."""
    out = {}
    for k, v in json.loads(r.body):
        out.setdefault(k.lower(), []).append(v)
    return out


def forwarded_for(h):
    """Every X-Forwarded-For address, in order, over all the header's lines."""
    return [a.strip() for line in h.get("x-forwarded-for", []) for a in line.split(",")]


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    return make_cert(tmp_path_factory.mktemp("tls"), NAME)


@pytest.fixture(scope="module")
def recorder():
    with Recorder() as r:
        yield r


def start_proxy(workdir, recorder, cert, **env):
    """A native HAProxy with the TLS listener on a free port (.tls_port), recorder UP behind it."""
    tls_port = free_port()
    env = {"HAPROXY_TLS_BIND": f"127.0.0.1:{tls_port}", "HAPROXY_TLS_CRT": str(cert["dir"]),
           **env}
    h = HAProxy(workdir, [("rec", f"127.0.0.1:{recorder.port}")], env=env)
    h.start()
    h.tls_port = tls_port
    try:
        h.wait_status({"rec": "UP"}, 10)
    except AssertionError:
        h.stop()
        raise AssertionError("the recorder never came UP:\n" + h.log_tail())
    return h


@pytest.fixture(scope="module")
def proxy(tmp_path_factory, recorder, cert):
    h = start_proxy(tmp_path_factory.mktemp("haproxy-tls"), recorder, cert)
    yield h
    h.stop()


def ctx_for(cert, alpn=None, tls=None, ciphers=None):
    ctx = trusting(cert)
    if alpn:
        ctx.set_alpn_protocols(alpn)
    if tls:
        ctx.minimum_version = ctx.maximum_version = tls
    if ciphers:
        ctx.set_ciphers(ciphers)
    return ctx


def handshake(port, ctx, server_hostname=NAME):
    """(TLS version, cipher name, ALPN) of a handshake, or the ssl.SSLError's reason."""
    try:
        with tls_conn(port, ctx, server_hostname) as c:
            return c.sock.version(), c.sock.cipher()[0], c.sock.selected_alpn_protocol()
    except ssl.SSLError as e:
        return e.reason


# ---------------------------------------------------------------------------------------------


def test_https_sets_forwarded_headers(proxy, recorder, cert):
    ctx = ctx_for(cert, alpn=["h2", "http/1.1"])
    # What a client claims itself is replaced (proto) or appended to (for).
    r = https_get(proxy.tls_port, "/page?x=1", ctx, NAME,
                  headers=[("X-Forwarded-Proto", "http"), ("X-Forwarded-For", "203.0.113.9")])
    assert r.status == 200, r
    assert r.tls[1] == "http/1.1", f"ALPN chose {r.tls[1]!r}"
    h = headers_of(r)
    assert h["x-forwarded-proto"] == ["https"], h
    assert forwarded_for(h) == ["203.0.113.9", "127.0.0.1"], h
    assert h["host"] == [f"{NAME}:{proxy.tls_port}"], h
    assert recorder.seen[-1]["path"] == "/page?x=1"

    # Plain HTTP on the usual listener: unchanged, and says so.
    r = http_get(proxy.port, "/plain", headers=[("X-Forwarded-Proto", "https")])
    assert r.status == 200, r
    h = headers_of(r)
    assert h["x-forwarded-proto"] == ["http"], h
    assert forwarded_for(h) == ["127.0.0.1"], h


def test_tls_versions_and_suites(proxy, cert):
    port = proxy.tls_port
    v13 = handshake(port, ctx_for(cert, tls=ssl.TLSVersion.TLSv1_3))
    assert v13[0] == "TLSv1.3", v13
    v12 = handshake(port, ctx_for(cert, tls=ssl.TLSVersion.TLSv1_2, alpn=["http/1.1"]))
    assert v12[0] == "TLSv1.2" and v12[2] == "http/1.1", v12
    assert v12[1].startswith("ECDHE-") and ("GCM" in v12[1] or "CHACHA20" in v12[1]), v12
    # Refused by the server (its alert), not by our client: below TLS 1.2, and TLS 1.2 with
    # suites that lack forward secrecy (RSA key exchange) or use CBC.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        old = ctx_for(cert, tls=ssl.TLSVersion.TLSv1_1, ciphers="DEFAULT:@SECLEVEL=0")
    assert handshake(port, old) == "TLSV1_ALERT_PROTOCOL_VERSION"
    for weak in ("AES128-GCM-SHA256:AES256-GCM-SHA384",
                 "ECDHE-RSA-AES128-SHA:ECDHE-RSA-AES256-SHA"):
        got = handshake(port, ctx_for(cert, tls=ssl.TLSVersion.TLSv1_2, ciphers=weak))
        assert got == "SSLV3_ALERT_HANDSHAKE_FAILURE", f"{weak}: {got}"


def test_untrusted_or_wrong_name_refused(proxy, cert):
    # The system's authorities do not know the test's certificate.
    assert handshake(proxy.tls_port, ssl.create_default_context()) == \
        "CERTIFICATE_VERIFY_FAILED"
    # Trusted, but not for this name (nor for the address: it names none).
    for other in ("other.localhost", "127.0.0.1"):
        assert handshake(proxy.tls_port, trusting(cert), other) == \
            "CERTIFICATE_VERIFY_FAILED", other


def test_metrics_refused_over_tls(proxy, recorder, cert):
    n = len(recorder.seen)
    r = https_get(proxy.tls_port, "/metrics", trusting(cert), NAME)
    assert r.status == 404, r
    assert len(recorder.seen) == n, "HAProxy passed /metrics on"


@pytest.mark.parametrize("https_port", ["8443", "443"])
def test_redirect_switch(tmp_path, recorder, cert, https_port):
    h = start_proxy(tmp_path, recorder, cert, HAPROXY_HTTPS_REDIRECT="1",
                    HAPROXY_HTTPS_PORT=https_port)
    try:
        suffix = "" if https_port == "443" else f":{https_port}"
        for host, want in ((f"127.0.0.1:{h.port}", f"https://127.0.0.1{suffix}"),
                           ("chat.example.org", f"https://chat.example.org{suffix}"),
                           ("[::1]:80", f"https://[::1]{suffix}")):
            raw = build_request("GET", "/ws?a=1&b=%20", [("Connection", "close")], host=host)
            r = http_request(h.port, raw)
            assert (r.status, r.header("Location")) == (301, f"{want}/ws?a=1&b=%20"), r
        # Nowhere to send a request without a Host.
        raw = build_request("GET", "/", [("Connection", "close")], version="HTTP/1.0",
                            host=None)
        assert http_request(h.port, raw).status == 400
        # TLS itself is served, not redirected.
        r = https_get(h.tls_port, "/x", trusting(cert), NAME)
        assert r.status == 200 and headers_of(r)["x-forwarded-proto"] == ["https"], r
    finally:
        h.stop()
