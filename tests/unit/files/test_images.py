"""Images from real files: verified by decoding, bombs refused from their header,
metadata gone, orientation applied, thumbnails made, animations kept."""
import io

import pytest
from PIL import Image

from chatsrv.files import images

from harness.imagekit import GPS_IFD, animation, photo, png_bomb

MAX = 64_000_000


def decoded(data):
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


@pytest.mark.parametrize("fmt,typ", [("JPEG", "image/jpeg"), ("PNG", "image/png"), ("WEBP", "image/webp")])
def test_gps_exif_xmp_and_comments_are_gone(tmp_path, fmt, typ):
    src = photo(str(tmp_path / "p"), fmt=fmt)
    raw = open(src, "rb").read()
    assert b"secret-xmp-location" in raw and b"secret-camera-maker" in raw   # the test image has them
    assert GPS_IFD in Image.open(src).getexif()
    p = images.prepare(src, typ, MAX)
    for data in (p.data, p.thumb):
        assert b"secret" not in data
        assert b"Exif" not in data and b"eXIf" not in data and b"XMP" not in data
        out = decoded(data)
        assert not out.getexif(), out.getexif()
        assert "xmp" not in out.info and "comment" not in out.info and "exif" not in out.info
    assert decoded(p.data).format == fmt
    assert (p.width, p.height, p.frames) == (600, 400, 1)


def test_orientation_is_applied_and_dropped(tmp_path):
    # orientation 6: the stored pixels are to be turned 90 degrees clockwise for display
    src = photo(str(tmp_path / "r.jpg"), size=(600, 400), orientation=6)
    p = images.prepare(src, "image/jpeg", MAX)
    assert (p.width, p.height) == (400, 600)
    out = decoded(p.data)
    assert out.size == (400, 600) and images.ImageOps.exif_transpose(out).size == (400, 600)
    # the blue quarter (top-left when stored) is top-right once upright
    r, g, b = out.getpixel((300, 100))
    assert b > 150 and r < 100
    r, g, b = out.getpixel((100, 100))
    assert r > 150 and b < 100
    assert (p.thumb_width, p.thumb_height) == (213, 320)
    assert decoded(p.thumb).size == (213, 320)
    r, g, b = decoded(p.thumb).getpixel((160, 50))
    assert b > 150 and r < 100


def test_jpeg_keeps_its_quality_and_color_profile(tmp_path):
    src = str(tmp_path / "icc.jpg")
    im = Image.effect_noise((300, 200), 40).convert("RGB")
    icc = b"\0" * 128 + b"fake-but-kept-profile"
    im.save(src, "JPEG", quality=70, icc_profile=icc)
    p = images.prepare(src, "image/jpeg", MAX)
    out = decoded(p.data)
    assert out.quantization == Image.open(src).quantization
    assert out.info.get("icc_profile") == icc


def test_thumbnail_fits_and_keeps_transparency(tmp_path):
    src = str(tmp_path / "a.png")
    Image.new("RGBA", (1000, 500), (0, 128, 0, 0)).save(src)
    p = images.prepare(src, "image/png", MAX)
    assert p.thumb_type == "image/png" and (p.thumb_width, p.thumb_height) == (320, 160)
    assert decoded(p.thumb).getpixel((5, 5))[3] == 0
    src = photo(str(tmp_path / "o.jpg"), size=(2000, 1000))
    p = images.prepare(src, "image/jpeg", MAX)
    assert p.thumb_type == "image/jpeg" and (p.thumb_width, p.thumb_height) == (320, 160)


def test_decompression_bomb_refused_from_its_header(tmp_path):
    bomb = png_bomb(str(tmp_path / "bomb.png"))
    assert len(open(bomb, "rb").read()) < 100
    with pytest.raises(images.TooManyPixels):
        images.prepare(bomb, "image/png", MAX)
    # below Pillow's own limit, the configured one still refuses before any decoding
    small_bomb = png_bomb(str(tmp_path / "b2.png"), 9000, 9000)
    with pytest.raises(images.TooManyPixels):
        images.prepare(small_bomb, "image/png", 50_000_000)


def test_limit_counts_every_frame_of_an_animation(tmp_path):
    src = animation(str(tmp_path / "a.gif"), n=5, size=(64, 48))
    with pytest.raises(images.TooManyPixels):
        images.prepare(src, "image/gif", 64 * 48 * 4)
    assert images.prepare(src, "image/gif", 64 * 48 * 5).frames == 5


@pytest.mark.parametrize("fmt,typ", [("GIF", "image/gif"), ("WEBP", "image/webp")])
def test_animation_kept_without_metadata(tmp_path, fmt, typ):
    src = animation(str(tmp_path / "a"), fmt=fmt, n=4)
    assert b"secret" in open(src, "rb").read()
    p = images.prepare(src, typ, MAX)
    assert b"secret" not in p.data and b"secret" not in p.thumb
    out = Image.open(io.BytesIO(p.data))
    assert out.n_frames == 4 and p.frames == 4 and (p.width, p.height) == (64, 48)
    durations = []
    for i in range(4):
        out.seek(i)
        out.load()
        durations.append(out.info["duration"])
        assert "comment" not in out.info and not out.getexif()
    assert durations == [40, 50, 60, 70]


def test_what_does_not_decode_as_its_declared_type_is_refused(tmp_path):
    html = tmp_path / "x.jpg"
    html.write_bytes(b"<html><script>alert(1)</script></html>")
    with pytest.raises(images.NotAnImage):
        images.prepare(str(html), "image/jpeg", MAX)
    png = tmp_path / "p.png"
    Image.new("RGB", (10, 10)).save(png)
    with pytest.raises(images.NotAnImage):          # a real image, but not the type declared
        images.prepare(str(png), "image/jpeg", MAX)
    jpg = photo(str(tmp_path / "t.jpg"))
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(open(jpg, "rb").read()[:3000])
    with pytest.raises(images.NotAnImage):          # truncated: its header alone is valid
        images.prepare(str(cut), "image/jpeg", MAX)
    empty = tmp_path / "e.gif"
    empty.write_bytes(b"")
    with pytest.raises(images.NotAnImage):
        images.prepare(str(empty), "image/gif", MAX)
