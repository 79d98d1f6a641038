"""Training objective of HumanSplat (paper Sec. 3.5, App. A.2): L = L_H + L_Rec.

Shapes: B samples, T rendered views each, images [B,T,3,H,W] in [0,1].

L_Rec (per sample, then the batch mean), as the paper writes it, summed over the rendered views:
    L_Rec = sum_t MSE(I_t, Î_t) + lambda_m MSE(M_t, M̂_t) + lambda_p L_p(I_t, Î_t)
with MSE the mean over all pixels (and channels) of a view.

L_H (per sample, then the batch mean):
    L_H = 1/(n m) sum_i sum_j lambda_i lambda_j (MSE(I_ij, Î_ij) + lambda_p L_p(I_ij, Î_ij))
i = camera level of a view (0 full body, 1 upper body, 2 face; ``level`` [B,T]), j = body part
(m = 24), I_ij = the sample's level-i renders masked to part j of the ground-truth part map.
Decisions (documented because the paper leaves them open):

- MSE(I_ij, Î_ij) is the mean over the part's own pixels, pooled over all views of level i of
  the sample (sum of squared errors / (3 x pixel count)). Per-part normalisation is what makes a
  small part (a hand, the face) count as much as the torso; pooling over views keeps a view that
  shows only a sliver of the part from getting a full part's weight.
- 1/(n m) is a constant (n = len(level_weights), m = len(part_weights)). A (level, part) pair
  absent from the sample contributes exactly 0 and its weight appears nowhere else, so changing
  lambda_j changes the gradient on part j's pixels only (tested).
- L_p(I_ij, Î_ij) is approximated on crops: for every view and present part, the square
  bounding box of the part (10% margin), both images masked to the part, resized to
  ``crop_size`` (antialiased), all crops through the network in batches. A view's crop counts in
  proportion to its pixel count of that part (the same pooling as the MSE). Parts with fewer
  than ``min_crop_pixels`` pixels in a view get no crop there (their MSE still counts). Running
  the network on 24 full-size masked images per view would cost ~24x a full render's pass for
  mostly black pixels. ``perceptual_in_lh=False`` drops this term (CPU training).
- Relative scale: L_Rec sums over views, L_H averages over (level, part) pairs, exactly as the
  paper's two equations; with the paper's lambdas (all 1, parts 2 for head/arms/hands) L_Rec
  dominates in magnitude and L_H adds the part emphasis.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from humansplat.errors import ConfigError
from humansplat.prior.parts import PART_NAMES, PART_WEIGHTS  # noqa: F401 (re-exported)
from humansplat.train.perceptual import PerceptualLoss, perceptual_key

# The 24 body parts (SMPL joint order; the part label map uses these indices, -1 = none) and
# the paper's lambda_j (2 for head, arms and hands, 1 for the rest) live with the body models.
LEVEL_NAMES: tuple[str, ...] = ("full_body", "upper_body", "face")
LEVEL_WEIGHTS: tuple[float, ...] = (1.0, 1.0, 1.0)


@dataclass
class LossConfig:
    """Weights and switches of L = L_H + L_Rec. A lambda of 0 skips that term's computation."""

    lambda_m: float = 1.0  # mask MSE in L_Rec
    lambda_p: float = 1.0  # perceptual term, in L_Rec and L_H
    level_weights: tuple[float, ...] = LEVEL_WEIGHTS  # lambda_i
    part_weights: tuple[float, ...] = PART_WEIGHTS  # lambda_j
    use_reconstruction: bool = True
    use_hierarchical: bool = True  # False: the paper's ablation "without L_H"
    perceptual_in_lh: bool = True  # False: L_H is MSE only (cheap, CPU training)
    crop_size: int = 64  # part crops for L_H's perceptual term
    min_crop_pixels: int = 16

    def __post_init__(self):
        if not (self.use_reconstruction or self.use_hierarchical):
            raise ConfigError(
                "LossConfig: use_reconstruction and use_hierarchical are both False; no loss left"
            )
        for n in ("lambda_m", "lambda_p"):
            if getattr(self, n) < 0:
                raise ConfigError(f"LossConfig.{n} must be >= 0, got {getattr(self, n)}")
        if self.crop_size < 8:
            raise ConfigError(f"LossConfig.crop_size must be >= 8, got {self.crop_size}")
        for n, want in (("level_weights", len(LEVEL_NAMES)), ("part_weights", len(PART_NAMES))):
            w = getattr(self, n)
            try:
                ok = len(w) == want and all(math.isfinite(float(x)) and float(x) >= 0 for x in w)
            except (TypeError, ValueError):
                ok = False
            if not ok:
                raise ConfigError(f"LossConfig.{n} must be {want} finite weights >= 0, got {w!r}")


