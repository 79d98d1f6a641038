"""The body fitter (humansplat.prior.fit) and its pictures (humansplat.prior.overlay).

The round trip: an Anny body of known pose and shape is rendered by our renderer from an
azimuth; the fitter sees its projected keypoints and the render's alpha, and must recover it
(2D keypoint error < 3% of the image, silhouette IoU > 0.85, 3D joints close after
alignment). Two cases run by default, more with the slow marker."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
import torch

from anny_fixture import anny_body  # noqa: F401  (session fixture)
from humansplat.cameras import DEFAULT_FOVY_DEG, intrinsics_from_fov, project_points
from humansplat.errors import ConfigError, NoPersonError
from humansplat.geometry import axis_angle_to_matrix
from humansplat.metrics import mask_iou
from humansplat.prior.fit import (INPUT_CAMERA_RADIUS, QUICK_FIT, FitConfig, _PosePrior,
                                  depth_lean, fit_body, input_camera, procrustes_align,
                                  render_body, sample_pose, surface_points, synthetic_view)
from humansplat.prior.overlay import mesh_silhouette, overlay_fit
from humansplat.prior.parts import KEYPOINT_NAMES, PART_NAMES

SIZE = 256


def _case(body, azimuth, gender, seed):
    g = torch.Generator().manual_seed(seed)
    pose = sample_pose(body, g, 0.5)
    shape = 0.2 + 0.6 * torch.rand(body.num_shape, generator=g)
    shape[0] = gender
    shape[1] = 0.5 + 0.4 * torch.rand((), generator=g)  # adults
    return synthetic_view(body, pose, shape, azimuth_deg=azimuth, size=SIZE)


def _pa_mpjpe_mm(body, fit, view) -> float:
    j = body.smpl_joints[body.smpl_joints > 0]
    return float((procrustes_align(fit.joints[j], view.joints[j]) - view.joints[j])
                 .norm(dim=-1).mean()) * 1000


@pytest.fixture(scope="module")
def fitted(anny_body):
    """One fitted synthetic photo shared by the cheaper tests below."""
    view = _case(anny_body, 30.0, 1.0, seed=7)
    return view, fit_body(anny_body, view.keypoints_xy, torch.ones(23), view.mask)


@pytest.mark.parametrize("azimuth, gender, seed", [
    (0.0, 0.0, 1),
    (135.0, 1.0, 2),
    pytest.param(45.0, 1.0, 3, marks=pytest.mark.slow),
    pytest.param(-90.0, 0.0, 4, marks=pytest.mark.slow),
    pytest.param(180.0, 0.0, 5, marks=pytest.mark.slow),
    pytest.param(-45.0, 1.0, 6, marks=pytest.mark.slow),
])
def test_round_trip(anny_body, azimuth, gender, seed):
    view = _case(anny_body, azimuth, gender, seed)
    fit = fit_body(anny_body, view.keypoints_xy, torch.ones(23), view.mask)
    d = fit.diagnostics
    truth_err = (fit.keypoints_2d - view.keypoints_xy).norm(dim=-1).median() / SIZE
    assert d["kp_err_frac"] < 0.03 and truth_err < 0.03, d
    assert d["silhouette_iou"] > 0.85, d
    assert _pa_mpjpe_mm(anny_body, fit, view) < 120.0
    # the fit faces the way the body was seen: yaw within 60 deg of -azimuth
    R = axis_angle_to_matrix(fit.params["global_orient"])
    yaw = math.degrees(math.atan2(R[0, 2], R[2, 2]))
    assert abs((yaw + azimuth + 180) % 360 - 180) < 60, (yaw, azimuth)


def _lean_deg(v: torch.Tensor) -> float:
    """How far a world vector [3] leans toward the input camera (+z), degrees."""
    return math.degrees(math.asin(float(v[2] / v.norm())))


def _legs(fit) -> torch.Tensor:
    k, n = fit.keypoints, list(KEYPOINT_NAMES)
    mid = lambda a: 0.5 * (k[n.index("left_" + a)] + k[n.index("right_" + a)])  # noqa: E731
    return mid("hip") - mid("ankle")


@pytest.mark.parametrize("azimuth, gender, seed", [(0.0, 1.0, 1), (135.0, 0.0, 2)])
def test_upper_body_photo_fits_a_body_standing_under_it(anny_body, azimuth, gender, seed):
    """A photo cut below the hips shows neither the legs nor how the body leans in depth
    (a lean only foreshortens it, which the scale absorbs): the fit keeps the body upright
    and its legs under it, not folded toward the camera to stay inside the frame."""
    view = _case(anny_body, azimuth, gender, seed)
    conf, mask, valid = view.cut_at_hips()
    fit = fit_body(anny_body, view.keypoints_xy, conf, mask, valid=valid,
                   config=FitConfig(ignore_beyond_photo=True))
    assert abs(fit.lean_deg) < 10
    assert abs(_lean_deg(_legs(fit))) < 20
    seen = conf > 0
    assert (fit.keypoints_2d - view.keypoints_xy)[seen].norm(dim=-1).median() / SIZE < 0.02
    assert fit.diagnostics["silhouette_iou"] > 0.85  # scored inside the photo


def test_keypoints_beyond_the_photo_are_guesses_and_ignored(anny_body):
    """A detector places the joints a cut photo hides somewhere beyond its edge, often with
    some confidence: the fit gives them no say (the same fit as without them), unless too
    few body keypoints would be left to fit at all."""
    view = _case(anny_body, 30.0, 1.0, seed=5)
    conf, mask, valid = view.cut_at_hips()
    cfg = FitConfig(ignore_beyond_photo=True, **QUICK_FIT)
    guessed = view.keypoints_xy.clone()
    hidden = conf == 0
    guessed[hidden] = torch.tensor([SIZE * 0.5, SIZE - 2.0])  # all at the bottom, past the cut
    a = fit_body(anny_body, view.keypoints_xy, conf, mask, valid=valid, config=cfg)
    b = fit_body(anny_body, guessed, torch.where(hidden, 0.5, conf), mask, valid=valid,
                 config=cfg)
    assert torch.equal(a.vertices, b.vertices)
    assert a.diagnostics["lower_body_hidden"] == b.diagnostics["lower_body_hidden"] == 10 / 12
    # nothing of the body inside the photo: the detector's guesses are all there is
    none = np.zeros_like(valid)
    none[:4] = 1.0
    c = fit_body(anny_body, view.keypoints_xy, torch.ones(23), mask * none, valid=none,
                 config=cfg)
    assert c.diagnostics["lower_body_hidden"] == 0.0


def test_synthetic_view_leans_toward_the_camera(anny_body):
    g = torch.Generator().manual_seed(3)
    pose, shape = sample_pose(anny_body, g, 0.3), torch.full((anny_body.num_shape,), 0.5)
    view = synthetic_view(anny_body, pose, shape, azimuth_deg=60.0, lean_deg=20.0, size=64)
    assert math.isclose(float(depth_lean(view.params["global_orient"])),
                        math.sin(math.radians(20.0)), abs_tol=1e-5)
    R = axis_angle_to_matrix(view.params["global_orient"])
    yaw = math.degrees(math.atan2(R[0, 2], R[2, 2]))  # the turn comes first, then the lean
    assert abs(yaw + 60.0) < 3.0


def test_fit_result_layout(anny_body, fitted):
    view, fit = fitted
    V = anny_body.num_vertices
    assert fit.vertices.shape == (V, 3) and fit.part_labels.shape == (V,)
    assert fit.keypoints.shape == (23, 3) and fit.image_size == (SIZE, SIZE)
    # the input camera: on +z looking at the origin, the pipeline's fov, centred principal point
    cam = input_camera(SIZE, SIZE)
    assert torch.allclose(fit.viewmat, cam.viewmats[0]) and torch.allclose(fit.K, cam.Ks[0])
    assert torch.allclose(fit.cameras.centers[0], torch.tensor([0, 0, INPUT_CAMERA_RADIUS]))
    assert torch.allclose(fit.K, intrinsics_from_fov(DEFAULT_FOVY_DEG, SIZE, SIZE))
    # the params reproduce the body
    p = fit.params
    out = anny_body(p["body_pose"][None], p["shape"][None], p["global_orient"][None],
                    p["transl"][None], p["scale"][None])
    assert torch.allclose(out.vertices[0], fit.vertices, atol=1e-5)
    assert float(p["transl"][2]) == 0.0  # the root stays at depth 0: near the origin
    assert set(fit.diagnostics) >= {"kp_err_px_median", "kp_err_frac", "silhouette_iou",
                                    "iterations", "seconds"}


def test_fit_without_mask_and_with_missing_keypoints(anny_body):
    view = _case(anny_body, -30.0, 0.0, seed=11)
    conf = torch.ones(23)
    conf[[KEYPOINT_NAMES.index(n) for n in ("left_small_toe", "right_small_toe",
                                            "left_wrist")]] = 0.0
    kp = view.keypoints_xy.clone()
    kp[KEYPOINT_NAMES.index("left_wrist")] = torch.tensor([1e4, -1e4])  # garbage, ignored
    fit = fit_body(anny_body, kp, conf, image_size=(SIZE, SIZE),
                   config=FitConfig(iters_silhouette=0))
    assert fit.diagnostics["silhouette_iou"] is None
    assert fit.diagnostics["kp_err_frac"] < 0.01


def test_pruning_drops_hopeless_hypotheses_and_keeps_the_answer(anny_body):
    """The pose stage stops paying for hypotheses far behind the best: with pruning the
    kept answer is the one the full search finds (same yaw start, same keypoint error)."""
    view = _case(anny_body, -30.0, 0.0, seed=11)  # the defaults drop 5 of 8 here
    default = FitConfig().prune_every
    fits = {every: fit_body(anny_body, view.keypoints_xy, torch.ones(23), image_size=(SIZE, SIZE),
                            config=FitConfig(iters_silhouette=0, prune_every=every))
            for every in (0, default)}
    full, pruned = fits[0].diagnostics, fits[default].diagnostics
    assert full["hypotheses_after_pruning"] == FitConfig().pose_hypotheses
    assert pruned["hypotheses_after_pruning"] < full["hypotheses_after_pruning"]
    assert pruned["yaw_deg"] == full["yaw_deg"]
    assert abs(pruned["kp_err_frac"] - full["kp_err_frac"]) < 0.002
    assert pruned["kp_err_frac"] < 0.01


def test_fit_input_errors(anny_body):
    kp, conf = torch.zeros(23, 2) + SIZE / 2, torch.ones(23)
    with pytest.raises(ValueError, match="keypoints_xy"):
        fit_body(anny_body, torch.zeros(17, 2), conf, image_size=(SIZE, SIZE))
    with pytest.raises(ValueError, match="keypoint_conf"):
        fit_body(anny_body, kp, torch.ones(17), image_size=(SIZE, SIZE))
    with pytest.raises(ValueError, match="image_size"):
        fit_body(anny_body, kp, conf)
    with pytest.raises(ValueError, match="mask"):
        fit_body(anny_body, kp, conf, np.zeros((64, 64)), image_size=(SIZE, SIZE))
    with pytest.raises(ValueError, match="valid"):
        fit_body(anny_body, kp, conf, np.zeros((SIZE, SIZE)), valid=np.ones((64, 64)))
    few = torch.zeros(23)
    few[:5] = 1.0  # the face alone
    with pytest.raises(NoPersonError, match="keypoints"):
        fit_body(anny_body, kp, few, image_size=(SIZE, SIZE))
    with pytest.raises(ConfigError, match="iters_pose"):
        FitConfig(iters_pose=-1)
    with pytest.raises(ConfigError, match="w_upright_hidden"):
        FitConfig(w_upright_hidden=-0.5)


def test_sample_pose_respects_the_limits(anny_body):
    prior = _PosePrior(anny_body)
    g = torch.Generator().manual_seed(0)
    poses = torch.stack([sample_pose(anny_body, g, 1.0) for _ in range(20)])
    _, lim = prior(poses)
    assert lim.abs().max() < 1e-8
    # bending a knee forward (hyperextension) is penalised, backward is free
    knee = torch.zeros(2, 24, 3)
    knee[0, PART_NAMES.index("left_leg"), 0] = 1.0
    knee[1, PART_NAMES.index("left_leg"), 0] = -1.0
    _, lim = prior(knee)
    assert lim[0] < 1e-8 < 0.5 < lim[1]


def test_procrustes_align_recovers_a_similarity():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(20, 3, generator=g, dtype=torch.float64)
    R = axis_angle_to_matrix(torch.tensor([0.3, -1.0, 0.5], dtype=torch.float64))
    y = 1.7 * x @ R.T + torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    assert torch.allclose(procrustes_align(x, y), y, atol=1e-9)


def test_mesh_silhouette_area_matches_geometry():
    """A 1 m square facing the input camera at the origin covers (f / d)^2 px."""
    cam = input_camera(200, 200)
    verts = torch.tensor([[-0.5, -0.5, 0], [0.5, -0.5, 0], [0.5, 0.5, 0], [-0.5, 0.5, 0.0]])
    faces = torch.tensor([[0, 1, 2], [0, 2, 3]])
    sil = mesh_silhouette(verts, faces, cam.viewmats[0], cam.Ks[0], 200, 200)
    side = float(cam.Ks[0, 0, 0]) / INPUT_CAMERA_RADIUS
    assert abs(sil.sum() - side ** 2) < 4 * side + 4
    assert sil[100, 100] and not sil[0, 0]


def test_splat_silhouette_matches_the_mesh(anny_body):
    """render_body's splats end on the mesh outline (the inward offset removes the bias)."""
    pose = sample_pose(anny_body, torch.Generator().manual_seed(5), 0.5)
    bp = anny_body.body_pose_from_smpl(pose[None])
    pts = surface_points(anny_body, 1500)
    cam = input_camera(128, 128)
    with torch.no_grad():
        out = anny_body(bp, vertex_ids=pts.vertex_ids)
        _, alpha = render_body(anny_body, out, pts, cam)
        full = anny_body(bp)
    mesh = mesh_silhouette(full.vertices[0], anny_body.faces, cam.viewmats[0], cam.Ks[0], 128,
                           128)
    mesh = torch.as_tensor(mesh, dtype=torch.float32)
    a = alpha[0, ..., 0]
    # Against the exact (pixel-centre) z-buffer silhouette the splats cover ~12-15% more
    # area at 128-512 px (measured; the offset was tuned against OpenCV's conservative fill,
    # which the overlay used before): close, and the bound keeps it from drifting further.
    assert mask_iou(a, mesh) > 0.85
    assert 1.0 < float(a.sum() / mesh.sum()) < 1.2


