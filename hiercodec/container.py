"""The .hc container: bytes <-> Container, exactly as bitstreams/FORMAT.md specifies (version 1).

This is the only module that reads or writes file bytes. It knows nothing of models or coders:
a chunk is opaque bytes with a CRC32. `write` rejects invalid containers with ValueError (a bug
in the caller); `read` rejects invalid files with FormatError / IntegrityError (a bad file).
"""

from __future__ import annotations

import operator
import re
import struct
import zlib
from dataclasses import dataclass, replace

from hiercodec.errors import FormatError, HiercodecError, IntegrityError

MAGIC = b"\x89HC\r\n\x1a\n\x00"
FORMAT_VERSION = 1
MAX_DIM = 65535
MAX_PIXELS = 1 << 28
# Decoding refuses larger images unless asked (hiercodec.decode's max_pixels, decompress
# --max-pixels), with the number of Pillow's Image.MAX_IMAGE_PIXELS (about 9459 x 9459): a forged
# header must not start hours of work.
DECODE_MAX_PIXELS = 89_478_485
MAX_HEADER = 64 * 1024  # bound on the header length field
MAX_LEVELS = 32
MIN_HEADER = 80  # fields 4..18 with 1-char strings and one chunk table entry

_PREFIX = struct.Struct("<8sHI")  # magic, format version, header length
# height, width, channels, bit depth, tile height, tile width, mode, levels total, levels present
_GEOMETRY = struct.Struct("<IIBBHHBBB")
_ENTRY = struct.Struct("<BIIIQ")  # level, coded length, chunk CRC32, values CRC32, bound bits
_U32 = struct.Struct("<I")
_IDENT = re.compile(r"[a-z0-9._-]{1,64}")
_IDENT_BYTES = re.compile(rb"[a-z0-9._-]{1,64}")


def crc32(data: bytes) -> int:
    """zlib's CRC-32 (ISO-HDLC, polynomial 0xEDB88320) as an unsigned int."""
    return zlib.crc32(data) & 0xFFFFFFFF


@dataclass(frozen=True)
class ChunkEntry:
    """One level's coded bytes. The chunk's own CRC32 is computed by write and checked by read."""

    level: int
    data: bytes
    values_crc: int  # CRC32 of the canonical bytes of the level's decoded values
    bound_bits: int  # the exact model's bound for the level, rounded up; informational


@dataclass(frozen=True)
class Header:
    model_id: str
    model_hash: bytes
    coder_id: str
    coder_version: str
    height: int
    width: int
    channels: int
    bit_depth: int
    tile_height: int
    tile_width: int
    lossy: bool
    levels_total: int


@dataclass(frozen=True)
class Container:
    header: Header
    chunks: tuple[ChunkEntry, ...]

    @property
    def levels_present(self) -> int:
        return len(self.chunks)


# ---------------------------------------------------------------------------------------------
# Validation shared by write (ValueError) and read (FormatError): one list of rules.


def _int_problem(name: str, value, lo: int, hi: int) -> str | None:
    if isinstance(value, bool):
        return f"{name} must be an integer, not a bool"
    try:
        value = operator.index(value)
    except TypeError:
        return f"{name} must be an integer, not {type(value).__name__}"
    if not lo <= value <= hi:
        return f"{name} {value} is out of range {lo}..{hi}"
    return None


def _ident_problem(name: str, value) -> str | None:
    if not isinstance(value, str) or not _IDENT.fullmatch(value):
        return f"{name} {value!r} must be 1..64 characters of [a-z0-9._-]"
    return None


def _header_problems(h: Header, levels_present: int) -> list[str]:
    problems = [
        _ident_problem("model id", h.model_id),
        None if isinstance(h.model_hash, bytes) and len(h.model_hash) == 32
        else "model hash must be 32 bytes (SHA-256)",
        _ident_problem("coder id", h.coder_id),
        _ident_problem("coder version", h.coder_version),
        _int_problem("height", h.height, 1, MAX_DIM),
        _int_problem("width", h.width, 1, MAX_DIM),
        _int_problem("channels", h.channels, 1, 4),
        _int_problem("bit depth", h.bit_depth, 8, 8),
        _int_problem("tile height", h.tile_height, 1, 0xFFFF),
        _int_problem("tile width", h.tile_width, 1, 0xFFFF),
        None if isinstance(h.lossy, bool) else "lossy must be a bool",
        _int_problem("levels total", h.levels_total, 1, MAX_LEVELS),
    ]
    problems = [p for p in problems if p]
    if problems:
        return problems
    if operator.index(h.height) * operator.index(h.width) > MAX_PIXELS:
        problems.append(f"image {h.height}x{h.width} has more than {MAX_PIXELS} pixels")
    if not 1 <= levels_present <= h.levels_total:
        problems.append(f"levels present {levels_present} is out of range 1..{h.levels_total}")
    elif not h.lossy and levels_present != h.levels_total:
        problems.append(
            f"a lossless file must have all {h.levels_total} levels, not {levels_present}")
    return problems


