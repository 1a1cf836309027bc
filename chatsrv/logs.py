"""How the server's log lines look on stderr: `text` (time, level, logger, then the
message with its key=value pairs) or `json` (one object per line, the message's
key=value pairs also as fields, for a log pipeline). It only formats: what goes into a
message is the caller's business, and callers never pass a token, password or body."""
import datetime
import json
import logging
import re

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_PAIR = re.compile(r"(?<![\w=])([a-z_]+)=([^\s=,;:()]+)")
_RESERVED = frozenset(("ts", "level", "logger", "msg", "exc"))


class JsonFormatter(logging.Formatter):
    """{"ts": ISO 8601 UTC, "level", "logger", "msg", the message's key=value pairs, "exc"}."""

    def format(self, record):
        msg = record.getMessage()
        out = {"ts": datetime.datetime.fromtimestamp(record.created, datetime.timezone.utc)
               .isoformat(timespec="milliseconds").replace("+00:00", "Z"),
               "level": record.levelname.lower(), "logger": record.name, "msg": msg}
        for key, value in _PAIR.findall(msg):
            if key not in _RESERVED:
                out.setdefault(key, value)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def setup(level, fmt):
    """Logs at `level` to stderr in `fmt` ("text" or "json")."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    if level != "debug":
        # picows logs every connection and disconnection at INFO
        logging.getLogger("picows").setLevel(logging.WARNING)
