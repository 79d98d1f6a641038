"""Compact splat files for the web: small, sorted, and readable by Gradio's ``Model3D``.

Our full INRIA ``.ply`` spends 252 bytes a Gaussian (62 float32 properties, 45 of them
``f_rest``, plus the part label). Gradio 6's splat viewer (gsplat.js) reads ``.splat``, and
``.ply`` files whose properties are all float32/int32 in one ``vertex`` element (it rejects
other types, so packed formats such as PlayCanvas's compressed ``.ply`` do not open there).
Two compact layouts follow from that:

* ``.splat`` (antimatter15): 32 bytes a Gaussian, colour/opacity in 8 bits, rotation in 8
  bits per component; 7.9x smaller. No part labels.
* SH0 ``.ply``: only ``x y z f_dc_0..2 opacity scale_0..2 rot_0..3`` (+ ``part``), float32:
  56 (60) bytes, 4.2x smaller, lossless for RGB Gaussians; read back by ``load_ply``.

Both drop Gaussians too faint to ever draw (opacity < 1/255, the renderers' alpha cut-off)
and sort the rest by decreasing ``opacity * volume`` (``prod(scale)``), as antimatter15's
converter does, so a viewer that streams the file shows the big, opaque splats first.
Higher SH bands are dropped: view-dependent colour becomes its DC term, unless the caller
first takes the colours one camera sees (:func:`rgb_seen_from`; ``humansplat compact`` of a
result folder uses its photo's camera, :func:`seen_from_photo`).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..errors import ConfigError
from ..gaussians import SH_C0, Gaussians
from .paths import as_path
from .splat_files import PART_PROPERTY, _gaussian_arrays, save_splat, write_vertex_ply

__all__ = ["COMPACT_PLY_PROPERTIES", "MIN_VISIBLE_OPACITY", "web_order", "prune_invisible",
           "rgb_seen_from", "seen_from_photo", "save_compact_ply", "save_compact",
           "compact_bytes_per_gaussian"]

COMPACT_PLY_PROPERTIES: tuple[str, ...] = (
    "x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity", "scale_0", "scale_1", "scale_2",
    "rot_0", "rot_1", "rot_2", "rot_3")
MIN_VISIBLE_OPACITY = 1.0 / 255.0  # below this a Gaussian's alpha never passes the cut-off
_OPACITY_EPS = 1e-7
_MIN_SCALE = 1e-30


def web_order(g: Gaussians) -> torch.Tensor:
    """[N] indices sorting ``g`` by decreasing opacity * prod(scale) (stable)."""
    key = g.scales.detach().double().prod(dim=1) * g.opacities.detach().double()
    return torch.from_numpy(np.argsort(-key.cpu().numpy(), kind="stable"))


def prune_invisible(g: Gaussians, min_opacity: float = MIN_VISIBLE_OPACITY) -> Gaussians:
    """``g`` without the Gaussians that no renderer draws (opacity < ``min_opacity``)."""
    return g[g.opacities >= min_opacity]


def save_compact_ply(g: Gaussians, path, *, y_down: bool = True, labels: bool = True,
                     prune: bool = True, sort: bool = True) -> Path:
    """Write the SH0 float32 ``.ply`` described in the module docstring (y-down for viewers
    by default; the header comment records it, as ``splat_files.save_ply`` does, so
    ``load_ply`` reads it back in our world). Returns the path."""
    if prune:
        g = prune_invisible(g)
    if sort:
        g = g[web_order(g)]
    a = _gaussian_arrays(g.with_rgb(), y_down, "save_compact_ply")
    op = np.clip(a["opacities"].astype(np.float64), _OPACITY_EPS, 1.0 - _OPACITY_EPS)
    cols = np.concatenate([a["means"], (a["colors"] - 0.5) / SH_C0,
                           np.log(op / (1.0 - op))[:, None],
                           np.log(np.maximum(a["scales"], _MIN_SCALE)), a["quats"]],
                          axis=1).astype("<f4")  # [N,14] in COMPACT_PLY_PROPERTIES order
    extras = []
    if labels and a["labels"] is not None:
        extras.append((PART_PROPERTY, a["labels"].astype("<i4")))
    write_vertex_ply(path, COMPACT_PLY_PROPERTIES, cols, extras,
                     f"humansplat up={'-y' if y_down else '+y'} colors=rgb sh_degree=0")
    return as_path(path)


def rgb_seen_from(g: Gaussians, centre: Tensor) -> Gaussians:
    """``g`` in one colour each: its SH seen from the point ``centre`` [3] (world), what an
    RGB-only layout should keep of view-dependent colour for the view that matters most
    (the photo's camera: the faithful step's colour correction is view-dependent and its
    DC term holds a third of it). Gaussians without SH are returned as they are."""
    if g.sh is None:
        return g
    from ..render.ewa import sh_to_rgb

    c = torch.as_tensor(centre, dtype=torch.float32, device=g.means.device).reshape(3)
    rgb = sh_to_rgb(g.sh_degree, g.sh.float(), g.means.float() - c)
    return replace(g, colors=rgb.clamp(0, 1).to(g.means.dtype), sh=None)


def seen_from_photo(g: Gaussians, folder) -> Gaussians:
    """:func:`rgb_seen_from` the photo's camera of a result folder (its ``meta.json``);
    ``g`` as it is when it holds no SH or the folder no usable camera."""
    import json

    meta = as_path(folder) / "meta.json"
    if g.sh is None or not meta.is_file():
        return g
    try:
        vm = torch.tensor(json.loads(meta.read_text())["camera"]["viewmat"],
                          dtype=torch.float32).reshape(4, 4)
    except (KeyError, TypeError, ValueError, RuntimeError):
        return g
    from ..cameras import camera_centers

    return rgb_seen_from(g, camera_centers(vm[None])[0])


def save_compact(g: Gaussians, path, *, y_down: bool = True, prune: bool = True) -> Path:
    """Write ``g`` compactly, the layout chosen by the suffix: ``.splat`` (quantised,
    32 B a Gaussian) or ``.ply`` (SH0 float32, 56-60 B). Pruned and sorted for the web."""
    p = as_path(path)
    if prune:
        g = prune_invisible(g)
    if len(g) == 0:
        raise ValueError("save_compact: no Gaussian is visible (all opacities < 1/255)")
    suffix = p.suffix.lower()
    if suffix == ".splat":
        return save_splat(g, p, y_down=y_down)  # sorts by opacity * volume itself
    if suffix == ".ply":
        return save_compact_ply(g, p, y_down=y_down, prune=False)
    raise ConfigError(f"save_compact: path must end in .splat or .ply, got {p.name!r}")


def compact_bytes_per_gaussian(fmt: str, labels: bool = True) -> int:
    """Bytes per Gaussian of the compact layouts ("splat", "ply") and the full INRIA
    "inria" ply (+4 for the part label where it is written)."""
    from .splat_files import PLY_PROPERTIES, SPLAT_ROW_BYTES

    if fmt == "splat":
        return SPLAT_ROW_BYTES
    base = {"ply": len(COMPACT_PLY_PROPERTIES), "inria": len(PLY_PROPERTIES)}[fmt] * 4
    return base + (4 if labels else 0)
