"""Wavefront OBJ + MTL + PNG for tools without skinning: the avatar's mesh in its bind pose
with UVs, normals and the baked texture (``map_Kd``). OBJ's texture origin is the image's
bottom-left corner, so v is flipped from the glTF convention."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..io.paths import as_path, atomic_path
from .asset import AvatarAsset

__all__ = ["write_obj"]


def write_obj(asset: AvatarAsset, path) -> dict[str, Path]:
    """Write ``NAME.obj``, ``NAME.mtl`` and ``NAME.png`` (NAME: the stem of ``path``) next to
    each other; returns their paths (keys obj, mtl, texture)."""
    from PIL import Image

    obj = as_path(path)
    if obj.suffix.lower() != ".obj":
        obj = obj.with_suffix(".obj")
    mtl, png = obj.with_suffix(".mtl"), obj.with_suffix(".png")
    obj.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(png) as tmp:
        Image.fromarray(np.asarray(asset.texture, np.uint8)).save(tmp, format="PNG")
    with atomic_path(mtl) as tmp:
        Path(tmp).write_text(f"# humansplat avatar material\nnewmtl baked\nKa 1 1 1\nKd 1 1 1\n"
                             f"Ks 0 0 0\nillum 1\nmap_Kd {png.name}\n", encoding="ascii")
    v = asset.positions.numpy().astype(np.float64)
    vt = asset.uv.numpy().astype(np.float64).copy()
    vt[:, 1] = 1.0 - vt[:, 1]
    vn = asset.normals.numpy().astype(np.float64)
    f = asset.faces.numpy().astype(np.int64) + 1
    with atomic_path(obj) as tmp, open(tmp, "w", encoding="ascii", newline="\n") as fh:
        fh.write(f"# humansplat avatar: {len(v)} vertices, {len(f)} triangles\n"
                 f"mtllib {mtl.name}\no {asset.name}\n")
        np.savetxt(fh, v, fmt="v %.6f %.6f %.6f")
        np.savetxt(fh, vt, fmt="vt %.6f %.6f")
        np.savetxt(fh, vn, fmt="vn %.5f %.5f %.5f")
        fh.write("usemtl baked\n")
        np.savetxt(fh, np.repeat(f, 3, axis=1), fmt="f %d/%d/%d %d/%d/%d %d/%d/%d")
    return {"obj": obj, "mtl": mtl, "texture": png}
