"""The family contract (issue 12): what every registered model family must give, checked on a tiny
model of each (tests/conftest.py's TINY_MODELS; a registered family without one fails here).

Per family:
- round trips of odd shapes in every colour mode (gray, gray + alpha, RGB, RGBA), and of random
  ones (hypothesis);
- the encoder's tables equal the decoder's, bit for bit, at every level (a bits-back level: coded
  alone on a fresh coder, it pops back its values);
- batch sizes (raster.MAX_TILES, TILE_BATCH, POSITIONS_PER_BLOCK), the thread count and the
  position of a tile do not change a table, nor a byte of the file;
- a file cut after each level decodes to the family's image of the levels kept (a cut inside a
  shared stream is refused);
- damaged chunks (CRC32s recomputed) decode to a HiercodecError or the very same image;
- a forged large geometry fails at once;
- some golden file in bitstreams/ is written with a model of the family, and golden files decode
  to the same pixels when torch's kernels are forced to another instruction set.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import TINY_MODELS
from hiercodec import container
from hiercodec.codec import decode_image, encode_image, level_streams
from hiercodec.errors import HiercodecError, ModelNotFoundError
from hiercodec.families import conditioning, raster
from hiercodec.families.base import ScheduledLevel
from hiercodec.families.raster import RasterLevel
from hiercodec.families.registry import family_names
from hiercodec.geometry import Geometry
from hiercodec.zoo import resolve
from test_exact import assert_encoder_matches_decoder, fixed_threads, levels_of, natural

FAMILIES = family_names()
per_family = pytest.mark.parametrize("family", FAMILIES)
COLOURS = {1: "gray", 2: "gray-alpha", 3: "rgb", 4: "rgba"}
BITSTREAMS = Path(__file__).resolve().parent.parent / "bitstreams"
GOLDEN = sorted(BITSTREAMS.glob("*.hc"))


@pytest.fixture
def model(family, request):
    """The tiny model of the family under test."""
    if family not in TINY_MODELS:
        pytest.fail(f"family {family!r} is registered but has no tiny model: add its fixture to "
                    "TINY_MODELS in tests/conftest.py")
    return request.getfixturevalue(TINY_MODELS[family])


def loader_for(model):
    """A decode_image loader that knows only `model`, by its id."""

    def loader(name: str):
        if name != model.id:
            raise ModelNotFoundError(f"model '{name}' is not installed (this test knows only {model.id})")
        return model

    return loader


def image_of(seed: int, h: int, w: int, c: int, kind: str = "natural") -> np.ndarray:
    """Natural-ish content (an alpha channel mostly opaque, as alpha planes are), uniform noise, or
    only 0s and 255s (content that drives activations to their clamps)."""
    rng = np.random.default_rng(seed)
    if kind == "noise":
        return rng.integers(0, 256, (h, w, c), dtype=np.uint8)
    if kind == "extremes":
        return rng.choice(np.array([0, 255], np.uint8), (h, w, c))
    image = natural(rng, h, w, c)
    if c in (2, 4):
        image[..., -1] = np.where(rng.random((h, w)) < 0.8, 255, image[..., -1])
    return image


def analysis(model, image: np.ndarray) -> list[tuple[object, dict, np.ndarray]]:
    """(level, values of the levels above, its values) for every level of the image, top first."""
    above: dict[str, np.ndarray] = {}
    out = []
    for level in levels_of(model, image):
        values = level.analyze(image, above)
        out.append((level, dict(above), values))
        above[level.name] = values
    return out


def round_trip(model, image: np.ndarray) -> bytes:
    data, report = encode_image(model, image)
    decoded, dreport = decode_image(data, loader=loader_for(model))
    assert decoded.dtype == np.uint8 and decoded.shape == image.shape, (decoded.dtype, decoded.shape, image.shape)
    np.testing.assert_array_equal(decoded, image)
    assert report.file_bytes == len(data) == dreport.file_bytes
    return data


def test_every_registered_family_has_a_tiny_model():
    missing = [name for name in FAMILIES if name not in TINY_MODELS]
    assert not missing, f"registered families without a tiny model in tests/conftest.py TINY_MODELS: {missing}"


@per_family
def test_tiny_model_is_of_its_family(family, model):
    assert model.config["family"] == family and model.family.name == family


# -- 1. round trips -------------------------------------------------------------------------------

SHAPES = [(1, 1), (7, 13), (19, 31)]


@per_family
@pytest.mark.parametrize("channels", [1, 2, 3, 4], ids=COLOURS.get)
@pytest.mark.parametrize("size", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_round_trip(family, model, size, channels):
    image = image_of(size[0] * 100 + size[1] + channels, *size, channels)
    data = round_trip(model, image)
    levels = levels_of(model, image)
    names = [level.name for level in levels]
    assert len(set(names)) == len(names), f"level names must be unique: {names}"
    assert (names[-1] == "alpha") == (channels in (2, 4)), names  # alpha: the same last level everywhere
    box = container.read(data)
    assert box.levels_present == box.header.levels_total == len(levels) and not box.header.lossy


@per_family
@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(h=st.integers(1, 20), w=st.integers(1, 20), c=st.integers(1, 4), seed=st.integers(0, 2**32 - 1),
       kind=st.sampled_from(["natural", "noise", "extremes"]))
def test_round_trip_random_images(family, model, h, w, c, seed, kind):
    round_trip(model, image_of(seed, h, w, c, kind))


# -- 2. the encoder's tables are the decoder's -----------------------------------------------------

TABLE_CASES = [((1, 1, 3), "natural"), ((1, 13, 1), "natural"), ((13, 1, 3), "noise"), ((7, 13, 4), "natural"),
               ((9, 10, 3), "extremes"), ((16, 16, 1), "natural"), ((19, 31, 3), "natural"), ((19, 31, 2), "noise")]


@per_family
@pytest.mark.parametrize("shape, kind", TABLE_CASES, ids=[f"{s[0]}x{s[1]}-{COLOURS[s[2]]}-{k}" for s, k in TABLE_CASES])
def test_encoder_tables_equal_decoder_tables(family, model, shape, kind):
    """Every level, given the true values above: each table the decoder computes, fed the true
    symbols, equals the encoder's bit for bit (tests/test_exact.py assert_encoder_matches_decoder)."""
    image = image_of(sum(shape) + len(kind), *shape, kind)
    assert assert_encoder_matches_decoder(model, image) > 0


