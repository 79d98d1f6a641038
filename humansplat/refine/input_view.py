"""The input view as Gaussians at the photo's resolution.

The reconstruction model sees (and predicts) the input view on its own small grid (64 x 64
Gaussians for the bundled ``tiny``): the face of a full-body photo is a handful of them.
Here every pixel of the crop resampled to ``resolution`` (e.g. 384 of a 512 px crop) inside
the person's mask becomes one Gaussian:

- colour: the photo's pixel (at the soft rim of the mask, the nearest pixel well inside
  it, so the background never bleeds into the splat's edge seen from other views);
- opacity: the person's mask there (soft at hair and edges), so a coat, hair or a bag the
  naked body does not cover are as present as the body;
- position: on the pixel's ray at the model's predicted depth, upsampled edge-aware from
  the model's grid (:mod:`.depth`);
- shape: a disc facing the camera, about one pixel wide at its depth, as thick as wide;
  or, where the surface under the pixel is known (the clothed body's normals), a thin disc
  on that surface, stretched by 1/|cos| along its slope (:func:`surfels`). Where the
  surface slopes away from the camera, a disc facing the camera stands across it: seen
  from elsewhere it smears the surface and leaves gaps beside its neighbours.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..cameras import Cameras, pixel_rays
from ..gaussians import Gaussians
from .depth import joint_bilateral_upsample
from .evidence import PhotoEvidence

__all__ = ["PhotoGaussians", "photo_gaussians", "grid_depth", "resample"]


def resample(x: Tensor, size: int) -> Tensor:
    """[C,S,S] -> [C,size,size], area-weighted when shrinking."""
    if x.shape[-1] == size:
        return x.clone()
    return F.interpolate(x[None].float(), size=(size, size), mode="bilinear",
                         antialias=True, align_corners=False)[0]


@dataclass
class PhotoGaussians:
    """Gaussians of the input view plus where they come from.

    gaussians: the Gaussians (N).
    pixels:    [N,2] long (row, col) on the ``resolution`` grid.
    depth:     [R,R] camera z used for every pixel of the grid.
    resolution: R.
    """

    gaussians: Gaussians
    pixels: Tensor
    depth: Tensor
    resolution: int


def interior_colours(image: Tensor, mask: Tensor, solid: float) -> Tensor:
    """image [3,R,R] with each pixel whose mask is below ``solid`` replaced by the colour
    of the nearest pixel at or above it (when there is one)."""
    from scipy.ndimage import distance_transform_edt

    core = (mask >= solid).numpy()
    if not core.any():
        return image
    _, (iy, ix) = distance_transform_edt(~core, return_indices=True)
    return image[:, torch.from_numpy(iy), torch.from_numpy(ix)]


def photo_gaussians(ev: PhotoEvidence, depth_lo: Tensor, conf_lo: Tensor, *,
                    resolution: int, min_mask: float = 0.02, plane_scale: float = 0.35,
                    depth_scale: float = 0.6, labels_lo: Tensor | None = None,
                    anchor: Callable[[Tensor, Cameras], Tensor] | None = None,
                    normals: Callable[[Cameras], Tensor] | None = None,
                    max_stretch: float = 1.0, depth_split: float | None = None
                    ) -> PhotoGaussians:
    """Gaussians for the crop's pixels at ``resolution`` (module docs).

    depth_lo [h,w]: camera z of the input view on the model's grid (any h = w);
    conf_lo [h,w] in [0,1]: how much to trust it (the model's opacities);
    min_mask: pixels whose (resampled) mask is below this get no Gaussian;
    plane_scale / depth_scale: std across / along the ray in pixel footprints;
    labels_lo [h,w] long: part labels on the model's grid (nearest cell), or None;
    anchor: (depth [R,R], the camera at R) -> depth [R,R], applied after upsampling: the
    upsampled depth is a blend across a coarse cell where it straddles an occlusion (an arm
    over the torso), and a pixel there floats between the two surfaces, a speck seen from
    the side; a surface known at the full resolution puts it back on one of them;
    normals: the camera at R -> [R,R,3] world unit normals of the surface each pixel lies
    on (zero where none is known); with ``max_stretch`` > 1 each such pixel becomes a disc
    on that surface (:func:`surfels`) instead of facing the camera;
    depth_split: metres (:func:`.depth.joint_bilateral_upsample`'s ``split``), only where
    ``normals`` knows no surface (all pixels without ``normals``)."""
    R = int(resolution)
    if not 8 <= R <= ev.size:
        raise ValueError(f"resolution must be in [8, {ev.size}] (the crop), got {R}")
    image = resample(ev.image, R).clamp(0, 1)
    mask = resample(ev.mask[None], R)[0].clamp(0, 1)
    cam = ev.camera.resized(R, R)
    guide = torch.cat([image, 2.0 * mask[None]], 0)  # the mask edge counts double
    # on the body the anchor puts a blended pixel back on a surface; off it, the split does
    off_body = None
    if depth_split is not None and normals is not None:
        off_body = normals(cam).norm(dim=-1) < 0.5
    depth = joint_bilateral_upsample(depth_lo.float(), conf_lo.float(), guide,
                                     split=depth_split, split_where=off_body)  # [R,R]
    if anchor is not None:
        depth = anchor(depth, cam)
    keep = mask >= min_mask
    rows, cols = keep.nonzero(as_tuple=True)
    origins, dirs = pixel_rays(cam.viewmats, cam.Ks, R, R)  # [1,R,R,3]
    fwd = cam.viewmats[0, 2, :3]
    d = dirs[0, rows, cols]  # [N,3]
    z = depth[rows, cols]
    means = origins[0, rows, cols] + d * (z / (d @ fwd).clamp(min=1e-6))[:, None]
    foot = z / cam.Ks[0, 0, 0]  # metres per pixel at that depth
    scales = torch.stack([plane_scale * foot, plane_scale * foot, depth_scale * foot], -1)
    from ..geometry import rotmat_to_quat

    R_c2w = cam.viewmats[0, :3, :3].T  # local axes = the camera's axes
    quats = rotmat_to_quat(R_c2w[None]).expand(len(z), 4).contiguous()
    if normals is not None and max_stretch > 1:
        scales, quats = surfels(normals(cam)[rows, cols], d, plane_scale * foot, scales, quats,
                                max_stretch=float(max_stretch))
    colours = interior_colours(image, mask, 0.9)[:, rows, cols].T.contiguous()
    opac = mask[rows, cols].clamp(max=0.99)
    labels = None
    if labels_lo is not None:
        h = labels_lo.shape[-1]
        li = ((rows.float() + 0.5) * h / R).long().clamp(0, h - 1)
        lj = ((cols.float() + 0.5) * h / R).long().clamp(0, h - 1)
        labels = labels_lo[li, lj].long()
    g = Gaussians(means=means, quats=quats, scales=scales, opacities=opac, colors=colours,
                  labels=labels)
    return PhotoGaussians(gaussians=g, pixels=torch.stack([rows, cols], -1), depth=depth,
                          resolution=R)


#: a surfel's std along its normal, in its in-plane std: thin, so that seen edge-on from
#: the side it adds no depth of its own (0.5: seed 7 / 9, PSNR 0.01-0.03 dB lower and the
#: real photos 0.01-0.07 dB lower at their camera)
SURFEL_THICKNESS = 0.2


def surfels(normals: Tensor, rays: Tensor, size: Tensor, scales: Tensor, quats: Tensor, *,
            max_stretch: float) -> tuple[Tensor, Tensor]:
    """Discs lying on a surface instead of facing the camera (``photo_gaussians``' SURFEL).

    normals [N,3]: the surface's normals (world; a zero row: unknown, that Gaussian keeps
    its ``scales`` [N,3] and ``quats`` [N,4]); rays [N,3]: unit directions from the camera;
    size [N]: the disc's std across the ray (metres). Returns (scales, quats): std ``size /
    |cos|`` (at most ``max_stretch`` x ``size``) along the direction in which the surface
    recedes from the camera, ``size`` along the other in-plane direction and
    ``SURFEL_THICKNESS`` x ``size`` along the normal, cos of the ray and the normal. Seen
    from the camera each still covers its pixel (the stretched axis is foreshortened by
    |cos|); seen from the side, a surface that slopes away from the camera is closed."""
    from ..geometry import rotmat_to_quat

    known = normals.norm(dim=-1) > 0.5
    n = F.normalize(normals.float(), dim=-1)
    n = torch.where(((n * rays).sum(-1) > 0)[:, None], -n, n)  # facing the camera
    cos = (n * rays).sum(-1).abs().clamp(min=1.0 / max_stretch)
    recede = rays - (rays * n).sum(-1, keepdim=True) * n  # the ray in the tangent plane
    ok = known & (recede.norm(dim=-1) > 1e-6)  # a ray along the normal keeps its disc
    t1 = F.normalize(recede, dim=-1)
    rot = torch.stack([t1, torch.cross(n, t1, dim=-1), n], -1)  # columns: the local axes
    s = torch.stack([size / cos, size, SURFEL_THICKNESS * size], -1).to(scales.dtype)
    q = rotmat_to_quat(rot).to(quats.dtype)
    return torch.where(ok[:, None], s, scales), torch.where(ok[:, None], q, quats)


def grid_depth(means: Tensor, opacities: Tensor, viewmat: Tensor, grid: int
               ) -> tuple[Tensor, Tensor]:
    """A pixel-aligned view's Gaussians (``grid`` x ``grid``, row-major) as a depth map:
    (camera z [G,G], confidence = opacity [G,G])."""
    z = means.float() @ viewmat[2, :3].float() + viewmat[2, 3].float()
    return z.reshape(grid, grid), opacities.float().reshape(grid, grid)

