"""Set files (format version 4): many images of one size in one .hc file, coded as one image of
them stacked top to bottom (`encode_set` / `decode_set`, `hiercodec compress DIR|.npz`)."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from hiercodec import api, container
from hiercodec.cli.main import cli
from hiercodec.errors import ImageError
from hiercodec.images import load_set, save_set


@pytest.fixture
def installed(tmp_path, monkeypatch):
    """The tiny pixelcnn model installed as a user model (decode_set finds models by id)."""
    import json

    from conftest import make_tiny_model
    from hiercodec.zoo import load

    folder = tmp_path / "models" / "tiny-test"
    folder.mkdir(parents=True)
    model = make_tiny_model(folder)
    (folder / "config.json").write_text(json.dumps(model.config))
    monkeypatch.setenv("HIERCODEC_MODELS", str(tmp_path / "models"))
    assert load("tiny-test").hash == model.hash
    return model


def images(n: int, h: int, w: int, c: int | None, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    shape = (n, h, w) if c is None else (n, h, w, c)
    base = (x * 9 + y * 5)[None, ..., None] if c else (x * 9 + y * 5)[None]
    return np.clip(base + rng.integers(0, 40, shape), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("c", [None, 3, 4])
def test_a_set_round_trips_and_says_how_many_images_it_holds(installed, c):
    tiny_model = installed
    batch = images(5, 6, 7, c)
    data, report = api.encode_set_with_report(batch, tiny_model)
    header = container.read_header(data)
    assert container.read_version(data) == 4 and header.count == 5 and (header.height, header.width) == (6, 7)
    assert report.geometry.height == 30  # coded as one image of the five stacked
    out = api.decode_set(data)
    np.testing.assert_array_equal(out, batch)
    stacked = api.decode(data)  # plain decode: the images stacked top to bottom
    assert stacked.shape[:2] == (30, 7)
    d = api.info(data)
    assert d["count"] == 5 and d["dims"] == batch.size


def test_a_set_of_one_is_an_ordinary_file(installed):
    tiny_model = installed
    one = images(1, 6, 7, None)
    data = api.encode_set(one, tiny_model)
    assert container.read_version(data) == 2 and data == api.encode(one[0], tiny_model)
    assert api.decode_set(data).shape == (1, 6, 7)


def test_sets_of_mixed_or_no_images_are_refused_with_one_line(tiny_model):
    with pytest.raises(ImageError, match="one geometry"):
        api.encode_set([images(1, 6, 7, None)[0], images(1, 7, 6, None)[0]], tiny_model)
    with pytest.raises(ImageError, match="no image"):
        api.encode_set([], tiny_model)
    with pytest.raises(ImageError, match="array"):
        api.encode_set("digits/", tiny_model)


def test_set_files_on_disk(tmp_path):
    batch = images(3, 5, 4, None)
    save_set(batch, tmp_path / "s.npz")
    np.testing.assert_array_equal(load_set(tmp_path / "s.npz"), batch)
    save_set(batch, tmp_path / "folder")
    assert sorted(p.name for p in (tmp_path / "folder").iterdir()) == ["00000.png", "00001.png", "00002.png"]
    np.testing.assert_array_equal(np.stack(load_set(tmp_path / "folder"))[..., 0], batch)
    np.savez(tmp_path / "bad.npz", digits=batch)
    with pytest.raises(ImageError, match="no array 'images'"):
        load_set(tmp_path / "bad.npz")
    np.savez(tmp_path / "float.npz", images=batch.astype(np.float32))
    with pytest.raises(ImageError, match="uint8"):
        load_set(tmp_path / "float.npz")


def test_cli_compresses_a_folder_or_npz_into_one_file_and_back(tmp_path, monkeypatch):
    monkeypatch.setenv("HIERCODEC_MODELS", str(tmp_path / "models"))
    batch = images(4, 8, 8, None, seed=1)
    np.savez(tmp_path / "digits.npz", images=batch)
    run = lambda *a: CliRunner().invoke(cli, [str(x) for x in a], catch_exceptions=False)  # noqa: E731
    r = run("compress", tmp_path / "digits.npz", tmp_path / "digits.hc")
    assert r.exit_code == 0 and "for 4 images of 8x8 gray" in r.output
    assert "images:   4" in run("info", tmp_path / "digits.hc").output
    r = run("decompress", tmp_path / "digits.hc", tmp_path / "back.npz")
    assert r.exit_code == 0, r.output
    np.testing.assert_array_equal(np.load(tmp_path / "back.npz")["images"], batch)
    r = run("decompress", tmp_path / "digits.hc", tmp_path / "back.png")
    assert r.exit_code == 2 and "must end in .npz or be a folder" in r.output
    r = run("compress", "--lossy", tmp_path / "digits.npz", tmp_path / "lossy.hc")
    assert r.exit_code != 0 and not (tmp_path / "lossy.hc").exists()
