"""Avatar export (humansplat.export): the GLB passes the Khronos glTF validator, third-party
readers (pygltflib, trimesh) find a skin, weights, a texture and the animations in it, the
animation a reader computes from the file is the body model's own motion, the mesh matches
the splat at the photo's camera, the OBJ reads back textured, the command line works and
refuses bad input in one line, and Gradio's Model3D plays the GLB in a real browser."""

from __future__ import annotations

import io
import json
import os
import socket
import time

import numpy as np
import pytest
import torch

from anny_fixture import anny_body  # noqa: F401  (session fixture)
from humansplat.avatar import BodyParams, body_surface_gaussians
from humansplat.cameras import orbit_cameras
from humansplat.gaussians import Gaussians
from humansplat.io import save_ply

pytestmark = pytest.mark.timeout(600)

MOTIONS = ("walk", "wave")


def _person(anny_body, folder):
    """A reconstruction folder of a dressed-looking subject: Gaussians on the posed body,
    the torso and hips pushed out 4 cm (a loose garment), noisy colours; body.npz and the
    photo's camera in meta.json."""
    from humansplat.prior.parts import PART_NAMES

    m = anny_body
    pose = torch.zeros(m.num_joints - 1, 3)
    smpl = torch.zeros(1, 24, 3)
    smpl[0, PART_NAMES.index("left_arm"), 2] = 0.3
    smpl[0, PART_NAMES.index("right_forearm"), 0] = -0.6
    pose = m.body_pose_from_smpl(smpl)[0].cpu()
    params = BodyParams(pose, m.shape_default.cpu(), torch.tensor([0.0, 0.3, 0.0]),
                        torch.tensor([0.05, 0.0, 0.0]), torch.tensor(1.0))
    g = body_surface_gaussians(m, params, n=9000)
    with torch.no_grad():
        out = m(**params.forward_args())
    from humansplat.avatar.surface import closest_points_on_mesh
    from humansplat.geometry import vertex_normals

    hit = closest_points_on_mesh(g.means, out.vertices[0], m.faces)
    n = vertex_normals(out.vertices[0], m.faces)[m.faces[hit.face]]
    n = torch.nn.functional.normalize((hit.bary[..., None] * n).sum(1), dim=-1)
    torso = torch.isin(g.labels, torch.tensor([PART_NAMES.index(p) for p in
                                               ("spine", "spine1", "spine2", "hips")]))
    means = g.means + 0.04 * torso[:, None].float() * n
    gen = torch.Generator().manual_seed(0)
    colors = (g.colors * 0.8 + 0.2 * torch.rand(len(g), 3, generator=gen)).clamp(0, 1)
    g = Gaussians(means, g.quats, g.scales * 1.3, g.opacities, colors=colors, labels=g.labels)
    folder.mkdir(parents=True, exist_ok=True)
    save_ply(g, folder / "gaussians.ply", y_down=True)
    params.save(folder / "body.npz")
    target = g.means.mean(0).tolist()
    cam = orbit_cameras([15.0], 5.0, 2.6, target=target, width=256, height=256)
    (folder / "meta.json").write_text(json.dumps({"camera": {
        "viewmat": cam.viewmats[0].tolist(), "K": cam.Ks[0].tolist(), "image_size": [256, 256]}}))
    return folder, g


@pytest.fixture(scope="module")
def exported(anny_body, tmp_path_factory):
    """The subject exported once: (folder, splat, glb path, asset, seconds)."""
    from humansplat.export import export_folder

    folder, g = _person(anny_body, tmp_path_factory.mktemp("export") / "person")
    t0 = time.perf_counter()
    path, asset = export_folder(folder, folder / "avatar.glb", motions=MOTIONS,
                                body_model=anny_body)
    return folder, g, path, asset, time.perf_counter() - t0


