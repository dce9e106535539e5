"""Rate-distortion benchmark: hiercodec's lossy files next to JPEG, WebP and JPEG XL lossy.

A hiercodec file may hold only the first K levels of a model (``encode(image, model, levels=K)``),
and decodes to a reconstruction at the image's full size (``decode(data, full_size=True)``): a
`pyramid` model's K = 1 is the 1/8-size level repeated over 8 x 8 blocks, a VQ-VAE-2's K = 1 its
top codes through the decoder. Every K from 1 to the model's level count - 1 is a lossy point
(K = all levels is lossless and belongs to `hiercodec bench`). For each point and each image:

- the model's file: bits per pixel (8 x file bytes / (H x W), header included), PSNR and
  MS-SSIM of the reconstruction (hiercodec.bench.quality), encode and decode seconds;
- every peer at the matched rate: the setting whose file is closest in bpp to the model's on
  that image (hiercodec.bench.peers_lossy.matched);
- and, for the plot, every peer over a fixed grid of settings (its rate-distortion curve).

A family whose lossy files decode by sampling their missing levels (`Family.sample_temperature`,
`ham`) gives two points per K, told apart by their `decoding`: "mean", a file without stored
sampling decoded by the family's reconstruction (`decode_image(..., sample=False)`), and "sample",
a file that stores seed 0 and the family's temperature (format version 3, a few bytes more) and
decodes by drawing the missing levels. The peers are matched once per K, to the mean file's rate.

Pooled figures (the markdown table, the plot) are total bits / total pixels and the mean
PSNR / MS-SSIM over the images; seconds are summed. The CLI front end is
`hiercodec bench --lossy` (cli/bench_cmd.py).

    >>> result = run_lossy_bench({"photo": image}, [zoo.load("pyramid")], ["jpeg", "jpegxl"])
    >>> print(markdown(result))
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from hiercodec.bench.lossless import _checked, _meta, _secs, _shape, _timed, new_figure, save_png, write_output
from hiercodec.errors import HiercodecError, ImageError
from hiercodec.images import to_public
from hiercodec.bench.peers_lossy import LOSSY_PEERS, PeerPoint, bits_per_pixel, code, lossy_peer, matched
from hiercodec.bench.quality import MS_SSIM_WEIGHTS, WINDOW, ms_ssim, psnr

if TYPE_CHECKING:  # pragma: no cover
    from hiercodec.zoo import Model

__all__ = ["LossyRow", "Pooled", "LossyResult", "levels_total", "check_lossy_model", "lossy_steps", "decodings",
           "run_lossy_bench", "markdown", "to_csv", "to_json", "write_lossy_output", "plot_lossy", "LOSSY_FORMATS"]

MODEL, MATCHED, CURVE = "hiercodec", "matched", "curve"  # a row's kind
MEAN, SAMPLE = "mean", "sample"  # a sampling family's two decodings of a lossy file
SAMPLE_SEED = 0  # the seed its sampled files store
LOSSY_FORMATS = {".json": "json", ".md": "markdown", ".csv": "csv"}
FIELDS = ["image", "shape", "pixels", "codec", "kind", "model", "levels", "levels_total", "setting",  # of a CSV line
          "target_bpp", "decoding", "bytes", "bpp", "psnr", "ms_ssim", "encode_s", "decode_s"]  # / JSON row
NOTE = ("bpp: 8 x file bytes / pixels (header included), pooled: total bits / total pixels; PSNR (dB, over all "
        "samples) and MS-SSIM (per channel, averaged): mean over the images; a peer's row: per image, its "
        "setting whose file is closest in bpp to the hiercodec point's (quality; distance for JPEG XL); "
        "seconds: wall time summed over the images.")


@dataclass(frozen=True)
class LossyRow:
    """One file of one image: a model's first K levels, or a peer at a setting."""

    image: str
    shape: tuple[int, ...]  # (H, W, C)
    codec: str  # a model id or a peer name
    kind: str  # MODEL, MATCHED (a peer at a model point's rate) or CURVE (a peer at a grid setting)
    nbytes: int
    bpp: float  # 8 x bytes / pixels
    psnr: float  # dB; inf for an identical reconstruction
    ms_ssim: float
    encode_s: float
    decode_s: float
    model: str | None = None  # MODEL: the model; MATCHED: the model whose point was matched
    levels: int | None = None  # K, the levels in the model's file (of the point matched, for MATCHED)
    levels_total: int | None = None  # the model's level count for this image
    setting: float | None = None  # a peer's quality or distance
    target_bpp: float | None = None  # MATCHED: the model point's bpp on this image
    decoding: str | None = None  # MODEL of a sampling family: MEAN or SAMPLE; None otherwise
    temperature: float | None = None  # SAMPLE: the temperature the file stores

    @property
    def pixels(self) -> int:
        return self.shape[0] * self.shape[1]


