"""Model presets as plain data.

``ModelConfig`` is what a checkpoint's ``config.json`` holds (flat JSON, see
``humansplat.model.LatentReconstructionTransformer``). Presets:

- ``micro``: a few thousand parameters' worth of everything; for tests only.
- ``tiny``:  pixel space, 128 px, 16x16 tokens per view, 2,000 body tokens; trains on a CPU.
- ``base``:  pixel space, 256 px, 32x32 tokens per view, all body tokens; a small GPU model.
- ``paper``: SD-VAE latents 4x64x64 of 512 px images, patch 1 (4,096 tokens per view),
  K_win = 2 on the 64x64 grid, 2x2 Gaussians per token from the 4 generated views
  = 4 x 128 x 128 = 65,536 Gaussians (the paper's and the authors' code's count).

The paper gives no widths or depths; ours are stated here and are a choice, not a quote.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from .errors import ConfigError

__all__ = ["ModelConfig", "PRESETS", "get_preset", "check_field_types"]


def check_field_types(settings, owner: str) -> None:
    """Raise a ConfigError unless every field of the dataclass ``settings`` has its default's
    type (bool, int, or a number for floats): settings also come from JSON files."""
    for f in fields(settings):
        v, default = getattr(settings, f.name), f.default
        ok = isinstance(v, bool) if isinstance(default, bool) else (
            isinstance(v, int) and not isinstance(v, bool) if isinstance(default, int)
            else isinstance(v, (int, float)) and not isinstance(v, bool))
        if not ok:
            kind = {bool: "true or false", int: "an int"}.get(type(default), "a number")
            raise ConfigError(f"{owner}.{f.name} must be {kind}, got {v!r}")

_AUTOCAST = (None, "bf16", "fp16")


@dataclass(frozen=True)
class ModelConfig:
    """Everything that fixes a reconstruction transformer's shape and behaviour.

    Geometry: every view is a square image of ``image_size`` pixels; the model reads it as a
    ``feature_size`` x ``feature_size`` map of ``in_channels`` channels (the image itself in
    pixel space, the VAE latent in latent space), cut into ``patch_size`` patches, so each view
    is a ``grid`` x ``grid`` token grid. Camera intrinsics given to the model are always those
    of the ``image_size`` image.
    """

    name: str = "custom"
    # -- inputs -------------------------------------------------------------------------
    space: str = "pixel"  # "pixel" (RGB in [0,1]) or "latent" (VAE latents)
    image_size: int = 128  # px, square; Ks refer to this size
    feature_size: int = 128  # h = w of the views tensor
    in_channels: int = 3  # 3 for RGB, 4 for SD-VAE latents
    n_views: int = 5  # V: the input view + the generated ones
    input_view: int = 0  # default index of the real photo among the V views
    patch_size: int = 8
    # -- transformer --------------------------------------------------------------------
    dim: int = 256
    heads: int = 4
    mlp_ratio: float = 4.0
    n_intra: int = 4  # self-attention blocks over the tokens of all views
    n_body_blocks: int = 1  # self-attention blocks of the human geometric tokenizer
    n_inter: int = 2  # projection-aware cross-attention blocks
    # -- human prior ----------------------------------------------------------------------
    use_human_prior: bool = True
    k_win: int | None = 2  # window side in token cells; None = unmasked cross-attention
    n_body_tokens: int | None = 2000  # evenly subsample the body vertices to this many
    max_tokens_per_cell: int = 32  # cap per window bucket (nearest-depth tokens are kept)
    # Our addition (humansplat.model.body_anchor): each view's body depth map enters the
    # tokenizer and each Gaussian starts on the body along its ray (residual of +-anchor_range).
    body_anchor: bool = False
    anchor_range: float = 0.3  # metres
    # Pixel space only: a Gaussian's colour is a residual on its own pixel's colour.
    color_skip: bool = False
    window_chunk_keys: int = 1 << 16  # gathered key slots per attention call (memory bound)
    # -- Gaussians ----------------------------------------------------------------------
    gaussians_per_token: int = 4  # r: each token decodes r x r Gaussians (per side)
    gaussians_from: str = "all"  # "all" views or only the "generated" ones
    n_parts: int = 24  # part-label logits per Gaussian (0 = none)
    near: float = 1.6  # metres along the ray: Gaussians start in [near, far]
    far: float = 3.6
    max_offset: float = 0.05  # metres, bound of the offset across the ray
    scale_min: float = 0.002  # metres
    scale_max: float = 0.08
    scale_init: float = 0.02
    opacity_init: float = 0.1
    # -- training switches --------------------------------------------------------------
    grad_checkpointing: bool = False
    autocast: str | None = None  # "bf16" | "fp16" | None; applied on CUDA only

    def __post_init__(self) -> None:
        self.validate()

    # -- derived sizes -------------------------------------------------------------------
    @property
    def grid(self) -> int:
        """Tokens per side of each view."""
        return self.feature_size // self.patch_size

    @property
    def tokens_per_view(self) -> int:
        return self.grid * self.grid

    @property
    def gaussian_grid(self) -> int:
        """Gaussians per side of each output view."""
        return self.grid * self.gaussians_per_token

    @property
    def n_output_views(self) -> int:
        return self.n_views - (1 if self.gaussians_from == "generated" else 0)

    @property
    def n_gaussians(self) -> int:
        return self.n_output_views * self.gaussian_grid ** 2

    @property
    def view_channels(self) -> int:
        """Channels per view pixel the tokenizer reads: features (+ 2 body-anchor maps)."""
        return self.in_channels + (2 if self.body_anchor else 0)

    @property
    def raw_channels(self) -> int:
        """Channels the head predicts per Gaussian: 14 attributes + part logits."""
        return 14 + self.n_parts

    # -- checks ---------------------------------------------------------------------------
    def validate(self) -> None:
        def bad(field: str, msg: str):
            raise ConfigError(f"ModelConfig({self.name!r}).{field}: {msg}")

        if self.space not in ("pixel", "latent"):
            bad("space", f"must be 'pixel' or 'latent', got {self.space!r}")
        for f in ("image_size", "feature_size", "in_channels", "n_views", "patch_size", "dim",
                  "heads", "gaussians_per_token", "max_tokens_per_cell", "window_chunk_keys"):
            v = getattr(self, f)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                bad(f, f"must be a positive int, got {v!r}")
        for f in ("n_intra", "n_body_blocks", "n_inter", "n_parts"):
            v = getattr(self, f)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                bad(f, f"must be an int >= 0, got {v!r}")
        if self.space == "pixel" and self.feature_size != self.image_size:
            bad("feature_size", f"in pixel space it must equal image_size={self.image_size}, "
                f"got {self.feature_size}")
        if self.image_size % self.feature_size:
            bad("feature_size", f"{self.feature_size} must divide image_size={self.image_size}")
        if self.feature_size % self.patch_size:
            bad("patch_size", f"{self.patch_size} must divide feature_size={self.feature_size}")
        if self.dim % self.heads:
            bad("heads", f"{self.heads} must divide dim={self.dim}")
        if not 0 <= self.input_view < self.n_views:
            bad("input_view", f"must be in [0, {self.n_views}), got {self.input_view}")
        if self.k_win is not None and (not isinstance(self.k_win, int) or self.k_win < 1):
            bad("k_win", f"must be a positive int or None (unmasked), got {self.k_win!r}")
        if self.use_human_prior and self.n_inter < 1:
            bad("n_inter", "the human prior needs at least one inter-attention block "
                "(or set use_human_prior=False)")
        if self.body_anchor and not self.use_human_prior:
            bad("body_anchor", "needs the human prior (use_human_prior=True)")
        if self.anchor_range <= 0:
            bad("anchor_range", f"must be positive, got {self.anchor_range}")
        if self.color_skip and (self.space != "pixel" or self.in_channels != 3):
            bad("color_skip", "only in pixel space with RGB views (in_channels=3)")
        if self.n_body_tokens is not None and self.n_body_tokens < 1:
            bad("n_body_tokens", f"must be positive or None (all), got {self.n_body_tokens}")
        if self.gaussians_from not in ("all", "generated"):
            bad("gaussians_from", f"must be 'all' or 'generated', got {self.gaussians_from!r}")
        if self.gaussians_from == "generated" and self.n_views < 2:
            bad("gaussians_from", "'generated' needs n_views >= 2")
        if not 0 < self.near < self.far:
            bad("near", f"need 0 < near < far, got near={self.near}, far={self.far}")
        if self.max_offset < 0:
            bad("max_offset", f"must be >= 0, got {self.max_offset}")
        if not 0 < self.scale_min < self.scale_init < self.scale_max:
            bad("scale_init", "need 0 < scale_min < scale_init < scale_max, got "
                f"{self.scale_min}, {self.scale_init}, {self.scale_max}")
        if not 0 < self.opacity_init < 1:
            bad("opacity_init", f"must be in (0, 1), got {self.opacity_init}")
        if self.autocast not in _AUTOCAST:
            bad("autocast", f"must be one of {_AUTOCAST}, got {self.autocast!r}")
        if self.mlp_ratio <= 0:
            bad("mlp_ratio", f"must be positive, got {self.mlp_ratio}")

    # -- (de)serialisation -------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Build from plain data. Unknown keys fail loudly (a typo or a newer format);
        missing keys take the defaults."""
        if not isinstance(data, dict):
            raise ConfigError(f"ModelConfig.from_dict needs a dict, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"ModelConfig: unknown field(s) {unknown}; known: {sorted(known)}")
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> ModelConfig:
        return cls.from_dict(json.loads(text))

    def replace(self, **changes: Any) -> ModelConfig:
        """A copy with ``changes`` applied (and validated)."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ConfigError(f"ModelConfig: unknown field(s) {unknown}")
        return replace(self, **changes)


PRESETS: dict[str, ModelConfig] = {
    "micro": ModelConfig(
        name="micro", image_size=32, feature_size=32, patch_size=4, dim=32, heads=2,
        n_intra=1, n_body_blocks=1, n_inter=1, n_body_tokens=128, max_tokens_per_cell=16,
        gaussians_per_token=2, near=1.6, far=3.6, max_offset=0.1, scale_min=0.005,
        scale_max=0.2, scale_init=0.06),
    "tiny": ModelConfig(name="tiny", body_anchor=True, color_skip=True),
    "base": ModelConfig(
        name="base", image_size=256, feature_size=256, patch_size=8, dim=512, heads=8,
        n_intra=8, n_body_blocks=2, n_inter=4, n_body_tokens=None, max_tokens_per_cell=32,
        gaussians_per_token=4, gaussians_from="generated", max_offset=0.02, scale_min=0.001,
        scale_max=0.04, scale_init=0.008, body_anchor=True, color_skip=True,
        grad_checkpointing=True, autocast="bf16"),
    "paper": ModelConfig(
        name="paper", space="latent", image_size=512, feature_size=64, in_channels=4,
        patch_size=1, dim=512, heads=8, n_intra=6, n_body_blocks=2, n_inter=4,
        n_body_tokens=None, k_win=2, max_tokens_per_cell=16, gaussians_per_token=2,
        gaussians_from="generated", max_offset=0.02, scale_min=0.001, scale_max=0.04,
        scale_init=0.008, grad_checkpointing=True, autocast="bf16"),
}


def get_preset(name: str, **overrides: Any) -> ModelConfig:
    """The preset ``name`` (micro, tiny, base, paper), with ``overrides`` applied."""
    if name not in PRESETS:
        raise ConfigError(f"unknown model preset {name!r}; choose one of {sorted(PRESETS)}")
    cfg = PRESETS[name]
    return cfg.replace(**overrides) if overrides else cfg
