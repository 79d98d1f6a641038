"""The latent reconstruction transformer (paper Sec. 3.4-3.5), Hub-ready.

    views + Plücker ──► ViewTokenizer ──► N_intra self-attention blocks (all views at once)
                                                  │ view tokens (queries)
    body vertices ──► HumanGeometricTokenizer ──► N_inter projection-aware cross-attention
      (sampled in the input view)     body tokens (keys/values)   │
                                                      GaussianHead (1x1 conv) ──► Gaussians

Inputs of :meth:`LatentReconstructionTransformer.forward` (``cfg`` = the model's config):

- ``views``     [B, V, C, h, w]: V = ``cfg.n_views`` views (the input view and the generated
  ones), C = ``cfg.in_channels``, h = w = ``cfg.feature_size`` (RGB in [0,1] in pixel space,
  VAE latents in latent space).
- ``viewmats``  [B, V, 4, 4] world-to-camera (OpenCV, ``humansplat.cameras``).
- ``Ks``        [B, V, 3, 3] intrinsics **of the ``cfg.image_size`` image** (for latents: of the
  512 px image they encode); the model rescales them to the feature and Gaussian grids.
- ``body_vertices`` [B, L_H, 3] world (+y up) when ``cfg.use_human_prior``; else ignored.
- ``input_view``: index of the real photo among the V views (default ``cfg.input_view``).
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

import torch
import torch.nn.functional as F
from huggingface_hub import PyTorchModelHubMixin
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint as _checkpoint

from ..cameras import Cameras, plucker_rays
from ..config import ModelConfig, get_preset
from ..errors import ConfigError, MissingWeightsError
from .blocks import CrossAttentionBlock, SelfAttentionBlock, init_weights
from .body_anchor import BodyAnchors, body_anchor_maps
from .gaussian_head import GaussianHead, ReconstructionOutput
from .tokenizers import HumanGeometricTokenizer, ViewTokenizer
from .window_attention import WindowIndex, build_window_index

__all__ = ["LatentReconstructionTransformer", "MODEL_CARD"]

PAPER_URL = "https://arxiv.org/abs/2406.12459"

MODEL_CARD = """---
{{ card_data }}
---

# HumanSplat reconstruction transformer

One photo of a person in, a 3D Gaussian splat of that person out. This checkpoint is the
latent reconstruction transformer of an open implementation of *HumanSplat: Generalizable
Single-Image Human Gaussian Splatting with Structure Priors* (NeurIPS 2024): it turns the
input view and the generated orthogonal views (with their cameras) and a fitted body model
into pixel-aligned 3D Gaussians with a body-part label each.

- Paper: {{ paper_url }}
- Load: `LatentReconstructionTransformer.from_pretrained(<this repo or folder>)` from the
  `humansplat` package (`config.json` holds the `ModelConfig`, `model.safetensors` the weights).