def test_overlay_image(fitted):
    view, fit = fitted
    img = overlay_fit(view.rgb, fit, keypoints_xy=view.keypoints_xy)
    assert img.shape == (SIZE, SIZE, 3) and img.dtype == np.uint8
    sil = mesh_silhouette(fit.vertices, fit.faces, fit.viewmat, fit.K, SIZE, SIZE)
    changed = (img.astype(int) - view.rgb.astype(int)).any(-1)
    assert changed[sil].mean() > 0.95  # the body is drawn where it projects
    far = ~np.pad(sil, 12)[12:-12, 12:-12]
    far &= ~np.roll(sil, 12, 0) & ~np.roll(sil, -12, 0) & ~np.roll(sil, 12, 1) & \
        ~np.roll(sil, -12, 1)
    assert changed[far].mean() < 0.05  # and nowhere else (keypoint marks aside)
    with pytest.raises(ValueError, match="image"):
        overlay_fit(view.rgb[:100], fit)


def test_save_obj_round_trip(fitted, tmp_path):
    from humansplat.io.mesh import load_obj

    _, fit = fitted
    mesh = load_obj(fit.save_obj(tmp_path / "body.obj"))
    assert np.allclose(mesh.verts, fit.vertices.numpy(), atol=1e-5)
    assert np.array_equal(mesh.faces, fit.faces.numpy())
    assert mesh.vertex_colors is not None and mesh.vertex_colors.shape == (len(mesh.verts), 3)