def _chunk_problems(i: int, c: ChunkEntry) -> list[str]:
    problems = [
        _int_problem(f"chunk {i} level", c.level, i, i),
        _int_problem(f"chunk {i} values CRC32", c.values_crc, 0, 0xFFFFFFFF),
        _int_problem(f"chunk {i} bound bits", c.bound_bits, 0, (1 << 64) - 1),
    ]
    if not isinstance(c.data, bytes):
        problems.append(f"chunk {i} data must be bytes, not {type(c.data).__name__}")
    elif len(c.data) % 4 or len(c.data) > 0xFFFFFFFC:
        problems.append(f"chunk {i} is {len(c.data)} bytes, not a multiple of 4 below 2^32")
    return [p for p in problems if p]


# ---------------------------------------------------------------------------------------------
# Writing


def write(container: Container) -> bytes:
    """The bytes of `container` as a .hc file. Raises ValueError if any field is invalid."""
    if not isinstance(container, Container) or not isinstance(container.header, Header):
        raise ValueError("write() needs a Container with a Header")
    chunks = container.chunks
    if not isinstance(chunks, tuple) or not all(isinstance(c, ChunkEntry) for c in chunks):
        raise ValueError("Container.chunks must be a tuple of ChunkEntry")
    h = container.header
    problems = _header_problems(h, len(chunks))
    for i, c in enumerate(chunks):
        problems += _chunk_problems(i, c)
    if problems:
        raise ValueError("invalid container: " + "; ".join(problems))

    def ident(s: str) -> bytes:
        return bytes([len(s)]) + s.encode("ascii")

    body = b"".join([
        ident(h.model_id), h.model_hash, ident(h.coder_id), ident(h.coder_version),
        _GEOMETRY.pack(h.height, h.width, h.channels, h.bit_depth, h.tile_height, h.tile_width,
                       int(h.lossy), h.levels_total, len(chunks)),
        *(_ENTRY.pack(c.level, len(c.data), crc32(c.data), c.values_crc, c.bound_bits)
          for c in chunks),
    ])
    head = _PREFIX.pack(MAGIC, FORMAT_VERSION, len(body) + 4) + body
    return b"".join([head, _U32.pack(crc32(head)), *(c.data for c in chunks)])


# ---------------------------------------------------------------------------------------------
# Reading


class _Cursor:
    """Reads fields from the header region; never past its end."""

    def __init__(self, data: bytes, pos: int, end: int):
        self.data, self.pos, self.end = data, pos, end

    def take(self, n: int) -> bytes:
        if self.pos + n > self.end:
            raise FormatError("corrupt .hc header: its fields run past the declared header length")
        self.pos += n
        return self.data[self.pos - n:self.pos]

    def unpack(self, s: struct.Struct) -> tuple:
        return s.unpack(self.take(s.size))

    def ident(self, name: str) -> str:
        raw = self.take(self.take(1)[0])
        if not _IDENT_BYTES.fullmatch(raw):
            raise FormatError(f"invalid .hc header: {name} {raw!r} is not 1..64 characters of "
                              "[a-z0-9._-]")
        return raw.decode("ascii")


