"""Synthetic dressed people: Anny bodies with procedural garments, hair and shoes.

A :class:`Subject` is everything random about one person, drawn deterministically from a
seed by :func:`sample_subject`: phenotype (gender, age from teens up, muscle, weight,
height, proportions), a pose (standing, walking, varied arms, some challenging ones), skin
tone, outfit, hair, shoes, fabrics, and its placement in front of the input camera.
:meth:`Subject.mesh` builds the dressed mesh in any pose (the subject's own by default), so
the same person can be reposed.

Garments (all in the body's rest space, then skinned with the body's own weights):

- *shells*: a region of the body surface (chosen by part labels and rest-space coordinates:
  position along the arm or leg, height, front/back) copied and pushed out along the rest
  normals by a thickness that tapers over the last rings of vertices at the hems. Shirts,
  t-shirts, jackets (optionally open at the front), trousers, shorts, tights, shoes, hair
  caps and long hair down the back. Layering comes from the thicknesses (outer garments are
  thicker) and the exact z-buffer.
- *skirts and dresses*: a separate flared surface of rings from the waist down, built in the
  pelvis frame of the *posed* body so it hangs around the legs (each ring encloses the body
  vertices at its height, the hem only ever widens, plus flare and folds) instead of
  following them.

Appearance is evaluated per pixel (:mod:`humansplat.data.subject_render`) from each surface
point's canonical (rest-pose) coordinates, so stripes, checks and prints follow the body in
every pose. World frame: metres, +y up, facing +z (humansplat/cameras.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from ..geometry import vertex_normals
from ..prior.parts import KEYPOINT_NAMES, NUM_PARTS, PART_FLIP, PART_NAMES

__all__ = [
    "Material",
    "Outfit",
    "Subject",
    "SubjectMesh",
    "sample_subject",
    "sample_pose_natural",
    "fit_placement",
    "place_subject",
    "build_mesh",
    "default_body",
    "subject_seed",
    "MATERIAL_KINDS",
    "FOREGROUND_RATIO",
    "INPUT_SIZE",
]

MATERIAL_KINDS = ("skin", "solid", "stripes", "checks", "dots", "blotch", "denim", "hair")
FOREGROUND_RATIO = 0.85  # as humansplat.prior.preprocess's default crop
INPUT_SIZE = 256  # the input photo's side, px

_P = {n: i for i, n in enumerate(PART_NAMES)}


def _parts(*names: str) -> list[int]:
    return [_P[n] for n in names]


# ----------------------------------------------------------------------------------------
# colours
# ----------------------------------------------------------------------------------------
# Skin tones from light to dark (sRGB), interpolated.
_SKIN = np.array([(250, 222, 200), (240, 200, 172), (226, 180, 142), (204, 152, 112),
                  (170, 118, 82), (126, 84, 58), (92, 60, 42), (62, 42, 32)], np.float64) / 255
_FABRIC = np.array([
    (30, 40, 80), (25, 25, 28), (235, 235, 230), (130, 130, 135), (60, 60, 65),
    (200, 180, 150), (160, 140, 100), (90, 95, 50), (60, 85, 130), (110, 140, 180),
    (170, 30, 35), (110, 25, 40), (230, 150, 170), (210, 170, 50), (220, 110, 40),
    (40, 110, 60), (30, 120, 120), (120, 170, 220), (100, 60, 130), (110, 70, 40),
    (240, 230, 200), (180, 160, 210), (240, 120, 100), (40, 70, 170)], np.float64) / 255
_DENIM = np.array([(45, 65, 105), (60, 85, 130), (95, 125, 165), (35, 40, 55),
                   (120, 145, 175)], np.float64) / 255
_HAIR = np.array([(22, 19, 17), (48, 34, 24), (84, 58, 36), (130, 94, 58), (196, 164, 108),
                  (140, 62, 32), (150, 148, 145), (206, 204, 198)], np.float64) / 255
_HAIR_P = np.array([0.26, 0.22, 0.17, 0.1, 0.1, 0.05, 0.06, 0.04])
_IRIS = np.array([(60, 36, 20), (95, 62, 35), (70, 100, 130), (80, 100, 60), (30, 22, 18)],
                 np.float64) / 255


def _fabric_color(rng: np.random.Generator) -> np.ndarray:
    if rng.random() < 0.7:
        c = _FABRIC[rng.integers(len(_FABRIC))]
        return np.clip(c * rng.uniform(0.85, 1.15) + rng.normal(0, 0.03, 3), 0, 1)
    import colorsys

    return np.array(colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.15, 0.8),
                                        rng.uniform(0.2, 0.95)))


def _skin_color(t: float) -> np.ndarray:
    x = t * (len(_SKIN) - 1)
    i = min(int(x), len(_SKIN) - 2)
    return _SKIN[i] + (x - i) * (_SKIN[i + 1] - _SKIN[i])


# ----------------------------------------------------------------------------------------
# materials
# ----------------------------------------------------------------------------------------
@dataclass
class Material:
    """A surface appearance, evaluated per pixel from canonical (rest-pose) coordinates.

    kind: one of :data:`MATERIAL_KINDS`; color/color2/color3: RGB in [0,1]; period: pattern
    period in metres; direction: unit vector of stripes; duty: stripe/dot fraction;
    params: kind-specific extras (skin: facial feature positions and colours)."""

    kind: str
    color: tuple[float, float, float]
    color2: tuple[float, float, float] = (1.0, 1.0, 1.0)
    color3: tuple[float, float, float] = (0.5, 0.5, 0.5)
    period: float = 0.05
    direction: tuple[float, float, float] = (0.0, 1.0, 0.0)
    duty: float = 0.5
    params: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in MATERIAL_KINDS:
            raise ValueError(f"material kind must be one of {MATERIAL_KINDS}, got {self.kind!r}")


def _tuple(c) -> tuple[float, float, float]:
    return tuple(float(x) for x in np.clip(c, 0.0, 1.0))


def _fabric(rng: np.random.Generator, *, denim_ok: bool = False,
            plain_bias: float = 0.45) -> Material:
    c1 = _fabric_color(rng)
    u = rng.random()
    if denim_ok and u < 0.45:
        return Material("denim", _tuple(_DENIM[rng.integers(len(_DENIM))]))
    u = rng.random()
    if u < plain_bias:
        return Material("solid", _tuple(c1))
    c2 = _fabric_color(rng)
    if np.abs(c2 - c1).sum() < 0.3:  # patterns need contrast
        c2 = np.clip(1.0 - c1 * rng.uniform(0.6, 1.0), 0, 1)
    kind = rng.choice(["stripes", "checks", "dots", "blotch"], p=[0.35, 0.25, 0.2, 0.2])
    if kind == "stripes":
        # mostly horizontal (breton), sometimes vertical (pinstripes) or diagonal
        d = rng.choice(3, p=[0.6, 0.25, 0.15])
        direction = [(0.0, 1.0, 0.0), (1.0, 0.0, 0.0), (0.7071, 0.7071, 0.0)][d]
        return Material("stripes", _tuple(c1), _tuple(c2), period=rng.uniform(0.012, 0.07),
                        direction=direction, duty=rng.uniform(0.2, 0.6))
    if kind == "checks":
        return Material("checks", _tuple(c1), _tuple(c2), _tuple((c1 + c2) / 2),
                        period=rng.uniform(0.02, 0.08))
    if kind == "dots":
        return Material("dots", _tuple(c1), _tuple(c2), period=rng.uniform(0.02, 0.06),
                        duty=rng.uniform(0.15, 0.35))
    return Material("blotch", _tuple(c1), _tuple(c2), _tuple(_fabric_color(rng)),
                    period=rng.uniform(0.04, 0.15))


# ----------------------------------------------------------------------------------------
# the outfit
# ----------------------------------------------------------------------------------------
@dataclass
class Outfit:
    """What a subject wears. Lengths along limbs are fractions t of the limb (0 at the
    shoulder/hip joint, 1 at the wrist/ankle); heights are metres in rest space (root at 0).

    top: "tshirt" | "longsleeve" | "tank" | "none"; jacket: bool (over the top, optionally
    open); bottom: "trousers" | "shorts" | "skirt" | "dress" (dress: the top's region and the
    skirt share the dress material; top is then the bodice) ; tights under skirts;
    hair: "none" | "short" | "medium" | "long"; shoes: "sneakers" | "boots" | "none".
    Materials index :attr:`Subject.materials`."""

    top: str = "tshirt"
    sleeve: float = 0.35
    top_hem: float = 0.02
    neck_drop: float = 0.03
    top_thickness: float = 0.012
    top_material: int = 1
    jacket: bool = False
    jacket_open: float = 0.0
    jacket_hem: float = -0.06
    jacket_thickness: float = 0.03
    jacket_material: int = 0
    bottom: str = "trousers"
    leg_length: float = 0.95
    waist: float = 0.08
    bottom_thickness: float = 0.009
    bottom_material: int = 2
    skirt_flare: float = 0.25
    skirt_folds: int = 7
    skirt_fold_amp: float = 0.04
    tights: bool = False
    tights_material: int = 0
    hair: str = "short"
    hair_front: float = 0.045
    hair_back: float = -0.06
    hair_length: float = 0.3
    hair_width: float = 0.1
    hair_thickness: float = 0.015
    hair_volume: float = 0.02
    hair_material: int = 3
    shoes: str = "sneakers"
    shoe_top: float = 0.93
    shoe_thickness: float = 0.012
    shoe_material: int = 4


@dataclass
class Subject:
    """One synthetic person (see the module docs). ``smpl_pose`` [24,3] axis-angle per SMPL
    joint (root ignored; ``global_orient`` is the yaw), ``shape`` [6] Anny phenotypes,
    ``yaw_deg`` the turn away from the input camera, ``scale``/``transl`` the placement
    (the GT body: ``model(body_pose_from_smpl(smpl_pose), shape, yaw, transl, scale)``)."""

    seed: int
    shape: np.ndarray
    smpl_pose: np.ndarray
    yaw_deg: float
    skin_tone: float
    outfit: Outfit
    materials: list[Material]
    pose_kind: str
    hard: bool = False
    scale: float = 1.0
    transl: np.ndarray = field(default_factory=lambda: np.zeros(3))
    body: object = field(default=None, repr=False, compare=False)

    @property
    def model(self):
        return self.body if self.body is not None else default_body()

    def describe(self) -> dict:
        """JSON-able summary (what is stored with each sample)."""
        o = self.outfit
        return {"seed": int(self.seed), "shape": [round(float(x), 4) for x in self.shape],
                "pose": self.pose_kind, "yaw_deg": round(float(self.yaw_deg), 2),
                "scale": round(float(self.scale), 4),
                "transl": [round(float(x), 4) for x in self.transl],
                "skin_tone": round(float(self.skin_tone), 3), "top": o.top,
                "jacket": o.jacket, "bottom": o.bottom, "hair": o.hair, "shoes": o.shoes,
                "materials": [m.kind for m in self.materials], "hard": self.hard}

    # -- geometry ------------------------------------------------------------------------
    def body_params(self, pose=None) -> dict[str, Tensor]:
        """Forward arguments of the placed GT body (``pose``: SMPL [24,3] or the model's
        body_pose [J-1,3]; default the subject's own)."""
        m = self.model
        dt = m.dtype
        p = torch.as_tensor(self.smpl_pose if pose is None else pose, dtype=dt)
        if p.shape == (NUM_PARTS, 3):
            body_pose = m.body_pose_from_smpl(p[None])
        elif p.shape == (m.num_joints - 1, 3):
            body_pose = p[None]
        else:
            raise ValueError(f"pose must be SMPL [24,3] or body_pose [{m.num_joints - 1},3], "
                             f"got {tuple(p.shape)}")
        return {"body_pose": body_pose, "shape": torch.as_tensor(self.shape, dtype=dt)[None],
                "global_orient": torch.tensor([[0.0, math.radians(self.yaw_deg), 0.0]],
                                              dtype=dt),
                "transl": torch.as_tensor(self.transl, dtype=dt)[None],
                "scale": torch.tensor([self.scale], dtype=dt)}

    def mesh(self, pose=None, *, placed: bool = True) -> "SubjectMesh":
        """The dressed mesh in ``pose`` (SMPL [24,3] / body_pose [J-1,3]; default the
        subject's own), placed in front of the input camera (``placed=False``: root at the
        origin, scale 1, still turned by the yaw)."""
        params = self.body_params(pose)
        if not placed:
            params["transl"] = torch.zeros_like(params["transl"])
            params["scale"] = torch.ones_like(params["scale"])
        with torch.no_grad():
            return build_mesh(self, params)


@dataclass
class SubjectMesh:
    """A dressed subject, posed, in world space.

    vertices [N,3], faces [F,3] int64, canonical [N,3] (rest-pose coordinates: where the
    fabric patterns are evaluated), normals [N,3] (outward, posed), labels [N] int64 (the
    body part under each vertex, 0..23), face_material [F] int64 into ``materials``;
    n_body: the first n_body vertices are the naked body; body: the GT body's
    ``BodyOutput`` (batch 1); layers: name -> (first vertex, count) of each garment."""

    vertices: Tensor
    faces: Tensor
    canonical: Tensor
    normals: Tensor
    labels: Tensor
    face_material: Tensor
    materials: list[Material]
    n_body: int
    body: object
    layers: dict[str, tuple[int, int]] = field(default_factory=dict)


# ----------------------------------------------------------------------------------------
# the body model and its fixed tables
# ----------------------------------------------------------------------------------------
_BODY = None


def default_body():
    """A process-wide AnnyBody (loaded once)."""
    global _BODY
    if _BODY is None:
        from ..prior.body import AnnyBody

        _BODY = AnnyBody()
    return _BODY


@dataclass
class _Tables:
    """Shape-independent per-model data: adjacency (scipy CSR), faces, labels, whether the
    faces wind outward."""

    adjacency: object
    faces: np.ndarray
    labels: np.ndarray
    outward: bool


_TABLES: dict[int, _Tables] = {}


def _tables(model) -> _Tables:
    key = id(model)
    t = _TABLES.get(key)
    if t is None:
        import scipy.sparse as sp

        f = model.faces.cpu().numpy()
        V = model.num_vertices
        e = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
        A = sp.coo_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(V, V))
        A = ((A + A.T) > 0).astype(np.float32).tocsr()
        with torch.no_grad():
            rest = model().rest_vertices[0].double().numpy()
        a, b, c = rest[f[:, 0]], rest[f[:, 1]], rest[f[:, 2]]
        vol = float((a * np.cross(b, c)).sum())
        t = _Tables(A, f, model.part_labels.cpu().numpy(), vol > 0)
        _TABLES[key] = t
    return t


