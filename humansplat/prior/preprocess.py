"""Photo -> a square, recentred crop of one person, its mask and its body landmarks.

Steps (``preprocess``):
1. normalise the input (gray, RGB, RGBA, LoadedImage) and refuse tiny images;
2. detect on a working copy (long side <= 1024 px, panoramas excepted): a person mask (the
   photo's alpha when it is meaningful, else a segmenter) and mediapipe pose on the photo;
3. choose the person: connected components of the mask, each confirmed by pose (the
   whole-photo pose, or pose run again on crops around that component, which finds small
   people); people who touch or overlap share one component: pose run on the component's
   part far from every known skeleton, the known people painted out, finds the next one,
   and the component is split by the nearer skeleton (``_split_shared``); the person with
   the most mask pixels wins. A segmenter alone is not trusted to say "person": selfie
   segmentation also fires on cats, cups and fundus photos, so without a detected body we
   raise NoPersonError (with a meaningful alpha we trust the cut-out);
4. crop a square so that the person's larger side is ``foreground_ratio`` of it, centred on
   the person, padded with the background colour outside the photo, antialiased; segment
   again on the crop (the person now fills the segmenter's input: a finer mask; mean IoU
   0.86 against 0.75 for the whole-photo mask in benchmarks/preprocess.py), recentre on the
   finer mask (at most twice), keep only this person's components, feather, composite;
5. run pose on the final crop and return landmarks in crop pixels.

Coordinates: pixel centres at +0.5 (pixel (i, j) spans [j, j+1] x [i, i+1]); a crop pixel u
corresponds to photo pixel ``x = u / scale + x0``, exactly as the resampling does it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import cv2
import numpy as np

from ..errors import ConfigError, InvalidImageError, NoPersonError
from .landmark_regions import HEAD_CORE, face_is_plausible, likely_head, likely_limbs
from .landmarks import MEDIAPIPE_BONES, Landmarks, PoseDetector, default_pose
from .segmentation import (
    PersonSegmenter,
    alpha_is_meaningful,
    default_segmenter,
    feather,
    fill_small_holes,
    refine_with_colour,
    split_rgb_alpha,
)

__all__ = ["Preprocessed", "preprocess", "MIN_IMAGE_SIDE", "MIN_PERSON_PX", "FOREGROUND_RATIO",
           "FOREGROUND_RATIO_RANGE", "check_foreground_ratio"]

#: the share of the crop the person's larger side fills: the default and the accepted range of
#: every caller (pipeline config, CLI, app); below 0.3 the person is a speck in the crop
FOREGROUND_RATIO = 0.85
FOREGROUND_RATIO_RANGE = (0.3, 1.0)

#: shortest accepted image side, pixels
MIN_IMAGE_SIDE = 64
#: smallest accepted person (larger side of the mask's bounding box), photo pixels
MIN_PERSON_PX = 32
#: detection runs on a copy whose long side is at most this (the models see <= 256 px) ...
DETECT_MAX_SIDE = 1024
#: ... unless that would make the short side < 256 px; then this many pixels at most
DETECT_MAX_PIXELS = 2_000_000
#: at most this many mask components are checked for a body with pose
MAX_CANDIDATES = 5
#: components smaller than this fraction of the largest are not candidates (specks, objects)
MIN_CANDIDATE_FRAC = 0.05
#: side of the crops used to look for a body inside one mask component
_CANDIDATE_CROP = 256
#: people touching in the photo share one mask component. Pixels farther than this (x the
#: larger side of the person's landmark box) from every known skeleton are "far"; a far piece
#: holding this share of its component is searched for another body
_SHARED_NEAR = 0.2
_SHARED_MIN_SHARE = 0.2
#: at most this many people are split off shared components
_MAX_SPLITS = 3
#: what the segmenter and pose see outside the photo: fixed, so the caller's background colour
#: cannot change the mask or the landmarks; white reads as a studio backdrop to both models
_MODEL_PAD = (255, 255, 255)


@dataclass
class Preprocessed:
    """One person, cropped square and recentred.

    rgb:        uint8 [S,S,3] the crop composited on the background with ``mask``
                (equal to ``rgb_raw`` when preprocess ran with remove_background=False).
    rgb_raw:    uint8 [S,S,3] the crop before compositing (outside the photo: background).
    mask:       float32 [S,S] in [0,1], the person's (feathered) mask.
    landmarks:  the person's 33 mediapipe landmarks in crop pixels, or None.
    crop_box:   (x0, y0, x1, y1) of the crop in the original photo's pixels (may extend
                beyond the photo); square: x1 - x0 == y1 - y0.
    scale:      crop pixels per original pixel (S / (x1 - x0)).
    n_people_detected: people found in the photo (the largest is reconstructed).
    notes:      human-readable remarks for the user ("2 people found; ...").
    original_size: (width, height) of the photo, PIL order.
    timings:    seconds: "segmentation", "landmarks", "total".
    mask_source: "alpha" or the segmenter's name.
    """

    rgb: np.ndarray
    rgb_raw: np.ndarray
    mask: np.ndarray
    landmarks: Landmarks | None
    crop_box: tuple[float, float, float, float]
    scale: float
    n_people_detected: int
    notes: list[str]
    original_size: tuple[int, int]
    timings: dict[str, float] = field(default_factory=dict)
    mask_source: str = ""

    @property
    def size(self) -> int:
        return int(self.rgb.shape[0])

    def to_original(self, xy: np.ndarray) -> np.ndarray:
        """Crop pixels -> original photo pixels. xy: [...,2] -> float64 [...,2]."""
        xy = np.asarray(xy, dtype=np.float64)
        return xy / self.scale + np.array(self.crop_box[:2], dtype=np.float64)

    def from_original(self, xy: np.ndarray) -> np.ndarray:
        """Original photo pixels -> crop pixels. xy: [...,2] -> float64 [...,2]."""
        xy = np.asarray(xy, dtype=np.float64)
        return (xy - np.array(self.crop_box[:2], dtype=np.float64)) * self.scale

    def inside_photo(self) -> np.ndarray:
        """float32 [S,S]: the fraction of each crop pixel inside the photo (0 beyond its
        edges, where the mask says nothing about the person)."""
        x0, y0, x1, _ = self.crop_box
        return _inside_photo(_Square(x0, y0, x1 - x0, self.size), *self.original_size)


# ----------------------------------------------------------------------------- crop geometry


@dataclass(frozen=True)
class _Square:
    """A square window of the photo: top-left (x0, y0) and side in photo pixels -> size px."""

    x0: float
    y0: float
    side: float
    size: int

    @property
    def scale(self) -> float:
        return self.size / self.side

    @property
    def box(self) -> tuple[float, float, float, float]:
        return (self.x0, self.y0, self.x0 + self.side, self.y0 + self.side)

    @classmethod
    def around(cls, bbox: Sequence[float], ratio: float, size: int) -> "_Square":
        """The square centred on bbox (x0, y0, x1, y1: pixel edges) whose side is
        max(bbox width, height) / ratio."""
        x0, y0, x1, y1 = (float(v) for v in bbox)
        side = max(x1 - x0, y1 - y0, 1.0) / ratio
        cx, cy = 0.5 * (x0 + x1), 0.5 * (y0 + y1)
        return cls(cx - 0.5 * side, cy - 0.5 * side, side, size)

    def to_crop(self, xy: np.ndarray) -> np.ndarray:
        return (np.asarray(xy, np.float64) - (self.x0, self.y0)) * self.scale

    def to_photo(self, uv: np.ndarray) -> np.ndarray:
        return np.asarray(uv, np.float64) / self.scale + (self.x0, self.y0)


def _warp_to_square(
    img: np.ndarray,
    sq: _Square,
    *,
    src_scale: tuple[float, float] = (1.0, 1.0),
    interp: int = cv2.INTER_LINEAR,
    border: float | tuple[float, ...] = 0,
) -> np.ndarray:
    """Resample ``img`` (whose pixel coords are photo coords * src_scale) into the square.

    Photo point x maps to crop u = (x - x0) * scale with pixel centres at +0.5 on both sides.
    When shrinking, the needed region is first box-filtered (INTER_AREA) to the crop's
    density so the final warp neither aliases nor touches more than that region.
    Returns [size, size] (+ channels) of img's dtype.
    """
    sx, sy = (float(v) for v in src_scale)
    ox = oy = 0.0  # photo coordinate of img's left/top edge
    kx, ky = sq.scale / sx, sq.scale / sy  # crop px per img px
    if interp != cv2.INTER_NEAREST and min(kx, ky) < 1.0:
        h, w = img.shape[:2]
        ax0 = max(int(np.floor((sq.x0 - ox) * sx)) - 2, 0)
        ay0 = max(int(np.floor((sq.y0 - oy) * sy)) - 2, 0)
        ax1 = min(int(np.ceil((sq.x0 + sq.side - ox) * sx)) + 2, w)
        ay1 = min(int(np.ceil((sq.y0 + sq.side - oy) * sy)) + 2, h)
        if ax1 > ax0 and ay1 > ay0:
            region = img[ay0:ay1, ax0:ax1]
            dw = max(1, round((ax1 - ax0) * min(kx, 1.0)))
            dh = max(1, round((ay1 - ay0) * min(ky, 1.0)))
            small = cv2.resize(region, (dw, dh), interpolation=cv2.INTER_AREA)
            ox, oy = ox + ax0 / sx, oy + ay0 / sy
            sx, sy = sx * dw / (ax1 - ax0), sy * dh / (ay1 - ay0)
            img = small
            kx, ky = sq.scale / sx, sq.scale / sy
    # index-space affine: u_i + 0.5 = ((x_i + 0.5) / sx + ox - x0) * scale
    m = np.array(
        [
            [kx, 0.0, (0.5 / sx + ox - sq.x0) * sq.scale - 0.5],
            [0.0, ky, (0.5 / sy + oy - sq.y0) * sq.scale - 0.5],
        ],
        dtype=np.float64,
    )
    return cv2.warpAffine(
        img, m, (sq.size, sq.size), flags=interp, borderMode=cv2.BORDER_CONSTANT, borderValue=border
    )


def _inside_photo(sq: _Square, width: int, height: int) -> np.ndarray:
    """float32 [S,S]: the fraction of each crop pixel that lies inside the photo."""
    u = np.arange(sq.size, dtype=np.float64)

    def cover(origin: float, extent: int) -> np.ndarray:
        lo, hi = u / sq.scale + origin, (u + 1) / sq.scale + origin
        return np.clip((np.minimum(hi, extent) - np.maximum(lo, 0.0)) * sq.scale, 0.0, 1.0)

    return (cover(sq.y0, height)[:, None] * cover(sq.x0, width)[None, :]).astype(np.float32)


# ----------------------------------------------------------------------------- people

Box = tuple[float, float, float, float]  # (x0, y0, x1, y1), pixel edges


def _box_area(b: Box) -> float:
    return max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1])


def _box_union(a: Box, b: Box) -> Box:
    return (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))


def _box_inter(a: Box, b: Box) -> float:
    return _box_area((max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])))


def _landmark_box(lm: Landmarks, pad: float = 0.1) -> Box | None:
    """Box of the visible landmarks, grown by ``pad`` x its larger side (joints lie inside the
    body's outline); None with fewer than 3 visible points."""
    pts = lm.xy[lm.visible()]
    if len(pts) < 3:
        return None
    (x0, y0), (x1, y1) = pts.min(0), pts.max(0)
    g = pad * max(x1 - x0, y1 - y0)
    return (float(x0 - g), float(y0 - g), float(x1 + g), float(y1 + g))


@dataclass
class _Component:
    """A connected component of the coarse mask (a candidate person or object)."""

    rank: int  # its value in the candidate label image, 1 = largest
    area: int  # working-image pixels
    bbox: Box  # photo pixels


@dataclass
class _Person:
    """A detected body: its landmarks (photo px), mask components and bounding box."""

    landmarks: Landmarks | None
    ranks: list[int]
    bbox: Box  # union of its components' and body boxes, within ``reach``; photo px
    body_box: Box | None  # visible-landmark box (None when no body was detected)
    reach: Box | None = None  # where this person's mask may be: all 33 landmarks, grown

    def absorb(self, comp: _Component) -> None:
        self.ranks.append(comp.rank)
        self.bbox = _box_union(self.bbox, comp.bbox)
        if self.reach is not None:  # a person merged with a table or a car stays person-sized
            r = self.reach
            self.bbox = (max(self.bbox[0], r[0]), max(self.bbox[1], r[1]),
                         min(self.bbox[2], r[2]), min(self.bbox[3], r[3]))

    @classmethod
    def from_body(cls, lm: Landmarks, body: Box) -> "_Person":
        # mediapipe places all 33 points, occluded ones too (a leg under a long dress): their
        # box grown by half its size bounds the person's extent (hair, hands, held things)
        (x0, y0), (x1, y1) = lm.xy.min(0), lm.xy.max(0)
        g = 0.5 * max(x1 - x0, y1 - y0)
        return cls(lm, [], body, body, (float(x0 - g), float(y0 - g), float(x1 + g), float(y1 + g)))


def _same_body(p: _Person, body: Box) -> bool:
    """Whether ``body`` (a landmark box, photo px) is ``p`` seen again: the two boxes share
    half of the smaller one."""
    return p.body_box is not None and _box_inter(p.body_box, body) >= 0.5 * min(
        _box_area(p.body_box), _box_area(body))


def _inside_fraction(xy: np.ndarray, vis: np.ndarray, region: np.ndarray) -> tuple[float, int]:
    """Fraction of the visible points (vis >= 0.5) that fall in the bool region; and their count."""
    pts = xy[vis >= 0.5]
    if len(pts) == 0:
        return 0.0, 0
    h, w = region.shape
    ij = np.floor(pts).astype(np.int64)
    ok = (ij[:, 0] >= 0) & (ij[:, 0] < w) & (ij[:, 1] >= 0) & (ij[:, 1] < h)
    inside = np.zeros(len(pts), bool)
    inside[ok] = region[ij[ok, 1], ij[ok, 0]]
    return float(inside.mean()), len(pts)


def _dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    if radius <= 0:
        return mask.astype(bool)
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return cv2.dilate(mask.astype(np.uint8), k).astype(bool)


def _find_people(
    rgb: np.ndarray,
    cand_labels: np.ndarray,
    comps: list[_Component],
    work_scale: tuple[float, float],
    photo_landmarks: Landmarks | None,
    pose: PoseDetector,
    trust_mask: bool,
) -> tuple[list[_Person], float]:
    """Group mask components into people, each confirmed by a detected body.

    1. The whole-photo pose is a person; components holding its landmarks are theirs.
    2. Each remaining component is inside a known body's box (a fragment: a held object, a
       limb the segmenter split off), or gets pose run on a generous square around it, then
       a tight one: a body there that holds or encloses it is a new person (too small for the
       whole-photo detector, or a second person it skipped), or one already known.
       Components with no body are objects and belong to nobody.
    With ``trust_mask`` (an alpha cut-out) a body outside the cut-out is ignored, and a cut-out
    with no body at all is still a person. Returns (people, seconds spent in pose).
    """
    fx, fy = work_scale
    H, W = rgb.shape[:2]
    radius = max(2, round(0.02 * min(cand_labels.shape)))
    regions = {c.rank: _dilate(cand_labels == c.rank, radius) for c in comps}
    people: list[_Person] = []
    seconds = 0.0

    def detect(sq: _Square) -> Landmarks | None:
        nonlocal seconds
        crop = _warp_to_square(rgb, sq, interp=cv2.INTER_LINEAR, border=(0, 0, 0))
        t = time.perf_counter()
        lm = pose(crop)
        seconds += time.perf_counter() - t
        return None if lm is None else lm.transformed(1.0 / sq.scale, (sq.x0, sq.y0))  # -> photo px

    def free(c: _Component) -> bool:
        return not any(c.rank in p.ranks for p in people)

    def holds(c: _Component, lm: Landmarks) -> bool:
        frac, n = _inside_fraction(lm.xy * (fx, fy), lm.visibility, regions[c.rank])
        return n >= 3 and frac >= 0.5

    def in_body(c: _Component, p: _Person) -> bool:
        return p.body_box is not None and _box_inter(c.bbox, p.body_box) >= 0.5 * _box_area(c.bbox)

    def add(lm: Landmarks, looked_at: _Component | None = None) -> _Person | None:
        """Register a body; found around ``looked_at``, it must hold or enclose that component."""
        body = _landmark_box(lm)
        if body is None:
            return None
        for p in people:
            if _same_body(p, body):
                return p  # seen before (possibly only part of them)
        owners = [c for c in comps if free(c) and holds(c, lm)]
        if looked_at is not None and looked_at not in owners:
            if _box_inter(looked_at.bbox, body) < 0.5 * _box_area(looked_at.bbox):
                return None  # a "body" beside what we looked at: a cat face, a cup
            owners.append(looked_at)
        if trust_mask and not owners:
            return None  # a body outside the cut-out is not the subject
        person = _Person.from_body(lm, body)
        for c in owners:
            person.absorb(c)
        people.append(person)
        return person

    if photo_landmarks is not None:
        add(photo_landmarks)
    for c in comps:
        if not free(c):
            continue
        host = next((p for p in people if in_body(c, p)), None)
        if host is not None:
            host.absorb(c)
            continue
        # a fragment of a small person can be a tenth of them: look well around it first;
        # a person merged with an object into one blob needs the tight view
        size = max(c.bbox[2] - c.bbox[0], c.bbox[3] - c.bbox[1], 1.0)
        for ratio in (size / max(2.5 * size, 0.25 * min(H, W)), 0.9):
            lm = detect(_Square.around(c.bbox, ratio, _CANDIDATE_CROP))
            p = add(lm, looked_at=c) if lm is not None else None
            if p is not None:
                if free(c) and in_body(c, p):
                    p.absorb(c)  # the same person seen again from one of their fragments
                break

    # BlazePose's detector is face-anchored: on crops it also "finds" bodies on cat faces and
    # cups, hence owners are required above; a whole-photo body that no mask component
    # confirms is kept only when nothing else is found (the segmenter missed a real person).
    confirmed = [p for p in people if p.ranks]
    if confirmed:
        people = confirmed
    if not people and trust_mask and comps:
        people.append(_Person(None, [comps[0].rank], comps[0].bbox, None))
    return people, seconds


def _skeleton_distance(lm: Landmarks, shape: tuple[int, int],
                       scale: tuple[float, float]) -> np.ndarray:
    """float32 [h,w] (``shape``): each pixel's distance in pixels to ``lm``'s visible skeleton
    (bones between visible landmarks, and the landmarks), ``lm`` (photo px) drawn at ``scale``."""
    h, w = shape
    canvas = np.full((h, w), 255, np.uint8)
    xy = np.round(lm.xy * np.asarray(scale, np.float32)).astype(np.int64)
    xy = np.clip(xy, -4 * max(h, w), 4 * max(h, w))  # far off-image points: keep cv2 happy
    vis = lm.visible()
    for a, b in MEDIAPIPE_BONES:
        if vis[a] and vis[b]:
            cv2.line(canvas, (int(xy[a, 0]), int(xy[a, 1])), (int(xy[b, 0]), int(xy[b, 1])), 0, 2)
    for x, y in xy[vis]:
        cv2.circle(canvas, (int(x), int(y)), 2, 0, -1)
    if canvas.all():  # nothing visible drawn inside the image
        return np.full((h, w), np.float32(np.hypot(h, w)))
    return cv2.distanceTransform(canvas, cv2.DIST_L2, 5)


def _pixels_box(region: np.ndarray, fx: float, fy: float) -> Box:
    """Photo-pixel box of a non-empty bool working-image region (fx, fy: working px per
    photo px)."""
    ys, xs = np.nonzero(region)
    return (xs.min() / fx, ys.min() / fy, (xs.max() + 1) / fx, (ys.max() + 1) / fy)


def _split_shared(
    rgb: np.ndarray,
    cand_labels: np.ndarray,
    comps: list[_Component],
    people: list[_Person],
    work_scale: tuple[float, float],
    pose: PoseDetector,
) -> float:
    """Find people who share a mask component with a known person and split it between them.

    Two people who touch or overlap in the photo (an arm across a neighbour, a group) are one
    component, so ``_find_people`` sees one person and the crop would hold both. For each
    person, the largest piece of their components far from every known skeleton
    (``_SHARED_NEAR``) is searched with pose, the known people painted white so the detector
    cannot find them again; a new body there (not overlapping a known one, its landmarks on
    the component) gets the component's pixels nearer its skeleton than the person's. Updates
    ``cand_labels``, ``comps`` and ``people`` in place; returns seconds spent in pose.
    """
    fx, fy = work_scale
    H, W = rgb.shape[:2]
    shape = cand_labels.shape
    seconds = 0.0

    def size_px(p: _Person) -> float:  # the body's larger side, working px
        b = p.body_box
        return max((b[2] - b[0]) * fx, (b[3] - b[1]) * fy)

    for _ in range(_MAX_SPLITS):
        bodies = [p for p in people if p.landmarks is not None and p.ranks]
        dist = {id(p): _skeleton_distance(p.landmarks, shape, work_scale) for p in bodies}
        near = np.zeros(shape, bool)
        for p in bodies:
            near |= dist[id(p)] < _SHARED_NEAR * size_px(p)
        split, painted = False, None
        for p in bodies:
            comp = np.isin(cand_labels, p.ranks)
            n, lab, stats, _ = cv2.connectedComponentsWithStats(
                (comp & ~near).astype(np.uint8), connectivity=8)
            if n < 2:
                continue
            i = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
            if stats[i, cv2.CC_STAT_AREA] < _SHARED_MIN_SHARE * comp.sum():
                continue
            x, y, w_, h_ = (int(v) for v in stats[i, :4])
            piece = (x / fx, y / fy, (x + w_) / fx, (y + h_) / fy)
            if painted is None:  # once per round: only the far piece's search needs it
                painted = rgb.copy()
                painted[cv2.resize(near.astype(np.uint8), (W, H),
                                   interpolation=cv2.INTER_NEAREST) > 0] = 255
            sq = _Square.around(piece, 0.9, _CANDIDATE_CROP)
            t = time.perf_counter()
            lm = pose(_warp_to_square(painted, sq, interp=cv2.INTER_LINEAR, border=_MODEL_PAD))
            seconds += time.perf_counter() - t
            if lm is None:
                continue
            lm = lm.transformed(1.0 / sq.scale, (sq.x0, sq.y0))  # -> photo px
            body = _landmark_box(lm)
            if body is None or any(_same_body(q, body) for q in people):
                continue  # nobody, or someone known
            # a third of its visible points on the component: mediapipe calls points beyond a
            # cut-off body "visible" too, and the segmenter can miss a small head
            frac, k = _inside_fraction(lm.xy * (fx, fy), lm.visibility, _dilate(comp, 2))
            if k < 6 or frac < 0.3:
                continue  # not a body on this component
            theirs = comp & (_skeleton_distance(lm, shape, work_scale) < dist[id(p)])
            rank = max(c.rank for c in comps) + 1
            cand_labels[theirs] = rank
            comps.append(_Component(rank, int(theirs.sum()), _pixels_box(theirs, fx, fy)))
            for c in comps:  # what the person keeps
                if c.rank in p.ranks:
                    left = cand_labels == c.rank
                    c.area = int(left.sum())
                    if c.area:
                        c.bbox = _pixels_box(left, fx, fy)
            kept = [c for c in comps if c.rank in p.ranks and c.area > 0]
            p.ranks, p.bbox = [], p.body_box
            for c in kept:
                p.absorb(c)
            other = _Person.from_body(lm, body)
            other.absorb(comps[-1])
            people.append(other)
            split = True
            break
        if not split:
            break
    return seconds


def _position_words(cx: float, width: int) -> str:
    f = cx / width
    return ("left", "centre-left", "centre", "centre-right", "right")[min(4, max(0, int(f * 5)))]


def _cut_edges(box: Box, width: int, height: int, tol: float) -> list[str]:
    """Photo edges the person's box (photo px) touches, within ``tol`` pixels."""
    x0, y0, x1, y1 = box
    edges = [("top", y0 <= tol), ("bottom", y1 >= height - tol),
             ("left", x0 <= tol), ("right", x1 >= width - tol)]
    return [name for name, hit in edges if hit]


# ----------------------------------------------------------------------------- mask in crop


def _person_mask(
    prob: np.ndarray,
    labels_crop: np.ndarray,
    mine: Sequence[int],
    others: Sequence[int],
    landmarks_crop: Landmarks | None,
    reach_crop: Box | None,
    from_alpha: bool,
) -> np.ndarray:
    """This person's mask in the crop: float32 [S,S] in [0,1].

    Components of the fine mask are kept when they overlap the person's coarse components or
    hold one of their visible landmarks (a limb the coarse mask missed); other people's
    regions, and anything beyond the person's reach (crop px), are removed first. Segmenter
    masks get small holes filled and a feathered edge; an alpha mask keeps its own values.
    """
    size = prob.shape[0]
    radius = max(2, round(0.03 * size))
    core = np.isin(labels_crop, list(mine)) if mine else np.zeros(prob.shape, bool)
    region = _dilate(core, radius)
    binary = prob > 0.5
    if others:
        binary &= ~(np.isin(labels_crop, list(others)) & ~region)
    if reach_crop is not None and not from_alpha:
        x0, y0, x1, y1 = (int(round(min(max(v, 0), size))) for v in reach_crop)
        within = np.zeros_like(binary)
        within[y0:y1, x0:x1] = True
        binary &= within
    n, comp = cv2.connectedComponents(binary.astype(np.uint8), connectivity=8)
    keep = np.zeros(n, bool)
    keep[np.unique(comp[region & binary])] = True
    if landmarks_crop is not None:
        pts = np.floor(landmarks_crop.xy[landmarks_crop.visible()]).astype(np.int64)
        pts = pts[(pts >= 0).all(1) & (pts < size).all(1)]
        keep[comp[pts[:, 1], pts[:, 0]]] = True
    keep[0] = False
    kept = keep[comp]
    if not kept.any():
        kept = core & (prob > 0.25)  # the fine pass lost them (low contrast): coarse fallback
    if from_alpha:
        return np.where(_dilate(kept, 2), prob, 0.0).astype(np.float32)
    return feather(fill_small_holes(kept, 0.01))


def _mask_box(mask: np.ndarray) -> Box | None:
    """Pixel-edge bbox (x0, y0, x1, y1) of mask > 0.5, or None when empty."""
    ys, xs = np.nonzero(mask > 0.5)
    if len(xs) == 0:
        return None
    return float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)


