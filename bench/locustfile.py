"""Locust load test for chatsrv, protocol v1: users that behave like people.

    locust -f bench/locustfile.py --headless -u 50 -r 10 -t 60s --host ws://127.0.0.1:8080 \
           --csv bench/results/locust --html bench/results/locust.html

Locust measures behaviour and latency under a realistic mix; the picows generator (`python -m bench`)
measures the ceiling. Locust has no WebSocket user, so `ChatUser` holds one websocket-client connection
(gevent-friendly under Locust's monkey-patching), reads it in a greenlet, matches replies to requests by
id and fires `events.request` itself:
  request_type "WS"  name = op           response_time = request -> reply (ms); an `err` reply is a failure
  request_type "EV"  name = "msg"        response_time = the message's server ts -> received here (ms)
  request_type "EV"  name = "backlog"    response_time = auth ok -> `synced`, response_length = messages replayed

A person: signs up once (or finds the account there), logs in ONCE per account and device and keeps the
token (a reconnect uses `auth`), loads `convs`, opens conversations (`history`), chats 1-1 and in a group
with think time, sends `typing` before a message, marks conversations `read`, acks what arrived, and
watches the presence of the people they talk to.

Ops from the groups/presence issue (`group_create`, `typing`, `read`, `watch`) are ATTEMPTED and recorded
honestly: when the server does not support one yet, its `err` reply (e.g. bad_request) shows up as that op's
failure in Locust's statistics, under its own name, so the report says exactly what is missing. Nothing is
skipped silently; the user carries on with the supported ops. Locust exits 1 when any request failed: set
`--exit-code-on-error 0` while the server lacks those ops (the Makefile target does).

Settings (environment): CHATSRV_LOCUST_USERS (accounts in the pool, default 100; simulated users share them,
each with its own device), CHATSRV_LOCUST_PASSWORD, CHATSRV_LOCUST_GROUP_SIZE (default 8).
Only ever point it at a server of yours on loopback.
"""
import itertools
import json
import os
import random
import time

import gevent
from gevent.event import AsyncResult
from locust import User, between, events, task
import websocket

POOL = int(os.environ.get("CHATSRV_LOCUST_USERS", "100"))
PASSWORD = os.environ.get("CHATSRV_LOCUST_PASSWORD", "locust-password-1")
GROUP_SIZE = int(os.environ.get("CHATSRV_LOCUST_GROUP_SIZE", "8"))
NAMES = [f"locust_{i:04d}" for i in range(POOL)]
TOKENS = {}                      # (user, device) -> token: log in once, reuse the token
CREATED = []                     # accounts known to exist: the people one can talk to
_counter = itertools.count()
PHRASES = ["hi", "how are you?", "see you at 6", "ok", "sounds good", "on my way", "lol", "can you call me?",
           "did you see the game last night", "sending the file now", "thanks!", "👍"]


class Conn:
    """One WebSocket connection: a reader greenlet, requests matched to replies by id."""

    def __init__(self, url, on_event):
        self.ws = websocket.create_connection(url, timeout=30, enable_multithread=True)
        self.pending = {}
        self.ids = itertools.count(1)
        self.on_event = on_event
        self.alive = True
        self.last_reply_t = time.perf_counter()
        self.reader = gevent.spawn(self._read)

    def _read(self):
        try:
            while self.alive:
                data = self.ws.recv()
                if not data:
                    break
                d = json.loads(data)
                rid = d.get("id")
                if rid is not None and "ev" not in d:
                    res = self.pending.pop(rid, None)
                    self.last_reply_t = time.perf_counter()
                    if res is not None:
                        res.set((self.last_reply_t, d, len(data)))
                else:
                    self.on_event(d, len(data))
        except Exception as e:
            for res in self.pending.values():
                res.set_exception(e)
        finally:
            self.alive = False

    def request(self, op, timeout=30, ok_codes=(), **kw):
        """(reply, exception) after firing events.request; raises nothing, the failure is recorded.
        An `err` whose code is in ok_codes is an expected answer, not a failure."""
        rid = next(self.ids)
        res = AsyncResult()
        self.pending[rid] = res
        payload = json.dumps({"id": rid, "op": op, **kw})
        t0 = time.perf_counter()
        exc = None
        reply = None
        length = 0
        try:
            self.ws.send(payload)
            t1, reply, length = res.get(timeout=timeout)
            ms = (t1 - t0) * 1000
            if "err" in reply and reply["err"].get("code") not in ok_codes:
                exc = RuntimeError(f"{reply['err'].get('code')}: {reply['err'].get('msg', '')}")
        except Exception as e:
            self.pending.pop(rid, None)
            ms = (time.perf_counter() - t0) * 1000
            exc = e
        events.request.fire(request_type="WS", name=op, response_time=ms, response_length=length,
                            exception=exc, context={})
        return reply, exc

    def close(self):
        self.alive = False
        try:
            self.ws.close()
        except Exception:
            pass
        self.reader.kill(block=False)


