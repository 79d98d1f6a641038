"""The scan-dataset loader (humansplat.train.scans) on a tiny textured "scan" the test
writes: boxes around the joints of a synthetic SMPL model, textured by quadrant, with an
ICON-style fit file (scan = scale * smpl(...) + translation), in the THuman2.0, 2K2K and
Twindom layouts."""

import json
import math
import pickle

import numpy as np
import pytest
import torch
from PIL import Image
from test_body import _synthetic_smpl
from torch_threads import one_thread  # noqa: F401  (fixture)

from humansplat.geometry import axis_angle_to_matrix
from humansplat.prior.body import SMPLBody
from humansplat.prior.fit import input_camera
from humansplat.cameras import project_points
from humansplat.prior.parts import PART_NAMES
from humansplat.train.dataset import SynthDataConfig
from humansplat.train.scans import (ScanDataset, find_scans, load_fit_params, load_scan,
                                    scan_body_params)

CFG = SynthDataConfig(resolution=64, input_size=128, train_views=(2, 1, 1),
                      eval_views=(4, 2, 2))
FIT = {"betas": np.zeros((1, 10)), "global_orient": np.zeros((1, 3)),
       "body_pose": np.zeros((1, 69)), "transl": np.array([[0.05, 0.9, 0.0]]),
       "scale": np.array([1.2]), "translation": np.array([0.1, 0.0, -0.2])}
# quadrant colours of the 2x2 texture: (u right?, v top?) -> RGB
COLORS = {(0, 0): (255, 0, 0), (1, 0): (0, 255, 0), (0, 1): (0, 0, 255), (1, 1): (255, 255, 0)}
HALF = 0.022  # box half-size: small enough that the nearest body vertex is the joint's own


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def smpl(tmp_path_factory):
    d = tmp_path_factory.mktemp("smpl")
    with open(d / "SMPL_NEUTRAL.pkl", "wb") as fh:
        pickle.dump(_synthetic_smpl(), fh)
    return SMPLBody(d)


def _joints_in_scan(model) -> np.ndarray:
    """[24,3] the fitted body's rest joints in the scan frame (the convention under test)."""
    s = model.smpl
    v = s.v_template.double()
    J = (s.J_regressor.double() @ v).numpy()
    return FIT["scale"][0] * (J + FIT["transl"][0]) + FIT["translation"]


def _write_scan(folder, name, model):
    """A textured OBJ: one box per joint, each box uniformly one texture quadrant (by the
    side of the body and the height of its joint)."""
    folder.mkdir(parents=True, exist_ok=True)
    J = _joints_in_scan(model)
    pelvis = J[0]
    V, VT, Fs = [], [], []
    corners = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)]) * HALF
    quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    for j, c in enumerate(J):
        base = len(V)
        qx = int(c[0] >= pelvis[0])
        qy = int(c[1] >= pelvis[1])
        for p in corners:
            V.append(c + p)
            VT.append((0.25 + 0.5 * qx, 0.25 + 0.5 * qy))
        for a, b, cc, d in quads:
            Fs += [(base + a, base + b, base + cc), (base + a, base + cc, base + d)]
    img = np.zeros((2, 2, 3), np.uint8)
    for (qx, qy), col in COLORS.items():
        img[1 - qy, qx] = col  # OBJ v = 0 is the image's bottom row
    Image.fromarray(img).save(folder / "material0.png")
    (folder / "material0.mtl").write_text("newmtl material0\nKd 1 1 1\nmap_Kd material0.png\n")
    lines = ["mtllib material0.mtl", "usemtl material0"]
    lines += [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in V]
    lines += [f"vt {u:.4f} {t:.4f}" for u, t in VT]
    lines += [f"f {a + 1}/{a + 1} {b + 1}/{b + 1} {c + 1}/{c + 1}" for a, b, c in Fs]
    (folder / f"{name}.obj").write_text("\n".join(lines) + "\n")
    return J


