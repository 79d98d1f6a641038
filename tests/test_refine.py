"""humansplat.refine: the splat made faithful to the photo, checked against independent
references (the photo itself, a step edge, a cut photo's frame), without a checkpoint."""

from __future__ import annotations

import math

import pytest
import torch

from humansplat.cameras import orbit_cameras
from humansplat.errors import ConfigError
from humansplat.eval.metrics import psnr as psnr_metric
from humansplat.gaussians import Gaussians
from humansplat.pipeline import PipelineConfig
from humansplat.refine import (FaithfulConfig, PhotoEvidence, carve_by_mask, frame_mask,
                               input_view_ids, make_faithful, opacity_beyond_frame,
                               refine_to_photo, upsample_mask)
from humansplat.refine.depth import joint_bilateral_upsample, push_pull_fill
from humansplat.refine.input_view import photo_gaussians
from humansplat.render import rasterize

S = 96  # crop size of the toy photo
RADIUS = 2.6


def _toy_evidence(cut_row: int | None = None) -> PhotoEvidence:
    """A person-like shape (ellipse body + head) with a smooth random texture, seen by the
    orbit camera at azimuth 0; with ``cut_row`` the photo ends at that crop row."""
    g = torch.Generator().manual_seed(0)
    v, u = torch.meshgrid(torch.arange(S) + 0.5, torch.arange(S) + 0.5, indexing="ij")
    body = ((u - S / 2) / (0.18 * S)) ** 2 + ((v - 0.58 * S) / (0.36 * S)) ** 2 <= 1
    head = ((u - S / 2) ** 2 + (v - 0.17 * S) ** 2) <= (0.09 * S) ** 2
    mask = (body | head).float()
    tex = torch.nn.functional.interpolate(torch.rand(1, 3, 12, 12, generator=g), size=(S, S),
                                          mode="bicubic", align_corners=False)[0].clamp(0, 1)
    cam = orbit_cameras([0.0], 0.0, RADIUS, width=S, height=S)
    frame = torch.ones(S, S, dtype=torch.bool)
    if cut_row is not None:
        frame[cut_row:] = False
        mask = mask * frame
    comp = tex * mask + (1 - mask)
    return PhotoEvidence(image=tex, composite=comp, mask=mask, camera=cam, frame=frame)


def _render(g: Gaussians, cam, size: int):
    c = cam.resized(size, size)
    img, alpha, _ = rasterize(g.means, g.quats, g.scales, g.opacities,
                              g.rgb if g.sh is None else g.sh, c.viewmats, c.Ks, size, size,
                              backgrounds=torch.ones(1, 3), sh_degree=g.sh_degree)
    return img[0], alpha[0, ..., 0]


def _model_like(ev: PhotoEvidence, grid: int = 16, n_views: int = 3,
                full_body: bool = True) -> tuple[Gaussians, object]:
    """Gaussians in a model's layout: view 0 at the input camera (a flat surface at the
    body's depth, coarse), views 1.. around it (a blob spanning the whole body height, as a
    model's guess of a full body would), plus their cameras."""
    from humansplat.cameras import Cameras, pixel_rays

    cams_o = orbit_cameras([0.0, 90.0, 180.0][:n_views], 0.0, RADIUS, width=grid, height=grid)
    cams = Cameras(cams_o.viewmats, cams_o.Ks, grid, grid)
    o, d = pixel_rays(cams.viewmats, cams.Ks, grid, grid)
    means = (o + RADIUS * d).reshape(-1, 3)
    n = len(means)
    per = grid * grid
    m_lo = torch.nn.functional.interpolate(ev.mask[None, None], size=(grid, grid),
                                           mode="area")[0, 0].reshape(-1)
    op = torch.full((n,), 0.9)
    op[:per] = m_lo.clamp(0.01, 0.95)
    if not full_body:
        op[per:] = 0.9
    q = torch.zeros(n, 4)
    q[:, 0] = 1
    g = Gaussians(means=means, quats=q, scales=torch.full((n, 3), 0.02), opacities=op,
                  colors=torch.full((n, 3), 0.5))
    return g, cams


# -- depth ------------------------------------------------------------------------------

def test_push_pull_fills_holes_from_trusted_neighbours():
    d = torch.zeros(1, 16, 16)
    w = torch.zeros(16, 16)
    d[0, :, :8], w[:, :8] = 2.0, 1.0  # left half trusted at 2 m, right half unknown
    out = push_pull_fill(d, w)[0]
    assert torch.allclose(out[:, :8], torch.full((16, 8), 2.0))
    assert torch.allclose(out[:, 8:], torch.full((16, 8), 2.0), atol=1e-5)


def test_joint_bilateral_keeps_the_photo_edge_that_bilinear_smears():
    """A step in depth at the same place as a step in the photo: the edge-aware upsample
    keeps both sides exact where bilinear blends them over several pixels."""
    h, H = 8, 64
    lo = torch.full((h, h), 2.0)
    lo[:, 4:] = 3.0
    guide = torch.zeros(3, H, H)
    guide[:, :, 32:] = 1.0
    up = joint_bilateral_upsample(lo, torch.ones(h, h), guide)
    bil = torch.nn.functional.interpolate(lo[None, None], size=(H, H), mode="bilinear",
                                          align_corners=False)[0, 0]
    err = (up - torch.where(guide[0] > 0.5, 3.0, 2.0)).abs()
    err_bil = (bil - torch.where(guide[0] > 0.5, 3.0, 2.0)).abs()
    assert float(err.max()) < 0.02
    assert float(err_bil.max()) > 0.3


