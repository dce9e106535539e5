"""Shared fixtures: a tiny real exact model (fast) and the shipped `default` model.

`tiny_model` is a genuine exact model, made the way every shipped model is made: a float
GatedPixelCNN (untrained, fixed seed) exported by hiercodec.exact.export.export_pixelcnn on
calibration patches, written to a safetensors file, read back and wrapped as a zoo Model whose
hash is the SHA-256 of that file. It is small (16 channels, 2 layers, 8x8 tiles), so images of
any shape encode and decode in milliseconds.

A CPU training job may share this machine: torch runs single-threaded by default (OpenMP
oversubscription makes torch far slower); the one test that compares thread counts sets them
itself and restores them.
"""

from __future__ import annotations

import hashlib
import os

# Before torch starts OpenMP: idle OpenMP threads sleep instead of spinning. Results do not depend
# on it; without it, the thread-count test (2 threads on 2 cores shared with other jobs) runs
# 50-100x slower.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file
from safetensors.torch import load_file

from hiercodec.exact.export import export_grayscale, export_pixelcnn, export_pyramid
from hiercodec.families import build_family
from hiercodec.families.auxiliary_config import GrayscaleConfig, PyramidConfig
from hiercodec.families.pixelcnn import PixelCNNFamily
from hiercodec.families.pixelcnn_config import PixelCNNConfig
from hiercodec.zoo import model_hash, Model, load

TINY_CONFIG = PixelCNNConfig(channels=16, layers=2, head=32, mixtures=5, tile=8)
TINY_ID = "tiny-test"


@pytest.fixture(scope="session", autouse=True)
def _single_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _smooth_patches(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """Natural-ish uint8 patches (n, 3, size, size): random gradients plus noise."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    out = np.empty((n, 3, size, size), np.uint8)
    for i in range(n):
        for c in range(3):
            a, b, base = rng.uniform(-12, 12), rng.uniform(-12, 12), rng.uniform(40, 215)
            out[i, c] = np.clip(base + a * yy + b * xx + rng.normal(0, 6, (size, size)), 0, 255)
    return out


def make_tiny_model(folder) -> Model:
    """Build, export, save and reload the tiny exact model into `folder` (a pathlib.Path)."""
    torch.manual_seed(1234)
    float_model = TINY_CONFIG.build()
    rng = np.random.default_rng(1234)
    calib = np.concatenate([_smooth_patches(rng, 12, 8),
                            rng.integers(0, 256, (4, 3, 8, 8), dtype=np.uint8)])
    tensors, config = export_pixelcnn(float_model.state_dict(), TINY_CONFIG, torch.from_numpy(calib))
    config = dict(config, id=TINY_ID, description="untrained tiny model for tests")
    path = folder / "weights.safetensors"
    save_file(tensors, str(path))
    digest = model_hash(path.read_bytes(), config)
    loaded = load_file(str(path))
    return Model(TINY_ID, digest, config, PixelCNNFamily(config, loaded))


# Tiny models of the families with auxiliary variables; their embeddings down- and upsample, so that
# every exact operation is exercised.
TINY_GRAYSCALE = GrayscaleConfig(tile=8, halo=2, prior_layers=2, prior_channels=8, prior_head=16, layers=2,
                                 channels=8, head=16, mixtures=3, embed_channels=8, embed_blocks=2,
                                 embed_down=(1,), embed_up=(2,))
TINY_PYRAMID = PyramidConfig(levels=3, tile=8, halo=2, bottom_layers=1, bottom_channels=8, bottom_head=16,
                             layers=2, channels=8, head=16, mixtures=3, embed_channels=8, embed_blocks=3,
                             embed_down=(1,), embed_up=(2, 3))


def make_auxiliary_model(folder, config, export, model_id: str) -> Model:
    """Like make_tiny_model for a `grayscale` or `pyramid` config (untrained, fixed seed)."""
    torch.manual_seed(4321)
    float_model = config.build()
    rng = np.random.default_rng(4321)
    calib = np.concatenate([_smooth_patches(rng, 12, 16), rng.integers(0, 256, (4, 3, 16, 16), dtype=np.uint8)])
    tensors, exact = export(float_model.state_dict(), config, calib.transpose(0, 2, 3, 1))
    exact = dict(exact, id=model_id, description=f"untrained tiny {config.family} model for tests")
    path = folder / "weights.safetensors"
    save_file(tensors, str(path))
    loaded = load_file(str(path))
    return Model(model_id, model_hash(path.read_bytes(), exact), exact, build_family(exact, loaded))


@pytest.fixture(scope="session")
def tiny_grayscale(tmp_path_factory) -> Model:
    return make_auxiliary_model(tmp_path_factory.mktemp("tiny-grayscale"), TINY_GRAYSCALE, export_grayscale,
                                "tiny-grayscale")


@pytest.fixture(scope="session")
def tiny_pyramid(tmp_path_factory) -> Model:
    return make_auxiliary_model(tmp_path_factory.mktemp("tiny-pyramid"), TINY_PYRAMID, export_pyramid,
                                "tiny-pyramid")


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Model:
    return make_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def default_model() -> Model:
    return load("default")


@pytest.fixture(scope="session")
def tiny_loader(tiny_model):
    """A `loader` for decode_image that knows only the tiny model (by its id)."""
    from hiercodec.errors import ModelNotFoundError

    def loader(name: str) -> Model:
        if name != TINY_ID:
            raise ModelNotFoundError(f"model '{name}' is not installed (tests know only {TINY_ID})")
        return tiny_model

    return loader
