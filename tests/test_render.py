"""humansplat.render against an independent brute-force reference (tests/reference_render.py),
finite differences, gsplat's own torch code, and (with CUDA) gsplat's kernels."""

from __future__ import annotations

import pytest
import torch

from humansplat.cameras import orbit_cameras
from humansplat.render import TorchRasterConfig, gsplat_available, rasterize
from humansplat.geometry import (axis_angle_to_matrix, quat_multiply, quat_to_axis_angle,
                                 quat_to_rotmat, rotmat_to_quat)
from humansplat.render.ewa import eval_sh, project_gaussians
from reference_render import render_reference

@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These scenes are tiny: on a shared, busy 2-core machine torch's second thread only
    waits for a core (it made single renders 100x slower here), so run them on one."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


W, H = 37, 29  # neither a multiple of 8 nor of 16: partial tiles on both edges
COLOR_MODES = {"rgb": (None, 3), "feat5": (None, 5), "sh0": (0, 3), "sh1": (1, 3),
               "sh3": (3, 3)}


def _scene(seed: int, mode: str, background: bool, dtype=torch.float64, n: int = 48):
    """Random Gaussians around the origin seen by two orbit cameras at 2 m, with: a few
    behind a camera or past the far plane, some partly off-image, and a stack of opaque
    ones in the middle, so that the 0.999 clamp, the 1/255 skip and the early stop all
    happen."""
    g = torch.Generator().manual_seed(seed)
    sh_degree, D = COLOR_MODES[mode]
    means = (torch.rand(n, 3, generator=g) - 0.5) * 1.2
    # the opaque stack; the first sits on both cameras' axes, i.e. on a pixel centre, where
    # opacity 1 gives alpha > 0.999
    means[:4] = torch.tensor([[0.0, 0.0, 0.0], [0.02, 0.01, 0.05], [-0.03, 0.0, -0.05],
                              [0.0, -0.02, -0.15]])
    means[4:6] = torch.tensor([[0.1, 0.0, 3.0], [0.0, 0.2, 2.5]])  # behind camera 0
    quats = torch.randn(n, 4, generator=g) * 2.0  # deliberately not unit
    scales = torch.rand(n, 3, generator=g) * 0.12 + 0.01
    scales[:4] = 0.15
    opacities = torch.rand(n, generator=g) * 0.95 + 0.04
    opacities[:4] = 1.0
    opacities[6] = 0.5 / 255  # below the skip threshold everywhere
    if sh_degree is None:
        colors = torch.rand(n, D, generator=g)
    else:
        colors = torch.randn(n, 16, 3, generator=g) * 0.4  # K=16 >= (deg+1)^2: extra unused
    cams = orbit_cameras([10.0, 100.0], [5.0, -15.0], 2.0, width=W, height=H, fovy_deg=50.0)
    bg = torch.rand(2, D, generator=g) if background else None
    cast = lambda t: None if t is None else t.to(dtype)  # noqa: E731
    return dict(means=cast(means), quats=cast(quats), scales=cast(scales),
                opacities=cast(opacities), colors=cast(colors), viewmats=cast(cams.viewmats),
                Ks=cast(cams.Ks), width=W, height=H, backgrounds=cast(bg),
                sh_degree=sh_degree, far_plane=40.0)


def _render(scene, **kw):
    s = dict(scene)
    args = [s.pop(k) for k in ("means", "quats", "scales", "opacities", "colors", "viewmats",
                               "Ks", "width", "height")]
    return rasterize(*args, **s, **kw)


def _reference(scene, stats=None):
    s = dict(scene)
    args = [s.pop(k) for k in ("means", "quats", "scales", "opacities", "colors", "viewmats",
                               "Ks", "width", "height")]
    return render_reference(*args, **s, stats=stats)


# ------------------------------------------------------------------------------------
# forward against the brute-force reference
# ------------------------------------------------------------------------------------
COMPOSITORS = ["torch", "numba"]  # the reference and the compiled one (renders w/o grad)


@pytest.mark.parametrize("compositor", COMPOSITORS)
@pytest.mark.parametrize("background", [False, True])
@pytest.mark.parametrize("mode", list(COLOR_MODES))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_float32_matches_reference(seed, mode, background, compositor):
    ref_c, ref_a = _reference(_scene(seed, mode, background))
    c, a, meta = _render(_scene(seed, mode, background, torch.float32), backend="torch",
                         torch_config=TorchRasterConfig(compositor=compositor))
    assert c.shape == ref_c.shape and a.shape == (2, H, W, 1) and c.dtype == torch.float32
    assert (c.double() - ref_c).abs().mean() < 1e-4  # the issue asks < 1e-3
    assert (a.double() - ref_a).abs().mean() < 1e-4
    assert (c.double() - ref_c).abs().max() < 2e-2  # rare flips at the 1/255 and 1e-4 rules
    assert meta["backend"] == "torch"


