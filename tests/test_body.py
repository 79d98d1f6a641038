"""Body models (humansplat.prior.body): Anny from its cache, in our frame, against anny's own
forward; SMPL through smplx from a small synthetic model file, against smplx's own forward."""

from __future__ import annotations

import json
import math
import pickle
import sys
import types

import numpy as np
import pytest
import torch

from anny_fixture import anny_body  # noqa: F401  (session fixture)
from humansplat.errors import MissingWeightsError
from humansplat import geometry
from humansplat.prior import body as body_mod
from humansplat.prior.body import (SMPL_PATH_ENV, AnnyBody, SMPLBody, anny_cache_dir,
                                   ensure_anny_cache, resolve_smpl_file)
from humansplat.geometry import axis_angle_to_matrix
from humansplat.prior.parts import (KEYPOINT_FLIP, KEYPOINT_NAMES, NUM_PARTS, PART_FLIP,
                                    PART_NAMES, PART_WEIGHTS, SMPL_PARENTS, anny_bone_parts,
                                    part_labels_from_weights)

P = PART_NAMES.index
K = KEYPOINT_NAMES.index


# ------------------------------------------------------------------------------- parts
def test_part_tables():
    assert len(PART_NAMES) == NUM_PARTS == 24 and len(PART_WEIGHTS) == 24
    heavy = {n for n, w in zip(PART_NAMES, PART_WEIGHTS) if w == 2.0}
    assert heavy == {"head", "left_arm", "right_arm", "left_forearm", "right_forearm",
                     "left_hand", "right_hand", "left_hand_index", "right_hand_index"}
    assert all(PART_FLIP[PART_FLIP[i]] == i for i in range(24))
    assert PART_NAMES[PART_FLIP[P("left_forearm")]] == "right_forearm"
    assert KEYPOINT_NAMES[KEYPOINT_FLIP[K("left_big_toe")]] == "right_big_toe"
    # the landmark engineer's COCO-23 order is the body models' keypoint order
    from humansplat.prior.landmarks import COCO23_NAMES
    assert tuple(COCO23_NAMES) == KEYPOINT_NAMES


def test_part_labels_from_weights_sums_per_part():
    # vertex 0: joints 0 and 1 (both part 5) beat joint 2 (part 7) only when summed
    w = torch.tensor([[0.3, 0.3, 0.4], [0.0, 0.0, 1.0]])
    assert part_labels_from_weights(w, [5, 5, 7]).tolist() == [5, 7]
    with pytest.raises(ValueError, match="lbs_weights"):
        part_labels_from_weights(w, [5, 7])


def test_anny_bone_parts_rejects_unknown_bones():
    assert [PART_NAMES[i] for i in anny_bone_parts(["root", "finger3-2.L", "toe1-1.R"])] == \
        ["hips", "left_hand_index", "right_toe_base"]
    with pytest.raises(ValueError, match="tail"):
        anny_bone_parts(["tail"])


def test_axis_angle_to_matrix_matches_exponential_map():
    aa = torch.tensor([[0.0, 0.0, 0.0], [1e-6, -2e-6, 0.0], [0.3, -1.2, 2.0], [math.pi, 0, 0]],
                      dtype=torch.float64)
    skew = geometry._skew(aa)
    assert torch.allclose(axis_angle_to_matrix(aa), torch.linalg.matrix_exp(skew), atol=1e-12)
    g = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    axis_angle_to_matrix(g).sum().backward()
    assert torch.isfinite(g.grad).all()


# ------------------------------------------------------------------------------- Anny cache
def test_cache_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.delenv("ANNY_CACHE_DIR", raising=False)
    monkeypatch.delenv("HUMANSPLAT_CACHE_DIR", raising=False)
    assert anny_cache_dir().parts[-3:] == (".cache", "humansplat", "anny")
    monkeypatch.setenv("HUMANSPLAT_CACHE_DIR", str(tmp_path / "hs"))
    assert anny_cache_dir() == tmp_path / "hs" / "anny"
    monkeypatch.setenv("ANNY_CACHE_DIR", str(tmp_path / "a"))
    assert anny_cache_dir() == tmp_path / "a"


