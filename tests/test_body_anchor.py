"""Body anchors: per-view body depth maps, and a body-anchored model starting on the prior."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from humansplat.cameras import orbit_cameras, pixel_rays
from humansplat.config import get_preset
from humansplat.model import LatentReconstructionTransformer
from humansplat.model.body_anchor import body_anchor_maps
from humansplat.model.dummy_inputs import synthetic_inputs


def test_plane_depth_along_rays_and_hole_filling():
    # a dense square of points on the plane z = 0.3 (facing the azimuth-0 camera at 2.6 m)
    g = torch.linspace(-0.3, 0.3, 121)
    y, x = torch.meshgrid(g, g, indexing="ij")
    pts = torch.stack([x, y, torch.full_like(x, 0.3)], -1).reshape(1, -1, 3)
    cam = orbit_cameras([0.0], 0.0, 2.6, width=64, height=64)
    a = body_anchor_maps(pts, cam.viewmats[None], cam.Ks[None], 64, 32)
    hit = a.coverage[0, 0] == 1
    assert 50 < int(hit.sum()) < 32 * 32
    # independent reference: intersect each cell-centre ray with the plane z = 0.3
    cam32 = cam.resized(32, 32)
    o, d = pixel_rays(cam32.viewmats, cam32.Ks, 32, 32)
    t = (0.3 - o[0, ..., 2]) / d[0, ..., 2]
    # cells are hit by the nearest point inside them, within ~a cell of the centre ray
    assert (a.ray_depth[0, 0][hit] - t[hit]).abs().max() < 0.01
    # filled cells ring the hit region with decreasing coverage; far cells fall back to 0
    filled = (a.coverage[0, 0] > 0) & ~hit
    assert filled.any() and (a.coverage[0, 0][filled] < 1).all()
    assert (a.coverage[0, 0] == 0).any()
    assert torch.isfinite(a.ray_depth).all()


def test_anchored_model_starts_on_the_prior():
    cfg = get_preset("tiny", n_intra=1, n_inter=1, dim=64, heads=2)
    torch.manual_seed(0)
    model = LatentReconstructionTransformer(cfg)
    inp = synthetic_inputs(cfg, n_body_vertices=13718)
    with torch.no_grad():
        out = model(**inp.as_kwargs())
    G = cfg.gaussian_grid
    a = body_anchor_maps(inp.body_vertices, inp.viewmats, inp.Ks, cfg.image_size, G)
    # depth: exactly the body along each ray; colour: the view's own pixel; opacity: coverage
    torch.testing.assert_close(out.depths[0].reshape(cfg.n_views, G, G), a.ray_depth[0])
    views = F.interpolate(inp.views[0], size=(G, G), mode="area").clamp(0.02, 0.98)
    torch.testing.assert_close(out.colors[0].reshape(cfg.n_views, G, G, 3),
                               views.permute(0, 2, 3, 1), atol=1e-5, rtol=0)
    op = out.opacities[0].reshape(cfg.n_views, G, G)
    assert (op[a.coverage[0] == 1] > 0.9).all() and (op[a.coverage[0] == 0] < 0.05).all()
