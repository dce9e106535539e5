"""The training photos: the Qt .rcc and Eet .edj readers on tiny files written here (well-formed
and damaged), the pipeline of hiercodec.train.data on a tiny .deb written here, and the real set.

The real-set test reads the Debian packages; it uses the .debs already in the user's cache when
there are any (linked into a temporary cache) and is skipped, like the registry tests of
test_datasets.py, only when apt-get is missing or the network is not there.
"""

from __future__ import annotations

import io
import shutil
import struct
import subprocess
import tarfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hiercodec.cache import cache_dir
from hiercodec.errors import HiercodecError
from hiercodec.train import data, eet
from hiercodec.train.rcc import read_rcc
from test_datasets import _fetch_or_skip


def _photo(h: int, w: int, seed: int = 0, alpha: bool = False) -> np.ndarray:
    """A smooth random image (uint8), so that JPEG keeps it close."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    planes = [np.clip(rng.uniform(40, 200) + rng.uniform(-50, 50) * yy + rng.uniform(-50, 50) * xx, 0, 255)
              for _ in range(4 if alpha else 3)]
    return np.stack(planes, -1).astype(np.uint8)


def _encode(pixels: np.ndarray, fmt: str, **kwargs) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format=fmt, **kwargs)
    return out.getvalue()


def _raises(fn, *args, match: str | None = None) -> None:
    with pytest.raises(HiercodecError, match=match):
        fn(*args)


def _survives_damage(read, blob: bytes, seed: int, rounds: int = 300) -> None:
    """Every truncation raises a HiercodecError; random byte changes raise one or read normally."""
    for cut in range(len(blob)):
        _raises(read, blob[:cut])
    rng = np.random.default_rng(seed)
    for _ in range(rounds):
        damaged = bytearray(blob)
        for pos in rng.integers(0, len(blob), rng.integers(1, 4)):
            damaged[pos] = rng.integers(0, 256)
        try:
            read(bytes(damaged))
        except HiercodecError:
            pass


# ----------------------------------------------------------------------------- Qt resource files


def _rcc(files: dict[str, tuple[bytes, int]], version: int = 3) -> bytes:
    """A Qt .rcc holding {path: (bytes, flags)}; flag 1 stores the file qCompress-ed (zlib), 4 as is
    but marked zstd. Directories' children get consecutive tree nodes, breadth first, as rcc does."""
    root: dict = {}
    for path, item in files.items():
        *dirs, leaf = path.split("/")
        node = root
        for part in dirs:
            node = node.setdefault(part, {})
        node[leaf] = item
    names, name_at = bytearray(), {}

    def name(text: str) -> int:
        if text not in name_at:
            name_at[text] = len(names)
            names.extend(struct.pack(">HI", len(text), 0) + text.encode("utf-16-be"))  # the reader ignores the hash
        return name_at[text]

    payload, nodes = bytearray(), [None]
    queue = [(0, "", root)]
    while queue:
        index, text, children = queue.pop(0)
        first = len(nodes)
        nodes[index] = (name(text) if index else 0, 2, len(children), first)
        nodes.extend([None] * len(children))
        for k, (child, item) in enumerate(sorted(children.items())):
            if isinstance(item, dict):
                queue.append((first + k, child, item))
                continue
            body, flags = item
            stored = struct.pack(">I", len(body)) + zlib.compress(body) if flags & 1 else body
            nodes[first + k] = (name(child), flags, 0, len(payload))
            payload += struct.pack(">I", len(stored)) + stored
    extra = () if version == 1 else (0,)  # the modification time from version 2 on
    tree = b"".join(struct.pack(">IHII" + "Q" * len(extra), *n, *extra) for n in nodes)
    start = 24 if version >= 3 else 20
    header = b"qres" + struct.pack(">4I", version, start, start + len(tree), start + len(tree) + len(payload))
    return header + (struct.pack(">I", 1) if version >= 3 else b"") + tree + bytes(payload) + bytes(names)


RCC_FILES = {
    "gcompris/src/activities/erase/resource/alpaca.webp": (b"RIFF....WEBP" * 3, 0),
    "gcompris/src/activities/erase/resource/README": (b"Copyright: nobody\n" * 20, 1),
    "gcompris/src/activities/erase/Erase.qml": (b"", 0),
    "top-\u00e9\u00df.txt": (bytes(range(256)) * 4, 1),
}


