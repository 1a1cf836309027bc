"""Notifications end to end in headless Chromium, at both sizes: the client's "Turn on
notifications" offer, its push_subscribe (with `pushManager.subscribe` stubbed by keys the
test controls, since headless Chromium cannot reach a real push service), the real server's
Web Push to the stand-in on 127.0.0.1 (VAPID verified, body decrypted), and the decrypted
payload delivered to the client's real service worker as a real push event (Chrome DevTools
Protocol `ServiceWorker.deliverPushMessage`). What the worker shows is read back with
`registration.getNotifications()`."""
from __future__ import annotations

import json
import re
import time

import pytest
from playwright.sync_api import expect

from harness.push import pushsvc  # noqa: F401 - a fixture

from .browserkit import DESKTOP, PHONE, Server, people_on

QUIET = 1.0      # seconds to wait when asserting that nothing arrives

# pushManager.subscribe/getSubscription answer with the stand-in's endpoint and keys; the
# permission prompt is counted (the context grants the permission itself)
STUB = """(() => {
  const SUB = %s;
  let current = null;
  if (!self.PushManager) return;
  const ask = Notification.requestPermission.bind(Notification);
  Notification.requestPermission = (...args) => {
    window.__permissionAsks = (window.__permissionAsks || 0) + 1;
    return ask(...args);
  };
  PushManager.prototype.subscribe = async function (opts) {
    window.__pushSubscribes = (window.__pushSubscribes || 0) + 1;
    current = {
      endpoint: SUB.endpoint, expirationTime: null,
      options: { userVisibleOnly: opts.userVisibleOnly, applicationServerKey: opts.applicationServerKey },
      toJSON() { return { endpoint: SUB.endpoint, expirationTime: null, keys: SUB.keys }; },
      async unsubscribe() { current = null; return true; },
    };
    return current;
  };
  PushManager.prototype.getSubscription = async function () { return current; };
})();"""


@pytest.fixture(scope="module")
def push_server(tmp_path_factory):
    base = tmp_path_factory.mktemp("push_srv")
    s = Server(base / "data", base / "server.log",
               ["--presence-grace", "0.2", "--vapid-subject", "mailto:ops@chatsrv.test", "--push-allow-http"]).start()
    yield s
    assert s.stop() == 0, s.log_tail()


@pytest.fixture
def ppl(browser, push_server):
    with people_on(browser, push_server) as p:
        yield p


