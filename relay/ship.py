"""`python relay/relay.py ship`: ship the relay's averaged weights when their files are smaller.

1. Export the relay checkpoint's averaged weights as `pixelcnn-rSTEP` into a scratch model folder
   (calibrated on the run's training crops, quantization measured on held-out crops).
2. `hiercodec bench` it next to the model to beat on held-out photos (every file decoded and
   compared; real bytes), and write the bench as JSON.
3. Only if its pooled bits/dim are at least MIN_GAIN_PERCENT lower: copy it into the zoo, move the alias `default` to it
   (old ids stay installed, so old files decode) and write its golden files.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parent.parent
# a new default costs every user a new model id in the package and, for a larger network, slower
# decoding: it ships only for a real gain (pixelcnn-r1509 was 0.02% smaller and decoded 17% slower)
MIN_GAIN_PERCENT = 1.0


@contextmanager
def model_folder(path: Path):
    """User models (where `export` writes) in `path` for the duration."""
    before = os.environ.get("HIERCODEC_MODELS")
    os.environ["HIERCODEC_MODELS"] = str(path)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("HIERCODEC_MODELS", None)
        else:
            os.environ["HIERCODEC_MODELS"] = before


def make_golden(bitstreams: Path = ROOT / "bitstreams"):
    """bitstreams/make_golden.py as a module (it is a script, not part of the package)."""
    spec = importlib.util.spec_from_file_location("make_golden", bitstreams / "make_golden.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def ship_relay(run_dir: Path, images: list[str], against: str, *, dry_run: bool, out: Path,
               min_gain: float = MIN_GAIN_PERCENT, eval_on: str = "heldout", zoo_dir: Path | None = None,
               aliases_file: Path | None = None, bitstreams: Path = ROOT / "bitstreams") -> dict:
    """Measure the relay's weights against model `against` on `images` (held-out names or files)
    and ship them if their pooled bits/dim are at least `min_gain` percent lower; `out` may hold
    "{step}". Returns the decision and the pooled numbers. eval_on: the crops export reports its
    quantization loss on; zoo_dir / aliases_file / bitstreams: where shipping writes (tests point
    them elsewhere)."""
    from hiercodec import zoo
    from hiercodec.bench.lossless import load_targets, markdown, run_bench, write_output
    from hiercodec.train.checkpoint import checkpoint_file, read_meta
    from hiercodec.export.run import export_run

    zoo_dir = zoo_dir or zoo.ZOO_DIR
    aliases_file = aliases_file or zoo.ALIASES_FILE
    photos = load_targets(images)
    incumbent = zoo.load(against)
    with tempfile.TemporaryDirectory() as scratch, model_folder(Path(scratch)):
        # a snapshot: a running stint replaces its checkpoint every few minutes, and the id must
        # name the step of the weights exported (pixelcnn-r2850 holds step 3050's: read apart)
        snapshot = Path(scratch) / "checkpoint.safetensors"
        shutil.copy2(checkpoint_file(run_dir), snapshot)
        step = read_meta(snapshot)["step"]
        name = f"pixelcnn-r{step}"
        if (zoo_dir / name).exists():
            raise click.ClickException(f"{name} is already in the zoo: the relay has not moved since it shipped")
        report = export_run(snapshot, name, eval_on=eval_on)
        click.echo(f"relay: exported {name}: float {report['float_bpd']:.4f}, exact {report['exact_bpd']:.4f} "
                   f"bits/dim on {eval_on} crops ({report['loss_percent']:+.2f}% from quantization)")
        candidate = zoo.load(name)
        result = run_bench(photos, [candidate, incumbent], [],
                           on_step=lambda image, codec: click.echo(f"  {image}: {codec} done", err=True))
        target = Path(str(out).format(step=step))
        target.parent.mkdir(parents=True, exist_ok=True)
        write_output(result, target, force=True)
        click.echo(markdown(result))
        pooled = result.overall()
        ours, theirs = pooled[name].bits_per_dim, pooled[incumbent.id].bits_per_dim
        gain = 100 * (1 - ours / theirs)
        better = gain >= min_gain
        decision = {"candidate": name, "against": incumbent.id, "candidate_bpd": ours, "against_bpd": theirs,
                    "gain_percent": gain, "min_gain_percent": min_gain, "better": better,
                    "shipped": better and not dry_run, "bench": str(target)}
        click.echo(f"relay: {name} {ours:.4f} vs {incumbent.id} {theirs:.4f} bits/dim pooled ({gain:+.2f}%): "
                   + ("better" if better else f"not better by {min_gain:g}%")
                   + ("" if better and not dry_run else "; nothing shipped"))
        if not decision["shipped"]:
            return decision
        shutil.copytree(Path(scratch) / name, zoo_dir / name)
    aliases = json.loads(aliases_file.read_text())
    aliases["default"] = name
    tmp = aliases_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(aliases, indent=1) + "\n")
    os.replace(tmp, aliases_file)
    zoo.ALIASES["default"] = name  # this process's view (the golden files are written with it)
    golden = make_golden(bitstreams)
    names = golden.add_shipped(name, bitstreams / golden.SHIPPED.name)
    args = ["--out", str(bitstreams)] + [a for n in names for a in ("--only", n)]
    if golden.main(args) != 0:
        raise click.ClickException(f"golden files of {name} could not be written")
    click.echo(f"relay: shipped {name} as the default; golden files {', '.join(names)}. Commit "
               f"{zoo_dir / name}, {aliases_file.name}, the golden files and {target}.")
    return decision
