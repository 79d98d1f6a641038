"""What the app shows of a finished result beyond the splat: the person animated, and the
splat coloured by body part (or one group of parts only).

Both read the result folder a run wrote (``gaussians.ply`` + ``body.npz`` + ``meta.json``),
never a ``Reconstruction`` kept in memory: on ZeroGPU each call runs in another process, so
only folder names and file paths cross. Their outputs go next to the result, in
``<run>/views/`` (``walk.mp4``, ``parts_head.splat``, ...), and are reused when asked for again:
the inputs never change once a result is complete.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from ..errors import ConfigError

__all__ = ["MOTION_CHOICES", "ANIMATION_FRAMES", "PHOTO_VIEW", "ALL_PARTS", "PART_VIEW_CHOICES",
           "check_motion", "check_part_view", "animate_result", "part_view",
           "estimate_animation_gpu_seconds", "VIEWS_DIR"]

#: (label, value) for the motion picker; values are ``humansplat.avatar.motions.MOTIONS``
MOTION_CHOICES = (("Walk", "walk"), ("Wave", "wave"), ("Turn around", "turn"),
                  ("A-pose (turntable)", "apose"))
#: frames of one loop of walk / wave / turn (the A-pose is a turntable of its own length)
ANIMATION_FRAMES = 24
PHOTO_VIEW = "photo"  # the splat in its own colours (the result's gaussians.splat)
ALL_PARTS = "all"  # every Gaussian, coloured by body part
VIEWS_DIR = "views"  # inside the run folder, next to result/


def _part_groups() -> tuple[str, ...]:
    from ..parts_export import PART_GROUPS

    return tuple(PART_GROUPS)


#: (label, value) for the viewer toggle (the API takes any group or single part name too)
PART_VIEW_CHOICES = ((("Photo colours", PHOTO_VIEW), ("All parts", ALL_PARTS))
                     + tuple((g.replace("_", " ").capitalize(), g) for g in
                             ("head", "hands", "arms", "torso", "upper_body", "lower_body",
                              "legs", "feet")))
_NAME = re.compile(r"[a-z0-9_]{1,32}")


def check_motion(motion) -> str | None:
    """None when ``motion`` names a motion, else a message saying which ones exist."""
    from ..avatar.motions import MOTIONS

    if isinstance(motion, str) and motion in MOTIONS:
        return None
    return f"The motion must be one of: {', '.join(MOTIONS)}."


def check_part_view(choice) -> str | None:
    """None for ``photo``, ``all``, a part group or a single part name; else a message."""
    from ..parts_export import resolve_parts

    if choice in (PHOTO_VIEW, ALL_PARTS):
        return None
    if isinstance(choice, str) and _NAME.fullmatch(choice):
        try:
            resolve_parts(choice)
            return None
        except ValueError:
            pass
    return (f"The part view must be {PHOTO_VIEW}, {ALL_PARTS}, a group "
            f"({', '.join(_part_groups())}) or a single body part name.")


def _views_dir(result_dir: Path) -> Path:
    out = result_dir.parent / VIEWS_DIR
    out.mkdir(parents=True, exist_ok=True)
    return out


def animate_result(result_dir, motion: str, *, body_model=None, size: int = 256,
                   n_frames: int | None = ANIMATION_FRAMES,
                   progress: Callable[[int, int], None] | None = None) -> str:
    """Bind the result's splat to its fitted body, play ``motion`` and write an MP4 (a fixed
    camera for walk / wave / turn, ``n_frames`` frames; a turntable for the A-pose). Returns
    its path (as a string: it crosses the ZeroGPU boundary). ``body_model``: the pipeline's
    (default: a fresh one of the kind body.npz names); the splat is moved to its device."""
    from ..avatar.animate import PLY_FILE, save_motion_video
    from ..avatar.skinning import BODY_PARAMS_FILE, BodyParams, bind
    from ..io import load_ply

    if (msg := check_motion(motion)) is not None:
        raise ConfigError(msg)
    result = Path(result_dir)
    out = _views_dir(result) / f"{motion}.mp4"
    if out.is_file():
        return str(out)
    params = BodyParams.load(result / BODY_PARAMS_FILE)
    model = body_model if body_model is not None else params.body_model()
    g = load_ply(result / PLY_FILE).to(model.device)  # one device for binding and rendering
    avatar = bind(g, model, params)
    frames = None if motion == "apose" else n_frames  # one frame: shown as a turntable
    return str(save_motion_video(avatar, motion, out, size=size, n_frames=frames,
                                 progress=progress))


def part_view(result_dir, choice: str, *, body_model=None) -> str:
    """The file the 3D viewer shows for ``choice``: the result's own ``gaussians.splat`` for
    ``photo``; else the splat coloured by body part, all of it (``all``) or one group / part
    only, as a compact, sorted ``.splat`` (``parts_export.export_part_view``). Gaussians
    without a part label (folders from before labels were saved) are labelled from the
    fitted body. Raises ConfigError when no Gaussian has that part."""
    from ..io import load_ply
    from ..parts_export import assign_labels, export_part_view

    if (msg := check_part_view(choice)) is not None:
        raise ConfigError(msg)
    result = Path(result_dir)
    if choice == PHOTO_VIEW:
        return str(result / "gaussians.splat")
    out = _views_dir(result) / f"parts_{choice}.splat"
    if out.is_file():
        return str(out)
    g = load_ply(result / "gaussians.ply")
    if g.labels is None:
        from ..avatar.skinning import BODY_PARAMS_FILE, BodyParams

        params = BodyParams.load(result / BODY_PARAMS_FILE)
        model = body_model if body_model is not None else params.body_model()
        g = assign_labels(g.to(model.device), model, params).to("cpu")
    try:
        return str(export_part_view(g, out, group=None if choice == ALL_PARTS else choice))
    except ConfigError as err:
        if "no Gaussian is labelled" in str(err):
            raise ConfigError(f"This reconstruction has no Gaussian labelled "
                              f"{choice.replace('_', ' ')}.") from None
        raise


def estimate_animation_gpu_seconds(size: int = 256, n_frames: int = ANIMATION_FRAMES) -> int:
    """Seconds of GPU to ask ZeroGPU for one animation: binding (~2 s), the body's bone
    transforms per frame and the frames' rendering (60 for the A-pose turntable), with a
    margin."""
    frames = max(int(n_frames), 60)
    seconds = 5.0 + 0.05 * frames * (size / 256) ** 2
    return int(min(max(seconds * 1.5, 15), 120))
