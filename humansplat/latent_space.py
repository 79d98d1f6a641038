"""Reconstruction spaces: where the multi-view features handed to the reconstruction live.

- :class:`PixelSpace` ("pixel"): the identity. Features are RGB in [0,1], optionally resized
  to a fixed size. The offline default (the paper's own ablation, Tab. 2a).
- :class:`SDVAESpace` ("sd-vae"): Stable Diffusion's kl-f8 VAE (diffusers ``AutoencoderKL``, or
  SVD/SV3D's ``AutoencoderKLTemporalDecoder`` whose encoder has the same architecture).
  Features are the posterior mode **times** ``scaling_factor`` (0.18215), [B,4,H/8,W/8]: the
  space a latent diffusion model samples in. ``decode`` divides by the factor first.

Both take and return float images [B,3,H,W] in [0,1]. Work is done in chunks to bound memory;
results come back as float32 on the module's device (the input's device for PixelSpace).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from .errors import MissingWeightsError

__all__ = ["LatentSpace", "PixelSpace", "SDVAESpace", "resize_images", "DEFAULT_SD_VAE_REPO"]

# SD-1.5-compatible VAE in diffusers layout (config.json + weights at the repo root).
DEFAULT_SD_VAE_REPO = "stabilityai/sd-vae-ft-mse"
SD_VAE_SCALE = 0.18215


def resize_images(images: Tensor, size: int | tuple[int, int], mode: str = "bilinear") -> Tensor:
    """Resize [B,C,H,W] to ``size`` (int = square). Antialiased when shrinking so small
    previews do not alias; a no-op when the size already matches."""
    hw = (size, size) if isinstance(size, int) else tuple(size)
    if tuple(images.shape[-2:]) == hw:
        return images
    shrinking = hw[0] < images.shape[-2] or hw[1] < images.shape[-1]
    kw = {"align_corners": False} if mode in ("bilinear", "bicubic") else {}
    return F.interpolate(images, size=hw, mode=mode, antialias=shrinking and mode in
                         ("bilinear", "bicubic"), **kw)


def _check_images(name: str, images: Tensor) -> None:
    if not isinstance(images, Tensor) or images.ndim != 4 or images.shape[1] != 3:
        shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"{name} must be a float tensor [B,3,H,W], got {shape}")
    if not images.is_floating_point():
        raise ValueError(f"{name} must be float in [0,1], got dtype {images.dtype}")


class LatentSpace(ABC):
    """A reconstruction space. ``channels`` and ``downsample`` describe the features:
    images [B,3,H,W] <-> features [B,channels,H/downsample,W/downsample]."""

    name: str
    channels: int
    downsample: int

    @abstractmethod
    def encode(self, images: Tensor) -> Tensor:
        """images [B,3,H,W] in [0,1] -> features [B,C,h,w] (float32)."""

    @abstractmethod
    def decode(self, features: Tensor) -> Tensor:
        """features [B,C,h,w] -> images [B,3,h*d,w*d] in [0,1] (float32)."""

    def feature_size(self, image_size: int) -> int:
        """Feature side for an image side; images must divide evenly."""
        if image_size % self.downsample:
            raise ValueError(f"image size {image_size} is not a multiple of the {self.name!r} "
                             f"space's downsampling factor {self.downsample}")
        return image_size // self.downsample

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, channels={self.channels}, " \
               f"downsample={self.downsample})"


class PixelSpace(LatentSpace):
    """The identity space: features are the images, optionally resized to ``size`` x ``size``.

    With ``size`` set, ``feature_size`` is ``size`` whatever the image size (``downsample``
    then only describes images that already have that size)."""

    name = "pixel"
    channels = 3
    downsample = 1

    def __init__(self, size: int | None = None):
        if size is not None and (not isinstance(size, int) or size < 1):
            raise ValueError(f"PixelSpace size must be a positive int or None, got {size!r}")
        self.size = size

    def encode(self, images: Tensor) -> Tensor:
        _check_images("images", images)
        x = images.float()
        if self.size is not None:
            x = resize_images(x, self.size)
        return x.clamp(0.0, 1.0)

    def decode(self, features: Tensor) -> Tensor:
        _check_images("features", features)
        return features.float().clamp(0.0, 1.0)

    def feature_size(self, image_size: int) -> int:
        return self.size if self.size is not None else image_size


class SDVAESpace(LatentSpace):
    """SD-VAE latents, scaled by ``scaling_factor``.

    vae: a diffusers ``AutoencoderKL`` or ``AutoencoderKLTemporalDecoder`` (its decoder is
        then given ``num_frames`` = the chunk length, so chunks are decoded as short clips).
    chunk_size: images/latents per VAE call (memory bound).
    sample_posterior: encode with a posterior sample instead of its mode (needs a generator
        for reproducibility).
    """

    name = "sd-vae"

    def __init__(self, vae: torch.nn.Module, *, scaling_factor: float | None = None,
                 chunk_size: int = 4, sample_posterior: bool = False):
        cfg = getattr(vae, "config", None)
        if cfg is None or not hasattr(cfg, "latent_channels"):
            raise ValueError("vae must be a diffusers AutoencoderKL/AutoencoderKLTemporalDecoder")
        if not isinstance(chunk_size, int) or chunk_size < 1:
            raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
        self.vae = vae
        self.scaling_factor = float(scaling_factor if scaling_factor is not None else
                                    getattr(cfg, "scaling_factor", SD_VAE_SCALE))
        self.channels = int(cfg.latent_channels)
        self.downsample = 2 ** (len(cfg.block_out_channels) - 1)
        self.chunk_size = chunk_size
        self.sample_posterior = sample_posterior
        # Where inputs go. None = where the VAE's weights are; set it when the VAE is offloaded
        # (accelerate hooks move the weights to the accelerator only inside encode/decode).
        self.execution_device: torch.device | None = None
        # The temporal decoder mixes neighbouring frames and needs their count.
        self.temporal = hasattr(getattr(vae, "decoder", None), "time_conv_out")

    # -- construction -------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, source: str = DEFAULT_SD_VAE_REPO, *, subfolder: str | None = None,
                        device=None, dtype: torch.dtype | None = None,
                        local_files_only: bool | None = None, revision: str | None = None,
                        **kwargs: Any) -> "SDVAESpace":
        """Load a diffusers-layout VAE from a Hub repo id or a local folder.

        Raises :class:`MissingWeightsError` naming the repo/folder when it cannot be found
        (e.g. offline with an empty cache)."""
        import diffusers

        where = f"{source}" + (f" (subfolder {subfolder!r})" if subfolder else "")
        try:
            config = diffusers.AutoencoderKL.load_config(
                source, subfolder=subfolder, local_files_only=local_files_only, revision=revision)
            cls_name = config.get("_class_name", "AutoencoderKL")
            if cls_name not in ("AutoencoderKL", "AutoencoderKLTemporalDecoder"):
                raise MissingWeightsError(f"{where} holds a {cls_name}, not an SD VAE")
            vae_cls = getattr(diffusers, cls_name)
            vae = vae_cls.from_pretrained(source, subfolder=subfolder, torch_dtype=dtype,
                                          local_files_only=local_files_only, revision=revision)
        except OSError as err:
            raise MissingWeightsError(
                f"SD-VAE weights not found at {where}: {err}. Provide them with "
                f"`hf download {source} --local-dir DIR` on a machine with internet and pass "
                f"DIR, or point to a local diffusers VAE folder (config.json + "
                f"diffusion_pytorch_model.safetensors).") from err
        vae.eval().requires_grad_(False)
        if device is not None:
            vae.to(device)
        return cls(vae, **kwargs)

    @classmethod
    def from_config(cls, config: dict, *, temporal: bool = False, seed: int = 0,
                    **kwargs: Any) -> "SDVAESpace":
        """A randomly initialised VAE from a config dict (tests, benchmarks)."""
        import diffusers

        vae_cls = diffusers.AutoencoderKLTemporalDecoder if temporal else diffusers.AutoencoderKL
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            vae = vae_cls(**config)
        return cls(vae.eval().requires_grad_(False), **kwargs)

    def to(self, device=None, dtype: torch.dtype | None = None) -> "SDVAESpace":
        self.vae.to(device=device, dtype=dtype)
        return self

    @property
    def device(self) -> torch.device:
        if self.execution_device is not None:
            return torch.device(self.execution_device)
        return next(self.vae.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.vae.parameters()).dtype

    # -- the space ----------------------------------------------------------------------
    @torch.no_grad()
    def encode(self, images: Tensor, generator: torch.Generator | None = None,
               unscaled: bool = False) -> Tensor:
        """images [B,3,H,W] in [0,1] -> scaled latents [B,4,H/8,W/8] (float32, VAE device).
        ``unscaled=True`` returns the raw posterior mode/sample (what SVD-style models take
        as their image condition)."""
        _check_images("images", images)
        self.feature_size(images.shape[-1])
        self.feature_size(images.shape[-2])
        dev, dt = self.device, self.dtype
        out = []
        for chunk in images.split(self.chunk_size):
            x = (chunk.to(dev, dt) * 2.0 - 1.0)
            dist = self.vae.encode(x).latent_dist
            z = dist.sample(generator) if self.sample_posterior else dist.mode()
            out.append(z.float())
        z = torch.cat(out)
        return z if unscaled else z * self.scaling_factor

    @torch.no_grad()
    def decode(self, features: Tensor) -> Tensor:
        """scaled latents [B,4,h,w] -> images [B,3,8h,8w] in [0,1] (float32, VAE device)."""
        if not isinstance(features, Tensor) or features.ndim != 4 or \
                features.shape[1] != self.channels:
            shape = tuple(features.shape) if isinstance(features, Tensor) else type(features)
            raise ValueError(f"features must be [B,{self.channels},h,w], got {shape}")
        dev, dt = self.device, self.dtype
        out = []
        for chunk in features.split(self.chunk_size):
            z = chunk.to(dev, torch.float32) / self.scaling_factor
            if self.temporal:
                x = self.vae.decode(z.to(dt), num_frames=z.shape[0]).sample
            else:
                x = self.vae.decode(z.to(dt)).sample
            out.append(((x.float() + 1.0) * 0.5).clamp(0.0, 1.0))
        return torch.cat(out)
