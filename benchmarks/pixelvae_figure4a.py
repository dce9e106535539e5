#!/usr/bin/env python
"""Figure 4a of Gulrajani et al. 2016 with real bits: file size per binarized-MNIST test digit
against the number of PixelCNN layers, PixelVAE (without upsampling) next to a plain PixelCNN of
the same depth (the same codec with latents = 0), and (Figure 4b) PixelVAE's KL term.

Each point is a run of the `pixelvae-codec` recipe with `layers` set (and `latents` = 0 for the
PixelCNN), trained for --steps, exported and used to code --count held-out digits as one set file.
Runs live in --out and resume where they stopped, so the sweep can span sessions:

    python benchmarks/pixelvae_figure4a.py --out runs/figure4a --steps 5000 --layers 0 1 2 4
    python benchmarks/pixelvae_figure4a.py --out runs/figure4a --report docs/results/figure4a.json

Two processes can share a sweep by taking different points (`--points pixelvae:4 pixelcnn:2`);
a last call over all of them (nothing left to train) measures every point and writes the report.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

import numpy as np


def run_name(kind: str, layers: int) -> str:
    return f"{kind}-L{layers}"


def train_point(out: Path, kind: str, layers: int, steps: int, minutes: float | None,
                kl_warmup: int | None = None, amp_cpu: bool = False) -> Path:
    from hiercodec.train.config import load_config
    from hiercodec.train.loop import train

    config = load_config("pixelvae-codec")
    network = {**config.network, "layers": layers}
    if kl_warmup is not None:
        network["kl_warmup"] = kl_warmup
    if kind == "pixelcnn":
        network = {**network, "latents": 0, "kl_warmup": 0}
    from dataclasses import replace

    config = replace(config.with_train(steps=steps, eval_every=max(500, steps // 4), amp_cpu=amp_cpu), network=network,
                     name=f"figure4a-{kind}-L{layers}")
    folder = out / run_name(kind, layers)
    train(folder, config, resume=folder.exists(), minutes=minutes, progress=False)
    return folder


def measure(folder: Path, models: Path, count: int) -> dict:
    from hiercodec import api
    from hiercodec.export.run import export_run
    from hiercodec.train.datasets import open_dataset

    os.environ["HIERCODEC_MODELS"] = str(models)
    name = f"figure4a-{folder.name.lower()}"
    export_run(folder, name, force=True)
    digits = np.stack(open_dataset("binarized-mnist-test").images)
    digits = digits[:: max(1, len(digits) // count)][:count]
    data, report = api.encode_set_with_report(digits, name)
    (level,) = report.levels
    n, nats = len(digits), math.log(2)
    return {"file_nats_per_digit": 8 * len(data) * nats / n, "neg_elbo_nats": level.bound_bits * nats / n,
            "kl_nats": level.kl_bits * nats / n, "reconstruction_nats": level.reconstruction_bits * nats / n,
            "initial_bits": level.initial_bits, "digits": n}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="folder of the runs (resumed)")
    p.add_argument("--layers", type=int, nargs="+", default=[0, 1, 2, 4])
    p.add_argument("--points", nargs="+", metavar="KIND:LAYERS",
                   help="only these points (pixelvae:2 pixelcnn:4 ...), in this order, instead of --layers")
    p.add_argument("--kl-warmup", type=int, help="steps of KL warm-up (default: the recipe's)")
    p.add_argument("--amp-cpu", action="store_true", help="train in bfloat16 autocast on the CPU (faster here)")
    p.add_argument("--steps", type=int, default=5000)
    p.add_argument("--minutes", type=float, default=None, help="stop each run's training after this many minutes")
    p.add_argument("--count", type=int, default=500, help="held-out digits coded per point")
    p.add_argument("--report", type=Path, help="write the table (JSON) here")
    args = p.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    points = ([(kind, int(layers)) for kind, layers in (point.split(":") for point in args.points)] if args.points
              else [(kind, layers) for layers in args.layers for kind in ("pixelvae", "pixelcnn")])
    rows = {}
    for kind, layers in points:
        if kind not in ("pixelvae", "pixelcnn"):
            p.error(f"a point's kind is pixelvae or pixelcnn, not {kind!r}")
        folder = train_point(args.out, kind, layers, args.steps, args.minutes, args.kl_warmup, args.amp_cpu)
        rows[run_name(kind, layers)] = {"kind": kind, "layers": layers,
                                       **measure(folder, args.out / "models", args.count)}
        print(json.dumps(rows[run_name(kind, layers)]), flush=True)
    if args.report:
        args.report.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
