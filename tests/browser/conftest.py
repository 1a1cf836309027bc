"""Fixtures for the browser tests: the real `chatsrv serve` on a loopback port with a
temporary data directory, and the web client in real headless Chromium (Debian's
`chromium`, driven by Playwright; never `playwright install`). Helpers: browserkit.py.

Every page opened through `people` records console errors and uncaught exceptions;
a test fails at teardown if any page saw one.
"""
from __future__ import annotations

import os

import pytest

from .browserkit import CHROMIUM, Server, people_on, sync_playwright


@pytest.fixture(scope="module")
def chatsrv(tmp_path_factory):
    base = tmp_path_factory.mktemp("browser_srv")
    # a quick presence grace keeps the presence checks short
    s = Server(base / "data", base / "server.log", ["--presence-grace", "0.3"]).start()
    yield s
    rc = s.stop()
    assert rc == 0, f"server exit code {rc}\n{s.log_tail()}"


@pytest.fixture(scope="module")
def browser():
    # make test installs both; a missing one is a failure, never a skip
    assert sync_playwright is not None, "the playwright package is not installed (requirements-dev.txt)"
    assert os.path.exists(CHROMIUM), f"no Chromium at {CHROMIUM} (make test installs Debian's chromium)"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--disable-gpu"])
        yield b
        b.close()


@pytest.fixture
def people(browser, chatsrv):
    with people_on(browser, chatsrv) as ppl:
        yield ppl
