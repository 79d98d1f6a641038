"""Evaluations of the avatar features on synthetic subjects whose ground truth is known.

* Reposing (:func:`evaluate_repose`): a dressed subject (``data.synthetic_humans``) in pose A
  is turned into Gaussians, bound to a body (the GT body, or one fitted to the subject's
  photo), reposed to pose B and rendered; the reference is the subject's own mesh rendered
  in pose B. Baselines: the rigid splat (unmoved: the root stays where it was) and
  nearest-vertex skinning.
* Part labels (:func:`evaluate_part_labels`): label maps rendered from the Gaussians' part
  labels against the subject's rendered part map, per-part IoU.

Subject Gaussians (:func:`subject_gaussians`) are an "oracle reconstruction": flat
Gaussians spread over the dressed mesh (area-uniform), oriented along the surface and
coloured by the subject's own materials and lighting, so reposing is measured on its own,
not through a reconstruction model's errors.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..cameras import Cameras, orbit_cameras
from ..gaussians import Gaussians
from ..metrics import mask_iou, psnr

__all__ = ["subject_gaussians", "render_gaussians", "mean_iou", "ReposeResult",
           "evaluate_repose", "evaluate_part_labels", "eval_cameras", "framing_cameras",
           "pixel_size", "subject_photo", "prior_reconstruction", "inset"]


def eval_cameras(size: int = 192, azimuths=(0.0, 90.0, 180.0, 270.0), radius: float = 2.6,
                 target=(0.0, 0.0, 0.0)) -> Cameras:
    """Level orbit cameras around the subject (the pipeline's view geometry)."""
    return orbit_cameras(list(azimuths), 0.0, radius, target=target, width=size, height=size)


def pixel_size(cams: Cameras, point) -> float:
    """Metres per pixel at ``point`` [3] (world) seen by the first camera."""
    p = torch.as_tensor(point, dtype=cams.viewmats.dtype).reshape(3)
    depth = float((cams.viewmats[0, :3, :3] @ p + cams.viewmats[0, :3, 3])[2])
    return depth / float(cams.Ks[0, 1, 1])


def framing_cameras(point_sets, size: int) -> Cameras:
    """:func:`eval_cameras` aimed at the middle of the points, close enough that their
    extent (all sets together, any azimuth) fills the frame."""
    from ..cameras import DEFAULT_FOVY_DEG, radius_to_fit

    pts = torch.cat([p.reshape(-1, 3).float() for p in point_sets])
    lo, hi = pts.min(0).values, pts.max(0).values
    mid = 0.5 * (lo + hi)
    horiz = float((pts[:, [0, 2]] - mid[[0, 2]]).norm(dim=1).max())
    extent = max(float(hi[1] - lo[1]), 2 * horiz)
    radius = radius_to_fit(extent, DEFAULT_FOVY_DEG, 1.05) + horiz
    return eval_cameras(size, radius=radius, target=(float(mid[0]), float(mid[1]),
                                                      float(mid[2])))


@torch.no_grad()
def subject_gaussians(mesh, n: int = 60000, *, seed: int = 0, thickness: float = 0.15,
                      coverage: float = 0.75) -> Gaussians:
    """``n`` flat Gaussians on a ``SubjectMesh`` (area-uniform), each a disc in its face's
    plane (tangent sigma ``coverage`` x the mean point spacing, normal sigma ``thickness`` x
    that), coloured like ``render_subject`` shades the surface, labelled with the body part
    under it. Each disc's local z axis is its surface normal (see :func:`inset`)."""
    from ..geometry import rotmat_to_quat
    from ..data.subject_render import shade_materials

    g = torch.Generator().manual_seed(seed)
    V = mesh.vertices.double()
    tri = V[mesh.faces]  # [F,3,3]
    cross = torch.linalg.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], dim=-1)
    area = 0.5 * cross.norm(dim=-1)
    f = torch.multinomial(area.float(), n, replacement=True, generator=g)
    u, v = torch.rand(n, generator=g, dtype=torch.float64), torch.rand(n, generator=g,
                                                                         dtype=torch.float64)
    flip = u + v > 1
    u, v = torch.where(flip, 1 - u, u), torch.where(flip, 1 - v, v)
    bary = torch.stack([1 - u - v, u, v], 1)
    corners = mesh.faces[f]
    w = bary[..., None]
    means = (w * tri[f]).sum(1)
    can = (w * mesh.canonical[corners].double()).sum(1)
    nrm = F.normalize((w * mesh.normals[corners].double()).sum(1), dim=-1)
    colors = shade_materials(mesh.materials, mesh.face_material[f], can, nrm).float()
    labels = mesh.labels[corners.gather(1, bary.argmax(1, keepdim=True))[:, 0]]
    # a frame per point: the face normal and two tangents (the disc lies in the face plane)
    fn = F.normalize(cross[f], dim=-1)
    fn = torch.where(((fn * nrm).sum(-1, keepdim=True) < 0), -fn, fn)
    t1 = F.normalize(tri[f, 1] - tri[f, 0], dim=-1)
    t1 = F.normalize(t1 - (t1 * fn).sum(-1, keepdim=True) * fn, dim=-1)
    t2 = torch.linalg.cross(fn, t1, dim=-1)
    R = torch.stack([t1, t2, fn], -1)  # columns: local x, y, z
    spacing = float((area.sum() / n) ** 0.5)
    s = torch.tensor([coverage * spacing, coverage * spacing, thickness * coverage * spacing])
    return Gaussians(means=means.float(), quats=rotmat_to_quat(R).float(),
                     scales=s.expand(n, 3).float().contiguous(),
                     opacities=torch.full((n,), 0.98), colors=colors,
                     labels=labels.long())


