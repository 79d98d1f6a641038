"""The components a pipeline config names, by name: body models and view synthesizers.

A component is built by a factory registered under the name ``pipeline.json`` uses, so a new
body model or synthesizer plugs in without touching the pipeline:

    from humansplat.pipeline import register_body_model, PipelineConfig, HumanSplatPipeline
    register_body_model("my_body", lambda config: MyBody())
    pipe = HumanSplatPipeline.prior_only(PipelineConfig(body_model="my_body"))

A ready component can also be passed in: ``HumanSplatPipeline.from_components(config,
body_model=..., synthesizer=..., space=...)``.

- body model factory: ``factory(config) -> BodyModel`` (humansplat.prior.body's interface);
- synthesizer factory: ``factory(config, body_model, resolution, device, dtype, *, token,
  local_files_only) -> (ViewSynthesizer, LatentSpace)`` (the views' size is the model's).
"""

from __future__ import annotations

import threading
from typing import Any, Callable

import torch

__all__ = ["register_body_model", "register_synthesizer", "body_model_names",
           "synthesizer_names", "build_body_model", "build_synthesizer"]

BodyModelFactory = Callable[[Any], Any]
SynthesizerFactory = Callable[..., tuple[Any, Any]]

_LOCK = threading.Lock()
_BODY_MODELS: dict[str, BodyModelFactory] = {}
_SYNTHESIZERS: dict[str, SynthesizerFactory] = {}


def register_body_model(name: str, factory: BodyModelFactory) -> None:
    """Make ``PipelineConfig(body_model=name)`` build its body model with ``factory``."""
    with _LOCK:
        _BODY_MODELS[str(name)] = factory


def register_synthesizer(name: str, factory: SynthesizerFactory) -> None:
    """Make ``PipelineConfig(view_synthesizer=name)`` build its synthesizer with ``factory``."""
    with _LOCK:
        _SYNTHESIZERS[str(name)] = factory


def body_model_names() -> tuple[str, ...]:
    return tuple(_BODY_MODELS)


def synthesizer_names() -> tuple[str, ...]:
    return tuple(_SYNTHESIZERS)


def build_body_model(config):
    return _BODY_MODELS[config.body_model](config)


def build_synthesizer(config, body_model, resolution: int, device: torch.device,
                      dtype: torch.dtype, *, token=None, local_files_only=None):
    return _SYNTHESIZERS[config.view_synthesizer](config, body_model, resolution, device, dtype,
                                                  token=token,
                                                  local_files_only=local_files_only)


# -- the built-in components ------------------------------------------------------------------

def _anny(config):
    from ..prior.body import load_body_model

    return load_body_model("anny")


def _smpl(config):
    from ..prior.body import load_body_model

    return load_body_model("smpl", source=config.body_model_source)


def _projection(config, body, resolution, device, dtype, *, token=None, local_files_only=None):
    from ..latent_space import PixelSpace, SDVAESpace
    from ..synth.projection import ProjectionSynthesizer

    if config.space == "sd-vae":
        from ..latent_space import DEFAULT_SD_VAE_REPO

        space = SDVAESpace.from_pretrained(config.vae_repo or DEFAULT_SD_VAE_REPO,
                                           device=device, local_files_only=local_files_only,
                                           revision=config.vae_revision)
    else:
        space = PixelSpace()
    return ProjectionSynthesizer(body, resolution=resolution, space=space), space


def _sv3d(config, body, resolution, device, dtype, *, token=None, local_files_only=None):
    from ..synth.sv3d import DEFAULT_SV3D_REPO, SV3DSynthesizer

    synth = SV3DSynthesizer.from_pretrained(
        config.synthesizer_repo or DEFAULT_SV3D_REPO, device=device,
        dtype=dtype if device.type == "cuda" else torch.float32,
        local_files_only=local_files_only, revision=config.synthesizer_revision,
        token=token, num_frames=config.sv3d_frames, resolution=resolution)
    return synth, synth.space


register_body_model("anny", _anny)
register_body_model("smpl", _smpl)
register_synthesizer("projection", _projection)
register_synthesizer("sv3d", _sv3d)
