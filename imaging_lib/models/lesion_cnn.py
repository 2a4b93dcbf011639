"""The demo model's architecture: a small CNN built for CPU speed.

``LesionCNN`` answers "does this slice contain a focal lesion?" for a ``3 x 224 x 224``
input. It is designed around where CPU time goes for LIME (a thousand forward passes
per explanation): a 4x4 stride-4 "patchify" stem brings the image to 56x56 at once,
four 3x3 convolutions follow, and a 1x1 convolution scores every cell of the 14x14 map
for "lesion here" (:meth:`LesionCNN.lesion_map`). The slice's lesion logit is the
maximum over the map (multiple-instance pooling: one focal finding is enough, and is not
averaged away), returned as the two logits ``(-s/2, s/2)`` so that the softmax gives
``sigmoid(s)`` for "lesion". Training also supervises the map with the lesion masks.
About 70 k parameters and 24 M multiply-adds per image.

It is trained with batch normalisation (``batch_norm=True``) and shipped with every
batch norm folded into the convolution before it (:func:`fold_batch_norm`), so the
shipped module is convolutions and ReLUs only.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["LesionCNN", "fold_batch_norm", "map_to_logits"]


def _conv_block(in_channels: int, out_channels: int, kernel: int, stride: int, batch_norm: bool) -> list[nn.Module]:
    padding = 1 if kernel == 3 else 0
    layers: list[nn.Module] = [nn.Conv2d(in_channels, out_channels, kernel, stride, padding, bias=True)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(out_channels))
    layers.append(nn.ReLU(inplace=True))
    return layers


class LesionCNN(nn.Module):
    """Small convolutional classifier of 2D slices.

    Parameters
    ----------
    width : int
        Channels after the stem; later stages have ``2 * width`` and ``4 * width``.
    num_classes : int
        Number of output logits; must be 2 (kept so specs can state it).
    batch_norm : bool
        Insert batch normalisation after each convolution (for training).
    """

    def __init__(self, width: int = 16, num_classes: int = 2, batch_norm: bool = False) -> None:
        super().__init__()
        w = width
        self.features = nn.Sequential(
            *_conv_block(3, w, 4, 4, batch_norm),
            *_conv_block(w, 2 * w, 3, 2, batch_norm),
            *_conv_block(2 * w, 2 * w, 3, 1, batch_norm),
            *_conv_block(2 * w, 4 * w, 3, 2, batch_norm),
            *_conv_block(4 * w, 4 * w, 3, 1, batch_norm),
        )
        if num_classes != 2:
            raise ValueError(f"LesionCNN answers lesion / no lesion: num_classes must be 2, got {num_classes}")
        self.head = nn.Conv2d(4 * w, 1, 1)

    def lesion_map(self, x: torch.Tensor) -> torch.Tensor:
        """Return per-cell lesion logits, shape ``(n, 1, h/16, w/16)``, for images ``(n, 3, h, w)``."""
        return self.head(self.features(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return class logits ``(no_lesion, lesion)``, shape ``(n, 2)``, for images ``(n, 3, h, w)``."""
        return map_to_logits(self.lesion_map(x))


def map_to_logits(cells: torch.Tensor) -> torch.Tensor:
    """Pool a lesion map ``(n, 1, h, w)`` to class logits ``(n, 2)``: ``(-s/2, s/2)``, ``s`` its maximum."""
    score = torch.amax(cells, dim=(2, 3)) * 0.5
    return torch.cat((-score, score), dim=1)


def fold_batch_norm(model: LesionCNN) -> LesionCNN:
    """Return an equivalent ``LesionCNN`` without batch norm (each folded into its conv).

    Parameters
    ----------
    model : LesionCNN
        A model built with ``batch_norm=True`` (its running statistics are used).

    Returns
    -------
    LesionCNN
        A new model in eval mode whose outputs match ``model.eval()`` to float rounding.
    """
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    norms = [m for m in model.features if isinstance(m, nn.BatchNorm2d)]
    folded = LesionCNN(convs[0].out_channels, 2, batch_norm=False)
    target_convs = [m for m in folded.features if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        for conv, norm, target in zip(convs, norms, target_convs, strict=True):
            mean, var, bias, target_bias = norm.running_mean, norm.running_var, conv.bias, target.bias
            if mean is None or var is None or bias is None or target_bias is None:
                raise ValueError("folding needs batch norms that track running statistics and biased convolutions")
            scale = norm.weight / torch.sqrt(var + norm.eps)
            target.weight.copy_(conv.weight * scale[:, None, None, None])
            target_bias.copy_((bias - mean) * scale + norm.bias)
        folded.head.load_state_dict(model.head.state_dict())
    return folded.eval()
