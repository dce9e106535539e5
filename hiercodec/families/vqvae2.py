"""The `vqvae2` family: VQ-VAE-2 (Razavi et al. 2019) as a lossy, lossless and progressive codec.

Levels, top first (bitstreams/FORMAT.md):
- `top`: the top code map, ceil(H/8) x ceil(W/8) codes of 0 ... K-1, coded by a PixelCNN prior
  with causal multi-head self-attention (sec. 3.2);
- `bottom`: the bottom code map, twice that size, coded by a PixelCNN conditioned on the top codes
  through a residual conditioning stack (sec. 3.2);
- `pixels` (lossless files; beyond the paper, in the spirit of De Fauw et al. 2019): the image,
  coded by a conditional PixelCNN whose features are an embedding of the decoder's reconstruction
  from the codes;
- `alpha` for images with alpha (lossless files).
A file cut after `top` or `bottom` is lossy: the image is the exact feed-forward decoder's
reconstruction from the codes present (after `top` alone, the bottom vectors are zeros, which
training teaches the decoder: VQVAE2Config.top_only_percent).

The codes come from the float encoder (run at encode time only; DESIGN.md allows it: it is not on
the path to a table). The image is extended to multiples of 8 by edge repetition before encoding;
the reconstruction is cropped back. Everything that feeds a table (the priors, the conditioning
stack, the decoder, the pixel level's embedding) is exact.
"""

from __future__ import annotations

import numpy as np
import torch

from hiercodec.errors import HiercodecError
from hiercodec.exact.embedding import ExactEmbedding
from hiercodec.exact.layers import subset
from hiercodec.exact.quant import DTYPE, threads
from hiercodec.exact.vqdecoder import ExactVQDecoder
from hiercodec.families.base import Level
from hiercodec.families.codes import CodeLevel, Codes, padded_rgb
from hiercodec.families.family import Family
from hiercodec.families.hierarchy import CATEGORICAL, MIXTURE, Condition, Hierarchy, LevelSpec
from hiercodec.families.inputs import PIXELS, CodeInput
from hiercodec.families.pixelcnn import PixelLevel
from hiercodec.families.raster import exact_network
from hiercodec.families.registry import register
from hiercodec.geometry import Geometry
from hiercodec.families.vqvae2_config import DOWN, VQVAE2Config
from hiercodec.images import luma
from hiercodec.tiling import TileLayout

DECODER_ONLY = ("up_t.", "dec_in.", "res_d.", "up1.", "up2.")  # float decoder weights: not in a model file
TRAINING_ONLY = (".count", ".total", ".started")  # codebook statistics of training: not in a model file
# Part of the format (bitstreams/FORMAT.md): they define the reconstruction, hence lossy images and
# the pixel level's features. The halo covers the receptive field of decoders of up to 3 residual
# layers (Table 5 has 2); deeper ones are still exact and deterministic, only tile seams differ.
RECON_TILE = 16  # top codes per side of one pass of the exact decoder (128 pixels)
RECON_HALO = 3  # top codes around it that the pass sees


def encoder_input(images: np.ndarray) -> torch.Tensor:
    """uint8 (B, H, W, C), C = 1 or 3 -> the float encoder's input (B, 3, H', W') in [-1, 1)."""
    return PIXELS.float(padded_rgb(images, DOWN))


def hierarchy(net: VQVAE2Config) -> Hierarchy:
    """The top codes by a PixelCNN prior with attention (`top`), the bottom codes by a PixelCNN
    (`bottom`) biased by a conditioning stack (`cond`) over the top codes, the pixels of lossless
    files by a PixelCNN (`pixels`) biased by an embedding (`embed`) of the decoder's reconstruction
    (`recon`, a map derived from the codes). Codes enter the networks through learned embeddings
    (`top_in`, `bottom_in`, `cond_in`)."""
    return Hierarchy(
        (LevelSpec("top", "top", CodeInput("top_in"), CATEGORICAL, net.codes),
         LevelSpec("bottom", "bottom", CodeInput("bottom_in"), CATEGORICAL, net.codes,
                   Condition("cond", "top", CodeInput("cond_in"), 2)),
         LevelSpec("pixels", "pixels", PIXELS, MIXTURE, net.mixtures, Condition("embed", "recon", PIXELS, 1))),
        float_values)