# ----------------------------------------------------------------------------------------
# rest-space body geometry used to select garment regions
# ----------------------------------------------------------------------------------------
@dataclass
class _Rest:
    verts: np.ndarray  # [V,3] rest vertices (root at 0)
    normals: np.ndarray  # [V,3] outward
    labels: np.ndarray  # [V]
    joints: dict  # SMPL joint name -> [3]
    keypoints: dict  # keypoint name -> [3]
    t_arm: np.ndarray  # [V] position along the arm (0 shoulder joint .. 1 wrist), nan off-arm
    t_leg: np.ndarray  # [V] position along the leg (0 hip joint .. 1 ankle), nan off-leg
    side: np.ndarray  # [V] +1 left (x > 0), -1 right


_ARM_PARTS = {"left": _parts("left_shoulder", "left_arm", "left_forearm", "left_hand",
                             "left_hand_index"),
              "right": _parts("right_shoulder", "right_arm", "right_forearm", "right_hand",
                              "right_hand_index")}
_LEG_PARTS = {"left": _parts("left_up_leg", "left_leg", "left_foot", "left_toe_base"),
              "right": _parts("right_up_leg", "right_leg", "right_foot", "right_toe_base")}


def _rest_geometry(model, shape: Tensor) -> _Rest:
    tab = _tables(model)
    with torch.no_grad():
        out = model(shape=shape[None])
    rest = out.rest_vertices[0].double().numpy()
    js = out.joints[0].double().numpy()
    joints = {n: js[int(model.smpl_joints[i])] for i, n in enumerate(PART_NAMES)
              if int(model.smpl_joints[i]) >= 0}
    kps = {n: out.keypoints[0, i].double().numpy() for i, n in enumerate(KEYPOINT_NAMES)}
    # the rest mesh is closed, but its winding comes from the table (tab.outward)
    normals = vertex_normals(torch.from_numpy(rest), torch.from_numpy(tab.faces),
                             outward=False).numpy() * (1.0 if tab.outward else -1.0)
    V = rest.shape[0]
    t_arm = np.full(V, np.nan)
    t_leg = np.full(V, np.nan)
    for side in ("left", "right"):
        a, w = joints[f"{side}_arm"], joints[f"{side}_hand"]
        sel = np.isin(tab.labels, _ARM_PARTS[side])
        d = w - a
        t_arm[sel] = (rest[sel] - a) @ d / (d @ d)
        h, k = joints[f"{side}_up_leg"], joints[f"{side}_foot"]
        sel = np.isin(tab.labels, _LEG_PARTS[side])
        d = k - h
        t_leg[sel] = (rest[sel] - h) @ d / (d @ d)
    return _Rest(rest, normals, tab.labels, joints, kps, t_arm, t_leg,
                 np.where(rest[:, 0] >= 0, 1, -1))


