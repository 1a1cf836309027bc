"""Every setting and limit of the server, with its default, in one table.

The CLI builds its flags from OPTIONS (each also read from CHATSRV_<NAME>), and
docs/protocol.md lists the same names; tests and benchmarks build a Config directly.
"""
import dataclasses

GiB = 1 << 30
MiB = 1 << 20

# name, type, default, help
OPTIONS = [
    ("host", str, "127.0.0.1", "address to listen on"),
    ("port", int, 8080, "TCP port (WebSocket /ws, /healthz, /metrics, the web client)"),
    ("data", str, "./data", "data directory (LMDB and key files)"),
    ("allowed_origin", list, [], "extra allowed Origin for the WebSocket upgrade (repeatable; "
                                 "env: comma-separated); the server's own origins are always allowed"),
    ("trusted_proxy", list, [], "address of a reverse proxy (repeatable; env: comma-separated) whose "
                                "X-Forwarded-For names the client, for the per-address login throttle"),
    ("signup", bool, True, "anyone may sign up; off (--no-signup): accounts are made with `chatsrv adduser`"),
    ("ping_interval", float, 20.0, "seconds of silence before the server pings a connection"),
    ("ping_timeout", float, 20.0, "seconds to wait for the pong before dropping the connection"),
    ("max_message_bytes", int, 16384, "largest message body in UTF-8 bytes (else too_large)"),
    ("max_frame_bytes", int, 65536, "largest frame or reassembled message (else close 1009)"),
    ("rate", float, 100.0, "requests per second per connection (token bucket refill)"),
    ("burst", float, 200.0, "token bucket size per connection"),
    ("rate_close_after", int, 100, "consecutive rate_limited replies before closing with 1008"),
    ("close_timeout", float, 2.0, "seconds to wait for the peer's CLOSE after the server sends one"),
    ("auth_timeout", float, 10.0, "seconds a connection may stay unauthenticated"),
    ("login_failures", int, 5, "failed logins per user name in the window before rate_limited "
                               "(per address: 4 times this)"),
    ("login_window", float, 60.0, "seconds of the failed-login window"),
    ("max_pending_hashes", int, 64, "password hashes queued at most (signup/login beyond: rate_limited)"),
    ("max_group_members", int, 1000, "members a group may have at most (else too_large)"),
    ("presence_grace", float, 2.0, "seconds over which presence changes are coalesced"),
    ("typing_interval", float, 2.0, "seconds between forwarded typing events per user and conversation"),
    ("map_size", int, 64 * GiB, "LMDB map size in bytes (a full map answers unavailable)"),
    ("write_buffer_limit", int, 8 * MiB, "unsent bytes per connection before it is closed with 1013"),
    ("max_batch", int, 1024, "writer jobs per commit at most"),
    ("metrics", bool, True, "collect and serve /metrics"),
    ("unsafe_no_sync", bool, False, "BENCH ONLY: commit without fsync; a crash of the OS can lose "
                                    "acknowledged messages"),
    ("log_level", str, "info", "debug, info, warning or error"),
    ("echo_path", str, "", "TESTING: also serve a WebSocket echo endpoint at this path (e.g. /echo) "
                           "through the chat's own frame layer, for conformance suites; off when empty"),
]

# push notifications (chatsrv/push.py)
OPTIONS += [
    ("vapid_subject", str, "", "VAPID subject, a mailto: address or https: URL identifying you to push "
                               "services; required for push notifications to be sent"),
    ("push_allow_http", bool, False, "accept http: push endpoints and private or loopback addresses "
                                     "(tests, self-hosted push services on a private network)"),
    ("push_grace", float, 0.0, "seconds to wait after a message before pushing to a recipient with no "
                               "connected device (a device that reconnects meanwhile cancels the push)"),
    ("push_system", bool, False, "also push system messages (joins, renames...)"),
    ("push_ttl", int, 86400, "seconds a push service keeps an undelivered push (TTL header)"),
    ("push_workers", int, 2, "threads that encrypt and send pushes"),
    ("push_queue", int, 10000, "pushes queued in memory at most; beyond, the oldest are dropped"),
    ("push_retries", int, 3, "retries of a failed push (network error, 429, 5xx), with backoff"),
    ("push_retry_delay", float, 1.0, "seconds before the first retry; doubles for each further one"),
    ("push_timeout", float, 10.0, "seconds to connect to, and to wait for, a push service"),
]


def _origins(self):
    """The Origins allowed on the upgrade: the server's own, plus the configured ones."""
    own = {f"http://{self.host}:{self.port}", f"http://localhost:{self.port}", f"http://127.0.0.1:{self.port}"}
    return own | set(self.allowed_origin)


def _field(typ, default):
    if typ is list:
        return dataclasses.field(default_factory=lambda: list(default))
    return dataclasses.field(default=default)


Config = dataclasses.make_dataclass(
    "Config", [(name, typ, _field(typ, default)) for name, typ, default, _ in OPTIONS],
    namespace={"origins": _origins})
