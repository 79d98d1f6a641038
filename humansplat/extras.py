"""Command-line entry points beyond the paper: ``animate``, ``parts``, ``compact``, ``export``.

``humansplat.cli`` calls :func:`register` once; each command lives with its library code
(``avatar.animate``, ``parts_export``) except ``compact``, which is small enough for here.
"""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["register"]


def _cmd_compact(args: argparse.Namespace) -> int:
    from .io import load_ply
    from .io.compact import save_compact, seen_from_photo

    src = Path(args.source)
    ply = src / "gaussians.ply" if src.is_dir() else src
    g = load_ply(ply)
    g = seen_from_photo(g, ply.parent)  # a result folder: as its photo's camera sees it
    out = Path(args.output) if args.output else ply.with_name(ply.stem + "_compact.splat")
    save_compact(g, out, y_down=True)
    before, after = ply.stat().st_size, out.stat().st_size
    print(f"{out} ({after / 1e6:.2f} MB, {before / max(after, 1):.1f}x smaller than {ply.name})")
    return 0


def register(subparsers) -> None:
    """Add ``animate``, ``parts``, ``compact`` and ``export`` to the ``humansplat``
    subparsers."""
    from .avatar.animate import register as register_animate
    from .export.command import register as register_export
    from .parts_export import register as register_parts

    register_animate(subparsers)
    register_parts(subparsers)
    register_export(subparsers)
    c = subparsers.add_parser(
        "compact", help="write a small web splat (.splat or SH0 .ply), pruned and sorted",
        description="Write a compact copy of a Gaussian .ply for web viewers: .splat "
                    "(32 bytes a Gaussian) or an SH0 float .ply (56-60 bytes), y-down, "
                    "invisible Gaussians dropped, sorted by opacity x volume.")
    c.add_argument("source", help="a reconstruction folder or a Gaussian .ply")
    c.add_argument("-o", "--output", default=None,
                   help="output .splat or .ply (default: <name>_compact.splat next to it)")
    c.set_defaults(func=_cmd_compact)
