"""Every setting and limit of the server, with its default, in one table, and how the
effective value of each is found: a TOML file, overridden by CHATSRV_<NAME> in the
environment, overridden by a command-line flag.

The CLI builds its flags from OPTIONS, docs/protocol.md lists the same names, and
tests and benchmarks build a Config directly. Values are parsed here and only here:
a bad one is a ConfigError naming where it came from, never a traceback.
"""
import dataclasses
import difflib
import math
import re
import tomllib
from urllib.parse import urlsplit

GiB = 1 << 30
MiB = 1 << 20


class ConfigError(Exception):
    """An operator's mistake in a setting: the message is one line, fit to print as is."""


class Unit:
    """A setting type written with units; parse() takes a TOML value or a string."""

    def __init__(self, name, metavar, parse, show):
        self.__name__ = name
        self.metavar = metavar
        self.parse = parse
        self.show = show        # value -> the shortest exact string parse() reads back


_SIZE_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40,
               "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)\s*$", re.I)


def _size(v):
    if isinstance(v, bool):
        raise ValueError("expected a size such as 16384, 512KiB, 64M or 1G")
    if isinstance(v, int):
        n = v
    else:
        m = _SIZE_RE.match(str(v))
        unit = m.group(2).lower() if m else None
        if unit is not None and unit.endswith("ib"):
            unit = unit[0]          # KiB, MiB... are the binary K, M
        if m is None or unit not in _SIZE_UNITS:
            raise ValueError("expected a size such as 16384, 512KiB, 64M or 1G")
        n = float(m.group(1)) * _SIZE_UNITS[unit]
        if n != int(n):
            raise ValueError("a size must be a whole number of bytes")
        n = int(n)
    if n < 0:
        raise ValueError("a size cannot be negative")
    return n


def _show_size(n):
    for suffix, k in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n and n % k == 0:
            return f"{n // k}{suffix}"
    return str(n)


_TIME_UNITS = {"ms": 0.001, "s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}
_TIME_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|min|s|m|h|d)", re.I)


def _seconds(v):
    if isinstance(v, bool):
        raise ValueError("expected a time such as 30, 30s, 500ms, 2m or 1h")
    if isinstance(v, (int, float)):
        s = float(v)
    else:
        text = str(v).strip()
        try:
            s = float(text)                 # plain seconds
        except ValueError:
            parts = _TIME_PART.findall(text)
            if not text or _TIME_PART.sub("", text).strip():
                raise ValueError("expected a time such as 30, 30s, 500ms, 2m or 1h") from None
            s = sum(float(n) * _TIME_UNITS[u.lower()] for n, u in parts)
    if not math.isfinite(s) or s < 0:
        raise ValueError("a time cannot be negative")
    return s


def _show_seconds(s):
    for suffix, k in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= k and s % k == 0:
            return f"{int(s // k)}{suffix}"
    return f"{s:g}s"


def _address(v):
    """HOST:PORT ("" for none); an IPv6 host in brackets ([::1]:9101)."""
    if not isinstance(v, str):
        raise ValueError(f"expected HOST:PORT, got {v!r}")
    if v == "":
        return v
    host, _, port = v.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536 or host.strip("[]") == "":
        raise ValueError(f"expected HOST:PORT such as 127.0.0.1:9101, got {v!r}")
    return v


def split_address(v):
    host, _, port = v.rpartition(":")
    return host.strip("[]"), int(port)


SIZE = Unit("size", "SIZE", _size, _show_size)
def _whole_seconds(v):
    s = _seconds(v)
    if s != int(s):
        raise ValueError("expected whole seconds, such as 3600, 90m or 1d")
    return int(s)


ADDRESS = Unit("address", "HOST:PORT", _address, str)
SECONDS = Unit("seconds", "TIME", _seconds, _show_seconds)
WHOLE_SECONDS = Unit("whole seconds", "TIME", _whole_seconds, _show_seconds)

