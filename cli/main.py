"""The `hiercodec` command (console script -> main).

Thin by design (DESIGN.md): arguments, progress bars and error messages; the work is in
hiercodec.api. Every HiercodecError, and any OSError, is reported as one line
`hiercodec: error: <message>` on stderr with exit status 1 (usage errors keep click's status 2);
never a traceback. Inputs are only read; outputs are written atomically (never half a file) and
an existing output is replaced only with --force.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

# OpenMP threads that spin while waiting slow torch down a hundredfold when another process holds
# the cores; decoding is a long series of small steps, so let waiting threads sleep. Must be set
# before torch is first imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import click

from hiercodec import __version__
from hiercodec.errors import HiercodecError


def _fail(message: str) -> None:
    click.echo(f"hiercodec: error: {message}", err=True)


def _one_line(text: str) -> str:
    return " ".join(str(text).split()) or "unknown error"


class HiercodecGroup(click.Group):
    """Turns HiercodecError and OSError into one line on stderr and exit status 1."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except HiercodecError as err:
            _fail(_one_line(err))
        except OSError as err:
            if isinstance(err, BrokenPipeError):  # e.g. `hiercodec info x.hc | head -1`
                sys.stderr.close()
                ctx.exit(1)
            where = f"{err.filename}: " if err.filename else ""
            _fail(_one_line(where + (err.strerror or str(err))))
        ctx.exit(1)


def _progress() -> bool:
    """Progress bars (tqdm, shown after 1 s of work) only where a person watches stderr."""
    return sys.stderr.isatty()


def _single_thread() -> None:
    # The decoder's per-position steps are overhead-bound (tiny tensors): extra OpenMP threads
    # only contend there. Its large products (whole tiles, row passes) take more threads by
    # themselves (hiercodec.exact.quant.threads). Exact mode: the thread count changes speed only.
    import torch

    torch.set_num_threads(1)


def _set_threads(ctx: click.Context, param: click.Parameter, value: int | None) -> None:
    from hiercodec import engine

    engine.set_threads(value)


# Threads across tiles (hiercodec.engine); exact arithmetic: files and images never depend on it.
threads_option = click.option("--threads", "-j", type=click.IntRange(min=1), default=None, metavar="N",
                              expose_value=False, callback=_set_threads, is_eager=True,
                              help="Threads to use [default: every core]. Files and images do not depend on it.")


def _same_file(a: Path, b: Path) -> bool:
    try:
        return b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _check_paths(src: Path, out: Path, force: bool) -> None:
    """Everything that can be checked before a long computation."""
    from hiercodec.fileio import check_output

    if not src.exists():
        raise HiercodecError(f"{src}: no such file")
    if _same_file(src, out):
        raise HiercodecError(f"{out} is the input file; give another output name")
    check_output(out, force)


def _kept_levels(lossy: bool, levels: int | None, model) -> int | None:
    """The levels a file keeps from --lossy / --levels K (None: all, a lossless file)."""
    from hiercodec import api

    if lossy and levels is not None:
        raise HiercodecError("give --lossy or --levels K, not both (--lossy keeps the model's code levels)")
    return api.lossy_levels(model) if lossy else levels


def _fmt_bits(bits: float) -> str:
    return f"{bits:,.1f}" if isinstance(bits, float) and not float(bits).is_integer() else f"{int(bits):,}"


