"""The CUDA backend: our projection (``projection.py``, plain torch, differentiable on the GPU)
followed by gsplat 1.5.3's tile intersection and ``rasterize_to_pixels`` CUDA kernels.

Why not ``gsplat.rasterization``: sharing the projection keeps one definition of the 2D
Gaussians for both backends (the torch backend is tested against the brute-force reference,
and the parity test then checks the kernels against it on the same inputs). Our projection
reproduces gsplat's fused projection kernel (opacity-aware radii included), so the result is
``gsplat.rasterization(..., packed=False, rasterize_mode="classic")``; gradients reach the
Gaussians through gsplat's rasterization backward and autograd through our projection.
gsplat's kernels need float32 CUDA tensors.
"""

from __future__ import annotations

import functools
import math

import torch
from torch import Tensor

from .ewa import project_gaussians, render_meta, view_colors

__all__ = ["gsplat_importable", "gsplat_kernels_load", "rasterize_gsplat", "TILE_SIZE",
           "CHANNEL_CHUNK"]

TILE_SIZE = 16
CHANNEL_CHUNK = 32  # gsplat.rasterization renders wide features in chunks of this many


@functools.lru_cache(maxsize=None)
def gsplat_importable() -> bool:
    """gsplat's Python wrappers import (its CUDA extension is built or loaded on first use)."""
    try:
        from gsplat.cuda import _wrapper  # noqa: F401
    except Exception:  # ImportError, or a broken install raising anything at import
        return False
    return True


@functools.lru_cache(maxsize=None)
def gsplat_kernels_load() -> bool:
    """gsplat's CUDA extension loads (a prebuilt one, or JIT-compiled with the CUDA toolkit:
    minutes the first time, cached after). gsplat sets ``_C = None`` when it can do neither."""
    if not gsplat_importable():
        return False
    try:
        from gsplat.cuda._backend import _C
    except Exception:  # a failed compile or load
        return False
    return _C is not None


def rasterize_gsplat(means: Tensor, quats: Tensor, scales: Tensor, opacities: Tensor,
                     colors: Tensor, viewmats: Tensor, Ks: Tensor, width: int, height: int, *,
                     backgrounds: Tensor | None = None, sh_degree: int | None = None,
                     near_plane: float = 0.01, far_plane: float = 1e10, eps2d: float = 0.3):
    """Render with gsplat's CUDA kernels; inputs already validated (float32, CUDA).

    Returns (colors [C,H,W,D], alphas [C,H,W,1], meta)."""
    from gsplat.cuda._wrapper import isect_offset_encode, isect_tiles, rasterize_to_pixels

    C, N = viewmats.shape[0], means.shape[0]
    dev = means.device
    proj = project_gaussians(means, quats, scales, viewmats, Ks, width, height,
                             opacities=opacities, eps2d=eps2d, near_plane=near_plane,
                             far_plane=far_plane)
    cam_ids = torch.arange(C, device=dev).repeat_interleave(N)
    gauss_ids = torch.arange(N, device=dev).repeat(C)
    cols = view_colors(colors, sh_degree, means, viewmats, cam_ids, gauss_ids)
    D = cols.shape[-1]
    cols = cols.reshape(C, N, D)

    tx, ty = math.ceil(width / TILE_SIZE), math.ceil(height / TILE_SIZE)
    radii = proj.radii.contiguous()  # int32 [C,N,2], 0 where culled
    _, isect_ids, flatten_ids = isect_tiles(proj.means2d.detach(), radii,
                                            proj.depths.detach(), TILE_SIZE, tx, ty,
                                            packed=False)
    offsets = isect_offset_encode(isect_ids, C, tx, ty)  # [C,ty,tx]
    opac = opacities[None].expand(C, N)
    rgbs, alphas = [], None
    for c0 in range(0, D, CHANNEL_CHUNK):
        bg = None if backgrounds is None else backgrounds[:, c0:c0 + CHANNEL_CHUNK]
        rgb, alpha = rasterize_to_pixels(proj.means2d, proj.conics,
                                         cols[..., c0:c0 + CHANNEL_CHUNK], opac, width, height,
                                         TILE_SIZE, offsets, flatten_ids, backgrounds=bg,
                                         packed=False)
        rgbs.append(rgb)
        alphas = alpha if alphas is None else alphas
    rgb = torch.cat(rgbs, dim=-1) if len(rgbs) > 1 else rgbs[0]

    n_isects = int(isect_ids.numel())
    ends = torch.cat([offsets.reshape(-1)[1:].long(),
                      torch.tensor([n_isects], device=dev)])
    counts = ends - offsets.reshape(-1).long()
    busy = counts[counts > 0]
    meta = render_meta("gsplat", proj, width, height, TILE_SIZE, tx, ty, n_isects, busy)
    return rgb, alphas, meta
