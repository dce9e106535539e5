"""The .hc container against bitstreams/FORMAT.md: layout, round trips, and hostile files, in format
version 2 (what hiercodec writes) and version 1 (older files, which keep reading and can still be
written for re-encoding golden files byte for byte)."""

from __future__ import annotations

import hashlib
import struct
import tracemalloc
import zlib
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hiercodec import container as hc
from hiercodec.container import ChunkEntry, Container, Header, crc32, cut, read, read_header, write
from hiercodec.errors import FormatError, HiercodecError, IntegrityError

HASH = hashlib.sha256(b"weights").digest()


def make(levels_total=3, present=None, lossy=False, sizes=(8, 12, 4), version=2, **fields) -> Container:
    present = levels_total if present is None else present
    header = Header(
        model_id="pixelcnn-test", model_hash=HASH, coder_id="constriction-ans", coder_version="0.5",
        height=5, width=7, channels=3, bit_depth=8, tile_height=32, tile_width=32, lossy=lossy,
        levels_total=levels_total)
    header = replace(header, **fields)
    chunks = tuple(
        ChunkEntry(i, bytes((17 * i + j) % 256 for j in range(sizes[i % len(sizes)])),
                   0x1000 + i, 100 * i + 7, initial_bits=(3 * i + 1) if version >= 2 else 0)
        for i in range(present))
    return Container(header, chunks, version)


def shared(levels_total=4) -> Container:
    """Levels 1 and 2 coded on one stream (level 2 continues it), the others on their own."""
    c = make(levels_total)
    chunks = list(c.chunks)
    chunks[2] = replace(chunks[2], data=b"", continues=True)
    return replace(c, chunks=tuple(chunks))


SMALL = make()
SMALL_BYTES = write(SMALL)
SMALL1 = make(version=1)
SMALL1_BYTES = write(SMALL1)
SHARED = shared()
SHARED_BYTES = write(SHARED)
ENTRY_SIZE = {1: 21, 2: 30, 3: 30, 4: 30}


def layout(c: Container) -> dict[str, int]:
    """Offsets of the fields of write(c), computed from FORMAT.md, independently of the code."""
    h = c.header
    off = {"version": 8, "hlen": 10, "model_id": 14}
    off["hash"] = 14 + 1 + len(h.model_id)
    off["coder_id"] = off["hash"] + 32
    off["coder_version"] = off["coder_id"] + 1 + len(h.coder_id)
    g = off["coder_version"] + 1 + len(h.coder_version)
    names = ["height", "width", "channels", "bit_depth", "tile_height", "tile_width", "mode",
             "levels_total", "levels_present"]
    for name, delta in zip(names, [0, 4, 8, 9, 10, 12, 14, 15, 16]):
        off[name] = g + delta
    off["table"] = g + 17  # version 3: the decoding fields, then the table
    off["count"] = off["table"] + 11  # version 4: the number of images after the decoding fields
    off["entries"] = off["table"] + (11 if c.version >= 3 else 0) + (4 if c.version >= 4 else 0)
    off["header_crc"] = off["entries"] + ENTRY_SIZE[c.version] * len(c.chunks)
    off["payload"] = off["header_crc"] + 4
    return off


OFF = layout(SMALL)
OFF1 = layout(SMALL1)
# offsets inside a chunk table entry
ENTRY = {2: {"level": 0, "flags": 1, "length": 2, "chunk_crc": 6, "values_crc": 10, "bound": 14,
             "initial": 22},
         1: {"level": 0, "length": 1, "chunk_crc": 5, "values_crc": 9, "bound": 13}}


def patch(data: bytes, offset: int, fmt: str, *values, fix_crc: bool = True) -> bytes:
    """Overwrite one field; recompute the header CRC so that the field check itself is tested."""
    out = bytearray(data)
    struct.pack_into(fmt, out, offset, *values)
    if fix_crc:
        end = 14 + struct.unpack_from("<I", out, 10)[0]
        struct.pack_into("<I", out, end - 4, zlib.crc32(out[:end - 4]))
    return bytes(out)


