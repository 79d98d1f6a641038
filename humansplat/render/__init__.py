"""Differentiable Gaussian splat rendering: one function, two backends.

``rasterize`` has the semantics of ``gsplat.rasterization`` (gsplat 1.5.3, classic mode,
pinhole, unpacked): EWA projection with an ``eps2d`` px dilation, opacity-aware 3-sigma
boxes, near/far culling, alpha = min(0.999, opacity exp(-power)) skipped below 1/255,
front-to-back compositing by depth that stops before transmittance would reach 1e-4,
``colors + (1 - alpha) * background``, and SH colours from the camera centre when
``sh_degree`` is given. Backends: ``"torch"`` (ours, any device, see ``torch_backend``; on
the CPU its tile lists and its renders without gradients run compiled numba kernels,
``numba_composite``, checked against its pure-torch code) and
``"gsplat"`` (CUDA kernels, see ``gsplat_backend``); ``"auto"`` picks gsplat for float32
CUDA tensors when gsplat's CUDA extension loads, else torch.
"""

from __future__ import annotations

import math
import os
from numbers import Integral, Real

import torch
from torch import Tensor

from .ewa import (Projected, covariance_3d, eval_sh, project_gaussians, sh_basis,
                         sh_to_rgb)
from .torch_backend import TorchRasterConfig, rasterize_torch

__all__ = [
    "rasterize",
    "render_gaussians",
    "BACKENDS",
    "gsplat_available",
    "TorchRasterConfig",
    "tile_threads",
    "Projected",
    "project_gaussians",
    "covariance_3d",
    "sh_basis",
    "eval_sh",
    "sh_to_rgb",
]

BACKENDS = ("auto", "torch", "gsplat")


def tile_threads() -> int:
    """Threads a render without gradients composites its tiles on when the caller has no
    reason to choose (``TorchRasterConfig.threads``: the same bits on any count): 2 on a CPU
    with 2 cores or more (what the project's 2-core machines gain from), else 1."""
    return min(2, os.cpu_count() or 1)


def gsplat_available() -> bool:
    """True when CUDA is usable and gsplat's CUDA kernels load (the first call may compile
    them, which takes minutes once)."""
    from .gsplat_backend import gsplat_kernels_load
    return torch.cuda.is_available() and gsplat_kernels_load()


def _check_tensor(name: str, t, shape: tuple, dtype, device) -> None:
    """shape: ints must match, None matches anything."""
    if not isinstance(t, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.ndim != len(shape) or any(s is not None and s != d for s, d in zip(shape, t.shape)):
        want = "[" + ",".join("*" if s is None else str(s) for s in shape) + "]"
        raise ValueError(f"{name} must have shape {want}, got {list(t.shape)}")
    if t.dtype != dtype:
        raise ValueError(f"{name} must have dtype {dtype} like means, got {t.dtype}")
    if t.device != device:
        raise ValueError(f"{name} must be on {device} like means, got {t.device}")
    if t.numel() and not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} contains NaN or inf")


def _validate(means, quats, scales, opacities, colors, viewmats, Ks, width, height,
              backgrounds, sh_degree, near_plane, far_plane, eps2d, backend) -> int:
    """Raise ValueError naming the first bad argument; return the output channel count D."""
    if not isinstance(means, Tensor):
        raise ValueError(f"means must be a torch.Tensor, got {type(means).__name__}")
    if means.dtype not in (torch.float32, torch.float64):
        raise ValueError(f"means must be float32 or float64, got {means.dtype}")
    if means.ndim != 2 or means.shape[1] != 3:
        raise ValueError(f"means must have shape [N,3], got {list(means.shape)}")
    N, dt, dev = means.shape[0], means.dtype, means.device
    _check_tensor("means", means, (N, 3), dt, dev)
    _check_tensor("quats", quats, (N, 4), dt, dev)
    _check_tensor("scales", scales, (N, 3), dt, dev)
    _check_tensor("opacities", opacities, (N,), dt, dev)
    if N and bool((scales < 0).any()):
        raise ValueError("scales must be >= 0 (activated standard deviations, not log-scales)")
    if N and bool(((opacities < 0) | (opacities > 1)).any()):
        raise ValueError("opacities must be in [0, 1] (activated, not logits)")
    if N and bool((quats.norm(dim=-1) == 0).any()):
        raise ValueError("quats must be non-zero (w, x, y, z) quaternions")
    if sh_degree is None:
        if not isinstance(colors, Tensor) or colors.ndim != 2:
            shape = list(colors.shape) if isinstance(colors, Tensor) else type(colors).__name__
            raise ValueError(f"colors must have shape [N,D] (or [N,K,3] SH coefficients with "
                             f"sh_degree set), got {shape}")
        _check_tensor("colors", colors, (N, None), dt, dev)
        D = colors.shape[1]
        if D == 0:
            raise ValueError("colors must have at least one channel, got [N,0]")
    else:
        if isinstance(sh_degree, bool) or not isinstance(sh_degree, Integral) \
                or not 0 <= sh_degree <= 3:
            raise ValueError(f"sh_degree must be None or an int in 0..3, got {sh_degree!r}")
        _check_tensor("colors", colors, (N, None, 3), dt, dev)
        if colors.shape[1] < (sh_degree + 1) ** 2:
            raise ValueError(f"colors (SH) must have K >= {(sh_degree + 1) ** 2} coefficients "
                             f"for sh_degree={sh_degree}, got K={colors.shape[1]}")
        D = 3
    if not isinstance(viewmats, Tensor) or viewmats.ndim != 3 or viewmats.shape[0] == 0:
        shape = list(viewmats.shape) if isinstance(viewmats, Tensor) else type(viewmats).__name__
        raise ValueError(f"viewmats must have shape [C,4,4] with C >= 1, got {shape}")
    C = viewmats.shape[0]
    _check_tensor("viewmats", viewmats, (C, 4, 4), dt, dev)
    _check_tensor("Ks", Ks, (C, 3, 3), dt, dev)
    if bool((Ks[:, 0, 0] <= 0).any() | (Ks[:, 1, 1] <= 0).any()):
        raise ValueError("Ks must have positive focal lengths fx, fy")
    for name, v in (("width", width), ("height", height)):
        if isinstance(v, bool) or not isinstance(v, Integral) or v <= 0:
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    if backgrounds is not None:
        _check_tensor("backgrounds", backgrounds, (C, D), dt, dev)
    for name, v in (("near_plane", near_plane), ("far_plane", far_plane), ("eps2d", eps2d)):
        if isinstance(v, bool) or not isinstance(v, Real) or not math.isfinite(v):
            raise ValueError(f"{name} must be a finite number, got {v!r}")
    if not 0 < near_plane < far_plane:
        raise ValueError(f"need 0 < near_plane < far_plane, got {near_plane}, {far_plane}")
    if eps2d < 0:
        raise ValueError(f"eps2d must be >= 0, got {eps2d}")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    return D


