"""Procedural motions for any body model: walk, wave, turn, apose.

A motion is a loop of per-SMPL-joint rotations (the 24 joints of ``prior.parts``), a yaw of
the whole body about the vertical axis and a small root offset per frame. Joint rotations
follow the body models' convention (``prior.body``): each relative to its parent, in the
rest pose's world-aligned axes (+x the person's left, +y up, +z forward). So a rotation
about +x by a positive angle swings a hanging limb backwards, about +z raises the left arm
sideways and lowers the right one.

Each motion is layered on the model's natural standing pose (``natural_smpl_pose``: Anny's
rest A-pose, or SMPL's T-pose with the arms brought down): ``R_joint = R_motion R_natural``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import ConfigError
from ..geometry import axis_angle_to_matrix
from ..prior.parts import PART_NAMES

__all__ = ["Motion", "MOTIONS", "make_motion", "walk", "wave", "turn", "apose"]

_J = {name: i for i, name in enumerate(PART_NAMES)}


@dataclass
class Motion:
    """A looping motion of T frames.

    smpl_rotations [T,24,3,3]: per-SMPL-joint rotations *on top of* the natural pose
    (joint 0 unused: the body's yaw and offset carry the root). yaw [T] radians about +y,
    applied on top of the fitted orientation. root_offset [T,3] metres (world) added to the
    root position. fps: the intended playback rate."""

    name: str
    smpl_rotations: Tensor
    yaw: Tensor
    root_offset: Tensor
    fps: float = 24.0

    def __len__(self) -> int:
        return int(self.yaw.shape[0])

    def body_pose(self, model) -> Tensor:
        """[T,J-1,3,3] the model's ``body_pose`` for every frame (natural pose included)."""
        from .skinning import smpl_rotations_to_body_pose

        nat = axis_angle_to_matrix(model.natural_smpl_pose.to(self.smpl_rotations.dtype).cpu())
        R = self.smpl_rotations @ nat[None]
        return smpl_rotations_to_body_pose(model, R.to(model.device, model.dtype))


def _frames(n_frames: int) -> Tensor:
    if not isinstance(n_frames, int) or n_frames < 1:
        raise ConfigError(f"n_frames must be a positive int, got {n_frames!r}")
    return torch.arange(n_frames, dtype=torch.float32) / n_frames  # phase in [0, 1)


def _rot(axis: str, angle: Tensor) -> Tensor:
    """[T] angles -> [T,3,3] rotations about a world axis."""
    v = torch.zeros(angle.shape[0], 3)
    v[:, "xyz".index(axis)] = angle
    return axis_angle_to_matrix(v)


def _empty(T: int) -> Tensor:
    return torch.eye(3).repeat(T, 24, 1, 1)


def walk(n_frames: int = 32, *, stride: float = 0.45, arm_swing: float = 0.35) -> Motion:
    """Walking in place, one full gait cycle: hips swing ±``stride`` rad, the swinging leg's
    knee bends, arms swing against the legs, the body bobs twice per cycle."""
    t = _frames(n_frames)
    s = torch.sin(2 * math.pi * t)
    R = _empty(n_frames)
    # legs: a negative x rotation swings a leg forward
    R[:, _J["left_up_leg"]] = _rot("x", -stride * s)
    R[:, _J["right_up_leg"]] = _rot("x", stride * s)
    # a knee bends most mid-swing, when its hip moves forward fastest (d/dt of its swing)
    c = torch.cos(2 * math.pi * t)
    R[:, _J["left_leg"]] = _rot("x", 0.1 + 0.7 * torch.clamp(c, min=0) ** 1.5)
    R[:, _J["right_leg"]] = _rot("x", 0.1 + 0.7 * torch.clamp(-c, min=0) ** 1.5)
    # ankles counter the thigh so the feet stay roughly flat
    R[:, _J["left_foot"]] = _rot("x", 0.5 * stride * s)
    R[:, _J["right_foot"]] = _rot("x", -0.5 * stride * s)
    # arms closer to the body than the A-pose, swinging opposite to the legs; elbows bent
    down = torch.full_like(t, 0.45)
    R[:, _J["left_arm"]] = _rot("x", arm_swing * s) @ _rot("z", -down)
    R[:, _J["right_arm"]] = _rot("x", -arm_swing * s) @ _rot("z", down)
    R[:, _J["left_forearm"]] = _rot("x", -0.25 - 0.15 * torch.clamp(s, min=0))
    R[:, _J["right_forearm"]] = _rot("x", -0.25 - 0.15 * torch.clamp(-s, min=0))
    # a little counter-rotation of the torso
    R[:, _J["spine1"]] = _rot("y", 0.08 * s)
    offset = torch.zeros(n_frames, 3)
    offset[:, 1] = 0.015 * torch.cos(4 * math.pi * t)  # up at mid-stance, twice a cycle
    return Motion("walk", R, torch.zeros(n_frames), offset)


def wave(n_frames: int = 32, *, waves: int = 2) -> Motion:
    """The right arm raised to the side, the forearm up, waving ``waves`` times a loop; the
    head tilts toward the hand."""
    t = _frames(n_frames)
    R = _empty(n_frames)
    ramp = torch.ones(n_frames)
    R[:, _J["right_arm"]] = _rot("z", -1.45 * ramp)  # A-pose -> above horizontal
    osc = torch.sin(2 * math.pi * waves * t)
    R[:, _J["right_forearm"]] = _rot("z", -1.2 + 0.4 * osc)  # forearm up, side to side
    R[:, _J["right_hand"]] = _rot("z", 0.2 * osc)
    R[:, _J["head"]] = _rot("z", -0.08 * ramp)
    R[:, _J["left_arm"]] = _rot("z", -0.1 * ramp)
    return Motion("wave", R, torch.zeros(n_frames), torch.zeros(n_frames, 3))


def turn(n_frames: int = 48) -> Motion:
    """A full 360 degree turn on the spot, standing in the natural pose."""
    t = _frames(n_frames)
    return Motion("turn", _empty(n_frames), 2 * math.pi * t, torch.zeros(n_frames, 3))


def apose(n_frames: int = 1) -> Motion:
    """The canonical pose (the natural standing pose), held."""
    return Motion("apose", _empty(n_frames), torch.zeros(n_frames), torch.zeros(n_frames, 3))


MOTIONS = {"walk": walk, "wave": wave, "turn": turn, "apose": apose}


def make_motion(name: str, n_frames: int | None = None) -> Motion:
    """The motion called ``name`` (one of :data:`MOTIONS`), with its default length unless
    ``n_frames`` is given."""
    if name not in MOTIONS:
        raise ConfigError(f"unknown motion {name!r}; choose one of {', '.join(MOTIONS)}")
    return MOTIONS[name]() if n_frames is None else MOTIONS[name](n_frames)
