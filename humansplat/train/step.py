"""One training/evaluation step's shared pieces: render the predicted Gaussians into the target
cameras (colour, alpha and part probabilities in one pass) and score them.

Used by the trainer (losses) and by ``humansplat eval`` (metrics), so both see identical renders.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..model.gaussian_head import ReconstructionOutput
from ..render import rasterize
from .losses import LossConfig, total_loss

__all__ = ["Renders", "render_views", "part_loss", "training_loss", "model_kwargs",
           "collate_samples"]


@dataclass
class Renders:
    rgb: Tensor  # [B,T,3,R,R] composited on the background
    alpha: Tensor  # [B,T,1,R,R]
    parts: Tensor | None  # [B,T,P,R,R] alpha-weighted part probabilities, or None


def collate_samples(samples: list[dict]) -> dict:
    """Stack a list of training samples (the dict of ``humansplat.train.dataset``): tensors
    get a leading batch dimension, anything else becomes a list."""
    if not samples:
        raise ValueError("collate_samples needs at least one sample")
    out = {}
    for k in samples[0]:
        vals = [s[k] for s in samples]
        out[k] = torch.stack(vals) if isinstance(vals[0], Tensor) else vals
    return out


def model_kwargs(batch: dict, device=None) -> dict:
    """The model's forward() arguments from a collated batch (see train.dataset)."""
    def mv(k):
        x = batch.get(k)
        return None if x is None else x.to(device)
    return {"views": mv("views"), "viewmats": mv("viewmats"), "Ks": mv("Ks"),
            "body_vertices": mv("body_vertices")}


def render_views(out: ReconstructionOutput, viewmats: Tensor, Ks: Tensor, size: int, *,
                 background: float = 1.0, with_parts: bool = True,
                 backend: str = "auto") -> Renders:
    """Render each sample's Gaussians into its T cameras: viewmats [B,T,4,4], Ks [B,T,3,3]
    for ``size`` x ``size`` images."""
    B, T = viewmats.shape[:2]
    parts = with_parts and out.part_logits is not None
    rgbs, alphas, probs = [], [], []
    for b in range(B):
        cols = out.colors[b]
        if parts:
            cols = torch.cat([cols, out.part_logits[b].float().softmax(-1)], dim=-1)
        bg = torch.zeros(T, cols.shape[-1], device=cols.device, dtype=cols.dtype)
        bg[:, :3] = background
        img, alpha, _ = rasterize(out.means[b], out.quats[b], out.scales[b], out.opacities[b],
                                  cols, viewmats[b], Ks[b], size, size, backgrounds=bg,
                                  backend=backend)
        img = img.permute(0, 3, 1, 2)  # [T,D,R,R]
        rgbs.append(img[:, :3])
        alphas.append(alpha.permute(0, 3, 1, 2))
        if parts:
            probs.append(img[:, 3:])
    return Renders(rgb=torch.stack(rgbs), alpha=torch.stack(alphas),
                   parts=torch.stack(probs) if parts else None)


def part_loss(parts: Tensor, gt_parts: Tensor, eps: float = 1e-4) -> Tensor:
    """Cross-entropy of the rendered part distribution on the ground truth's labelled pixels:
    parts [B,T,P,R,R] (alpha-weighted probabilities), gt_parts [B,T,R,R] (-1 = none)."""
    fg = gt_parts >= 0
    if not bool(fg.any()):
        return parts.sum() * 0.0
    p = parts.permute(0, 1, 3, 4, 2)[fg]  # [N,P]
    target = gt_parts[fg].long()
    p_true = p.gather(1, target[:, None])[:, 0]
    return -torch.log((p_true + eps) / (p.sum(1) + eps * p.shape[1])).mean()


def training_loss(renders: Renders, batch: dict, perceptual, loss_cfg: LossConfig,
                  lambda_part: float = 0.0) -> tuple[Tensor, dict[str, Tensor]]:
    """L = L_H + L_Rec (+ lambda_part * part CE) against the batch's targets."""
    dev = renders.rgb.device
    gt_rgb = batch["target_rgb"].to(dev)
    gt_mask = batch["target_mask"].to(dev)
    gt_parts = batch["target_parts"].to(dev)
    levels = batch["target_levels"].to(dev)
    if gt_rgb.shape[-1] != renders.rgb.shape[-1]:
        raise ValueError(f"targets are {gt_rgb.shape[-1]} px, renders {renders.rgb.shape[-1]} px")
    total, terms = total_loss(renders.rgb, gt_rgb, renders.alpha, gt_mask, gt_parts, levels,
                              perceptual, loss_cfg)
    if lambda_part > 0 and renders.parts is not None:
        lp = part_loss(renders.parts, gt_parts)
        total = total + lambda_part * lp
        terms["part_ce"] = lp.detach()
        terms["loss"] = total.detach()
    with torch.no_grad():
        terms["psnr"] = -10 * torch.log10(F.mse_loss(renders.rgb.clamp(0, 1), gt_rgb) + 1e-10)
    return total, terms
