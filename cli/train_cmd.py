"""`hiercodec train` and `hiercodec export`: thin wrappers of hiercodec.train.loop and .export."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from hiercodec.errors import HiercodecError
from hiercodec.train.config import load_config
from hiercodec.train.tasks import TRAINABLE


@click.command(short_help="Train a model family on the training photos or your images.")
@click.argument("family", type=click.Choice(TRAINABLE))
@click.option("--config", "-c", "config_name", metavar="NAME",
              help="Training config: a name from hiercodec/train/configs (default: FAMILY, the paper's "
                   "setting; FAMILY-small trains on a CPU in minutes) or a path to a .toml file.")
@click.option("--data", metavar="DATASET|DIR",
              help="Training data instead of the config's: photos, mnist, binarized-mnist, fashion-mnist, "
                   "or a folder of images.")
@click.option("--eval-data", metavar="heldout|DATASET|DIR|none",
              help="Data whose bits/dim are measured during training (default: the config's).")
@click.option("--out", "-o", type=click.Path(path_type=Path), metavar="DIR",
              help="Run folder for checkpoints and log.jsonl [default: runs/CONFIG].")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint.")
@click.option("--steps", type=click.IntRange(1), help="Total steps to train to (default: the config's).")
@click.option("--minutes", type=click.FloatRange(0, min_open=True),
              help="Stop (with a checkpoint) after this many minutes; --resume goes on later.")
@click.option("--init-from", metavar="CHECKPOINT|MODEL",
              help="Start a new run from the averaged weights of another run, or from an installed "
                   "pixelcnn model's weights made float again (a deeper network grows from a shallower "
                   "one: its extra layers start as identities).")
@click.option("--threads", type=click.IntRange(1), help="torch CPU threads (default: torch's choice).")
def train(family: str, config_name: str | None, data: str | None, eval_data: str | None, out: Path | None,
          resume: bool, steps: int | None, minutes: float | None, init_from: str | None,
          threads: int | None) -> None:
    """Train FAMILY with a config of hiercodec/train/configs and write checkpoints to --out.

    Runs on the GPU when torch sees one (bfloat16 autocast where the config says amp), on the CPU
    otherwise; under torchrun it trains on every process with DistributedDataParallel. Every
    log_every steps a line goes to DIR/log.jsonl (bits/dim, learning rate, gradient norm), and the
    bits/dim of the Polyak-averaged weights on held-out data every eval_every steps. Ctrl-C, or SIGTERM
    (`kill PID`, for a run in the background), saves a checkpoint; --resume continues it exactly.

    \b
    Examples:
      hiercodec train pixelcnn --config pixelcnn-small --out runs/small --steps 100
      hiercodec train pixelcnn --config pixelcnn-codec --data ~/photos --out runs/mine
      hiercodec train pixelcnn --out runs/mine --resume
      torchrun --nproc-per-node 4 "$(which hiercodec)" train pixelcnn --config pixelcnn --out runs/big
      hiercodec export runs/small --name my-model
    """
    from hiercodec.train.loop import stop_on_sigterm, train as run

    if threads:
        import torch

        torch.set_num_threads(threads)
    config = _resumed_config(out) if resume and config_name is None else None
    config = config or load_config(config_name or family)
    if config.family != family:
        raise HiercodecError(f"config {config.name!r} is for family {config.family!r}, not {family!r}")
    config = config.with_train(data=_data_spec(data), eval_data=_data_spec(eval_data), steps=steps)
    out = out or Path("runs") / config.name
    stop_on_sigterm()
    try:
        summary = run(out, config, resume=resume, minutes=minutes, progress=sys.stderr.isatty(),
                      init_from=init_from)
    except KeyboardInterrupt:
        raise HiercodecError(f"interrupted; the checkpoint in {out} is saved: add --resume to continue") from None
    click.echo(json.dumps(summary))


def _resumed_config(out: Path | None):
    """The config a run in `out` was started with (a resumed run without --config keeps its own)."""
    from hiercodec.train import checkpoint
    from hiercodec.train.config import RunConfig

    if out is None or not checkpoint.checkpoint_file(out).is_file():
        return None
    return RunConfig.from_dict(checkpoint.read_meta(out)["config"])


def _data_spec(spec: str | None) -> str | None:
    """Folders as absolute paths, so a resumed run finds them from any directory."""
    if spec is not None and Path(spec).expanduser().is_dir():
        return str(Path(spec).expanduser().resolve())
    return spec


@click.command(short_help="Export a training checkpoint as an exact model.")
@click.argument("checkpoint", metavar="CHECKPOINT", type=click.Path(exists=True, path_type=Path))
@click.option("--name", "-n", required=True, help="Model id to create (1-64 of a-z 0-9 . _ -); never reused.")
@click.option("--zoo", is_flag=True, help="Write into the shipped zoo (for developers) instead of your model folder.")
@click.option("--weights", type=click.Choice(["ema", "model"]), default="ema", show_default=True,
              help="The Polyak/EMA average or the latest weights.")
@click.option("--description", default="", help="One line shown by `hiercodec models`.")
@click.option("--eval-on", default="train", show_default=True, metavar="train|heldout|DATASET",
              help="Crops on which the float and exact bits/dim are compared.")
@click.option("--tile", type=click.IntRange(min=2), default=None, metavar="N",
              help="Tile side the codec cuts images into (default: the config's). Smaller tiles decode "
                   "in fewer steps, more tiles per step, at some cost in bits at tile borders.")
@click.option("--band/--no-band", default=None,
              help="pixelvae, agave: code each row of tiles as one bits-back sample, decoded as one batch "
                   "(faster), instead of each tile (default: the config's `band`).")
@click.option("--force", is_flag=True, help="Replace a model of yours with the same id.")
def export(checkpoint: Path, name: str, zoo: bool, weights: str, description: str, eval_on: str,
           tile: int | None, band: bool | None, force: bool) -> None:
    """Turn CHECKPOINT (a run folder or its checkpoint.safetensors) into an exact integer model
    that `hiercodec compress --model NAME` uses.

    Activation ranges are calibrated on crops of the run's training data; the float and exact
    bits/dim on evaluation crops are printed (the cost of quantization). Models go to
    $HIERCODEC_MODELS (default ~/.local/share/hiercodec/models); `hiercodec models` lists them.
    """
    from hiercodec.export.run import export_run

    report = export_run(checkpoint, name, zoo=zoo, weights=weights, description=description,
                        eval_on=eval_on, force=force, tile=tile, band=band)
    click.echo(f"exported {name} to {report['path']}: float {report['float_bpd']:.4f} bits/dim, exact "
               f"{report['exact_bpd']:.4f} bits/dim ({report['loss_percent']:+.2f}% from quantization)"
               + (f"; {report['constrained_bpd']:.4f} bits/dim with consistency-constrained coding"
                  if "constrained_bpd" in report else ""))

