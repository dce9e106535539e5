"""The public Python API of hiercodec.

    >>> import hiercodec
    >>> data = hiercodec.encode("photo.png")            # or a PIL image, or a uint8 array
    >>> image = hiercodec.decode(data)                  # uint8 (H, W) or (H, W, 2/3/4)
    >>> hiercodec.verify("photo.png").overhead_percent  # file size vs the model's bound
    >>> hiercodec.info(data)["levels"]                  # header and chunk table, no model needed

Every failure a user can cause (a bad image, a damaged file, a missing model) raises a
`HiercodecError` whose message is one line saying what is wrong and what to do.

torch is imported only when a model is needed: `info` and the image helpers do without it.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from hiercodec import container, engine
from hiercodec.errors import HiercodecError, ImageError
from hiercodec.images import color_name, load_image, to_public
from hiercodec.report import LevelReport, Report

if TYPE_CHECKING:  # pragma: no cover
    from hiercodec.zoo import Model, ModelInfo

__all__ = ["encode", "decode", "cut", "load_model", "list_models", "verify", "info", "VerifyResult",
           "LevelReport", "encode_with_report", "decode_with_report", "encode_set", "encode_set_with_report",
           "decode_set"]


# ---------------------------------------------------------------------------------------------
# Progress


@contextmanager
def _progress(enabled: bool, total: int, desc: str) -> Iterator[Callable[[int], None] | None]:
    """A tqdm bar on stderr counting coded symbols, shown only for work over a second."""
    if not enabled:
        yield None
        return
    from tqdm import tqdm

    bar = tqdm(total=total, unit="sym", unit_scale=True, desc=desc, file=sys.stderr, delay=1.0,
               leave=False, dynamic_ncols=True)

    def update(n: int) -> None:
        if bar.n + n > bar.total:  # families with latents code more symbols than samples
            bar.total = bar.n + n
        bar.update(n)

    try:
        yield update
    finally:
        bar.close()


# ---------------------------------------------------------------------------------------------
# Models


def load_model(name: str = "default") -> "Model":
    """A loaded model of the zoo, by id or alias (cached). ModelNotFoundError if not installed."""
    from hiercodec import zoo

    if not isinstance(name, str):
        raise TypeError(f"model must be a model id or alias (str), not {type(name).__name__}")
    return zoo.load(name)


def list_models() -> "list[ModelInfo]":
    """Every installed model: id, family, description, path, shipped (or user), aliases."""
    from hiercodec import zoo

    return zoo.list_models()


def _model(model: "str | Model") -> "Model":
    from hiercodec.zoo import Model

    return model if isinstance(model, Model) else load_model(model)


# ---------------------------------------------------------------------------------------------
# Encode / decode


def _checked_image(image) -> np.ndarray:
    array = load_image(image)
    h, w = array.shape[:2]
    if h * w > container.MAX_PIXELS:
        raise ImageError(f"the image has {h * w} pixels; a .hc file holds at most "
                         f"{container.MAX_PIXELS}: cut it into parts first")
    return array


def encode_with_report(image, model: "str | Model" = "default", *, progress: bool = False,
                       levels: int | None = None, sample: bool | None = None, seed: int = 0,
                       temperature: float | None = None, threads: int | None = None) -> "tuple[bytes, Report]":
    """`encode`, also returning the codec's Report (bound and bytes per level)."""
    from hiercodec.codec import encode_image

    array = _checked_image(image)
    m = _model(model)
    draws = _encode_sampling(m, levels, sample, seed, temperature)
    with engine.threads(threads), _progress(progress and levels is None, array.size, "encode") as update:
        return encode_image(m, array, update, levels=levels, sample=draws)


def _encode_sampling(m: "Model", levels: int | None, sample: bool | None, seed: int, temperature: float | None):
    """How a lossy file of `m` will decode: None (the family's reconstruction), or its Sampling."""
    default = m.family.sample_temperature
    if levels is None:  # lossless: nothing is left to sample
        if sample or temperature is not None or seed:
            raise HiercodecError("sample, seed and temperature are for lossy files (levels=K)")
        return None
    if sample is False or (sample is None and default is None):
        if temperature is not None or seed:
            raise HiercodecError("seed and temperature go with sample=True")
        return None
    return sampling(seed, temperature if temperature is not None else default or 1.0)


