"""The projection synthesizer: its triangle z-buffer against a ray caster, visibility,
the fill (front/back by body part, mirror, harmonic), geometry beyond the body, the
ViewSynthesizer contract, and, on a textured Anny body, that its unseen views beat a flat
grey fill and a mirrored photo against ground truth."""

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from humansplat import cameras as cam
from humansplat.errors import ConfigError
from humansplat.prior.fit import BodyFit
from humansplat.prior.parts import PART_NAMES
from humansplat.synth.base import SynthInput
from humansplat.synth.projection import (ProjectionConfig, ProjectionSynthesizer, body_gaussians,
                                         mesh_edges, rasterize_mesh)
from humansplat.geometry import vertex_normals
from humansplat.io import save_ply

_SPEC = importlib.util.spec_from_file_location(
    "synth_quality", Path(__file__).resolve().parents[1] / "benchmarks" / "synth_quality.py")
sq = importlib.util.module_from_spec(_SPEC)
sys.modules.setdefault("synth_quality", sq)  # dataclasses look their module up
_SPEC.loader.exec_module(sq)

TORSO, ARM = PART_NAMES.index("spine2"), PART_NAMES.index("left_arm")
BLUE, SKIN = torch.tensor([0.1, 0.2, 0.8]), torch.tensor([0.9, 0.7, 0.55])


@pytest.fixture(autouse=True)
def one_thread():
    # many small ops: one thread is much faster than two on the shared cores
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def spheres(specs, n_lat=12, n_lon=24):
    """Meshes of ellipsoids [(centre, axes, label)] merged: (vertices, faces, labels)."""
    vs, fs, ls, n = [], [], [], 0
    for centre, axes, label in specs:
        v, f = sq.ellipsoid_mesh(centre, axes, n_lat, n_lon)
        vs.append(v)
        fs.append(f + n)
        ls.append(torch.full((v.shape[0],), label))
        n += v.shape[0]
    return torch.cat(vs), torch.cat(fs), torch.cat(ls)


def make_input(vertices, faces, labels, S=48, image=None, mask=None, input_camera=None,
               fit_camera=None):
    """A SynthInput whose mask is the mesh's own silhouette (or what is given), fitted in
    ``fit_camera`` (default: the orbit camera at azimuth 0)."""
    fit_cam = fit_camera or cam.orbit_cameras([0.0], width=S, height=S)
    r = rasterize_mesh(vertices, faces, fit_cam.viewmats[0], fit_cam.Ks[0], S, S)
    if mask is None:
        mask = r.coverage.float()[None]
    if image is None:
        image = torch.ones(3, S, S) * 0.3
    fit = BodyFit(vertices=vertices, faces=faces, joints=torch.zeros(1, 3),
                  keypoints=torch.zeros(23, 3), part_labels=labels, params={},
                  viewmat=fit_cam.viewmats[0], K=fit_cam.Ks[0], image_size=(S, S))
    return SynthInput(image=image, mask=mask, input_camera=input_camera or fit_cam,
                      target_cameras=cam.orthogonal_views(width=S, height=S), body_fit=fit)


# ----------------------------------------------------------------------------------------
# the z-buffer
# ----------------------------------------------------------------------------------------
def ray_cast(vertices, faces, viewmat, K, W, H):
    """Reference: float64 Moller-Trumbore per pixel centre ray; (face id [H,W] or -1,
    camera-space depth [H,W] or inf)."""
    o, d = cam.pixel_rays(viewmat[None].double(), K[None].double(), W, H)
    o, d = o.reshape(-1, 3), d.reshape(-1, 3)
    tri = vertices.double()[faces]  # [F,3,3]
    e1, e2 = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]
    p = torch.linalg.cross(d[:, None], e2[None], dim=-1)  # [P,F,3]
    det = (e1[None] * p).sum(-1)
    inv = 1.0 / torch.where(det.abs() < 1e-12, torch.full_like(det, 1e-12), det)
    s = o[:, None] - tri[None, :, 0]
    u = (s * p).sum(-1) * inv
    q = torch.linalg.cross(s, e1[None].expand_as(s), dim=-1)
    v = (d[:, None] * q).sum(-1) * inv
    t = (e2[None] * q).sum(-1) * inv
    hit = (det.abs() > 1e-12) & (u >= 0) & (v >= 0) & (u + v <= 1) & (t > 0)
    t = torch.where(hit, t, torch.full_like(t, math.inf))
    tmin, fid = t.min(dim=1)
    fwd = viewmat[2, :3].double()  # camera z axis in world
    depth = tmin * (d @ fwd)
    fid = torch.where(torch.isfinite(tmin), fid, torch.full_like(fid, -1))
    return fid.reshape(H, W), depth.reshape(H, W)


