"""Image and mask metrics, one home each: PSNR and mask IoU.

- ``psnr``: 10 log10(R^2 / MSE), optionally over a mask. Identical images would give +inf; the
  MSE is floored at R^2 * 1e-10 so the value caps at ``PSNR_CAP_DB`` = 100 dB and averages stay
  finite (scikit-image reports inf there; every other value agrees with it). Computed in
  float64, returned in the input dtype.
- ``mask_iou``: intersection over union of two coverage maps, each thresholded at one
  threshold (a pixel is covered when its value is above 0.5).

SSIM and the perceptual distance of the paper's table live in :mod:`humansplat.eval.metrics`
(the perceptual network is a training component).
"""

from __future__ import annotations

import torch

__all__ = ["PSNR_CAP_DB", "MASK_THRESHOLD", "psnr", "mask_iou"]

PSNR_CAP_DB = 100.0
MASK_THRESHOLD = 0.5  # a coverage/alpha/mask value above this counts as covered


def _check_pair(pred: torch.Tensor, gt: torch.Tensor) -> None:
    for t, n in ((pred, "pred"), (gt, "gt")):
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"{n} must be a torch.Tensor, got {type(t).__name__}")
        if t.ndim != 4:
            raise ValueError(f"{n} must have shape [B,C,H,W], got {tuple(t.shape)}")
        if not t.is_floating_point():
            raise ValueError(
                f"{n} must be a float tensor (values in [0, data_range]), got {t.dtype}"
            )
    if pred.shape != gt.shape:
        raise ValueError(
            f"pred {tuple(pred.shape)} and gt {tuple(gt.shape)} must have the same shape"
        )


def psnr(
    pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor | None = None, data_range: float = 1.0
) -> torch.Tensor:
    """PSNR in dB per image, [B]. pred, gt: [B,C,H,W]; mask: [B,1,H,W] or [B,H,W] weights in
    [0,1] (the MSE is taken over the masked pixels, all channels). Capped at PSNR_CAP_DB."""
    _check_pair(pred, gt)
    err = (pred.double() - gt.double()) ** 2
    if mask is None:
        mse = err.mean(dim=(1, 2, 3))
    else:
        if mask.ndim == 3:
            mask = mask.unsqueeze(1)
        B, C, H, W = pred.shape
        if mask.shape != (B, 1, H, W):
            raise ValueError(
                f"mask must have shape [B,1,H,W] or [B,H,W] = {(B, H, W)}, got {tuple(mask.shape)}"
            )
        m = mask.double()
        area = m.sum(dim=(1, 2, 3))
        if bool((area <= 0).any()):
            raise ValueError(
                f"mask is empty for image(s) {(area <= 0).nonzero().flatten().tolist()}"
            )
        mse = (err * m).sum(dim=(1, 2, 3)) / (C * area)
    mse = mse.clamp_min(data_range**2 * 10 ** (-PSNR_CAP_DB / 10))
    return (10.0 * torch.log10(data_range**2 / mse)).to(pred.dtype)


def mask_iou(a, b, threshold: float = MASK_THRESHOLD) -> float:
    """IoU of two coverage maps of the same shape (tensors or arrays; any shape), each
    covered where its value is above ``threshold``; 1.0 when both are empty."""
    x = torch.as_tensor(a) > threshold
    y = torch.as_tensor(b) > threshold
    if x.shape != y.shape:
        raise ValueError(f"mask_iou: shapes differ, {tuple(x.shape)} vs {tuple(y.shape)}")
    union = int((x | y).sum())
    return float(int((x & y).sum()) / union) if union else 1.0
