"""The families that can be trained, each as a task object the loop and export drive:
`build()` (float network), `bits(model, crops)` (bits per image), `export(weights, calibration)`,
`float_bits(weights, images)` and `describe(steps)`. Each family issue adds its own."""

from __future__ import annotations

from hiercodec.errors import HiercodecError
from hiercodec.train.config import RunConfig

TRAINABLE = ("pixelcnn",)


def task_for(config: RunConfig):
    if config.family == "pixelcnn":
        from hiercodec.train.pixelcnn import PixelCNNTask

        return PixelCNNTask(config)
    raise HiercodecError(f"family {config.family!r} cannot be trained yet; trainable: {', '.join(TRAINABLE)}")
