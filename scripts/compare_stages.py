"""Two checkpoints on the eight held-out splits: the README's training-stage tables.

Reads ``benchmarks/results/eval_{BEFORE}_{split}.json`` and ``eval_{AFTER}_{split}.json``
(``humansplat eval`` results, one per split: seed 0 ``test`` / ``hard``, fresh seeds 11 and 12,
seed 11 at 256 px) and prints, per split, the mesh prior, the shipped splat
(``humansplat-tiny+faithful``) of each checkpoint as PSNR / perceptual / side mask IoU, and the
after-checkpoint's PSNR margin over the better prior with a check mark where issue 16's three
conditions hold (>= 1.5 dB over the better prior, perceptual below the mesh prior's, and on
``hard`` splits side IoU at least the mesh prior's). Then the summary a stage is judged by:
PSNR differences, how many splits' perceptual is no higher (a difference within
``--tolerance`` counts as no higher), side IoU differences, issue 16's count before and after.

Usage: python scripts/compare_stages.py stage18 stage21 [--tolerance 0.0002] [--results DIR]

``--current LABEL`` prints one checkpoint's table instead (the README's "the bundled model,
held out"): per split the two priors, the network's own Gaussians and the shipped splat as
PSNR / perceptual / side mask IoU, and the margin with issue 16's check mark.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

#: (file suffix, label in the README's tables)
SPLITS = (("test", "seed 0 `test`"), ("hard", "seed 0 `hard`"),
          ("seed11_test", "fresh seed 11 `test`"), ("seed11_hard", "fresh seed 11 `hard`"),
          ("seed12_test", "fresh seed 12 `test`"), ("seed12_hard", "fresh seed 12 `hard`"),
          ("seed11_256_test", "seed 11 `test`, 256 px"),
          ("seed11_256_hard", "seed 11 `hard`, 256 px"))
SHIPPED = "humansplat-tiny+faithful"
NETWORK = "humansplat-tiny"
MARGIN_DB = 1.5  # issue 16's margin over the better prior


@dataclass
class SplitRow:
    split: str
    label: str
    subjects: int
    mesh: dict
    before: dict
    after: dict
    better_prior_psnr: float
    perceptual_key: str
    methods: dict  # the after-checkpoint's full-body scores of every method

    def cell(self, m: dict) -> str:
        """PSNR / perceptual / side mask IoU of full-body scores ``m``."""
        return f"{m['psnr']:.2f} / {m[self.perceptual_key]:.4f} / {m['mask_iou_side']:.4f}"

    def meets(self, m: dict) -> bool:
        """Issue 16's three conditions for full-body scores ``m`` on this split."""
        p = self.perceptual_key
        return (m["psnr"] - self.better_prior_psnr >= MARGIN_DB and m[p] < self.mesh[p]
                and ("hard" not in self.split or m["mask_iou_side"] >= self.mesh["mask_iou_side"]))


def load_rows(before: str, after: str, results: Path) -> list[SplitRow]:
    rows = []
    for split, label in SPLITS:
        b = json.loads((results / f"eval_{before}_{split}.json").read_text())
        a = json.loads((results / f"eval_{after}_{split}.json").read_text())
        s = a["summary"]
        key = next(k for k in s["prior-mesh"]["full_body"] if k.startswith("perceptual"))
        rows.append(SplitRow(split, label, int(a["subjects"]), s["prior-mesh"]["full_body"],
                             b["summary"][SHIPPED]["full_body"], s[SHIPPED]["full_body"],
                             max(s["prior-mesh"]["full_body"]["psnr"],
                                 s["prior-gaussians"]["full_body"]["psnr"]), key,
                             {name: m["full_body"] for name, m in s.items()}))
    return rows


def table(rows: list[SplitRow], before: str, after: str) -> str:
    out = [f"| data | prior-mesh | {before} | {after} | PSNR minus the better prior "
           "(✓: issue 16 met) |", "|---|---|---|---|---|"]
    for r in rows:
        tick = " ✓" if r.meets(r.after) else ""
        out.append(f"| {r.label} ({r.subjects}) | {r.cell(r.mesh)} | {r.cell(r.before)} | "
                   f"{r.cell(r.after)} | {r.after['psnr'] - r.better_prior_psnr:+.2f}{tick} |")
    return "\n".join(out)


