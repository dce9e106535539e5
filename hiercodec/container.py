"""The .hc container: bytes <-> Container, exactly as bitstreams/FORMAT.md specifies (versions 1
to 4).

This is the only module that reads or writes file bytes. It knows nothing of models or coders:
a chunk is opaque bytes with a CRC32. `write` rejects invalid containers with ValueError (a bug
in the caller); `read` rejects invalid files with FormatError / IntegrityError (a bad file). Both
check the same list of rules, for the version they read or write.

Version 2 adds to each chunk table entry a flags byte (bit 0: the level continues the previous
level's coded stream, its own chunk is empty) and the level's initial bits (informational, like
the bound bits). Version 1 files keep reading as they always did, and `write(..., version=1)`
still writes them (for containers without shared streams or initial bits).

Version 3 adds after the geometry how a lossy file decodes: by the family's reconstruction from
the levels present, or by sampling the missing levels from the model with a stored seed and
temperature (`Header.sampling`). The codec writes version 3 only for a file that samples; every
other file stays version 2, byte for byte what it was.

Version 4 adds after those fields the number of images (`Header.count`): a set file holds that
many images of one geometry, coded as one image of them stacked top to bottom (so that a bits-back
model's chain runs through all of them and pays its initial bits once). The codec writes version 4
only for a set of more than one image.
"""

from __future__ import annotations

import operator
import re
import struct
import zlib
from dataclasses import dataclass, replace

from hiercodec.errors import FormatError, HiercodecError, IntegrityError

MAGIC = b"\x89HC\r\n\x1a\n\x00"
FORMAT_VERSION = 2  # what `write` writes by default (3 for a file whose header says it samples)
SAMPLING_VERSION = 3  # the first version that stores sampling
SET_VERSION = 4  # the first version that stores a count of images (a set file)
VERSIONS = (1, 2, 3, 4)  # what `read` reads
MAX_COUNT = 1 << 24  # images in a set file
MAX_DIM = 65535
MAX_PIXELS = 1 << 28
# Decoding refuses larger images unless asked (hiercodec.decode's max_pixels, decompress
# --max-pixels), with the number of Pillow's Image.MAX_IMAGE_PIXELS (about 9459 x 9459): a forged
# header must not start hours of work.
DECODE_MAX_PIXELS = 89_478_485
MAX_HEADER = 64 * 1024  # bound on the header length field
MAX_LEVELS = 32
# Smallest header length per version: fields 4..18 with 1-char strings and one chunk table entry
MIN_HEADERS = {1: 80, 2: 89, 3: 100, 4: 104}
MIN_HEADER = min(MIN_HEADERS.values())
CONTINUES = 0x01  # chunk table flags (version 2), bit 0: the level continues the previous stream

_PREFIX = struct.Struct("<8sHI")  # magic, format version, header length
# height, width, channels, bit depth, tile height, tile width, mode, levels total, levels present
_GEOMETRY = struct.Struct("<IIBBHHBBB")
# chunk table entry: level, [flags,] coded length, chunk CRC32, values CRC32, bound bits, [initial bits]
_ENTRIES = {1: struct.Struct("<BIIIQ"), 2: struct.Struct("<BBIIIQQ"), 3: struct.Struct("<BBIIIQQ")}
# version 3, after the geometry: decoding (0: reconstruct, 1: sample), seed, temperature in thousandths
_SAMPLING = struct.Struct("<BQH")
# version 4, after the decoding fields: the number of images (a set of images of one geometry)
_COUNT = struct.Struct("<I")
_U32 = struct.Struct("<I")
_IDENT = re.compile(r"[a-z0-9._-]{1,64}")
_IDENT_BYTES = re.compile(rb"[a-z0-9._-]{1,64}")


def count(n: int, noun: str) -> str:
    """'1 level', '3 levels': for messages."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def crc32(data: bytes) -> int:
    """zlib's CRC-32 (ISO-HDLC, polynomial 0xEDB88320) as an unsigned int."""
    return zlib.crc32(data) & 0xFFFFFFFF


