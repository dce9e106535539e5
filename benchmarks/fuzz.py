"""Damaged and forged .hc files of every shipped family, and what decoding each one does.

A file of a small image is written with each model; then seeded mutations of it (truncation, bit
flips, random bytes, header fields forged with every CRC recomputed, chunks swapped or replaced by
random bytes with their CRCs recomputed) are decoded, each under a time and a
memory limit, in a process of its own. Every outcome is one of:

    clean error      a HiercodecError (one line for the user)
    same image       decodes to the original pixels (a mutation that changed nothing that matters)
    DIFFERENT IMAGE  decodes to other pixels: must never happen
    CRASH            any other exception: must never happen
    over time        still decoding after --seconds (decoding work not bounded by the file)
    over memory      MemoryError or killed past --memory-gb

    python benchmarks/fuzz.py --cases 12 --seconds 20 --out fuzz.json
"""

from __future__ import annotations

import hiercodec  # noqa: F401  (first: the OpenMP wait policy must be set before torch loads)

import dataclasses
import json
import multiprocessing as mp
import resource
import time
from collections import Counter
from pathlib import Path

import click
import numpy as np

from hiercodec import container
from hiercodec.errors import HiercodecError

OUTCOMES = ("clean error", "same image", "DIFFERENT IMAGE", "CRASH", "over time", "over memory")
MODELS = ("default", "grayscale", "pyramid", "vqvae2", "bitsback-toy-1")  # every registered family


def sample_image(seed: int = 7, height: int = 24, width: int = 20) -> np.ndarray:
    """A small smooth RGB image with a little noise (every family codes it in seconds)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    planes = [128 + 80 * np.sin(3 * (rng.uniform(-1, 1) * x + rng.uniform(-1, 1) * y)) for _ in range(3)]
    noisy = np.stack(planes, -1) + rng.normal(0, 3, (height, width, 3))
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def _rewrite(data: bytes, header=None, chunks=None) -> bytes:
    """The file with its header and/or chunks replaced, every CRC recomputed (a forgery)."""
    box = container.read(data, max_pixels=container.MAX_PIXELS)
    return container.write(dataclasses.replace(box, header=header or box.header,
                                               chunks=tuple(chunks) if chunks is not None else box.chunks))


def mutations(data: bytes, rng: np.random.Generator, cases: int) -> list[tuple[str, bytes]]:
    """`cases` mutations of each kind, plus the forged geometries of issue 12."""
    box = container.read(data)
    h = box.header
    out: list[tuple[str, bytes]] = []
    coded = [c.level for c in box.chunks if not c.continues]  # levels that hold a stream's bytes
    for i in range(cases):
        cut = int(rng.integers(1, len(data)))
        out.append((f"truncated to {cut} bytes", data[:cut]))
        flipped = bytearray(data)
        for _ in range(int(rng.integers(1, 9))):
            bit = int(rng.integers(0, 8 * len(data)))
            flipped[bit // 8] ^= 1 << (bit % 8)
        out.append(("bit flips", bytes(flipped)))
        out.append(("random bytes", rng.bytes(len(data))))
        level = coded[int(rng.integers(0, len(coded)))]
        chunks = list(box.chunks)
        size = max(4, len(chunks[level].data) // 4 * 4)
        chunks[level] = dataclasses.replace(chunks[level], data=rng.bytes(size))
        out.append((f"level {level} coded data random, CRCs recomputed", _rewrite(data, chunks=chunks)))
        field = ["height", "width", "channels", "tile_height", "tile_width"][i % 5]
        value = {"channels": int(rng.integers(1, 5))}.get(field, int(rng.integers(1, 200)))
        out.append((f"header {field}={value}, CRCs recomputed", _rewrite(data, header=dataclasses.replace(h, **{field: value}))))
    if len(coded) > 1:
        chunks = list(box.chunks)
        i, j = coded[:2]
        a, b = chunks[i], chunks[j]
        chunks[i], chunks[j] = dataclasses.replace(a, data=b.data), dataclasses.replace(b, data=a.data)
        out.append((f"levels {i} and {j} swapped, CRCs recomputed", _rewrite(data, chunks=chunks)))
    return out


def forged_geometries(data: bytes, sides: tuple[int, ...] = (2048, 16384), family=None) -> list[tuple[str, bytes]]:
    """Issue 12's reproduction: the header claims side x side with the tiles the model would use
    for such an image (`family`'s layout; 64-pixel tiles without one), so that it gets past the
    header's checks and only the coded data can stop it."""
    from hiercodec.geometry import Geometry

    box = container.read(data)
    h = box.header
    out = []
    for side in sides:
        lay = family.layout(Geometry(side, side, h.channels)) if family is not None else None
        tile_h, tile_w = (lay.tile_h, lay.tile_w) if lay else (64, 64)
        forged = dataclasses.replace(h, height=side, width=side, tile_height=tile_h, tile_width=tile_w)
        out.append((f"{h.width}x{h.height} file claims {side}x{side}, CRCs recomputed", _rewrite(data, header=forged)))
    return out


def _decode_child(data: bytes, original: np.ndarray, memory_gb: float, max_pixels: int | None, pipe) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (int(memory_gb * 2**30),) * 2)
    from hiercodec.codec import decode_image

    try:
        image, _ = decode_image(data, max_pixels=max_pixels)
        same = image.shape == original.shape and np.array_equal(image, original)
        pipe.send(("same image" if same else "DIFFERENT IMAGE", ""))
    except HiercodecError as err:
        pipe.send(("clean error", str(err).splitlines()[0][:160]))
    except MemoryError:
        pipe.send(("over memory", "MemoryError"))
    except BaseException as err:  # noqa: BLE001  (a crash is what this looks for)
        pipe.send(("CRASH", f"{type(err).__name__}: {str(err).splitlines()[0][:160] if str(err) else ''}"))


