"""The front half of a reconstruction, built in one place: a preprocessed crop and its fitted
body -> the clothed body (:mod:`humansplat.prior.clothing`) -> the view synthesizer's input ->
the 4 orthogonal views -> the model's inputs.

Inference (:mod:`humansplat.pipeline`), training data (:mod:`humansplat.train.dataset`) and
evaluation (:mod:`humansplat.eval.evaluate`) all call these functions, so the model sees at
training time exactly what it sees in the app: the same target cameras (on the input camera's
orbit radius, computed here only), the same synthesizer call, the same input assembly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from torch import Tensor

from .cameras import orthogonal_views
from .model.inputs import ModelInputs, assemble_inputs
from .synth.base import SynthInput, SynthOutput

__all__ = ["FrontHalf", "synth_input", "front_half"]


@dataclass
class FrontHalf:
    synth_input: SynthInput
    synth: SynthOutput
    inputs: ModelInputs | None  # None without a model config (prior only)


def synth_input(image: Tensor, mask: Tensor, fit, clothing=None) -> SynthInput:
    """The synthesizer's input: image [3,S,S] and mask [1,S,S] in [0,1], the fitted body
    ``fit`` (a prior.fit.BodyFit, its camera the S x S crop's) grown to the mask by
    ``clothing`` (a prior.clothing.ClothingConfig or its dict; None: the naked body); the
    targets are the 4 orthogonal views (azimuth 0/90/180/270) at the input camera's distance
    from the body. ``SynthInput.body_fit`` is the clothed body."""
    if clothing is not None:
        from .prior.clothing import ClothingConfig, clothe_fit

        fit = clothe_fit(fit, mask, ClothingConfig.from_dict(clothing), image=image)
    S = int(image.shape[-1])
    radius = float(fit.cameras.centers[0].norm())  # the one definition of the orbit radius
    return SynthInput(image=image, mask=mask, input_camera=fit.cameras,
                      target_cameras=orthogonal_views(radius=radius, width=S, height=S),
                      body_fit=fit)


def front_half(image: Tensor, mask: Tensor, fit, synthesizer, model_config=None, *,
               clothing=None, space=None, seed: int = 0, num_steps: int | None = None,
               guidance: Any = None,
               progress: Callable[[float, int, str], None] | None = None) -> FrontHalf:
    """Synthesize the views of a crop and assemble the model's inputs (``model_config``: the
    reconstruction model's ModelConfig; None = stop after the views). ``clothing``: as
    :func:`synth_input`; the model's body vertices are the clothed ones. ``space``: the
    reconstruction space the input view is encoded into (None = pixels); seed, num_steps,
    guidance, progress: the synthesizer's (the seed feeds its own generator)."""
    inp = synth_input(image, mask, fit, clothing)
    out = synthesizer(inp, seed=seed, num_steps=num_steps, guidance=guidance,
                      progress=progress)
    inputs = None
    if model_config is not None:
        inputs = assemble_inputs(model_config, inp.image, inp.mask, fit.cameras, out.features,
                                 out.cameras, inp.body_fit.vertices, space=space)
    return FrontHalf(synth_input=inp, synth=out, inputs=inputs)
