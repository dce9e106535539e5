#!/usr/bin/env python
"""Figure 4a of Gulrajani et al. 2016 with real bits: file size per binarized-MNIST test digit
against the number of PixelCNN layers, PixelVAE (with and without upsampling) next to a plain
PixelCNN of the same depth (the same codec with latents = 0), and (Figure 4b) PixelVAE's KL term.

Each point is a run of a recipe with `layers` set, trained for --steps, exported and used to code
--count held-out digits as one set file. Kinds: `pixelvae-up` (PixelVAE as in sec. 3: the PixelCNN
reads the upsampled feature maps of z; `pixelvae-upsample`), `pixelvae` (Table 1's variant without
upsampling: a linear map of z biases every layer; `pixelvae-codec`) and `pixelcnn` (the same network
with `latents` = 0).
Runs live in --out and resume where they stopped, so the sweep can span sessions:

    python benchmarks/pixelvae_figure4a.py --out runs/figure4a --steps 5000 --layers 0 1 2 4
    python benchmarks/pixelvae_figure4a.py --out runs/figure4a --report docs/results/figure4a.json

Two processes can share a sweep by taking different points (`--points pixelvae-up:4 pixelcnn:2`);
a last call over all of them (nothing left to train) measures every point and writes the report.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from dataclasses import replace
from pathlib import Path

from pixelvae_mnist import held_out

from hiercodec.fileio import atomic_write

KINDS = ("pixelvae-up", "pixelvae", "pixelcnn")
RECIPES = {"pixelvae-up": "pixelvae-upsample", "pixelvae": "pixelvae-codec", "pixelcnn": "pixelvae-codec"}
MEASURED = "figure4a.json"
LABELS = {"pixelvae-up": "PixelVAE", "pixelvae": "PixelVAE without upsampling", "pixelcnn": "PixelCNN"}


def run_name(kind: str, layers: int) -> str:
    return f"{kind}-L{layers}"


def train_point(out: Path, kind: str, layers: int, steps: int, minutes: float | None,
                kl_warmup: int | None = None, amp_cpu: bool = False) -> Path:
    from hiercodec.train.config import load_config
    from hiercodec.train.loop import train

    config = load_config(RECIPES[kind])
    network = {**config.network, "layers": layers}
    if kl_warmup is not None:
        network["kl_warmup"] = kl_warmup
    if kind == "pixelcnn":
        network = {**network, "latents": 0, "kl_warmup": 0}
    config = replace(config.with_train(steps=steps, eval_every=max(500, steps // 4), amp_cpu=amp_cpu), network=network,
                     name=f"figure4a-{kind}-L{layers}")
    folder = out / run_name(kind, layers)
    train(folder, config, resume=folder.exists(), minutes=minutes, progress=False)
    return folder


def measure(folder: Path, models: Path, count: int) -> dict:
    """The point's row, measured once per checkpoint (kept in the run folder as MEASURED)."""
    step = json.loads((folder / "checkpoint.json").read_text())["step"]
    kept = folder / MEASURED
    if kept.exists():
        row = json.loads(kept.read_text())
        if (row.get("step"), row.get("digits")) == (step, count):
            return row
    row = {"step": step, **_measure(folder, models, count)}
    atomic_write(kept, (json.dumps(row) + "\n").encode(), force=True)
    return row


def _measure(folder: Path, models: Path, count: int) -> dict:
    from hiercodec import api
    from hiercodec.export.run import export_run

    os.environ["HIERCODEC_MODELS"] = str(models)
    name = f"figure4a-{folder.name.lower()}"
    export_run(folder, name, force=True)
    digits = held_out("binarized-mnist-test", count)
    data, report = api.encode_set_with_report(digits, name)
    (level,) = report.levels
    n, nats = len(digits), math.log(2)
    return {"file_nats_per_digit": 8 * len(data) * nats / n, "neg_elbo_nats": level.bound_bits * nats / n,
            "kl_nats": level.kl_bits * nats / n, "reconstruction_nats": level.reconstruction_bits * nats / n,
            "initial_bits": level.initial_bits, "digits": n}


