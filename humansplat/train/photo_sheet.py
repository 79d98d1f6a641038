"""Training on the splat the app ships: the input view's Gaussians replaced by the photo's.

The app does not ship the model's Gaussians as they are (:mod:`humansplat.refine.faithful`):
the photo's own pixels become thin discs at the model's input-view depth, the model's own
Gaussians of that view stay only pushed behind them, and the other views' are carved by the
photo's mask. From the side, the rest of the splat must then close what the model's
input-view Gaussians used to give it: seed 0 `test`, at 90 degrees the shipped splat scores
19.50 dB against the model's own 20.13. A sample trained through :func:`with_photo_sheet`
sees that composition, so the other views learn to close the sides of the splat that is
shipped.

Here, at ``resolution`` (the targets' size, not the model's coarser grid): each photo pixel
whose mask is at least ``min_mask`` becomes a disc facing the camera on its ray, at the
model's input-view depth (upsampled from its grid, weighted by the Gaussians' opacities; its
gradient reaches the model), ``plane_px`` pixel footprints wide and ``depth_px`` deep,
coloured from the photo (the soft rim from the nearest solid pixel, as the app's,
:func:`refine.input_view.interior_colours`) and as opaque as its mask (at most 0.99). At
the targets' 128 px the app's soft rim (its discs are 6 times finer) would widen the
silhouette by a pixel, so the sheet stops at ``min_mask`` 0.7. The model's Gaussians of the
views at the input camera move along their rays to at least ``push`` metres behind the
deepest surface the sheet shows within ``reach`` pixels; every model Gaussian off the
photo's silhouette is dropped, and another view's less than ``carve`` metres behind the
sheet too (``refine.coverage.carve_by_mask``).
"""

from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import Tensor

from ..cameras import Cameras, camera_centers, pixel_rays
from ..geometry import rotmat_to_quat
from ..model.gaussian_head import ReconstructionOutput
from ..refine.input_view import interior_colours

__all__ = ["with_photo_sheet", "input_camera_views"]


def input_camera_views(viewmats: Tensor, view_ids: tuple[int, ...], input_view: int = 0,
                       tol: float = 1e-4) -> list[int]:
    """Output views (indices into ``view_ids``) whose camera is the input view's: viewmats
    [V,4,4] of one sample's input views."""
    ref = viewmats[input_view].float()
    return [k for k, v in enumerate(view_ids)
            if torch.allclose(viewmats[v].float(), ref, atol=tol)]


def _resized(x: Tensor, size: int) -> Tensor:
    """[C,H,W] -> [C,size,size], area-weighted when shrinking."""
    return F.interpolate(x[None], size=(size, size), mode="bilinear", antialias=True,
                         align_corners=False)[0]


