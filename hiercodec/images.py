"""Images in and out: a path, a PIL image or a numpy array -> uint8 (H, W, C), C in 1..4, and back.

hiercodec codes 8-bit gray (C=1), gray + alpha (C=2), RGB (C=3) and RGBA (C=4) exactly. Anything
that cannot be represented that way without loss (16-bit samples, float images, CMYK, premultiplied
alpha, ...) is refused with an `ImageError` that says what to do; nothing is converted lossily and
nothing is dropped silently (a PNG's transparency becomes an alpha channel; an animation is
refused rather than cut to its first frame).
"""

from __future__ import annotations

import io
import os
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from hiercodec.errors import HiercodecError, ImageError
from hiercodec.fileio import atomic_write

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".ppm", ".pgm")
MAX_DIM = 65535  # the container's limit on height and width (bitstreams/FORMAT.md)

_AS_IS = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4}
_MODE_OF = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}
_COLOR_NAME = {1: "gray", 2: "gray+alpha", 3: "RGB", 4: "RGBA"}
_WIDE_MODES = {"I", "F", "I;16", "I;16B", "I;16L", "I;16N", "I;16S", "I;32", "I;32B", "I;32L"}
_SIXTEEN_BIT = "16-bit images are not supported: convert to 8 bits per sample first"
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, zlib.error, IndexError)


