"""The device scripts of issue 17, proven on the CPU: benchmarks/gpu.py --smoke writes every
section of its documented schema without an error; scripts/device_train.sh --smoke generates,
trains, evaluates and packs a checkpoint that rebuilds byte-exact; the device bundle's pieces
(mediapipe replay, Anny cache stored narrower) reproduce what they stand in for exactly."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "scripts"))

import gpu  # noqa: E402  (benchmarks/gpu.py)

SECTION_KEYS = {
    "rasterizer": ["n_gaussians", "size", "pair", "agreement", "backends", "gsplat_available"],
    "sv3d": ["unet_params", "clip_params", "vae_params", "dtype", "weights_mem_gib", "cases"],
    "vae": ["params", "cases"],
    "transformer": ["preset", "params_m", "n_gaussians", "cases"],
    "pipeline": ["photo", "mediapipe", "runs"],
    "zerogpu": ["runs", "mediapipe", "video_encoded"],
}


def _env() -> dict:
    # no carried bundle on this machine: use the installed packages
    return dict(os.environ, PYTHONPATH=str(ROOT), HUMANSPLAT_DEVICE_BUNDLE="/nonexistent",
                OMP_NUM_THREADS="1")


@pytest.mark.slow
def test_gpu_benchmark_smoke_writes_every_section(tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu.py"), "--smoke", "--out",
                        str(tmp_path)], capture_output=True, text=True, timeout=1200,
                       env=_env(), cwd=ROOT)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    res = json.loads((tmp_path / "gpu.json").read_text())
    assert res["schema"] == gpu.SCHEMA and res["smoke"] is True and res["device"] == "cpu"
    assert {"platform", "torch", "versions", "cpu_count"} <= set(res["machine"])
    assert res["gsplat_build"]["status"] == "skipped"  # no CUDA: nothing to build
    for name, keys in SECTION_KEYS.items():
        sec = res[name]
        assert sec["status"] == "ok", (name, sec.get("error"), sec.get("traceback"))
        assert sec["error"] is None and sec["traceback"] is None
        assert sec["seconds"] > 0 and sec["budget_s"] > 0
        for k in keys:
            assert k in sec, (name, k)
    # the measurements are real numbers, not placeholders
    ras = res["rasterizer"]
    assert ras["pair"] == ["torch", "torch-fp64"]
    assert ras["agreement"]["color_max_abs"] < 1e-4  # float32 vs float64 of the same renderer
    assert max(ras["agreement"]["grad_rel_err"].values()) < 1e-3
    assert ras["backends"]["torch"]["turntable_fps"] > 0
    assert [c["frames"] for c in res["sv3d"]["cases"]] == [4, 21]
    assert all(c["step_ms"] > 0 for c in res["sv3d"]["cases"])
    assert {(c["op"], c["out_shape"][1]) for c in res["vae"]["cases"]} == {("encode", 4),
                                                                          ("decode", 3)}
    assert all(c["finite"] for c in res["vae"]["cases"])
    assert [(c["batch"], c["mode"]) for c in res["transformer"]["cases"]] == \
        [(1, "forward"), (1, "fwd+bwd"), (4, "forward"), (4, "fwd+bwd")]
    runs = res["pipeline"]["runs"]
    assert [r["synthesizer"] for r in runs] == ["projection", "sv3d (4 frames)",
                                                "sv3d (21 frames)"]
    assert all(r["n_gaussians"] > 0 for r in runs)
    z = res["zerogpu"]["runs"]
    assert [r["synthesizer"] for r in z] == ["projection", "sv3d"]
    assert all(r["estimate_s"] >= 20 and r["measured_s"] > 0 for r in z)
    md = (tmp_path / "gpu.md").read_text()
    assert "| rasterizer | ok |" in md and "ZeroGPU run" in md


def test_gpu_benchmark_records_a_failing_section(tmp_path, monkeypatch):
    """A section that dies is recorded with its traceback; the parent carries on."""
    res = gpu._run_child("no-such-section", True, "cpu", 120, tmp_path, use_gsplat=False)
    assert res["status"] == "error" and "KeyError" in res["error"]
    assert "Traceback" in res["traceback"]


def test_mediapipe_replay_reproduces_the_crop(tmp_path):
    """The recording replayed (what a device without mediapipe runs) gives the same crop,
    mask and landmarks as the live models."""
    from humansplat.io import load_image
    from humansplat.prior import landmarks, segmentation
    from humansplat.prior.preprocess import preprocess

    from humansplat.hub import resolve_source
    from humansplat.pipeline import PIPELINE_CONFIG_NAME, PipelineConfig

    # the bundled checkpoint's crop size: what benchmarks/gpu.py's runs ask the models for
    size = PipelineConfig.read(resolve_source(None).path / PIPELINE_CONFIG_NAME).crop_size
    rec = gpu.record_mediapipe(gpu.PHOTO, tmp_path / "mp.npz")
    live = preprocess(load_image(str(gpu.PHOTO)), size=size)
    saved = segmentation._DEFAULT, landmarks._DEFAULT
    try:
        gpu.install_mediapipe_replay(rec)
        replayed = preprocess(load_image(str(gpu.PHOTO)), size=size)
        again = preprocess(load_image(str(gpu.PHOTO)), size=size)  # replays from the top
    finally:
        segmentation._DEFAULT, landmarks._DEFAULT = saved
    for r in (replayed, again):
        np.testing.assert_array_equal(r.rgb, live.rgb)
        np.testing.assert_array_equal(r.mask, live.mask)
        np.testing.assert_array_equal(r.landmarks.xy, live.landmarks.xy)
    assert "replayed" in replayed.mask_source


@pytest.mark.slow
def test_anny_cache_packs_and_restores_for_the_float32_model(tmp_path, monkeypatch):
    """Stored as float32/int32 (to fit the device's 64 MiB), restored as float64/int64: the
    float32 body model built from it gives bit-identical bodies."""
    import torch

    import device_bundle
    from humansplat.prior.body import AnnyBody, anny_cache_dir

    original_dir = anny_cache_dir()
    device_bundle.pack_anny_cache(tmp_path)
    monkeypatch.setenv("ANNY_CACHE_DIR", str(tmp_path / "cache"))
    restored = device_bundle.restore_anny_cache(tmp_path)
    assert restored.is_relative_to(tmp_path / "cache")
    g = torch.Generator().manual_seed(0)
    b0, b1 = AnnyBody(cache_dir=original_dir), AnnyBody()
    pose = 0.3 * torch.randn(2, b0.num_joints - 1, 3, generator=g)
    shape = torch.rand(2, b0.num_shape, generator=g)
    o0, o1 = b0(pose, shape), b1(pose, shape)
    for k in ("vertices", "joints", "keypoints", "bone_transforms"):
        assert torch.equal(getattr(o0, k), getattr(o1, k)), k


@pytest.mark.slow
def test_device_train_smoke(tmp_path):
    out, work = tmp_path / "out", tmp_path / "work"
    r = subprocess.run(["bash", str(ROOT / "scripts" / "device_train.sh"), "--smoke", str(out)],
                       capture_output=True, text=True, timeout=1200, cwd=ROOT,
                       env=dict(_env(), WORK=str(work), PYTHON=sys.executable))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == [
        "checkpoint.tar.00", "checkpoint.tar.01", "eval.json", "eval.md", "progress.log",
        "train.json"]
    assert all(p.stat().st_size <= 16 * 2 ** 20 for p in out.iterdir())  # the run tool's limit
    summary = json.loads((out / "train.json").read_text())
    assert summary["smoke"] and summary["n_train_subjects"] == 2
    assert summary["train"]["steps"] == 4 and summary["train"]["resumed_from"] == 2
    ev = json.loads((out / "eval.json").read_text())
    # the network's own Gaussians and the splat the app would ship from them
    assert ev["methods"] == ["device", "device+faithful"] and ev["subjects"] == 1
    assert all(5 < ev["summary"][m]["full_body"]["psnr"] < 60 for m in ev["methods"])
    # the pieces rebuild the checkpoint byte-exact, and it loads
    rebuilt = tmp_path / "rebuilt"
    rebuilt.mkdir()
    subprocess.run(f"cat {out}/checkpoint.tar.* | tar -x -C {rebuilt}", shell=True, check=True)
    ck = rebuilt / "checkpoint"
    assert {"pipeline.json", "config.json", "model.safetensors"} <= {p.name for p in ck.iterdir()}
    assert hashlib.sha256((ck / "model.safetensors").read_bytes()).hexdigest() == \
        summary["model_sha256"]
    from humansplat.model import LatentReconstructionTransformer

    model = LatentReconstructionTransformer.from_pretrained(str(ck))
    assert model.config.name == "tiny"
    # a rerun finds every step done and only packs again
    r2 = subprocess.run(["bash", str(ROOT / "scripts" / "device_train.sh"), "--smoke", str(out)],
                        capture_output=True, text=True, timeout=600, cwd=ROOT,
                        env=dict(_env(), WORK=str(work), PYTHON=sys.executable))
    assert r2.returncode == 0, r2.stdout[-2000:] + r2.stderr[-2000:]
    assert "calibrate:" not in r2.stdout and "train: to step" not in r2.stdout
