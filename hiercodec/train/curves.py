"""Training curves from runs' log.jsonl: training bits/dim (RGB and gray batches) and the held-out
bits/dim of the averaged weights, against the step; for runs with an autoencoder stage (vqvae2),
its reconstruction PSNR in a second panel.

    python -m hiercodec.train.curves runs/a/log.jsonl runs/b/log.jsonl --out curves.png
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import click

from hiercodec.bench.lossless import check_plot
from hiercodec.errors import HiercodecError
from hiercodec.fileio import atomic_write

SERIES = (("bpd", "training, RGB batches", "-"), ("bpd_gray", "training, gray batches", ":"),
          ("eval_bpd", "held-out, averaged weights", "o--"))


# runs with an autoencoder stage (vqvae2): their levels, whose sum is what lossless files cost
LEVEL_SERIES = (("eval_bpd", "held-out, all levels, averaged weights", "o--"),
                ("bpd_pixels", "training, pixels level", "-"), ("codes", "training, code levels", ":"))


def _value(record: dict, key: str) -> float | None:
    if key == "codes":
        return record["bpd_top"] + record["bpd_bottom"] if "bpd_top" in record else None
    return record.get(key)


def read_log(path: Path) -> list[dict]:
    try:
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except (OSError, json.JSONDecodeError) as err:
        raise HiercodecError(f"{path}: not a training log ({err})") from None


def plot_curves(logs: dict[str, list[dict]], path: Path, force: bool = False) -> None:
    """One panel: every series of every run (colour per run, line style per series)."""
    check_plot()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    psnr = any("psnr" in r for records in logs.values() for r in records)  # an autoencoder stage (vqvae2)
    fig = Figure(figsize=(12 if psnr else 8, 4.8), layout="constrained")
    FigureCanvasAgg(fig)
    ax, ax2 = fig.subplots(1, 2) if psnr else (fig.subplots(), None)
    if ax2 is not None:
        for n, (run, records) in enumerate(logs.items()):
            points = [(r["step"], r["psnr"]) for r in records if "psnr" in r]
            if points:
                ax2.plot(*zip(*points), "-", color=f"C{n}", label=f"{run}: training crops")
        ax2.set_xlabel("step")
        ax2.set_ylabel("autoencoder PSNR (dB)")
        ax2.grid(alpha=0.3)
        ax2.legend(fontsize=8)
    series = LEVEL_SERIES if psnr else SERIES
    gray = any("bpd_gray" in r for records in logs.values() for r in records)
    for n, (run, records) in enumerate(logs.items()):
        for key, label, style in series:
            label = label if gray or key != "bpd" else "training batches"  # no gray batches (MNIST)
            points = [(r["step"], _value(r, key)) for r in records if _value(r, key) is not None]
            if points:
                steps, values = zip(*points)
                ax.plot(steps, values, style, color=f"C{n}", label=f"{run}: {label}", markersize=4)
    if not psnr:  # the first steps' 8+ bits would flatten the rest
        low = min(v for r in sum(logs.values(), []) for k, _, _ in SERIES if k in r for v in [r[k]])
        ax.set_ylim(low - 0.1, min(ax.get_ylim()[1], low + 1.5))
    ax.set_xlabel("step")
    ax.set_ylabel("bits/dim")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    atomic_write(path, buf.getvalue(), force)


@click.command()
@click.argument("logs", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", "-o", required=True, type=click.Path(path_type=Path), help="PNG to write.")
@click.option("--force", "-f", is_flag=True, help="Overwrite --out.")
def main(logs: tuple[Path, ...], out: Path, force: bool) -> None:
    """Plot the training curves of LOGS (log.jsonl files of runs; named by their folder)."""
    plot_curves({p.parent.name if p.name == "log.jsonl" else p.stem: read_log(p) for p in logs}, out, force)
    click.echo(f"wrote {out}")


if __name__ == "__main__":
    main()