@pytest.mark.parametrize("version", [1, 2, 3])
def test_rcc_reads_nested_plain_and_zlib_files(version):
    assert read_rcc(_rcc(RCC_FILES, version)) == {p: body for p, (body, _) in RCC_FILES.items()}
    assert read_rcc(_rcc({}, version)) == {}


def test_rcc_refuses_what_it_cannot_read():
    good = _rcc(RCC_FILES)
    _raises(read_rcc, b"qrez" + good[4:], match="not a Qt resource file")
    _raises(read_rcc, good[:4] + struct.pack(">I", 4) + good[8:], match="version 4")
    for field, name in ((8, "tree"), (12, "data"), (16, "names")):
        _raises(read_rcc, good[:field] + struct.pack(">I", 1 << 30) + good[field + 4:], match=f"{name} offset")
    zstd = _rcc({"a.bin": (b"\x28\xb5\x2f\xfd garbage", 4)})
    _raises(read_rcc, zstd, match="zstd")  # unreadable without a zstd module, damaged with one


def _rcc_node(blob: bytes, index: int) -> int:
    (tree,) = struct.unpack_from(">I", blob, 8)
    return tree + 22 * index


def test_rcc_damaged_trees_and_data_raise():
    good = _rcc({"a/b.txt": (b"hello", 0), "c.txt": (b"zipped" * 10, 1)})
    # node 0 is the root ("a", "c.txt" below it), node 1 "a", node 2 "c.txt", node 3 "a/b.txt"
    loop = bytearray(good)
    struct.pack_into(">I", loop, _rcc_node(good, 1) + 10, 0)  # a's first child is the root
    _raises(read_rcc, bytes(loop), match="loop")
    wide = bytearray(good)
    struct.pack_into(">I", wide, _rcc_node(good, 0) + 6, 1 << 20)  # the root has a million children
    _raises(read_rcc, bytes(wide), match="outside the tree")
    far = bytearray(good)
    struct.pack_into(">I", far, _rcc_node(good, 3) + 10, 1 << 28)  # b.txt's data far past the end
    _raises(read_rcc, bytes(far), match="outside the file")
    nameless = bytearray(good)
    struct.pack_into(">I", nameless, _rcc_node(good, 2), 1 << 28)
    _raises(read_rcc, bytes(nameless), match="name")
    (data_start,) = struct.unpack_from(">I", good, 12)
    (c_offset,) = struct.unpack_from(">I", good, _rcc_node(good, 2) + 10)
    length = bytearray(good)
    struct.pack_into(">I", length, data_start + c_offset + 4, 7)  # qCompress says 7 bytes, zlib gives 60
    _raises(read_rcc, bytes(length), match="not 7")
    stream = bytearray(good)
    stream[data_start + c_offset + 8:data_start + c_offset + 10] = b"\0\0"  # no zlib header any more
    _raises(read_rcc, bytes(stream), match="does not decompress")


def test_rcc_survives_truncation_and_random_damage():
    _survives_damage(read_rcc, _rcc(RCC_FILES), seed=1)


# ----------------------------------------------------------------------------- Eet archives


def _eet(entries: list[tuple[str, bytes, int, int]], version: int = 2) -> bytes:
    """An Eet archive of (name, stored bytes, decoded size, flags) entries."""
    names = [name.encode() + b"\0" for name, *_ in entries]
    if version == 1:
        directory_bytes = sum(20 + len(n) for n in names)
        offset, directory, stored = 12 + directory_bytes, bytearray(), bytearray()
        for (_, body, size, flags), name in zip(entries, names):
            directory += struct.pack(">5I", offset + len(stored), flags, len(body), size, len(name)) + name
            stored += body
        return struct.pack(">3I", eet.MAGIC_V1, len(entries), directory_bytes) + bytes(directory) + bytes(stored)
    name_at = 12 + 24 * len(entries)
    offset = name_at + sum(len(n) for n in names)
    directory, stored = bytearray(), bytearray()
    for (_, body, size, flags), name in zip(entries, names):
        directory += struct.pack(">6I", offset + len(stored), len(body), size, name_at, len(name), flags)
        name_at += len(name)
        stored += body
    head = struct.pack(">3I", eet.MAGIC_V2, len(entries), 0)
    return head + bytes(directory) + b"".join(names) + bytes(stored)


ZLIB, LZ4 = 1 | 9 << 3, 1 | 10 << 3  # compressed, compression type 9 (zlib) / 10 (LZ4)


