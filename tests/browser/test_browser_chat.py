"""The web client in headless Chromium against the real server: two or three people,
each in their own browser context, doing what a person does with a chat app."""
from __future__ import annotations

import re

import pytest

from playwright.sync_api import expect  # noqa: E402

from .browserkit import People, Server  # noqa: E402


def test_direct_chat_live_badge_receipts_typing(people, tmp_path):
    a = people.new("alice").signup()
    b = people.new("bob").signup()

    a.start_chat(b.name)
    a.send("hello bob, it's <b>me</b> & you")
    # the sender sees it once, as its own message
    expect(a.page.locator("#messages .msg.own .msg-body")).to_have_count(1)

    # B sees the conversation live with an unread badge and the preview (escaped, not HTML)
    item = b.conv_item(a.name)
    expect(item).to_be_visible()
    expect(item.locator(".unread-badge")).to_have_text("1")
    expect(item.locator(".conv-preview")).to_have_text("hello bob, it's <b>me</b> & you")
    expect(b.page.locator("#conv-list b")).to_have_count(0)
    expect(b.page).to_have_title(re.compile(r"^\(1\) chatsrv"))

    # B's device acked it: A sees "Delivered"; B opens the chat: A sees "Seen"
    status = a.page.locator("#messages .msg-status")
    expect(status).to_have_text("Delivered")
    b.open_conv(a.name)
    expect(b.message("hello bob")).to_have_count(1)
    expect(item.locator(".unread-badge")).to_have_count(0)
    expect(status).to_have_text("Seen")

    # presence: both online
    expect(a.page.locator("#chat-sub")).to_have_text("online")
    expect(b.page.locator("#chat-sub")).to_have_text("online")

    # typing indicator reaches A, and goes away once B's message arrives
    b.page.locator("#composer-input").press_sequentially("hi al", delay=20)
    expect(a.page.locator("#typing")).to_have_text(f"{b.name} is typing…")
    b.page.locator("#composer-input").press_sequentially("ice")
    b.page.locator("#composer-input").press("Enter")
    expect(a.message("hi alice")).to_have_count(1)
    expect(a.page.locator("#typing")).to_be_hidden()
    expect(b.page.locator("#composer-input")).to_have_value("")

    # A had the chat open: no unread badge for B's reply, and B sees A's read
    expect(a.conv_item(b.name).locator(".unread-badge")).to_have_count(0)
    expect(b.page.locator("#messages .msg-status")).to_have_text("Seen")
    expect(a.conv_item(b.name).locator(".conv-preview")).to_have_text("hi alice")

    # a few more so the screenshot shows a conversation
    a.send("Shall we meet at 8?\nThe usual place.")
    b.send("Sounds good — see you there")
    shot = tmp_path / "chat_desktop.png"
    a.page.screenshot(path=str(shot))
    assert shot.stat().st_size > 5000
    print("screenshot:", shot)

    # phone width: one pane at a time, back button returns to the list
    a.page.set_viewport_size({"width": 390, "height": 760})
    expect(a.page.locator("#sidebar")).to_be_hidden()
    shot = tmp_path / "chat_phone.png"
    a.page.screenshot(path=str(shot))
    print("screenshot:", shot)
    a.page.click("#back-btn")
    expect(a.page.locator("#sidebar")).to_be_visible()
    expect(a.page.locator("#chat")).to_be_hidden()
    a.page.screenshot(path=str(tmp_path / "list_phone.png"))


def test_offline_message_then_token_reuse(people):
    a = people.new("alice").signup()
    b = people.new("bob").signup()
    a.start_chat(b.name)
    a.send("first")
    expect(b.conv_item(a.name)).to_be_visible()
    expect(a.page.locator("#chat-sub")).to_have_text("online")

    # B goes away (the browser closes); A sees "last seen" and writes anyway
    state = b.storage_state()
    b.close()
    expect(a.page.locator("#chat-sub")).to_have_text(re.compile(r"^last seen"))
    a.send("written while you were away")
    expect(a.page.locator("#messages .msg-status")).to_have_text("Sent")

    # B comes back: the stored token is used (no password), the message is there, once
    b2 = people.new(state=state, name=b.name)
    expect(b2.page.locator("#main-view")).to_be_visible()
    expect(b2.page.locator("#login-view")).to_be_hidden()
    expect(b2.page.locator("#account-name")).to_have_text(b.name)
    item = b2.conv_item(a.name)
    expect(item.locator(".unread-badge")).to_have_text("2")
    expect(item.locator(".conv-preview")).to_have_text("written while you were away")
    # B's device acked the held message: A gets the delivery receipt
    expect(a.page.locator("#messages .msg-status")).to_have_text("Delivered")
    expect(a.page.locator("#chat-sub")).to_have_text("online")
    b2.open_conv(a.name)
    expect(b2.message("written while you were away")).to_have_count(1)
    expect(b2.message("first")).to_have_count(1)
    expect(a.page.locator("#messages .msg-status")).to_have_text("Seen")

    # a reload keeps the session and shows each message once
    b2.page.reload()
    expect(b2.page.locator("#account-name")).to_have_text(b.name)
    expect(b2.page.locator("#chat-title")).to_have_text(a.name)
    expect(b2.message("written while you were away")).to_have_count(1)
    expect(b2.page.locator("#messages .msg")).to_have_count(2)
    expect(b2.conv_item(a.name).locator(".unread-badge")).to_have_count(0)


