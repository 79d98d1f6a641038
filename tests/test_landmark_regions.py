"""The head and limbs the pose places where the segmenter saw background
(prior.landmark_regions): the head's ellipse and the limbs' capsules from the person's own
landmarks, no head from a face placed below the shoulders, and GrabCut taking a cap or an arm
the segmenter called surely background, but not the wall beside them."""

import cv2
import numpy as np
import pytest

from humansplat.pipeline.config import PipelineConfig
from humansplat.errors import ConfigError
from humansplat.prior.landmark_regions import (
    LIMB_RADII,
    face_is_plausible,
    likely_head,
    likely_limbs,
)
from humansplat.prior.landmarks import MEDIAPIPE_LANDMARK_NAMES, Landmarks
from humansplat.prior.segmentation import refine_with_colour

_I = {n: i for i, n in enumerate(MEDIAPIPE_LANDMARK_NAMES)}


def _upright(ears_y: float = 100.0, dx: float = 0.0) -> Landmarks:
    """A standing person facing the camera: ears 20 px apart at ``ears_y``."""
    xy = np.zeros((33, 2), np.float32)
    vis = np.zeros(33, np.float32)
    pts = {"left_ear": (120, ears_y), "right_ear": (100, ears_y),
           "left_eye": (114, ears_y - 2), "right_eye": (106, ears_y - 2),
           "nose": (110, ears_y + 3), "mouth_left": (113, ears_y + 6),
           "mouth_right": (107, ears_y + 6),
           "left_shoulder": (135, 140), "right_shoulder": (85, 140),
           "left_hip": (125, 220), "right_hip": (95, 220)}
    for name, (x, y) in pts.items():
        xy[_I[name]] = (x + dx, y)
        vis[_I[name]] = 1.0
    return Landmarks(xy, vis)


def test_head_ellipse_reaches_the_crown_not_the_chest():
    region = likely_head(_upright(), (300, 240))
    assert region.dtype == bool and region.shape == (300, 240)
    s = 20.0  # the ears' distance
    assert region[int(100 - 0.9 * s), 110]  # the crown, above the ears
    assert region[100, 110] and region[90, 101]  # ear level, beside the middle
    assert not region[int(100 - 1.1 * s), 110]  # above the crown
    assert not region[130, 110] and not region[100, 110 + int(0.7 * s)]  # chest, wall
    assert likely_head(None, (300, 240)).sum() == 0


def test_no_head_from_a_face_below_the_shoulders():
    lm = _upright(ears_y=170.0)  # the detector took the chest for the face
    assert not face_is_plausible(lm)
    assert likely_head(lm, (300, 240)).sum() == 0
    assert face_is_plausible(_upright())
    # it cannot tell without hips: plausible
    lm2 = _upright(ears_y=170.0)
    lm2.visibility[[_I["left_hip"], _I["right_hip"]]] = 0.0
    assert face_is_plausible(lm2)


def test_head_follows_the_neck_of_a_person_lying_down():
    lm = _upright()
    # rotate the whole person 90 degrees: the neck points along +x
    c = np.array([110.0, 150.0], np.float32)
    xy = (lm.xy - c) @ np.array([[0, 1], [-1, 0]], np.float32) + c
    region = likely_head(Landmarks(xy, lm.visibility), (300, 300))
    ears = xy[[_I["left_ear"], _I["right_ear"]]].mean(0)
    up = ears - xy[[_I["left_shoulder"], _I["right_shoulder"]]].mean(0)
    up /= np.linalg.norm(up)
    crown = ears + 0.9 * 20.0 * up
    assert region[int(crown[1]), int(crown[0])]
    beyond = ears + 1.15 * 20.0 * up
    assert not region[int(round(beyond[1])), int(round(beyond[0]))]


