"""`hiercodec bench`: hiercodec models against the peer codecs, on the same images, in one run.

The work is in hiercodec.bench (lossless, and lossy for --lossy); this file parses arguments,
checks everything that can fail before the (long) run, shows progress and writes the outputs.
Errors are HiercodecErrors, which the `hiercodec` group prints as one line with exit status 1.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path

import click

from hiercodec.errors import HiercodecError

_PEER_NAMES = "png, jpegxl, jpegxl-e7, webp, jpeg2000, jpegls, avif"
_LOSSY_PEER_NAMES = "jpeg, webp, jpegxl"


def _parse_peers(spec: str | None, known, installed: list[str], kind: str = "") -> list[str]:
    """--peers: a comma list, 'none', or (not given) every installed peer of `known`."""
    if spec is None:
        return installed
    names = [p.strip().lower() for p in spec.split(",") if p.strip()]
    if names == ["none"]:
        return []
    for name in names:
        if name not in known:
            raise HiercodecError(f"--peers: unknown {kind}peer codec {name!r}; "
                                 f"{'with --lossy ' if kind else ''}choose from {', '.join(known)} or none")
        if name not in installed:
            raise HiercodecError(f"--peers: {name!r} is not available here: pip install \"hiercodec[bench]\"")
    return list(dict.fromkeys(names))


def _peer_list(spec: str | None) -> list[str]:
    from hiercodec.bench.peers import PEERS, available_peers

    return _parse_peers(spec, PEERS, available_peers())


def _lossy_peer_list(spec: str | None) -> list[str]:
    from hiercodec.bench.peers_lossy import LOSSY_PEERS, available_lossy_peers

    return _parse_peers(spec, LOSSY_PEERS, available_lossy_peers(), "lossy ")


def _check_outputs(out: Path | None, plot: Path | None, force: bool, formats: dict | None = None) -> None:
    """Before any coding: a bad name must not cost a whole benchmark run."""
    from hiercodec.bench.lossless import OUTPUT_FORMATS, check_plot, output_format
    from hiercodec.fileio import check_output

    if out is not None:
        output_format(out, formats or OUTPUT_FORMATS)
        check_output(out, force)
    if plot is not None:
        if plot.suffix.lower() != ".png":
            raise HiercodecError(f"{plot}: the plot is written as PNG; give a file name ending in .png")
        check_output(plot, force)
        check_plot()
    if out is not None and plot is not None and out.resolve() == plot.resolve():
        raise HiercodecError(f"--out and --plot are the same file {out}")


@contextmanager
def _threads(n: int | None):
    """Run on n threads (None: every core) as the codec commands do: across tiles in the engine,
    for the large products of the torch reference; its small steps on one torch thread. Put back
    after (the command may run in-process)."""
    import torch

    from hiercodec import engine

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with engine.threads(n):
            yield
    finally:
        torch.set_num_threads(before)


def _threads_text(n: int | None) -> str:
    from hiercodec import engine

    count = n or engine.thread_count()
    return f"{count} thread{'s' if count > 1 else ''} ({engine.status().split(' (')[0]} engine)"


@contextmanager
def _step_bar(total: int):
    """A tqdm bar over (image, codec) steps, only where a person watches stderr."""
    if not sys.stderr.isatty():
        yield None
        return
    from tqdm import tqdm

    bar = tqdm(total=total, unit="run", file=sys.stderr, leave=False, dynamic_ncols=True)

    def step(image: str, codec: str) -> None:
        bar.set_postfix_str(f"{image}: {codec} done", refresh=False)
        bar.update(1)

    try:
        yield step
    finally:
        bar.close()


# one shipped model of each family (pixelvae's photo model: the alias `pixelvae` codes binary digits only)
DEFAULT_MODELS = ("default", "grayscale", "pyramid", "vqvae2", "ham", "pixelvae-photos", "agave")
# vqvae2's top codes (K=1) and bottom codes (K=2) are lossy points; ham's codes, decoded two ways
DEFAULT_LOSSY_MODELS = ("vqvae2", "ham")


def _lossy_models(names: tuple[str, ...]) -> list:
    """Load the --lossy models (a missing one fails before any work) and refuse one-level models,
    with a colour image's level count (the held-out photos are colour; run_lossy_bench checks
    every image's own again)."""
    from hiercodec.bench.lossy import check_lossy_model
    from hiercodec.errors import ModelNotFoundError
    from hiercodec.zoo import load

    loaded = []
    for name in names or DEFAULT_LOSSY_MODELS:
        try:
            model = load(name)
        except ModelNotFoundError as err:
            if names:
                raise
            raise HiercodecError(f"{err}; --lossy uses it by default: name a hierarchical model with -m, "
                                 "e.g. -m pyramid") from None
        check_lossy_model(model)
        loaded.append(model)
    return loaded


