"""Parametric body models behind one interface, in the project's world frame.

World (humansplat/cameras.py): metres, +y up, the person faces +z, the person's left is +x.
Each model is converted to that frame once, here; nothing downstream knows a model's native frame.

``BodyModel.forward(body_pose, shape, global_orient, transl, scale) -> BodyOutput``:

- ``body_pose`` [B,J-1,3] axis-angle or [B,J-1,3,3] rotation matrices, one per non-root joint,
  each relative to its parent and expressed in the rest pose's world axes (SMPL's convention).
  Zero pose = the model's canonical rest pose (Anny: its A-pose; SMPL: its T-pose).
- ``shape`` [B,S] (Anny: 6 phenotypes in [0,1]; SMPL: betas), default ``shape_default``.
- the root joint (the pelvis) is placed at the origin, then ``scale`` (about the root),
  ``global_orient`` (axis-angle [B,3] or [B,3,3], about the root) and ``transl`` [B,3]
  (where the root ends up) are applied: ``x_world = transl + scale * R_g x``.

Two implementations: :class:`AnnyBody` (default; the offline ``anny`` package) and
:class:`SMPLBody` (through ``smplx``, from licensed model files the user provides).

Anny's first construction builds its model data (~60 s, ~830 MB of intermediates); only the
~51 MB compact file is kept, in :func:`anny_cache_dir` (``~/.cache/humansplat/anny`` unless
``ANNY_CACHE_DIR`` or ``HUMANSPLAT_CACHE_DIR`` say otherwise). Build it once with
``python -m humansplat.prior.body --build-cache``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import pickle
import re
import sys
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from ..errors import MissingWeightsError
from ..geometry import axis_angle_to_matrix
from .parts import (ANNY_JOINT_BONES, KEYPOINT_NAMES, MESHCAPADE_PART_NAMES, NUM_PARTS,
                    PART_NAMES, anny_bone_parts, part_labels_from_weights)

__all__ = [
    "BodyOutput",
    "BodyModel",
    "AnnyBody",
    "SMPLBody",
    "load_body_model",
    "anny_cache_dir",
    "ensure_anny_cache",
    "resolve_smpl_file",
    "SMPL_PATH_ENV",
]

logger = logging.getLogger(__name__)

SMPL_PATH_ENV = "HUMANSPLAT_SMPL_PATH"


# ----------------------------------------------------------------------------------------
# rotations
# ----------------------------------------------------------------------------------------
def _as_rotmats(r: Tensor, batch_dims: int) -> Tensor:
    """Axis-angle [*batch,3] or matrices [*batch,3,3] (told apart by the number of
    dimensions, so a batch of three axis-angles is not mistaken for a matrix) -> matrices."""
    return axis_angle_to_matrix(r) if r.ndim == batch_dims + 1 else r


# ----------------------------------------------------------------------------------------
# the interface
# ----------------------------------------------------------------------------------------
@dataclass
class BodyOutput:
    """A posed body in world space (metres, +y up, facing +z before ``global_orient``).

    vertices:        [B,V,3] (or [B,n,3] for the ``vertex_ids`` asked for).
    joints:          [B,J,3] joint (bone head) positions.
    keypoints:       [B,23,3] in ``parts.KEYPOINT_NAMES`` order (COCO-17 + 6 foot points).
    bone_transforms: [B,J,4,4] rigid transforms taking rest-space points to the posed world
                     (linear blend skinning with ``BodyModel.lbs_weights`` reposes anything
                     attached to the rest body, e.g. Gaussians).
    rest_vertices:   [B,V,3] the shaped body in its rest pose, root at the origin (rest space).
    """

    vertices: Tensor
    joints: Tensor
    keypoints: Tensor
    bone_transforms: Tensor
    rest_vertices: Tensor

    def __getitem__(self, i: int) -> "BodyOutput":
        """Batch element ``i``, keeping a batch dimension of 1."""
        return BodyOutput(*(getattr(self, f.name)[i:i + 1] for f in fields(self)))


class BodyModel(torch.nn.Module):
    """Common interface of the body models (see the module docstring for the frame).

    Attributes (buffers move with ``.to()``):
      faces [F,3] int64, part_labels [V] int64 in 0..23 (``parts.PART_NAMES`` order),
      lbs_weights [V,J], joint_names (J), joint_parents (J, root -1), smpl_joints [24] int64
      (the joint playing each SMPL joint, -1 if none), shape_names (S), shape_default [S],
      shape_bounds (lo [S], hi [S]) or None, natural_smpl_pose [24,3] (a relaxed standing
      pose, axis-angle per SMPL joint, used as the fitter's pose prior mean).
    """

    name: str = "body"
    joint_names: list[str]
    joint_parents: list[int]
    shape_names: list[str]

    def __init__(self) -> None:
        super().__init__()
        self._symmetry: Tensor | None = None

    # -- sizes ---------------------------------------------------------------------------
    @property
    def num_vertices(self) -> int:
        return int(self.lbs_weights.shape[0])

    @property
    def num_joints(self) -> int:
        return int(self.lbs_weights.shape[1])

    @property
    def num_shape(self) -> int:
        return int(self.shape_default.shape[0])

    @property
    def dtype(self) -> torch.dtype:
        return self.lbs_weights.dtype

    @property
    def shape_bounds(self) -> tuple[Tensor, Tensor] | None:
        """(lo [S], hi [S]) when the shape parameters are bounded (Anny), else None."""
        lo, hi = getattr(self, "_shape_lo", None), getattr(self, "_shape_hi", None)
        return None if lo is None else (lo, hi)

    @property
    def device(self) -> torch.device:
        return self.lbs_weights.device

    # -- helpers shared by the implementations -------------------------------------------
    def _batch_inputs(self, body_pose, shape, global_orient, transl, scale):
        """Validate and broadcast the forward inputs to one batch size B."""
        J, S = self.num_joints, self.num_shape
        dt, dev = self.dtype, self.device
        if body_pose is not None:
            body_pose = torch.as_tensor(body_pose, dtype=dt, device=dev)
            if body_pose.ndim == 2 and body_pose.shape[1] == 3 * (J - 1):
                body_pose = body_pose.reshape(-1, J - 1, 3)
            if body_pose.ndim not in (3, 4) or body_pose.shape[1] != J - 1 or \
                    body_pose.shape[2:] not in ((3,), (3, 3)):
                raise ValueError(f"body_pose must be [B,{J - 1},3] or [B,{J - 1},3,3] for "
                                 f"{self.name}, got {tuple(body_pose.shape)}")
            body_pose = _as_rotmats(body_pose, 2)
        if shape is not None:
            shape = torch.as_tensor(shape, dtype=dt, device=dev)
            if shape.ndim == 1:
                shape = shape[None]
            if shape.ndim != 2 or shape.shape[1] != S:
                raise ValueError(f"shape must be [B,{S}] ({', '.join(self.shape_names)}) "
                                 f"for {self.name}, got {tuple(shape.shape)}")
        if global_orient is not None:
            global_orient = torch.as_tensor(global_orient, dtype=dt, device=dev)
            if global_orient.ndim == 1:
                global_orient = global_orient[None]
            if global_orient.shape[1:] not in ((3,), (3, 3)):
                raise ValueError("global_orient must be axis-angle [B,3] or matrices [B,3,3], "
                                 f"got {tuple(global_orient.shape)}")
            global_orient = _as_rotmats(global_orient, 1)
        if transl is not None:
            transl = torch.as_tensor(transl, dtype=dt, device=dev)
            if transl.ndim == 1:
                transl = transl[None]
            if transl.ndim != 2 or transl.shape[1] != 3:
                raise ValueError(f"transl must be [B,3], got {tuple(transl.shape)}")
        if scale is not None:
            scale = torch.as_tensor(scale, dtype=dt, device=dev).reshape(-1)
        sizes = {t.shape[0] for t in (body_pose, shape, global_orient, transl, scale)
                 if t is not None}
        sizes.discard(1)
        if len(sizes) > 1:
            raise ValueError(f"inconsistent batch sizes in the body inputs: {sorted(sizes)}")
        B = sizes.pop() if sizes else 1
        eye3 = torch.eye(3, dtype=dt, device=dev)
        if body_pose is None:
            body_pose = eye3.expand(B, J - 1, 3, 3)
        if shape is None:
            shape = self.shape_default[None]
        if global_orient is None:
            global_orient = eye3[None]
        if transl is None:
            transl = torch.zeros(1, 3, dtype=dt, device=dev)
        if scale is None:
            scale = torch.ones(1, dtype=dt, device=dev)
        return (body_pose.expand(B, -1, -1, -1), shape.expand(B, -1),
                global_orient.expand(B, -1, -1), transl.expand(B, -1), scale.expand(B), B)

    @staticmethod
    def _global(R_g: Tensor, transl: Tensor, scale: Tensor) -> Tensor:
        """[B,4,4] x -> transl + scale * R_g x."""
        G = torch.zeros(R_g.shape[0], 4, 4, dtype=R_g.dtype, device=R_g.device)
        G[:, :3, :3] = scale[:, None, None] * R_g
        G[:, :3, 3] = transl
        G[:, 3, 3] = 1.0
        return G

    @staticmethod
    def _apply(T: Tensor, x: Tensor) -> Tensor:
        """Rigid/similarity transforms [B,4,4] or [B,N,4,4] applied to points [B,N,3]."""
        if T.ndim == 3:
            return x @ T[:, :3, :3].transpose(-1, -2) + T[:, None, :3, 3]
        return (T[..., :3, :3] @ x[..., None]).squeeze(-1) + T[..., :3, 3]

    def vertex_transforms(self, bone_transforms: Tensor,
                          vertex_ids: Tensor | None = None) -> Tensor:
        """Per-vertex blended transforms [B,n,3,4] (rows of [R | t]) of the vertices
        ``vertex_ids`` (or all): sum_j w_vj T_j."""
        W = self.lbs_weights if vertex_ids is None else self.lbs_weights[vertex_ids]
        B, J = bone_transforms.shape[:2]
        return (W @ bone_transforms[:, :, :3, :].reshape(B, J, 12)).reshape(B, -1, 3, 4)

    def skin(self, rest_points: Tensor, bone_transforms: Tensor,
             vertex_ids: Tensor | None = None) -> Tensor:
        """Linear blend skinning: rest-space points [B,n,3] (the vertices ``vertex_ids``, or
        all) -> posed [B,n,3] with ``bone_transforms`` [B,J,4,4]."""
        T = self.vertex_transforms(bone_transforms, vertex_ids)
        return (T[..., :3] @ rest_points[..., None]).squeeze(-1) + T[..., 3]

    def body_pose_from_smpl(self, smpl_pose: Tensor) -> Tensor:
        """Scatter a per-SMPL-joint pose [B,24,3] (axis-angle; joint 0 = root, ignored) into
        this model's ``body_pose`` [B,J-1,3]; joints without a counterpart stay at rest."""
        if smpl_pose.ndim != 3 or smpl_pose.shape[1:] != (NUM_PARTS, 3):
            raise ValueError(f"smpl_pose must be [B,24,3], got {tuple(smpl_pose.shape)}")
        idx = self.smpl_joints[1:]
        keep = idx > 0
        out = smpl_pose.new_zeros(smpl_pose.shape[0], self.num_joints - 1, 3)
        return out.index_copy(1, idx[keep] - 1, smpl_pose[:, 1:][:, keep])

    @property
    def symmetry(self) -> Tensor:
        """[V] int64: the vertex mirroring each vertex across the x = 0 plane in the rest
        pose (left <-> right); computed once by nearest neighbour on the rest mesh."""
        if self._symmetry is None:
            from scipy.spatial import cKDTree

            with torch.no_grad():
                rest = self.forward().rest_vertices[0].cpu().double().numpy()
            mirrored = rest * np.array([-1.0, 1.0, 1.0])
            _, idx = cKDTree(rest).query(mirrored)
            self._symmetry = torch.as_tensor(idx, dtype=torch.long)
        return self._symmetry.to(self.device)

    def forward(self, body_pose=None, shape=None, global_orient=None, transl=None,
                scale=None, *, vertex_ids: Tensor | None = None) -> BodyOutput:
        raise NotImplementedError


# ----------------------------------------------------------------------------------------
# Anny
# ----------------------------------------------------------------------------------------
# Anny's native frame is z-up, facing -y, left at +x (checked: the nose is at -y, the ears
# behind it). Ours = C @ anny: x -> x, z -> y, -y -> z (a proper rotation, -90 deg about x).
_ANNY_TO_WORLD = ((1.0, 0.0, 0.0), (0.0, 0.0, 1.0), (0.0, -1.0, 0.0))
_ANNY_CONFIG = dict(rig="anny", topology="anny", local_changes="none", facial_actions="none",
                    phenotypes="default", pose_parameterization="local-ref",
                    skinning_method="lbs")
_ANNY_INTERMEDIATES = ("load_data_", "build_model_data_")


def anny_cache_dir() -> Path:
    """Where Anny's compact model file lives: ``$ANNY_CACHE_DIR``, else
    ``$HUMANSPLAT_CACHE_DIR/anny``, else ``~/.cache/humansplat/anny``."""
    if os.environ.get("ANNY_CACHE_DIR"):
        return Path(os.environ["ANNY_CACHE_DIR"]).expanduser()
    if os.environ.get("HUMANSPLAT_CACHE_DIR"):
        return Path(os.environ["HUMANSPLAT_CACHE_DIR"]).expanduser() / "anny"
    return Path.home() / ".cache" / "humansplat" / "anny"


@contextlib.contextmanager
def _file_lock(path: Path):
    """Exclusive inter-process lock (so parallel first runs build Anny once)."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock, a concurrent build just repeats the work
        yield
        return
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@contextlib.contextmanager
def _anny_cache_path(cache_dir: Path):
    from anny.paths import get_anny_cache_path, set_anny_cache_path

    previous = get_anny_cache_path()
    set_anny_cache_path(cache_dir)
    try:
        yield
    finally:
        set_anny_cache_path(previous)


def _construct_anny(cache_dir: Path):
    """anny.Anny with our configuration, its data cached in ``cache_dir``. Builds the data
    (~60 s) when the compact file is missing and deletes the intermediates it wrote."""
    import anny

    cache_dir.mkdir(parents=True, exist_ok=True)
    with _file_lock(cache_dir / ".build.lock"), _anny_cache_path(cache_dir):
        before = set(cache_dir.rglob("*.safetensors"))
        try:
            model = anny.Anny(**_ANNY_CONFIG)
        except Exception as err:  # a file truncated by an interrupted build: rebuild once
            compact = [p for p in before if p.name.startswith("build_compact_model_data_")]
            if not compact or isinstance(err, (ImportError, MemoryError)):
                raise
            logger.warning("Anny cache unreadable (%s); rebuilding it", err)
            for p in compact:
                p.unlink(missing_ok=True)
            before -= set(compact)
            model = anny.Anny(**_ANNY_CONFIG)
        new = set(cache_dir.rglob("*.safetensors")) - before
        for p in new:  # keep only the compact file: the rest is ~780 MB of build leftovers
            if p.name.startswith(_ANNY_INTERMEDIATES):
                p.unlink(missing_ok=True)
    return model


def ensure_anny_cache(cache_dir: str | Path | None = None) -> Path:
    """Make sure Anny's compact model file exists (building it once, ~60 s) and return the
    cache directory. Safe to call from parallel processes."""
    cache_dir = Path(cache_dir) if cache_dir is not None else anny_cache_dir()
    _construct_anny(cache_dir)
    return cache_dir


class AnnyBody(BodyModel):
    """The Anny body (13,718 vertices, 104 bones, 6 phenotypes), in our world frame.

    ``shape`` = phenotypes (gender 0 male .. 1 female, age, muscle, weight, height,
    proportions), each in [0,1], default 0.5. Keypoints come from Anny's COCO regressor,
    factorised through the skinning so they cost no vertex computation (exact: the regressor
    and LBS are both linear in the rest vertices)."""

    name = "anny"

    def __init__(self, cache_dir: str | Path | None = None, *, dtype=torch.float32,
                 device=None) -> None:
        super().__init__()
        import anny

        self._basis_cache: tuple | None = None  # see _rest_basis
        cache_dir = Path(cache_dir) if cache_dir is not None else anny_cache_dir()
        m = _construct_anny(cache_dir).to(dtype=dtype)
        if m.bone_orientation != "cached" or m.rest_orientation_refiner is not None \
                or m.root_identity_orientation or m.local_change_labels \
                or m.facial_action_labels:
            raise RuntimeError("unexpected Anny configuration for anny "
                               f"{getattr(anny, '__version__', '?')}; humansplat expects 0.6.2")
        self._anny = m  # kept for its kinematic chain and phenotype blending
        self.joint_names = list(m.bone_labels)
        self.joint_parents = [int(p) for p in m.bone_parents]
        self.shape_names = list(m.phenotype_labels)
        J = len(self.joint_names)

        C = torch.tensor(_ANNY_TO_WORLD, dtype=dtype)
        self.register_buffer("_C", C, persistent=False)
        self.register_buffer("faces", m.faces.to(torch.long).clone(), persistent=False)
        weights = m.dense_vertex_bone_weights.to(dtype)
        self.register_buffer("lbs_weights", weights, persistent=False)
        self.register_buffer("part_labels",
                             part_labels_from_weights(weights, anny_bone_parts(self.joint_names)),
                             persistent=False)
        self.register_buffer("smpl_joints", torch.tensor(
            [self.joint_names.index(b) if b else -1 for b in ANNY_JOINT_BONES]),
            persistent=False)
        S = len(self.shape_names)
        self.register_buffer("shape_default", torch.full((S,), 0.5, dtype=dtype),
                             persistent=False)
        self.register_buffer("_shape_lo", torch.zeros(S, dtype=dtype), persistent=False)
        self.register_buffer("_shape_hi", torch.ones(S, dtype=dtype), persistent=False)
        # Anny's rest pose is already a relaxed A-pose.
        self.register_buffer("natural_smpl_pose", torch.zeros(NUM_PARTS, 3, dtype=dtype),
                             persistent=False)
        # Rest vertices and bone heads are linear in the blendshape coefficients.
        self.register_buffer("_template", m.template_vertices, persistent=False)
        self.register_buffer("_blendshapes", m.blendshapes, persistent=False)

        # Keypoints: kp_k = sum_j T_j a_kj with a_kj = sum_v R_kv w_vj [x_v; 1] and x_v linear
        # in the blendshape coefficients c: a_kj = a0_kj + sum_c c_c ab_ckj (precomputed with
        # a sparse product over the regressor's and skinning's non-zeros).
        R = anny.KeypointsRegressor.coco(m).regression_weights.to(torch.float64)
        if R.shape[0] != len(KEYPOINT_NAMES):
            raise RuntimeError(f"anny's COCO regressor has {R.shape[0]} keypoints, expected 23")
        k_idx, v_idx = R.nonzero(as_tuple=True)
        w_v = m.vertex_bone_weights.to(torch.float64)[v_idx]  # [E,9]
        j_v = m.vertex_bone_indices[v_idx]  # [E,9]
        vals = R[k_idx, v_idx][:, None] * w_v
        rows = (k_idx[:, None] * J + j_v).reshape(-1)
        cols = v_idx[:, None].expand_as(j_v).reshape(-1)
        M = torch.sparse_coo_tensor(torch.stack([rows, cols]), vals.reshape(-1),
                                    (len(KEYPOINT_NAMES) * J, weights.shape[0]),
                                    check_invariants=True).coalesce()
        tmpl_h = torch.cat([m.template_vertices.to(torch.float64),
                            torch.ones(weights.shape[0], 1, dtype=torch.float64)], 1)
        nb = m.blendshapes.shape[0]
        a0 = torch.sparse.mm(M, tmpl_h).reshape(len(KEYPOINT_NAMES), J, 4)
        ab = torch.sparse.mm(M, m.blendshapes.to(torch.float64).permute(1, 0, 2).reshape(
            weights.shape[0], nb * 3)).reshape(len(KEYPOINT_NAMES), J, nb, 3)
        self.register_buffer("_kp_a0", a0.to(dtype), persistent=False)
        self.register_buffer("_kp_ab", ab.permute(2, 0, 1, 3).contiguous().to(dtype),
                             persistent=False)
        if device is not None:
            self.to(device)

    def _rest_basis(self, vertex_ids: Tensor | None) -> tuple[Tensor, Tensor]:
        """Blendshapes [nb,n,3] and template [n,3] of the vertices ``vertex_ids`` (or all).

        The last subset is kept: the body fit asks for the same vertices at every step, and
        gathering 136 blendshapes was over a third of a step. The cache is one immutable
        tuple, swapped whole, and holds the ids tensor itself (compared by identity and
        version), so concurrent runs can only miss it, never read another's subset."""
        if vertex_ids is None:
            return self._blendshapes, self._template
        if vertex_ids.is_inference():  # no version counter: an in-place change is invisible
            return self._blendshapes[:, vertex_ids], self._template[vertex_ids]
        hit = self._basis_cache
        if hit is not None and hit[0] is vertex_ids and hit[1] == vertex_ids._version \
                and hit[2].device == self._blendshapes.device \
                and hit[2].dtype == self._blendshapes.dtype:
            return hit[2], hit[3]
        blend, tmpl = self._blendshapes[:, vertex_ids], self._template[vertex_ids]
        self._basis_cache = (vertex_ids, vertex_ids._version, blend, tmpl)
        return blend, tmpl

    def forward(self, body_pose=None, shape=None, global_orient=None, transl=None,
                scale=None, *, vertex_ids: Tensor | None = None) -> BodyOutput:
        from anny.utils.kinematics import forward_kinematic

        body_pose, shape, R_g, transl, scale, B = self._batch_inputs(
            body_pose, shape, global_orient, transl, scale)
        m, C = self._anny, self._C
        dt, dev = shape.dtype, shape.device
        zeros = shape.new_zeros(B, 0)
        coeffs = m._get_phenotype_blendshape_coefficients(shape, zeros, zeros)  # [B,nb]
        # SMPL-style kinematics on the bind pose: each bone rotates about its rest head by
        # its pose in world-aligned axes, so zero pose = the mesh as modelled. (Anny's own
        # 'local-ref' poses start from re-oriented reference bones, ~1 cm off the mesh.)
        heads = m.template_bone_heads[None] + torch.einsum("ba,akd->bkd", coeffs,
                                                           m.bone_heads_blendshapes)
        rest_poses = torch.eye(4, dtype=dt, device=dev).repeat(B, self.num_joints, 1, 1)
        rest_poses[..., :3, 3] = heads
        deltas = torch.eye(4, dtype=dt, device=dev).repeat(B, self.num_joints, 1, 1)
        deltas[:, 1:, :3, :3] = C.T @ body_pose @ C  # our axes (y-up) -> anny's (z-up)
        T_anny, W_anny = forward_kinematic((m.kinematic_chain_levels,
                                            m.kinematic_chain_indices),
                                           rest_poses, deltas, "local-ref", None)
        # Anny's chain puts the root head at its origin. World: x = G C x_anny with
        # G = global(R_g, transl, scale); rest space: C (x_anny - h0). Bone transforms (ours):
        # T = G C T_anny [C^T | h0].
        h0 = heads[:, 0]
        G = self._global(R_g @ C, transl, scale)
        inv_rest = torch.zeros(B, 4, 4, dtype=dt, device=dev)
        inv_rest[:, :3, :3] = C.T
        inv_rest[:, :3, 3] = h0
        inv_rest[:, 3, 3] = 1.0
        T = G[:, None] @ T_anny @ inv_rest[:, None]  # [B,J,4,4]
        joints = self._apply(G, W_anny[:, :, :3, 3])

        # Keypoints through the factorised regressor (anny-frame rest points).
        a3 = self._kp_a0[None, ..., :3] + torch.einsum("ba,akjd->bkjd", coeffs, self._kp_ab)
        a = torch.cat([a3, self._kp_a0[None, ..., 3:].expand(B, -1, -1, -1)], -1)
        kp_anny = torch.einsum("bjrc,bkjc->bkr", T_anny[:, :, :3, :], a)
        keypoints = self._apply(G, kp_anny)

        blend, tmpl = self._rest_basis(vertex_ids)
        rest_anny = tmpl[None] + torch.einsum("ba,avd->bvd", coeffs, blend)
        rest = (rest_anny - h0[:, None]) @ C.T
        vertices = self.skin(rest, T, vertex_ids)
        return BodyOutput(vertices, joints, keypoints, T, rest)


# ----------------------------------------------------------------------------------------
# SMPL
# ----------------------------------------------------------------------------------------
_SMPL_GENDERS = {"neutral": "NEUTRAL", "male": "MALE", "female": "FEMALE"}
_SMPL_OFFICIAL = {"neutral": "basicmodel_neutral_lbs_10_207_0_v1.1.0.pkl",
                  "male": "basicmodel_m_lbs_10_207_0_v1.1.0.pkl",
                  "female": "basicmodel_f_lbs_10_207_0_v1.1.0.pkl"}
_SMPL_KEYS = ("v_template", "shapedirs", "posedirs", "J_regressor", "weights",
              "kintree_table", "f")
# COCO(+foot) keypoints from SMPL: body joints by index, face and foot points from smplx's
# vertex ids (its joint output appends nose, reye, leye, rear, lear, LBigToe, LSmallToe,
# LHeel, RBigToe, RSmallToe, RHeel after the 24 joints).
_SMPL_KEYPOINT_JOINTS = (24, 26, 25, 28, 27, 16, 17, 18, 19, 20, 21, 1, 2, 4, 5, 7, 8,
                         29, 32, 30, 33, 31, 34)
_SMPL_SEGMENTATION_FILES = ("smpl_vert_segmentation.json",)


def _smpl_candidates(gender: str) -> list[str]:
    g = _SMPL_GENDERS[gender]
    return [f"SMPL_{g}.pkl", f"SMPL_{g}.npz", f"smpl/SMPL_{g}.pkl", f"smpl/SMPL_{g}.npz",
            _SMPL_OFFICIAL[gender], f"smpl/{_SMPL_OFFICIAL[gender]}"]


def resolve_smpl_file(source: str | os.PathLike | None = None, gender: str = "neutral") -> Path:
    """Find an SMPL model file. ``source``: a file, a folder holding ``SMPL_<GENDER>.pkl``
    (or ``.npz``, or the official ``basicmodel_*`` names), or a Hugging Face Hub repo id
    (``owner/name``, optionally ``owner/name/path/in/repo.pkl``). Without a source,
    ``$HUMANSPLAT_SMPL_PATH`` is used. Raises MissingWeightsError saying where it looked."""
    if gender not in _SMPL_GENDERS:
        raise ValueError(f"gender must be one of {sorted(_SMPL_GENDERS)}, got {gender!r}")
    from_env = source is None
    if from_env:
        source = os.environ.get(SMPL_PATH_ENV)
        if not source:
            raise MissingWeightsError(
                "SMPL model files are licensed and not bundled: download them from "
                "https://smpl.is.tue.mpg.de and pass their path (or a Hub repo id), or set "
                f"${SMPL_PATH_ENV}")
    source = str(source)
    where = f"${SMPL_PATH_ENV}={source}" if from_env else source
    p = Path(source).expanduser()
    if p.is_file():
        return p
    if p.is_dir():
        for name in _smpl_candidates(gender):
            if (p / name).is_file():
                return p / name
        raise MissingWeightsError(f"no {gender} SMPL model in {where} (looked for "
                                  f"{', '.join(_smpl_candidates(gender))})")
    if re.fullmatch(r"[\w.-]+/[\w.-]+(/.+)?", source) and not source.startswith((".", "/")):
        return _smpl_from_hub(source, gender)
    raise MissingWeightsError(f"SMPL model not found: {where} is neither a file, a folder "
                              "nor a Hugging Face Hub repo id")


def _smpl_from_hub(spec: str, gender: str) -> Path:
    from huggingface_hub import hf_hub_download

    owner, name, *rest = spec.split("/", 2)
    repo_id = f"{owner}/{name}"
    names = [rest[0]] if rest else _smpl_candidates(gender)
    errors = []
    for filename in names:
        try:
            return Path(hf_hub_download(repo_id, filename))
        except Exception as err:  # not found, gated, offline: try the next name
            errors.append(f"{filename}: {type(err).__name__}")
    raise MissingWeightsError(f"could not get an SMPL model from the Hub repo {repo_id!r} "
                              f"({'; '.join(errors)})")


class _ChumpyStandIn:
    """Unpickles chumpy arrays (old SMPL .pkl files) without chumpy installed."""

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        self.__dict__.update(state if isinstance(state, dict) else {"x": state})

    def __array__(self, dtype=None, copy=None):
        x = self.__dict__.get("x")
        if x is None:
            raise MissingWeightsError("this SMPL .pkl holds chumpy expressions that cannot be "
                                      "read without chumpy; convert it to plain numpy first")
        return np.asarray(x, dtype=dtype)


class _SMPLUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if module.startswith("chumpy"):
            return _ChumpyStandIn
        return super().find_class(module, name)


def _read_smpl_file(path: Path) -> dict:
    """The SMPL arrays (``_SMPL_KEYS``) from a .pkl or .npz, as plain numpy."""
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                raw = {k: z[k] for k in z.files}
        else:
            with open(path, "rb") as fh:
                raw = _SMPLUnpickler(fh, encoding="latin1").load()
    except MissingWeightsError:
        raise
    except Exception as err:
        raise MissingWeightsError(f"could not read the SMPL model {path}: {err}") from err
    missing = [k for k in _SMPL_KEYS if k not in raw]
    if missing:
        raise MissingWeightsError(f"{path} is not an SMPL model: missing {missing}")
    out = {}
    for k in _SMPL_KEYS:
        v = raw[k]
        if hasattr(v, "toarray"):  # scipy.sparse J_regressor in the official files
            v = v.toarray()
        out[k] = np.asarray(v)
    return out


class SMPLBody(BodyModel):
    """SMPL (6,890 vertices, 24 joints, betas) through ``smplx``, from the user's licensed
    model file (see :func:`resolve_smpl_file`). SMPL's native frame is already ours.

    Part labels: Meshcapade's public ``smpl_vert_segmentation.json`` when found next to the
    model (or passed as ``segmentation``); otherwise the part with the largest skinning
    weight, which is how that public segmentation is defined (part i = joint i's region)."""

    name = "smpl"

    def __init__(self, source: str | os.PathLike | None = None, *, gender: str = "neutral",
                 num_betas: int = 10, segmentation: str | os.PathLike | None = None,
                 dtype=torch.float32, device=None) -> None:
        super().__init__()
        import smplx
        from smplx.utils import Struct

        path = resolve_smpl_file(source, gender)
        data = _read_smpl_file(path)
        V = data["v_template"].shape[0]
        if data["weights"].shape != (V, NUM_PARTS):
            raise MissingWeightsError(f"{path}: expected SMPL skinning weights [{V},24], got "
                                      f"{data['weights'].shape}")
        if V <= max(_smpl_vertex_ids().values()):
            raise MissingWeightsError(f"{path}: {V} vertices is not the SMPL topology (6890)")
        self.smpl = smplx.SMPL(str(path), data_struct=Struct(**data), num_betas=num_betas,
                               dtype=dtype, create_betas=False, create_global_orient=False,
                               create_body_pose=False, create_transl=False)
        self.model_path = path
        self.joint_names = list(PART_NAMES)
        self.joint_parents = [int(p) for p in self.smpl.parents]
        self.shape_names = [f"beta{i}" for i in range(self.smpl.num_betas)]
        self.register_buffer("faces", torch.as_tensor(data["f"].astype(np.int64)),
                             persistent=False)
        self.register_buffer("lbs_weights", self.smpl.lbs_weights.clone(), persistent=False)
        self.register_buffer("smpl_joints", torch.arange(NUM_PARTS), persistent=False)
        self.register_buffer("shape_default", torch.zeros(self.smpl.num_betas, dtype=dtype),
                             persistent=False)
        natural = torch.zeros(NUM_PARTS, 3, dtype=dtype)
        natural[PART_NAMES.index("left_arm"), 2] = -0.8  # arms down ~45 deg, like Anny's
        natural[PART_NAMES.index("right_arm"), 2] = 0.8
        self.register_buffer("natural_smpl_pose", natural, persistent=False)
        seg = Path(segmentation) if segmentation is not None else next(
            (path.parent / n for n in _SMPL_SEGMENTATION_FILES if (path.parent / n).is_file()),
            None)
        labels = (_read_segmentation(seg, V) if seg is not None else
                  part_labels_from_weights(self.lbs_weights, range(NUM_PARTS)))
        self.register_buffer("part_labels", labels, persistent=False)
        if device is not None:
            self.to(device)

    def forward(self, body_pose=None, shape=None, global_orient=None, transl=None,
                scale=None, *, vertex_ids: Tensor | None = None) -> BodyOutput:
        from smplx.lbs import batch_rigid_transform, blend_shapes, vertices2joints

        body_pose, shape, R_g, transl, scale, B = self._batch_inputs(
            body_pose, shape, global_orient, transl, scale)
        s = self.smpl
        v_shaped = s.v_template[None] + blend_shapes(shape, s.shapedirs)  # [B,V,3]
        J_rest = vertices2joints(s.J_regressor, v_shaped)  # [B,24,3]
        eye3 = torch.eye(3, dtype=shape.dtype, device=shape.device)
        rots = torch.cat([eye3.expand(B, 1, 3, 3), body_pose], 1)  # root: identity here
        pose_feature = (body_pose - eye3).reshape(B, -1)
        v_posed = v_shaped + (pose_feature @ s.posedirs).reshape(B, -1, 3)  # correctives
        J_posed, A = batch_rigid_transform(rots, J_rest, s.parents)  # A: rest -> posed
        j0 = J_rest[:, 0]
        G = self._global(R_g, transl, scale)
        shift = torch.eye(4, dtype=shape.dtype, device=shape.device).repeat(B, 1, 1)
        shift[:, :3, 3] = -j0
        unshift = shift.clone()
        unshift[:, :3, 3] = j0
        T = (G @ shift)[:, None] @ A @ unshift[:, None]  # rest space has the root at 0
        rest = v_shaped - j0[:, None]
        posed_rest = v_posed - j0[:, None]
        if vertex_ids is not None:
            rest, posed_rest = rest[:, vertex_ids], posed_rest[:, vertex_ids]
        vertices = self.skin(posed_rest, T, vertex_ids)
        all_vertices = vertices if vertex_ids is None else self.skin(v_posed - j0[:, None], T)
        joints = self._apply(G @ shift, J_posed)
        extra = s.vertex_joint_selector(all_vertices, joints)  # appends face/foot points
        keypoints = extra[:, list(_SMPL_KEYPOINT_JOINTS)]
        return BodyOutput(vertices, joints, keypoints, T, rest)


def _smpl_vertex_ids() -> dict[str, int]:
    from smplx.vertex_ids import vertex_ids

    return vertex_ids["smplh"]


def _read_segmentation(path: Path, num_vertices: int) -> Tensor:
    """Per-vertex labels [V] from a Meshcapade-style {part name: [vertex ids]} JSON."""
    try:
        seg = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise MissingWeightsError(f"could not read the SMPL segmentation {path}: {err}") from err
    labels = torch.full((num_vertices,), -1, dtype=torch.long)
    for name, ids in seg.items():
        ours = MESHCAPADE_PART_NAMES.get(name, name)
        if ours not in PART_NAMES:
            raise ValueError(f"segmentation {path}: unknown part {name!r}")
        labels[torch.as_tensor(ids, dtype=torch.long)] = PART_NAMES.index(ours)
    if (labels < 0).any():
        raise ValueError(f"segmentation {path} leaves {int((labels < 0).sum())} vertices "
                         "without a part")
    return labels


# ----------------------------------------------------------------------------------------
def load_body_model(name: str = "anny", **kwargs) -> BodyModel:
    """``"anny"`` (default, offline) or ``"smpl"`` (needs the licensed files; kwargs go to
    :class:`SMPLBody`: ``source``, ``gender``, ...)."""
    if name == "anny":
        return AnnyBody(**kwargs)
    if name == "smpl":
        return SMPLBody(**kwargs)
    raise ValueError(f"body model must be 'anny' or 'smpl', got {name!r}")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m humansplat.prior.body",
                                 description="Body-model utilities.")
    ap.add_argument("--build-cache", action="store_true",
                    help="build Anny's compact model file once (~60 s) and keep only it")
    ap.add_argument("--cache-dir", default=None, help=f"default: {anny_cache_dir()}")
    args = ap.parse_args(argv)
    if not args.build_cache:
        ap.print_help()
        return 0
    from ..logs import configure

    configure()  # our lines only (anny's INFO records with HUMANSPLAT_LOG_LEVEL=debug)
    t0 = time.perf_counter()
    d = ensure_anny_cache(args.cache_dir)
    size = sum(p.stat().st_size for p in d.rglob("*.safetensors")) / 2**20
    print(f"Anny cache ready in {d} ({size:.0f} MiB, {time.perf_counter() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
