#!/usr/bin/env python
"""The training relay (relay/README.md): the next default model trains whenever work on the
project happens, one stint per session, and no step is ever lost.

    python relay/relay.py train --minutes 170 &   # at the start of a session: one core, nice 19
    python relay/relay.py status                  # step, held-out bits/dim, checkpoint size
    python relay/relay.py stop                    # before the session stops: save, exit; then commit relay/run
    python relay/relay.py ship                    # export, bench next to the default, ship if better
    python relay/relay.py curve                   # plot relay/run/log.jsonl into docs/results/relay-curve.png

The run lives in relay/run/ (checkpoint.safetensors, compact: about 7 MB; config.json; log.jsonl
with the held-out curve), committed at every stop. The first stint starts it from the shipped
default's weights made float (`--init-from pixelcnn-s2`); every later one resumes it exactly.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import click

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RUN = HERE / "run"
CONFIG = "pixelcnn-relay"  # the current candidate; a larger network gets a new config and run folder
START_FROM = "pixelcnn-s2"  # what the first stint starts from (an installed model or a checkpoint)
PID = RUN / "relay.pid"  # ignored by git: the process of the stint in progress
# the held-out photos `ship` measures on (those of docs/RESULTS.md section 5: up to 0.37 MP each)
SHIP_IMAGES = ("astronaut", "chelsea", "coffee", "motorcycle_left", "motorcycle_right",
               "jxl-cvo9xd_keong_macan_srgb8", "jxl-tmshre_riaphotographs_srgb8", "jxl-u76c0g_bliznaca_srgb8")


@click.group()
def main() -> None:
    """The training relay of the next default model (relay/README.md)."""


@main.command()
@click.option("--minutes", type=click.FloatRange(0, min_open=True), default=None,
              help="Stop (with a checkpoint) after this many minutes [default: until `stop` or Ctrl-C].")
@click.option("--threads", type=click.IntRange(1), default=1, show_default=True, help="torch CPU threads.")
@click.option("--nice", "niceness", type=click.IntRange(0, 19), default=19, show_default=True,
              help="Scheduling priority: the relay yields to the work of the session.")
@click.option("--run", "run_dir", type=click.Path(path_type=Path), default=RUN, show_default=True,
              help="Run folder (tests use another).")
@click.option("--start-from", default=START_FROM, show_default=True,
              help="Installed model or checkpoint the first stint starts from.")
@click.option("--config", "config_name", default=CONFIG, show_default=True, help="Config of a new run.")
def train(minutes: float | None, threads: int, niceness: int, run_dir: Path, start_from: str,
          config_name: str) -> None:
    """Continue the relay for one stint (start it the first time)."""
    import hiercodec  # noqa: F401  (before torch: the OpenMP wait policy)
    import torch

    from hiercodec.errors import HiercodecError
    from hiercodec.train import checkpoint
    from hiercodec.train.config import load_config
    from hiercodec.train.loop import stop_on_sigterm, train as run

    os.nice(niceness)
    torch.set_num_threads(threads)
    resume = checkpoint.checkpoint_file(run_dir).is_file()
    run_dir.mkdir(parents=True, exist_ok=True)
    pid = run_dir / PID.name
    pid.write_text(f"{os.getpid()}\n")
    stop_on_sigterm()  # `stop` sends SIGTERM
    try:
        summary = run(run_dir, load_config(config_name), resume=resume, minutes=minutes,
                      init_from=None if resume else start_from, progress=sys.stderr.isatty())
        click.echo(f"relay: stint ended at step {summary['step']} (held-out {summary['eval_bpd']})")
    except KeyboardInterrupt:
        click.echo(f"relay: stopped; checkpoint of step {checkpoint.read_meta(run_dir)['step']} saved")
    except HiercodecError as err:
        raise click.ClickException(str(err)) from None
    finally:
        pid.unlink(missing_ok=True)


@main.command()
@click.option("--run", "run_dir", type=click.Path(path_type=Path), default=RUN, show_default=True)
@click.option("--timeout", default=600.0, show_default=True, help="Seconds to wait for the checkpoint.")
def stop(run_dir: Path, timeout: float) -> None:
    """Make the running stint save its checkpoint and exit (then commit relay/run)."""
    pid = run_dir / PID.name
    if not pid.is_file():
        click.echo("relay: no stint is running")
        return
    process = int(pid.read_text())
    if not _is_relay(process):  # a stint killed outright leaves its pid file; the pid may be reused
        pid.unlink(missing_ok=True)
        click.echo("relay: the stint had already ended")
        return
    os.kill(process, signal.SIGTERM)
    deadline = time.time() + timeout
    while pid.exists() and time.time() < deadline:
        time.sleep(0.5)
    if pid.exists():
        raise click.ClickException(f"the stint (pid {process}) did not stop within {timeout:g} s")
    click.echo("relay: stopped; now `git add relay/run && git commit`")


def _is_relay(process: int) -> bool:
    """Whether `process` is alive and runs this script (its command line names relay.py)."""
    try:
        argv = Path(f"/proc/{process}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return any(Path(arg.decode(errors="replace")).name == Path(__file__).name for arg in argv)


@main.command()
@click.option("--run", "run_dir", type=click.Path(path_type=Path), default=RUN, show_default=True)
def status(run_dir: Path) -> None:
    """Step, latest held-out bits/dim and checkpoint size of the relay."""
    from hiercodec.train import checkpoint
    from hiercodec.train.curves import read_log

    file = checkpoint.checkpoint_file(run_dir)
    if not file.is_file():
        raise click.ClickException(f"no relay run in {run_dir}: start it with `python relay/relay.py train`")
    meta = checkpoint.read_meta(run_dir)
    evals = [r for r in read_log(run_dir / "log.jsonl") if "eval_bpd" in r] if (run_dir / "log.jsonl").is_file() else []
    pid = run_dir / PID.name
    running = pid.is_file() and _is_relay(int(pid.read_text()))
    click.echo(f"relay: {meta['config']['name']}, step {meta['step']}, from {meta.get('origin', {}).get('init_from')}; "
               f"checkpoint {file.stat().st_size / 1e6:.1f} MB; {'running' if running else 'not running'}")
    for r in evals[-5:]:
        click.echo(f"  step {r['step']:>7}: held-out {r['eval_bpd']:.4f} bits/dim")


@main.command()
@click.option("--run", "run_dir", type=click.Path(path_type=Path), default=RUN, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=ROOT / "docs/results/relay-curve.png",
              show_default=True)
def curve(run_dir: Path, out: Path) -> None:
    """Plot the relay's training and held-out curves."""
    from hiercodec.train.curves import plot_curves, read_log

    plot_curves({"relay": read_log(run_dir / "log.jsonl")}, out, force=True)
    click.echo(f"relay: curve in {out}")


