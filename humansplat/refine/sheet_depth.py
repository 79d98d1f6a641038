"""How deep the photo's sheet of Gaussians sits, chosen per person by the model's other views.

The photo's Gaussians take their depth from the model's input view, which is off by about a
centimetre either way from person to person (docs/faithful_splat.md, item 29): seen from the
side, a sheet in front of the body sticks out of the profile, one too deep sinks into it. Its
picture at the photo's camera does not depend on that depth (``coverage.recede`` moves it
along that camera's rays), so the photo cannot tell; the model's own splat can: its other
views were trained on the person's sides. Each candidate depth is rendered at those views'
cameras and the one whose render is closest to the model's own splat there is kept (held out
+0.02 to +0.10 dB; docs/faithful_splat.md, item 31). Only the photo moves: where it passes
the model's Gaussians lying just behind it, those show at its camera a little (real photos
-0.02 dB on average); moving them along kept the picture but lost the gain.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from ..cameras import Cameras
from ..gaussians import Gaussians
from ..render import render_gaussians

__all__ = ["choose_recede"]


@torch.no_grad()
def choose_recede(splat_at: Callable[[float], Gaussians], model: Gaussians, cams: Cameras,
                  candidates: Sequence[float], *, torch_config=None
                  ) -> tuple[float, dict[float, float]]:
    """The candidate recede (metres along the photo camera's rays) whose splat
    ``splat_at(metres)`` renders closest (mean squared error over every pixel) to the
    model's own Gaussians ``model`` at ``cams`` (the model's views away from the photo's
    camera). The error is smooth and has one minimum over a centimetre or two, so the
    search walks from the middle candidate toward the lower error and stops when it rises
    (3-4 renders instead of all). ``torch_config``: the torch rasterizer's settings
    (:class:`~humansplat.render.TorchRasterConfig`). Returns (metres, the error of each
    candidate tried)."""
    cands = sorted(float(m) for m in candidates)
    if not cands:
        raise ValueError("no candidate depths to choose from")
    def render(g: Gaussians) -> Tensor:  # [C,H,W,3] over white
        return render_gaussians(g, cams.viewmats, cams.Ks, cams.width, cams.height,
                                torch_config=torch_config)[0]

    target = render(model)  # n_views x grid^2: 20k for the tiny model
    errs: dict[float, float] = {}

    def err(i: int) -> float:
        m = cands[i]
        if m not in errs:
            errs[m] = float(((render(splat_at(m)) - target) ** 2).mean())
        return errs[m]

    i = (len(cands) - 1) // 2
    while True:
        nbrs = [j for j in (i - 1, i + 1) if 0 <= j < len(cands)]
        j = min(nbrs, key=err, default=i)
        if j == i or err(j) >= err(i):
            return cands[i], errs
        i = j
