"""Requests of protocol v1: a JSON text frame to a typed request, or a ProtocolError.

The only place that decides what a well-formed request is: each field's validator
raises the message a client sees, built on the compiled rules in check.pyx that the
core's send fast path uses too. Pure functions and small classes; no sockets, no
storage, no knowledge of who is a member of what.
"""
import re

import orjson

from . import check
from .errors import BAD_REQUEST, TOO_LARGE, ProtocolError

DEVICE_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
CONV_MAX = check.CONV_MAX
CID_MAX = check.CID_MAX
HISTORY_DEFAULT = 50
HISTORY_MAX = 200
USER_LIST_MAX = 10000    # a bound on the work one request can ask for; group size has its own limit


# --- field validators: each takes (name, value) and returns the clean value or raises ValueError


def _str(name, v, lo, hi):
    if type(v) is not str:
        raise ValueError(f"{name} must be a string")
    if not check.is_text(v, lo, hi):
        raise ValueError(f"{name} must be {lo} to {hi} characters")
    return v


def user_name(name, v):
    if not check.is_user_name(v):
        raise ValueError(f"{name} must match ^[a-z0-9_]{{{check.USER_MIN},{check.USER_MAX}}}$")
    return v


def password(name, v):
    return _str(name, v, 8, 256)


def device(name, v):
    if type(v) is not str or not DEVICE_RE.fullmatch(v):
        raise ValueError(f"{name} must match ^[A-Za-z0-9_.-]{{1,64}}$")
    return v


def cid(name, v):
    return _str(name, v, 1, CID_MAX)


def conv(name, v):
    return _str(name, v, 1, CONV_MAX)


def token(name, v):
    return _str(name, v, 1, 512)


def body(name, v):
    # The byte limit is enforced by Parser (it is configurable); here only the type.
    if not check.is_body(v):
        raise ValueError(f"{name} must be a non-empty string")
    return v


def seqno(name, v):
    if type(v) is not int or v < 0:
        raise ValueError(f"{name} must be a non-negative integer")
    return v


def group_name(name, v):
    return _str(name, v, 1, 100)


def user_list(name, v):
    if type(v) is not list or len(v) > USER_LIST_MAX:
        raise ValueError(f"{name} must be a list of at most {USER_LIST_MAX} user names")
    for u in v:
        user_name(name, u)
    return list(dict.fromkeys(v))   # drop repeats, keep order


def nonempty_user_list(name, v):
    v = user_list(name, v)
    if not v:
        raise ValueError(f"{name} must not be empty")
    return v


def flag(name, v):
    if type(v) is not bool:
        raise ValueError(f"{name} must be true or false")
    return v


def limit(name, v):
    if type(v) is not int or v < 1:
        raise ValueError(f"{name} must be a positive integer")
    return min(v, HISTORY_MAX)


# --- typed requests


class Request:
    """A parsed request: `rid`, `op`, and one attribute per field of its op."""

    op = None
    # field name -> (validator, required, default)
    fields = {}
    needs_auth = True

    def __init__(self, rid, **kw):
        self.rid = rid
        self.__dict__.update(kw)

    @classmethod
    def from_obj(cls, rid, obj):
        kw = {}
        for name, (check, required, default) in cls.fields.items():
            v = obj.get(name)
            if v is None:
                if required:
                    raise ProtocolError(rid, BAD_REQUEST, f"{name} is required")
                kw[name] = default
                continue
            try:
                kw[name] = check(name, v)
            except ValueError as e:
                raise ProtocolError(rid, BAD_REQUEST, str(e)) from None
        req = cls(rid, **kw)
        req.check(rid)
        return req

    def check(self, rid):
        """Cross-field rules; raise ProtocolError."""

    def __repr__(self):
        # Never prints field values: they may hold passwords, tokens or bodies.
        return f"<{type(self).__name__} id={self.rid!r}>"


OPS = {}


def op(op_name, needs_auth=True, **fields):
    def wrap(cls):
        cls.op = op_name
        cls.needs_auth = needs_auth
        cls.fields = fields
        OPS[op_name] = cls
        return cls

    return wrap


