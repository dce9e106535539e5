"""Training of the `agave` family (Lucas & Verbeek 2018): eq. 7,

    -L = -E_q[log p(x | z)] - E_q[log p(y | z)] + lambda KL(q(z|x) || N(0, I)),

one reparameterized sample of z per image, the KL in closed form. y is x quantized to b colour
levels, modelled factorially from f(z): per-pixel logistic means and per-channel scales shared
across pixels, its probabilities by eq. 10 (binary models: a Bernoulli with f(z) its logits). The
evaluation and the codec use the true bound of x (lambda = 1, no auxiliary term). Adamax at 2e-3
(sec. 4.1).

    hiercodec train agave --config agave-codec --out runs/agave
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from hiercodec.families.pixelvae_config import binary_pixels, network_input
from hiercodec.families.registry import build_family
from hiercodec.nn.pixelvae import gaussian_kl, log_normal, reparameterize
from hiercodec.train.auxiliary import _AuxiliaryTask
from hiercodec.train.pixelvae import EVAL_SEED, pixel_nats


def aux_means(model, z: torch.Tensor) -> torch.Tensor:
    """f(z): the auxiliary image's means (binary: logits), (B, C_y, 28, 28)."""
    return model["aux"](model["upsampler"](z))


def aux_nats(net, model, x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """-log p(y | z) in nats per image: y = x quantized to `aux_levels` levels (eq. 10), means f
    in [-1, 1] for pixel values 0 ... 255, per-channel log scales in pixel units."""
    if net.binary:
        return F.binary_cross_entropy_with_logits(f, binary_pixels(x).float(), reduction="none").sum(dim=(1, 2, 3))
    c = 256 // net.aux_levels
    y = x.permute(0, 3, 1, 2).float()
    y = y.expand(-1, 3, -1, -1) if y.shape[1] == 1 else y
    lo = torch.div(y, c, rounding_mode="floor") * c  # the bin's lower edge c [y / c]
    mu = (f + 1) * 127.5
    inv_s = torch.exp(-model["aux_scale"].log_scale)[None, :, None, None]
    upper = torch.where(lo + c >= 256, torch.full_like(lo, 1e9), (lo + c - mu) * inv_s)
    lower = torch.where(lo <= 0, torch.full_like(lo, -1e9), (lo - mu) * inv_s)
    # log(sigmoid(a) - sigmoid(b)) computed stably from the log-sigmoids
    log_p = F.logsigmoid(upper) + torch.log1p(-torch.exp(torch.clamp(F.logsigmoid(lower) - F.logsigmoid(upper), max=-1e-6)))
    return -log_p[:, : x.shape[3]].sum(dim=(1, 2, 3))


def agave_terms(net, model, x: torch.Tensor, generator: torch.Generator | None = None):
    """(reconstruction of x, reconstruction of y, KL) in nats per image."""
    xin = network_input(net, x)
    mu, log_sigma = model["encoder"](xin)
    z = reparameterize(mu, log_sigma, generator)
    f = aux_means(model, z)
    rec = pixel_nats(net, model["pixels"](xin, model["embed"](f)), x)
    return rec, aux_nats(net, model, x, f), gaussian_kl(mu, log_sigma)


def log_weights(net, model, x: torch.Tensor, k: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """log p(x, z) - log q(z | x) in nats of k draws z ~ q for one image x (1, H, W, C): (k,), under
    the true model (lambda = 1, no auxiliary term); see hiercodec.train.pixelvae.log_weights."""
    xk = x.expand(k, -1, -1, -1)
    mu, log_sigma = model["encoder"](network_input(net, x))
    z = reparameterize(mu.expand(k, -1), log_sigma.expand(k, -1), generator)
    rec = pixel_nats(net, model["pixels"](network_input(net, xk), model["embed"](aux_means(model, z))), xk)
    zero = torch.zeros_like(z)
    return -rec + log_normal(z, zero, zero) - log_normal(z, mu, log_sigma)


class AGAVETask(_AuxiliaryTask):
    family = "agave"
    own_loss = True

    def loss(self, model, x: torch.Tensor, step: int) -> tuple[torch.Tensor, dict]:
        rec, aux, kl = agave_terms(self.net, model, x)
        weight = self.net.kl_weight * (min(1.0, step / self.net.kl_warmup) if self.net.kl_warmup else 1.0)
        dims = x[0].numel()
        loss = (rec + aux + weight * kl).mean() / (dims * math.log(2))  # eq. 7, per dimension of x
        nats = float((rec + kl).mean().detach())
        return loss, {"nats": nats, "kl_nats": float(kl.mean().detach()), "aux_nats": float(aux.mean().detach()),
                      "bpd": nats / (dims * math.log(2))}

    def bits(self, model, x: torch.Tensor) -> torch.Tensor:
        """The true bound of x (lambda = 1, no auxiliary term) in bits per image (N,), fixed z draws."""
        rec, _, kl = agave_terms(self.net, model, x, torch.Generator().manual_seed(EVAL_SEED))
        return (rec + kl) / math.log(2)

    def log_weights(self, model, x: torch.Tensor, k: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Importance weights of k draws of z for one image (see `log_weights`)."""
        return log_weights(self.net, model, x, k, generator)

    def export(self, weights: dict[str, torch.Tensor], calibration: np.ndarray):
        tensors, exact_config = self._exporter(weights, self.net, calibration)
        return tensors, exact_config, build_family(exact_config, {k: torch.from_numpy(v) for k, v in tensors.items()})

    def describe(self, steps: int) -> str:
        n = self.net
        y = "x" if n.aux_levels == 256 else f"x at {n.aux_levels} levels"
        return (f"AGAVE, lambda {n.kl_weight}, y = {y}, {n.latents} latents, PixelCNN {n.layers} x {n.channels} "
                f"given f(z), {steps} steps")
