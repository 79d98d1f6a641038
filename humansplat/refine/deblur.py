"""Colours that undo the splat's own blur at the photo's camera (forward renders only).

A photo Gaussian sits on its pixel's centre with the pixel's colour, but the rasterizer
spreads it (its 0.35-px disc plus the 0.3 px^2 anti-aliasing dilation: ~0.65 px std) and
lets neighbours a little in front cover ~30 % of it. The re-render is the photo blurred by
about a pixel: on astronaut the error sits on every edge of the suit and face.

The render is linear in the colours when geometry and opacities are fixed, ``r = B c``
with ``B`` a blur whose rows sum to at most 1, so Richardson passes

    c <- clip(c + (photo - render(c)) at each Gaussian's own pixel, 0, 1)

converge towards the colours whose render is the photo (each pass: one render, no
gradients). A few passes restore the low and middle frequencies; the finest ones, which
the blur nearly removes, stay blurred rather than amplify noise. Only Gaussians well inside
the mask are corrected (an edge pixel's colour also carries the background), and after the
first passes only the solid interior (``interior_passes``): on the soft rim, where the
background and the rest of the splat show through, further passes over-correct.

The correction is for the photo's camera. Seen from the side, a Gaussian at the silhouette
shows its corrected colour over the whole side it stands for, as light or dark streaks
down limbs and faces; :func:`correction_lobe` keeps it for views near the photo's
camera's axis only (``FaithfulConfig.correction_lobe``, on by default with 2 passes; RGB-only
formats such as the viewer's .splat keep the colours the photo's camera sees,
``io.compact.rgb_seen_from``). The largest corrections are on the rim: a photo Gaussian's
~0.65 px spread puts ~0.8 alpha on a rim pixel whose mask is 0.5, and the passes whiten
the rim to erase it (by more than 0.86 on 1 % of a synthetic person's Gaussians,
``benchmarks/deblur_rim.py``); the ``"symmetric"`` lobe shows half of that 45 degrees off
the axis (white dashes down legs there with the ``"front"`` lobe's 0.85).
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch
from torch import Tensor

from ..gaussians import Gaussians, rgb_to_sh_dc
from .coverage import grown
from .evidence import PhotoEvidence
from .input_view import resample

__all__ = ["LOBE_SHAPES", "correction_lobe", "deblur_colours"]


def deblur_colours(photo: Gaussians, pixels: Tensor, resolution: int, others: Gaussians,
                   ev: PhotoEvidence, *, passes: int = 1, min_mask: float = 0.5,
                   interior_passes: int = 0, interior_px: int = 2,
                   device=None, torch_config=None) -> tuple[Gaussians, list[float]]:
    """``photo`` with corrected colours (module docs) and the mean absolute colour error
    inside the mask before each pass (no render is spent on measuring after the last).

    photo: the input-view Gaussians (N), ``pixels`` [N,2] long their (row, col) on the
    ``resolution`` x ``resolution`` grid of the input camera (``PhotoGaussians``);
    others: the rest of the splat (it covers some pixels too, e.g. an arm in front);
    passes: renders (0: ``photo`` unchanged); min_mask: only Gaussians on pixels whose mask
    is at least this are corrected;
    interior_passes: further renders after those that correct only the solid interior: pixels
    whose mask is at least 0.99 everywhere within ``interior_px`` px. Passes on the soft rim
    over-correct it (what shows through there is the background and the rest of the splat):
    on the dev photos 4 passes in all took the interior +0.6 to +1.4 dB and the rim -0.2 to
    -1.3 dB. torch_config: the torch rasterizer's :class:`~humansplat.render.TorchRasterConfig`
    (its ``threads``: the same colours, sooner)."""
    if passes < 0:
        raise ValueError(f"passes must be >= 0, got {passes}")
    if interior_passes < 0:
        raise ValueError(f"interior_passes must be >= 0, got {interior_passes}")
    if pixels.shape != (len(photo), 2):
        raise ValueError(f"pixels must be [{len(photo)},2], got {tuple(pixels.shape)}")
    from ..render import rasterize

    dev = torch.device(device) if device is not None else photo.means.device
    R = int(resolution)
    cam = ev.camera.resized(R, R).to(dev, torch.float32)
    target = resample(ev.composite, R).permute(1, 2, 0).to(dev)  # [R,R,3]
    mask = resample(ev.mask[None], R)[0].to(dev)
    rows, cols = pixels[:, 0].to(dev), pixels[:, 1].to(dev)
    sel = mask[rows, cols] >= min_mask  # [N]
    p = photo.with_rgb().to(dev, torch.float32)
    o = others.with_rgb().to(dev, torch.float32)
    g = Gaussians.cat([p, o])
    colours = g.colors.clone()  # [N+M,3]; only the first N change
    bg = torch.tensor([ev.background], dtype=torch.float32, device=dev)
    inside = mask >= min_mask
    if interior_passes:
        solid = grown(mask >= 0.99, -interior_px)  # [R,R]
        sel_in = sel & solid[rows, cols]
    errors: list[float] = []
    with torch.no_grad():
        for k in range(passes + interior_passes):
            if k == passes:
                sel = sel_in
            img, _, _ = rasterize(g.means, g.quats, g.scales, g.opacities, colours,
                                  cam.viewmats, cam.Ks, R, R, backgrounds=bg,
                                  torch_config=torch_config)
            resid = target - img[0]  # [R,R,3]
            errors.append(float(resid[inside].abs().mean()) if bool(inside.any()) else 0.0)
            step = resid[rows, cols]  # [N,3] at each Gaussian's own pixel
            colours[:len(p)][sel] = (colours[:len(p)][sel] + step[sel]).clamp_(0.0, 1.0)
    out = replace(p, colors=colours[:len(p)].to(photo.means.device), sh=None)
    return out, errors


#: w(t), t the cosine between the view direction and the photo camera's ray through the
#: Gaussian: the share of the correction seen. Both are 1 along the ray and straight
#: opposite, 0 at right angles. "symmetric" (t^2): 0.5 at 45 and 135 degrees; "front"
#: (t + t^2 - t^3, the first shape): 0.97 at 30, 0.85 at 45, 0.15 at 135 degrees. On the
#: tuning seeds 7 / 9 "symmetric" scored +0.013 to +0.031 dB and perceptual -0.0019 to
#: -0.0029 against "front" (README, real-photos item 28).
LOBE_SHAPES = {
    "symmetric": lambda t: t * t,
    "front": lambda t: t + t * t - t ** 3,
}


def _lobe_coefficients(axis: Tensor, shape: str = "symmetric") -> Tensor:
    """[N,16] degree-3 SH coefficients of d -> w(d . axis_n) for unit axes [N,3], w the
    ``shape``'s (:data:`LOBE_SHAPES`). Exact (a cubic in d lies in bands 0-3), fitted on
    128 directions."""
    return _zonal_coefficients(axis, LOBE_SHAPES[shape])


def _zonal_coefficients(axis: Tensor, w) -> Tensor:
    """[N,16] degree-3 SH coefficients of d -> w(d . axis_n) for a cubic w (exact: a cubic in
    d lies in bands 0-3), fitted on 128 directions."""
    from ..render.ewa import sh_basis

    n = 128  # a Fibonacci sphere
    i = torch.arange(n, dtype=torch.float64) + 0.5
    z = 1 - 2 * i / n
    phi = i * math.pi * (3 - math.sqrt(5))
    r = (1 - z * z).sqrt()
    dirs = torch.stack([r * phi.cos(), r * phi.sin(), z], -1)  # [n,3]
    pinv = torch.linalg.pinv(sh_basis(3, dirs))  # [16,n]
    t = axis.double() @ dirs.T  # [N,n]
    return (w(t) @ pinv.T).to(axis.dtype)


def _back_coefficients(axis: Tensor) -> Tensor:
    """[N,16] degree-3 SH coefficients of d -> b(d . axis_n), b(t) = t^2 (1 - t) / 2: 1 straight
    opposite the axis (seen from behind), 0 along it and at right angles, at most 0.074 in
    the front half (t = 2/3)."""
    return _zonal_coefficients(axis, lambda t: t * t * (1 - t) / 2)


def correction_lobe(base: Tensor, corrected: Tensor, means: Tensor, camera_centre: Tensor,
                    back: Tensor | None = None, shape: str = "symmetric") -> Tensor:
    """SH coefficients [N,16,3] (degree 3) of colours that are ``corrected`` [N,3] seen along
    the ray from ``camera_centre`` [3] through each of ``means`` [N,3], ``base`` [N,3] seen
    at right angles to it, in between as ``shape`` (:data:`LOBE_SHAPES`) blends them, and
    seen from straight behind: ``back`` [N,3] when given (what the back shows along the same
    line: a photo Gaussian seen through a gap in the back then looks like the back, not like
    the face or badge in front), else ``corrected`` too."""
    if shape not in LOBE_SHAPES:
        raise ValueError(f"shape must be one of {sorted(LOBE_SHAPES)}, got {shape!r}")
    axis = torch.nn.functional.normalize(means.float() - camera_centre.float(), dim=-1)
    sh = _lobe_coefficients(axis, shape)[:, :, None] \
        * (corrected.float() - base.float())[:, None, :]
    if back is not None:
        sh += _back_coefficients(axis)[:, :, None] * (back.float() - corrected.float())[:, None, :]
    sh[:, 0] += rgb_to_sh_dc(base.float())
    return sh
