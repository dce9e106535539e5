#!/usr/bin/env python
"""Write the golden .hc files of bitstreams/ with the shipped models, each beside the PNG it must
decode to (bitstreams/FORMAT.md, "Compatibility"; checked by tests/test_golden.py).

    python bitstreams/make_golden.py            # writes bitstreams/<name>.hc and <name>.png
    python bitstreams/make_golden.py --out DIR  # somewhere else (e.g. to try it)

Names are <kind>-<height>x<width>. The content is synthetic, deterministic (seeded) and looks a
little like a photo: smooth gradients and blobs, texture, noise; alpha planes have a soft edge
between opaque and transparent regions. Images are small so that decoding them all stays fast.

Golden files never change once committed: the script refuses to overwrite an existing file unless
given --force (which is only for a file that was never committed). It writes nothing until every
file has been encoded and decoded back to its exact pixels, then moves them into place.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent

# name (sizes as width x height, like the CLI prints them): (height, width, channels, seed), written
# with --model (the first six with pixelcnn-s1, the default model then), or with the model in MODELS
GOLDEN: dict[str, tuple[int, int, int, int]] = {
    "gray-17x23": (23, 17, 1, 101),
    "rgb-odd-19x31": (31, 19, 3, 102),
    "rgba-11x13": (13, 11, 4, 103),
    "strip-57x1": (1, 57, 3, 104),
    "gray-alpha-14x9": (9, 14, 2, 105),
    "rgb-tiles-130x5": (5, 130, 3, 106),  # more than one tile of the default model (64)
    "grayscale-rgb-37x29": (29, 37, 3, 107),
    "grayscale-gray-alpha-13x10": (10, 13, 2, 108),
    "pyramid-rgb-70x45": (45, 70, 3, 109),  # two tiles of the full-size level (64)
    "pyramid-rgba-9x17": (17, 9, 4, 110),
    "pyramid-gray-5x3": (3, 5, 1, 111),
    "vqvae2-rgb-75x50": (50, 75, 3, 112),  # two tiles of each level of the 64-pixel layout
    "vqvae2-rgba-13x21": (21, 13, 4, 113),
    "vqvae2-lossy-rgb-80x56": (56, 80, 3, 114),
    "vqvae2-top-gray-35x19": (19, 35, 1, 115),
    "bitsback-toy-rgba-21x14": (14, 21, 4, 116),  # format version 2: a bits-back level sharing its stream
}
MODELS = {name: name.split("-")[0] + "-s1" for name in GOLDEN
          if name.startswith(("grayscale-", "pyramid-", "vqvae2-"))}
MODELS["bitsback-toy-rgba-21x14"] = "bitsback-toy-1"
# the shipped `ham` model: a lossless file across two tiles, a lossy one that decodes by sampling
# (format version 3: its seed and temperature in the header) and a lossy gray one by the mean
HAM_MODEL = "ham-r1"
GOLDEN |= {"ham-rgb-70x45": (45, 70, 3, 117), "ham-sampled-rgb-40x36": (36, 40, 3, 118),
           "ham-mean-gray-alpha-23x18": (18, 23, 2, 119)}
MODELS |= {name: HAM_MODEL for name in GOLDEN if name.startswith("ham-")}
# set files (format version 4): COUNTS[name] images of one size, stacked top to bottom in the PNG
GOLDEN["set-gray-9x7x3"] = (27, 7, 1, 120)  # three gray images of 7x9
MODELS["set-gray-9x7x3"] = "pixelcnn-r9000"
COUNTS = {"set-gray-9x7x3": 3}
# the shipped binary `pixelvae` model (bits-back latents per 28x28 tile): a set of six digits-sized
# images (format version 4, one chain of tiles) and a gray + alpha image of several partial tiles
# (alpha pushed first on the same stream); their samples are 0 or 255 (BINARY)
PIXELVAE_MODEL = "pixelvae-mnist-r1"
GOLDEN |= {"pixelvae-set-28x28x6": (168, 28, 1, 121), "pixelvae-gray-alpha-45x30": (30, 45, 2, 122)}
MODELS |= {"pixelvae-set-28x28x6": PIXELVAE_MODEL, "pixelvae-gray-alpha-45x30": PIXELVAE_MODEL}
COUNTS["pixelvae-set-28x28x6"] = 6
BINARY = {"pixelvae-set-28x28x6", "pixelvae-gray-alpha-45x30"}
# the photo models of issue 14: a two-level `pixelvae` (two latent maps per 32x32 tile) and `agave`
# (a latent vector per 28x28 tile, PixelCNN given f(z)), each over 2 x 2 tiles, partial ones included
GOLDEN |= {"pixelvae-maps-rgb-40x36": (36, 40, 3, 123), "agave-rgb-40x30": (30, 40, 3, 124)}
MODELS |= {"pixelvae-maps-rgb-40x36": "pixelvae-photos-r1", "agave-rgb-40x30": "agave-photos-r1"}
# golden files of models shipped later (relay/ship.py adds two for each new default):
# name: [height, width, channels, seed, model id]
SHIPPED = HERE / "golden-shipped.json"
for _name, (_h, _w, _c, _seed, _model) in (json.loads(SHIPPED.read_text()) if SHIPPED.is_file() else {}).items():
    GOLDEN[_name], MODELS[_name] = (_h, _w, _c, _seed), _model
# lossy golden files: the first K levels only; their PNG is the image they decode to (the model's
# reconstruction), the image they were made from is golden_image(name)
LEVELS = {"vqvae2-lossy-rgb-80x56": 2, "vqvae2-top-gray-35x19": 1, "ham-sampled-rgb-40x36": 1,
          "ham-mean-gray-alpha-23x18": 1}
# lossy golden files that decode by sampling: (seed, temperature in thousandths) in their header
SAMPLED = {"ham-sampled-rgb-40x36": (5, 990)}
PNG_MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}


def _smooth_field(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A smooth random field in about [-1, 1]: a few low-frequency waves and blobs."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    field = np.zeros((h, w))
    for _ in range(3):
        fy, fx, phase = rng.uniform(0, 0.25), rng.uniform(0, 0.25), rng.uniform(0, 2 * np.pi)
        field += rng.uniform(0.2, 0.5) * np.sin(fy * yy + fx * xx + phase)
    for _ in range(2):
        cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(2, 9)
        field += rng.uniform(-0.8, 0.8) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
    return field


def golden_image(name: str) -> np.ndarray:
    """The uint8 (height, width, channels) image of golden file `name`."""
    h, w, c, seed = GOLDEN[name]
    rng = np.random.default_rng(seed)
    color = 3 if c >= 3 else 1
    light = _smooth_field(rng, h, w)
    out = np.empty((h, w, c), np.uint8)
    for k in range(color):
        tint = _smooth_field(rng, h, w)
        base = rng.uniform(80, 180) + 60 * light + 35 * tint
        out[..., k] = np.clip(np.rint(base + rng.normal(0, 4, (h, w))), 0, 255)
    if name in BINARY:  # binary samples (a binary pixelvae model): the light field thresholded
        out[..., :color] = np.where(out[..., :color] > 175, 255, 0)
    if c in (2, 4):  # alpha: opaque on one side of a tilted line, transparent on the other, soft edge
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
        angle, offset = rng.uniform(0, np.pi), rng.uniform(-0.2, 0.2)
        dist = (np.cos(angle) * (xx - w / 2) + np.sin(angle) * (yy - h / 2)) / max(h, w) - offset
        out[..., c - 1] = np.clip(np.rint(255 / (1 + np.exp(-dist * 18))), 0, 255)
    return out


def write_png(path: Path, image: np.ndarray) -> None:
    from PIL import Image

    c = image.shape[2]
    pixels = image[..., 0] if c == 1 else image
    Image.fromarray(np.ascontiguousarray(pixels), mode=PNG_MODES[c]).save(path, format="PNG")


def read_png(path: Path) -> np.ndarray:
    """A golden PNG as uint8 (height, width, channels); only L, LA, RGB and RGBA are golden."""
    from PIL import Image

    with Image.open(path) as im:
        channels = {mode: c for c, mode in PNG_MODES.items()}.get(im.mode)
        if channels is None:
            raise ValueError(f"{path}: PNG mode {im.mode} is not one of L, LA, RGB, RGBA")
        a = np.asarray(im, dtype=np.uint8)
    return a.reshape(a.shape[0], a.shape[1], channels)


def add_shipped(model_id: str, path: Path = SHIPPED) -> list[str]:
    """Register the golden files of a newly shipped pixelcnn model (an RGB image across two tiles
    and a gray + alpha one) in golden-shipped.json; returns their names, to write with --only."""
    shipped = json.loads(path.read_text()) if path.is_file() else {}
    seed = 200 + 2 * len(shipped)
    new = {f"{model_id}-rgb-70x45": [45, 70, 3, seed, model_id],
           f"{model_id}-gray-alpha-13x10": [10, 13, 2, seed + 1, model_id]}
    if set(new) & set(shipped):
        raise ValueError(f"golden files of {model_id} are already registered in {path}")
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({**shipped, **new}, indent=1) + "\n")
    os.replace(tmp, path)
    for name, (h, w, c, s, model) in new.items():
        GOLDEN[name], MODELS[name] = (h, w, c, s), model
    return list(new)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=HERE, help="folder to write into (default: bitstreams/)")
    parser.add_argument("--model", default="default",
                        help="model id or alias for the files not in MODELS (default: default)")
    parser.add_argument("--only", action="append", choices=sorted(GOLDEN), help="write only these (repeatable)")
    parser.add_argument("--force", action="store_true", help="overwrite existing files (never committed ones!)")
    args = parser.parse_args(argv)

    import torch

    from hiercodec.codec import decode_image, encode_image
    from hiercodec.coding.sampling import Sampling
    from hiercodec.zoo import load

    torch.set_num_threads(1)  # results never depend on it; other jobs may share the machine
    names = args.only or sorted(GOLDEN)
    targets = [args.out / f"{n}{ext}" for n in names for ext in (".hc", ".png")]
    existing = [p for p in targets if p.exists()]
    if existing and not args.force:
        print("refusing to overwrite golden files (they never change once committed): "
              + ", ".join(str(p) for p in existing) + "; use --force only for files never committed",
              file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.out) as tmp:
        staged = []
        for name in names:
            model = load(MODELS.get(name, args.model))
            image = golden_image(name)
            draws = Sampling(*SAMPLED[name]) if name in SAMPLED else None
            data, report = encode_image(model, image, levels=LEVELS.get(name), sample=draws,
                                        count=COUNTS.get(name, 1))
            decoded, _ = decode_image(data)  # by the id in its header, as a user would
            if name in LEVELS:  # lossy: the PNG is the reconstruction, which must decode the same twice
                image = decoded if decoded.ndim == 3 else decoded[..., None]
                if not np.array_equal(decode_image(data)[0], decoded):
                    print(f"{name}: two decodes differ; nothing written", file=sys.stderr)
                    return 2
            elif decoded.shape != image.shape or not np.array_equal(decoded, image):
                print(f"{name}: the file does not decode to its image; nothing written", file=sys.stderr)
                return 2
            hc, png = Path(tmp) / f"{name}.hc", Path(tmp) / f"{name}.png"
            hc.write_bytes(data)
            write_png(png, image)
            if not np.array_equal(read_png(png), image):
                print(f"{name}: the PNG does not read back exactly; nothing written", file=sys.stderr)
                return 2
            staged += [hc, png]
            print(f"{name}: {image.shape[1]}x{image.shape[0]} with {image.shape[2]} channel(s), model {model.id}, "
                  f"{len(data)} bytes ({report.bits_per_dim:.3f} bpd, bound {report.bound_bits_per_dim:.3f})")
        for path in staged:
            os.replace(path, args.out / path.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
