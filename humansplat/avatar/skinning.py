"""Reposable Gaussians: bind a reconstruction to its fitted body, unpose, repose with LBS.

Binding (once, :func:`bind`): every Gaussian finds its nearest point on the *posed* fitted
body surface, as a face and barycentric weights (``surface.closest_points_on_mesh``). Its
skinning weights are the barycentric blend of that face's vertex weights, so they vary
smoothly over the surface (no seams at nearest-vertex Voronoi borders). Gaussians far from
the body (loose garments: skirts, coats, long hair) blend toward the weights of all the body
within reach (a kernel over the nearby vertices whose width grows with the distance): a
skirt between the legs then follows both legs and the hips on average instead of tearing
apart with one leg each.

With those weights ``w`` the Gaussian moves exactly as the body model's linear blend
skinning moves the surface there: ``A = sum_j w_j T_j`` (``T_j`` the rest-to-posed bone
transforms, global placement included). Unposing stores the rest-space position
``x_c = A^-1 x`` (its offset from the surface point is thereby kept in that point's local
frame), the rotation ``q_c = R^-1 q`` with ``R = polar(L)`` the rotation of A's linear part
``L``, and the scale over the body's global scale. Reposing evaluates the bone transforms of
the new pose only (no mesh): ``x' = A' x_c``, ``q' = R' q_c``, scales kept (times the new
global scale over the fitted one). Reposing to the fitted pose gives back the input exactly
(up to float rounding). Pose-dependent corrective shapes (SMPL's) are not applied.

View-dependent colour (SH degree > 0) is dropped to its DC term when binding: rotating SH
bands per Gaussian would need Wigner matrices, and the reconstruction model emits RGB.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import InvalidFileError, MissingFileError
from ..gaussians import Gaussians
from ..geometry import axis_angle_to_matrix, quat_conjugate, quat_multiply, rotmat_to_quat
from .surface import closest_points_on_mesh

__all__ = ["BodyParams", "Avatar", "bind", "body_surface_gaussians", "polar_rotation",
           "smpl_rotations_to_body_pose", "BODY_PARAMS_FILE"]

BODY_PARAMS_FILE = "body.npz"  # next to gaussians.ply in a saved reconstruction folder


def _cofactor(X: Tensor) -> Tensor:
    """Cofactor matrices [...,3,3] (= det(X) X^-T), from cross products of the rows."""
    r0, r1, r2 = X[..., 0, :], X[..., 1, :], X[..., 2, :]
    return torch.stack([torch.linalg.cross(r1, r2, dim=-1), torch.linalg.cross(r2, r0, dim=-1),
                        torch.linalg.cross(r0, r1, dim=-1)], dim=-2)


def polar_rotation(L: Tensor, *, iters: int = 8, tol: float = 2e-6) -> Tensor:
    """The rotation nearest to each linear map L [...,3,3]: the orthogonal factor of its
    polar decomposition. Scaled Newton iteration ``X <- (g X + X^-T / g) / 2`` with
    ``g = |det X|^(-1/3)`` (Higham), with closed-form 3x3 inverses: ~40x faster than a
    batched SVD on the CPU, and quadratic convergence from the near-rotations that blended
    bone transforms are. Maps with det <= 0 (never from LBS) go through the SVD, a
    reflection turned into the nearest proper rotation."""
    X = L
    for _ in range(iters):
        cof = _cofactor(X)
        det = (X[..., 0, :] * cof[..., 0, :]).sum(-1)[..., None, None]
        g = det.abs().clamp_min(1e-30) ** (-1.0 / 3.0)
        nxt = 0.5 * (g * X + cof / (g * det.sign().where(det != 0, torch.ones_like(det))
                                     * det.abs().clamp_min(1e-30)))
        done = bool(((nxt - X).abs().amax() < tol))
        X = nxt
        if done:
            break
    bad = torch.det(L) <= 0
    if bool(bad.any()):
        U, _, Vh = torch.linalg.svd(L[bad])
        R = U @ Vh
        flip = torch.det(R) < 0
        U[flip, :, 2] *= -1
        X = X.clone()
        X[bad] = U @ Vh
    return X


# ----------------------------------------------------------------------------------------
# body parameters
# ----------------------------------------------------------------------------------------
@dataclass
class BodyParams:
    """A body model's parameters for one person (what ``BodyFit.params`` holds), storable.

    body_pose [J-1,3] axis-angle (or [J-1,3,3]), shape [S], global_orient [3], transl [3],
    scale [] (see ``humansplat.prior.body``); model: the body model's name ("anny",
    "smpl")."""

    body_pose: Tensor
    shape: Tensor
    global_orient: Tensor
    transl: Tensor
    scale: Tensor
    model: str = "anny"

    @classmethod
    def from_fit(cls, fit, model: str | None = None) -> "BodyParams":
        """From a ``prior.fit.BodyFit`` (its ``params``; the model name from its
        diagnostics unless given)."""
        p = fit.params
        name = model or str(fit.diagnostics.get("model", "anny")).lower()
        name = "smpl" if "smpl" in name else "anny" if "anny" in name else name
        return cls(*(torch.as_tensor(p[k]).detach().float().cpu() for k in
                     ("body_pose", "shape", "global_orient", "transl", "scale")), model=name)

    def forward_args(self, device=None, dtype=torch.float32) -> dict:
        """Batch-of-one keyword arguments for ``BodyModel.forward``."""
        t = lambda x: x.to(device=device, dtype=dtype)[None]  # noqa: E731
        return dict(body_pose=t(self.body_pose), shape=t(self.shape),
                    global_orient=t(self.global_orient), transl=t(self.transl),
                    scale=self.scale.to(device=device, dtype=dtype).reshape(1))

    def save(self, path) -> Path:
        """Write an ``.npz`` (float32 arrays + the model name)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {f.name: getattr(self, f.name).detach().cpu().float().numpy()
                  for f in fields(self) if f.name != "model"}
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, model=np.array(self.model), **arrays)
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path) -> "BodyParams":
        path = Path(path)
        if not path.is_file():
            raise MissingFileError(f"no body parameters file: {path}")
        try:
            with np.load(path, allow_pickle=False) as z:
                data = {k: z[k] for k in z.files}
        except Exception as err:
            raise InvalidFileError(f"{path} is not a body parameters file ({err})") from err
        missing = [f.name for f in fields(cls) if f.name not in data]
        if missing:
            raise InvalidFileError(f"{path} is not a body parameters file: missing {missing}")
        t = lambda k: torch.as_tensor(data[k], dtype=torch.float32)  # noqa: E731
        return cls(t("body_pose"), t("shape"), t("global_orient"), t("transl"),
                   t("scale").reshape(()), model=str(data["model"]))

    def body_model(self):
        """A fresh instance of the body model these parameters belong to."""
        from ..prior.body import load_body_model

        return load_body_model(self.model)


