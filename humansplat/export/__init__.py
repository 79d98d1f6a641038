"""Interchange export of a reconstruction: a rigged, textured mesh (binary glTF 2.0, or OBJ).

``views`` (the splat rendered around the person), ``surface`` (the clothed surface carved
from the fitted body), ``texture`` (UV atlas and baking), ``skin`` (skeleton, weights, bind
pose, motions), ``asset`` (the stages together), ``gltf`` / ``obj`` (the writers),
``command`` (``humansplat export``), ``validator`` (the Khronos glTF validator, when
installed)."""

from .asset import AvatarAsset, InputCamera, build_avatar  # noqa: F401
from .command import export_folder  # noqa: F401
