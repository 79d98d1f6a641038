"""Reposable avatars (humansplat.avatar): surface binding, unpose/repose, motions, CLI.

References are independent of the code under test: closest points against a brute-force
search over every triangle; a forearm Gaussian against the rigid rotation about the elbow
joint that the body model itself reports; the round trip against the input Gaussians."""

from __future__ import annotations

import math

import imageio.v3 as iio
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from anny_fixture import anny_body  # noqa: F401  (session fixture)
from humansplat.avatar import BodyParams, bind, body_surface_gaussians, closest_points_on_mesh
from humansplat.avatar.motions import MOTIONS, make_motion
from humansplat.avatar.skinning import polar_rotation
from humansplat.avatar.surface import closest_points_on_triangles
from humansplat.gaussians import Gaussians
from humansplat.io import save_ply
from humansplat.geometry import axis_angle_to_matrix, quat_conjugate, quat_multiply, quat_to_rotmat
from humansplat.prior.fit import sample_pose
from humansplat.prior.parts import PART_NAMES


def _params(body, seed=0, strength=0.6, orient=(0.1, 0.5, -0.05), scale=0.93):
    g = torch.Generator().manual_seed(seed)
    pose = body.body_pose_from_smpl(sample_pose(body, g, strength)[None])[0]
    return BodyParams(pose, body.shape_default.clone(), torch.tensor(orient),
                      torch.tensor([0.02, 0.1, -0.03]), torch.tensor(scale))


