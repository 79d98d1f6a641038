"""3D part labels against ground truth: per-part IoU of rendered label maps.

For synthetic dressed subjects (``humansplat.data.synthetic_humans``) the reference is the
subject's own part map (``data.subject_render``: the body part under each surface point,
garments included), rendered from 4 orbit views (azimuth 0/90/180/270) framed on the subject.
The Gaussians' labels are rendered the same way (``parts_export.render_label_map``: the part
with the most composited weight, background where alpha < 0.5). Settings:

- ``mesh labels``: oracle Gaussians (surface discs, ``eval.avatar_eval.subject_gaussians``)
  carrying the mesh's own labels: what label rendering itself allows (the ceiling);
- ``nearest part, GT body``: the same Gaussians labelled by ``parts_export.assign_labels``
  (the nearest point of the GT body), the fallback when no model predicts labels;
- ``prior-only, fitted body``: the prior-only pipeline on the subject's rendered photo
  (labels from its fitted body): reconstruction and body-fit errors included.

    python benchmarks/parts.py [--subjects 6] [--size 256]
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # for common

from common import machine_info, write_result  # noqa: E402

SETTINGS = ("mesh_labels", "nearest_part_gt_body", "prior_only_fitted_body")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--subjects", type=int, default=6)
    ap.add_argument("--first-seed", type=int, default=1)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--gaussians", type=int, default=60000)
    ap.add_argument("--no-prior", action="store_true", help="skip the prior-only setting")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "parts.json"))
    args = ap.parse_args(argv)

    import torch

    from humansplat.avatar import BodyParams
    from humansplat.eval.avatar_eval import (evaluate_part_labels, framing_cameras, inset,
                                             mean_iou, pixel_size, prior_reconstruction,
                                             subject_gaussians)
    from humansplat.parts_export import assign_labels
    from humansplat.prior.parts import PART_NAMES
    from humansplat.data.synthetic_humans import default_body, sample_subject

    body = default_body()
    settings = SETTINGS[:2] if args.no_prior else SETTINGS
    per_setting: dict[str, list] = {s: [] for s in settings}
    agreement, cases = [], []
    t0 = time.perf_counter()
    for i in range(args.subjects):
        seed = args.first_seed + i
        sub = sample_subject(seed, hard=(i % 3 == 2), body=body)
        mesh = sub.mesh()
        cams = framing_cameras([mesh.vertices], args.size)
        px = pixel_size(cams, mesh.vertices.float().mean(0))
        g = subject_gaussians(mesh, args.gaussians)
        p = sub.body_params()
        params = BodyParams(p["body_pose"][0], p["shape"][0], p["global_orient"][0],
                            p["transl"][0], p["scale"][0])
        labelled = assign_labels(replace(g, labels=None), body, params)
        agree = float((labelled.labels == g.labels).float().mean())
        agreement.append(agree)
        ious = {"mesh_labels": evaluate_part_labels(inset(g, px), mesh, cams),
                "nearest_part_gt_body": evaluate_part_labels(inset(labelled, px), mesh, cams)}
        if "prior_only_fitted_body" in settings:
            rec = prior_reconstruction(sub)
            ious["prior_only_fitted_body"] = evaluate_part_labels(rec.gaussians, mesh, cams)
        for s in settings:
            per_setting[s].append(ious[s])
        cases.append({"subject": seed, "outfit": sub.describe(), "label_agreement_3d": agree,
                      **{s: {"mean_iou": mean_iou(v), "per_part": [None if v[j].isnan()
                                                                   else float(v[j])
                                                                   for j in range(24)]}
                         for s, v in ious.items()}})
        print(f"subject {seed:3d} ({sub.pose_kind}, {sub.outfit.bottom}): 3D agreement "
              f"{agree:.3f}, mean IoU " + ", ".join(f"{s} {mean_iou(ious[s]):.3f}"
                                                    for s in settings), flush=True)

    table = {s: torch.stack(v).nanmean(0) for s, v in per_setting.items()}
    print(f"\nPer-part IoU of rendered label maps vs the subjects' part maps "
          f"({args.subjects} subjects, {args.size} px, 4 views; mean over subjects)")
    print(f"{'part':18s}" + "".join(f"{s:>26s}" for s in settings))
    for j, name in enumerate(PART_NAMES):
        print(f"{name:18s}" + "".join(f"{float(table[s][j]):26.3f}" for s in settings))
    means = {s: float(torch.stack([torch.tensor(mean_iou(v)) for v in per_setting[s]]).mean())
             for s in settings}
    print(f"{'mean (parts seen)':18s}" + "".join(f"{means[s]:26.3f}" for s in settings))
    print(f"3D label agreement with the mesh labels (nearest part, GT body): "
          f"{sum(agreement) / len(agreement):.4f}")
    write_result({"benchmark": "parts", "machine": machine_info("cpu"),
                  "settings": {"subjects": args.subjects, "size": args.size,
                               "oracle_gaussians": args.gaussians, "compared": list(settings)},
                  "mean_iou": means,
                  "per_part_iou": {s: {PART_NAMES[j]: float(table[s][j]) for j in range(24)}
                                   for s in settings},
                  "label_agreement_3d": sum(agreement) / len(agreement), "cases": cases,
                  "seconds": time.perf_counter() - t0}, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
