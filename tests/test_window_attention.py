"""Projection-aware windowed cross-attention against the straightforward dense masked version."""

import math

import pytest
import torch

from humansplat.cameras import orbit_cameras
from humansplat.model.blocks import WindowCrossAttention
from humansplat.model.window_attention import (build_window_index, dense_window_mask,
                                               windowed_attention)

from torch_threads import one_thread  # noqa: F401  (fixture)

pytestmark = pytest.mark.usefixtures("one_thread")
IMG, GRID = 64, 16


def _scene(seed=0, B=2, L=400):
    """Cameras from three sides (one looking down), a person-sized cloud, a tight cluster
    (crowded buckets), points behind camera 0 and points outside every image."""
    g = torch.Generator().manual_seed(seed)
    cams = orbit_cameras([0.0, 100.0, 215.0], [0.0, 20.0, -10.0], 2.6, width=IMG, height=IMG)
    vm = cams.viewmats[None].expand(B, -1, -1, -1).contiguous()
    Ks = cams.Ks[None].expand(B, -1, -1, -1).contiguous()
    pts = torch.randn(B, L, 3, generator=g) * torch.tensor([0.2, 0.35, 0.15])
    pts[:, :60] = 0.03 * torch.randn(B, 60, 3, generator=g) + torch.tensor([0.1, 0.3, 0.0])
    pts[:, 60:70] = torch.tensor([0.0, 0.0, 4.0])  # behind camera 0 (which sits at z = 2.6)
    pts[:, 70:80] = torch.tensor([0.0, 5.0, 0.0])  # above every image
    return pts, vm, Ks


def _dense_reference(q, k, v, mask):
    """Plain softmax attention with the dense mask, float64; rows with no key give 0."""
    B, N, L = mask.shape
    h, dh = q.shape[1], q.shape[2]
    qq = q.reshape(B, N, h, dh).transpose(1, 2)
    kk = k.reshape(B, L, h, dh).transpose(1, 2)
    vv = v.reshape(B, L, h, dh).transpose(1, 2)
    scores = (qq @ kk.transpose(-1, -2)) / math.sqrt(dh)
    scores = scores.masked_fill(~mask[:, None], float("-inf"))
    attn = torch.nan_to_num(torch.softmax(scores, dim=-1), nan=0.0)  # empty rows -> 0
    return (attn @ vv).transpose(1, 2).reshape(B * N, h, dh)


def _scatter(out, ids, n):
    return torch.zeros(n, *out.shape[1:], dtype=out.dtype).index_add(0, ids, out)