class ChatUser(User):
    wait_time = between(1, 5)    # think time between actions

    def on_start(self):
        n = next(_counter)
        self.account = NAMES[n % POOL]
        self.device = f"locust-{n}"
        self.contacts = []        # people I talk to (picked among existing accounts)
        self.talked = set()       # direct convs that exist (typing needs the conversation)
        self.watched = set()
        self.convs = []
        self.group_conv = None
        self.inbox = 0
        self.acked = 0
        self.backlog = None
        self.conn = None
        self.connect()
        self.load_convs()

    def on_stop(self):
        if self.conn is not None:
            self.conn.close()

    # --- connection and events

    def url(self):
        return self.host.rstrip("/") + ("" if self.host.rstrip("/").endswith("/ws") else "/ws")

    def on_event(self, d, length):
        ev = d.get("ev")
        if ev == "msg":
            self.inbox = max(self.inbox, d.get("inbox", 0))
            if self.backlog is not None:
                self.backlog["n"] += 1
            elif "ts" in d and d.get("from") != self.account:
                events.request.fire(request_type="EV", name="msg", response_time=max(0, time.time() * 1000 - d["ts"]),
                                    response_length=length, exception=None, context={})
        elif ev == "synced":
            self.inbox = max(self.inbox, d.get("inbox", 0))
            b, self.backlog = self.backlog, None
            if b is not None:
                # from the auth/login reply to `synced`
                t0 = self.conn.last_reply_t if self.conn is not None else b["t"]
                events.request.fire(request_type="EV", name="backlog", response_time=(time.perf_counter() - t0) * 1000,
                                    response_length=b["n"], exception=None, context={})

    def connect(self):
        if self.conn is not None:
            self.conn.close()
        t0 = time.perf_counter()
        try:
            self.conn = Conn(self.url(), self.on_event)
        except Exception as e:
            events.request.fire(request_type="WS", name="connect", response_time=(time.perf_counter() - t0) * 1000,
                                response_length=0, exception=e, context={})
            raise
        events.request.fire(request_type="WS", name="connect", response_time=(time.perf_counter() - t0) * 1000,
                            response_length=0, exception=None, context={})
        self.backlog = {"t": time.perf_counter(), "n": 0}
        token = TOKENS.get((self.account, self.device))
        if token is not None:
            reply, exc = self.conn.request("auth", token=token)
            if exc is None:
                return
            TOKENS.pop((self.account, self.device), None)        # revoked or unknown: log in again
        if self.account not in CREATED:
            # a new install: sign up (the account may exist from an earlier run: conflict is fine)
            self.conn.request("signup", user=self.account, password=PASSWORD, ok_codes=("conflict",))
        reply, exc = self.conn.request("login", user=self.account, password=PASSWORD, device=self.device)
        if exc is None:
            TOKENS[(self.account, self.device)] = reply["ok"]["token"]
            if self.account not in CREATED:
                CREATED.append(self.account)

    def ensure(self):
        if self.conn is None or not self.conn.alive:
            self.connect()

    def load_convs(self):
        reply, exc = self.conn.request("convs")
        if exc is None:
            self.convs = reply["ok"].get("convs", [])

    def make_group(self):
        others = [u for u in CREATED if u != self.account]
        if len(others) < 2:
            return
        members = random.sample(others, min(GROUP_SIZE - 1, len(others)))
        reply, exc = self.conn.request("group_create", name=f"{self.account}'s group", members=members)
        if exc is None:
            self.group_conv = reply["ok"]["conv"]

    # --- what a person does

    @task(3)
    def open_conversation(self):
        self.ensure()
        if not self.convs:
            self.load_convs()
        if self.convs:
            c = random.choice(self.convs)
            self.conn.request("history", conv=c["conv"], limit=50)
            if c.get("last_seq"):
                self.conn.request("read", conv=c["conv"], seq=c["last_seq"])

    @task(6)
    def chat_direct(self):
        self.ensure()
        others = [u for u in CREATED if u != self.account]
        if not others:
            return
        if len(self.contacts) < 5 or random.random() < 0.1:
            self.contacts.append(random.choice(others))
        peer = random.choice(self.contacts)
        conv = "d:" + ":".join(sorted((self.account, peer)))
        for _ in range(random.randint(1, 3)):
            if conv in self.talked:
                self.conn.request("typing", conv=conv)
            gevent.sleep(random.uniform(0.5, 2.0))                # typing takes a moment
            reply, exc = self.conn.request("send", to=peer, body=random.choice(PHRASES),
                                           cid=f"{self.device}-{time.time_ns()}")
            if exc is None:
                self.talked.add(conv)
        if conv in self.talked and peer not in self.watched:     # presence of the people I talk to
            self.watched.add(peer)
            self.conn.request("watch", users=[peer])
        self.ack()

    @task(2)
    def chat_group(self):
        self.ensure()
        if self.group_conv is None:
            self.make_group()                                     # recorded as a failure while unsupported
            return
        self.conn.request("typing", conv=self.group_conv)
        gevent.sleep(random.uniform(0.5, 2.0))
        self.conn.request("send", conv=self.group_conv, body=random.choice(PHRASES), cid=f"{self.device}-{time.time_ns()}")

    @task(2)
    def check_convs(self):
        self.ensure()
        self.load_convs()
        self.ack()

    @task(1)
    def reconnect(self):
        """The app comes back from the background: a new connection, `auth` with the kept token."""
        self.connect()

    def ack(self):
        if self.inbox > self.acked:
            reply, exc = self.conn.request("ack", upto=self.inbox)
            if exc is None:
                self.acked = self.inbox
