"""Export a training checkpoint to an exact model in the user's model folder or the zoo.

    hiercodec export runs/default --name pixelcnn-s2 --zoo

Calibrates the activation ranges on crops of the run's training data, then reports the bits/dim
of the float model and of the exact model on evaluation crops: the cost of quantization.
"""

from __future__ import annotations

from dataclasses import fields, replace
from pathlib import Path

import numpy as np

from hiercodec.coding.tables import bits
from hiercodec.errors import HiercodecError
from hiercodec.coding.ans import StackCoder
from hiercodec.coding.bitsback import seed_bytes
from hiercodec.coding.groups import push_in_order
from hiercodec.coding.tables import TOTAL
from hiercodec.families.base import LevelStats, ScheduledLevel
from hiercodec.families.registry import registration
from hiercodec.geometry import Geometry
from hiercodec.train.checkpoint import load_weights
from hiercodec.train.config import RunConfig
from hiercodec.train.datasets import ImageSet, open_dataset
from hiercodec.train.loop import eval_crops
from hiercodec.train.tasks import task_for
from hiercodec.zoo import ZOO_DIR, list_models, save_model, user_model_dir


RESERVE = 4096  # bytes on the stream under a bits-back level's image in `exact_bits`


def exact_bits(family, images: np.ndarray) -> tuple[float, float]:
    """Bits of uint8 images (N, H, W, C) under the exact model, every level: (the paper's bound,
    with tables unrestricted, comparable with the float model's loss; the file's bound, with
    consistency-constrained tables where the family has them). A bits-back level counts its
    one-sample negative ELBO, not its initial bits."""
    paper = bound = 0.0
    for image in images:
        g = Geometry(*image.shape)
        above: dict[str, np.ndarray] = {}
        for level in family.levels(g):
            values = level.analyze(image, above)
            stats = LevelStats(level.name)
            if isinstance(level, ScheduledLevel):
                level_bits = sum(bits(s, f) for s, f in level.encode_groups(values, above, stats))
            else:  # a bits-back level: its one-sample negative ELBO, on a coder that already holds
                # enough bits to draw the latents from (as in a chain: no seed, no direct tile)
                coder = StackCoder()
                push_in_order(coder, [(seed_bytes(RESERVE), np.full((RESERVE, 256), TOTAL // 256, np.int64))])
                terms = level.encode(values, above, coder).extra
                level_bits = terms["likelihood_bits"] + terms["prior_bits"] - terms["posterior_bits"]
            bound += level_bits
            paper += level_bits + stats.saved_bits
            above[level.name] = values
    return paper, bound


def _check_new_id(name: str, folder: Path, force: bool) -> None:
    # a model id names one set of weights forever: files record it, so it is never reused
    taken = [m for m in list_models() if m.id == name]
    if taken and not (force and all(m.path.parent == folder for m in taken)):
        where = taken[0].path
        raise HiercodecError(f"a model called {name!r} is already installed ({where}); choose another --name"
                             + ("" if taken[0].shipped else " or pass --force to replace your own"))


def export_run(run: Path, name: str, *, zoo: bool = False, weights: str = "ema", description: str = "",
               calibration: int = 32, eval_on: str = "train", eval_count: int = 8, force: bool = False,
               tile: int | None = None, band: bool | None = None, images: ImageSet | None = None) -> dict:
    """Export the `weights` ("ema" or "model") of checkpoint `run` (a run folder or its file) as
    model `name`; returns where it went and the quantization report. `tile` replaces the config's
    tile side, `band` a bits-back family's samples (rows of tiles or tiles): coding choices, not
    part of the trained network; `images` replace the run's training data for calibration (a
    machine that cannot fetch it)."""
    folder = ZOO_DIR if zoo else user_model_dir()
    _check_new_id(name, folder, force)
    meta, state = load_weights(run, weights)
    config = RunConfig.from_dict(meta["config"])
    if band is not None and "band" not in {f.name for f in fields(registration(config.family).network)}:
        raise HiercodecError(f"--band is for bits-back families (pixelvae, agave); {run} is a {config.family} run")
    coding = {key: int(value) for key, value in (("tile", tile), ("band", band)) if value is not None}
    if coding:
        config = replace(config, network={**config.network, **coding})
    task = task_for(config)
    if task.exports_live:  # a family that picks some networks from the live weights
        state = task.export_weights(state, load_weights(run, "model")[1])
    data = images if images is not None else open_dataset(config.train.data)
    patch = config.train.patch or None
    calib = next(data.batches(patch, calibration, np.random.default_rng(1234), flip=False))
    tensors, exact_config, family = task.export(state, calib)
    if eval_on == "train":
        evaluation = next(data.batches(patch, eval_count, np.random.default_rng(99), flip=False))
    else:
        evaluation = eval_crops(eval_on, 1, config.train.eval_patch)  # a side the network takes
    fb, (eb, cb) = task.float_bits(state, evaluation), exact_bits(family, evaluation)
    report = {"float_bpd": fb / evaluation.size, "exact_bpd": eb / evaluation.size,
              "loss_percent": 100 * (eb / fb - 1), "evaluated_on": eval_on}
    if cb != eb:  # consistency-constrained coding: what the file costs
        report["constrained_bpd"] = cb / evaluation.size
    exact_config["training"] = {"steps": meta["step"], "weights": weights, "config": config.name,
                                "quantization": report}
    target = save_model(folder, name, tensors, exact_config, description or task.describe(meta["step"]))
    return {"model": name, "path": str(target), **report}