def smpl_rotations_to_body_pose(model, smpl_rotmats: Tensor) -> Tensor:
    """Per-SMPL-joint rotations [B,24,3,3] (joint 0, the root, ignored) -> the model's
    ``body_pose`` [B,J-1,3,3]; joints without an SMPL counterpart stay at rest (identity).
    The matrix version of ``BodyModel.body_pose_from_smpl``, so poses compose exactly."""
    B = smpl_rotmats.shape[0]
    idx = model.smpl_joints[1:].to(smpl_rotmats.device)
    keep = idx > 0
    out = torch.eye(3, dtype=smpl_rotmats.dtype, device=smpl_rotmats.device).repeat(
        B, model.num_joints - 1, 1, 1)
    out[:, idx[keep] - 1] = smpl_rotmats[:, 1:][:, keep]
    return out


# ----------------------------------------------------------------------------------------
# the avatar
# ----------------------------------------------------------------------------------------
@dataclass
class Avatar:
    """Gaussians bound to a body in canonical (rest) space; :meth:`pose` reposes them.

    joints [N,K] int64 / weights [N,K]: each Gaussian's K largest skinning weights (summing
    to 1) and their bones. means [N,3] / quats [N,4]: in the body's rest space (root at the
    origin, unscaled). scales [N,3]: rest-space units (world / the fitted global scale).
    face [N] / bary [N,3] / distance [N]: the nearest point on the fitted body and how far
    the Gaussian was from it (metres). opacities, colors, labels: as in :class:`Gaussians`.
    params: the fitted body (defaults for the global placement when reposing).
    """

    body_model: torch.nn.Module
    params: BodyParams
    joints: Tensor
    weights: Tensor
    means: Tensor
    quats: Tensor
    scales: Tensor
    opacities: Tensor
    colors: Tensor
    face: Tensor
    bary: Tensor
    distance: Tensor
    labels: Tensor | None = None

    def __len__(self) -> int:
        return int(self.means.shape[0])

    # -- body evaluation ------------------------------------------------------------------
    def _transforms(self, body_pose, global_orient, transl, scale) -> Tensor:
        """Blended rest-to-posed transforms [B,N,3,4] of every Gaussian for a batch."""
        m = self.body_model
        none = torch.zeros(0, dtype=torch.long, device=m.device)  # bones only, no mesh
        out = m(body_pose, self.params.shape.to(m.device, m.dtype)[None], global_orient,
                transl, scale, vertex_ids=none)
        T = out.bone_transforms[:, :, :3, :]  # [B,J,3,4]
        w = self.weights.to(T.dtype)[None, :, :, None, None]  # [1,N,K,1,1]
        return (w * T[:, self.joints]).sum(2)  # [B,N,3,4]

    def _global_args(self, global_orient, transl, scale) -> tuple[Tensor, Tensor, Tensor]:
        """Batched global placement (``[B,3]``/``[B,3,3]`` orient, ``[B,3]`` transl, ``[B]``
        scale; B may be 1), each defaulting to the fitted one. A 1-D orient [3] or transl
        [3] counts as a batch of one."""
        p, m = self.params, self.body_model
        dev, dt = m.device, m.dtype
        go = torch.as_tensor(p.global_orient if global_orient is None else global_orient)
        go = go.to(dev, dt)
        if go.ndim == 1:
            go = go[None]
        tr = torch.as_tensor(p.transl if transl is None else transl).to(dev, dt).reshape(-1, 3)
        sc = torch.as_tensor(p.scale if scale is None else scale).to(dev, dt).reshape(-1)
        return go, tr, sc

    def pose_batch(self, body_pose: Tensor | None = None, *, global_orient=None, transl=None,
                   scale=None) -> list[Gaussians]:
        """Repose to a batch of poses: ``body_pose`` [B,J-1,3] axis-angle or [B,J-1,3,3]
        (None: the fitted pose); global placement per frame or shared ([B,...] or one),
        defaults the fitted ones. Returns B Gaussians in the world (+y up)."""
        m = self.body_model
        if body_pose is None:
            body_pose = self.params.body_pose[None]
        body_pose = torch.as_tensor(body_pose).to(m.device, m.dtype)
        go, tr, sc = self._global_args(global_orient, transl, scale)
        with torch.no_grad():
            A = self._transforms(body_pose, go, tr, sc)
            L = A[..., :3]
            means = (L @ self.means[None, ..., None].to(L.dtype)).squeeze(-1) + A[..., 3]
            R = polar_rotation(L)
            quats = F.normalize(quat_multiply(rotmat_to_quat(R), self.quats[None].to(R.dtype)),
                                dim=-1)
        B = means.shape[0]
        sc = sc.expand(B)
        return [Gaussians(means=means[i].float(), quats=quats[i].float(),
                          scales=self.scales * sc[i].float(), opacities=self.opacities,
                          colors=self.colors, labels=self.labels) for i in range(B)]

    def pose(self, body_pose: Tensor | None = None, **kwargs) -> Gaussians:
        """Repose to one pose: ``body_pose`` [J-1,3] / [J-1,3,3] (the model's joints) or
        None (the fitted pose); see :meth:`pose_batch` for the keywords."""
        if body_pose is not None:
            body_pose = torch.as_tensor(body_pose)[None]
        go = kwargs.get("global_orient")
        if go is not None and torch.as_tensor(go).shape == (3, 3):
            kwargs["global_orient"] = torch.as_tensor(go)[None]  # one matrix, not 3 vectors
        return self.pose_batch(body_pose, **kwargs)[0]

    def pose_smpl(self, smpl_pose: Tensor, **kwargs) -> Gaussians:
        """Repose to a per-SMPL-joint pose [24,3] axis-angle or [24,3,3] (root ignored)."""
        r = torch.as_tensor(smpl_pose, dtype=torch.float32)
        r = axis_angle_to_matrix(r) if r.shape[-1] == 3 and r.ndim == 2 else r
        bp = smpl_rotations_to_body_pose(self.body_model, r[None].to(self.body_model.device))
        return self.pose(bp[0], **kwargs)

    def canonical(self) -> Gaussians:
        """The Gaussians in the rest pose, in rest space (root at the origin, scale 1, no
        global rotation): the unposed avatar."""
        return Gaussians(means=self.means.float(), quats=self.quats, scales=self.scales,
                         opacities=self.opacities, colors=self.colors, labels=self.labels)

    def rigid(self, *, global_orient=None, transl=None, scale=None) -> Gaussians:
        """The rigid (unskinned) baseline: the Gaussians as reconstructed, moved only by the
        change of global placement from the fitted one (no articulation)."""
        posed = self.pose()  # the input Gaussians (exact round trip)
        p = self.params
        if global_orient is not None and torch.as_tensor(global_orient).shape == (3, 3):
            global_orient = torch.as_tensor(global_orient)[None]
        go, tr, sc = self._global_args(global_orient, transl, scale)
        R0 = axis_angle_to_matrix(p.global_orient.float()) if p.global_orient.ndim == 1 \
            else p.global_orient.float()
        R1 = (axis_angle_to_matrix(go[0]) if go[0].ndim == 1 else go[0]).float().cpu()
        s = float(sc[0]) / float(p.scale)
        Rrel = R1 @ R0.T
        # x -> transl1 + s * Rrel (x - transl0): the root placement changes, the body does not
        means = s * (posed.means - p.transl.float()) @ Rrel.T + tr[0].float().cpu()
        q = quat_multiply(rotmat_to_quat(Rrel)[None].expand_as(posed.quats), posed.quats)
        return replace(posed, means=means, quats=F.normalize(q, dim=-1),
                       scales=posed.scales * s)


