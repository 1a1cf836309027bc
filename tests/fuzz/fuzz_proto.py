"""atheris target: one client text frame through the protocol parser, as the core hands
it over (JSON decoded once; a frame that is not JSON goes to the parser as text).

Whatever the bytes, the parser returns a well-formed request or raises ProtocolError
with a fixed code, and the reply to it encodes with the request's id. Any other
exception is a finding. An input is either the frame itself, or (first byte odd) a
recipe for one: an op, known or not, with its fields (and strangers) holding values of
every JSON type, the edges of integers among them. The recipes matter: the field rules
are compiled (chatsrv/proto/check.pyx), which atheris cannot see into, so coverage alone
would not tell the fuzzer that a mutated value reached a new rule. Run by tests/unit/test_fuzz_proto.py for a few seconds, by
`make fuzz` for longer:

    python tests/fuzz/fuzz_proto.py CORPUS_DIR -max_total_time=600 -dict=tests/fuzz/proto.dict
"""
import json
import sys

import atheris

with atheris.instrument_imports():
    import orjson

    from chatsrv import proto as P

MAX_BODY = 16384
CODES = {P.BAD_REQUEST, P.UNAUTHORIZED, P.FORBIDDEN, P.NOT_FOUND, P.CONFLICT, P.TOO_LARGE,
         P.RATE_LIMITED, P.UNAVAILABLE, P.INTERNAL}
PARSER = P.Parser(MAX_BODY)

# valid requests of every op: the seed corpus, which the fuzzer mutates
SEEDS = [
    {"id": 1, "op": "signup", "user": "alice", "password": "correct horse"},
    {"id": 2, "op": "login", "user": "alice", "password": "correct horse", "device": "phone-1"},
    {"id": "a", "op": "auth", "token": "q3V0abc.def"},
    {"id": 3, "op": "send", "to": "bob", "body": "hi \u00e9\U0001f600", "cid": "c-1"},
    {"id": 4, "op": "send", "conv": "g:abcdefghijklmnop", "body": "x", "cid": "c-2"},
    {"id": 5, "op": "ack", "upto": 12},
    {"id": 6, "op": "history", "conv": "d:alice:bob", "before": 10, "limit": 20},
    {"id": 7, "op": "convs"},
    {"id": 8, "op": "logout"},
    {"id": 9, "op": "group_create", "name": "Hiking", "members": ["bob", "carol"]},
    {"id": 10, "op": "group_add", "conv": "g:abcdefghijklmnop", "users": ["dave"]},
    {"id": 11, "op": "group_remove", "conv": "g:abcdefghijklmnop", "user": "carol"},
    {"id": 12, "op": "group_leave", "conv": "g:abcdefghijklmnop"},
    {"id": 13, "op": "group_rename", "conv": "g:abcdefghijklmnop", "name": "Climbing"},
    {"id": 14, "op": "group_info", "conv": "g:abcdefghijklmnop"},
    {"id": 15, "op": "watch", "users": ["bob"]},
    {"id": 16, "op": "unwatch", "users": ["bob"]},
    {"id": 17, "op": "typing", "conv": "d:alice:bob"},
    {"id": 18, "op": "read", "conv": "d:alice:bob", "seq": 3},
    {"id": 19, "op": "history", "conv": "g:abcdefghijklmnop", "include_left": True},
    {"id": 20, "op": "convs", "include_left": False},
    {"id": 21, "op": "settings"},
    {"id": 22, "op": "password_change", "old": "correct horse", "new": "battery staple", "logout_others": True},
    {"id": 23, "op": "push_key"},
    {"id": 24, "op": "push_subscribe", "endpoint": "https://push.example/abc",
     "keys": {"p256dh": "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM",
              "auth": "tBHItJI5svbpez7KI4CCXg"}},
    {"id": 25, "op": "push_unsubscribe"},
    {"id": 26, "op": "mute", "conv": "d:alice:bob", "until": 1732752000123},
]


