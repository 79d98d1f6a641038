"""The fitted body's lean in depth on every real photo of the real-photo benchmark.

A single photo barely shows how far the body leans toward or away from the camera (the scale
absorbs the foreshortening), so no score at the photo's camera sees it; from the side it is
the difference between a person standing and one lying diagonally (real-photos item 35 in
docs/faithful_splat.md). For each photo: preprocess at the pipeline's crop size, fit the
body, print the lean of the body's up axis (``BodyFit.lean_deg``), of the legs (hips
above ankles) and of the torso (shoulders above hips), degrees, positive toward the camera.

    python scripts/fit_leans.py [--out benchmarks/results/fit_leans.json] [--size 256]
                                [--cases astronaut,cameraman] [--set ignore_beyond_photo=false]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from body_fit import fit_config  # noqa: E402
from real_photos import CASES  # noqa: E402

from humansplat.prior.body import AnnyBody  # noqa: E402
from humansplat.prior.fit import fit_preprocessed  # noqa: E402
from humansplat.prior.parts import KEYPOINT_NAMES  # noqa: E402
from humansplat.prior.preprocess import preprocess  # noqa: E402


def _lean_deg(v: torch.Tensor) -> float:
    return math.degrees(math.asin(float(v[2] / v.norm())))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="benchmarks/results/fit_leans.json")
    ap.add_argument("--size", type=int, default=256, help="crop size (the pipeline's: 256)")
    ap.add_argument("--cases", default="", help="comma-separated case names (default: all)")
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                    help="override a FitConfig field (repeatable)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    try:
        cfg = fit_config(args.set)
    except ValueError as err:
        ap.error(str(err))
    body = AnnyBody()
    want = [c for c in args.cases.split(",") if c]
    names = list(KEYPOINT_NAMES)
    rows = []
    print(f"{'photo':<24}{'body':>7}{'legs':>7}{'torso':>7}{'kp px':>7}{'IoU':>7}")
    for case in CASES:
        if want and case.name not in want:
            continue
        fit = fit_preprocessed(preprocess(case.load(), size=args.size), body, cfg)
        k = fit.keypoints
        mid = lambda a: 0.5 * (k[names.index("left_" + a)] + k[names.index("right_" + a)])  # noqa
        row = {"photo": case.name, "split": case.split,
               "lean_deg": fit.lean_deg,
               "legs_lean_deg": _lean_deg(mid("hip") - mid("ankle")),
               "torso_lean_deg": _lean_deg(mid("shoulder") - mid("hip")),
               "kp_err_px_median": fit.diagnostics["kp_err_px_median"],
               "silhouette_iou": fit.diagnostics["silhouette_iou"]}
        rows.append(row)
        print(f"{case.name:<24}{row['lean_deg']:7.1f}{row['legs_lean_deg']:7.1f}"
              f"{row['torso_lean_deg']:7.1f}{row['kp_err_px_median']:7.1f}"
              f"{row['silhouette_iou']:7.3f}", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"size": args.size, "config": vars(cfg), "rows": rows}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
