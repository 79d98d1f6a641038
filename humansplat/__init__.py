"""HumanSplat: one photo of a person in, a 3D Gaussian-splat human out."""

__version__ = "0.1.0"

from .cameras import Cameras  # noqa: E402,F401
from .gaussians import Gaussians  # noqa: E402,F401
