"""How long a forged geometry keeps the decoder busy: a 1x1 image's file whose header claims
side x side (with the tiles the model would use, every CRC recomputed) decoded with the pixel
limit lifted, so that only the detection of a stream that has run out can stop it (issue 12).
The model is loaded before the clock starts.

    python benchmarks/forged_geometry.py --side 2048 --side 16384
"""

from __future__ import annotations

import hiercodec  # noqa: F401  (first: the OpenMP wait policy must be set before torch loads)

import time

import click
import numpy as np

from hiercodec.codec import decode_image, encode_image
from hiercodec.errors import HiercodecError
from hiercodec.zoo import load

from fuzz import MODELS, forged_geometries


@click.command()
@click.option("--model", "models", multiple=True, default=MODELS, show_default=True)
@click.option("--side", "sides", multiple=True, type=int, default=(2048, 16384), show_default=True)
def main(models: tuple[str, ...], sides: tuple[int, ...]) -> None:
    import torch

    torch.set_num_threads(1)
    print("| model | claimed | outcome | seconds |\n|---|---|---|---|")
    for name in models:
        model = load(name)
        data, _ = encode_image(model, np.full((1, 1, 3), 100, np.uint8))
        for what, forged in forged_geometries(data, sides, family=model.family):
            start = time.perf_counter()
            try:
                decode_image(forged, max_pixels=None)
                outcome = "DECODED"
            except HiercodecError as err:
                outcome = str(err).splitlines()[0][:70]
            print(f"| {model.id} | {what.split(' claims ')[1].split(',')[0]} | {outcome} | "
                  f"{time.perf_counter() - start:.2f} |", flush=True)


if __name__ == "__main__":
    main()
