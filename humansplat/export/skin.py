"""Skeleton, skinning weights, bind pose and motion tracks of the exported avatar.

The body model's bones become glTF joints (named as the model names them). A joint's global
transform in a pose is ``T_j @ translate(h_j)``: the model's rest-to-posed bone transform
``T_j`` applied to a frame sitting at the bone's rest head ``h_j``. Its inverse bind matrix
is the inverse of that transform in the bind pose, so the skinning matrix of a joint is
``T_j(pose) T_j(bind)^-1``: exactly the body model's linear blend skinning, re-anchored at
the bind pose. Each exported vertex keeps the 4 largest skinning weights of the body vertex
it comes from, renormalised.

Bind poses: ``input`` (the fitted pose: the mesh lines up with the splat), ``apose`` (the
model's natural standing pose), ``tpose`` (arms raised to the horizontal). The last two face
+z with the feet on y = 0, at the fitted body's scale.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..avatar.motions import Motion
from ..avatar.skinning import BodyParams, polar_rotation, smpl_rotations_to_body_pose
from ..geometry import axis_angle_to_matrix, rotmat_to_quat

__all__ = ["POSES", "BindPose", "skin_weights", "bind_pose", "rest_heads", "joint_globals",
           "local_trs", "motion_transforms"]

POSES = ("input", "apose", "tpose")


@dataclass
class BindPose:
    """The pose the exported mesh is stored in: body_pose [J-1,3,3], global orientation
    [3,3], transl [3], scale [] and the bone transforms [J,4,4] they give."""

    name: str
    body_pose: Tensor
    orient: Tensor
    transl: Tensor
    scale: Tensor
    bone_transforms: Tensor


def skin_weights(lbs_weights: Tensor, body_index: Tensor, k: int = 4
                 ) -> tuple[Tensor, Tensor]:
    """(joints [N,k] int64, weights [N,k] float32 summing to 1) of the body vertices
    ``body_index``: the k largest of ``lbs_weights`` [V,J], renormalised in float64 and
    rounded so that their float32 sum is 1 (glTF validators check it)."""
    W = lbs_weights.detach().cpu().double()[body_index]
    top, joints = W.topk(k, dim=1)
    top = top / top.sum(1, keepdim=True).clamp_min(1e-12)
    top = torch.where(top < 1e-6, torch.zeros_like(top), top)  # no near-zero influences
    top = top / top.sum(1, keepdim=True)
    w32 = top.float()
    w32[:, 0] += (1.0 - w32.double().sum(1)).float()  # the rounding error to the largest
    joints = torch.where(w32 > 0, joints, torch.zeros_like(joints))  # unused: joint 0
    return joints, w32


def _forward(model, params: BodyParams, body_pose: Tensor, orient: Tensor, transl: Tensor,
             scale: Tensor, vertices: bool = False):
    """The body model on a batch [B] of poses (bones only unless ``vertices``)."""
    dev, dt = model.device, model.dtype
    none = None if vertices else torch.zeros(0, dtype=torch.long, device=dev)
    B = body_pose.shape[0]
    with torch.no_grad():
        return model(body_pose.to(dev, dt), params.shape.to(dev, dt)[None].expand(B, -1),
                     orient.to(dev, dt), transl.to(dev, dt), scale.to(dev, dt).reshape(-1),
                     vertex_ids=none)


def rest_heads(model, params: BodyParams) -> Tensor:
    """[J,3] the bones' heads in rest space (root at the origin, unscaled)."""
    J = model.num_joints
    eye = torch.eye(3).repeat(1, J - 1, 1, 1)
    out = _forward(model, params, eye, torch.eye(3)[None], torch.zeros(1, 3), torch.ones(1))
    return out.joints[0].float().cpu()


def _natural_pose(model) -> Tensor:
    """[J-1,3,3] the model's natural standing pose (``Motion.body_pose`` of no motion)."""
    nat = axis_angle_to_matrix(model.natural_smpl_pose.float().cpu())
    return smpl_rotations_to_body_pose(model, nat[None].to(model.device, model.dtype))[0].cpu()


