"""The held-out photos of DESIGN.md ("Data"): never trained on, used to measure bits/dim.

Three sources, all from package registries:

- scikit-image's bundled RGB photos (astronaut, chelsea, coffee, motorcycle_left,
  motorcycle_right), read from the PNG files shipped inside the installed ``skimage.data``;
- ``face``: ``scipy/misc/face.dat`` from the scipy 1.9.3 wheel (bz2-compressed raw uint8
  bytes of shape (768, 1024, 3); decoded with bz2 + numpy.frombuffer, never unpickled);
- the 8-bit RGB natural photographs of Debian's ``libjxl-testdata`` package
  (``apt-get download`` + ``dpkg -x``, no root install).

Fetched images are decoded once and cached as plain PNG files (pixels only) under
``cache_dir()/heldout``; later calls do no network.  Every image's pixels are checked
against a pinned SHA-256, so the held-out set cannot drift silently between machines or
package versions.
"""

from __future__ import annotations

import bz2
import hashlib
import io
import os
import pathlib
import shutil
import sys
import tempfile
import zipfile

import numpy as np

from hiercodec.errors import HiercodecError
from hiercodec.fetch import deb_members, run

__all__ = [
    "HELDOUT_NAMES",
    "JXL_TESTDATA_PHOTOS",
    "SKIMAGE_NAMES",
    "cache_dir",
    "heldout_images",
    "needs_fetch",
]

#: scikit-image's bundled RGB photographs (files ``skimage/data/<name>.png``).
SKIMAGE_NAMES: list[str] = ["astronaut", "chelsea", "coffee", "motorcycle_left", "motorcycle_right"]

#: The natural photographs chosen from Debian's ``libjxl-testdata`` (paths below
#: ``usr/share/libjxl-testdata/``), all 8-bit RGB PNGs.  Everything else in the package
#: was looked at and left out:
#: - ``jxl/hdr_room.png`` and every ``*_709_g1`` / ``*_2020_g1`` / ``*16bit_709*`` file are
#:   16-bit PNGs; ``jxl/flower/flower_alpha.png`` and
#:   ``wesaturate/500px/tmshre_riaphotographs_alpha.png`` carry alpha (and repeat photos
#:   already chosen); ``cvo9xd_keong_macan_grayscale.png`` is a gray copy of a chosen photo;
#: - ``wesaturate/64px/*_srgb8`` and ``raw.pixls/*_srgb8*`` are 64x64 crops, mostly flat
#:   patches of sensor noise, too small to say anything about a photo codec;
#: - ``wide-gamut-tests/``, ``pngsuite/``, ``dots/``, ``blending/``, ``grayscale_patches``,
#:   ``spline_on_first_frame`` are synthetic test patterns.
JXL_TESTDATA_PHOTOS: dict[str, str] = {
    "jxl-flower": "jxl/flower/flower.png",  # 2268x1512 camera photo
    "jxl-cvo9xd_keong_macan_srgb8": "external/wesaturate/500px/cvo9xd_keong_macan_srgb8.png",
    "jxl-tmshre_riaphotographs_srgb8": "external/wesaturate/500px/tmshre_riaphotographs_srgb8.png",
    "jxl-u76c0g_bliznaca_srgb8": "external/wesaturate/500px/u76c0g_bliznaca_srgb8.png",
}

#: Every held-out image, in a fixed order.
HELDOUT_NAMES: list[str] = [*SKIMAGE_NAMES, "face", *JXL_TESTDATA_PHOTOS]

