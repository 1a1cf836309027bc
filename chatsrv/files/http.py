"""The headers of a file download. An image is served as the type it was verified
to be, inline; anything else as application/octet-stream with
`Content-Disposition: attachment`, so the server never has a browser render a
user's file as a page, whatever its name or declared type. Every response forbids
sniffing and carries a sandboxing CSP, in case a browser opens it anyway.
"""
from urllib.parse import quote

from .catalog import FileRecord

OPAQUE = "application/octet-stream"


def _disposition(kind, name):
    ascii_name = "".join(c if 32 <= ord(c) < 127 and c not in '"\\%' else "_" for c in name)
    return f"{kind}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"


def headers(rec: FileRecord, thumb=False):
    """The response headers for rec, or for its thumbnail."""
    if thumb:
        ctype, kind = rec.thumb_type or "image/jpeg", "inline"
    elif rec.image:
        ctype, kind = rec.type, "inline"
    else:
        ctype, kind = OPAQUE, "attachment"
    return {
        "Content-Type": ctype,
        "Content-Disposition": _disposition(kind, rec.name),
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
        # private: the URL is per user; immutable: a file's bytes never change
        "Cache-Control": "private, max-age=86400, immutable",
        "Referrer-Policy": "no-referrer",
    }
