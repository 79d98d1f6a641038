"""How well the projection synthesizer guesses the unseen side of a person, against ground truth.

A textured Anny body (procedural clothing, see :func:`procedural_texture`) is rendered with an
exact triangle z-buffer (2x supersampled) into the input view (azimuth 0) and the 3 other
orthogonal views. The synthesizer gets the input render, its mask and the ground-truth body as
the ``BodyFit`` (the fitter is tested elsewhere), and its side (90, 270) and back (180) views
are compared with the ground truth, next to:

- ``grey``: the same pipeline with every unseen vertex painted grey (visible ones from the
  photo), same renderer, same extras;
- ``mirror``: the back view = the input photo flipped left/right (for the back camera that is
  where the front surface lies: a person's left is on the image's right from the front and on
  its left from behind); the side views, which no flip of the front can give, = ``grey``'s;
- ``harmonic``: the pipeline without seeds (pure harmonic fill), an ablation;
- ``projection``: the synthesizer's default (seeds + harmonic fill).

PSNR is reported over the whole image (the background is white everywhere, so it is shared) and
over the ground-truth person mask ("fg"). Cases: a frontal A-pose and a turned, posed body.

    python benchmarks/synth_quality.py [--size 256] [--out benchmarks/results/synth_quality.json]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # for common

from humansplat.cameras import orthogonal_views  # noqa: E402
from humansplat.prior.fit import BodyFit, input_camera  # noqa: E402
from humansplat.prior.parts import PART_NAMES  # noqa: E402
from humansplat.synth.base import SynthInput  # noqa: E402
from humansplat.synth.projection import ProjectionSynthesizer, rasterize_mesh  # noqa: E402
from common import machine_info, write_result  # noqa: E402

VIEW_NAMES = ("front", "left", "back", "right")  # azimuth 0, 90, 180, 270
METHODS = ("grey", "mirror", "harmonic", "projection")

_SKIN = (0.87, 0.67, 0.54)
_HAIR = (0.22, 0.13, 0.07)
_SHIRT = (0.16, 0.33, 0.67)
_STRIPE = (0.93, 0.93, 0.88)
_LOGO = (0.85, 0.16, 0.14)
_TROUSERS = (0.23, 0.21, 0.32)
_POCKET = (0.40, 0.37, 0.52)
_SHOE = (0.08, 0.08, 0.09)
_SOLE = (0.85, 0.85, 0.85)
_EYE = (0.10, 0.07, 0.06)
_LIPS = (0.70, 0.30, 0.30)


def _parts(*names: str) -> list[int]:
    out = []
    for n in names:
        out += [PART_NAMES.index(n)] if n in PART_NAMES else \
            [PART_NAMES.index(f"left_{n}"), PART_NAMES.index(f"right_{n}")]
    return out


def procedural_texture(p: Tensor, part: Tensor) -> Tensor:
    """Albedo [M,3] of rest-space surface points p [M,3] (metres, root at the origin, +y up,
    facing +z) with part labels [M]: a blue shirt with horizontal white stripes (torso and
    upper arms) and a red logo on the front only, dark trousers with pockets on the back only,
    black shoes with white soles, skin on the neck, forearms, hands and face (eyes, lips),
    hair on the top and back of the head. Front and back differ (logo, pockets, face/hair), so
    "mirror the front" is not exact, while the stripes continue all round, as clothing does."""
    x, y, z = p.unbind(-1)
    out = torch.tensor(_SKIN).expand(p.shape[0], 3).clone()

    def paint(sel: Tensor, rgb) -> None:
        out[sel] = torch.tensor(rgb)

    def is_part(*names: str) -> Tensor:
        return torch.isin(part, torch.tensor(_parts(*names)))

    shirt = is_part("spine", "spine1", "spine2", "shoulder", "arm")
    paint(shirt, _SHIRT)
    paint(shirt & (torch.remainder(y, 0.07) < 0.025), _STRIPE)
    paint(shirt & (z > 0.04) & (x > 0.03) & (x < 0.11) & (y > 0.30) & (y < 0.38), _LOGO)
    trousers = is_part("hips", "up_leg", "leg")
    paint(trousers, _TROUSERS)
    paint(trousers & (z < -0.03) & (x.abs() > 0.03) & (x.abs() < 0.12) & (y > -0.10)
          & (y < -0.02), _POCKET)
    shoes = is_part("foot", "toe_base")
    paint(shoes, _SHOE)
    paint(shoes & (y < -0.855), _SOLE)
    paint(part == HAIR_LABEL, _HAIR)
    head = is_part("head")
    face_z = 0.10  # the face is the front of the head
    paint(head & ((y > 0.70) | (z < 0.02) | ((z < 0.07) & (y > 0.64))), _HAIR)
    paint(head & (z > face_z) & ((x.abs() - 0.032).abs() < 0.012) & ((y - 0.672).abs() < 0.007),
          _EYE)
    paint(head & (z > face_z) & (x.abs() < 0.022) & ((y - 0.595).abs() < 0.006), _LIPS)
    return out


HAIR_LABEL = -1  # "part" of the hair mesh, which is not part of the body model


def ellipsoid_mesh(centre, axes, n_lat: int = 24, n_lon: int = 48) -> tuple[Tensor, Tensor]:
    """A closed UV-sphere ellipsoid: (vertices [n,3], faces [m,3])."""
    lat = torch.linspace(0, math.pi, n_lat + 1)[1:-1]
    lon = torch.linspace(0, 2 * math.pi, n_lon + 1)[:-1]
    la, lo = torch.meshgrid(lat, lon, indexing="ij")
    ring = torch.stack([torch.sin(la) * torch.sin(lo), torch.cos(la),
                        torch.sin(la) * torch.cos(lo)], -1).reshape(-1, 3)
    pts = torch.cat([torch.tensor([[0.0, 1.0, 0.0]]), ring, torch.tensor([[0.0, -1.0, 0.0]])])
    verts = pts * torch.tensor(axes) + torch.tensor(centre)
    faces = []
    idx = lambda i, j: 1 + i * n_lon + (j % n_lon)  # noqa: E731
    for j in range(n_lon):
        faces.append((0, idx(0, j + 1), idx(0, j)))
        faces.append((len(pts) - 1, idx(n_lat - 2, j), idx(n_lat - 2, j + 1)))
    for i in range(n_lat - 2):
        for j in range(n_lon):
            faces.append((idx(i, j), idx(i, j + 1), idx(i + 1, j)))
            faces.append((idx(i, j + 1), idx(i + 1, j + 1), idx(i + 1, j)))
    return verts, torch.tensor(faces, dtype=torch.long)


def render_textured(vertices: Tensor, faces: Tensor, rest: Tensor, labels: Tensor,
                    viewmats: Tensor, Ks: Tensor, size: int, *, supersample: int = 2,
                    background: float = 1.0) -> tuple[Tensor, Tensor]:
    """Ground-truth renders of the textured body: (images [C,3,S,S] composited on
    ``background``, masks [C,1,S,S]); the texture is evaluated per (super)sample at the rest
    position interpolated with the z-buffer's barycentrics."""
    s = size * supersample
    imgs, masks = [], []
    for c in range(viewmats.shape[0]):
        K = Ks[c].clone()
        K[:2] *= supersample
        r = rasterize_mesh(vertices, faces, viewmats[c], K, s, s)
        cov = r.coverage.reshape(-1)
        fid = r.face_ids.reshape(-1)[cov]
        bary = r.bary.reshape(-1, 3)[cov]
        corners = faces[fid]  # [M,3]
        pos = (bary[..., None] * rest[corners]).sum(1)
        part = labels[corners.gather(1, bary.argmax(1, keepdim=True))[:, 0]]
        rgb = torch.zeros(s * s, 3)
        rgb[cov] = procedural_texture(pos, part)
        a = cov.float().reshape(1, 1, s, s)
        col = rgb.T.reshape(1, 3, s, s)
        a = F.avg_pool2d(a, supersample)
        col = F.avg_pool2d(col, supersample)  # premultiplied: uncovered samples are 0
        imgs.append((col + background * (1 - a))[0])
        masks.append(a[0])
    return torch.stack(imgs).clamp(0, 1), torch.stack(masks)