@dataclass(frozen=True)
class Pooled:
    """Rows of the same codec and point (or curve setting) over every image."""

    codec: str
    kind: str
    model: str | None
    levels: int | None
    levels_total: int | None
    settings: tuple[float, ...]  # the peer's setting per image (empty for a model)
    images: int
    pixels: int
    nbytes: int
    bpp: float  # total bits / total pixels
    psnr: float  # mean over images
    ms_ssim: float  # mean over images
    encode_s: float  # summed
    decode_s: float
    decoding: str | None = None  # as LossyRow's
    temperature: float | None = None

    @property
    def label(self) -> str:
        """"model K levels" (", mean" or ", sample T=t" for a sampling family's decodings), the
        name of a hiercodec point."""
        return _point_label(self.model, self.levels, self.decoding, self.temperature)


def _point_label(model: str | None, levels: int | None, decoding: str | None = None,
                 temperature: float | None = None) -> str:
    label = f"{model} {levels} level{'s' if levels != 1 else ''}"
    return label if decoding is None else f"{label}, {_decoding_label(decoding, temperature)}"


def _decoding_label(decoding: str, temperature: float | None) -> str:
    return f"{decoding} T={temperature:g}" if decoding == SAMPLE and temperature is not None else decoding


@dataclass
class LossyResult:
    shapes: dict[str, tuple[int, ...]]  # image name -> (H, W, C), in run order
    models: dict[str, int]  # model id -> its level count (the same for every image)
    peers: list[str]
    rows: list[LossyRow] = field(default_factory=list)
    meta: dict = field(default_factory=dict)

    def pooled(self, kind: str | None = None) -> list[Pooled]:
        """Rows pooled per (codec, kind, point or setting), in run order; a group that does not
        cover every image has no pooled figure (it would not compare with the others)."""
        groups: dict[tuple, list[LossyRow]] = {}
        for r in self.rows:
            if kind is None or r.kind == kind:
                key = (r.kind, r.codec, r.model, r.levels, r.decoding, r.setting if r.kind == CURVE else None)
                groups.setdefault(key, []).append(r)
        return [_pool(rows) for rows in groups.values() if len({r.image for r in rows}) == len(self.shapes)]

    def points(self) -> list[Pooled]:
        """The hiercodec points, pooled: per model, K = 1, 2, ... (a sampling family: mean, then
        sample, at each K)."""
        return self.pooled(MODEL)

    def matched(self, model: str, levels: int) -> list[Pooled]:
        """The peers at the rate of one hiercodec point (model, K), pooled, in peer order (a sampling
        family's: at the mean file's rate)."""
        return [p for p in self.pooled(MATCHED) if p.model == model and p.levels == levels]

    def curve(self, peer: str) -> list[Pooled]:
        """A peer's rate-distortion curve, pooled at each grid setting, smallest files first."""
        return [p for p in self.pooled(CURVE) if p.codec == peer]


def _pool(rows: list[LossyRow]) -> Pooled:
    first = rows[0]
    pixels = sum(r.pixels for r in rows)
    nbytes = sum(r.nbytes for r in rows)
    settings = tuple(r.setting for r in rows) if first.kind != MODEL else ()
    return Pooled(first.codec, first.kind, first.model, first.levels, first.levels_total, settings, len(rows),
                  pixels, nbytes, 8 * nbytes / pixels, float(np.mean([r.psnr for r in rows])),
                  float(np.mean([r.ms_ssim for r in rows])), sum(r.encode_s for r in rows),
                  sum(r.decode_s for r in rows), first.decoding, first.temperature)


# ----------------------------------------------------------------------------- checks


def levels_total(model: "Model", shape: tuple[int, ...]) -> int:
    """How many levels `model` codes an image of shape (H, W, C) in."""
    from hiercodec.geometry import Geometry

    geometry = Geometry(*shape)
    return len(model.family.levels(geometry, model.family.layout(geometry)))


