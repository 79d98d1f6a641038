"""The one Gaussian container of the project.

Values are stored *activated* (what the renderer consumes); file formats convert to their
own storage space (logit opacity, log scale, SH DC) in ``humansplat.io.splat_files``
(``save_ply(g, path)``, ``load_ply(path)``, ``save_splat(g, path)``): the container knows
nothing of files, so the io layer sits above it, not beside it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Sequence

import torch
from torch import Tensor

from .geometry import quat_multiply, rotmat_to_quat

SH_C0 = 0.28209479177387814  # Y_0^0; rgb = 0.5 + SH_C0 * f_dc


def rgb_to_sh_dc(rgb: Tensor) -> Tensor:
    return (rgb - 0.5) / SH_C0


def sh_dc_to_rgb(dc: Tensor) -> Tensor:
    return dc * SH_C0 + 0.5


@dataclass
class Gaussians:
    """N 3D Gaussians, activated.

    means:     [N,3] world positions (metres, +y up).
    quats:     [N,4] unit rotations, (w, x, y, z).
    scales:    [N,3] standard deviations along the local axes, > 0.
    opacities: [N]   in (0, 1).
    colors:    [N,3] RGB in [0,1], or None when ``sh`` is set.
    sh:        [N,K,3] spherical-harmonic coefficients (K = (deg+1)^2, DC first), or None.
    labels:    [N] int64 body-part label in [0, 24), or None.
    """

    means: Tensor
    quats: Tensor
    scales: Tensor
    opacities: Tensor
    colors: Tensor | None = None
    sh: Tensor | None = None
    labels: Tensor | None = None

    def __post_init__(self) -> None:
        n = self.means.shape[0] if self.means.ndim == 2 else -1
        checks = {
            "means": (self.means, (n, 3)),
            "quats": (self.quats, (n, 4)),
            "scales": (self.scales, (n, 3)),
            "opacities": (self.opacities, (n,)),
        }
        if self.means.ndim != 2 or self.means.shape[1] != 3:
            raise ValueError(f"means must be [N,3], got {tuple(self.means.shape)}")
        for name, (t, shape) in checks.items():
            if tuple(t.shape) != shape:
                raise ValueError(f"{name} must have shape {list(shape)}, got {list(t.shape)}")
        if (self.colors is None) == (self.sh is None):
            raise ValueError("exactly one of colors [N,3] and sh [N,K,3] must be given")
        if self.colors is not None and tuple(self.colors.shape) != (n, 3):
            raise ValueError(f"colors must be [{n},3], got {list(self.colors.shape)}")
        if self.sh is not None:
            k = self.sh.shape[1] if self.sh.ndim == 3 else -1
            if self.sh.ndim != 3 or self.sh.shape[0] != n or self.sh.shape[2] != 3 or \
                    int(round(k ** 0.5)) ** 2 != k:
                raise ValueError(f"sh must be [{n},K,3] with K a square, got {list(self.sh.shape)}")
        if self.labels is not None and tuple(self.labels.shape) != (n,):
            raise ValueError(f"labels must be [{n}], got {list(self.labels.shape)}")

    # -- basic properties -------------------------------------------------------------
    def __len__(self) -> int:
        return self.means.shape[0]

    @property
    def device(self) -> torch.device:
        return self.means.device

    @property
    def sh_degree(self) -> int | None:
        return None if self.sh is None else int(round(self.sh.shape[1] ** 0.5)) - 1

    @property
    def rgb(self) -> Tensor:
        """[N,3] base colour (the DC term when stored as SH)."""
        return self.colors if self.colors is not None else sh_dc_to_rgb(self.sh[:, 0]).clamp(0, 1)

    def _map(self, fn) -> "Gaussians":
        return Gaussians(**{f.name: (None if getattr(self, f.name) is None
                                     else fn(f.name, getattr(self, f.name)))
                            for f in fields(self)})

    # -- conversions ------------------------------------------------------------------
    def to(self, device=None, dtype=None) -> "Gaussians":
        def conv(name, t):
            if name == "labels":
                return t.to(device=device)
            return t.to(device=device, dtype=dtype)
        return self._map(conv)

    def detach(self) -> "Gaussians":
        return self._map(lambda _, t: t.detach())

    def clone(self) -> "Gaussians":
        return self._map(lambda _, t: t.clone())

    def __getitem__(self, idx) -> "Gaussians":
        """Index with a boolean mask [N], a LongTensor or a slice."""
        return self._map(lambda _, t: t[idx])

    def with_rgb(self) -> "Gaussians":
        """The same Gaussians with SH reduced to its DC colour (SH0)."""
        return replace(self, colors=self.rgb, sh=None)

    def with_sh(self, degree: int) -> "Gaussians":
        """The same Gaussians as SH of ``degree`` (RGB becomes the DC term, the new bands
        zero; existing bands kept up to ``degree``)."""
        k = (int(degree) + 1) ** 2
        sh = self.sh if self.sh is not None else rgb_to_sh_dc(self.colors.float())[:, None]
        out = sh.new_zeros(len(self), k, 3)
        out[:, :min(k, sh.shape[1])] = sh[:, :k]
        return replace(self, colors=None, sh=out)

    @staticmethod
    def cat(items: Sequence["Gaussians"]) -> "Gaussians":
        if not items:
            raise ValueError("Gaussians.cat needs at least one Gaussians")
        kinds = {(g.colors is None, None if g.sh is None else g.sh.shape[1]) for g in items}
        if len(kinds) != 1:
            raise ValueError("Gaussians.cat: all inputs must store colour the same way")
        has_labels = [g.labels is not None for g in items]
        if any(has_labels) and not all(has_labels):
            raise ValueError("Gaussians.cat: either all inputs carry part labels or none")
        out = {}
        for f in fields(Gaussians):
            vals = [getattr(g, f.name) for g in items]
            out[f.name] = None if vals[0] is None else torch.cat(vals, dim=0)
        return Gaussians(**out)

    def prune(self, min_opacity: float = 1.0 / 255.0) -> "Gaussians":
        """Drop Gaussians whose opacity is below ``min_opacity`` (they never render)."""
        return self[self.opacities >= min_opacity]

    def transformed(self, R: Tensor, t: Tensor | None = None) -> "Gaussians":
        """Apply a rigid rotation R [3,3] (and translation t [3]) to positions and rotations."""
        if self.sh is not None and self.sh.shape[1] > 1:
            # Higher SH bands would need a Wigner rotation; no caller needs it yet.
            raise ValueError("transformed() supports RGB/SH0 Gaussians; call with_rgb() first")
        means = self.means @ R.T + (0 if t is None else t)
        q = quat_multiply(rotmat_to_quat(R)[None].expand_as(self.quats), self.quats)
        return replace(self, means=means, quats=torch.nn.functional.normalize(q, dim=-1))
