"""scripts/compare_stages.py: issue 16's conditions and the stage rule's counts."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("compare_stages",
                                              ROOT / "scripts" / "compare_stages.py")
cs = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = cs  # its dataclass resolves annotations through the module
spec.loader.exec_module(cs)

P = "perceptual[effnet-lite0]"


def _scores(psnr, perc, side):
    return {"psnr": psnr, P: perc, "mask_iou_side": side}


def _write(root: Path, label: str, shipped: dict[str, tuple], mesh=(20.0, 0.20, 0.80),
           gaussians=(19.0, 0.25, 0.78)):
    for split, _ in cs.SPLITS:
        summary = {"prior-mesh": {"full_body": _scores(*mesh)},
                   "prior-gaussians": {"full_body": _scores(*gaussians)},
                   cs.NETWORK: {"full_body": _scores(20.5, 0.30, 0.80)},
                   cs.SHIPPED: {"full_body": _scores(*shipped[split])}}
        (root / f"eval_{label}_{split}.json").write_text(
            json.dumps({"subjects": 8, "summary": summary}))


def test_issue16_conditions_and_the_perceptual_tolerance(tmp_path):
    splits = [s for s, _ in cs.SPLITS]
    before = {s: (21.0, 0.21, 0.81) for s in splits}  # +1.0 dB: never meets the margin
    after = {s: (21.6, 0.19, 0.81) for s in splits}  # meets all three everywhere
    after["test"] = (21.6, 0.2000, 0.81)  # perceptual not below the mesh prior's: misses
    after["hard"] = (21.6, 0.19, 0.79)  # side IoU below the prior's on a hard split: misses
    after["seed11_test"] = (21.6, 0.19, 0.79)  # ... but on a test split it does not count
    after["seed12_test"] = (21.49, 0.19, 0.81)  # 1.49 dB over the better prior: misses
    after["seed12_hard"] = (21.6, 0.2101, 0.81)  # +0.0001 vs before: within tolerance (misses)
    after["seed11_256_hard"] = (20.9, 0.2103, 0.81)  # +0.0003: higher; PSNR down
    _write(tmp_path, "a", before)
    _write(tmp_path, "b", after)
    rows = cs.load_rows("a", "b", tmp_path)
    met = {r.split for r in rows if r.meets(r.after)}
    assert met == {"seed11_test", "seed11_hard", "seed11_256_test"}
    s = cs.summary(rows, tolerance=0.0002)
    assert (s["issue16_before"], s["issue16_after"]) == (0, 3)
    assert s["psnr_up"] == 7
    assert s["perceptual_no_higher"] == 7 and s["perceptual_lower"] == 6
    assert cs.summary(rows, tolerance=0.0)["perceptual_no_higher"] == 6
    assert abs(s["hard_side_iou_delta_min"] - (-0.02)) < 1e-9
    assert cs.table(rows, "a", "b").count(" ✓ |") == 3
    current = cs.current_table("b", tmp_path)  # the README's one-checkpoint table
    assert current.count(" ✓ |") == 3 and current.endswith("Issue 16 met on 3 of 8 splits.")
    assert "| 19.00 / 0.2500 / 0.7800 | 20.50 / 0.3000 / 0.8000 | **21.60 / 0.1900" in current


def test_the_committed_stage_results_give_the_readme_figures():
    # docs/training_log.md "A twenty-first stage": issue 16 on six of eight held-out splits,
    # four before
    rows = cs.load_rows("stage18", "stage21", ROOT / "benchmarks" / "results")
    s = cs.summary(rows, tolerance=0.0002)
    assert (s["issue16_before"], s["issue16_after"]) == (4, 6)
    assert s["psnr_up"] == 8 and s["perceptual_lower"] == 8
    assert {r.split for r in rows if not r.meets(r.after)} == {"seed11_256_test",
                                                               "seed11_256_hard"}


def test_missing_result_files_are_named(tmp_path, capsys):
    splits = [s for s, _ in cs.SPLITS]
    _write(tmp_path, "a", {s: (21.0, 0.21, 0.81) for s in splits})
    _write(tmp_path, "b", {s: (21.6, 0.19, 0.81) for s in splits})
    (tmp_path / "eval_b_seed11_256_hard.json").unlink()  # a split still being evaluated
    with pytest.raises(SystemExit) as stop:
        cs.main(["a", "b", "--results", str(tmp_path)])
    assert stop.value.code == 2
    assert "missing in" in capsys.readouterr().err
    cs.main(["a", "a", "--results", str(tmp_path)])
    assert "PSNR up on 0 of 8" in capsys.readouterr().out