# name, type, default, help. Types: str, int, float, bool, list (of str), SIZE (bytes, with
# units), SECONDS (with units; WHOLE_SECONDS: an int), ADDRESS (HOST:PORT). Numbers are never negative.
OPTIONS = [
    ("host", str, "127.0.0.1", "address to listen on"),
    ("port", int, 8080, "TCP port (WebSocket /ws, /healthz, /metrics, the web client)"),
    ("data", str, "./data", "data directory (LMDB and key files)"),
    ("allowed_origin", list, [], "extra allowed Origin for the WebSocket upgrade (repeatable; "
                                 "env: comma-separated); the server's own origins are always allowed"),
    ("trusted_proxy", list, [], "address of a reverse proxy (repeatable; env: comma-separated) whose "
                                "X-Forwarded-For names the client, for the per-address login throttle"),
    ("signup", bool, True, "anyone may sign up; off (--no-signup): accounts are made with `chatsrv user add`"),
    ("ping_interval", SECONDS, 20.0, "silence on a connection before the server pings it"),
    ("ping_timeout", SECONDS, 20.0, "time to wait for the pong before dropping the connection"),
    ("max_message_bytes", SIZE, 16384, "largest message body in UTF-8 bytes (else too_large)"),
    ("max_frame_bytes", SIZE, 65536, "largest frame or reassembled message (else close 1009)"),
    ("fragment_timeout", SECONDS, 30.0, "time a client may take to finish a fragmented message (else close 1008)"),
    ("max_unfinished_bytes", SIZE, 64 * MiB, "bytes of unfinished fragmented messages held across all "
                                             "connections at most (a fragment beyond: close 1013)"),
    ("rate", float, 100.0, "requests per second per connection (token bucket refill)"),
    ("burst", float, 200.0, "token bucket size per connection"),
    ("rate_close_after", int, 100, "consecutive rate_limited replies before closing with 1008"),
    ("close_timeout", SECONDS, 2.0, "time to wait for the peer's CLOSE after the server sends one"),
    ("drain_timeout", SECONDS, 30.0, "then time a closed connection's last output (about 256 KiB and "
                                     "the CLOSE) may wait for a peer that stopped reading, before a reset"),
    ("auth_timeout", SECONDS, 10.0, "time a connection may stay unauthenticated"),
    ("login_failures", int, 5, "failed logins per user name in the window before rate_limited "
                               "(per address: 4 times this)"),
    ("login_window", SECONDS, 60.0, "length of the failed-login window"),
    ("max_pending_hashes", int, 64, "password hashes queued at most (signup/login beyond: rate_limited)"),
    ("max_group_members", int, 1000, "members a group may have at most (else too_large)"),
    ("presence_grace", SECONDS, 2.0, "window over which presence changes are coalesced"),
    ("typing_interval", SECONDS, 2.0, "time between forwarded typing events per user and conversation"),
    ("map_size", SIZE, 64 * GiB, "LMDB map size (a full map answers unavailable)"),
    ("write_buffer_limit", SIZE, 8 * MiB, "unsent bytes per connection before it is closed with 1013"),
    ("max_batch", int, 1024, "writer jobs per commit at most"),
    ("metrics", bool, True, "collect and serve /metrics"),
    ("metrics_listen", ADDRESS, "", "also serve /metrics (and /healthz) on this HOST:PORT, such as "
                                     "127.0.0.1:9101, for Prometheus on this box"),
    ("metrics_public", bool, True, "serve /metrics on the main port too; off: only on --metrics-listen "
                                   "(otherwise block /metrics at the proxy)"),
    ("unsafe_no_sync", bool, False, "BENCH ONLY: commit without fsync; a crash of the OS can lose "
                                    "acknowledged messages"),
    ("log_level", str, "info", "debug, info, warning or error"),
    ("log_format", str, "text", "text (a line of key=value pairs) or json (one object per line)"),
    ("echo_path", str, "", "TESTING: also serve a WebSocket echo endpoint at this path (e.g. /echo) "
                           "through the chat's own frame layer, for conformance suites; off when empty"),
]