REQ = True
OPT = False


@op("signup", needs_auth=False, user=(user_name, REQ, None), password=(password, REQ, None))
class Signup(Request):
    pass


@op("login", needs_auth=False, user=(user_name, REQ, None), password=(password, REQ, None),
    device=(device, REQ, None))
class Login(Request):
    pass


@op("auth", needs_auth=False, token=(token, REQ, None))
class Auth(Request):
    pass


@op("send", to=(user_name, OPT, None), conv=(conv, OPT, None), body=(body, REQ, None), cid=(cid, REQ, None))
class Send(Request):
    def check(self, rid):
        if (self.to is None) == (self.conv is None):
            raise ProtocolError(rid, BAD_REQUEST, "send takes exactly one of to and conv")


@op("ack", upto=(seqno, REQ, None))
class Ack(Request):
    pass


@op("history", conv=(conv, REQ, None), before=(seqno, OPT, None), limit=(limit, OPT, HISTORY_DEFAULT),
    include_left=(flag, OPT, False))
class History(Request):
    pass


@op("convs", include_left=(flag, OPT, False))
class Convs(Request):
    pass


@op("logout")
class Logout(Request):
    pass


@op("settings", needs_auth=False)
class Settings(Request):
    pass


@op("password_change", old=(password, REQ, None), new=(password, REQ, None), logout_others=(flag, OPT, False))
class PasswordChange(Request):
    pass


@op("group_create", name=(group_name, REQ, None), members=(user_list, REQ, None))
class GroupCreate(Request):
    pass


@op("group_add", conv=(conv, REQ, None), users=(nonempty_user_list, REQ, None))
class GroupAdd(Request):
    pass


@op("group_remove", conv=(conv, REQ, None), user=(user_name, REQ, None))
class GroupRemove(Request):
    pass


@op("group_leave", conv=(conv, REQ, None))
class GroupLeave(Request):
    pass


@op("group_rename", conv=(conv, REQ, None), name=(group_name, REQ, None))
class GroupRename(Request):
    pass


@op("group_info", conv=(conv, REQ, None))
class GroupInfo(Request):
    pass


@op("watch", users=(nonempty_user_list, REQ, None))
class Watch(Request):
    pass


@op("unwatch", users=(nonempty_user_list, REQ, None))
class Unwatch(Request):
    pass


@op("typing", conv=(conv, REQ, None))
class Typing(Request):
    pass


@op("read", conv=(conv, REQ, None), seq=(seqno, REQ, None))
class Read(Request):
    pass


class Parser:
    """Turns one text frame into a Request, or raises ProtocolError."""

    def __init__(self, max_body_bytes):
        self.max_body_bytes = max_body_bytes

    def parse(self, text):
        try:
            obj = orjson.loads(text)
        except orjson.JSONDecodeError:
            raise ProtocolError(None, BAD_REQUEST, "frame is not valid JSON") from None
        return self.parse_obj(obj)

    def parse_obj(self, obj):
        """The same as parse(), for a frame already decoded from JSON."""
        if type(obj) is not dict:
            raise ProtocolError(None, BAD_REQUEST, "frame must be a JSON object")
        rid = obj.get("id")
        if not check.is_rid(rid):
            raise ProtocolError(None, BAD_REQUEST, "id must be an integer or a string")
        name = obj.get("op")
        cls = OPS.get(name) if type(name) is str else None
        if cls is None:
            raise ProtocolError(rid, BAD_REQUEST, "unknown op" if name is not None else "op is required")
        req = cls.from_obj(rid, obj)
        b = getattr(req, "body", None)
        if b is not None and not check.body_fits(b, self.max_body_bytes):
            raise ProtocolError(rid, TOO_LARGE, f"body is over {self.max_body_bytes} bytes")
        return req


# --- push notification fields (Web Push; the sending side is chatsrv/push)