def test_group_create_message_info(people, tmp_path):
    a = people.new("ann").signup()
    b = people.new("ben").signup()
    c = people.new("cat").signup()
    group = "Hiking & <i>friends</i>"

    a.page.click("#new-group-btn")
    a.page.fill("#group-name", group)
    a.page.fill("#group-members", f"{b.name}, {c.name}")
    a.page.click("#group-create-submit")
    expect(a.page.locator("#chat-title")).to_have_text(group)
    expect(a.page.locator("#messages .msg-sys").first).to_contain_text(f"{a.name} created the group")
    a.send("hello group")

    # the third member gets the group and the message live
    item = c.conv_item(group)
    expect(item).to_be_visible()
    expect(item.locator(".conv-preview")).to_have_text(f"{a.name}: hello group")
    expect(item.locator(".unread-badge")).to_have_text("2")   # the create line and the message
    c.open_conv(group)
    expect(c.message("hello group")).to_have_count(1)
    expect(c.page.locator("#messages .msg-from").first).to_have_text(a.name)
    expect(c.page.locator("#messages .msg-sys").first).to_have_text(
        re.compile(re.escape(f"{a.name} created the group “{group}” with {b.name}, {c.name}")))
    expect(c.page.locator("#chat-sub")).to_have_text("3 members")
    c.send("hi from cat")
    expect(a.message("hi from cat")).to_have_count(1)
    expect(b.conv_item(group).locator(".conv-preview")).to_have_text(f"{c.name}: hi from cat")

    # group info: members and owner; the owner renames and removes a member
    a.page.click("#info-btn")
    dlg = a.page.locator("#group-info-dialog")
    expect(dlg.locator("#gi-members li")).to_have_count(3)
    expect(dlg.locator("#gi-owner")).to_have_text(f"Owner: {a.name}")
    a.page.screenshot(path=str(tmp_path / "group_info.png"))
    dlg.locator("#gi-rename").fill("Hiking 2")
    dlg.locator("#gi-rename-form button").click()
    expect(dlg.locator("#gi-name")).to_have_text("Hiking 2")
    dlg.locator(f'#gi-members li[data-user="{b.name}"] button').click()
    expect(dlg.locator("#gi-members li")).to_have_count(2)
    dlg.locator("#gi-close").click()
    expect(c.page.locator("#chat-title")).to_have_text("Hiking 2")
    expect(c.page.locator("#messages .msg-sys", has_text=f"{a.name} renamed the group to “Hiking 2”")).to_have_count(1)
    expect(c.page.locator("#messages .msg-sys", has_text=f"{a.name} removed {b.name}")).to_have_count(1)
    expect(c.page.locator("#chat-sub")).to_have_text("2 members")
    c.page.screenshot(path=str(tmp_path / "group_chat.png"))

    # the removed member sees it and can no longer write
    b.open_conv("Hiking 2")
    removed = "You were removed from this group. You can read what was said until then."
    expect(b.page.locator("#banner")).to_have_text(removed)
    expect(b.page.locator("#composer")).to_be_hidden()
    b.page.screenshot(path=str(tmp_path / "group_removed.png"))
    # the group and what was said until the removal survive a reload
    b.page.reload()
    b.open_conv("Hiking 2")
    expect(b.page.locator("#banner")).to_have_text(removed)
    expect(b.message("hello group")).to_have_count(1)
    expect(b.message("hi from cat")).to_have_count(1)
    expect(b.page.locator("#messages .msg-sys").last).to_have_text(re.compile(re.escape(f"{a.name} removed {b.name}")))

    # the owner leaves: the one left is told they own the group now, and the leaver keeps it to read
    a.page.click("#info-btn")
    a.page.click("#gi-leave")
    a.page.click("#gi-leave")                            # the second click confirms
    expect(c.page.locator("#messages .msg-sys").last).to_have_text(
        re.compile(re.escape(f"{a.name} left. {c.name} is now the owner.")))
    expect(a.page.locator("#banner")).to_have_text("You left this group. You can read what was said until then.")
    c.page.click("#info-btn")
    expect(c.page.locator("#gi-owner")).to_have_text(f"Owner: {c.name}")