def test_cache_keeps_only_the_compact_file(anny_body):
    files = sorted(p.name for p in anny_cache_dir().rglob("*.safetensors"))
    assert any(n.startswith("build_compact_model_data_") for n in files)
    import os
    if not os.environ.get("ANNY_CACHE_DIR"):  # our own folder: no build leftovers
        assert not [n for n in files if n.startswith(("load_data_", "build_model_data_"))]


@pytest.mark.slow
def test_fresh_cache_build(tmp_path):
    """The first build on a fresh machine (~60 s): only the ~51 MB compact file stays."""
    ensure_anny_cache(tmp_path)
    files = list(tmp_path.rglob("*.safetensors"))
    assert [p.name.split("_")[0:3] for p in files] == [["build", "compact", "model"]]
    assert 30e6 < files[0].stat().st_size < 80e6
    assert AnnyBody(tmp_path).num_vertices == 13718


# ------------------------------------------------------------------------------- Anny
def test_anny_sizes(anny_body):
    b = anny_body
    assert (b.num_vertices, b.num_joints, b.num_shape) == (13718, 104, 6)
    assert b.faces.shape == (27420, 3) and b.faces.dtype == torch.long
    assert b.lbs_weights.shape == (13718, 104)
    assert torch.allclose(b.lbs_weights.sum(1), torch.ones(13718), atol=1e-5)
    assert b.shape_names == ["gender", "age", "muscle", "weight", "height", "proportions"]
    assert (b.smpl_joints >= 0).sum() == 20 and b.joint_names[int(b.smpl_joints[0])] == "root"


def test_anny_is_y_up_and_faces_plus_z(anny_body):
    b = anny_body
    out = b()
    kp, v, labels = out.keypoints[0], out.vertices[0], b.part_labels
    head = v[labels == P("head")]
    # the nose is in front of (larger z than) the back of the head, and above the feet
    assert kp[K("nose"), 2] > head[:, 2].min() + 0.15
    assert kp[K("nose"), 1] > kp[K("left_ankle"), 1] + 1.2
    assert head[:, 1].min() > v[labels == P("left_foot")][:, 1].max() + 1.0
    # the person's left is +x
    assert kp[K("left_shoulder"), 0] > 0.1 and kp[K("right_shoulder"), 0] < -0.1
    assert kp[K("left_big_toe"), 2] > kp[K("left_heel"), 2]  # toes point forward (+z)
    # the root (pelvis) sits at the origin
    assert out.joints[0, 0].abs().max() < 1e-5


def test_anny_part_labels_are_plausible(anny_body):
    b = anny_body
    v, labels = b().vertices[0], b.part_labels
    counts = torch.bincount(labels, minlength=24)
    assert (counts > 0).all(), counts
    mean_y = torch.stack([v[labels == i, 1].mean() for i in range(24)])
    assert int(mean_y.argmax()) == P("head")
    lowest = set(mean_y.argsort()[:4].tolist())
    assert lowest == {P("left_foot"), P("right_foot"), P("left_toe_base"), P("right_toe_base")}
    for i, name in enumerate(PART_NAMES):
        x = v[labels == i, 0].mean()
        if name.startswith("left"):
            assert x > 0.03, name
        elif name.startswith("right"):
            assert x < -0.03, name
    # hand parts are at the end of the arms
    assert v[labels == P("left_hand_index"), 0].mean() > v[labels == P("left_forearm"), 0].mean()


def test_anny_symmetry(anny_body):
    b = anny_body
    rest = b().rest_vertices[0]
    sym = b.symmetry
    assert torch.equal(sym[sym], torch.arange(b.num_vertices))
    mirrored = rest[sym] * torch.tensor([-1.0, 1.0, 1.0])
    assert (mirrored - rest).norm(dim=-1).max() < 1e-4
    flipped = torch.tensor(PART_FLIP)[b.part_labels[sym]]
    assert (flipped == b.part_labels).float().mean() > 0.99


