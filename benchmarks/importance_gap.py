#!/usr/bin/env python
"""The gap between a latent-variable model's negative ELBO (what a bits-back file pays) and an
importance-sampled estimate of its NLL (Burda et al. 2015, k draws from q per image): what
importance-weighted bits-back coding (Ruan et al. 2021) could still gain. Float model of a
training run, on its held-out evaluation crops (the run's `eval_data`, one tile-sized crop per
image and `--crops` of them per image).

    python benchmarks/importance_gap.py runs/agave-photos/best --k 64 --out docs/results/gap-agave.json
    python benchmarks/importance_gap.py runs/pixelvae-photos/best --k 64
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import torch

from hiercodec.export.hierarchy import float_model
from hiercodec.train.checkpoint import load_weights
from hiercodec.train.config import RunConfig
from hiercodec.train.loop import eval_crops
from hiercodec.train.tasks import task_for


def gap(task, model, images: np.ndarray, k: int, seed: int = 0) -> dict:
    """Negative ELBO and importance-sampled NLL, in bits/dim, pooled over the images."""
    gen = torch.Generator().manual_seed(seed)
    elbo = iw = 0.0
    with torch.no_grad():
        for image in images:
            log_w = task.log_weights(model, torch.from_numpy(image[None]), k, gen)
            elbo += -float(log_w.mean())
            iw += -float(torch.logsumexp(log_w, 0) - math.log(k))
    dims = images.size * math.log(2)
    return {"images": len(images), "k": k, "elbo_bpd": elbo / dims, "is_nll_bpd": iw / dims,
            "gap_bpd": (elbo - iw) / dims, "gap_percent": 100 * (elbo - iw) / elbo}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path, help="a training run folder (or its best/)")
    ap.add_argument("--k", type=int, default=64, help="draws of the latents per image (default 64)")
    ap.add_argument("--crops", type=int, default=4, help="crops per held-out image (default 4)")
    ap.add_argument("--out", type=Path, help="write the result as JSON here")
    args = ap.parse_args()
    meta, weights = load_weights(args.run, "ema")
    config = RunConfig.from_dict(meta["config"])
    task = task_for(config)
    model = float_model(task.net, weights).eval()
    images = eval_crops(config.train.eval_data, args.crops, task.net.tile)
    result = {"run": str(args.run), "step": meta["step"], "data": config.train.eval_data,
              "side": task.net.tile, **gap(task, model, images, args.k)}
    print(json.dumps(result, indent=1))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