@dataclass
class Case:
    name: str
    inp: SynthInput
    gt: Tensor  # [4,3,S,S] the orthogonal views
    gt_masks: Tensor  # [4,1,S,S]


def make_case(model, size: int, *, name: str = "frontal", yaw_deg: float = 0.0,
              smpl_pose: Optional[dict[str, tuple[float, float, float]]] = None,
              shape: Optional[Tensor] = None, hair: bool = False) -> Case:
    """A textured Anny body, its 4 orthogonal ground-truth views, and the synthesizer input
    (view 0, its mask, the true body as the BodyFit). ``smpl_pose``: {part name: axis-angle}.
    ``hair``: add a volume of long hair (an ellipsoid around the back of the head, down to
    the shoulders) to the rendered person but not to the fit: geometry beyond the body, as
    hair and loose clothes are in photos (unposed, unturned bodies only)."""
    if hair and (yaw_deg or smpl_pose):
        raise ValueError("make_case: hair is modelled for the rest pose only")
    pose = torch.zeros(1, 24, 3)
    for k, aa in (smpl_pose or {}).items():
        pose[0, PART_NAMES.index(k)] = torch.tensor(aa)
    with torch.no_grad():
        out = model(model.body_pose_from_smpl(pose), shape,
                    torch.tensor([[0.0, math.radians(yaw_deg), 0.0]]))
    verts, rest = out.vertices[0], out.rest_vertices[0]
    faces, labels = model.faces, model.part_labels
    g_verts, g_faces, g_rest, g_labels = verts, faces, rest, labels
    if hair:
        head = rest[labels == PART_NAMES.index("head")]
        lo, hi = head.min(0).values, head.max(0).values
        centre = (0.0, float(lo[1] + 0.42 * (hi[1] - lo[1])), float(lo[2] + 0.22 * (hi[2] - lo[2])))
        axes = (float(0.62 * (hi[0] - lo[0])), float(0.75 * (hi[1] - lo[1])),
                float(0.46 * (hi[2] - lo[2])))
        hv, hf = ellipsoid_mesh(centre, axes)
        n = verts.shape[0]
        g_verts, g_rest = torch.cat([verts, hv]), torch.cat([rest, hv])
        g_faces = torch.cat([faces, hf + n])
        g_labels = torch.cat([labels, torch.full((hv.shape[0],), HAIR_LABEL)])
    cams = orthogonal_views(width=size, height=size)
    gt, gt_masks = render_textured(g_verts, g_faces, g_rest, g_labels, cams.viewmats, cams.Ks,
                                   size)
    cam0 = input_camera(size, size)
    fit = BodyFit(vertices=verts, faces=faces, joints=out.joints[0], keypoints=out.keypoints[0],
                  part_labels=labels, params={}, viewmat=cam0.viewmats[0], K=cam0.Ks[0],
                  image_size=(size, size), diagnostics={"model": model.name})
    inp = SynthInput(image=gt[0], mask=gt_masks[0], input_camera=cam0, target_cameras=cams,
                     body_fit=fit)
    return Case(name, inp, gt, gt_masks)