def test_anny_forward_matches_anny(anny_body):
    """Our SMPL-style pose in our frame == anny's own forward ('world-orient', each bone's
    world rotation given) in its z-up frame, mapped by the fixed frame change."""
    import anny

    b = anny_body
    m = b._anny
    g = torch.Generator().manual_seed(0)
    B = 2
    pose = 0.3 * torch.randn(B, b.num_joints - 1, 3, generator=g)
    shape = torch.rand(B, b.num_shape, generator=g)
    orient = 0.5 * torch.randn(B, 3, generator=g)
    transl = torch.randn(B, 3, generator=g)
    scale = 0.5 + torch.rand(B, generator=g)
    out = b(pose, shape, orient, transl, scale)

    coeffs = m._get_phenotype_blendshape_coefficients(shape, torch.zeros(B, 0),
                                                      torch.zeros(B, 0))
    rest = m.get_rest_model(coeffs)
    C = torch.tensor(body_mod._ANNY_TO_WORLD)
    Rg = axis_angle_to_matrix(orient)
    rot_world = Rg.transpose(-1, -2)[:, None] @ out.bone_transforms[..., :3, :3] / \
        scale[:, None, None, None]
    D = torch.eye(4).repeat(B, b.num_joints, 1, 1)
    D[..., :3, :3] = C.T @ rot_world @ C @ rest["rest_bone_poses"][..., :3, :3]
    ref = m(D, shape, pose_parameterization="world-orient")
    ref_kp = anny.KeypointsRegressor.coco(m).to(torch.float32)(ref)

    def world(x):
        return transl[:, None] + scale[:, None, None] * x @ (Rg @ C).transpose(-1, -2)

    assert torch.allclose(world(ref["vertices"]), out.vertices, atol=1e-5)
    assert torch.allclose(world(ref_kp), out.keypoints, atol=1e-4)
    assert torch.allclose(world(ref["bone_poses"][..., :3, 3]), out.joints, atol=1e-5)
    # the body's own rotations are the ones asked for: a chain of the given local rotations
    R_local = axis_angle_to_matrix(pose)
    left_leg = b.joint_names.index("lowerleg01.L")
    chain, j = [], left_leg
    while j > 0:
        chain.append(j)
        j = b.joint_parents[j]
    expect = torch.eye(3).expand(B, 3, 3)
    for j in reversed(chain):
        expect = expect @ R_local[:, j - 1]
    got = Rg.transpose(-1, -2) @ out.bone_transforms[:, left_leg, :3, :3] / scale[:, None, None]
    assert torch.allclose(got, expect, atol=1e-5)


def test_anny_skinning_and_subsets(anny_body):
    b = anny_body
    g = torch.Generator().manual_seed(1)
    pose = 0.3 * torch.randn(1, b.num_joints - 1, 3, generator=g)
    shape = torch.rand(1, 6, generator=g)
    out = b(pose, shape)
    assert torch.allclose(b.skin(out.rest_vertices, out.bone_transforms), out.vertices,
                          atol=1e-6)
    ids = torch.arange(0, b.num_vertices, 97)
    sub = b(pose, shape, vertex_ids=ids)
    assert torch.allclose(sub.vertices, out.vertices[:, ids], atol=1e-6)
    assert torch.allclose(sub.keypoints, out.keypoints, atol=1e-6)
    none = b(pose, vertex_ids=torch.zeros(0, dtype=torch.long))
    assert none.vertices.shape == (1, 0, 3) and none.keypoints.shape == (1, 23, 3)
    # the subset's rest basis is cached for the same ids tensor: asked again, changed in
    # place, or another tensor, the vertices are still the subset's
    for _ in range(2):
        assert torch.equal(b(pose, shape, vertex_ids=ids).vertices, sub.vertices)
    ids += 1
    assert torch.allclose(b(pose, shape, vertex_ids=ids).vertices, out.vertices[:, ids],
                          atol=1e-6)
    other = torch.arange(5, b.num_vertices, 211)
    assert torch.allclose(b(pose, shape, vertex_ids=other).vertices, out.vertices[:, other],
                          atol=1e-6)
    with torch.inference_mode():  # ids without a version counter are not cached
        inf_ids = torch.arange(0, b.num_vertices, 97)
        got = b(pose, shape, vertex_ids=inf_ids).vertices
    assert torch.equal(got, sub.vertices)
    # zero pose: the mesh as modelled
    rest = b()
    assert torch.allclose(rest.vertices, rest.rest_vertices, atol=1e-6)


