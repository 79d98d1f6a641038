"""The Gaussian head: a 1x1 convolution from each output token to the pixel-aligned Gaussians
of its patch (paper Sec. 3.5), and the activations that keep them well behaved.

Per Gaussian the head predicts 14 raw attributes, then ``n_parts`` part logits:

    [0]      t      distance along the pixel's ray:   near + (far - near) * sigmoid, or with
                    ``body_anchor`` t_body + anchor_range * tanh (t_body: the fitted body's
                    distance along that ray, :mod:`humansplat.model.body_anchor`)
    [1:3]    o      offset across the ray, along the camera's x (right) and y (down) axes:
                    max_offset * tanh           (xyz = ray origin + t * dir + o_x right + o_y down)
    [3:7]    q      rotation (w, x, y, z): normalised; the bias starts it at identity
    [7:10]   s      scales: scale_min + (scale_max - scale_min) * sigmoid
    [10]     alpha  opacity: sigmoid, or with ``body_anchor`` sigmoid(raw + logit(prior)) where
                    the prior is 0.95 where the body covers the pixel, else 0.002
    [11:14]  rgb    colour: sigmoid, or with ``color_skip`` sigmoid(raw + logit(pixel colour))
    [14:]    part logits (hierarchical loss, 3D segmentation)

so 1 + 2 + 4 + 3 + 1 + 3 = 14 numbers give the paper's 14 attributes (xyz 3, quaternion 4,
scale 3, opacity 1, rgb 3). Parametrising xyz by a bounded depth along the pixel's own ray
plus a bounded sideways offset is what "pixel-aligned" means and keeps early training
stable: every Gaussian starts in front of its pixel, inside the camera's [near, far] range.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..cameras import Cameras, pixel_rays
from ..config import ModelConfig
from ..gaussians import Gaussians
from .body_anchor import BodyAnchors
from .tokenizers import unpatchify
from .window_attention import WindowStats

__all__ = ["GaussianHead", "ReconstructionOutput", "RAW_LAYOUT"]

RAW_LAYOUT = {"depth": slice(0, 1), "offset": slice(1, 3), "quat": slice(3, 7),
              "scale": slice(7, 10), "opacity": slice(10, 11), "rgb": slice(11, 14)}


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


@dataclass
class ReconstructionOutput:
    """The model's Gaussians for a batch, activated, N per sample.

    Gaussians are ordered view by view (output views in input order), row-major over each
    view's ``grid`` x ``grid`` Gaussian image, so ``x.reshape(B, n_views, grid, grid, ...)``
    gives per-view maps (pixel-aligned: Gaussian (i, j) of a view lies on the ray through
    pixel (i, j) of that view at the Gaussian-grid resolution).
    """

    means: Tensor  # [B,N,3] world
    quats: Tensor  # [B,N,4] unit, wxyz
    scales: Tensor  # [B,N,3] metres
    opacities: Tensor  # [B,N]
    colors: Tensor  # [B,N,3] in [0,1]
    part_logits: Tensor | None  # [B,N,P] or None when n_parts == 0
    depths: Tensor  # [B,N] distance along the ray
    raw: Tensor  # [B,N,14+P] before activation
    view_ids: tuple[int, ...]  # which input views the Gaussians come from
    grid: int  # Gaussians per side of each view
    window_stats: WindowStats | None = None  # when the windowed attention ran

    @property
    def batch_size(self) -> int:
        return self.means.shape[0]

    def __len__(self) -> int:
        return self.means.shape[1]

    @property
    def part_labels(self) -> Tensor | None:
        """[B,N] int64 argmax part label, or None."""
        return None if self.part_logits is None else self.part_logits.argmax(-1)

    def gaussians(self, b: int = 0) -> Gaussians:
        """Sample ``b`` as the project's :class:`Gaussians` (part labels included)."""
        if not -self.batch_size <= b < self.batch_size:
            raise IndexError(f"sample {b} out of range for a batch of {self.batch_size}")
        labels = None if self.part_logits is None else self.part_logits[b].argmax(-1)
        return Gaussians(means=self.means[b], quats=self.quats[b], scales=self.scales[b],
                         opacities=self.opacities[b], colors=self.colors[b], labels=labels)


