"""Wavefront OBJ for the fitted body mesh: triangles, optional per-vertex colours.

Vertex colours use the common ``v x y z r g b`` extension (floats in [0,1]), which trimesh,
MeshLab and Blender read. Faces are 1-based in the file, 0-based in memory.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from ..errors import InvalidFileError, MissingFileError
from .paths import as_path, atomic_path

__all__ = ["ObjMesh", "save_obj", "load_obj"]


class ObjMesh(NamedTuple):
    verts: np.ndarray  # [V,3] float32
    faces: np.ndarray  # [F,3] int64, 0-based
    vertex_colors: np.ndarray | None  # [V,3] float32 in [0,1], or None


def _arr(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def save_obj(path, verts, faces, vertex_colors=None, *, precision: int = 6) -> Path:
    """Write a triangle mesh. verts [V,3] float, faces [F,3] int (0-based), vertex_colors
    [V,3] float in [0,1] or uint8 (optional). Returns the path written."""
    v = _arr(verts)
    f = _arr(faces)
    if v.ndim != 2 or v.shape[1] != 3 or v.dtype.kind not in "fiu":
        raise ValueError(f"save_obj: verts must be numeric [V,3], got {v.dtype} {list(v.shape)}")
    if not np.isfinite(v).all():
        raise ValueError("save_obj: verts contain NaN or infinite values")
    if f.ndim != 2 or f.shape[1] != 3 or f.dtype.kind not in "iu":
        raise ValueError(f"save_obj: faces must be integer [F,3], got {f.dtype} {list(f.shape)}")
    if f.size and (f.min() < 0 or f.max() >= len(v)):
        raise ValueError(f"save_obj: face indices must lie in [0, {len(v)}), got "
                         f"[{f.min()}, {f.max()}]")
    data = v.astype(np.float64)
    fmt = "v " + " ".join([f"%.{precision}f"] * 3)
    if vertex_colors is not None:
        c = _arr(vertex_colors)
        if c.shape != (len(v), 3):
            raise ValueError(f"save_obj: vertex_colors must be [{len(v)},3], got {list(c.shape)}")
        if c.dtype == np.uint8:
            c = c.astype(np.float64) / 255.0
        elif c.dtype.kind == "f":
            if not np.isfinite(c).all() or c.min() < 0 or c.max() > 1:
                raise ValueError("save_obj: float vertex_colors must lie in [0, 1]")
        else:
            raise ValueError(f"save_obj: vertex_colors must be float or uint8, got {c.dtype}")
        data = np.concatenate([data, c.astype(np.float64)], axis=1)
        fmt += " %.4f %.4f %.4f"
    p = as_path(path)
    with atomic_path(p) as tmp:
        with open(tmp, "w", encoding="ascii", newline="\n") as fh:
            fh.write(f"# humansplat mesh: {len(v)} vertices, {len(f)} triangles\n")
            # A multi-specifier fmt carries the "v "/"f " tag: one vectorised pass each.
            np.savetxt(fh, data, fmt=fmt)
            np.savetxt(fh, f.astype(np.int64) + 1, fmt="f %d %d %d")
    return p


def _face_index(token: str, n_verts: int) -> int:
    i = int(token.split("/", 1)[0])
    return i - 1 if i > 0 else n_verts + i  # OBJ negative indices count back from the end


def load_obj(path) -> ObjMesh:
    """Read vertices, per-vertex colours (when every vertex has them) and faces of an OBJ;
    polygons are fan-triangulated, ``v/vt/vn`` face tokens and negative indices accepted.
    Other statements (vt, vn, groups, materials) are ignored."""
    p = as_path(path)
    if not p.is_file():
        raise MissingFileError(f"no such OBJ file: {p}")
    verts, colors, faces = [], [], []
    with open(p, "r", encoding="utf-8", errors="replace") as fh:
        for ln, line in enumerate(fh, start=1):
            parts = line.split()
            if not parts:
                continue
            try:
                if parts[0] == "v":
                    vals = [float(x) for x in parts[1:]]
                    if len(vals) < 3:
                        raise ValueError("a vertex needs 3 coordinates")
                    verts.append(vals[:3])
                    colors.append(vals[3:6] if len(vals) >= 6 else None)
                elif parts[0] == "f":
                    idx = [_face_index(t, len(verts)) for t in parts[1:]]
                    if len(idx) < 3:
                        raise ValueError("a face needs at least 3 vertices")
                    faces.extend([idx[0], idx[k], idx[k + 1]] for k in range(1, len(idx) - 1))
            except ValueError as e:
                raise InvalidFileError(f"{p}:{ln}: malformed OBJ line {line.strip()!r} "
                                       f"({e})") from None
    v = np.asarray(verts, np.float32).reshape(-1, 3)
    f = np.asarray(faces, np.int64).reshape(-1, 3)
    if f.size and (f.min() < 0 or f.max() >= len(v)):
        raise InvalidFileError(f"{p}: face indices out of range for {len(v)} vertices")
    c = None
    if colors and all(x is not None for x in colors):
        c = np.asarray(colors, np.float32)
        if c.max() > 1.0:  # some writers store 0..255
            c = c / 255.0
    return ObjMesh(v, f, c)