def check_lossy_model(model: "Model", shape: tuple[int, ...] = (64, 64, 3)) -> int:
    """The model's level count for such an image, or a HiercodecError when it has a single level:
    a one-level file is all or nothing, so there is no lossy point to show."""
    n = levels_total(model, shape)
    if n < 2:
        raise HiercodecError(f"model '{model.id}' codes a {'gray' if shape[2] == 1 else 'colour'} image in a "
                             "single level, so it has no lossy prefix to benchmark; give a hierarchical model "
                             "(-m pyramid, -m grayscale, -m vqvae2)")
    return n


def _lossy_image(image: np.ndarray, name: str) -> np.ndarray:
    """(H, W, C) uint8, gray or RGB, at least 11 x 11 (MS-SSIM's window), or an ImageError."""
    image = _checked(image, name)
    if image.shape[2] not in (1, 3):
        raise ImageError(f"{name}: the lossy benchmark takes gray or RGB images; this one has alpha "
                         "(JPEG stores none)")
    h, w = image.shape[:2]
    if min(h, w) < WINDOW:
        raise ImageError(f"{name}: {w}x{h} is too small for MS-SSIM; the lossy benchmark needs at least "
                         f"{WINDOW}x{WINDOW} pixels")
    return image


def decodings(model: "Model") -> tuple[str | None, ...]:
    """The decodings of each of the model's lossy points: (MEAN, SAMPLE) for a family that samples
    its missing levels, (None,) for the others."""
    return (MEAN, SAMPLE) if model.family.sample_temperature is not None else (None,)


def lossy_steps(shapes: Sequence[tuple[int, ...]], models: Sequence["Model"], peers: Sequence[str]) -> int:
    """How many times run_lossy_bench calls on_step (for a progress bar): per image, each model
    point (each decoding of it) and each peer matched to it, and each peer's curve."""
    return (sum((levels_total(m, s) - 1) * (len(decodings(m)) + len(peers)) for s in shapes for m in models)
            + len(shapes) * len(peers))


# ----------------------------------------------------------------------------- running


def _as_rgb_like(decoded: np.ndarray, shape: tuple[int, ...], what: str) -> np.ndarray:
    """The reconstruction in the image's layout (H, W, C): a one-channel reconstruction of a
    colour image (a grayscale model's gray level) counts as gray in every channel."""
    if decoded.shape[:2] != shape[:2]:
        raise HiercodecError(f"{what} decoded to {decoded.shape[1]}x{decoded.shape[0]}, not the image's "
                             f"{shape[1]}x{shape[0]}")
    if decoded.shape[2] == 1 and shape[2] == 3:
        decoded = np.repeat(decoded, 3, axis=2)
    if decoded.shape != shape:
        raise HiercodecError(f"{what} decoded to {decoded.shape[2]} channels, the image has {shape[2]}")
    return decoded


def _model_row(model: "Model", k: int, total: int, name: str, image: np.ndarray,
               decoding: str | None = None) -> LossyRow:
    """The file of the model's first k levels, decoded as the family does (decoding None), by its
    mean reconstruction (MEAN: a file without stored sampling, decoded with sample=False) or by
    sampling (SAMPLE: a file that stores seed 0 and the family's temperature, decoded as it says)."""
    from hiercodec.codec import decode_image, encode_image
    from hiercodec.coding.sampling import Sampling

    draws, temperature = None, None
    if decoding == SAMPLE:
        draws = Sampling(SAMPLE_SEED, round(1000 * model.family.sample_temperature))
        temperature = draws.milli / 1000
    (data, _), encode_s = _timed(lambda: encode_image(model, image, levels=k, sample=draws))
    # Decode with the very model that encoded (as `hiercodec bench` does); the hash is still checked.
    how = False if decoding == MEAN else None
    (decoded, report), decode_s = _timed(lambda: decode_image(data, lambda _id: model, full_size=True, sample=how))
    if (report.sampled is not None) != (decoding == SAMPLE):  # pragma: no cover (a codec bug)
        raise HiercodecError(f"model '{model.id}' with {k} levels of {name!r}: the {decoding or 'lossy'} file "
                             f"decoded {'with' if report.sampled else 'without'} sampling")
    what = f"model '{model.id}' with {k} levels of {name!r}" + (f" ({decoding})" if decoding else "")
    decoded = _as_rgb_like(decoded, image.shape, what)
    return LossyRow(name, tuple(image.shape), model.id, MODEL, len(data), bits_per_pixel(len(data), image.shape),
                    psnr(image, decoded), ms_ssim(image, decoded), encode_s, decode_s, model.id, k, total,
                    decoding=decoding, temperature=temperature)


