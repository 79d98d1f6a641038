"""Where the colour correction (``refine.deblur``) changes the photo's Gaussians most, and
why: README real-photos item 28.

    python benchmarks/deblur_rim.py --data D [--split test] [--subject 2]

For one synthetic person the shipped splat is made as ``humansplat eval`` makes it (the
bundled checkpoint and its ``pipeline.json``); the photo's Gaussians before and after the
correction are compared. Prints the quantiles of the change, how many of those changed by
more than 0.3 sit on the rim (mask < 0.99 at their pixel) and are brightened, the mask there,
and the alpha the splat renders on the rim pixels against the mask (with and without the
model's other Gaussians). Tuning data only (seed 7: ``humansplat data synth --out D
--train 0 --test 16 --hard 8 --seed 7``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--split", default="test")
    ap.add_argument("--subject", type=int, default=2)
    args = ap.parse_args()

    import humansplat.eval.evaluate as EV
    import humansplat.refine.deblur as D
    from humansplat.cameras import Cameras
    from humansplat.gaussians import Gaussians
    from humansplat.hub import BUNDLED_CHECKPOINT
    from humansplat.pipeline.config import PipelineConfig
    from humansplat.prior.body import AnnyBody
    from humansplat.refine.coverage import grown
    from humansplat.refine.input_view import resample
    from humansplat.render import rasterize
    from humansplat.runtime import fix_threads
    from humansplat.train.dataset import SyntheticHumans

    fix_threads()
    seen = {}
    deblur = D.deblur_colours

    def capture(photo, pixels, resolution, others, ev, **kw):  # what the pipeline passes
        out, errs = deblur(photo, pixels, resolution, others, ev, **kw)
        seen.update(photo=photo, out=out, pixels=pixels, R=resolution, others=others, ev=ev)
        return out, errs

    D.deblur_colours = capture
    ck = str(BUNDLED_CHECKPOINT)
    s = SyntheticHumans(args.data, split=args.split, targets=None)[args.subject]
    model, prior = EV._load_model(ck), EV._Prior(AnnyBody())
    R = s["target_rgb"].shape[-1]
    cams = Cameras(s["target_viewmats"][:1].float(), s["target_Ks"][:1].float(), R, R)
    _, _, out = EV._model_render(model, s, cams)
    EV._faithful_render(model, out, s, cams, prior.generated_views(s),
                        prior.body_model.faces.cpu(), PipelineConfig.read(ck + "/pipeline.json"))
    p, q, ev, S = seen["photo"].with_rgb(), seen["out"], seen["ev"], seen["R"]
    px = seen["pixels"]
    mask = resample(ev.mask[None], S)[0]
    m_at = mask[px[:, 0], px[:, 1]]
    change = (q.colors - p.colors).abs().max(1).values
    big = change > 0.3
    print(f"photo Gaussians {len(p)} at {S} px; change quantiles 0.5/0.9/0.99/0.999: "
          f"{np.quantile(change.numpy(), [0.5, 0.9, 0.99, 0.999]).round(3).tolist()}")
    print(f"changed by > 0.3: {int(big.sum())}, of which brightened "
          f"{int((big & ((q.colors - p.colors).mean(1) > 0)).sum())}, on the rim (mask < 0.99) "
          f"{int((big & (m_at < 0.99)).sum())}, in the solid interior "
          f"{int((big & grown(mask >= 0.99, -2)[px[:, 0], px[:, 1]]).sum())}; their mask "
          f"median {float(m_at[big].median()) if bool(big.any()) else float('nan'):.3f}")
    cam = ev.camera.resized(S, S)
    rim = (mask >= 0.5) & (mask < 0.99)
    with torch.no_grad():
        for name, g in (("photo + the rest", Gaussians.cat([p, seen["others"].with_rgb()])),
                        ("photo alone", p)):
            _, alpha, _ = rasterize(g.means, g.quats, g.scales, g.opacities, g.colors,
                                    cam.viewmats, cam.Ks, S, S, backgrounds=torch.ones(1, 3))
            print(f"rim pixels {int(rim.sum())}: mask {float(mask[rim].mean()):.3f}, rendered "
                  f"alpha before the correction ({name}) {float(alpha[0, ..., 0][rim].mean()):.3f}")


if __name__ == "__main__":
    main()
