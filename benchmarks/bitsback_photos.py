#!/usr/bin/env python
"""Bits/dim and seconds of bits-back photo models (issue 14: `pixelvae-photos`, `agave`) next to
the default model and the peers, on one seeded crop of each held-out photo: a bits-back file
decodes its tiles one after another (each tile's latents come from the bits of the next), so
whole held-out photos take minutes per model; crops keep the comparison to minutes.

    python benchmarks/bitsback_photos.py -m default -m pixelvae-photos -m agave --side 112 \\
        --out docs/results/bitsback-photos.json
    python benchmarks/bitsback_photos.py --whole astronaut -m agave    # one whole photo's seconds

Every file is decoded and checked against its image (hiercodec.bench.lossless.run_bench).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from hiercodec.bench.heldout import heldout_images
from hiercodec.bench.lossless import markdown, run_bench, to_json
from hiercodec.exact.quant import threads
from hiercodec.zoo import load


def crops(side: int, seed: int = 1234) -> dict[str, np.ndarray]:
    """One side x side crop of each held-out photo, at a seeded position."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, image in heldout_images().items():
        y = int(rng.integers(0, image.shape[0] - side + 1))
        x = int(rng.integers(0, image.shape[1] - side + 1))
        out[f"{name}@{y},{x}"] = np.ascontiguousarray(image[y : y + side, x : x + side, :3])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-m", "--model", action="append", required=True, help="a model id or alias (repeatable)")
    ap.add_argument("--side", type=int, default=112, help="crop side (default 112: 4 x 28, 3.5 x 32)")
    ap.add_argument("--whole", help="code this one whole held-out photo instead of the crops")
    ap.add_argument("--peers", default="png,jpegxl,webp", help="peer codecs, comma-separated ('none': none)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--out", type=Path, help="write the result as JSON here")
    args = ap.parse_args()
    images = {args.whole: heldout_images()[args.whole][..., :3]} if args.whole else crops(args.side)
    peers = [] if args.peers == "none" else args.peers.split(",")
    with threads(args.threads):
        result = run_bench(images, [load(m) for m in args.model], peers,
                           on_step=lambda image, codec: print(f"  {image}: {codec} done", flush=True))
    print(markdown(result))
    if args.out:
        args.out.write_text(to_json(result))


if __name__ == "__main__":
    main()
