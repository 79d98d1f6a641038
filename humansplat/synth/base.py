"""The view-synthesis interface: one photo (plus its body fit) in, the 4 orthogonal views out.

Every synthesizer (the offline projection one, SV3D in diffusers) implements
:class:`ViewSynthesizer`. It receives a :class:`SynthInput` and returns a :class:`SynthOutput`
whose ``features`` are already in the reconstruction space named by ``space``:

- ``"pixel"``: features are the RGB images themselves, float [V,3,H,W] in [0,1]
  (:class:`~humansplat.latent_space.PixelSpace`).
- ``"sd-vae"``: features are SD-VAE (kl-f8) latents **scaled** by the VAE's
  ``scaling_factor`` (0.18215), float [V,4,H/8,W/8]: exactly what
  :meth:`~humansplat.latent_space.SDVAESpace.encode` returns and what a latent
  diffusion model samples, so diffusion output goes to reconstruction with no
  decode/encode round trip.

``previews`` are always decoded RGB [V,3,H,W] in [0,1] for display, and ``cameras`` are the
cameras of the returned views at the preview resolution (H x W).

Camera convention (see :mod:`humansplat.cameras`): ``target_cameras`` are orbit cameras whose
azimuths are relative to the input view (azimuth 0 = the input view; 90 = camera on the
person's left). ``humansplat.cameras.orthogonal_views()`` builds the default 4.
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

import torch
from torch import Tensor

from ..cameras import Cameras
from ..errors import ConfigError

if TYPE_CHECKING:  # the body-prior module is written in parallel; only its fields are used
    from ..prior.fit import BodyFit  # noqa: F401
    from ..latent_space import LatentSpace

__all__ = ["SynthInput", "SynthOutput", "ViewSynthesizer", "ProgressCallback", "SPACES",
           "seeded_generator", "same_angle"]

# progress(done, total, stage): called after each unit of work (a sampler step, a render...).
ProgressCallback = Callable[[int, int, str], None]

SPACES = ("pixel", "sd-vae")

_RANGE_TOL = 1e-3  # resampling can overshoot [0,1] by a hair; more than this is a bug upstream


def _check_image(name: str, x: Tensor, channels: int) -> None:
    if not isinstance(x, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 3 or x.shape[0] != channels:
        raise ValueError(f"{name} must be [{channels},S,S], got {tuple(x.shape)}")
    if x.shape[1] != x.shape[2] or x.shape[1] < 8:
        raise ValueError(f"{name} must be square and at least 8x8, got {tuple(x.shape[1:])}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a float tensor in [0,1], got dtype {x.dtype}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or Inf")
    lo, hi = float(x.min()), float(x.max())
    if lo < -_RANGE_TOL or hi > 1 + _RANGE_TOL:
        raise ValueError(f"{name} must lie in [0,1], got values in [{lo:.4g}, {hi:.4g}]")


@dataclass
class SynthInput:
    """What a view synthesizer gets.

    image: float [3,S,S] in [0,1], the preprocessed crop (person centred, background
        composited; synthesizers that need a plain background re-composite with ``mask``).
    mask: float [1,S,S] in [0,1], the person's foreground mask in the same crop.
    input_camera: :class:`Cameras` with 1 camera, the camera of ``image`` (S x S pixels).
        Its ``azimuths``/``elevations`` default to 0 when not set.
    target_cameras: :class:`Cameras` with V >= 1 orbit cameras (``azimuths`` and
        ``elevations`` set, degrees) in the orbit frame of ``input_camera``, whose azimuth
        (0 when unset) is the input view; so with the usual input azimuth 0 the target
        azimuths are relative to the input view (0 = the input view, 90 = its left side).
    body_fit: the fitted body (``humansplat.prior.fit.BodyFit``: posed ``vertices`` [N,3]
        in world space, ``faces``, ``part_labels``, input-camera ``viewmat``/``K``) or None.
        Synthesizers that do not use it (SV3D) ignore it.
    """

    image: Tensor
    mask: Tensor
    input_camera: Cameras
    target_cameras: Cameras
    body_fit: BodyFit | None = None

    def __post_init__(self) -> None:
        _check_image("SynthInput.image", self.image, 3)
        _check_image("SynthInput.mask", self.mask, 1)
        if self.mask.shape[1:] != self.image.shape[1:]:
            raise ValueError(f"SynthInput.mask size {tuple(self.mask.shape[1:])} does not match "
                             f"SynthInput.image size {tuple(self.image.shape[1:])}")
        if not isinstance(self.input_camera, Cameras) or len(self.input_camera) != 1:
            raise ValueError("SynthInput.input_camera must be a Cameras with exactly 1 camera")
        if not isinstance(self.target_cameras, Cameras) or len(self.target_cameras) < 1:
            raise ValueError("SynthInput.target_cameras must be a Cameras with at least 1 camera")

    @property
    def size(self) -> int:
        """Side S of the square input crop, in pixels."""
        return int(self.image.shape[-1])

    @property
    def input_angles(self) -> tuple[float, float]:
        """(elevation, azimuth) of the input camera in degrees (0, 0 when not recorded)."""
        c = self.input_camera
        el = 0.0 if c.elevations is None else float(c.elevations[0])
        az = 0.0 if c.azimuths is None else float(c.azimuths[0])
        return el, az

    def target_angles(self) -> tuple[Tensor, Tensor]:
        """(elevations [V], azimuths [V]) of the targets in degrees; a clear error when the
        targets are not orbit cameras."""
        c = self.target_cameras
        if c.azimuths is None or c.elevations is None:
            raise ConfigError(
                "SynthInput.target_cameras must carry azimuths and elevations (orbit cameras); "
                "build them with humansplat.cameras.orthogonal_views() or orbit_cameras()")
        return c.elevations.detach().float().cpu(), c.azimuths.detach().float().cpu()


@dataclass
class SynthOutput:
    """What a view synthesizer returns (V views).

    features: [V,C,h,w] float32 (CPU) in the reconstruction space ``space`` (module docs).
    previews: [V,3,H,W] float32 (CPU) RGB in [0,1] for display.
    cameras: the V cameras of the views, at the preview resolution (W = H = previews' size).
    space: "pixel" or "sd-vae".
    info: what ran: at least ``synthesizer``, ``space``, ``seed``, ``steps``, ``guidance``,
        ``seconds``; synthesizers add their own keys (components, frame indices...).
    masks: [V,H,W] float32 in [0,1], the person's coverage of each preview, when the
        synthesizer knows it (the projection synthesizer renders it), else None.
    """

    features: Tensor
    previews: Tensor
    cameras: Cameras
    space: str
    info: dict[str, Any] = field(default_factory=dict)
    masks: Tensor | None = None

    def __post_init__(self) -> None:
        if self.space not in SPACES:
            raise ValueError(f"SynthOutput.space must be one of {SPACES}, got {self.space!r}")
        if self.features.ndim != 4:
            raise ValueError(f"SynthOutput.features must be [V,C,h,w], "
                             f"got {tuple(self.features.shape)}")
        prev = self.previews
        if prev.ndim != 4 or prev.shape[1] != 3:
            raise ValueError(f"SynthOutput.previews must be [V,3,H,W], got {tuple(prev.shape)}")
        V = self.features.shape[0]
        if prev.shape[0] != V or len(self.cameras) != V:
            raise ValueError(f"SynthOutput: features ({V}), previews ({prev.shape[0]}) and "
                             f"cameras ({len(self.cameras)}) must hold the same number of views")
        if (self.cameras.width, self.cameras.height) != (prev.shape[-1], prev.shape[-2]):
            raise ValueError(f"SynthOutput.cameras are {self.cameras.width}x{self.cameras.height} "
                             f"but previews are {prev.shape[-1]}x{prev.shape[-2]}")
        if self.masks is not None and tuple(self.masks.shape) != (V,) + tuple(prev.shape[-2:]):
            raise ValueError(f"SynthOutput.masks must be [V,H,W] like the previews, "
                             f"got {tuple(self.masks.shape)}")

    def __len__(self) -> int:
        return int(self.features.shape[0])


class ViewSynthesizer(ABC):
    """Base of all view synthesizers.

    Subclasses set ``name`` (class attribute), ``space`` (a
    :class:`~humansplat.latent_space.LatentSpace`; ``space.name`` is "pixel" or
    "sd-vae"), ``default_steps`` and ``default_guidance`` and implement :meth:`_synthesize`.
    ``__call__`` validates the input, resolves defaults, times the run and checks the output
    against ``space`` (channels, feature size), so every implementation returns the same
    contract.
    """

    name: str = "base"
    space: "LatentSpace"
    default_steps: int | None = None
    default_guidance: Any = None

    def __call__(self, inp: SynthInput, *, seed: int = 0, num_steps: int | None = None,
                 guidance: Any = None, progress: ProgressCallback | None = None) -> SynthOutput:
        if not isinstance(inp, SynthInput):
            raise ValueError(f"inp must be a SynthInput, got {type(inp).__name__}")
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise ValueError(f"seed must be an int, got {seed!r}")
        steps = self.default_steps if num_steps is None else num_steps
        if steps is not None and (not isinstance(steps, int) or steps < 1):
            raise ValueError(f"num_steps must be a positive int, got {num_steps!r}")
        guidance = self.default_guidance if guidance is None else guidance
        t0 = time.perf_counter()
        out = self._synthesize(inp, seed=seed, num_steps=steps, guidance=guidance,
                               progress=progress)
        self._check_output(inp, out)
        info = {"synthesizer": self.name, "space": self.space.name, "seed": seed,
                "steps": steps, "guidance": guidance}
        info.update(out.info)
        info["seconds"] = time.perf_counter() - t0
        out.info = info
        return out

    @abstractmethod
    def _synthesize(self, inp: SynthInput, *, seed: int, num_steps: int | None,
                    guidance: Any, progress: ProgressCallback | None) -> SynthOutput:
        """Produce the views (defaults already resolved)."""

    def _check_output(self, inp: SynthInput, out: SynthOutput) -> None:
        space = self.space
        if out.space != space.name:
            raise RuntimeError(f"{self.name}: output space {out.space!r} != {space.name!r}")
        if len(out) != len(inp.target_cameras):
            raise RuntimeError(f"{self.name}: returned {len(out)} views for "
                               f"{len(inp.target_cameras)} target cameras")
        if out.features.shape[1] != space.channels:
            raise RuntimeError(f"{self.name}: features have {out.features.shape[1]} channels, "
                               f"space {space.name!r} has {space.channels}")
        expect = space.feature_size(out.previews.shape[-1])
        if tuple(out.features.shape[-2:]) != (expect, expect):
            raise RuntimeError(f"{self.name}: features are {tuple(out.features.shape[-2:])}, "
                               f"expected {expect}x{expect} for {out.previews.shape[-1]} px "
                               f"previews")


def seeded_generator(seed: int) -> torch.Generator:
    """A CPU generator: the same seed gives the same noise on every device."""
    return torch.Generator("cpu").manual_seed(int(seed) % (2 ** 63))


def same_angle(a_deg: float, b_deg: float, tol: float = 1e-3) -> bool:
    """Whether two angles (degrees) coincide modulo 360."""
    d = math.remainder(float(a_deg) - float(b_deg), 360.0)
    return abs(d) <= tol