def test_reference_scenes_exercise_every_rule():
    stats = {}
    for seed in (0, 1, 2):
        _reference(_scene(seed, "rgb", False), stats=stats)
    assert stats["clamped"] > 0 and stats["stopped"] > 0 and stats["skipped"] > 0


@pytest.mark.parametrize("compositor", COMPOSITORS)
@pytest.mark.parametrize("mode", ["feat5", "sh3"])
@pytest.mark.parametrize("config", [dict(), dict(tile_size=16, depth_chunk=3),
                                    dict(tile_size=4, depth_chunk=1, chunk_elems=512)])
def test_float64_equals_reference(mode, config, compositor):
    """In float64 the only differences are rounding: the algorithm is the same."""
    config = TorchRasterConfig(**config, compositor=compositor)
    scene = _scene(3, mode, True)
    ref_c, ref_a = _reference(scene)
    c, a, _ = _render(scene, backend="torch", torch_config=config)
    assert torch.allclose(c, ref_c, atol=1e-10) and torch.allclose(a, ref_a, atol=1e-10)


# ------------------------------------------------------------------------------------
# gradients
# ------------------------------------------------------------------------------------
PARAMS = ("means", "quats", "scales", "opacities", "colors", "backgrounds")


@pytest.mark.parametrize("mode", ["feat5", "sh1", "sh3"])
@pytest.mark.parametrize("depth_chunk, compositor", [(32, "torch"), (3, "torch"), (32, "numba")])
def test_gradients_match_reference_autograd(mode, depth_chunk, compositor):
    """Our recomputing backward against autograd through the reference, on a scene with
    clamped alphas, skipped alphas and early stops (all rules the backward must follow)."""
    scene = _scene(4, mode, True)
    for k in PARAMS:
        scene[k] = scene[k].clone().requires_grad_(True)
    g = torch.Generator().manual_seed(9)
    gc = torch.randn(2, H, W, scene["backgrounds"].shape[1], generator=g, dtype=torch.float64)
    ga = torch.randn(2, H, W, 1, generator=g, dtype=torch.float64)
    ref_c, ref_a = _reference(scene)
    ref = torch.autograd.grad((ref_c * gc).sum() + (ref_a * ga).sum(),
                              [scene[k] for k in PARAMS])
    c, a, _ = _render(scene, backend="torch",
                      torch_config=TorchRasterConfig(depth_chunk=depth_chunk,
                                                     compositor=compositor))
    ours = torch.autograd.grad((c * gc).sum() + (a * ga).sum(), [scene[k] for k in PARAMS])
    for name, x, y in zip(PARAMS, ours, ref):
        assert torch.allclose(x, y, rtol=1e-7, atol=1e-9 * y.abs().max()), name


@pytest.mark.parametrize("compositor", COMPOSITORS)
@pytest.mark.parametrize("only", ["colors", "opacities", "backgrounds"])
def test_gradient_of_one_input(only, compositor):
    """The backward skips the work for inputs that need no gradient; the rest stays exact."""
    scene = _scene(4, "feat5", True)
    for k in PARAMS:
        scene[k] = scene[k].clone().requires_grad_(k == only)
    ref_c, ref_a = _reference(scene)
    ref, = torch.autograd.grad(ref_c.square().sum() + ref_a.sum(), [scene[only]])
    c, a, _ = _render(scene, backend="torch",
                      torch_config=TorchRasterConfig(compositor=compositor))
    ours, = torch.autograd.grad(c.square().sum() + a.sum(), [scene[only]])
    assert torch.allclose(ours, ref, rtol=1e-7, atol=1e-10)


def _smooth_scene(sh_degree):
    """Three broad, semi-transparent Gaussians over a 12x10 image: every pixel sees every
    Gaussian with 0.01 < alpha < 0.9 and transmittance stays far above 1e-4, so the render
    is smooth in every parameter (no 1/255, 0.999 or stop-rule edges for finite
    differences to cross)."""
    g = torch.Generator().manual_seed(5)
    dt = torch.float64
    means = torch.tensor([[0.05, -0.03, 0.1], [-0.06, 0.04, -0.1], [0.0, 0.02, 0.3]], dtype=dt)
    quats = torch.randn(3, 4, generator=g, dtype=dt)
    scales = torch.tensor([[0.5, 0.4, 0.3], [0.6, 0.35, 0.4], [0.45, 0.5, 0.5]], dtype=dt)
    opacities = torch.tensor([0.55, 0.7, 0.6], dtype=dt)
    colors = (torch.rand(3, 4, generator=g, dtype=dt) if sh_degree is None
              else torch.randn(3, (sh_degree + 1) ** 2, 3, generator=g, dtype=dt) * 0.2)
    cams = orbit_cameras([20.0], [10.0], 2.5, width=12, height=10, fovy_deg=30.0, dtype=dt)
    bg = torch.rand(1, 4 if sh_degree is None else 3, generator=g, dtype=dt)
    return means, quats, scales, opacities, colors, cams, bg


