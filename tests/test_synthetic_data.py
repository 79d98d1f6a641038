"""Synthetic dressed people (humansplat.data.synthetic_humans / subject_render) and their
sharded data set (humansplat.train.dataset): determinism, the sample contract, garments
that leave the body, part maps that agree with the body, resumable generation."""

import json
import os

import numpy as np
import pytest
import torch
from torch_threads import one_thread  # noqa: F401  (fixture)

from humansplat.cameras import orbit_cameras
from humansplat.prior.fit import input_camera
from humansplat.train.dataset import (SynthDataConfig, SyntheticHumans, collate_samples,
                                      generate_split, generate_subject, list_shards)
from humansplat.data.subject_render import render_subject
from humansplat.data.synthetic_humans import (Subject, sample_subject, subject_seed)

# small settings: the contract's shapes scale with them
CFG = SynthDataConfig(resolution=64, input_size=128, train_views=(2, 1, 1),
                      eval_views=(4, 2, 2), shard_size=2)


pytestmark = pytest.mark.usefixtures("one_thread")


def _find(pred, hard=False, start=0, limit=200) -> Subject:
    for seed in range(start, start + limit):
        s = sample_subject(seed, hard=hard)
        if pred(s):
            return s
    raise AssertionError("no subject matched")


def test_subject_is_deterministic_and_seeds_differ():
    a, b, c = sample_subject(5), sample_subject(5), sample_subject(6)
    assert a.describe() == b.describe()
    ma, mb = a.mesh(), b.mesh()
    assert torch.equal(ma.vertices, mb.vertices) and torch.equal(ma.faces, mb.faces)
    assert a.describe() != c.describe()
    # held-out splits draw from other seed streams
    train = {subject_seed(0, "train", i) for i in range(200)}
    test = {subject_seed(0, "test", i) for i in range(50)}
    assert not train & test and len(train) == 200


def test_placement_matches_a_preprocessed_crop():
    """Silhouette in the input camera: centred, longer bbox side 0.85 of the image."""
    for seed in (1, 2, 3):
        s = sample_subject(seed)
        rv = render_subject(s.mesh(), input_camera(256, 256), 256)
        ys, xs = np.nonzero(rv.alpha[0, 0].numpy() > 0.5)
        h, w = ys.max() - ys.min() + 1, xs.max() - xs.min() + 1
        assert abs(max(h, w) / 256 - 0.85) < 0.02
        assert abs((ys.max() + ys.min()) / 2 - 127.5) < 3
        assert abs((xs.max() + xs.min()) / 2 - 127.5) < 3


def test_render_outputs_and_white_background():
    s = sample_subject(3)
    cams = orbit_cameras([0.0, 135.0], 10.0, 2.6, width=64, height=64)
    rv = render_subject(s.mesh(), cams, 64)
    assert rv.rgb.shape == (2, 3, 64, 64) and rv.alpha.shape == (2, 1, 64, 64)
    assert rv.parts.shape == (2, 64, 64) and rv.parts.dtype == torch.int64
    bg = rv.alpha[:, 0] == 0
    assert torch.all(rv.rgb.permute(0, 2, 3, 1)[bg] == 1.0)
    assert torch.equal(rv.parts < 0, rv.alpha[:, 0] < 0.5)
    assert int(rv.parts.max()) <= 23 and len(torch.unique(rv.parts)) > 10


def _body_only(mesh):
    """The same mesh cut down to its naked body (the first n_body vertices)."""
    from dataclasses import replace

    keep = (mesh.faces < mesh.n_body).all(1)
    return replace(mesh, faces=mesh.faces[keep], face_material=mesh.face_material[keep])


def test_parts_agree_with_the_body_under_tight_clothes():
    """Trousers and a top are thin shells: the dressed part map equals the naked body's
    part map almost everywhere both cover."""
    s = _find(lambda s: s.outfit.bottom == "trousers" and not s.outfit.jacket
              and s.outfit.hair in ("none", "short"))
    mesh = s.mesh()
    cams = orbit_cameras([0.0, 90.0, 180.0], 0.0, 2.6, width=96, height=96)
    dressed = render_subject(mesh, cams, 96)
    naked = render_subject(_body_only(mesh), cams, 96)
    both = (dressed.parts >= 0) & (naked.parts >= 0)
    agree = (dressed.parts == naked.parts)[both].float().mean()
    assert agree > 0.9, float(agree)


def test_skirt_leaves_the_body():
    s = _find(lambda s: s.outfit.bottom in ("skirt", "dress") and s.outfit.skirt_flare > 0.2,
              hard=True)
    mesh = s.mesh()
    assert "skirt" in mesh.layers
    cam = input_camera(128, 128)
    dressed = render_subject(mesh, cam, 128).alpha[0, 0] >= 0.5
    naked = render_subject(_body_only(mesh), cam, 128).alpha[0, 0] >= 0.5
    outside = int((dressed & ~naked).sum())
    assert outside > 0.05 * int(naked.sum()), (outside, int(naked.sum()))
    # every skirt pixel outside the body is labelled with a lower-body part
    parts = render_subject(mesh, cam, 128).parts[0][dressed & ~naked]
    from humansplat.prior.parts import PART_NAMES
    lower = [PART_NAMES.index(n) for n in ("hips", "left_up_leg", "right_up_leg", "left_leg",
                                           "right_leg", "left_foot", "right_foot", "spine",
                                           "spine1")]
    frac = torch.isin(parts, torch.tensor(lower)).float().mean()
    assert frac > 0.8


