"""A brute-force Gaussian splat renderer, written plainly, used only as the tests' reference.

It shares no code with ``humansplat.render``: its own rotation (the axis-angle form
R = (w^2 - |v|^2) I + 2 v v^T + 2 w [v]x), its own covariance and perspective Jacobian, the
3DGS reference code's SH constants, and no tiles or boxes at all: every Gaussian is evaluated
at every pixel. It follows gsplat 1.5.3's classic ``rasterization`` rules:

* keep a Gaussian iff near <= z_cam <= far (and opacity >= 1/255);
* EWA: cov2d = J W Sigma W^T J^T + eps2d I, J with x/z, y/z clamped to 1.3x the half-fov;
* alpha = min(0.999, opacity exp(-1/2 d^T cov2d^-1 d)), skipped when < 1/255;
* front to back by depth (ties by index); stop before the Gaussian whose transmittance
  after it would be <= 1e-4;
* SH colours = max(SH(dir from the camera centre) + 0.5, 0); background adds T * bg.

Runs in float64 with autograd, so the tests also use it as a gradient reference.
"""

from __future__ import annotations

import torch
from torch import Tensor

SH_C0 = 0.28209479177387814
SH_C1 = 0.4886025119029199
SH_C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792,
         0.5462742152960396)
SH_C3 = (-0.5900435899266435, 2.890611442640554, -0.4570457994644658, 0.3731763325901154,
         -0.4570457994644658, 1.445305721320277, -0.5900435899266435)


def rotation(q: Tensor) -> Tensor:
    """[3,3] from one quaternion [4] (w, x, y, z), normalised."""
    q = q / torch.sqrt((q * q).sum())
    w, v = q[0], q[1:]
    vx = torch.stack([torch.stack([0 * w, -v[2], v[1]]), torch.stack([v[2], 0 * w, -v[0]]),
                      torch.stack([-v[1], v[0], 0 * w])])
    return (w * w - (v * v).sum()) * torch.eye(3, dtype=q.dtype) + 2 * torch.outer(v, v) \
        + 2 * w * vx


def sh_colour(sh: Tensor, d: Tensor, degree: int) -> Tensor:
    """3DGS reference form of the real SH, sh [K,3], d a unit direction [3]."""
    x, y, z = d[0], d[1], d[2]
    c = SH_C0 * sh[0]
    if degree > 0:
        c = c - SH_C1 * y * sh[1] + SH_C1 * z * sh[2] - SH_C1 * x * sh[3]
    if degree > 1:
        xx, yy, zz, xy, yz, xz = x * x, y * y, z * z, x * y, y * z, x * z
        c = c + SH_C2[0] * xy * sh[4] + SH_C2[1] * yz * sh[5] \
            + SH_C2[2] * (2 * zz - xx - yy) * sh[6] + SH_C2[3] * xz * sh[7] \
            + SH_C2[4] * (xx - yy) * sh[8]
    if degree > 2:
        c = c + SH_C3[0] * y * (3 * xx - yy) * sh[9] + SH_C3[1] * xy * z * sh[10] \
            + SH_C3[2] * y * (4 * zz - xx - yy) * sh[11] \
            + SH_C3[3] * z * (2 * zz - 3 * xx - 3 * yy) * sh[12] \
            + SH_C3[4] * x * (4 * zz - xx - yy) * sh[13] + SH_C3[5] * z * (xx - yy) * sh[14] \
            + SH_C3[6] * x * (xx - 3 * yy) * sh[15]
    return torch.clamp(c + 0.5, min=0.0)


