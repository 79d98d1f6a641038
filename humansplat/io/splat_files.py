"""Gaussian splat files: the INRIA 3DGS ``.ply`` layout and the compact ``.splat`` layout.

``.ply`` (what the 3DGS reference code, SuperSplat, gsplat.js and Gradio's ``Model3D`` read):
one ``vertex`` element, binary little-endian float32 properties in exactly this order::

    x y z  nx ny nz  f_dc_0..2  f_rest_0..44  opacity  scale_0..2  rot_0..3  [part] [extra...]

stored in the 3DGS *storage* space: opacity as a logit, scale as a log, rotation w-first, the
colour as the SH DC term (rgb = 0.5 + 0.28209479 * f_dc), normals zero. ``f_rest`` is
channel-major: the 15 higher-order coefficients of R, then of G, then of B.

Decision on SH degree: we always write all 45 ``f_rest`` fields (the full INRIA layout, which
every viewer accepts; viewers infer degree 3 from the count, and zero coefficients render
exactly like a lower degree). Gaussians of degree d < 3 fill the first (d+1)^2 - 1 slots of
each channel and leave the rest zero; plain RGB Gaussians write zeros. The true colour mode and
degree go into a header comment (``comment humansplat up=+y colors=sh sh_degree=2``) so
:func:`load_ply` gives back exactly what was saved. Files without that comment (other tools)
load with the degree implied by their ``f_rest`` count (0, 9, 24 or 45 fields); no ``f_rest``
at all means plain RGB.

The per-Gaussian body-part label is written as ``property int part`` after the standard
properties, followed by caller-supplied extras (float32 or int32 only: Gradio 6's splat loader
rejects every other PLY type, ``uchar`` included).

``.splat`` (antimatter15's web viewer format): 32 bytes a splat, no header: position 3 x f32,
scale 3 x f32 (activated), RGBA 4 x u8 (alpha = opacity), rotation 4 x u8
(round(q/|q| * 128 + 128) clipped to 0..255, w first); rows sorted by decreasing
``prod(scale) * opacity`` (big, opaque splats first, as web viewers expect). Colour is the DC
term only.

Worlds: ours is +y up (person facing +z). Gradio's ``Model3D`` and most splat viewers use the
y-down COLMAP/OpenCV world, in which our scene shows upside down. ``y_down=True`` rotates the
scene 180 degrees about x on the way out (y -> -y, z -> -z, quaternions pre-multiplied by
the same rotation, SH coefficients re-signed to match), and undoes it on the way in. The app
and the CLI write their downloadable files with ``y_down=True``; the ``.ply`` records
``up=-y`` in its header comment, and :func:`load_ply` undoes it automatically unless told
otherwise.
"""

from __future__ import annotations

from typing import Sequence

from pathlib import Path

import numpy as np
import torch
from plyfile import PlyData, PlyElement

from ..errors import InvalidFileError, MissingFileError
from ..gaussians import SH_C0, Gaussians
from ..geometry import quat_multiply
from .paths import as_path, atomic_path

__all__ = [
    "save_ply",
    "load_ply",
    "save_splat",
    "load_splat",
    "PLY_PROPERTIES",
    "PART_PROPERTY",
    "SPLAT_DTYPE",
    "SPLAT_ROW_BYTES",
    "N_REST",
]

N_REST = 45  # f_rest fields in the INRIA layout: 15 coefficients (degree 3) x 3 channels
_REST_PER_CHANNEL = N_REST // 3
PLY_PROPERTIES: tuple[str, ...] = (
    "x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2",
    *(f"f_rest_{i}" for i in range(N_REST)),
    "opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3",
)
PART_PROPERTY = "part"
# Properties a file must have for us to read it as Gaussians (normals and f_rest are optional).
_REQUIRED = ("x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity", "scale_0", "scale_1",
             "scale_2", "rot_0", "rot_1", "rot_2", "rot_3")
_REST_COUNT_TO_DEGREE = {0: 0, 9: 1, 24: 2, 45: 3}
_COMMENT_KEY = "humansplat"

