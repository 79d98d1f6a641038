"""The torch backend's forward compositing, compiled for the CPU with numba.

Renders without gradients (turntables, the faithful step's colour correction and depth
search, evaluation) spend most of their time compositing tiles. This module does that one
step per pixel as gsplat's CUDA kernel does: walk the tile's front-to-back list, skip
alpha < 1/255, stop before the Gaussian that would bring the transmittance to <= 1e-4. The
pure-torch compositor (``torch_backend._composite_forward``) stays the reference: the tests
check this one against it, and it is used whenever numba is missing, a gradient is needed or
``TorchRasterConfig.compositor == "torch"``.

Differences from the torch compositor are rounding only: the power is evaluated directly
(the torch path expands it around the tile centre, ~1e-5 relative in alpha) in float64, so a
pixel whose alpha or transmittance sits on a threshold may take one Gaussian more or less.
The kernel releases the GIL; tiles split over threads give the same bits as one thread.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from .ewa import ALPHA_THRESHOLD, MAX_ALPHA, TRANSMITTANCE_EPS

__all__ = ["numba_available", "composite_forward_numba", "bin_tiles_numba"]

try:  # an optional speed-up: everything works (slower) without it
    import numba
except ImportError:  # pragma: no cover - numba is a dependency; this is the fallback
    numba = None

# log-alpha below this: alpha < 1/255 (skipped), decided without calling exp
_LOG_THRESHOLD = math.log(ALPHA_THRESHOLD)


def numba_available() -> bool:
    """Whether the compiled compositor can run here (numba importable)."""
    return numba is not None


def _composite_tiles_py(params, colors, isect_vis, tile_start, tile_count, tile_x0, tile_y0,
                        tiles, tile_size, out):
    """Composite the busy tiles ``tiles`` [a] into ``out`` [A,D1,P] (numba compiles this).

    params [V,6] (mean x, mean y, conic a, b, c, log opacity) and colours [V,D1] per visible
    Gaussian; isect_vis [I] the tile lists; tile_start/tile_count [A]; tile_x0/tile_y0 [A]
    the tiles' first pixel."""
    d1 = colors.shape[1]
    acc = np.zeros(d1, dtype=np.float64)
    for k in range(tiles.shape[0]):
        t = tiles[k]
        s = tile_start[t]
        e = s + tile_count[t]
        for p in range(tile_size * tile_size):
            px = tile_x0[t] + (p % tile_size) + 0.5
            py = tile_y0[t] + (p // tile_size) + 0.5
            T = 1.0
            for c in range(d1):
                acc[c] = 0.0
            for j in range(s, e):
                v = isect_vis[j]
                dx = px - params[v, 0]
                dy = py - params[v, 1]
                log_alpha = params[v, 5] - (0.5 * (params[v, 2] * dx * dx
                                                   + params[v, 4] * dy * dy)
                                            + params[v, 3] * dx * dy)
                if log_alpha < _LOG_THRESHOLD:
                    continue
                alpha = min(MAX_ALPHA, math.exp(log_alpha))
                if alpha < ALPHA_THRESHOLD:
                    continue
                t_next = T * (1.0 - alpha)
                if t_next <= TRANSMITTANCE_EPS:
                    break
                w = alpha * T
                for c in range(d1):
                    acc[c] += w * colors[v, c]
                T = t_next
            for c in range(d1):
                out[t, c, p] = acc[c]


def _compile(fn):
    """numba's compiled ``fn``, cached on disk where numba finds a writable place (a
    read-only install with no writable cache folder compiles per process, ~1 s)."""
    if numba is None:
        return None
    try:
        return numba.njit(nogil=True, cache=True)(fn)
    except RuntimeError:  # "cannot cache function ...: no locator available"
        return numba.njit(nogil=True)(fn)


_composite_tiles = _compile(_composite_tiles_py)


def _bin_tiles_py(order, cam, x0, x1, y0, y1, n_cams, tiles_x, tiles_y):
    """Intersections grouped by (camera, tile) with each tile's in ``order`` (numba compiles
    this). order [V]: visible ids front to back; cam/x0/x1/y0/y1 [V]: camera and tile
    range [x0, x1) x [y0, y1) of each visible Gaussian. Returns isect_vis [I] and the count
    of every tile [n_cams * tiles_y * tiles_x]: a counting sort, stable in ``order``."""
    per_cam = tiles_x * tiles_y
    counts = np.zeros(n_cams * per_cam, dtype=np.int64)
    for i in range(order.shape[0]):
        base = cam[i] * per_cam
        for y in range(y0[i], y1[i]):
            for x in range(x0[i], x1[i]):
                counts[base + y * tiles_x + x] += 1
    fill = np.empty_like(counts)
    total = 0
    for t in range(counts.shape[0]):
        fill[t] = total
        total += counts[t]
    isect = np.empty(total, dtype=np.int64)
    for k in range(order.shape[0]):
        i = order[k]
        base = cam[i] * per_cam
        for y in range(y0[i], y1[i]):
            for x in range(x0[i], x1[i]):
                t = base + y * tiles_x + x
                isect[fill[t]] = i
                fill[t] += 1
    return isect, counts


_bin_tiles = _compile(_bin_tiles_py)


def bin_tiles_numba(order: Tensor, cam: Tensor, x0: Tensor, x1: Tensor, y0: Tensor,
                    y1: Tensor, n_cams: int, tiles_x: int, tiles_y: int
                    ) -> tuple[Tensor, Tensor]:
    """:func:`_bin_tiles_py` on CPU tensors: (isect_vis [I], per-tile counts)."""
    if numba is None:
        raise RuntimeError("bin_tiles_numba needs numba (pip install numba)")
    np_ = lambda t: t.cpu().contiguous().numpy()  # noqa: E731
    isect, counts = _bin_tiles(np_(order), np_(cam), np_(x0), np_(x1), np_(y0), np_(y1),
                               n_cams, tiles_x, tiles_y)
    return torch.from_numpy(isect), torch.from_numpy(counts)


def composite_forward_numba(params: Tensor, colors: Tensor, isect_vis: Tensor,
                            tile_start: Tensor, tile_count: Tensor, tile_xy: Tensor,
                            tile_size: int, threads: int = 1) -> Tensor:
    """Tiles' colour channels [A,D1,P] (P = tile_size^2, row-major) from per-visible params
    [V,6] and colours [V,D1] (CPU tensors), the tile lists ``isect_vis`` [I] with
    ``tile_start``/``tile_count`` [A], and the tiles' column/row ``tile_xy`` [A,2].
    ``threads`` > 1 splits the tiles (equal intersections per thread, longest lists dealt
    first); the result is the same bits."""
    if numba is None:
        raise RuntimeError("composite_forward_numba needs numba (pip install numba)")
    A, D1 = tile_start.numel(), colors.shape[1]
    out = torch.zeros(A, D1, tile_size * tile_size, dtype=params.dtype)
    if A == 0:
        return out
    args = (params.detach().cpu().contiguous().numpy(),
            colors.detach().cpu().contiguous().numpy(),
            isect_vis.cpu().contiguous().numpy(), tile_start.cpu().contiguous().numpy(),
            tile_count.cpu().contiguous().numpy(),
            (tile_xy[:, 0] * tile_size).cpu().contiguous().numpy(),
            (tile_xy[:, 1] * tile_size).cpu().contiguous().numpy())
    out_np = out.numpy()
    if threads <= 1 or A < 2:
        _composite_tiles(*args, np.arange(A, dtype=np.int64), tile_size, out_np)
        return out
    from concurrent.futures import ThreadPoolExecutor

    order = np.argsort(-tile_count.cpu().numpy(), kind="stable")
    groups = [np.sort(order[i::threads]) for i in range(min(threads, A))]
    with ThreadPoolExecutor(max_workers=len(groups), thread_name_prefix="composite") as pool:
        list(pool.map(lambda g: _composite_tiles(*args, g, tile_size, out_np), groups))
    return out
