"""Lossy peer codecs for `hiercodec bench --lossy`: JPEG, WebP and JPEG XL through imagecodecs,
and `matched`, which finds the setting whose file is closest to a given rate.

The lossless peers are in hiercodec.bench.peers; this module shares its helpers (backend check,
image check). Each peer is called with one setting, its main rate knob, and otherwise a fixed
configuration (imagecodecs 2026.3.6: libjpeg-turbo, libwebp 1.6, libjxl 0.11):

- ``jpeg``: ``jpeg8_encode(level=quality, optimize=True)``, quality 1..100: libjpeg's standard
  quantization tables scaled by quality, 4:2:0 chroma (libjpeg's default), optimized Huffman
  tables (a lossless saving every modern tool makes).
- ``webp``: ``webp_encode(level=quality, lossless=False, method=6)``, quality 0..100, method 6
  the slowest and strongest, as for the lossless peer. WebP has no gray: a gray image is coded
  as R=G=B and decoded back to gray as the rounded mean of the three (which 4:2:0 YUV may leave
  slightly different).
- ``jpegxl``: ``jpegxl_encode(distance=d, effort=7, lossless=False)``, d from 25 down to 0.1:
  the Butteraugli distance, libjxl's native knob (``cjxl -d``; ``level`` = quality is only
  mapped onto it), effort 7 being cjxl's default.

Rates are bits per pixel, 8 x file bytes / (H x W), whatever the channel count.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from hiercodec.errors import HiercodecError, ImageError
from hiercodec.bench.peers import _check_image, _imagecodecs, backend_available
from hiercodec.bench.quality import ms_ssim, psnr

__all__ = ["LOSSY_PEERS", "LossyPeer", "PeerPoint", "available_lossy_peers", "lossy_peer", "code", "matched",
           "bits_per_pixel"]

_RATIO_STOP = 1.005  # a continuous setting is bisected until the bracket is narrower than 0.5 %


@dataclass(frozen=True)
class LossyPeer:
    """A lossy peer: how it is called with one setting, that setting's range and the curve grid."""

    name: str
    settings: str  # the call, for reports
    backend: str  # imagecodecs codec class name
    knob: str  # what the setting is ("quality", "distance")
    fewest: float  # the setting that gives the smallest files
    most: float  # the setting that gives the largest files
    integer: bool  # integer settings (quality) or continuous ones (distance)
    grid: tuple[float, ...]  # settings of the rate-distortion curve, smallest files first
    encode: Callable[[np.ndarray, float], bytes]
    decode: Callable[[bytes, tuple[int, ...]], np.ndarray]  # decode(data, the original's shape)

    def available(self) -> bool:
        return backend_available(self.backend)


@dataclass(frozen=True)
class PeerPoint:
    """One peer file of one image: its setting, size, quality and times."""

    peer: str
    setting: float
    nbytes: int
    bpp: float  # 8 x bytes / pixels
    psnr: float  # dB; inf if the decoded image is identical
    ms_ssim: float
    encode_s: float
    decode_s: float
    target_bpp: float | None = None  # the rate matched, for a point found by `matched`


def bits_per_pixel(nbytes: int, shape: tuple[int, ...]) -> float:
    """8 x bytes / (H x W): the rate of lossy codecs, per pixel whatever the channels."""
    return 8 * nbytes / (shape[0] * shape[1])


