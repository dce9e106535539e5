"""The `ham` family: hierarchical autoregressive models with auxiliary decoders (De Fauw, Dieleman
& Simonyan 2019) as a lossless and lossy codec.

Levels, top first (bitstreams/FORMAT.md):
- `codes2` (two-level models, appendix A.2): the top codes, coded by the prior (a gated PixelCNN
  with masked self-attention, appendix A.3);
- `codes1`: level 1's codes, ceil(H/2) x ceil(W/2) of 0 ... codes-1: by the prior in a one-level
  model (appendix A.1), else by the autoregressive decoder of level 2 (a local PixelCNN biased by
  a modulator over `codes2`);
- `pixels`: by the autoregressive decoder of level 1 (a local PixelCNN biased by a modulator over
  `codes1`, every layer, sec. 4 and appendix A), with hiercodec's mixture head;
- `alpha` for images with alpha.
A lossless file is the joint bound -log p(x, z1, ..., zN) of eq. 4 made bytes. A file cut after
the code levels is lossy: it decodes by sampling the missing levels from the autoregressive
decoders at a temperature (hiercodec.coding.sampling: exact, seeded, the same image on every
machine), or, for a model trained with the feed-forward auxiliary decoder, to that decoder's
reconstruction (`mean`), computed exactly.

The codes come from the float encoders at encode time only (as vqvae2's); the image is extended
to a multiple of `scale` by edge repetition before encoding.
"""

from __future__ import annotations

import numpy as np
import torch

from hiercodec.errors import HiercodecError
from hiercodec.exact.embedding import ExactEmbedding
from hiercodec.exact.layers import qconv, subset
from hiercodec.exact.quant import DTYPE
from hiercodec.families.base import Level
from hiercodec.families.codes import CODES, CodeLevel, Codes, code_rows, padded_rgb
from hiercodec.families.conditioning import TILE_BATCH, TileFeatures
from hiercodec.families.family import Family
from hiercodec.families.ham_config import PIXEL_VALUES, HAMConfig
from hiercodec.families.hierarchy import CATEGORICAL, MIXTURE, Condition, Hierarchy, LevelSpec
from hiercodec.families.inputs import PIXELS, CodeInput
from hiercodec.families.pixelcnn import PixelLevel
from hiercodec.families.raster import exact_network
from hiercodec.families.registry import register
from hiercodec.geometry import Geometry
from hiercodec.images import luma
from hiercodec.nn.ham import one_hot
from hiercodec.tiling import TileLayout

FLOAT_PARTS = ("enc1.", "enc2.")  # the float encoders: in a model file as float16, run at encode time only
TRAINING_ONLY = (".count", ".total", ".started")  # codebook statistics of training: not in a model file
MEAN, SAMPLE = "mean", "sample"  # the two decodings of a lossy file


def hierarchy(net: HAMConfig) -> Hierarchy:
    """The top codes by the prior (`prior`, its codes read through `prior_in`); in a two-level
    model `codes1` by a local PixelCNN (`codes1`) biased by a modulator (`mod1`) over the top
    codes; the pixels by a local PixelCNN (`pixels`) biased by a modulator (`mod0`) over `codes1`.
    Modulators read the codes through embeddings of their own (`mod1_in`, `mod0_in`)."""
    pixels = LevelSpec("pixels", "pixels", PIXELS, MIXTURE, net.mixtures,
                       Condition("mod0", "codes1", CodeInput("mod0_in"), 2))
    if net.levels == 1:
        levels = (LevelSpec("codes1", "prior", CodeInput("prior_in"), CATEGORICAL, net.codes), pixels)
    else:
        levels = (LevelSpec("codes2", "prior", CodeInput("prior_in"), CATEGORICAL, net.codes2),
                  LevelSpec("codes1", "codes1", CodeInput("codes1_in"), CATEGORICAL, net.codes,
                            Condition("mod1", "codes2", CodeInput("mod1_in"), 1 << net.down2)),
                  pixels)
    return Hierarchy(levels, lambda images, model: float_values(net, images, model))


def encoder_input(net: HAMConfig, images: np.ndarray) -> torch.Tensor:
    """uint8 (B, H, W, C) -> level 1's encoder input, the image extended to a multiple of `scale`:
    pixels in [-1, 1) for a feed-forward model, one-hot (B, 768, H', W') for an MSP model
    (appendix A: the MSP encoder sees its input one-hot)."""
    rgb = padded_rgb(images, net.scale)
    return one_hot(torch.from_numpy(rgb), PIXEL_VALUES) if net.mask else PIXELS.float(rgb)


