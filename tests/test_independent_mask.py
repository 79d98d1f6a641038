"""The evaluation's independent person mask (humansplat.eval.independent_mask): it agrees
with the true masks of rendered synthetic people, and it is not the pipeline's segmenter."""

import ast
from pathlib import Path

import numpy as np
import pytest

from humansplat.errors import NoPersonError
from humansplat.eval.independent_mask import (
    IndependentPersonMask,
    independent_person_mask,
)
from humansplat.prior.segmentation import PersonSegmenter, default_segmenter

ROOT = Path(__file__).resolve().parents[1]


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a > 0.5, b > 0.5
    return float((a & b).sum() / (a | b).sum())


@pytest.fixture(scope="module")
def people():
    """Two synthetic people (different seeds: body, outfit, pose) rendered at 512 px over a
    textured backdrop, with their true coverage masks."""
    from humansplat.eval.avatar_eval import subject_photo
    from humansplat.data.synthetic_humans import sample_subject

    y, x = np.mgrid[0:512, 0:512] / 512.0
    backdrop = np.stack([0.55 + 0.3 * np.sin(7 * x), 0.5 + 0.2 * y, 0.45 + 0.25 * np.cos(5 * y)], -1)
    out = []
    for seed in (3, 11):
        rgba = subject_photo(sample_subject(seed), 512).astype(np.float64) / 255.0
        a = rgba[..., 3:]
        # the render's colour is premultiplied by coverage
        rgb = rgba[..., :3] + backdrop * (1 - a)
        out.append(((rgb * 255 + 0.5).clip(0, 255).astype(np.uint8), rgba[..., 3]))
    return out


def test_agrees_with_true_masks_of_synthetic_people(people):
    for rgb, truth in people:
        m = independent_person_mask(rgb)
        assert m.shape == truth.shape and m.dtype == np.float32
        assert 0.0 <= m.min() and m.max() <= 1.0
        assert _iou(m, truth) > 0.9


def test_is_not_the_pipelines_segmenter(people):
    seg = IndependentPersonMask()
    pipe_seg = default_segmenter()
    assert not isinstance(seg, PersonSegmenter)
    assert seg.name != pipe_seg.name and "pose" in seg.name
    assert seg._solution is not pipe_seg._solution  # its own mediapipe graph
    from humansplat.prior.landmarks import MediapipePose

    assert seg._solution is not MediapipePose()._solution
    # different networks: close on the same photo but not the same mask
    rgb, _ = people[0]
    a, b = seg(rgb), pipe_seg(rgb)
    assert _iou(a, b) > 0.8 and np.abs(a - b).mean() > 1e-3


def test_nothing_but_evaluation_imports_it():
    for path in (ROOT / "humansplat").rglob("*.py"):
        if path.parent.name == "eval" or path.name == "independent_mask.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""] + [a.name for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            assert not any("independent_mask" in n for n in names), path


def test_no_person_and_bad_input():
    with pytest.raises(NoPersonError):
        independent_person_mask(np.full((128, 128, 3), 200, np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        independent_person_mask(np.zeros((64, 64, 3), np.float32))
