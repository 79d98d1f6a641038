"""`humansplat eval`: every method scored on the same held-out views, files written."""

from __future__ import annotations

import json

import pytest
import torch

from humansplat.cli import main
from humansplat.config import get_preset
from humansplat.model import LatentReconstructionTransformer
from humansplat.train.dataset import SynthDataConfig, generate_split


@pytest.fixture(scope="module")
def tiny_split(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    cfg = SynthDataConfig(resolution=32, input_size=64, preset="micro", eval_views=(4, 2, 2),
                          shard_size=1)
    generate_split(root, "test", 2, seed=3, cfg=cfg, progress=False)
    return root


def test_eval_writes_table_json_and_grids(tiny_split, tmp_path, capsys):
    torch.manual_seed(0)
    model_dir = tmp_path / "micro"
    LatentReconstructionTransformer(get_preset("micro", body_anchor=True,
                                               color_skip=True)).save_pretrained(model_dir)
    out = tmp_path / "eval"
    code = main(["eval", "--data", str(tiny_split), "--split", "test", "--checkpoint",
                 f"micro={model_dir}", "--perceptual", "effnet-lite0", "-o", str(out),
                 "--set", "view_resolution=0", "--quiet"])
    assert code == 0
    res = json.loads((out / "results.json").read_text())
    assert res["methods"] == ["prior-mesh", "prior-gaussians", "micro", "micro+faithful"]
    assert res["subjects"] == 2 and res["perceptual"] == "perceptual[effnet-lite0]"
    assert res["supersample"] == 2
    # the shipped splat's settings are recorded: the checkpoint has no pipeline.json, so
    # the defaults, with the --set override
    assert res["faithful_pipeline"]["micro"]["view_resolution"] == 0
    for m in res["methods"]:
        s = res["summary"][m]
        assert set(s) == {"full_body", "upper_body", "face"}
        fb = s["full_body"]
        assert 5 < fb["psnr"] < 60 and 0 < fb["ssim"] <= 1 and fb["perceptual[effnet-lite0]"] >= 0
        assert 0 <= fb["mask_iou"] <= 1 and 0 <= fb["mask_iou_side"] <= 1
    # the textured fitted body is far closer to the subject than an untrained model
    assert res["summary"]["prior-mesh"]["full_body"]["psnr"] > \
        res["summary"]["micro"]["full_body"]["psnr"]
    # the synthetic subjects are their bodies and the prior is the "fitted" body (the truth
    # plus simulated fit noise): its silhouette is close to the dataset's masks (0.74 at
    # these 32 px, 0.82 at 128), the untrained model's is not
    prior_iou = res["summary"]["prior-mesh"]["full_body"]
    assert prior_iou["mask_iou"] > 0.6 and prior_iou["mask_iou_side"] > 0.6, prior_iou
    assert res["summary"]["micro"]["full_body"]["mask_iou"] < prior_iou["mask_iou"]
    # the photo's own Gaussians and the carving by its mask: the shipped splat's silhouette
    # is closer to the subject's than the untrained model's it was made from
    assert res["summary"]["micro+faithful"]["full_body"]["mask_iou"] > \
        res["summary"]["micro"]["full_body"]["mask_iou"] + 0.03  # 0.43 vs 0.39
    table = (out / "results.md").read_text()
    assert table.count("\n| ") == 10  # header + 4 methods, twice (all; by azimuth)
    # the azimuth bins split the full-body views: their view-weighted mean is the summary's
    for m in res["methods"]:
        bins = res["by_azimuth"][m]
        assert set(bins) <= {"0", "45", "90", "135", "180"} and "0" in bins
        n = sum(b["views"] for b in bins.values())
        mean = sum(b["psnr"] * b["views"] for b in bins.values()) / n
        assert mean == pytest.approx(res["summary"][m]["full_body"]["psnr"], abs=1e-6)
    assert len(list((out / "grids").glob("*.png"))) == 2
    assert "prior-mesh" in capsys.readouterr().out


def test_view_azimuths_about_the_person():
    from humansplat.cameras import orthogonal_views, view_azimuths

    cams = orthogonal_views(2.6, width=64, height=64)  # 0, 90, 180, 270 from the input view
    az = view_azimuths(cams.viewmats[0], cams.viewmats)
    assert torch.allclose(az.abs(), torch.tensor([0.0, 90.0, 180.0, 90.0]), atol=1e-3), az
    assert torch.allclose(az[1], -az[3], atol=1e-3)  # one side each way


def test_eval_rejects_bad_checkpoint_spec(tiny_split, tmp_path):
    assert main(["eval", "--data", str(tiny_split), "--checkpoint", "nopath",
                 "-o", str(tmp_path)]) == 2


def test_eval_rejects_an_unknown_pipeline_field(tiny_split, tmp_path, capsys):
    torch.manual_seed(0)
    model_dir = tmp_path / "micro"
    LatentReconstructionTransformer(get_preset("micro")).save_pretrained(model_dir)
    assert main(["eval", "--data", str(tiny_split), "--checkpoint", f"m={model_dir}",
                 "--set", "no_such_field=1", "-o", str(tmp_path / "e"), "--quiet"]) == 2
    assert "no_such_field" in capsys.readouterr().err


def test_side_views_benchmark_takes_the_shipped_splat_apart(tiny_split, tmp_path):
    """benchmarks/side_views.py: at the input view (azimuth 0) the faithful splat is the
    photo, far above the untrained model; its photo Gaussians alone carry most of that; a
    variant with no changes scores exactly as the shipped settings (one run shares nothing
    with the next)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "side_views.py"
    spec = importlib.util.spec_from_file_location("side_views", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    torch.manual_seed(0)
    model_dir = tmp_path / "micro"
    LatentReconstructionTransformer(get_preset("micro", body_anchor=True,
                                               color_skip=True)).save_pretrained(model_dir)
    out = tmp_path / "side.json"
    assert bench.main(["--data", str(tiny_split), "--split", "test", "--subjects", "2",
                       "--azimuth", "0", "--checkpoint", str(model_dir),
                       "--variant", "same={}", "--threads", "0", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    s = {m: v["mean"] for m, v in res["summary"].items()}
    assert set(s) == {"prior-mesh", "model", "shipped", "shipped/photo", "shipped/rest",
                      "same", "same/photo", "same/rest"}
    assert s["shipped"] > s["model"] + 3.0, s
    assert s["shipped/photo"] > s["shipped/rest"], s
    for k in ("", "/photo", "/rest"):
        assert res["per_subject"]["same" + k] == res["per_subject"]["shipped" + k]
    assert res["machine"]["cpu_count"] >= 1