def _validate(path) -> dict:
    from humansplat.export.validator import validate_gltf, validator_available

    why = validator_available()
    if why is not None:
        reason = f"Khronos glTF validator not run: {why}"
        print(reason)
        pytest.skip(reason)
    report = validate_gltf(path)
    errors = [m for m in report["issues"]["messages"] if m["severity"] == 0]
    assert report["issues"]["numErrors"] == 0, errors[:5]
    return report


def _accessor(gltf, index: int) -> np.ndarray:
    """An accessor's data read straight from the GLB's binary chunk (pygltflib's objects)."""
    acc = gltf.accessors[index]
    view = gltf.bufferViews[acc.bufferView]
    dtype = {5126: np.float32, 5121: np.uint8, 5123: np.uint16, 5125: np.uint32}[
        acc.componentType]
    n = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT4": 16}[acc.type]
    blob = gltf.binary_blob()
    start = view.byteOffset + (acc.byteOffset or 0)
    return np.frombuffer(blob, dtype, acc.count * n, start).reshape(acc.count, n)


def test_glb_is_valid_and_reads_back(exported):
    import trimesh
    from pygltflib import GLTF2

    _, _, path, asset, seconds = exported
    report = _validate(path)
    assert report["info"]["hasSkins"] and report["info"]["hasTextures"]
    assert report["info"]["animationCount"] == len(MOTIONS)
    gltf = GLTF2().load(str(path))
    skin = gltf.skins[0]
    assert len(skin.joints) >= 20
    names = [gltf.nodes[j].name for j in skin.joints]
    assert "root" in names and len(set(names)) == len(names)
    prim = gltf.meshes[0].primitives[0]
    w = _accessor(gltf, prim.attributes.WEIGHTS_0)
    j = _accessor(gltf, prim.attributes.JOINTS_0)
    assert w.shape[1] == 4 and np.abs(w.astype(np.float64).sum(1) - 1).max() < 1e-6
    assert (w >= 0).all() and j.max() < len(skin.joints)
    assert (w > 0).sum(1).max() <= 4 and (w > 0).sum(1).min() >= 1
    tex = gltf.textures[gltf.materials[0].pbrMetallicRoughness.baseColorTexture.index]
    img = gltf.images[tex.source]
    assert img.mimeType == "image/png"
    assert [a.name for a in gltf.animations] == list(MOTIONS)
    for a in gltf.animations:
        t = _accessor(gltf, a.samplers[0].input)[:, 0]
        assert t[0] == 0 and (np.diff(t) > 0).all()
        assert {c.target.path for c in a.channels} >= {"translation", "rotation"}
    # trimesh: the textured mesh
    scene = trimesh.load(str(path), force="scene")
    mesh = next(iter(scene.geometry.values()))
    assert mesh.visual.uv.shape == (len(mesh.vertices), 2)
    assert np.asarray(mesh.visual.material.baseColorTexture).std() > 5  # not one flat colour
    print(f"\nexport: {asset.stats['exported_vertices']} vertices, {len(skin.joints)} joints, "
          f"{seconds:.1f} s (timings {asset.timings})")


def _trs_matrix(t, q, s) -> np.ndarray:
    x, y, z, w = q
    R = np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                  [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                  [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])
    M = np.eye(4)
    M[:3, :3] = R * np.asarray(s)[None, :]
    M[:3, 3] = t
    return M


