"""``humansplat export``: a saved reconstruction folder -> a rigged, textured GLB (or a
textured OBJ).

Library: :func:`export_folder`. CLI: :func:`register` adds the subcommand.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Sequence

import torch

from ..avatar.motions import MOTIONS
from ..errors import ConfigError, MissingFileError
from .skin import POSES

__all__ = ["FORMATS", "load_input_camera", "export_folder", "register"]

FORMATS = ("glb", "obj")


def load_input_camera(meta_path):
    """The photo's camera recorded in a reconstruction's ``meta.json`` (None when the file
    or the record is missing)."""
    from .asset import InputCamera

    p = Path(meta_path)
    if not p.is_file():
        return None
    try:
        cam = json.loads(p.read_text())["camera"]
        w, h = (int(v) for v in cam["image_size"])
        return InputCamera(torch.tensor(cam["viewmat"], dtype=torch.float32).reshape(4, 4),
                           torch.tensor(cam["K"], dtype=torch.float32).reshape(3, 3), w, h)
    except (KeyError, TypeError, ValueError):
        return None


def export_folder(folder, output=None, *, format: str = "glb", pose: str = "input",
                  motions: Sequence[str] = ("walk",), body_model=None,
                  texture_size: int = 512):
    """Export the reconstruction in ``folder`` (gaussians.ply, body.npz, meta.json) to
    ``output`` (default ``FOLDER/avatar.glb`` / ``FOLDER/avatar.obj``). Returns
    (path written, the :class:`~humansplat.export.asset.AvatarAsset`)."""
    from ..avatar.animate import PLY_FILE
    from ..avatar.skinning import BODY_PARAMS_FILE, BodyParams
    from ..io import load_ply
    from .asset import build_avatar

    if format not in FORMATS:
        raise ConfigError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
    src = Path(folder)
    # the user's input: one line and exit 2 in the CLI (the error policy), not a traceback
    if not src.is_dir():
        raise MissingFileError(f"no such reconstruction folder: {src}")
    for name in (PLY_FILE, BODY_PARAMS_FILE):
        if not (src / name).is_file():
            raise MissingFileError(f"{src} holds no {name}: not a reconstruction folder "
                                   "(export needs gaussians.ply and body.npz)")
    params = BodyParams.load(src / BODY_PARAMS_FILE)
    model = body_model if body_model is not None else params.body_model()
    g = load_ply(src / PLY_FILE).to(model.device)  # y-down file, y-up in memory
    asset = build_avatar(g, params, model, input_camera=load_input_camera(src / "meta.json"),
                         pose=pose, motions=tuple(motions), texture_size=texture_size,
                         name=src.name or "humansplat_avatar")
    out = Path(output) if output is not None else src / f"avatar.{format}"
    if format == "glb":
        from .gltf import write_glb

        return write_glb(asset, out), asset
    from .obj import write_obj

    return write_obj(asset, out)["obj"], asset


def _cmd_export(args: argparse.Namespace) -> int:
    import time

    t0 = time.perf_counter()
    motions = args.motion or ["walk"]
    if args.format == "obj" and args.motion:
        print("note: OBJ has no skinning or animation; --motion is ignored")
    path, asset = export_folder(args.folder, args.output, format=args.format, pose=args.pose,
                                motions=motions if args.format == "glb" else (),
                                texture_size=args.texture_size)
    s = asset.stats
    print(f"{path} ({s['exported_vertices']} vertices, {s['faces']} triangles, "
          f"{s['joints']} joints, pose {args.pose}"
          + (f", motions {', '.join(motions)}" if args.format == "glb" else "")
          + f", {time.perf_counter() - t0:.1f} s)")
    return 0


def register(subparsers) -> argparse.ArgumentParser:
    """Add ``export`` to the ``humansplat`` command line's subparsers."""
    e = subparsers.add_parser(
        "export", help="turn a reconstruction into a rigged, textured GLB (or a textured OBJ)",
        description="Carve a clothed surface mesh from a reconstruction's splat and fitted "
                    "body, bake the splat's colours into a texture, and write a binary glTF "
                    "2.0 with the body model's skeleton, skinning weights and motions as "
                    "animations (Blender, Unity, three.js, ...); --format obj writes OBJ + "
                    "MTL + PNG for tools without skinning.")
    e.add_argument("folder", help="a reconstruction folder (gaussians.ply, body.npz, meta.json)")
    e.add_argument("--format", default="glb", choices=FORMATS)
    e.add_argument("-o", "--output", default=None,
                   help="output file (default FOLDER/avatar.glb or FOLDER/avatar.obj)")
    e.add_argument("--pose", default="input", choices=POSES,
                   help="bind pose of the mesh: input (the photo's pose; lines up with the "
                   "splat), apose or tpose (standing on y=0, facing +z)")
    e.add_argument("--motion", action="append", choices=sorted(MOTIONS), default=None,
                   help="a motion to include as an animation (repeat for several; default "
                   "walk)")
    e.add_argument("--texture-size", type=int, default=512, choices=(512, 1024, 2048),
                   help="texture side in pixels")
    e.set_defaults(func=_cmd_export)
    return e
