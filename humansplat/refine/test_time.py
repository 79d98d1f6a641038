"""Test-time refinement: a few gradient steps that fit the splat to the photo.

Loss at the input camera, inside the original photo's frame:

    L = |render - photo on the background|_1 + mask_weight * (alpha - person mask)^2
        + reg_weight * |render_v - render_v(start)|_1   over the regularising views v

The first two make the re-render at the photo's camera match the photo and its silhouette;
the last keeps what the other views showed at the start (the model's prediction) from
drifting while the input view is fitted. Trained: the photo Gaussians' colours, opacities
and scales; the other Gaussians' colours and opacities. Positions stay where the model put
them (a few steps cannot move geometry well, and moving it only to please one view is how
a splat degenerates). It runs on the differentiable rasterizer of ``humansplat.render``
(the torch backend on the CPU, gsplat on CUDA) until ``seconds`` or ``max_steps``,
whichever comes first; a step that would overrun the budget is not started.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import torch
from torch import Tensor

from ..cameras import Cameras
from ..gaussians import Gaussians
from .evidence import PhotoEvidence

__all__ = ["RefineResult", "refine_to_photo", "photo_loss"]


@dataclass
class RefineResult:
    photo: Gaussians  # the refined input-view Gaussians
    others: Gaussians  # the refined other Gaussians
    steps: int
    seconds: float
    loss_before: float  # photo loss (colour + mask) at the start
    loss_after: float  # ... after the last step
    backend: str = ""
    history: list[float] = field(default_factory=list)


def _render(means, quats, scales, opac, cols, cams: Cameras, bg: Tensor, backend: str):
    from ..render import rasterize

    img, alpha, meta = rasterize(means, quats, scales, opac, cols, cams.viewmats, cams.Ks,
                                 cams.width, cams.height,
                                 backgrounds=bg.expand(len(cams), 3).contiguous(),
                                 backend=backend)
    return img, alpha[..., 0], meta.get("backend", backend)


def photo_loss(img: Tensor, alpha: Tensor, target: Tensor, mask: Tensor, weight: Tensor,
               mask_weight: float) -> Tensor:
    """img [H,W,3], alpha [H,W], target [H,W,3], mask [H,W], weight [H,W] (0 outside the
    frame): mean L1 colour + mask_weight * mean squared alpha error."""
    wsum = weight.sum().clamp(min=1.0)
    col = ((img - target).abs().sum(-1) * weight).sum() / (3 * wsum)
    sil = (((alpha - mask) ** 2) * weight).sum() / wsum
    return col + mask_weight * sil


def refine_to_photo(photo: Gaussians, others: Gaussians, ev: PhotoEvidence, *,
                    seconds: float, max_steps: int = 50, render_size: int | None = None,
                    reg_cameras: Cameras | None = None, reg_weight: float = 0.5,
                    mask_weight: float = 1.0, lr: float = 0.05, backend: str = "auto",
                    device=None) -> RefineResult:
    """Refine ``photo`` (the input-view Gaussians) and ``others`` against ``ev`` (module
    docs). render_size: side of the input-view render (default: the crop's); reg_cameras:
    views kept close to their start (None: no regulariser); device: where to run (default:
    CUDA when available)."""
    t0 = time.perf_counter()
    dev = torch.device(device) if device is not None else torch.device(
        "cuda" if torch.cuda.is_available() else "cpu")
    S = int(render_size or ev.size)
    cam = ev.camera.resized(S, S).to(dev)
    rs = lambda x: torch.nn.functional.interpolate(  # noqa: E731
        x[None].float(), size=(S, S), mode="bilinear", antialias=True, align_corners=False)[0]
    target = rs(ev.composite).permute(1, 2, 0).to(dev)
    mask = rs(ev.mask[None])[0].to(dev)
    weight = rs(ev.frame[None].float())[0].to(dev)
    bg = torch.tensor(ev.background, dtype=torch.float32, device=dev)[None]
    n_p = len(photo)
    g = Gaussians.cat([photo.with_rgb(), others.with_rgb()]).to(dev, torch.float32)
    means, quats = g.means.detach(), g.quats.detach()
    eps = 1e-4
    col_logit = torch.logit(g.colors.detach().clamp(eps, 1 - eps)).requires_grad_()
    op_logit = torch.logit(g.opacities.detach().clamp(eps, 1 - eps)).requires_grad_()
    log_scale_p = g.scales[:n_p].detach().log().requires_grad_()
    scales_o = g.scales[n_p:].detach()
    opt = torch.optim.Adam([{"params": [col_logit], "lr": lr},
                            {"params": [op_logit], "lr": 2 * lr},
                            {"params": [log_scale_p], "lr": 0.5 * lr}])
    reg_cams, reg_targets = None, None
    if reg_cameras is not None and reg_weight > 0 and len(reg_cameras):
        reg_cams = reg_cameras.to(dev, torch.float32)
        with torch.no_grad():
            reg_targets, _, _ = _render(means, quats, g.scales, g.opacities, g.colors,
                                        reg_cams, bg, backend)

    def current():
        scales = torch.cat([log_scale_p.exp(), scales_o], 0)
        return scales, torch.sigmoid(op_logit), torch.sigmoid(col_logit)

    history: list[float] = []
    used = backend
    steps = 0
    last = 0.0
    while steps < max_steps:
        elapsed = time.perf_counter() - t0
        if elapsed + last > seconds:
            break
        ts = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        scales, opac, cols = current()
        img, alpha, used = _render(means, quats, scales, opac, cols, cam, bg, backend)
        loss = photo_loss(img[0], alpha[0], target, mask, weight, mask_weight)
        history.append(float(loss.detach()))
        total = loss
        if reg_cams is not None:
            rimg, _, _ = _render(means, quats, scales, opac, cols, reg_cams, bg, backend)
            total = total + reg_weight * (rimg - reg_targets).abs().mean()
        total.backward()
        opt.step()
        steps += 1
        last = time.perf_counter() - ts
    with torch.no_grad():
        scales, opac, cols = current()
        img, alpha, used = _render(means, quats, scales, opac, cols, cam, bg, backend)
        after = float(photo_loss(img[0], alpha[0], target, mask, weight, mask_weight))
    before = history[0] if history else after
    out = replace(g, scales=scales.detach(), opacities=opac.detach(),
                  colors=cols.detach()).to("cpu")
    return RefineResult(photo=out[:n_p], others=out[n_p:], steps=steps,
                        seconds=time.perf_counter() - t0, loss_before=before, loss_after=after,
                        backend=str(used), history=history)