def encode(image, model: str = "default", *, progress: bool = False, levels: int | None = None,
           sample: bool | None = None, seed: int = 0, temperature: float | None = None,
           threads: int | None = None) -> bytes:
    """Compress an image to the bytes of a .hc file: losslessly, or with `levels` = K keeping
    only the model's first K levels (a lossy file; `decode` reconstructs the image from them).

    image: a file path, a PIL image, or a uint8 array (H, W) gray or (H, W, C) with C = 1 gray,
    2 gray+alpha, 3 RGB, 4 RGBA. model: a model id or alias of the zoo (`list_models()`).
    progress: show a progress bar on stderr for work that takes more than a second.
    threads: threads to use (None: the process's count, every core unless `engine.set_threads` set
    another); the file is the same whatever the count.

    sample (lossy files): store in the file that it decodes by drawing its missing levels from the
    model with `seed` at `temperature` (format version 3; the same image on every machine). None:
    the family's way (`ham` samples at 0.99, the paper's temperature; the others reconstruct).
    """
    return encode_with_report(image, model, progress=progress, levels=levels, sample=sample, seed=seed,
                              temperature=temperature, threads=threads)[0]


def _checked_set(images) -> np.ndarray:
    """A set of images of one size -> uint8 (N, H, W, C): an array (N, H, W) or (N, H, W, C), or a
    sequence of images (paths, PIL images, arrays) of one geometry (ImageError otherwise)."""
    if isinstance(images, np.ndarray) and images.ndim in (3, 4):
        arrays = [load_image(im) for im in images]
    elif isinstance(images, (list, tuple)):
        arrays = [load_image(im) for im in images]
    else:
        raise ImageError("a set of images is an array (N, H, W[, C]) or a list of images")
    if not arrays:
        raise ImageError("the set holds no image")
    shapes = sorted({a.shape for a in arrays})
    if len(shapes) > 1:
        raise ImageError(f"the images of a set must have one geometry; this one has {len(shapes)} "
                         f"({shapes[0]} and {shapes[1]}, ...)")
    if len(arrays) > container.MAX_COUNT:
        raise ImageError(f"a set file holds at most {container.MAX_COUNT} images, not {len(arrays)}")
    h, w, c = shapes[0]
    if len(arrays) * h * w > container.MAX_PIXELS:
        raise ImageError(f"{len(arrays)} images of {w}x{h} have more than {container.MAX_PIXELS} pixels: "
                         "split the set")
    return np.stack(arrays)


def encode_set_with_report(images, model: "str | Model" = "default", *,
                           progress: bool = False, threads: int | None = None) -> "tuple[bytes, Report]":
    """`encode_set`, also returning the codec's Report (of all the images together)."""
    from hiercodec.codec import encode_image

    stack = _checked_set(images)
    n, h, w, c = stack.shape
    with engine.threads(threads), _progress(progress, stack.size, "encode") as update:
        return encode_image(_model(model), stack.reshape(n * h, w, c), update, count=n)


def encode_set(images, model: "str | Model" = "default", *, progress: bool = False,
               threads: int | None = None) -> bytes:
    """Compress a set of images of one size (e.g. MNIST digits) losslessly into one .hc file
    (format version 4). The model codes them as one image, the images stacked top to bottom: a
    bits-back model (pixelvae) chains them on one stream, so its initial bits are paid once for
    the set instead of once per image. `decode_set` gives them back."""
    return encode_set_with_report(images, model, progress=progress, threads=threads)[0]


def decode_set(data: bytes, *, progress: bool = False,
               max_pixels: int | None = container.DECODE_MAX_PIXELS, threads: int | None = None) -> np.ndarray:
    """The images of a set file (`encode_set`): uint8 (N, H, W) gray or (N, H, W, C). A file of
    one image gives a set of one."""
    from hiercodec.codec import decode_limit

    data = _as_bytes(data)
    h = container.read_header(data, max_pixels=decode_limit(max_pixels))
    image = decode_with_report(data, progress=progress, max_pixels=max_pixels, threads=threads)[0]
    images = image.reshape(h.count, h.height, h.width, image.shape[2])
    return images[..., 0] if images.shape[3] == 1 else images


