"""3D part segmentation (humansplat.parts_export) and the synthetic-subject evaluations of
the avatar features (humansplat.eval.avatar_eval): labels against the subject's own part
map, reposing against the subject rendered in a second pose."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from anny_fixture import anny_body  # noqa: F401  (session fixture)
from humansplat.avatar import BodyParams, body_surface_gaussians
from humansplat.io import load_ply, save_ply
from humansplat.parts_export import (PART_GROUPS, assign_labels, export_parts, part_colored,
                                     part_iou, resolve_parts, select_parts)
from humansplat.prior.parts import PART_COLORS, PART_NAMES


def _rest_params(body):
    return BodyParams(torch.zeros(body.num_joints - 1, 3), body.shape_default.clone(),
                      torch.zeros(3), torch.zeros(3), torch.tensor(1.0))


@pytest.fixture(scope="module")
def subject():
    from humansplat.data.synthetic_humans import sample_subject

    return sample_subject(3)


@pytest.fixture(scope="module")
def gt_params(subject):
    p = subject.body_params()
    return BodyParams(p["body_pose"][0], p["shape"][0], p["global_orient"][0],
                      p["transl"][0], p["scale"][0])


def test_groups_resolve():
    assert resolve_parts("head") == sorted([PART_NAMES.index("head"), PART_NAMES.index("neck")])
    assert resolve_parts(["hands", "left_foot"]) == sorted(
        PART_NAMES.index(n) for n in ("left_hand", "right_hand", "left_hand_index",
                                      "right_hand_index", "left_foot"))
    every = set()
    for name in ("head", "arms", "torso", "legs"):
        every |= set(resolve_parts(name))
    assert every == set(range(24))  # these four groups cover the body
    assert set(resolve_parts("upper_body")) | set(resolve_parts("lower_body")) == set(range(24))
    with pytest.raises(ValueError, match="unknown part"):
        resolve_parts("tail")


def test_exports(anny_body, tmp_path):
    g = body_surface_gaussians(anny_body, _rest_params(anny_body), n=1500)
    paths = export_parts(g, tmp_path)
    assert set(paths) == {"parts", *PART_GROUPS}
    colored = load_ply(paths["parts"])
    want = torch.tensor(PART_COLORS, dtype=torch.float32)[colored.labels] / 255
    assert (colored.colors - want).abs().max() < 1e-5
    head = load_ply(paths["head"])
    assert set(head.labels.tolist()) == set(resolve_parts("head"))
    assert len(head) == int(torch.isin(g.labels, torch.tensor(resolve_parts("head"))).sum())
    # y-down on disk, our world in memory: the head is the top of the loaded body
    assert head.means[:, 1].mean() > g.means[:, 1].mean() + 0.5
    assert torch.equal(select_parts(g, "legs").labels, g.labels[torch.isin(
        g.labels, torch.tensor(resolve_parts("legs")))])
    with pytest.raises(ValueError, match="no part labels"):
        part_colored(replace(g, labels=None))


def test_parts_cli_labels_from_body(anny_body, tmp_path, capsys):
    from humansplat.cli import main

    params = _rest_params(anny_body)
    g = body_surface_gaussians(anny_body, params, n=1500)
    folder = tmp_path / "rec"
    folder.mkdir()
    save_ply(replace(g, labels=None), folder / "gaussians.ply", y_down=True)  # no labels
    assert main(["parts", str(folder), "-o", str(tmp_path / "out"), "--group", "head"]) == 2
    assert "body.npz" in capsys.readouterr().err
    params.save(folder / "body.npz")
    assert main(["parts", str(folder), "-o", str(tmp_path / "out"), "--group", "head"]) == 0
    head = load_ply(tmp_path / "out" / "part_head.ply")
    truth = g.labels[torch.isin(g.labels, torch.tensor(resolve_parts("head")))]
    assert abs(len(head) - len(truth)) <= 0.03 * len(truth)


def test_part_iou():
    a = torch.tensor([[0, 0, 1, -1], [2, 2, 1, -1]])
    b = torch.tensor([[0, 1, 1, -1], [2, 2, -1, 0]])
    iou = part_iou(a, b)
    assert iou[0] == pytest.approx(1 / 3) and iou[1] == pytest.approx(1 / 3)
    assert iou[2] == 1.0 and torch.isnan(iou[3:]).all()


# --------------------------------------------------------------------------------------------
# synthetic subjects (data.synthetic_humans): ground truth in any pose
# --------------------------------------------------------------------------------------------
def test_labels_agree_with_the_body_part_map(subject, gt_params):
    """Labels from the nearest body part, on a dressed subject: the same part as the mesh's
    own labels for almost every Gaussian, and rendered label maps as close to the subject's
    part map as the mesh labels themselves get (the rendering limits both alike)."""
    from humansplat.eval.avatar_eval import (evaluate_part_labels, framing_cameras, inset,
                                             mean_iou, pixel_size, subject_gaussians)

    mesh = subject.mesh()
    cams = framing_cameras([mesh.vertices], 192)
    g = subject_gaussians(mesh, 30000)
    labelled = assign_labels(replace(g, labels=None), subject.model, gt_params)
    assert (labelled.labels == g.labels).float().mean() > 0.98
    px = pixel_size(cams, mesh.vertices.mean(0))
    ours = evaluate_part_labels(inset(labelled, px), mesh, cams)
    ceiling = evaluate_part_labels(inset(g, px), mesh, cams)
    assert mean_iou(ours) > 0.7
    assert mean_iou(ours) > mean_iou(ceiling) - 0.03
    big = [PART_NAMES.index(n) for n in ("head", "hips", "spine2", "left_up_leg",
                                         "right_up_leg")]
    assert (ours[big] > 0.75).all()


def test_repose_beats_rigid_on_a_synthetic_subject(subject):
    from humansplat.eval.avatar_eval import evaluate_repose
    from humansplat.data.synthetic_humans import sample_pose_natural

    pose_b = sample_pose_natural(np.random.default_rng(11), "walking", subject.model)
    (res,) = evaluate_repose(subject, pose_b, n_gaussians=30000, size=160, bodies=("gt",))
    m = res.metrics
    assert m["skinned"]["psnr"] > m["rigid"]["psnr"] + 2.0
    assert m["skinned"]["mask_iou"] > m["rigid"]["mask_iou"] + 0.1
    # close to what the same Gaussians score in their own pose (the ceiling; the reference
    # re-lights the moved surface, the Gaussians keep the shading they were made with)
    assert m["skinned"]["psnr"] > m["same_pose"]["psnr"] - 3.0
    assert m["skinned"]["mask_iou"] > m["same_pose"]["mask_iou"] - 0.05


@pytest.mark.parametrize("group", [None, "hands"])
def test_part_view_for_the_app(anny_body, tmp_path, group):
    from humansplat.io import load_splat
    from humansplat.parts_export import export_part_view

    g = body_surface_gaussians(anny_body, _rest_params(anny_body), n=1500)
    path = export_part_view(g, tmp_path / "parts.splat", group=group)
    back = load_splat(path, y_down=True)
    want = len(g) if group is None else len(select_parts(g, group))
    assert len(back) == want
    palette = torch.tensor(PART_COLORS, dtype=torch.float32) / 255
    # every colour is a part colour (8-bit)
    assert (back.colors[:, None] - palette[None]).abs().amax(-1).min(1).values.max() < 1 / 255
