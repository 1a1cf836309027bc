"""The web client as people use it, in headless Chromium at a laptop size and a phone size
against the real server: nothing overflows a 390 px screen with long names and previews,
dialogs stay on screen, drafts are kept per chat, links are links (http and https only),
Enter is a new line on a phone, a text selection survives arriving messages, and a chat
with many unread messages opens at a "New messages" divider with jumps both ways."""
from __future__ import annotations

import re
import subprocess
import sys

import pytest
from playwright.sync_api import expect

from .browserkit import DESKTOP, PASSWORD, PHONE, ROOT, Server, first_message, people_on, uname

DEVICES = pytest.mark.parametrize("device", [DESKTOP, PHONE], ids=["desktop", "phone"])

OVERFLOW = """() => {
  const W = document.documentElement.clientWidth, bad = [];
  for (const el of document.querySelectorAll('body *')) {
    const r = el.getBoundingClientRect();
    if (!r.width || !r.height || getComputedStyle(el).visibility === 'hidden') continue;
    if (r.right > W + 0.5 || r.left < -0.5) bad.push(`${el.tagName}#${el.id}.${el.className} ${Math.round(r.left)}..${Math.round(r.right)}`);
  }
  return {W, scroll: document.documentElement.scrollWidth, bad};
}"""


def assert_fits(page, what):
    got = page.evaluate(OVERFLOW)
    assert got["scroll"] <= got["W"] and not got["bad"], f"{what}: overflows a {got['W']} px screen: {got}"


def back_to_list(p):
    if p.phone:
        p.page.click("#back-btn")
        expect(p.page.locator("#sidebar")).to_be_visible()


@DEVICES
def test_layout_drafts_links_and_phone_enter(people, device):
    long_name = (uname("l") + "z" * 32)[:32]
    a = people.new("alice", device=device).signup()
    b = people.new(name=long_name).signup()
    group = "Weekend hiking trip to the mountains with everyone from the climbing club, their friends and dogs"[:100]

    b.start_chat(a.name)
    b.send("x" * 400)                                   # one long word as the preview
    b.page.click("#new-group-btn")
    b.page.fill("#group-name", group)
    b.page.fill("#group-members", a.name)
    b.page.click("#group-create-submit")
    expect(b.page.locator("#chat-title")).to_have_text(group)
    b.send("see https://example.com/a?b=1, not javascript:alert(1) or ftp://x.test; and http://127.0.0.1:9/p.")

    expect(a.conv_item(group)).to_be_visible()
    expect(a.conv_item(long_name).locator(".unread-badge")).to_be_in_viewport()
    expect(a.page.locator("#new-group-btn")).to_be_in_viewport()
    assert_fits(a.page, "the conversation list")

    # by keyboard: a conversation is a button in the tab order
    a.conv_item(group).focus()
    a.page.keyboard.press("Enter")
    expect(a.page.locator("#chat-title")).to_have_text(group)

    # links: http and https only, opened apart from this page
    links = a.page.locator("#messages .msg-body a")
    expect(links).to_have_count(2)
    assert [links.nth(i).get_attribute("href") for i in range(2)] == ["https://example.com/a?b=1", "http://127.0.0.1:9/p"]
    for i in range(2):
        assert links.nth(i).get_attribute("rel") == "noopener noreferrer"
        assert links.nth(i).get_attribute("target") == "_blank"
    expect(a.message("not javascript:alert(1) or ftp://x.test;")).to_have_count(1)
    assert_fits(a.page, "a group chat with a long name")

    # dialogs open on screen
    a.page.click("#info-btn")
    box = a.page.locator("#group-info-dialog").bounding_box()
    vw = a.page.viewport_size
    assert box["x"] >= 0 and box["y"] >= 0 and box["x"] + box["width"] <= vw["width"] and box["y"] + box["height"] <= vw["height"], box
    a.page.click("#gi-close")

    # a draft stays with its chat, also across a reload
    a.page.fill("#composer-input", "draft for the group")
    back_to_list(a)
    a.open_conv(long_name)
    expect(a.page.locator("#composer-input")).to_have_value("")
    assert_fits(a.page, "a chat with a 400-character word")
    box = a.page.locator("#composer-input")
    box.fill("draft for ")
    if a.phone:
        box.press("Enter")                              # a new line, not a send
        box.press_sequentially("you")
        expect(box).to_have_value("draft for \nyou")
        expect(a.page.locator("#messages .msg.own")).to_have_count(0)
    else:
        box.press_sequentially("you")
    draft = box.input_value()
    back_to_list(a)
    a.open_conv(group)
    expect(a.page.locator("#composer-input")).to_have_value("draft for the group")
    a.page.reload()
    expect(a.page.locator("#chat-title")).to_have_text(group)
    expect(a.page.locator("#composer-input")).to_have_value("draft for the group")
    back_to_list(a)
    a.open_conv(long_name)
    expect(a.page.locator("#composer-input")).to_have_value(draft)
    a.page.click("#send-btn")
    expect(a.message("you")).to_have_count(1)
    expect(a.page.locator("#composer-input")).to_have_value("")
    back_to_list(a)
    a.open_conv(group)
    expect(a.page.locator("#composer-input")).to_have_value("draft for the group")


