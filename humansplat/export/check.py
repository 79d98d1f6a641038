"""How faithful an exported GLB is to its splat: both rendered at the photo's camera.

The GLB is read back with a third-party reader (trimesh: its posed mesh, UVs and texture),
z-buffered with ``render.mesh.rasterize_mesh`` and textured; the splat is rendered with the
project's rasterizer. Silhouette IoU (alpha > 0.5 against mesh coverage) and PSNR of the
colours on white."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

__all__ = ["MeshRender", "render_glb", "compare_glb_to_splat"]


@dataclass
class MeshRender:
    """rgb [H,W,3] in [0,1] on white, coverage [H,W] bool."""

    rgb: Tensor
    coverage: Tensor


def render_glb(path, viewmat: Tensor, K: Tensor, width: int, height: int) -> MeshRender:
    """Render the GLB at ``path`` in its stored (bind) pose, textured, on white."""
    import trimesh

    from ..render.mesh import rasterize_mesh
    from .texture import sample_texture

    scene = trimesh.load(str(path), force="scene")
    meshes = [g for g in scene.dump() if isinstance(g, trimesh.Trimesh)]
    if not meshes:
        raise ValueError(f"{path} holds no triangle mesh")
    mesh = meshes[0]
    V = torch.as_tensor(np.asarray(mesh.vertices), dtype=torch.float32)
    Fc = torch.as_tensor(np.asarray(mesh.faces), dtype=torch.long)
    r = rasterize_mesh(V, Fc, viewmat.float(), K.float(), int(width), int(height))
    img = torch.ones(int(height), int(width), 3)
    cov = r.coverage
    visual = mesh.visual
    uv = torch.as_tensor(np.asarray(visual.uv), dtype=torch.float32)
    uv = torch.stack([uv[:, 0], 1.0 - uv[:, 1]], 1)  # trimesh: OBJ convention (v up)
    tex = np.asarray(visual.material.baseColorTexture.convert("RGB"))
    p = (r.bary[cov][..., None] * uv[Fc[r.face_ids[cov]]]).sum(1)
    img[cov] = sample_texture(tex, p)
    return MeshRender(img, cov)


def compare_glb_to_splat(path, gaussians, camera) -> dict:
    """{"iou", "psnr"} of the GLB at ``path`` against the splat ``gaussians`` at
    ``camera`` (an ``asset.InputCamera``)."""
    from ..metrics import mask_iou, psnr
    from .views import render_splat_views

    c = camera
    view = render_splat_views(gaussians, c.viewmat[None], c.K[None], c.width, c.height)[0]
    mesh = render_glb(path, c.viewmat, c.K, c.width, c.height)
    ref = view.rgb + (1 - view.alpha[..., None])  # the splat on white
    iou = mask_iou(mesh.coverage.float(), view.alpha)
    p = float(psnr(mesh.rgb.permute(2, 0, 1)[None], ref.permute(2, 0, 1)[None].clamp(0, 1)))
    return {"iou": float(iou), "psnr": p}