@pytest.mark.parametrize("S,azimuth,max_candidates", [(24, 0.0, 1 << 22), (32, 55.0, 64)])
def test_rasterize_mesh_matches_a_ray_caster(S, azimuth, max_candidates):
    V, F, _ = spheres([((0.0, 0.0, 0.0), (0.5, 0.7, 0.4), 0),
                       ((0.25, 0.1, 0.45), (0.2, 0.2, 0.2), 1)], 8, 14)
    c = cam.orbit_cameras([azimuth], width=S, height=S, radius=2.6, fovy_deg=40.0)
    r = rasterize_mesh(V, F, c.viewmats[0], c.Ks[0], S, S, max_candidates=max_candidates)
    fid, depth = ray_cast(V, F, c.viewmats[0], c.Ks[0], S, S)
    cover = fid >= 0
    assert cover.any() and (~cover).any()
    mismatch = (r.coverage != cover).sum().item()
    assert mismatch <= 2  # pixel centres within rounding of an edge
    both = r.coverage & cover
    assert torch.allclose(r.depth[both].double(), depth[both], atol=1e-4)
    assert (r.face_ids[both] == fid[both]).float().mean() > 0.97  # ties on shared edges
    # barycentrics are perspective-correct: they rebuild the point on the pixel's ray
    corners = F[r.face_ids[both]]
    pts = (r.bary[both][..., None] * V[corners]).sum(1)
    camz = (pts @ c.viewmats[0, :3, :3].T + c.viewmats[0, :3, 3])[:, 2]
    assert torch.allclose(camz, r.depth[both], atol=1e-4)
    uv, _ = cam.project_points(pts, c.viewmats, c.Ks)
    ys, xs = both.nonzero(as_tuple=True)
    assert torch.allclose(uv[0], torch.stack([xs, ys], -1).float() + 0.5, atol=1e-3)
    # the far depth is the back of the mesh: behind the front everywhere it is covered
    assert (r.depth_far[r.coverage] >= r.depth[r.coverage] - 1e-6).all()
    assert torch.isinf(r.depth[~r.coverage]).all() and (r.face_ids[~r.coverage] == -1).all()


def test_vertex_normals_point_outward_whatever_the_winding():
    V, F, _ = spheres([((0.1, 0.2, 0.3), (0.5, 0.5, 0.5), 0)])
    radial = torch.nn.functional.normalize(V - torch.tensor([0.1, 0.2, 0.3]), dim=-1)
    for faces in (F, F[:, [0, 2, 1]]):
        n = vertex_normals(V, faces)
        assert (n * radial).sum(-1).min() > 0.98
    e = mesh_edges(torch.tensor([[0, 1, 2], [2, 1, 3]]))
    assert e.tolist() == [[0, 1], [0, 2], [1, 2], [1, 3], [2, 3]]


def test_body_gaussians_are_flat_discs_on_the_surface():
    V, F, L = spheres([((0.0, 0.0, 0.0), (0.4, 0.4, 0.4), 3)])
    g = body_gaussians(V, F, torch.rand(len(V), 3), L, disc_scale=0.5, flatness=0.2)
    from humansplat.geometry import quat_to_rotmat

    normal_axis = quat_to_rotmat(g.quats)[:, :, 2]
    radial = torch.nn.functional.normalize(V, dim=-1)
    assert (normal_axis * radial).sum(-1).abs().min() > 0.98
    assert torch.allclose(g.scales[:, 2], 0.2 * g.scales[:, :2].mean(1))
    assert (g.labels == 3).all() and len(g) == len(V)


