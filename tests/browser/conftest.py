"""Fixtures for the browser tests: a real redis-server, two real gateways (the sanitizer
build, serving public/), and Chromium pages driven by chromedriver.

- `cluster`: one redis-server and gateways gw-a and gw-b for the whole run, on free 127.0.0.1
  ports. After each test both must be alive, clean and healthy; at the end each must exit 0 on
  SIGTERM with no sanitizer report.
- `open_page(gateway, name, email="")`: a fresh headless Chromium (own profile) on that
  gateway's page, joined as name. All are stopped at teardown (by PID if they linger); a
  failing test leaves a screenshot of each page in build/test-output/browser/failures/.
The tests that need a browser are skipped, saying why, when chromium or chromedriver is not
installed; nothing else skips them.
"""

import shutil
import sys
import uuid
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "tests" / "integration"))  # gwtest, redistest (shared helpers)
sys.path.insert(0, str(HERE))

import gwtest  # noqa: E402
from chatpage import (CHROMEDRIVER, CHROMIUM, SELENIUM_IMPORT_ERROR, Browser,  # noqa: E402
                      ChatPage)
from gwtest import Gateway, GatewayError  # noqa: E402
from redistest import RedisServer  # noqa: E402

OUT = REPO / "build" / "test-output" / "browser"
PUBLIC = REPO / "public"
TEST_TIME_LIMIT = 60  # seconds for any one test, a safety net behind the bounded waits
MAX_TEXT = 4096
GATEWAY_ARGS = ["--log-level", "debug", "--close-timeout", "1s", "--drain-timeout", "2s", "--max-text", str(MAX_TEXT)]

MISSING = [name for name, path in (("chromium", CHROMIUM), ("chromedriver", CHROMEDRIVER))
           if path is None]


def pytest_collection_modifyitems(config, items):
    if not MISSING:
        return
    skip = pytest.mark.skip(reason=f"{' and '.join(MISSING)} not found: the browser tests drive "
                            "Debian's Chromium (apt-get install chromium chromium-driver "
                            "python3-selenium, or `make deps`)")
    for item in items:
        if "open_page" in getattr(item, "fixturenames", ()):
            item.add_marker(skip)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)
    cluster = getattr(item, "funcargs", {}).get("cluster")
    if rep.when == "call" and rep.failed and cluster is not None:
        for g in cluster.gateways:
            if g.log_path is not None:
                rep.sections.append((f"gateway log {g.name}", g.log_tail(4000)))


class Cluster:
    max_text = MAX_TEXT

    def __init__(self, redis, gw_a, gw_b):
        self.redis = redis
        self.gw_a = gw_a
        self.gw_b = gw_b
        self.gateways = (gw_a, gw_b)


@pytest.fixture(scope="session")
def out_dir():
    OUT.mkdir(parents=True, exist_ok=True)
    for old in ("failures", "logs"):
        shutil.rmtree(OUT / old, ignore_errors=True)
    return OUT


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    if not gwtest.GATEWAY_BIN.exists():
        pytest.fail(f"gateway binary {gwtest.GATEWAY_BIN} not found: run `make debug` or set "
                    "CHAT_GATEWAY_BIN", pytrace=False)
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server not installed (apt-get install redis-server)", pytrace=False)
    redis = RedisServer(tmp_path_factory.mktemp("redis"))
    try:
        redis.start()
    except RuntimeError as e:
        pytest.fail(str(e), pytrace=False)
    gateways = []
    try:
        for name in ("gw-a", "gw-b"):
            g = Gateway(tmp_path_factory.mktemp(name), args=GATEWAY_ARGS + ["--gateway-id", name],
                        public_dir=PUBLIC, name=name, redis_url=redis.url)
            gateways.append(g)
            g.start()
    except GatewayError as e:
        for g in gateways:
            if g.proc is not None:
                g.stop(timeout=5)
        redis.stop()
        pytest.fail(str(e), pytrace=False)
    yield Cluster(redis, *gateways)
    problems = []
    for g in gateways:
        problems += [f"{g.name}: {p}\n{g.log_tail()}" for p in g.stop(timeout=10)]
    redis.stop()
    if problems:
        pytest.fail("gateway check at the end of the run:\n" + "\n".join(problems),
                    pytrace=False)


@pytest.fixture(autouse=True)
def _gateways_stay_healthy(request):
    """After a test that used the cluster: both gateways alive, no sanitizer report,
    /healthz 200. Otherwise the test fails and the gateway is restarted (same port)."""
    yield
    if "cluster" not in request.fixturenames:
        return
    cluster = request.getfixturevalue("cluster")
    problems = []
    for g in cluster.gateways:
        found = g.health_problems(echo=False)
        if found:
            problems.append(f"{g.name}: {'; '.join(found)}\n{g.log_tail()}")
            if g.alive():
                g.stop(timeout=5)
            g.start()
    if problems:
        pytest.fail("gateway unhealthy after this test:\n" + "\n".join(problems), pytrace=False)


@pytest.fixture
def open_page(request, cluster, out_dir):
    if SELENIUM_IMPORT_ERROR is not None:
        pytest.fail(f"python3-selenium is not installed ({SELENIUM_IMPORT_ERROR}): "
                    "apt-get install python3-selenium, or `make deps`", pytrace=False)
    browsers, pages = [], []

    def factory(gateway, name, email="", join=True, width=1280, height=800, mobile=False,
                path=""):
        browser = Browser(out_dir / "logs", width=width, height=height, mobile=mobile)
        browsers.append(browser)
        page = ChatPage(browser, f"http://127.0.0.1:{gateway.port}/{path}", name)
        pages.append(page)
        page.open()
        if join:
            page.join(name, email)
        return page

    yield factory
    rep = getattr(request.node, "rep_call", None)
    failed = rep is not None and rep.failed
    problems = []
    for i, page in enumerate(pages):
        try:
            if failed:
                stem = out_dir / "failures" / f"{request.node.name}-{i}"
                page.screenshot(stem.with_suffix(".png"))
                page.collect_logs()
                stem.with_suffix(".log").write_text(
                    f"page {page.label!r} on {page.base_url}\n"
                    + "".join(f"{e.get('level')} {e.get('message')}\n" for e in page.console)
                    + "".join(f"ws< {f}\n" for f in page.ws_frames), "utf-8")
            errors = page.script_errors()
            if errors:
                problems.append(f"[{page.label}] script errors: {errors}")
        except Exception as e:  # a browser that died is reported, the others still stopped
            problems.append(f"[{page.label}] browser unusable at teardown: {e!r}")
    for browser in browsers:
        browser.stop()
    if problems and not failed:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture
def uniq():
    """A short random suffix, so that rooms and names never meet another test's."""
    return uuid.uuid4().hex[:6]


@pytest.fixture(autouse=True)
def _time_limit():
    with gwtest.time_limit(TEST_TIME_LIMIT):
        yield
