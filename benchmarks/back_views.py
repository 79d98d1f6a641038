"""The prior's back views (azimuth >= 135 degrees from the input view) against the ground
truth, with and without ``ProjectionConfig.back_wrap`` (the torso's back from its sides),
on chosen people of a synthetic split, in one run.

    python benchmarks/back_views.py --data D --split test --subjects 12,18,24 [--out PATH]

Prints the mean PSNR (dB) of each setting over the subjects' full-body back views (128 px
targets rendered at 2x and averaged down, as ``humansplat eval`` does) and writes JSON
(default ``benchmarks/results/back_views.json``)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine_info, write_result


def back_psnr(data, ids, back_wrap) -> list[float]:
    from humansplat.cameras import Cameras, view_azimuths
    from humansplat.eval.evaluate import _Prior
    from humansplat.metrics import psnr
    from humansplat.prior.body import AnnyBody
    from humansplat.synth.projection import ProjectionSynthesizer

    prior = _Prior(AnnyBody())
    prior.synth = ProjectionSynthesizer(prior.body_model, back_wrap=back_wrap)
    out = []
    for i in ids:
        s = data[i]
        R = s["target_rgb"].shape[-1]
        az = view_azimuths(s["viewmats"][0], s["target_viewmats"]).abs()
        pick = torch.tensor([j for j in range(len(az)) if int(s["target_levels"][j]) == 0
                             and float(az[j]) >= 135.0])
        cams = Cameras(s["target_viewmats"].float(), s["target_Ks"].float(), R, R)[pick]
        rgb, _ = prior.render(s, cams.resized(2 * R, 2 * R), ["prior-mesh"])["prior-mesh"]
        rgb = torch.nn.functional.avg_pool2d(rgb, 2).clamp(0, 1)
        out += [float(v) for v in psnr(rgb, s["target_rgb"][pick].float())]
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--split", default="test")
    ap.add_argument("--subjects", required=True, help="comma-separated indices in the split")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "back_views.json"))
    a = ap.parse_args(argv)
    from humansplat.synth.projection import ProjectionConfig
    from humansplat.train.dataset import SyntheticHumans

    torch.set_num_threads(1)
    data = SyntheticHumans(a.data, split=a.split, targets=None)
    ids = [int(x) for x in a.subjects.split(",")]
    rows = {}
    for name, wrap in (("whole part", ()), ("back_wrap (default)", ProjectionConfig().back_wrap)):
        vals = back_psnr(data, ids, wrap)
        rows[name] = {"mean_psnr_db": float(np.mean(vals)), "views": vals}
        print(f"{name:22s} back views PSNR {np.mean(vals):6.2f} dB ({len(vals)} views)")
    write_result({"benchmark": "back_views", "data": a.data, "split": a.split,
                  "subjects": ids, "rows": rows, "machine": machine_info()}, a.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
