"""Loading user images, and the uint8 HWC <-> float CHW conversions at the edges.

:func:`load_image` is the one entry point for photos coming from users (paths, uploads as
bytes, PIL images, numpy arrays). It honours the EXIF orientation, converts every colour mode
to 8-bit RGB, keeps a real alpha channel as a separate mask, and refuses unusable input with a
specific :class:`~humansplat.errors.InvalidImageError` message. The size limits are checked on
the header, before any pixel is decoded, so a decompression bomb costs nothing.
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from ..errors import InvalidImageError

__all__ = [
    "LoadedImage",
    "ImageNotFoundError",
    "load_image",
    "to_tensor",
    "to_uint8",
    "MIN_SIDE",
    "MAX_PIXELS",
]

MIN_SIDE = 64  # px on the short side; below this there is no person to reconstruct
MAX_PIXELS = 40_000_000  # 40 MP; larger photos are refused before decoding

_EXIF_ORIENTATION = 0x0112


class ImageNotFoundError(InvalidImageError, FileNotFoundError):
    """The image path does not exist (catchable as FileNotFoundError too)."""


@dataclass
class LoadedImage:
    """A decoded user image.

    rgb:           [H,W,3] uint8, upright (EXIF orientation applied).
    alpha:         [H,W] uint8 foreground mask from the image's own alpha channel, or None
                   when it had none or a constant one (fully opaque: nothing to learn).
    source:        where it came from: the path, or "<bytes>", "<PIL image>", "<array>".
    original_size: (width, height) as stored in the file, before the EXIF rotation.
    exif_rotated:  True when an EXIF orientation other than 1 was applied.
    """

    rgb: np.ndarray
    alpha: np.ndarray | None
    source: str
    original_size: tuple[int, int]
    exif_rotated: bool = False

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of ``rgb``."""
        return self.width, self.height


def _check_size(width: int, height: int, source: str) -> None:
    if width * height > MAX_PIXELS:
        raise InvalidImageError(
            f"{source}: the image is {width}x{height} ({width * height / 1e6:.1f} megapixels); "
            f"the limit is {MAX_PIXELS / 1e6:.0f} megapixels. Please downscale it first.")
    if min(width, height) < MIN_SIDE:
        raise InvalidImageError(
            f"{source}: the image is {width}x{height}, too small; its short side must be at "
            f"least {MIN_SIDE} px.")


def _open_encoded(src, source: str) -> Image.Image:
    """Open (header only) an encoded image from a path, bytes or a binary file object."""
    if isinstance(src, (str, os.PathLike)):
        p = Path(src)
        if not p.exists():
            raise ImageNotFoundError(f"image file not found: {p}")
        if not p.is_file():
            raise InvalidImageError(f"{p} is not a file")
        if p.stat().st_size == 0:
            raise InvalidImageError(f"{p}: the file is empty")
        data = p.read_bytes()
    elif isinstance(src, (bytes, bytearray, memoryview)):
        data = bytes(src)
    else:  # binary file object
        data = src.read()
        if not isinstance(data, bytes):
            raise InvalidImageError(f"{source}: the file object must be opened in binary mode")
    if not data:
        raise InvalidImageError(f"{source}: the image data is empty")
    try:
        with warnings.catch_warnings():
            # Our own limit is far below PIL's bomb threshold; its warning would only be noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as e:
        raise InvalidImageError(
            f"{source}: the image header claims an enormous size; the limit is "
            f"{MAX_PIXELS / 1e6:.0f} megapixels ({e})") from None
    except UnidentifiedImageError:
        raise InvalidImageError(
            f"{source}: not a recognised image file (expected JPEG, PNG, WebP, ...)") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise InvalidImageError(f"{source}: the image header is corrupt ({e})") from None


def _decode(img: Image.Image, source: str) -> Image.Image:
    """Force the full decode so corrupt or truncated data fails here, not later."""
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        # Someone enabled PIL's global "pad truncated images" mode; we still want to refuse.
        warnings.warn("PIL.ImageFile.LOAD_TRUNCATED_IMAGES is set: truncated images will not "
                      "be detected", RuntimeWarning, stacklevel=3)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img.load()
    except Image.DecompressionBombError as e:
        raise InvalidImageError(f"{source}: the image is too large to decode ({e})") from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, MemoryError) as e:
        raise InvalidImageError(
            f"{source}: the image data is corrupt or truncated ({e})") from None
    return img


