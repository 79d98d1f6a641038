"""The ablations over training seeds: mean and spread of each variant's full-body scores.

Reads ``ROOT/seed*/eval/results.json`` (written by ``scripts/ablations.sh``), prints a
markdown table and writes ``ROOT/ablations.md`` and ``ROOT/ablations.json``. Per variant and
metric: the mean over seeds, the range (min..max) and, for the trained variants, the
difference from ``full`` trained with the same seed (mean and range): the seed moves every
variant, so the paired difference is what tells an ablation apart.

Usage: python scripts/ablation_table.py runs/ablations
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

METRICS = ("psnr", "ssim", "perceptual[effnet-lite0]", "mask_iou", "mask_iou_side")
LABELS = {"psnr": "PSNR (dB)", "ssim": "SSIM", "perceptual[effnet-lite0]": "perceptual",
          "mask_iou": "mask IoU", "mask_iou_side": "side IoU"}
REFERENCE = "full"


def load(root: Path) -> dict[str, dict]:
    runs = {}
    for f in sorted(root.glob("seed*/eval/results.json")):
        runs[f.parent.parent.name] = json.loads(f.read_text())
    if not runs:
        raise SystemExit(f"no seed*/eval/results.json under {root}")
    return runs


def table(runs: dict[str, dict], level: str = "full_body") -> tuple[str, dict]:
    seeds = list(runs)
    methods = list(next(iter(runs.values()))["methods"])
    metrics = [m for m in METRICS
               if all(m in r["summary"][methods[0]][level] for r in runs.values())]
    out: dict = {"seeds": seeds, "level": level, "rows": {}}
    head = "| method | " + " | ".join(LABELS[m] for m in metrics) + \
        f" | PSNR minus `{REFERENCE}`, same seed |"
    lines = [head, "|---" * (len(metrics) + 2) + "|"]

    def fmt(vals: list[float], nd: int) -> str:
        mean = statistics.fmean(vals)
        if len(vals) == 1:
            return f"{mean:.{nd}f}"
        return f"{mean:.{nd}f} ({min(vals):.{nd}f}..{max(vals):.{nd}f})"

    for meth in methods:
        if not all(meth in r["summary"] for r in runs.values()):
            continue
        row = {m: [r["summary"][meth][level][m] for r in runs.values()] for m in metrics}
        cells = [fmt(row[m], 2 if m == "psnr" else 3) for m in metrics]
        diff = ""
        trained = meth not in ("prior-mesh", "prior-gaussians")
        if trained and meth != REFERENCE and all(REFERENCE in r["summary"] for r in runs.values()):
            d = [r["summary"][meth][level]["psnr"] - r["summary"][REFERENCE][level]["psnr"]
                 for r in runs.values()]
            diff = fmt(d, 2)
            row["psnr_minus_full"] = d
        out["rows"][meth] = row
        lines.append(f"| {meth} | " + " | ".join(cells) + f" | {diff} |")
    subjects = {len(r["subjects"]) if isinstance(r["subjects"], list) else r["subjects"]
                for r in runs.values()}
    note = (f"Training seeds {', '.join(s.removeprefix('seed') for s in seeds)}; split "
            f"`{next(iter(runs.values()))['split']}`, {'/'.join(map(str, subjects))} subjects; "
            f"{level.replace('_', ' ')}; mean over seeds (min..max).")
    return note + "\n\n" + "\n".join(lines) + "\n", out


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        raise SystemExit(__doc__.strip().splitlines()[-1])
    root = Path(args[0])
    md, data = table(load(root))
    print(md)
    (root / "ablations.md").write_text(md)
    (root / "ablations.json").write_text(json.dumps(data, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