"""


_FROM_CONFIG: Any = object()  # forward(autocast=...) default: the config's precision


def _autocast_dtype(name: str | None) -> torch.dtype | None:
    if name not in _AUTOCAST_DTYPES:
        raise ConfigError(f"autocast must be one of {sorted(map(str, _AUTOCAST_DTYPES))}, "
                          f"got {name!r}")
    return _AUTOCAST_DTYPES[name]


_AUTOCAST_DTYPES = {None: None, "bf16": torch.bfloat16, "fp16": torch.float16}


def _shape(x: Tensor) -> list[int]:
    return list(x.shape)


class LatentReconstructionTransformer(
        nn.Module, PyTorchModelHubMixin,
        library_name="humansplat",
        pipeline_tag="image-to-3d",
        license="mit",
        paper_url=PAPER_URL,
        tags=["gaussian-splatting", "3d-human", "single-image-reconstruction", "humansplat"],
        model_card_template=MODEL_CARD):
    """The reconstruction transformer. ``config``: a :class:`ModelConfig`, a preset name or a
    config dict (what ``config.json`` holds)."""

    def __init__(self, config: ModelConfig | dict | str | None = None):
        super().__init__()
        if config is None:
            config = get_preset("tiny")
        elif isinstance(config, str):
            config = get_preset(config)
        elif isinstance(config, dict):
            config = ModelConfig.from_dict(config)
        elif not isinstance(config, ModelConfig):
            raise ConfigError(f"config must be a ModelConfig, a preset name or a dict, got "
                              f"{type(config).__name__}")
        self.config = config
        self._hub_mixin_config = config  # save_pretrained writes it as config.json
        cfg = config
        d = cfg.dim
        self.view_tokenizer = ViewTokenizer(cfg.view_channels, cfg.patch_size, d)
        # Marks the real photo's tokens apart from the generated views' (learned, 2 x d).
        self.view_role = nn.Embedding(2, d)
        self.intra = nn.ModuleList(SelfAttentionBlock(d, cfg.heads, cfg.mlp_ratio)
                                   for _ in range(cfg.n_intra))
        if cfg.use_human_prior:
            self.body_tokenizer = HumanGeometricTokenizer(cfg.in_channels, d, cfg.heads,
                                                          cfg.n_body_blocks, cfg.mlp_ratio)
            self.inter = nn.ModuleList(CrossAttentionBlock(d, cfg.heads, cfg.mlp_ratio)
                                       for _ in range(cfg.n_inter))
        else:  # the paper's "w/o human prior" ablation: no body branch, no inter-attention
            self.body_tokenizer = None
            self.inter = nn.ModuleList()
        self.head = GaussianHead(cfg)
        self.apply(init_weights)
        nn.init.trunc_normal_(self.view_role.weight, std=0.02)
        self.head.reset_parameters()

    # -- Hub -----------------------------------------------------------------------------
    @classmethod
    def _from_pretrained(cls, *, model_id: str, strict: bool = True, **kwargs: Any):
        """As the mixin's, but strict by default (a missing or unexpected weight raises) and
        a local folder without weights raises :class:`MissingWeightsError`."""
        if os.path.isdir(model_id) and not os.path.isfile(
                os.path.join(model_id, "model.safetensors")):
            raise MissingWeightsError(f"no model.safetensors in {os.path.abspath(model_id)}: "
                                      "save one with save_pretrained()")
        return super()._from_pretrained(model_id=model_id, strict=strict, **kwargs)

    # -- inputs --------------------------------------------------------------------------
    def check_inputs(self, views: Tensor, viewmats: Tensor, Ks: Tensor,
                     body_vertices: Tensor | None, input_view: int) -> None:
        """Raise :class:`ConfigError` (or ValueError) naming what was expected."""
        cfg = self.config
        what = (f"model preset {cfg.name!r} ({cfg.space} space, {cfg.n_views} views of "
                f"{cfg.in_channels}x{cfg.feature_size}x{cfg.feature_size})")
        if not isinstance(views, Tensor) or views.ndim != 5:
            raise ConfigError(f"views must be a [B,V,C,h,w] tensor for {what}, got "
                              f"{_shape(views) if isinstance(views, Tensor) else type(views)}")
        B, V, C, h, w = views.shape
        expected = [B, cfg.n_views, cfg.in_channels, cfg.feature_size, cfg.feature_size]
        if V != cfg.n_views:
            raise ConfigError(f"views: expected {cfg.n_views} views (cfg.n_views) for {what}, "
                              f"got {V} (shape {_shape(views)})")
        if [C, h, w] != expected[2:]:
            raise ConfigError(f"views: expected shape {expected} for {what}, got "
                              f"{_shape(views)}")
        if not views.is_floating_point():
            raise ValueError(f"views must be a floating-point tensor, got {views.dtype}")
        if not isinstance(viewmats, Tensor) or _shape(viewmats) != [B, V, 4, 4]:
            raise ConfigError(f"viewmats: expected [B,V,4,4] = {[B, V, 4, 4]} (one world-to-"
                              f"camera matrix per view), got "
                              f"{_shape(viewmats) if isinstance(viewmats, Tensor) else viewmats}")
        if not isinstance(Ks, Tensor) or _shape(Ks) != [B, V, 3, 3]:
            raise ConfigError(f"Ks: expected [B,V,3,3] = {[B, V, 3, 3]}, got "
                              f"{_shape(Ks) if isinstance(Ks, Tensor) else Ks}")
        if not (torch.isfinite(viewmats).all() and torch.isfinite(Ks).all()):
            raise ValueError("viewmats and Ks must be finite")
        if (Ks[..., 0, 0] <= 0).any() or (Ks[..., 1, 1] <= 0).any():
            raise ConfigError("Ks: focal lengths must be positive")
        cxy = Ks[..., :2, 2]
        if (cxy <= 0).any() or (cxy >= cfg.image_size).any():
            raise ConfigError(
                f"Ks: principal points must lie inside the {cfg.image_size} px image the model "
                f"expects intrinsics for (cfg.image_size), got cx, cy in "
                f"[{cxy.min().item():.1f}, {cxy.max().item():.1f}]; rescale them with "
                "Cameras.resized(image_size, image_size)")
        if isinstance(input_view, bool) or not isinstance(input_view, int) or \
                not 0 <= input_view < V:
            raise ValueError(f"input_view must be an int in [0, {V}), got {input_view!r}")
        if cfg.use_human_prior:
            if body_vertices is None:
                raise ConfigError(f"body_vertices [B,L_H,3] is required: model preset "
                                  f"{cfg.name!r} uses the human prior (use_human_prior=True)")
            if body_vertices.ndim != 3 or body_vertices.shape[0] != B or \
                    body_vertices.shape[2] != 3 or body_vertices.shape[1] < 1:
                raise ConfigError(f"body_vertices: expected [B,L_H,3] with B={B}, L_H >= 1, "
                                  f"got {_shape(body_vertices)}")
            if not torch.isfinite(body_vertices).all():
                raise ValueError("body_vertices must be finite")

    # -- pieces --------------------------------------------------------------------------
    def _ckpt(self, fn, *args):
        if self.config.grad_checkpointing and self.training and torch.is_grad_enabled():
            return _checkpoint(fn, *args, use_reentrant=False)
        return fn(*args)

    def body_subset(self, n_vertices: int, device=None) -> Tensor:
        """Indices of the body vertices used as tokens: all, or ``n_body_tokens`` evenly
        spaced ones (deterministic, so a vertex keeps its token across samples)."""
        n = self.config.n_body_tokens
        if n is None or n >= n_vertices:
            return torch.arange(n_vertices, device=device)
        return torch.linspace(0, n_vertices - 1, n, device=device).round().long()

    def window_index(self, points: Tensor, viewmats: Tensor, Ks: Tensor) -> WindowIndex | None:
        cfg = self.config
        if cfg.k_win is None:
            return None
        return build_window_index(points, viewmats, Ks, cfg.image_size, cfg.grid, cfg.k_win,
                                  cfg.max_tokens_per_cell, cfg.window_chunk_keys)

    def output_views(self, input_view: int) -> tuple[int, ...]:
        V = self.config.n_views
        if self.config.gaussians_from == "all":
            return tuple(range(V))
        return tuple(v for v in range(V) if v != input_view)

    # -- forward -------------------------------------------------------------------------
    def forward(self, views: Tensor, viewmats: Tensor, Ks: Tensor,
                body_vertices: Tensor | None = None,
                input_view: int | None = None,
                autocast: str | None = _FROM_CONFIG) -> ReconstructionOutput:
        """Views, cameras and body -> Gaussians (see the module docstring for shapes).

        autocast: this call's CUDA mixed precision ("bf16", "fp16", None = fp32); by default
        the config's. Per call, so callers never swap the shared model's config."""
        cfg = self.config
        input_view = cfg.input_view if input_view is None else input_view
        self.check_inputs(views, viewmats, Ks, body_vertices, input_view)
        B, V = views.shape[:2]
        f = cfg.feature_size

        # Geometry in fp32, outside autocast.
        cams_f = Cameras(viewmats.reshape(-1, 4, 4).float(), Ks.reshape(-1, 3, 3).float(),
                         cfg.image_size, cfg.image_size).resized(f, f)
        plucker = plucker_rays(cams_f.viewmats, cams_f.Ks, f, f).reshape(B, V, 6, f, f)
        index = points = anchors = None
        if cfg.use_human_prior:
            points = body_vertices[:, self.body_subset(body_vertices.shape[1],
                                                       body_vertices.device)].float()
            index = self.window_index(points, viewmats, Ks)
        if cfg.body_anchor:  # all vertices: the maps want the full surface density
            anchors = body_anchor_maps(body_vertices, viewmats, Ks, cfg.image_size,
                                       cfg.gaussian_grid)
            tok_in = torch.cat([views.float(), anchors.channels(f)], dim=2)
        else:
            tok_in = views

        dtype = _autocast_dtype(cfg.autocast if autocast is _FROM_CONFIG else autocast)
        use_amp = dtype is not None and views.device.type == "cuda"
        amp = torch.autocast("cuda", dtype=dtype) if use_amp else contextlib.nullcontext()
        with amp:
            x = self.view_tokenizer(tok_in, plucker)  # [B,V,T,d]
            role = torch.zeros(V, dtype=torch.long, device=views.device)
            role[input_view] = 1
            x = (x + self.view_role(role)[None, :, None]).flatten(1, 2)  # [B,V*T,d]
            for blk in self.intra:
                x = self._ckpt(blk, x)
            if cfg.use_human_prior:
                Kf = cams_f.Ks.reshape(B, V, 3, 3)[:, input_view]
                body = self.body_tokenizer(points, views[:, input_view],
                                           viewmats[:, input_view], Kf,
                                           checkpoint=self._ckpt)
                for blk in self.inter:
                    x = self._ckpt(lambda a, b, blk=blk: blk(a, b, index), x, body)
            out_ids = self.output_views(input_view)
            x = x.reshape(B, V, cfg.tokens_per_view, cfg.dim)[:, list(out_ids)]
        ids = list(out_ids)
        out_anchors = None if anchors is None else BodyAnchors(
            anchors.ray_depth[:, ids], anchors.coverage[:, ids], anchors.centre_depth[:, ids])
        view_rgb = None
        if cfg.color_skip:  # each output view's colours at the Gaussian grid
            G = cfg.gaussian_grid
            view_rgb = F.interpolate(views[:, ids].float().flatten(0, 1), size=(G, G),
                                     mode="area" if G < f else "bilinear")
            view_rgb = view_rgb.reshape(B, len(ids), 3, G, G)
        out = self.head(x.float(), viewmats[:, ids], Ks[:, ids], out_ids, out_anchors, view_rgb)
        out.window_stats = None if index is None else index.stats
        return out

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
