"""Level of detail (humansplat.render.lod): merged Gaussians render like the originals at the
resolution they were merged for, with several times fewer Gaussians, and the merge keeps what
it must (big Gaussians, lone Gaussians, colour and opacity mass, labels)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from humansplat.cameras import orbit_cameras
from humansplat.gaussians import Gaussians, rgb_to_sh_dc
from humansplat.io.video import orbit_video_cameras, render_orbit_frames
from humansplat.metrics import psnr
from humansplat.render import rasterize
from humansplat.render.lod import merge_gaussians, pixel_footprint


def _sheet(n: int = 96, spacing: float = 0.004, *, sh: bool = False, seed: int = 0) -> Gaussians:
    """A photo-like splat: an n x n grid of flat discs in the z = 0 plane (facing +z), spacing
    ``spacing`` m, smoothly varying colours with some texture, opaque inside a disc-shaped
    mask with a soft rim, and a few labels."""
    gen = torch.Generator().manual_seed(seed)
    t = (torch.arange(n, dtype=torch.float32) - (n - 1) / 2) * spacing
    yy, xx = torch.meshgrid(t, t, indexing="ij")
    means = torch.stack([xx, yy, torch.zeros_like(xx)], -1).reshape(-1, 3)
    r = means[:, :2].norm(dim=1) / (0.5 * n * spacing)
    opac = (1.0 - torch.sigmoid((r - 0.8) * 30)).clamp(0.02, 0.99)
    u, v = xx.reshape(-1) / (n * spacing), yy.reshape(-1) / (n * spacing)
    rgb = torch.stack([0.5 + 0.4 * torch.sin(6 * u), 0.5 + 0.4 * torch.cos(5 * v),
                       0.5 + 0.3 * torch.sin(4 * (u + v))], -1)
    rgb = (rgb + 0.05 * torch.rand(rgb.shape, generator=gen)).clamp(0, 1)
    scales = torch.tensor([0.6 * spacing, 0.6 * spacing, 0.1 * spacing]).expand(len(means), 3)
    quats = torch.tensor([1.0, 0.0, 0.0, 0.0]).expand(len(means), 4)
    labels = (u > 0).long() + 2 * (v > 0).long()
    colour = {"sh": rgb_to_sh_dc(rgb)[:, None]} if sh else {"colors": rgb}
    return Gaussians(means, quats.clone(), scales.clone(), opac, labels=labels, **colour)


def _render(g: Gaussians, size: int) -> torch.Tensor:
    cams = orbit_cameras([0.0, 35.0], 10.0, 0.6, width=size, height=size)
    colors = g.colors if g.colors is not None else g.sh
    rgb, _, _ = rasterize(g.means, g.quats, g.scales, g.opacities, colors, cams.viewmats,
                          cams.Ks, size, size, backgrounds=torch.ones(2, 3),
                          sh_degree=g.sh_degree)
    return rgb.permute(0, 3, 1, 2).clamp(0, 1)  # [2,3,H,W]


@pytest.mark.parametrize("sh", [False, True])
def test_merged_splat_renders_like_the_original_at_its_resolution(sh):
    g = _sheet(sh=sh)
    size = 64
    cams = orbit_cameras([0.0], 0.0, 0.6, width=size, height=size)
    cell = pixel_footprint(float(cams.Ks[0, 1, 1]), 0.6)  # one 64 px pixel: 1.7 spacings
    m = merge_gaussians(g, cell)
    assert len(m) * 2 <= len(g)  # ~3 originals per merged Gaussian
    assert (m.sh is None) == (not sh) and m.labels is not None
    full, merged = _render(g, size), _render(m, size)
    assert float(psnr(merged, full).min()) > 30.0  # front and 35 deg off-axis
    # the coarser the cell, the fewer Gaussians and the further from the original
    coarse = merge_gaussians(g, 3 * cell)
    assert len(coarse) < len(m)
    assert float(psnr(_render(coarse, size), full).min()) < float(psnr(merged, full).min())


def test_merge_keeps_big_and_lone_gaussians_and_conserves_mass():
    g = _sheet(n=16)
    big = Gaussians(torch.tensor([[0.0, 0.0, 0.5]]), torch.tensor([[1.0, 0.0, 0.0, 0.0]]),
                    torch.tensor([[0.05, 0.05, 0.01]]), torch.tensor([0.7]),
                    colors=torch.tensor([[0.1, 0.2, 0.3]]), labels=torch.tensor([7]))
    lone = Gaussians(torch.tensor([[1.0, 1.0, 1.0]]), torch.tensor([[0.6, 0.8, 0.0, 0.0]]),
                     torch.tensor([[0.001, 0.002, 0.0005]]), torch.tensor([0.4]),
                     colors=torch.tensor([[0.9, 0.8, 0.7]]), labels=torch.tensor([5]))
    cell = 0.02
    m = merge_gaussians(Gaussians.cat([g, big, lone]), cell)
    for one in (big, lone):  # kept bit for bit
        hit = (m.means == one.means).all(1)
        assert int(hit.sum()) == 1
        for name in ("quats", "scales", "opacities", "colors", "labels"):
            assert torch.equal(getattr(m, name)[hit], getattr(one, name))
    # the sheet's colour (opacity x area weighted) and its integrated opacity are kept
    rest = ~((m.means == big.means).all(1) | (m.means == lone.means).all(1))
    mg = m[rest]

    def mass(x: Gaussians):
        s = x.scales.sort(dim=1, descending=True).values
        return x.opacities * s[:, 0] * s[:, 1]
    assert len(mg) < len(g)
    assert torch.allclose((mass(mg)[:, None] * mg.colors).sum(0) / mass(mg).sum(),
                          (mass(g)[:, None] * g.colors).sum(0) / mass(g).sum(), atol=0.02)
    # faint Gaussians (whose alphas add) keep their integrated opacity; opaque ones are
    # capped (overlapping opaque discs become one opaque disc)
    faint = Gaussians(g.means, g.quats, g.scales, 0.1 * g.opacities, colors=g.colors)
    mf = merge_gaussians(faint, cell)
    assert len(mf) < len(faint)
    assert float(mass(mf).sum()) == pytest.approx(float(mass(faint).sum()), rel=1e-4)
    assert float(mass(mg).sum()) < float(mass(g).sum())
    assert float(m.opacities.max()) <= float(g.opacities.max()) + 1e-6
    assert torch.isfinite(mg.scales).all() and (mg.scales > 0).all()
    assert torch.allclose(mg.quats.norm(dim=1), torch.ones(len(mg)), atol=1e-5)
    # covariance of a merged cell spans its members: no merged Gaussian smaller than one
    assert float(mg.scales.amax(1).min()) >= 0.6 * 0.004 - 1e-7
    with pytest.raises(ValueError, match="cell"):
        merge_gaussians(g, 0.0)


def test_turntable_merges_by_default_and_not_when_asked():
    g = _sheet(n=64, spacing=0.003)
    cams = orbit_video_cameras(g, n_frames=3, size=48)
    full = np.stack(list(render_orbit_frames(g, cams, lod_px=0)))
    lod = np.stack(list(render_orbit_frames(g, cams)))
    off = np.stack(list(render_orbit_frames(g, cams, lod_px=None)))
    assert np.array_equal(full, off) and not np.array_equal(full, lod)
    mse = float(((full.astype(np.float64) - lod) ** 2).mean()) / 255.0 ** 2
    assert 10 * math.log10(1.0 / mse) > 30.0
    with pytest.raises(ValueError, match="lod_px"):
        next(render_orbit_frames(g, cams, lod_px=-1.0))


def test_turntable_threads_give_the_same_frames_in_order():
    g = _sheet(n=48, spacing=0.004)
    cams = orbit_video_cameras(g, n_frames=7, size=32)
    calls = []
    one = np.stack(list(render_orbit_frames(g, cams, chunk=2)))
    two = np.stack(list(render_orbit_frames(g, cams, chunk=2, workers=3,
                                            progress=lambda d, n: calls.append((d, n)))))
    assert one.shape == (7, 32, 32, 3) and np.array_equal(one, two)
    assert calls == [(2, 7), (4, 7), (6, 7), (7, 7)]
    with pytest.raises(ValueError, match="workers"):
        next(render_orbit_frames(g, cams, workers=0))
