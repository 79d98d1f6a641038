"""Where the pose landmarks say the head and the limbs are, beyond what the segmenter saw.

The selfie segmenter (a 256-px network) can drop the top of a head, under a cap or above a
pixelated face, as surely background, while the pose detector still places the ears, eyes and
mouth (real-photos item 30 in docs/faithful_splat.md). The head's ellipse drawn here is not a
mask: inside it the colour refinement lets GrabCut decide by colour instead of taking the
segmenter's "surely background" (``segmentation.refine_with_colour``). Its core
(``HEAD_CORE``) is handed over as certainly person where the segmenter lost the head (it
holds under half of the core), and the crop then frames the whole ellipse (real-photos item
38): where the head's colours are the background's, colour alone cannot give it back, and a
crop recentred on the mask alone would cut it off for good.

Its size comes from the person's own landmarks: ``s``, the head's width (the ears' distance,
or 2.5 x eyes-to-mouth when the head is turned). Face points the detector placed below the
shoulders (it can take a chest for a pixelated face) are not a head: ``face_is_plausible``.

The limbs (``likely_limbs``, real-photos item 33): the same segmenter drops thin or
low-contrast limbs (an arm swung out against a busy room, feet and sandals on grass) while
the pose places the elbow, wrist, knee, ankle and foot. Capsules along those bones, as wide
as a limb of a person with those shoulders, are handed to the colour refinement the same way.
"""

from __future__ import annotations

import cv2
import numpy as np

from .landmarks import MEDIAPIPE_LANDMARK_NAMES, Landmarks

__all__ = ["HEAD_CORE", "HEAD_REACH", "LIMB_RADII", "face_is_plausible", "likely_head",
           "likely_limbs"]

_I = {n: i for i, n in enumerate(MEDIAPIPE_LANDMARK_NAMES)}
_FACE = ("nose", "left_eye", "right_eye", "left_ear", "right_ear", "mouth_left", "mouth_right")

#: the head's ellipse: centre this many head widths ``s`` above the ears (along the neck),
#: semi-axes along / across the neck; its top at (0.3 + 0.7) s above the ears, where a head
#: (ear level to crown about 0.85 s) ends with some hair
HEAD_REACH = (0.3, 0.7, 0.6)
#: the ellipse's core (semi-axes x0.8): surely head where the pose placed a plausible face;
#: where the segmenter lost the head, person even where colour cannot tell it from the wall
#: behind (real-photos item 38: lab's blue cap and pixelated face)
HEAD_CORE = 0.8


#: capsule radii along each limb bone, in shoulder widths (an adult's ~0.4 m shoulders: upper
#: arm 6 cm, forearm and hand 5 cm, thigh 9 cm, shin 7 cm, foot 5 cm), a little over a bare
#: limb's: sleeves and trousers are wider, and colour decides inside the capsule
LIMB_RADII = {"upper_arm": 0.15, "forearm": 0.12, "hand": 0.12, "thigh": 0.22, "shin": 0.17,
              "foot": 0.12}
_LIMB_BONES = (("upper_arm", "shoulder", "elbow"), ("forearm", "elbow", "wrist"),
               ("hand", "wrist", "index"), ("hand", "wrist", "pinky"),
               ("thigh", "hip", "knee"), ("shin", "knee", "ankle"),
               ("foot", "ankle", "heel"), ("foot", "ankle", "foot_index"),
               ("foot", "heel", "foot_index"))


def _mid(lm: Landmarks, names: tuple[str, ...]) -> np.ndarray | None:
    """The mean of the visible points among ``names``, or None."""
    vis = lm.visible()
    idx = [_I[n] for n in names if vis[_I[n]]]
    return lm.xy[idx].mean(0) if idx else None


def face_is_plausible(lm: Landmarks) -> bool:
    """False when the visible face points' centre lies below the shoulders along the torso
    (hips to shoulders): the detector took something else for the face. True when it cannot
    tell (no face, shoulders or hips visible)."""
    face = _mid(lm, _FACE)
    shoulders = _mid(lm, ("left_shoulder", "right_shoulder"))
    hips = _mid(lm, ("left_hip", "right_hip"))
    if face is None or shoulders is None or hips is None:
        return True
    return float(np.dot(face - shoulders, shoulders - hips)) > 0.0


