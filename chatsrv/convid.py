"""Conversation ids: the one place that builds and parses them (docs/protocol.md 5.1).

A direct conversation is `d:` + the two user names in order, a group is `g:` + 16
random base32 characters. Clients treat ids as opaque; the server's layers (domain,
store, core) share this leaf module, so it imports nothing of chatsrv.
"""
import base64
import os

DIRECT = "d:"
GROUP = "g:"
DIRECT_B = b"d:"     # the store filters inbox entries by this prefix without decoding them


def direct(a, b):
    """The id of the direct conversation of users a and b (the same for both)."""
    return f"d:{a}:{b}" if a < b else f"d:{b}:{a}"


def new_group():
    return GROUP + base64.b32encode(os.urandom(10)).decode().lower()


def is_direct(conv):
    return conv.startswith(DIRECT)


def is_group(conv):
    return conv.startswith(GROUP)


def peer(conv, user):
    """The other member of a direct conversation of user."""
    a, b = conv[2:].split(":")
    return b if a == user else a