# SHA-256 of each image's pixels (see _pixel_digest): shape and dtype are part of it.
# Measured on the first fetch (scikit-image 0.26, scipy 1.9.3 wheel,
# libjxl-testdata 0.0~git20230110.d6168ff-1).
_PIXEL_SHA256: dict[str, str] = {
    "astronaut": "cc13a7e7c2b19ff34c7aff17db94da545bfc80592474d5a5f41b1282e0ab5ad5",  # (512, 512, 3)
    "chelsea": "e1b0b0f590712c82ac3872c52e2a0a242e6e038a0ef9f7d0069457597f3a5d26",  # (300, 451, 3)
    "coffee": "ec4931bdac7ec4cbfd851992dd820d9667b2b5e2956689a51731e87e24b55c85",  # (400, 600, 3)
    "motorcycle_left": "035fa6a77319ebad134e296a8d9b9b72fda9360ab57fdd80ac05baf2eaf24d4c",  # (500, 741, 3)
    "motorcycle_right": "46518f2ceb93a9841b8fd67ed2e2d9d514fbb6c4fefebf6a532516ea6ddfc094",  # (500, 741, 3)
    "face": "87dc1c1cc17384067acf49809c358eddb745626767c4eeeeece9f2a55d5b156f",  # (768, 1024, 3)
    "jxl-flower": "7c90dbb5be22f2a2faba40b4f90fa9e4add1f1900757528d5b3854d87db5596c",  # (1512, 2268, 3)
    "jxl-cvo9xd_keong_macan_srgb8": "baffecdc4d09da30935181886a52c3719dba37459accdb620081928dfa406118",  # (500, 500, 3)
    "jxl-tmshre_riaphotographs_srgb8": "6b898b4acc18e5cff1c25468f07efc1a07824e24f3e57ca2353fd10150631017",  # (500, 500, 3)
    "jxl-u76c0g_bliznaca_srgb8": "dec15d888c0aa0250c09717d65e87c2d8d21fecdb73da08f176211a8a6fb273b",  # (500, 500, 3)
}

_SCIPY_VERSION = "1.9.3"
_FACE_SHAPE = (768, 1024, 3)
_JXL_PACKAGE = "libjxl-testdata"
_JXL_ROOT = "usr/share/libjxl-testdata/"


# ----------------------------------------------------------------------------- cache


def cache_dir() -> pathlib.Path:
    """``$HIERCODEC_CACHE`` or ``~/.cache/hiercodec``; created on demand."""
    env = os.environ.get("HIERCODEC_CACHE")
    path = pathlib.Path(env).expanduser() if env else pathlib.Path.home() / ".cache" / "hiercodec"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise HiercodecError(
            f"cannot create the cache folder {path} ({exc.strerror}); set HIERCODEC_CACHE to a writable folder"
        ) from None
    return path


def _images_dir() -> pathlib.Path:
    path = cache_dir() / "heldout"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _downloads_dir() -> pathlib.Path:
    path = cache_dir() / "downloads"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _cached_png(name: str) -> pathlib.Path:
    return _images_dir() / f"{name}.png"


def needs_fetch(name: str) -> bool:
    """True if ``name`` must still be downloaded (it is neither bundled nor cached)."""
    _check_names([name])
    if name in SKIMAGE_NAMES:
        return False
    return not _cached_png(name).is_file()


# ----------------------------------------------------------------------------- public


def heldout_images(names: list[str] | None = None) -> dict[str, np.ndarray]:
    """Held-out photos as ``name -> uint8 array (H, W, 3)``, in the order asked for.

    ``names`` defaults to all of ``HELDOUT_NAMES``.  Images not yet cached are fetched
    once (one line of progress on stderr each).
    """
    names = list(HELDOUT_NAMES if names is None else names)
    _check_names(names)
    if "face" in names and needs_fetch("face"):
        _fetch_face()
    if any(n in JXL_TESTDATA_PHOTOS and needs_fetch(n) for n in names):
        # One package holds them all: take every chosen photo from it at once.
        _fetch_jxl_testdata([n for n in JXL_TESTDATA_PHOTOS if needs_fetch(n)])
    out: dict[str, np.ndarray] = {}
    for name in names:
        if name in SKIMAGE_NAMES:
            image = _load_skimage(name)
        else:
            path = _cached_png(name)
            image = _read_png_rgb8(path.read_bytes(), str(path))
        _check_digest(name, image)
        out[name] = image
    return out


