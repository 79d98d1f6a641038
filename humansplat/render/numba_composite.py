"""The torch backend's tile binning and compositing, compiled for the CPU with numba.

Renders spend most of their time compositing tiles. Here each pixel is composited as
gsplat's CUDA kernel does it: walk the tile's front-to-back list, skip alpha < 1/255, stop
before the Gaussian that would bring the transmittance to <= 1e-4; the backward walks each
pixel again the same way (:class:`CompositeNumba`). The tile lists come from a counting
sort (:func:`bin_tiles_numba`), the same lists as the torch sort. The pure-torch code
(``torch_backend``) stays the reference: the tests check these kernels against it and
against a brute-force renderer, and it runs whenever numba is missing or
``TorchRasterConfig.compositor == "torch"``.

Differences from the torch compositor are rounding only: the power is evaluated directly
(the torch path expands it around the tile centre, ~1e-5 relative in alpha) in float64, so a
pixel whose alpha or transmittance sits on a threshold may take one Gaussian more or less.
The kernels release the GIL: tiles split over threads give the same image as one thread
(gradients: the same up to the order the threads' sums are added).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from .ewa import ALPHA_THRESHOLD, MAX_ALPHA, TRANSMITTANCE_EPS

__all__ = ["numba_available", "composite_forward_numba", "composite_backward_numba",
           "CompositeNumba", "bin_tiles_numba"]

try:  # an optional speed-up: everything works (slower) without it
    import numba
except ImportError:  # pragma: no cover - numba is a dependency; this is the fallback
    numba = None

# log-alpha below this: alpha < 1/255 (skipped), decided without calling exp
_LOG_THRESHOLD = math.log(ALPHA_THRESHOLD)


def numba_available() -> bool:
    """Whether the compiled compositor can run here (numba importable)."""
    return numba is not None


def _alpha_py(params, v, px, py):
    """(dx, dy, raw, alpha) of visible Gaussian ``v`` at the pixel centre (px, py): the
    offset from its mean, opacity x exp(-power) and alpha = min(0.999, that), 0 when it is
    skipped (below 1/255). The one place both kernels evaluate a Gaussian."""
    dx = px - params[v, 0]
    dy = py - params[v, 1]
    log_alpha = params[v, 5] - (0.5 * (params[v, 2] * dx * dx + params[v, 4] * dy * dy)
                                + params[v, 3] * dx * dy)
    if log_alpha < _LOG_THRESHOLD:  # decided without calling exp
        return dx, dy, 0.0, 0.0
    raw = math.exp(log_alpha)
    alpha = min(MAX_ALPHA, raw)
    return dx, dy, raw, (alpha if alpha >= ALPHA_THRESHOLD else 0.0)


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
                _, _, _, alpha = _alpha(params, v, px, py)
                if alpha == 0.0:
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


def _composite_backward_tiles_py(params, colors, isect_vis, tile_start, tile_count, tile_x0,
                                 tile_y0, tiles, tile_size, out, g_out, g_params, g_colors):
    """Add the gradients of the busy tiles ``tiles`` to g_params [V,6] and g_colors [V,D1]
    (numba compiles this), given the forward's ``out`` and its gradient ``g_out`` [A,D1,P].

    Each pixel is walked front to back again with the forward's arithmetic (so it skips and
    stops at the same Gaussians). With S_i the light behind Gaussian i dotted with the
    output gradient, S_i = out.g minus the running prefix of w_j c_j.g, and
    dL/d alpha_i = T_i c_i.g - S_i / (1 - alpha_i); a clamped alpha (0.999) passes none."""
    d1 = colors.shape[1]
    for k in range(tiles.shape[0]):
        t = tiles[k]
        s = tile_start[t]
        e = s + tile_count[t]
        for p in range(tile_size * tile_size):
            px = tile_x0[t] + (p % tile_size) + 0.5
            py = tile_y0[t] + (p // tile_size) + 0.5
            total = 0.0
            for c in range(d1):
                total += out[t, c, p] * g_out[t, c, p]
            T = 1.0
            prefix = 0.0
            for j in range(s, e):
                v = isect_vis[j]
                dx, dy, raw, alpha = _alpha(params, v, px, py)
                if alpha == 0.0:
                    continue
                t_next = T * (1.0 - alpha)
                if t_next <= TRANSMITTANCE_EPS:
                    break
                w = alpha * T
                cg = 0.0
                for c in range(d1):
                    g = g_out[t, c, p]
                    g_colors[v, c] += w * g
                    cg += colors[v, c] * g
                prefix += w * cg
                if raw <= MAX_ALPHA:
                    d_log = (T * cg - (total - prefix) / (1.0 - alpha)) * alpha
                    g_params[v, 0] += d_log * (params[v, 2] * dx + params[v, 3] * dy)
                    g_params[v, 1] += d_log * (params[v, 3] * dx + params[v, 4] * dy)
                    g_params[v, 2] -= d_log * 0.5 * dx * dx
                    g_params[v, 3] -= d_log * dx * dy
                    g_params[v, 4] -= d_log * 0.5 * dy * dy
                    g_params[v, 5] += d_log
                T = t_next


def _compile(fn, **options):
    """numba's compiled ``fn``, cached on disk where numba finds a writable place (a
    read-only install with no writable cache folder compiles per process, ~1 s)."""
    if numba is None:
        return None
    try:
        return numba.njit(nogil=True, cache=True, **options)(fn)
    except RuntimeError:  # "cannot cache function ...: no locator available"
        return numba.njit(nogil=True, **options)(fn)


# the kernels call it by this name; compiled into them (a Python fallback would be slow)
_alpha = _compile(_alpha_py, inline="always")
_composite_tiles = _compile(_composite_tiles_py)
_composite_backward_tiles = _compile(_composite_backward_tiles_py)


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


def _np(t: Tensor) -> np.ndarray:
    """A CPU tensor's data as a contiguous numpy array (shared, not copied, when it can)."""
    return t.detach().cpu().contiguous().numpy()