@click.command(short_help="Compare models with PNG, JPEG XL, WebP, ... on the same images.")
@click.argument("targets", metavar="[IMAGES...|DIR]", nargs=-1, type=click.Path(path_type=Path))
@click.option("--lossy", is_flag=True,
              help="Rate-distortion mode: each model's lossy files (its first K levels) against JPEG, "
                   "WebP and JPEG XL lossy at the same rate (see below); ham models give two points "
                   "per K, mean and sample (decoded by the mean reconstruction and by sampling).")
@click.option("--model", "-m", "models", multiple=True, metavar="NAME",
              help="Model id or alias (see `hiercodec models`); repeat for several.  "
                   f"[default: {', '.join(DEFAULT_MODELS)}; with --lossy: {', '.join(DEFAULT_LOSSY_MODELS)}]")
@click.option("--peers", metavar="LIST",
              help=f"Comma-separated peer codecs out of {_PEER_NAMES} (with --lossy: "
                   f"{_LOSSY_PEER_NAMES}), or 'none'.  [default: every one installed]")
@click.option("--out", "-o", type=click.Path(path_type=Path), metavar="FILE",
              help="Also write every row to FILE: CSV if it ends in .csv, JSON if in .json "
                   "(with --lossy also markdown, .md).")
@click.option("--plot", type=click.Path(path_type=Path), metavar="FILE.png",
              help="Draw bits/dim per image and codec, and bits/dim vs decode time; with --lossy, "
                   "PSNR and MS-SSIM vs bits per pixel (needs matplotlib).")
@click.option("--threads", "-j", type=click.IntRange(min=1), default=None, metavar="N",
              help="Threads for the models [default: every core] (timings depend on it; sizes do not).")