def test_layouts_find_the_same_scan(tmp_path, smpl):
    _write_scan(tmp_path / "thuman" / "data" / "0001", "0001", smpl)
    (tmp_path / "thuman" / "smplx" / "0001").mkdir(parents=True)
    with open(tmp_path / "thuman" / "smplx" / "0001" / "smplx_param.pkl", "wb") as fh:
        pickle.dump(FIT, fh)
    _write_scan(tmp_path / "2k2k" / "test" / "0002", "0002", smpl)
    np.savez(tmp_path / "2k2k" / "test" / "0002" / "smpl_param.npz", **FIT)
    _write_scan(tmp_path / "twindom" / "0003", "scan", smpl)
    (tmp_path / "twindom" / "smpl").mkdir()
    (tmp_path / "twindom" / "smpl" / "0003.json").write_text(
        json.dumps({k: v.tolist() for k, v in FIT.items()}))
    recs = {lay: find_scans(tmp_path / d, lay)
            for lay, d in (("thuman2", "thuman"), ("2k2k", "2k2k"), ("twindom", "twindom"))}
    assert [r.id for r in recs["thuman2"]] == ["0001"]
    assert [(r.id, r.split) for r in recs["2k2k"]] == [("0002", "test")]
    assert [r.id for r in recs["twindom"]] == ["0003"]
    bodies = [scan_body_params(smpl, load_fit_params(r[0].fit))[0] for r in recs.values()]
    for b in bodies[1:]:
        for k in b:
            assert np.allclose(b[k], bodies[0][k]), k
    m = load_scan(recs["twindom"][0].mesh)
    assert m.texture is not None and m.texture.shape == (3, 2, 2)
    assert m.uv.shape == (m.vertices.shape[0], 2)


def test_fit_convention_puts_the_body_on_the_scan(smpl):
    """scale * smpl(...) + translation: our root-at-origin body with the converted
    transl/scale lands exactly on smplx's own output mapped into the scan frame."""
    import smplx

    g = torch.Generator().manual_seed(0)
    fit = dict(FIT, body_pose=0.3 * torch.randn(1, 69, generator=g).numpy(),
               global_orient=np.array([[0.1, 0.7, -0.2]]),
               betas=torch.randn(1, 10, generator=g).numpy())
    body, notes = scan_body_params(smpl, load_fit_params_dict(fit))
    assert notes == []
    ref = smplx.SMPL(str(smpl.model_path), gender="neutral")
    out = ref(betas=torch.as_tensor(fit["betas"]).float(),
              body_pose=torch.as_tensor(fit["body_pose"]).float(),
              global_orient=torch.as_tensor(fit["global_orient"]).float(),
              transl=torch.as_tensor(fit["transl"]).float())
    expect = FIT["scale"][0] * out.vertices[0].double() + torch.as_tensor(FIT["translation"])
    ours = smpl(smpl.body_pose_from_smpl(torch.as_tensor(body["smpl_pose"]).float()[None]),
                torch.as_tensor(body["shape"]).float()[None],
                torch.as_tensor(body["orient"]).float()[None],
                torch.as_tensor(body["transl"]).float()[None],
                torch.tensor([body["scale"]]).float())
    assert torch.allclose(ours.vertices[0].double(), expect, atol=1e-4)


def load_fit_params_dict(fit: dict) -> dict:
    return {k: np.asarray(v, np.float64) for k, v in fit.items()}