def render_reference(means, quats, scales, opacities, colors, viewmats, Ks, width, height, *,
                     backgrounds=None, sh_degree=None, near_plane=0.01, far_plane=1e10,
                     eps2d=0.3, stats=None):
    """Same arguments and outputs as ``humansplat.render.rasterize`` (colours, alphas).

    ``stats`` (a dict) receives how many pixel-Gaussian pairs hit the 0.999 clamp, were
    skipped below 1/255, and how many pixels stopped early: the tests check that their
    scenes exercise every rule."""
    C, N = viewmats.shape[0], means.shape[0]
    dt = means.dtype
    jj, ii = torch.meshgrid(torch.arange(width, dtype=dt) + 0.5,
                            torch.arange(height, dtype=dt) + 0.5, indexing="xy")
    px, py = jj.reshape(-1), ii.reshape(-1)  # pixel centres, row-major
    out_c, out_a = [], []
    for c in range(C):
        W, t = viewmats[c, :3, :3], viewmats[c, :3, 3]
        fx, fy, cx, cy = Ks[c, 0, 0], Ks[c, 1, 1], Ks[c, 0, 2], Ks[c, 1, 2]
        cam_centre = -W.T @ t
        items = []
        for n in range(N):
            p = W @ means[n] + t
            if not (near_plane <= float(p[2].detach()) <= far_plane):
                continue
            if float(opacities[n].detach()) < 1.0 / 255.0:
                continue
            Rg = rotation(quats[n])
            Sigma = Rg @ torch.diag(scales[n] ** 2) @ Rg.T
            # the frustum guard: x/z, y/z clamped to the image edges plus 30% of the half-fov
            tan_x, tan_y = 0.5 * width / fx, 0.5 * height / fy
            lim_xp, lim_xn = (width - cx) / fx + 0.3 * tan_x, cx / fx + 0.3 * tan_x
            lim_yp, lim_yn = (height - cy) / fy + 0.3 * tan_y, cy / fy + 0.3 * tan_y
            u = torch.clamp(p[0] / p[2], -lim_xn, lim_xp) * p[2]
            v = torch.clamp(p[1] / p[2], -lim_yn, lim_yp) * p[2]
            z = p[2]
            J = torch.stack([torch.stack([fx / z, 0 * z, -fx * u / z ** 2]),
                             torch.stack([0 * z, fy / z, -fy * v / z ** 2])])
            cov = J @ W @ Sigma @ W.T @ J.T + eps2d * torch.eye(2, dtype=dt)
            conic = torch.linalg.inv(cov)
            mu = torch.stack([fx * p[0] / z + cx, fy * p[1] / z + cy])
            if sh_degree is None:
                col = colors[n]
            else:
                d = means[n] - cam_centre
                col = sh_colour(colors[n], d / torch.sqrt((d * d).sum()), sh_degree)
            items.append((float(z.detach()), n, mu, conic, opacities[n], col))
        items.sort(key=lambda it: (it[0], it[1]))
        D = colors.shape[-1]
        acc = torch.zeros(px.numel(), D, dtype=dt)
        T = torch.ones(px.numel(), dtype=dt)
        done = torch.zeros(px.numel(), dtype=torch.bool)
        for _, _, mu, conic, op, col in items:
            dx, dy = mu[0] - px, mu[1] - py
            power = 0.5 * (conic[0, 0] * dx * dx + conic[1, 1] * dy * dy) + conic[0, 1] * dx * dy
            raw = op * torch.exp(-power)
            alpha = torch.clamp(raw, max=0.999)
            use = (alpha >= 1.0 / 255.0) & (power >= 0) & ~done
            if stats is not None:
                stats["clamped"] = stats.get("clamped", 0) + int((use & (raw > 0.999)).sum())
                stats["skipped"] = stats.get("skipped", 0) + int(((alpha < 1.0 / 255.0)
                                                                  & (alpha > 1e-6)).sum())
            T_next = T * (1 - alpha)
            stop = use & (T_next <= 1e-4)
            done = done | stop
            if stats is not None:
                stats["stopped"] = stats.get("stopped", 0) + int(stop.sum())
            use = use & ~stop
            w = torch.where(use, alpha * T, torch.zeros_like(T))
            acc = acc + w[:, None] * col[None]
            T = torch.where(use, T_next, T)
        if backgrounds is not None:
            acc = acc + T[:, None] * backgrounds[c][None]
        out_c.append(acc.reshape(height, width, D))
        out_a.append((1 - T).reshape(height, width, 1))
    return torch.stack(out_c), torch.stack(out_a)
