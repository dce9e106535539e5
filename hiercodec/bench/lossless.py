"""Benchmark hiercodec models against the peer codecs (hiercodec.bench.peers) on the same images.

Every codec codes every image once; every file is decoded and compared with the original (a
difference raises, it never becomes a row). Sizes are the real bytes: bits/dim is
8 x file bytes / samples, header included; a model's row also carries the exact model's bound
(its -log2 p of the image) in bits/dim. Seconds are wall time of this process.

    >>> result = run_bench({"photo": image}, [zoo.load("default")], available_peers())
    >>> print(markdown(result))

Overall figures pool every image (total bits / total samples, summed seconds), so large images
weigh more, as in a corpus. The CLI front end is `hiercodec bench` (cli/bench_cmd.py).
"""

from __future__ import annotations

import csv
import io
import json
import platform
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from hiercodec import __version__, container
from hiercodec.errors import HiercodecError, ImageError
from hiercodec.fileio import atomic_write
from hiercodec.images import images_in, load_image, to_public
from hiercodec.bench.peers import PEERS, run_peer

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

    from hiercodec.report import Report
    from hiercodec.zoo import Model

__all__ = ["Row", "Overall", "BenchResult", "image_paths", "load_targets", "read_images",
           "check_codecs", "run_bench", "markdown", "to_csv", "to_json", "output_format", "write_output",
           "check_plot", "plot", "new_figure", "save_png"]

OUTPUT_FORMATS = {".csv": "csv", ".json": "json"}
MODEL, PEER = "hiercodec", "peer"
FIELDS = ["image", "shape", "dims", "codec", "kind", "bytes", "bits_per_dim", "bound_bits_per_dim",
          "paper_bound_bits_per_dim", "encode_s", "decode_s"]  # of a CSV line / JSON row
_NO_PLOT = 'plotting needs matplotlib, which is not installed: pip install "hiercodec[bench]"'


@dataclass(frozen=True)
class Row:
    """One codec on one image."""

    image: str
    shape: tuple[int, ...]  # (H, W, C)
    codec: str  # a model id or a peer name
    kind: str  # MODEL or PEER
    nbytes: int
    bits_per_dim: float  # of the real bytes, header included
    bound_bits_per_dim: float | None  # the exact model's bound; None for peers
    encode_s: float
    decode_s: float
    # the bound with tables not restricted by consistency-constrained coding (the paper's bound)
    paper_bound_bits_per_dim: float | None = None
    levels: tuple[tuple[str, float, float], ...] = ()  # per level: name, bound bits, paper bound bits

    @property
    def dims(self) -> int:
        return int(np.prod(self.shape))


@dataclass(frozen=True)
class Overall:
    """One codec pooled over every image: total bits / total samples, summed seconds."""

    codec: str
    kind: str
    images: int
    dims: int
    nbytes: int
    bits_per_dim: float
    bound_bits_per_dim: float | None
    encode_s: float
    decode_s: float
    paper_bound_bits_per_dim: float | None = None
    levels: tuple[tuple[str, float, float], ...] = ()  # per level: name, bound bits, paper bound bits


@dataclass
class BenchResult:
    shapes: dict[str, tuple[int, ...]]  # image name -> (H, W, C), in run order
    codecs: dict[str, str]  # codec -> MODEL or PEER; models first, then peers
    rows: list[Row]
    # (image, codec, why) for a peer that cannot store the image's layout (gray + alpha)
    skipped: list[tuple[str, str, str]] = field(default_factory=list)
    meta: dict = field(default_factory=dict)

    def row(self, image: str, codec: str) -> Row | None:
        return next((r for r in self.rows if r.image == image and r.codec == codec), None)

    def overall(self) -> dict[str, Overall]:
        """Per codec, pooled; a codec that could not code every image has none (its pooled
        figure would not be comparable with the others')."""
        out = {}
        for codec in self.codecs:
            rows = [r for r in self.rows if r.codec == codec]
            if len(rows) == len(self.shapes) and rows:
                out[codec] = _pool(codec, rows)
        return out