# push notifications (chatsrv/push.py)
OPTIONS += [
    ("vapid_subject", str, "", "VAPID subject, a mailto: address or https: URL identifying you to push "
                               "services; required for push notifications to be sent"),
    ("push_allow_http", bool, False, "accept http: push endpoints and private or loopback addresses "
                                     "(tests, self-hosted push services on a private network)"),
    ("push_grace", SECONDS, 0.0, "wait after a message before pushing to a recipient with no "
                                 "connected device (a device that reconnects meanwhile cancels the push)"),
    ("push_system", bool, False, "also push system messages (joins, renames...)"),
    ("push_ttl", WHOLE_SECONDS, 86400, "how long a push service keeps an undelivered push (TTL header)"),
    ("push_workers", int, 2, "threads that encrypt and send pushes"),
    ("push_queue", int, 10000, "pushes queued in memory at most; beyond, the oldest are dropped"),
    ("push_retries", int, 3, "retries of a failed push (network error, 429, 5xx), with backoff"),
    ("push_retry_delay", SECONDS, 1.0, "wait before the first retry; doubles for each further one"),
    ("push_timeout", SECONDS, 10.0, "time to connect to, and to wait for, a push service"),
]

# attachments (chatsrv/files/, docs/protocol.md §13)
OPTIONS += [
    ("max_file_bytes", SIZE, 25 * MiB, "largest attachment (else too_large)"),
    ("file_quota", SIZE, 1 * GiB, "attachments each user may keep stored, 0 for no limit (else too_large)"),
    ("max_uploads", int, 4, "uploads in flight per connection (else rate_limited)"),
    ("max_image_pixels", int, 64_000_000, "width x height x frames of an image at most, checked before "
                                          "decoding (else too_large); bounds the memory one image takes"),
    ("file_url_ttl", WHOLE_SECONDS, 600, "how long a signed download URL stays valid"),
    ("unsent_file_ttl", WHOLE_SECONDS, 86400, "how long an uploaded file that no message carries is kept"),
    ("max_attachments", int, 10, "attachments one message may carry at most (else too_large)"),
]


def vapid_subject_ok(subject):
    """A VAPID subject is a mailto: address or an https: URL (RFC 8292 2.1)."""
    if not subject:
        return False
    if subject.startswith("mailto:"):
        return re.fullmatch(r"mailto:[^@\s]+@[^@\s]+", subject) is not None
    if subject.startswith("https://"):
        try:
            return bool(urlsplit(subject).hostname)
        except ValueError:
            return False
    return False


# values a setting may take, beyond its type
CHOICES = {"log_level": ("debug", "info", "warning", "error"), "log_format": ("text", "json")}
CHECKS = {"vapid_subject": (lambda v: v == "" or vapid_subject_ok(v),
                            "expected a mailto: address or an https: URL")}
RANGES = {"port": (0, 65535), "push_workers": (1, 64), "max_batch": (1, 1 << 20),
          "map_size": (MiB, math.inf),     # below about 1 MiB LMDB cannot even make its tables
          "max_file_bytes": (1, 1 << 40), "max_uploads": (1, 1024), "max_image_pixels": (1, 10**10),
          "file_url_ttl": (1, 10**7), "unsent_file_ttl": (1, 10**9), "max_attachments": (1, 1000)}

BY_NAME = {o[0]: o for o in OPTIONS}


def env_name(name):
    return "CHATSRV_" + name.upper()


