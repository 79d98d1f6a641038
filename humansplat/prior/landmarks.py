"""2D body landmarks: the ``Landmarks`` result, mediapipe's 33-point layout, COCO mapping, detector.

The body fitter matches Anny's COCO keypoint regressor (``anny.KeypointsRegressor.coco``:
17 COCO body points + 6 COCO-WholeBody foot points, in the order of ``COCO23_NAMES``), so
``Landmarks.keypoints(labels)`` re-orders mediapipe's points by *name*; pass the regressor's
``labels`` and the two always agree.

Foot mapping (mediapipe -> COCO-WholeBody), our choice:
  ``left_heel``/``right_heel``          -> ``left_heel``/``right_heel`` (same landmark);
  ``left_foot_index``/``right_foot_index`` -> ``left_big_toe``/``right_big_toe`` (mediapipe's
  "foot index" is the tip of the foot at the first/second toe, within ~2 cm of the big toe tip);
  ``left_small_toe``/``right_small_toe`` have no mediapipe counterpart: confidence 0.
"""

from __future__ import annotations

import abc
import dataclasses
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ._mediapipe import fit_long_side, import_mediapipe, shared_solution

__all__ = [
    "MEDIAPIPE_LANDMARK_NAMES",
    "COCO17_NAMES",
    "COCO_FOOT_NAMES",
    "COCO23_NAMES",
    "COCO_TO_MEDIAPIPE",
    "MEDIAPIPE_TO_COCO17",
    "MEDIAPIPE_TO_COCO23",
    "MEDIAPIPE_BONES",
    "Landmarks",
    "PoseDetector",
    "MediapipePose",
    "default_pose",
]

#: mediapipe Pose's 33 landmarks, index order (``mp.solutions.pose.PoseLandmark``).
MEDIAPIPE_LANDMARK_NAMES: tuple[str, ...] = (
    "nose",
    "left_eye_inner", "left_eye", "left_eye_outer",
    "right_eye_inner", "right_eye", "right_eye_outer",
    "left_ear", "right_ear",
    "mouth_left", "mouth_right",
    "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow",
    "left_wrist", "right_wrist",
    "left_pinky", "right_pinky",
    "left_index", "right_index",
    "left_thumb", "right_thumb",
    "left_hip", "right_hip",
    "left_knee", "right_knee",
    "left_ankle", "right_ankle",
    "left_heel", "right_heel",
    "left_foot_index", "right_foot_index",
)  # fmt: skip

#: COCO-17 body keypoints, COCO order.
COCO17_NAMES: tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)  # fmt: skip

#: COCO-WholeBody foot keypoints in the order Anny's COCO regressor lists them.
COCO_FOOT_NAMES: tuple[str, ...] = (
    "left_big_toe", "right_big_toe", "left_small_toe", "right_small_toe", "left_heel", "right_heel",
)  # fmt: skip

#: Anny's ``KeypointsRegressor.coco`` labels: 17 COCO + 6 foot points.
COCO23_NAMES: tuple[str, ...] = COCO17_NAMES + COCO_FOOT_NAMES

_MP_INDEX = {n: i for i, n in enumerate(MEDIAPIPE_LANDMARK_NAMES)}

#: COCO(-WholeBody) keypoint name -> mediapipe landmark index (small toes are absent).
COCO_TO_MEDIAPIPE: dict[str, int] = {
    **{n: _MP_INDEX[n] for n in COCO17_NAMES},
    "left_big_toe": _MP_INDEX["left_foot_index"],
    "right_big_toe": _MP_INDEX["right_foot_index"],
    "left_heel": _MP_INDEX["left_heel"],
    "right_heel": _MP_INDEX["right_heel"],
}

#: mediapipe indices in COCO-17 order: ``xy[MEDIAPIPE_TO_COCO17]`` is COCO-ordered.
MEDIAPIPE_TO_COCO17: tuple[int, ...] = tuple(COCO_TO_MEDIAPIPE[n] for n in COCO17_NAMES)

#: mediapipe indices in COCO23_NAMES order; -1 where mediapipe has no such point.
MEDIAPIPE_TO_COCO23: tuple[int, ...] = tuple(COCO_TO_MEDIAPIPE.get(n, -1) for n in COCO23_NAMES)


#: mediapipe's skeleton (``POSE_CONNECTIONS``) as landmark-index pairs: face outline, torso,
#: arms, hands, legs, feet. Drawn lines of it stand for a person's body when a mask must be
#: shared between people (``preprocess``).
MEDIAPIPE_BONES: tuple[tuple[int, int], ...] = (
    (0, 1), (0, 4), (1, 2), (2, 3), (3, 7), (4, 5), (5, 6), (6, 8), (9, 10), (11, 12),
    (11, 13), (11, 23), (12, 14), (12, 24), (13, 15), (14, 16), (15, 17), (15, 19), (15, 21),
    (16, 18), (16, 20), (16, 22), (17, 19), (18, 20), (23, 24), (23, 25), (24, 26), (25, 27),
    (26, 28), (27, 29), (27, 31), (28, 30), (28, 32), (29, 31), (30, 32),
)  # fmt: skip