def method_views(case: Case, method: str, model=None) -> tuple[Tensor, float]:
    """(views [4,3,S,S], seconds) of one method on a case."""
    t0 = time.perf_counter()
    if method == "mirror":
        views = method_views(case, "grey", model)[0].clone()
        views[2] = torch.flip(views[0], dims=[-1])  # view 0 is the input photo itself
        return views, time.perf_counter() - t0
    fill = {"grey": "grey", "harmonic": "harmonic", "projection": "full"}[method]
    synth = ProjectionSynthesizer(model, fill=fill)
    out = synth(case.inp)
    return out.previews, time.perf_counter() - t0


def psnr(pred: Tensor, gt: Tensor, mask: Optional[Tensor] = None) -> float:
    """PSNR (dB) of one image [3,H,W] (over ``mask`` [1,H,W] when given)."""
    from humansplat.metrics import psnr as psnr_

    return float(psnr_(pred[None].float(), gt[None].float(),
                       None if mask is None else mask[None].float())[0])


def evaluate(case: Case, model=None, methods=METHODS) -> dict:
    """{method: {view: {"psnr": dB, "psnr_fg": dB}, "seconds": s}} for the 3 unseen views."""
    res = {}
    for m in methods:
        views, secs = method_views(case, m, model)
        res[m] = {"seconds": secs}
        for v in (1, 2, 3):
            res[m][VIEW_NAMES[v]] = {
                "psnr": psnr(views[v], case.gt[v]),
                "psnr_fg": psnr(views[v], case.gt[v], case.gt_masks[v]),
            }
    return res


def default_cases(model, size: int) -> list[Case]:
    return [
        make_case(model, size, name="frontal A-pose"),
        make_case(model, size, name="frontal, long hair", hair=True),
        make_case(model, size, name="turned 25 deg, posed", yaw_deg=25.0,
                  smpl_pose={"left_arm": (0.0, 0.0, -0.3), "right_forearm": (0.0, -0.6, 0.0),
                             "left_up_leg": (-0.25, 0.0, 0.0), "head": (0.0, 0.3, 0.0)},
                  shape=torch.tensor([0.3, 0.5, 0.6, 0.6, 0.5, 0.5])),
    ]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "synth_quality.json"))
    args = ap.parse_args(argv)
    from humansplat.prior.body import AnnyBody

    model = AnnyBody()
    rows, results = [], []
    for case in default_cases(model, args.size):
        res = evaluate(case, model)
        results.append({"case": case.name, "size": args.size, "results": res})
        for m in METHODS:
            r = res[m]
            rows.append((case.name, m, *(r[VIEW_NAMES[v]]["psnr"] for v in (1, 2, 3)),
                         *(r[VIEW_NAMES[v]]["psnr_fg"] for v in (1, 2, 3)), r["seconds"]))
    head = ("case", "method", "left", "back", "right", "left fg", "back fg", "right fg", "s")
    print(f"PSNR (dB) of the unseen views vs ground truth, {args.size} px "
          "(fg: over the person mask)")
    print(f"{head[0]:22s} {head[1]:11s} " + " ".join(f"{h:>8s}" for h in head[2:]))
    for r in rows:
        print(f"{r[0]:22s} {r[1]:11s} " + " ".join(f"{x:8.2f}" for x in r[2:]))
    write_result({"benchmark": "synth_quality", "machine": machine_info("cpu"),
                  "methods": list(METHODS), "cases": results}, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