def _pool(codec: str, rows: list[Row]) -> Overall:
    dims = sum(r.dims for r in rows)
    nbytes = sum(r.nbytes for r in rows)
    bound = paper = None
    if all(r.bound_bits_per_dim is not None for r in rows):
        bound = sum(r.bound_bits_per_dim * r.dims for r in rows) / dims
        paper = sum(r.paper_bound_bits_per_dim * r.dims for r in rows) / dims
    names = list(dict.fromkeys(name for r in rows for name, _, _ in r.levels))
    levels = tuple((n, sum(b for r in rows for m, b, _ in r.levels if m == n),
                    sum(p for r in rows for m, _, p in r.levels if m == n)) for n in names)
    return Overall(codec, rows[0].kind, len(rows), dims, nbytes, 8 * nbytes / dims, bound,
                   sum(r.encode_s for r in rows), sum(r.decode_s for r in rows), paper, levels)


# ----------------------------------------------------------------------------- images


def image_paths(targets: Sequence[str | Path]) -> list[Path]:
    """Image files from files and folders (a folder gives its images in name order)."""
    return [p for target in targets for p in images_in(Path(target))]


def load_targets(targets: Sequence[str | Path]) -> dict[str, np.ndarray]:
    """Files and folders first, then held-out photos named (a name that is not a file here), e.g.
    `hiercodec bench astronaut`; no targets: every held-out photo."""
    from hiercodec.bench.heldout import HELDOUT_NAMES, heldout_images

    if not targets:
        return heldout_images()
    named = [str(t) for t in targets if not Path(t).exists() and str(t) in HELDOUT_NAMES]
    files = [Path(t) for t in targets if str(t) not in named]
    images = read_images(image_paths(files)) if files else {}
    images.update(heldout_images(named) if named else {})
    return images


def read_images(paths: Sequence[Path]) -> dict[str, np.ndarray]:
    """name -> uint8 (H, W, C), read with the checks of `hiercodec compress`. A name is the file
    name, or the whole path where two files share a name."""
    names = [p.name for p in paths]
    out: dict[str, np.ndarray] = {}
    for path, name in zip(paths, names):
        key = name if names.count(name) == 1 else str(path)
        if key in out:  # the same file given twice
            continue
        out[key] = load_image(path)  # run_bench checks the pixel count
    return out


def _checked(image: np.ndarray, name: str) -> np.ndarray:
    image = load_image(image)  # (H, W, C) uint8, or ImageError
    h, w = image.shape[:2]
    if h * w > container.MAX_PIXELS:
        raise ImageError(f"{name}: the image has {h * w} pixels; a .hc file holds at most "
                         f"{container.MAX_PIXELS}")
    return image


# ----------------------------------------------------------------------------- running


def _timed(fn, *args):
    start = time.perf_counter()
    value = fn(*args)
    return value, time.perf_counter() - start


def timed_round_trip(model: "Model", image: np.ndarray, name: str = "the image") -> tuple[bytes, "Report", float, float]:
    """Encode `image` with `model`, decode it, check the pixels (HiercodecError otherwise): the
    file, its report, and the encode and decode wall seconds."""
    from hiercodec.codec import decode_image, encode_image

    (data, report), encode_s = _timed(encode_image, model, image)
    # Decode with the very model that encoded (as verify does): decode_image still checks its hash.
    (decoded, _), decode_s = _timed(decode_image, data, lambda _id: model)
    if decoded.shape != image.shape or not np.array_equal(decoded, image):
        raise HiercodecError(f"model {model.id!r} did not decode {name!r} to the same pixels")
    return data, report, encode_s, decode_s


