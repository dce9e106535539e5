"""The families that can be trained, each as a task object the loop and export drive:
`build()` (float network), `bits(model, crops)` (bits per image), `export(weights, calibration)`,
`float_bits(weights, images)` and `describe(steps)`. Each family issue adds its own."""

from __future__ import annotations

from hiercodec.errors import HiercodecError
from hiercodec.train.config import RunConfig

TRAINABLE = ("pixelcnn", "grayscale", "pyramid", "vqvae2")


def task_for(config: RunConfig):
    if config.family == "pixelcnn":
        from hiercodec.train.pixelcnn import PixelCNNTask

        return PixelCNNTask(config)
    if config.family == "grayscale":
        from hiercodec.train.auxiliary import GrayscaleTask

        return GrayscaleTask(config)
    if config.family == "pyramid":
        from hiercodec.train.auxiliary import PyramidTask

        return PyramidTask(config)
    if config.family == "vqvae2":
        from hiercodec.train.vqvae2 import VQVAE2Task

        return VQVAE2Task(config)
    raise HiercodecError(f"family {config.family!r} cannot be trained yet; trainable: {', '.join(TRAINABLE)}")