def test_body_gaussian_discs_follow_a_stretched_mesh():
    # a regular grid in the z=0 plane with 1 cm rows and 4 cm columns: each disc must be 4x
    # longer along x than along y (a clothed leg's surface grows round, not long)
    n = 9
    ys, xs = torch.meshgrid(torch.arange(n) * 0.01, torch.arange(n) * 0.04, indexing="ij")
    V = torch.stack([xs, ys, torch.zeros_like(xs)], -1).reshape(-1, 3)
    idx = torch.arange(n * n).reshape(n, n)
    a, b, c, d = idx[:-1, :-1], idx[:-1, 1:], idx[1:, :-1], idx[1:, 1:]
    F = torch.cat([torch.stack([a, b, d], -1).reshape(-1, 3),
                   torch.stack([a, d, c], -1).reshape(-1, 3)])
    g = body_gaussians(V, F, torch.rand(len(V), 3), disc_scale=0.5,
                       normals=torch.tensor([0.0, 0.0, 1.0]).expand(len(V), 3))
    from humansplat.geometry import quat_to_rotmat

    inner = (idx[2:-2, 2:-2]).reshape(-1)  # away from the border's one-sided rings
    R = quat_to_rotmat(g.quats[inner])
    s = g.scales[inner]
    major = torch.where((s[:, :1] > s[:, 1:2]), R[:, :, 0], R[:, :, 1])
    ratio = s[:, :2].max(1).values / s[:, :2].min(1).values
    assert (major[:, 0].abs() > 0.95).all()  # the long axis is x
    assert ((ratio > 2.5) & (ratio < 5.0)).all(), ratio
    assert torch.allclose(torch.linalg.det(R), torch.ones(len(R)), atol=1e-4)


# ----------------------------------------------------------------------------------------
# visibility and fill
# ----------------------------------------------------------------------------------------
def test_visibility_follows_facing_occlusion_and_mask():
    # a big ellipsoid with a small one in front of it
    V, F, L = spheres([((0.0, 0.0, 0.0), (0.5, 0.7, 0.3), TORSO),
                       ((0.0, 0.0, 0.6), (0.12, 0.12, 0.12), ARM)])
    syn = ProjectionSynthesizer(min_cos=0.1)
    body = syn.texture(make_input(V, F, L, S=64))
    centre = torch.tensor([0.0, 0.0, 2.6])
    n = vertex_normals(V, F)
    cos = (n * torch.nn.functional.normalize(centre - V, dim=-1)).sum(-1)
    back = L == TORSO
    assert not body.visible[cos <= 0.1].any()
    # torso points hidden behind the small ellipsoid (same image position, nearer occluder)
    rel = V[:, :2].norm(dim=-1)
    hidden = back & (rel < 0.06) & (cos > 0.5)
    assert hidden.any() and not body.visible[hidden].any()
    # well-facing torso points away from the occluder and the silhouette are seen
    clear = back & (cos > 0.7) & (rel > 0.25)
    assert body.visible[clear].all()


@pytest.mark.parametrize("fill", ["full", "harmonic", "grey"])
def test_a_uniform_photo_colours_the_whole_body(fill):
    V, F, L = spheres([((0.0, 0.0, 0.0), (0.5, 0.7, 0.3), TORSO)])
    inp = make_input(V, F, L, image=BLUE[:, None, None].expand(3, 48, 48).clone())
    body = ProjectionSynthesizer(fill=fill).texture(inp)
    assert body.visible.any() and (~body.visible).any()
    assert torch.allclose(body.colors[body.visible], BLUE.expand(int(body.visible.sum()), 3),
                          atol=1e-5)
    expect = torch.full((3,), 0.5) if fill == "grey" else BLUE
    assert torch.allclose(body.colors[~body.visible], expect.expand_as(
        body.colors[~body.visible]), atol=1e-3)


