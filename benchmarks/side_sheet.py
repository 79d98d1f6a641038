"""Why the shipped splat loses to the model's own at 90 degrees: README real-photos item 29.

    python benchmarks/side_sheet.py --data D [--split test] [--people 8] [--recede 0.005,0.01]

For each synthetic person the shipped splat is made as ``humansplat eval`` makes it (the
bundled checkpoint and its ``pipeline.json``, or ``--checkpoint``), then full-body PSNR is
printed per azimuth from the input view (every stored full-body view, binned to 45 degrees)
for: the model's own splat (``raw``), the shipped one (``ship``), the photo's Gaussians added
to the model's whole splat (``raw+photo``), the shipped one with each photo Gaussian in the
colour of the nearest solid Gaussian of the model's input views (``model colours``), without
the photo Gaussians whose surface normal is within 73 degrees of grazing the photo camera's
ray (``no grazing``), and with the photo's Gaussians moved back along that camera's rays by
each ``--recede`` (``refine.coverage.recede``, as ``photo_recede`` does). Tuning data only
(seed 7: ``humansplat data synth --out D --train 0 --test 16 --hard 8 --seed 7``).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

def _normals(g) -> torch.Tensor:
    """[N,3] each Gaussian's axis of least scale (a surfel's normal)."""
    from humansplat.geometry import quat_to_rotmat

    R = quat_to_rotmat(g.quats.float())  # [N,3,3], columns are the local axes
    return R[torch.arange(len(g)), :, g.scales.argmin(-1)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--split", default="test")
    ap.add_argument("--people", type=int, default=8)
    ap.add_argument("--checkpoint", default=None, help="default: the bundled checkpoint")
    ap.add_argument("--recede", default="0.005,0.01", help="metres, comma-separated")
    args = ap.parse_args()

    import humansplat.eval.evaluate as EV
    import humansplat.refine as R
    from humansplat.cameras import Cameras, camera_centers, view_azimuths
    from humansplat.eval.metrics import psnr
    from humansplat.gaussians import Gaussians, rgb_to_sh_dc, sh_dc_to_rgb
    from humansplat.hub import BUNDLED_CHECKPOINT
    from humansplat.pipeline.config import PipelineConfig
    from humansplat.prior.body import AnnyBody
    from humansplat.refine.coverage import recede
    from humansplat.runtime import fix_threads
    from humansplat.train.dataset import SyntheticHumans

    fix_threads()
    made = {}
    make = R.make_faithful

    def capture(*a, **kw):  # what evaluation ships, and how many of it are the photo's
        r = make(*a, **kw)
        made.update(g=r.gaussians, n=r.info["photo_gaussians"])
        return r

    R.make_faithful = capture  # evaluation imports it from humansplat.refine when it runs
    ck = args.checkpoint or str(BUNDLED_CHECKPOINT)
    data = SyntheticHumans(args.data, split=args.split, targets=None)
    model, prior = EV._load_model(ck), EV._Prior(AnnyBody())
    # item 29's question: the photo where its depth put it (item 31 chooses a recede since)
    pc = PipelineConfig.read(str(BUNDLED_CHECKPOINT / "pipeline.json")).replace(
        photo_recede_search=())
    offsets = [float(v) for v in args.recede.split(",") if v]
    psnrs: dict[str, dict[int, list[float]]] = {}
    for i in range(min(args.people, len(data))):
        s = data[i]
        res = s["target_rgb"].shape[-1]
        # rendered at 2x and averaged down, as the evaluation renders every method
        cams = Cameras(s["target_viewmats"].float(), s["target_Ks"].float(), res,
                       res).resized(2 * res, 2 * res)
        azimuth = view_azimuths(s["viewmats"][0], s["target_viewmats"]).abs()
        bins = torch.floor(azimuth / 45.0 + 0.5 + 1e-6).long() * 45
        raw, _, out = EV._model_render(model, s, cams)
        ship, _ = EV._faithful_render(model, out, s, cams, prior.generated_views(s),
                                      prior.body_model.faces.cpu(), pc)
        g, n = made["g"], made["n"]
        photo = g[torch.arange(n)]
        own = out.gaussians(0).detach().to("cpu", torch.float32)
        own = own.with_sh(g.sh_degree) if own.sh is None else own
        n_views, res_v = s["views"].shape[0], s["views"].shape[-1]
        per = len(own) // n_views
        views = Cameras(s["viewmats"].float(), s["Ks"].float(), res_v, res_v)
        front = Gaussians.cat([own[torch.arange(v * per, (v + 1) * per)]
                               for v in R.input_view_ids(views, views[:1])])
        solid = front.opacities > 0.05
        colour = sh_dc_to_rgb(front.sh[solid, 0]).clamp(0, 1)
        near = torch.cat([torch.cdist(photo.means[j:j + 4096], front.means[solid]).argmin(1)
                          for j in range(0, n, 4096)])
        sh = g.sh.clone()
        sh[:n] = 0
        sh[:n, 0] = rgb_to_sh_dc(colour[near])
        centre = camera_centers(s["viewmats"][:1].float())[0]
        to_cam = torch.nn.functional.normalize(centre - photo.means, dim=-1)
        facing = (_normals(photo) * to_cam).sum(-1).abs() >= 0.3
        variants = {"raw": raw, "ship": ship,
                    "raw+photo": EV._render_gaussians(Gaussians.cat([photo, own]), cams)[0],
                    "model colours": EV._render_gaussians(replace(g, sh=sh), cams)[0],
                    "no grazing": EV._render_gaussians(
                        g[torch.cat([facing, torch.ones(len(g) - n, dtype=torch.bool)])],
                        cams)[0]}
        for m in offsets:
            moved = Gaussians.cat([recede(photo, centre, m), g[torch.arange(n, len(g))]])
            variants[f"recede {m:g} m"] = EV._render_gaussians(moved, cams)[0]
        gt = s["target_rgb"].float()
        for name, img in variants.items():
            img = torch.nn.functional.avg_pool2d(img, 2).clamp(0, 1)
            for t in range(len(gt)):
                if int(s["target_levels"][t]) == 0:  # full-body views only
                    psnrs.setdefault(name, {}).setdefault(int(bins[t]), []).append(
                        float(psnr(img[t:t + 1], gt[t:t + 1])))
        print(f"person {i} done", file=sys.stderr, flush=True)
    angles = sorted(next(iter(psnrs.values())))
    print(f"full-body PSNR (dB) by azimuth, {args.data} {args.split}, "
          f"{min(args.people, len(data))} people")
    print(f"{'':16s}" + "".join(f"{a:>8d}" for a in angles) + f"{'all':>8s}")
    for name, d in psnrs.items():
        every = [v for a in angles for v in d[a]]
        print(f"{name:16s}" + "".join(f"{np.mean(d[a]):8.2f}" for a in angles)
              + f"{np.mean(every):8.3f}")


if __name__ == "__main__":
    main()
