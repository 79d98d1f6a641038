"""The ``humansplat`` command line.

Every command prints a one-line error and exits 2 on bad input (no traceback for the user);
``--debug`` shows the traceback."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import HumanSplatError

EXIT_BAD_INPUT = 2


def _cmd_render(args: argparse.Namespace) -> int:
    """Re-render a saved .ply from chosen orbit views into PNGs (and optionally a video)."""
    import numpy as np
    import torch
    from PIL import Image

    from .cameras import orbit_cameras
    from .io import load_ply, save_orbit_video
    from .io.video import orbit_framing
    from .render import rasterize

    g = load_ply(args.ply)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    target, radius = orbit_framing(g)
    radius = args.radius or radius
    az = [float(a) for a in args.azimuths]
    cams = orbit_cameras(az, args.elevation, radius, target=target,
                         width=args.size, height=args.size)
    bg = torch.ones(len(cams), 3)
    with torch.no_grad():
        img, _, _ = rasterize(g.means, g.quats, g.scales, g.opacities,
                              g.colors if g.sh is None else g.sh, cams.viewmats, cams.Ks,
                              args.size, args.size, backgrounds=bg, sh_degree=g.sh_degree)
    for a, im in zip(az, img):
        path = out / f"view_az{a:05.1f}.png"
        Image.fromarray((im.clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)).save(path)
        print(path)
    if args.video:
        path = save_orbit_video(g, out / "orbit.mp4", size=args.size)
        print(path)
    return 0


def _cmd_prior(args: argparse.Namespace) -> int:
    """Prior-only reconstruction of each photo into OUT/<photo name>/ (no learned model)."""
    from .baseline import reconstruct_prior_only
    from .prior.body import AnnyBody

    out_root = Path(args.output)
    body = AnnyBody()
    failed = 0
    for i, image in enumerate(args.images, 1):
        name = Path(image).stem
        try:
            rec = reconstruct_prior_only(image, size=args.size, body_model=body,
                                         foreground_ratio=args.foreground_ratio,
                                         remove_background=not args.keep_background)
            paths = rec.save(out_root / name, video=not args.no_video)
        except (HumanSplatError, ValueError, FileNotFoundError, PermissionError) as err:
            if args.debug:
                raise
            failed += 1
            print(f"[{i}/{len(args.images)}] {image}: error: {err}", file=sys.stderr)
            continue
        t = rec.meta["timings_s"]
        print(f"[{i}/{len(args.images)}] {image}: {len(rec.gaussians)} Gaussians, fit IoU "
              f"{rec.meta['fit'].get('silhouette_iou') or float('nan'):.2f}, "
              f"{sum(t.values()):.1f} s -> {paths['ply'].parent}")
    return EXIT_BAD_INPUT if failed else 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="humansplat", description=__doc__.splitlines()[0])
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("render", help="re-render a saved Gaussian .ply from orbit views")
    r.add_argument("ply")
    r.add_argument("-o", "--output", required=True, help="output folder")
    r.add_argument("--azimuths", nargs="+", default=["0", "90", "180", "270"],
                   help="orbit azimuths in degrees (0 = the person's front)")
    r.add_argument("--elevation", type=float, default=0.0)
    r.add_argument("--radius", type=float, default=None, help="default: fit the splat")
    r.add_argument("--size", type=int, default=512)
    r.add_argument("--video", action="store_true", help="also write a 360-degree orbit.mp4")
    r.set_defaults(func=_cmd_render)

    pr = sub.add_parser("prior", help="prior-only reconstruction: fitted, textured body as "
                        "Gaussians (no learned model; the baseline the transformer must beat)")
    pr.add_argument("images", nargs="+")
    pr.add_argument("-o", "--output", required=True, help="output folder (one subfolder per photo)")
    pr.add_argument("--size", type=int, default=512, help="crop resolution")
    pr.add_argument("--foreground-ratio", type=float, default=0.85)
    pr.add_argument("--keep-background", action="store_true")
    pr.add_argument("--no-video", action="store_true")
    pr.set_defaults(func=_cmd_prior)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (HumanSplatError, ValueError, FileNotFoundError, PermissionError) as err:
        if args.debug:
            raise
        print(f"humansplat {args.command}: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