def encode(net: HAMConfig, model: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The code maps (B, h, w) of encoder inputs x, top first: (codes1,) or (codes2, codes1)."""
    _, codes1, _ = model["enc1"](x)
    if net.levels == 1:
        return (codes1,)
    _, codes2, _ = model["enc2"](one_hot(codes1[..., None], net.codes))
    return codes2, codes1


def float_values(net: HAMConfig, images: np.ndarray, model: torch.nn.Module) -> dict:
    """Every level's values for training and export: the float encoders' code maps and the pixels."""
    device = next(model["enc1"].parameters()).device
    with torch.no_grad():
        codes = encode(net, model, encoder_input(net, images).to(device))
    names = ("codes1",) if net.levels == 1 else ("codes2", "codes1")
    return {**dict(zip(names, codes)), "pixels": images}


class ModulatedPixels(PixelLevel):
    """The pixels, every layer of their PixelCNN biased by the modulator over `codes1`."""

    def __init__(self, spec: LevelSpec, family: "HAMFamily", layout: TileLayout, channels: int):
        net, mixture = family.exact[spec.name]
        super().__init__(spec, net, mixture, layout, channels, family.modulators[spec.condition.embed], family.net.halo)
        self.tables = family.tables

    def source(self, above: dict[str, np.ndarray]) -> torch.Tensor:
        return code_rows(self.tables, self.spec.condition, above)


class FeedForward:
    """A feed-forward auxiliary decoder (sec. 4.1), exact: level 1's maps codes1 to pixels, level 2's
    maps codes2 to logits of codes1, whose largest gives the codes (the first on ties). Computed
    per tile of the level below from the codes under it and `halo` codes around
    (hiercodec.families.conditioning), so that memory does not grow with the image."""

    def __init__(self, tensors: dict[str, torch.Tensor], level: int, blocks: int, up: int, halo: int):
        self.table = tensors[f"aux{level}_in"].to(DTYPE)
        self.body = ExactEmbedding(subset(tensors, f"aux{level}.body."), blocks, (), tuple(range(up)),
                                   in_max=float(self.table.abs().max()))
        self.out = qconv(tensors, f"aux{level}.out", (1, 1))
        self.level, self.ratio, self.halo = level, 1 << up, halo

    def __call__(self, codes: np.ndarray, layout: TileLayout) -> np.ndarray:
        """Code map (h, w) -> the level below (H, W, 3 pixels uint8, or 1 code) cut by `layout`."""
        source = self.table[torch.from_numpy(codes.astype(np.int64))].permute(2, 0, 1)
        features = TileFeatures(self.body, source, layout, self.ratio, self.halo)
        out = np.empty((layout.count, 3 if self.level == 1 else 1, layout.tile_h, layout.tile_w),
                       np.uint8 if self.level == 1 else CODES)
        for s in range(0, layout.count, TILE_BATCH):
            block = slice(s, min(layout.count, s + TILE_BATCH))
            y = self.out.conv(features(block).to(DTYPE))
            out[block] = (y if self.level == 1 else y.argmax(dim=1, keepdim=True)).numpy().astype(out.dtype)
        return layout.from_tiles(out)


@register("ham", network=HAMConfig, configs=("ham", "ham-msp", "ham-256", "ham-256-msp", "ham-small", "ham-codec"),
          task="hiercodec.train.ham:HAMTask", exporter="hiercodec.export.ham:export_ham")
class HAMFamily(Family):
    hierarchy = staticmethod(hierarchy)
    lossy_levels = 1  # a one-level model's lossy file: codes1 (a two-level model's: both code levels)
    exact_encoder = False  # the encoders are float: another machine may choose other (valid) codes
    # "The sampling temperature was 0.99" (Figures 6, 7; sec. 7.2): HAM has no decoder meant for
    # display, its lossy files decode by sampling (the feed-forward decoder's mean on request)
    sample_temperature = 0.99

    def __init__(self, config: dict, tensors: dict[str, torch.Tensor]):
        super().__init__(config, tensors)
        net = HAMConfig.from_dict(config["network"])
        exact = config["exact"]
        self.net, self.tile, self.lossy_levels = net, net.tile, net.levels
        self.specs = hierarchy(net).levels
        self.tables = {t: tensors[t].to(DTYPE) for t in self._table_names()}
        self.exact = {}
        for spec in self.specs:
            in_max = None if spec.name == "pixels" else float(self.tables[spec.input.table].abs().max())
            if spec.net == "prior":
                self.exact[spec.name] = exact_network(spec, tensors, exact, net.prior_channels, net.prior_layers,
                                                      net.prior_embed, in_max, heads=net.heads,
                                                      key_channels=net.key_channels)
            elif spec.name == "codes1":
                self.exact[spec.name] = exact_network(spec, tensors, exact, net.ar2_channels, net.ar2_layers,
                                                      net.ar2_embed, in_max)
            else:
                self.exact[spec.name] = exact_network(spec, tensors, exact, net.channels, net.layers)
        up = {"mod0": (0,), "mod1": tuple(range(net.down2))}
        blocks = {"mod0": net.mod_blocks, "mod1": net.mod2_blocks}
        self.modulators = {
            s.condition.embed: ExactEmbedding(subset(tensors, f"{s.condition.embed}."), blocks[s.condition.embed], (),
                                              up[s.condition.embed],
                                              in_max=float(self.tables[s.condition.input.table].abs().max()))
            for s in self.specs if s.condition is not None}
        self.feed_forward = {}  # the `mean` decoding: the levels with a feed-forward auxiliary decoder
        if not net.mask:
            self.feed_forward[1] = FeedForward(tensors, 1, net.aux_layers, 1, net.halo)
        if net.levels == 2 and not net.mask2:
            self.feed_forward[2] = FeedForward(tensors, 2, net.aux2_layers, net.down2, net.halo)
        self._float = {k: v for k, v in tensors.items() if k.startswith(FLOAT_PARTS)}
        self._encoder = None

    def _table_names(self) -> list[str]:
        return [t for s in self.specs for t in (s.input.table if isinstance(s.input, CodeInput) else None,
                                                s.condition.input.table if s.condition else None) if t]

    def layout(self, geometry: Geometry) -> TileLayout:
        """Pixel tiles of even sides: each sees whole codes of level 1."""
        return TileLayout.for_image(geometry.height, geometry.width, self.tile, 2)

    # -- encoders (float, encode time only) -------------------------------------------------------

    def encode_codes(self, image: np.ndarray) -> tuple[np.ndarray, ...]:
        """The code maps of an image (H, W, C), top first."""
        if self._encoder is None:
            model = torch.nn.ModuleDict(self.net.encoders())
            own = {k: v for k, v in model.state_dict().items() if not k.endswith(TRAINING_ONLY)}
            missing = sorted(set(own) - set(self._float)) or sorted(set(self._float) - set(own))
            if missing:
                raise HiercodecError(f"model file's encoder weights do not fit its network: {missing[0]}")
            model.load_state_dict({k: v.float() for k, v in self._float.items()}, strict=False)
            self._encoder = model.eval()
        with torch.no_grad():
            codes = encode(self.net, self._encoder, encoder_input(self.net, image[None, ..., : 3 if image.shape[-1] >= 3 else 1]))
        return tuple(c[0].numpy() for c in codes)

    # -- levels -----------------------------------------------------------------------------------

    def code_layouts(self, geometry: Geometry) -> dict[str, TileLayout]:
        s = self.net.scale
        h1, w1 = -(-geometry.height // s) * s // 2, -(-geometry.width // s) * s // 2
        layouts = {"codes1": TileLayout.for_image(h1, w1, self.tile // 2, s // 2)}
        if self.net.levels == 2:
            r = 1 << self.net.down2
            layouts["codes2"] = TileLayout.for_image(h1 // r, w1 // r, self.tile // 2 // r)
        return layouts

    def color_levels(self, geometry: Geometry, layout: TileLayout) -> list[Level]:
        codes = Codes(self.encode_codes)
        layouts = self.code_layouts(geometry)
        *code_specs, pixels = self.specs
        levels: list[Level] = [
            CodeLevel(s, i, self, layouts[s.name], codes, self.modulators.get(s.condition.embed) if s.condition else None)
            for i, s in enumerate(code_specs)]
        return [*levels, ModulatedPixels(pixels, self, layout, geometry.color)]

    def reconstruct_color(self, decoded: dict[str, np.ndarray], geometry: Geometry, full_size: bool) -> np.ndarray:
        """The pixels of a lossless (or sampled) file, else the `mean` decoding: the feed-forward
        auxiliary decoders from the lowest code level present down to the pixels (codes2 -> the
        most probable codes1 -> pixels; gray images: the luma)."""
        if "pixels" in decoded:
            return decoded["pixels"]
        codes = dict(decoded)
        if "codes1" not in codes:
            codes["codes1"] = self._feed_forward(2)(codes["codes2"][..., 0], self.code_layouts(geometry)["codes1"])
        recon = self._feed_forward(1)(codes["codes1"][..., 0], self.layout(geometry))
        return recon if geometry.channels >= 3 else luma(recon)[..., None].astype(np.uint8)

    def _feed_forward(self, level: int) -> FeedForward:
        if level not in self.feed_forward:
            raise HiercodecError(f"level {level} of this {self.name} model was trained with masked self-prediction "
                                 "and has no feed-forward decoder: decode its lossy files by sampling")
        return self.feed_forward[level]