def test_animation_in_the_file_is_the_body_models_motion(exported, anny_body):
    """Skin the file's vertices the way a glTF viewer does (node TRS from the animation's
    keyframes, composed down the hierarchy, times the inverse bind matrices) and compare
    with the body model's own linear blend skinning in that frame of the motion."""
    from pygltflib import GLTF2

    from humansplat.avatar.motions import make_motion
    from humansplat.export.skin import bind_pose, motion_transforms

    folder, _, path, _, _ = exported
    gltf = GLTF2().load(str(path))
    prim = gltf.meshes[0].primitives[0]
    X = _accessor(gltf, prim.attributes.POSITION).astype(np.float64)
    W = _accessor(gltf, prim.attributes.WEIGHTS_0).astype(np.float64)
    Jx = _accessor(gltf, prim.attributes.JOINTS_0).astype(np.int64)
    ibm = _accessor(gltf, gltf.skins[0].inverseBindMatrices).reshape(-1, 4, 4).transpose(0, 2, 1)
    anim = gltf.animations[0]
    frame = 5
    trs = {i: [np.array(n.translation or [0, 0, 0]), np.array(n.rotation or [0, 0, 0, 1]),
               np.array(n.scale or [1, 1, 1])] for i, n in enumerate(gltf.nodes)}
    slot = {"translation": 0, "rotation": 1, "scale": 2}
    for c in anim.channels:
        out = _accessor(gltf, anim.samplers[c.sampler].output)
        trs[c.target.node][slot[c.target.path]] = out[frame].astype(np.float64)
    parent = {k: i for i, n in enumerate(gltf.nodes) for k in (n.children or [])}
    glob: dict[int, np.ndarray] = {}

    def world(i):
        if i not in glob:
            L = _trs_matrix(*trs[i])
            glob[i] = world(parent[i]) @ L if i in parent else L
        return glob[i]

    joints = gltf.skins[0].joints
    M = np.stack([world(j) @ ibm[k] for k, j in enumerate(joints)])  # [J,4,4]
    Xh = np.concatenate([X, np.ones((len(X), 1))], 1)
    viewer = np.einsum("nk,nkij,nj->ni", W, M[Jx], Xh)[:, :3]

    params = BodyParams.load(folder / "body.npz")
    T_fit = bind_pose(anny_body, params, "input").bone_transforms.double()
    T = motion_transforms(anny_body, params, bind_pose(anny_body, params, "input"),
                          make_motion("walk"))[frame].double()
    w = torch.as_tensor(W)
    j = torch.as_tensor(Jx)
    A0 = (w[..., None, None] * T_fit[j]).sum(1)
    A1 = (w[..., None, None] * T[j]).sum(1)
    rest = torch.linalg.solve(A0[:, :3, :3], (torch.as_tensor(X) - A0[:, :3, 3])[..., None])
    ref = ((A1[:, :3, :3] @ rest).squeeze(-1) + A1[:, :3, 3]).numpy()
    moved = np.linalg.norm(viewer - X, axis=1)
    err = np.linalg.norm(viewer - ref, axis=1)
    print(f"\nframe {frame}: vertices move up to {moved.max():.3f} m; viewer vs body model "
          f"{err.max() * 1000:.2f} mm max")
    assert moved.max() > 0.05  # the walk moves the mesh
    assert err.max() < 0.02 and np.median(err) < 0.002


def test_glb_matches_the_splat_at_the_input_camera(exported):
    from humansplat.export.check import compare_glb_to_splat
    from humansplat.export.command import load_input_camera

    folder, g, path, *_ = exported
    r = compare_glb_to_splat(path, g, load_input_camera(folder / "meta.json"))
    print(f"\nGLB vs splat at the input camera: silhouette IoU {r['iou']:.3f}, "
          f"PSNR {r['psnr']:.2f} dB")
    assert r["iou"] >= 0.9
    assert r["psnr"] > 15.0


def test_tpose_glb_and_obj(exported, anny_body, tmp_path):
    import trimesh

    from humansplat.export import export_folder

    folder = exported[0]
    path, asset = export_folder(folder, tmp_path / "t.glb", pose="tpose", motions=("turn",),
                                body_model=anny_body)
    _validate(path)
    p = asset.positions
    assert abs(float(p[:, 1].min())) < 1e-3  # standing on y = 0
    names = asset.joint_names
    G = asset.bind_globals
    for side in ("L", "R"):  # upper arms horizontal: elbow at shoulder height
        a, b = names.index(f"upperarm01.{side}"), names.index(f"lowerarm01.{side}")
        d = G[b, :3, 3] - G[a, :3, 3]
        assert abs(float(d[1])) < 0.05 * float(d.norm()), (side, d)
    obj, _ = export_folder(folder, tmp_path / "a.obj", format="obj", body_model=anny_body)
    mesh = trimesh.load(str(obj), force="mesh")
    assert len(mesh.faces) == len(asset.faces)
    assert mesh.visual.uv is not None and mesh.visual.material.image is not None
    assert np.asarray(mesh.visual.material.image).std() > 5


