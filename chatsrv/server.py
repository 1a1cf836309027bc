"""The server: one port served by picows on uvloop (/ws, /healthz, /metrics, the web
client), the wiring of store, writer, router and hub, and a clean start and stop."""
import asyncio
import gc
import logging
import os
import signal
import sys

import lmdb
import orjson
import uvloop
from picows import WSUpgradeResponse, WSUpgradeResponseWithListener, ws_create_server

from . import _core, logs
from .config import split_address
from .datadir import InUse, Lock, make_private
from .auth import Passwords, Throttle, Tokens, load_secret
from .domain.hub import Hub
from .metrics import CONTENT_TYPE, Metrics
from .proto import message_record
from .push import Push
from .store import Writer
from .store.lmdb import LmdbStore

log = logging.getLogger("chatsrv")
WEB_DIR = os.path.join(os.path.dirname(__file__), "web")
WEB_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
             ".css": "text/css; charset=utf-8", ".json": "application/json", ".svg": "image/svg+xml",
             ".png": "image/png", ".ico": "image/x-icon",
             ".webmanifest": "application/manifest+json"}


class StartError(Exception):
    """The server cannot start for a reason the operator can fix: one line, no traceback."""


def _reason(e):
    """An OSError as its plain reason ("permission denied (data/db)"), without uvloop's wrapping."""
    if isinstance(e, FileExistsError) or isinstance(e, NotADirectoryError):
        return "not a directory" + (f" ({e.filename})" if e.filename else "")
    if isinstance(e, OSError) and e.errno:
        return os.strerror(e.errno).lower() + (f" ({e.filename})" if e.filename else "")
    return str(e)


def _respond(status, body=b"", content_type="text/plain; charset=utf-8"):
    if status == 200:
        resp = WSUpgradeResponse.create_ok_response(body, {"Content-Type": content_type})
    else:
        resp = WSUpgradeResponse.create_error_response(status, body)
    return WSUpgradeResponseWithListener(resp, None)