@dataclass
class Landmarks:
    """33 mediapipe body landmarks of one person in one image.

    xy:         float32 [33,2] pixel coordinates of the image they were detected in, pixel
                centres at +0.5 (the top-left pixel spans [0,1]x[0,1]); may lie outside it.
    visibility: float32 [33] in [0,1], mediapipe's likelihood that the point is in frame and
                not occluded.
    world:      float32 [33,3] or None: mediapipe world landmarks, metres, origin between the
                hips, axes as the image (x right, y down, z away from the camera).
    score:      mean visibility of the 17 COCO body points: how much of a body was seen.
    """

    xy: np.ndarray
    visibility: np.ndarray
    world: np.ndarray | None = None
    score: float = 0.0

    def __post_init__(self) -> None:
        self.xy = np.asarray(self.xy, dtype=np.float32)
        self.visibility = np.asarray(self.visibility, dtype=np.float32)
        n = len(MEDIAPIPE_LANDMARK_NAMES)
        if self.xy.shape != (n, 2):
            raise ValueError(f"xy must have shape [{n},2], got {self.xy.shape}")
        if self.visibility.shape != (n,):
            raise ValueError(f"visibility must have shape [{n}], got {self.visibility.shape}")
        if self.world is not None:
            self.world = np.asarray(self.world, dtype=np.float32)
            if self.world.shape != (n, 3):
                raise ValueError(f"world must have shape [{n},3] or be None, got {self.world.shape}")
        self.score = float(self.score)

    def visible(self, threshold: float = 0.5) -> np.ndarray:
        """bool [33]: visibility >= threshold."""
        return self.visibility >= threshold

    def keypoints(self, labels: Sequence[str] = COCO23_NAMES) -> tuple[np.ndarray, np.ndarray]:
        """Keypoints by COCO(-WholeBody) name -> (xy float32 [K,2], confidence float32 [K]).

        Names mediapipe lacks (the small toes) get xy 0 and confidence 0, so a weighted loss
        ignores them without NaNs. Unknown names raise ValueError.
        """
        unknown = [n for n in labels if n not in COCO_TO_MEDIAPIPE and n not in COCO23_NAMES]
        if unknown:
            raise ValueError(f"labels has names with no COCO/mediapipe meaning: {unknown}")
        idx = np.array([COCO_TO_MEDIAPIPE.get(n, -1) for n in labels], dtype=np.int64)
        have = idx >= 0
        xy = np.zeros((len(idx), 2), np.float32)
        conf = np.zeros(len(idx), np.float32)
        xy[have] = self.xy[idx[have]]
        conf[have] = self.visibility[idx[have]]
        return xy, conf

    def transformed(self, scale: float | Sequence[float], offset: Sequence[float]) -> "Landmarks":
        """A copy with ``xy * scale + offset`` (per-axis scale allowed); world is unchanged."""
        s = np.asarray(scale, np.float32)
        o = np.asarray(offset, np.float32)
        return dataclasses.replace(self, xy=self.xy * s + o)


def _score(visibility: np.ndarray) -> float:
    return float(np.mean(visibility[list(MEDIAPIPE_TO_COCO17)]))


class PoseDetector(abc.ABC):
    """Interface: ``detector(rgb uint8 [H,W,3]) -> Landmarks | None`` (None: no person)."""

    name: str = "pose"

    @abc.abstractmethod
    def __call__(self, rgb: np.ndarray) -> Landmarks | None: ...


class MediapipePose(PoseDetector):
    """mediapipe Pose (BlazePose, ``model_complexity=1``, the only one in the wheel).

    ``static_image_mode=True``: every call runs the person detector (no tracking between
    unrelated photos). Inputs larger than ``max_side`` are downscaled first (the landmark model
    sees a 256 px crop); results are in the caller's pixels. All instances with the same
    settings share one graph.
    """

    def __init__(self, min_detection_confidence: float = 0.5, *, max_side: int = 1280):
        if not 0.0 < min_detection_confidence < 1.0:
            raise ValueError(
                f"min_detection_confidence must be in (0, 1), got {min_detection_confidence}"
            )
        if max_side < 64:
            raise ValueError(f"max_side must be >= 64, got {max_side}")
        self.min_detection_confidence = float(min_detection_confidence)
        self.max_side = max_side
        self.name = "mediapipe-pose-1"

        def build() -> Any:
            mp = import_mediapipe()
            return mp.solutions.pose.Pose(
                static_image_mode=True,
                model_complexity=1,
                enable_segmentation=False,
                min_detection_confidence=self.min_detection_confidence,
            )

        self._solution = shared_solution(("pose", 1, self.min_detection_confidence), build)

    def __call__(self, rgb: np.ndarray) -> Landmarks | None:
        if not (isinstance(rgb, np.ndarray) and rgb.dtype == np.uint8 and rgb.ndim == 3
                and rgb.shape[2] == 3):
            got = f"{rgb.dtype} {rgb.shape}" if isinstance(rgb, np.ndarray) else type(rgb).__name__
            raise ValueError(f"rgb must be a uint8 array [H,W,3], got {got}")
        h, w = rgb.shape[:2]
        result = self._solution.process(fit_long_side(rgb, self.max_side))
        if result.pose_landmarks is None:
            return None
        lm = result.pose_landmarks.landmark
        # normalised [0,1] image coordinates -> pixels of the caller's image
        xy = np.array([[p.x * w, p.y * h] for p in lm], dtype=np.float32)
        vis = np.array([p.visibility for p in lm], dtype=np.float32)
        world = None
        if result.pose_world_landmarks is not None:
            world = np.array([[p.x, p.y, p.z] for p in result.pose_world_landmarks.landmark], np.float32)
        return Landmarks(xy=xy, visibility=np.clip(vis, 0.0, 1.0), world=world, score=_score(vis))


_DEFAULT: PoseDetector | None = None


def default_pose() -> PoseDetector:
    """The process-wide default pose detector (mediapipe, model_complexity=1)."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = MediapipePose()
    return _DEFAULT