def test_the_back_of_a_shirt_gets_the_shirt_colour_not_the_arm_in_front():
    # a "torso" with an "arm" in front of it; the photo shows a blue torso and a skin arm
    V, F, L = spheres([((0.0, 0.0, 0.0), (0.4, 0.6, 0.2), TORSO),
                       ((0.0, 0.0, 0.35), (0.12, 0.35, 0.12), ARM)])
    S = 64
    c0 = cam.orbit_cameras([0.0], width=S, height=S)
    r = rasterize_mesh(V, F, c0.viewmats[0], c0.Ks[0], S, S)
    lab = torch.full((S, S), -1)
    lab[r.coverage] = L[F[r.face_ids[r.coverage], 0]]
    image = torch.ones(3, S, S)
    image[:, lab == TORSO] = BLUE[:, None]
    image[:, lab == ARM] = SKIN[:, None]
    inp = make_input(V, F, L, S=S, image=image)
    syn = ProjectionSynthesizer()
    body = syn.texture(inp)
    behind = (L == TORSO) & (V[:, 2] < -0.1) & (V[:, 0].abs() < 0.08)  # right behind the arm
    assert behind.sum() >= 3 and not body.visible[behind].any()
    assert (body.colors[behind] - BLUE).abs().max() < 0.05
    # and the rendered back view shows blue where the torso's back is
    out = syn(inp)
    back = out.previews[2]
    rb = rasterize_mesh(V, F, out.cameras.viewmats[2], out.cameras.Ks[2], S, S)
    torso_px = torch.zeros(S, S, dtype=torch.bool)
    torso_px[rb.coverage] = L[F[rb.face_ids[rb.coverage], 0]] == TORSO
    torso_px &= torch.nn.functional.max_pool2d((~torso_px).float()[None, None], 5, 1, 2)[0, 0] == 0
    assert torso_px.sum() > 50
    assert (back[:, torso_px] - BLUE[:, None]).abs().mean() < 0.03


def test_a_badge_on_the_front_is_not_copied_onto_the_back():
    """A blue shirt with a small red badge on its front: the back view is the shirt's blue
    everywhere (back_lowpass); copying the photo as it is (back_lowpass=0) puts the badge
    on the back, which is what the default must not do."""
    V, F, L = spheres([((0.0, 0.0, 0.0), (0.4, 0.6, 0.2), TORSO)])
    S = 64
    c0 = cam.orbit_cameras([0.0], width=S, height=S)
    r = rasterize_mesh(V, F, c0.viewmats[0], c0.Ks[0], S, S)
    image = torch.ones(3, S, S)
    image[:, r.coverage] = BLUE[:, None]
    badge = torch.zeros(S, S, dtype=torch.bool)
    badge[28:32, 37:41] = True  # off-centre: the front/back look-up is not a mirror
    assert bool(r.coverage[badge].all())
    assert int(badge.sum()) < 0.03 * int(r.coverage.sum())  # a detail, not the garment
    image[:, badge] = torch.tensor([0.9, 0.1, 0.1])[:, None]
    inp = make_input(V, F, L, S=S, image=image)
    for lowpass, copied in ((0.03, False), (0.0, True)):
        out = ProjectionSynthesizer(back_lowpass=lowpass, mirror_weight=0.0)(inp)
        back = out.previews[2]
        red = (back[0] > 0.5) & (back[2] < 0.4)
        assert bool(red.any()) == copied, (lowpass, int(red.sum()))
        if not copied:
            rb = rasterize_mesh(V, F, out.cameras.viewmats[2], out.cameras.Ks[2], S, S)
            inner = torch.nn.functional.max_pool2d((~rb.coverage).float()[None, None], 5, 1,
                                                   2)[0, 0] == 0
            assert (back[:, inner] - BLUE[:, None]).abs().mean() < 0.03
        # the mask of every view is its person coverage: 1 on the body, 0 on the background
        assert out.masks is not None and out.masks.shape == (4, S, S)
        assert float(out.masks[0].sub(inp.mask.float()).abs().max()) < 1e-5
        rb = rasterize_mesh(V, F, out.cameras.viewmats[2], out.cameras.Ks[2], S, S)
        assert float(out.masks[2][rb.coverage].mean()) > 0.95
        assert float(out.masks[2][~rb.coverage].mean()) < 0.05


