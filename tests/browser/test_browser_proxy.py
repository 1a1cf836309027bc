"""The web client in headless Chromium through the shipped nginx configuration (a TLS-less
variant generated from deploy/nginx.conf, tests/harness/proxy.py): the page, its WebSocket
and a chat between two people all go through the proxy."""
from __future__ import annotations

import time
from types import SimpleNamespace

from playwright.sync_api import expect

from harness.net import free_port
from harness.proxy import Proxy

from .browserkit import People, Server


def test_two_people_chat_through_nginx(browser, tmp_path):
    port = free_port()
    srv = Server(tmp_path / "data", tmp_path / "server.log",
                 ["--trusted-proxy", "127.0.0.1", "--allowed-origin", f"http://127.0.0.1:{port}"]).start()
    proxy = Proxy("nginx", tmp_path / "nginx", srv.port, port, free_port())
    people = None
    try:
        proxy.start()
        people = People(browser, SimpleNamespace(url=proxy.origin + "/"))
        a = people.new("alice").signup()
        b = people.new("bob").signup()
        a.start_chat(b.name)
        a.send("hello through nginx")
        b.conv_item(a.name).click()
        expect(b.message("hello through nginx")).to_have_count(1)
        b.send("and back")
        expect(a.message("and back")).to_have_count(1)
        assert a.page.url.startswith(proxy.origin)
        people.close_all()
        # the pages' WebSockets went through nginx: it logs each upgrade when the connection ends
        log = tmp_path / "nginx" / "access.log"
        deadline = time.monotonic() + 5
        while log.read_text().count('"GET /ws HTTP/1.1" 101') < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert log.read_text().count('"GET /ws HTTP/1.1" 101') >= 2, log.read_text()[-2000:]
    finally:
        if people is not None:
            people.close_all()
        proxy.stop()
        assert srv.stop() == 0, srv.log_tail()
    assert not people.errors, "JavaScript errors in the page:\n" + "\n".join(people.errors)
