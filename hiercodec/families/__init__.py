"""Model families: one module per family of DESIGN.md; `build_family` picks one by name."""

from __future__ import annotations

import torch

from hiercodec.errors import HiercodecError


def build_family(config: dict, tensors: dict[str, torch.Tensor]):
    """The family object of a loaded model (it builds the levels of an image)."""
    name = config.get("family")
    if name == "pixelcnn":
        from hiercodec.families.pixelcnn import PixelCNNFamily

        return PixelCNNFamily(config, tensors)
    if name == "grayscale":
        from hiercodec.families.grayscale import GrayscaleFamily

        return GrayscaleFamily(config, tensors)
    if name == "pyramid":
        from hiercodec.families.pyramid import PyramidFamily

        return PyramidFamily(config, tensors)
    if name == "vqvae2":
        from hiercodec.families.vqvae2 import VQVAE2Family

        return VQVAE2Family(config, tensors)
    raise HiercodecError(f"model family '{name}' is not known to this version of hiercodec; upgrade hiercodec")
