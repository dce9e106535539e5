"""CPU training speed of the relay's candidate: float32 against bfloat16 autocast (these CPUs have
AVX-512 BF16), 1 and 2 torch threads, with and without torch.compile; and the held-out bits/dim
after the same number of steps in float32 and bfloat16 (docs/RESULTS.md, section 7).

Every run starts from the same weights (the relay config's `--init-from`, the shipped default
made float) on the same data stream, in a fresh folder under --work.

    python benchmarks/train_speed.py --speed-steps 40 --quality-steps 0 --out speed.json    # both cores, nothing else running
    python benchmarks/train_speed.py --speed-steps 0 --quality-steps 400 --out quality.json  # one core
    python benchmarks/train_speed.py --speed-steps 0 --quality-steps 0 --compact-steps 400 --work W --out compact.json
    python benchmarks/train_speed.py --rounding-of W/compact-False   # what one compact save changes
"""

from __future__ import annotations

import hiercodec  # noqa: F401  (first: the OpenMP wait policy must be set before torch loads)

import json
import shutil
import tempfile
from pathlib import Path

import click
import numpy as np
import torch

from hiercodec.train.config import load_config
from hiercodec.train.datasets import open_dataset
from hiercodec.train.loop import LOG, eval_crops, train

LOG_EVERY = 10


def one_run(work: Path, name: str, config, *, steps: int, threads: int, bf16: bool, compiled: bool,
            init_from: str, images, crops: np.ndarray | None, compact: bool = False) -> dict:
    """Train `steps` steps; seconds per step from the log (after the first LOG_EVERY steps, so
    compilation and the first evaluation are not counted) and the held-out bits/dim at the end."""
    out = work / name
    shutil.rmtree(out, ignore_errors=True)
    # compact: a compact save (rounding the live state to 16 bits) at every log step, 30 times as
    # often as the relay's saves every 5 minutes: the worst case of what compact checkpoints cost
    config = config.with_train(steps=steps, amp_cpu=bf16, amp=bf16, compile=compiled, log_every=LOG_EVERY,
                               eval_every=steps if crops is not None else 10**9,
                               save_every_s=0.0 if compact else 1e9, compact_checkpoint=compact)
    torch.set_num_threads(threads)
    summary = train(out, config, init_from=init_from, images=images, eval_images=crops, progress=False)
    records = [json.loads(line) for line in (out / LOG).read_text().splitlines()]
    timed = [r for r in records if "elapsed_s" in r]
    first, last = timed[0], timed[-1]
    row = {"run": name, "threads": threads, "bf16": bf16, "compile": compiled, "compact": compact, "steps": steps,
           "s_per_step": (last["elapsed_s"] - first["elapsed_s"]) / (last["step"] - first["step"]),
           "train_bpd_last": last.get("bpd")}
    if crops is not None:
        row["heldout_bpd"] = summary["eval_bpd"]
    print(json.dumps(row), flush=True)
    return row


def rounding_cost(run: Path, crops: np.ndarray) -> dict:
    """What one compact save does to the end state of a (full-precision) run: the held-out bits/dim
    of the average before and after, the largest change of the average relative to its distance
    from the weights, and the relative L2 change of Adam's next update direction."""
    from hiercodec.train import checkpoint
    from hiercodec.train.config import RunConfig
    from hiercodec.train.loop import evaluate
    from hiercodec.train.tasks import task_for

    tensors, meta = checkpoint.read(run)
    rounded = checkpoint.expand(checkpoint.compact(tensors))
    task = task_for(RunConfig.from_dict(meta["config"]))
    model = task.build()
    out = {}
    for name, t in (("heldout_bpd_full", tensors), ("heldout_bpd_compact", rounded)):
        model.load_state_dict({k[4:]: v for k, v in t.items() if k.startswith("ema.")})
        out[name] = evaluate(task, model, crops, torch.device("cpu"))
    out["ema_change_max"] = max(float((tensors[k] - rounded[k]).norm() / (tensors[k] - tensors["model." + k[4:]]).norm())
                                for k in tensors if k.startswith("ema.") and tensors[k].ndim > 0)
    num = den = 0.0
    for k in tensors:
        if k.startswith("opt.") and k.endswith(".exp_avg"):
            sq = k[: -len("exp_avg")] + "exp_avg_sq"
            u = tensors[k] / (tensors[sq].sqrt() + 1e-8)
            num += float(((u - rounded[k] / (rounded[sq].sqrt() + 1e-8)) ** 2).sum())
            den += float((u ** 2).sum())
    out["adam_update_change"] = (num / den) ** 0.5
    return out


