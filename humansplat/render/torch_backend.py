"""Our differentiable Gaussian rasterizer in plain PyTorch (any device; built for the CPU).

On the CPU its tile binning and compositing run as compiled numba kernels by default
(``TorchRasterConfig.compositor``, ``numba_composite``); the pure-torch code below is the
reference they are tested against, and what runs without numba or on other devices.

Same semantics as gsplat 1.5.3's ``rasterization`` in classic mode (see ``projection.py``
for the projection): per pixel, Gaussians front to back by depth, alpha =
min(0.999, opacity * exp(-power)), alpha < 1/255 skipped, and a pixel stops *before* the
Gaussian that would bring its transmittance to <= 1e-4 (that Gaussian does not contribute).

How it is fast without a per-pixel loop:

* Binning: every visible Gaussian is listed in the tiles (8x8 px by default) its box
  overlaps, then one sort by (camera, tile, depth) gives each tile a front-to-back list
  (ties by Gaussian index, as gsplat's stable radix sort). The box bounds every pixel a
  Gaussian reaches, so the tile size changes speed, never pixels.
* Log-alpha as a matrix product: relative to a tile's centre, log(opacity) - power is a
  quadratic in the pixel offset (u, v), so for a tile and K Gaussians
  ``log alpha [P,K] = features(u, v) [P,6] @ coefficients [6,K]``: one small GEMM and one
  exp instead of a dozen elementwise passes. (In float32 the expansion costs at most ~1e-5
  of relative accuracy in alpha, for tiny Gaussians at the far corner of a tile.)
* Depth steps: tiles are walked K Gaussians at a time. Each step composites the next K
  Gaussians of every live tile, in batches of tiles sized to stay in cache, carrying the
  transmittance per pixel; a tile leaves when its list ends or all its pixels have stopped.
  Padding is at most K-1 slots per tile (the step structure is the bucketing by count).
  Since transmittance only falls, the stop rule is a prefix mask, applied only to the few
  pixels that stop within a step.
* Backward: a custom autograd function recomputes each step instead of keeping a graph per
  batch (as gsplat's CUDA backward does). It runs front to back too: the light behind
  Gaussian i, needed for d/d alpha_i, is the pixel's total minus the running prefix sum.
  Alpha rides along as an extra colour channel of ones, whose gradient is exactly the alpha
  output's. The function takes per-(camera, Gaussian) 2D parameters and colours, so memory
  is O(visible + intersections + pixels) plus one batch of temporaries, whatever the depth
  complexity.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from .ewa import (ALPHA_THRESHOLD, MAX_ALPHA, TRANSMITTANCE_EPS, project_gaussians,
                         render_meta, view_colors)
from .numba_composite import CompositeNumba, bin_tiles_numba, numba_available

__all__ = ["TorchRasterConfig", "TileBins", "bin_gaussians", "rasterize_torch", "COMPOSITORS"]

COMPOSITORS = ("auto", "numba", "torch")

# log opacity of the padding row: exp(-1e4) == 0, skipped like any alpha < 1/255
_PAD_POWER = 1e4
# fewer busy tiles than this composite on one thread whatever ``threads`` says: a person in
# a 256 px render (~200 busy tiles) took 10 % longer on two (benchmarks/render.py)
_MIN_THREADED_TILES = 512
# powers are clamped to this before exp(): exp(-20) ~ 2e-9 is far below 1/255
_MAX_POWER = 20.0


@dataclass
class TorchRasterConfig:
    """Tuning knobs; none of them changes the image (the tile box bounds every pixel a
    Gaussian reaches), only speed and memory.

    tile_size:   pixels per tile side.
    depth_chunk: Gaussians per tile composited per step (K).
    chunk_elems: pixel x Gaussian evaluations per batch of tiles (bounds temporaries:
                 about 40 bytes each in the backward).
    threads:     composite the tiles on this many threads. Tiles are independent and each
                 is composited as on one thread, so the image is the same to the bit. The
                 torch compositor splits only renders without gradients with at least 512
                 busy 8 x 8 px tiles; the compiled one also its backward (each thread sums
                 its tiles' gradients, added in a fixed order).
    compositor:  "numba": compiled CPU kernels (``numba_composite``): the tile lists by a
                 counting sort (the same lists), each pixel composited (and its gradient
                 walked) as gsplat's kernels do: forward ~5x sooner than the torch
                 compositor, rounding-level differences; "torch": this module's pure-torch
                 code, the reference; "auto": numba for CPU tensors when it is installed.
    """

    tile_size: int = 8
    depth_chunk: int = 32
    chunk_elems: int = 1 << 18
    threads: int = 1
    compositor: str = "auto"

    def __post_init__(self) -> None:
        for name in ("tile_size", "depth_chunk", "chunk_elems", "threads"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"TorchRasterConfig.{name} must be a positive int, got {v!r}")
        if self.compositor not in COMPOSITORS:
            raise ValueError(f"TorchRasterConfig.compositor must be one of {COMPOSITORS}, "
                             f"got {self.compositor!r}")
        if self.compositor == "numba" and not numba_available():
            raise ValueError("TorchRasterConfig.compositor='numba' needs numba "
                             "(pip install numba); 'auto' falls back to the torch compositor")

    def use_numba(self, device: torch.device) -> bool:
        """Whether renders of tensors on ``device`` run the compiled kernels."""
        if self.compositor == "numba" and device.type != "cpu":
            raise ValueError(f"compositor='numba' runs on the CPU; the tensors are on {device}")
        return self.compositor != "torch" and device.type == "cpu" and numba_available()


@dataclass
class TileBins:
    """Gaussian-tile intersections sorted by (camera, tile, depth).

    vis_ids:     [V] flat indices into [C*N] of the visible (camera, Gaussian) pairs.
    isect_vis:   [I] visible index of each intersection.
    tiles:       [A] global indices (camera * tiles_per_image + tile) of the non-empty tiles.
    tile_start:  [A] first intersection of each non-empty tile.
    tile_count:  [A] intersections of each non-empty tile.
    tiles_x, tiles_y: tiles per image row / column.
    """

    vis_ids: Tensor
    isect_vis: Tensor
    tiles: Tensor
    tile_start: Tensor
    tile_count: Tensor
    tiles_x: int
    tiles_y: int
    tile_size: int


@torch.no_grad()
def bin_gaussians(means2d: Tensor, radii: Tensor, depths: Tensor, width: int, height: int,
                  tile_size: int, compiled: bool = False) -> TileBins:
    """Tile lists of projected Gaussians (means2d [C,N,2], radii [C,N,2], depths [C,N]),
    with gsplat's tile range rule: tiles [floor((m - r)/ts), ceil((m + r)/ts)) per axis.
    ``compiled``: a counting sort by tile in numba (the same lists, ~5x sooner) instead of
    one torch sort of every intersection."""
    C, N = depths.shape
    dev = depths.device
    tx, ty = math.ceil(width / tile_size), math.ceil(height / tile_size)
    vis_ids = (radii > 0).all(dim=-1).reshape(-1).nonzero().squeeze(1)  # [V]
    V = vis_ids.numel()
    m = means2d.reshape(-1, 2)[vis_ids] / tile_size
    r = radii.reshape(-1, 2)[vis_ids].to(m.dtype) / tile_size
    lo = torch.floor(m - r)
    hi = torch.ceil(m + r)
    x0 = lo[:, 0].clamp(0, tx).long()
    x1 = hi[:, 0].clamp(0, tx).long()
    y0 = lo[:, 1].clamp(0, ty).long()
    y1 = hi[:, 1].clamp(0, ty).long()
    # front to back over the visible set; stable, so ties keep the (camera, Gaussian) order
    order = torch.sort(depths.reshape(-1)[vis_ids], stable=True).indices
    if compiled:
        isect_vis, counts = bin_tiles_numba(order, vis_ids // N, x0, x1, y0, y1, C, tx, ty)
        tiles = counts.nonzero().squeeze(1).to(dev)
        tile_count = counts[tiles].to(dev)
        tile_start = torch.cumsum(tile_count, 0) - tile_count
        return TileBins(vis_ids, isect_vis.to(dev), tiles, tile_start, tile_count, tx, ty,
                        tile_size)
    nx = x1 - x0
    counts = nx * (y1 - y0)  # [V]
    total = int(counts.sum())
    rank = torch.empty(V, dtype=torch.long, device=dev)
    rank[order] = torch.arange(V, device=dev)
    rep = torch.repeat_interleave(torch.arange(V, device=dev), counts)  # [I]
    first = torch.cumsum(counts, 0) - counts
    local = torch.arange(total, device=dev) - first[rep]
    w = nx[rep]
    tile = (vis_ids[rep] // N * ty + y0[rep] + local // w) * tx + x0[rep] + local % w
    order = torch.sort(tile * V + rank[rep]).indices
    isect_vis = rep[order]
    isect_tile = tile[order]
    tiles, tile_count = torch.unique_consecutive(isect_tile, return_counts=True)
    tile_start = torch.cumsum(tile_count, 0) - tile_count
    return TileBins(vis_ids, isect_vis, tiles, tile_start, tile_count, tx, ty, tile_size)


def _pixel_features(tile_size: int, dtype, device) -> Tensor:
    """[P,6] quadratic features (u^2, uv, v^2, u, v, 1) of a tile's pixel centres, (u, v)
    relative to the tile centre; pixels row-major."""
    c = torch.arange(tile_size, dtype=dtype, device=device) + 0.5 - tile_size / 2
    v, u = torch.meshgrid(c, c, indexing="ij")
    u, v = u.reshape(-1), v.reshape(-1)
    return torch.stack([u * u, u * v, v * v, u, v, torch.ones_like(u)], dim=-1)


def _tile_xy(bins: TileBins) -> Tensor:
    """[A,2] column and row (in tiles) of the busy tiles in their image."""
    t = bins.tiles % (bins.tiles_x * bins.tiles_y)
    return torch.stack([t % bins.tiles_x, t // bins.tiles_x], -1)


def _tile_centres(bins: TileBins, dtype) -> Tensor:
    """[A,2] pixel coordinates of the centres of the busy tiles."""
    ts = bins.tile_size
    return _tile_xy(bins).to(dtype) * ts + ts / 2


class _Plan:
    """The step schedule and the per-batch kernels shared by forward and backward.

    Per visible Gaussian the compositor takes ``params`` [V,6] = (mean x, mean y, conic a,
    b, c, log opacity) and ``colors`` [V,D1]; both get one padding row (index V: log
    opacity -1e4, so alpha 0) that pads every tile's last step. Tensors of a batch of b
    tiles are laid out [b,P,K] (pixel, depth slot) so the scans along depth run over
    contiguous memory; colours accumulate as [b,D1,P]. Gathers use index_select (several
    times faster than advanced indexing at these sizes)."""

    def __init__(self, bins: TileBins, cfg: TorchRasterConfig, feats: Tensor,
                 clampable: Tensor):
        dev = feats.device
        self.start = bins.tile_start
        self.end = bins.tile_start + bins.tile_count
        self.n_isects = bins.isect_vis.numel()
        self.n_vis = bins.vis_ids.numel()
        # slot I is the padding slot; it points at the padding row V
        self.isect_vis = torch.cat([bins.isect_vis, bins.isect_vis.new_full((1,), self.n_vis)])
        self.centres = _tile_centres(bins, feats.dtype)  # [A,2]
        # tiles holding a Gaussian of opacity > 0.999, whose alphas may need the clamp
        tile_of = torch.repeat_interleave(torch.arange(self.start.numel(), device=dev),
                                          bins.tile_count)
        self.tile_clamp = torch.zeros(self.start.numel(), dtype=torch.bool, device=dev)
        self.tile_clamp[tile_of[clampable[bins.isect_vis]]] = True
        self.feats = feats  # [P,6]
        self.feats_t = feats.T.contiguous()  # [6,P]
        self.P = feats.shape[0]
        self.K = cfg.depth_chunk
        self.batch = max(1, cfg.chunk_elems // (self.P * self.K))
        self.arange_k = torch.arange(self.K, device=dev)
        self.thresh = _below(ALPHA_THRESHOLD, feats.dtype)

    def subset(self, tiles: Tensor) -> "_Plan":
        """The plan of the busy tiles ``tiles`` [a] alone (in that order); the rest shared."""
        sub = copy.copy(self)
        sub.start, sub.end = self.start[tiles], self.end[tiles]
        sub.tile_clamp, sub.centres = self.tile_clamp[tiles], self.centres[tiles]
        return sub

    @staticmethod
    def pad(params: Tensor, colors: Tensor):
        """params and colors with the padding row appended."""
        row = params.new_tensor([[0.0, 0.0, 1.0, 0.0, 1.0, -_PAD_POWER]])
        return torch.cat([params, row]), torch.cat([colors, colors.new_zeros(1, colors.shape[1])])

    def steps(self, alive: Tensor, step: int):
        """For the alive tiles at depth step ``step``: first slot [a], end [a], whether the
        clamp may be needed [a], tile centres [a,2]."""
        return (self.start.index_select(0, alive) + step * self.K,
                self.end.index_select(0, alive), self.tile_clamp.index_select(0, alive),
                self.centres.index_select(0, alive))

    def gather(self, params_p: Tensor, colors_p: Tensor, first: Tensor, end: Tensor,
               centre: Tensor):
        """One batch: visible ids [b*K], local parameters [b,K,6] (mean relative to the
        tile centre) and colours [b,K,D1]."""
        b, K = first.numel(), self.K
        slot = first[:, None] + self.arange_k  # [b,K]
        slot = torch.where(slot < end[:, None], slot, self.n_isects).reshape(-1)
        vid = self.isect_vis.index_select(0, slot)
        prm = params_p.index_select(0, vid).view(b, K, 6)
        local = torch.cat([prm[..., :2] - centre[:, None, :], prm[..., 2:]], dim=-1)
        col = colors_p.index_select(0, vid).view(b, K, -1)
        return vid, local, col

    @staticmethod
    def log_alpha_coefs(local: Tensor) -> Tensor:
        """[b,K,6] coefficients with ``features @ coef = log(opacity) - power``.

        power = a dx^2/2 + b dx dy + c dy^2/2 with (dx, dy) = pixel - mean, expanded in the
        pixel offset (u, v) from the tile centre, mean (mx, my) also from the centre."""
        mx, my, a, b, c, lo = local.unbind(-1)
        amb = a * mx + b * my
        bmc = b * mx + c * my
        return torch.stack([-0.5 * a, -b, -0.5 * c, amb, bmc,
                            lo - 0.5 * (amb * mx + bmc * my)], dim=-1)

    @staticmethod
    def log_alpha_coefs_vjp(local: Tensor, g: Tensor) -> Tensor:
        """Gradient [b,K,6] w.r.t. (mx, my, a, b, c, log opacity) from g = dL/dcoefs."""
        mx, my, a, b, c, _ = local.unbind(-1)
        g0, g1, g2, g3, g4, g5 = g.unbind(-1)
        amb = a * mx + b * my
        bmc = b * mx + c * my
        return torch.stack([
            a * g3 + b * g4 - amb * g5,
            b * g3 + c * g4 - bmc * g5,
            -0.5 * g0 + mx * g3 - 0.5 * mx * mx * g5,
            -g1 + my * g3 + mx * g4 - mx * my * g5,
            -0.5 * g2 + my * g4 - 0.5 * my * my * g5,
            g5,
        ], dim=-1)

    def alphas(self, cf: Tensor, clamp: bool, with_grad_factor: bool):
        """alpha [b,P,K] = min(0.999, opacity exp(-power)), 0 below 1/255; with
        ``with_grad_factor`` also d alpha / d log-alpha (alpha where unclamped, else 0)."""
        # Clamping the power keeps exp() off denormals (an order of magnitude slower on
        # x86); exp(-_MAX_POWER) is far below 1/255, so nothing visible changes.
        raw = torch.matmul(self.feats, cf.transpose(1, 2)).clamp_(min=-_MAX_POWER).exp_()
        if not clamp:  # no opacity above 0.999 in these tiles: nothing to clamp
            F.threshold_(raw, self.thresh, 0.0)
            return raw, raw
        alpha = raw.clamp(max=MAX_ALPHA)
        F.threshold_(alpha, self.thresh, 0.0)
        factor = alpha * (raw <= MAX_ALPHA) if with_grad_factor else None
        return alpha, factor

    @staticmethod
    def weights(alpha: Tensor, T0: Tensor):
        """Blend weights w = alpha T (exclusive transmittance) [b,P,K], the inclusive
        transmittance [b,P,K], 1 - alpha, and the pixels that stop in this step with their
        inclusion masks (None when none stops).

        A pixel stops before the first Gaussian whose inclusive transmittance is <= 1e-4;
        since transmittance only falls, inclusion is a prefix and only the (few) pixels that
        stop in this step need masking. Stopped pixels carry T0 = 0, so all their w are 0."""
        om = 1.0 - alpha
        Tincl = torch.cumprod(om, dim=-1).mul_(T0[..., None])
        w = torch.empty_like(alpha)
        torch.mul(alpha[..., 0], T0, out=w[..., 0])
        torch.mul(alpha[..., 1:], Tincl[..., :-1], out=w[..., 1:])
        stopping = (Tincl[..., -1] <= TRANSMITTANCE_EPS) & (T0 > 0)  # [b,P]
        rows = mask = None
        if bool(stopping.any()):
            K = alpha.shape[-1]
            rows = stopping.reshape(-1).nonzero().squeeze(1)
            mask = (Tincl.view(-1, K).index_select(0, rows) > TRANSMITTANCE_EPS).to(w.dtype)
            _mask_rows(w, rows, mask)
        return w, Tincl, om, stopping, rows, mask

    @staticmethod
    def texcl_times(x: Tensor, Tincl: Tensor, T0: Tensor) -> Tensor:
        """x * exclusive transmittance, in place (the exclusive one is Tincl shifted)."""
        x[..., 1:] *= Tincl[..., :-1]
        x[..., 0] *= T0
        return x


def _mask_rows(x: Tensor, rows: Tensor, mask: Tensor) -> None:
    """x.view(-1,K)[rows] *= mask, in place, with index_select/index_copy_."""
    xv = x.view(-1, x.shape[-1])
    xv.index_copy_(0, rows, xv.index_select(0, rows).mul_(mask))


def _below(x: float, dtype) -> float:
    """The largest value of ``dtype`` below x (so that ``v > result`` means ``v >= x``)."""
    t = torch.tensor(x, dtype=dtype)
    return float(torch.nextafter(t, torch.tensor(0.0, dtype=dtype)))


def _composite_forward(params: Tensor, colors: Tensor, plan: _Plan):
    """out [A,D1,P] (colour channels then alpha, per busy tile) and steps [A] per tile."""
    A, P, K = plan.start.numel(), plan.P, plan.K
    dev = params.device
    params_p, colors_p = plan.pad(params, colors)
    out = params.new_zeros(A, colors.shape[1], P)
    T = params.new_ones(A, P)  # live transmittance, 0 once the pixel has stopped
    steps = torch.zeros(A, dtype=torch.long, device=dev)
    alive = torch.arange(A, device=dev)
    step = 0
    while alive.numel():
        first, end, clamp, centre = plan.steps(alive, step)
        finished = torch.zeros(alive.numel(), dtype=torch.bool, device=dev)
        for b0 in range(0, alive.numel(), plan.batch):
            sl = slice(b0, b0 + plan.batch)
            tiles = alive[sl]
            _, local, col = plan.gather(params_p, colors_p, first[sl], end[sl], centre[sl])
            alpha, _ = plan.alphas(plan.log_alpha_coefs(local), bool(clamp[sl].any()),
                                   with_grad_factor=False)
            T0 = T.index_select(0, tiles)
            w, _, _, stopping, _, _ = plan.weights(alpha, T0)
            out.index_add_(0, tiles, torch.bmm(col.transpose(1, 2), w.transpose(1, 2)))
            # the backward recomputes T exactly so: same ops on the same batches
            Tn = (T0 - w.sum(-1)).masked_fill_(stopping, 0.0)
            T.index_copy_(0, tiles, Tn)
            finished[sl] = (Tn == 0).all(dim=1)
        steps.index_add_(0, alive, torch.ones_like(alive))
        step += 1
        alive = alive[~finished & (end - first > K)]
    return out, steps


def _composite_forward_threaded(params: Tensor, colors: Tensor, plan: _Plan, threads: int):
    """:func:`_composite_forward`'s ``out`` with the tiles split over ``threads`` threads,
    each a share of about equal intersections (longest lists dealt round first). A tile's
    result does not depend on which tiles share its batches, so the bits are the same."""
    from concurrent.futures import ThreadPoolExecutor

    A = plan.start.numel()
    order = torch.argsort(plan.end - plan.start, descending=True, stable=True)
    groups = [order[i::threads].sort().values for i in range(threads)]
    groups = [g for g in groups if g.numel()]

    def run(tiles: Tensor) -> Tensor:
        with torch.no_grad():  # grad mode is per thread
            return _composite_forward(params, colors, plan.subset(tiles))[0]

    with ThreadPoolExecutor(max_workers=len(groups), thread_name_prefix="raster") as pool:
        parts = list(pool.map(run, groups))
    out = params.new_empty(A, colors.shape[1], plan.P)
    for tiles, part in zip(groups, parts):
        out.index_copy_(0, tiles, part)
    return out


def _composite_backward(params: Tensor, colors: Tensor, out: Tensor, g_out: Tensor,
                        steps: Tensor, plan: _Plan, need_params: bool = True,
                        need_colors: bool = True):
    """Gradients w.r.t. params [V,6] and colors [V,D1], recomputing each step.

    With S_i the light behind Gaussian i (colour dotted with the output gradient),
    dL/d alpha_i = T_i c_i.g - S_i / (1 - alpha_i), and S_i = (total . g) minus the running
    prefix sum of w_j c_j.g, so this walks front to back like the forward."""
    A, P, K = plan.start.numel(), plan.P, plan.K
    D1 = colors.shape[1]
    params_p, colors_p = plan.pad(params, colors)
    g_params = torch.zeros_like(params_p)  # row V (padding) collects junk
    g_colors = torch.zeros_like(colors_p)
    Rrem = (out * g_out).sum(1)  # [A,P] light not yet passed, dotted with g; 0 once stopped
    T = params.new_ones(A, P)
    n_steps = int(steps.max()) if A else 0
    for step in range(n_steps):
        alive = (steps > step).nonzero().squeeze(1)
        first, end, clamp, centre = plan.steps(alive, step)
        for b0 in range(0, alive.numel(), plan.batch):
            sl = slice(b0, b0 + plan.batch)
            tiles = alive[sl]
            vid, local, col = plan.gather(params_p, colors_p, first[sl], end[sl], centre[sl])
            alpha, factor = plan.alphas(plan.log_alpha_coefs(local), bool(clamp[sl].any()),
                                        with_grad_factor=True)
            T0 = T.index_select(0, tiles)
            w, Tincl, om, stopping, rows, mask = plan.weights(alpha, T0)
            gT = g_out.index_select(0, tiles)  # [b,D1,P]
            if need_colors:
                g_colors.index_add_(0, vid, torch.bmm(gT, w).transpose(1, 2).reshape(-1, D1))
            if need_params:
                R0 = Rrem.index_select(0, tiles)
                cg = torch.bmm(gT.transpose(1, 2), col.transpose(1, 2))  # [b,P,K] c_i . g
                prefix = torch.cumsum(w * cg, dim=-1)
                passed = prefix[..., -1].clone()
                behind = prefix.sub_(R0[..., None]).div_(om)  # -S_i / (1 - alpha_i)
                d = plan.texcl_times(cg, Tincl, T0).add_(behind)  # dL/d alpha
                if rows is not None:
                    _mask_rows(d, rows, mask)
                d.mul_(factor)  # dL/d log-alpha
                g_cf = torch.matmul(plan.feats_t, d).transpose(1, 2)  # [b,K,6]
                g_params.index_add_(0, vid,
                                    plan.log_alpha_coefs_vjp(local, g_cf).reshape(-1, 6))
                Rrem.index_copy_(0, tiles, (R0 - passed).masked_fill_(stopping, 0.0))
            T.index_copy_(0, tiles, (T0 - w.sum(-1)).masked_fill_(stopping, 0.0))
    return g_params[:-1], g_colors[:-1]


class _Composite(torch.autograd.Function):
    """Tiles' colour+alpha [A,D1,P] from per-visible params [V,6] and colours [V,D1]."""

    @staticmethod
    def forward(ctx, params: Tensor, colors: Tensor, plan: _Plan):
        out, steps = _composite_forward(params, colors, plan)
        ctx.save_for_backward(params, colors, out, steps)
        ctx.plan = plan
        return out

    @staticmethod
    def backward(ctx, g_out: Tensor):
        params, colors, out, steps = ctx.saved_tensors
        need_p, need_c = ctx.needs_input_grad[:2]
        g_params, g_colors = _composite_backward(params, colors, out, g_out.contiguous(),
                                                 steps, ctx.plan, need_p, need_c)
        return (g_params if need_p else None), (g_colors if need_c else None), None


def rasterize_torch(means: Tensor, quats: Tensor, scales: Tensor, opacities: Tensor,
                    colors: Tensor, viewmats: Tensor, Ks: Tensor, width: int, height: int, *,
                    backgrounds: Tensor | None = None, sh_degree: int | None = None,
                    near_plane: float = 0.01, far_plane: float = 1e10, eps2d: float = 0.3,
                    config: TorchRasterConfig | None = None):
    """Render C images of N Gaussians; inputs already validated (see ``rasterize``).

    Returns (colors [C,H,W,D], alphas [C,H,W,1], meta)."""
    cfg = config or TorchRasterConfig()
    C, N = viewmats.shape[0], means.shape[0]
    dev, dt = means.device, means.dtype
    proj = project_gaussians(means, quats, scales, viewmats, Ks, width, height,
                             opacities=opacities, eps2d=eps2d, near_plane=near_plane,
                             far_plane=far_plane)
    bins = bin_gaussians(proj.means2d.detach(), proj.radii, proj.depths.detach(), width,
                         height, cfg.tile_size, compiled=cfg.use_numba(dev))
    vis = bins.vis_ids
    cam_ids, gauss_ids = vis // N, vis % N
    cols = view_colors(colors, sh_degree, means, viewmats, cam_ids, gauss_ids)  # [V,D]
    D = cols.shape[1]
    cols = torch.cat([cols, cols.new_ones(cols.shape[0], 1)], dim=1)  # alpha channel

    opac = opacities[gauss_ids]
    # per visible (camera, Gaussian): mean x, y, conic a, b, c, log opacity
    params = torch.cat([proj.means2d.reshape(-1, 2)[vis], proj.conics.reshape(-1, 3)[vis],
                        torch.log(opac)[:, None]], dim=1)
    grad = torch.is_grad_enabled() and (params.requires_grad or cols.requires_grad)
    if cfg.use_numba(dev):
        tile_out = CompositeNumba.apply(params, cols, bins.isect_vis, bins.tile_start,
                                        bins.tile_count, _tile_xy(bins), cfg.tile_size,
                                        cfg.threads)
    else:
        plan = _Plan(bins, cfg, _pixel_features(cfg.tile_size, dt, dev),
                     opac.detach() > MAX_ALPHA)
        if grad:
            tile_out = _Composite.apply(params, cols, plan)
        elif cfg.threads > 1 and plan.start.numel() >= _MIN_THREADED_TILES:
            tile_out = _composite_forward_threaded(params.detach(), cols.detach(), plan,
                                                   cfg.threads)
        else:
            tile_out, _ = _composite_forward(params.detach(), cols.detach(), plan)
    tile_out = tile_out.transpose(1, 2)  # [A,P,D+1]

    ts, tx, ty = cfg.tile_size, bins.tiles_x, bins.tiles_y
    full = tile_out.new_zeros(C * ty * tx, ts * ts, D + 1).index_copy(0, bins.tiles, tile_out)
    img = full.reshape(C, ty, tx, ts, ts, D + 1).permute(0, 1, 3, 2, 4, 5).reshape(
        C, ty * ts, tx * ts, D + 1)[:, :height, :width]
    rgb, alpha = img[..., :D], img[..., D:]
    if backgrounds is not None:
        rgb = rgb + (1.0 - alpha) * backgrounds[:, None, None, :]

    counts = bins.tile_count
    meta = render_meta("torch", proj, width, height, ts, tx, ty, int(bins.isect_vis.numel()),
                       counts)
    return rgb, alpha, meta