def _check_names(names: list[str]) -> None:
    unknown = [n for n in names if n not in HELDOUT_NAMES]
    if unknown:
        raise HiercodecError(f"unknown held-out image(s) {unknown}; choose from {HELDOUT_NAMES}")


def _pixel_digest(image: np.ndarray) -> str:
    h = hashlib.sha256()
    h.update(f"{image.dtype.str}{image.shape}".encode())
    h.update(np.ascontiguousarray(image).tobytes())
    return h.hexdigest()


def _check_digest(name: str, image: np.ndarray) -> None:
    expected = _PIXEL_SHA256.get(name)
    if expected is None or _pixel_digest(image) == expected:
        return
    if name in SKIMAGE_NAMES:
        raise HiercodecError(
            f"held-out image {name!r} from scikit-image has different pixels than hiercodec expects; "
            "install a scikit-image whose bundled data is unchanged (pip install 'scikit-image>=0.22')"
        )
    raise HiercodecError(
        f"held-out image {name!r} has different pixels than hiercodec expects; "
        f"delete {_cached_png(name)} and run again to fetch it anew"
    )


# ----------------------------------------------------------------------------- images


def _read_png_rgb8(data: bytes, what: str) -> np.ndarray:
    """Decode a PNG that must be 8-bit RGB (palette PNGs are expanded exactly)."""
    from PIL import Image

    # Pillow silently narrows 16-bit RGB to 8 bits, so read the bit depth from IHDR.
    if len(data) < 26 or data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        raise HiercodecError(f"{what} is not a PNG file; delete it and run again")
    bit_depth, color_type = data[24], data[25]
    if bit_depth != 8 or color_type not in (2, 3):
        raise HiercodecError(f"{what} is not an 8-bit RGB PNG (bit depth {bit_depth}, color type {color_type})")
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        if im.mode == "P":
            if "transparency" in im.info:
                raise HiercodecError(f"{what} has transparency; held-out images are opaque RGB")
            im = im.convert("RGB")
        if im.mode != "RGB":
            raise HiercodecError(f"{what} decodes to mode {im.mode}, not RGB")
        image = np.array(im, dtype=np.uint8)
    if image.ndim != 3 or image.shape[2] != 3:
        raise HiercodecError(f"{what} decodes to shape {image.shape}, not (H, W, 3)")
    return image


def _write_png_atomic(path: pathlib.Path, image: np.ndarray) -> None:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image, mode="RGB").save(buf, format="PNG", compress_level=9)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(buf.getvalue())
    os.replace(tmp, path)


def _load_skimage(name: str) -> np.ndarray:
    try:
        import skimage.data
    except ImportError:
        raise HiercodecError(
            f"held-out image {name!r} comes with scikit-image, which is not installed: pip install scikit-image"
        ) from None
    path = pathlib.Path(skimage.data.__file__).parent / f"{name}.png"
    if path.is_file():
        return _read_png_rgb8(path.read_bytes(), str(path))
    # Bundled file moved: fall back to the public loaders (no network for these five).
    if name.startswith("motorcycle_"):
        left, right, _ = skimage.data.stereo_motorcycle()
        image = left if name == "motorcycle_left" else right
    else:
        image = getattr(skimage.data, name)()
    image = np.ascontiguousarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise HiercodecError(f"scikit-image's {name!r} is not an 8-bit RGB image ({image.dtype}, {image.shape})")
    return image


# ----------------------------------------------------------------------------- fetching


def _progress(message: str) -> None:
    print(f"hiercodec: {message}", file=sys.stderr, flush=True)


def _pip_download_command(dest: pathlib.Path) -> list[str]:
    # Any platform's wheel holds the same face.dat; naming one makes the download
    # independent of this interpreter (scipy 1.9.3 has no wheel for Python >= 3.12).
    return [
        sys.executable, "-m", "pip", "download", f"scipy=={_SCIPY_VERSION}", "--no-deps",
        "--only-binary=:all:", "--platform", "manylinux2014_x86_64", "--python-version", "3.11",
        "--implementation", "cp", "--abi", "cp311", "--disable-pip-version-check", "-d", str(dest),
    ]