def test_grabcut_takes_the_cap_but_not_the_wall_beside_it():
    """A teal cap the segmenter called surely background (0) on a skin-coloured head: with
    the head's ellipse GrabCut decides it by colour; the grey wall inside the ellipse stays."""
    h, w = 300, 240
    rgb = np.empty((h, w, 3), np.uint8)
    rgb[:] = (200, 200, 205)  # wall
    yy, xx = np.mgrid[0:h, 0:w]
    head = ((xx - 110) / 8.0) ** 2 + ((yy - 96) / 11.0) ** 2 < 1.0
    cap = head & (yy < 92)
    body = (np.abs(xx - 110) < 28) & (yy > 108) & (yy < 260)
    rgb[head] = (205, 160, 130)
    rgb[cap] = (30, 150, 160)
    rgb[body] = (30, 150, 160)  # a teal shirt: the cap's colour is the person's
    rng = np.random.default_rng(0)
    rgb = np.clip(rgb + rng.normal(0, 4, rgb.shape), 0, 255).astype(np.uint8)
    prob = np.zeros((h, w), np.float32)
    prob[(head & ~cap) | body] = 1.0  # the segmenter misses the cap entirely
    likely = likely_head(_upright(), (h, w))
    assert likely[cap].mean() > 0.9 and (likely & ~head).sum() > 150  # wall in it too
    plain = refine_with_colour(rgb, prob)
    out = refine_with_colour(rgb, prob, likely=likely)
    assert (plain[cap] > 0.5).mean() < 0.05  # surely background stays background
    assert (out[cap] > 0.5).mean() > 0.9
    wall = likely & ~head
    assert (out[wall] > 0.5).mean() < 0.05