def test_an_open_jackets_shirt_stays_on_the_front_and_its_stripes_go_round():
    """A blue jacket open over a white shirt (a vertical band down the middle, 15 % of the
    torso: common in the part, so the whole-part rule copies it onto the back) with dark
    horizontal stripes across its whole width. With ``back_wrap`` (the default) the back
    is the jacket, stripes included; counting the whole part puts the shirt on the back."""
    V, F, L = spheres([((0.0, 0.0, 0.0), (0.4, 0.6, 0.2), TORSO)])
    S = 64
    c0 = cam.orbit_cameras([0.0], width=S, height=S)
    r = rasterize_mesh(V, F, c0.viewmats[0], c0.Ks[0], S, S)
    cols = torch.arange(S)[None, :].expand(S, S)
    rows = torch.arange(S)[:, None].expand(S, S)
    xs = cols[r.coverage].float()
    mid = float(xs.mean())
    shirt = r.coverage & ((cols - mid).abs() < 0.09 * float(xs.max() - xs.min()))
    stripes = r.coverage & (rows % 8 < 2) & ~shirt
    share = int(shirt.sum()) / int(r.coverage.sum())
    assert 0.10 < share < 0.25, share  # common in the part as a whole
    image = torch.ones(3, S, S)
    image[:, r.coverage] = BLUE[:, None]
    image[:, shirt] = 0.95
    image[:, stripes] = 0.05
    inp = make_input(V, F, L, S=S, image=image)
    rb = None
    for wrap, copied in ((ProjectionConfig().back_wrap, False), ((), True)):
        out = ProjectionSynthesizer(back_wrap=wrap, mirror_weight=0.0)(inp)
        back = out.previews[2]
        if rb is None:
            rb = rasterize_mesh(V, F, out.cameras.viewmats[2], out.cameras.Ks[2], S, S)
            inner = torch.nn.functional.max_pool2d((~rb.coverage).float()[None, None], 5, 1,
                                                   2)[0, 0] == 0
        white = inner & (back.min(0).values > 0.8)
        assert bool(white.sum() > 10) == copied, (wrap, int(white.sum()))
        dark = inner & (back.max(0).values < 0.2)
        assert int(dark.sum()) > 0.1 * int(inner.sum()), (wrap, int(dark.sum()))


def test_mirror_seeds_copy_the_left_right_counterpart():
    # two "arms" at x = +-0.35 seen from the side (azimuth 70): one is seen, one is hidden
    V, F, L = spheres([((0.35, 0.0, 0.0), (0.12, 0.4, 0.12), ARM),
                       ((-0.35, 0.0, 0.0), (0.12, 0.4, 0.12), PART_NAMES.index("right_arm"))])
    from scipy.spatial import cKDTree

    mirrored = (V * torch.tensor([-1.0, 1.0, 1.0])).numpy()
    dist, sym = cKDTree(V.numpy()).query(mirrored)
    sym = torch.as_tensor(sym)
    assert dist.max() < 1e-5
    S = 48
    c = cam.orbit_cameras([70.0], width=S, height=S)
    yy = torch.linspace(0, 1, S)[None, :, None].expand(3, S, S)
    image = torch.stack([yy[0], 1 - yy[0], torch.full((S, S), 0.5)])  # colour varies with y
    inp = make_input(V, F, L, S=S, image=image, fit_camera=c)
    kw = dict(front_back_weight=0.0, source_smoothing=0)
    with_m = ProjectionSynthesizer(symmetry=sym, **kw).texture(inp)
    without = ProjectionSynthesizer(**kw).texture(inp)
    assert with_m.stats["mirror"] and not without.stats["mirror"]
    tgt = with_m.seeded & with_m.visible[sym]
    assert tgt.sum() > 20
    err_m = (with_m.colors[tgt] - with_m.colors[sym[tgt]]).abs().mean()
    err_0 = (without.colors[tgt] - without.colors[sym[tgt]]).abs().mean()
    assert err_m < 0.03 and err_m < 0.5 * err_0