def _model_row(model: "Model", name: str, image: np.ndarray) -> Row:
    data, report, encode_s, decode_s = timed_round_trip(model, image, name)
    levels = tuple((lv.name, lv.bound_bits, lv.paper_bound_bits) for lv in report.levels)
    return Row(name, tuple(image.shape), model.id, MODEL, len(data), 8 * len(data) / image.size,
               report.bound_bits_per_dim, encode_s, decode_s, report.paper_bound_bits / image.size, levels)


def _peer_input(image: np.ndarray) -> np.ndarray | None:
    """The layout peers take ((H, W) gray, RGB, RGBA), or None: none of them stores gray + alpha."""
    return None if image.shape[2] == 2 else to_public(image)


def _peer_row(peer: str, name: str, image: np.ndarray) -> Row:
    r = run_peer(peer, _peer_input(image))  # checks the round trip itself
    return Row(name, tuple(image.shape), peer, PEER, r.nbytes, 8 * r.nbytes / image.size, None,
               r.encode_seconds, r.decode_seconds)


def check_codecs(models: Sequence["Model"], peers: Sequence[str]) -> None:
    """Refuse unknown peers and a model id that would be confused with a peer's column."""
    for peer in peers:
        if peer not in PEERS:
            raise HiercodecError(f"unknown peer codec {peer!r}; choose from {', '.join(PEERS)}")
    clash = {m.id for m in models} & set(peers)
    if clash:
        raise HiercodecError(f"model id {sorted(clash)[0]!r} is also the name of a peer codec; leave that peer out")


def run_bench(images: Mapping[str, np.ndarray], models: Sequence["Model"], peers: Sequence[str],
              on_step: Callable[[str, str], None] | None = None) -> BenchResult:
    """Code every image with every model and every peer, checking every round trip.

    images: name -> uint8 array ((H, W) or (H, W, C)); models: loaded zoo models (one column
    group per distinct id); peers: names of hiercodec.bench.peers.PEERS. on_step(image, codec) is
    called after each codec finishes an image (for progress bars). Raises HiercodecError on any
    failed round trip or codec error.
    """
    models = list({m.id: m for m in models}.values())
    peers = list(dict.fromkeys(peers))
    check_codecs(models, peers)
    checked = {name: _checked(image, name) for name, image in images.items()}
    result = BenchResult({n: tuple(a.shape) for n, a in checked.items()},
                         {**{m.id: MODEL for m in models}, **{p: PEER for p in peers}}, [],
                         meta=_meta(models, peers))
    for name, image in checked.items():
        for model in models:
            result.rows.append(_model_row(model, name, image))
            if on_step:
                on_step(name, model.id)
        for peer in peers:
            if _peer_input(image) is None:
                result.skipped.append((name, peer, "gray + alpha is not stored by the peer codecs"))
            else:
                result.rows.append(_peer_row(peer, name, image))
            if on_step:
                on_step(name, peer)
    return result


def _version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def _meta(models: Sequence["Model"], peers: Sequence[str], settings: Mapping[str, str] | None = None) -> dict:
    """Machine, versions, model hashes and the peers' calls (settings: peer -> call, by default
    the lossless peers' own; the lossy benchmark passes its peers')."""
    import torch

    from hiercodec import engine

    settings = settings or {p: PEERS[p].settings for p in peers}
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "machine": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "hiercodec": __version__,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "threads": engine.thread_count(),
        "engine": engine.status(),
        "imagecodecs": _version("imagecodecs"),
        "pyoxipng": _version("pyoxipng"),
        "models": {m.id: m.hash.hex() for m in models},
        "peers": {p: settings[p] for p in peers},
    }


# ----------------------------------------------------------------------------- renderers


def _shape(shape: Sequence[int]) -> str:
    return "x".join(map(str, shape))