def test_anny_pose_convention_knee_and_elbow(anny_body):
    """Joint rotations are in world axes: +x flexes the left knee (the foot goes back)."""
    b = anny_body
    smpl = torch.zeros(1, 24, 3)
    smpl[0, P("left_leg"), 0] = 1.0
    out = b(b.body_pose_from_smpl(smpl))
    rest = b()
    ankle = K("left_ankle")
    assert out.keypoints[0, ankle, 2] < rest.keypoints[0, ankle, 2] - 0.15
    assert out.keypoints[0, ankle, 1] > rest.keypoints[0, ankle, 1] + 0.05
    assert torch.allclose(out.keypoints[0, K("right_ankle")], rest.keypoints[0, K("right_ankle")])


def test_anny_global_transform(anny_body):
    b = anny_body
    base = b()
    R = axis_angle_to_matrix(torch.tensor([0.1, 0.7, -0.2]))
    t = torch.tensor([0.3, -0.2, 0.5])
    out = b(global_orient=R[None], transl=t[None], scale=torch.tensor([1.3]))
    assert torch.allclose(out.vertices[0], t + 1.3 * base.vertices[0] @ R.T, atol=1e-5)
    assert torch.allclose(out.keypoints[0], t + 1.3 * base.keypoints[0] @ R.T, atol=1e-5)


def test_body_pose_from_smpl(anny_body):
    b = anny_body
    smpl = torch.randn(2, 24, 3)
    bp = b.body_pose_from_smpl(smpl)
    assert bp.shape == (2, 103, 3)
    for i, j in enumerate(b.smpl_joints.tolist()):
        if j > 0:
            assert torch.equal(bp[:, j - 1], smpl[:, i])
    assert int((bp.abs().sum((0, 2)) > 0).sum()) == 19  # 20 mapped joints minus the root


@pytest.mark.parametrize("kwargs, match", [
    ({"body_pose": torch.zeros(1, 5, 3)}, "body_pose"),
    ({"shape": torch.zeros(1, 4)}, "shape"),
    ({"global_orient": torch.zeros(1, 4)}, "global_orient"),
    ({"transl": torch.zeros(1, 2)}, "transl"),
    ({"shape": torch.zeros(2, 6), "transl": torch.zeros(3, 3)}, "batch"),
])
def test_anny_bad_inputs(anny_body, kwargs, match):
    with pytest.raises(ValueError, match=match):
        anny_body(**kwargs)


# ------------------------------------------------------------------------------- SMPL
_SMPL_JOINTS = np.array([  # a T-pose skeleton in SMPL's joint order, metres, y up
    [0, 0, 0], [0.09, -0.08, 0], [-0.09, -0.08, 0], [0, 0.11, -0.02], [0.1, -0.47, 0],
    [-0.1, -0.47, 0], [0, 0.24, 0], [0.1, -0.87, -0.03], [-0.1, -0.87, -0.03], [0, 0.3, 0],
    [0.11, -0.93, 0.1], [-0.11, -0.93, 0.1], [0, 0.51, -0.01], [0.08, 0.42, 0],
    [-0.08, 0.42, 0], [0, 0.6, 0.04], [0.18, 0.45, 0], [-0.18, 0.45, 0], [0.44, 0.45, 0],
    [-0.44, 0.45, 0], [0.69, 0.45, 0], [-0.69, 0.45, 0], [0.78, 0.45, 0], [-0.78, 0.45, 0],
], dtype=np.float64)


