"""The codec driver: image -> levels -> one ANS chunk per level -> .hc container, and back.

Data flows one way (DESIGN.md): a family builds the levels, each level codes itself on its own
stack coder, the container frames the chunks. This module never sees a probability and the
container never sees torch.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from hiercodec import container
from hiercodec.coding.ans import CODER_ID, CODER_VERSION, StackCoder
from hiercodec.errors import FormatError, HiercodecError, IntegrityError, ModelNotFoundError
from hiercodec.geometry import Geometry
from hiercodec.report import LevelReport, Report
from hiercodec.zoo import Model, load

Progress = Callable[[int], None]  # called with the number of symbols just coded


def _values_crc(values: np.ndarray) -> int:
    return container.crc32(np.ascontiguousarray(values).tobytes())


def encode_image(model: Model, image: np.ndarray, progress: Progress | None = None,
                 levels: int | None = None) -> tuple[bytes, Report]:
    """Code a uint8 image (H, W, C), C in 1..4: losslessly, or with `levels` = K only its first K
    levels (a lossy file, as `container.cut` makes of a lossless one, without the work of the rest)."""
    geometry = Geometry(*image.shape)
    layout = model.family.layout(geometry)
    all_levels = model.family.levels(geometry, layout)
    if levels is not None and not 1 <= levels <= len(all_levels):
        raise HiercodecError(f"cannot keep {levels} levels: model '{model.id}' codes this image in "
                             f"{len(all_levels)} (choose 1..{len(all_levels)})")
    kept = all_levels[:levels]
    above: dict[str, np.ndarray] = {}
    chunks, reports = [], []
    for index, level in enumerate(kept):
        values = level.analyze(image, above)
        coder = StackCoder()
        coder.push_sentinel()
        stats = level.encode(values, above, coder, progress)
        data = coder.to_bytes()
        chunks.append(container.ChunkEntry(index, data, _values_crc(values), math.ceil(stats.bound_bits)))
        reports.append(LevelReport(level.name, stats.bound_bits, len(data), stats.symbols, stats.saved_bits))
        above[level.name] = values
    header = container.Header(
        model_id=model.id, model_hash=model.hash, coder_id=CODER_ID, coder_version=CODER_VERSION,
        height=geometry.height, width=geometry.width, channels=geometry.channels, bit_depth=8,
        tile_height=layout.tile_h, tile_width=layout.tile_w, lossy=len(kept) < len(all_levels),
        levels_total=len(all_levels))
    data = container.write(container.Container(header, tuple(chunks)))
    return data, Report(model.id, geometry, len(data), reports)


def model_for(header: container.Header, loader: Callable[[str], Model] = load) -> Model:
    """The installed model a file was written with, or a HiercodecError that says what is missing."""
    if (header.coder_id, header.coder_version) != (CODER_ID, CODER_VERSION):
        raise FormatError(f"file was coded with {header.coder_id} {header.coder_version}; this hiercodec "
                          f"reads {CODER_ID} {CODER_VERSION} (install the hiercodec version that wrote it)")
    try:
        model = loader(header.model_id)
    except ModelNotFoundError:
        raise ModelNotFoundError(f"file needs model '{header.model_id}', which is not installed; install "
                                 f"the hiercodec release that ships it or export it with that id") from None
    if model.hash != header.model_hash:
        raise ModelNotFoundError(f"file was written with other weights for model '{header.model_id}' "
                                 f"(hash {header.model_hash.hex()[:12]}, installed {model.hash.hex()[:12]})")
    return model


def decode_limit(max_pixels: int | None) -> int:
    """The pixel limit container.read applies for a decoder's `max_pixels` (None: the format's)."""
    return container.MAX_PIXELS if max_pixels is None else max_pixels


def decode_image(data: bytes, loader: Callable[[str], Model] = load, progress: Progress | None = None,
                 levels: int | None = None, full_size: bool = False,
                 max_pixels: int | None = container.DECODE_MAX_PIXELS) -> tuple[np.ndarray, Report]:
    """Decode a .hc file; every CRC is checked and a damaged file raises, never returns pixels.
    A file whose header claims more than `max_pixels` pixels is refused before any work (FormatError).

    levels: decode only the first `levels` levels present (progressive decoding): the image is
    then what the family makes of them (a coarser pyramid level, the 4-bit gray image, the colour
    without alpha), upsampled to the image's size with full_size."""
    box = container.read(data, max_pixels=decode_limit(max_pixels))
    if levels is not None and not 1 <= levels <= box.levels_present:
        raise HiercodecError(f"cannot decode {levels} levels: the file has {box.levels_present} "
                             f"(choose 1..{box.levels_present})")
    h = box.header
    model = model_for(h, loader)
    geometry = Geometry(h.height, h.width, h.channels)
    layout = model.family.layout(geometry)
    if (h.tile_height, h.tile_width) != (layout.tile_h, layout.tile_w):
        raise FormatError(f"tile size {h.tile_width}x{h.tile_height} in the header is not the one model "
                          f"'{model.id}' uses for this image ({layout.tile_w}x{layout.tile_h}); the file is damaged")
    model_levels = model.family.levels(geometry, layout)
    if h.levels_total != len(model_levels):
        raise FormatError(f"file has {h.levels_total} levels, model '{model.id}' codes this image in {len(model_levels)}")
    above: dict[str, np.ndarray] = {}
    reports = []
    for level, chunk in zip(model_levels, box.chunks[:levels]):  # a cut file holds a prefix of the levels
        coder = StackCoder(chunk.data)
        values = level.decode(above, coder, progress)
        coder.pop_sentinel(f"level {chunk.level} ({level.name})")
        if _values_crc(values) != chunk.values_crc:
            raise IntegrityError(f"level {chunk.level} ({level.name}) decoded to values whose CRC32 "
                                 "does not match: the file is damaged")
        above[level.name] = values
        reports.append(LevelReport(level.name, float(chunk.bound_bits), len(chunk.data), values.size))
    image = model.family.reconstruct(above, geometry, full_size)
    return image, Report(model.id, geometry, len(data), reports)
