"""Network configuration of the `vqvae2` family (Razavi et al. 2019), shared by training, export
and the codec: the hierarchical VQ-VAE (Table 5), the top prior (a gated PixelCNN with causal
multi-head self-attention, sec. 3.2, Table 3), the bottom prior (a gated PixelCNN conditioned on
the top codes through a residual conditioning stack, sec. 3.2) and, beyond the paper, the pixel
level of lossless files (a conditional PixelCNN given the decoder's reconstruction, in the spirit
of De Fauw et al. 2019). The float networks are a torch ModuleDict; the exact twins are built by
hiercodec.families.vqvae2 from the exported tensors of the same names.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from hiercodec.errors import HiercodecError
from hiercodec.families.auxiliary_config import _Config
from hiercodec.nn.embedding import Embedding
from hiercodec.nn.gated import GatedPixelCNN
from hiercodec.nn.mixture import params_per_pixel
from hiercodec.nn.vqvae import VQVAE2

BETA = 0.25  # commitment cost (Table 5)
DECAY = 0.99  # codebook moving averages (sec. 2.1: "the default gamma = 0.99")
DOWN = 8  # the top codes are at 1/8 of the image, the bottom codes at 1/4 (sec. 3.1)


@dataclass(frozen=True)
class VQVAE2Config(_Config):
    """Defaults: Table 5's autoencoder with priors sized for a CPU (vqvae2-codec.toml)."""

    family = "vqvae2"
    may_be_zero = ("halo", "top_only_percent")
    tile: int = 64  # pixels per tile side (a multiple of 8); code tiles are tile / 8 and tile / 4
    halo: int = 4  # positions of the level above around a tile that its features see
    # autoencoder, Table 5
    hidden: int = 128
    residual: int = 64
    res_layers: int = 2
    codes: int = 512
    code_dim: int = 64
    top_only_percent: int = 20  # images decoded from the top codes alone in training (cut files)
    # top prior, sec. 3.2
    top_layers: int = 4
    top_channels: int = 64
    top_head: int = 128
    top_embed: int = 16  # the code embedding the prior reads
    attention_every: int = 2
    heads: int = 4
    key_channels: int = 16
    # bottom prior, sec. 3.2
    bottom_layers: int = 4
    bottom_channels: int = 64
    bottom_head: int = 128
    bottom_embed: int = 16
    cond_channels: int = 64
    cond_blocks: int = 4  # the conditioning stack, upsampling x2 after half of its blocks
    # pixels of lossless files
    layers: int = 6
    channels: int = 64
    head: int = 128
    mixtures: int = 5
    embed_channels: int = 48
    embed_blocks: int = 4
    # training schedule: the autoencoder trains (with the code priors) for this many steps, then is
    # frozen while the priors and the pixel level train (the paper's two stages, Algorithms 1, 2)
    autoencoder_steps: int = 20000

    def check(self) -> None:
        if self.tile % DOWN:
            raise HiercodecError(f"[network] tile = {self.tile}: must be a multiple of {DOWN}")
        if self.codes > 1 << 16:
            raise HiercodecError(f"[network] codes = {self.codes}: at most 65536 (codes are stored as 16-bit values)")
        if self.top_only_percent > 100:
            raise HiercodecError("[network] top_only_percent must be 0 ... 100")
        if self.cond_blocks < 1:
            raise HiercodecError("[network] cond_blocks must be >= 1")

    @property
    def cond_up(self) -> tuple[int, ...]:
        return ((self.cond_blocks + 1) // 2,)

    def build(self, dropout: float = 0.0) -> nn.ModuleDict:
        k = params_per_pixel(self.mixtures)
        return nn.ModuleDict({
            "vq": VQVAE2(self.hidden, self.residual, self.res_layers, self.codes, self.code_dim, DECAY,
                         self.top_only_percent / 100),
            "top_in": nn.Embedding(self.codes, self.top_embed),
            "top": GatedPixelCNN(self.top_embed, self.codes, self.top_channels, self.top_layers, self.top_head,
                                 dropout, attention_every=self.attention_every, heads=self.heads,
                                 key_channels=self.key_channels),
            "bottom_in": nn.Embedding(self.codes, self.bottom_embed),
            "cond_in": nn.Embedding(self.codes, self.bottom_embed),
            "cond": Embedding(self.bottom_embed, self.cond_channels, self.cond_blocks, (), self.cond_up, dropout),
            "bottom": GatedPixelCNN(self.bottom_embed, self.codes, self.bottom_channels, self.bottom_layers,
                                    self.bottom_head, dropout, features=self.cond_channels),
            "embed": Embedding(3, self.embed_channels, self.embed_blocks, (), (), dropout),
            "pixels": GatedPixelCNN(3, k, self.channels, self.layers, self.head, dropout,
                                    features=self.embed_channels),
        })
