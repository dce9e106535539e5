"""A reader of Eet archives (EFL's .eet / Edje's .edj), for the training photos packed in them.

Archive layout (all integers big-endian):

- version 2 (magic 0x1ee70f42, what edje_cc writes today): entry count, dictionary count, then per
  entry six int32 (data offset, stored size, decoded size, name offset, name size, flags), then
  20-byte dictionary entries, the names (NUL-terminated) and the data. Flags: bit 0 compressed,
  bit 1 ciphered, bit 2 alias (the data is another entry's name), bits 3-6 the compression type
  (10 and 11 are LZ4 blocks, anything else zlib);
- version 1 (magic 0x1ee7ff00): entry count, directory size in bytes, then per entry five int32
  (data offset, flags, stored size, decoded size, name size) followed by the name; flag 1 = zlib.

Image entries (eet_data_image_*) are one of: a plain JPEG stream (lossy, no alpha); 0xbeeff00d
and two sizes, then an RGB JPEG and a grayscale JPEG of the alpha; 0xac1dfeed and seven more
header words (width, height, alpha, compression, ...) then ARGB pixels as little-endian uint32,
raw or zlib/LZ4-compressed. Those header words are little-endian (EFL swaps them on big-endian
machines). ETC-compressed images are not read.

Every offset is checked against the archive size and every loop is bounded by the input, so
malformed input raises a one-line HiercodecError.
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image

from hiercodec.errors import HiercodecError

MAGIC_V1, MAGIC_V2 = 0x1EE7FF00, 0x1EE70F42
FLAG_COMPRESSED, FLAG_CIPHERED, FLAG_ALIAS = 1, 2, 4
LZ4_TYPES = (10, 11)  # EET_COMPRESSION_VERYFAST / SUPERFAST: LZ4 blocks
IMAGE_LOSSLESS, IMAGE_JPEG_ALPHA = 0xAC1DFEED, 0xBEEFF00D
JPEG_START = b"\xff\xd8\xff"


def read_eet(data: bytes, what: str = "Eet archive") -> dict[str, bytes]:
    """Every entry of an Eet archive as {name: decoded bytes}, in name order; aliases resolved."""
    if len(data) < 12:
        raise HiercodecError(f"{what} is not an Eet archive (only {len(data)} bytes)")
    magic, count, third = struct.unpack_from(">III", data)
    if magic == MAGIC_V2:
        entries = _directory_v2(data, count, third, what)
    elif magic == MAGIC_V1:
        entries = _directory_v1(data, count, third, what)
    else:
        raise HiercodecError(f"{what} is not an Eet archive (magic {magic:#010x})")
    raw: dict[str, tuple[bytes, bool]] = {}
    for name, offset, size, data_size, flags, lz4 in entries:
        if offset + size > len(data):
            raise HiercodecError(f"{what} is damaged: entry {name} runs past the end of the file")
        if flags & FLAG_CIPHERED:
            raise HiercodecError(f"{what}: entry {name} is encrypted; ciphered Eet entries are not read")
        stored = data[offset:offset + size]
        if flags & FLAG_COMPRESSED:
            stored = _lz4_block(stored, data_size, name, what) if lz4 else _unzlib(stored, data_size, name, what)
        elif size != data_size:
            raise HiercodecError(f"{what} is damaged: entry {name} is {size} bytes, its directory says {data_size}")
        raw[name] = (stored, bool(flags & FLAG_ALIAS))
    out: dict[str, bytes] = {}
    for name, (payload, alias) in raw.items():
        if alias:  # one level only: EFL does not chain aliases either
            target = payload.split(b"\0", 1)[0].decode("utf-8", "replace")
            if target not in raw or raw[target][1]:
                raise HiercodecError(f"{what} is damaged: entry {name} is an alias of a missing entry {target!r}")
            payload = raw[target][0]
        out[name] = payload
    return dict(sorted(out.items()))


def _directory_v2(data: bytes, count: int, dictionary: int, what: str) -> list[tuple]:
    if 12 + 24 * count + 20 * dictionary > len(data):
        raise HiercodecError(f"{what} is damaged: its directory of {count} entries runs past the end of the file")
    entries = []
    for i in range(count):
        offset, size, data_size, name_offset, name_size, flags = struct.unpack_from(">6I", data, 12 + 24 * i)
        name = _name(data, name_offset, name_size, what)
        compression_type = (flags >> 3) & 0xF
        entries.append((name, offset, size, data_size, flags, compression_type in LZ4_TYPES))
    return entries


def _directory_v1(data: bytes, count: int, directory_bytes: int, what: str) -> list[tuple]:
    end = 12 + directory_bytes
    if end > len(data) or count > directory_bytes // 20:
        raise HiercodecError(f"{what} is damaged: its directory runs past the end of the file")
    entries, pos = [], 12
    for _ in range(count):
        if pos + 20 > end:
            raise HiercodecError(f"{what} is damaged: its directory is shorter than its {count} entries")
        offset, flags, size, data_size, name_size = struct.unpack_from(">5I", data, pos)
        name = _name(data, pos + 20, name_size, what, limit=end)
        pos += 20 + name_size
        entries.append((name, offset, size, data_size, flags & FLAG_COMPRESSED, False))
    return entries


def _name(data: bytes, offset: int, size: int, what: str, limit: int | None = None) -> str:
    if size < 1 or offset + size > (len(data) if limit is None else limit):
        raise HiercodecError(f"{what} is damaged: an entry name at offset {offset} is outside the file")
    try:
        return data[offset:offset + size].rstrip(b"\0").decode("utf-8")
    except UnicodeDecodeError:
        raise HiercodecError(f"{what} is damaged: the entry name at offset {offset} is not UTF-8") from None


def _unzlib(stored: bytes, size: int, name: str, what: str) -> bytes:
    inflate = zlib.decompressobj()
    try:
        out = inflate.decompress(stored, size + 1)  # bounded: a damaged size cannot blow up memory
    except zlib.error as exc:
        raise HiercodecError(f"{what} is damaged: entry {name} does not decompress ({exc})") from None
    if len(out) != size or not inflate.eof:
        raise HiercodecError(f"{what} is damaged: entry {name} decompresses to {len(out)} bytes, not {size}")
    return out


def _lz4_block(src: bytes, size: int, name: str, what: str) -> bytes:
    """Decode one LZ4 block (sequences of literals + back-reference) of known decoded size."""
    out = bytearray()
    pos, n = 0, len(src)

    def length(start: int, pos: int) -> tuple[int, int]:
        total = start
        if start == 15:  # 255 means "more bytes follow"; the input bounds the loop
            while True:
                if pos >= n:
                    raise HiercodecError(f"{what} is damaged: the LZ4 data of entry {name} is truncated")
                total += src[pos]
                pos += 1
                if src[pos - 1] != 255:
                    break
        return total, pos

    while pos < n:  # each round consumes at least the token byte
        token = src[pos]
        literals, pos = length(token >> 4, pos + 1)
        if pos + literals > n or len(out) + literals > size:
            raise HiercodecError(f"{what} is damaged: the LZ4 data of entry {name} overruns")
        out += src[pos:pos + literals]
        pos += literals
        if pos == n:
            break  # the last sequence has literals only
        if pos + 2 > n:
            raise HiercodecError(f"{what} is damaged: the LZ4 data of entry {name} is truncated")
        distance = src[pos] | src[pos + 1] << 8
        match, pos = length(token & 15, pos + 2)
        match += 4
        if distance == 0 or distance > len(out) or len(out) + match > size:
            raise HiercodecError(f"{what} is damaged: the LZ4 data of entry {name} has a bad back-reference")
        start = len(out) - distance
        if distance >= match:
            out += out[start:start + match]
        else:  # overlapping copy: the last `distance` bytes repeat
            pattern = bytes(out[start:])
            out += (pattern * (match // distance + 1))[:match]
    if len(out) != size:
        raise HiercodecError(f"{what} is damaged: entry {name} decompresses to {len(out)} bytes, not {size}")
    return bytes(out)


def image_kind(entry: bytes) -> str:
    """'jpeg', 'jpeg+alpha', 'lossless' or 'unknown' (e.g. ETC textures), from the first bytes."""
    if entry[:3] == JPEG_START:
        return "jpeg"
    if len(entry) >= 4:
        (magic,) = struct.unpack_from("<I", entry)
        if magic == IMAGE_JPEG_ALPHA:
            return "jpeg+alpha"
        if magic == IMAGE_LOSSLESS:
            return "lossless"
    return "unknown"


def image_size(entry: bytes, what: str = "Eet image") -> tuple[int, int]:
    """(width, height) of an image entry, from its header only."""
    kind = image_kind(entry)
    if kind == "lossless":
        return _lossless_size(entry, what)
    return _jpeg(_jpeg_parts(entry, what)[0], what).size


def decode_image(entry: bytes, what: str = "Eet image") -> np.ndarray:
    """An image entry as uint8 (H, W, 3), or (H, W, 4) where it has alpha (as stored by EFL)."""
    kind = image_kind(entry)
    if kind == "lossless":
        w, h, alpha, body = _lossless_header(entry, what)
        bgra = np.frombuffer(body, np.uint8).reshape(h, w, 4)  # little-endian ARGB words
        rgba = bgra[..., [2, 1, 0, 3]]
        return np.ascontiguousarray(rgba if alpha else rgba[..., :3])
    rgb_jpeg, alpha_jpeg = _jpeg_parts(entry, what)
    rgb = _jpeg(rgb_jpeg, what)
    try:
        pixels = np.asarray(rgb.convert("RGB"))
        if alpha_jpeg is None:
            return pixels
        alpha = np.asarray(_jpeg(alpha_jpeg, what).convert("L"))
    except (OSError, ValueError, SyntaxError) as exc:
        raise HiercodecError(f"{what} is damaged: its JPEG data does not decode ({exc})") from None
    if alpha.shape != pixels.shape[:2]:
        raise HiercodecError(f"{what} is damaged: its alpha is {alpha.shape[::-1]}, its colour {pixels.shape[1::-1]}")
    return np.dstack([pixels, alpha])


def _jpeg_parts(entry: bytes, what: str) -> tuple[bytes, bytes | None]:
    kind = image_kind(entry)
    if kind == "jpeg":
        return entry, None
    if kind == "jpeg+alpha":
        if len(entry) < 12:
            raise HiercodecError(f"{what} is damaged: its JPEG+alpha header is truncated")
        size_rgb, size_alpha = struct.unpack_from("<II", entry, 4)
        if 12 + size_rgb + size_alpha > len(entry):
            raise HiercodecError(f"{what} is damaged: its JPEG+alpha data runs past the entry")
        return entry[12:12 + size_rgb], entry[12 + size_rgb:12 + size_rgb + size_alpha]
    raise HiercodecError(f"{what} is an Eet image kind this reader does not decode (first bytes {entry[:4].hex()})")


def _jpeg(stream: bytes, what: str) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(stream), formats=["JPEG"])
    except (OSError, ValueError, SyntaxError) as exc:
        raise HiercodecError(f"{what} is damaged: its JPEG data does not open ({exc})") from None
    if image.format != "JPEG":
        raise HiercodecError(f"{what} is damaged: it holds {image.format}, not JPEG")
    return image


def _lossless_size(entry: bytes, what: str) -> tuple[int, int]:
    if len(entry) < 32:
        raise HiercodecError(f"{what} is damaged: its image header is truncated")
    w, h = struct.unpack_from("<2I", entry, 4)
    if not (1 <= w <= 8192 and 1 <= h <= 8192):  # EFL's own limit for these images
        raise HiercodecError(f"{what} is damaged: its image size {w}x{h} is not plausible")
    return w, h


def _lossless_header(entry: bytes, what: str) -> tuple[int, int, bool, bytes]:
    """Width, height, alpha flag and the decompressed ARGB pixels of a lossless image entry."""
    w, h = _lossless_size(entry, what)
    alpha, compression = struct.unpack_from("<2I", entry, 12)
    size, body = 4 * w * h, entry[32:]
    if compression == 0:
        if len(body) < size:
            raise HiercodecError(f"{what} is damaged: {len(body)} bytes of pixels for a {w}x{h} image")
        body = body[:size]
    elif compression in LZ4_TYPES:
        body = _lz4_block(body, size, "pixels", what)
    else:
        body = _unzlib(body, size, "pixels", what)
    return w, h, bool(alpha), body