# ----------------------------------------------------------------------------------------
# garment regions (boolean masks over body vertices) and thicknesses
# ----------------------------------------------------------------------------------------
def _in(labels: np.ndarray, names: Sequence[str]) -> np.ndarray:
    return np.isin(labels, _parts(*names))


_TORSO = ("hips", "spine", "spine1", "spine2", "left_shoulder", "right_shoulder")


def _top_region(r: _Rest, sleeve: float, hem: float, neck_drop: float,
                open_front: float = 0.0) -> np.ndarray:
    y, x, z = r.verts[:, 1], r.verts[:, 0], r.verts[:, 2]
    torso = _in(r.labels, _TORSO) & (y > hem)
    arms = _in(r.labels, ("left_arm", "right_arm", "left_forearm", "right_forearm")) & \
        (r.t_arm < sleeve)
    region = torso | arms
    # a scoop neckline at the front, below the neck's base
    neck_y = r.joints["neck"][1]
    front = z > r.joints["spine2"][2] + 0.02
    region &= ~(front & (y > neck_y - neck_drop) & (np.abs(x) < 0.075))
    if open_front > 0:
        region &= ~(front & (np.abs(x) < open_front) & (y > hem))
    return region


def _bottom_region(r: _Rest, length: float, waist: float) -> np.ndarray:
    y = r.verts[:, 1]
    legs = _in(r.labels, ("left_up_leg", "right_up_leg", "left_leg", "right_leg")) & \
        (r.t_leg < length)
    hips = _in(r.labels, ("hips", "spine", "spine1")) & (y < waist)
    return legs | hips


