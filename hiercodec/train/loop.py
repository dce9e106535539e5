"""The training loop shared by every family: CPU or CUDA, one process or many (torchrun +
DistributedDataParallel), Adam or Adamax with exponential learning-rate decay, dropout (in the
network), gradient clipping, Polyak/EMA weights, bfloat16 autocast on CUDA, bits/dim on held-out
data during training, a JSONL log, and checkpoints that resume exactly.

    hiercodec train pixelcnn --config pixelcnn-small --out runs/small
    torchrun --nproc-per-node 8 "$(which hiercodec)" train pixelcnn --config pixelcnn --out runs/big
"""

from __future__ import annotations

import json
import math
import os
import signal
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from tqdm import tqdm

from hiercodec.errors import HiercodecError
from hiercodec.train import checkpoint
from hiercodec.train.config import RunConfig, TrainSettings
from hiercodec.train.datasets import ImageSet, open_dataset, to_gray
from hiercodec.train.tasks import task_for

LOG = "log.jsonl"
BEST = "best"  # the folder of the best held-out checkpoint (keep_best)
# settings a resumed run takes from the config it is given rather than from its checkpoint: how it
# runs and how it averages, never what the weights learn
RUNTIME_SETTINGS = ("steps", "amp", "amp_cpu", "compile", "save_every_s", "ema_warmup", "keep_best")
EVAL_BATCH = 16


@dataclass(frozen=True)
class Placement:
    """Where this process runs: its rank among `world` processes and its torch device."""

    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0


def place() -> Placement:
    """Join the torchrun process group when launched by torchrun, else run alone."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = torch.cuda.is_available()
    if world == 1:
        return Placement(device=torch.device("cuda" if cuda else "cpu"))
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if cuda:
        torch.cuda.set_device(local)
    return Placement(dist.get_rank(), dist.get_world_size(), torch.device(f"cuda:{local}" if cuda else "cpu"))


def eval_crops(spec: str, crops: int, size: int) -> np.ndarray | None:
    """The fixed evaluation crops of a run: `crops` per image of the held-out photos ("heldout")
    or of a dataset (at most 64 images of it), drawn with a fixed seed; None for "none"."""
    if spec == "none":
        return None
    if spec == "heldout":
        from hiercodec.bench.heldout import heldout_images

        images = ImageSet(list(heldout_images().values()), "heldout")
    else:
        images = open_dataset(spec)
    n = crops * min(len(images.images), 64)
    patch = size if images.images[0].shape[0] >= size and images.images[0].shape[1] >= size else None
    return next(images.batches(patch, n, np.random.default_rng(1234), flip=False))


def evaluate(task, model: torch.nn.Module, crops: np.ndarray, device: torch.device) -> float:
    """Bits/dim of the float model on the evaluation crops."""
    model.eval()
    total = 0.0
    with torch.no_grad():
        for i in range(0, len(crops), EVAL_BATCH):
            total += float(task.bits(model, torch.from_numpy(crops[i : i + EVAL_BATCH]).to(device)).sum())
    model.train()
    return total / crops.size


class Objective(torch.nn.Module):
    """A task's training loss as the forward of one module: DistributedDataParallel must run the
    forward of the module it wraps to synchronise gradients, and the families with several networks
    (a ModuleDict, which has no forward) are driven by their task. Returns (loss, what to log)."""

    def __init__(self, task, model: torch.nn.Module):
        super().__init__()
        self.task, self.model = task, model

    def forward(self, x: torch.Tensor, step: int) -> tuple[torch.Tensor, dict]:
        if self.task.own_loss:  # families whose loss is not only bits (an autoencoder stage)
            return self.task.loss(self.model, x, step)
        return self.task.bits(self.model, x).sum() / x.numel(), {}  # bits/dim


def initial_weights(task, source: str | os.PathLike) -> tuple[dict, dict[str, torch.Tensor]]:
    """(where they came from, float weights) to start a run from: the averaged weights of a run
    folder or checkpoint file, or else an installed model's exact weights made float again (the
    family's `dequantize`), for when the float run behind a shipped model is lost."""
    path = Path(source)
    if path.exists():
        meta, weights = checkpoint.load_weights(path, "ema")
        return {"init_from": str(path.resolve()), "init_step": meta["step"]}, weights
    from hiercodec.errors import ModelNotFoundError
    from hiercodec.zoo import read_model

    try:
        info, tensors, config = read_model(str(source))
    except ModelNotFoundError as err:
        raise HiercodecError(f"--init-from {source}: no such checkpoint, and {err}") from None
    if config.get("family") != task.family or not task.dequantizes:
        raise HiercodecError(f"--init-from {source}: a {task.family} run starts from a checkpoint"
                             + (f" or an installed {task.family} model" if task.dequantizes else "")
                             + f", and {info.id} is a {config.get('family')} model")
    return ({"init_from": f"model:{info.id}", "init_step": config.get("training", {}).get("steps", 0)},
            task.dequantize(tensors, config))


