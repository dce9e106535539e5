"""Training and export of the `vqvae2` family (Razavi et al. 2019).

The paper trains in two stages (Algorithms 1 and 2): the VQ-VAE on the reconstruction loss of its
eq. 2 (with the codebooks updated by moving averages), then the priors on the codes of the trained
encoder. One run does both: for `autoencoder_steps` steps the autoencoder trains (and the code
priors follow its codes, a head start), then it is frozen and the priors and the pixel level of
lossless files train on its codes and reconstructions. The codes and reconstructions a prior sees
are detached: no prior loss reaches the autoencoder.

    hiercodec train vqvae2 --config vqvae2-codec --init-from runs/s2 --out runs/vqvae2

`--init-from` a `pixelcnn` run starts the pixel level from that network (conditioning zeroed).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from hiercodec.families.vqvae2 import encoder_input
from hiercodec.families.vqvae2_config import BETA
from hiercodec.nn.vqvae import reconstruction_pixels
from hiercodec.train.auxiliary import StagedTask
from hiercodec.train.hierarchy import level_bits


class VQVAE2Task(StagedTask):
    family = "vqvae2"
    live_prefixes = ("vq.",)

    def _codes(self, model, x: torch.Tensor, train_autoencoder: bool):
        """(reconstruction-or-None, commitment, top codes, bottom codes, x input) of uint8 crops."""
        values = x.cpu().numpy()
        xin = encoder_input(values).to(x.device)
        vq = model["vq"]
        if train_autoencoder:
            vq.train(model.training)
            y, commitment, codes_t, codes_b = vq(xin)
            return y, commitment, codes_t, codes_b, xin
        vq.eval()  # frozen: no codebook updates, no gradients
        with torch.no_grad():
            _, _, codes_t, codes_b, _ = vq.encode(xin)
        return None, None, codes_t, codes_b, xin

    def prior_bits(self, model, values: np.ndarray, codes_t: torch.Tensor, codes_b: torch.Tensor,
                   pixels: bool = True) -> dict[str, torch.Tensor]:
        """Bits per image of each level (hiercodec.train.hierarchy): top codes, bottom codes given
        top, pixels given the reconstruction (the exact decoder's rounding of the float decoder's
        output), or the code levels alone."""
        levels = {"top": codes_t, "bottom": codes_b, "pixels": values}
        if pixels:
            with torch.no_grad():
                levels["recon"] = reconstruction_pixels(model["vq"].decode_codes(codes_t, codes_b))
        return level_bits(self.hierarchy, model, levels, codes_t.device, None if pixels else ("top", "bottom"))

    def bits(self, model, x: torch.Tensor) -> torch.Tensor:
        """Bits per image of a lossless file: the joint bound -log2 p(top) p(bottom | top) p(x | codes)."""
        _, _, codes_t, codes_b, _ = self._codes(model, x, False)
        return sum(self.prior_bits(model, x.cpu().numpy(), codes_t, codes_b).values())

    def loss(self, model, x: torch.Tensor, step: int) -> tuple[torch.Tensor, dict]:
        """The training loss of this step and what to log. Autoencoder stage: eq. 2 (mean squared
        error of the [-1, 1] pixels + beta x commitment) + the code priors' bits/dim; after it: the
        bits/dim of every level given the frozen autoencoder's codes."""
        values = x.cpu().numpy()
        dims = values.size
        stage1 = step < self.net.autoencoder_steps
        y, commitment, codes_t, codes_b, xin = self._codes(model, x, stage1)
        parts = self.prior_bits(model, values, codes_t.detach(), codes_b.detach(), pixels=not stage1)
        bpd = sum(p.sum() for p in parts.values()) / dims
        log = {f"bpd_{k}": float(v.detach().sum()) / dims for k, v in parts.items()}
        log["bpd"] = sum(log.values())  # what the levels trained at this step cost
        if stage1:
            mse = (y - xin).pow(2).mean()
            m = float(mse.detach())
            log |= {"mse": m, "psnr": 10 * math.log10(4 / max(m, 1e-12)),
                    "codes_used_top": int(codes_t.unique().numel()), "codes_used_bottom": int(codes_b.unique().numel())}
            return mse + BETA * commitment.mean() + bpd, log
        return bpd, log

    def describe(self, steps: int) -> str:
        n = self.net
        return (f"VQ-VAE-2: {n.codes} codes x {n.code_dim} at 1/8 and 1/4, top prior {n.top_layers}x{n.top_channels} "
                f"with attention every {n.attention_every}, bottom prior {n.bottom_layers}x{n.bottom_channels} "
                f"given a {n.cond_blocks}-block conditioning stack, pixels {n.layers}x{n.channels} given the "
                f"reconstruction, {steps} steps")
