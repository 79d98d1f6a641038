"""The clothed body (humansplat.prior.clothing) against the naked fit, as the prior alone.

    python benchmarks/clothing.py --data D [--split hard]
        [--variant NAME='{"max_shrink": 0.02}' ...] [--out benchmarks/results/clothing_<split>.json]

D is a folder from ``humansplat data synth --naked-body`` (the stored body must be the naked
one: each variant clothes it here). For every subject the stored body is clothed from the
input mask with each variant's ``ClothingConfig`` settings ("naked": off; "default": the
defaults), textured by the projection synthesizer and rendered as a mesh at every full-body
target view; scored against the subject's true views: PSNR, silhouette IoU, IoU from the
sides (45-135 degrees from the input) and the clothing's own seconds. Prints a table of
means and the spread (std over subjects) and writes JSON with the machine's description.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # for common

from common import machine_info, write_result  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="a --naked-body data folder")
    ap.add_argument("--split", default="hard")
    ap.add_argument("--variant", action="append", default=[], metavar="NAME=JSON",
                    help="extra ClothingConfig settings to score (besides naked and default)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    from humansplat.cameras import Cameras, view_azimuths
    from humansplat.eval.evaluate import body_fit_from_sample
    from humansplat.front import synth_input
    from humansplat.metrics import mask_iou, psnr
    from humansplat.prior.body import AnnyBody
    from humansplat.synth.projection import ProjectionSynthesizer
    from humansplat.train.dataset import SyntheticHumans, SynthDataConfig

    info = json.loads((Path(args.data) / args.split / "info.json").read_text())
    if SynthDataConfig.from_json(info["config"]).clothing is not None:
        sys.exit(f"{args.data} stores clothed bodies: generate it with --naked-body")
    variants = {"naked": None, "default": {}}
    for v in args.variant:
        name, _, js = v.partition("=")
        variants[name] = json.loads(js)
    body = AnnyBody()
    synth = ProjectionSynthesizer(body)
    data = SyntheticHumans(args.data, split=args.split, targets=None)
    rows = {k: [] for k in variants}
    for i in range(len(data)):
        s = data[i]
        R = s["target_rgb"].shape[-1]
        cams = Cameras(s["target_viewmats"].float(), s["target_Ks"].float(), R, R)
        gt, gm = s["target_rgb"].float(), s["target_mask"].float()[:, 0]
        az = view_azimuths(s["viewmats"][0], s["target_viewmats"]).abs()
        full = [j for j in range(len(az)) if int(s["target_levels"][j]) == 0]
        side = [j for j in full if 45.0 <= float(az[j]) <= 135.0]
        fit = body_fit_from_sample(s, body)
        for name, clothing in variants.items():
            t = time.perf_counter()
            inp = synth_input(s["input_image"].float(), s["input_mask"].float(), fit, clothing)
            secs = time.perf_counter() - t
            rgb, alpha = synth.render(synth.texture(inp), cams, R, with_alpha=True)
            rows[name].append({
                "subject": s["subject"],
                "psnr": float(np.mean([float(psnr(rgb[j:j + 1], gt[j:j + 1])) for j in full])),
                "mask_iou": float(np.mean([mask_iou(alpha[j], gm[j]) for j in full])),
                "mask_iou_side": float(np.mean([mask_iou(alpha[j], gm[j]) for j in side])),
                "seconds": secs})
        print(f"{s['subject']}: " + ", ".join(
            f"{k} {rows[k][-1]['mask_iou_side']:.3f}" for k in variants), flush=True)

    keys = ("psnr", "mask_iou", "mask_iou_side", "seconds")
    summary = {k: {m: {"mean": float(np.mean([r[m] for r in rs])),
                       "std": float(np.std([r[m] for r in rs]))} for m in keys}
               for k, rs in rows.items()}
    print(f"\n{'variant':<12} {'PSNR dB':>14} {'mask IoU':>14} {'IoU sides':>14} {'s':>6}")
    for k, sm in summary.items():
        print(f"{k:<12} " + " ".join(f"{sm[m]['mean']:7.3f}±{sm[m]['std']:.3f}" for m in keys[:3])
              + f" {sm['seconds']['mean']:6.2f}")
    out = args.out or ROOT / "benchmarks" / "results" / f"clothing_{args.split}.json"
    write_result({"benchmark": "clothing", "data": str(args.data), "split": args.split,
                  "subjects": len(data), "seed": info.get("seed"), "variants": variants,
                  "summary": summary, "per_subject": rows,
                  "machine": machine_info()}, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
