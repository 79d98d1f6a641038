"""Projection-aware windowed cross-attention (paper Sec. 3.4.2), without a dense mask.

The window. A view's tokens form a g x g grid over its image: token cell (r, c) covers image
pixels [c*cs, (c+1)*cs) x [r*cs, (r+1)*cs) with cs = image_size / g. A body token projects
(``humansplat.cameras.project_points``) to pixel (u, v), i.e. to cell coordinates
(x, y) = (u, v) / cs. The view token at cell (r, c) sees that body token iff

    c + 1/2 - K/2 <= x < c + 1/2 + K/2   and   r + 1/2 - K/2 <= y < r + 1/2 + K/2,

the K x K-cell square centred on the token. K = 1 is the token's own cell ("projection
only"); odd K adds (K-1)/2 rings of whole cells; even K is centred too, so K = 2 covers the
token's cell and half of each neighbour (x in [c - 1/2, c + 3/2)). Every body token is thus
seen by exactly K x K tokens per view (fewer at the image border). Body tokens behind a
camera (depth <= ``MIN_DEPTH``) or outside its image are seen by no token of that view.

The gather. With s = 1 for odd K and s = 2 for even K the window's edges lie on a grid of
1/s cells, so the window is exactly the union of (sK)^2 "buckets" (cells of that finer grid).
Body tokens are sorted by (view, bucket, depth); a bucket keeps its ``cap`` nearest tokens
(the rest are counted in ``WindowStats.n_dropped``). Each query's window is then a list of
bucket ranges; queries are sorted by how many keys their window holds and cut into chunks of
similar counts (at most ``chunk_keys`` key slots each), each padded only to its own longest
window, so padding stays small (< 1/8 + 8 slots a query) and the cost is
O(L_F x K^2 x tokens per bucket), never O(L_F x L_H). Queries with an empty window are not
computed at all: their update is exactly zero (no softmax over nothing, no NaN).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from ..cameras import project_points

__all__ = [
    "MIN_DEPTH",
    "WindowStats",
    "WindowChunk",
    "WindowIndex",
    "window_cell_coords",
    "build_window_index",
    "windowed_attention",
    "dense_window_mask",
]

MIN_DEPTH = 1e-4  # metres: body tokens nearer than this (or behind) are not seen
_ALIGN = 8  # key slots per query are padded to a multiple of this (mem-efficient kernels)


@dataclass
class WindowStats:
    """What the window index did, for logs and benchmarks (summed over the batch)."""

    n_body_tokens: int  # L_H per sample
    n_projected: int  # (sample, view, body token) triples in front of and inside the view
    n_dropped: int  # of those, dropped because their bucket held more than the cap
    max_bucket_count: int  # most tokens found in one bucket, before the cap
    n_active_queries: int  # view tokens whose window holds at least one body token
    n_pairs: int  # (query, key) pairs attended
    n_key_slots: int  # gathered key slots including padding (the real cost)


@dataclass
class WindowChunk:
    """One attention call's worth of queries and their keys."""

    query_ids: Tensor  # [n] long, flat indices into the B*V*T view tokens
    key_ids: Tensor  # [n, M] long, flat indices into the B*L_H body tokens (0 where padded)
    key_mask: Tensor  # [n, M] bool, True = attend


@dataclass
class WindowIndex:
    """Which body tokens each view token attends to; built once, shared by all blocks."""

    chunks: list[WindowChunk]
    n_queries: int  # B*V*T
    n_keys: int  # B*L_H
    stats: WindowStats
    active: Tensor = field(repr=False, default=None)  # [B*V*T] bool, window non-empty


def _window_layout(k_win: int) -> tuple[int, int, int]:
    """(s, o0, span): bucket subdivision, first bucket offset and buckets per window side.
    Query cell a's window covers buckets [s*a + o0, s*a + o0 + span)."""
    s = 1 if k_win % 2 else 2
    return s, (s - s * k_win) // 2, s * k_win


def window_cell_coords(points: Tensor, viewmats: Tensor, Ks: Tensor, image_size: int,
                       grid: int) -> tuple[Tensor, Tensor]:
    """Body points in each view's token-cell units.

    points [B,L,3] world; viewmats [B,V,4,4]; Ks [B,V,3,3] for the ``image_size`` image.
    Returns (xy [B,V,L,2] continuous cell coordinates (x = column), depth [B,V,L] camera z,
    visible [B,V,L] bool: in front of the camera and inside the image)."""
    B, L, _ = points.shape
    V = viewmats.shape[1]
    pts = points[:, None].expand(B, V, L, 3).reshape(B * V, L, 3)
    uv, z = project_points(pts, viewmats.reshape(B * V, 4, 4), Ks.reshape(B * V, 3, 3))
    xy = uv * (grid / image_size)
    visible = (z > MIN_DEPTH) & (xy >= 0).all(-1) & (xy < grid).all(-1)
    return xy.reshape(B, V, L, 2), z.reshape(B, V, L), visible.reshape(B, V, L)