@dataclass(frozen=True)
class ChunkEntry:
    """One level's coded bytes. The chunk's own CRC32 is computed by write and checked by read.

    A level that `continues` the previous level's stream (version 2) has no bytes of its own: the
    levels of one stream are coded in the chunk of its first level."""

    level: int
    data: bytes
    values_crc: int  # CRC32 of the canonical bytes of the level's decoded values
    bound_bits: int  # the exact model's bound for the level, rounded up; informational
    continues: bool = False  # coded in the previous level's stream (its data is b"")
    initial_bits: int = 0  # bits a bits-back level pushed to pop from, rounded up; informational


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
    # (seed, temperature in thousandths) when a lossy file decodes by sampling its missing levels
    # (version 3); None: by the family's reconstruction from the levels present
    sampling: tuple[int, int] | None = None
    # images in the file (version 4): a set of `count` images of height x width, coded as one
    # image of count x height rows (the images stacked top to bottom)
    count: int = 1

    @property
    def pixels(self) -> int:
        """Pixels of the coded image (of every image of a set)."""
        return self.height * self.width * self.count


@dataclass(frozen=True)
class Container:
    header: Header
    chunks: tuple[ChunkEntry, ...]
    version: int = FORMAT_VERSION  # the format version read, or to write

    @property
    def levels_present(self) -> int:
        return len(self.chunks)

    def streams(self) -> list[range]:
        """The coded streams: runs of chunk indices, each a level and the levels continuing it."""
        return streams([c.continues for c in self.chunks])


def streams(continues: list[bool]) -> list[range]:
    """Runs of levels coded on one stream, from each level's `continues` flag (the first level of
    a run has it False)."""
    starts = [i for i, c in enumerate(continues) if not c or i == 0]
    return [range(a, b) for a, b in zip(starts, [*starts[1:], len(continues)])]


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
        _int_problem("count", h.count, 1, MAX_COUNT),
    ]
    if h.sampling is not None:
        if not isinstance(h.sampling, tuple) or len(h.sampling) != 2:
            problems.append("sampling must be a (seed, temperature in thousandths) tuple")
        else:
            problems += [_int_problem("sampling seed", h.sampling[0], 0, (1 << 64) - 1),
                         _int_problem("sampling temperature (thousandths)", h.sampling[1], 1, 0xFFFF)]
    problems = [p for p in problems if p]
    if problems:
        return problems
    if h.sampling is not None and not h.lossy:
        problems.append("a lossless file cannot sample: it holds every level")
    if operator.index(h.height) * operator.index(h.width) * operator.index(h.count) > MAX_PIXELS:
        what = f"image {h.height}x{h.width} has" if h.count == 1 else f"{h.count} images of {h.height}x{h.width} have"
        problems.append(f"{what} more than {MAX_PIXELS} pixels")
    if not 1 <= levels_present <= h.levels_total:
        problems.append(f"levels present {levels_present} is out of range 1..{h.levels_total}")
    elif not h.lossy and levels_present != h.levels_total:
        problems.append(
            f"a lossless file must have all {h.levels_total} levels, not {levels_present}")
    return problems


def _version_problem(version) -> str | None:
    if isinstance(version, bool) or not isinstance(version, int) or version not in VERSIONS:
        return f"format version {version!r} is not one of {', '.join(map(str, VERSIONS))}"
    return None


def _entry_problems(i: int, version: int, level, length: int, values_crc, bound_bits, flags: int,
                    initial_bits) -> list[str]:
    """The rules of chunk table entry i (FORMAT.md), for write and read alike."""
    level_problem = _int_problem(f"chunk {i} level", level, 0, 0xFF)
    problems = [
        level_problem or (f"chunk {i} is for level {level}, expected level {i}" if level != i else None),
        _int_problem(f"chunk {i} values CRC32", values_crc, 0, 0xFFFFFFFF),
        _int_problem(f"chunk {i} bound bits", bound_bits, 0, (1 << 64) - 1),
        _int_problem(f"chunk {i} initial bits", initial_bits, 0, (1 << 64) - 1),
    ]
    if not problems[3] and initial_bits and version < 2:
        problems.append(f"chunk {i} has initial bits, which format version 1 cannot store")
    if length % 4 or length > 0xFFFFFFFC:
        problems.append(f"chunk {i} is {length} bytes, not a multiple of 4 below 2^32")
    if flags & ~CONTINUES:
        problems.append(f"chunk {i} flags 0x{flags:02x} set bits that have no meaning (only bit 0 has)")
    elif flags & CONTINUES:
        if version < 2:
            problems.append(f"chunk {i} continues the previous level's stream, which format version 1 "
                            "cannot store (shared streams need version 2)")
        elif i == 0:
            problems.append("chunk 0 continues a stream, but no level comes before it")
        elif length:
            problems.append(f"chunk {i} continues the previous level's stream, so its coded length "
                            f"must be 0, not {length}")
    return [p for p in problems if p]