def _bpd(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _secs(value: float | None) -> str:
    """Enough digits to compare both a 0.0004 s peer and a 240 s model."""
    if value is None:
        return "-"
    digits = 0 if value >= 100 else 1 if value >= 10 else 2 if value >= 1 else 4
    return f"{value:.{digits}f}"


def _columns(result: BenchResult) -> list[tuple[str, str, str]]:
    """(codec, field, header) per table column after image and shape."""
    cols = []
    heads = {"bits_per_dim": "bpd", "bound_bits_per_dim": "bound bpd", "paper_bound_bits_per_dim": "paper bpd",
             "encode_s": "enc s", "decode_s": "dec s"}
    for codec, kind in result.codecs.items():
        # peers have no bound; the paper's bound is shown where consistency-constrained coding changed it
        constrained = any(r.paper_bound_bits_per_dim != r.bound_bits_per_dim for r in result.rows if r.codec == codec)
        fields = [f for f in heads if kind == MODEL or "bound" not in f]
        fields = [f for f in fields if constrained or f != "paper_bound_bits_per_dim"]
        cols += [(codec, f, f"{codec} {heads[f]}") for f in fields]
    return cols


def _cell(item: Row | Overall | None, name: str) -> str:
    if item is None:
        return "-"
    value = getattr(item, name)
    return _bpd(value) if "bits" in name else _secs(value)


def markdown(result: BenchResult) -> str:
    """A markdown table: one row per image and a pooled "all" row; a column group per codec."""
    cols = _columns(result)
    lines = ["| " + " | ".join(["image", "shape", *(h for _, _, h in cols)]) + " |",
             "|" + "---|" * (len(cols) + 2)]
    for name, shape in result.shapes.items():
        cells = [name.replace("|", "\\|"), _shape(shape), *(_cell(result.row(name, c), f) for c, f, _ in cols)]
        lines.append("| " + " | ".join(cells) + " |")
    overall = result.overall()
    dims = sum(int(np.prod(s)) for s in result.shapes.values())
    cells = ["all", f"{dims} dims", *(_cell(overall.get(c), f) for c, f, _ in cols)]
    lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _record(item: Row | Overall) -> dict:
    """The fields of a row or a pooled row, as CSV and JSON write them."""
    pooled = isinstance(item, Overall)
    return {"image": "all" if pooled else item.image, "shape": "" if pooled else _shape(item.shape),
            "dims": item.dims, "codec": item.codec, "kind": item.kind, "bytes": item.nbytes,
            "bits_per_dim": item.bits_per_dim, "bound_bits_per_dim": item.bound_bits_per_dim,
            "paper_bound_bits_per_dim": item.paper_bound_bits_per_dim,
            "encode_s": item.encode_s, "decode_s": item.decode_s}


def _levels(item: Row | Overall) -> list[dict]:
    """Per level, bits per sample of the whole image: the bound and the paper's bound."""
    return [{"level": n, "bound_bits_per_dim": b / item.dims, "paper_bound_bits_per_dim": p / item.dims}
            for n, b, p in item.levels]


def to_csv(result: BenchResult) -> str:
    """One line per (image, codec), then one per codec with image "all" (pooled)."""
    records = [_record(r) for r in result.rows] + [_record(o) for o in result.overall().values()]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)  # None (a peer's bound) is written as an empty field
    return buf.getvalue()


def to_json(result: BenchResult) -> str:
    """meta (machine, versions, settings), images, rows, overall (pooled, with its image count)."""
    doc = {"meta": result.meta,
           "images": [{"name": n, "shape": list(s)} for n, s in result.shapes.items()],
           "codecs": result.codecs,
           "rows": [dict(_record(r), levels=_levels(r)) for r in result.rows],
           "overall": [dict(_record(o), images=o.images, levels=_levels(o)) for o in result.overall().values()],
           "skipped": [{"image": i, "codec": c, "why": w} for i, c, w in result.skipped]}
    return json.dumps(doc, indent=1) + "\n"


