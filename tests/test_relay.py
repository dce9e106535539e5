"""The training relay (relay/): compact checkpoints resume exactly, a run starts from an installed
model's weights made float, the relay script's stints start, stop on request and resume, the GPU
script's dry run on the CPU returns files that decode here, and `ship` ships only a better model."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hiercodec.export.hierarchy import export_hierarchy
from hiercodec.export.quantize import dequantize_pixelcnn
from hiercodec.families.pixelcnn_config import PixelCNNConfig
from hiercodec.train import checkpoint
from hiercodec.train.config import load_config
from hiercodec.train.datasets import ImageSet
from hiercodec.export.run import exact_bits
from hiercodec.train.loop import initial_weights, train
from hiercodec.train.tasks import task_for
from hiercodec.zoo import load, read_model

from test_train import smooth_images, tiny_config

ROOT = Path(__file__).resolve().parent.parent
RELAY = ROOT / "relay"
sys.path.insert(0, str(RELAY))

import gpu  # noqa: E402  (relay/gpu.py)
from ship import ship_relay  # noqa: E402  (relay/ship.py)


def _same(a: dict, b: dict) -> list[str]:
    """Keys whose tensors differ (RNG states aside)."""
    return [k for k in a if not k.startswith("rng.") and not torch.equal(a[k], b[k])]


def test_compact_checkpoint_resumes_exactly_and_is_smaller(tmp_path):
    images = ImageSet(smooth_images(4, 24), "t")
    config = tiny_config(steps=8, batch=2, log_every=2, save_every_s=0.0)  # a save at every log step
    for compact in (False, True):
        c = config.with_train(compact_checkpoint=compact)
        a, b = tmp_path / f"a{compact}", tmp_path / f"b{compact}"
        train(a, c, images=images, progress=False)
        train(b, c.with_train(steps=4), images=images, progress=False)
        train(b, c, images=images, progress=True, resume=True)
        ta, tb = checkpoint.read(a)[0], checkpoint.read(b)[0]
        assert sorted(ta) == sorted(tb) and not _same(ta, tb)
    full, small = (checkpoint.checkpoint_file(tmp_path / f"a{c}").stat().st_size for c in (False, True))
    assert small < 0.75 * full
    # what the compact file holds, expanded, is close to the full precision state
    tensors = checkpoint.read(tmp_path / "aFalse")[0]
    rounded = checkpoint.expand(checkpoint.compact(tensors))
    for k, v in tensors.items():
        if k.startswith(("ema.", "opt.")) and v.is_floating_point():
            assert torch.allclose(rounded[k], v, rtol=1e-2, atol=1e-6), k
        else:
            assert torch.equal(rounded[k], v), k


def test_dequantize_inverts_export():
    torch.manual_seed(0)
    config = PixelCNNConfig(layers=2, channels=8, head=16, mixtures=3, tile=16)
    weights = config.build().state_dict()
    tensors, exact_config = export_hierarchy(weights, config, np.stack(smooth_images(4, 16)))
    back = dequantize_pixelcnn(tensors, exact_config)
    assert sorted(back) == sorted(weights)
    for k, w in weights.items():
        # 10-bit weights, a power-of-two step per output channel below 2 max|w| / 511: half a step off at most
        step = w.reshape(w.shape[0], -1).abs().amax(1) * 2 / 511 if w.ndim > 1 else w.abs().max() * 2 / 511
        tol = (step.reshape(-1, *[1] * (w.ndim - 1)) if w.ndim > 1 else step) * 0.5 + 1e-6
        assert ((back[k] - w).abs() <= tol).all(), k


def test_a_run_starts_from_an_installed_model():
    """The relay's candidate (8 layers) started from the shipped default (6 layers) computes what
    the default's exact model does, up to quantization: its float bits within 1% of the exact
    model's on the same crops."""
    config = load_config("pixelcnn-relay")
    task = task_for(config)
    origin, weights = initial_weights(task, "default")
    info, _, shipped = read_model("default")
    assert origin == {"init_from": f"model:{info.id}", "init_step": shipped["training"]["steps"]}
    model = task.build()
    task.warm_start(model, weights)
    crops = np.stack(smooth_images(3, 32, seed=5))
    model.eval()
    with torch.no_grad():
        float_bits = float(task.bits(model, torch.from_numpy(crops)).sum())
    exact = exact_bits(load("default").family, crops)[0]
    assert abs(float_bits / exact - 1) < 0.01
    with pytest.raises(Exception, match="a pixelcnn run starts from a checkpoint or an installed pixelcnn model"):
        initial_weights(task, "pyramid")


