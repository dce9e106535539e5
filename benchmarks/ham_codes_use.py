"""What does a ham run's pixel level take from its codes? Bits/dim of the pixels of held-out crops
(float model, averaged weights) given their own codes, given another crop's codes (structure and
colour wrong), and given the codes of the same crop with red and blue swapped (structure right,
colour wrong). If the last is as cheap as the first, the pixel level reads no colour from the codes
and a sample takes its colours from its own first draws (docs/RESULTS.md, section 10).

    python benchmarks/ham_codes_use.py --run runs/ham-codec
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from hiercodec.train.checkpoint import load_weights
from hiercodec.train.config import RunConfig
from hiercodec.train.ham import HAMTask
from hiercodec.train.hierarchy import level_bits
from hiercodec.train.loop import eval_crops


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", type=Path, required=True, help="a ham training run (folder or checkpoint)")
    ap.add_argument("--crops", type=int, default=2, help="64x64 crops per held-out photo")
    args = ap.parse_args()
    torch.set_num_threads(1)
    meta, state = load_weights(args.run, "ema")
    task = HAMTask(RunConfig.from_dict(meta["config"]))
    model = task.build()
    model.load_state_dict(state)
    model.eval()
    crops = eval_crops("heldout", args.crops, 64)
    with torch.no_grad():
        own = task.hierarchy.values(crops, model)
        swapped_rb = task.hierarchy.values(np.ascontiguousarray(crops[..., ::-1]), model)["codes1"]
        cases = {"own codes": own["codes1"], "another crop's codes": np.roll(np.asarray(own["codes1"]), 1, axis=0),
                 "own codes of the R<->B image": swapped_rb}
        bpd = {name: float(level_bits(task.hierarchy, model, dict(own, codes1=codes), "cpu",
                                      only=("pixels",))["pixels"].sum()) / crops.size
               for name, codes in cases.items()}
    print(json.dumps({"step": meta["step"], "crops": list(crops.shape), "pixel_bpd": bpd}))


if __name__ == "__main__":
    main()
