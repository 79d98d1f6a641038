"""The prior's back views (azimuth >= 135 degrees from the input view) against the ground
truth, for several ``ProjectionConfig`` settings, on people of a synthetic split, in one run.

    python benchmarks/back_views.py --data D --split test [--subjects 12,18,24]
        [--variant NAME='{"crown_weight": 0}' ...] [--out PATH]

Two kinds of back view: the full-body cycle's (``body``, 128 px targets) and the face
cycle's (``head``: the back of the head filling the frame). Every view is rendered at 2x and
averaged down, as ``humansplat eval`` does. Without ``--variant`` the settings compared are
the torso's colours from its sides or from the whole part (``back_wrap``); with it, the
default settings and each variant (JSON fields of ``ProjectionConfig``). Prints the mean PSNR
(dB) per setting and kind, the per-subject spread of the difference from the first setting,
and writes JSON (default ``benchmarks/results/back_views.json``)."""

from __future__ import annotations

import argparse
import json
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

#: camera cycle level of each kind of back view (dataset.LEVELS: full body, upper body, face)
KINDS = {"body": 0, "head": 2}


def back_psnr(prior, sample) -> dict[str, list[float]]:
    """PSNR of ``prior``'s mesh render of each back view of one sample, per kind."""
    from humansplat.cameras import Cameras, view_azimuths
    from humansplat.metrics import psnr

    s = sample
    R = s["target_rgb"].shape[-1]
    az = view_azimuths(s["viewmats"][0], s["target_viewmats"]).abs()
    out = {}
    for kind, level in KINDS.items():
        pick = torch.tensor([j for j in range(len(az)) if int(s["target_levels"][j]) == level
                             and float(az[j]) >= 135.0], dtype=torch.long)
        if not len(pick):
            out[kind] = []
            continue
        cams = Cameras(s["target_viewmats"].float(), s["target_Ks"].float(), R, R)[pick]
        rgb, _ = prior.render(s, cams.resized(2 * R, 2 * R), ["prior-mesh"])["prior-mesh"]
        rgb = torch.nn.functional.avg_pool2d(rgb, 2).clamp(0, 1)
        out[kind] = [float(v) for v in psnr(rgb, s["target_rgb"][pick].float())]
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--split", default="test")
    ap.add_argument("--subjects", default=None,
                    help="comma-separated indices in the split (default: all)")
    ap.add_argument("--variant", action="append", default=[], metavar="NAME=JSON",
                    help="ProjectionConfig fields to compare with the defaults (repeatable)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "back_views.json"))
    a = ap.parse_args(argv)
    from humansplat.eval.evaluate import _Prior
    from humansplat.prior.body import AnnyBody
    from humansplat.synth.projection import ProjectionConfig, ProjectionSynthesizer
    from humansplat.train.dataset import SyntheticHumans

    torch.set_num_threads(1)
    data = SyntheticHumans(a.data, split=a.split, targets=None)
    ids = [int(x) for x in a.subjects.split(",")] if a.subjects else list(range(len(data)))
    if a.variant:
        variants = {"default": {}}
        for v in a.variant:
            name, _, js = v.partition("=")
            variants[name] = json.loads(js)
    else:
        variants = {"whole part": {"back_wrap": []}, "back_wrap (default)": {}}
    body = AnnyBody()
    priors = {}
    for name, fields in variants.items():
        priors[name] = _Prior(body)
        priors[name].synth = ProjectionSynthesizer(body, config=ProjectionConfig(**fields))
    # per setting and kind: per subject, the views' PSNRs
    rows = {n: {k: [] for k in KINDS} for n in variants}
    for i in ids:
        s = data[i]
        for name, prior in priors.items():
            for kind, vals in back_psnr(prior, s).items():
                rows[name][kind].append(vals)
        print(f"subject {i}: " + ", ".join(
            f"{n} {np.mean(rows[n]['head'][-1]):.2f}" for n in variants) + " (head back, dB)",
            flush=True)
    first = next(iter(variants))
    result = {}
    for name in variants:
        result[name] = {"fields": variants[name]}
        for kind in KINDS:
            per = rows[name][kind]
            flat = [v for vals in per for v in vals]
            diff = [np.mean(v) - np.mean(f) for v, f in zip(per, rows[first][kind]) if v]
            result[name][kind] = {
                "mean_psnr_db": float(np.mean(flat)) if flat else None, "views": len(flat),
                "per_subject": [float(np.mean(v)) if v else None for v in per],
                f"minus_{first}_db": {"mean": float(np.mean(diff)), "min": float(np.min(diff)),
                                      "max": float(np.max(diff))} if diff else None}
    print(f"{'setting':24s} " + "  ".join(f"{k + ' back (dB)':>16s} {'minus ' + first:>22s}"
                                          for k in KINDS))
    for name, r in result.items():
        cells = []
        for kind in KINDS:
            d = r[kind][f"minus_{first}_db"]
            cells.append(f"{r[kind]['mean_psnr_db']:16.2f} "
                         f"{d['mean']:+7.2f} ({d['min']:+.2f}..{d['max']:+.2f})")
        print(f"{name:24s} " + "  ".join(cells))
    write_result({"benchmark": "back_views", "data": a.data, "split": a.split,
                  "subjects": ids, "settings": result, "machine": machine_info()}, a.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