def float_values(images: np.ndarray, model: torch.nn.Module) -> dict:
    """Every level's values for training and export: the float VQ-VAE's codes (N, h, w) and its
    reconstruction as the exact decoder rounds it (`recon`, N, H, W, 3), and the pixels."""
    from hiercodec.nn.vqvae import reconstruction_pixels

    vq = model["vq"]
    with torch.no_grad():
        _, _, top, bottom, _ = vq.encode(encoder_input(images).to(next(vq.parameters()).device))
        recon = reconstruction_pixels(vq.decode_codes(top, bottom))
    return {"top": top, "bottom": bottom, "pixels": images, "recon": recon}


class VQPixelLevel(PixelLevel):
    """The pixels, given an embedding of the exact reconstruction from both code maps."""

    def __init__(self, spec: LevelSpec, family: "VQVAE2Family", layout: TileLayout, channels: int):
        net, mixture = family.exact[spec.name]
        super().__init__(spec, net, mixture, layout, channels, family.embed, family.net.halo)
        self.family = family

    def source(self, above: dict[str, np.ndarray]) -> torch.Tensor:
        recon = self.family.reconstruction(above["top"][..., 0], above["bottom"][..., 0], self.layout.height,
                                           self.layout.width)
        return self.spec.condition.input.planes(recon)


@register("vqvae2", network=VQVAE2Config, configs=("vqvae2", "vqvae2-small", "vqvae2-codec"),
          task="hiercodec.train.vqvae2:VQVAE2Task", exporter="hiercodec.export.vqvae2:export_vqvae2")
