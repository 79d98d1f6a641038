"""humansplat.refine.sheet_depth: the photo's sheet placed at the depth the model's other views
saw, checked on a scene whose right answer is known by construction."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from humansplat.cameras import camera_centers, orbit_cameras
from humansplat.errors import ConfigError
from humansplat.gaussians import Gaussians
from humansplat.pipeline import PipelineConfig
from humansplat.refine import FaithfulConfig
from humansplat.refine.coverage import recede
from humansplat.refine.sheet_depth import choose_recede, into_silhouettes

RADIUS = 2.6
CANDIDATES = (-0.01, -0.005, 0.0, 0.005, 0.01, 0.015)


def _slab(n: int = 24) -> Gaussians:
    """A 0.6 x 1.2 m slab through the origin, facing the camera at azimuth 0, 3 cm thick
    (two layers), so the side views see its edge; coloured by height and layer only (the
    rasterizer's order among Gaussians at one depth is arbitrary)."""
    x, y = torch.meshgrid(torch.linspace(-0.3, 0.3, n), torch.linspace(-0.6, 0.6, 2 * n),
                          indexing="ij")
    front = torch.stack([x.reshape(-1), y.reshape(-1), torch.full((x.numel(),), 0.0)], -1)
    means = torch.cat([front + torch.tensor([0.0, 0.0, dz]) for dz in (-0.015, 0.015)])
    N = len(means)
    q = torch.zeros(N, 4)
    q[:, 0] = 1
    return Gaussians(means=means, quats=q, scales=torch.full((N, 3), 0.012),
                     opacities=torch.full((N,), 0.9),
                     colors=torch.stack([0.5 + 0.8 * means[:, 1], 0.5 + 10 * means[:, 2],
                                         torch.full((N,), 0.3)], -1).clamp(0, 1))


def test_choose_recede_puts_the_sheet_where_the_model_saw_it():
    """The photo's sheet is the model's slab moved 1 cm toward the photo's camera (its
    picture there unchanged): seen from the model's side and back views, only receding it
    by that centimetre matches the model's own render again, and the walk finds it without
    rendering every candidate."""
    cam = orbit_cameras([0.0], 0.0, RADIUS, width=64, height=64)
    centre = camera_centers(cam.viewmats.float())[0]
    model = _slab()
    photo = recede(model, centre, -0.01)
    views = orbit_cameras([90.0, 180.0, 270.0], 0.0, RADIUS, width=64, height=64)
    metres, errs = choose_recede(lambda m: recede(photo, centre, m), model, views, CANDIDATES)
    assert metres == 0.01
    assert errs[0.01] < 1e-6 < min(v for k, v in errs.items() if k != 0.01)
    assert len(errs) < len(CANDIDATES)  # walked, not searched exhaustively
    # the same answer from the other side: a sheet 5 mm too deep comes forward
    deep = recede(model, centre, 0.005)
    metres, _ = choose_recede(lambda m: recede(deep, centre, m), model, views, CANDIDATES)
    assert metres == -0.005


def test_search_in_make_faithful_moves_only_the_photo_and_is_recorded():
    """With ``photo_recede_search`` the photo's Gaussians lie the chosen candidate further
    along the photo camera's rays than without, every other Gaussian where it was, and the
    run's info says what was tried and chosen."""
    from test_refine import recede_pair

    _, a, b, n, da, db = recede_pair(photo_recede_search=CANDIDATES)
    info = b.info["photo_recede_search"]
    chosen = info["chosen"]
    assert chosen in CANDIDATES and str(chosen) in info["errors"]
    assert torch.allclose(db - da, torch.full_like(da, chosen), atol=1e-5)
    assert torch.equal(a.gaussians.means[n:], b.gaussians.means[n:])
    assert "photo_recede_search" not in a.info
    assert info["sheet_gaussians"] == n  # the toy photo (64 px) is within the search's 128
    # a finer photo is searched with its sheet rebuilt coarser, among the same candidates
    _, _, c, _, _, _ = recede_pair(photo_recede_search=CANDIDATES,
                                   photo_recede_search_resolution=32)
    coarse = c.info["photo_recede_search"]
    assert n / 8 < coarse["sheet_gaussians"] < n / 2 and coarse["chosen"] in CANDIDATES
    assert FaithfulConfig().photo_recede_search == CANDIDATES  # on by default (item 31)


def test_search_settings_are_checked_and_survive_pipeline_json(tmp_path):
    for bad in ((0.02,), (-0.03, 0.0)):  # what lies 2 cm behind the photo must stay behind
        with pytest.raises(ConfigError, match="photo_recede_search"):
            FaithfulConfig(photo_recede_search=bad)
    with pytest.raises(ConfigError, match="photo_recede_search"):
        PipelineConfig(photo_recede_search="0.01")
    cfg = PipelineConfig().replace(photo_recede_search=[0, 0.005])
    assert cfg.photo_recede_search == (0.0, 0.005)
    path = cfg.write(tmp_path / "pipeline.json")
    assert json.loads(path.read_text())["photo_recede_search"] == [0.0, 0.005]
    back = PipelineConfig.read(path)
    assert back == cfg and back.faithful_config().photo_recede_search == (0.0, 0.005)
    for bad in (4, 128.0, True):
        with pytest.raises(ConfigError, match="photo_recede_search_resolution"):
            PipelineConfig(photo_recede_search_resolution=bad).faithful_config()
    cfg = PipelineConfig().replace(photo_recede_search_resolution=96)
    back = PipelineConfig.read(cfg.write(tmp_path / "coarse.json"))
    assert back.faithful_config().photo_recede_search_resolution == 96


def _picture(g: Gaussians, cam) -> torch.Tensor:
    from humansplat.render import render_gaussians

    return render_gaussians(g, cam.viewmats, cam.Ks, cam.width, cam.height)[0][0]


def test_into_silhouettes_brings_what_stands_out_of_the_profile_back_to_the_body():
    """The photo's sheet is the model's slab, but its top rows sit 8 cm in front of it (a
    hand whose coarse depth was wrong): from the side they stand out of the slab's profile.
    Moved along the photo camera's rays into the model's side silhouettes, they lie at the
    slab's profile again, every other Gaussian stays, and the photo's camera sees the same
    picture."""
    cam = orbit_cameras([0.0], 0.0, RADIUS, width=64, height=64)
    centre = camera_centers(cam.viewmats.float())[0]
    model = _slab()
    # coloured by height alone: the two layers' order at the photo's camera may change
    model = replace(model, colors=torch.stack([0.5 + 0.8 * model.means[:, 1],
                                               0.2 + 0 * model.means[:, 1],
                                               torch.full((len(model),), 0.3)], -1))
    top = model.means[:, 1] > 0.45
    wrong = recede(model, centre, torch.where(top, -0.08, 0.0))
    # ~7 mm a pixel (a model's 128 px views of a person: ~16 mm)
    sides = orbit_cameras([90.0, 270.0], 0.0, RADIUS, width=256, height=256)
    fixed, moved = into_silhouettes(wrong, model, sides, centre, reach=0.1)
    assert bool((moved[top] >= 0.015).all()) and bool((moved[~top] == 0).all())
    # to the nearest depth inside: the profile's edge (the slab +-1.5 cm, its Gaussians'
    # tails 2-3 cm more at alpha 0.3), from 6.5-9.5 cm out
    assert float(wrong.means[top, 2].abs().min()) > 0.06
    assert float(fixed.means[top, 2].abs().max()) < 0.05
    assert torch.equal(fixed.means[~top], wrong.means[~top])
    before, after = _picture(wrong, cam), _picture(fixed, cam)
    # the same picture: only the depth order of neighbouring rows changes (height colours)
    assert float((before - after).abs().max()) < 5e-3
    assert float((before - after).abs().mean()) < 1e-4
    # the profile itself: the side view's render of the fixed sheet is nearer the model's
    # (the rows sit at its edge, not in it: half the error gone)
    side = sides[0:1]
    err = lambda g: float((_picture(g, side) - _picture(model, side)).abs().mean())  # noqa: E731
    assert err(fixed) < 0.6 * err(wrong)


def test_into_silhouettes_leaves_what_it_cannot_place_and_needs_side_views():
    """A Gaussian no depth within ``reach`` brings inside stays where it was; with no side
    views, or ``reach`` 0, nothing moves (and nothing is rendered)."""
    cam = orbit_cameras([0.0], 0.0, RADIUS, width=64, height=64)
    centre = camera_centers(cam.viewmats.float())[0]
    model = _slab()
    far = recede(model, centre, -0.3)  # 30 cm in front: beyond a 10 cm reach
    sides = orbit_cameras([90.0], 0.0, RADIUS, width=256, height=256)
    out, moved = into_silhouettes(far, model, sides, centre, reach=0.1)
    assert bool((moved == 0).all()) and torch.equal(out.means, far.means)
    out, moved = into_silhouettes(far, model, sides, centre, reach=0.4)
    assert bool((moved > 0.2).all())  # to the profile's edge: 23-28 cm
    for kw in ({"cams": sides[:0]}, {"cams": sides, "reach": 0.0}):
        cams = kw.pop("cams")
        out, moved = into_silhouettes(far, model, cams, centre, **kw)
        assert out is far and not bool(moved.any())


def test_recede_per_gaussian():
    cam = orbit_cameras([0.0], 0.0, RADIUS, width=64, height=64)
    centre = camera_centers(cam.viewmats.float())[0]
    g = _slab(4)
    m = torch.linspace(-0.02, 0.02, len(g))
    d0 = (g.means - centre).norm(dim=-1)
    d1 = (recede(g, centre, m).means - centre).norm(dim=-1)
    assert torch.allclose(d1 - d0, m, atol=1e-5)
    assert recede(g, centre, torch.zeros(len(g))) is g
    with pytest.raises(ValueError, match="recedes for"):
        recede(g, centre, torch.zeros(3))


def test_into_silhouettes_in_make_faithful_and_its_settings(tmp_path):
    """On by default (item 40): make_faithful records the side views it checked against and
    how many photo Gaussians moved, and moves only the photo's; ``hull_reach`` 0 turns it
    off; bad settings are refused, and pipeline.json carries them."""
    from test_refine import recede_pair

    assert FaithfulConfig().hull_reach == 0.05 and FaithfulConfig().hull_alpha == 0.3
    _, a, b, n, da, db = recede_pair(hull_reach=0.1)
    assert "into_silhouettes" not in a.info  # recede_pair's base has it off
    info = b.info["into_silhouettes"]
    assert info["views"] == [1]  # the toy model's views: 0, 90 and 180 degrees
    assert info["moved"] == int(((db - da).abs() > 1e-6).sum())
    assert torch.equal(a.gaussians.means[n:], b.gaussians.means[n:])
    for bad in ({"hull_reach": -0.01}, {"hull_reach": 2.0}, {"hull_alpha": 0.0},
                {"hull_alpha": 1.0}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            FaithfulConfig(**bad)
        with pytest.raises(ConfigError, match=next(iter(bad))):
            PipelineConfig(**bad).faithful_config()
    cfg = PipelineConfig().replace(hull_reach=0.05, hull_alpha=0.5)
    back = PipelineConfig.read(cfg.write(tmp_path / "pipeline.json"))
    fc = back.faithful_config()
    assert (fc.hull_reach, fc.hull_alpha) == (0.05, 0.5)


def test_the_sheet_moves_before_anything_is_placed_behind_it(monkeypatch):
    """make_faithful moves the photo's Gaussians into the side silhouettes before it carves
    and places the other Gaussians behind the photo's surface, so those follow the moved
    surface and the photo's camera sees the same picture. (Moved after them, a Gaussian
    moved back went behind the model's kept ones: a portrait's re-render lost 2.7 dB.)
    Here every photo Gaussian is moved 5 cm back, further than the 2 cm the others keep."""
    from humansplat.refine import make_faithful, sheet_depth
    from test_refine import _model_like, _render, _toy_evidence

    def back_5cm(photo, model, cams, centre, **kw):
        m = torch.full((len(photo),), 0.05)
        return recede(photo, centre, m), m

    ev = _toy_evidence()
    g, cams = _model_like(ev)
    cfg = FaithfulConfig(resolution=64, refine_seconds=0, deblur_passes=0,
                         photo_recede_search=(), hull_reach=0.0)
    off = make_faithful(g, grid=16, view_cameras=cams, evidence=ev, config=cfg)
    monkeypatch.setattr(sheet_depth, "into_silhouettes", back_5cm)
    on = make_faithful(g, grid=16, view_cameras=cams, evidence=ev,
                       config=replace(cfg, hull_reach=0.1))
    n = on.info["photo_gaussians"]
    assert on.info["into_silhouettes"]["moved"] == n
    ia, _ = _render(off.gaussians, ev.camera, 96)
    ib, _ = _render(on.gaussians, ev.camera, 96)
    # 0.0008 (moved after the others were placed: 0.0077)
    assert float((ia - ib).abs().mean()) < 2e-3
    # the others did follow: none lies in front of the moved surface where it shows
    c = camera_centers(ev.camera.viewmats.float())[0]
    d_photo = float((on.gaussians.means[:n] - c).norm(dim=-1).min())
    assert d_photo > float((off.gaussians.means[:n] - c).norm(dim=-1).min()) + 0.045


def test_the_depth_search_sees_the_sheet_moved_into_the_side_silhouettes(monkeypatch):
    """A photo finer than ``photo_recede_search_resolution``: the search rebuilds a coarser
    sheet, and that sheet gets the same moves into the side silhouettes as the photo's own
    (item 41; before, the search judged depths for a sheet that still stood out of the
    profile where the shipped one no longer did). Here the moves are every Gaussian 3 cm
    back, so the search's sheet must lie 3 cm deeper than without them. The model's views
    are rendered once for both steps, with the same silhouettes."""
    from humansplat.refine import make_faithful, sheet_depth
    from test_refine import _model_like, _toy_evidence

    ev = _toy_evidence()
    g, cams = _model_like(ev)
    centre = camera_centers(ev.camera.viewmats.float())[0]
    seen = {"renders": 0, "alphas": []}
    real_render, real_choose = sheet_depth.render_at, sheet_depth.choose_recede

    def count_renders(splat, *a, **kw):
        seen["renders"] += len(splat) == len(g)  # the model's, not a candidate's
        return real_render(splat, *a, **kw)

    def back_3cm(photo, model, cams, centre, **kw):
        seen["alphas"].append(kw["alphas"])
        m = torch.full((len(photo),), 0.03)
        return recede(photo, centre, m), m

    def choose(splat_at, *a, **kw):
        seen["sheet"] = splat_at(0.0)
        return real_choose(splat_at, *a, **kw)

    monkeypatch.setattr(sheet_depth, "render_at", count_renders)
    monkeypatch.setattr(sheet_depth, "choose_recede", choose)

    def search_sheet_distance(reach: float) -> torch.Tensor:
        cfg = FaithfulConfig(resolution=64, refine_seconds=0, deblur_passes=0,
                             photo_recede_search=CANDIDATES, photo_recede_search_resolution=32,
                             hull_reach=reach)
        seen["renders"], seen["alphas"] = 0, []
        res = make_faithful(g, grid=16, view_cameras=cams, evidence=ev, config=cfg)
        assert seen["renders"] == 1  # one render of the model's views for both steps
        k = res.info["photo_recede_search"]["sheet_gaussians"]
        assert k < res.info["photo_gaussians"]  # rebuilt coarser
        return (seen["sheet"].means[:k] - centre).norm(dim=-1)

    off = search_sheet_distance(0.0)
    monkeypatch.setattr(sheet_depth, "into_silhouettes", back_3cm)
    on = search_sheet_distance(0.05)
    assert torch.allclose(on - off, torch.full_like(on, 0.03), atol=1e-5)
    assert len(seen["alphas"]) == 2 and torch.equal(*seen["alphas"])