def _shoe_region(r: _Rest, top: float) -> np.ndarray:
    feet = _in(r.labels, ("left_foot", "right_foot", "left_toe_base", "right_toe_base"))
    ankles = _in(r.labels, ("left_leg", "right_leg")) & (r.t_leg > top)
    return feet | ankles


def _hair_region(r: _Rest, o: Outfit) -> np.ndarray:
    v = r.verts
    head_c = r.joints["head"]
    eye_y = 0.5 * (r.keypoints["left_eye"][1] + r.keypoints["right_eye"][1])
    dx, dz = v[:, 0] - head_c[0], v[:, 2] - head_c[2]
    front = dz / np.sqrt(dx * dx + dz * dz).clip(1e-6)  # cos of the angle from the front
    s = np.clip((front + 0.3) / 0.9, 0.0, 1.0)
    s = s * s * (3 - 2 * s)
    thr = eye_y + o.hair_back + (o.hair_front - o.hair_back) * s
    head = _in(r.labels, ("head",)) & (v[:, 1] > thr)
    if o.hair in ("medium", "long"):
        neck = _in(r.labels, ("neck",)) & (front < -0.2) & (v[:, 1] > eye_y - o.hair_length)
        head |= neck
    if o.hair == "long":
        back_z = r.joints["spine2"][2] - 0.01
        back = _in(r.labels, ("neck", "spine2", "spine1", "left_shoulder", "right_shoulder",
                              "spine")) & (v[:, 2] < back_z) & \
            (v[:, 1] > eye_y - o.hair_length) & (np.abs(v[:, 0]) < o.hair_width)
        head |= back
    return head


def _ring_distance(model, region: np.ndarray, rings: int) -> np.ndarray:
    """Graph distance (in edges, capped at ``rings``) of each region vertex to the nearest
    vertex outside the region."""
    A = _tables(model).adjacency
    dist = np.full(region.shape[0], rings, np.float64)
    frontier = ~region
    seen = frontier.copy()
    for k in range(rings):
        nxt = (A @ frontier.astype(np.float32)) > 0
        nxt &= ~seen
        dist[nxt] = k
        seen |= nxt
        frontier = nxt
    return dist


# ----------------------------------------------------------------------------------------
# building the mesh
# ----------------------------------------------------------------------------------------
@dataclass
class _Layer:
    name: str
    vertices: Tensor  # [n,3] posed
    faces: Tensor  # [f,3] local indices
    canonical: Tensor  # [n,3]
    labels: Tensor  # [n]
    material: int
    normals: Tensor | None = None


def _shell(model, r: _Rest, out, region: np.ndarray, thickness: float | np.ndarray,
           material: int, name: str, taper_rings: int = 2, taper_min: float = 0.5,
           ) -> _Layer | None:
    tab = _tables(model)
    f = tab.faces
    keep = region[f].all(axis=1)
    if not keep.any():
        return None
    ids = np.nonzero(region)[0]
    remap = np.full(region.shape[0], -1, np.int64)
    remap[ids] = np.arange(len(ids))
    th = np.broadcast_to(np.asarray(thickness, np.float64), region.shape)[ids]
    if taper_rings > 0:
        d = _ring_distance(model, region, taper_rings)[ids]
        th = th * (taper_min + (1 - taper_min) * np.clip((d + 1) / (taper_rings + 1), 0, 1))
    rest = r.verts[ids] + th[:, None] * r.normals[ids]
    dt = model.dtype
    vid = torch.as_tensor(ids)
    rest_t = torch.as_tensor(rest, dtype=dt)[None]
    posed = model.skin(rest_t, out.bone_transforms, vid)[0]
    return _Layer(name, posed, torch.as_tensor(remap[f[keep]]), rest_t[0],
                  torch.as_tensor(tab.labels[ids]), material)


def _skirt(model, r: _Rest, out, o: Outfit, material: int, n_ang: int = 56,
           n_rings: int = 18) -> _Layer:
    """The flared skirt surface (module docs), built in the posed pelvis frame."""
    dt = model.dtype
    root = int(model.smpl_joints[0])
    T = out.bone_transforms[0, root].double()  # rest -> posed, includes scale
    Tinv = torch.linalg.inv(T)
    posed = out.vertices[0].double()
    loc = (posed @ Tinv[:3, :3].T + Tinv[:3, 3]).numpy()  # posed body in the rest pelvis frame
    labels = r.labels
    hip_y = 0.5 * (r.joints["left_up_leg"][1] + r.joints["right_up_leg"][1])
    ankle_y = 0.5 * (r.joints["left_foot"][1] + r.joints["right_foot"][1])
    y_top = o.waist
    y_hem = hip_y + o.leg_length * (ankle_y - hip_y)
    ys = np.linspace(y_top, y_hem, n_rings)
    theta = np.linspace(0, 2 * np.pi, n_ang, endpoint=False)
    u = np.stack([np.sin(theta), np.cos(theta)], 1)  # [A,2] (x, z)
    cand = _in(labels, ("hips", "spine", "spine1", "left_up_leg", "right_up_leg", "left_leg",
                        "right_leg", "left_foot", "right_foot"))
    pts = loc[cand]
    c = np.array([0.0, np.median(r.verts[_in(labels, ("hips",)), 2])])
    band = max(0.6 * abs(ys[1] - ys[0]), 0.02)
    radii = np.zeros((n_rings, n_ang))
    prev = None
    for k, yk in enumerate(ys):
        sel = np.abs(pts[:, 1] - yk) < band
        if sel.any():
            h = ((pts[sel][:, [0, 2]] - c) @ u.T).max(0)  # support function [A]
        else:
            h = prev if prev is not None else np.full(n_ang, 0.15)
        ease = 0.008 + o.skirt_flare * (y_top - yk)
        rk = h + ease
        if prev is not None:
            # the hem only widens, and never faster than a steep cone: a thigh raised
            # forward pokes through instead of turning the skirt into a plate
            dy = abs(ys[1] - ys[0])
            rk = np.clip(rk, prev, prev + (0.8 + o.skirt_flare) * dy)
        for _ in range(2):  # round the outline (support functions are polygonal)
            rk = np.maximum(0.25 * np.roll(rk, 1) + 0.5 * rk + 0.25 * np.roll(rk, -1), h + 0.004)
        radii[k] = rk
        prev = rk
    depth = (y_top - ys) / max(y_top - y_hem, 1e-6)  # 0 at the waist, 1 at the hem
    phase = (o.skirt_folds * 0.37) % (2 * np.pi)
    folds = 1 + o.skirt_fold_amp * np.sin(o.skirt_folds * theta + phase)[None] * depth[:, None]
    radii = radii * folds
    xz = c + radii[..., None] * u[None]  # [R,A,2]
    loc_pts = np.stack([xz[..., 0], np.broadcast_to(ys[:, None], radii.shape), xz[..., 1]], -1)
    loc_pts = torch.as_tensor(loc_pts.reshape(-1, 3))
    verts = (loc_pts @ T[:3, :3].T + T[:3, 3]).to(dt)
    # canonical: a nominal cone, independent of the pose
    r_nom = 0.17 + 0.5 * o.skirt_flare * (y_top - ys)
    can = np.stack([r_nom[:, None] * u[None, :, 0], np.broadcast_to(ys[:, None], radii.shape),
                    c[1] + r_nom[:, None] * u[None, :, 1]], -1).reshape(-1, 3)
    # faces: quads between rings, wound so normals point away from the axis
    i = np.arange(n_rings - 1)[:, None] * n_ang
    j = np.arange(n_ang)[None]
    a, b = i + j, i + (j + 1) % n_ang
    cc, d = a + n_ang, b + n_ang
    faces = np.concatenate([np.stack([a, cc, b], -1).reshape(-1, 3),
                            np.stack([b, cc, d], -1).reshape(-1, 3)])
    faces_t = torch.as_tensor(faces, dtype=torch.long)
    n = vertex_normals(verts, faces_t, outward=False)
    centre = (torch.as_tensor(np.array([c[0], 0.0, c[1]])) @ T[:3, :3].T + T[:3, 3]).to(dt)
    radial = verts - centre
    radial = radial - (radial * (T[:3, 1] / T[:3, 1].norm()).to(dt)).sum(-1, keepdim=True) * \
        (T[:3, 1] / T[:3, 1].norm()).to(dt)
    if float((n * radial).sum()) < 0:
        faces_t = faces_t[:, [0, 2, 1]]
    # label: the body part of the nearest posed body vertex
    body_cand = torch.as_tensor(np.nonzero(cand)[0])
    dist = torch.cdist(verts.float(), out.vertices[0][body_cand].float())
    lab = torch.as_tensor(labels)[body_cand[dist.argmin(1)]]
    return _Layer("skirt", verts, faces_t, torch.as_tensor(can, dtype=dt), lab, material)


