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

The same views then check each Gaussian on its own (:func:`into_silhouettes`): one that
falls outside the model's silhouette seen from the side (a foot, a hand, the hem of a shirt
that the input view's coarse depth put in front of the body) is moved along its photo ray
to the nearest depth those silhouettes hold (real-photos item 40).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ..cameras import Cameras, project_points
from ..gaussians import Gaussians
from ..render import render_gaussians
from .coverage import recede

__all__ = ["alpha_at", "choose_recede", "into_silhouettes", "render_at"]


@torch.no_grad()
def render_at(g: Gaussians, cams: Cameras, *, torch_config=None) -> tuple[Tensor, Tensor]:
    """A splat at ``cams`` over white: (rgb [C,H,W,3], alpha [C,H,W]). ``make_faithful``
    renders the model's own splat once for both :func:`choose_recede` (its target) and
    :func:`into_silhouettes` (its silhouettes)."""
    return render_gaussians(g, cams.viewmats, cams.Ks, cams.width, cams.height,
                            torch_config=torch_config)


@torch.no_grad()
def choose_recede(splat_at: Callable[[float], Gaussians], model: Gaussians, cams: Cameras,
                  candidates: Sequence[float], *, torch_config=None,
                  target: Tensor | None = None) -> tuple[float, dict[float, float]]:
    """The candidate recede (metres along the photo camera's rays) whose splat
    ``splat_at(metres)`` renders closest (mean squared error over every pixel) to the
    model's own Gaussians ``model`` at ``cams`` (the model's views away from the photo's
    camera). The error is smooth and has one minimum over a centimetre or two, so the
    search walks from the middle candidate toward the lower error and stops when it rises
    (3-4 renders instead of all). ``torch_config``: the torch rasterizer's settings
    (:class:`~humansplat.render.TorchRasterConfig`); target [C,H,W,3]: ``model`` already
    rendered there (:func:`render_at`), else rendered here. Returns (metres, the error of
    each candidate tried)."""
    cands = sorted(float(m) for m in candidates)
    if not cands:
        raise ValueError("no candidate depths to choose from")
    def render(g: Gaussians) -> Tensor:  # [C,H,W,3] over white
        return render_at(g, cams, torch_config=torch_config)[0]

    if target is None:
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


def alpha_at(points: Tensor, alphas: Tensor, cams: Cameras) -> Tensor:
    """points [N,3] world -> [N] the least of ``alphas`` [C,H,W] (bilinear; 0 outside the
    image or behind the camera) where they project at ``cams``."""
    uv, z = project_points(points, cams.viewmats.float(), cams.Ks.float())  # [C,N,2], [C,N]
    size = torch.tensor([cams.width, cams.height], dtype=uv.dtype)
    grid = (uv / size * 2 - 1)[:, None]  # [C,1,N,2] in [-1,1]
    a = F.grid_sample(alphas[:, None].float(), grid, align_corners=False)[:, 0, 0]  # [C,N]
    return torch.where(z > 0, a, torch.zeros_like(a)).min(0).values


@torch.no_grad()
def into_silhouettes(photo: Gaussians, model: Gaussians, cams: Cameras, centre: Tensor, *,
                     threshold: float = 0.3, step: float = 0.01, reach: float = 0.05,
                     torch_config=None, alphas: Tensor | None = None
                     ) -> tuple[Gaussians, Tensor]:
    """``photo`` with each Gaussian whose centre the model's own splat ``model`` does not
    cover at one of ``cams`` (alpha below ``threshold``: outside its silhouette there) moved
    along its ray from the photo's camera ``centre`` [3] to the nearest depth, in ``step``
    metres up to ``reach`` either way, where every one of them covers it; one with no such
    depth stays. Scaled about ``centre`` (:func:`.coverage.recede`): its picture there is
    unchanged, as long as nothing else lies between (``make_faithful`` moves the photo's
    sheet before it places anything behind it). cams: the model's views from the side (seen
    from the front or the back, a silhouette says nothing about depth); alphas [C,H,W]:
    ``model``'s alpha there when already rendered (:func:`render_at`). Returns (the
    Gaussians, [N] the metres each moved, positive: away from the camera)."""
    moved = torch.zeros(len(photo))
    if len(photo) == 0 or len(cams) == 0 or reach <= 0:
        return photo, moved
    if alphas is None:
        alphas = render_at(model, cams, torch_config=torch_config)[1]  # [C,H,W]
    means = photo.means.detach().float().cpu()
    out = alpha_at(means, alphas.cpu(), cams) < threshold
    if not bool(out.any()):
        return photo, moved
    k = torch.arange(1, int(round(reach / step)) + 1, dtype=torch.float32) * step
    offsets = torch.stack([k, -k], 1).reshape(-1)  # nearest first: +1, -1, +2, -2, ... steps
    c = centre.detach().float().cpu()
    rel = means[out] - c
    dist = rel.norm(dim=-1, keepdim=True).clamp(min=1e-6)
    tries = c + (rel / dist)[:, None] * (dist + offsets)[..., None]  # [B,K,3]
    inside = alpha_at(tries.reshape(-1, 3), alphas.cpu(), cams).reshape(tries.shape[:2]) \
        >= threshold  # [B,K]
    first = inside.float().argmax(1)  # the nearest candidate inside (0 when none is)
    moved[out] = torch.where(inside.any(1), offsets[first], torch.zeros_like(dist[:, 0]))
    return recede(photo, centre, moved), moved
