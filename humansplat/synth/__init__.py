"""View synthesizers: the input photo -> 4 orthogonal views in the reconstruction space.

The interface (:mod:`.base`) and the reconstruction spaces (:mod:`.latent_space`) are light
imports; SV3D (:mod:`.sv3d`, diffusers/transformers) is imported from its own module.
"""

from .base import ProgressCallback, SynthInput, SynthOutput, ViewSynthesizer  # noqa: F401
from .latent_space import LatentSpace, PixelSpace, SDVAESpace  # noqa: F401