def luma(rgb: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 luma of 8-bit RGB samples (..., 3), rounded, in integers only:
    floor((299 R + 587 G + 114 B + 500) / 1000) as int64 (...). Gray training batches and the
    Grayscale PixelCNN's psi(x) (bitstreams/FORMAT.md) both use it."""
    b = rgb.astype(np.int64)
    return (b[..., 0] * 299 + b[..., 1] * 587 + b[..., 2] * 114 + 500) // 1000


def color_name(channels: int) -> str:
    """'gray', 'gray+alpha', 'RGB' or 'RGBA'."""
    return _COLOR_NAME.get(channels, f"{channels}-channel")


def _raw_modes(im: Image.Image) -> list[str]:
    """The raw modes of a not-yet-loaded image's tiles (how samples are stored in the file)."""
    modes = []
    for tile in getattr(im, "tile", None) or []:
        args = tile[3] if isinstance(tile, tuple) and len(tile) > 3 else getattr(tile, "args", None)
        if isinstance(args, tuple):
            args = args[0] if args else None
        if isinstance(args, str):
            modes.append(args)
    return modes


def _check_depth(im: Image.Image, name: str) -> None:
    """Refuse samples wider than 8 bits, before Pillow silently narrows them (it opens a 16-bit
    RGB PNG as mode 'RGB', dropping the low byte of every sample)."""
    if im.mode in _WIDE_MODES:
        raise ImageError(f"{name}: {_SIXTEEN_BIT}" if name else _SIXTEEN_BIT)
    for raw in _raw_modes(im):
        if ";16" in raw or ";32" in raw or raw.startswith(("I;", "F;")) or raw in ("I", "F"):
            raise ImageError(f"{name}: {_SIXTEEN_BIT}" if name else _SIXTEEN_BIT)


def _from_pil(im: Image.Image, name: str) -> np.ndarray:
    """Exact conversion of a loaded PIL image to uint8 (H, W, C); name prefixes error messages."""
    prefix = f"{name}: " if name else ""
    mode = im.mode
    if mode in _WIDE_MODES:
        raise ImageError(prefix + _SIXTEEN_BIT)
    if mode == "1":
        im = im.convert("L")  # 0 / 255
    elif mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif mode == "PA":
        im = im.convert("RGBA")
    elif mode == "RGBX":
        im = im.convert("RGB")  # X is padding
    elif mode in ("L", "RGB") and "transparency" in im.info:
        # PNG tRNS: one gray value or colour is transparent. Keep that as an alpha channel.
        im = im.convert("LA" if mode == "L" else "RGBA")
    elif mode not in _AS_IS:
        hint = {"La": "LA (straight alpha)", "RGBa": "RGBA (straight alpha)"}.get(mode, "RGB or RGBA")
        raise ImageError(f"{prefix}images in mode {mode} are not supported: convert to {hint} first "
                         "(hiercodec codes 8-bit gray, gray+alpha, RGB and RGBA)")
    array = np.asarray(im, dtype=np.uint8)
    if array.ndim == 2:
        array = array[:, :, None]
    return _checked(np.ascontiguousarray(array), name)


def _checked(array: np.ndarray, name: str) -> np.ndarray:
    prefix = f"{name}: " if name else ""
    h, w = array.shape[:2]
    if h < 1 or w < 1:
        raise ImageError(f"{prefix}the image is empty ({w}x{h}); it must be at least 1x1")
    if h > MAX_DIM or w > MAX_DIM:
        raise ImageError(f"{prefix}the image is {w}x{h}; hiercodec codes at most {MAX_DIM} pixels "
                         "per side: cut it into parts first")
    return array


def _from_numpy(array: np.ndarray) -> np.ndarray:
    if array.dtype != np.uint8:
        hint = (" (16-bit images are not supported: convert to 8 bits per sample first)"
                if array.dtype in (np.uint16, np.int16, np.int32, np.uint32) else "")
        raise ImageError(f"image array must have dtype uint8, not {array.dtype}{hint}")
    if array.ndim == 2:
        array = array[:, :, None]
    elif not (array.ndim == 3 and 1 <= array.shape[2] <= 4):
        raise ImageError(f"image array of shape {array.shape} is not an image: expected (H, W) "
                         "gray or (H, W, C) with C = 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA")
    return _checked(np.ascontiguousarray(array), "")


def _from_path(path: Path) -> np.ndarray:
    name = str(path)
    try:
        if not path.exists():
            raise ImageError(f"{name}: no such file")
        if path.is_dir():
            raise ImageError(f"{name} is a directory, not an image file")
        with Image.open(path) as im:
            frames = getattr(im, "n_frames", 1)
            if frames > 1:
                raise ImageError(f"{name} holds {frames} frames (an animation or a multi-page "
                                 "file); hiercodec codes one image: extract one frame first")
            _check_depth(im, name)
            im.load()
            return _from_pil(im, name)
    except HiercodecError:
        raise
    except UnidentifiedImageError:
        raise ImageError(f"{name} is not an image file (or one in a format Pillow cannot read)") from None
    except PermissionError:
        raise ImageError(f"{name}: permission denied") from None
    except Image.DecompressionBombError as err:
        raise ImageError(f"{name}: image is too large to open safely ({err})") from None
    except MemoryError:
        raise ImageError(f"{name}: image is too large to fit in memory") from None
    except _DECODE_ERRORS as err:
        detail = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ImageError(f"{name}: the image file is truncated or damaged ({detail})") from None


def load_image(src: str | os.PathLike | Image.Image | np.ndarray) -> np.ndarray:
    """The image as a uint8 array (H, W, C), C = 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA.

    `src` is a file path, a PIL image or a uint8 numpy array of shape (H, W) or (H, W, C).
    Conversions are exact only: 1-bit -> gray 0/255, palette -> RGB (RGBA if it has
    transparency), a PNG's transparent colour -> alpha channel. Raises ImageError otherwise.
    """
    if isinstance(src, np.ndarray):
        return _from_numpy(src)
    if isinstance(src, Image.Image):
        _check_depth(src, "")
        try:
            src.load()
        except _DECODE_ERRORS as err:
            raise ImageError(f"the image cannot be read: it is truncated or damaged ({err})") from None
        return _from_pil(src, "")
    if isinstance(src, (str, os.PathLike)):
        return _from_path(Path(src))
    raise ImageError(f"cannot read an image from a {type(src).__name__}: pass a file path, a PIL "
                     "image or a uint8 numpy array")


def to_public(array: np.ndarray) -> np.ndarray:
    """The array the API returns: (H, W) for gray, (H, W, C) for C = 2, 3, 4."""
    return array[:, :, 0] if array.ndim == 3 and array.shape[2] == 1 else array


def png_bytes(array: np.ndarray) -> bytes:
    """The image (as load_image accepts it) encoded as a PNG."""
    array = _from_numpy(np.asarray(array))
    data = array[:, :, 0] if array.shape[2] == 1 else array
    buf = io.BytesIO()
    Image.fromarray(data, _MODE_OF[array.shape[2]]).save(buf, format="PNG")
    return buf.getvalue()


def save_image(array: np.ndarray, path: str | os.PathLike, *, force: bool = False) -> None:
    """Write the image as a PNG file, atomically (never a half-written file). The path must end
    in .png; an existing file is replaced only with force=True (else OutputExistsError)."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ImageError(f"{path}: hiercodec writes PNG images only; give a file name ending in .png")
    atomic_write(path, png_bytes(array), force)


def images_in(path: Path) -> list[Path]:
    """[path] for a file; for a folder, its image files (by suffix) in name order."""
    if not path.exists():
        raise HiercodecError(f"{path}: no such file or directory")
    if not path.is_dir():
        return [path]
    found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not found:
        raise HiercodecError(f"{path} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return found


# ---------------------------------------------------------------------------------------------
# Sets of images (set files, format version 4)


def load_set(path: str | os.PathLike) -> list[np.ndarray] | np.ndarray:
    """The images of a set: an .npz file's array `images` (N, H, W) or (N, H, W, C) of uint8 (no
    pickles are loaded), or the images of a folder in name order. HiercodecError otherwise."""
    path = Path(path)
    if path.is_dir():
        return [load_image(p) for p in images_in(path)]
    if path.suffix.lower() != ".npz":
        raise ImageError(f"{path}: a set of images is a folder of images or an .npz file with an array 'images'")
    try:
        with np.load(path, allow_pickle=False) as archive:
            if "images" not in archive.files:
                raise ImageError(f"{path}: no array 'images' in it (it has {', '.join(archive.files) or 'none'})")
            images = archive["images"]
    except (OSError, ValueError) as err:
        raise ImageError(f"{path}: not a readable .npz file ({err})") from None
    if images.dtype != np.uint8 or images.ndim not in (3, 4):
        raise ImageError(f"{path}: 'images' is {images.dtype} {images.shape}; a set is uint8 (N, H, W) or (N, H, W, C)")
    return images


def save_set(images: np.ndarray, path: str | os.PathLike, *, force: bool = False) -> None:
    """Write a set of images (N, H, W[, C]) as an .npz file (array `images`, atomically) or, for a
    path without a suffix, as a folder of PNG files 00000.png, 00001.png, ..."""
    path = Path(path)
    if path.suffix.lower() == ".npz":
        buffer = io.BytesIO()
        np.savez_compressed(buffer, images=images)
        atomic_write(path, buffer.getvalue(), force)
        return
    if path.suffix:
        raise ImageError(f"{path}: a set of images is written as an .npz file or a folder (a name without suffix)")
    path.mkdir(parents=True, exist_ok=True)
    digits = max(5, len(str(len(images) - 1)))
    for i, image in enumerate(images):
        save_image(image, path / f"{i:0{digits}d}.png", force=force)
