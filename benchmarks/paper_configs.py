"""Check the paper-scale training configs on a CPU without training them: parameters, the seconds
of one training step on a batch of 2 crops (one thread), and the largest accumulator of the exact
model their random initialisation exports to (it must stay far below 2^53). docs/RESULTS.md.

    python benchmarks/paper_configs.py                       # pixelcnn, grayscale, pyramid
    python benchmarks/paper_configs.py --config grayscale
"""

from __future__ import annotations

import hiercodec  # noqa: F401  (first: the OpenMP wait policy must be set before torch loads)

import json
import time

import click
import numpy as np
import torch

from hiercodec.train.config import load_config
from hiercodec.train.tasks import TRAINABLE, task_for


@click.command()
@click.option("--config", "names", multiple=True, default=TRAINABLE, show_default=True, help="Config name (repeatable).")
def main(names: tuple[str, ...]) -> None:
    torch.set_num_threads(1)
    for name in names:
        config = load_config(name)
        task = task_for(config)
        torch.manual_seed(0)
        model = task.build()
        p = config.train.patch
        crops = np.random.default_rng(0).integers(0, 256, (2, p, p, 3), dtype=np.uint8)
        start = time.perf_counter()
        task.bits(model, torch.from_numpy(crops)).mean().backward()
        step = time.perf_counter() - start
        _, exact, _ = task.export(model.state_dict(), crops)
        click.echo(json.dumps({"config": name, "parameters_m": round(sum(q.numel() for q in model.parameters()) / 1e6, 1),
                               "step_s_batch2": round(step, 1),
                               "max_accumulator_log2": max(exact["exact"]["accumulator_log2_bound"].values())}))


if __name__ == "__main__":
    main()