def test_mask_pixels_beyond_the_body_become_extras_seen_from_behind():
    V, F, L = spheres([((0.0, 0.0, 0.0), (0.3, 0.5, 0.2), TORSO)])
    S = 64
    c0 = cam.orbit_cameras([0.0], width=S, height=S)
    r = rasterize_mesh(V, F, c0.viewmats[0], c0.Ks[0], S, S)
    mask = r.coverage.float()
    image = BLUE[:, None, None].expand(3, S, S).clone()
    cols = r.coverage.any(0).nonzero().squeeze(1)
    x1 = int(cols.max())
    mask[28:36, x1 + 1:x1 + 7] = 1.0  # a "ponytail" right of the body
    image[:, 26:38, x1 - 6:x1 + 9] = torch.tensor([0.9, 0.1, 0.1])[:, None, None]
    syn = ProjectionSynthesizer()
    inp = make_input(V, F, L, S=S, image=image, mask=mask[None])
    body = syn.texture(inp)
    ex = body.extras
    assert ex is not None and 20 <= len(ex) <= 48
    assert (ex.rgb - torch.tensor([0.9, 0.1, 0.1])).abs().max() < 1e-4  # photo, no bleed
    assert (ex.labels == TORSO).all()
    z = ex.means[:, 2]  # world z: between the body's back and front surfaces
    assert (z.abs() < 0.2).all()
    # from behind the ponytail is on the other side of the image, still red
    back = syn(inp).previews[2]
    red = (back[0] > 0.6) & (back[1] < 0.35)
    assert red.sum() > 10
    assert red.nonzero()[:, 1].float().mean() < S / 2 - 5


# ----------------------------------------------------------------------------------------
# the synthesizer contract
# ----------------------------------------------------------------------------------------
def test_views_follow_the_contract():
    V, F, L = spheres([((0.0, 0.0, 0.0), (0.4, 0.6, 0.3), TORSO)])
    S = 32
    g = torch.Generator().manual_seed(0)
    image = torch.rand(3, S, S, generator=g)
    inp = make_input(V, F, L, S=S, image=image)
    threads = torch.get_num_threads()
    syn = ProjectionSynthesizer()
    steps = []
    out = syn(inp, progress=lambda *a: steps.append(a))
    assert torch.get_num_threads() == threads  # a run never changes process-wide state
    assert len(out) == 4 and out.space == "pixel" and out.previews.shape == (4, 3, S, S)
    assert torch.equal(out.features, out.previews)
    m = inp.mask
    assert torch.allclose(out.previews[0], image * m + (1 - m))  # the input view is the photo
    assert out.previews.min() >= 0 and out.previews.max() <= 1
    assert [s[0] for s in steps] == [1, 2, 3]
    for key in ("synthesizer", "seconds", "visible", "seeded", "renderer", "fill"):
        assert key in out.info
    assert out.info["input_view_replaced"] == [True, False, False, False]
    # another resolution, no input replacement, the splatting renderer
    out2 = ProjectionSynthesizer(resolution=24, replace_input_view=False, renderer="gaussians",
                                 background=(0.0, 0.0, 0.0))(inp)
    assert out2.previews.shape == (4, 3, 24, 24) and out2.cameras.width == 24
    assert out2.previews[:, :, 0, 0].abs().max() < 1e-6  # black background in the corners
    assert out2.previews[0, :, 12, 12].sum() > 0.1  # the body is there
    both = ProjectionSynthesizer(config=ProjectionConfig(fill="grey"), supersample=1).config
    assert both.fill == "grey" and both.supersample == 1