@click.option("--force", "-f", is_flag=True, help="Overwrite --out and --plot files that exist.")
def bench(targets: tuple[Path, ...], lossy: bool, models: tuple[str, ...], peers: str | None, out: Path | None,
          plot: Path | None, threads: int | None, force: bool) -> None:
    """Code the same images with hiercodec models and the peer codecs, check every round trip,
    and print a markdown table: per image and pooled over all images ("all": total bits / total
    samples, summed seconds), each codec's bits/dim of the real bytes (header included), a
    model's exact bound next to it, and encode and decode seconds (wall time).

    \b
    Peers, each in its lossless mode at its strongest setting (and JPEG XL at its default):
      png       Pillow PNG recoded by oxipng (level 6)
      jpegxl    JPEG XL lossless, effort 9          (imagecodecs)
      jpegxl-e7 JPEG XL lossless, effort 7 (default)(imagecodecs)
      webp      WebP lossless, level 100, method 6  (imagecodecs)
      jpeg2000  JPEG 2000 reversible 5/3 wavelet    (imagecodecs)
      jpegls    JPEG-LS, NEAR=0                     (imagecodecs)
      avif      AVIF lossless, speed 0, libaom      (imagecodecs)

    IMAGES are image files, or names of held-out photos (astronaut, face, ...); a DIR gives
    its .png .jpg .jpeg .webp .bmp .tif images in name order. Without either, every held-out
    photo is used (fetched on first use). A file that
    does not decode to the same pixels is an error, not a row. Gray + alpha images are coded by
    the models only (no peer stores them).

    \b
    Examples:
      hiercodec bench                                   # held-out photos, default + one model per family, all peers
      hiercodec bench photos/ --peers png,jpegxl --out results.json
      hiercodec bench astronaut --threads 2             # one held-out photo
      hiercodec bench a.png b.png -m default -m my-pixelcnn --plot bench.png

    Lossy mode (--lossy): a hierarchical model's file can hold only its first K levels
    (`hiercodec cut`, `hiercodec.encode(..., levels=K)`), which decode to an approximation
    of the image at full size (pyramid: its 1/8, 1/4 or 1/2-size level repeated over the
    blocks; vqvae2: its top codes, then bottom codes, through its decoder). Every K from 1
    to the model's level count - 1 is a point: its bits per pixel (8 x file bytes / pixels),
    PSNR and MS-SSIM. Each peer is then run at the matched rate: per image, its setting
    (JPEG and WebP quality, JPEG XL distance) whose file is closest in bits per pixel to the
    point's, found by bisection. The table pools the images (total bits / total pixels,
    mean PSNR and MS-SSIM); --plot draws each peer's curve over a grid of settings and the
    points as markers "model K levels". A ham model gives two points per K: "mean", its
    file decoded by the mean reconstruction of the missing levels, and "sample T=0.99", the
    file that stores seed 0 and the temperature (11 bytes more) decoded by sampling them
    (hollow markers); the peers are matched to the mean file's rate. A model with a single
    level (`default`) has no lossy point and is refused. Images must be gray or RGB, at
    least 11x11.

    \b
    Lossy peers (imagecodecs):
      jpeg      JPEG, quality 1..100, optimized Huffman, 4:2:0
      webp      WebP lossy, quality 0..100, method 6
      jpegxl    JPEG XL lossy, distance 25..0.1, effort 7

    \b
    Examples:
      hiercodec bench --lossy astronaut -m pyramid      # default models: vqvae2, ham
      hiercodec bench --lossy photos/ -m pyramid --peers jpeg,jpegxl --out rd.json --plot rd.png
    """
    if lossy:
        _bench_lossy(targets, models, peers, out, plot, threads, force)
        return
    from hiercodec.bench.lossless import load_targets, markdown, plot as draw, run_bench, write_output
    from hiercodec.zoo import load

    _check_outputs(out, plot, force)
    peer_names = _peer_list(peers)
    loaded = [load(name) for name in (models or DEFAULT_MODELS)]  # a missing model fails first
    images = load_targets(targets)
    with _threads(threads), _step_bar(len(images) * (len(loaded) + len(peer_names))) as step:
        result = run_bench(images, loaded, peer_names, on_step=step)
    click.echo(markdown(result))
    click.echo(f"\nbpd: 8 x file bytes / samples (header included); bound bpd: the exact model's "
               f"-log2 p; seconds: wall time, {_threads_text(threads)}.")
    for image, codec, why in result.skipped:
        click.echo(f"{image}: {codec} left out ({why})", err=True)
    _write_outputs(result, out, plot, force, write_output, draw)


def _write_outputs(result, out: Path | None, plot: Path | None, force: bool, write, draw) -> None:
    for path, fn in ((out, write), (plot, draw)):
        if path is not None:
            fn(result, path, force)
            click.echo(f"wrote {path}", err=True)


def _bench_lossy(targets: tuple[Path, ...], models: tuple[str, ...], peers: str | None, out: Path | None,
                 plot: Path | None, threads: int | None, force: bool) -> None:
    """`bench --lossy`: every check first, then the run with a progress bar, then the outputs."""
    from hiercodec.bench.lossy import (LOSSY_FORMATS, lossy_steps, markdown, plot_lossy, run_lossy_bench,
                                       write_lossy_output)

    from hiercodec.bench.lossless import load_targets

    _check_outputs(out, plot, force, LOSSY_FORMATS)
    peer_names = _lossy_peer_list(peers)
    loaded = _lossy_models(models)
    images = load_targets(targets)
    total = lossy_steps([a.shape for a in images.values()], loaded, peer_names)  # images are (H, W, C)
    with _threads(threads), _step_bar(total) as step:
        result = run_lossy_bench(images, loaded, peer_names, on_step=step)
    click.echo(markdown(result))
    click.echo(f"Seconds with {_threads_text(threads)}.")
    _write_outputs(result, out, plot, force, write_lossy_output, plot_lossy)
