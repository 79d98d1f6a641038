"""The app's avatar download: the session's result as a rigged, textured GLB
(``humansplat.export``), written next to the result in ``<run>/views/`` and reused when
asked for again (a complete result never changes). Like the other result views it reads the
result folder only, so on ZeroGPU only folder names and file paths cross processes."""

from __future__ import annotations

from pathlib import Path

__all__ = ["EXPORT_POSES", "EXPORT_MOTIONS", "check_export_pose", "export_result",
           "estimate_export_gpu_seconds"]

#: (label, value) for the pose picker; values are ``humansplat.export.skin.POSES``
EXPORT_POSES = (("As in the photo", "input"), ("A-pose", "apose"), ("T-pose", "tpose"))
#: the animations every exported avatar carries (the first one plays in the viewer)
EXPORT_MOTIONS = ("walk", "wave", "turn")


def check_export_pose(pose) -> str | None:
    """None when ``pose`` names a bind pose, else a message saying which ones exist."""
    from ..export.skin import POSES

    if isinstance(pose, str) and pose in POSES:
        return None
    return f"The pose must be one of: {', '.join(POSES)}."


def export_result(result_dir, pose: str = "input", *, body_model=None) -> str:
    """The result's avatar as a GLB (bind pose ``pose``, the motions of
    :data:`EXPORT_MOTIONS` as animations); its path as a string."""
    from ..export import export_folder
    from .result_views import VIEWS_DIR

    if (msg := check_export_pose(pose)) is not None:
        raise ValueError(msg)
    result = Path(result_dir)
    views = result.parent / VIEWS_DIR
    views.mkdir(parents=True, exist_ok=True)
    out = views / f"avatar_{pose}.glb"
    if not out.is_file():
        export_folder(result, out, format="glb", pose=pose, motions=EXPORT_MOTIONS,
                      body_model=body_model)
    return str(out)


def estimate_export_gpu_seconds() -> int:
    """Seconds of GPU to ask ZeroGPU for one export: rendering the splat from 13 views,
    carving, baking and the motions take a few seconds; a wide margin."""
    return 30
