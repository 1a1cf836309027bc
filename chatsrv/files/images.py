"""Images that are safe to serve: a file declared as JPEG, PNG, WebP or GIF is
decoded in full (a file that does not decode as its declared type is refused),
refused when it has more pixels than allowed before anything is decoded, and
re-encoded with its orientation applied and without metadata (EXIF with its GPS
position, XMP, comments, text chunks). A thumbnail is made beside it.

Blocking and CPU-bound: run it off the event loop. Never writes to disk and never
serves or logs image bytes.
"""
import dataclasses
import io
import itertools
import warnings

from PIL import Image, ImageOps, JpegImagePlugin

# Pillow's own check against Image.MAX_IMAGE_PIXELS (a warning at 1x, an error at 2x)
# is a second line behind our limit, which is checked from the header before decoding.
warnings.simplefilter("error", Image.DecompressionBombWarning)

# declared type -> Pillow format; anything else is an opaque file
TYPES = {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WEBP", "image/gif": "GIF"}
THUMB_PX = 320
# only what changes how the pixels look; everything else in im.info is metadata
_KEEP = ("icc_profile", "transparency")


class NotAnImage(ValueError):
    """The bytes do not decode as the declared image type."""


class TooManyPixels(ValueError):
    """width x height x frames is above the limit: a decompression bomb or just too big."""


@dataclasses.dataclass(frozen=True, slots=True)
class Prepared:
    """An image ready to store: `data` is what is served, `thumb` its preview."""

    type: str            # the verified type, one of TYPES
    data: bytes
    width: int
    height: int
    frames: int
    thumb: bytes
    thumb_type: str      # image/jpeg, or image/png when the image has transparency
    thumb_width: int
    thumb_height: int


def _open(path, fmt, max_pixels):
    try:
        im = Image.open(path, formats=[fmt])
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise TooManyPixels(str(e)) from None
    except (OSError, SyntaxError, ValueError) as e:   # Pillow's "cannot identify", bad headers
        raise NotAnImage(f"not a valid {fmt} image") from e
    w, h = im.size
    if w <= 0 or h <= 0:
        im.close()
        raise NotAnImage(f"not a valid {fmt} image")
    if w * h > max_pixels:
        im.close()
        raise TooManyPixels(f"{w}x{h} is more than {max_pixels} pixels")
    return im


def _frames(im, max_pixels):
    """Every frame decoded, composited, as an independent image without metadata, with
    its duration; refused as soon as the pixels of all frames exceed max_pixels (an
    animation of many small frames is as costly as one huge frame)."""
    w, h = im.size
    out = []
    for i in itertools.count():
        try:
            im.seek(i)
        except EOFError:
            break
        if (i + 1) * w * h > max_pixels:
            raise TooManyPixels(f"{i + 1} frames of {w}x{h} are more than {max_pixels} pixels")
        im.load()   # a WebP frame's duration is known only once it is decoded
        duration = im.info.get("duration", 100)
        frame = im.copy()
        frame.info = {k: frame.info[k] for k in _KEEP if k in frame.info}
        out.append((frame, duration))
    return out


def _strip(im):
    keep = {k: im.info[k] for k in _KEEP if k in im.info}
    im.info.clear()
    im.info.update(keep)
    return im


def _encode_still(src, fmt, lossless):
    """The decoded image, turned upright, re-encoded without metadata."""
    upright = ImageOps.exif_transpose(src)
    _strip(upright)
    buf = io.BytesIO()
    kw = {}
    if "icc_profile" in upright.info:
        kw["icc_profile"] = upright.info["icc_profile"]
    if fmt == "JPEG":
        # the source's quantisation and subsampling: no visible loss from re-encoding
        kw.update(qtables=src.quantization, subsampling=JpegImagePlugin.get_sampling(src), optimize=False)
        if kw["subsampling"] == -1:
            del kw["subsampling"]
    elif fmt == "WEBP":
        kw.update(lossless=lossless, quality=90)
    elif fmt == "GIF":
        kw["comment"] = b""
    if "transparency" in upright.info:
        kw["transparency"] = upright.info["transparency"]
    upright.save(buf, fmt, **kw)
    return buf.getvalue(), upright.size


def _encode_animation(frames, fmt, loop, lossless):
    first = frames[0][0]
    buf = io.BytesIO()
    kw = dict(save_all=True, append_images=[f for f, _ in frames[1:]],
              duration=[d for _, d in frames], loop=loop)
    if fmt == "GIF":
        kw["comment"] = b""
    elif fmt == "WEBP":
        kw.update(lossless=lossless, quality=90)
    first.save(buf, fmt, **kw)
    return buf.getvalue()


def _thumbnail(path, fmt, max_pixels):
    """Fast: a JPEG is decoded at reduced scale (draft), scaled, and only then turned
    upright (turning first would force a full decode)."""
    with _open(path, fmt, max_pixels) as im:
        im.draft("RGB", (THUMB_PX, THUMB_PX))
        im.thumbnail((THUMB_PX, THUMB_PX))
        im = ImageOps.exif_transpose(im)
    alpha = im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info)
    im = im.convert("RGBA" if alpha else "RGB")
    im.info.clear()
    buf = io.BytesIO()
    if alpha:
        im.save(buf, "PNG")
    else:
        im.save(buf, "JPEG", quality=80)
    return buf.getvalue(), ("image/png" if alpha else "image/jpeg"), im.size


def _webp_lossless(path):
    with open(path, "rb") as f:
        head = f.read(16)
    return head[12:16] == b"VP8L"


def prepare(path, declared_type, max_pixels):
    """The image in path, verified and cleaned, with its thumbnail. Raises NotAnImage,
    TooManyPixels, or KeyError when declared_type is not an image type."""
    fmt = TYPES[declared_type]
    if max_pixels > (Image.MAX_IMAGE_PIXELS or 0):
        # our limit is the one that counts; Pillow's stays only as a floor behind it
        Image.MAX_IMAGE_PIXELS = max_pixels
    lossless = fmt == "WEBP" and _webp_lossless(path)
    try:
        with _open(path, fmt, max_pixels) as im:
            im.load()   # the whole first frame: what does not decode is refused here
            if getattr(im, "is_animated", False):
                frames = _frames(im, max_pixels)
                data = _encode_animation(frames, fmt, im.info.get("loop", 0), lossless)
                (width, height), n = im.size, len(frames)
            else:
                data, (width, height) = _encode_still(im, fmt, lossless)
                n = 1
        thumb, thumb_type, (tw, th) = _thumbnail(path, fmt, max_pixels)
    except (TooManyPixels, NotAnImage):
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise TooManyPixels(str(e)) from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:   # truncated or corrupt data
        raise NotAnImage(f"not a valid {fmt} image") from e
    return Prepared(declared_type, data, width, height, n, thumb, thumb_type, tw, th)
