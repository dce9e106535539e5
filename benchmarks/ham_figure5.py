"""De Fauw et al. 2019, sec. 7.1 and Figure 5, at CPU scale: how predictable are the codes an
encoder learns, as its auxiliary decoder gets deeper (feed-forward and MSP) and as the MSP mask
grows? Measured as the paper measures it: train the autoencoder, then a small PixelCNN prior on its
codes, and report the prior's negative log-likelihood on the codes of held-out images (here in
bits per code, real file bits: the exact prior's tables coded with ANS, `hiercodec.codec`-style,
next to the float NLL).

The paper's setup (sec. 7.1): 64x64 colour images, one 8-bit code channel at 32x32 (a strided
convolution down, a subpixel convolution up), priors of 20 layers x 128 units. Here: the training
photos' `--patch` crops (32 by default: 256 codes at 16x16), held-out 64x64 crops (codes at 32x32), encoders and decoders of `--hidden` units, priors of 4
layers x 32 units, `--steps` autoencoder steps and `--prior-steps` prior steps on one core.

    python benchmarks/ham_figure5.py --out docs/results/ham-figure5.json --plot docs/results/ham-figure5.png

Each variant's result is written to --out as soon as it is measured, and a rerun skips the variants
already there (a run spread over sessions).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from hiercodec.families.ham_config import HAMConfig
from hiercodec.train.config import RunConfig, load_config
from hiercodec.train.datasets import open_dataset
from hiercodec.train.ham import HAMTask
from hiercodec.train.hierarchy import level_bits
from hiercodec.train.loop import eval_crops

# (name, auxiliary decoder layers, MSP mask: 0 = feed-forward); Figure 5 left: depth for FF and MSP
# 5x5; right: MSP with 2 layers and growing masks
VARIANTS = ([(f"ff-{n}", n, 0) for n in (1, 2, 4, 8)] + [(f"msp5-{n}", n, 5) for n in (1, 2, 4, 8)]
            + [(f"msp{m}-2", 2, m) for m in (1, 3, 7)])


def network(aux_layers: int, mask: int, hidden: int) -> HAMConfig:
    return HAMConfig(levels=1, tile=64, halo=2, hidden=hidden, residual=hidden // 2, enc_layers=2,
                     aux_layers=aux_layers, codes=256, code_dim=8, mask=mask, teacher_layers=4, layers=1,
                     channels=8, head=16, mixtures=3, mod_blocks=1, mod_channels=8, mod_embed=8,
                     prior_layers=4, prior_channels=32, prior_head=64, prior_embed=8, attention_every=0,
                     heads=1, key_channels=8, autoencoder_steps=1)


def task_for(net: HAMConfig) -> HAMTask:
    base = load_config("ham-small")
    return HAMTask(RunConfig("figure5", "ham", "", net.to_dict(), base.train))


def measure(name: str, aux_layers: int, mask: int, args, train, heldout) -> dict:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    net = network(aux_layers, mask, args.hidden)
    task = task_for(net)
    model = task.build()
    auto = [p for k in ("enc1", "aux1", "teacher1") if k in model for p in model[k].parameters()]
    opt = torch.optim.Adam(auto, lr=1e-3)
    start = time.time()
    log = {}
    model.train()
    for step, x in zip(range(args.steps), train.batches(args.patch, args.batch, rng)):
        loss, log = task._autoencoders(model, torch.from_numpy(x))
        opt.zero_grad()
        loss.backward()
        opt.step()
    model["enc1"].eval()
    prior = [p for k in ("prior_in", "prior") for p in model[k].parameters()]
    opt = torch.optim.Adam(prior, lr=1e-3)
    for step, x in zip(range(args.prior_steps), train.batches(args.patch, args.batch, rng)):
        values = task.hierarchy.values(x, model)
        bits = level_bits(task.hierarchy, model, values, "cpu", ("codes1",))["codes1"]
        opt.zero_grad()
        (bits.sum() / bits.numel()).backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        values = task.hierarchy.values(heldout, model)
        bits = float(level_bits(task.hierarchy, model, values, "cpu", ("codes1",))["codes1"].sum())
    codes = values["codes1"].numel()
    return {"name": name, "aux_layers": aux_layers, "mask": mask, "bits_per_code": bits / codes,
            "codes_used": int(values["codes1"].unique().numel()), "steps": args.steps,
            "prior_steps": args.prior_steps, "seconds": round(time.time() - start, 1),
            "last_log": {k: v for k, v in log.items() if isinstance(v, (int, float)) and math.isfinite(v)}}


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for mask, style, label in ((0, "o-", "feed-forward"), (5, "s-", "MSP 5x5")):
        pts = sorted((r["aux_layers"], r["bits_per_code"]) for r in results if r["mask"] == mask)
        if pts:
            left.plot(*zip(*pts), style, label=label)
    left.set_xscale("log", base=2)
    left.set_xlabel("auxiliary decoder layers")
    left.set_ylabel("prior NLL on held-out codes (bits per code)")
    left.legend()
    pts = sorted((r["mask"], r["bits_per_code"]) for r in results if r["mask"] and r["aux_layers"] == 2)
    if pts:
        right.plot(*zip(*pts), "^-", color="C1", label="MSP, 2 layers")
    right.set_xlabel("MSP mask side (2s + 1)")
    right.legend()
    fig.suptitle("Predictability of codes (De Fauw et al. 2019, Fig. 5) at CPU scale")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=1500, help="autoencoder steps per variant")
    ap.add_argument("--prior-steps", type=int, default=1500, help="prior steps per variant")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--patch", type=int, default=32, help="training crop side (the paper: 64; MSP's one-hot "
                    "input makes 64 slow on a CPU)")
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--heldout", type=int, default=4, help="64x64 crops per held-out photo measured")
    ap.add_argument("--only", default=None, help="comma-separated variant names")
    ap.add_argument("--out", type=Path, default=Path("docs/results/ham-figure5.json"))
    ap.add_argument("--plot", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    train = open_dataset("photos")
    heldout = eval_crops("heldout", args.heldout, 64)  # fixed crops of the held-out photos
    results = json.loads(args.out.read_text())["results"] if args.out.exists() else []
    done = {r["name"] for r in results}
    wanted = set(args.only.split(",")) if args.only else None
    for name, layers, mask in VARIANTS:
        if name in done or (wanted and name not in wanted):
            continue
        r = measure(name, layers, mask, args, train, heldout)
        print(json.dumps(r), flush=True)
        results.append(r)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"setup": {k: v for k, v in vars(args).items() if k not in ("out", "plot", "only")},
                                        "results": results}, indent=1) + "\n")
    if args.plot:
        plot(results, args.plot)


if __name__ == "__main__":
    main()