SPLAT_DTYPE = np.dtype([("position", "<f4", (3,)), ("scale", "<f4", (3,)),
                        ("rgba", "u1", (4,)), ("rotation", "u1", (4,))])
SPLAT_ROW_BYTES = SPLAT_DTYPE.itemsize
assert SPLAT_ROW_BYTES == 32

# Clamps that keep the storage transforms finite: logit(0 or 1) and log(0) are infinite.
_OPACITY_EPS = 1e-7
_MIN_SCALE = 1e-30

# 180 deg about x as a quaternion (w, x, y, z); it is its own inverse up to sign.
_Q_FLIP = np.array([0.0, 1.0, 0.0, 0.0])
_Q_FLIP_INV = np.array([0.0, -1.0, 0.0, 0.0])
# Real SH basis functions (3DGS order, DC first) are odd or even in (y, z) jointly; under
# (x, y, z) -> (x, -y, -z) each coefficient keeps or flips its sign.
_SH_FLIP_SIGNS = np.array([1,
                           -1, -1, 1,
                           -1, 1, 1, -1, 1,
                           -1, 1, -1, -1, 1, -1, 1], dtype=np.float32)


# --------------------------------------------------------------------------------------------
# shared helpers
# --------------------------------------------------------------------------------------------

def _np(t, dtype=np.float32) -> np.ndarray:
    if isinstance(t, torch.Tensor):
        t = t.detach().cpu()
        if t.dtype in (torch.bfloat16, torch.float16):
            t = t.float()
        t = t.numpy()
    return np.asarray(t, dtype=dtype)


def _check_finite(name: str, a: np.ndarray, where: str) -> None:
    bad = ~np.isfinite(a)
    if bad.any():
        rows = int(bad.reshape(a.shape[0], -1).any(axis=1).sum()) if a.ndim else 1
        raise ValueError(f"{where}: {name} contains NaN or infinite values ({rows} Gaussians)")


def _normalize_quats(q: np.ndarray, where: str) -> np.ndarray:
    norm = np.linalg.norm(q, axis=1, keepdims=True)
    zero = norm[:, 0] < 1e-12
    if zero.any():
        raise ValueError(f"{where}: {int(zero.sum())} Gaussians have a zero rotation quaternion")
    return (q / norm).astype(np.float32)