def test_shells_lie_outside_the_body():
    s = _find(lambda s: s.outfit.bottom == "trousers")
    mesh = s.mesh()
    first, n = mesh.layers["trousers"]
    shell = mesh.vertices[first:first + n]
    body = mesh.vertices[:mesh.n_body]
    d = torch.cdist(shell[::7], body).min(1).values
    assert float(d.median()) > 0.003
    assert float(d.max()) < 0.05


def test_reposing_keeps_the_fabric():
    """subject.mesh(pose=...) reposes the same person; canonical coordinates (where the
    patterns live) do not depend on the pose, except on the skirt's rings."""
    s = _find(lambda s: s.outfit.bottom == "trousers")
    a = s.mesh()
    b = s.mesh(pose=np.zeros((24, 3), np.float32))
    assert a.vertices.shape == b.vertices.shape
    assert torch.allclose(a.canonical, b.canonical)
    assert float((a.vertices - b.vertices).norm(dim=1).max()) > 0.05


def test_generated_sample_contract_and_determinism(tmp_path):
    a = generate_subject("train", 0, 7, CFG)
    b = generate_subject("train", 0, 7, CFG)
    for k in a:
        if k != "meta":
            assert np.array_equal(a[k], b[k]), k
    strip = lambda m: {k: v for k, v in json.loads(str(m)).items() if k != "seconds"}  # noqa
    assert strip(a["meta"]) == strip(b["meta"])
    generate_split(tmp_path, "train", 3, seed=7, cfg=CFG, progress=False)
    ds = SyntheticHumans(tmp_path, "train", targets=None)
    assert len(ds) == 3
    s = ds[0]
    assert s["subject"] == "train-00000"
    T, R, S = 4, CFG.resolution, CFG.input_size
    expect = {"views": ((5, 3, 128, 128), torch.float32), "viewmats": ((5, 4, 4), torch.float32),
              "Ks": ((5, 3, 3), torch.float32), "body_vertices": ((13718, 3), torch.float32),
              "target_rgb": ((T, 3, R, R), torch.float32),
              "target_mask": ((T, 1, R, R), torch.float32),
              "target_parts": ((T, R, R), torch.int64),
              "target_viewmats": ((T, 4, 4), torch.float32),
              "target_Ks": ((T, 3, 3), torch.float32), "target_levels": ((T,), torch.int64),
              "input_image": ((3, S, S), torch.float32), "input_mask": ((1, S, S), torch.float32)}
    for k, (shape, dtype) in expect.items():
        assert tuple(s[k].shape) == shape and s[k].dtype == dtype, (k, s[k].shape, s[k].dtype)
    assert s["target_levels"].tolist() == [0, 0, 1, 2]
    assert float(s["target_rgb"].min()) >= 0 and float(s["target_rgb"].max()) <= 1
    assert int(s["target_parts"].min()) == -1 and int(s["target_parts"].max()) <= 23
    # the first view is the photo, resized: it matches the stored input image
    photo = torch.nn.functional.interpolate(s["input_image"][None], size=128, mode="area")[0]
    assert float((photo - s["views"][0]).abs().mean()) < 0.03
    # the fitted body is the GT body plus a few cm of fitting noise
    gt = sample_subject(subject_seed(7, "train", 0), input_size=S).mesh()
    err = (s["body_vertices"] - gt.vertices[:gt.n_body]).norm(dim=1).mean()
    assert 0.003 < float(err) < 0.06, float(err)
    from humansplat.cameras import project_points
    uv, _ = project_points(s["body_vertices"], s["viewmats"][:1], s["Ks"][:1])
    px = uv[0].floor().long().clamp(0, 127)
    mask128 = torch.nn.functional.interpolate(s["input_mask"][None], size=128, mode="area")[0, 0]
    assert float((mask128[px[:, 1], px[:, 0]] > 0.5).float().mean()) > 0.6
    # a target at the input's camera shows the same picture as the photo (cameras agree)
    meta = json.loads(str(ds.raw(0)["meta"]))
    assert meta["name"] == "train-00000" and len(meta["fit"]["smpl_pose"]) == 24
    # random picks per level, then batching
    ds2 = SyntheticHumans(tmp_path, "train", targets=(1, 1, 1), seed=0)
    b = collate_samples([ds2[0], ds2[1]])
    assert b["target_rgb"].shape == (2, 3, 3, R, R)
    assert b["target_levels"].tolist() == [[0, 1, 2], [0, 1, 2]]
    assert b["subject"] == ["train-00000", "train-00001"]


