"""How much of the front shows through from behind, per real photo (real-photos item 42).

For each photo of ``benchmarks/real_photos.py`` the pipeline's splat is rendered from behind
(the turntable's cameras: 180 degrees, and 135 / 225) with the front's Gaussians white and
every other one black, over black: the front is the photo's own Gaussians and the model's
input-view Gaussians kept behind them. The share is the front's colour over the alpha, summed
over the person's silhouette there (alpha > 0.5): 0 when the back hides the front entirely.
No reference mask is involved; it is a property of the splat.

    python scripts/back_front_share.py [--cases a,b] [--set FIELD=VALUE ...] [--out F.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import humansplat.refine as refine  # noqa: E402
from benchmarks.real_photos import CASES  # noqa: E402
from humansplat.io.video import orbit_video_cameras  # noqa: E402
from humansplat.pipeline import HumanSplatPipeline  # noqa: E402
from humansplat.pipeline.config import parse_setting  # noqa: E402
from humansplat.render import render_gaussians  # noqa: E402

VIEWS = {"180": 4, "135": 3, "225": 5}  # turntable frames of 8
HEAD = (12, 15)  # part labels, prior.parts.PART_NAMES order: neck, head


def front_share(res, gaussians_for_cameras, size: int = 256) -> dict[str, float]:
    """{azimuth: share} for one ``make_faithful`` result (module docs)."""
    g, info = res.gaussians, res.info
    front = torch.zeros(len(g), dtype=torch.bool)
    front[:info["photo_gaussians"]] = True
    kept = info["model_input_view_kept"]  # appended last among the others
    if kept:
        front[len(g) - kept:] = True
    head = torch.zeros(len(g))
    if g.labels is not None:
        head = torch.isin(g.labels, torch.tensor(HEAD)).float()
    paint = torch.stack([front.float(), head, torch.zeros(len(g))], -1)  # R: front, G: head
    g = replace(g.with_rgb(), colors=paint, sh=None)
    g = g[g.opacities >= 1.0 / 255.0]
    cams = orbit_video_cameras(gaussians_for_cameras, n_frames=8, size=size)
    out = {}
    for name, f in VIEWS.items():
        img, alpha = render_gaussians(g, cams.viewmats[f:f + 1], cams.Ks[f:f + 1], size, size,
                                      background=(0.0, 0.0, 0.0))
        img, alpha = img[0], alpha[0]
        sil = alpha > 0.5
        out[name] = float(img[..., 0][sil].sum() / alpha[sil].sum().clamp(min=1e-6))
        on_head = sil & (img[..., 1] > 0.5 * alpha)  # mostly head-labelled Gaussians there
        if bool(on_head.any()):
            out[name + "_head"] = float(img[..., 0][on_head].sum() / alpha[on_head].sum())
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default=None, help="comma-separated photo names (all)")
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                    help="a pipeline.json field for this run")
    ap.add_argument("--out", default=None, help="write the shares here (JSON)")
    args = ap.parse_args(argv)
    captured = {}
    make_faithful = refine.make_faithful

    def capture(*a, **kw):  # the faithful step's own result: which Gaussians are the front
        captured["res"] = make_faithful(*a, **kw)
        return captured["res"]

    refine.make_faithful = capture
    pipe = HumanSplatPipeline.from_pretrained()
    pipe.config = pipe.config.replace(**dict(parse_setting(s) for s in args.set))
    names = args.cases.split(",") if args.cases else [c.name for c in CASES]
    rows = {}
    for case in CASES:
        if case.name not in names:
            continue
        rec = pipe(case.load())
        rows[case.name] = front_share(captured["res"], rec.gaussians)
        print(case.name, {k: round(v, 4) for k, v in rows[case.name].items()}, flush=True)
    keys = sorted({k for r in rows.values() for k in r})
    mean = {k: sum(r[k] for r in rows.values() if k in r) / max(sum(k in r for r in
                                                                   rows.values()), 1)
            for k in keys}
    print("mean", {k: round(v, 4) for k, v in mean.items()})
    if args.out:
        Path(args.out).write_text(json.dumps({"settings": args.set, "photos": rows,
                                              "mean": mean}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