def _chunk_problems(i: int, c: ChunkEntry, version: int) -> list[str]:
    if not isinstance(c.data, bytes):
        return [f"chunk {i} data must be bytes, not {type(c.data).__name__}"]
    if not isinstance(c.continues, bool):
        return [f"chunk {i} continues must be a bool, not {type(c.continues).__name__}"]
    return _entry_problems(i, version, c.level, len(c.data), c.values_crc, c.bound_bits,
                           CONTINUES if c.continues else 0, c.initial_bits)


# ---------------------------------------------------------------------------------------------
# Writing


def write(container: Container, *, version: int | None = None) -> bytes:
    """The bytes of `container` as a .hc file of format `version` (default: the container's own,
    FORMAT_VERSION for a new one). Raises ValueError if any field is invalid for that version
    (version 1 has no shared streams and no initial bits)."""
    if not isinstance(container, Container) or not isinstance(container.header, Header):
        raise ValueError("write() needs a Container with a Header")
    version = container.version if version is None else version
    problem = _version_problem(version)
    if problem:
        raise ValueError(f"invalid container: {problem}")
    chunks = container.chunks
    if not isinstance(chunks, tuple) or not all(isinstance(c, ChunkEntry) for c in chunks):
        raise ValueError("Container.chunks must be a tuple of ChunkEntry")
    h = container.header
    problems = _header_problems(h, len(chunks))
    if h.sampling is not None and version < SAMPLING_VERSION:
        problems.append(f"sampling needs format version {SAMPLING_VERSION}, not {version}")
    if not problems and h.count != 1 and version < SET_VERSION:
        problems.append(f"a set of {h.count} images needs format version {SET_VERSION}, not {version}")
    for i, c in enumerate(chunks):
        problems += _chunk_problems(i, c, version)
    if problems:
        raise ValueError("invalid container: " + "; ".join(problems))

    def ident(s: str) -> bytes:
        return bytes([len(s)]) + s.encode("ascii")

    body = b"".join([
        ident(h.model_id), h.model_hash, ident(h.coder_id), ident(h.coder_version),
        _GEOMETRY.pack(h.height, h.width, h.channels, h.bit_depth, h.tile_height, h.tile_width,
                       int(h.lossy), h.levels_total, len(chunks)),
        _pack_sampling(h.sampling) if version >= SAMPLING_VERSION else b"",
        _COUNT.pack(h.count) if version >= SET_VERSION else b"",
        *(_pack_entry(version, c) for c in chunks),
    ])
    head = _PREFIX.pack(MAGIC, version, len(body) + 4) + body
    return b"".join([head, _U32.pack(crc32(head)), *(c.data for c in chunks)])


def _pack_sampling(sampling: tuple[int, int] | None) -> bytes:
    return _SAMPLING.pack(0, 0, 0) if sampling is None else _SAMPLING.pack(1, *sampling)


def _pack_entry(version: int, c: ChunkEntry) -> bytes:
    if version == 1:
        return _ENTRIES[1].pack(c.level, len(c.data), crc32(c.data), c.values_crc, c.bound_bits)
    return _ENTRIES[2].pack(c.level, CONTINUES if c.continues else 0, len(c.data), crc32(c.data),
                            c.values_crc, c.bound_bits, c.initial_bits)


def _unpack_entry(version: int, cur: "_Cursor") -> tuple[int, int, int, int, int, int, int]:
    """(level, flags, coded length, chunk CRC32, values CRC32, bound bits, initial bits)."""
    if version == 1:
        level, length, chunk_crc, values_crc, bound = cur.unpack(_ENTRIES[1])
        return level, 0, length, chunk_crc, values_crc, bound, 0
    return cur.unpack(_ENTRIES[2])


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


