"""Lossless round trips through hiercodec.codec for images of any size and channel count, and the
coder's overhead over the exact model's bound (DESIGN.md, "Coding": bits written <= exact-model
bits + 0.5% + 64 bits per chunk, plus the container header)."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hiercodec import container
from hiercodec.codec import decode_image, encode_image
from hiercodec.zoo import load

KINDS = ("natural", "noise", "flat", "extremes", "stripes")


def make_image(seed: int, h: int, w: int, c: int, kind: str) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "noise":
        return rng.integers(0, 256, (h, w, c), dtype=np.uint8)
    if kind == "flat":
        return np.full((h, w, c), rng.integers(0, 256), np.uint8)
    if kind == "extremes":
        return rng.choice(np.array([0, 255], np.uint8), (h, w, c))
    if kind == "stripes":
        return ((np.arange(w)[None, :, None] // 2 % 2) * 255 * np.ones((h, 1, c))).astype(np.uint8)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    out = np.empty((h, w, c), np.uint8)
    for k in range(c):
        base = rng.uniform(30, 220) + rng.uniform(-5, 5) * yy + rng.uniform(-5, 5) * xx
        out[..., k] = np.clip(base + rng.normal(0, 4, (h, w)), 0, 255)
    return out


def roundtrip(model, loader, image: np.ndarray):
    data, report = encode_image(model, image)
    out, dreport = decode_image(data, loader=loader)
    assert out.dtype == np.uint8 and out.shape == image.shape, (out.shape, image.shape)
    np.testing.assert_array_equal(out, image)
    assert report.file_bytes == len(data) == dreport.file_bytes
    return data, report


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(h=st.integers(1, 20), w=st.integers(1, 20), c=st.integers(1, 4),
       kind=st.sampled_from(KINDS), seed=st.integers(0, 2**32 - 1))
def test_roundtrip_any_size_tiny(tiny_model, tiny_loader, h, w, c, kind, seed):
    roundtrip(tiny_model, tiny_loader, make_image(seed, h, w, c, kind))


@pytest.mark.parametrize("shape,kind", [((1, 1, 3), "noise"), ((1, 1, 1), "flat"), ((5, 3, 1), "natural"),
                                        ((3, 7, 4), "natural"), ((1, 9, 2), "extremes"), ((9, 1, 3), "natural"),
                                        ((2, 70, 3), "natural")],
                         ids=lambda v: "x".join(map(str, v)) if isinstance(v, tuple) else v)
def test_roundtrip_default_model(default_model, shape, kind):
    roundtrip(default_model, load, make_image(sum(shape), *shape, kind))


def natural_crop() -> tuple[np.ndarray, str]:
    """A 24x24 RGB crop of a photo (scikit-image's astronaut), or synthetic content without it."""
    try:
        from skimage import data as skdata

        return np.ascontiguousarray(skdata.astronaut()[100:124, 200:224]), "astronaut[100:124, 200:224]"
    except ImportError:
        return make_image(7, 24, 24, 3, "natural"), "gradient + noise"


def test_coder_overhead_within_budget(default_model, tiny_model, tiny_loader):
    image, what = natural_crop()
    lines, ok = [], True
    for model, loader in ((default_model, load), (tiny_model, tiny_loader)):
        data, report = roundtrip(model, loader, image)  # the file must also decode
        header_bytes = struct.calcsize("<8sHI") + struct.unpack_from("<I", data, 10)[0]
        assert container.read(data).levels_present == len(report.levels)
        chunks = len(report.levels)
        payload_bits = 8 * (len(data) - header_bytes)
        budget = report.bound_bits * 1.005 + 64 * chunks + 8 * header_bytes
        lines.append(f"{model.id}: {what}: file {len(data)} B = {8 * len(data)} bits "
                     f"(header {header_bytes} B, payload {payload_bits} bits in {chunks} chunk(s)); "
                     f"bound {report.bound_bits:.1f} bits ({report.bound_bits_per_dim:.3f} bpd); "
                     f"payload overhead {100 * (payload_bits / report.bound_bits - 1):+.3f}%; "
                     f"budget {budget:.1f} bits")
        ok &= 8 * len(data) <= budget
        # the chunk lengths are what the levels report
        assert sum(level.written_bytes for level in report.levels) == len(data) - header_bytes
    print("\n" + "\n".join(lines))
    assert ok, "\n".join(lines)
