"""The peer codecs of DESIGN.md ("Peers"), run for real through imagecodecs and pyoxipng.

Every peer is used in its exactly lossless mode at (close to) its strongest setting, and
``run_peer`` proves it: it decodes what it encoded and raises ``HiercodecError`` unless the
pixels come back bit for bit.  What was found out about each library's options (imagecodecs
2026.3.6: libjxl 0.11, libwebp 1.6, openjpeg 2.5, charls 2.4, libavif 1.4 + aom; pyoxipng 9.1):

- ``png``: Pillow writes a PNG, ``oxipng.optimize_from_memory(level=6)`` recodes it with
  oxipng's strongest preset (``-o 6``, the same as ``-o max``: every row filter, libdeflate
  level 12).  ``optimize_alpha`` stays off (it rewrites the colour of transparent pixels);
  ``strip=safe`` drops only metadata that does not change rendering (Pillow writes none).
  oxipng may store gray, palette or tRNS forms; decoding converts back to the input's mode,
  which is exact.
- ``jpegxl``: ``jpegxl_encode(lossless=True, effort=9)``.  Careful: ``distance=0`` (and
  ``level=100``) are NOT lossless in imagecodecs (they keep the XYB/VarDCT path: max error 12
  on astronaut); only ``lossless=True`` selects modular lossless.
- ``webp``: ``webp_encode(lossless=True, level=100, method=6)`` (= ``cwebp -lossless -z 9``).
  imagecodecs keeps the colour of fully transparent pixels (round trips checked), but libwebp
  drops an all-opaque alpha channel, and WebP has no gray: gray is coded as R=G=B (the
  subtract-green transform makes the copies nearly free) and opaque alpha is restored as 255
  on decode; both are checked exactly.
- ``jpeg2000``: ``jpeg2k_encode(reversible=True, codecformat='j2k')``: 5/3 reversible wavelet,
  reversible colour transform (``mct``) for RGB, no quality layers given, so no rate
  truncation; raw J2K codestream (the JP2 box wrapper only adds bytes).
- ``jpegls``: ``jpegls_encode(level=0)``: level is JPEG-LS NEAR, 0 = lossless.
- ``avif``: ``avif_encode(level=100, speed=0, codec=AOM, pixelformat=YUV444,
  matrix=IDENTITY)``: quality 100 gives the lossless quantizer, the identity matrix in 4:4:4
  codes G, B, R planes without a lossy colour conversion; gray goes as 4:0:0 with no matrix
  given (libavif refuses identity for 4:0:0).  Lossless AV1
  needs libaom (rav1e and SVT are not in the wheel and cannot do it).  YCgCo-R
  (``matrix=YCGCO_RE``, better for lossless) is refused by this libavif build ("Reformat
  failed").  Speed 0 is the slowest/strongest, like JPEG XL effort 9 (about 12 s for a
  512x512 image here).  libavif also drops all-opaque alpha; restored as for WebP.

All six are exactly lossless for uint8 gray, RGB and RGBA; none had to be left out.  A peer
whose backend is missing from the installed imagecodecs is left out of ``available_peers``.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from hiercodec.errors import HiercodecError, ImageError

__all__ = ["PEERS", "Peer", "PeerResult", "available_peers", "backend_available", "run_peer"]


@dataclass(frozen=True)
class PeerResult:
    codec: str
    nbytes: int
    encode_seconds: float
    decode_seconds: float


@dataclass(frozen=True)
class Peer:
    """One peer codec: how it is called, and which backend it needs."""

    name: str
    settings: str  # the call, for reports
    backend: str  # imagecodecs codec class name (e.g. "JPEGXL"), or "oxipng"
    encode: Callable[[np.ndarray], bytes]
    # decode(data, shape): shape is the original image's, as a file header would give it;
    # only used to put back the layout (channels) the codec stored differently.
    decode: Callable[[bytes, tuple[int, ...]], np.ndarray]

    def available(self) -> bool:
        return backend_available(self.backend)


def backend_available(backend: str) -> bool:
    """Whether a peer's backend is installed: an imagecodecs codec class name ("JPEGXL"), or
    "oxipng" (pyoxipng and Pillow). Shared with the lossy peers (hiercodec.bench.peers_lossy)."""
    if backend == "oxipng":
        try:
            import oxipng  # noqa: F401
            import PIL  # noqa: F401
        except ImportError:
            return False
        return True
    try:
        import imagecodecs
    except ImportError:
        return False
    codec = getattr(imagecodecs, backend, None)
    return bool(getattr(codec, "available", False))


# ----------------------------------------------------------------------------- helpers


def _restore_layout(decoded: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Undo the two layout changes a lossless codec may make, and nothing else.

    - an all-opaque alpha channel dropped by the encoder comes back as 255;
    - a gray image coded as R=G=B comes back as one channel, only if the copies are equal.
    Anything else is returned as decoded, so that the exact comparison fails.
    """
    decoded = np.asarray(decoded)
    if decoded.shape == shape:
        return decoded
    if len(shape) == 3 and shape[2] == 4 and decoded.shape == (*shape[:2], 3):
        alpha = np.full((*shape[:2], 1), 255, dtype=decoded.dtype)
        return np.concatenate([decoded, alpha], axis=2)
    if len(shape) == 2 and decoded.shape == (*shape, 3):
        if np.array_equal(decoded[..., 0], decoded[..., 1]) and np.array_equal(decoded[..., 0], decoded[..., 2]):
            return decoded[..., 0]
    return decoded