@pytest.mark.parametrize("k_win", [1, 2, 3, 4])
def test_windowed_equals_dense_masked_reference(k_win):
    pts, vm, Ks = _scene()
    B, L = pts.shape[:2]
    V = vm.shape[1]
    n_q, h, dh = B * V * GRID * GRID, 2, 8
    index = build_window_index(pts, vm, Ks, IMG, GRID, k_win, max_tokens_per_cell=1000,
                               chunk_keys=2048)
    mask = dense_window_mask(pts, vm, Ks, IMG, GRID, k_win)
    assert index.stats.n_dropped == 0
    assert index.stats.n_pairs == int(mask.sum())
    g = torch.Generator().manual_seed(k_win)
    q, k, v = (torch.randn(n, h, dh, generator=g, dtype=torch.float64, requires_grad=True)
               for n in (n_q, B * L, B * L))
    out, ids = windowed_attention(q, torch.stack([k, v], 1), index)
    got = _scatter(out, ids, n_q)
    ref = _dense_reference(q, k, v, mask)
    empty = ~mask.reshape(-1, L).any(-1)
    assert empty.any() and (~empty).any()  # both kinds of token are exercised
    assert torch.isfinite(got).all()
    assert torch.equal(got[empty], torch.zeros_like(got[empty]))
    torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-10)
    # Training uses the gradients: they must agree too.
    w = torch.randn(got.shape, generator=g, dtype=torch.float64)
    g_win = torch.autograd.grad((got * w).sum(), (q, k, v))
    g_ref = torch.autograd.grad((ref * w).sum(), (q, k, v))
    for a, b in zip(g_win, g_ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("k_win", [1, 2, 3])
def test_module_leaves_empty_window_tokens_unchanged(k_win):
    pts, vm, Ks = _scene(seed=1)
    B, L = pts.shape[:2]
    V, d = vm.shape[1], 16
    N = V * GRID * GRID
    torch.manual_seed(0)
    attn = WindowCrossAttention(d, heads=2).double()
    x = torch.randn(B, N, d, dtype=torch.float64)
    body = torch.randn(B, L, d, dtype=torch.float64)
    index = build_window_index(pts, vm, Ks, IMG, GRID, k_win, 1000)
    y = attn(x, body, index)
    mask = dense_window_mask(pts, vm, Ks, IMG, GRID, k_win)
    empty = ~mask.any(-1)  # [B,N]
    assert torch.equal(y[empty], x[empty])  # residual only, bit for bit
    # The others: the module's own projections through the dense reference.
    q = attn.q(attn.norm_q(x)).reshape(B * N, 2, d // 2)
    k, v = (t.reshape(B * L, 2, d // 2) for t in attn.kv(attn.norm_kv(body)).chunk(2, -1))
    upd = attn.proj(_dense_reference(q, k, v, mask).reshape(B, N, d))
    torch.testing.assert_close(y[~empty], (x + upd)[~empty], rtol=1e-10, atol=1e-10)


def test_chunking_does_not_change_the_result():
    pts, vm, Ks = _scene(seed=2)
    B, L = pts.shape[:2]
    n_q = B * vm.shape[1] * GRID * GRID
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(n, 2, 4, generator=g, dtype=torch.float64) for n in (n_q, B * L,
                                                                              B * L))
    outs = []
    for chunk_keys in (16, 256, 1 << 20):
        idx = build_window_index(pts, vm, Ks, IMG, GRID, 2, 1000, chunk_keys=chunk_keys)
        outs.append(_scatter(*windowed_attention(q, torch.stack([k, v], 1), idx), n_q))
    torch.testing.assert_close(outs[0], outs[2], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(outs[1], outs[2], rtol=1e-12, atol=1e-12)


def _frontal_camera():
    """Camera at (0,0,-4) looking down +z with world axes = camera axes, f = 64 px."""
    vm = torch.eye(4)
    vm[2, 3] = 4.0
    K = torch.tensor([[64.0, 0, IMG / 2], [0, 64.0, IMG / 2], [0, 0, 1]])
    return vm[None, None], K[None, None]


def _point_at_cell(x, y, z=0.0):
    """World point that projects to cell coordinates (x, y) of the frontal camera."""
    cs = IMG / GRID
    u, v = x * cs, y * cs
    depth = z + 4.0
    return torch.tensor([[(u - IMG / 2) * depth / 64.0, (v - IMG / 2) * depth / 64.0, z]])


@pytest.mark.parametrize("k_win, x, cols", [
    (1, 2.3, {2}),  # projection only: its own cell
    (2, 2.3, {1, 2}),  # even K: the two cells whose centres lie within 1 of x
    (2, 2.7, {2, 3}),
    (3, 2.3, {1, 2, 3}),
    (4, 2.7, {1, 2, 3, 4}),
])
def test_window_definition_on_a_known_point(k_win, x, cols):
    vm, K = _frontal_camera()
    pts = _point_at_cell(x, 5.5)[None]  # [1,1,3]
    rows = {r for r in range(GRID) if r + 0.5 - k_win / 2 <= 5.5 < r + 0.5 + k_win / 2}
    idx = build_window_index(pts, vm, K, IMG, GRID, k_win)
    seen = {int(q) for ch in idx.chunks for q in ch.query_ids}
    assert seen == {r * GRID + c for r in rows for c in cols}
    assert idx.stats.n_pairs == len(rows) * len(cols)


def test_crowded_bucket_keeps_the_nearest_tokens_and_counts_the_rest():
    vm, K = _frontal_camera()
    depths = torch.tensor([0.5, -0.3, 0.9, 0.1, -0.1, 0.7])  # world z; camera depth = z + 4
    pts = torch.cat([_point_at_cell(4.5, 4.5, float(z)) for z in depths])[None]
    idx = build_window_index(pts, vm, K, IMG, GRID, k_win=1, max_tokens_per_cell=3)
    assert idx.stats.n_dropped == 3 and idx.stats.max_bucket_count == 6
    (chunk,) = idx.chunks
    kept = set(chunk.key_ids[chunk.key_mask].tolist())
    assert kept == set(torch.argsort(depths)[:3].tolist())


def test_points_behind_or_outside_are_seen_by_nobody():
    vm, K = _frontal_camera()
    pts = torch.stack([_point_at_cell(3.5, 3.5, -5.0)[0],  # behind the camera
                       _point_at_cell(-0.5, 3.5)[0],  # left of the image
                       _point_at_cell(3.5, GRID + 0.2)[0]])[None]  # below it
    idx = build_window_index(pts, vm, K, IMG, GRID, k_win=3)
    assert idx.stats.n_projected == 0 and idx.chunks == []
    assert not dense_window_mask(pts, vm, K, IMG, GRID, 3).any()

