"""Golden files (bitstreams/FORMAT.md, "Compatibility"): every bitstreams/*.hc decodes, forever, to
exactly the pixels of the PNG beside it, and re-encoding that PNG with the model named in the header
gives the identical bytes (the encoder is deterministic). bitstreams/make_golden.py writes them.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from hiercodec import container
from hiercodec.codec import decode_image, encode_image
from hiercodec.zoo import load

BITSTREAMS = Path(__file__).resolve().parent.parent / "bitstreams"
GOLDEN = sorted(BITSTREAMS.glob("*.hc"))
NO_GOLDEN = "no golden files in bitstreams/ yet: run `python bitstreams/make_golden.py` with the final model"


def _script():
    spec = importlib.util.spec_from_file_location("make_golden", BITSTREAMS / "make_golden.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


make_golden = _script()
golden = pytest.mark.parametrize("path", GOLDEN or [pytest.param(None, marks=pytest.mark.skip(reason=NO_GOLDEN))],
                                 ids=lambda p: p.stem if p else "none")


def png_of(path):
    png = path.with_suffix(".png")
    assert png.is_file(), f"{path.name} has no {png.name} beside it: a golden file must come with the image it decodes to"
    return png


@golden
def test_golden_file_has_its_png(path):
    png_of(path)


@golden
def test_golden_file_decodes_to_its_png(path):
    png = png_of(path)
    data = path.read_bytes()
    box = container.read(data)
    h = box.header
    lossy = path.stem in make_golden.LEVELS  # a file of the first K levels: its PNG is the reconstruction
    assert h.lossy == lossy and (box.levels_present == h.levels_total) != lossy
    expected = make_golden.read_png(png)
    if not lossy:
        # a set file's PNG holds its images stacked top to bottom
        assert (h.height * h.count, h.width, h.channels) == expected.shape, f"{path.name}: header geometry vs PNG"
    image, report = decode_image(data)  # the model named in the header, from the zoo
    image = image if image.ndim == 3 else image[..., None]
    assert image.shape == expected.shape and image.dtype == np.uint8
    np.testing.assert_array_equal(image, expected, err_msg=f"{path.name} no longer decodes to {png.name}")
    assert report.file_bytes == len(data)


@golden
def test_golden_file_reencodes_identically(path):
    png = png_of(path)
    data = path.read_bytes()
    header = container.read_header(data)
    model = load(header.model_id)
    if not model.family.exact_encoder:
        pytest.skip(f"{header.model_id}'s encoder is float (VQ codes may differ between machines; any codes "
                    "make a valid file): decoding is what golden files pin")
    again, _ = encode_image(model, make_golden.read_png(png), count=header.count)
    version = container.read(data).version
    if version != container.FORMAT_VERSION:  # an older file: the same chunks, framed in its own version
        again = container.write(container.read(again), version=version)
    assert again == data, f"re-encoding {png.name} with {header.model_id} gives other bytes than {path.name}"


def test_golden_files_cover_every_format_version():
    """Version 1 files (all written before shared streams) keep decoding; version 2 has a file with
    a bits-back level sharing its stream and reporting its initial bits; version 3 a lossy file
    that decodes by sampling, the same pixels on every machine; version 4 sets of images."""
    boxes = {path.stem: container.read(path.read_bytes()) for path in GOLDEN}
    assert {box.version for box in boxes.values()} == set(container.VERSIONS)
    toy = boxes["bitsback-toy-rgba-21x14"]
    assert toy.version == 2 and [c.continues for c in toy.chunks] == [False, True, False]
    assert toy.chunks[1].data == b"" and toy.streams() == [range(0, 2), range(2, 3)]
    sampled = boxes["ham-sampled-rgb-40x36"]  # version 3: a lossy file that decodes by sampling
    assert sampled.version == 3 and sampled.header.sampling == make_golden.SAMPLED["ham-sampled-rgb-40x36"]
    sets = [box for box in boxes.values() if box.version == 4]  # version 4: sets of images in one file
    assert sets and all(box.header.count > 1 for box in sets)


def test_make_golden_writes_verified_files_and_never_overwrites(tmp_path):
    name = "strip-57x1"  # the fastest; the script checks that each file decodes before writing it
    assert make_golden.main(["--out", str(tmp_path), "--only", name]) == 0
    hc, png = tmp_path / f"{name}.hc", tmp_path / f"{name}.png"
    data = hc.read_bytes()
    np.testing.assert_array_equal(make_golden.read_png(png), make_golden.golden_image(name))
    assert sorted(p.name for p in tmp_path.iterdir()) == [hc.name, png.name]
    # refuses to overwrite, and leaves the files alone
    hc.write_bytes(b"committed")
    assert make_golden.main(["--out", str(tmp_path), "--only", name]) != 0
    assert hc.read_bytes() == b"committed"
    assert make_golden.main(["--out", str(tmp_path), "--only", name, "--force"]) == 0
    assert hc.read_bytes() == data  # deterministic
    committed = BITSTREAMS / f"{name}.hc"
    if committed.is_file() and container.read_header(committed.read_bytes()).model_id == load("default").id:
        old = container.read(committed.read_bytes()).version
        assert committed.read_bytes() == container.write(container.read(data), version=old), \
            "make_golden.py no longer reproduces the committed golden file"


def test_golden_content_is_deterministic():
    for name, (h, w, c, _) in make_golden.GOLDEN.items():
        a, b = make_golden.golden_image(name), make_golden.golden_image(name)
        assert a.shape == (h, w, c) and a.dtype == np.uint8
        np.testing.assert_array_equal(a, b)
        if name in make_golden.BINARY:  # for a binary model: 0s and 255s, both in quantity
            assert set(np.unique(a[..., 0])) == {0, 255} and 0.1 < (a[..., 0] > 0).mean() < 0.9, name
        else:
            assert len(np.unique(a[..., 0])) > 4, f"{name}: content should not be flat"