def one_line_error(data: bytes, exc=FormatError, match: str | None = None) -> str:
    with pytest.raises(exc, match=match) as info:
        read(data)
    message = str(info.value)
    assert message and "\n" not in message
    return message


# --- layout -------------------------------------------------------------------------------------


def test_crc32_is_zlib_iso_hdlc():
    assert crc32(b"123456789") == 0xCBF43926
    assert crc32(b"") == 0


def expected_bytes(box: Container) -> bytes:
    """write(box) built from FORMAT.md alone."""
    h = box.header
    ident = lambda s: bytes([len(s)]) + s.encode()  # noqa: E731
    body = (ident(h.model_id) + HASH + ident(h.coder_id) + ident(h.coder_version)
            + struct.pack("<IIBBHHBBB", h.height, h.width, h.channels, 8, 32, 32, int(h.lossy), h.levels_total, len(box.chunks)))
    if box.version >= 3:
        body += struct.pack("<BQH", 1, *h.sampling) if h.sampling else bytes(11)
    if box.version >= 4:
        body += struct.pack("<I", h.count)
    for c in box.chunks:
        if box.version == 1:
            body += struct.pack("<BIIIQ", c.level, len(c.data), zlib.crc32(c.data), c.values_crc,
                                c.bound_bits)
        else:
            body += struct.pack("<BBIIIQQ", c.level, int(c.continues), len(c.data), zlib.crc32(c.data),
                                c.values_crc, c.bound_bits, c.initial_bits)
    head = b"\x89HC\r\n\x1a\n\x00" + struct.pack("<HI", box.version, len(body) + 4) + body
    return head + struct.pack("<I", zlib.crc32(head)) + b"".join(c.data for c in box.chunks)


def test_bytes_follow_format_md():
    assert SMALL_BYTES == expected_bytes(SMALL)
    assert SMALL1_BYTES == expected_bytes(SMALL1)
    assert SHARED_BYTES == expected_bytes(SHARED)
    assert OFF["payload"] == len(SMALL_BYTES) - sum(len(c.data) for c in SMALL.chunks)
    assert OFF1["payload"] == len(SMALL1_BYTES) - sum(len(c.data) for c in SMALL1.chunks)
    assert hc.MAGIC == b"\x89HC\r\n\x1a\n\x00" and hc.FORMAT_VERSION == 2 and hc.VERSIONS == (1, 2, 3, 4)
    assert struct.unpack_from("<H", SMALL1_BYTES, 8)[0] == 1


def test_writer_writes_version_2_and_version_1_on_request():
    assert read(SMALL_BYTES).version == 2 and read(SMALL1_BYTES).version == 1
    assert write(replace(SMALL1, version=2)) == write(SMALL1, version=2)
    plain = replace(SMALL, chunks=tuple(replace(c, initial_bits=0) for c in SMALL.chunks))
    # the same levels in either version: same chunks, only the table entries differ
    assert read(write(plain, version=1)).chunks == plain.chunks
    assert hc.read_version(SMALL1_BYTES) == 1 and hc.read_version(SHARED_BYTES) == 2


@pytest.mark.parametrize("version,size", [(1, 80), (2, 89), (3, 100), (4, 104)])
def test_smallest_header(version, size):
    c = make(levels_total=1, sizes=(0,), version=version, model_id="m", coder_id="c", coder_version="1")
    data = write(c)
    assert struct.unpack_from("<I", data, 10)[0] == hc.MIN_HEADERS[version] == size
    assert len(data) == 14 + size
    assert read(data) == c
    assert hc.MIN_HEADER == 80


SAMPLED = make(present=2, lossy=True, version=3, sampling=(2**64 - 1, 990))


def test_version_3_stores_how_a_lossy_file_samples():
    """Version 3: decoding byte, seed (u64), temperature in thousandths (u16) after the geometry;
    `cut` keeps them; a plain lossy file in version 3 stores zeros and reads as reconstructing."""
    data = write(SAMPLED)
    assert data == expected_bytes(SAMPLED) and read(data) == SAMPLED
    g = layout(SAMPLED)["table"]
    assert struct.unpack_from("<BQH", data, g) == (1, 2**64 - 1, 990)
    assert read(cut(data, 1)).header.sampling == (2**64 - 1, 990)
    plain = make(present=2, lossy=True, version=3)
    assert read(write(plain)).header.sampling is None and write(plain) == expected_bytes(plain)