def _gray_back(decoded: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The decoded image in the original's layout: (H, W, 1) squeezed, and for a gray original
    coded as R=G=B (WebP) the rounded mean of the channels."""
    decoded = np.asarray(decoded)
    if decoded.ndim == 3 and decoded.shape[2] == 1:
        decoded = decoded[..., 0]
    if len(shape) == 2 and decoded.shape == (*shape, 3):
        decoded = np.rint(decoded.astype(np.float64).mean(axis=2)).astype(np.uint8)
    return decoded


def _jpeg_encode(image: np.ndarray, quality: float) -> bytes:
    return _imagecodecs().jpeg8_encode(image, level=int(quality), optimize=True)


def _jpeg_decode(data: bytes, shape: tuple[int, ...]) -> np.ndarray:
    return _gray_back(_imagecodecs().jpeg8_decode(data), shape)


def _webp_encode(image: np.ndarray, quality: float) -> bytes:
    if image.ndim == 2:  # WebP has no gray format
        image = np.repeat(image[..., None], 3, axis=2)
    return _imagecodecs().webp_encode(image, level=int(quality), lossless=False, method=6)


def _webp_decode(data: bytes, shape: tuple[int, ...]) -> np.ndarray:
    return _gray_back(_imagecodecs().webp_decode(data), shape)


def _jpegxl_encode(image: np.ndarray, distance: float) -> bytes:
    return _imagecodecs().jpegxl_encode(image, distance=float(distance), effort=7, lossless=False)


def _jpegxl_decode(data: bytes, shape: tuple[int, ...]) -> np.ndarray:
    return _gray_back(_imagecodecs().jpegxl_decode(data), shape)


_QUALITIES = (5, 10, 20, 30, 40, 50, 60, 70, 80, 85, 90, 95)

#: name -> LossyPeer, in the order benchmarks list them.
LOSSY_PEERS: dict[str, LossyPeer] = {
    "jpeg": LossyPeer("jpeg", "imagecodecs.jpeg8_encode(level=quality, optimize=True), 4:2:0 chroma", "JPEG8",
                      "quality", 1, 100, True, _QUALITIES, _jpeg_encode, _jpeg_decode),
    "webp": LossyPeer("webp", "imagecodecs.webp_encode(level=quality, lossless=False, method=6)", "WEBP",
                      "quality", 0, 100, True, _QUALITIES, _webp_encode, _webp_decode),
    "jpegxl": LossyPeer("jpegxl", "imagecodecs.jpegxl_encode(distance=d, effort=7, lossless=False)", "JPEGXL",
                        "distance", 25.0, 0.1, False,
                        (25.0, 15.0, 10.0, 7.0, 5.0, 3.5, 2.5, 1.8, 1.3, 1.0, 0.7, 0.5), _jpegxl_encode,
                        _jpegxl_decode),
}


def available_lossy_peers() -> list[str]:
    """The lossy peers whose imagecodecs codec is installed, in LOSSY_PEERS order."""
    return [name for name, peer in LOSSY_PEERS.items() if peer.available()]


def lossy_peer(name: str | LossyPeer) -> LossyPeer:
    """The LossyPeer of a name, or a HiercodecError saying what is wrong."""
    if isinstance(name, LossyPeer):
        peer = name
    else:
        peer = LOSSY_PEERS.get(name)
        if peer is None:
            raise HiercodecError(f"unknown lossy peer codec {name!r}; choose from {', '.join(LOSSY_PEERS)}")
    if not peer.available():
        raise HiercodecError(f"lossy peer codec {peer.name!r} needs imagecodecs with its {peer.backend} codec: "
                             "pip install imagecodecs")
    return peer


def _lossy_input(image: np.ndarray) -> np.ndarray:
    """(H, W) gray or (H, W, 3) RGB, uint8: what every lossy peer stores (JPEG has no alpha)."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    image = _check_image(image)
    if image.ndim == 3 and image.shape[2] != 3:
        raise ImageError(f"lossy peer codecs take gray or RGB images, not shape {image.shape} (JPEG stores no alpha)")
    return image


class _Encoder:
    """Encodes one image with one peer at most once per setting (bisection revisits none)."""

    def __init__(self, peer: LossyPeer, image: np.ndarray):
        self.peer, self.image = peer, image
        self.files: dict[float, tuple[bytes, float]] = {}  # setting -> (file, encode seconds)

    def bpp(self, setting: float) -> float:
        if setting not in self.files:
            try:
                start = time.perf_counter()
                data = bytes(self.peer.encode(self.image, setting))
                seconds = time.perf_counter() - start
            except Exception as exc:  # a library error: say which peer, setting and why
                raise HiercodecError(f"lossy peer codec {self.peer.name!r} failed at {self.peer.knob} {setting} "
                                     f"on a {self.image.shape} image: {type(exc).__name__}: {exc}") from exc
            if not data:
                raise HiercodecError(f"lossy peer codec {self.peer.name!r} produced an empty file")
            self.files[setting] = (data, seconds)
        return bits_per_pixel(len(self.files[setting][0]), self.image.shape)

    def point(self, setting: float, target_bpp: float | None = None) -> PeerPoint:
        """Decode the file of `setting` and measure it against the image."""
        self.bpp(setting)
        data, encode_s = self.files[setting]
        start = time.perf_counter()
        try:
            decoded = self.peer.decode(data, self.image.shape)
        except Exception as exc:
            raise HiercodecError(f"lossy peer codec {self.peer.name!r} cannot decode its own file: "
                                 f"{type(exc).__name__}: {exc}") from exc
        decode_s = time.perf_counter() - start
        if decoded.shape != self.image.shape or decoded.dtype != np.uint8:
            raise HiercodecError(f"lossy peer codec {self.peer.name!r} decoded shape {decoded.shape} "
                                 f"{decoded.dtype}, expected {self.image.shape} uint8")
        return PeerPoint(self.peer.name, setting, len(data), bits_per_pixel(len(data), self.image.shape),
                         psnr(self.image, decoded), ms_ssim(self.image, decoded), encode_s, decode_s, target_bpp)


def code(peer: str | LossyPeer, image: np.ndarray, setting: float) -> PeerPoint:
    """Encode `image` with `peer` at one setting (quality or distance), decode it, measure it."""
    p = lossy_peer(peer)
    return _Encoder(p, _lossy_input(image)).point(setting)


def _between(a: float, b: float, integer: bool) -> float | None:
    """A setting strictly between a and b, or None when the bracket cannot be split further."""
    if integer:
        return (int(a) + int(b)) // 2 if abs(a - b) > 1 else None
    if max(a, b) / min(a, b) <= _RATIO_STOP:
        return None
    return float(f"{math.sqrt(a * b):.4g}")  # distances are bisected on a log scale


def matched(peer: str | LossyPeer, image: np.ndarray, target_bpp: float) -> PeerPoint:
    """The peer's file closest in bits per pixel to `target_bpp`: bisection over the setting's
    range (file size grows with quality and falls with distance), then the closest of every
    setting tried (so a non-monotone step in the codec cannot mislead it). A target below the
    smallest file or above the largest gives that end of the range.

    Returns the point with its setting, bpp, PSNR, MS-SSIM and encode/decode seconds (the
    encode time is that of the chosen setting's one encode).
    """
    p = lossy_peer(peer)
    if not (target_bpp > 0 and math.isfinite(target_bpp)):
        raise HiercodecError(f"the target rate must be a positive number of bits per pixel, not {target_bpp}")
    enc = _Encoder(p, _lossy_input(image))
    low, high = p.fewest, p.most  # bpp(low) <= bpp(high), up to the codec's small non-monotone steps
    if target_bpp > enc.bpp(low) and target_bpp < enc.bpp(high):
        while (mid := _between(low, high, p.integer)) is not None:
            if enc.bpp(mid) < target_bpp:
                low = mid
            else:
                high = mid
    best = min(enc.files, key=lambda s: (abs(enc.bpp(s) - target_bpp), enc.bpp(s)))
    return enc.point(best, target_bpp)
