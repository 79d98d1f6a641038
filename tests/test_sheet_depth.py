"""humansplat.refine.sheet_depth: the photo's sheet placed at the depth the model's other views
saw, checked on a scene whose right answer is known by construction."""

from __future__ import annotations

import json

import pytest
import torch

from humansplat.cameras import camera_centers, orbit_cameras
from humansplat.errors import ConfigError
from humansplat.gaussians import Gaussians
from humansplat.pipeline import PipelineConfig
from humansplat.refine import FaithfulConfig
from humansplat.refine.coverage import recede
from humansplat.refine.sheet_depth import choose_recede

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