def _peer_row(point: PeerPoint, name: str, shape: tuple[int, ...], at: LossyRow | None = None) -> LossyRow:
    """A peer's file as a row: MATCHED to the model point `at`, or (no `at`) a CURVE point."""
    if at is None:
        return LossyRow(name, shape, point.peer, CURVE, point.nbytes, point.bpp, point.psnr, point.ms_ssim,
                        point.encode_s, point.decode_s, setting=point.setting)
    return LossyRow(name, shape, point.peer, MATCHED, point.nbytes, point.bpp, point.psnr, point.ms_ssim,
                    point.encode_s, point.decode_s, at.model, at.levels, at.levels_total, point.setting,
                    point.target_bpp)


def run_lossy_bench(images: Mapping[str, np.ndarray], models: Sequence["Model | str"], peers: Sequence[str],
                    on_step: Callable[[str, str], None] | None = None) -> LossyResult:
    """Every lossy point of every model (K = 1 .. levels - 1) on every image, each peer at the
    matched rate of each point, and each peer's curve over its grid of settings. A sampling
    family's point is two MODEL rows, decoding MEAN then SAMPLE; the peers match the first.

    images: name -> uint8 array ((H, W) gray or (H, W, 3) RGB, at least 11 x 11); models: loaded
    zoo models or their names; peers: names of hiercodec.bench.peers_lossy.LOSSY_PEERS.
    on_step(image, what) is called after each point (for progress bars; lossy_steps counts them).
    Everything that can be refused (an unknown or missing peer, a one-level model, an image with
    alpha) is refused before any coding, with a HiercodecError.
    """
    from hiercodec.zoo import load

    models = list({m.id: m for m in (load(m) if isinstance(m, str) else m for m in models)}.values())
    peers = [lossy_peer(p).name for p in dict.fromkeys(peers)]
    clash = {m.id for m in models} & set(peers)
    if clash:
        raise HiercodecError(f"model id {sorted(clash)[0]!r} is also the name of a peer codec; leave that peer out")
    checked = {name: _lossy_image(image, name) for name, image in images.items()}
    if not checked:
        raise HiercodecError("no images to benchmark")
    totals: dict[str, int] = {}
    for model in models:
        counts = {check_lossy_model(model, a.shape) for a in checked.values()}
        if len(counts) > 1:  # gray and colour images coded in different level counts: no common points
            raise HiercodecError(f"model '{model.id}' codes these images in different numbers of levels "
                                 f"({sorted(counts)}); benchmark gray and colour images separately")
        totals[model.id] = counts.pop()
    meta = _meta(models, peers, {p: LOSSY_PEERS[p].settings for p in peers})
    meta.update(codec_libraries=_libraries(), quality=_QUALITY,
                curve_settings={p: {LOSSY_PEERS[p].knob: list(LOSSY_PEERS[p].grid)} for p in peers})
    sampled = {m.id: {"seed": SAMPLE_SEED, "temperature": round(1000 * m.family.sample_temperature) / 1000}
               for m in models if m.family.sample_temperature is not None}
    if sampled:  # how the SAMPLE rows' files decode
        meta.update(sampling=sampled)
    result = LossyResult({n: tuple(a.shape) for n, a in checked.items()}, totals, peers, meta=meta)
    step = on_step or (lambda image, what: None)
    for name, image in checked.items():
        public = to_public(image)  # (H, W) for gray, as the peers take it
        for model in models:
            for k in range(1, totals[model.id]):
                rows = []
                for decoding in decodings(model):
                    rows.append(_model_row(model, k, totals[model.id], name, image, decoding))
                    result.rows.append(rows[-1])
                    step(name, _point_label(model.id, k, decoding, rows[-1].temperature))
                for peer in peers:  # once per (model, K): at the rate of its first (mean) file
                    result.rows.append(_peer_row(matched(peer, public, rows[0].bpp), name, rows[0].shape, rows[0]))
                    step(name, f"{peer} at {_point_label(model.id, k)}")
        for peer in peers:
            for setting in LOSSY_PEERS[peer].grid:
                result.rows.append(_peer_row(code(peer, public, setting), name, tuple(image.shape)))
            step(name, f"{peer} curve")
    return result


