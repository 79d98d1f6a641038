"""Carving by the photo's mask: what the photo shows as background is not the person.

The input camera sees the person's whole silhouette, so a Gaussian of the other views whose
centre projects onto the photo's background (outside the person mask, grown or shrunk by a
few pixels: ``FaithfulConfig.grow_px``) cannot belong to the person: it is a floater, or the
naked body's guess where the photo shows something thinner. It is dropped: a visual-hull
test with the one silhouette that is real.

Cropped photos: a crop pixel outside the original photo was never seen. With
``beyond_edge="cut"`` (the default) Gaussians projecting there are dropped too, so the
splat holds what the photo shows (the visible part, closed by the model's other views
inside the frame) and nothing invented beyond the photo's cut edge. ``"complete"`` keeps
the model's guess beyond the edge (carving only inside the photo).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..cameras import camera_centers
from ..gaussians import Gaussians
from ..image_filters import max_filter
from .evidence import PhotoEvidence, nearest_pixel

__all__ = ["BEYOND_EDGE", "carve_by_mask", "cut_band", "deepest_within", "narrow_at_silhouette",
           "opacity_beyond_frame", "projected_sigma", "push_behind", "push_behind_footprint",
           "wholly_inside"]

BEYOND_EDGE = ("cut", "complete")


def _in_front_of(g: Gaussians, ev: PhotoEvidence, surface: Tensor, margin: float,
                 threshold: float) -> tuple[Tensor, Tensor, Tensor]:
    """Where each Gaussian sits against what the photo shows: ([N] bool in front of
    ``surface`` [R,R] - ``margin`` on a person pixel (mask >= threshold), camera z [N],
    the surface z - margin under it [N])."""
    S = ev.size
    uv, z = ev.project(g.means)
    iu, iv = uv[:, 0].floor().long(), uv[:, 1].floor().long()
    in_crop = (iu >= 0) & (iu < S) & (iv >= 0) & (iv < S) & (z > 0)
    R = surface.shape[-1]
    su = (uv[:, 0] * R / S).floor().long().clamp(0, R - 1)
    sv = (uv[:, 1] * R / S).floor().long().clamp(0, R - 1)
    solid = (ev.mask >= threshold)[iv.clamp(0, S - 1), iu.clamp(0, S - 1)]
    goal = surface[sv, su].float() - margin
    return in_crop & solid & (z < goal), z, goal


def grown(mask: Tensor, px: int) -> Tensor:
    """[H,W] bool ``mask`` grown by ``px`` pixels (a square neighbourhood); negative: shrunk
    (a pixel stays only if every pixel within -``px`` is in the mask)."""
    if px == 0:
        return mask.clone()
    m = max_filter(mask.float() * (1.0 if px > 0 else -1.0), abs(int(px)))
    return (m if px > 0 else -m) > 0


def carve_by_mask(g: Gaussians, ev: PhotoEvidence, *, grow_px: int = 4,
                  beyond_edge: str = "cut", threshold: float = 0.5,
                  surface: Tensor | None = None, margin: float = 0.03) -> Tensor:
    """[N] bool: the Gaussians of ``g`` to keep (module docs). grow_px: pixels the mask is
    grown by before the test (negative: shrunk); threshold: mask level that counts as the
    person.

    surface [R,R] (any R): camera z of what the photo shows at each pixel (the photo
    Gaussians' depth). A Gaussian more than ``margin`` metres in front of it, where the
    person is, would hide the surface the photo shows: the photo says that space is empty,
    so it is dropped too (free-space carving)."""
    if beyond_edge not in BEYOND_EDGE:
        raise ValueError(f"beyond_edge must be one of {BEYOND_EDGE}, got {beyond_edge!r}")
    S = ev.size
    person = grown(ev.mask >= threshold, grow_px)  # shrunk: only what lies well inside
    uv, z = ev.project(g.means)
    iu, iv = uv[:, 0].floor().long(), uv[:, 1].floor().long()
    in_crop = (iu >= 0) & (iu < S) & (iv >= 0) & (iv < S) & (z > 0)
    on_person = torch.zeros(len(g), dtype=torch.bool)
    in_frame = torch.zeros(len(g), dtype=torch.bool)
    on_person[in_crop] = person[iv[in_crop], iu[in_crop]]
    in_frame[in_crop] = ev.frame[iv[in_crop], iu[in_crop]]
    keep = on_person & in_frame if beyond_edge == "cut" else on_person | ~in_frame
    if surface is not None:
        keep &= ~_in_front_of(g, ev, surface, margin, threshold)[0]
    return keep


def push_behind(g: Gaussians, ev: PhotoEvidence, surface: Tensor, *, margin: float,
                threshold: float = 0.5) -> tuple[Gaussians, Tensor]:
    """``g`` with every Gaussian that lies where the person is and less than ``-margin``
    behind the photo's ``surface`` [R,R] (camera z) moved back along its ray to exactly
    ``surface - margin``, and [N] bool which moved.

    A generated view's Gaussian there is the hidden side placed too close behind the front
    (a thin model depth); dropping it (``carve_by_mask``) left holes in the back through
    which the photo's own Gaussians showed from behind. Moving it keeps the back closed, at
    a thickness of at least ``-margin``, and its projection at the input camera unchanged
    (it stays hidden behind what the photo shows)."""
    move, z, goal = _in_front_of(g, ev, surface, margin, threshold)
    return _along_rays(g, ev, move, z, goal), move


def _along_rays(g: Gaussians, ev: PhotoEvidence, move: Tensor, z: Tensor, goal: Tensor
                ) -> Gaussians:
    """``g`` with the Gaussians ``move`` [N] bool slid along the input camera's rays from
    camera z ``z`` [N] to ``goal`` [N] (their projection there unchanged)."""
    if not bool(move.any()):
        return g
    centre = camera_centers(ev.camera.viewmats.float())[0]
    means = g.means.detach().float().cpu().clone()
    means[move] = centre + (means[move] - centre) * (goal[move] / z[move])[:, None]
    return replace(g, means=means.to(g.means.device, g.means.dtype))


def recede(g: Gaussians, centre: Tensor, metres: float | Tensor) -> Gaussians:
    """``g`` scaled about the camera ``centre`` [3] so that each Gaussian lies ``metres``
    (a float, or [N] one per Gaussian) further along its ray (scales grown by the same
    factor): the camera's picture of it is unchanged, every other view sees it that much
    deeper. metres 0: ``g`` itself."""
    if isinstance(metres, Tensor):
        m = metres.to(g.means.device, torch.float32).reshape(-1, 1)  # [N,1]
        if len(m) != len(g):
            raise ValueError(f"{len(m)} recedes for {len(g)} Gaussians")
        if not bool((m != 0).any()):
            return g
    elif metres == 0:
        return g
    else:
        m = float(metres)
    if len(g) == 0:
        return g
    c = centre.to(g.means.device, torch.float32)
    rel = g.means.float() - c
    dist = rel.norm(dim=-1, keepdim=True).clamp(min=1e-6)
    f = (dist + m).clamp(min=1e-6) / dist  # [N,1]
    return replace(g, means=(c + rel * f).to(g.means.dtype),
                   scales=(g.scales.float() * f).to(g.scales.dtype))


def deepest_within(depth: Tensor, r: int) -> Tensor:
    """depth [R,R] -> the deepest value within ``r`` cells (a square window) of each cell
    [R,R] (:func:`humansplat.image_filters.max_filter`)."""
    if r <= 0:
        return depth
    return max_filter(depth.float(), r)


def shown_depth(surface: Tensor, ev: PhotoEvidence, threshold: float = 0.5) -> Tensor:
    """``surface`` [R,R] (camera z of what the photo shows) where the photo shows the person
    (mask >= ``threshold``), -1e9 elsewhere: the depth map's background values are the
    model's guess off the silhouette, not a surface (for :func:`deepest_within`)."""
    R = surface.shape[-1]
    person = F.interpolate(ev.mask[None, None].float(), size=(R, R), mode="area")[0, 0]
    return torch.where(person >= threshold, surface.float(), torch.full_like(person, -1e9))


def projected_sigma(g: Gaussians, ev: PhotoEvidence) -> tuple[Tensor, Tensor, Tensor]:
    """Each Gaussian at the input camera: (pixel [N,2], camera z [N], its widest std in
    pixels [N])."""
    uv, z = ev.project(g.means)
    return uv, z, g.scales.float().max(-1).values * ev.camera.Ks[0, 0, 0] / z.clamp(min=1e-6)


def wholly_inside(uv: Tensor, z: Tensor, sigma_px: Tensor, ev: PhotoEvidence,
                   sigmas: float, solid: float = 0.9, frame_band: int | None = None
                   ) -> Tensor:
    """[N] bool: each Gaussian (``projected_sigma``) lies ``sigmas`` of its widest std
    inside the photo's solid person mask (>= ``solid``), where the photo's own Gaussians
    are opaque: behind them it cannot show through at the input camera.
    frame_band: px; when given, where the photo's edge cuts the person the crop beyond it
    and this close to it counts as inside (:func:`cut_band`)."""
    from scipy.ndimage import distance_transform_edt

    if sigmas <= 0:
        return z > 0
    S = ev.size
    inside = ev.mask >= solid
    if frame_band is not None:
        inside = inside | cut_band(ev, frame_band, threshold=solid)
    dist = torch.from_numpy(distance_transform_edt(inside.numpy())).float()
    iu = uv[:, 0].floor().long().clamp(0, S - 1)
    iv = uv[:, 1].floor().long().clamp(0, S - 1)
    return (dist[iv, iu] > sigmas * sigma_px) & (z > 0)


def cut_band(ev: PhotoEvidence, px: int, threshold: float = 0.5) -> Tensor:
    """[S,S] bool: where the photo's edge cuts the person, the crop beyond that edge and
    ``px`` pixels inside it (a person cut by the edge has no silhouette there; the mask
    fades a few pixels before the edge, so the band). Where the edge crosses background,
    nothing: beyond it the person's outline is still the photo's (counting every edge
    cost the uncut photos' rims)."""
    beyond = ~ev.frame
    near = grown(beyond, px)  # beyond the edge, or within px of it
    if not bool(beyond.any()) or not bool(ev.frame.any()):
        return torch.zeros_like(near)
    # the person at the edge: within px of the mask, inside the photo, near its edge
    touch = grown(ev.mask >= threshold, px) & ev.frame & near
    # every pixel beyond the edge takes the answer of the nearest pixel inside the photo
    iy, ix = nearest_pixel(ev.frame)
    return near & touch[iy, ix]


#: footprint radii (surface cells) the deepest surface is pooled over; each Gaussian uses
#: the largest not above its own 3 sigma
_FOOTPRINT_RADII = (0, 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64)


def push_behind_footprint(g: Gaussians, ev: PhotoEvidence, surface: Tensor, *, margin: float,
                          sigmas: float = 3.0, threshold: float = 0.5,
                          frame_band: int | None = None
                          ) -> tuple[Gaussians, Tensor]:
    """``push_behind`` against the deepest ``surface`` [R,R] under each Gaussian's own
    footprint (``sigmas`` of its widest std at the input camera), not its centre's pixel.

    The rasterizer sorts by centre depth, so a wide Gaussian behind the surface at its
    centre but in front of the surface elsewhere under it covers the photo there. Only
    footprints wholly inside the person move (``wholly_inside`` with ``frame_band``: a cut
    edge of the photo is no silhouette). Returns (``g`` moved, [N] bool which moved)."""
    S, R = ev.size, surface.shape[-1]
    uv, z, spx = projected_sigma(g, ev)
    radius = sigmas * spx * R / S  # surface cells
    su = (uv[:, 0] * R / S).floor().long().clamp(0, R - 1)
    sv = (uv[:, 1] * R / S).floor().long().clamp(0, R - 1)
    # only what the photo shows as the person counts: the depth map's background values
    # (the model's guess off the silhouette) would send the rim's Gaussians far back
    shown = shown_depth(surface, ev, threshold)
    deepest = surface[sv, su].float()
    for r in _FOOTPRINT_RADII[1:]:
        wide = radius >= r
        if not bool(wide.any()):
            break
        deepest = torch.where(wide, torch.maximum(deepest, deepest_within(shown, r)[sv, su]),
                              deepest)
    iu, iv = uv[:, 0].floor().long(), uv[:, 1].floor().long()
    in_crop = (iu >= 0) & (iu < S) & (iv >= 0) & (iv < S) & (z > 0)
    # only footprints wholly inside the silhouette: at the rim the deepest surface under a
    # footprint is another body part (the torso behind an arm), and pushing the rim's
    # Gaussians there took the sides' silhouette with them (seed 7: side IoU -0.014)
    clear = wholly_inside(uv, z, spx, ev, sigmas, solid=threshold, frame_band=frame_band)
    goal = deepest - margin
    move = in_crop & clear & (z < goal)
    return _along_rays(g, ev, move, z, goal), move


def narrow_at_silhouette(g: Gaussians, ev: PhotoEvidence, *, sigmas: float = 2.0,
                         threshold: float = 0.5, min_factor: float = 0.2
                         ) -> tuple[Gaussians, Tensor]:
    """Narrow each Gaussian whose footprint at the input camera crosses the photo's
    silhouette, across the silhouette's edge only, until ``sigmas`` of its std in that
    direction fit in the distance from its pixel to the nearest pixel outside the mask
    (>= ``threshold``; pixel centre to pixel centre, so up to half a pixel more than to
    the edge itself); its std shrinks to ``min_factor`` at most.

    Carving keeps a Gaussian by its centre, so a wide one just inside the silhouette spread
    a soft dark halo beyond it at the photo's camera. The direction is the image direction
    from that nearest outside pixel, lifted to the 3-D direction across the input ray (exact
    on the camera's axis, within ~10 % in the footprint's std off it); the extent along the
    ray and along the edge is kept, which is what the sides see (narrowing every direction
    across the ray took the sides' silhouette with it: seed 7, side IoU -0.011). The
    covariance A Sigma A^T, A = I - (1 - f) n n^T, is re-factored into rotation and scales.
    A mask with no edge (empty, or the whole crop) narrows nothing. Returns (``g``
    narrowed, [N] bool which were)."""
    from scipy.ndimage import distance_transform_edt

    from ..geometry import quat_to_rotmat, rotmat_to_quat

    none = torch.zeros(len(g), dtype=torch.bool, device=g.means.device)
    inside = (ev.mask >= threshold).numpy()
    if sigmas <= 0 or len(g) == 0 or inside.all() or not inside.any():
        return g, none
    S, dev = ev.size, g.means.device
    dist, (ny, nx) = distance_transform_edt(inside, return_indices=True)
    rr, cc = np.mgrid[0:S, 0:S]
    # from the nearest pixel outside, into the person (zero outside the mask; a gradient of
    # the distance would be zero along a thin limb's middle, where the halo crosses both edges)
    away = torch.from_numpy(np.stack([cc - nx, rr - ny], -1)).float().to(dev)  # [S,S,2]
    dist = torch.from_numpy(dist).float().to(dev)
    uv, z = ev.project(g.means)
    uv, z = uv.to(dev), z.to(dev)
    iu, iv = uv[:, 0].floor().long(), uv[:, 1].floor().long()
    in_crop = (iu >= 0) & (iu < S) & (iv >= 0) & (iv < S) & (z > 0)
    iu, iv = iu.clamp(0, S - 1), iv.clamp(0, S - 1)
    vm = ev.camera.viewmats.float().to(dev)
    rows = vm[0, :3, :3]  # world -> camera: rows are its x, y, z axes
    ray = F.normalize(g.means.float() - camera_centers(vm)[0], dim=-1)
    a = away[iv, iu]  # [N,2]
    n = a[:, :1] * rows[0] + a[:, 1:] * rows[1]
    n = F.normalize(n - (n * ray).sum(-1, keepdim=True) * ray, dim=-1)  # [N,3]
    R = quat_to_rotmat(g.quats.float())
    M = R * g.scales.float()[:, None, :]  # Sigma = M M^T
    std_n = (n[:, None, :] @ M).norm(dim=-1)[:, 0]  # metres across the edge
    std_px = std_n * ev.camera.Ks[0, 0, 0].float().to(dev) / z.clamp(min=1e-6)
    f = (dist[iv, iu] / (sigmas * std_px).clamp(min=1e-9)).clamp(min_factor, 1.0)
    sel = in_crop & (f < 1.0) & (n.norm(dim=-1) > 0.5)
    if not bool(sel.any()):
        return g, sel
    ns, Ms = n[sel], M[sel]
    A = torch.eye(3, device=dev) - (1.0 - f[sel])[:, None, None] * ns[:, :, None] * ns[:, None, :]
    U, sv, _ = torch.linalg.svd(A @ Ms)  # A M = U diag(sv) V^T: A Sigma A^T = U diag(sv^2) U^T
    U = torch.where((torch.linalg.det(U) < 0)[:, None, None], U * U.new_tensor([1., 1., -1.]), U)
    scales, quats = g.scales.clone(), g.quats.clone()
    scales[sel] = sv.clamp(min=1e-9).to(scales.dtype)
    quats[sel] = rotmat_to_quat(U).to(quats.dtype)
    return replace(g, scales=scales, quats=quats), sel


def opacity_beyond_frame(g: Gaussians, ev: PhotoEvidence) -> float:
    """Share of the splat's total opacity whose centres project beyond the photo's edge
    at the input camera (0 for a splat that holds only what the photo shows)."""
    total = float(g.opacities.sum())
    if total <= 0:
        return 0.0
    return float(g.opacities[ev.beyond_frame(g.means)].sum()) / total