def test_history_pages_on_scroll_up(people):
    a = people.new("alice").signup()
    b = people.new("bob").signup()
    a.start_chat(b.name)
    a.send("message 1")
    # 69 more through the client's own send path (quicker than typing them)
    a.page.evaluate("""() => {
        const acct = window.chatsrvApp.active;
        for (let i = 2; i <= 70; i++) acct.send(acct.openKey, null, 'message ' + i);
    }""")
    expect(a.message("message 70")).to_be_visible()
    expect(a.page.locator('#messages .msg-status[data-status="sending"]')).to_have_count(0)
    expect(b.conv_item(a.name).locator(".unread-badge")).to_have_text("70")

    # once this device has acked everything, a reload replays nothing: the chat comes from
    # history, 50 at a time
    a.page.wait_for_function("() => { const x = window.chatsrvApp.active; return x.acked === 70; }")
    a.page.reload()
    expect(a.page.locator("#chat-title")).to_have_text(b.name)
    msgs = a.page.locator("#messages .msg")
    expect(msgs).to_have_count(50)
    expect(a.message("message 70")).to_be_in_viewport()
    a.page.locator("#messages").evaluate("el => { el.scrollTop = 0; }")
    expect(msgs).to_have_count(70)
    expect(a.page.locator("#messages .msg-body").first).to_have_text("message 1")
    expect(a.page.locator("#messages .history-start")).to_have_text("Start of the conversation")
    # the view stayed where the reader was, not at the very top or bottom
    expect(a.message("message 70")).not_to_be_in_viewport()
    expect(a.message("message 21")).to_be_in_viewport()


def test_accounts_switcher_and_logout(people, tmp_path):
    b = people.new("bob").signup()
    a = people.new("alice").signup()
    # A adds a second account in the same browser
    a.page.click("#account-btn")
    a.page.click("#add-account-btn")
    expect(a.page.locator("#login-cancel")).to_be_visible()
    second = a.name + "x"
    a.signup(second)
    a.page.click("#account-btn")
    expect(a.page.locator("#account-list .account-item")).to_have_count(2)
    a.page.keyboard.press("Escape")
    expect(a.page.locator("#account-menu")).to_be_hidden()

    # B writes to the first account (not the one on screen): the switcher shows it
    b.start_chat(a.name)
    b.send("for your first account")
    expect(a.page.locator("#account-other-unread")).to_be_visible()
    a.page.click("#account-btn")
    expect(a.page.locator(f'.account-item[data-user="{a.name}"] .badge')).to_have_text("1")
    a.page.screenshot(path=str(tmp_path / "accounts_menu.png"))
    a.page.click(f'.account-item[data-user="{a.name}"]')
    expect(a.page.locator("#account-name")).to_have_text(a.name)
    a.open_conv(b.name)
    expect(a.message("for your first account")).to_have_count(1)
    expect(a.page.locator("#account-other-unread")).to_be_hidden()

    # log out of the first account: the other stays signed in, and a reload keeps it
    a.page.click("#account-btn")
    a.page.click("#logout-btn")
    expect(a.page.locator("#account-name")).to_have_text(second)
    a.page.reload()
    expect(a.page.locator("#account-name")).to_have_text(second)
    a.page.click("#account-btn")
    expect(a.page.locator("#account-list .account-item")).to_have_count(1)
    # log out of the last one: back to the login form
    a.page.click("#logout-btn")
    expect(a.page.locator("#login-view")).to_be_visible()
    a.page.reload()
    expect(a.page.locator("#login-view")).to_be_visible()
    # a wrong password is refused with a message
    a.page.fill("#login-user", a.name)
    a.page.fill("#login-pass", "wrong-password")
    a.page.click("#login-btn")
    expect(a.page.locator("#login-error")).to_have_text("Wrong user name or password.")
    a.page.screenshot(path=str(tmp_path / "login.png"))
    a.login(a.name)


def test_reconnect_resends_after_server_restart(browser, tmp_path):
    srv = Server(tmp_path / "data", tmp_path / "server.log").start()
    ppl = People(browser, srv)
    ppl.ignore_ws_errors = True   # Chromium logs each refused reconnect attempt
    try:
        a = ppl.new("alice").signup()
        b = ppl.new("bob").signup()
        a.start_chat(b.name)
        a.send("before the restart")
        expect(b.conv_item(a.name)).to_be_visible()

        assert srv.stop() == 0
        expect(a.page.locator("#conn-status")).to_have_attribute("data-state", "offline")
        expect(a.page.locator("#net-banner")).to_be_visible()
        box = a.page.locator("#composer-input")
        box.fill("sent while the server was down")
        box.press("Enter")
        expect(a.page.locator('#messages .msg-status[data-status="sending"]')).to_have_count(1)

        srv.start(port=srv.port)
        expect(a.page.locator("#conn-status")).to_have_attribute("data-state", "online", timeout=20_000)
        expect(a.page.locator('#messages .msg-status[data-status="sending"]')).to_have_count(0)
        expect(a.message("sent while the server was down")).to_have_count(1)
        expect(b.page.locator("#conn-status")).to_have_attribute("data-state", "online", timeout=20_000)
        item = b.conv_item(a.name)
        expect(item.locator(".conv-preview")).to_have_text("sent while the server was down")
        b.open_conv(a.name)
        expect(b.page.locator("#messages .msg")).to_have_count(2)
    finally:
        ppl.close_all()
        srv.stop()
    assert not ppl.errors, "JavaScript errors in the page:\n" + "\n".join(ppl.errors)