_QUALITY = (f"PSNR: 10 log10(255^2 / MSE) over all samples. MS-SSIM: Wang, Simoncelli & Bovik 2003, weights "
            f"{', '.join(map(str, MS_SSIM_WEIGHTS))}, Gaussian window {WINDOW} sigma 1.5, K1 0.01, K2 0.03, "
            "L 255, 2x2 average downsampling, per channel then averaged; images under 176 pixels a side use "
            "the scales that fit (each at least 11x11), weights renormalised (hiercodec/bench/quality.py).")


def _libraries() -> dict:
    try:
        import imagecodecs
    except ImportError:  # pragma: no cover (the peers need it)
        return {}
    out = {}
    for name in ("jpeg8", "webp", "jpegxl"):
        try:
            out[name] = getattr(imagecodecs, f"{name}_version")()
        except Exception:  # a codec missing from this build
            out[name] = None
    return out


# ----------------------------------------------------------------------------- renderers


def _db(value: float) -> str:
    return "inf" if math.isinf(value) else f"{value:.2f}"


def _setting(p: Pooled) -> str:
    if p.kind == MODEL:
        return f"K={p.levels} of {p.levels_total}"
    knob = LOSSY_PEERS[p.codec].knob if p.codec in LOSSY_PEERS else "setting"
    lo, hi = min(p.settings), max(p.settings)
    return f"{knob} {lo:g}" if lo == hi else f"{knob} {lo:g}-{hi:g}"


def markdown(result: LossyResult) -> str:
    """Pooled over the images: each hiercodec point (a sampling family's: its mean and its sampled
    decoding), then each peer at its matched rate (named by the point whose rate it matched)."""
    lines = ["| point | codec | setting | bpp | PSNR dB | MS-SSIM | enc s | dec s |", "|" + "---|" * 8]
    points: dict[tuple, list[Pooled]] = {}
    for point in result.points():
        points.setdefault((point.model, point.levels), []).append(point)
    for (model, levels), rows in points.items():
        target = rows[0].label  # the peers matched the first decoding's rate
        for p in [*rows, *result.matched(model, levels)]:
            cells = [p.label if p.kind == MODEL else target, p.codec, _setting(p), f"{p.bpp:.3f}", _db(p.psnr),
                     f"{p.ms_ssim:.4f}", _secs(p.encode_s), _secs(p.decode_s)]
            lines.append("| " + " | ".join(cells) + " |")
    n = len(result.shapes)
    pixels = sum(s[0] * s[1] for s in result.shapes.values())
    note = NOTE + (_SAMPLING_NOTE if any(p.decoding for p in result.points()) else "")
    return "\n".join(lines) + f"\n\n{n} image{'s' if n != 1 else ''}, {pixels} pixels. {note}"


_SAMPLING_NOTE = (" A sampling family's point has two decodings of its first K levels: mean, the family's "
                  "reconstruction of the missing levels, and sample T, a file that also stores a seed (0) and "
                  "the temperature T (format version 3) and decodes by drawing them; its peers are matched to "
                  "the mean file's rate.")


def _record(item: LossyRow | Pooled) -> dict:
    pooled = isinstance(item, Pooled)
    setting = None
    if pooled and item.settings:
        setting = item.settings[0] if len(set(item.settings)) == 1 else None  # varies per image: see the rows
    elif not pooled:
        setting = item.setting
    return {"image": "all" if pooled else item.image, "shape": "" if pooled else _shape(item.shape),
            "pixels": item.pixels, "codec": item.codec, "kind": item.kind, "model": item.model,
            "levels": item.levels, "levels_total": item.levels_total, "setting": setting,
            "target_bpp": None if pooled else item.target_bpp, "decoding": item.decoding, "bytes": item.nbytes,
            "bpp": item.bpp, "psnr": item.psnr, "ms_ssim": item.ms_ssim, "encode_s": item.encode_s,
            "decode_s": item.decode_s}