def learning_rate(s: TrainSettings, step: int) -> float:
    """lr * lr_decay^step, ramped up linearly over the first `warmup` steps; from the step alone,
    so a resumed run continues the schedule."""
    ramp = min(1.0, (step + 1) / s.warmup) if s.warmup else 1.0
    return s.lr * s.lr_decay ** step * ramp


def _optimizer(name: str, params, lr: float) -> torch.optim.Optimizer:
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    if name == "adamax":
        return torch.optim.Adamax(params, lr=lr)
    raise HiercodecError(f"unknown optimizer {name!r}; use adam or adamax")


def _ema_update(ema: dict[str, torch.Tensor], model: torch.nn.Module, decay: float) -> None:
    with torch.no_grad():
        for k, v in model.state_dict().items():
            if v.is_floating_point():
                ema[k].mul_(decay).add_(v.detach(), alpha=1 - decay)
            else:
                ema[k].copy_(v)


def _truncate_log(path: Path, step: int) -> None:
    """Drop log records written after the checkpoint a run resumes from (they will be redone)."""
    if not path.exists():
        return
    kept = [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] <= step]
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(line + "\n" for line in kept))
    os.replace(tmp, path)


def _agree(flags: list[bool], where: Placement) -> list[bool]:
    """Process 0's decisions (save, stop), shared so that every process acts alike."""
    if where.world > 1:
        box = [flags]
        dist.broadcast_object_list(box, src=0)
        return box[0]
    return flags


def _rng_states(rng: np.random.Generator, where: Placement) -> list[dict]:
    if where.world == 1:
        return [rng.bit_generator.state]
    states: list = [None] * where.world
    dist.all_gather_object(states, rng.bit_generator.state)
    return states