@DEVICES
def test_unread_divider_jumps_and_a_selection_that_survives(people, device):
    a = people.new("alice", device=device).signup()
    b = people.new("bob").signup()
    first_message(b, a, "already read")
    if a.phone:
        back_to_list(a)
    else:
        a.page.keyboard.press("Escape")                 # back to no chat open
        expect(a.page.locator("#chat-empty")).to_be_visible()
    b.page.evaluate("""() => { const x = window.chatsrvApp.active;
        for (let i = 1; i <= 120; i++) x.send(x.openKey, null, 'unread ' + i); }""")
    expect(a.conv_item(b.name).locator(".unread-badge")).to_have_text("99+")
    expect(b.page.locator("#messages .msg.pending")).to_have_count(0)

    a.open_conv(b.name)
    divider = a.page.locator("#messages .unread-divider")
    expect(divider).to_have_text("New messages")
    expect(divider).to_be_in_viewport()
    expect(a.message(re.compile(r"^unread 1$"))).to_be_in_viewport()
    expect(a.message("unread 120")).not_to_be_in_viewport()
    expect(a.page.locator("#jump-unread")).to_be_hidden()
    a.page.click("#jump-latest")
    expect(a.message("unread 120")).to_be_in_viewport()
    expect(a.page.locator("#jump-latest")).to_be_hidden()
    a.page.click("#jump-unread")
    expect(divider).to_be_in_viewport()
    a.page.click("#jump-latest")

    # select a message's text, as if to copy it; messages keep arriving
    a.page.locator("#messages .msg-body", has_text="unread 119").evaluate("""(el) => {
        const r = document.createRange(); r.selectNodeContents(el);
        const s = getSelection(); s.removeAllRanges(); s.addRange(r); window.__selected = el; }""")
    for i in range(3):
        b.send(f"live {i}")
        expect(a.message(f"live {i}")).to_be_visible()
    assert a.page.evaluate("getSelection().toString()") == "unread 119"
    assert a.page.evaluate("window.__selected.isConnected")


def test_server_settings_limits_password_and_logout_label(browser, tmp_path):
    srv = Server(tmp_path / "data", tmp_path / "server.log", ["--no-signup", "--max-message-bytes", "64"]).start()
    try:
        name = uname("op")
        add = subprocess.run([sys.executable, "-m", "chatsrv", "adduser", "--data", str(srv.data_dir), name],
                             input=PASSWORD + "\n", text=True, capture_output=True, cwd=ROOT, timeout=30)
        assert add.returncode == 0, add.stderr
        with people_on(browser, srv) as ppl:
            a = ppl.new("op", name=name, device=DESKTOP)
            # no sign-up on this server: the page says so instead of offering it
            expect(a.page.locator("#signup-closed")).to_be_visible()
            expect(a.page.locator("#signup-btn")).to_be_hidden()
            a.login()
            a.start_chat(name[:-1] + "q")   # no such user: the send fails, but the draft chat opens
            box = a.page.locator("#composer-input")
            box.fill("é" * 33)                                  # 66 bytes
            box.press("Enter")
            expect(a.page.locator("#toast")).to_have_text("Message too long: 66 bytes, this server takes 64 at most.")
            expect(box).to_have_value("é" * 33)

            a.page.click("#account-btn")
            expect(a.page.locator("#logout-btn")).to_have_text(f"Log out {name}")
            a.page.click("#settings-btn")
            dlg = a.page.locator("#settings-dialog")
            expect(dlg.locator("#settings-title")).to_have_text(f"Settings for {name}")
            expect(dlg.locator("#set-push-state")).to_have_text("This server does not send notifications.")
            dlg.locator("#pw-old").fill("not my password")
            dlg.locator("#pw-new").fill("a brand new one")
            dlg.locator("#pw-again").fill("a brand new one")
            dlg.locator("#pw-submit").click()
            expect(dlg.locator("#pw-note")).to_have_text("The current password is wrong.")
            dlg.locator("#pw-old").fill(PASSWORD)
            dlg.locator("#pw-new").fill("a brand new one")
            dlg.locator("#pw-again").fill("a brand new one")
            dlg.locator("#pw-submit").click()
            expect(dlg.locator("#pw-note")).to_have_text("Password changed.")
            expect(dlg.locator("#set-logout")).to_have_text(f"Log out {name} on this device")
            dlg.locator("#set-logout").click()
            expect(a.page.locator("#login-view")).to_be_visible()
            a.login(name, "a brand new one")
    finally:
        assert srv.stop() == 0
