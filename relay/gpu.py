#!/usr/bin/env python
"""The relay on a GPU machine (relay/README.md, "When a GPU is lent").

Such a machine gets a copy of the working tree, no network, about 10 minutes a command and 15 in
all, and one output folder that comes back. One command there:

    python3 relay/gpu.py train --minutes 8 --out "$OUT" --data .relay-data

continues the committed relay checkpoint with bfloat16 autocast on the GPU (the same recipe and
data stream position; the photos come from the carried folder .relay-data, which
`python relay/gpu.py pack-data` fills here), then exports the averaged weights and encodes two
images with them and two with the shipped default. Back here,

    python relay/gpu.py check DIR        # the returned files decode on this CPU to their images
    cp DIR/checkpoint.safetensors DIR/log.jsonl DIR/config.json relay/run/   # the relay goes on from there
    mkdir -p relay/gpu-check && cp -r DIR/models DIR/files relay/gpu-check/  # tests/test_relay.py decodes them

What comes back (8 files at most): checkpoint.safetensors, config.json, log.jsonl,
models/<id>/{config.json,weights.safetensors}, files/{manifest.json,<id>.hc,default.hc}.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path

import click

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the checkout's hiercodec, where it is not installed (the GPU machine)

from ship import make_golden, model_folder  # noqa: E402  (relay/ship.py)

RUN = HERE / "run"
DATA = HERE.parent / ".relay-data"
# the images encoded there: golden images of bitstreams/make_golden.py (synthetic, seeded)
CHECK_IMAGES = {"candidate": "rgb-tiles-130x5", "default": "rgb-odd-19x31"}
RUN_FILES = ("checkpoint.safetensors", "config.json", "log.jsonl")
EVAL_CROPS = "heldout-crops.npy"  # the relay's held-out evaluation crops (the GPU machine cannot fetch the photos)


def pixel_digest(image) -> str:
    return hashlib.sha256(image.tobytes() + repr(image.shape).encode()).hexdigest()


@click.group()
def main() -> None:
    """The training relay on a GPU machine, and the check of what it sends back."""


@main.command()
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Output folder ($OUT there).")
@click.option("--minutes", type=click.FloatRange(0, min_open=True), default=8.0, show_default=True,
              help="Training minutes (then about a minute of export and encoding).")
@click.option("--steps", type=click.IntRange(1), default=None,
              help="Stop after this many steps instead (the CPU dry run of tests/test_relay.py).")
@click.option("--data", type=click.Path(path_type=Path), default=DATA, show_default=True,
              help="Folder of training photos (pack-data fills it); the relay's own data where absent.")
@click.option("--run", "run_dir", type=click.Path(path_type=Path), default=RUN, show_default=True,
              help="The checkpoint to continue (only read).")
def train(out: Path, minutes: float, steps: int | None, data: Path, run_dir: Path) -> None:
    """Continue the relay in bf16 on the GPU for MINUTES, export, encode."""
    import hiercodec  # noqa: F401
    import numpy as np
    import torch

    from hiercodec.codec import encode_image
    from hiercodec.train import checkpoint
    from hiercodec.train.config import RunConfig
    from hiercodec.train.datasets import folder
    from hiercodec.export.run import export_run
    from hiercodec.train.loop import train as run
    from hiercodec.zoo import load

    device = "cuda" if torch.cuda.is_available() else "cpu"
    click.echo(f"relay-gpu: torch {torch.__version__} on {torch.cuda.get_device_name() if device == 'cuda' else 'the CPU'}")
    out.mkdir(parents=True, exist_ok=True)
    for name in RUN_FILES:
        if (run_dir / name).is_file():
            shutil.copy2(run_dir / name, out / name)
    meta = checkpoint.read_meta(out)
    start = meta["step"]
    config = RunConfig.from_dict(meta["config"])
    config = config.with_train(steps=start + steps if steps else 10**9, amp=True, save_every_s=60.0)
    images = folder(data) if data.is_dir() else None
    crops = data / EVAL_CROPS
    eval_images = np.load(crops, allow_pickle=False) if crops.is_file() else None
    summary = run(out, config, resume=True, minutes=None if steps else minutes, images=images,
                  eval_images=eval_images, progress=False)
    click.echo(f"relay-gpu: steps {start} -> {summary['step']} in {summary['seconds']:.0f} s, "
               f"held-out {summary['eval_bpd']}")
    (out / "checkpoint.json").unlink(missing_ok=True)  # a copy for people; 8 files come back at most

    models = out / "models"
    with model_folder(models):  # the exported model lives there, beside the shipped zoo
        model_id = f"relay-gpu-{summary['step']}"
        report = export_run(out, model_id, eval_on="train", images=images, force=True)
        click.echo(f"relay-gpu: exported {model_id}: float {report['float_bpd']:.4f}, exact {report['exact_bpd']:.4f}")
        golden = make_golden()
        files = out / "files"
        files.mkdir(exist_ok=True)
        manifest = {}
        for role, model in (("candidate", model_id), ("default", "default")):
            loaded = load(model)
            image = golden.golden_image(CHECK_IMAGES[role])
            data_bytes, _ = encode_image(loaded, image)
            name = f"{role}.hc"
            (files / name).write_bytes(data_bytes)
            manifest[name] = {"image": CHECK_IMAGES[role], "model": loaded.id, "pixels_sha256": pixel_digest(image),
                              "bytes": len(data_bytes)}
    (files / "manifest.json").write_text(json.dumps({"torch": torch.__version__, "device": device,
                                                     "files": manifest}, indent=1) + "\n")
    click.echo(f"relay-gpu: encoded {', '.join(manifest)} into {files}")


def check_files(returned: Path) -> list[str]:
    """Decode every file of a returned folder (files/ and models/ inside it) here and compare it
    with its image; returns one line per file. Raises AssertionError on any difference."""
    import hiercodec  # noqa: F401

    from hiercodec.codec import decode_image

    manifest = json.loads((returned / "files" / "manifest.json").read_text())
    golden = make_golden()
    lines = []
    with model_folder(returned / "models"):
        for name, entry in manifest["files"].items():
            image = golden.golden_image(entry["image"])
            assert pixel_digest(image) == entry["pixels_sha256"], f"{entry['image']}: not the image encoded there"
            decoded, _ = decode_image((returned / "files" / name).read_bytes())
            decoded = decoded if decoded.ndim == 3 else decoded[..., None]
            assert decoded.shape == image.shape and (decoded == image).all(), \
                f"{name} (encoded with {entry['model']} under torch {manifest['torch']}) decodes to other pixels here"
            lines.append(f"{name}: {entry['model']}, {entry['bytes']} bytes, encoded under torch {manifest['torch']} "
                         f"on {manifest['device']}: decodes here to its image")
    return lines


@main.command()
@click.argument("returned", type=click.Path(exists=True, file_okay=False, path_type=Path))
def check(returned: Path) -> None:
    """Decode here the files a GPU run returned (RETURNED/files, RETURNED/models)."""
    for line in check_files(returned):
        click.echo(line)


@main.command("pack-data")
@click.option("--out", type=click.Path(path_type=Path), default=DATA, show_default=True)
@click.option("--budget-mb", default=24.0, show_default=True,
              help="Size limit: the working tree that travels is at most 64 MiB in all.")
@click.option("--run", "run_dir", type=click.Path(path_type=Path), default=RUN, show_default=True,
              help="The run whose held-out crops to pack.")
def pack_data(out: Path, budget_mb: float, run_dir: Path) -> None:
    """Fill the folder the GPU run trains on (ignored by git, carried by the device tool): the
    prepared training photos, smallest downsampling factor first that fits, as lossless WebP."""
    import numpy as np
    from PIL import Image

    from hiercodec.train import data

    from hiercodec.train.config import RunConfig
    from hiercodec.train.checkpoint import read_meta
    from hiercodec.train.loop import eval_crops

    paths = data.prepare()
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.webp"):
        old.unlink()
    s = RunConfig.from_dict(read_meta(run_dir)["config"]).train
    crops = eval_crops(s.eval_data, s.eval_crops, s.eval_patch)
    (out / EVAL_CROPS).unlink(missing_ok=True)
    if crops is not None:
        np.save(out / EVAL_CROPS, crops, allow_pickle=False)
    total, kept = sum(p.stat().st_size for p in out.glob(EVAL_CROPS)), 0
    # the most downsampled copies first (x4, then x3, x2): most photos for the bytes, and the least noise
    for path in sorted(paths, key=lambda p: (-int(p.stem.rsplit("-x", 1)[1]), p.name)):
        target = out / (path.stem + ".webp")
        Image.fromarray(np.asarray(Image.open(path).convert("RGB"))).save(target, lossless=True, quality=100, method=4)
        if total + target.stat().st_size > budget_mb * 1e6:
            target.unlink()
            break
        total += target.stat().st_size
        kept += 1
    click.echo(f"relay-gpu: {kept} of {len(paths)} prepared photos in {out} ({total / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