def bin_tiles_numba(order: Tensor, cam: Tensor, x0: Tensor, x1: Tensor, y0: Tensor,
                    y1: Tensor, n_cams: int, tiles_x: int, tiles_y: int
                    ) -> tuple[Tensor, Tensor]:
    """:func:`_bin_tiles_py` on CPU tensors: (isect_vis [I], per-tile counts)."""
    if numba is None:
        raise RuntimeError("bin_tiles_numba needs numba (pip install numba)")
    isect, counts = _bin_tiles(_np(order), _np(cam), _np(x0), _np(x1), _np(y0), _np(y1),
                               n_cams, tiles_x, tiles_y)
    return torch.from_numpy(isect), torch.from_numpy(counts)


def _tile_groups(tile_count: Tensor, threads: int) -> list[np.ndarray]:
    """The busy tiles split into ``threads`` shares of about equal intersections (longest
    lists dealt round first), each in increasing order; one share for one thread."""
    A = tile_count.numel()
    if threads <= 1 or A < 2:
        return [np.arange(A, dtype=np.int64)]
    order = np.argsort(-tile_count.cpu().numpy(), kind="stable")
    return [np.sort(order[i::threads]) for i in range(min(threads, A))]


def _on_threads(fn, groups: list[np.ndarray]) -> list:
    """``fn(group)`` for every group, on a thread each when there are several."""
    if len(groups) == 1:
        return [fn(groups[0])]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=len(groups), thread_name_prefix="composite") as pool:
        return list(pool.map(fn, groups))


def _kernel_args(params, colors, isect_vis, tile_start, tile_count, tile_xy, tile_size):
    """The compositing kernels' leading arguments as numpy arrays."""
    return (_np(params), _np(colors), _np(isect_vis), _np(tile_start), _np(tile_count),
            _np(tile_xy[:, 0] * tile_size), _np(tile_xy[:, 1] * tile_size))


