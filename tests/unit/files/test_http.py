"""Download headers: images inline as their verified type, everything else a
download that no browser renders or sniffs, whatever its name or declared type."""
from chatsrv.files import FileRecord
from chatsrv.files.http import headers


def test_non_image_is_an_attachment_of_no_particular_type():
    for typ in ("text/html", "image/svg+xml", "application/pdf"):
        h = headers(FileRecord("f", "alice", "page.html", typ, 5, "a" * 64, 1))
        assert h["Content-Type"] == "application/octet-stream"
        assert h["Content-Disposition"].startswith("attachment;")
        assert h["X-Content-Type-Options"] == "nosniff"
        assert "sandbox" in h["Content-Security-Policy"]


def test_image_and_thumbnail_are_inline_as_their_verified_type():
    rec = FileRecord("f", "alice", "p.png", "image/png", 5, "a" * 64, 1, 10, 10, "b" * 64, "image/jpeg")
    h = headers(rec)
    assert h["Content-Type"] == "image/png" and h["Content-Disposition"].startswith("inline;")
    assert h["X-Content-Type-Options"] == "nosniff"
    assert headers(rec, thumb=True)["Content-Type"] == "image/jpeg"


def test_file_name_cannot_break_out_of_the_header():
    h = headers(FileRecord("f", "alice", 'a"; x=1\r\nSet-Cookie: y.txt', "text/plain", 5, "a" * 64, 1))
    d = h["Content-Disposition"]
    assert "\r" not in d and "\n" not in d and d.count('"') == 2
    assert "filename*=UTF-8''a%22%3B%20x%3D1%0D%0ASet-Cookie%3A%20y.txt" in d
    h = headers(FileRecord("f", "alice", "café €.pdf", "application/pdf", 5, "a" * 64, 1))
    assert "filename*=UTF-8''caf%C3%A9%20%E2%82%AC.pdf" in h["Content-Disposition"]
    assert 'filename="caf_ _.pdf"' in h["Content-Disposition"]
