"""Shared fixtures: a tiny real exact model (fast) and the shipped `default` model.

`tiny_model` is a genuine exact model, made the way every shipped model is made: a float
GatedPixelCNN (untrained, fixed seed) exported by hiercodec.export.hierarchy.export_hierarchy on
calibration patches, written to a safetensors file, read back and wrapped as a zoo Model whose
hash is the SHA-256 of that file. It is small (16 channels, 2 layers, 8x8 tiles), so images of
any shape encode and decode in milliseconds.

A CPU training job may share this machine: torch runs single-threaded by default (OpenMP
oversubscription makes torch far slower); the one test that compares thread counts sets them
itself and restores them.
"""

from __future__ import annotations

import hashlib
import json
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

from hiercodec.export.hierarchy import export_hierarchy
from hiercodec.export.ham import export_ham
from hiercodec.export.pixelvae import export_agave, export_pixelvae
from hiercodec.export.vqvae2 import export_vqvae2
from hiercodec.families import build_family
from hiercodec.families.auxiliary_config import GrayscaleConfig, PyramidConfig
from hiercodec.families.ham_config import HAMConfig
from hiercodec.families.pixelcnn import PixelCNNFamily
from hiercodec.families.pixelcnn_config import PixelCNNConfig
from hiercodec.families.agave_config import AGAVEConfig
from hiercodec.families.pixelvae_config import PixelVAEConfig
from hiercodec.families.vqvae2_config import VQVAE2Config
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
    tensors, config = export_hierarchy(float_model.state_dict(), TINY_CONFIG, calib.transpose(0, 2, 3, 1))
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


# A tiny VQ-VAE-2 (the vqvae2-small network): tiles of 16 pixels, so code tiles of 2 and 4; one
# attention layer in each of the top prior's two layers.
TINY_VQVAE2 = VQVAE2Config(tile=16, halo=2, hidden=16, residual=8, res_layers=1, codes=32, code_dim=8, top_layers=2,
                           top_channels=8, top_head=16, top_embed=4, attention_every=1, heads=2, key_channels=4,
                           bottom_layers=1, bottom_channels=8, bottom_head=16, bottom_embed=4, cond_channels=8,
                           cond_blocks=2, layers=1, channels=8, head=16, mixtures=3, embed_channels=8,
                           embed_blocks=1)


# A tiny two-level HAM (the ham-small network): tiles of 16 pixels, codes1 tiles of 8, codes2 of 4;
# one attention layer in each of the prior's two layers; feed-forward auxiliary decoders.
TINY_HAM = HAMConfig(levels=2, tile=16, halo=2, hidden=16, residual=8, enc_layers=1, aux_layers=1, codes=32,
                     code_dim=8, layers=1, channels=8, head=16, mixtures=3, mod_blocks=1, mod_channels=16, mod_embed=8,
                     down2=1, hidden2=16, residual2=8, enc2_layers=1, aux2_layers=1, codes2=16, code_dim2=8,
                     ar2_layers=1, ar2_channels=8, ar2_head=16, ar2_embed=4, mod2_blocks=1, mod2_channels=16,
                     mod2_embed=8, prior_layers=2, prior_channels=8, prior_head=16, prior_embed=4, attention_every=1,
                     heads=2, key_channels=4)


def make_auxiliary_model(folder, config, export, model_id: str, size: int = 16, prepare=None) -> Model:
    """Like make_tiny_model for a family config with an `export` function (untrained, fixed seed),
    calibrated on size x size crops; prepare(float_model, crops (N, size, size, 3) uint8), if
    given, runs before the export. The folder also gets the model's config.json, so that it is an
    installed model where HIERCODEC_MODELS names its parent (and the folder is named model_id)."""
    torch.manual_seed(4321)
    float_model = config.build()
    rng = np.random.default_rng(4321)
    calib = np.concatenate([_smooth_patches(rng, 12, size), rng.integers(0, 256, (4, 3, size, size), dtype=np.uint8)])
    calib = calib.transpose(0, 2, 3, 1)
    if prepare is not None:
        prepare(float_model, calib)
    tensors, exact = export(float_model.state_dict(), config, calib)
    exact = dict(exact, id=model_id, description=f"untrained tiny {config.family} model for tests")
    path = folder / "weights.safetensors"
    save_file(tensors, str(path))
    (folder / "config.json").write_text(json.dumps(exact, indent=1) + "\n")
    loaded = load_file(str(path))
    return Model(model_id, model_hash(path.read_bytes(), exact), exact, build_family(exact, loaded))


def start_codebooks(float_model, crops: np.ndarray) -> None:
    """Make an untrained VQ-VAE-2 useful for tests: its decoder's weights x2, so that
    reconstructions span most of 0 ... 255 instead of a near-flat grey (the default initialisation
    shrinks activations layer by layer), then one training-mode pass over the crops, so that the
    codebooks start on encoder outputs (VectorQuantizer does that on its first training batch;
    otherwise an untrained encoder maps everything to a couple of codes)."""
    from hiercodec.families.vqvae2 import encoder_input

    vq = float_model["vq"]
    with torch.no_grad():
        for part in (vq.up_t, vq.dec_in, vq.res_d, vq.up1, vq.up2):
            for p in part.parameters():
                p.mul_(2)
    vq.train()
    with torch.no_grad():
        vq(encoder_input(crops))
    vq.eval()


