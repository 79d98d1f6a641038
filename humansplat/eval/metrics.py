"""Image metrics of the paper's evaluation (Tab. 1): PSNR, SSIM and a perceptual distance.

- ``psnr``: :func:`humansplat.metrics.psnr` (its one home; re-exported here).
- ``ssim``: Wang et al. 2004 with an 11x11 Gaussian window (sigma 1.5, truncated at 3.5 sigma),
  K1 = 0.01, K2 = 0.03, population covariances, averaged over the pixels whose window lies inside
  the image and over channels: scikit-image's ``structural_similarity(gaussian_weights=True,
  use_sample_covariance=False, data_range=R, channel_axis=...)``.
- ``MetricSet``: psnr, ssim and "perceptual[<backend name>]" per image and averaged (the name
  says which network measured it: LPIPS-VGG numbers are comparable with the paper's, the
  EfficientNet fallback's are not).
All compute in float64 (metrics only, cheap) and return tensors of the input dtype.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from humansplat.metrics import PSNR_CAP_DB, _check_pair, psnr  # noqa: F401 (re-exported)
from humansplat.train.perceptual import PerceptualLoss, perceptual_key

SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5  # window radius int(3.5 * 1.5 + 0.5) = 5 -> 11 x 11, as scipy/skimage
SSIM_K1, SSIM_K2 = 0.01, 0.03


def gaussian_window_1d(
    sigma: float = SSIM_SIGMA, truncate: float = SSIM_TRUNCATE, dtype=torch.float64, device=None
) -> torch.Tensor:
    """Normalised 1-D Gaussian [2r+1], r = int(truncate * sigma + 0.5) (scipy's convention)."""
    r = int(truncate * sigma + 0.5)
    x = torch.arange(-r, r + 1, dtype=dtype, device=device)
    g = torch.exp(-0.5 * (x / sigma) ** 2)
    return g / g.sum()


def _filter_valid(z: torch.Tensor, g: torch.Tensor, dim: int) -> torch.Tensor:
    """'Valid' 1-D correlation of z with g along ``dim`` by shifted in-place accumulation (4x
    faster than a float64 depthwise conv or unfold+matmul on CPU, and exact)."""
    k = g.numel()
    n = z.shape[dim] - k + 1
    out = z.narrow(dim, 0, n) * g[0]
    for i in range(1, k):
        out.add_(z.narrow(dim, i, n), alpha=float(g[i]))
    return out


def ssim(pred: torch.Tensor, gt: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Mean SSIM per image, [B]. pred, gt: [B,C,H,W] with H, W >= 11."""
    _check_pair(pred, gt)
    B, C, H, W = pred.shape
    g = gaussian_window_1d(device=pred.device)
    k = g.numel()
    if H < k or W < k:
        raise ValueError(
            f"ssim needs images of at least {k}x{k} pixels (the Gaussian window), got {H}x{W}"
        )
    x, y = pred.double(), gt.double()
    # One separable 'valid' filtering of the five maps; skimage filters with padding and then
    # crops (k-1)/2 pixels, which leaves exactly these values.
    z = torch.cat([x, y, x * x, y * y, x * y], dim=1)
    z = _filter_valid(_filter_valid(z, g, dim=2), g, dim=3)  # [B,5C,H-k+1,W-k+1]
    ux, uy, uxx, uyy, uxy = z.split(C, dim=1)
    vx, vy, vxy = uxx - ux * ux, uyy - uy * uy, uxy - ux * uy
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return s.mean(dim=(1, 2, 3)).to(
        pred.dtype
    )  # equal pixel count per channel: mean of channel means


@dataclass
class MetricResult:
    """per_image: one dict per image; mean: the average of each key over the images that have it."""

    per_image: list[dict[str, float]] = field(default_factory=list)
    mean: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_rows(cls, rows: list[dict[str, float]]) -> "MetricResult":
        keys = list(dict.fromkeys(k for r in rows for k in r))  # union, first-seen order
        mean = {}
        for k in keys:
            vals = [r[k] for r in rows if k in r]  # e.g. psnr_masked only where a mask was given
            mean[k] = math.fsum(vals) / len(vals)
        return cls(per_image=rows, mean=mean)


class MetricSet:
    """PSNR, SSIM and a perceptual distance per image; ``update`` accumulates over batches.

    Predictions are clamped to [0, data_range] first (what a saved image would hold). With a
    mask, "psnr_masked" is added (PSNR over the masked pixels).
    """

    def __init__(self, perceptual: PerceptualLoss | None = None, data_range: float = 1.0):
        self.perceptual = perceptual
        self.data_range = data_range
        self._rows: list[dict[str, float]] = []

    @property
    def perceptual_key(self) -> str | None:
        return perceptual_key(self.perceptual) if self.perceptual is not None else None

    @torch.no_grad()
    def compute(
        self, pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor | None = None
    ) -> MetricResult:
        """Metrics of one batch. pred, gt: [B,3,H,W] in [0, data_range]; mask: [B,(1,)H,W]."""
        _check_pair(pred, gt)
        pred = pred.clamp(0.0, self.data_range)
        cols = {
            "psnr": psnr(pred, gt, data_range=self.data_range),
            "ssim": ssim(pred, gt, data_range=self.data_range),
        }
        if mask is not None:
            cols["psnr_masked"] = psnr(pred, gt, mask, data_range=self.data_range)
        if self.perceptual is not None:
            if self.data_range != 1.0:
                raise ValueError(
                    f"the perceptual metric takes images in [0,1]; data_range={self.data_range}"
                )
            cols[self.perceptual_key] = self.perceptual(pred, gt, reduction="none")
        rows = [{k: float(v[i]) for k, v in cols.items()} for i in range(pred.shape[0])]
        return MetricResult.from_rows(rows)

    __call__ = compute

    def update(
        self, pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor | None = None
    ) -> MetricResult:
        """Compute a batch's metrics, keep them for ``result`` and return them."""
        res = self.compute(pred, gt, mask)
        self._rows.extend(res.per_image)
        return res

    def result(self) -> MetricResult:
        """Every image seen by ``update`` since the last ``reset``, and their averages."""
        return MetricResult.from_rows(list(self._rows))

    def reset(self) -> None:
        self._rows.clear()
