"""Export of a trained `ham` model (hiercodec.families.ham_config) to its exact form.

The prior, the autoregressive decoders, their modulators and code embeddings are the hierarchy's
levels (hiercodec.export.hierarchy). Beyond them: the feed-forward auxiliary decoders (the `mean`
decoding of lossy files, exact, calibrated on the codes of the calibration crops) and
the float encoders (float16: they run at encode time only and do not feed a table).
"""

from __future__ import annotations

import numpy as np
import torch

from hiercodec.export.hierarchy import export_levels, float_model
from hiercodec.export.quantize import Exporter, code_table, exact_config, export_embedding
from hiercodec.families.ham import FLOAT_PARTS, TRAINING_ONLY, hierarchy
from hiercodec.families.ham_config import HAMConfig

PIXEL_GAIN = 128.0  # the auxiliary decoder's output y is the pixel (y * 128 + 128), rounded and clamped


def export_feed_forward(ex: Exporter, model: torch.nn.Module, level: int, codes: torch.Tensor) -> dict:
    """Quantize level `level`'s feed-forward auxiliary decoder (`aux1`: pixels; `aux2`: logits of
    level 1's codes), reading the level's quantized codebook (`aux1_in`, `aux2_in`), calibrated on
    the level's code maps (N, h, w)."""
    aux = model[f"aux{level}"]
    table, frac = code_table(ex, f"aux{level}_in", model[f"enc{level}"].vq.embed)
    x = table[torch.as_tensor(codes).long().cpu()].permute(0, 3, 1, 2)
    body = export_embedding(ex, f"aux{level}.body.", aux.body, x, frac, float(table.abs().max()) * 2.0 ** frac)
    n = aux.out.out_channels
    if level == 1:
        ex.conv("aux1.out", aux.out, body["frac"], 0, gain=np.full(n, PIXEL_GAIN), offset=np.full(n, PIXEL_GAIN),
                lo=np.zeros(n), hi=np.full(n, 255))
    else:  # only the largest logit matters (the most probable code)
        ex.conv(f"aux{level}.out", aux.out, body["frac"], body["frac"])
    return body


def export_ham(state_dict: dict[str, torch.Tensor], config: HAMConfig,
               calibration: np.ndarray) -> tuple[dict[str, np.ndarray], dict]:
    """(tensors, exact config) of a HAM model; calibration: uint8 RGB crops (N, H, W, 3)."""
    model = float_model(config, state_dict)
    ex = Exporter()
    h = hierarchy(config)
    values = h.values(calibration, model)
    parts = export_levels(ex, h, model, values)
    for level in range(1, config.levels + 1):  # the `mean` decoding of lossy files: feed-forward models
        if not (config.mask if level == 1 else config.mask2):
            parts[f"aux{level}"] = export_feed_forward(ex, model, level, values[f"codes{level}"])
    tensors = ex.tensors
    tensors.update({k: v.detach().half().numpy() for k, v in model.state_dict().items()
                    if k.startswith(FLOAT_PARTS) and not k.endswith(TRAINING_ONLY)})
    return tensors, exact_config("ham", config, ex, **parts)
