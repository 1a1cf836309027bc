"""The web client as an installable app in headless Chromium, at both sizes: a manifest with
icons that load, no installability errors from Chromium itself, and the app shell cached by
the service worker, so that a reload while the server is down opens the app with what it
had (conversations and messages), an offline banner with "Retry now", and a reconnect as
soon as the server is back."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from .browserkit import DESKTOP, PHONE, Server, first_message, people_on


@pytest.mark.parametrize("device", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_installable_and_opens_offline_with_what_it_had(browser, tmp_path, device):
    srv = Server(tmp_path / "data", tmp_path / "server.log", ["--presence-grace", "0.2"]).start()
    try:
        with people_on(browser, srv) as ppl:
            ppl.ignore_ws_errors = True    # Chromium logs each refused reconnect attempt
            a = ppl.new("alice", device=device).signup()
            b = ppl.new("bob").signup()
            first_message(b, a, "kept for the offline view")

            page = a.page
            manifest = page.evaluate("""async () => {
                const m = await (await fetch(document.querySelector('link[rel=manifest]').href)).json();
                const icons = [];
                for (const i of m.icons) {
                    const r = await fetch(new URL(i.src, location.href));
                    icons.push([i.sizes, i.type, r.ok, r.headers.get('content-type')]);
                }
                return {m, icons};
            }""")
            m = manifest["m"]
            assert m["display"] == "standalone" and m["start_url"] == "/" and m["name"] == "chatsrv", m
            assert ["192x192", "image/png", True, "image/png"] in manifest["icons"], manifest
            assert ["512x512", "image/png", True, "image/png"] in manifest["icons"], manifest
            page.wait_for_function("navigator.serviceWorker.controller !== null")
            cdp = a.context.new_cdp_session(page)
            errors = cdp.send("Page.getInstallabilityErrors")["installabilityErrors"]
            # a Playwright context is an incognito profile, where nothing installs; that is the only
            # objection Chromium may raise (manifest, icons, worker and scope all pass)
            assert [e for e in errors if e["errorId"] != "in-incognito"] == [], errors

            # the server goes down; a reload still opens the app, with the chat as it was
            port = srv.port
            assert srv.stop() == 0
            page.reload()
            expect(page.locator("#main-view")).to_be_visible()
            expect(page.locator("#chat-title")).to_have_text(b.name)
            expect(a.message("kept for the offline view")).to_have_count(1)
            banner = page.locator("#net-banner")
            expect(banner).to_contain_text("You are offline")
            expect(page.locator("#conn-status")).to_have_attribute("data-state", "offline")
            if a.phone:
                page.click("#back-btn")
            expect(a.conv_item(b.name)).to_be_visible()

            # back up: "Retry now" reconnects at once, whatever the back-off had reached
            page.wait_for_timeout(2500)
            srv.start(port=port)
            page.click("#net-retry")
            expect(page.locator("#conn-status")).to_have_attribute("data-state", "online", timeout=3000)
            expect(banner).to_be_hidden()
            b.page.wait_for_function("window.chatsrvApp.active.status === 'online'", timeout=15000)
            b.send("after the outage")
            if a.phone:
                a.open_conv(b.name)
            expect(a.message("after the outage")).to_be_visible()
    finally:
        srv.stop()
