"""Files at the edges: splat files (INRIA .ply, .splat), user images, videos and grids, OBJ.

Modules: ``splat_files`` (Gaussians <-> .ply/.splat; ``y_down=True`` writes the y-down world
that Gradio's Model3D and most splat viewers expect), ``images`` (load_image, tensor
conversions), ``video`` (MP4 writing, turntables, image grids), ``mesh`` (OBJ).
"""

from .images import LoadedImage, load_image, to_tensor, to_uint8  # noqa: F401
from .mesh import ObjMesh, load_obj, save_obj  # noqa: F401
from .splat_files import load_ply, load_splat, save_ply, save_splat  # noqa: F401
from .video import save_image_grid, save_orbit_video, write_video  # noqa: F401
