"""The main screens of the web client at a laptop size and a phone size, light and dark:
axe-core (served to the page by the test only, never by the server) finds no serious or
critical accessibility violation on any of them, and each is photographed. With
CHATSRV_SCREENSHOTS=DIR (`make screenshots`) the photos go to DIR (docs/screenshots for the
README), otherwise to the test's temporary directory."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from playwright.sync_api import expect

from .browserkit import DESKTOP, PHONE, ROOT, Server, people_on

AXE = ROOT / "tests" / "browser" / "node_modules" / "axe-core" / "axe.min.js"

AXE_RUN = """async () => {
  const r = await axe.run(document, {resultTypes: ['violations']});
  return r.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical').map((v) => ({
    id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.slice(0, 4).map((n) => n.target.join(' ') + ' :: ' + n.failureSummary)}));
}"""


def check_screen(page, shots: Path, name: str):
    """No serious or critical axe violation on what is on screen now; then a photo."""
    if not page.evaluate("typeof window.axe === 'object'"):
        page.add_script_tag(path=str(AXE))
    bad = page.evaluate(AXE_RUN)
    assert not bad, f"{name}: accessibility violations: {bad}"
    page.screenshot(path=str(shots / f"{name}.png"))


@pytest.fixture
def shots(tmp_path):
    d = Path(os.environ.get("CHATSRV_SCREENSHOTS") or tmp_path)
    if not d.is_absolute():
        d = ROOT / d
    d.mkdir(parents=True, exist_ok=True)
    return d


@pytest.mark.parametrize("device,size", [(DESKTOP, "desktop"), (PHONE, "phone")], ids=["desktop", "phone"])
@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_main_screens_are_accessible(browser, tmp_path, shots, device, size, scheme):
    assert AXE.exists(), f"{AXE} is missing: make test installs axe-core from npm"
    # plain names on a server of its own, as a person would see them
    srv = Server(tmp_path / "data", tmp_path / "server.log").start()
    try:
        with people_on(browser, srv) as ppl:
            a = ppl.new(name="alice", device=device, color_scheme=scheme)
            suffix = f"{size}" + ("-dark" if scheme == "dark" else "")
            check_screen(a.page, shots, f"login-{suffix}")
            a.signup()
            b = ppl.new(name="bob").signup()
            c = ppl.new(name="carol").signup()
            b.start_chat("alice")
            b.send("Hi Alice! Are we still on for the climb on Saturday?")
            a.open_conv("bob")
            a.send("Yes! I booked the wall for 10:00. Details: https://example.com/booking/4711")
            b.send("Great, I'll bring the rope. See you there!")
            c.page.click("#new-group-btn")
            c.page.fill("#group-name", "Climbing club")
            c.page.fill("#group-members", "alice, bob")
            c.page.click("#group-create-submit")
            c.send("Who is driving on Saturday?")
            expect(a.conv_item("Climbing club").locator(".unread-badge")).to_have_text("2")
            expect(a.page.locator("#messages .msg-status")).to_have_text("Seen")

            page = a.page
            check_screen(page, shots, f"chat-{suffix}")
            if a.phone:
                page.click("#back-btn")
                expect(page.locator("#conv-list")).to_be_visible()
                check_screen(page, shots, f"list-{suffix}")
            if scheme == "dark":
                return                     # the dialogs look the same in either scheme
            expect(page.locator("#push-offer")).to_be_hidden()   # this server sends no pushes
            a.open_conv("Climbing club")
            page.click("#info-btn")
            expect(page.locator("#gi-members li")).to_have_count(3)
            check_screen(page, shots, f"group-{suffix}")
            page.click("#gi-close")
            page.click("#mute-btn")
            expect(page.locator("#mute-menu")).to_be_visible()
            check_screen(page, shots, f"mute-{suffix}")
            page.keyboard.press("Escape")
            expect(page.locator("#mute-menu")).to_be_hidden()
            if a.phone:
                page.click("#back-btn")
            page.click("#account-btn")
            page.click("#settings-btn")
            expect(page.locator("#settings-dialog")).to_be_visible()
            check_screen(page, shots, f"settings-{suffix}")
    finally:
        srv.stop()