def lossy_levels(model: "str | Model" = "default") -> int:
    """How many levels a lossy file of `model` keeps (`encode(..., levels=lossy_levels(m))`): the
    code levels of a family with a lossy mode (vqvae2: top and bottom codes). A HiercodecError for
    a model without one (any model can still be cut after any level with `levels=K`)."""
    m = _model(model)
    n = m.family.lossy_levels
    if n is None:
        raise HiercodecError(f"model '{m.id}' ({m.family.name}) has no lossy mode; keep its first K levels "
                             "with levels=K (--levels K) or use a vqvae2 model")
    return n


def _as_bytes(data) -> bytes:
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    if isinstance(data, (str, os.PathLike)):
        raise TypeError("decode() takes the bytes of a .hc file, not a path: "
                        "use decode(pathlib.Path(p).read_bytes())")
    raise TypeError(f"expected the bytes of a .hc file, got {type(data).__name__}")


def sampling(seed: int = 0, temperature: float = 1.0):
    """The coding.sampling.Sampling of a seed (0 ... 2^64 - 1) and a temperature (0.001 ...
    65.535, in thousandths), or a HiercodecError that says which is out of range."""
    from hiercodec.coding.sampling import Sampling
    from hiercodec.exact.temperature import MILLI_MAX, MILLI_MIN

    milli = round(temperature * 1000)
    if not MILLI_MIN <= milli <= MILLI_MAX:
        raise HiercodecError(f"temperature {temperature} is out of range {MILLI_MIN / 1000}..{MILLI_MAX / 1000}")
    if not 0 <= seed < 1 << 64:
        raise HiercodecError(f"seed {seed} is out of range 0..2^64-1")
    return Sampling(seed, milli)


def decode_with_report(data: bytes, *, progress: bool = False, levels: int | None = None,
                       full_size: bool = False, max_pixels: int | None = container.DECODE_MAX_PIXELS,
                       sample: bool | None = None, seed: int | None = None,
                       temperature: float | None = None, threads: int | None = None) -> "tuple[np.ndarray, Report]":
    """`decode`, also returning the codec's Report; the image is (H, W, C) with C = 1 for gray."""
    from hiercodec.codec import decode_container, decode_limit

    data = _as_bytes(data)
    box = container.read(data, max_pixels=decode_limit(max_pixels))  # the header, parsed once, sizes the bar
    h = box.header
    draws = _decode_sampling(h, sample, seed, temperature)
    with engine.threads(threads), \
            _progress(progress and (levels is None or bool(draws)), h.pixels * h.channels, "decode") as update:
        return decode_container(box, len(data), progress=update, levels=levels, full_size=full_size, sample=draws)


def _decode_sampling(header: container.Header, sample: bool | None, seed: int | None, temperature: float | None):
    """codec.decode_container's `sample` for decode's arguments: the file's own choice (None),
    never (False), or a Sampling whose seed and temperature default to the file's (else 0 and 1)."""
    if sample is False:
        if seed is not None or temperature is not None:
            raise HiercodecError("seed and temperature go with sampling, not with sample=False")
        return False
    if sample is None and header.sampling is None and seed is None and temperature is None:
        return None
    stored_seed, stored_milli = header.sampling or (0, 1000)
    return sampling(stored_seed if seed is None else seed, stored_milli / 1000 if temperature is None else temperature)


def decode(data: bytes, *, progress: bool = False, levels: int | None = None, full_size: bool = False,
           max_pixels: int | None = container.DECODE_MAX_PIXELS, sample: bool | None = None, seed: int | None = None,
           temperature: float | None = None, threads: int | None = None) -> np.ndarray:
    """Decompress the bytes of a .hc file to a uint8 image: (H, W) for gray, else (H, W, C).

    levels: decode only the first `levels` levels (progressive decoding; a file cut with `cut`
    holds only those): a `pyramid` file gives the image at that level's resolution (full_size:
    upsampled to the image's size), a `grayscale` file cut after level 1 its 4-bit gray image, a
    `vqvae2` file with its code levels only the decoder's reconstruction (always full size).
    A set file (`encode_set`) decodes to its images stacked top to bottom (`decode_set` splits them).
    Damaged, truncated or foreign files raise FormatError / IntegrityError (never a wrong image);
    a file whose model is not installed raises ModelNotFoundError naming the model. A header that
    claims more than `max_pixels` pixels (default 89,478,485, Pillow's limit; None: the format's
    2^28) is refused before any work: raise it only for files you trust.

    sample: instead of reconstructing from the levels present, draw every missing level from the
    model given the levels above it, at `temperature` (in steps of 0.001) with `seed`: exact
    integer sampling, so a file gives the same image on every machine for the same seed and
    temperature (a pyramid file cut after its coarse levels gets plausible detail consistent with
    them; a vqvae2 file its pixels drawn given the codes). None: as the file says (a lossy `ham`
    file samples with the seed and temperature stored in it; giving `seed` or `temperature`
    alone samples with them); False: the family's reconstruction (`ham`: the feed-forward
    auxiliary decoder's mean).

    threads: as in `encode`; the image is the same whatever the count.
    """
    return to_public(decode_with_report(data, progress=progress, levels=levels, full_size=full_size,
                                        max_pixels=max_pixels, sample=sample, seed=seed,
                                        temperature=temperature, threads=threads)[0])