def test_joint_bilateral_split_puts_every_pixel_on_one_surface():
    """A step in depth the photo does not show (a dark object over a dark coat): the
    average floats a ramp of pixels between the two surfaces; with ``split`` each pixel
    (where allowed) takes one of them, while a gentle slope, whose depths spread less,
    stays the average."""
    h, H = 8, 64
    lo = torch.full((h, h), 2.0)
    lo[:, 4:] = 2.4
    guide = torch.zeros(3, H, H)  # no edge to follow
    ramp = joint_bilateral_upsample(lo, torch.ones(h, h), guide)
    between = (ramp > 2.02) & (ramp < 2.38)
    assert int(between.sum()) >= 4 * H  # rows of floating pixels
    snapped = joint_bilateral_upsample(lo, torch.ones(h, h), guide, split=0.03)
    on_one = ((snapped - 2.0).abs() < 1e-5) | ((snapped - 2.4).abs() < 1e-5)
    assert bool(on_one.all())
    # each side keeps its own surface: the left half near 2.0, the right near 2.4
    assert bool(((snapped[:, : H // 2 - 4] - 2.0).abs() < 1e-5).all())
    assert bool(((snapped[:, H // 2 + 4:] - 2.4).abs() < 1e-5).all())
    # only where allowed (off the clothed body, in the pipeline): elsewhere the average
    left = torch.zeros(H, H, dtype=torch.bool)
    left[:, : H // 2] = True
    part = joint_bilateral_upsample(lo, torch.ones(h, h), guide, split=0.03, split_where=left)
    assert torch.equal(part[:, : H // 2], snapped[:, : H // 2])
    assert torch.equal(part[:, H // 2:], ramp[:, H // 2:])
    slope = torch.linspace(2.0, 2.07, h)[None].expand(h, h).contiguous()  # 1 cm a cell
    assert torch.equal(joint_bilateral_upsample(slope, torch.ones(h, h), guide, split=0.03),
                       joint_bilateral_upsample(slope, torch.ones(h, h), guide))
    with pytest.raises(ConfigError, match="depth_split"):
        FaithfulConfig(depth_split=0.0)


# -- the input view at the photo's resolution -------------------------------------------

def test_photo_gaussians_split_the_depth_only_off_the_body():
    """``depth_split`` in the photo's sheet: where the body's surface (``normals``) covers a
    pixel the upsampled average stays (the body band answers there); off it, each pixel of a
    depth step lies on one of the two surfaces."""
    ev = _toy_evidence()
    lo = torch.full((8, 8), RADIUS)
    lo[4:] = RADIUS + 0.4  # the lower half 40 cm further: a step across every column

    def normals(cam):  # the body covers the left half of the crop
        n = torch.zeros(cam.height, cam.width, 3)
        n[:, : cam.width // 2, 2] = 1.0
        return n

    pg = photo_gaussians(ev, lo, torch.ones(8, 8), resolution=S, normals=normals,
                         depth_split=0.05)
    z = pg.depth
    # more than 1 cm from both surfaces (a pixel whose cells spread less than the split
    # keeps its average, within a few mm of the surface that outweighs the other)
    between = ((z - RADIUS).abs() > 0.01) & ((z - RADIUS - 0.4).abs() > 0.01)
    assert int(between[:, : S // 2].sum()) >= S // 2  # the ramp stays on the body
    assert not bool(between[:, S // 2:].any())  # off it, none between the surfaces
    plain = photo_gaussians(ev, lo, torch.ones(8, 8), resolution=S, normals=normals)
    assert torch.equal(plain.depth[:, : S // 2], z[:, : S // 2])



def test_photo_gaussians_rerender_the_photo_at_its_camera():
    """One Gaussian per pixel, colour from the photo, opacity from the mask: rendered at the
    photo's own camera they give the photo back (PSNR inside the mask, IoU)."""
    ev = _toy_evidence()
    pg = photo_gaussians(ev, torch.full((8, 8), RADIUS), torch.ones(8, 8), resolution=S)
    img, alpha = _render(pg.gaussians, ev.camera, S)
    inside = ev.mask > 0.5
    psnr = float(psnr_metric(img.permute(2, 0, 1)[None], ev.composite[None],
                             inside.float()[None]))
    sil = alpha > 0.5
    iou = float((sil & inside).sum() / (sil | inside).sum())
    assert psnr > 27.0, psnr
    assert iou > 0.9, iou  # a 96 px toy: a one-pixel rim is ~4 % of its area
    assert len(pg.gaussians) == int((ev.mask >= 0.02).sum())
    # every Gaussian lies on its pixel's ray at the given depth
    z = pg.gaussians.means @ ev.camera.viewmats[0, 2, :3] + ev.camera.viewmats[0, 2, 3]
    torch.testing.assert_close(z, torch.full_like(z, RADIUS), atol=1e-4, rtol=0)


def test_density_follows_the_resolution_setting():
    ev = _toy_evidence()
    n = [len(photo_gaussians(ev, torch.full((8, 8), RADIUS), torch.ones(8, 8),
                             resolution=r).gaussians) for r in (48, 96)]
    assert 3.0 < n[1] / n[0] < 4.5  # ~ area ratio 4; the soft rim counts at both


# -- carving and cut edges ---------------------------------------------------------------

def test_frame_mask_of_a_crop_beyond_the_photo():
    # a 100 px photo (width and height), crop box reaching 50 px below its bottom edge
    f = frame_mask(150, (0.0, 0.0, 150.0, 150.0), 1.0, (100, 100))
    assert bool(f[:100, :100].all()) and not bool(f[100:].any()) and not bool(f[:, 100:].any())


def test_evidence_of_a_cut_photo_reaches_its_edge_in_colour_and_mask():
    """A 100 px photo of one colour, the person its columns 20-80 down to its bottom edge,
    cropped in a 150 px box reaching 50 px below it, segmented at 50 px (area resampling
    fades the mask's last row to 1/3, as the pipeline's small crop does) and re-sampled at
    115 px (its last row straddles the edge). The last row inside the photo is the person,
    in the photo's own colour; the background beside it and everything beyond the edge
    keep the upsampled mask."""
    from types import SimpleNamespace

    from humansplat.refine import extend_to_cut_edge

    import numpy as np
    photo = np.zeros((100, 100, 3), np.uint8)
    photo[:] = (180, 40, 60)
    canvas = torch.zeros(150, 150)
    canvas[:100, 20:80] = 1
    small = torch.nn.functional.interpolate(canvas[None, None], size=(50, 50), mode="area")[0, 0]
    assert float(small[33, 15]) == pytest.approx(1 / 3, abs=1e-6)
    pre = SimpleNamespace(size=50, crop_box=(0.0, 0.0, 150.0, 150.0), original_size=(100, 100),
                          mask=small.numpy(), rgb_raw=np.zeros((50, 50, 3), np.uint8))
    ev = PhotoEvidence.from_preprocessed(pre, orbit_cameras([0.0], 0.0, RADIUS, width=50,
                                                            height=50),
                                         photo=photo, max_size=115)
    last = int(torch.nonzero(ev.frame.any(1)).max())
    assert ev.size == 115 and last == 76  # its pixel straddles the edge
    plain = upsample_mask(small, 115)
    assert float(plain[last, 24:56].max()) < 0.9  # what the fade would have left
    assert bool((ev.mask[last, 24:56] > 0.99).all())
    want = torch.tensor([180, 40, 60]) / 255.0
    assert torch.allclose(ev.composite[:, last, 24:56], want[:, None], atol=0.01)
    assert torch.allclose(ev.image[:, last], want[:, None], atol=1 / 255)  # no white blended
    assert torch.equal(ev.mask[:, :10], plain[:, :10])  # background at the edge: unchanged
    assert torch.equal(ev.mask[~ev.frame], plain[~ev.frame])
    full = torch.ones(115, 115, dtype=torch.bool)
    assert torch.equal(extend_to_cut_edge(plain, full, 6), plain)  # no edge: nothing to do


def test_carving_drops_what_the_photo_shows_as_background():
    ev = _toy_evidence()
    cam = ev.camera
    from humansplat.cameras import pixel_rays

    o, d = pixel_rays(cam.viewmats, cam.Ks, S, S)
    pts = (o + RADIUS * d)[0]  # [S,S,3] on each pixel's ray
    g = Gaussians(means=pts.reshape(-1, 3), quats=torch.tensor([[1.0, 0, 0, 0]]).expand(S * S, 4),
                  scales=torch.full((S * S, 3), 0.01), opacities=torch.full((S * S,), 0.9),
                  colors=torch.full((S * S, 3), 0.5))
    keep = carve_by_mask(g, ev, grow_px=0)
    assert torch.equal(keep, (ev.mask > 0.5).reshape(-1))
    # free space: the photo's surface at 2.6 m; a Gaussian 0.2 m in front of it is carved
    front = g[(ev.mask > 0.5).reshape(-1)]
    front.means = front.means + 0.2 * torch.nn.functional.normalize(
        cam.centers[0] - front.means, dim=-1)
    keep = carve_by_mask(front, ev, surface=torch.full((S, S), RADIUS))
    assert not bool(keep.any())


@pytest.mark.parametrize("mode", ["cut", "complete"])
def test_cut_photo_keeps_nothing_beyond_its_edge(mode):
    """A photo cut at 60 % of the person's height and a model that guesses a whole body:
    by default under 2 % of the splat's opacity projects beyond the photo's edge; the
    "complete" option keeps the guess."""
    ev = _toy_evidence(cut_row=int(0.6 * S))
    g, cams = _model_like(ev)
    res = make_faithful(g, grid=16, view_cameras=cams, evidence=ev,
                        config=FaithfulConfig(resolution=S, refine_seconds=0,
                                              beyond_edge=mode))
    frac = opacity_beyond_frame(res.gaussians, ev)
    assert res.info["opacity_beyond_frame"] == pytest.approx(frac)
    if mode == "cut":
        assert frac < 0.02, frac
    else:
        assert frac > 0.05, frac
    assert res.info["model_views_replaced"] == [0]


def test_make_faithful_replaces_the_input_view_and_keeps_the_others():
    ev = _toy_evidence()
    g, cams = _model_like(ev)
    res = make_faithful(g, grid=16, view_cameras=cams, evidence=ev,
                        config=FaithfulConfig(resolution=64, refine_seconds=0,
                                              keep_input_view=False))
    n_photo = res.info["photo_gaussians"]
    assert n_photo == int((torch.nn.functional.interpolate(
        ev.mask[None, None], size=(64, 64), mode="bilinear", antialias=True)[0, 0]
        >= 0.02).sum())
    assert len(res.gaussians) == n_photo + 2 * 256 - res.info["gaussians_carved"]
    assert input_view_ids(cams, ev.camera) == [0]
    assert res.info["model_input_view_kept"] == 0


def test_make_faithful_keeps_the_models_input_view_where_it_cannot_show_through():
    """By default the model's own input-view Gaussians stay (its side views lean on them),
    but only those 3 sigmas inside the photo's solid mask and at least
    ``input_view_behind`` behind its surface: the input camera sees the same picture."""
    from dataclasses import replace

    ev = _toy_evidence()
    g, cams = _model_like(ev)
    cfg = FaithfulConfig(resolution=64, refine_seconds=0, deblur_passes=0)
    kept = make_faithful(g, grid=16, view_cameras=cams, evidence=ev, config=cfg)
    gone = make_faithful(g, grid=16, view_cameras=cams, evidence=ev,
                         config=replace(cfg, keep_input_view=False))
    n = kept.info["model_input_view_kept"]
    assert 0 < n < 256 and len(kept.gaussians) - len(gone.gaussians) == n
    front = kept.gaussians[-n:]  # they come last
    uv, z = ev.project(front.means)
    sigma_px = front.scales.max(-1).values * ev.camera.Ks[0, 0, 0] / z
    solid = ev.mask >= 0.9
    yy, xx = torch.meshgrid(torch.arange(S), torch.arange(S), indexing="ij")
    for (u, v), r in zip(uv.floor().long().tolist(), (3 * sigma_px).tolist()):
        disc = (xx - u) ** 2 + (yy - v) ** 2 <= r * r
        assert bool(solid[disc].all())
    photo = kept.gaussians[:kept.info["photo_gaussians"]]
    uv_p, z_p = ev.project(photo.means)
    R = 64  # the photo Gaussians' grid: one per pixel, on its centre
    surface = torch.full((R, R), float("nan"))
    cell_p = (uv_p * R / S).floor().long().clamp(0, R - 1)
    surface[cell_p[:, 1], cell_p[:, 0]] = z_p
    cell = (uv * R / S).floor().long().clamp(0, R - 1)
    under = surface[cell[:, 1], cell[:, 0]]
    assert bool(torch.isfinite(under).all())  # wholly inside: the photo is there
    assert bool((z >= under + cfg.input_view_behind - 1e-4).all())
    a, _ = _render(kept.gaussians, ev.camera, 64)
    b, _ = _render(gone.gaussians, ev.camera, 64)
    assert float((a - b).abs().mean()) < 0.01


# -- test-time refinement ----------------------------------------------------------------

def test_refinement_lowers_the_photo_loss_within_its_budget():
    ev = _toy_evidence()
    pg = photo_gaussians(ev, torch.full((8, 8), RADIUS), torch.ones(8, 8), resolution=48)
    g, cams = _model_like(ev)
    others = g[256:]
    budget = 20.0
    r = refine_to_photo(pg.gaussians, others, ev, seconds=budget, max_steps=8,
                        reg_cameras=cams[torch.tensor([1, 2])], backend="torch")
    assert r.steps == 8 and len(r.history) == 8
    assert r.loss_after < 0.85 * r.loss_before, (r.loss_before, r.loss_after)
    assert all(b < a for a, b in zip(r.history, r.history[1:])), r.history
    assert r.seconds < budget + 5
    assert len(r.photo) == len(pg.gaussians) and len(r.others) == len(others)
    # a budget too small for one step leaves the splat as it was
    r0 = refine_to_photo(pg.gaussians, others, ev, seconds=0.0, max_steps=8)
    assert r0.steps == 0
    torch.testing.assert_close(r0.photo.colors, pg.gaussians.colors, atol=1e-3, rtol=0)


def test_refinement_gsplat_path():
    """backend="gsplat": runs on CUDA (the loss falls there too); on a CPU it is refused
    with a clear message instead of silently using another renderer."""
    ev = _toy_evidence()
    pg = photo_gaussians(ev, torch.full((8, 8), RADIUS), torch.ones(8, 8), resolution=48)
    g, _ = _model_like(ev)
    from humansplat.render import gsplat_available

    if not gsplat_available():
        with pytest.raises(ValueError, match="gsplat"):
            refine_to_photo(pg.gaussians, g[256:], ev, seconds=10, max_steps=2,
                            backend="gsplat", device="cpu")
        pytest.skip("no CUDA GPU with gsplat kernels: the gsplat refinement runs on a GPU only")
    r = refine_to_photo(pg.gaussians, g[256:], ev, seconds=30, max_steps=10,
                        backend="gsplat", device="cuda")
    assert r.backend == "gsplat" and r.steps == 10 and r.loss_after < r.loss_before


# -- settings ----------------------------------------------------------------------------

def test_pipeline_settings_validate():
    cfg = PipelineConfig()
    assert cfg.faithful and cfg.input_resolution >= 256
    fc = cfg.faithful_config()
    assert fc.resolution == cfg.input_resolution and fc.beyond_edge == "cut"
    with pytest.raises(ConfigError, match="beyond_edge"):
        PipelineConfig(beyond_edge="legs")
    with pytest.raises(ConfigError, match="resolution"):
        PipelineConfig(input_resolution=4)
    with pytest.raises(ConfigError, match="refine_seconds"):
        PipelineConfig(refine_seconds=-1)
    with pytest.raises(ConfigError, match="refine"):
        PipelineConfig(refine="sometimes")
    with pytest.raises(ConfigError, match="deblur_interior_passes"):
        PipelineConfig(deblur_interior_passes=-1)
    assert PipelineConfig(deblur_interior_passes=3).faithful_config().deblur_interior_passes == 3
    assert PipelineConfig(render_threads=3).faithful_config().render_threads == 3
    for bad in (0, 2.0, True, "2"):
        with pytest.raises(ConfigError, match="render_threads"):
            PipelineConfig(render_threads=bad)
    # the refinement runs only when asked: on a GPU ("cuda") or everywhere ("always");
    # off by default on every device (docs/faithful_splat.md, item 3)
    assert fc.refine_seconds == 0 == cfg.faithful_config("cuda").refine_seconds
    cuda = PipelineConfig(refine="cuda")
    assert cuda.faithful_config().refine_seconds == 0 < cuda.faithful_config("cuda").refine_seconds
    assert PipelineConfig(refine="always").faithful_config().refine_seconds > 0
    assert PipelineConfig.from_dict({"body_model": "anny"}).faithful  # old files: defaults


@pytest.mark.parametrize("threads", [None, 1, 3])
def test_render_threads_reach_the_correction_and_the_depth_search(monkeypatch, threads):
    """``FaithfulConfig.render_threads`` is the rasterizer's tile threads in each of the
    step's forward renders (None: ``render.tile_threads()``, 2 on a CPU of 2 cores or more);
    the splat does not depend on it (the rasterizer's threads give the same bits:
    tests/test_render.py)."""
    from humansplat.refine import deblur, sheet_depth
    from humansplat.render import tile_threads

    seen = []
    for mod, name in ((deblur, "deblur_colours"), (sheet_depth, "choose_recede"),
                      (sheet_depth, "into_silhouettes"), (sheet_depth, "render_at")):
        real = getattr(mod, name)

        def spy(*a, _real=real, _name=name, **kw):
            seen.append((_name, kw["torch_config"].threads))
            return _real(*a, **kw)
        monkeypatch.setattr(mod, name, spy)
    ev = _toy_evidence()
    g, cams = _model_like(ev)
    cfg = FaithfulConfig(resolution=64, refine_seconds=0, render_threads=threads)
    res = make_faithful(g, grid=16, view_cameras=cams, evidence=ev, config=cfg)
    want = threads if threads is not None else tile_threads()
    # render_at: the model's views (once, for both depth steps) and the search's candidates
    assert set(seen) == {("choose_recede", want), ("deblur_colours", want),
                         ("into_silhouettes", want), ("render_at", want)}
    assert len(seen) > 4
    base = make_faithful(g, grid=16, view_cameras=cams, evidence=ev,
                         config=FaithfulConfig(resolution=64, refine_seconds=0, render_threads=1))
    assert torch.equal(res.gaussians.means, base.gaussians.means)
    assert torch.equal(res.gaussians.sh if res.gaussians.sh is not None else res.gaussians.colors,
                       base.gaussians.sh if base.gaussians.sh is not None
                       else base.gaussians.colors)


def test_generated_views_make_the_back_a_back_and_leave_the_input_view_alone():
    """The model's back view as real models leave it (sparse, half transparent, 20 cm behind
    the photo's surface) lets the photo's own Gaussians show through from behind; the
    synthesizer's back view (a green garment) as Gaussians hides them, and the input view
    renders as before."""
    from humansplat.cameras import Cameras, pixel_rays
    from humansplat.refine import GeneratedViews

    ev = _toy_evidence()
    grid = 16
    cams = orbit_cameras([0.0, 180.0], 0.0, RADIUS, width=grid, height=grid)
    o, d = pixel_rays(cams.viewmats, cams.Ks, grid, grid)
    depth = torch.tensor([RADIUS, RADIUS - 0.2])[:, None, None, None]  # back: 20 cm behind
    means = (o + depth * d).reshape(-1, 3)
    per = grid * grid
    m_lo = torch.nn.functional.interpolate(ev.mask[None, None], size=(grid, grid),
                                           mode="area")[0, 0].reshape(-1)
    op = torch.cat([m_lo.clamp(0.01, 0.95), 0.3 * m_lo.flip(0).clamp(0.01, 1)])
    q = torch.zeros(2 * per, 4)
    q[:, 0] = 1
    g = Gaussians(means=means, quats=q, scales=torch.full((2 * per, 3), 0.02), opacities=op,
                  colors=torch.full((2 * per, 3), 0.5))
    view_cams = Cameras(cams.viewmats, cams.Ks, grid, grid)
    R = 64
    gen_cams = orbit_cameras([0.0, 180.0], 0.0, RADIUS, width=R, height=R)
    back_mask = torch.nn.functional.interpolate(ev.mask[None, None], size=(R, R),
                                                mode="area")[0, 0].flip(1)  # mirrored
    green = torch.tensor([0.1, 0.7, 0.2])[:, None, None]
    images = torch.stack([torch.ones(3, R, R), green * back_mask + (1 - back_mask)])
    masks = torch.stack([torch.zeros(R, R), back_mask])
    gen = GeneratedViews(images, masks, gen_cams)
    cfg = FaithfulConfig(resolution=S, refine_seconds=0, view_resolution=R)
    with_views = make_faithful(g, grid=grid, view_cameras=view_cams, evidence=ev,
                               config=cfg, generated=gen)
    without = make_faithful(g, grid=grid, view_cameras=view_cams, evidence=ev, config=cfg)
    off = make_faithful(g, grid=grid, view_cameras=view_cams, evidence=ev, generated=gen,
                        config=FaithfulConfig(resolution=S, refine_seconds=0, view_resolution=0))
    assert with_views.info["model_views_from_generated"] == [1]
    assert off.info["model_views_from_generated"] == [] and len(off.gaussians) == \
        len(without.gaussians)
    back = orbit_cameras([180.0], 0.0, RADIUS, width=S, height=S)
    inside = torch.nn.functional.interpolate(back_mask[None, None], size=(S, S),
                                             mode="nearest")[0, 0] > 0.99
    assert int(inside.sum()) > 500
    for res, near_green in ((with_views, True), (without, False)):
        img, _ = _render(res.gaussians, back, S)
        err = (img - green.view(1, 1, 3)).abs().mean(-1)[inside]
        assert (float(err.mean()) < 0.1) == near_green, float(err.mean())
    a, _ = _render(with_views.gaussians, ev.camera, S)
    b, _ = _render(without.gaussians, ev.camera, S)
    assert float(psnr_metric(a.permute(2, 0, 1)[None], b.permute(2, 0, 1)[None])) > 40.0


def _half_open_back():
    """The model's back view opaque (red) on one half, empty on the other, and a generated
    back view (green). Returns (evidence, the model's Gaussians, their view cameras, the
    generated views, the faithful config, a camera behind, the back's left (model) and
    right (hole) pixels there, the colours red and green)."""
    from humansplat.cameras import Cameras, pixel_rays
    from humansplat.refine import GeneratedViews

    ev = _toy_evidence()
    grid = 16
    cams = orbit_cameras([0.0, 180.0], 0.0, RADIUS, width=grid, height=grid)
    o, d = pixel_rays(cams.viewmats, cams.Ks, grid, grid)
    depth = torch.tensor([RADIUS, RADIUS - 0.2])[:, None, None, None]
    means = (o + depth * d).reshape(-1, 3)
    per = grid * grid
    m_lo = torch.nn.functional.interpolate(ev.mask[None, None], size=(grid, grid),
                                           mode="area")[0, 0]
    back_m = m_lo.flip(1)
    half = torch.zeros(grid, grid)
    half[:, : grid // 2] = 1.0  # the back camera's left half: the model's back is there
    op = torch.cat([m_lo.reshape(-1).clamp(0.01, 0.95),
                    (0.95 * back_m * half).reshape(-1).clamp(min=0.01)])
    red = torch.tensor([0.9, 0.1, 0.1])
    cols = torch.cat([torch.full((per, 3), 0.5), red.expand(per, 3)])
    q = torch.zeros(2 * per, 4)
    q[:, 0] = 1
    g = Gaussians(means=means, quats=q, scales=torch.full((2 * per, 3), 0.05), opacities=op,
                  colors=cols)
    R = 64
    gen_cams = orbit_cameras([0.0, 180.0], 0.0, RADIUS, width=R, height=R)
    back_mask = torch.nn.functional.interpolate(ev.mask[None, None], size=(R, R),
                                                mode="area")[0, 0].flip(1)
    green = torch.tensor([0.1, 0.7, 0.2])
    images = torch.stack([torch.ones(3, R, R),
                          green[:, None, None] * back_mask + (1 - back_mask)])
    gen = GeneratedViews(images, torch.stack([torch.zeros(R, R), back_mask]), gen_cams)
    cfg = FaithfulConfig(resolution=S, refine_seconds=0, view_resolution=R, deblur_passes=0)
    back = orbit_cameras([180.0], 0.0, RADIUS, width=S, height=S)
    inside = torch.nn.functional.interpolate(back_mask[None, None], size=(S, S),
                                             mode="nearest")[0, 0] > 0.99
    left, right = inside.clone(), inside.clone()
    left[:, S // 2 - 8:] = False  # clear of the model's soft edge at the middle
    right[:, : S // 2 + 8] = False
    assert int(left.sum()) > 100 and int(right.sum()) > 100
    return (ev, g, Cameras(cams.viewmats, cams.Ks, grid, grid), gen, cfg, back, left, right,
            red, green)


def test_generated_view_lies_behind_the_models_own_and_closes_its_holes():
    """The model's back view opaque (red) on one half, empty on the other: the generated
    back view (green), ``view_inset`` behind the model's own, shows only in the hole."""
    from dataclasses import replace

    ev, g, view_cams, gen, cfg, back, left, right, red, green = _half_open_back()
    assert cfg.view_inset > 0
    err = {}
    for inset in (cfg.view_inset, 0.0):
        res = make_faithful(g, grid=16, view_cameras=view_cams, evidence=ev, generated=gen,
                            config=replace(cfg, view_inset=inset))
        img, _ = _render(res.gaussians, back, S)
        err[inset] = ((img - red).abs().mean(-1)[left].mean(),
                      (img - green).abs().mean(-1)[right].mean())
    # the model's back shows where it is (at the same depth the view's discs covered it)
    assert float(err[cfg.view_inset][0]) < float(err[0.0][0]) - 0.1, err
    assert float(err[cfg.view_inset][1]) < 0.15, err  # the hole: the view's colour


def test_view_fill_puts_the_generated_back_only_in_the_models_holes():
    """``view_fill`` < 1 (real-photos item 42): the generated back view's Gaussians only
    where the model's own back, seen from behind, is open; the back looks the same (the
    model's where it is opaque, the view's in the hole) from fewer Gaussians, none of them
    behind the model's opaque half; bad values are refused."""
    from dataclasses import replace

    from humansplat.refine.sheet_depth import alpha_at

    ev, g, view_cams, gen, cfg, back, left, right, red, green = _half_open_back()
    assert cfg.view_fill == 1.0  # item 4's: everywhere
    full = make_faithful(g, grid=16, view_cameras=view_cams, evidence=ev, generated=gen,
                         config=cfg)
    fill = make_faithful(g, grid=16, view_cameras=view_cams, evidence=ev, generated=gen,
                         config=replace(cfg, view_fill=0.5, view_fill_erode=0))
    inner = make_faithful(g, grid=16, view_cameras=view_cams, evidence=ev, generated=gen,
                          config=replace(cfg, view_fill=0.5, view_fill_erode=2))
    n_full = full.info["other_gaussians"]
    n_fill = fill.info["other_gaussians"]
    assert n_fill < n_full - 100
    # the model's opaque half (the back camera's left) keeps no generated Gaussian behind it
    from humansplat.render import render_gaussians

    def generated(res):  # the generated view's Gaussians: green, the model's red or grey
        o = res.gaussians[res.info["photo_gaussians"]:].with_rgb()
        return o[(o.colors - green).abs().amax(-1) < 0.05]

    assert len(generated(fill)) < len(generated(full)) - 100
    a = render_gaussians(g[256:], view_cams.viewmats[1:], view_cams.Ks[1:], 16, 16)[1]
    # (inset 4 cm deeper, a Gaussian at the threshold may project a little aside of it)
    assert float(alpha_at(generated(full).means, a, view_cams[1:]).max()) > 0.9
    assert float(alpha_at(generated(fill).means, a, view_cams[1:]).max()) < 0.5 + 0.1
    for res in (full, fill):
        img, _ = _render(res.gaussians, back, S)
        assert float((img - red).abs().mean(-1)[left].mean()) < 0.2
        assert float((img - green).abs().mean(-1)[right].mean()) < 0.15
    # view_fill_erode: none on the view's 2-px rim (3 px here), the hole's inside as before
    assert len(generated(inner)) < len(generated(fill)) - 50
    core = -torch.nn.functional.max_pool2d(-right[None, None].float(), 7, 1, 3)[0, 0] > 0.5
    assert int(core.sum()) > 40
    img, _ = _render(inner.gaussians, back, S)
    assert float((img - green).abs().mean(-1)[core].mean()) < 0.15
    # view_fill_labels: only on those parts (the model's labels: here all "head", 15)
    from dataclasses import replace as swap

    g15 = swap(g, labels=torch.full((len(g),), 15, dtype=torch.long))
    on = {labels: len(generated(make_faithful(
        g15, grid=16, view_cameras=view_cams, evidence=ev, generated=gen,
        config=replace(cfg, view_fill=0.5, view_fill_erode=0, view_fill_labels=labels))))
        for labels in ((), (12, 15), (12,))}
    assert on[()] == on[(12, 15)] == len(generated(fill)) and on[(12,)] == 0
    for bad in ({"view_fill": 0.0}, {"view_fill": 1.5}, {"view_fill_erode": -1},
                {"view_fill_erode": 1.5}, {"view_fill_labels": "head"},
                {"view_fill_labels": [1.5]}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            FaithfulConfig(**bad)
        with pytest.raises(ConfigError, match=next(iter(bad))):
            PipelineConfig(**bad).faithful_config()
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:  # pipeline.json carries them
        cfg_file = PipelineConfig().replace(view_fill=0.9, view_fill_erode=1).write(
            Path(d) / "pipeline.json")
        fc = PipelineConfig.read(cfg_file).faithful_config()
    assert (fc.view_fill, fc.view_fill_erode) == (0.9, 1)


# -- colours that undo the splat's own blur ---------------------------------------------

def _sharp_evidence() -> PhotoEvidence:
    """The toy person with a sharp texture (4-px blocks): what the splat's blur loses."""
    ev = _toy_evidence()
    g = torch.Generator().manual_seed(1)
    tex = torch.nn.functional.interpolate(torch.rand(1, 3, S // 4, S // 4, generator=g),
                                          size=(S, S), mode="nearest")[0]
    comp = tex * ev.mask + (1 - ev.mask)
    return PhotoEvidence(image=tex, composite=comp, mask=ev.mask, camera=ev.camera,
                         frame=ev.frame)


def test_deblur_passes_bring_the_rerender_closer_to_the_photo():
    from humansplat.refine.deblur import deblur_colours

    ev = _sharp_evidence()
    pg = photo_gaussians(ev, torch.full((8, 8), RADIUS), torch.ones(8, 8), resolution=S)
    g, _ = _model_like(ev)
    others = g[:0]  # the photo Gaussians alone (the rest of a splat is carved behind them)

    def score(photo):
        img, _ = _render(Gaussians.cat([photo, others]), ev.camera, S)
        return float(psnr_metric(img.permute(2, 0, 1)[None], ev.composite[None],
                                 (ev.mask > 0.5).float()[None]))

    before = score(pg.gaussians)
    one, errs1 = deblur_colours(pg.gaussians, pg.pixels, S, others, ev, passes=1)
    three, errs3 = deblur_colours(pg.gaussians, pg.pixels, S, others, ev, passes=3)
    assert score(one) > before + 1.5, (before, score(one))  # measured +2.2 dB
    assert score(three) > score(one)
    assert errs3[0] == pytest.approx(errs1[0]) and errs3[0] > errs3[1] > errs3[2]
    assert 0.0 <= float(three.colors.min()) and float(three.colors.max()) <= 1.0
    # only Gaussians well inside the mask change; geometry never does
    mask_at = ev.mask[pg.pixels[:, 0], pg.pixels[:, 1]]
    same = (one.colors == pg.gaussians.colors).all(1)
    assert bool(same[mask_at < 0.5].all()) and not bool(same[mask_at >= 0.5].all())
    torch.testing.assert_close(one.means, pg.gaussians.means)
    torch.testing.assert_close(one.opacities, pg.gaussians.opacities)
    zero, errs0 = deblur_colours(pg.gaussians, pg.pixels, S, others, ev, passes=0)
    assert errs0 == [] and torch.equal(zero.colors, pg.gaussians.colors)


def test_deblur_interior_passes_sharpen_the_interior_and_leave_the_rim():
    from humansplat.refine.deblur import deblur_colours

    ev = _sharp_evidence()
    pg = photo_gaussians(ev, torch.full((8, 8), RADIUS), torch.ones(8, 8), resolution=S)
    others = pg.gaussians[:0]
    # the interior by an independent erosion: mask >= 0.99 at every pixel within 2 px
    m = ev.mask
    solid = torch.ones_like(m, dtype=torch.bool)
    for dr in range(-2, 3):
        for dc in range(-2, 3):
            solid &= torch.roll(m, (dr, dc), (0, 1)) >= 0.99
    rows, cols = pg.pixels[:, 0], pg.pixels[:, 1]
    interior = solid[rows, cols]
    assert 0 < int(interior.sum()) < int((m[rows, cols] >= 0.5).sum())

    def interior_error(photo):
        img, _ = _render(photo, ev.camera, S)
        return float((img.permute(2, 0, 1) - ev.composite).abs().mean(0)[solid].mean())

    two, _ = deblur_colours(pg.gaussians, pg.pixels, S, others, ev, passes=2)
    more, errs = deblur_colours(pg.gaussians, pg.pixels, S, others, ev, passes=2,
                                interior_passes=3)
    assert len(errs) == 5
    assert interior_error(more) < 0.9 * interior_error(two)
    # the rim and everything outside the interior keep the first two passes' colours
    assert torch.equal(more.colors[~interior], two.colors[~interior])
    assert not torch.equal(more.colors[interior], two.colors[interior])
    with pytest.raises(ValueError, match="passes"):
        deblur_colours(pg.gaussians, pg.pixels, S, others, ev, interior_passes=-1)


def test_push_behind_moves_a_too_thin_back_and_keeps_its_projection():
    from humansplat.refine import push_behind

    ev = _toy_evidence()
    surface = torch.full((S, S), RADIUS)  # the photo shows a surface at the body's depth
    cam = ev.camera
    # Gaussians on the rays of a few pixels: on the person (centre, chest) and off it (corner)
    from humansplat.cameras import pixel_rays

    o, d = pixel_rays(cam.viewmats, cam.Ks, S, S)
    px = [(50, 48), (60, 40), (5, 5), (70, 50)]  # (row, col); the corner is background
    fwd = cam.viewmats[0, 2, :3]
    zs = [RADIUS + 0.01, RADIUS - 0.3, RADIUS + 0.01, RADIUS + 0.2]
    means = torch.stack([o[0, r, c] + d[0, r, c] * (z / float(d[0, r, c] @ fwd))
                         for (r, c), z in zip(px, zs)])
    q = torch.zeros(4, 4)
    q[:, 0] = 1
    g = Gaussians(means=means, quats=q, scales=torch.full((4, 3), 0.01),
                  opacities=torch.full((4,), 0.9), colors=torch.rand(4, 3))
    out, moved = push_behind(g, ev, surface, margin=-0.05)
    assert moved.tolist() == [True, True, False, False]  # on the person and < 5 cm behind
    uv0, _ = ev.project(g.means)
    uv1, z1 = ev.project(out.means)
    torch.testing.assert_close(uv1, uv0, atol=1e-3, rtol=0)  # same pixels at the input view
    torch.testing.assert_close(z1[:2], torch.full((2,), RADIUS + 0.05), atol=1e-4, rtol=0)
    torch.testing.assert_close(out.means[2:], g.means[2:])
    # and then the strict carve keeps them (they are behind the surface now)
    assert carve_by_mask(out, ev, grow_px=0, surface=surface, margin=-0.05)[:2].all()
    assert not carve_by_mask(g, ev, grow_px=0, surface=surface, margin=-0.05)[:2].any()


def recede_pair(**change):
    """The toy scene made faithful with the photo where its depth put it (no recede, no
    move into the side silhouettes), and with ``change`` (FaithfulConfig fields):
    (evidence, unmoved, changed, the photo's Gaussian count, each photo Gaussian's distance
    from the photo's camera in both [n])."""
    from dataclasses import replace

    from humansplat.cameras import camera_centers

    ev = _toy_evidence()
    g, cams = _model_like(ev)
    cfg = FaithfulConfig(resolution=64, refine_seconds=0, deblur_passes=0,
                         photo_recede_search=(), hull_reach=0.0)
    a = make_faithful(g, grid=16, view_cameras=cams, evidence=ev, config=cfg)
    b = make_faithful(g, grid=16, view_cameras=cams, evidence=ev, config=replace(cfg, **change))
    n = a.info["photo_gaussians"]
    assert b.info["photo_gaussians"] == n and len(a.gaussians) == len(b.gaussians)
    c = camera_centers(ev.camera.viewmats.float())[0]
    return (ev, a, b, n, (a.gaussians.means[:n] - c).norm(dim=-1),
            (b.gaussians.means[:n] - c).norm(dim=-1))


def test_photo_recede_moves_the_photo_back_and_keeps_its_picture():
    """``photo_recede``: the photo's Gaussians lie that many metres further along the input
    camera's rays, the other Gaussians where they were, the input camera's render unchanged
    (scaled about the camera centre); a side camera sees the photo moved."""
    ev, a, b, n, da, db = recede_pair(photo_recede=0.01)
    assert torch.allclose(db - da, torch.full_like(da, 0.01), atol=1e-5)
    assert torch.equal(a.gaussians.means[n:], b.gaussians.means[n:])
    ia, _ = _render(a.gaussians, ev.camera, S)
    ib, _ = _render(b.gaussians, ev.camera, S)
    # the same picture: the rasterizer's depth order moves a few rim pixels by a few levels
    assert float((ia - ib).abs().mean()) < 5e-4
    assert float((ia - ib).abs().amax(-1).gt(0.01).float().mean()) < 0.01
    side = orbit_cameras([60.0], 0.0, RADIUS, width=S, height=S)
    sa, _ = _render(a.gaussians, side, S)
    sb, _ = _render(b.gaussians, side, S)
    assert float((sa - sb).abs().mean()) > 1e-3
    for bad in (0.02, -0.01):  # no deeper than what lies 2 cm behind the photo
        with pytest.raises(ConfigError, match="photo_recede"):
            FaithfulConfig(photo_recede=bad, photo_recede_search=())
    with pytest.raises(ConfigError, match="alternative"):  # the search is on by default
        FaithfulConfig(photo_recede=0.01)


def test_push_behind_footprint_keeps_a_wide_gaussian_off_a_deeper_strip():
    """The photo shows a strip deeper than its surroundings (a strap the model put 10 cm
    behind the coat). A wide Gaussian 3 cm behind the coat at its centre but spreading over
    the strip passes the centre test, and covers the strip at the photo's camera; under
    ``push_behind_footprint`` it goes behind the strip and the photo's own render is back."""
    from humansplat.cameras import pixel_rays
    from humansplat.refine import push_behind
    from humansplat.refine.coverage import push_behind_footprint

    ev = _toy_evidence()
    surface = torch.full((S, S), RADIUS)
    surface[:, 50:53] = RADIUS + 0.1  # the strip
    pg = photo_gaussians(ev, surface, torch.ones(S, S), resolution=S)
    cam = ev.camera
    o, d = pixel_rays(cam.viewmats, cam.Ks, S, S)
    fwd = cam.viewmats[0, 2, :3]
    px, z = (50, 48), RADIUS + 0.03  # 2 px left of the strip
    centre = o[0, px[0], px[1]] + d[0, px[0], px[1]] * (z / float(d[0, px[0], px[1]] @ fwd))
    q = torch.tensor([[1.0, 0, 0, 0]] * 2)
    wide = Gaussians(means=centre.repeat(2, 1), quats=q,
                     scales=torch.tensor([[0.05] * 3, [0.0005] * 3]),  # 2.6 px std / a speck
                     opacities=torch.full((2,), 0.99), colors=torch.tensor([[1.0, 0, 0]] * 2))
    _, moved_c = push_behind(wide, ev, surface, margin=-0.02)
    assert not moved_c.any()  # behind the coat at its centre: the centre test keeps it
    out, moved = push_behind_footprint(wide, ev, surface, margin=-0.02)
    assert moved.tolist() == [True, False]  # the speck covers only the coat
    uv0, _ = ev.project(wide.means)
    uv1, z1 = ev.project(out.means)
    torch.testing.assert_close(uv1, uv0, atol=1e-3, rtol=0)  # same place at the photo
    assert float(z1[0]) == pytest.approx(RADIUS + 0.12, abs=1e-4)
    strip = ev.mask[:, 50:53] > 0.5

    def strip_error(others):
        img, _ = _render(Gaussians.cat([pg.gaussians, others]), cam, S)  # [S,S,3]
        err = (img[:, 50:53].permute(2, 0, 1) - ev.image[:, :, 50:53]).abs().mean(0)
        return float(err[strip].mean())

    alone = strip_error(wide[:0])  # the photo Gaussians' own blur
    before, after = strip_error(wide[:1]), strip_error(out[:1])
    assert before > 2 * alone and after == pytest.approx(alone, abs=1e-3), (alone, before, after)


def test_frame_band_lets_a_footprint_over_a_cut_edge_be_pushed_but_not_one_over_the_outline():
    """The photo ends at row 70 (the person cut there). Two wide Gaussians in front of the
    photo's surface, each 4 px from an edge: one from the cut edge, one from the person's
    own outline (the body's side). By default neither footprint is wholly inside, so
    neither moves; with ``frame_band`` the cut edge is no outline and only that one moves."""
    from humansplat.cameras import pixel_rays
    from humansplat.refine.coverage import push_behind_footprint

    ev = _toy_evidence(cut_row=70)
    surface = torch.full((S, S), RADIUS)
    cam = ev.camera
    o, d = pixel_rays(cam.viewmats, cam.Ks, S, S)
    fwd = cam.viewmats[0, 2, :3]
    side = int(S / 2 + 0.18 * S) - 4  # 4 px inside the body's right outline at row 50
    assert ev.mask[50, side] == 1 and ev.mask[50, side + 5] == 0 and ev.mask[65, 48] == 1
    z = RADIUS - 0.05  # 5 cm in front of what the photo shows
    means = torch.stack([o[0, r, c] + d[0, r, c] * (z / float(d[0, r, c] @ fwd))
                         for r, c in [(65, 48), (50, side)]])
    std = 2.0 * z / float(cam.Ks[0, 0, 0])  # 2 px: its 3-sigma footprint crosses the edge
    g = Gaussians(means=means, quats=torch.tensor([[1.0, 0, 0, 0]] * 2),
                  scales=torch.full((2, 3), std), opacities=torch.full((2,), 0.9),
                  colors=torch.rand(2, 3))
    _, moved = push_behind_footprint(g, ev, surface, margin=-0.02)
    assert moved.tolist() == [False, False]
    out, moved = push_behind_footprint(g, ev, surface, margin=-0.02, frame_band=2)
    assert moved.tolist() == [True, False]
    _, z1 = ev.project(out.means)
    assert float(z1[0]) == pytest.approx(RADIUS + 0.02, abs=1e-4)
    with pytest.raises(ConfigError, match="frame_band"):
        FaithfulConfig(frame_band=-1)
    assert PipelineConfig(frame_band=8).faithful_config().frame_band == 8


def test_cut_band_is_beyond_the_edge_where_the_person_is_cut_not_where_background_is():
    """Bottom cut at row 70 through the body: the band is the rows from 68 down, in the
    columns where the person reaches the edge (within 2 px), checked against a plain loop.
    A left cut through background only gives no band at all."""
    from humansplat.refine.coverage import cut_band

    ev = _toy_evidence(cut_row=70)
    band = cut_band(ev, 2)
    m = (ev.mask >= 0.5).numpy()
    want = torch.zeros(S, S, dtype=torch.bool)
    for c in range(S):
        # the nearest photo pixel of (r >= 70, c) is (69, c); the person within 2 px of it
        lo, hi = max(0, c - 2), min(S, c + 3)
        touch = bool(m[67:70, lo:hi].any())
        want[68:, c] = touch
    # rows 68-69 are inside the photo: their own window, not row 69's
    for r in (68, 69):
        for c in range(S):
            want[r, c] = bool(m[max(0, r - 2):min(70, r + 3), max(0, c - 2):min(S, c + 3)].any())
    assert torch.equal(band, want)
    assert band[75].any() and not band[75].all() and not band[:68].any()

    ev = _toy_evidence()
    ev.frame[:, :4] = False  # the photo ends 4 px from the crop's left side: background there
    ev.mask[:, :4] = 0
    assert not cut_band(ev, 2).any()
    assert not cut_band(_toy_evidence(), 8).any()  # no edge in the crop


# -- depth anchored to the clothed body ---------------------------------------------------

def _plane_body(z_cam: float, half: float = 0.6):
    """A square facing the azimuth-0 orbit camera at camera depth ``z_cam`` (vertices, faces)."""
    cam = orbit_cameras([0.0], 0.0, RADIUS, width=S, height=S)
    c2w = torch.linalg.inv(cam.viewmats[0])
    corners = torch.tensor([[-half, -half, z_cam], [half, -half, z_cam], [half, half, z_cam],
                            [-half, half, z_cam]])
    verts = corners @ c2w[:3, :3].T + c2w[:3, 3]
    return verts, torch.tensor([[0, 1, 2], [0, 2, 3]])


def test_anchor_to_body_keeps_the_model_depth_within_the_band():
    from humansplat.refine.faithful import anchor_to_body

    cam = orbit_cameras([0.0], 0.0, RADIUS, width=S, height=S)
    g = torch.Generator().manual_seed(0)
    z = RADIUS + 0.2 * torch.randn(16, 16, generator=g)  # a noisy model depth
    conf = torch.full((16, 16), 0.2)
    body = _plane_body(RADIUS - 0.1, half=0.3)  # covers the middle of the view only
    za, ca = anchor_to_body(z, conf, body, cam, 0.03)
    # the cells whose centre the square covers, from its corners' projections
    from humansplat.cameras import project_points

    c = cam.resized(16, 16)
    uv, _ = project_points(body[0], c.viewmats, c.Ks)
    lo, hi = uv[0].min(0).values, uv[0].max(0).values
    centre = torch.arange(16) + 0.5
    covered = ((centre[:, None] > lo[1]) & (centre[:, None] < hi[1]) &
               (centre[None, :] > lo[0]) & (centre[None, :] < hi[0]))
    assert 16 <= int(covered.sum()) <= 100  # the middle of the view, not all of it
    assert bool(((za[covered] - (RADIUS - 0.1)).abs() <= 0.03 + 1e-5).all())
    assert torch.equal(za[~covered], z[~covered]) and bool((ca[covered] >= 0.7).all())
    # inside the band the model's own relief is kept, not flattened onto the body
    inside = covered & ((z - (RADIUS - 0.1)).abs() < 0.03)
    assert torch.allclose(za[inside], z[inside])
    assert anchor_to_body(z, conf, None, cam, 0.03)[0] is z
    assert anchor_to_body(z, conf, body, cam, None)[0] is z
    with pytest.raises(ConfigError, match="body_band"):
        FaithfulConfig(body_band=-0.1)


def test_make_faithful_puts_the_photo_on_the_body_not_on_the_model_noise():
    ev = _toy_evidence()
    g, cams = _model_like(ev)
    per = 16 * 16
    noise = torch.randn(per, generator=torch.Generator().manual_seed(1)) * 0.15
    fwd = cams.viewmats[0, 2, :3]
    g.means[:per] += noise[:, None] * fwd  # the model's input view: depth noise of 15 cm
    g.opacities[:per] = 0.9
    body = _plane_body(RADIUS - 0.05, half=1.5)  # covers the whole view
    # the photo's depth as anchored (item 31's per-person recede would add up to 1.5 cm)
    cfg = FaithfulConfig(resolution=64, refine_seconds=0, deblur_passes=0,
                         photo_recede_search=())

    def photo_depths(**kw):
        res = make_faithful(g, grid=16, view_cameras=cams, evidence=ev, config=cfg, **kw)
        ph = res.gaussians[:res.info["photo_gaussians"]]
        return ph.means @ ev.camera.viewmats[0, 2, :3] + ev.camera.viewmats[0, 2, 3]

    free = photo_depths()
    anchored = photo_depths(body=body)
    err_free = (free - (RADIUS - 0.05)).abs()
    err = (anchored - (RADIUS - 0.05)).abs()
    assert float(err.max()) <= 0.03 + 1e-3, float(err.max())
    assert float(err_free.max()) > 0.1  # without the body the sheet follows the noise
    assert float(err.std()) < 0.5 * float(err_free.std())


def test_photo_gaussians_at_an_occlusion_edge_lie_on_a_surface_not_between():
    """An arm-like square 35 cm in front of the torso's: the model's coarse grid blends the
    two depths across the edge, and a photo Gaussian put there floats between them (a speck
    seen from the side); anchored at the photo's resolution each lies on one surface."""
    from humansplat.refine.faithful import anchor_to_body

    ev = _toy_evidence()
    g, cams = _model_like(ev)
    near, far = RADIUS - 0.4, RADIUS - 0.05
    v_far, f_far = _plane_body(far, half=1.5)
    v_near, f_near = _plane_body(near, half=0.12)
    body = (torch.cat([v_far, v_near]), torch.cat([f_far, f_near + len(v_far)]))
    per = 16 * 16
    vm = cams.viewmats[0]
    z16, _ = anchor_to_body(torch.full((16, 16), RADIUS), torch.ones(16, 16), body, cams[:1],
                            0.0)  # the scene's depth on the model's grid
    from humansplat.cameras import pixel_rays

    o, d = pixel_rays(cams.viewmats[:1], cams.Ks[:1], 16, 16)
    t = z16.reshape(-1) / (d[0].reshape(-1, 3) @ vm[2, :3])
    g.means[:per] = o[0].reshape(-1, 3) + d[0].reshape(-1, 3) * t[:, None]
    g.opacities[:per] = 0.9
    # the anchored depth itself (item 31's per-person recede would add up to 1.5 cm)
    cfg = FaithfulConfig(resolution=64, refine_seconds=0, deblur_passes=0,
                         photo_recede_search=())
    res = make_faithful(g, grid=16, view_cameras=cams, evidence=ev, config=cfg, body=body)
    ph = res.gaussians[:res.info["photo_gaussians"]]
    z = ph.means @ vm[2, :3] + vm[2, 3]
    off = torch.minimum((z - near).abs(), (z - far).abs())
    assert float(off.max()) <= 0.03 + 1e-3, float(off.max())
    # the same depth upsampled but anchored on the coarse grid only: floating pixels
    coarse = photo_gaussians(ev, z16, torch.ones(16, 16), resolution=64)
    zc = coarse.gaussians.means @ vm[2, :3] + vm[2, 3]
    off_c = torch.minimum((zc - near).abs(), (zc - far).abs())
    assert int((off_c > 0.05).sum()) >= 5, int((off_c > 0.05).sum())


def test_only_the_back_view_becomes_gaussians_by_default():
    from humansplat.refine import GeneratedViews

    ev = _toy_evidence()
    g, cams = _model_like(ev)  # views at 0, 90 and 180 degrees
    R = 32
    gen_cams = orbit_cameras([0.0, 90.0, 180.0], 0.0, RADIUS, width=R, height=R)
    gen = GeneratedViews(torch.full((3, 3, R, R), 0.5), torch.ones(3, R, R), gen_cams)

    def from_views(**kw):
        cfg = FaithfulConfig(resolution=32, refine_seconds=0, view_resolution=R, **kw)
        return make_faithful(g, grid=16, view_cameras=cams, evidence=ev, config=cfg,
                             generated=gen).info["model_views_from_generated"]

    assert from_views() == [2]
    assert from_views(view_min_azimuth=0.0) == [1, 2]
    with pytest.raises(ConfigError, match="view_min_azimuth"):
        FaithfulConfig(view_min_azimuth=200.0)


@pytest.mark.parametrize("shape, share", [
    ("symmetric", {30: 0.75, 45: 0.5, 135: 0.5}),
    ("front", {30: 0.96651, 45: 0.85355, 135: 0.14645}),
])
def test_correction_lobe_is_the_correction_along_the_photos_axis_and_none_across(shape, share):
    """The view-dependent colours (SH degree 3) evaluated by the renderer's own SH code: the
    corrected colour along the camera's ray through the Gaussian and straight opposite, the
    photo's own colour at right angles, in between the shape's share of the correction
    (worked out by hand: t^2, and t + t^2 - t^3, t the cosine off the axis); with ``back``
    colours, those straight opposite."""
    from humansplat.refine.deblur import correction_lobe
    from humansplat.render.ewa import sh_to_rgb

    g = torch.Generator().manual_seed(3)
    n = 50
    base, corrected = torch.rand(n, 3, generator=g), torch.rand(n, 3, generator=g)
    means, centre = torch.randn(n, 3, generator=g), torch.tensor([0.3, -0.2, 2.5])
    sh = correction_lobe(base, corrected, means, centre, shape=shape)
    assert sh.shape == (n, 16, 3)
    axis = torch.nn.functional.normalize(means - centre, dim=-1)
    across = torch.nn.functional.normalize(torch.linalg.cross(
        axis, torch.randn(n, 3, generator=g), dim=-1), dim=-1)
    torch.testing.assert_close(sh_to_rgb(3, sh, axis), corrected, atol=1e-4, rtol=0)
    torch.testing.assert_close(sh_to_rgb(3, sh, -axis), corrected, atol=1e-4, rtol=0)
    torch.testing.assert_close(sh_to_rgb(3, sh, across), base, atol=1e-4, rtol=0)
    for deg, w in share.items():
        off = math.cos(math.radians(deg)) * axis + math.sin(math.radians(deg)) * across
        torch.testing.assert_close(sh_to_rgb(3, sh, off), base + w * (corrected - base),
                                   atol=2e-4, rtol=0)
    # with the back's colours: those straight behind, the rest as before
    back = torch.rand(n, 3, generator=g)
    sh_b = correction_lobe(base, corrected, means, centre, back, shape=shape)
    for d, want in ((axis, corrected), (-axis, back), (across, base)):
        torch.testing.assert_close(sh_to_rgb(3, sh_b, d), want, atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="shape"):
        correction_lobe(base, corrected, means, centre, shape="wide")


def test_make_faithful_with_the_correction_lobe_renders_the_same_photo():
    """At the photo's camera the splat with view-dependent corrections renders what the RGB
    one does; seen from the side its photo Gaussians show the photo's own colours."""
    from humansplat.cameras import camera_centers
    from humansplat.render.ewa import sh_to_rgb

    ev = _sharp_evidence()
    g, cams = _model_like(ev)
    runs = {lobe: make_faithful(g, grid=16, view_cameras=cams, evidence=ev,
                                config=FaithfulConfig(resolution=S, refine_seconds=0,
                                                      correction_lobe=lobe))
            for lobe in (False, True)}
    flat, lobed = runs[False].gaussians, runs[True].gaussians
    assert flat.sh is None and lobed.sh_degree == 3 and runs[True].info["correction_lobe"]
    torch.testing.assert_close(_render(lobed, ev.camera, S)[0], _render(flat, ev.camera, S)[0],
                               atol=2e-3, rtol=0)
    n = runs[True].info["photo_gaussians"]
    own = photo_gaussians(ev, torch.full((8, 8), RADIUS), torch.ones(8, 8),
                          resolution=S).gaussians.colors  # the photo's colours, uncorrected
    side = orbit_cameras([90.0], 0.0, RADIUS, width=S, height=S)
    centre_side = camera_centers(side.viewmats)[0]
    centre_in = camera_centers(ev.camera.viewmats)[0]
    ray = torch.nn.functional.normalize(lobed.means[:n] - centre_side, dim=-1)
    axis = torch.nn.functional.normalize(lobed.means[:n] - centre_in, dim=-1)
    across = (ray * axis).sum(-1).abs() < 0.05  # seen at right angles from the side camera
    corrected = (flat.colors[:n] - own).abs().amax(-1) > 0.05
    assert int((across & corrected).sum()) > 10
    seen = sh_to_rgb(3, lobed.sh[:n], lobed.means[:n] - centre_side)
    # at |cos| < 0.05 the default lobe (t^2) keeps at most 0.25 % of each correction
    bound = 0.0025 * (flat.colors[:n] - own).abs()[across] + 0.005
    assert bool(((seen[across] - own[across]).abs() <= bound).all())


def test_the_band_narrows_to_the_body_where_it_is_seen_edge_on():
    """A ball of 30 cm seen from 2.6 m and a model depth 2.5 cm in front of it everywhere:
    with ``grazing=1`` each pixel is kept within ``band * |cos|`` of the ball (cos from its
    analytic normal), so the rim lies on the ball and the middle keeps the model's relief."""
    from meshes import uv_sphere

    from humansplat.cameras import camera_centers, pixel_rays
    from humansplat.refine.faithful import anchor_to_body

    r_ball, band, G = 0.3, 0.03, 96
    cam = orbit_cameras([0.0], 0.0, RADIUS, width=G, height=G)
    o, d = pixel_rays(cam.viewmats, cam.Ks, G, G)
    o, d = o[0], d[0]  # [G,G,3]
    b = (o * d).sum(-1)
    disc = b ** 2 - ((o * o).sum(-1) - r_ball ** 2)
    hit = disc > 0
    t = -b - disc.clamp(min=0).sqrt()  # distance to the front intersection
    fwd = cam.viewmats[0, 2, :3]
    z_true = t * (d @ fwd)  # camera z of the ball's surface
    z = torch.where(hit, z_true - 0.025, torch.full_like(t, RADIUS))
    conf = torch.full((G, G), 0.2)
    body = uv_sphere(r_ball, 48, 96)
    plain, _ = anchor_to_body(z, conf, body, cam, band)
    graze, c2 = anchor_to_body(z, conf, body, cam, band, grazing=1.0)
    centre = camera_centers(cam.viewmats)[0]
    p = o + t[..., None] * d
    cos = (torch.nn.functional.normalize(p, dim=-1)
           * torch.nn.functional.normalize(p - centre, dim=-1)).sum(-1).abs()
    inner = hit & (cos > 0.9)
    rim = hit & (cos < 0.3)
    assert int(rim.sum()) >= 20 and int(inner.sum()) >= 100
    # without it the 2.5 cm in front stay everywhere (inside the band)
    assert float((plain[hit] - (z_true[hit] - 0.025)).abs().max()) < 2e-3
    # with it: within band * |cos| of the ball (mesh facets: 2 mm), the rim on the ball
    err = (graze - z_true).abs()
    assert bool((err[hit] <= band * cos[hit] + 2e-3).all())
    assert float(err[rim].max()) < 0.011 and float(err[inner].median()) > 0.02
    # off the ball (the body does not cover it) the model's depth is kept
    assert torch.equal(graze[~hit], z[~hit]) and bool((c2[hit] >= 0.7).all())
    # a higher power narrows it further off the middle; 0 is the full band
    sq, _ = anchor_to_body(z, conf, body, cam, band, grazing=2.0)
    assert bool(((sq - z_true).abs()[hit] <= band * cos[hit] ** 2 + 4e-3).all())  # facets
    assert float((sq - z_true).abs()[rim].max()) < float(err[rim].max())
    assert torch.equal(anchor_to_body(z, conf, body, cam, band, grazing=0.0)[0], plain)
    with pytest.raises(ConfigError, match="band_grazing"):
        FaithfulConfig(band_grazing=-1.0)


def test_the_upsampled_mask_keeps_the_width_of_its_edge():
    """A 4 px soft edge drawn at 32 px stays 4 px wide at 96 px (bilinear: 12 px), and the
    silhouette (mask > 0.5) is bilinear's exactly."""
    S, k = 32, 3
    cols = torch.arange(S, dtype=torch.float32)
    ramp = ((cols - 9.5) / 5.0).clamp(0, 1)  # 0 up to column 9, 1 from column 15: 5 soft px
    mask = ramp[None, :].expand(S, S).contiguous()
    sharp = upsample_mask(mask, k * S)
    plain = upsample_mask(mask, k * S, sharp=False)
    soft = lambda m: int(((m[len(m) // 2] > 0.01) & (m[len(m) // 2] < 0.99)).sum())  # noqa: E731
    assert soft(mask) == 5
    assert soft(plain) >= 3 * 5 - 1
    assert abs(soft(sharp) - 5) <= 1
    assert torch.equal(sharp > 0.5, plain > 0.5)
    assert float(sharp.min()) >= 0.0 and float(sharp.max()) <= 1.0
    # a hard edge stays hard, no upsampling leaves the mask as it is
    hard = (cols >= 16).float()[None, :].expand(S, S).contiguous()
    assert soft(upsample_mask(hard, k * S)) <= 2
    assert torch.equal(upsample_mask(mask, S), mask)
    with pytest.raises(ValueError, match="size >= S"):
        upsample_mask(mask, S - 1)
    with pytest.raises(ConfigError, match="sharp_mask"):
        PipelineConfig(sharp_mask="yes")


def test_gaussians_crossing_the_silhouette_are_narrowed_across_its_edge_only():
    """Against the Gaussian's own footprint at the photo's camera (its 3-D covariance pushed
    through the projection's Jacobian): a wide, tilted Gaussian 3 px inside a vertical
    silhouette edge ends with 2 of its horizontal stds inside, its vertical std and its
    extent along the ray unchanged, and the alpha it spread beyond the edge drops; one well
    inside and a small one at the edge are left bit for bit; one on the middle line of a
    thin strip is narrowed too; a mask with no edge narrows nothing."""
    from humansplat.cameras import pixel_rays
    from humansplat.geometry import quat_to_rotmat
    from humansplat.refine.coverage import narrow_at_silhouette

    cam = orbit_cameras([0.0], 0.0, RADIUS, width=S, height=S)

    def evidence(mask):
        return PhotoEvidence(image=torch.full((3, S, S), 0.3), composite=torch.ones(3, S, S),
                             mask=mask, camera=cam, frame=torch.ones(S, S, dtype=torch.bool))

    mask = torch.zeros(S, S)
    mask[:, : S // 2] = 1.0  # the person left of column 48
    ev = evidence(mask)
    o, d = pixel_rays(cam.viewmats, cam.Ks, S, S)
    centre = lambda row, col: o[0, row, col] + RADIUS * d[0, row, col]  # noqa: E731
    means = torch.stack([centre(48, 45), centre(48, 10), centre(30, 46)])
    q = torch.nn.functional.normalize(torch.tensor([[0.9, 0.2, -0.3, 0.25], [1.0, 0, 0, 0],
                                                    [1.0, 0, 0, 0]]), dim=-1)
    scales = torch.tensor([[0.06, 0.035, 0.05], [0.06, 0.06, 0.06], [0.001, 0.001, 0.001]])
    g = Gaussians(means=means, quats=q, scales=scales, opacities=torch.full((3,), 0.9),
                  colors=torch.full((3, 3), 0.2))
    out, which = narrow_at_silhouette(g, ev, sigmas=2.0)
    assert which.tolist() == [True, False, False]
    assert torch.equal(out.scales[1:], g.scales[1:]) and torch.equal(out.quats[1:], g.quats[1:])

    def cov(gg):
        R = quat_to_rotmat(gg.quats[:1].float())[0]
        return R @ torch.diag(gg.scales[0].float() ** 2) @ R.T

    vm, K = cam.viewmats[0].float(), cam.Ks[0].float()

    def pinhole(p):  # world point -> pixel (OpenCV), written out here
        c = vm[:3, :3] @ p + vm[:3, 3]
        return K[:2, :2] @ (c[:2] / c[2]) + K[:2, 2]

    J = torch.autograd.functional.jacobian(pinhole, means[0].float())  # [2,3]
    before, after = J @ cov(g) @ J.T, J @ cov(out) @ J.T  # [2,2] pixels^2: (u, v)
    assert float(before[0, 0].sqrt()) > 2.0  # 2 stds reached past the edge, 3 px away
    assert float(after[0, 0].sqrt()) == pytest.approx(3 / 2.0, rel=0.05)  # 2 stds in 3 px
    assert float(after[1, 1]) == pytest.approx(float(before[1, 1]), rel=0.02)
    ray = torch.nn.functional.normalize(means[0] - o[0, 48, 45], dim=0)
    assert float(ray @ cov(out) @ ray) == pytest.approx(float(ray @ cov(g) @ ray), rel=1e-4)
    beyond = lambda gg: float(_render(gg[:1], cam, S)[1][:, S // 2 + 1:].sum())  # noqa: E731
    assert beyond(out) < 0.3 * beyond(g)
    # a thin strip (5 px): the Gaussian on its middle line crosses both edges
    strip = torch.zeros(S, S)
    strip[:, 46:51] = 1.0
    wide = Gaussians(means=centre(48, 48)[None], quats=q[1:2], scales=scales[1:2],
                     opacities=torch.full((1,), 0.9), colors=torch.full((1, 3), 0.2))
    assert narrow_at_silhouette(wide, evidence(strip))[1].tolist() == [True]
    for no_edge in (torch.ones(S, S), torch.zeros(S, S)):
        same, none = narrow_at_silhouette(g, evidence(no_edge))
        assert same is g and not bool(none.any())
    same, none = narrow_at_silhouette(g, ev, sigmas=0.0)
    assert same is g and not bool(none.any())


def test_the_deepest_surface_near_the_rim_is_the_persons_not_the_background():
    """The depth map also holds the model's guess off the silhouette (here 9 m). The surface
    the photo shows near the rim, which the kept input view and the generated views are
    pushed behind, is the person's: 2.6 m, not the background's."""
    from humansplat.refine.coverage import deepest_within, shown_depth

    ev = _toy_evidence()
    depth = torch.where(ev.mask >= 0.5, torch.full((S, S), 2.6), torch.full((S, S), 9.0))
    shown = shown_depth(depth, ev)
    on = ev.mask >= 0.5
    assert torch.equal(shown[on], depth[on]) and bool((shown[~on] < -1e8).all())
    near = deepest_within(shown, 4)
    assert float(near[on].max()) == pytest.approx(2.6)  # the rim's too
    assert float(deepest_within(depth, 4)[on].max()) == pytest.approx(9.0)  # unmasked: 9 m
    # a depth map on another grid than the crop's: the mask is area-averaged onto it
    half = shown_depth(torch.full((S // 2, S // 2), 2.6), ev)
    assert half.shape == (S // 2, S // 2) and bool((half < -1e8).any())


# -- surfels: the photo's discs on the body's surface ----------------------------------------

def _ball_photo(r_ball: float = 0.5, size: int = S):
    """A ball of ``r_ball`` m at the origin photographed from the orbit camera at azimuth 0:
    (evidence with a smooth texture, its exact depth [size,size] (RADIUS off the ball), the
    ball as a mesh)."""
    from meshes import uv_sphere

    from humansplat.cameras import pixel_rays

    cam = orbit_cameras([0.0], 0.0, RADIUS, width=size, height=size)
    o, d = pixel_rays(cam.viewmats, cam.Ks, size, size)
    o, d = o[0], d[0]
    b = (o * d).sum(-1)
    disc = b ** 2 - ((o * o).sum(-1) - r_ball ** 2)
    hit = disc > 0
    t = -b - disc.clamp(min=0).sqrt()
    z = torch.where(hit, t * (d @ cam.viewmats[0, 2, :3]), torch.full_like(t, RADIUS))
    v, u = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    tex = torch.stack([0.3 + 0.5 * u, 0.6 - 0.3 * v, 0.4 + 0.2 * u * v])
    mask = hit.float()
    ev = PhotoEvidence(image=tex, composite=tex * mask + (1 - mask), mask=mask, camera=cam,
                       frame=torch.ones(size, size, dtype=torch.bool))
    return ev, z, uv_sphere(r_ball, 48, 96)


def test_surfels_show_the_photographed_surface_from_other_angles():
    """The photo of a ball as Gaussians at its exact depth, seen from the photo's camera and
    from 25-70 degrees around it, against the ball ray-traced with the photo's own texture
    (each surface point coloured by where it projects in the photo) over the part the photo
    shows. Discs facing the photo's camera stand across the surface wherever it slopes
    away and smear it from the side, with gaps between them; thin discs on the ball's
    surface (the body's normals) show it as it is. At the photo's camera both render it."""
    from humansplat.cameras import camera_centers, pixel_rays, project_points
    from humansplat.refine.faithful import BodySurface

    r_ball = 0.5
    ev, z, ball = _ball_photo(r_ball)
    surface = BodySurface(*ball)
    runs = {k: photo_gaussians(ev, z, torch.ones(S, S), resolution=S, normals=surface.normals,
                               max_stretch=k).gaussians for k in (1.0, 4.0)}
    assert torch.equal(runs[1.0].scales, photo_gaussians(ev, z, torch.ones(S, S),
                                                         resolution=S).gaussians.scales)
    c0 = camera_centers(ev.camera.viewmats)[0]
    for az in (0.0, 25.0, 45.0, 70.0):
        cam = orbit_cameras([az], 0.0, RADIUS, width=S, height=S)
        o, d = pixel_rays(cam.viewmats, cam.Ks, S, S)
        o, d = o[0], d[0]
        b = (o * d).sum(-1)
        disc = b ** 2 - ((o * o).sum(-1) - r_ball ** 2)
        p = o + (-b - disc.clamp(min=0).sqrt())[..., None] * d  # the ball's near surface
        cos = (torch.nn.functional.normalize(p, dim=-1)
               * torch.nn.functional.normalize(c0 - p, dim=-1)).sum(-1)
        seen = (disc > 0) & (cos > 0.2)  # what the photo shows, not at a grazing angle
        assert int(seen.sum()) > 800
        uv, _ = project_points(p.reshape(-1, 3), ev.camera.viewmats, ev.camera.Ks)
        grid = (uv[0] / S * 2 - 1).reshape(1, S, S, 2)
        truth = torch.nn.functional.grid_sample(ev.image[None], grid, align_corners=False)[0]
        score = {}
        for k, g in runs.items():
            img, alpha = _render(g, cam, S)
            err = (img.permute(2, 0, 1) - truth)[:, seen]
            score[k] = (float(10 * torch.log10(1 / err.pow(2).mean())),
                        float(alpha[seen].mean()))
        if az == 0.0:
            assert score[1.0][0] > 45 and score[4.0][0] > 45, score
        else:  # measured: +5.8 / +7.2 / +7.2 dB
            assert score[4.0][0] > score[1.0][0] + 4.0, (az, score)
            assert score[4.0][1] > score[1.0][1], (az, score)


def test_surfels_lie_on_the_surface_and_keep_their_footprint_at_the_camera():
    """Each surfel's normal axis is the surface's normal, its std along the slope is
    ``size / |cos|`` up to ``max_stretch``, and projected across the ray it is still about
    ``size`` wide; an unknown normal keeps the disc it had."""
    from humansplat.geometry import quat_to_rotmat
    from humansplat.refine.input_view import SURFEL_THICKNESS, surfels

    g = torch.Generator().manual_seed(0)
    n = 200
    rays = torch.nn.functional.normalize(torch.randn(n, 3, generator=g) * 0.1
                                         + torch.tensor([0.0, 0.0, 1.0]), dim=-1)
    normals = torch.nn.functional.normalize(torch.randn(n, 3, generator=g), dim=-1)
    normals[:10] = 0.0  # unknown
    size = torch.full((n,), 0.01)
    scales0, quats0 = torch.full((n, 3), 0.02), torch.tensor([[1.0, 0, 0, 0]]).repeat(n, 1)
    scales, quats = surfels(normals, rays, size, scales0, quats0, max_stretch=4.0)
    assert torch.equal(scales[:10], scales0[:10]) and torch.equal(quats[:10], quats0[:10])
    R = quat_to_rotmat(quats[10:])
    cos = (normals[10:] * rays[10:]).sum(-1).abs()
    assert bool(((R[:, :, 2] * normals[10:]).sum(-1).abs() > 0.999).all())
    torch.testing.assert_close(scales[10:, 0], 0.01 / cos.clamp(min=0.25))
    torch.testing.assert_close(scales[10:, 2], torch.full((n - 10,), 0.01 * SURFEL_THICKNESS))
    # the covariance across the ray: about size wide in both directions where not capped
    cov = R @ torch.diag_embed(scales[10:] ** 2) @ R.transpose(1, 2)
    P = torch.eye(3) - rays[10:, :, None] * rays[10:, None, :]
    ev_ = torch.linalg.eigvalsh(P @ cov @ P)[:, 1:].sqrt()  # the two non-zero stds
    ok = cos > 0.3
    assert bool((ev_[ok] > 0.0099).all()) and bool((ev_[ok] < 0.0102).all())
    with pytest.raises(ConfigError, match="surfel_stretch"):
        FaithfulConfig(surfel_stretch=0.5)


def test_body_surface_rasterises_a_camera_once_and_anchors_as_the_tuple_does():
    from humansplat.refine.faithful import BodySurface, anchor_to_body

    ev, z, ball = _ball_photo()
    surface = BodySurface(*ball)
    d1, n1 = surface.at(ev.camera)
    d2, n2 = surface.at(ev.camera)
    assert d1 is d2 and n1 is n2
    hit = torch.isfinite(d1)
    dz = (d1[hit] - z[hit]).abs()  # mesh facets, larger where seen edge-on
    assert float(dz.median()) < 2e-3 and float(dz.max()) < 1.5e-2
    assert torch.equal(n1[~hit], torch.zeros_like(n1[~hit]))
    noisy = z + 0.05
    a = anchor_to_body(noisy, torch.ones_like(z), ball, ev.camera, 0.03, grazing=2.0)
    b = anchor_to_body(noisy, torch.ones_like(z), surface, ev.camera, 0.03, grazing=2.0)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_back_lobe_shows_what_the_back_view_shows_from_behind():
    """``back_lobe``: the photo's Gaussians seen from straight behind take the colour the
    generated back view (a green garment) shows along the same line."""
    from humansplat.cameras import Cameras, camera_centers, pixel_rays
    from humansplat.refine import GeneratedViews
    from humansplat.render.ewa import sh_to_rgb

    ev = _toy_evidence()
    grid = 16
    cams = orbit_cameras([0.0, 180.0], 0.0, RADIUS, width=grid, height=grid)
    o, d = pixel_rays(cams.viewmats, cams.Ks, grid, grid)
    means = (o + torch.tensor([RADIUS, RADIUS - 0.2])[:, None, None, None] * d).reshape(-1, 3)
    q = torch.zeros(2 * grid * grid, 4)
    q[:, 0] = 1
    model = Gaussians(means=means, quats=q, scales=torch.full((2 * grid * grid, 3), 0.02),
                      opacities=torch.full((2 * grid * grid,), 0.5),
                      colors=torch.full((2 * grid * grid, 3), 0.5))
    R = 64
    back_mask = torch.nn.functional.interpolate(ev.mask[None, None], size=(R, R),
                                                mode="area")[0, 0].flip(1)
    green = torch.tensor([0.1, 0.7, 0.2])
    images = torch.stack([torch.ones(3, R, R),
                          green[:, None, None] * back_mask + (1 - back_mask)])
    gen = GeneratedViews(images, torch.stack([torch.zeros(R, R), back_mask]),
                         orbit_cameras([0.0, 180.0], 0.0, RADIUS, width=R, height=R))
    res = make_faithful(model, grid=grid, view_cameras=Cameras(cams.viewmats, cams.Ks, grid,
                                                               grid),
                        evidence=ev, generated=gen,
                        config=FaithfulConfig(resolution=48, refine_seconds=0,
                                              back_lobe=True))
    assert res.info["back_lobe"]
    k = res.info["photo_gaussians"]
    ph = res.gaussians[:k]
    c_back = camera_centers(orbit_cameras([180.0], 0.0, RADIUS).viewmats)[0]
    seen = sh_to_rgb(3, ph.sh, ph.means - c_back)
    solid = ph.opacities > 0.9  # well inside the silhouette: the back view covers them
    assert int(solid.sum()) > 200
    assert float((seen[solid] - green).abs().amax(-1).median()) < 0.05


def test_side_opacity_scale_softens_the_side_views_only():
    """``side_opacity_scale``: the model's side view's opacity logits are scaled; its back
    view (a generated view's azimuth) and the photo's Gaussians keep theirs."""
    from dataclasses import replace

    from humansplat.refine.faithful import softened

    o = torch.tensor([0.01, 0.2, 0.5, 0.9])
    g = Gaussians(means=torch.zeros(4, 3), quats=torch.tensor([[1.0, 0, 0, 0]]).expand(4, 4),
                  scales=torch.full((4, 3), 0.01), opacities=o, colors=torch.zeros(4, 3))
    assert softened(g, 1.0) is g
    s = softened(g, 0.5).opacities
    assert torch.allclose(s, 1 / (1 + ((1 - o) / o) ** 0.5), atol=1e-6)  # sigmoid(logit / 2)
    assert float(s[2]) == pytest.approx(0.5) and bool((s[:2] > o[:2]).all())
    assert bool((s[3] < o[3]).all())

    ev = _toy_evidence()
    model, cams = _model_like(ev, full_body=False)
    per = 16 * 16
    op = model.opacities.clone()
    op[per:2 * per] = 0.2  # the side view (90 degrees); the back view keeps 0.9
    model = replace(model, opacities=op)
    seen = {}
    for scale in (1.0, 0.5):
        res = make_faithful(model, grid=16, view_cameras=cams, evidence=ev,
                            config=FaithfulConfig(resolution=48, refine_seconds=0,
                                                  deblur_passes=0, keep_input_view=False,
                                                  side_opacity_scale=scale))
        others = res.gaussians[res.info["photo_gaussians"]:]
        seen[scale] = sorted({round(float(v), 3) for v in others.opacities})
    assert seen[1.0] == [0.2, 0.9]
    assert seen[0.5] == [round(1 / (1 + 2.0), 3), 0.9]  # sigmoid(0.5 logit 0.2) = 1/3
    with pytest.raises(ConfigError, match="side_opacity_scale"):
        FaithfulConfig(side_opacity_scale=0.0)


def test_grown_matches_scipy_dilation_and_erosion():
    import numpy as np
    from scipy.ndimage import binary_dilation, binary_erosion

    from humansplat.refine.coverage import grown

    m = torch.rand(40, 40, generator=torch.Generator().manual_seed(3)) > 0.7
    sq = np.ones((5, 5), dtype=bool)
    assert torch.equal(grown(m, 2), torch.from_numpy(binary_dilation(m.numpy(), sq)))
    # outside the image counts as in the mask for shrinking (max_pool pads with -inf)
    ref = binary_erosion(m.numpy(), sq, border_value=1)
    assert torch.equal(grown(m, -2), torch.from_numpy(ref))
    assert torch.equal(grown(m, 0), m)


@pytest.mark.parametrize("shape, r", [((40, 33), 3), ((586, 586), 64), ((7, 10), 12),
                                      ((2, 9, 5), 1)])
def test_max_filter_matches_scipy_maximum_filter(shape, r):
    """The O(1)-per-pixel square max against scipy's (nothing beyond the image: scipy's
    'constant' mode with -inf), exactly, large windows and windows wider than the image
    included."""
    import numpy as np
    from scipy.ndimage import maximum_filter

    from humansplat.image_filters import max_filter

    x = torch.randn(shape, generator=torch.Generator().manual_seed(r))
    x[x > 1.5] = -1e9  # like deepest_within's "not shown" cells
    size = (1,) * (len(shape) - 2) + (2 * r + 1, 2 * r + 1)
    ref = maximum_filter(x.numpy(), size=size, mode="constant", cval=-np.inf)
    assert torch.equal(max_filter(x, r), torch.from_numpy(ref))
    assert torch.equal(max_filter(x, 0), x)
    with pytest.raises(TypeError, match="floating"):
        max_filter(x > 0, 2)
