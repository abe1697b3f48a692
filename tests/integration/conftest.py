"""Fixtures for the chat-gateway integration tests.

- `site`: a public dir (every MIME type, a sub dir, symlinks out) next to a secret file.
- `gw`: one gateway per test module (flags from the module's `gw_args` fixture). After each
  test using it, the process must still run, have printed no sanitizer report, answer
  /healthz and echo on a fresh WebSocket; otherwise the test fails and the gateway is
  restarted for the next one. At the end of the module it must exit 0 on SIGTERM.
- `make_gateway`: start gateways with any flags inside one test; all are stopped and checked
  at teardown.
The binary: $CHAT_GATEWAY_BIN, default build/debug/chat-gateway under the repository root.
"""

import shutil
import socket

import pytest

import gwtest
from gwtest import Gateway, GatewayError, make_site
from redistest import RedisServer

TEST_TIME_LIMIT = 60  # seconds for any one test, a safety net behind the bounded waits

# Short timeouts for the shared gateways so that stop() and closes are quick.
BASE_ARGS = ["--close-timeout", "1s", "--drain-timeout", "3s"]


def pytest_configure(config):
    config.addinivalue_line("markers", "hostile: sends input meant to break the gateway")


@pytest.fixture(scope="session")
def gateway_bin():
    if not gwtest.GATEWAY_BIN.exists():
        pytest.fail(f"gateway binary {gwtest.GATEWAY_BIN} not found: run `make debug` or set "
                    "CHAT_GATEWAY_BIN", pytrace=False)
    return gwtest.GATEWAY_BIN


# ---------------------------------------------------------------------------------------------
# the public directory

@pytest.fixture(scope="session")
def site(tmp_path_factory):
    return make_site(tmp_path_factory.mktemp("site"))


# ---------------------------------------------------------------------------------------------
# Redis and gateways


@pytest.fixture(scope="session")
def redis(tmp_path_factory, gateway_bin):
    """A private redis-server for every gateway of the run (none if the gateway takes no
    --redis), so that no test ever talks to a Redis it did not start."""
    if not gwtest.gateway_has_flag("--redis"):
        yield None
        return
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server not installed (the gateway needs --redis)", pytrace=False)
    r = RedisServer(tmp_path_factory.mktemp("redis"))
    try:
        r.start()
    except RuntimeError as e:
        pytest.fail(str(e), pytrace=False)
    yield r
    r.stop()


@pytest.fixture(scope="module")
def gw_args():
    """Extra flags of the module's shared gateway; a module overrides this fixture."""
    return []


@pytest.fixture(scope="module")
def gw(request, gateway_bin, site, gw_args, tmp_path_factory, redis):
    g = Gateway(tmp_path_factory.mktemp("gw"), args=BASE_ARGS + list(gw_args),
                public_dir=site["public"], name=request.module.__name__,
                redis_url=redis.url if redis else None)
    try:
        g.start()
    except GatewayError as e:
        pytest.fail(str(e), pytrace=False)
    yield g
    problems = g.stop(timeout=10)
    if problems:
        pytest.fail("shared gateway at module end: " + "; ".join(problems) + "\n" + g.log_tail(),
                    pytrace=False)


@pytest.fixture
def make_gateway(request, gateway_bin, site, tmp_path, redis):
    """make_gateway(*flags, env=None, public_dir=site public, listen=True, start=True, cwd=None)."""
    started = []

    def factory(*args, env=None, public_dir="default", listen=True, start=True, cwd=None,
                port=None):
        if public_dir == "default":
            public_dir = site["public"]
        g = Gateway(tmp_path / f"gw{len(started)}", args=args, env=env, public_dir=public_dir,
                    listen=listen, cwd=cwd, port=port, name=f"gw{len(started)}",
                    redis_url=redis.url if redis else None)
        started.append(g)
        if start:
            g.start()
        return g

    request.node._gateways = started
    yield factory
    problems = []
    for g in started:
        if g.proc is None:
            continue
        for p in g.stop(timeout=10):
            problems.append(f"{g.name}: {p}\n{g.log_tail()}")
    if problems:
        pytest.fail("gateway check at teardown:\n" + "\n".join(problems), pytrace=False)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    """After a test using the shared `gw`: it must be alive, clean, and serve a fresh echo."""
    outcome = yield
    g = item.funcargs.get("gw") if hasattr(item, "funcargs") else None
    if not isinstance(g, Gateway) or g.proc is None:
        return
    problems = g.health_problems(echo=True)
    if not problems:
        return
    tail = g.log_tail()
    try:
        g.restart()
    except GatewayError as e:
        problems.append(f"restart failed: {e}")
    if outcome.excinfo is None:
        raise GatewayError("gateway unhealthy after this test: " + "; ".join(problems) + "\n"
                           + tail)
    item.add_report_section("call", "gateway", "unhealthy after test: " + "; ".join(problems)
                            + "\n" + tail)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.when != "call" or not rep.failed:
        return
    gws = list(getattr(item, "_gateways", []))
    g = item.funcargs.get("gw") if hasattr(item, "funcargs") else None
    if isinstance(g, Gateway):
        gws.append(g)
    for g in gws:
        if g.log_path is not None:
            rep.sections.append((f"gateway log {g.name}", g.log_tail(4000)))


@pytest.fixture(autouse=True)
def _time_limit():
    with gwtest.time_limit(TEST_TIME_LIMIT):
        yield


@pytest.fixture
def ipv6_available():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback")