def to_csv(result: LossyResult) -> str:
    """One line per file (image, codec, point or setting), then the pooled lines (image "all")."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows([_record(r) for r in result.rows] + [_record(p) for p in result.pooled()])
    return buf.getvalue()


def _finite(record: dict) -> dict:
    """JSON has no infinity: an identical reconstruction's PSNR is written as the string "inf"."""
    return {k: "inf" if isinstance(v, float) and math.isinf(v) else v for k, v in record.items()}


def to_json(result: LossyResult) -> str:
    """meta (machine, versions, peer calls, quality definitions), images, models (level
    counts), peers, rows (every file), pooled (with the per-image settings and image count)."""
    doc = {"meta": result.meta,
           "images": [{"name": n, "shape": list(s)} for n, s in result.shapes.items()],
           "models": result.models,
           "peers": result.peers,
           "rows": [_finite(_record(r)) for r in result.rows],
           "pooled": [_finite(dict(_record(p), images=p.images, settings=list(p.settings))) for p in result.pooled()]}
    return json.dumps(doc, indent=1, allow_nan=False) + "\n"


def write_lossy_output(result: LossyResult, path: str | Path, force: bool = False) -> None:
    """JSON, markdown or CSV by the suffix (.json, .md, .csv), written atomically."""
    write_output(result, path, force, LOSSY_FORMATS, {"json": to_json, "markdown": markdown, "csv": to_csv})


# ----------------------------------------------------------------------------- plot


_MARKERS = "o^sDvP*X"


def plot_lossy(result: LossyResult, path: str | Path, force: bool = False) -> None:
    """A PNG with two panels, PSNR vs bpp and MS-SSIM vs bpp (log x): each peer's curve pooled
    over the images at each grid setting (total bits / total pixels, mean quality), and the
    hiercodec points as markers labelled "model K levels" (a sampling family's two decodings of
    a point under one label: the mean one filled, the sampled one hollow, as the legend says).
    Written atomically."""
    fig = new_figure((12.0, 5.0))
    from matplotlib.ticker import FuncFormatter

    axes = fig.subplots(1, 2)
    n = len(result.shapes)
    for ax, metric, name in ((axes[0], "psnr", "PSNR (dB)"), (axes[1], "ms_ssim", "MS-SSIM")):
        for j, peer in enumerate(result.peers):
            curve = result.curve(peer)
            ax.plot([c.bpp for c in curve], [_y(c, metric) for c in curve], "-", marker=".",
                    color=f"C{j % 10}", label=peer)
        legend, named = set(), []
        for point in result.points():
            marker = _MARKERS[list(result.models).index(point.model) % len(_MARKERS)]
            y = _y(point, metric)
            entry = point.model if point.decoding is None else \
                f"{point.model}, {_decoding_label(point.decoding, point.temperature)}"
            ax.plot([point.bpp], [y], marker, color="black", markersize=7,
                    fillstyle="none" if point.decoding == SAMPLE else "full",
                    label=None if entry in legend else entry)
            legend.add(entry)
            if (point.model, point.levels) not in named:  # one "model K levels" per point; the legend tells
                named.append((point.model, point.levels))  # a sampling family's decodings apart
                ax.annotate(_point_label(point.model, point.levels), (point.bpp, y), textcoords="offset points",
                            xytext=(5, -10 if len(named) % 2 == 0 else 4), fontsize="small")
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))  # 0.5, 1, 2 rather than 2 x 10^0
        ax.xaxis.set_minor_formatter(FuncFormatter(_minor_label))
        ax.set_xlabel("bits per pixel (8 x file bytes / pixels)")
        ax.set_ylabel(name)
        ax.set_title(f"{name} vs rate: {n} image{'s' if n != 1 else ''}, pooled bpp and mean {name.split()[0]} "
                     "per setting", fontsize="medium")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize="small")
    save_png(fig, path, force)


def _minor_label(value: float, _pos) -> str:
    """Label 0.2, 0.5, 2, 5 ... between the decades of a log axis, leave the rest unlabelled."""
    lead = round(value / 10 ** math.floor(math.log10(value))) if value > 0 else 0
    return f"{value:g}" if lead in (2, 5) else ""


def _y(item: Pooled, metric: str) -> float:
    value = getattr(item, metric)
    return np.nan if math.isinf(value) else value  # an identical reconstruction has no place on the axis