# -- 3. batch sizes, thread counts and tile positions change no table ------------------------------


def encoder_tables(model, levels) -> list[np.ndarray]:
    """The encoder's tables of every ScheduledLevel for the given analysis, in an order no batch
    size changes: a raster level's by (tile, row, column, channel) (the groups of its schedule
    hold a position of every tile of a batch, so batch sizes regroup them), any other level's in
    schedule order. A bits-back level's tables are in the file's bytes only."""
    out = []
    for level, above, values in levels:
        if not isinstance(level, ScheduledLevel):
            continue
        groups = [t for _, t in level.encode_groups(values, above)]
        if not isinstance(level, RasterLevel):
            out += groups
            continue
        lay, cc = level.layout, level.channels
        valid = lay.valid()
        tables = np.full((lay.count, lay.tile_h, lay.tile_w, cc, groups[0].shape[1]), -1, np.int64)
        order = ((b, i, j, c) for b in level.batches() for i in range(lay.tile_h) for j in range(lay.tile_w)
                 for c in range(cc))
        for (b, i, j, c), table in zip(order, groups, strict=True):
            tiles = np.arange(b.start, b.stop)[valid[b, i, j]]
            assert len(table) == len(tiles)
            tables[tiles, i, j, c] = table
        assert (tables[valid] >= 1).all()
        out.append(tables)
    return out


def assert_same_coding(model, image: np.ndarray, reference: tuple[bytes, list, list[np.ndarray]],
                       same_file: bool = True) -> None:
    """Under the setting in force: the tables of the reference analysis are the reference tables,
    bit for bit. With `same_file`, the file's bytes are the reference file's (for a family whose
    encoder is float, unless its analysis changed: then the tables are what is compared) and the
    reference file decodes; without (a setting that is part of the format), the image round trips."""
    data, levels, tables = reference
    again = encoder_tables(model, levels)
    assert len(again) == len(tables)
    for g, (a, b) in enumerate(zip(again, tables)):
        assert a.dtype == b.dtype == np.int64
        np.testing.assert_array_equal(a, b, err_msg=f"tables {g} (of level or group) changed")
    if not same_file:
        round_trip(model, image)
        return
    new, _ = encode_image(model, image)
    if new != data:
        same_values = all(np.array_equal(v1, v2) for (_, _, v1), (_, _, v2) in zip(analysis(model, image), levels))
        assert not model.family.exact_encoder and not same_values, "the file's bytes changed"
    decoded, _ = decode_image(data, loader=loader_for(model))
    np.testing.assert_array_equal(decoded, image)


