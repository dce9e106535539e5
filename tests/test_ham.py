"""The `ham` family beyond the contract suite (tests/test_contract.py): lossy files that decode by
sampling with the seed and temperature they store, the feed-forward `mean` decoding, the sampler's
independence of threads, batches and code paths, and the two training stages."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from hiercodec import container
from hiercodec.codec import decode_image, encode_image
from hiercodec.coding.sampling import Sampling, draw
from hiercodec.errors import HiercodecError
from hiercodec.geometry import Geometry


def _natural(h, w, c, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    planes = [128 + 90 * np.sin((rng.uniform(1, 3) * x + rng.uniform(1, 3) * y) / 9 + rng.uniform(0, 6)) for _ in range(c)]
    return np.clip(np.stack(planes, -1) + rng.normal(0, 4, (h, w, c)), 0, 255).astype(np.uint8)


def _decode(model, data, **kw):
    return decode_image(data, loader=lambda name: model, **kw)


def test_lossy_file_stores_its_sampling_and_equals_the_cut_lossless_file(tiny_ham):
    """A lossy file written to sample (format 3) holds the chunks of the lossless file's first
    levels; it decodes to the same image twice, and to what the cut lossless file decodes to when
    told the same seed and temperature."""
    image = _natural(21, 26, 3)
    lossless, _ = encode_image(tiny_ham, image)
    for kept in (1, 2):
        lossy, _ = encode_image(tiny_ham, image, levels=kept, sample=Sampling(11, 990))
        box = container.read(lossy)
        assert box.version == 3 and box.header.sampling == (11, 990) and box.header.lossy
        cut = container.read(container.cut(lossless, kept))
        assert cut.version == 2 and cut.header.sampling is None and box.chunks == cut.chunks
        a, report = _decode(tiny_ham, lossy)
        assert report.sampled == (11, 990) and a.shape == image.shape
        assert np.array_equal(a, _decode(tiny_ham, lossy)[0])
        assert np.array_equal(a, _decode(tiny_ham, container.cut(lossless, kept), sample=Sampling(11, 990))[0])
        assert not np.array_equal(a, _decode(tiny_ham, lossy, sample=Sampling(12, 990))[0])


def test_mean_decoding_runs_the_feed_forward_decoders(tiny_ham, tiny_ham_float):
    """sample=False decodes a lossy file by the exact feed-forward decoders: from codes1 the
    auxiliary decoder's pixels (close to the float decoder's), from codes2 alone first the most
    probable codes1 (level 2's decoder), then those pixels."""
    from hiercodec.families.ham import encoder_input

    image = _natural(16, 16, 3, seed=1)
    lossy, _ = encode_image(tiny_ham, image, levels=2)
    mean, report = _decode(tiny_ham, lossy, sample=False)
    assert report.sampled is None and mean.shape == image.shape
    net = tiny_ham.family.net
    with torch.no_grad():
        q1, codes1, _ = tiny_ham_float["enc1"](encoder_input(net, image[None]))
        want = (tiny_ham_float["aux1"](q1)[0].permute(1, 2, 0) * 128 + 128).clamp(0, 255).numpy()
    assert np.abs(mean.astype(np.float64) - want).mean() < 2.0  # quantization only
    top, _ = encode_image(tiny_ham, image, levels=1)
    family = tiny_ham.family
    codes2 = container.read(top)  # decode codes2 and rebuild what the mean decoding does from it
    decoded = {}
    g = Geometry(*image.shape)
    from hiercodec.coding.ans import StackCoder

    decoded["codes2"] = family.levels(g)[0].decode({}, StackCoder(codes2.chunks[0].data))
    codes1_mean = family.feed_forward[2](decoded["codes2"][..., 0], family.code_layouts(g)["codes1"])
    assert codes1_mean.shape == (8, 8, 1)
    expect = family.feed_forward[1](codes1_mean[..., 0], family.layout(g))
    assert np.array_equal(_decode(tiny_ham, top, sample=False)[0], expect)


@pytest.mark.parametrize("threads", [1, 2])
def test_sampling_is_the_same_for_any_thread_count_and_batch(tiny_ham, threads, monkeypatch):
    """1 or 2 threads, the modulators' features one tile at a time or in batches: the same samples."""
    from hiercodec.families import conditioning

    data, _ = encode_image(tiny_ham, _natural(23, 19, 3, seed=2), levels=1, sample=Sampling(5, 990))
    torch.set_num_threads(1)
    want = _decode(tiny_ham, data)[0]
    monkeypatch.setattr(conditioning, "TILE_BATCH", 1)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(threads)
        got = _decode(tiny_ham, data)[0]
    finally:
        torch.set_num_threads(before)
    assert np.array_equal(got, want)


def test_sampled_levels_are_what_the_encoders_tables_draw(tiny_ham):
    """The incremental (decoder) and whole-tile (encoder) paths agree on sampled values: the
    encoder's tables for the sampled codes1 and pixels redraw exactly those values."""
    from hiercodec.coding.sampling import sample_schedule

    g = Geometry(18, 22, 3)
    levels = tiny_ham.family.levels(g)
    above = {}
    for index, level in enumerate(levels):
        level.temper(990)
        values = sample_schedule(level.decode_groups(above), 7, index)
        groups = list(level.encode_groups(values, above))
        redrawn = [draw(t, 7, index, i) for i, (_, t) in enumerate(groups)]
        assert np.array_equal(np.concatenate(redrawn), np.concatenate([s for s, _ in groups]))
        above[level.name] = values
    assert above["pixels"].shape == (18, 22, 3)


def test_api_defaults_sample_ham_lossy_files_at_the_papers_temperature(tiny_ham, monkeypatch):
    from hiercodec import api

    monkeypatch.setattr(api, "_model", lambda m: tiny_ham)
    image = _natural(12, 14, 3, seed=4)
    data = api.encode(image, levels=1)
    assert container.read_header(data).sampling == (0, 990)
    assert container.read_header(api.encode(image, levels=1, sample=False)).sampling is None
    assert container.read_header(api.encode(image, levels=1, seed=9, temperature=0.5)).sampling == (9, 500)
    with pytest.raises(HiercodecError, match="lossy files"):
        api.encode(image, sample=True)


def test_info_shows_how_a_lossy_file_decodes(tiny_ham):
    from hiercodec import api

    sampled, _ = encode_image(tiny_ham, _natural(12, 12, 3), levels=1, sample=Sampling(4, 990))
    assert api.info(sampled)["sampling"] == {"seed": 4, "temperature": 0.99}
    assert api.info(sampled)["format_version"] == 3
    plain, _ = encode_image(tiny_ham, _natural(12, 12, 3), levels=1)
    assert api.info(plain)["sampling"] is None and api.info(plain)["format_version"] == 2


def test_msp_model_has_no_mean_decoding(tmp_path):
    """A model trained with masked self-prediction has no feed-forward decoder: its lossy files
    decode by sampling, and asking for the mean is a one-line error."""
    from conftest import TINY_HAM, make_auxiliary_model, start_ham_codebooks

    from hiercodec.export.ham import export_ham

    net = replace(TINY_HAM, levels=1, mask=3)
    model = make_auxiliary_model(tmp_path, net, export_ham, "tiny-ham-msp", size=16,
                                 prepare=lambda m, c: start_ham_codebooks(m, c, net))
    assert "aux1.out.w" not in model.family.config["exact"] and not model.family.feed_forward
    image = _natural(10, 12, 3, seed=5)
    lossless, _ = encode_image(model, image)
    assert np.array_equal(_decode(model, lossless)[0], image)
    lossy, _ = encode_image(model, image, levels=1, sample=Sampling(1, 990))
    assert _decode(model, lossy)[0].shape == image.shape
    with pytest.raises(HiercodecError, match="masked self-prediction"):
        _decode(model, lossy, sample=False)


def test_training_stages_and_the_hand_over(tmp_path):
    """ham-small: stage 1 trains the autoencoders (finite losses, codebooks in use), stage 2 starts
    by handing each modulator its level's auxiliary decoder and codebook, then trains on bits."""
    from hiercodec.train.config import load_config
    from hiercodec.train.tasks import task_for

    config = load_config("ham-small")
    task = task_for(config)
    torch.manual_seed(0)
    model = task.build()
    x = torch.from_numpy(_natural(16, 16, 3)[None].repeat(4, 0))
    loss, log = task.loss(model, x, 0)
    assert torch.isfinite(loss) and "mse" in log and "aux2_nats" in log
    loss.backward()
    assert model["enc1"].inp.weight.grad is not None and model["pixels"].v_in.weight.grad is None
    a = task.net.autoencoder_steps
    loss, log = task.loss(model, x, a)
    assert set(task.handed) == {"mod0", "mod0_in", "mod1", "mod1_in"}
    for mod, aux in (("mod0", "aux1"), ("mod1", "aux2")):
        assert torch.equal(model[mod].inp.weight, model[aux].body.inp.weight)
    assert torch.equal(model["mod0_in"].weight, model["enc1"].vq.embed)
    assert torch.isfinite(loss) and {"bpd_codes2", "bpd_codes1", "bpd_pixels"} <= set(log)