def run_case(data: bytes, original: np.ndarray, seconds: float, memory_gb: float,
             max_pixels: int | None = container.DECODE_MAX_PIXELS) -> tuple[str, str, float]:
    """(outcome, detail, seconds) of decoding `data` in a fresh process (spawned: a forked child of
    a process that ran torch can hang in OpenMP), the import and model load included; max_pixels
    as hiercodec.decode's (None: the format's limit, as for a file the user trusts)."""
    ctx = mp.get_context("spawn")
    receive, send = ctx.Pipe(duplex=False)
    start = time.perf_counter()
    child = ctx.Process(target=_decode_child, args=(data, original, memory_gb, max_pixels, send))
    child.start()
    if receive.poll(seconds):
        outcome, detail = receive.recv()
    else:
        outcome, detail = ("over time", f"killed after {seconds:g} s") if child.is_alive() else \
            ("over memory", f"died with exit code {child.exitcode}")
    child.kill()
    child.join()
    return outcome, detail, time.perf_counter() - start


@click.command()
@click.option("--model", "models", multiple=True, default=MODELS, show_default=True, help="Models (repeatable).")
@click.option("--cases", default=6, show_default=True, help="Mutations of each kind per model.")
@click.option("--seconds", default=20.0, show_default=True, help="Time limit per decode.")
@click.option("--memory-gb", default=8.0, show_default=True, help="Address-space limit per decode.")
@click.option("--seed", default=0, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=None, help="JSON of every case.")
def main(models: tuple[str, ...], cases: int, seconds: float, memory_gb: float, seed: int, out: Path | None) -> None:
    import torch

    from hiercodec.codec import encode_image
    from hiercodec.zoo import load

    torch.set_num_threads(1)
    original = sample_image()
    rows = []
    for name in models:
        model = load(name)
        data, _ = encode_image(model, original)
        pixel = original[:1, :1]
        limit = container.DECODE_MAX_PIXELS
        cases_of_model = [(what, mutated, original, limit)
                          for what, mutated in mutations(data, np.random.default_rng(seed), cases)]
        # the forged geometries once more with the pixel limit lifted: then only the detection of
        # a stream that has run out can stop them (issue 12)
        for what, mutated in forged_geometries(encode_image(model, pixel)[0], family=model.family):
            cases_of_model += [(what, mutated, pixel, limit), (what + ", no pixel limit", mutated, pixel, None)]
        for what, mutated, image, max_pixels in cases_of_model:
            outcome, detail, secs = run_case(mutated, image, seconds, memory_gb, max_pixels)
            rows.append({"model": model.id, "mutation": what, "outcome": outcome, "detail": detail, "seconds": secs})
            print(f"{model.id:14} {what:52} {outcome:16} {secs:6.2f} s  {detail}", flush=True)
    counts = Counter((r["model"], r["outcome"]) for r in rows)
    print("\n| model | cases | " + " | ".join(OUTCOMES) + " |\n|---|---|" + "---|" * len(OUTCOMES))
    for model_id in dict.fromkeys(r["model"] for r in rows):
        total = sum(counts[(model_id, o)] for o in OUTCOMES)
        print(f"| {model_id} | {total} | " + " | ".join(str(counts[(model_id, o)]) for o in OUTCOMES) + " |")
    if out:
        out.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
