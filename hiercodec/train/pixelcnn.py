"""Train the `pixelcnn` family on patches of the training photos.

    python -m hiercodec.train.pixelcnn --out runs/default --minutes 90

Optimiser as in Kolesnikov & Lampert 2017 sec. 4.2: Adam, learning rate 0.001, exponential decay
per step; Polyak averaging of the weights as in De Fauw et al. 2019 appendix A (their 0.9999 is for
300k steps; the decay here is a flag). Resumes from `--out` when a checkpoint is there.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import click
import numpy as np
import torch
from tqdm import tqdm

from hiercodec.families.pixelcnn_config import PixelCNNConfig, to_input
from hiercodec.nn.mixture import nll_bits
from hiercodec.train import checkpoint
from hiercodec.train.data import load_images, prepare, random_patches

GRAY_EVERY = 10  # one batch in ten is gray (replicated), so gray images are coded well too


def gray_replicated(batch: np.ndarray) -> np.ndarray:
    """ITU-R 601 luma rounded, replicated to three channels (what the codec feeds for gray images)."""
    b = batch.astype(np.int32)
    y = (b[..., 0] * 299 + b[..., 1] * 587 + b[..., 2] * 114 + 500) // 1000
    return np.repeat(y[..., None], 3, axis=-1).astype(np.uint8)


def train(out: Path, config: PixelCNNConfig, *, steps: int, minutes: float, batch: int, patch: int,
          lr: float, lr_decay: float, ema_decay: float, seed: int, log_every: int = 50,
          save_every_s: float = 300.0, images: list[np.ndarray] | None = None,
          reset_ema: bool = False) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = config.build()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    step = 0
    ema = {k: v.detach().clone() for k, v in model.state_dict().items()}
    if (out / checkpoint.FILE).exists():
        meta, ema = checkpoint.load(out, model=model, optimizer=opt, rng=rng)
        step = meta["step"]
        if meta["config"] != config.to_dict():
            raise click.ClickException(f"{out} holds a run with another config: {meta['config']}")
        if reset_ema:
            ema = {k: v.detach().clone() for k, v in model.state_dict().items()}
    ema_start = step if reset_ema else 0
    if images is None:
        images = load_images(prepare())
    batches = random_patches(images, patch, batch, rng)
    log = (out / "log.jsonl").open("a")
    start = last_save = time.time()
    bar = tqdm(total=steps, initial=step, desc="train pixelcnn", unit="step")
    running = None
    while step < steps and (time.time() - start) < minutes * 60:
        x = next(batches)
        gray = step % GRAY_EVERY == GRAY_EVERY - 1
        if gray:
            x = gray_replicated(x)
        xt = torch.from_numpy(x).permute(0, 3, 1, 2)
        bits = nll_bits(model(to_input(xt)), xt, config.mixtures, channels=1 if gray else 3)
        loss = bits.mean() / (patch * patch * (1 if gray else 3))  # bits/dim
        opt.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 100.0)
        opt.step()
        for g in opt.param_groups:
            g["lr"] *= lr_decay
        step += 1
        decay = min(ema_decay, (1 + step - ema_start) / (10 + step - ema_start))  # warm-up
        with torch.no_grad():
            for k, v in model.state_dict().items():
                ema[k].mul_(decay).add_(v.detach(), alpha=1 - decay) if v.is_floating_point() else ema[k].copy_(v)
        if not gray:
            running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        bar.update(1)
        if step % log_every == 0:
            rec = {"step": step, "bpd": loss.item(), "bpd_avg": running, "gray": gray,
                   "grad_norm": float(grad_norm), "lr": opt.param_groups[0]["lr"], "time": time.time()}
            log.write(json.dumps(rec) + "\n")
            log.flush()
            bar.set_postfix(bpd=f"{running:.3f}")
        if time.time() - last_save > save_every_s:
            _save(out, model, ema, opt, rng, step, config)
            last_save = time.time()
    _save(out, model, ema, opt, rng, step, config)
    bar.close()
    return {"step": step, "bpd_avg": running}


def _save(out, model, ema, opt, rng, step, config):
    checkpoint.save(out, model=model, ema=ema, optimizer=opt, rng=rng,
                    meta={"step": step, "config": config.to_dict(), "family": "pixelcnn"})


@click.command()
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Run folder (resumed if present).")
@click.option("--steps", default=1_000_000, help="Stop after this many steps in total.")
@click.option("--minutes", default=60.0, help="Stop after this many minutes of this invocation.")
@click.option("--batch", default=8, help="Patches per step.")
@click.option("--patch", default=64, help="Patch side in pixels.")
@click.option("--lr", default=1e-3, help="Adam learning rate (Kolesnikov & Lampert 2017, sec. 4.2).")
@click.option("--lr-decay", default=0.99999, help="Learning-rate decay per step.")
@click.option("--ema-decay", default=0.999, help="Polyak averaging decay.")
@click.option("--channels", default=PixelCNNConfig.channels)
@click.option("--layers", default=PixelCNNConfig.layers)
@click.option("--mixtures", default=PixelCNNConfig.mixtures)
@click.option("--threads", default=2, help="torch CPU threads.")
@click.option("--seed", default=0)
@click.option("--reset-ema", is_flag=True, help="On resume, restart the average from the current weights.")
def main(out, steps, minutes, batch, patch, lr, lr_decay, ema_decay, channels, layers, mixtures, threads, seed,
         reset_ema):
    """Train (or resume) a gated PixelCNN with a logistic-mixture head on the training photos."""
    torch.set_num_threads(threads)
    config = PixelCNNConfig(channels=channels, layers=layers, mixtures=mixtures)
    result = train(out, config, steps=steps, minutes=minutes, batch=batch, patch=patch, lr=lr,
                   lr_decay=lr_decay, ema_decay=ema_decay, seed=seed, reset_ema=reset_ema)
    click.echo(json.dumps(result))


if __name__ == "__main__":
    main()