def reference_coding(model, image: np.ndarray) -> tuple[bytes, list, list[np.ndarray]]:
    levels = analysis(model, image)
    return encode_image(model, image)[0], levels, encoder_tables(model, levels)


# Batch sizes of hiercodec.families.raster: name -> (module attributes, value). TILE_BATCH (tiles per
# whole-tile or embedding pass) and POSITIONS_PER_BLOCK (positions per encoder block) bound memory
# only: the file is the same. MAX_TILES (tiles coded in lockstep) is part of the format (FORMAT.md:
# batches of 256 tiles set the order of the groups): the tables are the same, the file's order not.
KNOBS = {
    "max-tiles-1": (((raster, "MAX_TILES"),), 1),
    "max-tiles-4": (((raster, "MAX_TILES"),), 4),
    "tile-batch-1": (((raster, "TILE_BATCH"), (conditioning, "TILE_BATCH")), 1),
    "tile-batch-3": (((raster, "TILE_BATCH"), (conditioning, "TILE_BATCH")), 3),
    "positions-per-block-7": (((raster, "POSITIONS_PER_BLOCK"),), 7),
}


@per_family
@pytest.mark.parametrize("knob", KNOBS)
def test_batch_sizes_change_no_table(family, model, knob, monkeypatch):
    """Tiles coded in lockstep (MAX_TILES), tiles per whole-tile or embedding pass (TILE_BATCH),
    positions per encoder block (POSITIONS_PER_BLOCK): every table of every tile and position
    the same, bit for bit; the same file (MAX_TILES: the file of that schedule round trips). The
    image has 2 x 3 tiles of the family's tile size (4 + 2 in batches of 4)."""
    t = min(model.family.tile, 64)
    image = image_of(5, 2 * t - 3, 3 * t - 5, 3)
    raster_levels = [level for level in levels_of(model, image) if isinstance(level, RasterLevel)]
    if not raster_levels:
        pytest.skip(f"{family} has no raster level: these batch sizes belong to hiercodec.families.raster")
    assert any(level.layout.count > 1 for level in raster_levels), "the image must have several tiles"
    reference = reference_coding(model, image)
    targets, value = KNOBS[knob]
    for module, name in targets:
        monkeypatch.setattr(module, name, value)
    lockstep = knob.startswith("max-tiles")
    if lockstep:
        assert any(len(level.batches()) > 1 for level in raster_levels)
    assert_same_coding(model, image, reference, same_file=not lockstep)


@per_family
def test_thread_count_changes_no_table(family, model, monkeypatch):
    """1 and 2 torch threads for every product (the codec's own raising of the count disabled):
    the same tables and the same file; the file decodes with 2 threads."""
    image = image_of(6, 19, 31, 3)
    fixed_threads(monkeypatch)
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        reference = reference_coding(model, image)
        torch.set_num_threads(2)
        assert torch.get_num_threads() == 2
        assert_same_coding(model, image, reference)
    finally:
        torch.set_num_threads(previous)


def tables_by_tile(level, values: np.ndarray, decoder: bool) -> np.ndarray:
    """The first level's tables, (groups, tiles, K): the encoder's, or the decoder's fed the true
    symbols (every position valid: the level is a whole number of tiles)."""
    groups = list(level.encode_groups(values, {}))
    if not decoder:
        return np.stack([t for _, t in groups])
    gen, out = level.decode_groups({}), []
    table = next(gen)
    for symbols, _ in groups:
        out.append(table)
        try:
            table = gen.send(symbols)
        except StopIteration:
            pass
    return np.stack(out)


