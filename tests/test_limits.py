"""Decoding work is bounded before it starts: a header that claims a huge image is refused at once
(max_pixels, default Pillow's 89,478,485), by the library and the CLI, unless the caller raises it."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest
from click.testing import CliRunner

import hiercodec
from hiercodec import container
from hiercodec.cli.main import cli
from hiercodec.codec import decode_image, encode_image
from hiercodec.errors import FormatError
from hiercodec.zoo import load


@pytest.fixture(scope="module")
def small_file() -> bytes:
    image = np.random.default_rng(0).integers(0, 256, (3, 5, 3), dtype=np.uint8)
    return encode_image(load("default"), image)[0]


def forged(data: bytes, height: int, width: int) -> bytes:
    """`data` with a header claiming height x width (the model's 64-pixel tiles), CRCs recomputed."""
    box = container.read(data)
    header = dataclasses.replace(box.header, height=height, width=width, tile_height=64, tile_width=64)
    return container.write(dataclasses.replace(box, header=header))


def test_a_huge_claimed_image_is_refused_at_once(small_file):
    data = forged(small_file, 16384, 16384)  # 2^28 pixels: within the format, above the decoder's limit
    start = time.perf_counter()
    with pytest.raises(FormatError, match="above this reader's limit of 89478485"):
        hiercodec.decode(data)
    with pytest.raises(FormatError, match="limit of 1000 "):
        decode_image(forged(small_file, 40, 40), max_pixels=1000)
    assert time.perf_counter() - start < 1.0


def test_the_limit_can_be_raised_for_trusted_files(small_file):
    assert hiercodec.decode(small_file, max_pixels=15).shape == (3, 5, 3)
    with pytest.raises(FormatError, match="limit of 14 "):
        hiercodec.decode(small_file, max_pixels=14)
    assert hiercodec.decode(small_file, max_pixels=None).shape == (3, 5, 3)  # the format's own limit


def test_cli_max_pixels(tmp_path, small_file):
    src = tmp_path / "huge.hc"
    src.write_bytes(forged(small_file, 16384, 16384))
    result = CliRunner().invoke(cli, ["decompress", str(src), str(tmp_path / "out.png")])
    assert result.exit_code == 1 and "above this reader's limit of 89478485" in result.output
    assert not (tmp_path / "out.png").exists()
    ok = tmp_path / "small.hc"
    ok.write_bytes(small_file)
    refused = CliRunner().invoke(cli, ["decompress", "--max-pixels", "14", str(ok), str(tmp_path / "a.png")])
    assert refused.exit_code == 1 and "limit of 14 " in refused.output
    for limit in ("15", "0"):
        result = CliRunner().invoke(cli, ["decompress", "--max-pixels", limit, str(ok), str(tmp_path / f"{limit}.png")])
        assert result.exit_code == 0, result.output