def test_the_heads_core_is_person_where_colour_cannot_tell():
    """A head the wall's colour (a grey cap, a pixelated face: no colour of the person's own)
    that the segmenter called surely background: with the ellipse alone GrabCut leaves it
    out; the ellipse's core (``likely_head(..., scale)``), handed as ``certain``, is person,
    and nothing beyond the ellipse is taken."""
    h, w = 300, 240
    rgb = np.empty((h, w, 3), np.uint8)
    rgb[:] = (200, 200, 205)
    yy, xx = np.mgrid[0:h, 0:w]
    head = ((xx - 110) / 12.5) ** 2 + ((yy - 93) / 16.0) ** 2 < 1.0
    body = (np.abs(xx - 110) < 28) & (yy > 108) & (yy < 260)
    rgb[head] = (196, 198, 204)  # the wall's colour, near enough
    rgb[body] = (30, 150, 160)
    rng = np.random.default_rng(0)
    rgb = np.clip(rgb + rng.normal(0, 4, rgb.shape), 0, 255).astype(np.uint8)
    prob = np.zeros((h, w), np.float32)
    prob[body] = 1.0
    likely = likely_head(_upright(), (h, w))
    core = likely_head(_upright(), (h, w), 0.8)
    assert core.sum() < 0.7 * likely.sum() and (core & ~likely).sum() == 0
    assert (refine_with_colour(rgb, prob, likely=likely)[head] > 0.5).mean() < 0.05
    out = refine_with_colour(rgb, prob, likely=likely, certain=core)
    inner = cv2.erode(core.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0  # GrabCut ran
    assert inner.sum() > 100 and (out[inner] > 0.5).all()  # at 256 px: its edge is resampled
    assert (out[head] > 0.5).mean() > 0.5
    near = cv2.dilate((likely | body).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    assert (out[~near] > 0.5).sum() == 0
    # with nothing left for colour to decide (a crisp mask, the core the whole ellipse),
    # the core is still person
    small = (slice(0, 200), slice(0, 200))  # GrabCut's own 256 px: no resampling
    whole = likely_head(_upright(), (200, 200), 1.0)
    crisp = refine_with_colour(rgb[small], prob[small], likely=whole, certain=whole)
    assert (crisp[whole] == 1.0).all()
    assert (crisp[~whole] == prob[small][~whole]).all()
    # where the segmenter already saw the person, nothing changes
    assert np.array_equal(refine_with_colour(rgb, np.maximum(prob, head), certain=core),
                          refine_with_colour(rgb, np.maximum(prob, head)))


def _arm_out(lm: Landmarks) -> Landmarks:
    """``lm`` with its left arm held straight out to the side (elbow, wrist, hand)."""
    xy, vis = lm.xy.copy(), lm.visibility.copy()
    for name, x in (("left_elbow", 170), ("left_wrist", 205), ("left_index", 218),
                    ("left_pinky", 216)):
        xy[_I[name]] = (x, 140)
        vis[_I[name]] = 1.0
    return Landmarks(xy, vis)


def test_limb_capsules_follow_the_bones_as_wide_as_the_shoulders_say():
    lm = _arm_out(_upright())
    region = likely_limbs(lm, (300, 240))
    assert region.dtype == bool and region.shape == (300, 240)
    width = 50.0  # the shoulders' distance
    r = LIMB_RADII["forearm"] * width
    assert region[140, 150] and region[140, 190] and region[140, 215]  # upper arm .. hand
    assert region[int(140 + 0.8 * r), 190] and not region[int(140 + 1.5 * r), 190]
    assert not region[100, 110] and not region[200, 110]  # head, torso: not limbs
    # a bone whose end the pose did not see draws nothing; no shoulders, no scale: nothing
    lm.visibility[_I["left_wrist"]] = 0.0
    assert not likely_limbs(lm, (300, 240))[140, 195]
    lm.visibility[_I["right_shoulder"]] = 0.0
    assert likely_limbs(lm, (300, 240)).sum() == 0
    assert likely_limbs(None, (300, 240)).sum() == 0


def test_grabcut_takes_the_arm_but_not_the_wall_beside_it():
    """A bare arm held out, which the segmenter called surely background, on a grey wall:
    with the limbs' capsules GrabCut gives the arm back by colour and leaves the wall."""
    h, w = 300, 240
    rgb = np.empty((h, w, 3), np.uint8)
    rgb[:] = (200, 200, 205)
    yy, xx = np.mgrid[0:h, 0:w]
    body = (np.abs(xx - 110) < 26) & (yy > 90) & (yy < 260)
    arm = (xx > 130) & (xx < 215) & (np.abs(yy - 140) < 4)
    rgb[body | arm] = (205, 160, 130)
    rng = np.random.default_rng(0)
    rgb = np.clip(rgb + rng.normal(0, 4, rgb.shape), 0, 255).astype(np.uint8)
    prob = np.zeros((h, w), np.float32)
    prob[body] = 1.0
    likely = likely_limbs(_arm_out(_upright()), (h, w))
    arm_only = arm & ~body
    assert likely[arm_only].mean() > 0.9
    assert (refine_with_colour(rgb, prob)[arm_only] > 0.5).mean() < 0.05
    out = refine_with_colour(rgb, prob, likely=likely)
    assert (out[arm_only] > 0.5).mean() > 0.9
    wall = likely & ~(body | arm)
    assert wall.sum() > 300 and (out[wall] > 0.5).mean() < 0.05


def test_pipeline_config_landmark_head_is_a_bool():
    assert PipelineConfig().landmark_head is True
    assert PipelineConfig(landmark_head=False).landmark_head is False
    with pytest.raises(ConfigError, match="landmark_head"):
        PipelineConfig(landmark_head="yes")
    with pytest.raises(ConfigError, match="landmark_limbs"):
        PipelineConfig(landmark_limbs=1)


def test_pipeline_config_head_core_is_a_share():
    assert PipelineConfig().head_core == 0.8
    assert PipelineConfig(head_core=0).head_core == 0
    for bad in (-0.1, 1.5, True, "0.8", None):
        with pytest.raises(ConfigError, match="head_core"):
            PipelineConfig(head_core=bad)