def inset(discs: Gaussians, pixel_size: float) -> Gaussians:
    """Surface discs (:func:`subject_gaussians`, possibly reposed) moved inside the surface
    by their tangent sigma + half a pixel along their normal (local z axis), for rendering:
    alpha then ends on the mesh's outline instead of a splat radius and the renderer's 2D
    low-pass (about a pixel) outside it, as ``prior.fit.render_body`` does for bodies.
    Labels and binding use the discs where they are; only their renders are inset."""
    from ..geometry import quat_to_rotmat

    normal = quat_to_rotmat(discs.quats)[..., 2]
    depth = discs.scales[:, :1] + 0.5 * pixel_size
    return replace(discs, means=discs.means - depth * normal)


@torch.no_grad()
def render_gaussians(g: Gaussians, cams: Cameras) -> tuple[Tensor, Tensor]:
    """(rgb [C,3,H,W] on white, alpha [C,1,H,W]) with our rasterizer."""
    from ..render import rasterize

    rgb, alpha, _ = rasterize(g.means, g.quats, g.scales, g.opacities, g.rgb, cams.viewmats,
                              cams.Ks, cams.width, cams.height,
                              backgrounds=torch.ones(len(cams), 3))
    return rgb.permute(0, 3, 1, 2).clamp(0, 1), alpha.permute(0, 3, 1, 2)


def _psnr(a: Tensor, b: Tensor) -> float:
    """PSNR (dB) of two image stacks [T,3,H,W] as one image (all pixels' MSE)."""
    return float(psnr(a.reshape(1, -1, *a.shape[-2:]), b.reshape(1, -1, *b.shape[-2:]))[0])


@dataclass
class ReposeResult:
    """Metrics of one reposing case: {method: {"psnr": dB, "mask_iou": IoU}}."""

    subject: int
    body: str
    metrics: dict[str, dict[str, float]]


def subject_photo(subject, size: int = 512) -> np.ndarray:
    """The subject rendered into the input camera as an RGBA uint8 photo [S,S,4] (alpha =
    coverage, so preprocessing takes the exact mask)."""
    from ..prior.fit import input_camera
    from ..data.subject_render import render_subject

    photo = render_subject(subject.mesh(), input_camera(size, size))
    rgba = torch.cat([photo.rgb[0], photo.alpha[0]], 0).permute(1, 2, 0)
    return (rgba.clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)