def build_mesh(subject: Subject, params: dict) -> SubjectMesh:
    """The dressed mesh for the body ``params`` (forward arguments of the subject's model)."""
    model = subject.model
    o = subject.outfit
    out = model(**params)
    r = _rest_geometry(model, params["shape"][0])
    tab = _tables(model)
    body_layer = _Layer("body", out.vertices[0], torch.as_tensor(tab.faces),
                        out.rest_vertices[0], model.part_labels.cpu(), 0)
    layers = [body_layer]

    def add(layer):
        if layer is not None:
            layers.append(layer)

    if o.shoes != "none":
        sole = np.where(r.verts[:, 1] < r.joints["left_foot"][1] - 0.045, 0.008, 0.0)
        add(_shell(model, r, out, _shoe_region(r, o.shoe_top), o.shoe_thickness + sole,
                   o.shoe_material, "shoes", taper_rings=1, taper_min=0.6))
    if o.tights:
        add(_shell(model, r, out, _bottom_region(r, 1.0, o.waist - 0.02), 0.003,
                   o.tights_material, "tights", taper_rings=0))
    if o.bottom in ("trousers", "shorts"):
        add(_shell(model, r, out, _bottom_region(r, o.leg_length, o.waist),
                   o.bottom_thickness, o.bottom_material, o.bottom, taper_rings=1,
                   taper_min=0.6))
    if o.top != "none" or o.bottom == "dress":
        sleeve = o.sleeve if o.top != "tank" else -1.0
        hem = o.top_hem if o.bottom != "dress" else o.waist - 0.03
        add(_shell(model, r, out, _top_region(r, sleeve, hem, o.neck_drop),
                   o.top_thickness, o.top_material if o.bottom != "dress" else
                   o.bottom_material, "top", taper_rings=1, taper_min=0.6))
    if o.bottom in ("skirt", "dress"):
        add(_skirt(model, r, out, o, o.bottom_material))
    if o.jacket:
        add(_shell(model, r, out, _top_region(r, 0.97, o.jacket_hem, 0.09, o.jacket_open),
                   o.jacket_thickness, o.jacket_material, "jacket", taper_rings=1,
                   taper_min=0.5))
    if o.hair != "none":
        eye_y = r.keypoints["left_eye"][1]
        crown = np.clip((r.verts[:, 1] - eye_y) / 0.12, 0, 1)
        th = o.hair_thickness + o.hair_volume * crown
        add(_shell(model, r, out, _hair_region(r, o), th, o.hair_material, "hair",
                   taper_rings=3, taper_min=0.15))

    verts, faces, can, labels, fmat, info = [], [], [], [], [], {}
    off = 0
    for L in layers:
        verts.append(L.vertices)
        faces.append(L.faces + off)
        can.append(L.canonical.to(L.vertices.dtype))
        labels.append(L.labels.long())
        fmat.append(torch.full((L.faces.shape[0],), L.material, dtype=torch.long))
        info[L.name] = (off, L.vertices.shape[0])
        off += L.vertices.shape[0]
    V = torch.cat(verts)
    F = torch.cat(faces)
    # normals per layer (each is its own surface; the body's winding decides the sign)
    normals = vertex_normals(V.double(), F, outward=False, n_vertices=V.shape[0]).to(V.dtype)
    if not tab.outward:
        normals = -normals
        # the skirt was oriented explicitly; undo the flip there
        if "skirt" in info:
            s0, n = info["skirt"]
            normals[s0:s0 + n] = -normals[s0:s0 + n]
    return SubjectMesh(V, F, torch.cat(can), normals, torch.cat(labels), torch.cat(fmat),
                       subject.materials, int(layers[0].vertices.shape[0]), out, info)


# ----------------------------------------------------------------------------------------
# poses
# ----------------------------------------------------------------------------------------
def _rot(axis, angle) -> "object":
    from scipy.spatial.transform import Rotation

    a = np.asarray(axis, np.float64)
    return Rotation.from_rotvec(a / np.linalg.norm(a) * angle)


_LIMB_DIRS: dict[int, dict[str, np.ndarray]] = {}