@pytest.mark.parametrize("fields, message", [
    (dict(version=2), "needs format version 3"),
    (dict(lossy=False, present=3), "lossless file cannot sample"),
    (dict(sampling=(1, 0)), "temperature"),
    (dict(sampling=(-1, 5)), "seed"),
])
def test_sampling_rules_on_write(fields, message):
    args = dict(present=2, lossy=True, version=3, sampling=(7, 990)) | fields
    with pytest.raises(ValueError, match=message):
        write(make(**args))


def test_version_3_forged_decoding_fields_are_one_line_errors():
    data = write(SAMPLED)
    g = layout(SAMPLED)["table"]
    assert "neither 0" in one_line_error(patch(data, g, "<B", 2))
    assert "neither 0" in one_line_error(patch(write(make(present=2, lossy=True, version=3)), g + 1, "<Q", 5))
    assert "temperature" in one_line_error(patch(data, g + 9, "<H", 0))
    lossless = write(make(version=3))
    assert "lossless file cannot sample" in one_line_error(patch(lossless, g, "<BQH", 1, 3, 990))


SET = make(version=4, count=2000, height=28, width=28, channels=1)


def test_version_4_stores_a_set_of_images():
    """Version 4: the number of images (u32) after the decoding fields; the header's height and
    width are each image's; a single image may be written in version 4 too (count 1)."""
    data = write(SET)
    assert data == expected_bytes(SET) and read(data) == SET
    assert struct.unpack_from("<I", data, layout(SET)["count"])[0] == 2000
    assert read(data).header.pixels == 2000 * 28 * 28
    one = make(version=4)
    assert read(write(one)).header.count == 1 and write(one) == expected_bytes(one)
    assert read(cut(write(make(version=4, count=3)), 1)).header.count == 3


@pytest.mark.parametrize("fields, message", [
    (dict(version=3), "needs format version 4"),
    (dict(count=0), "count 0 is out of range"),
    (dict(count=hc.MAX_COUNT + 1), "count"),
    (dict(count=1 << 20, height=1000), "more than"),
])
def test_set_rules_on_write(fields, message):
    args = dict(version=4, count=5) | fields
    with pytest.raises(ValueError, match=message):
        write(make(**args))


def test_version_4_forged_counts_are_one_line_errors():
    data = write(SET)
    at = layout(SET)["count"]
    assert "count 0" in one_line_error(patch(data, at, "<I", 0))
    assert "more than" in one_line_error(patch(data, at, "<I", hc.MAX_COUNT))
    with pytest.raises(FormatError, match="2000 images of 28x28"):
        read(data, max_pixels=28 * 28 * 1999)


# --- round trips --------------------------------------------------------------------------------

IDENT = st.from_regex(r"[a-z0-9._-]{1,64}", fullmatch=True)