def composite_forward_numba(params: Tensor, colors: Tensor, isect_vis: Tensor,
                            tile_start: Tensor, tile_count: Tensor, tile_xy: Tensor,
                            tile_size: int, threads: int = 1) -> Tensor:
    """Tiles' colour channels [A,D1,P] (P = tile_size^2, row-major) from per-visible params
    [V,6] and colours [V,D1] (CPU tensors), the tile lists ``isect_vis`` [I] with
    ``tile_start``/``tile_count`` [A], and the tiles' column/row ``tile_xy`` [A,2].
    ``threads`` > 1 splits the tiles (:func:`_tile_groups`); the result is the same bits.
    No gradient: :class:`CompositeNumba` is the differentiable one."""
    if numba is None:
        raise RuntimeError("composite_forward_numba needs numba (pip install numba)")
    A, D1 = tile_start.numel(), colors.shape[1]
    out = torch.zeros(A, D1, tile_size * tile_size, dtype=params.dtype)
    if A == 0:
        return out
    args = _kernel_args(params, colors, isect_vis, tile_start, tile_count, tile_xy, tile_size)
    out_np = out.numpy()
    _on_threads(lambda g: _composite_tiles(*args, g, tile_size, out_np),
                _tile_groups(tile_count, threads))
    return out


def composite_backward_numba(params: Tensor, colors: Tensor, isect_vis: Tensor,
                             tile_start: Tensor, tile_count: Tensor, tile_xy: Tensor,
                             tile_size: int, out: Tensor, g_out: Tensor, threads: int = 1
                             ) -> tuple[Tensor, Tensor]:
    """Gradients (params [V,6], colours [V,D1]) of :func:`composite_forward_numba` given its
    ``out`` and ``g_out`` [A,D1,P]. Summed in float64; with ``threads`` > 1 each thread sums
    its share of the tiles and the shares are added in a fixed order (deterministic; the
    last bits depend on the thread count)."""
    if numba is None:
        raise RuntimeError("composite_backward_numba needs numba (pip install numba)")
    V, D1 = params.shape[0], colors.shape[1]
    args = _kernel_args(params, colors, isect_vis, tile_start, tile_count, tile_xy, tile_size)
    out_np = out.detach().cpu().contiguous().numpy()
    g_np = g_out.detach().cpu().contiguous().numpy()

    def run(group: np.ndarray):
        gp = np.zeros((V, 6), dtype=np.float64)
        gc = np.zeros((V, D1), dtype=np.float64)
        if group.size:
            _composite_backward_tiles(*args, group, tile_size, out_np, g_np, gp, gc)
        return gp, gc

    parts = _on_threads(run, _tile_groups(tile_count, threads))
    gp, gc = parts[0]
    for p_, c_ in parts[1:]:
        gp += p_
        gc += c_
    return (torch.from_numpy(gp).to(params.dtype), torch.from_numpy(gc).to(colors.dtype))


class CompositeNumba(torch.autograd.Function):
    """Tiles' colour+alpha [A,D1,P] from per-visible params [V,6] and colours [V,D1], with
    the compiled forward and backward (CPU tensors)."""

    @staticmethod
    def forward(ctx, params: Tensor, colors: Tensor, isect_vis: Tensor, tile_start: Tensor,
                tile_count: Tensor, tile_xy: Tensor, tile_size: int, threads: int):
        out = composite_forward_numba(params, colors, isect_vis, tile_start, tile_count,
                                      tile_xy, tile_size, threads)
        ctx.save_for_backward(params, colors, isect_vis, tile_start, tile_count, tile_xy, out)
        ctx.tile_size, ctx.threads = tile_size, threads
        return out

    @staticmethod
    def backward(ctx, g_out: Tensor):
        params, colors, isect_vis, tile_start, tile_count, tile_xy, out = ctx.saved_tensors
        g_params, g_colors = composite_backward_numba(
            params, colors, isect_vis, tile_start, tile_count, tile_xy, ctx.tile_size, out,
            g_out, ctx.threads)
        need_p, need_c = ctx.needs_input_grad[:2]
        return ((g_params if need_p else None), (g_colors if need_c else None),
                None, None, None, None, None, None)