# --------------------------------------------------------------------------------------------
# input checks


def _check_views(t: torch.Tensor, name: str, channels: int | None) -> None:
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.ndim != 5 or (channels is not None and t.shape[2] != channels):
        c = channels if channels is not None else "C"
        raise ValueError(f"{name} must have shape [B,T,{c},H,W], got {tuple(t.shape)}")
    if not t.is_floating_point():
        raise ValueError(f"{name} must be a float tensor, got dtype {t.dtype}")


def _check_same(a: torch.Tensor, b: torch.Tensor, na: str, nb: str) -> None:
    if a.shape != b.shape:
        raise ValueError(
            f"{na} {tuple(a.shape)} and {nb} {tuple(b.shape)} must have the same shape"
        )


def _weights(w, name: str, device, dtype) -> torch.Tensor:
    w = torch.as_tensor(w, dtype=dtype, device=device)
    if w.ndim != 1 or w.numel() == 0 or bool((w < 0).any()) or not bool(torch.isfinite(w).all()):
        raise ValueError(
            f"{name} must be a non-empty 1-D sequence of finite weights >= 0, got {w.tolist()}"
        )
    return w


def _need_perceptual(perceptual: PerceptualLoss | None, lambda_p: float, where: str) -> bool:
    if lambda_p < 0:
        raise ValueError(f"lambda_p must be >= 0, got {lambda_p}")
    if lambda_p == 0:
        return False
    if perceptual is None:
        raise ValueError(
            f"{where}: perceptual is None but lambda_p={lambda_p}; pass a PerceptualLoss "
            "(humansplat.train.perceptual.get_perceptual) or lambda_p=0"
        )
    return True


# --------------------------------------------------------------------------------------------
# L_Rec