@st.composite
def containers(draw):
    version = draw(st.sampled_from(hc.VERSIONS))
    height = draw(st.integers(1, hc.MAX_DIM))
    width = draw(st.integers(1, min(hc.MAX_DIM, hc.MAX_PIXELS // height)))
    total = draw(st.integers(1, 32))
    lossy = draw(st.booleans())
    present = draw(st.integers(1, total)) if lossy else total
    header = Header(
        model_id=draw(IDENT), model_hash=draw(st.binary(min_size=32, max_size=32)),
        coder_id=draw(IDENT), coder_version=draw(IDENT), height=height, width=width,
        channels=draw(st.integers(1, 4)), bit_depth=8, tile_height=draw(st.integers(1, 0xFFFF)),
        tile_width=draw(st.integers(1, 0xFFFF)), lossy=lossy, levels_total=total,
        count=draw(st.integers(1, max(1, hc.MAX_PIXELS // (height * width)))) if version >= 4 else 1)
    chunks = []
    for i in range(present):
        continues = version >= 2 and i > 0 and draw(st.booleans())
        chunks.append(ChunkEntry(
            i, b"" if continues else draw(st.binary(max_size=16).map(lambda b: b * 4)),
            draw(st.integers(0, 0xFFFFFFFF)), draw(st.integers(0, (1 << 64) - 1)), continues,
            draw(st.integers(0, (1 << 64) - 1)) if version >= 2 else 0))
    return Container(header, tuple(chunks), version)


FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(containers())
def test_round_trip(c):
    data = write(c)
    assert read(data) == c
    assert read_header(data) == c.header
    assert write(read(data)) == data
    assert read(bytearray(data)) == c and read(memoryview(data)) == c


@FAST
@given(containers(), st.data())
def test_random_bit_flip_is_detected(c, data):
    raw = write(c)
    bit = data.draw(st.integers(0, 8 * len(raw) - 1))
    flipped = bytearray(raw)
    flipped[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(FormatError):
        read(bytes(flipped))


# --- write rejects invalid containers -----------------------------------------------------------

BAD_HEADER_FIELDS = [
    ("model_id", ""), ("model_id", "a" * 65), ("model_id", "Pixel"), ("model_id", "a b"),
    ("model_id", "é"), ("model_id", "a\n"), ("model_id", b"abc"),
    ("model_hash", b"\0" * 31), ("model_hash", b"\0" * 33), ("model_hash", "0" * 32),
    ("coder_id", ""), ("coder_id", "x" * 65), ("coder_id", "ANS"),
    ("coder_version", ""), ("coder_version", "0.5 beta"), ("coder_version", 5),
    ("height", 0), ("height", hc.MAX_DIM + 1), ("height", -1), ("height", 5.0), ("height", True),
    ("width", 0), ("width", hc.MAX_DIM + 1),
    ("channels", 0), ("channels", 5),
    ("bit_depth", 16), ("bit_depth", 7), ("bit_depth", 0),
    ("tile_height", 0), ("tile_height", 0x10000), ("tile_width", 0), ("tile_width", 0x10000),
    ("lossy", 1), ("lossy", None),
    ("levels_total", 0), ("levels_total", 33),
]


@pytest.mark.parametrize("field,value", BAD_HEADER_FIELDS)
def test_write_rejects_bad_header_field(field, value):
    c = make(levels_total=3, lossy=True, present=1)
    write(c)  # valid as made
    with pytest.raises(ValueError, match=field.replace("_", " ")):
        write(replace(c, header=replace(c.header, **{field: value})))


def test_write_rejects_too_many_pixels():
    write(make(height=hc.MAX_PIXELS // 65535, width=65535))
    with pytest.raises(ValueError, match="pixels"):
        write(make(height=hc.MAX_PIXELS // 65535 + 1, width=65535))


@pytest.mark.parametrize("total,present,lossy", [(3, 0, True), (3, 4, True), (3, 2, False),
                                                 (32, 33, True)])
def test_write_rejects_bad_level_counts(total, present, lossy):
    c = make(levels_total=min(total, 32), present=min(present, 32), lossy=lossy)
    if present > 32:
        c = replace(c, chunks=c.chunks + (ChunkEntry(32, b"", 0, 0),))
    with pytest.raises(ValueError, match="levels"):
        write(c)


BAD_CHUNK_FIELDS = [("level", 1), ("level", -1), ("data", b"abc"), ("data", bytearray(4)),
                    ("data", None), ("values_crc", -1), ("values_crc", 1 << 32),
                    ("bound_bits", -1), ("bound_bits", 1 << 64), ("bound_bits", 1.5),
                    ("initial_bits", -1), ("initial_bits", 1 << 64), ("initial_bits", 2.0),
                    ("continues", 1), ("continues", None), ("continues", True)]


@pytest.mark.parametrize("field,value", BAD_CHUNK_FIELDS)
def test_write_rejects_bad_chunk_field(field, value):
    c = make()
    chunks = (replace(c.chunks[0], **{field: value}),) + c.chunks[1:]
    with pytest.raises(ValueError, match="chunk 0"):
        write(replace(c, chunks=chunks))


def test_write_rejects_shared_streams_and_initial_bits_it_cannot_store():
    with pytest.raises(ValueError, match="chunk 2 continues the previous level's stream, so its coded length must be 0"):
        write(replace(SHARED, chunks=SHARED.chunks[:2] + (replace(SHARED.chunks[2], data=b"abcd"),) + SHARED.chunks[3:]))
    with pytest.raises(ValueError, match="shared streams need version 2"):
        write(SHARED, version=1)
    with pytest.raises(ValueError, match="initial bits, which format version 1 cannot store"):
        write(SMALL, version=1)
    for version in (0, 5, True, "2"):
        with pytest.raises(ValueError, match="format version"):
            write(SMALL, version=version)


def test_write_rejects_wrong_types():
    with pytest.raises(ValueError):
        write(SMALL.header)
    with pytest.raises(ValueError):
        write(replace(SMALL, chunks=list(SMALL.chunks)))


def test_write_accepts_numpy_like_integers():
    np = pytest.importorskip("numpy")
    c = make(height=np.int64(5), width=np.uint16(7), channels=np.uint8(3))
    assert read(write(c)) == make()


# --- read rejects bad files ---------------------------------------------------------------------


def test_wrong_magic():
    assert "bad magic" in one_line_error(b"\x89PNG\r\n\x1a\n" + SMALL_BYTES[8:])
    one_line_error(b"hello world, this is not a codec file at all", match="not a .hc file")
    one_line_error(b"", match="empty")
    one_line_error(b"GIF", match="not a .hc file")


@pytest.mark.parametrize("version", [0, 5, 0xFFFF])
def test_unknown_version_names_the_versions_read(version):
    message = one_line_error(patch(SMALL_BYTES, 8, "<H", version, fix_crc=False))
    assert f"version {version}" in message and "version 1 or 2 or 3 or 4" in message


@pytest.mark.parametrize("data", [SMALL_BYTES, SMALL1_BYTES, SHARED_BYTES, write(SAMPLED), write(SET)],
                         ids=["v2", "v1", "shared", "v3", "v4"])
def test_truncation_at_every_byte(data):
    for n in range(len(data)):
        message = one_line_error(data[:n])
        if n >= 1:
            assert "truncated" in message, (n, message)


@pytest.mark.parametrize("data", [SMALL_BYTES, SMALL1_BYTES, SHARED_BYTES], ids=["v2", "v1", "shared"])
def test_every_single_bit_flip_is_detected(data):
    for bit in range(8 * len(data)):
        flipped = bytearray(data)
        flipped[bit // 8] ^= 1 << (bit % 8)
        one_line_error(bytes(flipped))


def test_a_version_1_file_read_as_version_2_is_refused():
    """The version field decides the entry layout: a v1 file relabelled v2 (CRC fixed) does not
    parse as a v2 file."""
    one_line_error(patch(SMALL1_BYTES, 8, "<H", 2))
    one_line_error(patch(SMALL_BYTES, 8, "<H", 1))


def test_damage_reports_the_right_place():
    one_line_error(patch(SMALL_BYTES, OFF["height"], "<I", 6, fix_crc=False),
                   IntegrityError, "header is damaged")
    chunk1 = OFF["payload"] + len(SMALL.chunks[0].data)
    damaged = bytearray(SMALL_BYTES)
    damaged[chunk1 + 3] ^= 0x10
    message = one_line_error(bytes(damaged), IntegrityError)
    assert message == "chunk 1 (level 1) is damaged: CRC32 mismatch"


@pytest.mark.parametrize("extra", [b"\0", b"\0" * 4, SMALL_BYTES])
def test_trailing_data(extra):
    one_line_error(SMALL_BYTES + extra, match="trailing")


def test_missing_payload_bytes_message():
    declared = sum(len(c.data) for c in SMALL.chunks)
    message = one_line_error(SMALL_BYTES[:-4])
    assert message == (f"truncated .hc file: header says {declared} bytes of chunk data, "
                       f"{declared - 4} present")


def _peak_bytes(fn) -> int:
    tracemalloc.start()
    try:
        fn()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


@pytest.mark.parametrize("hlen", [0, 79, 65537, 0xFFFFFFFF])
def test_header_length_out_of_range(hlen):
    data = patch(SMALL_BYTES, 10, "<I", hlen, fix_crc=False)
    assert _peak_bytes(lambda: one_line_error(data, match="header length")) < 1 << 20


def test_header_length_in_range_beyond_file_is_truncation():
    data = patch(SMALL_BYTES, 10, "<I", 65536, fix_crc=False)
    one_line_error(data, match="truncated")


@pytest.mark.parametrize("version", [1, 2])
def test_huge_chunk_length_does_not_allocate(version):
    data, off = (SMALL_BYTES, OFF) if version == 2 else (SMALL1_BYTES, OFF1)
    data = patch(data, off["table"] + ENTRY[version]["length"], "<I", 0xFFFFFFFC)
    assert _peak_bytes(lambda: one_line_error(data, match="truncated")) < 1 << 20


def test_max_pixels_limit_is_enforced_before_decoding():
    big = write(make(height=16000, width=16000))
    read_header(big)
    with pytest.raises(FormatError, match="max_pixels"):
        read(big, max_pixels=1 << 20)
    with pytest.raises(FormatError, match="max_pixels"):
        read_header(write(make()), max_pixels=34)
    read(write(make()), max_pixels=35)


BAD_FIELDS_IN_FILE = [
    ("height", "<I", 0), ("height", "<I", 65536), ("height", "<I", 0xFFFFFFFF),
    ("width", "<I", 0), ("width", "<I", 0x80000000),
    ("channels", "<B", 0), ("channels", "<B", 5), ("channels", "<B", 255),
    ("bit_depth", "<B", 16), ("bit_depth", "<B", 0),
    ("tile_height", "<H", 0), ("tile_width", "<H", 0),
    ("mode", "<B", 2), ("mode", "<B", 255),
    ("levels_total", "<B", 0), ("levels_total", "<B", 33), ("levels_total", "<B", 2),
    ("levels_present", "<B", 0), ("levels_present", "<B", 2), ("levels_present", "<B", 4),
    ("levels_present", "<B", 255),
    ("model_id", "<B", 0), ("model_id", "<B", 65), ("model_id", "<B", 255),
    ("model_id", "<B", 14), ("coder_id", "<B", 0), ("coder_version", "<B", 0),
    ("model_id", "<3s", b"\x0cP "), ("model_id", "<2s", b"\x0c\xff"),
    ("coder_version", "<2s", b"\x03\x00"),
]


@pytest.mark.parametrize("field,fmt,value", BAD_FIELDS_IN_FILE)
def test_read_rejects_out_of_range_field_with_valid_crc(field, fmt, value):
    data = patch(SMALL_BYTES, OFF[field], fmt, value)
    one_line_error(data)
    with pytest.raises(FormatError):
        read_header(data)


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("field,fmt,value,match", [
    ("level", "<B", 1, "level 1"), ("level", "<B", 255, "level"), ("length", "<I", 6, "multiple of 4"),
    ("length", "<I", 12, "truncated"), ("length", "<I", 4, "trailing"),
])
def test_read_rejects_bad_chunk_table_with_valid_crc(version, field, fmt, value, match):
    data, off = (SMALL_BYTES, OFF) if version == 2 else (SMALL1_BYTES, OFF1)
    one_line_error(patch(data, off["table"] + ENTRY[version][field], fmt, value), match=match)


@pytest.mark.parametrize("entry,flags,match", [
    (0, 1, "no level comes before it"), (1, 1, "coded length must be 0, not 12"),
    (0, 2, "no meaning"), (2, 0x80, "no meaning"), (1, 0xFF, "no meaning"),
])
def test_read_rejects_bad_flags_with_valid_crc(entry, flags, match):
    at = OFF["table"] + 30 * entry + ENTRY[2]["flags"]
    one_line_error(patch(SMALL_BYTES, at, "<B", flags), match=match)


def test_initial_bits_are_informational():
    for value in (0, 1, (1 << 64) - 1):
        at = OFF["table"] + 30 + ENTRY[2]["initial"]
        assert read(patch(SMALL_BYTES, at, "<Q", value)).chunks[1].initial_bits == value


def test_shared_stream_round_trip_and_streams():
    box = read(SHARED_BYTES)
    assert box == SHARED and [c.continues for c in box.chunks] == [False, False, True, False]
    assert box.streams() == [range(0, 1), range(1, 3), range(3, 4)]
    assert hc.streams([]) == [] and hc.streams([False]) == [range(0, 1)]
    # a shared stream's continuing level has an empty chunk (CRC32 of nothing)
    at = layout(SHARED)["table"] + 2 * 30
    assert struct.unpack_from("<BBII", SHARED_BYTES, at) == (2, 1, 0, 0)


def test_read_rejects_unexplained_header_bytes():
    crc_at = OFF["header_crc"]
    data = bytearray(SMALL_BYTES[:crc_at] + b"\0" + SMALL_BYTES[crc_at:])
    struct.pack_into("<I", data, 10, struct.unpack_from("<I", data, 10)[0] + 1)
    struct.pack_into("<I", data, crc_at + 1, zlib.crc32(data[:crc_at + 1]))
    one_line_error(bytes(data), match="unexplained")


def test_read_rejects_short_declared_header():
    data = bytearray(SMALL_BYTES)
    struct.pack_into("<I", data, 10, OFF["header_crc"] - 14 + 4 - 21)  # one entry too short
    end = OFF["header_crc"] - 21
    struct.pack_into("<I", data, end, zlib.crc32(data[:end]))
    one_line_error(bytes(data), match="past the declared header length")


def test_read_rejects_non_bytes():
    with pytest.raises(TypeError):
        read("not bytes")  # type: ignore[arg-type]


# --- cut ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [1, 2])
def test_cut_keeps_a_valid_prefix(k):
    data = cut(SMALL_BYTES, k)
    c = read(data)
    assert c.levels_present == k < SMALL.levels_present
    assert c.chunks == SMALL.chunks[:k]
    assert c.header == replace(SMALL.header, lossy=True)
    assert len(data) < len(SMALL_BYTES)
    assert cut(data, k) == data


def test_cut_to_all_levels_is_identity():
    assert cut(SMALL_BYTES, 3) == SMALL_BYTES


def test_cut_of_a_lossy_file_keeps_it_lossy_and_chains():
    lossy = write(make(levels_total=5, present=4, lossy=True, sizes=(4,)))
    assert read(cut(cut(lossy, 3), 1)) == read(cut(lossy, 1))
    assert read(cut(lossy, 1)).header.lossy


@pytest.mark.parametrize("k", [0, -1, 4])
def test_cut_refuses_impossible_level_counts(k):
    with pytest.raises(HiercodecError, match="levels"):
        cut(SMALL_BYTES, k)


def test_cut_only_at_stream_boundaries():
    with pytest.raises(HiercodecError, match="levels 1 and 2 share one coded stream .keep 1, 3, 4.") as info:
        cut(SHARED_BYTES, 2)
    assert "\n" not in str(info.value)
    for k, chunks in ((1, 1), (3, 3)):
        box = read(cut(SHARED_BYTES, k))
        assert box.chunks == SHARED.chunks[:chunks] and box.header.lossy and box.version == 2
    assert cut(SHARED_BYTES, 4) == SHARED_BYTES


def test_cut_keeps_the_file_version():
    box = read(cut(SMALL1_BYTES, 2))
    assert box.version == 1 and box.chunks == SMALL1.chunks[:2]
    assert cut(SMALL1_BYTES, 3) == SMALL1_BYTES


def test_cut_refuses_damaged_files():
    with pytest.raises(IntegrityError):
        cut(SMALL_BYTES[:-1] + bytes([SMALL_BYTES[-1] ^ 1]), 1)
    with pytest.raises(FormatError):
        cut(SMALL_BYTES[:-4], 1)