def wait_pushes(svc, sid, n, timeout=8.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = svc.pushes(sid)
        assert not svc.errors, svc.errors
        if len(got) >= n:
            return [g["payload"] for g in got]
        time.sleep(0.05)
    raise AssertionError(f"{len(svc.pushes(sid))} pushes, expected {n}")


class Worker:
    """The client's service worker seen from a same-origin page that runs no chat code
    (/healthz), so that the account stays offline: pushes go in, notifications come out."""

    def __init__(self, context, server):
        self.page = context.new_page()
        self.page.goto(server.origin + "/healthz")
        self.origin = server.origin
        self.cdp = context.new_cdp_session(self.page)
        regs = []
        self.cdp.on("ServiceWorker.workerRegistrationUpdated", lambda e: regs.extend(e["registrations"]))
        self.cdp.send("ServiceWorker.enable")
        deadline = time.monotonic() + 5
        while not regs and time.monotonic() < deadline:
            self.page.wait_for_timeout(50)
        live = [r for r in regs if not r.get("isDeleted") and r["scopeURL"] == self.origin + "/"]
        assert live, f"no service worker registered for {self.origin}: {regs}"
        self.registration = live[0]["registrationId"]

    def push(self, payload: dict):
        self.cdp.send("ServiceWorker.deliverPushMessage",
                      {"origin": self.origin, "registrationId": self.registration, "data": json.dumps(payload)})

    def notifications(self):
        return self.page.evaluate("""async () => {
            const reg = await navigator.serviceWorker.getRegistration('/');
            return (await reg.getNotifications()).map((n) => ({tag: n.tag, title: n.title, body: n.body}));
        }""")

    def wait_notifications(self, pred, what, timeout=6.0):
        deadline = time.monotonic() + timeout
        while True:
            got = self.notifications()
            if pred(got):
                return got
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: notifications are {got}")
            self.page.wait_for_timeout(100)


def page_notifications(person):
    return person.page.evaluate("""async () => {
        const reg = await navigator.serviceWorker.ready;
        return (await reg.getNotifications()).map((n) => ({tag: n.tag, title: n.title, body: n.body}));
    }""")


@pytest.mark.parametrize("device", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_notifications_reach_a_closed_page_clear_on_read_and_respect_mute(ppl, pushsvc, push_server, device):
    sid, sub = pushsvc.subscription()
    a = ppl.new("alice", device=device, permissions=["notifications"], init_script=STUB % json.dumps(sub)).signup()
    b = ppl.new("bob").signup()
    c = ppl.new("carol").signup()

    # the offer names the account and waits for a click: nothing is asked on load
    offer = a.page.locator("#push-offer")
    expect(offer).to_be_visible()
    expect(offer).to_contain_text(a.name)
    a.page.reload()                                     # a load never asks either
    expect(offer).to_be_visible()
    assert a.page.evaluate("[window.__permissionAsks || 0, window.__pushSubscribes || 0]") == [0, 0]
    a.page.click("#push-offer-yes")
    expect(offer).to_be_hidden()
    a.page.wait_for_function("window.__pushSubscribes === 1")
    assert a.page.evaluate("window.__permissionAsks") == 1
    expect(a.page.locator("#toast")).to_have_text(f"Notifications are on for {a.name}.")

    # page open, chat not on screen: the page shows the notification itself, one per chat
    b.start_chat(a.name)
    b.send("hi alice")
    b.send("anyone home?")
    conv_ab = b.page.evaluate("window.chatsrvApp.active.openKey")
    tag_ab = f"{a.name}|{conv_ab}"
    a.page.wait_for_function(f"""async () => {{
        const reg = await navigator.serviceWorker.ready;
        const ns = await reg.getNotifications({{tag: {json.dumps(tag_ab)}}});
        return ns.length === 1 && ns[0].body === 'anyone home?';
    }}""")
    got = page_notifications(a)
    assert got == [{"tag": tag_ab, "title": f"{b.name} (2 new)", "body": "anyone home?"}], got

    # opening the chat reads it, which clears the notification; while it is open and
    # focused, new messages notify nothing
    a.open_conv(b.name)
    a.page.wait_for_function("async () => (await (await navigator.serviceWorker.ready).getNotifications()).length === 0")
    b.send("you are reading this live")
    expect(a.message("you are reading this live")).to_be_visible()
    a.page.wait_for_timeout(QUIET * 1000)
    assert page_notifications(a) == []

    # carol's chat gets muted for 8 hours from the UI
    c.start_chat(a.name)
    c.send("hello from carol")
    if a.phone:
        a.page.click("#back-btn")
    a.open_conv(c.name)
    a.page.click("#mute-btn")
    a.page.get_by_role("menuitem", name="Mute for 8 hours").click()
    expect(a.page.locator("#chat-sub")).to_contain_text("Muted until")
    expect(a.page.locator("#mute-btn")).to_have_attribute("aria-label", re.compile("^Notifications muted"))
    conv_ac = a.page.evaluate("window.chatsrvApp.active.openKey")

    # alice's page closes: her only device is offline (bob sees it), so the server pushes
    worker = Worker(a.context, push_server)
    a.page.close()
    expect(b.page.locator("#chat-sub")).to_have_text(re.compile(r"^last seen"))
    before = len(pushsvc.pushes(sid))
    b.send("are you there?")
    payload = wait_pushes(pushsvc, sid, before + 1)[-1]
    assert payload["type"] == "msg" and payload["account"] == a.name and payload["body"] == "are you there?", payload
    worker.push(payload)
    shown = worker.wait_notifications(lambda ns: len(ns) == 1, "the push of bob's message")
    assert shown == [{"tag": tag_ab, "title": b.name, "body": "are you there?"}], shown

    # the muted chat: the server sends nothing (bob's next message shows it kept going),
    # and a push for it that came anyway (sent before the mute, say) shows nothing either
    c.send("psst, muted")
    b.send("still there?")
    later = wait_pushes(pushsvc, sid, before + 2)
    assert [p.get("body") for p in later[before:]] == ["are you there?", "still there?"], later
    worker.push(payload | {"conv": conv_ac, "from": c.name, "seq": 1, "body": "psst, muted"})
    worker.push(later[-1])
    shown = worker.wait_notifications(lambda ns: len(ns) == 1 and ns[0]["body"] == "still there?", "bob's second push")
    assert [n["tag"] for n in shown] == [tag_ab], shown
    assert shown[0]["title"] == f"{b.name} (2 new)", shown

    # alice reads the chat on another device: her first device gets the read push, which
    # closes the notification there
    n = len(pushsvc.pushes(sid))
    a2 = ppl.new("alice2", name=a.name).login()
    a2.open_conv(b.name)
    expect(a2.message("still there?")).to_be_visible()
    read = wait_pushes(pushsvc, sid, n + 1)[-1]
    assert read["type"] == "read" and read["conv"] == conv_ab and read["account"] == a.name, read
    worker.push(read)
    worker.wait_notifications(lambda ns: ns == [], "the read push")

    # a notification's link opens its chat
    back = a.context.new_page()
    back.goto(f"{push_server.url}#{a.name}/{conv_ab}")
    expect(back.locator("#chat-title")).to_have_text(b.name)
    back.close()