@pytest.mark.parametrize("compositor", COMPOSITORS)
@pytest.mark.parametrize("sh_degree", [None, 2])
def test_gradcheck(sh_degree, compositor):
    means, quats, scales, opacities, colors, cams, bg = _smooth_scene(sh_degree)
    # check the smoothness preconditions on this very scene
    proj = project_gaussians(means, quats, scales, cams.viewmats, cams.Ks, 12, 10,
                             opacities=opacities)
    ys, xs = torch.meshgrid(torch.arange(10, dtype=torch.float64) + 0.5,
                            torch.arange(12, dtype=torch.float64) + 0.5, indexing="ij")
    d = torch.stack([xs, ys], -1).reshape(-1, 1, 2) - proj.means2d[0][None]
    a, b, c = proj.conics[0].unbind(-1)
    power = 0.5 * (a * d[..., 0] ** 2 + c * d[..., 1] ** 2) + b * d[..., 0] * d[..., 1]
    alpha = opacities * torch.exp(-power)
    assert alpha.min() > 0.01 and alpha.max() < 0.9

    def f(means, quats, scales, opacities, colors, bg):
        img, alph, _ = rasterize(means, quats, scales, opacities, colors, cams.viewmats,
                                 cams.Ks, 12, 10, backgrounds=bg, sh_degree=sh_degree,
                                 backend="torch",
                                 torch_config=TorchRasterConfig(tile_size=4, depth_chunk=2,
                                                                compositor=compositor))
        return img, alph

    inputs = [t.clone().requires_grad_(True)
              for t in (means, quats, scales, opacities, colors, bg)]
    # fast mode checks random projections of the Jacobian (the full one needs a backward
    # per output pixel); the reference-autograd test above checks it in full
    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-6, rtol=1e-5, fast_mode=True)


@pytest.mark.parametrize("compositor", COMPOSITORS)
def test_no_grad_path_equals_grad_path(compositor):
    """A render without gradients is the autograd forward to the bit."""
    scene = _scene(0, "rgb", True, torch.float32)
    ref = TorchRasterConfig(compositor=compositor)
    with torch.no_grad():
        c0, a0, _ = _render(scene, backend="torch", torch_config=ref)
    scene["means"] = scene["means"].clone().requires_grad_(True)
    c1, a1, _ = _render(scene, backend="torch", torch_config=ref)
    assert c1.requires_grad and torch.equal(c0, c1.detach()) and torch.equal(a0, a1.detach())


def _big_scene(seed: int, mode: str, n: int = 3000):
    scene = _scene(seed, mode, True, dtype=torch.float32, n=n)
    cams = orbit_cameras([10.0, 100.0], [5.0, -15.0], 2.0, width=256, height=224, fovy_deg=50.0)
    scene.update(viewmats=cams.viewmats, Ks=cams.Ks, width=256, height=224)
    return scene


def test_numba_compositor_matches_torch_compositor_at_size():
    """The compiled compositor against the torch one on a 256 x 224 render of 3,000
    Gaussians (SH3, clamps, skips, early stops): rounding-level differences only, and the
    default ("auto") picks it on the CPU."""
    scene = _big_scene(6, "sh3")
    with torch.no_grad():
        c0, a0, _ = _render(scene, backend="torch",
                            torch_config=TorchRasterConfig(compositor="torch"))
        c1, a1, _ = _render(scene, backend="torch",
                            torch_config=TorchRasterConfig(compositor="numba"))
        c2, a2, _ = _render(scene, backend="torch")
    assert torch.equal(c1, c2) and torch.equal(a1, a2)
    assert (c1 - c0).abs().mean() < 1e-6 and (a1 - a0).abs().mean() < 1e-6
    assert (c1 - c0).abs().max() < 2e-2 and (a1 - a0).abs().max() < 2e-2
    assert (a0 > 0.5).float().mean() > 0.2  # a real scene, not an empty image


# ------------------------------------------------------------------------------------
# culling, empty sets, meta
# ------------------------------------------------------------------------------------
def _one_camera(dtype=torch.float32):
    cams = orbit_cameras([0.0], 0.0, 2.0, width=32, height=24, dtype=dtype)
    return cams.viewmats, cams.Ks


