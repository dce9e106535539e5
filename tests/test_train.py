"""Training: a -small config learns, a resumed (or interrupted) run equals an uninterrupted one,
torchrun/DDP runs, and a trained run exports to a model that compresses and decompresses."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from hiercodec.cli.main import cli
from hiercodec.errors import HiercodecError
from hiercodec.train import checkpoint
from hiercodec.train.config import RunConfig, config_names, load_config
from hiercodec.train.datasets import ImageSet
from hiercodec.train.loop import LOG, train


def smooth_images(n: int, size: int, seed: int = 0) -> list[np.ndarray]:
    """Photos in miniature: smooth colour gradients plus a little noise (learnable quickly)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    out = []
    for _ in range(n):
        a, b, c = rng.uniform(-1, 1, (3, 3))
        planes = [128 + 90 * np.sin(3 * (a[k] * x + b[k] * y) + c[k]) for k in range(3)]
        im = np.stack(planes, -1) + rng.normal(0, 2, (size, size, 3))
        out.append(np.clip(np.rint(im), 0, 255).astype(np.uint8))
    return out


def tiny_config(**train) -> RunConfig:
    base = load_config("pixelcnn-small")
    return RunConfig(base.name, base.family, base.description, dict(base.network, channels=8, layers=1, head=16),
                     base.train).with_train(eval_data="none", **train)


def records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / LOG).read_text().splitlines()]


def test_every_config_loads_and_builds():
    from hiercodec.train.tasks import TRAINABLE, task_for

    names = config_names()
    for family in TRAINABLE:  # every trainable family has its paper, -small and -codec configs
        assert {family, f"{family}-small", f"{family}-codec"} <= set(names)
    for name in names:
        config = load_config(name)
        assert name.split("-")[0] == config.family and config.train.steps > 0
        task_for(config)  # the network fields are valid for the family
        if name.endswith("-small"):
            model = task_for(config).build()
            assert sum(p.numel() for p in model.parameters()) < 50_000  # trains in minutes on 2 cores


def test_config_errors(tmp_path):
    with pytest.raises(HiercodecError, match="no training config"):
        load_config("nope")
    bad = tmp_path / "bad.toml"
    bad.write_text('family = "pixelcnn"\n[network]\n[train]\nlearning_rate = 1\n')
    with pytest.raises(HiercodecError, match="unknown: learning_rate"):
        load_config(str(bad))
    bad.write_text('family = "pixelcnn"\n[network]\n[train]\nsteps = "many"\n')
    with pytest.raises(HiercodecError, match="steps = 'many' should be a int"):
        load_config(str(bad))
    bad.write_text('family = "pixelcnn"\n[network]\nlayerz = 3\n[train]\n')
    from hiercodec.train.tasks import task_for

    with pytest.raises(HiercodecError, match="layerz = 3"):
        task_for(load_config(str(bad)))


@pytest.mark.parametrize("family", ["pixelcnn", "grayscale", "pyramid"])
def test_small_config_loss_falls(tmp_path, family):
    torch.set_num_threads(1)
    images = ImageSet(smooth_images(6, 32), "smooth")
    crops = np.stack([im[:16, :16] for im in smooth_images(4, 32, seed=9)])
    config = load_config(f"{family}-small").with_train(steps=60, log_every=10, eval_every=60, eval_data="given")
    summary = train(tmp_path / "run", config, images=images, eval_images=crops, progress=False)
    log = records(tmp_path / "run")
    evals = [r["eval_bpd"] for r in log if "eval_bpd" in r]
    losses = [r["bpd"] for r in log if "bpd" in r]
    assert summary["step"] == 60 and len(evals) == 2  # before training and at the end
    assert evals[-1] < evals[0] - 1.0, evals  # held-out bits/dim fall by more than a bit
    assert losses[-1] < losses[0] - 1.0, losses
    pytest.importorskip("matplotlib")
    from hiercodec.train.curves import plot_curves

    plot_curves({"small": log}, tmp_path / "curves.png")
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_keep_best_keeps_the_checkpoint_of_the_best_evaluation(tmp_path, monkeypatch):
    """With keep_best, DIR/best holds the checkpoint of the lowest held-out bits/dim so far (here the
    learning rate is absurd, so the run gets worse after its start), and it exports as a model."""
    torch.set_num_threads(1)
    monkeypatch.setenv("HIERCODEC_MODELS", str(tmp_path / "models"))
    images = ImageSet(smooth_images(3, 32), "smooth")
    crops = np.stack([im[:16, :16] for im in smooth_images(2, 32, seed=9)])
    config = tiny_config(steps=12, log_every=2, eval_every=2, keep_best=True, batch=2, patch=16, lr=0.3,
                         warmup=0).with_train(eval_data="given")
    train(tmp_path / "run", config, images=images, eval_images=crops, progress=False)
    evals = {r["step"]: r["eval_bpd"] for r in records(tmp_path / "run") if "eval_bpd" in r}
    step = min(evals, key=evals.get)
    meta = checkpoint.read_meta(tmp_path / "run" / "best")
    assert meta["step"] == step and meta["eval_bpd"] == evals[step] and step < 12, evals
    assert checkpoint.read_meta(tmp_path / "run")["step"] == 12
    from hiercodec.export.run import export_run

    report = export_run(tmp_path / "run" / "best", "best-of-run", images=images, eval_count=1)
    assert (Path(report["path"]) / "weights.safetensors").is_file()


