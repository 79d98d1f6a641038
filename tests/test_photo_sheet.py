"""Training on the shipped splat (train.photo_sheet): the photo's pixels replace the input
view, the other views are carved as the app carves them, and the model still gets the
gradient of its input-view depth."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from humansplat.cameras import Cameras, camera_centers, project_points
from humansplat.config import get_preset
from humansplat.errors import ConfigError
from humansplat.model import LatentReconstructionTransformer
from humansplat.train.config import TrainConfig
from humansplat.train.photo_sheet import input_camera_views, with_photo_sheet
from humansplat.train.step import collate_samples, model_kwargs, render_views
from toy_humans import ToyHumans

MICRO = {"body_anchor": True, "color_skip": True}


@pytest.fixture(scope="module")
def setup():
    cfg = get_preset("micro", **MICRO)
    torch.manual_seed(0)
    model = LatentReconstructionTransformer(cfg).eval()
    batch = collate_samples([ToyHumans(cfg, n=1)[0]])
    out = model(**model_kwargs(batch))
    return cfg, batch, out


def test_the_sheet_carries_the_photo_at_its_camera(setup):
    cfg, batch, out = setup
    S = cfg.image_size
    vm, K = batch["viewmats"][:, :1], batch["Ks"][:, :1]
    photo = batch["input_image"][:, None]
    inside = batch["input_mask"][0, 0] > 0.9
    black = replace(out, colors=torch.zeros_like(out.colors))  # every model colour wrong

    def err(o, sheet=True):
        with torch.no_grad():
            r = render_views(with_photo_sheet(o, batch, resolution=S) if sheet else o, vm, K, S,
                             with_parts=False).rgb
        return float(((r - photo)[0, 0][:, inside] ** 2).mean())

    # the model's own Gaussians are hidden behind the photo's (black or not, the same
    # render: the photo, blurred by the model's grid, half the photo's size here)
    assert err(black, sheet=False) > 0.1
    assert err(black) < 0.006 and abs(err(black) - err(out)) < 0.001


def test_other_views_are_carved_as_the_app_carves_them(setup):
    cfg, batch, out = setup
    per, R = out.grid ** 2, cfg.image_size
    sheet = with_photo_sheet(out, batch, resolution=R, carve=0.02)
    n = len(out)
    front = input_camera_views(batch["viewmats"][0], out.view_ids)
    assert front == [0, 1]  # the photo and the generated view at its camera
    cam = Cameras(batch["viewmats"][0, :1], batch["Ks"][0, :1], R, R)
    uv, z = project_points(sheet.means[0, :n].detach(), cam.viewmats, cam.Ks)
    uv, z = uv[0], z[0]
    mask = batch["input_mask"][0, 0]  # the photo is the views' size here
    iu, iv = uv[:, 0].floor().long().clamp(0, R - 1), uv[:, 1].floor().long().clamp(0, R - 1)
    on = (uv >= 0).all(-1) & (uv < R).all(-1) & (mask[iv, iu] >= 0.5)
    surf = project_points(sheet.means[0, n:].detach(), cam.viewmats, cam.Ks)[1][0]
    behind = z >= surf[iv * R + iu] + 0.02 - 1e-5
    kept = sheet.opacities[0, :n] > 0
    others = torch.ones(n, dtype=torch.bool)
    others[:2 * per] = False
    assert kept.any() and (~kept).any()
    # kept: on the photo's silhouette, and (another view's) behind what the photo shows
    assert bool((on | ~kept).all())
    assert bool((behind | ~(kept & others)).all())
    # and everything that qualifies is kept, untouched
    qual = on & (behind | ~others)
    torch.testing.assert_close(sheet.opacities[0, :n][qual], out.opacities[0][qual])
    # the input camera's own views moved back along their rays to 2 cm behind the deepest
    # surface the sheet shows within 2 pixels; the others not at all
    d = (sheet.means[0, :n] - out.means[0]).detach()
    assert float(d[2 * per:].abs().max()) == 0.0
    _, z0 = project_points(out.means[0].detach(), cam.viewmats, cam.Ks)
    assert bool((z[:2 * per] >= z0[0, :2 * per] - 1e-5).all())
    solid = mask >= 0.7
    deep = torch.where(solid, surf.reshape(R, R), torch.tensor(-1e9))
    deep = torch.nn.functional.max_pool2d(deep[None, None], 5, 1, 2)[0, 0]
    under = on[:2 * per] & (deep[iv, iu][:2 * per] > 0)
    assert under.sum() > 10
    assert bool((z[:2 * per][under] >= deep[iv, iu][:2 * per][under] + 0.02 - 1e-4).all())
    F = torch.nn.functional
    ray = F.normalize(out.means[0, :2 * per].detach() - cam_centre(cam), dim=-1)
    moved = d[:2 * per].norm(dim=-1) > 1e-4
    assert moved.any()
    torch.testing.assert_close(F.normalize(d[:2 * per], dim=-1)[moved], ray[moved], atol=1e-3,
                               rtol=0)
    # the sheet: one Gaussian per photo pixel on its ray, opaque where the mask is solid
    assert sheet.means.shape[1] == n + R * R
    torch.testing.assert_close(project_points(sheet.means[0, n:].detach(), cam.viewmats,
                                              cam.Ks)[0][0].floor() + 0.5,
                               project_points(sheet.means[0, n:].detach(), cam.viewmats,
                                              cam.Ks)[0][0], atol=1e-3, rtol=0)
    o = sheet.opacities[0, n:].reshape(R, R)
    assert bool((o[mask >= 0.7] > 0.69).all()) and bool((o[mask < 0.7] == 0).all())


def cam_centre(cam):
    return camera_centers(cam.viewmats)[0]


def test_the_model_learns_where_to_put_the_sheet(setup):
    cfg, batch, _ = setup
    torch.manual_seed(0)
    model = LatentReconstructionTransformer(cfg).train()
    out = model(**model_kwargs(batch))
    out.means.retain_grad()
    side = render_views(with_photo_sheet(out, batch, resolution=32),
                        batch["target_viewmats"][:, 2:3], batch["target_Ks"][:, 2:3], 32,
                        with_parts=False)
    ((side.rgb - batch["target_rgb"][:, 2:3]) ** 2).mean().backward()
    per = out.grid ** 2
    # the sheet lies on the input view's Gaussians: seen from the side, their depth gets
    # the gradient
    assert float(out.means.grad[0, :per].abs().sum()) > 0


def test_photo_sheet_settings_are_checked():
    for bad in ({"photo_sheet": 1.5}, {"photo_sheet": -0.1}, {"photo_sheet_push": -0.01}):
        with pytest.raises(ConfigError, match="photo_sheet"):
            TrainConfig.from_dict({"loss": bad})
    assert TrainConfig.from_dict({"loss": {"photo_sheet": 0.75}}).loss.photo_sheet == 0.75
