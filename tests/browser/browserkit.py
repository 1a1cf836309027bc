"""Helpers for the browser tests: `Server` runs the real `chatsrv serve` on a loopback
port; `People` opens one browser context per person (its own localStorage, so its own
device) and records every console error and uncaught exception of its pages."""
from __future__ import annotations

import http.client
import itertools
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from netutil import free_port

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("CHATSRV_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
PASSWORD = "browser-pass-1"
TIMEOUT_MS = 10_000

try:
    from playwright.sync_api import sync_playwright, expect
    expect.set_options(timeout=TIMEOUT_MS)
except ImportError:  # pragma: no cover - reported by the browser fixture
    sync_playwright = None
    expect = None


def _healthy(port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=0.5)
    try:
        conn.request("GET", "/healthz")
        r = conn.getresponse()
        return r.status == 200 and r.read().strip() == b"ok"
    except OSError:
        return False
    finally:
        conn.close()


class Server:
    """`python -m chatsrv serve` on 127.0.0.1 (a port in 20000-30000)."""

    def __init__(self, data: Path, log: Path, args=()):
        self.data, self.log_path, self.args = data, log, list(args)
        self.proc = None
        self.port = None

    def start(self, port: int | None = None) -> "Server":
        env = {k: v for k, v in os.environ.items() if not k.startswith("CHATSRV_")}
        env["PYTHONUNBUFFERED"] = "1"
        for attempt in range(4):
            self.port = port if (port and attempt == 0) else free_port()
            cmd = [sys.executable, "-m", "chatsrv", "serve", "--host", "127.0.0.1", "--port", str(self.port),
                   "--data", str(self.data), *self.args]
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen(cmd, cwd=str(ROOT), stdin=subprocess.DEVNULL, stdout=log,
                                             stderr=subprocess.STDOUT, env=env)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and self.proc.poll() is None:
                if _healthy(self.port):
                    return self
                time.sleep(0.05)
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
                break
        raise RuntimeError(f"chatsrv did not start:\n{self.log_tail()}")

    def stop(self) -> int:
        p = self.proc
        if p is None or p.poll() is not None:
            return p.returncode if p else 0
        p.send_signal(signal.SIGTERM)
        try:
            return p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            raise AssertionError(f"chatsrv did not exit on SIGTERM\n{self.log_tail()}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"


_names = itertools.count(1)
_run = uuid.uuid4().hex[:5]


def uname(prefix: str) -> str:
    """A fresh valid user name, unique across runs."""
    return f"{prefix[:10]}_{_run}{next(_names)}"


class Person:
    """One person: a browser context (its own localStorage, so its own device) and a page."""

    def __init__(self, people: "People", name: str, context, page):
        self.people, self.name, self.context, self.page = people, name, context, page

    # ---- UI actions
    def goto(self):
        self.page.goto(self.people.server.url)
        return self

    def signup(self, user: str | None = None, password: str = PASSWORD):
        user = user or self.name
        page = self.page
        expect(page.locator("#login-view")).to_be_visible()
        page.fill("#login-user", user)
        page.fill("#login-pass", password)
        page.click("#signup-btn")
        expect(page.locator("#main-view")).to_be_visible()
        expect(page.locator("#account-name")).to_have_text(user)
        expect(page.locator("#conn-status")).to_have_attribute("data-state", "online")
        return self

    def login(self, user: str | None = None, password: str = PASSWORD):
        user = user or self.name
        page = self.page
        page.fill("#login-user", user)
        page.fill("#login-pass", password)
        page.click("#login-btn")
        expect(page.locator("#account-name")).to_have_text(user)
        expect(page.locator("#conn-status")).to_have_attribute("data-state", "online")
        return self

    def start_chat(self, peer: str):
        self.page.fill("#new-chat-user", peer)
        self.page.press("#new-chat-user", "Enter")
        expect(self.page.locator("#chat-title")).to_have_text(peer)
        return self

    def open_conv(self, title: str):
        self.conv_item(title).click()
        expect(self.page.locator("#chat-title")).to_have_text(title)
        return self

    def send(self, text: str):
        box = self.page.locator("#composer-input")
        box.fill(text)
        box.press("Enter")
        expect(self.message(text)).to_be_visible()
        # shown at once; wait until the server has it (no message still "Sending…")
        expect(self.page.locator("#messages .msg.pending")).to_have_count(0)
        return self

    # ---- locators
    def conv_item(self, title: str):
        return self.page.locator(f'.conv-item[data-title="{title}"]')

    def message(self, text: str):
        return self.page.locator("#messages .msg .msg-body", has_text=text)

    def storage_state(self):
        return self.context.storage_state()

    def close(self):
        self.people.collect(self)
        self.context.close()


class People:
    """`a = people.new("alice")`: a fresh context and page; `people.new(name, state=...)` reopens
    a person from a saved storage state (their localStorage: token, device id)."""

    def __init__(self, browser, server):
        self.browser, self.server = browser, server
        self.open: list[Person] = []
        self.errors: list[str] = []
        self.ignore_ws_errors = False

    def new(self, prefix: str = "u", state=None, viewport=None, name: str | None = None) -> Person:
        ctx = self.browser.new_context(storage_state=state, viewport=viewport or {"width": 1100, "height": 720})
        ctx.set_default_timeout(TIMEOUT_MS)
        page = ctx.new_page()
        person = Person(self, name or uname(prefix), ctx, page)
        person.errors = []
        page.on("console", lambda m, p=person: p.errors.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e, p=person: p.errors.append(f"pageerror: {e}"))
        self.open.append(person)
        return person.goto()

    def collect(self, person: Person):
        if person in self.open:
            self.open.remove(person)
            for e in person.errors:
                if self.ignore_ws_errors and "WebSocket" in e:
                    continue
                self.errors.append(f"{person.name}: {e}")

    def close_all(self):
        for p in list(self.open):
            p.close()