def reconstruction_loss(
    pred_rgb: torch.Tensor,
    gt_rgb: torch.Tensor,
    pred_alpha: torch.Tensor,
    gt_mask: torch.Tensor,
    perceptual: PerceptualLoss | None,
    lambda_m: float = 1.0,
    lambda_p: float = 1.0,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """L_Rec, summed over the T views of a sample and averaged over the batch.

    pred_rgb, gt_rgb: [B,T,3,H,W]; pred_alpha: [B,T,1,H,W] rendered opacity; gt_mask: [B,T,1,H,W]
    or [B,T,H,W] foreground in [0,1]. Returns (total, terms) with terms "rec/mse",
    "rec/mask_mse", "rec/perceptual[<name>]" (unweighted, as they enter the sum) and "rec/total",
    all detached.
    """
    _check_views(pred_rgb, "pred_rgb", 3)
    _check_same(pred_rgb, gt_rgb, "pred_rgb", "gt_rgb")
    _check_views(pred_alpha, "pred_alpha", 1)
    if gt_mask.ndim == 4:
        gt_mask = gt_mask.unsqueeze(2)
    _check_same(pred_alpha, gt_mask, "pred_alpha", "gt_mask [B,T,(1,)H,W]")
    if pred_alpha.shape[:2] != pred_rgb.shape[:2] or pred_alpha.shape[-2:] != pred_rgb.shape[-2:]:
        raise ValueError(
            f"pred_alpha {tuple(pred_alpha.shape)} does not match pred_rgb {tuple(pred_rgb.shape)}"
        )
    if lambda_m < 0:
        raise ValueError(f"lambda_m must be >= 0, got {lambda_m}")
    B, T = pred_rgb.shape[:2]
    mse = ((pred_rgb - gt_rgb) ** 2).mean(dim=(2, 3, 4)).sum(1).mean()
    total = mse
    terms = {"rec/mse": mse}
    if lambda_m > 0:
        mask_mse = (
            ((pred_alpha - gt_mask.to(pred_alpha.dtype)) ** 2).mean(dim=(2, 3, 4)).sum(1).mean()
        )
        total = total + lambda_m * mask_mse
        terms["rec/mask_mse"] = mask_mse
    if _need_perceptual(perceptual, lambda_p, "reconstruction_loss"):
        p = perceptual(pred_rgb.flatten(0, 1), gt_rgb.flatten(0, 1), reduction="none")  # [B*T]
        p = p.view(B, T).sum(1).mean()
        total = total + lambda_p * p
        terms[f"rec/{perceptual_key(perceptual)}"] = p
    terms["rec/total"] = total
    return total, {k: v.detach() for k, v in terms.items()}


# --------------------------------------------------------------------------------------------
# part crops ("part renders") for L_H's perceptual term


@dataclass
class PartCrops:
    """Square crops of single body parts; pixels of other parts and background are 0.

    images: [K,C,S,S]; view, part, pixels: [K] (source view index, part index, the part's pixel
    count in that view).
    """

    images: torch.Tensor
    view: torch.Tensor
    part: torch.Tensor
    pixels: torch.Tensor


def part_pixel_stats(parts: torch.Tensor, num_parts: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel count and bounding box of every (view, part).

    parts: [V,H,W] long in [-1, num_parts). Returns counts [V,P] and boxes [V,P,4] as
    (y0, x0, y1, x1) inclusive (meaningless where the count is 0).
    """
    V, H, W = parts.shape
    fg = parts >= 0
    key = (torch.arange(V, device=parts.device).view(V, 1, 1) * num_parts + parts)[fg]
    ys = torch.arange(H, device=parts.device).view(1, H, 1).expand(V, H, W)[fg]
    xs = torch.arange(W, device=parts.device).view(1, 1, W).expand(V, H, W)[fg]
    n = V * num_parts
    counts = torch.bincount(key, minlength=n)
    big = max(H, W)
    y0 = torch.full((n,), big, device=parts.device).scatter_reduce(0, key, ys, "amin")
    x0 = torch.full((n,), big, device=parts.device).scatter_reduce(0, key, xs, "amin")
    y1 = torch.full((n,), -1, device=parts.device).scatter_reduce(0, key, ys, "amax")
    x1 = torch.full((n,), -1, device=parts.device).scatter_reduce(0, key, xs, "amax")
    boxes = torch.stack([y0, x0, y1, x1], dim=-1).view(V, num_parts, 4)
    return counts.view(V, num_parts), boxes


def _crop_square(t: torch.Tensor, top: int, left: int, side: int) -> tuple[slice, slice, list[int]]:
    """Slices of t[..., H, W] inside the square and the zero padding that completes it."""
    H, W = t.shape[-2:]
    ys, ye, xs, xe = max(top, 0), min(top + side, H), max(left, 0), min(left + side, W)
    return slice(ys, ye), slice(xs, xe), [xs - left, left + side - xe, ys - top, top + side - ye]


def part_crops(
    images: torch.Tensor,
    parts: torch.Tensor,
    num_parts: int,
    crop_size: int = 64,
    min_pixels: int = 16,
    margin: float = 0.1,
) -> PartCrops:
    """Crop every part with at least ``min_pixels`` pixels out of every view, masked to the part.

    images: [V,C,H,W] (pred and target may be stacked on C so both get identical crops);
    parts: [V,H,W] long, -1 = no part. The crop is the part's bounding box made square (longer
    side + ``margin`` on each side, zero outside the image) and resized to crop_size x crop_size
    (antialiased when shrinking). Gradients reach only the part's own pixels.
    """
    counts, boxes = part_pixel_stats(parts, num_parts)
    sel = (counts >= max(min_pixels, 1)).nonzero(as_tuple=False)  # [K,2] (view, part)
    C = images.shape[1]
    if sel.shape[0] == 0:
        empty = sel.new_zeros(0)
        return PartCrops(images.new_zeros(0, C, crop_size, crop_size), empty, empty, empty)
    out = []
    for (v, j), (y0, x0, y1, x1) in zip(sel.tolist(), boxes[sel[:, 0], sel[:, 1]].tolist()):
        h, w = y1 - y0 + 1, x1 - x0 + 1
        side = max(h, w)
        side += 2 * max(1, round(margin * side))
        top, left = y0 - (side - h) // 2, x0 - (side - w) // 2
        sy, sx, pad = _crop_square(images, top, left, side)
        patch = images[v, :, sy, sx] * (parts[v, sy, sx] == j).to(images.dtype)
        patch = F.pad(patch, pad).unsqueeze(0)
        out.append(
            F.interpolate(
                patch,
                size=(crop_size, crop_size),
                mode="bilinear",
                align_corners=False,
                antialias=side > crop_size,
            )
        )
    return PartCrops(torch.cat(out), sel[:, 0], sel[:, 1], counts[sel[:, 0], sel[:, 1]])


# --------------------------------------------------------------------------------------------
# L_H


def hierarchical_loss(
    pred_rgb: torch.Tensor,
    gt_rgb: torch.Tensor,
    gt_parts: torch.Tensor,
    level: torch.Tensor,
    perceptual: PerceptualLoss | None = None,
    *,
    level_weights=LEVEL_WEIGHTS,
    part_weights=PART_WEIGHTS,
    lambda_p: float = 1.0,
    perceptual_in_lh: bool = True,
    crop_size: int = 64,
    min_crop_pixels: int = 16,
    crop_batch: int = 128,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """L_H, the semantic hierarchical loss (see the module docstring for the exact definition).

    pred_rgb, gt_rgb: [B,T,3,H,W]; gt_parts: [B,T,H,W] integer part map, -1 = no part;
    level: [B,T] integer camera level in [0, len(level_weights)). Returns (total, terms) with
    "h/mse", "h/perceptual[<name>]" (when computed), "h/pairs" (mean number of present
    (level, part) pairs per sample) and "h/total", all detached.
    """
    _check_views(pred_rgb, "pred_rgb", 3)
    _check_same(pred_rgb, gt_rgb, "pred_rgb", "gt_rgb")
    B, T, _, H, W = pred_rgb.shape
    if (
        not isinstance(gt_parts, torch.Tensor)
        or gt_parts.shape != (B, T, H, W)
        or gt_parts.is_floating_point()
    ):
        raise ValueError(
            f"gt_parts must be an integer tensor [B,T,H,W] = {(B, T, H, W)}, got "
            f"{getattr(gt_parts, 'shape', type(gt_parts).__name__)} "
            f"{getattr(gt_parts, 'dtype', '')}"
        )
    if not isinstance(level, torch.Tensor) or level.shape != (B, T) or level.is_floating_point():
        raise ValueError(
            f"level must be an integer tensor [B,T] = {(B, T)}, got "
            f"{getattr(level, 'shape', type(level).__name__)} {getattr(level, 'dtype', '')}"
        )
    dev, dt = pred_rgb.device, pred_rgb.dtype
    lw = _weights(level_weights, "level_weights", dev, dt)
    pw = _weights(part_weights, "part_weights", dev, dt)
    n, m = lw.numel(), pw.numel()
    parts = gt_parts.to(device=dev, dtype=torch.long)
    level = level.to(device=dev, dtype=torch.long)
    if parts.numel() and (int(parts.min()) < -1 or int(parts.max()) >= m):
        raise ValueError(
            f"gt_parts values must be in [-1, {m - 1}] (len(part_weights)={m}), "
            f"got [{int(parts.min())}, {int(parts.max())}]"
        )
    if int(level.min()) < 0 or int(level.max()) >= n:
        raise ValueError(
            f"level values must be in [0, {n - 1}] (len(level_weights)={n}), "
            f"got [{int(level.min())}, {int(level.max())}]"
        )

    # Key of every labelled pixel: (sample, level, part) -> b*n*m + i*m + j.
    fg = parts >= 0  # [B,T,H,W]
    view_key = (torch.arange(B, device=dev).view(B, 1) * n + level) * m  # [B,T]
    key = (view_key.view(B, T, 1, 1) + parts)[fg]  # [P]
    counts = torch.bincount(key, minlength=B * n * m).to(dt)  # pixels per (b,i,j)
    # lambda_i lambda_j / (n m) of every (b,i,j)
    pair_w = (lw.view(n, 1) * pw.view(1, m)).repeat(B, 1).view(-1) / (n * m)
    # Per-pixel weight of the squared error: lambda_i lambda_j / (n m 3 N_bij); absent pairs have
    # no pixels, so nothing divides by their zero count.
    inv = torch.where(counts > 0, pair_w / (3.0 * counts.clamp_min(1)), torch.zeros_like(counts))
    err = ((pred_rgb - gt_rgb) ** 2).sum(2)[fg]  # [P]
    mse = (err * inv[key]).sum() / B
    total = mse
    terms = {"h/mse": mse, "h/pairs": (counts > 0).to(dt).sum() / B}

    if perceptual_in_lh and _need_perceptual(perceptual, lambda_p, "hierarchical_loss"):
        V = B * T
        # [V,6,H,W]: pred and gt stacked on channels so both get identical crops
        stacked = torch.cat([pred_rgb, gt_rgb], dim=2).flatten(0, 1)
        crops = part_crops(stacked, parts.flatten(0, 1), m, crop_size, min_crop_pixels)
        if crops.images.shape[0] > 0:
            chunks = crops.images.split(crop_batch)
            d = torch.cat([perceptual(c[:, :3], c[:, 3:], reduction="none") for c in chunks])
            ck = view_key.view(V)[crops.view] + crops.part  # (b,i,j) key of every crop
            px = crops.pixels.to(dt)
            denom = torch.zeros(B * n * m, device=dev, dtype=dt).index_add_(0, ck, px)
            perc = (d * pair_w[ck] * px / denom[ck]).sum() / B
        else:
            perc = pred_rgb.new_zeros(())
        total = total + lambda_p * perc
        terms[f"h/{perceptual_key(perceptual)}"] = perc
    terms["h/total"] = total
    return total, {k: v.detach() for k, v in terms.items()}


# --------------------------------------------------------------------------------------------
# L


def total_loss(
    pred_rgb: torch.Tensor,
    gt_rgb: torch.Tensor,
    pred_alpha: torch.Tensor,
    gt_mask: torch.Tensor,
    gt_parts: torch.Tensor | None = None,
    level: torch.Tensor | None = None,
    perceptual: PerceptualLoss | None = None,
    config: LossConfig | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """L = L_H + L_Rec with the switches of ``config``; returns (total, terms incl. "loss")."""
    cfg = config or LossConfig()
    total = pred_rgb.new_zeros(())
    terms: dict[str, torch.Tensor] = {}
    if cfg.use_reconstruction:
        rec, t = reconstruction_loss(
            pred_rgb,
            gt_rgb,
            pred_alpha,
            gt_mask,
            perceptual,
            lambda_m=cfg.lambda_m,
            lambda_p=cfg.lambda_p,
        )
        total, terms = total + rec, {**terms, **t}
    if cfg.use_hierarchical:
        if gt_parts is None or level is None:
            raise ValueError(
                "total_loss: gt_parts and level are required when config.use_hierarchical is True"
            )
        h, t = hierarchical_loss(
            pred_rgb,
            gt_rgb,
            gt_parts,
            level,
            perceptual,
            level_weights=cfg.level_weights,
            part_weights=cfg.part_weights,
            lambda_p=cfg.lambda_p,
            perceptual_in_lh=cfg.perceptual_in_lh,
            crop_size=cfg.crop_size,
            min_crop_pixels=cfg.min_crop_pixels,
        )
        total, terms = total + h, {**terms, **t}
    terms["loss"] = total.detach()
    return total, terms
