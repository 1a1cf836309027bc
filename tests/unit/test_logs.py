"""chatsrv/logs.py: the JSON formatter keeps the message whole, lifts its key=value pairs
into fields without clobbering its own, and carries a traceback in one field."""
import json
import logging

from chatsrv.logs import JsonFormatter


def record(msg, *args, exc_info=None):
    return logging.LogRecord("chatsrv.hub", logging.INFO, __file__, 1, msg, args, exc_info)


def test_fields_from_the_message():
    out = json.loads(JsonFormatter().format(
        record("push subscription gone (%d) user=%s device=%s: deleted level=x", 410, "ann", "phone")))
    assert out["msg"] == "push subscription gone (410) user=ann device=phone: deleted level=x"
    assert (out["user"], out["device"], out["level"], out["logger"]) == ("ann", "phone", "info", "chatsrv.hub")
    assert out["ts"].endswith("Z") and "T" in out["ts"]


def test_exception_in_one_field():
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        import sys

        line = JsonFormatter().format(record("op %s failed", "send", exc_info=sys.exc_info()))
    assert "\n" not in line
    out = json.loads(line)
    assert out["msg"] == "op send failed" and "RuntimeError: boom" in out["exc"]