@click.group(cls=HiercodecGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hiercodec")
def cli() -> None:
    """Lossless image compression with learned hierarchical autoregressive models.

    \b
    Examples:
      hiercodec compress photo.png photo.hc
      hiercodec decompress photo.hc back.png
      hiercodec cut --levels 2 photo.hc preview.hc
      hiercodec info photo.hc
      hiercodec verify photos/
      hiercodec models
      hiercodec bench photos/ --plot bench.png
      hiercodec train pixelcnn --config pixelcnn-small --out runs/try
      hiercodec export runs/try --name my-model
    """


@cli.command(short_help="Compress an image into a .hc file.")
@click.argument("src", metavar="IN", type=click.Path(path_type=Path))
@click.argument("out", metavar="OUT", type=click.Path(path_type=Path))
@click.option("--model", "-m", default="default", show_default=True, metavar="NAME",
              help="Model id or alias (see `hiercodec models`).")
@click.option("--lossy", is_flag=True,
              help="Keep only the model's code levels (models with a lossy mode, e.g. vqvae2): "
                   "the file decodes to the model's reconstruction, not the original pixels.")
@click.option("--levels", "-l", type=click.IntRange(min=1), default=None, metavar="K",
              help="Keep only the model's first K levels (a lossy file unless K is all of them; "
                   "`hiercodec info` names the levels).")
@click.option("--reconstruct", type=click.Choice(["mean", "sample"]), default=None,
              help="How the lossy file decodes, stored in it: `sample` draws the missing levels from the "
                   "model with --seed and --temperature (the same image on every machine), `mean` "
                   "reconstructs from the levels kept. [default: ham samples at 0.99, the paper's "
                   "temperature; the other families reconstruct]")
@click.option("--seed", type=click.IntRange(0, 2**64 - 1), default=0, show_default=True,
              help="With sampling: the seed of the draws.")
@click.option("--temperature", type=click.FloatRange(0.001, 65.535), default=None,
              help="With sampling: below 1 sharper, above 1 more varied, in steps of 0.001 "
                   "[default: the family's, else 1].")
@click.option("--force", "-f", is_flag=True, help="Overwrite OUT if it exists.")
@threads_option
def compress(src: Path, out: Path, model: str, lossy: bool, levels: int | None, reconstruct: str | None,
             seed: int, temperature: float | None, force: bool) -> None:
    """Compress the image IN into the .hc file OUT: losslessly, or with --lossy / --levels K
    keeping only the first levels of the model's hierarchy (a smaller, lossy file).

    IN is a PNG, JPEG, WebP, BMP or TIFF image with 8-bit samples: gray, gray+alpha, RGB or
    RGBA (palette images become RGB/RGBA). OUT is not overwritten unless --force is given.

    IN may also be a set of images of one size: a folder of images or an .npz file with an array
    `images` (N, H, W[, C]), e.g. MNIST digits. They go into one set file, coded as one image of
    them stacked top to bottom, so that a bits-back model (pixelvae) pays its initial bits once;
    `decompress` gives them back as an .npz file or a folder.
    Prints the file size and its bits per sample (bits/dim) next to the model's bound; for a
    lossy file also its bits per pixel and the levels it keeps.

    \b
    Example:
      hiercodec compress photo.png photo.hc
      hiercodec compress --model pixelcnn-s2 --force photo.png photo.hc
      hiercodec compress --model vqvae2 --lossy photo.png photo.hc
      hiercodec compress --model vqvae2 --levels 1 photo.png photo-top.hc
      hiercodec compress --model ham --lossy --seed 3 --temperature 0.95 photo.png photo.hc
      hiercodec compress --model pixelvae digits.npz digits.hc
    """
    from hiercodec import api, container
    from hiercodec.fileio import atomic_write
    from hiercodec.images import color_name

    levels = _kept_levels(lossy, levels, model)
    if levels is None and (reconstruct or seed or temperature is not None):
        raise click.BadParameter("--reconstruct, --seed and --temperature are for lossy files (--lossy, --levels K)",
                                 param_hint="--reconstruct")
    _check_paths(src, out, force)
    if src.is_dir() or src.suffix.lower() == ".npz":
        if levels is not None:
            raise click.BadParameter("a set of images is compressed losslessly", param_hint="--lossy/--levels")
        _compress_set(src, out, model, force)
        return
    image = api.load_image(src)
    sample = None if reconstruct is None else reconstruct == "sample"
    if sample is None and (seed or temperature is not None):
        sample = True
    data, report = api.encode_with_report(image, model, progress=_progress(), levels=levels, sample=sample,
                                          seed=seed, temperature=temperature)
    atomic_write(out, data, force)
    h, w, c = image.shape
    plus = f" + {report.initial_bits / report.dims:.3f} initial bits/dim" if report.initial_bits else ""
    click.echo(f"{out}: {len(data):,} bytes, {report.bits_per_dim:.3f} bits/dim "
               f"(model bound {report.bound_bits_per_dim:.3f} bits/dim{plus}; {w}x{h} {color_name(c)}, "
               f"model {report.model_id})")
    if levels is not None:
        kept = ", ".join(lv.name for lv in report.levels)
        draws = container.read_header(data).sampling
        how = (f", decodes by sampling the rest (seed {draws[0]}, temperature {draws[1] / 1000:g})" if draws
               else "")
        click.echo(f"  lossy: {8 * len(data) / (h * w):.4f} bits/pixel, levels kept: {kept}{how}")


def _compress_set(src: Path, out: Path, model: str, force: bool) -> None:
    """compress of a folder or an .npz file: one set file of all its images (format version 4)."""
    from hiercodec import api
    from hiercodec.fileio import atomic_write
    from hiercodec.images import color_name, load_set

    images = load_set(src)
    data, report = api.encode_set_with_report(images, model, progress=_progress())
    atomic_write(out, data, force)
    n, (h, w, c) = len(images), api.load_image(images[0]).shape
    plus = f" + {report.initial_bits / report.dims:.4f} initial bits/dim" if report.initial_bits else ""
    click.echo(f"{out}: {len(data):,} bytes for {n:,} images of {w}x{h} {color_name(c)}, "
               f"{8 * len(data) / n:,.1f} bits per image, {report.bits_per_dim:.4f} bits/dim "
               f"(model bound {report.bound_bits_per_dim:.4f} bits/dim{plus}; model {report.model_id})")


@cli.command(short_help="Decompress a .hc file into a PNG image.")
@click.argument("src", metavar="IN", type=click.Path(path_type=Path))
@click.argument("out", metavar="OUT", type=click.Path(path_type=Path))
@click.option("--levels", "-l", type=click.IntRange(min=1), default=None, metavar="K",
              help="Decode only the first K levels (progressive decoding; see `hiercodec info IN`).")
@click.option("--full-size", is_flag=True,
              help="With --levels, upsample a lower-resolution level to the image's size.")
@click.option("--max-pixels", type=click.IntRange(min=0), default=None, metavar="N",
              help="Refuse images larger than N pixels before decoding [default: 89478485, Pillow's "
                   "limit; 0: the format's 2^28]. Raise it only for files you trust.")
@click.option("--reconstruct", type=click.Choice(["mean", "sample"]), default=None,
              help="How the levels the file (or --levels) leaves out are made: `sample` draws them from "
                   "the model given the levels present (a full image, the same on every machine for "
                   "the same --seed and --temperature); `mean` reconstructs from the levels present "
                   "alone (ham: its feed-forward decoder). [default: what the file says: a lossy ham "
                   "file samples with its stored seed and temperature, other files reconstruct]")
@click.option("--sample", is_flag=True, help="Short for --reconstruct sample.")
@click.option("--seed", type=click.IntRange(0, 2**64 - 1), default=None,
              help="The seed of the draws (implies sampling) [default: the file's, else 0].")
@click.option("--temperature", type=click.FloatRange(0.001, 65.535), default=None,
              help="Below 1 sharper, above 1 more varied, in steps of 0.001 (implies sampling) "
                   "[default: the file's, else 1].")
@click.option("--force", "-f", is_flag=True, help="Overwrite OUT if it exists.")
@threads_option
def decompress(src: Path, out: Path, levels: int | None, full_size: bool, max_pixels: int | None,
               reconstruct: str | None, sample: bool, seed: int | None, temperature: float | None,
               force: bool) -> None:
    """Decompress the .hc file IN into the PNG image OUT (same pixels as the original).

    OUT must end in .png; for a set file (compressed from a folder or an .npz file) it is an
    .npz file (array `images`) or a folder that gets one PNG per image. The model the file was
    written with must be installed; a damaged or
    truncated file is refused (every level is checked with CRC32), never decoded wrongly.

    Progressive decoding: with --levels K (or for a file cut with `hiercodec cut`) only the first
    K levels are decoded. A `pyramid` file then gives the image at that level's resolution
    (--full-size repeats each sample to the image's size); a `grayscale` file cut after level 1
    its 4-bit gray image; any file without its alpha level the image without alpha. With
    --sample the missing levels are drawn from the model instead, exactly and seeded: a full
    image whose coarse content is the file's. A lossy `ham` file samples unless told
    --reconstruct mean (the seed and temperature chosen at compress time are in the file).

    \b
    Example:
      hiercodec decompress photo.hc back.png
      hiercodec decompress --levels 2 --full-size photo.hc preview.png
      hiercodec decompress --levels 2 --sample --seed 7 --temperature 0.9 photo.hc dream.png
    """
    from hiercodec import api, container
    from hiercodec.fileio import read_input
    from hiercodec.images import color_name, save_image, save_set

    _check_paths(src, out, force)
    data = read_input(src)
    count = container.read_header(data, max_pixels=container.MAX_PIXELS).count
    if count > 1:  # a set file: OUT is an .npz file or a folder
        if out.suffix and out.suffix.lower() != ".npz":
            raise click.BadParameter(f"{src} holds {count:,} images: OUT must end in .npz or be a folder "
                                     "(a name without suffix)", param_hint="OUT")
        _single_thread()
        start = time.perf_counter()
        limit = container.DECODE_MAX_PIXELS if max_pixels is None else (max_pixels or None)
        images = api.decode_set(data, progress=_progress(), max_pixels=limit)
        save_set(images, out, force=force)
        click.echo(f"{out}: {count:,} images of {images.shape[2]}x{images.shape[1]}, decoded in "
                   f"{time.perf_counter() - start:.1f} s")
        return
    if out.suffix.lower() != ".png":
        raise click.BadParameter(f"'{out}' must end in .png (hiercodec writes PNG images)",
                                 param_hint="OUT")
    _single_thread()
    start = time.perf_counter()
    limit = container.DECODE_MAX_PIXELS if max_pixels is None else (max_pixels or None)
    if sample and reconstruct == "mean":
        raise click.BadParameter("--sample and --reconstruct mean contradict each other", param_hint="--sample")
    if reconstruct == "mean" and (seed is not None or temperature is not None):
        raise click.BadParameter("--seed and --temperature go with sampling, not --reconstruct mean",
                                 param_hint="--seed/--temperature")
    how = True if sample or reconstruct == "sample" else (False if reconstruct == "mean" else None)
    image, report = api.decode_with_report(data, progress=_progress(), levels=levels, full_size=full_size,
                                           max_pixels=limit, sample=how, seed=seed, temperature=temperature)
    seconds = time.perf_counter() - start
    save_image(image, out, force=force)
    h, w, c = image.shape
    partial = f", levels {', '.join(lv.name for lv in report.levels)}" if levels or image.shape != report.geometry.shape else ""
    if report.sampled:
        partial += f", the rest sampled (seed {report.sampled[0]}, temperature {report.sampled[1] / 1000:g})"
    click.echo(f"{out}: {w}x{h} {color_name(c)}{partial}, decoded in {seconds:.1f} s")


@cli.command(short_help="Keep the first levels of a .hc file (a smaller, progressive file).")
@click.argument("src", metavar="IN", type=click.Path(path_type=Path))
@click.argument("out", metavar="OUT", type=click.Path(path_type=Path))
@click.option("--levels", "-l", type=click.IntRange(min=1), required=True, metavar="K",
              help="How many levels to keep, top first (see `hiercodec info IN`).")
@click.option("--force", "-f", is_flag=True, help="Overwrite OUT if it exists.")
def cut(src: Path, out: Path, levels: int, force: bool) -> None:
    """Write to OUT a .hc file holding only the first K levels of IN: a lossy preview that
    `hiercodec decompress` decodes to a coarser image (pyramid: a lower resolution; grayscale:
    the 4-bit gray image; any family: the image without its alpha). IN is not changed.

    \b
    Example:
      hiercodec cut --levels 2 photo.hc preview.hc
    """
    from hiercodec import api, container
    from hiercodec.fileio import atomic_write, read_input

    _check_paths(src, out, force)
    data = read_input(src)
    kept = api.cut(data, levels)
    atomic_write(out, kept, force)
    click.echo(f"{out}: {len(kept):,} bytes, {levels} of {container.read_header(kept).levels_total} levels "
               f"({100 * len(kept) / len(data):.1f}% of {src})")


@cli.command(short_help="Show the header and chunk table of a .hc file.")
@click.argument("file", metavar="FILE", type=click.Path(path_type=Path))
def info(file: Path) -> None:
    """Show what the .hc file FILE holds: geometry, model, coder, and per level the bytes
    written and bits per sample (bits/dim) next to the model's bound stored in the file.

    Reads the file's header and chunk table (and checks its CRC32s); the model need not be
    installed (when it is, the levels are named).

    Bits-back levels (models bitsback-toy-1, pixelvae) draw their latents from the bits of the
    levels coded under them, on one shared stream: the stream's bytes are shown on its first level.
    When a file has such levels, an "initial bits" column shows, per level, what a bits-back level
    paid because its stream held too few bits to draw latents from (a seed it pushed, or tiles it
    coded without bits-back): the file pays them on top of the model's bound.

    \b
    Example:
      hiercodec info photo.hc
    """
    from hiercodec import api
    from hiercodec.fileio import read_input

    d = api.info(read_input(file), level_names=True)
    echo = click.echo
    echo(f"file:     {file} ({d['file_bytes']:,} bytes, .hc format version {d['format_version']})")
    if d["count"] > 1:
        echo(f"images:   {d['count']:,} (a set file: its images coded stacked top to bottom; decompress "
             "gives an .npz file or a folder)")
    echo(f"image:    {d['width']}x{d['height']} {d['color']} ({d['channels']} channels, "
         f"{d['bit_depth']} bits per sample, {d['dims']:,} samples)")
    echo(f"model:    {d['model']} (weights sha256 {d['model_hash'][:16]})")
    echo(f"coder:    {d['coder']}")
    echo(f"tiles:    {d['tile'][1]}x{d['tile'][0]} ({d['tiles']} tile{'s' if d['tiles'] != 1 else ''})")
    echo(f"mode:     {d['mode']}, {d['levels_present']} of {d['levels_total']} levels present")
    if d["sampling"]:
        echo(f"decodes:  by sampling the missing levels (seed {d['sampling']['seed']}, temperature "
             f"{d['sampling']['temperature']:g}; decompress --reconstruct mean for the reconstruction)")
    shared = [s for s in d["streams"] if len(s) > 1]
    initial = bool(d["initial_bits"] or shared)  # bits-back levels: the column is shown, even when 0
    plus = f" + {d['initial_bits']:,} initial bits" if d["initial_bits"] else ""
    echo(f"size:     {d['bits_per_dim']:.3f} bits/dim (model bound {d['bound_bits_per_dim']:.3f} bits/dim{plus})")
    if d["level_names"]:
        echo(f"levels:   {', '.join(d['level_names'])} (decompress --levels K decodes the first K)")
    first = {i: s[0] for s in d["streams"] for i in s}
    rows = [(f"{lv['level']} {lv['name']}" + (" (bits-back)" if lv["bits_back"] else "") if "name" in lv else str(lv["level"]),
             f"(in {first[lv['level']]})" if lv["continues"] else f"{lv['bytes']:,}", f"{lv['bits_per_dim']:.3f}",
             f"{lv['bound_bits']:,}", f"{lv['bound_bits_per_dim']:.3f}",
             *([f"{lv['initial_bits']:,}"] if initial else [])) for lv in d["levels"]]
    rows.append(("header", f"{d['header_bytes']:,}", f"{8 * d['header_bytes'] / d['dims']:.3f}", "", "",
                 *([""] if initial else [])))
    rows.append(("total", f"{d['file_bytes']:,}", f"{d['bits_per_dim']:.3f}",
                 f"{d['bound_bits']:,}", f"{d['bound_bits_per_dim']:.3f}", *([f"{d['initial_bits']:,}"] if initial else [])))
    _table(("level", "bytes", "bits/dim", "bound bits", "bound bits/dim", *(["initial bits"] if initial else [])), rows)
    for s in shared:
        echo(f"  levels {s[0]}-{s[-1]} share one coded stream: its bytes are on level {s[0]}")
    if initial:
        echo("  initial bits: what bits-back levels paid because their stream held too few bits to draw latents "
             "from (a seed, or tiles coded without bits-back); the file pays them on top of the bound")


def _table(head: tuple[str, ...], rows: list[tuple[str, ...]], align: str = "") -> None:
    """A plain text table; align has one letter per column, 'l' or 'r' (default: first column
    left, the others right)."""
    align = align or "l" + "r" * (len(head) - 1)
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    for r in [head, *rows]:
        cells = [c.ljust(w) if a == "l" else c.rjust(w) for c, w, a in zip(r, widths, align)]
        click.echo("  " + "  ".join(cells).rstrip())


@cli.command(short_help="Check round trips; bound vs bits written per level.")
@click.argument("target", metavar="IMAGE_OR_DIR", type=click.Path(path_type=Path))
@click.option("--model", "-m", default="default", show_default=True, metavar="NAME",
              help="Model id or alias (see `hiercodec models`).")
@click.option("--lossy", is_flag=True, help="Verify lossy files (the model's code levels, as compress --lossy).")
@click.option("--levels", "-l", type=click.IntRange(min=1), default=None, metavar="K",
              help="Verify files of the model's first K levels (as compress --levels K).")
@threads_option
def verify(target: Path, model: str, lossy: bool, levels: int | None) -> None:
    """Compress and decompress images in memory and show, per level and in total, the exact
    model's bound in bits (the prior's negative log-likelihood of the level) next to the bits
    written, the coder's overhead, and whether the round trip gives back the same pixels (lossy
    files: the same code maps, and the reconstruction's PSNR). Nothing is written.

    Models with bits-back levels (bitsback-toy-1, pixelvae) also get an "initial bits" column:
    what a bits-back level paid because its stream held too few bits to draw latents from, which
    the file pays on top of the bound (the overhead is measured against both), and a line that
    splits its negative ELBO into reconstruction and KL. Levels coded on one shared stream show
    its bits written and overhead on the stream's first level.

    IMAGE_OR_DIR is an image, or a folder whose .png .jpg .jpeg .webp .bmp .tif images are all
    verified in name order. Exits with status 1 if any round trip fails.

    \b
    Example:
      hiercodec verify photo.png
      hiercodec verify --model default photos/
    """
    from hiercodec import api
    from hiercodec.images import color_name, images_in

    paths = images_in(target)
    many = target.is_dir()
    m = api.load_model(model)  # once, and a missing model fails before any image
    levels = _kept_levels(lossy, levels, m)
    _single_thread()
    failures = 0
    for n, path in enumerate(paths):
        if n:
            click.echo()
        try:
            r = api.verify(path, m, progress=_progress(), levels=levels)
        except HiercodecError as err:
            if not many:
                raise
            failures += 1
            _fail(_one_line(err))
            continue
        click.echo(f"{path}: {r.width}x{r.height} {color_name(r.channels)}, model {r.model_id}")
        # families with consistency-constrained coding also show the paper's bound (tables unrestricted)
        paper = r.constrained
        # bits-back levels: their initial bits, even when 0 (never silently)
        initial = bool(r.initial_bits or r.shared)
        rows = []
        for stream in r.streams():  # a shared stream's bits and overhead go on its first level
            for j, lv in enumerate(stream):
                rows.append((lv.name, *([_fmt_bits(lv.paper_bound_bits)] if paper else []), _fmt_bits(lv.bound_bits),
                             *([_fmt_bits(lv.initial_bits)] if initial else []),
                             f"{sum(x.written_bits for x in stream):,}" if j == 0 else f"(in {stream[0].name})",
                             f"{r.stream_overhead_percent(stream):+.3f}%" if j == 0 else ""))
        rows.append(("chunks", *([_fmt_bits(r.paper_bound_bits)] if paper else []), _fmt_bits(r.bound_bits),
                     *([_fmt_bits(r.initial_bits)] if initial else []), f"{r.written_bits:,}",
                     f"{r.overhead_percent:+.3f}%"))
        rows.append(("header", *([""] if paper else []), "", *([""] if initial else []), f"{r.header_bits:,}", ""))
        rows.append(("file", *([_fmt_bits(r.paper_bound_bits)] if paper else []), _fmt_bits(r.bound_bits),
                     *([_fmt_bits(r.initial_bits)] if initial else []), f"{r.file_bits:,}",
                     f"{r.file_overhead_percent:+.3f}%"))
        _table(("level", *(["paper bound"] if paper else []), "bound bits", *(["initial bits"] if initial else []),
                "bits written", "overhead"), rows)
        for stream in r.streams():
            if len(stream) > 1:
                click.echo(f"  {' + '.join(lv.name for lv in stream)}: one coded stream (bits written and "
                           f"overhead on {stream[0].name})")
        for lv in r.levels:  # bits-back levels: the negative ELBO in its terms, and what the file pays
            if lv.kl_bits is not None:
                flags = lv.bound_bits - lv.reconstruction_bits - lv.kl_bits  # 24 bits a seed, ~0 otherwise
                click.echo(f"  {lv.name}: negative ELBO {lv.bound_bits:,.1f} bits = reconstruction "
                           f"{lv.reconstruction_bits:,.1f} + KL {lv.kl_bits:,.1f} (estimates from the exact tables)"
                           + (f" + {flags:,.0f} flag bits" if flags >= 0.5 else "")
                           + f"; the file adds {lv.initial_bits:,.0f} initial bits")
                weight = _kl_weight(r.model_id)
                if weight not in (None, 1):  # AGAVE: trained on eq. 7, coded under the true bound (lambda = 1)
                    click.echo(f"  {lv.name}: with the training's lambda = {weight} (eq. 7, without its auxiliary "
                               f"term): reconstruction + {weight} x KL = "
                               f"{lv.reconstruction_bits + weight * lv.kl_bits:,.1f} bits; the file codes lambda = 1")
        if initial:
            click.echo("  initial bits: what bits-back levels paid because their stream held too few bits to draw "
                       "latents from (a seed, or tiles coded without bits-back); overhead is against bound + initial bits")
        verdict = "round trip ok" if r.roundtrip_ok else f"ROUND TRIP FAILED: {_one_line(r.error)}"
        if r.lossy and r.roundtrip_ok:
            quality = "" if r.psnr is None else f", PSNR {r.psnr:.2f} dB"
            verdict = f"lossy: levels decode to the coded values{quality}, {r.file_bits / (r.width * r.height):.4f} bits/pixel"
        bounds = f"bound {r.bound_bits_per_dim:.3f}" + (
            f", paper bound {r.paper_bound_bits / r.dims:.3f} without consistency coding" if paper else "") + (
            f", initial bits {r.initial_bits / r.dims:.3f}" if r.initial_bits else "")
        click.echo(f"  {r.bits_per_dim:.3f} bits/dim ({bounds}); {verdict}; "
                   f"encode {r.encode_seconds:.2f} s, decode {r.decode_seconds:.2f} s")
        failures += not r.roundtrip_ok
    if many:
        click.echo(f"\n{len(paths) - failures} of {len(paths)} images ok")
    if failures:
        _fail(f"{failures} of {len(paths)} round trips failed")
        click.get_current_context().exit(1)


@cli.command(short_help="List the installed models.")
def models() -> None:
    """List the installed models: id, aliases, family, shipped or user, description.

    User models live in $HIERCODEC_MODELS (default ~/.local/share/hiercodec/models).

    \b
    Example:
      hiercodec models
      hiercodec compress --model pixelcnn-s2 photo.png photo.hc
    """
    from hiercodec import api

    found = api.list_models()
    if not found:
        raise HiercodecError("no models are installed; reinstall hiercodec")
    rows = [(m.id, ", ".join(m.aliases) or "-", m.family, "shipped" if m.shipped else "user",
             m.description or "") for m in found]
    _table(("id", "aliases", "family", "source", "description"), rows, align="lllll")


def _kl_weight(model_id: str) -> float | None:
    """The KL weight a model was trained with (AGAVE's lambda), if its network has one."""
    from hiercodec.zoo import load

    return load(model_id).config.get("network", {}).get("kl_weight")


from .bench_cmd import bench  # noqa: E402  (bench_cmd does not import this module)

cli.add_command(bench)


from .train_cmd import export, train  # noqa: E402  (the commands register on the group above)

cli.add_command(train)
cli.add_command(export)


def main() -> None:
    cli(prog_name="hiercodec")


if __name__ == "__main__":
    main()