def _gaussians_at(points, dtype=torch.float32):
    n = len(points)
    return (torch.tensor(points, dtype=dtype), torch.tensor([[1.0, 0, 0, 0]] * n, dtype=dtype),
            torch.full((n, 3), 0.05, dtype=dtype), torch.full((n,), 0.9, dtype=dtype),
            torch.ones(n, 3, dtype=dtype))


@pytest.mark.parametrize("z, kept", [(0.0, True),  # 2 m in front: drawn
                                     (2.5, False),  # behind the camera (at z=2)
                                     (1.995, False),  # 5 mm in front: nearer than near_plane
                                     (-40.0, False)])  # 42 m away: beyond far_plane
def test_culling(z, kept):
    viewmats, Ks = _one_camera()
    c, a, meta = rasterize(*_gaussians_at([[0.0, 0.0, z]]), viewmats, Ks, 32, 24,
                           near_plane=0.01, far_plane=30.0, backend="torch")
    assert int(meta["n_visible"][0]) == int(kept)
    assert (a.max() > 0.5) == kept
    if not kept:
        assert a.abs().max() == 0 and c.abs().max() == 0


@pytest.mark.parametrize("n", [0, 2])  # none at all, or all behind the camera
def test_empty_render_is_background_and_differentiable(n):
    viewmats, Ks = _one_camera()
    means, quats, scales, opacities, colors = _gaussians_at([[0.0, 0.0, 3.0]] * n) if n else (
        torch.zeros(0, 3), torch.zeros(0, 4), torch.zeros(0, 3), torch.zeros(0),
        torch.zeros(0, 3))
    means.requires_grad_(True)
    colors.requires_grad_(True)
    bg = torch.tensor([[0.2, 0.4, 0.6]], requires_grad=True)
    c, a, meta = rasterize(means, quats, scales, opacities, colors, viewmats, Ks, 32, 24,
                           backgrounds=bg, backend="torch")
    assert c.shape == (1, 24, 32, 3) and a.shape == (1, 24, 32, 1)
    assert torch.equal(a, torch.zeros_like(a))
    assert torch.allclose(c, bg.detach().expand(24, 32, 3)[None])
    assert int(meta["n_visible"][0]) == 0 and meta["n_isects"] == 0
    c.sum().backward()
    assert torch.equal(means.grad, torch.zeros_like(means))
    assert torch.allclose(bg.grad, torch.full((1, 3), 24.0 * 32.0))


def test_meta_and_wide_features():
    scene = _scene(1, "rgb", False, torch.float32)
    scene["colors"] = torch.rand(48, 27)  # RGB + 24 part labels in one pass
    c, a, meta = _render(scene, backend="auto")  # CPU tensors: auto picks torch
    assert c.shape == (2, H, W, 27)
    assert meta["backend"] == "torch"
    assert meta["radii"].shape == (2, 48, 2) and meta["radii"].dtype == torch.int32
    assert meta["means2d"].shape == (2, 48, 2) and meta["depths"].shape == (2, 48)
    assert meta["conics"].shape == (2, 48, 3) and meta["n_visible"].shape == (2,)
    assert torch.equal(meta["n_visible"], (meta["radii"] > 0).all(-1).sum(1))
    assert meta["n_isects"] > 0 and meta["max_per_tile"] > 0
    # the 27 channels are 27 independent renders of one channel each
    one = dict(scene, colors=scene["colors"][:, 5:6].contiguous())
    c5, _, _ = _render(one, backend="torch")
    assert torch.allclose(c[..., 5:6], c5, atol=1e-6)


# ------------------------------------------------------------------------------------
# bad input
# ------------------------------------------------------------------------------------
NB = 8  # Gaussians in the bad-input scene


def _bad(**changes):
    s = _scene(0, "rgb", True, torch.float32, n=NB)
    s.update(changes)
    return s