@per_family
@pytest.mark.parametrize("channels", [1, 3], ids=COLOURS.get)
def test_tables_identical_at_any_tile_position(family, model, channels):
    """The first level's content of one tile, coded alone and as each tile of a 3 x 3 grid with other
    content around it: the same tables, the encoder's and the decoder's. Only the first level:
    the levels below it are conditioned on the level above around their tile (its halo), so their
    tables rightly depend on what lies around the tile."""
    first = levels_of(model, np.zeros((1, 1, channels), np.uint8))[0]
    if not isinstance(first, RasterLevel):
        pytest.skip(f"{family}'s first level ({first.name}) is not tiled: it codes the whole image at once")
    t = model.family.tile
    small, big = Geometry(t, t, channels), Geometry(3 * t, 3 * t, channels)
    alone_level, level = (model.family.levels(g, model.family.layout(g))[0] for g in (small, big))
    assert alone_level.layout.count == 1 and level.layout.count == 9, "one tile of the family's tile size, 3 x 3"
    th, tw = level.layout.tile_h, level.layout.tile_w
    assert (alone_level.layout.tile_h, alone_level.layout.tile_w) == (th, tw)
    rng = np.random.default_rng(21 + channels)
    content = alone_level.analyze(image_of(rng.integers(1 << 30), t, t, channels), {})
    for decoder in (False, True):
        alone = tables_by_tile(alone_level, content, decoder)
        assert alone.shape[1] == 1
        for r, c in [(0, 0), (1, 2), (2, 1), (1, 1)]:
            values = level.analyze(image_of(rng.integers(1 << 30), 3 * t, 3 * t, channels), {})
            values[r * th : (r + 1) * th, c * tw : (c + 1) * tw] = content
            tables = tables_by_tile(level, values, decoder)
            assert tables.shape[1] == 9
            np.testing.assert_array_equal(tables[:, 3 * r + c], alone[:, 0],
                                          err_msg=f"tile ({r}, {c}), {'decoder' if decoder else 'encoder'}")


# -- 4. a file cut after each level -----------------------------------------------------------------


@per_family
@pytest.mark.parametrize("channels", [1, 2, 3, 4], ids=COLOURS.get)
def test_file_cut_after_each_level_decodes(family, model, channels):
    """After each level K that ends a coded stream: cut(file, K) is the file encode(levels=K) writes,
    a lossy file that decodes to the family's image of the first K levels' true values (full size
    on request: the image's height and width), as the whole file decoded with levels=K does. A cut inside a shared stream is
    refused (the whole file still decodes with levels=K, its streams whole)."""
    image = image_of(40 + channels, 9, 11, channels)
    data = round_trip(model, image)
    levels = analysis(model, image)
    n, geometry, loader = len(levels), Geometry(*image.shape), loader_for(model)
    ends = {s.stop for s in level_streams([level for level, _, _ in levels])}
    assert n in ends
    for k in range(1, n + 1):
        kept = {level.name: values for level, _, values in levels[:k]}
        expected = model.family.reconstruct(kept, geometry)
        expected_full = model.family.reconstruct(kept, geometry, full_size=True)
        assert expected.dtype == np.uint8 and expected.ndim == 3
        assert expected_full.shape[:2] == image.shape[:2]
        whole, _ = decode_image(data, loader=loader, levels=k)
        np.testing.assert_array_equal(whole, expected, err_msg=f"levels={k}")
        if k not in ends:
            with pytest.raises(HiercodecError, match="share one coded stream"):
                container.cut(data, k)
            with pytest.raises(HiercodecError, match="share one coded stream"):
                encode_image(model, image, levels=k)
            continue
        part = container.cut(data, k)
        header = container.read_header(part)
        assert header.lossy == (k < n) and header.levels_total == n
        assert part == encode_image(model, image, levels=k)[0], f"encode(levels={k}) is not the cut file"
        decoded, report = decode_image(part, loader=loader)
        assert decoded.dtype == np.uint8 and decoded.shape == expected.shape
        np.testing.assert_array_equal(decoded, expected, err_msg=f"cut after {k} of {n} levels")
        assert [lv.name for lv in report.levels] == [level.name for level, _, _ in levels[:k]]
        if k == min(ends):  # the coarsest file (the others: the same reconstruction, checked above)
            full, _ = decode_image(part, loader=loader, full_size=True)
            np.testing.assert_array_equal(full, expected_full, err_msg=f"cut after {k}, full size")
    np.testing.assert_array_equal(expected, image)


