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
                 "--quiet"])
    assert code == 0
    res = json.loads((out / "results.json").read_text())
    assert res["methods"] == ["prior-mesh", "prior-gaussians", "micro"]
    assert res["subjects"] == 2 and res["perceptual"] == "perceptual[effnet-lite0]"
    for m in res["methods"]:
        s = res["summary"][m]
        assert set(s) == {"full_body", "upper_body", "face"}
        fb = s["full_body"]
        assert 5 < fb["psnr"] < 60 and 0 < fb["ssim"] <= 1 and fb["perceptual[effnet-lite0]"] >= 0
    # the textured fitted body is far closer to the subject than an untrained model
    assert res["summary"]["prior-mesh"]["full_body"]["psnr"] > \
        res["summary"]["micro"]["full_body"]["psnr"]
    table = (out / "results.md").read_text()
    assert table.count("\n| ") == 4  # header + 3 methods
    assert len(list((out / "grids").glob("*.png"))) == 2
    assert "prior-mesh" in capsys.readouterr().out


def test_eval_rejects_bad_checkpoint_spec(tiny_split, tmp_path):
    assert main(["eval", "--data", str(tiny_split), "--checkpoint", "nopath",
                 "-o", str(tmp_path)]) == 2