BAD_INPUTS = [
    (dict(means=torch.rand(NB, 2)), "means"),
    (dict(quats=torch.rand(NB, 3)), "quats"),
    (dict(scales=torch.rand(NB + 1, 3)), "scales"),
    (dict(opacities=torch.rand(NB, 1)), "opacities"),
    (dict(colors=torch.rand(NB + 1, 3)), "colors"),
    (dict(colors=torch.rand(NB, 16, 3)), "colors"),  # SH coefficients without sh_degree
    (dict(viewmats=torch.eye(4)[None, :3]), "viewmats"),
    (dict(Ks=torch.eye(3).repeat(3, 1, 1)), "Ks"),
    (dict(backgrounds=torch.rand(2, 4)), "backgrounds"),
    (dict(means=torch.full((NB, 3), float("nan"))), "means"),
    (dict(scales=torch.full((NB, 3), float("inf"))), "scales"),
    (dict(colors=torch.full((NB, 3), float("nan"))), "colors"),
    (dict(viewmats=torch.full((2, 4, 4), float("nan"))), "viewmats"),
    (dict(means=torch.rand(NB, 3, dtype=torch.float16)), "means"),
    (dict(quats=torch.rand(NB, 4, dtype=torch.float64)), "quats"),
    (dict(means=torch.randint(0, 3, (NB, 3))), "means"),
    (dict(opacities=torch.rand(NB, device="meta")), "opacities"),
    (dict(opacities=torch.full((NB,), 2.0)), "opacities"),  # logits, not activated
    (dict(scales=torch.full((NB, 3), -3.0)), "scales"),  # log-scales, not activated
    (dict(quats=torch.zeros(NB, 4)), "quats"),
    (dict(width=0), "width"),
    (dict(height=-4), "height"),
    (dict(width=32.0), "width"),
    (dict(sh_degree=4, colors=torch.rand(NB, 25, 3)), "sh_degree"),
    (dict(sh_degree=2, colors=torch.rand(NB, 4, 3)), "colors"),
    (dict(near_plane=5.0, far_plane=1.0), "near_plane"),
    (dict(eps2d=float("nan")), "eps2d"),
]


@pytest.mark.parametrize("changes, name", BAD_INPUTS,
                         ids=[f"{n}-{i}" for i, (_, n) in enumerate(BAD_INPUTS)])
def test_bad_input_names_the_argument(changes, name):
    with pytest.raises(ValueError, match=name):
        _render(_bad(**changes), backend="torch")


@pytest.mark.parametrize("compositor", COMPOSITORS)
def test_tiles_on_threads_render_the_same_bits(compositor):
    """``TorchRasterConfig.threads``: a render without gradients large enough to be split
    (>= 512 busy tiles) is the one-thread image to the bit, SH colours, clamped alphas and
    early stops included; with gradients the setting changes nothing either."""
    scene = _big_scene(5, "sh3")
    cfg = lambda n: TorchRasterConfig(threads=n, compositor=compositor)  # noqa: E731
    with torch.no_grad():
        c1, a1, _ = _render(scene, backend="torch", torch_config=cfg(1))
        c2, a2, _ = _render(scene, backend="torch", torch_config=cfg(2))
        c3, a3, _ = _render(scene, backend="torch", torch_config=cfg(3))
    assert torch.equal(c1, c2) and torch.equal(a1, a2)
    assert torch.equal(c1, c3) and torch.equal(a1, a3)
    means = scene["means"].clone().requires_grad_(True)
    c4, _, _ = _render({**scene, "means": means}, backend="torch", torch_config=cfg(2))
    assert torch.equal(c4.detach(), c1)
    (g,) = torch.autograd.grad(c4.sum(), [means])
    assert torch.isfinite(g).all() and g.abs().sum() > 0
    if compositor == "numba":  # its backward splits the tiles too: the same sums, reordered
        c5, _, _ = _render({**scene, "means": means}, backend="torch", torch_config=cfg(1))
        (g1,) = torch.autograd.grad(c5.sum(), [means])
        assert torch.allclose(g, g1, rtol=1e-5, atol=1e-6 * float(g1.abs().max()))


@pytest.mark.parametrize("tile_size", [8, 16, 5])
def test_compiled_binning_equals_torch_binning(tile_size):
    """The counting sort (numba) gives the torch sort's tile lists exactly: three cameras,
    Gaussians off the image and behind a camera, and many equal depths (ties keep the
    (camera, Gaussian) order)."""
    from humansplat.render.torch_backend import bin_gaussians

    scene = _scene(7, "rgb", False, dtype=torch.float32, n=2000)
    scene["means"][::3, 2] = 0.25  # equal depths for a third of them in the first camera
    cams = orbit_cameras([0.0, 10.0, 100.0], [0.0, 5.0, -15.0], 2.0, width=101, height=77,
                         fovy_deg=50.0)
    proj = project_gaussians(scene["means"], scene["quats"], scene["scales"], cams.viewmats,
                             cams.Ks, 101, 77, opacities=scene["opacities"])
    a = bin_gaussians(proj.means2d, proj.radii, proj.depths, 101, 77, tile_size)
    b = bin_gaussians(proj.means2d, proj.radii, proj.depths, 101, 77, tile_size,
                      compiled=True)
    assert a.isect_vis.numel() > a.vis_ids.numel() > 1000
    for f in ("vis_ids", "isect_vis", "tiles", "tile_start", "tile_count"):
        assert torch.equal(getattr(a, f), getattr(b, f)), f
    assert (a.tiles_x, a.tiles_y, a.tile_size) == (b.tiles_x, b.tiles_y, b.tile_size)