def _smoothstep(x: Tensor) -> Tensor:
    x = x.clamp(0, 1)
    return x * x * (3 - 2 * x)


def _loose_weights(points: Tensor, dist: Tensor, verts: Tensor, lbs: Tensor, *,
                   k: int, reach: float) -> Tensor:
    """Skinning weights [n,J] of points [n,3] at distance ``dist`` [n] from the body: a
    Gaussian kernel over their ``k`` nearest vertices, ``reach`` x the distance wide."""
    from scipy.spatial import cKDTree

    kk = min(k, verts.shape[0])
    d, idx = cKDTree(verts.cpu().double().numpy()).query(points.cpu().double().numpy(), k=kk)
    d = torch.as_tensor(np.asarray(d).reshape(-1, kk), dtype=lbs.dtype, device=lbs.device)
    idx = torch.as_tensor(np.asarray(idx).reshape(-1, kk), device=lbs.device)
    h = (reach * dist).clamp_min(1e-3)[:, None]
    kern = torch.exp(-0.5 * (d ** 2 - d[:, :1] ** 2) / h ** 2)  # relative to the nearest
    kern = kern / kern.sum(1, keepdim=True)
    return (kern[..., None] * lbs[idx]).sum(1)


def bind(gaussians: Gaussians, body_model, params: BodyParams | object, *,
         binding: str = "triangle", k: int = 8, max_bones: int = 8,
         loose_from: float = 0.02, loose_full: float = 0.08,
         loose_reach: float = 1.0) -> Avatar:
    """Bind ``gaussians`` (world, in the pose of ``params``) to ``body_model``.

    params: :class:`BodyParams` or a ``BodyFit`` (its params are read). binding:
    "triangle" (nearest surface point, barycentric skinning weights; default) or "vertex"
    (the nearest vertex's weights: the simpler scheme, kept for comparison). Gaussians
    between ``loose_from`` and ``loose_full`` metres from the body blend, and farther ones
    take, the kernel weights of the body within ``loose_reach`` x their distance
    (``loose_full=None`` turns this off). ``max_bones``: weights kept per Gaussian (the
    largest, renormalised). ``k``: candidate vertices of the surface search.
    Labels missing from ``gaussians`` are filled with the part of the nearest body point."""
    if binding not in ("triangle", "vertex"):
        raise ValueError(f"binding must be 'triangle' or 'vertex', got {binding!r}")
    if not isinstance(params, BodyParams):
        params = BodyParams.from_fit(params)
    if len(gaussians) == 0:
        raise ValueError("bind: there are no Gaussians to bind")
    g = gaussians.with_rgb() if gaussians.sh is not None else gaussians
    m = body_model
    dev, dt = m.device, m.dtype
    with torch.no_grad():
        out = m(**params.forward_args(dev, dt))
        verts = out.vertices[0]
        means = g.means.detach().to(dev, dt)
        if binding == "triangle":
            hit = closest_points_on_mesh(means, verts, m.faces, k=k)
            face, bary, dist = hit.face, hit.bary, hit.dist
        else:
            from scipy.spatial import cKDTree

            d, vid = cKDTree(verts.cpu().double().numpy()).query(means.cpu().double().numpy())
            vid = torch.as_tensor(vid, dtype=torch.long, device=dev)
            face, corner = _a_face_of(m.faces, vid, verts.shape[0])
            bary = F.one_hot(corner, 3).to(dt)
            dist = torch.as_tensor(d, dtype=dt, device=dev)
        corners = m.faces[face]  # [N,3]
        W = (bary[..., None] * m.lbs_weights[corners]).sum(1)  # [N,J]
        if loose_full is not None:
            lam = _smoothstep((dist - loose_from) / max(loose_full - loose_from, 1e-6))
            far = lam > 0
            if bool(far.any()):
                Wl = _loose_weights(means[far], dist[far], verts, m.lbs_weights, k=64,
                                    reach=loose_reach)
                W[far] = (1 - lam[far, None]) * W[far] + lam[far, None] * Wl
        top, joints = W.topk(min(max_bones, W.shape[1]), dim=1)
        weights = top / top.sum(1, keepdim=True).clamp_min(1e-12)
        T = out.bone_transforms[0, :, :3, :]  # [J,3,4] rest -> fitted pose
        A = (weights[..., None, None] * T[joints]).sum(1)  # [N,3,4]
        L = A[..., :3]
        rest = torch.linalg.solve(L, (means - A[..., 3])[..., None]).squeeze(-1)
        R = polar_rotation(L)
        quats = F.normalize(quat_multiply(quat_conjugate(rotmat_to_quat(R)),
                                          F.normalize(g.quats.to(dt), dim=-1)), dim=-1)
        labels = g.labels
        if labels is None:
            labels = m.part_labels[corners.gather(1, bary.argmax(1, keepdim=True))[:, 0]]
    return Avatar(body_model=m, params=params, joints=joints, weights=weights.float(),
                  means=rest.float(), quats=quats.float(),
                  scales=g.scales / float(params.scale), opacities=g.opacities,
                  colors=g.colors, face=face, bary=bary, distance=dist,
                  labels=labels.long())