def _synthetic_smpl(seed: int = 0) -> dict:
    """A small random model in SMPL's format (6890 vertices blobbed around the 24 joints)."""
    rng = np.random.default_rng(seed)
    V = 6890
    label = np.arange(V) % 24
    v = _SMPL_JOINTS[label] + rng.normal(scale=0.03, size=(V, 3))
    weights = np.zeros((V, 24))
    weights[np.arange(V), label] = 0.8
    parent = np.array([max(p, 0) for p in SMPL_PARENTS])
    weights[np.arange(V), parent[label]] += 0.2
    J_reg = np.zeros((24, V))
    J_reg[label, np.arange(V)] = 1.0
    J_reg /= J_reg.sum(1, keepdims=True)
    kintree = np.stack([np.array([4294967295] + list(SMPL_PARENTS[1:]), dtype=np.int64),
                        np.arange(24)])
    faces = np.stack([np.arange(0, V - 2, 3), np.arange(1, V - 1, 3), np.arange(2, V, 3)], 1)
    return {"v_template": v, "shapedirs": rng.normal(scale=0.01, size=(V, 3, 10)),
            "posedirs": rng.normal(scale=0.001, size=(V, 3, 207)), "J_regressor": J_reg,
            "weights": weights, "kintree_table": kintree, "f": faces.astype(np.uint32)}


@pytest.fixture(scope="module")
def smpl_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("smpl")
    with open(d / "SMPL_NEUTRAL.pkl", "wb") as fh:
        pickle.dump(_synthetic_smpl(), fh)
    return d


def test_smpl_loads_from_folder_env_and_file(smpl_dir, monkeypatch):
    a = SMPLBody(smpl_dir)
    monkeypatch.setenv(SMPL_PATH_ENV, str(smpl_dir))
    b = SMPLBody()
    c = SMPLBody(smpl_dir / "SMPL_NEUTRAL.pkl")
    assert a.model_path == b.model_path == c.model_path
    assert (a.num_vertices, a.num_joints, a.num_shape) == (6890, 24, 10)
    assert torch.equal(a().vertices, b().vertices)
    assert torch.equal(a.smpl_joints, torch.arange(24))


def test_smpl_npz_and_gendered_names(tmp_path):
    np.savez(tmp_path / "SMPL_FEMALE.npz", **_synthetic_smpl(1))
    assert SMPLBody(tmp_path, gender="female").model_path.name == "SMPL_FEMALE.npz"
    with pytest.raises(MissingWeightsError, match="male"):
        SMPLBody(tmp_path, gender="male")


def test_smpl_forward_matches_smplx(smpl_dir):
    """Our SMPL wrapper (root at the origin) == smplx.SMPL's own forward up to the root
    shift; keypoints == smplx's joints + vertex keypoints in COCO order."""
    import smplx

    ours = SMPLBody(smpl_dir)
    ref_model = smplx.SMPL(str(smpl_dir), gender="neutral")
    g = torch.Generator().manual_seed(0)
    betas = torch.randn(2, 10, generator=g)
    pose = 0.4 * torch.randn(2, 23, 3, generator=g)
    orient = 0.5 * torch.randn(2, 3, generator=g)
    out = ours(pose, betas, orient)
    ref = ref_model(betas=betas, body_pose=pose.reshape(2, -1), global_orient=orient,
                    transl=torch.zeros(2, 3))
    shift = ref.vertices - out.vertices
    assert torch.allclose(shift, shift[:, :1].expand_as(shift), atol=1e-5)
    j0 = torch.einsum("jv,bvd->bjd", ref_model.J_regressor,
                      ref_model.v_template + torch.einsum("bl,vdl->bvd", betas,
                                                          ref_model.shapedirs))[:, 0]
    assert torch.allclose(shift[:, 0], j0, atol=1e-5)
    mapping = body_mod._SMPL_KEYPOINT_JOINTS
    assert torch.allclose(out.keypoints, ref.joints[:, list(mapping)] - j0[:, None], atol=1e-5)
    assert torch.allclose(out.joints, ref.joints[:, :24] - j0[:, None], atol=1e-5)
    # without pose correctives (zero pose) skinning the rest vertices gives the output
    still = ours(None, betas, orient)
    assert torch.allclose(ours.skin(still.rest_vertices, still.bone_transforms),
                          still.vertices, atol=1e-6)


