"""Encode and decode seconds of every shipped family at several image sizes, on the compiled engine
(hiercodec.engine) and the torch reference, next to JPEG XL (effort 9 and its default, 7) and WebP
lossless measured in the same run, as ratios (issue 15's table). Every file is decoded and checked.

Images: centre crops of the held-out photo `jxl-flower` (1512 x 2268), mirrored out to 2048 for the
largest size. Each (model, size, engine) runs in its own process, so that its peak memory (RSS) is
its own; the kernels' compilation is cached on disk and not timed (a warm-up run compiles first).

    python benchmarks/engine_speed.py --models default --sizes 256,512,1024,2048 --reference-up-to 512 \\
        --out docs/results/engine-speed.json
"""

from __future__ import annotations

import hiercodec  # noqa: F401  (first: the OpenMP wait policy must be set before torch loads)

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import click
import numpy as np

PHOTO = "jxl-flower"
PEERS = ("jpegxl", "jpegxl-e7", "webp")


def photo(size: int) -> np.ndarray:
    """A size x size centre crop of the photo (mirrored at its edges where it is smaller)."""
    from hiercodec.bench.heldout import heldout_images

    image = heldout_images([PHOTO])[PHOTO]
    h, w, _ = image.shape
    ph, pw = max(0, size - h), max(0, size - w)
    if ph or pw:
        image = np.pad(image, ((ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)), mode="reflect")
        h, w, _ = image.shape
    y, x = (h - size) // 2, (w - size) // 2
    return np.ascontiguousarray(image[y : y + size, x : x + size])


def measure(model: str, size: int, kind: str, threads: int) -> dict:
    """One model at one size on one engine, in this process: seconds, bytes, peak memory."""
    from hiercodec import engine
    from hiercodec.bench.lossless import timed_round_trip
    from hiercodec.codec import encode_image
    from hiercodec.zoo import load

    m = load(model)
    image = photo(size)
    with engine.using(kind), engine.threads(threads):
        encode_image(m, image[:16, :16])  # warm-up: loads (or compiles) the kernels
        data, report, enc, dec = timed_round_trip(m, image, f"{PHOTO} at {size}")
    return {"model": m.id, "family": m.family.name, "size": size, "engine": kind, "threads": threads,
            "encode_s": round(enc, 3), "decode_s": round(dec, 3), "bytes": len(data),
            "bpd": round(report.bits_per_dim, 4), "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def peers(size: int) -> dict[str, dict]:
    from hiercodec.bench.peers import run_peer

    image = photo(size)
    out = {}
    for name in PEERS:
        r = run_peer(name, image)
        out[name] = {"encode_s": round(r.encode_seconds, 4), "decode_s": round(r.decode_seconds, 4),
                     "bpd": round(8 * r.nbytes / image.size, 4)}
    return out


def table(rows: list[dict], peer_rows: dict[int, dict]) -> str:
    lines = ["| model | size | engine | encode s | decode s | bpd | peak MB | enc / JXL e9 | dec / JXL e9 "
             "| enc / JXL e7 | dec / JXL e7 | enc / WebP | dec / WebP |", "|" + "---|" * 13]
    for r in rows:
        p = peer_rows[r["size"]]
        ratios = [f"{r[k] / p[n][k]:,.0f}" for n in PEERS for k in ("encode_s", "decode_s")]
        lines.append(f"| {r['model']} | {r['size']} | {r['engine']} | {r['encode_s']:.2f} | {r['decode_s']:.2f} "
                     f"| {r['bpd']:.3f} | {r['peak_rss_mb']} | " + " | ".join(ratios) + " |")
    lines += ["", "| size | " + " | ".join(f"{n} enc s | {n} dec s | {n} bpd" for n in PEERS) + " |",
              "|" + "---|" * (1 + 3 * len(PEERS))]
    for size, p in sorted(peer_rows.items()):
        lines.append(f"| {size} | " + " | ".join(f"{p[n]['encode_s']:.3f} | {p[n]['decode_s']:.3f} | {p[n]['bpd']:.3f}"
                                                 for n in PEERS) + " |")
    return "\n".join(lines)


@click.command()
@click.option("--models", default="default", show_default=True, help="Model ids or aliases, comma-separated.")
@click.option("--sizes", default="256,512", show_default=True, help="Square sizes, comma-separated.")
@click.option("--reference-up-to", type=int, default=512, show_default=True,
              help="Also time the torch reference at sizes up to this (it is slow).")
@click.option("--threads", "-j", type=int, default=os.cpu_count(), show_default=True)
@click.option("--out", type=click.Path(path_type=Path), help="Write the rows and peers as JSON.")
@click.option("--one", nargs=4, hidden=True, help="MODEL SIZE ENGINE THREADS: one measurement (a child process).")
def main(models, sizes, reference_up_to, threads, out, one) -> None:
    if one:
        click.echo(json.dumps(measure(one[0], int(one[1]), one[2], int(one[3]))))
        return
    rows, peer_rows = [], {}
    models, sizes = models.split(","), [int(s) for s in sizes.split(",")]
    for size in sizes:
        peer_rows[size] = peers(size)
        click.echo(json.dumps({"size": size, "peers": peer_rows[size]}), err=True)
        for model in models:
            for kind in ("numba", "torch") if size <= reference_up_to else ("numba",):
                done = subprocess.run([sys.executable, __file__, "--one", model, str(size), kind, str(threads)],
                                      capture_output=True, text=True)
                if done.returncode:
                    raise SystemExit(f"{model} {size} {kind}: {done.stderr.strip().splitlines()[-1:]}")
                rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
                click.echo(json.dumps(rows[-1]), err=True)
    click.echo(table(rows, peer_rows))
    if out:
        tmp = out.with_suffix(".tmp")
        tmp.write_text(json.dumps({"photo": PHOTO, "threads": threads, "rows": rows, "peers": peer_rows}, indent=1))
        tmp.replace(out)


if __name__ == "__main__":
    main()
