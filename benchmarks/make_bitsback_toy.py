#!/usr/bin/env python
"""Make the shipped toy bits-back model hiercodec/zoo/bitsback-toy-1 (family `bitsback-toy`,
hiercodec/families/toy.py): the integer tables of tests/test_bitsback.py's model, seed 0, written
as a zoo model folder (weights.safetensors + config.json). Nothing is trained; the script remakes
the same bytes every time (tests/test_latent.py checks the shipped tables against it).

    python benchmarks/make_bitsback_toy.py              # writes hiercodec/zoo/bitsback-toy-1
    python benchmarks/make_bitsback_toy.py --out DIR    # somewhere else
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

MODEL_ID = "bitsback-toy-1"
SEED = 0
DESCRIPTION = ("toy bits-back model of tests/test_bitsback.py: 8 latents, samples of 6 high nibbles, "
               "low nibbles on the same stream")


def config() -> dict:
    from hiercodec.families.toy import ToyConfig

    return {"family": "bitsback-toy", "network": ToyConfig().to_dict(), "exact": {"seed": SEED}}


def main(argv: list[str] | None = None) -> int:
    from hiercodec.families.toy import toy_tensors
    from hiercodec.zoo import ZOO_DIR, save_model

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ZOO_DIR, help="folder of model folders (default: the zoo)")
    args = parser.parse_args(argv)
    target = save_model(args.out, MODEL_ID, toy_tensors(seed=SEED), config(), DESCRIPTION)
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
