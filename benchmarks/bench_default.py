"""Benchmark a hiercodec model against PNG (oxipng) and JPEG XL lossless (effort 9) on the held-out
photos of DESIGN.md: bits/dim of the real bytes, the exact model's bound, coder overhead, encode and
decode seconds. Every hiercodec file is decoded and compared with the original unless it is larger
than --verify-max-pixels (then the row says so).

    python benchmarks/bench_default.py --out docs/bench-default.json
    python benchmarks/bench_default.py --images astronaut --threads 2   # the 512x512 timing
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import hiercodec  # noqa: F401  (first: sets the OpenMP wait policy before torch loads, as the CLI does)

import click
import numpy as np
import torch

from hiercodec.codec import decode_image, encode_image
from hiercodec.heldout import HELDOUT_NAMES, heldout_images
from hiercodec.peers import run_peer
from hiercodec.zoo import load


def bench_image(model, name: str, image: np.ndarray, peers: list[str], verify_max: int) -> dict:
    row: dict = {"image": name, "shape": list(image.shape)}
    t = time.perf_counter()
    data, report = encode_image(model, image)
    row["encode_s"] = time.perf_counter() - t
    row["bytes"] = len(data)
    row["bpd"] = report.bits_per_dim
    row["bound_bpd"] = report.bound_bits_per_dim
    row["overhead_percent"] = report.file_overhead_percent
    if image.shape[0] * image.shape[1] <= verify_max:
        t = time.perf_counter()
        decoded, _ = decode_image(data)
        row["decode_s"] = time.perf_counter() - t
        row["roundtrip"] = bool(np.array_equal(decoded, image))
    else:
        row["decode_s"], row["roundtrip"] = None, "not decoded (over --verify-max-pixels)"
    for peer in peers:
        r = run_peer(peer, image)
        row[f"{peer}_bpd"] = 8 * r.nbytes / image.size
        row[f"{peer}_encode_s"], row[f"{peer}_decode_s"] = r.encode_seconds, r.decode_seconds
    return row


def table(rows: list[dict], peers: list[str]) -> str:
    head = ["image", "shape", "hiercodec bpd", "bound bpd", "overhead %", "enc s", "dec s", "round trip"]
    head += [f"{p} bpd" for p in peers]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        dec = "-" if r["decode_s"] is None else f"{r['decode_s']:.1f}"
        cells = [r["image"], "x".join(map(str, r["shape"])), f"{r['bpd']:.3f}", f"{r['bound_bpd']:.3f}",
                 f"{r['overhead_percent']:.3f}", f"{r['encode_s']:.1f}", dec, str(r["roundtrip"])]
        cells += [f"{r[f'{p}_bpd']:.3f}" for p in peers]
        lines.append("| " + " | ".join(cells) + " |")
    dims = sum(int(np.prod(r["shape"])) for r in rows)
    pooled = ["all (pooled)", f"{dims} dims", f"{sum(r['bpd'] * np.prod(r['shape']) for r in rows) / dims:.3f}",
              f"{sum(r['bound_bpd'] * np.prod(r['shape']) for r in rows) / dims:.3f}", "", "", "", ""]
    pooled += [f"{sum(r[f'{p}_bpd'] * np.prod(r['shape']) for r in rows) / dims:.3f}" for p in peers]
    lines.append("| " + " | ".join(pooled) + " |")
    return "\n".join(lines)


@click.command()
@click.option("--model", default="default", show_default=True)
@click.option("--images", multiple=True, help="Held-out image names (default: all).")
@click.option("--peers", default="png,jpegxl", show_default=True, help="Comma-separated peer codecs.")
@click.option("--threads", default=1, show_default=True, help="torch threads.")
@click.option("--verify-max-pixels", default=1 << 20, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), help="Write the rows as JSON here.")
def main(model, images, peers, threads, verify_max_pixels, out):
    torch.set_num_threads(threads)
    m = load(model)
    peer_list = [p for p in peers.split(",") if p]
    rows = []
    for name, image in heldout_images(list(images) or HELDOUT_NAMES).items():
        rows.append(bench_image(m, name, image, peer_list, verify_max_pixels))
        click.echo(json.dumps(rows[-1]), err=True)
    click.echo(table(rows, peer_list))
    if out:
        meta = {"model": m.id, "threads": threads, "torch": torch.__version__, "machine": platform.processor() or platform.machine()}
        out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
