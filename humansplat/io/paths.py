"""Small file-system helpers shared by the writers in ``humansplat.io``."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def as_path(path, arg: str = "path") -> Path:
    """``path`` as a :class:`Path`, or a ValueError naming the argument."""
    if not isinstance(path, (str, os.PathLike)):
        raise ValueError(f"{arg} must be a str or os.PathLike, got {type(path).__name__}")
    p = Path(path)
    if str(p) in ("", "."):
        raise ValueError(f"{arg} must name a file, got {str(path)!r}")
    return p


@contextmanager
def atomic_path(path, arg: str = "path") -> Iterator[Path]:
    """Yield a temporary path next to ``path``; move it onto ``path`` only if the block
    succeeds, so a failed or interrupted write never leaves a half-written file behind
    (the app serves files by URL while other requests run). The temporary name keeps the
    suffix because ffmpeg picks the container from it."""
    final = as_path(path, arg)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.stem}.{os.getpid()}.partial{final.suffix}")
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()
