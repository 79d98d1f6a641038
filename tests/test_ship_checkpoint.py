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