def _tpose(model, params: BodyParams) -> Tensor:
    """[J-1,3,3] the T-pose: each upper arm turned about +z until the shoulder-to-elbow
    direction of the rest pose is horizontal (no change for a model whose rest pose is a
    T-pose already)."""
    from ..prior.parts import PART_NAMES

    h = rest_heads(model, params)
    R = torch.eye(3).repeat(24, 1, 1)
    for arm, fore, sign in (("left_arm", "left_forearm", 1.0), ("right_arm", "right_forearm",
                                                                -1.0)):
        a = int(model.smpl_joints[PART_NAMES.index(arm)])
        b = int(model.smpl_joints[PART_NAMES.index(fore)])
        d = h[b] - h[a]
        angle = -math.atan2(float(d[1]), sign * float(d[0])) * sign
        R[PART_NAMES.index(arm)] = axis_angle_to_matrix(torch.tensor([0.0, 0.0, angle]))
    return smpl_rotations_to_body_pose(model, R[None].to(model.device, model.dtype))[0].cpu()


def bind_pose(model, params: BodyParams, pose: str = "input") -> BindPose:
    """The bind pose called ``pose`` (one of :data:`POSES`) for the fitted ``params``."""
    if pose not in POSES:
        raise ValueError(f"pose must be one of {', '.join(POSES)}, got {pose!r}")
    scale = params.scale.float().reshape(())
    if pose == "input":
        bp = params.body_pose.float()
        bp = axis_angle_to_matrix(bp) if bp.ndim == 2 else bp
        go = params.global_orient.float()
        orient = axis_angle_to_matrix(go) if go.ndim == 1 else go
        transl = params.transl.float()
    else:
        bp = _natural_pose(model) if pose == "apose" else _tpose(model, params)
        orient, transl = torch.eye(3), torch.zeros(3)
        out = _forward(model, params, bp[None], orient[None], transl[None], scale[None],
                       vertices=True)
        transl = torch.tensor([0.0, -float(out.vertices[0, :, 1].min()), 0.0])  # feet on y=0
    out = _forward(model, params, bp[None], orient[None], transl[None], scale[None])
    return BindPose(pose, bp, orient, transl, scale, out.bone_transforms[0].float().cpu())


def joint_globals(bone_transforms: Tensor, heads: Tensor) -> Tensor:
    """[...,J,4,4] joint frames: ``T_j @ translate(h_j)``."""
    G = bone_transforms.clone()
    G[..., :3, 3] = (bone_transforms[..., :3, :3] @ heads[..., None]).squeeze(-1) \
        + bone_transforms[..., :3, 3]
    return G


def local_trs(globals_: Tensor, parents: list[int]) -> tuple[Tensor, Tensor, Tensor]:
    """Node-local translation [...,J,3], rotation [...,J,4] (glTF order x, y, z, w, unit)
    and uniform scale [...,J] of joint frames [...,J,4,4] (a joint's local transform is its
    parent's inverse times its own; roots keep their global one)."""
    G = globals_.double()
    par = torch.tensor([p if p >= 0 else 0 for p in parents])
    is_root = torch.tensor([p < 0 for p in parents])
    Gp = G[..., par, :, :]
    L = torch.where(is_root[:, None, None], G, torch.linalg.inv(Gp) @ G)
    M = L[..., :3, :3]
    s = torch.linalg.det(M).abs().pow(1.0 / 3.0)
    R = polar_rotation(M / s[..., None, None])
    q = F.normalize(rotmat_to_quat(R), dim=-1)  # w, x, y, z
    q = torch.where(q[..., :1] < 0, -q, q)
    return L[..., :3, 3].float(), q[..., [1, 2, 3, 0]].float(), s.float()


def motion_transforms(model, params: BodyParams, bind: BindPose, motion: Motion) -> Tensor:
    """[T,J,4,4] bone transforms of every frame of ``motion`` for an avatar bound in
    ``bind``: the motion's joint rotations, its yaw on top of the bind orientation, its
    root offset on the bind position, the fitted scale (as ``avatar.animate``)."""
    from ..avatar.animate import motion_placement

    body_pose = motion.body_pose(model).float().cpu()  # [T,J-1,3,3]
    orient, transl = motion_placement(motion, bind.orient, bind.transl)
    out = _forward(model, params, body_pose, orient, transl, bind.scale.expand(len(motion)))
    return out.bone_transforms.float().cpu()
