"""Edge-aware upsampling of a coarse depth map to the photo's resolution.

The reconstruction model predicts one depth per cell of its Gaussian grid (64 x 64 for the
bundled ``tiny``); the photo's crop is up to 768 px. Bilinear upsampling would smear a person's
depth into the background across every silhouette and blend an arm into the torso behind
it. Joint bilateral upsampling (Kopf et al., SIGGRAPH 2007) weights each coarse sample by

    confidence (the model's opacity there) x spatial closeness x similarity of the guide

where the guide is the photo (and the person mask) at full resolution, so an output pixel
takes its depth from coarse cells that look like it: edges of the photo stay edges of the
depth. Cells with no confidence at all (the model left them transparent: hair, a coat
beyond the body) are filled first by push-pull (a confidence-weighted pyramid), so every
pixel of the mask gets the depth of the nearest confident surface that looks like it.
Where the guide shows no edge at an occlusion, the average is a ramp between the two
surfaces; with ``split`` a pixel whose cells disagree that much takes its heaviest cell's
depth instead (real-photos item 32).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["push_pull_fill", "joint_bilateral_upsample"]


def push_pull_fill(values: Tensor, weights: Tensor, eps: float = 1e-6) -> Tensor:
    """Fill a map where its weights are low from coarser, confidence-weighted averages.

    values [C,h,w], weights [h,w] >= 0 (1 = trusted). Returns [C,h,w]: equal to ``values``
    where the weight is >= 1, blended towards the pyramid estimate where it is lower, and
    the pyramid estimate where it is 0. All-zero weights return ``values`` unchanged."""
    if float(weights.sum()) <= eps:
        return values.clone()
    num = [values * weights[None]]
    den = [weights[None].clone()]
    while min(num[-1].shape[-2:]) > 1:
        n, d = num[-1][None], den[-1][None]
        # sums over 2x2 blocks (ceil mode keeps odd edges), clamped: a block of 4 trusted
        # cells is as trusted as one
        num.append(F.avg_pool2d(n, 2, ceil_mode=True)[0] * 4)
        den.append(F.avg_pool2d(d, 2, ceil_mode=True)[0] * 4)
    est = num[-1] / den[-1].clamp(min=eps)
    for lvl in range(len(num) - 2, -1, -1):
        n, d = num[lvl], den[lvl]
        up = F.interpolate(est[None], size=n.shape[-2:], mode="bilinear",
                           align_corners=False)[0]
        missing = (1 - d).clamp(min=0)
        est = (n + missing * up) / (d + missing).clamp(min=eps)
    return est


def joint_bilateral_upsample(depth: Tensor, confidence: Tensor, guide: Tensor, *,
                             radius: int = 2, sigma_space: float = 1.0,
                             sigma_range: float = 0.12, split: float | None = None,
                             split_where: Tensor | None = None) -> Tensor:
    """Upsample ``depth`` [h,w] to the guide's size, edge-aware.

    confidence [h,w] in [0,1]: how much each coarse cell is trusted (0 = fill it);
    guide [C,H,W]: the full-resolution image whose edges the depth should follow (values
    of order 1, e.g. RGB in [0,1] and a mask); radius: coarse cells each side considered;
    sigma_space: in coarse cells; sigma_range: in guide units; split: where the weighted
    spread (std) of the depths a pixel averages exceeds this (metres), the pixel takes the
    depth of its single heaviest cell instead of the average: the mean of two surfaces at an
    occlusion the guide does not separate (the coarse cells straddle it) is a ramp of pixels
    floating between them, a streak seen from the side. None: the average everywhere.
    split_where [H,W] bool: the pixels that may split (None: all). Returns [H,W]."""
    if depth.ndim != 2 or confidence.shape != depth.shape:
        raise ValueError(f"depth and confidence must be [h,w] alike, got "
                         f"{tuple(depth.shape)} and {tuple(confidence.shape)}")
    if guide.ndim != 3:
        raise ValueError(f"guide must be [C,H,W], got {tuple(guide.shape)}")
    h, w = depth.shape
    C, H, W = guide.shape
    conf = confidence.float().clamp(0, 1)
    filled = push_pull_fill(depth[None].float(), conf)[0]
    # a small floor: filled cells still vote, far less than confident ones
    conf = conf.clamp(min=1e-4)
    guide_lo = F.interpolate(guide[None].float(), size=(h, w), mode="area")[0]  # [C,h,w]
    # each output pixel's position in coarse-cell coordinates, and its nearest cell
    ys = (torch.arange(H, dtype=torch.float32) + 0.5) * h / H - 0.5
    xs = (torch.arange(W, dtype=torch.float32) + 0.5) * w / W - 0.5
    cy, cx = ys.round().long().clamp(0, h - 1), xs.round().long().clamp(0, w - 1)
    num = torch.zeros(H, W)
    den = torch.zeros(H, W)
    if split is not None:  # the spread (sum of w d^2) and the heaviest cell so far
        sq, best_w, best_d = torch.zeros(H, W), torch.zeros(H, W), torch.zeros(H, W)
    g = guide.float()
    inv_s = 1.0 / (2 * sigma_space ** 2)
    inv_r = 1.0 / (2 * sigma_range ** 2)
    for dy in range(-radius, radius + 1):
        ny = (cy + dy).clamp(0, h - 1)
        wy = torch.exp(-((ny.float() - ys) ** 2) * inv_s)  # [H]
        for dx in range(-radius, radius + 1):
            nx = (cx + dx).clamp(0, w - 1)
            wx = torch.exp(-((nx.float() - xs) ** 2) * inv_s)  # [W]
            gl = guide_lo[:, ny][:, :, nx]  # [C,H,W] the neighbour cell's guide
            diff = ((g - gl) ** 2).sum(0)
            wgt = wy[:, None] * wx[None, :] * torch.exp(-diff * inv_r) * conf[ny][:, nx]
            d = filled[ny][:, nx]
            num += wgt * d
            den += wgt
            if split is not None:
                sq += wgt * d * d
                heavier = wgt > best_w
                best_w = torch.where(heavier, wgt, best_w)
                best_d = torch.where(heavier, d, best_d)
    # where no neighbour looked alike at all, the smooth fill is the honest answer; blended
    # in continuously (a hard switch would turn float noise upstream into jumps)
    smooth = F.interpolate(filled[None, None], size=(H, W), mode="bilinear",
                           align_corners=False)[0, 0]
    prior = 1e-6
    out = (num + prior * smooth) / (den + prior)
    if split is not None:
        mean = num / den.clamp(min=1e-12)
        spread = (sq / den.clamp(min=1e-12) - mean * mean).clamp(min=0).sqrt()
        split_px = (spread > float(split)) & (den > 1e-12)
        if split_where is not None:
            split_px &= split_where
        out = torch.where(split_px, best_d, out)
    return out
