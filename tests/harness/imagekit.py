"""Real image files for the tests, made with Pillow: photos with GPS EXIF, XMP and
comments, animations, and a decompression bomb header."""
import struct
import zlib

from PIL import Image, ImageDraw, PngImagePlugin

GPS_IFD = 0x8825
ORIENTATION = 0x0112
XMP = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF>secret-xmp-location</rdf:RDF></x:xmpmeta>'


def gps_exif(orientation=1):
    ex = Image.Exif()
    ex[ORIENTATION] = orientation
    ex[GPS_IFD] = {1: "N", 2: (52.0, 31.0, 12.5), 3: "E", 4: (13.0, 24.0, 1.0)}
    ex[0x010F] = "secret-camera-maker"
    return ex.tobytes()


def photo(path, size=(600, 400), orientation=1, fmt="JPEG"):
    """A photo whose top-left quarter is blue on red, stored with orientation, GPS,
    XMP and (JPEG) a comment."""
    w, h = size
    im = Image.new("RGB", size, (220, 20, 20))
    ImageDraw.Draw(im).rectangle((0, 0, w // 2 - 1, h // 2 - 1), fill=(20, 20, 220))
    kw = {"exif": gps_exif(orientation), "xmp": XMP}
    if fmt == "JPEG":
        kw.update(comment=b"secret-comment", quality=92)
    if fmt == "PNG":    # Pillow writes a PNG's XMP and comments only as text chunks
        info = PngImagePlugin.PngInfo()
        info.add_itxt("XML:com.adobe.xmp", XMP.decode())
        info.add_text("Comment", "secret-comment")
        kw = {"exif": gps_exif(orientation), "pnginfo": info}
    im.save(path, fmt, **kw)
    return path


def png_bomb(path, w=100000, h=100000):
    """A valid PNG header claiming w x h pixels in 69 bytes: what a decompression bomb
    looks like before its data."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    raw = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))
    with open(path, "wb") as f:
        f.write(raw)
    return path


def animation(path, fmt="GIF", n=4, size=(64, 48)):
    frames = [Image.new("RGB", size, (i * 60 % 256, 255 - i * 60 % 256, 40)) for i in range(n)]
    kw = dict(save_all=True, append_images=frames[1:], duration=[40 + 10 * i for i in range(n)], loop=0)
    if fmt == "GIF":
        kw["comment"] = b"secret-gif-comment"
    else:
        kw.update(exif=gps_exif(), xmp=XMP)
    frames[0].save(path, fmt, **kw)
    return path
