"""The 24 body parts of the paper (the SMPL part segmentation), their loss weights, and how
each body model's joints map onto them.

Part ``i`` is the region skinned mainly by SMPL joint ``i``, so the same list names both the
parts and the 24 SMPL joints (joint ``i`` rotates part ``i``). Every body model exposes a
per-vertex label in ``range(24)`` in this order.

Part weights (the hierarchical loss, train/losses.py): head, arms (upper arm, forearm) and hands
(hand, hand-index) weigh 2, everything else 1. SMPL's "shoulder" part is the clavicle /
trapezius region of the upper torso (the upper arm is the "arm" part), so it counts as torso
and weighs 1.
"""

from __future__ import annotations

import re

import torch
from torch import Tensor

__all__ = [
    "PART_NAMES",
    "NUM_PARTS",
    "PART_WEIGHTS",
    "SMPL_PARENTS",
    "PART_COLORS",
    "KEYPOINT_NAMES",
    "KEYPOINT_FLIP",
    "ANNY_PART_BONES",
    "ANNY_JOINT_BONES",
    "MESHCAPADE_PART_NAMES",
    "part_weights",
    "anny_bone_parts",
    "part_labels_from_weights",
]

PART_NAMES: tuple[str, ...] = (
    "hips",  # 0 (the pelvis)
    "left_up_leg",  # 1
    "right_up_leg",  # 2
    "spine",  # 3
    "left_leg",  # 4
    "right_leg",  # 5
    "spine1",  # 6
    "left_foot",  # 7
    "right_foot",  # 8
    "spine2",  # 9
    "left_toe_base",  # 10
    "right_toe_base",  # 11
    "neck",  # 12
    "left_shoulder",  # 13
    "right_shoulder",  # 14
    "head",  # 15
    "left_arm",  # 16
    "right_arm",  # 17
    "left_forearm",  # 18
    "right_forearm",  # 19
    "left_hand",  # 20
    "right_hand",  # 21
    "left_hand_index",  # 22
    "right_hand_index",  # 23
)
NUM_PARTS = len(PART_NAMES)

_HEAVY_PARTS = {"head", "left_arm", "right_arm", "left_forearm", "right_forearm",
                "left_hand", "right_hand", "left_hand_index", "right_hand_index"}
# [24] the paper's per-part weights of the hierarchical loss.
PART_WEIGHTS: tuple[float, ...] = tuple(2.0 if n in _HEAVY_PARTS else 1.0 for n in PART_NAMES)

# The SMPL kinematic tree over the 24 joints (parent of joint i; the pelvis is the root).
SMPL_PARENTS: tuple[int, ...] = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16,
                                 17, 18, 19, 20, 21)

# [24,3] uint8 display colours (overlays, debugging): left parts warm, right parts cool,
# torso grey/green, head yellow.
PART_COLORS: tuple[tuple[int, int, int], ...] = (
    (128, 128, 128), (230, 97, 1), (1, 133, 113), (150, 150, 110), (253, 184, 99),
    (128, 205, 193), (170, 170, 130), (178, 24, 43), (33, 102, 172), (190, 190, 150),
    (214, 96, 77), (67, 147, 195), (200, 200, 60), (244, 165, 130), (146, 197, 222),
    (255, 220, 0), (202, 0, 32), (5, 113, 176), (255, 127, 80), (100, 149, 237),
    (139, 69, 19), (72, 61, 139), (210, 105, 30), (106, 90, 205),
)

# Keypoints every body model regresses, in this order: COCO-17 then 6 foot points (the order
# of ``anny.KeypointsRegressor.coco``).
KEYPOINT_NAMES: tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip",
    "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle", "left_big_toe",
    "right_big_toe", "left_small_toe", "right_small_toe", "left_heel", "right_heel",
)


def _flip_index(names) -> tuple[int, ...]:
    def mirror(n: str) -> str:
        return ("right" + n[4:]) if n.startswith("left") else (
            ("left" + n[5:]) if n.startswith("right") else n)
    return tuple(names.index(mirror(n)) for n in names)


# [23] keypoint index of the mirrored (left <-> right) keypoint.
KEYPOINT_FLIP: tuple[int, ...] = _flip_index(list(KEYPOINT_NAMES))
# [24] part index of the mirrored part.
PART_FLIP: tuple[int, ...] = _flip_index(list(PART_NAMES))


def part_weights(dtype=torch.float32, device=None) -> Tensor:
    """[24] the paper's per-part loss weights as a tensor."""
    return torch.tensor(PART_WEIGHTS, dtype=dtype, device=device)