def _a_face_of(faces: Tensor, vid: Tensor, num_vertices: int) -> tuple[Tensor, Tensor]:
    """For vertices ``vid`` [N]: one face containing each, and the corner (0..2) it is."""
    flat = faces.reshape(-1)
    first = torch.full((num_vertices,), -1, dtype=torch.long, device=faces.device)
    pos = torch.arange(flat.numel(), device=faces.device)
    first.scatter_reduce_(0, flat, pos, reduce="amin", include_self=False)
    p = first[vid]
    if bool((p < 0).any()):
        raise ValueError("bind: a nearest vertex belongs to no face")
    return p // 3, p % 3


def body_surface_gaussians(body_model, params: BodyParams, n: int = 6000, *,
                           opacity: float = 0.95) -> Gaussians:
    """The posed body itself as ``n`` Gaussians evenly spread over its surface, coloured
    and labelled by part (``prior.parts``): a subject whose every Gaussian lies on the body,
    for tests, benchmarks and demos. Splat size as ``prior.fit.surface_points`` (no holes)."""
    from ..prior.fit import surface_points
    from ..prior.parts import PART_COLORS

    m = body_model
    sp = surface_points(m, n)
    with torch.no_grad():
        out = m(**params.forward_args(m.device, m.dtype), vertex_ids=sp.vertex_ids)
    corners = out.vertices[0][sp.index]  # [n,3,3]
    means = (sp.bary[..., None] * corners).sum(1)
    labels = m.part_labels[sp.vertex_ids[sp.index.gather(1, sp.bary.argmax(1, keepdim=True))
                                         [:, 0]]]
    colors = torch.tensor(PART_COLORS, dtype=torch.float32, device=m.device)[labels] / 255.0
    N = means.shape[0]
    quats = torch.zeros(N, 4, device=m.device)
    quats[:, 0] = 1.0
    scales = torch.full((N, 3), sp.sigma * float(params.scale), device=m.device)
    return Gaussians(means=means.float(), quats=quats, scales=scales,
                     opacities=torch.full((N,), opacity, device=m.device), colors=colors,
                     labels=labels.long())