def _mode(shape: tuple[int, ...]) -> str:
    return "L" if len(shape) == 2 else {3: "RGB", 4: "RGBA"}[shape[2]]


def _png_encode(image: np.ndarray) -> bytes:
    import oxipng
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image, mode=_mode(image.shape)).save(buf, format="PNG", compress_level=1)
    return oxipng.optimize_from_memory(buf.getvalue(), level=6, strip=oxipng.StripChunks.safe())


def _png_decode(data: bytes, shape: tuple[int, ...]) -> np.ndarray:
    from PIL import Image

    mode = _mode(shape)
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        if im.mode != mode:
            im = im.convert(mode)  # palette / gray / tRNS forms chosen by oxipng: exact
        return np.array(im)


def _imagecodecs():
    import imagecodecs

    return imagecodecs


def _jpegxl_encode(image: np.ndarray) -> bytes:
    return _imagecodecs().jpegxl_encode(image, lossless=True, effort=9)


def _jpegxl_decode(data: bytes, shape: tuple[int, ...]) -> np.ndarray:
    return _restore_layout(_imagecodecs().jpegxl_decode(data), shape)


def _jpegxl_default_encode(image: np.ndarray) -> bytes:
    return _imagecodecs().jpegxl_encode(image, lossless=True, effort=7)  # libjxl's (and cjxl's) default effort


def _webp_encode(image: np.ndarray) -> bytes:
    if image.ndim == 2:  # WebP has no gray format
        image = np.repeat(image[..., None], 3, axis=2)
    return _imagecodecs().webp_encode(image, level=100, lossless=True, method=6)


def _webp_decode(data: bytes, shape: tuple[int, ...]) -> np.ndarray:
    return _restore_layout(_imagecodecs().webp_decode(data), shape)


def _jpeg2k_encode(image: np.ndarray) -> bytes:
    return _imagecodecs().jpeg2k_encode(image, reversible=True, codecformat="j2k")


def _jpeg2k_decode(data: bytes, shape: tuple[int, ...]) -> np.ndarray:
    return _restore_layout(_imagecodecs().jpeg2k_decode(data), shape)


def _jpegls_encode(image: np.ndarray) -> bytes:
    return _imagecodecs().jpegls_encode(image, level=0)


def _jpegls_decode(data: bytes, shape: tuple[int, ...]) -> np.ndarray:
    return _restore_layout(_imagecodecs().jpegls_decode(data), shape)


def _avif_encode(image: np.ndarray) -> bytes:
    ic = _imagecodecs()
    options = dict(level=int(ic.AVIF.QUALITY.LOSSLESS), speed=int(ic.AVIF.SPEED.SLOWEST), codec=ic.AVIF.CODEC_CHOICE.AOM)
    if image.ndim == 3:  # gray is coded 4:0:0, where libavif refuses an explicit identity matrix
        options.update(pixelformat=ic.AVIF.PIXEL_FORMAT.YUV444, matrix=ic.AVIF.MATRIX_COEFFICIENTS.IDENTITY)
    return ic.avif_encode(image, **options)