# --- Anny (MakeHuman rig, 104 bones) -------------------------------------------------------
# Which of Anny's bones make up each part (regular expressions over its bone labels; ``{s}``
# is the side, "L" or "R"). The split follows SMPL's segmentation heights: spine05 (the lowest,
# up to ~7 cm above the hip joints) closes the pelvis ring with the pelvis bones, spine04 is
# the lower back, spine03 the waist, spine02/01 the chest. The thumb
# and the palm belong to "hand", the four fingers to "hand_index" (as in SMPL, whose
# hand-index joint sits at the knuckles).
ANNY_PART_BONES: dict[str, tuple[str, ...]] = {
    "hips": ("root", "pelvis\\.[LR]", "spine05"),
    "spine": ("spine04",),
    "spine1": ("spine03",),
    "spine2": ("spine02", "spine01"),
    "neck": ("neck0[1-3]",),
    "head": ("head", "eye\\.[LR]", "jaw", "tongue.*", "special.*", "oris.*", "levator.*",
             "orbicularis.*", "temporalis.*", "oculi.*", "risorius.*"),
    "{side}_up_leg": ("upperleg0[12]\\.{s}",),
    "{side}_leg": ("lowerleg0[12]\\.{s}",),
    "{side}_foot": ("foot\\.{s}",),
    "{side}_toe_base": ("toe[1-5]-[1-3]\\.{s}",),
    "{side}_shoulder": ("clavicle\\.{s}", "shoulder01\\.{s}", "breast\\.{s}"),
    "{side}_arm": ("upperarm0[12]\\.{s}",),
    "{side}_forearm": ("lowerarm0[12]\\.{s}",),
    "{side}_hand": ("wrist\\.{s}", "metacarpal[1-4]\\.{s}", "finger1-[1-3]\\.{s}"),
    "{side}_hand_index": ("finger[2-5]-[1-3]\\.{s}",),
}

# The Anny bone whose rotation plays SMPL joint i (None: no single bone; not posed by the
# fitter). The root is the pelvis (global orientation).
ANNY_JOINT_BONES: tuple[str | None, ...] = (
    "root", "upperleg01.L", "upperleg01.R", "spine04", "lowerleg01.L", "lowerleg01.R",
    "spine03", "foot.L", "foot.R", "spine01", None, None, "neck01", "clavicle.L",
    "clavicle.R", "head", "upperarm01.L", "upperarm01.R", "lowerarm01.L", "lowerarm01.R",
    "wrist.L", "wrist.R", None, None,
)


def _expanded_anny_part_patterns() -> list[tuple[int, re.Pattern]]:
    out = []
    for part, patterns in ANNY_PART_BONES.items():
        sides = [("left", "L"), ("right", "R")] if "{side}" in part else [(None, None)]
        for side, s in sides:
            name = part.format(side=side) if side else part
            for p in patterns:
                out.append((PART_NAMES.index(name), re.compile(p.replace("{s}", s or ""))))
    return out


def anny_bone_parts(bone_labels) -> list[int]:
    """Part index (0..23) of each Anny bone label. Raises ValueError on an unknown bone, so
    a rig change in a future anny release is caught instead of mislabelled."""
    table = _expanded_anny_part_patterns()
    parts = []
    for label in bone_labels:
        hits = {p for p, rx in table if rx.fullmatch(label)}
        if len(hits) != 1:
            raise ValueError(f"Anny bone {label!r} maps to {len(hits)} parts (expected 1); "
                             "update ANNY_PART_BONES for this anny version")
        parts.append(hits.pop())
    return parts


# Meshcapade's public SMPL segmentation file (smpl_vert_segmentation.json) names the parts in
# camelCase; this maps them to ours.
MESHCAPADE_PART_NAMES: dict[str, str] = {
    "hips": "hips", "leftUpLeg": "left_up_leg", "rightUpLeg": "right_up_leg",
    "spine": "spine", "leftLeg": "left_leg", "rightLeg": "right_leg", "spine1": "spine1",
    "leftFoot": "left_foot", "rightFoot": "right_foot", "spine2": "spine2",
    "leftToeBase": "left_toe_base", "rightToeBase": "right_toe_base", "neck": "neck",
    "leftShoulder": "left_shoulder", "rightShoulder": "right_shoulder", "head": "head",
    "leftArm": "left_arm", "rightArm": "right_arm", "leftForeArm": "left_forearm",
    "rightForeArm": "right_forearm", "leftHand": "left_hand", "rightHand": "right_hand",
    "leftHandIndex1": "left_hand_index", "rightHandIndex1": "right_hand_index",
}


def part_labels_from_weights(lbs_weights: Tensor, joint_parts) -> Tensor:
    """Per-vertex part label [V] (int64 in 0..23): the part with the largest summed skinning
    weight, summing the weights [V,J] of all joints of a part (``joint_parts`` [J])."""
    joint_parts = torch.as_tensor(joint_parts, dtype=torch.long, device=lbs_weights.device)
    if lbs_weights.ndim != 2 or lbs_weights.shape[1] != joint_parts.shape[0]:
        raise ValueError(f"lbs_weights must be [V,{joint_parts.shape[0]}], "
                         f"got {tuple(lbs_weights.shape)}")
    per_part = torch.zeros(lbs_weights.shape[0], NUM_PARTS, dtype=lbs_weights.dtype,
                           device=lbs_weights.device)
    per_part.index_add_(1, joint_parts, lbs_weights)
    return per_part.argmax(dim=1)