def summary(rows: list[SplitRow], tolerance: float) -> dict:
    dp = [r.after["psnr"] - r.before["psnr"] for r in rows]
    dq = [r.after[r.perceptual_key] - r.before[r.perceptual_key] for r in rows]
    ds = [r.after["mask_iou_side"] - r.before["mask_iou_side"] for r in rows]
    hard = [d for d, r in zip(ds, rows) if "hard" in r.split]
    return {"psnr_up": sum(d > 0 for d in dp), "psnr_mean_delta": sum(dp) / len(dp),
            "psnr_delta_range": [min(dp), max(dp)],
            "perceptual_no_higher": sum(d <= tolerance for d in dq),
            "perceptual_lower": sum(d < 0 for d in dq),
            "perceptual_delta_range": [min(dq), max(dq)],
            "side_iou_delta_range": [min(ds), max(ds)], "hard_side_iou_delta_min": min(hard),
            "issue16_before": sum(r.meets(r.before) for r in rows),
            "issue16_after": sum(r.meets(r.after) for r in rows), "tolerance": tolerance}


def current_table(label: str, results: Path) -> str:
    """One checkpoint on the eight splits: priors, network, shipped splat, issue 16."""
    rows = load_rows(label, label, results)
    out = ["| data | prior-mesh | prior-gaussians | network alone | shipped splat | PSNR minus "
           "the better prior (✓: issue 16 met) |", "|---|---|---|---|---|---|"]
    for r in rows:
        tick = " ✓" if r.meets(r.after) else ""
        out.append(f"| {r.label} ({r.subjects}) | {r.cell(r.mesh)} | "
                   f"{r.cell(r.methods['prior-gaussians'])} | "
                   f"{r.cell(r.methods[NETWORK])} | **{r.cell(r.after)}** | "
                   f"{r.after['psnr'] - r.better_prior_psnr:+.2f}{tick} |")
    met = sum(r.meets(r.after) for r in rows)
    return "\n".join(out) + f"\n\nIssue 16 met on {met} of {len(rows)} splits."


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("before", nargs="?")
    ap.add_argument("after", nargs="?")
    ap.add_argument("--current", metavar="LABEL", help="one checkpoint's table instead")
    ap.add_argument("--tolerance", type=float, default=0.0002,
                    help="a perceptual difference up to this counts as no higher")
    ap.add_argument("--results", type=Path,
                    default=Path(__file__).resolve().parents[1] / "benchmarks" / "results")
    args = ap.parse_args(argv)
    labels = [args.current] if args.current else [x for x in (args.before, args.after) if x]
    missing = [f"eval_{label}_{split}.json" for label in labels for split, _ in SPLITS
               if not (args.results / f"eval_{label}_{split}.json").is_file()]
    if missing:  # e.g. a split still being evaluated
        ap.error(f"missing in {args.results}: {', '.join(missing)}")
    if args.current:
        print(current_table(args.current, args.results))
        return
    if not (args.before and args.after):
        ap.error("give BEFORE and AFTER labels, or --current LABEL")
    rows = load_rows(args.before, args.after, args.results)
    s = summary(rows, args.tolerance)
    print(table(rows, args.before, args.after))
    print()
    print(f"PSNR up on {s['psnr_up']} of {len(rows)}, mean {s['psnr_mean_delta']:+.3f} dB "
          f"({s['psnr_delta_range'][0]:+.3f} .. {s['psnr_delta_range'][1]:+.3f}); perceptual no "
          f"higher (within {args.tolerance:g}) on {s['perceptual_no_higher']}, lower on "
          f"{s['perceptual_lower']} ({s['perceptual_delta_range'][0]:+.4f} .. "
          f"{s['perceptual_delta_range'][1]:+.4f}); side IoU {s['side_iou_delta_range'][0]:+.4f} "
          f".. {s['side_iou_delta_range'][1]:+.4f} (hard splits from "
          f"{s['hard_side_iou_delta_min']:+.4f}); issue 16 met on {s['issue16_before']} -> "
          f"{s['issue16_after']} splits")


if __name__ == "__main__":
    main()