def _exif_upright(img: Image.Image, source: str) -> tuple[Image.Image, bool]:
    try:
        orientation = int(img.getexif().get(_EXIF_ORIENTATION, 1) or 1)
    except Exception:  # a broken EXIF block must not make a fine photo unusable
        return img, False
    if orientation == 1:
        return img, False
    try:
        out = ImageOps.exif_transpose(img)
    except Exception:
        return img, False
    return (out if out is not None else img), orientation in range(2, 9)


def _high_bit_depth_to_uint8(img: Image.Image) -> np.ndarray:
    """Single-channel 16/32-bit integer or float PIL modes -> [H,W] uint8.

    PIL's own convert("L") clips these instead of scaling. Integer modes are taken as 16-bit
    (the only way PNG and TIFF produce them); float mode "F" as [0,1]."""
    a = np.asarray(img)
    if img.mode == "F":
        return np.clip(np.rint(np.nan_to_num(a) * 255.0), 0, 255).astype(np.uint8)
    return np.clip(np.rint(a.astype(np.float64) / 257.0), 0, 255).astype(np.uint8)


def _pil_to_arrays(img: Image.Image, source: str) -> tuple[np.ndarray, np.ndarray | None]:
    mode = img.mode
    if mode.startswith("I") or mode == "F":
        g = _high_bit_depth_to_uint8(img)
        return np.repeat(g[..., None], 3, axis=2), None
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info
    try:
        conv = img.convert("RGBA" if has_alpha else "RGB")
    except (ValueError, OSError) as e:
        raise InvalidImageError(f"{source}: unsupported colour mode {mode!r} ({e})") from None
    a = np.asarray(conv)
    if not has_alpha:
        return np.ascontiguousarray(a), None
    return np.ascontiguousarray(a[..., :3]), _meaningful_alpha(a[..., 3])


def _meaningful_alpha(alpha: np.ndarray) -> np.ndarray | None:
    """A constant alpha (fully opaque, or fully transparent as some exporters write) carries
    no foreground mask: drop it."""
    if alpha.size == 0 or alpha.min() == alpha.max():
        return None
    return np.ascontiguousarray(alpha)


def _array_to_uint8(a: np.ndarray, source: str) -> np.ndarray:
    if a.dtype == np.uint8:
        return a
    if a.dtype == np.uint16:
        return np.rint(a.astype(np.float64) / 257.0).astype(np.uint8)
    if a.dtype == np.bool_:
        return a.astype(np.uint8) * 255
    if a.dtype.kind == "f":
        if not np.isfinite(a).all():
            raise InvalidImageError(f"{source}: the array contains NaN or infinite values")
        lo, hi = float(a.min()), float(a.max())
        if lo < 0.0 or hi > 1.0:
            raise InvalidImageError(
                f"{source}: float image values must lie in [0, 1], got [{lo:.4g}, {hi:.4g}]")
        return np.rint(a.astype(np.float64) * 255.0).astype(np.uint8)
    raise InvalidImageError(
        f"{source}: unsupported array dtype {a.dtype}; use uint8, uint16 or float in [0, 1]")


def _from_array(a: np.ndarray, source: str) -> LoadedImage:
    if a.ndim == 3 and a.shape[0] in (1, 3, 4) and a.shape[2] not in (1, 3, 4):
        raise InvalidImageError(
            f"{source}: array shape {list(a.shape)} looks channels-first; images are HxWxC "
            f"(transpose with a.transpose(1, 2, 0))")
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] in (3, 4))):
        raise InvalidImageError(
            f"{source}: array must be HxW, HxWx1, HxWx3 or HxWx4, got shape {list(a.shape)}")
    h, w = a.shape[:2]
    _check_size(w, h, source)
    u8 = _array_to_uint8(a, source)
    if u8.ndim == 2:
        rgb, alpha = np.repeat(u8[..., None], 3, axis=2), None
    else:
        rgb = u8[..., :3]
        alpha = _meaningful_alpha(u8[..., 3]) if u8.shape[2] == 4 else None
    return LoadedImage(np.ascontiguousarray(rgb), alpha, source, (w, h), False)