def _parse(data, max_pixels: int) -> tuple[Header, list[tuple[int, int, int, int, int, int]], int, int]:
    """Checks and parses the header. Returns it, the chunk table (flags, length, chunk CRC,
    values CRC, bound bits, initial bits), the payload offset and the format version."""
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
    if version not in VERSIONS:
        raise FormatError(f"unsupported .hc format version {version}: this hiercodec reads "
                          f"format version {' or '.join(map(str, VERSIONS))} only (a newer hiercodec "
                          "may read it)")
    if not MIN_HEADERS[version] <= hlen <= MAX_HEADER:
        raise FormatError(f"corrupt .hc header: header length {hlen} is out of range "
                          f"{MIN_HEADERS[version]}..{MAX_HEADER}")
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
    sampling = None
    if version >= SAMPLING_VERSION:
        decoding, seed, milli = cur.unpack(_SAMPLING)
        if decoding > 1 or (decoding == 0 and (seed or milli)):
            raise FormatError(f"invalid .hc header: decoding {decoding} (seed {seed}, temperature {milli}) is "
                              "neither 0 (reconstruct, seed and temperature 0) nor 1 (sample)")
        sampling = (seed, milli) if decoding else None
    images = cur.unpack(_COUNT)[0] if version >= SET_VERSION else 1
    header = Header(model_id, model_hash, coder_id, coder_version, h, w, channels, depth,
                    th, tw, mode == 1, total, sampling, images)
    problems = _header_problems(header, present)
    if problems:
        raise FormatError("invalid .hc header: " + "; ".join(problems))
    if header.pixels > max_pixels:
        what = f"image is {h}x{w}" if images == 1 else f"{images} images of {h}x{w} are"
        raise FormatError(f"{what} = {header.pixels} pixels, above this reader's limit of "
                          f"{max_pixels} (max_pixels); raise it only for files you trust")
    table = []
    for i in range(present):
        level, flags, length, chunk_crc, values_crc, bound, initial = _unpack_entry(version, cur)
        problems = _entry_problems(i, version, level, length, values_crc, bound, flags, initial)
        if problems:
            raise FormatError("invalid .hc header: " + "; ".join(problems))
        table.append((flags, length, chunk_crc, values_crc, bound, initial))
    if cur.pos != cur.end:
        raise FormatError(f"corrupt .hc header: {cur.end - cur.pos} unexplained bytes at its end")

    declared, present_bytes = sum(t[1] for t in table), len(data) - end
    if present_bytes < declared:
        raise FormatError(f"truncated .hc file: header says {declared} bytes of chunk data, "
                          f"{present_bytes} present")
    if present_bytes > declared:
        raise FormatError(f"{present_bytes - declared} bytes of trailing data after the last "
                          "chunk: the .hc file is damaged or has something appended")
    return header, table, end, version


def read_header(data: bytes, *, max_pixels: int = MAX_PIXELS) -> Header:
    """The header of a .hc file, for `hiercodec info`. Checks everything but the chunk CRC32s
    (the header CRC32, every field, and that the file has exactly the declared size)."""
    return _parse(data, max_pixels)[0]


def read_version(data: bytes) -> int:
    """The format version of a .hc file whose header is sound (checked as by read_header)."""
    return _parse(data, MAX_PIXELS)[3]


def read(data: bytes, *, max_pixels: int = MAX_PIXELS) -> Container:
    """Parses and checks a .hc file. Raises FormatError, or IntegrityError for a CRC32 mismatch."""
    header, table, pos, version = _parse(data, max_pixels)
    data = bytes(data)
    chunks = []
    for i, (flags, length, chunk_crc, values_crc, bound, initial) in enumerate(table):
        chunk = data[pos:pos + length]
        pos += length
        if crc32(chunk) != chunk_crc:
            raise IntegrityError(f"chunk {i} (level {i}) is damaged: CRC32 mismatch")
        chunks.append(ChunkEntry(i, chunk, values_crc, bound, bool(flags & CONTINUES), initial))
    return Container(header, tuple(chunks), version)


def cut(data: bytes, levels: int) -> bytes:
    """A valid .hc file keeping only the first `levels` chunks (progressive decoding), in the
    file's own format version.

    The file is checked first (FormatError / IntegrityError). Keeping fewer levels than the
    model defines makes the file lossy. Asking for 0 levels or more than present, or for a cut
    inside a stream shared by several levels, is refused with a HiercodecError.
    """
    if isinstance(levels, bool) or not isinstance(levels, int):
        raise TypeError(f"levels must be an int, got {type(levels).__name__}")
    c = read(data)
    if not 1 <= levels <= c.levels_present:
        raise HiercodecError(f"cannot keep {count(levels, 'level')}: the file has {c.levels_present} "
                             f"(keep 1..{c.levels_present})")
    if levels < c.levels_present and c.chunks[levels].continues:
        ends = [s.stop for s in c.streams()]
        raise HiercodecError(f"cannot keep {count(levels, 'level')}: levels {levels - 1} and {levels} share one "
                             f"coded stream (keep {', '.join(map(str, ends))})")
    header = c.header
    if levels < header.levels_total:
        header = replace(header, lossy=True)
    return write(Container(header, c.chunks[:levels], c.version))