def prior_reconstruction(subject, size: int = 512):
    """The prior-only pipeline (``HumanSplatPipeline.prior_only``) run on the subject's
    rendered photo: a real reconstruction (a pipeline.Reconstruction) with a fitted body (its
    ``fit``) and part labels."""
    from ..pipeline import HumanSplatPipeline, PipelineConfig

    pipe = HumanSplatPipeline.prior_only(PipelineConfig(crop_size=size), device="cpu",
                                         body_model=subject.model)
    return pipe(subject_photo(subject, size))


def evaluate_repose(subject, pose_b, *, n_gaussians: int = 60000, size: int = 256,
                    bodies=("gt",), seed: int = 0) -> list[ReposeResult]:
    """Repose ``subject`` (a ``synthetic_humans.Subject``) from its own pose to ``pose_b``
    (SMPL [24,3]) and score it against the subject rendered in ``pose_b`` (orbit views).
    bodies: "gt" binds the oracle Gaussians (:func:`subject_gaussians`) to the GT body;
    "fitted" binds the prior-only reconstruction of the subject's rendered photo to its
    fitted body (the pipeline's situation, reconstruction errors included). Methods:
    "skinned" (barycentric surface binding), "nearest_vertex" (skinning with the nearest
    vertex's weights), "rigid" (unmoved); "same_pose" scores the Gaussians against the
    subject in its own pose (what no reposing can beat)."""
    from ..avatar.skinning import BodyParams, bind
    from ..data.subject_render import render_subject

    model = subject.model
    mesh_a = subject.mesh()
    pb = subject.body_params(pose_b)
    mesh_b = subject.mesh(pose_b)
    cams = framing_cameras([mesh_a.vertices, mesh_b.vertices], size)
    px = pixel_size(cams, mesh_a.vertices.float().mean(0))
    g = subject_gaussians(mesh_a, n_gaussians, seed=seed) if "gt" in bodies else None
    ref = render_subject(mesh_b, cams)
    ref_a = render_subject(mesh_a, cams)
    results = []
    for kind in bodies:
        if kind == "gt":
            pa = subject.body_params()
            params = BodyParams(pa["body_pose"][0], pa["shape"][0], pa["global_orient"][0],
                                pa["transl"][0], pa["scale"][0], model=model.name)
            source = g
        elif kind == "fitted":
            rec = prior_reconstruction(subject)
            params, source = BodyParams.from_fit(rec.fit), rec.gaussians
        else:
            raise ValueError(f"bodies must hold 'gt' and/or 'fitted', got {kind!r}")
        metrics = {}
        target_pose = pb["body_pose"][0]
        for method in ("skinned", "nearest_vertex", "rigid"):
            binding = "vertex" if method == "nearest_vertex" else "triangle"
            avatar = bind(source, model, params, binding=binding)
            posed = avatar.rigid() if method == "rigid" else avatar.pose(target_pose)
            rgb, alpha = render_gaussians(inset(posed, px) if kind == "gt" else posed, cams)
            metrics[method] = {"psnr": _psnr(rgb, ref.rgb), "mask_iou": mask_iou(alpha, ref.alpha)}
        # context: how well the Gaussians show the subject in its own pose (no reposing);
        # the oracle's surface discs render inset (see inset())
        rgb, alpha = render_gaussians(inset(source, px) if kind == "gt" else source, cams)
        metrics["same_pose"] = {"psnr": _psnr(rgb, ref_a.rgb),
                                "mask_iou": mask_iou(alpha, ref_a.alpha)}
        results.append(ReposeResult(int(subject.seed), kind, metrics))
    return results


def evaluate_part_labels(gaussians: Gaussians, mesh, cams: Cameras) -> Tensor:
    """[24] per-part IoU between the label map rendered from ``gaussians``' labels and the
    subject ``mesh``'s rendered part map in ``cams`` (NaN: part in neither). Pass surface
    discs through :func:`inset` first."""
    from ..parts_export import part_iou, render_label_map
    from ..data.subject_render import render_subject

    pred = render_label_map(gaussians, cams.viewmats, cams.Ks, cams.width, cams.height)
    gt = render_subject(mesh, cams).parts
    return part_iou(pred, gt)


def mean_iou(ious: Tensor) -> float:
    """Mean over the parts that appear (NaN-aware)."""
    v = ious[~torch.isnan(ious)]
    return float(v.mean()) if v.numel() else float("nan")