def _limb_dirs(model) -> dict[str, np.ndarray]:
    """Rest directions of the arm and forearm segments (default shape), per side."""
    cache = _LIMB_DIRS.setdefault(id(model), {})
    if not cache:
        with torch.no_grad():
            j = model().joints[0].double().numpy()
        sj = model.smpl_joints
        g = lambda n: j[int(sj[_P[n]])]  # noqa: E731
        for s in ("left", "right"):
            cache[f"{s}_arm"] = g(f"{s}_forearm") - g(f"{s}_arm")
            cache[f"{s}_forearm"] = g(f"{s}_hand") - g(f"{s}_forearm")
    return cache


def sample_pose_natural(rng: np.random.Generator, kind: str, model=None, *,
                        skirt: bool = False) -> np.ndarray:
    """A pose [24,3] (axis-angle per SMPL joint, relative to the parent in rest-pose world
    axes) of the given kind: "standing", "walking", "arms", "challenging". ``skirt``: leave
    out the challenging poses that lift a thigh high (squats, raised legs)."""
    from scipy.spatial.transform import Rotation

    model = model if model is not None else default_body()
    dirs = _limb_dirs(model)
    R = [Rotation.identity() for _ in range(NUM_PARTS)]
    U = rng.uniform
    X, Y, Z = (1, 0, 0), (0, 1, 0), (0, 0, 1)

    def arm(side: str, raise_: float, fwd: float, elbow: float, twist: float = 0.0):
        s = 1.0 if side == "left" else -1.0
        u = dirs[f"{side}_arm"]
        R[_P[f"{side}_arm"]] = _rot(X, -fwd) * _rot(Z, s * raise_) * _rot(u, twist)
        uf = dirs[f"{side}_forearm"]
        axis = np.cross(uf, (0.0, 0.0, 1.0))
        R[_P[f"{side}_forearm"]] = _rot(axis, elbow)
        R[_P[f"{side}_hand"]] = _rot(rng.normal(size=3), U(0, 0.35))

    def leg(side: str, flex: float, abduct: float, knee: float, twist: float = 0.0):
        s = 1.0 if side == "left" else -1.0
        R[_P[f"{side}_up_leg"]] = _rot(X, -flex) * _rot(Z, s * abduct) * _rot(Y, s * twist)
        R[_P[f"{side}_leg"]] = _rot(X, knee)
        # keep the foot roughly level with the ground
        R[_P[f"{side}_foot"]] = _rot(X, -0.6 * (knee - flex) * 0.5 + U(-0.1, 0.1))

    def spine(bend: float, side: float, twist: float):
        for n, w in (("spine", 0.4), ("spine1", 0.3), ("spine2", 0.3)):
            R[_P[n]] = _rot(X, w * bend) * _rot(Z, w * side) * _rot(Y, w * twist)

    def head(nod: float, turn: float, tilt: float):
        R[_P["neck"]] = _rot(X, 0.4 * nod) * _rot(Y, 0.4 * turn)
        R[_P["head"]] = _rot(X, 0.6 * nod) * _rot(Y, 0.6 * turn) * _rot(Z, tilt)

    spine(U(-0.1, 0.15), U(-0.08, 0.08), U(-0.15, 0.15))
    head(U(-0.2, 0.3), U(-0.5, 0.5), U(-0.15, 0.15))
    arm_modes = ["down", "down", "side", "forward", "up", "hip", "bent", "wave"]

    def arm_mode(side: str, mode: str):
        if mode == "down":
            arm(side, U(-0.7, -0.3), U(-0.25, 0.35), U(0.05, 0.5), U(-0.3, 0.3))
        elif mode == "side":
            arm(side, U(0.3, 1.1), U(-0.2, 0.4), U(0.0, 0.6), U(-0.5, 0.5))
        elif mode == "forward":
            arm(side, U(-0.5, 0.2), U(0.7, 1.5), U(0.0, 1.0), U(-0.4, 0.4))
        elif mode == "up":
            arm(side, U(1.5, 2.2), U(-0.2, 0.5), U(0.0, 0.6), U(-0.3, 0.3))
        elif mode == "hip":  # hand on the hip
            arm(side, U(-0.35, -0.1), U(-0.5, -0.2), U(1.4, 1.8), U(0.6, 1.0))
        elif mode == "bent":  # holding something in front
            arm(side, U(-0.6, -0.3), U(0.2, 0.6), U(1.2, 1.9), U(-0.3, 0.3))
        else:  # "wave": upper arm out, forearm up
            arm(side, U(0.4, 0.9), U(0.0, 0.4), U(1.4, 2.1), U(-1.4, -0.8))

    if kind == "standing":
        arm_mode("left", "down")
        arm_mode("right", "down")
        shift = U(0, 0.25)
        leg("left", U(-0.08, 0.1), U(-0.02, 0.12), shift if rng.random() < 0.5 else 0.0)
        leg("right", U(-0.08, 0.1), U(-0.02, 0.12), shift if rng.random() < 0.5 else 0.0)
    elif kind == "walking":
        a = U(0.2, 0.5)
        phase = rng.choice([-1.0, 1.0])
        leg("left", phase * a, U(0.0, 0.06), U(0.0, 0.2) + (0.6 * a if phase < 0 else 0.0))
        leg("right", -phase * a, U(0.0, 0.06), U(0.0, 0.2) + (0.6 * a if phase > 0 else 0.0))
        arm("left", U(-0.65, -0.35), -phase * a * U(0.6, 1.2), U(0.1, 0.6))
        arm("right", U(-0.65, -0.35), phase * a * U(0.6, 1.2), U(0.1, 0.6))
    elif kind == "arms":
        arm_mode("left", arm_modes[rng.integers(len(arm_modes))])
        arm_mode("right", arm_modes[rng.integers(len(arm_modes))])
        leg("left", U(-0.1, 0.15), U(-0.02, 0.15), U(0, 0.2))
        leg("right", U(-0.1, 0.15), U(-0.02, 0.15), U(0, 0.2))
    elif kind == "challenging":
        arm_mode("left", arm_modes[rng.integers(len(arm_modes))])
        arm_mode("right", arm_modes[rng.integers(len(arm_modes))])
        c = rng.choice(["lunge", "bend", "twist", "wide"] if skirt else
                       ["squat", "lunge", "raised_leg", "bend", "twist", "wide"])
        if c == "squat":
            f, k = U(1.0, 1.6), U(1.6, 2.2)
            leg("left", f, U(0.1, 0.4), k)
            leg("right", f, U(0.1, 0.4), k)
            spine(U(0.2, 0.5), 0, U(-0.2, 0.2))
        elif c == "lunge":
            leg("left", U(0.7, 1.2), U(0, 0.1), U(0.8, 1.3))
            leg("right", U(-0.5, -0.3), U(0, 0.1), U(0.0, 0.3))
        elif c == "raised_leg":
            leg("left", U(0.8, 1.5), U(0, 0.3), U(0.3, 1.8))
            leg("right", U(-0.1, 0.1), U(0, 0.1), U(0, 0.2))
        elif c == "bend":
            spine(U(0.6, 1.1), U(-0.2, 0.2), U(-0.3, 0.3))
            leg("left", U(0.1, 0.5), U(0, 0.1), U(0, 0.3))
            leg("right", U(0.1, 0.5), U(0, 0.1), U(0, 0.3))
        elif c == "twist":
            spine(U(-0.1, 0.3), U(-0.4, 0.4), rng.choice([-1, 1]) * U(0.5, 0.9))
            leg("left", U(-0.1, 0.3), U(0, 0.2), U(0, 0.4))
            leg("right", U(-0.1, 0.3), U(0, 0.2), U(0, 0.4))
        else:
            leg("left", U(-0.1, 0.2), U(0.3, 0.6), U(0, 0.5))
            leg("right", U(-0.1, 0.2), U(0.3, 0.6), U(0, 0.5))
        if rng.random() < 0.5:  # mirror left/right so the sampled side does not bias
            # a rotation mirrored across x = 0 has its rotation vector's y and z negated
            R = [Rotation.from_rotvec(R[i].as_rotvec() * np.array([1.0, -1.0, -1.0]))
                 for i in PART_FLIP]
    else:
        raise ValueError(f"unknown pose kind {kind!r}")
    return np.stack([r.as_rotvec() for r in R]).astype(np.float32)