def _flip_scene(means: np.ndarray, quats: np.ndarray, sh: np.ndarray | None,
                inverse: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Rotate by 180 deg about x (our +y-up world <-> the y-down viewer world).

    means [N,3], quats [N,4] (w first), sh [N,K,3] or None. ``inverse`` undoes the forward
    map exactly (the quaternion otherwise comes back negated, the same rotation)."""
    means = means * np.array([1.0, -1.0, -1.0], dtype=np.float32)
    q = torch.from_numpy(_Q_FLIP_INV if inverse else _Q_FLIP)
    quats = quat_multiply(q, torch.from_numpy(quats).double()).numpy().astype(np.float32)
    if sh is not None:
        sh = sh * _SH_FLIP_SIGNS[: sh.shape[1], None]
    return means, quats, sh


def _gaussian_arrays(g: Gaussians, y_down: bool, where: str) -> dict[str, np.ndarray | None]:
    """Activated numpy arrays of ``g`` (validated, rotation normalised, optionally flipped)."""
    if not isinstance(g, Gaussians):
        raise ValueError(f"{where}: expected a Gaussians, got {type(g).__name__}")
    if len(g) == 0:
        # An empty splat shows as a blank viewer; say so where it happens instead.
        raise ValueError(f"{where}: there are no Gaussians to write (0 after pruning?)")
    out = {
        "means": _np(g.means), "quats": _np(g.quats), "scales": _np(g.scales),
        "opacities": _np(g.opacities),
        "colors": None if g.colors is None else _np(g.colors),
        "sh": None if g.sh is None else _np(g.sh),
    }
    for name, a in out.items():
        if a is not None:
            _check_finite(name, a, where)
    if (out["scales"] < 0).any():
        raise ValueError(f"{where}: scales must be positive (standard deviations)")
    op = out["opacities"]
    if ((op < 0) | (op > 1)).any():
        raise ValueError(f"{where}: opacities must lie in [0, 1], got "
                         f"[{op.min():.4g}, {op.max():.4g}]")
    out["quats"] = _normalize_quats(out["quats"], where)
    out["labels"] = None if g.labels is None else _np(g.labels, np.int64)
    if y_down:
        out["means"], out["quats"], out["sh"] = _flip_scene(out["means"], out["quats"], out["sh"])
    return out


def _to_gaussians(means, quats, scales, opacities, colors=None, sh=None, labels=None
                  ) -> Gaussians:
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))  # noqa: E731
    return Gaussians(
        means=t(means), quats=t(quats), scales=t(scales), opacities=t(opacities),
        colors=None if colors is None else t(colors), sh=None if sh is None else t(sh),
        labels=None if labels is None else torch.from_numpy(np.asarray(labels, np.int64)))


def _existing_file(path, what: str) -> Path:
    p = as_path(path)
    if not p.is_file():
        raise MissingFileError(f"no such {what} file: {p}")
    return p


# --------------------------------------------------------------------------------------------
# .ply
# --------------------------------------------------------------------------------------------

def _extra_columns(extra: dict | None, n: int, taken: set[str]) -> list[tuple[str, np.ndarray]]:
    if not extra:
        return []
    if not isinstance(extra, dict):
        raise ValueError(f"extra must be a dict of name -> [N] array, got {type(extra).__name__}")
    cols = []
    for name, col in extra.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"extra property name must be an identifier, got {name!r}")
        if name in taken:
            raise ValueError(f"extra property {name!r} clashes with a standard property")
        a = col.detach().cpu().numpy() if isinstance(col, torch.Tensor) else np.asarray(col)
        if a.shape != (n,):
            raise ValueError(f"extra[{name!r}] must have shape [{n}], got {list(a.shape)}")
        if a.dtype.kind == "f":
            _check_finite(f"extra[{name!r}]", a, "save_ply")
            a = a.astype("<f4")
        elif a.dtype.kind in "iub":
            if a.size and (a.min() < np.iinfo(np.int32).min or a.max() > np.iinfo(np.int32).max):
                raise ValueError(f"extra[{name!r}] does not fit in int32")
            a = a.astype("<i4")
        else:
            raise ValueError(f"extra[{name!r}] must be numeric (float or int), got {a.dtype}")
        cols.append((name, a))
    return cols


def save_ply(g: Gaussians, path, *, y_down: bool = False,
             extra: dict[str, np.ndarray] | None = None) -> Path:
    """Write ``g`` as an INRIA 3DGS ``.ply`` (see the module docstring for the layout).

    y_down: write in the y-down viewer world (rotated 180 deg about x).
    extra: more per-Gaussian scalar properties {name: [N]}, written after ``part``
    (floats as float32, ints/bools as int32). Returns the path written."""
    a = _gaussian_arrays(g, y_down, "save_ply")
    n = a["means"].shape[0]
    if a["sh"] is not None:
        dc = a["sh"][:, 0]
        rest = np.zeros((n, 3, _REST_PER_CHANNEL), np.float32)
        k = a["sh"].shape[1] - 1
        if k > _REST_PER_CHANNEL:
            raise ValueError(f"save_ply: SH degree {g.sh_degree} is above the INRIA layout's 3")
        rest[:, :, :k] = a["sh"][:, 1:].transpose(0, 2, 1)  # channel-major
        mode = f"colors=sh sh_degree={g.sh_degree}"
    else:
        dc = (a["colors"] - 0.5) / SH_C0
        rest = np.zeros((n, 3, _REST_PER_CHANNEL), np.float32)
        mode = "colors=rgb sh_degree=0"
    op = np.clip(a["opacities"].astype(np.float64), _OPACITY_EPS, 1.0 - _OPACITY_EPS)
    columns = np.concatenate([
        a["means"], np.zeros((n, 3), np.float32), dc, rest.reshape(n, N_REST),
        np.log(op / (1.0 - op))[:, None], np.log(np.maximum(a["scales"], _MIN_SCALE)),
        a["quats"],
    ], axis=1).astype("<f4")  # [N, 62] in PLY_PROPERTIES order

    extras = []
    if a["labels"] is not None:
        extras.append((PART_PROPERTY, a["labels"].astype("<i4")))
    extras += _extra_columns(extra, n, set(PLY_PROPERTIES) | {PART_PROPERTY})
    return write_vertex_ply(path, PLY_PROPERTIES, columns, extras,
                            f"{_COMMENT_KEY} up={'-y' if y_down else '+y'} {mode}")


def write_vertex_ply(path, names: Sequence[str], columns: np.ndarray,
                     extras: Sequence[tuple[str, np.ndarray]], comment: str) -> Path:
    """One binary little-endian ``vertex`` element: float32 ``columns`` [N,len(names)] named
    ``names``, then the ``extras`` (name, [N] array) in their own dtypes; atomically."""
    n = columns.shape[0]
    dtype = np.dtype([(p, "<f4") for p in names] + [(k, v.dtype) for k, v in extras])
    vertex = np.empty(n, dtype)
    for i, p in enumerate(names):
        vertex[p] = columns[:, i]
    for k, v in extras:
        vertex[k] = v
    ply = PlyData([PlyElement.describe(vertex, "vertex")], text=False, byte_order="<",
                  comments=[comment])
    with atomic_path(path) as tmp:
        ply.write(str(tmp))
    return Path(path)


def _parse_comment(comments: list[str]) -> dict[str, str]:
    for c in comments:
        parts = c.split()
        if parts and parts[0] == _COMMENT_KEY:
            return dict(p.split("=", 1) for p in parts[1:] if "=" in p)
    return {}


def load_ply(path, *, y_down: bool | None = None) -> Gaussians:
    """Read a Gaussian ``.ply`` (ours or any INRIA-layout file) into activated Gaussians.

    y_down: the file is in the y-down viewer world and should be rotated back to ours.
    None (default) trusts the file's ``humansplat up=...`` comment, and means False for
    files without one. Raises ValueError naming missing properties or non-finite values."""
    p = _existing_file(path, "PLY")
    try:
        ply = PlyData.read(str(p))
    except Exception as e:  # plyfile raises several types for malformed headers/bodies
        raise InvalidFileError(f"{p} is not a readable PLY file ({e})") from e
    try:
        v = ply["vertex"].data
    except KeyError:
        raise InvalidFileError(f"{p} has no 'vertex' element, so it holds no Gaussians") from None
    names = set(v.dtype.names or ())
    missing = [k for k in _REQUIRED if k not in names]
    if missing:
        raise InvalidFileError(f"{p} is not a Gaussian splat PLY: missing properties "
                               f"{', '.join(missing)}")
    n_rest = sum(1 for k in names if k.startswith("f_rest_"))
    if n_rest not in _REST_COUNT_TO_DEGREE or any(f"f_rest_{i}" not in names
                                                  for i in range(n_rest)):
        raise InvalidFileError(f"{p}: expected f_rest_0..f_rest_<m-1> with m in 0, 9, 24 or "
                               f"45, found {n_rest} f_rest properties")
    col = lambda k: np.asarray(v[k], dtype=np.float64)  # noqa: E731
    stacked = lambda ks: np.stack([col(k) for k in ks], axis=1)  # noqa: E731
    arrays = {
        "x y z": stacked(("x", "y", "z")),
        "f_dc": stacked(("f_dc_0", "f_dc_1", "f_dc_2")),
        "f_rest": stacked([f"f_rest_{i}" for i in range(n_rest)]) if n_rest else None,
        "opacity": col("opacity"),
        "scale": stacked(("scale_0", "scale_1", "scale_2")),
        "rot": stacked(("rot_0", "rot_1", "rot_2", "rot_3")),
    }
    for k, a in arrays.items():
        if a is not None:
            _check_finite(k, a, str(p))
    n = arrays["x y z"].shape[0]
    info = _parse_comment(ply.comments)
    file_degree = _REST_COUNT_TO_DEGREE[n_rest]
    degree = min(int(info.get("sh_degree", file_degree)), file_degree)
    rgb_mode = info.get("colors", "rgb" if file_degree == 0 else "sh") == "rgb"

    means = arrays["x y z"].astype(np.float32)
    quats = _normalize_quats(arrays["rot"], str(p))
    scales = np.exp(arrays["scale"]).astype(np.float32)
    opacities = (1.0 / (1.0 + np.exp(-arrays["opacity"]))).astype(np.float32)
    colors = sh = None
    if rgb_mode:
        colors = np.clip(0.5 + SH_C0 * arrays["f_dc"], 0.0, 1.0).astype(np.float32)
    else:
        k = (degree + 1) ** 2 - 1
        rest = (np.zeros((n, 3, 0)) if not n_rest
                else arrays["f_rest"].reshape(n, 3, n_rest // 3)[:, :, :k])
        sh = np.concatenate([arrays["f_dc"][:, None], rest.transpose(0, 2, 1)],
                            axis=1).astype(np.float32)
    labels = None
    if PART_PROPERTY in names:
        lab = np.asarray(v[PART_PROPERTY])
        if lab.dtype.kind == "f" and not np.all(np.isfinite(lab) & (lab == np.round(lab))):
            raise InvalidFileError(f"{p}: property 'part' must hold integer labels")
        labels = lab.astype(np.int64)
    if y_down is None:
        y_down = info.get("up") == "-y"
    if y_down:
        means, quats, sh = _flip_scene(means, quats, sh, inverse=True)
    return _to_gaussians(means, quats, scales, opacities, colors, sh, labels)


# --------------------------------------------------------------------------------------------
# .splat
# --------------------------------------------------------------------------------------------

def save_splat(g: Gaussians, path, *, y_down: bool = False) -> Path:
    """Write ``g`` as a ``.splat`` file (32 bytes a splat, sorted by decreasing
    prod(scale) * opacity; DC colour only). Returns the path written."""
    a = _gaussian_arrays(g, y_down, "save_splat")
    rgb = _np(g.rgb)
    _check_finite("colors", rgb, "save_splat")
    n = a["means"].shape[0]
    # Viewers draw big, opaque splats first; a stable sort keeps ties deterministic.
    key = np.prod(a["scales"].astype(np.float64), axis=1) * a["opacities"]
    order = np.argsort(-key, kind="stable")
    rows = np.empty(n, SPLAT_DTYPE)
    rows["position"] = a["means"][order]
    rows["scale"] = a["scales"][order]
    rgba = np.concatenate([np.clip(rgb, 0, 1), a["opacities"][:, None]], axis=1)
    rows["rgba"] = np.clip(np.rint(rgba[order] * 255.0), 0, 255).astype(np.uint8)
    rows["rotation"] = np.clip(np.rint(a["quats"][order] * 128.0 + 128.0), 0, 255
                               ).astype(np.uint8)
    with atomic_path(path) as tmp:
        rows.tofile(tmp)
    return Path(path)


def load_splat(path, *, y_down: bool = False) -> Gaussians:
    """Decode a ``.splat`` file into activated RGB Gaussians (colour and opacity quantised to
    1/255, rotation components to 1/128). ``y_down``: the file is in the y-down viewer world
    and should be rotated back to ours (the format has no header to say so)."""
    p = _existing_file(path, ".splat")
    size = p.stat().st_size
    if size == 0 or size % SPLAT_ROW_BYTES:
        raise InvalidFileError(f"{p} is not a .splat file: its size ({size} bytes) is not a "
                               f"positive multiple of {SPLAT_ROW_BYTES}")
    rows = np.fromfile(p, SPLAT_DTYPE)
    _check_finite("position", rows["position"], str(p))
    _check_finite("scale", rows["scale"], str(p))
    if (rows["scale"] < 0).any():
        raise InvalidFileError(f"{p}: negative scales; not a .splat file")
    rgba = rows["rgba"].astype(np.float32) / 255.0
    quats = _normalize_quats((rows["rotation"].astype(np.float64) - 128.0) / 128.0, str(p))
    means = rows["position"].astype(np.float32)
    if y_down:
        means, quats, _ = _flip_scene(means, quats, None, inverse=True)
    return _to_gaussians(means, quats, rows["scale"], rgba[:, 3], colors=rgba[:, :3])