def _random_gaussians(body, params, n=3000, spread=0.03, seed=0) -> Gaussians:
    """Gaussians scattered around the posed body's surface (on, inside and outside it)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        verts = body(**params.forward_args()).vertices[0]
    idx = torch.randint(0, verts.shape[0], (n,), generator=g)
    means = verts[idx] + spread * torch.randn(n, 3, generator=g)
    return Gaussians(means=means, quats=F.normalize(torch.randn(n, 4, generator=g), dim=-1),
                     scales=0.001 + 0.01 * torch.rand(n, 3, generator=g),
                     opacities=torch.rand(n, generator=g), colors=torch.rand(n, 3, generator=g))


def _quat_angle(q1, q2) -> torch.Tensor:
    """[N] rotation angle between quaternions (sign-independent; atan2 of the relative
    rotation, accurate near zero where acos of a dot product is not)."""
    rel = quat_multiply(quat_conjugate(F.normalize(q1, dim=-1)), F.normalize(q2, dim=-1))
    return 2 * torch.atan2(rel[:, 1:].norm(dim=-1), rel[:, 0].abs())


# --------------------------------------------------------------------------------------------
def test_closest_points_match_brute_force():
    g = torch.Generator().manual_seed(3)
    # a bumpy grid surface with well-shaped triangles, queries above and below it
    n = 12
    xs, zs = torch.meshgrid(torch.linspace(-1, 1, n), torch.linspace(-1, 1, n), indexing="ij")
    ys = 0.1 * torch.sin(3 * xs) * torch.cos(2 * zs)
    verts = torch.stack([xs, ys, zs], -1).reshape(-1, 3).double()
    i = torch.arange(n - 1)
    a = (i[:, None] * n + i[None, :]).reshape(-1)
    faces = torch.cat([torch.stack([a, a + 1, a + n], 1),
                       torch.stack([a + 1, a + n + 1, a + n], 1)])
    q = torch.rand(400, 3, generator=g, dtype=torch.float64) * 2.4 - 1.2
    q[:, 1] *= 0.3
    hit = closest_points_on_mesh(q, verts, faces, k=8)
    tri = verts[faces]  # [F,3,3]
    bc = closest_points_on_triangles(q[:, None], tri[None, :, 0], tri[None, :, 1], tri[None, :, 2])
    pts = (bc[..., None] * tri[None]).sum(-2)
    brute = (pts - q[:, None]).norm(dim=-1).min(1).values
    assert torch.allclose(hit.dist, brute, atol=1e-9)
    assert torch.allclose(hit.point, (hit.bary[:, :, None] * tri[hit.face]).sum(1), atol=1e-9)
    assert (hit.bary >= 0).all() and torch.allclose(hit.bary.sum(1), torch.ones(400).double())


def test_closest_point_regions():
    a, b, c = (torch.tensor(v, dtype=torch.float64) for v in ([0, 0, 0], [1, 0, 0], [0, 1, 0]))
    cases = {  # query -> expected barycentrics
        (0.2, 0.2, 0.5): (0.6, 0.2, 0.2),  # above the face
        (-1.0, -1.0, 0.0): (1, 0, 0),  # vertex A
        (2.0, -0.5, 0.3): (0, 1, 0),  # vertex B
        (0.5, -1.0, 0.0): (0.5, 0.5, 0),  # edge AB
        (1.0, 1.0, 0.0): (0, 0.5, 0.5),  # edge BC
    }
    for p, want in cases.items():
        got = closest_points_on_triangles(torch.tensor(p, dtype=torch.float64), a, b, c)
        assert torch.allclose(got, torch.tensor(want, dtype=torch.float64), atol=1e-12), p


@pytest.mark.parametrize("binding", ["triangle", "vertex"])
def test_unpose_repose_round_trip(anny_body, binding):
    params = _params(anny_body)
    g = _random_gaussians(anny_body, params)
    avatar = bind(g, anny_body, params, binding=binding)
    back = avatar.pose()  # repose to the fitted pose
    assert (back.means - g.means).abs().max() < 1e-4
    assert _quat_angle(back.quats, g.quats).max() < 1e-4
    assert torch.allclose(back.scales, g.scales, rtol=1e-5)
    assert torch.equal(back.opacities, g.opacities) and torch.equal(back.colors, g.colors)
    # and through canonical space: the rest pose, then the batch API
    canon = avatar.canonical()
    assert canon.means[:, 1].max() < 1.2 and canon.means[:, 1].min() > -1.2  # rest frame
    again = avatar.pose_batch(params.body_pose[None].expand(2, -1, -1))
    assert (again[1].means - g.means).abs().max() < 1e-4


def test_rest_pose_gives_canonical(anny_body):
    params = _params(anny_body)
    avatar = bind(_random_gaussians(anny_body, params, n=500), anny_body, params)
    rest = avatar.pose(torch.zeros(anny_body.num_joints - 1, 3), global_orient=torch.zeros(3),
                       transl=torch.zeros(3), scale=1.0)
    canon = avatar.canonical()
    assert (rest.means - canon.means).abs().max() < 1e-5
    assert _quat_angle(rest.quats, canon.quats).max() < 1e-3
    assert torch.allclose(rest.scales, canon.scales)


def test_forearm_follows_elbow(anny_body):
    """A Gaussian on the left forearm rotates rigidly about the elbow when only the elbow
    bends, and its orientation turns by the same rotation."""
    body = anny_body
    params = BodyParams(torch.zeros(body.num_joints - 1, 3), body.shape_default.clone(),
                        torch.zeros(3), torch.zeros(3), torch.tensor(1.0))
    with torch.no_grad():
        out = body(**params.forward_args())
    elbow_j = int(body.smpl_joints[PART_NAMES.index("left_forearm")])
    wrist_j = int(body.smpl_joints[PART_NAMES.index("left_hand")])
    elbow, wrist = out.joints[0, elbow_j], out.joints[0, wrist_j]
    # a point halfway down the forearm, 3 cm off its axis, where the forearm's bones rule
    axis = F.normalize(wrist - elbow, dim=0)
    side = F.normalize(torch.linalg.cross(axis, torch.tensor([0.0, 0.0, 1.0])), dim=0)
    x = 0.5 * (elbow + wrist) + 0.03 * side
    q = F.normalize(torch.tensor([[0.9, 0.1, -0.3, 0.2]]), dim=-1)
    g = Gaussians(means=x[None], quats=q, scales=torch.full((1, 3), 0.01),
                  opacities=torch.ones(1), colors=torch.ones(1, 3))
    avatar = bind(g, body, params)
    assert avatar.labels.tolist() == [PART_NAMES.index("left_forearm")]

    aa = torch.tensor([-1.2, 0.3, 0.0])  # bend the elbow (forearm forward and a bit out)
    R = axis_angle_to_matrix(aa)
    pose = torch.zeros(body.num_joints - 1, 3)
    pose[elbow_j - 1] = aa
    moved = avatar.pose(pose)
    want = elbow + R @ (x - elbow)
    assert (moved.means[0] - x).norm() > 0.05  # it really moved
    assert (moved.means[0] - want).norm() < 2e-3
    want_R = R @ quat_to_rotmat(q[0])
    got_R = quat_to_rotmat(moved.quats[0])
    assert (got_R - want_R).abs().max() < 1e-2
    # and the rest of the body (a Gaussian on the head) did not move
    head = out.joints[0, int(body.smpl_joints[PART_NAMES.index("head")])] + \
        torch.tensor([0.0, 0.05, 0.09])
    g2 = Gaussians(means=head[None], quats=q, scales=torch.full((1, 3), 0.01),
                   opacities=torch.ones(1), colors=torch.ones(1, 3))
    assert (bind(g2, body, params).pose(pose).means[0] - head).norm() < 1e-5


def test_polar_rotation_is_nearest_rotation():
    g = torch.Generator().manual_seed(0)
    R = axis_angle_to_matrix(torch.randn(50, 3, generator=g))
    S = torch.diag_embed(0.5 + torch.rand(50, 3, generator=g))
    Q = axis_angle_to_matrix(0.05 * torch.randn(50, 3, generator=g))
    L = R @ Q @ S @ Q.transpose(-1, -2)  # rotation times a symmetric positive stretch
    assert torch.allclose(polar_rotation(L), R, atol=1e-5)
    assert torch.allclose(torch.det(polar_rotation(torch.randn(20, 3, 3, generator=g))),
                          torch.ones(20), atol=1e-5)


def test_labels_fall_back_to_nearest_part(anny_body):
    params = _params(anny_body, seed=2)
    g = body_surface_gaussians(anny_body, params, n=1500)
    truth = g.labels
    avatar = bind(Gaussians(g.means, g.quats, g.scales, g.opacities, colors=g.colors),
                  anny_body, params)
    assert (avatar.labels == truth).float().mean() > 0.97
    kept = bind(g, anny_body, params)  # labels given (the model's) are kept
    assert torch.equal(kept.labels, truth)


def test_sh_is_dropped_to_dc(anny_body):
    params = _params(anny_body)
    g = _random_gaussians(anny_body, params, n=200)
    sh = torch.randn(200, 4, 3) * 0.1
    gs = Gaussians(g.means, g.quats, g.scales, g.opacities, sh=sh)
    out = bind(gs, anny_body, params).pose()
    assert out.sh is None and torch.allclose(out.colors, gs.rgb)


# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(MOTIONS))
def test_motions_are_valid_loops(anny_body, name):
    motion = make_motion(name, 12 if name != "apose" else 1)
    R = motion.smpl_rotations
    eye = torch.eye(3).expand_as(R)
    assert torch.allclose(R @ R.transpose(-1, -2), eye, atol=1e-5)  # rotations
    assert torch.allclose(torch.det(R), torch.ones(R.shape[:2]), atol=1e-5)
    assert torch.allclose(R[:, 0], eye[:, 0])  # the root is carried by yaw/offset
    bp = motion.body_pose(anny_body)
    assert bp.shape == (len(motion), anny_body.num_joints - 1, 3, 3)
    if name == "apose":
        assert torch.allclose(bp, torch.eye(3).expand_as(bp))


def test_walk_moves_legs_and_turn_turns(anny_body):
    from humansplat.avatar.animate import motion_frames

    params = BodyParams(torch.zeros(anny_body.num_joints - 1, 3),
                        anny_body.shape_default.clone(), torch.zeros(3), torch.zeros(3),
                        torch.tensor(1.0))
    g = body_surface_gaussians(anny_body, params, n=1500)
    avatar = bind(g, anny_body, params)
    walk = list(motion_frames(avatar, make_motion("walk", 8)))
    feet = torch.isin(g.labels, torch.tensor([PART_NAMES.index("left_foot")]))
    z = torch.stack([f.means[feet, 2].mean() for f in walk])  # forward position of a foot
    assert float(z.max() - z.min()) > 0.3  # the foot swings forward and back
    head = g.labels == PART_NAMES.index("head")
    assert float(torch.stack([f.means[head, 1].mean() for f in walk]).std()) < 0.02
    turn = list(motion_frames(avatar, make_motion("turn", 4)))
    nose_dir = [f.means[head].mean(0) - f.means.mean(0) for f in turn]
    # a quarter turn per frame: the head's forward offset rotates about +y by 90 degrees
    a0 = math.atan2(float(nose_dir[0][0]), float(nose_dir[0][2]))
    a1 = math.atan2(float(nose_dir[1][0]), float(nose_dir[1][2]))
    assert abs(((a1 - a0) % (2 * math.pi)) - math.pi / 2) < 0.25


def test_body_params_file_round_trip(tmp_path):
    p = BodyParams(torch.randn(103, 3), torch.rand(6), torch.randn(3), torch.randn(3),
                   torch.tensor(0.9), model="anny")
    path = p.save(tmp_path / "body.npz")
    q = BodyParams.load(path)
    for k in ("body_pose", "shape", "global_orient", "transl", "scale"):
        assert torch.equal(getattr(p, k), getattr(q, k)), k
    assert q.model == "anny"
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError):
        BodyParams.load(tmp_path / "bad.npz")
    with pytest.raises(FileNotFoundError):
        BodyParams.load(tmp_path / "missing.npz")


def test_animate_cli_writes_a_video(anny_body, tmp_path, capsys):
    from humansplat.cli import main

    params = _params(anny_body, seed=1, strength=0.3, orient=(0.0, 0.2, 0.0))
    g = body_surface_gaussians(anny_body, params, n=1500)
    folder = tmp_path / "rec"
    folder.mkdir()
    save_ply(g, folder / "gaussians.ply", y_down=True)  # as reconstructions are written
    params.save(folder / "body.npz")
    out = tmp_path / "walk.mp4"
    assert main(["animate", str(folder), "--motion", "walk", "--frames", "6", "--size", "96",
                 "-o", str(out)]) == 0
    frames = iio.imread(out)
    assert frames.shape[0] == 6 and frames.shape[1:3] == (96, 96)
    # the person is drawn (not blank) and moves between frames
    assert (frames.astype(float).mean(-1) < 200).mean() > 0.03
    assert np.abs(frames[0].astype(float) - frames[3].astype(float)).mean() > 1.0
    # a folder without body.npz: a one-line error, exit 2
    (folder / "body.npz").unlink()
    assert main(["animate", str(folder), "-o", str(out)]) == 2
    assert "body.npz" in capsys.readouterr().err


def test_pipeline_output_reposes_and_animates(tmp_path):
    """End to end: a real photo through the (prior-only) pipeline, its Reconstruction
    reposed, its saved folder animated, split into parts and compacted by the CLI."""
    from pathlib import Path

    from humansplat.cli import main
    from humansplat.io import load_ply
    from humansplat.pipeline import HumanSplatPipeline

    photo = Path(__file__).resolve().parents[1] / "examples" / "astronaut.jpg"
    rec = HumanSplatPipeline.prior_only()(photo)
    same = rec.repose()  # the fitted pose: the splat itself
    assert (same.means - rec.gaussians.means).abs().max() < 1e-4
    rest = rec.repose(torch.zeros(24, 3))  # per-SMPL-joint rest pose: the A-pose
    assert (rest.means - rec.gaussians.means).norm(dim=1).max() > 0.05
    paths = rec.save(tmp_path / "out", video=False)
    params = BodyParams.load(paths["body_params"])
    assert torch.allclose(params.body_pose, rec.fit.params["body_pose"].float())
    out = tmp_path / "wave.mp4"
    assert main(["animate", str(tmp_path / "out"), "--motion", "wave", "--frames", "4",
                 "--size", "64", "-o", str(out)]) == 0
    assert iio.imread(out).shape[0] == 4
    assert main(["parts", str(tmp_path / "out"), "-o", str(tmp_path / "parts"),
                 "--group", "head"]) == 0
    head = load_ply(tmp_path / "parts" / "part_head.ply")
    assert 0 < len(head) < len(rec.gaussians)
    assert main(["compact", str(tmp_path / "out")]) == 0
    compact = tmp_path / "out" / "gaussians_compact.splat"
    assert compact.stat().st_size * 4 <= paths["ply"].stat().st_size