def test_smpl_part_labels(smpl_dir, tmp_path):
    a = SMPLBody(smpl_dir)
    assert torch.equal(a.part_labels, torch.arange(6890) % 24)  # largest weight = own joint
    names = {v: k for k, v in body_mod.MESHCAPADE_PART_NAMES.items()}
    seg = {names[PART_NAMES[(i + 1) % 24]]: list(range(i, 6890, 24)) for i in range(24)}
    (tmp_path / "SMPL_NEUTRAL.pkl").write_bytes((smpl_dir / "SMPL_NEUTRAL.pkl").read_bytes())
    (tmp_path / "smpl_vert_segmentation.json").write_text(json.dumps(seg))
    b = SMPLBody(tmp_path)
    assert torch.equal(b.part_labels, (torch.arange(6890) + 1) % 24)


def test_smpl_reads_chumpy_pickles(tmp_path, monkeypatch):
    """Old SMPL .pkl files store arrays as chumpy objects: they load without chumpy."""
    ch = types.ModuleType("chumpy.ch")

    class Ch:  # what chumpy's pickles look like: a class whose state holds the array as x
        def __init__(self, x):
            self.x = x

    Ch.__module__, Ch.__qualname__ = "chumpy.ch", "Ch"
    ch.Ch = Ch
    monkeypatch.setitem(sys.modules, "chumpy", types.ModuleType("chumpy"))
    monkeypatch.setitem(sys.modules, "chumpy.ch", ch)
    d = _synthetic_smpl(2)
    d["shapedirs"] = Ch(d["shapedirs"])
    with open(tmp_path / "SMPL_NEUTRAL.pkl", "wb") as fh:
        pickle.dump(d, fh, protocol=2)
    monkeypatch.delitem(sys.modules, "chumpy")
    monkeypatch.delitem(sys.modules, "chumpy.ch")
    m = SMPLBody(tmp_path)
    assert torch.allclose(m.smpl.shapedirs, torch.as_tensor(d["shapedirs"].x[..., :10],
                                                            dtype=torch.float32))


def test_smpl_missing_files_say_where(monkeypatch, tmp_path):
    monkeypatch.delenv(SMPL_PATH_ENV, raising=False)
    with pytest.raises(MissingWeightsError, match=SMPL_PATH_ENV):
        resolve_smpl_file()
    with pytest.raises(MissingWeightsError, match="SMPL_NEUTRAL.pkl"):
        resolve_smpl_file(tmp_path)
    with pytest.raises(MissingWeightsError, match="neither"):
        resolve_smpl_file(str(tmp_path / "nope.pkl"))
    (tmp_path / "SMPL_NEUTRAL.pkl").write_bytes(b"not a pickle")
    with pytest.raises(MissingWeightsError, match="could not read"):
        SMPLBody(tmp_path)
    with pytest.raises(ValueError, match="gender"):
        resolve_smpl_file(tmp_path, gender="other")


def test_smpl_from_hub_repo_id(monkeypatch, smpl_dir):
    import huggingface_hub

    calls = []

    def fake_download(repo_id, filename, **kw):
        calls.append((repo_id, filename))
        if filename == "smpl/SMPL_NEUTRAL.pkl":
            return str(smpl_dir / "SMPL_NEUTRAL.pkl")
        raise huggingface_hub.errors.EntryNotFoundError(filename)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    assert resolve_smpl_file("someone/body-models") == smpl_dir / "SMPL_NEUTRAL.pkl"
    assert calls[0] == ("someone/body-models", "SMPL_NEUTRAL.pkl")
    assert resolve_smpl_file("someone/body-models/smpl/SMPL_NEUTRAL.pkl").exists()
    with pytest.raises(MissingWeightsError, match="someone/other"):
        resolve_smpl_file("someone/other/x.pkl")


def test_load_body_model_names():
    with pytest.raises(ValueError, match="anny"):
        body_mod.load_body_model("star")