# ----------------------------------------------------------------------------- main entry


def _working_copy(rgb: np.ndarray) -> np.ndarray:
    """The photo downscaled for detection: long side <= DETECT_MAX_SIDE, but the short side
    kept >= 256 px (a panorama's person must stay visible), and <= DETECT_MAX_PIXELS."""
    h, w = rgb.shape[:2]
    f = min(1.0, max(DETECT_MAX_SIDE / max(h, w), 256 / min(h, w)), (DETECT_MAX_PIXELS / (h * w)) ** 0.5)
    if f >= 1.0:
        return rgb
    return cv2.resize(rgb, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)


def check_foreground_ratio(value: Any) -> float:
    """``value`` as a float if it is a number in FOREGROUND_RATIO_RANGE; else ConfigError."""
    lo, hi = FOREGROUND_RATIO_RANGE
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not lo <= value <= hi:
        raise ConfigError(f"foreground_ratio must be in [{lo}, {hi}], got {value!r}")
    return float(value)


def _check_args(size: Any, foreground_ratio: Any, background: Any) -> tuple[float, float, float]:
    if not isinstance(size, (int, np.integer)) or isinstance(size, bool) or size < MIN_IMAGE_SIDE:
        raise ValueError(f"size must be an integer >= {MIN_IMAGE_SIDE}, got {size!r}")
    check_foreground_ratio(foreground_ratio)
    try:
        bg = tuple(float(v) for v in background)
    except (TypeError, ValueError):
        raise ValueError(f"background must be 3 floats in [0,1] (RGB), got {background!r}") from None
    if len(bg) != 3 or not all(0.0 <= v <= 1.0 for v in bg):
        raise ValueError(f"background must be 3 floats in [0,1] (RGB), got {background!r}")
    return bg  # type: ignore[return-value]


