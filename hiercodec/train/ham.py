"""Training of the `ham` family (De Fauw, Dieleman & Simonyan 2019).

Appendix A: "All hierarchical models consist of one or two autoencoder models and a prior, which
are trained separately and in sequence." One run does it in two stages (hiercodec.train.auxiliary.
StagedTask):

1. for `autoencoder_steps` steps the encoders train with their auxiliary decoders: feed-forward
   (sec. 4.1: mean squared error on pixels; for level 2 the categorical log-likelihood of level 1's
   codes) or masked self-prediction (sec. 4.2, eq. 3: the teacher on masked one-hot inputs, its
   predictions at the masked centres distilled into the student), each plus beta times the VQ
   commitment (the codebooks follow the encoders by exponentially smoothed k-means);
2. then the encoders are frozen and the prior and the autoregressive decoders train on their codes:
   the loss is the joint bound of eq. 4 in bits per dimension (hiercodec.train.hierarchy).

At the start of stage 2 each modulator is handed the trained auxiliary decoder of its level and
its code embedding the level's codebook, where their shapes allow (the auxiliary decoder is the
same network over the same codes): the local PixelCNN then starts from features that already
describe the image, and the modulator has to learn less. A short run without the hand-over learns
to ignore the codes (its samples are the local model's alone; docs/RESULTS.md section 9).

    hiercodec train ham --config ham-codec --init-from runs/s2 --out runs/ham

`--init-from` a `pixelcnn` run starts the pixel level's local PixelCNN from it (conditioning zeroed).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from hiercodec.families.codes import padded_rgb
from hiercodec.families.ham import encoder_input
from hiercodec.families.ham_config import BETA
from hiercodec.nn.ham import msp_losses, one_hot
from hiercodec.train.auxiliary import StagedTask
from hiercodec.train.hierarchy import level_bits


class HAMTask(StagedTask):
    family = "ham"
    live_prefixes = ("enc1.", "aux1.", "teacher1.", "enc2.", "aux2.", "teacher2.")

    def _autoencoders(self, model, x: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """Stage 1's loss and log of uint8 crops x (N, H, W, C)."""
        n, values = self.net, padded_rgb(x.cpu().numpy(), self.net.scale)
        xin = encoder_input(n, values).to(x.device)
        q1, codes1, commit1 = model["enc1"](xin)
        out1 = model["aux1"](q1)
        log = {"codes_used1": int(codes1.unique().numel())}
        if n.mask:  # masked self-prediction (sec. 4.2)
            target = torch.from_numpy(values).to(x.device)
            teacher, student = msp_losses(model["teacher1"], out1, target, n.mask)
            loss1 = teacher + student
            log |= {"teacher1": float(teacher.detach()), "student1": float(student.detach())}
        else:  # feed-forward (sec. 4.1)
            loss1 = (out1 - xin).pow(2).mean()
            m = float(loss1.detach())
            log |= {"mse": m, "psnr": 10 * math.log10(4 / max(m, 1e-12))}
        loss = loss1 + BETA * commit1.mean()
        if n.levels == 2:
            codes1 = codes1.detach()
            q2, codes2, commit2 = model["enc2"](one_hot(codes1[..., None], n.codes))
            out2 = model["aux2"](q2)
            if n.mask2:
                teacher, student = msp_losses(model["teacher2"], out2, codes1[..., None], n.mask2)
                loss2 = teacher + student
            else:  # the categorical log-likelihood of level 1's codes, in nats per code (sec. 4.1)
                loss2 = F.cross_entropy(out2, codes1)
            loss = loss + loss2 + BETA * commit2.mean()
            log |= {"aux2_nats": float(loss2.detach()), "codes_used2": int(codes2.unique().numel())}
        return loss, log

    def hand_over(self, model) -> list[str]:
        """Start each modulator from its level's trained auxiliary decoder, and its code embedding
        from the level's codebook, where the shapes allow; returns what was handed over."""
        done = []
        pairs = [("mod0", "aux1", "mod0_in", "enc1")]
        if self.net.levels == 2:
            pairs.append(("mod1", "aux2", "mod1_in", "enc2"))
        with torch.no_grad():
            for mod, aux, table, enc in pairs:
                own, theirs = model[mod].state_dict(), model[aux].body.state_dict()
                if all(k in own and own[k].shape == v.shape for k, v in theirs.items()):
                    for k, v in theirs.items():
                        own[k].copy_(v)
                    for k in own.keys() - theirs.keys():  # blocks beyond the decoder's: identities
                        if k.startswith("conv2."):
                            own[k].zero_()
                    done.append(mod)
                codebook = model[enc].vq.embed
                if model[table].weight.shape == codebook.shape:
                    model[table].weight.copy_(codebook)
                    done.append(table)
        return done

    def loss(self, model, x: torch.Tensor, step: int) -> tuple[torch.Tensor, dict]:
        """Stage 1: the autoencoders' losses; stage 2: the bits/dim of every level given the frozen
        encoders' codes (eq. 4)."""
        if step < self.net.autoencoder_steps:
            return self._autoencoders(model, x)
        if step == self.net.autoencoder_steps:
            self.handed = self.hand_over(model)
        values = x.cpu().numpy()
        parts = self._level_bits(model, values, x.device)
        dims = values.size
        log = {f"bpd_{k}": float(v.detach().sum()) / dims for k, v in parts.items()}
        log["bpd"] = sum(log.values())
        return sum(p.sum() for p in parts.values()) / dims, log

    def _level_bits(self, model, values: np.ndarray, device) -> dict[str, torch.Tensor]:
        for part in ("enc1", "enc2"):
            if part in model:
                model[part].eval()  # frozen: no codebook updates
        return level_bits(self.hierarchy, model, self.hierarchy.values(values, model), device)

    def describe(self, steps: int) -> str:
        n = self.net
        aux = lambda m: f"MSP (mask {m}x{m})" if m else "feed-forward"  # noqa: E731
        top = f"{n.codes2} codes at 1/{n.scale}" if n.levels == 2 else f"{n.codes} codes at 1/2"
        return (f"HAM, {n.levels} code level{'s' if n.levels > 1 else ''} ({aux(n.mask)} auxiliary decoder), "
                f"top {top} by a prior {n.prior_layers}x{n.prior_channels} with attention every "
                f"{n.attention_every}, pixels {n.layers}x{n.channels} given a {n.mod_blocks}-block modulator, "
                f"autoencoders {n.autoencoder_steps} steps, {steps} steps")