def likely_head(lm: Landmarks | None, shape: tuple[int, int], scale: float = 1.0) -> np.ndarray:
    """bool [H,W] (``shape``): the head's ellipse from ``lm``'s visible face points (in the
    same image's pixels), its semi-axes times ``scale`` (``HEAD_CORE``: its core); all
    False without landmarks, a face or a plausible one."""
    h, w = shape
    canvas = np.zeros((h, w), np.uint8)
    if lm is None or not face_is_plausible(lm):
        return canvas.astype(bool)
    vis = lm.visible()
    both_ears = vis[_I["left_ear"]] and vis[_I["right_ear"]]
    eyes = _mid(lm, ("left_eye", "right_eye"))
    mouth = _mid(lm, ("mouth_left", "mouth_right"))
    sizes = []
    if both_ears:
        sizes.append(float(np.linalg.norm(lm.xy[_I["left_ear"]] - lm.xy[_I["right_ear"]])))
    if eyes is not None and mouth is not None:
        sizes.append(2.5 * float(np.linalg.norm(eyes - mouth)))
    centre = _mid(lm, ("left_ear", "right_ear")) if both_ears else eyes
    if not sizes or centre is None or max(sizes) < 1.0:
        return canvas.astype(bool)
    s = max(sizes)
    up = np.array([0.0, -1.0])  # image up, unless the shoulders say where the neck points
    shoulders = _mid(lm, ("left_shoulder", "right_shoulder")) \
        if vis[_I["left_shoulder"]] and vis[_I["right_shoulder"]] else None
    if shoulders is not None and np.linalg.norm(centre - shoulders) > 1e-3 * s:
        up = (centre - shoulders) / np.linalg.norm(centre - shoulders)
    along, a_len, a_across = HEAD_REACH
    c = np.clip(centre + along * s * up, -4 * max(h, w), 4 * max(h, w))  # cv2 wants ints
    cv2.ellipse(canvas, (int(round(c[0])), int(round(c[1]))),
                (max(1, int(round(scale * a_len * s))), max(1, int(round(scale * a_across * s)))),
                float(np.degrees(np.arctan2(up[1], up[0]))), 0, 360, 1, -1)
    return canvas.astype(bool)


def likely_limbs(lm: Landmarks | None, shape: tuple[int, int]) -> np.ndarray:
    """bool [H,W] (``shape``): capsules along the visible limb bones of ``lm`` (both ends
    visible), radii ``LIMB_RADII`` x the shoulder width; all False without landmarks or
    visible shoulders."""
    h, w = shape
    canvas = np.zeros((h, w), np.uint8)
    if lm is None:
        return canvas.astype(bool)
    vis = lm.visible()
    if not (vis[_I["left_shoulder"]] and vis[_I["right_shoulder"]]):
        return canvas.astype(bool)
    width = float(np.linalg.norm(lm.xy[_I["left_shoulder"]] - lm.xy[_I["right_shoulder"]]))
    if width < 1.0:
        return canvas.astype(bool)
    lim = 4 * max(h, w)  # cv2 wants ints; far-off points still draw their part in frame
    for side in ("left", "right"):
        for limb, a, b in _LIMB_BONES:
            i, j = _I[f"{side}_{a}"], _I[f"{side}_{b}"]
            if not (vis[i] and vis[j]):
                continue
            r = max(1, int(round(LIMB_RADII[limb] * width)))
            p, q = (tuple(int(round(v)) for v in np.clip(lm.xy[k], -lim, lim)) for k in (i, j))
            cv2.line(canvas, p, q, 1, 2 * r)
            cv2.circle(canvas, p, r, 1, -1)
            cv2.circle(canvas, q, r, 1, -1)
    return canvas.astype(bool)