def test_resumed_run_equals_uninterrupted_run(tmp_path):
    torch.set_num_threads(1)
    images = ImageSet(smooth_images(3, 40), "smooth")
    config = tiny_config(steps=6, log_every=1, dropout=0.3, optimizer="adamax", batch=2, patch=16)
    train(tmp_path / "a", config, images=images, progress=False)
    train(tmp_path / "b", config.with_train(steps=3), images=images, progress=False)
    with pytest.raises(HiercodecError, match="--resume"):
        train(tmp_path / "b", config, images=images, progress=False)
    train(tmp_path / "b", config, images=images, resume=True, progress=False)
    ta, ma = checkpoint.read(tmp_path / "a")
    tb, mb = checkpoint.read(tmp_path / "b")
    assert ma["step"] == mb["step"] == 6
    assert ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta)  # model, EMA, optimizer, RNG
    strip = lambda rs: [{k: v for k, v in r.items() if k not in ("time", "elapsed_s")} for r in rs]  # noqa: E731
    assert strip(records(tmp_path / "a")) == strip(records(tmp_path / "b"))


class Interrupting(ImageSet):
    """The photos of `images`, then Ctrl-C after `after` batches (as a person would press it)."""

    def __init__(self, images: list[np.ndarray], after: int):
        super().__init__(images, "interrupting")
        self.after = after

    def batches(self, size, batch, rng, flip=True):
        inner = super().batches(size, batch, rng, flip)
        for _ in range(self.after):
            yield next(inner)
        raise KeyboardInterrupt


def test_interrupted_run_loses_nothing(tmp_path):
    torch.set_num_threads(1)
    ims = smooth_images(3, 40)
    config = tiny_config(steps=5, log_every=1, batch=2, patch=16, save_every_s=1e9)
    train(tmp_path / "a", config, images=ImageSet(ims, "smooth"), progress=False)
    with pytest.raises(KeyboardInterrupt):
        train(tmp_path / "b", config, images=Interrupting(ims, 2), progress=False)
    assert checkpoint.read(tmp_path / "b")[1]["step"] == 2  # saved on the way out
    train(tmp_path / "b", config, images=ImageSet(ims, "smooth"), resume=True, progress=False)
    ta, tb = checkpoint.read(tmp_path / "a")[0], checkpoint.read(tmp_path / "b")[0]
    assert all(torch.equal(ta[k], tb[k]) for k in ta if k.startswith(("model.", "ema.")))


