"""Training checkpoints: a resumed run reaches the same step and weights as an uninterrupted one."""

import numpy as np
import torch

from hiercodec.families.pixelcnn_config import PixelCNNConfig
from hiercodec.train.checkpoint import load_weights
from hiercodec.train.pixelcnn import train


def test_resumed_run_equals_uninterrupted_run(tmp_path):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (40, 40, 3), dtype=np.uint8) for _ in range(3)]
    config = PixelCNNConfig(channels=8, layers=1, head=16)
    kw = dict(minutes=5, batch=2, patch=16, lr=1e-3, lr_decay=0.999, ema_decay=0.9, seed=0, images=images)
    train(tmp_path / "a", config, steps=6, **kw)
    train(tmp_path / "b", config, steps=3, **kw)
    train(tmp_path / "b", config, steps=6, **kw)  # resumes from the checkpoint of step 3
    for which in ("model", "ema"):
        meta_a, a = load_weights(tmp_path / "a", which)
        meta_b, b = load_weights(tmp_path / "b", which)
        assert meta_a["step"] == meta_b["step"] == 6
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
