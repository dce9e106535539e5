"""Held-out photos and peer codecs: exact round trips, no network unless asked for.

Images that must be downloaded (face, libjxl-testdata) are tested only when they are
already cached or when HIERCODEC_NETWORK_TESTS=1.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest

from hiercodec.bench import heldout, peers
from hiercodec.errors import HiercodecError, ImageError

NETWORK = os.environ.get("HIERCODEC_NETWORK_TESTS") == "1"


def natural_like(h: int, w: int, c: int, seed: int = 0) -> np.ndarray:
    """A smooth gradient with a soft blob plus noise: compressible like a photo, not trivially."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    base = 60 + 2.5 * x + 1.5 * y + 40 * np.exp(-((x - w / 2) ** 2 + (y - h / 3) ** 2) / 80)
    chans = [base + 25 * k + rng.normal(0, 4, (h, w)) for k in range(c)]
    image = np.clip(np.stack(chans, axis=2), 0, 255).round().astype(np.uint8)
    return image[..., 0] if c == 1 else image


def rgba_with_transparency(h: int, w: int) -> np.ndarray:
    image = natural_like(h, w, 4, seed=3)
    image[..., 3] = np.linspace(0, 255, w, dtype=np.uint8)[None, :]
    image[:6, :6, 3] = 0  # fully transparent pixels whose colours must survive too
    return image


AVAILABLE = peers.available_peers()
IMAGES = {
    "rgb": natural_like(37, 53, 3),
    "gray": natural_like(37, 53, 1, seed=1),
    "rgba": rgba_with_transparency(37, 53),
    "rgba_opaque": np.concatenate([natural_like(37, 53, 3, seed=2), np.full((37, 53, 1), 255, np.uint8)], axis=2),
}


# ----------------------------------------------------------------------------- peers


def test_peers_listed():
    assert set(peers.PEERS) == {"png", "jpegxl", "jpegxl-e7", "webp", "jpeg2000", "jpegls", "avif"}
    assert set(AVAILABLE) <= set(peers.PEERS)
    if not AVAILABLE:
        pytest.skip("neither imagecodecs nor pyoxipng is installed")


@pytest.mark.parametrize("kind", list(IMAGES))
@pytest.mark.parametrize("name", AVAILABLE)
def test_peer_round_trip_is_exact(name, kind):
    image = IMAGES[kind]
    result = peers.run_peer(name, image)
    assert isinstance(result, peers.PeerResult)
    assert result.codec == name
    assert result.nbytes > 0
    assert result.encode_seconds >= 0 and result.decode_seconds >= 0
    # a natural-looking image must compress (each is well under raw size)
    assert result.nbytes < image.size
    # the input is left untouched
    assert np.array_equal(image, IMAGES[kind])


@pytest.mark.parametrize("name", AVAILABLE)
def test_peer_handles_non_contiguous_input(name):
    image = natural_like(40, 60, 3)[::-1, 1::1][:, 3:56]
    assert not image.flags["C_CONTIGUOUS"]
    assert peers.run_peer(name, image).nbytes > 0


@pytest.mark.parametrize("name", AVAILABLE)
def test_run_peer_catches_a_lossy_decode(monkeypatch, name):
    peer = peers.PEERS[name]

    def corrupting_decode(data, shape):
        out = np.array(peer.decode(data, shape))
        out.flat[7] ^= 1
        return out

    monkeypatch.setitem(peers.PEERS, name, dataclasses.replace(peer, decode=corrupting_decode))
    with pytest.raises(HiercodecError, match="not lossless"):
        peers.run_peer(name, IMAGES["rgb"])