def test_tiles_on_threads_split_the_work(monkeypatch):
    """The split is real: the threaded path runs (and only where it pays: a small render
    composites on one thread)."""
    from humansplat.render import torch_backend

    calls = []
    real = torch_backend._composite_forward_threaded
    monkeypatch.setattr(torch_backend, "_composite_forward_threaded",
                        lambda *a: calls.append(a[2].start.numel()) or real(*a))
    cfg = TorchRasterConfig(threads=2, compositor="torch")
    with torch.no_grad():
        _render(_big_scene(5, "rgb"), backend="torch", torch_config=cfg)
        assert calls and calls[0] >= torch_backend._MIN_THREADED_TILES
        calls.clear()
        _render(_scene(5, "rgb", False, dtype=torch.float32), backend="torch",
                torch_config=cfg)  # 37 x 29 px: a few tiles
    assert not calls


def test_numba_tiles_on_threads_split_the_work(monkeypatch):
    """The compiled compositor runs each thread's share of the tiles (all of them, once)."""
    from humansplat.render import numba_composite

    shares = []
    real = numba_composite._composite_tiles
    monkeypatch.setattr(numba_composite, "_composite_tiles",
                        lambda *a: shares.append(a[7].copy()) or real(*a))
    with torch.no_grad():
        _render(_big_scene(5, "rgb"), backend="torch",
                torch_config=TorchRasterConfig(threads=2, compositor="numba"))
    assert len(shares) == 2 and all(len(s) > 100 for s in shares)
    tiles = sorted(int(t) for s in shares for t in s)
    assert tiles == list(range(len(tiles)))


def _plus_one(x):
    return x + 1


def test_kernels_compile_without_a_disk_cache(monkeypatch):
    """Where numba finds no writable cache folder (a read-only install, no writable home) it
    refuses ``cache=True``; the kernels are then compiled per process instead."""
    import numba

    from humansplat.render import numba_composite

    real = numba.njit

    def njit(*args, **kwargs):
        if kwargs.get("cache"):
            raise RuntimeError("cannot cache function '_plus_one': no locator available")
        return real(*args, **kwargs)

    monkeypatch.setattr(numba, "njit", njit)
    assert numba_composite._compile(_plus_one)(2) == 3


def test_compositor_falls_back_without_numba(monkeypatch):
    """Without numba "auto" renders with the torch compositor (the same bits as asking for
    it) and asking for numba is a clear error."""
    from humansplat.render import numba_composite

    scene = _scene(1, "sh1", True, torch.float32)
    with torch.no_grad():
        ref = _render(scene, backend="torch", torch_config=TorchRasterConfig(compositor="torch"))
        monkeypatch.setattr(numba_composite, "numba", None)
        monkeypatch.setattr(numba_composite, "_composite_tiles", None)
        auto = _render(scene, backend="torch")
    assert torch.equal(ref[0], auto[0]) and torch.equal(ref[1], auto[1])
    with pytest.raises(ValueError, match="needs numba"):
        TorchRasterConfig(compositor="numba")


@pytest.mark.parametrize("field", ["tile_size", "depth_chunk", "chunk_elems", "threads"])
def test_bad_torch_config(field):
    with pytest.raises(ValueError, match=field):
        TorchRasterConfig(**{field: 0})
    with pytest.raises(ValueError, match="compositor"):
        TorchRasterConfig(compositor="cuda")


def test_bad_backend():
    with pytest.raises(ValueError, match="backend"):
        _render(_bad(), backend="opengl")
    with pytest.raises(ValueError, match="gsplat"):
        _render(_bad(), backend="gsplat")  # CPU tensors


