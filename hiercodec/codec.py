"""The codec driver: image -> levels -> one ANS chunk per stream -> .hc container, and back.

Data flows one way (DESIGN.md): a family builds the levels, each level codes itself on a stack
coder, the container frames the chunks. This module never sees a probability and the container
never sees torch.

A stream is one coder, one chunk: a level and the levels after it that it joins
(`Level.joins_next`). The encoder pushes a stream's levels last first on one coder, over the
sentinel, so that a bits-back level pops its latents from the bits of the levels coded under it;
the chunk goes with the stream's first level and the others continue it (format version 2). The
decoder pops them in order and checks the sentinel after the stream's last level. A file can only
be cut, or written with its first K levels, at a stream boundary.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from hiercodec import container
from hiercodec.coding.ans import CODER_ID, CODER_VERSION, StackCoder
from hiercodec.coding.sampling import Sampling
from hiercodec.errors import FormatError, HiercodecError, IntegrityError, ModelNotFoundError
from hiercodec.geometry import Geometry
from hiercodec.report import LevelReport, Report
from hiercodec.zoo import Model, load

if TYPE_CHECKING:  # pragma: no cover
    from hiercodec.families.base import Level

Progress = Callable[[int], None]  # called with the number of symbols just coded


def _values_crc(values: np.ndarray) -> int:
    return container.crc32(np.ascontiguousarray(values).tobytes())


def level_streams(levels: "list[Level]") -> list[range]:
    """The levels' coded streams, runs of level indices: a level that joins the next shares its
    stream. ValueError for a family whose last level joins a next one that does not exist."""
    if levels and levels[-1].joins_next:
        raise ValueError(f"level {len(levels) - 1} ({levels[-1].name}) joins the next level, "
                         "but it is the last")
    return container.streams([i > 0 and levels[i - 1].joins_next for i in range(len(levels))])


def _check_boundary(levels: "list[Level]", k: int, what: str) -> None:
    """HiercodecError unless the first k levels end a stream."""
    if k < len(levels) and levels[k - 1].joins_next:
        ends = ", ".join(str(s.stop) for s in level_streams(levels))
        raise HiercodecError(f"cannot {what} {container.count(k, 'level')}: levels {k - 1} ({levels[k - 1].name}) and "
                             f"{k} ({levels[k].name}) share one coded stream (choose {ends})")


def encode_image(model: Model, image: np.ndarray, progress: Progress | None = None,
                 levels: int | None = None, sample: Sampling | None = None, count: int = 1) -> tuple[bytes, Report]:
    """Code a uint8 image (H, W, C), C in 1..4: losslessly, or with `levels` = K only its first K
    levels (a lossy file, as `container.cut` makes of a lossless one, without the work of the rest).
    sample: a lossy file's header says that it decodes by drawing its missing levels with this
    seed and temperature (format version 3); None: by the family's reconstruction.
    count > 1: `image` is a set of `count` images of one size stacked top to bottom (format
    version 4), coded as one image (hiercodec.api.encode_set)."""
    geometry = Geometry(*image.shape)
    if count < 1 or geometry.height % count:
        raise ValueError(f"a set of {count} images cannot be {geometry.height} rows high")
    layout = model.family.layout(geometry)
    all_levels = model.family.levels(geometry, layout)
    if levels is not None and not 1 <= levels <= len(all_levels):
        raise HiercodecError(f"cannot keep {container.count(levels, 'level')}: model '{model.id}' codes this image in "
                             f"{len(all_levels)} (choose 1..{len(all_levels)})")
    if levels is not None:
        _check_boundary(all_levels, levels, "keep")
    kept = all_levels[:levels]
    if sample is not None and len(kept) == len(all_levels):
        raise HiercodecError("only a lossy file samples its missing levels: keep fewer levels (levels=K, --lossy)")
    above: dict[str, np.ndarray] = {}
    chunks, reports = [], []
    for stream in level_streams(kept):
        # analysed top-down; each level sees only the levels above it
        seen = []
        for index in stream:
            level = kept[index]
            seen.append((dict(above), level.analyze(image, above)))
            above[level.name] = seen[-1][1]
        coder = StackCoder()
        coder.push_sentinel()
        stats = {}
        for index, (level_above, values) in reversed(list(zip(stream, seen))):  # last first
            stats[index] = kept[index].encode(values, level_above, coder, progress)
        data = coder.to_bytes()
        for index, (_, values) in zip(stream, seen):
            st, first = stats[index], index == stream.start
            # max: a bits-back level's bound is a one-sample estimate, which a tiny image can push below 0
            chunks.append(container.ChunkEntry(
                index, data if first else b"", _values_crc(values), max(0, math.ceil(st.bound_bits)),
                continues=not first, initial_bits=math.ceil(st.initial_bits)))
            terms = st.extra  # a bits-back level's (hiercodec.coding.bitsback.BitsBackStats)
            reports.append(LevelReport(kept[index].name, st.bound_bits, len(data) if first else 0, st.symbols,
                                       st.saved_bits, st.initial_bits, not first,
                                       terms.get("likelihood_bits"),
                                       terms["prior_bits"] - terms["posterior_bits"] if "prior_bits" in terms else None))
    header = container.Header(
        model_id=model.id, model_hash=model.hash, coder_id=CODER_ID, coder_version=CODER_VERSION,
        height=geometry.height // count, width=geometry.width, channels=geometry.channels, bit_depth=8,
        tile_height=layout.tile_h, tile_width=layout.tile_w, lossy=len(kept) < len(all_levels),
        levels_total=len(all_levels), sampling=None if sample is None else (sample.seed, sample.milli),
        count=count)
    version = (container.SET_VERSION if count > 1 else
               container.FORMAT_VERSION if sample is None else container.SAMPLING_VERSION)
    data = container.write(container.Container(header, tuple(chunks), version))
    return data, Report(model.id, geometry, len(data), reports, len(all_levels))


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
                 max_pixels: int | None = container.DECODE_MAX_PIXELS,
                 sample: Sampling | bool | None = None) -> tuple[np.ndarray, Report]:
    """Decode a .hc file; every CRC is checked and a damaged file raises, never returns pixels.
    A file whose header claims more than `max_pixels` pixels is refused before any work (FormatError).
    See `decode_container` for `levels`, `full_size` and `sample`."""
    return decode_container(container.read(data, max_pixels=decode_limit(max_pixels)), len(data), loader,
                            progress, levels, full_size, sample)


def decode_container(box: container.Container, file_bytes: int, loader: Callable[[str], Model] = load,
                     progress: Progress | None = None, levels: int | None = None,
                     full_size: bool = False, sample: Sampling | bool | None = None) -> tuple[np.ndarray, Report]:
    """Decode a file already read (and checked) by container.read: its header is parsed once.

    levels: decode only the first `levels` levels present (progressive decoding): the image is
    then what the family makes of them (a coarser pyramid level, the 4-bit gray image, the colour
    without alpha), upsampled to the image's size with full_size. A level that shares its stream
    with the levels after it is decoded with the whole stream (every check runs); the family is
    given the first `levels` only.

    sample: draw the levels not decoded from the model instead (Family.sample_missing: exact and
    seeded, the same image on every machine), so that a cut file decodes to a full image; None:
    as the file's header says (format version 3 stores a seed and temperature), False: never."""
    if levels is not None and not 1 <= levels <= box.levels_present:
        raise HiercodecError(f"cannot decode {container.count(levels, 'level')}: the file has {box.levels_present} "
                             f"(choose 1..{box.levels_present})")
    h = box.header
    model = model_for(h, loader)
    geometry = Geometry(h.height * h.count, h.width, h.channels)  # a set: its images stacked
    layout = model.family.layout(geometry)
    if (h.tile_height, h.tile_width) != (layout.tile_h, layout.tile_w):
        raise FormatError(f"tile size {h.tile_width}x{h.tile_height} in the header is not the one model "
                          f"'{model.id}' uses for this image ({layout.tile_w}x{layout.tile_h}); the file is damaged")
    model_levels = model.family.levels(geometry, layout)
    if h.levels_total != len(model_levels):
        raise FormatError(f"file has {h.levels_total} levels, model '{model.id}' codes this image in {len(model_levels)}")
    streams = level_streams(model_levels)
    present = box.levels_present
    for chunk in box.chunks:
        if chunk.continues != (chunk.level > 0 and model_levels[chunk.level - 1].joins_next):
            raise FormatError(f"level {chunk.level} ({model_levels[chunk.level].name}) is "
                              f"{'' if chunk.continues else 'not '}coded on the previous level's stream in the file, "
                              f"{'not ' if chunk.continues else ''}so in model '{model.id}': the file is damaged")
    if model_levels[present - 1].joins_next:
        raise FormatError(f"the file ends inside the coded stream of levels {present - 1} and {present} of "
                          f"model '{model.id}': the file is damaged")
    wanted = present if levels is None else levels
    if sample is None:
        sample = None if h.sampling is None else Sampling(*h.sampling)
    above: dict[str, np.ndarray] = {}
    reports = []
    # every stream that holds one of the wanted levels is decoded whole (its sentinel ends it)
    for stream in (s for s in streams if s.start < wanted):
        coder = StackCoder(box.chunks[stream.start].data)
        for index in stream:
            level, chunk = model_levels[index], box.chunks[index]
            values = level.decode(above, coder, progress)
            if index == stream.stop - 1:
                names = ", ".join(model_levels[i].name for i in stream)
                coder.pop_sentinel(f"level {chunk.level} ({level.name})" if len(stream) == 1
                                   else f"levels {stream.start}-{index} ({names})")
            if _values_crc(values) != chunk.values_crc:
                raise IntegrityError(f"level {chunk.level} ({level.name}) decoded to values whose CRC32 "
                                     "does not match: the file is damaged")
            above[level.name] = values
            if index < wanted:
                reports.append(LevelReport(level.name, float(chunk.bound_bits), len(chunk.data), values.size,
                                           initial_bits=float(chunk.initial_bits), continues=chunk.continues))
    above = {level.name: above[level.name] for level in model_levels[:wanted]}
    sampled = sample and wanted < len(model_levels)
    if sampled:
        above = model.family.sample_missing(above, geometry, sample, progress)
    image = model.family.reconstruct(above, geometry, full_size)
    return image, Report(model.id, geometry, file_bytes, reports, len(model_levels),
                         (sample.seed, sample.milli) if sampled else None)