def with_photo_sheet(out: ReconstructionOutput, batch: dict, *, resolution: int | None = None,
                     push: float = 0.02, plane_px: float = 0.35, depth_px: float = 0.5,
                     min_mask: float = 0.7, carve: float = 0.02, reach: int = 2,
                     input_view: int = 0
                     ) -> ReconstructionOutput:
    """``out`` with each sample's photo sheet (``resolution``^2 Gaussians, appended after the
    model's; None: the targets' size) and its other Gaussians moved or carved (module
    docs). batch: the collated samples (``input_image`` [B,3,S,S], ``input_mask``
    [B,1,S,S], ``views`` [B,V,3,I,I], ``target_rgb`` [B,T,3,R,R], ``viewmats`` [B,V,4,4],
    ``Ks`` [B,V,3,3] for the I-px views). Only means, quats, scales, opacities, colours and
    part logits change (what ``render_views`` reads); every sample gets the same count (the
    sheet's masked-out pixels are transparent)."""
    if resolution is None:
        resolution = int(batch["target_rgb"].shape[-1])
    B, G, Rs = out.batch_size, out.grid, int(resolution)
    per, n_sheet = G * G, Rs * Rs
    dev, dt = out.means.device, out.means.dtype
    size = int(batch["views"].shape[-1])
    means, quats, scales, opac, cols, parts = [], [], [], [], [], []
    for b in range(B):
        vm = batch["viewmats"][b].to(dev)
        front = input_camera_views(vm, out.view_ids, input_view)
        if not front:
            raise ValueError("with_photo_sheet: no output view is at the input camera")
        k0 = front[0]
        cam = Cameras(vm[input_view:input_view + 1].float(),
                      batch["Ks"][b, input_view:input_view + 1].to(dev).float(), size, size)
        # the model's input-view depth along its rays, upsampled where it is solid
        t = out.depths[b, k0 * per:(k0 + 1) * per].reshape(1, G, G).to(dt)
        w = out.opacities[b, k0 * per:(k0 + 1) * per].reshape(1, G, G).detach().to(dt)
        w = w.clamp(min=1e-3)
        t = (_resized(t * w, Rs) / _resized(w, Rs)).reshape(n_sheet)
        cs = cam.resized(Rs, Rs)
        origin, ray = pixel_rays(cs.viewmats, cs.Ks, Rs, Rs)  # [1,Rs,Rs,3]
        ray = ray.reshape(n_sheet, 3).to(dt)
        sheet = origin.reshape(n_sheet, 3).to(dt) + t[:, None] * ray
        foot = t.detach().clamp(min=1e-3) / float(cs.Ks[0, 0, 0])  # metres per pixel
        s = torch.stack([plane_px * foot, plane_px * foot, depth_px * foot], -1)
        # discs facing the camera: their third axis along its z (rows of R: its axes)
        q = rotmat_to_quat(cs.viewmats[0, :3, :3].T[None]).to(dev, dt).expand(n_sheet, 4)
        img = _resized(batch["input_image"][b].to(dev, dt), Rs)
        mask = _resized(batch["input_mask"][b].to(dev, dt), Rs)[0]  # [Rs,Rs]
        img = interior_colours(img.detach().cpu(), mask.detach().cpu(), 0.9).to(dev, dt)
        o = torch.where(mask >= min_mask, mask.clamp(max=0.99), torch.zeros_like(mask))

        # the model's own: the input camera's views moved behind the sheet, then
        # everything carved by the photo's silhouette, and the other views' Gaussians
        # by what the photo shows (refine.faithful, refine.coverage)
        vmf = cs.viewmats[0].to(dt)
        centre = camera_centers(cs.viewmats)[0].to(dt)
        pc = out.means[b].detach() @ vmf[:3, :3].T + vmf[:3, 3]  # camera coordinates
        uvw = pc @ cs.Ks[0].to(dt).T
        uv = uvw[:, :2] / uvw[:, 2:].clamp(min=1e-6)
        iu, iv = uv[:, 0].floor().long(), uv[:, 1].floor().long()
        inside = (iu >= 0) & (iu < Rs) & (iv >= 0) & (iv < Rs) & (pc[:, 2] > 0)
        pix = iv.clamp(0, Rs - 1) * Rs + iu.clamp(0, Rs - 1)
        solid = mask >= min_mask
        sheet_z = (sheet.detach() @ vmf[2, :3] + vmf[2, 3]).reshape(Rs, Rs)  # camera z
        # the deepest surface the sheet shows around each pixel (a wide Gaussian is sorted
        # by its centre: in front of a surface sloping away beside it, it would cover it)
        deep = torch.where(solid, sheet_z, torch.full_like(sheet_z, -1e9))
        deep = F.max_pool2d(deep[None, None], 2 * reach + 1, 1, reach)[0, 0].reshape(n_sheet)
        is_front = torch.zeros(len(pc), dtype=torch.bool, device=dev)
        for k in front:
            is_front[k * per:(k + 1) * per] = True
        goal = torch.maximum(pc[:, 2], deep[pix] + push)
        move = is_front & inside & (deep[pix] > 0) & (goal > pc[:, 2])
        ratio = torch.where(move, goal / pc[:, 2].clamp(min=1e-6), torch.ones_like(goal))
        m = torch.where(move[:, None], centre + (out.means[b] - centre) * ratio[:, None],
                        out.means[b])  # along each ray
        z = pc[:, 2] * ratio
        on_person = inside & (mask >= 0.5).reshape(n_sheet)[pix]
        behind = z >= sheet_z.reshape(n_sheet)[pix] + carve
        keep = on_person & (is_front | behind)

        means.append(torch.cat([m, sheet]))
        quats.append(torch.cat([out.quats[b], q]))
        scales.append(torch.cat([out.scales[b], s]))
        opac.append(torch.cat([out.opacities[b] * keep.to(dt), o.reshape(n_sheet)]))
        cols.append(torch.cat([out.colors[b], img.reshape(3, n_sheet).T.clamp(0, 1)]))
        if out.part_logits is not None:  # each sheet pixel takes its grid cell's
            cell = (torch.arange(Rs, device=dev) * G // Rs)
            idx = (cell[:, None] * G + cell[None, :]).reshape(n_sheet) + k0 * per
            parts.append(torch.cat([out.part_logits[b], out.part_logits[b, idx]]))
    return replace(out, means=torch.stack(means), quats=torch.stack(quats),
                   scales=torch.stack(scales), opacities=torch.stack(opac),
                   colors=torch.stack(cols),
                   part_logits=torch.stack(parts) if parts else None)