# ------------------------------------------------------------------------------------
# shared math against gsplat's own pure-torch code (runs on CPU)
# ------------------------------------------------------------------------------------
def test_projection_matches_gsplat_torch_impl():
    import gsplat.cuda._torch_impl as impl
    g = torch.Generator().manual_seed(0)
    means = torch.randn(500, 3, generator=g) * 0.6
    quats = torch.randn(500, 4, generator=g)
    scales = torch.rand(500, 3, generator=g) * 0.08
    cams = orbit_cameras([0.0, 45.0, 200.0], [0.0, 10.0, -20.0], 2.0, width=96, height=72)
    covars, _ = impl._quat_scale_to_covar_preci(quats, scales, compute_preci=False)
    radii, m2, depths, conics, _ = impl._fully_fused_projection(means, covars, cams.viewmats,
                                                                cams.Ks, 96, 72)
    ours = project_gaussians(means, quats, scales, cams.viewmats, cams.Ks, 96, 72)
    vis = (radii > 0).all(-1)
    assert torch.equal(vis, ours.visible) and vis.sum() > 100
    assert torch.equal(radii, ours.radii)
    assert torch.allclose(m2[vis], ours.means2d[vis], atol=1e-3)
    assert torch.allclose(conics[vis], ours.conics[vis], rtol=1e-4, atol=1e-6)
    assert torch.allclose(depths, ours.depths)


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_sh_matches_gsplat_torch_impl(degree):
    import gsplat.cuda._torch_impl as impl
    g = torch.Generator().manual_seed(degree)
    dirs, sh = torch.randn(200, 3, generator=g), torch.randn(200, 16, 3, generator=g)
    assert torch.allclose(eval_sh(degree, sh, dirs), impl._spherical_harmonics(degree, dirs, sh),
                          atol=1e-5)


def test_quaternion_helpers():
    g = torch.Generator().manual_seed(0)
    unit = lambda: torch.nn.functional.normalize(  # noqa: E731
        torch.randn(500, 4, generator=g, dtype=torch.float64), dim=-1)
    q = unit()
    q = torch.where(q[:, :1] < 0, -q, q)
    R = quat_to_rotmat(q)
    eye = torch.eye(3, dtype=torch.float64).expand(500, 3, 3)
    assert torch.allclose(R @ R.transpose(-1, -2), eye, atol=1e-12)
    assert torch.allclose(torch.linalg.det(R), torch.ones(500, dtype=torch.float64))
    assert torch.allclose(rotmat_to_quat(R), q, atol=1e-10)
    assert torch.allclose(rotmat_to_quat(R[0]), q[0], atol=1e-10)  # unbatched
    q2 = unit()
    assert torch.allclose(quat_to_rotmat(quat_multiply(q, q2)), R @ quat_to_rotmat(q2), atol=1e-12)
    assert torch.allclose(quat_to_rotmat(3.0 * q), R)  # any norm
    # axis-angle from a quaternion: back to the same rotation, the shorter way round
    aa = quat_to_axis_angle(q)
    assert torch.allclose(axis_angle_to_matrix(aa), R, atol=1e-10)
    assert (aa.norm(dim=-1) <= torch.pi + 1e-12).all()
    assert torch.allclose(quat_to_axis_angle(-q), aa, atol=1e-12)
    assert torch.equal(quat_to_axis_angle(torch.tensor([1.0, 0, 0, 0])), torch.zeros(3))


def _emulated_rasterize_to_pixels(means2d, conics, colors, opacities, width, height, tile_size,
                                  isect_offsets, flatten_ids, backgrounds=None, masks=None,
                                  packed=False, absgrad=False):
    """gsplat 1.5.3's rasterize_to_pixels_3dgs_fwd kernel, transcribed to plain torch (per
    tile, its depth-sorted list, every pixel of the tile), forward only."""
    C, N = means2d.shape[:2]
    D = colors.shape[-1]
    out = torch.zeros(C, height, width, D)
    alphas = torch.zeros(C, height, width, 1)
    ends = torch.cat([isect_offsets.reshape(-1)[1:].long(), torch.tensor([len(flatten_ids)])])
    th, tw = isect_offsets.shape[1:]
    for t, (lo, hi) in enumerate(zip(isect_offsets.reshape(-1).tolist(), ends.tolist())):
        c, ty, tx = t // (th * tw), t % (th * tw) // tw, t % tw
        ys = torch.arange(ty * tile_size, min((ty + 1) * tile_size, height))
        xs = torch.arange(tx * tile_size, min((tx + 1) * tile_size, width))
        if len(ys) == 0 or len(xs) == 0:
            continue
        py, px = torch.meshgrid(ys + 0.5, xs + 0.5, indexing="ij")
        T = torch.ones_like(px)
        acc = torch.zeros(*px.shape, D)
        done = torch.zeros_like(px, dtype=torch.bool)
        for g in flatten_ids[lo:hi].tolist():
            n = g % N
            dx, dy = means2d[c, n, 0] - px, means2d[c, n, 1] - py
            a, b, cc = conics[c, n]
            sigma = 0.5 * (a * dx * dx + cc * dy * dy) + b * dx * dy
            alpha = torch.clamp(opacities[c, n] * torch.exp(-sigma), max=0.999)
            use = ~done & (sigma >= 0) & (alpha >= 1.0 / 255.0)
            nT = T * (1 - alpha)
            stop = use & (nT <= 1e-4)
            done |= stop
            use &= ~stop
            acc += torch.where(use, alpha * T, 0.0)[..., None] * colors[c, n]
            T = torch.where(use, nT, T)
        if backgrounds is not None:
            acc += T[..., None] * backgrounds[c]
        out[c, ys[0]:ys[-1] + 1, xs[0]:xs[-1] + 1] = acc
        alphas[c, ys[0]:ys[-1] + 1, xs[0]:xs[-1] + 1, 0] = 1 - T
    return out, alphas