_NO_PERSON_HINT = "Use a photo in which one person is clearly visible, ideally head to toe."


def preprocess(
    image: Any,
    *,
    size: int = 512,
    foreground_ratio: float = FOREGROUND_RATIO,
    remove_background: bool = True,
    background: Sequence[float] = (1.0, 1.0, 1.0),
    segmenter: PersonSegmenter | None = None,
    pose: PoseDetector | None = None,
    colour_refine: bool = True,
    landmark_head: bool = True,
    landmark_limbs: bool = False,
    segment_shifts: int = 4,
    colour_seeds: int = 1,
    head_core: float = HEAD_CORE,
) -> Preprocessed:
    """Find the person in ``image`` and return a square ``size`` crop of them (see module doc).

    image: LoadedImage (``rgb`` uint8 [H,W,3], ``alpha`` uint8 [H,W] or None) or an array
    [H,W] / [H,W,3] / [H,W,4], uint8 or float in [0,1]. A meaningful alpha is the mask.
    remove_background=False keeps the photo around the person in ``rgb`` (``mask`` is still
    computed). ``colour_refine``: settle the segmenter's uncertain pixels by colour on each
    crop (``segmentation.refine_with_colour``; never applied to an alpha mask).
    ``landmark_head``: in that refinement, let colour decide the head the pose places where
    the segmenter saw background (``landmark_regions.likely_head``); ``landmark_limbs``: the
    same for the limbs the pose places (``landmark_regions.likely_limbs``).
    ``head_core``: with ``landmark_head``, where the segmenter lost the head (it holds under
    half of the ellipse's core, its semi-axes times this; 0: never), the core is person even
    where colour cannot tell it from the background (a grey cap on a grey wall, a pixelated
    face), and the crop frames the whole ellipse.
    ``colour_seeds``: that refinement's GrabCut run from this many seeds, most deciding.
    ``segment_shifts``: without a ``segmenter``, the default one averaged over this many
    one-pixel shifts (``segmentation.MediapipeSegmenter``). Raises
    InvalidImageError (not an image, short side < 64 px) and NoPersonError.
    """
    t_start = time.perf_counter()
    bg = _check_args(size, foreground_ratio, background)
    if isinstance(head_core, (bool, np.bool_)) \
            or not isinstance(head_core, (int, float, np.integer, np.floating)) \
            or not 0.0 <= head_core <= 1.0:
        raise ValueError(f"head_core must be a number in [0, 1], got {head_core!r}")
    rgb, alpha = split_rgb_alpha(image)
    H, W = rgb.shape[:2]
    if min(H, W) < MIN_IMAGE_SIDE:
        raise InvalidImageError(
            f"image is {W}x{H} px; its shorter side must be at least {MIN_IMAGE_SIDE} px"
        )
    segmenter = segmenter if segmenter is not None else default_segmenter(segment_shifts)
    pose = pose if pose is not None else default_pose()
    use_alpha = alpha_is_meaningful(alpha)
    source = "alpha" if use_alpha else getattr(segmenter, "name", type(segmenter).__name__)
    bg255 = tuple(round(255 * v) for v in bg)
    notes: list[str] = []
    t_seg = t_pose = 0.0

    # --- 1. detect on a working copy: coarse mask, its components, whole-photo pose
    work = _working_copy(rgb)
    wh, ww = work.shape[:2]
    fx, fy = ww / W, wh / H  # working px per photo px
    t = time.perf_counter()
    if use_alpha:
        coarse = cv2.resize(alpha, (ww, wh), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
        notes.append("Using the photo's transparency (alpha channel) as the person mask.")
    else:
        coarse = segmenter(work)
    t_seg += time.perf_counter() - t
    t = time.perf_counter()
    photo_lm = pose(work)
    t_pose += time.perf_counter() - t
    if photo_lm is not None:
        photo_lm = photo_lm.transformed((1.0 / fx, 1.0 / fy), (0.0, 0.0))  # -> photo px

    n, labels, stats, _ = cv2.connectedComponentsWithStats((coarse > 0.5).astype(np.uint8), connectivity=8)
    areas = stats[:, cv2.CC_STAT_AREA]
    order = sorted(range(1, n), key=lambda i: -areas[i])
    order = [i for i in order if areas[i] >= max(4, MIN_CANDIDATE_FRAC * areas[order[0]])][:MAX_CANDIDATES]
    cand_labels = np.zeros((wh, ww), np.uint8)
    comps = []
    for rank, i in enumerate(order, start=1):
        x, y, w_, h_ = (int(v) for v in stats[i, :4])
        cand_labels[labels == i] = rank
        comps.append(_Component(rank, int(areas[i]), (x / fx, y / fy, (x + w_) / fx, (y + h_) / fy)))
    if not comps and photo_lm is None:
        raise NoPersonError(
            f"No person found in the photo: nothing in it looks like a person. {_NO_PERSON_HINT}"
        )
    people, dt = _find_people(rgb, cand_labels, comps, (fx, fy), photo_lm, pose, use_alpha)
    t_pose += dt
    t_pose += _split_shared(rgb, cand_labels, comps, people, (fx, fy), pose)
    if not people:
        raise NoPersonError(
            "No person found in the photo: no human body (head, shoulders, hips) could be "
            f"detected. {_NO_PERSON_HINT}"
        )
    # the largest: most mask pixels (a hallucinated body box can be big, its mask cannot)
    comp_area = {c.rank: c.area for c in comps}
    chosen = max(people, key=lambda p: (sum(comp_area[r] for r in p.ranks), _box_area(p.bbox)))
    others = [r for p in people if p is not chosen for r in p.ranks]
    if chosen.landmarks is None:
        notes.append("No body landmarks were found; the body fit will rely on the silhouette.")
    if len(people) > 1:
        where = _position_words(0.5 * (chosen.bbox[0] + chosen.bbox[2]), W)
        notes.append(f"{len(people)} people found; reconstructing the largest ({where}).")

    # --- 2. crop, segment the crop (finer), recentre on the finer mask (at most twice)
    def crop_and_mask(sq: _Square) -> tuple[np.ndarray, np.ndarray, float, bool]:
        # the models always see the crop padded with white, so the caller's background
        # colour cannot change the mask or the landmarks
        seen = _warp_to_square(rgb, sq, interp=cv2.INTER_CUBIC, border=_MODEL_PAD)
        t0 = time.perf_counter()
        inside = _inside_photo(sq, W, H)  # outside the photo is background by definition
        lm = reach = None
        head_lost = False
        if chosen.landmarks is not None:
            lm = chosen.landmarks.transformed(sq.scale, -np.array([sq.x0, sq.y0]) * sq.scale)
        if use_alpha:
            prob = _warp_to_square(alpha, sq, interp=cv2.INTER_LINEAR, border=0).astype(np.float32) / 255.0
        else:
            prob = segmenter(seen)
            if colour_refine:
                likely = None
                if landmark_head or landmark_limbs:
                    likely = np.zeros(prob.shape, bool)
                    if landmark_head:
                        likely |= likely_head(lm, prob.shape)
                    if landmark_limbs:
                        likely |= likely_limbs(lm, prob.shape)
                certain = None
                if landmark_head and head_core > 0:
                    core = likely_head(lm, prob.shape, head_core) & (inside > 0.5)
                    # a head the segmenter lost (it holds under half of the core; whole
                    # heads: 0.86 or more): colour cannot give it back where it shares the
                    # background's colours, the pose's core can
                    head_lost = bool(core.any()) and float((prob[core] > 0.5).mean()) < 0.5
                    certain = core if head_lost else None
                prob = refine_with_colour(seen, prob, valid=inside, likely=likely,
                                          certain=certain, seeds=colour_seeds)
        seg_s = time.perf_counter() - t0
        labels_crop = _warp_to_square(cand_labels, sq, src_scale=(fx, fy), interp=cv2.INTER_NEAREST, border=0)
        if chosen.reach is not None:
            reach = (*sq.to_crop(chosen.reach[:2]), *sq.to_crop(chosen.reach[2:]))
        mask = _person_mask(prob * inside, labels_crop, chosen.ranks, others, lm, reach, use_alpha) * inside
        return seen, mask, seg_s, head_lost

    sq = _Square.around(chosen.bbox, foreground_ratio, size)
    for attempt in range(3):
        seen, mask, dt, head_lost = crop_and_mask(sq)
        t_seg += dt
        fine = _mask_box(mask)
        if fine is None or attempt == 2:
            break
        frame = (*sq.to_photo(fine[:2]), *sq.to_photo(fine[2:]))
        head = _mask_box(likely_head(chosen.landmarks, (H, W))) if head_lost else None
        if head is not None:  # recentred on the mask alone, the crop would cut it off for good
            frame = _box_union(frame, head)
        nxt = _Square.around(frame, foreground_ratio, size)
        if max(abs(nxt.x0 - sq.x0), abs(nxt.y0 - sq.y0), abs(nxt.side - sq.side)) * sq.scale < 1.0:
            break  # moved by less than a crop pixel: done
        sq = nxt
    fine = _mask_box(mask)
    if fine is None:
        raise NoPersonError(
            f"A body was detected but could not be separated from the background. {_NO_PERSON_HINT}"
        )
    person_box = (*sq.to_photo(fine[:2]), *sq.to_photo(fine[2:]))
    person_px = max(person_box[2] - person_box[0], person_box[3] - person_box[1])
    if person_px < MIN_PERSON_PX:
        raise NoPersonError(
            f"The person is too small to reconstruct (about {person_px:.0f} px tall); use a "
            f"photo where they are at least {MIN_PERSON_PX} px tall, or crop closer to them."
        )
    cut = _cut_edges(person_box, W, H, tol=max(1.0, 1.5 / sq.scale))
    if cut:
        edges = cut[0] if len(cut) == 1 else ", ".join(cut[:-1]) + " and " + cut[-1]
        notes.append(
            f"The person is cut off at the {edges} edge{'s' if len(cut) > 1 else ''} of the "
            "photo; the hidden parts will be guessed."
        )

    if head_lost:
        notes.append("The person segmenter lost the head; it was kept where the pose detector "
                     "places it.")

    # --- 3. landmarks on the final crop (finer than on the photo); check they are this person's
    t = time.perf_counter()
    crop_lm = pose(seen)
    t_pose += time.perf_counter() - t
    region = _dilate(mask > 0.5, max(2, round(0.03 * size)))
    if crop_lm is not None and _inside_fraction(crop_lm.xy, crop_lm.visibility, region)[0] < 0.5:
        crop_lm = None  # the detector picked someone else in the crop
    if crop_lm is not None and not face_is_plausible(crop_lm) and chosen.landmarks is not None \
            and face_is_plausible(chosen.landmarks):
        crop_lm = None  # it took something else (a chest) for a face the photo's pass placed
    if crop_lm is None and chosen.landmarks is not None:
        crop_lm = chosen.landmarks.transformed(sq.scale, -np.array([sq.x0, sq.y0]) * sq.scale)

    raw = seen if bg255 == _MODEL_PAD else _warp_to_square(rgb, sq, interp=cv2.INTER_CUBIC, border=bg255)
    if remove_background:
        m3 = mask[..., None]
        comp = raw.astype(np.float32) * m3 + np.array(bg255, np.float32) * (1.0 - m3)
        out = np.clip(np.round(comp), 0, 255).astype(np.uint8)
    else:
        out = raw.copy()
    return Preprocessed(
        rgb=out,
        rgb_raw=raw,
        mask=mask,
        landmarks=crop_lm,
        crop_box=sq.box,
        scale=sq.scale,
        n_people_detected=len(people),
        notes=notes,
        original_size=(W, H),
        timings={"segmentation": t_seg, "landmarks": t_pose, "total": time.perf_counter() - t_start},
        mask_source=source,
    )