def start_ham_codebooks(float_model, crops: np.ndarray, net: HAMConfig = TINY_HAM) -> None:
    """Make an untrained HAM useful for tests: one training-mode pass of each encoder over the
    crops, so that its codebook starts on encoder outputs (an untrained encoder maps everything
    to a couple of codes otherwise)."""
    from hiercodec.families.ham import encoder_input
    from hiercodec.nn.ham import one_hot

    float_model.train()
    with torch.no_grad():
        _, codes1, _ = float_model["enc1"](encoder_input(net, crops))
        if net.levels == 2:
            float_model["enc2"](one_hot(codes1[..., None], net.codes))
    float_model.eval()


def model_with_float(folder, config, export, model_id: str, start) -> tuple[Model, torch.nn.Module]:
    """make_auxiliary_model on 32x32 crops with start(float_model, crops) before the export (see
    start_codebooks); also returns the float networks it exported, in eval mode."""
    floats = []

    def prepare(float_model, crops):
        start(float_model, crops)
        floats.append(float_model)

    model = make_auxiliary_model(folder, config, export, model_id, size=32, prepare=prepare)
    return model, floats[0].eval()


@pytest.fixture(scope="session")
def _tiny_ham(tmp_path_factory):
    return model_with_float(tmp_path_factory.mktemp("tiny-ham"), TINY_HAM, export_ham, "tiny-ham",
                            start_ham_codebooks)


@pytest.fixture(scope="session")
def tiny_ham(_tiny_ham) -> Model:
    """A tiny two-level `ham` model (TINY_HAM, untrained, codebooks started on data), exported."""
    return _tiny_ham[0]


@pytest.fixture(scope="session")
def tiny_ham_float(_tiny_ham):
    """The float networks (torch ModuleDict, eval mode) `tiny_ham` was exported from."""
    return _tiny_ham[1]


@pytest.fixture(scope="session")
def tiny_grayscale(tmp_path_factory) -> Model:
    return make_auxiliary_model(tmp_path_factory.mktemp("tiny-grayscale"), TINY_GRAYSCALE, export_hierarchy,
                                "tiny-grayscale")


@pytest.fixture(scope="session")
def tiny_pyramid(tmp_path_factory) -> Model:
    return make_auxiliary_model(tmp_path_factory.mktemp("tiny-pyramid"), TINY_PYRAMID, export_hierarchy,
                                "tiny-pyramid")


@pytest.fixture(scope="session")
def _tiny_vqvae2(tmp_path_factory):
    models = tmp_path_factory.mktemp("vqvae2-models")
    (models / "tiny-vqvae2").mkdir()
    return (*model_with_float(models / "tiny-vqvae2", TINY_VQVAE2, export_vqvae2, "tiny-vqvae2", start_codebooks),
            models)


@pytest.fixture(scope="session")
def tiny_vqvae2(_tiny_vqvae2) -> Model:
    """A tiny `vqvae2` model (TINY_VQVAE2, untrained, codebooks started on data), exported."""
    return _tiny_vqvae2[0]


@pytest.fixture(scope="session")
def tiny_vqvae2_float(_tiny_vqvae2):
    """The float networks (torch ModuleDict, eval mode) `tiny_vqvae2` was exported from."""
    return _tiny_vqvae2[1]


@pytest.fixture(scope="session")
def tiny_vqvae2_models(_tiny_vqvae2):
    """A folder in which `tiny-vqvae2` is installed (point HIERCODEC_MODELS at it)."""
    return _tiny_vqvae2[2]


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Model:
    return make_tiny_model(tmp_path_factory.mktemp("tiny-model"))


# 8-bit (the contract codes every colour mode) with the upsampling decoder (every exact layer kind)
TINY_PIXELVAE = PixelVAEConfig(binary=0, upsample=1, latents=8, hidden=4, layers=1, channels=8, head=16, mixtures=3,
                               latent_bits=8)


@pytest.fixture(scope="session")
def tiny_pixelvae(tmp_path_factory) -> Model:
    """A tiny 8-bit `pixelvae` model (TINY_PIXELVAE, untrained), exported."""
    return make_auxiliary_model(tmp_path_factory.mktemp("tiny-pixelvae"), TINY_PIXELVAE, export_pixelvae,
                                "tiny-pixelvae", size=28)


TINY_AGAVE = AGAVEConfig(binary=0, latents=8, hidden=4, aux_levels=32, embed_channels=8, embed_blocks=1, layers=1,
                         channels=8, head=16, mixtures=3, latent_bits=8, band=1)


@pytest.fixture(scope="session")
def tiny_agave(tmp_path_factory) -> Model:
    """A tiny 8-bit `agave` model (TINY_AGAVE, untrained), exported."""
    return make_auxiliary_model(tmp_path_factory.mktemp("tiny-agave"), TINY_AGAVE, export_agave, "tiny-agave", size=28)


@pytest.fixture(scope="session")
def tiny_bitsback_toy() -> Model:
    """The `bitsback-toy` family's shipped model: fixed integer tables, already tiny."""
    return load("bitsback-toy-1")


# The tiny model of every registered family (hiercodec.families.registry), by family name: the
# fixture that makes it. tests/test_contract.py runs the family contract on each; a registered
# family without an entry here fails it, so a new family is covered by registering it and naming
# its tiny model here.
TINY_MODELS = {
    "pixelcnn": "tiny_model",
    "grayscale": "tiny_grayscale",
    "pyramid": "tiny_pyramid",
    "vqvae2": "tiny_vqvae2",
    "ham": "tiny_ham",
    "bitsback-toy": "tiny_bitsback_toy",
    "pixelvae": "tiny_pixelvae",
    "agave": "tiny_agave",
}


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