def test_gsplat_backend_glue_with_emulated_kernels(monkeypatch):
    """The gsplat backend's glue (tile lists, offsets, channel chunks, backgrounds, meta) on
    CPU: gsplat's own pure-torch intersection code and a transcription of its forward kernel
    stand in for the CUDA kernels, and must give the torch backend's image."""
    import gsplat.cuda._torch_impl as impl
    import gsplat.cuda._wrapper as wrapper
    from humansplat.render.gsplat_backend import rasterize_gsplat

    def isect_tiles(means2d, radii, depths, tile_size, tw, th, packed=False, **_):
        return impl._isect_tiles(means2d, radii, depths, tile_size, tw, th)

    monkeypatch.setattr(wrapper, "isect_tiles", isect_tiles)
    monkeypatch.setattr(wrapper, "isect_offset_encode", impl._isect_offset_encode)
    monkeypatch.setattr(wrapper, "rasterize_to_pixels", _emulated_rasterize_to_pixels)
    scene = _scene(1, "rgb", True, torch.float32, n=24)
    g = torch.Generator().manual_seed(2)
    scene["colors"] = torch.rand(24, 40, generator=g)  # > 32 channels: two chunks
    scene["backgrounds"] = torch.rand(2, 40, generator=g)
    with torch.no_grad():
        c_ref, a_ref, _ = _render(scene, backend="torch")
        s = dict(scene)
        args = [s.pop(k) for k in ("means", "quats", "scales", "opacities", "colors",
                                   "viewmats", "Ks", "width", "height")]
        c, a, meta = rasterize_gsplat(*args, **s)
    assert meta["backend"] == "gsplat" and meta["n_isects"] > 0
    assert torch.allclose(c, c_ref, atol=1e-5) and torch.allclose(a, a_ref, atol=1e-5)


# ------------------------------------------------------------------------------------
# CUDA: our torch backend and our gsplat backend against gsplat.rasterization
# ------------------------------------------------------------------------------------
@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device for gsplat")
@pytest.mark.skipif(torch.cuda.is_available() and not gsplat_available(),
                    reason="gsplat's CUDA kernels do not build here: no CUDA toolkit (nvcc) "
                    "to compile them")
@pytest.mark.parametrize("mode", ["rgb", "sh3", "wide"])
def test_cuda_parity_with_gsplat(mode):
    import gsplat
    scene = _scene(2, "sh3" if mode == "sh3" else "rgb", True, torch.float32, n=400)
    if mode == "wide":  # > 32 channels: gsplat renders in channel chunks
        g = torch.Generator().manual_seed(1)
        scene["colors"] = torch.rand(400, 40, generator=g)
        scene["backgrounds"] = torch.rand(2, 40, generator=g)
    scene = {k: v.cuda() if isinstance(v, torch.Tensor) else v for k, v in scene.items()}
    for k in PARAMS:
        scene[k] = scene[k].clone().requires_grad_(True)

    def grads(c, a):
        g = torch.Generator(device="cuda").manual_seed(3)
        loss = (c * torch.randn(c.shape, generator=g, device="cuda")).sum() + \
            (a * torch.randn(a.shape, generator=g, device="cuda")).sum()
        return torch.autograd.grad(loss, [scene[k] for k in PARAMS])

    s = dict(scene)
    args = [s.pop(k) for k in ("means", "quats", "scales", "opacities", "colors", "viewmats",
                               "Ks", "width", "height")]
    c_ref, a_ref, _ = gsplat.rasterization(*args, packed=False, rasterize_mode="classic", **s)
    g_ref = grads(c_ref, a_ref)
    for backend in ("gsplat", "torch"):
        c, a, meta = _render(scene, backend=backend)
        assert meta["backend"] == backend
        assert (c - c_ref).abs().mean() < 1e-4 and (a - a_ref).abs().mean() < 1e-4, backend
        for name, x, y in zip(PARAMS, grads(c, a), g_ref):
            err = (x - y).abs().mean() / y.abs().mean().clamp_min(1e-12)
            assert err < 1e-2, (backend, name, float(err))
    c_auto, _, meta = _render(scene)
    assert meta["backend"] == "gsplat"