def _lz4_literals(body: bytes) -> bytes:
    """The simplest LZ4 block: one sequence of literals only."""
    n, ext = len(body), b""
    if n >= 15:
        rest = n - 15
        ext = b"\xff" * (rest // 255) + bytes([rest % 255])
    return bytes([min(n, 15) << 4]) + ext + body


# Hand-made LZ4 blocks with back-references, and what they decode to.
LZ4_BLOCKS = [
    (b"\x38abc\x03\x00\x30xyz", b"abc" * 5 + b"xyz"),  # 3 literals, 12 bytes copied from 3 back (overlapping)
    (b"\x1fa\x01\x00\x50", b"a" * 100),  # 1 literal, a match of 4 + 15 + 80 bytes one back
    (_lz4_literals(bytes(range(256)) * 2), bytes(range(256)) * 2),
]


def _lossless(pixels: np.ndarray, compression: int = 0) -> bytes:
    h, w, _ = pixels.shape
    argb = pixels[..., [2, 1, 0, 3]].tobytes()  # little-endian 0xAARRGGBB words: B, G, R, A in memory
    body = {0: argb, 9: zlib.compress(argb), 10: _lz4_literals(argb)}[compression]
    return struct.pack("<8I", eet.IMAGE_LOSSLESS, w, h, 1, compression, 100, 0, 0) + body


def _jpeg_alpha(pixels: np.ndarray) -> bytes:
    rgb, alpha = _encode(pixels[..., :3], "JPEG", quality=95), _encode(pixels[..., 3], "JPEG", quality=95)
    return struct.pack("<3I", eet.IMAGE_JPEG_ALPHA, len(rgb), len(alpha)) + rgb + alpha


@pytest.mark.parametrize("version", [1, 2])
def test_eet_reads_plain_zlib_and_alias_entries(version):
    text, jpeg = b"edje collection data " * 30, b"\xff\xd8\xff not really a jpeg"
    entries = [("edje/file", zlib.compress(text), len(text), ZLIB if version == 2 else 1),
               ("edje/images/0", jpeg, len(jpeg), 0),
               ("empty", b"", 0, 0)]
    if version == 2:
        entries.append(("edje/images/1", b"edje/images/0\0", 14, eet.FLAG_ALIAS))
    archive = eet.read_eet(_eet(entries, version))
    assert archive["edje/file"] == text and archive["empty"] == b""
    assert archive["edje/images/0"] == jpeg
    assert list(archive) == sorted(archive)
    if version == 2:
        assert archive["edje/images/1"] == archive["edje/images/0"]


def test_eet_reads_lz4_entries():
    entries = [(f"block{i}", block, len(out), LZ4) for i, (block, out) in enumerate(LZ4_BLOCKS)]
    archive = eet.read_eet(_eet(entries))
    assert [archive[f"block{i}"] for i in range(len(LZ4_BLOCKS))] == [out for _, out in LZ4_BLOCKS]


def test_eet_image_kinds_decode():
    pixels = _photo(48, 64, seed=3, alpha=True)
    jpeg = _encode(pixels[..., :3], "JPEG", quality=95)
    assert eet.image_kind(jpeg) == "jpeg" and eet.image_size(jpeg) == (64, 48)
    assert np.abs(eet.decode_image(jpeg).astype(int) - pixels[..., :3]).max() <= 8
    both = _jpeg_alpha(pixels)
    assert eet.image_kind(both) == "jpeg+alpha" and eet.image_size(both) == (64, 48)
    decoded = eet.decode_image(both)
    assert decoded.shape == (48, 64, 4) and np.abs(decoded.astype(int) - pixels).max() <= 8
    for compression in (0, 9, 10):
        lossless = _lossless(pixels, compression)
        assert eet.image_kind(lossless) == "lossless" and eet.image_size(lossless) == (64, 48)
        assert np.array_equal(eet.decode_image(lossless), pixels)


def test_eet_refuses_what_it_cannot_read():
    good = _eet([("a", b"hello", 5, 0), ("b", zlib.compress(b"x" * 50), 50, ZLIB)])
    _raises(eet.read_eet, b"\x1e\xe7\x0f\x43" + good[4:], match="not an Eet archive")
    _raises(eet.read_eet, good[:4] + struct.pack(">I", 1 << 24) + good[8:], match="directory")
    v1 = _eet([("a", b"hello", 5, 0)], version=1)
    _raises(eet.read_eet, v1[:8] + struct.pack(">I", 1 << 24) + v1[12:], match="directory")
    far = bytearray(good)
    struct.pack_into(">I", far, 12, 1 << 28)  # a's data far past the end
    _raises(eet.read_eet, bytes(far), match="past the end")
    nameless = bytearray(good)
    struct.pack_into(">I", nameless, 12 + 12, 1 << 28)
    _raises(eet.read_eet, bytes(nameless), match="name")
    for flags, match in ((eet.FLAG_CIPHERED, "encrypted"), (eet.FLAG_ALIAS, "alias")):
        _raises(eet.read_eet, _eet([("a", b"zz\0", 3, flags)]), match=match)
    _raises(eet.read_eet, _eet([("a", b"hello", 6, 0)]), match="directory says 6")
    _raises(eet.read_eet, _eet([("b", zlib.compress(b"x" * 50), 49, ZLIB)]), match="not 49")
    _raises(eet.read_eet, _eet([("b", b"garbage!", 49, ZLIB)]), match="does not decompress")
    for block, size in ((b"\x1fa\x00\x00\x50", 100), (b"\x1fa\x05\x00\x50", 100), (b"\x38abc\x03\x00\x30xyz", 17),
                        (b"\xf0\xff", 300), (b"\x38abc\x03", 18)):
        _raises(eet.read_eet, _eet([("c", block, size, LZ4)]), match="LZ4|decompresses")


def test_eet_damaged_images_raise():
    pixels = _photo(16, 24, seed=4, alpha=True)
    lossless, both = _lossless(pixels), _jpeg_alpha(pixels)
    for decode in (eet.decode_image, eet.image_size):
        _raises(decode, b"TGV1" + bytes(40), match="does not decode")
        _raises(decode, lossless[:20], match="truncated")
        _raises(decode, lossless[:4] + struct.pack("<I", 100_000) + lossless[8:], match="not plausible")
        _raises(decode, both[:4] + struct.pack("<I", 1 << 30) + both[8:], match="runs past")
        _raises(decode, b"\xff\xd8\xff\xe0" + bytes(30), match="JPEG")
    _raises(eet.decode_image, lossless[:100], match="bytes of pixels")  # image_size reads the header only
    _raises(eet.decode_image, both[:len(both) - 40], match="JPEG")  # the alpha JPEG is cut short


def test_eet_survives_truncation_and_random_damage():
    block, decoded = LZ4_BLOCKS[0]
    entries = [("edje/file", zlib.compress(b"abc" * 40), 120, ZLIB), ("lz4", block, len(decoded), LZ4),
               ("edje/images/0", b"\xff\xd8\xff" + bytes(20), 23, 0)]
    _survives_damage(eet.read_eet, _eet(entries), seed=2)
    _survives_damage(eet.read_eet, _eet(entries[:1] + entries[2:], version=1), seed=3)
    lossless = _lossless(_photo(4, 5, seed=5, alpha=True), 9)
    _survives_damage(eet.decode_image, lossless, seed=6, rounds=100)
    for cut in range(32):
        _raises(eet.image_size, lossless[:cut])


# ----------------------------------------------------------------------------- the pipeline on a tiny .deb


def _deb(path: Path, files: dict[str, bytes]) -> None:
    """A Debian package (ar archive) with `files` in its data.tar.xz, as apt-get download gives."""
    tar_bytes = io.BytesIO()
    with tarfile.open(fileobj=tar_bytes, mode="w:xz") as tar:
        for name, body in files.items():
            info = tarfile.TarInfo("./" + name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    members = [("debian-binary", b"2.0\n"), ("data.tar.xz", tar_bytes.getvalue())]
    out = bytearray(b"!<arch>\n")
    for name, body in members:
        out += f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(body):<10}`\n".encode() + body
        out += b"\n" * (len(body) & 1)
    path.write_bytes(bytes(out))


def _toy_sources() -> tuple[data.Source, ...]:
    return (data.Source("toy-files", "file", "usr/share/toy/", ("b.jpg", "a.png"), {"logo.png": "logo"},
                        prefix="toy"),
            data.Source("toy-rcc", "rcc", "usr/share/toy/rcc/", ("game/resource/sea.webp",), prefix="toyrcc",
                        inner="src/"),
            data.Source("toy-edj", "edj", "usr/share/toy/bg/", ("Leaf.edj",), prefix="toyedj"))


def _toy_debs(debs: Path) -> dict[str, np.ndarray]:
    """The .debs of _toy_sources() in `debs`; returns the photos they hold, by prepared stem."""
    debs.mkdir(parents=True, exist_ok=True)
    photos = {"toy-a": _photo(310, 420, 1), "toy-b": _photo(330, 301, 2), "toyrcc-game-sea": _photo(300, 360, 3),
              "toyedj-Leaf": _photo(320, 480, 4)}
    small = _encode(_photo(100, 150, 5), "JPEG", quality=98)
    _deb(debs / "toy-files_1.0_all.deb", {
        "usr/share/toy/a.png": _encode(photos["toy-a"], "PNG"),
        "usr/share/toy/b.jpg": _encode(photos["toy-b"], "JPEG", quality=98, subsampling=0),
        "usr/share/toy/logo.png": _encode(_photo(40, 40, alpha=True), "PNG")})
    rcc = _rcc({"src/game/resource/sea.webp": (_encode(photos["toyrcc-game-sea"], "WEBP", lossless=True), 0),
                "src/game/Game.qml": (b"Item {}", 1)})
    _deb(debs / "toy-rcc_1.0_all.deb", {"usr/share/toy/rcc/game.rcc": rcc})
    big = _encode(photos["toyedj-Leaf"], "JPEG", quality=98, subsampling=0)
    leaf = _eet([("edje/images/0", small, len(small), 0), ("edje/images/1", big, len(big), 0),
                 ("edje/file", zlib.compress(b"collections"), 11, ZLIB)])  # the photo is the largest image
    _deb(debs / "toy-edj_1.0_all.deb", {"usr/share/toy/bg/Leaf.edj": leaf})
    return photos


def test_prepare_reads_every_kind_of_source_once(tmp_path, monkeypatch):
    monkeypatch.setenv("HIERCODEC_CACHE", str(tmp_path))
    sources = _toy_sources()
    photos = _toy_debs(tmp_path / "train-photos" / "debs")
    monkeypatch.setattr(data, "run", lambda *a, **k: pytest.fail("no download expected"))
    paths = data.prepare(sources=sources)
    stems = ["toy-a", "toy-b", "toyrcc-game-sea", "toyedj-Leaf"]  # keep is sorted: a.png before b.jpg
    assert [p.name for p in paths] == [f"{s}-x{f}.png" for s in stems for f in (2, 3, 4)]
    images = dict(zip([p.name for p in paths], data.load_images(paths)))
    for stem, photo in photos.items():
        for f in (2, 3, 4):
            want = data.area_downsample(photo, f)
            got = images[f"{stem}-x{f}.png"]
            lossy = stem in ("toy-b", "toyedj-Leaf")  # JPEG; the PNG and the lossless WebP come back exactly
            assert got.shape == want.shape and np.abs(got.astype(int) - want).max() <= (6 if lossy else 0)
    assert not list((tmp_path / "train-photos" / "prepared").glob("*.part"))

    monkeypatch.setattr(data, "deb_members", lambda *a: pytest.fail("a prepared set needs no .deb"))
    assert data.prepare(sources=sources) == paths
    rows = data.report(sources=sources)
    assert [r["photos"] for r in rows] == [2, 1, 1] and [r["images"] for r in rows] == [6, 3, 3]
    want_mp = sum((h // f) * (w // f) for p in photos.values() for f in (2, 3, 4) for h, w in [p.shape[:2]]) / 1e6
    assert sum(r["megapixels"] for r in rows) == pytest.approx(want_mp)
    assert "total" in data.format_report(rows).splitlines()[-1]


def test_prepare_stops_on_a_changed_package(tmp_path, monkeypatch):
    monkeypatch.setenv("HIERCODEC_CACHE", str(tmp_path))
    debs = tmp_path / "train-photos" / "debs"
    _toy_debs(debs)
    files, rcc, edj = _toy_sources()
    gone = data.Source(files.package, "file", files.folder, ("a.png", "c.jpg", "d.jpg"), prefix="toy")
    _raises(data.prepare, (2,), (gone,), match="2 training photos missing from toy-files.*c.jpg, d.jpg")
    _raises(data.prepare, (2,), (data.Source(rcc.package, "rcc", rcc.folder, ("game/resource/fish.webp",),
                                             prefix="x", inner="src/"),), match="missing.*fish.webp")
    _raises(data.prepare, (2,), (data.Source(rcc.package, "rcc", rcc.folder, ("sea/a.webp",), prefix="x"),),
            match="missing.*sea.rcc")
    logo = data.Source(files.package, "file", files.folder, ("logo.png",), prefix="toy")
    _raises(data.prepare, (2,), (logo,), match="transparent")
    tiny = data.Source(edj.package, "edj", edj.folder, edj.keep, prefix="toyedj")
    monkeypatch.setattr(data, "MIN_SIDE", 1000)
    _raises(data.prepare, (2,), (tiny,), match="only 480x320")
    (debs / "toy-edj_2.0_all.deb").write_bytes(b"")
    _raises(data.fetch_deb, "toy-edj", match="2 versions")


def test_sources_table_is_consistent():
    stems = [s.stem(n) for s in data.SOURCES for n in s.keep]
    assert len(stems) == len(set(stems)) == 452
    for source in data.SOURCES:
        assert source.keep == tuple(sorted(source.keep)) and not set(source.keep) & set(source.excluded)
    plasma, mate = data.SOURCES[:2]
    assert plasma.stem("Kite/contents/images/2560x1600.jpg") == "Kite-2560x1600"  # the first 23 keep their names
    assert mate.stem("Aqua.jpg") == "Aqua" and stems[:2] == ["BytheWater-2560x1600", "ColdRipple-2560x1600"]


# ----------------------------------------------------------------------------- the real set

EXPECTED = {"plasma-workspace-wallpapers": 11, "mate-backgrounds": 12, "gcompris-qt-data": 121,
            "enlightenment-data": 14, "endless-sky-data": 258, "lxqt-themes": 11, "tuxpaint-data": 19,
            "digikam-data": 1, "palapeli-data": 5}


def _listing(deb: Path, folder: str) -> set[str] | None:
    """Names of the files directly in `folder` of a .deb, or None without dpkg-deb."""
    if shutil.which("dpkg-deb") is None:
        return None
    out = subprocess.run(["dpkg-deb", "-c", str(deb)], capture_output=True, text=True, check=True).stdout
    paths = [line.split()[-1].lstrip("./") for line in out.splitlines() if line.startswith("-")]  # plain files
    return {p[len(folder):] for p in paths if p.startswith(folder) and "/" not in p[len(folder):]}


def test_the_real_photo_set(tmp_path, monkeypatch):
    cached = cache_dir() / "train-photos" / "debs"  # the user's cache, before the test moves it
    monkeypatch.setenv("HIERCODEC_CACHE", str(tmp_path))
    debs_dir = tmp_path / "train-photos" / "debs"
    debs_dir.mkdir(parents=True)
    for deb in sorted(cached.glob("*.deb")) if cached.is_dir() else []:
        (debs_dir / deb.name).symlink_to(deb)  # read only; saves a 700 MB download
    debs = _fetch_or_skip("apt-get", lambda: {s.package: data.fetch_deb(s.package) for s in data.SOURCES})
    assert {s.package: len(s.keep) for s in data.SOURCES} == EXPECTED
    for source in data.SOURCES:
        reviewed = tuple(sorted((*source.keep, *source.excluded)))
        encoded = data.read_source(source, debs[source.package], reviewed)  # every kept and excluded file is there
        for name in source.keep:
            what = f"{name} of {source.package}"
            w, h = data.photo_size(source, encoded[name], what)
            if source.kind == "edj":
                assert w >= 3800 and h >= 2000, what  # the 4K image of each, not a smaller copy
            if source.package == "endless-sky-data":
                assert (w, h) == (720, 360), what
            assert data.decode_photo(source, encoded[name], what).shape == (h, w, 3)
        listed = _listing(debs[source.package], source.folder) if source.kind == "file" and source.excluded else None
        if listed is not None:  # every image of the folder was looked at: kept or excluded with a reason
            assert {n for n in listed if n.endswith((".jpg", ".png", ".webp"))} == set(reviewed), source.package
    gcompris = next(s for s in data.SOURCES if s.kind == "rcc")
    members = data.deb_members(debs[gcompris.package], {f"{gcompris.folder}{c}.rcc" for c in
                                                        {n.split("/")[0] for n in gcompris.keep}})
    webps = {p[len(gcompris.inner):] for body in members.values() for p in read_rcc(body) if p.endswith(".webp")}
    assert webps == set(gcompris.keep) | set(gcompris.excluded)
