"""HumanSplat: one photo of a person in, a 3D Gaussian-splat human out."""

from ._version import __version__  # noqa: F401
from .cameras import Cameras  # noqa: F401
from .gaussians import Gaussians  # noqa: F401


def __getattr__(name: str):
    # The pipeline pulls in the body model, synthesizers and transformer: import it lazily so
    # `import humansplat` stays light.
    if name in ("HumanSplatPipeline", "PipelineConfig"):
        from . import pipeline

        return getattr(pipeline, name)
    if name == "Reconstruction":
        from .reconstruction import Reconstruction

        return Reconstruction
    raise AttributeError(f"module 'humansplat' has no attribute {name!r}")