# -- 5. damaged chunks ------------------------------------------------------------------------------


@per_family
def test_damaged_chunks_never_decode_to_a_wrong_image(family, model):
    """In every chunk: a flipped byte is refused by its CRC32; with the CRC32s recomputed (a crafted
    file, so that the decoder really decodes the damage), bit flips and words cut off or added end
    in a HiercodecError or the very same image, never another."""
    from test_corruption import attempt, rewrite_chunk

    image = image_of(30, 9, 10, 4)
    data = round_trip(model, image)
    loader = loader_for(model)
    chunks = container.read(data).chunks
    rng = np.random.default_rng(31)
    outcomes = {"error": 0, "image": 0}
    offset = len(data) - sum(len(c.data) for c in chunks)  # the chunks follow the header
    for index, chunk in enumerate(chunks):
        if not chunk.data:  # it continues the previous level's stream: no bytes of its own
            assert chunk.continues
            continue
        assert data[offset : offset + len(chunk.data)] == chunk.data
        damaged = bytearray(data)
        damaged[offset + int(rng.integers(len(chunk.data)))] ^= 0xFF
        kind, _ = attempt(bytes(damaged), loader)
        assert kind == "error", f"chunk {index}: a flipped byte behind a stale CRC32 decoded"
        payload = chunk.data
        variants = [payload[:-4], payload + b"\x00" * 4]
        for bit in rng.choice(8 * len(payload), size=min(6, 8 * len(payload)), replace=False):
            flipped = bytearray(payload)
            flipped[bit // 8] ^= 1 << (bit % 8)
            variants.append(bytes(flipped))
        for new in variants:
            kind, result = attempt(rewrite_chunk(data, index, new), loader)
            outcomes[kind] += 1
            if kind == "image":
                np.testing.assert_array_equal(result, image, err_msg=f"chunk {index} damaged: another image")
        offset += len(chunk.data)
    assert outcomes["error"] > outcomes["image"], outcomes


# -- 6. a forged large geometry -----------------------------------------------------------------------


@per_family
def test_forged_large_geometry_fails_at_once(family, model):
    """A 1 x 1 file whose header (CRC32 recomputed) claims 2048 x 2048, with the tile size the model
    uses for that size (so that the decoder starts on the coded data): a HiercodecError in under a
    second, having decoded a tiny part of the claimed image."""
    one, _ = encode_image(model, image_of(1, 1, 1, 3))
    box = container.read(one)
    geometry = Geometry(2048, 2048, 3)
    layout = model.family.layout(geometry)
    assert len(model.family.levels(geometry, layout)) == box.header.levels_total
    header = dataclasses.replace(box.header, height=2048, width=2048, tile_height=layout.tile_h,
                                 tile_width=layout.tile_w)
    forged = container.write(dataclasses.replace(box, header=header))
    from test_corruption import time_limit

    decoded: list[int] = []  # symbols decoded before it stops
    start = time.perf_counter()
    with time_limit(10.0), pytest.raises(HiercodecError):  # a regression fails in 10 s, not hours
        decode_image(forged, loader=loader_for(model), progress=decoded.append)
    elapsed = time.perf_counter() - start
    assert sum(decoded) < 2048 * 2048 * 3 // 100, f"decoded {sum(decoded)} symbols before it stopped"
    assert elapsed < 1.0, f"the forged file took {elapsed:.2f} s to refuse"


# -- 7, 8. golden files ---------------------------------------------------------------------------


def golden_models() -> dict[Path, tuple[str, str, bool, int]]:
    """Each golden file: (model id, its model's family from its zoo config, lossy, pixels)."""
    out = {}
    for path in GOLDEN:
        h = container.read_header(path.read_bytes())
        out[path] = (h.model_id, resolve(h.model_id).family, h.lossy, h.height * h.width)
    return out


@per_family
def test_family_has_a_golden_file(family):
    """bitstreams/ holds a file written with a shipped model of every registered family (a family
    ships a model and pins its format with bitstreams/make_golden.py)."""
    files = [path.name for path, (model_id, fam, _, _) in golden_models().items() if fam == family]
    assert files, f"no golden file in bitstreams/ is written with a {family} model: ship one and add a file"
    for name in files:
        model_id = container.read_header((BITSTREAMS / name).read_bytes()).model_id
        assert resolve(model_id).shipped, f"{name}: model {model_id} is not shipped with hiercodec"


def read_png(path: Path) -> np.ndarray:
    """A golden PNG as uint8 (height, width, channels)."""
    from PIL import Image

    with Image.open(path) as im:
        channels = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4}[im.mode]
        a = np.asarray(im, dtype=np.uint8)
    return a.reshape(a.shape[0], a.shape[1], channels)


