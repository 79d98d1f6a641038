"""Checks a photo before it is queued, with messages a visitor can act on.

The header is read first (format, size, aspect ratio) so an oversized or bogus file costs
nothing; then the whole image is decoded by :func:`humansplat.io.load_image`, which catches
corrupt and truncated files. Messages never contain server paths. Whether a *person* is in the
photo is decided by the pipeline's first stage (segmentation + pose), not here: that needs the
models and belongs inside the queued, concurrency-limited run."""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from ..errors import InvalidImageError
from ..io.images import MIN_SIDE, LoadedImage, load_image

__all__ = ["PhotoCheck", "check_photo", "load_photo", "MAX_ASPECT", "FORMATS"]

#: the longer side may be at most this many times the shorter one
MAX_ASPECT = 8.0
#: image formats accepted from visitors (PIL format names)
FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "TIFF", "MPO", "GIF")


@dataclass(frozen=True)
class PhotoCheck:
    """Limits for visitor photos (the app fills them from its settings)."""

    max_bytes: int = 10 * 1024 * 1024
    max_megapixels: float = 24.0
    min_side: int = MIN_SIDE
    max_aspect: float = MAX_ASPECT


def _read(path) -> bytes:
    if path is None or (isinstance(path, str) and not path.strip()):
        raise InvalidImageError("Please upload a photo of a person first (or pick an example).")
    p = Path(os.fspath(path))
    if not p.is_file():
        raise InvalidImageError("The photo is no longer on the server (finished sessions are "
                                "cleaned up); please upload it again.")
    return p.read_bytes()


def load_photo(path, limits: PhotoCheck = PhotoCheck()) -> LoadedImage:
    """Read and check a visitor's photo; returns it decoded (``source`` is ``"upload"``, so no
    server path reaches ``meta.json``). Raises :class:`InvalidImageError` with a readable
    message for: no photo, an empty or too large file, a non-image, a format we do not take,
    too small / too large / too elongated an image, a corrupt or truncated file."""
    data = _read(path)
    if not data:
        raise InvalidImageError("The file is empty.")
    if len(data) > limits.max_bytes:
        raise InvalidImageError(f"The file is {len(data) / 2**20:.3g} MB; the limit is "
                                f"{limits.max_bytes / 2**20:.3g} MB.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:  # header only
                fmt, (w, h) = im.format, im.size
    except (UnidentifiedImageError, Image.DecompressionBombError):
        raise InvalidImageError("This file is not an image we can read; please upload a JPEG, "
                                "PNG or WebP photo.") from None
    except Exception:  # a header so broken PIL cannot parse it
        raise InvalidImageError("The image file is damaged (its header cannot be read); "
                                "please upload another photo.") from None
    if fmt not in FORMATS:
        raise InvalidImageError(f"{fmt} images are not supported; please upload a JPEG, PNG "
                                "or WebP photo.")
    if min(w, h) < limits.min_side:
        raise InvalidImageError(f"The image is {w}x{h} pixels, too small to find a person in; "
                                f"its shorter side must be at least {limits.min_side} pixels.")
    if w * h > limits.max_megapixels * 1e6:
        raise InvalidImageError(f"The image is {w}x{h} pixels ({w * h / 1e6:.1f} megapixels); "
                                f"the limit is {limits.max_megapixels:g} megapixels. Please "
                                "downscale it.")
    if max(w, h) > limits.max_aspect * min(w, h):
        raise InvalidImageError(f"The image is {w}x{h} pixels, too elongated; please crop it "
                                f"to at most {limits.max_aspect:g}:1.")
    try:
        loaded = load_image(data)
    except InvalidImageError as err:
        # load_image prefixes its messages with the source ("<bytes>: ..."); drop it
        msg = str(err).split(": ", 1)[-1]
        raise InvalidImageError(f"The image cannot be used: {msg}") from None
    return replace(loaded, source="upload")


def check_photo(path, limits: PhotoCheck = PhotoCheck()) -> str | None:
    """None when :func:`load_photo` accepts the photo, else its message."""
    try:
        load_photo(path, limits)
    except InvalidImageError as err:
        return str(err)
    return None