class GaussianHead(nn.Module):
    """LayerNorm + 1x1 conv (a Linear on tokens) to r x r Gaussians per token."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.cfg = config
        r, C = config.gaussians_per_token, config.raw_channels
        self.norm = nn.LayerNorm(config.dim)
        self.proj = nn.Linear(config.dim, r * r * C)

    def reset_parameters(self) -> None:
        """Small weights; biases so every Gaussian starts mid-range in depth, on its ray,
        unrotated, at ``scale_init``, ``opacity_init`` and grey."""
        cfg = self.cfg
        nn.init.trunc_normal_(self.proj.weight, std=0.02)
        bias = torch.zeros(cfg.raw_channels)
        bias[RAW_LAYOUT["quat"].start] = 1.0
        u = (cfg.scale_init - cfg.scale_min) / (cfg.scale_max - cfg.scale_min)
        bias[RAW_LAYOUT["scale"]] = _logit(u)
        bias[RAW_LAYOUT["opacity"]] = _logit(cfg.opacity_init)
        with torch.no_grad():
            self.proj.bias.copy_(bias.repeat(cfg.gaussians_per_token ** 2))
            # Residual parametrisations start exactly at their prior (the body surface, the
            # pixel's colour): zero rows, so the first renders are the prior's.
            w = self.proj.weight.view(cfg.gaussians_per_token ** 2, cfg.raw_channels, -1)
            if cfg.body_anchor:
                w[:, RAW_LAYOUT["depth"]] = 0.0
                w[:, RAW_LAYOUT["opacity"]] = 0.0
                self.proj.bias.view(-1, cfg.raw_channels)[:, RAW_LAYOUT["opacity"]] = 0.0
            if cfg.color_skip:
                w[:, RAW_LAYOUT["rgb"]] = 0.0

    def forward(self, tokens: Tensor, viewmats: Tensor, Ks: Tensor,
                view_ids: tuple[int, ...], anchors: BodyAnchors | None = None,
                view_rgb: Tensor | None = None) -> ReconstructionOutput:
        """tokens [B,Vo,T,d] of the output views; viewmats [B,Vo,4,4]; Ks [B,Vo,3,3] for the
        ``image_size`` image; anchors: the output views' body maps at the Gaussian grid (with
        ``body_anchor``); view_rgb [B,Vo,3,G,G] the output views' colours (``color_skip``)."""
        cfg = self.cfg
        B, Vo, T, _ = tokens.shape
        G = cfg.gaussian_grid
        raw = self.proj(self.norm(tokens)).float()  # activations in fp32 under autocast
        raw = unpatchify(raw.flatten(0, 1), cfg.grid, cfg.gaussians_per_token)  # [BVo,G,G,C]
        cams = Cameras(viewmats.reshape(-1, 4, 4).float(), Ks.reshape(-1, 3, 3).float(),
                       cfg.image_size, cfg.image_size).resized(G, G)
        origins, dirs = pixel_rays(cams.viewmats, cams.Ks, G, G)  # [BVo,G,G,3]
        R = cams.viewmats[:, None, None, :3, :3]  # rows = camera axes in world

        if cfg.body_anchor:
            if anchors is None:
                raise ValueError("body_anchor is set: the head needs the body anchors")
            t_body = anchors.ray_depth.reshape(B * Vo, G, G, 1).float()
            t = t_body + cfg.anchor_range * torch.tanh(raw[..., RAW_LAYOUT["depth"]])
        else:
            t = cfg.near + (cfg.far - cfg.near) * torch.sigmoid(raw[..., RAW_LAYOUT["depth"]])
        off = cfg.max_offset * torch.tanh(raw[..., RAW_LAYOUT["offset"]])
        means = origins + t * dirs + off[..., :1] * R[..., 0, :] + off[..., 1:] * R[..., 1, :]
        quats = F.normalize(raw[..., RAW_LAYOUT["quat"]], dim=-1, eps=1e-6)
        scales = cfg.scale_min + (cfg.scale_max - cfg.scale_min) * torch.sigmoid(
            raw[..., RAW_LAYOUT["scale"]])
        raw_op = raw[..., RAW_LAYOUT["opacity"]]
        if cfg.body_anchor:
            # only cells the body really covers start opaque: filled cells around it would
            # otherwise wrap it in a shell of background-coloured Gaussians for other views
            hit = (anchors.coverage >= 1).reshape(B * Vo, G, G, 1).float()
            prior = 0.002 + 0.948 * hit  # far cells: ~64 stack up along a side view
            raw_op = raw_op + torch.logit(prior)
        opac = torch.sigmoid(raw_op)
        raw_rgb = raw[..., RAW_LAYOUT["rgb"]]
        if cfg.color_skip:
            if view_rgb is None:
                raise ValueError("color_skip is set: the head needs the views' colours")
            base = view_rgb.float().reshape(B * Vo, 3, G, G).permute(0, 2, 3, 1)
            raw_rgb = raw_rgb + torch.logit(base.clamp(0.02, 0.98))
        rgb = torch.sigmoid(raw_rgb)

        def flat(x: Tensor) -> Tensor:  # [BVo,G,G,c] -> [B, Vo*G*G, c]
            return x.reshape(B, Vo * G * G, x.shape[-1])

        parts = flat(raw[..., 14:]) if cfg.n_parts else None
        return ReconstructionOutput(
            means=flat(means), quats=flat(quats), scales=flat(scales),
            opacities=flat(opac)[..., 0], colors=flat(rgb), part_logits=parts,
            depths=flat(t)[..., 0], raw=flat(raw), view_ids=tuple(view_ids), grid=G)
