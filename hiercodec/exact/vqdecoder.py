"""Exact VQ-VAE-2 decoder: the integer twin of hiercodec.nn.vqvae.VQVAE2.decode.

In lossless files the reconstruction feeds the pixel level's probability tables, so the decoder
runs in exact mode (DESIGN.md): every machine reconstructs the same pixels, and a lossy file (the
codes alone) decodes to the same image everywhere too. Every value is an integer (the conventions
of hiercodec.exact.quant); with T and B the top and bottom codebooks quantized to integer tables:

    u = Z(shuffle2(Q(up_t, pad1(T[top]))))                       top vectors at the bottom's size
    h = Z(Q(dec_in, pad1(concat(u, B[bottom]))))                  B[.] = 0 for a file cut after top
    block l:  r = Q(res.l.a, pad1(relu h));  h = Z(C(h + Q(res.l.b, relu r)))
    y = Z(shuffle2(Q(up1, pad1(relu h))));  x = shuffle2(Q(up2, pad1(relu y)))   x in 0 ... 255

Q is a quantized convolution with rounding and clamp (hiercodec.exact.layers.QConv), pad1 one row
and column of zeros on every side, shuffle2 torch's pixel_shuffle(2): each transposed 4x4 stride-2
convolution is a 3x3 convolution to 4x the channels followed by a pixel shuffle
(hiercodec.nn.vqvae.transposed_as_conv). ReLU is max(0, .) on integers. Z zeroes the activations
at positions outside the image's code maps (when the caller says where they are, `inside`): the
float decoder runs on the code maps alone, so every one of its layers sees zeros around them (its
zero padding), and so does the exact one, also when it runs on a canvas larger than the maps.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from hiercodec.exact.layers import qconv
from hiercodec.exact.quant import ACT_MAX, ACT_MIN, DTYPE


def _pad(x: torch.Tensor) -> torch.Tensor:
    return F.pad(x, (1, 1, 1, 1))


class ExactVQDecoder:
    def __init__(self, tensors: dict[str, torch.Tensor], res_layers: int):
        self.top = tensors["codes_t"].to(DTYPE)  # (K, D) integers
        self.bottom = tensors["codes_b"].to(DTYPE)
        self.up_t = qconv(tensors, "up_t", (3, 3), float(self.top.abs().max()))
        self.dec_in = qconv(tensors, "dec_in", (3, 3))  # u and the bottom table: both within 12 bits
        self.res = [(qconv(tensors, f"res.{l}.a", (3, 3)), qconv(tensors, f"res.{l}.b", (1, 1)))
                    for l in range(res_layers)]
        self.up1 = qconv(tensors, "up1", (3, 3))
        self.up2 = qconv(tensors, "up2", (3, 3))

    def planes(self, codes: torch.Tensor, bottom: bool) -> torch.Tensor:
        """Code indices (B, h, w) -> their codebook vectors (B, D, h, w), integers."""
        table = self.bottom if bottom else self.top
        return table[codes.long()].permute(0, 3, 1, 2)

    def forward(self, top: torch.Tensor, bottom: torch.Tensor | None,
                inside: torch.Tensor | None = None) -> torch.Tensor:
        """Codebook vectors (B, D, h, w) of the top codes and (B, D, 2h, 2w) of the bottom codes
        (None: zeros) -> pixels (B, 3, 8h, 8w), integers 0 ... 255. inside: (1 or B, 1, 2h, 2w),
        1 where the image's bottom code map is and 0 around it (None: the maps fill the arrays);
        activations are zeroed around the maps after every layer (Z in the module docstring)."""
        half = None if inside is None else inside.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)
        u = _zero_outside(F.pixel_shuffle(self.up_t.conv(_pad(top)), 2), inside)
        if bottom is None:
            bottom = torch.zeros_like(u)
        h = _zero_outside(self.dec_in.conv(_pad(torch.cat([u, bottom], dim=1))), inside)
        for a, b in self.res:
            r = a.conv(_pad(h.clamp(min=0)))
            h = _zero_outside(b.conv(r.clamp_(min=0), clamp=False).add_(h).clamp_(ACT_MIN, ACT_MAX), inside)
        y = _zero_outside(F.pixel_shuffle(self.up1.conv(_pad(h.clamp_(min=0))), 2), half)
        return F.pixel_shuffle(self.up2.conv(_pad(y.clamp_(min=0))), 2)


def _zero_outside(x: torch.Tensor, inside: torch.Tensor | None) -> torch.Tensor:
    """x with the positions where inside is 0 set to 0 (integers times 0 or 1: exact)."""
    return x if inside is None else x.mul_(inside)