def cut(data: bytes, levels: int) -> bytes:
    """The bytes of a valid .hc file holding only the first `levels` levels of `data` (smaller,
    and decodes as `decode(data, levels=levels)` does)."""
    return container.cut(_as_bytes(data), levels)


# ---------------------------------------------------------------------------------------------
# Verify


@dataclass
class VerifyResult(Report):
    """What `verify` measured: the encoder's Report (per level and in total, the bound next to the
    bits written), and whether the file decodes to the very same pixels."""

    roundtrip_ok: bool = False
    error: str | None = None  # why the round trip failed, if it raised
    encode_seconds: float = 0.0
    decode_seconds: float = 0.0
    lossy: bool = False  # only the first levels were coded: the decoded image is a reconstruction
    psnr: float | None = None  # of a lossy file's decoded image against the original (dB)


def verify(image, model: str = "default", *, progress: bool = False, levels: int | None = None,
           threads: int | None = None) -> VerifyResult:
    """Compress `image`, decompress the result and compare: the exact model's bound next to the
    bits written, level by level, and whether the round trip gives the same pixels. Bits-back
    levels also report their initial bits (`LevelReport.initial_bits`, `initial_bits` in total),
    which the bits written are measured against with the bound.

    levels: code only the first K levels (a lossy file): the round trip then checks that every
    level decodes to the values coded (their CRCs) and reports the reconstruction's PSNR.
    A failing round trip is reported (roundtrip_ok False, error set), not raised; an image that
    cannot be read or a model that is not installed raises as in `encode`. threads: as in `encode`.
    """
    with engine.threads(threads):
        return _verify(image, model, progress, levels)


def _verify(image, model: str, progress: bool, levels: int | None) -> VerifyResult:
    from hiercodec.codec import decode_container, encode_image
    from hiercodec.bench.quality import psnr

    array = _checked_image(image)
    m = _model(model)
    start = time.perf_counter()
    with _progress(progress and levels is None, array.size, "encode") as update:
        data, report = encode_image(m, array, update, levels=levels)
    encode_seconds = time.perf_counter() - start
    result = VerifyResult(report.model_id, report.geometry, report.file_bytes, list(report.levels),
                          encode_seconds=encode_seconds)
    start = time.perf_counter()
    try:
        box = container.read(data)
        result.lossy = box.header.lossy
        with _progress(progress and not result.lossy, array.size, "decode") as update:
            decoded, _ = decode_container(box, len(data), loader=lambda name: m if name == m.id else load_model(name),
                                          progress=update, full_size=True)
        if result.lossy:  # every level decoded to its coded values (decode_image checks their CRCs)
            result.roundtrip_ok = decoded.shape[:2] == array.shape[:2]
            if result.roundtrip_ok and decoded.shape == array[..., : decoded.shape[2]].shape:
                result.psnr = psnr(array[..., : decoded.shape[2]], decoded)
        else:
            result.roundtrip_ok = decoded.shape == array.shape and bool(np.array_equal(decoded, array))
        if not result.roundtrip_ok:
            result.error = "the decoded image differs from the original"
    except HiercodecError as err:
        result.error = str(err)
    result.decode_seconds = time.perf_counter() - start
    return result


# ---------------------------------------------------------------------------------------------
# Info


