"""Animate a reconstruction: bind it to its fitted body, play a motion, write an MP4.

Library: :func:`load_avatar` (a saved reconstruction folder -> :class:`Avatar`),
:func:`motion_frames` (an avatar and a :class:`Motion` -> posed Gaussians per frame),
:func:`animation_cameras` (one fixed camera framing every frame), :func:`save_motion_video`.
CLI: ``humansplat animate OUT_DIR --motion walk -o walk.mp4`` (:func:`register`).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable, Iterator

import torch
from torch import Tensor

from ..cameras import DEFAULT_FOVY_DEG, Cameras, orbit_cameras
from ..errors import MissingFileError
from ..gaussians import Gaussians
from .motions import MOTIONS, Motion, make_motion
from .skinning import BODY_PARAMS_FILE, Avatar, BodyParams, bind

__all__ = ["load_avatar", "motion_placement", "motion_frames", "animation_cameras",
           "save_motion_video", "animate_reconstruction", "animate_folder", "register"]

PLY_FILE = "gaussians.ply"


def load_avatar(out_dir, *, body_model=None, binding: str = "triangle") -> Avatar:
    """Bind the splat of a saved reconstruction folder (``gaussians.ply`` + ``body.npz``)
    to its body. ``body_model`` defaults to a fresh model of the kind named in body.npz."""
    out = Path(out_dir)
    if not out.is_dir():
        raise MissingFileError(f"no such reconstruction folder: {out}")
    ply, params_file = out / PLY_FILE, out / BODY_PARAMS_FILE
    if not ply.is_file():
        raise MissingFileError(f"{out} holds no {PLY_FILE}: not a reconstruction folder")
    if not params_file.is_file():
        raise MissingFileError(
            f"{out} holds no {BODY_PARAMS_FILE} (the fitted body's parameters), which "
            "animation needs; folders written before it was saved must be reconstructed again")
    from ..io import load_ply
    from ..io.compact import seen_from_photo

    g = load_ply(ply)  # the header says the file is y-down; load_ply undoes it
    g = seen_from_photo(g, out)  # the photo camera's colours, as the viewer's
    params = BodyParams.load(params_file)
    model = body_model if body_model is not None else params.body_model()
    return bind(g, model, params, binding=binding)


def _yaw_matrix(yaw: Tensor) -> Tensor:
    """[T] angles -> [T,3,3] rotations about +y."""
    c, s = torch.cos(yaw), torch.sin(yaw)
    z, o = torch.zeros_like(yaw), torch.ones_like(yaw)
    return torch.stack([c, z, s, z, o, z, -s, z, c], -1).reshape(-1, 3, 3)


def motion_placement(motion: Motion, orient: Tensor, transl: Tensor) -> tuple[Tensor, Tensor]:
    """Per-frame global orientation [T,3,3] and position [T,3] of ``motion`` for a body
    placed at ``orient`` [3,3] / ``transl`` [3]: the motion's yaw turns the orientation
    about the vertical, its root offset moves the position."""
    return _yaw_matrix(motion.yaw) @ orient[None], transl[None] + motion.root_offset


def motion_frames(avatar: Avatar, motion: Motion, *, chunk: int = 8) -> Iterator[Gaussians]:
    """The avatar posed at every frame of ``motion`` (``chunk`` frames per body pass):
    the motion's joint rotations replace the fitted pose, its yaw turns the fitted
    orientation about the vertical, its root offset moves the fitted position."""
    from ..geometry import axis_angle_to_matrix

    m, p = avatar.body_model, avatar.params
    body_pose = motion.body_pose(m)  # [T,J-1,3,3]
    R_fit = p.global_orient.float()
    R_fit = axis_angle_to_matrix(R_fit) if R_fit.ndim == 1 else R_fit
    orient, transl = motion_placement(motion, R_fit, p.transl.float())  # [T,3,3], [T,3]
    for s in range(0, len(motion), chunk):
        yield from avatar.pose_batch(body_pose[s:s + chunk], global_orient=orient[s:s + chunk],
                                     transl=transl[s:s + chunk])


def animation_cameras(frames: list[Gaussians], *, size: int = 256, azimuth_deg: float = 20.0,
                      elevation_deg: float = 5.0, fovy_deg: float = DEFAULT_FOVY_DEG
                      ) -> Cameras:
    """One camera (azimuth 0 = the person's front) whose frame holds every frame's splat:
    :func:`~humansplat.io.video.orbit_framing` of the frames taken together."""
    from ..io.video import orbit_framing

    step = max(1, len(frames) // 8)
    union = Gaussians.cat([f for f in frames[::step]])
    target, radius = orbit_framing(union, fovy_deg)
    return orbit_cameras([azimuth_deg], elevation_deg, radius, target=target,
                         fovy_deg=fovy_deg, width=size, height=size)


def save_motion_video(avatar: Avatar, motion: Motion | str, path, *, size: int = 256,
                      azimuth_deg: float = 20.0, elevation_deg: float = 5.0,
                      n_frames: int | None = None, fps: float | None = None,
                      background=(1.0, 1.0, 1.0),
                      progress: Callable[[int, int], None] | None = None) -> Path:
    """Render ``motion`` (a :class:`Motion` or a name in ``MOTIONS``) of ``avatar`` from one
    fixed camera into an MP4 (H.264). A one-frame motion (``apose``) is shown as a
    turntable instead. ``progress(done, total)`` follows the frames. Returns the path."""
    from ..io.video import render_orbit_frames, save_orbit_video, write_video

    if isinstance(motion, str):
        motion = make_motion(motion, n_frames)
    fps = float(fps or motion.fps)
    frames = list(motion_frames(avatar, motion))
    if len(frames) == 1:
        return save_orbit_video(frames[0], path, size=size, fps=fps, elevation_deg=elevation_deg,
                                background=background, progress=progress)
    cam = animation_cameras(frames, size=size, azimuth_deg=azimuth_deg,
                            elevation_deg=elevation_deg)

    def rendered():
        for i, g in enumerate(frames):
            yield from render_orbit_frames(g, cam, background=background)
            if progress is not None:
                progress(i + 1, len(frames))

    return write_video(rendered(), path, fps=fps)


def animate_reconstruction(rec, motion: str = "walk", path="animation.mp4", *,
                           body_model=None, **video_kwargs) -> Path:
    """The app's hook: a ``Reconstruction`` (anything with ``avatar(body_model)``) played
    through ``motion`` into an MP4 at ``path`` (see :func:`save_motion_video`)."""
    return save_motion_video(rec.avatar(body_model), motion, path, **video_kwargs)


def animate_folder(out_dir, motion: str = "walk", output=None, *, body_model=None,
                   **video_kwargs) -> Path:
    """``humansplat animate`` as a function: bind the folder's splat, write
    ``output`` (default ``OUT_DIR/<motion>.mp4``)."""
    avatar = load_avatar(out_dir, body_model=body_model)
    output = Path(output) if output is not None else Path(out_dir) / f"{motion}.mp4"
    return save_motion_video(avatar, motion, output, **video_kwargs)


# ----------------------------------------------------------------------------------------
# CLI
# ----------------------------------------------------------------------------------------
def _cmd_animate(args: argparse.Namespace) -> int:
    import time

    t0 = time.perf_counter()
    path = animate_folder(args.folder, args.motion, args.output, size=args.size,
                          azimuth_deg=args.azimuth, elevation_deg=args.elevation,
                          n_frames=args.frames, fps=args.fps)
    print(f"{path} ({args.motion}, {time.perf_counter() - t0:.1f} s)")
    return 0


def register(subparsers) -> argparse.ArgumentParser:
    """Add ``animate`` to the ``humansplat`` command line's subparsers."""
    a = subparsers.add_parser(
        "animate", help="repose a saved reconstruction with a motion and write an MP4",
        description="Bind a reconstruction's Gaussians to its fitted body (gaussians.ply + "
                    "body.npz in FOLDER) and render them following a procedural motion.")
    a.add_argument("folder", help="a reconstruction folder (gaussians.ply, body.npz)")
    a.add_argument("--motion", default="walk", choices=sorted(MOTIONS))
    a.add_argument("-o", "--output", default=None,
                   help="video path (.mp4); default FOLDER/<motion>.mp4")
    a.add_argument("--size", type=int, default=384, help="frame size in pixels")
    a.add_argument("--frames", type=int, default=None, help="frames per loop")
    a.add_argument("--fps", type=float, default=None)
    a.add_argument("--azimuth", type=float, default=20.0,
                   help="camera azimuth in degrees (0 = the person's front)")
    a.add_argument("--elevation", type=float, default=5.0)
    a.set_defaults(func=_cmd_animate)
    return a
