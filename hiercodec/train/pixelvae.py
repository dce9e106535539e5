"""Training of the `pixelvae` family on binarized MNIST (Gulrajani et al. 2016, sec. 4.1, E.1).

The loss is the negative ELBO of each digit, -E_q[log p(x|z)] + KL(q(z|x) || N(0, I)) (sec. 3,
the one-level case of eq. 2), with one reparameterized sample of z per digit and the Gaussian KL
in closed form; `kl_warmup` > 0 weighs the KL by min(1, step / kl_warmup) while training (the
evaluation and the codec always use the true bound). Adam at 1e-3 (appendix E.2; the authors'
MNIST script too, with batches of 100).

    hiercodec train pixelvae --config pixelvae-codec --out runs/pixelvae-mnist
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from hiercodec.families.pixelvae_config import binary_pixels, conditioning, network_input
from hiercodec.families.registry import build_family
from hiercodec.nn.mixture import nll_bits
from hiercodec.exact import gaussian as xg
from hiercodec.nn.pixelvae import gaussian_kl, gaussian_kl_between, log_normal, reparameterize
from hiercodec.train.hierarchy import HierarchyTask

EVAL_SEED = 1234  # the evaluation's z samples: the same for every evaluation of a run


def pixel_nats(net, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """-log p(x | ...) in nats per image (N,) of uint8 images x (N, H, W, C) under the PixelCNN's
    output params: 2-way logits (binary models) or the logistic mixture."""
    params = params.float()
    if net.binary:
        return F.cross_entropy(params, binary_pixels(x)[:, 0], reduction="none").sum(dim=(1, 2))
    x = x.permute(0, 3, 1, 2)
    x3 = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
    return nll_bits(params, x3, net.mixtures, channels=x.shape[1]) * math.log(2)


def reconstruction_nats(net, model, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """-log p(x|z) in nats per image (N,) of uint8 images x (N, H, W, C)."""
    return pixel_nats(net, model["pixels"](network_input(net, x), conditioning(model, z)), x)


def gaussian_params(out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A Gaussian head's output (N, 2C, ...) -> (mu, log sigma) in the ranges the exact tables clamp
    them to (hiercodec.exact.gaussian: |mu| <= 8, log sigma in [-9, 2])."""
    mu, ls = out.chunk(2, dim=1)
    return mu.clamp(-xg.MU_MAX / 2**xg.MU_FRAC, xg.MU_MAX / 2**xg.MU_FRAC), \
        ls.clamp(xg.LS_MIN / xg.LS_SCALE, xg.LS_MAX / xg.LS_SCALE)


def network_latents(z: torch.Tensor) -> torch.Tensor:
    """Latents as the networks read them: clamped to the 12-bit range of exact inputs (+-8 at 2^-8)."""
    return z.clamp(-8, 8)


def hierarchy_terms(net, model, x: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(reconstruction, KL) in nats per image of the two-level model (sec. 3.1): -log p(x | z1) with
    z1, z2 ~ q, and KL(q(z1|x) || p(z1 | z2)) + KL(q(z2|x) || p(z2)), each a closed form given the
    autoregressive prior's parameters at the sampled latents (its masked convolutions see the
    sample, as the paper trains them in parallel)."""
    xin = network_input(net, x)
    h1 = model["enc1"](xin)
    mu1, ls1 = gaussian_params(model["q1"](h1))
    mu2, ls2 = gaussian_params(model["q2"](model["enc2"](h1)))
    z2 = network_latents(reparameterize(mu2, ls2, generator))
    z1 = network_latents(reparameterize(mu1, ls1, generator))
    kl2 = gaussian_kl_between(mu2, ls2, *gaussian_params(model["prior2"](z2)))
    kl1 = gaussian_kl_between(mu1, ls1, *gaussian_params(model["prior1"](z1, model["dec2"](z2))))
    return pixel_nats(net, model["pixels"](xin, model["dec1"](z1)), x), kl1 + kl2


def log_map_density(z: torch.Tensor, mu: torch.Tensor, log_sigma: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, sigma^2) of latent maps (N, C, h, w), summed per image (N,)."""
    return log_normal(z.flatten(1), mu.flatten(1), log_sigma.flatten(1))