def test_scan_sample_contract_texture_and_parts(tmp_path, smpl):
    root = tmp_path / "thuman"
    J = _write_scan(root / "data" / "0001", "0001", smpl)
    (root / "smplx" / "0001").mkdir(parents=True)
    with open(root / "smplx" / "0001" / "smplx_param.pkl", "wb") as fh:
        pickle.dump(FIT, fh)
    (root / "train.txt").write_text("0001\n")
    ds = ScanDataset(root, "thuman2", "train", targets=None, smpl=smpl, cfg=CFG)
    assert len(ds) == 1 and len(ScanDataset(root, "thuman2", "test", smpl=smpl)) == 0
    s = ds[0]
    T, R, S = 4, CFG.resolution, CFG.input_size
    expect = {"views": (5, 3, 128, 128), "viewmats": (5, 4, 4), "Ks": (5, 3, 3),
              "body_vertices": (6890, 3), "target_rgb": (T, 3, R, R),
              "target_mask": (T, 1, R, R), "target_parts": (T, R, R),
              "target_viewmats": (T, 4, 4), "target_Ks": (T, 3, 3), "target_levels": (T,),
              "input_image": (3, S, S), "input_mask": (1, S, S)}
    for k, shape in expect.items():
        assert tuple(s[k].shape) == shape, k
    assert s["target_parts"].dtype == torch.int64 and s["subject"] == "train-0001"
    # placed like a preprocessed photo
    ys, xs = np.nonzero(s["input_mask"][0].numpy() > 0.5)
    assert abs(max(ys.max() - ys.min() + 1, xs.max() - xs.min() + 1) / S - 0.85) < 0.03
    # colours and parts at the joints' boxes in the photo: texture quadrants and the
    # fitted body's parts, through the yaw and placement recorded in the meta
    meta = json.loads(str(ds.raw(0)["meta"]))
    yaw = axis_angle_to_matrix(torch.tensor([0.0, math.radians(meta["yaw_deg"]), 0.0],
                                            dtype=torch.float64))
    root_scan = FIT["scale"][0] * (np.asarray(smpl.smpl.J_regressor[0].double() @
                                              smpl.smpl.v_template.double()) +
                                   FIT["transl"][0]) + FIT["translation"]
    world = torch.as_tensor(meta["transl"]) + meta["scale"] * (
        torch.as_tensor(J - root_scan) @ yaw.T)
    cam = input_camera(S, S)
    uv, _ = project_points(world.float(), cam.viewmats, cam.Ks)
    img = (s["input_image"] * 255).round().long()
    checked = 0
    for name in ("head", "left_hand", "right_hand", "left_foot", "right_foot"):
        j = PART_NAMES.index(name)
        x, y = (int(v) for v in uv[0, j].floor())
        qx, qy = int(J[j][0] >= J[0][0]), int(J[j][1] >= J[0][1])
        got = tuple(img[:, y, x].tolist())
        if s["input_mask"][0, y, x] < 0.99:
            continue  # on a box's antialiased edge: skip
        assert got == COLORS[(qx, qy)], (name, got)
        checked += 1
    assert checked >= 3
    # cached: a second dataset reads the same arrays without rendering
    assert any(ds.cache_dir.rglob("*.npz"))
    again = ScanDataset(root, "thuman2", "train", targets=(1, 1, 1), smpl=smpl, cfg=CFG)[0]
    assert again["target_levels"].tolist() == [0, 1, 2]
    assert torch.equal(again["views"], s["views"])


def test_scan_parts_follow_the_fitted_body(tmp_path, smpl):
    """Rendered part maps: the head box is labelled head, the hand boxes hands."""
    root = tmp_path / "tw"
    _write_scan(root / "0007", "0007", smpl)
    np.savez(root / "0007" / "smpl_param.npz", **FIT)
    (root / "train.txt").write_text("0007\n")
    ds = ScanDataset(root, "twindom", "train", targets=None, smpl=smpl, cfg=CFG)
    raw = ds.raw(0)
    parts = raw["target_parts"][raw["target_levels"] == 0]
    seen = set(np.unique(parts).tolist()) - {-1}
    for name in ("head", "left_hand", "right_hand", "left_foot", "right_foot", "hips"):
        assert PART_NAMES.index(name) in seen, name
    assert max(seen) <= 23