def test_target_cameras_frame_the_levels(tmp_path):
    """Test-split cycles: evenly spaced azimuths; the face views see mostly the head."""
    d = generate_subject("test", 0, 3, CFG)
    lv = d["target_levels"]
    assert lv.tolist() == [0] * 4 + [1] * 2 + [2] * 2
    parts = d["target_parts"]
    head = 15
    face = parts[lv == 2]
    assert ((face == head).sum() / (face >= 0).sum()) > 0.4
    full = parts[lv == 0]
    assert len(np.unique(full[0])) > 15  # the whole body is in frame
    assert (d["target_mask"][lv == 0][:, [0, -1], :] == 0).all()  # not cut at top/bottom


def test_resume_skips_complete_shards(tmp_path):
    shards = generate_split(tmp_path, "test", 3, seed=1, cfg=CFG, progress=False)
    assert [p.name for p in shards] == ["shard-00000.npz", "shard-00001.npz"]
    first = shards[0].stat().st_mtime_ns
    os.utime(shards[0], ns=(first - 10**9, first - 10**9))
    stamp = shards[0].stat().st_mtime_ns
    shards[1].unlink()
    again = generate_split(tmp_path, "test", 3, seed=1, cfg=CFG, progress=False)
    assert len(again) == 2 and again[0].stat().st_mtime_ns == stamp  # untouched
    assert len(SyntheticHumans(tmp_path, "test", targets=None)) == 3
    # growing the split later only adds shards; other settings are refused
    generate_split(tmp_path, "test", 4, seed=1, cfg=CFG, progress=False)
    assert len(SyntheticHumans(tmp_path, "test", targets=None)) == 4
    with pytest.raises(ValueError, match="other settings"):
        generate_split(tmp_path, "test", 4, seed=2, cfg=CFG, progress=False)
    # no partial files are ever listed
    (tmp_path / "test" / ".shard-00009.123.partial.npz").write_bytes(b"")
    assert len(list_shards(tmp_path, "test")) == 2


def test_tiny_generation_through_the_cli(tmp_path):
    # speed lives in benchmarks/synth.py, not here: a shared CI machine makes timings noise
    from humansplat.cli import main

    rc = main(["data", "synth", "--out", str(tmp_path), "--train", "2", "--test", "1",
               "--hard", "0", "--resolution", "64", "--input-size", "128", "--no-progress"])
    assert rc == 0
    assert len(SyntheticHumans(tmp_path, "train")) == 2
    assert len(SyntheticHumans(tmp_path, "test")) == 1
    assert list_shards(tmp_path, "hard") == []


def test_the_cli_records_the_clothing_it_was_given(tmp_path, capsys):
    import json

    from humansplat.cli import EXIT_BAD_INPUT, main

    args = ["data", "synth", "--out", str(tmp_path), "--train", "0", "--test", "1", "--hard",
            "0", "--resolution", "64", "--input-size", "128", "--no-progress", "--clothing"]
    for bad, says in (('{"colour_stop": "x"}', "colour_stop"), ("[1]", "JSON object"),
                      ("{oops", "JSON object"), ('{"thickness": 1}', "unknown clothing")):
        assert main(args + [bad]) == EXIT_BAD_INPUT
        assert says in capsys.readouterr().err
        assert list_shards(tmp_path, "test") == []  # nothing written
    assert main(args + ['{"colour_stop": 0.5}']) == 0
    info = json.loads((tmp_path / "test" / "info.json").read_text())
    assert info["config"]["clothing"] == {"colour_stop": 0.5}


def test_extra_roots_join_the_training_set_only(tmp_path):
    from humansplat.errors import ConfigError
    from humansplat.train.config import TrainConfig
    from humansplat.train.trainer import build_dataset

    a, b = tmp_path / "a", tmp_path / "b"
    generate_split(a, "train", 2, seed=7, cfg=CFG, progress=False)
    generate_split(b, "train", 1, seed=8, cfg=CFG, progress=False)
    cfg = TrainConfig.from_dict({"data": {"root": str(a), "extra_roots": [str(b)]}})
    assert cfg.data.extra_roots == (str(b),)
    one = TrainConfig.from_dict({"data": {"root": str(a), "extra_roots": str(b)}})
    assert one.data.extra_roots == (str(b),)  # `--set data.extra_roots=DIR`: one root
    train = build_dataset(cfg, "train", targets=None, extra_roots=True)
    assert len(train) == 3
    # the added root's people come after the first root's, as they are stored there
    assert torch.equal(train[2]["input_image"],
                       SyntheticHumans(b, "train", targets=None)[0]["input_image"])
    assert not torch.equal(train[2]["input_image"], train[0]["input_image"])
    assert len(build_dataset(cfg, "train", targets=None)) == 2  # evaluation/samples: root only
    scans = TrainConfig.from_dict({"data": {"kind": "scans", "extra_roots": [str(b)]}})
    with pytest.raises(ConfigError, match="extra_roots"):
        build_dataset(scans, "train", extra_roots=True)
