"""The avatar asset: a reconstruction turned into a rigged, textured mesh with motions.

:func:`build_avatar` runs the stages: render the splat from the input camera and orbit views
(``views``), carve the clothed surface from the fitted body (``surface``), split it along the
body's UV seams and bake the texture (``texture``), take the skinning weights and skeleton of
the body model, move the mesh to the chosen bind pose and sample the motions (``skin``). The
writers (``gltf``, ``obj``) take the :class:`AvatarAsset` it returns.

The splat and the mesh come from the same fitted body (``body.npz``), so in the ``input``
pose the mesh lies where the splat lies.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
from torch import Tensor

from ..avatar.motions import MOTIONS, make_motion
from ..avatar.skinning import BodyParams, polar_rotation
from ..gaussians import Gaussians
from .skin import (POSES, bind_pose, joint_globals, motion_transforms, rest_heads,
                   skin_weights)
from .surface import SurfaceConfig, clothed_surface
from .texture import bake_texture, textured_mesh, uv_layout
from .views import export_cameras, render_splat_views

__all__ = ["Animation", "AvatarAsset", "InputCamera", "build_avatar"]


@dataclass
class Animation:
    """One motion: times [T] seconds (the loop closed: the last frame is the first again)
    and joint frames [T,J,4,4] (world)."""

    name: str
    times: Tensor
    globals: Tensor


@dataclass
class InputCamera:
    """The photo's camera: viewmat [4,4] world-to-camera (OpenCV), K [3,3], size in px."""

    viewmat: Tensor
    K: Tensor
    width: int
    height: int


@dataclass
class AvatarAsset:
    """A skinned, textured mesh in its bind pose (world: metres, +y up, facing +z).

    positions/normals [N,3], uv [N,2] (u right, v down), faces [F,3] int64, texture uint8
    [S,S,3]; joint_names / joint_parents (J; roots -1), joints [N,4] int64 and weights [N,4]
    float32 (sum 1), bind_globals [J,4,4] the joint frames of the bind pose; animations;
    body_index [N] (the body vertex each vertex comes from); stats and timings (seconds)."""

    name: str
    positions: Tensor
    normals: Tensor
    uv: Tensor
    faces: Tensor
    texture: Any
    joint_names: list[str]
    joint_parents: list[int]
    joints: Tensor
    weights: Tensor
    bind_globals: Tensor
    animations: list[Animation]
    pose: str
    body_index: Tensor
    stats: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)
    extras: dict = field(default_factory=dict)


def _check_choices(pose: str, motions: Sequence[str]) -> None:
    if pose not in POSES:
        raise ValueError(f"pose must be one of {', '.join(POSES)}, got {pose!r}")
    bad = [m for m in motions if m not in MOTIONS]
    if bad:
        raise ValueError(f"unknown motion {bad[0]!r}; choose from {', '.join(MOTIONS)}")


@torch.no_grad()
def build_avatar(gaussians: Gaussians, params: BodyParams, body_model, *,
                 input_camera: InputCamera | None = None, pose: str = "input",
                 motions: Sequence[str] = ("walk",), texture_size: int = 512,
                 view_size: int = 128, name: str = "humansplat_avatar",
                 surface: SurfaceConfig | None = None) -> AvatarAsset:
    """Build the avatar of a reconstruction (its splat, fitted ``params`` and the
    ``body_model`` they belong to). ``input_camera``: the photo's camera (its view of the
    splat leads the silhouette and the colours); ``pose``: the bind pose (``input``,
    ``apose``, ``tpose``); ``motions``: names in ``avatar.motions.MOTIONS``, one glTF
    animation each. See the module docstring for the stages."""
    _check_choices(pose, motions)
    if len(gaussians) == 0:
        raise ValueError("the splat has no Gaussians: nothing to export")
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    m = body_model
    g = gaussians.with_rgb() if gaussians.sh is not None else gaussians
    views = []
    if input_camera is not None:
        c = input_camera
        if gaussians.sh is not None:  # a texture holds one colour: the photo's camera's
            from ..cameras import camera_centers
            from ..io.compact import rgb_seen_from

            g = rgb_seen_from(gaussians, camera_centers(c.viewmat[None].float())[0])
        views += render_splat_views(g, c.viewmat[None].float(), c.K[None].float(), c.width,
                                    c.height)
    cams = export_cameras(g, view_size)
    views += render_splat_views(g, cams.viewmats, cams.Ks, view_size, view_size)
    timings["views"] = time.perf_counter() - t0

    t = time.perf_counter()
    out = m(**params.forward_args(m.device, m.dtype))
    body_verts = out.vertices[0].float().cpu()
    T_fit = out.bone_transforms[0].float().cpu()
    surf = clothed_surface(body_verts, m.faces, views, float(params.scale), surface)
    timings["surface"] = time.perf_counter() - t

    t = time.perf_counter()
    uv, face_uv = uv_layout(m)
    mesh = textured_mesh(surf, uv, face_uv)
    texture, tex_stats = bake_texture(mesh, surf, uv, face_uv, views, size=texture_size,
                                      body_scale=float(params.scale))
    timings["texture"] = time.perf_counter() - t

    t = time.perf_counter()
    joints, weights = skin_weights(m.lbs_weights, mesh.body_index)
    bind = bind_pose(m, params, pose)
    positions, normals = mesh.positions, mesh.normals
    if pose != "input":  # unpose with the fitted bones, repose with the bind pose's
        A0 = (weights[..., None, None] * T_fit[joints]).sum(1)  # [N,4,4]
        A1 = (weights[..., None, None] * bind.bone_transforms[joints]).sum(1)
        L = A1[:, :3, :3] @ torch.linalg.inv(A0[:, :3, :3])
        positions = (L @ (positions - A0[:, :3, 3])[..., None]).squeeze(-1) + A1[:, :3, 3]
        normals = torch.nn.functional.normalize(
            (polar_rotation(L) @ normals[..., None]).squeeze(-1), dim=-1)
        # the clothed feet (not the body's) on y = 0: move the bind placement with them
        dy = -float(positions[:, 1].min())
        positions = positions + torch.tensor([0.0, dy, 0.0])
        bind.transl = bind.transl + torch.tensor([0.0, dy, 0.0])
        bind.bone_transforms = bind.bone_transforms.clone()
        bind.bone_transforms[:, 1, 3] += dy
    heads = rest_heads(m, params)
    bind_globals = joint_globals(bind.bone_transforms, heads)
    animations = []
    for name_ in motions:
        motion = make_motion(name_)
        T = motion_transforms(m, params, bind, motion)
        T = torch.cat([T, T[:1]])  # close the loop
        times = torch.arange(T.shape[0], dtype=torch.float32) / float(motion.fps)
        animations.append(Animation(name_, times, joint_globals(T, heads)))
    timings["skin"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t0
    stats = {**surf.stats, **tex_stats, "exported_vertices": int(positions.shape[0]),
             "joints": int(m.num_joints), "views": len(views)}
    extras = {"humansplat": {"pose": pose, "motions": list(motions),
                             "body_model": getattr(m, "name", "body"),
                             "frame": "metres, +y up, the person faces +z",
                             "lines_up_with_splat": pose == "input"}}
    return AvatarAsset(name=name, positions=positions.float(), normals=normals.float(),
                       uv=mesh.uv.float(), faces=mesh.faces, texture=texture,
                       joint_names=list(m.joint_names), joint_parents=list(m.joint_parents),
                       joints=joints, weights=weights, bind_globals=bind_globals,
                       animations=animations, pose=pose, body_index=mesh.body_index,
                       stats=stats, timings=timings, extras=extras)