@main.command()
@click.option("--run", "run_dir", type=click.Path(path_type=Path), default=RUN, show_default=True)
@click.option("--image", "images", multiple=True, default=SHIP_IMAGES, show_default=True,
              help="Held-out photos (or image files) to measure on (repeatable).")
@click.option("--against", default="default", show_default=True, help="The model to beat.")
@click.option("--min-gain", type=float, default=None,
              help="Percent fewer pooled bits/dim needed to ship [default: relay/ship.py MIN_GAIN_PERCENT, 1].")
@click.option("--dry-run", is_flag=True, help="Measure and report, ship nothing.")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="JSON of the bench [default: docs/results/relay-ship-STEP.json].")
def ship(run_dir: Path, images: tuple[str, ...], against: str, min_gain: float | None, dry_run: bool,
         out: Path | None) -> None:
    """Export the relay's averaged weights, bench them next to the default on held-out photos, and
    if their files are smaller by --min-gain percent, ship them as pixelcnn-rSTEP, move `default`
    to it and write its golden files."""
    sys.path.insert(0, str(HERE))
    from ship import MIN_GAIN_PERCENT, ship_relay

    ship_relay(run_dir, list(images), against, dry_run=dry_run, min_gain=MIN_GAIN_PERCENT if min_gain is None else min_gain,
               out=out or ROOT / "docs/results" / "relay-ship-{step}.json")


if __name__ == "__main__":
    main()
