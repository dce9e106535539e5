"""The families that can be trained, each as a task object the loop and export drive:
`build()` (float network), `bits(model, crops)` (bits per image), `export(weights, calibration)`,
`float_bits(weights, images)` and `describe(steps)`. The registry (hiercodec.families.registry)
names each family's task; a family without one cannot be trained."""

from __future__ import annotations

from hiercodec.families.registry import registration, trainable
from hiercodec.train.config import RunConfig

TRAINABLE = trainable()


def task_for(config: RunConfig):
    """The training task of the config's family (a HiercodecError for an unknown family)."""
    return registration(config.family).load_task()(config)
