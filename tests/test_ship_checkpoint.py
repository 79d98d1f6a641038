"""scripts/ship_checkpoint.py --rescore: a card's evaluation figures rewritten from eval
results, everything else in the card kept."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _ship():
    spec = importlib.util.spec_from_file_location("ship_checkpoint",
                                                  ROOT / "scripts" / "ship_checkpoint.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_rescore_rewrites_only_the_evaluation_figures(tmp_path):
    ship = _ship()
    res = json.loads((ROOT / "benchmarks/results/eval_sil_test.json").read_text())
    card = tmp_path / "README.md"
    card.write_text(
        "# Card\n\nTraining text that must stay.\n\n"
        f"Split `{res['split']}` ({res['subjects']} subjects):\n\n| old | table |\n|---|---|\n\n"
        "Full-body differences (the model minus the baseline):\n\n- an old finding.\n\n"
        "## Limitations\n\n- kept.\n")
    ship.rescore(str(card), [res])
    text = card.read_text()
    assert "Training text that must stay." in text and "## Limitations\n\n- kept." in text
    assert "| old | table |" not in text and "an old finding" not in text
    psnr = res["summary"]["humansplat-tiny+faithful"]["full_body"]["psnr"]
    assert f"| humansplat-tiny+faithful | {psnr:.2f} |" in text
    mesh = res["summary"]["prior-mesh"]["full_body"]["psnr"]
    assert (f"- the shipped splat vs `prior-mesh` on `test`: PSNR {psnr - mesh:+.2f} dB"
            in text)


def test_the_card_names_every_training_root(tmp_path):
    ship = _ship()
    info = {"seed": 0, "count": 800, "config": {
        "input_size": 256, "resolution": 128, "train_views": [4, 2, 2], "noise_pose": 0.02,
        "noise_shape": 0.03, "noise_transl": 0.01, "noise_scale": 0.015, "noise_yaw_deg": 2.0,
        "clothing": {}}}
    for name, seed in (("synth", 0), ("synth31", 31)):
        (tmp_path / name / "train").mkdir(parents=True)
        (tmp_path / name / "train" / "info.json").write_text(json.dumps(dict(info, seed=seed)))
    run = tmp_path / "run"
    run.mkdir()
    cfg = {"model": {"preset": "tiny"},
           "data": {"root": str(tmp_path / "synth"), "extra_roots": [str(tmp_path / "synth31")],
                    "targets": [4, 2, 2]},
           "loss": {"lambda_m": 5.0, "lambda_p": 1.0, "perceptual": "effnet-lite0",
                    "lambda_part": 0.1, "photo_sheet": 0.75},
           "optim": {"lr": 1.5e-4, "warmup_steps": 50, "betas": [0.9, 0.95],
                     "weight_decay": 0.05, "grad_clip": 1.0, "ema_decay": 0.995,
                     "batch_size": 1, "grad_accum": 1},
           "run": {"threads": 1, "mixed_precision": "no", "max_steps": 1500}}
    (run / "config.json").write_text(json.dumps(cfg))
    res = json.loads((ROOT / "benchmarks/results/eval_stage23_test.json").read_text())
    text = ship.card(run, [res], None, 1500, 0.8, "configs/x.yaml")
    assert "800 synthetic dressed people (seed 0)" in text
    assert ("This run also trained on 800 more from seed 31 (`humansplat data synth --out "
            "data/synth31 --train 800 --test 0 --hard 0 --seed 31`): the same generator, other "
            "people (`data.extra_roots: [data/synth31]`).") in text
    cfg["data"]["extra_roots"] = []
    (run / "config.json").write_text(json.dumps(cfg))
    assert "also trained on" not in ship.card(run, [res], None, 1500, 0.8, "configs/x.yaml")
