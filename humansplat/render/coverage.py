"""Coverage: the alpha of many small Gaussians, without sorting or compositing colour.

A pixel's alpha after front-to-back compositing is ``1 - prod_i (1 - alpha_i)`` whatever the
order, so an alpha-only image needs no depth sort: each Gaussian adds ``log(1 - alpha_i)``
to the pixels of its box, and autograd differentiates the sum. Same 2D Gaussians as
:func:`humansplat.render.rasterize` (``ewa.project_gaussians``, pixel centres at +0.5,
alpha = min(0.999, opacity exp(-power)), skipped below 1/255). The one difference is the
rasterizer's early stop: a pixel stops before the Gaussian that would bring its
transmittance to 1e-4 or less, so where it stops its alpha is already >= 0.9 (alpha is at
most 0.999), and here it is 1 - the full product, at least as large.

Built for the body fit's silhouette (1,500 splats of a few pixels each, 60 optimiser steps):
work is one fixed-size patch per visible Gaussian, the size of the largest box, so a few
large Gaussians make it slow. For colour, or splats of very different sizes, use
``rasterize``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .ewa import ALPHA_THRESHOLD, MAX_ALPHA, project_gaussians

__all__ = ["coverage"]

# pixel x Gaussian evaluations per batch (bounds the temporaries)
_CHUNK_ELEMS = 1 << 21


def coverage(means: Tensor, quats: Tensor, scales: Tensor, opacities: Tensor,
             viewmats: Tensor, Ks: Tensor, width: int, height: int, *, eps2d: float = 0.3,
             near_plane: float = 0.01, far_plane: float = 1e10) -> Tensor:
    """Alpha [C,H,W,1] of N Gaussians in C cameras (inputs as ``rasterize``: means [N,3],
    quats [N,4] (w,x,y,z), scales [N,3], opacities [N], viewmats [C,4,4], Ks [C,3,3]).
    Differentiable w.r.t. means, quats, scales and opacities."""
    C, N = viewmats.shape[0], means.shape[0]
    dt, dev = means.dtype, means.device
    proj = project_gaussians(means, quats, scales, viewmats, Ks, width, height,
                             opacities=opacities, eps2d=eps2d, near_plane=near_plane,
                             far_plane=far_plane)
    vis = proj.visible.reshape(-1).nonzero().squeeze(1)  # [V] into C*N
    log_t = means.new_zeros(C * height * width)
    if vis.numel():
        R = int(proj.radii.reshape(-1, 2)[vis].max())
        off = torch.arange(-R, R + 1, device=dev)
        oy, ox = torch.meshgrid(off, off, indexing="ij")
        ox, oy = ox.reshape(-1), oy.reshape(-1)  # [Q] patch offsets
        cam = vis // N
        m2d = proj.means2d.reshape(-1, 2)[vis]  # [V,2]
        con = proj.conics.reshape(-1, 3)[vis]  # [V,3]
        op = opacities[vis % N]
        # the pixel holding each mean: its patch is centred there
        base = torch.floor(m2d.detach()).long()  # [V,2]
        step = max(1, _CHUNK_ELEMS // ox.numel())
        for s in range(0, vis.numel(), step):
            sl = slice(s, s + step)
            px = base[sl, 0:1] + ox  # [v,Q]
            py = base[sl, 1:2] + oy
            dx = px.to(dt) + 0.5 - m2d[sl, 0:1]
            dy = py.to(dt) + 0.5 - m2d[sl, 1:2]
            a, b, c = con[sl].unbind(-1)
            power = 0.5 * (a[:, None] * dx * dx + c[:, None] * dy * dy) + b[:, None] * dx * dy
            alpha = (op[sl, None] * torch.exp(-power.clamp_min(0))).clamp(max=MAX_ALPHA)
            keep = (alpha >= ALPHA_THRESHOLD) & (px >= 0) & (px < width) & (py >= 0) & \
                (py < height)
            # dense [v,Q] with zeros where skipped: cheaper than compacting with a mask
            pix = torch.where(keep, (cam[sl, None] * height + py) * width + px, 0)
            log_t = log_t.index_add(0, pix.reshape(-1),
                                    torch.where(keep, torch.log1p(-alpha), 0.0).reshape(-1))
    return (1.0 - torch.exp(log_t)).reshape(C, height, width, 1)
