"""Helpers for the browser tests: `Server` runs the real `chatsrv serve` on a loopback
port (the shared runner in tests/harness); `People` opens one browser context per person
(its own localStorage, so its own device) and records every console error and uncaught
exception of its pages."""
from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import uuid
from pathlib import Path

from harness.server import ROOT, ServerProc  # noqa: F401 - ROOT is imported by tests

CHROMIUM = os.environ.get("CHATSRV_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
PASSWORD = "browser-pass-1"
TIMEOUT_MS = 10_000
# The two sizes every screen is checked at: a laptop, and a phone (touch, so Enter is a new line).
DESKTOP = {"viewport": {"width": 1280, "height": 800}}
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True, "device_scale_factor": 2}

try:
    from playwright.sync_api import sync_playwright, expect
    expect.set_options(timeout=TIMEOUT_MS)
except ImportError:  # pragma: no cover - reported by the browser fixture
    sync_playwright = None
    expect = None


class Server(ServerProc):
    """`python -m chatsrv serve` on 127.0.0.1 (tests/harness/server.py); `url` is the web
    client's page."""

    def __init__(self, data: Path, log: Path, args=()):
        super().__init__(data, args, log_path=log)

    @property
    def url(self) -> str:
        return f"{self.origin}/"


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

    @property
    def phone(self) -> bool:
        return bool(self.page.evaluate("matchMedia('(pointer: coarse)').matches"))

    def send(self, text: str):
        box = self.page.locator("#composer-input")
        box.fill(text)
        if self.phone:
            self.page.click("#send-btn")       # on a phone Enter is a new line
        else:
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

    def new(self, prefix: str = "u", state=None, viewport=None, name: str | None = None, device=None,
            init_script: str | None = None, **context_args) -> Person:
        """`device`: DESKTOP or PHONE (context options); `init_script` runs in every page
        before the client's own scripts; other keywords go to `browser.new_context`."""
        opts = dict(device or {"viewport": {"width": 1100, "height": 720}})
        if viewport:
            opts["viewport"] = viewport
        ctx = self.browser.new_context(storage_state=state, **opts, **context_args)
        ctx.set_default_timeout(TIMEOUT_MS)
        if init_script:
            ctx.add_init_script(init_script)
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


def first_message(sender: Person, receiver: Person, text: str):
    """`sender` writes `text` to `receiver`, who opens the new chat and sees it."""
    sender.start_chat(receiver.name)
    sender.send(text)
    receiver.open_conv(sender.name)
    expect(receiver.message(text)).to_be_visible()


@contextlib.contextmanager
def people_on(browser, server):
    """People on `server`; at the end every page is closed and any JavaScript error any of
    them saw fails the test."""
    ppl = People(browser, server)
    yield ppl
    ppl.close_all()
    assert not ppl.errors, "JavaScript errors in the page:\n" + "\n".join(ppl.errors)