def stop_on_sigterm() -> None:
    """Make SIGTERM (`kill PID`, a scheduler's stop, `relay.py stop`) end a training run as Ctrl-C
    does, with its checkpoint saved: a run started in the background (`nohup ... &`) ignores SIGINT,
    so without this the only way to stop it lost the steps since its last save."""
    signal.signal(signal.SIGTERM, _interrupt)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def train(out: Path, config: RunConfig, *, resume: bool = False, minutes: float | None = None,
          progress: bool = True, images: ImageSet | None = None, eval_images: np.ndarray | None = None,
          init_from: str | os.PathLike | None = None) -> dict:
    """Train (or with `resume`, continue) the run in folder `out`; returns a summary.

    `images` / `eval_images` replace the datasets named by the config (tests use small arrays).
    Stops after config.train.steps steps in total, or `minutes` of this call, or Ctrl-C; saves a
    checkpoint on every way out. `init_from` (a checkpoint, or an installed model's id) starts a new
    run from its weights (`initial_weights`), as far as the family's `warm_start` can map them (a
    deeper network grows from a shallower)."""
    where = place()
    ckpt = out / checkpoint.FILE
    if ckpt.exists() and not resume:
        raise HiercodecError(f"{out} already holds a run; pass --resume to continue it or choose another --out")
    if resume and ckpt.exists():
        _, meta = checkpoint.read(out)
        stored = RunConfig.from_dict(meta["config"])
        if (stored.family, stored.network) != (config.family, config.network):
            raise HiercodecError(f"{out} holds a run of another network ({stored.family} {stored.network}); "
                                 "choose another --out")
        # how the run executes may change between stints (a GPU's bf16, compile); what it learns may not
        config = stored.with_train(**{k: getattr(config.train, k) for k in RUNTIME_SETTINGS})
    s = config.train
    if s.batch % where.world:
        raise HiercodecError(f"batch {s.batch} does not split over {where.world} processes")
    task = task_for(config)
    torch.manual_seed(s.seed + where.rank)
    rng = np.random.default_rng(s.seed + where.rank)
    model = task.build().to(where.device)
    origin: dict = {}  # where a warm-started run began, kept in its log and checkpoints
    if init_from is not None and not (resume and ckpt.exists()):
        origin, weights = initial_weights(task, init_from)
        task.warm_start(model, weights)
    opt = _optimizer(s.optimizer, model.parameters(), s.lr)
    ema = {k: v.detach().clone() for k, v in model.state_dict().items()}
    step = 0
    if resume and ckpt.exists():
        meta, ema = checkpoint.load(out, model=model, optimizer=opt, rng=rng, rank=where.rank)
        ema = {k: v.to(where.device) for k, v in ema.items()}
        step, origin = meta["step"], meta.get("origin", {})
    net: torch.nn.Module = Objective(task, model)
    if where.world > 1:
        # a task that trains only some of its networks at a step (vqvae2's stages) says so
        net = torch.nn.parallel.DistributedDataParallel(
            net, device_ids=[where.device.index] if where.device.type == "cuda" else None,
            find_unused_parameters=task.unused_parameters)
    data = images if images is not None else open_dataset(s.data)
    batches = data.batches(s.patch or None, s.batch // where.world, rng)
    crops = eval_images if eval_images is not None else (eval_crops(s.eval_data, s.eval_crops, s.eval_patch)
                                                         if where.main else None)
    amp = nullcontext()
    if s.amp_cpu if where.device.type == "cpu" else s.amp:  # amp: on the GPU; amp_cpu: on the CPU
        amp = torch.autocast(where.device.type, dtype=torch.bfloat16)
    step_fn = net
    if s.compile:
        import torch._dynamo as dynamo

        # where compiling fails (no C++ compiler here), run that code eagerly: same math, slower
        dynamo.config.suppress_errors = True
        step_fn = torch.compile(net)
    eval_model = task.build().to(where.device) if crops is not None else None

    log = None
    if where.main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(config.to_dict(), indent=1) + "\n")
        _truncate_log(out / LOG, step)
        log = (out / LOG).open("a")

    def write(record: dict) -> None:
        if log is not None:
            log.write(json.dumps(record) + "\n")
            log.flush()

    def save() -> None:
        states = _rng_states(rng, where)
        if where.main:
            checkpoint.save(out, model=model, ema=ema, optimizer=opt, rng_states=states,
                            meta={"step": step, "config": config.to_dict(), "family": config.family,
                                  "origin": origin}, compact16=s.compact_checkpoint)
        elif s.compact_checkpoint:
            checkpoint.round16(model, ema, opt)

    best = out / BEST
    best_bpd = [checkpoint.read_meta(best)["eval_bpd"] if checkpoint.checkpoint_file(best).is_file() else math.inf]

    def run_eval() -> float | None:
        if eval_model is None or not where.main:
            return None
        eval_model.load_state_dict(ema)
        bpd = evaluate(task, eval_model, crops, where.device)
        write({"step": step, "eval_bpd": bpd, "eval_data": s.eval_data, "weights": "ema", "time": time.time()})
        if s.keep_best and bpd < best_bpd[0]:
            best_bpd[0] = bpd  # a full-precision copy: the live run's states stay as they are
            checkpoint.save(best, model=model, ema=ema, optimizer=opt, rng_states=[rng.bit_generator.state],
                            meta={"step": step, "config": config.to_dict(), "family": config.family,
                                  "origin": origin, "eval_bpd": bpd})
        return bpd

    start = last_save = time.time()
    window: dict[str, list[float]] = {"rgb": [], "gray": []}
    grad_norms: list[float] = []
    parts: dict[str, list[float]] = {}  # what a task's loss reports besides the loss
    eval_bpd = None
    bar = tqdm(total=s.steps, initial=step, desc=f"train {config.name}", unit="step",
               disable=not (progress and where.main))
    if step == 0:
        if origin:
            write({"step": 0, **origin, "time": time.time()})
        eval_bpd = run_eval()  # the untrained baseline: the first point of the curve
    try:
        while step < s.steps:
            lr = learning_rate(s, step) * task.lr_scale(step)
            for g in opt.param_groups:
                g["lr"] = lr
            x = next(batches)
            gray = s.gray_every > 0 and x.shape[-1] == 3 and step % s.gray_every == s.gray_every - 1
            if gray:
                x = to_gray(x)
            xt = torch.from_numpy(x).to(where.device)
            with amp:
                loss, extra = step_fn(xt, step)
            if not torch.isfinite(loss):
                raise HiercodecError(f"the loss is {loss.item()} at step {step}; the last checkpoint is kept, "
                                     "lower --lr or set clip in the config")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), s.clip if s.clip > 0 else math.inf)
            opt.step()
            step += 1
            # EMA with a warm-up, so early averages are not dominated by the random initialisation
            _ema_update(ema, model, min(s.ema_decay, (1 + step) / (10 + step)) if s.ema_warmup else s.ema_decay)
            window["gray" if gray else "rgb"].append(loss.item())
            for k, v in extra.items():
                parts.setdefault(k, []).append(v)
            grad_norms.append(float(grad_norm))
            bar.update(1)
            if step % s.log_every == 0 or step == s.steps:
                rec = {"step": step, "lr": lr, "grad_norm": float(np.mean(grad_norms)), "time": time.time(),
                       "elapsed_s": time.time() - start}
                for kind, values in window.items():
                    if values:  # a task with its own loss (not only bits) logs its bits itself
                        rec[("loss" if task.own_loss else "bpd") + ("" if kind == "rgb" else "_gray")] = float(np.mean(values))
                rec |= {k: float(np.mean(v)) for k, v in parts.items()}
                write(rec)
                if "bpd" in rec:
                    bar.set_postfix(bpd=f"{rec['bpd']:.3f}")
                window, grad_norms, parts = {"rgb": [], "gray": []}, [], {}
                due = time.time() - last_save > s.save_every_s
                late = minutes is not None and time.time() - start > minutes * 60
                due, late = _agree([due, late], where)
                if due:
                    save()
                    last_save = time.time()
                if late:
                    break
            if step % s.eval_every == 0:
                eval_bpd = run_eval()
    except KeyboardInterrupt:
        save()
        bar.close()
        raise
    save()
    if step % s.eval_every != 0:
        eval_bpd = run_eval()
    bar.close()
    if log is not None:
        log.close()
    return {"step": step, "seconds": time.time() - start, "eval_bpd": eval_bpd, "out": str(out)}
