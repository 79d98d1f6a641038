"""Reposable avatars: Gaussians bound to the fitted body, unposed to its rest pose and
reposed with the body model's linear blend skinning (``skinning``), procedural motions
(``motions``), and the ``humansplat animate`` command (``animate``)."""

from .skinning import (BODY_PARAMS_FILE, Avatar, BodyParams, bind,  # noqa: F401
                       body_surface_gaussians, smpl_rotations_to_body_pose)
from .surface import SurfaceHit, closest_points_on_mesh  # noqa: F401