def info(data: bytes, *, level_names: bool = False) -> dict:
    """What a .hc file holds, from its header and chunk table only (no model, no decoding).

    Keys: format_version (the file's), model, model_hash (hex), coder, coder_id, coder_version,
    height, width (of each image), count (images in the file: more than 1 for a set file, whose
    images are coded stacked top to bottom; dims and tiles count all of them), channels, color, bit_depth, dims (samples), tile (h, w), tiles, mode
    ('lossless'/'lossy'), sampling (None, or the seed and temperature with which a lossy file
    decodes by sampling its missing levels: format version 3), levels_total, levels_present, file_bytes, header_bytes, bits_per_dim
    (whole file), bound_bits, bound_bits_per_dim, initial_bits (the levels' sum), streams (the
    coded streams as lists of level indices: levels of one stream share the chunk of its first
    level), and levels: one dict per level present with level, bytes, bits_per_dim (from the chunk
    length; 0 for a level that continues the previous level's stream), bound_bits and
    bound_bits_per_dim (from the bound stored in the file), initial_bits (the seed bits a
    bits-back level pushed, also stored in the file; 0 for other levels and version 1 files) and
    continues (coded on the previous level's stream). Bits/dim are per sample of the whole image,
    so the levels' sum up.
    With level_names=True and the file's model installed, each level also has its `name` and
    `bits_back` (latents coded by bits-back on the level's stream), and `level_names` lists every
    level of the model, top first (this loads the model, hence torch);
    otherwise `level_names` is [].
    The whole file is checked (header and chunk CRC32s): a damaged file raises FormatError.
    """
    data = _as_bytes(data)
    box = container.read(data)
    h = box.header
    dims = h.pixels * h.channels
    names, bits_back = _level_names(h) if level_names else ([], [])
    levels = [{
        "level": c.level,
        **({"name": names[c.level], "bits_back": bits_back[c.level]} if names else {}),
        "bytes": len(c.data),
        "bits_per_dim": 8 * len(c.data) / dims,
        "bound_bits": c.bound_bits,
        "bound_bits_per_dim": c.bound_bits / dims,
        "initial_bits": c.initial_bits,
        "continues": c.continues,
    } for c in box.chunks]
    payload = sum(len(c.data) for c in box.chunks)
    bound = sum(c.bound_bits for c in box.chunks)
    return {
        "format_version": box.version,
        "model": h.model_id,
        "model_hash": h.model_hash.hex(),
        "coder": f"{h.coder_id} {h.coder_version}",
        "coder_id": h.coder_id,
        "coder_version": h.coder_version,
        "height": h.height,
        "width": h.width,
        "count": h.count,
        "channels": h.channels,
        "color": color_name(h.channels),
        "bit_depth": h.bit_depth,
        "dims": dims,
        "tile": (h.tile_height, h.tile_width),
        "tiles": math.ceil(h.height * h.count / h.tile_height) * math.ceil(h.width / h.tile_width),
        "mode": "lossy" if h.lossy else "lossless",
        "sampling": None if h.sampling is None else {"seed": h.sampling[0], "temperature": h.sampling[1] / 1000},
        "levels_total": h.levels_total,
        "levels_present": box.levels_present,
        "file_bytes": len(data),
        "header_bytes": len(data) - payload,
        "bits_per_dim": 8 * len(data) / dims,
        "bound_bits": bound,
        "bound_bits_per_dim": bound / dims,
        "initial_bits": sum(c.initial_bits for c in box.chunks),
        "streams": [list(s) for s in box.streams()],
        "levels": levels,
        "level_names": names,  # every level of the model, top first; [] if it is not installed
    }


def _level_names(h: "container.Header") -> tuple[list[str], list[bool]]:
    """The names of the levels of a file's model and whether each is a bits-back level, or ([], [])
    when it is not installed (or differs)."""
    from hiercodec.codec import model_for
    from hiercodec.families.latent import BitsBackLevel
    from hiercodec.geometry import Geometry

    try:
        model = model_for(h)
    except HiercodecError:
        return [], []
    geometry = Geometry(h.height * h.count, h.width, h.channels)
    levels = model.family.levels(geometry, model.family.layout(geometry))
    if len(levels) != h.levels_total:
        return [], []
    return [level.name for level in levels], [isinstance(level, BitsBackLevel) for level in levels]