@torch.no_grad()
def build_window_index(points: Tensor, viewmats: Tensor, Ks: Tensor, image_size: int,
                       grid: int, k_win: int, max_tokens_per_cell: int = 32,
                       chunk_keys: int = 1 << 16) -> WindowIndex:
    """Bucket body tokens by projected cell and list each view token's window.

    points [B,L,3] world (the body tokens' positions); viewmats [B,V,4,4]; Ks [B,V,3,3] for
    the ``image_size`` x ``image_size`` image; the token grid is ``grid`` x ``grid`` per view,
    flattened row-major (token t = r * grid + c), views after the batch: query id
    = (b * V + v) * grid^2 + t, key id = b * L + l."""
    if k_win < 1:
        raise ValueError(f"k_win must be >= 1, got {k_win}")
    if max_tokens_per_cell < 1:
        raise ValueError(f"max_tokens_per_cell must be >= 1, got {max_tokens_per_cell}")
    dev = points.device
    B, L, _ = points.shape
    V = viewmats.shape[1]
    BV, T = B * V, grid * grid
    s, o0, span = _window_layout(k_win)
    S = s * grid  # buckets per side
    nb = BV * S * S  # buckets in all; index nb = the empty sentinel

    # Geometry in fp32 whatever the autocast: cell boundaries must not move with precision.
    xy, z, visible = window_cell_coords(points.float(), viewmats.float(), Ks.float(),
                                        image_size, grid)
    sub = (xy.reshape(BV, L, 2) * s).floor().long().clamp_(0, S - 1)
    bv = torch.arange(BV, device=dev)[:, None]
    bucket = torch.where(visible.reshape(BV, L), bv * (S * S) + sub[..., 1] * S + sub[..., 0],
                         torch.full_like(sub[..., 0], nb)).reshape(-1)
    token = ((bv // V) * L + torch.arange(L, device=dev)[None]).reshape(-1)
    depth = z.reshape(-1)

    # Sort by bucket, nearest first inside a bucket (two stable sorts).
    order = torch.argsort(depth, stable=True)
    order = order[torch.argsort(bucket[order], stable=True)]
    b_sorted, t_sorted = bucket[order], token[order]
    counts = torch.bincount(b_sorted, minlength=nb + 1)[:nb]
    n_valid = int(counts.sum())
    b_sorted, t_sorted = b_sorted[:n_valid], t_sorted[:n_valid]  # the sentinel sorts last
    first = torch.cumsum(counts, 0) - counts
    rank = torch.arange(n_valid, device=dev) - first[b_sorted]
    kept_tokens = t_sorted[rank < max_tokens_per_cell]
    kcount = counts.clamp(max=max_tokens_per_cell)
    kstart = torch.cumsum(kcount, 0) - kcount
    zero = torch.zeros(1, dtype=torch.long, device=dev)
    kcount, kstart = torch.cat([kcount, zero]), torch.cat([kstart, zero])

    # Each query cell's window: span x span buckets (out-of-grid ones -> the empty sentinel).
    rows = s * torch.arange(grid, device=dev)[:, None] + o0 + torch.arange(span, device=dev)
    inside = (rows >= 0) & (rows < S)  # [g, span]
    wb = rows[:, None, :, None] * S + rows[None, :, None, :]  # [g, g, span, span]
    wv = inside[:, None, :, None] & inside[None, :, None, :]
    wb = torch.where(wv[None], wb[None] + (S * S) * torch.arange(BV, device=dev)[:, None, None,
                                                                                   None, None],
                     torch.full_like(wb[None], nb)).reshape(BV * T, span * span)
    wcount = kcount[wb]  # [BV*T, W]
    total = wcount.sum(-1)  # [BV*T]
    active = total > 0
    q_all = torch.nonzero(active).squeeze(1)
    q_all = q_all[torch.argsort(total[q_all], descending=True, stable=True)]
    totals = total[q_all].tolist()

    chunks: list[WindowChunk] = []
    n_slots = 0
    neg = [-t for t in totals]  # ascending, for bisect
    i = 0
    while i < len(totals):
        M = -(-totals[i] // _ALIGN) * _ALIGN
        # Rows wasting less than max(ALIGN, M/8) padded slots share this chunk's M.
        end = bisect.bisect_left(neg, -(M - max(_ALIGN, M // 8)), lo=i)
        n = max(1, min(end - i, chunk_keys // M))
        q = q_all[i:i + n]
        cnt = wcount[q]  # [n, W]
        incl = torch.cumsum(cnt, -1)
        m = torch.arange(M, device=dev).expand(q.shape[0], M).contiguous()
        j = torch.searchsorted(incl, m, right=True).clamp_(max=span * span - 1)
        pos = kstart[wb[q]].gather(1, j) + m - (incl - cnt).gather(1, j)
        mask = m < total[q][:, None]
        keys = kept_tokens[torch.where(mask, pos, torch.zeros_like(pos))]
        chunks.append(WindowChunk(q, torch.where(mask, keys, torch.zeros_like(keys)), mask))
        n_slots += q.shape[0] * M
        i += n

    stats = WindowStats(
        n_body_tokens=L, n_projected=n_valid, n_dropped=n_valid - int(kept_tokens.shape[0]),
        max_bucket_count=int(counts.max()) if nb else 0, n_active_queries=len(totals),
        n_pairs=int(sum(totals)), n_key_slots=n_slots)
    return WindowIndex(chunks, BV * T, B * L, stats, active)


def windowed_attention(q: Tensor, kv: Tensor, index: WindowIndex,
                       dropout_p: float = 0.0) -> tuple[Tensor, Tensor]:
    """Attention of each query over its window only.

    q [N_q, heads, dh] (N_q = B*V*T); kv [N_k, 2, heads, dh] keys then values (N_k = B*L_H),
    already projected. Returns (out [n_active, heads, dh], query_ids [n_active]): the
    attention output of every query whose window is non-empty; the others get no update.

    Keys and values are gathered together, one chunk at a time; without autograd the
    gather buffer is reused across chunks (on CPU fresh pages cost more than the copy)."""
    if q.shape[0] != index.n_queries or kv.shape[0] != index.n_keys:
        raise ValueError(f"window index is for {index.n_queries} queries / {index.n_keys} keys,"
                         f" got {q.shape[0]} / {kv.shape[0]}")
    if kv.ndim != 4 or kv.shape[1] != 2 or kv.shape[2:] != q.shape[1:]:
        raise ValueError(f"kv must be [N_k, 2, {q.shape[1]}, {q.shape[2]}], got "
                         f"{list(kv.shape)}")
    h, dh = q.shape[1:]
    flat = kv.reshape(kv.shape[0], 2 * h * dh)
    reuse = not (torch.is_grad_enabled() and kv.requires_grad)
    buf = None
    if reuse and index.chunks:
        buf = flat.new_empty(max(ch.key_ids.numel() for ch in index.chunks), flat.shape[1])
    outs, ids = [], []
    for ch in index.chunks:
        n, M = ch.key_ids.shape
        g = torch.index_select(flat, 0, ch.key_ids.reshape(-1),
                               **({"out": buf[:n * M]} if reuse else {}))
        g = g.view(n, M, 2, h, dh)
        o = F.scaled_dot_product_attention(
            q[ch.query_ids].unsqueeze(2), g[:, :, 0].transpose(1, 2), g[:, :, 1].transpose(1, 2),
            attn_mask=ch.key_mask[:, None, None, :], dropout_p=dropout_p)  # [n,h,1,dh]
        outs.append(o.squeeze(2))
        ids.append(ch.query_ids)
    if not outs:
        return q.new_zeros(0, h, dh), torch.zeros(0, dtype=torch.long, device=q.device)
    return torch.cat(outs), torch.cat(ids)


def dense_window_mask(points: Tensor, viewmats: Tensor, Ks: Tensor, image_size: int,
                      grid: int, k_win: int) -> Tensor:
    """The straightforward [B, V*T, L_H] boolean window mask (True = attend), straight from
    the definition above. A reference for tests and the baseline of the benchmark only: the
    model never builds it."""
    xy, _, visible = window_cell_coords(points.float(), viewmats.float(), Ks.float(),
                                        image_size, grid)  # [B,V,L,2], [B,V,L]
    centre = torch.arange(grid, device=points.device, dtype=xy.dtype) + 0.5
    half = k_win / 2
    # in_x[b, v, c, l]: column c's window contains x; likewise rows.
    in_x = (xy[:, :, None, :, 0] >= centre[:, None] - half) & \
        (xy[:, :, None, :, 0] < centre[:, None] + half)
    in_y = (xy[:, :, None, :, 1] >= centre[:, None] - half) & \
        (xy[:, :, None, :, 1] < centre[:, None] + half)
    mask = in_y[:, :, :, None, :] & in_x[:, :, None, :, :] & visible[:, :, None, None, :]
    B, V, L = visible.shape
    return mask.reshape(B, V * grid * grid, L)
