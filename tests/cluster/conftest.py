"""Fixtures shared by the cluster suites (tests/cluster/).

The helpers of tests/integration (gwtest: Gateway, HTTP; redistest: RedisServer; chattest:
the asyncio chat client) are imported from there, unchanged. Each test runs under a time
limit (a safety net behind the bounded waits inside).
"""

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "integration"))
sys.path.insert(0, str(HERE))

import gwtest  # noqa: E402

# Seconds for one test (setup of module fixtures, like image builds, is not counted).
TIME_LIMITS = {"test_native": 150, "test_compose": 600}


@pytest.fixture(autouse=True)
def _time_limit(request):
    with gwtest.time_limit(TIME_LIMITS.get(request.module.__name__.rsplit(".", 1)[-1], 300)):
        yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """item.rep_setup / rep_call / rep_teardown, for fixtures that report on failure."""
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)