def rasterize(means: Tensor, quats: Tensor, scales: Tensor, opacities: Tensor, colors: Tensor,
              viewmats: Tensor, Ks: Tensor, width: int, height: int, *,
              backgrounds: Tensor | None = None, sh_degree: int | None = None,
              near_plane: float = 0.01, far_plane: float = 1e10, eps2d: float = 0.3,
              backend: str = "auto", torch_config: TorchRasterConfig | None = None):
    """Render N Gaussians into C cameras.

    means [N,3], quats [N,4] (w,x,y,z, any norm), scales [N,3] (std devs), opacities [N] in
    [0,1], colors [N,D] (any D) or, with ``sh_degree`` in 0..3, SH coefficients [N,K,3];
    viewmats [C,4,4] world-to-camera (OpenCV), Ks [C,3,3]; backgrounds [C,D].

    Returns (colors [C,H,W,D], alphas [C,H,W,1], meta) with meta holding ``radii`` [C,N,2],
    ``means2d`` [C,N,2], ``depths`` [C,N], ``conics`` [C,N,3], ``n_visible`` [C], ``backend``
    and tile statistics. Differentiable w.r.t. means, quats, scales, opacities, colors and
    backgrounds. ``torch_config`` tunes the torch backend (speed/memory only)."""
    D = _validate(means, quats, scales, opacities, colors, viewmats, Ks, width, height,
                  backgrounds, sh_degree, near_plane, far_plane, eps2d, backend)
    use_gsplat = backend == "gsplat"
    if backend == "gsplat":
        if means.device.type != "cuda":
            raise ValueError(f"backend='gsplat' needs CUDA tensors, means is on {means.device}")
        if means.dtype != torch.float32:
            raise ValueError(f"backend='gsplat' needs float32 tensors, got {means.dtype}")
        if not gsplat_available():
            raise ValueError("backend='gsplat' needs gsplat==1.5.3 with its CUDA kernels "
                             "(a prebuilt wheel, or the CUDA toolkit to compile them)")
    elif backend == "auto":
        use_gsplat = (means.device.type == "cuda" and means.dtype == torch.float32
                      and gsplat_available())
    kwargs = dict(backgrounds=backgrounds, sh_degree=sh_degree, near_plane=near_plane,
                  far_plane=far_plane, eps2d=eps2d)
    if use_gsplat:
        from .gsplat_backend import rasterize_gsplat
        return rasterize_gsplat(means, quats, scales, opacities, colors, viewmats, Ks, width,
                                height, **kwargs)
    return rasterize_torch(means, quats, scales, opacities, colors, viewmats, Ks, width, height,
                           config=torch_config, **kwargs)


def render_gaussians(g, viewmats: Tensor, Ks: Tensor, width: int, height: int,
                     background=(1.0, 1.0, 1.0),
                     torch_config: TorchRasterConfig | None = None) -> tuple[Tensor, Tensor]:
    """A splat ``g`` (a ``humansplat.gaussians.Gaussians``: RGB or SH colours, the SH seen from
    each camera) rendered at C cameras (viewmats [C,4,4], Ks [C,3,3]) over ``background``
    (3 floats), on ``g``'s device in float32. Returns (rgb [C,H,W,3], alpha [C,H,W]),
    unclamped (SH colours can leave [0, 1]). ``torch_config`` as in :func:`rasterize`."""
    dev = g.means.device
    vm = torch.as_tensor(viewmats, dtype=torch.float32, device=dev).reshape(-1, 4, 4)
    K = torch.as_tensor(Ks, dtype=torch.float32, device=dev).reshape(-1, 3, 3)
    bg = torch.tensor([list(background)] * len(vm), dtype=torch.float32, device=dev)
    colors = g.colors if g.sh is None else g.sh
    img, alpha, _ = rasterize(g.means.float(), g.quats.float(), g.scales.float(),
                              g.opacities.float(), colors.float(), vm, K, int(width),
                              int(height), backgrounds=bg, sh_degree=g.sh_degree,
                              torch_config=torch_config)
    return img, alpha[..., 0]
