"""Rotation maths and mesh normals: the one home of each, used by every layer above.

Quaternions are (w, x, y, z); rotation matrices act on column vectors; axis-angle vectors
carry the angle (radians) as their norm.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["quat_to_rotmat", "rotmat_to_quat", "quat_multiply", "quat_conjugate",
           "axis_angle_to_matrix", "quat_to_axis_angle", "vertex_normals"]


# ----------------------------------------------------------------------------------------
# rotations
# ----------------------------------------------------------------------------------------
def quat_to_rotmat(quats: Tensor) -> Tensor:
    """Rotation matrices [...,3,3] from quaternions [...,4] (w, x, y, z), normalised first."""
    q = F.normalize(quats, dim=-1)
    w, x, y, z = q.unbind(-1)
    xx, yy, zz = x * x, y * y, z * z
    xy, xz, yz = x * y, x * z, y * z
    wx, wy, wz = w * x, w * y, w * z
    R = torch.stack([
        1 - 2 * (yy + zz), 2 * (xy - wz), 2 * (xz + wy),
        2 * (xy + wz), 1 - 2 * (xx + zz), 2 * (yz - wx),
        2 * (xz - wy), 2 * (yz + wx), 1 - 2 * (xx + yy),
    ], dim=-1)
    return R.reshape(q.shape[:-1] + (3, 3))


def rotmat_to_quat(R: Tensor) -> Tensor:
    """Unit quaternions [...,4] (w, x, y, z; w >= 0) from rotation matrices [...,3,3].

    Shepperd's method: build the quaternion from whichever of w, x, y, z is largest, so no
    branch divides by a small number."""
    if R.shape[-2:] != (3, 3):
        raise ValueError(f"R must be [...,3,3], got {tuple(R.shape)}")
    m = R
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    tr = m00 + m11 + m22
    # four candidate (unnormalised) quaternions, each well-conditioned when its lead is big
    cand = torch.stack([
        torch.stack([1 + tr, m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0],
                     m[..., 1, 0] - m[..., 0, 1]], -1),
        torch.stack([m[..., 2, 1] - m[..., 1, 2], 1 + m00 - m11 - m22,
                     m[..., 0, 1] + m[..., 1, 0], m[..., 0, 2] + m[..., 2, 0]], -1),
        torch.stack([m[..., 0, 2] - m[..., 2, 0], m[..., 0, 1] + m[..., 1, 0],
                     1 - m00 + m11 - m22, m[..., 1, 2] + m[..., 2, 1]], -1),
        torch.stack([m[..., 1, 0] - m[..., 0, 1], m[..., 0, 2] + m[..., 2, 0],
                     m[..., 1, 2] + m[..., 2, 1], 1 - m00 - m11 + m22], -1),
    ], dim=-2)  # [...,4(candidate),4]
    lead = torch.stack([1 + tr, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22,
                        1 - m00 - m11 + m22], -1)  # [...,4] = 4 * component^2
    best = lead.argmax(dim=-1, keepdim=True)  # [...,1]
    q = torch.gather(cand, -2, best[..., None].expand(best.shape[:-1] + (1, 4))).squeeze(-2)
    q = F.normalize(q, dim=-1)
    return torch.where(q[..., :1] < 0, -q, q)


def quat_multiply(q1: Tensor, q2: Tensor) -> Tensor:
    """Hamilton product q1 * q2 of quaternions [...,4] (w, x, y, z): rotate by q2, then q1."""
    w1, x1, y1, z1 = q1.unbind(-1)
    w2, x2, y2, z2 = q2.unbind(-1)
    return torch.stack([
        w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2,
        w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
        w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
        w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2,
    ], dim=-1)


def quat_conjugate(q: Tensor) -> Tensor:
    """[...,4] (w, x, y, z) -> its conjugate (the inverse rotation for unit quaternions)."""
    return q * q.new_tensor([1.0, -1.0, -1.0, -1.0])


def _skew(v: Tensor) -> Tensor:
    """[...,3] -> [...,3,3] cross-product matrices."""
    x, y, z = v.unbind(-1)
    o = torch.zeros_like(x)
    return torch.stack([o, -z, y, z, o, -x, -y, x, o], dim=-1).reshape(*v.shape, 3)


def axis_angle_to_matrix(aa: Tensor) -> Tensor:
    """Rodrigues: axis-angle [...,3] (angle = norm, radians) -> rotation matrices [...,3,3].
    Finite value and gradient at zero (Taylor terms below 1e-4 rad)."""
    theta2 = (aa * aa).sum(-1, keepdim=True)[..., None]  # [...,1,1]
    small = theta2 < 1e-8
    t2 = torch.where(small, torch.ones_like(theta2), theta2)
    t = t2.sqrt()
    a = torch.where(small, 1.0 - theta2 / 6.0, torch.sin(t) / t)
    b = torch.where(small, 0.5 - theta2 / 24.0, (1.0 - torch.cos(t)) / t2)
    K = _skew(aa)
    eye = torch.eye(3, dtype=aa.dtype, device=aa.device).expand_as(K)
    return eye + a * K + b * (K @ K)


def quat_to_axis_angle(q: Tensor) -> Tensor:
    """Axis-angle [...,3] (angle = norm, radians, at most pi) from quaternions [...,4]
    (w, x, y, z), normalised first; the inverse of :func:`axis_angle_to_matrix` through
    :func:`rotmat_to_quat`."""
    q = F.normalize(q, dim=-1)
    q = torch.where(q[..., :1] < 0, -q, q)  # the shorter way round
    v = q[..., 1:]
    s = v.norm(dim=-1, keepdim=True)
    angle = 2.0 * torch.atan2(s, q[..., :1])
    # angle / sin(angle / 2) -> 2 as s -> 0
    return v * torch.where(s > 1e-8, angle / s.clamp_min(1e-12), torch.full_like(s, 2.0))


# ----------------------------------------------------------------------------------------
# mesh normals
# ----------------------------------------------------------------------------------------
def vertex_normals(vertices: Tensor, faces: Tensor, *, outward: bool = True,
                   n_vertices: int | None = None) -> Tensor:
    """[N,3] unit area-weighted vertex normals, in ``vertices``' float dtype (at least fp32).

    outward: orient them outward (the winding is flipped when the mesh's signed volume says
    it points inward); False follows the faces' winding (open surfaces, e.g. garments, have
    no inside to test). n_vertices: the count N when trailing vertices are unused."""
    v = vertices if vertices.dtype == torch.float64 else vertices.float()
    f = faces.long()
    a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    fn = torch.linalg.cross(b - a, c - a, dim=-1)  # length = 2 x area
    n = torch.zeros(n_vertices or v.shape[0], 3, dtype=v.dtype, device=v.device).index_add_(
        0, f.reshape(-1), fn.repeat_interleave(3, dim=0))
    if outward and (a * torch.linalg.cross(b, c, dim=-1)).sum() < 0:  # signed volume
        n = -n
    return F.normalize(n, dim=-1)


def mesh_adjacency(faces: Tensor, n_vertices: int):
    """Symmetric 0/1 vertex adjacency [N,N] of a triangle mesh (scipy CSR, float64)."""
    import numpy as np
    import scipy.sparse as sp

    f = faces.long().cpu().numpy()
    e = np.sort(np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]), axis=1)
    key = np.unique(e[:, 0] * n_vertices + e[:, 1])  # one entry per undirected edge
    i, j = key // n_vertices, key % n_vertices
    A = sp.coo_matrix((np.ones(len(key)), (i, j)), shape=(n_vertices, n_vertices))
    return (A + A.T).tocsr()