def log_weights(net, model, x: torch.Tensor, k: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """log p(x, z) - log q(z | x) in nats of k draws z ~ q for one image x (1, H, W, C): (k,). Minus
    their mean estimates the negative ELBO; -log of the mean of their exponentials is the
    importance-sampled NLL estimate (Burda et al. 2015)."""
    xk = x.expand(k, -1, -1, -1)
    xin = network_input(net, xk)
    if net.levels == 2:
        h1 = model["enc1"](xin)
        mu1, ls1 = gaussian_params(model["q1"](h1))
        mu2, ls2 = gaussian_params(model["q2"](model["enc2"](h1)))
        z2, z1 = reparameterize(mu2, ls2, generator), reparameterize(mu1, ls1, generator)
        n2, n1 = network_latents(z2), network_latents(z1)
        log_p = (log_map_density(z2, *gaussian_params(model["prior2"](n2)))
                 + log_map_density(z1, *gaussian_params(model["prior1"](n1, model["dec2"](n2)))))
        log_q = log_map_density(z1, mu1, ls1) + log_map_density(z2, mu2, ls2)
        return -pixel_nats(net, model["pixels"](xin, model["dec1"](n1)), xk) + log_p - log_q
    mu, log_sigma = model["encoder"](network_input(net, x))
    z = reparameterize(mu.expand(k, -1), log_sigma.expand(k, -1), generator)
    zero = torch.zeros_like(z)
    return -reconstruction_nats(net, model, xk, z) + log_normal(z, zero, zero) - log_normal(z, mu, log_sigma)


def elbo_terms(net, model, x: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(reconstruction, KL) in nats per image of uint8 images x (N, H, W, C)."""
    if net.levels == 2:
        return hierarchy_terms(net, model, x, generator)
    if not net.latents:  # a plain PixelCNN: no latent, no KL
        return reconstruction_nats(net, model, x, None), torch.zeros(len(x), device=x.device)
    mu, log_sigma = model["encoder"](network_input(net, x))
    z = reparameterize(mu, log_sigma, generator)
    return reconstruction_nats(net, model, x, z), gaussian_kl(mu, log_sigma)


class PixelVAETask(HierarchyTask):
    family = "pixelvae"
    own_loss = True

    def loss(self, model, x: torch.Tensor, step: int) -> tuple[torch.Tensor, dict]:
        rec, kl = elbo_terms(self.net, model, x)
        weight = min(1.0, step / self.net.kl_warmup) if self.net.kl_warmup else 1.0
        dims = x[0].numel()
        loss = (rec + weight * kl).mean() / (dims * math.log(2))  # bits/dim of the (weighted) bound
        nats = float((rec + kl).mean().detach())
        return loss, {"nats": nats, "kl_nats": float(kl.mean().detach()), "bpd": nats / (dims * math.log(2))}

    def bits(self, model, x: torch.Tensor) -> torch.Tensor:
        """The negative ELBO in bits per image (N,), one sample of z per image drawn with a fixed seed."""
        rec, kl = elbo_terms(self.net, model, x, torch.Generator().manual_seed(EVAL_SEED))
        return (rec + kl) / math.log(2)

    def log_weights(self, model, x: torch.Tensor, k: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Importance weights of k draws of the latents for one image (see `log_weights`)."""
        return log_weights(self.net, model, x, k, generator)

    def export(self, weights: dict[str, torch.Tensor], calibration: np.ndarray):
        """(tensors, exact config, family) calibrated on uint8 images (N, 28, 28, C) as they are
        (a binary model reads gray 0s and 255s; an 8-bit one replicates gray itself)."""
        tensors, exact_config = self._exporter(weights, self.net, calibration)
        return tensors, exact_config, build_family(exact_config, {k: torch.from_numpy(v) for k, v in tensors.items()})

    def describe(self, steps: int) -> str:
        n = self.net
        how = "upsampled features of z" if n.upsample else "a linear map of z in every layer"
        if n.levels == 2:
            return (f"hierarchical PixelVAE: z1 {n.c1} x 1/4, z2 {n.c2} x 1/16 of {n.map_tile}-pixel tiles, "
                    f"priors {n.prior_layers} x {n.prior_channels}, pixels {n.layers} x {n.channels}, {steps} steps")
        if not n.latents:
            return f"gated PixelCNN of 1 + {n.layers} layers x {n.channels} (no latent), {steps} steps"
        return (f"PixelVAE, {n.latents} Gaussian latents, gated PixelCNN of 1 + {n.layers} layers x {n.channels} "
                f"given {how}, {steps} steps")
