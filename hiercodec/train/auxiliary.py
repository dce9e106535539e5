"""Training and export of the two families with auxiliary variables (Kolesnikov & Lampert 2017):
`grayscale` and `pyramid`. The auxiliary variables are deterministic functions of the image
(psi(x), the downsampled levels), computed by the codec's own integer code, so training sees
exactly what the codec codes. The loss is the paper's bound (its eq. 4): the bits of every level
given the levels above, summed per image (hiercodec.train.hierarchy, from the family's declared
hierarchy); the parameters of the levels do not interact, so one optimizer trains all of them at
once (sec. 3).

    hiercodec train grayscale --config grayscale-codec --out runs/grayscale
    hiercodec train pyramid --config pyramid-codec --out runs/pyramid
"""

from __future__ import annotations

import torch

from hiercodec.errors import HiercodecError
from hiercodec.nn.gated import GatedPixelCNN
from hiercodec.train.hierarchy import HierarchyTask


class _AuxiliaryTask(HierarchyTask):
    def warm_start(self, model: torch.nn.Module, weights: dict[str, torch.Tensor]) -> None:
        """Start every PixelCNN of the model that has the shape of a trained `pixelcnn` network
        from its weights, with the conditioning projections zeroed: each such level then codes
        exactly as that network does and learns from there to use the level above (whose
        embedding starts fresh). Networks of other shapes (the 16-way gray prior) start fresh."""
        started = []
        with torch.no_grad():
            for name, net in model.items():
                if not isinstance(net, GatedPixelCNN):
                    continue
                own = net.state_dict()  # shares storage with the parameters
                shared = [k for k in own if not k.startswith("cond.")]
                if set(shared) == set(weights) and all(weights[k].shape == own[k].shape for k in shared):
                    for k in shared:
                        own[k].copy_(weights[k])
                    for p in net.cond.parameters() if net.cond is not None else ():
                        p.zero_()
                    started.append(name)
        if not started:
            raise HiercodecError(f"cannot start from those weights: no PixelCNN of this {self.net.family} "
                                 "model has their shape (layers, channels, head, mixtures)")


class StagedTask(_AuxiliaryTask):
    """A family trained in two stages (VQ-VAE-2's Algorithms 1 and 2; HAM's autoencoders, then its
    prior and autoregressive decoders, De Fauw et al. 2019 appendix A): for `autoencoder_steps`
    steps the autoencoders train, then they are frozen and the networks of the levels train on
    their codes. Their loss is the task's own; export takes the autoencoders' live weights."""

    own_loss = True
    exports_live = True  # the autoencoders' live weights, not their average (export_weights)
    unused_parameters = True  # each stage trains only some networks (DistributedDataParallel must know)
    live_prefixes: tuple[str, ...] = ()  # the autoencoders' parameters

    def __init__(self, config):
        super().__init__(config)
        self.warmup = config.train.warmup

    def export_weights(self, averaged: dict[str, torch.Tensor], live: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The weights to export: the levels' averaged (EMA) weights, but the autoencoders' live
        ones, whose codes the levels were trained on (frozen since the first stage; an average
        would still blend in the weights of before the freeze, and other codebooks mean other codes)."""
        return {k: (live[k] if k.startswith(self.live_prefixes) else v) for k, v in averaged.items()}

    def lr_scale(self, step: int) -> float:
        """The learning rate ramps up again over `warmup` steps when the second stage begins: the
        levels' networks (some started from trained ones) get their first updates then, from a
        fresh Adam state, and a full rate would jolt their weights (the reason for warmup)."""
        since = step - self.net.autoencoder_steps
        return min(1.0, (since + 1) / self.warmup) if 0 <= since and self.warmup else 1.0


class GrayscaleTask(_AuxiliaryTask):
    """-log2 p(psi(x)) - log2 p(x | psi(x)) per image (Grayscale PixelCNN, sec. 3.1)."""

    family = "grayscale"

    def describe(self, steps: int) -> str:
        n = self.net
        return (f"Grayscale PixelCNN: 4-bit gray prior {n.prior_layers}x{n.prior_channels}, colour "
                f"{n.layers}x{n.channels} given an embedding of {n.embed_blocks} blocks x {n.embed_channels}, "
                f"{steps} steps")


class PyramidTask(_AuxiliaryTask):
    """The bits of every level given the one below it, plus the coarsest level's (sec. 3.2)."""

    family = "pyramid"

    def describe(self, steps: int) -> str:
        n = self.net
        return (f"Pyramid PixelCNN, {n.levels} levels: coarsest {n.bottom_layers}x{n.bottom_channels}, "
                f"each finer {n.layers}x{n.channels} given an embedding of {n.embed_blocks} blocks x "
                f"{n.embed_channels}, {steps} steps")