def test_fit_works_for_smpl(tmp_path):
    """The fitter is model-agnostic: a (synthetic) SMPL body fitted to its own keypoints."""
    import pickle

    from test_body import _synthetic_smpl

    from humansplat.prior.body import SMPLBody

    with open(tmp_path / "SMPL_NEUTRAL.pkl", "wb") as fh:
        pickle.dump(_synthetic_smpl(), fh)
    smpl = SMPLBody(tmp_path)
    pose = sample_pose(smpl, torch.Generator().manual_seed(3), 0.4)
    with torch.no_grad():
        out = smpl(smpl.body_pose_from_smpl(pose[None]),
                   global_orient=torch.tensor([[0.0, 0.4, 0.0]]))
    cam = input_camera(SIZE, SIZE)
    uv, _ = project_points(out.keypoints[0], cam.viewmats, cam.Ks)
    fit = fit_body(smpl, uv[0], torch.ones(23), image_size=(SIZE, SIZE),
                   config=FitConfig(iters_silhouette=0))
    assert fit.diagnostics["kp_err_frac"] < 0.02


def test_fit_real_photo(anny_body):
    """scikit-image's astronaut (upper body, bulky suit, helmet in the mask): a plausible fit
    -- the face keypoints land on the face, the shoulders on the shoulders, and the body
    covers most of the person mask."""
    from skimage import data

    from humansplat.prior.fit import fit_preprocessed
    from humansplat.prior.preprocess import preprocess

    pre = preprocess(data.astronaut())
    fit = fit_preprocessed(pre, anny_body)
    xy, conf = pre.landmarks.keypoints(KEYPOINT_NAMES)
    err = (fit.keypoints_2d - torch.as_tensor(xy)).norm(dim=-1).numpy()
    for name in ("nose", "left_eye", "right_eye", "left_shoulder", "right_shoulder"):
        assert err[KEYPOINT_NAMES.index(name)] < 0.04 * pre.size, name
    assert fit.diagnostics["silhouette_iou"] > 0.55
    # upright, facing the camera (turned < 42 degrees: the 45- and 90-degree yaw starts end
    # nearly tied here, and a crop one pixel wider flips between them, R[2,2] 0.93 / 0.80)
    R = axis_angle_to_matrix(fit.params["global_orient"])
    assert R[1, 1] > 0.9 and R[2, 2] > 0.75
    # not leaning in depth: the detector's guesses at her knees below the photo's edge are
    # ignored (with them the fit leaned 14 degrees toward the camera at this crop size, and
    # 23 away from it in the pipeline's 256 px crop)
    assert abs(fit.lean_deg) < 8


def test_fit_config_from_set_items_is_the_pipelines_parser():
    """benchmarks/body_fit.py and scripts/fit_leans.py take ``--set FIELD=VALUE`` as the
    pipeline does (JSON values), and FitConfig refuses a wrong type, a typo or an unknown
    field instead of guessing."""
    import importlib.util
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root / "benchmarks"))
    spec = importlib.util.spec_from_file_location("body_fit_bench",
                                                  root / "benchmarks" / "body_fit.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    cfg = bench.fit_config(["ignore_beyond_photo=false", "w_upright=0.3", "iters_pose=10"])
    assert (cfg.ignore_beyond_photo, cfg.w_upright, cfg.iters_pose) == (False, 0.3, 10)
    for bad in ("ignore_beyond_photo=1", "ignore_beyond_photo=flase", "nope=1",
                "w_upright=abc", "iters_pose=1.5"):
        with pytest.raises(ValueError):
            bench.fit_config([bad])
