"""proto.check.send_kind (the core's send fast path) against proto's Parser: both
entrances into `send` accept exactly the same frames."""
import itertools

import orjson
import pytest

from chatsrv import proto as P
from chatsrv.proto import check

MAX_BODY = 16
parser = P.Parser(MAX_BODY)

IDS = [None, 7, "r1", 1.5, True, [1]]
BODIES = [None, "", "hi", "a" * 16, "a" * 17, "é" * 8, "é" * 9, 5, ["x"]]
CIDS = [None, "", "c", "c" * 64, "c" * 65, 3]
TOS = [None, "bob", "Bob", "ab", "b" * 32, "b" * 33, "bo b", "bob_1", 7]
CONVS = [None, "", "d:alice:bob", "g:x", "c" * 100, "c" * 101, 9]


def parsed(obj):
    try:
        return parser.parse(orjson.dumps(obj))
    except P.ProtocolError:
        return None


@pytest.mark.parametrize("rid", IDS)
def test_fast_path_accepts_what_the_parser_accepts(rid):
    for body, cid, to, conv in itertools.product(BODIES, CIDS, TOS, CONVS):
        obj = {"op": "send"}
        for k, v in (("id", rid), ("body", body), ("cid", cid), ("to", to), ("conv", conv)):
            if v is not None:
                obj[k] = v
        obj = orjson.loads(orjson.dumps(obj))      # the core sees what orjson decoded
        req = parsed(obj)
        kind = check.send_kind(obj, MAX_BODY)
        if req is None:
            assert kind == check.SEND_NOT, obj
        else:
            assert kind == (check.SEND_TO if req.to is not None else check.SEND_CONV), obj


def test_other_ops_never_take_the_fast_path():
    for op in ("ack", "history", "sendx", None, 5):
        assert check.send_kind({"op": op, "to": "bob", "body": "x", "cid": "c"}, MAX_BODY) == check.SEND_NOT


@pytest.mark.parametrize("name,ok", [("abc", True), ("a_1" * 10 + "xy", True), ("ab", False), ("a" * 33, False),
                                     ("abC", False), ("ab-c", False), ("abç", False), (None, False), (123, False)])
def test_user_name_rule(name, ok):
    assert check.is_user_name(name) is ok
