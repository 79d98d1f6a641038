"""View synthesizers: the input photo -> 4 orthogonal views in the reconstruction space.

The interface (:mod:`.base`) and the reconstruction spaces (:mod:`humansplat.latent_space`,
re-exported here) are light imports; SV3D (:mod:`.sv3d`, diffusers/transformers) is imported
from its own module.
"""

from ..latent_space import LatentSpace, PixelSpace, SDVAESpace  # noqa: F401
from .base import ProgressCallback, SynthInput, SynthOutput, ViewSynthesizer  # noqa: F401