class VQVAE2Family(Family):
    hierarchy = staticmethod(hierarchy)
    lossy_levels = 2  # a lossy file holds the top and bottom codes (the paper's codec)
    exact_encoder = False  # the VQ encoder is float: another machine may choose other (valid) codes

    def __init__(self, config: dict, tensors: dict[str, torch.Tensor]):
        super().__init__(config, tensors)
        net = VQVAE2Config.from_dict(config["network"])
        exact = config["exact"]
        self.net, self.tile = net, net.tile
        self.decoder = ExactVQDecoder(subset(tensors, "dec."), net.res_layers)
        self.specs = hierarchy(net).levels
        top, bottom, pixels = self.specs
        self.tables = {t: tensors[t].to(DTYPE) for t in (top.input.table, bottom.input.table, bottom.condition.input.table)}
        in_max = {s.name: float(self.tables[s.input.table].abs().max()) for s in (top, bottom)}
        self.exact = {
            "top": exact_network(top, tensors, exact, net.top_channels, net.top_layers, net.top_embed, in_max["top"],
                                 heads=net.heads, key_channels=net.key_channels),
            "bottom": exact_network(bottom, tensors, exact, net.bottom_channels, net.bottom_layers, net.bottom_embed,
                                    in_max["bottom"]),
            "pixels": exact_network(pixels, tensors, exact, net.channels, net.layers),
        }
        cond_max = float(self.tables[bottom.condition.input.table].abs().max())
        self.cond = ExactEmbedding(subset(tensors, f"{bottom.condition.embed}."), net.cond_blocks, (), net.cond_up,
                                   in_max=cond_max)
        self.embed = ExactEmbedding(subset(tensors, f"{pixels.condition.embed}."), net.embed_blocks, (), (),
                                    in_max=PIXELS.max)
        self._encoder = None
        self._float_weights = {k[len("vq."):]: v for k, v in tensors.items() if k.startswith("vq.")}

    # -- encoder (float, encode time only) ------------------------------------------------------

    def encode_codes(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The top (ceil(H/8), ceil(W/8)) and bottom (twice that) code maps of an image."""
        if self._encoder is None:
            from hiercodec.nn.vqvae import VQVAE2

            n = self.net
            model = VQVAE2(n.hidden, n.residual, n.res_layers, n.codes, n.code_dim)
            missing, unexpected = model.load_state_dict({k: v.float() for k, v in self._float_weights.items()},
                                                        strict=False)
            # the decoder is exact (dec.*) and the codebooks' moving statistics are training state
            missing = [k for k in missing if not k.startswith(DECODER_ONLY) and not k.endswith(TRAINING_ONLY)]
            if missing or unexpected:
                raise HiercodecError(f"model file's encoder weights do not fit its network: "
                                     f"{(missing or unexpected)[0]} {'missing' if missing else 'unexpected'}")
            self._encoder = model.eval()
        with torch.no_grad():
            x = encoder_input(image[None, ..., :3] if image.shape[-1] >= 3 else image[None, ..., :1])
            _, _, top, bottom, _ = self._encoder.encode(x)
        return top[0].numpy(), bottom[0].numpy()

    # -- the exact decoder ----------------------------------------------------------------------

    def reconstruction(self, top: np.ndarray, bottom: np.ndarray | None, height: int, width: int) -> np.ndarray:
        """The exact decoder's image (height, width, 3) uint8 from code maps (h, w) and (2h, 2w)
        (bottom None: the top codes alone). Passes over RECON_TILE x RECON_TILE top codes with
        RECON_HALO codes around them (zero vectors outside the map, and every layer's activations
        zeroed there, as the float decoder's zero padding around the map does), so memory does not
        grow with the image and, when RECON_HALO covers the decoder's receptive field (res_layers
        <= 3), the result does not depend on how passes are cut."""
        dec, t, m = self.decoder, RECON_TILE, RECON_HALO
        h, w = top.shape
        rows, cols = -(-h // t), -(-w // t)
        canvas_t = torch.zeros(1, dec.top.shape[1], rows * t + 2 * m, cols * t + 2 * m, dtype=DTYPE)
        canvas_t[..., m : m + h, m : m + w] = dec.planes(torch.from_numpy(top.astype(np.int64))[None], False)
        canvas_b = None
        if bottom is not None:
            canvas_b = torch.zeros(1, dec.bottom.shape[1], 2 * (rows * t + 2 * m), 2 * (cols * t + 2 * m), dtype=DTYPE)
            canvas_b[..., 2 * m : 2 * (m + h), 2 * m : 2 * (m + w)] = dec.planes(torch.from_numpy(bottom.astype(np.int64))[None], True)
        inside = torch.zeros(1, 1, 2 * (rows * t + 2 * m), 2 * (cols * t + 2 * m), dtype=DTYPE)
        inside[..., 2 * m : 2 * (m + h), 2 * m : 2 * (m + w)] = 1
        out = np.zeros((rows * t * DOWN, cols * t * DOWN, 3), np.uint8)
        s = DOWN * t
        with threads(8):
            for r in range(rows):
                for c in range(cols):
                    pt = canvas_t[..., r * t : r * t + t + 2 * m, c * t : c * t + t + 2 * m]
                    pb = None if canvas_b is None else canvas_b[..., 2 * r * t : 2 * (r * t + t + 2 * m),
                                                                 2 * c * t : 2 * (c * t + t + 2 * m)]
                    pi = inside[..., 2 * r * t : 2 * (r * t + t + 2 * m), 2 * c * t : 2 * (c * t + t + 2 * m)]
                    y = dec.forward(pt, pb, pi)[0, :, DOWN * m : DOWN * m + s, DOWN * m : DOWN * m + s]
                    out[r * s : (r + 1) * s, c * s : (c + 1) * s] = y.permute(1, 2, 0).numpy().astype(np.uint8)
        return out[:height, :width]

    # -- levels -----------------------------------------------------------------------------------

    def code_layouts(self, geometry: Geometry) -> tuple[TileLayout, TileLayout]:
        ht, wt = -(-geometry.height // DOWN), -(-geometry.width // DOWN)
        t = self.net.tile // DOWN
        return (TileLayout.for_image(ht, wt, t),
                TileLayout.for_image(2 * ht, 2 * wt, 2 * t, 2))  # even tiles: each sees whole top codes

    def color_levels(self, geometry: Geometry, layout: TileLayout) -> list[Level]:
        codes = Codes(self.encode_codes)
        top_layout, bottom_layout = self.code_layouts(geometry)
        top, bottom, pixels = self.specs
        return [CodeLevel(top, 0, self, top_layout, codes),
                CodeLevel(bottom, 1, self, bottom_layout, codes, self.cond),
                VQPixelLevel(pixels, self, layout, geometry.color)]

    def reconstruct_color(self, decoded: dict[str, np.ndarray], geometry: Geometry, full_size: bool) -> np.ndarray:
        """The pixels of a lossless file, else the decoder's reconstruction from the codes present
        (gray images: its luma), always full size."""
        if "pixels" in decoded:
            return decoded["pixels"]
        bottom = decoded.get("bottom")
        recon = self.reconstruction(decoded["top"][..., 0], None if bottom is None else bottom[..., 0],
                                    geometry.height, geometry.width)
        return recon if geometry.channels >= 3 else luma(recon)[..., None].astype(np.uint8)