def test_input_camera_different_from_the_fit_camera():
    V, F, L = spheres([((0.1, 0.0, 0.0), (0.4, 0.6, 0.3), TORSO)])
    S = 32
    turned = cam.orbit_cameras([40.0], width=S, height=S)
    inp = make_input(V, F, L, S=S, input_camera=turned)
    body = ProjectionSynthesizer().texture(inp)
    fit = inp.body_fit
    a, _ = cam.project_points(V, fit.viewmat[None], fit.K[None])
    b, _ = cam.project_points(body.vertices, turned.viewmats, turned.Ks)
    assert torch.allclose(a, b, atol=1e-3)


@pytest.mark.parametrize("kw", [dict(fill="mirror"), dict(renderer="opengl"), dict(min_cos=1.5),
                                dict(background=2.0), dict(resolution=4), dict(supersample=0),
                                dict(front_back_exclude=("tail",)), dict(back_wrap=("cape",)),
                                dict(opacity=0.0)])
def test_bad_config_is_rejected(kw):
    with pytest.raises(ConfigError):
        ProjectionSynthesizer(**kw)


def test_bad_inputs_are_rejected():
    with pytest.raises(ValueError, match="unknown ProjectionSynthesizer option"):
        ProjectionSynthesizer(colour="red")
    V, F, L = spheres([((0.0, 0.0, 0.0), (0.4, 0.6, 0.3), TORSO)])
    inp = make_input(V, F, L, S=32)
    inp.body_fit = None
    with pytest.raises(ValueError, match="body_fit"):
        ProjectionSynthesizer()(inp)
    inp = make_input(V, F, L, S=32)
    inp.body_fit.faces = F + len(V)
    with pytest.raises(ValueError, match="body_fit.faces"):
        ProjectionSynthesizer().texture(inp)
    inp = make_input(V, F, L, S=32)
    inp.body_fit.part_labels = L[:-1]
    with pytest.raises(ValueError, match="part_labels"):
        ProjectionSynthesizer().texture(inp)


# ----------------------------------------------------------------------------------------
# on a textured Anny body (needs the Anny cache: scripts/setup.sh builds it)
# ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def anny():
    from humansplat.prior.body import AnnyBody

    return AnnyBody()


def test_unseen_views_beat_grey_and_mirror_fills(anny):
    """The must-show, small: side and back views vs ground truth (PSNR, whole image)."""
    case = sq.make_case(anny, 96)
    res = sq.evaluate(case, anny, methods=("grey", "mirror", "projection"))
    for view in ("left", "back", "right"):
        ours = res["projection"][view]["psnr"]
        assert ours > res["grey"][view]["psnr"] + 1.0, (view, res)
        assert ours > res["mirror"][view]["psnr"] + 1.0, (view, res)


def test_prior_gaussians_of_anny_are_labelled_and_export(anny, tmp_path):
    import plyfile
    case = sq.make_case(anny, 64)
    syn = ProjectionSynthesizer(anny)
    g = syn.prior_gaussians(case.inp)
    assert len(g) >= anny.num_vertices and g.labels is not None
    assert int(g.labels.min()) >= 0 and int(g.labels.max()) < 24
    assert g.rgb.min() >= 0 and g.rgb.max() <= 1
    # the torso's back (unseen) is shirt-coloured (stripes; the front logo too), not skin
    back = (anny.part_labels == TORSO) & (case.inp.body_fit.vertices[:, 2] < -0.02)
    rgb = g.rgb[:anny.num_vertices][back]
    shirt = torch.tensor([sq._SHIRT, sq._STRIPE, sq._LOGO, (0.55, 0.63, 0.78)])  # + a blend
    d_shirt = torch.cdist(rgb, shirt).min(dim=1).values
    d_skin = (rgb - torch.tensor(sq._SKIN)).norm(dim=1)
    assert (d_shirt < d_skin).float().mean() > 0.97
    save_ply(g, tmp_path / "prior.ply")
    ply = plyfile.PlyData.read(str(tmp_path / "prior.ply"))
    assert ply["vertex"].count == len(g)
    assert np.allclose(ply["vertex"]["y"], g.means[:, 1].numpy(), atol=1e-6)