# ----------------------------------------------------------------------------- the scripts


def _tiny_run_setup(tmp_path: Path) -> tuple[Path, Path]:
    """A folder of training images and a tiny relay config reading it."""
    data = tmp_path / "images"
    data.mkdir()
    for i, im in enumerate(smooth_images(6, 40, seed=3)):
        Image.fromarray(im).save(data / f"{i}.png")
    base = (ROOT / "hiercodec/train/configs/pixelcnn-small.toml").read_text()
    toml = (base.replace('data = "photos"', f'data = "{data}"').replace('eval_data = "heldout"', 'eval_data = "none"')
            .replace("log_every = 10", "log_every = 2\ncompact_checkpoint = true")
            .replace("steps = 200", "steps = 1000000").replace("save_every_s = 60", "save_every_s = 0"))
    config = tmp_path / "tiny-relay.toml"
    config.write_text(toml)
    return data, config


def _relay(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(RELAY / "relay.py"), *args], capture_output=True, text=True,
                          timeout=300, **kw)


def test_relay_script_starts_stops_on_request_and_resumes(tmp_path):
    data, config = _tiny_run_setup(tmp_path)
    run = tmp_path / "run"
    start = tmp_path / "start"
    train(start, load_config(str(config)).with_train(steps=2), progress=False)
    common = ["--run", str(run), "--config", str(config), "--nice", "0"]
    proc = subprocess.Popen([sys.executable, str(RELAY / "relay.py"), "train", *common, "--start-from", str(start)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while not (checkpoint.checkpoint_file(run).is_file() and (run / "relay.pid").is_file()):
            assert proc.poll() is None and time.time() < deadline, proc.communicate()
            time.sleep(0.2)
        time.sleep(1.0)
        stopped = _relay("stop", "--run", str(run))
        assert stopped.returncode == 0, stopped.stderr
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and "stopped" in out, err
    assert not (run / "relay.pid").exists()
    meta = checkpoint.read_meta(run)
    assert meta["origin"]["init_from"] == str(start.resolve()) and meta["step"] > 0
    status = _relay("status", "--run", str(run))
    assert status.returncode == 0 and f"step {meta['step']}" in status.stdout
    assert _relay("stop", "--run", str(run)).stdout.strip() == "relay: no stint is running"
    # the next stint resumes (a short one, ended by its minutes)
    again = _relay("train", *common, "--minutes", "0.02")
    assert again.returncode == 0, again.stderr
    assert checkpoint.read_meta(run)["step"] > meta["step"]


def test_sigterm_stops_a_training_run_with_its_checkpoint(tmp_path):
    """`kill PID` of a `hiercodec train` in the background (where Ctrl-C does not reach it) saves the
    checkpoint of the step it stopped at, and --resume continues from it."""
    _, config = _tiny_run_setup(tmp_path)
    run = tmp_path / "run"
    cmd = [sys.executable, "-c", "from hiercodec.cli.main import main; main()", "train", "pixelcnn", "--config", str(config), "--out", str(run)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while not (run / "log.jsonl").is_file() or len((run / "log.jsonl").read_text().splitlines()) < 3:
            assert proc.poll() is None and time.time() < deadline, proc.communicate()
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1 and "interrupted; the checkpoint" in err, err
    logged = max(json.loads(line)["step"] for line in (run / "log.jsonl").read_text().splitlines())
    assert checkpoint.read_meta(run)["step"] >= logged >= 4
    again = subprocess.run([*cmd, "--resume", "--minutes", "0.02"], capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert checkpoint.read_meta(run)["step"] > logged


def test_gpu_script_dry_run_returns_files_that_decode_here(tmp_path):
    data, config = _tiny_run_setup(tmp_path)
    run = tmp_path / "run"
    train(run, load_config(str(config)).with_train(steps=2), progress=False)
    out = tmp_path / "OUT"
    proc = subprocess.run([sys.executable, str(RELAY / "gpu.py"), "train", "--out", str(out), "--steps", "3",
                           "--run", str(run), "--data", str(data)], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "HIERCODEC_MODELS": str(tmp_path / "nomodels")})
    assert proc.returncode == 0, proc.stderr
    assert checkpoint.read_meta(out)["step"] == 5 and checkpoint.read_meta(run)["step"] == 2  # input untouched
    # what comes back from the device tool: 8 files at most, at most 2 folders down
    files = [p.relative_to(out) for p in out.rglob("*") if p.is_file()]
    assert len(files) <= 8 and all(len(p.parts) <= 3 for p in files), files
    lines = gpu.check_files(out)
    assert len(lines) == 2 and all("decodes here to its image" in line for line in lines)
    # a file that decodes to anything else is caught
    manifest = json.loads((out / "files/manifest.json").read_text())
    manifest["files"]["default.hc"]["image"] = gpu.CHECK_IMAGES["candidate"]
    (out / "files/manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(AssertionError):
        gpu.check_files(out)


GPU_CHECK = RELAY / "gpu-check"


@pytest.mark.skipif(not (GPU_CHECK / "files/manifest.json").is_file(),
                    reason="no GPU run has returned files yet (relay/README.md, 'When a GPU is lent')")
def test_files_encoded_on_a_gpu_machine_decode_here():
    assert len(gpu.check_files(GPU_CHECK)) == 2


def test_ship_ships_only_a_better_model(tmp_path, monkeypatch):
    from hiercodec import zoo

    data, config = _tiny_run_setup(tmp_path)
    run = tmp_path / "run"
    train(run, load_config(str(config)).with_train(steps=60), progress=False)
    # the model to beat: the same network untrained, installed as a user model
    monkeypatch.setenv("HIERCODEC_MODELS", str(tmp_path / "models"))
    zoo_dir = tmp_path / "zoo"
    zoo_dir.mkdir()
    monkeypatch.setattr(zoo, "ZOO_DIR", zoo_dir)
    untrained = tmp_path / "untrained"
    train(untrained, load_config(str(config)).with_train(steps=1, lr=1e-9), progress=False)
    from hiercodec.export.run import export_run

    export_run(untrained, "untrained")
    aliases = tmp_path / "aliases.json"
    aliases.write_text(json.dumps({"default": "untrained"}))
    monkeypatch.setattr(zoo, "ALIASES", {"default": "untrained"})
    bitstreams = tmp_path / "bitstreams"
    bitstreams.mkdir()
    (bitstreams / "make_golden.py").write_text((ROOT / "bitstreams/make_golden.py").read_text())
    images = [str(p) for p in sorted(data.glob("*.png"))[:2]]
    kw = dict(zoo_dir=zoo_dir, aliases_file=aliases, bitstreams=bitstreams, eval_on="train")
    # against itself it is not better: nothing shipped
    step = checkpoint.read_meta(run)["step"]
    same = ship_relay(untrained, images, "untrained", dry_run=False, out=tmp_path / "same.json", **kw)
    assert not same["better"] and not same["shipped"] and not list(zoo_dir.iterdir())
    decision = ship_relay(run, images, "default", dry_run=False, out=tmp_path / "bench-{step}.json", **kw)
    name = f"pixelcnn-r{step}"
    assert decision["better"] and decision["shipped"] and decision["gain_percent"] >= 1.0
    assert (tmp_path / f"bench-{step}.json").is_file() and (zoo_dir / name / "weights.safetensors").is_file()
    assert json.loads(aliases.read_text())["default"] == name
    golden = sorted(p.name for p in bitstreams.glob("*.hc"))
    assert golden == [f"{name}-gray-alpha-13x10.hc", f"{name}-rgb-70x45.hc"]
    assert set(json.loads((bitstreams / "golden-shipped.json").read_text())) == {g[:-3] for g in golden}


def test_cli_resume_without_config_keeps_the_runs_own(tmp_path):
    """`hiercodec train FAMILY --out RUN --resume` continues RUN with the config it was started with
    (not the family's paper config), and `--init-from` takes an installed model's id."""
    from click.testing import CliRunner

    from hiercodec.cli.main import cli

    data, config = _tiny_run_setup(tmp_path)
    run = tmp_path / "run"
    train(run, load_config(str(config)).with_train(steps=2), progress=False)
    result = CliRunner().invoke(cli, ["train", "pixelcnn", "--out", str(run), "--resume", "--steps", "4"])
    assert result.exit_code == 0, result.output
    meta = checkpoint.read_meta(run)
    assert meta["step"] == 4 and meta["config"]["name"] == "tiny-relay"
    wrong = CliRunner().invoke(cli, ["train", "pixelcnn", "--config", str(config), "--out", str(tmp_path / "x"),
                                     "--init-from", "vqvae2", "--steps", "1"])
    assert wrong.exit_code == 1 and "a pixelcnn run starts from a checkpoint or an installed pixelcnn model" in wrong.output


def test_pack_data_fits_its_budget_and_the_gpu_run_reads_it(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from hiercodec.train import data as photo_data
    from hiercodec.train.datasets import folder

    data, config = _tiny_run_setup(tmp_path)
    run = tmp_path / "run"
    train(run, load_config(str(config)).with_train(steps=1), progress=False)
    prepared = []
    for i, im in enumerate(smooth_images(4, 48, seed=9)):  # stand-ins for the prepared photos
        for f in (2, 4):
            prepared.append(tmp_path / f"photo{i}-x{f}.png")
            Image.fromarray(im[:: f // 2, :: f // 2]).save(prepared[-1])
    monkeypatch.setattr(photo_data, "prepare", lambda: prepared)
    packed = tmp_path / "packed"
    budget = 0.012  # MB: room for some of the photos only
    result = CliRunner().invoke(gpu.main, ["pack-data", "--out", str(packed), "--run", str(run),
                                           "--budget-mb", str(budget)])
    assert result.exit_code == 0, result.output
    files = sorted(packed.glob("*.webp"))
    assert 0 < len(files) < len(prepared) and sum(p.stat().st_size for p in files) <= budget * 1e6
    x4 = [p for p in files if p.stem.endswith("-x4")]
    assert len(x4) == 4 or len(x4) == len(files)  # the most downsampled first
    # lossless: the GPU run trains on exactly the prepared pixels
    for p in files:
        np.testing.assert_array_equal(folder(packed).images[files.index(p)],
                                      np.asarray(Image.open(tmp_path / (p.stem + ".png")).convert("RGB")))


def test_stop_ignores_a_stale_pid_file(tmp_path):
    """A stint killed outright leaves its pid file behind; `stop` must not signal whatever process
    now has that number."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "relay.pid").write_text(f"{os.getpid()}\n")  # a live process that is not the relay
    result = _relay("stop", "--run", str(run))
    assert result.returncode == 0 and "already ended" in result.stdout
    assert not (run / "relay.pid").exists()


@pytest.mark.parametrize("amp_cpu", [False, True])
def test_amp_cpu_is_bf16_autocast_on_the_cpu(tmp_path, monkeypatch, amp_cpu):
    """The relay's `amp_cpu` turns bfloat16 autocast on for CPU training by itself (`amp` is the
    GPU's); the first version needed both and the relay ran in float32 for 3000 steps."""
    from hiercodec.train.pixelcnn import PixelCNNTask

    seen = []
    bits = PixelCNNTask.bits

    def recording(self, model, x):
        seen.append(torch.is_autocast_enabled("cpu"))
        return bits(self, model, x)

    monkeypatch.setattr(PixelCNNTask, "bits", recording)
    train(tmp_path / "run", tiny_config(steps=1, batch=2, amp_cpu=amp_cpu), images=ImageSet(smooth_images(2, 24), "t"),
          progress=False)
    assert seen == [amp_cpu]
