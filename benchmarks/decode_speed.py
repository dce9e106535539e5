"""Encode and decode seconds of a 512x512 photo for gated PixelCNNs of several sizes: which is
the largest network whose file decodes within a time budget on this CPU (docs/RESULTS.md; issue
15: 5 s with the compiled engine).

Decode time does not depend on the values of the weights, only on the network's shape, so each
size is exported from its random initialisation (calibrated on crops of the image itself).

    python benchmarks/decode_speed.py --size 4x64 --size 6x64 --size 8x64 --size 6x96
"""

from __future__ import annotations

import hiercodec  # noqa: F401  (first: the OpenMP wait policy must be set before torch loads)

import json

import click
import numpy as np
import torch

from hiercodec import engine
from hiercodec.bench.lossless import timed_round_trip
from hiercodec.codec import encode_image
from hiercodec.export.hierarchy import export_hierarchy
from hiercodec.families.pixelcnn import PixelCNNFamily
from hiercodec.families.pixelcnn_config import PixelCNNConfig
from hiercodec.bench.heldout import heldout_images
from hiercodec.zoo import Model


def exported(config: PixelCNNConfig, image: np.ndarray) -> Model:
    torch.manual_seed(0)
    crops = np.stack([image[y : y + 64, x : x + 64] for y in (0, 200, 400) for x in (0, 200, 400)])
    tensors, exact = export_hierarchy(config.build().state_dict(), config, crops)
    family = PixelCNNFamily(exact, {k: torch.from_numpy(v) for k, v in tensors.items()})
    return Model(f"speed-{config.layers}x{config.channels}", b"\0" * 32, exact, family)


@click.command()
@click.option("--size", "sizes", multiple=True, default=("6x64",), help="LAYERSxCHANNELS (repeatable).")
@click.option("--mixtures", default=5, show_default=True)
@click.option("--image", default="astronaut", show_default=True, help="Held-out photo.")
@click.option("--threads", "-j", type=int, default=None, help="Threads [default: every core].")
def main(sizes: tuple[str, ...], mixtures: int, image: str, threads: int | None) -> None:
    torch.set_num_threads(1)  # as the CLI: the step loop is single-threaded, big products use more
    engine.set_threads(threads)
    pixels = heldout_images([image])[image]
    for size in sizes:
        layers, channels = map(int, size.split("x"))
        model = exported(PixelCNNConfig(channels=channels, layers=layers, head=2 * channels, mixtures=mixtures),
                         pixels)
        encode_image(model, pixels[:16, :16])  # warm-up: loads (or compiles) the engine's kernels
        _, _, enc, dec = timed_round_trip(model, pixels, image)
        click.echo(json.dumps({"size": size, "mixtures": mixtures, "image": image, "shape": list(pixels.shape),
                               "encode_s": round(enc, 2), "decode_s": round(dec, 2),
                               "threads": engine.thread_count(), "engine": engine.status()}))


if __name__ == "__main__":
    main()