def flag_name(name):
    return "--" + name.replace("_", "-")


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def parse(name, raw):
    """The value of setting `name` from a string (flag, environment) or a TOML value.
    Raises ValueError with what was expected."""
    typ = BY_NAME[name][1]
    if typ is bool:
        if isinstance(raw, bool):
            return raw
        s = str(raw).strip().lower()
        if s in _TRUE or s in _FALSE:
            return s in _TRUE
        raise ValueError(f"expected true or false, got {raw!r}")
    if typ is list:
        if isinstance(raw, list) and all(isinstance(x, str) for x in raw):
            return list(raw)
        if isinstance(raw, str):
            return [x for x in raw.replace(",", " ").split() if x]
        raise ValueError(f"expected a list of strings, got {raw!r}")
    if isinstance(typ, Unit):
        value = typ.parse(raw)
    elif typ is str:
        if not isinstance(raw, str):
            raise ValueError(f"expected a string, got {raw!r}")
        value = raw
    elif typ is int:
        if isinstance(raw, bool) or isinstance(raw, float):
            raise ValueError(f"expected a whole number, got {raw!r}")
        try:
            value = int(raw)
        except ValueError:
            raise ValueError(f"expected a whole number, got {raw!r}") from None
    else:
        if isinstance(raw, bool):
            raise ValueError(f"expected a number, got {raw!r}")
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"expected a number, got {raw!r}") from None
        if not math.isfinite(value):
            raise ValueError(f"expected a finite number, got {raw!r}")
    if name in CHECKS and not CHECKS[name][0](value):
        raise ValueError(f"{CHECKS[name][1]}, got {raw!r}")
    if name in CHOICES and value not in CHOICES[name]:
        raise ValueError(f"expected one of {', '.join(CHOICES[name])}, got {raw!r}")
    if isinstance(value, (int, float)):
        lo, hi = RANGES.get(name, (0, math.inf))
        if not lo <= value <= hi:
            if hi != math.inf:
                raise ValueError(f"{raw!r} is out of range ({lo} to {hi})")
            if lo > 0:
                shown = typ.show(lo) if isinstance(typ, Unit) else lo
                raise ValueError(f"must be at least {shown}, got {raw!r}")
            raise ValueError(f"cannot be negative, got {raw!r}")
    return value


def show(name, value):
    """The value as TOML (what --print-config writes and --config reads back)."""
    typ = BY_NAME[name][1]
    if isinstance(typ, Unit):
        return '"' + typ.show(value) + '"'
    if typ is bool:
        return "true" if value else "false"
    if typ is list or typ is str:
        import json

        return json.dumps(value, ensure_ascii=False)
    return repr(value)


def read_file(path):
    """{name: raw value} from a TOML file; keys may use dashes or underscores."""
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file {path}: not found") from None
    except OSError as e:
        raise ConfigError(f"config file {path}: {e.strerror.lower()}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {path}: not valid TOML: {e}") from None
    out = {}
    for key, raw in doc.items():
        name = key.replace("-", "_")
        if name not in BY_NAME:
            near = difflib.get_close_matches(name, BY_NAME, 1)
            hint = f" (did you mean {near[0]}?)" if near else ""
            raise ConfigError(f"config file {path}: unknown setting {key!r}{hint}")
        out[name] = raw
    return out


def resolve(path=None, env=None, flags=None):
    """(Config, sources): each setting from the highest of flags, environment, file, default.
    sources[name] says where its value came from ("default", "file PATH", "env NAME", "flag --x")."""
    env = env or {}
    flags = flags or {}
    layers = []
    if path:
        layers.append((f"file {path}", read_file(path)))
    layers.append(("env", {n: env[env_name(n)] for n in BY_NAME if env_name(n) in env}))
    layers.append(("flag", {n: v for n, v in flags.items() if v is not None}))
    values, sources = {}, {}
    for name, _, default, _ in OPTIONS:
        values[name], sources[name] = default, "default"
        for where, given in layers:
            if name in given:
                label = {"env": f"env {env_name(name)}", "flag": f"flag {flag_name(name)}"}.get(where, where)
                try:
                    values[name] = parse(name, given[name])
                except ValueError as e:
                    raise ConfigError(f"{label}: {e}") from None
                sources[name] = label
    return Config(**values), sources


def _origins(self):
    """The Origins allowed on the upgrade: the server's own, plus the configured ones."""
    own = {f"http://{self.host}:{self.port}", f"http://localhost:{self.port}", f"http://127.0.0.1:{self.port}"}
    return own | set(self.allowed_origin)


def _field(typ, default):
    if typ is list:
        return dataclasses.field(default_factory=lambda: list(default))
    return dataclasses.field(default=default)


Config = dataclasses.make_dataclass(
    "Config", [(name, object if isinstance(typ, Unit) else typ, _field(typ, default))
               for name, typ, default, _ in OPTIONS],
    namespace={"origins": _origins})