@click.command()
@click.option("--config", "config_name", default="pixelcnn-relay", show_default=True)
@click.option("--init-from", default="pixelcnn-s2", show_default=True, help="Checkpoint or installed model.")
@click.option("--speed-steps", default=60, show_default=True, help="Steps of each timing run (0: none).")
@click.option("--quality-steps", default=400, show_default=True,
              help="Steps of the float32 and bfloat16 runs whose held-out bits/dim are compared (0: none).")
@click.option("--compact-steps", default=0, show_default=True,
              help="Steps of two runs in the relay's setting, with and without a compact save every "
                   f"{LOG_EVERY} steps, whose held-out bits/dim are compared (0: none).")
@click.option("--rounding-of", type=click.Path(exists=True, path_type=Path), default=None,
              help="A run folder with a full-precision checkpoint: print what a compact save changes in it.")
@click.option("--compile/--no-compile", "try_compile", default=True, show_default=True,
              help="Also time torch.compile.")
@click.option("--work", type=click.Path(path_type=Path), default=None, help="Scratch folder (default: a temp one).")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="JSON of every row.")
def main(config_name: str, init_from: str, speed_steps: int, quality_steps: int, compact_steps: int,
         rounding_of: Path | None, try_compile: bool, work: Path | None, out: Path | None) -> None:
    config = load_config(config_name)
    if rounding_of is not None:
        crops = eval_crops(config.train.eval_data, config.train.eval_crops, config.train.eval_patch)
        print(json.dumps(rounding_cost(rounding_of, crops)))
        return
    images = open_dataset(config.train.data)
    crops = eval_crops(config.train.eval_data, config.train.eval_crops, config.train.eval_patch)
    work = work or Path(tempfile.mkdtemp(prefix="train-speed-"))
    rows = []
    for compiled in ((False, True) if try_compile else (False,)) if speed_steps else ():
        for bf16 in (False, True):
            for threads in (1, 2):
                name = f"{'bf16' if bf16 else 'fp32'}-t{threads}{'-compile' if compiled else ''}"
                try:
                    rows.append(one_run(work, name, config, steps=speed_steps, threads=threads, bf16=bf16,
                                        compiled=compiled, init_from=init_from, images=images, crops=None))
                except Exception as err:  # torch.compile needs a C++ compiler; report, go on
                    rows.append({"run": name, "error": f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"})
                    print(json.dumps(rows[-1]), flush=True)
    if quality_steps:  # float32 against the relay's setting (bf16, compiled where --compile)
        for bf16, compiled in ((False, False), (True, try_compile)):
            rows.append(one_run(work, f"quality-{'bf16' if bf16 else 'fp32'}{'-compile' if compiled else ''}", config,
                                steps=quality_steps, threads=1, bf16=bf16, compiled=compiled, init_from=init_from,
                                images=images, crops=crops))
    if compact_steps:
        for compact in (False, True):
            rows.append(one_run(work, f"compact-{compact}", config, steps=compact_steps, threads=1, bf16=True,
                                compiled=try_compile, init_from=init_from, images=images, crops=crops,
                                compact=compact))
    print("\n| run | threads | bf16 | compile | s/step | held-out bpd |\n|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['run']} | | | | failed: {r['error']} | |")
        else:
            print(f"| {r['run']} | {r['threads']} | {r['bf16']} | {r['compile']} | {r['s_per_step']:.3f} | "
                  f"{r.get('heldout_bpd', float('nan')):.4f} |")
    if out:
        out.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