def write_pngs(folder: Path, images: list[np.ndarray]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, im in enumerate(images):
        Image.fromarray(im).save(folder / f"im{i}.png")
    return folder


def test_train_export_compress_decompress(tmp_path, monkeypatch):
    monkeypatch.setenv("HIERCODEC_MODELS", str(tmp_path / "models"))
    torch.set_num_threads(1)
    data = write_pngs(tmp_path / "data", smooth_images(4, 40))
    runner = CliRunner()
    run = tmp_path / "run"
    r = runner.invoke(cli, ["train", "pixelcnn", "--config", "pixelcnn-small", "--data", str(data),
                            "--eval-data", str(data), "--out", str(run), "--steps", "8"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output.strip().splitlines()[-1])["step"] == 8
    r = runner.invoke(cli, ["export", str(run), "--name", "tiny-trained"])
    assert r.exit_code == 0, r.output
    assert "exported tiny-trained" in r.output
    r = runner.invoke(cli, ["export", str(run), "--name", "tiny-trained"])
    assert r.exit_code == 1 and "already installed" in r.output
    r = runner.invoke(cli, ["models"])
    assert "tiny-trained" in r.output
    image = smooth_images(1, 21, seed=5)[0][:, :17]
    Image.fromarray(image).save(tmp_path / "in.png")
    r = runner.invoke(cli, ["compress", "--model", "tiny-trained", str(tmp_path / "in.png"), str(tmp_path / "x.hc")])
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli, ["decompress", str(tmp_path / "x.hc"), str(tmp_path / "back.png")])
    assert r.exit_code == 0, r.output
    assert np.array_equal(np.asarray(Image.open(tmp_path / "back.png")), image)


@pytest.mark.parametrize("family", ["grayscale", "pyramid"])
def test_train_export_compress_auxiliary(family, tmp_path, monkeypatch):
    """The families with auxiliary variables train, export (the exact model's paper bound next to
    the float loss, and the smaller consistency-constrained bound) and round-trip."""
    monkeypatch.setenv("HIERCODEC_MODELS", str(tmp_path / "models"))
    torch.set_num_threads(1)
    data = write_pngs(tmp_path / "data", smooth_images(4, 40))
    runner = CliRunner()
    r = runner.invoke(cli, ["train", family, "--config", f"{family}-small", "--data", str(data),
                            "--eval-data", str(data), "--out", str(tmp_path / "run"), "--steps", "6"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli, ["export", str(tmp_path / "run"), "--name", f"tiny-{family}"])
    assert r.exit_code == 0 and "with consistency-constrained coding" in r.output, r.output
    image = smooth_images(1, 23, seed=6)[0][:, :19]
    Image.fromarray(image).save(tmp_path / "in.png")
    r = runner.invoke(cli, ["verify", "--model", f"tiny-{family}", str(tmp_path / "in.png")])
    assert r.exit_code == 0 and "round trip ok" in r.output and "paper bound" in r.output, r.output
    r = runner.invoke(cli, ["export", str(tmp_path / "run"), "--name", f"tiny-{family}-8", "--tile", "8"])
    assert r.exit_code == 0, r.output
    config = json.loads((tmp_path / "models" / f"tiny-{family}-8" / "config.json").read_text())
    assert config["network"]["tile"] == 8
    r = runner.invoke(cli, ["verify", "--model", f"tiny-{family}-8", str(tmp_path / "in.png")])
    assert r.exit_code == 0 and "round trip ok" in r.output, r.output


def test_train_export_compress_vqvae2(tmp_path, monkeypatch):
    """vqvae2-small trains both stages (the autoencoder for the first steps, then frozen under the
    priors and the pixel level), exports, round-trips losslessly and writes a lossy file."""
    from hiercodec.train.config import CONFIG_DIR

    monkeypatch.setenv("HIERCODEC_MODELS", str(tmp_path / "models"))
    torch.set_num_threads(1)
    data = write_pngs(tmp_path / "data", smooth_images(4, 40))
    text = (CONFIG_DIR / "vqvae2-small.toml").read_text()
    assert "autoencoder_steps = 100" in text and "log_every = 10" in text
    config = tmp_path / "vqvae2-tiny.toml"  # the autoencoder stage short enough for both to run
    config.write_text(text.replace("autoencoder_steps = 100", "autoencoder_steps = 3")
                      .replace("log_every = 10", "log_every = 1"))
    runner = CliRunner()
    r = runner.invoke(cli, ["train", "vqvae2", "--config", str(config), "--data", str(data),
                            "--eval-data", str(data), "--out", str(tmp_path / "run"), "--steps", "6"])
    assert r.exit_code == 0, r.output
    log = [rec for rec in records(tmp_path / "run") if "bpd" in rec]
    assert [rec["step"] for rec in log] == [1, 2, 3, 4, 5, 6]
    assert all("mse" in rec and "bpd_pixels" not in rec for rec in log[:3])  # autoencoder stage
    assert all("bpd_pixels" in rec and "mse" not in rec for rec in log[3:])  # frozen; every level
    r = runner.invoke(cli, ["export", str(tmp_path / "run"), "--name", "tiny-vqvae2-run"])
    assert r.exit_code == 0 and "exported tiny-vqvae2-run" in r.output, r.output
    image = smooth_images(1, 23, seed=6)[0][:, :19]
    Image.fromarray(image).save(tmp_path / "in.png")
    r = runner.invoke(cli, ["verify", "--model", "tiny-vqvae2-run", str(tmp_path / "in.png")])
    assert r.exit_code == 0 and "round trip ok" in r.output, r.output
    from hiercodec import api

    lossy = api.encode(image, "tiny-vqvae2-run", levels=2)
    assert api.info(lossy)["mode"] == "lossy" and api.decode(lossy).shape == image.shape


def test_train_cli_errors(tmp_path):
    runner = CliRunner()
    r = runner.invoke(cli, ["train", "pixelcnn", "--config", "nope", "--out", str(tmp_path / "r")])
    assert r.exit_code == 1 and "no training config 'nope'" in r.output
    r = runner.invoke(cli, ["train", "vqvae9"])
    assert r.exit_code == 2
    r = runner.invoke(cli, ["export", str(tmp_path), "--name", "x"])
    assert r.exit_code == 1 and "checkpoint" in r.output


def hiercodec_script() -> str | None:
    beside = Path(sys.executable).parent / "hiercodec"  # the console script of this environment
    return str(beside) if beside.exists() else shutil.which("hiercodec")


@pytest.mark.skipif(hiercodec_script() is None, reason="the hiercodec console script is not installed")
def test_torchrun_two_processes(tmp_path):
    """DistributedDataParallel over two CPU processes (gloo): both halves of the batch train one model."""
    data = write_pngs(tmp_path / "data", smooth_images(3, 40))
    env = dict(os.environ, OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           hiercodec_script(), "train", "pixelcnn", "--config", "pixelcnn-small", "--data", str(data), "--eval-data", "none",
           "--out", str(tmp_path / "run"), "--steps", "4"]
    # the way the README launches it; not `-m`, which in a source checkout finds ./hiercodec first
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    # the ranks' own errors come first in stderr, torchrun's summary last: show both
    assert done.returncode == 0, done.stderr[:2500] + "\n...\n" + done.stderr[-1000:]
    tensors, meta = checkpoint.read(tmp_path / "run")
    assert meta["step"] == 4 and len(meta["rng_numpy"]) == 2
    assert meta["rng_numpy"][0] != meta["rng_numpy"][1]  # each process draws its own crops


def test_deeper_network_grows_from_shallower_exactly(tmp_path):
    """--init-from: 3 layers started from a trained 1-layer run compute exactly what it computes."""
    torch.set_num_threads(1)
    images = ImageSet(smooth_images(3, 40), "smooth")
    small = tiny_config(steps=3, batch=2, patch=16)
    train(tmp_path / "a", small, images=images, progress=False)
    deep = RunConfig(small.name, small.family, "", dict(small.network, layers=3), small.train)
    from hiercodec.train.tasks import task_for

    source, grown = task_for(small).build().eval(), task_for(deep).build().eval()
    weights = checkpoint.load_weights(tmp_path / "a", "ema")[1]
    source.load_state_dict(weights)
    task_for(deep).warm_start(grown, weights)
    x = torch.from_numpy(np.stack(images.images)).permute(0, 3, 1, 2).float() / 128 - 1
    with torch.no_grad():
        assert torch.equal(source(x), grown(x))
    train(tmp_path / "b", deep.with_train(steps=2), images=images, progress=False, init_from=tmp_path / "a")
    meta = checkpoint.read(tmp_path / "b")[1]
    assert meta["step"] == 2 and meta["origin"]["init_step"] == 3
    assert records(tmp_path / "b")[0]["init_step"] == 3
    wide = RunConfig(small.name, small.family, "", dict(small.network, channels=12), small.train)
    with pytest.raises(HiercodecError, match="does not fit"):
        task_for(wide).warm_start(task_for(wide).build(), weights)


def test_auxiliary_levels_start_from_a_pixelcnn_exactly():
    """--init-from for grayscale/pyramid: every PixelCNN of the pixelcnn's shape starts as that
    network (conditioning projections zero, so the embedding changes nothing yet)."""
    from hiercodec.nn.gated import GatedPixelCNN
    from hiercodec.train.tasks import task_for

    torch.manual_seed(3)
    source = GatedPixelCNN(3, 30, 8, 2, 16).eval()
    for param in source.parameters():  # not the defaults: a copy must show
        param.data.normal_(0, 0.1)
    weights = source.state_dict()
    network = dict(layers=2, channels=8, head=16, mixtures=3, bottom_layers=2, bottom_channels=8, bottom_head=16)
    config = RunConfig("t", "pyramid", "", network, load_config("pyramid-small").train)
    task = task_for(config)
    model = task.build().eval()
    task.warm_start(model, weights)
    x = torch.rand(2, 3, 8, 8) * 2 - 1
    with torch.no_grad():
        assert torch.equal(model["bottom"](x), source(x))
        features = model["embed0"](x[..., :4, :4])
        assert torch.equal(model["cond0"](x, features), source(x))
    gray = RunConfig("t", "grayscale", "", dict(layers=2, channels=8, head=16, mixtures=3),
                     load_config("grayscale-small").train)
    model = task_for(gray).build().eval()
    task_for(gray).warm_start(model, weights)  # the colour network; the 16-way prior starts fresh
    with torch.no_grad():
        assert torch.equal(model["cond"](x, model["embed"](x[:, :1])), source(x))
    with pytest.raises(HiercodecError, match="no PixelCNN"):
        task_for(load_config("pyramid-small")).warm_start(task_for(load_config("pyramid-small")).build(), weights)


def test_learning_rate_warmup_and_decay():
    from hiercodec.train.loop import learning_rate

    s = tiny_config().train.__class__(lr=0.01, lr_decay=0.5, warmup=4)
    assert [learning_rate(s, k) for k in range(5)] == pytest.approx([0.0025, 0.0025, 0.001875, 0.00125, 0.000625])
    assert learning_rate(s.__class__(lr=0.01, lr_decay=0.5), 1) == pytest.approx(0.005)