PUSH_ENDPOINT_MAX = 2048
MUTE_UNTIL_MAX = (1 << 63) - 1


def b64url_decode(s):
    """Base64url with or without padding; raises ValueError on anything else."""
    if type(s) is not str or not s or len(s) > 256 or not re.fullmatch(r"[A-Za-z0-9_-]+={0,2}", s):
        raise ValueError("not base64url")
    import base64
    import binascii

    try:
        return base64.urlsafe_b64decode(s.rstrip("=") + "=" * (-len(s.rstrip("=")) % 4))
    except (binascii.Error, ValueError):
        raise ValueError("not base64url") from None


def push_endpoint(name, v):
    """Shape of a push endpoint URL: an absolute http(s) URL with a host, no credentials,
    no fragment. Whether http and private addresses are allowed is the server's policy
    (see push_endpoint_policy)."""
    from urllib.parse import urlsplit

    if type(v) is not str or not v or len(v) > PUSH_ENDPOINT_MAX:
        raise ValueError(f"{name} must be a URL of at most {PUSH_ENDPOINT_MAX} characters")
    if not v.isascii() or any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in v):
        raise ValueError(f"{name} must be an ASCII URL without spaces")
    try:
        u = urlsplit(v)
        port = u.port
    except ValueError:
        raise ValueError(f"{name} is not a valid URL") from None
    if u.scheme not in ("https", "http"):
        raise ValueError(f"{name} must be an https URL")
    if not u.hostname or u.username is not None or u.password is not None or "@" in u.netloc:
        raise ValueError(f"{name} must name a host and carry no credentials")
    if u.fragment or v.endswith("#"):
        raise ValueError(f"{name} must not have a fragment")
    if port == 0:
        raise ValueError(f"{name} has an invalid port")
    return v


def push_endpoint_policy(url, allow_http):
    """None if the server may post to url, else the reason. Without allow_http only
    https to a public host is allowed (no loopback, private or link-local address
    literals, no localhost), so subscriptions cannot aim the server at its own network."""
    import ipaddress
    from urllib.parse import urlsplit

    if allow_http:
        return None
    u = urlsplit(url)
    if u.scheme != "https":
        return "endpoint must be an https URL"
    host = u.hostname.rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return "endpoint must be a public host"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    if not ip.is_global:
        return "endpoint must be a public host"
    return None


def push_keys(name, v):
    """{p256dh, auth} of a PushSubscription: a P-256 public key (uncompressed point, 65
    bytes, on the curve) and a 16-byte auth secret, both base64url."""
    if type(v) is not dict:
        raise ValueError(f"{name} must be an object with p256dh and auth")
    p, a = v.get("p256dh"), v.get("auth")
    try:
        raw = b64url_decode(p)
    except ValueError:
        raise ValueError(f"{name}.p256dh must be base64url") from None
    if len(raw) != 65 or raw[0] != 4:
        raise ValueError(f"{name}.p256dh must be an uncompressed P-256 point (65 bytes)")
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
    except ValueError:
        raise ValueError(f"{name}.p256dh is not a point on P-256") from None
    try:
        secret = b64url_decode(a)
    except ValueError:
        raise ValueError(f"{name}.auth must be base64url") from None
    if len(secret) != 16:
        raise ValueError(f"{name}.auth must be 16 bytes")
    return {"p256dh": p.rstrip("="), "auth": a.rstrip("=")}


def mute_until(name, v):
    if type(v) is not int or v < 0 or v > MUTE_UNTIL_MAX:
        raise ValueError(f"{name} must be a non-negative integer (ms since the epoch; 0 unmutes)")
    return v


@op("push_key", needs_auth=False)
class PushKey(Request):
    pass


@op("push_subscribe", endpoint=(push_endpoint, REQ, None), keys=(push_keys, REQ, None))
class PushSubscribe(Request):
    pass


@op("push_unsubscribe")
class PushUnsubscribe(Request):
    pass


@op("mute", conv=(conv, REQ, None), until=(mute_until, REQ, None))
class Mute(Request):
    pass