def _parse(data, max_pixels: int) -> tuple[Header, list[tuple[int, int, int, int]], int]:
    """Checks and parses the header. Returns it, the chunk table (length, chunk CRC, values CRC,
    bound bits) and the payload offset."""
    if isinstance(data, (bytearray, memoryview)):
        data = bytes(data)
    if not isinstance(data, bytes):
        raise TypeError(f"expected the bytes of a .hc file, got {type(data).__name__}")
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels < 1:
        raise ValueError(f"max_pixels must be a positive int, got {max_pixels!r}")
    if not data:
        raise FormatError("not a .hc file: it is empty")
    if len(data) < len(MAGIC):
        if MAGIC.startswith(data):
            raise FormatError(f"truncated .hc file: only {len(data)} bytes")
        raise FormatError("not a .hc file (bad magic)")
    if data[:len(MAGIC)] != MAGIC:
        raise FormatError("not a .hc file (bad magic)")
    if len(data) < _PREFIX.size:
        raise FormatError(f"truncated .hc file: only {len(data)} bytes")
    _, version, hlen = _PREFIX.unpack_from(data)
    if version != FORMAT_VERSION:
        raise FormatError(f"unsupported .hc format version {version}: this hiercodec reads "
                          f"version {FORMAT_VERSION} only (a newer hiercodec may read it)")
    if not MIN_HEADER <= hlen <= MAX_HEADER:
        raise FormatError(f"corrupt .hc header: header length {hlen} is out of range "
                          f"{MIN_HEADER}..{MAX_HEADER}")
    end = _PREFIX.size + hlen  # end of the header, i.e. start of the payload
    if len(data) < end:
        raise FormatError(f"truncated .hc file: header is {end} bytes, only {len(data)} present")
    stored = _U32.unpack_from(data, end - 4)[0]
    computed = crc32(data[:end - 4])
    if stored != computed:
        raise IntegrityError(f"the .hc header is damaged: CRC32 mismatch (stored 0x{stored:08x}, "
                             f"computed 0x{computed:08x})")

    cur = _Cursor(data, _PREFIX.size, end - 4)
    model_id = cur.ident("model id")
    model_hash = cur.take(32)
    coder_id = cur.ident("coder id")
    coder_version = cur.ident("coder version")
    h, w, channels, depth, th, tw, mode, total, present = cur.unpack(_GEOMETRY)
    if mode > 1:
        raise FormatError(f"invalid .hc header: mode {mode} is neither 0 (lossless) nor 1 (lossy)")
    header = Header(model_id, model_hash, coder_id, coder_version, h, w, channels, depth,
                    th, tw, mode == 1, total)
    problems = _header_problems(header, present)
    if problems:
        raise FormatError("invalid .hc header: " + "; ".join(problems))
    if h * w > max_pixels:
        raise FormatError(f"image is {h}x{w} = {h * w} pixels, above this reader's limit of "
                          f"{max_pixels} (max_pixels); raise it only for files you trust")
    table = []
    for i in range(present):
        level, length, chunk_crc, values_crc, bound = cur.unpack(_ENTRY)
        if level != i:
            raise FormatError(f"invalid .hc header: chunk table entry {i} is for level {level}, "
                              f"expected level {i}")
        if length % 4:
            raise FormatError(f"invalid .hc header: chunk {i} length {length} is not a multiple "
                              "of 4")
        table.append((length, chunk_crc, values_crc, bound))
    if cur.pos != cur.end:
        raise FormatError(f"corrupt .hc header: {cur.end - cur.pos} unexplained bytes at its end")

    declared, present_bytes = sum(t[0] for t in table), len(data) - end
    if present_bytes < declared:
        raise FormatError(f"truncated .hc file: header says {declared} bytes of chunk data, "
                          f"{present_bytes} present")
    if present_bytes > declared:
        raise FormatError(f"{present_bytes - declared} bytes of trailing data after the last "
                          "chunk: the .hc file is damaged or has something appended")
    return header, table, end


def read_header(data: bytes, *, max_pixels: int = MAX_PIXELS) -> Header:
    """The header of a .hc file, for `hiercodec info`. Checks everything but the chunk CRC32s
    (the header CRC32, every field, and that the file has exactly the declared size)."""
    return _parse(data, max_pixels)[0]


def read(data: bytes, *, max_pixels: int = MAX_PIXELS) -> Container:
    """Parses and checks a .hc file. Raises FormatError, or IntegrityError for a CRC32 mismatch."""
    header, table, pos = _parse(data, max_pixels)
    data = bytes(data)
    chunks = []
    for i, (length, chunk_crc, values_crc, bound) in enumerate(table):
        chunk = data[pos:pos + length]
        pos += length
        if crc32(chunk) != chunk_crc:
            raise IntegrityError(f"chunk {i} (level {i}) is damaged: CRC32 mismatch")
        chunks.append(ChunkEntry(i, chunk, values_crc, bound))
    return Container(header, tuple(chunks))


def cut(data: bytes, levels: int) -> bytes:
    """A valid .hc file keeping only the first `levels` chunks (progressive decoding).

    The file is checked first (FormatError / IntegrityError). Keeping fewer levels than the
    model defines makes the file lossy. Asking for 0 levels or more than present is refused
    with a HiercodecError.
    """
    if isinstance(levels, bool) or not isinstance(levels, int):
        raise TypeError(f"levels must be an int, got {type(levels).__name__}")
    c = read(data)
    if not 1 <= levels <= c.levels_present:
        raise HiercodecError(f"cannot keep {levels} levels: the file has {c.levels_present} "
                             f"(keep 1..{c.levels_present})")
    header = c.header
    if levels < header.levels_total:
        header = replace(header, lossy=True)
    return write(Container(header, c.chunks[:levels]))
