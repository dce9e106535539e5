"""The figure of a HAM model's lossy files (De Fauw et al. 2019, Figures 6 and 7, as a codec): per
held-out crop, the original, the feed-forward decoder's mean reconstruction, and the image sampled
from the codes at two temperatures. Every panel is what `hiercodec decompress` gives for one lossy
file (the codes, K levels): `--reconstruct mean`, then sampling with the seed and temperatures
named. Prints bits per pixel and PSNR per panel as JSON lines.

    python benchmarks/ham_samples.py --model ham-r1 --out docs/results/ham-samples.png
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

CROPS = (("astronaut", 40, 170), ("chelsea", 60, 150), ("coffee", 100, 250))  # name, top, left


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="ham")
    ap.add_argument("--size", type=int, default=128, help="crop side")
    ap.add_argument("--temperatures", default="0.99,0.9")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path("docs/results/ham-samples.png"))
    args = ap.parse_args()
    torch.set_num_threads(1)

    from hiercodec import api
    from hiercodec.bench.heldout import heldout_images
    from hiercodec.bench.quality import psnr
    from hiercodec.zoo import load

    model = load(args.model)
    levels = api.lossy_levels(model)
    photos = heldout_images()
    temps = [float(t) for t in args.temperatures.split(",")]
    rows = []
    for name, top, left in CROPS:
        crop = np.ascontiguousarray(photos[name][top : top + args.size, left : left + args.size, :3])
        panels = [("original", crop, None)]
        data = api.encode(crop, model.id, levels=levels, sample=False)
        t = time.perf_counter()
        mean = api.decode(data, sample=False)
        panels.append(("mean", mean, time.perf_counter() - t))
        for temp in temps:
            t = time.perf_counter()
            drawn = api.decode(data, seed=args.seed, temperature=temp)
            panels.append((f"sample T={temp:g}", drawn, time.perf_counter() - t))
        bpp = 8 * len(data) / (crop.shape[0] * crop.shape[1])
        for label, image, seconds in panels[1:]:
            print(json.dumps({"crop": name, "panel": label, "bpp": round(bpp, 4), "psnr": round(psnr(crop, image), 2),
                              "decode_s": round(seconds, 2)}), flush=True)
        rows.append((name, bpp, panels))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(rows), len(rows[0][2]), figsize=(2.6 * len(rows[0][2]), 2.8 * len(rows)))
    for r, (name, bpp, panels) in enumerate(rows):
        for c, (label, image, _) in enumerate(panels):
            ax = axes[r][c]
            ax.imshow(image)
            ax.set_xticks([])
            ax.set_yticks([])
            title = label if c else f"{name}\n{bpp:.2f} bpp of codes"
            if c:
                title += f"\n{psnr(panels[0][1], image):.1f} dB"
            ax.set_title(title, fontsize="small")
    fig.suptitle(f"{model.id}: one lossy file per row, decoded by the mean and by sampling (seed {args.seed})")
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=100)


if __name__ == "__main__":
    main()
