"""Image filtering on tensors: the one home of the Gaussian blur the stages share."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["gaussian_blur"]


def gaussian_blur(x: Tensor, sigma: float) -> Tensor:
    """``x`` [C,H,W] blurred by a normalised separable Gaussian of std ``sigma`` pixels
    (radius ceil(3 sigma), at least 1), zero outside the image: divide by the blur of a
    weight map for an average over a region only (normalised convolution)."""
    C, H, W = x.shape
    r = max(1, int(math.ceil(3 * float(sigma))))
    k = torch.exp(-0.5 * (torch.arange(-r, r + 1, dtype=torch.float32) / float(sigma)) ** 2)
    k = (k / k.sum()).to(x.dtype)
    y = F.conv2d(x[:, None], k.view(1, 1, 1, -1), padding=(0, r))
    return F.conv2d(y, k.view(1, 1, -1, 1), padding=(r, 0))[:, 0].reshape(C, H, W)