def test_run_peer_rejects_bad_input():
    with pytest.raises(HiercodecError, match="unknown peer"):
        peers.run_peer("bmp", IMAGES["rgb"])
    if not AVAILABLE:
        return
    name = AVAILABLE[0]
    with pytest.raises(ImageError):
        peers.run_peer(name, IMAGES["rgb"].astype(np.uint16))
    with pytest.raises(ImageError):
        peers.run_peer(name, np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(ImageError):
        peers.run_peer(name, np.zeros((0, 4, 3), np.uint8))


def test_unavailable_peer_is_a_clear_error(monkeypatch):
    peer = peers.PEERS["jpegxl"]
    missing = dataclasses.replace(peer, backend="NO_SUCH_CODEC")
    monkeypatch.setitem(peers.PEERS, "jpegxl", missing)
    assert "jpegxl" not in peers.available_peers()
    with pytest.raises(HiercodecError, match="pip install"):
        peers.run_peer("jpegxl", IMAGES["rgb"])


def test_restore_layout_only_undoes_lossless_layout_changes():
    rgb = IMAGES["rgb"]
    # opaque alpha dropped by the codec comes back as 255
    restored = peers._restore_layout(rgb, (37, 53, 4))
    assert restored.shape == (37, 53, 4) and np.all(restored[..., 3] == 255)
    # gray stored as R=G=B comes back as one channel, but only if the copies are equal
    gray = IMAGES["gray"]
    assert np.array_equal(peers._restore_layout(np.repeat(gray[..., None], 3, axis=2), gray.shape), gray)
    assert peers._restore_layout(rgb, (37, 53)).shape == (37, 53, 3)


# ----------------------------------------------------------------------------- held-out


def test_cache_dir_follows_environment(tmp_path, monkeypatch):
    target = tmp_path / "nested" / "cache"
    monkeypatch.setenv("HIERCODEC_CACHE", str(target))
    assert heldout.cache_dir() == target
    assert target.is_dir()
    # nothing fetchable is cached in a fresh folder, and bundled images never need a fetch
    assert heldout.needs_fetch("face")
    assert not heldout.needs_fetch("astronaut")


def test_heldout_names():
    names = heldout.HELDOUT_NAMES
    assert len(names) == len(set(names))
    assert names[:6] == ["astronaut", "chelsea", "coffee", "motorcycle_left", "motorcycle_right", "face"]
    assert all(n.startswith("jxl-") for n in names[6:]) and len(names) > 6
    with pytest.raises(HiercodecError, match="unknown held-out"):
        heldout.heldout_images(["lena"])


def test_astronaut_smoke():
    pytest.importorskip("skimage", reason="scikit-image is not installed")
    images = heldout.heldout_images(["astronaut"])
    assert list(images) == ["astronaut"]
    image = images["astronaut"]
    assert image.shape == (512, 512, 3) and image.dtype == np.uint8


def test_skimage_images_match_skimage_loaders():
    data = pytest.importorskip("skimage.data", reason="scikit-image is not installed")
    images = heldout.heldout_images(heldout.SKIMAGE_NAMES)
    assert np.array_equal(images["chelsea"], data.chelsea())
    assert np.array_equal(images["coffee"], data.coffee())
    for name, image in images.items():
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3, name


def test_missing_scikit_image_is_a_clear_error(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_skimage(name, *args, **kwargs):
        if name == "skimage" or name.startswith("skimage."):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_skimage)
    with pytest.raises(HiercodecError, match="pip install scikit-image"):
        heldout.heldout_images(["coffee"])


def test_changed_pixels_are_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("HIERCODEC_CACHE", str(tmp_path))
    bogus = np.zeros((768, 1024, 3), np.uint8)
    heldout._write_png_atomic(heldout._cached_png("face"), bogus)
    assert not heldout.needs_fetch("face")
    with pytest.raises(HiercodecError, match="delete"):
        heldout.heldout_images(["face"])


@pytest.mark.parametrize("name", [n for n in heldout.HELDOUT_NAMES if n not in heldout.SKIMAGE_NAMES])
def test_fetched_image(name):
    if heldout.needs_fetch(name) and not NETWORK:
        pytest.skip(f"{name} is not cached; set HIERCODEC_NETWORK_TESTS=1 to fetch it")
    image = heldout.heldout_images([name])[name]
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    if name == "face":
        assert image.shape == (768, 1024, 3)
    assert not heldout.needs_fetch(name)
