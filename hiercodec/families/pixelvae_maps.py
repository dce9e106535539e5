"""The hierarchical PixelVAE's exact networks (Gulrajani et al. 2016, sec. 3.1, appendix E.2) and
the bits-back sample of one tile built from them (hiercodec.families.latent_map.MapsSample).

Per tile of T x T pixels (an edge tile padded with the family's fill; only its inside is coded):

- q(z1 | x), q(z2 | x): x -> `enc1` (x4 down) -> h1 -> `q1` (z1's integer means and log scales,
  C1 maps of T/4); h1 -> `enc2` (x4 down) -> `q2` (z2's, C2 maps of T/16);
- p(z2): the gated PixelCNN `prior2` with Gaussian outputs over z2's map;
- p(z1 | z2): `prior1` over z1's map, its layers biased by `dec2`(z2) (x4 up);
- p(x | z1): the pixels' PixelCNN, biased by `dec1`(z1) (x4 up).

Latent values are integers at 2^-Z_FRAC (hiercodec.exact.gaussian); every network reads them
clamped to the 12-bit activation range (+-8), as the float model was trained to.
"""

from __future__ import annotations

import numpy as np
import torch

from hiercodec import engine
from hiercodec.exact.embedding import ExactEmbedding
from hiercodec.exact.gaussian import ExactGaussian
from hiercodec.exact.layers import qconv, subset
from hiercodec.exact.pixelcnn import ExactPixelCNN
from hiercodec.exact.quant import ACT_MIN
from hiercodec.families.latent_map import GaussianMap, MapsSample
from hiercodec.families.pixelvae_config import PixelVAEConfig

DOWN, UP = (1, 2), (1, 2)  # build_hierarchy's resampling: after the first two blocks


class HierarchyNets:
    """The exact parts of a two-level model file (hiercodec.export.pixelvae.export_hierarchy)."""

    def __init__(self, net: PixelVAEConfig, tensors: dict[str, torch.Tensor], exact: dict, gauss: ExactGaussian,
                 in_max: float):
        self.net, self.gauss = net, gauss
        z_max = float(-ACT_MIN)  # latent inputs lie in [ACT_MIN, ACT_MAX] (GaussianMap.inputs): |z| <= 2^11

        def embedding(name: str, down=(), up=(), top: float = -ACT_MIN) -> ExactEmbedding:
            return ExactEmbedding(subset(tensors, f"{name}."), net.blocks, down, up, in_max=top)

        def prior(name: str, c: int) -> ExactPixelCNN:
            return engine.network(ExactPixelCNN(subset(tensors, f"{name}."), net.prior_channels, net.prior_layers,
                                                exact[name]["h_frac"], in_channels=c, in_max=z_max))

        self.enc1, self.enc2 = embedding("enc1", DOWN, top=in_max), embedding("enc2", DOWN)
        self.q1, self.q2 = qconv(tensors, "q1", (1, 1)), qconv(tensors, "q2", (1, 1))
        self.dec2, self.dec1 = embedding("dec2", up=UP, top=z_max), embedding("dec1", up=UP, top=z_max)
        self.prior2, self.prior1 = prior("prior2", net.c2), prior("prior1", net.c1)

    def posterior(self, inputs: torch.Tensor) -> list[tuple[np.ndarray, np.ndarray]]:
        """Padded tiles' exact inputs (B, 3, T, T) -> [(mu, ls) of z2, (mu, ls) of z1], each
        (B, C, h, w) int64: top first, as MapsSample wants."""
        h1 = self.enc1.forward(inputs)
        out = []
        for q, h, c in ((self.q2, self.enc2.forward(h1), self.net.c2), (self.q1, h1, self.net.c1)):
            p = q.conv(h).numpy().astype(np.int64)
            out.append((p[:, :c], p[:, c:]))
        return out

    def prior(self, k: int, values: list[np.ndarray], batch: int) -> GaussianMap:
        """Level k's maps of `batch` tiles (0: z2, 1: z1 given z2's values)."""
        side = self.net.map_tile
        if k == 0:
            return GaussianMap(self.prior2, self.gauss, self.net.c2, side // 16, side // 16, batch=batch)
        features = self.dec2.forward(GaussianMap.inputs(values[0])).to(torch.int16)
        return GaussianMap(self.prior1, self.gauss, self.net.c1, side // 4, side // 4, features, batch=batch)

    def features(self, z1: np.ndarray) -> torch.Tensor:
        """The pixels' PixelCNN's features (B, E, T, T) of z1's values (B, C1, T/4, T/4)."""
        return self.dec1.forward(GaussianMap.inputs(z1)).to(torch.int16)

    def sample(self, batch: int, posterior, likelihood) -> MapsSample:
        """The bits-back sample of `batch` tiles (one, or a row of them): `posterior(x)` gives their
        q (see `posterior`), `likelihood(features, x=None)` their pixels' Schedule given features."""
        return MapsSample(lambda k, values: self.prior(k, values, batch),
                          lambda values, x=None: likelihood(self.features(values[1]), x), posterior, 2)
