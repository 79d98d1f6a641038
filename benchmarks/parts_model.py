"""Part labels predicted by the model's head vs the ground-truth part maps of held-out synthetic
subjects: per-part IoU of the rendered label maps (argmax of the rendered part probabilities,
where both the render and the ground truth show the person), full-body views.

    python benchmarks/parts_model.py [--checkpoint humansplat/checkpoints/humansplat-tiny] [--subjects 16]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_info, write_result  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", default="humansplat/checkpoints/humansplat-tiny")
    ap.add_argument("--data", default="data/synth")
    ap.add_argument("--split", default="test")
    ap.add_argument("--subjects", type=int, default=16)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    import torch

    from humansplat.model import LatentReconstructionTransformer
    from humansplat.prior.parts import NUM_PARTS, PART_NAMES
    from humansplat.train.dataset import SyntheticHumans
    from humansplat.train.step import collate_samples, model_kwargs, render_views

    torch.set_num_threads(1)
    model = LatentReconstructionTransformer.from_pretrained(args.checkpoint).eval()
    data = SyntheticHumans(args.data, split=args.split, targets=None)
    n = min(args.subjects, len(data))
    inter = torch.zeros(NUM_PARTS)
    union = torch.zeros(NUM_PARTS)
    agree = total = 0
    for i in range(n):
        b = collate_samples([data[i]])
        full = b["target_levels"][0] == 0
        with torch.no_grad():
            out = model(**model_kwargs(b))
            r = render_views(out, b["target_viewmats"][:, full], b["target_Ks"][:, full],
                             b["target_rgb"].shape[-1])
        pred = r.parts[0].argmax(1)  # [T,R,R]
        gt = b["target_parts"][0, full]
        both = (gt >= 0) & (r.alpha[0, :, 0] > 0.5)
        agree += int((pred[both] == gt[both]).sum())
        total += int(both.sum())
        for j in range(NUM_PARTS):
            p, g = (pred == j) & both, (gt == j) & both
            inter[j] += (p & g).sum()
            union[j] += (p | g).sum()
    present = union > 0
    iou = torch.where(present, inter / union.clamp(min=1), torch.full_like(inter, float("nan")))
    per_part = {PART_NAMES[j]: float(iou[j]) for j in range(NUM_PARTS) if present[j]}
    miou = float(iou[present].mean())
    print(f"{n} {args.split} subjects, full-body views: mean per-part IoU {miou:.3f}, "
          f"pixel agreement {agree / max(total, 1):.3f}")
    for k, v in sorted(per_part.items(), key=lambda kv: kv[1]):
        print(f"  {k:16s} {v:.3f}")
    write_result({"benchmark": "parts_model", "machine": machine_info(),
                  "checkpoint": args.checkpoint, "split": args.split, "subjects": n,
                  "mean_iou": miou, "pixel_agreement": agree / max(total, 1),
                  "per_part_iou": per_part},
                 args.out or Path(__file__).parent / "results" / "parts_model.json")


if __name__ == "__main__":
    main()