def test_export_cli(exported, tmp_path, capsys):
    from humansplat.cli import main

    folder = exported[0]
    assert main(["export", str(tmp_path / "missing")]) == 2
    assert "no such reconstruction folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["export", str(tmp_path / "empty")]) == 2
    assert "body.npz" in capsys.readouterr().err or "gaussians.ply" in capsys.readouterr().err
    out = tmp_path / "cli.glb"
    assert main(["export", str(folder), "-o", str(out), "--pose", "apose", "--motion",
                 "wave"]) == 0
    assert "104 joints" in capsys.readouterr().out
    _validate(out)


# --------------------------------------------------------------------------------------------
# a real browser: Gradio's Model3D draws the GLB and plays its animation
# --------------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.browser
@pytest.mark.timeout(600)  # software WebGL: a screenshot of the playing avatar takes seconds
def test_model3d_plays_the_glb(exported):
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import gradio as gr
    from PIL import Image
    from selenium.webdriver.common.by import By
    from test_compact import _canvas_is_drawn, _chromium

    path = exported[2]
    with gr.Blocks() as demo:
        gr.Model3D(value=str(path), label="avatar", height=500)
    port = _free_port()
    driver = None
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True,
                allowed_paths=[str(path.parent)], quiet=True)
    try:
        driver = _chromium()
        driver.get(f"http://127.0.0.1:{port}/")
        deadline = time.time() + 90
        canvas, frac = None, 0.0
        while time.time() < deadline and canvas is None:
            time.sleep(1.0)
            for c in driver.find_elements(By.CSS_SELECTOR, "canvas"):
                if c.size["width"] > 50 and c.size["height"] > 50:
                    drawn, frac = _canvas_is_drawn(c.screenshot_as_png)
                    if drawn:
                        canvas = c
                        break
        assert canvas is not None, f"Model3D's canvas stayed blank ({frac:.4f} of pixels differ)"
        first = np.asarray(Image.open(io.BytesIO(canvas.screenshot_as_png)).convert("RGB"),
                           np.float32)
        diffs = []
        for _ in range(3):  # the walk loops every 1.3 s: frames a moment apart differ
            time.sleep(0.3)
            later = np.asarray(Image.open(io.BytesIO(canvas.screenshot_as_png)).convert("RGB"),
                               np.float32)
            diffs.append(float(np.abs(later - first).mean()))
            if diffs[-1] > 0.5:
                break
        print(f"\ncanvas drawn ({frac:.3f} of pixels); mean change between screenshots "
              f"{', '.join(f'{d:.2f}' for d in diffs)}")
        assert max(diffs) > 0.5, "the avatar does not move: its animation does not play"
    finally:
        if driver is not None:
            driver.quit()
        demo.close()


def test_webapp_export_result_is_cached_next_to_the_result(exported, anny_body, tmp_path):
    import shutil

    from humansplat.webapp.avatar_export import check_export_pose, export_result

    result = tmp_path / "run" / "result"
    shutil.copytree(exported[0], result, ignore=shutil.ignore_patterns("*.glb"))
    assert check_export_pose("tpose") is None and "must be one of" in check_export_pose("x")
    with pytest.raises(ValueError, match="must be one of"):
        export_result(result, "sideways", body_model=anny_body)
    path = export_result(result, "input", body_model=anny_body)
    assert path == str(tmp_path / "run" / "views" / "avatar_input.glb")
    mtime = os.stat(path).st_mtime_ns
    assert export_result(result, "input", body_model=anny_body) == path  # reused
    assert os.stat(path).st_mtime_ns == mtime
    _validate(path)