def load_image(src) -> LoadedImage:
    """Load a user image from a path, bytes, a binary file object, a PIL image or a numpy
    array (HxW, HxWx1, HxWx3, HxWx4; uint8, uint16 or float in [0,1]).

    Raises InvalidImageError (ImageNotFoundError for a missing path) with a specific message
    for: empty input, a non-image, a corrupt or truncated image, a short side under
    ``MIN_SIDE`` px, more than ``MAX_PIXELS`` pixels, or an unsupported array."""
    if isinstance(src, np.ndarray):
        return _from_array(src, "<array>")
    if isinstance(src, torch.Tensor):
        raise InvalidImageError("load_image: got a torch.Tensor; pass a numpy HxWxC array "
                                "(to_uint8(tensor) converts a CHW tensor)")
    if isinstance(src, Image.Image):
        source, img = "<PIL image>", src
    elif isinstance(src, (str, os.PathLike)):
        source, img = str(src), _open_encoded(src, str(src))
    elif isinstance(src, (bytes, bytearray, memoryview)):
        source, img = "<bytes>", _open_encoded(src, "<bytes>")
    elif hasattr(src, "read"):
        source = str(getattr(src, "name", "<file>"))
        img = _open_encoded(src, source)
    else:
        raise InvalidImageError(
            f"load_image: src must be a path, bytes, a binary file, a PIL image or a numpy "
            f"array, got {type(src).__name__}")
    original_size = (int(img.width), int(img.height))
    _check_size(*original_size, source)  # header only: nothing decoded yet
    img = _decode(img, source)
    img, rotated = _exif_upright(img, source)
    rgb, alpha = _pil_to_arrays(img, source)
    return LoadedImage(rgb, alpha, source, original_size, rotated)


def to_tensor(rgb) -> torch.Tensor:
    """uint8 image(s) [H,W,C] or [B,H,W,C] (numpy or torch) -> float32 [C,H,W] / [B,C,H,W]
    in [0,1]. A [H,W] grey image gives [1,H,W]."""
    t = torch.from_numpy(np.ascontiguousarray(rgb)) if isinstance(rgb, np.ndarray) else rgb
    if not isinstance(t, torch.Tensor):
        raise ValueError(
            f"to_tensor: rgb must be a numpy array or tensor, got {type(rgb).__name__}")
    if t.dtype != torch.uint8:
        raise ValueError(f"to_tensor: rgb must be uint8, got {t.dtype}")
    if t.ndim == 2:
        t = t[..., None]
    if t.ndim not in (3, 4):
        raise ValueError(f"to_tensor: rgb must be [H,W], [H,W,C] or [B,H,W,C], got "
                         f"{list(t.shape)}")
    return t.movedim(-1, -3).float().div_(255.0)


def to_uint8(t) -> np.ndarray:
    """Float image(s) [C,H,W] or [B,C,H,W] in [0,1] (tensor or numpy) -> numpy uint8
    [H,W,C] / [B,H,W,C], clamped and rounded. A [H,W] input gives [H,W]."""
    if isinstance(t, np.ndarray):
        t = torch.from_numpy(t)
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"to_uint8: t must be a tensor or numpy array, got {type(t).__name__}")
    if not t.is_floating_point():
        raise ValueError(f"to_uint8: t must be a float image in [0,1], got {t.dtype}")
    if t.ndim not in (2, 3, 4):
        raise ValueError(f"to_uint8: t must be [H,W], [C,H,W] or [B,C,H,W], got {list(t.shape)}")
    u8 = t.detach().float().nan_to_num(0.0).clamp(0, 1).mul(255.0).round().to(torch.uint8)
    if u8.ndim >= 3:
        u8 = u8.movedim(-3, -1)
    return u8.cpu().contiguous().numpy()
