"""Signed download URLs: bound to the file, the user and the expiry; refused once
expired or altered; the key made once, 0600."""
import os
import stat

from chatsrv.files import links as L


def split(url):
    path, query = url.split("?", 1)
    return path, query


def test_key_is_made_once_with_mode_0600(tmp_path):
    k = L.load_key(str(tmp_path))
    path = tmp_path / L.KEY_FILE
    assert len(k) == 32 and stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert L.load_key(str(tmp_path)) == k
    os.chmod(path, 0o644)
    assert L.load_key(str(tmp_path)) == k and stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_url_verifies_for_its_file_and_user_until_expiry(tmp_path):
    links = L.Links(L.load_key(str(tmp_path)), ttl=60)
    url, expiry = links.url("abc123", "alice", now=1000)
    assert expiry == 1060 and url.startswith("/files/abc123?")
    assert links.verify(*split(url), now=1059) == ("abc123", False, "alice")
    assert links.verify(*split(url), now=1060) == ("abc123", False, "alice")
    assert links.verify(*split(url), now=1061) is None
    thumb, _ = links.url("abc123", "alice", thumb=True, now=1000)
    assert thumb.startswith("/files/abc123/thumb?")
    assert links.verify(*split(thumb), now=1000) == ("abc123", True, "alice")


def test_any_change_to_the_url_is_refused(tmp_path):
    links = L.Links(L.load_key(str(tmp_path)), ttl=60)
    url, expiry = links.url("abc123", "alice", now=1000)
    path, query = split(url)
    tampered = [
        ("/files/abc124", query),                                  # another file
        (path, query.replace("u=alice", "u=bob")),                 # another user
        (path, query.replace(f"e={expiry}", f"e={expiry + 3600}")),  # a later expiry
        (path, query[:-2] + ("AA" if not query.endswith("AA") else "BB")),  # the signature
        (path, "u=alice&e=1060"),                                  # no signature
        (path, ""),
        (path, query + "&u=bob"),                                  # a second user
        ("/other/abc123", query),
    ]
    for p, q in tampered:
        assert links.verify(p, q, now=1000) is None, (p, q)
    other = L.Links(os.urandom(32), ttl=60)                         # another server's key
    assert other.verify(path, query, now=1000) is None


def test_user_names_are_quoted(tmp_path):
    links = L.Links(b"k" * 32, ttl=5)
    url, _ = links.url("f", "a&e=1", now=0)     # user names are restricted, but the URL must not care
    assert links.verify(*split(url), now=0) == ("f", False, "a&e=1")