def _fetch_face() -> None:
    dest = _downloads_dir()
    wheels = sorted(dest.glob(f"scipy-{_SCIPY_VERSION}-*.whl"))
    if not wheels:
        by_hand = (
            f"pip download scipy=={_SCIPY_VERSION} --no-deps --only-binary=:all: "
            f"--platform manylinux2014_x86_64 --python-version 3.11 -d {dest}"
        )
        _progress(f"fetching 'face' from the scipy {_SCIPY_VERSION} wheel (pip download) into {dest}")
        run(_pip_download_command(dest), dest, by_hand, f"the scipy {_SCIPY_VERSION} wheel")
        wheels = sorted(dest.glob(f"scipy-{_SCIPY_VERSION}-*.whl"))
        if not wheels:
            raise HiercodecError(f"pip reported success but no scipy {_SCIPY_VERSION} wheel is in {dest}; run by hand: {by_hand}")
    wheel = wheels[0]
    try:
        with zipfile.ZipFile(wheel) as zf:
            info = zf.getinfo("scipy/misc/face.dat")
            if info.file_size > 16 << 20:
                raise HiercodecError(f"scipy/misc/face.dat in {wheel} is implausibly large; delete the wheel and run again")
            packed = zf.read(info)
        raw = bz2.decompress(packed)  # raw uint8 bytes, no pickle anywhere
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
        raise HiercodecError(f"cannot read scipy/misc/face.dat from {wheel} ({exc}); delete it and run again") from None
    if len(raw) != int(np.prod(_FACE_SHAPE)):
        raise HiercodecError(f"face.dat in {wheel} holds {len(raw)} bytes, not {np.prod(_FACE_SHAPE)}; delete it and run again")
    face = np.frombuffer(raw, dtype=np.uint8).reshape(_FACE_SHAPE).copy()
    _check_digest("face", face)
    _write_png_atomic(_cached_png("face"), face)
    wheel.unlink(missing_ok=True)  # the PNG is the cache; the 30+ MB wheel is not needed again


def _fetch_jxl_testdata(names: list[str]) -> None:
    dest = _downloads_dir()
    debs = sorted(dest.glob(f"{_JXL_PACKAGE}_*.deb"))
    by_hand = f"cd {dest} && apt-get download {_JXL_PACKAGE}"
    if not debs:
        _progress(f"fetching {len(names)} photo(s) from Debian's {_JXL_PACKAGE} (apt-get download, 56 MB) into {dest}")
        run(["apt-get", "download", _JXL_PACKAGE], dest, by_hand + "  (or fetch the .deb from a Debian mirror into that folder)", f"Debian's {_JXL_PACKAGE}")
        debs = sorted(dest.glob(f"{_JXL_PACKAGE}_*.deb"))
        if not debs:
            raise HiercodecError(f"apt-get reported success but no {_JXL_PACKAGE} .deb is in {dest}; run by hand: {by_hand}")
    deb = debs[-1]
    wanted = {_JXL_ROOT + JXL_TESTDATA_PHOTOS[n]: n for n in names}
    if shutil.which("dpkg"):
        with tempfile.TemporaryDirectory(dir=dest) as tmp:
            run(["dpkg", "-x", str(deb), tmp], dest, f"dpkg -x {deb} <folder>", f"the files of {deb.name}")
            found = {p: (pathlib.Path(tmp) / p).read_bytes() for p in wanted if (pathlib.Path(tmp) / p).is_file()}
    else:
        found = deb_members(deb, set(wanted))
    missing = sorted(set(wanted) - set(found))
    if missing:
        raise HiercodecError(f"{deb.name} lacks {missing}; this package version is not the one hiercodec knows")
    for path, name in wanted.items():
        image = _read_png_rgb8(found[path], f"{deb.name}:{path}")
        _check_digest(name, image)
        _write_png_atomic(_cached_png(name), image)
    deb.unlink(missing_ok=True)  # the PNGs are the cache; the 56 MB package is not needed again