class Server:
    def __init__(self, cfg):
        self.cfg = cfg
        self.server = None
        self.metrics_server = None

    async def start(self):
        cfg = self.cfg
        loop = asyncio.get_running_loop()
        try:
            make_private(cfg.data)
            # before the database is opened: two servers on one directory would both assign
            # the same seqs, and one side's acknowledged messages would be overwritten
            self.lock = Lock(cfg.data).acquire()
            self.store = LmdbStore(cfg.data, cfg.map_size, message_record, sync=not cfg.unsafe_no_sync)
            secret = load_secret(cfg.data)
        except (OSError, lmdb.Error) as e:
            raise StartError(f"cannot use data directory {cfg.data}: {_reason(e)}") from None
        if cfg.unsafe_no_sync:
            log.warning("--unsafe-no-sync: commits are not synced; a machine crash can lose acknowledged messages")
        self.writer = Writer(self.store, loop, cfg.max_batch)
        self.writer.start()
        self.router = _core.Router(cfg.write_buffer_limit, loop, cfg.close_timeout, cfg.drain_timeout,
                                   cfg.max_unfinished_bytes)
        self.passwords = Passwords()
        self.push = Push(cfg, self.store, self.writer, self.router, loop)
        self.hub = Hub(cfg, self.store, self.writer, self.router, loop, self.push, self.passwords,
                       Tokens(secret),
                       Throttle(cfg.login_failures, cfg.login_window),
                       Throttle(cfg.login_failures * 4, cfg.login_window),
                       _core.SendDone, _core.replay)
        self.router.push = self.push
        self.router.sender = _core.Sender(self.router, self.hub, self.writer, cfg.max_message_bytes)
        self.push.start()
        self.metrics = (Metrics(self.router, self.writer, self.store, self.hub.outcomes, self.hub.send_latency,
                                [self.push]) if cfg.metrics else None)
        self.origins = cfg.origins()
        self.echo_path = cfg.echo_path.encode() if cfg.echo_path else None
        try:
            self.server = await self._listen()
        except OSError as e:
            self.writer.stop()
            self.push.stop()
            self.passwords.close()
            self.store.close()
            self.lock.release()
            raise StartError(f"cannot listen on {cfg.host}:{cfg.port}: {_reason(e)}") from None
        self._keepalive_task = loop.create_task(self._keepalive())
        log.info("chatsrv listening on http://%s:%d (data in %s)", cfg.host, cfg.port, cfg.data)
        if self.metrics is not None and cfg.metrics_listen:
            host, port = split_address(cfg.metrics_listen)
            try:
                self.metrics_server = await ws_create_server(self.route_metrics, host, port)
            except OSError as e:
                await self.stop()
                raise StartError(f"cannot listen on {cfg.metrics_listen} (metrics_listen): {_reason(e)}") from None
            log.info("metrics on http://%s/metrics", cfg.metrics_listen)

    def _listen(self):
        cfg = self.cfg
        return ws_create_server(
            self.route, cfg.host, cfg.port,
            max_frame_size=cfg.max_frame_bytes,
            # keepalive is one sweep over all connections (see _keepalive), not a timer per
            # connection, and picows' own cannot wait longer for a pong than it waits to ping
            enable_auto_ping=False,
            # 2 KiB (picows' floor) and uvloop's own transport: the least memory per idle connection
            read_buffer_init_size=2048,
            use_aiofastnet=False,
            logger_name="chatsrv.ws",
        )

    async def _keepalive(self):
        cfg = self.cfg
        # a sweep every quarter of the shortest period keeps detection within interval + timeout + 25%
        tick = min(max(min(cfg.ping_interval, cfg.ping_timeout, cfg.fragment_timeout) / 4, 0.05), 1.0)
        while True:
            await asyncio.sleep(tick)
            self.router.keepalive(self.hub.conns, cfg.ping_interval, cfg.ping_timeout, cfg.fragment_timeout)

    def route(self, request):
        path = request.path.split(b"?", 1)[0]
        echo = self.echo_path is not None and path == self.echo_path
        if path == b"/ws" or echo:
            origins = request.headers.getall("Origin", [])
            if len(origins) > 1:
                # a check of only the first would let any second one through
                log.info("refused upgrade with %d Origin headers", len(origins))
                return _respond(403, b"more than one Origin header")
            if origins and origins[0] not in self.origins:
                log.info("refused upgrade from origin %r", origins[0])
                return _respond(403, b"origin not allowed")
            cfg = self.cfg
            conn = _core.Conn(self.hub, self.router, "", cfg.max_frame_bytes, cfg.rate, cfg.burst,
                              cfg.rate_close_after)
            conn.echo = echo
            # a proxy may add its own header line after the client's (HAProxy does): all lines count
            conn.forwarded = ", ".join(request.headers.getall("X-Forwarded-For", [])) or None
            return conn
        if path == b"/healthz":
            return _respond(200, b"ok")
        if path == b"/settings":
            return _respond(200, orjson.dumps(self.hub.client_settings()), "application/json")
        if path == b"/metrics":
            if self.metrics is None or not self.cfg.metrics_public:
                return None
            return _respond(200, self.metrics.render(), CONTENT_TYPE)
        return self.static(path)

    def route_metrics(self, request):
        """The --metrics-listen port: /metrics and /healthz, nothing else."""
        path = request.path.split(b"?", 1)[0]
        if path == b"/metrics":
            return _respond(200, self.metrics.render(), CONTENT_TYPE)
        if path == b"/healthz":
            return _respond(200, b"ok")
        return None

    def static(self, path):
        name = "index.html" if path == b"/" else path.decode("latin-1").lstrip("/")
        if "/" in name or name.startswith("."):
            return None
        ext = os.path.splitext(name)[1]
        if ext not in WEB_TYPES:
            return None
        try:
            with open(os.path.join(WEB_DIR, name), "rb") as f:
                body = f.read()
        except OSError:
            return None
        return _respond(200, body, WEB_TYPES[ext])

    async def stop(self):
        """Stops accepting, commits what the writer holds and answers it, closes every
        connection with 1001, then closes LMDB."""
        if self.server is None:
            return
        self.server.close()
        if self.metrics_server is not None:
            self.metrics_server.close()
        self._keepalive_task.cancel()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.writer.stop)
        await asyncio.sleep(0)   # the writer's last callbacks (acks, fan-out) run here
        self.hub.close_all()
        deadline = loop.time() + self.cfg.close_timeout
        while self.hub.conns and loop.time() < deadline:
            await asyncio.sleep(0.02)
        for c in list(self.hub.conns):
            c.drop()
        self.passwords.close()
        self.push.cancel_grace()
        await loop.run_in_executor(None, self.push.stop)
        self.store.close()
        self.lock.release()
        self.server = None
        log.info("chatsrv stopped")


def tune_runtime():
    """The loop allocates small objects per request and keeps few cycles: a young
    generation this small would run the cyclic GC every few hundred requests. The
    writer thread needs the GIL back right after each fsync: the default 5 ms
    switch interval would make every commit wait for the loop's time slice."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(int(os.environ.get("CHATSRV_GC_THRESHOLD", "50000")), 50, 100)
    sys.setswitchinterval(float(os.environ.get("CHATSRV_SWITCH_INTERVAL", "0.0002")))


async def _main(cfg):
    srv = Server(cfg)
    await srv.start()
    tune_runtime()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down")
    await srv.stop()


def serve(cfg):
    logs.setup(cfg.log_level, cfg.log_format)
    try:
        uvloop.run(_main(cfg))
    except (StartError, InUse) as e:
        print(f"chatsrv serve: {e}", file=sys.stderr)
        return 1
    return 0