def output_format(path: str | Path, formats: Mapping[str, str] = OUTPUT_FORMATS) -> str:
    """The format of a results file by its suffix (formats: suffix -> format; by default 'csv' or
    'json'); a HiercodecError for any other suffix."""
    kind = formats.get(Path(path).suffix.lower())
    if kind is None:
        suffixes = list(formats)
        either = ", ".join(suffixes[:-1]) + " or " + suffixes[-1] if len(suffixes) > 1 else suffixes[0]
        raise HiercodecError(f"{path}: the results file must end in {either}")
    return kind


def write_output(result: object, path: str | Path, force: bool = False, formats: Mapping[str, str] = OUTPUT_FORMATS,
                 renderers: Mapping[str, Callable[..., str]] | None = None) -> None:
    """The result rendered by the file's suffix, written atomically. By default a BenchResult as
    CSV or JSON; another result kind passes its formats and renderers (format -> text)."""
    renderers = renderers or {"csv": to_csv, "json": to_json}
    text = renderers[output_format(path, formats)](result)
    atomic_write(path, text.encode("utf-8"), force)


# ----------------------------------------------------------------------------- plot


def check_plot() -> None:
    """Fail before a long run, not after it, when matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise HiercodecError(_NO_PLOT) from None


def plot(result: BenchResult, path: str | Path, force: bool = False) -> None:
    """A PNG with two panels: bits/dim per image and codec (grouped bars, plus the pooled "all"),
    and pooled bits/dim against decode seconds per codec (log x). Written atomically."""
    bars_width = max(5.0, 1.0 + 0.15 * (len(result.shapes) + 1) * len(result.codecs))  # inches
    fig = new_figure((1.5 * bars_width, 4.8))
    bars, scatter = fig.subplots(1, 2, width_ratios=[2, 1])
    _draw_bars(bars, result)
    _draw_scatter(scatter, result)
    save_png(fig, path, force)


def new_figure(size: tuple[float, float]) -> "Figure":
    """A matplotlib Figure on the Agg canvas: the object API, not pyplot, so no global figure
    state and no GUI backend in a CLI."""
    check_plot()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_png(fig: "Figure", path: str | Path, force: bool = False) -> None:
    """The figure as a PNG, written atomically."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    atomic_write(path, buf.getvalue(), force)


def _color(result: BenchResult, codec: str) -> str:
    """The same colour for a codec in both panels (the scatter may lack codecs the bars have)."""
    return f"C{list(result.codecs).index(codec) % 10}"


def _draw_bars(ax, result: BenchResult) -> None:
    labels = [*result.shapes, "all"]
    overall = result.overall()
    width = 0.8 / max(1, len(result.codecs))
    for k, codec in enumerate(result.codecs):
        items = [result.row(n, codec) for n in result.shapes] + [overall.get(codec)]
        values = [np.nan if i is None else i.bits_per_dim for i in items]
        ax.bar(np.arange(len(labels)) + (k - (len(result.codecs) - 1) / 2) * width, values, width,
               label=codec, color=_color(result, codec))
    ax.set_xticks(np.arange(len(labels)), labels, rotation=30, ha="right")
    ax.set_ylabel("bits/dim (file bytes)")
    ax.set_title("bits/dim per image")
    ax.legend(fontsize="small")


def _draw_scatter(ax, result: BenchResult) -> None:
    for codec, o in result.overall().items():
        x = max(o.decode_s, 1e-6)  # a log axis cannot show 0
        ax.scatter([x], [o.bits_per_dim], marker="o" if o.kind == MODEL else "s", color=_color(result, codec))
        ax.annotate(codec, (x, o.bits_per_dim), textcoords="offset points", xytext=(4, 4), fontsize="small")
    ax.set_xscale("log")
    ax.set_xlabel("decode seconds, all images")
    ax.set_ylabel("bits/dim, all images")
    ax.set_title("size vs decode time")
    ax.grid(True, alpha=0.3)