# ----------------------------------------------------------------------------------------
# sampling a subject
# ----------------------------------------------------------------------------------------
def subject_seed(base_seed: int, split: str, index: int) -> int:
    """The seed of subject ``index`` of ``split``: independent streams per split, so the
    held-out splits never share a subject with training."""
    code = {"train": 0, "test": 1, "hard": 2}.get(split)
    if code is None:
        code = int.from_bytes(split.encode()[:8].ljust(8, b"\0"), "little")
    ss = np.random.SeedSequence([int(base_seed), code, int(index)])
    return int(ss.generate_state(1, np.uint64)[0] >> 1)


def _phenotype(rng: np.random.Generator) -> np.ndarray:
    """[6] Anny phenotypes: gender, age (0.43 ~ 15 y, 0.67 ~ 25 y, 1.0 ~ 90 y), muscle,
    weight, height, proportions."""
    gender = rng.beta(0.6, 0.6)  # mostly clearly male or female, some in between
    age = np.clip(rng.choice([rng.uniform(0.43, 0.62), rng.uniform(0.6, 0.85),
                              rng.uniform(0.8, 1.0)], p=[0.2, 0.6, 0.2]), 0.43, 1.0)
    muscle = np.clip(rng.normal(0.5, 0.18), 0.05, 0.95)
    weight = np.clip(rng.normal(0.5, 0.2), 0.05, 0.98)
    height = np.clip(rng.normal(0.5, 0.2), 0.05, 0.95)
    prop = np.clip(rng.normal(0.5, 0.2), 0.05, 0.95)
    return np.array([gender, age, muscle, weight, height, prop], np.float32)


def _sample_outfit(rng: np.random.Generator, gender: float, hard: bool,
                   materials: list[Material]) -> Outfit:
    U = rng.uniform

    def mat(m: Material) -> int:
        materials.append(m)
        return len(materials) - 1

    o = Outfit()
    female = gender > 0.5
    p_skirt = (0.75 if hard else (0.35 if female else 0.05))
    if rng.random() < p_skirt:
        o.bottom = "dress" if rng.random() < 0.45 else "skirt"
        o.leg_length = float(rng.choice([U(0.3, 0.5), U(0.5, 0.75), U(0.75, 0.98)],
                                        p=[0.3, 0.45, 0.25]))
        o.skirt_flare = U(0.03, 0.45) if not hard else U(0.15, 0.6)
        o.skirt_folds = int(rng.integers(4, 12))
        o.skirt_fold_amp = U(0.0, 0.08)
        o.waist = U(0.06, 0.15)
        o.tights = rng.random() < 0.25
    else:
        o.bottom = "trousers" if rng.random() < 0.75 else "shorts"
        o.leg_length = U(0.9, 1.02) if o.bottom == "trousers" else U(0.25, 0.5)
        o.waist = U(0.03, 0.12)
        o.bottom_thickness = U(0.006, 0.012)
    o.bottom_material = mat(_fabric(rng, denim_ok=o.bottom in ("trousers", "shorts", "skirt"),
                                    plain_bias=0.6))
    if o.tights:
        o.tights_material = mat(Material("solid", _tuple(
            _FABRIC[rng.choice([1, 4, 0, 19])] * U(0.8, 1.1))))
    o.top = str(rng.choice(["tshirt", "longsleeve", "tank"], p=[0.5, 0.35, 0.15]))
    if o.bottom == "dress":
        o.top = str(rng.choice(["tshirt", "tank"], p=[0.4, 0.6]))
    o.sleeve = {"tshirt": U(0.2, 0.45), "longsleeve": U(0.85, 0.97), "tank": -1.0}[o.top]
    o.top_hem = U(-0.07, 0.08)
    o.neck_drop = U(0.0, 0.1)
    # an untucked top sits over the trousers; a tucked one under their waistband
    tucked = o.bottom in ("trousers", "skirt") and rng.random() < 0.25
    if tucked:
        o.top_hem = min(o.top_hem, o.waist - 0.04)
        o.top_thickness = 0.6 * o.bottom_thickness
    else:
        o.top_thickness = o.bottom_thickness + U(0.003, 0.008)
    o.top_material = mat(_fabric(rng))
    o.jacket = rng.random() < 0.2 and o.bottom != "dress"
    if o.jacket:
        o.jacket_open = U(0.03, 0.09) if rng.random() < 0.6 else 0.0
        o.jacket_hem = U(-0.12, 0.0)
        o.jacket_thickness = o.top_thickness + U(0.01, 0.02)
        o.jacket_material = mat(_fabric(rng, plain_bias=0.7))
    # hair
    if female:
        o.hair = str(rng.choice(["short", "medium", "long"], p=[0.15, 0.35, 0.5]))
    else:
        o.hair = str(rng.choice(["none", "short", "medium", "long"], p=[0.1, 0.7, 0.12, 0.08]))
    o.hair_front = U(0.03, 0.065) if rng.random() < 0.8 else U(0.005, 0.03)  # fringe
    o.hair_back = U(-0.09, -0.04)
    o.hair_length = U(0.12, 0.2) if o.hair == "medium" else U(0.25, 0.45)
    o.hair_width = U(0.06, 0.12)
    o.hair_thickness = U(0.006, 0.015) if o.hair == "short" else U(0.012, 0.03)
    o.hair_volume = U(0.005, 0.025)
    hc = _HAIR[rng.choice(len(_HAIR), p=_HAIR_P)]
    o.hair_material = mat(Material("hair", _tuple(hc * U(0.85, 1.15)),
                                   _tuple(hc * U(0.6, 0.8))))
    # shoes
    o.shoes = str(rng.choice(["sneakers", "boots", "none"], p=[0.7, 0.25, 0.05]))
    o.shoe_top = U(0.9, 0.96) if o.shoes == "sneakers" else U(0.7, 0.85)
    o.shoe_thickness = U(0.008, 0.016)
    sc = _FABRIC[rng.choice([1, 2, 4, 19, 5, 3, 8])]
    o.shoe_material = mat(Material("solid", _tuple(sc * U(0.85, 1.1))))
    return o


