"""A reader of Qt binary resource files (.rcc), for the training photos packed in them.

Layout (big-endian throughout), as written by Qt's rcc tool:

- header: b"qres", version (1-3), offsets of the tree, the data and the names sections
  (uint32 each), and from version 3 a uint32 of flags saying which compressions occur;
- tree: fixed-size nodes (14 bytes, 22 from version 2: + uint64 modification time), node 0 is
  the root directory. A node is name offset (uint32), flags (uint16: 1 zlib, 2 directory,
  4 zstd), then for a directory the child count and the index of its first child (uint32 each),
  for a file the territory and language (uint16 each) and its offset in the data section (uint32);
- names: uint16 length in UTF-16 units, uint32 hash, the name in UTF-16BE;
- data: uint32 size, then the bytes; zlib-compressed files are qCompress output (uint32
  uncompressed size, then a zlib stream), zstd-compressed ones a zstd frame.

Every read is bounds-checked and every loop is bounded by the number of nodes that fit in the
file, so malformed input raises a one-line HiercodecError.
"""

from __future__ import annotations

import struct
import zlib

from hiercodec.errors import HiercodecError

MAGIC = b"qres"
FLAG_ZLIB, FLAG_DIRECTORY, FLAG_ZSTD = 1, 2, 4


def read_rcc(data: bytes, what: str = "Qt resource file") -> dict[str, bytes]:
    """Every file of a .rcc as {path: bytes} (paths like "a/b.webp", no leading slash), decompressed."""
    if len(data) < 20 or data[:4] != MAGIC:
        raise HiercodecError(f"{what} is not a Qt resource file (no 'qres' header)")
    version, tree, data_start, names = struct.unpack_from(">4I", data, 4)
    if version not in (1, 2, 3):
        raise HiercodecError(f"{what} is Qt resource version {version}; only versions 1-3 are known")
    node_size = 14 if version == 1 else 22
    for name, offset in (("tree", tree), ("data", data_start), ("names", names)):
        if offset > len(data):  # equal is fine: an empty section at the end
            raise HiercodecError(f"{what} is damaged: its {name} offset {offset} is past its end ({len(data)} bytes)")
    capacity = (len(data) - tree) // node_size  # no valid tree has more nodes than fit in the file
    if capacity < 1:
        raise HiercodecError(f"{what} is damaged: its resource tree is truncated")

    def node(index: int) -> tuple[int, int, int, int]:
        if not 0 <= index < capacity:
            raise HiercodecError(f"{what} is damaged: tree node {index} is outside the file")
        name_offset, flags, a, b = struct.unpack_from(">IHII", data, tree + index * node_size)
        return name_offset, flags, a, b

    files: dict[str, bytes] = {}
    seen: set[int] = {0}
    stack: list[tuple[int, str]] = [(0, "")]
    while stack:  # each node is pushed at most once (seen), so this ends after <= capacity rounds
        index, path = stack.pop()
        _, flags, count, first = node(index)
        if not flags & FLAG_DIRECTORY:
            raise HiercodecError(f"{what} is damaged: tree node {index} should be a directory")
        if count > capacity or first + count > capacity:
            raise HiercodecError(f"{what} is damaged: directory {path or '/'} has children outside the tree")
        for child in range(first, first + count):
            if child in seen:
                raise HiercodecError(f"{what} is damaged: tree node {child} is reached twice (a loop)")
            seen.add(child)
            name_offset, child_flags, _, offset = node(child)
            child_path = f"{path}/{_name(data, names, name_offset, what)}".lstrip("/")
            if child_flags & FLAG_DIRECTORY:
                stack.append((child, child_path))
            else:
                files[child_path] = _payload(data, data_start + offset, child_flags, child_path, what)
    return dict(sorted(files.items()))


def _name(data: bytes, names: int, offset: int, what: str) -> str:
    start = names + offset
    if start + 6 > len(data):
        raise HiercodecError(f"{what} is damaged: a name at offset {offset} is outside the file")
    (length,) = struct.unpack_from(">H", data, start)
    end = start + 6 + 2 * length  # uint16 length, uint32 hash, UTF-16BE text
    if end > len(data):
        raise HiercodecError(f"{what} is damaged: a name at offset {offset} runs past the end of the file")
    try:
        return data[start + 6:end].decode("utf-16-be")
    except UnicodeDecodeError:
        raise HiercodecError(f"{what} is damaged: a name at offset {offset} is not UTF-16") from None


def _payload(data: bytes, start: int, flags: int, path: str, what: str) -> bytes:
    if start + 4 > len(data):
        raise HiercodecError(f"{what} is damaged: the data of {path} starts outside the file")
    (size,) = struct.unpack_from(">I", data, start)
    if start + 4 + size > len(data):
        raise HiercodecError(f"{what} is damaged: the data of {path} runs past the end of the file")
    raw = data[start + 4:start + 4 + size]
    if flags & FLAG_ZSTD:
        return _unzstd(raw, path, what)
    if flags & FLAG_ZLIB:
        if len(raw) < 4:
            raise HiercodecError(f"{what} is damaged: the compressed data of {path} is truncated")
        (expected,) = struct.unpack_from(">I", raw)
        inflate = zlib.decompressobj()
        try:
            out = inflate.decompress(raw[4:], expected + 1)  # bounded by the size qCompress recorded
        except zlib.error as exc:
            raise HiercodecError(f"{what} is damaged: the zlib data of {path} does not decompress ({exc})") from None
        if len(out) != expected or not inflate.eof:
            raise HiercodecError(f"{what} is damaged: {path} decompresses to {len(out)} bytes, not {expected}")
        return out
    return raw


def _unzstd(raw: bytes, path: str, what: str) -> bytes:
    """zstd needs a module Python < 3.14 lacks; without one, say so rather than return garbage."""
    try:
        from compression import zstd  # Python 3.14+

        decompress, errors = zstd.decompress, (zstd.ZstdError,)
    except ImportError:
        try:
            import zstandard  # optional

            decompress, errors = zstandard.ZstdDecompressor().decompress, (zstandard.ZstdError,)
        except ImportError:
            raise HiercodecError(
                f"{path} in {what} is zstd-compressed, which this Python cannot read; pip install zstandard"
            ) from None
    try:
        return decompress(raw)
    except errors as exc:
        raise HiercodecError(f"{what} is damaged: the zstd data of {path} does not decompress ({exc})") from None
