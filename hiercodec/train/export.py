"""Export a training run's EMA weights to an exact model in the zoo or the user's model folder.

    python -m hiercodec.train.export runs/default --name pixelcnn-s1 --zoo

Calibrates on patches of the training photos, then reports the bits/dim of the float model and of
the exact model on held-out patches: the cost of quantization.
"""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np
import torch

from hiercodec.coding.tables import bits
from hiercodec.exact.export import export_pixelcnn, float_bits
from hiercodec.families.base import Geometry
from hiercodec.families.pixelcnn import PixelCNNFamily
from hiercodec.families.pixelcnn_config import PixelCNNConfig
from hiercodec.train.checkpoint import load_weights
from hiercodec.train.data import load_images, prepare, random_patches
from hiercodec.zoo import ZOO_DIR, save_model, user_model_dir


def exact_bits(family: PixelCNNFamily, images: np.ndarray) -> float:
    """Bits of uint8 images (N, H, W, 3) under the exact model (the file's bound)."""
    total = 0.0
    for image in images:
        g = Geometry(*image.shape)
        level = family.levels(g, family.layout(g))[0]
        total += sum(bits(s, f) for s, f in level.encode_groups(level.analyze(image, {}), {}))
    return total


def centre_crop(image: np.ndarray, size: int) -> np.ndarray:
    y, x = (image.shape[0] - size) // 2, (image.shape[1] - size) // 2
    return image[y : y + size, x : x + size]


def quantization_report(ema: dict, config: PixelCNNConfig, family: PixelCNNFamily, patches: np.ndarray) -> dict:
    x = torch.from_numpy(patches).permute(0, 3, 1, 2).contiguous()
    fb, eb = float_bits(ema, config, x), exact_bits(family, patches)
    return {"float_bpd": fb / patches.size, "exact_bpd": eb / patches.size, "loss_percent": 100 * (eb / fb - 1)}


@click.command()
@click.argument("run", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--name", required=True, help="Model id to write (a-z 0-9 . _ -).")
@click.option("--zoo", is_flag=True, help="Write into the shipped zoo instead of the user model folder.")
@click.option("--description", default="", help="One line shown by `hiercodec models`.")
@click.option("--calibration", default=32, help="Calibration patches (64x64) from the training photos.")
@click.option("--eval-patches", default=8, help="Patches to measure quantization loss on.")
@click.option("--eval-heldout", is_flag=True,
              help="Measure it on 64x64 centre crops of the held-out photos instead of training patches.")
@click.option("--weights", type=click.Choice(["ema", "model"]), default="ema",
              help="Export the Polyak/EMA average (default) or the latest weights.")
def main(run: Path, name: str, zoo: bool, description: str, calibration: int, eval_patches: int,
         weights: str, eval_heldout: bool) -> None:
    """Export the weights of training run RUN to exact form."""
    meta, ema = load_weights(run, weights)
    config = PixelCNNConfig(**meta["config"])
    images = load_images(prepare())
    calib = next(random_patches(images, 64, calibration, np.random.default_rng(1234)))
    tensors, exact_config = export_pixelcnn(ema, config, torch.from_numpy(calib).permute(0, 3, 1, 2).contiguous())
    family = PixelCNNFamily(exact_config, {k: torch.from_numpy(v) for k, v in tensors.items()})
    if eval_heldout:
        from hiercodec.heldout import HELDOUT_NAMES, heldout_images

        evaluation = np.stack([centre_crop(im, 64) for im in heldout_images(HELDOUT_NAMES).values()])
    else:
        evaluation = next(random_patches(images, 64, eval_patches, np.random.default_rng(99)))
    report = quantization_report(ema, config, family, evaluation)
    report["evaluated_on"] = "held-out centre crops" if eval_heldout else "training patches"
    exact_config["training"] = {"steps": meta["step"], "weights": weights, "quantization": report}
    folder = save_model(ZOO_DIR if zoo else user_model_dir(), name, tensors, exact_config,
                        description or f"gated PixelCNN, {config.layers} layers x {config.channels}, "
                                       f"{config.mixtures} logistics, {meta['step']} steps")
    click.echo(json.dumps({"model": str(folder), **report}))


if __name__ == "__main__":
    main()