def sample_subject(seed: int, *, hard: bool = False, body=None,
                   input_size: int = INPUT_SIZE,
                   foreground_ratio: float = FOREGROUND_RATIO) -> Subject:
    """A random dressed subject, deterministic from ``seed``, placed like a preprocessed
    photo (module docs). ``hard``: mostly skirts and dresses and challenging poses."""
    rng = np.random.default_rng(int(seed))
    model = body if body is not None else default_body()
    shape = _phenotype(rng)
    materials: list[Material] = []
    outfit = _sample_outfit(rng, float(shape[0]), hard, materials)
    if hard:
        kind = str(rng.choice(["challenging", "arms", "walking"], p=[0.6, 0.25, 0.15]))
    else:
        kind = str(rng.choice(["standing", "walking", "arms", "challenging"],
                              p=[0.3, 0.25, 0.3, 0.15]))
    pose = sample_pose_natural(rng, kind, model, skirt=outfit.bottom in ("skirt", "dress"))
    yaw = rng.normal(0, 22.0) if rng.random() < 0.85 else rng.uniform(-180, 180)
    yaw = float(np.clip(yaw, -45, 45)) if abs(yaw) < 60 else float(yaw)
    skin_t = float(rng.uniform(0, 1))
    skin_c = np.clip(_skin_color(skin_t) * rng.uniform(0.95, 1.05, 3), 0, 1)
    materials.insert(0, None)  # slot 0: skin, filled below (needs the outfit's hair colour)
    for name in ("top_material", "jacket_material", "bottom_material", "tights_material",
                 "hair_material", "shoe_material"):
        setattr(outfit, name, getattr(outfit, name) + 1)
    hair = np.array(materials[outfit.hair_material].color) if outfit.hair != "none" else \
        skin_c * 0.5
    materials[0] = Material("skin", _tuple(skin_c), params={
        "brow": _tuple(hair * 0.8),
        "iris": _tuple(_IRIS[rng.integers(len(_IRIS))]),
        "lips": _tuple(skin_c * np.array([0.82, 0.58, 0.58]))})
    sub = Subject(seed=int(seed), shape=shape, smpl_pose=pose, yaw_deg=yaw, skin_tone=skin_t,
                  outfit=outfit, materials=materials, pose_kind=kind, hard=hard, body=body)
    _add_face_features(sub)
    place_subject(sub, input_size, foreground_ratio)
    return sub


def _add_face_features(sub: Subject) -> None:
    """Eye, brow and mouth positions (rest space) for the skin material."""
    m = sub.model
    with torch.no_grad():
        out = m(shape=torch.as_tensor(sub.shape)[None])
    kp = {n: out.keypoints[0, i].double().numpy() for i, n in enumerate(KEYPOINT_NAMES)}
    skin = sub.materials[0]
    eyes = np.stack([kp["left_eye"], kp["right_eye"]])
    skin.params["eyes"] = eyes.tolist()
    nose = kp["nose"]
    skin.params["mouth"] = [float(nose[0]), float(nose[1] - 0.042), float(nose[2])]


def fit_placement(points: Tensor, size: int = INPUT_SIZE,
                  foreground_ratio: float = FOREGROUND_RATIO,
                  iterations: int = 4) -> tuple[float, np.ndarray]:
    """(scale s, translation t [3]) such that ``t + s * points`` (points [N,3] around the
    origin, e.g. a body with its root there) projects into ``prior.fit.input_camera(size,
    size)`` centred, with its longer bbox side ``foreground_ratio`` of the image (what
    ``prior.preprocess`` does to a photo). The depth stays 0 (like the fitter's root);
    perspective makes it a fixed point iteration, converged in a few steps."""
    from ..cameras import project_points
    from ..prior.fit import input_camera

    base = points.detach().double()
    cam = input_camera(size, size).to(dtype=torch.float64)
    s, t = 1.0, np.zeros(3)
    fx, fy = float(cam.Ks[0, 0, 0]), float(cam.Ks[0, 1, 1])
    for _ in range(iterations):
        pts = torch.as_tensor(t) + s * base
        uv, z = project_points(pts, cam.viewmats, cam.Ks)
        lo, hi = uv[0].min(0).values.numpy(), uv[0].max(0).values.numpy()
        s *= foreground_ratio * size / float(max(hi - lo))
        depth = float(z[0].mean())
        du, dv = size / 2 - 0.5 * (lo + hi)
        t = t + np.array([du * depth / fx, -dv * depth / fy, 0.0])
    return float(s), t


def place_subject(sub: Subject, size: int = INPUT_SIZE,
                  foreground_ratio: float = FOREGROUND_RATIO) -> None:
    """Set ``sub.scale``/``sub.transl`` so the dressed silhouette in the input camera is
    placed like a preprocessed crop (:func:`fit_placement`)."""
    sub.scale, sub.transl = 1.0, np.zeros(3)
    mesh = sub.mesh(placed=False)
    root = mesh.body.joints[0, 0].double()  # the root, at the origin
    sub.scale, sub.transl = fit_placement(mesh.vertices.double() - root, size,
                                          foreground_ratio)