_DECODE = """
import hashlib, json, sys
import numpy as np, torch
from hiercodec import engine
from hiercodec.codec import decode_image
import numba
out = {"capability": torch.backends.cpu.get_cpu_capability(), "numba_cpu": numba.config.CPU_NAME,
       "engine": engine.active(), "files": {}}
for path in sys.argv[1:]:
    image, _ = decode_image(open(path, "rb").read())
    image = image if image.ndim == 3 else image[..., None]
    out["files"][path] = [list(image.shape), str(image.dtype), hashlib.sha256(image.tobytes()).hexdigest()]
print(json.dumps(out))
"""


def test_golden_files_decode_alike_on_another_instruction_set():
    """The cheapest stand-in for another CPU: a subprocess whose torch kernels are forced to no SIMD
    (ATEN_CPU_CAPABILITY=default), whose MKL is held to SSE4.2 and whose compiled engine is built
    for a generic x86-64 (NUMBA_CPU_NAME=generic: no AVX) decodes golden files to exactly the
    pixels of their PNGs, which this process's best kernels decode to (tests/test_golden.py).
    Decoding every golden file takes minutes with the shipped models, so the smallest lossless and
    the smallest lossy file of every model that has golden files: every family, every shipped model
    with golden files, every colour mode."""
    if torch.backends.cpu.get_cpu_capability() == "DEFAULT":
        pytest.skip("this process's torch already runs without SIMD: no other instruction set to compare")
    chosen: dict[tuple[str, bool], tuple[Path, int]] = {}
    for path, (model_id, _, lossy, pixels) in golden_models().items():
        best = chosen.get((model_id, lossy))
        if best is None or pixels < best[1]:
            chosen[model_id, lossy] = (path, pixels)
    paths = sorted(str(path) for path, _ in chosen.values())
    models = golden_models()
    assert {models[Path(p)][1] for p in paths} >= set(FAMILIES)
    assert {container.read_header(Path(p).read_bytes()).channels for p in paths} == {1, 2, 3, 4}
    env = dict(os.environ, ATEN_CPU_CAPABILITY="default", MKL_ENABLE_INSTRUCTIONS="SSE4_2",
               OMP_WAIT_POLICY="PASSIVE", NUMBA_CPU_NAME="generic")
    run = subprocess.run([sys.executable, "-c", _DECODE, *paths], env=env, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["capability"] == "DEFAULT", f"ATEN_CPU_CAPABILITY=default did not take: {out['capability']}"
    assert out["numba_cpu"] == "generic" and out["engine"], "the subprocess's engine is not the generic build"
    assert sorted(out["files"]) == paths
    for path in paths:
        expected = read_png(Path(path).with_suffix(".png"))
        shape, dtype, digest = out["files"][path]
        assert (tuple(shape), dtype) == (expected.shape, "uint8"), Path(path).name
        assert digest == hashlib.sha256(expected.tobytes()).hexdigest(), \
            f"{Path(path).name} decodes to other pixels without SIMD"


def test_registry_names_every_training_config():
    """Each family's registration names its training configs, and they are exactly the configs of
    hiercodec/train/configs whose `family` is that family (a config nobody registered would be
    unreachable from `hiercodec train FAMILY`'s documentation)."""
    from pathlib import Path

    import hiercodec.train
    from hiercodec.families.registry import REGISTRY, family_names
    from hiercodec.train.config import load_config

    family_names()
    folder = Path(hiercodec.train.__file__).parent / "configs"
    on_disk = {p.stem: load_config(p.stem).family for p in folder.glob("*.toml")}
    named = {c: name for name, reg in REGISTRY.items() for c in reg.configs}
    assert named == on_disk
    for name, reg in REGISTRY.items():
        assert (reg.task is None) == (not reg.configs), f"{name}: a trainable family has configs, and only it"