def _avif_decode(data: bytes, shape: tuple[int, ...]) -> np.ndarray:
    return _restore_layout(_imagecodecs().avif_decode(data), shape)


#: name -> Peer, in the order benchmarks list them.
PEERS: dict[str, Peer] = {
    "png": Peer("png", "Pillow PNG -> oxipng.optimize_from_memory(level=6, strip=safe)", "oxipng",
                _png_encode, _png_decode),
    "jpegxl": Peer("jpegxl", "imagecodecs.jpegxl_encode(lossless=True, effort=9)", "JPEGXL",
                   _jpegxl_encode, _jpegxl_decode),
    "jpegxl-e7": Peer("jpegxl-e7", "imagecodecs.jpegxl_encode(lossless=True, effort=7)", "JPEGXL",
                      _jpegxl_default_encode, _jpegxl_decode),
    "webp": Peer("webp", "imagecodecs.webp_encode(lossless=True, level=100, method=6)", "WEBP",
                 _webp_encode, _webp_decode),
    "jpeg2000": Peer("jpeg2000", "imagecodecs.jpeg2k_encode(reversible=True, codecformat='j2k')", "JPEG2K",
                     _jpeg2k_encode, _jpeg2k_decode),
    "jpegls": Peer("jpegls", "imagecodecs.jpegls_encode(level=0)", "JPEGLS",
                   _jpegls_encode, _jpegls_decode),
    "avif": Peer("avif", "imagecodecs.avif_encode(level=100, speed=0, codec=AOM, pixelformat=YUV444, "
                 "matrix=IDENTITY)", "AVIF", _avif_encode, _avif_decode),
}


def available_peers() -> list[str]:
    """The peers whose backend is installed, in PEERS order."""
    return [name for name, peer in PEERS.items() if peer.available()]


def _check_image(image: np.ndarray) -> np.ndarray:
    if not isinstance(image, np.ndarray):
        raise ImageError(f"peer codecs take a numpy array, not {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ImageError(f"peer codecs take 8-bit images (uint8), not {image.dtype}")
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (3, 4))):
        raise ImageError(f"peer codecs take (H, W), (H, W, 3) or (H, W, 4) images, not shape {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ImageError(f"the image is empty (shape {image.shape})")
    return np.ascontiguousarray(image)


def run_peer(name: str, image: np.ndarray) -> PeerResult:
    """Encode ``image`` with peer ``name``, decode it, check the pixels are identical, time both."""
    peer = PEERS.get(name)
    if peer is None:
        raise HiercodecError(f"unknown peer codec {name!r}; choose from {list(PEERS)}")
    if not peer.available():
        what = "pyoxipng and pillow" if peer.backend == "oxipng" else f"imagecodecs with its {peer.backend} codec"
        raise HiercodecError(f"peer codec {name!r} needs {what}: pip install imagecodecs pyoxipng")
    image = _check_image(image)
    try:
        t0 = time.perf_counter()
        data = bytes(peer.encode(image))
        t1 = time.perf_counter()
        decoded = peer.decode(data, image.shape)
        t2 = time.perf_counter()
    except HiercodecError:
        raise
    except Exception as exc:  # a library error on this image: say which peer and why
        raise HiercodecError(f"peer codec {name!r} failed on a {image.shape} image: {type(exc).__name__}: {exc}") from exc

    if decoded.dtype != image.dtype or decoded.shape != image.shape or not np.array_equal(decoded, image):
        if decoded.shape == image.shape:
            diff = np.abs(decoded.astype(np.int64) - image.astype(np.int64))
            detail = f"{int(np.count_nonzero(diff))} values differ, by up to {int(diff.max())}"
        else:
            detail = f"decoded shape {decoded.shape} {decoded.dtype}, expected {image.shape} {image.dtype}"
        raise HiercodecError(f"peer codec {name!r} is not lossless on this image: {detail}")
    if not data:
        raise HiercodecError(f"peer codec {name!r} produced an empty file")
    return PeerResult(codec=name, nbytes=len(data), encode_seconds=t1 - t0, decode_seconds=t2 - t1)

