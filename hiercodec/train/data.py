"""Training photos of DESIGN.md (Data): fetched from Debian packages, downsampled, cut into patches.

The photos are GPL artwork, so they are never committed: `fetch_training_photos` runs
`apt-get download` + `dpkg -x` into the cache folder (no root install), and `prepare` writes
area-downsampled copies (JPEG sources 2-4x, which removes most compression artefacts) as PNG.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

from hiercodec.cache import cache_dir
from hiercodec.errors import HiercodecError
from hiercodec.fetch import run

PACKAGES = ("plasma-workspace-wallpapers", "mate-backgrounds")

# The 11 photographs of plasma-workspace-wallpapers (the rest are illustrations), largest size each.
PLASMA_PHOTOS = (
    "BytheWater", "ColdRipple", "ColorfulCups", "DarkestHour", "EveningGlow", "FallenLeaf",
    "Grey", "Kite", "OneStandsOut", "Path", "summer_1am",
)
MATE_PHOTO_DIR = "usr/share/backgrounds/mate/nature"
DOWNSAMPLE_FACTORS = (2, 3, 4)


def fetch_training_photos() -> list[Path]:
    """Paths of the 23 source photos, downloading and unpacking the Debian packages once."""
    root = cache_dir() / "train-photos"
    debs, tree = root / "debs", root / "tree"
    debs.mkdir(parents=True, exist_ok=True)
    for pkg in PACKAGES:
        if not list(debs.glob(f"{pkg}_*.deb")):
            print(f"hiercodec: downloading Debian package {pkg} ...", file=sys.stderr)
            run(["apt-get", "download", pkg], debs, f"cd {debs} && apt-get download {pkg}", f"Debian's {pkg}")
    if not (tree / MATE_PHOTO_DIR).is_dir():
        tree.mkdir(parents=True, exist_ok=True)
        for deb in sorted(debs.glob("*.deb")):
            run(["dpkg", "-x", str(deb), str(tree)], root, f"dpkg -x {deb} {tree}", f"the files of {deb.name}")
    photos = []
    for name in PLASMA_PHOTOS:
        images = list((tree / "usr/share/wallpapers" / name / "contents/images").glob("*.*"))
        if not images:
            raise HiercodecError(f"photo {name} missing from plasma-workspace-wallpapers in {tree}")
        photos.append(max(images, key=lambda p: _pixels(p.stem)))
    photos += sorted((tree / MATE_PHOTO_DIR).glob("*.jpg"))
    return photos


def _pixels(stem: str) -> int:
    w, _, h = stem.partition("x")
    return int(w) * int(h) if w.isdigit() and h.isdigit() else 0


def area_downsample(image: np.ndarray, factor: int) -> np.ndarray:
    """Mean over factor x factor blocks (edges cropped), rounded: exact and reproducible."""
    h, w = image.shape[0] // factor * factor, image.shape[1] // factor * factor
    blocks = image[:h, :w].reshape(h // factor, factor, w // factor, factor, -1).astype(np.float64)
    return np.rint(blocks.mean(axis=(1, 3))).clip(0, 255).astype(np.uint8)


def prepare(factors: tuple[int, ...] = DOWNSAMPLE_FACTORS) -> list[Path]:
    """Downsampled RGB copies of every training photo, cached as PNG; returns their paths."""
    out_dir = cache_dir() / "train-photos" / "prepared"
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for src in fetch_training_photos():
        stem = f"{src.parent.parent.parent.name}-{src.stem}" if "wallpapers" in str(src) else src.stem
        targets = [out_dir / f"{stem}-x{f}.png" for f in factors]
        if not all(t.exists() for t in targets):
            image = np.asarray(Image.open(src).convert("RGB"))
            for f, target in zip(factors, targets):
                Image.fromarray(area_downsample(image, f)).save(target)
        paths += targets
    return paths


def load_images(paths: list[Path]) -> list[np.ndarray]:
    return [np.asarray(Image.open(p).convert("RGB")) for p in paths]
