"""The `agave` family: auxiliary guided autoregressive VAEs (Lucas & Verbeek 2018) as a codec.

The codec is PixelVAE's (hiercodec.families.pixelvae: 28x28 tiles, each a bits-back sample of
its latents, the file the negative ELBO under lambda = 1) with AGAVE's decoder: the VAE decoder
f(z) (the upsampler and a 1x1 layer, `aux`: the auxiliary image's means) goes through a stack of
unmasked convolutions (`embed`, an exact embedding) whose output biases every layer of the
PixelCNN (sec. 4.1). The auxiliary image itself is only a training target (eq. 7): it is not coded.
"""

from __future__ import annotations

import numpy as np
import torch

from hiercodec.exact.embedding import ExactEmbedding
from hiercodec.exact.layers import qconv, subset
from hiercodec.exact.quant import ACT_MIN, DTYPE
from hiercodec.families.agave_config import AGAVEConfig
from hiercodec.families.pixelvae import PixelVAEFamily
from hiercodec.families.registry import register


@register("agave", network=AGAVEConfig, configs=("agave", "agave-small", "agave-codec"), task="hiercodec.train.agave:AGAVETask",
          exporter="hiercodec.export.pixelvae:export_agave")
class AGAVEFamily(PixelVAEFamily):
    network = AGAVEConfig

    def __init__(self, config: dict, tensors: dict[str, torch.Tensor]):
        super().__init__(config, tensors)
        self.aux = qconv(tensors, "aux", (1, 1))
        self.embed = ExactEmbedding(subset(tensors, "embed."), self.net.embed_blocks, (), (), in_max=-ACT_MIN)

    def features(self, bins: np.ndarray) -> torch.Tensor:
        """Features (n, E, 28, 28) of n tiles' latents' bins: embed(f(z))."""
        z = torch.from_numpy(self.gauss.values(bins).astype(np.float64)).reshape(-1, self.net.latents)
        f = self.aux.conv(self.upsampler(z).to(DTYPE))
        return self.embed.forward(f).to(torch.int16)
