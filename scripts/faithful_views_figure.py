"""Before/after figure of a ``FaithfulConfig`` change on synthetic people: per person and
azimuth, truth | the shipped splat with the change undone | the shipped splat now.

    python scripts/faithful_views_figure.py OUT.png --data DIR [--split test] \
        --subjects 1,10 --azimuths 180 [--size 192] --before FIELD=VALUE [...] \
        [--checkpoint humansplat/checkpoints/humansplat-tiny]

``--before`` sets ``FaithfulConfig`` fields (JSON values) for the middle column; the right
column is the pipeline's CPU defaults, as ``humansplat eval`` scores ``NAME+faithful``. Each
splat is rendered at twice ``--size`` and averaged down, as the evaluation does.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--data", required=True)
    ap.add_argument("--split", default="test")
    ap.add_argument("--subjects", default="0", help="comma-separated indices in the split")
    ap.add_argument("--azimuths", type=float, nargs="+", default=[180.0])
    ap.add_argument("--size", type=int, default=192)
    ap.add_argument("--before", action="append", default=[], metavar="FIELD=VALUE")
    ap.add_argument("--checkpoint", default=str(ROOT / "humansplat" / "checkpoints"
                                                / "humansplat-tiny"))
    args = ap.parse_args(argv)
    from PIL import Image

    from humansplat.cameras import Cameras, view_azimuths
    from humansplat.eval import evaluate as E
    from humansplat.model.inputs import ModelInputs
    from humansplat.pipeline.config import PipelineConfig, parse_setting
    from humansplat.prior.body import AnnyBody
    from humansplat.refine import make_faithful, output_view_cameras
    from humansplat.train.dataset import SyntheticHumans

    torch.set_grad_enabled(False)
    before = dict(parse_setting(kv) for kv in args.before)
    now = PipelineConfig().faithful_config("cpu")
    configs = [dataclasses.replace(now, **before), now]
    data = SyntheticHumans(args.data, split=args.split, targets=None)
    model = E._load_model(args.checkpoint)
    prior = E._Prior(AnnyBody())
    R = args.size
    rows = []
    for idx in (int(x) for x in args.subjects.split(",")):
        s = data[idx]
        az = view_azimuths(s["viewmats"][0], s["target_viewmats"])
        sel = [j for a in args.azimuths for j in range(len(az))
               if int(s["target_levels"][j]) == 0
               and abs((float(az[j]) - a + 180.0) % 360.0 - 180.0) < 1e-3]
        if not sel:
            raise SystemExit(f"subject {idx}: no full-body view at {args.azimuths}")
        T = s["target_rgb"].shape[-1]
        cams = Cameras(s["target_viewmats"][sel].float(), s["target_Ks"][sel].float(), T, T)
        _, _, out = E._model_render(model, s, cams.resized(R, R))
        inputs = ModelInputs(s["views"], s["viewmats"], s["Ks"], None)
        g = out.gaussians(0).detach().to("cpu", torch.float32)
        tiles = [torch.nn.functional.interpolate(s["target_rgb"][sel].float(), size=(R, R),
                                                 mode="bilinear", antialias=True)]
        for fc in configs:
            res = make_faithful(g, grid=model.config.gaussian_grid,
                                view_cameras=output_view_cameras(model.config, inputs),
                                evidence=E.sample_evidence(s), config=fc,
                                generated=prior.generated_views(s),
                                body=(s["body_vertices"].float(), prior.body_model.faces.cpu()))
            img, _ = E._render_gaussians(res.gaussians.prune(PipelineConfig().min_opacity),
                                         cams.resized(2 * R, 2 * R))
            tiles.append(torch.nn.functional.avg_pool2d(img, 2))
        rows += [torch.cat([t[v] for t in tiles], 2) for v in range(len(sel))]
    im = torch.cat(rows, 1).permute(1, 2, 0).clamp(0, 1).numpy()
    Image.fromarray((im * 255 + 0.5).astype(np.uint8)).save(args.out, optimize=True)
    print(f"{args.out}: rows = subjects x azimuths; columns = truth | before {before} | now")
    return 0


if __name__ == "__main__":
    sys.exit(main())