def plot(rows: dict, path: Path) -> None:
    """Figure 4a (file nats per digit against gated PixelCNN layers, every kind measured) and 4b
    (each PixelVAE's bound split into reconstruction and KL) side by side, as a PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    def series(kind: str, key: str) -> tuple[list[int], list[float]]:
        points = sorted((r["layers"], r[key]) for r in rows.values() if r["kind"] == kind)
        return [x for x, _ in points], [y for _, y in points]

    fig = Figure(figsize=(9, 3.6))
    FigureCanvasAgg(fig)
    a, b = fig.subplots(1, 2)
    layers = sorted({r["layers"] for r in rows.values()})
    kinds = [k for k in KINDS if any(r["kind"] == k for r in rows.values())]
    for kind in kinds:
        a.plot(*series(kind, "file_nats_per_digit"), "o-", label=f"{LABELS[kind]} (file)")
    a.set(xlabel="gated PixelCNN layers", ylabel="nats per digit", title="(a) file size, binarized MNIST",
          xticks=layers)
    a.legend(fontsize=7)
    for kind, style in (("pixelvae-up", "-"), ("pixelvae", ":")):
        if kind in kinds:
            b.plot(*series(kind, "reconstruction_nats"), "o" + style, color="C0", label=f"reconstruction, {LABELS[kind]}")
            b.plot(*series(kind, "kl_nats"), "o" + style, color="C1", label=f"KL, {LABELS[kind]}")
    b.set(xlabel="gated PixelCNN layers", ylabel="nats per digit", title="(b) PixelVAE's bound", xticks=layers)
    b.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def parse_point(p: argparse.ArgumentParser, point: str) -> tuple[str, int]:
    """KIND:LAYERS -> (kind, layers), checked before any training starts."""
    kind, _, layers = point.partition(":")
    if kind not in KINDS or not layers.isdigit():
        p.error(f"a point is KIND:LAYERS with KIND one of {', '.join(KINDS)} and LAYERS >= 0, not {point!r}")
    return kind, int(layers)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="folder of the runs (resumed)")
    p.add_argument("--layers", type=int, nargs="+", default=[0, 1, 2, 4])
    p.add_argument("--points", nargs="+", metavar="KIND:LAYERS",
                   help="only these points (pixelvae-up:2 pixelcnn:4 ...), in this order, instead of --layers")
    p.add_argument("--kl-warmup", type=int, help="steps of KL warm-up (default: the recipe's)")
    p.add_argument("--amp-cpu", action="store_true", help="train in bfloat16 autocast on the CPU (faster here)")
    p.add_argument("--steps", type=int, default=5000)
    p.add_argument("--minutes", type=float, default=None, help="stop each run's training after this many minutes")
    p.add_argument("--count", type=int, default=500, help="held-out digits coded per point")
    p.add_argument("--report", type=Path, help="write the table (JSON) here")
    p.add_argument("--plot", type=Path, help="draw Figures 4a and 4b from the table (PNG) here")
    args = p.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    points = [parse_point(p, point) for point in args.points] if args.points \
        else [(kind, layers) for layers in args.layers for kind in KINDS]
    rows = {}
    for kind, layers in points:
        folder = train_point(args.out, kind, layers, args.steps, args.minutes, args.kl_warmup, args.amp_cpu)
        rows[run_name(kind, layers)] = {"kind": kind, "layers": layers,
                                       **measure(folder, args.out / "models", args.count)}
        print(json.dumps(rows[run_name(kind, layers)]), flush=True)
    if args.report:
        atomic_write(args.report, (json.dumps(rows, indent=1) + "\n").encode(), force=True)
    if args.plot:
        plot(rows, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
