"""Network configuration of the `ham` family: hierarchical autoregressive models with auxiliary
decoders (De Fauw, Dieleman & Simonyan 2019), shared by training, export and the codec.

A model has one or two code levels (`levels`) above the pixels (appendix A.1: one code level for
128x128 images; A.2: two for 256x256). Each code level is learned by an autoencoder: an encoder
(residual network with strided downsampling at its end, a VQ bottleneck, sec. 2) trained with an
auxiliary decoder, feed-forward (`mask` = 0, sec. 4.1) or masked self-prediction (`mask` = 2s + 1,
the teacher's mask side, sec. 4.2). Each level below the top one is coded by an autoregressive
decoder: a local gated PixelCNN whose every layer is biased by a modulator, a residual network over
the codes of the level above computed once per level (appendix A). The top codes are coded by a
prior: a gated PixelCNN with masked self-attention (appendix A.3, Table 2).

Level 1 maps the pixels to `codes` codes at half their size; level 2 maps level 1's codes to
`codes2` codes at 1 / 2^`down2` of their size.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from hiercodec.errors import HiercodecError
from hiercodec.families.auxiliary_config import _Config
from hiercodec.nn.embedding import Embedding
from hiercodec.nn.gated import GatedPixelCNN
from hiercodec.nn.ham import AuxiliaryDecoder, HAMEncoder, MSPTeacher
from hiercodec.nn.mixture import params_per_pixel

BETA = 0.25  # commitment cost (sec. 2, as VQ-VAE's eq. 3)
DECAY = 0.99  # codebook moving averages: exponentially smoothed k-means (sec. 2)
PIXEL_VALUES = 256  # the MSP teacher and encoder see pixels one-hot (appendix A)


@dataclass(frozen=True)
class HAMConfig(_Config):
    """Defaults: the shipped one-level model sized for a CPU (ham-codec.toml)."""

    family = "ham"
    may_be_zero = ("halo", "mask", "mask2", "attention_every")  # attention_every 0: a prior without attention
    levels: int = 1  # code levels above the pixels: 1 (appendix A.1) or 2 (A.2)
    tile: int = 64  # pixels per tile side (a multiple of `scale`)
    halo: int = 4  # positions of the level above around a tile that its modulator sees
    # level 1 autoencoder: pixels -> codes at 1/2
    hidden: int = 64
    residual: int = 32
    enc_layers: int = 4
    aux_layers: int = 2
    codes: int = 256
    code_dim: int = 16
    mask: int = 0  # 0: feed-forward auxiliary decoder (sec. 4.1); 2s + 1: MSP teacher's mask side (sec. 4.2)
    teacher_layers: int = 4
    # level 1 autoregressive decoder (the pixels)
    layers: int = 6
    channels: int = 64
    head: int = 128
    mixtures: int = 5
    mod_blocks: int = 2
    mod_channels: int = 64
    mod_embed: int = 16
    # level 2 autoencoder (levels = 2): codes -> codes2 at 1 / 2^down2
    down2: int = 2
    hidden2: int = 64
    residual2: int = 32
    enc2_layers: int = 4
    aux2_layers: int = 2
    codes2: int = 256
    code_dim2: int = 16
    mask2: int = 0
    teacher2_layers: int = 4
    # level 2 autoregressive decoder (the codes of level 1)
    ar2_layers: int = 4
    ar2_channels: int = 64
    ar2_head: int = 128
    ar2_embed: int = 16
    mod2_blocks: int = 2
    mod2_channels: int = 64
    mod2_embed: int = 16
    # prior on the top codes (appendix A.3, Table 2)
    prior_layers: int = 4
    prior_channels: int = 64
    prior_head: int = 128
    prior_embed: int = 16
    attention_every: int = 2
    heads: int = 4
    key_channels: int = 16
    # training: the autoencoders train alone for this many steps, then are frozen while the prior
    # and the autoregressive decoders train on their codes (appendix A: "trained separately and
    # in sequence")
    autoencoder_steps: int = 4000

    @property
    def scale(self) -> int:
        """Pixels per top code along a side."""
        return 2 * (1 << self.down2) if self.levels == 2 else 2

    def check(self) -> None:
        if self.levels not in (1, 2):
            raise HiercodecError(f"[network] levels = {self.levels}: must be 1 or 2")
        if self.tile % self.scale:
            raise HiercodecError(f"[network] tile = {self.tile}: must be a multiple of {self.scale}")
        for name in ("mask", "mask2"):
            if getattr(self, name) and getattr(self, name) % 2 == 0:
                raise HiercodecError(f"[network] {name} = {getattr(self, name)}: must be 0 or odd (2s + 1)")
        if max(self.codes, self.codes2) > 1 << 16:
            raise HiercodecError("[network] codes: at most 65536 (codes are stored as 16-bit values)")
        if self.levels == 2 and min(self.aux2_layers, self.mod2_blocks) < self.down2 - 1:
            raise HiercodecError("[network] aux2_layers and mod2_blocks must be >= down2 - 1 (they upsample "
                                 "after their first blocks)")

    @property
    def top(self) -> str:
        """The name of the top code level (coded by the prior)."""
        return "codes2" if self.levels == 2 else "codes1"

    def encoders(self) -> dict[str, nn.Module]:
        """The encoders (`enc1`, and `enc2` for two levels): all the codec's encoder side runs."""
        out = {"enc1": HAMEncoder(PIXEL_VALUES * 3 if self.mask else 3, self.hidden, self.residual, self.enc_layers,
                                  self.codes, self.code_dim, 1, DECAY)}
        if self.levels == 2:  # codes enter the level-2 encoder one-hot (appendix A)
            out["enc2"] = HAMEncoder(self.codes, self.hidden2, self.residual2, self.enc2_layers, self.codes2,
                                     self.code_dim2, self.down2, DECAY)
        return out

    def build(self, dropout: float = 0.0) -> nn.ModuleDict:
        """The float networks: encoders, auxiliary decoders (and MSP teachers), the prior, the
        modulators with their code embeddings and the local PixelCNNs."""
        k = params_per_pixel(self.mixtures)
        aux_out = PIXEL_VALUES * 3 if self.mask else 3
        parts = {
            **self.encoders(),
            "aux1": AuxiliaryDecoder(self.code_dim, self.hidden, self.aux_layers, aux_out),
            "mod0_in": nn.Embedding(self.codes, self.mod_embed),
            "mod0": Embedding(self.mod_embed, self.mod_channels, self.mod_blocks, (), (0,), dropout),
            "pixels": GatedPixelCNN(3, k, self.channels, self.layers, self.head, dropout,
                                    features=self.mod_channels),
        }
        if self.mask:
            parts["teacher1"] = MSPTeacher(3, PIXEL_VALUES, self.hidden, self.residual, self.teacher_layers)
        top_codes = self.codes
        if self.levels == 2:
            top_codes = self.codes2
            parts |= {
                # level 2's feed-forward auxiliary decoder predicts level 1's codes with a
                # categorical output (sec. 4.1)
                "aux2": AuxiliaryDecoder(self.code_dim2, self.hidden2, self.aux2_layers, self.codes, self.down2),
                "codes1_in": nn.Embedding(self.codes, self.ar2_embed),
                "mod1_in": nn.Embedding(self.codes2, self.mod2_embed),
                "mod1": Embedding(self.mod2_embed, self.mod2_channels, self.mod2_blocks, (),
                                  tuple(range(self.down2)), dropout),
                "codes1": GatedPixelCNN(self.ar2_embed, self.codes, self.ar2_channels, self.ar2_layers,
                                        self.ar2_head, dropout, features=self.mod2_channels),
            }
            if self.mask2:
                parts["teacher2"] = MSPTeacher(1, self.codes, self.hidden2, self.residual2, self.teacher2_layers)
        parts |= {
            "prior_in": nn.Embedding(top_codes, self.prior_embed),
            "prior": GatedPixelCNN(self.prior_embed, top_codes, self.prior_channels, self.prior_layers,
                                   self.prior_head, dropout, attention_every=self.attention_every,
                                   heads=self.heads, key_channels=self.key_channels),
        }
        return nn.ModuleDict(parts)