OP_NAMES = sorted(P.OPS) + ["", "nope", "SEND"]
STRANGERS = ["id", "op", "x", ""]
INTS = [0, 1, -1, 2, 12, 199, 200, 201, 2 ** 31, 2 ** 53 + 1, 2 ** 63 - 1, 2 ** 63, 2 ** 64 - 1, 2 ** 64, -2 ** 63,
        -2 ** 63 - 1, 10 ** 30]


def value(fdp, depth: int):
    kind = fdp.ConsumeIntInRange(0, 9 if depth else 6)
    if kind == 0:
        return None
    if kind == 1:
        return fdp.ConsumeBool()
    if kind == 2:
        return fdp.PickValueInList(INTS)
    if kind == 3:
        return fdp.ConsumeInt(9)
    if kind == 4:
        return fdp.ConsumeFloat()
    if kind == 5:
        return fdp.ConsumeUnicode(fdp.ConsumeIntInRange(0, 80))
    if kind == 6:
        return fdp.PickValueInList(["alice", "bob", "d:alice:bob", "g:abcdefghijklmnop", "a" * 65, "x" * 20000,
                                    "correct horse", "\u0000", "é" * 5000])
    if kind in (7, 8):
        return [value(fdp, depth - 1) for _ in range(fdp.ConsumeIntInRange(0, 4))]
    return {fdp.ConsumeUnicode(4): value(fdp, depth - 1) for _ in range(fdp.ConsumeIntInRange(0, 3))}


def frame(data: bytes) -> bytes:
    """The input as a frame, or the frame its recipe makes."""
    if not data or not data[0] & 1:
        return data[1:]
    fdp = atheris.FuzzedDataProvider(data[1:])
    obj = {}
    if fdp.ConsumeBool():
        obj["id"] = value(fdp, 1)
    op = fdp.PickValueInList(OP_NAMES)
    if fdp.ConsumeIntInRange(0, 15):
        obj["op"] = op if fdp.ConsumeIntInRange(0, 7) else value(fdp, 1)
    for name in list(P.OPS[op].fields if op in P.OPS else ()) + STRANGERS:
        if fdp.ConsumeIntInRange(0, 3):
            obj[name] = value(fdp, 2)
    # the stdlib encoder: integers of any size, and lone surrogates as \u escapes
    return json.dumps(obj, ensure_ascii=fdp.ConsumeBool(), allow_nan=True).encode("utf-8", "surrogatepass")


def check(data: bytes) -> None:
    data = frame(data)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return                      # the frame layer closes with 1007 before any parsing
    try:
        try:
            obj = orjson.loads(text)
        except orjson.JSONDecodeError:
            req = PARSER.parse(text)
        else:
            req = PARSER.parse_obj(obj)
    except P.ProtocolError as e:
        assert e.code in CODES, e.code
        assert e.rid is None or type(e.rid) in (int, str), repr(e.rid)
        assert isinstance(e.msg, str) and e.msg
        reply = orjson.loads(P.err(e.rid, e.code, e.msg))
        assert reply["id"] == e.rid and reply["err"]["code"] == e.code
        return
    assert P.OPS.get(req.op) is type(req), req.op
    assert req.rid is None or type(req.rid) in (int, str), repr(req.rid)
    assert orjson.loads(P.ok(req.rid, {}))["id"] == req.rid
    body = getattr(req, "body", None)
    if body is not None:
        assert type(body) is str and 0 < len(body.encode()) <= MAX_BODY
    assert repr(req) == f"<{type(req).__name__} id={req.rid!r}>"     # never a field's value


def write_seeds(folder: str) -> None:
    import os
    os.makedirs(folder, exist_ok=True)
    for i, s in enumerate(SEEDS):
        with open(os.path.join(folder, f"seed{i:02d}.json"), "wb") as f:
            f.write(b"\0" + orjson.dumps(s))       # first byte even: the frame as it is


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--seeds":
        write_seeds(sys.argv[2])
        return
    atheris.Setup(sys.argv, check)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
