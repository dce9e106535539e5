"""Network configurations of the two families with auxiliary variables (Kolesnikov & Lampert
2017): `grayscale` and `pyramid`, shared by training, export and the codec. The float networks
they build are torch ModuleDicts of GatedPixelCNNs and Embeddings; the exact twins are built by
the families from the exported tensors of the same names.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from torch import nn

from hiercodec.errors import HiercodecError
from hiercodec.families.inputs import GRAY_LEVELS
from hiercodec.nn.embedding import Embedding
from hiercodec.nn.gated import GatedPixelCNN
from hiercodec.nn.mixture import params_per_pixel



@dataclass(frozen=True)
class _Config:
    may_be_zero = ("halo",)  # fields that may be 0 (a class attribute, not a field)

    @classmethod
    def from_dict(cls, d: dict, where: str = "[network]") -> "_Config":
        """Fields from a TOML/JSON table; a clear one-line error for an unknown or mistyped one."""
        kinds = {f.name: f.type for f in fields(cls)}
        out = {}
        for key, value in d.items():
            kind = kinds.get(key)
            if kind is None:
                raise HiercodecError(f"{where} {key}: unknown field; {cls.family} networks have "
                                     f"{', '.join(kinds)}")
            if "tuple" in str(kind):
                if not isinstance(value, (list, tuple)) or any(type(v) is not int or v < 1 for v in value):
                    raise HiercodecError(f"{where} {key} = {value!r}: expected a list of positive integers")
                value = tuple(value)
            elif type(value) is not int or value < (0 if key in cls.may_be_zero else 1):
                raise HiercodecError(f"{where} {key} = {value!r}: expected a positive integer"
                                     + (" or 0" if key in cls.may_be_zero else ""))
            out[key] = value
        config = cls(**out)
        config.check()
        return config

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    def check(self) -> None:
        pass


@dataclass(frozen=True)
class GrayscaleConfig(_Config):
    """Level 1: the 4-bit gray image psi(x) by a PixelCNN with a 16-way softmax (`prior_*`); level 2:
    the colour image by a conditional PixelCNN (`layers`, `channels`, `head`, `mixtures`) biased by an
    embedding of psi(x) (`embed_*`), sec. 3.3. Defaults: the codec-sized model."""

    family = "grayscale"
    tile: int = 64
    halo: int = 4  # psi positions around a tile that its embedding sees
    prior_layers: int = 4
    prior_channels: int = 48
    prior_head: int = 96
    layers: int = 4
    channels: int = 48
    head: int = 96
    mixtures: int = 5
    embed_channels: int = 48
    embed_blocks: int = 4
    embed_down: tuple[int, ...] = ()
    embed_up: tuple[int, ...] = ()

    def check(self) -> None:
        if len(self.embed_down) != len(self.embed_up):
            raise HiercodecError("[network] embed_down and embed_up must have as many entries (the "
                                 "embedding of psi(x) has the resolution of psi(x))")
        _check_blocks(self.embed_blocks, self.embed_down + self.embed_up)

    def build(self, dropout: float = 0.0) -> nn.ModuleDict:
        return nn.ModuleDict({
            "prior": GatedPixelCNN(1, GRAY_LEVELS, self.prior_channels, self.prior_layers, self.prior_head, dropout),
            "embed": Embedding(1, self.embed_channels, self.embed_blocks, self.embed_down, self.embed_up, dropout),
            "cond": GatedPixelCNN(3, params_per_pixel(self.mixtures), self.channels, self.layers, self.head,
                                  dropout, features=self.embed_channels),
        })


@dataclass(frozen=True)
class PyramidConfig(_Config):
    """`levels` resolutions, each half the next (sec. 3.2); the coarsest is coded by a PixelCNN
    (`bottom_*`), each finer one by a light conditional PixelCNN (`layers`, ...) biased by a deep
    embedding of the level below it (`embed_*`, which must upsample x2 once more than it
    downsamples), sec. 4.2. Level k (0 = full size) is tiled with tiles of `tile` >> k."""

    family = "pyramid"
    levels: int = 4
    tile: int = 64
    halo: int = 4  # positions of the level below around a tile that its embedding sees
    bottom_layers: int = 4
    bottom_channels: int = 48
    bottom_head: int = 96
    layers: int = 3
    channels: int = 48
    head: int = 96
    mixtures: int = 5
    embed_channels: int = 48
    embed_blocks: int = 6
    embed_down: tuple[int, ...] = (2,)
    embed_up: tuple[int, ...] = (4, 5)

    def check(self) -> None:
        if len(self.embed_up) != len(self.embed_down) + 1:
            raise HiercodecError("[network] embed_up must have one entry more than embed_down (the "
                                 "embedding maps a level to the next one, twice its size)")
        _check_blocks(self.embed_blocks, self.embed_down + self.embed_up)
        if self.levels < 2 or self.tile >> (self.levels - 1) < 1:
            raise HiercodecError(f"[network] levels = {self.levels}: need 2 or more, and tile >> (levels - 1) >= 1")

    def build(self, dropout: float = 0.0) -> nn.ModuleDict:
        k = params_per_pixel(self.mixtures)
        nets = {"bottom": GatedPixelCNN(3, k, self.bottom_channels, self.bottom_layers, self.bottom_head, dropout)}
        for level in range(self.levels - 1):  # level `level` given level + 1
            nets[f"embed{level}"] = Embedding(3, self.embed_channels, self.embed_blocks, self.embed_down,
                                              self.embed_up, dropout)
            nets[f"cond{level}"] = GatedPixelCNN(3, k, self.channels, self.layers, self.head, dropout,
                                                 features=self.embed_channels)
        return nn.ModuleDict(nets)


def _check_blocks(blocks: int, after: tuple[int, ...]) -> None:
    if any(b > blocks for b in after) or len(set(after)) != len(after):
        raise HiercodecError(f"[network] embed_down / embed_up name blocks 1..{blocks}, each at most once")
