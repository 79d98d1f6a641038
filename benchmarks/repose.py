"""Reposing against ground truth: synthetic dressed subjects moved to a second pose.

Each subject (``humansplat.data.synthetic_humans``, deterministic from its seed) is turned
into Gaussians in its own pose, bound to a body, reposed to a second pose drawn for it, and
rendered from 4 orbit views (azimuth 0/90/180/270, framed on both poses); the reference is
the subject's own mesh rendered in the second pose (``data.subject_render``). Two settings
(``humansplat.eval.avatar_eval.evaluate_repose``):

- ``gt``: "oracle" Gaussians (surface discs coloured by the subject's materials) bound to the
  GT body: the reposing step on its own;
- ``fitted``: the prior-only pipeline on the subject's rendered photo (mediapipe landmarks,
  body fit, projection texture): its Gaussians bound to its *fitted* body, reconstruction
  errors included.

Methods: ``skinned`` (ours: barycentric surface binding, LBS), ``nearest_vertex`` (the
nearest vertex's weights), ``rigid`` (the splat left as reconstructed: no articulation);
``same_pose`` (the Gaussians against the subject in its *own* pose) is the ceiling.

    python benchmarks/repose.py [--subjects 6] [--size 256] [--no-fitted]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # for common

from common import machine_info, write_result  # noqa: E402

METHODS = ("skinned", "nearest_vertex", "rigid", "same_pose")
POSE_KINDS = ("walking", "arms", "standing", "challenging")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--subjects", type=int, default=6)
    ap.add_argument("--first-seed", type=int, default=1)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--gaussians", type=int, default=60000, help="oracle Gaussians a subject")
    ap.add_argument("--no-fitted", action="store_true", help="skip the fitted-body setting")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "repose.json"))
    args = ap.parse_args(argv)

    import torch

    from humansplat.eval.avatar_eval import evaluate_repose
    from humansplat.data.synthetic_humans import default_body, sample_pose_natural, \
        sample_subject

    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    body = default_body()
    bodies = ("gt",) if args.no_fitted else ("gt", "fitted")
    cases = []
    t_all = time.perf_counter()
    for i in range(args.subjects):
        seed = args.first_seed + i
        sub = sample_subject(seed, hard=(i % 3 == 2), body=body)  # every third: skirts etc.
        kind = POSE_KINDS[i % len(POSE_KINDS)]
        pose_b = sample_pose_natural(np.random.default_rng(10_000 + seed), kind, body)
        t = time.perf_counter()
        for res in evaluate_repose(sub, pose_b, n_gaussians=args.gaussians, size=args.size,
                                   bodies=bodies):
            cases.append({"subject": seed, "outfit": sub.describe(), "pose_a": sub.pose_kind,
                          "pose_b": kind, "body": res.body, "metrics": res.metrics})
            m = res.metrics
            print(f"subject {seed:3d} {sub.pose_kind:>11s} -> {kind:<11s} {res.body:6s} " +
                  "  ".join(f"{k} {m[k]['psnr']:5.2f}/{m[k]['mask_iou']:.3f}" for k in METHODS),
                  flush=True)
        print(f"  ({time.perf_counter() - t:.1f} s)", flush=True)

    summary = {}
    for b in bodies:
        rows = [c["metrics"] for c in cases if c["body"] == b]
        if not rows:
            continue
        summary[b] = {k: {"psnr": float(np.mean([r[k]["psnr"] for r in rows])),
                          "mask_iou": float(np.mean([r[k]["mask_iou"] for r in rows])),
                          "wins_psnr_vs_rigid": int(sum(r[k]["psnr"] > r["rigid"]["psnr"]
                                                        for r in rows)),
                          "n": len(rows)} for k in METHODS}
    print(f"\nReposing to a second pose, mean over subjects ({args.size} px, 4 orbit views, "
          "reference = the subject rendered in that pose)")
    print(f"{'body':8s} {'method':15s} {'PSNR dB':>8s} {'mask IoU':>9s} {'beats rigid':>12s}")
    for b, per in summary.items():
        for k in METHODS:
            s = per[k]
            wins = f"{s['wins_psnr_vs_rigid']}/{s['n']}" if k not in ("rigid", "same_pose") \
                else ""
            print(f"{b:8s} {k:15s} {s['psnr']:8.2f} {s['mask_iou']:9.3f} {wins:>12s}")
    write_result({"benchmark": "repose", "machine": machine_info("cpu"),
                  "settings": {"subjects": args.subjects, "size": args.size,
                               "oracle_gaussians": args.gaussians, "views_azimuth_deg":
                               [0, 90, 180, 270], "bodies": list(bodies)},
                  "summary": summary, "cases": cases,
                  "seconds": time.perf_counter() - t_all}, args.out)
    return 0 if all(not math.isnan(v["skinned"]["psnr"]) for v in summary.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
